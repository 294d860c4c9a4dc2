//! HTTPS for the operator API from the command line (issue 18, item 2): `ferrota serve
//! --http-tls` serves the API with a certificate of the fleet CA, the CLI trusts the local
//! data directory's CA by itself and a remote one's with `--ca`, a wrong CA or plain HTTP is
//! a clear error naming the URL, and an API in clear on the network is refused at start.

use crate::common::{Env, serve_with};

#[test]
fn serve_refuses_an_api_in_clear_on_the_network_before_starting() {
    let env = Env::new();
    std::fs::create_dir(env.path("data")).unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        // Exit 1, the address named, nothing created in the data directory.
        let err = crate::server::serve_refused(&env, &["--http-listen", listen], listen);
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains("--http-tls") && err.contains("--http-cert"),
            "says what to do: {err}"
        );
        assert_eq!(std::fs::read_dir(env.path("data")).unwrap().count(), 0);
    }
}

#[test]
fn the_cli_reaches_an_https_server_with_the_fleet_ca_and_refuses_another() {
    let env = Env::new();
    let s = serve_with(&env, &["--http-tls"]);
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
