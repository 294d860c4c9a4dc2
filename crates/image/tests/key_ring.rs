//! The boot key ring: slots, revocation, one scheme per ring (design #20 §5).

use ferrota_image::p256::ecdsa::{Signature, SigningKey, signature::hazmat::PrehashSigner};
use ferrota_image::scheme::{KEY_SLOTS, Rsa2048PublicKey, SLOT, SignatureFault};
use ferrota_image::sflash_key::{
    BOOT_KEY_SLOTS, KeyObjectError, SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, SlotError,
    p256_key_object, parse_key_slots, read_key_ring, rsa2048_key_object,
};
use ferrota_image::{BootKey, BootVerifier, KeyRing, KeyRingError, Scheme};

const DIGEST: [u8; 32] = [0x3C; 32];

fn signer(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

fn key(n: u8) -> BootKey {
    BootKey::EcdsaP256(*signer(n).verifying_key())
}

fn signed_by(n: u8) -> [u8; SLOT] {
    let sig: Signature = signer(n).sign_prehash(&DIGEST).unwrap();
    let mut slot = [0u8; SLOT];
    slot[..64].copy_from_slice(&sig.to_bytes());
    slot
}

fn rsa_key() -> BootKey {
    let mut modulus = [0xA5u8; 256];
    modulus[0] = 0xC1;
    modulus[255] = 0x01;
    BootKey::Rsa2048(Rsa2048PublicKey {
        modulus,
        exponent: 65537,
    })
}

fn ring(revoked: u8) -> KeyRing<BootKey> {
    KeyRing::new([Some(key(1)), Some(key(2)), None, Some(key(4))], revoked).unwrap()
}

#[test]
fn a_signature_verifies_under_any_trusted_slot() {
    let r = ring(0);
    assert_eq!(r.scheme(), Scheme::EcdsaP256);
    assert_eq!((r.present(), r.trusted()), (0b1011, 0b1011));
    assert_eq!(r.verifying_slot(&DIGEST, &signed_by(1)), Ok(0));
    assert_eq!(r.verifying_slot(&DIGEST, &signed_by(2)), Ok(1));
    assert_eq!(r.verifying_slot(&DIGEST, &signed_by(4)), Ok(3));
    // A key the ring does not hold, an empty slot, a different digest.
    assert_eq!(
        r.verify_digest(&DIGEST, &signed_by(3)),
        Err(SignatureFault::Mismatch)
    );
    assert_eq!(
        r.verify_digest(&[0; 32], &signed_by(1)),
        Err(SignatureFault::Mismatch)
    );
    assert_eq!(
        r.verify_digest(&DIGEST, &[0; SLOT]),
        Err(SignatureFault::Unsigned)
    );
    let mut padded = signed_by(1);
    padded[100] = 1;
    assert_eq!(
        r.verify_digest(&DIGEST, &padded),
        Err(SignatureFault::Malformed)
    );
}

#[test]
fn a_revoked_slot_is_refused_and_a_later_slot_still_accepted() {
    let r = ring(0b0001);
    assert_eq!(r.trusted(), 0b1010);
    assert_eq!(
        r.verify_digest(&DIGEST, &signed_by(1)),
        Err(SignatureFault::Mismatch),
        "an image signed only by the revoked slot 0 key"
    );
    assert_eq!(r.verify_digest(&DIGEST, &signed_by(2)), Ok(()));
    // `without` adds to the mask; it never clears a bit.
    let r2 = r.without(0b0010);
    assert_eq!((r2.revoked(), r2.trusted()), (0b0011, 0b1000));
    assert_eq!(
        r2.verify_digest(&DIGEST, &signed_by(2)),
        Err(SignatureFault::Mismatch)
    );
    assert_eq!(r2.without(0).revoked(), 0b0011);
    assert_eq!(r2.verify_digest(&DIGEST, &signed_by(4)), Ok(()));
    // Every slot revoked: nothing verifies; bits above the slots are ignored.
    let none = ring(0xFF);
    assert_eq!((none.revoked(), none.trusted()), (0b1111, 0));
    for n in [1, 2, 4] {
        assert_eq!(
            none.verify_digest(&DIGEST, &signed_by(n)),
            Err(SignatureFault::Mismatch)
        );
    }
    // A revoked key is still held (it is what the fuse names), just not trusted.
    assert_eq!(none.slot(0), Some(&key(1)));
}

#[test]
fn a_single_key_ring_answers_as_the_key() {
    let r = KeyRing::single(key(1));
    for n in [1, 2] {
        assert_eq!(
            r.verify_digest(&DIGEST, &signed_by(n)),
            key(1).verify_digest(&DIGEST, &signed_by(n))
        );
    }
    assert_eq!(r.present(), 1);
}

#[test]
fn mixed_schemes_and_empty_rings_are_refused() {
    assert_eq!(
        KeyRing::new([Some(key(1)), None, Some(rsa_key()), None], 0),
        Err(KeyRingError::MixedSchemes {
            slot: 2,
            ring: Scheme::EcdsaP256,
            found: Scheme::Rsa2048,
        })
    );
    // Also when the odd key is revoked: the ring checks what it holds.
    assert!(matches!(
        KeyRing::new([Some(rsa_key()), Some(key(2)), None, None], 0b0010),
        Err(KeyRingError::MixedSchemes { slot: 1, .. })
    ));
    assert_eq!(
        KeyRing::<BootKey>::new([None, None, None, None], 0),
        Err(KeyRingError::Empty)
    );
    let rsa = KeyRing::new([Some(rsa_key()), None, None, None], 0).unwrap();
    assert_eq!(rsa.scheme(), Scheme::Rsa2048);
}

fn area(slots: &[(usize, &[u8])]) -> Box<[u8; SFLASH_KEY_AREA]> {
    let mut a = Box::new([0xFFu8; SFLASH_KEY_AREA]);
    for &(slot, obj) in slots {
        let at = (BOOT_KEY_SLOTS[slot] - SFLASH_KEY_ADDRESS) as usize;
        a[at..at + obj.len()].copy_from_slice(obj);
    }
    a
}

fn p256_obj(n: u8) -> [u8; 76] {
    let BootKey::EcdsaP256(k) = key(n) else {
        unreachable!()
    };
    p256_key_object(&k)
}

#[test]
fn slots_are_read_from_the_key_area() {
    assert_eq!(BOOT_KEY_SLOTS[0], SFLASH_KEY_ADDRESS);
    for w in BOOT_KEY_SLOTS.windows(2) {
        assert!(w[1] >= w[0] + 512 && w[1] % 512 == 0);
    }
    assert!(BOOT_KEY_SLOTS[3] + 512 <= SFLASH_KEY_ADDRESS + SFLASH_KEY_AREA as u32);
    // Slot 0 only (today's boards): the other slots read erased.
    let one = area(&[(0, &p256_obj(1))]);
    assert_eq!(parse_key_slots(&one), Ok([Some(key(1)), None, None, None]));
    // Zero-filled slots are empty too.
    let mut zeros = area(&[(0, &p256_obj(1))]);
    zeros[0x600..].fill(0);
    assert_eq!(
        parse_key_slots(&zeros),
        Ok([Some(key(1)), None, None, None])
    );
    let two = area(&[(0, &p256_obj(1)), (1, &p256_obj(2)), (3, &p256_obj(4))]);
    let r = read_key_ring(&two, 0b0001).unwrap();
    assert_eq!(r, ring(0b0001));
    // An RSA-2048 slot 0 (1096 B spans three rows, up to 0x17006848) leaves slot 1 free.
    let rsa_obj = match rsa_key() {
        BootKey::Rsa2048(k) => rsa2048_key_object(&k),
        _ => unreachable!(),
    };
    assert!(SFLASH_KEY_ADDRESS + rsa_obj.len() as u32 <= BOOT_KEY_SLOTS[1]);
    let rsa = area(&[(0, &rsa_obj)]);
    assert_eq!(read_key_ring(&rsa, 0).unwrap().scheme(), Scheme::Rsa2048);
}

#[test]
fn bad_slots_are_refused_with_their_number() {
    // No slot 0: the single-key path's error, unchanged.
    let blank = area(&[(1, &p256_obj(2))]);
    assert_eq!(
        parse_key_slots(&blank),
        Err(SlotError::Object {
            slot: 0,
            error: KeyObjectError::UnknownScheme(u32::MAX)
        })
    );
    let mut garbled = p256_obj(2);
    garbled[40] ^= 1;
    let e = parse_key_slots(&area(&[(0, &p256_obj(1)), (2, &garbled)])).unwrap_err();
    assert_eq!(
        e,
        SlotError::Object {
            slot: 2,
            error: KeyObjectError::BadField(8)
        }
    );
    assert_eq!(
        e.to_string(),
        "boot key slot 2 at 0x17006c00: key object at +8: inconsistent field"
    );
    let rsa_obj = match rsa_key() {
        BootKey::Rsa2048(k) => rsa2048_key_object(&k),
        _ => unreachable!(),
    };
    // RSA outside slot 0.
    assert_eq!(
        parse_key_slots(&area(&[(0, &p256_obj(1)), (1, &rsa_obj[..512])])),
        Err(SlotError::Object {
            slot: 1,
            error: KeyObjectError::RsaOutsideSlot0
        })
    );
    // Mixed schemes: RSA slot 0, P-256 slot 1.
    let mixed = area(&[(0, &rsa_obj), (1, &p256_obj(2))]);
    let e = read_key_ring(&mixed, 0).unwrap_err();
    assert_eq!(
        e,
        SlotError::Ring(KeyRingError::MixedSchemes {
            slot: 1,
            ring: Scheme::Rsa2048,
            found: Scheme::EcdsaP256
        })
    );
    assert_eq!(
        e.to_string(),
        "boot key ring: slot 1 holds a ecdsa-p256-sha256 key in a rsa2048-pkcs1v15-sha256 ring (one scheme per ring)"
    );
    assert_eq!(KEY_SLOTS, 4);
}
