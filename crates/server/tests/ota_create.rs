//! Issue 13, item 8: `CreateOTAUpdate` stores only what devices accept, and a failed create
//! leaves no orphan upload (but never deletes a file another update streams).

mod common;

use common::*;
use serde_json::{Value, json};

const GOOD_SIGNATURE: &str = "MAYCAQECAQE=";

fn request(id: &str, thing: &str, sha: &str, file_type: u8, sig: &str) -> Value {
    json!({
        "otaUpdateId": id,
        "targets": [format!("thing/{thing}")],
        "files": [{
            "fileName": "/ota/bank.bin",
            "fileType": file_type,
            "fileLocation": {"sha256": sha},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": sig},
                "certificateChain": {"certificateName": "signer.crt"}
            }}
        }]
    })
}

fn stored_files(s: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.cfg.files_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A bad create is a 400 whose message names the problem, and nothing is stored.
async fn refused(s: &TestServer, req: &Value, needle: &str) {
    let (st, v) = http(s, "POST", "/api/ota-updates", Some(req)).await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains(needle), "{needle:?} not in {v}");
    let id = req["otaUpdateId"].as_str().unwrap();
    let (st, _) = http(s, "GET", &format!("/api/ota-updates/{id}"), None).await;
    assert_eq!(st, 404, "OTA update {id} was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_image_firmware_file_is_refused_and_its_upload_deleted() {
    let s = TestServer::start().await;
    s.thing("dev-c1", &[]).await;
    let sha = s.admin.put_file(&[0x5a; 10_000]).unwrap();
    assert_eq!(stored_files(&s), vec![sha.clone()]);
    refused(
        &s,
        &request("notimage", "dev-c1", &sha, 141, GOOD_SIGNATURE),
        "not a Ferrota bank image",
    )
    .await;
    assert!(stored_files(&s).is_empty(), "orphan upload left behind");
    assert!(s.admin.list_ota().await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_is_not_base64_der_is_refused() {
    let s = TestServer::start().await;
    s.thing("dev-c2", &[]).await;
    for (i, bad) in ["!!!notbase64", "MEUCIQCUhVsvXNtjLw7zwZSOKzxga9yW", ""]
        .iter()
        .enumerate()
    {
        let sha = s.admin.put_file(&[0x11; 3000]).unwrap();
        refused(
            &s,
            &request(&format!("badsig{i}"), "dev-c2", &sha, 7, bad),
            "inlineDocument",
        )
        .await;
        assert!(stored_files(&s).is_empty(), "orphan upload left behind");
    }
    assert!(s.admin.list_ota().await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_keeps_a_file_another_update_streams() {
    let s = TestServer::start().await;
    s.thing("dev-c3", &[]).await;
    let sha = s.admin.put_file(&[0x22; 3000]).unwrap();
    let (st, v) = http(
        &s,
        "POST",
        "/api/ota-updates",
        Some(&request("good", "dev-c3", &sha, 7, GOOD_SIGNATURE)),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    refused(
        &s,
        &request("bad", "dev-c3", &sha, 7, "!!!notbase64"),
        "base64",
    )
    .await;
    assert_eq!(
        stored_files(&s),
        vec![sha.clone()],
        "a used file was deleted"
    );
    // A failure that is not about the file (unknown target) also cleans up an unused upload.
    let other = s.admin.put_file(&[0x33; 3000]).unwrap();
    let (st, v) = http(
        &s,
        "POST",
        "/api/ota-updates",
        Some(&request(
            "nobody",
            "no-such-thing",
            &other,
            7,
            GOOD_SIGNATURE,
        )),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(stored_files(&s), vec![sha], "orphan upload left behind");
    s.stop().await;
}
