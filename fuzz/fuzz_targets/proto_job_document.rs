//! Feeds arbitrary bytes to every JSON decoder of `ferrota-proto` (job messages and documents,
//! status updates, Jobs requests and rejections) and to the topic parser. None may panic; a
//! decoded job must re-encode and decode to the same fields.
#![no_main]

use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocument, JobDocumentOut, JobMessage, JobMessageOut, JobStatus,
    OtaJobOut,
};
use ferrota_proto::jobs_api::{JobsRejection, JobsRequest};
use ferrota_proto::status::{OtaStatus, UpdateRequest};
use ferrota_proto::topic::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = core::str::from_utf8(data)
        && let Ok(t) = Topic::parse(s)
    {
        let mut buf = [0u8; 512];
        assert_eq!(t.write(&mut buf).unwrap(), s);
    }
    let _ = UpdateRequest::parse(data);
    if let Ok(s) = OtaStatus::decode(data) {
        let mut buf = [0u8; 256];
        let text = s.encode(&mut buf).unwrap();
        assert_eq!(OtaStatus::decode(text.as_bytes()), Ok(s));
    }
    let _ = JobsRequest::parse(data);
    let _ = JobsRejection::parse(data);
    let Ok(msg) = JobMessage::parse(data) else { return };
    let Some(ex) = msg.execution else { return };
    let _ = ex.status_details.updated_by();
    for (k, _) in ex.status_details.iter() {
        let _ = k.unescaped_len();
    }
    let Ok(JobDocument::Ota(job)) = ex.document() else { return };
    let mut scratch = [0u8; 1024];
    let f = job.file;
    let path = f.file_path.map(|p| p.unescape(&mut scratch).map(|s| s.to_owned()));
    // Re-encode what was understood, and read it back.
    let sig_key = f.signature.and_then(|s| s.key.as_plain());
    let sig_val = f.signature.and_then(|s| s.value.as_plain());
    let files = [FileOut {
        file_path: match &path {
            Some(Ok(p)) => Some(p.as_str()),
            _ => None,
        },
        file_size: f.file_size,
        file_id: f.file_id,
        file_type: f.file_type,
        attr: f.attr,
        signature: sig_key.zip(sig_val),
        ..FileOut::default()
    }];
    let out = JobMessageOut {
        timestamp: 0,
        client_token: None,
        ferrota_timestamp: None,
        execution: Some(ExecutionOut {
            job_id: ex.job_id,
            thing_name: None,
            status: JobStatus::Queued,
            status_details: &[],
            queued_at: 0,
            started_at: None,
            last_updated_at: 0,
            version_number: 0,
            execution_number: 0,
            job_document: JobDocumentOut::Ota(OtaJobOut {
                protocols: job.protocols,
                stream_name: job.stream_name,
                files: &files,
            }),
        }),
    };
    let mut buf = vec![0u8; 8192];
    let text = out.encode(&mut buf).expect("re-encode");
    let back = JobMessage::parse(text.as_bytes()).expect("re-parse");
    let Ok(JobDocument::Ota(j2)) = back.execution.unwrap().document() else {
        panic!("re-encoded document does not parse")
    };
    assert_eq!(j2.file.file_size, f.file_size);
    assert_eq!(j2.file.file_id, f.file_id);
    assert_eq!(j2.stream_name, job.stream_name);
    assert_eq!(j2.protocols, job.protocols);
});
