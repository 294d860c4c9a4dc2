//! Demo and test images: bank images packed from small generated CM0+/CM7 payloads, signed
//! with a boot key, with an OTA signature (code-signing key) — what `ferrota image pack` and
//! `ferrota image sign-ota` make from real builds.

use ferrota_image::build::{BankBuilder, sample_build, sample_bytes};
use ferrota_image::ota::sign_file;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::{BootSigningKey, SignMode, sign_regions};
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

use ferrota_sim::boot_chain::BANK_IMAGE_SIZE;

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
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let record = VersionRecord {
        version,
        security_counter: counter,
        hardware: HardwareId::new(BOARD).expect("board id"),
        flags: 0,
    };
    let seed = u64::from(version.0) ^ (u64::from(counter) << 40);
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x2000, seed))
        .map_err(|x| e(&x))?;
    b.add(Region::Cm7_0, &sample_build(Region::Cm7_0, 0x2000, seed))
        .map_err(|x| e(&x))?;
    b.add(Region::Cm7_1, &sample_build(Region::Cm7_1, 0x400, seed))
        .map_err(|x| e(&x))?;
    let mut bank = b.finish(boot_key).map_err(|x| e(&x))?;
    // Shrink CM7_0's signed area and re-sign, so verifying a bank is cheap.
    let at = Region::Cm7_0.offset() as usize;
    bank[at..at + 4].copy_from_slice(&0x3000u32.to_le_bytes());
    sign_regions(&mut bank, boot_key, SignMode::All).map_err(|x| e(&x))?;
    // Unsigned filler after CM7_0's signature, so every block differs.
    let (from, to) = (0x1_4000usize, Region::Cm7_1.offset() as usize);
    bank[from..to].copy_from_slice(&sample_bytes(seed ^ 0x5555, to - from));
    bank.truncate(IMAGE_LEN);
    let sig = sign_file(code_key, &bank).expect("P-256 signing");
    if tamper == Tamper::AfterSigning {
        bank[0x20_0000] ^= 0x01;
    }
    let mut out = [0u8; 96];
    let signature = sig.to_base64(&mut out).to_string();
    Ok(DemoImage {
        version,
        file: bank,
        signature,
    })
}
