//! The MQTT side: rumqttc over rustls (ring), with the thing's certificate. The event loop runs
//! in its own task (its `poll` is never cancelled) and reconnects with exponential back-off.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use crate::config::Loaded;

/// A TLS setup error.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file did not parse.
    #[error("{what}: {error}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
    /// rustls refused the material.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The client TLS configuration: ring provider, the root CA, the thing's certificate and key.
pub fn client_tls(cfg: &Loaded) -> Result<rustls::ClientConfig, TlsSetupError> {
    let pem = |what, error| TlsSetupError::Pem { what, error };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cfg.root_ca_pem.as_bytes()) {
        roots.add(c.map_err(|e| pem("root CA", e))?)?;
    }
    let chain = CertificateDer::pem_slice_iter(cfg.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("client certificate", e))?;
    let key =
        PrivateKeyDer::from_pem_slice(cfg.key_pem.as_bytes()).map_err(|e| pem("client key", e))?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?)
}

/// What the network task reports.
#[derive(Debug)]
pub enum Net {
    /// CONNACK accepted.
    Connected,
    /// A PUBLISH arrived.
    Message(String, bytes::Bytes),
    /// A QoS 1 publish was acknowledged.
    PubAck,
    /// The connection failed or dropped (it is retried after the back-off).
    Down(String),
}

/// Opens a client; the event loop runs in a task until the receiver is dropped.
pub fn connect(
    cfg: &Loaded,
    tls: rustls::ClientConfig,
) -> (
    AsyncClient,
    mpsc::UnboundedReceiver<Net>,
    tokio::task::JoinHandle<()>,
) {
    let c = &cfg.cfg;
    let mut o = MqttOptions::new(&c.thing_name, &c.endpoint, c.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    let (client, mut el) = AsyncClient::new(o, 1024);
    // TCP_NODELAY: a stream request is a small segment; with Nagle on, one sent while an
    // earlier segment is unacknowledged waits for the peer's delayed ACK (40 ms on Linux).
    // Mid-download the ACKs ride on the block data and nothing shows; at the start and the
    // end of a download (the first request, a lost block asked again) every request waited
    // 40 ms: a tenth of a 4 MB download at 100 Mbit/s (`ferrota bench loss`). The MCU's lwIP
    // port sends requests the same way (TCP_NODELAY on the MQTT socket).
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(pump(el, tx));
    (client, rx, task)
}

/// Back-off after a failed connection: 100 ms doubling to 5 s.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

async fn pump(mut el: EventLoop, tx: mpsc::UnboundedSender<Net>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let msg = match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF_MIN;
                Some(Net::Connected)
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Some(Net::Message(p.topic, p.payload)),
            Ok(Event::Incoming(Packet::PubAck(_))) => Some(Net::PubAck),
            Ok(_) => None,
            Err(e) => {
                if tx.send(Net::Down(e.to_string())).is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                None
            }
        };
        if let Some(m) = msg
            && tx.send(m).is_err()
        {
            return;
        }
        if tx.is_closed() {
            return;
        }
    }
}
