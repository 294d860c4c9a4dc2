//! `ferrota bench`: the performance claims of Ferrota, measured by one command anyone can run.
//!
//! Every scenario runs its comparison *in the same run* (Ferrota beside the official library's
//! schedule, beside OpenSSL, beside a copy-into-slot update), so the ratios hold on a shared,
//! noisy machine even when the absolute figures move. Each scenario returns a [`Report`]: a
//! table for people, the same numbers as JSON for scripts, and the targets the issue set with
//! the figure measured beside each, met or not.
//!
//! | scenario | what it measures | module |
//! |---|---|---|
//! | `link` | goodput of a 4 MB update over a shaped 100 Mbit/s link (2, 50, 200, 400 ms RTT; a reordering and a bursty link at 50 ms) | [`link`] |
//! | `loss` | the same with 1% of block responses dropped (5% at 200 ms) | [`link`] |
//! | `fleet` | N simulated devices over TLS to one `ferrota serve` | [`fleet`] |
//! | `activation` | activation and rollback beside copying into a slot (simulated flash time) | [`activation`] |
//! | `verify` | boot verification of a full bank beside `openssl dgst -sha256` | [`verify`] |
//! | `rollout` | a staged rollout to 10,000 simulated devices: a bad release's reach, the engine's cost | [`rollout`] |
//! | `delta` | packed full images and deltas beside detools and bsdiff: sizes, wire bytes, apply time, device RAM | [`delta`] |
//! | `cluster` | the fleet through RabbitMQ, workers and PostgreSQL beside one process; `--faults`: the fault test | [`cluster`] |
//!
//! `all` runs the first seven; `cluster` needs PostgreSQL, RabbitMQ and SeaweedFS installed
//! (`.ci/run` installs them) and runs only when named.
//!
//! `--short` runs a small variant of each (the CI smoke test): the same code paths, smaller
//! sizes, and no timing claims.

pub mod activation;
pub mod cluster;
pub mod delta;
pub mod fleet;
pub mod link;
pub mod procstat;
pub mod report;
pub mod rollout;
pub mod verify;

use std::path::PathBuf;

pub use report::{Report, Table, Target};

/// The scenarios, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Goodput over a shaped link, Ferrota beside the official schedule.
    Link,
    /// The link scenario with 1% of block responses dropped (5% at 200 ms).
    Loss,
    /// A simulated fleet against one server process.
    Fleet,
    /// Activation and rollback beside copy-into-slot.
    Activation,
    /// Boot verification beside OpenSSL's SHA-256.
    Verify,
    /// A staged rollout to a simulated fleet on virtual time.
    Rollout,
    /// Packed full images and delta updates beside detools and bsdiff.
    Delta,
    /// The fleet through the distributed deployment (not in [`Scenario::ALL`]: it needs the
    /// engines installed).
    Cluster,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Link,
        Scenario::Loss,
        Scenario::Fleet,
        Scenario::Activation,
        Scenario::Verify,
        Scenario::Rollout,
        Scenario::Delta,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Link => "link",
            Scenario::Loss => "loss",
            Scenario::Fleet => "fleet",
            Scenario::Activation => "activation",
            Scenario::Verify => "verify",
            Scenario::Rollout => "rollout",
            Scenario::Delta => "delta",
            Scenario::Cluster => "cluster",
        }
    }
}

/// What every scenario needs to know about the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The small CI variant: the same paths, small sizes, no claims.
    pub short: bool,
    /// The `ferrota` executable, for scenarios that run `ferrota serve` as its own process (the
    /// fleet measures the server's memory, which needs a process of its own).
    pub ferrota_exe: PathBuf,
    /// Progress lines on stderr (the table goes to stdout).
    pub progress: bool,
    /// `cluster` only: run the fault test instead of the measurement.
    pub faults: bool,
    /// `delta` only: the directory of release pairs (`scripts/delta-pairs.sh`); `None` is
    /// [`delta::DEFAULT_PAIRS`].
    pub delta_pairs: Option<PathBuf>,
}

impl Options {
    /// Prints a progress line on stderr when progress is on.
    pub fn say(&self, line: impl AsRef<str>) {
        if self.progress {
            eprintln!("bench: {}", line.as_ref());
        }
    }
}

/// Why a scenario could not run (a missed target is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[error("{scenario}: {message}")]
pub struct BenchError {
    /// The scenario.
    pub scenario: &'static str,
    /// What went wrong.
    pub message: String,
}

impl BenchError {
    /// An error of `scenario`.
    pub fn new(scenario: Scenario, message: impl Into<String>) -> BenchError {
        BenchError {
            scenario: scenario.name(),
            message: message.into(),
        }
    }
}

/// Runs one scenario.
pub fn run(scenario: Scenario, opts: &Options) -> Result<Report, BenchError> {
    match scenario {
        Scenario::Link => link::run(opts, false),
        Scenario::Loss => link::run(opts, true),
        Scenario::Fleet => fleet::run(opts),
        Scenario::Activation => activation::run(opts),
        Scenario::Verify => verify::run(opts),
        Scenario::Rollout => rollout::run(opts),
        Scenario::Delta => delta::run(opts),
        Scenario::Cluster => cluster::run(opts),
    }
}
