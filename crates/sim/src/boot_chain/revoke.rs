//! Revoking boot-key slots: the eFuse half of a boot-key rotation (design #20 §5).
//!
//! A rotation is: provision the new key in a later slot (before the secure stage: the slots are
//! under the S-HASH), ship and confirm images signed with it, then blow the old slot's revocation
//! bit with [`apply`]. From then on the DBM and the CM0+ stage refuse every region signed only
//! with the old key, on every path (current, trial, fallback, USER1), whatever flash holds.
//!
//! [`apply`] is guarded and power-cut safe:
//! * **Guard**: it refuses, before blowing anything, unless the running bank's image verifies
//!   (every region, as the agent checks a download) under the ring *without* the slots to
//!   revoke. Revoking the key the running image needs would leave a board that refuses the image
//!   it runs at its next reset. It also refuses while the running image is under trial: a
//!   rejected trial falls back to the previous image, which may be signed with the old key.
//! * **Power cuts**: it blows one bit per operation, in slot order. Any prefix leaves a subset of
//!   the asked bits blown, and the running image verifies under every such ring (it verifies
//!   without all of them); a torn blow leaves its bit blown or not. Running `apply` again with the
//!   same mask checks the same guard and finishes the rest, so it is idempotent.

use ferrota_image::KeyRing;

use super::Error;
use super::actions::{running_bank, verify_physical_bank};
use super::run::{read_params, read_state};
use ferrota_t2g::Device;
use ferrota_t2g::geometry::EFUSE_KEY_SLOTS;

/// Revokes the boot-key slots of `mask` (bit `n` = slot `n`; bits above the 4 slots ignored)
/// behind the guard of the module docs. Returns the bits this call blew (0 when all were already
/// blown). Refusals: [`Error::RevokeRefused`] and [`Error::RevokeDuringTrial`] (nothing blown), and the memory model's errors,
/// [`ferrota_t2g::Error::PowerLost`] included (some of the bits may be blown: run it again).
pub fn apply(dev: &mut Device, mask: u8) -> Result<u8, Error> {
    let mask = mask & KeyRing::<ferrota_image::BootKey>::ALL;
    let params = read_params(dev)?;
    let todo = mask & !params.ring.revoked();
    if todo == 0 {
        return Ok(0);
    }
    let state = read_state(dev)?;
    let running = running_bank(&state);
    if state.trial.is_some_and(|t| t.used > 0) {
        return Err(Error::RevokeDuringTrial { bank: running });
    }
    let after = params.ring.without(mask);
    verify_physical_bank(dev, running, &after).map_err(|error| Error::RevokeRefused {
        mask,
        bank: running,
        error,
    })?;
    for slot in 0..EFUSE_KEY_SLOTS {
        if todo & (1 << slot) != 0 {
            dev.revoke_boot_key(slot)?;
        }
    }
    Ok(todo)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use ferrota_boot::Bank;
    use ferrota_boot::dbm::{BankFault, BootReason, RevertCause};
    use ferrota_image::ErrorKind;
    use ferrota_image::sign::BootSigningKey;
    use ferrota_t2g::{Device, LifeCycle, PowerCut};

    use super::super::*;
    use super::apply;
    use crate::images::large_bank_image;
    use crate::keys::{boot_key, boot_key_2, boot_ring, boot_signing_key, boot_signing_key_2};

    /// Bank images signed with the slot 0 key (`k0`) or the slot 1 key (`k1`), counter `c`.
    fn image(slot: usize, c: u32) -> &'static [u8] {
        static I: OnceLock<Vec<Vec<Vec<u8>>>> = OnceLock::new();
        let keys: [&BootSigningKey; 2] = [boot_signing_key(), boot_signing_key_2()];
        &I.get_or_init(|| {
            keys.iter()
                .map(|k| (0..4).map(|c| large_bank_image(k, c).unwrap()).collect())
                .collect()
        })[slot][c as usize]
    }

    /// A SECURE board with the two test keys in slots 0 and 1.
    fn two_slot_board() -> Device {
        provision_slots(
            &Provisioning {
                key: boot_key().clone(),
                life_cycle: LifeCycle::Secure,
                hardware: None,
            },
            &[boot_key_2().clone()],
        )
        .unwrap()
    }

    fn started(o: &BootOutcome) -> &Started {
        o.started()
            .unwrap_or_else(|| panic!("expected a start:\n{o}"))
    }

    /// Erases the first sector of the upper bank (its CM0+ region), in the single-bank view.
    fn erase_upper(dev: &mut Device) {
        dev.reset();
        dev.erase_sector(ferrota_t2g::geometry::SBM_UPPER_LARGE_BASE)
            .unwrap();
    }

    fn is_signature_fault(f: &BankFault) -> bool {
        matches!(f, BankFault::Image(e) if e.kind == ErrorKind::SignatureMismatch)
    }

    /// Lower bank: k0 image, counter 1, confirmed. Upper: k1 image, counter 1 too (so the k0
    /// image stays a valid fallback by the anti-rollback floor), confirmed and running. Nothing
    /// revoked.
    fn rotated_board() -> Device {
        let mut dev = two_slot_board();
        program_bank(&mut dev, Bank::Lower, image(0, 1)).unwrap();
        assert_eq!(started(&boot(&mut dev, false).unwrap()).bank, Bank::Lower);
        confirm(&mut dev).unwrap();
        program_bank(&mut dev, Bank::Upper, image(1, 1)).unwrap();
        activate(&mut dev, 3, false).unwrap();
        let o = boot(&mut dev, false).unwrap();
        assert_eq!(started(&o).bank, Bank::Upper, "a k1 image boots: {o}");
        // Under trial, the fallback is the k0 image: revoking now is refused.
        let before = dev.to_bytes();
        assert!(matches!(
            apply(&mut dev, 0b0001),
            Err(Error::RevokeDuringTrial { bank: Bank::Upper })
        ));
        assert_eq!(dev.to_bytes(), before);
        confirm(&mut dev).unwrap();
        dev
    }

    #[test]
    fn a_two_slot_board_reads_its_ring_and_boots_either_key() {
        let mut dev = two_slot_board();
        let p = read_params(&dev).unwrap();
        assert_eq!(&p.ring, boot_ring(0));
        assert_eq!(&p.key, boot_key());
        // The S-HASH covers the slots: SECURE boots.
        program_bank(&mut dev, Bank::Lower, image(0, 1)).unwrap();
        let o = boot(&mut dev, false).unwrap();
        assert_eq!(
            (started(&o).bank, started(&o).reason),
            (Bank::Lower, BootReason::Current)
        );
        let mut dev = two_slot_board();
        program_bank(&mut dev, Bank::Lower, image(1, 1)).unwrap();
        assert_eq!(started(&boot(&mut dev, false).unwrap()).bank, Bank::Lower);
        // The fuse mask reaches the ring.
        dev.revoke_boot_key(0).unwrap();
        assert_eq!(&read_params(&dev).unwrap().ring, boot_ring(1));
        // Slots 1..3: three extra keys at most.
        let three = provision_slots(
            &Provisioning {
                key: boot_key().clone(),
                life_cycle: LifeCycle::Secure,
                hardware: None,
            },
            &vec![boot_key_2().clone(); 3],
        );
        assert!(three.is_ok(), "three extra slots fit");
        assert!(matches!(
            provision_slots(
                &Provisioning {
                    key: boot_key().clone(),
                    life_cycle: LifeCycle::Secure,
                    hardware: None,
                },
                &vec![boot_key_2().clone(); 4],
            ),
            Err(Error::ExtraKey { slot: 4, .. })
        ));
    }

    #[test]
    fn the_guard_refuses_the_key_the_running_image_needs() {
        let mut dev = two_slot_board();
        program_bank(&mut dev, Bank::Lower, image(0, 1)).unwrap();
        started(&boot(&mut dev, false).unwrap());
        let before = dev.to_bytes();
        let e = apply(&mut dev, 0b0001).unwrap_err();
        assert!(
            matches!(
                e,
                Error::RevokeRefused {
                    mask: 1,
                    bank: Bank::Lower,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with(
            "revoking boot-key slots 0b0001 refused: the running lower (mapping A) bank's image"
        ));
        assert_eq!(dev.to_bytes(), before, "nothing blown");
        assert_eq!(dev.efuse().revoked_boot_keys(), 0);
        // Revoking every slot is refused too, even on a board running a k1 image.
        let mut dev = rotated_board();
        assert!(matches!(
            apply(&mut dev, 0b1111),
            Err(Error::RevokeRefused {
                bank: Bank::Upper,
                ..
            })
        ));
        assert_eq!(dev.efuse().revoked_boot_keys(), 0);
        // The slot the running image does not need: allowed, and idempotent.
        assert_eq!(apply(&mut dev, 0b0001).unwrap(), 0b0001);
        let ops = dev.op_count();
        assert_eq!(apply(&mut dev, 0b0001).unwrap(), 0);
        assert_eq!(dev.op_count(), ops);
        assert_eq!(dev.efuse().revoked_boot_keys(), 0b0001);
    }

    #[test]
    fn after_revoking_slot_0_a_k0_image_is_refused_on_every_path() {
        let revoked = {
            let mut dev = rotated_board();
            assert_eq!(apply(&mut dev, 0b0001).unwrap(), 0b0001);
            dev
        };
        let r = report(&revoked).unwrap();
        assert_eq!((r.key_slots, r.revoked_boot_keys), (0b0011, 0b0001));
        // Normal boot: the k1 image runs, as the current bank.
        let mut dev = revoked.clone();
        let o = boot(&mut dev, false).unwrap();
        assert_eq!(
            (started(&o).bank, started(&o).reason),
            (Bank::Upper, BootReason::Current)
        );

        // Trial: a newer k0 image activated (forced: `activate` itself refuses it) is refused
        // by the DBM, and the k1 image runs again.
        let mut dev = revoked.clone();
        program_bank(&mut dev, Bank::Lower, image(0, 3)).unwrap();
        assert!(matches!(
            activate(&mut dev, 3, false),
            Err(Error::BankInvalid {
                bank: Bank::Lower,
                ..
            })
        ));
        activate(&mut dev, 3, true).unwrap();
        let o = boot(&mut dev, false).unwrap();
        let s = started(&o);
        assert_eq!(s.bank, Bank::Upper, "{o}");
        assert!(
            matches!(s.reason, BootReason::Reverted {
                from: Bank::Lower,
                cause: RevertCause::TrialInvalid(ref f),
            } if is_signature_fault(f)),
            "{o}"
        );
        // Before the revocation the same trial boots the k0 image.
        let mut control = rotated_board();
        program_bank(&mut control, Bank::Lower, image(0, 3)).unwrap();
        activate(&mut control, 3, false).unwrap();
        let o = boot(&mut control, false).unwrap();
        assert!(matches!(
            started(&o).reason,
            BootReason::Trial { attempt: 1, .. }
        ));

        // Fallback: the running k1 bank is erased; the lower bank's k0 image was the fallback.
        let mut dev = revoked.clone();
        erase_upper(&mut dev);
        let o = boot(&mut dev, false).unwrap();
        let BootResult::Halted(h) = &o.result else {
            panic!("expected a halt:\n{o}");
        };
        assert!(is_signature_fault(&h.lower), "{o}");
        // Before the revocation the same board falls back to the k0 image.
        let mut control = rotated_board();
        erase_upper(&mut control);
        let o = boot(&mut control, false).unwrap();
        let s = started(&o);
        assert_eq!(s.bank, Bank::Lower, "{o}");
        assert!(matches!(
            s.reason,
            BootReason::FellBack {
                from: Bank::Upper,
                ..
            }
        ));

        // USER1 (forces the lower bank): the k0 image is refused there too.
        let mut dev = revoked.clone();
        let o = boot(&mut dev, true).unwrap();
        let s = started(&o);
        assert_eq!(s.bank, Bank::Upper, "{o}");
        assert!(matches!(
            s.reason,
            BootReason::User1 { lower_fault: Some(ref f) } if is_signature_fault(f)
        ));

        // A board whose *current* image needs the revoked key (the guard bypassed: the bit
        // blown directly) no longer boots it.
        let mut dev = two_slot_board();
        program_bank(&mut dev, Bank::Lower, image(0, 1)).unwrap();
        started(&boot(&mut dev, false).unwrap());
        dev.revoke_boot_key(0).unwrap();
        let o = boot(&mut dev, false).unwrap();
        assert!(
            matches!(o.result, BootResult::Halted(ref h) if is_signature_fault(&h.lower)),
            "{o}"
        );
    }

    #[test]
    fn a_power_cut_at_every_operation_of_apply_leaves_a_board_that_boots() {
        let base = {
            let mut dev = rotated_board();
            // Also reach for the empty slot 2: two blows.
            dev.power_cycle();
            dev
        };
        let mask = 0b0101;
        let ops = {
            let mut d = base.clone();
            let before = d.op_count();
            assert_eq!(apply(&mut d, mask).unwrap(), mask);
            d.op_count() - before
        };
        assert_eq!(ops, 2, "one operation per bit");
        for n in 0..ops {
            for cut in [
                PowerCut::Before(base.op_count() + n),
                PowerCut::Tear {
                    op: base.op_count() + n,
                    seed: n,
                },
                PowerCut::Tear {
                    op: base.op_count() + n,
                    seed: n + 7,
                },
            ] {
                let mut dev = base.clone();
                dev.schedule_power_cut(cut);
                assert!(
                    matches!(
                        apply(&mut dev, mask),
                        Err(Error::Memory(ferrota_t2g::Error::PowerLost))
                    ),
                    "{cut:?}"
                );
                dev.power_cycle();
                let got = dev.efuse().revoked_boot_keys();
                assert_eq!(got & !mask, 0, "{cut:?}: only asked bits");
                // The board boots its k1 image, whatever subset is blown.
                let o = boot(&mut dev, false).unwrap();
                assert_eq!(started(&o).bank, Bank::Upper, "{cut:?}:\n{o}");
                // And the retry finishes the revocation.
                apply(&mut dev, mask).unwrap();
                assert_eq!(dev.efuse().revoked_boot_keys(), mask, "{cut:?}");
                assert_eq!(started(&boot(&mut dev, false).unwrap()).bank, Bank::Upper);
            }
        }
    }
}
