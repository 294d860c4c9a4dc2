//! What the agent's fixture services share: the `$next/get` answer with one firmware job.

use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, JobStatus, OtaJobOut, Protocols,
};

/// The one firmware job a fixture offers.
pub struct Job<'a> {
    /// Job id.
    pub id: &'a str,
    /// Its stream (none exists behind it).
    pub stream: &'a str,
    /// File size in the document.
    pub size: u32,
    /// `sig-sha256-ecdsa`, or none.
    pub signature: Option<&'a str>,
    /// The execution's status.
    pub status: JobStatus,
}

/// `{"timestamp","clientToken"?,"execution"?}` with `job` as the pending execution (none:
/// nothing pending), as AWS answers `$next/get`.
pub fn next_document(job: Option<&Job<'_>>, token: Option<&str>) -> Vec<u8> {
    let files = job.map(|j| {
        [FileOut {
            file_path: Some("/ota/image.bin"),
            file_size: j.size,
            file_id: 0,
            cert_file: Some("signer.crt"),
            file_type: Some(141),
            signature: j.signature.map(|s| ("sig-sha256-ecdsa", s)),
            ..Default::default()
        }]
    });
    let exec = job.zip(files.as_ref()).map(|(j, files)| ExecutionOut {
        job_id: j.id,
        thing_name: None,
        status: j.status,
        status_details: &[],
        queued_at: 1_795_635_657,
        started_at: None,
        last_updated_at: 1_795_635_717,
        version_number: 1,
        execution_number: 1,
        job_document: JobDocumentOut::Ota(OtaJobOut {
            protocols: Protocols::MQTT,
            stream_name: Some(j.stream),
            files,
        }),
    });
    let m = JobMessageOut {
        timestamp: 1_795_635_717,
        client_token: token,
        execution: exec,
        ferrota_timestamp: None,
    };
    let mut buf = vec![0u8; 4096];
    let n = m.encode(&mut buf).expect("document fits").len();
    buf.truncate(n);
    buf
}
