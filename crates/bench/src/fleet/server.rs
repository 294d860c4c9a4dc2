//! The server under test: `ferrota serve` as a process of its own (so its memory is its own),
//! its memory read from `/proc/<pid>/status` (its HTTP API is called through `ferrota_api::Client`).
//!
//! Tests run the same server in-process instead ([`ServerKind::InProcess`]): the bench crate
//! cannot build the `ferrota` binary, and a test makes no claim about memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to run the server.
#[derive(Debug, Clone)]
pub enum ServerKind {
    /// `<exe> serve -c <config>`: the benchmark.
    Process(PathBuf),
    /// `ferrota_server::server::Server` on a thread of this process: tests.
    InProcess,
}

/// A running server.
pub struct Running {
    /// MQTT/TLS address.
    pub mqtt: SocketAddr,
    /// HTTP API address.
    pub http: SocketAddr,
    /// The process whose memory is measured.
    pub pid: u32,
    inner: Inner,
}

enum Inner {
    Process(Child),
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

impl Running {
    /// Starts the server on loopback ports chosen by the OS.
    pub fn start(kind: &ServerKind, config: &Path, log: &Path) -> Result<Running, String> {
        match kind {
            ServerKind::Process(exe) => start_process(exe, config, log),
            ServerKind::InProcess => start_in_process(config),
        }
    }

    /// Stops the server (kills the process: its data directory is thrown away anyway).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        match &mut self.inner {
            Inner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Inner::InProcess { stop, thread } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn start_process(exe: &Path, config: &Path, log: &Path) -> Result<Running, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("-c")
        .arg(config)
        .args([
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        // One line per connection at `info` would be 10k lines: warnings only.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "no stdout of ferrota serve".to_string())?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut mqtt, mut http) = (None, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while mqtt.is_none() || http.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let addr = |s: &str| s.trim().parse::<SocketAddr>().ok();
                if let Some(a) = line.strip_prefix("mqtt ") {
                    mqtt = addr(a);
                } else if let Some(a) = line.strip_prefix("http ") {
                    http = addr(a);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "{} serve did not print its addresses: {}",
                    exe.display(),
                    log_text.trim()
                ));
            }
        }
    }
    let (Some(mqtt), Some(http)) = (mqtt, http) else {
        return Err("no addresses".into());
    };
    Ok(Running {
        mqtt,
        http,
        pid: child.id(),
        inner: Inner::Process(child),
    })
}

fn start_in_process(config: &Path) -> Result<Running, String> {
    let cfg = ferrota_server::config::Config::load(config).map_err(|e| e.to_string())?;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Result<(SocketAddr, SocketAddr), String>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let setup = async {
                let mqtt = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let http = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let port = mqtt.local_addr().map_err(|e| e.to_string())?.port();
                let server = ferrota_server::server::Server::open(&cfg, port)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((mqtt, http, server))
            };
            match setup.await {
                Ok((mqtt, http, server)) => {
                    let addrs = mqtt.local_addr().and_then(|m| Ok((m, http.local_addr()?)));
                    let _ = addr_tx.send(addrs.map_err(|e| e.to_string()));
                    let _ = server
                        .run(mqtt, Some(http), async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                }
            }
        });
    });
    let (mqtt, http) = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the in-process server did not start".to_string())??;
    Ok(Running {
        mqtt,
        http,
        pid: std::process::id(),
        inner: Inner::InProcess {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    })
}

/// Memory figures of a process, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMem {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm: u64,
}

/// Reads `VmRSS` and `VmHWM` (kB in the file) from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Option<ProcMem> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line.strip_prefix(name)?.strip_prefix(':')?.trim();
        let kb = rest.strip_suffix("kB").unwrap_or(rest).trim();
        kb.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(ProcMem {
        rss: field("VmRSS")?,
        hwm: field("VmHWM")?,
    })
}

/// The memory of process `pid` now.
pub fn proc_mem(pid: u32) -> Result<ProcMem, String> {
    let p = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
    parse_status(&text).ok_or_else(|| format!("{p}: no VmRSS/VmHWM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file_gives_rss_and_peak() {
        let text = "Name:\tferrota\nVmPeak:\t 1000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_status(text),
            Some(ProcMem {
                rss: 10240 * 1024,
                hwm: 20480 * 1024
            })
        );
        assert_eq!(parse_status("VmRSS:\t1 kB\n"), None);
        assert_eq!(parse_status("VmRSS:\tlots kB\nVmHWM:\t1 kB\n"), None);
        // A field whose name only starts the same (VmRSSx) is not taken.
        assert_eq!(parse_status("VmRSSx:\t5 kB\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn own_process_has_memory() {
        let m = proc_mem(std::process::id()).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
    }
}
