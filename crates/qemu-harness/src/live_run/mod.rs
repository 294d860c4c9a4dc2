//! `ferrota-qemu live`: issue #21's whole scenario on the live board, end to end, with a message
//! naming the step that did not happen.
//!
//! ```text
//!  ferrota (CLI)                 ferrota-qemu live                      qemu-system-arm mps2-an500
//!  key/cert/thing/image/ota ◀──── orchestration ───▶ psram.bin (16 MB) ──▶ PSRAM (file-backed)
//!  ferrota serve ◀── 127.0.0.1 ── ferrota-qemu relay ◀── guestfwd cmd: ── 192.0.2.100:8883 (guest)
//!                                 console lines ◀──── semihosting stdout ── DBM, then the app
//! ```
//!
//! # What it does
//!
//! 1. **Server and credentials** (in the work directory, every command through the `ferrota` CLI
//!    as README's walkthrough runs it): boot key, code-signing key and certificate, a
//!    `ferrota.toml` with both listeners on `127.0.0.1:0` (the server picks free ports and prints
//!    them as its `mqtt`/`http` lines, which are waited for, so no port is ever guessed), `ferrota
//!    serve` in the background (stopped with SIGTERM when the run ends, whatever happens: see
//!    `Server`'s `Drop`; a `timeout` around it is the last resort if this process is killed),
//!    `thing create dev-1` with the bundle.
//! 2. **Images**: v1.0.0 and v1.1.0 from the same application binary (the version lives in the
//!    bank's version record, which the app reads), v1.2.0 from the build whose self-test fails,
//!    each `image sign-ota`'d; v1.1.1 signed, then one byte of its CM7_0 code flipped (its
//!    signature file kept). `ota create` without `--code-signing-cert` does not check signatures
//!    (AWS does not either), so the server accepts it and only the board refuses it.
//! 3. **The PSRAM file** ([`psram_image`]): what a factory and a debugger leave in the chip,
//!    at [`crate::live`]'s addresses. Both banks whole, SFlash, the marker log, resume area and
//!    trust store (read from the `ferrota t2g` device file the CLI made: erased, 0xFF), the
//!    board-inputs block ([`crate::inputs`], as the exporter makes it for the matrix), and the
//!    provisioning block ([`crate::provision`]) from the bundle: the key's P-256 scalar, the
//!    certificate and root CA as DER, the code-signing key in SEC1, the endpoint as server name,
//!    and a fresh 32-byte seed from the OS. Everything else is 0xFF (erased flash).
//! 4. **QEMU**: `mps2-an500` with its RAM backed by that file (`share=on`: every write the
//!    firmware makes lands in the file and survives resets and the QEMU process itself), the DBM
//!    as `-kernel`, semihosting on stdout, and user-mode networking on the documentation range
//!    192.0.2.0/24 with `restrict=on` (no packet leaves for any address). The one way out is a
//!    `guestfwd` of 192.0.2.100:8883 ([`SERVER_IP`]) to a command: QEMU starts `ferrota-qemu relay
//!    127.0.0.1:<mqtt port>` for each connection the guest opens, with the connection on its
//!    stdin and stdout ([`relay`]). A `guestfwd` to a `tcp:` chardev connects once per QEMU run,
//!    and the board reconnects after every reset; the relay is ours (no socat needed), and it
//!    connects only to the loopback address it is given.
//! 5. **The scenario**, each step with its own bound ([`Options::step_timeout`]): (a) v1.0.0
//!    boots from the lower bank and connects; (b) `ota create` of v1.1.0: download, reset, the
//!    DBM boots the upper bank on trial, the app reconnects and confirms, the job SUCCEEDED and
//!    the inventory says 1.1.0; (c) the tampered v1.1.1: the board reports its signature check
//!    failed (AWS OTA reason 0xe3), the job FAILED, the board still runs 1.1.0 from the upper
//!    bank; (d) v1.2.0 whose self-test fails: it boots on trial, fails,
//!    resets, the DBM rolls back to 1.1.0, the job FAILED; (e) QEMU stopped and started again
//!    on the same file: still 1.1.0, confirmed, connected. A line that contradicts the awaited
//!    one (another version booted, the other self-test outcome) fails its step at once. The
//!    server's state comes from `ferrota ota describe` and `thing describe` with `--api` (the
//!    running server; with `-c` alone `thing describe` reads the data directory, where no thing
//!    is ever connected). A passing run takes about 15 s of wall time.
//!
//! Every console line goes to `console.log` in the work directory, the server's log to
//! `server.log`. A failure is a [`LiveError::Step`]: "step 9 (b: update to v1.1.0): the board
//! did not boot v1.1.0 from the upper bank (`DBM boot bank=upper version=1.1.0`) within 60 s",
//! followed by the board's last lines. The work directory is removed after a pass unless
//! `--keep`; after a failure it stays, for its logs.
//!
//! # Figures
//!
//! The application prints `fig <name>=<value>` lines (download duration in emulated ms, bytes,
//! SysTick busy ticks, stack high-water). The run prints them per phase and, for the v1.1.0
//! download, instructions per downloaded KB: under `-icount shift=0` one instruction is one
//! nanosecond of virtual time and the 25 MHz SysTick counts 40 of them per tick. Without icount
//! (`--no-icount`) the same ratio is printed as "not an instruction count".
//!
//! # Files
//!
//! * `mod.rs`: the command line ([`Options`]), the errors ([`LiveError`]) and [`run`], which
//!   prepares the server, the images and the PSRAM file, then runs the scenario.
//! * `psram.rs`: the bundle's credentials ([`Credentials`]) and the PSRAM file
//!   ([`psram_image`]).
//! * `process.rs`: the child processes (the `ferrota` CLI, `ferrota serve`, QEMU and its
//!   command line, [`qemu_args`]) and the [`relay`].
//! * `report.rs`: what a passing run measured ([`Report`]) and its printing.
//! * `scenario.rs`: the steps, each with its bound, and which console line contradicts an
//!   awaited one ([`contradicts`]).

mod process;
mod psram;
mod report;
mod scenario;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrota_t2g::Device;

use crate::live;

use self::process::{Cli, Server};
pub use self::process::{qemu_args, relay};
pub use self::psram::{Credentials, fresh_seed, hardware_of, psram_image, psram_offset};
use self::report::PHASE_SETUP;
pub use self::report::{Figure, Report, Row};
pub use self::scenario::contradicts;
use self::scenario::{Scenario, last_resort};

/// The thing the scenario creates.
pub const THING: &str = "dev-1";
/// The server's port as the guest reaches it (forwarded by QEMU to the relay).
pub const GUEST_PORT: u16 = live::net::SERVER_PORT;
/// The server's address as the guest reaches it ([`live::net::SERVER`]).
pub const SERVER_IP: [u8; 4] = live::net::SERVER;
/// MQTT keep-alive written into the provisioning block, seconds.
pub const KEEP_ALIVE: u16 = 60;
/// Instructions per SysTick tick under `-icount shift=0` (1 ns per instruction, 25 MHz tick).
pub const INSTRUCTIONS_PER_TICK: u64 = 40;
/// Where the CM7_0 build goes in the T2G address space (`image pack --cm7-0 app.bin@...`).
pub const CM7_0_ADDRESS: u32 = 0x1001_0000;
/// Bank offset of the CM7_0 region (where the tampered image's byte is flipped, past its
/// 0x100-byte header).
pub const CM7_0_OFFSET: usize = 0x1_0000;

/// Why the live run stopped.
#[derive(Debug)]
pub enum LiveError {
    /// A bad command line.
    Usage(String),
    /// An input file is missing or unusable (named, with what is wrong).
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A tool (the `ferrota` CLI, QEMU, the server) failed outside a scenario step.
    Tool {
        /// The command, as typed.
        command: String,
        /// Its error output.
        detail: String,
    },
    /// A file of the work directory could not be written or read.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// A step of the scenario did not happen.
    Step(StepFailure),
}

/// A scenario step that did not happen.
#[derive(Debug)]
pub struct StepFailure {
    /// The step's number, counted over the whole run.
    pub number: usize,
    /// The phase it belongs to (`a: boot v1.0.0`, ...).
    pub phase: &'static str,
    /// What did not happen.
    pub what: String,
    /// The board's last console lines.
    pub last_lines: Vec<String>,
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::Usage(m) => write!(f, "{m}"),
            LiveError::Input { path, what } => write!(f, "{}: {what}", path.display()),
            LiveError::Tool { command, detail } => write!(f, "`{command}` failed: {detail}"),
            LiveError::Io { what, error } => write!(f, "{what}: {error}"),
            LiveError::Step(s) => {
                write!(f, "step {} ({}): {}", s.number, s.phase, s.what)?;
                if s.last_lines.is_empty() {
                    write!(f, "; the board printed nothing")
                } else {
                    write!(f, "; last lines of the board:")?;
                    for l in &s.last_lines {
                        write!(f, "\n    {l}")?;
                    }
                    Ok(())
                }
            }
        }
    }
}

impl std::error::Error for LiveError {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LiveError {
    let what = what.into();
    move |error| LiveError::Io { what, error }
}

fn input(path: &Path, what: impl Into<String>) -> LiveError {
    LiveError::Input {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The command line of `ferrota-qemu live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The `ferrota` CLI.
    pub ferrota: PathBuf,
    /// The DBM ELF (`ferrota-fw-dbm`, features `mps2-an500,live`).
    pub dbm: PathBuf,
    /// The application, raw binary linked at [`crate::live::APP_EXEC`].
    pub app: PathBuf,
    /// The application built with its self-test failing.
    pub app_failing: PathBuf,
    /// The CM0+ program of every image.
    pub cm0p: PathBuf,
    /// The work directory (created; must be empty if it exists).
    pub work: PathBuf,
    /// The bound of each step.
    pub step_timeout: Duration,
    /// Keep the work directory after a pass.
    pub keep: bool,
    /// Run QEMU with `-icount shift=0` (instruction-counted virtual time).
    pub icount: bool,
    /// The relay QEMU starts for each guest connection (this program).
    pub relay: PathBuf,
}

/// The usage line of `ferrota-qemu live`.
pub const USAGE: &str = "ferrota-qemu live --ferrota BIN --dbm DBM.elf --app APP.bin --app-failing APP_FAIL.bin --cm0p CM0P.elf --work DIR [--timeout-secs N] [--keep] [--no-icount]";

impl Options {
    /// Parses the arguments after `live`; `relay` is the program QEMU runs as the relay.
    pub fn parse(args: &[String], relay: PathBuf) -> Result<Options, LiveError> {
        let usage = |m: String| LiveError::Usage(format!("{m}\nusage: {USAGE}"));
        let mut v: BTreeMap<&str, String> = BTreeMap::new();
        let (mut keep, mut icount) = (false, true);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--keep" => keep = true,
                "--no-icount" => icount = false,
                k @ ("--ferrota" | "--dbm" | "--app" | "--app-failing" | "--cm0p" | "--work"
                | "--timeout-secs") => {
                    let Some(val) = it.next() else {
                        return Err(usage(format!("{k} needs a value")));
                    };
                    if v.insert(k, val.clone()).is_some() {
                        return Err(usage(format!("{k} given twice")));
                    }
                }
                other => return Err(usage(format!("unknown argument '{other}'"))),
            }
        }
        let mut path = |k: &str| {
            v.remove(k)
                .map(PathBuf::from)
                .ok_or_else(|| usage(format!("{k} is required")))
        };
        let (ferrota, dbm, app, app_failing, cm0p, work) = (
            path("--ferrota")?,
            path("--dbm")?,
            path("--app")?,
            path("--app-failing")?,
            path("--cm0p")?,
            path("--work")?,
        );
        let secs = match v.remove("--timeout-secs") {
            None => 60,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => n,
                _ => return Err(usage(format!("--timeout-secs: '{s}' is not 1..3600"))),
            },
        };
        Ok(Options {
            ferrota,
            dbm,
            app,
            app_failing,
            cm0p,
            work,
            step_timeout: Duration::from_secs(secs),
            keep,
            icount,
            relay,
        })
    }

    /// Checks every input file before anything starts, so a wrong path fails at once.
    pub fn check_inputs(&self) -> Result<(), LiveError> {
        for (p, what) in [
            (&self.ferrota, "the ferrota CLI"),
            (&self.dbm, "the DBM ELF"),
            (&self.app, "the application binary"),
            (
                &self.app_failing,
                "the application binary with the failing self-test",
            ),
            (&self.cm0p, "the CM0+ program"),
        ] {
            let m = std::fs::metadata(p).map_err(|e| input(p, format!("{what}: {e}")))?;
            if !m.is_file() || m.len() == 0 {
                return Err(input(p, format!("{what}: not a non-empty file")));
            }
        }
        for app in [&self.app, &self.app_failing] {
            let len = std::fs::metadata(app)
                .map_err(io("reading the application"))?
                .len();
            if len > u64::from(live::APP_MAX) {
                return Err(input(
                    app,
                    format!(
                        "{len} bytes: the CM7_0 image must fit the {} bytes from APP_EXEC ({:#x}) to the end of SSRAM1",
                        live::APP_MAX,
                        live::APP_EXEC
                    ),
                ));
            }
        }
        // QEMU splits a guestfwd command at spaces and its option string at commas.
        let relay = self.relay.to_string_lossy();
        if relay.contains([' ', ',']) || relay.is_empty() {
            return Err(input(
                &self.relay,
                "the relay's path holds a space or a comma, which QEMU's guestfwd cannot pass",
            ));
        }
        Ok(())
    }
}

/// Runs the whole scenario (see the module docs). Prints each step as it passes.
pub fn run(opts: &Options) -> Result<Report, LiveError> {
    let t0 = Instant::now();
    opts.check_inputs()?;
    let work = &opts.work;
    if work.exists() {
        let empty = std::fs::read_dir(work)
            .map_err(io(format!("reading {}", work.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(input(work, "the work directory exists and is not empty"));
        }
    }
    std::fs::create_dir_all(work).map_err(io(format!("creating {}", work.display())))?;
    let work = std::fs::canonicalize(work).map_err(io(format!("resolving {}", work.display())))?;
    let abs = |p: &Path| std::fs::canonicalize(p).map_err(|e| input(p, e.to_string()));
    let opts = &Options {
        ferrota: abs(&opts.ferrota)?,
        dbm: abs(&opts.dbm)?,
        app: abs(&opts.app)?,
        app_failing: abs(&opts.app_failing)?,
        cm0p: abs(&opts.cm0p)?,
        work: work.clone(),
        ..opts.clone()
    };
    let mut cli = Cli {
        ferrota: opts.ferrota.clone(),
        work: work.clone(),
        api: None,
    };

    println!("== {PHASE_SETUP} (in {})", work.display());
    std::fs::write(
        work.join("ferrota.toml"),
        "# ferrota-qemu live: a private server on free loopback ports (printed as it starts)\n\
         data_dir = \"data\"\nmqtt_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
    )
    .map_err(io("writing ferrota.toml"))?;
    cli.run(&["key", "generate", "-o", "boot.pem"])?;
    cli.run(&["key", "generate", "-o", "signer.pem"])?;
    cli.run(&[
        "cert",
        "code-signing",
        "--key",
        "signer.pem",
        "--cn",
        "Live signer",
        "-o",
        "signer.crt",
    ])?;
    let (app, app_failing, cm0p) = (
        format!("{}@{CM7_0_ADDRESS:#x}", opts.app.display()),
        format!("{}@{CM7_0_ADDRESS:#x}", opts.app_failing.display()),
        opts.cm0p.display().to_string(),
    );
    for (version, build) in [
        ("1.0.0", &app),
        ("1.1.0", &app),
        ("1.1.1", &app),
        ("1.2.0", &app_failing),
    ] {
        let out = format!("v{version}.bin");
        cli.run(&[
            "image",
            "pack",
            "--cm0p",
            &cm0p,
            "--cm7-0",
            build,
            "--version",
            version,
            "--security-counter",
            "1",
            "--boot-key",
            "boot.pem",
            "-o",
            &out,
        ])?;
        cli.run(&["image", "sign-ota", &out, "--key", "signer.pem"])?;
    }
    // The tampered image: v1.1.1 signed, then one byte of its CM7_0 code flipped.
    let app_len = std::fs::metadata(&opts.app)
        .map_err(io("reading the application"))?
        .len() as usize;
    let flip = CM7_0_OFFSET + 0x100 + app_len.saturating_sub(0x100) / 2;
    let tampered = work.join("v1.1.1.bin");
    let mut img = std::fs::read(&tampered).map_err(io("reading v1.1.1.bin"))?;
    let Some(b) = img.get_mut(flip) else {
        return Err(input(&tampered, "shorter than its CM7_0 region"));
    };
    *b ^= 0x01;
    std::fs::write(&tampered, &img).map_err(io("writing v1.1.1.bin"))?;
    println!("  v1.1.1.bin: signed, then byte {flip:#x} (CM7_0 code) flipped");

    let bound = last_resort(opts) + Duration::from_secs(60);
    let server = Server::start(&cli, bound)?;
    println!(
        "  ferrota serve: mqtt {}, http {}",
        server.mqtt, server.http
    );
    cli.api = Some(format!("http://{}", server.http));
    cli.run(&[
        "thing",
        "create",
        THING,
        "-c",
        "ferrota.toml",
        "--code-signing-cert",
        "signer.crt",
        "-o",
        "bundle",
    ])?;
    cli.run(&["t2g", "new", "dev.t2g", "--boot-key", "boot.pem"])?;
    cli.run(&["t2g", "program", "dev.t2g", "v1.0.0.bin", "--bank", "lower"])?;
    let dev = Device::load(&work.join("dev.t2g")).map_err(|e| LiveError::Tool {
        command: "loading dev.t2g".into(),
        detail: e.to_string(),
    })?;
    let creds = Credentials::load(&work.join("bundle").join(THING))?;
    let hardware = hardware_of(&dev)?;
    let seed = fresh_seed()?;
    let block = creds
        .provision(GUEST_PORT, seed, &hardware)
        .encode()
        .ok_or_else(|| {
            input(
                &work.join("bundle"),
                "the credentials do not fit the provisioning block",
            )
        })?;
    let psram = work.join("psram.bin");
    std::fs::write(&psram, psram_image(&dev, &block)?).map_err(io("writing psram.bin"))?;
    println!(
        "  psram.bin: 16 MB (banks, SFlash, inputs, erased log/resume/trust, provisioning {} B)",
        block.len()
    );

    let mut s = Scenario::new(opts, cli, psram, server.mqtt.port(), t0);
    s.end(format!(
        "server on {}, 4 images, provisioning {} B",
        server.mqtt,
        block.len()
    ));
    let result = scenario::scenario(&mut s);
    s.stop_qemu();
    drop(server);
    result?;
    let report = Report {
        rows: s.rows,
        figures: s.figures,
        wall: t0.elapsed(),
        icount: opts.icount,
    };
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::report::PHASE_B;
    use super::*;

    /// Writes `bytes` to `dir/name` (shared with `psram`'s tests).
    pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).expect("write");
    }

    /// The required arguments, every file in `dir` (shared with `process`'s tests).
    pub(super) fn opts(dir: &Path) -> Vec<String> {
        let f = |n: &str| dir.join(n).display().to_string();
        [
            "--ferrota",
            &f("ferrota"),
            "--dbm",
            &f("dbm.elf"),
            "--app",
            &f("app.bin"),
            "--app-failing",
            &f("fail.bin"),
            "--cm0p",
            &f("cm0p.elf"),
            "--work",
            &f("work"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn options_parse_and_inputs_are_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let relay = d.join("ferrota-qemu");
        let mut args = opts(d);
        args.extend(["--timeout-secs".into(), "30".into(), "--keep".into()]);
        let o = Options::parse(&args, relay.clone()).expect("parses");
        assert_eq!(o.step_timeout, Duration::from_secs(30));
        assert!(o.keep && o.icount);
        let e = o.check_inputs().expect_err("missing files").to_string();
        assert!(
            e.contains("ferrota") && e.contains("the ferrota CLI"),
            "{e}"
        );
        for n in ["ferrota", "dbm.elf", "app.bin", "fail.bin", "cm0p.elf"] {
            write(d, n, b"x");
        }
        o.check_inputs().expect("all there");
        write(d, "fail.bin", &vec![0; live::APP_MAX as usize + 1]);
        let e = o.check_inputs().expect_err("too big").to_string();
        assert!(e.contains("fail.bin") && e.contains("APP_EXEC"), "{e}");
        write(d, "fail.bin", b"x");
        let spaced = Options {
            relay: d.join("a b"),
            ..o.clone()
        };
        assert!(spaced.check_inputs().is_err());

        assert!(Options::parse(&args[..args.len() - 3], relay.clone()).is_ok());
        assert!(
            Options::parse(&args[2..], relay.clone()).is_err(),
            "no --ferrota"
        );
        let mut bad = opts(d);
        bad.extend(["--timeout-secs".into(), "0".into()]);
        assert!(Options::parse(&bad, relay.clone()).is_err());
        let mut bad = opts(d);
        bad.push("--what".into());
        assert!(Options::parse(&bad, relay.clone()).is_err());
        let mut bad = opts(d);
        bad.push("--dbm".into());
        assert!(Options::parse(&bad, relay).is_err());
    }

    #[test]
    fn step_failures_name_the_step() {
        let e = LiveError::Step(StepFailure {
            number: 9,
            phase: PHASE_B,
            what: "the board did not reconnect within 60 s".into(),
            last_lines: vec!["reset".into()],
        });
        assert_eq!(
            e.to_string(),
            "step 9 (b: update to v1.1.0): the board did not reconnect within 60 s; last lines of the board:\n    reset"
        );
    }
}
