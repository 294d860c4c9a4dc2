//! The agent state machine, split by concern: this file holds the state, the public sans-IO
//! API and the shared helpers; [`jobs`] the job documents, [`precheck`] the CM0+ region's
//! check, [`download`] the transfer and the activation, [`selftest`] the self-test, confirm and
//! reject, [`timers`] the timer table.

mod download;
mod jobs;
mod packed;
mod precheck;
mod selftest;
mod timers;
mod trust;

use packed::Packed;
pub use packed::{FileEncoding, PACKED_CHUNK, PACKED_ENCODING, SUB_PACKED_CORRUPT};
use timers::{Timer, TimerTable};
pub use trust::{PlainAccepted, Trust};

use core::time::Duration;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use ferrota_boot::app::{self, AppError, ImageState};
use ferrota_boot::log::{Event as LogEvent, LogError, MarkerLog};
use ferrota_image::ota::OtaSignature;
use ferrota_image::verify::{WrittenBankError, verify_boot_in_flash, verify_written_bank};
use ferrota_image::{BANK_SIZE, BootVerifier, FirmwareVersion, Region, VersionRecord};
use ferrota_proto::bitmap::{BlockSet, block_count};
use ferrota_proto::job::{JobDocument, JobError, JobExecution, JobMessage, OtaJob};
use ferrota_proto::jobs_api;
use ferrota_proto::limits::{NameLimits, OTA_JOB_ID_MAX, OTA_STREAM_NAME_MAX, SIGNATURE_TEXT_MAX};
use ferrota_proto::shadow::ReportedOut;
use ferrota_proto::status::{AppVersion, JobParseErr, OtaErr, OtaStatus, PalErr};
use ferrota_proto::stream::{
    DataBlock, OFFICIAL_CLIENT_TOKEN, StreamErrorCode, StreamRejection, StreamRequest,
};
use ferrota_proto::topic::{
    Encoding, JobRef, JobsTopic, Reply, ShadowOp, ShadowReply, StreamOp, Topic, TopicKind,
};
use heapless::{Deque, String};

use crate::config::{Config, ConfigError, Running};
use crate::download::{MAX_BLOCKS, NewRequest, Schedule};
use crate::output::{AgentEvent, Stats, TopicBuf, Transmit, TransmitKind};
use crate::platform::{FlashFault, FlashOp, Platform};
use crate::resume;
use crate::time::Instant;

type JobId = String<OTA_JOB_ID_MAX>;
type StreamName = String<OTA_STREAM_NAME_MAX>;

/// Sub-code of `0x000000e3` when the CM0+ region's *boot* signature or version record is bad
/// (0 is the OTA file signature, as the official PAL).
pub const SUB_BOOT_SIGNATURE: u32 = 1;
/// Sub-code of `0x000000e5` when the file is too small to hold a CM0+ region.
pub const SUB_TOO_SMALL: u32 = 1;

/// Where the agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No job.
    Idle,
    /// A firmware job's metadata file (fileType 142) is being fetched and verified; no image
    /// block has been asked for and nothing has been written to flash for this job yet.
    FetchingManifest,
    /// Booted into an image under trial: waiting for the self-test job document.
    AwaitingSelfTestJob,
    /// The application runs its self-test.
    SelfTest,
    /// Fetching the CM0+ region to check its version record.
    Prechecking,
    /// Fetching the rest of the image.
    Downloading,
    /// A job handed to the application ([`AgentEvent::OtherFileJob`], [`AgentEvent::CustomJob`]).
    AwaitingApp,
    /// Activated; waiting for the reset.
    Activated,
    /// A flash fault stopped the agent.
    Halted,
}

/// How the application finished a job handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppOutcome {
    /// Handled: SUCCEEDED (`accepted  v0.0.<fileType>`, as the official agent reports
    /// non-firmware files).
    Succeeded,
    /// Not for this application: FAILED `0x0000000c: 0x00000004` (the official agent's answer
    /// to an unclaimed job).
    Declined,
    /// Failed with this status.
    Failed(OtaStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    NotifyNext,
    NextGetAccepted,
    Data,
}

#[derive(Debug, Clone)]
enum Out {
    Subscribe(Sub),
    Unsubscribe(Sub),
    NextGet,
    Status(JobId, OtaStatus),
    /// The download's requests not sent yet (`Schedule::take_unsent`), oldest first: one
    /// entry however many there are, so a window of up to `MAX_REQUESTS` requests decided at
    /// once never overflows this queue (before issue #23 each request was its own entry, and
    /// a first window of 32 requests lost its last one here).
    Requests,
    /// The device's reported state to its classic Device Shadow (encoded when polled, from
    /// what the agent knows then).
    Report,
    /// Block 0 of the metadata file with this `fileid`.
    ManifestRequest(u8),
}

struct Download {
    sched: Schedule,
    /// Bytes of the file being fetched (the bank image, or a packed file).
    file_size: u32,
    /// Bytes of the image it makes in the bank (`files[0]`'s size): what is verified.
    image_size: u32,
    /// A packed file's state (`None`: the bank image itself).
    packed: Option<Packed>,
    block_size: u32,
    num_blocks: u32,
    file_id: u8,
    chunk_size: u32,
    /// Chunks this session erased (each once, before its first write).
    erased: ChunkSet<16>,
    precheck_blocks: u32,
    probing: bool,
    signature: OtaSignature,
}

impl Download {
    /// The resume chunks `[first, end)` a block holds data of: one for a bank image, the
    /// chunks of its frames for a packed file (`None`: a packed file's header, or a packed
    /// block before the header is in).
    fn chunks_of(&self, block: u32) -> Option<(u32, u32)> {
        match &self.packed {
            None => {
                let c = (block as u64 * self.block_size as u64 / self.chunk_size as u64) as u32;
                Some((c, c + 1))
            }
            Some(p) => p.header.as_ref()?.chunks_of_block(block),
        }
    }
    /// The blocks `[a, b)` of chunk `c`.
    fn chunk_blocks(&self, c: u32) -> (u32, u32) {
        match &self.packed {
            None => {
                let per = self.chunk_size / self.block_size;
                (c * per, ((c + 1) * per).min(self.num_blocks))
            }
            Some(p) => p
                .header
                .as_ref()
                .and_then(|h| h.chunk(c))
                .map_or((0, 0), |e| (e.first_block, e.first_block + e.blocks)),
        }
    }
    /// Chunks of the file (a bank image) or of its output (a packed file, once its header is in).
    fn chunks(&self) -> u32 {
        match &self.packed {
            None => self.file_size.div_ceil(self.chunk_size),
            Some(p) => p.header.as_ref().map_or(0, |h| h.chunk_count()),
        }
    }
    /// Erases chunk `c` of the bank unless this session already did: a chunk is erased once,
    /// before its first block (or frame, or fill) is written, so nothing half-written before a
    /// reset is trusted and code flash is never programmed twice without an erase.
    fn erase_chunk_once<B: NorFlash>(&mut self, c: u32, bank: &mut B) -> Result<(), FlashFault> {
        if self.erased.contains(c) {
            return Ok(());
        }
        let erase = B::ERASE_SIZE as u32;
        let from = c * self.chunk_size;
        let to = ((c + 1) * self.chunk_size)
            .min(self.image_size.div_ceil(erase) * erase)
            .min(bank.capacity() as u32);
        bank.erase(from, to).map_err(fk(FlashOp::EraseBank))?;
        self.erased.set(c, true);
        Ok(())
    }
    fn block_len(&self, i: u32) -> u32 {
        if i + 1 == self.num_blocks {
            self.file_size - i * self.block_size
        } else {
            self.block_size
        }
    }
}

/// One bit a chunk (`W` × 32 chunks): the chunks a session erased, the frameless chunks of a
/// packed file still to fill.
#[derive(Debug, Clone, Copy)]
struct ChunkSet<const W: usize>([u32; W]);

impl<const W: usize> Default for ChunkSet<W> {
    fn default() -> Self {
        ChunkSet([0; W])
    }
}

impl<const W: usize> ChunkSet<W> {
    fn contains(&self, c: u32) -> bool {
        self.0
            .get((c / 32) as usize)
            .is_some_and(|w| w & (1 << (c % 32)) != 0)
    }
    fn set(&mut self, c: u32, v: bool) {
        if let Some(w) = self.0.get_mut((c / 32) as usize) {
            if v {
                *w |= 1 << (c % 32);
            } else {
                *w &= !(1 << (c % 32));
            }
        }
    }
}

/// Where the agent is, with the data each step needs inside its variant: a download exists
/// only while one runs, the `updatedBy` version only during a self-test, the file type only
/// while the application holds a job. The public [`State`] is derived from it.
// No allocator (no_std): the download lives in place, as the `Option<Download>` field before it
// did; the agent holds one `Phase`, so the variants' size difference costs nothing extra.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// No job.
    Idle,
    /// Booted into an image under trial: waiting for the self-test job document
    /// ([`Timer::SelfTestWait`]).
    AwaitingSelfTestJob,
    /// The application runs its self-test ([`Timer::SelfTest`]).
    SelfTest {
        /// The version that did the download (the job's `updatedBy`), reported on success.
        updated_by: u32,
    },
    /// Fetching the CM0+ region (and at most [`Config::precheck_lookahead`] blocks past it)
    /// until its boot signature and version record are checked.
    Prechecking(Download),
    /// The CM0+ region passed its check: fetching the rest of the image.
    Downloading(Download),
    /// A job handed to the application.
    AwaitingApp {
        /// Its file type (0 for a custom job), reported as `v0.0.<fileType>` on success.
        file_type: u8,
    },
    /// Activated (or rejected): waiting for the reset.
    Activated,
    /// A flash fault stopped the agent.
    Halted,
    /// A firmware job's metadata file (fileType 142) is fetched; nothing written yet.
    FetchingManifest(trust::Pending),
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Phase::Idle => State::Idle,
            Phase::AwaitingSelfTestJob => State::AwaitingSelfTestJob,
            Phase::SelfTest { .. } => State::SelfTest,
            Phase::Prechecking(_) => State::Prechecking,
            Phase::Downloading(_) => State::Downloading,
            Phase::AwaitingApp { .. } => State::AwaitingApp,
            Phase::Activated => State::Activated,
            Phase::Halted => State::Halted,
            Phase::FetchingManifest(_) => State::FetchingManifest,
        }
    }
    fn download(&self) -> Option<&Download> {
        match self {
            Phase::Prechecking(d) | Phase::Downloading(d) => Some(d),
            _ => None,
        }
    }
    fn download_mut(&mut self) -> Option<&mut Download> {
        match self {
            Phase::Prechecking(d) | Phase::Downloading(d) => Some(d),
            _ => None,
        }
    }
    /// Prechecking → Downloading (the same download, its CM0+ region checked); any other
    /// phase stays as it is.
    fn prechecked(&mut self) {
        if let Phase::Prechecking(_) = self
            && let Phase::Prechecking(d) = core::mem::replace(self, Phase::Idle)
        {
            *self = Phase::Downloading(d);
        }
    }
    /// Ends the transfer, if one runs, and returns its download; the phase is `Idle` until the
    /// caller sets the next one.
    fn take_download(&mut self) -> Option<Download> {
        match core::mem::replace(self, Phase::Idle) {
            Phase::Prechecking(d) | Phase::Downloading(d) => Some(d),
            other => {
                *self = other;
                None
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BootErr {
    Flash(FlashFault),
    Refused,
}

fn log_fault<E: NorFlashError>(e: LogError<E>) -> BootErr {
    match e {
        LogError::Flash(e) => BootErr::Flash(FlashFault::new(FlashOp::MarkerLog, e.kind())),
        _ => BootErr::Refused,
    }
}

fn app_fault<E: NorFlashError>(e: AppError<E>) -> BootErr {
    match e {
        AppError::Log(l) => log_fault(l),
        _ => BootErr::Refused,
    }
}

fn fk<E: NorFlashError>(op: FlashOp) -> impl Fn(E) -> FlashFault {
    move |e| FlashFault::new(op, e.kind())
}

/// The OTA agent. See the crate documentation for the call order.
pub struct Agent<'a, V> {
    cfg: Config<'a, V>,
    running: Running,
    image_state: ImageState,
    last_event: LogEvent,
    /// The marker log's anti-rollback floor: read at start, raised by a confirm; reported.
    floor: u32,
    connected: bool,
    token_counter: u32,
    out: Deque<Out, 32>,
    events: Deque<AgentEvent, 16>,
    phase: Phase,
    /// The job being worked on, or the last one. Not inside [`Phase`] on purpose: a status is
    /// published as the phase ends (FAILED from a refused precheck, SUCCEEDED after the
    /// self-test), and [`Agent::job_id`] names the last job after it ended.
    job: JobId,
    /// The last job this agent reported in a terminal state: a job document for it that arrives
    /// later (a `$next/get` answer or notification that crossed the final status update) is stale
    /// and must not start the job again.
    finished: JobId,
    /// The stream of the current (or last) download. Not inside [`Download`] on purpose: the
    /// UNSUBSCRIBE from its data topic is encoded by [`Agent::poll_transmit`] after the
    /// download ended, and carrying the name in every queued [`Out`] instead would cost the
    /// queue 32 × 44 bytes of RAM.
    stream: StreamName,
    timers: TimerTable,
    stats: Stats,
    /// What the device trusts (root, sequence floor, attested time); `None` without an anchor.
    trust: Option<ferrota_manifest::store::TrustState>,
    /// The newest accepted timestamp.
    last_ts: Option<trust::Fresh>,
    /// Whether `last_ts` has not expired yet.
    is_fresh: bool,
    /// What the current Jobs message's timestamp came to.
    ts_outcome: trust::TsOutcome,
    /// A timestamp naming a newer root, verified after the walk.
    deferred_ts: heapless::Vec<u8, { trust::TIMESTAMP_MAX }>,
    /// Images activated on the plain AWS signature since start (reported).
    plain: u32,
    /// The manifest of the download in progress (accepted before its first block).
    manifest: Option<ferrota_manifest::VerifiedManifest>,
}

impl<'a, V: BootVerifier> Agent<'a, V> {
    /// Starts the agent after a boot: reads the boot report (is the running image under trial?)
    /// from the marker log. Call [`Agent::handle_connected`] once MQTT is up.
    pub fn new<P: Platform>(
        now: Instant,
        cfg: Config<'a, V>,
        running: Running,
        platform: &mut P,
    ) -> Result<Self, StartError> {
        cfg.validate().map_err(StartError::Config)?;
        let trust_state = trust::load_trust(cfg.trust.anchor, platform)?;
        let log = platform.marker_log().map_err(StartError::Flash)?;
        let to_start = |e: BootErr| match e {
            BootErr::Flash(f) => StartError::Flash(f),
            BootErr::Refused => StartError::Log,
        };
        let mut log = MarkerLog::new(log).map_err(|e| to_start(log_fault(e)))?;
        let report = app::report(&mut log, running.bank).map_err(|e| to_start(log_fault(e)))?;
        let mut agent = Agent {
            cfg,
            running,
            image_state: report.image_state,
            last_event: report.last_event,
            floor: report.floor,
            connected: false,
            token_counter: 0,
            out: Deque::new(),
            events: Deque::new(),
            phase: Phase::Idle,
            job: JobId::new(),
            finished: JobId::new(),
            stream: StreamName::new(),
            timers: TimerTable::default(),
            stats: Stats::default(),
            trust: trust_state,
            last_ts: None,
            is_fresh: false,
            ts_outcome: trust::TsOutcome::Absent,
            deferred_ts: heapless::Vec::new(),
            plain: 0,
            manifest: None,
        };
        // Idempotent: the board blows only missing bits (design §4.1 step 9).
        agent.request_revocation();
        if report.image_state == ImageState::PendingCommit {
            agent.phase = Phase::AwaitingSelfTestJob;
            agent
                .timers
                .set(Timer::SelfTestWait, now + agent.cfg.self_test_wait);
        }
        Ok(agent)
    }

    // ------------------------------------------------------------------ getters

    /// Where the agent is.
    pub fn state(&self) -> State {
        self.phase.state()
    }

    /// What the device trusts (root, sequence floor, attested time), as in RAM: `None` without
    /// an anchor ([`crate::TrustConfig::anchor`]). For tests and diagnostics; the trust store
    /// holds the persisted copy.
    pub fn trust_state(&self) -> Option<&ferrota_manifest::store::TrustState> {
        self.trust.as_ref()
    }

    /// Whether the newest signed timestamp is still fresh (reported as `"fresh"`).
    pub fn is_fresh(&self) -> bool {
        self.is_fresh
    }

    /// The current (or last) job id.
    pub fn job_id(&self) -> &str {
        &self.job
    }

    /// `(received, total)` blocks of the download in progress.
    pub fn progress(&self) -> Option<(u32, u32)> {
        self.phase
            .download()
            .as_ref()
            .map(|d| (d.sched.missing.received_count(), d.num_blocks))
    }

    /// What the download in progress fetches: the bank image, a packed full image or a delta.
    pub fn file_encoding(&self) -> Option<FileEncoding> {
        self.phase.download().map(|d| {
            d.packed
                .as_ref()
                .map_or(FileEncoding::Image, |p| p.encoding())
        })
    }

    /// The measured smoothed round-trip time of the download in progress.
    pub fn srtt(&self) -> Option<Duration> {
        self.phase.download().and_then(|d| d.sched.rtt.srtt())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Zeroes the counters, for a caller that reports them per job.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// The PAL image state of the running image, as read at start (and changed by a confirm
    /// or a reject).
    pub fn image_state(&self) -> ImageState {
        self.image_state
    }

    /// The anti-rollback floor in force (the marker log's, as read at start and raised by a
    /// confirm): what the Device Shadow report carries.
    pub fn anti_rollback_floor(&self) -> u32 {
        self.floor
    }

    // ------------------------------------------------------------------ inputs

    /// MQTT is connected (a clean session): subscribe, report the device's state to its
    /// Device Shadow, ask for the next job, and resume a download in progress.
    ///
    /// Decision: the report goes out on every connection, not only the first after a boot:
    /// a QoS 1 publish queued in a clean session that dropped is lost, and a server that
    /// restarted or a new broker session may have missed it; one message per connection is
    /// cheap. Nothing new is subscribed: the agent does not read the shadow's replies.
    pub fn handle_connected(&mut self, now: Instant) {
        self.connected = true;
        self.push(Out::Subscribe(Sub::NotifyNext));
        self.push(Out::Subscribe(Sub::NextGetAccepted));
        if self.phase.download().is_some() || matches!(self.phase, Phase::FetchingManifest(_)) {
            self.push(Out::Subscribe(Sub::Data));
        }
        // The report first: a server that offers deltas by the reported firmware (issue #19)
        // handles a session's publishes in order, so the job document it then answers with
        // is made for the image running now, not for the one reported before a reset.
        self.push(Out::Report);
        self.push(Out::NextGet);
        self.fill_window(now);
        self.request_manifest(now);
    }

    /// MQTT is down: nothing in flight will arrive.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        self.connected = false;
        if let Some(d) = self.phase.download_mut() {
            d.sched.drop_requests();
            d.probing = false;
        }
    }

    /// Asks for the next job again (`OTA_CheckForUpdate`).
    pub fn check_for_update(&mut self, _now: Instant) {
        if self.connected {
            self.push(Out::NextGet);
        }
    }

    /// An MQTT message arrived on any topic.
    pub fn handle_message<P: Platform>(
        &mut self,
        now: Instant,
        topic: &str,
        payload: &[u8],
        platform: &mut P,
    ) {
        let Ok(t) = Topic::parse_with(topic, &NameLimits::OTA_DEVICE) else {
            return;
        };
        if t.thing != self.cfg.thing_name {
            return;
        }
        match t.kind {
            TopicKind::Jobs(
                JobsTopic::NotifyNext
                | JobsTopic::StartNext(Reply::Accepted)
                | JobsTopic::Describe {
                    job: JobRef::Next,
                    reply: Reply::Accepted,
                },
            ) => self.on_job_message(now, payload, platform),
            TopicKind::Stream {
                stream,
                op: StreamOp::Data,
                encoding: Encoding::Cbor,
            } => self.on_block(now, stream, payload, platform),
            TopicKind::Stream {
                stream,
                op: StreamOp::Rejected,
                encoding: Encoding::Cbor,
            } if self.phase.download().is_some() && stream == self.stream.as_str() => {
                let code = StreamRejection::decode(payload)
                    .ok()
                    .and_then(|r| r.error_code());
                self.event(AgentEvent::StreamRejected { code });
                // Decision: a stream that does not exist (deleted, or withdrawn by the server
                // because its file is broken) or that this device may not read will not come
                // back by asking again: fail the job at once with `0x00000008: 0x00000000`
                // (RequestFileBlockFailed) instead of retrying until the momentum limit. Other
                // rejections stay counted and ignored (§4.9 hazard 2).
                if matches!(
                    code,
                    Some(StreamErrorCode::ResourceNotFound | StreamErrorCode::Unauthorized)
                ) {
                    self.end_job(AgentEvent::JobFailed {
                        status: OtaStatus::Failed {
                            main: OtaErr::RequestFileBlockFailed.code(),
                            sub: 0,
                        },
                    });
                }
            }
            // Unsolicited update/accepted|rejected and anything else: ignored (§1.3).
            _ => {}
        }
    }

    /// A timer armed through [`Agent::poll_timeout`] may have expired. Spurious calls do nothing.
    pub fn handle_timeout<P: Platform>(&mut self, now: Instant, platform: &mut P) {
        for timer in Timer::VALUES {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            self.timers.stop(timer);
            match (timer, self.state()) {
                (Timer::SelfTestWait, State::AwaitingSelfTestJob) => {
                    // As the official agent: no self-test job in time → reset (the boot
                    // manager's trial budget reverts an image that never gets confirmed).
                    self.event(AgentEvent::ResetRequested);
                }
                (Timer::SelfTest, State::SelfTest) => self.finish_self_test(now, false, platform),
                (Timer::Freshness, _) => self.on_freshness_lost(),
                (Timer::Checkpoint, _) => self.on_time_checkpoint(now, platform),
                (Timer::ManifestRetry, State::FetchingManifest) => self.on_manifest_retry(now),
                (Timer::SlowRetrieval, State::Prechecking | State::Downloading) => {
                    // Slow retrieval (design §4.1 step 7): the signed size at `min_rate`.
                    return self.end_job(AgentEvent::JobFailed {
                        status: OtaStatus::Failed {
                            main: OtaErr::MomentumAbort.code(),
                            sub: 1,
                        },
                    });
                }
                _ => {}
            }
        }
        let (cfg_i, cfg_min, cfg_max) = (self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto);
        let Some(d) = self.phase.download_mut() else {
            return;
        };
        let rto = d.sched.rtt.rto(cfg_i, cfg_min, cfg_max);
        let (n, lost) = d
            .sched
            .expire(now, rto, self.cfg.gap_retransmit, self.cfg.min_rto);
        self.stats.gaps += lost;
        if n == 0 {
            if lost > 0 {
                self.fill_window(now);
            }
            return;
        }
        self.stats.timeouts += n;
        d.probing = true;
        if d.sched.momentum > self.cfg.momentum_limit {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Aborted {
                    sub_reason: OtaErr::MomentumAbort.code(),
                },
            });
            return;
        }
        self.fill_window(now);
    }

    /// The application's self-test finished (`passed`), after [`AgentEvent::StartSelfTest`].
    pub fn self_test_result<P: Platform>(&mut self, now: Instant, passed: bool, platform: &mut P) {
        if self.state() == State::SelfTest {
            self.finish_self_test(now, passed, platform);
        }
    }

    /// The application finished a job handed to it ([`AgentEvent::OtherFileJob`],
    /// [`AgentEvent::CustomJob`]).
    pub fn finish_app_job(&mut self, _now: Instant, outcome: AppOutcome) {
        let Phase::AwaitingApp { file_type } = self.phase else {
            return;
        };
        let status = match outcome {
            AppOutcome::Succeeded => OtaStatus::Accepted {
                version: AppVersion::new(0, 0, u16::from(file_type)),
                updated_by: AppVersion::new(0, 0, 0),
            },
            AppOutcome::Declined => OtaStatus::Failed {
                main: OtaErr::JobParserError.code(),
                sub: JobParseErr::NonConformingJobDoc.code(),
            },
            AppOutcome::Failed(s) => s,
        };
        let ev = if status.job_status() == ferrota_proto::JobStatus::Succeeded {
            AgentEvent::JobSucceeded
        } else {
            AgentEvent::JobFailed { status }
        };
        self.publish_status(status);
        self.phase = Phase::Idle;
        self.push(Out::Report);
        self.event(ev);
    }

    // ------------------------------------------------------------------ outputs

    /// The next MQTT operation; a payload is written into `buf` (at least
    /// [`crate::TRANSMIT_BUF_MIN`] bytes). Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let out = self.out.pop_front()?;
            if let Out::Requests = out {
                // Nothing left to send (the download ended, or a disconnect forgot them) is
                // not a dropped transmit.
                let Some(r) = self
                    .phase
                    .download_mut()
                    .and_then(|d| d.sched.take_unsent())
                else {
                    continue;
                };
                if self.phase.download().is_some_and(|d| d.sched.has_unsent()) {
                    // The rest follow this one (back where this entry was popped).
                    let _ = self.out.push_front(Out::Requests);
                }
                if let Some(t) = self.encode_request(&r, buf) {
                    return Some(t);
                }
                self.stats.dropped_transmits += 1;
                continue;
            }
            if let Some(t) = self.encode(out, buf) {
                return Some(t);
            }
            self.stats.dropped_transmits += 1;
        }
    }

    /// When [`Agent::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dl = self.phase.download().and_then(|d| {
            d.sched.deadline(
                d.sched
                    .rtt
                    .rto(self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto),
                self.cfg.gap_retransmit,
                self.cfg.min_rto,
            )
        });
        match (self.timers.next_timeout(), dl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }
}

/// Why [`Agent::new`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The configuration was refused.
    Config(ConfigError),
    /// The marker log could not be read.
    Flash(FlashFault),
    /// The marker log is unusable (too small a view, sequence exhausted).
    Log,
}

enum Check {
    Ok(VersionRecord),
    Refused(OtaStatus),
}

impl<'a, V: BootVerifier> Agent<'a, V> {
    fn push(&mut self, o: Out) {
        if self.out.push_back(o).is_err() {
            self.stats.dropped_transmits += 1;
        }
    }

    fn event(&mut self, e: AgentEvent) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        let _ = self.events.push_back(e);
    }

    fn publish_status(&mut self, status: OtaStatus) {
        let job = self.job.clone();
        if status.job_status() != ferrota_proto::JobStatus::InProgress {
            self.finished = job.clone();
        }
        self.push(Out::Status(job, status));
    }

    fn running_version(&self) -> u32 {
        self.running.record.version.0
    }

    fn encode(&mut self, out: Out, buf: &mut [u8]) -> Option<Transmit> {
        let thing = self.cfg.thing_name;
        let topic_of = |t: Topic<'_>| t.to_heapless::<{ crate::output::TOPIC_MAX }>().ok();
        let data_topic =
            |s: &str| topic_of(Topic::stream(thing, s, StreamOp::Data, Encoding::Cbor));
        let sub_topic = |sub: Sub, stream: &str| -> Option<TopicBuf> {
            match sub {
                Sub::NotifyNext => topic_of(Topic::notify_next(thing)),
                Sub::NextGetAccepted => topic_of(Topic::next_get_accepted(thing)),
                Sub::Data => data_topic(stream),
            }
        };
        match out {
            Out::Subscribe(s) => Some(Transmit {
                kind: TransmitKind::Subscribe,
                topic: sub_topic(s, &self.stream)?,
                qos: if s == Sub::Data { 0 } else { 1 },
            }),
            Out::Unsubscribe(s) => Some(Transmit {
                kind: TransmitKind::Unsubscribe,
                topic: sub_topic(s, &self.stream)?,
                qos: 0,
            }),
            Out::NextGet => {
                let token = jobs_api::client_token(self.token_counter, thing);
                self.token_counter = self.token_counter.wrapping_add(1);
                let len = jobs_api::encode_client_token_request(&token, buf)
                    .ok()?
                    .len();
                Some(Transmit {
                    kind: TransmitKind::Publish { len },
                    topic: topic_of(Topic::next_get(thing))?,
                    qos: 1,
                })
            }
            Out::Status(job, status) => {
                if job.is_empty() {
                    return None;
                }
                let len = status.encode(buf).ok()?.len();
                Some(Transmit {
                    kind: TransmitKind::Publish { len },
                    topic: topic_of(Topic::update(thing, &job, Reply::Request))?,
                    qos: status.qos(),
                })
            }
            Out::Report => {
                let mut token = String::<10>::new();
                core::fmt::Write::write_fmt(&mut token, format_args!("{}", self.token_counter))
                    .ok()?;
                self.token_counter = self.token_counter.wrapping_add(1);
                let record_hw = self.running.record.hardware;
                let hardware = self.cfg.hardware.unwrap_or(record_hw);
                let report = ReportedOut {
                    version: AppVersion::from_u32(self.running_version()),
                    bank: match self.running.bank {
                        ferrota_boot::Bank::Lower => 'A',
                        ferrota_boot::Bank::Upper => 'B',
                    },
                    pending_trial: self.image_state == ImageState::PendingCommit,
                    anti_rollback_floor: self.floor,
                    hardware_id: Some(hardware.as_str()),
                    client_token: Some(&token),
                    trust: self.trust_out(),
                };
                let len = report.encode(buf).ok()?.len();
                Some(Transmit {
                    kind: TransmitKind::Publish { len },
                    topic: topic_of(Topic::shadow(thing, ShadowOp::Update, ShadowReply::Request))?,
                    qos: 1,
                })
            }
            Out::ManifestRequest(file_id) => {
                let req = StreamRequest {
                    client_token: Some(OFFICIAL_CLIENT_TOKEN),
                    stream_version: None,
                    file_id: u32::from(file_id),
                    block_size: self.cfg.block_size,
                    offset: Some(0),
                    bitmap: Some(&[1]),
                    num_blocks: Some(1),
                };
                let len = req.encode(buf).ok()?;
                Some(Transmit {
                    kind: TransmitKind::Publish { len },
                    topic: topic_of(Topic::stream(
                        thing,
                        &self.stream,
                        StreamOp::Get,
                        Encoding::Cbor,
                    ))?,
                    qos: 0,
                })
            }
            // Taken from the schedule by `poll_transmit` (`encode_request`).
            Out::Requests => None,
        }
    }

    /// The GetStream request `r` of the download in progress.
    fn encode_request(&self, r: &NewRequest, buf: &mut [u8]) -> Option<Transmit> {
        let d = self.phase.download()?;
        let thing = self.cfg.thing_name;
        let req = StreamRequest {
            client_token: Some(OFFICIAL_CLIENT_TOKEN),
            stream_version: None,
            file_id: u32::from(d.file_id),
            block_size: d.block_size,
            offset: Some(r.offset),
            bitmap: Some(&r.bits[..r.len]),
            num_blocks: Some(r.count),
        };
        let len = req.encode(buf).ok()?;
        Some(Transmit {
            kind: TransmitKind::Publish { len },
            topic: Topic::stream(thing, &self.stream, StreamOp::Get, Encoding::Cbor)
                .to_heapless::<{ crate::output::TOPIC_MAX }>()
                .ok()?,
            qos: 0,
        })
    }

    /// Ends the current job with `ev` (publishing its status when it has one), then reports
    /// the device's state to its Device Shadow: after a job the server's inventory shows
    /// what the device runs now (a confirmed image, a raised floor, a refused update).
    fn end_job(&mut self, ev: AgentEvent) {
        if let AgentEvent::JobFailed { status } = ev {
            self.publish_status(status);
        }
        if self.phase.take_download().is_some() || matches!(self.phase, Phase::FetchingManifest(_))
        {
            self.push(Out::Unsubscribe(Sub::Data));
        }
        self.phase = Phase::Idle;
        self.manifest = None;
        // The uptime checkpoint outlives jobs, as freshness does.
        let checkpoint = self.timers.get(Timer::Checkpoint);
        self.timers.stop_all();
        if let Some(t) = checkpoint {
            self.timers.set(Timer::Checkpoint, t);
        }
        self.rearm_freshness();
        self.push(Out::Report);
        self.event(ev);
    }

    fn abandon_download(&mut self) {
        if self.phase.take_download().is_some() || matches!(self.phase, Phase::FetchingManifest(_))
        {
            self.push(Out::Unsubscribe(Sub::Data));
            self.event(AgentEvent::JobCancelled);
        }
        self.phase = Phase::Idle;
        self.manifest = None;
        self.timers.stop(timers::Timer::ManifestRetry);
        self.timers.stop(timers::Timer::SlowRetrieval);
    }

    fn halt(&mut self, f: FlashFault) {
        // A write/erase failure of the bank fails the job as the official PAL write failure
        // does; on the simulator this is a power cut and nothing is transmitted any more.
        if matches!(
            f.op,
            FlashOp::EraseBank | FlashOp::WriteBlock | FlashOp::ReadBank
        ) {
            self.publish_status(OtaStatus::Failed {
                main: PalErr::Uninitialized.code(),
                sub: 0,
            });
        }
        if self.phase.take_download().is_some() {
            self.push(Out::Unsubscribe(Sub::Data));
        }
        self.phase = Phase::Halted;
        self.manifest = None;
        self.timers.stop_all();
        self.event(AgentEvent::FlashFault(f));
    }
}

// Silence an unused-import lint for FirmwareVersion in docs builds.
#[allow(dead_code)]
fn _uses(_: FirmwareVersion) {}
