//! Issue 18, item 5: the OpenAPI document at `GET /api/openapi.json`, generated from the
//! handlers and the `ferrota_api` types, describes every route the router has and the answers
//! as they go on the wire.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::Mem;

/// One request to the router in memory: status, content type and body.
async fn call(
    m: &Mem,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String, Vec<u8>) {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let r = r
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let router = ferrota_server::api::router(m.admin.clone(), "test-token".into());
    let resp = router.oneshot(r).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, ct, bytes.to_vec())
}

/// The document as served, without a token.
async fn document(m: &Mem) -> Value {
    let (status, ct, body) = call(m, None, "GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(ct.starts_with("application/json"), "{ct}");
    serde_json::from_slice(&body).expect("the document is JSON")
}

/// The paths the router routes, read from its `Debug` form (axum lists its route table there;
/// it has no other way to enumerate routes). The fallback's paths are left out.
fn router_paths(m: &Mem) -> BTreeSet<String> {
    let router = ferrota_server::api::router(m.admin.clone(), "test-token".into());
    let text = format!("{router:?}");
    let mut out = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"/") {
        let tail = &rest[i + 1..];
        let end = tail.find('"').unwrap();
        let p = &tail[..end];
        // The fallback's own routes: "/" and an internal catch-all.
        if !p.contains("__private__") && p != "/" {
            out.insert(p.to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// A concrete path for a templated one (`{name}` → a name that does not exist).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "zz-none" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn the_document_lists_every_route_of_the_router_with_its_method() {
    let m = Mem::new();
    let doc = document(&m).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let routed = router_paths(&m);
    assert!(
        routed.len() >= 20,
        "the route table was not read: {routed:?}"
    );
    // Every routed path and method (an answer other than 405) is documented...
    let mut seen = BTreeSet::new();
    for p in &routed {
        for method in METHODS {
            let (status, _, body) = call(&m, Some("test-token"), method, &concrete(p), None).await;
            if status == 405 {
                continue;
            }
            seen.insert((p.clone(), method));
            assert!(
                paths
                    .get(p)
                    .and_then(|i| i.get(method.to_lowercase()))
                    .is_some(),
                "{method} {p} is routed (answered {status} {}) but not in the document",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // ...and every documented operation is routed.
    for (p, item) in paths {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                assert!(
                    seen.contains(&(p.clone(), method)),
                    "{method} {p} is documented but not routed"
                );
            }
        }
    }
    assert!(seen.len() >= 28, "{seen:?}");
}

#[tokio::test]
async fn every_protected_operation_names_the_bearer_scheme_and_aws_errors() {
    let m = Mem::new();
    let doc = document(&m).await;
    let scheme = &doc["components"]["securitySchemes"]["bearerToken"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let err = &doc["components"]["schemas"]["ApiError"];
    assert_eq!(err["required"], json!(["code", "message"]), "{err}");
    for (p, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = p == "/api/health" || p == "/api/openapi.json";
            let security = op["security"].as_array().unwrap();
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {p}");
            if public {
                assert_eq!(security, &vec![json!({})], "{method} {p} needs no token");
                continue;
            }
            assert_eq!(security, &vec![json!({"bearerToken": []})], "{method} {p}");
            for code in ["401", "500"] {
                let r = &responses[code]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(r, "#/components/schemas/ApiError", "{method} {p} {code}");
            }
            let role = ferrota_server::operators::required_role(&method.to_uppercase(), p);
            assert_eq!(
                responses.contains_key("403"),
                role > ferrota_api::access::Role::Viewer,
                "{method} {p}: 403 exactly when its role ({role}) is above viewer"
            );
            assert!(
                op["description"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("`{role}`")),
                "{method} {p} names its role"
            );
        }
    }
    // Request bodies are the real types.
    let create = &doc["paths"]["/api/ota-updates"]["post"]["requestBody"]["content"];
    assert_eq!(
        create["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateOtaUpdate"
    );
    let upload = &doc["paths"]["/api/files"]["post"]["requestBody"]["content"];
    assert!(upload.get("application/octet-stream").is_some(), "{upload}");
    // Query parameters too, with the wire's names.
    let params: Vec<&str> = doc["paths"]["/api/ota-updates/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "maxResults", "nextToken"]);
}

/// Where `value` does not conform to `schema` (a subset of JSON Schema: `$ref`, `type`,
/// `properties`, `required`, `items`, `oneOf`, `allOf`, `enum`), as paths; an object's keys not
/// among its properties count, so a field missing from the document is found.
fn mismatches(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let s = &doc["components"]["schemas"][name];
        assert!(!s.is_null(), "{r} is not in the document");
        return mismatches(doc, s, value, at, out);
    }
    if let Some(all) = schema["allOf"].as_array() {
        // The keys of every part together; each part checked on its own keys.
        let mut props = serde_json::Map::new();
        for part in all {
            let part = resolve(doc, part);
            if let Some(p) = part["properties"].as_object() {
                props.extend(p.clone());
            }
            for k in part["required"].as_array().into_iter().flatten() {
                if value.get(k.as_str().unwrap()).is_none() {
                    out.push(format!("{at}.{}: required, missing", k.as_str().unwrap()));
                }
            }
        }
        let merged = json!({"type": "object", "properties": props});
        return mismatches(doc, &merged, value, at, out);
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let fits = one.iter().any(|s| {
            let mut o = Vec::new();
            mismatches(doc, s, value, at, &mut o);
            o.is_empty()
        });
        if !fits {
            out.push(format!("{at}: none of oneOf fits {value}"));
        }
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(value)
    {
        out.push(format!("{at}: {value} not in {e:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return, // any value
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: a {kind}, the document says {types:?}"));
        return;
    }
    match value {
        Value::Object(o) => {
            let props = schema["properties"].as_object();
            for k in schema["required"].as_array().into_iter().flatten() {
                if !o.contains_key(k.as_str().unwrap()) {
                    out.push(format!("{at}.{}: required, missing", k.as_str().unwrap()));
                }
            }
            for (k, v) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => mismatches(doc, s, v, &format!("{at}.{k}"), out),
                    None => match &schema["additionalProperties"] {
                        Value::Object(_) => mismatches(
                            doc,
                            &schema["additionalProperties"],
                            v,
                            &format!("{at}.{k}"),
                            out,
                        ),
                        Value::Bool(true) => {}
                        _ if props.is_none() => {}
                        _ => out.push(format!("{at}.{k}: not in the document")),
                    },
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                mismatches(doc, &schema["items"], v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => s,
    }
}

/// The 200 answer schema of `method path` in the document.
fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let s =
        &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(!s.is_null(), "{method} {path} has no JSON 200 answer");
    s
}

/// Calls `method concrete` and checks its JSON answer against the document's schema for
/// `method path`.
async fn conforms(
    m: &Mem,
    doc: &Value,
    method: &str,
    path: &str,
    concrete: &str,
    body: Option<&Value>,
) -> Value {
    let (status, _, bytes) = call(m, Some("test-token"), method, concrete, body).await;
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, 200, "{method} {concrete}: {answer}");
    let schema = &doc["paths"][path][method.to_lowercase()]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let _ = answer_schema(doc, &method.to_lowercase(), path);
    let mut out = Vec::new();
    mismatches(doc, schema, &answer, "$", &mut out);
    assert!(out.is_empty(), "{method} {concrete}: {out:#?}\n{answer:#}");
    answer
}

#[tokio::test]
async fn real_answers_conform_to_their_schemas() {
    let m = Mem::new();
    let doc = document(&m).await;
    m.thing_in("dev-1", &["lab"]).await;
    m.data_ota("rel-1", "thing/dev-1", b"firmware").await;
    m.data_ota("rel-2", "thing/dev-1", b"firmware").await;
    let ota = conforms(
        &m,
        &doc,
        "GET",
        "/api/ota-updates/{id}",
        "/api/ota-updates/rel-1",
        None,
    )
    .await;
    // The fields a client reads are there, with the wire's names.
    for k in [
        "otaUpdateId",
        "jobId",
        "jobProcessDetails",
        "executions",
        "createdAt",
    ] {
        assert!(ota.get(k).is_some(), "{k}: {ota}");
        assert!(
            doc["components"]["schemas"]["OtaDescription"]["properties"]
                .get(k)
                .is_some(),
            "{k} in the schema"
        );
    }
    let job = format!("/api/jobs/{}", ota["jobId"].as_str().unwrap());
    let search = json!({"queryString": "thingName:dev-*"});
    let token = json!({"name": "alice", "role": "viewer"});
    let calls: [(&str, &str, &str, Option<&Value>); 14] = [
        ("GET", "/api/ota-updates", "/api/ota-updates", None),
        ("GET", "/api/things", "/api/things", None),
        ("GET", "/api/things/{name}", "/api/things/dev-1", None),
        ("GET", "/api/jobs/{id}", &job, None),
        ("GET", "/api/rollouts/{id}", "/api/rollouts/rel-1", None),
        ("GET", "/api/thing-groups", "/api/thing-groups", None),
        ("GET", "/api/limits", "/api/limits", None),
        ("GET", "/api/health", "/api/health", None),
        (
            "POST",
            "/api/indices/search",
            "/api/indices/search",
            Some(&search),
        ),
        ("POST", "/api/tokens", "/api/tokens", Some(&token)),
        ("GET", "/api/tokens", "/api/tokens", None),
        ("GET", "/api/audit", "/api/audit", None),
        (
            "POST",
            "/api/rollouts/{id}/{action}",
            "/api/rollouts/rel-1/cancel",
            None,
        ),
        (
            "POST",
            "/api/ota-updates/{id}/cancel",
            "/api/ota-updates/rel-2/cancel",
            None,
        ),
    ];
    for (method, path, concrete, body) in calls {
        conforms(&m, &doc, method, path, concrete, body).await;
    }
    // An error answer is the documented ApiError.
    let (status, _, bytes) = call(&m, Some("test-token"), "GET", "/api/things/nope", None).await;
    assert_eq!(status, 404);
    let e: Value = serde_json::from_slice(&bytes).unwrap();
    let s = &doc["paths"]["/api/things/{name}"]["get"]["responses"]["404"]["content"]["application/json"]
        ["schema"];
    let mut out = Vec::new();
    mismatches(&doc, s, &e, "$", &mut out);
    assert!(out.is_empty(), "{out:?}");
    let names: BTreeMap<String, Value> = serde_json::from_value(e).unwrap();
    assert_eq!(names.keys().collect::<Vec<_>>(), ["code", "message"]);
}

/// Found by Schemathesis (scripts/schemathesis.sh, two workers): concurrent `PATCH
/// /api/things/{name}` on the SQLite store answered 500 "database is locked". A deferred
/// transaction that reads, then writes, cannot wait for another writer in WAL mode: its read
/// snapshot is stale once that writer commits, and SQLite answers SQLITE_BUSY at once, whatever
/// the busy timeout. Every write transaction now begins IMMEDIATE (it waits for the write lock
/// first), so concurrent changes queue instead of failing. And a merge read the stored
/// attributes outside its write, so concurrent merges dropped each other's keys (AWS
/// UpdateThing with `merge: true` never loses one): the read, change and check are now one
/// store change (`update_attributes`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_on_sqlite_all_succeed() {
    let m = Mem::open(std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    concurrent_merges(&m).await;
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_merges_on_memory_and_postgres_lose_nothing() {
    concurrent_merges(&Mem::new()).await;
    let Some(url) = crate::common::postgres_url("concurrent_merges") else {
        return;
    };
    let m = Mem::postgres_at(&url, std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    concurrent_merges(&m).await;
    m.close().await;
}

/// 48 concurrent UpdateThing merges on two things: every one succeeds, and none drops
/// another's key.
async fn concurrent_merges(m: &Mem) {
    m.thing("dev-1").await;
    m.thing("dev-2").await;
    let mut tasks = Vec::new();
    for i in 0..48 {
        let m_admin = m.admin.clone();
        tasks.push(tokio::spawn(async move {
            let req = ferrota_api::UpdateThing {
                attribute_payload: ferrota_api::AttributePayload {
                    attributes: [(format!("k{}", i % 5), format!("v{i}"))].into(),
                    merge: Some(true),
                },
            };
            let thing = if i % 2 == 0 { "dev-1" } else { "dev-2" };
            m_admin.update_thing(thing, &req).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("a concurrent update failed");
    }
    // No merge dropped another's key: each thing has the five keys, each with a value one of
    // its updates wrote.
    for (thing, parity) in [("dev-1", 0), ("dev-2", 1)] {
        let d = m.admin.describe_thing(thing).await.unwrap();
        assert_eq!(d.attributes.len(), 5, "{thing}: {:?}", d.attributes);
        for (k, v) in &d.attributes {
            let i: usize = v.trim_start_matches('v').parse().unwrap();
            assert_eq!((k.clone(), i % 2), (format!("k{}", i % 5), parity));
        }
    }
}

/// A path parameter axum cannot decode (`%FF` is not UTF-8) was answered in plain text, not
/// the documented AWS error JSON that every client reads.
#[tokio::test]
async fn an_undecodable_path_parameter_is_aws_error_json() {
    let m = Mem::new();
    for (method, path) in [
        ("GET", "/api/things/%FF"),
        ("POST", "/api/things/%FF/revoke"),
        ("GET", "/api/ota-updates/%C0/things/dev-1/history"),
    ] {
        let (status, ct, body) = call(&m, Some("test-token"), method, path, None).await;
        assert_eq!(status, 400, "{method} {path}");
        assert!(ct.starts_with("application/json"), "{method} {path}: {ct}");
        let e: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(e["code"], "InvalidRequestException", "{e}");
        assert!(e["message"].as_str().unwrap().contains("UTF-8"), "{e}");
    }
}
