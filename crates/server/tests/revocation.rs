//! Revocation takes effect at once, whichever way it is made: the offline CLI (another process
//! on the same data directory, here a second `open_admin` exactly as `ferrota thing revoke`
//! does) or the HTTP API of the running server. The live session of the thing is dropped, the
//! CRL used by TLS is reloaded without a restart, and other things stay connected.
//!
//! End to end on purpose: what is proven is the TLS handshake refusing a revoked certificate
//! (the reloaded CRL) and a live TLS session being closed, which only the real listener
//! shows. The Admin's side of it (the store, then its `Sessions` told) is tested in memory in
//! `services_memory.rs`.

use crate::common;

use std::time::Duration;

use common::*;
use rumqttc::{Packet, QoS};

/// A session that answers a PINGREQ-free round trip: `$next/get` is answered.
async fn still_served(c: &mut Client, thing: &str) {
    c.c.publish(
        format!("$aws/things/{thing}/jobs/$next/get"),
        QoS::AtLeastOnce,
        false,
        "{}",
    )
    .await
    .unwrap();
    let p = publish(c).await;
    assert_eq!(
        p.topic,
        format!("$aws/things/{thing}/jobs/$next/get/accepted")
    );
}

/// Waits until the connection ends; fails after `within`.
async fn dropped_within(c: &mut Client, within: Duration) -> String {
    tokio::time::timeout(within, async {
        loop {
            match c.rx.recv().await {
                None => return "event loop ended".to_string(),
                Some(Err(e)) => return e,
                Some(Ok(Packet::Disconnect)) => return "disconnect".into(),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the revoked thing's session was not dropped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revocation_drops_the_session_and_reloads_the_crl() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let b = s.thing("thing-b", &[]).await;
    let mut ca = connect(&s, &a).await;
    let mut cb = connect(&s, &b).await;
    still_served(&mut ca, "thing-a").await;
    // `ferrota thing revoke thing-a`: its own store, CA and broker on the same data directory.
    let cli = ferrota_server::server::open_admin(&s.cfg, s.port)
        .await
        .unwrap();
    assert_eq!(cli.revoke_thing("thing-a").await.unwrap(), 1);
    drop(cli);
    // The server polls every second: well within 5 s.
    dropped_within(&mut ca, Duration::from_secs(5)).await;
    let e = refused_in_tls(&s, &a).await;
    assert!(!e.contains("NotAuthorized"), "{e}");
    // thing-b is untouched.
    still_served(&mut cb, "thing-b").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_revocation_drops_the_session_and_reloads_the_crl() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let b = s.thing("thing-b", &[]).await;
    let mut ca = connect(&s, &a).await;
    let mut cb = connect(&s, &b).await;
    let (st, v) = http(&s, "POST", "/api/things/thing-a/revoke", None).await;
    assert_eq!((st, v["revoked"].as_u64()), (200, Some(1)));
    dropped_within(&mut ca, Duration::from_secs(5)).await;
    refused_in_tls(&s, &a).await;
    still_served(&mut cb, "thing-b").await;
    // A second revocation of the same thing changes nothing and keeps thing-b.
    let (st, v) = http(&s, "POST", "/api/things/thing-a/revoke", None).await;
    assert_eq!((st, v["revoked"].as_u64()), (200, Some(0)));
    still_served(&mut cb, "thing-b").await;
    s.stop().await;
}
