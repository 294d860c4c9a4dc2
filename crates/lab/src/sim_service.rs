//! The real server's Jobs and Streams services as the other end of the deterministic harness
//! ([`ferrota_sim::harness::Sim`]): the agent's virtual-time tests run against what ships, not
//! against a model of it.
//!
//! [`ServerService`] holds the services over a [`MemoryStore`], an in-memory [`BlobStore`]
//! ([`MemoryBlobs`]), a [`Clock`] the harness's virtual time drives ([`Service::set_now`]) and an
//! [`Outbound`] that queues every message for the one simulated device ([`THING`]). A
//! current-thread tokio runtime runs the async calls (`block_on`): nothing sleeps, no socket,
//! no TLS, no SQLite, so a whole update still takes milliseconds of real time and every run
//! with the same seed is the same run.
//!
//! Jobs are made as an operator makes them: [`ServerService::add_job`] stores the image's file
//! and calls the real `Admin::create_ota` with its OTA signature; [`ServerService::cancel_job`]
//! is the real `CancelJob --force`. The §4.9 hazards of the AWS service are switches around
//! the real services: [`ServerService::send_twice`] (an `Outbound` wrapper that delivers every
//! stream block twice) and [`ServerService::notify_after_update`].
//!
//! Device Shadow requests (`…/shadow/update`, the agent's report after every boot and job)
//! go to the real shadow service like every other request; [`ServerService::inventory`] is
//! the server's inventory of the device built from it.
//!
//! Signed update metadata (issue #20): [`ServerService::with_trust`] runs the services with the
//! server's own `TrustService` over the fixed keys of `ferrota_sim::trust` ([`TrustSetup`]), so
//! every Jobs answer carries a real `ferrotaTimestamp` on virtual time and OTA create checks a
//! metadata file ([`FirmwareJob::bundle`], `fileType` 142) against `files[0]`. The attack suite
//! (`tests/attacks/`) plays the attacker with [`ServerService::add_job_unchecked`] (a
//! compromised server's create), [`ServerService::freeze`] (recorded job documents replayed),
//! [`ServerService::edit_jobs`] (a man in the middle on the Jobs topics) and
//! [`ServerService::replace_file`]/[`ServerService::replace_block`] (stream bytes swapped), and
//! checks "nothing left the server" with [`ServerService::blocks_sent_of`].
//!
//! [`SimExt`] gives the harness the operations the tests use (add, cancel, run until
//! terminal, the statuses the device reported).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrota_agent::Instant;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_proto::job::JobStatus;
use ferrota_proto::stream::DataBlock;
use ferrota_proto::topic::{JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};
use ferrota_server::admin::{
    Admin, AdminError, CreateOtaUpdate, NoSessions, OtaDescription, OtaFile,
};
use ferrota_server::context::{Clock, Outbound, Services};
use ferrota_server::store::{BlobStore, MemoryBlobs, MemoryStore, SharedStore, Thing};
use ferrota_server::trust::TrustService;
use ferrota_sim::harness::{AgentSettings, Msg, Service, THING};
use ferrota_sim::images::ota::TestImage;
use rumqttc::QoS;

/// The `fileType` of the signed update metadata (issue #20: the SUIT envelope).
pub const MANIFEST_FILE_TYPE: u8 = ferrota_manifest::MANIFEST_FILE_TYPE;

/// The harness over the real services.
pub type Sim = ferrota_sim::harness::Sim<ServerService>;

/// The `fileType` of firmware, as `ferrota ota create` sends it (the seed's T2G type).
pub const FIRMWARE_FILE_TYPE: u8 = ferrota_server::admin::FIRMWARE_FILE_TYPE;

/// Epoch seconds at the harness's time zero: virtual time starts on a plausible date, so the
/// server's timestamps look like AWS's (2026-11-24T00:00:00Z).
pub const EPOCH_AT_ZERO: u64 = 1_795_478_400;

/// One OTA update of one file for [`THING`], as an operator creates it.
#[derive(Debug, Clone)]
pub struct FirmwareJob {
    /// The OTA update id (`otaUpdateId`); the job is `AFR_OTA-<id>`, as AWS names it.
    pub id: String,
    /// The file streamed.
    pub image: Arc<TestImage>,
    /// `fileType` (absent: the device reads 0).
    pub file_type: Option<u8>,
    /// `codeSigning…signature.inlineDocument` (base64 DER): the image's own unless a test
    /// puts another file's there.
    pub signature: String,
    /// Earlier images the server makes deltas from (`deltaFrom`, issue #19), uploaded first.
    pub delta_from: Vec<Arc<TestImage>>,
    /// The signed update metadata (issue #20: the SUIT envelope), added to the update as a
    /// second file of `fileType` [`MANIFEST_FILE_TYPE`] (stream file id 1; the packed copy and
    /// deltas of `files[0]` follow it).
    pub bundle: Option<Vec<u8>>,
    /// `codeSigning…signature.inlineDocument` of [`FirmwareJob::bundle`]: the release key's
    /// signature over the envelope (the server wants an ECDSA signature on every file; the
    /// device trusts the envelope for its own COSE signature, not for this one).
    pub bundle_signature: String,
}

impl FirmwareJob {
    /// Firmware ([`FIRMWARE_FILE_TYPE`]) with the image's OTA signature.
    pub fn firmware(id: &str, image: Arc<TestImage>) -> Self {
        FirmwareJob {
            id: id.into(),
            signature: image.signature.clone(),
            image,
            file_type: Some(FIRMWARE_FILE_TYPE),
            delta_from: Vec::new(),
            bundle: None,
            bundle_signature: String::new(),
        }
    }

    /// The same update with its metadata file `bundle` (fileType 142), signed for the file
    /// list by `key` (a release key; any P-256 key for an attack).
    pub fn with_bundle(mut self, bundle: Vec<u8>, key: &SigningKey) -> Self {
        self.bundle_signature = ferrota_sim::trust::file_signature(&bundle, key);
        self.bundle = Some(bundle);
        self
    }

    /// The same update with `files[0]`'s OTA signature (`sig-sha256-ecdsa`) made by `key`:
    /// in Require mode the agent checks it with the manifest's release key.
    pub fn signed_by(mut self, key: &SigningKey) -> Self {
        self.signature = ferrota_sim::trust::file_signature(&self.image.file, key);
        self
    }

    /// The same update with a delta from `base` for devices that run it.
    pub fn delta_from(mut self, base: Arc<TestImage>) -> Self {
        self.delta_from.push(base);
        self
    }
}

/// [`FirmwareJob::firmware`].
pub fn job(id: &str, image: Arc<TestImage>) -> FirmwareJob {
    FirmwareJob::firmware(id, image)
}

/// A job's execution on [`THING`] as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    /// Status.
    pub status: JobStatus,
    /// `statusDetails`.
    pub details: BTreeMap<String, String>,
    /// `versionNumber`.
    pub version: u64,
}

/// A status update the device published (`…/jobs/<jobId>/update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The job id (`AFR_OTA-…`).
    pub job: String,
    /// The payload, as sent.
    pub payload: String,
}

/// Time for the services: [`EPOCH_AT_ZERO`] plus the harness's virtual time.
#[derive(Debug, Default)]
pub struct VirtualClock(AtomicU64);

impl VirtualClock {
    /// Sets virtual time.
    pub fn set(&self, now: Instant) {
        self.0.store(now.as_micros(), Ordering::Relaxed);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> u64 {
        EPOCH_AT_ZERO + self.0.load(Ordering::Relaxed) / 1_000_000
    }
}

fn is_data(topic: &str) -> bool {
    topic.ends_with("/data/cbor") || topic.ends_with("/data/json")
}

/// The services' messages for the simulated device, queued until the harness takes them.
///
/// Decision: `…/jobs/notify` (the pending-list notice) and the Device Shadow's replies
/// (`…/shadow/…/accepted|rejected|delta|documents`) are dropped: the agent never subscribes to
/// them, so a broker would not deliver them. Every other message reaches the device; the
/// harness itself drops stream data the device is not subscribed to.
#[derive(Default)]
pub struct DeviceOutbox {
    queue: Mutex<Vec<Msg>>,
    blocks: AtomicU32,
    /// Blocks sent per stream file id (what [`ServerService::blocks_sent_of`] reads).
    blocks_of: Mutex<BTreeMap<u32, u32>>,
}

impl DeviceOutbox {
    fn take(&self) -> Vec<Msg> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Outbound for DeviceOutbox {
    fn publish(&self, topic: &str, payload: Bytes, _qos: QoS) {
        let shadow = matches!(
            Topic::parse(topic).map(|t| t.kind),
            Ok(TopicKind::Shadow { .. })
        );
        if topic.ends_with("/jobs/notify") || shadow {
            return;
        }
        if is_data(topic) {
            self.blocks.fetch_add(1, Ordering::Relaxed);
            if let Ok(b) = DataBlock::decode(&payload) {
                *self
                    .blocks_of
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(b.file_id)
                    .or_default() += 1;
            }
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((topic.to_string(), payload.to_vec()));
    }
}

/// §4.9 hazard 1: a service that delivers every stream block twice (AWS's at-least-once
/// delivery; the device must not count a block twice nor finish on a late copy).
struct Twice(Arc<dyn Outbound>);

impl Outbound for Twice {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if is_data(topic) {
            self.0.publish(topic, payload.clone(), qos);
        }
        self.0.publish(topic, payload, qos);
    }
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        if is_data(topic) {
            self.0.deliver_to(client_id, topic, payload.clone(), qos);
        }
        self.0.deliver_to(client_id, topic, payload, qos);
    }
}

/// A stored file gone bad (issue #19's corrupted patch): every block `block` of file `file_id`
/// reaches the device with byte `at` of its payload inverted.
struct Corrupt {
    file_id: u32,
    /// The block damaged; `None`: every block of the file ([`Damage::Swap`]).
    block: Option<u32>,
    damage: Damage,
}

/// What [`Corrupt`] does to its block.
enum Damage {
    /// Inverts the payload's byte at this offset.
    Flip(usize),
    /// Sends these bytes as the payload instead.
    Replace(Vec<u8>),
    /// Sends the same block of another file instead (block `i` is bytes
    /// `[i * block_size, (i + 1) * block_size)` of it, cut at its end): a stored file swapped
    /// for another one of the same size.
    Swap {
        /// The other file.
        file: Arc<Vec<u8>>,
        /// The stream's block size.
        block_size: usize,
    },
}

impl Rewrite for Corrupt {
    fn apply(&self, topic: &str, payload: Bytes) -> Bytes {
        if !is_data(topic) {
            return payload;
        }
        let Ok(b) = DataBlock::decode(&payload) else {
            return payload;
        };
        if b.file_id != self.file_id || self.block.is_some_and(|k| k != b.block_id) {
            return payload;
        }
        let data = match &self.damage {
            Damage::Flip(at) if *at < b.payload.len() => {
                let mut data = b.payload.to_vec();
                data[*at] ^= 0xFF;
                data
            }
            Damage::Flip(_) => return payload,
            Damage::Replace(with) => with.clone(),
            Damage::Swap { file, block_size } => {
                let start = (b.block_id as usize).saturating_mul(*block_size);
                let end = start.saturating_add(*block_size).min(file.len());
                match file.get(start..end) {
                    Some(part) if !part.is_empty() => part.to_vec(),
                    _ => return payload,
                }
            }
        };
        let bad = DataBlock::new(b.client_token, b.file_id, b.block_id, &data);
        let mut buf = vec![0u8; bad.encoded_len()];
        match bad.encode(&mut buf) {
            Ok(n) => Bytes::from(buf[..n].to_vec()),
            Err(_) => payload,
        }
    }
}

/// A man in the middle of the server's outbound messages: each payload is rewritten on its
/// way (a damaged block, a recorded job document, an edited one). One wrapper,
/// [`Rewriting`], sends the rewritten payload on for all of them.
trait Rewrite: Send + Sync + 'static {
    /// The payload the device gets instead of `payload` on `topic`.
    fn apply(&self, topic: &str, payload: Bytes) -> Bytes;
}

/// Sends every message through `rewrite` to `inner`.
struct Rewriting<R> {
    inner: Arc<dyn Outbound>,
    rewrite: R,
}

impl<R: Rewrite> Outbound for Rewriting<R> {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        self.inner
            .publish(topic, self.rewrite.apply(topic, payload), qos);
    }
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        self.inner
            .deliver_to(client_id, topic, self.rewrite.apply(topic, payload), qos);
    }
}

/// Whether `topic` is a Jobs message to the device that carries an execution (or says there
/// is none): `$next/get` and `<jobId>/get` answers, `notify-next`, `start-next` answers. These
/// are the messages the server signs a timestamp into (design #20 §3.2).
fn is_job_document(topic: &str) -> bool {
    matches!(
        Topic::parse(topic).map(|t| t.kind),
        Ok(TopicKind::Jobs(
            JobsTopic::NotifyNext
                | JobsTopic::StartNext(Reply::Accepted)
                | JobsTopic::Describe {
                    reply: Reply::Accepted,
                    ..
                }
        ))
    )
}

/// Design #20 §6 test 3 (indefinite freeze): an attacker on the path who answers every
/// job-document message to the device with one it recorded earlier (its old timestamp and
/// all). A recorded message of the same topic is sent as it is; a `notify-next` with no
/// recorded one of its own gets the last recorded payload under its topic (the device parses
/// both forms alike). Everything else (stream data, update answers) passes unchanged: the
/// attacker needs nothing else to keep the device on the old job list.
struct Freeze {
    recorded: Vec<Msg>,
}

impl Rewrite for Freeze {
    fn apply(&self, topic: &str, payload: Bytes) -> Bytes {
        if !is_job_document(topic) {
            return payload;
        }
        let same = self.recorded.iter().rev().find(|(t, _)| t == topic);
        match same.or(self.recorded.last()) {
            Some((_, p)) => Bytes::from(p.clone()),
            None => payload,
        }
    }
}

/// What a man in the middle on the Jobs topics ([`ServerService::edit_jobs`]) does to a
/// job-document message.
pub type JobEdit = Arc<dyn Fn(&mut serde_json::Value) + Send + Sync>;

/// A man in the middle on the Jobs topics (design #20 §6, e.g. test 4's enlarged `filesize`):
/// every job-document message to the device (see [`is_job_document`]) is parsed as JSON,
/// edited, and sent re-encoded. A payload that is not JSON passes unchanged.
struct EditJobs {
    edit: JobEdit,
}

impl Rewrite for EditJobs {
    fn apply(&self, topic: &str, payload: Bytes) -> Bytes {
        if !is_job_document(topic) {
            return payload;
        }
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&payload) else {
            return payload;
        };
        (self.edit)(&mut v);
        match serde_json::to_vec(&v) {
            Ok(b) => Bytes::from(b),
            Err(_) => payload,
        }
    }
}

/// The server's trust configuration (issue #20) from the fixed keys of [`ferrota_sim::trust`]:
/// the timestamp key and the root documents v1..vN `ferrota key trust-init`/`rotate` would have
/// written, and the timestamps' lifetime.
#[derive(Clone)]
pub struct TrustSetup {
    /// The online timestamp key (a timestamp-role key of the newest root).
    pub key: SigningKey,
    /// Root documents v1..vN (CBOR), ascending.
    pub roots: Vec<Vec<u8>>,
    /// How long a timestamp is valid (the server's `[trust] timestamp_lifetime`).
    pub lifetime: Duration,
}

impl TrustSetup {
    /// The server's default timestamp lifetime (design #20 §3.2): one hour.
    pub const LIFETIME: Duration = Duration::from_secs(3600);

    /// The fixtures' chain up to root `version` (no boot key revoked), signed timestamps by
    /// that root's timestamp key, [`TrustSetup::LIFETIME`].
    pub fn chain(version: u32) -> Self {
        Self::with_roots(
            (1..=version)
                .map(|v| ferrota_sim::trust::root(v, 0))
                .collect(),
        )
    }

    /// Root documents `roots` (v1..vN of the fixtures' chain, some perhaps with revoked boot
    /// keys: `ferrota_sim::trust::root(v, mask)`), the timestamp key of root vN.
    pub fn with_roots(roots: Vec<Vec<u8>>) -> Self {
        let n = u32::try_from(roots.len()).unwrap_or(u32::MAX);
        TrustSetup {
            key: ferrota_sim::trust::timestamp_key_of(n).clone(),
            roots,
            lifetime: Self::LIFETIME,
        }
    }

    /// The server's trust service of this setup, checking metadata files at OTA create or not.
    /// Panics if the server refuses the setup: the fixtures are fixed, so that is a broken test.
    fn service(&self, check_bundles: bool) -> Arc<TrustService> {
        let t = TrustService::new(
            self.key.clone(),
            self.roots.clone(),
            self.lifetime,
            check_bundles,
        )
        .unwrap_or_else(|e| panic!("the server refuses the trust fixtures: {e:?}"));
        Arc::new(t)
    }
}

/// An OTA update created on the server: its ids.
#[derive(Debug, Clone)]
struct Created {
    job_id: String,
    stream_id: String,
}

/// The real Jobs and Streams services for one simulated device (see the module docs).
pub struct ServerService {
    rt: tokio::runtime::Runtime,
    admin: Arc<Admin>,
    services: Arc<Services>,
    store: SharedStore,
    clock: Arc<VirtualClock>,
    out: Arc<DeviceOutbox>,
    created: BTreeMap<String, Created>,
    views: BTreeMap<String, JobView>,
    /// Every status update the device published, in order.
    pub updates: Vec<Update>,
    /// Stream requests (`…/streams/<id>/get/…`) the device published.
    pub stream_requests: u32,
    /// The Device Shadow updates (reports) the device published, in order.
    pub shadow_updates: Vec<String>,
    /// The Jobs messages (not stream data) the services sent the device, in order.
    pub jobs_sent: Vec<Msg>,
    /// §4.9 hazard 3: after every status update, also push `notify-next` with the device's
    /// current next job, as AWS does when it re-announces a job (the device must not restart
    /// a download it is doing). Done here, not in an `Outbound`: the body is the services'
    /// own answer to `$next/get` (an async store read).
    pub notify_after_update: bool,
    /// The trust services (issue #20): the one the server runs with (metadata files checked
    /// at create) and the same keys with the check off ([`ServerService::add_job_unchecked`]).
    trust: Option<(Arc<TrustService>, Arc<TrustService>)>,
}

/// Services over `store`, `blobs`, `clock` and the device's outbox, and the [`Admin`] over
/// them that creates and cancels OTA updates: no broker and no sessions (the one simulated
/// device is reached through the outbox).
fn admin_over(
    store: SharedStore,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    out: Arc<dyn Outbound>,
) -> (Arc<Admin>, Arc<Services>) {
    let services = Arc::new(Services::new(store, blobs, clock, out));
    let admin = Admin {
        services: services.clone(),
        sessions: Arc::new(NoSessions),
        ca: None,
        endpoint: "localhost".into(),
        port: 8883,
    };
    admin.follow_dynamic_targets();
    (Arc::new(admin), services)
}

/// The `CreateOTAUpdate` request for `job` on [`THING`], its file stored as `sha256` (and its
/// metadata file, if any, as `bundle_sha256`: the request's second file).
fn create_request(
    job: &FirmwareJob,
    sha256: String,
    bases: Vec<String>,
    bundle_sha256: Option<String>,
) -> CreateOtaUpdate {
    let file = bases.into_iter().fold(
        OtaFile::new("/ota/image.bin", sha256, job.signature.clone()).file_type(job.file_type),
        OtaFile::delta_from,
    );
    let req = CreateOtaUpdate::new(job.id.clone())
        .description("harness")
        .thing(THING)
        .file(file);
    match bundle_sha256 {
        Some(sha) => req.file(
            OtaFile::new("/ota/image.suit", sha, job.bundle_signature.clone())
                .file_type(Some(MANIFEST_FILE_TYPE)),
        ),
        None => req,
    }
}

impl ServerService {
    /// The services with [`THING`] registered and no job.
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
        let store: SharedStore = Arc::new(MemoryStore::new());
        let clock = Arc::new(VirtualClock::default());
        let out = Arc::new(DeviceOutbox::default());
        let (admin, services) = admin_over(
            store.clone(),
            Arc::new(MemoryBlobs::default()),
            clock.clone(),
            out.clone(),
        );
        rt.block_on(store.create_thing(&Thing {
            name: THING.into(),
            groups: vec![],
            created_at: EPOCH_AT_ZERO,
        }))
        .expect("register the thing");
        ServerService {
            rt,
            admin,
            services,
            store,
            clock,
            out,
            created: BTreeMap::new(),
            views: BTreeMap::new(),
            updates: vec![],
            stream_requests: 0,
            shadow_updates: vec![],
            jobs_sent: vec![],
            notify_after_update: false,
            trust: None,
        }
    }

    /// The services with trust on (issue #20, see [`ServerService::set_trust`]).
    pub fn with_trust(setup: &TrustSetup) -> Self {
        let mut s = Self::new();
        s.set_trust(setup);
        s
    }

    /// From now on the server signs a timestamp into every Jobs answer (`Services::set_trust`)
    /// with `setup`'s key and roots, on the harness's virtual clock, and checks a metadata file
    /// against `files[0]` at OTA create. Called again, it replaces the keys: a rotation
    /// (`ferrota key rotate` and a server restart with the new trust directory).
    pub fn set_trust(&mut self, setup: &TrustSetup) {
        let (checked, unchecked) = (setup.service(true), setup.service(false));
        self.services.set_trust(Some(checked.clone()));
        self.trust = Some((checked, unchecked));
    }

    /// [`ServerService::add_job`] through a server whose create does not check metadata files
    /// (a compromised server, or an operator's mistake): the job is stored whatever its
    /// metadata file says, and is timestamped as usual. Without trust it is `add_job`.
    pub fn add_job_unchecked(&mut self, job: &FirmwareJob) -> Result<Vec<Msg>, AdminError> {
        let Some((checked, unchecked)) = self.trust.clone() else {
            return self.add_job(job);
        };
        self.services.set_trust(Some(unchecked));
        let r = self.add_job(job);
        self.services.set_trust(Some(checked));
        r
    }

    /// From now on every stream block is delivered twice (§4.9 hazard 1).
    pub fn send_twice(&self) {
        self.services.wrap_outbound(|o| Arc::new(Twice(o)));
    }

    /// From now on block `block` of stream file `file_id` reaches the device with byte `at`
    /// of its payload inverted: a stored packed file or delta gone bad.
    pub fn corrupt_block(&self, file_id: u32, block: u32, at: usize) {
        self.services.wrap_outbound(|o| {
            Arc::new(Rewriting {
                inner: o,
                rewrite: Corrupt {
                    file_id,
                    block: Some(block),
                    damage: Damage::Flip(at),
                },
            })
        });
    }

    /// From now on block `block` of stream file `file_id` reaches the device as `bytes`: a
    /// stored file swapped for another one (e.g. a packed file's header for another file's).
    pub fn replace_block(&self, file_id: u32, block: u32, bytes: Vec<u8>) {
        self.services.wrap_outbound(|o| {
            Arc::new(Rewriting {
                inner: o,
                rewrite: Corrupt {
                    file_id,
                    block: Some(block),
                    damage: Damage::Replace(bytes.clone()),
                },
            })
        });
    }

    /// From now on every block of stream file `file_id` reaches the device as the same block
    /// of `file` (blocks of `block_size` bytes, the device's): a stored file swapped for
    /// another one of the same size, e.g. a genuine image's stream bytes for an attacker's.
    pub fn replace_file(&self, file_id: u32, file: Vec<u8>, block_size: u32) {
        let file = Arc::new(file);
        self.services.wrap_outbound(|o| {
            Arc::new(Rewriting {
                inner: o,
                rewrite: Corrupt {
                    file_id,
                    block: None,
                    damage: Damage::Swap {
                        file,
                        block_size: block_size as usize,
                    },
                },
            })
        });
    }

    /// Stream blocks the services sent the device (a block sent twice counts twice).
    pub fn blocks_sent(&self) -> u32 {
        self.out.blocks.load(Ordering::Relaxed)
    }

    /// Stream blocks of stream file `file_id` the services sent the device (`0` is a firmware
    /// update's image, `files[0]`): "no image block left the server" is
    /// `blocks_sent_of(0) == 0`.
    pub fn blocks_sent_of(&self, file_id: u32) -> u32 {
        self.out
            .blocks_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&file_id)
            .copied()
            .unwrap_or(0)
    }

    /// From now on every job-document message to the device (`$next`/`<jobId>` get answers,
    /// `notify-next`, `start-next` answers) is replaced by one of `recorded` (design #20 §6
    /// test 3, an indefinite freeze): the recorded message of the same topic, else the last
    /// recorded one under the new topic. `recorded` is typically a slice of
    /// [`ServerService::jobs_sent`]. The device's own messages still reach the server; stream
    /// data and update answers pass unchanged.
    pub fn freeze(&self, recorded: Vec<Msg>) {
        self.services.wrap_outbound(|o| {
            Arc::new(Rewriting {
                inner: o,
                rewrite: Freeze { recorded },
            })
        });
    }

    /// From now on every job-document message to the device goes through `edit` as JSON and is
    /// sent re-encoded: a man in the middle on the Jobs topics (a payload that is not JSON
    /// passes unchanged).
    pub fn edit_jobs(&self, edit: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) {
        let edit: JobEdit = Arc::new(edit);
        self.services.wrap_outbound(|o| {
            Arc::new(Rewriting {
                inner: o,
                rewrite: EditJobs { edit },
            })
        });
    }

    /// Creates OTA update `job` through the real `Admin::create_ota`; returns the messages the
    /// services sent the device (`notify-next` when the job became its next).
    pub fn add_job(&mut self, job: &FirmwareJob) -> Result<Vec<Msg>, AdminError> {
        let admin = self.admin.clone();
        let sha = self.rt.block_on(admin.put_file(&job.image.file))?;
        let mut bases = Vec::new();
        for b in &job.delta_from {
            bases.push(self.rt.block_on(admin.put_file(&b.file))?);
        }
        let bundle = match &job.bundle {
            Some(b) => Some(self.rt.block_on(admin.put_file(b))?),
            None => None,
        };
        let req = create_request(job, sha, bases, bundle);
        let o: OtaDescription = self
            .rt
            .block_on(async move { admin.create_ota(&req).await })?;
        self.created.insert(
            job.id.clone(),
            Created {
                job_id: o.job_id,
                stream_id: o.stream_id,
            },
        );
        self.refresh();
        Ok(self.take())
    }

    /// Cancels OTA update `id` as `CancelJob --force` does (an IN_PROGRESS execution too);
    /// returns the messages for the device (`notify-next` with what is next now).
    pub fn cancel_job(&mut self, id: &str) -> Result<Vec<Msg>, AdminError> {
        let admin = self.admin.clone();
        let id = id.to_string();
        self.rt
            .block_on(async move { admin.cancel_ota(&id, true).await })?;
        self.refresh();
        Ok(self.take())
    }

    /// The job id of OTA update `id` (`AFR_OTA-<id>`). Panics for an update never added.
    pub fn job_id(&self, id: &str) -> &str {
        &self.created[id].job_id
    }

    /// The stream of OTA update `id`. Panics for an update never added.
    pub fn stream_id(&self, id: &str) -> &str {
        &self.created[id].stream_id
    }

    /// The execution of OTA update `id` on the device as the server stores it (as of the last
    /// message the services handled). Panics for an update never added.
    pub fn job(&self, id: &str) -> &JobView {
        &self.views[id]
    }

    /// [`ServerService::job`], `None` for an update never added.
    pub fn try_job(&self, id: &str) -> Option<&JobView> {
        self.views.get(id)
    }

    /// Whether OTA update `id`'s execution is terminal on the server.
    pub fn is_terminal(&self, id: &str) -> bool {
        self.views.get(id).is_some_and(|v| v.status.is_terminal())
    }

    /// The server's inventory of the device (`thing describe`'s `inventory`): what its shadow
    /// reports, its jobs; `connected` as the harness says.
    pub fn inventory(&self, connected: bool) -> ferrota_server::inventory::ThingInventory {
        let services = self.services.clone();
        self.rt
            .block_on(async move {
                ferrota_server::inventory::inventory(&services, connected, THING).await
            })
            .expect("the memory store answers")
    }

    /// `thing describe` of the device (the real `Admin::describe_thing`; no sessions here, so
    /// `connected` is false).
    pub fn describe(&self) -> ferrota_server::admin::ThingDescription {
        let admin = self.admin.clone();
        self.rt
            .block_on(async move { admin.describe_thing(THING).await })
            .expect("the thing exists")
    }

    /// The status updates the device published for OTA update `id`, in order.
    pub fn statuses(&self, id: &str) -> Vec<String> {
        let Some(c) = self.created.get(id) else {
            return vec![];
        };
        self.updates
            .iter()
            .filter(|u| u.job == c.job_id)
            .map(|u| u.payload.clone())
            .collect()
    }

    fn take(&mut self) -> Vec<Msg> {
        let m = self.out.take();
        self.record(&m);
        m
    }

    fn record(&mut self, m: &[Msg]) {
        self.jobs_sent
            .extend(m.iter().filter(|(t, _)| !is_data(t)).cloned());
    }

    /// Reads every created update's execution back from the store.
    fn refresh(&mut self) {
        let store = self.store.clone();
        let ids: Vec<(String, String)> = self
            .created
            .iter()
            .map(|(k, c)| (k.clone(), c.job_id.clone()))
            .collect();
        let views = self.rt.block_on(async move {
            let mut v = Vec::new();
            for (k, j) in ids {
                if let Ok(Some(e)) = store.execution(&j, THING).await {
                    v.push((
                        k,
                        JobView {
                            status: e.status,
                            details: e.status_details,
                            version: e.version_number,
                        },
                    ));
                }
            }
            v
        });
        self.views.extend(views);
    }
}

impl Default for ServerService {
    fn default() -> Self {
        Self::new()
    }
}

impl Service for ServerService {
    fn set_now(&mut self, now: Instant) {
        self.clock.set(now);
    }

    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let (mut jobs, mut update) = (false, false);
        if let Ok(t) = Topic::parse(topic) {
            match t.kind {
                TopicKind::Stream {
                    op: StreamOp::Get, ..
                } => self.stream_requests += 1,
                TopicKind::Jobs(JobsTopic::Update {
                    job,
                    reply: Reply::Request,
                }) => {
                    jobs = true;
                    update = true;
                    self.updates.push(Update {
                        job: job.to_string(),
                        payload: String::from_utf8_lossy(payload).into_owned(),
                    });
                }
                TopicKind::Jobs(_) => jobs = true,
                TopicKind::Shadow { .. } => self
                    .shadow_updates
                    .push(String::from_utf8_lossy(payload).into_owned()),
                _ => {}
            }
        }
        let renotify = update && self.notify_after_update;
        let svc = self.services.clone();
        let p = payload.to_vec();
        let t = topic.to_string();
        self.rt.block_on(async move {
            ferrota_server::services::on_publish(&svc, THING, THING, &t, &p).await;
            // The rollout engine reacts to what finished (retries, gates), as the server's
            // runner does.
            let stepped = ferrota_server::rollout::step(&svc).await;
            assert!(stepped.is_ok(), "rollout step failed: {stepped:?}");
            if renotify {
                // The services' own `$next` document, re-announced as AWS's notify-next.
                let get = Topic::jobs(
                    THING,
                    JobsTopic::Describe {
                        job: JobRef::Next,
                        reply: Reply::Request,
                    },
                )
                .to_string();
                ferrota_server::services::on_publish(&svc, THING, THING, &get, b"{}").await;
            }
        });
        if jobs {
            self.refresh();
        }
        let mut out = self.out.take();
        if renotify {
            let accepted = Topic::jobs(
                THING,
                JobsTopic::Describe {
                    job: JobRef::Next,
                    reply: Reply::Accepted,
                },
            )
            .to_string();
            let notify = Topic::notify_next(THING).to_string();
            for (t, _) in out.iter_mut() {
                if *t == accepted {
                    t.clone_from(&notify);
                }
            }
        }
        self.record(&out);
        out
    }
}

/// The harness's operations on the server's jobs.
pub trait SimExt {
    /// A device running `v1` in the lower bank, connected, no job yet; `seed` drives the
    /// network's random choices.
    fn new(v1: &TestImage, seed: u64) -> Self;
    /// As [`SimExt::new`] with other agent settings.
    fn with_settings(v1: &TestImage, seed: u64, settings: AgentSettings) -> Self;
    /// Creates the OTA update; the services' notify-next reaches the device if connected.
    /// Panics if the server refuses it (a test's mistake).
    fn add_job(&mut self, job: FirmwareJob);
    /// [`SimExt::add_job`] through [`ServerService::add_job_unchecked`]: a compromised server's
    /// job, its metadata file not checked at create.
    fn add_job_unchecked(&mut self, job: FirmwareJob);
    /// Cancels an OTA update (`--force`); AWS pushes notify-next with what is next now.
    fn cancel_job(&mut self, id: &str);
    /// Runs until OTA update `id`'s execution is terminal on the server, or `limit` passed.
    fn run_job(&mut self, id: &str, limit: Duration) -> bool;
    /// The status updates the device published for OTA update `id`.
    fn statuses(&self, id: &str) -> Vec<String>;
}

/// Creates `job` on the server at the harness's now (checked or not, by `create`) and sends
/// the notifications it produced to the device when it is connected.
fn create_job(
    sim: &mut Sim,
    job: &FirmwareJob,
    create: fn(&mut ServerService, &FirmwareJob) -> Result<Vec<Msg>, AdminError>,
) {
    let now = sim.now;
    sim.server.set_now(now);
    let msgs = create(&mut sim.server, job)
        .unwrap_or_else(|e| panic!("create OTA update {}: {e}", job.id));
    if sim.connected() {
        for (t, p) in msgs {
            sim.send_to_device(t, p);
        }
    }
}

impl SimExt for Sim {
    fn new(v1: &TestImage, seed: u64) -> Self {
        Self::with_settings(v1, seed, AgentSettings::default())
    }

    fn with_settings(v1: &TestImage, seed: u64, settings: AgentSettings) -> Self {
        Sim::start(ServerService::new(), v1, seed, settings)
    }

    fn add_job(&mut self, job: FirmwareJob) {
        create_job(self, &job, ServerService::add_job);
    }

    fn add_job_unchecked(&mut self, job: FirmwareJob) {
        create_job(self, &job, ServerService::add_job_unchecked);
    }

    fn cancel_job(&mut self, id: &str) {
        let now = self.now;
        self.server.set_now(now);
        let msgs = self
            .server
            .cancel_job(id)
            .unwrap_or_else(|e| panic!("cancel OTA update {id}: {e}"));
        if self.connected() {
            for (t, p) in msgs {
                self.send_to_device(t, p);
            }
        }
    }

    fn run_job(&mut self, id: &str, limit: Duration) -> bool {
        self.run_until(limit, |s| s.server.is_terminal(id))
    }

    fn statuses(&self, id: &str) -> Vec<String> {
        self.server.statuses(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_sim::images::ota::{Spec, image};

    /// The server's clock is the harness's virtual time ([`Service::set_now`]): the
    /// timestamps of what the services send follow it, not the wall clock.
    #[test]
    fn the_services_run_on_virtual_time() {
        let v1 = image(Spec::new(1, 1));
        let v2 = image(Spec::new(2, 2));
        let mut sim = Sim::new(&v1, 1);
        // A slow network: the update takes minutes of virtual time (milliseconds of real).
        sim.net.latency = Duration::from_secs(5);
        sim.add_job(job("clock", v2));
        assert!(sim.run_job("clock", Duration::from_secs(3600)));
        let secs = sim.now.as_micros() / 1_000_000;
        assert!(secs >= 30, "{secs}");
        let stamps: Vec<u64> = sim
            .server
            .jobs_sent
            .iter()
            .filter_map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).ok())
            .filter_map(|v| v["timestamp"].as_u64())
            .collect();
        assert!(stamps.is_sorted(), "{stamps:?}");
        let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
        // The first at the start (virtual second 1), the last within a round trip of the end.
        assert_eq!(first, EPOCH_AT_ZERO + 1, "{stamps:?}");
        assert!(
            (EPOCH_AT_ZERO + secs - 10..=EPOCH_AT_ZERO + secs).contains(&last),
            "{stamps:?}, virtual {secs} s"
        );
        assert_eq!(sim.server.job("clock").status, JobStatus::Succeeded);
    }

    /// The attack suite's tools act on what the device receives: with trust on, every job
    /// document carries a timestamp; `edit_jobs` rewrites it; `freeze` answers with a recorded
    /// message; the metadata file is the stream's file 1 and is counted apart.
    #[test]
    fn trust_and_the_attackers_tools() {
        let get = Topic::jobs(
            THING,
            JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            },
        )
        .to_string();
        let v2 = image(Spec::new(2, 2));
        let key = ferrota_sim::trust::release_key_of(1);
        let bundle = ferrota_sim::trust::bundle(&v2, 6);
        let mut s = ServerService::with_trust(&TrustSetup::chain(1));
        let first = s.handle(&get, b"{}");
        let doc = |m: &[Msg]| -> serde_json::Value {
            serde_json::from_slice(&m.last().expect("an answer").1).expect("JSON")
        };
        assert!(doc(&first)["ferrotaTimestamp"].is_string(), "{first:?}");
        assert!(doc(&first)["execution"].is_null());
        s.add_job(
            &job("t", v2.clone())
                .signed_by(key)
                .with_bundle(bundle.clone(), key),
        )
        .unwrap();
        let with_job = doc(&s.handle(&get, b"{}"));
        let files = &with_job["execution"]["jobDocument"]["afr_ota"]["files"];
        assert_eq!(files[1]["fileType"], serde_json::json!(MANIFEST_FILE_TYPE));
        assert_eq!(files[1]["fileid"], serde_json::json!(1));
        assert_eq!(files[1]["filesize"], serde_json::json!(bundle.len()));
        // A man in the middle.
        s.edit_jobs(|v| v["execution"]["jobDocument"]["edited"] = serde_json::json!(true));
        let edited = doc(&s.handle(&get, b"{}"));
        assert_eq!(
            edited["execution"]["jobDocument"]["edited"],
            serde_json::json!(true)
        );
        // A freeze on the first answer (no job): the job is hidden, the old timestamp sent.
        // Wrappers stack outside in: the freeze swaps, then the man in the middle edits.
        s.freeze(first.clone());
        let frozen = doc(&s.handle(&get, b"{}"));
        assert_eq!(frozen["ferrotaTimestamp"], doc(&first)["ferrotaTimestamp"]);
        assert!(frozen["execution"]["jobId"].is_null(), "{frozen}");
        assert_eq!(
            frozen["execution"]["jobDocument"]["edited"],
            serde_json::json!(true)
        );
        // The server refuses a metadata file that does not match files[0] unless unchecked.
        let other = job("u", image(Spec::new(3, 3)))
            .signed_by(key)
            .with_bundle(bundle, key);
        assert!(s.add_job(&other).is_err());
        assert!(s.add_job_unchecked(&other).is_ok());
        assert_eq!(s.blocks_sent_of(0), 0);
    }
}
