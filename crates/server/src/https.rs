//! HTTPS for the operator HTTP API (the API, `/metrics`, the broker auth routes): an
//! [`axum::serve::Listener`] that hands axum connections whose TLS handshake is done
//! ([`HttpsListener`]). Its rustls configuration is made at start by
//! [`crate::server::http_tls_config`] (the fleet CA's certificate, or the user's own).
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
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

#[cfg(doc)]
use crate::config::Config;
use crate::gate::PendingGate;

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// The answer to a plain-HTTP request on the HTTPS port.
const PLAIN_HTTP_BODY: &str = "{\"code\":\"InvalidRequestException\",\"message\":\"this is \
the HTTPS port of a Ferrota server: use https:// (the CLI trusts a local data directory's \
fleet CA; for a remote server pass --ca with its <data>/ca/ca.crt.pem)\"}";

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
