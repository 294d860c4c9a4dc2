//! Scenarios `link` and `loss`: goodput over a shaped link (being built).

use crate::report::Report;
use crate::{BenchError, Options, Scenario};

/// Runs the scenario (`loss`: 1% of block responses dropped).
pub fn run(_opts: &Options, loss: bool) -> Result<Report, BenchError> {
    let s = if loss { Scenario::Loss } else { Scenario::Link };
    Err(BenchError::new(s, "not built yet"))
}
