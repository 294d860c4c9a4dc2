//! A board through a three-node RabbitMQ cluster (Debian's `rabbitmq-server`, MQTT plugin)
//! with ferrota-server's services as an AMQP worker ([`ferrota_server::amqp`]) and Ferrota
//! answering the broker's auth questions ([`ferrota_server::broker_auth`]): the board logs in
//! by its certificate on one node, the worker consumes on another, and the update goes through.

use std::time::Duration;

use ferrota_boot::Bank;
use ferrota_device::board::{BoardEvent, Options};
use ferrota_infra::rabbitmq::Tls;
use ferrota_infra::{RabbitCluster, RabbitConfig};
use ferrota_lab::images::Tamper;
use ferrota_lab::lab::{self, Lab};
use ferrota_server::amqp::{self, Amqp};
use ferrota_server::broker_auth::BrokerAuth;

const SECRET: &str = "test-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_updates_through_a_rabbitmq_cluster_with_ferrota_deciding_access() {
    if ferrota_infra::skip_without("RabbitMQ", RabbitCluster::available()) {
        return;
    }
    let lab = Lab::start().await.expect("lab");
    let ca_dir = lab.dir.join("server").join("ca");

    // Ferrota's answers to the broker's auth questions, on a loopback port.
    let auth = BrokerAuth::new(
        lab.broker.services.store.clone(),
        ferrota_server::Policy::default(),
        SECRET.into(),
    );
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_url = format!(
        "http://127.0.0.1:{}/broker-auth/{SECRET}",
        http.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(http, auth.router()).await });

    let tls = Tls {
        ca: ca_dir.join("ca.crt.pem"),
        cert: ca_dir.join("server.crt.pem"),
        key: ca_dir.join("server.key.pem"),
    };
    let cluster = tokio::task::spawn_blocking(move || {
        RabbitCluster::start(&RabbitConfig {
            nodes: 3,
            tls: Some(tls),
            auth_http: vec![auth_url],
        })
    })
    .await
    .unwrap()
    .expect("RabbitMQ cluster");

    // Worker 1 (the lab's services) consumes on node 1, worker 2 (services of their own over
    // the same store and files) on node 2; the board connects to node 3.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(amqp::run(
        lab.broker.clone(),
        Amqp {
            urls: vec![cluster.amqp_url(0)],
            prefetch: 4,
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let second = ferrota_server::Broker::new(
        lab.broker.services.store.clone(),
        lab.broker.services.blobs.clone(),
        ferrota_server::Policy::default(),
        ferrota_server::Limits::default(),
    );
    let (stop2_tx, stop2_rx) = tokio::sync::oneshot::channel::<()>();
    let worker2 = tokio::spawn(amqp::run(
        second,
        Amqp {
            urls: vec![cluster.amqp_url(1)],
            prefetch: 4,
        },
        async {
            let _ = stop2_rx.await;
        },
    ));
    // The request queue exists once the workers consume (declared by them).
    let consumers = |n: char| {
        let q = cluster
            .ctl(2, &["list_queues", "name", "consumers"])
            .unwrap_or_default();
        q.lines()
            .any(|l| l.starts_with(amqp::QUEUE) && l.ends_with(n))
    };
    let mut ready = false;
    for _ in 0..100 {
        if consumers('2') {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the two workers never consumed from {}", amqp::QUEUE);

    let thing = "rabbit-board";
    let v1_0 = lab.image(0, 1, Tamper::None).unwrap();
    let v1_1 = lab.image(1, 2, Tamper::None).unwrap();
    let (dev, cfg) = lab
        .add_device_on(thing, &v1_0, cluster.mqtt_port(2))
        .await
        .unwrap();
    let mut board = lab::board(
        dev,
        cfg,
        Options {
            quiet: true,
            ..Options::default()
        },
    );
    lab.update("rabbit_v1_1", &[thing], &v1_1).await.unwrap();
    // Worker 2 is lost once the download runs: its connection closes with requests it held
    // unacknowledged (as a killed process's socket closes), which RabbitMQ gives to worker 1.
    let exec_started = {
        let store = lab.broker.services.store.clone();
        async move {
            for _ in 0..600 {
                if let Ok(Some(e)) = store.execution("AFR_OTA-rabbit_v1_1", thing).await
                    && e.status == ferrota_proto::JobStatus::InProgress
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    let killer = tokio::spawn(async move {
        let started = exec_started.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stop2_tx.send(());
        let _ = worker2.await;
        started
    });
    let (events, met) = lab::drive(&mut board, Duration::from_secs(120), |e| {
        e.last() == Some(&BoardEvent::JobSucceeded)
    })
    .await
    .expect("board runs");
    assert!(
        killer.await.unwrap(),
        "the download never started before worker 2 was lost"
    );
    let mut gone = false;
    for _ in 0..50 {
        if consumers('1') {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "worker 2's consumer is still registered:\n{}",
        cluster.ctl(0, &["list_consumers"]).unwrap_or_default()
    );
    assert!(met, "no JobSucceeded through RabbitMQ: {events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            BoardEvent::Booted {
                bank: Bank::Upper,
                ..
            }
        )),
        "{events:?}"
    );
    let (status, _) = lab.terminal_status("rabbit_v1_1", thing).await.unwrap();
    assert_eq!(status, "SUCCEEDED");
    // The queue is replicated on every node (a quorum queue), and drained.
    let q = cluster
        .ctl(0, &["list_queues", "name", "type", "messages"])
        .unwrap();
    assert!(
        q.lines()
            .any(|l| l.starts_with(amqp::QUEUE) && l.contains("quorum") && l.ends_with('0')),
        "{q}"
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    drop(cluster);
    lab.shutdown().await;
}
