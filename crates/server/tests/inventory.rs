//! Issue 16: the device inventory (`thing describe`, `GET /api/things/{name}`) from the
//! thing's Device Shadow, connection and jobs, and `GET /api/things/{name}/shadow`
//! (GetThingShadow), through the real services on virtual time.

use crate::common;

use common::*;
use ferrota_api::{FirmwareState, ReportedState};
use ferrota_server::admin::Sessions;
use ferrota_server::context::Clock;
use ferrota_server::inventory::inventory;
use serde_json::json;

const REPORT: &str = r#"{"state":{"reported":{"firmware":{"version":"1.2.0","bank":"B",
  "pendingTrial":true,"antiRollbackFloor":3},"hardwareId":"KIT_T2G-B-H_LITE","other":1}},
  "clientToken":"7"}"#;

#[tokio::test]
async fn describe_shows_what_the_device_reported_its_connection_and_last_job() {
    describe_shows_what_the_device_reported_its_connection_and_last_job_on(Mem::new()).await;
}

#[tokio::test]
async fn describe_shows_what_the_device_reported_its_connection_and_last_job_on_postgres() {
    if let Some(m) = Mem::postgres("inventory_describe").await {
        describe_shows_what_the_device_reported_its_connection_and_last_job_on(m).await;
    }
}

async fn describe_shows_what_the_device_reported_its_connection_and_last_job_on(m: Mem) {
    m.thing("d").await;
    // Nothing known yet: registered, never connected, never reported.
    let t = m.admin.describe_thing("d").await.unwrap();
    assert_eq!(t.inventory, Default::default());

    let d = m.device("d");
    let t0 = m.clock.now();
    d.publish("$aws/things/d/shadow/update", REPORT).await;
    m.clock.advance(30);
    let t = m.admin.describe_thing("d").await.unwrap();
    let inv = &t.inventory;
    assert!(inv.connected);
    assert_eq!(
        inv.reported,
        Some(ReportedState {
            firmware: Some(FirmwareState {
                version: "1.2.0".into(),
                bank: "B".into(),
                pending_trial: true,
                anti_rollback_floor: 3,
            }),
            hardware_id: Some("KIT_T2G-B-H_LITE".into()),
        })
    );
    assert_eq!(inv.reported_at, Some(t0));
    // Connected: seen now.
    assert_eq!(inv.last_seen, Some(t0 + 30));
    assert_eq!(inv.last_job, None);

    // A job, started by the device: the newest execution is the last job; its update is a
    // time the device was heard.
    m.data_ota("o1", "thing/d", b"data").await;
    let mut d = d;
    d.ask("$aws/things/d/jobs/start-next", "{}").await;
    let t1 = m.clock.now();
    drop(d);
    m.bus.revoked("d"); // detached: not connected any more
    m.clock.advance(100);
    let inv = inventory(&m.services, false, "d").await.unwrap();
    assert!(!inv.connected);
    let job = inv.last_job.unwrap();
    assert_eq!(job.job_id, "AFR_OTA-o1");
    assert_eq!(job.status, "IN_PROGRESS");
    assert_eq!(job.last_updated_at, t1);
    assert_eq!(inv.last_seen, Some(t1));

    // The JSON the API and `--json` show.
    let (status, v) = m.api("GET", "/api/things/d", None).await;
    assert_eq!(status, 200);
    let inv = &v["inventory"];
    assert_eq!(inv["reported"]["firmware"]["version"], "1.2.0");
    assert_eq!(inv["reported"]["firmware"]["pendingTrial"], true);
    assert_eq!(inv["reported"]["hardwareId"], "KIT_T2G-B-H_LITE");
    assert_eq!(inv["lastJob"]["jobId"], "AFR_OTA-o1");
    assert_eq!(inv["connected"], false);
}

#[tokio::test]
async fn a_partial_or_odd_report_is_read_field_by_field() {
    let m = Mem::new();
    m.thing("d").await;
    let d = m.device("d");
    d.publish(
        "$aws/things/d/shadow/update",
        r#"{"state":{"reported":{"firmware":{"version":"1.0.0"},"hardwareId":7}}}"#,
    )
    .await;
    let inv = inventory(&m.services, true, "d").await.unwrap();
    assert_eq!(inv.reported, Some(ReportedState::default()));
    assert!(inv.reported_at.is_some());
    // Only desired: nothing reported.
    d.publish(
        "$aws/things/d/shadow/update",
        r#"{"state":{"reported":null,"desired":{"x":1}}}"#,
    )
    .await;
    let inv = inventory(&m.services, true, "d").await.unwrap();
    assert_eq!(inv.reported, None);
    assert_eq!(inv.reported_at, None);
}

#[tokio::test]
async fn get_thing_shadow_over_http_is_aws_document_or_404() {
    let m = Mem::new();
    m.thing("d").await;
    let (s, v) = m.api("GET", "/api/things/nope/shadow", None).await;
    assert_eq!(s, 404);
    assert_eq!(v["code"], "ResourceNotFoundException");
    let (s, v) = m.api("GET", "/api/things/d/shadow", None).await;
    assert_eq!(s, 404);
    assert_eq!(v["code"], "ResourceNotFoundException");
    assert_eq!(v["message"], "No shadow exists with name: 'd'");

    let d = m.device("d");
    d.publish("$aws/things/d/shadow/update", REPORT).await;
    d.publish(
        "$aws/things/d/shadow/update",
        json!({"state":{"desired":{"firmware":{"version":"1.3.0"}}}}).to_string(),
    )
    .await;
    let (s, v) = m.api("GET", "/api/things/d/shadow", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["state"]["reported"]["firmware"]["bank"], "B");
    assert_eq!(v["state"]["delta"], json!({"firmware":{"version":"1.3.0"}}));
    assert!(v["metadata"]["reported"]["firmware"]["version"]["timestamp"].is_u64());
    assert!(v["timestamp"].is_u64());
    assert!(v.get("clientToken").is_none());
}
