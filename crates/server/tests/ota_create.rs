//! Issue 13, item 8: `CreateOTAUpdate` stores only what devices accept, and a failed create
//! leaves no orphan upload (but never deletes a file another update streams). In memory: the
//! HTTP API answered by its router, the in-memory store, no socket or TLS.

use crate::common;

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

/// A bad create is a 400 whose message names the problem, and nothing is stored.
async fn refused(s: &Mem, req: &Value, needle: &str) {
    let (st, v) = s.api("POST", "/api/ota-updates", Some(req)).await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains(needle), "{needle:?} not in {v}");
    let id = req["otaUpdateId"].as_str().unwrap();
    let (st, _) = s.api("GET", &format!("/api/ota-updates/{id}"), None).await;
    assert_eq!(st, 404, "OTA update {id} was stored");
}

#[tokio::test]
async fn a_non_image_firmware_file_is_refused_and_its_upload_deleted() {
    let s = Mem::new();
    s.thing("dev-c1").await;
    let sha = s.admin.put_file(&[0x5a; 10_000]).await.unwrap();
    assert_eq!(s.stored_files(), vec![sha.clone()]);
    refused(
        &s,
        &request("notimage", "dev-c1", &sha, 141, GOOD_SIGNATURE),
        "not a Ferrota bank image",
    )
    .await;
    assert!(s.stored_files().is_empty(), "orphan upload left behind");
    assert!(s.admin.list_ota().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_signature_that_is_not_base64_der_is_refused() {
    let s = Mem::new();
    s.thing("dev-c2").await;
    for (i, bad) in ["!!!notbase64", "MEUCIQCUhVsvXNtjLw7zwZSOKzxga9yW", ""]
        .iter()
        .enumerate()
    {
        let sha = s.admin.put_file(&[0x11; 3000]).await.unwrap();
        refused(
            &s,
            &request(&format!("badsig{i}"), "dev-c2", &sha, 7, bad),
            "inlineDocument",
        )
        .await;
        assert!(s.stored_files().is_empty(), "orphan upload left behind");
    }
    assert!(s.admin.list_ota().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_create_keeps_a_file_another_update_streams() {
    let s = Mem::new();
    s.thing("dev-c3").await;
    let sha = s.admin.put_file(&[0x22; 3000]).await.unwrap();
    let (st, v) = s
        .api(
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
        s.stored_files(),
        vec![sha.clone()],
        "a used file was deleted"
    );
    // A failure that is not about the file (unknown target) also cleans up an unused upload.
    let other = s.admin.put_file(&[0x33; 3000]).await.unwrap();
    let (st, v) = s
        .api(
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
    assert_eq!(s.stored_files(), vec![sha], "orphan upload left behind");
}

/// Issue 15: `create_ota` writes stream, job and record in one transaction. A failure of the
/// last insert (a SQLite trigger refuses the OTA record) leaves no stream, no job and no
/// record, and the same id can be created afterwards. Written in three store calls, the job
/// `AFR_OTA-<id>` stayed behind and every retry was refused as "exists already".
#[tokio::test]
async fn a_create_that_fails_in_the_middle_leaves_nothing_and_can_be_retried() {
    let sqlite = ferrota_server::store::SqliteStore::memory().await.unwrap();
    let pool = sqlite.pool().clone();
    let m = Mem::over(std::sync::Arc::new(sqlite));
    m.thing("dev-tx").await;
    let sha = m.admin.put_file(&[0x42; 2000]).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER fail_ota BEFORE INSERT ON ota_updates \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let req = Mem::data_request("tx1", "thing/dev-tx", &sha);
    let e = m.admin.create_ota(&req).await.unwrap_err();
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert!(m.store.ota("tx1").await.unwrap().is_none());
    assert!(
        m.store.job("AFR_OTA-tx1").await.unwrap().is_none(),
        "orphan job"
    );
    assert!(
        m.store
            .executions_of_thing("dev-tx")
            .await
            .unwrap()
            .is_empty()
    );
    let streams: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM streams")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(streams, 0, "orphan stream");
    sqlx::raw_sql("DROP TRIGGER fail_ota")
        .execute(&pool)
        .await
        .unwrap();
    let sha = m.admin.put_file(&[0x42; 2000]).await.unwrap();
    let req = Mem::data_request("tx1", "thing/dev-tx", &sha);
    let d = m
        .admin
        .create_ota(&req)
        .await
        .expect("the id can be created again");
    assert_eq!(d.ota_update_id, "tx1");
    assert_eq!(
        m.store.executions_of_thing("dev-tx").await.unwrap().len(),
        1
    );
}

/// The same on the in-memory store, with its fault hook: the failed create stores nothing,
/// the retry succeeds.
#[tokio::test]
async fn a_failed_create_on_the_memory_store_leaves_nothing() {
    let mem = std::sync::Arc::new(ferrota_server::store::MemoryStore::new());
    let m = Mem::over(mem.clone());
    m.thing("dev-mx").await;
    let sha = m.admin.put_file(&[0x43; 2000]).await.unwrap();
    mem.fail_next("create_ota_update");
    let req = Mem::data_request("mx1", "thing/dev-mx", &sha);
    m.admin.create_ota(&req).await.unwrap_err();
    assert!(m.store.ota("mx1").await.unwrap().is_none());
    assert!(m.store.job("AFR_OTA-mx1").await.unwrap().is_none());
    let sha = m.admin.put_file(&[0x43; 2000]).await.unwrap();
    let req = Mem::data_request("mx1", "thing/dev-mx", &sha);
    m.admin.create_ota(&req).await.expect("retry");
    assert!(m.store.job("AFR_OTA-mx1").await.unwrap().is_some());
}
