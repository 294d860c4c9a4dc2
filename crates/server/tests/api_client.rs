//! `ferrota_api::Client` against the real router on loopback: every call the CLI, lab and
//! bench make, typed both ways, and AWS's error JSON read into `ApiError` (issue 15, item 5).

use ferrota_api::{Client, CreateOtaUpdate, CreateThing, Error, OtaFile, PageRequest};
use ferrota_server::config::Config;
use ferrota_server::server::Server;

/// A well-formed DER ECDSA signature (r = s = 1), base64 (as `common::SIGNATURE`).
const SIGNATURE: &str = "MAYCAQECAQE=";

/// Runs `f` with a client of a fresh server's API (blocking calls off the runtime).
async fn with_client<T: Send + 'static>(f: impl FnOnce(Client, Client) -> T + Send + 'static) -> T {
    ferrota_server::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let server = Server::open(&cfg, 8883).await.unwrap();
    let router = ferrota_server::api::router(server.admin.clone(), server.token().to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serve = tokio::spawn(async move { axum::serve(listener, router).await });
    let good = Client::new(base.clone(), server.token());
    let bad = Client::new(format!("{base}/"), "wrong-token");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::task::spawn_blocking(move || f(good, bad)),
    )
    .await
    .expect("API calls within 20 s")
    .expect("no panic");
    serve.abort();
    out
}

fn api_error(e: Error) -> ferrota_api::ApiError {
    match e {
        Error::Api { error, .. } => error,
        other => panic!("expected an error answer, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_typed_and_errors_as_aws_error_json() {
    with_client(|c, bad| {
        // A wrong token: 401, AWS's code.
        let e = api_error(bad.limits().unwrap_err());
        assert_eq!((e.status, e.code.as_str()), (401, "UnauthorizedException"));

        assert!(c.limits().unwrap().max_file_bytes >= 1024 * 1024);
        let bundle = c
            .create_thing(&CreateThing {
                thing_name: "dev-1".into(),
                groups: vec!["lab".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(bundle.thing_name, "dev-1");
        let e = api_error(
            c.create_thing(&CreateThing {
                thing_name: "dev-1".into(),
                groups: vec![],
                ..Default::default()
            })
            .unwrap_err(),
        );
        assert_eq!(
            (e.status, e.code.as_str()),
            (409, "ResourceAlreadyExistsException")
        );
        assert_eq!(c.list_things().unwrap()[0].groups, ["lab"]);
        assert_eq!(c.describe_thing("dev-1").unwrap().certificates.len(), 1);

        let up = c.upload_file(b"settings v2").unwrap();
        assert_eq!(up.size, 11);
        let req = CreateOtaUpdate::new("up-1")
            .description("settings")
            .thing_group("lab")
            .file(OtaFile::new("/cfg/settings.bin", &up.sha256, SIGNATURE).file_type(Some(7)));
        let d = c.create_ota_update(&req).unwrap();
        assert_eq!((d.ota_update_id.as_str(), d.executions.len()), ("up-1", 1));
        assert_eq!(d.job_process_details.number_of_queued_things, 1);

        // A refused request: 400 with the server's message, nothing created.
        let e = api_error(
            c.create_ota_update(&CreateOtaUpdate::new("up-2").thing("dev-1"))
                .unwrap_err(),
        );
        assert_eq!(
            (e.status, e.code.as_str()),
            (400, "InvalidRequestException")
        );
        assert!(!e.message.is_empty());
        assert_eq!(c.list_ota_updates().unwrap().len(), 1);

        let page = c
            .describe_ota_update(
                "up-1",
                &PageRequest {
                    max_results: Some(1),
                    next_token: None,
                },
            )
            .unwrap();
        assert_eq!(page.executions[0].thing_name, "dev-1");
        assert!(c.execution_history("up-1", "dev-1").unwrap().len() <= 1);
        let e = api_error(
            c.describe_ota_update("nope", &PageRequest::default())
                .unwrap_err(),
        );
        assert_eq!(
            (e.status, e.code.as_str()),
            (404, "ResourceNotFoundException")
        );
        assert!(e.message.contains("nope"), "{}", e.message);

        let d = c.cancel_ota_update("up-1", true).unwrap();
        assert_eq!(d.status, "CANCELED");
        assert_eq!(c.revoke_thing("dev-1").unwrap().revoked, 1);
    })
    .await;
}

/// No HTTP answer is a transport error naming the URL, never a panic or an `ApiError`.
#[test]
fn nothing_listening_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(format!("http://127.0.0.1:{port}"), "t");
    match c.limits() {
        Err(e @ Error::Transport { .. }) => {
            assert!(e.to_string().contains("/api/limits"), "{e}");
            assert_eq!(e.status(), None);
        }
        other => panic!("{other:?}"),
    }
}
