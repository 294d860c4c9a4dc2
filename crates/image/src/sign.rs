//! Signing boot regions (host side).

use p256::ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};
use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::{BANK_SIZE, Region};
use crate::scheme::{BootKey, SLOT, Scheme};

/// A private boot key: the one whose public half is provisioned in SFlash.
#[derive(Clone)]
pub enum BootSigningKey {
    /// ECDSA P-256 (Ferrota's default).
    EcdsaP256(SigningKey),
    /// RSA-2048, the T2G ROM's scheme.
    #[cfg(feature = "rsa")]
    Rsa2048(rsa::PrivateKey),
}

impl core::fmt::Debug for BootSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BootSigningKey({})", self.scheme().name())
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The crypto library refused (an invalid key).
    Crypto,
    /// An RSA key that is not 2048 bits.
    RsaKeySize(usize),
}

impl core::fmt::Display for SignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SignError::Crypto => f.write_str("the signing key was refused by the crypto library"),
            SignError::RsaKeySize(bits) => {
                write!(f, "RSA boot keys must be 2048 bits (this one is {bits})")
            }
        }
    }
}

impl std::error::Error for SignError {}

impl BootSigningKey {
    /// The scheme this key signs with.
    pub fn scheme(&self) -> Scheme {
        match self {
            BootSigningKey::EcdsaP256(_) => Scheme::EcdsaP256,
            #[cfg(feature = "rsa")]
            BootSigningKey::Rsa2048(_) => Scheme::Rsa2048,
        }
    }

    /// The public half, for verification and for the SFlash object.
    pub fn boot_key(&self) -> Result<BootKey, SignError> {
        match self {
            BootSigningKey::EcdsaP256(k) => Ok(BootKey::EcdsaP256(*k.verifying_key())),
            #[cfg(feature = "rsa")]
            BootSigningKey::Rsa2048(k) => {
                use rsa::traits::PublicKeyParts;
                crate::scheme::Rsa2048PublicKey::from_rsa(&k.to_public_key())
                    .map(BootKey::Rsa2048)
                    .ok_or(SignError::RsaKeySize(k.n().bit_width() as usize))
            }
        }
    }

    /// Signs a region digest into a signature slot, in the slot encoding of [`crate::scheme`].
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; SLOT], SignError> {
        let mut slot = [0u8; SLOT];
        match self {
            BootSigningKey::EcdsaP256(k) => {
                let sig: Signature = k.sign_prehash(digest).map_err(|_| SignError::Crypto)?;
                slot[..64].copy_from_slice(&sig.normalize_s().to_bytes());
            }
            #[cfg(feature = "rsa")]
            BootSigningKey::Rsa2048(k) => {
                use rsa::traits::PublicKeyParts;
                if k.size() != 256 {
                    return Err(SignError::RsaKeySize(k.n().bit_width() as usize));
                }
                let sig = k
                    .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), digest)
                    .map_err(|_| SignError::Crypto)?;
                slot.copy_from_slice(&sig);
                if crate::scheme::RSA_SIGNATURE_LITTLE_ENDIAN {
                    slot.reverse();
                }
            }
        }
        Ok(slot)
    }
}

/// The boot signature of one region of `bank` whose header is `header`: SHA-256 of its signed
/// bytes, signed by `key`. The one place both the builder and [`sign_regions`] sign.
pub(crate) fn region_signature(
    bank: &[u8],
    region: Region,
    header: &CySafHeader,
    key: &BootSigningKey,
) -> Result<[u8; SLOT], SignError> {
    let base = region.offset() as usize;
    let sig_at = header.signature_offset(region) as usize;
    let digest: [u8; 32] = Sha256::digest(&bank[base..sig_at]).into();
    key.sign_digest(&digest)
}

/// Which regions [`sign_regions`] should sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMode {
    /// Only regions whose signature slot is all zero (what `cymcuelftool` left unsigned, such as
    /// the seed's CM7_1); existing signatures are kept.
    UnsignedOnly,
    /// Every region, replacing existing signatures.
    All,
}

/// Signs the regions of a bank image in place, after checking each header. Returns the regions
/// signed. On error the image is unchanged.
pub fn sign_regions(
    bank: &mut [u8],
    key: &BootSigningKey,
    mode: SignMode,
) -> Result<Vec<Region>, SignRegionsError> {
    if bank.len() != BANK_SIZE as usize {
        return Err(SignRegionsError::Image(Error::bank(
            0,
            if bank.len() > BANK_SIZE as usize {
                ErrorKind::TooLong {
                    len: bank.len() as u32,
                }
            } else {
                ErrorKind::Truncated {
                    needed: BANK_SIZE,
                    available: bank.len() as u32,
                }
            },
        )));
    }
    let mut slots = Vec::new();
    for region in Region::ALL {
        let base = region.offset() as usize;
        let mut raw = [0u8; HEADER_SIZE];
        raw.copy_from_slice(&bank[base..base + HEADER_SIZE]);
        let header = CySafHeader::parse(region, &raw).map_err(SignRegionsError::Image)?;
        let sig_at = header.signature_offset(region) as usize;
        if mode == SignMode::UnsignedOnly && bank[sig_at..sig_at + SLOT].iter().any(|&b| b != 0) {
            continue;
        }
        let slot = region_signature(bank, region, &header, key).map_err(SignRegionsError::Sign)?;
        slots.push((region, sig_at, slot));
    }
    for (_, at, slot) in &slots {
        bank[*at..*at + SLOT].copy_from_slice(slot);
    }
    Ok(slots.into_iter().map(|(r, _, _)| r).collect())
}

/// Why [`sign_regions`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRegionsError {
    /// A header (or the image length) is invalid.
    Image(Error),
    /// The key could not sign.
    Sign(SignError),
}

impl core::fmt::Display for SignRegionsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SignRegionsError::Image(e) => e.fmt(f),
            SignRegionsError::Sign(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SignRegionsError {}
