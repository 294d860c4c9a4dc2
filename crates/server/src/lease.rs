//! Work that must happen once: the rollout engine ([`crate::rollout::run`]), the execution
//! timers ([`crate::timeouts::run`]) and the retries run on one worker at a time, the holder
//! of a [`Lease`]. Everything else (sessions, Jobs, Streams, Shadow, the API) is stateless
//! and runs on every worker.
//!
//! Why a lease and not "every worker steps, the store's compare-and-set sorts it out": the
//! store's version checks keep two workers from corrupting a rollout, but not from each
//! releasing a minute's `maximumPerMinute` (twice the rate) or each answering a timed-out
//! execution once; one engine at a time keeps AWS's rates and counts exact.
//!
//! - [`Solo`]: one process (SQLite, the default) always holds.
//! - [`PgLease`]: a PostgreSQL session-level advisory lock held on a connection of its own.
//!   A holder that dies (SIGKILL, a crash) closes its socket, PostgreSQL ends the session and
//!   frees the lock, and a standby takes it at its next try ([`PgLease::TRY_EVERY`]); a
//!   holder's machine that vanishes without closing is found by TCP keepalives set on the
//!   lock's session (about 11 s). A holder that lost its connection learns it at its next
//!   [`Lease::hold`] (a round trip at most every [`PgLease::CHECK_EVERY`]) and stops.
//!
//! The engine also needs to hear what happened on other workers: a device's execution that
//! finished there (retries and gates react to it) and a thing that changed there (a
//! CONTINUOUS rollout may reach it). A worker that does not hold passes them on
//! ([`Lease::forward`]: PostgreSQL `NOTIFY` on [`PgLease::CHANNEL`]); the holder's
//! [`Lease::receive`] puts them in its own queues. A notification is not durable: one sent
//! while the lease changes hands may be lost, so every new holder first runs
//! [`crate::rollout::recover`] (a scan for owed retries and joined things), and the holder
//! polls the store for times and timers every [`Lease::poll`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool};
use sqlx::{Connection, Row};

use crate::store::StoreResult;

/// Where [`Lease::receive`] delivers what other workers forwarded: the holder's own queues
/// (implemented by [`crate::context::Services`]; a trait, so this module does not depend on
/// the services).
pub trait Inbox: Send + Sync {
    /// An execution that finished on another worker.
    fn execution_finished(&self, job: &str, thing: &str);
    /// A thing that changed on another worker.
    fn thing_changed(&self, thing: &str);
}

/// The right to run the work that must happen once.
#[async_trait]
pub trait Lease: Send + Sync + 'static {
    /// `Some(epoch)` while this process holds the lease (taking it when free); the epoch
    /// changes at every new taking, so the caller can tell that it must recover first.
    async fn hold(&self) -> Option<u64>;
    /// Passes executions that finished and things that changed on this process to the
    /// holder (called by a process that does not hold).
    async fn forward(&self, finished: &[(String, String)], changed: &[String]) -> StoreResult<()>;
    /// Delivers what other processes forwarded into `inbox` while this process holds.
    /// Runs until the process ends (spawn it once).
    async fn receive(&self, inbox: Arc<dyn Inbox>);
    /// How often the holder looks at the store for work other processes created (rollout
    /// times, execution timers). `None`: no other process creates any.
    fn poll(&self) -> Option<Duration>;
}

/// One process: it always holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

#[async_trait]
impl Lease for Solo {
    async fn hold(&self) -> Option<u64> {
        Some(1)
    }
    async fn forward(&self, _: &[(String, String)], _: &[String]) -> StoreResult<()> {
        Ok(())
    }
    async fn receive(&self, _: Arc<dyn Inbox>) {
        std::future::pending::<()>().await
    }
    fn poll(&self) -> Option<Duration> {
        None
    }
}

/// What one `NOTIFY` carries.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Forwarded {
    /// Finished executions, `(job, thing)`.
    #[serde(default, rename = "f")]
    finished: Vec<(String, String)>,
    /// Changed things.
    #[serde(default, rename = "c")]
    changed: Vec<String>,
}

/// PostgreSQL's `NOTIFY` payload limit is 8,000 bytes; batches stay under this.
const PAYLOAD_MAX: usize = 7_000;

/// The lease on PostgreSQL: a session-level advisory lock (see the module docs).
pub struct PgLease {
    pool: PgPool,
    options: PgConnectOptions,
    key: i64,
    state: tokio::sync::Mutex<LockState>,
    /// Whether the last [`Lease::hold`] found the lease held (read by [`Lease::receive`]
    /// without a round trip).
    held: AtomicBool,
    epoch: AtomicU64,
}

struct LockState {
    /// The lock's own connection while held.
    conn: Option<PgConnection>,
    /// When the holding connection last answered.
    checked: Instant,
    /// When the lock was last tried while free.
    tried: Option<Instant>,
}

impl PgLease {
    /// The advisory lock key of the engine's lease ("Ferrota" + 2; the migrations use + 1).
    pub const KEY: i64 = 0x4665_7272_6f74_6102;
    /// The channel of [`Lease::forward`].
    pub const CHANNEL: &'static str = "ferrota_rollouts";
    /// A holder checks that its connection still lives at most this often.
    pub const CHECK_EVERY: Duration = Duration::from_millis(500);
    /// A standby tries to take the lease at most this often: the longest a dead holder's
    /// work waits (plus PostgreSQL noticing the death).
    pub const TRY_EVERY: Duration = Duration::from_secs(1);
    /// How often the holder reads rollout times and timers that other workers set.
    pub const POLL: Duration = Duration::from_secs(1);

    /// A lease on the database of `pool` (the store's pool: forwarding uses it; the lock takes
    /// a connection of its own with the same options).
    pub fn new(pool: PgPool) -> Self {
        let options = (*pool.connect_options()).clone();
        PgLease {
            pool,
            options,
            key: Self::KEY,
            state: tokio::sync::Mutex::new(LockState {
                conn: None,
                checked: Instant::now(),
                tried: None,
            }),
            held: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
        }
    }

    /// The same with another key: two independent leases on one database (tests).
    pub fn with_key(pool: PgPool, key: i64) -> Self {
        PgLease {
            key,
            ..Self::new(pool)
        }
    }

    async fn try_take(&self, s: &mut LockState) -> Result<bool, sqlx::Error> {
        let mut conn = PgConnection::connect_with(&self.options).await?;
        // A holder's machine that vanishes is noticed by keepalives (5 s idle, then 3 probes
        // 2 s apart) and by the user timeout on unacknowledged data (10 s).
        sqlx::raw_sql(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
             SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000; \
             SET application_name = 'ferrota lease'",
        )
        .execute(&mut conn)
        .await?;
        let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS got")
            .bind(self.key)
            .fetch_one(&mut conn)
            .await?
            .try_get("got")?;
        if got {
            s.conn = Some(conn);
            s.checked = Instant::now();
        } else {
            let _ = conn.close().await;
        }
        Ok(got)
    }
}

#[async_trait]
impl Lease for PgLease {
    async fn hold(&self) -> Option<u64> {
        let mut guard = self.state.lock().await;
        let s = &mut *guard;
        if let Some(conn) = s.conn.as_mut() {
            if s.checked.elapsed() < Self::CHECK_EVERY {
                return Some(self.epoch.load(Ordering::SeqCst));
            }
            match sqlx::query("SELECT 1").execute(&mut *conn).await {
                Ok(_) => {
                    s.checked = Instant::now();
                    return Some(self.epoch.load(Ordering::SeqCst));
                }
                Err(e) => {
                    // The session is gone (or going): PostgreSQL frees the lock with it.
                    tracing::warn!(error = %e, "lost the engine lease's connection");
                    s.conn = None;
                    self.held.store(false, Ordering::SeqCst);
                }
            }
        }
        if s.tried.is_some_and(|t| t.elapsed() < Self::TRY_EVERY) {
            return None;
        }
        s.tried = Some(Instant::now());
        match self.try_take(s).await {
            Ok(true) => {
                let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                self.held.store(true, Ordering::SeqCst);
                tracing::info!(
                    epoch,
                    "took the engine lease: this worker runs rollouts and timers"
                );
                Some(epoch)
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not try the engine lease");
                None
            }
        }
    }

    async fn forward(&self, finished: &[(String, String)], changed: &[String]) -> StoreResult<()> {
        let mut batch = Forwarded::default();
        let mut size = 0;
        let mut batches = Vec::new();
        for f in finished {
            size += f.0.len() + f.1.len() + 8;
            batch.finished.push(f.clone());
            if size > PAYLOAD_MAX {
                batches.push(std::mem::take(&mut batch));
                size = 0;
            }
        }
        for c in changed {
            size += c.len() + 4;
            batch.changed.push(c.clone());
            if size > PAYLOAD_MAX {
                batches.push(std::mem::take(&mut batch));
                size = 0;
            }
        }
        if !batch.finished.is_empty() || !batch.changed.is_empty() {
            batches.push(batch);
        }
        for b in batches {
            let payload = serde_json::to_string(&b).unwrap_or_default();
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(Self::CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn receive(&self, b: Arc<dyn Inbox>) {
        loop {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen(Self::CHANNEL).await {
                    Ok(()) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for forwarded work");
                        tokio::time::sleep(Self::TRY_EVERY).await;
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for forwarded work");
                    tokio::time::sleep(Self::TRY_EVERY).await;
                    continue;
                }
            };
            // Reconnects by itself after a lost connection (what was sent meanwhile is lost;
            // see the module docs for why that is safe).
            loop {
                let n = match listener.recv().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for forwarded work failed");
                        tokio::time::sleep(Self::TRY_EVERY).await;
                        break;
                    }
                };
                // Only the holder takes them; other workers drop what they hear (else they
                // would forward it again, forever).
                if !self.held.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(f) = serde_json::from_str::<Forwarded>(n.payload()) else {
                    tracing::warn!(payload = n.payload(), "forwarded work not understood");
                    continue;
                };
                for (job, thing) in &f.finished {
                    b.execution_finished(job, thing);
                }
                for thing in &f.changed {
                    b.thing_changed(thing);
                }
            }
        }
    }

    fn poll(&self) -> Option<Duration> {
        Some(Self::POLL)
    }
}
