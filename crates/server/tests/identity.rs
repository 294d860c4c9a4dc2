//! Identity and policy over real mutual TLS on loopback: every way to be someone else fails.
//!
//! End to end on purpose (most server tests run in memory, `common::Mem`): the identity is
//! the client certificate's name, checked in the TLS handshake and bound to the client id at
//! CONNECT, so only the real listener, rustls and a real MQTT client (rumqttc, mosquitto)
//! show it. The first test is also the suite's end-to-end smoke test of a Jobs request and
//! its answer through TLS, session, services and broker.

use crate::common;

use common::*;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_thing_connects_and_gets_next_get_without_subscribing() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let mut c = connect(&s, &a).await;
    c.c.publish(
        "$aws/things/thing-a/jobs/$next/get",
        QoS::AtLeastOnce,
        false,
        r#"{"clientToken":":thing-a"}"#,
    )
    .await
    .unwrap();
    let p = publish(&mut c).await;
    assert_eq!(p.topic, "$aws/things/thing-a/jobs/$next/get/accepted");
    let m = ferrota_proto::JobMessage::parse(&p.payload).unwrap();
    assert!(m.execution.is_none());
    assert_eq!(m.client_token.unwrap().raw(), ":thing-a");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_is_refused() {
    let s = TestServer::start().await;
    let _a = s.thing("thing-a", &[]).await;
    let mut c = connect_with(s.port, "thing-a", client_config(&s.ca_pem(), None));
    let e = refused(&mut c).await;
    assert!(!e.is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ca_is_refused() {
    let s = TestServer::start().await;
    let _a = s.thing("thing-a", &[]).await;
    let other = tempfile::tempdir().unwrap();
    let ca = ferrota_server::ca::Ca::init(other.path(), &[]).unwrap();
    let forged = ca.issue_thing("thing-a").unwrap();
    let tls = client_config(&s.ca_pem(), Some((&forged.cert_pem, &forged.key_pem)));
    let mut c = connect_with(s.port, "thing-a", tls);
    refused(&mut c).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_must_be_the_certificate_name() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let _b = s.thing("thing-b", &[]).await;
    let tls = client_config(&s.ca_pem(), Some((&a.certificate_pem, &a.private_key_pem)));
    let mut c = connect_with(s.port, "thing-b", tls);
    let e = refused(&mut c).await;
    assert!(e.contains("NotAuthorized"), "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificate_is_refused_and_disconnected() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let mut c = connect(&s, &a).await;
    assert_eq!(s.admin.revoke_thing("thing-a").await.unwrap(), 1);
    refused(&mut c).await; // the live session is closed
    // The CRL is reloaded at once: the TLS handshake refuses it, no restart needed.
    refused_in_tls(&s, &a).await;
    // After a restart too.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let tls = client_config(&s.ca_pem(), Some((&a.certificate_pem, &a.private_key_pem)));
    let mut c = connect_with(s.port, "thing-a", tls);
    let e = refused(&mut c).await;
    assert!(
        !e.contains("NotAuthorized"),
        "expected a TLS failure, got {e}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_things_topics_disconnect() {
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let _b = s.thing("thing-b", &[]).await;
    // Subscribe to another thing's topic.
    let mut c = connect(&s, &a).await;
    c.c.subscribe("$aws/things/thing-b/jobs/notify-next", QoS::AtLeastOnce)
        .await
        .unwrap();
    refused(&mut c).await;
    // Wildcard across things.
    let mut c = connect(&s, &a).await;
    c.c.subscribe("$aws/things/+/jobs/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    refused(&mut c).await;
    // Publish to another thing's Jobs API.
    let mut c = connect(&s, &a).await;
    c.c.publish(
        "$aws/things/thing-b/jobs/$next/get",
        QoS::AtLeastOnce,
        false,
        "{}",
    )
    .await
    .unwrap();
    refused(&mut c).await;
    // Publishing on a reserved response topic of its own.
    let mut c = connect(&s, &a).await;
    c.c.publish(
        "$aws/things/thing-a/jobs/notify-next",
        QoS::AtLeastOnce,
        false,
        "{}",
    )
    .await
    .unwrap();
    refused(&mut c).await;
    // Own topics still work afterwards.
    let mut c = connect(&s, &a).await;
    subscribe(&mut c, "$aws/things/thing-a/#", QoS::AtLeastOnce).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_when_installed() {
    let Ok(_) = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .output()
    else {
        println!("note: mosquitto_pub not installed (apt-get install mosquitto-clients); skipped");
        return;
    };
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, t: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, t).unwrap();
        p.to_string_lossy().to_string()
    };
    let (ca, crt, key) = (
        w("ca.pem", &s.ca_pem()),
        w("a.crt", &a.certificate_pem),
        w("a.key", &a.private_key_pem),
    );
    let port = s.port.to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(args[0].clone())
                .args(&args[1..])
                .output()
                .unwrap()
        })
    };
    let base = |bin: &str, id: &str| -> Vec<String> {
        [
            bin,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &ca,
            "--cert",
            &crt,
            "--key",
            &key,
            "-i",
            id,
            "-V",
            "mqttv311",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // mosquitto_sub waits for one message on its own notify-next; an OTA-less $next/get answer
    // goes to the requester only, so we check the sub through a topic the publisher can reach.
    let mut sub = base("mosquitto_sub", "thing-a");
    sub.extend(
        ["-t", "$aws/things/thing-a/custom", "-C", "1", "-W", "10"]
            .iter()
            .map(|s| s.to_string()),
    );
    let sub = run(sub);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // A second connection with the same client id would take the session over: publish with a
    // rumqttc client of thing-a instead would too. Use mosquitto_pub as thing-a after the sub
    // got its SUBACK is therefore not possible; publish from the server side.
    s.broker.publish(
        "$aws/things/thing-a/custom",
        bytes::Bytes::from_static(b"hello"),
        QoS::AtLeastOnce,
    );
    let out = sub.await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello",
        "{out:?}"
    );
    // Impersonation with mosquitto_pub: client id thing-b with thing-a's certificate.
    let mut publ = base("mosquitto_pub", "thing-b");
    publ.extend(
        [
            "-t",
            "$aws/things/thing-b/jobs/$next/get",
            "-m",
            "{}",
            "-q",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let out = run(publ).await.unwrap();
    assert!(!out.status.success(), "impersonation must fail: {out:?}");
    // Without a certificate.
    let nocert: Vec<String> = [
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        &s.port.to_string(),
        "--cafile",
        &ca,
        "-i",
        "thing-a",
        "-t",
        "x",
        "-m",
        "y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(nocert).await.unwrap();
    assert!(!out.status.success(), "no certificate must fail: {out:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tls_port_never_hurts_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0][..],
        &[0u8; 4096][..],
    ] {
        let mut t = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .unwrap();
        let _ = t.write_all(junk).await;
        let mut b = [0u8; 64];
        let _ = tokio::time::timeout(T, t.read(&mut b))
            .await
            .expect("server must close");
    }
    // Garbage MQTT inside a valid TLS session.
    let tls = client_config(&s.ca_pem(), Some((&a.certificate_pem, &a.private_key_pem)));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let mut t = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    t.write_all(&[0xf0, 0xff, 0xff, 0xff, 0xff, 0x01])
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(T, t.read(&mut b))
        .await
        .expect("server must close");
    assert!(matches!(n, Ok(0) | Err(_)));
    // Still serving.
    let mut c = connect(&s, &a).await;
    subscribe(
        &mut c,
        "$aws/things/thing-a/jobs/notify-next",
        QoS::AtLeastOnce,
    )
    .await;
    s.stop().await;
}
