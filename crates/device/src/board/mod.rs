//! The simulated board at run time: power on runs the boot chain over the device, the CM7 app
//! runs `ferrota-agent` over rumqttc + rustls (ring) with the thing's certificate, and tokio
//! drives the sans-IO agent.
//!
//! ```text
//!  power on ─▶ boot_chain::boot (ROM → DBM → switch → CM0+) ─▶ app: Agent::new(running)
//!     ▲                                                         │ net task: rumqttc event loop
//!     │ reset (after the QoS 1 publishes are acknowledged)      │   (reconnects, back-off)
//!     │ power cut (flash op N, or after K blocks: test aid)     │ one sleep_until(poll_timeout)
//!     └─────────────────────────────────────────────────────────┘ self-test timer
//! ```
//!
//! Resets re-run the boot chain in the same process. The device file is saved at every reset,
//! power cut and stop. Log lines imitate the seed's UART output; a download shows a progress
//! bar on a terminal and plain lines otherwise.

mod net;
mod progress;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrota_agent::{Agent, AgentEvent, AppOutcome, Config, Running, TransmitKind};
use ferrota_boot::Bank;
use ferrota_boot::app::ImageState;
use ferrota_image::FirmwareVersion;
use ferrota_proto::topic::{StreamOp, Topic};
use ferrota_t2g::{Device, PowerCut};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

pub use ferrota_sim::platform::DevPlatform;
pub use net::{BACKOFF_MAX, BACKOFF_MIN, Net, TlsSetupError, client_tls};

use crate::config::{Loaded, Policy};
use ferrota_sim::boot_chain::{self, BootResult};
use progress::Progress;

/// What the simulated application does when asked for its self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelfTest {
    /// It passes.
    #[default]
    Passes,
    /// It fails (testing aid).
    Fails,
}

/// How the board runs (the testing aids included).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// USER1 (P5.3) held at every reset: the DBM prefers the lower bank.
    pub user1: bool,
    /// Cut the power before flash operation N, counted from this run's start (once).
    pub power_cut_at_op: Option<u64>,
    /// Cut the power before the next flash operation once K blocks have been written in one
    /// power-on (once).
    pub power_cut_after_blocks: Option<u32>,
    /// The self-test result.
    pub self_test: SelfTest,
    /// An image under trial crashes before it reaches the network (testing aid: the DBM's
    /// boot budget must revert it).
    pub crash_on_trial: bool,
    /// How long the simulated self-test takes.
    pub self_test_time: Duration,
    /// Save the device here at every reset, power cut and stop.
    pub flash_path: Option<PathBuf>,
    /// Show a progress bar (on a terminal; plain lines otherwise).
    pub progress: bool,
    /// Print log lines on stdout (otherwise only [`BoardEvent`]s).
    pub quiet: bool,
    /// Overrides of the agent's download schedule (`None`: the agent's defaults). Lets a
    /// benchmark run the same agent on another schedule, e.g. the official library's
    /// ([`AgentTuning::official_library`]).
    pub agent: Option<AgentTuning>,
    /// The application's handler of jobs that are not firmware (a file type outside
    /// `device.toml`'s `file_types`, or a job document that is not `afr_ota`). Every such job
    /// is ended through it, so it never blocks the device's job queue.
    pub app_jobs: AppJobHandler,
}

/// A job the agent hands to the application instead of downloading it as firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppJob {
    /// An `afr_ota` job whose file type is not firmware on this board.
    File {
        /// `fileType` (0 when absent).
        file_type: u8,
        /// `filesize`.
        file_size: u32,
        /// `fileid`.
        file_id: u8,
    },
    /// A job document that is not an `afr_ota` document.
    Custom,
}

/// The application callback that ends a non-firmware job (see [`Options::app_jobs`]).
///
/// Decision: the default declines every such job with FAILED `0x0000000c: 0x00000004`
/// (`JobParserError: NonConformingJobDoc`), which is what the AWS OTA library reports for a job
/// no handler claims, so the AWS console and `ota describe` show the same reason. It is not
/// left pending: a job left IN_PROGRESS/QUEUED would keep every later firmware job QUEUED
/// behind it (issue 13, item 6). An application that handles a file type installs its own
/// handler and answers [`AppOutcome::Succeeded`] or [`AppOutcome::Failed`].
#[derive(Clone)]
pub struct AppJobHandler(pub Arc<dyn Fn(AppJob) -> AppOutcome + Send + Sync>);

impl AppJobHandler {
    /// The default handler: declines every job (see the type's documentation).
    pub fn decline_all() -> AppJobHandler {
        AppJobHandler(Arc::new(|_| AppOutcome::Declined))
    }

    /// A handler that answers every job with `outcome`.
    pub fn always(outcome: AppOutcome) -> AppJobHandler {
        AppJobHandler(Arc::new(move |_| outcome))
    }
}

impl Default for AppJobHandler {
    fn default() -> Self {
        AppJobHandler::decline_all()
    }
}

impl std::fmt::Debug for AppJobHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppJobHandler(..)")
    }
}

/// Overrides of the agent's download schedule; a `None` field keeps the agent's default (see
/// [`ferrota_agent::Config`] for what each one does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentTuning {
    /// Block size in bytes (otherwise `device.toml`'s).
    pub block_size: Option<u32>,
    /// Blocks asked for in one request.
    pub blocks_per_request: Option<u32>,
    /// Requests in flight at once.
    pub requests_in_flight: Option<usize>,
    /// Retransmission timeout before the first round-trip sample.
    pub initial_rto: Option<Duration>,
    /// Lower bound of the retransmission timeout.
    pub min_rto: Option<Duration>,
    /// Upper bound of the retransmission timeout.
    pub max_rto: Option<Duration>,
    /// Re-request a block at once when later blocks of its request arrived without it.
    pub gap_retransmit: Option<bool>,
    /// Blocks that may be requested beyond the CM0+ region before its check passes.
    pub precheck_lookahead: Option<u32>,
}

impl AgentTuning {
    /// The AWS OTA library's download schedule (the seed's agent): 4 KB blocks, 8 blocks a
    /// request, one request at a time, and a fixed 10 s wait before a request is sent again
    /// (`otaconfigFILE_REQUEST_WAIT_MS`), i.e. no round-trip estimate and no early loss
    /// detection.
    pub fn official_library() -> AgentTuning {
        let wait = Duration::from_secs(10);
        AgentTuning {
            block_size: Some(4096),
            blocks_per_request: Some(8),
            requests_in_flight: Some(1),
            initial_rto: Some(wait),
            min_rto: Some(wait),
            max_rto: Some(wait),
            gap_retransmit: Some(false),
            precheck_lookahead: Some(0),
        }
    }

    /// Applies the overrides to `config` (which [`ferrota_agent::Agent::new`] then checks).
    pub fn apply<V>(&self, config: &mut Config<'_, V>) {
        if let Some(v) = self.block_size {
            config.block_size = v;
        }
        if let Some(v) = self.blocks_per_request {
            config.blocks_per_request = v;
        }
        if let Some(v) = self.requests_in_flight {
            config.requests_in_flight = v;
        }
        if let Some(v) = self.initial_rto {
            config.initial_rto = v;
        }
        if let Some(v) = self.min_rto {
            config.min_rto = v;
        }
        if let Some(v) = self.max_rto {
            config.max_rto = v;
        }
        if let Some(v) = self.gap_retransmit {
            config.gap_retransmit = v;
        }
        if let Some(v) = self.precheck_lookahead {
            config.precheck_lookahead = v;
        }
    }
}

/// What happened, for observers (the demo, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardEvent {
    /// The boot chain started an image.
    Booted {
        /// Physical bank.
        bank: Bank,
        /// Its version.
        version: FirmwareVersion,
        /// Its image state (PendingCommit = trial).
        image_state: ImageState,
    },
    /// The boot chain halted.
    Halted(String),
    /// The app crashed before the network (testing aid).
    Crashed,
    /// MQTT connected.
    Connected,
    /// MQTT dropped.
    Disconnected,
    /// The agent took a job: a firmware download, or a job it hands to the application.
    JobReceived {
        /// The job id.
        job_id: String,
    },
    /// Download progress, at every tenth of the file (and its end).
    Progress {
        /// Blocks held.
        received: u32,
        /// Blocks of the file.
        total: u32,
    },
    /// Which file of the job the agent fetches (the bank image, a packed full image or a
    /// delta from the running bank) and its size.
    FileChosen {
        /// The encoding.
        encoding: ferrota_agent::FileEncoding,
        /// Bytes of the file.
        bytes: u32,
    },
    /// A download started (`resumed` blocks kept from before a reset).
    DownloadStarted {
        /// Blocks.
        blocks: u32,
        /// Already held.
        resumed: u32,
    },
    /// The image in the CM0+ region passed the version checks.
    VersionAccepted(FirmwareVersion),
    /// Verified and activated (TRIAL written).
    Activated,
    /// The self-test started.
    SelfTestStarted,
    /// Confirmed; new floor.
    Confirmed(u32),
    /// The trial image was rejected.
    Rejected,
    /// The job ended SUCCEEDED.
    JobSucceeded,
    /// The job ended FAILED (status as published).
    JobFailed(String),
    /// The power was cut (testing aid).
    PowerCut,
    /// The device resets (queued publishes acknowledged).
    Reset,
}

/// The `statusDetails.reason` of a published job status (the text of
/// [`BoardEvent::JobFailed`]), with its words beside AWS's code when
/// [`ferrota_proto::reason::explain`] knows it: `0x000000e3: 0x00000000 (signature check
/// failed)`. `None` when the status carries no reason.
pub fn status_reason(status: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(status).ok()?;
    let r = v.get("statusDetails")?.get("reason")?.as_str()?;
    Some(ferrota_proto::reason::explain(r).map_or_else(|| r.to_string(), |e| e.to_string()))
}

/// Why [`Board::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The stop future resolved.
    Stopped,
    /// The boot chain halted (nothing runs).
    Halted(String),
}

/// A run-time failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The boot chain failed (model error).
    #[error("boot chain: {0}")]
    Boot(#[from] ferrota_sim::boot_chain::Error),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The agent refused to start.
    #[error("the agent refused to start: {0:?}")]
    Agent(ferrota_agent::StartError),
    /// `[trust] policy = "require"` on a board provisioned without a hardware id: a manifest
    /// names the board class it is for, and the agent compares it with this id.
    #[error(
        "[trust] policy = \"require\" needs a board provisioned with a hardware id (`ferrota t2g new --hardware ...`); this one has none"
    )]
    TrustHardware,
    /// Saving the device file failed.
    #[error("saving the device: {0}")]
    Save(String),
    /// A model error.
    #[error("device: {0}")]
    Device(#[from] ferrota_t2g::Error),
}

/// Counters over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Boots (boot chain runs that started an image).
    pub boots: u32,
    /// Power cuts.
    pub power_cuts: u32,
    /// Stream payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes published.
    pub bytes_out: u64,
    /// New blocks written to the inactive bank.
    pub blocks_written: u64,
    /// When the first stream request was published (since the counters were last reset):
    /// with [`Counters::activated_at`], the whole download as the device sees it.
    pub first_request_at: Option<std::time::Instant>,
    /// When the first new block arrived.
    pub first_block_at: Option<std::time::Instant>,
    /// When the last new block arrived.
    pub last_block_at: Option<std::time::Instant>,
    /// When the agent activated a verified download.
    pub activated_at: Option<std::time::Instant>,
    /// The agent's counters when it activated that download (requests, duplicates, timeouts).
    pub download: Option<ferrota_agent::Stats>,
}

/// Sink of log lines.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// A board: the device, its configuration, options and observers.
pub struct Board {
    /// The device (memories, eFuses, simulated clock).
    pub dev: Device,
    /// The configuration.
    pub cfg: Arc<Loaded>,
    /// Options.
    pub opts: Options,
    /// Counters.
    pub counters: Counters,
    observer: Option<mpsc::UnboundedSender<BoardEvent>>,
    log: LogFn,
    epoch: TokioInstant,
    start_ops: Option<u64>,
    cut_done: bool,
    /// The agent counters of earlier power-ons since the last job ended: a download's requests
    /// happen before the activation reset, its SUCCEEDED or FAILED after it (in a new agent
    /// whose counters start at zero).
    carried: ferrota_agent::Stats,
    /// The counters of the last job that ended (its download across every power-on).
    last_job_stats: Option<ferrota_agent::Stats>,
}

enum AppExit {
    Reset,
    PowerCut,
    Stopped,
}

impl Board {
    /// A board over `dev`.
    pub fn new(dev: Device, cfg: Arc<Loaded>, opts: Options) -> Board {
        let thing = cfg.cfg.thing_name.clone();
        let quiet = opts.quiet;
        Board {
            dev,
            cfg,
            opts,
            counters: Counters::default(),
            observer: None,
            log: Arc::new(move |l: &str| {
                if !quiet {
                    println!("[{thing}] {l}");
                }
            }),
            epoch: TokioInstant::now(),
            start_ops: None,
            cut_done: false,
            carried: ferrota_agent::Stats::default(),
            last_job_stats: None,
        }
    }

    /// The agent counters of the last job that ended, summed over every power-on of its
    /// download (`None` before a job ended).
    pub fn last_job_stats(&self) -> Option<ferrota_agent::Stats> {
        self.last_job_stats
    }

    /// Replaces the options (the one-shot testing aids are armed again).
    pub fn set_options(&mut self, opts: Options) {
        self.opts = opts;
        self.start_ops = None;
        self.cut_done = false;
    }

    /// Sends every [`BoardEvent`] to `tx`.
    pub fn observe(&mut self, tx: mpsc::UnboundedSender<BoardEvent>) {
        self.observer = Some(tx);
    }

    /// Replaces the log sink.
    pub fn set_log(&mut self, log: LogFn) {
        self.log = log;
    }

    fn say(&self, l: &str) {
        (self.log)(l);
    }

    fn emit(&self, e: BoardEvent) {
        if let Some(tx) = &self.observer {
            let _ = tx.send(e);
        }
    }

    fn now(&self) -> ferrota_agent::Instant {
        ferrota_agent::Instant::from_micros(self.epoch.elapsed().as_micros() as u64 + 1)
    }

    fn save(&self) -> Result<(), RunError> {
        if let Some(p) = &self.opts.flash_path {
            self.dev
                .save(p)
                .map_err(|e| RunError::Save(format!("{}: {e}", p.display())))?;
        }
        Ok(())
    }

    fn power_cut(&mut self) {
        self.counters.power_cuts += 1;
        self.say("*** power cut ***");
        self.emit(BoardEvent::PowerCut);
        self.dev.power_cycle();
    }

    /// Powers the board on and runs until `stop` resolves (or the boot chain halts). Resets
    /// and power cuts re-run the boot chain in this call.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<Exit, RunError> {
        tokio::pin!(stop);
        if self.start_ops.is_none() {
            let ops = self.dev.op_count();
            self.start_ops = Some(ops);
            if let Some(n) = self.opts.power_cut_at_op {
                self.dev.schedule_power_cut(PowerCut::Before(ops + n));
            }
        }
        let tls = client_tls(&self.cfg)?;
        loop {
            // A stop that came with a reset leaves the board off.
            tokio::select! {
                biased;
                _ = stop.as_mut() => {
                    self.save()?;
                    return Ok(Exit::Stopped);
                }
                _ = std::future::ready(()) => {}
            }
            // Power on: the boot chain.
            let outcome = boot_chain::boot(&mut self.dev, self.opts.user1)?;
            if self.dev.power_lost() {
                self.power_cut();
                continue;
            }
            for s in &outcome.steps {
                self.say(&s.to_string());
            }
            let started = match &outcome.result {
                BootResult::Started(s) => s.clone(),
                _ => {
                    let why = outcome.summary();
                    self.say(&why);
                    self.emit(BoardEvent::Halted(why.clone()));
                    self.save()?;
                    return Ok(Exit::Halted(why));
                }
            };
            self.counters.boots += 1;
            self.say(&format!(
                "CM7: app {} running from the {} bank; image state {:?}",
                started.record.version, started.bank, started.image_state
            ));
            self.emit(BoardEvent::Booted {
                bank: started.bank,
                version: started.record.version,
                image_state: started.image_state,
            });
            if self.opts.crash_on_trial && started.image_state == ImageState::PendingCommit {
                self.say("CM7: the app crashed before reaching the network; watchdog reset");
                self.emit(BoardEvent::Crashed);
                continue;
            }
            let running = Running {
                bank: started.bank,
                record: started.record,
            };
            match self.app(running, tls.clone(), &mut stop).await? {
                AppExit::Reset => {
                    self.say("resetting");
                    self.emit(BoardEvent::Reset);
                    self.save()?;
                }
                AppExit::PowerCut => {
                    self.power_cut();
                    self.save()?;
                }
                AppExit::Stopped => {
                    self.save()?;
                    return Ok(Exit::Stopped);
                }
            }
        }
    }

    /// The CM7 app: the agent over MQTT until a reset, a power cut or the stop.
    async fn app(
        &mut self,
        running: Running,
        tls: rustls::ClientConfig,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<AppExit, RunError> {
        self.dev.set_work_err_silent(true)?;
        let params = boot_chain::read_params(&self.dev)?;
        let cfg = self.cfg.clone();
        let mut config = Config::new(&cfg.cfg.thing_name, &params.key, cfg.code_signing_key);
        config.hardware = params.config.hardware;
        config.firmware_file_types = &cfg.cfg.file_types;
        config.self_test_deadline = cfg.self_test_deadline();
        config.self_test_wait = Duration::from_secs(cfg.cfg.self_test_wait_secs);
        config.block_size = cfg.cfg.block_size;
        // Signed update metadata (`[trust]`): the anchor's bytes live in `cfg` (an `Arc` held
        // for the whole power-on), which the agent's configuration borrows.
        config.trust.policy = cfg.trust.policy.agent();
        config.trust.anchor = cfg.trust.anchor.as_deref();
        if let Some(r) = cfg.trust.min_rate {
            config.trust.min_rate = r;
        }
        if cfg.trust.policy == Policy::Require
            && config.hardware.is_none_or(|h| h.as_str().is_empty())
        {
            return Err(RunError::TrustHardware);
        }
        if let Some(t) = &self.opts.agent {
            t.apply(&mut config);
        }
        let mut agent = Agent::new(self.now(), config, running, &mut DevPlatform(&mut self.dev))
            .map_err(RunError::Agent)?;
        self.say(&format!(
            "OTA agent started; connecting to {}:{} as {}",
            cfg.cfg.endpoint, cfg.cfg.port, cfg.cfg.thing_name
        ));
        self.say(&trust_line(&cfg));
        let (client, mut rx, task) = net::connect(&cfg, tls);
        let mut st = AppState {
            unacked: 0,
            reset: false,
            self_test_at: None,
            progress: Progress::new(self.opts.progress && !self.opts.quiet),
            blocks_this_power_on: 0,
        };
        let far = Duration::from_secs(3600);
        let exit = loop {
            let deadline = agent
                .poll_timeout()
                .map(|t| self.epoch + t.since_epoch())
                .unwrap_or_else(|| TokioInstant::now() + far);
            let self_test = st.self_test_at.unwrap_or_else(|| TokioInstant::now() + far);
            let now_t;
            tokio::select! {
                _ = stop.as_mut() => break AppExit::Stopped,
                _ = tokio::time::sleep_until(deadline) => {
                    now_t = self.now();
                    agent.handle_timeout(now_t, &mut DevPlatform(&mut self.dev));
                }
                _ = tokio::time::sleep_until(self_test), if st.self_test_at.is_some() => {
                    st.self_test_at = None;
                    let pass = self.opts.self_test == SelfTest::Passes;
                    self.say(&format!("self-test {}", if pass { "passed" } else { "FAILED" }));
                    now_t = self.now();
                    agent.self_test_result(now_t, pass, &mut DevPlatform(&mut self.dev));
                }
                m = rx.recv() => {
                    now_t = self.now();
                    match m {
                        Some(Net::Connected) => {
                            self.say("MQTT connected (mutual TLS)");
                            self.emit(BoardEvent::Connected);
                            agent.handle_connected(now_t);
                        }
                        Some(Net::Message(topic, payload)) => {
                            if Topic::stream_op_of(&topic).is_some() {
                                self.counters.bytes_in += payload.len() as u64;
                            }
                            let before = agent.stats().blocks_accepted;
                            agent.handle_message(now_t, &topic, &payload, &mut DevPlatform(&mut self.dev));
                            let new = agent.stats().blocks_accepted - before;
                            if new > 0 {
                                let t = std::time::Instant::now();
                                self.counters.first_block_at.get_or_insert(t);
                                self.counters.last_block_at = Some(t);
                            }
                            st.blocks_this_power_on += new;
                            self.counters.blocks_written += u64::from(new);
                            if let Some((n, total)) = agent.progress() {
                                st.progress.update(&*self.log, n, total);
                                let tenth = |k: u32| u64::from(k) * 10 / u64::from(total.max(1));
                                if new > 0 && (tenth(n) != tenth(n - new) || n == total) {
                                    self.emit(BoardEvent::Progress { received: n, total });
                                }
                            }
                        }
                        Some(Net::PubAck) => st.unacked = st.unacked.saturating_sub(1),
                        Some(Net::Down(e)) => {
                            self.say(&format!("MQTT disconnected: {e}; retrying"));
                            self.emit(BoardEvent::Disconnected);
                            agent.handle_disconnected(now_t);
                        }
                        None => break AppExit::Stopped,
                    }
                }
            }
            // A power cut during the call: nothing the agent queued leaves the device.
            if self.dev.power_lost() {
                break AppExit::PowerCut;
            }
            self.drain(&mut agent, &client, &mut st, now_t);
            if let (Some(k), false) = (self.opts.power_cut_after_blocks, self.cut_done)
                && st.blocks_this_power_on >= k
            {
                self.cut_done = true;
                let op = self.dev.op_count();
                self.dev.schedule_power_cut(PowerCut::Before(op));
            }
            if st.reset {
                break AppExit::Reset;
            }
        };
        st.progress.finish();
        self.carried = self.carried.merged(agent.stats());
        if !matches!(exit, AppExit::PowerCut) {
            // Flush QoS 1 publishes before acting on a reset (or stopping).
            let until = TokioInstant::now() + Duration::from_secs(3);
            while st.unacked > 0 {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(Net::PubAck)) => st.unacked -= 1,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        }
        task.abort();
        Ok(exit)
    }

    fn drain(
        &mut self,
        agent: &mut Agent<'_, ferrota_image::BootKey>,
        client: &rumqttc::AsyncClient,
        st: &mut AppState,
        now: ferrota_agent::Instant,
    ) {
        // Ending an application job queues its status: drain again until nothing is left.
        let mut again = true;
        while std::mem::take(&mut again) {
            self.drain_once(agent, client, st, now, &mut again);
        }
    }

    fn drain_once(
        &mut self,
        agent: &mut Agent<'_, ferrota_image::BootKey>,
        client: &rumqttc::AsyncClient,
        st: &mut AppState,
        now: ferrota_agent::Instant,
        again: &mut bool,
    ) {
        let mut buf = [0u8; 1024];
        while let Some(t) = agent.poll_transmit(&mut buf) {
            let qos = if t.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let _ = match t.kind {
                TransmitKind::Subscribe => client.try_subscribe(t.topic.as_str(), qos),
                TransmitKind::Unsubscribe => client.try_unsubscribe(t.topic.as_str()),
                TransmitKind::Publish { len } => {
                    if t.qos > 0 {
                        st.unacked += 1;
                    }
                    self.counters.bytes_out += len as u64;
                    if Topic::stream_op_of(t.topic.as_str()) == Some(StreamOp::Get) {
                        self.counters
                            .first_request_at
                            .get_or_insert_with(std::time::Instant::now);
                    }
                    if t.topic.contains("/jobs/") && !t.topic.ends_with("/get") {
                        self.say(&format!("status: {}", String::from_utf8_lossy(&buf[..len])));
                    }
                    client.try_publish(t.topic.as_str(), qos, false, buf[..len].to_vec())
                }
            };
        }
        while let Some(e) = agent.poll_event() {
            match e {
                AgentEvent::OtherFileJob {
                    file_type,
                    file_size,
                    file_id,
                } => {
                    self.emit(BoardEvent::JobReceived {
                        job_id: agent.job_id().to_string(),
                    });
                    self.say(&format!(
                        "job for file type {file_type} (not firmware): handing it to the application"
                    ));
                    let outcome = (self.opts.app_jobs.0)(AppJob::File {
                        file_type,
                        file_size,
                        file_id,
                    });
                    agent.finish_app_job(now, outcome);
                    *again = true;
                }
                AgentEvent::CustomJob => {
                    self.emit(BoardEvent::JobReceived {
                        job_id: agent.job_id().to_string(),
                    });
                    self.say("custom job (not afr_ota): handing it to the application");
                    let outcome = (self.opts.app_jobs.0)(AppJob::Custom);
                    agent.finish_app_job(now, outcome);
                    *again = true;
                }
                AgentEvent::ResetRequested => {
                    self.say("reset requested");
                    st.reset = true;
                }
                AgentEvent::StartSelfTest { .. } => {
                    self.say("running the self-test");
                    self.emit(BoardEvent::SelfTestStarted);
                    st.self_test_at = Some(TokioInstant::now() + self.opts.self_test_time);
                }
                AgentEvent::Confirmed { floor } => {
                    self.say(&format!("image confirmed; anti-rollback floor {floor}"));
                    let _ = self.dev.raise_rollback_counter(floor);
                    self.emit(BoardEvent::Confirmed(floor));
                }
                AgentEvent::RevokeBootKeys { mask } => {
                    // The board's part of a revocation (design §5): the boot chain's guard
                    // checks the running image still verifies without the slots, then blows
                    // the missing eFuse bits; the agent asks again at every start.
                    match ferrota_sim::boot_chain::revoke::apply(&mut self.dev, mask) {
                        Ok(0) => {}
                        Ok(blown) => self.say(&format!("boot-key slots revoked: {blown:#06b}")),
                        Err(e) => self.say(&format!("boot-key revocation refused: {e}")),
                    }
                }
                AgentEvent::Rejected => {
                    self.say("image rejected: the previous bank boots next");
                    self.emit(BoardEvent::Rejected);
                }
                AgentEvent::FileChosen {
                    encoding,
                    file_bytes,
                } => {
                    let what = match encoding {
                        ferrota_agent::FileEncoding::Image => "the bank image",
                        ferrota_agent::FileEncoding::Packed => {
                            "the packed image (sparse, compressed)"
                        }
                        ferrota_agent::FileEncoding::Delta => "a delta from the running bank",
                    };
                    self.say(&format!("fetching {what}: {file_bytes} bytes"));
                    self.emit(BoardEvent::FileChosen {
                        encoding,
                        bytes: file_bytes,
                    });
                }
                AgentEvent::DownloadStarted { blocks, resumed } => {
                    self.say(&format!(
                        "download started: {blocks} blocks{}",
                        if resumed > 0 {
                            format!(", {resumed} kept from before the reset")
                        } else {
                            String::new()
                        }
                    ));
                    st.progress.start(blocks, resumed);
                    self.emit(BoardEvent::JobReceived {
                        job_id: agent.job_id().to_string(),
                    });
                    self.emit(BoardEvent::DownloadStarted { blocks, resumed });
                }
                AgentEvent::VersionAccepted { version } => {
                    self.say(&format!(
                        "image version {version} accepted; downloading the rest"
                    ));
                    self.emit(BoardEvent::VersionAccepted(version));
                }
                AgentEvent::Activated => {
                    self.counters.activated_at = Some(std::time::Instant::now());
                    self.counters.download = Some(agent.stats());
                    st.progress.finish();
                    self.say("signature verified; TRIAL recorded in the marker log");
                    self.emit(BoardEvent::Activated);
                }
                AgentEvent::JobSucceeded | AgentEvent::JobFailed { .. } => {
                    // The download ran in earlier power-ons too (before the activation reset,
                    // or a power cut): count it whole, then start afresh for the next job.
                    let s = self.carried.merged(agent.stats());
                    self.carried = ferrota_agent::Stats::default();
                    self.last_job_stats = Some(s);
                    agent.reset_stats();
                    self.say(&format!(
                        "download stats: {} requests, {} blocks, {} duplicates, {} timeouts",
                        s.requests, s.blocks_accepted, s.duplicates, s.timeouts
                    ));
                    self.event_after_stats(e, &mut st.progress);
                }
                _ => self.event_after_stats(e, &mut st.progress),
            }
        }
    }

    fn event_after_stats(&mut self, e: AgentEvent, progress: &mut Progress) {
        {
            match e {
                AgentEvent::JobSucceeded => {
                    self.say("job SUCCEEDED");
                    self.emit(BoardEvent::JobSucceeded);
                }
                AgentEvent::JobFailed { status } => {
                    progress.finish();
                    let mut b = [0u8; 256];
                    let s = status
                        .encode(&mut b)
                        .map(str::to_string)
                        .unwrap_or_else(|_| format!("{status:?}"));
                    match status_reason(&s) {
                        Some(r) => self.say(&format!("job FAILED: {r}; status {s}")),
                        None => self.say(&format!("job FAILED: {s}")),
                    }
                    self.emit(BoardEvent::JobFailed(s));
                }
                AgentEvent::JobCancelled => self.say("job cancelled"),
                AgentEvent::TimestampAccepted { time } => {
                    self.say(&format!("signed timestamp accepted: server time {time}"))
                }
                AgentEvent::ManifestAccepted { sequence, version } => self.say(&format!(
                    "manifest accepted: sequence {sequence}, version {version}"
                )),
                AgentEvent::RootUpdated { version } => {
                    self.say(&format!("trusted root updated to version {version}"))
                }
                AgentEvent::FreshnessLost { expired_at } => self.say(&format!(
                    "WARNING: the last signed timestamp expired (at {expired_at}); firmware jobs \
                     are refused until a fresh one arrives"
                )),
                AgentEvent::PlainSignatureAccepted => self
                    .say("WARNING: accepted on the plain AWS signature only (no signed manifest)"),
                AgentEvent::FlashFault(f) => self.say(&format!("flash fault: {f:?}")),
                other => self.say(&format!("{other:?}")),
            }
        }
    }
}

/// The start-up line that says what the board trusts: under `aws-plain` it is a warning, as
/// every firmware job is then accepted on the code-signing signature alone (design §4.3).
fn trust_line(cfg: &Loaded) -> String {
    let anchor = match (&cfg.cfg.trust.root, cfg.trust.root_version) {
        (Some(p), Some(v)) => format!("anchor {} (root version {v})", p.display()),
        _ => "no anchor".into(),
    };
    match cfg.trust.policy {
        Policy::Require => {
            format!("trust: signed manifest and timestamp required for firmware; {anchor}")
        }
        Policy::AwsPlain => format!(
            "WARNING: trust policy aws-plain: firmware is accepted on the AWS code-signing \
             signature alone (a manifest that comes is still checked; {anchor})"
        ),
    }
}

struct AppState {
    unacked: u32,
    reset: bool,
    self_test_at: Option<TokioInstant>,
    progress: Progress,
    blocks_this_power_on: u32,
}
