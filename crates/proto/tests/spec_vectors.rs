//! Every captured payload and test vector of `shared/spec/aws-iot-ota.md`, byte for byte.

use ferrota_proto::bitmap::{BitmapView, BlockSet, encode_blocks};
use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocument, JobDocumentOut, JobMessage, JobMessageOut, JobStatus,
    OtaJobOut, Protocols,
};
use ferrota_proto::jobs_api::{client_token, encode_client_token_request};
use ferrota_proto::status::{AppVersion, OtaStatus};
use ferrota_proto::stream::{DataBlock, StreamRequest};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};

const SIG: &str = "MEUCIQCUhVsvXNtjLw7zwZSOKzxga9yWAiBtZXNzYWdlIGZvciB0ZXN0cw==";

fn compact(s: &str) -> String {
    // The spec prints the documents across lines; the wire form is compact.
    s.split('\n').map(str::trim_start).collect()
}

fn fresh_job_text() -> String {
    compact(&format!(
        r#"{{"timestamp":1795635717,"clientToken":":test-thing",
 "execution":{{"jobId":"AFR_OTA-local-job-1","status":"QUEUED",
   "queuedAt":1795635657,"lastUpdatedAt":1795635717,"versionNumber":1,"executionNumber":1,
   "jobDocument":{{"afr_ota":{{"protocols":["MQTT"],"streamname":"AFR_OTA-local-stream-1",
     "files":[{{"filepath":"/ota/received.bin","filesize":102400,"fileid":0,
               "certfile":"signer.crt",
               "sig-sha256-ecdsa":"{SIG}"}}]}}}}}}}}"#
    ))
}

const FILES: [FileOut<'static>; 1] = [FileOut {
    file_path: Some("/ota/received.bin"),
    file_size: 102400,
    file_id: 0,
    cert_file: Some("signer.crt"),
    file_type: None,
    attr: None,
    update_data_url: None,
    auth_scheme: None,
    signature: Some(("sig-sha256-ecdsa", SIG)),
    packed: None,
}];

fn ota_out() -> OtaJobOut<'static> {
    OtaJobOut {
        protocols: Protocols::MQTT,
        stream_name: Some("AFR_OTA-local-stream-1"),
        files: &FILES,
    }
}

#[test]
fn fresh_job_document_encodes_byte_for_byte() {
    let msg = JobMessageOut {
        timestamp: 1795635717,
        client_token: Some(":test-thing"),
        execution: Some(ExecutionOut {
            job_id: "AFR_OTA-local-job-1",
            thing_name: None,
            status: JobStatus::Queued,
            status_details: &[],
            queued_at: 1795635657,
            started_at: None,
            last_updated_at: 1795635717,
            version_number: 1,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(ota_out()),
        }),
        ferrota_timestamp: None,
    };
    let mut buf = [0u8; 1024];
    assert_eq!(msg.encode(&mut buf).unwrap(), fresh_job_text());
}

#[test]
fn fresh_job_document_decodes() {
    let text = fresh_job_text();
    let msg = JobMessage::parse(text.as_bytes()).unwrap();
    assert_eq!(msg.timestamp, Some(1795635717));
    assert_eq!(msg.client_token.unwrap().raw(), ":test-thing");
    let ex = msg.execution.unwrap();
    assert_eq!(ex.job_id, "AFR_OTA-local-job-1");
    assert_eq!(ex.status, Some(JobStatus::Queued));
    assert_eq!(ex.queued_at, Some(1795635657));
    assert_eq!(ex.last_updated_at, Some(1795635717));
    assert_eq!(ex.version_number, Some(1));
    assert_eq!(ex.execution_number, Some(1));
    assert!(!ex.status_details.in_self_test());
    let JobDocument::Ota(job) = ex.document().unwrap() else {
        panic!("not an OTA job")
    };
    assert_eq!(job.protocols, Protocols::MQTT);
    assert_eq!(job.stream_name, Some("AFR_OTA-local-stream-1"));
    assert_eq!(job.file_count(), 1);
    let f = job.file;
    assert_eq!(f.file_path.unwrap().raw(), "/ota/received.bin");
    assert_eq!(f.file_size, 102400);
    assert_eq!(f.file_id, 0);
    assert_eq!(f.cert_file.unwrap().raw(), "signer.crt");
    let sig = f.signature.unwrap();
    assert_eq!(sig.key.raw(), "sig-sha256-ecdsa");
    assert_eq!(sig.value.raw(), SIG);
    assert_eq!(f.signature_for("sig-sha256-ecdsa").unwrap().raw(), SIG);
    assert_eq!(f.file_type, None);
    // The spec's own line breaks and indentation parse too.
    let pretty = format!(
        "{{\"timestamp\":1795635717,\"clientToken\":\":test-thing\",\n \"execution\":{}",
        &text[text.find("\"execution\":").unwrap() + 12..]
    );
    assert_eq!(JobMessage::parse(pretty.as_bytes()).unwrap(), msg);
}

#[test]
fn self_test_job_document_round_trips() {
    let text = fresh_job_text()
        .replace("1795635717,\"clientToken", "1795635753,\"clientToken")
        .replace(
            "\"status\":\"QUEUED\",",
            "\"status\":\"IN_PROGRESS\",\"statusDetails\":{\"self_test\":\"ready\",\"updatedBy\":\"0x00090002\"},",
        )
        .replace("\"queuedAt\":1795635657,\"lastUpdatedAt\":1795635717,\"versionNumber\":1", "\"queuedAt\":1795635693,\"lastUpdatedAt\":1795635753,\"versionNumber\":3");
    let details = [("self_test", "ready"), ("updatedBy", "0x00090002")];
    let msg = JobMessageOut {
        timestamp: 1795635753,
        client_token: Some(":test-thing"),
        execution: Some(ExecutionOut {
            job_id: "AFR_OTA-local-job-1",
            thing_name: None,
            status: JobStatus::InProgress,
            status_details: &details,
            queued_at: 1795635693,
            started_at: None,
            last_updated_at: 1795635753,
            version_number: 3,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(ota_out()),
        }),
        ferrota_timestamp: None,
    };
    let mut buf = [0u8; 1024];
    assert_eq!(msg.encode(&mut buf).unwrap(), text);
    let ex = JobMessage::parse(text.as_bytes())
        .unwrap()
        .execution
        .unwrap();
    assert!(ex.status_details.in_self_test());
    assert_eq!(ex.status_details.self_test().unwrap().raw(), "ready");
    assert_eq!(ex.status_details.updated_by(), Some(0x0009_0002));
    assert_eq!(AppVersion::from_u32(0x0009_0002), AppVersion::new(0, 9, 2));
}

#[test]
fn no_job_pending() {
    let mut buf = [0u8; 128];
    let m = JobMessageOut {
        timestamp: 1795635800,
        client_token: Some(":test-thing"),
        execution: None,
        ferrota_timestamp: None,
    };
    let t = m.encode(&mut buf).unwrap();
    assert_eq!(t, r#"{"timestamp":1795635800,"clientToken":":test-thing"}"#);
    let d = JobMessage::parse(t.as_bytes()).unwrap();
    assert!(d.execution.is_none());
    let n = JobMessage::parse(br#"{"timestamp":1795635800}"#).unwrap();
    assert!(n.execution.is_none() && n.client_token.is_none());
    assert_eq!(n.ferrota_timestamp, None);
}

/// #20 (design §3.2): the Ferrota server's signed timestamp rides as the last top-level key of
/// every Jobs reply, with or without a job; without it the bytes are AWS's (the tests above).
#[test]
fn ferrota_timestamp_is_the_last_top_level_key() {
    const TS: &str = "0oRNogEmBEgAAQIDBAUGB6BYLKYAAgFqdGVzdC10aGluZw";
    let mut buf = [0u8; 1024];
    let m = JobMessageOut {
        timestamp: 1795635800,
        client_token: Some(":test-thing"),
        execution: None,
        ferrota_timestamp: Some(TS),
    };
    let t = m.encode(&mut buf).unwrap();
    assert_eq!(
        t,
        format!(
            r#"{{"timestamp":1795635800,"clientToken":":test-thing","ferrotaTimestamp":"{TS}"}}"#
        )
    );
    let d = JobMessage::parse(t.as_bytes()).unwrap();
    assert_eq!(d.ferrota_timestamp, Some(TS));
    assert!(d.execution.is_none());

    // With a job: the AWS text, then the key; the job reads as before.
    let text = fresh_job_text();
    let with = format!(
        "{},\"ferrotaTimestamp\":\"{TS}\"}}",
        &text[..text.len() - 1]
    );
    let d = JobMessage::parse(with.as_bytes()).unwrap();
    assert_eq!(d.ferrota_timestamp, Some(TS));
    assert_eq!(d.execution.unwrap().job_id, "AFR_OTA-local-job-1");
    assert_eq!(
        JobMessage::parse(text.as_bytes())
            .unwrap()
            .ferrota_timestamp,
        None
    );

    // Anywhere at the top level, among unknown keys that stay ignored.
    let among = format!(
        r#"{{"x":[1],"ferrotaTimestamp":"{TS}","timestamp":5,"y":{{"ferrotaTimestamp":1}}}}"#
    );
    let d = JobMessage::parse(among.as_bytes()).unwrap();
    assert_eq!(d.ferrota_timestamp, Some(TS));
    assert_eq!(d.timestamp, Some(5));
    // Only at the top level: one inside `execution` or elsewhere is not the reply's.
    assert_eq!(
        JobMessage::parse(br#"{"y":{"ferrotaTimestamp":"abc"}}"#)
            .unwrap()
            .ferrota_timestamp,
        None
    );

    // Tolerated in any form: a value that is not a plain string reads as absent, and the
    // message (and a job in it) still parses.
    for bad in [
        r#"{"ferrotaTimestamp":12}"#,
        r#"{"ferrotaTimestamp":null}"#,
        r#"{"ferrotaTimestamp":{"a":"b"}}"#,
        r#"{"ferrotaTimestamp":"a\u0041"}"#,
    ] {
        assert_eq!(
            JobMessage::parse(bad.as_bytes()).unwrap().ferrota_timestamp,
            None,
            "{bad}"
        );
    }
    let with = format!("{},\"ferrotaTimestamp\":[1,2]}}", &text[..text.len() - 1]);
    assert!(
        JobMessage::parse(with.as_bytes())
            .unwrap()
            .execution
            .is_some()
    );
}

#[test]
fn http_file_entry() {
    let text = r#"{"afr_ota":{"protocols":["HTTP"],"files":[{"filepath":"/test/demo","filesize":1024,"fileid":0,"certfile":"test.crt","update_data_url":"https://example.com/x?a=1","auth_scheme":"aws.s3.presigned","sig-sha256-ecdsa":"MEQCabc="}]}}"#;
    let files = [FileOut {
        file_path: Some("/test/demo"),
        file_size: 1024,
        file_id: 0,
        cert_file: Some("test.crt"),
        update_data_url: Some("https://example.com/x?a=1"),
        auth_scheme: Some("aws.s3.presigned"),
        signature: Some(("sig-sha256-ecdsa", "MEQCabc=")),
        ..FileOut::default()
    }];
    let out = OtaJobOut {
        protocols: Protocols::HTTP,
        stream_name: None,
        files: &files,
    };
    let mut buf = [0u8; 512];
    assert_eq!(out.encode(&mut buf).unwrap(), text);
    let wrapped = format!(r#"{{"execution":{{"jobId":"j1","jobDocument":{text}}}}}"#);
    let ex = JobMessage::parse(wrapped.as_bytes())
        .unwrap()
        .execution
        .unwrap();
    let JobDocument::Ota(j) = ex.document().unwrap() else {
        panic!()
    };
    assert_eq!(j.protocols, Protocols::HTTP);
    assert_eq!(j.file.auth_scheme.unwrap().raw(), "aws.s3.presigned");
    assert_eq!(
        j.file.update_data_url.unwrap().raw(),
        "https://example.com/x?a=1"
    );
}

#[test]
fn status_updates_byte_for_byte() {
    let v092 = AppVersion::new(0, 9, 2);
    let v093 = AppVersion::new(0, 9, 3);
    let cases: [(OtaStatus, &str); 8] = [
        (
            OtaStatus::Receiving {
                received: 1,
                total: 25,
            },
            r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1/25"}}"#,
        ),
        (
            OtaStatus::SelfTestReady { updated_by: v092 },
            r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready","updatedBy":"0x00090002"}}"#,
        ),
        (
            OtaStatus::SelfTestActive { updated_by: v093 },
            r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"active","updatedBy":"0x00090003"}}"#,
        ),
        (
            OtaStatus::Accepted {
                version: v093,
                updated_by: v092,
            },
            r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.9.3","updatedBy":"  v0.9.2"}}"#,
        ),
        (
            OtaStatus::Accepted {
                version: AppVersion::new(0, 0, 2),
                updated_by: AppVersion::new(0, 0, 0),
            },
            r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.0.2","updatedBy":"  v0.0.0"}}"#,
        ),
        (
            OtaStatus::Rejected { sub_reason: 0x10 },
            r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x00000010"}}"#,
        ),
        (
            OtaStatus::Aborted { sub_reason: 0 },
            r#"{"status":"FAILED","statusDetails":{"reason":"aborted: 0x00000000"}}"#,
        ),
        (
            OtaStatus::Failed { main: 0xe0, sub: 0 },
            r#"{"status":"FAILED","statusDetails":{"reason":"0x000000e0: 0x00000000"}}"#,
        ),
    ];
    for (status, text) in cases {
        let mut buf = [0u8; 128];
        assert_eq!(status.encode(&mut buf).unwrap(), text);
        assert!(text.len() <= ferrota_proto::limits::STATUS_UPDATE_MAX);
        assert_eq!(
            OtaStatus::decode(text.as_bytes()).unwrap(),
            status,
            "{text}"
        );
    }
    assert_eq!(
        OtaStatus::Receiving {
            received: 1,
            total: 25
        }
        .qos(),
        0
    );
    assert_eq!(OtaStatus::Rejected { sub_reason: 0x10 }.qos(), 1);
    // Sub-reason 16 is SameFirmwareVersion.
    assert_eq!(
        ferrota_proto::status::OtaErr::SameFirmwareVersion.code(),
        0x10
    );
}

#[test]
fn next_get_request_and_client_token() {
    let mut buf = [0u8; 96];
    assert_eq!(
        encode_client_token_request(":test-thing", &mut buf).unwrap(),
        r#"{"clientToken":":test-thing"}"#
    );
    assert_eq!(client_token(0, "mything").as_str(), "0:mything");
    assert_eq!(client_token(1, "mything").as_str(), "1:mything");
    let long = "a".repeat(128);
    let t = client_token(u32::MAX, &long);
    assert_eq!(t.len(), 64);
    assert_eq!(t.as_str(), format!("4294967295:{}", &long[..53]));
}

#[test]
fn get_stream_request_vector() {
    const V: [u8; 28] = [
        0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19, 0x10, 0x00,
        0x61, 0x6f, 0x00, 0x61, 0x62, 0x44, 0xff, 0xff, 0xff, 0x01, 0x61, 0x6e, 0x08,
    ];
    let set = BlockSet::<128>::all_missing(25).unwrap();
    assert_eq!(set.as_bytes(), [0xff, 0xff, 0xff, 0x01]);
    let req = StreamRequest::official(0, 4096, set.as_bytes(), 8);
    let mut buf = [0u8; 64];
    let n = req.encode(&mut buf).unwrap();
    assert_eq!(&buf[..n], V);
    let d = StreamRequest::decode(&V).unwrap();
    assert_eq!(d, req);
    assert_eq!(d.client_token, Some("rdy"));
    assert_eq!(d.stream_version, None);
    assert_eq!(
        (d.file_id, d.block_size, d.offset, d.num_blocks),
        (0, 4096, Some(0), Some(8))
    );
    assert_eq!(d.bitmap, Some(&[0xff, 0xff, 0xff, 0x01][..]));
    assert_eq!(d.validate(), Ok(()));
    // The server sends blocks 0..8 for it.
    assert_eq!(
        d.blocks_to_send(102_400).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
}

#[test]
fn subsequent_request_bitmaps() {
    let mut set = BlockSet::<128>::all_missing(25).unwrap();
    for b in 0..8 {
        assert!(set.mark_received(b).unwrap());
    }
    assert_eq!(set.as_bytes(), [0x00, 0xff, 0xff, 0x01]);
    for b in 8..16 {
        set.mark_received(b).unwrap();
    }
    assert_eq!(set.as_bytes(), [0x00, 0x00, 0xff, 0x01]);
    for b in 16..24 {
        set.mark_received(b).unwrap();
    }
    assert_eq!(set.as_bytes(), [0x00, 0x00, 0x00, 0x01]);
    // Block 3 lost in the first window: 08 ff ff 01.
    let mut set = BlockSet::<128>::all_missing(25).unwrap();
    for b in (0..8).filter(|&b| b != 3) {
        set.mark_received(b).unwrap();
    }
    assert_eq!(set.as_bytes(), [0x08, 0xff, 0xff, 0x01]);
    assert!(!set.mark_received(0).unwrap(), "duplicate");
    let req = StreamRequest::official(0, 4096, set.as_bytes(), 8);
    let v: Vec<u32> = req.blocks_to_send(102_400).collect();
    assert_eq!(v, [3, 8, 9, 10, 11, 12, 13, 14]);
}

#[test]
fn aws_bitmap_example() {
    let mut buf = [0u8; 8];
    let n = encode_blocks(20, [20, 21, 24, 43], &mut buf).unwrap();
    assert_eq!(&buf[..n], [0x13, 0x00, 0x80]);
    let view = BitmapView {
        offset: 20,
        bits: &buf[..n],
    };
    assert_eq!(view.requested(1000).collect::<Vec<_>>(), [20, 21, 24, 43]);
    assert_eq!(view.requested(40).collect::<Vec<_>>(), [20, 21, 24]);
}

#[test]
fn data_block_sizes_match_captures() {
    let payload = vec![0xA5u8; 4096];
    let mut buf = vec![0u8; 5000];
    let b0 = DataBlock::new(Some("rdy"), 0, 0, &payload);
    // Local encoder: 4119 bytes for a 4 KiB block 0 (definite map, five keys).
    assert_eq!(b0.encode(&mut buf).unwrap(), 4119);
    assert_eq!(b0.encoded_len(), 4119);
    assert_eq!(DataBlock::decode(&buf[..4119]).unwrap(), b0);
    // AWS (indefinite map): 4120 for block 0, 4122 for indices >= 256.
    assert_eq!(b0.encode_indefinite(&mut buf).unwrap(), 4120);
    assert_eq!(DataBlock::decode(&buf[..4120]).unwrap(), b0);
    let b256 = DataBlock::new(Some("rdy"), 0, 256, &payload);
    let n = b256.encode_indefinite(&mut buf).unwrap();
    assert_eq!(n, 4122);
    assert_eq!(DataBlock::decode(&buf[..n]).unwrap(), b256);
    assert_eq!(b256.encode(&mut buf).unwrap(), 4121);
    assert_eq!(b256.encoded_len(), 4121);
}

#[test]
fn topics_of_the_official_device() {
    let cases = [
        (
            Topic::notify_next("test-thing"),
            "$aws/things/test-thing/jobs/notify-next",
        ),
        (
            Topic::next_get("test-thing"),
            "$aws/things/test-thing/jobs/$next/get",
        ),
        (
            Topic::next_get_accepted("test-thing"),
            "$aws/things/test-thing/jobs/$next/get/accepted",
        ),
        (
            Topic::update("test-thing", "AFR_OTA-local-job-1", Reply::Request),
            "$aws/things/test-thing/jobs/AFR_OTA-local-job-1/update",
        ),
        (
            Topic::stream(
                "test-thing",
                "AFR_OTA-local-stream-1",
                StreamOp::Data,
                Encoding::Cbor,
            ),
            "$aws/things/test-thing/streams/AFR_OTA-local-stream-1/data/cbor",
        ),
        (
            Topic::stream(
                "test-thing",
                "AFR_OTA-local-stream-1",
                StreamOp::Get,
                Encoding::Cbor,
            ),
            "$aws/things/test-thing/streams/AFR_OTA-local-stream-1/get/cbor",
        ),
    ];
    for (t, s) in cases {
        let mut buf = [0u8; 128];
        assert_eq!(t.write(&mut buf).unwrap(), s);
        assert_eq!(t.to_heapless::<128>().unwrap().as_str(), s);
        assert_eq!(Topic::parse(s).unwrap(), t);
    }
    let t = Topic::parse("$aws/things/t/jobs/$next/get/accepted").unwrap();
    assert_eq!(
        t.kind,
        TopicKind::Jobs(JobsTopic::Describe {
            job: JobRef::Next,
            reply: Reply::Accepted
        })
    );
    let mut small = [0u8; 10];
    assert!(Topic::notify_next("test-thing").write(&mut small).is_err());
    assert!(
        Topic::notify_next("test-thing")
            .to_heapless::<10>()
            .is_err()
    );
}

/// Issue #19's job-document contract: an alternative encoding of `files[0]` is `files[0]`'s
/// keys plus `encoding`, `blockSize` and, for a delta, `baseSha256`, `baseSize`,
/// `baseVersion` (and `baseHardwareId`); the device's parser reads every entry and keeps
/// `files[0]` as the file it knows.
#[test]
fn packed_file_entries() {
    use ferrota_proto::job::{PackedBaseOut, PackedOut};
    let base_sha = "ab".repeat(32);
    let full = FileOut {
        file_path: Some("v2.bin"),
        file_size: 4_161_536,
        file_id: 0,
        cert_file: Some("signer.crt"),
        file_type: Some(141),
        signature: Some(("sig-sha256-ecdsa", "MEQCabc=")),
        ..FileOut::default()
    };
    let files = [
        full,
        FileOut {
            file_path: Some("v2.bin.frpk"),
            file_size: 8192,
            file_id: 1,
            packed: Some(PackedOut {
                encoding: "frpk1",
                block_size: 4096,
                base: None,
            }),
            ..full
        },
        FileOut {
            file_path: Some("v2.bin.from-1.0.0.frpk"),
            file_size: 4096,
            file_id: 2,
            packed: Some(PackedOut {
                encoding: "frpk1",
                block_size: 4096,
                base: Some(PackedBaseOut {
                    sha256: &base_sha,
                    size: 4_161_536,
                    version: "1.0.0",
                    hardware_id: Some("KIT_T2G-B-H_LITE"),
                }),
            }),
            ..full
        },
    ];
    let out = OtaJobOut {
        protocols: Protocols::MQTT,
        stream_name: Some("s1"),
        files: &files,
    };
    let mut buf = [0u8; 1024];
    let text = out.encode(&mut buf).unwrap();
    let keys = r#""certfile":"signer.crt","fileType":141,"sig-sha256-ecdsa":"MEQCabc=""#;
    assert_eq!(
        text,
        format!(
            r#"{{"afr_ota":{{"protocols":["MQTT"],"streamname":"s1","files":[{{"filepath":"v2.bin","filesize":4161536,"fileid":0,{keys}}},{{"filepath":"v2.bin.frpk","filesize":8192,"fileid":1,{keys},"encoding":"frpk1","blockSize":4096}},{{"filepath":"v2.bin.from-1.0.0.frpk","filesize":4096,"fileid":2,{keys},"encoding":"frpk1","blockSize":4096,"baseSha256":"{base_sha}","baseSize":4161536,"baseVersion":"1.0.0","baseHardwareId":"KIT_T2G-B-H_LITE"}}]}}}}"#
        )
    );
    let wrapped = format!(r#"{{"execution":{{"jobId":"j1","jobDocument":{text}}}}}"#);
    let ex = JobMessage::parse(wrapped.as_bytes())
        .unwrap()
        .execution
        .unwrap();
    let JobDocument::Ota(j) = ex.document().unwrap() else {
        panic!("not an OTA document")
    };
    assert_eq!(j.file.file_size, 4_161_536);
    assert_eq!(j.file_count(), 3);
    let delta = j.files().nth(2).unwrap();
    assert_eq!(delta.file_id, 2);
    let o = delta.object();
    assert_eq!(
        o.get("baseVersion").unwrap().as_str().unwrap().raw(),
        "1.0.0"
    );
    assert_eq!(o.get("baseSize").unwrap().as_u64(), Some(4_161_536));

    // A base hash that is not 64 lowercase hex digits is refused, not written.
    let mut bad = files;
    bad[2].packed = Some(PackedOut {
        encoding: "frpk1",
        block_size: 4096,
        base: Some(PackedBaseOut {
            sha256: "AB",
            size: 1,
            version: "1.0.0",
            hardware_id: None,
        }),
    });
    let out = OtaJobOut { files: &bad, ..out };
    assert!(out.encode(&mut buf).is_err());
}
