//! Rollouts behind the store ([`RolloutStore`], a supertrait of [`super::Store`]): a job's
//! rollout record and its targets (each thing with its wave, notified or not yet).
//!
//! Why targets are rows of their own: with a rate limit, a maintenance window or gated waves,
//! a job's things are not all notified when it is created. AWS creates an execution only when
//! it notifies the thing (DescribeJob's counters count executions), so a target waiting for
//! its turn has no execution here either; [`RolloutStore::release_targets`] creates the
//! QUEUED execution and marks the target notified in one transaction, so a crash can neither
//! lose a notification nor make one twice.

use async_trait::async_trait;
use ferrota_proto::JobStatus;
use serde::{Deserialize, Serialize};

pub use ferrota_api::RolloutStatus;

use super::{Execution, Job, OtaRecord, StoreResult, StreamRecord};

/// A job's rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// The job.
    pub job_id: String,
    /// The plan (configuration and targets), JSON written by [`crate::rollout`]; never
    /// changes after create.
    pub plan: String,
    /// Where it stands.
    pub status: RolloutStatus,
    /// The newest open wave.
    pub wave: u32,
    /// The engine's moving state (rate window), JSON written by [`crate::rollout`].
    pub state: String,
    /// Why it stopped or waits (AWS-style code).
    pub reason_code: Option<String>,
    /// The same in words.
    pub comment: Option<String>,
    /// When the scheduler must look at it again (a rate minute, a window, the start or end
    /// time); `None` when only an execution's change can move it.
    pub next_at: Option<u64>,
    /// +1 on every change (compare-and-set).
    pub version: u64,
}

/// Counts of one wave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveCounts {
    /// Things in the wave.
    pub things: u64,
    /// Of them, notified (an execution exists).
    pub released: u64,
    /// Executions of the wave's things per status.
    pub statuses: Vec<(JobStatus, u64)>,
}

impl WaveCounts {
    /// Executions in status `s`.
    pub fn count(&self, s: JobStatus) -> u64 {
        self.statuses
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One group of [`RolloutStore::rollout_progress`]: how many of a wave's targets are in one
/// state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    /// The OTA update of the rollout's job (its job id when the job has none).
    pub ota_update_id: String,
    /// The wave.
    pub wave: u32,
    /// The status of the targets' executions; `None` for targets not notified yet (no
    /// execution exists, as on AWS).
    pub status: Option<JobStatus>,
    /// How many targets.
    pub count: u64,
}

/// How a job was canceled (AWS DescribeJob's `forceCanceled`, `reasonCode`, `comment`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelInfo {
    /// Canceled with `force`.
    pub force: bool,
    /// AWS's `reasonCode`.
    pub reason_code: Option<String>,
    /// AWS's `comment`.
    pub comment: Option<String>,
}

/// Rollout records, targets, and how a job was canceled.
#[async_trait]
pub trait RolloutStore: Send + Sync + 'static {
    /// Creates an OTA update whose job has a rollout: stream, job (no execution yet), OTA
    /// record, rollout record and targets (`(thing, wave)`, in notification order), all or
    /// none.
    async fn create_ota_rollout(
        &self,
        stream: &StreamRecord,
        job: &Job,
        ota: &OtaRecord,
        rollout: &RolloutRecord,
        targets: &[(String, u32)],
    ) -> StoreResult<()>;
    /// A job's rollout.
    async fn rollout(&self, job_id: &str) -> StoreResult<Option<RolloutRecord>>;
    /// Replaces a rollout if its stored version is still `expected_version` (the record
    /// carries the new version). `false`: changed meanwhile.
    async fn update_rollout(&self, r: &RolloutRecord, expected_version: u64) -> StoreResult<bool>;
    /// The rollouts not STOPPED whose job is SCHEDULED or IN_PROGRESS.
    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>>;
    /// Jobs of rollouts whose `next_at` is at or before `now`.
    async fn due_rollouts(&self, now: u64) -> StoreResult<Vec<String>>;
    /// The earliest `next_at` of any rollout.
    async fn next_rollout_at(&self) -> StoreResult<Option<u64>>;
    /// Up to `limit` targets not yet notified in waves `0..=max_wave`, in order (wave, then
    /// the order they were added in).
    async fn unreleased_targets(
        &self,
        job_id: &str,
        max_wave: u32,
        limit: usize,
    ) -> StoreResult<Vec<String>>;
    /// Notifies targets: for each of `things` still unreleased, a QUEUED execution (number
    /// 1, version 1, queued `now`) and the target marked notified, in one transaction.
    /// Returns how many were released (a thing already released is skipped).
    async fn release_targets(
        &self,
        job_id: &str,
        things: &[String],
        now: u64,
    ) -> StoreResult<usize>;
    /// Per wave (index = wave): things, notified, executions per status.
    async fn wave_counts(&self, job_id: &str) -> StoreResult<Vec<WaveCounts>>;
    /// Adds a target to wave `wave` unless the thing is a target already; `true` if added.
    async fn add_target(&self, job_id: &str, thing: &str, wave: u32) -> StoreResult<bool>;
    /// Queues an execution again as its next execution number (AWS's retry): status QUEUED,
    /// `executionNumber` + 1, version + 1, no status details or timers, queued `now`, with a
    /// history entry; only if its stored version is still `e.version_number`.
    async fn retry_execution(&self, e: &Execution, now: u64) -> StoreResult<bool>;
    /// Records how a job was canceled.
    async fn set_cancel_info(&self, job_id: &str, info: &CancelInfo) -> StoreResult<()>;
    /// How a job was canceled, if it was.
    async fn cancel_info(&self, job_id: &str) -> StoreResult<Option<CancelInfo>>;
    /// The targets of every active rollout (as [`RolloutStore::active_rollouts`] selects
    /// them) counted by OTA update, wave and execution status, in one aggregate query: what
    /// `/metrics` reads at every scrape, so it must not cost a query per rollout.
    async fn rollout_progress(&self) -> StoreResult<Vec<RolloutProgress>>;
}

/// `SCHEDULED`, `RUNNING`…: the stored form of a [`RolloutStatus`], its wire name.
pub fn status_str(s: RolloutStatus) -> &'static str {
    s.as_str()
}

/// The [`RolloutStatus`] of its stored form.
pub fn status_of(s: &str) -> Option<RolloutStatus> {
    Some(match s {
        "SCHEDULED" => RolloutStatus::Scheduled,
        "RUNNING" => RolloutStatus::Running,
        "PAUSED" => RolloutStatus::Paused,
        "WAITING_FOR_APPROVAL" => RolloutStatus::WaitingForApproval,
        "STOPPED" => RolloutStatus::Stopped,
        "FINISHED" => RolloutStatus::Finished,
        _ => return None,
    })
}
