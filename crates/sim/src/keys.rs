//! The fixed signing keys of tests, benches and the emulator runs.
//!
//! Fixed rather than generated so every run is the same run (images built from them are
//! byte-identical and cacheable, and the firmware tests of the QEMU harness can embed the
//! matching public key). They are test keys: never provision a real board with them.

use std::sync::OnceLock;

use ferrota_image::p256::ecdsa::{SigningKey, VerifyingKey};
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{BootKey, KeyRing};

/// The scalar of [`boot_signing_key`]: `0x11` repeated, last byte `0x42`.
pub const BOOT_SCALAR: [u8; 32] = {
    let mut s = [0x11u8; 32];
    s[31] = 0x42;
    s
};

/// The scalar of [`boot_signing_key_2`]: `0x22` repeated, last byte `0x43`.
pub const BOOT_SCALAR_2: [u8; 32] = {
    let mut s = [0x22u8; 32];
    s[31] = 0x43;
    s
};

/// The scalar of [`code_signing_key`]: `0x27` repeated, first byte `0x01`.
pub const CODE_SCALAR: [u8; 32] = {
    let mut s = [0x27u8; 32];
    s[0] = 0x01;
    s
};

/// The scalar of [`bench_boot_key`] (the activation cost model and the boot chain's tests).
pub const BENCH_BOOT_SCALAR: [u8; 32] = [0x5A; 32];

/// The boot signing key (ECDSA P-256) of the test boards: the key the DBM and the CM0+ stage
/// check every region against, provisioned into SFlash by [`crate::boot_chain::provision`].
pub fn boot_signing_key() -> &'static BootSigningKey {
    static K: OnceLock<BootSigningKey> = OnceLock::new();
    K.get_or_init(|| {
        BootSigningKey::EcdsaP256(SigningKey::from_slice(&BOOT_SCALAR).expect("valid scalar"))
    })
}

/// The public half of [`boot_signing_key`].
pub fn boot_key() -> &'static BootKey {
    static K: OnceLock<BootKey> = OnceLock::new();
    K.get_or_init(|| {
        boot_signing_key()
            .boot_key()
            .expect("a P-256 signing key has a boot key")
    })
}

/// The second boot signing key of the test boards: the key of boot-key slot 1, the one a fleet
/// rotates to before it revokes slot 0 ([`boot_ring`], `boot_chain::provision_slots`).
pub fn boot_signing_key_2() -> &'static BootSigningKey {
    static K: OnceLock<BootSigningKey> = OnceLock::new();
    K.get_or_init(|| {
        BootSigningKey::EcdsaP256(SigningKey::from_slice(&BOOT_SCALAR_2).expect("valid scalar"))
    })
}

/// The public half of [`boot_signing_key_2`].
pub fn boot_key_2() -> &'static BootKey {
    static K: OnceLock<BootKey> = OnceLock::new();
    K.get_or_init(|| {
        boot_signing_key_2()
            .boot_key()
            .expect("a P-256 signing key has a boot key")
    })
}

/// The ring of a two-slot test board ([`boot_key`] in slot 0, [`boot_key_2`] in slot 1) with
/// the eFuse revocation mask `revoked` (bits above the 4 slots ignored): what the DBM of such a
/// board trusts. One `'static` ring per mask, so an agent can borrow it for a whole run.
pub fn boot_ring(revoked: u8) -> &'static KeyRing<BootKey> {
    static R: [OnceLock<KeyRing<BootKey>>; 16] = [const { OnceLock::new() }; 16];
    let mask = revoked & KeyRing::<BootKey>::ALL;
    R[usize::from(mask)].get_or_init(|| {
        KeyRing::new(
            [
                Some(boot_key().clone()),
                Some(boot_key_2().clone()),
                None,
                None,
            ],
            mask,
        )
        .expect("two P-256 keys make a ring")
    })
}

/// The code-signing key (ECDSA P-256) of OTA files: the agent pins its public half.
pub fn code_signing_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_slice(&CODE_SCALAR).expect("valid scalar"))
}

/// The public half of [`code_signing_key`].
pub fn code_verifying_key() -> VerifyingKey {
    *code_signing_key().verifying_key()
}

/// The boot key of the activation cost model and the boot chain's own tests (fixed, so the
/// run is deterministic).
pub fn bench_boot_key() -> BootSigningKey {
    BootSigningKey::EcdsaP256(SigningKey::from_slice(&BENCH_BOOT_SCALAR).expect("valid scalar"))
}

/// The boot key of the `verify` bench (`ferrota bench`: verifying a whole bank).
pub fn verify_bench_boot_key() -> BootSigningKey {
    BootSigningKey::EcdsaP256(SigningKey::from_slice(&[0x42; 32]).expect("valid scalar"))
}

/// The code-signing key the simulated fleet of `ferrota bench` pins.
pub fn fleet_code_signing_key() -> SigningKey {
    SigningKey::from_slice(&[0x17; 32]).expect("valid scalar")
}

/// A code-signing key nobody pins: an OTA file signed with it must be refused.
pub fn unpinned_code_signing_key() -> SigningKey {
    SigningKey::from_slice(&[0x29; 32]).expect("valid scalar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_scalars_are_valid_and_distinct() {
        let mut all = vec![
            BOOT_SCALAR,
            BOOT_SCALAR_2,
            CODE_SCALAR,
            BENCH_BOOT_SCALAR,
            [0x42; 32],
            [0x17; 32],
            [0x29; 32],
        ];
        // The #20 trust keys (crate::trust) are fixed keys too.
        all.extend(crate::trust::ROOT_SCALARS);
        all.extend(crate::trust::RELEASE_SCALARS);
        all.extend(crate::trust::TIMESTAMP_SCALARS);
        for s in &all {
            assert!(SigningKey::from_slice(s).is_ok());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "every fixed key is a different key");
        assert_ne!(boot_key(), boot_key_2());
        assert_eq!(boot_ring(0b1_0011).revoked(), 0b0011);
        assert!(std::ptr::eq(boot_ring(1), boot_ring(1)));
    }
}
