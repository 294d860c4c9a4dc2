//! # ferrota-device: the simulated TRAVEO T2G CYT4BF board's runtime
//!
//! The chip (memories, boot chain, provisioning, the agent's flashes) comes from
//! `ferrota-sim`; this crate runs the CM7 app on it: the OTA agent over a real MQTT/TLS
//! connection ([`board`]), configured by a device bundle ([`config`]). It does not know the
//! server: the lab, the demo, the demo images and the cost model live in `ferrota-lab`, above
//! both.
//!
//! ```text
//!   power on ─▶ ferrota_sim::boot_chain::boot ─▶ Agent::new(running) ─▶ MQTT/TLS ─▶ job
//!             (ROM → DBM → switch → CM0+)        (flashes lent by ferrota_sim::platform::DevPlatform)
//! ```
//!
//! Nothing here reads the host clock for flash: all flash time is the device's simulated clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod config;
