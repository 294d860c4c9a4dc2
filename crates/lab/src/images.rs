//! Demo and test images: bank images packed from small generated CM0+/CM7 payloads, signed
//! with a boot key, with an OTA signature (code-signing key) — what `ferrota image pack` and
//! `ferrota image sign-ota` make from real builds. The recipe is
//! `ferrota_sim::images::signed_ota_file`, shared with the agent's test images.

use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, VersionRecord};

use ferrota_sim::boot_chain::BANK_IMAGE_SIZE;
use ferrota_sim::images;

/// The board the demo images are built for.
pub const BOARD: &str = "KIT_T2G-B-H_LITE";
/// OTA file size of a demo image: up to the end of the CM7_1 region's signature (a whole bank, 1016
/// blocks of 4 KB).
pub const IMAGE_LEN: usize = BANK_IMAGE_SIZE;

/// A built image.
#[derive(Debug, Clone)]
pub struct DemoImage {
    /// Its version.
    pub version: FirmwareVersion,
    /// Its anti-rollback counter.
    pub counter: u32,
    /// The OTA file (what the stream serves).
    pub file: Vec<u8>,
    /// Base64 of the DER OTA signature (`sig-sha256-ecdsa`).
    pub signature: String,
}

impl DemoImage {
    /// The file padded with 0xFF to a whole bank, for a debugger's `program_bank`.
    pub fn bank(&self) -> Vec<u8> {
        let mut b = self.file.clone();
        b.resize(BANK_IMAGE_SIZE, 0xFF);
        b
    }
}

/// How to damage an image (after both signatures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Untouched.
    None,
    /// One CM7_0 byte flipped after the OTA signature: the OTA signature no longer matches.
    AfterSigning,
}

/// Builds an image of `version` with anti-rollback `counter`.
pub fn build(
    boot_key: &BootSigningKey,
    code_key: &SigningKey,
    version: FirmwareVersion,
    counter: u32,
    tamper: Tamper,
) -> Result<DemoImage, String> {
    let record = record(version, counter);
    let tamper = match tamper {
        Tamper::None => images::Tamper::None,
        Tamper::AfterSigning => images::Tamper::AfterOtaSignature,
    };
    let images::SignedFile { file, signature } =
        images::signed_ota_file(boot_key, code_key, record, IMAGE_LEN, tamper)
            .map_err(|e| e.to_string())?;
    Ok(DemoImage {
        version,
        counter,
        file,
        signature,
    })
}

/// Builds release `version` (anti-rollback `counter`) of `base`: `base`'s code with a small
/// fix ([`images::RELEASE_EDIT`] bytes), signed anew. What a delta from `base` is made for.
pub fn build_release(
    boot_key: &BootSigningKey,
    code_key: &SigningKey,
    base: &DemoImage,
    version: FirmwareVersion,
    counter: u32,
) -> Result<DemoImage, String> {
    let images::SignedFile { file, signature } = images::signed_ota_release(
        boot_key,
        code_key,
        &record(base.version, base.counter),
        record(version, counter),
        IMAGE_LEN,
    )
    .map_err(|e| e.to_string())?;
    Ok(DemoImage {
        version,
        counter,
        file,
        signature,
    })
}

fn record(version: FirmwareVersion, counter: u32) -> VersionRecord {
    VersionRecord {
        version,
        security_counter: counter,
        hardware: HardwareId::new(BOARD).expect("board id"),
        flags: 0,
    }
}
