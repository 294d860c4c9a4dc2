//! The public-key object the boot chain reads from SFlash (0x17006400, 0xC00 bytes).
//!
//! **RSA-2048** uses the T2G layout (`cy_si_stc_public_key_t`, 1096 bytes), which the ROM's
//! `Cy_FB_VerifyApplication` reads through the pointer at +8 (0x17006408). All numbers are stored
//! little-endian, as Infineon's `rsa_to_c.py` writes them:
//!
//! | offset | size | field |
//! |---|---|---|
//! | +0   | 4   | objSize = 1096 |
//! | +4   | 4   | signatureScheme: 0 = RSA-2048 |
//! | +8   | 28  | `{modulus addr, 2048, exponent addr, 256, Barrett addr, inverse-modulus addr, rBar addr}` (absolute addresses in SFlash) |
//! | +36  | 256 | modulus n |
//! | +292 | 32  | public exponent e |
//! | +324 | 260 | Barrett coefficient ⌊2^4096 / n⌋ |
//! | +584 | 256 | inverse modulus n′, where r·r′ − n·n′ = 1 with r = 2^2048 |
//! | +840 | 256 | rBar = 2^2048 mod n |
//!
//! **ECDSA P-256** has no T2G layout (the ROM only knows RSA), so Ferrota defines one, chosen so
//! the scheme word cannot be confused with the ROM's values 0 and 1:
//!
//! | offset | size | field |
//! |---|---|---|
//! | +0  | 4  | objSize = 76 |
//! | +4  | 4  | signatureScheme = 0x100 (Ferrota ECDSA P-256 / SHA-256) |
//! | +8  | 65 | the public key as an uncompressed SEC 1 point `04 ‖ X ‖ Y` (big-endian, as every ECC library reads it) |
//! | +73 | 3  | zero padding to a word boundary |
//!
//! Parsing checks the scheme, the sizes and (for RSA) that the pointers point into the object at
//! its SFlash address; the RSA helper coefficients are trusted as written (the ROM uses them, the
//! software verifier does not).

use p256::ecdsa::VerifyingKey;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::{AffinePoint, FieldBytes};

use crate::scheme::{BootKey, KEY_SLOTS, KeyRing, KeyRingError, Rsa2048PublicKey};

/// Address of the public-key object in SFlash.
pub const SFLASH_KEY_ADDRESS: u32 = 0x1700_6400;
/// Space reserved for it.
pub const SFLASH_KEY_AREA: usize = 0xC00;
/// `signatureScheme` value of the T2G RSA-2048 layout.
pub const SCHEME_RSA2048: u32 = 0;
/// `signatureScheme` value of the T2G RSA-1024 layout (recognised, refused).
pub const SCHEME_RSA1024: u32 = 1;
/// `signatureScheme` value of Ferrota's ECDSA P-256 layout.
pub const SCHEME_ECDSA_P256: u32 = 0x100;
/// Size of the RSA-2048 object.
pub const RSA2048_OBJECT_SIZE: usize = 1096;
/// Size of the P-256 object.
pub const P256_OBJECT_SIZE: usize = 76;

const RSA_MODULUS: usize = 36;
const RSA_EXPONENT: usize = 292;
const RSA_BARRETT: usize = 324;
const RSA_INVERSE: usize = 584;
const RSA_RBAR: usize = 840;

/// Why a key object was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyObjectError {
    /// Fewer bytes than the header or than objSize says.
    Truncated {
        /// Bytes needed.
        needed: usize,
    },
    /// The scheme word names no known scheme (an erased SFlash reads 0xFFFFFFFF here).
    UnknownScheme(u32),
    /// RSA-1024 is too weak to accept.
    Rsa1024,
    /// objSize does not match the scheme's layout.
    WrongSize(u32),
    /// A field at this object offset is inconsistent (pointer, bit length, exponent, point).
    BadField(usize),
    /// An RSA-2048 object (1096 B) in slots 1..3, which are one 512 B row each and whose RSA
    /// pointers could not name the slot 0 address the ROM reads (P-256 only there).
    RsaOutsideSlot0,
}

impl core::fmt::Display for KeyObjectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            KeyObjectError::Truncated { needed } => {
                write!(f, "key object truncated: needs {needed} bytes")
            }
            KeyObjectError::UnknownScheme(s) => write!(
                f,
                "key object at +4: unknown signature scheme {s:#x} (is SFlash provisioned?)"
            ),
            KeyObjectError::Rsa1024 => f.write_str("key object at +4: RSA-1024 is refused"),
            KeyObjectError::WrongSize(s) => {
                write!(f, "key object at +0: objSize {s} does not match the scheme")
            }
            KeyObjectError::BadField(o) => write!(f, "key object at +{o}: inconsistent field"),
            KeyObjectError::RsaOutsideSlot0 => {
                f.write_str("key object at +4: RSA-2048 is allowed in key slot 0 only")
            }
        }
    }
}

impl core::error::Error for KeyObjectError {}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A key object with every check of [`parse_key_object`] done but the P-256 point's: what a
/// verifier with its own curve arithmetic (the CM0+ DBM's) starts from, so that it does not link
/// RustCrypto's field arithmetic only to decode the key.
// No alloc to box the RSA key in (no_std); the value is returned once, as `BootKey` is.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawKeyObject<'a> {
    /// ECDSA P-256: `X ‖ Y`, big-endian, as stored after the 0x04 tag. **Not checked**: that X
    /// and Y are below p and that the point is on the curve. The caller must check both, and
    /// refuse the object with `KeyObjectError::BadField(8)` when they fail, as
    /// [`parse_key_object`] does.
    EcdsaP256Unchecked(&'a [u8; 64]),
    /// RSA-2048, fully checked.
    Rsa2048(Rsa2048PublicKey),
}

/// Reads the key object as [`parse_key_object`] does, except the P-256 point's curve check (see
/// [`RawKeyObject::EcdsaP256Unchecked`]).
pub fn parse_key_object_raw(obj: &[u8]) -> Result<RawKeyObject<'_>, KeyObjectError> {
    if obj.len() < 8 {
        return Err(KeyObjectError::Truncated { needed: 8 });
    }
    let size = word(obj, 0);
    match word(obj, 4) {
        SCHEME_ECDSA_P256 => {
            if size as usize != P256_OBJECT_SIZE {
                return Err(KeyObjectError::WrongSize(size));
            }
            if obj.len() < P256_OBJECT_SIZE {
                return Err(KeyObjectError::Truncated {
                    needed: P256_OBJECT_SIZE,
                });
            }
            if obj[8] != 0x04 {
                return Err(KeyObjectError::BadField(8));
            }
            if obj[73..76].iter().any(|&b| b != 0) {
                return Err(KeyObjectError::BadField(73));
            }
            let xy = obj[9..73]
                .try_into()
                .map_err(|_| KeyObjectError::BadField(8))?;
            Ok(RawKeyObject::EcdsaP256Unchecked(xy))
        }
        SCHEME_RSA2048 => {
            if size as usize != RSA2048_OBJECT_SIZE {
                return Err(KeyObjectError::WrongSize(size));
            }
            if obj.len() < RSA2048_OBJECT_SIZE {
                return Err(KeyObjectError::Truncated {
                    needed: RSA2048_OBJECT_SIZE,
                });
            }
            let base = SFLASH_KEY_ADDRESS;
            let expected = [
                base + RSA_MODULUS as u32,
                2048,
                base + RSA_EXPONENT as u32,
                256,
                base + RSA_BARRETT as u32,
                base + RSA_INVERSE as u32,
                base + RSA_RBAR as u32,
            ];
            for (i, e) in expected.into_iter().enumerate() {
                if word(obj, 8 + 4 * i) != e {
                    return Err(KeyObjectError::BadField(8 + 4 * i));
                }
            }
            let exp = &obj[RSA_EXPONENT..RSA_EXPONENT + 32];
            if exp[4..].iter().any(|&b| b != 0) {
                return Err(KeyObjectError::BadField(RSA_EXPONENT));
            }
            let exponent = word(exp, 0);
            let mut modulus = [0u8; 256];
            modulus.copy_from_slice(&obj[RSA_MODULUS..RSA_MODULUS + 256]);
            modulus.reverse();
            if modulus[0] & 0x80 == 0 || modulus[255] & 1 == 0 {
                return Err(KeyObjectError::BadField(RSA_MODULUS));
            }
            if exponent < 3 || exponent & 1 == 0 {
                return Err(KeyObjectError::BadField(RSA_EXPONENT));
            }
            Ok(RawKeyObject::Rsa2048(Rsa2048PublicKey {
                modulus,
                exponent,
            }))
        }
        SCHEME_RSA1024 => Err(KeyObjectError::Rsa1024),
        other => Err(KeyObjectError::UnknownScheme(other)),
    }
}

/// Reads the boot key from the bytes of the SFlash key object (at least objSize bytes).
pub fn parse_key_object(obj: &[u8]) -> Result<BootKey, KeyObjectError> {
    match parse_key_object_raw(obj)? {
        RawKeyObject::EcdsaP256Unchecked(xy) => {
            // X and Y must be field elements on the curve, as `VerifyingKey::from_sec1_bytes`
            // checks them, without linking point decompression (1.7 KB of the CM0+ DBM).
            let (x, y) = xy.split_at(32);
            let key = AffinePoint::from_coordinates(
                &FieldBytes::try_from(x).map_err(|_| KeyObjectError::BadField(8))?,
                &FieldBytes::try_from(y).map_err(|_| KeyObjectError::BadField(8))?,
            )
            .into_option()
            .and_then(|p| VerifyingKey::from_affine(p).ok())
            .ok_or(KeyObjectError::BadField(8))?;
            Ok(BootKey::EcdsaP256(key))
        }
        RawKeyObject::Rsa2048(key) => Ok(BootKey::Rsa2048(key)),
    }
}

/// SFlash addresses of the boot-key slots of a [`KeyRing`] (design #20 §5).
///
/// Slot 0 is [`SFLASH_KEY_ADDRESS`], unchanged: the ROM's RSA pointer at 0x17006408 and the
/// single-key path read it, and an RSA-2048 object (1096 B, rows 0x6400..0x6848) fits there only.
/// Slots 1..3 are the last three 512 B rows of the 0xC00 key area, one P-256 object (76 B) each.
/// All four lie inside the area the ROM's S-HASH already covers, so in SECURE a slot can no more
/// be added or changed than the slot 0 key can; and each is its own SFlash row, so provisioning
/// one slot is one row write that cannot tear another.
pub const BOOT_KEY_SLOTS: [u32; KEY_SLOTS] = [0x1700_6400, 0x1700_6A00, 0x1700_6C00, 0x1700_6E00];

/// Offsets of the slots in the key area (`BOOT_KEY_SLOTS[n] - SFLASH_KEY_ADDRESS`).
const SLOT_OFFSETS: [usize; KEY_SLOTS] = [0, 0x600, 0x800, 0xA00];

/// A key slot that could not be read into a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// The slot holds an object, and it is refused.
    Object {
        /// The slot (0..4).
        slot: u8,
        /// Why.
        error: KeyObjectError,
    },
    /// The slots do not make a ring (mixed schemes).
    Ring(KeyRingError),
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            SlotError::Object { slot, error } => write!(
                f,
                "boot key slot {slot} at {:#010x}: {error}",
                BOOT_KEY_SLOTS[usize::from(slot)]
            ),
            SlotError::Ring(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for SlotError {}

/// Reads the four boot-key slots of the SFlash key area (the 0xC00 bytes at 0x17006400).
///
/// Slot 0 is required and read exactly as [`parse_key_object`] reads the single key, with the
/// same errors. Slots 1..3: an empty slot is `None`: objSize and scheme words both 0xFFFFFFFF
/// (erased SFlash) or both zero (a row written with zeros, as provisioning pads). Any other content must be a valid P-256 object, or the whole read is refused. A
/// half-provisioned or garbled slot is a provisioning error to surface, not a key to skip
/// silently: the area is under the S-HASH, so in SECURE it cannot appear by accident later.
pub fn parse_key_slots(
    area: &[u8; SFLASH_KEY_AREA],
) -> Result<[Option<BootKey>; KEY_SLOTS], SlotError> {
    let mut keys: [Option<BootKey>; KEY_SLOTS] = [None, None, None, None];
    for (slot, &off) in SLOT_OFFSETS.iter().enumerate() {
        let obj = &area[off..];
        let err = |error| SlotError::Object {
            slot: slot as u8,
            error,
        };
        if slot > 0 {
            match (word(obj, 0), word(obj, 4)) {
                (u32::MAX, u32::MAX) | (0, 0) => continue,
                (_, SCHEME_RSA2048) => return Err(err(KeyObjectError::RsaOutsideSlot0)),
                _ => {}
            }
        }
        keys[slot] = Some(parse_key_object(obj).map_err(err)?);
    }
    Ok(keys)
}

/// The [`KeyRing`] of the key area with the eFuse revocation mask `revoked`: the slots of
/// [`parse_key_slots`], refused if they mix schemes.
pub fn read_key_ring(
    area: &[u8; SFLASH_KEY_AREA],
    revoked: u8,
) -> Result<KeyRing<BootKey>, SlotError> {
    KeyRing::new(parse_key_slots(area)?, revoked).map_err(SlotError::Ring)
}

/// The P-256 key object; fixed size, so it needs no allocation.
pub fn p256_key_object(key: &VerifyingKey) -> [u8; P256_OBJECT_SIZE] {
    let mut out = [0u8; P256_OBJECT_SIZE];
    out[0..4].copy_from_slice(&(P256_OBJECT_SIZE as u32).to_le_bytes());
    out[4..8].copy_from_slice(&SCHEME_ECDSA_P256.to_le_bytes());
    let point = key.to_sec1_point(false);
    out[8..73].copy_from_slice(point.as_bytes());
    out
}

/// The T2G RSA-2048 key object, with the helper coefficients the ROM needs, computed as
/// Infineon's `rsa_to_c.py` does.
#[cfg(feature = "rsa")]
pub fn rsa2048_key_object(key: &Rsa2048PublicKey) -> [u8; RSA2048_OBJECT_SIZE] {
    let c = rsa_coefficients(&key.modulus);
    let mut out = [0u8; RSA2048_OBJECT_SIZE];
    let base = SFLASH_KEY_ADDRESS;
    let words = [
        RSA2048_OBJECT_SIZE as u32,
        SCHEME_RSA2048,
        base + RSA_MODULUS as u32,
        2048,
        base + RSA_EXPONENT as u32,
        256,
        base + RSA_BARRETT as u32,
        base + RSA_INVERSE as u32,
        base + RSA_RBAR as u32,
    ];
    for (i, w) in words.into_iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    let mut n = key.modulus;
    n.reverse();
    out[RSA_MODULUS..RSA_MODULUS + 256].copy_from_slice(&n);
    out[RSA_EXPONENT..RSA_EXPONENT + 4].copy_from_slice(&key.exponent.to_le_bytes());
    out[RSA_BARRETT..RSA_BARRETT + 260].copy_from_slice(&c.barrett);
    out[RSA_INVERSE..RSA_INVERSE + 256].copy_from_slice(&c.inverse_modulus);
    out[RSA_RBAR..RSA_RBAR + 256].copy_from_slice(&c.r_bar);
    out
}

/// The ROM's Montgomery/Barrett helper values for a modulus, little-endian.
#[cfg(feature = "rsa")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaCoefficients {
    /// ⌊2^4096 / n⌋, 260 bytes.
    pub barrett: [u8; 260],
    /// n′ with r·r′ − n·n′ = 1 (r = 2^2048), i.e. −n⁻¹ mod 2^2048.
    pub inverse_modulus: [u8; 256],
    /// 2^2048 mod n.
    pub r_bar: [u8; 256],
}

/// Computes the helper values for a 2048-bit odd modulus given big-endian.
#[cfg(feature = "rsa")]
pub fn rsa_coefficients(modulus_be: &[u8; 256]) -> RsaCoefficients {
    use crypto_bigint::{BoxedUint, NonZero, Resize};
    fn le<const N: usize>(x: &BoxedUint) -> [u8; N] {
        let bytes = x.to_le_bytes();
        let mut out = [0u8; N];
        let n = bytes.len().min(N);
        out[..n].copy_from_slice(&bytes[..n]);
        out
    }
    let n = BoxedUint::from_be_slice_vartime(modulus_be);
    let wide = 4096 + 64;
    let n_wide = NonZero::new(n.clone().resize(wide)).into_option();
    let two_4096 = BoxedUint::one_with_precision(wide).shl(4096);
    let barrett = match &n_wide {
        Some(nz) => two_4096.div_rem(nz).0,
        None => BoxedUint::zero_with_precision(wide),
    };
    let (inv, _) = n.invert_mod2k_vartime(2048);
    let inverse = inv.resize(2048).wrapping_neg();
    let r = BoxedUint::one_with_precision(wide).shl(2048);
    let r_bar = match &n_wide {
        Some(nz) => r.rem(nz),
        None => BoxedUint::zero_with_precision(wide),
    };
    RsaCoefficients {
        barrett: le(&barrett),
        inverse_modulus: le(&inverse),
        r_bar: le(&r_bar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    #[test]
    fn raw_p256_object_is_the_stored_point_unchecked() {
        let key = *SigningKey::from_slice(&[0x42; 32]).unwrap().verifying_key();
        let obj = p256_key_object(&key);
        let Ok(RawKeyObject::EcdsaP256Unchecked(xy)) = parse_key_object_raw(&obj) else {
            panic!("not a P-256 object");
        };
        assert_eq!(&xy[..], &key.to_sec1_point(false).as_bytes()[1..]);
        assert_eq!(parse_key_object(&obj), Ok(BootKey::EcdsaP256(key)));
        // Off the curve: the raw parse hands the bytes over, the full parse refuses them.
        let mut off = obj;
        off[72] ^= 1;
        assert!(matches!(
            parse_key_object_raw(&off),
            Ok(RawKeyObject::EcdsaP256Unchecked(_))
        ));
        assert_eq!(parse_key_object(&off), Err(KeyObjectError::BadField(8)));
        // Every other check is the raw parse's: the same errors from both.
        for (at, v) in [(0, 77u8), (4, 2), (8, 0x02), (74, 1)] {
            let mut bad = obj;
            bad[at] = v;
            let raw = parse_key_object_raw(&bad).map(|_| ());
            assert!(raw.is_err(), "byte {at}");
            assert_eq!(raw, parse_key_object(&bad).map(|_| ()));
        }
        assert_eq!(
            parse_key_object_raw(&obj[..40]).map(|_| ()),
            Err(KeyObjectError::Truncated { needed: 76 })
        );
    }
}
