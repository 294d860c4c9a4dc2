//! HTTPS for the operator API from the command line (issue 18, item 2): `ferrota serve
//! --http-tls` serves the API with a certificate of the fleet CA, the CLI trusts the local
//! data directory's CA by itself and a remote one's with `--ca`, a wrong CA or plain HTTP is
//! a clear error naming the URL, and an API in clear on the network is refused at start.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Env, spawn_serve};

/// `ferrota serve` with `args` that must refuse to start: its exit status, stdout and
/// stderr, within 20 s (a server that starts anyway fails the test instead of hanging it).
fn refused(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(args)
        .current_dir(env.dir.path())
        .env_remove("FERROTA_HTTP_TLS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrota serve");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(o) => o.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("ferrota {args:?} started instead of refusing");
        }
    };
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_an_api_in_clear_on_the_network_before_starting() {
    let env = Env::new();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, out, err) = refused(
            &env,
            &[
                "serve",
                "--data-dir",
                "data",
                "--mqtt-listen",
                "127.0.0.1:0",
                "--http-listen",
                listen,
            ],
        );
        assert_eq!(code, Some(1), "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(listen), "names the address: {err}");
        assert!(
            err.contains("--http-tls") && err.contains("--http-cert"),
            "says what to do: {err}"
        );
        assert!(out.is_empty(), "nothing listening was printed: {out}");
        assert!(!env.exists("data"), "nothing created");
    }
}

#[test]
fn the_cli_reaches_an_https_server_with_the_fleet_ca_and_refuses_another() {
    let env = Env::new();
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrota"));
    c.args([
        "serve",
        "--data-dir",
        "data",
        "--mqtt-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--http-tls",
    ])
    .current_dir(env.dir.path())
    .stderr(Stdio::null());
    let s = spawn_serve(c);
    let api = s.api.clone();
    assert!(api.starts_with("https://127.0.0.1:"), "{api}");
    let token = String::from_utf8(env.read("data/api-token")).unwrap();
    let token = token.trim();

    // On the server's machine: the recorded https:// address and the fleet CA, found alone.
    assert_eq!(env.ok(&["ota", "list", "--data-dir", "data"]).trim(), "[]");

    // As a remote client: --server, --token and --ca (another data directory, no CA in it).
    let remote = [
        "--data-dir",
        "elsewhere",
        "--token",
        token,
        "--server",
        &api,
    ];
    let with = |extra: &[&str]| {
        let mut a = vec!["ota", "list"];
        a.extend_from_slice(&remote);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = with(&["--ca", "data/ca/ca.crt.pem"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&args);

    // Another fleet's CA: refused, naming the URL, the CA used and what to pass.
    env.ok(&["ca", "init", "--data-dir", "other"]);
    let args = with(&["--ca", "other/ca/ca.crt.pem"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = env.fails(1, &args);
    assert!(err.contains(&api), "{err}");
    assert!(err.contains("not trusted"), "{err}");
    assert!(
        err.contains("other/ca/ca.crt.pem") && err.contains("--ca"),
        "{err}"
    );

    // No CA given and none in the data directory: the system's roots, which do not hold
    // the fleet CA.
    let args = with(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = env.fails(1, &args);
    assert!(err.contains(&api) && err.contains("--ca"), "{err}");

    // A --ca that is not a certificate: named.
    env.write("not-a-ca.pem", "hello\n");
    let args = with(&["--ca", "not-a-ca.pem"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = env.fails(1, &args);
    assert!(err.contains("not-a-ca.pem"), "{err}");

    // http:// to the HTTPS port: the server's 400 says to use https://.
    let plain = api.replace("https://", "http://");
    let err = env.fails(
        1,
        &[
            "ota",
            "list",
            "--data-dir",
            "elsewhere",
            "--token",
            token,
            "--server",
            &plain,
        ],
    );
    assert!(err.contains("https://"), "{err}");
    drop(s);
}
