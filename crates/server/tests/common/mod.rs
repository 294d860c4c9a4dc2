//! Test harness, two paths:
//! - in memory, no socket, TLS or SQLite unless asked ([`Mem`]): the real services, Admin and
//!   HTTP router over a [`ferrota_server::store::MemoryStore`] (or a SQLite file, [`Mem::open`]),
//!   a [`ManualClock`], and a [`Bus`] that routes the services' messages to [`MemDevice`]s as
//!   the broker routes them to sessions. Jobs, Streams and timeout tests run here.
//! - end to end ([`TestServer`]): a server on loopback port 0 in a temporary data directory,
//!   and rumqttc clients over mutual TLS (ring provider installed explicitly). Kept for what
//!   only the real transport shows: certificates and identity, revocation, the TLS front door.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ferrota_server::admin::{Admin, Sessions, ThingBundle};
use ferrota_server::config::Config;
use ferrota_server::context::{Clock, Outbound, Services};
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
    pub broker: Arc<ferrota_server::Broker>,
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
        let broker = server.broker.clone();
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
            broker,
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
    http_with(s, Some(&s.token), method, path, body).await
}

/// [`http`] with another token, or none (no `authorization` header).
pub async fn http_with(
    s: &TestServer,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}\
content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
    ferrota_server::admin::OtaFile::new(name, sha256, SIGNATURE).file_type(Some(DATA_FILE_TYPE))
}

/// The services without sockets, TLS or SQLite: the real [`Admin`] (no broker: its
/// [`Sessions`] is the [`Bus`]) over [`Services`] on `store` (an in-memory
/// [`ferrota_server::store::MemoryStore`] unless a test needs SQLite), files in a temporary
/// directory, a [`ManualClock`], no CA (things are created in the store directly,
/// [`Mem::thing`]). Devices attach with [`Mem::device`].
pub struct Mem {
    pub dir: Arc<tempfile::TempDir>,
    pub store: ferrota_server::store::SharedStore,
    /// Set by [`Mem::open`]: closed (WAL checkpointed) by [`Mem::close`].
    sqlite: Option<Arc<ferrota_server::store::SqliteStore>>,
    pub clock: Arc<ManualClock>,
    pub bus: Arc<Bus>,
    pub services: Arc<Services>,
    pub admin: Arc<Admin>,
}

impl Mem {
    /// Services over an in-memory store.
    pub fn new() -> Self {
        Self::over(Arc::new(ferrota_server::store::MemoryStore::new()))
    }

    /// Services over `store`.
    pub fn over(store: ferrota_server::store::SharedStore) -> Self {
        Self::build(Arc::new(tempfile::tempdir().unwrap()), store, None)
    }

    /// Services over the SQLite database `ferrota.db` of `dir` (created if missing), files in
    /// `dir`: what a server keeps across a restart ([`Mem::close`], then `open` again).
    pub async fn open(dir: Arc<tempfile::TempDir>) -> Self {
        let sqlite = Arc::new(
            ferrota_server::store::SqliteStore::open(&dir.path().join("ferrota.db"))
                .await
                .unwrap(),
        );
        Self::build(dir, sqlite.clone(), Some(sqlite))
    }

    fn build(
        dir: Arc<tempfile::TempDir>,
        store: ferrota_server::store::SharedStore,
        sqlite: Option<Arc<ferrota_server::store::SqliteStore>>,
    ) -> Self {
        let blobs = ferrota_server::store::DirBlobStore::new(dir.path().join("files")).unwrap();
        let clock = ManualClock::now();
        let bus = Arc::new(Bus::default());
        let services = Arc::new(Services::new(
            store.clone(),
            Arc::new(blobs),
            clock.clone(),
            bus.clone(),
        ));
        let admin = Arc::new(Admin {
            services: services.clone(),
            sessions: bus.clone(),
            ca: None,
            endpoint: "localhost".into(),
            port: 8883,
        });
        admin.follow_dynamic_targets();
        Mem {
            dir,
            store,
            sqlite,
            clock,
            bus,
            services,
            admin,
        }
    }

    /// Stops: closes a SQLite store (its WAL checkpointed into the database file, as at a
    /// server's shutdown) and returns the directory, for [`Mem::open`] or a look at the files.
    pub async fn close(self) -> Arc<tempfile::TempDir> {
        if let Some(s) = &self.sqlite {
            s.close().await;
        }
        self.dir.clone()
    }

    /// Attaches a device as `thing` (taking over an earlier one of that name).
    pub fn device(&self, thing: &str) -> MemDevice {
        MemDevice {
            thing: thing.into(),
            rx: self.bus.attach(thing),
            bus: self.bus.clone(),
            services: self.services.clone(),
        }
    }

    /// Where the firmware file `sha` is stored.
    pub fn file_path(&self, sha: &str) -> std::path::PathBuf {
        self.dir.path().join("files").join(sha)
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

    /// Stores `data` and creates OTA update `id` streaming it to `target` as a data file.
    pub async fn data_ota(
        &self,
        id: &str,
        target: &str,
        data: &[u8],
    ) -> ferrota_server::admin::OtaDescription {
        let sha = self.admin.put_file(data).await.unwrap();
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
        self.api_as("test-token", method, path, body).await
    }

    /// [`Mem::api`] with another bearer token ("test-token" is the bootstrap admin's).
    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        use tower::ServiceExt as _;
        let r = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
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

/// A clock a test sets and advances (epoch seconds), for the services' timers.
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// Starts at the system time, as the services' default clock would.
    pub fn now() -> Arc<Self> {
        Self::at(ferrota_server::context::SystemClock.now())
    }

    /// Starts at `t`.
    pub fn at(t: u64) -> Arc<Self> {
        Arc::new(ManualClock(t.into()))
    }

    /// Now, epoch seconds.
    pub fn now_secs(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the time.
    pub fn set(&self, t: u64) {
        self.0.store(t, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A message sent to a [`MemDevice`].
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: bytes::Bytes,
}

/// The in-memory stand-in for the broker's sessions: an [`Outbound`] that routes as the broker
/// does (a publish to every attached device with a matching subscription, `deliver_to` to the
/// device whatever it subscribed), and the [`Sessions`] of the [`Admin`] (attached devices are
/// connected; a revocation detaches the device and is recorded).
#[derive(Default)]
pub struct Bus {
    devices: std::sync::Mutex<std::collections::HashMap<String, Attached>>,
    revoked: std::sync::Mutex<Vec<String>>,
}

struct Attached {
    filters: Vec<String>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Bus {
    fn attach(&self, thing: &str) -> mpsc::UnboundedReceiver<Msg> {
        let (tx, rx) = mpsc::unbounded_channel();
        let a = Attached {
            filters: Vec::new(),
            tx,
        };
        self.devices.lock().unwrap().insert(thing.into(), a);
        rx
    }

    /// The things [`Sessions::revoked`] was called for, in order.
    pub fn revoked_things(&self) -> Vec<String> {
        self.revoked.lock().unwrap().clone()
    }
}

impl Outbound for Bus {
    fn publish(&self, topic: &str, payload: bytes::Bytes, _qos: QoS) {
        for a in self.devices.lock().unwrap().values() {
            if a.filters
                .iter()
                .any(|f| ferrota_server::filter::matches(topic, f))
            {
                let _ = a.tx.send(Msg {
                    topic: topic.into(),
                    payload: payload.clone(),
                });
            }
        }
    }

    fn deliver_to(&self, client_id: &str, topic: &str, payload: bytes::Bytes, _qos: QoS) {
        if let Some(a) = self.devices.lock().unwrap().get(client_id) {
            let _ = a.tx.send(Msg {
                topic: topic.into(),
                payload,
            });
        }
    }
}

impl Sessions for Bus {
    fn is_connected(&self, thing: &str) -> bool {
        self.devices.lock().unwrap().contains_key(thing)
    }

    fn revoked(&self, thing: &str) {
        self.revoked.lock().unwrap().push(thing.into());
        self.devices.lock().unwrap().remove(thing);
    }
}

/// A device on the [`Bus`]: publishes as its thing straight into the services
/// ([`ferrota_server::services::on_publish`], what a session does after the policy check) and
/// receives what the bus routes to it. Replies are sent before `publish` returns.
pub struct MemDevice {
    pub thing: String,
    rx: mpsc::UnboundedReceiver<Msg>,
    bus: Arc<Bus>,
    services: Arc<Services>,
}

impl MemDevice {
    /// Subscribes to `filter`.
    pub fn subscribe(&self, filter: &str) {
        let mut g = self.bus.devices.lock().unwrap();
        let a = g.get_mut(&self.thing).expect("device detached");
        if !a.filters.iter().any(|f| f == filter) {
            a.filters.push(filter.into());
        }
    }

    /// Publishes `payload` on `topic`: a service request is handled (and must succeed), any
    /// other topic is routed to subscribers; a topic only the services publish on is a test
    /// error (a session would disconnect the device).
    pub async fn publish(&self, topic: impl AsRef<str>, payload: impl AsRef<[u8]>) {
        use ferrota_server::services::{Outcome, on_publish};
        let (topic, payload) = (topic.as_ref(), payload.as_ref());
        match on_publish(&self.services, &self.thing, &self.thing, topic, payload).await {
            Outcome::Handled => {}
            Outcome::NotMine => self.bus.publish(
                topic,
                bytes::Bytes::copy_from_slice(payload),
                QoS::AtLeastOnce,
            ),
            o => panic!("publish on {topic}: {o:?}"),
        }
    }

    /// The next message sent to this device; fails if none comes within [`T`] or the device
    /// was detached.
    pub async fn next(&mut self) -> Msg {
        tokio::time::timeout(T, self.rx.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("the device was detached")
    }

    /// The next message already sent, if any (no wait).
    pub fn try_next(&mut self) -> Option<Msg> {
        self.rx.try_recv().ok()
    }

    /// The next message, its payload read as JSON.
    pub async fn next_json(&mut self) -> (String, serde_json::Value) {
        let m = self.next().await;
        let v = serde_json::from_slice(&m.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e})", m.topic));
        (m.topic, v)
    }

    /// Publishes and returns the next message (the answer).
    pub async fn ask(&mut self, topic: impl AsRef<str>, payload: impl AsRef<[u8]>) -> Msg {
        self.publish(topic, payload).await;
        self.next().await
    }

    /// Whether the device was detached (its certificate revoked) and has nothing left to read.
    pub fn detached(&mut self) -> bool {
        matches!(
            self.rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        )
    }
}

// ---- PostgreSQL (issue 17): the same tests on the store several workers share ----

/// A database of its own for one test on the test process's private PostgreSQL server
/// ([`ferrota_infra::Postgres::shared`], started at the first call): its URL, or `None` after
/// one note line when PostgreSQL is not installed here. CI installs it, so there every test
/// runs; a server that is installed but does not start fails the test.
pub fn postgres_url(test: &str) -> Option<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    if ferrota_infra::skip_without(
        &format!("PostgreSQL (for {test})"),
        ferrota_infra::Postgres::available(),
    ) {
        return None;
    }
    let pg = ferrota_infra::Postgres::shared().expect("the test PostgreSQL server starts");
    // Unquoted identifiers are folded to lower case and cut at 63 bytes: keep the name within.
    let stem: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let name = format!("t_{stem}_{}", N.fetch_add(1, Ordering::Relaxed));
    Some(pg.create_database(&name).expect("create the test database"))
}

/// [`postgres_url`] connected: a migrated [`ferrota_server::store::PostgresStore`].
pub async fn postgres_store(test: &str) -> Option<ferrota_server::store::postgres::PostgresStore> {
    let url = postgres_url(test)?;
    Some(connect_postgres(&url).await)
}

/// A store (a pool of its own, as a worker has) on the database at `url`.
pub async fn connect_postgres(url: &str) -> ferrota_server::store::postgres::PostgresStore {
    ferrota_server::store::postgres::PostgresStore::connect(url, 4, Duration::from_secs(10))
        .await
        .expect("connect to the test database")
}

impl Mem {
    /// Services over a PostgreSQL database of its own ([`postgres_url`]), files in a new
    /// temporary directory; `None` (after one note line) when PostgreSQL is not installed.
    pub async fn postgres(test: &str) -> Option<Self> {
        let url = postgres_url(test)?;
        Some(Self::postgres_at(&url, Arc::new(tempfile::tempdir().unwrap())).await)
    }

    /// Services over the PostgreSQL database at `url` (a new pool), files in `dir`: what a
    /// worker finds after a restart ([`Mem::close`], then this again with the same URL).
    pub async fn postgres_at(url: &str, dir: Arc<tempfile::TempDir>) -> Self {
        Self::build(dir, Arc::new(connect_postgres(url).await), None)
    }
}

/// Creates a token as the bootstrap admin; returns the secret and its id.
pub async fn operator_token(s: &Mem, name: &str, role: &str) -> (String, String) {
    let (st, v) = s
        .api(
            "POST",
            "/api/tokens",
            Some(&serde_json::json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["description"]["tokenId"].as_str().unwrap().to_string(),
    )
}
