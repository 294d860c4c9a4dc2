//! Issue #20, the server's side: with trust set, every Jobs answer to a device carries a
//! timestamp signed for that thing at the services' clock, naming the metadata file
//! (fileType 142) of the job document sent, or none; without trust the answers are AWS's bytes.
//! OTA create checks a metadata file against `files[0]` and refuses a bad one storing nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::common;

use base64::Engine;
use common::*;
use ferrota_image::build::{BankBuilder, sample_build};
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};
use ferrota_manifest::build::{self, KeyFile, ManifestSpec};
use ferrota_manifest::{Role, TrustedRoot};
use ferrota_server::trust::{TrustService, TrustSetupError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BOARD: &str = "KIT_T2G-B-H_LITE";
const LIFETIME: u64 = 600;

fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).unwrap()
}

/// The test's keys: root keys 1..=3 (threshold 2), release 10 and 11, timestamp 20 and 21,
/// an attacker's 99.
struct Keys;

impl Keys {
    fn root(i: u8) -> SigningKey {
        key(i)
    }
    fn release(i: u8) -> SigningKey {
        key(10 + i)
    }
    fn timestamp(i: u8) -> SigningKey {
        key(20 + i)
    }
}

fn keyfile(k: &SigningKey, role: Role) -> KeyFile {
    KeyFile {
        roles: role as u8,
        key: *k.verifying_key(),
    }
}

/// Root `version` listing root keys 1..=3, release key `release` and timestamp key `ts`,
/// signed by root keys 1..=3.
fn root(version: u32, release: u8, ts: u8) -> Vec<u8> {
    let r: Vec<SigningKey> = (1..=3).map(Keys::root).collect();
    let mut keys: Vec<KeyFile> = r.iter().map(|k| keyfile(k, Role::Root)).collect();
    keys.push(keyfile(&Keys::release(release), Role::Release));
    keys.push(keyfile(&Keys::timestamp(ts), Role::Timestamp));
    let signers: Vec<&SigningKey> = r.iter().collect();
    build::root_doc(version, 1_700_000_000, &keys, 2, 0, &signers)
}

fn service(roots: Vec<Vec<u8>>, ts: u8) -> Arc<TrustService> {
    Arc::new(
        TrustService::new(
            Keys::timestamp(ts),
            roots,
            Duration::from_secs(LIFETIME),
            true,
        )
        .unwrap(),
    )
}

/// A bank image of `version` for `board`; `seed` changes the code, `code` its length.
fn bank(version: (u8, u8, u16), seed: u64, code: usize) -> Vec<u8> {
    let record = VersionRecord {
        version: FirmwareVersion::new(version.0, version.1, version.2),
        security_counter: 1,
        hardware: HardwareId::new(BOARD).unwrap(),
        flags: 0,
    };
    let mut b = BankBuilder::new(record);
    for region in [Region::Cm0p, Region::Cm7_0] {
        b.add(region, &sample_build(region, code, seed)).unwrap();
    }
    let key = BootSigningKey::EcdsaP256(SigningKey::from_slice(&[7u8; 32]).unwrap());
    b.finish(&key).unwrap()
}

/// The metadata file of `image`, sequence `seq`, signed by `signer`, with `roots` integrated.
fn bundle(image: &[u8], seq: u32, signer: &SigningKey, roots: &[Vec<u8>]) -> Vec<u8> {
    let spec = ManifestSpec::from_bank_image(image).unwrap();
    build::envelope(&spec, seq, 0, None, signer, roots)
}

fn file(name: &str, sha: &str, file_type: u8) -> Value {
    json!({
        "fileName": name,
        "fileType": file_type,
        "fileLocation": {"sha256": sha},
        "codeSigning": {"customCodeSigning": {
            "signature": {"inlineDocument": SIGNATURE},
            "certificateChain": {"certificateName": "signer.crt"}
        }},
    })
}

/// An OTA update of image `image_sha` (fileType 141) and the metadata files `metadata`.
fn request(id: &str, things: &[&str], image_sha: &str, metadata: &[&str]) -> Value {
    let mut files = vec![file("app.bin", image_sha, 141)];
    files.extend(metadata.iter().map(|m| file("app.suit", m, 142)));
    json!({
        "otaUpdateId": id,
        "targets": things.iter().map(|t| format!("thing/{t}")).collect::<Vec<_>>(),
        "files": files,
    })
}

fn sha_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// The `ferrotaTimestamp` of a Jobs answer, decoded and verified for `thing` against `root`.
fn stamp_of(v: &Value, root: &TrustedRoot, thing: &str) -> ferrota_manifest::Timestamp {
    let text = v["ferrotaTimestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("no ferrotaTimestamp in {v}"));
    assert!(!text.contains('='), "base64url without padding: {text}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap();
    ferrota_manifest::verify_timestamp(&bytes, root, thing).unwrap()
}

async fn next_get(d: &mut MemDevice) -> Value {
    let m = d
        .ask(
            format!("$aws/things/{}/jobs/$next/get", d.thing),
            r#"{"clientToken":"n"}"#,
        )
        .await;
    assert!(m.topic.ends_with("/accepted"), "{}", m.topic);
    serde_json::from_slice(&m.payload).unwrap()
}

#[tokio::test]
async fn every_jobs_answer_carries_a_timestamp_naming_the_metadata_file() {
    let s = Mem::new();
    for t in ["dev-1", "dev-2", "dev-idle"] {
        s.thing(t).await;
    }
    let roots = vec![root(1, 0, 0)];
    let trust = service(roots.clone(), 0);
    let anchor = TrustedRoot::from_anchor(&roots[0]).unwrap();
    s.services.set_trust(Some(trust));
    let image = bank((1, 1, 0), 1, 0x2000);
    let suit = bundle(&image, 6, &Keys::release(0), &[]);
    let image_sha = s.admin.put_file(&image).await.unwrap();
    let suit_sha = s.admin.put_file(&suit).await.unwrap();
    assert_eq!(suit_sha, sha_hex(&suit));

    // A device subscribed to notify-next hears of the job with a timestamp naming the file.
    let mut d1 = s.device("dev-1");
    d1.subscribe("$aws/things/dev-1/jobs/notify-next");
    let req = request("rel-1", &["dev-1", "dev-2"], &image_sha, &[&suit_sha]);
    let (st, v) = s.api("POST", "/api/ota-updates", Some(&req)).await;
    assert_eq!(st, 200, "{v}");
    let (topic, v) = d1.next_json().await;
    assert!(topic.ends_with("/notify-next"), "{topic}");
    let now = s.clock.now_secs();
    let ts = stamp_of(&v, &anchor, "dev-1");
    assert_eq!(ts.time, now);
    assert_eq!(ts.expires, now + LIFETIME);
    assert_eq!(ts.root_version, 1);
    assert_eq!(ts.metadata, Some(Sha256::digest(&suit).into()));
    assert!(v["execution"]["jobDocument"]["afr_ota"]["files"][1]["fileType"] == 142);

    // $next/get at a later time: signed at the services' clock, for the asking thing only.
    s.clock.advance(125);
    let v = next_get(&mut d1).await;
    let ts = stamp_of(&v, &anchor, "dev-1");
    assert_eq!(ts.time, now + 125);
    assert_eq!(ts.metadata, Some(Sha256::digest(&suit).into()));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v["ferrotaTimestamp"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        ferrota_manifest::verify_timestamp(&bytes, &anchor, "dev-2"),
        Err(ferrota_manifest::TrustError::OtherThing)
    );

    // start-next carries one too.
    let mut d2 = s.device("dev-2");
    let m = d2
        .ask(
            "$aws/things/dev-2/jobs/start-next",
            r#"{"clientToken":"s"}"#,
        )
        .await;
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["execution"]["status"], "IN_PROGRESS");
    let ts = stamp_of(&v, &anchor, "dev-2");
    assert_eq!(ts.metadata, Some(Sha256::digest(&suit).into()));

    // No job pending: still a timestamp (the device's clock keeps going), naming no file.
    let mut idle = s.device("dev-idle");
    let v = next_get(&mut idle).await;
    assert!(v.get("execution").is_none(), "{v}");
    let ts = stamp_of(&v, &anchor, "dev-idle");
    assert_eq!(ts.metadata, None);
    assert_eq!(ts.time, now + 125);
}

#[tokio::test]
async fn a_job_without_a_metadata_file_names_none() {
    let s = Mem::new();
    s.thing("dev-1").await;
    let roots = vec![root(1, 0, 0)];
    s.services.set_trust(Some(service(roots.clone(), 0)));
    let anchor = TrustedRoot::from_anchor(&roots[0]).unwrap();
    let image = bank((1, 1, 0), 1, 0x2000);
    let sha = s.admin.put_file(&image).await.unwrap();
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&request("plain", &["dev-1"], &sha, &[])),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mut d = s.device("dev-1");
    let v = next_get(&mut d).await;
    assert_eq!(v["execution"]["jobId"], "AFR_OTA-plain");
    assert_eq!(stamp_of(&v, &anchor, "dev-1").metadata, None);
}

async fn ask(d: &mut MemDevice) -> Msg {
    d.ask("$aws/things/dev-1/jobs/$next/get", r#"{"clientToken":"n"}"#)
        .await
}

/// Trust off (the default, and after `set_trust(None)`): no `ferrotaTimestamp`, and the
/// answer is byte for byte the one before trust was ever set.
#[tokio::test]
async fn without_trust_the_answers_are_aws_bytes() {
    let s = Mem::new();
    s.thing("dev-1").await;
    let image = bank((1, 1, 0), 1, 0x2000);
    let sha = s.admin.put_file(&image).await.unwrap();
    let suit = bundle(&image, 6, &Keys::release(0), &[]);
    // Trust off: a metadata file is only parsed, not verified (the server has no root).
    let suit_sha = s.admin.put_file(&suit).await.unwrap();
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&request("r", &["dev-1"], &sha, &[&suit_sha])),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mut d = s.device("dev-1");
    let plain = ask(&mut d).await.payload;
    let v: Value = serde_json::from_slice(&plain).unwrap();
    assert!(v.get("ferrotaTimestamp").is_none(), "{v}");
    assert!(!String::from_utf8_lossy(&plain).contains("ferrota"));

    s.services.set_trust(Some(service(vec![root(1, 0, 0)], 0)));
    let with = ask(&mut d).await.payload;
    let text = String::from_utf8_lossy(&with).into_owned();
    // The timestamp is the last key: the rest is the plain answer's bytes.
    let cut = text.find(",\"ferrotaTimestamp\":").unwrap();
    assert_eq!(format!("{}}}", &text[..cut]).as_bytes(), &plain[..]);

    s.services.set_trust(None);
    assert_eq!(ask(&mut d).await.payload, plain);
}

/// A refused create stores nothing: no update, no job, no stream; the uploads are deleted.
async fn refused(s: &Mem, req: &Value, needle: &str) {
    let before = s.admin.list_ota().await.unwrap().len();
    let (st, v) = s.api("POST", "/api/ota-updates", Some(req)).await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains(needle), "{needle:?} not in {v}");
    assert_eq!(s.admin.list_ota().await.unwrap().len(), before);
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
async fn create_refuses_metadata_that_does_not_verify_and_stores_nothing() {
    let s = Mem::new();
    s.thing("dev-1").await;
    s.services.set_trust(Some(service(vec![root(1, 0, 0)], 0)));
    let image = bank((1, 1, 0), 1, 0x2000);
    let put = |d: Vec<u8>| {
        let admin = s.admin.clone();
        async move { admin.put_file(&d).await.unwrap() }
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Another image's manifest: a different size...
        (
            "size",
            bundle(&bank((1, 1, 0), 1, 0x3000), 6, &Keys::release(0), &[]),
            "files[0] is",
        ),
        // ...and the same size, other bytes.
        (
            "digest",
            bundle(&bank((1, 1, 0), 2, 0x2000), 6, &Keys::release(0), &[]),
            "image SHA-256",
        ),
        // Not signed by a release key of the root: an attacker's key, the timestamp key.
        (
            "attacker",
            bundle(&image, 6, &key(99), &[]),
            "not signed by a release key",
        ),
        (
            "tskey",
            bundle(&image, 6, &Keys::timestamp(0), &[]),
            "not signed by a release key",
        ),
        ("garbage", vec![0xa5; 300], "not a Ferrota metadata file"),
        ("big", vec![0xa5; 5000], "at most 4096"),
    ];
    for (id, suit, needle) in cases {
        let image_sha = put(image.clone()).await;
        let suit_sha = put(suit).await;
        let req = request(id, &["dev-1"], &image_sha, &[&suit_sha]);
        refused(&s, &req, needle).await;
    }
    // Two metadata files; the metadata file as files[0].
    let image_sha = put(image.clone()).await;
    let a = put(bundle(&image, 6, &Keys::release(0), &[])).await;
    let b = put(bundle(&image, 7, &Keys::release(0), &[])).await;
    refused(
        &s,
        &request("two", &["dev-1"], &image_sha, &[&a, &b]),
        "exactly one",
    )
    .await;
    let a = put(bundle(&image, 6, &Keys::release(0), &[])).await;
    let req = json!({"otaUpdateId": "first", "targets": ["thing/dev-1"],
        "files": [file("app.suit", &a, 142)]});
    refused(&s, &req, "put the image first").await;

    // The genuine one is accepted, and the state is what one create makes.
    let image_sha = put(image.clone()).await;
    let suit_sha = put(bundle(&image, 6, &Keys::release(0), &[])).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&request("good", &["dev-1"], &image_sha, &[&suit_sha])),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.admin.list_ota().await.unwrap().len(), 1);
}

/// `check_bundles = false`: the server timestamps but leaves the checks to the devices (the
/// lab's compromised-server attacks create such jobs).
#[tokio::test]
async fn check_bundles_off_lets_any_envelope_through() {
    let s = Mem::new();
    s.thing("dev-1").await;
    let t = TrustService::new(
        Keys::timestamp(0),
        vec![root(1, 0, 0)],
        Duration::from_secs(LIFETIME),
        false,
    )
    .unwrap();
    s.services.set_trust(Some(Arc::new(t)));
    let image = bank((1, 1, 0), 1, 0x2000);
    let image_sha = s.admin.put_file(&image).await.unwrap();
    let suit = bundle(&image, 6, &key(99), &[]);
    let suit_sha = s.admin.put_file(&suit).await.unwrap();
    let (st, v) = s
        .api(
            "POST",
            "/api/ota-updates",
            Some(&request("evil", &["dev-1"], &image_sha, &[&suit_sha])),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// Rotations: the service walks the chain as a device does, timestamps name the newest root,
/// and a bundle must walk from root 1 with the roots it carries.
#[tokio::test]
async fn rotated_roots_are_walked_and_bundles_must_carry_them() {
    // Root 2 rotates the release key (10 → 11) and the timestamp key (20 → 21).
    let roots = vec![root(1, 0, 0), root(2, 1, 1)];
    let t = service(roots.clone(), 1);
    assert_eq!(t.root_version(), 2);
    let v2 = ferrota_manifest::walk_roots(
        &TrustedRoot::from_anchor(&roots[0]).unwrap(),
        std::iter::once(roots[1].as_slice()),
    )
    .unwrap();
    let text = t.timestamp("dev-1", 1_800_000_000, None);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap();
    let ts = ferrota_manifest::verify_timestamp(&bytes, &v2, "dev-1").unwrap();
    assert_eq!((ts.root_version, ts.time), (2, 1_800_000_000));

    let image = bank((1, 2, 0), 3, 0x2000);
    let sha: [u8; 32] = Sha256::digest(&image).into();
    let len = image.len() as u64;
    // Signed by the new release key with root 2 integrated: accepted.
    let good = bundle(&image, 8, &Keys::release(1), &roots[1..]);
    t.check_bundle(&good, &sha, len).unwrap();
    // Without root 2 a device on root 1 cannot know the new key.
    let e = t
        .check_bundle(&bundle(&image, 8, &Keys::release(1), &[]), &sha, len)
        .unwrap_err();
    assert!(e.contains("root 1"), "{e}");
    // The old release key left the root: refused even with root 2 carried.
    let e = t
        .check_bundle(
            &bundle(&image, 8, &Keys::release(0), &roots[1..]),
            &sha,
            len,
        )
        .unwrap_err();
    assert!(e.contains("not signed by a release key of root 2"), "{e}");
    // The old timestamp key is no timestamp key of root 2.
    let e = TrustService::new(
        Keys::timestamp(0),
        roots.clone(),
        Duration::from_secs(60),
        true,
    )
    .unwrap_err();
    assert!(
        matches!(e, TrustSetupError::NotTimestampKey { version: 2, .. }),
        "{e}"
    );
}

#[test]
fn a_bad_chain_or_key_is_refused_at_setup() {
    let d = Duration::from_secs(60);
    assert!(matches!(
        TrustService::new(Keys::timestamp(0), vec![], d, true),
        Err(TrustSetupError::NoRoots)
    ));
    // A release key is no timestamp key.
    let e = TrustService::new(Keys::release(0), vec![root(1, 0, 0)], d, true).unwrap_err();
    assert!(
        e.to_string().contains("not a timestamp key of root 1"),
        "{e}"
    );
    // Root 3 after root 1: a version skip, naming the document.
    let e = TrustService::new(
        Keys::timestamp(0),
        vec![root(1, 0, 0), root(3, 0, 0)],
        d,
        true,
    )
    .unwrap_err();
    assert!(matches!(e, TrustSetupError::Root { index: 2, .. }), "{e}");
    // A truncated anchor.
    let mut bad = root(1, 0, 0);
    bad.truncate(bad.len() - 3);
    assert!(matches!(
        TrustService::new(Keys::timestamp(0), vec![bad], d, true),
        Err(TrustSetupError::Root { index: 1, .. })
    ));
    assert!(matches!(
        TrustService::new(
            Keys::timestamp(0),
            vec![root(1, 0, 0)],
            Duration::ZERO,
            true
        ),
        Err(TrustSetupError::Lifetime(0))
    ));
}

#[test]
fn load_reads_a_trust_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = Duration::from_secs(60);
    // Nothing there.
    let e = TrustService::load(dir.path(), d, true).unwrap_err();
    assert!(matches!(e, TrustSetupError::NoRoots), "{e}");
    std::fs::write(dir.path().join("root-1.cbor"), root(1, 0, 0)).unwrap();
    std::fs::write(dir.path().join("root-2.cbor"), root(2, 0, 1)).unwrap();
    let e = TrustService::load(dir.path(), d, true).unwrap_err();
    assert!(matches!(e, TrustSetupError::NoTimestampKey(_, 2)), "{e}");
    let pem = |k: &SigningKey| {
        use ferrota_image::p256::pkcs8::EncodePrivateKey;
        k.to_pkcs8_pem(Default::default()).unwrap().to_string()
    };
    // The old timestamp key is skipped; the one of root 2 is taken.
    std::fs::write(dir.path().join("timestamp-1.pem"), pem(&Keys::timestamp(0))).unwrap();
    std::fs::write(dir.path().join("timestamp-2.pem"), pem(&Keys::timestamp(1))).unwrap();
    std::fs::write(dir.path().join("release-1.pem"), "not even PEM").unwrap();
    let t = TrustService::load(dir.path(), d, true).unwrap();
    assert_eq!(t.root_version(), 2);
    assert_eq!(t.roots().len(), 2);
    let dbg = format!("{t:?}");
    assert!(!dbg.contains("SigningKey"), "{dbg}");
}
