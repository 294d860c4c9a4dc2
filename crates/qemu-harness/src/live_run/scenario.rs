//! The scenario: its state (the board's console so far, the step counter, the rows), the
//! waits each step makes, each with its bound, and the steps of phases a to e.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::process::{Cli, Qemu, command, qemu_args, stop_child, tail};
use super::report::{Figure, PHASE_A, PHASE_B, PHASE_C, PHASE_D, PHASE_E, PHASE_SETUP, Row};
use super::{LiveError, Options, StepFailure, THING, io};

/// Lines of the board's console quoted in a failure.
const LAST_LINES: usize = 15;

/// The scenario's state: the board's console so far, the step counter, the rows.
pub(super) struct Scenario<'o> {
    opts: &'o Options,
    cli: Cli,
    psram: PathBuf,
    mqtt_port: u16,
    qemu: Option<Qemu>,
    runs: usize,
    history: Vec<String>,
    step: usize,
    phase: &'static str,
    phase_start: Instant,
    pub(super) rows: Vec<Row>,
    pub(super) figures: Vec<Figure>,
    /// What the current step waits for (named when QEMU exits under it).
    waiting: String,
}

impl<'o> Scenario<'o> {
    /// The state before the first phase: the setup (`started` when the run did) in progress.
    pub(super) fn new(
        opts: &'o Options,
        cli: Cli,
        psram: PathBuf,
        mqtt_port: u16,
        started: Instant,
    ) -> Scenario<'o> {
        Scenario {
            opts,
            cli,
            psram,
            mqtt_port,
            qemu: None,
            runs: 0,
            history: Vec::new(),
            step: 0,
            phase: PHASE_SETUP,
            phase_start: started,
            rows: Vec::new(),
            figures: Vec::new(),
            waiting: String::new(),
        }
    }

    fn start_qemu(&mut self) -> Result<(), LiveError> {
        self.runs += 1;
        let args = qemu_args(self.opts, &self.psram, self.mqtt_port);
        let stderr = File::create(self.cli.work.join(format!("qemu-{}.stderr", self.runs)))
            .map_err(io("creating QEMU's stderr file"))?;
        let bound = last_resort(self.opts);
        let mut child = command("timeout", &self.cli.work)
            .args(["-k", "5", &bound.as_secs().to_string(), "qemu-system-arm"])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io("starting `timeout ... qemu-system-arm`"))?;
        let Some(stdout) = child.stdout.take() else {
            stop_child(&mut child);
            return Err(LiveError::Tool {
                command: "qemu-system-arm".into(),
                detail: "no stdout".into(),
            });
        };
        let mut console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cli.work.join("console.log"))
            .map_err(io("opening console.log"))?;
        let _ = writeln!(
            console,
            "--- QEMU run {}: qemu-system-arm {}",
            self.runs,
            args.join(" ")
        );
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        let _ = writeln!(console, "{line}");
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        self.qemu = Some(Qemu { child, lines: rx });
        Ok(())
    }

    pub(super) fn stop_qemu(&mut self) {
        self.qemu = None;
    }

    fn begin(&mut self, phase: &'static str) {
        self.phase = phase;
        self.phase_start = Instant::now();
        println!("== {phase}");
    }

    pub(super) fn end(&mut self, outcome: impl Into<String>) {
        self.rows.push(Row {
            phase: self.phase,
            outcome: outcome.into(),
            wall: self.phase_start.elapsed(),
        });
    }

    fn fail(&self, what: String) -> LiveError {
        let n = self.history.len();
        LiveError::Step(StepFailure {
            number: self.step,
            phase: self.phase,
            what,
            last_lines: self.history[n.saturating_sub(LAST_LINES)..].to_vec(),
        })
    }

    /// The board's next line before `deadline`; `Ok(None)` at the deadline.
    fn next_line(&mut self, deadline: Instant) -> Result<Option<String>, LiveError> {
        let Some(q) = self.qemu.as_mut() else {
            return Err(self.fail("QEMU is not running".into()));
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match q.lines.recv_timeout(wait) {
            Ok(line) => {
                if let Some((name, value)) =
                    line.strip_prefix("fig ").and_then(|f| f.split_once('='))
                {
                    self.figures.push(Figure {
                        phase: self.phase,
                        name: name.trim().to_owned(),
                        value: value.trim().to_owned(),
                    });
                }
                self.history.push(line.clone());
                Ok(Some(line))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                let q = self.qemu.as_mut().map(|q| {
                    let _ = q.child.wait();
                    q.child.try_wait()
                });
                let status = match q {
                    Some(Ok(Some(s))) => s.to_string(),
                    _ => "unknown status".into(),
                };
                let err = std::fs::read_to_string(
                    self.cli.work.join(format!("qemu-{}.stderr", self.runs)),
                )
                .unwrap_or_default();
                self.qemu = None;
                Err(self.fail(format!(
                    "QEMU exited ({status}) while the board was to {}{}",
                    self.waiting,
                    if err.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail(err.trim(), 5))
                    }
                )))
            }
        }
    }

    /// Reads the board's lines for `d` (to keep its console flowing while the server is asked).
    fn pump(&mut self, d: Duration) -> Result<(), LiveError> {
        let until = Instant::now() + d;
        while self.next_line(until)?.is_some() {}
        Ok(())
    }

    /// Waits for a console line matching `pred`; the step fails with `what` after the bound.
    fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, LiveError> {
        self.step += 1;
        self.waiting = what.to_owned();
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        while let Some(line) = self.next_line(deadline)? {
            if pred(&line) {
                println!(
                    "  ok {:>2} {what} ({:.1} s): {line}",
                    self.step,
                    t0.elapsed().as_secs_f64()
                );
                return Ok(line);
            }
        }
        Err(self.fail(format!(
            "the board did not {what} within {} s",
            timeout.as_secs()
        )))
    }

    /// Waits for the line `exact`; fails at once on a line that contradicts it (see
    /// [`contradicts`]: another version booted, the other self-test outcome).
    fn expect_line(&mut self, what: &str, exact: &str) -> Result<String, LiveError> {
        self.step += 1;
        self.waiting = format!("{what} (`{exact}`)");
        let t0 = Instant::now();
        let deadline = t0 + self.opts.step_timeout;
        while let Some(line) = self.next_line(deadline)? {
            if line == exact {
                println!(
                    "  ok {:>2} {what} ({:.1} s): {line}",
                    self.step,
                    t0.elapsed().as_secs_f64()
                );
                return Ok(line);
            }
            if contradicts(exact, &line) {
                return Err(self.fail(format!(
                    "the board did not {what} (`{exact}`): it printed `{line}` instead"
                )));
            }
        }
        Err(self.fail(format!(
            "the board did not {what} (`{exact}`) within {} s",
            self.opts.step_timeout.as_secs()
        )))
    }

    fn expect_prefix(&mut self, what: &str, prefix: &str) -> Result<String, LiveError> {
        let t = self.opts.step_timeout;
        self.expect(&format!("{what} (`{prefix}...`)"), t, |l| {
            l.starts_with(prefix)
        })
    }

    /// Waits for every line of `exact`, in any order (the app may self-test before or after it
    /// connects); one step, one bound.
    fn expect_all(&mut self, what: &str, exact: &[&str]) -> Result<(), LiveError> {
        self.step += 1;
        self.waiting = what.to_owned();
        let t0 = Instant::now();
        let deadline = t0 + self.opts.step_timeout;
        let mut missing: Vec<&str> = exact.to_vec();
        while !missing.is_empty() {
            let Some(line) = self.next_line(deadline)? else {
                return Err(self.fail(format!(
                    "the board did not {what} within {} s (missing: `{}`)",
                    self.opts.step_timeout.as_secs(),
                    missing.join("`, `")
                )));
            };
            if let Some(m) = missing.iter().find(|m| contradicts(m, &line)) {
                return Err(self.fail(format!(
                    "the board did not {what} (`{m}`): it printed `{line}` instead"
                )));
            }
            missing.retain(|m| *m != line);
        }
        println!(
            "  ok {:>2} {what} ({:.1} s): `{}`",
            self.step,
            t0.elapsed().as_secs_f64(),
            exact.join("`, `")
        );
        Ok(())
    }

    /// Waits until the server says [`THING`]'s execution of `id` is `want`; fails at once if it
    /// ends in another terminal status.
    fn expect_job(&mut self, id: &str, want: &str) -> Result<(), LiveError> {
        self.step += 1;
        self.waiting = format!("finish AFR_OTA-{id} as {want}");
        let t0 = Instant::now();
        let deadline = t0 + self.opts.step_timeout;
        let mut last = None;
        loop {
            self.pump(Duration::from_millis(400))?;
            let s = self.cli.job_status(id)?;
            if s.as_deref() == Some(want) {
                println!(
                    "  ok {:>2} the server shows AFR_OTA-{id} {want} for {THING} ({:.1} s)",
                    self.step,
                    t0.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            let terminal = matches!(
                s.as_deref(),
                Some("SUCCEEDED" | "FAILED" | "REJECTED" | "REMOVED" | "CANCELED" | "TIMED_OUT")
            );
            if terminal || Instant::now() > deadline {
                return Err(self.fail(format!(
                    "the server did not show AFR_OTA-{id} {want} for {THING} within {} s (its status: {})",
                    self.opts.step_timeout.as_secs(),
                    s.as_deref().unwrap_or("none")
                )));
            }
            if s != last {
                last = s;
            }
        }
    }

    /// Waits until the server's inventory shows [`THING`] connected, and checks the firmware
    /// version it reported, if it reported one. Returns what the inventory says.
    fn expect_inventory(&mut self, version: &str) -> Result<String, LiveError> {
        self.step += 1;
        self.waiting = format!("stay connected running {version}");
        let t0 = Instant::now();
        let deadline = t0 + self.opts.step_timeout;
        loop {
            let (connected, reported) = self.cli.inventory()?;
            if connected && reported.as_deref() == Some(version) {
                println!(
                    "  ok {:>2} the server's inventory: {THING} connected, runs {version} ({:.1} s)",
                    self.step,
                    t0.elapsed().as_secs_f64()
                );
                return Ok(format!("inventory: runs {version}"));
            }
            if Instant::now() > deadline {
                return Err(self.fail(format!(
                    "the server's inventory did not show {THING} connected running {version} within {} s (connected: {connected}, reported version: {})",
                    self.opts.step_timeout.as_secs(),
                    reported.as_deref().unwrap_or("none")
                )));
            }
            self.pump(Duration::from_millis(500))?;
        }
    }

    fn ota_create(&mut self, id: &str, file: &str, sig: &str) -> Result<(), LiveError> {
        self.step += 1;
        self.cli.run(&[
            "ota",
            "create",
            id,
            "--file",
            file,
            "--signature",
            sig,
            "--thing",
            THING,
            "-c",
            "ferrota.toml",
        ])?;
        println!(
            "  ok {:>2} ferrota ota create {id} --file {file}",
            self.step
        );
        Ok(())
    }

    /// The job's download: the `job` line, then lines until the `reset` (or, with
    /// `until_status`, a `status` line with that word).
    fn expect_download(&mut self, id: &str, version: &str) -> Result<(), LiveError> {
        let job = format!("AFR_OTA-{id}");
        let j = job.clone();
        let t = self.opts.step_timeout;
        self.expect(
            &format!("receive job {job} (`job {job} received`)"),
            t,
            move |l| l.starts_with("job ") && l.contains(&j),
        )?;
        self.expect_prefix(&format!("start downloading v{version}"), "download ")?;
        self.expect_line(&format!("reset after downloading v{version}"), "reset")?;
        Ok(())
    }
}

/// The kind of a console line: up to its first `=` (`DBM boot bank`, `app version`), else its
/// first word (`self-test`, `reset`).
fn kind(line: &str) -> &str {
    match line.split_once('=') {
        Some((k, _)) => k,
        None => line.split(' ').next().unwrap_or(line),
    }
}

/// Whether `line` says the opposite of the awaited `exact`: the same kind of line with other
/// content (`DBM boot bank=lower version=1.0.0` while `...upper version=1.1.0` is awaited,
/// `self-test FAIL` while `self-test pass` is). The DBM's decision line (`DBM boot bank=...
/// flash_ctl=...`), which precedes every short one, never contradicts.
pub fn contradicts(exact: &str, line: &str) -> bool {
    line != exact && kind(line) == kind(exact) && !line.contains(" flash_ctl=")
}

/// The `timeout` around QEMU (the server gets a minute more): a last resort only, for when this
/// process is killed before it can stop them (its `Drop`s stop both at once otherwise). A passing
/// run takes about 15 s; each step fails after [`Options::step_timeout`], so a failing run ends
/// long before this.
pub(super) fn last_resort(opts: &Options) -> Duration {
    opts.step_timeout * 10 + Duration::from_secs(120)
}

/// The steps of phases a to e (see the module docs), after the setup.
pub(super) fn scenario(s: &mut Scenario<'_>) -> Result<(), LiveError> {
    // a: first boot.
    s.begin(PHASE_A);
    s.start_qemu()?;
    s.expect_line(
        "boot v1.0.0 from the lower bank",
        "DBM boot bank=lower version=1.0.0",
    )?;
    s.expect_line(
        "start the application v1.0.0 (confirmed)",
        "app version=1.0.0 bank=lower state=confirmed",
    )?;
    s.expect_line("bring the network up", "net up")?;
    s.expect_line("connect to the server (TLS, MQTT)", "mqtt connected")?;
    s.end("DBM boot lower 1.0.0, app confirmed, mqtt connected");

    // b: the update to v1.1.0.
    s.begin(PHASE_B);
    s.ota_create("rel-1-1", "v1.1.0.bin", "v1.1.0.bin.sig")?;
    s.expect_download("rel-1-1", "1.1.0")?;
    s.expect_line(
        "boot v1.1.0 from the upper bank after the reset",
        "DBM boot bank=upper version=1.1.0",
    )?;
    s.expect_line(
        "start v1.1.0 on trial",
        "app version=1.1.0 bank=upper state=trial",
    )?;
    s.expect_all(
        "reconnect and pass its self-test in v1.1.0",
        &["mqtt connected", "self-test pass"],
    )?;
    s.expect_job("rel-1-1", "SUCCEEDED")?;
    let inv = s.expect_inventory("1.1.0")?;
    s.end(format!(
        "download, reset, upper 1.1.0 trial, confirmed; job SUCCEEDED; {inv}"
    ));

    // c: the tampered image: refused, 1.1.0 keeps running.
    s.begin(PHASE_C);
    let mark = s.history.len();
    s.ota_create("rel-1-1-1", "v1.1.1.bin", "v1.1.1.bin.sig")?;
    let t = s.opts.step_timeout;
    s.expect(
        "receive job AFR_OTA-rel-1-1-1 (`job AFR_OTA-rel-1-1-1 received`)",
        t,
        |l| l.starts_with("job ") && l.contains("AFR_OTA-rel-1-1-1"),
    )?;
    s.expect_job("rel-1-1-1", "FAILED")?;
    s.pump(Duration::from_secs(2))?;
    s.step += 1;
    // AWS OTA's reason code 0xe3: OtaPalSignatureCheckFailed (ferrota_proto::status).
    let refused = s.history[mark..]
        .iter()
        .find(|l| l.starts_with("status ") && l.contains("\"FAILED\""))
        .cloned();
    match refused {
        Some(l) if l.contains("0x000000e3") => println!(
            "  ok {:>2} the board refused it: signature check failed (reason 0xe3): {l}",
            s.step
        ),
        other => {
            return Err(s.fail(format!(
                "the board did not report the tampered image's signature check failure (a `status` line with FAILED and reason 0x000000e3); it reported: {}",
                other.as_deref().unwrap_or("no FAILED status line")
            )));
        }
    }
    s.step += 1;
    let since = &s.history[mark..];
    let resets = since.iter().filter(|l| *l == "reset").count();
    let wrong_boot = since
        .iter()
        .find(|l| l.starts_with("DBM boot") && *l != "DBM boot bank=upper version=1.1.0")
        .cloned();
    let wrong_app = since
        .iter()
        .find(|l| l.starts_with("app version=") && !l.starts_with("app version=1.1.0 bank=upper"))
        .cloned();
    if let Some(l) = wrong_boot.or(wrong_app) {
        return Err(s.fail(format!(
            "the board left v1.1.0 after the tampered image: `{l}`"
        )));
    }
    // Refused before activation: nothing asks for a reset.
    if resets != 0 {
        return Err(s.fail(format!(
            "the board reset {resets} time(s) after the tampered image; a refused download must not reset it"
        )));
    }
    println!(
        "  ok {:>2} the board still runs v1.1.0 from the upper bank ({resets} reset(s) since the job)",
        s.step
    );
    let inv = s.expect_inventory("1.1.0")?;
    s.end(format!(
        "signature check failed (0xe3), job FAILED; still 1.1.0 upper, {resets} reset(s); {inv}"
    ));

    // d: v1.2.0 fails its self-test; the DBM rolls back.
    s.begin(PHASE_D);
    s.ota_create("rel-1-2", "v1.2.0.bin", "v1.2.0.bin.sig")?;
    s.expect_download("rel-1-2", "1.2.0")?;
    s.expect_line(
        "boot v1.2.0 from the lower bank after the reset",
        "DBM boot bank=lower version=1.2.0",
    )?;
    s.expect_line(
        "start v1.2.0 on trial",
        "app version=1.2.0 bank=lower state=trial",
    )?;
    s.expect_line("fail its self-test in v1.2.0", "self-test FAIL")?;
    s.expect_line("reset after the failed self-test", "reset")?;
    s.expect_line(
        "roll back: boot v1.1.0 from the upper bank",
        "DBM boot bank=upper version=1.1.0",
    )?;
    s.expect_line(
        "start v1.1.0 confirmed after the rollback",
        "app version=1.1.0 bank=upper state=confirmed",
    )?;
    s.expect_line("reconnect after the rollback", "mqtt connected")?;
    s.expect_job("rel-1-2", "FAILED")?;
    s.end("download, reset, lower 1.2.0 trial, self-test FAIL, reset, rollback to upper 1.1.0; job FAILED");

    // e: the flash and the marker log survive QEMU itself.
    s.begin(PHASE_E);
    s.step += 1;
    s.stop_qemu();
    println!(
        "  ok {:>2} QEMU stopped (SIGTERM); started again on the same psram.bin",
        s.step
    );
    s.start_qemu()?;
    s.expect_line(
        "boot v1.1.0 from the upper bank after the restart",
        "DBM boot bank=upper version=1.1.0",
    )?;
    s.expect_line(
        "start v1.1.0 confirmed after the restart",
        "app version=1.1.0 bank=upper state=confirmed",
    )?;
    s.expect_line("reconnect after the restart", "mqtt connected")?;
    s.end("DBM boot upper 1.1.0, app confirmed, mqtt connected");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictions() {
        let up = "DBM boot bank=upper version=1.1.0";
        assert!(contradicts(up, "DBM boot bank=lower version=1.0.0"));
        assert!(!contradicts(up, up));
        assert!(!contradicts(
            up,
            "DBM boot bank=upper flash_ctl=0x00401000 reason=current version=0x01010000"
        ));
        assert!(!contradicts(up, "DBM reset"));
        assert!(contradicts("self-test pass", "self-test FAIL"));
        assert!(contradicts(
            "app version=1.1.0 bank=upper state=trial",
            "app version=1.0.0 bank=lower state=confirmed"
        ));
        assert!(!contradicts("mqtt connected", "net up"));
        assert!(!contradicts("reset", "reset"));
    }
}
