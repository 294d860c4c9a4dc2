//! The [`Store`] contract, run against every store: the in-memory one the service tests use
//! and PostgreSQL must answer as SQLite does (orderings, `Exists` on duplicates, optimistic
//! versions, history bound, timers, all-or-nothing OTA creation).
//!
//! Every test here loops over [`backends`], so a new test covers all three stores. PostgreSQL
//! runs where it is installed (CI installs it); elsewhere each test says so in one line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferrota_infra::Postgres;
use ferrota_proto::JobStatus;
use ferrota_server::store::postgres::PostgresStore;
use ferrota_server::store::*;

/// One store, reached through two handles as two workers of a fleet would reach it: for SQLite
/// and PostgreSQL two connection pools on the same database, for the memory store the same
/// store twice (it has no second process).
struct Backend {
    name: &'static str,
    store: SharedStore,
    worker2: SharedStore,
    _dir: Option<tempfile::TempDir>,
}

/// The stores every test runs on: memory, SQLite (a file, WAL), and PostgreSQL (a database of
/// its own on the process's shared server) when it is installed. `test` names the database.
async fn backends(test: &str) -> Vec<Backend> {
    let memory: SharedStore = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrota.db");
    let sqlite: SharedStore = Arc::new(SqliteStore::open(&path).await.unwrap());
    let sqlite2: SharedStore = Arc::new(SqliteStore::open(&path).await.unwrap());
    let mut out = vec![
        Backend {
            name: "memory",
            store: memory.clone(),
            worker2: memory,
            _dir: None,
        },
        Backend {
            name: "sqlite",
            store: sqlite,
            worker2: sqlite2,
            _dir: Some(dir),
        },
    ];
    if ferrota_infra::skip_without(&format!("PostgreSQL (for {test})"), Postgres::available()) {
        return out;
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let db = format!("{test}_{}", N.fetch_add(1, Ordering::Relaxed));
    let url = Postgres::shared().unwrap().create_database(&db).unwrap();
    // Both workers start at once on a fresh database: the advisory lock makes one migrate
    // and the other find the schema done.
    let (a, b) = tokio::join!(
        PostgresStore::connect(&url, 4, Duration::from_secs(10)),
        PostgresStore::connect(&url, 4, Duration::from_secs(10)),
    );
    out.push(Backend {
        name: "postgres",
        store: Arc::new(a.unwrap()),
        worker2: Arc::new(b.unwrap()),
        _dir: None,
    });
    out
}

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
async fn every_store_keeps_the_store_contract() {
    for b in backends("contract").await {
        eprintln!("{}", b.name);
        contract(b.store).await;
    }
}

/// The same contract on SQLite's in-memory database (what single-process tests use).
#[tokio::test]
async fn the_sqlite_memory_store_keeps_the_store_contract() {
    contract(Arc::new(SqliteStore::memory().await.unwrap())).await;
}

/// AWS's `expectedVersion` across workers: two handles on one store read an execution's
/// version and update it with that version at the same moment, [`ROUNDS`] times. Exactly one
/// update wins each round, the final version is 1 + the wins, and the history holds each
/// winner's write once, in order. Against a read-then-write update (check the version, then
/// `UPDATE … WHERE job_id, thing`), both workers win rounds and the history doubles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_on_one_execution_never_both_win() {
    const ROUNDS: u64 = 200;
    for b in backends("race").await {
        let (w1, w2) = (&b.store, &b.worker2);
        w1.create_thing(&thing("t", &[])).await.unwrap();
        w1.create_job(&job("j"), &["t".into()]).await.unwrap();
        let mut winners = Vec::new();
        for round in 0..ROUNDS {
            let (e1, e2) = tokio::join!(w1.execution("j", "t"), w2.execution("j", "t"));
            let (e1, e2) = (e1.unwrap().unwrap(), e2.unwrap().unwrap());
            assert_eq!(e1.version_number, e2.version_number, "{}", b.name);
            let step = |mut e: Execution, who: &str| {
                let expected = e.version_number;
                e.version_number += 1;
                e.status = JobStatus::InProgress;
                e.last_updated_at = 100 + round;
                e.status_details = BTreeMap::from([
                    ("round".into(), round.to_string()),
                    ("who".into(), who.into()),
                ]);
                (e, expected)
            };
            let ((n1, v1), (n2, v2)) = (step(e1, "w1"), step(e2, "w2"));
            let (r1, r2) = tokio::join!(w1.update_execution(&n1, v1), w2.update_execution(&n2, v2));
            let (r1, r2) = (r1.unwrap(), r2.unwrap());
            assert!(
                r1 ^ r2,
                "{} round {round}: w1 won {r1}, w2 won {r2}",
                b.name
            );
            winners.push(if r1 { "w1" } else { "w2" });
        }
        let e = w2.execution("j", "t").await.unwrap().unwrap();
        assert_eq!(e.version_number, 1 + winners.len() as u64, "{}", b.name);
        assert_eq!(e.status_details["who"], winners[winners.len() - 1]);
        let h = w1.history("j", "t").await.unwrap();
        assert_eq!(h.len(), HISTORY_MAX, "{}", b.name);
        for (entry, v) in h.iter().zip(e.version_number + 1 - HISTORY_MAX as u64..) {
            assert_eq!(
                entry.version_number, v,
                "{}: history in version order",
                b.name
            );
            let round = v - 2;
            assert_eq!(
                entry.status_details["round"],
                round.to_string(),
                "{}",
                b.name
            );
            assert_eq!(
                entry.status_details["who"], winners[round as usize],
                "{}: the winner's write",
                b.name
            );
        }
    }
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

fn audit_entry(actor: &str, i: usize) -> ferrota_api::access::AuditEntry {
    ferrota_api::access::AuditEntry {
        at: 100 + i as u64,
        actor: actor.into(),
        token_id: Some("0123456789abcdef".into()),
        action: "CreateOTAUpdate".into(),
        target: format!("ota/rel-{i}"),
        result: "200".into(),
    }
}

/// Issue 18: the audit log is one chain however many workers append at once (no two records
/// chained to the same predecessor, no gap), and it pages in stored order.
#[tokio::test]
async fn audit_appends_of_two_workers_form_one_chain() {
    for b in backends("audit_chain").await {
        let (s1, s2) = (b.store.clone(), b.worker2.clone());
        let one = tokio::spawn(async move {
            for i in 0..20 {
                s1.append_audit(&audit_entry("w1", i)).await.unwrap();
            }
        });
        let two = tokio::spawn(async move {
            for i in 0..20 {
                s2.append_audit(&audit_entry("w2", i)).await.unwrap();
            }
        });
        one.await.unwrap();
        two.await.unwrap();
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = b.store.audit_records(after, 7).await.unwrap();
            let Some((pos, _)) = page.last() else { break };
            after = *pos;
            all.extend(page.into_iter().map(|(_, r)| r));
        }
        assert_eq!(all.len(), 40, "{}", b.name);
        let head =
            ferrota_api::access::verify_chain(&all).unwrap_or_else(|e| panic!("{}: {e}", b.name));
        assert_eq!(head.seq, 40, "{}", b.name);
        assert_eq!(all.iter().filter(|r| r.entry.actor == "w1").count(), 20);
    }
}

/// Issue 18: tokens are found by their hash only, listed oldest first, a duplicate is
/// `Exists` and changes nothing, and revoking keeps the first revocation time.
#[tokio::test]
async fn tokens_are_stored_by_hash_and_revoked_once() {
    use ferrota_api::access::{Role, TokenDescription};
    for b in backends("tokens").await {
        let s = &b.store;
        let rec = |id: &str, hash: &str, at: u64| TokenRecord {
            description: TokenDescription {
                token_id: id.into(),
                name: format!("holder-{id}"),
                role: Role::ReleaseManager,
                created_at: at,
                revoked_at: None,
            },
            hash: hash.into(),
        };
        s.create_token(&rec("a", "h-a", 1)).await.unwrap();
        s.create_token(&rec("b", "h-b", 2)).await.unwrap();
        assert!(matches!(
            s.create_token(&rec("a", "h-other", 3)).await,
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.create_token(&rec("c", "h-a", 3)).await,
            Err(StoreError::Exists(_))
        ));
        let found = b.worker2.token_by_hash("h-b").await.unwrap().unwrap();
        assert_eq!(found.description.role, Role::ReleaseManager);
        assert_eq!(s.token_by_hash("nope").await.unwrap(), None);
        let ids: Vec<_> = s
            .tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.description.token_id)
            .collect();
        assert_eq!(ids, ["a", "b"], "{}", b.name);
        assert!(s.revoke_token("a", 50).await.unwrap());
        assert!(s.revoke_token("a", 60).await.unwrap());
        assert!(!s.revoke_token("zz", 60).await.unwrap());
        let a = s.token_by_hash("h-a").await.unwrap().unwrap();
        assert_eq!(a.description.revoked_at, Some(50), "{}", b.name);
    }
}

/// Counts the commits an [`AuditBatcher`] makes.
struct Counting(SharedStore, std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl AccessStore for Counting {
    async fn create_token(&self, t: &TokenRecord) -> StoreResult<()> {
        self.0.create_token(t).await
    }
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.0.token_by_hash(hash).await
    }
    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.0.tokens().await
    }
    async fn revoke_token(&self, id: &str, at: u64) -> StoreResult<bool> {
        self.0.revoke_token(id, at).await
    }
    async fn append_audit_batch(
        &self,
        e: &[ferrota_api::access::AuditEntry],
    ) -> StoreResult<Vec<ferrota_api::access::AuditRecord>> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.append_audit_batch(e).await
    }
    async fn audit_records(
        &self,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, ferrota_api::access::AuditRecord)>> {
        self.0.audit_records(after, limit).await
    }
}

/// Issue 18: concurrent audit appends (a fleet's device outcomes) share commits, and every
/// caller gets its own record back, chained.
#[tokio::test]
async fn concurrent_audit_appends_share_commits() {
    for b in backends("audit_batch").await {
        let store = Arc::new(Counting(b.store.clone(), Default::default()));
        let batcher = Arc::new(AuditBatcher::default());
        let mut tasks = Vec::new();
        for i in 0..100 {
            let (store, batcher) = (store.clone(), batcher.clone());
            tasks.push(tokio::spawn(async move {
                batcher
                    .append(&*store, audit_entry("dev", i))
                    .await
                    .unwrap()
            }));
        }
        let mut mine = Vec::new();
        for t in tasks {
            mine.push(t.await.unwrap());
        }
        let all: Vec<_> = b
            .store
            .audit_records(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(all.len(), 100, "{}", b.name);
        ferrota_api::access::verify_chain(&all).unwrap();
        for r in &mine {
            assert_eq!(
                &all[r.seq as usize - 1],
                r,
                "{}: caller got its record",
                b.name
            );
        }
        // A memory "commit" never waits, so nothing queues behind it; a database's does.
        let commits = store.1.load(Ordering::Relaxed);
        if b.name != "memory" {
            assert!(
                commits < 50,
                "{}: {commits} commits for 100 appends",
                b.name
            );
        }
    }
}
