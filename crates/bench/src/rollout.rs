//! Scenario `rollout`: a staged rollout to 10,000 simulated devices through the real server,
//! its SQLite store and its rollout engine, on virtual time ([`ferrota_lab::rollout_sim`]).
//!
//! Three runs, waves 1 % → 10 % → 100 % with `errorThresholdPercentage: 5` on each:
//! 1. a bad release (fails on 10 % of the devices), no rate limit: how many devices got the
//!    bad image before the rollout stopped (target: at most the first wave plus what was
//!    already in flight), the virtual time from the first failure to the stop, and the
//!    server's cost per notified device;
//! 2. the same with `maximumPerMinute: 1000`, for comparison;
//! 3. a good release (0 % failing), which must reach all 10,000 and FINISH: the full cost per
//!    notified device (release, the device's IN_PROGRESS and SUCCEEDED updates, the engine's
//!    steps and gates they trigger).
//!
//! `--short` runs 1,000 devices and makes no claims.

use std::time::Duration;

use ferrota_lab::rollout_sim::{
    Outcome, RolloutStatus, Scenario as Sim, StoreKind, run as simulate,
};
use serde_json::json;

use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};

/// Devices in the full run.
pub const DEVICES: usize = 10_000;
/// Share of the devices the bad release fails on.
pub const FAILING: f64 = 0.10;
/// The waves' error threshold, percent of the wave's things.
pub const ERROR_PCT: f64 = 5.0;
/// The comparison's rate.
pub const RATE: u64 = 1000;

/// Devices of the good release's run on SQLite: the whole fleet. Each engine step recounts
/// the waves' statuses (`RolloutStore::wave_counts`, a scan of the job's targets), so the
/// simulation steps as the server's runner does, once per (virtual) second in which devices
/// reported, not once per report (which made 10,000 on SQLite take 223 s in a first
/// measurement, dev profile).
pub const GOOD_SQLITE_DEVICES: usize = 10_000;

fn scenario(devices: usize, failing: f64, rate: Option<u64>, store: StoreKind) -> Sim {
    let mut s = Sim::new(devices, failing)
        .wave_percent("1%", 1.0, Some(ERROR_PCT))
        .wave_percent("10%", 10.0, Some(ERROR_PCT))
        .wave_percent("100%", 100.0, Some(ERROR_PCT))
        .store(store)
        .seed(16);
    // Steps as the server's runner does: what finished in the same (virtual) second is one
    // batch, not one recount per device.
    s.step_per_report = false;
    if let Some(r) = rate {
        s = s.max_per_minute(r);
    }
    s
}

fn us(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e6))
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({
        "notified": o.notified,
        "notified_after_stop": o.notified_after_stop,
        "failed": o.failed,
        "succeeded": o.succeeded,
        "in_flight_at_stop": o.in_flight_at_stop,
        "failed_at_stop": o.failed_at_stop,
        "first_failure_at_s": o.first_failure_at,
        "stopped_at_s": o.stopped_at,
        "failure_to_stop_s": o.failure_to_stop(),
        "completed_at_s": o.completed_at,
        "status": o.status,
        "reason_code": o.reason_code,
        "job_state": o.job_state,
        "waves": o.rollout.waves,
        "steps": o.steps,
        "engine_cpu_s": o.engine_cpu.as_secs_f64(),
        "step_cpu_s": o.step_cpu.as_secs_f64(),
        "engine_cpu_per_notified_us": o.cpu_per_notified().map(|d| d.as_secs_f64() * 1e6),
        "wall_s": o.wall.as_secs_f64(),
        "rollout_wall_s": o.rollout_wall.as_secs_f64(),
        "step_cpu_per_notified_us": (o.notified > 0)
            .then(|| o.step_cpu.as_secs_f64() * 1e6 / o.notified as f64),
    })
}

/// Runs the scenario.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let n = if opts.short { 1_000 } else { DEVICES };
    let err =
        |e: ferrota_lab::rollout_sim::SimError| BenchError::new(Scenario::Rollout, e.to_string());
    let small = if opts.short { 200 } else { GOOD_SQLITE_DEVICES };
    let runs = [
        (
            "bad release, no rate limit, SQLite",
            n,
            FAILING,
            None,
            StoreKind::Sqlite,
        ),
        (
            "bad release, 1000/min, SQLite",
            n,
            FAILING,
            Some(RATE),
            StoreKind::Sqlite,
        ),
        (
            "good release, no rate limit, memory",
            n,
            0.0,
            None,
            StoreKind::Memory,
        ),
        (
            "good release, no rate limit, SQLite",
            small,
            0.0,
            None,
            StoreKind::Sqlite,
        ),
    ];
    let mut table = Table::new([
        "run",
        "devices",
        "notified",
        "failed",
        "in flight at stop",
        "first failure → stop (virtual s)",
        "end",
        "engine steps",
        "engine CPU / notified (µs)",
        "wall (s)",
    ]);
    let mut outs = Vec::new();
    for (name, n, failing, rate, store) in runs {
        opts.say(format!(
            "rollout: {name}: {n} devices, {:.0}% failing",
            failing * 100.0
        ));
        let o = simulate(&scenario(n, failing, rate, store)).map_err(err)?;
        let end = match &o.reason_code {
            Some(r) => format!("{:?} ({r})", o.status),
            None => format!("{:?}", o.status),
        };
        table.row([
            name.to_string(),
            n.to_string(),
            o.notified.to_string(),
            o.failed.to_string(),
            if o.stopped_at.is_some() {
                o.in_flight_at_stop.to_string()
            } else {
                "–".into()
            },
            o.failure_to_stop().map_or("–".into(), |s| s.to_string()),
            end,
            o.steps.to_string(),
            us(o.cpu_per_notified()),
            format!("{:.1}", o.rollout_wall.as_secs_f64()),
        ]);
        outs.push((name, o));
    }
    let mut targets = Vec::new();
    for (name, o) in &outs[..2] {
        let first = o.rollout.waves.first().map_or(0, |w| w.number_of_things);
        let met = o.status == RolloutStatus::Stopped
            && o.notified_after_stop == 0
            && o.notified <= first + o.in_flight_at_stop;
        targets.push(Target::new(
            format!("{name}: devices that got the bad image"),
            format!("≤ first wave ({first}) + in flight at the stop"),
            format!(
                "{} ({} in flight at the stop, {} after it; stopped: {})",
                o.notified,
                o.in_flight_at_stop,
                o.notified_after_stop,
                o.reason_code.as_deref().unwrap_or("no")
            ),
            met,
            opts.short,
        ));
    }
    let good = &outs[2].1;
    targets.push(Target::new(
        "good release: reaches every device and FINISHES",
        format!("{n} notified, FINISHED, job COMPLETED"),
        format!(
            "{} notified, {:?}, job {}",
            good.notified,
            good.status,
            good.job_state.map_or("–".into(), |j| format!("{j:?}"))
        ),
        good.notified == n as u64
            && good.status == RolloutStatus::Finished
            && good.job_state == Some(ferrota_lab::rollout_sim::JobState::Completed),
        opts.short,
    ));
    let waves = |o: &Outcome| {
        o.rollout
            .waves
            .iter()
            .map(|w| {
                format!(
                    "{}: {}/{} notified, {} failed",
                    w.name,
                    w.number_of_notified_things,
                    w.number_of_things,
                    w.number_of_failed_things
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    Ok(Report {
        scenario: Scenario::Rollout,
        title: format!(
            "staged rollout to {n} simulated devices, waves 1% → 10% → 100%, error threshold {ERROR_PCT:.0}%"
        ),
        short: opts.short,
        table,
        targets,
        notes: vec![
            "The real services, rollout engine and SQLite store (WAL, synchronous=FULL, in a \
             temporary directory) on virtual time: each device accepts its execution at once \
             (IN_PROGRESS) and reports FAILED or SUCCEEDED after a seeded 60–180 s; the \
             engine steps once per virtual second in which devices reported (a batch, as \
             `ferrota serve`'s runner takes what finished every 100 ms) and at its own next \
             time."
                .into(),
            "Engine CPU: process CPU time inside the server's code only (the create, every \
             engine step, every device update's handling, SQLite's worker threads included), \
             divided by the devices notified; wall is the real time of the rollout."
                .into(),
            format!("Waves, bad release: {}.", waves(&outs[0].1)),
            format!("Waves, good release: {}.", waves(good)),
            format!(
                "Engine steps alone (CPU per notified device): good release in memory {} µs, \
                 on SQLite ({} devices) {} µs; the rest is the devices' updates.",
                us((good.notified > 0).then(|| good.step_cpu / good.notified as u32)),
                outs[3].1.notified,
                us((outs[3].1.notified > 0)
                    .then(|| outs[3].1.step_cpu / outs[3].1.notified as u32)),
            ),
        ],
        data: json!({
            "devices": n,
            "failing_fraction": FAILING,
            "error_threshold_percentage": ERROR_PCT,
            "bad": outcome_json(&outs[0].1),
            "bad_rate_limited": outcome_json(&outs[1].1),
            "good": outcome_json(good),
            "good_sqlite": outcome_json(&outs[3].1),
        }),
    })
}
