//! Scenario `cluster`: the fleet scenario through the distributed deployment (a 3-node
//! RabbitMQ cluster in front of the devices, Ferrota workers behind it on AMQP, PostgreSQL,
//! SeaweedFS as the S3 file store: [`ferrota_cluster::Cluster`]) beside the single
//! `ferrota serve` process, in the same run; and, with `--faults`, the fault test of that
//! deployment.
//!
//! **Measure** (`ferrota bench cluster`). Three runs of one rollout to the same N devices
//! (1,000; `--short` 40) of a 64 KB file (`--short` 16 KB; [`MEASURE_FILE`]):
//! 1. the single process (SQLite, files on disk, its own MQTT broker);
//! 2. the cluster with one worker (the second stopped);
//! 3. the cluster with both workers.
//!
//! For each: updates a minute (N ÷ time to the last device's acknowledged SUCCEEDED), the CPU
//! seconds per update of each process kind (broker nodes, workers, PostgreSQL, the file store,
//! the single server; each a process tree, [`crate::procstat`]), the bytes written to storage
//! per update, and the bytes that crossed the loopback interface per update (device ↔ broker
//! ↔ worker ↔ PostgreSQL and S3: everything the deployment moves). On 2 cores the absolute
//! rates do not scale; the per-update costs are what docs/PERFORMANCE.md turns into machines
//! for a million devices an hour.
//!
//! **Faults** (`ferrota bench cluster --faults`; not yet in `.ci/run`: see docs/DEPLOY.md). One rollout to 1,000
//! devices (`--short` 60), released at 1,000 a minute (AWS's `maximumPerMinute` maximum) so
//! that it lasts about a minute, while, at fixed shares of devices done:
//! 1. a worker is killed with SIGKILL and started again;
//! 2. a broker node is killed with SIGKILL and started again (its devices reconnect to the
//!    other nodes and resume their downloads);
//! 3. PostgreSQL is killed with SIGKILL and started again (workers reconnect);
//! 4. the S3 server is killed for 3 s and started again (block reads stall and resume; the
//!    workers' block cache is off in this run, so every block is read from S3 and checked
//!    against its hash).
//!
//! Then, or the run fails naming what broke: every device acknowledged SUCCEEDED (its
//! `update/accepted` arrived) with the right SHA-256; every execution is SUCCEEDED in
//! PostgreSQL; no device was notified of the job twice; the job's counters add up to N
//! succeeded and nothing else; and every fault was injected while the rollout ran.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrota_api::jobconfig::RolloutConfig;
use ferrota_api::{CreateOtaUpdate, OtaFile};
use ferrota_cluster::{Cluster, Plan as ClusterPlan};
use ferrota_image::ota::{MAX_P256_BASE64, OtaSignature, sign_file};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::fleet::device::{self, DeviceResult, Identity, Mode, Outcome, Shared};
use crate::fleet::server::{Running, ServerKind};
use crate::fleet::{self, CONNECTS_IN_FLIGHT};
use crate::procstat::{self, Usage};
use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};

/// Devices of the measuring runs and of the fault test (the issue's 1,000).
pub const DEVICES: usize = 1000;
/// Environment variable that replaces [`DEVICES`] (profiling another size).
pub const DEVICES_ENV: &str = "FERROTA_BENCH_CLUSTER_DEVICES";
/// The file of the measuring runs: 64 KB (16 blocks, one GetStream request a device). With the
/// fleet scenario's 256 KB, 1,000 devices at full speed overrun the three broker nodes on 2
/// cores (the devices' fixed windows and 10 s re-requests then feed a retransmission storm):
/// see docs/PERFORMANCE.md.
pub const MEASURE_FILE: usize = 64 * 1024;
/// Things notified a minute in the fault test: AWS's highest `maximumPerMinute`.
pub const FAULT_RATE_PER_MINUTE: u64 = 1000;
/// How long the slowest device of the fault test takes to download (the others 1/8, 2/8, …
/// of it): the faults fall inside it.
pub const FAULT_SPAN: Duration = Duration::from_secs(24);
/// Set (to anything) to keep the cluster's directory (logs, databases) after the run.
pub const KEEP_ENV: &str = "FERROTA_BENCH_KEEP";
/// Replaces the workers' `RUST_LOG` (e.g. `info,ferrota_server=debug` to follow a device).
pub const WORKER_LOG_ENV: &str = "FERROTA_BENCH_WORKER_LOG";

/// Set (to anything) to print each device's lost connections on stderr.
pub const DEVICE_LOG_ENV: &str = "FERROTA_BENCH_DEVICE_LOG";

/// A rollout in which no device finished for this long has stalled (the devices give up a
/// connection after 60 s).
pub const STALL: Duration = Duration::from_secs(75);
/// The fleet target this scenario's figures are turned into (docs/PERFORMANCE.md).
pub const TARGET_FLEET: f64 = 1_000_000.0;

type Ids = Vec<(String, Vec<u8>, Vec<u8>)>;

/// One process kind's cost in one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KindCost {
    /// broker, worker, postgres, s3, server.
    pub kind: &'static str,
    /// Processes of the kind.
    pub processes: usize,
    /// CPU seconds of all of them per device update.
    pub cpu_ms_per_update: f64,
    /// Bytes written to storage per device update.
    pub disk_bytes_per_update: f64,
}

/// One run's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunFigures {
    /// What ran: `single process`, `cluster, 1 worker`, …
    pub setup: String,
    /// Devices.
    pub devices: usize,
    /// Seconds from the OTA update's creation to the last acknowledged SUCCEEDED.
    pub rollout_secs: f64,
    /// Device updates a minute.
    pub per_minute: f64,
    /// Per process kind.
    pub kinds: Vec<KindCost>,
    /// The benchmark's own CPU (the simulated devices) per update, ms.
    pub devices_cpu_ms_per_update: f64,
    /// Bytes across loopback per update.
    pub loopback_bytes_per_update: f64,
    /// Devices that had to reconnect.
    pub reconnects: u64,
}

/// Runs the scenario.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let fail = |m: String| BenchError::new(Scenario::Cluster, m);
    fleet::require_exe(&opts.ferrota_exe, "the workers run `ferrota serve`").map_err(fail)?;
    let n = match std::env::var(DEVICES_ENV) {
        Ok(v) => parse_devices(&v).map_err(fail)?,
        Err(_) if opts.short && opts.faults => 60,
        Err(_) if opts.short => 40,
        Err(_) => DEVICES,
    };
    ferrota_cluster::check_installed().map_err(|e| fail(e.to_string()))?;
    // Devices here, their connections in the broker nodes (and in the single server).
    fleet::check_open_files(n).map_err(fail)?;
    ferrota_server::tls::install_crypto_provider();
    if opts.faults {
        faults(opts, n).map_err(fail)
    } else {
        measure(opts, n).map_err(fail)
    }
}

/// [`DEVICES_ENV`]: a device count of at least 1.
fn parse_devices(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{DEVICES_ENV}={v:?}: use a device count, e.g. 400")),
    }
}

/// The file, its SHA-256 (hex) and its signature (base64) for the job document.
struct Release {
    bytes: Vec<u8>,
    sha: [u8; 32],
    signature: String,
}

fn release(size: usize) -> Result<Release, String> {
    let bytes = fleet::file_bytes(size);
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let signer = ferrota_sim::keys::fleet_code_signing_key();
    let sig = sign_file(&signer, &bytes).map_err(|e| format!("signing: {e}"))?;
    let mut b64 = [0u8; MAX_P256_BASE64];
    let signature = OtaSignature::to_base64(&sig, &mut b64).to_string();
    Ok(Release {
        bytes,
        sha,
        signature,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// What a rollout runs against.
struct Against {
    /// Where devices connect (round-robin).
    addrs: Vec<SocketAddr>,
    /// Through a broker cluster: done on `update/accepted`, reconnect on loss.
    cluster: bool,
    /// Slow devices ([`Shared::pace`]).
    pace: Option<Duration>,
    api: ferrota_api::Client,
    roots: Arc<rustls::RootCertStore>,
}

/// A rollout's devices and outcome.
struct Rollout {
    results: Vec<DeviceResult>,
    t0: Instant,
    job_id: String,
    ota_id: String,
}

/// Connects `ids`, waits until all are idle, calls `before_start`, creates the OTA update
/// and waits for every device; `done` counts devices finished as they finish.
#[allow(clippy::too_many_arguments)]
async fn rollout(
    opts: &Options,
    at: &Against,
    ids: &Ids,
    rel: &Release,
    name: &str,
    rate: Option<u64>,
    done: Arc<AtomicUsize>,
    before_start: impl FnOnce(),
) -> Result<Rollout, String> {
    let n = ids.len();
    let upload = rel.bytes.clone();
    fleet::blocking(at.api.clone(), move |c| c.upload_file(&upload))
        .await
        .map_err(|e| format!("upload: {e}"))?;
    let mut shared = Shared::new(
        at.addrs.clone(),
        at.roots.clone(),
        *ferrota_sim::keys::fleet_code_signing_key().verifying_key(),
        if at.cluster {
            Mode::Cluster
        } else {
            Mode::Direct
        },
    );
    shared.pace = at.pace;
    shared.log_reconnects = std::env::var_os(DEVICE_LOG_ENV).is_some();
    let shared = Arc::new(shared);
    opts.say(format!("{name}: {n} devices connecting"));
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, (thing, cert, key)) in ids.iter().enumerate() {
        while i >= shared.ready.load(Ordering::Acquire) + CONNECTS_IN_FLIGHT {
            if let Some(e) = fleet::early_end(&mut tasks).await {
                return Err(e);
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(100), shared.ready_changed.notified())
                    .await;
        }
        let id = Identity {
            thing: thing.clone(),
            cert: CertificateDer::from(cert.clone()),
            key: PrivateKeyDer::try_from(key.clone()).map_err(|e| format!("{thing}: {e}"))?,
            index: i,
        };
        let (shared, done) = (shared.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let r = device::run(shared, id).await;
            done.fetch_add(1, Ordering::AcqRel);
            r
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while shared.ready.load(Ordering::Acquire) < n {
        if let Some(e) = fleet::early_end(&mut tasks).await {
            return Err(e);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} devices connected in time",
                shared.ready.load(Ordering::Acquire)
            ));
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), shared.ready_changed.notified()).await;
    }
    opts.say(format!(
        "{name}: {n} connected in {:.1} s",
        t_connect.elapsed().as_secs_f64()
    ));
    // Settle: the last subscriptions and answers go through before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    before_start();
    let mut req = CreateOtaUpdate::new(name.to_string()).file(
        OtaFile::new(
            "/ota/bank.bin",
            fleet::hex_of(&rel.sha),
            rel.signature.clone(),
        )
        .file_type(Some(7))
        .certificate_name("signer.crt"),
    );
    for (thing, _, _) in ids {
        req = req.thing(thing);
    }
    if let Some(r) = rate {
        req.aws_job_executions_rollout_config = Some(RolloutConfig {
            maximum_per_minute: Some(r),
            exponential_rate: None,
        });
    }
    opts.say(format!("{name}: rolling out to {n} devices"));
    let t0 = Instant::now();
    let ota = fleet::blocking(at.api.clone(), move |c| c.create_ota_update(&req))
        .await
        .map_err(|e| format!("create OTA update: {e}"))?;
    // Done when every device is; stalled when none finished for STALL (the devices' own
    // reconnect budget is 60 s), with the things still out named.
    let mut results = Vec::with_capacity(n);
    let mut last = (0usize, Instant::now());
    let mut pending: Vec<(String, tokio::task::JoinHandle<DeviceResult>)> =
        ids.iter().map(|(t, _, _)| t.clone()).zip(tasks).collect();
    while !pending.is_empty() {
        let mut i = 0;
        while i < pending.len() {
            if pending[i].1.is_finished() {
                let (_, t) = pending.swap_remove(i);
                results.push(t.await.map_err(|e| format!("a device task failed: {e}"))?);
            } else {
                i += 1;
            }
        }
        if pending.is_empty() {
            break;
        }
        let now_done = done.load(Ordering::Acquire);
        if now_done != last.0 {
            last = (now_done, Instant::now());
        } else if last.1.elapsed() > STALL {
            let out: Vec<&str> = pending.iter().take(10).map(|p| p.0.as_str()).collect();
            for p in &pending {
                p.1.abort();
            }
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Error(e) | Outcome::Failed(e) => Some(format!("{}: {e}", r.thing)),
                    Outcome::Succeeded => None,
                })
                .take(5)
                .collect();
            return Err(format!(
                "{} of {n} devices not done, none finished for {} s: {}; ended in an error: [{}]",
                pending.len(),
                STALL.as_secs(),
                out.join(", "),
                failed.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // In the order of `ids`.
    results.sort_by(|a, b| a.thing.cmp(&b.thing));
    Ok(Rollout {
        results,
        t0,
        job_id: ota.job_id,
        ota_id: ota.ota_update_id,
    })
}

/// Every device SUCCEEDED with the right bytes, or an error naming the first that did not.
fn check_devices(r: &Rollout, sha: &[u8; 32]) -> Result<(), String> {
    for d in &r.results {
        match &d.outcome {
            Outcome::Succeeded if d.digest.as_ref() == Some(sha) => {}
            Outcome::Succeeded => {
                return Err(format!("{}: SUCCEEDED with the wrong bytes", d.thing));
            }
            Outcome::Failed(e) | Outcome::Error(e) => return Err(format!("{}: {e}", d.thing)),
        }
    }
    Ok(())
}

fn last_done(r: &Rollout) -> f64 {
    r.results
        .iter()
        .filter_map(|d| d.done_at.map(|t| (t - r.t0).as_secs_f64()))
        .fold(0.0, f64::max)
}

/// The processes of a run, by kind.
struct Procs(Vec<(&'static str, u32)>);

impl Procs {
    fn of_cluster(c: &Cluster) -> Procs {
        let mut v = Vec::new();
        for w in c.workers() {
            if let Some(p) = w.pid() {
                v.push(("worker", p));
            }
        }
        v.extend(c.broker_pids().into_iter().map(|p| ("broker", p)));
        if let Some(p) = c.postgres_pid() {
            v.push(("postgres", p));
        }
        if let Some(p) = c.s3_pid() {
            v.push(("s3", p));
        }
        Procs(v)
    }

    fn usage(&self) -> Vec<Usage> {
        let mut pids: Vec<u32> = self.0.iter().map(|p| p.1).collect();
        pids.push(std::process::id());
        procstat::trees(&pids)
    }
}

fn figures(
    setup: &str,
    procs: &Procs,
    before: &[Usage],
    after: &[Usage],
    lo: u64,
    r: &Rollout,
) -> RunFigures {
    let n = r.results.len().max(1) as f64;
    let mut kinds: Vec<KindCost> = Vec::new();
    for (i, (kind, _)) in procs.0.iter().enumerate() {
        let u = after[i].since(before[i]);
        match kinds.iter_mut().find(|k| k.kind == *kind) {
            Some(k) => {
                k.processes += 1;
                k.cpu_ms_per_update += u.cpu_secs * 1000.0 / n;
                k.disk_bytes_per_update += u.disk_write as f64 / n;
            }
            None => kinds.push(KindCost {
                kind,
                processes: 1,
                cpu_ms_per_update: u.cpu_secs * 1000.0 / n,
                disk_bytes_per_update: u.disk_write as f64 / n,
            }),
        }
    }
    let me = after[procs.0.len()].since(before[procs.0.len()]);
    let secs = last_done(r);
    RunFigures {
        setup: setup.into(),
        devices: r.results.len(),
        rollout_secs: secs,
        per_minute: n / secs.max(1e-9) * 60.0,
        kinds,
        devices_cpu_ms_per_update: me.cpu_secs * 1000.0 / n,
        loopback_bytes_per_update: lo as f64 / n,
        reconnects: r.results.iter().map(|d| u64::from(d.reconnects)).sum(),
    }
}

/// One measured rollout against `at`.
async fn measured(
    opts: &Options,
    setup: &str,
    at: &Against,
    procs: &Procs,
    ids: &Ids,
    rel: &Release,
    job: &str,
) -> Result<RunFigures, String> {
    let mut before = Vec::new();
    let mut lo0 = 0;
    let r = rollout(
        opts,
        at,
        ids,
        rel,
        job,
        None,
        Arc::new(AtomicUsize::new(0)),
        || {
            before = procs.usage();
            lo0 = procstat::loopback_bytes();
        },
    )
    .await?;
    let after = procs.usage();
    let lo = procstat::loopback_bytes().saturating_sub(lo0);
    check_devices(&r, &rel.sha).map_err(|e| format!("{setup}: {e}"))?;
    let f = figures(setup, procs, &before, &after, lo, &r);
    opts.say(format!(
        "{setup}: {} updates in {:.1} s ({:.0}/min)",
        f.devices, f.rollout_secs, f.per_minute
    ));
    Ok(f)
}

fn measure(opts: &Options, n: usize) -> Result<Report, String> {
    let rel = release(if opts.short { 16 * 1024 } else { MEASURE_FILE })?;
    let rt = runtime()?;
    let tmp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut runs = Vec::new();

    // 1. The single process: the fleet scenario's own data directory and configuration.
    {
        let single = rt.block_on(fleet::provision(n, opts))?;
        let (ids, roots, token, config) = (single.ids, single.roots, single.token, single.config);
        let srv = Running::start(
            &ServerKind::Process(opts.ferrota_exe.clone()),
            &config,
            &tmp.path().join("single.log"),
        )?;
        let at = Against {
            addrs: vec![srv.mqtt],
            cluster: false,
            pace: None,
            api: ferrota_api::Client::new(format!("http://{}", srv.http), token),
            roots,
        };
        let procs = Procs(vec![("server", srv.pid)]);
        runs.push(rt.block_on(measured(
            opts,
            "single process",
            &at,
            &procs,
            &ids,
            &rel,
            "single",
        ))?);
        srv.stop();
    }

    // 2. and 3. The cluster with one worker, then two.
    opts.say("cluster: starting PostgreSQL, SeaweedFS, 3 RabbitMQ nodes, 2 workers");
    let mut cluster = start_cluster(opts, &tmp.path().join("cluster"), "")?;
    let (ids, roots) = rt.block_on(fleet::issue(
        &cluster.server_config(),
        fleet::thing_names(n),
        opts,
    ))?;
    let token = ferrota_server::server::operator_token(&cluster.server_config())
        .map_err(|e| e.to_string())?;
    let addrs = mqtt_addrs(&cluster);
    let at = Against {
        addrs: addrs.clone(),
        cluster: true,
        pace: None,
        api: ferrota_api::Client::new(cluster.workers()[0].url(), token.clone()),
        roots,
    };
    cluster.stop_worker(1);
    let procs = Procs::of_cluster(&cluster);
    let one = rt.block_on(measured(
        opts,
        "cluster, 1 worker",
        &at,
        &procs,
        &ids,
        &rel,
        "cluster-1",
    ));
    let one = one.map_err(|e| with_logs(&cluster, e))?;
    runs.push(one);
    cluster
        .restart_worker(1)
        .map_err(|e| with_logs(&cluster, e.to_string()))?;
    let procs = Procs::of_cluster(&cluster);
    let two = rt.block_on(measured(
        opts,
        "cluster, 2 workers",
        &at,
        &procs,
        &ids,
        &rel,
        "cluster-2",
    ));
    runs.push(two.map_err(|e| with_logs(&cluster, e))?);
    drop(cluster);
    Ok(measure_report(opts, &rel, &runs))
}

fn mqtt_addrs(c: &Cluster) -> Vec<SocketAddr> {
    c.mqtt_ports()
        .into_iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect()
}

fn start_cluster(opts: &Options, dir: &Path, extra: &str) -> Result<Cluster, String> {
    let t = std::time::Instant::now();
    let c = Cluster::start(
        dir,
        &ClusterPlan {
            nodes: 3,
            workers: 2,
            exe: opts.ferrota_exe.clone(),
            log_filter: Some(
                std::env::var(WORKER_LOG_ENV)
                    .unwrap_or_else(|_| "warn,ferrota_server::lease=info".into()),
            ),
            own_process_group: false,
            extra_config: extra.into(),
        },
    )
    .map_err(|e| e.to_string())?;
    opts.say(format!("cluster: up in {:.1} s", t.elapsed().as_secs_f64()));
    Ok(c)
}

/// `e` with the last lines of every worker's log.
fn with_logs(c: &Cluster, e: String) -> String {
    let mut out = e;
    for (i, w) in c.workers().iter().enumerate() {
        let text = std::fs::read_to_string(&w.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        if !tail.is_empty() {
            out.push_str(&format!(
                " | worker {} log (last lines, newest first): {}",
                i + 1,
                tail.join(" / ")
            ));
        }
    }
    out
}

fn measure_report(opts: &Options, rel: &Release, runs: &[RunFigures]) -> Report {
    let kinds = ["server", "broker", "worker", "postgres", "s3"];
    let mut head = vec![
        "setup".to_string(),
        "updates/min".into(),
        "rollout s".into(),
    ];
    for k in kinds {
        head.push(format!("{k} CPU ms/update"));
    }
    head.push("devices CPU ms/update".into());
    head.push("loopback KB/update".into());
    head.push("disk KB/update".into());
    let mut table = Table::new(head);
    for r in runs {
        let mut row = vec![
            r.setup.clone(),
            format!("{:.0}", r.per_minute),
            format!("{:.1}", r.rollout_secs),
        ];
        for k in kinds {
            row.push(
                r.kinds
                    .iter()
                    .find(|c| c.kind == k)
                    .map_or("–".into(), |c| format!("{:.2}", c.cpu_ms_per_update)),
            );
        }
        row.push(format!("{:.2}", r.devices_cpu_ms_per_update));
        row.push(format!("{:.1}", r.loopback_bytes_per_update / 1024.0));
        row.push(format!(
            "{:.1}",
            r.kinds.iter().map(|k| k.disk_bytes_per_update).sum::<f64>() / 1024.0
        ));
        table.row(row);
    }
    let mut targets = Vec::new();
    let per_update_cluster: Option<f64> = runs
        .last()
        .map(|r| r.kinds.iter().map(|k| k.cpu_ms_per_update).sum::<f64>());
    if let Some(ms) = per_update_cluster {
        // A million updates in an hour, at this CPU per update, in cores.
        let cores = TARGET_FLEET * ms / 1000.0 / 3600.0;
        targets.push(Target::new(
            "server-side cores for 1M device updates in an hour (cluster, from CPU/update)",
            "(derived)",
            format!("{cores:.1}"),
            true,
            opts.short,
        ));
    }
    Report {
        scenario: Scenario::Cluster,
        title: "the fleet through a RabbitMQ cluster, workers and PostgreSQL beside one process"
            .into(),
        short: opts.short,
        table,
        targets,
        notes: vec![
            format!(
                "{} devices (hash mode, mutual TLS, MQTT 3.1.1), a {} KB file; the same devices \
                 in each run. The cluster: 3 RabbitMQ nodes (devices spread over them), \
                 workers on AMQP, PostgreSQL, SeaweedFS; in the 1-worker run the second worker \
                 is stopped.",
                runs.first().map_or(0, |r| r.devices),
                rel.bytes.len() / 1024
            ),
            "CPU per update: user + system seconds of each process tree (a postmaster and its \
             backends; an Erlang VM and its helpers) over the rollout ÷ devices. Disk: \
             write_bytes of /proc/<pid>/io. Loopback: bytes received on lo (every byte \
             between the processes, counted once)."
                .into(),
            "Updates/min: devices ÷ time from the OTA update's creation to the last \
             acknowledged SUCCEEDED (the single server's PUBACK after its commit; through the \
             cluster, the worker's update/accepted)."
                .into(),
        ],
        data: json!({ "file_size": rel.bytes.len(), "runs": runs }),
    }
}

/// A fault injected during the fault test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fault {
    /// What was done.
    pub what: String,
    /// Devices done when it was injected.
    pub at_done: usize,
    /// Seconds into the rollout.
    pub at_secs: f64,
    /// Seconds until the process answered again.
    pub back_after_secs: f64,
}

fn faults(opts: &Options, n: usize) -> Result<Report, String> {
    let rel = release(if opts.short { 16 * 1024 } else { 64 * 1024 })?;
    let blocks = rel.bytes.len().div_ceil(device::BLOCK_SIZE as usize) as u32;
    let rt = runtime()?;
    let mut tmp = tempfile::Builder::new()
        .prefix("ferrota-faults-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    if std::env::var_os(KEEP_ENV).is_some() {
        tmp.disable_cleanup(true);
        opts.say(format!("faults: keeping {}", tmp.path().display()));
    }
    opts.say("faults: starting PostgreSQL, SeaweedFS, 3 RabbitMQ nodes, 2 workers");
    // No block cache: every block is read from S3 (so its outage is felt) and checked.
    let cluster = start_cluster(opts, &tmp.path().join("cluster"), "blob_cache_mib = 0\n")?;
    let (ids, roots) = rt.block_on(fleet::issue(
        &cluster.server_config(),
        fleet::thing_names(n),
        opts,
    ))?;
    let token = ferrota_server::server::operator_token(&cluster.server_config())
        .map_err(|e| e.to_string())?;
    let at = Against {
        addrs: mqtt_addrs(&cluster),
        cluster: true,
        // Slow devices (one block at a time, finishing from ~4 s to ~32 s after they start),
        // so the rollout is still running at every fault.
        pace: Some(FAULT_SPAN / (blocks * 8)),
        // Worker 2's API: worker 1 is the one killed.
        api: ferrota_api::Client::new(cluster.workers()[1].url(), token),
        roots,
    };
    let done = Arc::new(AtomicUsize::new(0));
    let (start_tx, start_rx) = std::sync::mpsc::channel::<Instant>();
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let injector = {
        let (done, finished) = (done.clone(), finished.clone());
        let say = opts.clone();
        std::thread::spawn(move || inject(cluster, n, &done, &finished, start_rx, &say))
    };
    let r = rt.block_on(rollout(
        opts,
        &at,
        &ids,
        &rel,
        "faults",
        Some(FAULT_RATE_PER_MINUTE),
        done.clone(),
        || {
            let _ = start_tx.send(Instant::now());
        },
    ));
    finished.store(true, Ordering::Release);
    let (cluster, injected) = injector
        .join()
        .map_err(|_| "the fault injector panicked".to_string())?;
    let mut cluster = cluster;
    let r = match (r, &injected) {
        (Ok(r), Ok(_)) => r,
        (r, inj) => {
            let mut why = match inj {
                Err(e) => format!("injecting the faults failed: {e}"),
                Ok(done) => format!("faults injected: {done:?}"),
            };
            if let Err(e) = r {
                why = format!("{e} | {why}");
            }
            let pg = unfinished(&mut cluster);
            return Err(with_logs(&cluster, format!("{why} | in PostgreSQL: {pg}")));
        }
    };
    let injected = injected.unwrap_or_default();
    check_devices(&r, &rel.sha).map_err(|e| with_logs(&cluster, e))?;

    // What PostgreSQL holds.
    let rows = cluster
        .postgres()
        .psql(
            "ferrota",
            &format!(
                "SELECT status, count(*) FROM executions WHERE job_id = '{}' GROUP BY status",
                r.job_id.replace('\'', "''")
            ),
        )
        .map_err(|e| e.to_string())?;
    let succeeded_in_pg = parse_count(&rows, "SUCCEEDED");
    if succeeded_in_pg != n as u64 {
        return Err(format!(
            "PostgreSQL holds {succeeded_in_pg} SUCCEEDED executions of {n} acknowledged: {rows}"
        ));
    }
    let twice: Vec<&DeviceResult> = r.results.iter().filter(|d| d.notified > 1).collect();
    if let Some(d) = twice.first() {
        return Err(format!(
            "{} devices were notified of the job more than once (e.g. {}: {} times)",
            twice.len(),
            d.thing,
            d.notified
        ));
    }
    let api = at.api.clone();
    let ota_id = r.ota_id.clone();
    let d = api
        .describe_ota_update(&ota_id, &Default::default())
        .map_err(|e| format!("describe the OTA update: {e}"))?;
    let c = &d.job_process_details;
    let others = c.number_of_queued_things
        + c.number_of_in_progress_things
        + c.number_of_failed_things
        + c.number_of_rejected_things
        + c.number_of_canceled_things
        + c.number_of_timed_out_things
        + c.number_of_removed_things;
    if c.number_of_succeeded_things != n as u64 || others != 0 {
        return Err(format!(
            "the job's counters do not add up to {n} succeeded: {c:?}"
        ));
    }
    let missed = ["worker", "broker node", "PostgreSQL", "S3"]
        .into_iter()
        .filter(|w| !injected.iter().any(|f| f.what.contains(w) && f.at_done < n))
        .collect::<Vec<_>>();
    if !missed.is_empty() {
        return Err(format!(
            "the rollout ended before these faults were injected: {missed:?} (injected: {injected:?})"
        ));
    }
    let reconnected = r.results.iter().filter(|d| d.reconnects > 0).count();
    let by_describe = r.results.iter().filter(|d| d.confirmed_by_describe).count();
    opts.say(format!(
        "faults: {n} SUCCEEDED (in PostgreSQL too), {reconnected} devices reconnected, none notified twice"
    ));
    drop(cluster);
    Ok(faults_report(
        opts,
        n,
        &rel,
        &r,
        &injected,
        reconnected,
        by_describe,
    ))
}

/// The executions not SUCCEEDED (first 10) with their status and version, and the request
/// queue's state, for an error.
fn unfinished(c: &mut Cluster) -> String {
    let queue = c
        .rabbit()
        .ctl(
            0,
            &[
                "list_queues",
                "name",
                "type",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ],
        )
        .map(|q| {
            q.lines()
                .filter(|l| l.starts_with("ferrota"))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|e| format!("(rabbitmqctl failed: {e})"));
    let pg = c
        .postgres()
        .psql(
            "ferrota",
            "SELECT thing, status, version_number, status_details FROM executions \
             WHERE status <> 'SUCCEEDED' ORDER BY thing LIMIT 10",
        )
        .unwrap_or_else(|e| format!("(psql failed: {e})"))
        .replace('\n', "; ");
    format!("{pg} | request queue (name type ready unacked consumers): {queue}")
}

/// The count of `status` in `psql`'s unaligned `status|count` rows.
fn parse_count(rows: &str, status: &str) -> u64 {
    rows.lines()
        .filter_map(|l| l.split_once('|'))
        .find(|(s, _)| s.trim() == status)
        .and_then(|(_, c)| c.trim().parse().ok())
        .unwrap_or(0)
}

/// Injects the faults, each when its share of devices is done; returns the cluster and what
/// was injected when (an error if a restart failed).
fn inject(
    mut c: Cluster,
    n: usize,
    done: &AtomicUsize,
    finished: &std::sync::atomic::AtomicBool,
    start: std::sync::mpsc::Receiver<Instant>,
    opts: &Options,
) -> (Cluster, Result<Vec<Fault>, String>) {
    let Ok(t0) = start.recv() else {
        return (c, Ok(Vec::new()));
    };
    let mut out = Vec::new();
    let steps: [(f64, &str); 4] = [
        (0.10, "SIGKILL worker 1, start it again"),
        (0.30, "SIGKILL broker node 2, start it again"),
        (0.50, "SIGKILL PostgreSQL, start it again"),
        (0.70, "S3 down for 3 s (SIGKILL, start again)"),
    ];
    for (k, (share, what)) in steps.into_iter().enumerate() {
        let want = ((n as f64) * share).ceil() as usize;
        while done.load(Ordering::Acquire) < want {
            if finished.load(Ordering::Acquire) {
                return (c, Ok(out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let at_done = done.load(Ordering::Acquire);
        let at_secs = t0.elapsed().as_secs_f64();
        opts.say(format!(
            "faults: {what} ({at_done} of {n} done, {at_secs:.1} s)"
        ));
        let t = std::time::Instant::now();
        let r: Result<(), String> = match k {
            0 => {
                c.kill_worker(0);
                c.restart_worker(0).map_err(|e| e.to_string())
            }
            1 => {
                c.rabbit().kill(1);
                c.rabbit().restart(1).map_err(|e| e.to_string())
            }
            2 => {
                c.postgres().kill();
                c.postgres().restart().map_err(|e| e.to_string())
            }
            _ => {
                c.s3().kill();
                std::thread::sleep(Duration::from_secs(3));
                c.s3().restart().map_err(|e| e.to_string())
            }
        };
        if let Err(e) = r {
            return (c, Err(format!("{what}: {e}")));
        }
        out.push(Fault {
            what: what.into(),
            at_done,
            at_secs,
            back_after_secs: t.elapsed().as_secs_f64(),
        });
    }
    (c, Ok(out))
}

fn faults_report(
    opts: &Options,
    n: usize,
    rel: &Release,
    r: &Rollout,
    injected: &[Fault],
    reconnected: usize,
    by_describe: usize,
) -> Report {
    let mut table = Table::new([
        "fault",
        "devices done when injected",
        "at s",
        "back after s",
    ]);
    for f in injected {
        table.row([
            f.what.clone(),
            format!("{} of {n}", f.at_done),
            format!("{:.1}", f.at_secs),
            format!("{:.1}", f.back_after_secs),
        ]);
    }
    let secs = last_done(r);
    let targets = vec![
        Target::new(
            "devices SUCCEEDED (acknowledged, right bytes, in PostgreSQL)",
            n.to_string(),
            n.to_string(),
            true,
            false,
        ),
        Target::new(
            "devices notified of the job more than once",
            "0",
            "0",
            true,
            false,
        ),
    ];
    Report {
        scenario: Scenario::Cluster,
        title: "fault test: a rollout through the cluster while its processes are killed".into(),
        short: opts.short,
        table,
        targets,
        notes: vec![
            format!(
                "{n} devices, a {} KB file, released at {FAULT_RATE_PER_MINUTE} a minute; the \
                 last SUCCEEDED {secs:.1} s after the OTA update was created.",
                rel.bytes.len() / 1024
            ),
            format!(
                "{reconnected} devices reconnected (to another broker node) and resumed; \
                 {by_describe} resent their final status after a reconnect and found it \
                 committed (DescribeJobExecution)."
            ),
            "Checked after the run: every execution SUCCEEDED in PostgreSQL, the job's \
             counters are N succeeded and nothing else, no device got notify-next for the job \
             twice."
                .into(),
        ],
        data: json!({ "devices": n, "faults": injected, "rollout_secs": secs,
                      "reconnected": reconnected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_count_from_the_environment_must_be_a_positive_number() {
        assert_eq!(parse_devices(" 400 "), Ok(400));
        for bad in ["0", "many", "-3", ""] {
            let e = parse_devices(bad).unwrap_err();
            assert!(e.contains(DEVICES_ENV) && e.contains("device count"), "{e}");
        }
    }

    #[test]
    fn a_missing_executable_is_refused_before_any_engine_starts() {
        let opts = Options {
            short: true,
            ferrota_exe: std::path::PathBuf::from("/nonexistent/ferrota"),
            progress: false,
            faults: true,
            delta_pairs: None,
        };
        let e = run(&opts).unwrap_err();
        assert_eq!(e.scenario, "cluster");
        assert!(e.message.contains("/nonexistent/ferrota"), "{}", e.message);
    }

    #[test]
    fn psql_counts_are_read_by_status() {
        let rows = "IN_PROGRESS|3\nSUCCEEDED|997\n";
        assert_eq!(parse_count(rows, "SUCCEEDED"), 997);
        assert_eq!(parse_count(rows, "FAILED"), 0);
    }
}
