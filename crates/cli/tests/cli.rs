//! The `ferrota` binary, end to end: keys, certificates, pack, show, verify, OTA signatures,
//! merged HEX conversion, and how it fails.

use crate::common;

use common::{BANK_SIZE, Env, HEX_EOF, hex_data, pack};
use serde_json::Value;

#[test]
fn key_generate_refuses_to_overwrite_without_force() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "k.pem"]);
    let first = env.read("k.pem");
    assert!(String::from_utf8_lossy(&first).starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "private key must not be readable by others: {mode:o}"
        );
    }
    let err = env.fails(1, &["key", "generate", "-o", "k.pem"]);
    assert!(
        err.contains("k.pem: already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        env.read("k.pem"),
        first,
        "refused overwrite must leave the key untouched"
    );
    env.ok(&["key", "generate", "-o", "k.pem", "--force"]);
    assert_ne!(env.read("k.pem"), first);
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn key_public_formats() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "k.pem"]);
    let pem = env.ok(&["key", "public", "k.pem"]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    env.ok(&[
        "key", "public", "k.pem", "--format", "sflash", "-o", "k.sflash",
    ]);
    let obj = env.read("k.sflash");
    assert_eq!(obj.len(), 76);
    assert_eq!(&obj[..8], &[0x4C, 0, 0, 0, 0, 1, 0, 0]);
    let c = env.ok(&["key", "public", "k.pem", "--format", "c-array"]);
    assert!(
        c.contains("const uint8_t ferrota_sflash_public_key[76] = {"),
        "{c}"
    );
    assert_eq!(
        c.matches("0x").count(),
        76 + 1,
        "76 bytes plus the address in the comment:\n{c}"
    );
    // The public key round-trips through each form.
    env.write("k.pub.pem", &pem);
    assert_eq!(env.ok(&["key", "public", "k.pub.pem"]), pem);
    assert_eq!(env.ok(&["key", "public", "k.sflash"]), pem);
    let err = env.fails(1, &["key", "public", "nope.pem"]);
    assert!(err.contains("nope.pem: cannot read"), "{err}");
    env.write("junk.pem", "hello");
    let err = env.fails(1, &["key", "public", "junk.pem"]);
    assert!(err.contains("junk.pem: not a PEM file"), "{err}");
}

/// A reader that stops early (`ferrota t2g show dev.t2g | head -0`) ends the command quietly
/// with SIGPIPE's shell status 141, not with Rust's "failed printing to stdout" panic. The pipe's
/// read end is closed before the command starts, so its first write fails every time.
#[test]
fn a_closed_stdout_pipe_ends_quietly_without_a_panic() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    env.ok(&["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"]);
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(["t2g", "show", "dev.t2g"])
        .current_dir(env.dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run ferrota");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, "", "nothing on stderr");
    assert_eq!(out.status.code(), Some(141), "{out:?}");
}

fn json(env: &Env, file: &str) -> Value {
    serde_json::from_str(&env.ok(&["image", "show", file, "--json"])).expect("show --json is JSON")
}

#[test]
fn pack_show_verify_sign_and_fail() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::signer_cert(&env, "signer.crt", &["--cn", "Test Signer", "--days", "30"]);
    pack(&env, "boot.pem", "bank.bin");
    let bank = env.read("bank.bin");
    assert_eq!(bank.len(), BANK_SIZE);
    // ELF .data is placed at its load address (p_paddr 0x10000400), not its RAM address.
    assert_eq!(&bank[0x400..0x408], &[0xDA; 8]);
    assert_eq!(&bank[0x13C..0x140], &[0xDE, 0xAD, 0xBE, 0xEF]);
    assert_eq!(&bank[0x10200..0x10228], &[0x7E; 40]);
    assert_eq!(&bank[0x3E8110..0x3E8120], &[0x71; 16]);

    let j = json(&env, "bank.bin");
    assert_eq!(j["size"], BANK_SIZE);
    assert_eq!(j["sizeOk"], true);
    assert_eq!(j["versionRecord"]["version"], "1.2.3");
    assert_eq!(j["versionRecord"]["versionWord"], 0x0102_0003);
    assert_eq!(j["versionRecord"]["securityCounter"], 4);
    assert_eq!(j["versionRecord"]["hardware"], "KIT_T2G");
    assert_eq!(j["versionRecord"]["cm7_1App"], true);
    assert_eq!(j["versionRecordError"], Value::Null);
    let regions = j["regions"].as_array().unwrap();
    let expect = [
        ("cm0p", 0, 0xFF00, 0xC600_0000u32),
        ("cm7_0", 0x10000, 0x3D7F00, 0xC240_0000),
        ("cm7_1", 0x3E8000, 0xFF00, 0xC240_0001),
    ];
    for (r, (name, offset, obj_size, core)) in regions.iter().zip(expect) {
        assert_eq!(r["name"], name);
        assert_eq!(r["offset"], offset);
        assert_eq!(r["header"]["objSize"], obj_size);
        assert_eq!(r["header"]["core0Id"], core);
        assert_eq!(r["header"]["core0Vt"], 0xF0);
        assert_eq!(r["headerOk"], true);
        assert_eq!(r["signed"], true);
        assert_eq!(r["signatureOffset"], offset + obj_size);
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
    }
    let text = env.ok(&["image", "show", "bank.bin"]);
    assert!(
        text.contains("CM7_0 region at 0x010000") && text.contains("version record: 1.2.3"),
        "{text}"
    );

    // Boot signatures verify with the private key, the public PEM, the SFlash object.
    let out = env.ok(&["image", "verify", "bank.bin", "--boot-key", "boot.pem"]);
    assert!(
        out.contains("boot signatures OK") && out.contains("CM7_1"),
        "{out}"
    );
    env.ok(&["key", "public", "boot.pem", "-o", "boot.pub.pem"]);
    env.ok(&[
        "key",
        "public",
        "boot.pem",
        "--format",
        "sflash",
        "-o",
        "boot.sflash",
    ]);
    env.ok(&["image", "verify", "bank.bin", "--boot-key", "boot.pub.pem"]);
    env.ok(&["image", "verify", "bank.bin", "--boot-key", "boot.sflash"]);
    let err = env.fails(
        1,
        &["image", "verify", "bank.bin", "--boot-key", "signer.pem"],
    );
    assert!(
        err.contains("CM0+ region, bank offset 0x00ff00: signature does not match"),
        "{err}"
    );

    // One flipped byte in CM7_0's code: refused, naming the region and the signature's offset.
    let mut bad = bank.clone();
    bad[0x10200] ^= 1;
    env.write("bad.bin", &bad);
    let err = env.fails(1, &["image", "verify", "bad.bin", "--boot-key", "boot.pem"]);
    assert!(
        err.contains("bad.bin")
            && err.contains("CM7_0 region, bank offset 0x3e7f00: signature does not match"),
        "{err}"
    );
    let j = json(&env, "bad.bin");
    assert_ne!(
        j["regions"][1]["sha256"],
        json(&env, "bank.bin")["regions"][1]["sha256"]
    );

    // OTA signature: printed and written; verifies with the certificate and with the key.
    let b64 = env.ok(&["image", "sign-ota", "bank.bin", "--key", "signer.pem"]);
    let b64 = b64.trim();
    assert!(b64.starts_with("ME"), "{b64}");
    assert_eq!(
        String::from_utf8(env.read("bank.bin.sig")).unwrap().trim(),
        b64
    );
    let out = env.ok(&[
        "image",
        "verify",
        "bank.bin",
        "--ota-signature",
        "bank.bin.sig",
        "--cert",
        "signer.crt",
    ]);
    assert!(
        out.contains("OTA signature OK") && out.contains("Test Signer"),
        "{out}"
    );
    env.ok(&[
        "image",
        "verify",
        "bank.bin",
        "--ota-signature",
        b64,
        "--key",
        "signer.pem",
    ]);
    env.ok(&[
        "image",
        "verify",
        "bank.bin",
        "--boot-key",
        "boot.pem",
        "--ota-signature",
        b64,
        "--cert",
        "signer.crt",
    ]);
    // Same key, same file: deterministic signature (RFC 6979).
    env.ok(&[
        "image",
        "sign-ota",
        "bank.bin",
        "--key",
        "signer.pem",
        "-o",
        "again.sig",
    ]);
    assert_eq!(env.read("again.sig"), env.read("bank.bin.sig"));

    // Wrong key, modified file, truncated file, garbage signature.
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "bank.bin",
            "--ota-signature",
            b64,
            "--key",
            "boot.pem",
        ],
    );
    assert!(err.contains("OTA signature does not match"), "{err}");
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "bad.bin",
            "--ota-signature",
            "bank.bin.sig",
            "--cert",
            "signer.crt",
        ],
    );
    assert!(
        err.contains("bad.bin: OTA signature does not match"),
        "{err}"
    );
    env.write("short.bin", &bank[..0x20_0000]);
    let err = env.fails(
        1,
        &["image", "verify", "short.bin", "--boot-key", "boot.pem"],
    );
    assert!(
        err.contains("CM7_0 region") && err.contains("truncated"),
        "{err}"
    );
    env.fails(
        1,
        &[
            "image",
            "verify",
            "short.bin",
            "--ota-signature",
            b64,
            "--key",
            "signer.pem",
        ],
    );
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "bank.bin",
            "--ota-signature",
            "not-base64!",
            "--key",
            "signer.pem",
        ],
    );
    assert!(
        err.contains("not valid base64") && err.contains("no file named"),
        "{err}"
    );
    let err = env.fails(
        1,
        &[
            "image",
            "verify",
            "bank.bin",
            "--ota-signature",
            b64,
            "--cert",
            "signer.pem",
        ],
    );
    assert!(err.contains("signer.pem: expected a certificate"), "{err}");
    let j = json(&env, "short.bin");
    assert_eq!(j["sizeOk"], false);
    assert_eq!(j["regions"][1]["sha256"], Value::Null);

    // A missing input fails clearly and leaves existing outputs untouched.
    env.write("keep.sig", "keep");
    let err = env.fails(
        1,
        &[
            "image",
            "sign-ota",
            "missing.bin",
            "--key",
            "signer.pem",
            "-o",
            "keep.sig",
        ],
    );
    assert!(err.contains("missing.bin: cannot read"), "{err}");
    assert_eq!(env.read("keep.sig"), b"keep");
    let err = env.fails(
        1,
        &[
            "image",
            "pack",
            "--cm0p",
            "cm0p.elf",
            "--cm7-0",
            "missing.hex",
            "--version",
            "9.9.9",
            "--boot-key",
            "boot.pem",
            "-o",
            "bank.bin",
        ],
    );
    assert!(
        err.contains("--cm7-0") && err.contains("missing.hex: cannot read"),
        "{err}"
    );
    assert_eq!(
        env.read("bank.bin"),
        bank,
        "a failed pack must not touch the existing output"
    );
    let err = env.fails(
        1,
        &["image", "sign-ota", "bank.bin", "--key", "missing.pem"],
    );
    assert!(err.contains("missing.pem: cannot read"), "{err}");
}

#[test]
fn pack_refuses_what_it_cannot_place() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    let [cm0p, cm7_0, _] = common::write_builds(&env);
    env.write("blob.bin", [1u8; 16]);
    let base = |cm0p: &str, cm7_0: &str| {
        [
            "image",
            "pack",
            "--cm0p",
            cm0p,
            "--cm7-0",
            cm7_0,
            "--version",
            "1.0.0",
            "--boot-key",
            "boot.pem",
            "-o",
            "out.bin",
        ]
        .map(String::from)
    };
    let run =
        |args: [String; 12]| env.fails(1, &args.iter().map(String::as_str).collect::<Vec<_>>());
    // CM0+ data in CM7_0's region.
    let err = run(base("blob.bin@0x10010000", &cm7_0));
    assert!(
        err.contains("--cm0p blob.bin@0x10010000") && err.contains("outside its region"),
        "{err}"
    );
    // CM7_0 data in its own signature slot.
    let err = run(base(&cm0p, "blob.bin@0x103E7F00"));
    assert!(err.contains("outside its region"), "{err}");
    // CM0+ data where the version record goes.
    let err = run(base("blob.bin@0x10000020", &cm7_0));
    assert!(err.contains("version record area"), "{err}");
    // Raw data without an address, and a broken HEX file.
    let err = run(base("blob.bin", &cm7_0));
    assert!(err.contains("neither ELF") && err.contains("@0x"), "{err}");
    env.write("broken.hex", ":10000000\n");
    let err = run(base(&cm0p, "broken.hex"));
    assert!(
        err.contains("broken.hex") && err.contains("line 1"),
        "{err}"
    );
    assert!(!env.exists("out.bin"));
    // A bad version is a usage error.
    let err = env.fails(
        2,
        &[
            "image",
            "pack",
            "--cm0p",
            &cm0p,
            "--cm7-0",
            &cm7_0,
            "--version",
            "1.2",
            "--boot-key",
            "boot.pem",
            "-o",
            "o",
        ],
    );
    assert!(err.contains("major.minor.build"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.fails(2, &["image", "verify", "bank.bin"]);
    env.fails(
        2,
        &["image", "verify", "bank.bin", "--ota-signature", "AAAA"],
    );
    env.fails(
        2,
        &[
            "image",
            "verify",
            "bank.bin",
            "--cert",
            "c.pem",
            "--boot-key",
            "k.pem",
        ],
    );
    env.fails(
        2,
        &[
            "image",
            "pack",
            "--cm7-0",
            "a.elf",
            "--version",
            "1.0.0",
            "--boot-key",
            "k",
            "-o",
            "o",
        ],
    );
    env.fails(
        2,
        &[
            "cert",
            "code-signing",
            "--key",
            "k.pem",
            "--days",
            "0",
            "-o",
            "c.pem",
        ],
    );
    env.fails(
        2,
        &[
            "image",
            "from-merged-hex",
            "a.hex",
            "-o",
            "b.bin",
            "--version",
            "1.0.0",
        ],
    );
    env.fails(
        2,
        &[
            "image",
            "from-merged-hex",
            "a.hex",
            "-o",
            "b.bin",
            "--resign",
        ],
    );
    env.fails(2, &["key", "public", "k.pem", "--format", "der"]);
    let help = env.ok(&["image", "pack", "--help"]);
    assert!(
        help.contains("Examples:") && help.contains("file.bin@0x10010000"),
        "{help}"
    );
}

/// The merged HEX that ModusToolbox would make for `bank`: only its non-zero 16-byte lines (so
/// the gaps must be filled), plus SFlash, small-sector (DBM_DEBUG) and eFuse records.
fn merged_hex(bank: &[u8]) -> String {
    let mut text = String::new();
    for (i, chunk) in bank.chunks(16).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            text.push_str(&hex_data(0x1000_0000 + (i * 16) as u32, chunk));
        }
    }
    text.push_str(&hex_data(0x107F_0000, &[0xDB; 32]));
    text.push_str(&hex_data(0x1700_0800, &[0x5F; 48]));
    text.push_str(&hex_data(0x1700_6400, &[0x4C; 76]));
    text.push_str(&hex_data(0x9070_0000, &[0xEF; 4]));
    text.push_str(HEX_EOF);
    text
}

#[test]
fn from_merged_hex_like_mkbin() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    env.ok(&["key", "generate", "-o", "other.pem"]);
    pack(&env, "boot.pem", "bank.bin");
    let bank = env.read("bank.bin");
    // What cymcuelftool leaves: CM0+ and CM7_0 signed, CM7_1's slot zero.
    let mut unsigned = bank.clone();
    unsigned[0x3F7F00..].fill(0);
    env.write("app_combined.hex", merged_hex(&unsigned));

    // Plain conversion: exactly one bank, gaps zero-filled, foreign areas dropped and reported.
    let out = env.run(&[
        "image",
        "from-merged-hex",
        "app_combined.hex",
        "-o",
        "app_combined_s.bin",
    ]);
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    assert_eq!(env.read("app_combined_s.bin"), unsigned);
    assert!(
        report.contains("dropped 32 bytes (2 records from 0x107F0000): code-flash small sectors"),
        "{report}"
    );
    assert!(
        report.contains("dropped 124 bytes") && report.contains("SFlash"),
        "{report}"
    );
    assert!(
        report.contains("dropped 4 bytes (1 records from 0x90700000): eFuse"),
        "{report}"
    );
    let j = json(&env, "app_combined_s.bin");
    assert_eq!(j["regions"][2]["signed"], false);

    // With the boot key, only the unsigned CM7_1 is signed; ECDSA is deterministic, so the
    // result is byte-identical to the packed bank.
    let out = env.run(&[
        "image",
        "from-merged-hex",
        "app_combined.hex",
        "--boot-key",
        "boot.pem",
        "-o",
        "signed.bin",
    ]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("signed: CM7_1;"), "{report}");
    assert_eq!(env.read("signed.bin"), bank);
    env.ok(&["image", "verify", "signed.bin", "--boot-key", "boot.pem"]);

    // Existing signatures from another key are not silently mixed in.
    let err = env.fails(
        1,
        &[
            "image",
            "from-merged-hex",
            "app_combined.hex",
            "--boot-key",
            "other.pem",
            "-o",
            "x.bin",
        ],
    );
    assert!(
        err.contains("CM0+ region") && err.contains("--resign"),
        "{err}"
    );
    assert!(!env.exists("x.bin"));

    // A version record changes CM0+'s signed bytes: refused unless --resign.
    let err = env.fails(
        1,
        &[
            "image",
            "from-merged-hex",
            "app_combined.hex",
            "--boot-key",
            "boot.pem",
            "--version",
            "2.0.0",
            "-o",
            "v.bin",
        ],
    );
    assert!(
        err.contains("already signed") && err.contains("--resign"),
        "{err}"
    );
    assert!(!env.exists("v.bin"));
    env.ok(&[
        "image",
        "from-merged-hex",
        "app_combined.hex",
        "--boot-key",
        "other.pem",
        "--version",
        "2.0.0",
        "--security-counter",
        "5",
        "--resign",
        "-o",
        "v.bin",
    ]);
    let j = json(&env, "v.bin");
    assert_eq!(j["versionRecord"]["version"], "2.0.0");
    assert_eq!(j["versionRecord"]["securityCounter"], 5);
    env.ok(&["image", "verify", "v.bin", "--boot-key", "other.pem"]);
    env.fails(1, &["image", "verify", "v.bin", "--boot-key", "boot.pem"]);

    // Code-flash data beyond the bank cannot be placed: the line is named.
    let mut text = merged_hex(&unsigned);
    text.insert_str(0, &hex_data(0x1040_0000, &[1]));
    env.write("beyond.hex", &text);
    let err = env.fails(
        1,
        &["image", "from-merged-hex", "beyond.hex", "-o", "y.bin"],
    );
    assert!(
        err.contains("beyond.hex: Intel HEX line 2: address 0x10400000")
            && err.contains("outside the bank"),
        "{err}"
    );
    assert!(!env.exists("y.bin"));
    // A truncated HEX (no EOF record) is refused.
    let cut = &text[..text.len() / 2];
    let cut = &cut[..cut.rfind('\n').unwrap() + 1];
    env.write("cut.hex", cut);
    let err = env.fails(1, &["image", "from-merged-hex", "cut.hex", "-o", "y.bin"]);
    assert!(err.contains("no end-of-file record"), "{err}");
}

#[test]
fn inputs_are_read_with_a_bound() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    // A device that never ends, and a sparse file of 8 GiB: refused after the bound, at once.
    let sparse = std::fs::File::create(env.path("sparse.bin")).unwrap();
    sparse.set_len(8 << 30).unwrap();
    let t = std::time::Instant::now();
    for input in ["/dev/zero", "sparse.bin"] {
        // The sparse file says its size.
        let size = if input == "sparse.bin" {
            "file is 8589934592 bytes, "
        } else {
            ""
        };
        let err = env.fails(1, &["image", "show", input]);
        // A bank image may be Intel HEX (~11.5 MB of text): show reads up to 32 MiB.
        let want = format!("{input}: {size}larger than {} bytes", 32 << 20);
        assert!(err.contains(&want), "{err}");
        let err = env.fails(1, &["image", "sign-ota", input, "--key", "signer.pem"]);
        let want = format!("{input}: {size}larger than 16777216 bytes");
        assert!(err.contains(&want), "{err}");
        let err = env.fails(1, &["image", "from-merged-hex", input, "-o", "x.bin"]);
        assert!(
            err.contains(&format!("{input}: {size}larger than")),
            "{err}"
        );
        // Keys, certificates: a few hundred KB at most.
        let err = env.fails(1, &["key", "public", input]);
        assert!(
            err.contains(&format!("{input}: larger than 262144 bytes")),
            "{err}"
        );
    }
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    assert!(!env.exists("x.bin") && !env.exists("sparse.bin.sig"));
}

#[test]
fn sign_ota_warns_about_what_is_not_a_bank_and_keeps_a_signature() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    let sign = |file: &str, extra: &[&str]| {
        let mut args = vec!["image", "sign-ota", file, "--key", "signer.pem"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // Empty: nothing to sign, nothing written.
    env.write("empty.bin", b"");
    let out = run(sign("empty.bin", &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty.bin: empty file"));
    assert!(!env.exists("empty.bin.sig"));

    // Truncated / not a bank: signed, with a warning naming the file.
    env.write("short.bin", vec![0xa5; 1000]);
    let out = run(sign("short.bin", &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: short.bin: 1000 bytes, not a bank image"),
        "{err}"
    );
    // A bank-sized file that is no image: also warned about.
    env.write("zeros.bin", vec![0; BANK_SIZE]);
    let out = run(sign("zeros.bin", &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("warning: zeros.bin: not a bank image"),
        "{err}"
    );

    // An existing signature is kept without --force, replaced with it.
    let first = env.read("short.bin.sig");
    env.write("short.bin", vec![0x5a; 1000]);
    let out = run(sign("short.bin", &[]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.bin.sig: already exists (use --force"),
        "{err}"
    );
    assert_eq!(env.read("short.bin.sig"), first);
    assert!(run(sign("short.bin", &["--force"])).status.success());
    assert_ne!(env.read("short.bin.sig"), first);
}
