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

/// Number of boot-key slots a [`KeyRing`] holds (slot 0 is the key object the ROM and the
/// single-key path already read; see [`crate::sflash_key::BOOT_KEY_SLOTS`]).
pub const KEY_SLOTS: usize = 4;

/// Why a [`KeyRing`] was refused at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRingError {
    /// No slot holds a key: a ring that can verify nothing is a provisioning error, not a ring.
    Empty,
    /// This slot's scheme differs from the first present slot's. One ring holds one scheme, so
    /// a boot signature slot is read one way only and [`BootVerifier::scheme`] has one answer.
    MixedSchemes {
        /// The slot whose key differs.
        slot: u8,
        /// The ring's scheme (the first present slot's).
        ring: Scheme,
        /// The slot's scheme.
        found: Scheme,
    },
}

impl core::fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            KeyRingError::Empty => f.write_str("boot key ring: no slot holds a key"),
            KeyRingError::MixedSchemes { slot, ring, found } => write!(
                f,
                "boot key ring: slot {slot} holds a {} key in a {} ring (one scheme per ring)",
                found.name(),
                ring.name()
            ),
        }
    }
}

impl core::error::Error for KeyRingError {}

/// Up to [`KEY_SLOTS`] boot keys and the eFuse revocation mask: the DBM's trust after a boot-key
/// rotation.
///
/// It is itself a [`BootVerifier`], so the Dual Bank Manager, the CM0+ stage and the agent take
/// a ring where they took one key and do not change. A signature verifies if it verifies under
/// **any present, non-revoked** slot key, tried in slot order.
///
/// Revocation is one eFuse bit per slot (bit `n` of the mask = slot `n`, see
/// `ferrota_t2g::geometry::EFUSE_KEY_REVOKE_OFFSET`). Fuses only go 0 → 1, so once a slot's bit
/// is blown no write to flash or SFlash makes the ring trust that key again.
///
/// What it defends: a boot key that leaked is no longer trusted once the fleet has moved to a
/// later slot's key and the old slot is revoked, so images the thief signs afterwards are
/// refused on every boot path. What it does not: before the revocation the stolen key is as good
/// as the owner's; and an attacker who can write SFlash before the secure life cycle (or who
/// holds a non-revoked key) is out of scope, as for the single key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing<K> {
    keys: [Option<K>; KEY_SLOTS],
    revoked: u8,
    scheme: Scheme,
}

impl<K: BootVerifier> KeyRing<K> {
    /// A ring of these slots with the revocation mask `revoked` (bit `n` = slot `n`; bits above
    /// [`KEY_SLOTS`] are ignored). Refused if no slot holds a key or the slots mix schemes.
    /// Revoked slots count for both checks: what the ring *holds* is checked, not what it
    /// currently trusts, so revoking a slot never turns a valid ring into an invalid one.
    pub fn new(keys: [Option<K>; KEY_SLOTS], revoked: u8) -> Result<Self, KeyRingError> {
        let mut scheme = None;
        for (slot, k) in keys.iter().enumerate() {
            let Some(k) = k else { continue };
            match scheme {
                None => scheme = Some(k.scheme()),
                Some(ring) if ring != k.scheme() => {
                    return Err(KeyRingError::MixedSchemes {
                        slot: slot as u8,
                        ring,
                        found: k.scheme(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(KeyRing {
            keys,
            revoked: revoked & Self::ALL,
            scheme: scheme.ok_or(KeyRingError::Empty)?,
        })
    }

    /// A ring of one key in slot 0, nothing revoked: the single-key path as a ring.
    pub fn single(key: K) -> Self {
        let scheme = key.scheme();
        KeyRing {
            keys: [Some(key), None, None, None],
            revoked: 0,
            scheme,
        }
    }
}

impl<K> KeyRing<K> {
    /// The mask of every slot.
    pub const ALL: u8 = (1 << KEY_SLOTS) - 1;

    /// The same ring with the slots of `mask` revoked as well (what the ring would trust after
    /// blowing those fuse bits; the revoke guard checks the running image against it).
    pub fn without(&self, mask: u8) -> Self
    where
        K: Clone,
    {
        KeyRing {
            keys: self.keys.clone(),
            revoked: (self.revoked | mask) & Self::ALL,
            scheme: self.scheme,
        }
    }

    /// The revocation mask.
    pub fn revoked(&self) -> u8 {
        self.revoked
    }

    /// The mask of the slots that hold a key (revoked or not).
    pub fn present(&self) -> u8 {
        self.keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_some())
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The mask of the slots the ring trusts: present and not revoked.
    pub fn trusted(&self) -> u8 {
        self.present() & !self.revoked
    }

    /// The key of a slot, revoked or not (`None` if the slot is empty or out of range).
    pub fn slot(&self, slot: usize) -> Option<&K> {
        self.keys.get(slot).and_then(Option::as_ref)
    }

    /// The trusted keys with their slot numbers, in slot order.
    pub fn trusted_keys(&self) -> impl Iterator<Item = (usize, &K)> {
        let revoked = self.revoked;
        self.keys
            .iter()
            .enumerate()
            .filter(move |(i, _)| revoked & (1 << i) == 0)
            .filter_map(|(i, k)| k.as_ref().map(|k| (i, k)))
    }
}

impl<K: BootVerifier> KeyRing<K> {
    /// The first trusted slot whose key verifies the signature (what [`BootVerifier`] answers,
    /// with the slot named: the revoke guard needs to know which keys an image depends on).
    pub fn verifying_slot(
        &self,
        digest: &[u8; 32],
        slot: &[u8; SLOT],
    ) -> Result<usize, SignatureFault> {
        if slot.iter().all(|&b| b == 0) {
            return Err(SignatureFault::Unsigned);
        }
        let mut fault = SignatureFault::Mismatch;
        for (i, k) in self.trusted_keys() {
            match k.verify_digest(digest, slot) {
                Ok(()) => return Ok(i),
                // A slot that cannot be parsed is malformed under every key of the scheme;
                // keep the most specific fault, but never stop early on a mismatch.
                Err(SignatureFault::Mismatch) => {}
                Err(e) => fault = e,
            }
        }
        Err(fault)
    }
}

impl<K: BootVerifier> BootVerifier for KeyRing<K> {
    /// The one scheme of the ring (checked at [`KeyRing::new`]).
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `Ok` if any present, non-revoked slot's key verifies; `Unsigned` for an all-zero slot;
    /// otherwise `Mismatch` (or the key's `Malformed`/`Unsupported`). With every slot revoked,
    /// nothing verifies.
    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        self.verifying_slot(digest, slot).map(|_| ())
    }
}
