//! The embedded [`Store`]: SQLite through sqlx, WAL journal, `synchronous=FULL`.
//!
//! Migrations are an ordered list of SQL scripts; `PRAGMA user_version` records how many ran.
//! Each runs in its own transaction with the version bump, so a crash mid-migration leaves the
//! previous schema.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use ferrota_proto::JobStatus;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, query};

use super::rows::*;
use super::*;

mod access;
mod attrs;
mod rollout;
mod shadow;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE things (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE thing_groups (grp TEXT NOT NULL, thing TEXT NOT NULL REFERENCES things(name),
  PRIMARY KEY (grp, thing));
CREATE TABLE certificates (id TEXT PRIMARY KEY, thing TEXT NOT NULL REFERENCES things(name),
  serial TEXT NOT NULL, pem TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
  revoked_at INTEGER);
CREATE INDEX certificates_thing ON certificates(thing);
CREATE TABLE jobs (job_id TEXT PRIMARY KEY, document TEXT NOT NULL, state TEXT NOT NULL,
  ota_update_id TEXT, created_at INTEGER NOT NULL);
CREATE TABLE executions (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL
  REFERENCES jobs(job_id), thing TEXT NOT NULL, status TEXT NOT NULL, status_details TEXT NOT NULL,
  queued_at INTEGER NOT NULL, started_at INTEGER, last_updated_at INTEGER NOT NULL,
  version_number INTEGER NOT NULL, execution_number INTEGER NOT NULL, UNIQUE (job_id, thing));
CREATE INDEX executions_thing ON executions(thing, seq);
CREATE TABLE execution_history (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL,
  thing TEXT NOT NULL, status TEXT NOT NULL, status_details TEXT NOT NULL,
  version_number INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE INDEX execution_history_key ON execution_history(job_id, thing, id);
CREATE TABLE streams (stream_id TEXT PRIMARY KEY, description TEXT NOT NULL,
  version INTEGER NOT NULL, files TEXT NOT NULL);
CREATE TABLE ota_updates (id TEXT PRIMARY KEY, status TEXT NOT NULL, request TEXT NOT NULL,
  job_id TEXT NOT NULL, stream_id TEXT NOT NULL, created_at INTEGER NOT NULL);
"#,
    r#"
ALTER TABLE jobs ADD COLUMN in_progress_timeout_minutes INTEGER;
ALTER TABLE executions ADD COLUMN in_progress_deadline INTEGER;
ALTER TABLE executions ADD COLUMN step_deadline INTEGER;
ALTER TABLE executions ADD COLUMN deadline INTEGER;
CREATE INDEX executions_deadline ON executions(deadline) WHERE deadline IS NOT NULL;
"#,
    // job_has_pending: the pending executions of a job without visiting the finished ones.
    r#"
CREATE INDEX executions_pending ON executions(job_id) WHERE status IN ('QUEUED', 'IN_PROGRESS');
"#,
    // An OTA update whose firmware file was found damaged when served: AWS's errorInfo, as JSON.
    r#"
ALTER TABLE ota_updates ADD COLUMN error_info TEXT;
"#,
    // Rollouts (issue 16): a job's rollout, its targets (notified or waiting), how it was canceled.
    r#"
CREATE TABLE rollouts (job_id TEXT PRIMARY KEY REFERENCES jobs(job_id), plan TEXT NOT NULL,
  status TEXT NOT NULL, wave INTEGER NOT NULL, state TEXT NOT NULL, reason_code TEXT,
  comment TEXT, next_at INTEGER, version INTEGER NOT NULL);
CREATE INDEX rollouts_next ON rollouts(next_at) WHERE next_at IS NOT NULL;
CREATE TABLE rollout_targets (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL
  REFERENCES jobs(job_id), thing TEXT NOT NULL, wave INTEGER NOT NULL,
  released INTEGER NOT NULL DEFAULT 0, UNIQUE (job_id, thing));
CREATE INDEX rollout_targets_waiting ON rollout_targets(job_id, wave, seq) WHERE released = 0;
ALTER TABLE jobs ADD COLUMN cancel_info TEXT;
"#,
    // Device Shadows (issue 16): one classic shadow per thing; `state` NULL is a deleted
    // shadow that keeps its version (see store::shadow).
    r#"
CREATE TABLE shadows (thing TEXT PRIMARY KEY, state TEXT, metadata TEXT NOT NULL,
  version INTEGER NOT NULL, updated_at INTEGER NOT NULL);
"#,
    // Thing attributes and dynamic thing groups (`sqlite/attrs.rs`).
    attrs::MIGRATION,
    // Operator tokens (stored by SHA-256) and the hash-chained audit log (issue 18).
    r#"
CREATE TABLE operator_tokens (token_id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL, role TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,
  at INTEGER NOT NULL, actor TEXT NOT NULL, token_id TEXT, action TEXT NOT NULL,
  target TEXT NOT NULL, result TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
"#,
];

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn get_u64(r: &SqliteRow, c: &str) -> Result<u64, sqlx::Error> {
    r.u64(c)
}
fn opt_u64(r: &SqliteRow, c: &str) -> Result<Option<u64>, sqlx::Error> {
    r.opt_u64(c)
}

/// SQLite's own message, without sqlx's "error returned from database" wrapping.
fn db_msg(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        e => e.to_string(),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, checks its integrity and runs pending
    /// migrations.
    ///
    /// The integrity check is SQLite's full `PRAGMA integrity_check`: every page, b-tree,
    /// record and the freelist, and that every index matches its table (a stale index sends a
    /// certificate lookup at CONNECT to the wrong row). A corrupted page found at start costs
    /// one refused start with a clear message instead of a failure at every CONNECT. Cost,
    /// measured on a 10,000-thing database (10,000 certificates, 9.8 MB, warm cache, the
    /// 2-core CI machine; `cargo bench -p ferrota-server --bench startup_check`, median of 9):
    /// 13 ms, against 8 ms for `quick_check`, which skips the index check. Both read the whole
    /// file, so the cost is linear in its size (~0.13 s at 100,000 things); the full check is
    /// worth its 5 ms.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        Self::connect(opts).await
    }

    /// An in-memory database (tests).
    pub async fn memory() -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let in_memory = opts.get_filename().as_os_str() == ":memory:";
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        let s = SqliteStore { pool };
        if !in_memory && let Err(e) = s.check_integrity(true).await {
            // Close now, so no -wal/-shm file is left beside a database we refuse.
            s.pool.close().await;
            return Err(e);
        }
        s.migrate().await?;
        Ok(s)
    }

    /// A write transaction, begun `IMMEDIATE`: it takes the write lock first, waiting for it
    /// up to the busy timeout. A deferred one (sqlx's `begin()`) that reads and then writes
    /// cannot wait in WAL mode: once another writer commits, its read snapshot is stale and
    /// SQLite answers SQLITE_BUSY ("database is locked") at once, whatever the busy timeout,
    /// so concurrent API changes failed with a 500 (found by Schemathesis).
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The connection pool, for maintenance and for tests that need SQL the [`Store`] trait
    /// does not offer (e.g. a trigger that makes one insert fail, to prove a transaction).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Checkpoints the WAL into the database file and closes every connection (a clean
    /// shutdown: the database file alone then holds everything, e.g. for a backup copy).
    pub async fn close(&self) {
        if let Err(e) = query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint at close failed");
        }
        self.pool.close().await;
    }

    /// `PRAGMA quick_check` (`full`: `PRAGMA integrity_check`, which also checks that every
    /// index matches its table): `Ok` when SQLite answers `ok`, else [`StoreError::Corrupt`]
    /// with SQLite's first five findings. [`SqliteStore::open`] runs the full one (see there
    /// for the cost).
    pub async fn check_integrity(&self, full: bool) -> StoreResult<()> {
        let pragma = if full {
            "PRAGMA integrity_check(5)"
        } else {
            "PRAGMA quick_check(5)"
        };
        let rows = query(pragma)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::Corrupt(format!("integrity check failed: {}", db_msg(&e))))?;
        let found: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if found.len() == 1 && found[0] == "ok" {
            return Ok(());
        }
        Err(StoreError::Corrupt(format!(
            "integrity check failed: {}",
            found.join("; ")
        )))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let have: i64 = query("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(have.max(0) as usize) {
            let mut tx = self.write_tx().await?;
            sqlx::raw_sql(*m).execute(&mut *tx).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {}",
                i + 1
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn groups_of(&self, thing: &str) -> StoreResult<Vec<String>> {
        let rows = query("SELECT grp FROM thing_groups WHERE thing = ? ORDER BY grp")
            .bind(thing)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("grp"))
            .collect::<Result<_, _>>()?)
    }
}

/// Inserts a thing and its groups; a thing of that name already stored is [`StoreError::Exists`].
async fn insert_thing(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    thing: &Thing,
) -> StoreResult<()> {
    let r = query("INSERT INTO things (name, created_at) VALUES (?, ?)")
        .bind(&thing.name)
        .bind(to_i64(thing.created_at))
        .execute(&mut **tx)
        .await;
    exists_as(r, || format!("thing {}", thing.name))?;
    for g in &thing.groups {
        query("INSERT OR IGNORE INTO thing_groups (grp, thing) VALUES (?, ?)")
            .bind(g)
            .bind(&thing.name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts a certificate record (in a transaction or on the pool).
async fn insert_certificate<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    c: &CertRecord,
) -> StoreResult<()> {
    query("INSERT INTO certificates (id, thing, serial, pem, status, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&c.id)
        .bind(&c.thing)
        .bind(&c.serial)
        .bind(&c.pem)
        .bind(cert_status_str(c.status))
        .bind(to_i64(c.created_at))
        .bind(c.revoked_at.map(to_i64))
        .execute(executor)
        .await?;
    Ok(())
}

/// Inserts a job and a QUEUED execution (with its first history entry) for each thing.
async fn insert_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job: &Job,
    things: &[String],
) -> StoreResult<()> {
    let r = query("INSERT INTO jobs (job_id, document, state, ota_update_id, created_at, in_progress_timeout_minutes) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&job.job_id)
            .bind(&job.document)
            .bind(job_state_str(job.state))
            .bind(&job.ota_update_id)
            .bind(to_i64(job.created_at))
            .bind(job.in_progress_timeout_minutes.map(to_i64))
            .execute(&mut **tx)
            .await;
    exists_as(r, || format!("job {}", job.job_id))?;
    for t in things {
        insert_queued_execution(tx, &job.job_id, t, job.created_at).await?;
    }
    Ok(())
}

/// A new QUEUED execution (number 1, version 1) of `job_id` on `thing`, queued `at`, with its
/// first history entry: what creating a job and a rollout's release both write.
async fn insert_queued_execution(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job_id: &str,
    thing: &str,
    at: u64,
) -> StoreResult<()> {
    let at = to_i64(at);
    query("INSERT INTO executions (job_id, thing, status, status_details, queued_at, started_at, last_updated_at, version_number, execution_number) VALUES (?, ?, 'QUEUED', '{}', ?, NULL, ?, 1, 1)")
        .bind(job_id)
        .bind(thing)
        .bind(at)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    query("INSERT INTO execution_history (job_id, thing, status, status_details, version_number, at) VALUES (?, ?, 'QUEUED', '{}', 1, ?)")
        .bind(job_id)
        .bind(thing)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keeps an execution's newest [`HISTORY_MAX`] history entries, in the transaction that added
/// one: no crash can leave a history over the bound.
async fn trim_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job_id: &str,
    thing: &str,
) -> StoreResult<()> {
    query("DELETE FROM execution_history WHERE job_id = ? AND thing = ? AND id NOT IN (SELECT id FROM execution_history WHERE job_id = ? AND thing = ? ORDER BY id DESC LIMIT ?)")
        .bind(job_id)
        .bind(thing)
        .bind(job_id)
        .bind(thing)
        .bind(HISTORY_MAX as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts a stream (in a transaction or on the pool).
async fn insert_stream<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    s: &StreamRecord,
) -> StoreResult<()> {
    let files = serde_json::to_string(&s.files).map_err(|_| corrupt("stream files"))?;
    let r =
        query("INSERT INTO streams (stream_id, description, version, files) VALUES (?, ?, ?, ?)")
            .bind(&s.stream_id)
            .bind(&s.description)
            .bind(i64::from(s.version))
            .bind(files)
            .execute(executor)
            .await;
    exists_as(r, || format!("stream {}", s.stream_id))?;
    Ok(())
}

/// Inserts an OTA update record (in a transaction or on the pool).
async fn insert_ota<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    o: &OtaRecord,
) -> StoreResult<()> {
    let r = query("INSERT INTO ota_updates (id, status, request, job_id, stream_id, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&o.ota_update_id)
        .bind(&o.status)
        .bind(&o.request)
        .bind(&o.job_id)
        .bind(&o.stream_id)
        .bind(to_i64(o.created_at))
        .execute(executor)
        .await;
    exists_as(r, || format!("OTA update {}", o.ota_update_id))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_thing(&self, thing: &Thing) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_thing(&mut tx, thing).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_things_with_certificates(
        &self,
        items: &[(Thing, CertRecord)],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for (thing, c) in items {
            insert_thing(&mut tx, thing).await?;
            insert_certificate(&mut *tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job_has_pending(&self, job_id: &str) -> StoreResult<bool> {
        let r = query(
            "SELECT EXISTS(SELECT 1 FROM executions WHERE job_id = ? \
             AND status IN ('QUEUED', 'IN_PROGRESS'))",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get::<i64, _>(0)? != 0)
    }

    async fn job_status_counts(&self, job_id: &str) -> StoreResult<Vec<(JobStatus, u64)>> {
        let rows =
            query("SELECT status, COUNT(*) AS n FROM executions WHERE job_id = ? GROUP BY status")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let st: String = r.try_get("status")?;
            let status = JobStatus::from_wire(&st).ok_or_else(|| corrupt("execution status"))?;
            out.push((status, get_u64(&r, "n")?));
        }
        Ok(out)
    }

    async fn thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        let Some(r) = query("SELECT name, created_at FROM things WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Thing {
            name: r.try_get("name")?,
            created_at: get_u64(&r, "created_at")?,
            groups: self.groups_of(name).await?,
        }))
    }

    async fn execution_status_totals(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        query(rows::STATUS_TOTALS_SQL)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::status_total_of)
            .collect()
    }

    async fn list_things(&self) -> StoreResult<Vec<Thing>> {
        let rows = query("SELECT name, created_at FROM things ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            out.push(Thing {
                groups: self.groups_of(&name).await?,
                created_at: get_u64(&r, "created_at")?,
                name,
            });
        }
        Ok(out)
    }

    async fn group_members(&self, group: &str) -> StoreResult<Vec<String>> {
        let rows = query("SELECT thing FROM thing_groups WHERE grp = ? ORDER BY thing")
            .bind(group)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("thing"))
            .collect::<Result<_, _>>()?)
    }

    async fn add_certificate(&self, c: &CertRecord) -> StoreResult<()> {
        insert_certificate(&self.pool, c).await
    }

    async fn certificate(&self, id: &str) -> StoreResult<Option<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| cert_of(&r))
        .transpose()
    }

    async fn certificates_of(&self, thing: &str) -> StoreResult<Vec<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE thing = ? ORDER BY created_at"
        ))
        .bind(thing)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cert_of)
        .collect()
    }

    async fn revoked_certificates(&self) -> StoreResult<Vec<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE status = 'REVOKED' ORDER BY revoked_at"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cert_of)
        .collect()
    }

    async fn revoke_thing(&self, thing: &str, now: u64) -> StoreResult<u64> {
        let r = query("UPDATE certificates SET status = 'REVOKED', revoked_at = ? WHERE thing = ? AND status = 'ACTIVE'")
            .bind(to_i64(now))
            .bind(thing)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn create_job(&self, job: &Job, things: &[String]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_job(&mut tx, job, things).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, job_id: &str) -> StoreResult<Option<Job>> {
        query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE job_id = ?"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| job_of(&r))
        .transpose()
    }

    async fn set_job_state(&self, job_id: &str, state: JobState) -> StoreResult<()> {
        query("UPDATE jobs SET state = ? WHERE job_id = ?")
            .bind(job_state_str(state))
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn executions_of_thing(&self, thing: &str) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE thing = ? ORDER BY seq"
        ))
        .bind(thing)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn executions_of_job(&self, job_id: &str) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = ? ORDER BY thing"
        ))
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn executions_of_job_page(
        &self,
        job_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(job_id)
        .bind(after.unwrap_or(i64::MIN))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn execution(&self, job_id: &str, thing: &str) -> StoreResult<Option<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = ? AND thing = ?"
        ))
        .bind(job_id)
        .bind(thing)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| execution_of(&r))
        .transpose()
    }

    async fn update_execution(&self, e: &Execution, expected_version: u64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let details = details_json(&e.status_details);
        let running = e.status == JobStatus::InProgress;
        let r = query("UPDATE executions SET status = ?, status_details = ?, started_at = ?, last_updated_at = ?, version_number = ?, in_progress_deadline = ?, step_deadline = ?, deadline = ? WHERE job_id = ? AND thing = ? AND version_number = ?")
            .bind(e.status.as_str())
            .bind(&details)
            .bind(e.started_at.map(to_i64))
            .bind(to_i64(e.last_updated_at))
            .bind(to_i64(e.version_number))
            .bind(e.in_progress_deadline.filter(|_| running).map(to_i64))
            .bind(e.step_deadline.filter(|_| running).map(to_i64))
            .bind(e.deadline().map(to_i64))
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(to_i64(expected_version))
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        query("INSERT INTO execution_history (job_id, thing, status, status_details, version_number, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(e.status.as_str())
            .bind(&details)
            .bind(to_i64(e.version_number))
            .bind(to_i64(e.last_updated_at))
            .execute(&mut *tx)
            .await?;
        trim_history(&mut tx, &e.job_id, &e.thing).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn history(&self, job_id: &str, thing: &str) -> StoreResult<Vec<HistoryEntry>> {
        let rows =
            query(concat!("SELECT ", history_cols!(), " FROM (SELECT ", history_cols!(), " FROM execution_history WHERE job_id = ? AND thing = ? ORDER BY id DESC LIMIT ?) ORDER BY id"))
                .bind(job_id)
                .bind(thing)
                .bind(HISTORY_MAX as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(history_of).collect()
    }

    async fn due_executions(&self, now: u64) -> StoreResult<Vec<Execution>> {
        query(concat!("SELECT ", execution_cols!(), " FROM executions WHERE deadline IS NOT NULL AND deadline <= ? AND status = 'IN_PROGRESS' ORDER BY deadline, seq"))
            .bind(to_i64(now))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(execution_of)
            .collect()
    }

    async fn next_deadline(&self) -> StoreResult<Option<u64>> {
        let r = query("SELECT MIN(deadline) AS d FROM executions WHERE deadline IS NOT NULL AND status = 'IN_PROGRESS'")
            .fetch_one(&self.pool)
            .await?;
        Ok(opt_u64(&r, "d")?)
    }

    async fn create_stream(&self, s: &StreamRecord) -> StoreResult<()> {
        insert_stream(&self.pool, s).await
    }

    async fn stream(&self, stream_id: &str) -> StoreResult<Option<StreamRecord>> {
        let Some(r) = query(concat!(
            "SELECT ",
            stream_cols!(),
            " FROM streams WHERE stream_id = ?"
        ))
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(stream_of(&r)?))
    }

    async fn create_ota(&self, o: &OtaRecord) -> StoreResult<()> {
        insert_ota(&self.pool, o).await
    }

    async fn create_ota_update(
        &self,
        stream: &StreamRecord,
        job: &Job,
        things: &[String],
        ota: &OtaRecord,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_stream(&mut *tx, stream).await?;
        insert_job(&mut tx, job, things).await?;
        insert_ota(&mut *tx, ota).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ota(&self, id: &str) -> StoreResult<Option<OtaRecord>> {
        query(concat!(
            "SELECT ",
            ota_cols!(),
            " FROM ota_updates WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| ota_of(&r))
        .transpose()
    }

    async fn list_ota(&self) -> StoreResult<Vec<OtaRecord>> {
        query(concat!(
            "SELECT ",
            ota_cols!(),
            " FROM ota_updates ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ota_of)
        .collect()
    }

    async fn set_ota_error(&self, id: &str, error: &ErrorInfo) -> StoreResult<()> {
        query("UPDATE ota_updates SET error_info = ? WHERE id = ?")
            .bind(serde_json::to_string(error).unwrap_or_default())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_ota_status(&self, id: &str, status: &str) -> StoreResult<()> {
        query("UPDATE ota_updates SET status = ? WHERE id = ?")
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
