//! Fleet rollouts (issue 16): AWS IoT Jobs' rollout rate, abort criteria, retries, scheduling
//! and continuous targets, and Ferrota's gated waves (hawkBit's rollout groups), as a service
//! over [`crate::context::Services`].
//!
//! | module | concern |
//! |---|---|
//! | [`config`] | a job's configuration: AWS's validation, stored form |
//! | [`rate`] | how many notifications a minute (constant, exponential) |
//! | [`window`] | maintenance windows (AWS cron expressions) |
//! | this one | the engine: plan, release, gates, retries, actions, the runner |
//!
//! ## How a rollout runs
//!
//! A job created with any rollout setting (rate, abort, retry, scheduling, waves, CONTINUOUS)
//! gets a *plan*: its targets in a random but reproducible order (SHA-256 of job id and thing
//! name, so a wave is not "the oldest devices", hawkBit issue #1086), split into waves (one
//! wave of everything when none are given). Nothing is notified at create: a target has no
//! execution until the engine *releases* it ([`crate::store::RolloutStore::release_targets`]
//! creates the QUEUED execution and marks the target in one transaction), exactly as AWS
//! creates an execution only when it notifies the thing.
//!
//! One *step* of a rollout ([`tick`]), in this order:
//! 1. `endTime` passed: `STOP_ROLLOUT` stops notifying (executions out go on), `CANCEL`
//!    cancels the job (QUEUED executions CANCELED), `FORCE_CANCEL` cancels IN_PROGRESS ones
//!    too.
//! 2. SCHEDULED before `startTime`; at `startTime` the job becomes IN_PROGRESS.
//! 3. Gates, from the executions' current statuses (so a restart recomputes them exactly):
//!    - abort criteria (AWS): once at least `minNumberOfExecutedThings` executions are
//!      *executed* (SUCCEEDED, FAILED, REJECTED or TIMED_OUT — a retried execution counts
//!      by its current status), the job is canceled when the failures of `failureType` are at
//!      least `thresholdPercentage` % of the executed ones: reason `ABORTED_BY_CRITERIA`;
//!    - a wave's error threshold: FAILED + REJECTED + TIMED_OUT of its things reaching
//!      `errorThresholdCount`, or `errorThresholdPercentage` % of the wave's things, stops
//!      the whole rollout the same way: reason `WAVE_ERROR_THRESHOLD`;
//!    - a wave's success threshold: when `successThresholdPercentage` % of its things
//!      SUCCEEDED, the next wave opens, or waits in WAITING_FOR_APPROVAL when the wave
//!      `requiresApproval`. A wave whose executions all ended below its success threshold
//!      (and under its error threshold) can move no more: it waits in WAITING_FOR_APPROVAL
//!      too (`SUCCESS_THRESHOLD_NOT_MET`), so the operator decides instead of a silent wait.
//! 4. Release: nothing outside a maintenance window; else up to what the rate allows this
//!    minute ([`rate`]), from the open waves, in plan order. When every target is notified
//!    the rollout is FINISHED (a CONTINUOUS one stays RUNNING: a thing that joins its target
//!    group later is added to the last wave and released as any other).
//!
//! A step runs when the scheduler's time for the rollout comes (`next_at`: the next rate
//! minute, window opening, start or end time) and after executions finish
//! ([`crate::context::Services::execution_finished`]): [`step`] first retries what AWS's
//! `jobExecutionsRetryConfig` allows (a FAILED or TIMED_OUT execution is queued again as its
//! next execution number while `executionNumber − 1` is below the criteria's
//! `numberOfRetries`; the criteria for its own failure type wins over ALL), then steps each
//! rollout concerned once. [`run`] does that forever in the server; tests and simulations
//! call [`step`] on their own clock.
//!
//! Crash safety: every decision is recomputed from committed state (targets, executions), the
//! rate window and the open wave are in the rollout record, written with a compare-and-set,
//! and a release is one transaction. At start [`run`] re-examines every active rollout
//! (retries included), so a server killed mid-rollout resumes with no wave, counter or
//! execution lost or doubled.

pub mod config;
pub mod rate;
pub mod window;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferrota_api::{RolloutDescription, RolloutStatus, WaveProgress};
use ferrota_proto::JobStatus;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::{Services, Target, TargetCheck};
use crate::jobs;
use crate::store::{
    CancelInfo, Execution, JobState, RolloutRecord, StoreError, StoreResult, WaveCounts,
};
use config::{AbortRule, EndBehavior, FailureType, JobConfig, RetryRule};
use rate::RateState;

/// Most targets released in one step: a step holds its batch's executions in memory and
/// commits them in one transaction; a larger rate is served by further steps at once.
pub const RELEASE_BATCH: usize = 500;

/// `reasonCode` of a job canceled by its abort criteria.
pub const ABORTED_BY_CRITERIA: &str = "ABORTED_BY_CRITERIA";
/// `reasonCode` of a rollout stopped by a wave's error threshold.
pub const WAVE_ERROR_THRESHOLD: &str = "WAVE_ERROR_THRESHOLD";
/// `reasonCode` of a rollout that reached its `endTime`.
pub const END_TIME_REACHED: &str = "END_TIME_REACHED";
/// `reasonCode` of a rollout canceled by the operator.
pub const CANCELED_BY_OPERATOR: &str = "CANCELED_BY_OPERATOR";
/// `reasonCode` of a rollout whose wave ended below its success threshold (and under its
/// error threshold): it waits for the operator's `approve` or `cancel`.
pub const SUCCESS_THRESHOLD_NOT_MET: &str = "SUCCESS_THRESHOLD_NOT_MET";
/// `reasonCode` of a rollout whose wave passed and waits for `approve`.
pub const WAITING_FOR_APPROVAL: &str = "WAITING_FOR_APPROVAL";

/// One wave of a plan, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavePlan {
    /// Name.
    pub name: String,
    /// Success threshold, percent of the wave's things.
    pub success_percentage: f64,
    /// Error threshold, percent of the wave's things.
    pub error_percentage: Option<f64>,
    /// Error threshold, things.
    pub error_count: Option<u64>,
    /// The next wave waits for `approve`.
    pub requires_approval: bool,
}

/// What a rollout was created with; stored as JSON, never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The job's configuration as asked.
    pub config: JobConfig,
    /// The request's targets (`thing/…`, `thinggroup/…`): a CONTINUOUS job reaches a thing
    /// that joins them later.
    pub targets: Vec<String>,
    /// The waves.
    pub waves: Vec<WavePlan>,
    /// `startTime`, epoch seconds.
    pub start: Option<u64>,
    /// `endTime`, epoch seconds.
    pub end: Option<u64>,
    /// `endBehavior`.
    pub end_behavior: EndBehavior,
}

/// The engine's moving state, stored as JSON in the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Moving {
    rate: RateState,
    /// Executions may be owed a retry that was held back (paused, outside a window, after a
    /// restart): the next open step scans the job's executions for them.
    #[serde(default)]
    retry_scan: bool,
}

/// Why an operator's action was refused.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Not possible in the rollout's state (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// No such job or rollout.
    #[error("{0} not found")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a configuration needs the engine: any rollout setting. A job without one is
/// notified to every target at create, as before.
pub fn wants_rollout(cfg: &JobConfig) -> bool {
    cfg.rollout.is_some()
        || cfg.abort.is_some()
        || cfg.retry.is_some()
        || cfg.scheduling.is_some()
        || cfg.waves.is_some()
        || cfg.continuous
}

/// The order targets are released in: SHA-256 of job id and thing name (random-looking,
/// reproducible, independent of names and creation order).
fn order_key(job_id: &str, thing: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(job_id.as_bytes());
    h.update([0]);
    h.update(thing.as_bytes());
    h.finalize().into()
}

/// The plan of a job: its waves and each target's wave, in release order. `things` are the
/// resolved targets; `group_members` answers a wave's `thingGroup`.
pub async fn plan(
    b: &Services,
    job_id: &str,
    cfg: &JobConfig,
    targets: &[String],
    things: &[String],
    when: &config::Validated,
) -> StoreResult<(Plan, Vec<(String, u32)>)> {
    let mut order: Vec<&String> = things.iter().collect();
    order.sort_by_cached_key(|t| order_key(job_id, t));
    let n = order.len() as u64;
    let specs = cfg
        .waves
        .as_ref()
        .map(|w| w.waves.clone())
        .unwrap_or_default();
    let mut waves = Vec::new();
    let mut assigned: Vec<(String, u32)> = Vec::new();
    let mut taken = BTreeSet::new();
    for (i, w) in specs.iter().enumerate() {
        let wave = i as u32;
        waves.push(WavePlan {
            name: w.name.clone().unwrap_or_else(|| format!("wave-{}", i + 1)),
            success_percentage: w.success_threshold_percentage.unwrap_or(100.0),
            error_percentage: w.error_threshold_percentage,
            error_count: w.error_threshold_count,
            requires_approval: w.requires_approval,
        });
        let want: Vec<&String> = if let Some(p) = w.percentage {
            // Cumulative: this wave and the ones before cover ceil(p% of all) targets.
            let upto = ((n as f64) * p / 100.0).ceil() as u64;
            let more = upto.saturating_sub(taken.len() as u64) as usize;
            order
                .iter()
                .filter(|t| !taken.contains(t.as_str()))
                .take(more)
                .copied()
                .collect()
        } else if let Some(c) = w.count {
            order
                .iter()
                .filter(|t| !taken.contains(t.as_str()))
                .take(usize::try_from(c).unwrap_or(usize::MAX))
                .copied()
                .collect()
        } else if let Some(g) = &w.thing_group {
            // Static or dynamic (the operator layer's check knows dynamic groups).
            let target = format!("thinggroup/{g}");
            let check = target_check(b);
            let mut members = Vec::new();
            for t in order.iter().filter(|t| !taken.contains(t.as_str())) {
                if check.check(&target, t).await? {
                    members.push(*t);
                }
            }
            members
        } else {
            vec![]
        };
        for t in want {
            taken.insert(t.as_str());
            assigned.push((t.clone(), wave));
        }
    }
    if waves.is_empty() {
        waves.push(WavePlan {
            name: "all".into(),
            success_percentage: 100.0,
            error_percentage: None,
            error_count: None,
            requires_approval: false,
        });
    }
    // Targets no wave took join the last one.
    let last = (waves.len() - 1) as u32;
    for t in order {
        if !taken.contains(t.as_str()) {
            assigned.push((t.clone(), last));
        }
    }
    // Release order: wave, then plan order (the store keeps insertion order within a wave).
    assigned.sort_by_key(|(_, w)| *w);
    Ok((
        Plan {
            config: cfg.clone(),
            targets: targets.to_vec(),
            waves,
            start: when.start,
            end: when.end,
            end_behavior: when.end_behavior,
        },
        assigned,
    ))
}

/// The record a new rollout starts with.
pub fn new_record(job_id: &str, plan: &Plan, now: u64) -> RolloutRecord {
    let scheduled = plan.start.is_some_and(|s| s > now);
    RolloutRecord {
        job_id: job_id.to_string(),
        plan: serde_json::to_string(plan).unwrap_or_default(),
        status: if scheduled {
            RolloutStatus::Scheduled
        } else {
            RolloutStatus::Running
        },
        wave: 0,
        state: serde_json::to_string(&Moving::default()).unwrap_or_default(),
        reason_code: None,
        comment: None,
        next_at: Some(if scheduled {
            plan.start.unwrap_or(now)
        } else {
            now
        }),
        version: 1,
    }
}

fn plan_of(r: &RolloutRecord) -> StoreResult<Plan> {
    serde_json::from_str(&r.plan).map_err(|_| StoreError::Corrupt(format!("plan of {}", r.job_id)))
}

/// Writes `moving` into the record, version + 1, with a compare-and-set on its version;
/// `false`: it changed meanwhile.
async fn save_moving(b: &Services, r: &mut RolloutRecord, moving: &Moving) -> StoreResult<bool> {
    let v = r.version;
    r.state = serde_json::to_string(moving).unwrap_or_default();
    r.version += 1;
    b.store.update_rollout(r, v).await
}

fn moving_of(r: &RolloutRecord) -> Moving {
    serde_json::from_str(&r.state).unwrap_or_default()
}

fn failed(c: &WaveCounts) -> u64 {
    c.count(JobStatus::Failed) + c.count(JobStatus::Rejected) + c.count(JobStatus::TimedOut)
}

/// Cancels every execution of a job that `force` allows (QUEUED; IN_PROGRESS too with
/// `force`), page by page, notifying each thing whose pending list changes.
pub async fn cancel_executions(b: &Services, job_id: &str, force: bool) -> StoreResult<()> {
    let mut after = None;
    loop {
        let page = b
            .store
            .executions_of_job_page(job_id, after, ferrota_api::DESCRIBE_PAGE_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for e in page {
            let cancel =
                e.status == JobStatus::Queued || (force && e.status == JobStatus::InProgress);
            if !cancel {
                continue;
            }
            let before = jobs::pending(b, &e.thing).await?;
            let mut n = e.clone();
            n.status = JobStatus::Canceled;
            n.in_progress_deadline = None;
            n.step_deadline = None;
            n.version_number += 1;
            n.last_updated_at = b.clock.now();
            // A concurrent device update wins; its state stays.
            b.store.update_execution(&n, e.version_number).await?;
            jobs::notify_changes(b, &e.thing, &before).await?;
        }
    }
    Ok(())
}

/// Cancels a job (AWS CancelJob): state CANCELED with its cancel info, its OTA update
/// CANCELED, executions canceled as `force` says, and its rollout (if any) STOPPED with the
/// same reason. Called with the rollout lock held.
async fn cancel_job_locked(b: &Services, job_id: &str, info: &CancelInfo) -> StoreResult<()> {
    // The executions first, the job's state last: a crash in between leaves a job that is
    // still IN_PROGRESS, so the restart's recovery recomputes the gate and cancels again;
    // the other order left a CANCELED job (never looked at again) with QUEUED executions
    // still offered to devices.
    cancel_executions(b, job_id, info.force).await?;
    b.store.set_job_state(job_id, JobState::Canceled).await?;
    b.store.set_cancel_info(job_id, info).await?;
    if let Some(j) = b.store.job(job_id).await?
        && let Some(ota) = j.ota_update_id
    {
        b.store.set_ota_status(&ota, "CANCELED").await?;
    }
    if let Some(mut r) = b.store.rollout(job_id).await? {
        let v = r.version;
        r.status = RolloutStatus::Stopped;
        r.reason_code.clone_from(&info.reason_code);
        r.comment.clone_from(&info.comment);
        r.next_at = None;
        r.version += 1;
        b.store.update_rollout(&r, v).await?;
    }
    Ok(())
}

/// Cancels a job as the operator asks (`ferrota ota cancel`, `rollout cancel`).
pub async fn cancel_job(b: &Services, job_id: &str, force: bool) -> StoreResult<()> {
    let _g = b.rollout_lock.lock().await;
    if let Some(j) = b.store.job(job_id).await?
        && j.state == JobState::Canceled
    {
        // Canceled already (by its abort criteria, a wave, its endTime or the operator): its
        // reason stays; `force` still cancels what is IN_PROGRESS.
        if force {
            cancel_executions(b, job_id, true).await?;
            let mut info = b.store.cancel_info(job_id).await?.unwrap_or_default();
            info.force = true;
            b.store.set_cancel_info(job_id, &info).await?;
        }
        return Ok(());
    }
    let info = CancelInfo {
        force,
        reason_code: None,
        comment: None,
    };
    // An operator's cancel of a rollout records why (AWS's reasonCode is the caller's; the
    // CLI gives none, so the rollout's own code says who stopped it).
    let info = if b.store.rollout(job_id).await?.is_some() {
        CancelInfo {
            reason_code: Some(CANCELED_BY_OPERATOR.into()),
            comment: Some("canceled by the operator".into()),
            ..info
        }
    } else {
        info
    };
    cancel_job_locked(b, job_id, &info).await
}

/// The first abort criterion met, in words.
fn abort_reason(rules: &[AbortRule], total: &WaveCounts) -> Option<String> {
    let executed = total.count(JobStatus::Succeeded) + failed(total);
    for c in rules {
        if executed < c.min_executed || executed == 0 {
            continue;
        }
        let failures: u64 = total
            .statuses
            .iter()
            .filter(|(s, _)| c.failure_type.covers(*s))
            .map(|(_, n)| n)
            .sum();
        if (failures as f64) * 100.0 >= c.threshold_percentage * executed as f64 && failures > 0 {
            return Some(format!(
                "abort criteria met: {failures} of {executed} executed things {:?} (threshold \
                 {}% after at least {})",
                c.failure_type, c.threshold_percentage, c.min_executed
            ));
        }
    }
    None
}

/// A wave over its error threshold, in words.
fn wave_error(w: &WavePlan, c: &WaveCounts) -> Option<String> {
    let f = failed(c);
    if f == 0 {
        return None;
    }
    if w.error_count.is_some_and(|n| f >= n)
        || w.error_percentage
            .is_some_and(|p| (f as f64) * 100.0 >= p * c.things as f64)
    {
        return Some(format!(
            "wave {} stopped the rollout: {f} of its {} things failed",
            w.name, c.things
        ));
    }
    None
}

fn wave_passed(w: &WavePlan, c: &WaveCounts) -> bool {
    (c.count(JobStatus::Succeeded) as f64) * 100.0 >= w.success_percentage * c.things as f64
}

fn sum(counts: &[WaveCounts]) -> WaveCounts {
    let mut t = WaveCounts::default();
    let mut m = std::collections::BTreeMap::<&'static str, (JobStatus, u64)>::new();
    for c in counts {
        t.things += c.things;
        t.released += c.released;
        for &(s, n) in &c.statuses {
            m.entry(s.as_str()).or_insert((s, 0)).1 += n;
        }
    }
    t.statuses = m.into_values().collect();
    t
}

/// One step of a job's rollout (see the module docs). Does nothing for a job without one.
pub async fn tick(b: &Services, job_id: &str) -> StoreResult<()> {
    tick_with(b, job_id, &[]).await
}

/// A step after `finished` things' executions of the job ended: their retries first, then
/// the step, under the rollout lock (so no retry races a cancel or an abort).
async fn tick_with(b: &Services, job_id: &str, finished: &[String]) -> StoreResult<()> {
    let _g = b.rollout_lock.lock().await;
    retries_locked(b, job_id, finished).await?;
    tick_locked(b, job_id).await
}

/// Retries what AWS's `jobExecutionsRetryConfig` owes: the `finished` things' executions, and
/// every execution of the job when a scan is due ([`Moving::retry_scan`]). A retry notifies a
/// device, so it waits like any notification: not while the rollout is paused, waits for
/// approval or is scheduled, and not outside a maintenance window (a scan is then due later).
async fn retries_locked(b: &Services, job_id: &str, finished: &[String]) -> StoreResult<()> {
    let Some(mut r) = b.store.rollout(job_id).await? else {
        return Ok(());
    };
    let Some(job) = b.store.job(job_id).await? else {
        return Ok(());
    };
    let plan = plan_of(&r)?;
    if plan.config.retry.is_none()
        || job.state != JobState::InProgress
        || r.status == RolloutStatus::Stopped
    {
        return Ok(());
    }
    let parsed = plan
        .config
        .parsed()
        .map_err(|e| StoreError::Corrupt(format!("configuration of {job_id}: {e}")))?;
    let mut moving = moving_of(&r);
    let open = matches!(r.status, RolloutStatus::Running | RolloutStatus::Finished)
        && parsed.windows.is_open(b.clock.now());
    if !open {
        if !finished.is_empty() && !moving.retry_scan {
            moving.retry_scan = true;
            save_moving(b, &mut r, &moving).await?;
        }
        return Ok(());
    }
    let mut execs = Vec::new();
    if moving.retry_scan {
        let mut after = None;
        loop {
            let page = b
                .store
                .executions_of_job_page(job_id, after, ferrota_api::DESCRIBE_PAGE_MAX)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            execs.extend(
                page.into_iter()
                    .filter(|e| matches!(e.status, JobStatus::Failed | JobStatus::TimedOut)),
            );
        }
    } else {
        for t in finished {
            if let Some(e) = b.store.execution(job_id, t).await? {
                execs.push(e);
            }
        }
    }
    for e in &execs {
        maybe_retry(b, &parsed.retry, e).await?;
    }
    if moving.retry_scan {
        moving.retry_scan = false;
        save_moving(b, &mut r, &moving).await?;
    }
    Ok(())
}

async fn tick_locked(b: &Services, job_id: &str) -> StoreResult<()> {
    let Some(mut r) = b.store.rollout(job_id).await? else {
        return Ok(());
    };
    let Some(job) = b.store.job(job_id).await? else {
        return Ok(());
    };
    let mut expected = r.version;
    let mut before = r.clone();
    if matches!(job.state, JobState::Canceled | JobState::Completed)
        || r.status == RolloutStatus::Stopped
    {
        if r.next_at.is_some() {
            r.next_at = None;
            r.version += 1;
            b.store.update_rollout(&r, expected).await?;
        }
        if job.state == JobState::InProgress {
            // Stopped at its endTime (STOP_ROLLOUT): complete once what is out has ended.
            jobs::complete_if_done(b, job_id).await?;
        }
        return Ok(());
    }
    let plan = plan_of(&r)?;
    let mut moving = moving_of(&r);
    let now = b.clock.now();
    // 1. End time.
    if let Some(end) = plan.end
        && now >= end
    {
        let comment = format!("endTime reached ({:?})", plan.end_behavior);
        match plan.end_behavior {
            EndBehavior::StopRollout => {
                r.status = RolloutStatus::Stopped;
                r.reason_code = Some(END_TIME_REACHED.into());
                r.comment = Some(comment);
                r.next_at = None;
                r.version += 1;
                b.store.update_rollout(&r, expected).await?;
                if job.state == JobState::Scheduled {
                    b.store.set_job_state(job_id, JobState::InProgress).await?;
                }
                jobs::complete_if_done(b, job_id).await?;
            }
            EndBehavior::Cancel | EndBehavior::ForceCancel => {
                let info = CancelInfo {
                    force: plan.end_behavior == EndBehavior::ForceCancel,
                    reason_code: Some(END_TIME_REACHED.into()),
                    comment: Some(comment),
                };
                cancel_job_locked(b, job_id, &info).await?;
            }
        }
        return Ok(());
    }
    // 2. Start time.
    if r.status == RolloutStatus::Scheduled {
        match plan.start {
            Some(s) if now < s => {
                r.next_at = Some(s);
                if r != before {
                    r.version += 1;
                    b.store.update_rollout(&r, expected).await?;
                }
                return Ok(());
            }
            _ => {
                r.status = RolloutStatus::Running;
                b.store.set_job_state(job_id, JobState::InProgress).await?;
            }
        }
    }
    // 3. Gates.
    let counts = b.store.wave_counts(job_id).await?;
    let wc = |w: u32| counts.get(w as usize).cloned().unwrap_or_default();
    let total = sum(&counts);
    let parsed = plan
        .config
        .parsed()
        .map_err(|e| StoreError::Corrupt(format!("configuration of {job_id}: {e}")))?;
    let stop = abort_reason(&parsed.abort, &total)
        .map(|c| (ABORTED_BY_CRITERIA, c))
        .or_else(|| {
            (0..=r.wave.min(plan.waves.len() as u32 - 1)).find_map(|w| {
                wave_error(&plan.waves[w as usize], &wc(w)).map(|c| (WAVE_ERROR_THRESHOLD, c))
            })
        });
    if let Some((code, comment)) = stop {
        tracing::warn!(job = job_id, reason = code, "{comment}");
        let info = CancelInfo {
            force: false,
            reason_code: Some(code.into()),
            comment: Some(comment),
        };
        // The record is rewritten by the cancel (STOPPED, same reason).
        return cancel_job_locked(b, job_id, &info).await;
    }
    let last = plan.waves.len() as u32 - 1;
    while r.status == RolloutStatus::Running && r.wave < last {
        let w = &plan.waves[r.wave as usize];
        let c = wc(r.wave);
        if c.released < c.things {
            break;
        }
        if !wave_passed(w, &c) {
            let pending = c.count(JobStatus::Queued) + c.count(JobStatus::InProgress);
            if pending == 0 && c.things > 0 {
                // Every execution of the wave ended, below its success threshold and under its
                // error threshold: nothing can move it any more, so the operator decides
                // (`approve` goes on anyway, `cancel` stops) instead of a silent wait.
                r.status = RolloutStatus::WaitingForApproval;
                r.reason_code = Some(SUCCESS_THRESHOLD_NOT_MET.into());
                r.comment = Some(format!(
                    "wave {} ended with {} of {} things SUCCEEDED, below its success threshold \
                     of {}%; `ferrota rollout approve` goes on anyway, `cancel` stops",
                    w.name,
                    c.count(JobStatus::Succeeded),
                    c.things,
                    w.success_percentage
                ));
            }
            break;
        }
        if w.requires_approval {
            r.status = RolloutStatus::WaitingForApproval;
            r.reason_code = Some(WAITING_FOR_APPROVAL.into());
            r.comment = Some(format!(
                "wave {} passed its success threshold; `ferrota rollout approve` opens the next",
                w.name
            ));
            break;
        }
        r.wave += 1;
        tracing::info!(job = job_id, wave = r.wave, "rollout: next wave opens");
    }
    // 4. Release.
    r.next_at = None;
    if r.status == RolloutStatus::Running {
        let windows = &parsed.windows;
        if !windows.is_open(now) {
            r.next_at = windows.next_open(now);
        } else {
            let allow = rate::allowance(
                plan.config.rollout.as_ref(),
                &mut moving.rate,
                now,
                total.released,
                total.count(JobStatus::Succeeded),
            );
            let n = usize::try_from(allow.now)
                .unwrap_or(usize::MAX)
                .min(RELEASE_BATCH);
            let mut released = 0usize;
            if n > 0 {
                let things = b.store.unreleased_targets(job_id, r.wave, n).await?;
                if !things.is_empty() {
                    // The minute's count is written before the executions are: a crash in
                    // between loses part of one minute's quota, never doubles it.
                    rate::record(&mut moving.rate, things.len() as u64);
                    r.state = serde_json::to_string(&moving).unwrap_or_default();
                    r.version += 1;
                    if !b.store.update_rollout(&r, expected).await? {
                        tracing::warn!(
                            job = job_id,
                            "rollout changed meanwhile (another process?)"
                        );
                        return Ok(());
                    }
                    expected = r.version;
                    before = r.clone();
                    let mut befores = Vec::with_capacity(things.len());
                    for t in &things {
                        befores.push(jobs::pending(b, t).await?);
                    }
                    released = b.store.release_targets(job_id, &things, now).await?;
                    for (t, before) in things.iter().zip(&befores) {
                        jobs::notify_changes(b, t, before).await?;
                    }
                    tracing::debug!(job = job_id, released, "rollout: notified");
                }
            }
            let waiting_now = b.store.unreleased_targets(job_id, r.wave, 1).await?;
            let waiting_any = b.store.unreleased_targets(job_id, u32::MAX, 1).await?;
            if waiting_any.is_empty() && r.wave == last && !plan.config.continuous {
                r.status = RolloutStatus::Finished;
            } else if !waiting_now.is_empty() {
                r.next_at = if n == RELEASE_BATCH && released == n {
                    // The batch, not the rate, was the limit: more may go at once.
                    Some(now)
                } else {
                    allow.next_at.or(Some(now + 1))
                };
            }
            // Windows close: no new notification after; the next step sees it closed.
        }
    }
    if let Some(end) = plan.end {
        r.next_at = Some(r.next_at.map_or(end, |t| t.min(end)));
    }
    r.state = serde_json::to_string(&moving).unwrap_or_default();
    if r != before {
        r.version += 1;
        if !b.store.update_rollout(&r, expected).await? {
            tracing::warn!(job = job_id, "rollout changed meanwhile (another process?)");
        }
    }
    if r.status == RolloutStatus::Finished {
        jobs::complete_if_done(b, job_id).await?;
    }
    Ok(())
}

/// The retry of a finished execution, if its job's `jobExecutionsRetryConfig` gives one.
async fn maybe_retry(b: &Services, rules: &[RetryRule], e: &Execution) -> StoreResult<bool> {
    if !matches!(e.status, JobStatus::Failed | JobStatus::TimedOut) {
        return Ok(false);
    }
    let mut limit = None;
    for c in rules {
        match c.failure_type {
            // Its own type wins over ALL.
            FailureType::All if limit.is_none() => limit = Some(c.retries),
            ft if ft != FailureType::All && ft.covers(e.status) => limit = Some(c.retries),
            _ => {}
        }
    }
    let Some(limit) = limit else {
        return Ok(false);
    };
    if e.execution_number.saturating_sub(1) >= limit {
        return Ok(false);
    }
    let before = jobs::pending(b, &e.thing).await?;
    if !b.store.retry_execution(e, b.clock.now()).await? {
        return Ok(false);
    }
    tracing::info!(job = %e.job_id, thing = %e.thing, execution = e.execution_number + 1, "job execution retried");
    jobs::notify_changes(b, &e.thing, &before).await?;
    Ok(true)
}

/// Adds changed things to the CONTINUOUS rollouts they now match ([`Services::thing_changed`]),
/// reacts to finished executions (retries, then one step per rollout concerned) and steps
/// the rollouts whose time came. Returns how many rollouts it stepped. A failure of one job's
/// step is logged and does not hold back the others' (each is recomputed from the store at
/// its next step, and [`recover`] scans for owed retries at start).
///
/// On a worker that does not hold the [`crate::lease`], it steps nothing: it passes what
/// finished and changed here to the holder.
pub async fn step(b: &Services) -> StoreResult<usize> {
    let lease = b.lease();
    if lease.hold().await.is_none() {
        let (finished, changed) = (b.take_finished(), b.take_changed());
        if !finished.is_empty() || !changed.is_empty() {
            lease.forward(&finished, &changed).await?;
        }
        return Ok(0);
    }
    let changed = b.take_changed();
    if !changed.is_empty()
        && let Err(e) = things_changed_now(b, &changed).await
    {
        tracing::error!(error = %e, "adding changed things to continuous rollouts failed");
    }
    let mut per_job = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (job_id, thing) in b.take_finished() {
        per_job.entry(job_id).or_default().push(thing);
    }
    for j in b.store.due_rollouts(b.clock.now()).await? {
        per_job.entry(j).or_default();
    }
    for (j, finished) in &per_job {
        if let Err(e) = tick_with(b, j, finished).await {
            tracing::error!(job = %j, error = %e, "rollout step failed");
        }
    }
    Ok(per_job.len())
}

/// At start: every active rollout is stepped, with a scan for the retries a crash may have
/// left owed (and, for a CONTINUOUS one, for things that joined its targets while the server
/// was down).
pub async fn recover(b: &Services) -> StoreResult<()> {
    let mut continuous = false;
    for mut r in b.store.active_rollouts().await? {
        let plan = plan_of(&r)?;
        continuous |= plan.config.continuous;
        if plan.config.retry.is_some() {
            let mut moving = moving_of(&r);
            if !moving.retry_scan {
                moving.retry_scan = true;
                save_moving(b, &mut r, &moving).await?;
            }
        }
        tick(b, &r.job_id).await?;
    }
    if continuous {
        let names: Vec<String> = b
            .store
            .list_things()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        things_changed_now(b, &names).await?;
    }
    Ok(())
}

/// Shortest time between two steps of [`run`]. A step recounts the statuses of each rollout
/// it looks at (one query over the job's targets), so a fleet finishing thousands of
/// executions a minute must not cost one recount each: the runner takes what finished in
/// the last 100 ms as one batch. The price: a gate (abort, a wave's error threshold) acts up
/// to 100 ms after the execution that crossed it, and what the rate released in that time is
/// already out ("in flight"). Tests and simulations call [`step`] after every execution.
pub const MIN_STEP_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the rollouts forever (spawn it; abort it to stop): [`recover`] once, then [`step`]
/// whenever executions finish (batched, [`MIN_STEP_INTERVAL`]) or a rollout's time comes (at
/// most `max_sleep` apart).
///
/// Of several workers, only the [`crate::lease`]'s holder steps; it recovers first each time
/// it takes the lease (what the previous holder owed), and it hears the other workers'
/// finished executions through [`crate::lease::Lease::receive`].
pub async fn run(b: Arc<Services>, max_sleep: Duration) {
    let lease = b.lease();
    let receiver = {
        let (l, inbox) = (lease.clone(), b.clone() as Arc<dyn crate::lease::Inbox>);
        tokio::spawn(async move { l.receive(inbox).await })
    };
    let _stop_receiver = AbortOnDrop(receiver);
    let max_sleep = lease.poll().map_or(max_sleep, |p| p.min(max_sleep));
    let mut recovered = None;
    loop {
        let epoch = lease.hold().await;
        if epoch.is_some() && epoch != recovered {
            match recover(&b).await {
                Ok(()) => recovered = epoch,
                Err(e) => tracing::error!(error = %e, "recovering rollouts failed"),
            }
        }
        if let Err(e) = step(&b).await {
            tracing::error!(error = %e, "rollout step failed");
        }
        tokio::time::sleep(MIN_STEP_INTERVAL).await;
        let wait = match epoch {
            None => max_sleep,
            Some(_) => match b.store.next_rollout_at().await {
                Ok(Some(t)) => Duration::from_secs(t.saturating_sub(b.clock.now()).max(1)),
                Ok(None) => max_sleep,
                Err(e) => {
                    tracing::error!(error = %e, "reading rollout times failed");
                    max_sleep
                }
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(max_sleep)) => {}
            _ = b.rollouts.notified() => {}
        }
    }
}

/// A CONTINUOUS rollout reaches a thing that joins its targets later: called when things
/// are created or their groups change. `is_target` says whether a thing is one of a request's
/// targets now (static and dynamic groups). Returns the `(job, thing)` pairs added.
pub async fn things_changed(
    b: &Services,
    things: &[String],
    is_target: &dyn TargetCheck,
) -> StoreResult<Vec<(String, String)>> {
    let mut added = Vec::new();
    let mut plans = Vec::new();
    for r in b.store.active_rollouts().await? {
        let plan = plan_of(&r)?;
        if plan.config.continuous {
            plans.push((r.job_id, plan));
        }
    }
    for (job_id, plan) in &plans {
        let mut ticked = false;
        for thing in things {
            let mut hit = false;
            for t in &plan.targets {
                if is_target.check(t, thing).await? {
                    hit = true;
                    break;
                }
            }
            let last = plan.waves.len().saturating_sub(1) as u32;
            if hit && b.store.add_target(job_id, thing, last).await? {
                tracing::info!(job = %job_id, thing = %thing, "continuous rollout: new target");
                added.push((job_id.clone(), thing.clone()));
                ticked = true;
            }
        }
        if ticked {
            tick(b, job_id).await?;
        }
    }
    Ok(added)
}

/// The check without an operator layer: things and static groups.
struct StaticTargets<'a>(&'a Services);

#[async_trait::async_trait]
impl TargetCheck for StaticTargets<'_> {
    async fn check(&self, target: &str, thing: &str) -> StoreResult<bool> {
        Ok(match Target::parse(target) {
            Some(Target::Thing(n)) => n == thing,
            Some(Target::Group(g)) => self
                .0
                .store
                .thing(thing)
                .await?
                .is_some_and(|t| t.groups.iter().any(|x| x == g)),
            None => false,
        })
    }
}

/// The services' [`TargetCheck`] (the operator layer's), or things and static groups without
/// one.
fn target_check(b: &Services) -> Box<dyn TargetCheck + '_> {
    match b.target_check() {
        Some(c) => Box::new(Shared(c)),
        None => Box::new(StaticTargets(b)),
    }
}

/// A shared [`TargetCheck`] as a boxed one.
struct Shared(Arc<dyn TargetCheck>);

#[async_trait::async_trait]
impl TargetCheck for Shared {
    async fn check(&self, target: &str, thing: &str) -> StoreResult<bool> {
        self.0.check(target, thing).await
    }
}

/// [`things_changed`] with the services' [`TargetCheck`] (static groups without one).
pub async fn things_changed_now(
    b: &Services,
    things: &[String],
) -> StoreResult<Vec<(String, String)>> {
    things_changed(b, things, &*target_check(b)).await
}

/// An operator's action.
pub async fn act(
    b: &Services,
    job_id: &str,
    action: ferrota_api::RolloutAction,
) -> Result<(), RolloutError> {
    use ferrota_api::RolloutAction as A;
    if let A::Cancel { force } = action {
        let Some(j) = b.store.job(job_id).await? else {
            return Err(RolloutError::NotFound(format!("job {job_id}")));
        };
        if matches!(j.state, JobState::Canceled | JobState::Completed) {
            return Err(RolloutError::Invalid(format!(
                "job {job_id} is {:?} already; nothing was changed",
                j.state
            )));
        }
        cancel_job(b, job_id, force).await?;
        return Ok(());
    }
    {
        let _g = b.rollout_lock.lock().await;
        let Some(mut r) = b.store.rollout(job_id).await? else {
            return Err(RolloutError::Invalid(format!(
                "job {job_id} has no rollout (it was notified to every target at create); \
                 only cancel applies"
            )));
        };
        let v = r.version;
        match (action, r.status) {
            (
                A::Pause,
                RolloutStatus::Running
                | RolloutStatus::WaitingForApproval
                | RolloutStatus::Scheduled
                | RolloutStatus::Finished,
            ) => {
                r.status = RolloutStatus::Paused;
                r.reason_code = Some("PAUSED_BY_OPERATOR".into());
                r.comment = Some("paused by the operator".into());
            }
            (A::Resume, RolloutStatus::Paused) => {
                // Paused before its start time: back to waiting for it.
                let scheduled = b
                    .store
                    .job(job_id)
                    .await?
                    .is_some_and(|j| j.state == JobState::Scheduled);
                r.status = if scheduled {
                    RolloutStatus::Scheduled
                } else {
                    RolloutStatus::Running
                };
                r.reason_code = None;
                r.comment = None;
            }
            (A::Approve, RolloutStatus::WaitingForApproval) => {
                r.status = RolloutStatus::Running;
                r.wave += 1;
                r.reason_code = None;
                r.comment = None;
            }
            (a, s) => {
                return Err(RolloutError::Invalid(format!(
                    "cannot {} a rollout that is {}; nothing was changed",
                    a.as_str(),
                    crate::store::rollout::status_str(s)
                )));
            }
        }
        r.next_at = Some(b.clock.now());
        r.version += 1;
        if !b.store.update_rollout(&r, v).await? {
            return Err(RolloutError::Invalid(
                "the rollout changed meanwhile; try again".into(),
            ));
        }
        // Retries held back while paused are owed now.
        retries_locked(b, job_id, &[]).await?;
        tick_locked(b, job_id).await?;
    }
    b.rollouts.notify_one();
    Ok(())
}

/// DescribeRollout: where a job's rollout stands, wave by wave. A job without a rollout shows
/// as one FINISHED wave of all its executions.
pub async fn describe(
    b: &Services,
    ota_update_id: &str,
    job_id: &str,
) -> Result<RolloutDescription, RolloutError> {
    let Some(job) = b.store.job(job_id).await? else {
        return Err(RolloutError::NotFound(format!("job {job_id}")));
    };
    let Some(r) = b.store.rollout(job_id).await? else {
        let counts = b.store.job_status_counts(job_id).await?;
        let n: u64 = counts.iter().map(|(_, n)| n).sum();
        let c = WaveCounts {
            things: n,
            released: n,
            statuses: counts,
        };
        let info = b.store.cancel_info(job_id).await?;
        return Ok(RolloutDescription {
            ota_update_id: ota_update_id.into(),
            job_id: job_id.into(),
            status: if job.state == JobState::Canceled {
                RolloutStatus::Stopped
            } else {
                RolloutStatus::Finished
            },
            reason_code: info.as_ref().and_then(|i| i.reason_code.clone()),
            comment: info.and_then(|i| i.comment),
            current_wave: 0,
            waves: vec![WaveProgress {
                name: "all".into(),
                number_of_things: n,
                number_of_notified_things: n,
                number_of_succeeded_things: c.count(JobStatus::Succeeded),
                number_of_failed_things: failed(&c),
                open: true,
            }],
            rate_per_minute: None,
            next_release_at: None,
        });
    };
    let plan = plan_of(&r)?;
    let counts = b.store.wave_counts(job_id).await?;
    let waves = plan
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let c = counts.get(i).cloned().unwrap_or_default();
            WaveProgress {
                name: w.name.clone(),
                number_of_things: c.things,
                number_of_notified_things: c.released,
                number_of_succeeded_things: c.count(JobStatus::Succeeded),
                number_of_failed_things: failed(&c),
                open: i as u32 <= r.wave && r.status != RolloutStatus::Scheduled,
            }
        })
        .collect();
    let total = sum(&counts);
    let mut m = moving_of(&r).rate;
    let rate = rate::allowance(
        plan.config.rollout.as_ref(),
        &mut m,
        b.clock.now(),
        total.released,
        total.count(JobStatus::Succeeded),
    )
    .rate;
    Ok(RolloutDescription {
        ota_update_id: ota_update_id.into(),
        job_id: job_id.into(),
        status: r.status,
        reason_code: r.reason_code,
        comment: r.comment,
        current_wave: r.wave,
        waves,
        rate_per_minute: rate,
        next_release_at: r.next_at,
    })
}

/// Aborts a spawned task when dropped (the runner's forwarded-work receiver ends with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
