//! `ferrota demo`: the whole seed system in one process, step by step, ending with a table.
//! Each step is a function over a [`World`] so the end-to-end tests run them one by one.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ferrota_boot::Bank;
use ferrota_boot::app::ImageState;
use ferrota_image::FirmwareVersion;

use crate::images::{DemoImage, Tamper};
use crate::lab::{self, Lab, LabError};
use ferrota_device::board::{Board, BoardEvent, Options, SelfTest};

/// The demo's thing.
pub const THING: &str = "t2g-board-1";
/// Longest a step may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// The images of the demo.
pub struct Images {
    /// v1.0.0 (counter 1), programmed at the factory.
    pub v1_0: DemoImage,
    /// v1.1.0 (counter 2).
    pub v1_1: DemoImage,
    /// v1.2.0 with one byte changed after signing.
    pub v1_2_tampered: DemoImage,
    /// v1.2.0 (counter 3).
    pub v1_2: DemoImage,
    /// v1.3.0 (counter 4): v1.1.0 with a small fix, what step 8's delta rebuilds.
    pub v1_3: DemoImage,
}

/// The lab, the images and the board.
pub struct World {
    /// Server, CA, keys.
    pub lab: Lab,
    /// Images.
    pub images: Images,
    /// The board.
    pub board: Board,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Step number.
    pub step: u8,
    /// What it shows.
    pub title: &'static str,
    /// What happened.
    pub outcome: String,
    /// Whether it behaved as the demo says.
    pub ok: bool,
    /// Simulated flash time on the device.
    pub sim: Duration,
    /// Wall time.
    pub wall: Duration,
    /// Stream bytes received by the device.
    pub bytes: u64,
}

fn v(minor: u8) -> FirmwareVersion {
    FirmwareVersion::new(1, minor, 0)
}

/// Step 1's set-up: CA, server, thing, keys, images; v1.0.0 programmed into bank 0.
pub async fn setup(quiet: bool) -> Result<World, LabError> {
    let lab = Lab::start().await?;
    let v1_1 = lab.image(1, 2, Tamper::None)?;
    let images = Images {
        v1_0: lab.image(0, 1, Tamper::None)?,
        v1_3: lab.release(&v1_1, 3, 4)?,
        v1_1,
        v1_2_tampered: lab.image(2, 3, Tamper::AfterSigning)?,
        v1_2: lab.image(2, 3, Tamper::None)?,
    };
    let (dev, cfg) = lab.add_device(THING, &images.v1_0).await?;
    let board = lab::board(
        dev,
        cfg,
        Options {
            quiet,
            progress: !quiet,
            ..Options::default()
        },
    );
    Ok(World { lab, images, board })
}

struct Measure {
    t: Instant,
    sim: Duration,
    bytes: u64,
}

impl Measure {
    fn start(b: &Board) -> Self {
        Measure {
            t: Instant::now(),
            sim: b.dev.now(),
            bytes: b.counters.bytes_in,
        }
    }
    fn report(
        self,
        b: &Board,
        step: u8,
        title: &'static str,
        ok: bool,
        outcome: String,
    ) -> StepReport {
        StepReport {
            step,
            title,
            outcome,
            ok,
            sim: b.dev.now().saturating_sub(self.sim),
            wall: self.t.elapsed(),
            bytes: b.counters.bytes_in - self.bytes,
        }
    }
}

fn booted(e: &BoardEvent, bank: Bank, minor: u8) -> bool {
    matches!(e, BoardEvent::Booted { bank: b, version, .. } if *b == bank && *version == v(minor))
}

fn opts(w: &World) -> Options {
    Options {
        quiet: w.board.opts.quiet,
        progress: w.board.opts.progress,
        self_test_time: w.board.opts.self_test_time,
        ..Options::default()
    }
}

/// 1. First boot of v1.0.0 from bank 0, connected.
pub async fn step1_first_boot(w: &mut World) -> Result<StepReport, LabError> {
    let m = Measure::start(&w.board);
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        e.last() == Some(&BoardEvent::Connected)
    })
    .await?;
    let ok = met && ev.iter().any(|e| booted(e, Bank::Lower, 0));
    Ok(m.report(
        &w.board,
        1,
        "first boot of v1.0.0",
        ok,
        "v1.0.0 boots from bank 0, connects over mutual TLS".into(),
    ))
}

/// 2. OTA to v1.1.0: trial boot of bank 1, self-test, confirm, SUCCEEDED.
pub async fn step2_update(w: &mut World) -> Result<StepReport, LabError> {
    let m = Measure::start(&w.board);
    w.lab.update("v1_1_0", &[THING], &w.images.v1_1).await?;
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        e.last() == Some(&BoardEvent::JobSucceeded)
    })
    .await?;
    let (status, _) = w.lab.terminal_status("v1_1_0", THING).await?;
    let trial = ev.iter().any(|e| {
        matches!(e, BoardEvent::Booted { bank: Bank::Upper, version, image_state: ImageState::PendingCommit } if *version == v(1))
    });
    let ok = met
        && status == "SUCCEEDED"
        && trial
        && ev.contains(&BoardEvent::Activated)
        && ev.iter().any(|e| matches!(e, BoardEvent::Confirmed(_)));
    Ok(m.report(
        &w.board,
        2,
        "OTA update to v1.1.0",
        ok,
        format!("trial boot of bank 1, self-test, confirmed; job {status}"),
    ))
}

/// 3. A tampered v1.2.0: refused before activation, FAILED, still v1.1.0.
pub async fn step3_tampered(w: &mut World) -> Result<StepReport, LabError> {
    let m = Measure::start(&w.board);
    w.lab
        .update("v1_2_0_tampered", &[THING], &w.images.v1_2_tampered)
        .await?;
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        matches!(e.last(), Some(BoardEvent::JobFailed(_)))
    })
    .await?;
    let (status, details) = w.lab.terminal_status("v1_2_0_tampered", THING).await?;
    let ok = met
        && status == "FAILED"
        && !ev.contains(&BoardEvent::Activated)
        && !ev.contains(&BoardEvent::Reset)
        && ev.iter().any(|e| booted(e, Bank::Upper, 1));
    Ok(m.report(
        &w.board,
        3,
        "tampered image",
        ok,
        format!(
            "signature mismatch, not activated; job {status} ({}); still v1.1.0",
            reason(&details)
        ),
    ))
}

/// The job's `statusDetails.reason`, with its words beside AWS's code
/// (`ferrota_proto::reason::explain`).
fn reason(d: &std::collections::BTreeMap<String, String>) -> String {
    match d.get("reason") {
        Some(r) => ferrota_proto::reason::explain(r).map_or_else(|| r.clone(), |e| e.to_string()),
        None => format!("{d:?}"),
    }
}

/// 4. A downgrade to v1.0.0: refused after the CM0+ region, before the rest, with AWS's reason.
pub async fn step4_downgrade(w: &mut World) -> Result<StepReport, LabError> {
    let m = Measure::start(&w.board);
    w.lab
        .update("v1_0_0_downgrade", &[THING], &w.images.v1_0)
        .await?;
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        matches!(e.last(), Some(BoardEvent::JobFailed(_)))
    })
    .await?;
    let (status, details) = w.lab.terminal_status("v1_0_0_downgrade", THING).await?;
    let r = m.report(&w.board, 4, "downgrade to v1.0.0", false, String::new());
    let ok = met
        && status == "FAILED"
        // The 64 KB region, plus at most the agent's lookahead in flight (1 MB, discarded).
        && r.bytes <= 0x1_0000 + 0x10_0000 + 0x1_0000
        && !ev.contains(&BoardEvent::Activated);
    Ok(StepReport {
        ok,
        outcome: format!(
            "refused after the 64 KB CM0+ region: job {status} ({})",
            reason(&details)
        ),
        ..r
    })
}

/// 5. v1.2.0 with a power cut in the middle of the download: resumes, activates.
pub async fn step5_power_cut(w: &mut World) -> Result<StepReport, LabError> {
    let mut o = opts(w);
    o.power_cut_after_blocks = Some(40);
    w.board.set_options(o);
    let m = Measure::start(&w.board);
    let written = w.board.counters.blocks_written;
    w.lab.update("v1_2_0", &[THING], &w.images.v1_2).await?;
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        e.last() == Some(&BoardEvent::Reset)
    })
    .await?;
    let o = opts(w);
    w.board.set_options(o);
    let resumed = ev.iter().find_map(|e| match e {
        BoardEvent::DownloadStarted { resumed, .. } if *resumed > 0 => Some(*resumed),
        _ => None,
    });
    let r = m.report(&w.board, 5, "power cut mid-download", false, String::new());
    let ok = met
        && ev.contains(&BoardEvent::PowerCut)
        && resumed.is_some()
        && ev.contains(&BoardEvent::Activated)
        && resumed.is_some_and(|k| k >= 32)
        && w.board.counters.blocks_written - written < 1016 + 40;
    Ok(StepReport {
        ok,
        outcome: format!(
            "cut after 40 blocks; rebooted v1.1.0, resumed with {} of 1016 blocks kept; activated",
            resumed.unwrap_or(0)
        ),
        ..r
    })
}

/// 6. v1.2.0's self-test fails: the DBM boots v1.1.0 again at once, FAILED.
pub async fn step6_self_test_fails(w: &mut World) -> Result<StepReport, LabError> {
    let mut o = opts(w);
    o.self_test = SelfTest::Fails;
    w.board.set_options(o);
    let m = Measure::start(&w.board);
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        e.iter().any(|x| matches!(x, BoardEvent::JobFailed(_)))
            && e.last().is_some_and(|x| booted(x, Bank::Upper, 1))
    })
    .await?;
    let o = opts(w);
    w.board.set_options(o);
    let (status, details) = w.lab.terminal_status("v1_2_0", THING).await?;
    // v1.1.0 runs again as the valid image (AWS PAL state Valid), and the rejected bank is
    // locked: the marker log says so, not just the job.
    let back_valid = ev.last().is_some_and(|e| {
        matches!(e, BoardEvent::Booted { bank: Bank::Upper, version, image_state: ImageState::Valid } if *version == v(1))
    });
    let locked = ferrota_sim::boot_chain::report(&w.board.dev)
        .is_ok_and(|r| r.banks[0].mark == ferrota_sim::boot_chain::BankMark::Locked);
    let ok = met
        && status == "FAILED"
        && ev.contains(&BoardEvent::Rejected)
        && ev.iter().any(|e| booted(e, Bank::Lower, 2))
        && back_valid
        && locked;
    Ok(m.report(
        &w.board,
        6,
        "v1.2.0 fails its self-test",
        ok,
        format!(
            "trial of bank 0 rejected and locked; v1.1.0 boots again (image state {}); job {status} ({})",
            if back_valid { "Valid" } else { "not Valid" },
            reason(&details)
        ),
    ))
}

/// Step 7, USER1 held at reset: bank 0 preferred, as in the seed; but bank 0 holds the v1.2.0
/// that step 6 rejected, which is locked, so v1.1.0 in bank 1 runs (the seed booted the
/// rejected one).
pub async fn step7_user1(w: &mut World) -> Result<StepReport, LabError> {
    let mut o = opts(w);
    o.user1 = true;
    w.board.set_options(o);
    let m = Measure::start(&w.board);
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        matches!(e.last(), Some(BoardEvent::Booted { .. }))
    })
    .await?;
    let o = opts(w);
    w.board.set_options(o);
    let what = ev.iter().rev().find_map(|e| match e {
        BoardEvent::Booted {
            bank,
            version,
            image_state,
        } => Some((*bank, *version, *image_state)),
        _ => None,
    });
    let ok = met && what == Some((Bank::Upper, v(1), ImageState::Valid));
    Ok(m.report(
        &w.board,
        7,
        "USER1 held at reset",
        ok,
        match what {
            Some((b, ver, st)) => format!(
                "the DBM prefers bank 0 (manual override), but bank 0 holds the rejected v1.2.0 (locked): the {b} bank runs v{ver}, image state {st:?}"
            ),
            None => "nothing booted".into(),
        },
    ))
}

/// Step 8's target: a delta moves at most this share of the full image's bytes (issue 19).
pub const DELTA_MAX_SHARE: f64 = 0.05;

/// Step 8, v1.3.0 (v1.1.0 with a small fix) as a delta from the running bank: the update
/// carries a delta from v1.1.0 (`deltaFrom`), the server offers it because the board reports
/// v1.1.0, the agent hashes its running bank against the delta's base before writing, rebuilds
/// v1.3.0 into bank 0 from bank 1 and the delta, and the image goes through the checks of a
/// full download. `ok` only if the delta was the file fetched, the job SUCCEEDED with v1.3.0
/// on trial in bank 0, and the bytes moved are at most [`DELTA_MAX_SHARE`] of the image.
pub async fn step8_delta(w: &mut World) -> Result<StepReport, LabError> {
    let m = Measure::start(&w.board);
    w.lab
        .update_from("v1_3_0", &[THING], &w.images.v1_3, &[&w.images.v1_1])
        .await?;
    let (ev, met) = lab::drive(&mut w.board, STEP_LIMIT, |e| {
        matches!(
            e.last(),
            Some(BoardEvent::JobSucceeded | BoardEvent::JobFailed(_))
        )
    })
    .await?;
    let (status, details) = w.lab.terminal_status("v1_3_0", THING).await?;
    let chosen = ev.iter().find_map(|e| match e {
        BoardEvent::FileChosen { encoding, bytes } => Some((*encoding, *bytes)),
        _ => None,
    });
    let trial = ev.iter().any(|e| {
        matches!(e, BoardEvent::Booted { bank: Bank::Lower, version, image_state: ImageState::PendingCommit } if *version == v(3))
    });
    let r = m.report(&w.board, 8, "delta update to v1.3.0", false, String::new());
    let full = w.images.v1_3.file.len() as u64;
    let share = r.bytes as f64 / full as f64;
    let ok = met
        && status == "SUCCEEDED"
        && trial
        && chosen.is_some_and(|c| c.0 == ferrota_agent::FileEncoding::Delta)
        && share <= DELTA_MAX_SHARE;
    let outcome = match chosen {
        Some((enc, bytes)) => format!(
            "{} of {bytes} bytes from v1.1.0's bank: {} bytes moved, {:.2}% of step 2's \
             {full}; rebuilt in bank 0, verified, confirmed; job {status}{}",
            enc.as_str(),
            r.bytes,
            share * 100.0,
            if status == "SUCCEEDED" {
                String::new()
            } else {
                format!(" ({})", reason(&details))
            }
        ),
        None => format!("no file was fetched; job {status} ({})", reason(&details)),
    };
    Ok(StepReport { ok, outcome, ..r })
}

/// Devices of step 9's simulated fleet.
pub const CANARY_FLEET: usize = 200;
/// Share of them step 9's bad release fails on.
pub const CANARY_FAILING: f64 = 0.30;
/// Step 9's canary wave, percent of the fleet.
pub const CANARY_PERCENT: f64 = 5.0;
/// Failures in the canary that stop step 9's rollout (`errorThresholdCount`).
pub const CANARY_ERRORS: u64 = 3;

/// The rollout step 9 runs: [`CANARY_FLEET`] simulated devices, a release failing on
/// [`CANARY_FAILING`] of them, a canary wave of [`CANARY_PERCENT`] % that stops everything at
/// [`CANARY_ERRORS`] failures, then the rest (100 %). Seed 5 puts 6 failing devices in the
/// 10-device canary (30 % of it, as of the fleet); with fewer than 3 the canary would neither
/// stop the rollout nor pass its success threshold (100 %), and the rollout would wait for
/// the operator.
pub fn canary_scenario() -> crate::rollout_sim::Scenario {
    use crate::rollout_sim::{Scenario, Wave};
    Scenario::new(CANARY_FLEET, CANARY_FAILING)
        .wave(Wave {
            name: Some("canary".into()),
            percentage: Some(CANARY_PERCENT),
            error_threshold_count: Some(CANARY_ERRORS),
            ..Wave::default()
        })
        .wave(Wave {
            name: Some("everyone".into()),
            percentage: Some(100.0),
            ..Wave::default()
        })
        .seed(5)
}

/// Step 9, a canary wave catches a bad release: a fleet rollout on virtual time through the
/// real server and its rollout engine ([`crate::rollout_sim`]; the board of steps 1–7 is not
/// part of it). `ok` only if the rollout STOPPED with `WAVE_ERROR_THRESHOLD`, no device beyond
/// the canary got the bad image, and none was notified after the stop.
pub async fn step9_canary() -> Result<StepReport, LabError> {
    use crate::rollout_sim::{RolloutStatus, WAVE_ERROR_THRESHOLD, run};
    let t = Instant::now();
    // On a current-thread runtime of its own (a blocking thread), as the simulation is made
    // to run: one thread, so the run is the seed's run.
    let o = tokio::task::spawn_blocking(|| run(&canary_scenario()))
        .await
        .map_err(|e| LabError(format!("step 9: {e}")))?
        .map_err(|e| LabError(format!("step 9: {e}")))?;
    let canary = o.rollout.waves.first().map_or(0, |w| w.number_of_things);
    let ok = o.status == RolloutStatus::Stopped
        && o.reason_code.as_deref() == Some(WAVE_ERROR_THRESHOLD)
        && o.notified <= canary
        && o.notified_after_stop == 0;
    let outcome = if o.status == RolloutStatus::Stopped {
        format!(
            "{CANARY_FLEET} devices, release failing on {:.0}%: the rollout STOPPED ({}) {} s \
             after the first failure; {} devices got the bad image (canary {canary}), {} after \
             the stop, {} never did",
            CANARY_FAILING * 100.0,
            o.reason_code.as_deref().unwrap_or("no reason"),
            o.failure_to_stop().unwrap_or(0),
            o.notified,
            o.notified_after_stop,
            CANARY_FLEET as u64 - o.notified,
        )
    } else {
        format!(
            "the rollout did not stop: {:?}, {} of {CANARY_FLEET} devices got the bad image",
            o.status, o.notified
        )
    };
    Ok(StepReport {
        step: 9,
        title: "canary catches a bad release",
        outcome,
        ok,
        sim: Duration::from_secs(o.ended_at),
        wall: t.elapsed(),
        bytes: 0,
    })
}

/// Runs the nine steps, printing a heading before each; returns the rows.
pub async fn run(quiet: bool) -> Result<Vec<StepReport>, LabError> {
    let t = Instant::now();
    let heading = |s: &str| {
        if !quiet {
            println!("\n=== {s}");
        }
    };
    heading("1. a CA, the server, a thing, boot and code-signing keys; v1.0.0 in bank 0");
    let mut w = setup(quiet).await?;
    let setup_time = t.elapsed();
    let mut rows = Vec::new();
    let mut r = step1_first_boot(&mut w).await?;
    r.wall += setup_time;
    rows.push(r);
    heading("2. OTA update to v1.1.0");
    rows.push(step2_update(&mut w).await?);
    heading("3. a tampered v1.2.0");
    rows.push(step3_tampered(&mut w).await?);
    heading("4. a downgrade to v1.0.0");
    rows.push(step4_downgrade(&mut w).await?);
    heading("5. v1.2.0, with a power cut in the middle of the download");
    rows.push(step5_power_cut(&mut w).await?);
    heading("6. v1.2.0's self-test fails");
    rows.push(step6_self_test_fails(&mut w).await?);
    heading("7. USER1 held at reset");
    rows.push(step7_user1(&mut w).await?);
    heading("8. v1.3.0 (v1.1.0 with a small fix) as a delta from the running bank");
    rows.push(step8_delta(&mut w).await?);
    heading("9. a canary wave catches a bad release (200 simulated devices)");
    rows.push(step9_canary().await?);
    w.lab.shutdown().await;
    Ok(rows)
}

/// The table.
pub fn table(rows: &[StepReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<4} {:<28} {:<4} {:>9} {:>8} {:>9}  outcome",
        "step", "", "ok", "sim", "wall", "bytes"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<4} {:<28} {:<4} {:>7}ms {:>6}ms {:>9}  {}",
            r.step,
            r.title,
            if r.ok { "ok" } else { "FAIL" },
            r.sim.as_millis(),
            r.wall.as_millis(),
            r.bytes,
            r.outcome
        );
    }
    s
}
