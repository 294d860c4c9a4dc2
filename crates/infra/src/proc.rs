//! Process plumbing shared by the engines: free ports, dropping root for engines that refuse
//! it, dying with the parent, waiting for a port to answer, cleaning up after dead owners.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{InfraError, InfraResult};

/// A loopback port nobody listens on right now, below the kernel's ephemeral range.
///
/// Why not the port `bind(0)` gives: that comes from the ephemeral range, the same range the
/// kernel takes the local ports of outgoing connections from. A cluster opens many (Erlang
/// distribution, PostgreSQL and SeaweedFS clients) between the moment a port is chosen and
/// the moment its engine binds it, and one of them can take it (a worker's API port was lost
/// that way under load). Ports below the range are never handed out implicitly; a port taken
/// by another process meanwhile is still possible, and engines that fail to bind are retried.
pub fn free_port() -> InfraResult<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        let span = u32::from(low - 10_000);
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().wrapping_mul(2_654_435_761);
        for _ in 0..200 {
            // xorshift: enough to spread the picks of concurrent processes.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let port = 10_000 + (seed % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| InfraError::Io("bind 127.0.0.1:0".into(), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| InfraError::Io("local address".into(), e))
}

/// The user and group ids an engine runs as: `None` runs it as ourselves. PostgreSQL refuses
/// to run as root, and CI runs as root, so there it runs as the `postgres` user the Debian
/// package creates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// [`RunAs`] for `user` when we are root (read from `/etc/passwd`), `None` otherwise.
pub(crate) fn run_as_if_root(user: &str) -> InfraResult<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| InfraError::Io("/etc/passwd".into(), e))?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == user {
            let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) else {
                break;
            };
            return Ok(Some(RunAs { uid, gid }));
        }
    }
    Err(InfraError::Failed(format!(
        "running as root, and there is no `{user}` user to run the engine as"
    )))
}

/// Gives `path` (and everything under it) to `who`.
pub(crate) fn chown_tree(path: &Path, who: Option<RunAs>) -> InfraResult<()> {
    let Some(who) = who else { return Ok(()) };
    let io = |e| InfraError::Io(format!("chown {}", path.display()), e);
    std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid)).map_err(io)?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            chown_tree(&entry.map_err(io)?.path(), Some(who))?;
        }
    }
    Ok(())
}

/// Makes `cmd` run as `who` and, with `die_with_parent`, receive `signal` when the thread that
/// spawned it ends (Linux's parent-death signal, set after the user change, which clears it).
pub(crate) fn prepare(cmd: &mut Command, who: Option<RunAs>, die_with_parent: Option<i32>) {
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (setgroups, setgid, setuid, prctl).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(w) = who
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(w.gid) != 0
                    || libc::setuid(w.uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(sig) = die_with_parent
                && libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `cmd` to completion; a failure carries its output.
pub(crate) fn run(cmd: &mut Command, what: &str) -> InfraResult<String> {
    let out = cmd
        .output()
        .map_err(|e| InfraError::Io(format!("running {what}"), e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(InfraError::Failed(format!(
            "{what} failed ({}): {}",
            out.status,
            text.trim()
        )))
    }
}

/// Waits until `port` on loopback accepts a connection, or `child` exits, or `limit` passes.
/// `log` is quoted in the error so a failed start says why.
pub(crate) fn wait_for_port(
    child: &mut Child,
    port: u16,
    limit: Duration,
    what: &str,
    log: &Path,
) -> InfraResult<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(InfraError::Failed(format!(
                "{what} exited at start ({status}): {}",
                log_tail(log)
            )));
        }
        if start.elapsed() > limit {
            return Err(InfraError::Failed(format!(
                "{what} did not answer on 127.0.0.1:{port} within {limit:?}: {}",
                log_tail(log)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of a log file, for an error message.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Sends `sig` to process `pid`.
pub(crate) fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a stale pid only fails with ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits up to `limit` for `child` to exit, then kills it.
pub(crate) fn wait_or_kill(child: &mut Child, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A temporary directory named `<prefix>…` that records its owner's pid, after removing
/// earlier ones whose owner is dead. A test binary's shared engine is never dropped (statics
/// are not), so its directory would stay behind; the next run removes it.
pub(crate) fn owned_tempdir(prefix: &str) -> InfraResult<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().starts_with(prefix) {
                continue;
            }
            let owner = std::fs::read_to_string(e.path().join("owner.pid")).ok();
            let alive = owner
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            // A directory younger than a minute may be one another process is still setting up.
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < Duration::from_secs(60));
            if !alive && !young {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| InfraError::Io("temporary directory".into(), e))?;
    std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
        .map_err(|e| InfraError::Io("owner.pid".into(), e))?;
    Ok(dir)
}

/// Stops process `pid` (not a child of ours: one a detached engine left running): `sig`, then
/// SIGKILL if it still runs after `limit`. Returns whether it ran at all.
pub fn stop_pid(pid: u32, sig: i32, limit: Duration) -> bool {
    let alive = || pid_alive(pid);
    if pid == 0 || !alive() {
        return false;
    }
    signal(pid, sig);
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
    true
}

/// Whether process `pid` runs (a zombie, ended but not yet reaped, does not).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
}

/// `n` random bytes as hex, from the kernel: passwords, cookies and secrets of a cluster.
pub fn random_hex(n: usize) -> InfraResult<String> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| InfraError::Io("/dev/urandom".into(), e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
