//! CompactKey and TinyKey (through SflashKey, from the SFlash key object) against
//! ferrota-image's BootKey (RustCrypto's verify_prehash): the same verdict on valid, tampered,
//! random, out-of-range, high-s and wrong-key signatures, digests above n included, `x(R) ≥ n`;
//! the same verdict on key objects (points off the curve, coordinates ≥ p, RSA).
//! Runs on the host (`cargo test -p ferrota-fw-verifier` in firmware/).

use ferrota_fw_verifier::{CompactKey, SflashKey};
use ferrota_image::BootKey;
use ferrota_image::scheme::{BootVerifier, SLOT, SignatureFault};
use ferrota_image::sflash_key::{SCHEME_RSA2048, p256_key_object, parse_key_object};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::DecompressPoint;
use p256::elliptic_curve::subtle::Choice;
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

/// xorshift64*: deterministic test bytes.
struct Rng(u64);
impl Rng {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
        out
    }
}

const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn slot(rs: &[u8]) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..rs.len()].copy_from_slice(rs);
    s
}

/// The field prime p, big-endian.
const P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// The SFlash object's verifier for an ECDSA key.
fn tiny(key: &BootKey) -> Option<SflashKey> {
    match key {
        BootKey::EcdsaP256(vk) => Some(SflashKey::from_object(&p256_key_object(vk)).unwrap()),
        BootKey::Rsa2048(_) => None,
    }
}

fn both(key: &BootKey, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
    let reference = key.verify_digest(digest, slot);
    let compact = CompactKey::new(key).verify_digest(digest, slot);
    assert_eq!(
        reference,
        compact,
        "digest {digest:02x?} slot {:02x?}",
        &slot[..64]
    );
    if let Some(t) = tiny(key) {
        let tiny = t.verify_digest(digest, slot);
        assert_eq!(
            reference,
            tiny,
            "tiny: digest {digest:02x?} slot {:02x?}",
            &slot[..64]
        );
    }
    #[cfg(feature = "uecc")]
    {
        let uecc = ferrota_fw_verifier::UeccKey::new(key).verify_digest(digest, slot);
        assert_eq!(
            reference,
            uecc,
            "uecc: digest {digest:02x?} slot {:02x?}",
            &slot[..64]
        );
    }
    reference
}

/// n - s (big-endian 256-bit subtraction).
fn neg(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

#[test]
fn same_verdict_as_boot_key() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut ok = 0;
    for round in 0..48 {
        let sk = loop {
            if let Ok(sk) = SigningKey::from_slice(&rng.bytes::<32>()) {
                break sk;
            }
        };
        let key = BootKey::EcdsaP256(*sk.verifying_key());
        let other =
            BootKey::EcdsaP256(*SigningKey::from_slice(&[7u8; 32]).unwrap().verifying_key());
        let mut digest: [u8; 32] = rng.bytes();
        if round % 8 == 0 {
            digest = [0xff; 32]; // above n: reduced mod n
        }
        if round % 8 == 1 {
            digest = N; // ≡ 0 mod n
        }
        let sig: Signature = sk.sign_prehash(&digest).unwrap();
        let rs = sig.to_bytes();
        let good = slot(&rs);
        assert_eq!(both(&key, &digest, &good), Ok(()));
        ok += 1;
        // High s is valid for P-256 (no normalisation).
        let mut high = rs;
        high[32..].copy_from_slice(&neg(&rs[32..]));
        assert_eq!(both(&key, &digest, &slot(&high)), Ok(()));
        assert_eq!(both(&other, &digest, &good), Err(SignatureFault::Mismatch));
        for bit in [0usize, 7, 100, 255] {
            let mut d = digest;
            d[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(both(&key, &d, &good), Err(SignatureFault::Mismatch));
        }
        for byte in [0usize, 31, 32, 63] {
            let mut t = rs;
            t[byte] ^= 0x10;
            assert!(both(&key, &digest, &slot(&t)).is_err());
        }
        // r or s swapped, zero, n, n-1 and above n.
        let mut swapped = [0u8; 64];
        swapped[..32].copy_from_slice(&rs[32..]);
        swapped[32..].copy_from_slice(&rs[..32]);
        assert!(both(&key, &digest, &slot(&swapped)).is_err());
        for bad in [
            [0u8; 32],
            N,
            [0xff; 32],
            neg(&[0u8; 31].iter().chain(&[1u8]).copied().collect::<Vec<_>>()),
        ] {
            let mut t = rs;
            t[..32].copy_from_slice(&bad);
            let _ = both(&key, &digest, &slot(&t));
            let mut t = rs;
            t[32..].copy_from_slice(&bad);
            let _ = both(&key, &digest, &slot(&t));
        }
        // Slot rules.
        let mut tail = good;
        tail[SLOT - 1] = 1;
        assert_eq!(both(&key, &digest, &tail), Err(SignatureFault::Malformed));
        assert_eq!(
            both(&key, &digest, &[0u8; SLOT]),
            Err(SignatureFault::Unsigned)
        );
    }
    assert_eq!(ok, 48);
}

/// n + k (big-endian, k small).
fn n_plus(k: u8) -> [u8; 32] {
    let mut out = N;
    let mut carry = u16::from(k);
    for b in out.iter_mut().rev() {
        let v = u16::from(*b) + carry;
        *b = v as u8;
        carry = v >> 8;
    }
    out
}

fn scalar(b: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*b))
}

/// Signatures whose R has `x ≥ n` (so `r = x − n` and the verifier must try `r + n`), which no
/// honest signer produces in practice (probability ~2^-128): R is chosen first, the key after it.
/// With `z ≡ 0`, `u1 = 0` and `u2 = r/s`: pick u2, then `Q = u2⁻¹·R` and `s = r/u2`.
#[test]
fn x_of_r_above_n() {
    let mut rng = Rng(0x5eed_0000_0000_0007);
    let mut found = 0;
    for k in 1..=40u8 {
        let x = n_plus(k);
        assert!(x < P);
        let Some(r_point) = Option::<AffinePoint>::from(AffinePoint::decompress(
            &FieldBytes::from(x),
            Choice::from(k & 1),
        )) else {
            continue;
        };
        found += 1;
        let u2 = scalar(&rng.bytes::<32>());
        let u2_inv = Option::<Scalar>::from(u2.invert()).unwrap();
        let q = (ProjectivePoint::from(r_point) * u2_inv).to_affine();
        let key = BootKey::EcdsaP256(VerifyingKey::from_affine(q).unwrap());
        let r = scalar(&x); // x − n
        let s = r * u2_inv;
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&r.to_bytes());
        rs[32..].copy_from_slice(&s.to_bytes());
        for digest in [[0u8; 32], N] {
            assert_eq!(both(&key, &digest, &slot(&rs)), Ok(()), "x = n + {k}");
        }
        let mut d = [0u8; 32];
        d[31] = 1;
        assert_eq!(both(&key, &d, &slot(&rs)), Err(SignatureFault::Mismatch));
        // r = x itself is out of range; r = x − n − 1 is wrong.
        let mut t = rs;
        t[..32].copy_from_slice(&x);
        assert_eq!(
            both(&key, &[0u8; 32], &slot(&t)),
            Err(SignatureFault::Malformed)
        );
        let mut t = rs;
        t[31] ^= 1;
        assert!(both(&key, &[0u8; 32], &slot(&t)).is_err());
    }
    assert!(found >= 8, "{found}");
}

/// Random in-range r and s: (almost surely) a mismatch for all three.
#[test]
fn random_signatures() {
    let mut rng = Rng(0x0bad_5167_0000_0001);
    let key = BootKey::EcdsaP256(*SigningKey::from_slice(&[9u8; 32]).unwrap().verifying_key());
    for _ in 0..64 {
        let mut rs: [u8; 64] = rng.bytes();
        rs[0] &= 0x7f;
        rs[32] &= 0x7f;
        let digest: [u8; 32] = rng.bytes();
        assert_eq!(
            both(&key, &digest, &slot(&rs)),
            Err(SignatureFault::Mismatch)
        );
    }
}

/// The key object: SflashKey accepts and refuses what parse_key_object does, with the same
/// error, for points off the curve, coordinates ≥ p and tampered bytes; an RSA object gives the
/// verdicts of BootKey's RSA key in this build.
#[test]
fn same_key_objects_as_parse_key_object() {
    let mut rng = Rng(0x0b1e_c700_0000_0003);
    let sk = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let good = p256_key_object(sk.verifying_key());
    let check = |obj: &[u8]| {
        let reference = parse_key_object(obj).map(|_| ());
        let tiny = SflashKey::from_object(obj).map(|_| ());
        assert_eq!(reference, tiny, "object {obj:02x?}");
        reference
    };
    assert_eq!(check(&good), Ok(()));
    let mut refused = 0;
    for i in 0..good.len() * 8 {
        let mut obj = good;
        obj[i / 8] ^= 1 << (i % 8);
        refused += usize::from(check(&obj).is_err());
    }
    assert_eq!(refused, good.len() * 8);
    // Random coordinates (on the curve for about half of the x, with y right for none).
    for _ in 0..64 {
        let mut obj = good;
        obj[9..73].copy_from_slice(&rng.bytes::<64>());
        let _ = check(&obj);
    }
    // Real points: random keys, both y parities.
    for _ in 0..16 {
        if let Ok(sk) = SigningKey::from_slice(&rng.bytes::<32>()) {
            assert_eq!(check(&p256_key_object(sk.verifying_key())), Ok(()));
        }
    }
    // Coordinates at or above p (x + p keeps a point "on the curve" mod p, which must not count).
    for bad in [P, [0xff; 32], [0; 32]] {
        for at in [9usize, 41] {
            let mut obj = good;
            obj[at..at + 32].copy_from_slice(&bad);
            let _ = check(&obj);
        }
    }
    let mut small = None;
    for k in 1..=64u8 {
        let mut x = [0u8; 32];
        x[31] = k;
        if let Some(p) = Option::<AffinePoint>::from(AffinePoint::decompress(
            &FieldBytes::from(x),
            Choice::from(0),
        )) {
            small = Some((x, p));
            break;
        }
    }
    let (x, p) = small.expect("a point with a small x");
    let mut obj = p256_key_object(&VerifyingKey::from_affine(p).unwrap());
    assert_eq!(check(&obj), Ok(()));
    // x + p: the same residue, not a field element.
    let mut xp = P;
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let v = u16::from(xp[i]) + u16::from(x[i]) + carry;
        xp[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    obj[9..41].copy_from_slice(&xp);
    assert!(check(&obj).is_err());
    // RSA: the same verdicts as BootKey's RSA key without the `rsa` feature.
    let mut rsa = vec![0u8; 1096];
    rsa[0..4].copy_from_slice(&1096u32.to_le_bytes());
    rsa[4..8].copy_from_slice(&SCHEME_RSA2048.to_le_bytes());
    let words = [
        0x1700_6424u32,
        2048,
        0x1700_6524,
        256,
        0x1700_6544,
        0x1700_6648,
        0x1700_6748,
    ];
    for (i, w) in words.into_iter().enumerate() {
        rsa[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    rsa[36] = 1; // modulus odd (little-endian)
    rsa[291] = 0x80; // top bit set
    rsa[292] = 3; // exponent 3
    let reference = parse_key_object(&rsa).expect("an RSA object");
    let tiny = SflashKey::from_object(&rsa).expect("an RSA object");
    assert_eq!(reference.scheme(), tiny.scheme());
    for s in [[0u8; SLOT], slot(&[1u8; 64])] {
        let d = [5u8; 32];
        assert_eq!(reference.verify_digest(&d, &s), tiny.verify_digest(&d, &s));
    }
}

/// `u1·G + u2·Q` at infinity: with the private key d, the digest `z = −r·d mod n` gives
/// `u1 + u2·d ≡ 0` for any s. Refused by all (its projective X and Z are both 0, so a check of
/// `X == r·Z` alone would pass).
#[test]
fn sum_at_infinity() {
    let mut rng = Rng(0x1f1f_0000_0000_0009);
    for _ in 0..8 {
        let d_bytes: [u8; 32] = rng.bytes();
        let Ok(sk) = SigningKey::from_slice(&d_bytes) else {
            continue;
        };
        let key = BootKey::EcdsaP256(*sk.verifying_key());
        let (r, s) = (scalar(&rng.bytes()), scalar(&rng.bytes()));
        let z = -(r * scalar(&d_bytes));
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&r.to_bytes());
        rs[32..].copy_from_slice(&s.to_bytes());
        let digest: [u8; 32] = z.to_bytes().into();
        assert_eq!(
            both(&key, &digest, &slot(&rs)),
            Err(SignatureFault::Mismatch)
        );
    }
}
