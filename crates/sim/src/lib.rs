//! # ferrota-sim: the simulated TRAVEO T2G chip, wired
//!
//! The memories come from `ferrota-t2g`, the boot chain from `ferrota-boot`; this crate wires
//! them together the way the chip does, once, for everything that runs on the model: the
//! no_std crates' tests (`ferrota-boot`, `ferrota-agent`), the simulated board
//! (`ferrota-device`), the lab and demo (`ferrota-lab`), the QEMU harness and the benches.
//! It links neither the server nor any network stack, so testing a no_std crate through it
//! never compiles them.
//!
//! * [`boot_chain`]: provisioning a blank device ([`boot_chain::provision`]), programming a
//!   bank image into a physical bank ([`boot_chain::program_bank`]), one boot from reset
//!   (ROM → DBM → mapping switch → CM0+ stage, [`boot_chain::boot`], one pass:
//!   [`boot_chain::boot_pass`]) with a printable [`boot_chain::BootOutcome`], the app's update
//!   actions ([`boot_chain::activate`], [`boot_chain::confirm`], [`boot_chain::reject`]) and a
//!   [`boot_chain::DeviceReport`].
//! * [`platform`]: the agent's `Platform` over a device ([`platform::DevPlatform`]: the
//!   inactive bank, the resume area, the marker log), lent to the agent by the simulated board,
//!   the agent's tests and the QEMU harness alike.
//! * [`harness`]: the agent's deterministic virtual-time harness: the agent on a device, a
//!   Jobs/Streams [`harness::Service`] of the caller's choosing, a network with latency, loss,
//!   duplication and reordering ([`harness::Sim`]).
//! * [`keys`]: the fixed test signing keys (boot key, code-signing key, bench key).
//! * [`images`]: bank images built from generated payloads: the OTA file recipe
//!   ([`images::signed_ota_file`]) behind the agent's test images ([`images::ota`]) and the
//!   lab's demo images, and the cost model's large bank image.
//!
//! ```text
//!   provision ─▶ program_bank ─▶ boot ──▶ (app) activate ─▶ boot (trial) ─▶ confirm | reject
//!   SFlash key,   debugger:       ROM S-HASH ─ DBM decide ─ switch ─ CM0+ verify ─ start CM7
//!   DBM, TOC2,    erase + rows    (SECURE)      + record     MAIN_MAP   (reset on failure)
//!   S-HASH, LC    (single-bank)
//! ```
//!
//! Nothing here reads the host clock: all time is the device's simulated clock.
//!
//! ## Decision: a dev-dependency cycle, not a third crate per consumer
//! `ferrota-sim` depends on `ferrota-boot` and `ferrota-agent` (it runs their code), and their
//! integration tests depend on it. Cargo allows this for dev-dependencies: an integration test
//! links the same library `ferrota-sim` links, so one type is one type. Unit tests inside
//! `ferrota-boot` or `ferrota-agent` must not use this crate (they would see a second copy of
//! their own crate); they do not.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot_chain;
pub mod harness;
pub mod images;
pub mod keys;
pub mod platform;
pub mod service;
pub mod trust;
