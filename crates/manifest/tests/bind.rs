//! `bind`: the written bank's activation proof against the verified manifest (design §4.1 step 8).
//! The proof comes from `ferrota_image::verify::verify_written_bank` over a real, boot-signed
//! bank image in a memory flash, so the digest compared is the one the OTA check read back.

mod common;

use common::*;
use embedded_storage::nor_flash::{ErrorType, NorFlashErrorKind, ReadNorFlash};
use ferrota_image::build::{BankBuilder, sample_build};
use ferrota_image::ota::sign_file;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::{BootSigningKey, SignMode, sign_regions};
use ferrota_image::verify::{BankVerified, verify_written_bank};
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};
use ferrota_manifest::build::{self, ManifestSpec};
use ferrota_manifest::{
    SUB_MISMATCH, TrustError, VerifiedManifest, bind, parse_bundle, verify_envelope,
};

struct Flash(Vec<u8>);

impl ErrorType for Flash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = offset as usize;
        let src = self
            .0
            .get(at..at + bytes.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

fn boot_key() -> BootSigningKey {
    BootSigningKey::EcdsaP256(SigningKey::from_slice(&[0x11; 32]).unwrap())
}

fn code_key() -> SigningKey {
    SigningKey::from_slice(&[0x27; 32]).unwrap()
}

/// A small boot-signed image (CM0+ and a shrunk CM7_0, as `ferrota-sim`'s OTA images), the file
/// being its first 0x14000 bytes.
fn image(minor: u8, board: &str) -> Vec<u8> {
    let record = VersionRecord {
        version: FirmwareVersion::new(1, minor, 0),
        security_counter: u32::from(minor),
        hardware: HardwareId::new(board).unwrap(),
        flags: 0,
    };
    let seed = u64::from(minor);
    let key = boot_key();
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x2000, seed))
        .unwrap();
    b.add(Region::Cm7_0, &sample_build(Region::Cm7_0, 0x2000, seed))
        .unwrap();
    let mut bank = b.finish(&key).unwrap();
    let at = Region::Cm7_0.offset() as usize;
    bank[at..at + 4].copy_from_slice(&0x3000u32.to_le_bytes());
    sign_regions(&mut bank, &key, SignMode::All).unwrap();
    bank.truncate(0x14000);
    bank
}

/// The activation proof of `file` written at the start of a bank.
fn proof(file: &[u8]) -> BankVerified {
    let sig = sign_file(&code_key(), file).unwrap();
    let mut flash = Flash(file.to_vec());
    verify_written_bank(
        &mut flash,
        0,
        file.len() as u32,
        &sig,
        code_key().verifying_key(),
        &boot_key().boot_key().unwrap(),
        &mut [0u8; 512],
    )
    .expect("the written bank verifies")
}

fn manifest(spec: &ManifestSpec) -> VerifiedManifest {
    let file = build::envelope(spec, 6, 0, None, release(0), &[]);
    verify_envelope(&parse_bundle(&file).unwrap(), &anchor()).unwrap()
}

const BOARD: &str = "KIT_T2G-B-H_LITE";

#[test]
fn binds_the_image_the_manifest_names() {
    let file = image(2, BOARD);
    let spec = ManifestSpec::from_bank_image(&file).unwrap();
    let p = proof(&file);
    assert_eq!(p.file_digest(), &spec.image_digest);
    assert!(bind(&p, &manifest(&spec)).is_ok());
}

#[test]
fn refuses_another_image() {
    let a = image(2, BOARD);
    let b = image(3, BOARD);
    let m = manifest(&ManifestSpec::from_bank_image(&b).unwrap());
    let e = bind(&proof(&a), &m).unwrap_err();
    assert_eq!(e, TrustError::ImageMismatch);
    assert_eq!(e.sub(), SUB_MISMATCH);
    assert_eq!(SUB_MISMATCH, 10);
    // Another board's image of the same version.
    let other = image(2, "KIT_T2G_OTHER");
    let m = manifest(&ManifestSpec::from_bank_image(&other).unwrap());
    assert_eq!(bind(&proof(&a), &m).unwrap_err(), TrustError::ImageMismatch);
}

/// A named change to a manifest's facts.
type Edit = (&'static str, fn(&mut ManifestSpec));

/// Each fact the proof knows, changed alone in a manifest that otherwise names the image: a
/// release key that signs facts contradicting its own image is refused too.
#[test]
fn refuses_each_contradicting_fact() {
    let file = image(2, BOARD);
    let p = proof(&file);
    let good = ManifestSpec::from_bank_image(&file).unwrap();
    let edits: [Edit; 6] = [
        ("size", |s| s.image_size -= 1),
        ("digest", |s| s.image_digest[0] ^= 1),
        ("version", |s| s.version = FirmwareVersion::new(1, 9, 0)),
        ("counter", |s| s.security_counter += 1),
        ("class", |s| {
            s.class_id = ferrota_manifest::class_id("OTHER")
        }),
        ("cm0+ region", |s| s.region_digests[0][31] ^= 1),
    ];
    for (what, edit) in edits {
        let mut s = good.clone();
        edit(&mut s);
        assert_eq!(
            bind(&p, &manifest(&s)).unwrap_err(),
            TrustError::ImageMismatch,
            "{what}"
        );
    }
    // The CM7 digests are not part of the activation proof (the trial boot checks them).
    let mut s = good.clone();
    s.region_digests[1][0] ^= 1;
    assert!(bind(&p, &manifest(&s)).is_ok());
}
