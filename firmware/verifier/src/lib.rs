//! Boot-signature verifiers for the firmware, behind ferrota-image's [`BootVerifier`] hook.
//!
//! * [`CompactKey`]: ECDSA P-256 over RustCrypto's `p256` field, scalar and point arithmetic
//!   (the same audited arithmetic [`BootKey`] uses), with the double-scalar multiplication
//!   `u1·G + u2·Q` done by Shamir's trick (one doubling per bit, one addition of G, Q or G+Q)
//!   instead of `p256`'s interleaved width-5 wNAF. The wNAF tables and their copies make the
//!   verify frame ~7 KB on thumbv6m; this one needs four points. It is the DBM's verifier on
//!   the CM0+ (ARMv6-M cannot run the Cortex-M4 assembly below). It accepts exactly what
//!   [`BootKey`] accepts: the slot rules, `r, s ∈ [1, n-1]` (`Signature::from_slice`), the
//!   digest reduced mod n as `ecdsa::hazmat::bytes2scalar` does, the point at infinity refused
//!   (its x is 0 and r is not), `x(R) mod n == r`. The host test `tests/equivalence.rs` checks
//!   it against `BootKey` on valid, tampered and out-of-range signatures.
//! * [`AsmKey`] (feature `asm-p256`, thumbv7em only): the `p256-cortex-m4` assembly P-256
//!   (UMAAL-based field arithmetic). The signature bytes get the same checks as above before the
//!   assembly sees them (its own `Signature::from_untagged_bytes` checks the range of r twice and
//!   never of s, so it is not used).
//!
//! [`sha256`]: a SHA-256 with an unrolled compression written for ARMv7-M, measured against
//! RustCrypto's `sha2` by `cm7-verify` (ferrota-image's verify itself hashes with `sha2`).
//!
//! An RSA key is delegated to [`BootKey`] unchanged (on the MCU: `Unsupported`).

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{ArrayEncoding, U256, const_monty_params};
use ferrota_image::BootKey;
use ferrota_image::scheme::{BootVerifier, SLOT, Scheme, SignatureFault};
use ferrota_image::sflash_key::{KeyObjectError, RawKeyObject, parse_key_object_raw};
use p256::ecdsa::Signature;
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::{Invert, Reduce};
use p256::elliptic_curve::point::AffineCoordinates;
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

pub mod sha256;
mod tiny;
pub use tiny::TinyKey;

/// The slot rules every ECDSA verifier shares: all-zero is unsigned, bytes after `r ‖ s` must be
/// zero, `r` and `s` must be in `[1, n-1]`.
fn ecdsa_slot(slot: &[u8; SLOT]) -> Result<Signature, SignatureFault> {
    if slot.iter().all(|&b| b == 0) {
        return Err(SignatureFault::Unsigned);
    }
    if slot[64..].iter().any(|&b| b != 0) {
        return Err(SignatureFault::Malformed);
    }
    Signature::from_slice(&slot[..64]).map_err(|_| SignatureFault::Malformed)
}

/// ECDSA P-256 with a small stack: see the crate docs.
#[derive(Debug, Clone, Copy)]
pub struct CompactKey<'k> {
    key: &'k BootKey,
}

impl<'k> CompactKey<'k> {
    /// Verifies with `key`'s scheme; an ECDSA key goes through [`verify_prehashed`].
    pub const fn new(key: &'k BootKey) -> Self {
        CompactKey { key }
    }
}

impl BootVerifier for CompactKey<'_> {
    fn scheme(&self) -> Scheme {
        self.key.scheme()
    }

    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        match self.key {
            BootKey::EcdsaP256(vk) => {
                let sig = ecdsa_slot(slot)?;
                if verify_prehashed(vk.as_affine(), digest, &sig) {
                    Ok(())
                } else {
                    Err(SignatureFault::Mismatch)
                }
            }
            other => other.verify_digest(digest, slot),
        }
    }
}

/// ECDSA verification (SEC 1 §4.1.4) of `sig` over the 32-byte digest `z` under `q`.
///
/// `sig`'s scalars are non-zero and below n by construction (`Signature`); P-256 does not
/// require low s (as `ecdsa`'s `NORMALIZE_S = false`).
#[inline(never)]
pub fn verify_prehashed(q: &AffinePoint, z: &[u8; 32], sig: &Signature) -> bool {
    let (r, s) = sig.split_scalars();
    // bytes2scalar for a 32-byte digest: big-endian U256, one conditional subtraction of n.
    let z = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*z));
    let s_inv: Scalar = *s.invert_vartime();
    let u1 = mul_mod_n(&z, &s_inv);
    let u2 = mul_mod_n(&r, &s_inv);
    let x = shamir(&u1, &u2, q).to_affine().x();
    // The point at infinity has x = 0 here, and r is never 0.
    *r == <Scalar as Reduce<FieldBytes>>::reduce(&x)
}

const_monty_params!(
    Order,
    U256,
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    "The order n of P-256's base point"
);

/// `a · b mod n` by Montgomery multiplication: the generic `mul_montgomery_form` that the field
/// arithmetic already links, instead of `Scalar`'s `Mul` (a 4 KB Barrett reduction on thumbv6m).
fn mul_mod_n(a: &Scalar, b: &Scalar) -> U256 {
    type ModN = ConstMontyForm<Order, { U256::LIMBS }>;
    let m = |x: &Scalar| ModN::new(&U256::from_be_byte_array(x.to_bytes()));
    (m(a) * m(b)).retrieve()
}

/// `a·G + b·Q` (a, b < n), variable time (verification handles public values only).
#[inline(never)]
fn shamir(a: &U256, b: &U256, q: &AffinePoint) -> ProjectivePoint {
    let g = AffinePoint::GENERATOR;
    let gq = ProjectivePoint::GENERATOR + q;
    let mut acc = ProjectivePoint::IDENTITY;
    for i in (0..256).rev() {
        acc = acc.double();
        match (a.bit_vartime(i), b.bit_vartime(i)) {
            (false, false) => {}
            (true, false) => acc += &g,
            (false, true) => acc += q,
            (true, true) => acc += &gq,
        }
    }
    acc
}

/// The DBM's verifier for the SFlash key object, without RustCrypto's arithmetic: [`TinyKey`]
/// for a P-256 object; for an RSA-2048 object (the ROM's scheme, which the DBM does not check in
/// software) every signed slot is `Unsupported`, as `BootKey` answers without its `rsa` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SflashKey {
    /// ECDSA P-256, the point checked on the curve.
    EcdsaP256(TinyKey),
    /// A scheme this build cannot verify.
    Unsupported(Scheme),
}

impl SflashKey {
    /// Reads the key object as `parse_key_object` does (the same errors for the same bytes),
    /// with [`TinyKey`]'s curve check.
    pub fn from_object(obj: &[u8]) -> Result<SflashKey, KeyObjectError> {
        match parse_key_object_raw(obj)? {
            RawKeyObject::EcdsaP256Unchecked(xy) => TinyKey::from_coordinates(xy)
                .map(SflashKey::EcdsaP256)
                .ok_or(KeyObjectError::BadField(8)),
            RawKeyObject::Rsa2048(_) => Ok(SflashKey::Unsupported(Scheme::Rsa2048)),
        }
    }
}

impl BootVerifier for SflashKey {
    fn scheme(&self) -> Scheme {
        match self {
            SflashKey::EcdsaP256(_) => Scheme::EcdsaP256,
            SflashKey::Unsupported(s) => *s,
        }
    }

    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        match self {
            SflashKey::EcdsaP256(k) => k.verify_digest(digest, slot),
            SflashKey::Unsupported(_) if slot.iter().all(|&b| b == 0) => {
                Err(SignatureFault::Unsigned)
            }
            SflashKey::Unsupported(_) => Err(SignatureFault::Unsupported),
        }
    }
}

#[cfg(all(feature = "asm-p256", target_arch = "arm"))]
pub use asm::AsmKey;

#[cfg(all(feature = "asm-p256", target_arch = "arm"))]
mod asm {
    use super::*;

    /// ECDSA P-256 by the `p256-cortex-m4` assembly. See the crate docs.
    pub struct AsmKey {
        key: p256_cortex_m4::PublicKey,
    }

    impl AsmKey {
        /// The assembly's form of an ECDSA `key` (`None` for an RSA key). The point is checked
        /// on the curve again by the assembly's decoder.
        pub fn new(key: &BootKey) -> Option<Self> {
            let BootKey::EcdsaP256(vk) = key else {
                return None;
            };
            let p = vk.as_affine();
            let mut sec1 = [4u8; 65];
            sec1[1..33].copy_from_slice(&p.x());
            sec1[33..].copy_from_slice(&p.y());
            p256_cortex_m4::PublicKey::from_sec1_bytes(&sec1)
                .ok()
                .map(|key| AsmKey { key })
        }
    }

    impl BootVerifier for AsmKey {
        fn scheme(&self) -> Scheme {
            Scheme::EcdsaP256
        }

        fn verify_digest(
            &self,
            digest: &[u8; 32],
            slot: &[u8; SLOT],
        ) -> Result<(), SignatureFault> {
            ecdsa_slot(slot)?;
            // In range (checked above), so the assembly's decoding cannot fail.
            let sig = p256_cortex_m4::Signature::from_untagged_bytes(&slot[..64])
                .map_err(|_| SignatureFault::Malformed)?;
            if self.key.verify_prehashed(digest, &sig) {
                Ok(())
            } else {
                Err(SignatureFault::Mismatch)
            }
        }
    }
}

#[cfg(feature = "uecc")]
pub use uecc::UeccKey;

#[cfg(feature = "uecc")]
#[allow(unsafe_code)]
mod uecc {
    use super::*;

    /// ECDSA P-256 by micro-ecc (`uECC_verify` on secp256r1). The slot gets the same checks as
    /// [`CompactKey`]'s first, so the verdicts (unsigned / malformed / mismatch) are the same.
    pub struct UeccKey<'k> {
        key: &'k BootKey,
        raw: [u8; 64],
    }

    impl<'k> UeccKey<'k> {
        /// micro-ecc's form of `key` (x ‖ y, big-endian); an RSA key is delegated.
        pub fn new(key: &'k BootKey) -> Self {
            let mut raw = [0u8; 64];
            if let BootKey::EcdsaP256(vk) = key {
                let p = vk.as_affine();
                raw[..32].copy_from_slice(&p.x());
                raw[32..].copy_from_slice(&p.y());
            }
            UeccKey { key, raw }
        }
    }

    impl BootVerifier for UeccKey<'_> {
        fn scheme(&self) -> Scheme {
            self.key.scheme()
        }

        fn verify_digest(
            &self,
            digest: &[u8; 32],
            slot: &[u8; SLOT],
        ) -> Result<(), SignatureFault> {
            match self.key {
                BootKey::EcdsaP256(_) => {
                    ecdsa_slot(slot)?;
                    // SAFETY: micro-ecc reads 64 key bytes, 32 digest bytes, 64 signature
                    // bytes; all are in bounds, and it keeps no pointer.
                    let ok = unsafe {
                        micro_ecc_sys::uECC_verify(
                            self.raw.as_ptr(),
                            digest.as_ptr(),
                            32,
                            slot.as_ptr(),
                            micro_ecc_sys::uECC_secp256r1(),
                        )
                    };
                    if ok == 1 {
                        Ok(())
                    } else {
                        Err(SignatureFault::Mismatch)
                    }
                }
                other => other.verify_digest(digest, slot),
            }
        }
    }
}
