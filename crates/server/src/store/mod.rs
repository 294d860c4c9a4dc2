//! Persistent state behind traits: [`Store`] (things, certificates, jobs, executions, streams,
//! OTA updates) and [`BlobStore`] (firmware files, content-addressed).
//!
//! The embedded defaults are [`sqlite::SqliteStore`] (sqlx, WAL, `synchronous=FULL`, schema
//! migrations by `PRAGMA user_version`) and [`blobs::DirBlobStore`] (files named by their
//! SHA-256 in the data directory). [`postgres::PostgresStore`] is the same [`Store`] on a
//! PostgreSQL server that several workers share; [`rows`] holds what the two SQL stores read
//! alike.
//!
//! Crash safety: every method that changes state returns only after its transaction has been
//! committed (WAL with `synchronous=FULL` makes a commit durable), and the MQTT layer answers
//! a device (PUBACK, `…/update/accepted`) only after that return.

pub mod access;
pub mod attrs;
pub mod blobs;
pub mod memory;
pub mod postgres;
pub mod rollout;
mod rows;
#[cfg(feature = "serve")]
pub mod s3;
pub mod shadow;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferrota_proto::JobStatus;
use serde::{Deserialize, Serialize};

/// The states of certificates, jobs and OTA updates as the HTTP API shows them: defined with
/// the API's types (one definition for the server and its clients).
pub use ferrota_api::{CertStatus, ErrorInfo, JobState};

pub use access::{AccessStore, AuditBatcher, TokenRecord};
pub use attrs::{DynamicGroup, ThingIndexStore};
pub use blobs::{BlobReader, BlobStore, DirBlobStore, MemoryBlobs};
pub use memory::MemoryStore;
pub use rollout::{CancelInfo, RolloutProgress, RolloutRecord, RolloutStore, WaveCounts};
#[cfg(feature = "serve")]
pub use s3::{S3BlobStore, S3Options};
pub use shadow::{ShadowRecord, ShadowStore};
pub use sqlite::SqliteStore;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A file operation failed.
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    /// The record exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A stored firmware file no longer holds the bytes it was stored with (changed, truncated
    /// or replaced on disk): its content does not match its SHA-256. Never served.
    #[error("damaged file: {0}")]
    Damaged(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A thing (device) of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thing {
    /// Thing name (= certificate CN = MQTT client id).
    pub name: String,
    /// Thing groups it belongs to.
    pub groups: Vec<String>,
    /// Creation time, epoch seconds.
    pub created_at: u64,
}

/// A device certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// SHA-256 of the DER, hex (AWS's certificate id).
    pub id: String,
    /// The thing it is attached to.
    pub thing: String,
    /// Serial number, hex.
    pub serial: String,
    /// PEM text.
    pub pem: String,
    /// Status.
    pub status: CertStatus,
    /// Creation time.
    pub created_at: u64,
    /// Revocation time.
    pub revoked_at: Option<u64>,
}

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub job_id: String,
    /// The job document, JSON object text.
    pub document: String,
    /// Status.
    pub state: JobState,
    /// The OTA update that created it.
    pub ota_update_id: Option<String>,
    /// Creation time.
    pub created_at: u64,
    /// AWS `timeoutConfig.inProgressTimeoutInMinutes`: an execution still IN_PROGRESS this
    /// long after it started becomes TIMED_OUT.
    #[serde(default)]
    pub in_progress_timeout_minutes: Option<u64>,
}

/// The state of one job execution (one job on one thing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Job id.
    pub job_id: String,
    /// Thing name.
    pub thing: String,
    /// Status.
    #[serde(with = "status_serde")]
    pub status: JobStatus,
    /// statusDetails (string → string).
    pub status_details: BTreeMap<String, String>,
    /// Time queued.
    pub queued_at: u64,
    /// Time first IN_PROGRESS.
    pub started_at: Option<u64>,
    /// Time of the last change.
    pub last_updated_at: u64,
    /// Version, +1 on every change.
    pub version_number: u64,
    /// Execution number (1: we never re-run a job on a thing).
    pub execution_number: u64,
    /// Creation order, for `$next` ("oldest first").
    pub seq: i64,
    /// When the job's in-progress timer expires (epoch seconds), set when the execution
    /// starts; cleared when it reaches a terminal state.
    #[serde(default)]
    pub in_progress_deadline: Option<u64>,
    /// When the device-set step timer (`stepTimeoutInMinutes`) expires.
    #[serde(default)]
    pub step_deadline: Option<u64>,
}

impl Execution {
    /// When this execution times out, if it is IN_PROGRESS with a timer running.
    pub fn deadline(&self) -> Option<u64> {
        if self.status != JobStatus::InProgress {
            return None;
        }
        match (self.in_progress_deadline, self.step_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// How many history entries a store keeps per execution: the newest 50, older ones are
/// deleted in the transaction that adds a new one. Why 50: a download by the official device
/// writes about 25 updates (IN_PROGRESS every 64 of at most 1,024 blocks, self-test, the
/// verdict, spec §4.4), so 50 keeps a whole rollout's story, while a device that updates in a
/// loop holds at most 50 × [`ferrota_proto::limits::STATUS_DETAILS_BYTES_MAX`] (≈ 200 KiB) of
/// history per execution instead of growing the database without limit.
pub const HISTORY_MAX: usize = 50;

/// One entry of an execution's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Status after the change.
    #[serde(with = "status_serde")]
    pub status: JobStatus,
    /// statusDetails after the change.
    pub status_details: BTreeMap<String, String>,
    /// Version after the change.
    pub version_number: u64,
    /// When.
    pub at: u64,
}

/// One file of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamFile {
    /// `"f"`, 0–255.
    pub file_id: u8,
    /// Content address (SHA-256 hex) in the [`BlobStore`].
    pub blob: String,
    /// Size in bytes.
    pub size: u64,
}

/// A stream (MQTT-based file delivery): a versioned list of files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Stream id (the topic segment, `afr_ota.streamname`).
    pub stream_id: String,
    /// Description.
    pub description: String,
    /// Version (`"s"`).
    pub version: u32,
    /// Files.
    pub files: Vec<StreamFile>,
}

/// An OTA update as stored (request and outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtaRecord {
    /// otaUpdateId.
    pub ota_update_id: String,
    /// CREATE_COMPLETE, CANCELED, ...
    pub status: String,
    /// The request as JSON text.
    pub request: String,
    /// The job created.
    pub job_id: String,
    /// The stream created.
    pub stream_id: String,
    /// Creation time.
    pub created_at: u64,
    /// AWS's `errorInfo`: set when the update cannot be delivered as created (its firmware
    /// file was found damaged or missing when served, see `crate::streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<ErrorInfo>,
}

/// Things, certificates, jobs, executions, streams and OTA updates; rollouts, Device Shadows,
/// thing attributes and dynamic groups through its supertraits.
#[async_trait]
pub trait Store:
    RolloutStore + ShadowStore + ThingIndexStore + AccessStore + Send + Sync + 'static
{
    /// Creates a thing with its groups.
    async fn create_thing(&self, thing: &Thing) -> StoreResult<()>;
    /// Creates many things, each with its certificate, all or none: provisioning a fleet in
    /// one transaction costs one commit (one fsync) instead of two per thing. The default runs
    /// the single-thing calls (not atomic); stores that have transactions override it.
    async fn create_things_with_certificates(
        &self,
        items: &[(Thing, CertRecord)],
    ) -> StoreResult<()> {
        for (t, c) in items {
            self.create_thing(t).await?;
            self.add_certificate(c).await?;
        }
        Ok(())
    }
    /// A thing by name.
    async fn thing(&self, name: &str) -> StoreResult<Option<Thing>>;
    /// Whether any execution of the job is still QUEUED or IN_PROGRESS. Asked after every
    /// terminal update (is the job complete?), so it must not read the job's N executions:
    /// that made a fleet rollout O(N²) (`ferrota bench fleet`). The default does read them.
    async fn job_has_pending(&self, job_id: &str) -> StoreResult<bool> {
        Ok(self
            .executions_of_job(job_id)
            .await?
            .iter()
            .any(|e| !e.status.is_terminal()))
    }
    /// How many of a job's executions are in each status (AWS's `jobProcessDetails`); statuses
    /// with none may be left out. The default reads every execution; a store should count.
    async fn job_status_counts(&self, job_id: &str) -> StoreResult<Vec<(JobStatus, u64)>> {
        let mut m = BTreeMap::<&'static str, (JobStatus, u64)>::new();
        for e in self.executions_of_job(job_id).await? {
            m.entry(e.status.as_str()).or_insert((e.status, 0)).1 += 1;
        }
        Ok(m.into_values().collect())
    }
    /// How many executions, of every job, are in each status (statuses with none may be left
    /// out): one aggregate query, read by `/metrics` at every scrape (so several workers and a
    /// restarted server report the same numbers).
    async fn execution_status_totals(&self) -> StoreResult<Vec<(JobStatus, u64)>>;
    /// All things, by name.
    async fn list_things(&self) -> StoreResult<Vec<Thing>>;
    /// Names of the things in a group.
    async fn group_members(&self, group: &str) -> StoreResult<Vec<String>>;
    /// Adds a certificate.
    async fn add_certificate(&self, cert: &CertRecord) -> StoreResult<()>;
    /// A certificate by id.
    async fn certificate(&self, id: &str) -> StoreResult<Option<CertRecord>>;
    /// The certificates of a thing.
    async fn certificates_of(&self, thing: &str) -> StoreResult<Vec<CertRecord>>;
    /// All revoked certificates (for the CRL).
    async fn revoked_certificates(&self) -> StoreResult<Vec<CertRecord>>;
    /// Revokes every active certificate of a thing; returns how many.
    async fn revoke_thing(&self, thing: &str, now: u64) -> StoreResult<u64>;

    /// Creates a job and a QUEUED execution for each thing, in one transaction.
    async fn create_job(&self, job: &Job, things: &[String]) -> StoreResult<()>;
    /// A job.
    async fn job(&self, job_id: &str) -> StoreResult<Option<Job>>;
    /// Sets a job's state.
    async fn set_job_state(&self, job_id: &str, state: JobState) -> StoreResult<()>;
    /// Every execution of a thing, in creation order.
    async fn executions_of_thing(&self, thing: &str) -> StoreResult<Vec<Execution>>;
    /// Every execution of a job.
    async fn executions_of_job(&self, job_id: &str) -> StoreResult<Vec<Execution>>;
    /// One page of a job's executions in creation order: those with `seq` greater than
    /// `after`, at most `limit`. Describe and cancel read a job this way so that neither holds
    /// a whole fleet's executions at once. The default filters [`Store::executions_of_job`].
    async fn executions_of_job_page(
        &self,
        job_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Execution>> {
        let mut all = self.executions_of_job(job_id).await?;
        all.sort_by_key(|e| e.seq);
        Ok(all
            .into_iter()
            .filter(|e| after.is_none_or(|a| e.seq > a))
            .take(limit)
            .collect())
    }
    /// One execution.
    async fn execution(&self, job_id: &str, thing: &str) -> StoreResult<Option<Execution>>;
    /// Replaces an execution if its stored version is still `expected_version` and appends the
    /// history entry, keeping only the newest [`HISTORY_MAX`] entries, atomically. `false`:
    /// someone else changed it first.
    async fn update_execution(&self, exec: &Execution, expected_version: u64) -> StoreResult<bool>;
    /// An execution's history, oldest first: at most [`HISTORY_MAX`] entries, the newest.
    async fn history(&self, job_id: &str, thing: &str) -> StoreResult<Vec<HistoryEntry>>;
    /// IN_PROGRESS executions whose timer expired at or before `now`, earliest first.
    async fn due_executions(&self, now: u64) -> StoreResult<Vec<Execution>>;
    /// The earliest timer of any IN_PROGRESS execution.
    async fn next_deadline(&self) -> StoreResult<Option<u64>>;

    /// Creates a stream.
    async fn create_stream(&self, stream: &StreamRecord) -> StoreResult<()>;
    /// A stream.
    async fn stream(&self, stream_id: &str) -> StoreResult<Option<StreamRecord>>;

    /// Records an OTA update.
    async fn create_ota(&self, ota: &OtaRecord) -> StoreResult<()>;
    /// Creates an OTA update whole: its stream, its job with a QUEUED execution for each
    /// thing, and its record, in one transaction. Written in three calls, a failure (or a
    /// crash) after the job left an orphan job `AFR_OTA-<id>` that made the id impossible to
    /// create again; here either all three are stored or none is. No default: a store without
    /// transactions must still make this all-or-nothing.
    async fn create_ota_update(
        &self,
        stream: &StreamRecord,
        job: &Job,
        things: &[String],
        ota: &OtaRecord,
    ) -> StoreResult<()>;
    /// An OTA update.
    async fn ota(&self, id: &str) -> StoreResult<Option<OtaRecord>>;
    /// All OTA updates, newest first.
    async fn list_ota(&self) -> StoreResult<Vec<OtaRecord>>;
    /// Sets an OTA update's status.
    async fn set_ota_status(&self, id: &str, status: &str) -> StoreResult<()>;
    /// Records why an OTA update cannot be delivered ([`OtaRecord::error_info`]).
    async fn set_ota_error(&self, id: &str, error: &ErrorInfo) -> StoreResult<()>;
}

/// A shared store.
pub type SharedStore = Arc<dyn Store>;

pub(crate) mod status_serde {
    use ferrota_proto::JobStatus;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &JobStatus, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<JobStatus, D::Error> {
        let s = String::deserialize(d)?;
        JobStatus::from_wire(&s).ok_or_else(|| serde::de::Error::custom("unknown job status"))
    }
}
