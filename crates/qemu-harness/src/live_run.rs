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

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ferrota_boot::rom::LifeCycle;
use ferrota_image::BANK_SIZE;
use ferrota_keys::{KeyFile, PrivateKey};
use ferrota_sim::boot_chain::DbmConfig;
use ferrota_t2g::Device;

use crate::inputs::BoardInputs;
use crate::live::{
    self, LOG, LOWER_BANK, PROVISION, PROVISION_MAX, PSRAM, PSRAM_SIZE, RESUME, TRUST, UPPER_BANK,
};
use crate::map::{
    LOG_SIZE, MPS2_AN500, SFLASH_SIZE, T2G_CODE, T2G_LOG, T2G_SFLASH, UPPER_SBM_OFFSET,
};
use crate::provision::Provision;

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
/// T2G work-flash address of the agent's resume area (`ferrota_agent::RESUME_AREA`).
const T2G_RESUME: u32 = ferrota_agent::RESUME_AREA;
/// T2G work-flash address of the trust store (`ferrota_agent::TRUST_AREA`).
const T2G_TRUST: u32 = ferrota_agent::TRUST_AREA;

/// Lines of the board's console quoted in a failure.
const LAST_LINES: usize = 15;

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

// ---------------------------------------------------------------------------------------------
// The bundle and the PSRAM file.
// ---------------------------------------------------------------------------------------------

/// What the provisioning block takes from a `ferrota thing create` bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The thing name.
    pub thing: String,
    /// The endpoint: the name the server's certificate is checked against.
    pub endpoint: String,
    /// The thing's certificate, DER.
    pub client_cert: Vec<u8>,
    /// The thing's P-256 private scalar.
    pub client_key: [u8; 32],
    /// The root CA, DER.
    pub ca_cert: Vec<u8>,
    /// The code-signing public key, SEC1 uncompressed.
    pub code_signing_key: [u8; 65],
}

fn read_limited(path: &Path) -> Result<Vec<u8>, LiveError> {
    let mut b = Vec::new();
    File::open(path)
        .and_then(|f| f.take(ferrota_keys::MAX_KEY_FILE + 1).read_to_end(&mut b))
        .map_err(|e| input(path, e.to_string()))?;
    if b.len() as u64 > ferrota_keys::MAX_KEY_FILE {
        return Err(input(path, "larger than any key or certificate file"));
    }
    Ok(b)
}

fn certificate_der(path: &Path) -> Result<Vec<u8>, LiveError> {
    match KeyFile::parse(&read_limited(path)?) {
        Ok(KeyFile::Certificate(c)) => Ok(c.der),
        Ok(other) => Err(input(
            path,
            format!("holds {}, not a certificate", other.describe()),
        )),
        Err(e) => Err(input(path, e.to_string())),
    }
}

impl Credentials {
    /// Reads the bundle directory `dir` (`<out>/<thing>/` of `thing create`) through its
    /// `device.toml`, which names every other file.
    pub fn load(dir: &Path) -> Result<Credentials, LiveError> {
        let toml_path = dir.join("device.toml");
        let text = String::from_utf8(read_limited(&toml_path)?)
            .map_err(|_| input(&toml_path, "not UTF-8"))?;
        let t: toml::Table = toml::from_str(&text)
            .map_err(|e| input(&toml_path, e.to_string().trim().to_owned()))?;
        let field = |k: &str| -> Result<String, LiveError> {
            match t.get(k) {
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(input(
                    &toml_path,
                    format!("`{k}` is not a non-empty string"),
                )),
                None => Err(input(
                    &toml_path,
                    format!(
                        "no `{k}`{}",
                        if k == "code_signing_cert" {
                            " (create the thing with --code-signing-cert)"
                        } else {
                            ""
                        }
                    ),
                )),
            }
        };
        let thing = field("thing_name")?;
        let endpoint = field("endpoint")?;
        let client_cert = certificate_der(&dir.join(field("client_cert")?))?;
        let ca_cert = certificate_der(&dir.join(field("root_ca")?))?;
        let key_path = dir.join(field("client_key")?);
        let client_key = match KeyFile::parse(&read_limited(&key_path)?) {
            Ok(KeyFile::Private(PrivateKey::EcdsaP256(k))) => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&k.to_bytes());
                s
            }
            Ok(other) => {
                return Err(input(
                    &key_path,
                    format!("holds {}, not an ECDSA P-256 private key", other.describe()),
                ));
            }
            Err(e) => return Err(input(&key_path, e.to_string())),
        };
        let cs_path = dir.join(field("code_signing_cert")?);
        let cs = ferrota_keys::material::code_signing_key(&read_limited(&cs_path)?)
            .map_err(|e| input(&cs_path, e))?;
        let mut code_signing_key = [0u8; 65];
        code_signing_key.copy_from_slice(cs.to_sec1_point(false).as_bytes());
        Ok(Credentials {
            thing,
            endpoint,
            client_cert,
            client_key,
            ca_cert,
            code_signing_key,
        })
    }

    /// The provisioning block for these credentials: the server at QEMU's forwarding address
    /// ([`SERVER_IP`]:`port`), `seed` for the TLS generator, `hardware` as the board id.
    pub fn provision<'a>(&'a self, port: u16, seed: [u8; 32], hardware: &'a str) -> Provision<'a> {
        Provision {
            server_ip: SERVER_IP,
            server_port: port,
            keep_alive: KEEP_ALIVE,
            seed,
            thing: &self.thing,
            server_name: &self.endpoint,
            client_cert: &self.client_cert,
            client_key: &self.client_key,
            ca_cert: &self.ca_cert,
            code_signing_key: &self.code_signing_key,
            trust_anchor: &[],
            hardware,
        }
    }
}

/// A fresh seed from the operating system (the T2G's TRNG stands in its place).
pub fn fresh_seed() -> Result<[u8; 32], LiveError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| LiveError::Io {
        what: "the OS random generator".into(),
        error: std::io::Error::other(e.to_string()),
    })?;
    Ok(seed)
}

/// Offset in the PSRAM file of a PSRAM address.
pub fn psram_offset(addr: u32) -> usize {
    (addr - PSRAM) as usize
}

/// The board id the DBM of `dev` enforces (its SFlash configuration), `""` for any.
pub fn hardware_of(dev: &Device) -> Result<String, LiveError> {
    let cfg = DbmConfig::read(dev).map_err(|e| LiveError::Tool {
        command: "reading the device's DBM configuration".into(),
        detail: e.to_string(),
    })?;
    Ok(cfg
        .and_then(|c| c.hardware)
        .map(|h| h.as_str().to_owned())
        .unwrap_or_default())
}

/// The 16 MB PSRAM file of the live board: both banks of `dev` whole, its SFlash, marker log,
/// resume area and trust store, the board-inputs block, and `provision` (an encoded
/// [`Provision`]) at [`PROVISION`]; 0xFF (erased) everywhere else.
pub fn psram_image(dev: &Device, provision: &[u8]) -> Result<Vec<u8>, LiveError> {
    if provision.len() > PROVISION_MAX as usize {
        return Err(LiveError::Usage(format!(
            "the provisioning block is {} bytes, more than the {PROVISION_MAX} it may take",
            provision.len()
        )));
    }
    let dev_err = |e: ferrota_t2g::Error| LiveError::Tool {
        command: "reading the device file".into(),
        detail: e.to_string(),
    };
    let mut d = dev.clone();
    d.reset();
    d.set_work_err_silent(true).map_err(dev_err)?;
    let mut img = vec![0xFF; PSRAM_SIZE as usize];
    let windows: [(u32, u32, usize); 7] = [
        (LOWER_BANK, T2G_CODE, BANK_SIZE as usize),
        (UPPER_BANK, T2G_CODE + UPPER_SBM_OFFSET, BANK_SIZE as usize),
        (MPS2_AN500.sflash, T2G_SFLASH, SFLASH_SIZE as usize),
        (LOG, T2G_LOG, LOG_SIZE as usize),
        (RESUME, T2G_RESUME, ferrota_agent::RESUME_AREA_LEN as usize),
        (TRUST, T2G_TRUST, ferrota_agent::TRUST_AREA_LEN as usize),
        (MPS2_AN500.inputs, 0, crate::inputs::SIZE),
    ];
    for (at, t2g, len) in windows {
        let o = psram_offset(at);
        if at == MPS2_AN500.inputs {
            let inputs = BoardInputs {
                lifecycle: LifeCycle::from_value(dev.lifecycle().value()),
                user1: false,
                efuse_floor: dev.rollback_counter(),
                shash: dev.efuse().shash(),
                hardware: ferrota_image::HardwareId::new(&hardware_of(dev)?),
            };
            img[o..o + len].copy_from_slice(&inputs.encode());
        } else {
            d.read(t2g, &mut img[o..o + len]).map_err(dev_err)?;
        }
    }
    let o = psram_offset(PROVISION);
    img[o..o + provision.len()].copy_from_slice(provision);
    Ok(img)
}

// ---------------------------------------------------------------------------------------------
// The relay.
// ---------------------------------------------------------------------------------------------

/// `ferrota-qemu relay ADDR`: what QEMU's `guestfwd=...-cmd:` runs for each connection the guest
/// opens: the connection is this process's stdin and stdout; the relay connects to `ADDR` (a
/// loopback address only) and copies both ways until either side closes (at most 2 s after the
/// guest's side closed). It never writes to
/// stderr (QEMU gives it the connection there too) and exits quietly on any error, which the
/// guest sees as a closed connection.
pub fn relay(addr: &str) -> ExitCode {
    let Some(target) = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|a| a.ip().is_loopback()))
    else {
        return ExitCode::from(2);
    };
    let Ok(sock) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return ExitCode::FAILURE;
    };
    let _ = sock.set_nodelay(true);
    let Ok(mut up) = sock.try_clone() else {
        return ExitCode::FAILURE;
    };
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        // The guest closed its side: pass the FIN on, give the server a moment to answer, then
        // go (a server that ignores a half-close would otherwise keep this process alive).
        let _ = up.shutdown(std::net::Shutdown::Write);
        std::thread::sleep(Duration::from_secs(2));
        std::process::exit(0);
    });
    let mut down = sock;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Processes: the CLI, the server, QEMU.
// ---------------------------------------------------------------------------------------------

/// A command with the work directory as its current directory and no `FERROTA_*` variable of
/// the caller's environment (a `FERROTA_API` or `FERROTA_CONFIG` there must not send the run's
/// commands to another server).
fn command(program: impl AsRef<std::ffi::OsStr>, work: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(work).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FERROTA_") {
            c.env_remove(k);
        }
    }
    c
}

/// Sends SIGTERM to `pid` (through kill(1): this crate has no unsafe code).
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops a child: SIGTERM (a clean shutdown; `timeout` passes it on), then SIGKILL after 10 s.
fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    terminate(child.id());
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `ferrota` CLI, run in the work directory, each call bounded.
struct Cli {
    ferrota: PathBuf,
    work: PathBuf,
    /// The running server's API (`http://<its http line>`), once it listens: `thing describe`
    /// with only `-c` reads the data directory, where a thing is never `connected`.
    api: Option<String>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Result<String, LiveError> {
        let out = command("timeout", &self.work)
            .arg("120")
            .arg(&self.ferrota)
            .args(args)
            .output()
            .map_err(io(format!(
                "starting `timeout 120 {}`",
                self.ferrota.display()
            )))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(LiveError::Tool {
                command: format!("ferrota {}", args.join(" ")),
                detail: format!("{} ({})", tail(err.trim(), 8), out.status),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that asks the running server (`--api`), its output parsed as JSON.
    fn json(&self, args: &[&str]) -> Result<serde_json::Value, LiveError> {
        let mut args = args.to_vec();
        if let Some(api) = &self.api {
            args.extend(["--api", api.as_str()]);
        }
        let out = self.run(&args)?;
        serde_json::from_str(&out).map_err(|e| LiveError::Tool {
            command: format!("ferrota {}", args.join(" ")),
            detail: format!("its output is not JSON ({e}): {}", tail(&out, 5)),
        })
    }

    /// The status of [`THING`]'s execution of OTA update `id`.
    fn job_status(&self, id: &str) -> Result<Option<String>, LiveError> {
        let v = self.json(&["ota", "describe", id, "-c", "ferrota.toml"])?;
        Ok(v["executions"].as_array().and_then(|ex| {
            ex.iter()
                .find(|e| e["thingName"] == THING)
                .and_then(|e| e["status"].as_str())
                .map(str::to_owned)
        }))
    }

    /// What the server's inventory says of [`THING`]: (connected, reported firmware version).
    fn inventory(&self) -> Result<(bool, Option<String>), LiveError> {
        let v = self.json(&["thing", "describe", THING, "-c", "ferrota.toml"])?;
        let inv = &v["inventory"];
        Ok((
            inv["connected"].as_bool().unwrap_or(false),
            inv["reported"]["firmware"]["version"]
                .as_str()
                .map(str::to_owned),
        ))
    }
}

/// `ferrota serve` in the background; stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    mqtt: SocketAddr,
    http: SocketAddr,
}

impl Server {
    fn start(cli: &Cli, bound: Duration) -> Result<Server, LiveError> {
        let log_path = cli.work.join("server.log");
        let log = File::create(&log_path).map_err(io("creating server.log"))?;
        let log2 = log.try_clone().map_err(io("server.log"))?;
        let mut child = command("timeout", &cli.work)
            .args(["-k", "5", &bound.as_secs().to_string()])
            .arg(&cli.ferrota)
            .args(["serve", "-c", "ferrota.toml"])
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io("starting `ferrota serve`"))?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let addr = |p: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(p))
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            };
            if let (Some(mqtt), Some(http)) = (addr("mqtt "), addr("http ")) {
                return Ok(Server { child, mqtt, http });
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > until {
                stop_child(&mut child);
                return Err(LiveError::Tool {
                    command: "ferrota serve -c ferrota.toml".into(),
                    detail: format!(
                        "{} without its `mqtt`/`http` lines; server.log ends:\n{}",
                        if exited { "it exited" } else { "30 s passed" },
                        tail(&text, 10)
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// One QEMU run of the board; stopped (SIGTERM) when dropped.
struct Qemu {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// The QEMU arguments of the live board (after the program name).
pub fn qemu_args(opts: &Options, psram: &Path, mqtt_port: u16) -> Vec<String> {
    let [a, b, c, _] = live::net::GUEST;
    let [g0, g1, g2, g3] = live::net::GATEWAY;
    let [s0, s1, s2, s3] = SERVER_IP;
    let mut v: Vec<String> = vec![
        "-machine".into(),
        "mps2-an500,memory-backend=psram".into(),
        "-object".into(),
        format!(
            "memory-backend-file,id=psram,size={}M,mem-path={},share=on",
            PSRAM_SIZE >> 20,
            psram.display()
        ),
        "-nographic".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        "none".into(),
        "-semihosting-config".into(),
        "enable=on,target=native".into(),
    ];
    if opts.icount {
        v.extend(["-icount".into(), "shift=0".into()]);
    }
    v.extend([
        "-kernel".into(),
        opts.dbm.display().to_string(),
        "-nic".into(),
        format!(
            "user,net={a}.{b}.{c}.0/{},host={g0}.{g1}.{g2}.{g3},restrict=on,guestfwd=tcp:{s0}.{s1}.{s2}.{s3}:{GUEST_PORT}-cmd:{} relay 127.0.0.1:{mqtt_port}",
            live::net::PREFIX,
            opts.relay.display()
        ),
    ]);
    v
}

// ---------------------------------------------------------------------------------------------
// The scenario.
// ---------------------------------------------------------------------------------------------

/// One row of the summary.
#[derive(Debug, Clone)]
pub struct Row {
    /// The phase.
    pub phase: &'static str,
    /// What was seen.
    pub outcome: String,
    /// Wall time of the phase.
    pub wall: Duration,
}

/// A `fig` line of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// The phase it was printed in.
    pub phase: &'static str,
    /// Its name.
    pub name: String,
    /// Its value, as printed.
    pub value: String,
}

/// What a passing run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The summary.
    pub rows: Vec<Row>,
    /// Every `fig` line.
    pub figures: Vec<Figure>,
    /// The whole run's wall time.
    pub wall: Duration,
    /// Whether QEMU counted instructions (`-icount shift=0`).
    pub icount: bool,
}

impl Report {
    /// The value of figure `name` printed during `phase` (the last one printed).
    pub fn figure(&self, phase: &str, name: &str) -> Option<&str> {
        self.figures
            .iter()
            .rev()
            .find(|f| f.phase == phase && f.name == name)
            .map(|f| f.value.as_str())
    }

    /// Instructions (busy SysTick ticks × 40) per downloaded KB of the v1.1.0 update
    /// (`bytes`: the file the agent downloaded): the whole download, and the download without
    /// the call that took the last block (the read-back hash of the bank and both signature
    /// checks, `activate-busy-ticks`), which does not grow with the bytes on the wire.
    pub fn per_kb(&self) -> Option<(u64, Option<u64>)> {
        let num = |n| self.figure(PHASE_B, n).and_then(|v| v.parse::<u64>().ok());
        let (ticks, bytes) = (num("busy-ticks")?, num("bytes")?);
        if bytes < 1024 {
            return None;
        }
        let per = |t: u64| t * INSTRUCTIONS_PER_TICK * 1024 / bytes;
        let stream = num("activate-busy-ticks")
            .and_then(|a| ticks.checked_sub(a))
            .map(per);
        Some((per(ticks), stream))
    }

    fn max_figure(&self, name: &str) -> Option<u64> {
        self.figures
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.value.parse::<u64>().ok())
            .max()
    }

    /// The summary table, the figures and the `live-fig` lines scripts read.
    pub fn print(&self) {
        println!();
        println!("== live board: summary");
        println!("{:<36} {:>7}  outcome", "phase", "wall");
        for r in &self.rows {
            println!(
                "{:<36} {:>5.1} s  {}",
                r.phase,
                r.wall.as_secs_f64(),
                r.outcome
            );
        }
        println!("{:<36} {:>5.1} s", "whole run", self.wall.as_secs_f64());
        println!();
        println!("== live board: the application's fig lines, by phase (in the order printed)");
        let mut phases: Vec<&str> = self.figures.iter().map(|f| f.phase).collect();
        phases.dedup();
        for p in phases {
            let line: Vec<String> = self
                .figures
                .iter()
                .filter(|f| f.phase == p)
                .map(|f| format!("{}={}", f.name, f.value))
                .collect();
            println!("{p}: {}", line.join(" "));
        }
        let kind = if self.icount {
            "instructions (-icount shift=0: busy SysTick ticks x 40)"
        } else {
            "busy SysTick ticks x 40, NOT an instruction count (QEMU ran without -icount)"
        };
        match self.per_kb() {
            Some((all, stream)) => {
                println!("v1.1.0 download: {all} per downloaded KB, {kind}");
                if let Some(s) = stream {
                    println!(
                        "  of which {s} per KB receiving and writing the blocks; the rest is the last call's read-back hash and signature checks"
                    );
                }
            }
            None => println!("v1.1.0 download: no busy-ticks/bytes figures printed"),
        }
        for name in [
            "download-ms",
            "bytes",
            "stream-bytes",
            "busy-ticks",
            "activate-busy-ticks",
        ] {
            if let Some(v) = self.figure(PHASE_B, name) {
                println!("live-fig {name}={v}");
            }
        }
        for name in ["stack", "dbm-stack", "storage-size", "agent-size"] {
            if let Some(v) = self.max_figure(name) {
                println!("live-fig {name}={v}");
            }
        }
        if let Some((all, stream)) = self.per_kb() {
            println!("live-fig per-kb={all}");
            if let Some(s) = stream {
                println!("live-fig per-kb-stream={s}");
            }
        }
        println!("live-fig icount={}", u8::from(self.icount));
        println!("live-fig wall-ms={}", self.wall.as_millis());
    }
}

const PHASE_SETUP: &str = "setup: server, keys, images, PSRAM";
const PHASE_A: &str = "a: boot v1.0.0";
const PHASE_B: &str = "b: update to v1.1.0";
const PHASE_C: &str = "c: tampered v1.1.1";
const PHASE_D: &str = "d: v1.2.0 fails its self-test";
const PHASE_E: &str = "e: QEMU restarted";

/// The scenario's state: the board's console so far, the step counter, the rows.
struct Scenario<'o> {
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
    rows: Vec<Row>,
    figures: Vec<Figure>,
    /// What the current step waits for (named when QEMU exits under it).
    waiting: String,
}

impl Scenario<'_> {
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

    fn stop_qemu(&mut self) {
        self.qemu = None;
    }

    fn begin(&mut self, phase: &'static str) {
        self.phase = phase;
        self.phase_start = Instant::now();
        println!("== {phase}");
    }

    fn end(&mut self, outcome: impl Into<String>) {
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
            let version_ok = reported.as_deref().is_none_or(|v| v == version);
            if connected && reported.is_some() && version_ok {
                println!(
                    "  ok {:>2} the server's inventory: {THING} connected, runs {version} ({:.1} s)",
                    self.step,
                    t0.elapsed().as_secs_f64()
                );
                return Ok(format!("inventory: runs {version}"));
            }
            if Instant::now() > deadline {
                if connected && reported.is_none() {
                    println!(
                        "  ok {:>2} the server's inventory: {THING} connected (no firmware report: version not checked)",
                        self.step
                    );
                    return Ok("inventory: no firmware report".into());
                }
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
fn last_resort(opts: &Options) -> Duration {
    opts.step_timeout * 10 + Duration::from_secs(120)
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

    let mut s = Scenario {
        opts,
        cli,
        psram,
        mqtt_port: server.mqtt.port(),
        qemu: None,
        runs: 0,
        history: Vec::new(),
        step: 0,
        phase: PHASE_SETUP,
        phase_start: t0,
        rows: Vec::new(),
        figures: Vec::new(),
        waiting: String::new(),
    };
    s.end(format!(
        "server on {}, 4 images, provisioning {} B",
        server.mqtt,
        block.len()
    ));
    let result = scenario(&mut s);
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

fn scenario(s: &mut Scenario<'_>) -> Result<(), LiveError> {
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
    use crate::matrix::{Flaw, bank_image, provisioned};
    use ferrota_boot::Bank;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).expect("write");
    }

    /// A bundle as `thing create --code-signing-cert` writes it (the certificates are
    /// code-signing certificates: any X.509 certificate does for the parser).
    fn bundle(dir: &Path) -> (ferrota_image::p256::ecdsa::SigningKey, PrivateKey) {
        let client = PrivateKey::generate(ferrota_keys::KeyType::EcdsaP256).expect("key");
        let signer = PrivateKey::generate(ferrota_keys::KeyType::EcdsaP256).expect("key");
        let signer_key = signer.clone().into_ota_signing_key().expect("p256");
        let cert = |k: &PrivateKey, cn: &str| {
            ferrota_keys::code_signing_certificate(
                &k.clone().into_ota_signing_key().expect("p256"),
                cn,
                30,
            )
            .expect("certificate")
        };
        write(
            dir,
            "dev-1.key.pem",
            client.to_pkcs8_pem().expect("pem").as_bytes(),
        );
        write(dir, "dev-1.crt.pem", cert(&client, "dev-1").as_bytes());
        write(dir, "root-ca.pem", cert(&signer, "root").as_bytes());
        write(
            dir,
            "code-signing.crt.pem",
            cert(&signer, "signer").as_bytes(),
        );
        write(
            dir,
            "device.toml",
            b"thing_name = \"dev-1\"\nendpoint = \"localhost\"\nport = 1\nroot_ca = \"root-ca.pem\"\n\
              client_cert = \"dev-1.crt.pem\"\nclient_key = \"dev-1.key.pem\"\n\
              code_signing_cert = \"code-signing.crt.pem\"\n",
        );
        (signer_key, client)
    }

    #[test]
    fn bundle_decodes_into_a_provisioning_block() {
        let dir = tempfile::tempdir().expect("tmp");
        let (signer, client) = bundle(dir.path());
        let c = Credentials::load(dir.path()).expect("loads");
        assert_eq!(c.thing, "dev-1");
        assert_eq!(c.endpoint, "localhost");
        let PrivateKey::EcdsaP256(k) = &client else {
            panic!("p256")
        };
        assert_eq!(&c.client_key[..], &k.to_bytes()[..]);
        assert_eq!(
            &c.code_signing_key[..],
            signer.verifying_key().to_sec1_point(false).as_bytes()
        );
        assert_eq!(c.client_cert[0], 0x30, "DER");
        let block = c.provision(GUEST_PORT, [9; 32], "").encode().expect("fits");
        let p = Provision::decode(&block).expect("decodes");
        assert_eq!(p.server_ip, SERVER_IP);
        assert_eq!(p.server_port, GUEST_PORT);
        assert_eq!(p.seed, [9; 32]);
        assert_eq!(p.thing, "dev-1");
        assert_eq!(p.server_name, "localhost");
        assert_eq!(p.client_cert, &c.client_cert[..]);
        assert_eq!(p.ca_cert, &c.ca_cert[..]);
        assert!(p.trust_anchor.is_empty());
    }

    #[test]
    fn bad_bundles_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let err = |d: &Path| Credentials::load(d).expect_err("refused").to_string();
        assert!(err(d).contains("device.toml"), "{}", err(d));
        bundle(d);
        write(
            d,
            "dev-1.key.pem",
            b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        );
        let e = err(d);
        assert!(e.contains("dev-1.key.pem"), "{e}");
        bundle(d);
        // A certificate where the key should be.
        std::fs::copy(d.join("dev-1.crt.pem"), d.join("dev-1.key.pem")).expect("copy");
        let e = err(d);
        assert!(
            e.contains("dev-1.key.pem") && e.contains("not an ECDSA P-256 private key"),
            "{e}"
        );
        bundle(d);
        write(d, "root-ca.pem", b"garbage");
        assert!(err(d).contains("root-ca.pem"));
        bundle(d);
        std::fs::remove_file(d.join("dev-1.crt.pem")).expect("rm");
        assert!(err(d).contains("dev-1.crt.pem"));
        bundle(d);
        let toml = std::fs::read_to_string(d.join("device.toml")).expect("read");
        write(
            d,
            "device.toml",
            toml.replace("code_signing_cert = \"code-signing.crt.pem\"\n", "")
                .as_bytes(),
        );
        assert!(err(d).contains("--code-signing-cert"));
        write(d, "device.toml", b"thing_name = [");
        assert!(err(d).contains("device.toml"));
    }

    #[test]
    fn psram_image_puts_every_window_at_its_address() {
        let mut dev = provisioned();
        let v1 = bank_image(1, Flaw::None, false);
        ferrota_sim::boot_chain::program_bank(&mut dev, Bank::Lower, &v1).expect("programs");
        let prov = Provision {
            server_ip: live::net::GATEWAY,
            server_port: GUEST_PORT,
            keep_alive: KEEP_ALIVE,
            seed: [3; 32],
            thing: "dev-1",
            server_name: "localhost",
            client_cert: b"c",
            client_key: &[1; 32],
            ca_cert: b"a",
            code_signing_key: &[4; 65],
            trust_anchor: b"",
            hardware: "",
        };
        let block = prov.encode().expect("fits");
        let img = psram_image(&dev, &block).expect("builds");
        assert_eq!(img.len(), PSRAM_SIZE as usize);
        let at = |a: u32, n: usize| &img[psram_offset(a)..psram_offset(a) + n];
        assert_eq!(at(LOWER_BANK, v1.len()), &v1[..], "lower bank");
        assert!(
            at(UPPER_BANK, BANK_SIZE as usize)
                .iter()
                .all(|&b| b == 0xFF),
            "upper erased"
        );
        let mut sflash = vec![0u8; SFLASH_SIZE as usize];
        let mut d = dev.clone();
        d.reset();
        d.read(T2G_SFLASH, &mut sflash).expect("sflash");
        assert_eq!(at(MPS2_AN500.sflash, sflash.len()), &sflash[..]);
        for (a, n) in [
            (LOG, LOG_SIZE as usize),
            (RESUME, ferrota_agent::RESUME_AREA_LEN as usize),
            (TRUST, ferrota_agent::TRUST_AREA_LEN as usize),
        ] {
            assert!(at(a, n).iter().all(|&b| b == 0xFF), "{a:#x} erased");
        }
        let inputs: [u8; crate::inputs::SIZE] = at(MPS2_AN500.inputs, crate::inputs::SIZE)
            .try_into()
            .expect("size");
        let i = BoardInputs::decode(&inputs).expect("inputs decode");
        assert_eq!(i.shash, dev.efuse().shash());
        assert_eq!(i.efuse_floor, dev.rollback_counter());
        assert!(!i.user1);
        let p = Provision::decode(at(PROVISION, PROVISION_MAX as usize)).expect("provision");
        assert_eq!(p, prov);
        // Between the windows: erased.
        assert!(
            img[psram_offset(PROVISION) + block.len()..]
                .iter()
                .all(|&b| b == 0xFF)
        );
    }

    #[test]
    fn oversized_provisioning_is_refused() {
        let dev = provisioned();
        let e = psram_image(&dev, &vec![0; PROVISION_MAX as usize + 1]).expect_err("too big");
        assert!(e.to_string().contains("provisioning block"), "{e}");
    }

    fn opts(dir: &Path) -> Vec<String> {
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
    fn qemu_command_line() {
        let d = Path::new("/w");
        let o = Options::parse(&opts(d), PathBuf::from("/bin/ferrota-qemu")).expect("parses");
        let a = qemu_args(&o, Path::new("/w/psram.bin"), 40000).join(" ");
        assert!(
            a.contains("-machine mps2-an500,memory-backend=psram"),
            "{a}"
        );
        assert!(
            a.contains("memory-backend-file,id=psram,size=16M,mem-path=/w/psram.bin,share=on"),
            "{a}"
        );
        assert!(a.contains("-icount shift=0"), "{a}");
        assert!(a.contains("-kernel /w/dbm.elf"), "{a}");
        assert!(a.contains(
            "user,net=192.0.2.0/24,host=192.0.2.2,restrict=on,guestfwd=tcp:192.0.2.100:8883-cmd:/bin/ferrota-qemu relay 127.0.0.1:40000"
        ), "{a}");
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

    #[test]
    fn per_kb_from_the_figures() {
        let f = |name: &str, value: &str| Figure {
            phase: PHASE_B,
            name: name.into(),
            value: value.into(),
        };
        let r = Report {
            rows: vec![],
            figures: vec![
                f("busy-ticks", "1000"),
                f("bytes", "2048"),
                f("activate-busy-ticks", "600"),
            ],
            wall: Duration::ZERO,
            icount: true,
        };
        assert_eq!(r.per_kb(), Some((20_000, Some(8_000))));
    }
}
