//! The run's child processes: the `ferrota` CLI, `ferrota serve` and QEMU (each stopped when
//! the run ends, whatever happens), QEMU's command line, and the relay QEMU starts for each
//! connection the guest opens.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::{GUEST_PORT, LiveError, Options, SERVER_IP, THING, io};
use crate::live::{self, PSRAM_SIZE};

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

/// A command with the work directory as its current directory and no `FERROTA_*` variable of
/// the caller's environment (a `FERROTA_API` or `FERROTA_CONFIG` there must not send the run's
/// commands to another server).
pub(super) fn command(program: impl AsRef<std::ffi::OsStr>, work: &Path) -> Command {
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
pub(super) fn stop_child(child: &mut Child) {
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

pub(super) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The `ferrota` CLI, run in the work directory, each call bounded.
pub(super) struct Cli {
    pub(super) ferrota: PathBuf,
    pub(super) work: PathBuf,
    /// The running server's API (`http://<its http line>`), once it listens: `thing describe`
    /// with only `-c` reads the data directory, where a thing is never `connected`.
    pub(super) api: Option<String>,
}

impl Cli {
    pub(super) fn run(&self, args: &[&str]) -> Result<String, LiveError> {
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
    pub(super) fn job_status(&self, id: &str) -> Result<Option<String>, LiveError> {
        let v = self.json(&["ota", "describe", id, "-c", "ferrota.toml"])?;
        Ok(v["executions"].as_array().and_then(|ex| {
            ex.iter()
                .find(|e| e["thingName"] == THING)
                .and_then(|e| e["status"].as_str())
                .map(str::to_owned)
        }))
    }

    /// What the server's inventory says of [`THING`]: (connected, reported firmware version).
    pub(super) fn inventory(&self) -> Result<(bool, Option<String>), LiveError> {
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
pub(super) struct Server {
    child: Child,
    pub(super) mqtt: SocketAddr,
    pub(super) http: SocketAddr,
}

impl Server {
    pub(super) fn start(cli: &Cli, bound: Duration) -> Result<Server, LiveError> {
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
pub(super) struct Qemu {
    pub(super) child: Child,
    pub(super) lines: Receiver<String>,
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

#[cfg(test)]
mod tests {
    use super::super::tests::opts;
    use super::*;

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
}
