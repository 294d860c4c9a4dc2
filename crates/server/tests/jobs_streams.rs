//! Jobs and Streams flows in the spec's request shapes (encoded with ferrota-proto), plus
//! restarts and malformed input, in memory: a [`MemDevice`] publishes into the real services
//! and receives what they send, routed as the broker routes it (replies to the requester,
//! the rest to subscribers). No socket or TLS: the transport is tested end to end in
//! `identity.rs` (a Jobs request and its answer over mutual TLS), `revocation.rs` and
//! `limits.rs`, and the MQTT session over in-memory pipes in `session.rs`.

use crate::common;

use common::*;
use ferrota_proto::job::JobDocument;
use ferrota_proto::jobs_api::JobsRejection;
use ferrota_proto::stream::StreamErrorCode;
use ferrota_proto::{BlockSet, DataBlock, JobMessage, JobStatus, StreamRejection, StreamRequest};
use ferrota_server::admin::*;

fn firmware(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Downloads file 0 of `stream` with the official request shape (n blocks a request).
async fn download(
    c: &mut MemDevice,
    thing: &str,
    stream: &str,
    size: u32,
    l: u32,
    n: u32,
) -> Vec<u8> {
    let blocks = size.div_ceil(l);
    let mut have = BlockSet::<1536>::all_missing(blocks).unwrap();
    let mut out = vec![0u8; size as usize];
    let get = format!("$aws/things/{thing}/streams/{stream}/get/cbor");
    while !have.is_complete() {
        let req = StreamRequest::official(0, l, have.as_bytes(), n);
        let mut buf = vec![0u8; 2048];
        let len = req.encode(&mut buf).unwrap();
        c.publish(&get, buf[..len].to_vec()).await;
        let want = have.missing_count().min(n);
        for _ in 0..want {
            let p = c.next().await;
            assert_eq!(
                p.topic,
                format!("$aws/things/{thing}/streams/{stream}/data/cbor")
            );
            let b = DataBlock::decode(&p.payload).unwrap();
            assert_eq!(b.client_token, Some("rdy"));
            let off = (b.block_id * l) as usize;
            out[off..off + b.payload.len()].copy_from_slice(b.payload);
            assert!(
                have.mark_received(b.block_id).unwrap(),
                "duplicate block {}",
                b.block_id
            );
        }
    }
    out
}

#[tokio::test]
async fn ota_flow_jobs_and_streams() {
    let s = Mem::new();
    s.thing_in("dev-1", &["fleet"]).await;
    let mut c = s.device("dev-1");
    c.subscribe("$aws/things/dev-1/jobs/notify-next");
    let data = firmware(25 * 4096 - 100);
    let d = s.data_ota("up1", "thinggroup/fleet", &data).await;
    assert_eq!(d.job_id, "AFR_OTA-up1");
    assert_eq!(d.stream_id.len(), 44);

    // notify-next arrives once, with the job.
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-1/jobs/notify-next");
    let m = JobMessage::parse(&p.payload).unwrap();
    let e = m.execution.unwrap();
    assert_eq!(e.job_id, "AFR_OTA-up1");
    assert_eq!(e.status, Some(JobStatus::Queued));

    // $next/get answered to the requester without a subscription; token echoed.
    c.publish(
        "$aws/things/dev-1/jobs/$next/get",
        r#"{"clientToken":":dev-1"}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-1/jobs/$next/get/accepted");
    let m = JobMessage::parse(&p.payload).unwrap();
    assert_eq!(m.client_token.unwrap().raw(), ":dev-1");
    let e = m.execution.unwrap();
    let JobDocument::Ota(job) = e.document().unwrap() else {
        panic!("not an OTA job")
    };
    assert_eq!(job.file.file_size as usize, data.len());
    assert_eq!(job.file.file_id, 0);
    assert_eq!(job.file.file_type, Some(DATA_FILE_TYPE));
    let stream = job.stream_name.unwrap().to_string();
    assert_eq!(stream, d.stream_id);

    // IN_PROGRESS with the exact §4.4 body (no token, no expectedVersion).
    c.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
        r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"0/25"}}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(
        p.topic,
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update/accepted"
    );

    // Download with the official request (4 KB, 8 blocks a request).
    c.subscribe(&format!("$aws/things/dev-1/streams/{stream}/data/cbor"));
    let got = download(&mut c, "dev-1", &stream, data.len() as u32, 4096, 8).await;
    assert_eq!(got, data);

    // The spec's test vector request (25 blocks, n = 8) yields blocks 0..8.
    let vector = [
        0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19, 0x10, 0x00,
        0x61, 0x6f, 0x00, 0x61, 0x62, 0x44, 0xff, 0xff, 0xff, 0x01, 0x61, 0x6e, 0x08,
    ];
    c.publish(
        format!("$aws/things/dev-1/streams/{stream}/get/cbor"),
        vector.to_vec(),
    )
    .await;
    for i in 0..8 {
        let b = c.next().await;
        assert_eq!(DataBlock::decode(&b.payload).unwrap().block_id, i);
    }
    // Bitmap with offset: blocks 20, 21, 24 (AWS doc example, clipped to the file).
    let r = StreamRequest {
        client_token: None,
        stream_version: Some(1),
        file_id: 0,
        block_size: 4096,
        offset: Some(20),
        bitmap: Some(&[0x13, 0x00, 0x80]),
        num_blocks: None,
    };
    let mut buf = [0u8; 64];
    let n = r.encode(&mut buf).unwrap();
    c.publish(
        format!("$aws/things/dev-1/streams/{stream}/get/cbor"),
        buf[..n].to_vec(),
    )
    .await;
    let ids: Vec<u32> = [c.next().await, c.next().await, c.next().await]
        .iter()
        .map(|p| DataBlock::decode(&p.payload).unwrap().block_id)
        .collect();
    assert_eq!(ids, [20, 21, 24]);

    // Errors go to rejected/cbor only for subscribers, never to data/cbor.
    c.subscribe(&format!("$aws/things/dev-1/streams/{stream}/rejected/cbor"));
    let bad = StreamRequest {
        block_size: 100,
        ..r
    };
    let n = bad.encode(&mut buf).unwrap();
    c.publish(
        format!("$aws/things/dev-1/streams/{stream}/get/cbor"),
        buf[..n].to_vec(),
    )
    .await;
    let p = c.next().await;
    assert!(p.topic.ends_with("/rejected/cbor"), "{}", p.topic);
    assert_eq!(
        StreamRejection::decode(&p.payload).unwrap().error_code(),
        Some(StreamErrorCode::BlockSizeOutOfBounds)
    );
    for (req, code) in [
        (
            StreamRequest { file_id: 7, ..r },
            StreamErrorCode::ResourceNotFound,
        ),
        (
            StreamRequest {
                stream_version: Some(9),
                ..r
            },
            StreamErrorCode::VersionMismatch,
        ),
        (
            StreamRequest {
                offset: Some(100_000),
                ..r
            },
            StreamErrorCode::OffsetOutOfBounds,
        ),
    ] {
        let n = req.encode(&mut buf).unwrap();
        c.publish(
            format!("$aws/things/dev-1/streams/{stream}/get/cbor"),
            buf[..n].to_vec(),
        )
        .await;
        let p = c.next().await;
        assert_eq!(
            StreamRejection::decode(&p.payload).unwrap().error_code(),
            Some(code)
        );
    }
    c.publish(
        format!("$aws/things/dev-1/streams/{stream}/get/cbor"),
        vec![0xff, 0x00],
    )
    .await;
    let p = c.next().await;
    assert_eq!(
        StreamRejection::decode(&p.payload).unwrap().error_code(),
        Some(StreamErrorCode::InvalidCbor)
    );

    // JSON variant.
    c.subscribe(&format!("$aws/things/dev-1/streams/{stream}/data/json"));
    c.publish(
        format!("$aws/things/dev-1/streams/{stream}/get/json"),
        r#"{"c":"j","f":0,"l":1024,"o":0,"n":2}"#,
    )
    .await;
    for i in 0..2 {
        let p = c.next().await;
        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(v["i"], i);
        assert_eq!(v["c"], "j");
    }

    // expectedVersion mismatch → VersionMismatch with executionState; token echoed.
    c.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
        r#"{"status":"IN_PROGRESS","expectedVersion":1,"clientToken":"t1"}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(
        p.topic,
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update/rejected"
    );
    let r = JobsRejection::parse(&p.payload).unwrap();
    assert_eq!(r.code.raw(), "VersionMismatch");
    assert_eq!(r.client_token.unwrap().raw(), "t1");
    assert!(r.execution_state.is_some());

    // Right version; includeJobExecutionState.
    c.publish("$aws/things/dev-1/jobs/AFR_OTA-up1/update", r#"{"status":"IN_PROGRESS","expectedVersion":2,"statusDetails":{"self_test":"ready","updatedBy":"0x00090002"},"includeJobExecutionState":true,"clientToken":"t2"}"#).await;
    let p = c.next().await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["executionState"]["versionNumber"], 3);
    assert_eq!(v["clientToken"], "t2");

    // describe by id and start-next and get pending.
    c.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/get",
        r#"{"clientToken":"d"}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-1/jobs/AFR_OTA-up1/get/accepted");
    let m = JobMessage::parse(&p.payload).unwrap();
    assert!(m.execution.unwrap().status_details.in_self_test());
    c.publish("$aws/things/dev-1/jobs/get", "").await;
    let p = c.next().await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["inProgressJobs"][0]["jobId"], "AFR_OTA-up1");
    c.publish("$aws/things/dev-1/jobs/nope/get", "{}").await;
    let p = c.next().await;
    assert_eq!(
        JobsRejection::parse(&p.payload).unwrap().code.raw(),
        "ResourceNotFound"
    );
    c.publish("$aws/things/dev-1/jobs//update", r#"{"status":"FAILED"}"#)
        .await;
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-1/jobs//update/rejected");
    assert_eq!(
        JobsRejection::parse(&p.payload).unwrap().code.raw(),
        "InvalidTopic"
    );
    c.publish("$aws/things/dev-1/jobs/AFR_OTA-up1/update", "{not json")
        .await;
    let p = c.next().await;
    assert_eq!(
        JobsRejection::parse(&p.payload).unwrap().code.raw(),
        "InvalidJson"
    );

    // SUCCEEDED → accepted, then notify-next without execution; later updates are refused.
    c.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
        r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted v0.9.2"}}"#,
    )
    .await;
    let p = c.next().await;
    assert!(p.topic.ends_with("/update/accepted"));
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-1/jobs/notify-next");
    assert!(JobMessage::parse(&p.payload).unwrap().execution.is_none());
    c.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
        r#"{"status":"FAILED"}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(
        JobsRejection::parse(&p.payload).unwrap().code.raw(),
        "InvalidStateTransition"
    );

    let d = s.admin.describe_ota("up1").await.unwrap();
    assert_eq!(d.executions[0].status, "SUCCEEDED");
    let h = s.admin.execution_history("up1", "dev-1").await.unwrap();
    let h: Vec<_> = h.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(h, ["QUEUED", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]);
}

#[tokio::test]
async fn restart_between_steps_loses_nothing() {
    // A restart is the store closed and opened again: SQLite in a directory.
    let s = Mem::open(std::sync::Arc::new(tempfile::tempdir().unwrap())).await;
    s.thing("dev-2").await;
    let data = firmware(5000);
    s.data_ota("up2", "thing/dev-2", &data).await;
    let mut c = s.device("dev-2");
    c.publish(
        "$aws/things/dev-2/jobs/AFR_OTA-up2/update",
        r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready"}}"#,
    )
    .await;
    let p = c.next().await;
    assert!(p.topic.ends_with("/update/accepted"));
    let dir = s.close().await;
    let s = Mem::open(dir).await;
    let mut c = s.device("dev-2");
    c.publish("$aws/things/dev-2/jobs/$next/get", r#"{"clientToken":"x"}"#)
        .await;
    let p = c.next().await;
    let e = JobMessage::parse(&p.payload).unwrap().execution.unwrap();
    assert_eq!(e.status, Some(JobStatus::InProgress));
    assert_eq!(e.version_number, Some(2));
    assert!(e.status_details.in_self_test());
    let JobDocument::Ota(job) = e.document().unwrap() else {
        panic!()
    };
    let stream = job.stream_name.unwrap().to_string();
    c.subscribe(&format!("$aws/things/dev-2/streams/{stream}/data/cbor"));
    assert_eq!(
        download(&mut c, "dev-2", &stream, 5000, 1024, 3).await,
        data
    );
    // Cancel with force: the execution becomes CANCELED and the device is told.
    c.subscribe("$aws/things/dev-2/jobs/notify-next");
    let d = s.admin.cancel_ota("up2", true).await.unwrap();
    assert_eq!(d.executions[0].status, "CANCELED");
    let p = c.next().await;
    assert!(JobMessage::parse(&p.payload).unwrap().execution.is_none());
}

#[tokio::test]
async fn large_blocks_and_several_files_limits() {
    let s = Mem::new();
    s.thing("dev-3").await;
    let data = firmware(300 * 1024 + 7);
    s.data_ota("up3", "thing/dev-3", &data).await;
    let mut c = s.device("dev-3");
    c.publish("$aws/things/dev-3/jobs/$next/get", "{}").await;
    let p = c.next().await;
    let e = JobMessage::parse(&p.payload).unwrap().execution.unwrap();
    let JobDocument::Ota(job) = e.document().unwrap() else {
        panic!()
    };
    let stream = job.stream_name.unwrap().to_string();
    c.subscribe(&format!("$aws/things/dev-3/streams/{stream}/data/cbor"));
    // 128 KB blocks: one block per request (128 KB cap), whatever n says.
    assert_eq!(
        download(&mut c, "dev-3", &stream, data.len() as u32, 128 * 1024, 1).await,
        data
    );
    assert_eq!(
        download(&mut c, "dev-3", &stream, data.len() as u32, 256, 64).await,
        data
    );
}

#[tokio::test]
async fn no_notify_next_while_the_next_job_stays_the_same() {
    let s = Mem::new();
    s.thing("dev-4").await;
    let mut c = s.device("dev-4");
    c.subscribe("$aws/things/dev-4/jobs/notify-next");
    s.data_ota("first", "thing/dev-4", &firmware(3000)).await;
    let p = c.next().await;
    assert_eq!(
        JobMessage::parse(&p.payload)
            .unwrap()
            .execution
            .unwrap()
            .job_id,
        "AFR_OTA-first"
    );
    for body in [
        r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/3"}}"#,
        r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"2/3"}}"#,
    ] {
        c.publish("$aws/things/dev-4/jobs/AFR_OTA-first/update", body)
            .await;
        assert!(c.next().await.topic.ends_with("/update/accepted"));
    }
    // A second job queued behind the running one: the next job is unchanged, no notification.
    s.data_ota("second", "thing/dev-4", &firmware(2000)).await;
    c.publish("$aws/things/dev-4/jobs/$next/get", "{}").await;
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-4/jobs/$next/get/accepted");
    assert_eq!(
        JobMessage::parse(&p.payload)
            .unwrap()
            .execution
            .unwrap()
            .job_id,
        "AFR_OTA-first"
    );
    // The first finishes: now notify-next names the second.
    c.publish(
        "$aws/things/dev-4/jobs/AFR_OTA-first/update",
        r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e0: 0x00000000"}}"#,
    )
    .await;
    assert!(c.next().await.topic.ends_with("/update/accepted"));
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-4/jobs/notify-next");
    assert_eq!(
        JobMessage::parse(&p.payload)
            .unwrap()
            .execution
            .unwrap()
            .job_id,
        "AFR_OTA-second"
    );
    // start-next moves it to IN_PROGRESS.
    c.publish(
        "$aws/things/dev-4/jobs/start-next",
        r#"{"clientToken":"s","statusDetails":{"a":"b"}}"#,
    )
    .await;
    let p = c.next().await;
    assert_eq!(p.topic, "$aws/things/dev-4/jobs/start-next/accepted");
    let e = JobMessage::parse(&p.payload).unwrap().execution.unwrap();
    assert_eq!(e.status, Some(JobStatus::InProgress));
    assert_eq!(e.version_number, Some(2));
}

#[tokio::test]
async fn several_files_per_stream() {
    let s = Mem::new();
    s.thing("dev-5").await;
    let (f0, f1) = (
        firmware(5000),
        firmware(9000).into_iter().rev().collect::<Vec<u8>>(),
    );
    let (sha0, sha1) = (
        s.admin.put_file(&f0).await.unwrap(),
        s.admin.put_file(&f1).await.unwrap(),
    );
    let d = s
        .admin
        .create_ota(
            &CreateOtaUpdate::new("two")
                .thing("dev-5")
                .file(data_file("/a.bin", sha0))
                .file(data_file("/b.bin", sha1)),
        )
        .await
        .unwrap();
    let mut c = s.device("dev-5");
    c.publish("$aws/things/dev-5/jobs/$next/get", "{}").await;
    let p = c.next().await;
    let e = JobMessage::parse(&p.payload).unwrap().execution.unwrap();
    let JobDocument::Ota(job) = e.document().unwrap() else {
        panic!()
    };
    assert_eq!(job.file_count(), 2);
    let second = job.files().nth(1).unwrap();
    assert_eq!((second.file_id, second.file_size), (1, 9000));
    let stream = d.stream_id;
    c.subscribe(&format!("$aws/things/dev-5/streams/{stream}/data/cbor"));
    // File 1 with a plain (offset, n) request.
    let mut got = Vec::new();
    for o in [0u32, 4] {
        let r = StreamRequest {
            client_token: Some("x"),
            stream_version: None,
            file_id: 1,
            block_size: 1024,
            offset: Some(o),
            bitmap: None,
            num_blocks: Some(4),
        };
        let mut buf = [0u8; 64];
        let n = r.encode(&mut buf).unwrap();
        c.publish(
            format!("$aws/things/dev-5/streams/{stream}/get/cbor"),
            buf[..n].to_vec(),
        )
        .await;
        for _ in 0..4 {
            let p = c.next().await;
            let b = DataBlock::decode(&p.payload).unwrap();
            assert_eq!(b.file_id, 1);
            got.extend_from_slice(b.payload);
        }
    }
    let r = StreamRequest {
        client_token: None,
        stream_version: None,
        file_id: 1,
        block_size: 1024,
        offset: Some(8),
        bitmap: None,
        num_blocks: None,
    };
    let mut buf = [0u8; 64];
    let n = r.encode(&mut buf).unwrap();
    c.publish(
        format!("$aws/things/dev-5/streams/{stream}/get/cbor"),
        buf[..n].to_vec(),
    )
    .await;
    let p = c.next().await;
    let b = DataBlock::decode(&p.payload).unwrap();
    assert_eq!((b.block_id, b.payload.len()), (8, 9000 - 8 * 1024));
    got.extend_from_slice(b.payload);
    assert_eq!(got, f1);
    // DescribeStream (JSON).
    c.subscribe(&format!(
        "$aws/things/dev-5/streams/{stream}/description/json"
    ));
    c.publish(
        format!("$aws/things/dev-5/streams/{stream}/describe/json"),
        r#"{"c":"d"}"#,
    )
    .await;
    let p = c.next().await;
    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(v["r"][1]["z"], 9000);
    assert_eq!(v["c"], "d");
}

/// Sends one GetStream request for `n` blocks of `l` bytes from block 0 of file 0.
async fn get_blocks(c: &mut MemDevice, thing: &str, stream: &str, l: u32, n: u32) {
    let r = StreamRequest {
        client_token: Some("k"),
        stream_version: None,
        file_id: 0,
        block_size: l,
        offset: Some(0),
        bitmap: None,
        num_blocks: Some(n),
    };
    let mut buf = [0u8; 64];
    let len = r.encode(&mut buf).unwrap();
    c.publish(
        format!("$aws/things/{thing}/streams/{stream}/get/cbor"),
        buf[..len].to_vec(),
    )
    .await;
}

/// Reads what one request produced until its rejection: every data block must hold the stored
/// bytes (wrong bytes are never served); returns the rejection's code and the blocks seen.
async fn until_rejected(c: &mut MemDevice, data: &[u8], l: usize) -> (StreamErrorCode, usize) {
    let mut blocks = 0;
    loop {
        let p = c.next().await;
        if p.topic.ends_with("/rejected/cbor") {
            let r = StreamRejection::decode(&p.payload).unwrap();
            return (r.error_code().expect("a known code"), blocks);
        }
        let b = DataBlock::decode(&p.payload).unwrap();
        let off = b.block_id as usize * l;
        assert_eq!(
            b.payload,
            &data[off..off + b.payload.len()],
            "block {} served wrong bytes",
            b.block_id
        );
        blocks += 1;
    }
}

/// Issue 13 item 3: a firmware file changed, truncated or deleted on disk is never served; the
/// device gets ResourceNotFound at once, the operator an errorInfo on the OTA update; an upload
/// of the same content restores it.
#[tokio::test]
async fn a_damaged_firmware_file_is_never_served_and_is_reported() {
    let s = Mem::new();
    s.thing("dev-9").await;
    let data = firmware(40_000);
    let d = s.data_ota("dmg", "thing/dev-9", &data).await;
    assert!(d.error_info.is_none());
    let stream = d.stream_id.clone();
    let path = s.file_path(&s.admin.put_file(&data).await.unwrap());
    let mut c = s.device("dev-9");
    for t in ["data", "rejected"] {
        c.subscribe(&format!("$aws/things/dev-9/streams/{stream}/{t}/cbor"));
    }
    // Whole: served (and the file is now open and checked).
    let l = 4096u32;
    let blocks = 40_000u32.div_ceil(l);
    assert_eq!(
        download(&mut c, "dev-9", &stream, 40_000, l, blocks).await,
        data
    );

    // One byte flipped in place, in block 5: blocks 0..5 are served, then the rejection.
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[data[5 * 4096 + 7] ^ 1], 5 * 4096 + 7)
        .unwrap();
    get_blocks(&mut c, "dev-9", &stream, l, blocks).await;
    let (code, served) = until_rejected(&mut c, &data, l as usize).await;
    assert_eq!(code, StreamErrorCode::ResourceNotFound);
    assert!(served <= 5, "{served} blocks before the damaged one");
    let d = s.admin.describe_ota("dmg").await.unwrap();
    let e = d.error_info.expect("errorInfo recorded");
    assert_eq!(e.code, "FirmwareFileDamaged");
    assert!(e.message.contains(&stream), "{}", e.message);
    // Listed too, and over the HTTP API.
    let (status, body) = s.api("GET", "/api/ota-updates/dmg", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errorInfo"]["code"], "FirmwareFileDamaged", "{body}");
    // Every later request is refused at once, before any block.
    get_blocks(&mut c, "dev-9", &stream, l, 2).await;
    assert_eq!(
        until_rejected(&mut c, &data, l as usize).await,
        (StreamErrorCode::ResourceNotFound, 0)
    );

    // Restored by uploading the same content: served again.
    s.admin.put_file(&data).await.unwrap();
    assert_eq!(
        download(&mut c, "dev-9", &stream, 40_000, l, blocks).await,
        data
    );

    // Truncated (the restored file is a new inode under the name): refused.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(20_000)
        .unwrap();
    get_blocks(&mut c, "dev-9", &stream, l, blocks).await;
    let (code, served) = until_rejected(&mut c, &data, l as usize).await;
    assert_eq!(code, StreamErrorCode::ResourceNotFound);
    assert!(served <= 5, "{served}");

    // Deleted: refused (the errorInfo first recorded is kept).
    s.admin.put_file(&data).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    get_blocks(&mut c, "dev-9", &stream, l, 2).await;
    assert_eq!(
        until_rejected(&mut c, &data, l as usize).await,
        (StreamErrorCode::ResourceNotFound, 0)
    );
    drop(c);
}
