//! What a passing run measured: the summary's rows, the application's `fig` lines, and their
//! printing (the summary table, instructions per downloaded KB, the `live-fig` lines scripts
//! read).

use std::time::Duration;

use super::INSTRUCTIONS_PER_TICK;

/// The phases of the run, as the summary names them.
pub(super) const PHASE_SETUP: &str = "setup: server, keys, images, PSRAM";
pub(super) const PHASE_A: &str = "a: boot v1.0.0";
pub(super) const PHASE_B: &str = "b: update to v1.1.0";
pub(super) const PHASE_C: &str = "c: tampered v1.1.1";
pub(super) const PHASE_D: &str = "d: v1.2.0 fails its self-test";
pub(super) const PHASE_E: &str = "e: QEMU restarted";

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
            "handshake-busy-ticks",
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

#[cfg(test)]
mod tests {
    use super::*;

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
