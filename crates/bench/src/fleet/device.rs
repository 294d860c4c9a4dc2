//! One simulated device in *hash mode*: a light MQTT 3.1.1 client over mutual TLS that speaks
//! the same Jobs and Streams messages as `ferrota-agent` (`agent.rs`, `download.rs`) but keeps
//! no image. It hashes the blocks in order (SHA-256) and checks the job document's
//! `sig-sha256-ecdsa` over that digest before it reports SUCCEEDED, so a SUCCEEDED proves the
//! right bytes arrived while the device's memory stays a few kilobytes.
//!
//! What it sends, as the agent does:
//! 1. CONNECT (clean session, the thing name as client id), SUBSCRIBE `jobs/notify-next` and
//!    `jobs/$next/get/accepted` (QoS 1), PUBLISH `jobs/$next/get` `{"clientToken":…}` (QoS 1).
//! 2. On a job document (either topic): SUBSCRIBE `streams/<s>/data/cbor` (QoS 0), then GetStream
//!    requests (`"c":"rdy"`, offset, bitmap, `"n"`), [`BLOCKS_PER_REQUEST`] blocks each,
//!    [`REQUESTS_IN_FLIGHT`] in flight (a fixed window: the agent sizes its own to the
//!    measured link: 3 requests at a 2 ms RTT).
//! 3. `IN_PROGRESS {"receive":"1/N"}` at the first block and every 64th (QoS 0); at the end
//!    `SUCCEEDED {"reason":"accepted  v…"}` or `FAILED` with the agent's signature-failure code
//!    (QoS 1). In [`Mode::Direct`] the device counts as done when the server's PUBACK for that
//!    status arrives (ferrota's broker commits the update before it acknowledges); in
//!    [`Mode::Cluster`] (a broker cluster with workers behind it) when the status's
//!    `update/accepted` arrives, and it survives lost connections (see [`Mode::Cluster`]).
//!
//! Decision: blocks that arrive out of order wait in a small reorder buffer (the window is
//! bounded); a request that brings nothing for [`REREQUEST_AFTER`] is sent again. On loopback
//! neither happens, but a device that hung on a lost block would hide a server bug.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ferrota_image::ota::OtaSignature;
use ferrota_image::p256::ecdsa::VerifyingKey;
use ferrota_proto::bitmap::{block_count, encode_blocks};
use ferrota_proto::job::{JobDocument, JobMessage, JobStatus};
use ferrota_proto::jobs_api::{self, JobsErrorCode, JobsRejection};
use ferrota_proto::status::{AppVersion, OtaStatus, PalErr};
use ferrota_proto::stream::{DataBlock, OFFICIAL_CLIENT_TOKEN, StreamRequest};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};
use rumqttc::{Connect, ConnectReturnCode, Packet, PubAck, Publish, QoS, Subscribe};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

/// Block size the agent asks for by default.
pub const BLOCK_SIZE: u32 = 4096;
/// Blocks per GetStream request (the agent's default request size).
pub const BLOCKS_PER_REQUEST: u32 = 32;
/// GetStream requests in flight: fixed, a little above the window the agent's adaptive sizing
/// reaches at a 2 ms RTT (3), so the server sees at least the agent's load.
pub const REQUESTS_IN_FLIGHT: u32 = 4;
/// A request that brought no block for this long is sent again.
pub const REREQUEST_AFTER: Duration = Duration::from_secs(10);
/// MQTT keep-alive the devices ask for (seconds). Long enough that an idle fleet of 10k does
/// not spend the server's time on PINGREQs, short enough that one is exercised in long runs.
pub const KEEP_ALIVE_SECS: u16 = 120;
/// Largest packet a device accepts (a 4 KB block is ~4.2 KB with its CBOR and topic).
const MAX_PACKET: usize = 64 * 1024;

/// The version the simulated devices run and the one they report after the update.
const RUNNING: AppVersion = AppVersion::new(1, 0, 0);
const UPDATED: AppVersion = AppVersion::new(1, 1, 0);

/// A device's identity: the thing name with its certificate and key (DER).
pub struct Identity {
    /// Thing name = client id = certificate CN.
    pub thing: String,
    /// Its certificate.
    pub cert: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// Its place in the fleet: the device first connects to `addrs[index % addrs.len()]` of
    /// [`Shared::addrs`], so a fleet spreads evenly over a cluster's nodes.
    pub index: usize,
}

/// How a device decides that its final status was taken, and what it does when its
/// connection drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Against one `ferrota serve`: done at the server's PUBACK of the final status (ferrota's
    /// own broker commits the update before it acknowledges); a lost connection ends the device
    /// with [`Outcome::Error`]. The fleet bench measures in this mode, so its figures stay
    /// comparable from run to run.
    Direct,
    /// Against a broker cluster with Ferrota workers behind it, where the broker sends the
    /// PUBACK before any worker committed anything:
    /// * the final status carries a `clientToken` and counts as taken only when
    ///   `jobs/<J>/update/accepted` with that token arrives;
    /// * any connection loss (connect, TLS, CONNACK refused or missing, read or write error,
    ///   closed, no PINGRESP) is followed by a reconnect to the next address of
    ///   [`Shared::addrs`] after [`BACKOFF_FIRST`] doubling to [`BACKOFF_MAX`]; the device
    ///   keeps the SHA-256 of the blocks already hashed and asks again from the first block
    ///   not hashed; it gives up after [`Shared::reconnect_budget`] without a CONNACK;
    /// * a final status not answered within [`Shared::retry_after`] (or lost with its
    ///   connection) is sent again; an `InvalidStateTransition` rejection of it means an
    ///   earlier copy committed (the server refuses any update of a terminal execution), so
    ///   the device asks DescribeJobExecution (`jobs/<J>/get`) and counts as done if the
    ///   execution's status is the one it sent ([`DeviceResult::confirmed_by_describe`]).
    ///
    /// Decision: the describe also follows an `InvalidStateTransition` of the *first* copy: a
    /// broker redelivers a message whose worker died after its commit, so the first answer the
    /// device sees can be the redelivery's rejection; the describe tells both cases apart.
    /// Any other rejection ends the device with [`Outcome::Error`] naming the code.
    Cluster,
}

/// First pause before a reconnect ([`Mode::Cluster`]).
pub const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// Longest pause between reconnects ([`Mode::Cluster`]).
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Default of [`Shared::reconnect_budget`]: long enough for a broker node to restart or a
/// cluster to move its queues, short enough that a dead cluster fails the run.
pub const RECONNECT_BUDGET: Duration = Duration::from_secs(60);
/// TCP connect, TLS handshake and CONNACK wait of one attempt in [`Mode::Cluster`] (the next
/// address is tried after it; [`Mode::Direct`] waits 60 s, as before).
pub const CLUSTER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Client token counters (`jobs_api::client_token(counter, thing)`).
const GET_NEXT_TOKEN: u32 = 0;
const FINAL_TOKEN: u32 = 1;
const DESCRIBE_TOKEN: u32 = 2;

/// What every device of a fleet shares. Build it with [`Shared::new`], then adjust the public
/// fields before sharing it.
pub struct Shared {
    /// The MQTT/TLS addresses: one `ferrota serve`, or every node of a broker cluster.
    pub addrs: Vec<SocketAddr>,
    /// The fleet CA (the server certificate's issuer).
    pub roots: Arc<rustls::RootCertStore>,
    /// The code-signing key the devices pin.
    pub code_signing_key: VerifyingKey,
    /// Devices connected, subscribed and answered (idle, waiting for a job).
    pub ready: AtomicUsize,
    /// Signalled whenever `ready` grows.
    pub ready_changed: Notify,
    /// How the final status is acknowledged and whether a lost connection is retried.
    pub mode: Mode,
    /// The name the servers' certificates are checked against (`localhost` by default).
    pub server_name: String,
    /// A GetStream request that brought no block for this long is sent again; in
    /// [`Mode::Cluster`] also a final status or a describe without an answer, and a PINGREQ
    /// without a PINGRESP ends the connection. Default [`REREQUEST_AFTER`].
    pub retry_after: Duration,
    /// [`Mode::Cluster`]: the device gives up after this long without a successful CONNACK.
    /// Default [`RECONNECT_BUDGET`].
    pub reconnect_budget: Duration,
    /// A slow link: with `Some(p)`, each device asks for one block at a time, at most one
    /// request every `p × (1 + index % 8)` (devices of one fleet spread over 1×…8× `p`, so
    /// they finish over a span of time instead of all at once). The fault test uses it to
    /// keep a rollout running while it kills processes; `None` (default) is full speed.
    pub pace: Option<Duration>,
    /// Print why each connection was lost, on stderr (following a fault test).
    pub log_reconnects: bool,
    /// Fault injection for tests.
    fault: Fault,
}

/// Faults a test injects into a [`Mode::Cluster`] device at the first `update/accepted` of
/// its final status (the commit happened; the answer is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only tests inject faults.
#[cfg_attr(not(test), allow(dead_code))]
enum Fault {
    None,
    /// Ignore it, as if the worker died between its commit and its answer.
    IgnoreFirstAccept,
    /// Drop the connection instead, as if the broker node died with the answer.
    DropAtFirstAccept,
    /// Ignore every answer to the final status and to the describe (no worker is left).
    IgnoreEveryAnswer,
}

impl Shared {
    /// A fleet's shared settings with the defaults above (`ready` at 0).
    pub fn new(
        addrs: Vec<SocketAddr>,
        roots: Arc<rustls::RootCertStore>,
        code_signing_key: VerifyingKey,
        mode: Mode,
    ) -> Shared {
        Shared {
            addrs,
            roots,
            code_signing_key,
            ready: AtomicUsize::new(0),
            ready_changed: Notify::new(),
            mode,
            server_name: "localhost".into(),
            retry_after: REREQUEST_AFTER,
            reconnect_budget: RECONNECT_BUDGET,
            pace: None,
            log_reconnects: false,
            fault: Fault::None,
        }
    }

    fn cluster(&self) -> bool {
        self.mode == Mode::Cluster
    }
}

/// How a device's update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// SUCCEEDED reported and acknowledged.
    Succeeded,
    /// FAILED reported and acknowledged (e.g. the signature did not match).
    Failed(String),
    /// The device could not finish: connection, protocol or server error.
    Error(String),
}

/// One device's result.
#[derive(Debug, Clone)]
pub struct DeviceResult {
    /// The thing.
    pub thing: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When the final status was acknowledged: the PUBACK ([`Mode::Direct`]), the
    /// `update/accepted` or the confirming describe ([`Mode::Cluster`]).
    pub done_at: Option<Instant>,
    /// SHA-256 of the file as received (hash mode), once every block arrived.
    pub digest: Option<[u8; 32]>,
    /// Sessions established again after a lost one (CONNACKs after the first; failed attempts
    /// are not counted). Always 0 in [`Mode::Direct`].
    pub reconnects: u32,
    /// `jobs/notify-next` messages whose execution was of the job this device ran (before the
    /// download started too): a rollout notifies each execution once.
    pub notified: u32,
    /// The final status was confirmed by DescribeJobExecution after an
    /// `InvalidStateTransition` rejection of a copy of it ([`Mode::Cluster`]).
    pub confirmed_by_describe: bool,
}

type Tls = TlsStream<TcpStream>;

/// Why a connection's session ended early.
#[derive(Debug)]
enum Stop {
    /// The connection is gone (or never came up): [`Mode::Cluster`] reconnects.
    Lost(String),
    /// The server answered something the device cannot go on from.
    Fatal(String),
}

impl Stop {
    fn text(self) -> String {
        match self {
            Stop::Lost(e) | Stop::Fatal(e) => e,
        }
    }
}

type R<T> = Result<T, Stop>;

fn fatal(e: String) -> Stop {
    Stop::Fatal(e)
}

/// The connection and the little protocol state a device keeps.
struct Conn {
    io: Tls,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next_pkid: u16,
    last_sent: Instant,
    /// QoS 1 publishes not acknowledged yet: (packet id, sent at).
    unacked: Vec<(u16, Instant)>,
    /// Requests sent again on this connection because no answer came.
    resent: u32,
}

impl Conn {
    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }

    fn queue(&mut self, p: Packet) -> R<()> {
        if let Packet::Publish(p) = &p
            && p.qos == QoS::AtLeastOnce
        {
            self.unacked.push((p.pkid, Instant::now()));
        }
        p.write(&mut self.wbuf, MAX_PACKET)
            .map(|_| ())
            .map_err(|e| fatal(format!("encode: {e}")))
    }

    async fn flush(&mut self) -> R<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.io
            .write_all(&self.wbuf)
            .await
            .map_err(|e| Stop::Lost(format!("write: {e}")))?;
        self.io
            .flush()
            .await
            .map_err(|e| Stop::Lost(format!("flush: {e}")))?;
        self.wbuf.clear();
        // An idle device holds no buffer.
        if self.wbuf.capacity() > 4096 {
            self.wbuf = BytesMut::new();
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet; `Ok(None)` when `until` passed first.
    async fn read(&mut self, until: Instant) -> R<Option<Packet>> {
        loop {
            match Packet::read(&mut self.rbuf, MAX_PACKET) {
                Ok(p) => {
                    if self.rbuf.is_empty() && self.rbuf.capacity() > 16 * 1024 {
                        self.rbuf = BytesMut::new();
                    }
                    return Ok(Some(p));
                }
                Err(rumqttc::Error::InsufficientBytes(n)) => self.rbuf.reserve(n.max(512)),
                Err(e) => return Err(fatal(format!("malformed packet from the server: {e}"))),
            }
            match tokio::time::timeout_at(until, self.io.read_buf(&mut self.rbuf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(Stop::Lost("the server closed the connection".into())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Stop::Lost(format!("read: {e}"))),
            }
        }
    }
}

/// The final status, once sent.
struct Final {
    /// The UPDATE payload (sent again after a reconnect in [`Mode::Cluster`]).
    body: Vec<u8>,
    /// The status it reports.
    status: JobStatus,
    /// What the device ends with once it is taken.
    outcome: Outcome,
    /// pkid of the last copy sent (QoS 1).
    pkid: u16,
    /// When the last copy (or the describe) was sent.
    sent_at: Instant,
    /// A copy was rejected with `InvalidStateTransition`: waiting for DescribeJobExecution.
    describing: bool,
    /// When the first copy went out: no answer for three [`Shared::reconnect_budget`]s from
    /// then on, over however many connections, ends the device ([`Mode::Cluster`]).
    waiting_since: Instant,
    /// Copies sent (final status and describes).
    copies: u32,
}

/// A download in progress.
struct Download {
    job_id: String,
    stream: String,
    data_topic: String,
    file_id: u8,
    file_size: u32,
    num_blocks: u32,
    signature: Result<OtaSignature, String>,
    sha: Sha256,
    /// Next block to hash.
    next: u32,
    /// Next block not yet requested.
    requested: u32,
    /// Requests in flight: (first block, end, sent at).
    inflight: Vec<(u32, u32, Instant)>,
    /// Blocks that came before their turn.
    early: BTreeMap<u32, Vec<u8>>,
    /// The final status, once sent.
    fin: Option<Final>,
    /// [`Shared::pace`] for this device: one block a request, one request per gap.
    gap: Option<Duration>,
    /// When the last GetStream request went out.
    last_request: Option<Instant>,
}

/// What a device keeps across its connections.
struct State {
    thing: String,
    ready: bool,
    dl: Option<Download>,
    done_jobs: Vec<String>,
    /// notify-next messages per job id.
    notified: Vec<(String, u32)>,
    reconnects: u32,
    digest: Option<[u8; 32]>,
    done_at: Option<Instant>,
    confirmed_by_describe: bool,
    lost_an_accept: bool,
    /// This device's request gap ([`Shared::pace`]).
    gap: Option<Duration>,
    /// When the unanswered `$next/get` went out ([`Mode::Cluster`] asks again after
    /// [`Shared::retry_after`]: a request lost with a broker node must not leave the device
    /// idle for good).
    next_asked: Option<Instant>,
}

fn topic_string(t: Topic<'_>) -> String {
    t.to_string()
}

/// Connects, subscribes, asks for the next job and reports ready; then runs jobs until one
/// ended (the fleet rolls out one update). In [`Mode::Cluster`] it reconnects as that mode
/// says; the result tells how often.
pub async fn run(shared: Arc<Shared>, id: Identity) -> DeviceResult {
    let mut st = State {
        thing: id.thing.clone(),
        ready: false,
        dl: None,
        done_jobs: Vec::new(),
        notified: Vec::new(),
        reconnects: 0,
        digest: None,
        done_at: None,
        confirmed_by_describe: false,
        lost_an_accept: false,
        next_asked: None,
        gap: shared.pace.map(|p| p * (1 + (id.index % 8) as u32)),
    };
    let outcome = match drive(&shared, id, &mut st).await {
        Ok(o) => o,
        Err(e) => Outcome::Error(e),
    };
    let notified = st
        .dl
        .as_ref()
        .and_then(|d| st.notified.iter().find(|(j, _)| *j == d.job_id))
        .map_or(0, |(_, n)| *n);
    DeviceResult {
        thing: st.thing,
        outcome,
        done_at: st.done_at,
        digest: st.digest,
        reconnects: st.reconnects,
        notified,
        confirmed_by_describe: st.confirmed_by_describe,
    }
}

/// One connection after another until the device is done (one in [`Mode::Direct`]).
async fn drive(shared: &Shared, id: Identity, st: &mut State) -> Result<Outcome, String> {
    if shared.addrs.is_empty() {
        return Err("no server address to connect to".into());
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(ferrota_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(shared.roots.clone())
        .with_client_auth_cert(vec![id.cert], id.key)
        .map_err(|e| format!("TLS client certificate: {e}"))?;
    // No session cache per device: 10k caches would cost memory (a reconnect does a full
    // handshake, as a device that lost its broker would).
    cfg.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = ServerName::try_from(shared.server_name.clone())
        .map_err(|e| format!("server name {:?}: {e}", shared.server_name))?;
    let mut at = id.index % shared.addrs.len();
    if !shared.cluster() {
        let wait = Duration::from_secs(60);
        let run = async {
            let mut c = dial(&connector, &name, shared.addrs[at], wait, 20).await?;
            handshake(shared, &mut c, st, wait).await?;
            serve(shared, &mut c, st).await
        };
        return run.await.map_err(Stop::text);
    }
    let started = Instant::now();
    // The budget runs from the loss of the last session (or from the start).
    let mut since = started;
    let mut backoff = BACKOFF_FIRST;
    let mut attempts = 0u32;
    let mut sessions = 0u32;
    loop {
        let addr = shared.addrs[at];
        let attempt = async {
            let mut c = dial(&connector, &name, addr, CLUSTER_ATTEMPT_TIMEOUT, 0).await?;
            handshake(shared, &mut c, st, CLUSTER_ATTEMPT_TIMEOUT).await?;
            Ok::<_, Stop>(c)
        };
        let why = match attempt.await {
            Err(e) => e,
            Ok(mut c) => {
                if sessions > 0 {
                    st.reconnects += 1;
                }
                sessions += 1;
                attempts = 0;
                backoff = BACKOFF_FIRST;
                let r = serve(shared, &mut c, st).await;
                since = Instant::now();
                match r {
                    Ok(o) => return Ok(o),
                    Err(e) => e,
                }
            }
        };
        let why = match why {
            Stop::Fatal(e) => return Err(e),
            Stop::Lost(e) => format!("{addr}: {e}"),
        };
        if shared.log_reconnects {
            eprintln!("device {}: {why}; reconnecting", st.thing);
        }
        let left = shared.reconnect_budget.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Err(format!(
                "gave up after {attempts} reconnect attempts / {:.0} s without a connection \
                 ({:.0} s in all); last: {why}",
                since.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        at = (at + 1) % shared.addrs.len();
        attempts += 1;
    }
}

/// TCP (with `tcp_retries` retries on the same address) and TLS to `addr`.
async fn dial(
    connector: &tokio_rustls::TlsConnector,
    name: &ServerName<'static>,
    addr: SocketAddr,
    wait: Duration,
    tcp_retries: u64,
) -> R<Conn> {
    let mut attempt = 0;
    let tcp = loop {
        let r = match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {} s", wait.as_secs()),
            )),
        };
        match r {
            Ok(t) => break t,
            // A burst of connects can overflow the listen backlog: back off and retry.
            Err(_) if attempt < tcp_retries => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(Stop::Lost(format!("connect {addr}: {e}"))),
        }
    };
    let _ = tcp.set_nodelay(true);
    let io = tokio::time::timeout(wait, connector.connect(name.clone(), tcp))
        .await
        .map_err(|_| Stop::Lost("TLS handshake timed out".to_string()))?
        .map_err(|e| Stop::Lost(format!("TLS handshake: {e}")))?;
    Ok(Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        next_pkid: 0,
        last_sent: Instant::now(),
        unacked: Vec::new(),
        resent: 0,
    })
}

/// CONNECT, CONNACK, the subscriptions and `$next/get`; after a reconnect also the job's
/// subscriptions and the request that picks up where the lost session stopped.
async fn handshake(shared: &Shared, c: &mut Conn, st: &mut State, wait: Duration) -> R<()> {
    let thing = st.thing.clone();
    let mut connect = Connect::new(thing.as_str());
    connect.keep_alive = KEEP_ALIVE_SECS;
    connect.clean_session = true;
    c.queue(Packet::Connect(connect))?;
    c.flush().await?;
    match c.read(Instant::now() + wait).await? {
        Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => {}
        // A broker node that is starting refuses for a moment: Lost, so a cluster device
        // tries again (a direct one ends with this message, as before).
        Some(Packet::ConnAck(a)) => {
            return Err(Stop::Lost(format!("CONNACK refused: {:?}", a.code)));
        }
        Some(p) => return Err(fatal(format!("expected CONNACK, got {p:?}"))),
        None => return Err(Stop::Lost(format!("no CONNACK in {} s", wait.as_secs()))),
    }
    let notify_next = topic_string(Topic::notify_next(&thing));
    let next_accepted = topic_string(Topic::next_get_accepted(&thing));
    let pkid = c.pkid();
    let q = reply_qos(shared);
    let mut sub = Subscribe::new(notify_next.as_str(), q);
    sub.add(next_accepted.clone(), q);
    sub.pkid = pkid;
    c.queue(Packet::Subscribe(sub))?;
    if let Some(d) = &st.dl {
        subscribe_job(shared, c, &thing, d)?;
    }
    ask_next(c, &thing)?;
    st.next_asked = Some(Instant::now());
    if let Some(d) = st.dl.as_mut() {
        match d.fin.as_mut() {
            Some(f) => {
                // (`waiting_since` stays: the budget for an answer runs across connections,
                // which a device that leaves unanswering connections opens one after another.)
                if f.describing {
                    describe(c, &thing, &d.job_id, f)?;
                } else {
                    send_final(c, &thing, &d.job_id, f)?;
                }
            }
            None => {
                // Ask again for everything from the first block not hashed yet.
                d.inflight.clear();
                d.requested = d.next;
                fill_window(c, &thing, d)?;
            }
        }
    }
    c.flush().await
}

/// Requests a connection may leave unanswered before a [`Mode::Cluster`] device leaves it
/// for another node. Seen with RabbitMQ's MQTT plugin: a device that reconnects while the
/// node that held its old subscription queues is down can get subscriptions that deliver
/// nothing (its requests are served, the answers and blocks go nowhere); a fresh connection
/// once that node is back works.
pub const RESENDS_PER_CONNECTION: u32 = 2;

/// Counts one more unanswered request on `c`: too many, and the connection counts as lost.
fn unanswered(c: &mut Conn, what: &str) -> R<()> {
    c.resent += 1;
    if c.resent > RESENDS_PER_CONNECTION {
        return Err(Stop::Lost(format!(
            "{what}: no answer on this connection after {RESENDS_PER_CONNECTION} resends"
        )));
    }
    Ok(())
}

/// Publishes `$next/get` (QoS 1) with the agent's client token.
fn ask_next(c: &mut Conn, thing: &str) -> R<()> {
    let token = jobs_api::client_token(GET_NEXT_TOKEN, thing);
    let mut body = [0u8; 128];
    let body = jobs_api::encode_client_token_request(&token, &mut body)
        .map_err(|_| fatal("client token".to_string()))?;
    let mut get = Publish::new(
        topic_string(Topic::next_get(thing)),
        QoS::AtLeastOnce,
        body.as_bytes().to_vec(),
    );
    get.pkid = c.pkid();
    c.queue(Packet::Publish(get))
}

/// The QoS of the device's subscriptions to its answers and notifications: 1 against one
/// server (as the agent), 0 in [`Mode::Cluster`]. RabbitMQ 3.10's MQTT plugin keeps a QoS 1
/// subscription in a durable queue per client; when a node dies it can force-delete that
/// queue yet keep its record, and every later CONNECT of the client then fails (see
/// docs/DEPLOY.md). A lost QoS 0 answer costs a resend, which a cluster device makes anyway.
fn reply_qos(shared: &Shared) -> QoS {
    if shared.cluster() {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// The job's subscriptions: its stream's data (QoS 0) and, in [`Mode::Cluster`], the answers
/// to its updates and describes (a broker only delivers what is subscribed).
fn subscribe_job(shared: &Shared, c: &mut Conn, thing: &str, d: &Download) -> R<()> {
    let pkid = c.pkid();
    let mut s = Subscribe::new(d.data_topic.as_str(), QoS::AtMostOnce);
    if shared.cluster() {
        for reply in [Reply::Accepted, Reply::Rejected] {
            s.add(
                topic_string(Topic::update(thing, &d.job_id, reply)),
                reply_qos(shared),
            );
            s.add(
                topic_string(Topic::jobs(
                    thing,
                    JobsTopic::Describe {
                        job: JobRef::Id(&d.job_id),
                        reply,
                    },
                )),
                reply_qos(shared),
            );
        }
    }
    s.pkid = pkid;
    c.queue(Packet::Subscribe(s))
}

/// (Re)publishes the final status (QoS 1).
fn send_final(c: &mut Conn, thing: &str, job: &str, f: &mut Final) -> R<()> {
    let mut p = Publish::new(
        topic_string(Topic::update(thing, job, Reply::Request)),
        QoS::AtLeastOnce,
        f.body.clone(),
    );
    p.pkid = c.pkid();
    f.pkid = p.pkid;
    f.sent_at = Instant::now();
    f.copies += 1;
    c.queue(Packet::Publish(p))
}

/// Asks DescribeJobExecution for the job (QoS 1).
fn describe(c: &mut Conn, thing: &str, job: &str, f: &mut Final) -> R<()> {
    let token = jobs_api::client_token(DESCRIBE_TOKEN, thing);
    let mut body = [0u8; 128];
    let body = jobs_api::encode_client_token_request(&token, &mut body)
        .map_err(|_| fatal("client token".to_string()))?;
    let topic = Topic::jobs(
        thing,
        JobsTopic::Describe {
            job: JobRef::Id(job),
            reply: Reply::Request,
        },
    );
    let mut p = Publish::new(
        topic_string(topic),
        QoS::AtLeastOnce,
        body.as_bytes().to_vec(),
    );
    p.pkid = c.pkid();
    f.describing = true;
    f.sent_at = Instant::now();
    f.copies += 1;
    c.queue(Packet::Publish(p))
}

/// Whether a Jobs answer carries the client token `counter` of this thing.
fn has_token(payload: &[u8], thing: &str, counter: u32) -> bool {
    let want = jobs_api::client_token(counter, thing);
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("clientToken")
                .and_then(|t| t.as_str())
                .map(|t| t == want.as_str())
        })
        .unwrap_or(false)
}

/// Ends the session after the final status was taken.
async fn done(c: &mut Conn, st: &mut State) -> R<Outcome> {
    st.done_at = Some(Instant::now());
    let Some(d) = st.dl.as_mut() else {
        return Err(fatal("done without a job".into()));
    };
    let outcome = d
        .fin
        .as_ref()
        .map_or(Outcome::Succeeded, |f| f.outcome.clone());
    st.done_jobs.push(d.job_id.clone());
    c.queue(Packet::Disconnect)?;
    let _ = c.flush().await;
    let _ = c.io.shutdown().await;
    Ok(outcome)
}

/// One session: runs until the final status was taken or the connection ended.
async fn serve(shared: &Shared, c: &mut Conn, st: &mut State) -> R<Outcome> {
    let thing = st.thing.clone();
    let cluster = shared.cluster();
    let retry = shared.retry_after;
    // A busy broker acknowledges late: leaving it for that would add a reconnect storm to its
    // load, so a missing PUBACK counts only after three answer timeouts.
    let puback_wait = retry * 3;
    let ka = Duration::from_secs(u64::from(KEEP_ALIVE_SECS));
    let mut ping_sent: Option<Instant> = None;
    loop {
        // What an earlier turn queued and skipped (`continue`) goes out before the wait:
        // PUBACKs above all, which a broker counts against its window.
        c.flush().await?;
        let now = Instant::now();
        let mut until = c.last_sent + ka / 2;
        if let Some(d) = &st.dl {
            if let Some(t) = d.inflight.iter().map(|r| r.2).min() {
                until = until.min(t + retry);
            }
            if cluster && let Some(f) = &d.fin {
                until = until.min(f.sent_at + retry);
            }
            if let Some(t) = next_request_at(d) {
                until = until.min(t);
            }
        }
        if cluster && let Some(t) = ping_sent {
            until = until.min(t + retry);
        }
        if cluster && let Some(t) = st.next_asked {
            until = until.min(t + retry);
        }
        if cluster && let Some(u) = c.unacked.first() {
            until = until.min(u.1 + puback_wait);
        }
        let p = c.read(until.max(now)).await?;
        let Some(p) = p else {
            let now = Instant::now();
            // A broker node that takes QoS 1 publishes but never acknowledges them (seen
            // with RabbitMQ after a node of the cluster restarted: the connection stays up,
            // the publishes go nowhere) is left for another node.
            if cluster && let Some(u) = c.unacked.iter().find(|u| now >= u.1 + puback_wait) {
                return Err(Stop::Lost(format!(
                    "no PUBACK for packet {} in {:.0} s",
                    u.0,
                    puback_wait.as_secs_f64()
                )));
            }
            if cluster && ping_sent.is_some_and(|t| now >= t + retry) {
                return Err(Stop::Lost(format!(
                    "no PINGRESP in {:.0} s",
                    retry.as_secs_f64()
                )));
            }
            if now >= c.last_sent + ka / 2 {
                c.queue(Packet::PingReq)?;
                ping_sent.get_or_insert(now);
            }
            if cluster && st.next_asked.is_some_and(|t| now >= t + retry) {
                unanswered(c, "$next/get")?;
                ask_next(c, &thing)?;
                st.next_asked = Some(now);
            }
            if let Some(d) = st.dl.as_mut() {
                if next_request_at(d).is_some_and(|t| t <= now) {
                    fill_window(c, &thing, d)?;
                }
                let stale = now - retry;
                if d.inflight.iter().any(|r| r.2 <= stale) {
                    if cluster {
                        unanswered(c, "GetStream")?;
                    }
                    // Ask again for everything from the first block not hashed yet.
                    d.inflight.clear();
                    d.requested = d.next;
                    fill_window(c, &thing, d)?;
                }
                if cluster
                    && let Some(f) = d.fin.as_mut()
                    && f.sent_at <= stale
                {
                    // Three reconnect budgets: the answer may take several connections (each
                    // left after two unanswered resends) while a node rejoins.
                    if now.duration_since(f.waiting_since) >= shared.reconnect_budget * 3 {
                        return Err(fatal(format!(
                            "no answer to {} of job {} in {:.0} s ({} copies and describes \
                             sent)",
                            f.status.as_str(),
                            d.job_id,
                            now.duration_since(f.waiting_since).as_secs_f64(),
                            f.copies
                        )));
                    }
                    unanswered(c, f.status.as_str())?;
                    if f.describing {
                        describe(c, &thing, &d.job_id, f)?;
                    } else {
                        send_final(c, &thing, &d.job_id, f)?;
                    }
                }
            }
            c.flush().await?;
            continue;
        };
        match p {
            Packet::Publish(p) => {
                if p.qos == QoS::AtLeastOnce {
                    c.queue(Packet::PubAck(PubAck::new(p.pkid)))?;
                }
                let Ok(t) = Topic::parse(&p.topic) else {
                    continue;
                };
                match t.kind {
                    TopicKind::Jobs(
                        kind @ (JobsTopic::NotifyNext
                        | JobsTopic::Describe {
                            job: JobRef::Next,
                            reply: Reply::Accepted,
                        }),
                    ) => {
                        if kind == JobsTopic::NotifyNext {
                            count_notify(st, &p.payload);
                        } else {
                            st.next_asked = None;
                        }
                        if !st.ready {
                            st.ready = true;
                            shared.ready.fetch_add(1, Ordering::AcqRel);
                            shared.ready_changed.notify_waiters();
                        }
                        if st.dl.is_none()
                            && let Some(mut d) = start_job(&thing, &p.payload, &st.done_jobs)
                        {
                            d.gap = st.gap;
                            subscribe_job(shared, c, &thing, &d)?;
                            fill_window(c, &thing, &mut d)?;
                            st.dl = Some(d);
                        }
                    }
                    TopicKind::Stream {
                        op: StreamOp::Data,
                        encoding: Encoding::Cbor,
                        stream,
                    } => {
                        if let Some(d) = st.dl.as_mut()
                            && stream == d.stream
                            && d.fin.is_none()
                        {
                            on_block(c, &thing, d, &p.payload)?;
                            if d.next == d.num_blocks && d.fin.is_none() {
                                let hash: [u8; 32] = d.sha.clone().finalize().into();
                                st.digest = Some(hash);
                                finish(c, &thing, d, &hash, shared)?;
                            }
                        }
                    }
                    TopicKind::Jobs(JobsTopic::Update { job, reply }) if cluster => {
                        if shared.fault == Fault::IgnoreEveryAnswer {
                            continue;
                        }
                        let Some(d) = st.dl.as_mut() else { continue };
                        let Some(f) = d.fin.as_mut() else { continue };
                        if job != d.job_id || !has_token(&p.payload, &thing, FINAL_TOKEN) {
                            continue;
                        }
                        match reply {
                            Reply::Accepted => {
                                if shared.fault != Fault::None && !st.lost_an_accept {
                                    st.lost_an_accept = true;
                                    if shared.fault == Fault::DropAtFirstAccept {
                                        return Err(Stop::Lost("fault: dropped".into()));
                                    }
                                    continue;
                                }
                                return done(c, st).await;
                            }
                            // A copy of it was refused already; the describe is on its way.
                            Reply::Rejected if f.describing => {}
                            Reply::Rejected => {
                                let (code, message) = rejection(&p.payload);
                                if code == JobsErrorCode::InvalidStateTransition.as_str() {
                                    describe(c, &thing, &d.job_id, f)?;
                                } else {
                                    return Err(fatal(format!(
                                        "{} of job {} rejected: {code}: {message}",
                                        f.status.as_str(),
                                        d.job_id
                                    )));
                                }
                            }
                            Reply::Request => {}
                        }
                    }
                    TopicKind::Jobs(JobsTopic::Describe {
                        job: JobRef::Id(job),
                        reply,
                    }) if cluster => {
                        if shared.fault == Fault::IgnoreEveryAnswer {
                            continue;
                        }
                        let Some(d) = st.dl.as_ref() else { continue };
                        let Some(f) = d.fin.as_ref() else { continue };
                        if job != d.job_id
                            || !f.describing
                            || !has_token(&p.payload, &thing, DESCRIBE_TOKEN)
                        {
                            continue;
                        }
                        match reply {
                            Reply::Accepted => {
                                let now = execution_status(&p.payload);
                                if now.as_deref() == Some(f.status.as_str()) {
                                    st.confirmed_by_describe = true;
                                    return done(c, st).await;
                                }
                                return Err(fatal(format!(
                                    "{} of job {} was refused as a change of a terminal \
                                     execution, but DescribeJobExecution says it is {}",
                                    f.status.as_str(),
                                    d.job_id,
                                    now.as_deref().unwrap_or("without a status")
                                )));
                            }
                            Reply::Rejected => {
                                let (code, message) = rejection(&p.payload);
                                return Err(fatal(format!(
                                    "DescribeJobExecution of job {} rejected: {code}: {message}",
                                    d.job_id
                                )));
                            }
                            Reply::Request => {}
                        }
                    }
                    _ => {}
                }
            }
            Packet::PubAck(a) => {
                c.unacked.retain(|u| u.0 != a.pkid);
                if !cluster
                    && let Some(d) = st.dl.as_ref()
                    && d.fin.as_ref().is_some_and(|f| f.pkid == a.pkid)
                {
                    return done(c, st).await;
                }
            }
            Packet::PingResp => ping_sent = None,
            Packet::SubAck(a)
                if cluster
                    && a.return_codes
                        .contains(&rumqttc::SubscribeReasonCode::Failure) =>
            {
                // A broker that cannot subscribe us now (RabbitMQ, while the node that held
                // this client's old subscription queues is down) may later: another node,
                // after the back-off.
                return Err(Stop::Lost(
                    "a subscription was refused (SUBACK 0x80)".into(),
                ));
            }
            Packet::SubAck(_) | Packet::UnsubAck(_) => {}
            other => {
                return Err(fatal(format!(
                    "unexpected packet from the server: {other:?}"
                )));
            }
        }
        c.flush().await?;
    }
}

/// Counts a `notify-next` for the job it names.
fn count_notify(st: &mut State, payload: &[u8]) {
    let Some(job) = JobMessage::parse(payload)
        .ok()
        .and_then(|m| m.execution)
        .map(|e| e.job_id)
    else {
        return;
    };
    match st.notified.iter_mut().find(|(j, _)| j == job) {
        Some((_, n)) => *n += 1,
        None => st.notified.push((job.to_string(), 1)),
    }
}

/// `code` and `message` of a Jobs rejection (AWS's error JSON).
fn rejection(payload: &[u8]) -> (String, String) {
    match JobsRejection::parse(payload) {
        Ok(r) => (
            r.code.as_plain().unwrap_or("(escaped code)").to_string(),
            r.message
                .and_then(|m| m.as_plain())
                .unwrap_or("")
                .to_string(),
        ),
        Err(e) => (
            "unreadable rejection".into(),
            format!("{e:?}: {}", String::from_utf8_lossy(payload)),
        ),
    }
}

/// `execution.status` of a DescribeJobExecution answer.
fn execution_status(payload: &[u8]) -> Option<String> {
    let v = serde_json::from_slice::<serde_json::Value>(payload).ok()?;
    v.get("execution")?
        .get("status")?
        .as_str()
        .map(str::to_string)
}

/// A download for the job in a `notify-next` or `$next/get/accepted` message, if it carries an
/// OTA job not done yet.
fn start_job(thing: &str, payload: &[u8], done: &[String]) -> Option<Download> {
    let m = JobMessage::parse(payload).ok()?;
    let e = m.execution?;
    if done.iter().any(|j| j == e.job_id) {
        return None;
    }
    let JobDocument::Ota(ota) = e.document().ok()? else {
        return None;
    };
    let stream = ota.stream_name?;
    let file = ota.file;
    let mut sig_buf = [0u8; 512];
    let signature = file
        .signature_for(ferrota_image::ota::SIGNATURE_KEY)
        .and_then(|s| s.unescape(&mut sig_buf).ok())
        .ok_or_else(|| "no sig-sha256-ecdsa".to_string())
        .and_then(|t| OtaSignature::from_base64(t).map_err(|e| e.to_string()));
    Some(Download {
        job_id: e.job_id.to_string(),
        stream: stream.to_string(),
        data_topic: topic_string(Topic::stream(thing, stream, StreamOp::Data, Encoding::Cbor)),
        file_id: file.file_id,
        file_size: file.file_size,
        num_blocks: block_count(file.file_size, BLOCK_SIZE),
        signature,
        sha: Sha256::new(),
        next: 0,
        requested: 0,
        inflight: Vec::new(),
        early: BTreeMap::new(),
        fin: None,
        gap: None,
        last_request: None,
    })
}

/// Sends GetStream requests until [`REQUESTS_IN_FLIGHT`] are out or the file is covered (a
/// paced device: one request of one block, once its gap passed).
fn fill_window(c: &mut Conn, thing: &str, d: &mut Download) -> R<()> {
    let (per_request, in_flight) = match d.gap {
        Some(_) => (1, 1),
        None => (BLOCKS_PER_REQUEST, REQUESTS_IN_FLIGHT as usize),
    };
    if let (Some(gap), Some(t)) = (d.gap, d.last_request)
        && Instant::now() < t + gap
    {
        return Ok(());
    }
    let get_topic = topic_string(Topic::stream(
        thing,
        &d.stream,
        StreamOp::Get,
        Encoding::Cbor,
    ));
    while d.inflight.len() < in_flight && d.requested < d.num_blocks {
        let from = d.requested;
        let to = (from + per_request).min(d.num_blocks);
        let mut bits = [0u8; (BLOCKS_PER_REQUEST as usize).div_ceil(8) + 1];
        let len = encode_blocks(from, from..to, &mut bits).map_err(|e| fatal(format!("{e:?}")))?;
        let req = StreamRequest {
            client_token: Some(OFFICIAL_CLIENT_TOKEN),
            stream_version: None,
            file_id: u32::from(d.file_id),
            block_size: BLOCK_SIZE,
            offset: Some(from),
            bitmap: Some(&bits[..len]),
            num_blocks: Some(to - from),
        };
        let mut buf = [0u8; 128];
        let n = req
            .encode(&mut buf)
            .map_err(|_| fatal("stream request".to_string()))?;
        c.queue(Packet::Publish(Publish::new(
            get_topic.as_str(),
            QoS::AtMostOnce,
            buf[..n].to_vec(),
        )))?;
        d.inflight.push((from, to, Instant::now()));
        d.requested = to;
        d.last_request = Some(Instant::now());
    }
    Ok(())
}

/// When a paced download may send its next request (none due: `None`).
fn next_request_at(d: &Download) -> Option<Instant> {
    let gap = d.gap?;
    (d.fin.is_none() && d.inflight.is_empty() && d.requested < d.num_blocks)
        .then(|| d.last_request.map_or_else(Instant::now, |t| t + gap))
}

/// Publishes a progress status (QoS 0, as the agent does).
fn progress(c: &mut Conn, thing: &str, job: &str, s: OtaStatus) -> R<()> {
    let mut buf = [0u8; 256];
    let body = s
        .encode(&mut buf)
        .map_err(|_| fatal("status".to_string()))?;
    let topic = topic_string(Topic::update(thing, job, Reply::Request));
    c.queue(Packet::Publish(Publish::new(
        topic,
        QoS::AtMostOnce,
        body.as_bytes().to_vec(),
    )))
}

fn on_block(c: &mut Conn, thing: &str, d: &mut Download, payload: &[u8]) -> R<()> {
    let Ok(b) = DataBlock::decode(payload) else {
        return Ok(());
    };
    if b.file_id != u32::from(d.file_id) || b.block_id >= d.num_blocks || b.block_id < d.next {
        return Ok(());
    }
    let want = if b.block_id + 1 == d.num_blocks {
        d.file_size - b.block_id * BLOCK_SIZE
    } else {
        BLOCK_SIZE
    };
    if b.payload.len() as u32 != want {
        return Ok(());
    }
    if b.block_id != d.next {
        if d.early.len() < (REQUESTS_IN_FLIGHT * BLOCKS_PER_REQUEST) as usize {
            d.early.insert(b.block_id, b.payload.to_vec());
        }
        return Ok(());
    }
    d.sha.update(b.payload);
    d.next += 1;
    while let Some(p) = d.early.remove(&d.next) {
        d.sha.update(&p);
        d.next += 1;
    }
    let received = d.next;
    if received < d.num_blocks && (received == 1 || received.is_multiple_of(64)) {
        progress(
            c,
            thing,
            &d.job_id.clone(),
            OtaStatus::Receiving {
                received,
                total: d.num_blocks,
            },
        )?;
    }
    // Requests wholly received leave the window; new ones take their place.
    let next = d.next;
    d.inflight.retain(|r| r.1 > next);
    fill_window(c, thing, d)
}

/// Checks the signature over the digest and sends the final status: the agent's exact body in
/// [`Mode::Direct`]; with a `clientToken` in [`Mode::Cluster`], so its answer can be told from
/// the answers to the progress updates.
fn finish(
    c: &mut Conn,
    thing: &str,
    d: &mut Download,
    digest: &[u8; 32],
    shared: &Shared,
) -> R<()> {
    let verdict = d.signature.clone().and_then(|s| {
        s.verify_digest(&shared.code_signing_key, digest)
            .map_err(|e| e.to_string())
    });
    let (s, outcome) = match verdict {
        Ok(_) => (
            OtaStatus::Accepted {
                version: UPDATED,
                updated_by: RUNNING,
            },
            Outcome::Succeeded,
        ),
        Err(why) => (
            OtaStatus::Failed {
                main: PalErr::SignatureCheckFailed.code(),
                sub: 0,
            },
            Outcome::Failed(why),
        ),
    };
    let mut buf = [0u8; 256];
    let text = s
        .encode(&mut buf)
        .map_err(|_| fatal("status".to_string()))?;
    let body = if shared.cluster() {
        let token = jobs_api::client_token(FINAL_TOKEN, thing);
        let token = serde_json::to_string(token.as_str()).map_err(|e| fatal(e.to_string()))?;
        let open = text
            .strip_suffix('}')
            .ok_or_else(|| fatal("status is not a JSON object".to_string()))?;
        format!("{open},\"clientToken\":{token}}}").into_bytes()
    } else {
        text.as_bytes().to_vec()
    };
    let mut f = Final {
        body,
        status: s.job_status(),
        outcome,
        pkid: 0,
        sent_at: Instant::now(),
        describing: false,
        waiting_since: Instant::now(),
        copies: 0,
    };
    let job = d.job_id.clone();
    send_final(c, thing, &job, &mut f)?;
    d.fin = Some(f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::server::{Running, ServerKind};
    use super::super::{Fleet, blocking, file_bytes, hex_of, provision, upload_once_more};
    use super::*;
    use crate::Options;
    use ferrota_api::{CreateOtaUpdate, OtaFile};
    use ferrota_image::ota::{MAX_P256_BASE64, sign_file};
    use rustls_pki_types::pem::PemObject;
    use tokio::net::TcpListener;

    /// An in-process server with `n` provisioned things and the file uploaded.
    struct Rig {
        fleet: Fleet,
        srv: Running,
        api: ferrota_api::Client,
        expected: [u8; 32],
        sig_text: String,
        pinned: VerifyingKey,
        n: usize,
    }

    async fn rig(n: usize, file_size: usize) -> Rig {
        ferrota_server::tls::install_crypto_provider();
        let opts = Options {
            short: true,
            ferrota_exe: std::path::PathBuf::from("/nonexistent/ferrota"),
            progress: false,
            faults: false,
            delta_pairs: None,
        };
        let fleet = provision(n, &opts).await.unwrap();
        let log = fleet.dir.path().join("serve.log");
        let srv = Running::start(&ServerKind::InProcess, &fleet.config, &log).unwrap();
        let file = file_bytes(file_size);
        let expected: [u8; 32] = Sha256::digest(&file).into();
        let signer = ferrota_sim::keys::fleet_code_signing_key();
        let sig = sign_file(&signer, &file).unwrap();
        let mut b64 = [0u8; MAX_P256_BASE64];
        let sig_text = OtaSignature::to_base64(&sig, &mut b64).to_string();
        let api = ferrota_api::Client::new(format!("http://{}", srv.http), fleet.token.clone());
        blocking(api.clone(), move |c| upload_once_more(c, &file))
            .await
            .unwrap();
        Rig {
            fleet,
            srv,
            api,
            expected,
            sig_text,
            pinned: *signer.verifying_key(),
            n,
        }
    }

    /// Runs the fleet against `addrs`: waits until every device is idle, creates the OTA update
    /// and collects the results.
    async fn roll(
        rig: &Rig,
        addrs: Vec<SocketAddr>,
        mode: Mode,
        tweak: impl FnOnce(&mut Shared),
    ) -> Vec<DeviceResult> {
        let mut shared = Shared::new(addrs, rig.fleet.roots.clone(), rig.pinned, mode);
        tweak(&mut shared);
        let shared = Arc::new(shared);
        let mut tasks = Vec::new();
        for (i, (name, cert, key)) in rig.fleet.ids.iter().take(rig.n).enumerate() {
            let id = Identity {
                thing: name.clone(),
                cert: CertificateDer::from(cert.clone()),
                key: PrivateKeyDer::try_from(key.clone()).unwrap(),
                index: i,
            };
            tasks.push(tokio::spawn(run(shared.clone(), id)));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while shared.ready.load(Ordering::Acquire) < rig.n {
            assert!(Instant::now() < deadline, "the devices did not get ready");
            assert!(
                !tasks.iter().any(|t| t.is_finished()),
                "a device ended before the rollout"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut req = CreateOtaUpdate::new("cut").file(
            OtaFile::new("/ota/bank.bin", hex_of(&rig.expected), &rig.sig_text)
                .file_type(Some(7))
                .certificate_name("signer.crt"),
        );
        for (name, _, _) in rig.fleet.ids.iter().take(rig.n) {
            req = req.thing(name);
        }
        blocking(rig.api.clone(), move |c| c.create_ota_update(&req))
            .await
            .unwrap();
        let mut out = Vec::new();
        for t in tasks {
            let r = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a device did not end in 30 s")
                .unwrap();
            out.push(r);
        }
        out
    }

    /// A TCP proxy to `target` that cuts each of the first `cut_first` connections once it
    /// forwarded `cut_after` bytes from the server to the device.
    async fn cutting_proxy(target: SocketAddr, cut_first: usize, cut_after: usize) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok((down, _)) = l.accept().await {
                let cut = accepted < cut_first;
                accepted += 1;
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let to_server = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut dr, &mut uw).await;
                        let _ = uw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 4096];
                    let mut sent = 0;
                    loop {
                        let room = if cut { cut_after - sent } else { buf.len() };
                        if room == 0 {
                            break;
                        }
                        let k = match ur.read(&mut buf[..room.min(4096)]).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => k,
                        };
                        if dw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                        sent += k;
                    }
                    // Both sockets close here: the device sees its connection end mid-stream.
                    to_server.abort();
                });
            }
        });
        addr
    }

    fn assert_all_updated(rig: &Rig, results: &[DeviceResult]) {
        assert_eq!(results.len(), rig.n);
        for r in results {
            assert_eq!(r.outcome, Outcome::Succeeded, "{}", r.thing);
            assert_eq!(r.digest, Some(rig.expected), "{}", r.thing);
            assert!(r.done_at.is_some(), "{}", r.thing);
            assert_eq!(r.notified, 1, "{}: one notify-next for the job", r.thing);
        }
    }

    /// 96 KB + a bit: 25 blocks; the cut at 40 KB falls mid-download.
    const FILE: usize = 96 * 1024 + 77;
    const CUT_AFTER: usize = 40 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_mode_reconnects_mid_download_and_every_device_updates() {
        let rig = rig(3, FILE).await;
        let proxy = cutting_proxy(rig.srv.mqtt, rig.n, CUT_AFTER).await;
        let results = roll(&rig, vec![proxy], Mode::Cluster, |_| {}).await;
        assert_all_updated(&rig, &results);
        for r in &results {
            assert!(
                r.reconnects >= 1,
                "{}: {} reconnects",
                r.thing,
                r.reconnects
            );
            assert!(!r.confirmed_by_describe, "{}", r.thing);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_mode_ends_in_an_error_when_the_connection_is_cut() {
        let rig = rig(2, FILE).await;
        let proxy = cutting_proxy(rig.srv.mqtt, rig.n, CUT_AFTER).await;
        let results = roll(&rig, vec![proxy], Mode::Direct, |_| {}).await;
        for r in &results {
            assert!(
                matches!(&r.outcome, Outcome::Error(e) if !e.is_empty()),
                "{}: {:?}",
                r.thing,
                r.outcome
            );
            assert_eq!(r.reconnects, 0);
            assert!(r.done_at.is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_first_address_is_passed_over_for_the_next() {
        let rig = rig(2, 8 * 1024).await;
        // A port nobody listens on (bound, then closed).
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        // Device 0 starts on the closed port, device 1 on the server.
        let results = roll(&rig, vec![closed, rig.srv.mqtt], Mode::Cluster, |_| {}).await;
        assert_all_updated(&rig, &results);
        // Only a session established again counts as a reconnect.
        assert!(results.iter().all(|r| r.reconnects == 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_accept_is_settled_by_describe_after_the_resend_is_refused() {
        let rig = rig(2, 8 * 1024).await;
        let results = roll(&rig, vec![rig.srv.mqtt], Mode::Cluster, |s| {
            s.fault = Fault::IgnoreFirstAccept;
            s.retry_after = Duration::from_millis(500);
        })
        .await;
        assert_all_updated(&rig, &results);
        for r in &results {
            assert!(r.confirmed_by_describe, "{}", r.thing);
            assert_eq!(r.reconnects, 0, "{}", r.thing);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_device_gives_up_after_its_budget() {
        let rig = rig(1, 1024).await;
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let mut shared = Shared::new(
            vec![closed],
            rig.fleet.roots.clone(),
            rig.pinned,
            Mode::Cluster,
        );
        shared.reconnect_budget = Duration::from_millis(700);
        let (name, cert, key) = &rig.fleet.ids[0];
        let t = Instant::now();
        let r = run(
            Arc::new(shared),
            Identity {
                thing: name.clone(),
                cert: CertificateDer::from(cert.clone()),
                key: PrivateKeyDer::try_from(key.clone()).unwrap(),
                index: 0,
            },
        )
        .await;
        assert!(t.elapsed() < Duration::from_secs(5));
        let Outcome::Error(e) = &r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(e.contains("gave up after"), "{e}");
        assert!(e.contains("reconnect attempts"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_final_status_lost_with_its_connection_is_resent_and_confirmed() {
        let rig = rig(2, 8 * 1024).await;
        let results = roll(&rig, vec![rig.srv.mqtt], Mode::Cluster, |s| {
            s.fault = Fault::DropAtFirstAccept;
        })
        .await;
        assert_all_updated(&rig, &results);
        for r in &results {
            // The copy sent after the reconnect is refused (the first committed); the
            // describe shows SUCCEEDED.
            assert!(r.confirmed_by_describe, "{}", r.thing);
            assert_eq!(r.reconnects, 1, "{}", r.thing);
        }
    }

    /// A TLS endpoint with the server's certificate that answers the first `refuse` CONNECTs
    /// with CONNACK ServiceUnavailable and forwards every later connection to `target`.
    async fn refusing_proxy(
        rig: &Rig,
        refuse: usize,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let ca = rig.fleet.dir.path().join("data/ca");
        let cert = std::fs::read(ca.join("server.crt.pem")).unwrap();
        let key = std::fs::read(ca.join("server.key.pem")).unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(ferrota_server::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let target = rig.srv.mqtt;
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = refused.clone();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                if count.load(Ordering::Acquire) >= refuse {
                    tokio::spawn(async move {
                        if let Ok(mut up) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    });
                    continue;
                }
                count.fetch_add(1, Ordering::AcqRel);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(down).await else {
                        return;
                    };
                    let mut buf = BytesMut::new();
                    loop {
                        match Packet::read(&mut buf, MAX_PACKET) {
                            Ok(Packet::Connect(..)) => break,
                            Ok(_) => return,
                            Err(_) => {}
                        }
                        if !matches!(tls.read_buf(&mut buf).await, Ok(n) if n > 0) {
                            return;
                        }
                    }
                    let mut out = BytesMut::new();
                    let nack = rumqttc::ConnAck::new(ConnectReturnCode::ServiceUnavailable, false);
                    let _ = Packet::ConnAck(nack).write(&mut out, MAX_PACKET);
                    let _ = tls.write_all(&out).await;
                    let _ = tls.flush().await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, refused)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_connack_is_tried_again_in_cluster_mode_only() {
        let rig = rig(1, 8 * 1024).await;
        let (addr, refused) = refusing_proxy(&rig, 2).await;
        let results = roll(&rig, vec![addr], Mode::Cluster, |_| {}).await;
        assert_all_updated(&rig, &results);
        assert_eq!(refused.load(Ordering::Acquire), 2);
        assert_eq!(results[0].reconnects, 0);

        let (addr, _) = refusing_proxy(&rig, 1).await;
        let shared = Shared::new(
            vec![addr],
            rig.fleet.roots.clone(),
            rig.pinned,
            Mode::Direct,
        );
        let (name, cert, key) = &rig.fleet.ids[0];
        let r = run(
            Arc::new(shared),
            Identity {
                thing: name.clone(),
                cert: CertificateDer::from(cert.clone()),
                key: PrivateKeyDer::try_from(key.clone()).unwrap(),
                index: 0,
            },
        )
        .await;
        assert_eq!(
            r.outcome,
            Outcome::Error("CONNACK refused: ServiceUnavailable".into())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_final_status_never_answered_ends_in_a_clear_error() {
        let rig = rig(1, 8 * 1024).await;
        // Direct mode's server answers; ignoring every answer stands for a cluster whose
        // workers are all gone while the broker still takes the messages.
        let results = roll(&rig, vec![rig.srv.mqtt], Mode::Cluster, |s| {
            s.fault = Fault::IgnoreEveryAnswer;
            s.retry_after = Duration::from_millis(200);
            s.reconnect_budget = Duration::from_secs(1);
        })
        .await;
        let Outcome::Error(e) = &results[0].outcome else {
            panic!("{:?}", results[0].outcome)
        };
        assert!(e.starts_with("no answer to SUCCEEDED of job"), "{e}");
        assert_eq!(results[0].digest, Some(rig.expected));
        assert!(results[0].done_at.is_none());
    }
}
