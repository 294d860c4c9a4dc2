//! The server's replies written by ferrota-proto (`alloc` feature), pinned byte for byte: the
//! expected texts are what the server wrote with serde_json and minicbor before issue 15 moved
//! the encoders here (the server's `wire` tests compare with that code itself).

use ferrota_proto::jobs_api::{JobExecutionSummaryOut, JobExecutionsChangedOut, PendingJobsOut};
use ferrota_proto::stream::{StreamDescriptionOut, StreamErrorCode, StreamFileOut};
use ferrota_proto::topic::Encoding;
use ferrota_proto::{DataBlock, StreamRejection, UpdateRequest};

fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap()
}

#[test]
fn json_stream_block() {
    let b = DataBlock::new(Some("rdy"), 0, 3, b"\x00\x01\xfehello");
    assert_eq!(
        text(b.to_vec(Encoding::Json).unwrap()),
        r#"{"c":"rdy","f":0,"i":3,"l":8,"p":"AAH+aGVsbG8="}"#
    );
    let b = DataBlock::new(None, 1, 0, b"");
    assert_eq!(
        text(b.to_vec(Encoding::Json).unwrap()),
        r#"{"f":1,"i":0,"l":0,"p":""}"#
    );
    // CBOR is the existing encoder's output.
    let mut buf = [0u8; 64];
    let n = b.encode(&mut buf).unwrap();
    assert_eq!(b.to_vec(Encoding::Cbor).unwrap(), &buf[..n]);
}

#[test]
fn json_stream_rejection_escapes_as_serde_json() {
    let r = StreamRejection::new(
        StreamErrorCode::ResourceNotFound,
        "no \"such\" stream\n\u{1}\u{7f}é",
        Some("t\\1"),
    );
    assert_eq!(
        text(r.to_vec(Encoding::Json).unwrap()),
        "{\"c\":\"t\\\\1\",\"m\":\"no \\\"such\\\" stream\\n\\u0001\u{7f}é\",\"o\":\"ResourceNotFound\"}"
    );
    let r = StreamRejection::new(StreamErrorCode::InvalidJson, "not JSON", None);
    assert_eq!(
        text(r.to_vec(Encoding::Json).unwrap()),
        r#"{"m":"not JSON","o":"InvalidJson"}"#
    );
}

#[test]
fn stream_description_in_both_encodings() {
    let files = [
        StreamFileOut {
            file_id: 0,
            size: 4_194_304,
        },
        StreamFileOut {
            file_id: 1,
            size: 10,
        },
    ];
    let d = StreamDescriptionOut {
        client_token: Some("c1"),
        version: 1,
        description: "OTA",
        files: &files,
    };
    assert_eq!(
        text(d.to_vec(Encoding::Json).unwrap()),
        r#"{"c":"c1","d":"OTA","r":[{"f":0,"z":4194304},{"f":1,"z":10}],"s":1}"#
    );
    // {"c":"c1","s":1,"d":"OTA","r":[{"f":0,"z":4194304},{"f":1,"z":10}]}
    let cbor = [
        0xa4, 0x61, b'c', 0x62, b'c', b'1', 0x61, b's', 0x01, 0x61, b'd', 0x63, b'O', b'T', b'A',
        0x61, b'r', 0x82, 0xa2, 0x61, b'f', 0x00, 0x61, b'z', 0x1a, 0x00, 0x40, 0x00, 0x00, 0xa2,
        0x61, b'f', 0x01, 0x61, b'z', 0x0a,
    ];
    assert_eq!(d.to_vec(Encoding::Cbor).unwrap(), cbor);
}

fn summaries() -> [JobExecutionSummaryOut<'static>; 2] {
    [
        JobExecutionSummaryOut {
            job_id: "AFR_OTA-up1",
            queued_at: 100,
            started_at: Some(110),
            last_updated_at: 120,
            version_number: 2,
            execution_number: 1,
        },
        JobExecutionSummaryOut {
            job_id: "AFR_OTA-up2",
            queued_at: 130,
            started_at: None,
            last_updated_at: 130,
            version_number: 1,
            execution_number: 1,
        },
    ]
}

#[test]
fn notify_body() {
    let [a, b] = summaries();
    let n = JobExecutionsChangedOut {
        in_progress: &[a],
        queued: &[b],
        timestamp: 140,
    };
    assert_eq!(
        text(n.to_vec().unwrap()),
        r#"{"jobs":{"IN_PROGRESS":[{"executionNumber":1,"jobId":"AFR_OTA-up1","lastUpdatedAt":120,"queuedAt":100,"startedAt":110,"versionNumber":2}],"QUEUED":[{"executionNumber":1,"jobId":"AFR_OTA-up2","lastUpdatedAt":130,"queuedAt":130,"versionNumber":1}]},"timestamp":140}"#
    );
    let none = JobExecutionsChangedOut {
        in_progress: &[],
        queued: &[],
        timestamp: 7,
    };
    assert_eq!(text(none.to_vec().unwrap()), r#"{"jobs":{},"timestamp":7}"#);
    let queued_only = JobExecutionsChangedOut {
        in_progress: &[],
        queued: &[b],
        timestamp: 7,
    };
    assert!(
        text(queued_only.to_vec().unwrap()).starts_with(r#"{"jobs":{"QUEUED":[{"#),
        "no comma before the only list"
    );
}

#[test]
fn pending_jobs() {
    let [a, b] = summaries();
    let p = PendingJobsOut {
        in_progress_jobs: &[a],
        queued_jobs: &[b, b],
        timestamp: 140,
        client_token: Some("3:dev"),
    };
    assert_eq!(
        text(p.to_vec().unwrap()),
        r#"{"clientToken":"3:dev","inProgressJobs":[{"executionNumber":1,"jobId":"AFR_OTA-up1","lastUpdatedAt":120,"queuedAt":100,"startedAt":110,"versionNumber":2}],"queuedJobs":[{"executionNumber":1,"jobId":"AFR_OTA-up2","lastUpdatedAt":130,"queuedAt":130,"versionNumber":1},{"executionNumber":1,"jobId":"AFR_OTA-up2","lastUpdatedAt":130,"queuedAt":130,"versionNumber":1}],"timestamp":140}"#
    );
    let empty = PendingJobsOut {
        in_progress_jobs: &[],
        queued_jobs: &[],
        timestamp: 1,
        client_token: None,
    };
    assert_eq!(
        text(empty.to_vec().unwrap()),
        r#"{"inProgressJobs":[],"queuedJobs":[],"timestamp":1}"#
    );
}

/// `"stepTimeoutInMinutes": -1` (AWS: clear the step timer) is read, not refused; any other
/// negative or fractional value still is.
#[test]
fn step_timeout_minus_one_clears() {
    let r = UpdateRequest::parse(br#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}"#).unwrap();
    assert!(r.clear_step_timeout);
    assert_eq!(r.step_timeout_in_minutes, None);
    let r = UpdateRequest::parse(br#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":5}"#).unwrap();
    assert!(!r.clear_step_timeout);
    assert_eq!(r.step_timeout_in_minutes, Some(5));
    let r = UpdateRequest::parse(br#"{"status":"IN_PROGRESS"}"#).unwrap();
    assert!(!r.clear_step_timeout);
    for bad in ["-2", "-1.0", "-1e0", "1.5", "\"-1\""] {
        let body = format!(r#"{{"status":"IN_PROGRESS","stepTimeoutInMinutes":{bad}}}"#);
        assert!(UpdateRequest::parse(body.as_bytes()).is_err(), "{bad}");
    }
}
