//! Bad inputs end in typed errors, never panics.

use ferrota_proto::bitmap::{BitmapError, BlockSet, bitmap_len};
use ferrota_proto::job::{Field, JobDocument, JobError, JobMessage};
use ferrota_proto::json::JsonErrorKind;
use ferrota_proto::limits::NameLimits;
use ferrota_proto::status::{OtaStatus, UpdateRequest};
use ferrota_proto::stream::{
    CborError, DataBlock, StreamErrorCode, StreamRejection, StreamRequest,
};
use ferrota_proto::topic::{NameKind, Topic, TopicError};

#[test]
fn bad_topics() {
    use TopicError::*;
    let cases: &[(&str, TopicError)] = &[
        ("aws/things/t/jobs/notify", NotThingTopic),
        ("$aws/things/", Unknown),
        ("$aws/things/t", Unknown),
        ("$aws/things//jobs/notify", EmptyName(NameKind::Thing)),
        ("$aws/things/t/jobs//update", EmptyName(NameKind::JobId)),
        (
            "$aws/things/t/streams//data/cbor",
            EmptyName(NameKind::Stream),
        ),
        ("$aws/things/t+x/jobs/notify", InvalidName(NameKind::Thing)),
        (
            "$aws/things/t/jobs/$next/update",
            InvalidName(NameKind::JobId),
        ),
        ("$aws/things/t/jobs/a.b/get", InvalidName(NameKind::JobId)),
        ("$aws/things/t/jobs/notify/accepted", Unknown),
        ("$aws/things/t/jobs/j/delete", Unknown),
        ("$aws/things/t/jobs/j/update/accepted/x", Unknown),
        ("$aws/things/t/jobs/j/update/maybe", Unknown),
        ("$aws/things/t/jobs", Unknown),
        // Shadow topics parse since issue 16 (tests/shadow_topics.rs); an unknown one does not.
        ("$aws/things/t/shadow/list", Unknown),
        ("$aws/things/t/tunnels/notify", Unknown),
        ("$aws/things/t/streams/s/data", Unknown),
        ("$aws/things/t/streams/s/data/xml", Unknown),
        ("$aws/things/t/streams/s/push/cbor", Unknown),
        ("$aws/things/t/streams/s/data/cbor/x", Unknown),
        (
            "$aws/things/t/streams/s:1/data/cbor",
            InvalidName(NameKind::Stream),
        ),
    ];
    for (t, e) in cases {
        assert_eq!(Topic::parse(t), Err(*e), "{t}");
    }
    let long_thing = format!("$aws/things/{}/jobs/notify", "a".repeat(129));
    assert_eq!(Topic::parse(&long_thing), Err(NameTooLong(NameKind::Thing)));
    let thing65 = format!("$aws/things/{}/jobs/notify", "a".repeat(65));
    assert!(Topic::parse(&thing65).is_ok());
    assert_eq!(
        Topic::parse_with(&thing65, &NameLimits::OTA_DEVICE),
        Err(NameTooLong(NameKind::Thing))
    );
    let stream45 = format!("$aws/things/t/streams/{}/data/cbor", "s".repeat(45));
    assert!(Topic::parse(&stream45).is_ok());
    assert_eq!(
        Topic::parse_with(&stream45, &NameLimits::OTA_DEVICE),
        Err(NameTooLong(NameKind::Stream))
    );
    let job73 = format!("$aws/things/t/jobs/{}/update", "j".repeat(73));
    assert_eq!(Topic::parse(&job73), Err(NameTooLong(NameKind::JobId)));
    assert_eq!(
        Topic::parse_with(
            &job73.replace(&"j".repeat(73), &"j".repeat(65)),
            &NameLimits::AWS
        ),
        Err(NameTooLong(NameKind::JobId))
    );
}

fn job(doc: &str) -> String {
    format!(r#"{{"timestamp":1,"execution":{{"jobId":"j-1","jobDocument":{doc}}}}}"#)
}

fn ota(files: &str) -> String {
    job(&format!(
        r#"{{"afr_ota":{{"protocols":["MQTT"],"streamname":"s1","files":{files}}}}}"#
    ))
}

fn doc_of(text: &str) -> Result<JobDocument<'_>, JobError> {
    JobMessage::parse(text.as_bytes())?
        .execution
        .unwrap()
        .document()
}

fn ota_err(text: &str) -> JobError {
    doc_of(text).unwrap_err()
}

#[test]
fn bad_json() {
    let cases: &[(&[u8], JsonErrorKind)] = &[
        (b"", JsonErrorKind::UnexpectedEnd),
        (b"{", JsonErrorKind::UnexpectedEnd),
        (b"{\"a\":1", JsonErrorKind::UnexpectedEnd),
        (b"{\"a\":1,}", JsonErrorKind::UnexpectedChar),
        (b"{\"a\" 1}", JsonErrorKind::UnexpectedChar),
        (b"{a:1}", JsonErrorKind::UnexpectedChar),
        (b"{\"a\":01}", JsonErrorKind::UnexpectedChar),
        (b"{\"a\":1.}", JsonErrorKind::InvalidNumber),
        (b"{\"a\":-}", JsonErrorKind::InvalidNumber),
        (b"{\"a\":\"\\x\"}", JsonErrorKind::InvalidEscape),
        (b"{\"a\":\"\\u12\"}", JsonErrorKind::InvalidEscape),
        (b"{\"a\":\"\x01\"}", JsonErrorKind::ControlChar),
        (b"{\"a\":tru}", JsonErrorKind::UnexpectedChar),
        (b"{} x", JsonErrorKind::TrailingCharacters),
        (b"{\"a\":\xff}", JsonErrorKind::NotUtf8),
    ];
    for (input, kind) in cases {
        match JobMessage::parse(input) {
            Err(JobError::Json(e)) => {
                assert_eq!(e.kind, *kind, "{:?}", String::from_utf8_lossy(input))
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
    let deep = format!("{{\"x\":{}1{}}}", "[".repeat(20), "]".repeat(20));
    match JobMessage::parse(deep.as_bytes()) {
        Err(JobError::Json(e)) => assert_eq!(e.kind, JsonErrorKind::TooDeep),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        JobMessage::parse(b"[1]"),
        Err(JobError::WrongType(Field::Message))
    );
}

#[test]
fn bad_executions() {
    let e = |s: &str| JobMessage::parse(s.as_bytes()).unwrap_err();
    assert_eq!(
        e(r#"{"execution":{"jobDocument":{}}}"#),
        JobError::Missing(Field::JobId)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":7,"jobDocument":{}}}"#),
        JobError::WrongType(Field::JobId)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"j"}}"#),
        JobError::Missing(Field::JobDocument)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"j","jobDocument":"{}"}}"#),
        JobError::WrongType(Field::JobDocument)
    );
    assert_eq!(
        e(r#"{"execution":[]}"#),
        JobError::WrongType(Field::Execution)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"a/b","jobDocument":{}}}"#),
        JobError::Invalid(Field::JobId)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"","jobDocument":{}}}"#),
        JobError::Invalid(Field::JobId)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"j\u0031","jobDocument":{}}}"#),
        JobError::Invalid(Field::JobId)
    );
    let j73 = format!(
        r#"{{"execution":{{"jobId":"{}","jobDocument":{{}}}}}}"#,
        "j".repeat(73)
    );
    assert_eq!(e(&j73), JobError::TooLong(Field::JobId));
    let j72 = j73.replace(&"j".repeat(73), &"j".repeat(72));
    assert!(JobMessage::parse(j72.as_bytes()).is_ok());
    assert_eq!(
        e(r#"{"execution":{"jobId":"j","versionNumber":"3","jobDocument":{}}}"#),
        JobError::WrongType(Field::VersionNumber)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"j","statusDetails":{"updatedBy":"0xZZ"},"jobDocument":{}}}"#),
        JobError::Invalid(Field::UpdatedBy)
    );
    assert_eq!(
        e(
            r#"{"execution":{"jobId":"j","statusDetails":{"updatedBy":"0x100000000"},"jobDocument":{}}}"#
        ),
        JobError::Invalid(Field::UpdatedBy)
    );
    assert_eq!(
        e(r#"{"execution":{"jobId":"j","statusDetails":{"updatedBy":"-1"},"jobDocument":{}}}"#),
        JobError::Invalid(Field::UpdatedBy)
    );
}

#[test]
fn updated_by_forms() {
    for (v, want) in [
        (r#""0x00090002""#, 0x0009_0002u32),
        (r#""0X00090002""#, 0x0009_0002),
        (r#""589826""#, 589826),
        ("589826", 589826),
        (r#""010""#, 8),
        (r#""0""#, 0),
    ] {
        let t = format!(
            r#"{{"execution":{{"jobId":"j","statusDetails":{{"self_test":"active","updatedBy":{v}}},"jobDocument":{{}}}}}}"#
        );
        let ex = JobMessage::parse(t.as_bytes()).unwrap().execution.unwrap();
        assert_eq!(ex.status_details.updated_by(), Some(want), "{v}");
        assert!(ex.status_details.in_self_test());
    }
    // Presence alone means self-test, whatever the value.
    let t = r#"{"execution":{"jobId":"j","statusDetails":{"self_test":1},"jobDocument":{}}}"#;
    let ex = JobMessage::parse(t.as_bytes()).unwrap().execution.unwrap();
    assert!(ex.status_details.in_self_test());
    assert!(ex.status_details.self_test().is_none());
}

#[test]
fn bad_ota_documents() {
    use Field::*;
    let file = r#"{"filesize":100,"fileid":0}"#;
    assert!(matches!(
        doc_of(&ota(&format!("[{file}]"))).unwrap(),
        ferrota_proto::job::JobDocument::Ota(_)
    ));
    assert!(matches!(
        doc_of(&job(r#"{"other":1}"#)).unwrap(),
        ferrota_proto::job::JobDocument::Custom(_)
    ));
    assert_eq!(
        ota_err(&job(r#"{"afr_ota":[]}"#)),
        JobError::WrongType(AfrOta)
    );
    assert_eq!(
        ota_err(&job(r#"{"afr_ota":{"files":[]}}"#)),
        JobError::Missing(Protocols)
    );
    assert_eq!(
        ota_err(&job(r#"{"afr_ota":{"protocols":"MQTT","files":[]}}"#)),
        JobError::WrongType(Protocols)
    );
    assert_eq!(
        ota_err(&job(
            r#"{"afr_ota":{"protocols":["MQTT","HTTP","XXXX"],"files":[]}}"#
        )),
        JobError::TooLong(Protocols)
    );
    assert_eq!(
        ota_err(&job(r#"{"afr_ota":{"protocols":[1],"files":[]}}"#)),
        JobError::WrongType(Protocols)
    );
    assert_eq!(
        ota_err(&job(r#"{"afr_ota":{"protocols":["MQTT"]}}"#)),
        JobError::Missing(Files)
    );
    assert_eq!(ota_err(&ota("[]")), JobError::Missing(Files));
    assert_eq!(ota_err(&ota("{}")), JobError::WrongType(Files));
    assert_eq!(ota_err(&ota("[1]")), JobError::WrongType(Files));
    assert_eq!(
        ota_err(&ota(r#"[{"fileid":0}]"#)),
        JobError::Missing(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1}]"#)),
        JobError::Missing(FileId)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":0,"fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":-1,"fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1.5,"fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1e3,"fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":"0x10","fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":4294967296,"fileid":0}]"#)),
        JobError::Invalid(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":true,"fileid":0}]"#)),
        JobError::WrongType(FileSize)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1,"fileid":256}]"#)),
        JobError::Invalid(FileId)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1,"fileid":0,"fileType":256}]"#)),
        JobError::Invalid(FileType)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1,"fileid":0,"filepath":1}]"#)),
        JobError::WrongType(FilePath)
    );
    assert_eq!(
        ota_err(&ota(r#"[{"filesize":1,"fileid":0,"sig-sha256-ecdsa":1}]"#)),
        JobError::WrongType(Signature)
    );
    let long_sig = format!(
        r#"[{{"filesize":1,"fileid":0,"sig-sha256-ecdsa":"{}"}}]"#,
        "A".repeat(513)
    );
    assert_eq!(ota_err(&ota(&long_sig)), JobError::TooLong(Signature));
    // The second file is validated too.
    assert_eq!(
        ota_err(&ota(&format!(r#"[{file},{{"fileid":1}}]"#))),
        JobError::Missing(FileSize)
    );
    let long_stream = job(&format!(
        r#"{{"afr_ota":{{"protocols":["MQTT"],"streamname":"{}","files":[{file}]}}}}"#,
        "s".repeat(45)
    ));
    assert_eq!(ota_err(&long_stream), JobError::TooLong(StreamName));
}

#[test]
fn tolerant_parsing() {
    // Digit strings, unknown keys at every level, whitespace, escapes, other key orders.
    let text = r#" {
      "unknown": {"deep": [1, {"x": null}, "s"]},
      "execution": {
        "jobDocument": {"afr_ota": {
           "files": [{"fileid": "3", "filesize": "4096", "extra": [true, false],
                      "file\u0070ath": "/a \"q\" \u00e9\\", "fileType": 141, "attr": 7,
                      "sig-sha1-rsa": "AAAA", "sig-sha256-ecdsa": "MEQC"},
                     {"fileid": 1, "filesize": 5}],
           "protocols": ["MQTT", "HTTP"], "x": 1.5e-3 }, "other": {}},
        "jobId": "AFR_OTA-9702f1a3-b747-4c3e-a0eb-a3b0cf83ddbb", "status": "WEIRD",
        "statusDetails": {"receive": "1/25"}
      },
      "timestamp": "not a number"
    } "#;
    let msg = JobMessage::parse(text.as_bytes()).unwrap();
    assert_eq!(msg.timestamp, None);
    let ex = msg.execution.unwrap();
    assert_eq!(ex.status, None);
    assert_eq!(ex.status_details.get("receive").unwrap().raw(), "1/25");
    let JobDocument::Ota(j) = ex.document().unwrap() else {
        panic!()
    };
    assert!(j.protocols.mqtt && j.protocols.http);
    assert_eq!(j.stream_name, None);
    assert_eq!((j.file.file_id, j.file.file_size), (3, 4096));
    assert_eq!(j.file.file_type, Some(141));
    assert_eq!(j.file.attr, Some(7));
    let p = j.file.file_path.unwrap();
    assert!(p.has_escapes());
    let mut buf = [0u8; 32];
    assert_eq!(p.unescape(&mut buf).unwrap(), "/a \"q\" é\\");
    assert!(p.eq_str("/a \"q\" é\\"));
    assert_eq!(p.unescaped_len(), Some("/a \"q\" é\\".len()));
    let mut small = [0u8; 4];
    assert_eq!(
        p.unescape(&mut small).unwrap_err().kind,
        JsonErrorKind::BufferTooSmall
    );
    // First `sig-` key reported; any key can be asked for.
    assert_eq!(j.file.signature.unwrap().key.raw(), "sig-sha1-rsa");
    assert_eq!(
        j.file.signature_for("sig-sha256-ecdsa").unwrap().raw(),
        "MEQC"
    );
    assert_eq!(j.file_count(), 2);
    assert_eq!(j.files().map(|f| f.file_id).collect::<Vec<_>>(), [3, 1]);
    // Duplicate keys: the first wins.
    let dup = r#"{"execution":{"jobId":"a","jobId":"b","jobDocument":{}}}"#;
    assert_eq!(
        JobMessage::parse(dup.as_bytes())
            .unwrap()
            .execution
            .unwrap()
            .job_id,
        "a"
    );
    // A surrogate escape is valid JSON; it only fails when unescaped.
    let s = r#"{"execution":{"jobId":"a","jobDocument":{"afr_ota":{"protocols":["MQTT"],"files":[{"filesize":1,"fileid":0,"filepath":"\ud83d\ude00"}]}}}}"#;
    let JobDocument::Ota(j) = doc_of(s).unwrap() else {
        panic!()
    };
    assert_eq!(
        j.file
            .file_path
            .unwrap()
            .unescape(&mut buf)
            .unwrap_err()
            .kind,
        JsonErrorKind::UnsupportedEscape
    );
}

#[test]
fn bad_status_updates() {
    use Field::*;
    assert_eq!(
        UpdateRequest::parse(b"{}").unwrap_err(),
        JobError::Missing(Status)
    );
    assert_eq!(
        UpdateRequest::parse(br#"{"status":"DONE"}"#).unwrap_err(),
        JobError::Invalid(Status)
    );
    assert_eq!(
        UpdateRequest::parse(br#"{"status":"FAILED","statusDetails":{"reason":1}}"#).unwrap_err(),
        JobError::WrongType(StatusDetails)
    );
    let r = UpdateRequest::parse(
        br#"{"status":"IN_PROGRESS","expectedVersion":2,"executionNumber":1,"includeJobExecutionState":true,"includeJobDocument":false,"stepTimeoutInMinutes":5,"clientToken":"t"}"#,
    )
    .unwrap();
    assert_eq!(r.expected_version, Some(2));
    assert_eq!(r.include_job_document, Some(false));
    assert_eq!(r.client_token.unwrap().raw(), "t");
    assert!(OtaStatus::from_request(&r).is_none());
    for bad in [
        r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x10"}}"#,
        r#"{"status":"FAILED","statusDetails":{"reason":"rejected: 0x0000001G"}}"#,
        r#"{"status":"FAILED","statusDetails":{"reason":"0x000000E0: 0x00000000"}}"#,
        r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted v0.9.3","updatedBy":"  v0.9.2"}}"#,
        r#"{"status":"SUCCEEDED","statusDetails":{"reason":"accepted  v0.9.3"}}"#,
        r#"{"status":"IN_PROGRESS","statusDetails":{"receive":"1of25"}}"#,
        r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"ready"}}"#,
        r#"{"status":"IN_PROGRESS","statusDetails":{"self_test":"bogus","updatedBy":"0x00090002"}}"#,
        r#"{"status":"IN_PROGRESS"}"#,
        r#"{"status":"QUEUED","statusDetails":{"receive":"1/2"}}"#,
    ] {
        assert_eq!(
            OtaStatus::decode(bad.as_bytes()),
            Err(JobError::Invalid(StatusDetails)),
            "{bad}"
        );
    }
}

const REQ: [u8; 28] = [
    0xa6, 0x61, 0x63, 0x63, 0x72, 0x64, 0x79, 0x61, 0x66, 0x00, 0x61, 0x6c, 0x19, 0x10, 0x00, 0x61,
    0x6f, 0x00, 0x61, 0x62, 0x44, 0xff, 0xff, 0xff, 0x01, 0x61, 0x6e, 0x08,
];

#[test]
fn truncated_cbor() {
    for n in 0..REQ.len() {
        assert!(StreamRequest::decode(&REQ[..n]).is_err(), "prefix {n}");
        assert!(DataBlock::decode(&REQ[..n]).is_err());
    }
    assert_eq!(StreamRequest::decode(&REQ[..27]), Err(CborError::Truncated));
    let mut long = REQ.to_vec();
    long.push(0);
    assert_eq!(StreamRequest::decode(&long), Err(CborError::TrailingBytes));
    let mut buf = [0u8; 64];
    let n = DataBlock::new(None, 1, 2, b"abc").encode(&mut buf).unwrap();
    for k in 0..n {
        assert!(DataBlock::decode(&buf[..k]).is_err());
    }
}

/// Builds a CBOR map by hand: definite, entries given as pre-encoded key/value bytes.
fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut v = vec![0xa0 + entries.len() as u8];
    for (k, val) in entries {
        v.push(0x60 + k.len() as u8);
        v.extend_from_slice(k.as_bytes());
        v.extend_from_slice(val);
    }
    v
}

#[test]
fn wrong_cbor_types() {
    use CborError::*;
    let ok_block: [(&str, &[u8]); 4] = [
        ("f", &[0x00]),
        ("l", &[0x01]),
        ("i", &[0x00]),
        ("p", &[0x41, 0xAA]),
    ];
    assert!(DataBlock::decode(&map(&ok_block)).is_ok());
    let with = |k: &str, v: &'static [u8]| {
        let e: Vec<(&str, &[u8])> = ok_block
            .iter()
            .map(|&(kk, vv)| if kk == k { (kk, v) } else { (kk, vv) })
            .collect();
        map(&e)
    };
    assert_eq!(
        DataBlock::decode(&with("f", &[0x61, b'0'])),
        Err(WrongType("f"))
    );
    assert_eq!(DataBlock::decode(&with("f", &[0x20])), Err(WrongType("f")));
    assert_eq!(
        DataBlock::decode(&with("l", &[0xf9, 0x3c, 0x00])),
        Err(WrongType("l"))
    );
    assert_eq!(
        DataBlock::decode(&with("p", &[0x61, 0xAA])),
        Err(WrongType("p"))
    );
    assert_eq!(
        DataBlock::decode(&with("p", &[0x5f, 0x41, 0xAA, 0xff])),
        Err(ChunkedPayload)
    );
    assert_eq!(
        DataBlock::decode(&with("l", &[0x02])),
        Err(LengthMismatch {
            declared: 2,
            actual: 1
        })
    );
    assert_eq!(
        DataBlock::decode(&with("i", &[0x1b, 1, 0, 0, 0, 0, 0, 0, 0])),
        Err(IntegerTooLarge("i"))
    );
    assert_eq!(
        DataBlock::decode(&map(&ok_block[..3])),
        Err(MissingKey("p"))
    );
    let mut dup = ok_block.to_vec();
    dup.push(("f", &[0x01]));
    assert_eq!(DataBlock::decode(&map(&dup)), Err(DuplicateKey("f")));
    // Unknown keys are skipped, even nested ones.
    let mut extra = ok_block.to_vec();
    extra.push(("zz", &[0x82, 0xa1, 0x61, 0x61, 0x01, 0x40]));
    assert!(DataBlock::decode(&map(&extra)).is_ok());
    // A non-text key, a non-map, a stream rejection on the data topic (§4.3).
    assert!(matches!(
        DataBlock::decode(&[0xa1, 0x01, 0x01]),
        Err(Malformed { .. })
    ));
    assert_eq!(DataBlock::decode(&[0x80]), Err(NotAMap));
    let mut buf = [0u8; 64];
    let n = StreamRejection::new(StreamErrorCode::InvalidRequest, "bad", Some("rdy"))
        .encode(&mut buf)
        .unwrap();
    assert_eq!(DataBlock::decode(&buf[..n]), Err(MissingKey("f")));
    assert_eq!(
        StreamRequest::decode(&map(&[("f", &[0x00])])),
        Err(MissingKey("l"))
    );
}

#[test]
fn request_validation_codes() {
    use StreamErrorCode::*;
    let base = StreamRequest {
        client_token: None,
        stream_version: None,
        file_id: 0,
        block_size: 4096,
        offset: None,
        bitmap: None,
        num_blocks: None,
    };
    assert_eq!(base.validate(), Ok(()));
    let long = "c".repeat(65);
    let big = vec![0u8; 12288];
    let cases = [
        (
            StreamRequest {
                client_token: Some(&long),
                ..base
            },
            InvalidRequest,
        ),
        (
            StreamRequest {
                file_id: 256,
                ..base
            },
            ResourceNotFound,
        ),
        (
            StreamRequest {
                block_size: 255,
                ..base
            },
            BlockSizeOutOfBounds,
        ),
        (
            StreamRequest {
                block_size: 131_073,
                ..base
            },
            BlockSizeOutOfBounds,
        ),
        (
            StreamRequest {
                offset: Some(98_305),
                ..base
            },
            OffsetOutOfBounds,
        ),
        (
            StreamRequest {
                num_blocks: Some(98_305),
                ..base
            },
            BlockCountLimitExceeded,
        ),
        (
            StreamRequest {
                bitmap: Some(&big),
                ..base
            },
            BlockBitmapLimitExceeded,
        ),
    ];
    for (r, code) in cases {
        assert_eq!(r.validate(), Err(code));
    }
    assert_eq!(
        StreamRequest {
            bitmap: Some(&big[..12287]),
            ..base
        }
        .validate(),
        Ok(())
    );
    // Without a bitmap: o, o+1, … capped by n and by 128 KB.
    let r = StreamRequest {
        offset: Some(5),
        num_blocks: Some(3),
        ..base
    };
    assert_eq!(r.blocks_to_send(10 * 4096).collect::<Vec<_>>(), [5, 6, 7]);
    let r = StreamRequest {
        offset: Some(8),
        num_blocks: Some(3),
        ..base
    };
    assert_eq!(r.blocks_to_send(10 * 4096).collect::<Vec<_>>(), [8, 9]);
    let r = StreamRequest {
        num_blocks: Some(1000),
        ..base
    };
    assert_eq!(r.blocks_to_send(1 << 24).count(), 32);
    assert_eq!(
        StreamRequest {
            offset: Some(50),
            ..base
        }
        .blocks_to_send(4096)
        .count(),
        0
    );
    assert_eq!(
        StreamRejection::decode(&[0xa1, 0x64, b'c', b'o', b'd', b'e', 0x61, b'X'])
            .unwrap()
            .code,
        "X"
    );
}

#[test]
fn bitmap_errors() {
    assert_eq!(
        BlockSet::<128>::all_missing(1025).unwrap_err(),
        BitmapError::TooManyBlocks
    );
    let mut s = BlockSet::<{ bitmap_len(1016) }>::all_missing(1016).unwrap();
    assert_eq!(BlockSet::<{ bitmap_len(1016) }>::CAPACITY, 1016);
    assert_eq!(s.mark_received(1016), Err(BitmapError::OutOfRange));
    assert_eq!(s.mark_missing(5000), Err(BitmapError::OutOfRange));
    assert!(!s.is_missing(1016));
    assert_eq!(
        BlockSet::<128>::from_bytes(25, &[0xff, 0xff, 0xff, 0x03]),
        Err(BitmapError::Malformed)
    );
    assert_eq!(
        BlockSet::<128>::from_bytes(25, &[0xff, 0xff, 0xff]),
        Err(BitmapError::Malformed)
    );
    assert_eq!(
        BlockSet::<2>::from_bytes(17, &[0, 0, 0]),
        Err(BitmapError::TooManyBlocks)
    );
    let mut buf = [0u8; 2];
    assert_eq!(
        ferrota_proto::bitmap::encode_blocks(0, [16], &mut buf),
        Err(BitmapError::BufferTooSmall)
    );
    assert_eq!(
        ferrota_proto::bitmap::encode_blocks(5, [4], &mut buf),
        Err(BitmapError::OutOfRange)
    );
    for b in 0..1016 {
        s.mark_received(b).unwrap();
    }
    assert!(s.is_complete());
    assert!(s.request_window(0, 8, &mut buf).is_none());
}

#[test]
fn request_window_of_missing_blocks() {
    let mut s = BlockSet::<128>::all_missing(1016).unwrap();
    for b in 0..100 {
        s.mark_received(b).unwrap();
    }
    s.mark_missing(3).unwrap();
    let mut buf = [0u8; 16];
    let w = s.request_window(0, 4, &mut buf).unwrap();
    assert_eq!((w.offset, w.count, w.len), (3, 4, 13));
    let view = ferrota_proto::bitmap::BitmapView {
        offset: w.offset,
        bits: &buf[..w.len],
    };
    assert_eq!(view.requested(1016).collect::<Vec<_>>(), [3, 100, 101, 102]);
    // A small buffer cuts the window short.
    let mut tiny = [0u8; 1];
    let w = s.request_window(0, 4, &mut tiny).unwrap();
    assert_eq!((w.offset, w.count, w.len), (3, 1, 1));
    let w = s.request_window(4, 3, &mut buf).unwrap();
    assert_eq!((w.offset, w.count, w.len), (100, 3, 1));
    assert_eq!(buf[0], 0b111);
    assert_eq!(s.first_missing_from(1015), Some(1015));
    assert_eq!(s.iter_missing().count() as u32, s.missing_count());
}
