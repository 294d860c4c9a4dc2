//! Over mutual TLS on loopback: the `jobs/notify` push (JobExecutionsChanged) as the pending
//! list changes, GetPendingJobExecutions, and `awsJobTimeoutConfig` through the HTTP API
//! (the timer logic itself is tested without sockets in `timeouts`).

mod common;

use common::*;
use rumqttc::QoS;
use serde_json::{Value, json};

fn create_request(id: &str, sha: &str, timeout: Option<u64>) -> Value {
    let mut r = json!({
        "otaUpdateId": id,
        "targets": ["thing/dev-n"],
        "files": [{
            "fileName": "/ota/bank.bin",
            "fileType": 7,
            "fileLocation": {"sha256": sha},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": "MAYCAQECAQE="},
                "certificateChain": {"certificateName": "signer.crt"}
            }}
        }]
    });
    if let Some(m) = timeout {
        r["awsJobTimeoutConfig"] = json!({"inProgressTimeoutInMinutes": m});
    }
    r
}

async fn next_json(c: &mut Client) -> (String, Value) {
    let p = publish(c).await;
    (p.topic.clone(), serde_json::from_slice(&p.payload).unwrap())
}

async fn request(c: &mut Client, suffix: &str, body: &str) {
    c.c.publish(
        format!("$aws/things/dev-n/jobs/{suffix}"),
        QoS::AtLeastOnce,
        false,
        body.to_string(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_follows_the_pending_list_and_timeouts_come_through_the_api() {
    let s = TestServer::start().await;
    let a = s.thing("dev-n", &[]).await;
    let sha = s.admin.put_file(&[7u8; 5000]).unwrap();
    // Out-of-range timeouts are refused.
    for bad in [0, 10081] {
        let (st, v) = http(
            &s,
            "POST",
            "/api/ota-updates",
            Some(&create_request("bad", &sha, Some(bad))),
        )
        .await;
        assert_eq!(st, 400, "{v}");
    }
    // A failed create deletes an upload no update uses (issue 13 item 8): upload again.
    let sha = s.admin.put_file(&[7u8; 5000]).unwrap();
    let mut c = connect(&s, &a).await;
    subscribe(&mut c, "$aws/things/dev-n/jobs/notify", QoS::AtLeastOnce).await;

    let (st, v) = http(
        &s,
        "POST",
        "/api/ota-updates",
        Some(&create_request("u1", &sha, Some(5))),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["request"]["awsJobTimeoutConfig"]["inProgressTimeoutInMinutes"],
        5
    );
    let job = s
        .admin
        .broker
        .store
        .job("AFR_OTA-u1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.in_progress_timeout_minutes, Some(5));
    // Added to the pending list: notify with AWS's shape.
    let (t, n) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert!(n["timestamp"].is_u64());
    let queued = &n["jobs"]["QUEUED"];
    assert_eq!(queued.as_array().unwrap().len(), 1);
    assert_eq!(queued[0]["jobId"], "AFR_OTA-u1");
    assert_eq!(queued[0]["versionNumber"], 1);
    assert_eq!(queued[0]["executionNumber"], 1);
    assert!(n["jobs"].get("IN_PROGRESS").is_none());

    let (_, v) = http(
        &s,
        "POST",
        "/api/ota-updates",
        Some(&create_request("u2", &sha, None)),
    )
    .await;
    assert_eq!(v["jobId"], "AFR_OTA-u2");
    let (_, n) = next_json(&mut c).await;
    let ids: Vec<&str> = n["jobs"]["QUEUED"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["AFR_OTA-u1", "AFR_OTA-u2"]);

    // start-next: QUEUED → IN_PROGRESS changes no membership, so no notify; the job's timer
    // starts. The next message is the answer to jobs/get.
    request(&mut c, "start-next", r#"{"clientToken":"s"}"#).await;
    let (t, v) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/start-next/accepted");
    let started = v["execution"]["startedAt"].as_u64().unwrap();
    let e = s
        .admin
        .broker
        .store
        .execution("AFR_OTA-u1", "dev-n")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.in_progress_deadline, Some(started + 300));
    request(&mut c, "get", r#"{"clientToken":"g"}"#).await;
    let (t, v) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/get/accepted");
    assert_eq!(v["clientToken"], "g");
    assert_eq!(v["inProgressJobs"][0]["jobId"], "AFR_OTA-u1");
    assert_eq!(v["inProgressJobs"][0]["startedAt"], started);
    assert_eq!(v["queuedJobs"][0]["jobId"], "AFR_OTA-u2");

    // SUCCEEDED removes it: notify lists only u2 (the update's accepted comes first).
    request(&mut c, "AFR_OTA-u1/update", r#"{"status":"SUCCEEDED"}"#).await;
    let (t, _) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/AFR_OTA-u1/update/accepted");
    let (t, n) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert_eq!(
        n["jobs"],
        json!({"QUEUED": [n["jobs"]["QUEUED"][0].clone()]})
    );
    assert_eq!(n["jobs"]["QUEUED"][0]["jobId"], "AFR_OTA-u2");

    // Canceling u2 empties the list: notify with no jobs.
    let (st, _) = http(&s, "POST", "/api/ota-updates/u2/cancel", None).await;
    assert_eq!(st, 200);
    let (t, n) = next_json(&mut c).await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert_eq!(n["jobs"], json!({}));
    s.stop().await;
}
