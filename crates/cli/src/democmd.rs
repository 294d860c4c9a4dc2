//! `ferrota demo`: runs `ferrota_lab::demo` (server in-process on loopback ports chosen at
//! run time, a temporary directory, no external service) and prints its table. Exits non-zero
//! if any step misbehaves.

use anyhow::{Result, bail};
use clap::Args;

/// `ferrota demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Only the table (no board log).
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the demo.
pub fn run(a: &DemoArgs) -> Result<()> {
    let rt = crate::servecmd::runtime()?;
    let t = std::time::Instant::now();
    let rows = rt.block_on(ferrota_lab::demo::run(a.quiet))?;
    println!("\n{}", ferrota_lab::demo::table(&rows));
    let bad: Vec<_> = rows.iter().filter(|r| !r.ok).map(|r| r.step).collect();
    println!("total wall time {:.1} s", t.elapsed().as_secs_f64());
    if !bad.is_empty() {
        bail!("steps {bad:?} did not behave as shown");
    }
    println!("all {} steps behaved as shown", rows.len());
    Ok(())
}
