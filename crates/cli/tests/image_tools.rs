//! `ferrota image` for initial programming and release checks (issue 14): Intel HEX output at
//! the bank's flash address, a two-core merged HEX, appIds that follow the version record,
//! security counter warnings, `--json`, and files that are not bank images.

use crate::common;

use common::{BANK_SIZE, Env, HEX_EOF, hex_data, pack, pack_with, write_builds};
use ferrota_image::header::{app_id_cm0p, app_id_cm7};
use ferrota_image::input;
use ferrota_image::version::FirmwareVersion;
use serde_json::Value;

/// Packs the test builds without CM7_1 (a two-core build), version 1.2.3, counter 4.
fn pack_two_core(env: &Env, out: &str, extra: &[&str]) -> std::process::Output {
    let [cm0p, cm7_0, _] = write_builds(env);
    let mut args = vec![
        "image",
        "pack",
        "--cm0p",
        &cm0p,
        "--cm7-0",
        &cm7_0,
        "--version",
        "1.2.3",
        "--hardware",
        "KIT_T2G",
        "--boot-key",
        "boot.pem",
        "-o",
        out,
    ];
    if !extra.contains(&"--security-counter") {
        args.extend(["--security-counter", "4"]);
    }
    args.extend(extra);
    env.run(&args)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The merged HEX ModusToolbox would make for `bank`: its non-zero 16-byte lines only, plus an
/// SFlash record that must be dropped.
fn merged_hex(bank: &[u8]) -> String {
    let mut text = String::new();
    for (i, chunk) in bank.chunks(16).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            text.push_str(&hex_data(0x1000_0000 + (i * 16) as u32, chunk));
        }
    }
    text.push_str(&hex_data(0x1700_0800, &[0x5F; 48]));
    text.push_str(HEX_EOF);
    text
}

/// The one segment of an Intel HEX file, read with the project's own HEX reader.
fn hex_segment(bytes: &[u8]) -> (u32, Vec<u8>) {
    let segs = input::read(bytes, Some(input::Format::Hex)).expect("written HEX reads back");
    assert_eq!(segs.len(), 1, "one contiguous run");
    let s = segs.into_iter().next().unwrap();
    (s.address, s.data)
}

fn show_json(env: &Env, file: &str) -> Value {
    serde_json::from_str(&env.ok(&["image", "show", file, "--json"])).expect("JSON")
}

#[test]
fn pack_writes_intel_hex_at_the_bank_address() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    pack(&env, "boot.pem", "bank.bin");
    let bank = env.read("bank.bin");
    assert_eq!(bank.len(), BANK_SIZE);

    // A .hex name: Intel HEX at the lower bank (0x10000000), every byte (zeroes included).
    pack(&env, "boot.pem", "bank.hex");
    let text = env.read("bank.hex");
    assert!(text.starts_with(b":02000004"), "Intel HEX text");
    assert_eq!(hex_segment(&text), (0x1000_0000, bank.clone()));

    // --bank upper: the upper bank's address in the single-bank view, 0x103F8000.
    let run = |out, extra: &[&str]| pack_with(&env, "boot.pem", out, extra);
    let o = run("upper.hex", &["--bank", "upper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Intel HEX") && stderr(&o).contains("0x103f8000"));
    assert_eq!(
        hex_segment(&env.read("upper.hex")),
        (0x103F_8000, bank.clone())
    );
    // --format overrides the name both ways.
    let o = run("bank.img", &["--format", "ihex"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(hex_segment(&env.read("bank.img")).0, 0x1000_0000);
    let o = run("raw.hex", &["--format", "bin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(env.read("raw.hex"), bank);
    // --bank with a raw output would change nothing: refused, nothing written.
    let o = run("x.bin", &["--bank", "upper"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: x.bin: --bank") && stderr(&o).contains("no address"),
        "{}",
        stderr(&o)
    );
    assert!(!env.exists("x.bin"));

    // verify's boot check reads the HEX bank image too; sign-ota says HEX is not what OTA sends.
    let out = env.ok(&["image", "verify", "upper.hex", "--boot-key", "boot.pem"]);
    assert!(out.contains("boot signatures OK"), "{out}");
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    let o = env.run(&["image", "sign-ota", "upper.hex", "--key", "signer.pem"]);
    assert!(
        stderr(&o).contains("Intel HEX text, not a bank image")
            && stderr(&o).contains("OTA sends the raw bank"),
        "{}",
        stderr(&o)
    );

    // image show reads the HEX bank image too.
    let j = show_json(&env, "upper.hex");
    assert_eq!(j["hexAddress"], 0x103F_8000);
    assert_eq!(j["versionRecord"]["version"], "1.2.3");
    assert_eq!(j["sizeOk"], true);

    // from-merged-hex writes HEX the same way.
    env.write("merged.hex", merged_hex(&bank));
    env.ok(&[
        "image",
        "from-merged-hex",
        "merged.hex",
        "-o",
        "converted.hex",
    ]);
    assert_eq!(hex_segment(&env.read("converted.hex")), (0x1000_0000, bank));
}

#[test]
fn from_merged_hex_two_core_build_is_signed_as_pack_does() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    let o = pack_two_core(&env, "two.bin", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let packed = env.read("two.bin");
    // What a two-core ModusToolbox build gives: CM0+ and CM7_0 signed, CM7_1 all zero (no
    // header at all).
    let mut merged = packed.clone();
    merged[0x3E_8000..].fill(0);
    env.write("two.hex", merged_hex(&merged));

    // With the boot key: CM7_1 becomes the empty, signed image pack makes; byte-identical.
    let o = env.run(&[
        "image",
        "from-merged-hex",
        "two.hex",
        "--boot-key",
        "boot.pem",
        "-o",
        "signed.bin",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("two-core build"), "{}", stderr(&o));
    assert_eq!(env.read("signed.bin"), packed);
    env.ok(&["image", "verify", "signed.bin", "--boot-key", "boot.pem"]);

    // Without a key: converted, but never silently: the warning says what is missing.
    let o = env.run(&["image", "from-merged-hex", "two.hex", "-o", "plain.bin"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: plain.bin: the CM7_1 region is empty") && err.contains("--boot-key"),
        "{err}"
    );
    assert_eq!(env.read("plain.bin"), merged);
}

#[test]
fn pack_and_from_merged_hex_agree_on_app_ids() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    let o = pack_two_core(&env, "two.bin", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let packed = env.read("two.bin");
    // A build compiled with appversion.h 1.0.0, not yet signed (no signatures, no CM7_1), whose
    // version record is written by from-merged-hex for 1.2.3.
    let stale = FirmwareVersion::new(1, 0, 0);
    let mut build = packed.clone();
    build[4..8].copy_from_slice(&app_id_cm0p(stale).to_le_bytes());
    build[0x1_0004..0x1_0008].copy_from_slice(&app_id_cm7(stale).to_le_bytes());
    build[0xFF00..0x1_0000].fill(0);
    build[0x3E_7F00..].fill(0);
    env.write("stale.hex", merged_hex(&build));
    env.ok(&[
        "image",
        "from-merged-hex",
        "stale.hex",
        "--boot-key",
        "boot.pem",
        "--version",
        "1.2.3",
        "--security-counter",
        "4",
        "--hardware",
        "KIT_T2G",
        "-o",
        "merged.bin",
    ]);
    assert_eq!(
        env.read("merged.bin"),
        packed,
        "same inputs, same appIds, same bytes as pack"
    );

    // A signed region whose appId would change needs --resign.
    let mut signed_stale = packed.clone();
    signed_stale[0x1_0004..0x1_0008].copy_from_slice(&app_id_cm7(stale).to_le_bytes());
    signed_stale[0xFF00..0x1_0000].fill(0); // CM0+ unsigned, so the record may be written
    env.write("signed_stale.hex", merged_hex(&signed_stale));
    let err = env.fails(
        1,
        &[
            "image",
            "from-merged-hex",
            "signed_stale.hex",
            "--boot-key",
            "boot.pem",
            "--version",
            "1.2.3",
            "-o",
            "no.bin",
        ],
    );
    assert!(
        err.contains("CM7_0 region is signed") && err.contains("--resign"),
        "{err}"
    );
    assert!(!env.exists("no.bin"));

    // image show flags a header whose appId disagrees with the version record.
    env.write("stale_show.bin", &signed_stale);
    let text = env.ok(&["image", "show", "stale_show.bin"]);
    assert!(
        text.contains("warning: appId 0x01008002 disagrees with the version record's 1.2.3"),
        "{text}"
    );
    let j = show_json(&env, "stale_show.bin");
    assert_eq!(j["regions"][0]["appIdExpected"], Value::Null);
    assert_eq!(
        j["regions"][1]["appIdExpected"],
        app_id_cm7(FirmwareVersion::new(1, 2, 3))
    );
    let text = env.ok(&["image", "show", "two.bin"]);
    assert!(!text.contains("disagrees"), "{text}");
}

#[test]
fn pack_warns_about_the_security_counter() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    // Left at 0: warned.
    let [cm0p, cm7_0, _] = write_builds(&env);
    let o = env.run(&[
        "image",
        "pack",
        "--cm0p",
        &cm0p,
        "--cm7-0",
        &cm7_0,
        "--version",
        "1.0.0",
        "--boot-key",
        "boot.pem",
        "-o",
        "zero.bin",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: zero.bin: security counter 0"),
        "{}",
        stderr(&o)
    );
    // auto: imgtool's version word major<<24 | minor<<16 | build; no warning.
    let o = pack_two_core(&env, "auto.bin", &["--security-counter", "auto"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let j = show_json(&env, "auto.bin");
    assert_eq!(j["versionRecord"]["securityCounter"], 0x0102_0003);

    // Against the previous release (counter 4, version 1.2.3): a lower counter, a version that
    // is not newer.
    let o = pack_two_core(&env, "prev.bin", &[]);
    assert!(o.status.success());
    let o = pack_two_core(
        &env,
        "next.bin",
        &["--security-counter", "3", "--previous", "prev.bin"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("security counter 3 is lower than the previous release's 4"),
        "{err}"
    );
    assert!(
        err.contains("version 1.2.3 is not newer than the previous release's 1.2.3"),
        "{err}"
    );
    // A HEX bank image written by pack serves as --previous too; an equal counter is fine.
    let o = pack_two_core(&env, "prev.hex", &[]);
    assert!(o.status.success());
    let o = pack_two_core(&env, "same.bin", &["--previous", "prev.hex"]);
    assert!(!stderr(&o).contains("lower than"), "{}", stderr(&o));
    // --previous that is not a bank image: an error, nothing written.
    let o = pack_two_core(&env, "bad.bin", &["--previous", "cm0p.elf"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: --previous: cm0p.elf: not a bank image: an ELF file"),
        "{}",
        stderr(&o)
    );
    assert!(!env.exists("bad.bin"));
    // Not a number or auto: a usage error.
    let o = pack_two_core(&env, "bad.bin", &["--security-counter", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("or auto"), "{}", stderr(&o));
}

#[test]
fn pack_and_verify_json() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::signer_cert(&env, "signer.crt", &["--cn", "Json Signer"]);
    let o = pack_two_core(&env, "bank.hex", &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).expect("pack --json is one JSON object");
    assert_eq!(j["file"], "bank.hex");
    assert_eq!(j["format"], "ihex");
    assert_eq!(j["address"], 0x1000_0000);
    assert_eq!(j["bankBytes"], BANK_SIZE);
    assert_eq!(j["versionRecord"]["version"], "1.2.3");
    assert_eq!(j["versionRecord"]["securityCounter"], 4);
    assert_eq!(j["versionRecord"]["hardware"], "KIT_T2G");
    assert_eq!(j["regions"][0]["source"], "cm0p.elf");
    assert_eq!(j["regions"][2]["source"], Value::Null);
    assert_eq!(j["warnings"], serde_json::json!([]));

    let o = pack_two_core(&env, "bank.bin", &[]);
    assert!(o.status.success());
    env.ok(&["image", "sign-ota", "bank.bin", "--key", "signer.pem"]);
    let out = env.ok(&[
        "image",
        "verify",
        "bank.bin",
        "--boot-key",
        "boot.pem",
        "--ota-signature",
        "bank.bin.sig",
        "--cert",
        "signer.crt",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).expect("verify --json is one JSON object");
    assert_eq!(j["ok"], true);
    assert_eq!(j["bootSignatures"]["regions"].as_array().unwrap().len(), 3);
    assert_eq!(j["bootSignatures"]["regions"][1]["objSize"], 0x3D_7F00);
    assert_eq!(j["bootSignatures"]["versionRecord"]["securityCounter"], 4);
    assert_eq!(j["otaSignature"]["bytes"], BANK_SIZE);
    assert!(
        j["otaSignature"]["certificateSubject"]
            .as_str()
            .unwrap()
            .contains("Json Signer"),
        "{j}"
    );
    let out = env.ok(&[
        "image",
        "verify",
        "bank.bin",
        "--boot-key",
        "boot.pem",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["otaSignature"], Value::Null);
    // A failed check: an error and exit 1, no document on stdout.
    let o = env.run(&[
        "image",
        "verify",
        "bank.bin",
        "--boot-key",
        "signer.pem",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).starts_with("error: bank.bin: boot signature check failed"));
}

#[test]
fn show_refuses_what_is_not_a_bank_image() {
    let env = Env::new();
    write_builds(&env);
    env.write("erased.bin", vec![0xFF; BANK_SIZE]);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let random: Vec<u8> = (0..0x4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    env.write("random.bin", random);
    env.write("empty.bin", b"");
    for (file, says) in [
        ("cm0p.elf", "an ELF file"),
        ("erased.bin", "is 0xff (an erased bank)"),
        ("random.bin", "no region has a valid CySAF header"),
        ("empty.bin", "the file is empty"),
        ("cm7_0.hex", "Intel HEX that is not one bank image"),
    ] {
        for json in [false, true] {
            let mut args = vec!["image", "show", file];
            if json {
                args.push("--json");
            }
            let o = env.run(&args);
            assert_eq!(o.status.code(), Some(1), "{file}");
            let err = stderr(&o);
            assert!(err.starts_with(&format!("error: {file}: ")), "{err}");
            assert!(err.contains(says), "{file}: {err}");
            assert!(stdout(&o).is_empty(), "{file}");
        }
    }
}

#[test]
fn t2g_program_warns_below_the_floor() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    for (v, c, out) in [("1.0.0", "1", "v1.bin"), ("2.0.0", "2", "v2.bin")] {
        let [cm0p, cm7_0, _] = write_builds(&env);
        env.ok(&[
            "image",
            "pack",
            "--cm0p",
            &cm0p,
            "--cm7-0",
            &cm7_0,
            "--version",
            v,
            "--security-counter",
            c,
            "--boot-key",
            "boot.pem",
            "-o",
            out,
        ]);
    }
    env.ok(&["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"]);
    let o = env.run(&["t2g", "program", "dev.t2g", "v2.bin", "--bank", "lower"]);
    assert!(!stderr(&o).contains("floor"), "{}", stderr(&o));
    env.ok(&["t2g", "boot", "dev.t2g"]);
    env.ok(&["t2g", "confirm", "dev.t2g"]);
    let o = env.run(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "upper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "warning: v1.bin: security counter 1 is below the board's anti-rollback floor 2"
        ),
        "{}",
        stderr(&o)
    );
}

/// Issue #19: `image diff` writes a delta that rebuilds NEW from OLD and prints its size
/// against the image's code and the bank; `image compress` the same for a packed image. Bad
/// inputs end in an error naming the file, and leave no output.
#[test]
fn image_diff_and_compress_round_trip_and_refuse_bad_input() {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::pack_version(&env, "1.2.3", false, "old.bin");
    common::pack_version(&env, "1.2.4", true, "new.bin");
    let (old, new) = (env.read("old.bin"), env.read("new.bin"));

    let out = env.ok(&["image", "diff", "old.bin", "new.bin", "-o", "patch.frpk"]);
    assert!(out.contains("from 1.2.3 to 1.2.4"), "{out}");
    assert!(
        out.contains("% of the image's code") && out.contains("% of the bank"),
        "{out}"
    );
    let patch = env.read("patch.frpk");
    assert!(out.contains(&format!("{} bytes", patch.len())), "{out}");
    assert_eq!(&patch[..4], b"FRPK");
    assert_eq!(ferrota_delta::encode::apply(&patch, &old).unwrap(), new);
    assert!(
        patch.len() < new.len() / 50,
        "patch of {} bytes",
        patch.len()
    );
    let j: Value = serde_json::from_str(&env.ok(&[
        "image",
        "diff",
        "old.bin",
        "new.bin",
        "-o",
        "patch.frpk",
        "--force",
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["bytes"], patch.len());
    assert_eq!(j["imageBytes"], BANK_SIZE);
    assert_eq!(j["baseVersion"], "1.2.3");
    // Code: the bytes outside runs of 256 or more of one value (padding, erased flash).
    let code: usize = new
        .chunk_by(|a, b| a == b)
        .filter(|r| r.len() < 256)
        .map(<[u8]>::len)
        .sum();
    assert_eq!(j["codeBytes"], code);
    assert!(code > 0 && code < new.len() / 10, "code {code}");
    let pct = j["percentOfCode"].as_f64().unwrap();
    assert!(
        (pct - 100.0 * patch.len() as f64 / code as f64).abs() < 1e-9,
        "{j}"
    );

    let out = env.ok(&["image", "compress", "new.bin", "-o", "new.frpk"]);
    assert!(out.contains("packed image"), "{out}");
    let packed = env.read("new.frpk");
    assert_eq!(ferrota_delta::encode::apply(&packed, &[]).unwrap(), new);

    // Bad input: each refused with the file and the reason, and no output written.
    env.write("junk.bin", vec![0x5a; 10_000]);
    env.write("short.bin", &new[..BANK_SIZE / 2]);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["junk.bin", "new.bin"],
            &["junk.bin", "OLD is not a bank image"],
        ),
        (
            &["old.bin", "short.bin"],
            &["short.bin", "NEW is not a bank image", "bytes"],
        ),
        (&["old.bin", "missing.bin"], &["missing.bin", "cannot read"]),
        (&["new.bin", "new.bin"], &["the same image"]),
    ];
    for (inputs, needles) in cases {
        let mut args = vec!["image", "diff"];
        args.extend_from_slice(inputs);
        args.extend(["-o", "out.frpk"]);
        let e = env.fails(1, &args);
        for n in *needles {
            assert!(e.contains(n), "{inputs:?}: {n:?} not in {e}");
        }
        assert!(!env.exists("out.frpk"), "{inputs:?}: output written");
    }
    let e = env.fails(1, &["image", "compress", "junk.bin", "-o", "out.frpk"]);
    assert!(e.contains("junk.bin"), "{e}");
    assert!(!env.exists("out.frpk"));
    // An existing output is kept without --force.
    let e = env.fails(
        1,
        &["image", "diff", "old.bin", "new.bin", "-o", "new.frpk"],
    );
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(env.read("new.frpk"), packed);
    let help = env.ok(&["image", "diff", "--help"]);
    assert!(
        help.contains("% of") || help.contains("divided by"),
        "{help}"
    );
}
