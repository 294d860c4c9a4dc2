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

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Row, query};

use super::{StoreError, StoreResult};

/// The advisory lock key the migration runner holds (any constant unique to Ferrota).
const MIGRATION_LOCK: i64 = 0x4665_7272_6f74_6101; // "Ferrota" + 1

/// The schema, in steps; `ferrota_schema` records how many ran. The first step is SQLite's
/// first seven migrations in their final form (a PostgreSQL database starts at that schema);
/// later steps are appended, never edited.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

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
        let opts = PgConnectOptions::from_str(url)?;
        let deadline = tokio::time::Instant::now() + wait;
        let pool = loop {
            match PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone())
                .await
            {
                Ok(p) => break p,
                Err(e) if tokio::time::Instant::now() < deadline && transient(&e) => {
                    tracing::info!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
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
