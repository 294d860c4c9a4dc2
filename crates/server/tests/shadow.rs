//! Issue 16: the classic Device Shadow, through the real services ([`Mem`], [`MemDevice`],
//! virtual time): update/merge/`null`, versions (409), get/delete (404), delta, documents,
//! metadata timestamps, AWS's limits (413, nesting 400) leaving the stored shadow unchanged,
//! and another thing's shadow refused.

use crate::common;

use common::*;
use ferrota_server::Policy;
use ferrota_server::context::Clock;
use ferrota_server::services::{Outcome, on_publish};
use serde_json::{Value, json};

const UPDATE: &str = "$aws/things/d/shadow/update";
const GET: &str = "$aws/things/d/shadow/get";
const DELETE: &str = "$aws/things/d/shadow/delete";

async fn device(m: &Mem) -> MemDevice {
    m.thing("d").await;
    let d = m.device("d");
    d.subscribe("$aws/things/d/shadow/#");
    d
}

/// Publishes and reads the replies until (and including) `…/accepted` or `…/rejected`.
async fn ask(d: &mut MemDevice, topic: &str, body: &Value) -> Vec<(String, Value)> {
    d.publish(topic, body.to_string()).await;
    let mut out = vec![];
    loop {
        let (t, v) = d.next_json().await;
        let done = t.ends_with("/accepted") || t.ends_with("/rejected");
        out.push((t, v));
        if done {
            // `documents` and `delta` follow `update/accepted`; collect what is queued.
            while let Ok(Some(m)) =
                tokio::time::timeout(std::time::Duration::from_millis(20), async {
                    Some(d.next_json().await)
                })
                .await
            {
                out.push(m);
            }
            return out;
        }
    }
}

fn one<'a>(msgs: &'a [(String, Value)], suffix: &str) -> &'a Value {
    msgs.iter()
        .find(|(t, _)| t.ends_with(suffix))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {suffix} in {msgs:?}"))
}

async fn stored(m: &Mem) -> Option<ferrota_server::store::ShadowRecord> {
    m.store.shadow("d").await.unwrap()
}

#[tokio::test]
async fn update_merges_deletes_with_null_and_versions_each_change() {
    update_merges_deletes_with_null_and_versions_each_change_on(Mem::new()).await;
}

#[tokio::test]
async fn update_merges_deletes_with_null_and_versions_each_change_on_postgres() {
    if let Some(m) = Mem::postgres("shadow_update_merges").await {
        update_merges_deletes_with_null_and_versions_each_change_on(m).await;
    }
}

async fn update_merges_deletes_with_null_and_versions_each_change_on(m: Mem) {
    let mut d = device(&m).await;
    let t0 = m.clock.now();
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"firmware":{"version":"1.0.0","bank":"A"},"temp":20}},
                "clientToken":"c1"}),
    )
    .await;
    let acc = one(&r, "/update/accepted");
    assert_eq!(acc["version"], 1);
    assert_eq!(acc["clientToken"], "c1");
    assert_eq!(
        acc["metadata"]["reported"]["firmware"]["version"]["timestamp"],
        t0
    );
    let docs = one(&r, "/update/documents");
    assert!(
        docs.get("previous").is_none(),
        "a new shadow has no previous: {docs}"
    );
    assert_eq!(docs["current"]["version"], 1);

    m.clock.advance(10);
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"firmware":{"version":"1.1.0"},"temp":null}},"version":1}),
    )
    .await;
    let docs = one(&r, "/update/documents");
    assert_eq!(docs["previous"]["state"]["reported"]["temp"], 20);
    assert_eq!(docs["previous"]["version"], 1);
    assert_eq!(
        docs["current"]["state"]["reported"],
        json!({"firmware":{"version":"1.1.0","bank":"A"}})
    );
    assert_eq!(docs["current"]["version"], 2);

    let g = ask(&mut d, GET, &json!({"clientToken":"g"})).await;
    let got = one(&g, "/get/accepted");
    assert_eq!(got["version"], 2);
    assert_eq!(got["clientToken"], "g");
    assert_eq!(got["state"]["reported"]["firmware"]["version"], "1.1.0");
    // Per-leaf metadata: the rewritten leaf has the new time, the untouched one its old time,
    // the deleted one none.
    let meta = &got["metadata"]["reported"];
    assert_eq!(meta["firmware"]["version"]["timestamp"], t0 + 10);
    assert_eq!(meta["firmware"]["bank"]["timestamp"], t0);
    assert!(meta.get("temp").is_none(), "{meta}");
}

#[tokio::test]
async fn a_stale_version_is_a_409_conflict_and_changes_nothing() {
    let m = Mem::new();
    let mut d = device(&m).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":1}}})).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":2}}})).await;
    let before = stored(&m).await.unwrap();
    assert_eq!(before.version, 2);
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"a":3}},"version":1,"clientToken":"old"}),
    )
    .await;
    let rej = one(&r, "/update/rejected");
    assert_eq!(rej["code"], 409);
    assert_eq!(rej["message"], "Version conflict");
    assert_eq!(rej["clientToken"], "old");
    assert!(rej["timestamp"].is_u64());
    assert_eq!(stored(&m).await.unwrap(), before);
    // The current version is accepted.
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"a":3}},"version":2}),
    )
    .await;
    assert_eq!(one(&r, "/update/accepted")["version"], 3);
}

#[tokio::test]
async fn delete_makes_get_404_and_keeps_the_version_for_the_next_update() {
    let m = Mem::new();
    let mut d = device(&m).await;
    let r = ask(&mut d, GET, &json!({})).await;
    let rej = one(&r, "/get/rejected");
    assert_eq!(rej["code"], 404);
    assert_eq!(rej["message"], "No shadow exists with name: 'd'");
    let r = ask(&mut d, DELETE, &json!({"clientToken":"x"})).await;
    assert_eq!(one(&r, "/delete/rejected")["code"], 404);

    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":1}}})).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":2}}})).await;
    let r = ask(&mut d, DELETE, &json!({"version":1})).await;
    assert_eq!(one(&r, "/delete/rejected")["code"], 409);
    assert!(stored(&m).await.unwrap().exists());
    let r = ask(&mut d, DELETE, &json!({"clientToken":"del"})).await;
    let acc = one(&r, "/delete/accepted");
    assert_eq!(acc["version"], 2);
    assert_eq!(acc["clientToken"], "del");
    let r = ask(&mut d, GET, &json!({})).await;
    assert_eq!(one(&r, "/get/rejected")["code"], 404);
    let r = ask(&mut d, UPDATE, &json!({"state":{"reported":{"b":1}}})).await;
    assert_eq!(one(&r, "/update/accepted")["version"], 3);
    let docs = one(&r, "/update/documents");
    assert!(docs.get("previous").is_none(), "{docs}");
    assert_eq!(docs["current"]["state"], json!({"reported":{"b":1}}));
}

#[tokio::test]
async fn desired_that_differs_from_reported_is_published_as_delta() {
    let m = Mem::new();
    let mut d = device(&m).await;
    ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"fw":{"version":"1.0.0","bank":"A"},"led":"off"}}}),
    )
    .await;
    m.clock.advance(5);
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"desired":{"fw":{"version":"1.2.0","bank":"A"},"led":"off"}},
                "clientToken":"want"}),
    )
    .await;
    let delta = one(&r, "/update/delta");
    assert_eq!(delta["state"], json!({"fw":{"version":"1.2.0"}}));
    assert_eq!(delta["version"], 2);
    assert_eq!(delta["clientToken"], "want");
    assert_eq!(
        delta["metadata"]["fw"]["version"]["timestamp"],
        m.clock.now()
    );
    let g = ask(&mut d, GET, &json!({})).await;
    assert_eq!(
        one(&g, "/get/accepted")["state"]["delta"],
        json!({"fw":{"version":"1.2.0"}})
    );
    // Reported catches up: no delta left; `desired: null` clears the section.
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"fw":{"version":"1.2.0"}}}}),
    )
    .await;
    assert!(r.iter().all(|(t, _)| !t.ends_with("/delta")), "{r:?}");
    let g = ask(&mut d, GET, &json!({})).await;
    assert!(one(&g, "/get/accepted")["state"].get("delta").is_none());
    ask(&mut d, UPDATE, &json!({"state":{"desired":null}})).await;
    let g = ask(&mut d, GET, &json!({})).await;
    let st = &one(&g, "/get/accepted")["state"];
    assert!(st.get("desired").is_none(), "{st}");
}

#[tokio::test]
async fn bad_requests_get_aws_codes_and_leave_the_shadow_unchanged() {
    let m = Mem::new();
    let mut d = device(&m).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":1}}})).await;
    let before = stored(&m).await.unwrap();

    let deep = json!({"state":{"reported":{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":{"l7":1}}}}}}}},
                      "clientToken":"deep"});
    let six = json!({"state":{"reported":{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":1}}}}}}}});
    let big = json!({"state":{"reported":{"blob":"x".repeat(8 * 1024)}}});
    let cases: Vec<(String, u16, &str)> = vec![
        (
            deep.to_string(),
            400,
            "JSON contains too many levels of nesting; maximum is 6",
        ),
        (
            big.to_string(),
            413,
            "The payload exceeds the maximum size allowed",
        ),
        ("{not json".into(), 400, "Invalid JSON"),
        ("[1]".into(), 400, "Invalid JSON"),
        (
            r#"{"clientToken":"t"}"#.into(),
            400,
            "Missing required node: state",
        ),
        (r#"{"state":1}"#.into(), 400, "State node must be an object"),
        (
            r#"{"state":{"desired":1}}"#.into(),
            400,
            "Desired node must be an object",
        ),
        (
            r#"{"state":{"reported":[1]}}"#.into(),
            400,
            "Reported node must be an object",
        ),
        (
            r#"{"state":{"delta":{}}}"#.into(),
            400,
            "State contains an invalid node",
        ),
        (
            r#"{"state":{"reported":{}},"version":-1}"#.into(),
            400,
            "Invalid version",
        ),
        (
            r#"{"state":{"reported":{}},"version":"1"}"#.into(),
            400,
            "Invalid version",
        ),
        (
            format!(
                r#"{{"state":{{"reported":{{}}}},"clientToken":"{}"}}"#,
                "t".repeat(65)
            ),
            400,
            "Invalid clientToken",
        ),
    ];
    for (body, code, message) in cases {
        d.publish(UPDATE, &body).await;
        let (t, v) = d.next_json().await;
        assert_eq!(t, "$aws/things/d/shadow/update/rejected", "{body}");
        assert_eq!(v["code"], code, "{body}: {v}");
        assert_eq!(v["message"], message, "{body}");
        assert!(v["timestamp"].is_u64());
        assert_eq!(
            stored(&m).await.unwrap(),
            before,
            "{body} changed the shadow"
        );
    }
    // The clientToken of a refused request is echoed.
    d.publish(UPDATE, deep.to_string()).await;
    assert_eq!(d.next_json().await.1["clientToken"], "deep");
    // Six levels are allowed.
    let r = ask(&mut d, UPDATE, &six).await;
    assert_eq!(one(&r, "/update/accepted")["version"], 2);
    // The 8 KB limit is on the stored state after the merge: two halves that fit alone do
    // not fit together.
    let half = "y".repeat(4100);
    let r = ask(&mut d, UPDATE, &json!({"state":{"reported":{"h1":half}}})).await;
    one(&r, "/update/accepted");
    let before = stored(&m).await.unwrap();
    let r = ask(&mut d, UPDATE, &json!({"state":{"desired":{"h2":half}}})).await;
    assert_eq!(one(&r, "/update/rejected")["code"], 413);
    assert_eq!(stored(&m).await.unwrap(), before);
}

#[tokio::test]
async fn another_things_shadow_is_refused_by_the_policy_and_the_service() {
    // The device policy: a thing's own shadow topics only.
    let p = Policy::default();
    assert!(p.allows_publish("a", "$aws/things/a/shadow/update"));
    assert!(p.allows_subscribe("a", "$aws/things/a/shadow/update/delta"));
    assert!(p.allows_subscribe("a", "$aws/things/a/shadow/#"));
    for t in [
        "$aws/things/b/shadow/update",
        "$aws/things/b/shadow/get",
        "$aws/things/b/shadow/delete",
    ] {
        assert!(!p.allows_publish("a", t), "{t}");
    }
    assert!(!p.allows_subscribe("a", "$aws/things/b/shadow/update/accepted"));
    assert!(!p.allows_subscribe("a", "$aws/things/+/shadow/update/documents"));

    // Past a wider policy (an operator's extra pattern), the service still refuses: 403 to
    // the requester only, b's shadow untouched, b's subscribers told nothing.
    let m = Mem::new();
    m.thing("a").await;
    m.thing("b").await;
    let mut a = m.device("a");
    let mut b = m.device("b");
    b.subscribe("$aws/things/b/shadow/#");
    b.publish(
        "$aws/things/b/shadow/update",
        json!({"state":{"reported":{"v":1}}}).to_string(),
    )
    .await;
    while tokio::time::timeout(std::time::Duration::from_millis(20), b.next())
        .await
        .is_ok()
    {}
    let before = m.store.shadow("b").await.unwrap().unwrap();
    for (topic, body) in [
        (
            "$aws/things/b/shadow/update",
            r#"{"state":{"reported":{"v":2}},"clientToken":"x"}"#,
        ),
        ("$aws/things/b/shadow/delete", "{}"),
        ("$aws/things/b/shadow/get", "{}"),
    ] {
        let r = on_publish(&m.services, "a", "a", topic, body.as_bytes()).await;
        assert_eq!(r, Outcome::Handled);
        let (t, v) = a.next_json().await;
        assert_eq!(t, format!("{topic}/rejected"));
        assert_eq!(v["code"], 403);
        assert_eq!(v["message"], "Forbidden");
    }
    assert_eq!(m.store.shadow("b").await.unwrap().unwrap(), before);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), b.next())
            .await
            .is_err(),
        "b's subscribers heard of a's attempts"
    );
}

#[tokio::test]
async fn reply_topics_are_reserved_and_named_shadows_are_404() {
    let m = Mem::new();
    let mut d = device(&m).await;
    for t in [
        "$aws/things/d/shadow/update/accepted",
        "$aws/things/d/shadow/update/delta",
        "$aws/things/d/shadow/get/rejected",
    ] {
        assert_eq!(
            on_publish(&m.services, "d", "d", t, b"{}").await,
            Outcome::Reserved,
            "{t}"
        );
    }
    d.subscribe("$aws/things/d/shadow/name/#");
    d.publish(
        "$aws/things/d/shadow/name/cfg/update",
        r#"{"state":{"reported":{}},"clientToken":"n"}"#,
    )
    .await;
    let (t, v) = d.next_json().await;
    assert_eq!(t, "$aws/things/d/shadow/name/cfg/update/rejected");
    assert_eq!(v["code"], 404);
    assert_eq!(v["message"], "No shadow exists with name: 'cfg'");
    assert_eq!(v["clientToken"], "n");
    assert!(stored(&m).await.is_none());
}

#[tokio::test]
async fn a_store_failure_is_a_500_and_not_handled() {
    let mem = std::sync::Arc::new(ferrota_server::store::MemoryStore::new());
    let m = Mem::over(mem.clone());
    let mut d = device(&m).await;
    mem.fail_next("put_shadow");
    let r = on_publish(
        &m.services,
        "d",
        "d",
        UPDATE,
        br#"{"state":{"reported":{"a":1}},"clientToken":"s"}"#,
    )
    .await;
    assert_eq!(r, Outcome::Failed);
    let (t, v) = d.next_json().await;
    assert_eq!(t, "$aws/things/d/shadow/update/rejected");
    assert_eq!(v["code"], 500);
    assert_eq!(v["clientToken"], "s");
    assert!(stored(&m).await.is_none());
}

#[tokio::test]
async fn the_shadow_survives_a_restart_on_sqlite() {
    shadow_survives_a_restart(async |dir| Mem::open(dir).await).await;
}

/// The same on PostgreSQL: a new worker (a pool of its own) finds the shadow and its version.
#[tokio::test]
async fn the_shadow_survives_a_restart_on_postgres() {
    let Some(url) = postgres_url("shadow_survives_a_restart") else {
        return;
    };
    shadow_survives_a_restart(async |dir| Mem::postgres_at(&url, dir).await).await;
}

async fn shadow_survives_a_restart(open: impl AsyncFn(std::sync::Arc<tempfile::TempDir>) -> Mem) {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let m = open(dir.clone()).await;
    let mut d = device(&m).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":1}}})).await;
    ask(&mut d, DELETE, &json!({})).await;
    ask(&mut d, UPDATE, &json!({"state":{"reported":{"a":2}}})).await;
    let before = stored(&m).await.unwrap();
    assert_eq!(before.version, 2);
    drop(d);
    let dir = m.close().await;
    let m = open(dir).await;
    assert_eq!(stored(&m).await.unwrap(), before);
    let mut d = m.device("d");
    d.subscribe("$aws/things/d/shadow/#");
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"a":3}},"version":1}),
    )
    .await;
    assert_eq!(one(&r, "/update/rejected")["code"], 409);
    let r = ask(
        &mut d,
        UPDATE,
        &json!({"state":{"reported":{"a":3}},"version":2}),
    )
    .await;
    assert_eq!(one(&r, "/update/accepted")["version"], 3);
    m.close().await;
}

/// The [`ferrota_server::store::ShadowStore`] contract, the same on every store (memory,
/// SQLite, PostgreSQL): a put happens only over the expected version (`None`: nothing stored
/// yet).
#[tokio::test]
async fn every_store_compares_the_version_before_it_writes() {
    use ferrota_server::store::{MemoryStore, ShadowStore, SqliteStore};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<Arc<dyn ShadowStore>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap()),
    ];
    if let Some(pg) = postgres_store("shadow_contract").await {
        stores.push(Arc::new(pg));
    }
    for s in stores {
        shadow_contract(&*s).await;
    }
}

fn shadow_rec(thing: &str, v: u64, state: Option<&str>) -> ferrota_server::store::ShadowRecord {
    ferrota_server::store::ShadowRecord {
        thing: thing.into(),
        state: state.map(str::to_string),
        metadata: "{}".into(),
        version: v,
        updated_at: 100 + v,
    }
}

async fn shadow_contract(s: &dyn ferrota_server::store::ShadowStore) {
    let rec = |v: u64, state: Option<&str>| shadow_rec("t", v, state);
    assert_eq!(s.shadow("t").await.unwrap(), None);
    assert!(!s.put_shadow(&rec(1, Some("{}")), Some(0)).await.unwrap());
    assert!(s.put_shadow(&rec(1, Some("{}")), None).await.unwrap());
    assert!(
        !s.put_shadow(&rec(1, Some("{\"x\":1}")), None)
            .await
            .unwrap()
    );
    assert!(
        !s.put_shadow(&rec(2, Some("{\"x\":2}")), Some(0))
            .await
            .unwrap()
    );
    assert_eq!(s.shadow("t").await.unwrap(), Some(rec(1, Some("{}"))));
    assert!(s.put_shadow(&rec(1, None), Some(1)).await.unwrap());
    let tomb = s.shadow("t").await.unwrap().unwrap();
    assert!(!tomb.exists());
    assert_eq!(tomb.version, 1);
    assert_eq!(s.shadow("u").await.unwrap(), None);
}

/// Two workers (two pools on one PostgreSQL database) write the same shadow over the same
/// version at once, many times: each time exactly one wins, and the stored record is the
/// winner's (AWS's optimistic lock holds across processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_workers_never_both_win_a_version() {
    use ferrota_server::store::ShadowStore;
    let Some(url) = postgres_url("shadow_two_workers") else {
        return;
    };
    let a = connect_postgres(&url).await;
    let b = connect_postgres(&url).await;
    let mut expected = None;
    for v in 1..=100u64 {
        let ra = shadow_rec("t", v, Some("{\"w\":\"a\"}"));
        let rb = shadow_rec("t", v, Some("{\"w\":\"b\"}"));
        let (wa, wb) = tokio::join!(a.put_shadow(&ra, expected), b.put_shadow(&rb, expected));
        let (wa, wb) = (wa.unwrap(), wb.unwrap());
        assert!(wa ^ wb, "round {v}: exactly one wins (a {wa}, b {wb})");
        let stored = a.shadow("t").await.unwrap().unwrap();
        assert_eq!(stored, if wa { ra } else { rb }, "round {v}");
        expected = Some(v);
    }
}

/// Over real mutual TLS, the broker and the policy: a thing updates its own shadow and hears
/// `update/accepted` on its subscription; publishing to another thing's shadow disconnects it
/// and leaves that shadow as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_thing_updates_its_own_shadow_and_not_another_things() {
    use rumqttc::QoS;
    let s = TestServer::start().await;
    let a = s.thing("thing-a", &[]).await;
    let b = s.thing("thing-b", &[]).await;
    let mut cb = connect(&s, &b).await;
    subscribe(
        &mut cb,
        "$aws/things/thing-b/shadow/update/accepted",
        QoS::AtLeastOnce,
    )
    .await;
    cb.c.publish(
        "$aws/things/thing-b/shadow/update",
        QoS::AtLeastOnce,
        false,
        r#"{"state":{"reported":{"v":1}},"clientToken":"b1"}"#,
    )
    .await
    .unwrap();
    let p = publish(&mut cb).await;
    assert_eq!(p.topic, "$aws/things/thing-b/shadow/update/accepted");
    let v: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["clientToken"], "b1");
    let store = &s.admin.services.store;
    let before = store.shadow("thing-b").await.unwrap().unwrap();

    let mut ca = connect(&s, &a).await;
    ca.c.publish(
        "$aws/things/thing-b/shadow/update",
        QoS::AtLeastOnce,
        false,
        r#"{"state":{"reported":{"v":666}}}"#,
    )
    .await
    .unwrap();
    refused(&mut ca).await;
    let mut ca = connect(&s, &a).await;
    ca.c.subscribe("$aws/things/thing-b/shadow/update/delta", QoS::AtLeastOnce)
        .await
        .unwrap();
    refused(&mut ca).await;
    assert_eq!(store.shadow("thing-b").await.unwrap().unwrap(), before);
    s.stop().await;
}
