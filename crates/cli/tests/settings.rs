//! One server setting for every command (issue 14 items 8, 9 and 12): a server on other ports
//! is found by `thing create` and `ota` through the same config file, `FERROTA_*` variables and
//! the record `ferrota serve` writes; a wrong API address fails before anything is uploaded;
//! MQTT is on loopback by default; logs carry no colour codes off a terminal; `thing create
//! --code-signing-cert` completes the device bundle.

use crate::common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, Serve, spawn_serve, uploads};

/// Every variable that steers `ferrota` towards a server, so the tests see only what they set.
const STEERING: &[&str] = &[
    "FERROTA_CONFIG",
    "FERROTA_DATA_DIR",
    "FERROTA_API",
    "FERROTA_TOKEN",
    "FERROTA_MQTT_PORT",
    "FERROTA_MQTT_LISTEN",
    "FERROTA_HTTP_LISTEN",
    "RUST_LOG",
    "NO_COLOR",
];

/// `ferrota args` in the test directory, with `vars` set and nothing else steering it (the
/// user configuration directory is the test directory's `xdg`).
fn ferrota(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrota"));
    c.args(args).current_dir(env.dir.path());
    for v in STEERING {
        c.env_remove(v);
    }
    c.env("XDG_CONFIG_HOME", env.path("xdg"));
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

fn run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    ferrota(env, args, vars).output().expect("run ferrota")
}

fn ok(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let o = run(env, args, vars);
    assert!(
        o.status.success(),
        "ferrota {args:?} {vars:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit status 1 and the message on stderr.
fn fails(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let o = run(env, args, vars);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "ferrota {args:?} {vars:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// `ferrota serve <args>` in the steered-free environment of [`ferrota`], stderr to `stderr`.
fn serve(env: &Env, args: &[&str], stderr: Stdio) -> Serve {
    let mut a = vec!["serve"];
    a.extend_from_slice(args);
    let mut c = ferrota(env, &a, &[]);
    c.stderr(stderr);
    spawn_serve(c)
}

fn device_port(env: &Env, thing: &str) -> u16 {
    let t = String::from_utf8(env.read(&format!("bundles/{thing}/device.toml"))).unwrap();
    let port = t
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .unwrap_or_else(|| panic!("no port in {t}"));
    port.parse().unwrap()
}

#[test]
fn a_server_on_other_ports_is_the_one_every_command_uses() {
    let env = Env::new();
    // The second server of the README: its own config, ports the system picks.
    env.write(
        "other.toml",
        "data_dir = \"data\"\nmqtt_listen = \"127.0.0.1:28883\"\nhttp_listen = \"127.0.0.1:0\"\n",
    );
    let c = ["-c", "other.toml"];
    ok(&env, &["ca", "init", "-c", "other.toml"], &[]);

    // No server yet: the config's port, and the note on stderr says where it came from.
    let mut a = vec!["thing", "create", "dev-0", "-o", "bundles"];
    a.extend_from_slice(&c);
    let o = run(&env, &a, &[]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(device_port(&env, "dev-0"), 28883);
    assert!(String::from_utf8_lossy(&o.stderr).contains("mqtt_listen"));
    // No API address known without a server: an error that says what to pass, not a guess.
    let mut a = vec!["ota", "list"];
    a.extend_from_slice(&c);
    assert!(fails(&env, &a, &[]).contains("--api"));

    // The server starts on a port other than its config's.
    let s = serve(
        &env,
        &["-c", "other.toml", "--mqtt-listen", "127.0.0.1:0"],
        Stdio::null(),
    );
    assert_ne!(s.mqtt_port, 28883);

    // thing create writes the port the server listens on, in device.toml and the C headers.
    let mut a = vec!["thing", "create", "dev-1", "-o", "bundles"];
    a.extend_from_slice(&c);
    let o = run(&env, &a, &[]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(device_port(&env, "dev-1"), s.mqtt_port);
    let h = String::from_utf8(env.read("bundles/dev-1/credentials_config.h")).unwrap();
    assert!(
        h.contains(&format!("#define AWS_MQTT_PORT {}", s.mqtt_port)),
        "{h}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(" listens, ") && err.contains("listening.json"),
        "{err}"
    );
    // The config names another fixed port than the server's: seen, not silently dropped.
    assert!(
        err.contains("warning: the configuration's mqtt_listen"),
        "{err}"
    );
    // A forwarded port is the operator's to give (flag, or its variable).
    let mut a = vec![
        "thing",
        "create",
        "dev-2",
        "-o",
        "bundles",
        "--mqtt-port",
        "443",
    ];
    a.extend_from_slice(&c);
    ok(&env, &a, &[]);
    assert_eq!(device_port(&env, "dev-2"), 443);
    ok(
        &env,
        &[
            "thing",
            "create",
            "dev-3",
            "-o",
            "bundles",
            "--data-dir",
            "data",
        ],
        &[("FERROTA_MQTT_PORT", "8884")],
    );
    assert_eq!(device_port(&env, "dev-3"), 8884);
    // Port 0 is no port a device can connect to: a usage error, nothing created.
    let o = run(
        &env,
        &[
            "thing",
            "create",
            "dev-4",
            "-o",
            "bundles",
            "--data-dir",
            "data",
        ],
        &[("FERROTA_MQTT_PORT", "0")],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(!env.exists("bundles/dev-4"));

    // ota create -c reaches that server (no --api): the upload and the update are there.
    env.write("fw.bin", vec![0x5a; 10_000]);
    env.write("fw.bin.sig", "MAYCAQECAQE=\n");
    fn create(id: &str) -> Vec<&str> {
        vec![
            "ota",
            "create",
            id,
            "--file",
            "fw.bin",
            "--file-type",
            "7",
            "--thing",
            "dev-1",
        ]
    }
    let mut a = create("up1");
    a.extend_from_slice(&c);
    let d: serde_json::Value = serde_json::from_str(&ok(&env, &a, &[])).unwrap();
    assert_eq!(d["jobId"], "AFR_OTA-up1");
    assert_eq!(uploads(&env).len(), 1);

    // The environment: FERROTA_CONFIG, FERROTA_DATA_DIR, FERROTA_API, FERROTA_TOKEN.
    let listed = |out: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["otaUpdateId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        listed(ok(
            &env,
            &["ota", "list"],
            &[("FERROTA_CONFIG", "other.toml")]
        )),
        ["up1"]
    );
    assert_eq!(
        listed(ok(&env, &["ota", "list"], &[("FERROTA_DATA_DIR", "data")])),
        ["up1"]
    );
    assert!(
        ok(&env, &["thing", "list"], &[("FERROTA_DATA_DIR", "data")]).contains("dev-1"),
        "FERROTA_DATA_DIR"
    );
    let token = String::from_utf8(env.read("data/api-token")).unwrap();
    assert_eq!(
        listed(ok(
            &env,
            &["ota", "list"],
            &[("FERROTA_API", &s.http), ("FERROTA_TOKEN", token.trim())]
        )),
        ["up1"]
    );
    let e = fails(
        &env,
        &["ota", "list", "--data-dir", "data"],
        &[("FERROTA_TOKEN", "wrong")],
    );
    assert!(
        e.contains("401") && e.contains("(from FERROTA_TOKEN)"),
        "{e}"
    );
    // A flag wins over its variable; the variable over the config and the record.
    let bad = "http://127.0.0.1:9";
    assert_eq!(
        listed(ok(
            &env,
            &["ota", "list", "--data-dir", "data", "--api", &s.http],
            &[("FERROTA_API", bad)]
        )),
        ["up1"]
    );
    let e = fails(
        &env,
        &["ota", "list", "--data-dir", "data"],
        &[("FERROTA_API", bad)],
    );
    assert!(
        e.contains("no Ferrota API at http://127.0.0.1:9 (FERROTA_API)"),
        "{e}"
    );

    // ./ferrota.toml is the default config.
    env.write(
        "ferrota.toml",
        "data_dir = \"data\"\nhttp_listen = \"127.0.0.1:0\"\n",
    );
    assert_eq!(listed(ok(&env, &["ota", "list"], &[])), ["up1"]);
    std::fs::remove_file(env.path("ferrota.toml")).unwrap();
    // …and $XDG_CONFIG_HOME/ferrota/ferrota.toml after it.
    std::fs::create_dir_all(env.path("xdg/ferrota")).unwrap();
    let data = env.path("data").display().to_string();
    env.write(
        "xdg/ferrota/ferrota.toml",
        format!("data_dir = {data:?}\nhttp_listen = \"127.0.0.1:0\"\n"),
    );
    assert_eq!(listed(ok(&env, &["ota", "list"], &[])), ["up1"]);

    // A wrong address fails at once with a clear message, and nothing is uploaded.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mqtt = format!("http://127.0.0.1:{}", s.mqtt_port);
    let refused = format!("http://127.0.0.1:{closed}");
    for (api, says) in [
        (&mqtt, "is that the MQTT/TLS port?"),
        (&refused, "is `ferrota serve` running?"),
    ] {
        let mut a = create("up2");
        a.extend_from_slice(&["--data-dir", "data", "--api", api]);
        let t = Instant::now();
        let e = fails(&env, &a, &[]);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(e.contains(&format!("no Ferrota API at {api}")), "{e}");
        assert!(e.contains(says), "{e}");
        assert!(
            e.contains("(--api)"),
            "says where the address came from: {e}"
        );
        assert_eq!(uploads(&env).len(), 1, "nothing uploaded: {e}");
    }
    assert_eq!(
        listed(ok(&env, &["ota", "list", "--data-dir", "data"], &[])),
        ["up1"]
    );
    drop(s);
}

/// An HTTP server that is not Ferrota's (it answers 404 to everything) is named as such.
#[test]
fn another_http_server_is_not_taken_for_the_api() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
            );
        }
    });
    env.write("fw.bin", vec![0x5a; 1000]);
    env.write("fw.bin.sig", "MAYCAQECAQE=\n");
    let e = fails(
        &env,
        &[
            "ota",
            "create",
            "u",
            "--file",
            "fw.bin",
            "--file-type",
            "7",
            "--thing",
            "t",
            "--data-dir",
            "data",
            "--token",
            "x",
            "--api",
            &api,
        ],
        &[],
    );
    assert!(e.contains("is not a Ferrota API"), "{e}");
    assert!(e.contains("404"), "{e}");
    assert!(uploads(&env).is_empty());
}

#[test]
fn serve_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let env = Env::new();
    let mut s = serve(&env, &common::SERVE[1..], Stdio::piped());
    let _ = s.child.kill();
    let _ = s.child.wait();
    let mut err = Vec::new();
    std::io::Read::read_to_end(&mut s.child.stderr.take().unwrap(), &mut err).unwrap();
    let text = String::from_utf8_lossy(&err);
    // The first start logs the creation of the fleet CA at INFO.
    assert!(text.contains("INFO"), "{text}");
    assert!(!err.contains(&0x1b), "ESC in the log: {text:?}");
}

#[test]
fn serve_help_says_mqtt_is_on_loopback_by_default() {
    let env = Env::new();
    let h = ok(&env, &["serve", "--help"], &[]);
    assert!(h.contains("default 127.0.0.1:8883"), "{h}");
    assert!(!h.contains("0.0.0.0:8883)"), "{h}");
    assert!(h.contains("FERROTA_MQTT_LISTEN"), "{h}");
}

#[test]
fn thing_create_puts_the_code_signing_certificate_into_the_bundle() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::signer_cert(&env, "signer.crt", &[]);
    let create = |name: &str, cert: &str| {
        run(
            &env,
            &[
                "thing",
                "create",
                name,
                "--data-dir",
                "data",
                "-o",
                "bundles",
                "--code-signing-cert",
                cert,
            ],
            &[],
        )
    };
    let o = create("dev-1", "signer.crt");
    assert!(o.status.success(), "{o:?}");
    let pem = String::from_utf8(env.read("bundles/dev-1/code-signing.crt.pem")).unwrap();
    assert_eq!(pem, String::from_utf8(env.read("signer.crt")).unwrap());
    // …and into ota_config.h, where the seed's firmware takes it.
    let h = String::from_utf8(env.read("bundles/dev-1/ota_config.h")).unwrap();
    let define =
        h.find("#define AWS_IOT_OTA_SIGNING_CERT \\\n\"-----BEGIN CERTIFICATE-----\\n\" \\\n");
    let endif = h.rfind("#endif");
    assert!(define.is_some() && define < endif, "{h}");
    assert!(h.contains("\"-----END CERTIFICATE-----\\n\"\n"), "{h}");
    assert!(h.contains("configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID"), "{h}");
    // The bundle is complete: the device's own loader reads it, the pinned key included.
    let loaded = ferrota_device::config::DeviceConfig::load(&env.path("bundles/dev-1/device.toml"))
        .expect("the bundle loads");
    let signer = ferrota_keys::load_ota_signing_key(&env.path("signer.pem")).unwrap();
    assert_eq!(loaded.code_signing_key, *signer.verifying_key());

    // DER in, PEM out.
    let der = std::process::Command::new("openssl")
        .args([
            "x509",
            "-in",
            "signer.crt",
            "-outform",
            "DER",
            "-out",
            "signer.der",
        ])
        .current_dir(env.dir.path())
        .status();
    if der.map(|s| s.success()).unwrap_or(false) {
        assert!(create("dev-2", "signer.der").status.success());
        assert_eq!(
            env.read("bundles/dev-2/code-signing.crt.pem"),
            env.read("signer.crt")
        );
    }

    // Not a certificate: a clear error, no bundle, no thing.
    env.write("garbage.crt", "hello");
    for (file, says) in [
        ("signer.pem", "not a certificate"),
        ("garbage.crt", "garbage.crt"),
        ("missing.crt", "missing.crt"),
    ] {
        let o = create("dev-x", file);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains("--code-signing-cert"), "{file}: {err}");
        assert!(err.contains(says), "{file}: {err}");
        assert!(!env.exists("bundles/dev-x"), "{file}: no bundle");
        let things = ok(&env, &["thing", "list", "--data-dir", "data"], &[]);
        assert!(!things.contains("dev-x"), "{file}: no thing: {things}");
    }
}

/// The whole point of item 8: a board whose bundle came from `thing create` connects to a
/// second server on other ports (before, its device.toml named 8883, and the board retried
/// against whatever listened there), and the bundle needs no `cp` of the code-signing
/// certificate.
#[test]
fn a_board_from_thing_create_connects_to_a_server_on_other_ports() {
    let env = Env::new();
    env.write(
        "other.toml",
        "data_dir = \"data\"\nmqtt_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
    );
    ok(&env, &["ca", "init", "-c", "other.toml"], &[]);
    let s = serve(&env, &["-c", "other.toml"], Stdio::null());
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    common::signer_cert(&env, "signer.crt", &[]);
    ok(
        &env,
        &[
            "thing",
            "create",
            "dev-1",
            "-o",
            "bundles",
            "--code-signing-cert",
            "signer.crt",
        ],
        &[("FERROTA_CONFIG", "other.toml")],
    );
    assert_eq!(device_port(&env, "dev-1"), s.mqtt_port);
    common::pack(&env, "boot.pem", "v1.bin");
    env.ok(&["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"]);
    env.ok(&["t2g", "program", "dev.t2g", "v1.bin", "--bank", "lower"]);
    let o = run(
        &env,
        &[
            "device",
            "run",
            "--config",
            "bundles/dev-1/device.toml",
            "--flash",
            "dev.t2g",
            "--exit-after",
            "connect",
            "--timeout",
            "20",
        ],
        &[],
    );
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    drop(s);
}
