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
        Self::start_with(dir, |_| {}).await
    }

    /// Starts with a configuration adjusted by `f` (limits, max_connections).
    pub async fn start_with(dir: Arc<tempfile::TempDir>, f: impl FnOnce(&mut Config)) -> Self {
        ferrota_server::tls::install_crypto_provider();
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        f(&mut cfg);
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

/// One HTTP/1.1 request to the API on loopback; returns the status and the JSON body.
pub async fn http(
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        s.token,
        body.len()
    );
    let mut c = tokio::net::TcpStream::connect(s.http).await.unwrap();
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut out))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Connects with `b`'s certificate until the server refuses it in the TLS handshake (not at
/// CONNECT, which the store check does as soon as the revocation is committed); fails if that
/// does not happen within 5 s.
pub async fn refused_in_tls(s: &TestServer, b: &ThingBundle) -> String {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let tls = client_config(&s.ca_pem(), Some((&b.certificate_pem, &b.private_key_pem)));
        let mut c = connect_with(s.port, &b.thing_name, tls);
        let e = refused(&mut c).await;
        if !e.contains("NotAuthorized") {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the CRL was not reloaded: still refused only at CONNECT ({e})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `fileType` that is not firmware: tests stream arbitrary bytes, which `create_ota` refuses
/// as firmware (file type 141 must be a bank image).
pub const DATA_FILE_TYPE: u8 = 7;
/// A well-formed DER ECDSA signature (r = s = 1), base64: `create_ota` checks the encoding; the
/// devices of these tests do not verify it.
pub const SIGNATURE: &str = "MAYCAQECAQE=";

/// One data file of an OTA update, signed with [`SIGNATURE`].
pub fn data_file(name: &str, sha256: String) -> ferrota_server::admin::OtaFile {
    use ferrota_server::admin::*;
    OtaFile {
        file_name: name.into(),
        file_type: Some(DATA_FILE_TYPE),
        file_location: FileLocation { sha256 },
        code_signing: CodeSigning {
            custom_code_signing: CustomCodeSigning {
                signature: InlineSignature {
                    inline_document: SIGNATURE.into(),
                },
                certificate_chain: CertificateChain {
                    certificate_name: "signer.crt".into(),
                    inline_document: None,
                },
                hash_algorithm: "SHA256".into(),
                signature_algorithm: "ECDSA".into(),
            },
        },
    }
}

/// Stores `data` and creates OTA update `id` streaming it to `target` as a data file.
pub async fn data_ota(
    s: &TestServer,
    id: &str,
    target: &str,
    data: &[u8],
) -> ferrota_server::admin::OtaDescription {
    let sha = s.admin.put_file(data).unwrap();
    s.admin
        .create_ota(&ferrota_server::admin::CreateOtaUpdate {
            ota_update_id: id.into(),
            description: "test".into(),
            targets: vec![target.into()],
            files: vec![data_file("/ota/received.bin", sha)],
            aws_job_timeout_config: None,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The services without sockets, TLS or SQLite: an [`Admin`] over a broker on `store` (an
/// in-memory [`ferrota_server::store::MemoryStore`] unless a test needs SQLite), files in a
/// temporary directory, no CA (things are created in the store directly, [`Mem::thing`]).
pub struct Mem {
    pub dir: tempfile::TempDir,
    pub store: ferrota_server::store::SharedStore,
    pub broker: Arc<ferrota_server::Broker>,
    pub admin: Arc<Admin>,
}

impl Mem {
    /// Services over an in-memory store.
    pub fn new() -> Self {
        Self::over(Arc::new(ferrota_server::store::MemoryStore::new()))
    }

    /// Services over `store`.
    pub fn over(store: ferrota_server::store::SharedStore) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blobs = ferrota_server::store::DirBlobStore::new(dir.path().join("files")).unwrap();
        let broker = ferrota_server::Broker::new(
            store.clone(),
            Arc::new(blobs),
            ferrota_server::Policy::default(),
            ferrota_server::Limits::default(),
        );
        let admin = Arc::new(Admin {
            broker: broker.clone(),
            ca: None,
            endpoint: "localhost".into(),
            port: 8883,
        });
        Mem {
            dir,
            store,
            broker,
            admin,
        }
    }

    /// Registers a thing (no certificate).
    pub async fn thing(&self, name: &str) {
        self.thing_in(name, &[]).await;
    }

    /// Registers a thing in these groups (no certificate).
    pub async fn thing_in(&self, name: &str, groups: &[&str]) {
        self.store
            .create_thing(&ferrota_server::store::Thing {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                created_at: 0,
            })
            .await
            .unwrap();
    }

    /// As [`data_ota`]: stores `data` and creates OTA update `id` streaming it to `target`.
    pub async fn data_ota(
        &self,
        id: &str,
        target: &str,
        data: &[u8],
    ) -> ferrota_server::admin::OtaDescription {
        let sha = self.admin.put_file(data).unwrap();
        self.admin
            .create_ota(&Self::data_request(id, target, &sha))
            .await
            .unwrap()
    }

    /// The firmware files stored, by name, sorted.
    pub fn stored_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("files"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// One HTTP API request, answered by the API's router in memory (no socket): status and
    /// JSON body (`Null` when the body is not JSON).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        use tower::ServiceExt as _;
        let r = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer test-token")
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => axum::body::Body::from(b.to_string()),
                None => axum::body::Body::empty(),
            })
            .unwrap();
        let router = ferrota_server::api::router(self.admin.clone(), "test-token".into());
        let resp = router.oneshot(r).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The OTA request [`data_ota`] makes, for a file already stored.
    pub fn data_request(
        id: &str,
        target: &str,
        sha: &str,
    ) -> ferrota_server::admin::CreateOtaUpdate {
        ferrota_server::admin::CreateOtaUpdate::new(id)
            .description("test")
            .target(target)
            .file(data_file("/ota/received.bin", sha.into()))
    }
}

/// An [`ferrota_server::context::Outbound`] that records what the services send, for tests
/// that drive them without a broker.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<(String, bytes::Bytes)>>);

impl ferrota_server::context::Outbound for Recorder {
    fn publish(&self, topic: &str, payload: bytes::Bytes, _qos: QoS) {
        self.0.lock().unwrap().push((topic.to_string(), payload));
    }
}

impl Recorder {
    /// Takes the messages recorded so far.
    pub fn take(&self) -> Vec<(String, bytes::Bytes)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}
