//! Boot signature schemes: how the 256-byte slot after a region's signed bytes is filled.
//!
//! * **ECDSA P-256 / SHA-256** (Ferrota's default): the raw signature `r ‖ s` (32 bytes each,
//!   big-endian, as SEC 1 writes scalars) in the first 64 bytes of the slot; the other 192 bytes
//!   must be zero, so a slot has exactly one encoding of a given signature.
//! * **RSA-2048 PKCS#1 v1.5 / SHA-256**: the T2G ROM's scheme (`Cy_FB_VerifyApplication`,
//!   `cymcuelftool --sign ... RSASSA-PKCS`). The 256 signature bytes are stored **little-endian**
//!   (byte-reversed from PKCS#1's big-endian octet string). The spec could not establish the order
//!   cymcuelftool writes; the SFlash public key *is* stored little-endian, and the ROM's crypto
//!   block works on little-endian words, so Ferrota takes the same convention. This is the one
//!   place that decides it: [`RSA_SIGNATURE_LITTLE_ENDIAN`].
//!
//! Verification is behind the [`BootVerifier`] trait so the MCU can plug in its crypto block or
//! the ROM routine; [`BootKey`] is the software implementation. RSA verification needs the `rsa`
//! feature (it allocates, so it is host-only; on the chip the ROM verifies RSA).

use p256::ecdsa::{Signature, VerifyingKey, signature::hazmat::PrehashVerifier};

use crate::layout::SIGNATURE_SLOT_SIZE;

/// Bytes of a boot signature slot.
pub const SLOT: usize = SIGNATURE_SLOT_SIZE as usize;

/// RSA boot signatures are stored byte-reversed (little-endian) in the slot. See the module docs.
pub const RSA_SIGNATURE_LITTLE_ENDIAN: bool = true;

/// The signature scheme named by the SFlash public-key object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// ECDSA over NIST P-256 with SHA-256; Ferrota's default.
    EcdsaP256,
    /// RSA-2048, PKCS#1 v1.5 padding, SHA-256: the T2G ROM's scheme.
    Rsa2048,
}

impl Scheme {
    /// Name used in messages and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::EcdsaP256 => "ecdsa-p256-sha256",
            Scheme::Rsa2048 => "rsa2048-pkcs1v15-sha256",
        }
    }
}

/// Why a signature slot was refused. The region and offset are added by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    /// The slot is all zero.
    Unsigned,
    /// The slot cannot be parsed under the scheme (or its padding is not zero).
    Malformed,
    /// The signature does not match the digest under the key.
    Mismatch,
    /// This build cannot verify the key's scheme.
    Unsupported,
}

/// Something that can check a boot signature over a region's SHA-256 digest: a software key, the
/// MCU's crypto block, or the ROM routine.
pub trait BootVerifier {
    /// The scheme this verifier checks.
    fn scheme(&self) -> Scheme;
    /// Checks the slot's signature over `digest`.
    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault>;
}

/// An RSA-2048 public key as the SFlash object stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct Rsa2048PublicKey {
    /// The modulus, big-endian.
    pub modulus: [u8; 256],
    /// The public exponent (65537 in every key Infineon's tools make).
    pub exponent: u32,
}

impl core::fmt::Debug for Rsa2048PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Rsa2048PublicKey {{ modulus: {:02x}{:02x}…, exponent: {} }}",
            self.modulus[0], self.modulus[1], self.exponent
        )
    }
}

/// A boot public key in software.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootKey {
    /// ECDSA P-256.
    EcdsaP256(VerifyingKey),
    /// RSA-2048 (verification needs the `rsa` feature).
    Rsa2048(Rsa2048PublicKey),
}

impl BootVerifier for BootKey {
    fn scheme(&self) -> Scheme {
        match self {
            BootKey::EcdsaP256(_) => Scheme::EcdsaP256,
            BootKey::Rsa2048(_) => Scheme::Rsa2048,
        }
    }

    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        if slot.iter().all(|&b| b == 0) {
            return Err(SignatureFault::Unsigned);
        }
        match self {
            BootKey::EcdsaP256(key) => verify_p256(key, digest, slot),
            BootKey::Rsa2048(key) => verify_rsa(key, digest, slot),
        }
    }
}

fn verify_p256(
    key: &VerifyingKey,
    digest: &[u8; 32],
    slot: &[u8; SLOT],
) -> Result<(), SignatureFault> {
    if slot[64..].iter().any(|&b| b != 0) {
        return Err(SignatureFault::Malformed);
    }
    let sig = Signature::from_slice(&slot[..64]).map_err(|_| SignatureFault::Malformed)?;
    key.verify_prehash(digest, &sig)
        .map_err(|_| SignatureFault::Mismatch)
}

#[cfg(feature = "rsa")]
fn verify_rsa(
    key: &Rsa2048PublicKey,
    digest: &[u8; 32],
    slot: &[u8; SLOT],
) -> Result<(), SignatureFault> {
    let public = key.to_rsa().map_err(|_| SignatureFault::Malformed)?;
    let mut sig = *slot;
    if RSA_SIGNATURE_LITTLE_ENDIAN {
        sig.reverse();
    }
    public
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, &sig)
        .map_err(|_| SignatureFault::Mismatch)
}

#[cfg(not(feature = "rsa"))]
fn verify_rsa(_: &Rsa2048PublicKey, _: &[u8; 32], _: &[u8; SLOT]) -> Result<(), SignatureFault> {
    Err(SignatureFault::Unsupported)
}

#[cfg(feature = "rsa")]
impl Rsa2048PublicKey {
    /// The key as the `rsa` crate's type, for host-side verification.
    pub fn to_rsa(&self) -> Result<rsa::PublicKey, rsa::Error> {
        let n = rsa::BoxedUint::from_be_slice_vartime(&self.modulus);
        let e = rsa::BoxedUint::from(u64::from(self.exponent));
        rsa::PublicKey::new(n, e)
    }

    /// The key from the `rsa` crate's type; `None` unless it is exactly 2048 bits with an
    /// exponent that fits 32 bits.
    pub fn from_rsa(key: &rsa::PublicKey) -> Option<Self> {
        use rsa::traits::PublicKeyParts;
        let n = key.n_bytes();
        let e = key.e_bytes();
        if n.len() != 256 || e.len() > 4 {
            return None;
        }
        let mut modulus = [0u8; 256];
        modulus.copy_from_slice(&n);
        let exponent = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        Some(Rsa2048PublicKey { modulus, exponent })
    }
}
