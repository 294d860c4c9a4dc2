//! Interoperability with OpenSSL, both ways: keys, OTA signatures, certificates, RSA boot keys.
//! Each test prints a note and passes when `openssl` is not installed.

use crate::common;

use std::process::Command;

use common::{Env, pack};

/// Runs openssl in the test dir; `None` (with a note) if it is not installed.
fn openssl(env: &Env, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("openssl")
        .args(args)
        .current_dir(env.dir.path())
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "note: openssl is not installed; skipping the OpenSSL interoperability check"
            );
            None
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    }
}

fn openssl_ok(env: &Env, args: &[&str]) -> Option<String> {
    let out = openssl(env, args)?;
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn ota_signatures_both_ways() {
    let env = Env::new();
    let Some(_) = openssl_ok(
        &env,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "k.pem",
        ],
    ) else {
        return;
    };
    openssl_ok(&env, &["ec", "-in", "k.pem", "-pubout", "-out", "pub.pem"]);
    env.write(
        "file.bin",
        (0..100_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );

    // ferrota signs, openssl verifies.
    env.ok(&[
        "image", "sign-ota", "file.bin", "--key", "k.pem", "-o", "file.sig",
    ]);
    openssl_ok(
        &env,
        &["base64", "-d", "-A", "-in", "file.sig", "-out", "sig.der"],
    );
    let out = openssl_ok(
        &env,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "file.bin",
        ],
    )
    .unwrap();
    assert!(out.contains("Verified OK"), "{out}");
    // ...and openssl refuses it for another file (the check can fail).
    env.write("other.bin", b"other");
    let out = openssl(
        &env,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "other.bin",
        ],
    )
    .unwrap();
    assert!(!out.status.success());

    // openssl signs (DER), ferrota verifies: as a DER file and as base64 text.
    openssl_ok(
        &env,
        &[
            "dgst", "-sha256", "-sign", "k.pem", "-out", "o.der", "file.bin",
        ],
    );
    let out = env.ok(&[
        "image",
        "verify",
        "file.bin",
        "--ota-signature",
        "o.der",
        "--key",
        "pub.pem",
    ]);
    assert!(out.contains("OTA signature OK"), "{out}");
    openssl_ok(&env, &["base64", "-A", "-in", "o.der", "-out", "o.b64"]);
    env.ok(&[
        "image",
        "verify",
        "file.bin",
        "--ota-signature",
        "o.b64",
        "--key",
        "k.pem",
    ]);
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "other.bin",
            "--ota-signature",
            "o.der",
            "--key",
            "pub.pem",
        ],
    );
    assert!(err.contains("does not match"), "{err}");

    // A key with its EC PARAMETERS block (ecparam without -noout) is read too.
    openssl_ok(
        &env,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "k2.pem",
        ],
    );
    env.ok(&[
        "image", "sign-ota", "file.bin", "--key", "k2.pem", "-o", "k2.sig",
    ]);
    env.ok(&[
        "image",
        "verify",
        "file.bin",
        "--ota-signature",
        "k2.sig",
        "--key",
        "k2.pem",
    ]);
    // A P-384 key is refused with the reason.
    openssl_ok(
        &env,
        &[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            "k384.pem",
        ],
    );
    let err = env.fails(1, &["image", "sign-ota", "file.bin", "--key", "k384.pem"]);
    assert!(
        err.contains("k384.pem") && err.contains("expected P-256"),
        "{err}"
    );
}

#[test]
fn certificates_both_ways() {
    let env = Env::new();
    common::signer_cert(&env, "c.pem", &["--cn", "ota@example.com", "--days", "10"]);
    let Some(text) = openssl_ok(&env, &["x509", "-in", "c.pem", "-noout", "-text"]) else {
        return;
    };
    assert!(text.contains("Code Signing"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(
        text.contains("ecdsa-with-SHA256") && text.contains("CN = ota@example.com"),
        "{text}"
    );
    assert!(text.contains("Version: 3"), "{text}");
    // The self-signature is valid, and the certificate's key is the signer's.
    let out = openssl_ok(&env, &["verify", "-CAfile", "c.pem", "c.pem"]).unwrap();
    assert!(out.contains("c.pem: OK"), "{out}");
    openssl_ok(
        &env,
        &[
            "x509",
            "-in",
            "c.pem",
            "-noout",
            "-pubkey",
            "-out",
            "c.pub.pem",
        ],
    );
    assert_eq!(
        env.read("c.pub.pem"),
        env.ok(&["key", "public", "signer.pem"]).into_bytes()
    );

    // A certificate made with AWS's OpenSSL recipe works with ferrota.
    env.write(
        "cert_config.txt",
        "[ req ]\nprompt = no\ndistinguished_name = my_dn\n\n[ my_dn ]\ncommonName = test_signer@amazon.com\n\n\
         [ my_exts ]\nkeyUsage = digitalSignature\nextendedKeyUsage = codeSigning\n",
    );
    openssl_ok(
        &env,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ecdsasigner.key",
        ],
    );
    openssl_ok(
        &env,
        &[
            "req",
            "-new",
            "-x509",
            "-config",
            "cert_config.txt",
            "-extensions",
            "my_exts",
            "-nodes",
            "-days",
            "365",
            "-key",
            "ecdsasigner.key",
            "-out",
            "ecdsasigner.crt",
        ],
    );
    env.write("file.bin", b"firmware");
    env.ok(&["image", "sign-ota", "file.bin", "--key", "ecdsasigner.key"]);
    let out = env.ok(&[
        "image",
        "verify",
        "file.bin",
        "--ota-signature",
        "file.bin.sig",
        "--cert",
        "ecdsasigner.crt",
    ]);
    assert!(out.contains("test_signer@amazon.com"), "{out}");
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "file.bin",
            "--ota-signature",
            "file.bin.sig",
            "--cert",
            "c.pem",
        ],
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn openssl_rsa_key_as_boot_key() {
    let env = Env::new();
    // OpenSSL 3 writes PKCS#8; -traditional gives the PKCS#1 "RSA PRIVATE KEY" form.
    let Some(_) = openssl_ok(&env, &["genrsa", "-out", "rsa.pem", "2048"]) else {
        return;
    };
    openssl_ok(
        &env,
        &["rsa", "-in", "rsa.pem", "-traditional", "-out", "rsa1.pem"],
    );
    assert!(String::from_utf8_lossy(&env.read("rsa1.pem")).contains("BEGIN RSA PRIVATE KEY"));
    openssl_ok(
        &env,
        &["rsa", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"],
    );
    pack(&env, "rsa1.pem", "bank.bin");
    let out = env.ok(&["image", "verify", "bank.bin", "--boot-key", "rsa.pem"]);
    assert!(out.contains("rsa2048-pkcs1v15-sha256"), "{out}");
    env.ok(&["image", "verify", "bank.bin", "--boot-key", "rsa.pub.pem"]);
    env.ok(&[
        "key",
        "public",
        "rsa.pem",
        "--format",
        "sflash",
        "-o",
        "rsa.sflash",
    ]);
    assert_eq!(env.read("rsa.sflash").len(), 1096);
    env.ok(&["image", "verify", "bank.bin", "--boot-key", "rsa.sflash"]);
    assert_eq!(
        env.ok(&["key", "public", "rsa.sflash"]).into_bytes(),
        env.read("rsa.pub.pem")
    );

    // OpenSSL accepts the CM0+ boot signature (stored little-endian in the slot) over the signed
    // bytes 0x0000..0xFF00.
    let bank = env.read("bank.bin");
    env.write("cm0p.bin", &bank[..0xFF00]);
    let mut sig = bank[0xFF00..0x10000].to_vec();
    sig.reverse();
    env.write("cm0p.sig", &sig);
    let out = openssl_ok(
        &env,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "rsa.pub.pem",
            "-signature",
            "cm0p.sig",
            "cm0p.bin",
        ],
    );
    assert!(out.unwrap().contains("Verified OK"));

    // The seed's flow: cymcuelftool signed CM0+ and CM7_0 with the RSA key, CM7_1 was left
    // unsigned; from-merged-hex signs CM7_1 only (PKCS#1 v1.5 is deterministic: same bytes).
    let mut merged = String::new();
    for (i, chunk) in bank.chunks(16).enumerate() {
        let mut chunk = chunk.to_vec();
        if i * 16 >= 0x3F7F00 {
            chunk.fill(0);
        }
        if chunk.iter().any(|&b| b != 0) {
            merged.push_str(&common::hex_data(0x1000_0000 + (i * 16) as u32, &chunk));
        }
    }
    merged.push_str(common::HEX_EOF);
    env.write("app_combined.hex", merged);
    let out = env.run(&[
        "image",
        "from-merged-hex",
        "app_combined.hex",
        "--boot-key",
        "rsa.pem",
        "-o",
        "s.bin",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signed: CM7_1;"),
        "{out:?}"
    );
    assert_eq!(env.read("s.bin"), bank);

    // An RSA key is not an OTA signing key; a 1024-bit one is no boot key.
    let err = env.fails(1, &["image", "sign-ota", "bank.bin", "--key", "rsa.pem"]);
    assert!(
        err.contains("rsa.pem") && err.contains("ECDSA P-256"),
        "{err}"
    );
    openssl_ok(&env, &["genrsa", "-out", "rsa1024.pem", "1024"]);
    let err = env.fails(1, &["key", "public", "rsa1024.pem"]);
    assert!(
        err.contains("must be 2048 bits") && err.contains("1024"),
        "{err}"
    );
}
