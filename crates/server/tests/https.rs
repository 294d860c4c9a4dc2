//! HTTPS for the operator API (issue 18, item 2): served over TLS with a certificate from the
//! fleet CA or one's own, plain HTTP on the HTTPS port answered with a 400, a failed
//! handshake closing only its own connection, and a plain listener on anything but loopback
//! refused at start.

use std::sync::Arc;

use ferrota_api::Client;
use ferrota_server::config::Config;
use ferrota_server::server::{ServeError, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{T, TestServer, http};

/// Runs blocking client calls off the runtime, bounded in time.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::time::timeout(T, tokio::task::spawn_blocking(f))
        .await
        .expect("answered in time")
        .expect("no panic")
}

/// Another fleet's CA (a CA that did not issue the server's certificate), PEM.
fn other_ca() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let ca = ferrota_server::ca::Ca::init(d.path(), &[]).unwrap();
    let pem = ca.cert_pem().to_string();
    (d, pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_with_a_certificate_of_the_fleet_ca() {
    let s = TestServer::start_with(Arc::new(tempfile::tempdir().unwrap()), |c| {
        c.http_tls = true;
    })
    .await;
    let ca = s.ca_pem();
    let (_d, wrong) = other_ca();
    let token = s.token.clone();
    let addr = s.http;
    blocking(move || {
        for host in ["127.0.0.1", "localhost"] {
            let base = format!("https://{host}:{}", addr.port());
            let c = Client::with_ca_pem(base.clone(), token.clone(), ca.as_bytes()).unwrap();
            assert!(c.limits().unwrap().max_file_bytes > 0, "{base}");
            assert!(c.list_things().unwrap().is_empty());
        }
        // A client that trusts another CA: a transport error naming the URL, the certificate
        // named as the reason; no answer, no hang.
        let base = format!("https://127.0.0.1:{}", addr.port());
        let c = Client::with_ca_pem(base.clone(), token.clone(), wrong.as_bytes()).unwrap();
        let e = c.limits().unwrap_err();
        assert!(e.to_string().contains(&base), "{e}");
        // (Another Ferrota fleet's CA has the fleet CA's name: rustls finds it as the issuer
        // and refuses the signature, BadSignature; an unrelated CA is UnknownIssuer.)
        let why = e.untrusted_certificate().expect("a certificate error");
        assert!(why == "BadSignature" || why == "UnknownIssuer", "{why}");
        // The platform's roots do not hold the fleet CA either.
        let e = Client::new(base.clone(), token.clone())
            .limits()
            .unwrap_err();
        assert!(e.untrusted_certificate().is_some(), "{e}");
        // The failed handshakes closed only their own connections.
        let c = Client::with_ca_pem(base, token, ca.as_bytes()).unwrap();
        assert!(c.limits().is_ok());
        // A wrong token over TLS is still AWS's 401.
        let bad = Client::with_ca_pem(
            format!("https://127.0.0.1:{}", addr.port()),
            "wrong",
            ca.as_bytes(),
        )
        .unwrap();
        assert_eq!(bad.limits().unwrap_err().status(), Some(401));
    })
    .await;
    s.stop().await;
}

/// A plain-HTTP request on the HTTPS port gets a 400 in AWS's error JSON saying to use
/// https:// (not a reset, not a hang); garbage and a half handshake close only their own
/// connections; the listener goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_https_port_is_told_to_use_https() {
    let s = TestServer::start_with(Arc::new(tempfile::tempdir().unwrap()), |c| {
        c.http_tls = true;
    })
    .await;
    let (status, body) = http(&s, "GET", "/api/things", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "InvalidRequestException");
    assert!(
        body["message"].as_str().unwrap().contains("https://"),
        "{body}"
    );

    // A ClientHello record header followed by junk, and a connection that says nothing.
    let mut junk = tokio::net::TcpStream::connect(s.http).await.unwrap();
    junk.write_all(&[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(T, junk.read_to_end(&mut buf)).await;
    let _silent = tokio::net::TcpStream::connect(s.http).await.unwrap();

    let ca = s.ca_pem();
    let (token, port) = (s.token.clone(), s.http.port());
    blocking(move || {
        let c =
            Client::with_ca_pem(format!("https://127.0.0.1:{port}"), token, ca.as_bytes()).unwrap();
        assert!(c.limits().is_ok());
        // Plain HTTP through the client: the server's message, as an API error.
        let plain = Client::new(format!("http://127.0.0.1:{port}"), "t");
        match plain.limits().unwrap_err() {
            ferrota_api::Error::Api { error, .. } => {
                assert_eq!(error.status, 400);
                assert!(error.message.contains("https://"), "{}", error.message);
            }
            e => panic!("{e}"),
        }
    })
    .await;
    s.stop().await;
}

/// `http_cert`/`http_key`: the server serves that certificate (here one of another CA), so a
/// client trusting that CA gets through and one trusting the fleet CA does not. Giving only
/// one of the two is refused at start, naming both keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_own_certificate_is_served_instead() {
    let own = tempfile::tempdir().unwrap();
    let own_ca = ferrota_server::ca::Ca::init(own.path(), &[]).unwrap();
    let own_pem = own_ca.cert_pem().to_string();
    let (cert, key) = (
        own.path().join("server.crt.pem"),
        own.path().join("server.key.pem"),
    );
    let s = TestServer::start_with(Arc::new(tempfile::tempdir().unwrap()), |c| {
        c.http_cert = Some(cert.clone());
        c.http_key = Some(key.clone());
    })
    .await;
    let fleet = s.ca_pem();
    let (token, port) = (s.token.clone(), s.http.port());
    blocking(move || {
        let base = format!("https://127.0.0.1:{port}");
        let c = Client::with_ca_pem(base.clone(), token.clone(), own_pem.as_bytes()).unwrap();
        assert!(c.limits().is_ok());
        let c = Client::with_ca_pem(base, token, fleet.as_bytes()).unwrap();
        assert!(c.limits().unwrap_err().untrusted_certificate().is_some());
    })
    .await;
    s.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        http_cert: Some(own.path().join("server.crt.pem")),
        ..Config::default()
    };
    let e = Server::open(&cfg, 0).await.err().expect("refused");
    assert!(matches!(e, ServeError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("http_key"), "{e}");

    // A key file that is not a key: named.
    let cfg = Config {
        http_key: Some(own.path().join("ca.crt.pem")),
        ..cfg
    };
    let e = Server::open(&cfg, 0)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("ca.crt.pem"), "{e}");
}

/// An HTTP API in clear on an address that is not loopback is refused: from the
/// configuration before anything is created, and from the bound socket by `run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_api_on_the_network_is_refused_at_start() {
    ferrota_server::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for listen in ["0.0.0.0:0", "[::]:8080"] {
        let cfg = Config {
            data_dir: data.clone(),
            http_listen: listen.into(),
            ..Config::default()
        };
        let e = Server::open(&cfg, 0).await.err().expect("refused");
        let text = e.to_string();
        assert!(matches!(e, ServeError::Config(_)), "{e:?}");
        assert!(text.contains(listen) && text.contains("http_tls"), "{text}");
        assert!(!data.exists(), "nothing created for a refused start");
    }

    // A library caller that binds its own socket on every interface.
    let cfg = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    let server = Server::open(&cfg, 0).await.unwrap();
    let mqtt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let r = tokio::time::timeout(T, server.run(mqtt, Some(h), std::future::pending())).await;
    let e = r.expect("refused at once").unwrap_err().to_string();
    assert!(e.contains("http_tls"), "{e}");
}

/// No route answers without the operator token but `/api/health` (and `/api/openapi.json`,
/// the API's description): every path of the table in `ferrota_server::api`'s docs is asked
/// without a token and must answer 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_but_health_answers_without_a_token() {
    let s = TestServer::start().await;
    let doc = include_str!("../src/api.rs");
    let mut asked = 0;
    for line in doc.lines().filter(|l| l.starts_with("//! | ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let method = cells[1];
        if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
            continue;
        }
        let path = cells[2]
            .split('`')
            .nth(1)
            .expect("a path in backticks")
            .split('?')
            .next()
            .unwrap()
            .replace(['{', '}'], "");
        if path == "/api/health" || path == "/api/openapi.json" {
            continue;
        }
        let (status, body) = crate::common::http_with(&s, None, method, &path, None).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        asked += 1;
    }
    assert!(asked >= 25, "the table was read ({asked} routes)");
    let (status, _) = crate::common::http_with(&s, None, "GET", "/api/health", None).await;
    assert_eq!(status, 200);
    s.stop().await;
}
