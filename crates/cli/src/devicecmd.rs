//! `ferrota device run`: a simulated board from a device file and a `device.toml`, until
//! Ctrl-C (or `--exit-after` an outcome); a thin wrapper over `ferrota_device::board`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ferrota_device::board::{Board, BoardEvent, Exit, Options, SelfTest, status_reason};
use ferrota_device::config::DeviceConfig;
use ferrota_t2g::Device;

/// `ferrota device ...`
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Power the board on: boot chain, then the OTA agent over MQTT with mutual TLS.
    #[command(after_help = "\
Examples:
  ferrota device run --config bundle/dev-1/device.toml --flash dev.flash
  ferrota device run --config device.toml --flash dev.flash --user1
  ferrota device run --config device.toml --flash dev.flash --fail-self-test --exit-after job
  ferrota device run --config device.toml --flash dev.flash --exit-after job --json | jq .event

With --exit-after job the exit status is 0 when the job SUCCEEDED and 1 when it FAILED (the
reason, code and words, on stderr).

The device file is made by `ferrota t2g new` and `ferrota t2g program`; device.toml is written
by `ferrota thing create` (add code-signing.crt.pem to the bundle). The file is saved at every
reset and on exit.")]
    Run(RunArgs),
}

/// When `device run` stops by itself.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExitAfter {
    /// After the first boot connected.
    Connect,
    /// After an OTA job ended and the board runs again: exit status 0 when it SUCCEEDED, 1 with
    /// the reason (code and words) when it FAILED.
    Job,
}

/// `ferrota device run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The device configuration (device.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// The device file (ferrota t2g new).
    #[arg(long)]
    pub flash: PathBuf,
    /// Hold USER1 at every reset (the DBM prefers bank 0).
    #[arg(long)]
    pub user1: bool,
    /// Testing aid: cut the power before flash operation N (counted from power-on).
    #[arg(long, value_name = "N")]
    pub power_cut_at: Option<u64>,
    /// Testing aid: cut the power once N blocks of a download are written.
    #[arg(long, value_name = "N")]
    pub power_cut_after_blocks: Option<u32>,
    /// Testing aid: the application's self-test fails.
    #[arg(long)]
    pub fail_self_test: bool,
    /// Testing aid: an image under trial crashes before reaching the network.
    #[arg(long)]
    pub crash_on_trial: bool,
    /// Stop by itself after this.
    #[arg(long, value_enum)]
    pub exit_after: Option<ExitAfter>,
    /// Give up after this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Print the board's events instead of its log: one JSON object per line on stdout, with
    /// camelCase keys and an RFC 3339 `timestamp` (booted, connected, jobReceived, progress,
    /// activated, reset, jobFinished with status and reason, ...). Errors still go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// One board event as a JSON object (the `--json` stream); `timestamp` is RFC 3339 UTC.
pub fn event_json(e: &BoardEvent, at: time::OffsetDateTime) -> serde_json::Value {
    use serde_json::json;
    let bank = |b: &ferrota_boot::Bank| match b {
        ferrota_boot::Bank::Lower => "lower",
        ferrota_boot::Bank::Upper => "upper",
    };
    let mut v = match e {
        BoardEvent::Booted {
            bank: b,
            version,
            image_state,
        } => json!({"event": "booted", "bank": bank(b), "version": version.to_string(),
                    "imageState": format!("{image_state:?}")}),
        BoardEvent::Halted(why) => json!({"event": "halted", "reason": why}),
        BoardEvent::Crashed => json!({"event": "crashed"}),
        BoardEvent::Connected => json!({"event": "connected"}),
        BoardEvent::Disconnected => json!({"event": "disconnected"}),
        BoardEvent::JobReceived { job_id } => json!({"event": "jobReceived", "jobId": job_id}),
        BoardEvent::FileChosen { encoding, bytes } => {
            json!({"event": "fileChosen", "encoding": encoding.as_str(), "bytes": bytes})
        }
        BoardEvent::DownloadStarted { blocks, resumed } => {
            json!({"event": "downloadStarted", "blocks": blocks, "resumedBlocks": resumed})
        }
        BoardEvent::Progress { received, total } => {
            json!({"event": "progress", "receivedBlocks": received, "totalBlocks": total})
        }
        BoardEvent::VersionAccepted(ver) => {
            json!({"event": "versionAccepted", "version": ver.to_string()})
        }
        BoardEvent::Activated => json!({"event": "activated"}),
        BoardEvent::SelfTestStarted => json!({"event": "selfTestStarted"}),
        BoardEvent::Confirmed(floor) => json!({"event": "confirmed", "floor": floor}),
        BoardEvent::Rejected => json!({"event": "rejected"}),
        BoardEvent::JobSucceeded => json!({"event": "jobFinished", "status": "SUCCEEDED"}),
        BoardEvent::JobFailed(status) => json!({"event": "jobFinished", "status": "FAILED",
            "reason": status_reason(status),
            "statusDocument": serde_json::from_str::<serde_json::Value>(status).ok()}),
        BoardEvent::PowerCut => json!({"event": "powerCut"}),
        BoardEvent::Reset => json!({"event": "reset"}),
    };
    let ts = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    v["timestamp"] = serde_json::Value::String(ts);
    v
}

/// Runs a `device` command.
pub fn run(c: DeviceCommand) -> Result<()> {
    match c {
        DeviceCommand::Run(a) => run_board(&a),
    }
}

fn run_board(a: &RunArgs) -> Result<()> {
    let cfg = DeviceConfig::load(&a.config)?;
    let dev = Device::load(&a.flash).map_err(|e| anyhow::anyhow!("{}: {e}", a.flash.display()))?;
    let opts = Options {
        user1: a.user1,
        power_cut_at_op: a.power_cut_at,
        power_cut_after_blocks: a.power_cut_after_blocks,
        self_test: if a.fail_self_test {
            SelfTest::Fails
        } else {
            SelfTest::Passes
        },
        crash_on_trial: a.crash_on_trial,
        self_test_time: Duration::from_millis(200),
        flash_path: Some(a.flash.clone()),
        progress: !a.json,
        quiet: a.json,
        agent: None,
        // The simulated application handles no other file type: such jobs are declined.
        app_jobs: Default::default(),
    };
    let rt = crate::servecmd::runtime()?;
    let exit_after = a.exit_after;
    let timeout = a.timeout;
    let json = a.json;
    let exit = rt.block_on(async move {
        let mut board = Board::new(dev, Arc::new(cfg), opts);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        board.observe(tx);
        let failed = Arc::new(std::sync::Mutex::new(None::<String>));
        let failed_in = failed.clone();
        let stop = async move {
            // After a job ends the board may still reset (a revert) and reconnect: exit at that
            // reconnection, or once the board has been quiet for a moment (it already runs the
            // image the job left it with).
            const SETTLE: Duration = Duration::from_secs(2);
            let mut settle_until: Option<tokio::time::Instant> = None;
            let deadline = async {
                if timeout == 0 {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(Duration::from_secs(timeout)).await
                }
            };
            tokio::pin!(deadline);
            loop {
                let settle = async {
                    match settle_until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return false,
                    _ = &mut deadline => return true,
                    _ = settle => return false,
                    e = rx.recv() => match (e.inspect(|e| if json {
                        println!("{}", event_json(e, time::OffsetDateTime::now_utc()));
                    }), exit_after) {
                        (None, _) => return false,
                        (Some(BoardEvent::Connected), Some(ExitAfter::Connect)) => return false,
                        (Some(e @ (BoardEvent::JobSucceeded | BoardEvent::JobFailed(_))), Some(ExitAfter::Job)) => {
                            if let Ok(mut f) = failed_in.lock() {
                                *f = match e {
                                    BoardEvent::JobFailed(s) => Some(s),
                                    _ => None,
                                };
                            }
                            settle_until = Some(tokio::time::Instant::now() + SETTLE);
                        }
                        (Some(BoardEvent::Connected), Some(ExitAfter::Job)) if settle_until.is_some() => {
                            return false;
                        }
                        (Some(_), _) => {
                            if let Some(t) = settle_until.as_mut() {
                                *t = tokio::time::Instant::now() + SETTLE;
                            }
                        }
                    }
                }
            }
        };
        let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t2 = timed_out.clone();
        let r = board
            .run(async move {
                if stop.await {
                    t2.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .await;
        let failed = failed.lock().ok().and_then(|mut f| f.take());
        (r, timed_out.load(std::sync::atomic::Ordering::Relaxed), failed)
    });
    match exit {
        (Err(e), _, _) => Err(e).context("the board"),
        (Ok(Exit::Halted(h)), _, _) => bail!("the board halted: {h}"),
        (Ok(Exit::Stopped), true, _) => bail!("timed out"),
        (Ok(Exit::Stopped), false, Some(status)) => bail!(
            "the OTA job FAILED: {}",
            status_reason(&status).unwrap_or(status)
        ),
        (Ok(Exit::Stopped), false, None) => Ok(()),
    }
}
