use std::time::{Duration, SystemTime};

use ferrota_image::ota::{OtaSignature, sign_file};
use ferrota_image::sflash_key::{P256_OBJECT_SIZE, RSA2048_OBJECT_SIZE};

use super::*;

fn p256() -> PrivateKey {
    PrivateKey::generate(KeyType::EcdsaP256).unwrap()
}

#[test]
fn p256_pkcs8_round_trip_and_public_forms() {
    let key = p256();
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{}",
        &*pem
    );
    let back = KeyFile::parse(pem.as_bytes())
        .unwrap()
        .into_private()
        .unwrap();
    let public = key.public_key().unwrap();
    assert_eq!(back.public_key().unwrap(), public);

    let pub_pem = public.to_pem().unwrap();
    assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(
        KeyFile::parse(pub_pem.as_bytes())
            .unwrap()
            .public_key()
            .unwrap(),
        public
    );
    let err = KeyFile::parse(pub_pem.as_bytes())
        .unwrap()
        .into_private()
        .unwrap_err();
    assert!(err.to_string().contains("expected a private key"), "{err}");

    let obj = public.sflash_object();
    assert_eq!(obj.len(), P256_OBJECT_SIZE);
    assert_eq!(KeyFile::parse(&obj).unwrap().public_key().unwrap(), public);
    let der = public.to_spki_der().unwrap();
    assert_eq!(KeyFile::parse(&der).unwrap().public_key().unwrap(), public);
}

#[test]
fn sec1_with_parameters_block_is_read() {
    // What `openssl ecparam -name prime256v1 -genkey` writes: an EC PARAMETERS block first.
    let key = p256();
    let PrivateKey::EcdsaP256(sk) = &key else {
        unreachable!()
    };
    let secret = p256::SecretKey::from(sk.clone());
    let sec1 = secret.to_sec1_pem(pem_rfc7468::LineEnding::LF).unwrap();
    let text = format!(
        "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
        &*sec1
    );
    let back = KeyFile::parse(text.as_bytes())
        .unwrap()
        .into_private()
        .unwrap();
    assert_eq!(back.public_key().unwrap(), key.public_key().unwrap());
    let only_params =
        "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    let e = KeyFile::parse(only_params.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("found EC PARAMETERS"), "{e}");
}

#[test]
fn malformed_inputs_say_what_was_expected() {
    let key = p256().to_pkcs8_pem().unwrap();
    let truncated = &key[..key.len() - 30];
    let e = KeyFile::parse(truncated.as_bytes()).unwrap_err();
    assert!(matches!(e, ParseError::PemUnterminated { .. }), "{e}");
    let mut garbled = key.to_string();
    garbled.replace_range(40..44, "!!!!");
    assert!(matches!(
        KeyFile::parse(garbled.as_bytes()),
        Err(ParseError::Pem { .. })
    ));
    // CRLF line endings (files edited on Windows) are read.
    let crlf = key.replace('\n', "\r\n");
    assert!(KeyFile::parse(crlf.as_bytes()).is_ok());
    let e = KeyFile::parse(b"hello").unwrap_err();
    assert!(e.to_string().contains("not a PEM file"), "{e}");
    let e = KeyFile::parse(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(matches!(e, ParseError::Encrypted), "{e}");
    let e = KeyFile::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).unwrap_err();
    assert!(matches!(e, ParseError::DerNotRecognized), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let e = load_private_key(&missing).unwrap_err();
    assert!(e.to_string().contains("nope.pem: cannot read"), "{e}");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "xyz").unwrap();
    let e = load_public_key(&bad).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: not a PEM file", bad.display())),
        "{e}"
    );
}

#[test]
fn code_signing_certificate_carries_the_key() {
    let key = p256();
    let PrivateKey::EcdsaP256(sk) = &key else {
        unreachable!()
    };
    let pem = code_signing_certificate(sk, "ferrota test signer, with comma", 30).unwrap();
    let KeyFile::Certificate(info) = KeyFile::parse(pem.as_bytes()).unwrap() else {
        panic!("not a certificate")
    };
    assert_eq!(info.public_key, key.public_key().unwrap());
    assert!(info.code_signing);
    assert_eq!(info.subject, info.issuer);
    assert!(
        info.subject.contains("ferrota test signer"),
        "{}",
        info.subject
    );
    let span = info.not_after.duration_since(info.not_before).unwrap();
    assert_eq!(span, Duration::from_secs(30 * 86_400));
    assert!(info.not_before <= SystemTime::now());
    // An OTA signature made with the key verifies under the certificate's key.
    let sig = sign_file(sk, b"file").unwrap();
    let vk = KeyFile::parse(pem.as_bytes())
        .unwrap()
        .public_key()
        .unwrap()
        .ota_verifying_key()
        .unwrap();
    OtaSignature::from_der(sig.to_der().as_bytes())
        .unwrap()
        .verify_file(&vk, b"file")
        .unwrap();
    assert!(matches!(
        code_signing_certificate(sk, "x", 0),
        Err(ParseError::Validity { days: 0 })
    ));
}

#[test]
fn rsa_keys_load_as_boot_keys_but_not_ota_keys() {
    use pkcs1::EncodeRsaPrivateKey;
    let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let PrivateKey::Rsa2048(rk) = &key else {
        unreachable!()
    };
    let pkcs1 = rk.to_pkcs1_pem(pkcs1::LineEnding::LF).unwrap();
    let back = KeyFile::parse(pkcs1.as_bytes())
        .unwrap()
        .into_private()
        .unwrap();
    assert_eq!(back.public_key().unwrap(), key.public_key().unwrap());
    let pkcs8 = key.to_pkcs8_pem().unwrap();
    let back = KeyFile::parse(pkcs8.as_bytes())
        .unwrap()
        .into_private()
        .unwrap();
    let public = back.public_key().unwrap();
    assert_eq!(public, key.public_key().unwrap());
    assert_eq!(public.sflash_object().len(), RSA2048_OBJECT_SIZE);
    assert_eq!(
        KeyFile::parse(&public.sflash_object())
            .unwrap()
            .public_key()
            .unwrap(),
        public
    );
    assert_eq!(
        KeyFile::parse(public.to_pem().unwrap().as_bytes())
            .unwrap()
            .public_key()
            .unwrap(),
        public
    );
    let e = back.into_ota_signing_key().unwrap_err();
    assert!(e.to_string().contains("expected an ECDSA P-256 key"), "{e}");
}

#[test]
fn c_array_renders_every_byte() {
    let text = c_array("ferrota_sflash_public_key", "demo */ x", &[0x4c, 0, 0xff]);
    assert_eq!(
        text,
        "/* demo * / x */\n#include <stdint.h>\n\nconst uint8_t ferrota_sflash_public_key[3] = {\n    0x4c, 0x00, 0xff,\n};\n"
    );
    assert!(c_array("9-bad name", "", &[]).contains("_9_bad_name[0]"));
}
