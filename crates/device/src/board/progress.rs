//! The download progress: an indicatif bar on a terminal, plain lines (every 25 %) otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub(super) struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
    last_quarter: u32,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            bar: None,
            last_quarter: 0,
        }
    }

    pub(super) fn start(&mut self, blocks: u32, resumed: u32) {
        self.finish();
        self.last_quarter = resumed * 4 / blocks.max(1);
        if self.enabled && std::io::stderr().is_terminal() {
            let b = ProgressBar::new(u64::from(blocks));
            b.set_style(
                ProgressStyle::with_template("  download [{bar:40}] {pos}/{len} blocks {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b.set_position(u64::from(resumed));
            self.bar = Some(b);
        }
    }

    pub(super) fn update(&mut self, log: &(dyn Fn(&str) + Send + Sync), n: u32, total: u32) {
        if let Some(b) = &self.bar {
            b.set_position(u64::from(n));
            return;
        }
        let q = n * 4 / total.max(1);
        if self.enabled && q > self.last_quarter {
            self.last_quarter = q;
            log(&format!("download {n}/{total} blocks ({}%)", q * 25));
        }
    }

    pub(super) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
