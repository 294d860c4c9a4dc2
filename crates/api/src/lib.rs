//! The Ferrota OTA server's HTTP API as Rust types, and one client of it.
//!
//! Why a crate of its own: the API's requests and answers (AWS's `CreateOTAUpdate` and the
//! describes) were defined in the server, and every client built its requests as untyped
//! `json!` — the CLI, the lab, the fleet bench (with its own hand-written HTTP/1.1 client) and
//! the tests — so a renamed field broke only at run time, in one of four places. Here they are
//! defined once, with AWS's camelCase names, and used by both sides: the server reads requests
//! into these types (with `deny_unknown_fields`, so nothing is accepted and ignored) and writes
//! answers from them; clients build requests with the [`CreateOtaUpdate`] builder and send them
//! with [`Client`], which reads AWS's error JSON into an [`ApiError`]. This crate does not
//! depend on the server, so a client links no broker, TLS or SQLite.
//!
//! The checks of a request (limits, known targets, signatures) stay in the server: one place
//! decides, and a request built by hand is judged exactly as a built one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
mod client;
pub mod jobconfig;
mod types;
pub mod wavespec;

pub use client::{ANSWER_MAX, Client, Error};
pub use jobconfig::*;
pub use types::*;
