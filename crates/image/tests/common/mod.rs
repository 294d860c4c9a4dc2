//! Fixtures shared by the image tests: fixed keys and seeded firmware payloads, so every run
//! builds the same images (as mcuboot's simulator seeds its images).
#![allow(dead_code)]

use std::sync::OnceLock;

use ferrota_image::build::{BankBuilder, Segment};
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

/// A deterministic P-256 key from a fixed scalar (`seed` picks one of several).
pub fn p256_key(seed: u8) -> SigningKey {
    let mut scalar = [0x11u8; 32];
    scalar[31] = seed.max(1);
    SigningKey::from_slice(&scalar).expect("fixed scalar is a valid P-256 key")
}

pub fn boot_key(seed: u8) -> BootSigningKey {
    BootSigningKey::EcdsaP256(p256_key(seed))
}

pub fn rsa_key() -> BootSigningKey {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let pem = include_str!("../data/rsa2048-test-key.pem");
    let key = rsa::PrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| {
            use rsa::pkcs8::DecodePrivateKey;
            rsa::PrivateKey::from_pkcs8_pem(pem)
        })
        .expect("test RSA key parses");
    BootSigningKey::Rsa2048(key)
}

/// Seeded pseudo-random bytes, standing in for code.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    ferrota_image::build::sample_bytes(seed, len)
}

pub fn record(version: FirmwareVersion, counter: u32) -> VersionRecord {
    VersionRecord {
        version,
        security_counter: counter,
        hardware: HardwareId::new("KIT_T2G-B-H_LITE").expect("valid id"),
        flags: 0,
    }
}

/// A build for a region: a vector table at +0x100 and `code_len` bytes of code after it.
pub fn core_build(region: Region, code_len: usize) -> Vec<Segment> {
    ferrota_image::build::sample_build(region, code_len, 7)
}

pub fn build_bank(key: &BootSigningKey, record: VersionRecord, with_cm7_1: bool) -> Vec<u8> {
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &core_build(Region::Cm0p, 0x3000))
        .expect("cm0p fits");
    b.add(Region::Cm7_0, &core_build(Region::Cm7_0, 0x40000))
        .expect("cm7_0 fits");
    if with_cm7_1 {
        b.add(Region::Cm7_1, &core_build(Region::Cm7_1, 0x800))
            .expect("cm7_1 fits");
    }
    b.finish(key).expect("signing works")
}

/// The standard signed bank (P-256 key 1, version 1.2.3, counter 5, CM7_1 present), built once.
pub fn bank() -> &'static [u8] {
    static BANK: OnceLock<Vec<u8>> = OnceLock::new();
    BANK.get_or_init(|| build_bank(&boot_key(1), record(FirmwareVersion::new(1, 2, 3), 5), true))
}
