//! Test harness: a server on loopback port 0 in a temporary data directory, and rumqttc
//! clients over mutual TLS (ring provider installed explicitly).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ferrota_server::admin::{Admin, ThingBundle};
use ferrota_server::config::Config;
use ferrota_server::server::Server;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, oneshot};

pub const T: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub dir: Arc<tempfile::TempDir>,
    pub cfg: Config,
    pub port: u16,
    pub admin: Arc<Admin>,
    pub token: String,
    pub http: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(Arc::new(tempfile::tempdir().unwrap())).await
    }

    pub async fn start_in(dir: Arc<tempfile::TempDir>) -> Self {
        ferrota_server::tls::install_crypto_provider();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let http = h.local_addr().unwrap();
        let server = Server::open(&cfg, port).await.unwrap();
        let admin = server.admin.clone();
        let token = server.token().to_string();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(l, Some(h), async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            dir,
            cfg,
            port,
            admin,
            token,
            http,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.take().unwrap().await;
        self.dir.clone()
    }

    pub async fn thing(&self, name: &str, groups: &[&str]) -> ThingBundle {
        let g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        self.admin.create_thing(name, &g).await.unwrap()
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.cfg.ca_dir().join("ca.crt.pem")).unwrap()
    }
}

pub fn client_config(ca_pem: &str, cert_key: Option<(&str, &str)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(ferrota_server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match cert_key {
        Some((c, k)) => {
            let chain = CertificateDer::pem_slice_iter(c.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    }
}

pub struct Client {
    pub c: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Result<Packet, String>>,
}

/// Connects; returns the client and its incoming packets (the first is the CONNACK or an error).
pub fn connect_with(port: u16, id: &str, tls: rustls::ClientConfig) -> Client {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    let (c, el) = AsyncClient::new(o, 1000);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(pump(el, tx));
    Client { c, rx }
}

async fn pump(mut el: EventLoop, tx: mpsc::UnboundedSender<Result<Packet, String>>) {
    loop {
        match el.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    }
}

pub async fn connect(s: &TestServer, b: &ThingBundle) -> Client {
    let tls = client_config(&s.ca_pem(), Some((&b.certificate_pem, &b.private_key_pem)));
    let mut c = connect_with(s.port, &b.thing_name, tls);
    match next(&mut c).await {
        Ok(Packet::ConnAck(a)) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    c
}

pub async fn next(c: &mut Client) -> Result<Packet, String> {
    tokio::time::timeout(T, c.rx.recv())
        .await
        .expect("timed out waiting for a packet")
        .unwrap_or_else(|| Err("event loop ended".into()))
}

/// The next PUBLISH (skipping acks).
pub async fn publish(c: &mut Client) -> rumqttc::Publish {
    loop {
        match next(c).await {
            Ok(Packet::Publish(p)) => return p,
            Ok(_) => {}
            Err(e) => panic!("connection failed: {e}"),
        }
    }
}

/// Waits for the connection to fail (refused or closed); returns the error text.
pub async fn refused(c: &mut Client) -> String {
    loop {
        match next(c).await {
            Err(e) => return e,
            Ok(Packet::ConnAck(a)) if a.code != rumqttc::ConnectReturnCode::Success => {
                return format!("{:?}", a.code);
            }
            Ok(_) => {}
        }
    }
}

pub async fn subscribe(c: &mut Client, filter: &str, qos: QoS) {
    c.c.subscribe(filter, qos).await.unwrap();
    loop {
        match next(c).await {
            Ok(Packet::SubAck(_)) => return,
            Ok(_) => {}
            Err(e) => panic!("subscribe failed: {e}"),
        }
    }
}
