//! `serve`: open the data directory, then run the MQTT/TLS listener and the HTTP API until the
//! injected shutdown future resolves. Listeners are passed in (tests bind port 0).
//!
//! Beside them run the execution timers ([`crate::timeouts::run`]) and the revocation watch:
//! it wakes when this process revoked a certificate ([`Broker::revocations`], the HTTP API) and
//! otherwise every [`Server::revocation_poll`] (the offline CLI changes the same database from
//! another process). When the store's revoked certificates or the CRL files changed, it
//! rebuilds the TLS configuration with the CRL files re-read (new handshakes use it; no
//! restart) and disconnects every live session that authenticated with a revoked certificate.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admin::Admin;
use crate::broker::{Broker, KickReason};
use crate::ca::{Ca, CaError};
use crate::config::Config;
use crate::session::serve_connection;
use crate::store::{DirBlobStore, SqliteStore, StoreError};
use crate::tls::{TlsError, TlsMaterial, identity_of, server_config};

/// A startup failure.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// CA.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// TLS.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// I/O.
    #[error("{0}")]
    Io(String),
}

/// An opened server, ready to run.
pub struct Server {
    /// Operator actions (and through them the broker).
    pub admin: Arc<Admin>,
    tls: Arc<ReloadableTls>,
    token: String,
    max_connections: usize,
    /// How often the revocation watch looks at the store (default 1 s).
    pub revocation_poll: Duration,
    /// Longest sleep of the execution timers between store checks (default 60 s).
    pub timer_max_sleep: Duration,
    /// `[broker] external`: run the services as a client of that broker ([`crate::bridge`]).
    external: Option<crate::bridge::External>,
}

/// The TLS configuration, rebuilt when the CRL files change.
pub struct ReloadableTls {
    base: TlsMaterial,
    crl_files: Vec<PathBuf>,
    current: RwLock<(Vec<String>, Arc<ServerConfig>)>,
}

impl ReloadableTls {
    /// Reads the CRL files (missing ones count as empty) and builds the configuration.
    pub fn new(base: TlsMaterial, crl_files: Vec<PathBuf>) -> Result<Self, ServeError> {
        let crls = read_crls(&crl_files);
        let cfg = Self::build(&base, &crls)?;
        Ok(ReloadableTls {
            base,
            crl_files,
            current: RwLock::new((crls, cfg)),
        })
    }

    fn build(base: &TlsMaterial, crls: &[String]) -> Result<Arc<ServerConfig>, ServeError> {
        let mut m = base.clone();
        m.crls_pem
            .extend(crls.iter().filter(|c| !c.trim().is_empty()).cloned());
        Ok(server_config(&m)?)
    }

    /// The configuration for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .clone(),
        )
    }

    /// Re-reads the CRL files; rebuilds the configuration if they changed (`force`: always).
    /// A CRL that does not parse (e.g. caught mid-write) keeps the current configuration.
    pub fn reload(&self, force: bool) -> bool {
        let crls = read_crls(&self.crl_files);
        if !force && self.current.read().unwrap_or_else(|e| e.into_inner()).0 == crls {
            return false;
        }
        match Self::build(&self.base, &crls) {
            Ok(cfg) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (crls, cfg);
                tracing::info!("TLS configuration reloaded (CRL)");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "CRL not reloaded; keeping the previous one");
                false
            }
        }
    }
}

fn read_crls(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

async fn revoked_ids(b: &Broker) -> Option<HashSet<String>> {
    match b.store.revoked_certificates().await {
        Ok(v) => Some(v.into_iter().map(|c| c.id).collect()),
        Err(e) => {
            tracing::error!(error = %e, "reading revoked certificates failed");
            None
        }
    }
}

/// Keeps TLS and the live sessions in line with the revocations (see the module docs).
async fn watch_revocations(b: Arc<Broker>, tls: Arc<ReloadableTls>, poll: Duration) {
    let mut known = revoked_ids(&b).await.unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = b.revocations.notified() => {}
        }
        let Some(now) = revoked_ids(&b).await else {
            continue;
        };
        let changed = now != known;
        tls.reload(changed);
        if !now.is_empty() {
            // Every time, not only on a change: a session may have passed its CONNECT check
            // just before the revocation was committed.
            for c in b.disconnect_certs(&now, KickReason::Revoked) {
                tracing::info!(client = %c, "disconnected: certificate revoked");
            }
        }
        known = now;
    }
}

fn read(p: &std::path::Path) -> Result<String, ServeError> {
    std::fs::read_to_string(p).map_err(|e| ServeError::Io(format!("{}: {e}", p.display())))
}

/// Reads the operator token, creating a random one (0600) on first use.
pub fn operator_token(cfg: &Config) -> Result<String, ServeError> {
    let p = cfg.token_path();
    if let Ok(t) = std::fs::read_to_string(&p) {
        return Ok(t.trim().to_string());
    }
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| ServeError::Io(e.to_string()))?;
    let t = hex::encode(b);
    crate::ca::write_file(&p, t.as_bytes(), true)?;
    Ok(t)
}

/// Opens the admin view of a data directory without serving (offline CLI commands).
pub async fn open_admin(cfg: &Config, port: u16) -> Result<Admin, ServeError> {
    // A configuration built in code is checked before anything is created, as a loaded one is.
    cfg.faults.validate().map_err(ServeError::Io)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServeError::Io(format!("{}: {e}", cfg.data_dir.display())))?;
    let store = Arc::new(SqliteStore::open(&cfg.db_path()).await?);
    let blobs = Arc::new(DirBlobStore::new(cfg.files_dir())?);
    let broker = Broker::new(store, blobs, cfg.policy(), cfg.limits());
    broker
        .stream_faults
        .configure(&cfg.faults)
        .map_err(ServeError::Io)?;
    let ca = if Ca::cert_path(&cfg.ca_dir()).exists() {
        Some(Ca::load(&cfg.ca_dir())?)
    } else {
        None
    };
    Ok(Admin {
        broker,
        ca,
        endpoint: cfg.endpoint.clone(),
        port,
    })
}

impl Server {
    /// Opens the data directory (creating the CA on first start) and builds the TLS setup.
    pub async fn open(cfg: &Config, port: u16) -> Result<Server, ServeError> {
        let ca_dir = cfg.ca_dir();
        if !Ca::cert_path(&ca_dir).exists() {
            tracing::info!(dir = %ca_dir.display(), "creating the fleet CA");
            Ca::init(&ca_dir, &cfg.server_names)?;
        }
        let admin = open_admin(cfg, port).await?;
        let mut m = TlsMaterial {
            client_cas_pem: vec![read(&Ca::cert_path(&ca_dir))?],
            server_cert_pem: read(&ca_dir.join("server.crt.pem"))?,
            server_key_pem: read(&ca_dir.join("server.key.pem"))?,
            crls_pem: Vec::new(),
        };
        for p in &cfg.client_cas {
            m.client_cas_pem.push(read(p)?);
        }
        // Configured CRLs must exist at start; all are re-read on reload.
        for p in &cfg.crls {
            read(p)?;
        }
        let mut crl_files = vec![ca_dir.join("crl.pem")];
        crl_files.extend(cfg.crls.iter().cloned());
        let tls = Arc::new(ReloadableTls::new(m, crl_files)?);
        let external = crate::bridge::External::from_config(cfg).map_err(ServeError::Io)?;
        Ok(Server {
            admin: Arc::new(admin),
            tls,
            token: operator_token(cfg)?,
            max_connections: cfg.max_connections,
            revocation_poll: Duration::from_secs(1),
            timer_max_sleep: Duration::from_secs(60),
            external,
        })
    }

    /// The operator token of the HTTP API.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves MQTT/TLS on `mqtt` and the API on `http` until `shutdown` resolves, then
    /// disconnects every client. In client mode (`[broker] external`) `mqtt` is not used: the
    /// services connect to the external broker instead.
    pub async fn run(
        self,
        mqtt: TcpListener,
        http: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let broker = self.admin.broker.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let api_task = http.map(|l| {
            let app = crate::api::router(self.admin.clone(), self.token.clone());
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.changed().await;
                    })
                    .await;
            })
        });
        let timers = tokio::spawn(crate::timeouts::run(broker.clone(), self.timer_max_sleep));
        let watch = tokio::spawn(watch_revocations(
            broker.clone(),
            self.tls.clone(),
            self.revocation_poll,
        ));
        // `max_connections` counts authenticated connections only; the ones still in their
        // TLS handshake are bounded by the pending gate (see crate::gate).
        let sem = Arc::new(Semaphore::new(self.max_connections.max(1)));
        let limits = broker.limits.clone();
        let pending =
            crate::gate::PendingGate::new(limits.max_pending, limits.max_pending_per_address);
        if self.external.is_none() {
            crate::gate::raise_open_files(
                (self.max_connections + limits.max_pending) as u64 + crate::gate::FD_MARGIN,
            );
        }
        tokio::pin!(shutdown);
        let bridge = self.external.clone().map(|ext| {
            let mut rx = stop_rx.clone();
            tokio::spawn(crate::bridge::run(broker.clone(), ext, async move {
                let _ = rx.changed().await;
            }))
        });
        if bridge.is_some() {
            (&mut shutdown).await;
        }
        while bridge.is_none() {
            tokio::select! {
                _ = &mut shutdown => break,
                r = mqtt.accept() => {
                    let (tcp, peer) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let (mut slot, evicted) = pending.admit(peer.ip());
                    if evicted {
                        tracing::debug!(%peer, "pending connections full: the oldest was closed");
                    }
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.tls.acceptor();
                    let broker = broker.clone();
                    let sem = sem.clone();
                    let handshake_timeout = limits.tls_handshake_timeout;
                    tokio::spawn(async move {
                        let hs = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
                        let tls = tokio::select! {
                            r = hs => match r {
                                Ok(Ok(t)) => t,
                                Ok(Err(e)) => {
                                    tracing::warn!(%peer, error = %e, "TLS handshake refused");
                                    return;
                                }
                                Err(_) => {
                                    tracing::warn!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            },
                            _ = slot.evicted() => {
                                tracing::debug!(%peer, "closed before its TLS handshake ended: too many pending connections");
                                return;
                            }
                        };
                        drop(slot);
                        // The certificate is verified: from here on the connection counts
                        // against max_connections.
                        let Ok(_permit) = sem.try_acquire_owned() else {
                            tracing::warn!(%peer, "connection refused: too many connections");
                            return;
                        };
                        let Some(id) = identity_of(tls.get_ref().1) else {
                            tracing::warn!(%peer, "client certificate without a subject CN");
                            return;
                        };
                        serve_connection(broker, tls, id).await;
                    });
                }
            }
        }
        let _ = stop_tx.send(true);
        if let Some(b) = bridge {
            match b.await {
                Ok(Err(e)) => tracing::error!(error = %e, "client mode failed"),
                Err(e) => tracing::error!(error = %e, "client mode task"),
                Ok(Ok(())) => {}
            }
        }
        timers.abort();
        watch.abort();
        broker.disconnect_all();
        if let Some(t) = api_task {
            let _ = t.await;
        }
        Ok(())
    }
}
