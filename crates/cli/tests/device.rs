//! `ferrota device run`: the bundle of `ferrota thing create` carries a device.toml; a board
//! with erased banks halts in the boot chain with a non-zero exit, and a bad config is refused.

mod common;

use common::Env;

#[test]
fn thing_bundle_runs_a_board_that_halts_on_erased_banks() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    env.ok(&[
        "thing",
        "create",
        "dev-1",
        "--data-dir",
        "data",
        "-o",
        "bundle",
    ]);
    let toml = String::from_utf8(env.read("bundle/dev-1/device.toml")).unwrap();
    assert!(toml.contains("thing_name = \"dev-1\""), "{toml}");
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    env.ok(&[
        "cert",
        "code-signing",
        "--key",
        "signer.pem",
        "--cn",
        "Signer",
        "--days",
        "30",
        "-o",
        "bundle/dev-1/code-signing.crt.pem",
    ]);
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
