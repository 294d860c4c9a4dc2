//! A fleet rollout simulated on virtual time through the real server (issue 16): `N` devices
//! against the real [`Services`] and [`Admin`] (a [`MemoryStore`] or a [`SqliteStore`] in a
//! temporary directory), with the real rollout engine ([`ferrota_server::rollout::step`])
//! deciding who is notified when. `ferrota bench rollout`, `ferrota demo`'s canary step and
//! the lab's tests run it; the server's own tests (`crates/server/tests/rollout.rs`) drive
//! the same services the same way.
//!
//! ## The model
//!
//! * The fleet: things `dev-00000`… in thing group `fleet`, all targets of one OTA update
//!   (`thinggroup/fleet`). A seeded share of them ([`Scenario::failing_fraction`], chosen
//!   exactly: `round(fraction × devices)` devices) fail the release.
//! * A device notified of an execution (`$aws/things/<thing>/jobs/notify-next` carrying an
//!   `execution`, routed per thing by [`Inbox`]) accepts it at once (`IN_PROGRESS`, as the
//!   agent does), "downloads" for a seeded pseudo-random duration
//!   ([`Scenario::download_secs`]) and reports `SUCCEEDED`, or `FAILED` if it is in the
//!   failing share. Reports go through [`ferrota_server::services::on_publish`], what a
//!   session does after the policy check.
//! * Time is virtual: a [`SimClock`] that only moves when the simulation moves it, and a
//!   queue of device reports keyed by virtual time. After every report the engine steps (as
//!   the server's runner does when an execution finishes); when no report is due, the clock
//!   jumps to the next report or to the engine's own next time
//!   ([`ferrota_server::store::RolloutStore::next_rollout_at`]: the next rate minute), and
//!   the engine steps. Nothing sleeps, so 10,000 devices take seconds of real time, and a
//!   run is the same run for the same seed.
//!
//! ## What it measures
//!
//! [`Outcome::engine_cpu`] is the CPU time of the server's code only: the create, every
//! engine step and every device request's handling, each timed with the *process* CPU clock
//! around the call. The process clock, not the thread's, because SQLite runs its statements
//! on its own worker threads (sqlx); the simulation awaits each call, so nothing else runs
//! in the process meanwhile, and the simulation's own work (its queue, parsing what the
//! devices receive) falls between the calls and is not counted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cpu_time::ProcessTime;
use ferrota_server::admin::{Admin, CreateOtaUpdate, NoSessions, OtaFile, RolloutDescription};
use ferrota_server::context::{Clock, Outbound, Services};
use ferrota_server::rollout;
use ferrota_server::services::{Outcome as PublishOutcome, on_publish};
use ferrota_server::store::{
    BlobStore, CertRecord, CertStatus, DirBlobStore, MemoryBlobs, MemoryStore, SharedStore,
    SqliteStore, Thing,
};
use rumqttc::QoS;

pub use ferrota_api::{JobState, RolloutStatus, Wave};
pub use ferrota_server::rollout::{ABORTED_BY_CRITERIA, WAVE_ERROR_THRESHOLD};

/// The thing group every simulated device is in (the update's target).
pub const GROUP: &str = "fleet";

/// The OTA update's id; its job is `AFR_OTA-<id>`, as AWS names it.
pub const OTA_ID: &str = "sim-rollout";

/// Epoch seconds at the simulation's time zero (2026-11-24T00:00:00Z, as the lab's harness).
pub const EPOCH_AT_ZERO: u64 = crate::sim_service::EPOCH_AT_ZERO;

/// `fileType` of the simulated release: a data file (the devices never read it; firmware,
/// type 141, would have to be a bank image).
const DATA_FILE_TYPE: u8 = 7;

/// A well-formed DER ECDSA signature (r = s = 1), base64: `create_ota` checks its encoding;
/// the simulated devices do not verify it.
const SIGNATURE: &str = "MAYCAQECAQE=";

/// Where the server keeps its state during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In memory: fastest; the engine's logic alone.
    Memory,
    /// SQLite in a temporary directory, as `ferrota serve` runs it (WAL, `synchronous=FULL`):
    /// the honest cost of a rollout on the server's real storage.
    Sqlite,
}

/// A rollout to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Devices in the fleet (all targets).
    pub devices: usize,
    /// Share of the devices the release fails on (0.0–1.0).
    pub failing_fraction: f64,
    /// The rollout's waves (`rolloutWaves`); none: one wave of every device.
    pub waves: Vec<Wave>,
    /// `awsJobExecutionsRolloutConfig.maximumPerMinute`; `None`: not limited.
    pub max_per_minute: Option<u64>,
    /// Abort criteria (`failureType`, `thresholdPercentage`, `minNumberOfExecutedThings`).
    pub abort: Vec<(String, f64, u64)>,
    /// How long a device takes from its notification to its report, seconds (uniform in the
    /// inclusive range).
    pub download_secs: (u64, u64),
    /// Seed of the failing share and the durations.
    pub seed: u64,
    /// The server's store.
    pub store: StoreKind,
    /// Virtual seconds after which the simulation gives up (a rollout that never ends).
    pub horizon_secs: u64,
    /// `true`: the engine steps after every report (exact: a gate acts on the very report
    /// that crossed it). `false`: once per virtual second in which reports came, as the
    /// server's runner takes what finished in batches (`rollout::MIN_STEP_INTERVAL`): the
    /// figures of a fleet, where a step per report would cost a recount per device.
    pub step_per_report: bool,
}

impl Scenario {
    /// `devices` devices, `failing_fraction` of them failing, one wave, no rate limit, no
    /// abort, 60–180 s downloads, seed 1, in memory.
    pub fn new(devices: usize, failing_fraction: f64) -> Self {
        Scenario {
            devices,
            failing_fraction,
            waves: Vec::new(),
            max_per_minute: None,
            abort: Vec::new(),
            download_secs: (60, 180),
            seed: 1,
            store: StoreKind::Memory,
            horizon_secs: 30 * 24 * 3600,
            step_per_report: true,
        }
    }

    /// Adds a wave of `percentage` % (cumulative) with an error threshold in percent of the
    /// wave's things.
    pub fn wave_percent(mut self, name: &str, percentage: f64, error_pct: Option<f64>) -> Self {
        self.waves.push(Wave {
            name: Some(name.into()),
            percentage: Some(percentage),
            error_threshold_percentage: error_pct,
            ..Wave::default()
        });
        self
    }

    /// Adds a wave.
    pub fn wave(mut self, w: Wave) -> Self {
        self.waves.push(w);
        self
    }

    /// Sets `maximumPerMinute`.
    pub fn max_per_minute(mut self, n: u64) -> Self {
        self.max_per_minute = Some(n);
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the store.
    pub fn store(mut self, store: StoreKind) -> Self {
        self.store = store;
        self
    }

    /// The OTA request this scenario creates (file `sha` stored already).
    pub fn request(&self, sha: &str) -> CreateOtaUpdate {
        let mut req = CreateOtaUpdate::new(OTA_ID)
            .description("simulated rollout")
            .target(format!("thinggroup/{GROUP}"))
            .file(
                OtaFile::new("/ota/release.bin", sha.to_string(), SIGNATURE)
                    .file_type(Some(DATA_FILE_TYPE)),
            );
        if let Some(n) = self.max_per_minute {
            req = req.max_per_minute(n);
        }
        for (t, pct, min) in &self.abort {
            req = req.abort_when(t, *pct, *min);
        }
        for w in &self.waves {
            req = req.wave(w.clone());
        }
        req
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Devices notified of an execution (they received the image).
    pub notified: u64,
    /// Of them, devices notified after the rollout stopped (must be 0).
    pub notified_after_stop: u64,
    /// Devices that reported FAILED.
    pub failed: u64,
    /// Devices that reported SUCCEEDED.
    pub succeeded: u64,
    /// Devices that had reported FAILED when the rollout stopped (the gate's count).
    pub failed_at_stop: u64,
    /// Devices notified whose report had not come when the rollout stopped (in flight).
    pub in_flight_at_stop: u64,
    /// Virtual seconds from the create to the first FAILED report.
    pub first_failure_at: Option<u64>,
    /// Virtual seconds from the create to the rollout's stop (STOPPED).
    pub stopped_at: Option<u64>,
    /// Virtual seconds from the create to the job's completion (every execution terminal).
    pub completed_at: Option<u64>,
    /// Virtual seconds the simulation ran.
    pub ended_at: u64,
    /// The rollout's status at the end.
    pub status: RolloutStatus,
    /// Its `reasonCode`.
    pub reason_code: Option<String>,
    /// The job's state at the end.
    pub job_state: Option<JobState>,
    /// The engine's view, wave by wave (DescribeRollout).
    pub rollout: RolloutDescription,
    /// Engine steps run.
    pub steps: u64,
    /// CPU time in the server's code (create, steps, device requests); see the module docs.
    pub engine_cpu: Duration,
    /// Of it, in the engine's steps alone.
    pub step_cpu: Duration,
    /// Real time of the whole run (setup included).
    pub wall: Duration,
    /// Real time of the rollout itself (from the create to the end).
    pub rollout_wall: Duration,
}

impl Outcome {
    /// Engine CPU per notified device (the whole server-side cost of delivering one
    /// execution: release, the device's two updates, the gates they trigger).
    pub fn cpu_per_notified(&self) -> Option<Duration> {
        (self.notified > 0).then(|| self.engine_cpu / self.notified as u32)
    }

    /// Virtual seconds from the first failure to the stop.
    pub fn failure_to_stop(&self) -> Option<u64> {
        Some(self.stopped_at?.saturating_sub(self.first_failure_at?))
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The server refused or failed a call.
    #[error("server: {0}")]
    Server(String),
    /// The temporary directory or a file could not be made.
    #[error("setup: {0}")]
    Setup(String),
    /// The scenario is not one the simulation can run.
    #[error("scenario: {0}")]
    Scenario(String),
}

fn server_err(e: impl std::fmt::Display) -> SimError {
    SimError::Server(e.to_string())
}

/// Virtual time for the services: [`EPOCH_AT_ZERO`] plus the seconds the simulation moved.
#[derive(Debug, Default)]
pub struct SimClock(AtomicU64);

impl SimClock {
    /// Virtual seconds since time zero.
    pub fn secs(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves to `secs` (never back).
    pub fn set(&self, secs: u64) {
        self.0.fetch_max(secs, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now(&self) -> u64 {
        EPOCH_AT_ZERO + self.secs()
    }
}

/// The fleet's side of the [`Outbound`]: keeps the `notify-next` messages the services send,
/// per thing (the topic names it), for the simulation to hand to its devices; every other
/// message (replies, `notify`) is one the simulated devices ignore, and is dropped.
#[derive(Default)]
pub struct Inbox(Mutex<Vec<(String, Bytes)>>);

impl Inbox {
    fn take(&self) -> Vec<(String, Bytes)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Outbound for Inbox {
    fn publish(&self, topic: &str, payload: Bytes, _qos: QoS) {
        let thing = topic
            .strip_prefix("$aws/things/")
            .and_then(|r| r.strip_suffix("/jobs/notify-next"));
        if let Some(thing) = thing {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((thing.to_string(), payload));
        }
    }

    fn deliver_to(&self, _client_id: &str, _topic: &str, _payload: Bytes, _qos: QoS) {}
}

/// A device's report due at a virtual time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Report {
    at: u64,
    seq: u64,
    thing: u32,
    execution_number: u64,
    fails: bool,
}

/// Runs `s` to its end (the rollout stopped or finished and every notified device reported)
/// on a current-thread runtime of its own, so that all the server's work runs on this thread
/// (and SQLite's workers) while it is timed.
pub fn run(s: &Scenario) -> Result<Outcome, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SimError::Setup(e.to_string()))?;
    rt.block_on(run_async(s))
}

/// [`run`] inside a runtime the caller provides.
pub async fn run_async(s: &Scenario) -> Result<Outcome, SimError> {
    let wall = Instant::now();
    if s.devices == 0 || s.devices > 1_000_000 {
        return Err(SimError::Scenario(format!(
            "devices {} is outside 1..=1000000",
            s.devices
        )));
    }
    if !(0.0..=1.0).contains(&s.failing_fraction) {
        return Err(SimError::Scenario(format!(
            "failing fraction {} is outside 0..=1",
            s.failing_fraction
        )));
    }
    if s.download_secs.0 > s.download_secs.1 {
        return Err(SimError::Scenario("download range is empty".into()));
    }
    let dir = tempfile::tempdir().map_err(|e| SimError::Setup(e.to_string()))?;
    let (store, blobs, sqlite): (SharedStore, Arc<dyn BlobStore>, Option<Arc<SqliteStore>>) =
        match s.store {
            StoreKind::Memory => (
                Arc::new(MemoryStore::new()),
                Arc::new(MemoryBlobs::default()),
                None,
            ),
            StoreKind::Sqlite => {
                let db = Arc::new(
                    SqliteStore::open(&dir.path().join("ferrota.db"))
                        .await
                        .map_err(server_err)?,
                );
                let blobs = DirBlobStore::new(dir.path().join("files")).map_err(server_err)?;
                (db.clone(), Arc::new(blobs), Some(db))
            }
        };
    let clock = Arc::new(SimClock::default());
    let inbox = Arc::new(Inbox::default());
    let services = Arc::new(Services::new(
        store.clone(),
        blobs,
        clock.clone(),
        inbox.clone(),
    ));
    let admin = Admin {
        services: services.clone(),
        sessions: Arc::new(NoSessions),
        ca: None,
        endpoint: "localhost".into(),
        port: 8883,
    };

    // The fleet, provisioned in one transaction (placeholder certificates: the simulated
    // devices never connect over TLS).
    let names: Vec<String> = (0..s.devices).map(|i| format!("dev-{i:05}")).collect();
    let items: Vec<(Thing, CertRecord)> = names
        .iter()
        .map(|n| {
            (
                Thing {
                    name: n.clone(),
                    groups: vec![GROUP.into()],
                    created_at: clock.now(),
                },
                CertRecord {
                    id: format!("sim-{n}"),
                    thing: n.clone(),
                    serial: n.clone(),
                    pem: String::new(),
                    status: CertStatus::Active,
                    created_at: clock.now(),
                    revoked_at: None,
                },
            )
        })
        .collect();
    store
        .create_things_with_certificates(&items)
        .await
        .map_err(server_err)?;
    let index: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();

    // The failing share: exactly round(fraction × devices), a seeded choice.
    let mut rng = fastrand::Rng::with_seed(s.seed);
    let mut order: Vec<u32> = (0..s.devices as u32).collect();
    rng.shuffle(&mut order);
    let n_failing = (s.failing_fraction * s.devices as f64).round() as usize;
    let failing: HashSet<u32> = order[..n_failing.min(s.devices)].iter().copied().collect();

    let sha = admin
        .put_file(b"simulated release")
        .await
        .map_err(server_err)?;
    let req = s.request(&sha);
    let job_id = format!("AFR_OTA-{OTA_ID}");

    let mut cpu = Duration::ZERO;
    let mut step_cpu = Duration::ZERO;
    let rollout_wall = Instant::now();
    let t = ProcessTime::now();
    admin.create_ota(&req).await.map_err(server_err)?;
    cpu += t.elapsed();

    let mut queue: BinaryHeap<Reverse<Report>> = BinaryHeap::new();
    let mut seen: HashSet<(u32, u64)> = HashSet::new();
    let mut notified_things: HashSet<u32> = HashSet::new();
    let mut out = Outcome {
        notified: 0,
        notified_after_stop: 0,
        failed: 0,
        failed_at_stop: 0,
        succeeded: 0,
        in_flight_at_stop: 0,
        first_failure_at: None,
        stopped_at: None,
        completed_at: None,
        ended_at: 0,
        status: RolloutStatus::Running,
        reason_code: None,
        job_state: None,
        rollout: admin.describe_rollout(OTA_ID).await.map_err(server_err)?,
        steps: 0,
        engine_cpu: Duration::ZERO,
        step_cpu: Duration::ZERO,
        wall: Duration::ZERO,
        rollout_wall: Duration::ZERO,
    };
    let mut seq = 0u64;
    let mut idle_steps = 0u32;
    loop {
        let now = clock.secs();
        // Deliver what the services sent: a new execution starts a download.
        for (thing, payload) in inbox.take() {
            let Some(&i) = index.get(thing.as_str()) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&payload) else {
                return Err(SimError::Server(format!(
                    "notify-next to {thing} is not JSON"
                )));
            };
            let Some(e) = v.get("execution") else {
                continue;
            };
            if e.get("jobId").and_then(|j| j.as_str()) != Some(job_id.as_str()) {
                continue;
            }
            let n = e
                .get("executionNumber")
                .and_then(|n| n.as_u64())
                .unwrap_or(1);
            if !seen.insert((i, n)) {
                continue;
            }
            if notified_things.insert(i) {
                out.notified += 1;
                if out.stopped_at.is_some() {
                    out.notified_after_stop += 1;
                }
            }
            // The agent accepts the job at once.
            let t = ProcessTime::now();
            publish(&services, &thing, &job_id, "IN_PROGRESS").await?;
            cpu += t.elapsed();
            let (lo, hi) = s.download_secs;
            seq += 1;
            queue.push(Reverse(Report {
                at: now + rng.u64(lo..=hi),
                seq,
                thing: i,
                execution_number: n,
                fails: failing.contains(&i),
            }));
        }
        // The rollout's state after what just happened.
        if out.stopped_at.is_none() || out.completed_at.is_none() {
            let r = store.rollout(&job_id).await.map_err(server_err)?;
            if out.stopped_at.is_none()
                && r.as_ref()
                    .is_some_and(|r| r.status == RolloutStatus::Stopped)
            {
                out.stopped_at = Some(now);
                out.in_flight_at_stop = queue.len() as u64;
                out.failed_at_stop = out.failed;
            }
            if out.completed_at.is_none() {
                let j = store.job(&job_id).await.map_err(server_err)?;
                if j.is_some_and(|j| matches!(j.state, JobState::Completed | JobState::Canceled))
                    && queue.is_empty()
                {
                    out.completed_at = Some(now);
                }
            }
        }
        // The next thing to happen: a report due now, else the next report or engine time.
        if let Some(Reverse(r)) = queue.peek()
            && r.at <= now
        {
            let Some(Reverse(r)) = queue.pop() else {
                break;
            };
            let thing = &names[r.thing as usize];
            let status = if r.fails { "FAILED" } else { "SUCCEEDED" };
            if r.fails {
                out.failed += 1;
                out.first_failure_at.get_or_insert(now);
            } else {
                out.succeeded += 1;
            }
            let _ = r.execution_number;
            let t = ProcessTime::now();
            publish(&services, thing, &job_id, status).await?;
            cpu += t.elapsed();
            if !s.step_per_report && queue.peek().is_some_and(|Reverse(next)| next.at <= now) {
                // More reports in this second: the runner takes them as one batch.
                continue;
            }
            let t = ProcessTime::now();
            rollout::step(&services).await.map_err(server_err)?;
            let d = t.elapsed();
            cpu += d;
            step_cpu += d;
            out.steps += 1;
            idle_steps = 0;
            continue;
        }
        let engine_at = store
            .next_rollout_at()
            .await
            .map_err(server_err)?
            .map(|t| t.saturating_sub(EPOCH_AT_ZERO));
        let report_at = queue.peek().map(|Reverse(r)| r.at);
        let next = match (engine_at, report_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        if next > s.horizon_secs {
            break;
        }
        if engine_at.is_some_and(|a| a <= now) {
            // The engine wants to go on now (a full release batch): bounded, so an engine
            // that keeps asking for "now" without moving cannot hang the simulation.
            idle_steps += 1;
            if idle_steps > 10_000 {
                return Err(SimError::Server(
                    "the engine asks to step again at the same time without end".into(),
                ));
            }
        } else {
            clock.set(next);
        }
        let t = ProcessTime::now();
        rollout::step(&services).await.map_err(server_err)?;
        let d = t.elapsed();
        cpu += d;
        step_cpu += d;
        out.steps += 1;
    }
    out.rollout_wall = rollout_wall.elapsed();
    out.ended_at = clock.secs();
    out.rollout = admin.describe_rollout(OTA_ID).await.map_err(server_err)?;
    out.status = out.rollout.status;
    out.reason_code.clone_from(&out.rollout.reason_code);
    out.job_state = admin
        .describe_ota_page(
            OTA_ID,
            &ferrota_server::admin::PageRequest {
                max_results: Some(1),
                ..Default::default()
            },
        )
        .await
        .map_err(server_err)?
        .job_state;
    out.engine_cpu = cpu;
    out.step_cpu = step_cpu;
    if let Some(db) = sqlite {
        db.close().await;
    }
    out.wall = wall.elapsed();
    Ok(out)
}

/// The device `thing` publishes its execution's new status, as a session hands it to the
/// services.
async fn publish(
    services: &Services,
    thing: &str,
    job: &str,
    status: &str,
) -> Result<(), SimError> {
    let topic = format!("$aws/things/{thing}/jobs/{job}/update");
    let body = format!(r#"{{"status":"{status}"}}"#);
    match on_publish(services, thing, thing, &topic, body.as_bytes()).await {
        PublishOutcome::Handled => Ok(()),
        o => Err(SimError::Server(format!(
            "{thing}'s update on {topic}: {o:?}"
        ))),
    }
}
