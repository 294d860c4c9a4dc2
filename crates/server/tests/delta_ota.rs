//! Issue #19, the server's side: a firmware update is also streamed packed, and as a delta
//! from each `deltaFrom` base; the stream serves them like any file; each device is served
//! only the deltas whose base version (and board) it reports; bad bases store nothing.

use crate::common;

use common::*;
use ferrota_image::build::{BankBuilder, sample_build};
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BOARD: &str = "KIT_T2G-B-H_LITE";

/// A bank image of `version` for `board` with 8 KB of code per core region; `seed` changes
/// the code.
fn bank(version: (u8, u8, u16), board: &str, seed: u64) -> Vec<u8> {
    let record = VersionRecord {
        version: FirmwareVersion::new(version.0, version.1, version.2),
        security_counter: 1,
        hardware: HardwareId::new(board).unwrap(),
        flags: 0,
    };
    let mut b = BankBuilder::new(record);
    for (region, len) in [(Region::Cm0p, 0x2000), (Region::Cm7_0, 0x2000)] {
        b.add(region, &sample_build(region, len, seed)).unwrap();
    }
    let key = BootSigningKey::EcdsaP256(SigningKey::from_slice(&[7u8; 32]).unwrap());
    b.finish(&key).unwrap()
}

fn request(id: &str, things: &[&str], sha: &str, file_type: u8, bases: &[&str]) -> Value {
    json!({
        "otaUpdateId": id,
        "targets": things.iter().map(|t| format!("thing/{t}")).collect::<Vec<_>>(),
        "files": [{
            "fileName": "v1.1.0.bin",
            "fileType": file_type,
            "fileLocation": {"sha256": sha},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": SIGNATURE},
                "certificateChain": {"certificateName": "signer.crt"}
            }},
            "deltaFrom": bases.iter().map(|b| json!({"sha256": b})).collect::<Vec<_>>(),
        }]
    })
}

fn sha_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// Reports `firmware.version` / `hardwareId` in the thing's shadow, as the agent does.
async fn report(d: &mut MemDevice, version: &str, board: &str) {
    let body = json!({"state": {"reported": {
        "firmware": {"version": version, "bank": "A", "pendingTrial": false, "antiRollbackFloor": 0},
        "hardwareId": board,
    }}});
    d.publish(
        format!("$aws/things/{}/shadow/update", d.thing),
        body.to_string(),
    )
    .await;
    while d.try_next().is_some() {}
}

/// The `files` of the document `$next/get` serves the device.
async fn served_files(d: &mut MemDevice) -> Vec<Value> {
    let m = d
        .ask(
            format!("$aws/things/{}/jobs/$next/get", d.thing),
            r#"{"clientToken":"n"}"#,
        )
        .await;
    assert!(m.topic.ends_with("/accepted"), "{}", m.topic);
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    v["execution"]["jobDocument"]["afr_ota"]["files"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_firmware_update_streams_a_packed_copy_and_a_delta_per_base() {
    let s = Mem::new();
    for t in ["dev-old", "dev-other", "dev-quiet", "dev-board"] {
        s.thing(t).await;
    }
    let old = bank((1, 0, 0), BOARD, 1);
    let older = bank((0, 9, 0), BOARD, 2);
    let new = bank((1, 1, 0), BOARD, 1);
    let new_sha = s.admin.put_file(&new).await.unwrap();
    let old_sha = s.admin.put_file(&old).await.unwrap();
    let older_sha = s.admin.put_file(&older).await.unwrap();
    let things = ["dev-old", "dev-other", "dev-quiet", "dev-board"];
    let req = request("rel-110", &things, &new_sha, 141, &[&old_sha, &older_sha]);
    let (st, v) = s.api("POST", "/api/ota-updates", Some(&req)).await;
    assert_eq!(st, 200, "{v}");

    // The stream: files[0] as uploaded, then the packed image, then one delta per base, each
    // an ordinary stored file whose name is its SHA-256 and that rebuilds the new image.
    let stream_id = v["streamId"].as_str().unwrap();
    let stream = s.store.stream(stream_id).await.unwrap().unwrap();
    assert_eq!(stream.files.len(), 4);
    assert_eq!(stream.files[0].blob, new_sha);
    assert_eq!(stream.files[0].size, new.len() as u64);
    let stored = |i: usize| std::fs::read(s.file_path(&stream.files[i].blob)).unwrap();
    for (i, f) in stream.files.iter().enumerate() {
        assert_eq!(f.file_id as usize, i);
        let data = stored(i);
        assert_eq!(f.size, data.len() as u64);
        assert_eq!(f.blob, sha_hex(&data));
    }
    use ferrota_delta::encode::apply;
    assert_eq!(apply(&stored(1), &[]).unwrap(), new, "packed image");
    assert_eq!(apply(&stored(2), &old).unwrap(), new, "delta from 1.0.0");
    assert_eq!(apply(&stored(3), &older).unwrap(), new, "delta from 0.9.0");
    assert!(
        stream.files[1].size < new.len() as u64 / 10,
        "packed: {}",
        stream.files[1].size
    );
    assert!(stream.files[2].size < stream.files[1].size);

    // The operator reads the whole document (GetJobDocument).
    let (st, d) = s
        .api("GET", "/api/jobs/AFR_OTA-rel-110/job-document", None)
        .await;
    assert_eq!(st, 200, "{d}");
    let doc: Value = serde_json::from_str(d["document"].as_str().unwrap()).unwrap();
    let files = doc["afr_ota"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    let f0 = &files[0];
    assert!(f0.get("encoding").is_none());
    for (i, f) in files.iter().enumerate().skip(1) {
        for k in ["certfile", "fileType", "sig-sha256-ecdsa"] {
            assert_eq!(f[k], f0[k], "files[{i}].{k}");
        }
        assert_eq!(f["fileid"], i);
        assert_eq!(f["filesize"], stream.files[i].size);
        assert_eq!(f["encoding"], "frpk1");
        assert_eq!(f["blockSize"], 4096);
    }
    assert_eq!(files[1]["filepath"], "v1.1.0.bin.frpk");
    assert!(files[1].get("baseSha256").is_none());
    assert_eq!(files[2]["filepath"], "v1.1.0.bin.from-1.0.0.frpk");
    assert_eq!(files[2]["baseSha256"], old_sha);
    assert_eq!(files[2]["baseSize"], old.len());
    assert_eq!(files[2]["baseVersion"], "1.0.0");
    assert_eq!(files[2]["baseHardwareId"], BOARD);
    assert_eq!(files[3]["baseVersion"], "0.9.0");

    // Each device: files[0], the packed copy, and the deltas of the version it reports.
    let mut d = s.device("dev-old");
    report(&mut d, "1.0.0", BOARD).await;
    let served = served_files(&mut d).await;
    assert_eq!(served, files[..3].to_vec(), "dev-old");
    let mut d = s.device("dev-other");
    report(&mut d, "1.0.5", BOARD).await;
    assert_eq!(served_files(&mut d).await, files[..2].to_vec(), "dev-other");
    let mut d = s.device("dev-quiet");
    assert_eq!(served_files(&mut d).await, files[..2].to_vec(), "dev-quiet");
    let mut d = s.device("dev-board");
    report(&mut d, "0.9.0", "OTHER_BOARD").await;
    assert_eq!(served_files(&mut d).await, files[..2].to_vec(), "dev-board");
    // A device that reports 0.9.0 on the right board gets that delta (and start-next too).
    report(&mut d, "0.9.0", BOARD).await;
    let m = d
        .ask(
            "$aws/things/dev-board/jobs/start-next",
            r#"{"clientToken":"s"}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    let got = v["execution"]["jobDocument"]["afr_ota"]["files"].clone();
    assert_eq!(got, json!([files[0], files[1], files[3]]));
}

/// A refused create stores nothing: no update, no job, no stream, no packed file, and the
/// uploads of the request are deleted.
async fn refused(s: &Mem, req: &Value, status: u16, needle: &str) {
    let (st, v) = s.api("POST", "/api/ota-updates", Some(req)).await;
    assert_eq!(st, status, "{v}");
    assert!(v.to_string().contains(needle), "{needle:?} not in {v}");
    assert!(s.admin.list_ota().await.unwrap().is_empty());
    let id = req["otaUpdateId"].as_str().unwrap();
    assert!(
        s.store
            .job(&format!("AFR_OTA-{id}"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.stored_files().is_empty(),
        "left behind: {:?}",
        s.stored_files()
    );
}

#[tokio::test]
async fn bad_delta_bases_are_refused_and_leave_nothing() {
    let s = Mem::new();
    s.thing("dev-x").await;
    let new = bank((1, 1, 0), BOARD, 1);

    let sha = s.admin.put_file(&new).await.unwrap();
    let junk = s.admin.put_file(&[0x5a; 5000]).await.unwrap();
    let req = request("junkbase", &["dev-x"], &sha, 141, &[&junk]);
    refused(&s, &req, 400, "deltaFrom[0]").await;

    let sha = s.admin.put_file(&new).await.unwrap();
    let req = request("selfbase", &["dev-x"], &sha, 141, &[&sha]);
    refused(&s, &req, 400, "the new image itself").await;

    let sha = s.admin.put_file(&new).await.unwrap();
    let old = s.admin.put_file(&bank((1, 0, 0), BOARD, 1)).await.unwrap();
    let req = request("twice", &["dev-x"], &sha, 141, &[&old, &old]);
    refused(&s, &req, 400, "named twice").await;

    let sha = s.admin.put_file(&new).await.unwrap();
    let mut bases = Vec::new();
    for i in 0..9u16 {
        bases.push(s.admin.put_file(&bank((1, 0, i), BOARD, 1)).await.unwrap());
    }
    let names: Vec<&str> = bases.iter().map(String::as_str).collect();
    let req = request("many", &["dev-x"], &sha, 141, &names);
    refused(&s, &req, 400, "at most 8").await;

    let sha = s.admin.put_file(&[0x11; 3000]).await.unwrap();
    let old = s.admin.put_file(&bank((1, 0, 0), BOARD, 1)).await.unwrap();
    let req = request("data", &["dev-x"], &sha, 7, &[&old]);
    refused(&s, &req, 400, "firmware only").await;

    let sha = s.admin.put_file(&new).await.unwrap();
    let req = request("nobase", &["dev-x"], &sha, 141, &[&"ab".repeat(32)]);
    refused(&s, &req, 404, "deltaFrom[0]").await;
}

/// A create that fails after the packed files were made (the store refuses the update)
/// deletes them with the uploads: nothing is left behind, and the retry works.
#[tokio::test]
async fn a_create_that_fails_after_packing_deletes_the_packed_files() {
    let mem = std::sync::Arc::new(ferrota_server::store::MemoryStore::new());
    let s = Mem::over(mem.clone());
    s.thing("dev-y").await;
    let new = bank((1, 1, 0), BOARD, 1);
    let sha = s.admin.put_file(&new).await.unwrap();
    let old = s.admin.put_file(&bank((1, 0, 0), BOARD, 1)).await.unwrap();
    mem.fail_next("create_ota_update");
    let req = request("late", &["dev-y"], &sha, 141, &[&old]);
    refused(&s, &req, 500, "").await;
    let sha = s.admin.put_file(&new).await.unwrap();
    let old = s.admin.put_file(&bank((1, 0, 0), BOARD, 1)).await.unwrap();
    let req = request("late", &["dev-y"], &sha, 141, &[&old]);
    let (st, v) = s.api("POST", "/api/ota-updates", Some(&req)).await;
    assert_eq!(st, 200, "{v}");
    // The new image, its packed copy and delta; the base stays an upload of its own.
    assert_eq!(s.stored_files().len(), 4, "{:?}", s.stored_files());
}

/// A bank whose code does not compress (every region filled to its signed size with generated
/// code) gets no packed copy: it would be larger than the image, which devices then fetch as
/// it is.
#[tokio::test]
async fn an_image_that_does_not_pack_smaller_gets_no_packed_copy() {
    let s = Mem::new();
    s.thing("dev-1").await;
    let record = VersionRecord {
        version: FirmwareVersion::new(1, 1, 0),
        security_counter: 1,
        hardware: HardwareId::new(BOARD).unwrap(),
        flags: 0,
    };
    let key = BootSigningKey::EcdsaP256(SigningKey::from_slice(&[7u8; 32]).unwrap());
    let full = ferrota_image::build::filled_bank(record, &key, 3).unwrap();
    let sha = s.admin.put_file(&full).await.unwrap();
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&request("rel-full", &["dev-1"], &sha, 141, &[])),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let stream = s
        .store
        .stream(v["streamId"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stream.files.len(), 1, "{:?}", stream.files);
    assert_eq!(stream.files[0].blob, sha);
}
