//! The engines a distributed Ferrota runs on, started as local processes: each in a directory of
//! its own, on a free loopback port, stopped when its handle is dropped.
//!
//! Tests, `ferrota bench cluster` and the fault tests need the real thing a user would run
//! (PostgreSQL, an S3-compatible server, a broker cluster), never a mock; and they must never
//! touch a system service. This crate is the one place that knows how to start each of them
//! privately: which binary, which flags, how to tell it is ready, how to stop or kill it.
//!
//! Nothing here depends on Ferrota's server: the server's tests, the lab and the bench use it,
//! so it sits at the bottom of the graph.

pub mod postgres;
mod proc;
pub mod rabbitmq;
pub mod seaweed;

pub use libc::{SIGINT, SIGKILL, SIGTERM};
pub use postgres::Postgres;
pub use proc::{free_port, pid_alive, random_hex, stop_pid};
pub use rabbitmq::{RabbitCluster, RabbitConfig};
pub use seaweed::Seaweed;

/// Why an engine could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Its binaries are not installed (the message names the package).
    #[error("{0} is not installed ({1})")]
    Missing(&'static str, &'static str),
    /// A command or the engine itself failed; the message carries its output.
    #[error("{0}")]
    Failed(String),
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// Result of this crate's operations.
pub type InfraResult<T> = Result<T, InfraError>;

/// Whether a test that needs `engine` must skip because it is not installed (`available` is
/// false): prints the one-line note and answers `true`. Under `FERROTA_REQUIRE_INFRA=1`
/// (`.ci/run` sets it) a missing engine fails the test instead, so CI never passes by
/// skipping.
pub fn skip_without(engine: &str, available: bool) -> bool {
    if available {
        return false;
    }
    if std::env::var_os("FERROTA_REQUIRE_INFRA").is_some_and(|v| v != "0") {
        panic!(
            "{engine} is not installed, and FERROTA_REQUIRE_INFRA is set: install it (.ci/run does)"
        );
    }
    eprintln!("note: {engine} is not installed; skipping (.ci/run installs it)");
    true
}
