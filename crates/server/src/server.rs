//! `serve`: open the data directory, then run the MQTT/TLS listener and the HTTP API until the
//! injected shutdown future resolves. Listeners are passed in (tests bind port 0).
//!
//! Beside them run the execution timers ([`crate::timeouts::run`]), the rollouts
//! ([`crate::rollout::run`]) and the revocation watch:
//! it wakes when this process revoked a certificate ([`Broker::revocations`], the HTTP API) and
//! otherwise every [`Server::revocation_poll`] (the offline CLI changes the same database from
//! another process). When the store's revoked certificates or the CRL files changed, it
//! rebuilds the TLS configuration with the CRL files re-read (new handshakes use it; no
//! restart) and disconnects every live session that authenticated with a revoked certificate.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, Admin};
use crate::broker::{Broker, KickReason};
use crate::ca::{Ca, CaError};
use crate::config::Config;
use crate::context::{Outbound, Services, SystemClock};
use crate::lease::{Lease, PgLease};
use crate::metrics::TlsFailure;
use crate::session::serve_connection;
use crate::store::postgres::PostgresStore;
use crate::store::{BlobStore, DirBlobStore, S3BlobStore, SharedStore, SqliteStore, StoreError};
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
    /// The database is missing or empty while the data directory is in use (its CA, token or
    /// files exist): refused, so an empty registry never serves a fleet
    /// ([`check_database_present`]). The CLI tells the operator to restore it.
    #[error(
        "{}: the database {state}, but the data directory {} is in use ({}); refusing to \
         start with an empty registry, which would refuse every device. Restore {} from a \
         backup, or, to start a new fleet, move {} aside (or use another --data-dir)",
        db.display(), data_dir.display(), list(evidence), db.display(), data_dir.display()
    )]
    DatabaseLost {
        /// The database file.
        db: PathBuf,
        /// Missing or empty.
        state: DbLoss,
        /// The data directory.
        data_dir: PathBuf,
        /// What shows the directory is in use.
        evidence: Vec<PathBuf>,
    },
    /// The database could not be opened (corrupt, not a database, unreadable): SQLite's
    /// message, naming the file. The server does not repair it.
    #[error(
        "{}: {message} (restore the database from a backup; the server does not repair it)",
        db.display()
    )]
    DatabaseUnusable {
        /// The database file.
        db: PathBuf,
        /// What SQLite (or the integrity check) said.
        message: String,
    },
    /// The PostgreSQL store of `database_url` could not be used: the URL does not parse, the
    /// server did not answer within `database_wait`, it refused the login or the database, or
    /// the schema is newer than this server's. `url` has its password replaced by `***`.
    #[error(
        "database_url {url}: {message} (check database_url in the configuration, \
         --database-url or FERROTA_DATABASE_URL, and that the server is up)"
    )]
    DatabaseServer {
        /// The URL, password hidden.
        url: String,
        /// What sqlx or PostgreSQL said.
        message: String,
    },
    /// A file of the data directory or configuration (certificate, key, CRL, token) is
    /// unreadable or not what it must be.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration is invalid (`[broker]`).
    #[error("{0}")]
    Config(String),
    /// I/O.
    #[error("{0}")]
    Io(String),
}

/// How a database was lost ([`ServeError::DatabaseLost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbLoss {
    /// The file does not exist.
    Missing,
    /// The file has 0 bytes (SQLite would take it for a new database).
    Empty,
}

impl std::fmt::Display for DbLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbLoss::Missing => "is missing",
            DbLoss::Empty => "is empty (0 bytes)",
        })
    }
}

fn list(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

fn file_err(p: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::File {
        path: p.to_path_buf(),
        message: e.to_string(),
    }
}

/// An opened server, ready to run.
pub struct Server {
    /// Operator actions, over the broker's services and sessions.
    pub admin: Arc<Admin>,
    /// The broker: sessions, routing, authorisation (and the services a PUBLISH goes to).
    pub broker: Arc<Broker>,
    tls: Arc<ReloadableTls>,
    token: String,
    max_connections: usize,
    /// How often the revocation watch looks at the store (default 1 s).
    pub revocation_poll: Duration,
    /// Longest sleep of the execution timers between store checks (default 60 s).
    pub timer_max_sleep: Duration,
    /// `[broker] external`: run the services as a client of that broker ([`crate::bridge`]).
    external: Option<crate::bridge::External>,
    /// `[broker] amqp`: run as a worker of a RabbitMQ cluster ([`crate::amqp`]).
    amqp: Option<crate::amqp::Amqp>,
    /// `[broker] auth_secret`: answer the cluster's auth questions ([`crate::broker_auth`]).
    broker_auth: Option<crate::broker_auth::BrokerAuth>,
    /// HTTPS for the HTTP listener ([`crate::https`]); `None`: plain HTTP, loopback only.
    http_tls: Option<Arc<ServerConfig>>,
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

fn read(p: &Path) -> Result<String, ServeError> {
    std::fs::read_to_string(p).map_err(|e| file_err(p, e))
}

/// What shows that a data directory has been used: the fleet CA, the operator token, a stored
/// firmware file. Each of these is created after (or with) the database, never before it.
fn in_use_evidence(cfg: &Config) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = [
        Ca::cert_path(&cfg.ca_dir()),
        cfg.ca_dir().join("ca.key.pem"),
        cfg.token_path(),
    ]
    .into_iter()
    .filter(|p| p.exists())
    .collect();
    if let Some(Ok(e)) = std::fs::read_dir(cfg.files_dir())
        .ok()
        .and_then(|mut d| d.next())
    {
        found.push(e.path());
    }
    found
}

/// Refuses a data directory whose database is missing or empty (0 bytes: SQLite would take
/// it for a new database) while the rest of the directory is in use (`in_use_evidence`).
///
/// Starting there would serve an empty registry beside the fleet's CA and firmware: every
/// device would get CONNACK 5 and every OTA update would be gone, silently. Decision: refuse,
/// name the database and the evidence, and give the two ways out (restore the database, or
/// move the directory aside to start a new fleet). A new directory (none of the evidence) gets
/// a new database, as before; `ferrota ca init` ([`init_data_dir`]) creates the database
/// before the CA, so a CA never precedes its database.
///
/// With `database_url` the registry is on PostgreSQL and the SQLite file is not used: nothing
/// to check here (a new, empty PostgreSQL database gets the schema, like a new file).
pub fn check_database_present(cfg: &Config) -> Result<(), ServeError> {
    if cfg.database_url.is_some() {
        return Ok(());
    }
    let db = cfg.db_path();
    let state = match std::fs::metadata(&db) {
        Ok(m) if m.len() > 0 => return Ok(()),
        Ok(_) => DbLoss::Empty,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DbLoss::Missing,
        Err(e) => return Err(file_err(&db, e)),
    };
    let evidence = in_use_evidence(cfg);
    if evidence.is_empty() {
        return Ok(());
    }
    Err(ServeError::DatabaseLost {
        db,
        state,
        data_dir: cfg.data_dir.clone(),
        evidence,
    })
}

/// How many connections one server keeps to PostgreSQL: the MQTT services, the API and the
/// timers share them; 16 keeps a fleet of workers well under PostgreSQL's default
/// `max_connections` (100).
const PG_CONNECTIONS: u32 = 16;

/// Opens the store: PostgreSQL at `database_url` when one is configured, else the data
/// directory's SQLite database (checked by [`check_database_present`] first). Every error
/// names the database (the file, or the URL without its password).
///
/// On PostgreSQL this process is one worker of several: it also gets the lease of the work
/// that must happen once ([`crate::lease::PgLease`]).
async fn open_store(cfg: &Config) -> Result<(SharedStore, Option<Arc<dyn Lease>>), ServeError> {
    if let Some(url) = &cfg.database_url {
        let wait = Duration::from_secs(cfg.database_wait);
        return match PostgresStore::connect(url, PG_CONNECTIONS, wait).await {
            Ok(s) => {
                tracing::info!(url = %redact_url(url), "store on PostgreSQL");
                let lease: Arc<dyn Lease> = Arc::new(PgLease::new(s.pool().clone()));
                Ok((Arc::new(s), Some(lease)))
            }
            Err(e) => Err(ServeError::DatabaseServer {
                url: redact_url(url),
                message: match &e {
                    StoreError::Db(sqlx::Error::Database(d)) => d.message().to_string(),
                    StoreError::Db(sqlx::Error::Io(io)) => {
                        format!("not reachable within {}s: {io}", cfg.database_wait)
                    }
                    StoreError::Db(sqlx::Error::PoolTimedOut) => {
                        format!("not reachable within {}s", cfg.database_wait)
                    }
                    e => e.to_string(),
                },
            }),
        };
    }
    Ok((Arc::new(open_sqlite(cfg).await?), None))
}

/// A database URL fit for a log or an error: the password, if any, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// Opens the data directory's SQLite database; every error names the file.
async fn open_sqlite(cfg: &Config) -> Result<SqliteStore, ServeError> {
    let db = cfg.db_path();
    SqliteStore::open(&db).await.map_err(|e| {
        let msg = match &e {
            StoreError::Db(sqlx::Error::Database(d)) => d.message().to_string(),
            e => e.to_string(),
        };
        ServeError::DatabaseUnusable {
            db: db.clone(),
            message: msg,
        }
    })
}

/// Reads the operator token, creating a random one (0600) on first use.
pub fn operator_token(cfg: &Config) -> Result<String, ServeError> {
    let p = cfg.token_path();
    match std::fs::read_to_string(&p) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        // An empty token would let an empty bearer in: refuse it rather than replace it.
        Ok(_) => {
            return Err(file_err(
                &p,
                "the operator token is empty (delete the file to have a new one made)",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(&p, e)),
    }
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| ServeError::Io(e.to_string()))?;
    let t = hex::encode(b);
    // Several workers may start together on one data directory: the token is written under
    // a name of its own and then linked into place, which fails if another process
    // got there first; its token is then the one (no worker keeps a token the file lost).
    let tmp = p.with_file_name(format!(".api-token.{}.{}.new", std::process::id(), &t[..8]));
    crate::ca::write_file(&tmp, t.as_bytes(), true)?;
    let linked = std::fs::hard_link(&tmp, &p);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let t = std::fs::read_to_string(&p).map_err(|e| file_err(&p, e))?;
            Ok(t.trim().to_string())
        }
        Err(e) => Err(file_err(&p, e)),
    }
}

/// What a data directory holds: the store, the firmware files and the CA (if made yet).
struct DataDir {
    store: SharedStore,
    /// The lease of a worker of several (PostgreSQL); `None`: one process, it always holds.
    lease: Option<Arc<dyn Lease>>,
    blobs: Arc<dyn BlobStore>,
    ca: Option<Ca>,
}

/// Opens a data directory's store, files and CA ([`check_database_present`] first).
async fn open_data_dir(cfg: &Config) -> Result<DataDir, ServeError> {
    check_database_present(cfg)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| file_err(&cfg.data_dir, e))?;
    let (store, lease) = open_store(cfg).await?;
    let blobs: Arc<dyn BlobStore> = match cfg.s3_options() {
        Ok(None) => Arc::new(DirBlobStore::new(cfg.files_dir())?),
        // Connecting checks the bucket answers: a wrong endpoint, bucket or credentials
        // stop the start with a message naming the bucket.
        Ok(Some(o)) => Arc::new(S3BlobStore::connect(&o).await?),
        Err(e) => return Err(StoreError::Io(std::io::Error::other(e)).into()),
    };
    let ca = if Ca::cert_path(&cfg.ca_dir()).exists() {
        Some(Ca::load(&cfg.ca_dir())?)
    } else {
        None
    };
    Ok(DataDir {
        store,
        lease,
        blobs,
        ca,
    })
}

/// The offline CLI's message sink: no session listens in this process (a server in another
/// process tells its devices when they next ask, as AWS devices poll `$next/get`).
struct Nowhere;

impl Outbound for Nowhere {
    fn publish(&self, _topic: &str, _payload: bytes::Bytes, _qos: rumqttc::QoS) {}
}

/// The broker is the live sessions operator actions see ([`admin::Sessions`]). Implemented
/// here, where the admin and the broker meet, so neither module imports the other.
impl admin::Sessions for Broker {
    fn is_connected(&self, thing: &str) -> bool {
        Broker::is_connected(self, thing)
    }

    fn revoked(&self, thing: &str) {
        self.disconnect(thing, KickReason::Revoked);
        // Wakes the revocation watch of `Server::run`: CRL reloaded, sessions of every revoked
        // certificate closed.
        self.revocations.notify_one();
    }
}

/// The `[trust]` service of `cfg` ([`crate::config::TrustConfig::service`]).
fn trust_service(cfg: &Config) -> Result<Option<Arc<crate::trust::TrustService>>, ServeError> {
    cfg.trust
        .service()
        .map_err(|e| ServeError::Config(format!("[trust]: {e}")))
}

/// Opens the admin view of a data directory without serving (offline CLI commands): no broker,
/// no sessions ([`admin::NoSessions`]); Jobs notifications go nowhere.
pub async fn open_admin(cfg: &Config, port: u16) -> Result<Admin, ServeError> {
    let d = open_data_dir(cfg).await?;
    let services = Arc::new(Services::new(
        d.store,
        d.blobs,
        Arc::new(SystemClock),
        Arc::new(Nowhere),
    ));
    // #20: OTA create checks metadata files offline as the server does.
    services.set_trust(trust_service(cfg)?);
    let (endpoint, port) = device_endpoint(cfg, port);
    let admin = Admin {
        services,
        sessions: Arc::new(admin::NoSessions),
        ca: d.ca,
        endpoint,
        port,
    };
    admin.follow_dynamic_targets();
    Ok(admin)
}

/// Where devices connect, as bundles name it: this server's `endpoint` and MQTT `port`, or in
/// client mode the external broker's host and port (devices never connect to this process
/// then). A malformed `[broker] external` is left to [`crate::bridge::External::from_config`],
/// which refuses the start naming it.
fn device_endpoint(cfg: &Config, port: u16) -> (String, u16) {
    if !cfg.broker.amqp.is_empty() {
        return (cfg.endpoint.clone(), cfg.broker.device_port);
    }
    crate::bridge::External::address(cfg)
        .ok()
        .flatten()
        .unwrap_or_else(|| (cfg.endpoint.clone(), port))
}

/// Creates a new data directory: its database first, then the fleet CA and the server
/// certificate for `server_names` (`ferrota ca init`, and the first start of a server).
/// The order matters: a CA without a database is what [`check_database_present`] reads as a
/// lost database.
pub async fn init_data_dir(cfg: &Config, server_names: &[String]) -> Result<Ca, ServeError> {
    drop(open_admin(cfg, 0).await?);
    Ok(Ca::init(&cfg.ca_dir(), server_names)?)
}

/// The PEM certificates of `p` (at least one), each checked to parse as X.509.
fn pem_certs(p: &Path, pem: &str) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    let bad = |m: String| file_err(p, m);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    }
    Ok(certs)
}

/// Checks every TLS input file on its own, so a start-up error names the file at fault
/// (rustls alone reports e.g. "peer sent no certificates" for an empty server certificate).
fn check_tls_files(
    ca_files: &[PathBuf],
    ca_pems: &[String],
    cert: (&Path, &str),
    key: (&Path, &str),
    crls: &[PathBuf],
) -> Result<(), ServeError> {
    let mut roots = RootCertStore::empty();
    for (p, pem) in ca_files.iter().zip(ca_pems) {
        for c in pem_certs(p, pem)? {
            roots
                .add(c)
                .map_err(|e| file_err(p, format!("not a usable CA: {e}")))?;
        }
    }
    let roots = Arc::new(roots);
    for p in crls {
        let pem = read(p)?;
        let list: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| file_err(p, format!("not a PEM CRL: {e}")))?;
        if list.is_empty() && !pem.trim().is_empty() {
            return Err(file_err(p, "no PEM CRL (-----BEGIN X509 CRL-----) in it"));
        }
        WebPkiClientVerifier::builder_with_provider(roots.clone(), crate::tls::provider())
            .with_crls(list)
            .build()
            .map_err(|e| file_err(p, e))?;
    }
    let chain = pem_certs(cert.0, cert.1)?;
    let key_der = PrivateKeyDer::from_pem_slice(key.1.as_bytes())
        .map_err(|e| file_err(key.0, format!("not a PEM private key: {e}")))?;
    ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e| {
            ServeError::Io(format!(
                "{} with {}: {e}",
                cert.0.display(),
                key.0.display()
            ))
        })?;
    Ok(())
}

/// Reads and checks the TLS files of the data directory and the configuration (each error
/// names its file), and builds the reloadable TLS configuration.
fn tls_setup(cfg: &Config) -> Result<Arc<ReloadableTls>, ServeError> {
    let ca_dir = cfg.ca_dir();
    let cert_path = ca_dir.join("server.crt.pem");
    let key_path = ca_dir.join("server.key.pem");
    let mut ca_files = vec![Ca::cert_path(&ca_dir)];
    ca_files.extend(cfg.client_cas.iter().cloned());
    let ca_pems = ca_files
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let m = TlsMaterial {
        client_cas_pem: ca_pems.clone(),
        server_cert_pem: read(&cert_path)?,
        server_key_pem: read(&key_path)?,
        crls_pem: Vec::new(),
    };
    // Configured CRLs must exist at start (the CA's own crl.pem may not); all are re-read on
    // reload.
    let own_crl = ca_dir.join("crl.pem");
    let mut crl_files = vec![own_crl.clone()];
    crl_files.extend(cfg.crls.iter().cloned());
    let present: Vec<PathBuf> = crl_files
        .iter()
        .filter(|p| **p != own_crl || p.exists())
        .cloned()
        .collect();
    check_tls_files(
        &ca_files,
        &ca_pems,
        (&cert_path, &m.server_cert_pem),
        (&key_path, &m.server_key_pem),
        &present,
    )?;
    Ok(Arc::new(ReloadableTls::new(m, crl_files)?))
}

/// What the HTTP listener serves: the API (`/api/…`, `/metrics`, [`crate::api`]) and the
/// operator's console (`/ui/…`, [`ferrota_console`]) on top of it. The console calls this same
/// API router in-process with the operator's token, so its pages carry the API's role checks,
/// validation and audit records.
pub fn http_router(admin: Arc<Admin>, token: String) -> axum::Router {
    let api = crate::api::router(admin, token);
    api.clone().merge(ferrota_console::router(api))
}

/// The rustls configuration of the HTTP listener, or `None` when the configuration serves it
/// in clear ([`Config::http_tls_enabled`]). With `http_cert`/`http_key` those files (both
/// needed, each error naming its file); else a certificate for
/// [`Config::http_cert_names`] issued now by the fleet CA `ca`.
pub fn http_tls_config(cfg: &Config, ca: &Ca) -> Result<Option<Arc<ServerConfig>>, ServeError> {
    if !cfg.http_tls_enabled() {
        return Ok(None);
    }
    let (chain, key, what) = match (&cfg.http_cert, &cfg.http_key) {
        (Some(c), Some(k)) => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| file_err(p, e));
            let (cert_pem, key_pem) = (read(c)?, read(k)?);
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| file_err(c, format!("not PEM: {e}")))?;
            if chain.is_empty() {
                return Err(file_err(
                    c,
                    "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| file_err(k, format!("not a PEM private key: {e}")))?;
            (chain, key, format!("{} with {}", c.display(), k.display()))
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ServeError::Config(
                "http_cert and http_key (--http-cert, --http-key) go together: give both, or \
                 neither for a certificate from the fleet CA"
                    .into(),
            ));
        }
        (None, None) => {
            let issued = ca.issue_server(&cfg.http_cert_names())?;
            let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| ServeError::Io(format!("the HTTPS certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
                .map_err(|e| ServeError::Io(format!("the HTTPS key: {e}")))?;
            (
                chain,
                key,
                "the HTTPS certificate from the fleet CA".to_string(),
            )
        }
    };
    let mut sc = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| ServeError::Io(format!("{what}: {e}")))?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(sc)))
}

impl Server {
    /// Opens the data directory (creating the CA on first start) and builds the TLS setup.
    pub async fn open(cfg: &Config, port: u16) -> Result<Server, ServeError> {
        // Before anything is opened or created: an API exposed in clear is refused.
        cfg.check_http_listen().map_err(ServeError::Config)?;
        // #20: the trust directory is read before anything is opened or created; a refused
        // one stops the start naming the file and the rule.
        let trust = trust_service(cfg)?;
        let ca_dir = cfg.ca_dir();
        // An existing directory's TLS files are checked before the database is opened, so a
        // refused start leaves every file as it was; a new directory gets its database, then
        // its CA.
        let tls = if Ca::cert_path(&ca_dir).exists() {
            check_database_present(cfg)?;
            Some(tls_setup(cfg)?)
        } else {
            None
        };
        let d = open_data_dir(cfg).await?;
        let ca = match d.ca {
            Some(ca) => ca,
            None => {
                tracing::info!(dir = %ca_dir.display(), "creating the fleet CA");
                Ca::init(&ca_dir, &cfg.server_names)?
            }
        };
        let http_tls = http_tls_config(cfg, &ca)?;
        let broker = Broker::new(d.store, d.blobs, cfg.policy(), cfg.limits());
        if let Some(t) = &trust {
            tracing::info!(
                dir = ?cfg.trust.dir,
                root = t.root_version(),
                lifetime = t.lifetime().as_secs(),
                check_bundles = t.check_bundles(),
                "signed update metadata on: Jobs answers carry ferrotaTimestamp"
            );
        }
        broker.services.set_trust(trust);
        if let Some(lease) = d.lease {
            broker.services.set_lease(lease);
        }
        let (endpoint, port) = device_endpoint(cfg, port);
        let admin = Admin {
            services: broker.services.clone(),
            sessions: broker.clone(),
            ca: Some(ca),
            endpoint,
            port,
        };
        admin.follow_dynamic_targets();
        let tls = match tls {
            Some(t) => t,
            None => tls_setup(cfg)?,
        };
        let external = crate::bridge::External::from_config(cfg).map_err(ServeError::Config)?;
        if external.is_some() && !cfg.broker.amqp.is_empty() {
            return Err(ServeError::Config(
                "[broker]: set `external` (an MQTT broker) or `amqp` (a RabbitMQ cluster), not both"
                    .into(),
            ));
        }
        if cfg.broker.amqp.iter().any(|u| u.trim().is_empty()) {
            return Err(ServeError::Config(
                "[broker] amqp: an empty URL (give each node's amqp://user:password@host:port/vhost)"
                    .into(),
            ));
        }
        let amqp = (!cfg.broker.amqp.is_empty()).then(|| crate::amqp::Amqp {
            urls: cfg.broker.amqp.clone(),
            prefetch: cfg.broker.amqp_prefetch,
        });
        let broker_auth = match cfg.broker.auth_secret.as_deref() {
            Some("") => {
                return Err(ServeError::Config(
                    "[broker] auth_secret is empty: set a long random string".into(),
                ));
            }
            Some(secret) => Some(crate::broker_auth::BrokerAuth::new(
                broker.services.store.clone(),
                cfg.policy(),
                secret.to_string(),
            )),
            None => None,
        };
        Ok(Server {
            admin: Arc::new(admin),
            broker,
            tls,
            token: operator_token(cfg)?,
            max_connections: cfg.max_connections,
            revocation_poll: Duration::from_secs(1),
            timer_max_sleep: Duration::from_secs(60),
            external,
            amqp,
            broker_auth,
            http_tls,
        })
    }

    /// Whether the HTTP listener serves HTTPS (`http_tls`, `http_cert`).
    pub fn http_is_tls(&self) -> bool {
        self.http_tls.is_some()
    }

    /// The operator token of the HTTP API.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves MQTT/TLS on `mqtt` and the API on `http` until `shutdown` resolves, then
    /// disconnects every client. In client mode (`[broker] external`) `mqtt` is not used: the
    /// services connect to the external broker instead. The API is served over TLS when the
    /// configuration says so ([`crate::https`]); a plain `http` listener on an address that is
    /// not loopback is refused before anything runs.
    pub async fn run(
        self,
        mqtt: TcpListener,
        http: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        if let Some(l) = &http
            && self.http_tls.is_none()
        {
            crate::https::refuse_plain_on_network(l.local_addr()?)?;
        }
        let broker = self.broker.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let api_task = http.map(|l| {
            let mut app = http_router(self.admin.clone(), self.token.clone());
            if let Some(a) = self.broker_auth.clone() {
                app = app.merge(a.router());
            }
            let mut rx = stop_rx.clone();
            let stop = async move {
                let _ = rx.changed().await;
            };
            let tls = self.http_tls.clone();
            let limits = self.broker.limits.clone();
            tokio::spawn(async move {
                let served = match tls {
                    Some(tls) => {
                        let gate = crate::gate::PendingGate::new(
                            limits.max_pending,
                            limits.max_pending_per_address,
                        );
                        match crate::https::HttpsListener::new(
                            l,
                            tls,
                            limits.tls_handshake_timeout,
                            gate,
                        ) {
                            Ok(l) => axum::serve(l, app).with_graceful_shutdown(stop).await,
                            Err(e) => Err(e),
                        }
                    }
                    None => axum::serve(l, app).with_graceful_shutdown(stop).await,
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the HTTP API stopped");
                }
            })
        });
        let timers = tokio::spawn(crate::timeouts::run(
            broker.services.clone(),
            self.timer_max_sleep,
        ));
        let rollouts = tokio::spawn(crate::rollout::run(
            broker.services.clone(),
            self.timer_max_sleep,
        ));
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
        if self.external.is_none() && self.amqp.is_none() {
            crate::gate::raise_open_files(
                (self.max_connections + limits.max_pending) as u64 + crate::gate::FD_MARGIN,
            );
        }
        tokio::pin!(shutdown);
        let bridge = match (self.external.clone(), self.amqp.clone()) {
            (Some(ext), _) => {
                let mut rx = stop_rx.clone();
                let b = broker.clone();
                Some(tokio::spawn(async move {
                    if let Err(e) = crate::bridge::run(b, ext, async move {
                        let _ = rx.changed().await;
                    })
                    .await
                    {
                        tracing::error!(error = %e, "the external broker client stopped");
                    }
                }))
            }
            (None, Some(amqp)) => {
                let mut rx = stop_rx.clone();
                let b = broker.clone();
                Some(tokio::spawn(async move {
                    if let Err(e) = crate::amqp::run(b, amqp, async move {
                        let _ = rx.changed().await;
                    })
                    .await
                    {
                        tracing::error!(error = %e, "the AMQP worker stopped");
                    }
                }))
            }
            (None, None) => None,
        };
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
                    let metrics = broker.services.metrics.clone();
                    tokio::spawn(async move {
                        let hs = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
                        let tls = tokio::select! {
                            r = hs => match r {
                                Ok(Ok(t)) => {
                                    metrics.tls_handshake(Ok(()));
                                    t
                                }
                                Ok(Err(e)) => {
                                    metrics.tls_handshake(Err(TlsFailure::of(&e)));
                                    tracing::warn!(%peer, error = %e, "TLS handshake refused");
                                    return;
                                }
                                Err(_) => {
                                    metrics.tls_handshake(Err(TlsFailure::Timeout));
                                    tracing::warn!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            },
                            _ = slot.evicted() => {
                                metrics.tls_handshake(Err(TlsFailure::Evicted));
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
        if let Some(b) = bridge
            && let Err(e) = b.await
        {
            tracing::error!(error = %e, "client mode task");
        }
        timers.abort();
        rollouts.abort();
        watch.abort();
        broker.disconnect_all();
        if let Some(t) = api_task {
            let _ = t.await;
        }
        Ok(())
    }
}
