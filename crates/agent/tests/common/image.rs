//! Test images: signed bank images (boot key) with an OTA signature (code-signing key), built
//! once per test binary and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrota_image::build::{BankBuilder, sample_build, sample_bytes};
use ferrota_image::ota::sign_file;
use ferrota_image::sign::{SignMode, sign_regions};
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

pub const BOARD: &str = "KIT_T2G-B-H_LITE";
/// The seed's image size: a whole bank.
pub const FULL: u32 = 4_161_536;
/// A shrunken image: the CM0+ region plus 192 KB (256 KB in all).
pub const SMALL: u32 = 0x4_0000;

pub use ferrota_sim::keys::{boot_key, boot_signing_key, code_signing_key, code_verifying_key};

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    pub version: FirmwareVersion,
    pub counter: u32,
    pub board: &'static str,
    pub len: u32,
    /// One CM0+ byte changed after the boot signing (the OTA signature is over the result).
    pub tamper: bool,
}

impl Spec {
    pub fn new(minor: u8, counter: u32) -> Self {
        Spec {
            version: FirmwareVersion::new(1, minor, 0),
            counter,
            board: BOARD,
            len: SMALL,
            tamper: false,
        }
    }
    pub fn len(mut self, len: u32) -> Self {
        self.len = len;
        self
    }
    pub fn tamper_cm0p(mut self) -> Self {
        self.tamper = true;
        self
    }
    pub fn board(mut self, b: &'static str) -> Self {
        self.board = b;
        self
    }
}

/// A built image: the file the stream serves and its `sig-sha256-ecdsa` text.
#[derive(Debug)]
pub struct TestImage {
    pub spec: Spec,
    pub file: Vec<u8>,
    pub signature: String,
}

type Cache = Mutex<HashMap<Spec, Arc<TestImage>>>;

pub fn image(spec: Spec) -> Arc<TestImage> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(i) = cache.lock().unwrap().get(&spec) {
        return i.clone();
    }
    let img = Arc::new(build(spec));
    cache.lock().unwrap().insert(spec, img.clone());
    img
}

fn build(spec: Spec) -> TestImage {
    let record = VersionRecord {
        version: spec.version,
        security_counter: spec.counter,
        hardware: HardwareId::new(spec.board).unwrap(),
        flags: 0,
    };
    let seed = u64::from(spec.version.0) ^ u64::from(spec.counter) << 40;
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x2000, seed))
        .unwrap();
    b.add(Region::Cm7_0, &sample_build(Region::Cm7_0, 0x2000, seed))
        .unwrap();
    b.add(Region::Cm7_1, &sample_build(Region::Cm7_1, 0x400, seed))
        .unwrap();
    let mut bank = b.finish(boot_signing_key()).unwrap();
    // Shrink CM7_0's signed area and re-sign, so verifying a bank is cheap.
    let at = Region::Cm7_0.offset() as usize;
    bank[at..at + 4].copy_from_slice(&0x3000u32.to_le_bytes());
    sign_regions(&mut bank, boot_signing_key(), SignMode::All).unwrap();
    // Unsigned filler after CM7_0's signature, so every block differs.
    let fill_from = 0x1_4000usize;
    let fill_to = (spec.len as usize).min(Region::Cm7_1.offset() as usize);
    if fill_to > fill_from {
        let p = sample_bytes(seed ^ 0x5555, fill_to - fill_from);
        bank[fill_from..fill_to].copy_from_slice(&p);
    }
    if spec.tamper {
        bank[0x800] ^= 1;
    }
    bank.truncate(spec.len as usize);
    let sig = sign_file(code_signing_key(), &bank).unwrap();
    let mut out = [0u8; 96];
    let signature = sig.to_base64(&mut out).to_string();
    TestImage {
        spec,
        file: bank,
        signature,
    }
}
