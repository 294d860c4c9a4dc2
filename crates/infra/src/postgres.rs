//! A private PostgreSQL server: `initdb` into a directory, `postgres` on a free loopback port
//! with its socket in that directory, superuser `ferrota` with trust authentication on
//! loopback only. Debian's `postgresql` package provides the binaries
//! (`/usr/lib/postgresql/<version>/bin`); no system cluster is used or needed.
//!
//! PostgreSQL refuses to run as root; when we are root (CI is) the server runs as the
//! `postgres` user the package creates, and its directory is given to that user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::proc::{self, RunAs};
use crate::{InfraError, InfraResult};

/// The database superuser every private server is created with.
pub const USER: &str = "ferrota";

/// A running private PostgreSQL server. Dropping it shuts the server down (fast shutdown)
/// and removes its directory unless it was started in a directory the caller owns.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    settings: Vec<(String, String)>,
    run_as: Option<RunAs>,
    child: Option<Child>,
    die_with_parent: bool,
    _temp: Option<tempfile::TempDir>,
}

impl Postgres {
    /// Whether the PostgreSQL server binaries are installed.
    pub fn available() -> bool {
        bindir().is_some()
    }

    /// Creates a cluster in a new temporary directory and starts it on a free port.
    /// `settings` are server settings (`-c name=value`), e.g. `("fsync", "off")` for tests
    /// that never survive an OS crash anyway.
    pub fn start(settings: &[(&str, &str)]) -> InfraResult<Self> {
        let temp = proc::owned_tempdir("ferrota-pg-")?;
        let mut pg = Self::init(temp.path(), settings)?;
        pg._temp = Some(temp);
        pg.start_server()?;
        Ok(pg)
    }

    /// Creates (if `root/data` does not exist yet) and starts a cluster in `root` on `port`
    /// (0: a free one). The directory stays when the server stops: `scripts/cluster.sh`'s
    /// database lives there.
    pub fn start_in(root: &Path, port: u16, settings: &[(&str, &str)]) -> InfraResult<Self> {
        std::fs::create_dir_all(root).map_err(|e| InfraError::Io(root.display().to_string(), e))?;
        let mut pg = Self::init(root, settings)?;
        if port != 0 {
            pg.port = port;
        }
        pg.start_server()?;
        Ok(pg)
    }

    /// One server for every test of this process (started at the first call, `fsync=off`).
    /// It dies with the process: the server gets SIGQUIT (immediate shutdown) when the
    /// process exits, and the next run removes the directory it leaves.
    pub fn shared() -> InfraResult<&'static Postgres> {
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        let r = SHARED.get_or_init(|| {
            // The parent-death signal fires when the *thread* that spawned the server ends,
            // so spawn it from a thread that lives as long as the process.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = (|| {
                    let temp = proc::owned_tempdir("ferrota-pg-")?;
                    let mut pg = Self::init(temp.path(), &[("fsync", "off")])?;
                    pg._temp = Some(temp);
                    pg.die_with_parent = true;
                    pg.start_server()?;
                    Ok::<_, InfraError>(pg)
                })();
                let _ = tx.send(r.map_err(|e| e.to_string()));
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .unwrap_or_else(|_| Err("the PostgreSQL starter thread died".into()))
        });
        r.as_ref().map_err(|e| InfraError::Failed(e.clone()))
    }

    fn init(root: &Path, settings: &[(&str, &str)]) -> InfraResult<Self> {
        let bin = bindir().ok_or(InfraError::Missing(
            "PostgreSQL",
            "Debian package postgresql: apt-get install postgresql",
        ))?;
        let run_as = proc::run_as_if_root("postgres")?;
        let data = root.join("data");
        proc::chown_tree(root, run_as)?;
        if !data.join("PG_VERSION").exists() {
            let mut cmd = Command::new(bin.join("initdb"));
            cmd.arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .current_dir(root);
            proc::prepare(&mut cmd, run_as, None);
            proc::run(&mut cmd, "initdb")?;
        }
        Ok(Postgres {
            bin,
            root: root.to_path_buf(),
            port: proc::free_port()?,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            run_as,
            child: None,
            die_with_parent: false,
            _temp: None,
        })
    }

    fn start_server(&mut self) -> InfraResult<()> {
        let log = self.log_path();
        let mut last = None;
        // A free port may be taken between asking and binding: try a few.
        for attempt in 0..3 {
            if attempt > 0 {
                self.port = proc::free_port()?;
            }
            let logf = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| InfraError::Io(log.display().to_string(), e))?;
            proc::chown_tree(&log, self.run_as)?;
            let mut cmd = Command::new(self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(self.root.join("data"))
                .args(["-p", &self.port.to_string()])
                .arg("-k")
                .arg(&self.root)
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "max_connections=200"]);
            for (k, v) in &self.settings {
                cmd.args(["-c", &format!("{k}={v}")]);
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logf)
                .current_dir(&self.root);
            proc::prepare(
                &mut cmd,
                self.run_as,
                self.die_with_parent.then_some(libc::SIGQUIT),
            );
            let mut child = cmd
                .spawn()
                .map_err(|e| InfraError::Io("starting postgres".into(), e))?;
            match proc::wait_for_port(
                &mut child,
                self.port,
                Duration::from_secs(30),
                "postgres",
                &log,
            ) {
                Ok(()) => {
                    self.child = Some(child);
                    return self.wait_accepting();
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| InfraError::Failed("postgres did not start".into())))
    }

    /// The port answers before recovery ends; `pg_isready` says when connections are taken.
    fn wait_accepting(&self) -> InfraResult<()> {
        for _ in 0..300 {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(InfraError::Failed(format!(
            "postgres on port {} never accepted connections: {}",
            self.port,
            proc::log_tail(&self.log_path())
        )))
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// A connection URL for database `db` (sqlx and libpq both take it).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits and `_` only) and returns its URL. Each test
    /// takes a database of its own on the shared server, so tests never see each other's rows.
    pub fn create_database(&self, name: &str) -> InfraResult<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(InfraError::Failed(format!("bad database name {name:?}")));
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// Runs SQL with `psql` in database `db`; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> InfraResult<String> {
        let psql = ["psql", "/usr/bin/psql"]
            .iter()
            .map(|p| self.bin.join(p))
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("psql"));
        proc::run(
            Command::new(psql)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", db, "-c", sql]),
            "psql",
        )
    }

    /// The postmaster's pid while it runs (its backends are its children: what a benchmark
    /// sums to count PostgreSQL's CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, as a machine failure would (fault tests). Its backends
    /// notice the postmaster's death and exit; the next [`Postgres::restart`] recovers from
    /// the WAL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Orphaned backends still hold the shared memory for a moment; wait for them.
        for _ in 0..100 {
            if !self.backends_alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn backends_alive(&self) -> bool {
        // Every server process runs in the data directory.
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        let data = self.root.join("data");
        entries
            .flatten()
            .any(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == data))
    }

    /// Stops the server (fast shutdown: open transactions are rolled back, clients cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            proc::signal(c.id(), libc::SIGINT);
            proc::wait_or_kill(&mut c, Duration::from_secs(20));
        }
    }

    /// Leaves the server running after this handle is gone (`ferrota cluster up`): returns
    /// the postmaster's pid, which [`crate::stop_pid`] stops later.
    pub fn detach(mut self) -> u32 {
        let pid = self.child.take().map_or(0, |c| c.id());
        self._temp = None;
        pid
    }

    /// Starts the server again on the same port and data (after [`Postgres::stop`] or
    /// [`Postgres::kill`]).
    pub fn restart(&mut self) -> InfraResult<()> {
        self.stop();
        let port = self.port;
        self.start_server()?;
        if self.port != port {
            return Err(InfraError::Failed(format!(
                "postgres came back on port {} instead of {port} (the port was taken)",
                self.port
            )));
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory of the server binaries: where `initdb` on `PATH` lives, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off `PATH`).
fn bindir() -> Option<PathBuf> {
    // A PATH entry may hold only links to some of them: follow `initdb` to its directory.
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .find(|d| d.join("postgres").exists() && d.join("pg_isready").exists())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}
