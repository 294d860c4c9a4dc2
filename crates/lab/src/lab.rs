//! A whole seed system on one machine, for the demo and the end-to-end tests: a fleet CA and
//! `ferrota-server` in-process on a loopback port chosen at run time, a boot key and a
//! code-signing key with its certificate, demo images, and provisioned boards whose bundles
//! (`device.toml` + certificates) are written as `ferrota thing create` writes them.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferrota_boot::Bank;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId};
use ferrota_keys::{KeyType, PrivateKey};
use ferrota_server::admin::{Admin, CreateOtaUpdate, OtaFile};
use ferrota_server::config::Config as ServerConfig;
use ferrota_server::server::Server;
use ferrota_t2g::{Device, LifeCycle};
use tokio::sync::{mpsc, oneshot};

use crate::images::{self, BOARD, DemoImage, Tamper};
use ferrota_device::board::{Board, BoardEvent, Options};
use ferrota_device::config::{DeviceConfig, Loaded};
use ferrota_sim::boot_chain::{self, Provisioning};

/// A lab failure (the demo prints it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

fn err(what: &str) -> impl FnOnce(String) -> LabError + '_ {
    move |e| LabError(format!("{what}: {e}"))
}

macro_rules! ctx {
    ($what:expr, $r:expr) => {
        $r.map_err(|e| err($what)(e.to_string()))
    };
}

/// The running lab.
pub struct Lab {
    /// Working directory (server data, bundles, device files).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The server's operator actions.
    pub admin: Arc<Admin>,
    /// The server's broker (its sessions; the stream fault injector).
    pub broker: Arc<ferrota_server::Broker>,
    /// The MQTT/TLS port on 127.0.0.1.
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The boot key (its public half goes into SFlash).
    pub boot_key: BootSigningKey,
    /// The code-signing key.
    pub code_key: SigningKey,
    code_cert_pem: String,
}

impl Lab {
    /// Starts a lab in a new temporary directory.
    pub async fn start() -> Result<Lab, LabError> {
        let tmp = ctx!("temporary directory", tempfile::tempdir())?;
        let mut lab = Self::start_in(tmp.path()).await?;
        lab._tmp = Some(tmp);
        Ok(lab)
    }

    /// Starts a lab in `dir`: CA, server on `127.0.0.1:0`, keys.
    pub async fn start_in(dir: &Path) -> Result<Lab, LabError> {
        Self::start_configured(dir, |_| {}).await
    }

    /// [`Lab::start_in`] with the server configuration adjusted by `configure` (e.g. a
    /// `[broker] external` section; the data directory is `<dir>/server`).
    pub async fn start_configured(
        dir: &Path,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<Lab, LabError> {
        ferrota_server::tls::install_crypto_provider();
        let mut cfg = ServerConfig {
            data_dir: dir.join("server"),
            mqtt_listen: "127.0.0.1:0".into(),
            endpoint: "localhost".into(),
            ..ServerConfig::default()
        };
        configure(&mut cfg);
        let mqtt = ctx!(
            "MQTT listener",
            tokio::net::TcpListener::bind("127.0.0.1:0").await
        )?;
        let port = ctx!("MQTT listener", mqtt.local_addr())?.port();
        let server = ctx!("server", Server::open(&cfg, port).await)?;
        let admin = server.admin.clone();
        let broker = server.broker.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(mqtt, None, async {
                    let _ = rx.await;
                })
                .await;
        });
        let boot_key =
            ctx!("boot key", PrivateKey::generate(KeyType::EcdsaP256))?.into_boot_signing_key();
        let code_key = ctx!(
            "code-signing key",
            ctx!("code-signing key", PrivateKey::generate(KeyType::EcdsaP256))?
                .into_ota_signing_key()
        )?;
        let code_cert_pem = ctx!(
            "code-signing certificate",
            ferrota_keys::code_signing_certificate(&code_key, "Ferrota demo code signing", 365)
        )?;
        Ok(Lab {
            dir: dir.into(),
            _tmp: None,
            admin,
            broker,
            port,
            stop: Some(tx),
            task: Some(task),
            boot_key,
            code_key,
            code_cert_pem,
        })
    }

    /// Builds an image signed with the lab's keys.
    pub fn image(&self, minor: u8, counter: u32, tamper: Tamper) -> Result<DemoImage, LabError> {
        ctx!(
            "image",
            images::build(
                &self.boot_key,
                &self.code_key,
                FirmwareVersion::new(1, minor, 0),
                counter,
                tamper
            )
        )
    }

    /// Creates a thing, writes its bundle (`<dir>/things/<name>/device.toml` …), provisions a
    /// SECURE board for the lab's boot key and programs `first` into bank 0 (lower).
    pub async fn add_device(
        &self,
        name: &str,
        first: &DemoImage,
    ) -> Result<(Device, Arc<Loaded>), LabError> {
        self.add_device_on(name, first, self.port).await
    }

    /// [`Lab::add_device`] with the board's MQTT endpoint on `localhost:port` (another broker,
    /// e.g. mosquitto with the services connected as a client).
    pub async fn add_device_on(
        &self,
        name: &str,
        first: &DemoImage,
        port: u16,
    ) -> Result<(Device, Arc<Loaded>), LabError> {
        let b = ctx!("thing", self.admin.create_thing(name, &[]).await)?;
        let dir = self.dir.join("things").join(name);
        let cfg = DeviceConfig::for_thing(name, "localhost", port);
        let files: [(&Path, &str); 4] = [
            (&cfg.client_cert, &b.certificate_pem),
            (&cfg.client_key, &b.private_key_pem),
            (&cfg.root_ca, &b.root_ca_pem),
            (&cfg.code_signing_cert, &self.code_cert_pem),
        ];
        for (p, t) in files {
            ctx!(
                "bundle",
                ferrota_server::ca::write_file(&dir.join(p), t.as_bytes(), false)
            )?;
        }
        ctx!(
            "bundle",
            std::fs::write(dir.join("device.toml"), cfg.to_toml())
        )?;
        let loaded = ctx!("device.toml", DeviceConfig::load(&dir.join("device.toml")))?;
        let mut dev = ctx!(
            "provisioning",
            boot_chain::provision(&Provisioning {
                key: ctx!("boot key", self.boot_key.boot_key())?,
                life_cycle: LifeCycle::Secure,
                hardware: HardwareId::new(BOARD),
            })
        )?;
        ctx!(
            "programming",
            boot_chain::program_bank(&mut dev, Bank::Lower, &first.bank())
        )?;
        Ok((dev, Arc::new(loaded)))
    }

    /// Builds release 1.`minor`.0 (anti-rollback `counter`) of `base`: its code with a small
    /// fix, signed with the lab's keys ([`images::build_release`]).
    pub fn release(
        &self,
        base: &DemoImage,
        minor: u8,
        counter: u32,
    ) -> Result<DemoImage, LabError> {
        ctx!(
            "image",
            images::build_release(
                &self.boot_key,
                &self.code_key,
                base,
                FirmwareVersion::new(1, minor, 0),
                counter
            )
        )
    }

    /// Uploads `img` and creates OTA update `id` for `things`.
    pub async fn update(&self, id: &str, things: &[&str], img: &DemoImage) -> Result<(), LabError> {
        self.update_from(id, things, img, &[]).await
    }

    /// [`Lab::update`] with a delta from each of `bases` (uploaded too: `deltaFrom`), offered
    /// to the devices that report running it.
    pub async fn update_from(
        &self,
        id: &str,
        things: &[&str],
        img: &DemoImage,
        bases: &[&DemoImage],
    ) -> Result<(), LabError> {
        let sha = ctx!("upload", self.admin.put_file(&img.file).await)?;
        let mut file = OtaFile::firmware("app_combined_s.bin", sha, &img.signature)
            .certificate_name("code-signing.crt.pem");
        for b in bases {
            file = file.delta_from(ctx!("upload", self.admin.put_file(&b.file).await)?);
        }
        let mut req = CreateOtaUpdate::new(id)
            .description(format!("v{}", img.version))
            .file(file);
        for t in things {
            req = req.thing(t);
        }
        ctx!("OTA update", self.admin.create_ota(&req).await)?;
        Ok(())
    }

    /// The execution status of `thing` in update `id`, with its details.
    pub async fn status(
        &self,
        id: &str,
        thing: &str,
    ) -> Result<(String, BTreeMap<String, String>), LabError> {
        let d = ctx!("describe", self.admin.describe_ota(id).await)?;
        d.executions
            .into_iter()
            .find(|e| e.thing_name == thing)
            .map(|e| (e.status, e.status_details))
            .ok_or_else(|| LabError(format!("{thing} is not a target of {id}")))
    }

    /// Waits (up to 5 s) until the execution is terminal; returns it.
    pub async fn terminal_status(
        &self,
        id: &str,
        thing: &str,
    ) -> Result<(String, BTreeMap<String, String>), LabError> {
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.status(id, thing).await?;
            if matches!(
                s.0.as_str(),
                "SUCCEEDED" | "FAILED" | "REJECTED" | "CANCELED"
            ) || tokio::time::Instant::now() > until
            {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drops `fraction` (0.0–1.0) of the server's stream data blocks, picked by a generator
    /// seeded with `seed` (a benchmark and test aid: see `ferrota_server::streams`); 0 turns it
    /// off.
    pub fn set_stream_drop(&self, fraction: f64, seed: u64) -> Result<(), LabError> {
        self.broker
            .stream_faults()
            .configure(&ferrota_server::streams::FaultConfig {
                stream_drop: fraction,
                seed,
            })
            .map_err(LabError)
    }

    /// Stream data blocks the server dropped ([`Lab::set_stream_drop`]) so far.
    pub fn stream_blocks_dropped(&self) -> u64 {
        self.broker.stream_faults().dropped()
    }

    /// Stops the server.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A board in the lab with quiet-by-default options.
pub fn board(dev: Device, cfg: Arc<Loaded>, opts: Options) -> Board {
    Board::new(
        dev,
        cfg,
        Options {
            self_test_time: Duration::from_millis(50),
            ..opts
        },
    )
}

/// Runs `board` until an event satisfies `until` or `limit` passes; returns the events seen
/// and whether `until` held.
pub async fn drive(
    board: &mut Board,
    limit: Duration,
    mut until: impl FnMut(&[BoardEvent]) -> bool,
) -> Result<(Vec<BoardEvent>, bool), LabError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    board.observe(tx);
    let mut seen = Vec::new();
    let mut met = false;
    let stop = async {
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                e = rx.recv() => match e {
                    Some(e) => {
                        seen.push(e);
                        if until(&seen) {
                            met = true;
                            return;
                        }
                    }
                    None => return,
                }
            }
        }
    };
    let exit = ctx!("board", run_with(board, stop).await)?;
    if let ferrota_device::board::Exit::Halted(h) = exit {
        return Err(LabError(format!("the board halted: {h}")));
    }
    Ok((seen, met))
}

async fn run_with(
    board: &mut Board,
    stop: impl Future<Output = ()>,
) -> Result<ferrota_device::board::Exit, ferrota_device::board::RunError> {
    board.run(stop).await
}
