//! A private RabbitMQ cluster: N nodes of Debian's `rabbitmq-server` (3.10, with its MQTT and
//! HTTP-auth plugins) on one machine, each with its own directory, ports and Erlang node name,
//! an Erlang port mapper (epmd) of their own on a free port, joined into one cluster.
//!
//! Why RabbitMQ (the evaluation is in `docs/DEPLOY.md`): devices keep MQTT 3.1.1 over mutual
//! TLS to any node, the certificate's CN is the user name (`ssl_cert_login_from =
//! common_name`), and every authorisation question (may `dev-1` publish to
//! `$aws/things/dev-1/jobs/get`?) goes to Ferrota's HTTP API (`rabbitmq_auth_backend_http`),
//! so Ferrota stays the one authority and the broker holds no per-thing line. Workers consume
//! requests over AMQP from one replicated (quorum) queue: competing consumers, acknowledged
//! after the store committed.
//!
//! The nodes run as the calling user (RabbitMQ runs as root too); the `/usr/sbin` wrapper that
//! switches to the `rabbitmq` user and writes to `/var/log` is bypassed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::proc;
use crate::{InfraError, InfraResult};

/// Where Debian's package puts the real scripts.
const BIN: &str = "/usr/lib/rabbitmq/bin";

/// The AMQP user the workers log in as (created at start, with a password of this cluster's).
pub const WORKER_USER: &str = "ferrota-worker";

/// TLS material for the nodes' MQTT listener, PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    /// CA certificate(s) that sign device certificates (clients must present one).
    pub ca: PathBuf,
    /// The nodes' server certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// How to set the cluster up.
#[derive(Debug, Clone)]
pub struct RabbitConfig {
    /// Number of nodes (1 or more).
    pub nodes: usize,
    /// MQTT over mutual TLS with certificate login; `None`: plain MQTT on loopback (tests of
    /// the AMQP side only).
    pub tls: Option<Tls>,
    /// The base URL of Ferrota's broker-auth endpoints per node (node `i` asks
    /// `auth_http[i % len]`: each node asks the worker on its own machine), e.g.
    /// `http://127.0.0.1:8080/broker-auth/<token>`; empty: no HTTP auth backend.
    pub auth_http: Vec<String>,
}

struct Node {
    name: String,
    dir: PathBuf,
    amqp: u16,
    mqtt: u16,
    dist: u16,
    child: Option<Child>,
}

/// A running private RabbitMQ cluster; dropping it stops every node and its epmd.
pub struct RabbitCluster {
    detached: bool,
    root: PathBuf,
    epmd: u16,
    password: String,
    nodes: Vec<Node>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for RabbitCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitCluster")
            .field("root", &self.root)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl RabbitCluster {
    /// Whether Debian's `rabbitmq-server` is installed.
    pub fn available() -> bool {
        Path::new(BIN).join("rabbitmq-server").exists()
    }

    /// Starts a cluster of `cfg.nodes` nodes in a new temporary directory.
    pub fn start(cfg: &RabbitConfig) -> InfraResult<Self> {
        let temp = proc::owned_tempdir("ferrota-rmq-")?;
        let mut c = Self::start_in(temp.path(), cfg)?;
        c._temp = Some(temp);
        Ok(c)
    }

    /// Starts a cluster in `root` (kept when it stops: `scripts/cluster.sh`).
    ///
    /// Every port a node takes (AMQP, MQTT, Erlang distribution, and the cluster's private
    /// epmd) is chosen free a moment before the node binds it ([`crate::free_port`]), so
    /// another process may take it in between; the node then fails to boot (`eaddrinuse`).
    /// Such a start is tried again with new ports for everything, at most [`START_TRIES`]
    /// times in all, as PostgreSQL and SeaweedFS are; the directories of a failed try stay
    /// beside the new ones as `nodeN.try-K` (their logs say what was taken). Any other failure
    /// is returned at once.
    pub fn start_in(root: &Path, cfg: &RabbitConfig) -> InfraResult<Self> {
        Self::start_picking(root, cfg, &mut proc::free_port)
    }

    /// [`RabbitCluster::start_in`] with the ports chosen by `pick` (tests hand out a taken
    /// one).
    fn start_picking(
        root: &Path,
        cfg: &RabbitConfig,
        pick: &mut dyn FnMut() -> InfraResult<u16>,
    ) -> InfraResult<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start(root, cfg, pick) {
                Ok(c) => return Ok(c),
                Err(e) if port_taken(&e, root, cfg.nodes) => {
                    if attempt >= START_TRIES {
                        return Err(InfraError::Failed(format!(
                            "{e}\n(a port was taken at each of {START_TRIES} tries, with new \
                             ports each time)"
                        )));
                    }
                    set_aside(root, cfg.nodes, attempt)?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One try of [`RabbitCluster::start_in`]: on an error the nodes started are stopped
    /// (the partial cluster is dropped) and their directories left for the logs.
    fn try_start(
        root: &Path,
        cfg: &RabbitConfig,
        pick: &mut dyn FnMut() -> InfraResult<u16>,
    ) -> InfraResult<Self> {
        if !Self::available() {
            return Err(InfraError::Missing(
                "RabbitMQ",
                "Debian package rabbitmq-server: apt-get install rabbitmq-server",
            ));
        }
        if cfg.nodes == 0 {
            return Err(InfraError::Failed(
                "a cluster needs at least one node".into(),
            ));
        }
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |e| InfraError::Io(what, e)
        };
        std::fs::create_dir_all(root).map_err(io(root))?;
        let password = proc::random_hex(16)?;
        let cookie = proc::random_hex(20)?;
        let mut nodes = Vec::new();
        for i in 0..cfg.nodes {
            let dir = root.join(format!("node{}", i + 1));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let node = Node {
                name: format!("ferrota{}@localhost", i + 1),
                amqp: pick()?,
                mqtt: pick()?,
                dist: pick()?,
                dir,
                child: None,
            };
            write_node_files(&node, i, cfg, &cookie)?;
            nodes.push(node);
        }
        let mut c = RabbitCluster {
            detached: false,
            root: root.to_path_buf(),
            epmd: pick()?,
            password,
            nodes,
            _temp: None,
        };
        for i in 0..c.nodes.len() {
            c.spawn(i)?;
        }
        for i in 0..c.nodes.len() {
            c.await_startup(i)?;
        }
        for i in 1..c.nodes.len() {
            let first = c.nodes[0].name.clone();
            c.ctl(i, &["stop_app"])?;
            c.ctl(i, &["join_cluster", &first])?;
            c.ctl(i, &["start_app"])?;
        }
        c.ctl(0, &["add_user", WORKER_USER, &c.password.clone()])?;
        c.ctl(
            0,
            &["set_permissions", "-p", "/", WORKER_USER, ".*", ".*", ".*"],
        )?;
        for i in 0..c.nodes.len() {
            c.wait_listeners(i)?;
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize) -> InfraResult<()> {
        let n = &self.nodes[i];
        let log = n.dir.join("out.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| InfraError::Io(log.display().to_string(), e))?;
        let mut cmd = Command::new(Path::new(BIN).join("rabbitmq-server"));
        self.env(&mut cmd, i);
        cmd.stdin(Stdio::null())
            .stdout(
                logf.try_clone()
                    .map_err(|e| InfraError::Io("log".into(), e))?,
            )
            .stderr(logf)
            .current_dir(&n.dir);
        let child = cmd
            .spawn()
            .map_err(|e| InfraError::Io("starting rabbitmq-server".into(), e))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    fn env(&self, cmd: &mut Command, i: usize) {
        let n = &self.nodes[i];
        cmd.env("HOME", &n.dir)
            .env("RABBITMQ_NODENAME", &n.name)
            .env("RABBITMQ_CONFIG_FILE", n.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                n.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", n.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", n.dir.join("log"))
            .env("RABBITMQ_PID_FILE", n.dir.join("pid"))
            .env("RABBITMQ_DIST_PORT", n.dist.to_string())
            .env("ERL_EPMD_PORT", self.epmd.to_string())
            // The script then execs the VM instead of running it as a background child.
            .env("RUNNING_UNDER_SYSTEMD", "true");
    }

    /// Runs `rabbitmqctl` against node `i`; returns what it printed.
    pub fn ctl(&self, i: usize, args: &[&str]) -> InfraResult<String> {
        let mut cmd = Command::new(Path::new(BIN).join("rabbitmqctl"));
        self.env(&mut cmd, i);
        cmd.arg("-n").arg(&self.nodes[i].name).args(args);
        proc::run(&mut cmd, &format!("rabbitmqctl {}", args.join(" ")))
    }

    /// Waits until node `i` has booted (`rabbitmqctl await_startup` fails at once while the
    /// node is not yet registered with epmd, so it is asked again until the node answers).
    fn await_startup(&mut self, i: usize) -> InfraResult<()> {
        let start = std::time::Instant::now();
        loop {
            let r = self.ctl(i, &["await_startup", "--timeout", "10"]);
            let Err(e) = r else { return Ok(()) };
            let exited = self.nodes[i]
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            if exited || start.elapsed() > Duration::from_secs(90) {
                let log = proc::log_tail(&self.nodes[i].dir.join("out.log"));
                return Err(InfraError::Failed(format!(
                    "node {} did not start: {e}\n{log}",
                    self.nodes[i].name
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_listeners(&mut self, i: usize) -> InfraResult<()> {
        let (amqp, mqtt) = (self.nodes[i].amqp, self.nodes[i].mqtt);
        let log = self.nodes[i].dir.join("out.log");
        let Some(child) = self.nodes[i].child.as_mut() else {
            return Err(InfraError::Failed("node is not running".into()));
        };
        proc::wait_for_port(
            child,
            amqp,
            Duration::from_secs(60),
            "rabbitmq (AMQP)",
            &log,
        )?;
        proc::wait_for_port(
            child,
            mqtt,
            Duration::from_secs(60),
            "rabbitmq (MQTT)",
            &log,
        )
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never: [`RabbitCluster::start`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s MQTT port (TLS when configured) on 127.0.0.1.
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.nodes[i].mqtt
    }

    /// Node `i`'s AMQP port on 127.0.0.1.
    pub fn amqp_port(&self, i: usize) -> u16 {
        self.nodes[i].amqp
    }

    /// The AMQP URL a worker uses to reach node `i` (as [`WORKER_USER`]).
    pub fn amqp_url(&self, i: usize) -> String {
        format!(
            "amqp://{WORKER_USER}:{}@127.0.0.1:{}/%2f",
            self.password, self.nodes[i].amqp
        )
    }

    /// The directory of node `i` (its configuration and logs).
    pub fn node_dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    /// Whether node `i`'s process runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills node `i` with SIGKILL, as a machine failure would. The script we spawn runs the
    /// Erlang VM as a child of its own, so the VM is found by its pid file.
    pub fn kill(&mut self, i: usize) {
        self.signal_vm(i, libc::SIGKILL);
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to node `i`'s Erlang VM (pid file) and waits up to 10 s for it to end.
    /// The pid of node `i`'s Erlang VM (from its pid file) while it runs: benchmarks read its
    /// CPU time, fault tests kill it.
    pub fn pid(&self, i: usize) -> Option<u32> {
        std::fs::read_to_string(self.nodes[i].dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|p| proc::pid_alive(*p))
    }

    fn signal_vm(&self, i: usize, sig: i32) {
        let pid_file = self.nodes[i].dir.join("pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            proc::stop_pid(pid, sig, Duration::from_secs(10));
        }
        let _ = std::fs::remove_file(pid_file);
    }

    /// Starts node `i` again (same name, ports and data): it rejoins the cluster.
    pub fn restart(&mut self, i: usize) -> InfraResult<()> {
        self.kill(i);
        self.spawn(i)?;
        self.await_startup(i)?;
        self.wait_listeners(i)
    }
}

/// How many times [`RabbitCluster::start_in`] starts a cluster when a port it chose was taken.
pub const START_TRIES: usize = 3;

/// Whether a failed start failed on a port someone else took, so that new ports fix it: the
/// error and every node's logs (`out.log`, `log/*`) are searched for what Erlang and RabbitMQ
/// print then. `eaddrinuse` (a listener: AMQP, MQTT; the distribution port) and its words;
/// "in use by another" (RabbitMQ's prelaunch check of the distribution port, and a node
/// name taken in another cluster's epmd that took our epmd port); epmd's "register/listen
/// error".
fn port_taken(e: &InfraError, root: &Path, nodes: usize) -> bool {
    let mut text = e.to_string();
    for i in 0..nodes {
        let dir = root.join(format!("node{}", i + 1));
        text.push_str(&std::fs::read_to_string(dir.join("out.log")).unwrap_or_default());
        if let Ok(logs) = std::fs::read_dir(dir.join("log")) {
            for f in logs.flatten() {
                text.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
            }
        }
    }
    says_port_in_use(&text)
}

/// The words of a port already taken, in a node's error or logs ([`port_taken`]).
fn says_port_in_use(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "eaddrinuse",
        "address already in use",
        "in use by another",
        "register/listen error",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Moves the node directories of failed try `attempt` aside (`nodeN.try-K`), so the next try
/// starts from empty ones (no half-made Mnesia database) and the logs stay to be read.
fn set_aside(root: &Path, nodes: usize, attempt: usize) -> InfraResult<()> {
    for i in 0..nodes {
        let dir = root.join(format!("node{}", i + 1));
        if dir.exists() {
            let to = root.join(format!("node{}.try-{attempt}", i + 1));
            std::fs::rename(&dir, &to)
                .map_err(|e| InfraError::Io(format!("{} -> {}", dir.display(), to.display()), e))?;
        }
    }
    Ok(())
}

/// What stays of a cluster left running ([`RabbitCluster::detach`]).
#[derive(Debug, Clone)]
pub struct DetachedNode {
    /// Erlang node name.
    pub name: String,
    /// The node's VM pid.
    pub pid: u32,
    /// MQTT port.
    pub mqtt: u16,
    /// AMQP port.
    pub amqp: u16,
}

impl RabbitCluster {
    /// Leaves the nodes running after this handle is gone (`ferrota cluster up`): their pids
    /// and ports, and the port of their epmd (stop it with `epmd -kill` under
    /// `ERL_EPMD_PORT`, after the nodes).
    pub fn detach(mut self) -> (Vec<DetachedNode>, u16) {
        self.detached = true;
        let nodes = self
            .nodes
            .iter_mut()
            .map(|n| DetachedNode {
                name: n.name.clone(),
                pid: n.child.take().map_or(0, |c| c.id()),
                mqtt: n.mqtt,
                amqp: n.amqp,
            })
            .collect();
        self._temp = None;
        (nodes, self.epmd)
    }

    /// The AMQP password of [`WORKER_USER`].
    pub fn worker_password(&self) -> &str {
        &self.password
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        for i in 0..self.nodes.len() {
            self.signal_vm(i, libc::SIGKILL);
            if let Some(mut c) = self.nodes[i].child.take() {
                proc::signal(c.id(), libc::SIGTERM);
                proc::wait_or_kill(&mut c, Duration::from_secs(10));
            }
        }
        let _ = Command::new("epmd")
            .arg("-kill")
            .env("ERL_EPMD_PORT", self.epmd.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn write_node_files(n: &Node, i: usize, cfg: &RabbitConfig, cookie: &str) -> InfraResult<()> {
    let w = |name: &str, text: &str| {
        let p = n.dir.join(name);
        std::fs::write(&p, text).map_err(|e| InfraError::Io(p.display().to_string(), e))
    };
    let mut conf = format!(
        "listeners.tcp.default = 127.0.0.1:{amqp}\n\
         loopback_users = none\n\
         log.file.level = info\n\
         # Quorum queues need a majority: a 3-node cluster survives one node.\n\
         cluster_partition_handling = pause_minority\n",
        amqp = n.amqp
    );
    match &cfg.tls {
        Some(t) => conf.push_str(&format!(
            "mqtt.listeners.tcp = none\n\
             mqtt.listeners.ssl.default = 127.0.0.1:{mqtt}\n\
             mqtt.ssl_cert_login = true\n\
             mqtt.allow_anonymous = false\n\
             ssl_cert_login_from = common_name\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n",
            mqtt = n.mqtt,
            ca = t.ca.display(),
            cert = t.cert.display(),
            key = t.key.display(),
        )),
        None => conf.push_str(&format!(
            "mqtt.listeners.tcp.default = 127.0.0.1:{}\n",
            n.mqtt
        )),
    }
    if cfg.auth_http.is_empty() {
        conf.push_str("auth_backends.1 = internal\n");
    } else {
        let base = cfg.auth_http[i % cfg.auth_http.len()].trim_end_matches('/');
        // The workers' own user is internal; devices (certificate CNs) are asked of Ferrota.
        conf.push_str(&format!(
            "auth_backends.1 = internal\n\
             auth_backends.2 = http\n\
             auth_http.http_method = post\n\
             auth_http.user_path = {base}/user\n\
             auth_http.vhost_path = {base}/vhost\n\
             auth_http.resource_path = {base}/resource\n\
             auth_http.topic_path = {base}/topic\n"
        ));
    }
    w("rabbitmq.conf", &conf)?;
    w(
        "enabled_plugins",
        "[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n",
    )?;
    let cookie_path = n.dir.join(".erlang.cookie");
    w(".erlang.cookie", cookie)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cookie_path, std::fs::Permissions::from_mode(0o400))
        .map_err(|e| InfraError::Io(cookie_path.display().to_string(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Erlang and RabbitMQ print for a taken port counts; other failures do not (they
    /// are returned at once, not retried).
    #[test]
    fn a_taken_port_is_told_from_other_failures() {
        for taken in [
            "[error] <0.700.0> Failed to start Ranch listener {acceptor,{127,0,0,1},5672} in \
             ranch_tcp:listen([...]) for reason eaddrinuse (address already in use)",
            "BOOT FAILED\n===========\nError during startup: {error,{could_not_start_listener,\
             \"127.0.0.1\",22222,{{shutdown,{failed_to_start_child,{ranch_listener_sup,\
             {acceptor,{127,0,0,1},22222}},{listen_error,{acceptor,{127,0,0,1},22222},eaddrinuse}}}",
            "Protocol 'inet_tcp': register/listen error: econnrefused",
            "ERROR: distribution port 25672 in use by another node: rabbit@other",
            "Address already in use",
        ] {
            assert!(says_port_in_use(taken), "{taken}");
        }
        for other in [
            "node ferrota1@localhost did not start: rabbitmqctl await_startup failed: timeout",
            "/usr/lib/rabbitmq/bin/rabbitmq-server: Permission denied",
            "{error,{bad_config,\"rabbitmq.conf\"}}",
        ] {
            assert!(!says_port_in_use(other), "{other}");
        }
    }

    /// A node given a port another process holds fails to boot; the start is tried again
    /// with new ports, and the cluster comes up on them (the first try's logs kept beside).
    #[test]
    fn a_start_on_a_taken_port_is_retried_with_new_ports() {
        if crate::skip_without("RabbitMQ", RabbitCluster::available()) {
            return;
        }
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let root = proc::owned_tempdir("ferrota-rmq-retry-").unwrap();
        let mut first = true;
        let mut pick = || {
            if std::mem::take(&mut first) {
                Ok(taken)
            } else {
                proc::free_port()
            }
        };
        let cfg = RabbitConfig {
            nodes: 1,
            tls: None,
            auth_http: vec![],
        };
        let c = RabbitCluster::start_picking(root.path(), &cfg, &mut pick).unwrap();
        assert_ne!(c.amqp_port(0), taken);
        std::net::TcpStream::connect(("127.0.0.1", c.amqp_port(0))).unwrap();
        let failed = root.path().join("node1.try-1");
        assert!(failed.is_dir(), "the failed try's directory is kept");
        let log = std::fs::read_to_string(failed.join("out.log")).unwrap_or_default();
        assert!(says_port_in_use(&log), "{log}");
        drop(c);
        drop(holder);
    }
}
