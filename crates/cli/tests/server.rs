//! `ferrota serve`, `ca`, `thing` and `ota` end to end: the real binary on loopback port 0,
//! killed with SIGKILL and restarted with nothing lost; mosquitto_sub as a third-party device
//! when installed.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, camel_case_keys, serve};

/// `tool` (`mosquitto_sub` or `mosquitto_pub`) as the third-party device `thing` of a bundle in
/// `bundles/<thing>/`: mutual TLS to the server on `port`, MQTT 3.1.1, QoS 1, then `extra`.
fn mosquitto(tool: &str, port: u16, thing: &str, extra: &[&str]) -> Command {
    let dir = format!("bundles/{thing}");
    let mut c = Command::new(tool);
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--cafile", &format!("{dir}/root-ca.pem")])
        .args(["--cert", &format!("{dir}/{thing}.crt.pem")])
        .args(["--key", &format!("{dir}/{thing}.key.pem")])
        .args(["-i", thing, "-V", "mqttv311", "-q", "1"])
        .args(extra);
    c
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
    common::thing_create(&env, "dev-1", "bundles", &["--group", "fleet"]);
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
    let sub = mosquitto(
        "mosquitto_sub",
        s.mqtt_port,
        "dev-1",
        &[
            "-t",
            "$aws/things/dev-1/jobs/notify-next",
            "-C",
            "1",
            "-W",
            "20",
        ],
    )
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
            "MAYCAQECAQE="
        );
    }

    // A device update acknowledged (mosquitto_pub -q 1 exits after the PUBACK) survives kill -9.
    let mut acked = false;
    if let Ok(o) = mosquitto(
        "mosquitto_pub",
        s.mqtt_port,
        "dev-1",
        &[
            "-t",
            "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
            "-m",
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"3/3"}}"#,
        ],
    )
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
    // Paging (issue 13 item 2): one page on request, with AWS's names; history apart.
    let api = ["--api", &s.http, "--data-dir", "data"];
    let one = |extra: &[&str]| {
        let mut a = vec!["ota", "describe", "up1"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&api);
        json(&env.ok(&a))
    };
    let p = one(&["--max-results", "1"]);
    assert_eq!(p["executions"].as_array().unwrap().len(), 1);
    assert!(p.get("nextToken").is_none(), "{p}");
    assert!(p["executions"][0].get("history").is_none(), "{p}");
    let h = one(&["--history", "dev-1"]);
    assert_eq!(h[0]["status"], "QUEUED", "{h}");
    let mut a = vec!["ota", "describe", "up1", "--max-results", "0"];
    a.extend_from_slice(&api);
    assert!(env.fails(1, &a).contains("maxResults"));
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

/// Every file under `dir` with its bytes (the "left unchanged" check of a refused start).
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let k = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(k, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `ferrota serve` with `extra` arguments must exit 1 with a message naming `file`, and leave
/// the data directory as it was.
pub(crate) fn serve_refused(env: &Env, extra: &[&str], file: &str) -> String {
    let before = snapshot(&env.path("data"));
    let mut args = common::SERVE.to_vec();
    if extra.contains(&"--http-listen") {
        // clap takes a flag once: `extra`'s address instead of loopback's.
        args.truncate(args.len() - 2);
    }
    args.extend_from_slice(extra);
    // A server that starts anyway would run forever: give it 20 s, then fail the test.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(&args)
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrota serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ferrota serve {extra:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(file), "names {file}: {err}");
    assert_eq!(
        snapshot(&env.path("data")),
        before,
        "data directory changed"
    );
    err
}

/// A data directory that has served: a CA, a thing, a token.
fn used_data_dir() -> Env {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "out", &[]);
    drop(serve(&env));
    env
}

#[test]
fn serve_refuses_a_deleted_or_empty_database_beside_a_used_directory() {
    let env = used_data_dir();
    for f in ["ferrota.db", "ferrota.db-wal", "ferrota.db-shm"] {
        let _ = std::fs::remove_file(env.path("data").join(f));
    }
    let err = serve_refused(&env, &[], "data/ferrota.db");
    assert!(
        err.contains("is missing") && err.contains("Restore"),
        "{err}"
    );
    // Offline commands refuse too instead of creating an empty registry.
    let err = env.fails(1, &["thing", "list", "--data-dir", "data"]);
    assert!(err.contains("data/ferrota.db"), "{err}");
    assert!(!env.path("data/ferrota.db").exists());

    env.write("data/ferrota.db", b"");
    let err = serve_refused(&env, &[], "data/ferrota.db");
    assert!(err.contains("is empty (0 bytes)"), "{err}");
}

#[test]
fn serve_refuses_a_database_that_is_not_one_once() {
    let env = used_data_dir();
    for f in ["ferrota.db-wal", "ferrota.db-shm"] {
        let _ = std::fs::remove_file(env.path("data").join(f));
    }
    env.write("data/ferrota.db", vec![0x5a; 64 * 1024]);
    let err = serve_refused(&env, &[], "data/ferrota.db");
    assert_eq!(err.matches("not a database").count(), 1, "said once: {err}");
}

#[test]
fn serve_names_a_bad_server_certificate_client_ca_or_crl() {
    let env = used_data_dir();
    let cert = env.read("data/ca/server.crt.pem");
    env.write("data/ca/server.crt.pem", b"not a certificate\n");
    let err = serve_refused(&env, &[], "data/ca/server.crt.pem");
    assert!(!err.contains("peer sent no certificates"), "{err}");
    env.write("data/ca/server.crt.pem", &cert);

    std::fs::create_dir(env.path("etc")).unwrap();
    env.write(
        "etc/other-ca.pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    env.write(
        "etc/client-ca.toml",
        format!(
            "data_dir = {:?}\nclient_cas = [\"etc/other-ca.pem\"]\n",
            "data"
        ),
    );
    serve_refused(
        &env,
        &["--config", "etc/client-ca.toml"],
        "etc/other-ca.pem",
    );

    env.write(
        "etc/bad.crl.pem",
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    env.write(
        "etc/crl.toml",
        format!("data_dir = {:?}\ncrls = [\"etc/bad.crl.pem\"]\n", "data"),
    );
    serve_refused(&env, &["--config", "etc/crl.toml"], "etc/bad.crl.pem");
    env.write("etc/bad.crl.pem", b"hello\n");
    serve_refused(&env, &["--config", "etc/crl.toml"], "etc/bad.crl.pem");
}

#[test]
fn thing_create_with_an_unwritable_output_stores_nothing() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    env.write("a-file", b"x");
    // Not a directory; below a file; a directory nobody (not even root) may write in.
    for out in ["a-file", "a-file/sub", "/proc"] {
        let err = env.fails(
            1,
            &["thing", "create", "dev-1", "--data-dir", "data", "-o", out],
        );
        assert!(err.contains(out), "names {out}: {err}");
        let list = env.ok(&["thing", "list", "--data-dir", "data"]);
        assert!(!list.contains("dev-1"), "no thing stored: {list}");
        let err = env.fails(1, &["thing", "describe", "dev-1", "--data-dir", "data"]);
        assert!(err.contains("not found"), "no certificate stored: {err}");
    }
    assert_eq!(env.read("a-file"), b"x");
    assert!(!std::path::Path::new("/proc/dev-1").exists());
    // A bundle directory that exists already is not replaced, and nothing is stored either.
    std::fs::create_dir_all(env.path("out/dev-1")).unwrap();
    let err = env.fails(
        1,
        &[
            "thing",
            "create",
            "dev-1",
            "--data-dir",
            "data",
            "-o",
            "out",
        ],
    );
    assert!(err.contains("out/dev-1: already exists"), "{err}");
    assert!(
        !env.ok(&["thing", "list", "--data-dir", "data"])
            .contains("dev-1")
    );
    // Then it works, and leaves no temporary directory behind.
    std::fs::remove_dir(env.path("out/dev-1")).unwrap();
    common::thing_create(&env, "dev-1", "out", &[]);
    assert!(env.exists("out/dev-1/dev-1.key.pem"));
    let left: Vec<_> = std::fs::read_dir(env.path("out")).unwrap().collect();
    assert_eq!(left.len(), 1, "only the bundle: {left:?}");
}

#[test]
fn ota_create_reports_a_wrong_token_and_an_oversized_file() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    let s = serve(&env);
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    env.write("fw.bin", vec![0x5a; 4 << 20]);
    env.ok(&["image", "sign-ota", "fw.bin", "--key", "signer.pem"]);
    let create = |file: &str, auth: &[&str]| {
        let mut args = vec![
            "ota",
            "create",
            "up1",
            "--file",
            file,
            "--file-type",
            "7",
            "--thing",
            "dev-1",
            "--api",
            &s.http,
        ];
        args.extend_from_slice(auth);
        env.fails(1, &args)
    };
    // A wrong token, given or read from a token file: 401 before the body is sent.
    let err = create("fw.bin", &["--token", "wrong"]);
    assert!(
        err.contains("401 unauthorized: wrong or revoked operator token (from --token)"),
        "{err}"
    );
    assert!(!err.contains("Broken pipe"), "{err}");
    std::fs::create_dir(env.path("other")).unwrap();
    env.write("other/api-token", "wrong\n");
    let err = create("fw.bin", &["--data-dir", "other"]);
    assert!(
        err.contains("401 unauthorized: wrong or revoked operator token (from other/api-token)"),
        "{err}"
    );
    // A file over the server's limit: said so, with both sizes.
    let big = std::fs::File::create(env.path("big.bin")).unwrap();
    big.set_len(16 * 1024 * 1024 + 1).unwrap();
    std::fs::copy(env.path("fw.bin.sig"), env.path("big.bin.sig")).unwrap();
    let err = create("big.bin", &["--data-dir", "data"]);
    assert!(
        err.contains("big.bin: file is 16777217 bytes, larger than 16777216 bytes"),
        "{err}"
    );
    // The server stored nothing.
    let list = env.ok(&["ota", "list", "--api", &s.http, "--data-dir", "data"]);
    assert!(!list.contains("up1"), "{list}");
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

/// Files the server stores (uploads), to check that a refused create left nothing.
fn run(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn stored_files(env: &Env) -> usize {
    common::uploads(env).len()
}

/// Issue 14, item 7: `ota create --code-signing-cert` checks the OTA signature against the
/// certificate before uploading: a file signed with another key (the boot key) or the
/// signature of another file is refused with a clear error and nothing is stored; a match is
/// created, and the certificate goes to the server (which checks it again).
#[test]
fn ota_create_checks_the_signature_against_the_code_signing_certificate() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundles", &[]);
    let s = serve(&env);
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    env.ok(&[
        "cert",
        "code-signing",
        "--key",
        "signer.pem",
        "-o",
        "signer.crt",
    ]);
    env.write("fw.bin", vec![0x5a; 10_000]);
    env.write("other.bin", vec![0x5b; 10_000]);
    env.ok(&[
        "image", "sign-ota", "fw.bin", "--key", "boot.pem", "-o", "boot.sig",
    ]);
    env.ok(&["image", "sign-ota", "other.bin", "--key", "signer.pem"]);
    env.ok(&["image", "sign-ota", "fw.bin", "--key", "signer.pem"]);
    let http = s.http.clone();
    let create = |sig: &'static str| -> Vec<String> {
        [
            "ota",
            "create",
            "up1",
            "--file",
            "fw.bin",
            "--signature",
            sig,
            "--code-signing-cert",
            "signer.crt",
            "--file-type",
            "7",
            "--thing",
            "dev-1",
            "--api",
            &http,
            "--data-dir",
            "data",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    for sig in ["boot.sig", "other.bin.sig"] {
        let e = env.fails(1, &run(&create(sig)));
        assert!(
            e.contains(sig) && e.contains("does not verify") && e.contains("signer.crt"),
            "{e}"
        );
        assert_eq!(stored_files(&env), 0, "{sig}: uploaded anyway");
    }
    // A key file given as the certificate is refused too.
    let mut a = create("fw.bin.sig");
    a[8] = "signer.pem".into();
    let e = env.fails(1, &run(&a));
    assert!(
        e.contains("signer.pem") && e.contains("not a code-signing certificate"),
        "{e}"
    );
    // No target (no --thing, no --group): refused before the upload, so nothing is stored.
    let no_target: Vec<String> = create("fw.bin.sig")
        .into_iter()
        .filter(|a| a != "--thing" && a != "dev-1")
        .collect();
    let e = env.fails(1, &run(&no_target));
    assert!(e.contains("give at least one --thing or --group"), "{e}");
    assert_eq!(stored_files(&env), 0, "no target: uploaded anyway");
    let list = json(&env.ok(&["ota", "list", "--api", &s.http, "--data-dir", "data"]));
    assert_eq!(list, serde_json::json!([]));
    // The match is created, the certificate carried to the server.
    let d = json(&env.ok(&run(&create("fw.bin.sig"))));
    assert_eq!(d["jobId"], "AFR_OTA-up1", "{d}");
    let chain = &d["request"]["files"][0]["codeSigning"]["customCodeSigning"]["certificateChain"];
    assert_eq!(chain["certificateName"], "signer.crt", "{d}");
    assert!(
        chain["inlineDocument"]
            .as_str()
            .unwrap_or_default()
            .contains("BEGIN CERTIFICATE"),
        "{d}"
    );
}

/// Issue 14, item 11: `ota create --help` says what a stock AWS device does with fileType 141,
/// and `--file-type none` leaves fileType out of the request (and so of the job document).
#[test]
fn ota_create_file_type_none_leaves_file_type_out() {
    let env = Env::new();
    let help = env.ok(&["ota", "create", "--help"]);
    for needle in [
        "configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID",
        "SUCCEEDED without",
        "--file-type none",
    ] {
        assert!(help.contains(needle), "{needle:?} not in --help:\n{help}");
    }
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundles", &[]);
    let s = serve(&env);
    // Not a bank image: for a stock device (type 0 firmware) Ferrota checks only the signature.
    env.write("app.bin", vec![0x5a; 10_000]);
    env.write("app.bin.sig", "MAYCAQECAQE=\n");
    let d = json(&env.ok(&[
        "ota",
        "create",
        "aws-fw",
        "--file",
        "app.bin",
        "--file-type",
        "none",
        "--thing",
        "dev-1",
        "--api",
        &s.http,
        "--data-dir",
        "data",
    ]));
    let f = &d["request"]["files"][0];
    assert!(f.is_object() && f.get("fileType").is_none(), "{d}");
    let e = env.fails(
        2,
        &[
            "ota",
            "create",
            "x",
            "--file",
            "app.bin",
            "--file-type",
            "nil",
        ],
    );
    assert!(e.contains("none"), "{e}");
}

/// Issue 14, items 6 and 10 (CLI part): `ota list` prints objects, `ota describe` AWS's job
/// counts and the reason in words beside the code, `thing list --json` and `thing describe`
/// AWS's camelCase names with the reason in words.
#[test]
fn ota_and_thing_output_is_aws_style_with_reasons_in_words() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundles", &[]);
    common::thing_create(&env, "dev-2", "bundles", &[]);
    let s = serve(&env);
    env.write("fw.bin", vec![0x5a; 10_000]);
    env.write("fw.bin.sig", "MAYCAQECAQE=\n");
    let api = ["--api", s.http.as_str(), "--data-dir", "data"];
    let with_api = |a: &[&str]| {
        let mut v = a.to_vec();
        v.extend_from_slice(&api);
        json(&env.ok(&v))
    };
    with_api(&[
        "ota",
        "create",
        "up",
        "--file",
        "fw.bin",
        "--file-type",
        "7",
        "--thing",
        "dev-1",
        "--thing",
        "dev-2",
    ]);
    // dev-1 fails the signature check, as the official library reports it.
    for m in [
        r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
        r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e3: 0x00000000"}}"#,
    ] {
        let o = mosquitto(
            "mosquitto_pub",
            s.mqtt_port,
            "dev-1",
            &["-t", "$aws/things/dev-1/jobs/AFR_OTA-up/update", "-m", m],
        )
        .current_dir(env.dir.path())
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
        assert!(o.status.success(), "{o:?}");
    }

    let l = with_api(&["ota", "list"]);
    assert_eq!(l[0]["otaUpdateId"], "up", "{l}");
    assert!(l[0]["request"].is_object(), "request as a string: {l}");
    assert!(camel_case_keys(&l[0]["request"]["files"]), "{l}");

    let d = with_api(&["ota", "describe", "up"]);
    let n = &d["jobProcessDetails"];
    assert_eq!(n["numberOfFailedThings"], 1, "{d}");
    assert_eq!(n["numberOfQueuedThings"], 1, "{d}");
    assert_eq!(n["numberOfSucceededThings"], 0, "{d}");
    let e1 = &d["executions"][0];
    assert_eq!(e1["thingName"], "dev-1", "{d}");
    assert_eq!(
        e1["statusDetails"]["reason"], "0x000000e3: 0x00000000",
        "{d}"
    );
    assert!(
        e1["reasonText"]
            .as_str()
            .unwrap_or_default()
            .contains("signature check failed"),
        "{d}"
    );
    let mut top = d.clone();
    top["request"] = serde_json::Value::Null;
    assert!(camel_case_keys(&top), "{d}");

    let t = json(&env.ok(&["thing", "list", "--json", "--data-dir", "data"]));
    assert_eq!(t[0]["thingName"], "dev-1", "{t}");
    assert!(t[0]["createdAt"].is_u64(), "{t}");
    let human = env.ok(&["thing", "list", "--data-dir", "data"]);
    let year = human.lines().next().unwrap_or_default().split('\t').nth(2);
    assert!(
        year.is_some_and(|y| y.len() == 20 && y.ends_with('Z') && y.contains('T')),
        "no RFC 3339 time: {human}"
    );

    let t = json(&env.ok(&["thing", "describe", "dev-1", "--data-dir", "data"]));
    assert_eq!(t["thingName"], "dev-1", "{t}");
    let x = &t["executions"][0];
    assert_eq!(
        (x["jobId"].as_str(), x["status"].as_str()),
        (Some("AFR_OTA-up"), Some("FAILED")),
        "{t}"
    );
    assert!(
        x["reasonText"]
            .as_str()
            .unwrap_or_default()
            .contains("signature check failed"),
        "{t}"
    );
    assert!(camel_case_keys(&t), "{t}");
    // An error is AWS's error JSON, its message printed.
    let mut a = vec!["ota", "describe", "nope"];
    a.extend_from_slice(&api);
    let e = env.fails(1, &a);
    assert!(
        e.contains("404") && e.contains("OTA update nope not found"),
        "{e}"
    );
}

/// `ferrota rollout` against the real server: a gated rollout's status per wave, pause and
/// resume, an action its state does not allow refused (nothing changed), cancel with the
/// reason AWS's DescribeJob shows, an unknown update a clear 404.
#[test]
fn rollout_commands_steer_a_gated_rollout() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    for t in ["dev-1", "dev-2", "dev-3", "dev-4"] {
        common::thing_create(&env, t, "bundles", &["--group", "fleet"]);
    }
    let first = serve(&env);
    env.write("fw.bin", vec![0x5a; 10_000]);
    env.write("fw.bin.sig", "MAYCAQECAQE=\n");
    let api = ["--api", first.http.as_str(), "--data-dir", "data"];
    let mut create = vec![
        "ota",
        "create",
        "rel",
        "--file",
        "fw.bin",
        "--file-type",
        "7",
        "--group",
        "fleet",
        "--wave",
        "canary:1:approve",
        "--wave",
        "rest:100%",
    ];
    create.extend_from_slice(&api);
    let d = json(&env.ok(&create));
    assert_eq!(d["jobProcessDetails"]["numberOfQueuedThings"], 1, "{d}");
    // kill -9 and start again: the rollout resumes as it was (nothing notified twice).
    let mut first = first;
    let _ = Command::new("kill")
        .args(["-9", &first.child.id().to_string()])
        .status();
    let _ = first.child.wait();
    drop(first);
    let s = serve(&env);
    let api = ["--api", s.http.as_str(), "--data-dir", "data"];

    let status = |env: &Env| {
        let mut a = vec!["rollout", "status", "rel", "--json"];
        a.extend_from_slice(&api);
        json(&env.ok(&a))
    };
    let act = |env: &Env, action: &str| {
        let mut a = vec!["rollout", action, "rel"];
        a.extend_from_slice(&api);
        env.run(&a)
    };
    let r = status(&env);
    assert_eq!(r["status"], "RUNNING", "{r}");
    assert_eq!(r["waves"][0]["name"], "canary");
    assert_eq!(r["waves"][0]["numberOfNotifiedThings"], 1);
    assert_eq!(r["waves"][1]["numberOfThings"], 3);
    assert_eq!(r["waves"][1]["numberOfNotifiedThings"], 0);
    let mut a = vec!["ota", "describe", "rel"];
    a.extend_from_slice(&api);
    let d = json(&env.ok(&a));
    assert_eq!(
        d["jobProcessDetails"]["numberOfQueuedThings"], 1,
        "not doubled: {d}"
    );
    // The human table names the waves.
    let mut a = vec!["rollout", "status", "rel"];
    a.extend_from_slice(&api);
    let table = env.ok(&a);
    assert!(
        table.contains("canary") && table.contains("rest"),
        "{table}"
    );

    let refused = act(&env, "approve");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("cannot approve"), "{err}");
    assert_eq!(
        status(&env)["status"],
        "RUNNING",
        "refused: nothing changed"
    );

    assert!(act(&env, "pause").status.success());
    assert_eq!(status(&env)["status"], "PAUSED");
    assert!(act(&env, "resume").status.success());
    assert_eq!(status(&env)["status"], "RUNNING");
    assert!(act(&env, "cancel").status.success());
    let r = status(&env);
    assert_eq!(r["status"], "STOPPED");
    assert_eq!(r["reasonCode"], "CANCELED_BY_OPERATOR");
    let mut a = vec!["ota", "describe", "rel"];
    a.extend_from_slice(&api);
    let d = json(&env.ok(&a));
    assert_eq!(d["jobState"], "CANCELED");
    assert_eq!(d["reasonCode"], "CANCELED_BY_OPERATOR");
    assert_eq!(d["jobProcessDetails"]["numberOfCanceledThings"], 1);

    let mut a = vec!["rollout", "status", "nope"];
    a.extend_from_slice(&api);
    let missing = env.run(&a);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("not found"), "{err}");
}

/// `serve --database-url`, and `database_url` in the configuration file: a URL that is not
/// PostgreSQL's, or a server that does not answer within `database_wait`, ends the start with
/// exit 1, naming `database_url` and the URL with its password hidden; the data directory
/// (and its SQLite database) is left as it was.
#[test]
fn serve_names_a_bad_or_unreachable_database_url_without_its_password() {
    let env = used_data_dir();
    let err = serve_refused(
        &env,
        &["--database-url", "mysql://ferrota:s3cret@db/fleet"],
        "mysql://ferrota:***@db/fleet",
    );
    assert!(
        err.contains("database_url") && err.contains("postgres://"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "password shown: {err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ferrota:s3cret@127.0.0.1:{port}/fleet");
    std::fs::create_dir_all(env.path("etc")).unwrap();
    env.write(
        "etc/server.toml",
        format!("database_url = {url:?}\ndatabase_wait = 1\n"),
    );
    let err = serve_refused(
        &env,
        &["-c", "etc/server.toml"],
        &format!("postgres://ferrota:***@127.0.0.1:{port}/fleet"),
    );
    assert!(err.contains("not reachable within 1s"), "{err}");
    assert!(!err.contains("s3cret"), "password shown: {err}");
}

/// Issue #19: `ota create --delta-from OLD…` checks each base before anything is uploaded
/// (a bank image, not the new file, at most 8, firmware only), then uploads it; the server
/// streams the image packed and a delta from each base beside it.
#[test]
fn ota_create_delta_from_uploads_the_bases_and_the_server_streams_the_deltas() {
    let env = Env::new();
    let help = env.ok(&["ota", "create", "--help"]);
    assert!(
        help.contains("--delta-from") && help.contains("base version"),
        "{help}"
    );
    env.ok(&["ca", "init", "--data-dir", "data"]);
    common::thing_create(&env, "dev-1", "bundles", &[]);
    let s = serve(&env);
    env.ok(&["key", "generate", "-o", "boot.pem"]);
    for (v, out) in [("1.0.0", "v1.0.0.bin"), ("1.1.0", "v1.1.0.bin")] {
        common::pack_version(&env, v, true, out);
    }
    env.write("v1.1.0.bin.sig", "MAYCAQECAQE=\n");
    env.write("junk.bin", vec![0x5a; 10_000]);
    let http = s.http.clone();
    let create = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "ota",
            "create",
            "rel-1-1",
            "--file",
            "v1.1.0.bin",
            "--thing",
            "dev-1",
            "--api",
            &http,
            "--data-dir",
            "data",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let nine: Vec<&str> = std::iter::repeat_n("v1.0.0.bin", 9).collect();
    let mut too_many = vec!["--delta-from"];
    too_many.extend(&nine);
    let cases: &[(&[&str], &str)] = &[
        (&["--delta-from", "junk.bin"], "not one"),
        (&["--delta-from", "v1.1.0.bin"], "same image"),
        (
            &["--delta-from", "v1.0.0.bin", "v1.0.0.bin"],
            "same image as",
        ),
        (&["--delta-from", "missing.bin"], "missing.bin"),
        (
            &["--delta-from", "v1.0.0.bin", "--file-type", "7"],
            "firmware",
        ),
        (&too_many, "at most 8"),
    ];
    for (extra, needle) in cases {
        let e = env.fails(1, &run(&create(extra)));
        assert!(e.contains(needle), "{extra:?}: {needle:?} not in {e}");
        assert_eq!(stored_files(&env), 0, "{extra:?}: uploaded anyway");
    }
    let d = json(&env.ok(&run(&create(&["--delta-from", "v1.0.0.bin"]))));
    let f = &d["request"]["files"][0];
    let base = f["deltaFrom"][0]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(base.len(), 64, "{d}");
    // The new image, the base, the packed copy and the delta.
    let files = common::uploads(&env);
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.contains(&base), "{files:?}");
}
