//! Scenario `fleet`: N simulated devices in this process, over mutual TLS, against one
//! `ferrota serve` process, all updated by one OTA update created while they sit connected
//! and idle.
//!
//! One run per fleet size (1k, 5k, 10k; `--short`: 20 devices, a 64 KB file), each against a
//! fresh server process on the same data directory:
//!
//! 1. Provisioning, once for the largest fleet, before any server runs:
//!    [`ferrota_server::admin::Admin::create_things`] issues every certificate in this process
//!    and stores all things in one SQLite transaction (two commits per thing through the CLI
//!    or the API would cost 20,000 fsyncs at 10k).
//! 2. The server starts; the 256 KB file is uploaded (`POST /api/files`); RSS is sampled
//!    (*before*).
//! 3. The devices connect, at most [`CONNECTS_IN_FLIGHT`] handshakes at a time, subscribe and
//!    ask for their next job; once all have their answer and 2 s passed, RSS is sampled again
//!    (*idle*). Bytes per connected idle device = (idle − before) ÷ N.
//! 4. `POST /api/ota-updates` targets all N things; the clock starts just before it. A device
//!    is done when the server acknowledges its SUCCEEDED (committed first). Updates per minute
//!    and MB/s use the time the last device finished; p50/p99 are over the devices.
//! 5. Server peak RSS is `VmHWM` at the end; RSS is also sampled every 250 ms during the run.
//!
//! The devices are [`device`]: hash mode, the real wire protocol through `ferrota-proto`.
//!
//! What the profile showed (perf on the server process, 3,000 devices, release) and what was
//! changed in `ferrota-server`:
//! * Most of the server's CPU went to decoding SQLite rows (sqlx, `executions_of_job`): after
//!   every terminal update the job-complete check read all N executions, so the rollout was
//!   O(N²). `Store::job_has_pending` (an `EXISTS` over a partial index) replaced it: 3,000
//!   devices 48.5 s → 6.7 s; 10,000 devices 442 s → 23 s (1,357 → 25,805 updates a minute).
//! * Each connection started with two 16 KB buffers; they start at 2 KB and grow on demand:
//!   28.4 → 22.9 KB of server RSS per idle device at 10,000.
//! * Provisioning: `Admin::create_things` issues certificates on every core and stores the fleet
//!   in one transaction: 10,000 things in about 1 s.
//!
//! Open files: the server and this process each need about N descriptors; the soft limit is
//! raised to the hard limit first, and a fleet that cannot fit is refused up front.

pub mod device;
pub mod server;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrota_api::{CreateOtaUpdate, OtaFile};
use ferrota_image::ota::{MAX_P256_BASE64, OtaSignature, sign_file};
use ferrota_server::config::Config;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};
use device::{Identity, Mode, Outcome, Shared};
use server::{Running, ServerKind};

/// TLS handshakes in flight while the fleet connects (they cost CPU on both sides).
pub const CONNECTS_IN_FLIGHT: usize = 64;
/// Open files this process and the server need beside one per device.
pub const FD_HEADROOM: u64 = 256;
/// Devices connected at once the issue asks for.
pub const TARGET_CONNECTED: usize = 10_000;
/// Device updates a minute (AWS's maximum rollout rate).
pub const TARGET_PER_MINUTE: f64 = 1000.0;
/// Server memory per connected idle device, bytes.
pub const TARGET_IDLE_BYTES: f64 = 64.0 * 1024.0;

/// What one run measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Fleet sizes, one server run each.
    pub sizes: Vec<usize>,
    /// Bytes of the update file.
    pub file_size: usize,
    /// How the server runs.
    pub server: ServerKind,
    /// Sign the file with another key than the devices pin (the FAILED path).
    pub wrong_signature: bool,
}

/// One fleet size's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tier {
    /// Devices.
    pub devices: usize,
    /// Seconds until all were connected and idle.
    pub connect_secs: f64,
    /// Server RSS before the devices connected, bytes.
    pub rss_before: u64,
    /// Server RSS with all connected and idle, bytes.
    pub rss_idle: u64,
    /// (idle − before) ÷ devices.
    pub idle_bytes_per_device: f64,
    /// Highest RSS sampled during the rollout, bytes.
    pub rss_max_sampled: u64,
    /// `VmHWM` at the end, bytes.
    pub peak_rss: u64,
    /// Devices that reported SUCCEEDED.
    pub succeeded: usize,
    /// Devices that reported FAILED.
    pub failed: usize,
    /// Devices that could not finish, with the first error.
    pub errors: usize,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Devices whose SHA-256 of the received file matched the file's.
    pub hash_matched: usize,
    /// Seconds from the OTA update's creation to the last device done.
    pub rollout_secs: f64,
    /// Completion times, seconds: median.
    pub p50_secs: f64,
    /// 99th percentile.
    pub p99_secs: f64,
    /// Device updates completed per minute (all devices ÷ time of the last).
    pub per_minute: f64,
    /// File bytes delivered per second, MB/s.
    pub mb_per_s: f64,
}

/// Runs the scenario.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let fail = |m: String| BenchError::new(Scenario::Fleet, m);
    let exe = &opts.ferrota_exe;
    require_exe(exe, "it runs `ferrota serve`").map_err(fail)?;
    let sizes = match std::env::var(SIZES_ENV) {
        Ok(v) => parse_sizes(&v).map_err(fail)?,
        Err(_) if opts.short => vec![20],
        Err(_) => vec![1000, 5000, 10_000],
    };
    let plan = Plan {
        sizes,
        file_size: if opts.short { 64 * 1024 } else { 256 * 1024 },
        server: ServerKind::Process(exe.clone()),
        wrong_signature: false,
    };
    let tiers = run_plan(&plan, opts).map_err(fail)?;
    Ok(report(&plan, &tiers, opts.short))
}

/// Environment variable that replaces the fleet sizes, e.g. `2000,8000` (profiling one size
/// without the others; the table says which sizes ran).
pub const SIZES_ENV: &str = "FERROTA_BENCH_FLEET_SIZES";

/// Parses [`SIZES_ENV`]: comma-separated device counts, each at least 1.
pub fn parse_sizes(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|s| match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{SIZES_ENV}={v:?}: use device counts like 1000,5000"
            )),
        })
        .collect()
}

/// Raises the open-file limit and checks that `devices` fit (here and in the server, which
/// inherits the limit).
pub fn check_open_files(devices: usize) -> Result<u64, String> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("raising the open-file limit: {e}"))?;
    fd_budget(devices, limit)?;
    Ok(limit)
}

/// Whether `devices` connections fit under an open-file `limit` (each side needs one file per
/// device plus [`FD_HEADROOM`]).
pub fn fd_budget(devices: usize, limit: u64) -> Result<(), String> {
    let need = devices as u64 + FD_HEADROOM;
    if need > limit {
        return Err(format!(
            "{devices} devices need {need} open files in this process and as many in the \
             server, but the limit is {limit} (`ulimit -Hn`); run fewer devices or raise the \
             hard limit"
        ));
    }
    Ok(())
}

/// Deterministic file content (xorshift), so every run moves the same bytes.
pub(crate) fn file_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs every fleet size of `plan`; the figures per size.
pub fn run_plan(plan: &Plan, opts: &Options) -> Result<Vec<Tier>, String> {
    let max = plan.sizes.iter().copied().max().unwrap_or(0);
    check_open_files(max)?;
    ferrota_server::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(run_async(plan, opts, max))
}

/// A provisioned fleet: its data directory and server configuration, the operator token, each
/// thing's name with its certificate and key (DER), and the fleet CA.
pub(crate) struct Fleet {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: std::path::PathBuf,
    pub(crate) token: String,
    pub(crate) ids: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub(crate) roots: Arc<rustls::RootCertStore>,
}

/// That the `ferrota` executable a scenario starts servers from exists (`why`: what it runs).
pub(crate) fn require_exe(exe: &std::path::Path, why: &str) -> Result<(), String> {
    if exe.is_file() {
        return Ok(());
    }
    Err(format!(
        "the ferrota executable {} does not exist ({why})",
        exe.display()
    ))
}

/// The fleet's thing names: `fleet-00000`, `fleet-00001`, …
pub(crate) fn thing_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("fleet-{i:05}")).collect()
}

/// Creates a data directory and `max` things (`fleet-00000`, …) with their certificates.
pub(crate) async fn provision(max: usize, opts: &Options) -> Result<Fleet, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let data = dir.path().join("data");
    let cfg = Config {
        data_dir: data.clone(),
        max_connections: max + 64,
        ..Config::default()
    };
    // The server reads the same settings from a file.
    let config = dir.path().join("ferrota.toml");
    // Every device connects from 127.0.0.1, [`CONNECTS_IN_FLIGHT`] handshakes at a time: the
    // server's per-address bound on pending handshakes (32 by default, for devices behind one
    // NAT) would evict them, so it is raised here.
    let text = format!(
        "data_dir = {:?}\nmax_connections = {}\n[limits]\nmax_pending_per_address = {}\n",
        data.display().to_string(),
        cfg.max_connections,
        4 * CONNECTS_IN_FLIGHT
    );
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    ferrota_server::server::init_data_dir(&cfg, &[])
        .await
        .map_err(|e| e.to_string())?;
    let token = ferrota_server::server::operator_token(&cfg).map_err(|e| e.to_string())?;
    let (ids, roots) = issue(&cfg, thing_names(max), opts).await?;
    Ok(Fleet {
        dir,
        config,
        token,
        ids,
        roots,
    })
}

/// Creates `names` as things in the store of `cfg` (certificates issued on every core, one
/// transaction): each thing's name, certificate and key (DER), and the fleet CA as the roots
/// a device trusts.
pub(crate) async fn issue(
    cfg: &Config,
    names: Vec<String>,
    opts: &Options,
) -> Result<(Vec<(String, Vec<u8>, Vec<u8>)>, Arc<rustls::RootCertStore>), String> {
    let max = names.len();
    let t = std::time::Instant::now();
    let admin = ferrota_server::server::open_admin(cfg, 0)
        .await
        .map_err(|e| e.to_string())?;
    let issued = admin
        .create_things(&names, &[])
        .await
        .map_err(|e| format!("provisioning: {e}"))?;
    opts.say(format!(
        "fleet: provisioned {max} things (certificates + one transaction) in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let ca_pem = admin
        .ca
        .as_ref()
        .map(|c| c.cert_pem().to_string())
        .ok_or("no CA")?;
    drop(admin);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| format!("CA PEM: {e}"))?)
            .map_err(|e| format!("CA: {e}"))?;
    }
    let mut ids = Vec::with_capacity(max);
    for (name, i) in names.into_iter().zip(issued) {
        let cert = CertificateDer::from_pem_slice(i.cert_pem.as_bytes())
            .map_err(|e| format!("{name}: certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes())
            .map_err(|e| format!("{name}: key: {e}"))?;
        ids.push((name, cert.to_vec(), key.secret_der().to_vec()));
    }
    Ok((ids, Arc::new(roots)))
}

async fn run_async(plan: &Plan, opts: &Options, max: usize) -> Result<Vec<Tier>, String> {
    let fleet = provision(max, opts).await?;
    let file = file_bytes(plan.file_size);
    let expected: [u8; 32] = Sha256::digest(&file).into();
    let signer = ferrota_sim::keys::fleet_code_signing_key();
    let pinned = *signer.verifying_key();
    let sig = if plan.wrong_signature {
        let other = ferrota_sim::keys::unpinned_code_signing_key();
        sign_file(&other, &file)
    } else {
        sign_file(&signer, &file)
    }
    .map_err(|e| format!("signing: {e}"))?;
    let mut b64 = [0u8; MAX_P256_BASE64];
    let sig_text = OtaSignature::to_base64(&sig, &mut b64).to_string();
    let mut tiers = Vec::new();
    for (k, &n) in plan.sizes.iter().enumerate() {
        let tier = run_tier(
            plan, opts, &fleet, n, k, &file, &expected, &sig_text, pinned,
        )
        .await?;
        // A benchmark of a fleet that did not update is no benchmark: fail, naming why.
        if !plan.wrong_signature && (tier.succeeded != n || tier.hash_matched != n) {
            return Err(format!(
                "{n} devices: only {} succeeded and {} received the right bytes ({} failed, {} \
                 errors; first error: {})",
                tier.succeeded,
                tier.hash_matched,
                tier.failed,
                tier.errors,
                tier.first_error.as_deref().unwrap_or("none")
            ));
        }
        tiers.push(tier);
    }
    Ok(tiers)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_arguments)]
async fn run_tier(
    plan: &Plan,
    opts: &Options,
    fleet: &Fleet,
    n: usize,
    k: usize,
    file: &[u8],
    expected: &[u8; 32],
    sig_text: &str,
    pinned: ferrota_image::p256::ecdsa::VerifyingKey,
) -> Result<Tier, String> {
    let log = fleet.dir.path().join(format!("serve-{k}.log"));
    let srv = Running::start(&plan.server, &fleet.config, &log)?;
    let with_log = |e: String| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        if tail.is_empty() {
            e
        } else {
            format!("{e} (server log, last lines: {})", tail.join(" | "))
        }
    };
    let api = ferrota_api::Client::new(format!("http://{}", srv.http), fleet.token.clone());
    let upload = file.to_vec();
    blocking(api.clone(), move |c| upload_once_more(c, &upload))
        .await
        .map_err(|e| {
            let alive = if server::proc_mem(srv.pid).is_ok() {
                "the server still runs"
            } else {
                "the server is gone"
            };
            with_log(format!("upload: {e} ({alive})"))
        })?;
    let file_sha = hex_of(expected);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server::proc_mem(srv.pid)?;

    // Connect the fleet.
    let shared = Arc::new(Shared::new(
        vec![srv.mqtt],
        fleet.roots.clone(),
        pinned,
        Mode::Direct,
    ));
    opts.say(format!("fleet: {n} devices connecting"));
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, (name, cert, key)) in fleet.ids.iter().take(n).enumerate() {
        while i >= shared.ready.load(Ordering::Acquire) + CONNECTS_IN_FLIGHT {
            if let Some(e) = early_end(&mut tasks).await {
                return Err(with_log(e));
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(100), shared.ready_changed.notified())
                    .await;
        }
        let id = Identity {
            thing: name.clone(),
            cert: CertificateDer::from(cert.clone()),
            key: PrivateKeyDer::try_from(key.clone()).map_err(|e| format!("{name}: {e}"))?,
            index: i,
        };
        tasks.push(tokio::spawn(device::run(shared.clone(), id)));
    }
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while shared.ready.load(Ordering::Acquire) < n {
        if let Some(e) = early_end(&mut tasks).await {
            return Err(with_log(e));
        }
        if Instant::now() > connect_deadline {
            return Err(with_log(format!(
                "only {} of {n} devices connected in time",
                shared.ready.load(Ordering::Acquire)
            )));
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), shared.ready_changed.notified()).await;
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server::proc_mem(srv.pid)?;
    let per_device = (idle.rss as f64 - before.rss as f64) / n as f64;
    opts.say(format!(
        "fleet: {n} connected in {connect_secs:.1} s; server RSS {:.1} → {:.1} MB ({:.1} KB per idle device)",
        before.rss as f64 / 1e6,
        idle.rss as f64 / 1e6,
        per_device / 1024.0
    ));

    // Sample RSS during the rollout.
    let pid = srv.pid;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut max = 0u64;
        loop {
            if let Ok(m) = server::proc_mem(pid) {
                max = max.max(m.rss);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = &mut stop_rx => break max,
            }
        }
    });

    // A data file (fileType 7), not firmware (141): the server accepts a firmware file only
    // if it is a bank image, and these devices are protocol clients that check the stream's
    // SHA-256 and the OTA signature, not bank images; the server's path (job, stream, blocks,
    // status updates) is the same for every file type.
    let mut req = CreateOtaUpdate::new(format!("fleet-{k}-{n}")).file(
        OtaFile::new("/ota/bank.bin", file_sha, sig_text)
            .file_type(Some(7))
            .certificate_name("signer.crt"),
    );
    for (name, _, _) in fleet.ids.iter().take(n) {
        req = req.thing(name);
    }
    opts.say(format!("fleet: rolling out to {n} devices"));
    let t0 = Instant::now();
    blocking(api, move |c| c.create_ota_update(&req))
        .await
        .map_err(|e| with_log(format!("create OTA update: {e}")))?;
    let mut results = Vec::with_capacity(n);
    let finish_deadline = t0 + Duration::from_secs(600);
    for t in tasks {
        match tokio::time::timeout_at(finish_deadline, t).await {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => return Err(format!("a device task failed: {e}")),
            Err(_) => return Err(with_log("devices not done after 600 s".into())),
        }
    }
    let _ = stop_tx.send(());
    let rss_max_sampled = sampler.await.unwrap_or(0);
    let end = server::proc_mem(srv.pid)?;
    srv.stop();

    let mut times: Vec<f64> = results
        .iter()
        .filter_map(|r| r.done_at.map(|t| (t - t0).as_secs_f64()))
        .collect();
    times.sort_by(f64::total_cmp);
    let rollout = times.last().copied().unwrap_or(0.0);
    let count = |f: &dyn Fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    let first_error = results.iter().find_map(|r| match &r.outcome {
        Outcome::Error(e) => Some(format!("{}: {e}", r.thing)),
        _ => None,
    });
    let tier = Tier {
        devices: n,
        connect_secs,
        rss_before: before.rss,
        rss_idle: idle.rss,
        idle_bytes_per_device: per_device,
        rss_max_sampled,
        peak_rss: end.hwm,
        succeeded: count(&|o| *o == Outcome::Succeeded),
        failed: count(&|o| matches!(o, Outcome::Failed(_))),
        errors: count(&|o| matches!(o, Outcome::Error(_))),
        first_error,
        hash_matched: results
            .iter()
            .filter(|r| r.digest.as_ref() == Some(expected))
            .count(),
        rollout_secs: rollout,
        p50_secs: percentile(&times, 0.50),
        p99_secs: percentile(&times, 0.99),
        per_minute: n as f64 / rollout.max(1e-9) * 60.0,
        mb_per_s: (n * file.len()) as f64 / rollout.max(1e-9) / 1e6,
    };
    opts.say(format!(
        "fleet: {n} devices: {} succeeded, {} failed, {} errors; last done at {rollout:.1} s",
        tier.succeeded, tier.failed, tier.errors
    ));
    Ok(tier)
}

/// Why the first device that ended before the rollout ended (it could not connect, or the
/// server refused it), taken out of `tasks`.
pub(crate) async fn early_end(
    tasks: &mut Vec<tokio::task::JoinHandle<device::DeviceResult>>,
) -> Option<String> {
    let i = tasks.iter().position(|t| t.is_finished())?;
    let why = match tasks.swap_remove(i).await {
        Ok(r) => match r.outcome {
            Outcome::Error(e) | Outcome::Failed(e) => format!("{}: {e}", r.thing),
            Outcome::Succeeded => format!("{}: reported SUCCEEDED with no job", r.thing),
        },
        Err(e) => format!("a device task ended abnormally: {e}"),
    };
    Some(format!("a device ended before the rollout: {why}"))
}

pub(crate) fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn report(plan: &Plan, tiers: &[Tier], short: bool) -> Report {
    let mut table = Table::new([
        "devices",
        "connected in s",
        "server KB per idle device",
        "updates/min",
        "MB/s",
        "p50 s",
        "p99 s",
        "server peak RSS MB",
        "succeeded (hash ok)",
    ]);
    for t in tiers {
        table.row([
            t.devices.to_string(),
            format!("{:.1}", t.connect_secs),
            format!("{:.1}", t.idle_bytes_per_device / 1024.0),
            format!("{:.0}", t.per_minute),
            format!("{:.1}", t.mb_per_s),
            format!("{:.2}", t.p50_secs),
            format!("{:.2}", t.p99_secs),
            format!("{:.0}", t.peak_rss as f64 / 1e6),
            format!("{} ({})", t.succeeded, t.hash_matched),
        ]);
    }
    let all_ok = |t: &Tier| t.succeeded == t.devices && t.hash_matched == t.devices;
    let mut targets = Vec::new();
    let connected = tiers
        .iter()
        .filter(|t| all_ok(t))
        .map(|t| t.devices)
        .max()
        .unwrap_or(0);
    targets.push(Target::new(
        "devices connected at once (and all updated)",
        format!("≥ {TARGET_CONNECTED}"),
        connected.to_string(),
        connected >= TARGET_CONNECTED,
        short,
    ));
    if let Some(t) = tiers.iter().max_by_key(|t| t.devices) {
        targets.push(Target::new(
            format!("device updates a minute ({} devices)", t.devices),
            format!("≥ {TARGET_PER_MINUTE:.0}"),
            format!("{:.0}", t.per_minute),
            t.per_minute >= TARGET_PER_MINUTE && all_ok(t),
            short,
        ));
        targets.push(Target::new(
            format!(
                "server memory per connected idle device ({} devices)",
                t.devices
            ),
            format!("≤ {:.0} KB", TARGET_IDLE_BYTES / 1024.0),
            format!("{:.1} KB", t.idle_bytes_per_device / 1024.0),
            t.idle_bytes_per_device <= TARGET_IDLE_BYTES,
            short,
        ));
    }
    let mut notes = vec![
        format!(
            "Each device updates a {} KB file in hash mode: SHA-256 of the blocks in order and \
             the sig-sha256-ecdsa check before SUCCEEDED; 4 KB blocks, 32 a request, 4 requests \
             in flight (the agent's adaptive window is 3 requests at a 2 ms RTT), MQTT 3.1.1 \
             over mutual TLS (rustls, ring).",
            plan.file_size / 1024
        ),
        "One `ferrota serve` process per fleet size; the devices run in the bench process \
         (2 cores shared by both)."
            .into(),
        "Idle memory: (server VmRSS with all devices connected and idle − VmRSS before they \
         connected) ÷ devices. Peak: VmHWM at the end of the rollout."
            .into(),
        "Rollout time: from the OTA update's creation (HTTP API) to the server's PUBACK of the \
         last SUCCEEDED; updates/min and MB/s use it, p50/p99 are per device."
            .into(),
    ];
    if let Some(e) = tiers.iter().find_map(|t| t.first_error.clone()) {
        notes.push(format!("First device error: {e}"));
    }
    Report {
        scenario: Scenario::Fleet,
        title: "simulated devices over mutual TLS against one server process".into(),
        short,
        table,
        targets,
        notes,
        data: json!({ "file_size": plan.file_size, "tiers": tiers }),
    }
}

/// Runs a call of the blocking API client off the runtime's worker threads.
/// `POST /api/files`, sent once more when no HTTP answer came back (a connection reset on a
/// loaded CI machine was seen once, the server still running). The upload is content-addressed
/// (its SHA-256 names it), so a second one stores nothing twice; an answer with an error status
/// is final.
pub(crate) fn upload_once_more(
    c: &ferrota_api::Client,
    data: &[u8],
) -> Result<ferrota_api::UploadedFile, ferrota_api::Error> {
    match c.upload_file(data) {
        Err(ferrota_api::Error::Transport { .. }) => {
            std::thread::sleep(Duration::from_millis(200));
            c.upload_file(data)
        }
        r => r,
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    client: ferrota_api::Client,
    f: impl FnOnce(&ferrota_api::Client) -> Result<T, ferrota_api::Error> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || f(&client).map_err(|e| e.to_string()))
        .await
        .map_err(|e| format!("API call: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Options {
        Options {
            short: true,
            ferrota_exe: std::path::PathBuf::from("/nonexistent/ferrota"),
            progress: false,
            faults: false,
            delta_pairs: None,
        }
    }

    #[test]
    fn a_small_fleet_updates_and_every_hash_matches() {
        let plan = Plan {
            sizes: vec![4],
            file_size: 40 * 1024 + 123,
            server: ServerKind::InProcess,
            wrong_signature: false,
        };
        let tiers = run_plan(&plan, &quiet()).unwrap();
        let t = &tiers[0];
        assert_eq!(t.errors, 0, "{:?}", t.first_error);
        assert_eq!(t.succeeded, 4);
        assert_eq!(t.hash_matched, 4);
        let r = report(&plan, &tiers, true);
        assert_eq!(r.table.rows.len(), 1);
        assert!(r.targets.iter().all(|x| x.met.is_none()));
    }

    #[test]
    fn a_wrong_signature_is_reported_failed() {
        let plan = Plan {
            sizes: vec![2],
            file_size: 8 * 1024,
            server: ServerKind::InProcess,
            wrong_signature: true,
        };
        let tiers = run_plan(&plan, &quiet()).unwrap();
        let t = &tiers[0];
        assert_eq!(t.errors, 0, "{:?}", t.first_error);
        assert_eq!(t.succeeded, 0);
        assert_eq!(t.failed, 2);
        // The bytes were right; only the signature was not.
        assert_eq!(t.hash_matched, 2);
    }

    #[test]
    fn too_many_devices_for_the_open_file_limit_are_refused() {
        let e = fd_budget(20_000, 20_000).unwrap_err();
        assert!(e.contains("20000 devices need 20256 open files"), "{e}");
        assert!(fd_budget(10_000, 20_000).is_ok());
        assert!(check_open_files(usize::MAX / 2).is_err());
    }

    #[test]
    fn a_missing_executable_is_a_clear_error() {
        let e = run(&quiet()).unwrap_err();
        assert_eq!(e.scenario, "fleet");
        assert!(e.message.contains("/nonexistent/ferrota"), "{}", e.message);
        assert!(e.message.contains("does not exist"), "{}", e.message);
    }

    #[test]
    fn sizes_from_the_environment() {
        assert_eq!(parse_sizes("1000, 5000").unwrap(), vec![1000, 5000]);
        assert!(parse_sizes("0").is_err());
        assert!(parse_sizes("many").is_err());
    }

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
