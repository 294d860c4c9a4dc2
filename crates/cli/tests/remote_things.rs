//! Issue 18, item 5 (CLI part): every `ferrota thing` command works against a remote server
//! reached by URL and token (`--server URL --token T`, or `FERROTA_SERVER`/`FERROTA_TOKEN`),
//! from a directory with no data directory and no configuration; a viewer token is refused
//! the changes (403, naming the roles) and nothing changes.

use crate::common;

use common::*;
use serde_json::Value;

#[test]
fn thing_commands_work_against_a_remote_server_by_url_and_token() {
    let srv = Env::new();
    let s = serve(&srv);
    let http = s.http.as_str();
    let admin = String::from_utf8(srv.read("data/api-token")).unwrap();
    let admin = admin.trim();
    let viewer = srv.ok(&[
        "token",
        "create",
        "--name",
        "vera",
        "--role",
        "viewer",
        "--api",
        http,
        "--data-dir",
        "data",
    ]);
    let viewer = viewer.trim();

    // The client: another directory, no data directory, no config.
    let cli = Env::new();
    let with = |token: &str, a: &[&str]| -> Vec<String> {
        a.iter()
            .copied()
            .chain(["--server", http, "--token", token])
            .map(str::to_string)
            .collect()
    };
    let ok = |token: &str, a: &[&str]| {
        let v = with(token, a);
        cli.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let fails = |token: &str, a: &[&str]| {
        let v = with(token, a);
        cli.fails(1, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let describe = |token: &str| -> Value {
        serde_json::from_str(&ok(token, &["thing", "describe", "dev-1"])).unwrap()
    };

    // create: the bundle from the server's answer, naming the server's MQTT port.
    let out = ok(
        admin,
        &[
            "thing",
            "create",
            "dev-1",
            "--group",
            "lab",
            "--attribute",
            "model=KIT_T2G",
            "-o",
            "bundles",
        ],
    );
    assert!(out.trim().ends_with("bundles/dev-1"), "{out}");
    for f in [
        "dev-1.key.pem",
        "dev-1.crt.pem",
        "root-ca.pem",
        "bundle.json",
    ] {
        assert!(cli.exists(&format!("bundles/dev-1/{f}")), "{f}");
    }
    let device = String::from_utf8(cli.read("bundles/dev-1/device.toml")).unwrap();
    assert!(device.contains(&s.mqtt_port.to_string()), "{device}");
    let cred = String::from_utf8(cli.read("bundles/dev-1/credentials_config.h")).unwrap();
    assert!(
        cred.contains(&format!("AWS_MQTT_PORT {}", s.mqtt_port)),
        "{cred}"
    );

    // list, update, describe.
    let list: Value = serde_json::from_str(&ok(admin, &["thing", "list", "--json"])).unwrap();
    assert_eq!(list[0]["thingName"], "dev-1");
    assert_eq!(list[0]["groups"][0], "lab");
    let attrs: Value = serde_json::from_str(&ok(
        admin,
        &["thing", "update", "dev-1", "--attribute", "site=bonn"],
    ))
    .unwrap();
    assert_eq!(attrs["model"], "KIT_T2G");
    assert_eq!(attrs["site"], "bonn");
    let d = describe(viewer);
    assert_eq!(d["attributes"]["site"], "bonn");
    assert_eq!(d["certificates"][0]["status"], "ACTIVE");
    let lines = ok(viewer, &["thing", "list"]);
    assert!(lines.starts_with("dev-1\tlab\t"), "{lines}");

    // A viewer reads but changes nothing: create, update and revoke are refused by name.
    let e = fails(viewer, &["thing", "create", "dev-2", "-o", "bundles"]);
    assert!(
        e.contains("403") && e.contains("viewer") && e.contains("admin"),
        "{e}"
    );
    assert!(!cli.exists("bundles/dev-2"));
    let left: Vec<_> = std::fs::read_dir(cli.path("bundles")).unwrap().collect();
    assert_eq!(
        left.len(),
        1,
        "only dev-1's bundle, no staging left: {left:?}"
    );
    let e = fails(viewer, &["thing", "revoke", "dev-1"]);
    assert!(
        e.contains("403") && e.contains("viewer") && e.contains("admin"),
        "{e}"
    );
    let e = fails(
        viewer,
        &["thing", "update", "dev-1", "--remove-attribute", "site"],
    );
    assert!(e.contains("403") && e.contains("viewer"), "{e}");
    let d = describe(admin);
    assert_eq!(d["certificates"][0]["status"], "ACTIVE");
    assert_eq!(d["attributes"]["site"], "bonn");
    let list: Value = serde_json::from_str(&ok(admin, &["thing", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // A remote create takes the server's endpoint: --mqtt-port is refused, nothing created.
    let e = fails(
        admin,
        &[
            "thing",
            "create",
            "dev-3",
            "--mqtt-port",
            "1883",
            "-o",
            "bundles",
        ],
    );
    assert!(e.contains("--mqtt-port"), "{e}");

    // revoke by FERROTA_SERVER / FERROTA_TOKEN.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(["thing", "revoke", "dev-1"])
        .env("FERROTA_SERVER", http)
        .env("FERROTA_TOKEN", admin)
        .current_dir(cli.path("."))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("revoked 1 certificate(s) of dev-1"),
        "{stdout}"
    );
    assert_eq!(describe(viewer)["certificates"][0]["status"], "REVOKED");

    // The client never made or read a data directory.
    assert!(!cli.exists("ferrota-data") && !cli.exists("data"));
    let list: Value = serde_json::from_str(&ok(admin, &["thing", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}
