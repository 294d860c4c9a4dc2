//! The agent state machine.

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
use ferrota_proto::status::{AppVersion, JobParseErr, OtaErr, OtaStatus, PalErr};
use ferrota_proto::stream::{
    DataBlock, OFFICIAL_CLIENT_TOKEN, StreamErrorCode, StreamRejection, StreamRequest,
};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};
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
    Request(NewRequest),
}

struct Download {
    sched: Schedule,
    file_size: u32,
    block_size: u32,
    num_blocks: u32,
    file_id: u8,
    chunk_size: u32,
    erased: [u32; 16],
    precheck_blocks: u32,
    prechecked: bool,
    probing: bool,
    signature: OtaSignature,
}

impl Download {
    fn chunk_of(&self, block: u32) -> u32 {
        (block as u64 * self.block_size as u64 / self.chunk_size as u64) as u32
    }
    fn chunk_blocks(&self, c: u32) -> (u32, u32) {
        let per = self.chunk_size / self.block_size;
        (c * per, ((c + 1) * per).min(self.num_blocks))
    }
    fn chunks(&self) -> u32 {
        self.file_size.div_ceil(self.chunk_size)
    }
    fn erased(&self, c: u32) -> bool {
        self.erased[(c / 32) as usize] & (1 << (c % 32)) != 0
    }
    fn set_erased(&mut self, c: u32) {
        self.erased[(c / 32) as usize] |= 1 << (c % 32);
    }
    fn block_len(&self, i: u32) -> u32 {
        if i + 1 == self.num_blocks {
            self.file_size - i * self.block_size
        } else {
            self.block_size
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
    connected: bool,
    token_counter: u32,
    out: Deque<Out, 32>,
    events: Deque<AgentEvent, 16>,
    state: State,
    job: JobId,
    /// The last job this agent reported in a terminal state: a job document for it that arrives
    /// later (a `$next/get` answer or notification that crossed the final status update) is stale
    /// and must not start the job again.
    finished: JobId,
    stream: StreamName,
    updated_by: u32,
    app_file_type: u8,
    dl: Option<Download>,
    timer: Option<Instant>,
    stats: Stats,
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
            connected: false,
            token_counter: 0,
            out: Deque::new(),
            events: Deque::new(),
            state: State::Idle,
            job: JobId::new(),
            finished: JobId::new(),
            stream: StreamName::new(),
            updated_by: 0,
            app_file_type: 0,
            dl: None,
            timer: None,
            stats: Stats::default(),
        };
        if report.image_state == ImageState::PendingCommit {
            agent.state = State::AwaitingSelfTestJob;
            agent.timer = Some(now + agent.cfg.self_test_wait);
        }
        Ok(agent)
    }

    // ------------------------------------------------------------------ getters

    /// Where the agent is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The current (or last) job id.
    pub fn job_id(&self) -> &str {
        &self.job
    }

    /// `(received, total)` blocks of the download in progress.
    pub fn progress(&self) -> Option<(u32, u32)> {
        self.dl
            .as_ref()
            .map(|d| (d.sched.missing.received_count(), d.num_blocks))
    }

    /// The measured smoothed round-trip time of the download in progress.
    pub fn srtt(&self) -> Option<Duration> {
        self.dl.as_ref().and_then(|d| d.sched.rtt.srtt())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Zeroes the counters, for a caller that reports them per job.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// The PAL image state of the running image, as read at start.
    pub fn image_state(&self) -> ImageState {
        self.image_state
    }

    // ------------------------------------------------------------------ inputs

    /// MQTT is connected (a clean session): subscribe, ask for the next job, and resume a
    /// download in progress.
    pub fn handle_connected(&mut self, now: Instant) {
        self.connected = true;
        self.push(Out::Subscribe(Sub::NotifyNext));
        self.push(Out::Subscribe(Sub::NextGetAccepted));
        if self.dl.is_some() {
            self.push(Out::Subscribe(Sub::Data));
        }
        self.push(Out::NextGet);
        self.fill_window(now);
    }

    /// MQTT is down: nothing in flight will arrive.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        self.connected = false;
        if let Some(d) = self.dl.as_mut() {
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
            } if self.dl.is_some() && stream == self.stream.as_str() => {
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
        if let Some(t) = self.timer
            && t <= now
        {
            self.timer = None;
            match self.state {
                State::AwaitingSelfTestJob => {
                    // As the official agent: no self-test job in time → reset (the boot
                    // manager's trial budget reverts an image that never gets confirmed).
                    self.event(AgentEvent::ResetRequested);
                }
                State::SelfTest => self.finish_self_test(now, false, platform),
                _ => {}
            }
        }
        let (cfg_i, cfg_min, cfg_max) = (self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto);
        let Some(d) = self.dl.as_mut() else { return };
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
        if self.state == State::SelfTest {
            self.finish_self_test(now, passed, platform);
        }
    }

    /// The application finished a job handed to it ([`AgentEvent::OtherFileJob`],
    /// [`AgentEvent::CustomJob`]).
    pub fn finish_app_job(&mut self, _now: Instant, outcome: AppOutcome) {
        if self.state != State::AwaitingApp {
            return;
        }
        let status = match outcome {
            AppOutcome::Succeeded => OtaStatus::Accepted {
                version: AppVersion::new(0, 0, u16::from(self.app_file_type)),
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
        self.state = State::Idle;
        self.event(ev);
    }

    // ------------------------------------------------------------------ outputs

    /// The next MQTT operation; a payload is written into `buf` (at least
    /// [`crate::TRANSMIT_BUF_MIN`] bytes). Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let out = self.out.pop_front()?;
            if let Some(t) = self.encode(out, buf) {
                return Some(t);
            }
            self.stats.dropped_transmits += 1;
        }
    }

    /// When [`Agent::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dl = self.dl.as_ref().and_then(|d| {
            d.sched.deadline(
                d.sched
                    .rtt
                    .rto(self.cfg.initial_rto, self.cfg.min_rto, self.cfg.max_rto),
                self.cfg.gap_retransmit,
                self.cfg.min_rto,
            )
        });
        match (self.timer, dl) {
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
            Out::Request(r) => {
                let d = self.dl.as_ref()?;
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
                    topic: topic_of(Topic::stream(
                        thing,
                        &self.stream,
                        StreamOp::Get,
                        Encoding::Cbor,
                    ))?,
                    qos: 0,
                })
            }
        }
    }

    /// Ends the current job with `ev` (publishing its status when it has one).
    fn end_job(&mut self, ev: AgentEvent) {
        if let AgentEvent::JobFailed { status } = ev {
            self.publish_status(status);
        }
        if self.dl.take().is_some() {
            self.push(Out::Unsubscribe(Sub::Data));
        }
        self.state = State::Idle;
        self.timer = None;
        self.event(ev);
    }

    fn abandon_download(&mut self) {
        if self.dl.take().is_some() {
            self.push(Out::Unsubscribe(Sub::Data));
            self.event(AgentEvent::JobCancelled);
        }
        self.state = State::Idle;
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
        if self.dl.take().is_some() {
            self.push(Out::Unsubscribe(Sub::Data));
        }
        self.state = State::Halted;
        self.timer = None;
        self.event(AgentEvent::FlashFault(f));
    }

    // ------------------------------------------------------------------ jobs

    fn on_job_message<P: Platform>(&mut self, now: Instant, payload: &[u8], platform: &mut P) {
        if matches!(self.state, State::Activated | State::Halted) {
            return;
        }
        let Ok(msg) = JobMessage::parse(payload) else {
            return;
        };
        let Some(ex) = msg.execution else {
            // Nothing pending: a download in progress was cancelled on the server.
            if self.dl.is_some() {
                self.abandon_download();
            }
            if self.state == State::AwaitingApp {
                self.state = State::Idle;
                self.event(AgentEvent::JobCancelled);
            }
            return;
        };
        if !self.finished.is_empty() && ex.job_id == self.finished.as_str() {
            // Already reported SUCCEEDED or FAILED: a stale copy of the job, not a new one.
            return;
        }
        let same_job = ex.job_id == self.job.as_str();
        if ex.status_details.in_self_test() {
            self.on_self_test_job(now, &ex, platform);
            return;
        }
        match self.state {
            State::SelfTest | State::AwaitingApp if same_job => return,
            State::AwaitingSelfTestJob => {
                self.on_pending_without_self_test(now, &ex, platform);
                return;
            }
            _ => {}
        }
        match ex.document() {
            Err(e) => {
                if same_job && self.dl.is_some() {
                    self.dl = None;
                    self.push(Out::Unsubscribe(Sub::Data));
                }
                self.set_job(ex.job_id);
                let sub = match e {
                    JobError::Invalid(ferrota_proto::job::Field::FileSize) => {
                        JobParseErr::ZeroFileSize.code()
                    }
                    _ => JobParseErr::NonConformingJobDoc.code(),
                };
                self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: OtaErr::JobParserError.code(),
                        sub,
                    },
                });
            }
            Ok(JobDocument::Custom(_)) => {
                self.abandon_download();
                self.set_job(ex.job_id);
                self.state = State::AwaitingApp;
                self.app_file_type = 0;
                self.event(AgentEvent::CustomJob);
            }
            Ok(JobDocument::Ota(ota)) => self.on_ota_job(now, ex.job_id, &ota, platform),
        }
    }

    fn set_job(&mut self, id: &str) {
        self.job.clear();
        let _ = self.job.push_str(id);
    }

    fn on_ota_job<P: Platform>(
        &mut self,
        now: Instant,
        job_id: &str,
        ota: &OtaJob<'_>,
        platform: &mut P,
    ) {
        let file = ota.file;
        let stream = ota.stream_name.unwrap_or("");
        if self.dl.is_some() {
            if job_id == self.job.as_str() && stream == self.stream.as_str() {
                // The same job again (reconnect, duplicate notification): keep going (§4.7
                // hazard 3 does not restart us).
                self.fill_window(now);
                return;
            }
            self.abandon_download();
        }
        self.set_job(job_id);
        if !ota.protocols.mqtt || ota.stream_name.is_none() {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Aborted {
                    sub_reason: OtaErr::InvalidDataProtocol.code(),
                },
            });
            return;
        }
        let file_type = file.file_type.unwrap_or(0);
        if !self.cfg.firmware_file_types.contains(&file_type) {
            self.state = State::AwaitingApp;
            self.app_file_type = file_type;
            self.event(AgentEvent::OtherFileJob {
                file_type,
                file_size: file.file_size,
                file_id: file.file_id,
            });
            return;
        }
        let sig_fail = OtaStatus::Failed {
            main: PalErr::SignatureCheckFailed.code(),
            sub: 0,
        };
        let mut sig_buf = [0u8; SIGNATURE_TEXT_MAX];
        let sig_text = file
            .signature_for(self.cfg.signature_key)
            .and_then(|s| s.unescape(&mut sig_buf).ok());
        let Some(sig_text) = sig_text else {
            self.end_job(AgentEvent::JobFailed { status: sig_fail });
            return;
        };
        let Ok(signature) = OtaSignature::from_base64(sig_text) else {
            self.end_job(AgentEvent::JobFailed { status: sig_fail });
            return;
        };
        let block_size = self.cfg.block_size;
        let num_blocks = block_count(file.file_size, block_size);
        let bank_cap = match platform.inactive_bank() {
            Ok(b) => b.capacity() as u32,
            Err(f) => return self.halt(f),
        };
        let too_small = file.file_size < Region::Cm0p.size();
        if too_small
            || file.file_size > BANK_SIZE
            || file.file_size > bank_cap
            || num_blocks > MAX_BLOCKS
        {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Failed {
                    main: PalErr::RxFileTooLarge.code(),
                    sub: if too_small { SUB_TOO_SMALL } else { 0 },
                },
            });
            return;
        }
        // Lock the inactive bank before its first erase: whatever this download leaves there (a
        // torn, refused or unsigned image) must not boot through USER1 or a fallback. Only the
        // activation of a fully verified image unlocks it (ferrota_boot::log, "Bank locks").
        let locked = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::lock_for_update(&mut log, self.running.bank).map_err(app_fault)
        });
        match locked {
            Ok(_) => {}
            Err(BootErr::Flash(f)) => return self.halt(f),
            Err(BootErr::Refused) => {
                // Only while the running image is under trial: as the official agent when the
                // platform is in self-test and the job is not.
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Rejected {
                        sub_reason: OtaErr::ImageStateMismatch.code(),
                    },
                });
            }
        }
        self.stream.clear();
        let _ = self.stream.push_str(stream);
        let erase = <P::Bank<'_> as NorFlash>::ERASE_SIZE as u32;
        let identity = resume::Identity {
            file_size: file.file_size,
            block_size,
            file_id: u32::from(file.file_id),
            tag: resume::tag(&[
                job_id.as_bytes(),
                stream.as_bytes(),
                &[file.file_id],
                sig_text.as_bytes(),
            ]),
            chunk_size: resume::chunk_size(file.file_size, block_size, erase),
        };
        let Ok(mut missing) = BlockSet::all_missing(num_blocks) else {
            return;
        };
        let mut resumed = 0;
        let mut d = Download {
            sched: Schedule::new(BlockSet::all_missing(0).unwrap_or_else(|_| missing.clone())),
            file_size: file.file_size,
            block_size,
            num_blocks,
            file_id: file.file_id,
            chunk_size: identity.chunk_size,
            erased: [0; 16],
            precheck_blocks: Region::Cm0p.size().div_ceil(block_size).min(num_blocks),
            prechecked: false,
            probing: false,
            signature,
        };
        let r = (|| -> Result<(), FlashFault> {
            let mut area = platform.resume_area()?;
            let rec = resume::read(&mut area).map_err(|k| FlashFault::new(FlashOp::Resume, k))?;
            if rec.is_some_and(|r| r.identity == identity) {
                for c in 0..d.chunks() {
                    if resume::chunk_done(&mut area, c)
                        .map_err(|k| FlashFault::new(FlashOp::Resume, k))?
                    {
                        let (a, b) = d.chunk_blocks(c);
                        for i in a..b {
                            let _ = missing.mark_received(i);
                        }
                        resumed += b - a;
                    }
                }
            } else {
                resume::start(&mut area, &identity)
                    .map_err(|k| FlashFault::new(FlashOp::Resume, k))?;
            }
            Ok(())
        })();
        if let Err(f) = r {
            return self.halt(f);
        }
        d.sched = Schedule::new(missing);
        self.dl = Some(d);
        self.state = State::Prechecking;
        self.push(Out::Subscribe(Sub::Data));
        self.event(AgentEvent::DownloadStarted {
            blocks: num_blocks,
            resumed,
        });
        self.after_progress(now, platform);
    }

    /// After blocks arrived (or were restored): precheck, finish, or ask for more.
    fn after_progress<P: Platform>(&mut self, now: Instant, platform: &mut P) {
        let Some(d) = self.dl.as_ref() else { return };
        let pre_done = d
            .sched
            .missing
            .first_missing_from(0)
            .is_none_or(|b| b >= d.precheck_blocks);
        if !d.prechecked && pre_done {
            match self.precheck(platform) {
                Err(f) => return self.halt(f),
                Ok(Check::Refused(status)) => {
                    return self.end_job(AgentEvent::JobFailed { status });
                }
                Ok(Check::Ok(rec)) => {
                    if let Some(d) = self.dl.as_mut() {
                        d.prechecked = true;
                    }
                    self.state = State::Downloading;
                    self.event(AgentEvent::VersionAccepted {
                        version: rec.version,
                    });
                }
            }
        }
        if self
            .dl
            .as_ref()
            .is_some_and(|d| d.sched.missing.is_complete())
        {
            self.finish_download(platform);
        } else {
            self.fill_window(now);
        }
    }

    /// Verifies the CM0+ region in the bank with the boot key and checks its version record
    /// against the running firmware, the anti-rollback floor and the board.
    fn precheck<P: Platform>(&mut self, platform: &mut P) -> Result<Check, FlashFault> {
        let mut scratch = [0u8; 512];
        let v = {
            let mut bank = platform.inactive_bank()?;
            verify_boot_in_flash(&mut bank, 0, self.cfg.boot_key, &mut scratch)
        };
        match v {
            Ok(v) => self.check_record(v.record(), platform),
            Err(e) => {
                if let ferrota_image::ErrorKind::Flash(k) = e.kind {
                    return Err(FlashFault::new(FlashOp::ReadBank, k));
                }
                Ok(Check::Refused(OtaStatus::Failed {
                    main: PalErr::SignatureCheckFailed.code(),
                    sub: SUB_BOOT_SIGNATURE,
                }))
            }
        }
    }

    /// Checks a verified version record against the running firmware, the anti-rollback floor
    /// and the board.
    fn check_record<P: Platform>(
        &mut self,
        rec: &VersionRecord,
        platform: &mut P,
    ) -> Result<Check, FlashFault> {
        let rec = *rec;
        let floor = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::report(&mut log, self.running.bank).map_err(log_fault)
        });
        let floor = match floor {
            Ok(r) => r.floor,
            Err(BootErr::Flash(f)) => return Err(f),
            Err(BootErr::Refused) => {
                return Err(FlashFault::new(
                    FlashOp::MarkerLog,
                    NorFlashErrorKind::Other,
                ));
            }
        };
        let new = rec.version.0;
        let run = self.running_version();
        let rejected = |e: OtaErr| {
            Ok(Check::Refused(OtaStatus::Rejected {
                sub_reason: e.code(),
            }))
        };
        if new == run {
            return rejected(OtaErr::SameFirmwareVersion);
        }
        if new < run || rec.security_counter < floor {
            return rejected(OtaErr::DowngradeNotAllowed);
        }
        if let Some(hw) = &self.cfg.hardware
            && !rec.hardware.as_str().is_empty()
            && rec.hardware != *hw
        {
            return rejected(OtaErr::InvalidArg);
        }
        Ok(Check::Ok(rec))
    }

    fn fill_window(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let max = self.cfg.effective_blocks_per_request();
        let slots = match self.dl.as_ref() {
            Some(d) if d.probing => 1,
            Some(d) => d.sched.slots(self.cfg.requests_in_flight, max),
            None => return,
        };
        loop {
            let Some(d) = self.dl.as_mut() else { return };
            // Before the CM0+ region is checked, ask ahead of it by the lookahead at most
            // (Config::precheck_lookahead: keeps the link busy during the check's round trip).
            let limit = if d.prechecked {
                d.num_blocks
            } else {
                d.precheck_blocks
                    .saturating_add(self.cfg.precheck_lookahead)
                    .min(d.num_blocks)
            };
            let Some(r) = d.sched.next_request(now, slots, max, limit) else {
                return;
            };
            self.stats.requests += 1;
            self.push(Out::Request(r));
        }
    }

    // ------------------------------------------------------------------ blocks

    fn on_block<P: Platform>(
        &mut self,
        now: Instant,
        stream: &str,
        payload: &[u8],
        platform: &mut P,
    ) {
        let Some(d) = self.dl.as_mut() else {
            // No download (e.g. a late duplicate of the final block, §4.9 hazard 1): ignored.
            self.stats.ignored += 1;
            return;
        };
        if stream != self.stream.as_str() {
            self.stats.ignored += 1;
            return;
        }
        let Ok(block) = DataBlock::decode(payload) else {
            self.stats.malformed += 1;
            return;
        };
        if block.file_id != u32::from(d.file_id) || block.block_id >= d.num_blocks {
            self.stats.ignored += 1;
            return;
        }
        let i = block.block_id;
        if block.payload.len() as u32 != d.block_len(i) {
            self.stats.malformed += 1;
            return;
        }
        if !d.sched.missing.is_missing(i) {
            self.stats.duplicates += 1;
            return;
        }
        if let Err(f) = Self::write_block(d, i, block.payload, platform) {
            return self.halt(f);
        }
        let _ = d.sched.missing.mark_received(i);
        self.stats.gaps += d.sched.on_block(now, i, self.cfg.gap_retransmit);
        d.sched.momentum = 0;
        d.probing = false;
        self.stats.blocks_accepted += 1;
        let (received, total) = (d.sched.missing.received_count(), d.num_blocks);
        let c = d.chunk_of(i);
        let (a, b) = d.chunk_blocks(c);
        let chunk_complete = d.sched.missing.first_missing_from(a).is_none_or(|m| m >= b);
        if chunk_complete {
            let ok = platform
                .resume_area()
                .ok()
                .and_then(|mut r| resume::mark_chunk(&mut r, c).ok());
            if ok.is_none() {
                self.stats.mark_failures += 1;
            }
        }
        if received < total
            && (received == 1 || received.is_multiple_of(self.cfg.progress_every.max(1)))
        {
            self.publish_status(OtaStatus::Receiving { received, total });
        }
        self.after_progress(now, platform);
    }

    fn write_block<P: Platform>(
        d: &mut Download,
        i: u32,
        data: &[u8],
        platform: &mut P,
    ) -> Result<(), FlashFault> {
        let mut bank = platform.inactive_bank()?;
        let c = d.chunk_of(i);
        if !d.erased(c) {
            let erase = <P::Bank<'_> as NorFlash>::ERASE_SIZE as u32;
            let from = c * d.chunk_size;
            let to = ((c + 1) * d.chunk_size)
                .min(d.file_size.div_ceil(erase) * erase)
                .min(bank.capacity() as u32);
            bank.erase(from, to).map_err(fk(FlashOp::EraseBank))?;
            d.set_erased(c);
        }
        let w = <P::Bank<'_> as NorFlash>::WRITE_SIZE;
        const { assert!(<P::Bank<'_> as NorFlash>::WRITE_SIZE <= 64) };
        let at = i * d.block_size;
        let aligned = data.len() - data.len() % w;
        if aligned > 0 {
            bank.write(at, &data[..aligned])
                .map_err(fk(FlashOp::WriteBlock))?;
        }
        if aligned < data.len() {
            let mut tail = [0xFFu8; 64];
            tail[..data.len() - aligned].copy_from_slice(&data[aligned..]);
            bank.write(at + aligned as u32, &tail[..w])
                .map_err(fk(FlashOp::WriteBlock))?;
        }
        Ok(())
    }

    /// Every block is in: hash the bank as read back, check the OTA signature, re-check the
    /// CM0+ region, activate, report `self_test: ready`.
    fn finish_download<P: Platform>(&mut self, platform: &mut P) {
        let Some(d) = self.dl.take() else { return };
        self.push(Out::Unsubscribe(Sub::Data));
        // One proof for both checks over the bank as read back: the OTA signature first (sub 0),
        // then the CM0+ region (the precheck passed on the same bytes, but re-verify: a proof,
        // not a memory).
        let mut scratch = [0u8; 1024];
        let verified = match platform.inactive_bank() {
            Ok(mut bank) => verify_written_bank(
                &mut bank,
                0,
                d.file_size,
                &d.signature,
                &self.cfg.code_signing_key,
                self.cfg.boot_key,
                &mut scratch,
            ),
            Err(f) => return self.halt(f),
        };
        let proof = match verified {
            Ok(p) => p,
            Err(WrittenBankError::Flash(k)) => {
                return self.halt(FlashFault::new(FlashOp::ReadBank, k));
            }
            Err(WrittenBankError::OtaSignature(_)) => {
                // Start afresh if the job comes again: the bytes in flash are not the signed file.
                if let Ok(mut r) = platform.resume_area() {
                    let _ = resume::clear(&mut r);
                }
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::SignatureCheckFailed.code(),
                        sub: 0,
                    },
                });
            }
            Err(WrittenBankError::Boot(_)) => {
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::SignatureCheckFailed.code(),
                        sub: SUB_BOOT_SIGNATURE,
                    },
                });
            }
        };
        match self.check_record(proof.record(), platform) {
            Err(f) => return self.halt(f),
            Ok(Check::Refused(status)) => return self.end_job(AgentEvent::JobFailed { status }),
            Ok(Check::Ok(_)) => {}
        }
        let run = self.running_version();
        if let Ok(mut r) = platform.resume_area() {
            let _ = resume::mark_activating(&mut r, run);
        }
        let activated = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::request_activation(&mut log, self.running.bank, &proof, self.cfg.trial_budget)
                .map_err(app_fault)
        });
        match activated {
            Ok(_) => {}
            Err(BootErr::Flash(f)) => return self.halt(f),
            Err(BootErr::Refused) => {
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::ActivateFailed.code(),
                        sub: 0,
                    },
                });
            }
        }
        self.publish_status(OtaStatus::SelfTestReady {
            updated_by: AppVersion::from_u32(run),
        });
        self.state = State::Activated;
        self.event(AgentEvent::Activated);
        self.event(AgentEvent::ResetRequested);
    }

    // ------------------------------------------------------------------ self-test

    fn on_self_test_job<P: Platform>(
        &mut self,
        now: Instant,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) {
        if self.state == State::SelfTest && ex.job_id == self.job.as_str() {
            return;
        }
        if let Ok(JobDocument::Ota(ota)) = ex.document()
            && !self
                .cfg
                .firmware_file_types
                .contains(&ota.file.file_type.unwrap_or(0))
        {
            // Only firmware has a self-test; the official agent version-checks only firmware.
            return;
        }
        self.abandon_download();
        self.set_job(ex.job_id);
        let mut updated_by = ex.status_details.updated_by().unwrap_or(0);
        let active = ex
            .status_details
            .self_test()
            .is_some_and(|v| v.eq_str("active"));
        if active
            && (self.image_state == ImageState::PendingCommit || self.confirmed_here())
            && updated_by == self.running_version()
        {
            // `self_test: active` carries the *new* version: the reset came during the
            // self-test (or between confirm and the SUCCEEDED report). The version that did
            // the download is in the resume record.
            if let Some(old) = self.activated_version(ex, platform) {
                updated_by = old;
            }
        }
        self.self_test_with(now, updated_by, platform);
    }

    fn self_test_with<P: Platform>(&mut self, now: Instant, updated_by: u32, platform: &mut P) {
        self.updated_by = updated_by;
        let run = self.running_version();
        let pending = self.image_state == ImageState::PendingCommit;
        if run <= updated_by {
            // The new image is not running: it did not boot, or was reverted, or this is an
            // old image. As the official agent: 16 for the same version, 15 for older.
            let code = if run == updated_by {
                OtaErr::SameFirmwareVersion
            } else {
                OtaErr::DowngradeNotAllowed
            };
            let status = OtaStatus::Rejected {
                sub_reason: code.code(),
            };
            if pending {
                return self.reject_and_reset(status, platform);
            }
            self.clear_resume(platform);
            return self.end_job(AgentEvent::JobFailed { status });
        }
        if !pending {
            // Newer than `updatedBy` but not under trial: confirmed already (a reset came
            // between confirm and the SUCCEEDED report) → report it; otherwise a mismatch.
            if self.confirmed_here() {
                return self.report_succeeded(platform);
            }
            return self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Rejected {
                    sub_reason: OtaErr::ImageStateMismatch.code(),
                },
            });
        }
        self.publish_status(OtaStatus::SelfTestActive {
            updated_by: AppVersion::from_u32(run),
        });
        let deadline = now + self.cfg.self_test_deadline;
        self.state = State::SelfTest;
        self.timer = Some(deadline);
        self.event(AgentEvent::StartSelfTest { deadline });
    }

    /// Booted under trial, but the job document has no `self_test`: the `self_test: ready`
    /// report was lost (a reset between activation and the publish). If the resume record says
    /// this agent activated this very job, carry on with the self-test; otherwise reset, as the
    /// official agent does.
    fn on_pending_without_self_test<P: Platform>(
        &mut self,
        now: Instant,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) {
        let activating = self.activated_version(ex, platform);
        match activating {
            Some(updated_by) => {
                self.set_job(ex.job_id);
                self.self_test_with(now, updated_by, platform);
            }
            None => self.event(AgentEvent::ResetRequested),
        }
    }

    /// The running version the resume record says activated this very job, if it does.
    fn activated_version<P: Platform>(
        &self,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) -> Option<u32> {
        let Ok(JobDocument::Ota(ota)) = ex.document() else {
            return None;
        };
        let mut sig_buf = [0u8; SIGNATURE_TEXT_MAX];
        let sig = ota
            .file
            .signature_for(self.cfg.signature_key)?
            .unescape(&mut sig_buf)
            .ok()?;
        let tag = resume::tag(&[
            ex.job_id.as_bytes(),
            ota.stream_name.unwrap_or("").as_bytes(),
            &[ota.file.file_id],
            sig.as_bytes(),
        ]);
        let mut area = platform.resume_area().ok()?;
        let rec = resume::read(&mut area).ok()??;
        (rec.identity.tag == tag).then_some(rec.activating)?
    }

    fn finish_self_test<P: Platform>(&mut self, _now: Instant, passed: bool, platform: &mut P) {
        self.timer = None;
        if !passed {
            return self.reject_and_reset(OtaStatus::Rejected { sub_reason: 0 }, platform);
        }
        // `confirm` takes the proof that the running bank's CM0+ region verifies: check the bank
        // this image runs from, and that its record is the one the boot reported.
        let boot = {
            let mut scratch = [0u8; 512];
            platform
                .active_bank()
                .map(|mut bank| verify_boot_in_flash(&mut bank, 0, self.cfg.boot_key, &mut scratch))
        };
        let boot = match boot {
            Err(f) => return self.halt(f),
            Ok(Err(e)) => match e.kind {
                ferrota_image::ErrorKind::Flash(k) => {
                    return self.halt(FlashFault::new(FlashOp::ReadBank, k));
                }
                // The running bank does not verify: never raise the floor from it.
                _ => Err(BootErr::Refused),
            },
            Ok(Ok(b)) if *b.record() == self.running.record => Ok(b),
            // Not the image the boot reported: the caller's `Running` is wrong.
            Ok(Ok(_)) => Err(BootErr::Refused),
        };
        let confirmed = boot.and_then(|boot| {
            let l = platform.marker_log().map_err(BootErr::Flash)?;
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::confirm(&mut log, self.running.bank, &boot).map_err(app_fault)
        });
        match confirmed {
            Ok(floor) => {
                self.image_state = ImageState::Valid;
                self.event(AgentEvent::Confirmed { floor });
                self.report_succeeded(platform);
            }
            Err(BootErr::Flash(f)) => self.halt(f),
            Err(BootErr::Refused) => self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Failed {
                    main: PalErr::CommitFailed.code(),
                    sub: 0,
                },
            }),
        }
    }

    fn confirmed_here(&self) -> bool {
        self.image_state == ImageState::Valid
            && matches!(self.last_event, LogEvent::Confirmed { bank } if bank == self.running.bank)
    }

    /// The resume record is left in place: it binds to this job only, the next job erases it,
    /// and it lets a reset before the SUCCEEDED report still name the version that did the
    /// download.
    fn report_succeeded<P: Platform>(&mut self, _platform: &mut P) {
        self.publish_status(OtaStatus::Accepted {
            version: AppVersion::from_u32(self.running_version()),
            updated_by: AppVersion::from_u32(self.updated_by),
        });
        self.end_job(AgentEvent::JobSucceeded);
    }

    fn reject_and_reset<P: Platform>(&mut self, status: OtaStatus, platform: &mut P) {
        let rejected = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::reject(&mut log, self.running.bank).map_err(app_fault)
        });
        if let Err(BootErr::Flash(f)) = rejected {
            return self.halt(f);
        }
        self.clear_resume(platform);
        self.image_state = ImageState::Invalid;
        self.end_job(AgentEvent::JobFailed { status });
        self.event(AgentEvent::Rejected);
        self.event(AgentEvent::ResetRequested);
        self.state = State::Activated;
    }

    fn clear_resume<P: Platform>(&mut self, platform: &mut P) {
        if let Ok(mut r) = platform.resume_area() {
            let _ = resume::clear(&mut r);
        }
    }
}

// Silence an unused-import lint for FirmwareVersion in docs builds.
#[allow(dead_code)]
fn _uses(_: FirmwareVersion) {}
