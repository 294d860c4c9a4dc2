//! A job's rollout configuration: what the request said ([`JobConfig`], stored as JSON by the
//! engine) and AWS's validation of it ([`JobConfig::validate`] → [`Validated`]).
//!
//! # Ranges (AWS IoT API reference, CreateJob)
//!
//! | field | range |
//! |---|---|
//! | `jobExecutionsRolloutConfig.maximumPerMinute` | 1–1000 |
//! | `….exponentialRate.baseRatePerMinute` | 1–1000 |
//! | `….exponentialRate.incrementFactor` | 1.1–5.0, one decimal place |
//! | `….exponentialRate.rateIncreaseCriteria` | exactly one of `numberOfNotifiedThings`, `numberOfSucceededThings`, each ≥ 1 |
//! | `awsJobAbortConfig.abortCriteriaList` (CreateJob: `abortConfig.criteriaList`) | ≥ 1 entry; `failureType` FAILED, REJECTED, TIMED_OUT, ALL; `action` CANCEL; `thresholdPercentage` 0–100, two decimals; `minNumberOfExecutedThings` ≥ 1 |
//! | `jobExecutionsRetryConfig.criteriaList` | 1–2 entries; `failureType` FAILED, TIMED_OUT, ALL, each at most once; `numberOfRetries` 0–10 |
//! | `schedulingConfig.startTime` | now + 30 min … now + 1 year |
//! | `schedulingConfig.endTime` | now + 30 min … now + 2 years, and 30 min … 2 years after `startTime` |
//! | `schedulingConfig.endBehavior` | STOP_ROLLOUT (default), CANCEL, FORCE_CANCEL |
//! | `schedulingConfig.maintenanceWindows` | ≤ [`MAX_WINDOWS`] entries; `durationInMinutes` 1–1430; `startTime` an AWS cron expression ([`super::window`]) |
//! | `timeoutConfig.inProgressTimeoutInMinutes` | 1–10080 |
//! | `targetSelection` | SNAPSHOT (default), CONTINUOUS |
//!
//! Times are `YYYY-MM-DDTHH:MM` in UTC (AWS's format); `:SS` and a trailing `Z` are accepted.
//! A year is 365 days, two years 730 days.
//!
//! # Waves (Ferrota's; AWS has none, so these limits are ours)
//!
//! `rolloutWaves.waves`: 1–100 waves (enough for any staged plan, small enough to show in a
//! table). Each wave gives exactly one of `percentage` (0 < p ≤ 100, two decimals, cumulative:
//! strictly increasing over the waves that use it), `count` (≥ 1 more targets) or
//! `thingGroup` (a valid group name); `successThresholdPercentage` 0–100 (default 100);
//! `errorThresholdPercentage` 0–100 and/or `errorThresholdCount` ≥ 1 (neither: the wave never
//! stops the rollout by itself; the abort criteria still apply). Names are 1–128 characters,
//! unique over the rollout (default `wave-<n>`, counted from 1).
//!
//! # Errors
//!
//! Every violation is collected (not just the first), and [`ConfigError`] displays as AWS's
//! validation message: `1 validation error detected: Value '2000' at
//! 'awsJobExecutionsRolloutConfig.maximumPerMinute' failed to satisfy constraint: Member must
//! have value less than or equal to 1000`. Paths use CreateOTAUpdate's names where it has the
//! setting (`awsJobExecutionsRolloutConfig`, `awsJobAbortConfig.abortCriteriaList`,
//! `awsJobTimeoutConfig`: every request here is an OTA update, and the request's aliases are
//! not kept by deserialization), CreateJob's for the rest (`jobExecutionsRetryConfig`,
//! `schedulingConfig`); list entries are AWS's `<list>.<n>.member.<field>`, counted from 1.

use ferrota_api::{
    AbortConfig, CreateOtaUpdate, RetryConfig, RolloutConfig, RolloutWaves, SchedulingConfig,
};
use ferrota_proto::JobStatus;
use ferrota_proto::limits::NameLimits;
use ferrota_proto::topic::{NameKind, validate_name};
use serde::{Deserialize, Serialize};

use super::window::{MAX_WINDOWS, WindowError, Windows};

/// Least time from now to `startTime` and `endTime`, and from `startTime` to `endTime`.
pub const MIN_LEAD_SECS: u64 = 30 * 60;
/// Latest `startTime`: one year (365 days) from now.
pub const MAX_START_SECS: u64 = 365 * 24 * 3600;
/// Latest `endTime`: two years (730 days) from now, and from `startTime`.
pub const MAX_END_SECS: u64 = 2 * MAX_START_SECS;
/// Most waves in a rollout.
pub const MAX_WAVES: usize = 100;

/// Everything about a job's rollout that the request said, as the engine stores it (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConfig {
    /// `jobExecutionsRolloutConfig` / `awsJobExecutionsRolloutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutConfig>,
    /// `abortConfig` / `awsJobAbortConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortConfig>,
    /// `jobExecutionsRetryConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// `schedulingConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<SchedulingConfig>,
    /// Ferrota's `rolloutWaves`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<RolloutWaves>,
    /// `targetSelection` CONTINUOUS: things that join a target group later get the job too.
    #[serde(default)]
    pub continuous: bool,
    /// `timeoutConfig.inProgressTimeoutInMinutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_minutes: Option<u64>,
    /// A `targetSelection` that is neither SNAPSHOT nor CONTINUOUS, kept so that
    /// [`JobConfig::validate`] reports it (from_request cannot fail). Never stored: a stored
    /// config was validated.
    #[serde(skip)]
    pub invalid_target_selection: Option<String>,
}

/// What happens at `schedulingConfig.endTime` (AWS `endBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndBehavior {
    /// Notify nothing more; executions already out go on (AWS's default).
    #[default]
    StopRollout,
    /// Cancel the job: QUEUED executions become CANCELED.
    Cancel,
    /// Cancel the job with force: IN_PROGRESS executions too.
    ForceCancel,
}

/// An abort or retry criteria's `failureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureType {
    /// FAILED.
    Failed,
    /// REJECTED (abort only).
    Rejected,
    /// TIMED_OUT.
    TimedOut,
    /// Any of FAILED, REJECTED, TIMED_OUT.
    All,
}

impl FailureType {
    /// Whether an execution that ended in `status` counts for this failure type.
    pub fn covers(self, status: JobStatus) -> bool {
        match self {
            FailureType::Failed => status == JobStatus::Failed,
            FailureType::Rejected => status == JobStatus::Rejected,
            FailureType::TimedOut => status == JobStatus::TimedOut,
            FailureType::All => matches!(
                status,
                JobStatus::Failed | JobStatus::Rejected | JobStatus::TimedOut
            ),
        }
    }

    fn parse(s: &str, allowed: &[FailureType]) -> Option<FailureType> {
        let t = match s {
            "FAILED" => FailureType::Failed,
            "REJECTED" => FailureType::Rejected,
            "TIMED_OUT" => FailureType::TimedOut,
            "ALL" => FailureType::All,
            _ => return None,
        };
        allowed.contains(&t).then_some(t)
    }
}

/// One abort criteria, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbortRule {
    /// Which endings count.
    pub failure_type: FailureType,
    /// Percentage (0–100) of executed things that must have failed so.
    pub threshold_percentage: f64,
    /// Executions that must have ended before the rule is judged.
    pub min_executed: u64,
}

/// One retry criteria, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Which endings are retried.
    pub failure_type: FailureType,
    /// How many times (0–10).
    pub retries: u64,
}

/// Which targets a wave takes.
#[derive(Debug, Clone, PartialEq)]
pub enum WaveTargets {
    /// Up to this cumulative share (0–100] of all targets.
    Percentage(f64),
    /// This many more targets.
    Count(u64),
    /// The targets in this thing group not taken by an earlier wave.
    Group(String),
}

/// One wave, parsed, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct WavePlan {
    /// Name (`wave-<n>` by default, counted from 1).
    pub name: String,
    /// Its targets.
    pub targets: WaveTargets,
    /// Share of the wave that must have SUCCEEDED before the next opens (default 100).
    pub success_threshold_percentage: f64,
    /// The rollout stops when this share of the wave failed.
    pub error_threshold_percentage: Option<f64>,
    /// The rollout stops when this many of the wave failed.
    pub error_threshold_count: Option<u64>,
    /// The next wave waits for an operator's approve.
    pub requires_approval: bool,
}

/// A configuration that passed validation, parsed into what the engine needs.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    /// `startTime`, epoch seconds (`None`: start now).
    pub start: Option<u64>,
    /// `endTime`, epoch seconds (`None`: no end).
    pub end: Option<u64>,
    /// What `endTime` does.
    pub end_behavior: EndBehavior,
    /// The maintenance windows (none: always open).
    pub windows: Windows,
    /// Abort criteria, in the request's order.
    pub abort: Vec<AbortRule>,
    /// Retry criteria.
    pub retry: Vec<RetryRule>,
    /// Waves (empty: one wave of every target).
    pub waves: Vec<WavePlan>,
}

/// One violated constraint, AWS's form: `Value '<v>' at '<path>' failed to satisfy
/// constraint: <constraint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending value as the request gave it.
    pub value: String,
    /// The field path (`jobExecutionsRolloutConfig.maximumPerMinute`).
    pub path: String,
    /// `Member must have value less than or equal to 1000`.
    pub constraint: String,
}

/// Why a configuration was refused: every violation found. Displays as AWS's
/// `N validation error(s) detected: …; …` (answered as `InvalidRequestException`, 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong, at least one.
    pub violations: Vec<Violation>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.violations.len();
        write!(
            f,
            "{n} validation error{} detected: ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "Value '{}' at '{}' failed to satisfy constraint: {}",
                v.value, v.path, v.constraint
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects violations.
#[derive(Default)]
struct Check {
    out: Vec<Violation>,
}

impl Check {
    fn bad(&mut self, value: impl ToString, path: &str, constraint: impl Into<String>) {
        self.out.push(Violation {
            value: value.to_string(),
            path: path.to_string(),
            constraint: constraint.into(),
        });
    }

    fn min(&mut self, v: u64, min: u64, path: &str) {
        if v < min {
            self.bad(
                v,
                path,
                format!("Member must have value greater than or equal to {min}"),
            );
        }
    }

    fn range(&mut self, v: u64, min: u64, max: u64, path: &str) {
        self.min(v, min, path);
        if v > max {
            self.bad(
                v,
                path,
                format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    /// A decimal within `[min, max]` with at most `places` decimal places.
    fn decimal(&mut self, v: f64, min: f64, max: f64, places: i32, path: &str) {
        if !v.is_finite() || v < min {
            self.bad(
                v,
                path,
                format!("Member must have value greater than or equal to {min}"),
            );
        } else if v > max {
            self.bad(
                v,
                path,
                format!("Member must have value less than or equal to {max}"),
            );
        } else {
            let scaled = v * 10f64.powi(places);
            if (scaled - scaled.round()).abs() > 1e-6 {
                let what = if places == 1 {
                    "one decimal place".to_string()
                } else {
                    format!("{places} decimal places")
                };
                self.bad(v, path, format!("Member must have at most {what}"));
            }
        }
    }

    fn one_of(&mut self, v: &str, set: &str, path: &str, ok: bool) {
        if !ok {
            self.bad(
                v,
                path,
                format!("Member must satisfy enum value set: [{set}]"),
            );
        }
    }
}

/// Parses AWS's `YYYY-MM-DDTHH:MM` (UTC; `:SS` and `Z` accepted) into epoch seconds.
pub fn parse_time(s: &str) -> Option<u64> {
    use time::PrimitiveDateTime;
    use time::format_description::BorrowedFormatItem;
    use time::macros::format_description;
    const FMT: &[BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute][optional [:[second]]]");
    let s = s.strip_suffix('Z').unwrap_or(s);
    let t = PrimitiveDateTime::parse(s, FMT).ok()?.assume_utc();
    u64::try_from(t.unix_timestamp()).ok()
}

impl JobConfig {
    /// The rollout settings of a CreateOTAUpdate / CreateJob request (no checking: that is
    /// [`JobConfig::validate`], which also reports a bad `targetSelection` kept here).
    pub fn from_request(req: &CreateOtaUpdate) -> JobConfig {
        let (continuous, invalid_target_selection) = match req.target_selection.as_deref() {
            None | Some("SNAPSHOT") => (false, None),
            Some("CONTINUOUS") => (true, None),
            Some(other) => (false, Some(other.to_string())),
        };
        JobConfig {
            rollout: req.aws_job_executions_rollout_config.clone(),
            abort: req.aws_job_abort_config.clone(),
            retry: req.job_executions_retry_config.clone(),
            scheduling: req.scheduling_config.clone(),
            waves: req.rollout_waves.clone(),
            continuous,
            in_progress_timeout_minutes: req
                .aws_job_timeout_config
                .as_ref()
                .map(|t| t.in_progress_timeout_in_minutes),
            invalid_target_selection,
        }
    }

    /// Whether the request asked for nothing beyond AWS's defaults (the engine may skip the
    /// rollout machinery).
    pub fn is_default(&self) -> bool {
        *self == JobConfig::default()
    }

    /// Checks every range at create time (`now`, epoch seconds, for the scheduling times)
    /// and parses. Nothing may be stored when this fails.
    pub fn validate(&self, now: u64) -> Result<Validated, ConfigError> {
        self.check(Some(now))
    }

    /// Parses a configuration already validated at create time (the engine reloading it
    /// after a restart): the same checks less those relative to now, which no longer hold
    /// once the start time has passed.
    pub fn parsed(&self) -> Result<Validated, ConfigError> {
        self.check(None)
    }

    fn check(&self, now: Option<u64>) -> Result<Validated, ConfigError> {
        let mut c = Check::default();
        let mut out = Validated::default();
        if let Some(t) = &self.invalid_target_selection {
            c.one_of(t, "CONTINUOUS, SNAPSHOT", "targetSelection", false);
        }
        if let Some(m) = self.in_progress_timeout_minutes {
            c.range(
                m,
                1,
                10080,
                "awsJobTimeoutConfig.inProgressTimeoutInMinutes",
            );
        }
        if let Some(r) = &self.rollout {
            check_rollout(&mut c, r);
        }
        if let Some(a) = &self.abort {
            out.abort = check_abort(&mut c, a);
        }
        if let Some(r) = &self.retry {
            out.retry = check_retry(&mut c, r);
        }
        if let Some(s) = &self.scheduling {
            check_scheduling(&mut c, s, now, &mut out);
        }
        if let Some(w) = &self.waves {
            out.waves = check_waves(&mut c, w);
        }
        if c.out.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError { violations: c.out })
        }
    }
}

fn check_rollout(c: &mut Check, r: &RolloutConfig) {
    const P: &str = "awsJobExecutionsRolloutConfig";
    if let Some(m) = r.maximum_per_minute {
        c.range(m, 1, 1000, &format!("{P}.maximumPerMinute"));
    }
    if let Some(e) = &r.exponential_rate {
        c.range(
            e.base_rate_per_minute,
            1,
            1000,
            &format!("{P}.exponentialRate.baseRatePerMinute"),
        );
        c.decimal(
            e.increment_factor,
            1.1,
            5.0,
            1,
            &format!("{P}.exponentialRate.incrementFactor"),
        );
        let k = &e.rate_increase_criteria;
        let path = format!("{P}.exponentialRate.rateIncreaseCriteria");
        match (k.number_of_notified_things, k.number_of_succeeded_things) {
            (Some(n), None) => c.min(n, 1, &format!("{path}.numberOfNotifiedThings")),
            (None, Some(n)) => c.min(n, 1, &format!("{path}.numberOfSucceededThings")),
            _ => c.bad(
                serde_json::to_string(k).unwrap_or_default(),
                &path,
                "Member must have exactly one of numberOfNotifiedThings, numberOfSucceededThings",
            ),
        }
    }
}

fn check_abort(c: &mut Check, a: &AbortConfig) -> Vec<AbortRule> {
    const P: &str = "awsJobAbortConfig.abortCriteriaList";
    if a.criteria_list.is_empty() {
        c.bad(
            "[]",
            P,
            "Member must have length greater than or equal to 1",
        );
    }
    let mut rules = Vec::new();
    for (i, k) in a.criteria_list.iter().enumerate() {
        let at = |f: &str| format!("{P}.{}.member.{f}", i + 1);
        let ft = FailureType::parse(
            &k.failure_type,
            &[
                FailureType::Failed,
                FailureType::Rejected,
                FailureType::TimedOut,
                FailureType::All,
            ],
        );
        c.one_of(
            &k.failure_type,
            "FAILED, REJECTED, TIMED_OUT, ALL",
            &at("failureType"),
            ft.is_some(),
        );
        c.one_of(&k.action, "CANCEL", &at("action"), k.action == "CANCEL");
        c.decimal(
            k.threshold_percentage,
            0.0,
            100.0,
            2,
            &at("thresholdPercentage"),
        );
        c.min(
            k.min_number_of_executed_things,
            1,
            &at("minNumberOfExecutedThings"),
        );
        if let Some(failure_type) = ft {
            rules.push(AbortRule {
                failure_type,
                threshold_percentage: k.threshold_percentage,
                min_executed: k.min_number_of_executed_things,
            });
        }
    }
    rules
}

fn check_retry(c: &mut Check, r: &RetryConfig) -> Vec<RetryRule> {
    const P: &str = "jobExecutionsRetryConfig.criteriaList";
    let n = r.criteria_list.len();
    if n == 0 {
        c.bad(
            "[]",
            P,
            "Member must have length greater than or equal to 1",
        );
    } else if n > 2 {
        c.bad(
            format!("{n} entries"),
            P,
            "Member must have length less than or equal to 2",
        );
    }
    let mut rules: Vec<RetryRule> = Vec::new();
    for (i, k) in r.criteria_list.iter().enumerate() {
        let at = |f: &str| format!("{P}.{}.member.{f}", i + 1);
        let ft = FailureType::parse(
            &k.failure_type,
            &[FailureType::Failed, FailureType::TimedOut, FailureType::All],
        );
        c.one_of(
            &k.failure_type,
            "FAILED, TIMED_OUT, ALL",
            &at("failureType"),
            ft.is_some(),
        );
        c.range(k.number_of_retries, 0, 10, &at("numberOfRetries"));
        if let Some(failure_type) = ft {
            if rules.iter().any(|r| r.failure_type == failure_type) {
                c.bad(
                    &k.failure_type,
                    &at("failureType"),
                    "Member must not repeat a failureType of an earlier criteria",
                );
            }
            rules.push(RetryRule {
                failure_type,
                retries: k.number_of_retries,
            });
        }
    }
    rules
}

fn check_scheduling(c: &mut Check, s: &SchedulingConfig, now: Option<u64>, out: &mut Validated) {
    const P: &str = "schedulingConfig";
    const FORMAT: &str = "Member must be a UTC time YYYY-MM-DDTHH:MM";
    let start = s.start_time.as_deref().map(|t| (t, parse_time(t)));
    let end = s.end_time.as_deref().map(|t| (t, parse_time(t)));
    if let Some((raw, v)) = start {
        let path = format!("{P}.startTime");
        match (v, now) {
            (None, _) => c.bad(raw, &path, FORMAT),
            (Some(t), Some(now)) if t < now + MIN_LEAD_SECS => {
                c.bad(raw, &path, "Member must be at least 30 minutes from now")
            }
            (Some(t), Some(now)) if t > now + MAX_START_SECS => {
                c.bad(raw, &path, "Member must be at most 1 year from now")
            }
            _ => {}
        }
        out.start = v;
    }
    if let Some((raw, v)) = end {
        let path = format!("{P}.endTime");
        match (v, now) {
            (None, _) => c.bad(raw, &path, FORMAT),
            (Some(t), Some(now)) if t < now + MIN_LEAD_SECS => {
                c.bad(raw, &path, "Member must be at least 30 minutes from now")
            }
            (Some(t), Some(now)) if t > now + MAX_END_SECS => {
                c.bad(raw, &path, "Member must be at most 2 years from now")
            }
            _ => {}
        }
        if let (Some(e), Some(Some(st))) = (v, start.map(|s| s.1)) {
            if e < st + MIN_LEAD_SECS {
                c.bad(
                    raw,
                    &path,
                    "Member must be at least 30 minutes after startTime",
                );
            } else if e > st + MAX_END_SECS {
                c.bad(raw, &path, "Member must be at most 2 years after startTime");
            }
        }
        out.end = v;
    }
    if let Some(b) = &s.end_behavior {
        out.end_behavior = match b.as_str() {
            "STOP_ROLLOUT" => EndBehavior::StopRollout,
            "CANCEL" => EndBehavior::Cancel,
            "FORCE_CANCEL" => EndBehavior::ForceCancel,
            _ => {
                c.one_of(
                    b,
                    "STOP_ROLLOUT, CANCEL, FORCE_CANCEL",
                    &format!("{P}.endBehavior"),
                    false,
                );
                EndBehavior::default()
            }
        };
    }
    let n = s.maintenance_windows.len();
    if n > MAX_WINDOWS {
        c.bad(
            format!("{n} entries"),
            &format!("{P}.maintenanceWindows"),
            format!("Member must have length less than or equal to {MAX_WINDOWS}"),
        );
        return;
    }
    // Report every bad window, not only the first.
    let mut all_ok = true;
    for (i, w) in s.maintenance_windows.iter().enumerate() {
        let at = |f: &str| format!("{P}.maintenanceWindows.{}.member.{f}", i + 1);
        if let Err((_, e)) = Windows::parse(std::slice::from_ref(w)) {
            all_ok = false;
            match e {
                WindowError::Duration => {
                    c.range(w.duration_in_minutes, 1, 1430, &at("durationInMinutes"))
                }
                WindowError::Cron(why) => c.bad(
                    &w.start_time,
                    &at("startTime"),
                    format!("Member must be an AWS cron expression: {why}"),
                ),
            }
        }
    }
    if all_ok {
        // Cannot fail: each entry parsed alone.
        out.windows = Windows::parse(&s.maintenance_windows).unwrap_or_default();
    }
}

fn check_waves(c: &mut Check, w: &RolloutWaves) -> Vec<WavePlan> {
    const P: &str = "rolloutWaves.waves";
    let n = w.waves.len();
    if n == 0 {
        c.bad(
            "[]",
            P,
            "Member must have length greater than or equal to 1",
        );
    } else if n > MAX_WAVES {
        c.bad(
            format!("{n} entries"),
            P,
            format!("Member must have length less than or equal to {MAX_WAVES}"),
        );
        return Vec::new();
    }
    let mut plans: Vec<WavePlan> = Vec::new();
    let mut last_pct: Option<f64> = None;
    for (i, wave) in w.waves.iter().enumerate() {
        let at = |f: &str| format!("{P}.{}.member.{f}", i + 1);
        let name = wave
            .name
            .clone()
            .unwrap_or_else(|| format!("wave-{}", i + 1));
        if name.is_empty() || name.chars().count() > 128 {
            c.bad(
                &name,
                &at("name"),
                "Member must have length between 1 and 128",
            );
        } else if plans.iter().any(|p| p.name == name) {
            c.bad(&name, &at("name"), "Member must be unique among the waves");
        }
        let given = [
            wave.percentage.is_some(),
            wave.count.is_some(),
            wave.thing_group.is_some(),
        ];
        let targets = match (&wave.percentage, &wave.count, &wave.thing_group) {
            _ if given.iter().filter(|g| **g).count() != 1 => {
                c.bad(
                    given.iter().filter(|g| **g).count(),
                    &at("percentage"),
                    "Member must have exactly one of percentage, count, thingGroup",
                );
                None
            }
            (Some(p), _, _) => {
                let path = at("percentage");
                if !(p.is_finite() && *p > 0.0) {
                    c.bad(p, &path, "Member must have value greater than 0");
                } else {
                    c.decimal(*p, 0.0, 100.0, 2, &path);
                }
                if let Some(prev) = last_pct
                    && *p <= prev
                {
                    c.bad(
                        p,
                        &path,
                        format!(
                            "Member must be greater than the previous wave's {prev} (percentages are cumulative)"
                        ),
                    );
                }
                last_pct = Some(*p);
                Some(WaveTargets::Percentage(*p))
            }
            (_, Some(n), _) => {
                c.min(*n, 1, &at("count"));
                Some(WaveTargets::Count(*n))
            }
            (_, _, Some(g)) => {
                if validate_name(g, NameKind::Stream, &NameLimits::AWS).is_err() {
                    c.bad(
                        g,
                        &at("thingGroup"),
                        "Member must be a thing group name ([a-zA-Z0-9_-], 1-128)",
                    );
                }
                Some(WaveTargets::Group(g.clone()))
            }
            _ => None,
        };
        if let Some(s) = wave.success_threshold_percentage {
            c.decimal(s, 0.0, 100.0, 2, &at("successThresholdPercentage"));
        }
        if let Some(e) = wave.error_threshold_percentage {
            c.decimal(e, 0.0, 100.0, 2, &at("errorThresholdPercentage"));
        }
        if let Some(n) = wave.error_threshold_count {
            c.min(n, 1, &at("errorThresholdCount"));
        }
        if let Some(targets) = targets {
            plans.push(WavePlan {
                name,
                targets,
                success_threshold_percentage: wave.success_threshold_percentage.unwrap_or(100.0),
                error_threshold_percentage: wave.error_threshold_percentage,
                error_threshold_count: wave.error_threshold_count,
                requires_approval: wave.requires_approval,
            });
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::{
        AbortCriteria, ExponentialRate, MaintenanceWindow, RateIncreaseCriteria, RetryCriteria,
        Wave,
    };

    /// 2026-12-07 00:00 UTC.
    const NOW: u64 = 1_796_601_600;

    fn good() -> JobConfig {
        JobConfig {
            rollout: Some(RolloutConfig {
                maximum_per_minute: Some(100),
                exponential_rate: Some(ExponentialRate {
                    base_rate_per_minute: 5,
                    increment_factor: 1.5,
                    rate_increase_criteria: RateIncreaseCriteria {
                        number_of_notified_things: Some(10),
                        number_of_succeeded_things: None,
                    },
                }),
            }),
            abort: Some(AbortConfig {
                criteria_list: vec![AbortCriteria {
                    failure_type: "ALL".into(),
                    action: "CANCEL".into(),
                    threshold_percentage: 12.25,
                    min_number_of_executed_things: 10,
                }],
            }),
            retry: Some(RetryConfig {
                criteria_list: vec![
                    RetryCriteria {
                        failure_type: "FAILED".into(),
                        number_of_retries: 2,
                    },
                    RetryCriteria {
                        failure_type: "TIMED_OUT".into(),
                        number_of_retries: 10,
                    },
                ],
            }),
            scheduling: Some(SchedulingConfig {
                start_time: Some("2026-12-07T01:00".into()),
                end_time: Some("2026-12-08T01:00:00Z".into()),
                end_behavior: Some("FORCE_CANCEL".into()),
                maintenance_windows: vec![MaintenanceWindow {
                    start_time: "cron(0 2 * * ? *)".into(),
                    duration_in_minutes: 60,
                }],
            }),
            waves: Some(RolloutWaves {
                waves: vec![
                    Wave {
                        name: Some("canary".into()),
                        percentage: Some(1.0),
                        error_threshold_percentage: Some(5.0),
                        requires_approval: true,
                        ..Wave::default()
                    },
                    Wave {
                        count: Some(50),
                        success_threshold_percentage: Some(95.0),
                        error_threshold_count: Some(3),
                        ..Wave::default()
                    },
                    Wave {
                        thing_group: Some("lab-boards".into()),
                        ..Wave::default()
                    },
                    Wave {
                        percentage: Some(100.0),
                        ..Wave::default()
                    },
                ],
            }),
            continuous: true,
            in_progress_timeout_minutes: Some(60),
            invalid_target_selection: None,
        }
    }

    #[test]
    fn a_full_valid_config_passes_and_parses() {
        let v = good().validate(NOW).unwrap();
        assert_eq!(v.start, Some(NOW + 3600));
        assert_eq!(v.end, Some(NOW + 25 * 3600));
        assert_eq!(v.end_behavior, EndBehavior::ForceCancel);
        assert!(v.windows.is_open(NOW + 2 * 3600 + 60));
        assert!(!v.windows.is_open(NOW + 4 * 3600));
        assert_eq!(
            v.abort,
            vec![AbortRule {
                failure_type: FailureType::All,
                threshold_percentage: 12.25,
                min_executed: 10
            }]
        );
        assert_eq!(v.retry.len(), 2);
        assert_eq!(v.waves.len(), 4);
        assert_eq!(v.waves[0].targets, WaveTargets::Percentage(1.0));
        assert!(v.waves[0].requires_approval);
        assert_eq!(v.waves[1].name, "wave-2");
        assert_eq!(v.waves[1].targets, WaveTargets::Count(50));
        assert_eq!(v.waves[2].targets, WaveTargets::Group("lab-boards".into()));
        assert_eq!(v.waves[2].success_threshold_percentage, 100.0);
        // Stored form round-trips; the stored config reloads long after its start time.
        let json = serde_json::to_string(&good()).unwrap();
        let back: JobConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, good());
        assert!(back.parsed().is_ok());
        assert!(back.validate(NOW + 3 * 3600).is_err());
        assert!(JobConfig::default().validate(NOW).is_ok());
        assert!(JobConfig::default().is_default());
    }

    #[test]
    fn failure_types_cover_their_statuses() {
        use JobStatus::*;
        assert!(FailureType::All.covers(Failed) && FailureType::All.covers(Rejected));
        assert!(FailureType::All.covers(TimedOut) && !FailureType::All.covers(Succeeded));
        assert!(!FailureType::All.covers(Canceled));
        assert!(FailureType::Failed.covers(Failed) && !FailureType::Failed.covers(TimedOut));
        assert!(FailureType::TimedOut.covers(TimedOut) && !FailureType::TimedOut.covers(Failed));
        assert!(FailureType::Rejected.covers(Rejected) && !FailureType::Rejected.covers(Failed));
    }

    #[test]
    fn aws_message_form() {
        let mut c = good();
        c.rollout.as_mut().unwrap().maximum_per_minute = Some(2000);
        assert_eq!(
            c.validate(NOW).unwrap_err().to_string(),
            "1 validation error detected: Value '2000' at 'awsJobExecutionsRolloutConfig.maximumPerMinute' failed to satisfy constraint: Member must have value less than or equal to 1000"
        );
        c.rollout.as_mut().unwrap().maximum_per_minute = Some(0);
        c.in_progress_timeout_minutes = Some(10081);
        let e = c.validate(NOW).unwrap_err().to_string();
        assert!(e.starts_with("2 validation errors detected: "), "{e}");
        assert!(e.contains("Value '0' at 'awsJobExecutionsRolloutConfig.maximumPerMinute' failed to satisfy constraint: Member must have value greater than or equal to 1"), "{e}");
        assert!(
            e.contains("Value '10081' at 'awsJobTimeoutConfig.inProgressTimeoutInMinutes' failed"),
            "{e}"
        );
    }

    type Edit = fn(&mut JobConfig);

    fn rate(c: &mut JobConfig) -> &mut ExponentialRate {
        c.rollout
            .as_mut()
            .unwrap()
            .exponential_rate
            .as_mut()
            .unwrap()
    }
    fn abort0(c: &mut JobConfig) -> &mut AbortCriteria {
        &mut c.abort.as_mut().unwrap().criteria_list[0]
    }
    fn retry(c: &mut JobConfig) -> &mut Vec<RetryCriteria> {
        &mut c.retry.as_mut().unwrap().criteria_list
    }
    fn sched(c: &mut JobConfig) -> &mut SchedulingConfig {
        c.scheduling.as_mut().unwrap()
    }
    fn waves(c: &mut JobConfig) -> &mut Vec<Wave> {
        &mut c.waves.as_mut().unwrap().waves
    }

    /// Every out-of-range value: (what is changed, the path, a piece of the constraint).
    #[test]
    fn every_out_of_range_value_is_refused_with_its_path() {
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                |c| c.rollout.as_mut().unwrap().maximum_per_minute = Some(0),
                "awsJobExecutionsRolloutConfig.maximumPerMinute",
                "greater than or equal to 1",
            ),
            (
                |c| c.rollout.as_mut().unwrap().maximum_per_minute = Some(1001),
                "awsJobExecutionsRolloutConfig.maximumPerMinute",
                "less than or equal to 1000",
            ),
            (
                |c| rate(c).base_rate_per_minute = 0,
                "exponentialRate.baseRatePerMinute",
                "greater than or equal to 1",
            ),
            (
                |c| rate(c).base_rate_per_minute = 1001,
                "exponentialRate.baseRatePerMinute",
                "less than or equal to 1000",
            ),
            (
                |c| rate(c).increment_factor = 1.0,
                "exponentialRate.incrementFactor",
                "greater than or equal to 1.1",
            ),
            (
                |c| rate(c).increment_factor = 5.1,
                "exponentialRate.incrementFactor",
                "less than or equal to 5",
            ),
            (
                |c| rate(c).increment_factor = 1.25,
                "exponentialRate.incrementFactor",
                "one decimal place",
            ),
            (
                |c| rate(c).increment_factor = f64::NAN,
                "exponentialRate.incrementFactor",
                "greater than or equal",
            ),
            (
                |c| rate(c).rate_increase_criteria.number_of_notified_things = Some(0),
                "rateIncreaseCriteria.numberOfNotifiedThings",
                "greater than or equal to 1",
            ),
            (
                |c| {
                    rate(c).rate_increase_criteria = RateIncreaseCriteria {
                        number_of_notified_things: None,
                        number_of_succeeded_things: Some(0),
                    }
                },
                "rateIncreaseCriteria.numberOfSucceededThings",
                "greater than or equal to 1",
            ),
            (
                |c| rate(c).rate_increase_criteria.number_of_succeeded_things = Some(3),
                "exponentialRate.rateIncreaseCriteria",
                "exactly one of",
            ),
            (
                |c| rate(c).rate_increase_criteria = RateIncreaseCriteria::default(),
                "exponentialRate.rateIncreaseCriteria",
                "exactly one of",
            ),
            (
                |c| c.abort.as_mut().unwrap().criteria_list.clear(),
                "awsJobAbortConfig.abortCriteriaList",
                "length greater than or equal to 1",
            ),
            (
                |c| abort0(c).failure_type = "CANCELED".into(),
                "awsJobAbortConfig.abortCriteriaList.1.member.failureType",
                "[FAILED, REJECTED, TIMED_OUT, ALL]",
            ),
            (
                |c| abort0(c).action = "PAUSE".into(),
                "awsJobAbortConfig.abortCriteriaList.1.member.action",
                "[CANCEL]",
            ),
            (
                |c| abort0(c).threshold_percentage = -1.0,
                "abortCriteriaList.1.member.thresholdPercentage",
                "greater than or equal to 0",
            ),
            (
                |c| abort0(c).threshold_percentage = 100.5,
                "abortCriteriaList.1.member.thresholdPercentage",
                "less than or equal to 100",
            ),
            (
                |c| abort0(c).threshold_percentage = 10.125,
                "abortCriteriaList.1.member.thresholdPercentage",
                "2 decimal places",
            ),
            (
                |c| abort0(c).min_number_of_executed_things = 0,
                "abortCriteriaList.1.member.minNumberOfExecutedThings",
                "greater than or equal to 1",
            ),
            (
                |c| retry(c).clear(),
                "jobExecutionsRetryConfig.criteriaList",
                "length greater than or equal to 1",
            ),
            (
                |c| {
                    retry(c).push(RetryCriteria {
                        failure_type: "ALL".into(),
                        number_of_retries: 1,
                    })
                },
                "jobExecutionsRetryConfig.criteriaList",
                "length less than or equal to 2",
            ),
            (
                |c| retry(c)[1].failure_type = "FAILED".into(),
                "criteriaList.2.member.failureType",
                "not repeat",
            ),
            (
                |c| retry(c)[0].failure_type = "REJECTED".into(),
                "criteriaList.1.member.failureType",
                "[FAILED, TIMED_OUT, ALL]",
            ),
            (
                |c| retry(c)[0].number_of_retries = 11,
                "criteriaList.1.member.numberOfRetries",
                "less than or equal to 10",
            ),
            (
                |c| sched(c).start_time = Some("2026-12-07T00:29".into()),
                "schedulingConfig.startTime",
                "at least 30 minutes from now",
            ),
            (
                |c| {
                    sched(c).start_time = Some("2027-12-08T00:00".into());
                    sched(c).end_time = None
                },
                "schedulingConfig.startTime",
                "at most 1 year",
            ),
            (
                |c| sched(c).start_time = Some("07/12/2026 01:00".into()),
                "schedulingConfig.startTime",
                "YYYY-MM-DDTHH:MM",
            ),
            (
                |c| sched(c).start_time = Some("2026-12-07T25:00".into()),
                "schedulingConfig.startTime",
                "YYYY-MM-DDTHH:MM",
            ),
            (
                |c| {
                    sched(c).start_time = None;
                    sched(c).end_time = Some("2026-12-07T00:10".into())
                },
                "schedulingConfig.endTime",
                "at least 30 minutes from now",
            ),
            (
                |c| {
                    sched(c).start_time = None;
                    sched(c).end_time = Some("2028-12-07T00:01".into())
                },
                "schedulingConfig.endTime",
                "at most 2 years from now",
            ),
            (
                |c| sched(c).end_time = Some("2026-12-07T01:20".into()),
                "schedulingConfig.endTime",
                "30 minutes after startTime",
            ),
            (
                |c| sched(c).end_time = Some("tomorrow".into()),
                "schedulingConfig.endTime",
                "YYYY-MM-DDTHH:MM",
            ),
            (
                |c| sched(c).end_behavior = Some("STOP".into()),
                "schedulingConfig.endBehavior",
                "[STOP_ROLLOUT, CANCEL, FORCE_CANCEL]",
            ),
            (
                |c| sched(c).maintenance_windows[0].duration_in_minutes = 0,
                "maintenanceWindows.1.member.durationInMinutes",
                "greater than or equal to 1",
            ),
            (
                |c| sched(c).maintenance_windows[0].duration_in_minutes = 1431,
                "maintenanceWindows.1.member.durationInMinutes",
                "less than or equal to 1430",
            ),
            (
                |c| sched(c).maintenance_windows[0].start_time = "0 2 * * *".into(),
                "maintenanceWindows.1.member.startTime",
                "AWS cron expression",
            ),
            (
                |c| {
                    let w = sched(c).maintenance_windows[0].clone();
                    sched(c).maintenance_windows = vec![w; MAX_WINDOWS + 1]
                },
                "schedulingConfig.maintenanceWindows",
                "length less than or equal to 100",
            ),
            (
                |c| c.in_progress_timeout_minutes = Some(0),
                "awsJobTimeoutConfig.inProgressTimeoutInMinutes",
                "greater than or equal to 1",
            ),
            (
                |c| c.invalid_target_selection = Some("ALL".into()),
                "targetSelection",
                "[CONTINUOUS, SNAPSHOT]",
            ),
            (
                |c| waves(c).clear(),
                "rolloutWaves.waves",
                "length greater than or equal to 1",
            ),
            (
                |c| {
                    let w = Wave {
                        count: Some(1),
                        ..Wave::default()
                    };
                    *waves(c) = vec![w; MAX_WAVES + 1]
                },
                "rolloutWaves.waves",
                "less than or equal to 100",
            ),
            (
                |c| waves(c)[0].percentage = Some(0.0),
                "waves.1.member.percentage",
                "greater than 0",
            ),
            (
                |c| waves(c)[3].percentage = Some(101.0),
                "waves.4.member.percentage",
                "less than or equal to 100",
            ),
            (
                |c| waves(c)[0].percentage = Some(1.005),
                "waves.1.member.percentage",
                "2 decimal places",
            ),
            (
                |c| waves(c)[3].percentage = Some(1.0),
                "waves.4.member.percentage",
                "greater than the previous",
            ),
            (
                |c| waves(c)[0].count = Some(3),
                "waves.1.member.percentage",
                "exactly one of",
            ),
            (
                |c| waves(c)[1].count = None,
                "waves.2.member.percentage",
                "exactly one of",
            ),
            (
                |c| waves(c)[1].count = Some(0),
                "waves.2.member.count",
                "greater than or equal to 1",
            ),
            (
                |c| waves(c)[2].thing_group = Some("bad group!".into()),
                "waves.3.member.thingGroup",
                "thing group name",
            ),
            (
                |c| waves(c)[2].thing_group = Some(String::new()),
                "waves.3.member.thingGroup",
                "thing group name",
            ),
            (
                |c| waves(c)[1].success_threshold_percentage = Some(100.01),
                "waves.2.member.successThresholdPercentage",
                "less than or equal to 100",
            ),
            (
                |c| waves(c)[0].error_threshold_percentage = Some(-0.5),
                "waves.1.member.errorThresholdPercentage",
                "greater than or equal to 0",
            ),
            (
                |c| waves(c)[1].error_threshold_count = Some(0),
                "waves.2.member.errorThresholdCount",
                "greater than or equal to 1",
            ),
            (
                |c| waves(c)[1].name = Some("canary".into()),
                "waves.2.member.name",
                "unique",
            ),
            (
                |c| waves(c)[1].name = Some(String::new()),
                "waves.2.member.name",
                "length between 1 and 128",
            ),
        ];
        for (i, (edit, path, constraint)) in cases.into_iter().enumerate() {
            let mut c = good();
            edit(&mut c);
            let e = match c.validate(NOW) {
                Ok(_) => panic!("case {i} ({path}): accepted"),
                Err(e) => e,
            };
            assert_eq!(e.violations.len(), 1, "case {i}: {e}");
            let v = &e.violations[0];
            assert!(
                v.path.ends_with(path),
                "case {i}: path {} not {path}",
                v.path
            );
            assert!(
                v.constraint.contains(constraint),
                "case {i}: {} lacks {constraint}",
                v.constraint
            );
        }
    }

    #[test]
    fn boundary_values_pass() {
        let mut c = good();
        c.rollout.as_mut().unwrap().maximum_per_minute = Some(1000);
        rate(&mut c).base_rate_per_minute = 1;
        rate(&mut c).increment_factor = 5.0;
        abort0(&mut c).threshold_percentage = 100.0;
        retry(&mut c)[0].number_of_retries = 0;
        sched(&mut c).start_time = Some("2026-12-07T00:30".into());
        sched(&mut c).end_time = Some("2027-12-07T00:30Z".into());
        sched(&mut c).maintenance_windows[0].duration_in_minutes = 1430;
        c.in_progress_timeout_minutes = Some(10080);
        waves(&mut c)[0].percentage = Some(0.01);
        assert!(c.validate(NOW).is_ok(), "{:?}", c.validate(NOW).err());
        rate(&mut c).increment_factor = 1.1;
        assert!(c.validate(NOW).is_ok());
        // More than two years from start to end: only reachable without `now` (at create
        // time the end is at most two years from now, so from the start too).
        sched(&mut c).start_time = Some("2027-12-01T00:00".into());
        sched(&mut c).end_time = Some("2029-12-01T00:01".into());
        let e = c.parsed().unwrap_err();
        assert!(
            e.to_string().contains("at most 2 years after startTime"),
            "{e}"
        );
    }

    /// A CreateJob request as `aws iot create-job --generate-cli-skeleton` shapes it (the
    /// parts Ferrota takes) reads into CreateOtaUpdate and validates.
    #[test]
    fn create_job_skeleton_json_reads_and_validates() {
        let json = r#"{
            "otaUpdateId": "fw-1-2-0",
            "targets": ["thinggroup/fleet"],
            "files": [],
            "targetSelection": "CONTINUOUS",
            "jobExecutionsRolloutConfig": {
                "maximumPerMinute": 50,
                "exponentialRate": {
                    "baseRatePerMinute": 2,
                    "incrementFactor": 2.0,
                    "rateIncreaseCriteria": {"numberOfSucceededThings": 4}
                }
            },
            "abortConfig": {
                "criteriaList": [{
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 20.0,
                    "minNumberOfExecutedThings": 10
                }]
            },
            "timeoutConfig": {"inProgressTimeoutInMinutes": 30},
            "jobExecutionsRetryConfig": {
                "criteriaList": [{"failureType": "ALL", "numberOfRetries": 3}]
            },
            "schedulingConfig": {
                "startTime": "2026-12-07T12:00",
                "endTime": "2026-12-09T12:00",
                "endBehavior": "CANCEL",
                "maintenanceWindows": [
                    {"startTime": "cron(0 22 ? * MON-FRI *)", "durationInMinutes": 240}
                ]
            }
        }"#;
        let req: CreateOtaUpdate = serde_json::from_str(json).unwrap();
        let cfg = JobConfig::from_request(&req);
        assert!(cfg.continuous);
        assert_eq!(cfg.in_progress_timeout_minutes, Some(30));
        let v = cfg.validate(NOW).unwrap();
        assert_eq!(v.end_behavior, EndBehavior::Cancel);
        assert_eq!(v.retry[0].failure_type, FailureType::All);
        assert_eq!(v.start, parse_time("2026-12-07T12:00:00Z"));
        // A bad targetSelection is kept for validate to report.
        let mut bad = req.clone();
        bad.target_selection = Some("SOMETIMES".into());
        let e = JobConfig::from_request(&bad).validate(NOW).unwrap_err();
        assert_eq!(e.violations[0].path, "targetSelection");
    }

    #[test]
    fn time_format() {
        assert_eq!(parse_time("2026-12-07T00:00"), Some(NOW));
        assert_eq!(parse_time("2026-12-07T00:00:30Z"), Some(NOW + 30));
        assert_eq!(parse_time("2026-12-07T00:00Z"), Some(NOW));
        for bad in [
            "2026-12-07",
            "2026-12-07 00:00",
            "2026-13-01T00:00",
            "",
            "x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
