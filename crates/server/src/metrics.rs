//! Prometheus metrics of `ferrota serve`, served at `GET /metrics` ([`crate::api`]) in the
//! OpenMetrics text format that `prometheus-client` encodes (content type [`CONTENT_TYPE`];
//! Prometheus reads it natively).
//!
//! Two kinds of numbers, kept apart on purpose:
//!
//! - **What this process did** (connections, TLS handshakes, MQTT packets, stream blocks, store
//!   latency): counters, a gauge and a histogram in a [`Registry`], updated on the hot path.
//!   Every label value comes from a small fixed set ([`Packet`], [`TlsFailure`], the store's
//!   method names): never a thing name, a topic or an error's text, so the number of series
//!   stays bounded whatever devices send. Each counter of a label set is resolved once, at
//!   start, so counting a packet is one atomic add (no lock, no hash).
//! - **What the fleet is** (job executions by state, rollout progress): read from the store at
//!   scrape time ([`Metrics::encode`]: two aggregate queries,
//!   [`Store::execution_status_totals`] and [`crate::store::RolloutStore::rollout_progress`]),
//!   not counted: several workers over one database, or a restarted server, report the same
//!   numbers, and a finished rollout's series disappear instead of going stale. The
//!   `ota_update_id` label is bounded by the rollouts active at once (the operator creates
//!   them), never by what devices send. When the store
//!   fails, the scrape still answers with the process's metrics and `ferrota_store_up 0`
//!   (a failed scrape would hide the counters exactly when they matter).
//!
//! Store latency is measured at one seam: [`TimedStore`], the [`Store`] the services
//! ([`crate::context::Services`]) hold, times every call made through them (Jobs, Streams,
//! the Shadow, the rollout engine, the operator actions) under its method name.

mod timed;

use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::store::Store;
pub use timed::TimedStore;

/// The content type of [`Metrics::encode`]'s text: OpenMetrics 1.0, which is what
/// `prometheus-client` encodes (counters as `<name>_total`, a closing `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric's name starts with this (`ferrota_…`).
pub const PREFIX: &str = "ferrota";

/// The store-latency buckets, in seconds: from an in-memory call (~10 µs) to a PostgreSQL
/// transaction under load (seconds).
const STORE_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// AWS's `JobExecutionStatus` names: every one is reported (0 when none), so a dashboard's
/// series never vanish.
pub const EXECUTION_STATES: [&str; 8] = [
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "REJECTED",
    "REMOVED",
    "CANCELED",
];

/// An MQTT control packet type (the `packet` label of the message counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet {
    Connect,
    Connack,
    Publish,
    Puback,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
}

impl Packet {
    /// Every packet type, in declaration order (a type's index is its discriminant).
    pub const ALL: [Packet; 11] = [
        Packet::Connect,
        Packet::Connack,
        Packet::Publish,
        Packet::Puback,
        Packet::Subscribe,
        Packet::Suback,
        Packet::Unsubscribe,
        Packet::Unsuback,
        Packet::Pingreq,
        Packet::Pingresp,
        Packet::Disconnect,
    ];

    /// The label value (`publish`, `puback`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Packet::Connect => "connect",
            Packet::Connack => "connack",
            Packet::Publish => "publish",
            Packet::Puback => "puback",
            Packet::Subscribe => "subscribe",
            Packet::Suback => "suback",
            Packet::Unsubscribe => "unsubscribe",
            Packet::Unsuback => "unsuback",
            Packet::Pingreq => "pingreq",
            Packet::Pingresp => "pingresp",
            Packet::Disconnect => "disconnect",
        }
    }
}

/// Why a TLS handshake on the MQTT port failed (the `reason` label): a fixed set, read from
/// rustls's error ([`TlsFailure::of`]), never the error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client sent no certificate (mutual TLS is required).
    NoCertificate,
    /// The client certificate's issuer is not a CA the server trusts.
    UnknownCa,
    /// The client certificate is on a CRL.
    Revoked,
    /// The client certificate is expired or not yet valid.
    Expired,
    /// The client certificate was refused for another reason (bad signature, wrong usage…).
    /// A certificate of another Ferrota fleet lands here: its CA has this CA's name but not
    /// its key, so the issuer is found and the signature fails.
    BadCertificate,
    /// The handshake did not end within `tls_handshake_timeout`.
    Timeout,
    /// Closed while pending because too many connections were pending ([`crate::gate`]).
    Evicted,
    /// Anything else (protocol error, connection reset…).
    Other,
}

impl TlsFailure {
    /// Every reason, in declaration order (a reason's index is its discriminant).
    pub const ALL: [TlsFailure; 8] = [
        TlsFailure::NoCertificate,
        TlsFailure::UnknownCa,
        TlsFailure::Revoked,
        TlsFailure::Expired,
        TlsFailure::BadCertificate,
        TlsFailure::Timeout,
        TlsFailure::Evicted,
        TlsFailure::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::NoCertificate => "no_certificate",
            TlsFailure::UnknownCa => "unknown_ca",
            TlsFailure::Revoked => "revoked",
            TlsFailure::Expired => "expired",
            TlsFailure::BadCertificate => "bad_certificate",
            TlsFailure::Timeout => "timeout",
            TlsFailure::Evicted => "evicted",
            TlsFailure::Other => "other",
        }
    }

    /// The reason of a failed `tokio_rustls` accept (an I/O error that carries rustls's
    /// error when rustls refused the peer).
    pub fn of(e: &std::io::Error) -> TlsFailure {
        use rustls::{CertificateError, Error};
        let Some(r) = e.get_ref().and_then(|x| x.downcast_ref::<Error>()) else {
            return TlsFailure::Other;
        };
        match r {
            Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsFailure::UnknownCa,
                CertificateError::Revoked => TlsFailure::Revoked,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
                _ => TlsFailure::BadCertificate,
            },
            _ => TlsFailure::Other,
        }
    }
}

type Labels = [(&'static str, &'static str); 1];
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The process's metrics (see the module docs). One per [`crate::context::Services`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections_accepted: Counter,
    tls_handshakes: Counter,
    tls_failures: Vec<Counter>,
    packets_in: Vec<Counter>,
    packets_out: Vec<Counter>,
    stream_bytes: Counter,
    stream_blocks: Counter,
    store_ops: HistogramFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts one open MQTT connection while it lives ([`Metrics::connection_opened`]).
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let connections_open = Gauge::default();
        registry.register(
            "mqtt_connections_open",
            "MQTT connections open now (CONNECT accepted, not yet ended)",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "mqtt_connections_accepted",
            "MQTT connections whose CONNECT was accepted (CONNACK 0)",
            connections_accepted.clone(),
        );
        let tls_handshakes = Counter::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the MQTT port that ended, successful or not",
            tls_handshakes.clone(),
        );
        let failures = Family::<Labels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes on the MQTT port that failed, by reason",
            failures.clone(),
        );
        let tls_failures = TlsFailure::ALL
            .iter()
            .map(|r| failures.get_or_create_owned(&[("reason", r.as_str())]))
            .collect();
        let packets = |registry: &mut Registry, name: &str, help: &str| {
            let f = Family::<Labels, Counter>::default();
            registry.register(name, help, f.clone());
            Packet::ALL
                .iter()
                .map(|p| f.get_or_create_owned(&[("packet", p.as_str())]))
                .collect::<Vec<_>>()
        };
        let packets_in = packets(
            &mut registry,
            "mqtt_messages_received",
            "MQTT control packets received from clients, by type",
        );
        let packets_out = packets(
            &mut registry,
            "mqtt_messages_sent",
            "MQTT control packets sent to clients, by type",
        );
        let stream_bytes = Counter::default();
        registry.register_with_unit(
            "stream_sent",
            "Firmware bytes sent in stream data blocks (block payloads, before encoding)",
            Unit::Bytes,
            stream_bytes.clone(),
        );
        let stream_blocks = Counter::default();
        registry.register(
            "stream_blocks_sent",
            "Stream data blocks sent",
            stream_blocks.clone(),
        );
        let store_ops: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS));
        registry.register_with_unit(
            "store_operation_duration",
            "Duration of store calls made by the services, by store method",
            Unit::Seconds,
            store_ops.clone(),
        );
        Metrics {
            registry,
            connections_open,
            connections_accepted,
            tls_handshakes,
            tls_failures,
            packets_in,
            packets_out,
            stream_bytes,
            stream_blocks,
            store_ops,
        }
    }

    /// Counts an accepted MQTT connection and holds it open until the result is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.connections_accepted.inc();
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    /// Counts a TLS handshake that ended: `Ok` completed, `Err` failed for that reason.
    pub fn tls_handshake(&self, r: Result<(), TlsFailure>) {
        self.tls_handshakes.inc();
        if let Err(reason) = r {
            self.tls_failures[reason as usize].inc();
        }
    }

    /// Counts a packet received from a client.
    pub fn packet_in(&self, p: Packet) {
        self.packets_in[p as usize].inc();
    }

    /// Counts a packet sent to a client.
    pub fn packet_out(&self, p: Packet) {
        self.packets_out[p as usize].inc();
    }

    /// Counts a stream data block of `bytes` payload bytes sent.
    pub fn stream_block_sent(&self, bytes: usize) {
        self.stream_blocks.inc();
        self.stream_bytes.inc_by(bytes as u64);
    }

    /// Records how long the store call `op` took.
    pub fn store_op(&self, op: &'static str, took: Duration) {
        self.store_ops
            .get_or_create(&[("op", op)])
            .observe(took.as_secs_f64());
    }

    /// The exposition text: this process's metrics, then the fleet's read from `store` now
    /// (see the module docs), then `# EOF`.
    pub async fn encode(&self, store: &dyn Store) -> Result<String, std::fmt::Error> {
        // The store first, so this scrape's own reads are in the latency histogram.
        let totals = store.execution_status_totals().await;
        let progress = match &totals {
            Ok(_) => store.rollout_progress().await,
            Err(_) => Ok(Vec::new()),
        };
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        let mut fleet = Registry::with_prefix(PREFIX);
        let up = Gauge::<i64>::default();
        fleet.register(
            "store_up",
            "1 if the last scrape read the fleet's numbers from the store, 0 if the store failed",
            up.clone(),
        );
        match (totals, progress) {
            (Ok(totals), Ok(progress)) => {
                up.set(1);
                let states = Family::<Labels, Gauge>::default();
                fleet.register(
                    "job_executions",
                    "Job executions in the store, by AWS JobExecutionStatus",
                    states.clone(),
                );
                for s in EXECUTION_STATES {
                    let n = totals
                        .iter()
                        .filter(|(x, _)| x.as_str() == s)
                        .map(|(_, n)| *n)
                        .sum::<u64>();
                    states
                        .get_or_create(&[("state", s)])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                let targets = Family::<Vec<(&'static str, String)>, Gauge>::default();
                fleet.register(
                    "rollout_targets",
                    "Targets of each active rollout's wave (notified or not)",
                    targets.clone(),
                );
                let execs = Family::<Vec<(&'static str, String)>, Gauge>::default();
                fleet.register(
                    "rollout_executions",
                    "Executions of each active rollout's wave, by AWS JobExecutionStatus",
                    execs.clone(),
                );
                for p in progress {
                    let n = i64::try_from(p.count).unwrap_or(i64::MAX);
                    let wave = p.wave.to_string();
                    targets
                        .get_or_create(&vec![
                            ("ota_update_id", p.ota_update_id.clone()),
                            ("wave", wave.clone()),
                        ])
                        .inc_by(n);
                    if let Some(s) = p.status {
                        execs
                            .get_or_create(&vec![
                                ("ota_update_id", p.ota_update_id),
                                ("wave", wave),
                                ("state", s.as_str().to_string()),
                            ])
                            .set(n);
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "metrics: the store failed, fleet numbers left out");
                up.set(0);
            }
        }
        encode_registry(&mut out, &fleet)?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError, Error};

    fn io(e: Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn rustls_errors_map_to_the_fixed_reasons() {
        let cases = [
            (
                io(Error::NoCertificatesPresented),
                TlsFailure::NoCertificate,
            ),
            (
                io(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
                TlsFailure::UnknownCa,
            ),
            (
                io(Error::InvalidCertificate(CertificateError::Revoked)),
                TlsFailure::Revoked,
            ),
            (
                io(Error::InvalidCertificate(CertificateError::Expired)),
                TlsFailure::Expired,
            ),
            (
                io(Error::InvalidCertificate(CertificateError::BadSignature)),
                TlsFailure::BadCertificate,
            ),
            (io(Error::DecryptError), TlsFailure::Other),
            (
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
                TlsFailure::Other,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(TlsFailure::of(&e), want, "{e}");
        }
    }

    #[test]
    fn the_lists_are_in_declaration_order_with_distinct_labels() {
        for (i, p) in Packet::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        for (i, r) in TlsFailure::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut labels: Vec<&str> = Packet::ALL.iter().map(|p| p.as_str()).collect();
        labels.extend(TlsFailure::ALL.iter().map(|r| r.as_str()));
        let n = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), n);
        for s in EXECUTION_STATES {
            assert_eq!(
                ferrota_proto::JobStatus::from_wire(s).map(|x| x.as_str()),
                Some(s)
            );
        }
    }

    #[test]
    fn each_failure_counts_under_its_own_reason_and_as_a_handshake() {
        let m = Metrics::new();
        m.tls_handshake(Ok(()));
        for r in TlsFailure::ALL {
            m.tls_handshake(Err(r));
        }
        m.tls_handshake(Err(TlsFailure::Revoked));
        assert_eq!(m.tls_handshakes.get(), 2 + TlsFailure::ALL.len() as u64);
        for (i, r) in TlsFailure::ALL.iter().enumerate() {
            let want = if *r == TlsFailure::Revoked { 2 } else { 1 };
            assert_eq!(m.tls_failures[i].get(), want, "{r:?}");
        }
        for p in Packet::ALL {
            m.packet_in(p);
        }
        m.packet_out(Packet::Puback);
        assert!(m.packets_in.iter().all(|c| c.get() == 1));
        assert_eq!(m.packets_out[Packet::Puback as usize].get(), 1);
        assert_eq!(m.packets_out.iter().map(Counter::get).sum::<u64>(), 1);
    }
}
