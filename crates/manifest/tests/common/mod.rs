//! Fixed test keys (deterministic scalars, as `ferrota-sim`'s keys.rs makes them) and a root
//! chain built from them. Test keys only: never provision a board with them.
#![allow(dead_code)]

use std::sync::OnceLock;

use ferrota_manifest::build::{self, KeyFile};
use ferrota_manifest::p256::ecdsa::SigningKey;
use ferrota_manifest::{Role, TrustedRoot};

/// Scalar `n` repeated with a distinct last byte: one fixed key per (family, index).
const fn scalar(fill: u8, last: u8) -> [u8; 32] {
    let mut s = [fill; 32];
    s[31] = last;
    s
}

fn key(fill: u8, last: u8) -> SigningKey {
    SigningKey::from_slice(&scalar(fill, last)).expect("valid scalar")
}

/// Root keys 0..5.
pub fn root(i: usize) -> &'static SigningKey {
    static K: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &K.get_or_init(|| (0..5).map(|i| key(0x31, 0x10 + i as u8)).collect())[i]
}

/// Release keys 0..2.
pub fn release(i: usize) -> &'static SigningKey {
    static K: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &K.get_or_init(|| (0..2).map(|i| key(0x42, 0x20 + i as u8)).collect())[i]
}

/// Timestamp keys 0..2.
pub fn timestamp(i: usize) -> &'static SigningKey {
    static K: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &K.get_or_init(|| (0..2).map(|i| key(0x53, 0x30 + i as u8)).collect())[i]
}

/// A key no root lists.
pub fn attacker() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| key(0x66, 0x66))
}

pub fn kf(k: &SigningKey, roles: u8) -> KeyFile {
    KeyFile {
        roles,
        key: *k.verifying_key(),
    }
}

pub const R: u8 = Role::Root as u8;
pub const REL: u8 = Role::Release as u8;
pub const TS: u8 = Role::Timestamp as u8;

/// Root v1: root keys 0,1,2 (threshold 2), release 0, timestamp 0.
pub fn keys_v1() -> Vec<KeyFile> {
    vec![
        kf(root(0), R),
        kf(root(1), R),
        kf(root(2), R),
        kf(release(0), REL),
        kf(timestamp(0), TS),
    ]
}

pub fn anchor_doc() -> Vec<u8> {
    build::root_doc(1, 1_000, &keys_v1(), 2, 0, &[root(0), root(1)])
}

pub fn anchor() -> TrustedRoot {
    TrustedRoot::from_anchor(&anchor_doc()).expect("anchor verifies")
}

/// Root v2: root key 2 replaced by root key 3, release 0 → release 1 (rotation), threshold 2.
pub fn keys_v2() -> Vec<KeyFile> {
    vec![
        kf(root(0), R),
        kf(root(1), R),
        kf(root(3), R),
        kf(release(1), REL),
        kf(timestamp(0), TS),
    ]
}

/// Root v2, signed by root keys 0 and 1 (old threshold) and 0, 3 (new: 0 counts for both).
pub fn root_v2() -> Vec<u8> {
    build::root_doc(2, 2_000, &keys_v2(), 2, 0b1, &[root(0), root(1), root(3)])
}

/// Root v3: timestamp 0 → timestamp 1, threshold 3 of root 0, 1, 3.
pub fn keys_v3() -> Vec<KeyFile> {
    vec![
        kf(root(0), R),
        kf(root(1), R),
        kf(root(3), R),
        kf(release(1), REL),
        kf(timestamp(1), TS),
    ]
}

pub fn root_v3() -> Vec<u8> {
    build::root_doc(3, 3_000, &keys_v3(), 3, 0b1, &[root(0), root(1), root(3)])
}
