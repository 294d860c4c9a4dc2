//! Issue 16, items 3 and 4 (server part): thing attributes (AWS `attributePayload` on
//! CreateThing and UpdateThing), dynamic thing groups (AWS `CreateDynamicThingGroup`) and
//! `SearchIndex`, through the HTTP API in memory (the router called directly, no socket), over
//! the in-memory store and SQLite.

use crate::common;

use common::*;
use serde_json::{Value, json};

async fn attrs(s: &Mem, thing: &str, a: Value) {
    let (st, v) = s
        .api(
            "PATCH",
            &format!("/api/things/{thing}"),
            Some(&json!({"attributePayload": {"attributes": a}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// A fleet of four: two KIT_T2G (one connected), one other model, one without attributes.
async fn fleet(s: &Mem) {
    for t in ["dev-1", "dev-2", "dev-3", "dev-4"] {
        s.thing(t).await;
    }
    attrs(s, "dev-1", json!({"model": "KIT_T2G", "batch": "12"})).await;
    attrs(s, "dev-2", json!({"model": "KIT_T2G", "batch": "9"})).await;
    attrs(s, "dev-3", json!({"model": "XMC7200", "batch": "30"})).await;
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| t["thingName"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn search(s: &Mem, q: &str) -> (u16, Value) {
    s.api(
        "POST",
        "/api/indices/search",
        Some(&json!({"queryString": q})),
    )
    .await
}

async fn attributes_update_and_merge(s: &Mem) {
    s.thing("dev-a").await;
    attrs(s, "dev-a", json!({"model": "KIT_T2G", "site": "bonn"})).await;
    let (_, v) = s.api("GET", "/api/things/dev-a", None).await;
    assert_eq!(v["attributes"], json!({"model": "KIT_T2G", "site": "bonn"}));
    // merge: one changed, one removed (empty value), one kept.
    let (st, v) = s
        .api(
            "PATCH",
            "/api/things/dev-a",
            Some(&json!({"attributePayload": {
                "attributes": {"site": "", "rack": "r7"}, "merge": true}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["attributes"], json!({"model": "KIT_T2G", "rack": "r7"}));
    // no merge: replaced whole.
    attrs(s, "dev-a", json!({"owner": "lab"})).await;
    let (_, v) = s.api("GET", "/api/things", None).await;
    assert_eq!(v[0]["attributes"], json!({"owner": "lab"}), "{v}");
}

#[tokio::test]
async fn attributes_replace_and_merge_memory() {
    attributes_update_and_merge(&Mem::new()).await;
}

#[tokio::test]
async fn attributes_replace_and_merge_sqlite() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let s = Mem::open(dir.clone()).await;
    attributes_update_and_merge(&s).await;
    // They survive a restart.
    let dir = s.close().await;
    let s = Mem::open(dir).await;
    let (_, v) = s.api("GET", "/api/things/dev-a", None).await;
    assert_eq!(v["attributes"], json!({"owner": "lab"}));
}

#[tokio::test]
async fn attributes_replace_and_merge_postgres() {
    let Some(url) = postgres_url("attributes_replace_and_merge") else {
        return;
    };
    let s = Mem::postgres_at(&url, std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    attributes_update_and_merge(&s).await;
    // Another worker (a pool of its own) sees them.
    let dir = s.close().await;
    let s = Mem::postgres_at(&url, dir).await;
    let (_, v) = s.api("GET", "/api/things/dev-a", None).await;
    assert_eq!(v["attributes"], json!({"owner": "lab"}));
}

/// Every attribute over AWS's limits is an `InvalidRequestException` naming it, and the
/// stored attributes stay as they were.
#[tokio::test]
async fn attributes_over_aws_limits_are_refused_and_nothing_stored() {
    let s = Mem::new();
    s.thing("dev-l").await;
    attrs(&s, "dev-l", json!({"model": "KIT_T2G"})).await;
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("a{i}"), json!("x"))).collect();
    let bad = [
        (json!({"bad name": "x"}), "attribute name"),
        (json!({"model": "has space"}), "value"),
        (json!({"n".repeat(129): "x"}), "attribute name"),
        (json!({"model": "v".repeat(801)}), "at most 800"),
        (Value::Object(many), "at most 50"),
    ];
    for (a, needle) in bad {
        for merge in [false, true] {
            let (st, v) = s
                .api(
                    "PATCH",
                    "/api/things/dev-l",
                    Some(&json!({"attributePayload": {"attributes": a, "merge": merge}})),
                )
                .await;
            assert_eq!(st, 400, "{v}");
            assert_eq!(v["code"], "InvalidRequestException", "{v}");
            assert!(
                v["message"].as_str().unwrap().contains(needle),
                "{needle}: {v}"
            );
        }
    }
    let (_, v) = s.api("GET", "/api/things/dev-l", None).await;
    assert_eq!(
        v["attributes"],
        json!({"model": "KIT_T2G"}),
        "changed by a refused update"
    );
    // Merging one more into 50 is over the limit too.
    let fifty: serde_json::Map<String, Value> =
        (0..49).map(|i| (format!("a{i}"), json!("x"))).collect();
    let (st, _) = s
        .api(
            "PATCH",
            "/api/things/dev-l",
            Some(&json!({"attributePayload": {"attributes": fifty, "merge": true}})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .api(
            "PATCH",
            "/api/things/dev-l",
            Some(&json!({"attributePayload": {"attributes": {"one": "more"}, "merge": true}})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (_, v) = s.api("GET", "/api/things/dev-l", None).await;
    assert_eq!(v["attributes"].as_object().unwrap().len(), 50);
    // A create with bad attributes stores no thing.
    let (st, v) = s
        .api(
            "POST",
            "/api/things",
            Some(&json!({"thingName": "dev-new",
                "attributePayload": {"attributes": {"a b": "x"}}})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(s.api("GET", "/api/things/dev-new", None).await.0, 404);
    // Unknown thing.
    let (st, v) = s
        .api(
            "PATCH",
            "/api/things/nobody",
            Some(&json!({"attributePayload": {"attributes": {"a": "b"}}})),
        )
        .await;
    assert_eq!(st, 404, "{v}");
}

#[tokio::test]
async fn search_index_over_attributes_and_connectivity() {
    search_index_over_attributes_and_connectivity_on(Mem::new()).await;
}

#[tokio::test]
async fn search_index_over_attributes_and_connectivity_on_postgres() {
    if let Some(s) = Mem::postgres("search_index_over_attributes_and_connectivity").await {
        search_index_over_attributes_and_connectivity_on(s).await;
    }
}

async fn search_index_over_attributes_and_connectivity_on(s: Mem) {
    fleet(&s).await;
    let _d = s.device("dev-1");
    let (st, v) = search(&s, "attributes.model:KIT_T2G").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(names(&v, "things"), ["dev-1", "dev-2"]);
    assert_eq!(v["things"][0]["attributes"]["batch"], "12");
    assert_eq!(v["things"][0]["connectivity"]["connected"], true);
    assert_eq!(v["things"][1]["connectivity"]["connected"], false);
    let (_, v) = search(
        &s,
        "attributes.model:KIT_T2G AND connectivity.connected:true",
    )
    .await;
    assert_eq!(names(&v, "things"), ["dev-1"]);
    let (_, v) = search(&s, "attributes.batch > 10").await;
    assert_eq!(
        names(&v, "things"),
        ["dev-1", "dev-3"],
        "numeric, not text order"
    );
    let (_, v) = search(&s, "NOT attributes.model:*").await;
    assert_eq!(names(&v, "things"), ["dev-4"]);
    let (_, v) = search(&s, "dev-*").await;
    assert_eq!(names(&v, "things").len(), 4);
    // Paging.
    let (_, v) = s
        .api(
            "POST",
            "/api/indices/search",
            Some(&json!({"queryString": "*", "maxResults": 3})),
        )
        .await;
    assert_eq!(names(&v, "things"), ["dev-1", "dev-2", "dev-3"]);
    let token = v["nextToken"].as_str().unwrap().to_string();
    let (_, v) = s
        .api(
            "POST",
            "/api/indices/search",
            Some(&json!({"queryString": "*", "maxResults": 3, "nextToken": token})),
        )
        .await;
    assert_eq!(names(&v, "things"), ["dev-4"]);
    assert!(v.get("nextToken").is_none(), "{v}");
    let (st, v) = s
        .api(
            "POST",
            "/api/indices/search",
            Some(&json!({"queryString": "*", "maxResults": 501})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("InvalidRequestException"))
    );
}

#[tokio::test]
async fn a_bad_query_is_invalid_query_exception_with_its_position_and_nothing_stored() {
    let s = Mem::new();
    fleet(&s).await;
    for q in [
        "attributes.model:",
        "firmware.versoin < 1.2.0",
        "(attributes.model:KIT_T2G",
        "",
    ] {
        let (st, v) = search(&s, q).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["code"], "InvalidQueryException", "{q}: {v}");
        let (st, v) = s
            .api(
                "POST",
                "/api/thing-groups",
                Some(&json!({"thingGroupName": "bad", "queryString": q})),
            )
            .await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["code"], "InvalidQueryException", "{q}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("at character"),
            "{v}"
        );
    }
    let (_, v) = search(&s, "(attributes.model:KIT_T2G").await;
    assert!(
        v["message"].as_str().unwrap().contains("at character 26"),
        "{v}"
    );
    assert_eq!(s.api("GET", "/api/thing-groups/bad", None).await.0, 404);
    let (_, v) = s.api("GET", "/api/thing-groups", None).await;
    assert_eq!(v, json!([]));
    assert!(s.store.list_dynamic_groups().await.unwrap().is_empty());
}

#[tokio::test]
async fn dynamic_group_members_follow_the_things() {
    dynamic_group_members_follow_the_things_on(Mem::new()).await;
}

#[tokio::test]
async fn dynamic_group_members_follow_the_things_on_postgres() {
    if let Some(s) = Mem::postgres("dynamic_group_members_follow_the_things").await {
        dynamic_group_members_follow_the_things_on(s).await;
    }
}

async fn dynamic_group_members_follow_the_things_on(s: Mem) {
    fleet(&s).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "kits",
                "queryString": "attributes.model:KIT_T2G AND attributes.batch >= 10"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(names(&v, "members"), ["dev-1"]);
    // dev-2 starts matching: a member at once.
    attrs(&s, "dev-2", json!({"model": "KIT_T2G", "batch": "10"})).await;
    let (_, v) = s.api("GET", "/api/thing-groups/kits", None).await;
    assert_eq!(names(&v, "members"), ["dev-1", "dev-2"]);
    assert_eq!(
        v["queryString"],
        "attributes.model:KIT_T2G AND attributes.batch >= 10"
    );
    let connected = |_: &str| false;
    assert!(
        ferrota_server::groups::is_member(&s.services, &connected, "kits", "dev-2")
            .await
            .unwrap()
    );
    assert!(
        !ferrota_server::groups::is_member(&s.services, &connected, "kits", "dev-3")
            .await
            .unwrap()
    );
    // Listed with the static groups.
    s.thing_in("dev-5", &["lab"]).await;
    let (_, v) = s.api("GET", "/api/thing-groups", None).await;
    let listed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["thingGroupName"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["kits", "lab"]);
    assert!(
        ferrota_server::groups::is_member(&s.services, &connected, "lab", "dev-5")
            .await
            .unwrap()
    );
    // Name collisions: a second dynamic group, a static group in use, a thing put into it.
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "kits", "queryString": "*"})),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("ResourceAlreadyExistsException"))
    );
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "lab", "queryString": "*"})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = s
        .api(
            "POST",
            "/api/things",
            Some(&json!({"thingName": "dev-9", "groups": ["kits"]})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("dynamic"), "{v}");
    // Static groups need no create; one without a query is refused clearly.
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "x"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("queryString is required")
    );
    // Delete: the dynamic group goes, its things stay; a static group cannot be deleted.
    let (st, v) = s.api("DELETE", "/api/thing-groups/lab", None).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.api("DELETE", "/api/thing-groups/kits", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.api("GET", "/api/thing-groups/kits", None).await.0, 404);
    assert_eq!(s.api("DELETE", "/api/thing-groups/kits", None).await.0, 404);
    assert_eq!(s.api("GET", "/api/things/dev-1", None).await.0, 200);
}

#[tokio::test]
async fn dynamic_groups_are_stored_in_sqlite() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let s = Mem::open(dir).await;
    fleet(&s).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "xmc", "queryString": "attributes.model:XMC*"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let dir = s.close().await;
    let s = Mem::open(dir).await;
    let (_, v) = s.api("GET", "/api/thing-groups/xmc", None).await;
    assert_eq!(names(&v, "members"), ["dev-3"]);
    assert_eq!(s.api("DELETE", "/api/thing-groups/xmc", None).await.0, 200);
    assert_eq!(s.api("GET", "/api/thing-groups/xmc", None).await.0, 404);
}

#[tokio::test]
async fn dynamic_groups_are_stored_in_postgres() {
    let Some(url) = postgres_url("dynamic_groups_are_stored") else {
        return;
    };
    let s = Mem::postgres_at(&url, std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    fleet(&s).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "xmc", "queryString": "attributes.model:XMC*"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let dir = s.close().await;
    let s = Mem::postgres_at(&url, dir).await;
    let (_, v) = s.api("GET", "/api/thing-groups/xmc", None).await;
    assert_eq!(names(&v, "members"), ["dev-3"]);
    assert_eq!(s.api("DELETE", "/api/thing-groups/xmc", None).await.0, 200);
    assert_eq!(s.api("GET", "/api/thing-groups/xmc", None).await.0, 404);
}

/// `ota create` to `thinggroup/<dynamic>` targets the group's members at that moment.
#[tokio::test]
async fn an_ota_update_to_a_dynamic_group_targets_its_members() {
    an_ota_update_to_a_dynamic_group_targets_its_members_on(Mem::new()).await;
}

#[tokio::test]
async fn an_ota_update_to_a_dynamic_group_targets_its_members_on_postgres() {
    if let Some(s) = Mem::postgres("an_ota_update_to_a_dynamic_group_targets_its_members").await {
        an_ota_update_to_a_dynamic_group_targets_its_members_on(s).await;
    }
}

async fn an_ota_update_to_a_dynamic_group_targets_its_members_on(s: Mem) {
    fleet(&s).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "kits", "queryString": "attributes.model:KIT_T2G"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let d = s.data_ota("u1", "thinggroup/kits", b"firmware").await;
    let mut targets: Vec<String> = d.executions.iter().map(|e| e.thing_name.clone()).collect();
    targets.sort();
    assert_eq!(targets, ["dev-1", "dev-2"]);
    for t in ["dev-3", "dev-4"] {
        assert!(
            s.store.executions_of_thing(t).await.unwrap().is_empty(),
            "{t}"
        );
    }
    // lastJob is in the index: the members' new job is QUEUED.
    let (_, v) = search(&s, "lastJob.status:QUEUED").await;
    assert_eq!(names(&v, "things"), ["dev-1", "dev-2"]);
    // An empty dynamic group: no targets, nothing created.
    let (st, _) = s
        .api(
            "POST",
            "/api/thing-groups",
            Some(&json!({"thingGroupName": "none", "queryString": "attributes.model:NOPE"})),
        )
        .await;
    assert_eq!(st, 200);
    let sha = s.admin.put_file(b"firmware2").await.unwrap();
    let r = s
        .admin
        .create_ota(&Mem::data_request("u2", "thinggroup/none", &sha))
        .await;
    assert!(r.is_err());
    assert!(s.admin.list_ota().await.unwrap().len() == 1);
}

/// `CreateThing` with `attributePayload` (a server with a CA): stored with the thing; `merge`
/// on a create is refused and stores no thing.
#[tokio::test]
async fn create_thing_with_attributes() {
    use tower::ServiceExt as _;
    ferrota_server::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ferrota_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let server = ferrota_server::server::Server::open(&cfg, 8883)
        .await
        .unwrap();
    let call = |body: Value, method: &'static str, path: String| {
        let router = ferrota_server::api::router(server.admin.clone(), server.token().into());
        let token = server.token().to_string();
        async move {
            let r = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            let resp = router.oneshot(r).await.unwrap();
            let st = resp.status().as_u16();
            let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                st,
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let (st, v) = call(
        json!({"thingName": "dev-c", "attributePayload": {"attributes": {"model": "KIT_T2G", "empty": ""}}}),
        "POST",
        "/api/things".into(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = call(Value::Null, "GET", "/api/things/dev-c".into()).await;
    assert_eq!(v["attributes"], json!({"model": "KIT_T2G"}));
    let (st, v) = call(
        json!({"thingName": "dev-m", "attributePayload": {"attributes": {"a": "b"}, "merge": true}}),
        "POST",
        "/api/things".into(),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("merge"), "{v}");
    assert_eq!(
        call(Value::Null, "GET", "/api/things/dev-m".into()).await.0,
        404
    );
}

// ---- The ThingIndexStore contract on every store, and two workers on PostgreSQL (issue 17) ----

mod store_level {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ferrota_server::store::{
        CertRecord, CertStatus, DynamicGroup, MemoryStore, SqliteStore, StoreError, Thing,
        ThingIndexStore,
    };

    use super::common::{connect_postgres, postgres_store, postgres_url};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn thing(name: &str) -> Thing {
        Thing {
            name: name.into(),
            groups: vec!["fleet".into()],
            created_at: 5,
        }
    }

    fn cert(id: &str, thing: &str) -> CertRecord {
        CertRecord {
            id: id.into(),
            thing: thing.into(),
            serial: "01".into(),
            pem: "PEM".into(),
            status: CertStatus::Active,
            created_at: 5,
            revoked_at: None,
        }
    }

    fn group(name: &str, q: &str) -> DynamicGroup {
        DynamicGroup {
            name: name.into(),
            query_string: q.into(),
            created_at: 9,
        }
    }

    async fn contract(s: &dyn ThingIndexStore) {
        let kit = map(&[("model", "KIT_T2G"), ("site", "bonn")]);
        s.create_thing_with_attributes(&thing("a"), &cert("c1", "a"), &kit)
            .await
            .unwrap();
        s.create_thing_with_attributes(&thing("b"), &cert("c2", "b"), &BTreeMap::new())
            .await
            .unwrap();
        // A second thing of that name: refused, the first's attributes untouched.
        let e = s
            .create_thing_with_attributes(&thing("a"), &cert("c3", "a"), &map(&[("x", "1")]))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Exists(_)), "{e}");
        assert_eq!(s.attributes("a").await.unwrap(), kit);
        assert!(s.attributes("b").await.unwrap().is_empty());
        assert!(s.attributes("nobody").await.unwrap().is_empty());
        assert_eq!(
            s.all_attributes().await.unwrap(),
            BTreeMap::from([("a".to_string(), kit.clone())])
        );

        // Replaced whole; an empty map removes every one; no such thing is NotFound.
        let other = map(&[("owner", "lab")]);
        s.set_attributes("a", &other).await.unwrap();
        assert_eq!(s.attributes("a").await.unwrap(), other);
        s.set_attributes("b", &kit).await.unwrap();
        s.set_attributes("a", &BTreeMap::new()).await.unwrap();
        assert!(s.attributes("a").await.unwrap().is_empty());
        assert_eq!(
            s.all_attributes().await.unwrap(),
            BTreeMap::from([("b".to_string(), kit.clone())])
        );
        let e = s.set_attributes("nobody", &kit).await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{e}");
        assert!(s.attributes("nobody").await.unwrap().is_empty());

        // Dynamic groups: by name (byte order), a name once, deleted once.
        s.create_dynamic_group(&group("kits", "attributes.model:KIT*"))
            .await
            .unwrap();
        s.create_dynamic_group(&group("Lab", "attributes.owner:lab"))
            .await
            .unwrap();
        let e = s
            .create_dynamic_group(&group("kits", "thingName:x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Exists(_)), "{e}");
        assert_eq!(
            s.dynamic_group("kits").await.unwrap(),
            Some(group("kits", "attributes.model:KIT*"))
        );
        assert_eq!(s.dynamic_group("none").await.unwrap(), None);
        let names: Vec<String> = s
            .list_dynamic_groups()
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["Lab", "kits"]);
        s.delete_dynamic_group("kits").await.unwrap();
        let e = s.delete_dynamic_group("kits").await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{e}");
        assert_eq!(s.list_dynamic_groups().await.unwrap().len(), 1);
    }

    /// [`ThingIndexStore`] means the same on every store: memory, SQLite and PostgreSQL.
    #[tokio::test]
    async fn every_store_keeps_the_thing_index_contract() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores: Vec<Arc<dyn ThingIndexStore>> = vec![
            Arc::new(MemoryStore::new()),
            Arc::new(SqliteStore::open(&dir.path().join("i.db")).await.unwrap()),
        ];
        if let Some(pg) = postgres_store("thing_index_contract").await {
            stores.push(Arc::new(pg));
        }
        for s in stores {
            contract(&*s).await;
        }
    }

    /// Two workers (two pools on one PostgreSQL database) replace one thing's attributes at
    /// once, many times: neither fails, and the thing ends with one writer's map whole, never
    /// a mix of both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_two_workers_replacing_attributes_leave_one_map() {
        let Some(url) = postgres_url("attributes_two_workers") else {
            return;
        };
        let a = connect_postgres(&url).await;
        let b = connect_postgres(&url).await;
        a.create_thing_with_attributes(&thing("t"), &cert("c", "t"), &BTreeMap::new())
            .await
            .unwrap();
        for round in 0..40 {
            let ma = map(&[("model", "A"), ("shared", "a"), ("only-a", "1")]);
            let mb = map(&[("model", "B"), ("shared", "b"), ("only-b", "2")]);
            let (ra, rb) = tokio::join!(a.set_attributes("t", &ma), b.set_attributes("t", &mb));
            ra.unwrap();
            rb.unwrap();
            let got = a.attributes("t").await.unwrap();
            assert!(got == ma || got == mb, "round {round}: {got:?}");
        }
    }
}
