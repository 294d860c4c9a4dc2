//! In memory (the HTTP API's router called directly, a [`MemDevice`] on the services): the
//! `jobs/notify` push (JobExecutionsChanged) as the pending list changes,
//! GetPendingJobExecutions, and `awsJobTimeoutConfig` through the HTTP API; then the timer
//! itself: moving the clock past the deadline and running one sweep of the timer loop
//! ([`ferrota_server::timeouts::expire_due`]) times the execution out and notifies.

use crate::common;

use common::*;
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

async fn request(c: &mut MemDevice, suffix: &str, body: &str) {
    c.publish(format!("$aws/things/dev-n/jobs/{suffix}"), body)
        .await;
}

#[tokio::test]
async fn notify_follows_the_pending_list_and_timeouts_come_through_the_api() {
    let s = Mem::new();
    s.thing("dev-n").await;
    let sha = s.admin.put_file(&[7u8; 5000]).await.unwrap();
    // Out-of-range timeouts are refused.
    for bad in [0, 10081] {
        let (st, v) = s
            .api(
                "POST",
                "/api/ota-updates",
                Some(&create_request("bad", &sha, Some(bad))),
            )
            .await;
        assert_eq!(st, 400, "{v}");
    }
    // A failed create deletes an upload no update uses (issue 13 item 8): upload again.
    let sha = s.admin.put_file(&[7u8; 5000]).await.unwrap();
    let mut c = s.device("dev-n");
    c.subscribe("$aws/things/dev-n/jobs/notify");

    let (st, v) = s
        .api(
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
    let job = s.store.job("AFR_OTA-u1").await.unwrap().unwrap();
    assert_eq!(job.in_progress_timeout_minutes, Some(5));
    // Added to the pending list: notify with AWS's shape.
    let (t, n) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert!(n["timestamp"].is_u64());
    let queued = &n["jobs"]["QUEUED"];
    assert_eq!(queued.as_array().unwrap().len(), 1);
    assert_eq!(queued[0]["jobId"], "AFR_OTA-u1");
    assert_eq!(queued[0]["versionNumber"], 1);
    assert_eq!(queued[0]["executionNumber"], 1);
    assert!(n["jobs"].get("IN_PROGRESS").is_none());

    let (_, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&create_request("u2", &sha, None)),
        )
        .await;
    assert_eq!(v["jobId"], "AFR_OTA-u2");
    let (_, n) = c.next_json().await;
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
    let (t, v) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/start-next/accepted");
    let started = v["execution"]["startedAt"].as_u64().unwrap();
    let e = s
        .store
        .execution("AFR_OTA-u1", "dev-n")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.in_progress_deadline, Some(started + 300));
    request(&mut c, "get", r#"{"clientToken":"g"}"#).await;
    let (t, v) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/get/accepted");
    assert_eq!(v["clientToken"], "g");
    assert_eq!(v["inProgressJobs"][0]["jobId"], "AFR_OTA-u1");
    assert_eq!(v["inProgressJobs"][0]["startedAt"], started);
    assert_eq!(v["queuedJobs"][0]["jobId"], "AFR_OTA-u2");

    // SUCCEEDED removes it: notify lists only u2 (the update's accepted comes first).
    request(&mut c, "AFR_OTA-u1/update", r#"{"status":"SUCCEEDED"}"#).await;
    let (t, _) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/AFR_OTA-u1/update/accepted");
    let (t, n) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert_eq!(
        n["jobs"],
        json!({"QUEUED": [n["jobs"]["QUEUED"][0].clone()]})
    );
    assert_eq!(n["jobs"]["QUEUED"][0]["jobId"], "AFR_OTA-u2");

    // Canceling u2 empties the list: notify with no jobs.
    let (st, _) = s.api("POST", "/api/ota-updates/u2/cancel", None).await;
    assert_eq!(st, 200);
    let (t, n) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert_eq!(n["jobs"], json!({}));
}

/// The timer loop's sweep ([`ferrota_server::timeouts::expire_due`]) on the test's clock: an
/// IN_PROGRESS execution with `inProgressTimeoutInMinutes: 1` stays until its deadline, then
/// becomes TIMED_OUT (terminal, version + 1), leaves the pending list (`jobs/notify` with no
/// jobs) and refuses a late update from the device.
#[tokio::test]
async fn an_execution_times_out_when_the_clock_passes_its_deadline() {
    use ferrota_server::timeouts::expire_due;
    let s = Mem::new();
    s.thing("dev-n").await;
    let sha = s.admin.put_file(&[7u8; 5000]).await.unwrap();
    let mut c = s.device("dev-n");
    c.subscribe("$aws/things/dev-n/jobs/notify");
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&create_request("t1", &sha, Some(1))),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (t, _) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    request(&mut c, "start-next", "{}").await;
    let (t, v) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/start-next/accepted");
    let started = v["execution"]["startedAt"].as_u64().unwrap();
    assert_eq!(started, ferrota_server::context::Clock::now(&*s.clock));

    // One second before the deadline: nothing expires.
    s.clock.advance(59);
    assert_eq!(expire_due(&s.services).await.unwrap(), 0);
    // At the deadline: TIMED_OUT, and the pending list is empty.
    s.clock.advance(1);
    assert_eq!(expire_due(&s.services).await.unwrap(), 1);
    let e = s
        .store
        .execution("AFR_OTA-t1", "dev-n")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, ferrota_proto::JobStatus::TimedOut);
    assert_eq!(e.version_number, 3);
    let (t, n) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/notify");
    assert_eq!(n["jobs"], json!({}));
    // Once: a second sweep finds nothing.
    assert_eq!(expire_due(&s.services).await.unwrap(), 0);
    // The device's late SUCCEEDED is refused.
    request(&mut c, "AFR_OTA-t1/update", r#"{"status":"SUCCEEDED"}"#).await;
    let (t, v) = c.next_json().await;
    assert_eq!(t, "$aws/things/dev-n/jobs/AFR_OTA-t1/update/rejected");
    assert_eq!(v["code"], "InvalidStateTransition", "{v}");
}
