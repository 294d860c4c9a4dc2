//! # ferrota-lab: the seed system on one machine
//!
//! What sits above both the OTA server (`ferrota-server`) and the simulated board
//! (`ferrota-device`), so neither has to know the other: the lab starts the server in-process
//! and provisions boards against it, the demo walks through it step by step, and the cost
//! model measures activation on the chip model. The `ferrota demo` command, the CLI's tests
//! and `ferrota bench` use it; the board runtime itself stays in `ferrota-device`, the chip in
//! `ferrota-sim`.
//!
//! * [`lab`]: a fleet CA and the server on a loopback port, boot and code-signing keys, demo
//!   images, provisioned boards with their bundles ([`lab::Lab`]).
//! * [`demo`]: `ferrota demo`, one function per step over a [`demo::World`], ending with a
//!   table.
//! * [`images`]: demo image samples: bank images packed from generated payloads, boot-signed,
//!   with an OTA signature.
//! * [`sim_service`]: the real Jobs and Streams services in memory as the deterministic
//!   harness's service ([`ferrota_sim::harness::Sim`]): the agent's virtual-time tests
//!   (`tests/agent_*.rs`) run the agent against what the server ships, not a model of it.
//! * [`rollout_sim`]: a fleet rollout on virtual time through the real server and its rollout
//!   engine: `N` simulated devices, a failing share, waves, rate and abort settings; what
//!   `ferrota bench rollout` and the demo's canary step measure.
//! * [`cost`]: activation and rollback in simulated flash time and operations, beside copying
//!   the same image into a fixed slot as single-bank bootloaders do (the `activation` bench).
//!
//! ```text
//!   ferrota-cli, ferrota-bench
//!             │
//!        ferrota-lab ──────────────┐
//!        │          │              │
//!   ferrota-server  ferrota-device (board runtime: agent over MQTT/TLS)
//!                          │
//!                     ferrota-sim (chip: boot chain, provisioning, DevPlatform, test keys)
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cost;
pub mod demo;
pub mod images;
pub mod lab;
pub mod rollout_sim;
pub mod sim_service;
