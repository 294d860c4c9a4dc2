//! The [`Store`] contract, run against both stores: the in-memory one the service tests use
//! must answer as SQLite does (orderings, `Exists` on duplicates, optimistic versions, history
//! bound, timers, all-or-nothing OTA creation).

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrota_proto::JobStatus;
use ferrota_server::store::*;

fn thing(name: &str, groups: &[&str]) -> Thing {
    Thing {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        created_at: 5,
    }
}

fn cert(id: &str, thing: &str, at: u64) -> CertRecord {
    CertRecord {
        id: id.into(),
        thing: thing.into(),
        serial: "01".into(),
        pem: "pem".into(),
        status: CertStatus::Active,
        created_at: at,
        revoked_at: None,
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

fn stream(id: &str) -> StreamRecord {
    StreamRecord {
        stream_id: id.into(),
        description: String::new(),
        version: 1,
        files: vec![],
    }
}

fn ota(id: &str, at: u64) -> OtaRecord {
    OtaRecord {
        ota_update_id: id.into(),
        status: "CREATE_COMPLETE".into(),
        request: "{}".into(),
        job_id: format!("AFR_OTA-{id}"),
        stream_id: format!("S-{id}"),
        created_at: at,
        error_info: None,
    }
}

async fn contract(s: Arc<dyn Store>) {
    // Things and groups.
    s.create_thing(&thing("b", &["g2", "g1"])).await.unwrap();
    s.create_thing(&thing("a", &["g1"])).await.unwrap();
    assert!(matches!(
        s.create_thing(&thing("a", &[])).await,
        Err(StoreError::Exists(_))
    ));
    let names: Vec<_> = s
        .list_things()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(s.thing("b").await.unwrap().unwrap().groups, ["g1", "g2"]);
    assert_eq!(s.group_members("g1").await.unwrap(), ["a", "b"]);
    assert!(s.thing("zz").await.unwrap().is_none());
    // Certificates.
    s.add_certificate(&cert("c2", "a", 2)).await.unwrap();
    s.add_certificate(&cert("c1", "a", 1)).await.unwrap();
    let ids: Vec<_> = s
        .certificates_of("a")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(s.revoke_thing("a", 99).await.unwrap(), 2);
    assert_eq!(s.revoke_thing("a", 100).await.unwrap(), 0);
    let c = s.certificate("c1").await.unwrap().unwrap();
    assert_eq!((c.status, c.revoked_at), (CertStatus::Revoked, Some(99)));
    assert_eq!(s.revoked_certificates().await.unwrap().len(), 2);
    // Jobs and executions.
    s.create_job(&job("j1"), &["b".into(), "a".into()])
        .await
        .unwrap();
    assert!(matches!(
        s.create_job(&job("j1"), &[]).await,
        Err(StoreError::Exists(_))
    ));
    s.create_job(&job("j2"), &["a".into()]).await.unwrap();
    let of_a = s.executions_of_thing("a").await.unwrap();
    assert_eq!(
        of_a.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    let of_j1 = s.executions_of_job("j1").await.unwrap();
    assert_eq!(
        of_j1.iter().map(|e| e.thing.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let page = s.executions_of_job_page("j1", None, 1).await.unwrap();
    assert_eq!(page[0].thing, "b", "pages go in creation order");
    let next = s
        .executions_of_job_page("j1", Some(page[0].seq), 5)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert!(s.job_has_pending("j1").await.unwrap());
    let e = s.execution("j1", "a").await.unwrap().unwrap();
    assert_eq!((e.status, e.version_number), (JobStatus::Queued, 1));
    // Optimistic update, timers, history.
    let mut n = e.clone();
    n.status = JobStatus::InProgress;
    n.version_number = 2;
    n.started_at = Some(20);
    n.last_updated_at = 20;
    n.in_progress_deadline = Some(80);
    n.step_deadline = Some(50);
    n.status_details = BTreeMap::from([("k".into(), "v".into())]);
    assert!(s.update_execution(&n, 1).await.unwrap());
    assert!(!s.update_execution(&n, 1).await.unwrap(), "stale version");
    assert_eq!(s.next_deadline().await.unwrap(), Some(50));
    assert!(s.due_executions(49).await.unwrap().is_empty());
    assert_eq!(s.due_executions(50).await.unwrap().len(), 1);
    for (v, i) in (2..).zip(0..60) {
        let mut m = s.execution("j1", "a").await.unwrap().unwrap();
        m.status = if i == 59 {
            JobStatus::Succeeded
        } else {
            JobStatus::InProgress
        };
        m.version_number = v + 1;
        m.last_updated_at = 30 + i;
        assert!(s.update_execution(&m, v).await.unwrap());
    }
    let h = s.history("j1", "a").await.unwrap();
    assert_eq!(h.len(), HISTORY_MAX);
    assert_eq!(h.last().unwrap().status, JobStatus::Succeeded);
    let done = s.execution("j1", "a").await.unwrap().unwrap();
    assert_eq!(
        (done.in_progress_deadline, done.step_deadline),
        (None, None)
    );
    assert_eq!(done.started_at, Some(20));
    assert_eq!(s.next_deadline().await.unwrap(), None);
    let mut counts = s.job_status_counts("j1").await.unwrap();
    counts.sort_by_key(|c| c.0.as_str());
    assert_eq!(counts, [(JobStatus::Queued, 1), (JobStatus::Succeeded, 1)]);
    s.set_job_state("j1", JobState::Canceled).await.unwrap();
    assert_eq!(
        s.job("j1").await.unwrap().unwrap().state,
        JobState::Canceled
    );
    // Streams and OTA updates.
    s.create_stream(&stream("s1")).await.unwrap();
    assert!(matches!(
        s.create_stream(&stream("s1")).await,
        Err(StoreError::Exists(_))
    ));
    s.create_ota(&ota("o1", 1)).await.unwrap();
    s.create_ota(&ota("o2", 2)).await.unwrap();
    assert!(matches!(
        s.create_ota(&ota("o1", 3)).await,
        Err(StoreError::Exists(_))
    ));
    let ids: Vec<_> = s
        .list_ota()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.ota_update_id)
        .collect();
    assert_eq!(ids, ["o2", "o1"], "newest first");
    s.set_ota_status("o1", "CANCELED").await.unwrap();
    let err = ErrorInfo {
        code: "FirmwareFileMissing".into(),
        message: "m".into(),
    };
    s.set_ota_error("o1", &err).await.unwrap();
    let o1 = s.ota("o1").await.unwrap().unwrap();
    assert_eq!((o1.status.as_str(), o1.error_info), ("CANCELED", Some(err)));
    // create_ota_update: all or nothing. A clash on the last record stores no stream or job.
    let clash = s
        .create_ota_update(
            &stream("S-o1b"),
            &job("AFR_OTA-o1b"),
            &["b".into()],
            &ota("o1", 4),
        )
        .await;
    assert!(matches!(clash, Err(StoreError::Exists(_))), "{clash:?}");
    assert!(s.stream("S-o1b").await.unwrap().is_none());
    assert!(s.job("AFR_OTA-o1b").await.unwrap().is_none());
    assert!(s.execution("AFR_OTA-o1b", "b").await.unwrap().is_none());
    s.create_ota_update(
        &stream("S-o3"),
        &job("AFR_OTA-o3"),
        &["b".into()],
        &ota("o3", 5),
    )
    .await
    .unwrap();
    assert!(s.stream("S-o3").await.unwrap().is_some());
    assert_eq!(s.executions_of_job("AFR_OTA-o3").await.unwrap().len(), 1);
    assert!(s.ota("o3").await.unwrap().is_some());
}

#[tokio::test]
async fn the_memory_store_keeps_the_store_contract() {
    contract(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_store_contract() {
    contract(Arc::new(SqliteStore::memory().await.unwrap())).await;
}

/// The fault hook fails the named write once, before it changes anything.
#[tokio::test]
async fn the_memory_store_fault_hook_fails_one_write_and_changes_nothing() {
    let s = MemoryStore::new();
    s.fail_next("create_thing");
    assert!(matches!(
        s.create_thing(&thing("a", &[])).await,
        Err(StoreError::Io(_))
    ));
    assert!(s.thing("a").await.unwrap().is_none());
    s.create_thing(&thing("a", &[])).await.unwrap();
}

/// Every read of the store, with the answers a test compares before and after a schema change.
async fn read_all(s: &SqliteStore) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        s.certificate("c1").await.unwrap(),
        s.certificates_of("a").await.unwrap(),
        s.job("j1").await.unwrap(),
        s.executions_of_thing("a").await.unwrap(),
        s.executions_of_job("j1").await.unwrap(),
        s.execution("j1", "a").await.unwrap(),
        s.history("j1", "a").await.unwrap(),
        s.due_executions(u64::MAX >> 2).await.unwrap(),
        s.stream("S-o1").await.unwrap(),
        s.list_ota().await.unwrap(),
    )
}

/// Every reader names its columns. sqlx caches a prepared statement's column list per
/// connection; a `SELECT *` prepared before a column was added to its table (a newer server's
/// migration, a column added by hand) then reads rows one column wider than it knows, and
/// sqlx-sqlite panics in its worker thread (`row.rs`: index out of bounds).
#[tokio::test]
async fn readers_keep_working_when_a_table_gains_a_column_under_a_running_pool() {
    let s = SqliteStore::memory().await.unwrap();
    s.create_thing(&thing("a", &[])).await.unwrap();
    s.add_certificate(&cert("c1", "a", 1)).await.unwrap();
    s.create_stream(&stream("S-o1")).await.unwrap();
    s.create_job(&job("j1"), &["a".into()]).await.unwrap();
    s.create_ota(&ota("o1", 1)).await.unwrap();
    let mut e = s.execution("j1", "a").await.unwrap().unwrap();
    e.status = JobStatus::InProgress;
    e.version_number = 2;
    e.step_deadline = Some(50);
    assert!(s.update_execution(&e, 1).await.unwrap());
    // Prepare (and cache) every reader, twice so each pooled connection may hold them.
    let before = read_all(&s).await;
    assert_eq!(read_all(&s).await, before);
    for alter in [
        "ALTER TABLE certificates ADD COLUMN added_later TEXT DEFAULT 'x'",
        "ALTER TABLE jobs ADD COLUMN added_later TEXT DEFAULT 'x'",
        "ALTER TABLE executions ADD COLUMN added_later TEXT DEFAULT 'x'",
        "ALTER TABLE execution_history ADD COLUMN added_later TEXT DEFAULT 'x'",
        "ALTER TABLE streams ADD COLUMN added_later TEXT DEFAULT 'x'",
        "ALTER TABLE ota_updates ADD COLUMN added_later TEXT DEFAULT 'x'",
    ] {
        sqlx::raw_sql(alter).execute(s.pool()).await.unwrap();
    }
    assert_eq!(read_all(&s).await, before, "same answers after the change");
}
