//! `ferrota device run`: the bundle of `ferrota thing create` carries a device.toml; a board
//! with erased banks halts in the boot chain with a non-zero exit, and a bad config is refused.

use crate::common;

use common::{Env, serve};

#[test]
fn thing_bundle_runs_a_board_that_halts_on_erased_banks() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundle", &[]);
    let toml = String::from_utf8(env.read("bundle/dev-1/device.toml")).unwrap();
    assert!(toml.contains("thing_name = \"dev-1\""), "{toml}");
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::signer_cert(
        &env,
        "bundle/dev-1/code-signing.crt.pem",
        &["--cn", "Signer", "--days", "30"],
    );
    env.ok(&["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"]);
    let out = env.run(&[
        "device",
        "run",
        "--config",
        "bundle/dev-1/device.toml",
        "--flash",
        "dev.t2g",
        "--timeout",
        "10",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stdout.contains("[dev-1]    ROM:"), "{stdout}");
    assert!(stderr.contains("the board halted"), "{stderr}");
}

#[test]
fn a_missing_config_is_refused() {
    let env = Env::new();
    let out = env.run(&[
        "device",
        "run",
        "--config",
        "nope.toml",
        "--flash",
        "dev.t2g",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

/// Issue 14 item 5: `device run --exit-after job` exits non-zero when the job FAILED, and says
/// why (the reason code with its words); `--json` streams the board's events as JSON lines
/// (item 10). The job is a data file the simulated application declines.
#[test]
fn exit_after_job_fails_with_the_reason_when_the_job_failed() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundle", &["--group", "fleet"]);
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::signer_cert(
        &env,
        "bundle/dev-1/code-signing.crt.pem",
        &["--cn", "Signer", "--days", "30"],
    );
    common::pack(&env, "boot.pem", "v1.bin");
    env.ok(&[
        "t2g",
        "new",
        "dev.t2g",
        "--boot-key",
        "boot.pem",
        "--hardware",
        "KIT_T2G",
    ]);
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "lower"]);
    let s = serve(&env);
    // The server's actual MQTT port (item 8 is about thing create writing it).
    let toml = String::from_utf8(env.read("bundle/dev-1/device.toml")).unwrap();
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("port") {
                format!("port = {}\n", s.mqtt_port)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    env.write("bundle/dev-1/device.toml", toml);
    env.write("data.bin", vec![0x5a; 10_000]);
    env.write("data.bin.sig", "MAYCAQECAQE=\n");
    env.ok(&[
        "ota",
        "create",
        "up1",
        "--file",
        "data.bin",
        "--file-type",
        "7",
        "--group",
        "fleet",
        "--api",
        &s.http,
        "--data-dir",
        "data",
    ]);
    let out = env.run(&[
        "device",
        "run",
        "--config",
        "bundle/dev-1/device.toml",
        "--flash",
        "dev.t2g",
        "--exit-after",
        "job",
        "--timeout",
        "60",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a FAILED job exits non-zero\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("the OTA job FAILED: "), "{stderr}");
    assert!(stderr.contains(" ("), "the reason in words: {stderr}");
    // One JSON object per line, camelCase, RFC 3339 times.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"booted"), "{kinds:?}");
    assert!(kinds.contains(&"connected"), "{kinds:?}");
    let fin = events
        .iter()
        .find(|e| e["event"] == "jobFinished")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(fin["status"], "FAILED");
    assert!(
        fin["reason"].as_str().is_some_and(|r| r.contains(" (")),
        "{fin}"
    );
    for e in &events {
        let t = e["timestamp"].as_str().expect("timestamp");
        assert!(
            t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z'),
            "RFC 3339: {t}"
        );
    }
}
