//! Every out-of-range rollout setting gets AWS's validation error (HTTP 400
//! `InvalidRequestException`, the message naming the field) and stores nothing: no OTA update,
//! no job, no uploaded file left behind (issue 16, item 5).

use crate::common;

use common::Mem;
use serde_json::{Value, json};

fn request(sha: &str) -> Value {
    json!({
        "otaUpdateId": "bad",
        "targets": ["thinggroup/fleet"],
        "files": [{
            "fileName": "/ota/data.bin",
            "fileType": common::DATA_FILE_TYPE,
            "fileLocation": {"sha256": sha},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": common::SIGNATURE},
                "certificateChain": {"certificateName": "signer.crt"}
            }}
        }]
    })
}

/// AWS's `YYYY-MM-DDTHH:MM` of `now + secs` (UTC).
fn at(now: u64, secs: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(now as i64 + secs).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute()
    )
}

fn wave(v: Value) -> Value {
    json!({"waves": [v]})
}

#[tokio::test]
async fn every_out_of_range_setting_is_refused_and_nothing_is_stored() {
    let m = Mem::new();
    m.thing_in("d1", &["fleet"]).await;
    let now = m.clock.now_secs();
    const H: i64 = 3600;
    const DAY: i64 = 24 * H;
    let cases: Vec<(&str, &str, Value)> = vec![
        // Rate.
        (
            "maximumPerMinute",
            "awsJobExecutionsRolloutConfig",
            json!({"maximumPerMinute": 0}),
        ),
        (
            "maximumPerMinute",
            "awsJobExecutionsRolloutConfig",
            json!({"maximumPerMinute": 1001}),
        ),
        (
            "baseRatePerMinute",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 0, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
        ),
        (
            "baseRatePerMinute",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 1001, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
        ),
        (
            "incrementFactor",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 1.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
        ),
        (
            "incrementFactor",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 5.1,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
        ),
        (
            "incrementFactor",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 1.25,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10}}}),
        ),
        (
            "rateIncreaseCriteria",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {}}}),
        ),
        (
            "rateIncreaseCriteria",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 10, "numberOfSucceededThings": 10}}}),
        ),
        (
            "numberOfNotifiedThings",
            "awsJobExecutionsRolloutConfig",
            json!({"exponentialRate": {
            "baseRatePerMinute": 10, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 0}}}),
        ),
        // Abort.
        (
            "abortCriteriaList",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": []}),
        ),
        (
            "failureType",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "BOGUS",
            "action": "CANCEL", "thresholdPercentage": 10, "minNumberOfExecutedThings": 1}]}),
        ),
        (
            "action",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "FAILED",
            "action": "STOP", "thresholdPercentage": 10, "minNumberOfExecutedThings": 1}]}),
        ),
        (
            "thresholdPercentage",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "FAILED",
            "action": "CANCEL", "thresholdPercentage": 100.5, "minNumberOfExecutedThings": 1}]}),
        ),
        (
            "thresholdPercentage",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "FAILED",
            "action": "CANCEL", "thresholdPercentage": -1, "minNumberOfExecutedThings": 1}]}),
        ),
        (
            "thresholdPercentage",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "FAILED",
            "action": "CANCEL", "thresholdPercentage": 10.125, "minNumberOfExecutedThings": 1}]}),
        ),
        (
            "minNumberOfExecutedThings",
            "awsJobAbortConfig",
            json!({"abortCriteriaList": [{"failureType": "FAILED",
            "action": "CANCEL", "thresholdPercentage": 10, "minNumberOfExecutedThings": 0}]}),
        ),
        // Retry.
        (
            "criteriaList",
            "jobExecutionsRetryConfig",
            json!({"criteriaList": []}),
        ),
        (
            "failureType",
            "jobExecutionsRetryConfig",
            json!({"criteriaList": [
            {"failureType": "REJECTED", "numberOfRetries": 1}]}),
        ),
        (
            "numberOfRetries",
            "jobExecutionsRetryConfig",
            json!({"criteriaList": [
            {"failureType": "FAILED", "numberOfRetries": 11}]}),
        ),
        (
            "criteriaList",
            "jobExecutionsRetryConfig",
            json!({"criteriaList": [
            {"failureType": "FAILED", "numberOfRetries": 1},
            {"failureType": "TIMED_OUT", "numberOfRetries": 1},
            {"failureType": "ALL", "numberOfRetries": 1}]}),
        ),
        // Scheduling.
        (
            "startTime",
            "schedulingConfig",
            json!({"startTime": at(now, 10 * 60)}),
        ),
        (
            "startTime",
            "schedulingConfig",
            json!({"startTime": at(now, 400 * DAY)}),
        ),
        (
            "startTime",
            "schedulingConfig",
            json!({"startTime": "tomorrow at noon"}),
        ),
        (
            "endTime",
            "schedulingConfig",
            json!({"startTime": at(now, 2 * H),
            "endTime": at(now, 2 * H + 10 * 60)}),
        ),
        (
            "endTime",
            "schedulingConfig",
            json!({"startTime": at(now, 2 * H),
            "endTime": at(now, 800 * DAY)}),
        ),
        (
            "endBehavior",
            "schedulingConfig",
            json!({"startTime": at(now, 2 * H),
            "endTime": at(now, 4 * H), "endBehavior": "NOW"}),
        ),
        (
            "durationInMinutes",
            "schedulingConfig",
            json!({"maintenanceWindows": [
            {"startTime": "cron(0 2 * * ? *)", "durationInMinutes": 0}]}),
        ),
        (
            "durationInMinutes",
            "schedulingConfig",
            json!({"maintenanceWindows": [
            {"startTime": "cron(0 2 * * ? *)", "durationInMinutes": 1431}]}),
        ),
        (
            "startTime",
            "schedulingConfig",
            json!({"maintenanceWindows": [
            {"startTime": "cron(every night)", "durationInMinutes": 60}]}),
        ),
        // Waves.
        ("waves", "rolloutWaves", json!({"waves": []})),
        ("percentage", "rolloutWaves", wave(json!({"percentage": 0}))),
        (
            "percentage",
            "rolloutWaves",
            wave(json!({"percentage": 101})),
        ),
        (
            "percentage",
            "rolloutWaves",
            json!({"waves": [{"percentage": 50}, {"percentage": 20}]}),
        ),
        ("count", "rolloutWaves", wave(json!({"count": 0}))),
        (
            "waves.1.member",
            "rolloutWaves",
            wave(json!({"count": 5, "percentage": 10})),
        ),
        (
            "waves.1.member",
            "rolloutWaves",
            wave(json!({"name": "none"})),
        ),
        (
            "successThresholdPercentage",
            "rolloutWaves",
            wave(json!({"percentage": 100, "successThresholdPercentage": 101})),
        ),
        (
            "errorThresholdPercentage",
            "rolloutWaves",
            wave(json!({"percentage": 100, "errorThresholdPercentage": 101})),
        ),
        (
            "errorThresholdCount",
            "rolloutWaves",
            wave(json!({"percentage": 100, "errorThresholdCount": 0})),
        ),
        // Target selection.
        ("targetSelection", "targetSelection", json!("SOMETIMES")),
    ];
    for (field, key, value) in cases {
        let sha = m.admin.put_file(b"firmware").await.unwrap();
        let mut req = request(&sha);
        req[key] = value.clone();
        let (st, v) = m.api("POST", "/api/ota-updates", Some(&req)).await;
        assert_eq!(st, 400, "{key} = {value}: {v}");
        assert_eq!(v["code"], "InvalidRequestException", "{v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(field),
            "{key} = {value}: {field:?} not named in {msg:?}"
        );
        assert!(
            m.admin.list_ota().await.unwrap().is_empty(),
            "{key}: stored"
        );
        assert!(
            m.store.job("AFR_OTA-bad").await.unwrap().is_none(),
            "{key}: a job"
        );
        assert!(
            m.stored_files().is_empty(),
            "{key} = {value}: the upload was left behind"
        );
    }
    // The same request with valid settings is accepted: the cases failed for their values.
    let sha = m.admin.put_file(b"firmware").await.unwrap();
    let mut req = request(&sha);
    req["awsJobExecutionsRolloutConfig"] = json!({"maximumPerMinute": 1000});
    req["awsJobAbortConfig"] = json!({"abortCriteriaList": [{"failureType": "ALL",
        "action": "CANCEL", "thresholdPercentage": 12.5, "minNumberOfExecutedThings": 1}]});
    req["jobExecutionsRetryConfig"] = json!({"criteriaList": [
        {"failureType": "FAILED", "numberOfRetries": 10},
        {"failureType": "TIMED_OUT", "numberOfRetries": 0}]});
    req["schedulingConfig"] = json!({"startTime": at(now, 2 * H), "endTime": at(now, 4 * H),
        "endBehavior": "FORCE_CANCEL", "maintenanceWindows": [
            {"startTime": "cron(0 2 * * ? *)", "durationInMinutes": 1430}]});
    req["rolloutWaves"] = json!({"waves": [{"percentage": 1, "errorThresholdCount": 1},
        {"thingGroup": "fleet"}, {"percentage": 100}]});
    req["targetSelection"] = json!("CONTINUOUS");
    let (st, v) = m.api("POST", "/api/ota-updates", Some(&req)).await;
    assert_eq!(st, 200, "{v}");
}
