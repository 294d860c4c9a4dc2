//! The [`Store`] on PostgreSQL, for a fleet served by several workers (`docs/DEPLOY.md`).
//!
//! The same tables, columns and value forms as [`super::sqlite`] (rows read through
//! [`super::rows`]); what differs is the SQL that writes:
//!
//! - **Concurrent writers.** Several workers write the same rows. Every conditional change is
//!   one statement that checks and writes (`UPDATE … WHERE version_number = $n`), so two
//!   workers racing on one execution cannot both win: AWS's `expectedVersion` holds across
//!   processes, not only inside one. Inserts that may race use `ON CONFLICT`.
//! - **Migrations** are numbered like SQLite's and recorded in `ferrota_schema`; the runner
//!   holds a transaction-scoped advisory lock, so workers that start together migrate once.
//! - **Durability** is PostgreSQL's: a method returns after its transaction committed
//!   (`synchronous_commit` on, the default), and only then does the MQTT layer answer a device.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row, query};

use super::rows::*;
use super::*;

mod access;
mod attrs;
mod base;
mod rollout;
mod shadow;

/// How long a call waits for a pooled connection before it fails with
/// [`sqlx::Error::PoolTimedOut`]: while the database server is down or restarting, a call
/// fails after this instead of hanging, and the MQTT layer answers the device with an error
/// it retries. Long enough to ride out a busy moment, short enough that a device is answered.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key the migration runner holds (any constant unique to Ferrota).
const MIGRATION_LOCK: i64 = 0x4665_7272_6f74_6101; // "Ferrota" + 1

/// The schema, in steps; `ferrota_schema` records how many ran. The first step is SQLite's
/// first seven migrations in their final form (a PostgreSQL database starts at that schema);
/// later steps are appended, never edited.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE things (name TEXT PRIMARY KEY, created_at BIGINT NOT NULL);
CREATE TABLE thing_groups (grp TEXT NOT NULL, thing TEXT NOT NULL REFERENCES things(name),
  PRIMARY KEY (grp, thing));
CREATE INDEX thing_groups_thing ON thing_groups(thing);
CREATE TABLE certificates (id TEXT PRIMARY KEY, thing TEXT NOT NULL REFERENCES things(name),
  serial TEXT NOT NULL, pem TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
  revoked_at BIGINT);
CREATE INDEX certificates_thing ON certificates(thing);
CREATE TABLE jobs (job_id TEXT PRIMARY KEY, document TEXT NOT NULL, state TEXT NOT NULL,
  ota_update_id TEXT, created_at BIGINT NOT NULL, in_progress_timeout_minutes BIGINT,
  cancel_info TEXT);
CREATE TABLE executions (seq BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL
  REFERENCES jobs(job_id), thing TEXT NOT NULL, status TEXT NOT NULL,
  status_details TEXT NOT NULL, queued_at BIGINT NOT NULL, started_at BIGINT,
  last_updated_at BIGINT NOT NULL, version_number BIGINT NOT NULL,
  execution_number BIGINT NOT NULL, in_progress_deadline BIGINT, step_deadline BIGINT,
  deadline BIGINT, UNIQUE (job_id, thing));
CREATE INDEX executions_thing ON executions(thing, seq);
CREATE INDEX executions_deadline ON executions(deadline) WHERE deadline IS NOT NULL;
CREATE INDEX executions_pending ON executions(job_id) WHERE status IN ('QUEUED', 'IN_PROGRESS');
CREATE TABLE execution_history (id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL,
  thing TEXT NOT NULL, status TEXT NOT NULL, status_details TEXT NOT NULL,
  version_number BIGINT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX execution_history_key ON execution_history(job_id, thing, id);
CREATE TABLE streams (stream_id TEXT PRIMARY KEY, description TEXT NOT NULL,
  version BIGINT NOT NULL, files TEXT NOT NULL);
CREATE TABLE ota_updates (id TEXT PRIMARY KEY, status TEXT NOT NULL, request TEXT NOT NULL,
  job_id TEXT NOT NULL, stream_id TEXT NOT NULL, created_at BIGINT NOT NULL, error_info TEXT);
CREATE TABLE rollouts (job_id TEXT PRIMARY KEY REFERENCES jobs(job_id), plan TEXT NOT NULL,
  status TEXT NOT NULL, wave BIGINT NOT NULL, state TEXT NOT NULL, reason_code TEXT,
  comment TEXT, next_at BIGINT, version BIGINT NOT NULL);
CREATE INDEX rollouts_next ON rollouts(next_at) WHERE next_at IS NOT NULL;
CREATE TABLE rollout_targets (seq BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL
  REFERENCES jobs(job_id), thing TEXT NOT NULL, wave BIGINT NOT NULL,
  released BIGINT NOT NULL DEFAULT 0, UNIQUE (job_id, thing));
CREATE INDEX rollout_targets_waiting ON rollout_targets(job_id, wave, seq) WHERE released = 0;
CREATE TABLE shadows (thing TEXT PRIMARY KEY, state TEXT, metadata TEXT NOT NULL,
  version BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE thing_attributes (thing TEXT NOT NULL REFERENCES things(name), name TEXT NOT NULL,
  value TEXT NOT NULL, PRIMARY KEY (thing, name));
CREATE TABLE dynamic_groups (name TEXT PRIMARY KEY, query_string TEXT NOT NULL,
  created_at BIGINT NOT NULL);
"#,
    // Operator tokens (stored by SHA-256) and the hash-chained audit log (issue 18).
    r#"
CREATE TABLE operator_tokens (token_id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL, role TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT);
CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL,
  actor TEXT NOT NULL, token_id TEXT, action TEXT NOT NULL, target TEXT NOT NULL,
  result TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
"#,
];

/// PostgreSQL store. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`), retrying for up
    /// to `wait` while the server is not reachable yet (a worker may start before its
    /// database), and runs pending migrations. Connections in the pool are re-made after a
    /// server restart, so a worker outlives one.
    pub async fn connect(url: &str, max_connections: u32, wait: Duration) -> StoreResult<Self> {
        // sqlx reads any scheme as PostgreSQL's; a `mysql://` or `sqlite:` URL given by
        // mistake would then fail later with a puzzling message (or reach a server it was
        // not meant for), so the scheme is checked first.
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                "the URL's scheme must be postgres:// or postgresql://".into(),
            )));
        }
        let opts = PgConnectOptions::from_str(url)?;
        // Wait for the server with single connection attempts (the pool's own connect
        // retries until its acquire timeout, which would stretch a short `wait`), each bounded
        // so a host that drops packets cannot hold the start past `wait` by much.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(
                left.max(Duration::from_secs(1)),
                PgConnection::connect_with(&opts),
            )
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
            match attempt {
                Ok(c) => {
                    let _ = c.close().await;
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline && transient(&e) => {
                    tracing::info!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        let s = PostgresStore { pool };
        s.migrate().await?;
        Ok(s)
    }

    /// The connection pool, for maintenance and for tests that need SQL the [`super::Store`]
    /// trait does not offer.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS ferrota_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let have: Option<i64> = query("SELECT max(version) AS v FROM ferrota_schema")
            .fetch_one(&mut *tx)
            .await?
            .try_get("v")?;
        let have = have.unwrap_or(0).max(0) as usize;
        if have > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "the database's schema is version {have}, newer than this server's {} \
                 (a newer Ferrota wrote it)",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(have) {
            sqlx::raw_sql(*m).execute(&mut *tx).await?;
            query("INSERT INTO ferrota_schema (version) VALUES ($1)")
                .bind((i + 1) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Whether a connection error may pass by itself (server starting, restarting, unreachable).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // 57P03 cannot_connect_now: the server is starting up or in recovery.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c == "57P03"),
        _ => false,
    }
}

/// Inserts a thing and its groups; a thing of that name already stored is
/// [`StoreError::Exists`]. Two workers creating the same name race on the primary key: one
/// inserts, the other waits for its commit and then gets the unique violation.
pub(super) async fn insert_thing(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    thing: &Thing,
) -> StoreResult<()> {
    let r = query("INSERT INTO things (name, created_at) VALUES ($1, $2)")
        .bind(&thing.name)
        .bind(to_i64(thing.created_at))
        .execute(&mut **tx)
        .await;
    exists_as(r, || format!("thing {}", thing.name))?;
    for g in &thing.groups {
        query("INSERT INTO thing_groups (grp, thing) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(g)
            .bind(&thing.name)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts a certificate record (in a transaction or on the pool).
pub(super) async fn insert_certificate<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    c: &CertRecord,
) -> StoreResult<()> {
    query("INSERT INTO certificates (id, thing, serial, pem, status, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
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
pub(super) async fn insert_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job: &Job,
    things: &[String],
) -> StoreResult<()> {
    let r = query("INSERT INTO jobs (job_id, document, state, ota_update_id, created_at, in_progress_timeout_minutes) VALUES ($1, $2, $3, $4, $5, $6)")
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
pub(super) async fn insert_queued_execution(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: &str,
    thing: &str,
    at: u64,
) -> StoreResult<()> {
    let at = to_i64(at);
    query("INSERT INTO executions (job_id, thing, status, status_details, queued_at, started_at, last_updated_at, version_number, execution_number) VALUES ($1, $2, 'QUEUED', '{}', $3, NULL, $3, 1, 1)")
        .bind(job_id)
        .bind(thing)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    query("INSERT INTO execution_history (job_id, thing, status, status_details, version_number, at) VALUES ($1, $2, 'QUEUED', '{}', 1, $3)")
        .bind(job_id)
        .bind(thing)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keeps an execution's newest [`HISTORY_MAX`] history entries, in the transaction that added
/// one: no crash can leave a history over the bound.
pub(super) async fn trim_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: &str,
    thing: &str,
) -> StoreResult<()> {
    query("DELETE FROM execution_history WHERE job_id = $1 AND thing = $2 AND id NOT IN (SELECT id FROM execution_history WHERE job_id = $1 AND thing = $2 ORDER BY id DESC LIMIT $3)")
        .bind(job_id)
        .bind(thing)
        .bind(HISTORY_MAX as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts a stream (in a transaction or on the pool).
pub(super) async fn insert_stream<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    s: &StreamRecord,
) -> StoreResult<()> {
    let files = serde_json::to_string(&s.files).map_err(|_| corrupt("stream files"))?;
    let r = query(
        "INSERT INTO streams (stream_id, description, version, files) VALUES ($1, $2, $3, $4)",
    )
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
pub(super) async fn insert_ota<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    o: &OtaRecord,
) -> StoreResult<()> {
    let r = query("INSERT INTO ota_updates (id, status, request, job_id, stream_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
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
