//! Bank images built, signed and verified end to end, and every way a bank can be wrong.

mod common;

use common::*;
use embedded_storage::nor_flash::{ErrorType, NorFlashErrorKind, ReadNorFlash};
use ferrota_image::header::CySafHeader;
use ferrota_image::inspect::inspect;
use ferrota_image::layout::SIGNATURE_SLOT_SIZE;
use ferrota_image::ota::{OtaSignatureError, sign_file};
use ferrota_image::sign::{SignMode, sign_regions};
use ferrota_image::verify::{
    WrittenBankError, verify_bank, verify_bank_in_flash, verify_boot_in_flash, verify_region,
    verify_written_bank,
};
use ferrota_image::{BANK_SIZE, ErrorKind, FirmwareVersion, Region};

fn set_obj_size(bank: &mut [u8], region: Region, obj_size: u32) {
    let at = region.offset() as usize;
    bank[at..at + 4].copy_from_slice(&obj_size.to_le_bytes());
}

#[test]
fn built_bank_verifies_and_describes_itself() {
    let bank = bank();
    assert_eq!(bank.len(), BANK_SIZE as usize);
    let v = verify_bank(bank, &boot_key(1).boot_key().unwrap()).expect("fresh bank verifies");
    assert_eq!(v.boot().record().version, FirmwareVersion::new(1, 2, 3));
    assert_eq!(v.boot().record().security_counter, 5);
    assert_eq!(v.boot().record().hardware.as_str(), "KIT_T2G-B-H_LITE");
    assert_eq!(
        v.boot().record().flags,
        ferrota_image::version::FLAG_CM7_1_APP
    );
    let s = inspect(bank);
    assert_eq!(s.record, Ok(*v.boot().record()));
    for (summary, verified) in s
        .regions
        .iter()
        .zip([v.boot().cm0p(), v.cm7_0(), v.cm7_1()])
    {
        assert_eq!(summary.digest, Some(*verified.digest()));
        assert_eq!(summary.signed, Some(true));
        assert_eq!(summary.header, Some(*verified.header()));
    }
    // The seed's layout: objSize = region size - 256, vector table at +0x100, seed app ids.
    assert_eq!(v.boot().cm0p().header().obj_size, 0xFF00);
    assert_eq!(v.cm7_0().header().obj_size, 0x3D_7F00);
    assert_eq!(v.cm7_0().header().app_id, 0x0120_8002 | (3 << 16));
    assert_eq!(v.boot().cm0p().header().app_id, 0x0102_0003);
    // ECDSA slot: r||s then zeroes.
    let slot = &bank[0xFF00..0x10000];
    assert!(slot[..64].iter().any(|&b| b != 0) && slot[64..].iter().all(|&b| b == 0));
}

#[test]
fn building_is_deterministic() {
    let again = build_bank(&boot_key(1), record(FirmwareVersion::new(1, 2, 3), 5), true);
    assert!(
        again == bank(),
        "same inputs and key must give the same bytes (RFC 6979)"
    );
}

#[test]
fn every_byte_of_a_small_signed_region_is_covered() {
    // Shrink CM0+'s signed range to 0x400 bytes so every byte can be flipped in a debug test.
    let key = boot_key(1);
    let mut small = bank().to_vec();
    set_obj_size(&mut small, Region::Cm0p, 0x400);
    small[0x400 + 256..0x10000].fill(0);
    sign_regions(&mut small, &key, SignMode::All).expect("re-sign");
    let public = key.boot_key().unwrap();
    verify_region(&small, Region::Cm0p, &public).expect("shrunk region verifies");
    for offset in 0..0x400 + SIGNATURE_SLOT_SIZE as usize {
        for bit in [0x01u8, 0x80] {
            let mut bad = small.clone();
            bad[offset] ^= bit;
            let e = verify_region(&bad, Region::Cm0p, &public).expect_err(&format!(
                "flip of bit {bit:#x} at {offset:#x} must be detected"
            ));
            assert_eq!(e.region, Some(Region::Cm0p), "{e}");
        }
    }
}

#[test]
fn sampled_flips_across_a_full_bank_fail_in_the_right_region() {
    let public = boot_key(1).boot_key().unwrap();
    let seed = payload(99, 48 * 4);
    let offsets = seed
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) % BANK_SIZE)
        .chain([
            0,
            0x17,
            0x18,
            0xFF,
            0xFEFF,
            0xFF00,
            0x10000,
            0x3E7F00,
            0x3E8000,
            BANK_SIZE - 1,
        ]);
    for offset in offsets {
        let mut bad = bank().to_vec();
        bad[offset as usize] ^= 0x5A;
        let e = verify_bank(&bad, &public).expect_err(&format!("flip at {offset:#x} undetected"));
        assert_eq!(
            e.region,
            Region::containing(offset),
            "flip at {offset:#x}: {e}"
        );
    }
}

#[test]
fn wrong_key_is_a_mismatch_at_the_first_signature() {
    let e = verify_bank(bank(), &boot_key(2).boot_key().unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SignatureMismatch);
    assert_eq!((e.region, e.offset), (Some(Region::Cm0p), 0xFF00));
    assert_eq!(
        e.to_string(),
        "CM0+ region, bank offset 0x00ff00: signature does not match"
    );
}

#[test]
fn truncated_and_oversized_inputs_are_named() {
    let public = boot_key(1).boot_key().unwrap();
    for len in [
        0usize,
        10,
        0x100,
        0xFF00,
        0x10010,
        0x3E7F80,
        0x3E8100,
        BANK_SIZE as usize - 1,
    ] {
        let e = verify_bank(&bank()[..len], &public).expect_err("truncated");
        assert!(
            matches!(e.kind, ErrorKind::Truncated { available, .. } if available as usize == len),
            "len {len:#x}: {e}"
        );
    }
    let mut long = bank().to_vec();
    long.push(0);
    assert_eq!(
        verify_bank(&long, &public).unwrap_err().kind,
        ErrorKind::TooLong { len: BANK_SIZE + 1 }
    );
}

#[test]
fn obj_size_outside_the_region_is_refused_before_hashing() {
    let public = boot_key(1).boot_key().unwrap();
    for (region, obj) in [
        (Region::Cm7_0, u32::MAX),
        (Region::Cm7_0, Region::Cm7_0.full_obj_size() + 1),
        (Region::Cm7_1, 0x8000_0000),
        (Region::Cm0p, 0x1_0000),
    ] {
        let mut bad = bank().to_vec();
        set_obj_size(&mut bad, region, obj);
        let e = verify_region(&bad, region, &public).unwrap_err();
        assert_eq!((e.region, e.offset), (Some(region), region.offset()), "{e}");
        assert!(
            matches!(e.kind, ErrorKind::ObjSizeOutsideRegion { obj_size, .. } if obj_size == obj)
        );
    }
    let mut tiny = bank().to_vec();
    set_obj_size(&mut tiny, Region::Cm7_1, 0x20);
    let e = verify_region(&tiny, Region::Cm7_1, &public).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::ObjSizeTooSmall { .. }), "{e}");
}

#[test]
fn regions_swapped_between_cores_are_refused() {
    let public = boot_key(1).boot_key().unwrap();
    let mut bad = bank().to_vec();
    let h = CySafHeader::for_region(Region::Cm7_1, FirmwareVersion::new(1, 2, 3));
    bad[0x10000..0x10018].copy_from_slice(&h.encode());
    sign_regions(&mut bad, &boot_key(1), SignMode::All).expect_err("CM7_1 header in CM7_0");
    let e = verify_bank(&bad, &public).unwrap_err();
    assert_eq!((e.region, e.offset), (Some(Region::Cm7_0), 0x10014));
}

#[test]
fn seed_style_images_are_refused_with_the_reason() {
    let key = boot_key(1);
    let public = key.boot_key().unwrap();
    // The seed left the record area zero and CM7_1 unsigned.
    let mut seed = bank().to_vec();
    seed[0x18..0x100].fill(0);
    seed[0x3F7F00..0x3F8000].fill(0);
    let e = verify_region(&seed, Region::Cm7_1, &public).unwrap_err();
    assert_eq!((e.kind, e.offset), (ErrorKind::Unsigned, 0x3F7F00));
    // Signing only the unsigned region keeps the (now stale) CM0+ signature...
    let signed = sign_regions(&mut seed, &key, SignMode::UnsignedOnly).unwrap();
    assert_eq!(signed, vec![Region::Cm7_1]);
    assert_eq!(
        verify_bank(&seed, &public).unwrap_err().kind,
        ErrorKind::SignatureMismatch
    );
    // ...and once re-signed, the missing record is what stops it.
    sign_regions(&mut seed, &key, SignMode::All).unwrap();
    let e = verify_bank(&seed, &public).unwrap_err();
    assert_eq!(
        (e.kind, e.offset),
        (ErrorKind::VersionMissing { found: 0 }, 0x18)
    );
}

#[test]
fn bad_version_record_is_refused_even_when_signed() {
    let key = boot_key(1);
    let mut bad = bank().to_vec();
    bad[0x1C] = 9; // format 9
    sign_regions(&mut bad, &key, SignMode::All).unwrap();
    let e = verify_bank(&bad, &key.boot_key().unwrap()).unwrap_err();
    assert_eq!(
        (e.kind, e.offset),
        (ErrorKind::VersionFormat { found: 9 }, 0x1C)
    );
}

#[test]
fn sign_regions_leaves_the_image_untouched_on_error() {
    let mut bad = bank().to_vec();
    set_obj_size(&mut bad, Region::Cm7_1, u32::MAX);
    let before = bad.clone();
    assert!(sign_regions(&mut bad, &boot_key(3), SignMode::All).is_err());
    assert!(bad == before);
}

/// A flash reader over memory that records how reads are cut, and can fail at an address.
struct MemFlash {
    data: Vec<u8>,
    fail_at: Option<u32>,
    largest_read: usize,
}

impl ErrorType for MemFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for MemFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let end = offset as usize + bytes.len();
        if let Some(f) = self.fail_at
            && (offset..end as u32).contains(&f)
        {
            return Err(NorFlashErrorKind::Other);
        }
        self.largest_read = self.largest_read.max(bytes.len());
        bytes.copy_from_slice(
            self.data
                .get(offset as usize..end)
                .ok_or(NorFlashErrorKind::OutOfBounds)?,
        );
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

#[test]
fn flash_reader_gives_the_same_answers_in_bounded_reads() {
    let public = boot_key(1).boot_key().unwrap();
    // The bank at a non-zero base, as the inactive bank sits behind its alias.
    let base = 0x8000u32;
    let mut data = vec![0xFFu8; base as usize];
    data.extend_from_slice(bank());
    let mut flash = MemFlash {
        data,
        fail_at: None,
        largest_read: 0,
    };
    let mut scratch = [0u8; 512];
    let from_flash = verify_bank_in_flash(&mut flash, base, &public, &mut scratch).unwrap();
    assert_eq!(from_flash, verify_bank(bank(), &public).unwrap());
    assert!(
        flash.largest_read <= 512,
        "reads are bounded by the scratch buffer"
    );
    let boot = verify_boot_in_flash(&mut flash, base, &public, &mut []).unwrap();
    assert_eq!(&boot, from_flash.boot());

    flash.data[base as usize + 0x20000] ^= 1;
    let e = verify_bank_in_flash(&mut flash, base, &public, &mut scratch).unwrap_err();
    assert_eq!(
        (e.region, e.kind),
        (Some(Region::Cm7_0), ErrorKind::SignatureMismatch)
    );

    flash.fail_at = Some(base + 0x3E8010);
    flash.data[base as usize + 0x20000] ^= 1;
    let e = verify_bank_in_flash(&mut flash, base, &public, &mut scratch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Flash(NorFlashErrorKind::Other));
    assert_eq!(e.region, Some(Region::Cm7_1));
}

#[test]
fn erased_flash_is_an_invalid_bank_not_a_panic() {
    let public = boot_key(1).boot_key().unwrap();
    let erased = vec![0xFFu8; BANK_SIZE as usize];
    let e = verify_bank(&erased, &public).unwrap_err();
    assert!(matches!(
        e.kind,
        ErrorKind::ObjSizeOutsideRegion {
            obj_size: u32::MAX,
            ..
        }
    ));
    let zero = vec![0u8; BANK_SIZE as usize];
    assert!(matches!(
        verify_bank(&zero, &public).unwrap_err().kind,
        ErrorKind::ObjSizeTooSmall { .. }
    ));
}

/// The activation proof binds both checks to the same bytes in flash: the OTA signature over the
/// file as read back first, then the CM0+ region; each refusal names which check failed.
#[test]
fn written_bank_proof_needs_both_signatures_over_the_flash_bytes() {
    let public = boot_key(1).boot_key().unwrap();
    let code = p256_key(9);
    let file = &bank()[..0x20000];
    let sig = sign_file(&code, file).unwrap();
    let base = 0x8000u32;
    let mut data = vec![0xFFu8; base as usize];
    data.extend_from_slice(bank());
    let mut flash = MemFlash {
        data,
        fail_at: None,
        largest_read: 0,
    };
    let mut scratch = [0u8; 256];
    let key = code.verifying_key();
    let proof =
        verify_written_bank(&mut flash, base, 0x20000, &sig, key, &public, &mut scratch).unwrap();
    assert_eq!(proof.file_len(), 0x20000);
    // The digest the OTA signature was checked over: the file's SHA-256, as read from flash.
    {
        use sha2::Digest;
        let want: [u8; 32] = sha2::Sha256::digest(file).into();
        assert_eq!(proof.file_digest(), &want);
    }
    assert_eq!(
        proof.boot(),
        &verify_boot_in_flash(&mut flash, base, &public, &mut scratch).unwrap()
    );
    assert_eq!(
        *proof.record(),
        *verify_bank(bank(), &public).unwrap().boot().record()
    );
    // The record is a public field (the DBM reads it in place); the counter a confirm trusts is
    // the check's own copy, which changing the field does not move.
    let mut boot = verify_boot_in_flash(&mut flash, base, &public, &mut scratch).unwrap();
    let counter = boot.security_counter();
    assert_eq!(counter, boot.record.security_counter);
    boot.record.security_counter = u32::MAX;
    assert_eq!(boot.security_counter(), counter);

    // Another code-signing key, or one flipped byte in flash (in the file, in CM7_0, which the
    // boot check does not cover): the OTA check refuses.
    let other = p256_key(10);
    let e = verify_written_bank(
        &mut flash,
        base,
        0x20000,
        &sig,
        other.verifying_key(),
        &public,
        &mut scratch,
    )
    .unwrap_err();
    assert_eq!(
        e,
        WrittenBankError::OtaSignature(OtaSignatureError::Mismatch)
    );
    flash.data[base as usize + 0x1F000] ^= 1;
    let e = verify_written_bank(&mut flash, base, 0x20000, &sig, key, &public, &mut scratch)
        .unwrap_err();
    assert_eq!(
        e,
        WrittenBankError::OtaSignature(OtaSignatureError::Mismatch)
    );
    flash.data[base as usize + 0x1F000] ^= 1;

    // A file signed as it is, but the boot key refuses its CM0+ region.
    let e = verify_written_bank(
        &mut flash,
        base,
        0x20000,
        &sig,
        key,
        &boot_key(2).boot_key().unwrap(),
        &mut scratch,
    )
    .unwrap_err();
    assert!(
        matches!(e, WrittenBankError::Boot(b) if b.kind == ErrorKind::SignatureMismatch),
        "{e:?}"
    );

    // A read fault is a flash error, not a refusal of the image.
    flash.fail_at = Some(base + 0x100);
    let e = verify_written_bank(&mut flash, base, 0x20000, &sig, key, &public, &mut scratch)
        .unwrap_err();
    assert_eq!(e, WrittenBankError::Flash(NorFlashErrorKind::Other));
}
