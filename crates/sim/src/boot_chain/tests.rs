use std::sync::OnceLock;

use ferrota_boot::Bank;
use ferrota_boot::app::ImageState;
use ferrota_boot::dbm::{BankFault, BootReason, RevertCause};
use ferrota_boot::rom::RomError;
use ferrota_image::sign::BootSigningKey;
use ferrota_t2g::{Device, LifeCycle, Mapping};

use super::*;
use crate::images::large_bank_image as bank_image;
use crate::keys::bench_boot_key as bench_key;

fn key() -> &'static BootSigningKey {
    static K: OnceLock<BootSigningKey> = OnceLock::new();
    K.get_or_init(bench_key)
}

fn image(counter: u32) -> &'static [u8] {
    static I: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    &I.get_or_init(|| (0..4).map(|c| bank_image(key(), c).unwrap()).collect())[counter as usize]
}

fn device(lc: LifeCycle) -> Device {
    provision(&Provisioning {
        key: key().boot_key().unwrap(),
        life_cycle: lc,
        hardware: None,
    })
    .unwrap()
}

fn started(o: &BootOutcome) -> &Started {
    o.started()
        .unwrap_or_else(|| panic!("expected a start:\n{o}"))
}

#[test]
fn provisioning_writes_sflash_and_fuses() {
    let dev = device(LifeCycle::Secure);
    assert_eq!(dev.lifecycle(), LifeCycle::Secure);
    assert!(!dev.sflash_writable());
    let p = read_params(&dev).unwrap();
    assert_eq!(p.key, key().boot_key().unwrap());
    assert_eq!(p.config.hardware, None);
    assert_ne!(dev.efuse().shash(), [0; 32]);
    let mut toc2 = [0u8; 512];
    dev.read(0x1700_7C00, &mut toc2).unwrap();
    assert_eq!(toc2, toc2_row());
    for lc in [
        LifeCycle::Virgin,
        LifeCycle::Normal,
        LifeCycle::NormalProvisioned,
    ] {
        assert_eq!(device(lc).lifecycle(), lc);
    }
    assert!(matches!(
        provision(&Provisioning {
            key: key().boot_key().unwrap(),
            life_cycle: LifeCycle::Corrupted,
            hardware: None,
        }),
        Err(Error::LifeCycle(LifeCycle::Corrupted))
    ));
}

#[test]
fn blank_device_halts_with_both_reasons() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    let o = boot(&mut dev, false).unwrap();
    assert!(matches!(o.result, BootResult::Halted(_)), "{o}");
    assert!(o.summary().starts_with("halted: both banks refused"));
    assert!(matches!(
        boot(&mut Device::new(), false).unwrap().result,
        BootResult::NotProvisioned(Unprovisioned::NoDbm)
    ));
}

#[test]
fn program_refuses_wrong_size_and_reports_verification() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    let before = dev.to_bytes();
    assert!(matches!(
        program_bank(&mut dev, Bank::Lower, &[0u8; 100]),
        Err(Error::BankSize { len: 100 })
    ));
    assert_eq!(dev.to_bytes(), before);
    let p = program_bank(&mut dev, Bank::Upper, image(1)).unwrap();
    assert_eq!(p.sectors_erased, 127);
    assert_eq!(p.verification.unwrap().unwrap().security_counter, 1);
    let mut bad = image(1).to_vec();
    bad[0x20_0000] ^= 1;
    let p = program_bank(&mut dev, Bank::Lower, &bad).unwrap();
    assert!(p.verification.unwrap().is_err());
}

#[test]
fn update_walkthrough_trial_confirm_and_rollback() {
    let mut dev = device(LifeCycle::Secure);
    program_bank(&mut dev, Bank::Lower, image(1)).unwrap();
    let o = boot(&mut dev, false).unwrap();
    let s = started(&o);
    assert_eq!(
        (s.bank, s.mapping, s.reason),
        (Bank::Lower, Mapping::A, BootReason::Current)
    );
    assert_eq!(s.cm7_0, 0x1001_0100);
    assert_eq!(o.ops, 0, "a steady boot writes nothing");
    assert!(
        o.steps
            .iter()
            .any(|st| st.stage == Stage::Rom && st.text.contains("matches"))
    );

    program_bank(&mut dev, Bank::Upper, image(2)).unwrap();
    let a = activate(&mut dev, 3, false).unwrap();
    assert_eq!((a.running, a.target), (Bank::Lower, Bank::Upper));
    let snapshot = dev.clone();

    let o = boot(&mut dev, false).unwrap();
    let s = started(&o);
    assert_eq!(s.bank, Bank::Upper);
    assert_eq!(
        s.reason,
        BootReason::Trial {
            attempt: 1,
            budget: 3
        }
    );
    assert_eq!(s.image_state, ImageState::PendingCommit);
    let c = confirm(&mut dev).unwrap();
    assert_eq!((c.bank, c.floor, c.efuse_counter), (Bank::Upper, 2, 2));
    let s2 = started(&boot(&mut dev, false).unwrap()).clone();
    assert_eq!((s2.bank, s2.image_state), (Bank::Upper, ImageState::Valid));

    // Rollback path from the snapshot: trial boot, reject, the old bank runs.
    let mut dev = snapshot;
    assert_eq!(started(&boot(&mut dev, false).unwrap()).bank, Bank::Upper);
    let r = reject(&mut dev).unwrap();
    assert_eq!(r.bank, Bank::Upper);
    let s = started(&boot(&mut dev, false).unwrap()).clone();
    // The previous image runs again as the valid one; the rejected bank is locked.
    assert_eq!((s.bank, s.image_state), (Bank::Lower, ImageState::Valid));
    assert_eq!(report(&dev).unwrap().banks[1].mark, BankMark::Locked);
    assert!(matches!(reject(&mut dev), Err(Error::App(_))));
}

#[test]
fn downgrade_is_refused_by_activate_and_by_the_dbm() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    program_bank(&mut dev, Bank::Lower, image(3)).unwrap();
    started(&boot(&mut dev, false).unwrap());
    confirm(&mut dev).unwrap();
    program_bank(&mut dev, Bank::Upper, image(2)).unwrap();
    let before = dev.to_bytes();
    assert!(matches!(
        activate(&mut dev, 3, false),
        Err(Error::Downgrade {
            counter: 2,
            floor: 3,
            ..
        })
    ));
    assert_eq!(dev.to_bytes(), before);
    activate(&mut dev, 3, true).unwrap();
    let o = boot(&mut dev, false).unwrap();
    let s = started(&o);
    assert_eq!(s.bank, Bank::Lower);
    assert!(matches!(
        s.reason,
        BootReason::Reverted {
            from: Bank::Upper,
            cause: RevertCause::TrialInvalid(BankFault::BelowFloor {
                counter: 2,
                floor: 3
            })
        }
    ));
}

#[test]
fn cm0p_failure_resets_and_falls_back() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    let mut bad = image(1).to_vec();
    bad[0x20_0000] ^= 1; // inside CM7_0's signed bytes
    program_bank(&mut dev, Bank::Lower, &bad).unwrap();
    program_bank(&mut dev, Bank::Upper, image(1)).unwrap();
    let o = boot(&mut dev, false).unwrap();
    assert_eq!(o.resets, 1);
    assert_eq!(started(&o).bank, Bank::Upper);
    assert!(o.steps.iter().any(|s| s.stage == Stage::Reset));
    let rep = report(&dev).unwrap();
    assert!(matches!(
        rep.banks[0].status,
        BankStatus::CoresInvalid { .. }
    ));
    assert!(matches!(rep.banks[1].status, BankStatus::Valid(_)));
    assert_eq!(rep.running, Bank::Upper);
    assert_eq!(rep.records.len(), 2);
}

#[test]
fn rom_refuses_a_changed_sflash_in_secure() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    program_bank(&mut dev, Bank::Lower, image(1)).unwrap();
    let mut row = DbmConfig { hardware: None }.dbm_row();
    row[0x100] = 0xEE; // a changed DBM
    dev.sflash_write_row(0x1700_0800, &row).unwrap();
    assert_eq!(started(&boot(&mut dev, false).unwrap()).bank, Bank::Lower);
    dev.advance_lifecycle(LifeCycle::Secure).unwrap();
    let o = boot(&mut dev, true).unwrap();
    assert!(
        matches!(
            o.result,
            BootResult::RomRefused(RomError::ShashMismatch { .. })
        ),
        "{o}"
    );
}

#[test]
fn report_of_a_fresh_device() {
    let mut dev = device(LifeCycle::NormalProvisioned);
    program_bank(&mut dev, Bank::Lower, image(1)).unwrap();
    let r = report(&dev).unwrap();
    assert_eq!(r.life_cycle, LifeCycle::NormalProvisioned);
    assert!(r.shash_blown);
    assert!(r.key.is_ok());
    assert!(matches!(r.banks[0].status, BankStatus::Valid(ref v) if v.security_counter == 1));
    assert_eq!(r.banks[1].status, BankStatus::Erased);
    assert!(r.records.is_empty());
    assert_eq!((r.floor_log, r.floor_efuse), (0, 0));
    let lower = &r.wear[0];
    assert_eq!((lower.sectors, lower.erases, lower.max), (127 + 16, 127, 1));
}

#[test]
fn bad_or_mixed_key_slots_stop_the_dbm_with_the_slot_named() {
    use ferrota_image::sflash_key::{BOOT_KEY_SLOTS, SlotError, rsa2048_key_object};
    use ferrota_image::{BootKey, KeyRingError, Scheme};
    let mut dev = device(LifeCycle::NormalProvisioned);
    program_bank(&mut dev, Bank::Lower, image(1)).unwrap();
    // A garbled P-256 object in slot 2.
    let mut row = [0u8; 512];
    let BootKey::EcdsaP256(k) = crate::keys::boot_key_2() else {
        unreachable!()
    };
    row[..76].copy_from_slice(&ferrota_image::sflash_key::p256_key_object(k));
    row[40] ^= 1;
    dev.sflash_write_row(BOOT_KEY_SLOTS[2], &row).unwrap();
    assert!(matches!(
        read_params(&dev),
        Err(Error::KeySlot(SlotError::Object { slot: 2, .. }))
    ));
    let o = boot(&mut dev, false).unwrap();
    assert!(
        matches!(
            o.result,
            BootResult::NotProvisioned(Unprovisioned::KeySlot(SlotError::Object { slot: 2, .. }))
        ),
        "{o}"
    );
    assert_eq!(
        o.summary(),
        "halted: the DBM has no usable key ring: boot key slot 2 at 0x17006c00: key object at +8: inconsistent field"
    );
    // Mixed schemes: an RSA-2048 slot 0 with a P-256 slot 1 (written by hand: provisioning
    // refuses to write it).
    let mut dev = device(LifeCycle::NormalProvisioned);
    let mut modulus = [0xA5u8; 256];
    modulus[0] = 0xC1;
    modulus[255] = 0x01;
    let rsa = rsa2048_key_object(&ferrota_image::scheme::Rsa2048PublicKey {
        modulus,
        exponent: 65537,
    });
    for (i, chunk) in rsa.chunks(512).enumerate() {
        let mut r = [0u8; 512];
        r[..chunk.len()].copy_from_slice(chunk);
        dev.sflash_write_row(BOOT_KEY_SLOTS[0] + 512 * i as u32, &r)
            .unwrap();
    }
    row[40] ^= 1;
    dev.sflash_write_row(BOOT_KEY_SLOTS[1], &row).unwrap();
    dev.sflash_write_row(BOOT_KEY_SLOTS[2], &[0xFF; 512])
        .unwrap();
    let o = boot(&mut dev, false).unwrap();
    assert_eq!(
        o.result,
        BootResult::NotProvisioned(Unprovisioned::KeySlot(SlotError::Ring(
            KeyRingError::MixedSchemes {
                slot: 1,
                ring: Scheme::Rsa2048,
                found: Scheme::EcdsaP256
            }
        ))),
        "{o}"
    );
    assert!(matches!(
        provision_slots(
            &Provisioning {
                key: BootKey::Rsa2048(ferrota_image::scheme::Rsa2048PublicKey {
                    modulus,
                    exponent: 65537
                }),
                life_cycle: LifeCycle::NormalProvisioned,
                hardware: None,
            },
            &[crate::keys::boot_key_2().clone()]
        ),
        Err(Error::ExtraKey { slot: 1, .. })
    ));
}
