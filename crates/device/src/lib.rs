//! # ferrota-device: a simulated TRAVEO T2G CYT4BF board
//!
//! The chip (memories, boot chain, provisioning) comes from `ferrota-sim`; this crate runs the
//! CM7 app on it: the OTA agent over MQTT/TLS ([`board`]), with its configuration
//! ([`config`]).
//!
//! * [`board`]: power on → `ferrota_sim::boot_chain::boot` → the agent on the running bank,
//!   over a real MQTT connection.
//! * [`cost`]: activation and rollback in simulated flash time and operations, beside copying
//!   the same image into a fixed slot as single-bank bootloaders do (the `activation` bench).
//!
//! Nothing here reads the host clock for flash: all flash time is the device's simulated clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod config;
pub mod cost;
pub mod demo;
pub mod images;
pub mod lab;
