//! Issue 14, items 2, 6, 7 (server part), 10 (API part) and 11 (server part), through the HTTP
//! API in memory (the router called directly, no socket): nothing is accepted and ignored,
//! errors are AWS's error JSON, output is one camelCase style with AWS's names, reasons carry
//! words beside the code, a named code-signing certificate is checked against the signature,
//! and a request without `fileType` leaves it out of the job document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ferrota_server::admin::Admin;
use ferrota_server::config::Config;
use ferrota_server::server::Server;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A well-formed DER ECDSA signature (r = s = 1), base64 (as `common::SIGNATURE`; this file
/// stands alone so it also builds against older servers).
const SIGNATURE: &str = "MAYCAQECAQE=";

struct Api {
    _dir: tempfile::TempDir,
    cfg: Config,
    admin: Arc<Admin>,
    token: String,
}

impl Api {
    async fn new() -> Api {
        ferrota_server::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let server = Server::open(&cfg, 8883).await.unwrap();
        Api {
            admin: server.admin.clone(),
            token: server.token().to_string(),
            cfg,
            _dir: dir,
        }
    }

    /// One request; the status and the JSON answer.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let r = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let router = ferrota_server::api::router(self.admin.clone(), self.token.clone());
        let resp = router.oneshot(r).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn stored_files(&self) -> usize {
        std::fs::read_dir(self.cfg.files_dir()).unwrap().count()
    }

    async fn thing(&self, name: &str) {
        self.admin
            .create_thing(name, &["fleet".to_string()])
            .await
            .unwrap();
    }
}

fn request(id: &str, sha: &str) -> Value {
    json!({
        "otaUpdateId": id,
        "targets": ["thing/dev-a"],
        "files": [{
            "fileName": "/ota/data.bin",
            "fileType": 7,
            "fileLocation": {"sha256": sha},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": SIGNATURE},
                "certificateChain": {"certificateName": "signer.crt"}
            }}
        }]
    })
}

/// A change to a valid request.
type Edit = Box<dyn Fn(&mut Value)>;

/// A 400 in AWS's error JSON whose message names `field`; nothing stored: no OTA update, no
/// upload left behind.
async fn refused(api: &Api, req: &Value, field: &str) {
    let (st, v) = api.call("POST", "/api/ota-updates", Some(req)).await;
    assert_eq!(st, 400, "{field}: {v}");
    assert_eq!(v["code"], "InvalidRequestException", "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains(field), "{field:?} not named in {msg:?}");
    assert!(
        api.admin.list_ota().await.unwrap().is_empty(),
        "{field}: stored"
    );
    assert_eq!(api.stored_files(), 0, "{field}: the upload was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_options_not_implemented_and_unknown_fields_are_refused_by_name() {
    let api = Api::new().await;
    api.thing("dev-a").await;
    let cases: Vec<(&str, Edit)> = vec![
        // Rollout settings are implemented (issue 16): out-of-range values are refused with
        // AWS's validation message naming the field (the whole table is in
        // tests/rollout_validation.rs).
        (
            "maximumPerMinute",
            Box::new(|r| {
                r["awsJobExecutionsRolloutConfig"] = json!({"maximumPerMinute": 0});
            }),
        ),
        (
            "thresholdPercentage",
            Box::new(|r| {
                r["awsJobAbortConfig"] = json!({"abortCriteriaList": [{
                    "failureType": "FAILED", "action": "CANCEL",
                    "thresholdPercentage": 101, "minNumberOfExecutedThings": 1}]});
            }),
        ),
        (
            "targetSelection",
            Box::new(|r| r["targetSelection"] = json!("SOMETIMES")),
        ),
        ("protocols", Box::new(|r| r["protocols"] = json!(["HTTP"]))),
        (
            "roleArn",
            Box::new(|r| r["roleArn"] = json!("arn:aws:iam::1:role/x")),
        ),
        (
            "inProgressTimeoutInMinutes",
            Box::new(|r| r["awsJobTimeoutConfig"] = json!({"inProgressTimeoutInMinutes": 0})),
        ),
        (
            "awsJobTimeoutConfig",
            Box::new(|r| {
                r["awsJobTimeoutConfig"] =
                    json!({"inProgressTimeoutInMinutes": 5, "stepTimeoutInMinutes": 1});
            }),
        ),
        ("noSuchField", Box::new(|r| r["noSuchField"] = json!(1))),
        (
            "files[0].attributes",
            Box::new(|r| r["files"][0]["attributes"] = json!({"a": "b"})),
        ),
        (
            "files[0].fileLocation",
            Box::new(|r| r["files"][0]["fileLocation"]["stream"] = json!({"streamId": "s"})),
        ),
        (
            "files[0].codeSigning.awsSignerJobId",
            Box::new(|r| r["files"][0]["codeSigning"]["awsSignerJobId"] = json!("j")),
        ),
        (
            "hashAlgorithm",
            Box::new(|r| {
                r["files"][0]["codeSigning"]["customCodeSigning"]["hashAlgorithm"] = json!("SHA1");
            }),
        ),
    ];
    for (i, (field, edit)) in cases.iter().enumerate() {
        let sha = api.admin.put_file(&[i as u8 + 1; 3000]).await.unwrap();
        let mut r = request(&format!("bad{i}"), &sha);
        edit(&mut r);
        refused(&api, &r, field).await;
    }
    // The inner unknown field is named too.
    let sha = api.admin.put_file(&[0x77; 3000]).await.unwrap();
    let mut r = request("bad-inner", &sha);
    r["awsJobTimeoutConfig"] = json!({"inProgressTimeoutInMinutes": 5, "stepTimeoutInMinutes": 1});
    refused(&api, &r, "stepTimeoutInMinutes").await;

    // A valid request still works, with AWS's defaults spelled out.
    let sha = api.admin.put_file(&[0x42; 3000]).await.unwrap();
    let mut r = request("good", &sha);
    r["targetSelection"] = json!("SNAPSHOT");
    r["protocols"] = json!(["MQTT"]);
    r["awsJobTimeoutConfig"] = json!({"inProgressTimeoutInMinutes": 30});
    let (st, v) = api.call("POST", "/api/ota-updates", Some(&r)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["jobId"], "AFR_OTA-good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_bodies_and_queries_are_strict_and_errors_are_aws_json() {
    let api = Api::new().await;
    // POST /api/things: an unknown field is refused by name, no thing created.
    let (st, v) = api
        .call(
            "POST",
            "/api/things",
            Some(&json!({"thingName": "dev-x", "thingTypeName": "sensor"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "InvalidRequestException");
    assert!(
        v["message"].as_str().unwrap().contains("thingTypeName"),
        "{v}"
    );
    assert!(api.admin.list_things().await.unwrap().is_empty());
    let (st, v) = api
        .call("POST", "/api/things", Some(&json!({"thingName": "dev-a"})))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = api
        .call("POST", "/api/things", Some(&json!({"thingName": "dev-a"})))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("ResourceAlreadyExistsException"))
    );

    let sha = api.admin.put_file(&[0x42; 3000]).await.unwrap();
    let (st, v) = api
        .call("POST", "/api/ota-updates", Some(&request("up", &sha)))
        .await;
    assert_eq!(st, 200, "{v}");
    // Cancel: AWS's body fields are not implemented, so refused; the update stays.
    let (st, v) = api
        .call(
            "POST",
            "/api/ota-updates/up/cancel",
            Some(&json!({"comment": "bad build"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("comment"), "{v}");
    let (st, v) = api.call("GET", "/api/ota-updates/up", None).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("CREATE_COMPLETE")));
    // A misspelt query parameter is refused, not ignored.
    let (st, v) = api
        .call("POST", "/api/ota-updates/up/cancel?forse=true", None)
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("forse"), "{v}");
    let (st, v) = api
        .call("GET", "/api/ota-updates/up?maxResult=5", None)
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("maxResult"), "{v}");
    // Revoke takes no body.
    let (st, v) = api
        .call(
            "POST",
            "/api/things/dev-a/revoke",
            Some(&json!({"force": true})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("force"), "{v}");

    // AWS's error JSON for the other errors.
    let (st, v) = api.call("GET", "/api/ota-updates/nope", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (404, Some("ResourceNotFoundException")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("nope"));
    let (st, v) = api.call_as("wrong", "GET", "/api/things", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("UnauthorizedException")),
        "{v}"
    );
    let (st, v) = api.call("GET", "/api/no-such-path", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (404, Some("ResourceNotFoundException")),
        "{v}"
    );
}

/// Item 10 (API part) and item 6: AWS's camelCase names everywhere, `ota list` as objects,
/// `jobProcessDetails` counts over the whole job, and `reasonText` beside `statusDetails`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_camel_case_with_job_counts_and_reasons_in_words() {
    let api = Api::new().await;
    for t in ["dev-a", "dev-b", "dev-c"] {
        api.thing(t).await;
    }
    let sha = api.admin.put_file(&[0x42; 3000]).await.unwrap();
    let mut r = request("up", &sha);
    r["targets"] = json!(["thinggroup/fleet"]);
    let (st, v) = api.call("POST", "/api/ota-updates", Some(&r)).await;
    assert_eq!(st, 200, "{v}");
    // dev-b fails its signature check, as the official library reports it.
    let store = &api.admin.services.store;
    let mut e = store
        .execution("AFR_OTA-up", "dev-b")
        .await
        .unwrap()
        .unwrap();
    let version = e.version_number;
    e.status = ferrota_proto::JobStatus::Failed;
    e.status_details
        .insert("reason".into(), "0x000000e3: 0x00000000".into());
    e.version_number += 1;
    assert!(store.update_execution(&e, version).await.unwrap());

    let (_, d) = api
        .call("GET", "/api/ota-updates/up?maxResults=1", None)
        .await;
    let counts = &d["jobProcessDetails"];
    assert_eq!(counts["numberOfQueuedThings"], 2, "{d}");
    assert_eq!(counts["numberOfFailedThings"], 1, "{d}");
    for k in [
        "numberOfInProgressThings",
        "numberOfSucceededThings",
        "numberOfRejectedThings",
        "numberOfCanceledThings",
        "numberOfTimedOutThings",
        "numberOfRemovedThings",
    ] {
        assert_eq!(counts[k], 0, "{k}: {d}");
    }
    assert!(d["createdAt"].is_u64(), "{d}");
    let (_, d) = api.call("GET", "/api/ota-updates/up", None).await;
    let b = d["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["thingName"] == "dev-b")
        .unwrap()
        .clone();
    assert_eq!(
        b["statusDetails"]["reason"], "0x000000e3: 0x00000000",
        "{b}"
    );
    assert!(
        b["reasonText"]
            .as_str()
            .unwrap()
            .contains("signature check failed"),
        "{b}"
    );

    // ota list: objects, the request an object too (not JSON in a string).
    let (_, l) = api.call("GET", "/api/ota-updates", None).await;
    assert_eq!(l[0]["otaUpdateId"], "up", "{l}");
    assert_eq!(l[0]["request"]["otaUpdateId"], "up", "{l}");
    assert!(l[0]["createdAt"].is_u64(), "{l}");

    // Things: camelCase, AWS's JobExecution names, the reason in words.
    let (_, t) = api.call("GET", "/api/things", None).await;
    assert_eq!(t[0]["thingName"], "dev-a", "{t}");
    assert!(t[0]["createdAt"].is_u64(), "{t}");
    let (_, t) = api.call("GET", "/api/things/dev-b", None).await;
    assert_eq!(t["thingName"], "dev-b", "{t}");
    assert!(t["certificates"][0]["certificateId"].is_string(), "{t}");
    let x = &t["executions"][0];
    assert_eq!(x["jobId"], "AFR_OTA-up", "{t}");
    assert_eq!(x["status"], "FAILED", "{t}");
    assert!(x["queuedAt"].is_u64() && x["lastUpdatedAt"].is_u64(), "{t}");
    assert!(
        x["reasonText"]
            .as_str()
            .unwrap()
            .contains("signature check failed"),
        "{t}"
    );
    assert!(no_snake_case_keys(&t), "{t}");
    let (_, h) = api
        .call("GET", "/api/ota-updates/up/things/dev-b/history", None)
        .await;
    let last = h.as_array().unwrap().last().unwrap();
    assert!(last["lastUpdatedAt"].is_u64(), "{h}");
    assert!(
        last["reasonText"].as_str().unwrap().contains("signature"),
        "{h}"
    );
    let (_, d) = api.call("GET", "/api/ota-updates/up", None).await;
    let mut d = d;
    // The request echoes what the operator sent; statusDetails are the device's keys.
    d["request"] = Value::Null;
    for e in d["executions"].as_array_mut().unwrap() {
        e["statusDetails"] = Value::Null;
    }
    assert!(no_snake_case_keys(&d), "{d}");
}

/// Whether no object key of `v` has an underscore (AWS's camelCase throughout).
fn no_snake_case_keys(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| !k.contains('_') && no_snake_case_keys(v)),
        Value::Array(a) => a.iter().all(no_snake_case_keys),
        _ => true,
    }
}

/// Item 11 (server part): a request without `fileType` is accepted and the job document
/// leaves it out, as AWS does; the bank-image check (fileType 141 only) does not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_file_type_leaves_it_out_of_the_job_document() {
    let api = Api::new().await;
    api.thing("dev-a").await;
    let sha = api.admin.put_file(&[0x42; 3000]).await.unwrap();
    let mut r = request("typeless", &sha);
    r["files"][0].as_object_mut().unwrap().remove("fileType");
    let (st, v) = api.call("POST", "/api/ota-updates", Some(&r)).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["request"]["files"][0].get("fileType").is_none(), "{v}");
    let job = api
        .admin
        .services
        .store
        .job("AFR_OTA-typeless")
        .await
        .unwrap()
        .unwrap();
    let doc: Value = serde_json::from_str(&job.document).unwrap();
    let f = &doc["afr_ota"]["files"][0];
    assert_eq!(f["filesize"], 3000, "{doc}");
    assert!(f.get("fileType").is_none(), "{doc}");
    // With 7 it is written.
    let mut r = request("typed", &sha);
    r["files"][0]["fileType"] = json!(7);
    let (st, v) = api.call("POST", "/api/ota-updates", Some(&r)).await;
    assert_eq!(st, 200, "{v}");
    let job = api
        .admin
        .services
        .store
        .job("AFR_OTA-typed")
        .await
        .unwrap()
        .unwrap();
    let doc: Value = serde_json::from_str(&job.document).unwrap();
    assert_eq!(doc["afr_ota"]["files"][0]["fileType"], 7, "{doc}");
}

/// Item 7 (server part): with the code-signing certificate in
/// `certificateChain.inlineDocument`, the signature must verify over the file with its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_certificate_must_verify_the_signature() {
    use ferrota_keys::{KeyType, PrivateKey};
    let api = Api::new().await;
    api.thing("dev-a").await;
    let key = |_: u8| {
        PrivateKey::generate(KeyType::EcdsaP256)
            .unwrap()
            .into_ota_signing_key()
            .unwrap()
    };
    let (signer, boot) = (key(0), key(1));
    let cert = ferrota_keys::code_signing_certificate(&signer, "signer", 30).unwrap();
    let file = vec![0x42u8; 5000];
    let other = vec![0x43u8; 5000];
    let b64 = |k: &ferrota_image::p256::ecdsa::SigningKey, data: &[u8]| {
        let mut out = [0u8; ferrota_image::ota::MAX_P256_BASE64];
        ferrota_image::ota::sign_file(k, data)
            .unwrap()
            .to_base64(&mut out)
            .to_string()
    };
    let with = |id: &str, sha: &str, sig: String, cert: &str| {
        let mut r = request(id, sha);
        let cs = &mut r["files"][0]["codeSigning"]["customCodeSigning"];
        cs["signature"]["inlineDocument"] = json!(sig);
        cs["certificateChain"]["inlineDocument"] = json!(cert);
        r
    };
    // Signed with another key (e.g. the boot key): refused, nothing stored.
    let sha = api.admin.put_file(&file).await.unwrap();
    refused(
        &api,
        &with("boot", &sha, b64(&boot, &file), &cert),
        "does not verify",
    )
    .await;
    // A signature of another file: refused.
    let sha = api.admin.put_file(&file).await.unwrap();
    refused(
        &api,
        &with("other", &sha, b64(&signer, &other), &cert),
        "does not verify",
    )
    .await;
    // Not a certificate (a key): refused, naming the field.
    let sha = api.admin.put_file(&file).await.unwrap();
    let pem = PrivateKey::generate(KeyType::EcdsaP256)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap()
        .to_string();
    refused(
        &api,
        &with("key", &sha, b64(&signer, &file), &pem),
        "certificateChain.inlineDocument",
    )
    .await;
    // The match is accepted.
    let sha = api.admin.put_file(&file).await.unwrap();
    let (st, v) = api
        .call(
            "POST",
            "/api/ota-updates",
            Some(&with("good", &sha, b64(&signer, &file), &cert)),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// The answers axum writes before a handler runs are AWS error JSON too: a method a path does
/// not have (405, `Allow` kept) and a body over the API's limit (413, nothing stored), as
/// `ferrota_api::Client` and AWS SDKs read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_and_oversized_bodies_are_aws_error_json() {
    let api = Api::new().await;
    let (status, v) = api.call("PUT", "/api/things", None).await;
    assert_eq!(status, 405, "{v}");
    assert_eq!(v["code"], "MethodNotAllowedException", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");

    let r = Request::builder()
        .method("DELETE")
        .uri("/api/limits")
        .header("authorization", format!("Bearer {}", api.token))
        .body(Body::empty())
        .unwrap();
    let resp = ferrota_server::api::router(api.admin.clone(), api.token.clone())
        .oneshot(r)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        resp.headers().get("allow").and_then(|a| a.to_str().ok()),
        Some("GET,HEAD"),
        "the Allow header is kept"
    );

    let before = api.stored_files();
    let r = Request::builder()
        .method("POST")
        .uri("/api/files")
        .header("authorization", format!("Bearer {}", api.token))
        .body(Body::from(vec![0x5a; 17 * 1024 * 1024 + 1]))
        .unwrap();
    let resp = ferrota_server::api::router(api.admin.clone(), api.token.clone())
        .oneshot(r)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("413 body is not JSON ({e}): {bytes:?}"));
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["code"], "RequestEntityTooLargeException", "{v}");
    assert_eq!(api.stored_files(), before, "nothing stored");
}
