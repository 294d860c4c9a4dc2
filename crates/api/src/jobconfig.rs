//! A job's rollout settings, with AWS IoT's names (CreateJob / CreateOTAUpdate), and Ferrota's
//! gated waves (hawkBit's rollout groups, which AWS does not have).
//!
//! The shapes are AWS's: a JSON file written for `aws iot create-job --cli-input-json` or
//! `aws iot create-ota-update --cli-input-json` reads into these types unchanged (CreateJob's
//! names — `jobExecutionsRolloutConfig`, `abortConfig`, `timeoutConfig` — and CreateOTAUpdate's
//! `aws…` names are both accepted, see [`crate::CreateOtaUpdate`]). Every struct is read with
//! `deny_unknown_fields`. The ranges (1–1000 things a minute, factor 1.1–5.0, 0–10 retries…)
//! are checked by the server, in one place, which answers AWS's `InvalidRequestException`
//! naming the field and stores nothing.

use serde::{Deserialize, Serialize};

/// AWS `jobExecutionsRolloutConfig` (`awsJobExecutionsRolloutConfig` in CreateOTAUpdate): how
/// fast new executions are notified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutConfig {
    /// At most this many things notified a minute (1–1000). With [`RolloutConfig::exponential_rate`],
    /// the ceiling of the growing rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<u64>,
    /// A rate that starts low and grows as the rollout goes well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

/// AWS `ExponentialRolloutRate`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExponentialRate {
    /// The first rate, things a minute (1–1000).
    pub base_rate_per_minute: u64,
    /// What the rate is multiplied by each time the criteria count is reached again
    /// (1.1–5.0, one decimal place).
    pub increment_factor: f64,
    /// When the rate grows.
    pub rate_increase_criteria: RateIncreaseCriteria,
}

/// AWS `RateIncreaseCriteria`: exactly one of the two counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateIncreaseCriteria {
    /// The rate grows each time this many more things were notified (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_notified_things: Option<u64>,
    /// The rate grows each time this many more things succeeded (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_succeeded_things: Option<u64>,
}

/// AWS `abortConfig` (`awsJobAbortConfig` in CreateOTAUpdate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortConfig {
    /// The criteria (1 or more); the first one met cancels the job. CreateOTAUpdate's
    /// `awsJobAbortConfig` names the list `abortCriteriaList`, CreateJob's `abortConfig`
    /// `criteriaList`: both are read, the first is written.
    #[serde(rename = "abortCriteriaList", alias = "criteriaList")]
    pub criteria_list: Vec<AbortCriteria>,
}

/// AWS `AbortCriteria`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortCriteria {
    /// `FAILED`, `REJECTED`, `TIMED_OUT` or `ALL` (any of the three).
    pub failure_type: String,
    /// `CANCEL` (AWS's only action).
    pub action: String,
    /// Percentage of executed things that failed so (0–100, two decimal places).
    pub threshold_percentage: f64,
    /// Executions that must have finished before the criteria is judged (≥ 1).
    pub min_number_of_executed_things: u64,
}

/// AWS `jobExecutionsRetryConfig`: a failed or timed-out execution is queued again, as a new
/// execution number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// 1–2 criteria.
    pub criteria_list: Vec<RetryCriteria>,
}

/// AWS `RetryCriteria`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryCriteria {
    /// `FAILED`, `TIMED_OUT` or `ALL`.
    pub failure_type: String,
    /// 0–10.
    pub number_of_retries: u64,
}

/// AWS `schedulingConfig`: when the rollout starts and ends, and the windows it may notify in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingConfig {
    /// `YYYY-MM-DDTHH:MM` (UTC, AWS's format; seconds and a `Z` are accepted): the job is
    /// SCHEDULED until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Same format: the rollout ends then, as [`SchedulingConfig::end_behavior`] says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// `STOP_ROLLOUT` (default), `CANCEL` or `FORCE_CANCEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_behavior: Option<String>,
    /// Recurring windows; with any, no new execution is notified outside them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

/// AWS `MaintenanceWindow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)`, UTC (AWS's cron
    /// expressions).
    pub start_time: String,
    /// 1–1430.
    pub duration_in_minutes: u64,
}

/// Ferrota's gated waves (hawkBit's rollout groups; not in AWS, so not an AWS name): the
/// targets are split into ordered waves, and the next wave opens only when this one passes its
/// success threshold (and, if asked, an operator approves); a wave over its error threshold
/// stops the whole rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutWaves {
    /// 1–100 waves, in order.
    pub waves: Vec<Wave>,
}

/// One wave: which targets, and its gates. Exactly one of `percentage`, `count`, `thingGroup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Wave {
    /// A name for the operator (`canary`); default `wave-<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cumulative share of all targets (0–100, two decimals) covered by this wave and the ones
    /// before it: `1`, `10`, `100` is 1 %, then 9 % more, then the other 90 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    /// This many more targets (≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The targets that are members of this thing group (and in no earlier wave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_group: Option<String>,
    /// Share of the wave's things that must have SUCCEEDED before the next wave opens
    /// (0–100; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold_percentage: Option<f64>,
    /// The rollout stops when this share of the wave's things failed (FAILED, REJECTED or
    /// TIMED_OUT with no retry left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_threshold_percentage: Option<f64>,
    /// The rollout stops when this many of the wave's things failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_threshold_count: Option<u64>,
    /// The next wave opens only after `ferrota rollout approve` (hawkBit's manual trigger).
    #[serde(default)]
    pub requires_approval: bool,
}

/// Where a rollout stands (Ferrota's, beside AWS's job status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutStatus {
    /// Before `schedulingConfig.startTime`.
    Scheduled,
    /// Notifying as the rate, the windows and the waves allow.
    Running,
    /// Paused by the operator: nothing new is notified; executions already out go on.
    Paused,
    /// A wave passed its success threshold and the next one waits for `approve`.
    WaitingForApproval,
    /// Stopped for good: aborted (criteria or a wave's error threshold), canceled, or its
    /// `endTime` passed. `reasonCode` says which.
    Stopped,
    /// Every target was notified (executions may still be running).
    Finished,
}

impl RolloutStatus {
    /// Its wire name (`SCHEDULED`, `RUNNING`, `PAUSED`, `WAITING_FOR_APPROVAL`, `STOPPED`,
    /// `FINISHED`), as the JSON carries it: one spelling for the store, messages and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Scheduled => "SCHEDULED",
            RolloutStatus::Running => "RUNNING",
            RolloutStatus::Paused => "PAUSED",
            RolloutStatus::WaitingForApproval => "WAITING_FOR_APPROVAL",
            RolloutStatus::Stopped => "STOPPED",
            RolloutStatus::Finished => "FINISHED",
        }
    }
}

/// One wave as DescribeRollout shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveProgress {
    /// Name.
    pub name: String,
    /// Things in the wave.
    pub number_of_things: u64,
    /// Of them, notified so far (an execution exists).
    pub number_of_notified_things: u64,
    /// SUCCEEDED.
    pub number_of_succeeded_things: u64,
    /// FAILED, REJECTED or TIMED_OUT (final: no retry left).
    pub number_of_failed_things: u64,
    /// Whether the wave is open (its things may be notified).
    pub open: bool,
}

/// `GET /api/rollouts/{id}` (and the answer of pause/resume/approve/cancel): a rollout with
/// its waves.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDescription {
    /// The OTA update.
    pub ota_update_id: String,
    /// Its job.
    pub job_id: String,
    /// Where it stands.
    pub status: RolloutStatus,
    /// Why it stopped or waits (`ABORTED_BY_CRITERIA`, `WAVE_ERROR_THRESHOLD`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The same in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Index of the newest open wave.
    pub current_wave: u32,
    /// The waves (one wave of every target when the job has none).
    pub waves: Vec<WaveProgress>,
    /// The notification rate now, things a minute (`None`: not limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u64>,
    /// When the next notification may go out, epoch seconds (rate or maintenance window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_release_at: Option<u64>,
}

/// What the server knows of a thing's firmware and state (`thing describe`, the `inventory`
/// of `GET /api/things/{name}`), kept from what the device reports in its Device Shadow
/// (`state.reported`, see [`ReportedState`]) and from its connection and jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingInventory {
    /// Connected now.
    pub connected: bool,
    /// Last time the device was heard from (connect, disconnect, shadow or job update), epoch
    /// seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// What it runs, as last reported; `None` before its first report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedState>,
    /// When it last reported, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<u64>,
    /// Its newest job execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<LastJob>,
}

/// The `state.reported` document `ferrota-agent` publishes to its classic Device Shadow
/// (`$aws/things/<thing>/shadow/update`) after every boot and after every job; the server's
/// inventory and the fleet-index query fields (`firmware.version`, …) read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedState {
    /// The running image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareState>,
    /// The hardware (board) id the image was built for and the device checks images against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_id: Option<String>,
}

/// The running image, as the device reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareState {
    /// Version, `major.minor.patch`.
    pub version: String,
    /// The bank it booted from, `A` or `B`.
    pub bank: String,
    /// Whether it runs on trial (not yet confirmed by its self-test).
    pub pending_trial: bool,
    /// The anti-rollback floor (security counter) now in force.
    pub anti_rollback_floor: u32,
}

/// A thing's newest job execution, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastJob {
    /// Job id.
    pub job_id: String,
    /// Status (`SUCCEEDED`, …).
    pub status: String,
    /// Last change, epoch seconds.
    pub last_updated_at: u64,
}

/// An operator's action on a rollout ([`crate::Client::rollout_action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    /// Notify nothing new until resumed.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Open the next wave of one that waits for approval.
    Approve,
    /// Cancel the job (`force`: IN_PROGRESS executions too).
    Cancel {
        /// AWS CancelJob's `force`.
        force: bool,
    },
}

impl RolloutAction {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Approve => "approve",
            RolloutAction::Cancel { .. } => "cancel",
        }
    }
}

/// The rollout settings of a request, builder style (see [`crate::CreateOtaUpdate`]'s).
impl crate::CreateOtaUpdate {
    /// Sets `awsJobExecutionsRolloutConfig`.
    pub fn rollout(mut self, c: RolloutConfig) -> Self {
        self.aws_job_executions_rollout_config = Some(c);
        self
    }

    /// Sets a constant rate: `awsJobExecutionsRolloutConfig.maximumPerMinute`.
    pub fn max_per_minute(self, n: u64) -> Self {
        self.rollout(RolloutConfig {
            maximum_per_minute: Some(n),
            exponential_rate: None,
        })
    }

    /// Adds an abort criterion (`awsJobAbortConfig.abortCriteriaList`, action CANCEL).
    pub fn abort_when(mut self, failure_type: &str, percent: f64, min_executed: u64) -> Self {
        self.aws_job_abort_config
            .get_or_insert_with(AbortConfig::default)
            .criteria_list
            .push(AbortCriteria {
                failure_type: failure_type.into(),
                action: "CANCEL".into(),
                threshold_percentage: percent,
                min_number_of_executed_things: min_executed,
            });
        self
    }

    /// Adds a retry criterion (`jobExecutionsRetryConfig.criteriaList`).
    pub fn retry_when(mut self, failure_type: &str, retries: u64) -> Self {
        self.job_executions_retry_config
            .get_or_insert_with(RetryConfig::default)
            .criteria_list
            .push(RetryCriteria {
                failure_type: failure_type.into(),
                number_of_retries: retries,
            });
        self
    }

    /// Sets `schedulingConfig`.
    pub fn scheduling(mut self, s: SchedulingConfig) -> Self {
        self.scheduling_config = Some(s);
        self
    }

    /// Adds a wave (`rolloutWaves.waves`).
    pub fn wave(mut self, w: Wave) -> Self {
        self.rollout_waves
            .get_or_insert_with(RolloutWaves::default)
            .waves
            .push(w);
        self
    }

    /// `targetSelection: CONTINUOUS`: things that join the target groups later get the job.
    pub fn continuous(mut self) -> Self {
        self.target_selection = Some("CONTINUOUS".into());
        self
    }
}

/// `GET /api/jobs/{jobId}`: AWS DescribeJob's answer, `{"job": {…}}` with AWS's names.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeJobResponse {
    /// The job.
    pub job: JobDescription,
}

/// `GET /api/jobs/{jobId}/job-document`: AWS GetJobDocument's answer, the job document as
/// stored, whole: every file entry, the packed and delta alternatives of `files[0]` included
/// (a device is served only the deltas that match what it reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetJobDocumentResponse {
    /// The job document, JSON text (AWS returns it as a string).
    pub document: String,
}

/// AWS's `Job` (the fields Ferrota keeps).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDescription {
    /// Job id (`AFR_OTA-<otaUpdateId>` for an OTA update's job).
    pub job_id: String,
    /// `SNAPSHOT` or `CONTINUOUS`.
    pub target_selection: String,
    /// IN_PROGRESS, CANCELED, COMPLETED or SCHEDULED.
    pub status: crate::JobState,
    /// Canceled with `force`.
    pub force_canceled: bool,
    /// Why it was canceled (`ABORTED_BY_CRITERIA`, `WAVE_ERROR_THRESHOLD`, `END_TIME_REACHED`,
    /// `CANCELED_BY_OPERATOR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The same in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The targets as the request named them.
    pub targets: Vec<String>,
    /// Description.
    pub description: String,
    /// Created at, epoch seconds.
    pub created_at: u64,
    /// Executions per status.
    pub job_process_details: crate::JobProcessDetails,
    /// `timeoutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<crate::TimeoutConfig>,
    /// `jobExecutionsRolloutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// `abortConfig` (its list written as `criteriaList`, CreateJob's name, is read too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
    /// `jobExecutionsRetryConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// `schedulingConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_config: Option<SchedulingConfig>,
    /// Ferrota's waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_waves: Option<RolloutWaves>,
}

#[cfg(test)]
mod status_names {
    use super::RolloutStatus;

    #[test]
    fn a_rollout_status_is_spelled_as_its_json() {
        for s in [
            RolloutStatus::Scheduled,
            RolloutStatus::Running,
            RolloutStatus::Paused,
            RolloutStatus::WaitingForApproval,
            RolloutStatus::Stopped,
            RolloutStatus::Finished,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }
}
