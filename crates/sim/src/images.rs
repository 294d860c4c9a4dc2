//! Bank images built from generated payloads, for tests and the cost model.

use ferrota_image::build::{BankBuilder, BuildError, sample_build, sample_bytes};
use ferrota_image::ota::sign_file;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::scheme::SLOT;
use ferrota_image::sign::{BootSigningKey, SignMode, SignRegionsError, sign_regions};
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

/// A signed bank image of a whole large-sector half (version 1.`counter`.0, no board id) with
/// pseudo-random code filling most of CM7_0, so a copy has real data to move.
pub fn large_bank_image(key: &BootSigningKey, counter: u32) -> Result<Vec<u8>, BuildError> {
    let record = VersionRecord {
        version: FirmwareVersion::new(1, counter as u8, 0),
        security_counter: counter,
        hardware: HardwareId::default(),
        flags: 0,
    };
    let seed = u64::from(counter);
    let code = |region: Region, len: usize| sample_build(region, len, seed);
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &code(Region::Cm0p, 0x8000))?;
    b.add(Region::Cm7_0, &code(Region::Cm7_0, 0x3C_0000))?;
    b.add(Region::Cm7_1, &code(Region::Cm7_1, 0x8000))?;
    b.finish(key)
}

/// What is wrong with a [`test_bank`], if anything: the flaws the boot chain must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Nothing.
    None,
    /// One byte of this region's code changed after signing.
    Tampered(Region),
    /// This region's signature slot zeroed (unsigned, as the seed shipped CM7_1).
    Unsigned(Region),
    /// Signed for another board (hardware id `OTHER_BOARD`).
    OtherBoard,
}

/// What [`test_bank`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TestBank {
    /// The version in the record (the boot tests encode an image's behaviour in its build).
    pub version: FirmwareVersion,
    /// The security counter in the record.
    pub counter: u32,
    /// The board the record names (unless [`Flaw::OtherBoard`]).
    pub board: &'static str,
    /// Seeds the generated code, so images of the same version still differ when asked to.
    pub seed: u64,
    /// CM7_0 keeps its full signed size (0x3D7F00: verification hashes the whole bank);
    /// otherwise it is shrunk to [`SHRUNK_CM7_0`] so verifying is cheap.
    pub full_cm7_0: bool,
    /// What is wrong with it.
    pub flaw: Flaw,
}

/// CM7_0's signed size in a [`test_bank`] without `full_cm7_0`.
pub const SHRUNK_CM7_0: u32 = 0x3000;

/// The small three-region bank of the boot chain's tests and the QEMU decision matrix: 8 KB of
/// [`sample_build`] code in CM0+ and CM7_0, 1 KB in CM7_1 (each with a vector table, so the
/// emulated DBM can jump into it), boot-signed with `key`, then given its [`Flaw`]. One
/// recipe, so the host model and the emulator decide over the same kind of image.
pub fn test_bank(spec: &TestBank, key: &BootSigningKey) -> Result<Vec<u8>, ImageError> {
    let board = if spec.flaw == Flaw::OtherBoard {
        "OTHER_BOARD"
    } else {
        spec.board
    };
    let record = VersionRecord {
        version: spec.version,
        security_counter: spec.counter,
        hardware: HardwareId::new(board).ok_or(ImageError::Board(board))?,
        flags: 0,
    };
    let mut b = BankBuilder::new(record);
    for (region, len) in [
        (Region::Cm0p, 0x2000),
        (Region::Cm7_0, 0x2000),
        (Region::Cm7_1, 0x400),
    ] {
        b.add(region, &sample_build(region, len, spec.seed))?;
    }
    let mut bank = b.finish(key)?;
    if !spec.full_cm7_0 {
        let at = Region::Cm7_0.offset() as usize;
        bank[at..at + 4].copy_from_slice(&SHRUNK_CM7_0.to_le_bytes());
        sign_regions(&mut bank, key, SignMode::All).map_err(ImageError::Sign)?;
    }
    match spec.flaw {
        Flaw::Tampered(r) => bank[(r.offset() + 0x800) as usize] ^= 0x01,
        Flaw::Unsigned(r) => {
            let sig = (r.offset() + r.full_obj_size()) as usize;
            bank[sig..sig + SLOT].fill(0);
        }
        Flaw::None | Flaw::OtherBoard => {}
    }
    Ok(bank)
}

/// A change made to an image while [`signed_ota_file`] builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tamper {
    /// Untouched.
    None,
    /// One CM0+ byte changed after the boot signing; the OTA signature covers the change (the
    /// boot chain refuses the image, the OTA signature check does not).
    Cm0pBeforeOtaSignature,
    /// One CM7_0 byte changed after the OTA signature: the OTA signature no longer matches.
    AfterOtaSignature,
}

/// Why [`signed_ota_file`] could not build an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Packing or the first boot signing failed.
    #[error("bank: {0}")]
    Build(#[from] BuildError),
    /// Re-signing after CM7_0's signed area was shrunk failed.
    #[error("re-signing: {0}")]
    Sign(SignRegionsError),
    /// The board name is no hardware id (printable ASCII, at most 32 bytes).
    #[error("{0:?} is not a hardware id (printable ASCII, at most 32 bytes)")]
    Board(&'static str),
}

/// An OTA file and its signature.
#[derive(Debug, Clone)]
pub struct SignedFile {
    /// The file (the bank image truncated to its length).
    pub file: Vec<u8>,
    /// Base64 of the DER OTA signature (`sig-sha256-ecdsa`).
    pub signature: String,
}

/// Builds a bank image for `record` from generated payloads (seeded by its version and
/// counter), boot-signs it with `boot_key` (CM7_0's signed area shrunk to 0x3000 bytes so a
/// verification is cheap), fills the unsigned space up to CM7_1 so every block differs,
/// truncates it to `len` bytes and signs the file with `code_key`. One recipe for the agent's
/// test images and the lab's demo images.
pub fn signed_ota_file(
    boot_key: &BootSigningKey,
    code_key: &SigningKey,
    record: VersionRecord,
    len: usize,
    tamper: Tamper,
) -> Result<SignedFile, ImageError> {
    let seed = seed_of(&record);
    build_signed(boot_key, code_key, record, seed, false, len, tamper)
}

/// Bytes of CM7_0's code a [`signed_ota_release`] changes (a small fix).
pub const RELEASE_EDIT: usize = 64;

/// A later release of the image [`signed_ota_file`] builds for `base`: the same generated code
/// and filler, [`RELEASE_EDIT`] bytes of CM7_0's code changed, under `record` (its version
/// record, boot signatures and OTA signature are new). What a delta update is for: a release
/// that differs from the running one in a few places, where two [`signed_ota_file`] images of
/// different versions differ everywhere.
pub fn signed_ota_release(
    boot_key: &BootSigningKey,
    code_key: &SigningKey,
    base: &VersionRecord,
    record: VersionRecord,
    len: usize,
) -> Result<SignedFile, ImageError> {
    build_signed(
        boot_key,
        code_key,
        record,
        seed_of(base),
        true,
        len,
        Tamper::None,
    )
}

/// The generator seed of an image's code and filler.
fn seed_of(record: &VersionRecord) -> u64 {
    u64::from(record.version.0) ^ (u64::from(record.security_counter) << 40)
}

fn build_signed(
    boot_key: &BootSigningKey,
    code_key: &SigningKey,
    record: VersionRecord,
    seed: u64,
    edit: bool,
    len: usize,
    tamper: Tamper,
) -> Result<SignedFile, ImageError> {
    let mut cm7_0 = sample_build(Region::Cm7_0, 0x2000, seed);
    if edit && let Some(seg) = cm7_0.first_mut() {
        for b in &mut seg.data[0x1000..0x1000 + RELEASE_EDIT] {
            *b = !*b;
        }
    }
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x2000, seed))?;
    b.add(Region::Cm7_0, &cm7_0)?;
    b.add(Region::Cm7_1, &sample_build(Region::Cm7_1, 0x400, seed))?;
    let mut bank = b.finish(boot_key)?;
    // Shrink CM7_0's signed area and re-sign, so verifying a bank is cheap.
    let at = Region::Cm7_0.offset() as usize;
    bank[at..at + 4].copy_from_slice(&0x3000u32.to_le_bytes());
    sign_regions(&mut bank, boot_key, SignMode::All).map_err(ImageError::Sign)?;
    // Unsigned filler after CM7_0's signature, so every block differs.
    let fill_from = 0x1_4000usize;
    let fill_to = len.min(Region::Cm7_1.offset() as usize);
    if fill_to > fill_from {
        let p = sample_bytes(seed ^ 0x5555, fill_to - fill_from);
        bank[fill_from..fill_to].copy_from_slice(&p);
    }
    if tamper == Tamper::Cm0pBeforeOtaSignature {
        bank[0x800] ^= 1;
    }
    bank.truncate(len);
    let sig = sign_file(code_key, &bank).expect("P-256 signing");
    if tamper == Tamper::AfterOtaSignature {
        bank[0x20_0000] ^= 0x01;
    }
    let mut out = [0u8; 96];
    let signature = sig.to_base64(&mut out).to_string();
    Ok(SignedFile {
        file: bank,
        signature,
    })
}

/// OTA test images: signed bank images (boot key, [`crate::keys::boot_signing_key`]) with an OTA
/// signature (code-signing key, [`crate::keys::code_signing_key`]), built once per process and
/// cached. The agent's tests and benches download them.
pub mod ota {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    use ferrota_image::{FirmwareVersion, HardwareId, VersionRecord};

    use super::{SignedFile, Tamper, signed_ota_file};

    use crate::keys::{boot_signing_key, boot_signing_key_2, code_signing_key};

    /// The board the images are built for.
    pub const BOARD: &str = "KIT_T2G-B-H_LITE";
    /// The seed's image size: a whole bank.
    pub const FULL: u32 = 4_161_536;
    /// A shrunken image: the CM0+ region plus 192 KB (256 KB in all).
    pub const SMALL: u32 = 0x4_0000;

    /// What to build.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Spec {
        /// The version in the record.
        pub version: FirmwareVersion,
        /// The security counter (anti-rollback) in the record.
        pub counter: u32,
        /// The hardware id in the record.
        pub board: &'static str,
        /// The OTA file's length (the bank image truncated to it).
        pub len: u32,
        /// One CM0+ byte changed after the boot signing (the OTA signature is over the result).
        pub tamper: bool,
        /// The boot-key slot whose key signs the regions: 0 = [`boot_signing_key`], 1 =
        /// [`crate::keys::boot_signing_key_2`] (the two slots of a rotated test board).
        pub boot_key_slot: u8,
    }

    impl Spec {
        /// Version 1.`minor`.0 with security counter `counter`, for [`BOARD`], [`SMALL`] bytes.
        pub fn new(minor: u8, counter: u32) -> Self {
            Spec {
                version: FirmwareVersion::new(1, minor, 0),
                counter,
                board: BOARD,
                len: SMALL,
                tamper: false,
                boot_key_slot: 0,
            }
        }
        /// Boot-signed with the key of slot `slot` (0 or 1; panics at build for another slot:
        /// the test boards have keys in slots 0 and 1 only).
        pub fn boot_key_slot(mut self, slot: u8) -> Self {
            self.boot_key_slot = slot;
            self
        }
        /// Another file length.
        pub fn len(mut self, len: u32) -> Self {
            self.len = len;
            self
        }
        /// Changes one CM0+ byte after the boot signing (the OTA signature covers the change).
        pub fn tamper_cm0p(mut self) -> Self {
            self.tamper = true;
            self
        }
        /// Another hardware id in the record.
        pub fn board(mut self, b: &'static str) -> Self {
            self.board = b;
            self
        }
    }

    /// A built image: the file the stream serves and its `sig-sha256-ecdsa` text.
    #[derive(Debug)]
    pub struct TestImage {
        /// What it was built from.
        pub spec: Spec,
        /// The OTA file.
        pub file: Vec<u8>,
        /// Base64 of the DER OTA signature.
        pub signature: String,
    }

    type Cache = Mutex<HashMap<Spec, Arc<TestImage>>>;

    /// The image of `spec`, built and signed once per process.
    pub fn image(spec: Spec) -> Arc<TestImage> {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(i) = cache.lock().expect("image cache").get(&spec) {
            return i.clone();
        }
        let img = Arc::new(build(spec));
        cache.lock().expect("image cache").insert(spec, img.clone());
        img
    }

    fn build(spec: Spec) -> TestImage {
        let record = VersionRecord {
            version: spec.version,
            security_counter: spec.counter,
            hardware: HardwareId::new(spec.board).expect("a valid hardware id"),
            flags: 0,
        };
        let tamper = if spec.tamper {
            Tamper::Cm0pBeforeOtaSignature
        } else {
            Tamper::None
        };
        let boot_key = match spec.boot_key_slot {
            0 => boot_signing_key(),
            1 => boot_signing_key_2(),
            s => panic!("the test boards have boot keys in slots 0 and 1, not {s}"),
        };
        let SignedFile { file, signature } = signed_ota_file(
            boot_key,
            code_signing_key(),
            record,
            spec.len as usize,
            tamper,
        )
        .expect("the test image builds");
        TestImage {
            spec,
            file,
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use ferrota_image::Region;
    use ferrota_image::verify::verify_region;

    use super::ota::{FULL, Spec, image};
    use crate::keys::{boot_key, boot_key_2, boot_ring};

    #[test]
    fn boot_key_slot_picks_the_signing_key() {
        let k1 = image(Spec::new(1, 1).len(FULL).boot_key_slot(1));
        assert!(verify_region(&k1.file, Region::Cm0p, boot_key_2()).is_ok());
        assert!(verify_region(&k1.file, Region::Cm0p, boot_key()).is_err());
        // The ring of a two-slot board takes it until slot 1 is revoked.
        assert!(verify_region(&k1.file, Region::Cm0p, boot_ring(0b0001)).is_ok());
        assert!(verify_region(&k1.file, Region::Cm0p, boot_ring(0b0010)).is_err());
        let k0 = image(Spec::new(1, 1).len(FULL));
        assert!(verify_region(&k0.file, Region::Cm0p, boot_key()).is_ok());
        assert!(verify_region(&k0.file, Region::Cm0p, boot_ring(0b0001)).is_err());
    }
}
