//! What a process (with its children) has cost, from `/proc`: CPU seconds, bytes written to
//! storage, and the bytes that crossed the loopback interface.
//!
//! The cluster benchmark charges each update its share of every process kind (broker nodes,
//! workers, PostgreSQL, the file store): a process's tree, because PostgreSQL serves each
//! connection from a child of its postmaster and an Erlang VM starts helpers of its own. The
//! figures are deltas over the rollout, so what the processes did before (starting,
//! provisioning) is not counted. Linux only, like the rest of the benchmark's measurements.

use std::collections::HashMap;

/// One process's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User + system CPU time, seconds.
    pub cpu_secs: f64,
    /// Bytes the process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
    pub disk_write: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            cpu_secs: self.cpu_secs + o.cpu_secs,
            disk_write: self.disk_write + o.disk_write,
        }
    }
}

impl Usage {
    /// `self − earlier`, never negative (a process that ended meanwhile takes its counts with
    /// it).
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_secs: (self.cpu_secs - earlier.cpu_secs).max(0.0),
            disk_write: self.disk_write.saturating_sub(earlier.disk_write),
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `(ppid, utime + stime in ticks)` of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so the fields are counted after its last `)`.
fn parse_stat(line: &str) -> Option<(u32, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The usage of each root process in `roots` together with all its descendants (one scan of
/// `/proc`). A root that is gone counts zero.
pub fn trees(roots: &[u32]) -> Vec<Usage> {
    let ticks = clock_ticks();
    let mut procs: HashMap<u32, (u32, u64)> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(st) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|l| parse_stat(&l))
            {
                procs.insert(pid, st);
            }
        }
    }
    roots
        .iter()
        .map(|&root| {
            let mut u = Usage::default();
            for (&pid, &(_, t)) in &procs {
                if descends(&procs, pid, root) {
                    u.cpu_secs += t as f64 / ticks;
                    u.disk_write += write_bytes(pid);
                }
            }
            u
        })
        .collect()
}

fn descends(procs: &HashMap<u32, (u32, u64)>, mut pid: u32, root: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match procs.get(&pid) {
            Some(&(ppid, _)) if ppid != 0 && ppid != pid => pid = ppid,
            _ => return false,
        }
    }
    false
}

/// Bytes received on the loopback interface so far (`/proc/net/dev`): on loopback every byte
/// sent is received once, so the delta over a run is every byte moved between the processes
/// of this machine (devices, broker nodes, workers, PostgreSQL, the file store).
pub fn loopback_bytes() -> u64 {
    std::fs::read_to_string("/proc/net/dev")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (name, rest) = l.split_once(':')?;
                if name.trim() != "lo" {
                    return None;
                }
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name() {
        let l = "4242 (weird (name) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(l), Some((17, 280)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_tree_has_spent_cpu_and_loopback_is_counted() {
        // Burn a little CPU in a child thread (threads count in the process's stat).
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let me = std::process::id();
        let u = trees(&[me, u32::MAX]);
        assert!(u[0].cpu_secs > 0.0, "{u:?}");
        assert_eq!(u[1], Usage::default());
        let before = loopback_bytes();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        std::io::Write::write_all(&mut c, &[7u8; 100_000]).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 100_000];
        std::io::Read::read_exact(&mut s, &mut buf).unwrap();
        assert!(loopback_bytes() >= before + 100_000);
    }
}
