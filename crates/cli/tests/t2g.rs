//! `ferrota t2g ...`: the update walkthrough, rollback, downgrade, and bad inputs that must leave
//! the device file unchanged.

use crate::common;

use common::{BANK_SIZE, Env, camel_case_keys, write_builds};
use serde_json::Value;

/// A device with the boot key, v1 (counter 1) and v2 (counter 2) packed for KIT_T2G.
fn setup() -> Env {
    let env = Env::new();
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    let [cm0p, cm7_0, cm7_1] = write_builds(&env);
    for (v, c, out) in [("1.0.0", "1", "v1.bin"), ("2.0.0", "2", "v2.bin")] {
        env.ok(&[
            "image",
            "pack",
            "--cm0p",
            &cm0p,
            "--cm7-0",
            &cm7_0,
            "--cm7-1",
            &cm7_1,
            "--version",
            v,
            "--security-counter",
            c,
            "--hardware",
            "KIT_T2G",
            "--boot-key",
            "boot.pem",
            "-o",
            out,
        ]);
    }
    env.ok(&[
        "t2g",
        "new",
        "dev.t2g",
        "--boot-key",
        "boot.pem",
        "--hardware",
        "KIT_T2G",
    ]);
    env
}

fn show(env: &Env, dev: &str) -> Value {
    serde_json::from_str(&env.ok(&["t2g", "show", dev, "--json"])).expect("JSON")
}

/// Runs a failing command and checks the device file did not change.
fn fails_unchanged(env: &Env, dev: &str, args: &[&str]) -> String {
    let before = env.read(dev);
    let err = env.fails(1, args);
    assert_eq!(env.read(dev), before, "{args:?} changed {dev}");
    err
}

#[test]
fn walkthrough_update_confirm_and_rollback() {
    let env = setup();
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "lower"]);
    let out = env.ok(&["t2g", "boot", "dev.t2g"]);
    assert!(
        out.contains("started the lower (mapping A) bank: version 1.0.0"),
        "{out}"
    );
    assert!(
        out.contains("CM0+: CM7_0 and CM7_1 verified; start CM7_0 at 0x10010100"),
        "{out}"
    );

    env.ok(&["t2g", "program", "dev.t2g", "v2.bin", "--bank", "1"]);
    let out = env.ok(&["t2g", "activate", "dev.t2g"]);
    assert!(out.contains("activated the upper bank"), "{out}");
    let out = env.ok(&["t2g", "boot", "dev.t2g"]);
    assert!(out.contains("trial boot, attempt 1 of 3"), "{out}");
    assert!(out.contains("mapping B"), "{out}");
    assert!(out.contains("image state PendingCommit"), "{out}");
    std::fs::copy(env.path("dev.t2g"), env.path("trial.t2g")).unwrap();

    let out = env.ok(&["t2g", "confirm", "dev.t2g"]);
    assert!(
        out.contains("anti-rollback floor 2 (eFuse counter 2)"),
        "{out}"
    );
    let out = env.ok(&["t2g", "boot", "dev.t2g"]);
    assert!(
        out.contains("started the upper (mapping B) bank: version 2.0.0"),
        "{out}"
    );

    let j = show(&env, "dev.t2g");
    assert!(
        camel_case_keys(&j),
        "one key style (camelCase) in every --json: {j}"
    );
    assert_eq!(j["running"]["bank"], "upper");
    assert_eq!(j["running"]["mapping"], "B");
    assert_eq!(j["lifeCycle"], "NormalProvisioned");
    assert_eq!(j["hardware"], "KIT_T2G");
    assert_eq!(j["bootKey"]["scheme"], "ecdsa-p256-sha256");
    assert_eq!(j["floor"]["log"], 2);
    assert_eq!(j["floor"]["efuse"], 2);
    assert_eq!(j["log"]["state"]["current"], "upper");
    assert!(j["log"]["state"]["trial"].is_null());
    let events: Vec<&str> = j["log"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[0].starts_with("TRIAL") && events[2].starts_with("CONFIRMED"));
    assert_eq!(j["banks"][0]["status"], "valid");
    assert_eq!(j["banks"][0]["version"], "1.0.0");
    assert_eq!(j["banks"][1]["version"], "2.0.0");
    assert_eq!(j["banks"][1]["securityCounter"], 2);
    let lower = &j["wear"][0];
    assert_eq!(lower["erases"], 127);
    assert!(j["clockNs"].as_u64().unwrap() > 0);
    let text = env.ok(&["t2g", "show", "dev.t2g"]);
    assert!(
        text.contains("running: upper bank (dual-bank mode, mapping B)"),
        "{text}"
    );

    // Rollback: from the trial, the app rejects; the next boot runs the old bank.
    let out = env.ok(&["t2g", "reject", "trial.t2g"]);
    assert!(out.contains("the next boot runs the lower bank"), "{out}");
    let out = env.ok(&["t2g", "boot", "trial.t2g"]);
    assert!(
        out.contains("started the lower (mapping A) bank: version 1.0.0"),
        "{out}"
    );
    // The image that keeps running is the valid one (AWS PAL meaning); the rejected one is
    // shown locked, not "valid" (issue 14 item 1).
    assert!(out.contains("image state Valid"), "{out}");
    let j = show(&env, "trial.t2g");
    assert_eq!(j["running"]["bank"], "lower");
    assert_eq!(j["floor"]["log"], 0); // nothing was confirmed on this device
    assert_eq!(j["banks"][1]["status"], "locked", "{j}");
    assert_eq!(j["banks"][1]["version"], "2.0.0");
    assert_eq!(j["log"]["state"]["locked"]["upper"], true);
    let text = env.ok(&["t2g", "show", "trial.t2g"]);
    assert!(text.contains("upper bank: locked: "), "{text}");
    assert!(text.contains("locked banks: upper"), "{text}");
}

#[test]
fn trial_that_never_confirms_reverts_after_its_budget() {
    let env = setup();
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "lower"]);
    env.ok(&["t2g", "program", "dev.t2g", "v2.bin", "--bank", "upper"]);
    env.ok(&["t2g", "activate", "dev.t2g", "--budget", "2"]);
    for attempt in 1..=2 {
        let out = env.ok(&["t2g", "boot", "dev.t2g"]);
        assert!(out.contains(&format!("attempt {attempt} of 2")), "{out}");
    }
    let out = env.ok(&["t2g", "boot", "dev.t2g"]);
    assert!(out.contains("2 boots without a confirmation"), "{out}");
    assert!(out.contains("started the lower"), "{out}");
}

#[test]
fn downgrade_is_refused() {
    let env = setup();
    env.ok(&["t2g", "program", "dev.t2g", "v2.bin", "--bank", "lower"]);
    env.ok(&["t2g", "boot", "dev.t2g"]);
    env.ok(&["t2g", "confirm", "dev.t2g"]);
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "upper"]);
    // The agent's check refuses it before anything is written.
    let err = fails_unchanged(&env, "dev.t2g", &["t2g", "activate", "dev.t2g"]);
    assert!(
        err.contains("security counter 1, below the anti-rollback floor 2"),
        "{err}"
    );
    // Forced past the agent, the DBM refuses it at boot and stays on v2.
    env.ok(&["t2g", "activate", "dev.t2g", "--force"]);
    let out = env.ok(&["t2g", "boot", "dev.t2g"]);
    assert!(
        out.contains("security counter 1 is below the anti-rollback floor 2"),
        "{out}"
    );
    assert!(
        out.contains("started the lower (mapping A) bank: version 2.0.0"),
        "{out}"
    );
}

#[test]
fn secure_device_and_halts() {
    let env = setup();
    env.ok(&[
        "t2g",
        "new",
        "sec.t2g",
        "--boot-key",
        "boot.pem",
        "--life-cycle",
        "secure",
    ]);
    // Nothing programmed: the DBM halts; the command exits 1 with both reasons.
    let err = env.fails(1, &["t2g", "boot", "sec.t2g"]);
    assert!(
        err.contains("no image started: halted: both banks refused"),
        "{err}"
    );
    env.ok(&["t2g", "program", "sec.t2g", "v1.bin", "--bank", "upper"]);
    let out = env.ok(&["t2g", "boot", "sec.t2g"]);
    assert!(
        out.contains("S-HASH of SFlash (DBM, key, SWPU, TOC2) matches eFuse"),
        "{out}"
    );
    assert!(
        out.contains("fallback: the lower (mapping A) bank was refused"),
        "{out}"
    );
    assert_eq!(show(&env, "sec.t2g")["lifeCycle"], "Secure");
}

#[test]
fn program_warns_about_an_image_that_does_not_verify() {
    let env = setup();
    let mut bank = env.read("v1.bin");
    bank[0x1_0400] ^= 0xFF; // CM7_0 code
    env.write("bad.bin", &bank);
    let out = env.run(&["t2g", "program", "dev.t2g", "bad.bin", "--bank", "lower"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: bad.bin: does not verify"),
        "{stderr}"
    );
    let j = show(&env, "dev.t2g");
    assert_eq!(j["banks"][0]["status"], "cm7-invalid");
    // The agent refuses to activate an invalid image; the device is unchanged.
    env.ok(&["t2g", "program", "dev.t2g", "bad.bin", "--bank", "upper"]);
    let err = fails_unchanged(&env, "dev.t2g", &["t2g", "activate", "dev.t2g"]);
    assert!(
        err.contains("does not verify with the provisioned key"),
        "{err}"
    );
}

#[test]
fn bad_inputs_leave_the_device_unchanged() {
    let env = setup();
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "lower"]);
    let good = env.read("dev.t2g");

    // Bank files: missing, wrong size.
    let err = fails_unchanged(
        &env,
        "dev.t2g",
        &["t2g", "program", "dev.t2g", "nope.bin", "--bank", "upper"],
    );
    assert!(err.starts_with("error: nope.bin: cannot read"), "{err}");
    env.write("short.bin", vec![0u8; BANK_SIZE - 512]);
    let err = fails_unchanged(
        &env,
        "dev.t2g",
        &["t2g", "program", "dev.t2g", "short.bin", "--bank", "upper"],
    );
    assert!(
        err.contains("short.bin: a bank image is exactly 4161536 bytes (0x3F8000)"),
        "{err}"
    );
    env.fails(
        2,
        &["t2g", "program", "dev.t2g", "v1.bin", "--bank", "middle"],
    );

    // App actions that the log refuses.
    let err = fails_unchanged(&env, "dev.t2g", &["t2g", "reject", "dev.t2g"]);
    assert!(err.contains("no trial is pending"), "{err}");
    let err = fails_unchanged(&env, "dev.t2g", &["t2g", "activate", "dev.t2g"]);
    assert!(
        err.contains("the upper (mapping B) bank does not verify"),
        "{err}"
    );

    // `new` never replaces a device without --force, and needs a key.
    let err = fails_unchanged(
        &env,
        "dev.t2g",
        &["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"],
    );
    assert!(err.contains("already exists (use --force"), "{err}");
    let err = fails_unchanged(
        &env,
        "dev.t2g",
        &[
            "t2g",
            "new",
            "dev.t2g",
            "--boot-key",
            "nokey.pem",
            "--force",
        ],
    );
    assert!(err.contains("nokey.pem"), "{err}");

    // Damaged device files: every command refuses them and leaves them as they are.
    let mut other_version = good.clone();
    other_version[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut corrupted = good.clone();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("v2.t2g", other_version, "format version 2 is not supported"),
        ("cut.t2g", good[..good.len() / 2].to_vec(), "truncated"),
        ("bad.t2g", corrupted, "corrupted"),
        (
            "key.t2g",
            env.read("boot.pem"),
            "not a Ferrota T2G device file",
        ),
    ];
    for (name, bytes, msg) in cases {
        env.write(name, &bytes);
        for args in [
            vec!["t2g", "boot", name],
            vec!["t2g", "boot", name, "--user1"],
            vec!["t2g", "show", name],
            vec!["t2g", "show", name, "--json"],
            vec!["t2g", "program", name, "v1.bin", "--bank", "lower"],
            vec!["t2g", "activate", name],
            vec!["t2g", "confirm", name],
            vec!["t2g", "reject", name],
        ] {
            let err = fails_unchanged(&env, name, &args);
            assert!(
                err.starts_with(&format!("error: {name}: ")),
                "{args:?}: {err}"
            );
            assert!(err.contains(msg), "{args:?}: {err}");
        }
    }
    // A missing device file.
    for cmd in ["boot", "show", "activate", "confirm", "reject"] {
        let err = env.fails(1, &["t2g", cmd, "missing.t2g"]);
        assert!(
            err.starts_with("error: missing.t2g: cannot read the device file"),
            "{err}"
        );
        assert!(!env.exists("missing.t2g"));
    }
    assert_eq!(env.read("dev.t2g"), good);
}

#[test]
fn every_t2g_command_has_examples() {
    let env = Env::new();
    for cmd in [
        "new", "program", "boot", "show", "activate", "confirm", "reject",
    ] {
        let out = env.ok(&["t2g", cmd, "--help"]);
        assert!(out.contains("Examples:"), "t2g {cmd} --help:\n{out}");
    }
}
