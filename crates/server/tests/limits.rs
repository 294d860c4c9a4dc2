//! The MQTT front door under load: an unauthenticated flood does not lock out the fleet.
//!
//! End to end on purpose: the flood is TCP connections and unfinished TLS handshakes against
//! the real accept loop and its pending gate, from several source addresses; nothing of it
//! exists in memory. (The MQTT packet and session limits run over in-memory pipes in
//! `session.rs`.)

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use rumqttc::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS record header announcing a 512-byte ClientHello, then only its first bytes: the
/// server waits for the rest, which never comes.
const PARTIAL_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// One flood socket, kept open as long as the server lets it, reopened at once when closed.
/// `hello`: send the start of a ClientHello (else a bare TCP connection that sends nothing).
async fn flood(
    source: Ipv4Addr,
    port: u16,
    hello: bool,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if sock.bind(SocketAddr::from((source, 0))).is_err() {
            return;
        }
        let Ok(mut c) = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        if hello {
            let _ = c.write_all(PARTIAL_HELLO).await;
        }
        let mut b = [0u8; 64];
        // Hold it until the server closes it (or the test ends).
        loop {
            tokio::select! {
                r = c.read(&mut b) => if matches!(r, Ok(0) | Err(_)) { break },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lockout probe of issue 13, scaled down: `max_connections` = the number of devices, a
/// pending pool of 8 (4 per address), and 24 flood sockets from 4 source addresses, half plain
/// TCP, half a ClientHello that never ends, each reopened as soon as the server closes it. On
/// the old accept loop (the `max_connections` permit taken at TCP accept and held through a 10 s
/// handshake deadline) the flood held every permit and no device got in within the 6 s below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_while_an_unauthenticated_flood_holds_every_slot_it_can() {
    const DEVICES: usize = 3;
    let s = TestServer::start_with(Arc::new(tempfile::tempdir().unwrap()), |c| {
        c.max_connections = DEVICES;
        c.limits.max_pending = 8;
        c.limits.max_pending_per_address = 4;
    })
    .await;
    let mut things = Vec::new();
    for i in 0..DEVICES {
        things.push(s.thing(&format!("dev-{i}"), &[]).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let mut flooders = Vec::new();
    for a in 2..6u8 {
        for k in 0..6 {
            flooders.push(tokio::spawn(flood(
                Ipv4Addr::new(127, 0, 0, a),
                s.port,
                k % 2 == 0,
                stop.clone(),
                opened.clone(),
            )));
        }
    }
    // Let the flood take every slot first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        opened.load(Ordering::Relaxed) >= 8,
        "the flood did not get going"
    );

    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut clients = Vec::new();
    for b in &things {
        let mut attempts = 0;
        let c = loop {
            attempts += 1;
            let tls = client_config(&s.ca_pem(), Some((&b.certificate_pem, &b.private_key_pem)));
            let mut c = connect_with(s.port, &b.thing_name, tls);
            let r = tokio::time::timeout(Duration::from_secs(2), c.rx.recv()).await;
            match r {
                Ok(Some(Ok(Packet::ConnAck(a))))
                    if a.code == rumqttc::ConnectReturnCode::Success =>
                {
                    break c;
                }
                other => {
                    assert!(
                        tokio::time::Instant::now() < until,
                        "{} locked out after {attempts} attempts: {other:?}",
                        b.thing_name
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        clients.push(c);
    }
    // All devices are connected at once: the flood never took a max_connections slot.
    assert_eq!(clients.len(), DEVICES);
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    s.stop().await;
}
