//! Scenario `fleet`: simulated devices against one server process (being built).

use crate::report::Report;
use crate::{BenchError, Options, Scenario};

/// Runs the scenario.
pub fn run(_opts: &Options) -> Result<Report, BenchError> {
    Err(BenchError::new(Scenario::Fleet, "not built yet"))
}
