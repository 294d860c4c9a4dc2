//! Client mode: the Jobs and Streams services on an external MQTT broker (mosquitto, EMQX,
//! VerneMQ…) instead of this process's broker — the scale-out shape of DESIGN.md.
//!
//! ```text
//!  devices ─TLS─▶ external broker ◀─TLS (service certificate)─ bridge::run ─▶ services ─▶ jobs/streams
//!                   ACL: $aws/things/%u/#                        (one MQTT client)        store
//! ```
//!
//! * One rumqttc client (mutual TLS, *ring*) subscribes at QoS 1 to the request topics
//!   ([`REQUEST_FILTERS`], optionally as `$share/<group>/…` so several server instances split
//!   the load) and hands each PUBLISH to [`crate::services::on_publish`] — the same code as the
//!   in-process path. The thing is the topic's `<thing>` level: the external broker's ACL (e.g.
//!   mosquitto's `pattern readwrite $aws/things/%u/#` with `use_identity_as_username`) is what
//!   binds a device to its own topics; our [`crate::policy`] is not consulted.
//! * Replies, notifications and stream blocks leave through [`Outbound`] (set on the
//!   [`Broker`] with [`Broker::set_outbound`]): they are PUBLISHed on the external broker,
//!   which delivers them **only to subscribed clients**. AWS (and our in-process broker) deliver
//!   Jobs responses to the requester unsubscribed; a device that relies on that gets nothing here.
//! * Requests are acknowledged (manual PUBACK) after the service committed them; a store
//!   failure leaves the PUBLISH unacknowledged, as in-process.
//! * Requests are handled one at a time, in arrival order (one worker task).
//! * Clean session: requests published while the service is disconnected are lost to it; the
//!   devices retry (the agent re-asks `$next` on its timers).
//! * What the external broker owns in this mode: device authentication, the per-thing ACL,
//!   certificate revocation (its CRL: our revocation only updates `crl.pem`, which the broker
//!   must be pointed at and reload) and the `[policy]` additions (not applied here).
//! * Configured by `[broker]` in [`crate::config`]; [`crate::server::Server::run`] then serves
//!   no MQTT itself (its listener stays bound but unused).
//! * Tested against Debian's mosquitto 2.0.11 in `crates/device/tests/mosquitto.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::services::{self, Outcome};
use crate::tls::TlsError;

pub use crate::context::Outbound;

/// The request topics the services subscribe to. `jobs/+/get` covers `$next/get` and
/// `<jobId>/get`; `jobs/+/update` also catches malformed `jobs//update` (answered InvalidTopic).
/// The Device Shadow's requests (issue 16) come last, so the indexes above stay as they were.
pub const REQUEST_FILTERS: [&str; 11] = [
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
    "$aws/things/+/streams/+/get/cbor",
    "$aws/things/+/streams/+/get/json",
    "$aws/things/+/streams/+/describe/cbor",
    "$aws/things/+/streams/+/describe/json",
    "$aws/things/+/shadow/update",
    "$aws/things/+/shadow/get",
    "$aws/things/+/shadow/delete",
];

/// How to reach the external broker.
#[derive(Clone)]
pub struct External {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// MQTT client id (mosquitto with `use_identity_as_username` takes the user name from the
    /// certificate's CN, not from this).
    pub client_id: String,
    /// CA certificate(s) that signed the broker's certificate, PEM.
    pub ca_pem: String,
    /// The service's certificate chain, PEM.
    pub cert_pem: String,
    /// The service's key, PEM.
    pub key_pem: String,
    /// `Some(group)`: subscribe as `$share/<group>/<filter>` (several instances, one delivery).
    pub share_group: Option<String>,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("share_group", &self.share_group)
            .finish_non_exhaustive()
    }
}

impl External {
    /// Parses `mqtts://host:port` (port defaults to 8883).
    pub fn parse_url(url: &str) -> Option<(String, u16)> {
        let rest = url.strip_prefix("mqtts://")?.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (rest, 8883),
        };
        (!host.is_empty()).then(|| (host.to_string(), port))
    }

    /// Host and port of `cfg`'s `[broker] external` (client mode), `None` without one: where
    /// the services connect, and so where devices connect too (their bundles name it). The
    /// one reading of the URL for the server and the CLI.
    pub fn address(cfg: &crate::config::Config) -> Result<Option<(String, u16)>, String> {
        cfg.broker
            .external
            .as_deref()
            .map(|url| {
                Self::parse_url(url)
                    .ok_or_else(|| format!("[broker] external: {url:?} is not mqtts://host:port"))
            })
            .transpose()
    }

    /// The `[broker]` section of `cfg`: `None` without `external`. The default service
    /// certificate (`<data>/ca/service.crt.pem`, CN = `client_id`) is issued by the fleet CA
    /// on first use.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Option<External>, String> {
        let b = &cfg.broker;
        let Some((host, port)) = Self::address(cfg)? else {
            return Ok(None);
        };
        let ca_dir = cfg.ca_dir();
        let rd = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let (cert_p, key_p) = match (&b.cert, &b.key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) => {
                let (c, k) = (
                    ca_dir.join("service.crt.pem"),
                    ca_dir.join("service.key.pem"),
                );
                if !c.exists() {
                    let ca = crate::ca::Ca::load(&ca_dir).map_err(|e| e.to_string())?;
                    let i = ca.issue_thing(&b.client_id).map_err(|e| e.to_string())?;
                    crate::ca::write_file(&k, i.key_pem.as_bytes(), true)
                        .map_err(|e| e.to_string())?;
                    crate::ca::write_file(&c, i.cert_pem.as_bytes(), false)
                        .map_err(|e| e.to_string())?;
                    tracing::info!(cert = %c.display(), cn = %b.client_id, "issued the service certificate");
                }
                (c, k)
            }
            _ => return Err("[broker]: set both cert and key, or neither".into()),
        };
        let ca_p =
            b.ca.clone()
                .unwrap_or_else(|| crate::ca::Ca::cert_path(&ca_dir));
        Ok(Some(External {
            host,
            port,
            client_id: b.client_id.clone(),
            ca_pem: rd(&ca_p)?,
            cert_pem: rd(&cert_p)?,
            key_pem: rd(&key_p)?,
            share_group: b.share_group.clone(),
        }))
    }

    /// The rustls client configuration (*ring*, mutual TLS).
    pub fn client_tls(&self) -> Result<rustls::ClientConfig, TlsError> {
        let pem = |e: rustls_pki_types::pem::Error| TlsError::Pem(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.map_err(pem)?)?;
        }
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(pem)?;
        Ok(
            rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)?,
        )
    }

    fn filters(&self) -> Vec<String> {
        REQUEST_FILTERS
            .iter()
            .map(|f| match &self.share_group {
                Some(g) => format!("$share/{g}/{f}"),
                None => f.to_string(),
            })
            .collect()
    }
}

/// [`Outbound`] over a rumqttc client.
struct Client(AsyncClient);

impl Outbound for Client {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if let Err(e) = self.0.try_publish(topic, qos, false, payload.to_vec()) {
            tracing::warn!(topic, error = %e, "external broker: publish dropped");
        }
    }
}

/// The thing of `$aws/things/<thing>/…`.
pub(crate) fn thing_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(ferrota_proto::topic::THINGS_PREFIX)?
        .split('/')
        .next()
        .filter(|t| !t.is_empty())
}

/// Runs the services as a client of `ext` until `shutdown` resolves: connects (retrying with
/// a back-off of 100 ms doubling to 5 s), subscribes to the request topics on every
/// connection, and routes the broker's messages (set as its [`Outbound`]). Fails at once if
/// the TLS material is unusable or the broker already has an outbound sink.
pub async fn run(
    broker: Arc<Broker>,
    ext: External,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), TlsError> {
    let tls = ext.client_tls()?;
    let mut o = MqttOptions::new(&ext.client_id, &ext.host, ext.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_manual_acks(true);
    o.set_max_packet_size(
        broker.limits.max_packet_size.max(512 * 1024),
        broker.limits.max_packet_size.max(512 * 1024),
    );
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    let (client, mut el) = AsyncClient::new(o, 4096);
    if !broker.set_outbound(Arc::new(Client(client.clone()))) {
        return Err(TlsError::Pem(
            "the broker already has an outbound sink".into(),
        ));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<rumqttc::Publish>();
    let worker = {
        let (broker, client) = (broker.clone(), client.clone());
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let topic = p.topic.as_str();
                let out = match thing_of(topic) {
                    // The thing stands in for the client id: replies are published on the
                    // broker, not addressed to a session.
                    Some(t) => {
                        services::on_publish(&broker.services, t, t, topic, &p.payload).await
                    }
                    None => Outcome::NotMine,
                };
                if out != Outcome::Failed {
                    let _ = client.try_ack(&p);
                }
            }
        })
    };
    let filters = ext.filters();
    let pump = async {
        let mut backoff = Duration::from_millis(100);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(host = %ext.host, port = ext.port, "connected to the external broker");
                    for f in &filters {
                        if let Err(e) = client.try_subscribe(f.as_str(), QoS::AtLeastOnce) {
                            tracing::error!(filter = %f, error = %e, "subscribe failed");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "external broker connection lost; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = pump => {}
    }
    // A clean DISCONNECT (the broker then drops the session at once), flushed by the loop.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while el.poll().await.is_ok() {}
    })
    .await;
    worker.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn urls_and_topics() {
        assert_eq!(
            External::parse_url("mqtts://127.0.0.1:1883"),
            Some(("127.0.0.1".into(), 1883))
        );
        assert_eq!(
            External::parse_url("mqtts://broker.example"),
            Some(("broker.example".into(), 8883))
        );
        assert_eq!(External::parse_url("mqtt://x:1"), None);
        assert_eq!(thing_of("$aws/things/dev-1/jobs/get"), Some("dev-1"));
        assert_eq!(thing_of("other/x"), None);
        let any = |t: &str| REQUEST_FILTERS.iter().any(|f| crate::filter::matches(t, f));
        for t in [
            "$aws/things/t/jobs/$next/get",
            "$aws/things/t/jobs/j1/update",
            "$aws/things/t/jobs/start-next",
            "$aws/things/t/streams/s/get/cbor",
        ] {
            assert!(any(t), "{t}");
        }
        // The services' own output does not come back to them.
        for t in [
            "$aws/things/t/jobs/$next/get/accepted",
            "$aws/things/t/jobs/notify-next",
            "$aws/things/t/streams/s/data/cbor",
        ] {
            assert!(!any(t), "{t}");
        }
    }

    #[test]
    fn config_section_issues_the_service_certificate_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config {
            data_dir: dir.path().into(),
            ..Default::default()
        };
        assert!(External::from_config(&cfg).unwrap().is_none());
        crate::ca::Ca::init(&cfg.ca_dir(), &[]).unwrap();
        cfg = toml::from_str(&format!(
            "data_dir = {:?}\n[broker]\nexternal = \"mqtts://127.0.0.1:18883\"\nshare_group = \"g\"\n",
            dir.path()
        ))
        .unwrap();
        let e = External::from_config(&cfg).unwrap().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 18883));
        let der = CertificateDer::from_pem_slice(e.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            crate::tls::common_name(&der).as_deref(),
            Some("ferrota-services")
        );
        assert!(e.client_tls().is_ok());
        assert!(
            e.filters()
                .iter()
                .all(|f| f.starts_with("$share/g/$aws/things/+/"))
        );
        // Issued once, then reused.
        let again = External::from_config(&cfg).unwrap().unwrap();
        assert_eq!(again.cert_pem, e.cert_pem);
        cfg.broker.external = Some("tcp://x".into());
        assert!(External::from_config(&cfg).is_err());
    }

    struct Sink(Mutex<Vec<String>>);
    impl Outbound for Sink {
        fn publish(&self, topic: &str, _: Bytes, _: QoS) {
            self.0.lock().unwrap().push(topic.to_string());
        }
    }

    /// In client mode a Jobs reply is published on its topic (for subscribers of the external
    /// broker), not delivered to a local session.
    #[tokio::test]
    async fn replies_go_to_the_outbound_sink() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::memory().await.unwrap();
        let blobs = crate::store::DirBlobStore::new(dir.path()).unwrap();
        let b = Broker::new(
            Arc::new(store),
            Arc::new(blobs),
            crate::Policy::default(),
            crate::Limits::default(),
        );
        let sink = Arc::new(Sink(Mutex::new(Vec::new())));
        assert!(b.set_outbound(sink.clone()));
        assert!(!b.set_outbound(sink.clone()));
        let topic = "$aws/things/dev-1/jobs/$next/get";
        let out = services::on_publish(
            &b.services,
            "dev-1",
            "dev-1",
            topic,
            br#"{"clientToken":"x"}"#,
        )
        .await;
        assert_eq!(out, Outcome::Handled);
        assert_eq!(
            *sink.0.lock().unwrap(),
            vec!["$aws/things/dev-1/jobs/$next/get/accepted".to_string()]
        );
    }
}
