//! Start-up checks of the data directory (issue 13 item 4): a lost or damaged database is
//! refused with a message naming the file, and the directory is left as it was.

use std::collections::BTreeMap;
use std::path::Path;

use ferrota_server::config::Config;
use ferrota_server::server::{DbLoss, ServeError, Server, open_admin};

/// Every file under `dir` with its bytes (the "left unchanged" check).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        ..Default::default()
    }
}

/// A served data directory with `things` things (and their certificates) in the database.
async fn used_dir(dir: &Path, things: usize) -> Config {
    ferrota_server::tls::install_crypto_provider();
    let cfg = config(dir);
    let server = Server::open(&cfg, 8883).await.expect("first start");
    let names: Vec<String> = (0..things).map(|i| format!("thing-{i:05}")).collect();
    server.admin.create_things(&names, &[]).await.unwrap();
    drop(server);
    // Everything into the database file, as after a clean shutdown.
    ferrota_server::store::SqliteStore::open(&cfg.db_path())
        .await
        .unwrap()
        .close()
        .await;
    cfg
}

fn err_of<T>(r: Result<T, ferrota_server::server::ServeError>) -> String {
    match r {
        Ok(_) => panic!("start-up should be refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_deleted_or_empty_database_beside_a_used_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = used_dir(tmp.path(), 3).await;
    let db = cfg.db_path();

    std::fs::remove_file(&db).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let before = snapshot(tmp.path());
    let e = err_of(Server::open(&cfg, 8883).await);
    assert!(e.contains(&db.display().to_string()), "{e}");
    assert!(e.contains("is missing") && e.contains("Restore"), "{e}");
    assert!(e.contains("ca.crt.pem"), "names the evidence: {e}");
    // Callers branch on the variant, not on the text (issue 15).
    assert!(matches!(
        Server::open(&cfg, 8883).await,
        Err(ServeError::DatabaseLost {
            state: DbLoss::Missing,
            ..
        })
    ));
    // The offline commands refuse too (they would create an empty database as well).
    err_of(open_admin(&cfg, 8883).await);
    assert_eq!(snapshot(tmp.path()), before, "no new empty database");

    std::fs::write(&db, b"").unwrap();
    let before = snapshot(tmp.path());
    let e = err_of(Server::open(&cfg, 8883).await);
    assert!(e.contains("is empty (0 bytes)"), "{e}");
    assert!(matches!(
        Server::open(&cfg, 8883).await,
        Err(ServeError::DatabaseLost {
            state: DbLoss::Empty,
            ..
        })
    ));
    assert_eq!(snapshot(tmp.path()), before);
}

#[tokio::test]
async fn a_new_directory_still_starts_and_a_new_ca_follows_its_database() {
    ferrota_server::tls::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    ferrota_server::server::init_data_dir(&cfg, &[])
        .await
        .expect("ca init on a new directory");
    assert!(
        cfg.db_path().exists(),
        "the database is created before the CA"
    );
    Server::open(&cfg, 8883).await.expect("start after ca init");
}

/// Overwrites 4 KiB in the middle of the database (pages of the things and certificates).
fn corrupt_middle(db: &Path) {
    let mut bytes = std::fs::read(db).unwrap();
    assert!(bytes.len() > 64 * 1024, "a database with many pages");
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0x5a;
    }
    std::fs::write(db, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_page_is_found_at_start_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = used_dir(tmp.path(), 300).await;
    let db = cfg.db_path();
    corrupt_middle(&db);
    let before = snapshot(tmp.path());
    let e = err_of(Server::open(&cfg, 8883).await);
    assert!(e.contains(&db.display().to_string()), "{e}");
    assert!(
        e.contains("integrity check failed") || e.contains("malformed"),
        "{e}"
    );
    assert_eq!(e.matches("malformed").count().max(1), 1, "said once: {e}");
    assert!(matches!(
        Server::open(&cfg, 8883).await,
        Err(ServeError::DatabaseUnusable { .. })
    ));
    err_of(open_admin(&cfg, 8883).await);
    let after = snapshot(tmp.path());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no file created or removed"
    );
    assert_eq!(after.get("data/ferrota.db"), before.get("data/ferrota.db"));
}

/// Client mode: devices connect to the external broker, so the bundles the server writes
/// (`create_thing`) name its host and port, not this process's MQTT port.
#[tokio::test]
async fn in_client_mode_device_bundles_name_the_external_broker() {
    ferrota_server::tls::install_crypto_provider();
    let d = tempfile::tempdir().unwrap();
    let mut cfg = config(d.path());
    ferrota_server::server::init_data_dir(&cfg, &[])
        .await
        .unwrap();
    let local = open_admin(&cfg, 18883).await.unwrap();
    assert_eq!(local.port, 18883);
    cfg.broker.external = Some("mqtts://broker.example:9883".into());
    let admin = open_admin(&cfg, 18883).await.unwrap();
    assert_eq!(
        (admin.endpoint.as_str(), admin.port),
        ("broker.example", 9883)
    );
    let bundle = admin.create_thing("dev-x", &[]).await.unwrap();
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(text.contains("broker.example"), "{text}");
    assert!(text.contains("9883"), "{text}");
}

/// Workers started together on one data directory agree on one operator token: each creates
/// it if missing, and none keeps a token the file lost (it was a shared temporary name and a
/// rename, so a second writer failed or overwrote the first's token).
#[test]
fn workers_starting_together_agree_on_one_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ferrota_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let tokens: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| ferrota_server::server::operator_token(&cfg).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_disk = std::fs::read_to_string(cfg.token_path()).unwrap();
    assert!(
        tokens.iter().all(|t| t == on_disk.trim()),
        "{tokens:?} vs {on_disk}"
    );
    assert_eq!(on_disk.trim().len(), 48);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["api-token"], "{names:?}");
}

/// `[broker]` for a cluster worker: an MQTT broker and a RabbitMQ cluster at once, or an empty
/// auth secret (which would let anyone ask the broker-auth endpoints), refuse the start with a
/// message naming the setting; the data directory's registry is left as it was.
#[tokio::test]
async fn a_worker_broker_section_that_cannot_work_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = used_dir(dir.path(), 2).await;

    let mut both = cfg.clone();
    both.broker.external = Some("mqtts://127.0.0.1:18883".into());
    both.broker.amqp = vec!["amqp://w:p@127.0.0.1:5672/%2f".into()];
    let e = err_of(Server::open(&both, 8883).await);
    assert!(
        e.contains("`external`") && e.contains("`amqp`") && e.contains("not both"),
        "{e}"
    );

    let mut empty = cfg.clone();
    empty.broker.amqp = vec!["amqp://w:p@127.0.0.1:5672/%2f".into()];
    empty.broker.auth_secret = Some(String::new());
    let e = err_of(Server::open(&empty, 8883).await);
    assert!(e.contains("auth_secret is empty"), "{e}");

    let mut blank = cfg.clone();
    blank.broker.amqp = vec!["amqp://w:p@127.0.0.1:5672/%2f".into(), " ".into()];
    blank.broker.auth_secret = Some("s3cret".into());
    let e = err_of(Server::open(&blank, 8883).await);
    assert!(e.contains("[broker] amqp: an empty URL"), "{e}");

    // Nothing was changed: the two things are still there.
    let admin = open_admin(&cfg, 8883).await.unwrap();
    assert_eq!(admin.list_things().await.unwrap().len(), 2);
}
