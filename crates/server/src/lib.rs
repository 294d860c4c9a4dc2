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
//!                           └▶ services ─▶ jobs (Jobs MQTT API) ─┐
//!                                       └▶ streams (GetStream) ──┤
//!  api (axum, operator token) ─▶ admin (things, certificates, OTA updates)
//!                                                                └▶ store (SQLite) + blobs (files)
//! ```
//!
//! | module | concern |
//! |---|---|
//! | [`filter`] | MQTT topic filters |
//! | [`policy`] | per-thing authorisation |
//! | [`broker`] | sessions registry, routing, limits |
//! | [`gate`] | pre-authentication bounds, open-files limit |
//! | [`session`] | one MQTT connection over any `AsyncRead + AsyncWrite` |
//! | [`services`], [`jobs`], [`streams`] | AWS IoT Jobs and Streams |
//! | [`bridge`] | client mode: the services on an external broker (mosquitto, EMQX…) |
//! | [`timeouts`] | execution timers → TIMED_OUT |
//! | [`store`] | SQLite store and content-addressed files, behind traits |
//! | [`tls`], [`ca`] | mutual TLS, the fleet CA, thing certificates, CRL |
//! | [`admin`] | operator actions: things, OTA updates |
//! | [`api`] | the HTTP API |
//! | [`config`], [`server`] | configuration file and `serve` |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod bridge;
pub mod broker;
pub mod ca;
pub mod config;
pub mod filter;
pub mod gate;
pub mod jobs;
pub mod policy;
pub mod server;
pub mod services;
pub mod session;
pub mod store;
pub mod streams;
pub mod timeouts;
pub mod tls;

pub use broker::{Broker, Limits};
pub use policy::Policy;
pub use session::{Identity, SessionEnd, serve_connection};
