//! # ferrota-device: a simulated TRAVEO T2G CYT4BF board
//!
//! The memories come from `ferrota-t2g`, the boot chain from `ferrota-boot`; this crate wires
//! them together the way the chip does, so a host program (the `ferrota t2g` commands, tests,
//! later the simulated board with its OTA agent) can provision a board, program banks as a
//! debugger does, boot it and look at it.
//!
//! * [`boot_chain`]: provisioning a blank device ([`boot_chain::provision`]), programming a
//!   bank image into a physical bank ([`boot_chain::program_bank`]), one boot from reset
//!   (ROM → DBM → mapping switch → CM0+ stage, [`boot_chain::boot`]) with a printable
//!   [`boot_chain::BootOutcome`], the app's update actions ([`boot_chain::activate`],
//!   [`boot_chain::confirm`], [`boot_chain::reject`]) and a [`boot_chain::DeviceReport`].
//! * [`cost`]: activation and rollback in simulated flash time and operations, beside copying
//!   the same image into a fixed slot as single-bank bootloaders do (the `activation` bench).
//!
//! ```text
//!   provision ─▶ program_bank ─▶ boot ──▶ (app) activate ─▶ boot (trial) ─▶ confirm | reject
//!   SFlash key,   debugger:       ROM S-HASH ─ DBM decide ─ switch ─ CM0+ verify ─ start CM7
//!   DBM, TOC2,    erase + rows    (SECURE)      + record     MAIN_MAP   (reset on failure)
//!   S-HASH, LC    (single-bank)
//! ```
//!
//! Nothing here reads the host clock: all time is the device's simulated clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod boot_chain;
pub mod config;
pub mod cost;
pub mod demo;
pub mod images;
pub mod lab;
