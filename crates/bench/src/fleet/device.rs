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
//!    (QoS 1). The device counts as done when the server's PUBACK for that status arrives (the
//!    server commits the update before it acknowledges).
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
use ferrota_proto::job::{JobDocument, JobMessage};
use ferrota_proto::jobs_api;
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
}

/// What every device of a fleet shares.
pub struct Shared {
    /// The server's MQTT/TLS address.
    pub addr: SocketAddr,
    /// The fleet CA (the server certificate's issuer).
    pub roots: Arc<rustls::RootCertStore>,
    /// The code-signing key the devices pin.
    pub code_signing_key: VerifyingKey,
    /// Devices connected, subscribed and answered (idle, waiting for a job).
    pub ready: AtomicUsize,
    /// Signalled whenever `ready` grows.
    pub ready_changed: Notify,
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
    /// When the server acknowledged the final status.
    pub done_at: Option<Instant>,
    /// SHA-256 of the file as received (hash mode), once every block arrived.
    pub digest: Option<[u8; 32]>,
}

type Tls = TlsStream<TcpStream>;

/// The connection and the little protocol state a device keeps.
struct Conn {
    io: Tls,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next_pkid: u16,
    last_sent: Instant,
}

impl Conn {
    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }

    fn queue(&mut self, p: Packet) -> Result<(), String> {
        p.write(&mut self.wbuf, MAX_PACKET)
            .map(|_| ())
            .map_err(|e| format!("encode: {e}"))
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.io
            .write_all(&self.wbuf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.io.flush().await.map_err(|e| format!("flush: {e}"))?;
        self.wbuf.clear();
        // An idle device holds no buffer.
        if self.wbuf.capacity() > 4096 {
            self.wbuf = BytesMut::new();
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet; `Ok(None)` when `until` passed first.
    async fn read(&mut self, until: Instant) -> Result<Option<Packet>, String> {
        loop {
            match Packet::read(&mut self.rbuf, MAX_PACKET) {
                Ok(p) => {
                    if self.rbuf.is_empty() && self.rbuf.capacity() > 16 * 1024 {
                        self.rbuf = BytesMut::new();
                    }
                    return Ok(Some(p));
                }
                Err(rumqttc::Error::InsufficientBytes(n)) => self.rbuf.reserve(n.max(512)),
                Err(e) => return Err(format!("malformed packet from the server: {e}")),
            }
            match tokio::time::timeout_at(until, self.io.read_buf(&mut self.rbuf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err("the server closed the connection".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("read: {e}")),
            }
        }
    }
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
    /// pkid of the final status, once sent.
    final_pkid: Option<u16>,
    final_outcome: Option<Outcome>,
}

fn topic_string(t: Topic<'_>) -> String {
    t.to_string()
}

/// Connects, subscribes, asks for the next job and reports ready; then runs jobs until one
/// ended (the fleet rolls out one update).
pub async fn run(shared: Arc<Shared>, id: Identity) -> DeviceResult {
    let thing = id.thing.clone();
    let mut digest = None;
    let mut done_at = None;
    let outcome = match session(&shared, id, &mut digest, &mut done_at).await {
        Ok(o) => o,
        Err(e) => Outcome::Error(e),
    };
    DeviceResult {
        thing,
        outcome,
        done_at,
        digest,
    }
}

async fn connect(shared: &Shared, id: Identity) -> Result<Conn, String> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(ferrota_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(shared.roots.clone())
        .with_client_auth_cert(vec![id.cert], id.key)
        .map_err(|e| format!("TLS client certificate: {e}"))?;
    // No session cache per device: one connection each, and 10k caches would cost memory.
    cfg.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let mut attempt = 0;
    let tcp = loop {
        match TcpStream::connect(shared.addr).await {
            Ok(t) => break t,
            // A burst of connects can overflow the listen backlog: back off and retry.
            Err(e) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                let _ = e;
            }
            Err(e) => return Err(format!("connect {}: {e}", shared.addr)),
        }
    };
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").map_err(|e| format!("server name: {e}"))?;
    let io = tokio::time::timeout(Duration::from_secs(60), connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        next_pkid: 0,
        last_sent: Instant::now(),
    })
}

async fn session(
    shared: &Shared,
    id: Identity,
    digest_out: &mut Option<[u8; 32]>,
    done_at: &mut Option<Instant>,
) -> Result<Outcome, String> {
    let thing = id.thing.clone();
    let mut c = connect(shared, id).await?;
    let mut connect = Connect::new(thing.as_str());
    connect.keep_alive = KEEP_ALIVE_SECS;
    connect.clean_session = true;
    c.queue(Packet::Connect(connect))?;
    c.flush().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    match c.read(deadline).await? {
        Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => {}
        Some(Packet::ConnAck(a)) => return Err(format!("CONNACK refused: {:?}", a.code)),
        Some(p) => return Err(format!("expected CONNACK, got {p:?}")),
        None => return Err("no CONNACK in 60 s".into()),
    }
    let notify_next = topic_string(Topic::notify_next(&thing));
    let next_accepted = topic_string(Topic::next_get_accepted(&thing));
    let pkid = c.pkid();
    let mut sub = Subscribe::new(notify_next.as_str(), QoS::AtLeastOnce);
    sub.add(next_accepted.clone(), QoS::AtLeastOnce);
    sub.pkid = pkid;
    c.queue(Packet::Subscribe(sub))?;
    let token = jobs_api::client_token(0, &thing);
    let mut body = [0u8; 128];
    let body = jobs_api::encode_client_token_request(&token, &mut body)
        .map_err(|_| "client token".to_string())?;
    let mut get = Publish::new(
        topic_string(Topic::next_get(&thing)),
        QoS::AtLeastOnce,
        body.as_bytes().to_vec(),
    );
    get.pkid = c.pkid();
    c.queue(Packet::Publish(get))?;
    c.flush().await?;

    let ka = Duration::from_secs(u64::from(KEEP_ALIVE_SECS));
    let mut ready = false;
    let mut dl: Option<Download> = None;
    let mut done_jobs: Vec<String> = Vec::new();
    loop {
        let now = Instant::now();
        let mut until = c.last_sent + ka / 2;
        if let Some(d) = &dl
            && let Some(t) = d.inflight.iter().map(|r| r.2).min()
        {
            until = until.min(t + REREQUEST_AFTER);
        }
        let p = c.read(until.max(now)).await?;
        let Some(p) = p else {
            if Instant::now() >= c.last_sent + ka / 2 {
                c.queue(Packet::PingReq)?;
            }
            if let Some(d) = dl.as_mut() {
                let stale = Instant::now() - REREQUEST_AFTER;
                if d.inflight.iter().any(|r| r.2 <= stale) {
                    // Ask again for everything from the first block not hashed yet.
                    d.inflight.clear();
                    d.requested = d.next;
                    fill_window(&mut c, &thing, d)?;
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
                        JobsTopic::NotifyNext
                        | JobsTopic::Describe {
                            job: JobRef::Next,
                            reply: Reply::Accepted,
                        },
                    ) => {
                        if !ready {
                            ready = true;
                            shared.ready.fetch_add(1, Ordering::AcqRel);
                            shared.ready_changed.notify_waiters();
                        }
                        if dl.is_none()
                            && let Some(d) = start_job(&thing, &p.payload, &done_jobs)
                        {
                            let pkid = c.pkid();
                            let mut s = Subscribe::new(d.data_topic.as_str(), QoS::AtMostOnce);
                            s.pkid = pkid;
                            c.queue(Packet::Subscribe(s))?;
                            let mut d = d;
                            fill_window(&mut c, &thing, &mut d)?;
                            dl = Some(d);
                        }
                    }
                    TopicKind::Stream {
                        op: StreamOp::Data,
                        encoding: Encoding::Cbor,
                        stream,
                    } => {
                        if let Some(d) = dl.as_mut()
                            && stream == d.stream
                            && d.final_pkid.is_none()
                        {
                            on_block(&mut c, &thing, d, &p.payload)?;
                            if d.next == d.num_blocks && d.final_pkid.is_none() {
                                let hash: [u8; 32] = d.sha.clone().finalize().into();
                                *digest_out = Some(hash);
                                finish(&mut c, &thing, d, &hash, &shared.code_signing_key)?;
                            }
                        }
                    }
                    _ => {}
                }
            }
            Packet::PubAck(a) => {
                if let Some(d) = dl.as_mut()
                    && d.final_pkid == Some(a.pkid)
                {
                    *done_at = Some(Instant::now());
                    let outcome = d.final_outcome.take().unwrap_or(Outcome::Succeeded);
                    done_jobs.push(d.job_id.clone());
                    c.queue(Packet::Disconnect)?;
                    let _ = c.flush().await;
                    let _ = c.io.shutdown().await;
                    return Ok(outcome);
                }
            }
            Packet::SubAck(_) | Packet::PingResp | Packet::UnsubAck(_) => {}
            other => return Err(format!("unexpected packet from the server: {other:?}")),
        }
        c.flush().await?;
    }
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
        final_pkid: None,
        final_outcome: None,
    })
}

/// Sends GetStream requests until [`REQUESTS_IN_FLIGHT`] are out or the file is covered.
fn fill_window(c: &mut Conn, thing: &str, d: &mut Download) -> Result<(), String> {
    let get_topic = topic_string(Topic::stream(
        thing,
        &d.stream,
        StreamOp::Get,
        Encoding::Cbor,
    ));
    while d.inflight.len() < REQUESTS_IN_FLIGHT as usize && d.requested < d.num_blocks {
        let from = d.requested;
        let to = (from + BLOCKS_PER_REQUEST).min(d.num_blocks);
        let mut bits = [0u8; (BLOCKS_PER_REQUEST as usize).div_ceil(8) + 1];
        let len = encode_blocks(from, from..to, &mut bits).map_err(|e| format!("{e:?}"))?;
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
            .map_err(|_| "stream request".to_string())?;
        c.queue(Packet::Publish(Publish::new(
            get_topic.as_str(),
            QoS::AtMostOnce,
            buf[..n].to_vec(),
        )))?;
        d.inflight.push((from, to, Instant::now()));
        d.requested = to;
    }
    Ok(())
}

fn status(c: &mut Conn, thing: &str, job: &str, s: OtaStatus) -> Result<Option<u16>, String> {
    let mut buf = [0u8; 256];
    let body = s.encode(&mut buf).map_err(|_| "status".to_string())?;
    let topic = topic_string(Topic::update(thing, job, Reply::Request));
    if s.qos() == 0 {
        c.queue(Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            body.as_bytes().to_vec(),
        )))?;
        Ok(None)
    } else {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, body.as_bytes().to_vec());
        p.pkid = c.pkid();
        let pkid = p.pkid;
        c.queue(Packet::Publish(p))?;
        Ok(Some(pkid))
    }
}

fn on_block(c: &mut Conn, thing: &str, d: &mut Download, payload: &[u8]) -> Result<(), String> {
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
        status(
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

fn finish(
    c: &mut Conn,
    thing: &str,
    d: &mut Download,
    digest: &[u8; 32],
    key: &VerifyingKey,
) -> Result<(), String> {
    let verdict = d
        .signature
        .clone()
        .and_then(|s| s.verify_digest(key, digest).map_err(|e| e.to_string()));
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
    let job = d.job_id.clone();
    d.final_pkid = status(c, thing, &job, s)?;
    d.final_outcome = Some(outcome);
    Ok(())
}
