//! HTTPS for the operator HTTP API (the API, `/metrics`, the broker auth routes): the rustls
//! server configuration ([`http_tls_config`]) and an [`axum::serve::Listener`] that hands
//! axum connections whose TLS handshake is done ([`HttpsListener`]).
//!
//! The listener accepts TCP in a task of its own and runs each handshake in a task of its
//! own, so a slow or silent client never holds up the others, and a failed handshake
//! (an untrusted certificate on the client's side, a scanner, a timeout) closes only that
//! connection. Connections still in their handshake are bounded like the MQTT listener's
//! ([`crate::gate::PendingGate`]: `max_pending` in all, `max_pending_per_address` per source
//! address, the oldest evicted; `tls_handshake_timeout`).
//!
//! A plain-HTTP request on the HTTPS port (the first byte is not a TLS handshake record) is
//! answered `400` with AWS's error JSON saying to use `https://`, as nginx answers "The plain
//! HTTP request was sent to HTTPS port": a person who typed `http://` reads what to change
//! instead of a reset connection, and the CLI prints the message.
//!
//! No client certificate is asked for: operators authenticate with their token (the MQTT
//! listener's mutual TLS is for devices). HTTP/1.1 only (ALPN `http/1.1`), as the plain
//! listener serves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::ca::Ca;
use crate::config::Config;
use crate::gate::PendingGate;
use crate::server::ServeError;

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// The answer to a plain-HTTP request on the HTTPS port.
const PLAIN_HTTP_BODY: &str = "{\"code\":\"InvalidRequestException\",\"message\":\"this is \
the HTTPS port of a Ferrota server: use https:// (the CLI trusts a local data directory's \
fleet CA; for a remote server pass --ca with its <data>/ca/ca.crt.pem)\"}";

fn file_err(p: &Path, m: impl std::fmt::Display) -> ServeError {
    ServeError::File {
        path: p.to_path_buf(),
        message: m.to_string(),
    }
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

/// The refusal of a plain HTTP listener on an address that is not loopback, checked on the
/// bound socket by [`crate::server::Server::run`] (a library caller may bind its own
/// listener; `ferrota serve` refuses earlier, [`Config::check_http_listen`]).
pub fn refuse_plain_on_network(addr: SocketAddr) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "HTTP API on {addr}: not a loopback address, and no TLS configured (the operator \
         token would cross the network in clear): set http_tls = true (--http-tls) or \
         http_cert/http_key, or listen on 127.0.0.1"
    )))
}

/// A TLS listener for `axum::serve` (see the module docs). Dropping it (axum does at
/// shutdown) stops the accepting task and closes the socket.
pub struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsListener {
    /// Serves TLS with `config` on `tcp`; at most `gate`'s connections in their handshake,
    /// each for at most `handshake_timeout`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
        gate: PendingGate,
    ) -> std::io::Result<HttpsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(accept_loop(tcp, acceptor, handshake_timeout, gate, tx));
        Ok(HttpsListener { ready, local, task })
    }
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it never does but when aborted): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    gate: PendingGate,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on (as axum's own
                // listener does).
                tracing::warn!(error = %e, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut slot, _evicted) = gate.admit(peer.ip());
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let done = tokio::select! {
                r = tokio::time::timeout(handshake_timeout, handshake(stream, acceptor)) => r,
                _ = slot.evicted() => {
                    tracing::debug!(%peer, "HTTPS: closed before its TLS handshake ended: too many pending connections");
                    return;
                }
            };
            drop(slot);
            match done {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Ok(None)) => {
                    tracing::debug!(%peer, "HTTPS: a plain-HTTP request was answered 400");
                }
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "HTTPS: TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "HTTPS: TLS handshake timed out"),
            }
        });
    }
}

/// The TLS handshake of one connection; `None` when it was plain HTTP (answered here) or
/// closed before its first byte.
async fn handshake(
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] != TLS_HANDSHAKE {
        answer_plain_http(&mut stream).await;
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// Answers a plain-HTTP request with a 400 ([`PLAIN_HTTP_BODY`]), then reads what the client
/// still sends (bounded) before closing, so that its unread request does not turn the close
/// into a reset that would lose the answer.
async fn answer_plain_http(stream: &mut TcpStream) {
    let mut buf = [0u8; 8192];
    let _ = stream.read(&mut buf).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
