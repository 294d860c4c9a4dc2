//! `serve`: open the data directory, then run the MQTT/TLS listener and the HTTP API until the
//! injected shutdown future resolves. Listeners are passed in (tests bind port 0).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admin::Admin;
use crate::broker::Broker;
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
    acceptor: TlsAcceptor,
    token: String,
    max_connections: usize,
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
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServeError::Io(format!("{}: {e}", cfg.data_dir.display())))?;
    let store = Arc::new(SqliteStore::open(&cfg.db_path()).await?);
    let blobs = Arc::new(DirBlobStore::new(cfg.files_dir())?);
    let broker = Broker::new(store, blobs, cfg.policy(), cfg.limits());
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
        let own_crl = ca_dir.join("crl.pem");
        if own_crl.exists() {
            m.crls_pem.push(read(&own_crl)?);
        }
        for p in &cfg.crls {
            m.crls_pem.push(read(p)?);
        }
        let acceptor = TlsAcceptor::from(server_config(&m)?);
        Ok(Server {
            admin: Arc::new(admin),
            acceptor,
            token: operator_token(cfg)?,
            max_connections: cfg.max_connections,
        })
    }

    /// The operator token of the HTTP API.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves MQTT/TLS on `mqtt` and the API on `http` until `shutdown` resolves, then
    /// disconnects every client.
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
        let sem = Arc::new(Semaphore::new(self.max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
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
                    let Ok(permit) = sem.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "connection refused: too many connections");
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.acceptor.clone();
                    let broker = broker.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                            Ok(Ok(t)) => t,
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::warn!(%peer, "TLS handshake timed out");
                                return;
                            }
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
        broker.disconnect_all();
        if let Some(t) = api_task {
            let _ = t.await;
        }
        Ok(())
    }
}
