//! Issue 15: Jobs and Streams run without sockets, TLS or SQLite. The real services
//! ([`ferrota_server::services::on_publish`]) over an in-memory store, a fixed clock and an
//! `Outbound` that records, through an OTA update created by the real [`Admin`]: StartNext
//! answers with the job document, the stream is described, a block is served, the update
//! ends SUCCEEDED and the job completes.

use crate::common;

use std::sync::Arc;

use common::*;
use ferrota_server::context::{Clock, Services};
use ferrota_server::services::{Outcome, on_publish};
use ferrota_server::store::{JobState, Thing};
use ferrota_server::{Broker, Limits, Policy};

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> u64 {
        1_700_000_000
    }
}

#[tokio::test]
async fn jobs_and_streams_run_over_the_memory_store_without_a_broker() {
    let m = Mem::new();
    let store = m.store.clone();
    let out = Arc::new(Recorder::default());
    // The services over the same store and files as the Admin that creates the update.
    let svc = Services::new(
        store.clone(),
        m.services.blobs.clone(),
        Arc::new(Fixed),
        out.clone(),
    );
    store
        .create_thing(&Thing {
            name: "d".into(),
            groups: vec![],
            created_at: 0,
        })
        .await
        .unwrap();
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let sha = m.admin.put_file(&data).await.unwrap();
    let o = m
        .admin
        .create_ota(&Mem::data_request("mem1", "thing/d", &sha))
        .await
        .unwrap();

    let topic = "$aws/things/d/jobs/start-next";
    let r = on_publish(&svc, "d", "d", topic, br#"{"clientToken":"t"}"#).await;
    assert_eq!(r, Outcome::Handled);
    let sent = out.take();
    let (t, p) = &sent[0];
    assert_eq!(t, "$aws/things/d/jobs/start-next/accepted");
    let v: serde_json::Value = serde_json::from_slice(p).unwrap();
    assert_eq!(v["execution"]["jobId"], "AFR_OTA-mem1");
    let stream = v["execution"]["jobDocument"]["afr_ota"]["streamname"]
        .as_str()
        .unwrap()
        .to_string();

    let get = format!("$aws/things/d/streams/{stream}/get/json");
    let req = br#"{"c":"x","s":1,"f":0,"l":1024,"o":2,"n":1}"#;
    assert_eq!(
        on_publish(&svc, "d", "d", &get, req).await,
        Outcome::Handled
    );
    let sent = out.take();
    assert_eq!(sent.len(), 1, "one block");
    assert_eq!(
        sent[0].0,
        format!("$aws/things/d/streams/{stream}/data/json")
    );
    let b: serde_json::Value = serde_json::from_slice(&sent[0].1).unwrap();
    assert_eq!((b["i"].as_u64(), b["l"].as_u64()), (Some(2), Some(952)));

    let upd = "$aws/things/d/jobs/AFR_OTA-mem1/update";
    let body = br#"{"status":"SUCCEEDED","expectedVersion":2}"#;
    assert_eq!(
        on_publish(&svc, "d", "d", upd, body).await,
        Outcome::Handled
    );
    let sent = out.take();
    assert!(
        sent.iter().any(|(t, _)| t.ends_with("/update/accepted")),
        "{:?}",
        sent.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let job = store.job("AFR_OTA-mem1").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(o.ota_update_id, "mem1");
}

/// The bench's and lab's fault injection: [`ferrota_server::Broker::stream_faults`] wraps the
/// broker's services in a `FaultyOutbound`; configured to drop everything, the block a
/// GetStream asks for is dropped and counted, and the Jobs reply still goes out.
#[tokio::test]
async fn the_installed_fault_wrapper_drops_the_broker_services_stream_blocks() {
    let m = Mem::new();
    m.thing("d").await;
    let sha = m.admin.put_file(&[7u8; 2048]).await.unwrap();
    m.admin
        .create_ota(&Mem::data_request("f1", "thing/d", &sha))
        .await
        .unwrap();
    // A broker over the same store and files as the Admin that created the update.
    let broker = Broker::new(
        m.store.clone(),
        m.services.blobs.clone(),
        Policy::default(),
        Limits::default(),
    );
    let faults = broker.stream_faults();
    assert!(
        Arc::ptr_eq(&faults, &broker.stream_faults()),
        "installed once"
    );
    faults
        .configure(&ferrota_server::faults::FaultConfig {
            stream_drop: 1.0,
            seed: 3,
        })
        .unwrap();
    let svc = &broker.services;
    let topic = "$aws/things/d/jobs/start-next";
    let r = on_publish(svc, "d", "d", topic, br#"{"clientToken":"t"}"#).await;
    assert_eq!(r, Outcome::Handled);
    let o = m.store.ota("f1").await.unwrap().unwrap();
    let get = format!("$aws/things/d/streams/{}/get/json", o.stream_id);
    let req = br#"{"c":"x","s":1,"f":0,"l":1024,"o":0,"n":2}"#;
    assert_eq!(on_publish(svc, "d", "d", &get, req).await, Outcome::Handled);
    assert_eq!(faults.dropped(), 2);
    let e = m.store.execution("AFR_OTA-f1", "d").await.unwrap().unwrap();
    assert_eq!(e.status, ferrota_proto::JobStatus::InProgress);
}

/// Issue 15: the [`Admin`] needs no broker. Its view of the live sessions is the narrow
/// [`ferrota_server::admin::Sessions`] (here the test [`Bus`]): `describe_thing` reads
/// `connected` from it, `revoke_thing` revokes in the store and then tells it (the broker
/// closes the session and reloads the CRL; the bus detaches the device and records it), and
/// the Jobs notification of a create goes through the services to the attached device.
#[tokio::test]
async fn the_admin_runs_without_a_broker_and_tells_its_sessions_of_a_revocation() {
    let m = Mem::new();
    m.thing("d").await;
    m.thing("e").await;
    assert!(!m.admin.describe_thing("d").await.unwrap().connected);
    let mut dev = m.device("d");
    dev.subscribe("$aws/things/d/jobs/notify-next");
    assert!(m.admin.describe_thing("d").await.unwrap().connected);
    assert!(!m.admin.describe_thing("e").await.unwrap().connected);

    m.data_ota("n1", "thing/d", &[1u8; 100]).await;
    let (t, v) = dev.next_json().await;
    assert_eq!(t, "$aws/things/d/jobs/notify-next");
    assert_eq!(v["execution"]["jobId"], "AFR_OTA-n1");

    // Things of this harness have no certificate: 0 revoked, and the sessions are told anyway.
    assert_eq!(m.admin.revoke_thing("d").await.unwrap(), 0);
    assert_eq!(m.bus.revoked_things(), ["d"]);
    assert!(dev.detached());
    assert!(!m.admin.describe_thing("d").await.unwrap().connected);
    // An unknown thing is NotFound, and the sessions hear nothing.
    assert!(matches!(
        m.admin.revoke_thing("nope").await,
        Err(ferrota_server::admin::AdminError::NotFound(_))
    ));
    assert_eq!(m.bus.revoked_things(), ["d"]);
}

/// Issue 17: two workers (two `Services` over one store) handle the same device's updates at
/// once, as a broker cluster redelivering a request to the second worker does. An update
/// without `expectedVersion` that loses the race is applied to what is there now, as AWS
/// applies it whatever the version: every update is accepted (none is refused with
/// VersionMismatch, which a device that named no version cannot act on), and the version
/// counts every one of them. An update that names a stale version is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_apply_updates_without_expected_version_and_refuse_stale_ones() {
    let m = Mem::new();
    m.thing("d").await;
    let sha = m.admin.put_file(&[7u8; 2048]).await.unwrap();
    m.admin
        .create_ota(&Mem::data_request("race", "thing/d", &sha))
        .await
        .unwrap();
    let out = Arc::new(Recorder::default());
    let worker = || {
        Arc::new(Services::new(
            m.store.clone(),
            m.services.blobs.clone(),
            Arc::new(Fixed),
            out.clone(),
        ))
    };
    let (w1, w2) = (worker(), worker());
    const EACH: usize = 150;
    let upd = "$aws/things/d/jobs/AFR_OTA-race/update";
    let run = |w: Arc<Services>, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..EACH {
                let body =
                    format!(r#"{{"status":"IN_PROGRESS","statusDetails":{{"{tag}":"{i}"}}}}"#);
                assert_eq!(
                    on_publish(&w, "d", "d", upd, body.as_bytes()).await,
                    Outcome::Handled
                );
            }
        })
    };
    let (a, b) = (run(w1.clone(), "w1"), run(w2.clone(), "w2"));
    a.await.unwrap();
    b.await.unwrap();
    let sent = out.take();
    let rejected: Vec<String> = sent
        .iter()
        .filter(|(t, _)| t.ends_with("/update/rejected"))
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(
        rejected.is_empty(),
        "{} refused, e.g. {:?}",
        rejected.len(),
        rejected.first()
    );
    let accepted = sent
        .iter()
        .filter(|(t, _)| t.ends_with("/update/accepted"))
        .count();
    assert_eq!(accepted, 2 * EACH);
    let e = m
        .store
        .execution("AFR_OTA-race", "d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.version_number,
        1 + 2 * EACH as u64,
        "QUEUED, then one per update"
    );

    // A device that names a version it no longer holds is refused, race or not.
    let stale = br#"{"status":"SUCCEEDED","expectedVersion":2}"#;
    assert_eq!(
        on_publish(&w1, "d", "d", upd, stale).await,
        Outcome::Handled
    );
    let sent = out.take();
    assert!(
        sent.iter().any(|(t, p)| t.ends_with("/update/rejected")
            && String::from_utf8_lossy(p).contains("VersionMismatch")),
        "{sent:?}"
    );
    let e = m
        .store
        .execution("AFR_OTA-race", "d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, ferrota_proto::JobStatus::InProgress);
}
