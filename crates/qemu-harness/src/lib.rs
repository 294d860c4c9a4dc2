//! # ferrota-qemu-harness: the DBM on emulated Cortex-M cores
//!
//! `firmware/` builds the Dual Bank Manager (`ferrota-boot` + `ferrota-image`) for the CM0+
//! (`thumbv6m-none-eabi`) and a verification harness for the CM7 (`thumbv7em-none-eabihf`).
//! QEMU has no TRAVEO T2G, so they run on `-machine microbit` (Cortex-M0) and
//! `-machine mps2-an500` (Cortex-M7), with the T2G memories placed into the emulated machine's
//! flash and RAM. This crate is what the host and the firmware share, and the host side:
//!
//! ```text
//!  host (std)                                         QEMU (no_std firmware)
//!  ferrota-t2g Device ──export──▶ sflash.bin ──────▶ SFlash window      ┐
//!  (a matrix state)               cm0p-lower.bin ──▶ lower CM0+ window  │ map::Board
//!                                 cm0p-upper.bin ──▶ upper CM0+ window  │ (address
//!                                 worklog.bin ─────▶ marker-log window  │  translation)
//!                                 inputs.bin ──────▶ inputs block       ┘
//!  ferrota-boot on the same state ─▶ report line  ==  report line ◀─ semihosting ─ DBM
//! ```
//!
//! * [`map`]: where each T2G memory lives on each emulated board (the only address
//!   translation; the firmware and the exporter both read it from here).
//! * [`inputs`]: the block that stands for what the DBM reads from registers and eFuse
//!   (life cycle, S-HASH, anti-rollback counter, USER1, board id).
//! * [`live`] and [`provision`]: the live board of issue #21 (the DBM, then the agent over
//!   Ethernet, TLS and MQTT against `ferrota serve`): its file-backed memory map and the
//!   provisioning block the host writes into it.
//! * [`report`]: the one-line decision report, written without `core::fmt` so the DBM stays
//!   small; the host writes the same line from its own decision and the two must be equal.
//! * `export` and `matrix` (feature `std`): device states to memory images, and the decision
//!   matrix run under QEMU (binary `ferrota-qemu`).
//! * `agent_run` and `agent_refusals` (feature `std`): the recorded update the CM7 replays
//!   (from Rust, `firmware/cm7-agent`, and from C through the C API, `firmware/c-agent`), and
//!   the bad scripts the C replay must refuse.
//! * `live_run` (feature `std`): `ferrota-qemu live`, issue #21's whole update scenario on the
//!   live board against `ferrota serve`, and the relay QEMU's network forward runs.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "agent")]
pub mod agent_script;
pub mod inputs;
pub mod live;
pub mod map;
pub mod provision;
pub mod report;

#[cfg(feature = "std")]
pub mod agent_refusals;
#[cfg(feature = "std")]
pub mod agent_run;
#[cfg(feature = "std")]
pub mod export;
#[cfg(feature = "std")]
pub mod live_run;
#[cfg(feature = "std")]
pub mod matrix;
