//! The store on PostgreSQL beyond the shared contract (`tests/store.rs`): `ferrota serve`
//! choosing it from `database_url`, clear errors for a bad or unreachable one, and a
//! PostgreSQL restart under a running pool. Each test says in one line when PostgreSQL is not
//! installed (CI installs it).

use std::time::{Duration, Instant};

use ferrota_infra::Postgres;
use ferrota_proto::JobStatus;
use ferrota_server::config::Config;
use ferrota_server::server::{ServeError, Server, redact_url};
use ferrota_server::store::postgres::PostgresStore;
use ferrota_server::store::*;

fn no_postgres(test: &str) -> bool {
    ferrota_infra::skip_without(&format!("PostgreSQL (for {test})"), Postgres::available())
}

fn thing(name: &str) -> Thing {
    Thing {
        name: name.into(),
        groups: vec!["g".into()],
        created_at: 5,
    }
}

fn job(id: &str) -> Job {
    Job {
        job_id: id.into(),
        document: "{}".into(),
        state: JobState::InProgress,
        ota_update_id: None,
        created_at: 10,
        in_progress_timeout_minutes: None,
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_database_url_in_an_error_never_shows_its_password() {
    for (url, shown) in [
        (
            "postgres://ferrota:s3cret@db:5432/fleet",
            "postgres://ferrota:***@db:5432/fleet",
        ),
        // An unescaped @ in the password: the last @ before the path ends the login.
        (
            "postgres://ferrota:p@ss@db/fleet?sslmode=require",
            "postgres://ferrota:***@db/fleet?sslmode=require",
        ),
        ("postgres://ferrota@db/fleet", "postgres://ferrota@db/fleet"),
        ("postgres://db/fleet", "postgres://db/fleet"),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redact_url(url), shown);
    }
}

/// With `database_url` the server's store is that PostgreSQL database (a thing written there
/// by another worker is visible to it), and no SQLite file is made in the data directory.
#[tokio::test]
async fn serve_keeps_its_store_on_postgresql_when_given_a_database_url() {
    if no_postgres("serve_keeps_its_store_on_postgresql_when_given_a_database_url") {
        return;
    }
    ferrota_server::tls::install_crypto_provider();
    let url = Postgres::shared()
        .unwrap()
        .create_database("serve_on_pg")
        .unwrap();
    let other_worker = PostgresStore::connect(&url, 2, Duration::from_secs(10))
        .await
        .unwrap();
    other_worker.create_thing(&thing("dev-1")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        database_url: Some(url),
        ..Default::default()
    };
    let server = Server::open(&cfg, 8883).await.unwrap();
    let store = &server.broker.services.store;
    assert_eq!(
        store.thing("dev-1").await.unwrap().map(|t| t.name),
        Some("dev-1".to_string())
    );
    store.create_thing(&thing("dev-2")).await.unwrap();
    assert!(other_worker.thing("dev-2").await.unwrap().is_some());
    assert!(!cfg.db_path().exists(), "no SQLite file beside PostgreSQL");
    assert!(cfg.ca_dir().exists(), "the CA stays in the data directory");
}

/// A URL that does not parse, a server that does not answer within `database_wait`, and a
/// database that does not exist each end the start with an error naming `database_url` and
/// the URL without its password: no panic, no SQLite fallback (no `ferrota.db` made).
#[tokio::test]
async fn a_bad_or_unreachable_database_url_is_a_clear_error() {
    ferrota_server::tls::install_crypto_provider();
    let mut cases = vec![
        ("mysql://db/fleet".to_string(), "scheme"),
        (
            "postgres://ferrota:s3cret@db:port/fleet".to_string(),
            "port",
        ),
        (
            format!(
                "postgres://ferrota:s3cret@127.0.0.1:{}/fleet",
                closed_port()
            ),
            "not reachable within 1s",
        ),
    ];
    if !no_postgres("the missing-database case") {
        let pg = Postgres::shared().unwrap();
        // The shared server trusts loopback, so the password is never asked for; the
        // database is.
        let url = format!(
            "postgres://ferrota:s3cret@127.0.0.1:{}/no_such_database",
            pg.port()
        );
        cases.push((url, "does not exist"));
    }
    for (url, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().join("data"),
            database_url: Some(url.clone()),
            database_wait: 1,
            ..Default::default()
        };
        let started = Instant::now();
        let e = match Server::open(&cfg, 8883).await {
            Ok(_) => panic!("{url}: started"),
            Err(e) => e,
        };
        assert!(started.elapsed() < Duration::from_secs(15), "{url}: waited");
        assert!(matches!(e, ServeError::DatabaseServer { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("database_url"), "{text}");
        assert!(text.contains(says), "{url}: {text}");
        assert!(text.contains(&redact_url(&url)), "{text}");
        assert!(!text.contains("s3cret"), "password shown: {text}");
        assert!(!cfg.db_path().exists(), "fell back to SQLite");
        assert!(!cfg.ca_dir().exists(), "a CA made for a store that failed");
    }
}

/// Committed data survives PostgreSQL being killed (SIGKILL, as a machine failure) and
/// restarted, and the same `PostgresStore` reads and writes again once it is back: the pool
/// drops its dead connections and makes new ones. A call made while the server is down ends
/// with an error or, once it is back, the answer: no panic, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_loses_nothing_committed_and_the_pool_reconnects() {
    if no_postgres("a_postgresql_restart_loses_nothing_committed_and_the_pool_reconnects") {
        return;
    }
    let mut pg = Postgres::start(&[]).unwrap();
    let url = pg.create_database("restart").unwrap();
    let s = PostgresStore::connect(&url, 4, Duration::from_secs(10))
        .await
        .unwrap();
    s.create_thing(&thing("t")).await.unwrap();
    s.create_job(&job("j"), &["t".into()]).await.unwrap();
    let mut e = s.execution("j", "t").await.unwrap().unwrap();
    e.status = JobStatus::InProgress;
    e.version_number = 2;
    e.last_updated_at = 20;
    assert!(s.update_execution(&e, 1).await.unwrap());

    pg.kill();
    // A read while the server is down and coming back: it ends (an error once the pool's
    // acquire timeout passes, or the answer if the server is back by then), never hangs.
    let restart = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    });
    let down = tokio::time::timeout(Duration::from_secs(30), s.thing("t")).await;
    match down {
        Ok(Err(StoreError::Db(_))) => {}
        Ok(Ok(Some(t))) => assert_eq!(t.name, "t"),
        other => panic!("a read while the server restarts: {other:?}"),
    }
    let _pg = restart.await.unwrap();

    // Reads answer again within a few seconds, with everything committed before the kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match s.execution("j", "t").await {
            Ok(found) => break found,
            Err(err) if Instant::now() < deadline => {
                eprintln!("not back yet: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("the pool never reconnected: {err}"),
        }
    };
    let back = back.expect("the execution committed before the kill");
    assert_eq!(
        (back.status, back.version_number),
        (JobStatus::InProgress, 2)
    );
    assert_eq!(s.thing("t").await.unwrap().unwrap().groups, ["g"]);
    assert_eq!(s.history("j", "t").await.unwrap().len(), 2);
    // And writes, through the same store.
    let mut e = back;
    e.status = JobStatus::Succeeded;
    e.version_number = 3;
    assert!(s.update_execution(&e, 2).await.unwrap());
    s.create_thing(&thing("t2")).await.unwrap();
    assert_eq!(s.list_things().await.unwrap().len(), 2);
}
