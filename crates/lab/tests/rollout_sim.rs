//! The rollout simulation (`ferrota_lab::rollout_sim`) over the real server and its rollout
//! engine: a bad release stops in its canary wave, a good one reaches everyone, and a seed
//! gives the same run twice.

use ferrota_lab::rollout_sim::{JobState, RolloutStatus, Scenario, run};

const DEVICES: usize = 500;

/// 20 % failing, waves 2 % → 100 % with an error threshold of 10 % on each.
fn bad() -> Scenario {
    Scenario::new(DEVICES, 0.20)
        .wave_percent("canary", 2.0, Some(10.0))
        .wave_percent("all", 100.0, Some(10.0))
        .seed(7)
}

/// The canary (2 % of 500 = 10 devices) sees its failures, the rollout stops with
/// WAVE_ERROR_THRESHOLD, and no device beyond the canary got the bad image, none after the
/// stop.
#[test]
fn a_bad_release_stops_in_the_first_wave() {
    let o = run(&bad()).unwrap();
    assert_eq!(o.status, RolloutStatus::Stopped, "{o:?}");
    assert_eq!(o.reason_code.as_deref(), Some("WAVE_ERROR_THRESHOLD"));
    assert_eq!(o.job_state, Some(JobState::Canceled));
    let canary = o.rollout.waves[0].number_of_things;
    assert_eq!(canary, 10);
    assert!(
        o.notified <= canary,
        "notified {} > canary {canary}",
        o.notified
    );
    assert_eq!(o.notified_after_stop, 0);
    assert_eq!(o.rollout.waves[1].number_of_notified_things, 0);
    assert!(o.failed >= 1, "the stop came from a failure");
    let first = o.first_failure_at.unwrap();
    let stop = o.stopped_at.unwrap();
    assert!(
        stop >= first,
        "stopped at {stop} before the first failure {first}"
    );
    assert_eq!(o.failure_to_stop(), Some(stop - first));
    assert!(o.engine_cpu > std::time::Duration::ZERO);
}

/// A good release: every device notified and SUCCEEDED, the rollout FINISHED and the job
/// COMPLETED.
#[test]
fn a_good_release_reaches_everyone() {
    let s = Scenario::new(DEVICES, 0.0)
        .wave_percent("canary", 2.0, Some(10.0))
        .wave_percent("all", 100.0, Some(10.0))
        .seed(7);
    let o = run(&s).unwrap();
    assert_eq!(o.status, RolloutStatus::Finished, "{o:?}");
    assert_eq!(o.reason_code, None);
    assert_eq!(o.notified, DEVICES as u64);
    assert_eq!(o.succeeded, DEVICES as u64);
    assert_eq!(o.failed, 0);
    assert_eq!(o.job_state, Some(JobState::Completed));
    assert!(o.completed_at.is_some());
    assert_eq!(o.first_failure_at, None);
    assert_eq!(o.stopped_at, None);
    let waves = &o.rollout.waves;
    assert_eq!(waves[0].number_of_succeeded_things, 10);
    assert_eq!(waves[1].number_of_succeeded_things, 490);
}

/// The same seed gives the same run; another seed another failing share.
#[test]
fn a_seed_gives_the_same_run() {
    let a = run(&bad()).unwrap();
    let b = run(&bad()).unwrap();
    let key = |o: &ferrota_lab::rollout_sim::Outcome| {
        (
            o.notified,
            o.failed,
            o.succeeded,
            o.first_failure_at,
            o.stopped_at,
            o.ended_at,
            o.steps,
            o.rollout.clone(),
        )
    };
    assert_eq!(key(&a), key(&b));
    let c = run(&bad().seed(8)).unwrap();
    assert_ne!(
        (a.failed, a.first_failure_at, a.stopped_at),
        (c.failed, c.first_failure_at, c.stopped_at),
        "another seed, another run"
    );
}

/// With a rate of 60 a minute and no waves, the engine releases at most 60 devices in any
/// minute, and the simulation moves the clock to the engine's next minute by itself.
#[test]
fn the_rate_limit_holds_on_virtual_time() {
    let o = run(&Scenario::new(150, 0.0).max_per_minute(60).seed(3)).unwrap();
    assert_eq!(o.status, RolloutStatus::Finished, "{o:?}");
    assert_eq!(o.notified, 150);
    // 60 + 60 + 30: the last releases in the third minute.
    assert!(o.ended_at >= 120, "ended at {}", o.ended_at);
}

/// A scenario out of range is refused with a clear error.
#[test]
fn a_bad_scenario_is_refused() {
    let e = run(&Scenario::new(10, 1.5)).unwrap_err();
    assert!(e.to_string().contains("failing fraction"), "{e}");
    let e = run(&Scenario::new(0, 0.0)).unwrap_err();
    assert!(e.to_string().contains("devices"), "{e}");
}
