//! `ferrota cluster up|down|status`: the distributed deployment on one machine, on loopback,
//! for trying it and for the fault tests: PostgreSQL, an S3-compatible file store (SeaweedFS),
//! a RabbitMQ cluster and N Ferrota workers,
//! each a process of its own that outlives the command (`docs/DEPLOY.md` maps each onto real
//! machines; the worker configuration files written here are the ones to copy).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ferrota_cluster::{BUCKET, Cluster, ClusterState, Plan, kill_epmd};
use ferrota_infra::{pid_alive, stop_pid};

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

const STATE: &str = "cluster.json";

/// `ferrota cluster`
pub fn run(c: &ClusterCommand) -> Result<()> {
    match c {
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Down(a) => down(a),
        ClusterCommand::Status(a) => status(&a.dir),
    }
}

fn up(a: &UpArgs) -> Result<()> {
    let dir = &a.dir.dir;
    ferrota_cluster::check_installed()?;
    if dir.join(STATE).exists() {
        bail!(
            "{} holds a cluster already (its {STATE}): `ferrota cluster down --dir {0} --purge` \
             first, or choose another --dir",
            dir.display()
        );
    }
    eprintln!(
        "starting PostgreSQL, SeaweedFS (S3), {} RabbitMQ nodes and {} workers…",
        a.nodes, a.workers
    );
    let plan = Plan {
        nodes: usize::from(a.nodes),
        workers: usize::from(a.workers),
        exe: std::env::current_exe()?,
        log_filter: None,
        own_process_group: true,
        extra_config: String::new(),
    };
    // A failed start stops what had started (the handle's drop): no process is left.
    let cluster = Cluster::start(dir, &plan)?;
    let dir = cluster.dir().to_path_buf();
    let state = cluster.detach();
    std::fs::write(dir.join(STATE), serde_json::to_string_pretty(&state)?)?;
    print_summary(&dir, &state);
    Ok(())
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
