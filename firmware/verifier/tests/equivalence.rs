//! CompactKey against ferrota-image's BootKey (RustCrypto's verify_prehash): the same verdict
//! on valid, tampered, out-of-range, high-s and wrong-key signatures, digests above n included.
//! Runs on the host (`cargo test -p ferrota-fw-verifier` in firmware/).

use ferrota_fw_verifier::CompactKey;
use ferrota_image::BootKey;
use ferrota_image::scheme::{BootVerifier, SLOT, SignatureFault};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};

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

fn both(key: &BootKey, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
    let reference = key.verify_digest(digest, slot);
    let compact = CompactKey::new(key).verify_digest(digest, slot);
    assert_eq!(reference, compact, "digest {digest:02x?} slot {:02x?}", &slot[..64]);
    #[cfg(feature = "uecc")]
    {
        let uecc = ferrota_fw_verifier::UeccKey::new(key).verify_digest(digest, slot);
        assert_eq!(reference, uecc, "uecc: digest {digest:02x?} slot {:02x?}", &slot[..64]);
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
        let other = BootKey::EcdsaP256(*SigningKey::from_slice(&[7u8; 32]).unwrap().verifying_key());
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
        for bad in [[0u8; 32], N, [0xff; 32], neg(&[0u8; 31].iter().chain(&[1u8]).copied().collect::<Vec<_>>())] {
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
        assert_eq!(both(&key, &digest, &[0u8; SLOT]), Err(SignatureFault::Unsigned));
    }
    assert_eq!(ok, 48);
}
