//! Fleet rollouts through the real services on a controllable clock (issue 16): simulated
//! devices on the in-memory bus answer each job they are notified of; the engine
//! (`rollout::step`) runs after every device update and every clock move, as the server's
//! runner does. No sockets, no real minutes.

use crate::common;

use std::collections::BTreeMap;

use common::{Mem, MemDevice};
use ferrota_api::{CreateOtaUpdate, RolloutAction, RolloutStatus, Wave};
use ferrota_server::admin::OtaDescription;
use ferrota_server::rollout;
use ferrota_server::store::JobState;

/// One notification a device received: when, which job, which execution number.
#[derive(Debug, Clone)]
struct Notified {
    at: u64,
    thing: String,
    execution_number: u64,
}

/// What a device answers to an execution: a status, or nothing (it stays QUEUED).
type Verdict = dyn Fn(&str, u64) -> Option<&'static str>;

struct Fleet {
    mem: Mem,
    devices: Vec<MemDevice>,
    notified: Vec<Notified>,
    t0: u64,
}

impl Fleet {
    /// `n` things `d000`… in group `fleet`, each attached and subscribed to `notify-next`.
    async fn new(n: usize) -> Fleet {
        Self::over(Mem::new(), n, true).await
    }

    /// [`Fleet::new`] over a PostgreSQL database of its own; `None` without PostgreSQL.
    async fn postgres(test: &str, n: usize) -> Option<Fleet> {
        Some(Self::over(Mem::postgres(test).await?, n, true).await)
    }

    async fn over(mem: Mem, n: usize, create: bool) -> Fleet {
        let mut devices = Vec::new();
        for i in 0..n {
            let name = format!("d{i:03}");
            if create {
                mem.thing_in(&name, &["fleet"]).await;
            }
            let d = mem.device(&name);
            d.subscribe(&format!("$aws/things/{name}/jobs/notify-next"));
            devices.push(d);
        }
        let t0 = mem.clock.now_secs();
        Fleet {
            mem,
            devices,
            notified: Vec::new(),
            t0,
        }
    }

    fn now(&self) -> u64 {
        self.mem.clock.now_secs() - self.t0
    }

    async fn step(&self) {
        rollout::step(&self.mem.services).await.unwrap();
    }

    /// Delivers what the services sent until nothing moves: a device notified of an execution
    /// answers `verdict` at once (and the engine steps after each answer).
    async fn pump(&mut self, verdict: &Verdict) {
        loop {
            let mut moved = false;
            for i in 0..self.devices.len() {
                while let Some(m) = self.devices[i].try_next() {
                    if !m.topic.ends_with("/notify-next") {
                        continue;
                    }
                    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                    let Some(e) = v.get("execution") else {
                        continue;
                    };
                    let job = e["jobId"].as_str().unwrap().to_string();
                    let n = e["executionNumber"].as_u64().unwrap();
                    let thing = self.devices[i].thing.clone();
                    self.notified.push(Notified {
                        at: self.now(),
                        thing: thing.clone(),
                        execution_number: n,
                    });
                    assert!(job.starts_with("AFR_OTA-"), "{job}");
                    if let Some(status) = verdict(&thing, n) {
                        let body = serde_json::json!({"status": status}).to_string();
                        self.devices[i]
                            .publish(format!("$aws/things/{thing}/jobs/{job}/update"), body)
                            .await;
                        self.step().await;
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Moves the clock by `secs` as the server's runner lives through them: at every time a
    /// rollout asked to be looked at again (a rate minute, a window, the start or end time) on
    /// the way, the engine steps and the devices answer; then at the end.
    async fn advance(&mut self, secs: u64, verdict: &Verdict) {
        let target = self.mem.clock.now_secs() + secs;
        for _ in 0..100_000 {
            match self.mem.store.next_rollout_at().await.unwrap() {
                Some(t) if t <= target => {
                    if t > self.mem.clock.now_secs() {
                        self.mem.clock.set(t);
                    }
                    self.step().await;
                    self.pump(verdict).await;
                    if self.mem.store.next_rollout_at().await.unwrap() == Some(t)
                        && t == self.mem.clock.now_secs()
                    {
                        // Stepped and still due now: nothing more to do at this instant.
                        break;
                    }
                }
                _ => break,
            }
        }
        self.mem.clock.set(target);
        self.step().await;
        self.pump(verdict).await;
    }

    async fn create(&mut self, req: CreateOtaUpdate, verdict: &Verdict) -> OtaDescription {
        let o = self.mem.admin.create_ota(&req).await.unwrap();
        self.pump(verdict).await;
        o
    }

    async fn request(&self, id: &str) -> CreateOtaUpdate {
        let sha = self.mem.admin.put_file(b"firmware").await.unwrap();
        Mem::data_request(id, "thinggroup/fleet", &sha)
    }

    async fn rollout(&self, id: &str) -> ferrota_api::RolloutDescription {
        self.mem.admin.describe_rollout(id).await.unwrap()
    }

    async fn describe(&self, id: &str) -> OtaDescription {
        self.mem.admin.describe_ota(id).await.unwrap()
    }

    /// How many things were notified of a first execution.
    fn first_notifications(&self) -> usize {
        self.notified
            .iter()
            .filter(|n| n.execution_number == 1)
            .count()
    }
}

fn ok(_: &str, _: u64) -> Option<&'static str> {
    Some("SUCCEEDED")
}

fn silent(_: &str, _: u64) -> Option<&'static str> {
    None
}

/// `maximumPerMinute` 10 over 45 things: 10 in each minute from the create, the last 5 in the
/// fifth minute, none early; the job completes only when all are notified and done.
#[tokio::test]
async fn constant_rate_notifies_at_most_the_rate_each_minute() {
    let mut f = Fleet::new(45).await;
    let req = f.request("rate").await.max_per_minute(10);
    f.create(req, &ok).await;
    assert_eq!(f.first_notifications(), 10);
    f.advance(30, &ok).await;
    assert_eq!(
        f.first_notifications(),
        10,
        "nothing more within the minute"
    );
    assert_eq!(
        f.describe("rate").await.job_state,
        Some(JobState::InProgress),
        "the job is not complete while targets wait for their minute"
    );
    for minute in 1..=4u64 {
        f.advance(30, &ok).await;
        let want = (10 * (minute + 1)).min(45) as usize;
        assert_eq!(f.first_notifications(), want, "after minute {minute}");
        f.advance(30, &ok).await;
        assert_eq!(f.first_notifications(), want, "within minute {minute}");
    }
    let mut per_minute = BTreeMap::<u64, usize>::new();
    for n in &f.notified {
        *per_minute.entry(n.at / 60).or_default() += 1;
    }
    assert_eq!(
        per_minute.into_values().collect::<Vec<_>>(),
        [10, 10, 10, 10, 5]
    );
    let d = f.describe("rate").await;
    assert_eq!(d.job_process_details.number_of_succeeded_things, 45);
    assert_eq!(d.job_state, Some(JobState::Completed));
    assert_eq!(f.rollout("rate").await.status, RolloutStatus::Finished);
}

/// A release that fails on every fifth device, with an abort criterion of 10 % FAILED after
/// at least 10 executed things: the job is canceled at the first moment the documented rule
/// holds, its QUEUED executions are CANCELED, and no device is notified afterwards.
#[tokio::test]
async fn abort_criteria_cancel_after_exactly_the_documented_failures() {
    abort_criteria_cancel_after_exactly_the_documented_failures_on(Fleet::new(100).await).await;
}

#[tokio::test]
async fn abort_criteria_cancel_after_exactly_the_documented_failures_on_postgres() {
    if let Some(f) = Fleet::postgres(
        "abort_criteria_cancel_after_exactly_the_documented_failures",
        100,
    )
    .await
    {
        abort_criteria_cancel_after_exactly_the_documented_failures_on(f).await;
    }
}

async fn abort_criteria_cancel_after_exactly_the_documented_failures_on(mut f: Fleet) {
    let fails = |t: &str, _n: u64| -> Option<&'static str> {
        let i: u64 = t[1..].parse().unwrap();
        Some(if i.is_multiple_of(5) {
            "FAILED"
        } else {
            "SUCCEEDED"
        })
    };
    // 10 a minute, so the abort comes while most targets still wait.
    // At least 7 executed (not a multiple of the rate), so the abort falls inside a minute's
    // batch and "nothing notified after it" is a real check.
    let req = f
        .request("abort")
        .await
        .max_per_minute(10)
        .abort_when("FAILED", 10.0, 7);
    f.create(req, &fails).await;
    let mut minutes = 0;
    while f.rollout("abort").await.status != RolloutStatus::Stopped && minutes < 20 {
        f.advance(60, &fails).await;
        minutes += 1;
    }
    let d = f.describe("abort").await;
    assert_eq!(d.job_state, Some(JobState::Canceled));
    assert_eq!(d.reason_code.as_deref(), Some(rollout::ABORTED_BY_CRITERIA));
    // The documented rule, replayed over the outcomes in the order they happened: executed
    // ≥ 7 and failures ≥ 10 % of executed.
    let (mut executed, mut failed, mut abort_at) = (0u64, 0u64, None);
    for (i, n) in f.notified.iter().enumerate() {
        executed += 1;
        if fails(&n.thing, 1) == Some("FAILED") {
            failed += 1;
        }
        if executed >= 7 && failed * 100 >= 10 * executed && failed > 0 {
            abort_at = Some(i + 1);
            break;
        }
    }
    let abort_at = abort_at.expect("the rule holds at some point");
    let p = &d.job_process_details;
    assert_eq!(
        p.number_of_succeeded_things + p.number_of_failed_things,
        abort_at as u64,
        "the job stopped exactly when the rule first held"
    );
    // The rest of that minute's batch was out already (in flight): those executions, still
    // QUEUED, were CANCELED; no execution was created after the abort.
    let total: u64 = [
        p.number_of_queued_things,
        p.number_of_in_progress_things,
        p.number_of_succeeded_things,
        p.number_of_failed_things,
        p.number_of_canceled_things,
    ]
    .iter()
    .sum();
    assert_eq!(
        total as usize,
        f.notified.len(),
        "every execution was notified once"
    );
    assert_eq!(
        p.number_of_canceled_things as usize,
        f.notified.len() - abort_at,
        "what was in flight at the abort was canceled"
    );
    assert_eq!(p.number_of_queued_things, 0);
    let before = f.notified.len();
    f.advance(600, &fails).await;
    assert_eq!(f.notified.len(), before, "nothing is notified later either");
    assert!(d.comment.unwrap().contains("abort criteria"));
    // AWS DescribeJob over the HTTP API says the same, with AWS's names.
    let (st, v) = f.mem.api("GET", "/api/jobs/AFR_OTA-abort", None).await;
    assert_eq!(st, 200, "{v}");
    let j = &v["job"];
    assert_eq!(j["status"], "CANCELED");
    assert_eq!(j["forceCanceled"], false);
    assert_eq!(j["reasonCode"], rollout::ABORTED_BY_CRITERIA);
    assert_eq!(j["targetSelection"], "SNAPSHOT");
    assert_eq!(
        j["abortConfig"]["abortCriteriaList"][0]["thresholdPercentage"],
        10.0
    );
    assert_eq!(
        j["jobProcessDetails"]["numberOfFailedThings"],
        p.number_of_failed_things
    );
    assert_eq!(j["jobExecutionsRolloutConfig"]["maximumPerMinute"], 10);
}

/// Gated waves: a canary of 10 % with an error threshold of 2 failures stops the whole
/// rollout at the second failure; the later waves are never notified.
#[tokio::test]
async fn a_waves_error_threshold_stops_the_rollout() {
    a_waves_error_threshold_stops_the_rollout_on(Fleet::new(50).await).await;
}

#[tokio::test]
async fn a_waves_error_threshold_stops_the_rollout_on_postgres() {
    if let Some(f) = Fleet::postgres("a_waves_error_threshold_stops_the_rollout", 50).await {
        a_waves_error_threshold_stops_the_rollout_on(f).await;
    }
}

async fn a_waves_error_threshold_stops_the_rollout_on(mut f: Fleet) {
    // Fails on every other device: the canary's second failure stops everything.
    let fails = |t: &str, _n: u64| -> Option<&'static str> {
        let i: u64 = t[1..].parse().unwrap();
        Some(if i.is_multiple_of(2) {
            "FAILED"
        } else {
            "SUCCEEDED"
        })
    };
    let req = f
        .request("waves")
        .await
        .wave(Wave {
            name: Some("canary".into()),
            percentage: Some(10.0),
            error_threshold_count: Some(2),
            ..Wave::default()
        })
        .wave(Wave {
            percentage: Some(100.0),
            ..Wave::default()
        });
    f.create(req, &fails).await;
    let r = f.rollout("waves").await;
    assert_eq!(r.status, RolloutStatus::Stopped);
    assert_eq!(
        r.reason_code.as_deref(),
        Some(rollout::WAVE_ERROR_THRESHOLD)
    );
    assert_eq!(r.waves[0].number_of_things, 5);
    assert_eq!(
        r.waves[0].number_of_failed_things, 2,
        "stopped at exactly 2"
    );
    assert_eq!(r.waves[1].number_of_notified_things, 0);
    assert!(f.notified.len() <= 5, "only the canary was notified");
    let d = f.describe("waves").await;
    assert_eq!(d.job_state, Some(JobState::Canceled));
    // What the canary had not answered yet was canceled: nothing is left QUEUED.
    assert_eq!(d.job_process_details.number_of_queued_things, 0);
    f.advance(3600, &fails).await;
    assert!(f.notified.len() <= 5);
}

/// Waves open one after the other when the success threshold is met; a wave that requires
/// approval waits (WAITING_FOR_APPROVAL) until `approve`; pause holds and resume goes on.
#[tokio::test]
async fn waves_open_on_success_and_wait_for_approval() {
    waves_open_on_success_and_wait_for_approval_on(Fleet::new(40).await).await;
}

#[tokio::test]
async fn waves_open_on_success_and_wait_for_approval_on_postgres() {
    if let Some(f) = Fleet::postgres("waves_open_on_success_and_wait_for_approval", 40).await {
        waves_open_on_success_and_wait_for_approval_on(f).await;
    }
}

async fn waves_open_on_success_and_wait_for_approval_on(mut f: Fleet) {
    let req = f
        .request("gated")
        .await
        .wave(Wave {
            name: Some("canary".into()),
            count: Some(4),
            success_threshold_percentage: Some(75.0),
            requires_approval: true,
            ..Wave::default()
        })
        .wave(Wave {
            name: Some("early".into()),
            percentage: Some(50.0),
            ..Wave::default()
        })
        .wave(Wave {
            name: Some("rest".into()),
            percentage: Some(100.0),
            ..Wave::default()
        });
    f.create(req, &ok).await;
    let r = f.rollout("gated").await;
    assert_eq!(r.status, RolloutStatus::WaitingForApproval);
    assert_eq!(
        f.first_notifications(),
        4,
        "only the canary before approval"
    );
    assert_eq!(
        r.waves
            .iter()
            .map(|w| w.number_of_things)
            .collect::<Vec<_>>(),
        [4, 16, 20]
    );
    // The HTTP API: the rollout as JSON; an action its state does not allow is a 400 that
    // changes nothing; an unknown action a 404.
    let (st, v) = f.mem.api("GET", "/api/rollouts/gated", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "WAITING_FOR_APPROVAL");
    assert_eq!(v["waves"][0]["name"], "canary");
    assert_eq!(v["waves"][0]["numberOfSucceededThings"], 4);
    let (st, v) = f.mem.api("POST", "/api/rollouts/gated/resume", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("InvalidRequestException")),
        "{v}"
    );
    let (st, _) = f.mem.api("POST", "/api/rollouts/gated/explode", None).await;
    assert_eq!(st, 404);
    let (st, _) = f
        .mem
        .api("POST", "/api/rollouts/gated/pause?force=true", None)
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        f.rollout("gated").await.status,
        RolloutStatus::WaitingForApproval,
        "refused actions changed nothing"
    );
    // Pause while waiting; approve is refused while paused; resume goes back to waiting.
    f.mem
        .admin
        .rollout_action("gated", RolloutAction::Pause)
        .await
        .unwrap();
    let e = f
        .mem
        .admin
        .rollout_action("gated", RolloutAction::Approve)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot approve"), "{e}");
    f.mem
        .admin
        .rollout_action("gated", RolloutAction::Resume)
        .await
        .unwrap();
    assert_eq!(
        f.rollout("gated").await.status,
        RolloutStatus::WaitingForApproval
    );
    f.mem
        .admin
        .rollout_action("gated", RolloutAction::Approve)
        .await
        .unwrap();
    f.pump(&ok).await;
    assert_eq!(f.first_notifications(), 40, "approval opened the rest");
    let r = f.rollout("gated").await;
    assert_eq!(r.status, RolloutStatus::Finished);
    assert_eq!(
        f.describe("gated").await.job_state,
        Some(JobState::Completed)
    );
}

/// Pause holds every new notification (executions out go on); resume releases at the rate.
#[tokio::test]
async fn pause_holds_notifications_and_resume_releases_them() {
    pause_holds_notifications_and_resume_releases_them_on(Fleet::new(30).await).await;
}

#[tokio::test]
async fn pause_holds_notifications_and_resume_releases_them_on_postgres() {
    if let Some(f) = Fleet::postgres("pause_holds_notifications_and_resume_releases_them", 30).await
    {
        pause_holds_notifications_and_resume_releases_them_on(f).await;
    }
}

async fn pause_holds_notifications_and_resume_releases_them_on(mut f: Fleet) {
    let req = f.request("pause").await.max_per_minute(10);
    f.create(req, &ok).await;
    assert_eq!(f.first_notifications(), 10);
    f.mem
        .admin
        .rollout_action("pause", RolloutAction::Pause)
        .await
        .unwrap();
    f.advance(600, &ok).await;
    assert_eq!(f.first_notifications(), 10, "nothing while paused");
    f.mem
        .admin
        .rollout_action("pause", RolloutAction::Resume)
        .await
        .unwrap();
    f.pump(&ok).await;
    assert_eq!(f.first_notifications(), 20, "resume: the next minute's 10");
    f.advance(60, &ok).await;
    assert_eq!(f.first_notifications(), 30);
}

/// Retries: a device that fails gets the job again as its next execution number, up to
/// `numberOfRetries`; then the execution stays FAILED.
#[tokio::test]
async fn retries_give_the_next_execution_number() {
    retries_give_the_next_execution_number_on(Fleet::new(3).await).await;
}

#[tokio::test]
async fn retries_give_the_next_execution_number_on_postgres() {
    if let Some(f) = Fleet::postgres("retries_give_the_next_execution_number", 3).await {
        retries_give_the_next_execution_number_on(f).await;
    }
}

async fn retries_give_the_next_execution_number_on(mut f: Fleet) {
    // d000 fails twice then succeeds; d001 always fails; d002 (the last to answer) fails once:
    // a failure that leaves nothing pending must still get its retry (the job is not
    // complete while one is owed).
    let verdict = |t: &str, n: u64| -> Option<&'static str> {
        Some(match (t, n) {
            ("d000", 1 | 2) => "FAILED",
            ("d001", _) => "FAILED",
            ("d002", 1) => "FAILED",
            _ => "SUCCEEDED",
        })
    };
    let req = f.request("retry").await.retry_when("FAILED", 2);
    f.create(req, &verdict).await;
    let numbers = |thing: &str| -> Vec<u64> {
        f.notified
            .iter()
            .filter(|n| n.thing == thing)
            .map(|n| n.execution_number)
            .collect()
    };
    assert_eq!(numbers("d000"), [1, 2, 3]);
    assert_eq!(numbers("d001"), [1, 2, 3], "two retries, then no more");
    assert_eq!(numbers("d002"), [1, 2]);
    let job = f.describe("retry").await.job_id;
    let s = &f.mem.store;
    let e0 = s.execution(&job, "d000").await.unwrap().unwrap();
    assert_eq!((e0.status.as_str(), e0.execution_number), ("SUCCEEDED", 3));
    let e1 = s.execution(&job, "d001").await.unwrap().unwrap();
    assert_eq!((e1.status.as_str(), e1.execution_number), ("FAILED", 3));
    assert_eq!(
        f.describe("retry").await.job_state,
        Some(JobState::Completed)
    );
}

/// `schedulingConfig`: SCHEDULED (nothing notified) until `startTime`; at `endTime` with
/// CANCEL the job is canceled and what is still QUEUED with it.
#[tokio::test]
async fn scheduling_holds_until_start_and_cancels_at_end() {
    let mut f = Fleet::new(20).await;
    let start = f.mem.clock.now_secs() + 3600;
    let fmt = |t: u64| {
        let d = time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute()
        )
    };
    let start = start - start % 60;
    let req =
        f.request("sched")
            .await
            .max_per_minute(5)
            .scheduling(ferrota_api::SchedulingConfig {
                start_time: Some(fmt(start)),
                end_time: Some(fmt(start + 1800)),
                end_behavior: Some("CANCEL".into()),
                maintenance_windows: vec![],
            });
    f.create(req, &silent).await;
    assert_eq!(
        f.describe("sched").await.job_state,
        Some(JobState::Scheduled)
    );
    assert_eq!(f.rollout("sched").await.status, RolloutStatus::Scheduled);
    f.advance(1800, &silent).await;
    assert_eq!(f.first_notifications(), 0, "nothing before startTime");
    let to_start = start - f.mem.clock.now_secs();
    f.advance(to_start, &silent).await;
    assert_eq!(f.first_notifications(), 5);
    assert_eq!(
        f.describe("sched").await.job_state,
        Some(JobState::InProgress)
    );
    f.advance(60, &silent).await;
    assert_eq!(f.first_notifications(), 10);
    f.advance(1800, &silent).await;
    let d = f.describe("sched").await;
    assert_eq!(d.job_state, Some(JobState::Canceled));
    assert_eq!(d.reason_code.as_deref(), Some(rollout::END_TIME_REACHED));
    assert_eq!(d.job_process_details.number_of_queued_things, 0);
    assert!(d.job_process_details.number_of_canceled_things > 0);
}

/// CONTINUOUS: a thing that joins the target group after the create gets the job.
#[tokio::test]
async fn a_continuous_job_reaches_a_thing_added_later() {
    let mut f = Fleet::new(2).await;
    let req = f.request("cont").await.continuous();
    f.create(req, &silent).await;
    assert_eq!(f.first_notifications(), 2);
    f.mem.thing_in("late", &["fleet"]).await;
    let mut late = f.mem.device("late");
    late.subscribe("$aws/things/late/jobs/notify-next");
    let added = f.mem.admin.things_changed(&["late".into()]).await.unwrap();
    assert_eq!(added.len(), 1);
    let (topic, v) = late.next_json().await;
    assert!(topic.ends_with("/notify-next"));
    assert_eq!(v["execution"]["jobId"], "AFR_OTA-cont");
    // A thing outside the group is not added.
    f.mem.thing_in("other", &["elsewhere"]).await;
    assert!(
        f.mem
            .admin
            .things_changed(&["other".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // A continuous job stays IN_PROGRESS when every target is done.
    assert_eq!(f.rollout("cont").await.status, RolloutStatus::Running);
}

/// The server killed and restarted in the middle of a gated rollout (SQLite): the rollout
/// resumes with no wave, counter or execution lost or doubled.
#[tokio::test]
async fn a_restart_mid_rollout_loses_and_doubles_nothing() {
    restart_mid_rollout(async |dir| Mem::open(dir).await).await;
}

/// The same with the database on PostgreSQL: the worker's pool is dropped with everything
/// in memory, and a new one connects.
#[tokio::test]
async fn a_restart_mid_rollout_loses_and_doubles_nothing_on_postgres() {
    let Some(url) = common::postgres_url("restart_mid_rollout") else {
        return;
    };
    restart_mid_rollout(async |dir| Mem::postgres_at(&url, dir).await).await;
}

/// Runs a gated rollout on the store `open` opens (a database that outlives the services),
/// restarts in the middle, and checks that it resumes losing and doubling nothing.
async fn restart_mid_rollout(open: impl AsyncFn(std::sync::Arc<tempfile::TempDir>) -> Mem) {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mem = open(dir.clone()).await;
    let mut f = Fleet::over(mem, 30, true).await;
    let req = f
        .request("restart")
        .await
        .max_per_minute(4)
        .wave(Wave {
            count: Some(6),
            ..Wave::default()
        })
        .wave(Wave {
            percentage: Some(100.0),
            ..Wave::default()
        });
    f.create(req, &ok).await;
    f.advance(60, &ok).await;
    assert_eq!(f.first_notifications(), 8);
    let before = f.rollout("restart").await;
    assert_eq!(before.current_wave, 1, "the first wave passed");
    // Kill: drop everything in memory; reopen the same database at a later time.
    let now = f.mem.clock.now_secs();
    let notified = f.notified.clone();
    let dir = f.mem.close().await;
    let mem = open(dir).await;
    mem.clock.set(now + 30);
    rollout::recover(&mem.services).await.unwrap();
    let mut g = Fleet::over(mem, 30, false).await;
    g.t0 = f.t0;
    g.notified = notified;
    assert_eq!(
        g.rollout("restart").await,
        before,
        "nothing changed by the restart"
    );
    g.pump(&ok).await;
    g.advance(30, &ok).await;
    assert_eq!(g.first_notifications(), 12, "the next minute's 4, once");
    for _ in 0..10 {
        g.advance(60, &ok).await;
    }
    assert_eq!(g.first_notifications(), 30);
    let mut things: Vec<&str> = g.notified.iter().map(|n| n.thing.as_str()).collect();
    things.sort();
    things.dedup();
    assert_eq!(things.len(), 30, "every thing notified exactly once");
    let d = g.describe("restart").await;
    assert_eq!(d.job_process_details.number_of_succeeded_things, 30);
    assert_eq!(d.job_state, Some(JobState::Completed));
    for n in &g.notified {
        assert_eq!(n.execution_number, 1);
    }
}

/// Notifications per minute since the create.
fn per_minute(f: &Fleet) -> Vec<usize> {
    let mut m = BTreeMap::<u64, usize>::new();
    for n in &f.notified {
        *m.entry(n.at / 60).or_default() += 1;
    }
    let last = m.keys().last().copied().unwrap_or(0);
    (0..=last)
        .map(|k| m.get(&k).copied().unwrap_or(0))
        .collect()
}

/// `exponentialRate` base 2, factor 2.0, growing every 4 notified things: the documented
/// schedule (`rollout::rate`) 2, 2, 4, 8, 32, then the rest.
#[tokio::test]
async fn exponential_rate_grows_on_notified_things_as_documented() {
    let mut f = Fleet::new(100).await;
    let req = f.request("exp").await.rollout(ferrota_api::RolloutConfig {
        maximum_per_minute: None,
        exponential_rate: Some(ferrota_api::ExponentialRate {
            base_rate_per_minute: 2,
            increment_factor: 2.0,
            rate_increase_criteria: ferrota_api::RateIncreaseCriteria {
                number_of_notified_things: Some(4),
                number_of_succeeded_things: None,
            },
        }),
    });
    f.create(req, &silent).await;
    for _ in 0..6 {
        f.advance(60, &silent).await;
    }
    assert_eq!(per_minute(&f), [2, 2, 4, 8, 32, 52]);
}

/// With the criteria on SUCCEEDED things, the rate grows only as devices succeed: silent
/// devices keep it at the base rate.
#[tokio::test]
async fn exponential_rate_on_successes_waits_for_successes() {
    let mut f = Fleet::new(40).await;
    let req = f
        .request("exp-ok")
        .await
        .rollout(ferrota_api::RolloutConfig {
            maximum_per_minute: Some(20),
            exponential_rate: Some(ferrota_api::ExponentialRate {
                base_rate_per_minute: 3,
                increment_factor: 3.0,
                rate_increase_criteria: ferrota_api::RateIncreaseCriteria {
                    number_of_notified_things: None,
                    number_of_succeeded_things: Some(3),
                },
            }),
        });
    f.create(req, &silent).await;
    for _ in 0..3 {
        f.advance(60, &silent).await;
    }
    assert_eq!(per_minute(&f), [3, 3, 3, 3], "no success, no growth");
    // The 12 notified devices now succeed: k = 12 / 3 = 4 → 3 × 81, capped by 20, from the
    // next window on (the current one's rate was fixed when it opened).
    let notified: Vec<String> = f.notified.iter().map(|n| n.thing.clone()).collect();
    for thing in &notified {
        let d = f.devices.iter().position(|d| &d.thing == thing).unwrap();
        f.devices[d]
            .publish(
                format!("$aws/things/{thing}/jobs/AFR_OTA-exp-ok/update"),
                r#"{"status":"SUCCEEDED"}"#,
            )
            .await;
    }
    f.step().await;
    f.pump(&silent).await;
    assert_eq!(f.notified.len(), 12, "nothing more in this window");
    f.advance(60, &silent).await;
    assert_eq!(f.notified.len(), 12 + 20, "capped by maximumPerMinute");
}

/// A maintenance window holds notifications back outside it and releases them inside, at the
/// rate; the next day's window goes on where the last one stopped.
#[tokio::test]
async fn a_maintenance_window_holds_and_releases_notifications() {
    let mut f = Fleet::new(200).await;
    let now = f.mem.clock.now_secs();
    // A daily 30-minute window starting at the top of the hour two to three hours from now.
    let open = (now / 3600 + 2) * 3600;
    let hour = (open % 86400) / 3600;
    let req =
        f.request("window")
            .await
            .max_per_minute(5)
            .scheduling(ferrota_api::SchedulingConfig {
                maintenance_windows: vec![ferrota_api::MaintenanceWindow {
                    start_time: format!("cron(0 {hour} * * ? *)"),
                    duration_in_minutes: 30,
                }],
                ..Default::default()
            });
    f.create(req, &silent).await;
    assert_eq!(f.first_notifications(), 0, "created outside the window");
    f.advance(open - now - 60, &silent).await;
    assert_eq!(f.first_notifications(), 0, "a minute before it opens");
    f.advance(60, &silent).await;
    assert_eq!(f.first_notifications(), 5, "it opened");
    for _ in 0..10 {
        f.advance(60, &silent).await;
    }
    assert_eq!(f.first_notifications(), 55);
    f.advance(30 * 60 - 11 * 60, &silent).await;
    assert_eq!(
        f.first_notifications(),
        150,
        "30 minutes at 5 a minute, then it closed"
    );
    f.advance(3600, &silent).await;
    assert_eq!(f.first_notifications(), 150, "nothing outside the window");
    let at = f.mem.clock.now_secs();
    f.advance(open + 86400 - at, &silent).await;
    assert_eq!(
        f.first_notifications(),
        155,
        "the next day's window goes on"
    );
}

/// A CONTINUOUS rollout to a dynamic group (a fleet-index query over what devices report)
/// reaches a device as soon as its Device Shadow report makes it match, and not one that
/// reports a version outside the query.
#[tokio::test]
async fn a_continuous_rollout_to_a_dynamic_group_reaches_a_thing_when_it_matches() {
    let mut f = Fleet::new(3).await;
    f.mem
        .admin
        .create_thing_group(&ferrota_api::CreateThingGroup {
            thing_group_name: "old-firmware".into(),
            query_string: Some("firmware.version < 1.2.0".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sha = f.mem.admin.put_file(b"firmware").await.unwrap();
    let req = Mem::data_request("dyn", "thinggroup/old-firmware", &sha).continuous();
    f.create(req, &silent).await;
    assert_eq!(
        f.first_notifications(),
        0,
        "nothing reported yet: no member"
    );
    let report = |v: &str| {
        serde_json::json!({"state": {"reported": {"firmware": {
            "version": v, "bank": "A", "pendingTrial": false, "antiRollbackFloor": 1}}}})
        .to_string()
    };
    f.devices[1]
        .publish("$aws/things/d001/shadow/update", report("1.0.0"))
        .await;
    f.devices[2]
        .publish("$aws/things/d002/shadow/update", report("1.10.0"))
        .await;
    f.step().await;
    f.pump(&silent).await;
    let things: Vec<&str> = f.notified.iter().map(|n| n.thing.as_str()).collect();
    assert_eq!(
        things,
        ["d001"],
        "1.0.0 matches, 1.10.0 does not (version order)"
    );
    let r = f.rollout("dyn").await;
    assert_eq!(r.waves[0].number_of_things, 1);
}

/// A wave can be a dynamic group (hawkBit's per-group target filter): the canary is whatever
/// matches `attributes.ring:canary`, and nothing else is notified while it has not passed.
#[tokio::test]
async fn a_wave_can_be_a_dynamic_group() {
    let mut f = Fleet::new(10).await;
    for t in ["d003", "d007"] {
        f.mem
            .admin
            .update_thing(
                t,
                &ferrota_api::UpdateThing {
                    attribute_payload: ferrota_api::AttributePayload {
                        attributes: [("ring".to_string(), "canary".to_string())].into(),
                        merge: None,
                    },
                },
            )
            .await
            .unwrap();
    }
    f.mem
        .admin
        .create_thing_group(&ferrota_api::CreateThingGroup {
            thing_group_name: "ring-canary".into(),
            query_string: Some("attributes.ring:canary".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let req = f
        .request("ring")
        .await
        .wave(Wave {
            thing_group: Some("ring-canary".into()),
            requires_approval: true,
            ..Wave::default()
        })
        .wave(Wave {
            percentage: Some(100.0),
            ..Wave::default()
        });
    f.create(req, &ok).await;
    let mut things: Vec<&str> = f.notified.iter().map(|n| n.thing.as_str()).collect();
    things.sort();
    assert_eq!(things, ["d003", "d007"]);
    assert_eq!(
        f.rollout("ring").await.status,
        RolloutStatus::WaitingForApproval
    );
}

/// A wave whose executions all ended below its success threshold but under its error
/// threshold can move no more: it waits for the operator (SUCCESS_THRESHOLD_NOT_MET) instead
/// of waiting silently; `approve` goes on anyway.
#[tokio::test]
async fn a_wave_below_its_success_threshold_waits_for_the_operator() {
    let mut f = Fleet::new(20).await;
    let one_fails = |t: &str, _n: u64| -> Option<&'static str> {
        Some(
            if t == "d000" || t == "d001" || t == "d002" || t == "d003" {
                "FAILED"
            } else {
                "SUCCEEDED"
            },
        )
    };
    let req = f
        .request("below")
        .await
        .wave(Wave {
            count: Some(10),
            error_threshold_count: Some(10),
            ..Wave::default()
        })
        .wave(Wave {
            percentage: Some(100.0),
            ..Wave::default()
        });
    f.create(req, &one_fails).await;
    let r = f.rollout("below").await;
    assert_eq!(r.status, RolloutStatus::WaitingForApproval, "{r:?}");
    assert_eq!(
        r.reason_code.as_deref(),
        Some(rollout::SUCCESS_THRESHOLD_NOT_MET)
    );
    assert!(r.waves[0].number_of_failed_things > 0);
    assert_eq!(f.first_notifications(), 10);
    f.mem
        .admin
        .rollout_action("below", RolloutAction::Approve)
        .await
        .unwrap();
    f.pump(&one_fails).await;
    assert_eq!(f.first_notifications(), 20, "approve went on anyway");
}

/// A retry notifies a device, so it waits like any notification: none while the rollout is
/// paused; the one owed is given at resume.
#[tokio::test]
async fn a_retry_waits_while_the_rollout_is_paused() {
    let mut f = Fleet::new(2).await;
    let req = f.request("held").await.retry_when("ALL", 1);
    f.create(req, &silent).await;
    assert_eq!(f.first_notifications(), 2);
    f.mem
        .admin
        .rollout_action("held", RolloutAction::Pause)
        .await
        .unwrap();
    f.devices[0]
        .publish(
            "$aws/things/d000/jobs/AFR_OTA-held/update",
            r#"{"status":"FAILED"}"#,
        )
        .await;
    f.step().await;
    f.pump(&silent).await;
    assert_eq!(f.notified.len(), 2, "no retry while paused");
    f.mem
        .admin
        .rollout_action("held", RolloutAction::Resume)
        .await
        .unwrap();
    f.step().await;
    f.pump(&silent).await;
    let retried: Vec<u64> = f
        .notified
        .iter()
        .filter(|n| n.thing == "d000")
        .map(|n| n.execution_number)
        .collect();
    assert_eq!(retried, [1, 2], "the retry owed was given at resume");
}

// ---- The RolloutStore contract on every store, and two workers on PostgreSQL (issue 17) ----

mod store_level {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ferrota_api::RolloutStatus;
    use ferrota_proto::JobStatus;
    use ferrota_server::store::{
        CancelInfo, Execution, Job, JobState, MemoryStore, OtaRecord, RolloutRecord, RolloutStore,
        SharedStore, SqliteStore, Store, StoreError, StreamRecord,
    };

    use super::common::{connect_postgres, postgres_store, postgres_url};

    fn rollout(job: &str) -> RolloutRecord {
        RolloutRecord {
            job_id: job.into(),
            plan: "{}".into(),
            status: RolloutStatus::Running,
            wave: 0,
            state: "{}".into(),
            reason_code: None,
            comment: None,
            next_at: Some(500),
            version: 1,
        }
    }

    /// Creates OTA update `id` with its job `job` and a rollout over `targets`.
    async fn create(
        s: &dyn RolloutStore,
        id: &str,
        job: &str,
        targets: &[(&str, u32)],
    ) -> Result<(), StoreError> {
        let stream = StreamRecord {
            stream_id: format!("AFR_OTA-{id}"),
            description: String::new(),
            version: 1,
            files: Vec::new(),
        };
        let j = Job {
            job_id: job.into(),
            document: "{}".into(),
            state: JobState::InProgress,
            ota_update_id: Some(id.into()),
            created_at: 10,
            in_progress_timeout_minutes: None,
        };
        let ota = OtaRecord {
            ota_update_id: id.into(),
            status: "CREATE_COMPLETE".into(),
            request: "{}".into(),
            job_id: job.into(),
            stream_id: stream.stream_id.clone(),
            created_at: 10,
            error_info: None,
        };
        let targets: Vec<(String, u32)> =
            targets.iter().map(|(t, w)| (t.to_string(), *w)).collect();
        s.create_ota_rollout(&stream, &j, &ota, &rollout(job), &targets)
            .await
    }

    fn queued(job: &str, thing: &str, version: u64) -> Execution {
        Execution {
            job_id: job.into(),
            thing: thing.into(),
            status: JobStatus::Queued,
            status_details: BTreeMap::new(),
            queued_at: 20,
            started_at: None,
            last_updated_at: 20,
            version_number: version,
            execution_number: 1,
            seq: 0,
            in_progress_deadline: None,
            step_deadline: None,
        }
    }

    async fn contract(s: &dyn Store) {
        create(s, "u1", "j1", &[("a", 0), ("b", 0), ("c", 1)])
            .await
            .unwrap();
        // A target listed twice: refused, nothing of that update stored.
        let e = create(s, "u2", "j2", &[("a", 0), ("a", 1)])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Exists(_)), "{e}");
        assert_eq!(s.rollout("j2").await.unwrap(), None);
        assert_eq!(s.cancel_info("j2").await.unwrap(), None);
        assert_eq!(s.job("j2").await.unwrap(), None, "all or none");
        assert_eq!(s.ota("u2").await.unwrap(), None, "all or none");
        assert_eq!(s.stream("AFR_OTA-u2").await.unwrap(), None, "all or none");
        // A rollout's job starts with no execution: a target gets one when released.
        assert!(s.executions_of_job("j1").await.unwrap().is_empty());

        let r = s.rollout("j1").await.unwrap().unwrap();
        assert_eq!(r, rollout("j1"));
        assert_eq!(s.active_rollouts().await.unwrap(), std::slice::from_ref(&r));
        assert_eq!(s.due_rollouts(499).await.unwrap(), Vec::<String>::new());
        assert_eq!(s.due_rollouts(500).await.unwrap(), ["j1"]);
        assert_eq!(s.next_rollout_at().await.unwrap(), Some(500));

        // Compare-and-set on the version.
        let mut next = r.clone();
        next.version = 2;
        next.wave = 1;
        next.next_at = None;
        assert!(!s.update_rollout(&next, 7).await.unwrap());
        assert!(s.update_rollout(&next, 1).await.unwrap());
        assert!(
            !s.update_rollout(&next, 1).await.unwrap(),
            "version 1 is gone"
        );
        assert_eq!(s.rollout("j1").await.unwrap(), Some(next.clone()));
        assert_eq!(s.next_rollout_at().await.unwrap(), None);

        // Targets in order (wave, then as added), released once.
        assert_eq!(s.unreleased_targets("j1", 0, 10).await.unwrap(), ["a", "b"]);
        assert_eq!(s.unreleased_targets("j1", 1, 2).await.unwrap(), ["a", "b"]);
        assert_eq!(
            s.unreleased_targets("j1", 1, 10).await.unwrap(),
            ["a", "b", "c"]
        );
        let things = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            s.release_targets("j1", &things(&["b", "x"]), 20)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.release_targets("j1", &things(&["a", "b"]), 20)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.release_targets("j1", &things(&["a", "b"]), 20)
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.unreleased_targets("j1", 1, 10).await.unwrap(), ["c"]);
        let released: Vec<(String, u64, u64, u64)> = s
            .executions_of_job("j1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                assert_eq!(e.status, JobStatus::Queued);
                (e.thing, e.execution_number, e.version_number, e.queued_at)
            })
            .collect();
        assert_eq!(
            released,
            [("a".into(), 1, 1, 20), ("b".into(), 1, 1, 20)],
            "one QUEUED execution per released thing, number 1, version 1"
        );
        assert_eq!(s.history("j1", "a").await.unwrap().len(), 1);
        assert!(s.job_has_pending("j1").await.unwrap());
        let w = s.wave_counts("j1").await.unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].things, w[0].released), (2, 2));
        assert_eq!(w[0].statuses, [(JobStatus::Queued, 2)]);
        assert_eq!((w[1].things, w[1].released), (1, 0));
        assert!(w[1].statuses.is_empty());

        // A target added later; one already there is not added again.
        assert!(!s.add_target("j1", "c", 1).await.unwrap());
        assert!(s.add_target("j1", "d", 1).await.unwrap());
        assert_eq!(s.unreleased_targets("j1", 1, 10).await.unwrap(), ["c", "d"]);

        // A retry only over the stored version.
        assert!(!s.retry_execution(&queued("j1", "a", 5), 30).await.unwrap());
        assert!(s.retry_execution(&queued("j1", "a", 1), 30).await.unwrap());
        assert!(!s.retry_execution(&queued("j1", "a", 1), 30).await.unwrap());
        assert!(!s.retry_execution(&queued("j1", "zz", 1), 30).await.unwrap());
        let e = s.execution("j1", "a").await.unwrap().unwrap();
        assert_eq!(
            (e.status, e.execution_number, e.version_number, e.queued_at),
            (JobStatus::Queued, 2, 2, 30),
            "the retry is the next execution number"
        );
        let h = s.history("j1", "a").await.unwrap();
        assert_eq!(
            h.iter().map(|h| h.version_number).collect::<Vec<_>>(),
            [1, 2]
        );

        let info = CancelInfo {
            force: true,
            reason_code: Some("R".into()),
            comment: Some("why".into()),
        };
        assert_eq!(s.cancel_info("j1").await.unwrap(), None);
        s.set_cancel_info("j1", &info).await.unwrap();
        assert_eq!(s.cancel_info("j1").await.unwrap(), Some(info));
        assert_eq!(s.cancel_info("nope").await.unwrap(), None);

        // A STOPPED rollout is no longer active.
        let mut stopped = next.clone();
        stopped.status = RolloutStatus::Stopped;
        stopped.version = 3;
        assert!(s.update_rollout(&stopped, 2).await.unwrap());
        assert!(s.active_rollouts().await.unwrap().is_empty());

        // Targets keep the order they were given in, not their names' order.
        let order: Vec<String> = (0..30).map(|i| format!("o{:02}", (i * 7) % 30)).collect();
        let targets: Vec<(&str, u32)> = order.iter().map(|t| (t.as_str(), 0)).collect();
        create(s, "u3", "j3", &targets).await.unwrap();
        assert_eq!(s.unreleased_targets("j3", 0, 100).await.unwrap(), order);
    }

    /// [`RolloutStore`] means the same on every store: memory, SQLite and PostgreSQL.
    #[tokio::test]
    async fn every_store_keeps_the_rollout_contract() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores: Vec<SharedStore> = vec![
            Arc::new(MemoryStore::new()),
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap()),
        ];
        if let Some(pg) = postgres_store("rollout_contract").await {
            stores.push(Arc::new(pg));
        }
        for s in stores {
            contract(&*s).await;
        }
    }

    /// Two workers (two pools on one PostgreSQL database) release the same job's targets at
    /// once, in opposite orders, over many rounds: every target is released exactly once,
    /// no thing ever gets two executions, the counts the two report add up, and neither
    /// fails (no deadlock, no unique violation).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_two_workers_release_each_target_once() {
        const ROUNDS: usize = 25;
        const THINGS: usize = 40;
        let Some(url) = postgres_url("release_two_workers") else {
            return;
        };
        let a = connect_postgres(&url).await;
        let b = connect_postgres(&url).await;
        let (mut both, mut total) = (0, 0);
        for round in 0..ROUNDS {
            let job = format!("j{round}");
            let names: Vec<String> = (0..THINGS).map(|i| format!("t{i:03}")).collect();
            let targets: Vec<(&str, u32)> = names.iter().map(|t| (t.as_str(), 0)).collect();
            create(&a, &format!("u{round}"), &job, &targets)
                .await
                .unwrap();
            let forward = names.clone();
            let mut backward = names.clone();
            backward.reverse();
            // Half the rounds in one call each; half in small batches, as a rate releases.
            let (na, nb) = if round % 2 == 0 {
                let (ra, rb) = tokio::join!(
                    a.release_targets(&job, &forward, 100),
                    b.release_targets(&job, &backward, 100)
                );
                (ra.unwrap(), rb.unwrap())
            } else {
                let batches = |s: ferrota_server::store::postgres::PostgresStore,
                               list: Vec<String>,
                               job: String| async move {
                    let mut n = 0;
                    for chunk in list.chunks(7) {
                        n += s.release_targets(&job, chunk, 100).await.unwrap();
                    }
                    n
                };
                tokio::join!(
                    batches(a.clone(), forward, job.clone()),
                    batches(b.clone(), backward, job.clone())
                )
            };
            assert_eq!(na + nb, THINGS, "round {round}: released {na} + {nb}");
            if na > 0 && nb > 0 {
                both += 1;
            }
            total += na + nb;
            assert!(
                a.unreleased_targets(&job, 0, 1000)
                    .await
                    .unwrap()
                    .is_empty()
            );
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT thing, COUNT(*) FROM executions WHERE job_id = $1 GROUP BY thing \
                 ORDER BY thing",
            )
            .bind(&job)
            .fetch_all(a.pool())
            .await
            .unwrap();
            assert_eq!(rows.len(), THINGS, "round {round}: one execution per thing");
            assert!(rows.iter().all(|(_, n)| *n == 1), "round {round}: {rows:?}");
            let w = a.wave_counts(&job).await.unwrap();
            assert_eq!((w[0].things, w[0].released), (THINGS as u64, THINGS as u64));
            assert_eq!(w[0].statuses, [(JobStatus::Queued, THINGS as u64)]);
        }
        assert_eq!(total, ROUNDS * THINGS);
        eprintln!("{both} of {ROUNDS} rounds had both workers release some targets");
    }
}

/// Two workers (two services, each with a pool of its own, on one PostgreSQL database) step
/// the same rate-limited rollout at the same instants, minute after minute: the rate holds
/// across them (never more than 10 notified a minute) and every thing gets exactly one
/// execution, number 1. Each minute both step at once on threads of their own (in practice
/// both read the rollout before either writes it, and one loses the record's compare-and-set
/// and releases nothing). An end-to-end guard: the two mechanisms under it, the rollout's
/// compare-and-set and `release_targets`' claim, are each proven on their own by
/// `store_level`'s tests; either alone keeps this one green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_workers_stepping_one_rollout_keep_its_rate_and_notify_once() {
    use std::sync::Arc;
    const THINGS: u64 = 100;
    let Some(url) = common::postgres_url("two_workers_step") else {
        return;
    };
    let a = Mem::postgres_at(&url, Arc::new(tempfile::tempdir().unwrap())).await;
    let b = Mem::postgres_at(&url, Arc::new(tempfile::tempdir().unwrap())).await;
    for i in 0..THINGS {
        a.thing_in(&format!("d{i:03}"), &["fleet"]).await;
    }
    let sha = a.admin.put_file(b"firmware").await.unwrap();
    let req = Mem::data_request("two", "thinggroup/fleet", &sha).max_per_minute(10);
    a.admin.create_ota(&req).await.unwrap();
    let t0 = a.clock.now_secs();
    let executions = async || a.store.executions_of_job("AFR_OTA-two").await.unwrap();
    assert_eq!(
        executions().await.len(),
        10,
        "the first minute's 10 at the create"
    );
    for minute in 1..THINGS / 10 {
        for m in [&a, &b] {
            m.clock.set(t0 + minute * 60);
        }
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let step = |m: &Mem| {
            let (services, start) = (m.services.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                rollout::step(&services).await
            })
        };
        let (ra, rb) = tokio::join!(step(&a), step(&b));
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
        let n = executions().await.len() as u64;
        assert_eq!(n, 10 * (minute + 1), "minute {minute}: 10 more, not 20");
    }
    let all = executions().await;
    let mut things: Vec<&str> = all.iter().map(|e| e.thing.as_str()).collect();
    things.dedup();
    assert_eq!(things.len() as u64, THINGS, "one execution per thing");
    assert!(all.iter().all(|e| e.execution_number == 1));
    assert!(
        a.store
            .unreleased_targets("AFR_OTA-two", u32::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
