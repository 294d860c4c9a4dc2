//! Fleet rollouts from the command line: the rollout settings of `ota create`
//! (`--rollout-json`, `--cli-input-json` and the individual flags, read into AWS's
//! CreateOTAUpdate/CreateJob shapes before anything is sent), and
//! `ferrota rollout status|pause|resume|approve|cancel ID`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use ferrota_api::{
    AbortConfig, AbortCriteria, CreateOtaUpdate, MaintenanceWindow, PageRequest, RetryConfig,
    RetryCriteria, RolloutAction, RolloutConfig, RolloutDescription, RolloutStatus, RolloutWaves,
    SchedulingConfig, TimeoutConfig, Wave,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::otacmd::Api;
use crate::serverargs::ApiArgs;

/// The largest JSON file read (`--rollout-json`, `--cli-input-json`).
const JSON_FILE_MAX: u64 = 1 << 20;

/// The rollout settings of `ota create`. Flags win over `--rollout-json`, which wins over
/// `--cli-input-json`.
#[derive(Debug, Args, Default, Clone)]
pub struct RolloutFlags {
    /// A JSON object with CreateJob's names: jobExecutionsRolloutConfig, abortConfig,
    /// jobExecutionsRetryConfig, schedulingConfig, timeoutConfig, targetSelection (and
    /// CreateOTAUpdate's aws… names), plus Ferrota's rolloutWaves. Unknown keys are refused.
    #[arg(long, value_name = "FILE")]
    pub rollout_json: Option<PathBuf>,
    /// At most N things notified a minute (1-1000; jobExecutionsRolloutConfig.maximumPerMinute).
    #[arg(long, value_name = "N")]
    pub max_per_minute: Option<u64>,
    /// Cancel the job when P % (0-100) of the executed things failed, rejected or timed out
    /// (one abortConfig criteria: ALL, CANCEL). Needs --abort-min-executed.
    #[arg(long, value_name = "P", requires = "abort_min_executed")]
    pub abort_failed_percent: Option<f64>,
    /// …judged once N executions ended (≥ 1; minNumberOfExecutedThings).
    #[arg(long, value_name = "N", requires = "abort_failed_percent")]
    pub abort_min_executed: Option<u64>,
    /// Retry a failed or timed-out execution N times (0-10; jobExecutionsRetryConfig, ALL).
    #[arg(long, value_name = "N")]
    pub retries: Option<u64>,
    /// Start the rollout then (UTC YYYY-MM-DDTHH:MM, 30 min to 1 year ahead).
    #[arg(long, value_name = "TIME")]
    pub start_time: Option<String>,
    /// End the rollout then (UTC YYYY-MM-DDTHH:MM, 30 min to 2 years after the start).
    #[arg(long, value_name = "TIME")]
    pub end_time: Option<String>,
    /// What the end does: STOP_ROLLOUT (default), CANCEL or FORCE_CANCEL.
    #[arg(long, value_name = "BEHAVIOR")]
    pub end_behavior: Option<String>,
    /// Notify only inside this window: 'cron(min hour day-of-month month day-of-week year)=MINUTES'
    /// (UTC, AWS's cron, 1-1430 minutes). Repeatable.
    #[arg(long = "maintenance-window", value_name = "CRON=MINUTES")]
    pub maintenance_windows: Vec<String>,
    /// targetSelection CONTINUOUS: things that join a target group later get the update too.
    #[arg(long)]
    pub continuous: bool,
    /// A gated wave, in order (repeatable): NAME:SIZE[:OPTION]… where SIZE is N% (cumulative
    /// share of the targets), N (this many more) or group=GROUP, and OPTION is success=P,
    /// errors=P% or errors=N, approve.
    #[arg(long = "wave", value_name = "SPEC")]
    pub waves: Vec<String>,
}

/// `--rollout-json`: CreateJob's rollout keys (and CreateOTAUpdate's `aws…` names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RolloutJson {
    #[serde(default, alias = "awsJobExecutionsRolloutConfig")]
    job_executions_rollout_config: Option<RolloutConfig>,
    #[serde(default, alias = "awsJobAbortConfig")]
    abort_config: Option<AbortConfig>,
    #[serde(default)]
    job_executions_retry_config: Option<RetryConfig>,
    #[serde(default)]
    scheduling_config: Option<SchedulingConfig>,
    #[serde(default, alias = "awsJobTimeoutConfig")]
    timeout_config: Option<TimeoutConfig>,
    #[serde(default)]
    target_selection: Option<String>,
    #[serde(default)]
    rollout_waves: Option<RolloutWaves>,
}

/// Reads a JSON file (bounded), its errors naming the file, line and column.
fn read_json(path: &Path, what: &str) -> Result<Value> {
    let bytes = crate::fsio::read(path, JSON_FILE_MAX)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow!("{}: {what}: not JSON: {e}", path.display()))?;
    if !v.is_object() {
        bail!("{}: {what}: expected a JSON object", path.display());
    }
    Ok(v)
}

/// `--cli-input-json`: the request's fields as a JSON object (checked in full by
/// [`build_request`], after the command line's fields are laid over it).
pub fn read_cli_input(path: &Path) -> Result<Map<String, Value>> {
    match read_json(path, "--cli-input-json")? {
        Value::Object(m) => Ok(m),
        _ => unreachable!("read_json returns objects"),
    }
}

/// Lays the rollout settings of `--rollout-json` and the flags over `req` (flags last).
pub fn apply(flags: &RolloutFlags, req: &mut CreateOtaUpdate) -> Result<()> {
    if let Some(path) = &flags.rollout_json {
        let v = read_json(path, "--rollout-json")?;
        let j: RolloutJson = serde_json::from_value(v)
            .map_err(|e| anyhow!("{}: --rollout-json: {e}", path.display()))?;
        if j.job_executions_rollout_config.is_some() {
            req.aws_job_executions_rollout_config = j.job_executions_rollout_config;
        }
        if j.abort_config.is_some() {
            req.aws_job_abort_config = j.abort_config;
        }
        if j.job_executions_retry_config.is_some() {
            req.job_executions_retry_config = j.job_executions_retry_config;
        }
        if j.scheduling_config.is_some() {
            req.scheduling_config = j.scheduling_config;
        }
        if j.timeout_config.is_some() {
            req.aws_job_timeout_config = j.timeout_config;
        }
        if j.target_selection.is_some() {
            req.target_selection = j.target_selection;
        }
        if j.rollout_waves.is_some() {
            req.rollout_waves = j.rollout_waves;
        }
    }
    if let Some(n) = flags.max_per_minute {
        req.aws_job_executions_rollout_config
            .get_or_insert_with(RolloutConfig::default)
            .maximum_per_minute = Some(n);
    }
    if let (Some(p), Some(n)) = (flags.abort_failed_percent, flags.abort_min_executed) {
        req.aws_job_abort_config = Some(AbortConfig {
            criteria_list: vec![AbortCriteria {
                failure_type: "ALL".into(),
                action: "CANCEL".into(),
                threshold_percentage: p,
                min_number_of_executed_things: n,
            }],
        });
    }
    if let Some(n) = flags.retries {
        req.job_executions_retry_config = Some(RetryConfig {
            criteria_list: vec![RetryCriteria {
                failure_type: "ALL".into(),
                number_of_retries: n,
            }],
        });
    }
    let sched_flags = flags.start_time.is_some()
        || flags.end_time.is_some()
        || flags.end_behavior.is_some()
        || !flags.maintenance_windows.is_empty();
    if sched_flags {
        let s = req
            .scheduling_config
            .get_or_insert_with(SchedulingConfig::default);
        if let Some(t) = &flags.start_time {
            s.start_time = Some(t.clone());
        }
        if let Some(t) = &flags.end_time {
            s.end_time = Some(t.clone());
        }
        if let Some(b) = &flags.end_behavior {
            s.end_behavior = Some(b.clone());
        }
        if !flags.maintenance_windows.is_empty() {
            s.maintenance_windows = flags
                .maintenance_windows
                .iter()
                .map(|w| parse_window(w))
                .collect::<Result<_>>()?;
        }
    }
    if flags.continuous {
        req.target_selection = Some("CONTINUOUS".into());
    }
    if !flags.waves.is_empty() {
        req.rollout_waves = Some(RolloutWaves {
            waves: flags
                .waves
                .iter()
                .map(|w| parse_wave(w))
                .collect::<Result<_>>()?,
        });
    }
    Ok(())
}

/// Checks the rollout settings as the server will (AWS's ranges and messages), less the
/// checks against the clock (the server's clock judges start and end times), so a mistake is
/// reported before the firmware is uploaded.
pub fn check(req: &CreateOtaUpdate) -> Result<()> {
    use ferrota_server::rollout::config::JobConfig;
    JobConfig::from_request(req)
        .parsed()
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

/// `--maintenance-window 'cron(0 2 * * ? *)=60'`.
pub fn parse_window(s: &str) -> Result<MaintenanceWindow> {
    let (cron, minutes) = s.rsplit_once('=').ok_or_else(|| {
        anyhow!("--maintenance-window {s:?}: expected 'cron(min hour dom month dow year)=MINUTES'")
    })?;
    let minutes: u64 = minutes.trim().parse().map_err(|_| {
        anyhow!("--maintenance-window {s:?}: {minutes:?} is not a number of minutes (1-1430)")
    })?;
    ferrota_server::rollout::window::parse_cron(cron.trim())
        .map_err(|e| anyhow!("--maintenance-window {s:?}: {e}"))?;
    Ok(MaintenanceWindow {
        start_time: cron.trim().to_string(),
        duration_in_minutes: minutes,
    })
}

/// `--wave NAME:SIZE[:OPTION]…` (see `ota create --help`; [`ferrota_api::wavespec`]).
pub fn parse_wave(spec: &str) -> Result<Wave> {
    ferrota_api::wavespec::parse_wave(spec).map_err(|e| anyhow!("--wave {spec:?}: {e}"))
}

/// Builds the `ota create` request before anything is sent: `--cli-input-json` (if any), the
/// command line's id, targets, description and timeout over it, then the rollout settings;
/// every field read with the API's own types (unknown keys refused, named) and the rollout
/// settings checked. `files` is left as the JSON had it (empty without it); the caller puts
/// the uploaded file in.
pub struct CreateParts<'a> {
    /// `--cli-input-json`.
    pub cli_input: Option<&'a Path>,
    /// The positional id.
    pub id: Option<&'a str>,
    /// `--thing`.
    pub things: &'a [String],
    /// `--group`.
    pub groups: &'a [String],
    /// `--description`.
    pub description: Option<&'a str>,
    /// `--in-progress-timeout`.
    pub in_progress_timeout: Option<u64>,
    /// Whether `--file` is given (its upload replaces the JSON's `files`).
    pub file_given: bool,
    /// The rollout flags.
    pub rollout: &'a RolloutFlags,
}

/// See [`CreateParts`].
pub fn build_request(p: &CreateParts<'_>) -> Result<CreateOtaUpdate> {
    let mut m = match p.cli_input {
        Some(path) => read_cli_input(path)?,
        None => Map::new(),
    };
    if let Some(id) = p.id {
        m.insert("otaUpdateId".into(), Value::String(id.to_string()));
    }
    if !m.contains_key("otaUpdateId") {
        bail!("give the otaUpdateId (the first argument, or otaUpdateId in --cli-input-json)");
    }
    if p.file_given || !m.contains_key("files") {
        m.insert("files".into(), Value::Array(Vec::new()));
    }
    if !m.contains_key("targets") {
        m.insert("targets".into(), Value::Array(Vec::new()));
    }
    let from = p
        .cli_input
        .map(|p| format!("{}: --cli-input-json", p.display()))
        .unwrap_or_else(|| "request".into());
    let mut req: CreateOtaUpdate =
        serde_json::from_value(Value::Object(m)).map_err(|e| anyhow!("{from}: {e}"))?;
    if !p.things.is_empty() || !p.groups.is_empty() {
        let mut r = CreateOtaUpdate::new(&req.ota_update_id);
        for t in p.things {
            r = r.thing(t);
        }
        for g in p.groups {
            r = r.thing_group(g);
        }
        req.targets = r.targets;
    }
    if req.targets.is_empty() {
        bail!("give at least one --thing or --group (or targets in --cli-input-json)");
    }
    if let Some(d) = p.description {
        req.description = d.to_string();
    }
    if let Some(m) = p.in_progress_timeout {
        req.aws_job_timeout_config = Some(TimeoutConfig {
            in_progress_timeout_in_minutes: m,
        });
    }
    apply(p.rollout, &mut req)?;
    check(&req)?;
    if !p.file_given && req.files.is_empty() {
        bail!("give --file (or files in --cli-input-json)");
    }
    Ok(req)
}

/// `ferrota rollout …`
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// A rollout's progress per wave (a table; --json for the description; --watch to follow it).
    #[command(after_help = "\
Examples:
  ferrota rollout status rel-2            # one table
  ferrota rollout status rel-2 --watch    # redrawn every 2 s until the rollout is done
  ferrota rollout status rel-2 --json     # GET /api/rollouts/rel-2 as JSON

Columns: wave, things in it, notified, succeeded, failed (FAILED, REJECTED or TIMED_OUT with no
retry left), whether it is open, and a bar (# succeeded, x failed, - notified and running).")]
    Status(RolloutStatusArgs),
    /// Stop notifying new executions (those already notified go on).
    #[command(after_help = "Example:\n  ferrota rollout pause rel-2")]
    Pause(RolloutIdArgs),
    /// Go on after a pause.
    #[command(after_help = "Example:\n  ferrota rollout resume rel-2")]
    Resume(RolloutIdArgs),
    /// Open the next wave of a rollout that waits for approval.
    #[command(after_help = "Example:\n  ferrota rollout approve rel-2")]
    Approve(RolloutIdArgs),
    /// Cancel the rollout's job (queued executions; in-progress ones too with --force).
    #[command(after_help = "Example:\n  ferrota rollout cancel rel-2 --force")]
    Cancel(RolloutCancelArgs),
}

/// `rollout status`
#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    /// otaUpdateId.
    pub id: String,
    /// Print the description as JSON.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Redraw every 2 s until the rollout is STOPPED or FINISHED and no execution is queued or
    /// in progress (on a terminal; otherwise a table is printed each time it changes).
    #[arg(long)]
    pub watch: bool,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `rollout pause|resume|approve`
#[derive(Debug, Args)]
pub struct RolloutIdArgs {
    /// otaUpdateId.
    pub id: String,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `rollout cancel`
#[derive(Debug, Args)]
pub struct RolloutCancelArgs {
    /// otaUpdateId.
    pub id: String,
    /// Also cancel IN_PROGRESS executions.
    #[arg(long)]
    pub force: bool,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a `rollout` command.
pub fn run(c: RolloutCommand) -> Result<()> {
    let (args, action) = match c {
        RolloutCommand::Status(a) => return status(&a),
        RolloutCommand::Pause(a) => (a, RolloutAction::Pause),
        RolloutCommand::Resume(a) => (a, RolloutAction::Resume),
        RolloutCommand::Approve(a) => (a, RolloutAction::Approve),
        RolloutCommand::Cancel(a) => (
            RolloutIdArgs {
                id: a.id,
                api: a.api,
            },
            RolloutAction::Cancel { force: a.force },
        ),
    };
    let api = Api::new(&args.api)?;
    let d = api.run(|c| c.rollout_action(&args.id, action))?;
    print!("{}", table(&d));
    Ok(())
}

fn status(a: &RolloutStatusArgs) -> Result<()> {
    let api = Api::new(&a.api)?;
    let d = api.run(|c| c.describe_rollout(&a.id))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    if !a.watch {
        print!("{}", table(&d));
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut d = d;
    loop {
        let t = table(&d);
        if tty {
            // Clear the screen and redraw in place.
            print!("\x1b[2J\x1b[H{t}");
        } else if t != last {
            println!("{t}");
        }
        last = t;
        if done(&api, &d)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(2));
        d = api.run(|c| c.describe_rollout(&a.id))?;
    }
}

/// Whether a watch may end: the rollout no longer notifies, and no execution is queued or in
/// progress (the job's counters, one small page).
fn done(api: &Api, d: &RolloutDescription) -> Result<bool> {
    if !matches!(d.status, RolloutStatus::Stopped | RolloutStatus::Finished) {
        return Ok(false);
    }
    let page = PageRequest {
        max_results: Some(1),
        next_token: None,
    };
    let o = api
        .run(|c| c.describe_ota_update(&d.ota_update_id, &page))
        .context("reading the job's counters")?;
    let p = &o.job_process_details;
    Ok(p.number_of_queued_things == 0 && p.number_of_in_progress_things == 0)
}

/// The width of a progress bar, characters.
const BAR: u64 = 20;

/// The status table (ends with a newline).
pub fn table(d: &RolloutDescription) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let status = serde_json::to_value(d.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = write!(
        s,
        "rollout {} (job {}): {status}",
        d.ota_update_id, d.job_id
    );
    if let Some(r) = &d.reason_code {
        let _ = write!(s, " — {r}");
    }
    if let Some(c) = &d.comment {
        let _ = write!(s, ": {c}");
    }
    s.push('\n');
    match d.rate_per_minute {
        Some(r) => {
            let _ = write!(s, "rate: {r}/min");
        }
        None => s.push_str("rate: unlimited"),
    }
    if let Some(t) = d.next_release_at {
        let _ = write!(s, ", next release at {}", utc(t));
    }
    s.push('\n');
    let name_w = d
        .waves
        .iter()
        .map(|w| w.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "  {:<name_w$} {:>8} {:>8} {:>9} {:>6} {:>4}  progress",
        "wave", "things", "notified", "succeeded", "failed", "open"
    );
    for (i, w) in d.waves.iter().enumerate() {
        let mark = if i as u32 == d.current_wave { '>' } else { ' ' };
        let _ = writeln!(
            s,
            "{mark} {:<name_w$} {:>8} {:>8} {:>9} {:>6} {:>4}  {}",
            w.name,
            w.number_of_things,
            w.number_of_notified_things,
            w.number_of_succeeded_things,
            w.number_of_failed_things,
            if w.open { "yes" } else { "no" },
            bar(
                w.number_of_things,
                w.number_of_notified_things,
                w.number_of_succeeded_things,
                w.number_of_failed_things
            )
        );
    }
    s
}

/// `[####xx--      ]`: succeeded, failed, notified and running, not yet notified.
fn bar(things: u64, notified: u64, succeeded: u64, failed: u64) -> String {
    let width = BAR as usize;
    let cells = |n: u64| {
        (n.min(things) * BAR)
            .checked_div(things)
            .map_or(0, |c| c as usize)
    };
    let ok = cells(succeeded);
    let bad = cells(failed).min(width - ok);
    let running = cells(notified)
        .saturating_sub(ok + bad)
        .min(width - ok - bad);
    let rest = width - ok - bad - running;
    format!(
        "[{}{}{}{}]",
        "#".repeat(ok),
        "x".repeat(bad),
        "-".repeat(running),
        " ".repeat(rest)
    )
}

fn utc(t: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t as i64)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::WaveProgress;

    #[test]
    fn wave_specs() {
        let w = parse_wave("canary:1%:success=95:errors=5%:approve").unwrap();
        assert_eq!(w.name.as_deref(), Some("canary"));
        assert_eq!(w.percentage, Some(1.0));
        assert_eq!(w.success_threshold_percentage, Some(95.0));
        assert_eq!(w.error_threshold_percentage, Some(5.0));
        assert!(w.requires_approval);
        let w = parse_wave("lab:group=lab-boards:errors=3").unwrap();
        assert_eq!(w.thing_group.as_deref(), Some("lab-boards"));
        assert_eq!(w.error_threshold_count, Some(3));
        let w = parse_wave("next:50").unwrap();
        assert_eq!(w.count, Some(50));
        for bad in [
            "",
            "canary",
            ":1%",
            "canary:x%",
            "canary:ten",
            "canary:1%:errors=x",
            "canary:1%:success=abc",
            "canary:1%:wait",
            "canary:inf%",
        ] {
            let e = parse_wave(bad).unwrap_err().to_string();
            assert!(
                e.contains("--wave") && e.contains("NAME:SIZE"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn window_specs() {
        let w = parse_window("cron(0 2 * * ? *)=60").unwrap();
        assert_eq!(w.start_time, "cron(0 2 * * ? *)");
        assert_eq!(w.duration_in_minutes, 60);
        for bad in ["cron(0 2 * * ? *)", "cron(0 2 * * ? *)=x", "0 2 * * *=60"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_build_aws_shapes_and_are_checked() {
        let flags = RolloutFlags {
            max_per_minute: Some(50),
            abort_failed_percent: Some(10.0),
            abort_min_executed: Some(20),
            retries: Some(2),
            end_behavior: Some("CANCEL".into()),
            maintenance_windows: vec!["cron(0 22 ? * MON-FRI *)=240".into()],
            continuous: true,
            waves: vec!["canary:1%".into(), "all:100%".into()],
            ..RolloutFlags::default()
        };
        let mut req = CreateOtaUpdate::new("x").thing("t");
        apply(&flags, &mut req).unwrap();
        check(&req).unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["awsJobExecutionsRolloutConfig"]["maximumPerMinute"], 50);
        assert_eq!(
            v["awsJobAbortConfig"]["abortCriteriaList"][0]["failureType"],
            "ALL"
        );
        assert_eq!(
            v["jobExecutionsRetryConfig"]["criteriaList"][0]["numberOfRetries"],
            2
        );
        assert_eq!(v["targetSelection"], "CONTINUOUS");
        assert_eq!(v["rolloutWaves"]["waves"][1]["percentage"], 100.0);
        let bad = RolloutFlags {
            max_per_minute: Some(2000),
            ..RolloutFlags::default()
        };
        let mut req = CreateOtaUpdate::new("x").thing("t");
        apply(&bad, &mut req).unwrap();
        let e = check(&req).unwrap_err().to_string();
        assert!(
            e.contains("Value '2000' at 'awsJobExecutionsRolloutConfig.maximumPerMinute'"),
            "{e}"
        );
    }

    #[test]
    fn table_and_bar() {
        let d = RolloutDescription {
            ota_update_id: "rel-2".into(),
            job_id: "AFR_OTA-rel-2".into(),
            status: RolloutStatus::WaitingForApproval,
            reason_code: None,
            comment: None,
            current_wave: 0,
            waves: vec![WaveProgress {
                name: "canary".into(),
                number_of_things: 10,
                number_of_notified_things: 10,
                number_of_succeeded_things: 5,
                number_of_failed_things: 1,
                open: true,
            }],
            rate_per_minute: Some(50),
            next_release_at: None,
        };
        let t = table(&d);
        assert!(t.contains("WAITING_FOR_APPROVAL"), "{t}");
        assert!(t.contains("[##########xx--------]"), "{t}");
        assert_eq!(bar(0, 0, 0, 0), format!("[{}]", " ".repeat(20)));
        assert_eq!(bar(4, 4, 4, 0), format!("[{}]", "#".repeat(20)));
    }
}
