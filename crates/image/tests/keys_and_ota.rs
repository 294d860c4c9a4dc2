//! RSA-2048 boot signatures, the SFlash key objects, and the OTA file signature.

mod common;

use common::*;
use ferrota_image::ota::{OtaSignature, OtaSignatureError, sign_file};
use ferrota_image::scheme::{BootKey, BootVerifier, Rsa2048PublicKey, Scheme};
use ferrota_image::sflash_key::{
    KeyObjectError, SFLASH_KEY_ADDRESS, p256_key_object, parse_key_object, rsa_coefficients,
    rsa2048_key_object,
};
use ferrota_image::verify::verify_bank;
use ferrota_image::{ErrorKind, FirmwareVersion, Region};

#[test]
fn rsa_bank_round_trip_and_little_endian_slot() {
    let key = rsa_key();
    assert_eq!(key.scheme(), Scheme::Rsa2048);
    let bank = build_bank(&key, record(FirmwareVersion::new(3, 0, 1), 1), false);
    let public = key.boot_key().unwrap();
    let v = verify_bank(&bank, &public).expect("RSA bank verifies");
    assert_eq!(v.boot().record().flags, 0, "no CM7_1 build: flag clear");
    // The slot is the PKCS#1 signature byte-reversed: its last byte is the big-endian first
    // byte, which is below the modulus' first byte.
    let BootKey::Rsa2048(k) = &public else {
        panic!("rsa key")
    };
    assert!(bank[0xFFFF] <= k.modulus[0]);
    let mut reversed = bank.clone();
    reversed[0xFF00..0x10000].reverse();
    let e = verify_bank(&reversed, &public).unwrap_err();
    assert_eq!(
        (e.kind, e.region),
        (ErrorKind::SignatureMismatch, Some(Region::Cm0p))
    );
    // An ECDSA key does not verify an RSA bank (the slot is not r||s with zero padding).
    let e = verify_bank(&bank, &boot_key(1).boot_key().unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MalformedSignature);
}

#[test]
fn rsa_key_object_layout_and_coefficients() {
    use crypto_bigint::{BoxedUint, Resize};
    let BootKey::Rsa2048(public) = rsa_key().boot_key().unwrap() else {
        panic!()
    };
    let obj = rsa2048_key_object(&public);
    let word = |at: usize| u32::from_le_bytes(obj[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 1096);
    assert_eq!(word(4), 0, "RSA-2048 scheme");
    assert_eq!(word(8), SFLASH_KEY_ADDRESS + 36);
    assert_eq!(word(12), 2048);
    assert_eq!(word(20), 256);
    assert_eq!(word(292), 65537, "exponent little-endian");
    let mut le = public.modulus;
    le.reverse();
    assert_eq!(&obj[36..292], &le[..], "modulus stored little-endian");
    assert_eq!(parse_key_object(&obj), Ok(BootKey::Rsa2048(public.clone())));

    // r*r' - n*n' = 1 (r = 2^2048), Barrett = floor(2^4096 / n), rBar = 2^2048 mod n.
    let c = rsa_coefficients(&public.modulus);
    let p = 4096 + 128;
    let n = BoxedUint::from_be_slice_vartime(&public.modulus).resize(p);
    let nprime = BoxedUint::from_le_slice_vartime(&c.inverse_modulus).resize(p);
    let one = BoxedUint::one_with_precision(p);
    let r = one.shl(2048);
    let low = n.wrapping_mul(&nprime).wrapping_add(&one);
    assert_eq!(
        low.rem_vartime(&r.to_nz().unwrap()),
        BoxedUint::zero_with_precision(p),
        "n*n' = -1 mod r"
    );
    let barrett = BoxedUint::from_le_slice_vartime(&c.barrett).resize(p);
    let two_4096 = one.shl(4096);
    let lo = n.wrapping_mul(&barrett);
    let hi = lo.wrapping_add(&n);
    assert!(
        lo <= two_4096 && two_4096 < hi,
        "Barrett is the floor quotient"
    );
    let rbar = BoxedUint::from_le_slice_vartime(&c.r_bar).resize(p);
    assert!(rbar < n);
    assert_eq!(r.rem_vartime(&n.to_nz().unwrap()), rbar);
}

#[test]
fn p256_key_object_round_trip_and_refusals() {
    let key = *p256_key(1).verifying_key();
    let obj = p256_key_object(&key);
    assert_eq!(&obj[0..8], &[76, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(obj[8], 0x04);
    assert_eq!(parse_key_object(&obj), Ok(BootKey::EcdsaP256(key)));
    // What SFlash holds before provisioning.
    assert_eq!(
        parse_key_object(&[0xFF; 0xC00]),
        Err(KeyObjectError::UnknownScheme(u32::MAX))
    );
    assert_eq!(
        parse_key_object(&obj[..40]),
        Err(KeyObjectError::Truncated { needed: 76 })
    );
    assert_eq!(
        parse_key_object(&[]),
        Err(KeyObjectError::Truncated { needed: 8 })
    );
    let mut off_curve = obj;
    off_curve[40] ^= 1;
    assert_eq!(
        parse_key_object(&off_curve),
        Err(KeyObjectError::BadField(8))
    );
    let mut padded = obj;
    padded[75] = 1;
    assert_eq!(parse_key_object(&padded), Err(KeyObjectError::BadField(73)));
    let mut rsa1024 = obj;
    rsa1024[4] = 1;
    rsa1024[5] = 0;
    assert_eq!(parse_key_object(&rsa1024), Err(KeyObjectError::Rsa1024));
}

#[test]
fn rsa_key_object_refuses_inconsistent_fields() {
    let BootKey::Rsa2048(public) = rsa_key().boot_key().unwrap() else {
        panic!()
    };
    let obj = rsa2048_key_object(&public);
    for (at, bit, expect) in [
        (8usize, 2u8, 8usize),
        (12, 2, 12),
        (32, 2, 32),
        (296, 2, 292),
        (36, 1, 36),
    ] {
        let mut bad = obj;
        bad[at] ^= bit;
        assert_eq!(
            parse_key_object(&bad),
            Err(KeyObjectError::BadField(expect)),
            "byte {at}"
        );
    }
    let mut size = obj;
    size[0] = 0;
    assert!(matches!(
        parse_key_object(&size),
        Err(KeyObjectError::WrongSize(_))
    ));
}

#[test]
fn verifier_reports_unsigned_and_even_exponent_keys_do_not_parse() {
    let BootKey::Rsa2048(public) = rsa_key().boot_key().unwrap() else {
        panic!()
    };
    let k = BootKey::Rsa2048(public.clone());
    assert_eq!(
        k.verify_digest(&[0; 32], &[0; 256]),
        Err(ferrota_image::scheme::SignatureFault::Unsigned)
    );
    let obj = rsa2048_key_object(&Rsa2048PublicKey {
        exponent: 2,
        ..public
    });
    assert_eq!(parse_key_object(&obj), Err(KeyObjectError::BadField(292)));
}

#[test]
fn ota_signature_round_trip_is_aws_shaped() {
    let key = p256_key(7);
    let file = payload(5, 100_000);
    let sig = sign_file(&key, &file).unwrap();
    let mut buf = [0u8; 96];
    let text = sig.to_base64(&mut buf).to_owned();
    assert!(
        text.starts_with("MEQC") || text.starts_with("MEUC"),
        "{text}"
    );
    let parsed = OtaSignature::from_base64(&text).unwrap();
    assert_eq!(parsed, sig);
    parsed
        .verify_file(key.verifying_key(), &file)
        .expect("verifies");
    // Unpadded base64 and surrounding whitespace (as pasted into a job document) are accepted.
    let unpadded = format!("  {}\n", text.trim_end_matches('='));
    assert_eq!(OtaSignature::from_base64(&unpadded).unwrap(), sig);

    let mut tampered = file.clone();
    tampered[77_777] ^= 1;
    assert_eq!(
        parsed.verify_file(key.verifying_key(), &tampered),
        Err(OtaSignatureError::Mismatch)
    );
    assert_eq!(
        parsed.verify_file(p256_key(8).verifying_key(), &file),
        Err(OtaSignatureError::Mismatch)
    );
    let mut truncated = file.clone();
    truncated.pop();
    assert!(parsed.verify_file(key.verifying_key(), &truncated).is_err());
}
