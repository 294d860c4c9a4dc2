//! Bounded job data (issue 13 item 2): AWS's `statusDetails` limits on UpdateJobExecution and
//! StartNextPendingJobExecution, bounded history per execution, paged describe and a cancel
//! that stays small however much a device wrote.

use crate::common;

use common::*;
use ferrota_proto::jobs_api::JobsRejection;
use ferrota_server::admin::*;
use serde_json::json;

async fn ota(s: &Mem, id: &str, target: &str) -> OtaDescription {
    let data: Vec<u8> = (0..4096usize).map(|i| (i * 31 % 251) as u8).collect();
    s.data_ota(id, target, &data).await
}

/// The stored execution and its history, as comparable text.
async fn stored(s: &Mem, job: &str, thing: &str) -> String {
    let st = &s.store;
    let e = st.execution(job, thing).await.unwrap();
    let h = st.history(job, thing).await.unwrap();
    format!("{e:?}\n{h:?}")
}

fn x(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test]
async fn status_details_over_aws_limits_are_rejected_and_nothing_is_stored() {
    let s = Mem::new();
    s.thing("dev-1").await;
    s.thing("dev-2").await;
    ota(&s, "up1", "thing/dev-1").await;
    ota(&s, "up2", "thing/dev-2").await;
    let mut c = s.device("dev-1");
    let topic = "$aws/things/dev-1/jobs/AFR_OTA-up1/update";

    // What the official device sends is accepted (spec §4.4), at the limits too.
    let ok = [
        json!({"status":"IN_PROGRESS","statusDetails":{"receive":"1/25"}}),
        json!({"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x00090002"}}),
        json!({"status":"IN_PROGRESS","statusDetails":{"reason":"accepted  v0.9.3","updatedBy":"  v0.9.2"}}),
        json!({"status":"IN_PROGRESS","statusDetails":{"k":"é".repeat(1024), (x(128)):"v"}}),
        json!({"status":"IN_PROGRESS","statusDetails":{"a:b_c-D9":x(1000),"b":x(1000),"c":x(1000),"d":x(1000)},"clientToken":"ok"}),
    ];
    for body in ok {
        let p = c.ask(topic, body.to_string().into_bytes()).await;
        assert_eq!(p.topic, format!("{topic}/accepted"), "{body}");
    }
    let before = stored(&s, "AFR_OTA-up1", "dev-1").await;

    let mut many = serde_json::Map::new();
    for i in 0..11 {
        many.insert(format!("k{i}"), "v".into());
    }
    let mut big = json!({"status":"SUCCEEDED","statusDetails":{"a":"b"},"clientToken":"tok"});
    big["pad"] = x(130 * 1024).into();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("value over 1,024 characters", json!({"status":"SUCCEEDED","statusDetails":{"reason":x(1025)},"clientToken":"tok"}).to_string().into_bytes()),
        ("the probe's 240 KB value", json!({"status":"SUCCEEDED","statusDetails":{"reason":x(240 * 1024)},"clientToken":"tok"}).to_string().into_bytes()),
        ("too many entries", json!({"status":"SUCCEEDED","statusDetails":many,"clientToken":"tok"}).to_string().into_bytes()),
        ("oversize statusDetails", json!({"status":"SUCCEEDED","statusDetails":{"a":x(1024),"b":x(1024),"c":x(1024),"d":x(1024),"e":"f"},"clientToken":"tok"}).to_string().into_bytes()),
        ("oversize request", big.to_string().into_bytes()),
        ("non-object statusDetails", json!({"status":"SUCCEEDED","statusDetails":"done","clientToken":"tok"}).to_string().into_bytes()),
        ("array statusDetails", json!({"status":"SUCCEEDED","statusDetails":["a"],"clientToken":"tok"}).to_string().into_bytes()),
        ("non-string value", json!({"status":"SUCCEEDED","statusDetails":{"n":1},"clientToken":"tok"}).to_string().into_bytes()),
        ("key over 128 characters", json!({"status":"SUCCEEDED","statusDetails":{(x(129)):"v"},"clientToken":"tok"}).to_string().into_bytes()),
        ("key outside [a-zA-Z0-9:_-]", json!({"status":"SUCCEEDED","statusDetails":{"a b":"v"},"clientToken":"tok"}).to_string().into_bytes()),
        ("empty value", json!({"status":"SUCCEEDED","statusDetails":{"a":""},"clientToken":"tok"}).to_string().into_bytes()),
        ("control character", json!({"status":"SUCCEEDED","statusDetails":{"a":"x\u{1}"},"clientToken":"tok"}).to_string().into_bytes()),
    ];
    for (what, body) in bad {
        let p = c.ask(topic, body).await;
        assert_eq!(p.topic, format!("{topic}/rejected"), "{what}");
        let r = JobsRejection::parse(&p.payload).unwrap();
        assert_eq!(r.code.raw(), "InvalidRequest", "{what}");
        assert_eq!(r.client_token.map(|t| t.raw()), Some("tok"), "{what}");
        assert!(r.message.is_some_and(|m| !m.raw().is_empty()), "{what}");
        assert_eq!(stored(&s, "AFR_OTA-up1", "dev-1").await, before, "{what}");
    }
    drop(c);

    // StartNextPendingJobExecution: the same limits; the execution stays QUEUED.
    let mut c = s.device("dev-2");
    let topic = "$aws/things/dev-2/jobs/start-next";
    let before = stored(&s, "AFR_OTA-up2", "dev-2").await;
    assert!(before.contains("Queued"), "{before}");
    for body in [
        json!({"statusDetails":{"reason":x(1025)},"clientToken":"tok"}),
        json!({"statusDetails":"x","clientToken":"tok"}),
    ] {
        let p = c.ask(topic, body.to_string().into_bytes()).await;
        assert_eq!(p.topic, format!("{topic}/rejected"), "{body}");
        let r = JobsRejection::parse(&p.payload).unwrap();
        assert_eq!(r.code.raw(), "InvalidRequest");
        assert_eq!(r.client_token.map(|t| t.raw()), Some("tok"));
        assert_eq!(stored(&s, "AFR_OTA-up2", "dev-2").await, before, "{body}");
    }
    let p = c
        .ask(topic, br#"{"statusDetails":{"receive":"0/1"}}"#.to_vec())
        .await;
    assert_eq!(p.topic, format!("{topic}/accepted"));
}

/// The largest statusDetails AWS's limits allow here: 4,096 bytes of keys and values.
fn maximal_details(i: usize) -> serde_json::Value {
    let tail = format!("{i:06}");
    json!({"a": x(1024), "b": x(1024), "c": x(1024), "d": x(1020 - tail.len()) + &tail})
}

/// Sends `n` IN_PROGRESS updates with maximal statusDetails, each answered before the next.
async fn hammer(c: &mut MemDevice, topic: &str, n: usize) {
    for i in 0..n {
        let body = json!({"status":"IN_PROGRESS","statusDetails":maximal_details(i)});
        let p = c.ask(topic, body.to_string().into_bytes()).await;
        assert_eq!(p.topic, format!("{topic}/accepted"), "update {i}");
    }
}

#[tokio::test]
async fn a_device_cannot_grow_the_database_without_limit() {
    // The database file is what this test measures: SQLite in a directory.
    let s = Mem::open(std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    s.thing("dev-1").await;
    ota(&s, "up1", "thing/dev-1").await;
    let mut c = s.device("dev-1");
    let topic = "$aws/things/dev-1/jobs/AFR_OTA-up1/update";
    let n = 120;
    hammer(&mut c, topic, n).await;

    let st = &s.store;
    let h = st.history("AFR_OTA-up1", "dev-1").await.unwrap();
    assert_eq!(h.len(), ferrota_server::store::HISTORY_MAX);
    // The newest are kept: the last entry is the last update (version 1 + n).
    assert_eq!(h.last().unwrap().version_number, 1 + n as u64);
    assert_eq!(h.first().unwrap().version_number, 2 + (n - h.len()) as u64);
    assert!(h.last().unwrap().status_details["d"].ends_with(&format!("{:06}", n - 1)));
    drop(c);

    // Closing the store checkpoints the WAL into the database file: its growth over an
    // empty database (the schema's pages) is what the device left behind. Unbounded, 120 ×
    // 4 KiB of history alone would be 490 KB.
    let dir = s.close().await;
    let size = std::fs::metadata(dir.path().join("ferrota.db"))
        .unwrap()
        .len();
    let empty_dir = Mem::open(std::sync::Arc::new(tempfile::tempdir().unwrap()))
        .await
        .close()
        .await;
    let empty = std::fs::metadata(empty_dir.path().join("ferrota.db"))
        .unwrap()
        .len();
    let grown = size - empty;
    assert!(
        grown < 320 * 1024,
        "database grew by {grown} bytes ({empty} empty, {size} after)"
    );
}

#[tokio::test]
async fn describe_pages_and_cancel_stay_small_after_many_large_updates() {
    let s = Mem::new();
    for i in 0..5 {
        s.thing_in(&format!("dev-{i}"), &["fleet"]).await;
    }
    ota(&s, "up1", "thinggroup/fleet").await;
    let mut c = s.device("dev-0");
    hammer(&mut c, "$aws/things/dev-0/jobs/AFR_OTA-up1/update", 60).await;
    drop(c);

    // Pages of 2: 2, 2, 1, with nextToken on all but the last; no history embedded.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &token {
            Some(t) => format!("?maxResults=2&nextToken={t}"),
            None => "?maxResults=2".into(),
        };
        let (code, v) = s
            .api("GET", &format!("/api/ota-updates/up1{q}"), None)
            .await;
        assert_eq!(code, 200, "{v}");
        let size = v.to_string().len();
        assert!(size < 32 * 1024, "page of {size} bytes");
        let ex = v["executions"].as_array().unwrap();
        assert!(ex.len() <= 2);
        for e in ex {
            assert!(e.get("history").is_none(), "{e}");
            seen.push(e["thingName"].as_str().unwrap().to_string());
        }
        pages += 1;
        match v.get("nextToken").and_then(|t| t.as_str()) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4"]);

    // The default page holds all five, and the big statusDetails of dev-0 once only.
    let (code, v) = s.api("GET", "/api/ota-updates/up1", None).await;
    assert_eq!(code, 200);
    assert_eq!(v["executions"].as_array().unwrap().len(), 5);
    assert!(v.get("nextToken").is_none());
    assert!(v.to_string().len() < 16 * 1024, "{}", v.to_string().len());

    // Bad page requests are clear errors.
    for q in ["maxResults=0", "maxResults=251", "nextToken=abc"] {
        let (code, v) = s
            .api("GET", &format!("/api/ota-updates/up1?{q}"), None)
            .await;
        assert_eq!(code, 400, "{q}: {v}");
    }

    // The history is its own, bounded request.
    let (code, v) = s
        .api("GET", "/api/ota-updates/up1/things/dev-0/history", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(v.as_array().unwrap().len(), 50);
    let (code, _) = s
        .api("GET", "/api/ota-updates/up1/things/nope/history", None)
        .await;
    assert_eq!(code, 404);

    // Cancel (forced: dev-0 is IN_PROGRESS) succeeds with a small answer.
    let (code, v) = s
        .api("POST", "/api/ota-updates/up1/cancel?force=true", None)
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v.to_string().len() < 16 * 1024, "{}", v.to_string().len());
    assert_eq!(v["status"], "CANCELED");
    for e in v["executions"].as_array().unwrap() {
        assert_eq!(e["status"], "CANCELED", "{e}");
    }
}

/// In memory: the Admin over the in-memory store (things without certificates).
#[tokio::test]
async fn cancel_pages_through_more_executions_than_a_page() {
    let s = Mem::new();
    let n = ferrota_server::admin::DESCRIBE_PAGE_MAX + 3;
    for i in 0..n {
        s.thing_in(&format!("d{i:03}"), &["fleet"]).await;
    }
    let data: Vec<u8> = (0..4096usize).map(|i| (i * 31 % 251) as u8).collect();
    s.data_ota("up1", "thinggroup/fleet", &data).await;
    let d = s.admin.cancel_ota("up1", false).await.unwrap();
    assert_eq!(
        d.executions.len(),
        ferrota_server::admin::DESCRIBE_PAGE_DEFAULT
    );
    assert!(d.next_token.is_some());
    let execs = s.store.executions_of_job("AFR_OTA-up1").await.unwrap();
    assert_eq!(execs.len(), n);
    assert!(
        execs
            .iter()
            .all(|e| e.status == ferrota_proto::JobStatus::Canceled)
    );
}
