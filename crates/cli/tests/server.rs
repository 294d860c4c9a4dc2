//! `ferrota serve`, `ca`, `thing` and `ota` end to end: the real binary on loopback port 0,
//! killed with SIGKILL and restarted with nothing lost; mosquitto_sub as a third-party device
//! when installed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Env;

struct Serve {
    child: Child,
    http: String,
    mqtt_port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &Env) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args([
            "serve",
            "--data-dir",
            "data",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferrota serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut http = String::new();
    let mut mqtt_port = 0;
    for _ in 0..3 {
        let l = lines.next().expect("serve output").unwrap();
        if let Some(a) = l.strip_prefix("http ") {
            http = format!("http://{a}");
        } else if let Some(a) = l.strip_prefix("mqtt ") {
            mqtt_port = a.rsplit(':').next().unwrap().parse().unwrap();
        }
    }
    assert!(!http.is_empty() && mqtt_port != 0);
    Serve {
        child,
        http,
        mqtt_port,
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn serve_thing_ota_kill_restart() {
    let env = Env::new();
    env.ok(&[
        "ca",
        "init",
        "--data-dir",
        "data",
        "--server-name",
        "ota.example.com",
    ]);
    assert!(
        !env.run(&["ca", "init", "--data-dir", "data"])
            .status
            .success(),
        "init twice"
    );
    env.ok(&[
        "thing",
        "create",
        "dev-1",
        "--group",
        "fleet",
        "--data-dir",
        "data",
        "-o",
        "bundles",
    ]);
    for f in [
        "dev-1.crt.pem",
        "dev-1.key.pem",
        "root-ca.pem",
        "credentials_config.h",
        "ota_config.h",
        "bundle.json",
    ] {
        assert!(env.exists(&format!("bundles/dev-1/{f}")), "{f}");
    }
    let creds = String::from_utf8(env.read("bundles/dev-1/credentials_config.h")).unwrap();
    assert!(creds.contains("#define CLIENT_IDENTIFIER \"dev-1\""));
    assert!(
        String::from_utf8(env.read("bundles/dev-1/ota_config.h"))
            .unwrap()
            .contains("configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID 141U")
    );
    assert!(
        env.ok(&["thing", "list", "--data-dir", "data"])
            .contains("dev-1\tfleet")
    );

    let s = serve(&env);
    env.write("fw.bin", vec![0x5a; 10_000]);
    // Not firmware (a bank image is refused as anything else): a data file, fileType 7.
    env.write("fw.bin.sig", "MAYCAQECAQE=\n");

    // A third-party device (mosquitto_sub) waits for notify-next.
    let sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.mqtt_port.to_string(),
            "--cafile",
            "bundles/dev-1/root-ca.pem",
            "--cert",
            "bundles/dev-1/dev-1.crt.pem",
            "--key",
            "bundles/dev-1/dev-1.key.pem",
            "-i",
            "dev-1",
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-t",
            "$aws/things/dev-1/jobs/notify-next",
            "-C",
            "1",
            "-W",
            "20",
        ])
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if sub.is_ok() {
        std::thread::sleep(Duration::from_millis(800));
    } else {
        println!(
            "note: mosquitto_sub not installed (apt-get install mosquitto-clients); skipped that part"
        );
    }

    let out = env.ok(&[
        "ota",
        "create",
        "up1",
        "--file",
        "fw.bin",
        "--file-type",
        "7",
        "--group",
        "fleet",
        "--api",
        &s.http,
        "--data-dir",
        "data",
    ]);
    let d = json(&out);
    assert_eq!(d["jobId"], "AFR_OTA-up1");
    assert_eq!(d["executions"][0]["status"], "QUEUED");
    // Errors: unknown target, duplicate id, wrong token.
    assert!(
        !env.run(&[
            "ota",
            "create",
            "up2",
            "--file",
            "fw.bin",
            "--file-type",
            "7",
            "--thing",
            "nobody",
            "--api",
            &s.http,
            "--data-dir",
            "data"
        ])
        .status
        .success()
    );
    assert!(
        !env.run(&[
            "ota",
            "create",
            "up1",
            "--file",
            "fw.bin",
            "--file-type",
            "7",
            "--group",
            "fleet",
            "--api",
            &s.http,
            "--data-dir",
            "data"
        ])
        .status
        .success()
    );
    let bad = env.run(&["ota", "list", "--api", &s.http, "--token", "wrong"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));

    if let Ok(sub) = sub {
        let o = sub.wait_with_output().unwrap();
        let doc = json(String::from_utf8_lossy(&o.stdout).trim());
        assert_eq!(doc["execution"]["jobId"], "AFR_OTA-up1", "{o:?}");
        assert_eq!(
            doc["execution"]["jobDocument"]["afr_ota"]["files"][0]["filesize"],
            10_000
        );
        assert_eq!(
            doc["execution"]["jobDocument"]["afr_ota"]["files"][0]["sig-sha256-ecdsa"],
            "MEUCIQCUhVsvXNtjLw7zwZSOKzxga9yW"
        );
    }

    // A device update acknowledged (mosquitto_pub -q 1 exits after the PUBACK) survives kill -9.
    let mut acked = false;
    if let Ok(o) = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.mqtt_port.to_string(),
            "--cafile",
            "bundles/dev-1/root-ca.pem",
            "--cert",
            "bundles/dev-1/dev-1.crt.pem",
            "--key",
            "bundles/dev-1/dev-1.key.pem",
            "-i",
            "dev-1",
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-t",
            "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
            "-m",
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"3/3"}}"#,
        ])
        .current_dir(env.dir.path())
        .output()
    {
        assert!(o.status.success(), "{o:?}");
        acked = true;
    }

    // kill -9, restart: everything is still there.
    let mut s = s;
    let _ = Command::new("kill")
        .args(["-9", &s.child.id().to_string()])
        .status();
    let _ = s.child.wait();
    drop(s);
    let s = serve(&env);
    let d = json(&env.ok(&[
        "ota",
        "describe",
        "up1",
        "--api",
        &s.http,
        "--data-dir",
        "data",
    ]));
    assert_eq!(d["executions"][0]["thingName"], "dev-1");
    if acked {
        assert_eq!(d["executions"][0]["status"], "IN_PROGRESS");
        assert_eq!(d["executions"][0]["statusDetails"]["receive"], "3/3");
    }
    assert_eq!(
        json(&env.ok(&["ota", "list", "--api", &s.http, "--data-dir", "data"]))[0]["otaUpdateId"],
        "up1"
    );
    let d = json(&env.ok(&[
        "ota",
        "cancel",
        "up1",
        "--force",
        "--api",
        &s.http,
        "--data-dir",
        "data",
    ]));
    assert_eq!(d["status"], "CANCELED");
    assert_eq!(d["executions"][0]["status"], "CANCELED");
    let t = json(&env.ok(&["thing", "describe", "dev-1", "--data-dir", "data"]));
    assert_eq!(t["certificates"][0]["status"], "ACTIVE");
    assert!(
        env.ok(&["thing", "revoke", "dev-1", "--data-dir", "data"])
            .contains("revoked 1")
    );
    let t = json(&env.ok(&["thing", "describe", "dev-1", "--data-dir", "data"]));
    assert_eq!(t["certificates"][0]["status"], "REVOKED");
    drop(s);
}

/// Issue 13, item 8: `ota create` refuses what devices would reject before anything is
/// uploaded (the API address is a closed port: the refusal names the input, not the network).
#[test]
fn ota_create_refuses_a_non_image_firmware_file_and_a_bad_signature_before_uploading() {
    let env = Env::new();
    env.write("junk.bin", vec![0x5a; 10_000]);
    env.write("junk.bin.sig", "MAYCAQECAQE=\n");
    env.write("bad.sig", "!!!notbase64\n");
    let create = |extra: &[&str]| {
        let mut args = vec![
            "ota",
            "create",
            "u1",
            "--file",
            "junk.bin",
            "--thing",
            "dev-1",
            "--api",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ];
        args.extend_from_slice(extra);
        env.fails(1, &args)
    };
    let e = create(&[]);
    assert!(
        e.contains("junk.bin") && e.contains("not a Ferrota bank image"),
        "{e}"
    );
    let e = create(&["--file-type", "7", "--signature", "bad.sig"]);
    assert!(e.contains("bad.sig") && e.contains("base64"), "{e}");
    // The DER check: valid base64 that is not a DER ECDSA signature.
    env.write("short.sig", "MEUCIQCUhVsvXNtjLw7zwZSOKzxga9yW\n");
    let e = create(&["--file-type", "7", "--signature", "short.sig"]);
    assert!(e.contains("short.sig") && e.contains("DER"), "{e}");
}
