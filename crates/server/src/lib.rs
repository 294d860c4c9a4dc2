//! # ferrota-server: the OTA endpoint
//!
//! One process does for one fleet what AWS IoT Core, AWS IoT Jobs, MQTT-based file delivery, S3
//! and the OTA update service do: an MQTT 3.1.1 server over mutual TLS whose client identity
//! is the certificate's thing name, AWS-IoT-style policies, the Jobs and Streams services on
//! `$aws/things/<thing>/…`, OTA updates, and an operator HTTP API.
//!
//! ```text
//!  TLS (tls) ─▶ session::serve_connection ─▶ broker (registry, routing, bounded queues)
//!    identity = cert CN     │ policy check on every PUBLISH / SUBSCRIBE
//!                           └▶ services ─▶ jobs (Jobs MQTT API) ─┐  over context::Services:
//!                                       ├▶ streams (GetStream) ──┤  Store + BlobStore + Clock
//!                                       └▶ shadow (Device Shadow)┤
//!  api (axum, operator token) ─▶ admin (things, certificates, OTA updates)   + Outbound (replies
//!                                                                │  go back through the broker
//!                                                                │  or an external one)
//!                                                                └▶ store (SQLite or memory) + blobs (files)
//! ```
//!
//! | module | concern |
//! |---|---|
//! | [`filter`] | MQTT topic filters |
//! | [`query`] | fleet-index queries (AWS fleet indexing's syntax, a documented subset) over a thing's index document |
//! | [`policy`] | per-thing authorisation |
//! | [`store`] | [`Store`](store::Store) (SQLite, in-memory) and content-addressed files |
//! | [`context`] | what the services run on: `Store + BlobStore + Clock + Outbound` ([`context::Services`]) |
//! | [`metrics`] | Prometheus metrics (`GET /metrics`): counters of the sessions and TLS, store latency, the fleet's numbers read at scrape time |
//! | [`faults`] | stream fault injection (tests and benchmarks) |
//! | [`jobs`], [`streams`], [`timeouts`] | AWS IoT Jobs and Streams, execution timers → TIMED_OUT |
//! | [`rollout`] | fleet rollouts: rate, abort, retry, scheduling, continuous targets, gated waves |
//! | [`shadow`] | the classic AWS IoT Device Shadow (update/get/delete, delta, documents) |
//! | [`services`] | which PUBLISH goes to Jobs, which to Streams, which to the Shadow |
//! | [`broker`] | sessions registry, routing, limits; the local [`context::Outbound`] |
//! | [`gate`] | pre-authentication bounds, open-files limit |
//! | [`session`] | one MQTT connection over any `AsyncRead + AsyncWrite` |
//! | [`tls`], [`ca`] | mutual TLS, the fleet CA, thing certificates, CRL |
//! | [`trust`] | signed update metadata (#20): the timestamp of every Jobs answer, the check of a metadata file at OTA create |
//! | [`bridge`] | client mode: the services on an external broker (mosquitto, EMQX…) |
//! | [`inventory`] | what each thing runs and where it stands, from its shadow, connection and jobs |
//! | [`groups`] | static and dynamic thing groups: members now, `is_member` (for CONTINUOUS rollouts) |
//! | [`admin`] | operator actions: things, OTA updates (over `Services` and a narrow [`admin::Sessions`], no broker) |
//! | [`api`] | the HTTP API |
//! | [`config`], [`server`] | configuration file and `serve` |
//!
//! ## Layers (no import circle)
//!
//! A module imports only modules of lower layers (and, inside `store`, its own files). Issue
//! 15 found ten modules in one circle (`bridge → broker → streams → broker`, `jobs ↔
//! timeouts`, `tls → session → services → jobs → broker → bridge → tls`…): the services took
//! `&Broker`, the broker held the client mode's `Outbound` and the streams' fault injector.
//! Now the services take [`context::Services`], the `Outbound` trait and the clock live in
//! [`context`], the fault injector in [`faults`], and the expiry of one execution in
//! [`jobs`] (which [`timeouts`] runs). The `crate::` import graph, without comments and test
//! modules (regenerate it with `python3 scripts/modgraph.py`, which fails on a circle):
//!
//! ```text
//! 0  filter, store, tls, trust
//! 1  policy → filter            context → metrics, store, trust   ca → tls
//!    metrics → store
//!    query → store
//! 2  faults → context           jobs → context, store      shadow → context, store
//! 3  streams → context, faults, store
//!    timeouts → context, jobs, store
//!    rollout → context, jobs, store
//!    broker → context, faults, filter, policy, store
//! 4  services → context, jobs, shadow, streams
//!    inventory → context, shadow, store
//!    groups → context, inventory, query, store
//!    admin → ca, context, groups, inventory, jobs, query, rollout, store, timeouts
//!                                                    (never the broker or the sessions:
//!                                                     `tests/layers.rs` holds it to that)
//!    gate → broker              config → broker, policy
//! 5  session → broker, filter, services, store, tls
//!    bridge → broker, ca, config, context, services, tls
//!    api → admin, shadow
//! 6  server → admin, api, bridge, broker, ca, config, context, gate, rollout, session,
//!             store, timeouts, tls
//! ```
//!
//! So Jobs, Streams, the Device Shadow and the timers run without sockets, TLS or SQLite: give
//! [`context::Services`] a [`store::MemoryStore`], a clock and an `Outbound` (the broker's
//! sessions, an external broker, or a test's recorder).
//!
//! Two things the server no longer defines itself: the HTTP API's requests and answers are
//! `ferrota-api`'s types (re-exported from [`admin`]; the server reads them strictly, the
//! CLI, lab, bench and tests build them with the same builder), and every MQTT reply body
//! (Jobs documents and summaries, stream blocks, descriptions, rejections, in JSON and CBOR)
//! is encoded by `ferrota-proto` (its `alloc` feature), the crate the device decodes them
//! with.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
#[cfg(feature = "serve")]
pub mod amqp;
pub mod api;
pub mod bridge;
pub mod broker;
pub mod broker_auth;
pub mod ca;
pub mod config;
pub mod context;
pub mod device_doc;
pub mod faults;
pub mod filter;
pub mod gate;
pub mod groups;
pub mod https;
pub mod inventory;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod operators;
pub mod packed;
pub mod policy;
pub mod query;
pub mod rollout;
#[cfg(feature = "serve")]
pub mod server;
pub mod services;
pub mod session;
pub mod shadow;
pub mod store;
pub mod streams;
pub mod timeouts;
pub mod tls;
pub mod trust;

pub use broker::{Broker, Limits};
pub use policy::Policy;
pub use session::{Identity, SessionEnd, serve_connection};
