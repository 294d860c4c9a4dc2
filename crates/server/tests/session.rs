//! The MQTT session over in-memory pipes (the server is generic over the byte stream; no TLS,
//! no SQLite): protocol edge cases, malformed packets, keep-alive, packet size, slow consumers,
//! wills, subscription limits. The same session over TLS is tested end to end in
//! `identity.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrota_server::store::{DirBlobStore, MemoryStore, Store, Thing};
use ferrota_server::{Broker, Identity, Limits, Policy, SessionEnd, serve_connection};
use rumqttc::{Connect, LastWill, Packet, Publish, QoS, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

async fn broker(limits: Limits) -> (Arc<Broker>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    for n in ["a", "b"] {
        store
            .create_thing(&Thing {
                name: n.into(),
                groups: vec![],
                created_at: 0,
            })
            .await
            .unwrap();
    }
    let blobs = DirBlobStore::new(dir.path()).unwrap();
    (
        Broker::new(
            Arc::new(store),
            Arc::new(blobs),
            Policy::with_extra(&["shared/#".into()], &["shared/#".into()]),
            limits,
        ),
        dir,
    )
}

fn start(b: &Arc<Broker>, thing: &str) -> (DuplexStream, tokio::task::JoinHandle<SessionEnd>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let id = Identity {
        thing: thing.into(),
        cert_id: None,
    };
    (
        client,
        tokio::spawn(serve_connection(b.clone(), server, id)),
    )
}

async fn send(io: &mut DuplexStream, p: Packet) {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    io.write_all(&b).await.unwrap();
}

async fn recv(io: &mut DuplexStream, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Some(p),
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let n = tokio::time::timeout(Duration::from_secs(10), io.read_buf(buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

async fn connected(
    b: &Arc<Broker>,
    thing: &str,
) -> (DuplexStream, BytesMut, tokio::task::JoinHandle<SessionEnd>) {
    let (mut io, h) = start(b, thing);
    let mut c = Connect::new(thing);
    c.keep_alive = 60;
    send(&mut io, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    match recv(&mut io, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
        p => panic!("{p:?}"),
    }
    (io, buf, h)
}

#[tokio::test]
async fn garbage_and_malformed_packets_disconnect() {
    let (b, _d) = broker(Limits::default()).await;
    for junk in [
        &b"\x00\x00\x00\x00"[..],
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f][..], // remaining length too long
        &[0x10, 0x04, 0x00, 0x04, b'M', b'Q'][..], // truncated CONNECT
        &[0x30, 0x02, 0x00, 0x00][..],             // PUBLISH before CONNECT
    ] {
        let (mut io, h) = start(&b, "a");
        io.write_all(junk).await.unwrap();
        let _ = io.shutdown().await;
        let end = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(end, SessionEnd::Violation(_) | SessionEnd::Closed),
            "{junk:?} → {end:?}"
        );
    }
    // After CONNECT: a malformed SUBSCRIBE (no filters), a second CONNECT, QoS 2.
    for bad in [
        vec![0x82, 0x02, 0x00, 0x01],
        vec![0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0],
        vec![0x34, 0x05, 0x00, 0x01, b'x', 0x00, 0x01],
    ] {
        let (mut io, _buf, h) = connected(&b, "a").await;
        io.write_all(&bad).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, SessionEnd::Violation(_)), "{bad:?} → {end:?}");
    }
    // The broker still serves.
    let (mut io, mut buf, _h) = connected(&b, "a").await;
    send(&mut io, Packet::PingReq).await;
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
}

#[tokio::test]
async fn protocol_level_and_client_id_checks() {
    let (b, _d) = broker(Limits::default()).await;
    let (mut io, h) = start(&b, "a");
    let mut c = Connect::new("a");
    c.protocol = rumqttc::Protocol::V5;
    send(&mut io, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    match recv(&mut io, &mut buf).await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.code, rumqttc::ConnectReturnCode::RefusedProtocolVersion)
        }
        p => panic!("{p:?}"),
    }
    assert_eq!(h.await.unwrap(), SessionEnd::Refused(1));
    // Unknown thing.
    let (mut io, h) = start(&b, "zzz");
    send(&mut io, Packet::Connect(Connect::new("zzz"))).await;
    assert_eq!(h.await.unwrap(), SessionEnd::Refused(5));
    let _ = io;
}

#[tokio::test]
async fn max_packet_size_disconnects() {
    let (b, _d) = broker(Limits {
        max_packet_size: 1024,
        ..Limits::default()
    })
    .await;
    let (mut io, _buf, h) = connected(&b, "a").await;
    send(
        &mut io,
        Packet::Publish(Publish::new("shared/x", QoS::AtMostOnce, vec![0u8; 2000])),
    )
    .await;
    let end = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(end, SessionEnd::Violation(ref w) if w.contains("malformed")),
        "{end:?}"
    );
}

#[tokio::test]
async fn keep_alive_is_enforced_at_one_and_a_half_times() {
    let (b, _d) = broker(Limits::default()).await;
    let (mut io, h) = start(&b, "a");
    let mut c = Connect::new("a");
    c.keep_alive = 10;
    send(&mut io, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::ConnAck(_))
    ));
    // Paused time only after the store work of CONNECT (sqlx's pool timeouts would fire).
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(14)).await;
    send(&mut io, Packet::PingReq).await;
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
    let t0 = tokio::time::Instant::now();
    let end = h.await.unwrap();
    assert_eq!(end, SessionEnd::KeepAliveTimeout);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(14) && waited <= Duration::from_secs(16),
        "{waited:?}"
    );
}

#[tokio::test]
async fn slow_consumer_is_disconnected_with_bounded_memory() {
    let (b, _d) = broker(Limits {
        queue_messages: 16,
        queue_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    // A subscribes and never reads.
    let (mut a, _abuf, ah) = connected(&b, "a").await;
    send(
        &mut a,
        Packet::Subscribe(Subscribe::new("shared/#", QoS::AtMostOnce)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // B floods.
    let (mut bio, mut bbuf, _bh) = connected(&b, "b").await;
    for _ in 0..2000 {
        send(
            &mut bio,
            Packet::Publish(Publish::new("shared/x", QoS::AtMostOnce, vec![7u8; 4096])),
        )
        .await;
    }
    send(&mut bio, Packet::PingReq).await;
    assert_eq!(recv(&mut bio, &mut bbuf).await, Some(Packet::PingResp));
    let end = tokio::time::timeout(Duration::from_secs(10), ah)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            end,
            SessionEnd::Kicked(ferrota_server::broker::KickReason::SlowConsumer)
                | SessionEnd::Io(_)
        ),
        "{end:?}"
    );
    assert!(!b.is_connected("a"));
}

#[tokio::test]
async fn wills_subscriptions_unsubscribe_and_takeover() {
    let (b, _d) = broker(Limits::default()).await;
    let (mut sub, mut sbuf, _sh) = connected(&b, "b").await;
    send(
        &mut sub,
        Packet::Subscribe(Subscribe::new("shared/+/will", QoS::AtLeastOnce)),
    )
    .await;
    assert!(matches!(
        recv(&mut sub, &mut sbuf).await,
        Some(Packet::SubAck(_))
    ));
    // A connects with a will and drops the connection.
    let (mut io, h) = start(&b, "a");
    let mut c = Connect::new("a");
    c.last_will = Some(LastWill::new(
        "shared/a/will",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    send(&mut io, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::ConnAck(_))
    ));
    drop(io);
    assert_eq!(h.await.unwrap(), SessionEnd::Closed);
    match recv(&mut sub, &mut sbuf).await {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, "shared/a/will");
            assert_eq!(&p.payload[..], b"gone");
            send(&mut sub, Packet::PubAck(rumqttc::PubAck::new(p.pkid))).await;
        }
        p => panic!("{p:?}"),
    }
    // A will on a topic outside the policy refuses the connection.
    let (mut io, h) = start(&b, "a");
    let mut c = Connect::new("a");
    c.last_will = Some(LastWill::new(
        "$aws/things/b/x",
        "x",
        QoS::AtMostOnce,
        false,
    ));
    send(&mut io, Packet::Connect(c)).await;
    assert_eq!(h.await.unwrap(), SessionEnd::Refused(5));
    // Unsubscribe.
    send(
        &mut sub,
        Packet::Unsubscribe(rumqttc::Unsubscribe::new("shared/+/will")),
    )
    .await;
    assert!(matches!(
        recv(&mut sub, &mut sbuf).await,
        Some(Packet::UnsubAck(_))
    ));
    b.publish(
        "shared/a/will",
        bytes::Bytes::from_static(b"x"),
        QoS::AtMostOnce,
    );
    send(&mut sub, Packet::PingReq).await;
    assert_eq!(recv(&mut sub, &mut sbuf).await, Some(Packet::PingResp));
    // A second connection with the same id takes over.
    let (_sub2, _b2, _h2) = connected(&b, "b").await;
    assert_eq!(recv(&mut sub, &mut sbuf).await, None);
}

#[tokio::test]
async fn inflight_limit_holds_qos1_until_acked() {
    let (b, _d) = broker(Limits {
        max_inflight: 2,
        ..Limits::default()
    })
    .await;
    let (mut io, mut buf, _h) = connected(&b, "a").await;
    send(
        &mut io,
        Packet::Subscribe(Subscribe::new("shared/q", QoS::AtLeastOnce)),
    )
    .await;
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::SubAck(_))
    ));
    for i in 0..5u8 {
        b.publish("shared/q", bytes::Bytes::from(vec![i]), QoS::AtLeastOnce);
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        match recv(&mut io, &mut buf).await {
            Some(Packet::Publish(p)) => got.push(p),
            p => panic!("{p:?}"),
        }
    }
    // Nothing more until an ack.
    send(&mut io, Packet::PingReq).await;
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
    send(&mut io, Packet::PubAck(rumqttc::PubAck::new(got[0].pkid))).await;
    match recv(&mut io, &mut buf).await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], &[2]),
        p => panic!("{p:?}"),
    }
}

#[tokio::test]
async fn pipelined_packets_in_one_segment_are_all_handled() {
    let (b, _d) = broker(Limits::default()).await;
    let (mut io, _h) = start(&b, "a");
    let mut all = BytesMut::new();
    for p in [
        Packet::Connect(Connect::new("a")),
        Packet::Subscribe(Subscribe::new("shared/x", QoS::AtMostOnce)),
        Packet::PingReq,
    ] {
        p.write(&mut all, usize::MAX).unwrap();
    }
    io.write_all(&all).await.unwrap();
    let mut buf = BytesMut::new();
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::ConnAck(_))
    ));
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::SubAck(_))
    ));
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
}

/// MQTT 3.1.1 §2.2.2, §3.1.2.3, §3.12, §3.14: fixed-header flags, the CONNECT reserved flag and
/// a PINGREQ / DISCONNECT with a payload close the connection (rumqttc's codec accepts them).
#[tokio::test]
async fn fixed_header_flags_and_reserved_bits_disconnect() {
    let (b, _d) = broker(Limits::default()).await;
    // CONNECT, client id "a", connect flags 0b11: clean session plus the reserved bit.
    let (mut io, h) = start(&b, "a");
    io.write_all(&[
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 1, b'a',
    ])
    .await
    .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&end, SessionEnd::Violation(w) if w.contains("reserved")),
        "{end:?}"
    );
    let f = b"shared/x";
    let mut sub0 = vec![0x80, 13, 0, 1, 0, 8];
    sub0.extend_from_slice(f);
    sub0.push(0);
    let mut sub4 = sub0.clone();
    sub4[0] = 0x84;
    let mut unsub0 = vec![0xa0, 12, 0, 1, 0, 8];
    unsub0.extend_from_slice(f);
    for (what, bad) in [
        ("SUBSCRIBE flags 0", sub0),
        ("SUBSCRIBE flags 0b0100", sub4),
        ("UNSUBSCRIBE flags 0", unsub0),
        ("PUBREL flags 0", vec![0x60, 2, 0, 1]),
        ("PINGREQ with a payload", vec![0xc0, 1, 0]),
        ("PINGREQ flags 1", vec![0xc1, 0]),
        ("DISCONNECT with a payload", vec![0xe0, 1, 0]),
    ] {
        let (mut io, _buf, h) = connected(&b, "a").await;
        io.write_all(&bad).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, SessionEnd::Violation(_)), "{what} → {end:?}");
    }
    // The well-formed ones still work.
    let (mut io, mut buf, _h) = connected(&b, "a").await;
    io.write_all(&[0xc0, 0]).await.unwrap();
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
    send(
        &mut io,
        Packet::Subscribe(Subscribe::new("shared/x", QoS::AtLeastOnce)),
    )
    .await;
    assert!(matches!(
        recv(&mut io, &mut buf).await,
        Some(Packet::SubAck(_))
    ));
}

/// A will on the thing's own reserved topics would be delivered as if the Jobs service sent
/// it: CONNECT is refused with NotAuthorized, and nothing is registered for the thing.
#[tokio::test]
async fn a_will_on_a_reserved_topic_is_refused_at_connect() {
    let (b, _d) = broker(Limits::default()).await;
    for topic in [
        "$aws/things/a/jobs/notify-next",
        "$aws/things/a/jobs/$next/get",
        "$aws/things/a/streams/s1/data/cbor",
    ] {
        let (mut io, h) = start(&b, "a");
        let mut c = Connect::new("a");
        c.keep_alive = 60;
        c.last_will = Some(LastWill::new(topic, "forged", QoS::AtLeastOnce, false));
        send(&mut io, Packet::Connect(c)).await;
        let mut buf = BytesMut::new();
        match recv(&mut io, &mut buf).await {
            Some(Packet::ConnAck(a)) => {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::NotAuthorized, "{topic}")
            }
            p => panic!("{topic}: {p:?}"),
        }
        assert_eq!(h.await.unwrap(), SessionEnd::Refused(5), "{topic}");
    }
    // A will on an allowed, ordinary topic is still accepted.
    let (mut io, h) = start(&b, "a");
    let mut c = Connect::new("a");
    c.last_will = Some(LastWill::new("shared/gone", "a", QoS::AtMostOnce, false));
    send(&mut io, Packet::Connect(c)).await;
    let mut buf = BytesMut::new();
    match recv(&mut io, &mut buf).await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
        p => panic!("{p:?}"),
    }
    drop(io);
    let _ = h.await;
}

async fn suback(io: &mut DuplexStream, buf: &mut BytesMut) -> Vec<rumqttc::SubscribeReasonCode> {
    loop {
        match recv(io, buf).await {
            Some(Packet::SubAck(a)) => return a.return_codes,
            Some(_) => {}
            None => panic!("closed before SUBACK"),
        }
    }
}

/// AWS IoT Core's subscription quotas: 256-byte filters with at most 7 slashes and 50
/// subscriptions per connection (SUBACK 0x80 beyond), 8 filters per SUBSCRIBE (more
/// disconnects). Before, 4,000 filters of 60 KB were held for one session.
#[tokio::test]
async fn subscriptions_are_bounded_per_session() {
    use rumqttc::{SubscribeFilter, SubscribeReasonCode::*};
    let (b, _d) = broker(Limits::default()).await;
    let (mut io, mut buf, h) = connected(&b, "a").await;
    let long = format!("shared/{}", "x".repeat(250)); // 257 bytes
    let deep = "shared/1/2/3/4/5/6/7/8"; // 8 slashes
    let ok7 = "shared/1/2/3/4/5/6/7"; // 7 slashes
    let mut s = Subscribe::new(&long, QoS::AtMostOnce);
    s.pkid = 1;
    s.filters
        .push(SubscribeFilter::new(deep.into(), QoS::AtMostOnce));
    s.filters
        .push(SubscribeFilter::new(ok7.into(), QoS::AtMostOnce));
    send(&mut io, Packet::Subscribe(s)).await;
    assert_eq!(
        suback(&mut io, &mut buf).await,
        vec![Failure, Failure, Success(QoS::AtMostOnce)]
    );
    // 49 more fill the 50; the 51st fails; re-subscribing a held filter still succeeds.
    for i in 0..49 {
        let mut s = Subscribe::new(format!("shared/f{i}"), QoS::AtMostOnce);
        s.pkid = 2;
        send(&mut io, Packet::Subscribe(s)).await;
        assert_eq!(
            suback(&mut io, &mut buf).await,
            vec![Success(QoS::AtMostOnce)]
        );
    }
    let mut s = Subscribe::new("shared/one-too-many", QoS::AtMostOnce);
    s.pkid = 3;
    s.filters
        .push(SubscribeFilter::new(ok7.into(), QoS::AtLeastOnce));
    send(&mut io, Packet::Subscribe(s)).await;
    assert_eq!(
        suback(&mut io, &mut buf).await,
        vec![Failure, Success(QoS::AtLeastOnce)]
    );
    // Routing still works for the held subscriptions, not for the refused one.
    b.publish(
        "shared/f3",
        bytes::Bytes::from_static(b"x"),
        QoS::AtMostOnce,
    );
    b.publish(
        "shared/one-too-many",
        bytes::Bytes::from_static(b"y"),
        QoS::AtMostOnce,
    );
    match recv(&mut io, &mut buf).await {
        Some(Packet::Publish(p)) => assert_eq!(p.topic, "shared/f3"),
        p => panic!("{p:?}"),
    }
    send(&mut io, Packet::PingReq).await;
    assert_eq!(recv(&mut io, &mut buf).await, Some(Packet::PingResp));
    // Nine filters in one SUBSCRIBE: disconnected.
    let mut s = Subscribe::new("shared/n0", QoS::AtMostOnce);
    s.pkid = 4;
    for i in 1..9 {
        s.filters.push(SubscribeFilter::new(
            format!("shared/n{i}"),
            QoS::AtMostOnce,
        ));
    }
    send(&mut io, Packet::Subscribe(s)).await;
    let end = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&end, SessionEnd::Violation(w) if w.contains("9 filters")),
        "{end:?}"
    );
}
