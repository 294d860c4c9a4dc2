//! Signed update metadata for Ferrota (issue #20): crate docs are written below the code.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod build;
mod cbor;
mod cose;
pub mod error;
pub mod manifest;
pub mod root;
pub mod store;
pub mod timestamp;

pub use error::{Doc, TrustError};
pub use manifest::{Bundle, VerifiedManifest, parse_bundle, verify_envelope};
pub use root::{Role, RootKey, TrustedRoot, walk_roots};
pub use store::check_sequence;
pub use timestamp::{Timestamp, peek_timestamp_root, verify_timestamp};

pub use error::{
    SUB_EXPIRED, SUB_MANIFEST, SUB_METADATA, SUB_MISMATCH, SUB_ROOT, SUB_SEQUENCE, SUB_SIGNER,
    SUB_STALE, SUB_TIMESTAMP,
};

pub use p256;

use sha2::{Digest, Sha256};

/// The OTA `fileType` of the metadata file (the SUIT envelope) in a job document.
pub const MANIFEST_FILE_TYPE: u8 = 142;
/// The most keys a root document lists.
pub const MAX_ROOT_KEYS: usize = 5;
/// The most signatures a root document carries (more are refused unread).
pub const MAX_SIGNATURES: usize = 8;
/// The most root documents an envelope integrates.
pub const MAX_BUNDLE_ROOTS: usize = 4;

/// A key id: the first 8 bytes of SHA-256 of the key's SEC1 uncompressed encoding.
pub type Kid = [u8; 8];

/// The key id of a P-256 public key given as SEC1 uncompressed bytes (`04‖X‖Y`).
pub fn kid_of(sec1: &[u8; 65]) -> Kid {
    let d = Sha256::digest(sec1);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&d[..8]);
    kid
}

/// An RFC 9562 UUIDv8 made from SHA-256 of `prefix ‖ s` (design D-3; the device needs no SHA-1).
fn uuid8(prefix: &[u8], s: &[u8]) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(prefix)
        .chain_update(s)
        .finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0F) | 0x80;
    u[8] = (u[8] & 0x3F) | 0x80;
    u
}

/// The SUIT class id of a hardware id (the board): `uuid8("ferrota-class\0" ‖ hw)`.
pub fn class_id(hw: &str) -> [u8; 16] {
    uuid8(b"ferrota-class\0", hw.as_bytes())
}

/// The SUIT device id of a thing name: `uuid8("ferrota-thing\0" ‖ thing)`.
pub fn device_id(thing: &str) -> [u8; 16] {
    uuid8(b"ferrota-thing\0", thing.as_bytes())
}

/// The SUIT vendor id of Ferrota: `uuid8("ferrota-vendor\0ferrota")`.
pub fn vendor_id() -> [u8; 16] {
    uuid8(b"ferrota-vendor\0", b"ferrota")
}
