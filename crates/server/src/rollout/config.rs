//! A job's configuration (STUB on the lead's branch; the helper's version replaces it).

use ferrota_api::{
    AbortConfig, CreateOtaUpdate, RetryConfig, RolloutConfig, RolloutWaves, SchedulingConfig,
};
use ferrota_proto::JobStatus;
use serde::{Deserialize, Serialize};

use super::window::Windows;

/// A job's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobConfig {
    /// Rate.
    pub rollout: Option<RolloutConfig>,
    /// Abort.
    pub abort: Option<AbortConfig>,
    /// Retry.
    pub retry: Option<RetryConfig>,
    /// Scheduling.
    pub scheduling: Option<SchedulingConfig>,
    /// Waves.
    pub waves: Option<RolloutWaves>,
    /// CONTINUOUS.
    pub continuous: bool,
    /// Timeout.
    pub in_progress_timeout_minutes: Option<u64>,
}

/// Parsed parts.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// Start.
    pub start: Option<u64>,
    /// End.
    pub end: Option<u64>,
    /// End behavior.
    pub end_behavior: EndBehavior,
    /// Windows.
    pub windows: Windows,
}

/// endBehavior.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndBehavior {
    /// STOP_ROLLOUT.
    #[default]
    StopRollout,
    /// CANCEL.
    Cancel,
    /// FORCE_CANCEL.
    ForceCancel,
}

/// failureType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    /// FAILED.
    Failed,
    /// REJECTED.
    Rejected,
    /// TIMED_OUT.
    TimedOut,
    /// ALL.
    All,
}

impl FailureType {
    /// Parse.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FAILED" => Self::Failed,
            "REJECTED" => Self::Rejected,
            "TIMED_OUT" => Self::TimedOut,
            "ALL" => Self::All,
            _ => return None,
        })
    }
    /// Whether it covers `s`.
    pub fn covers(self, s: JobStatus) -> bool {
        match self {
            Self::Failed => s == JobStatus::Failed,
            Self::Rejected => s == JobStatus::Rejected,
            Self::TimedOut => s == JobStatus::TimedOut,
            Self::All => matches!(
                s,
                JobStatus::Failed | JobStatus::Rejected | JobStatus::TimedOut
            ),
        }
    }
}

/// An invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl JobConfig {
    /// From a request.
    pub fn from_request(req: &CreateOtaUpdate) -> Result<JobConfig, ConfigError> {
        if let Some(t) = &req.target_selection
            && t != "SNAPSHOT"
            && t != "CONTINUOUS"
        {
            return Err(ConfigError(format!(
                "targetSelection: {t:?} must be SNAPSHOT or CONTINUOUS"
            )));
        }
        Ok(JobConfig {
            rollout: req.aws_job_executions_rollout_config.clone(),
            abort: req.aws_job_abort_config.clone(),
            retry: req.job_executions_retry_config.clone(),
            scheduling: req.scheduling_config.clone(),
            waves: req.rollout_waves.clone(),
            continuous: req.target_selection.as_deref() == Some("CONTINUOUS"),
            in_progress_timeout_minutes: req
                .aws_job_timeout_config
                .as_ref()
                .map(|t| t.in_progress_timeout_in_minutes),
        })
    }

    /// Validate.
    pub fn validate(&self, _now: u64) -> Result<Validated, ConfigError> {
        Ok(Validated::default())
    }
}
