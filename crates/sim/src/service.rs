//! A small model of AWS IoT Jobs + MQTT-based file delivery (Streams) for driving the agent in
//! tests: one firmware job over one stream, as a [`Service`] for the [`crate::harness::Sim`]
//! (or for any loop that hands it the device's publishes).
//!
//! What it models, and nothing more:
//! - `$next/get` (`jobs/$next/get`): answered on `…/$next/get/accepted` with the job document
//!   (`{"timestamp","clientToken"?,"execution"?}` as AWS sends it, built with `ferrota-proto`'s
//!   encoders); the execution is there while [`JobsStreams::offers_job`] and the status is not
//!   terminal. The status details echo `self_test: ready` after an update that said
//!   `self_test`, as AWS keeps an execution's status details.
//! - `jobs/<id>/update`: the status is taken from the request, the JSON recorded in
//!   [`JobsStreams::updates`]; no reply (the agent does not need the accepted topic).
//! - `streams/<id>/get/cbor`: every block the request asks for, from the file with its
//!   `fileId` (unknown ids: no answer), on the stream's `data/cbor` topic.
//!
//! Every stream publish counts in [`JobsStreams::stream_requests`]; every block sent counts per
//! file ([`JobsStreams::blocks_sent`]). Anything else (shadow reports, …) is left to the test:
//! a fixture that needs more wraps this one, handles its topics and hands the rest on.

use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, JobStatus, OtaJobOut, Protocols,
};
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::status::UpdateRequest;
use ferrota_proto::stream::{DataBlock, StreamRequest};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};

use crate::harness::{Msg, Service, THING};

/// One file of the job document, and the bytes its stream serves.
#[derive(Clone, Debug)]
pub struct OtaFile {
    /// `filepath`.
    pub path: String,
    /// `filesize` in the document (the data's length unless a test lies).
    pub size: u32,
    /// `fileType` (141: a bank image, 142: its metadata file).
    pub file_type: u8,
    /// `certfile`, or none.
    pub cert_file: Option<String>,
    /// The `sig-sha256-ecdsa` signature, or none.
    pub signature: Option<String>,
    /// What the stream serves for this file's `fileId` (its index in [`JobsStreams::files`]).
    pub data: Vec<u8>,
}

impl OtaFile {
    /// A bank image (`/ota/image.bin`, type 141, `signer.crt`) with its signature.
    pub fn image(data: Vec<u8>, signature: Option<String>) -> Self {
        OtaFile {
            path: "/ota/image.bin".into(),
            size: data.len() as u32,
            file_type: 141,
            cert_file: Some("signer.crt".into()),
            signature,
            data,
        }
    }
}

/// The times a job document carries (Unix seconds).
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// The message's `timestamp`.
    pub now: u64,
    /// The execution's `queuedAt`.
    pub queued_at: u64,
    /// The execution's `lastUpdatedAt`.
    pub last_updated_at: u64,
}

impl Default for Times {
    fn default() -> Self {
        Times {
            now: 1_795_635_717,
            queued_at: 1_795_635_657,
            last_updated_at: 1_795_635_717,
        }
    }
}

/// The Jobs + Streams model: one job `job_id` over the stream `stream`.
#[derive(Clone, Debug)]
pub struct JobsStreams {
    /// The job's id.
    pub job_id: String,
    /// The stream named in the document (and its data topic).
    pub stream: String,
    /// The document's files; `fileId` is the index.
    pub files: Vec<OtaFile>,
    /// Whether the job exists at all (false: `$next/get` never has an execution).
    pub offers_job: bool,
    /// The execution's status (the last update's).
    pub status: JobStatus,
    /// Whether GetStream is answered (false: requests are only counted, as for a job with no
    /// stream behind it).
    pub serves_stream: bool,
    /// The document's times.
    pub times: Times,
    /// `ferrotaTimestamp` in every document (a signed timestamp), or none.
    pub ferrota_timestamp: Option<String>,
    /// The last update said `self_test`: the document carries it back.
    pub self_test: bool,
    /// Every status update's JSON, in order.
    pub updates: Vec<String>,
    /// Stream publishes seen (any operation).
    pub stream_requests: u32,
    /// Blocks sent, per file.
    blocks: Vec<u32>,
}

impl JobsStreams {
    /// A queued job `job_id` with `files`, served on `stream`.
    pub fn new(job_id: &str, stream: &str, files: Vec<OtaFile>) -> Self {
        JobsStreams {
            job_id: job_id.into(),
            stream: stream.into(),
            blocks: vec![0; files.len()],
            files,
            offers_job: true,
            status: JobStatus::Queued,
            serves_stream: true,
            times: Times::default(),
            ferrota_timestamp: None,
            self_test: false,
            updates: vec![],
            stream_requests: 0,
        }
    }

    /// Blocks of file `file_id` sent so far.
    pub fn blocks_sent(&self, file_id: usize) -> u32 {
        self.blocks.get(file_id).copied().unwrap_or(0)
    }

    /// The `$next/get` answer (and `notify-next` body) for `token`.
    pub fn document(&self, token: Option<&str>) -> Vec<u8> {
        let files: Vec<FileOut<'_>> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| FileOut {
                file_path: Some(f.path.as_str()),
                file_size: f.size,
                file_id: i as u8,
                cert_file: f.cert_file.as_deref(),
                file_type: Some(f.file_type),
                signature: f.signature.as_deref().map(|s| ("sig-sha256-ecdsa", s)),
                ..Default::default()
            })
            .collect();
        // What the device reported (v1.1.0 did the download).
        let details: &[(&str, &str)] = if self.self_test {
            &[("self_test", "ready"), ("updatedBy", "0x00010100")]
        } else {
            &[]
        };
        let exec = (self.offers_job && !self.status.is_terminal()).then(|| ExecutionOut {
            job_id: &self.job_id,
            thing_name: None,
            status: self.status,
            status_details: details,
            queued_at: self.times.queued_at,
            started_at: None,
            last_updated_at: self.times.last_updated_at,
            version_number: 1,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(OtaJobOut {
                protocols: Protocols::MQTT,
                stream_name: Some(&self.stream),
                files: &files,
            }),
        });
        let m = JobMessageOut {
            timestamp: self.times.now,
            client_token: token,
            execution: exec,
            ferrota_timestamp: self.ferrota_timestamp.as_deref(),
        };
        let mut buf = vec![0u8; 8192];
        let n = m.encode(&mut buf).expect("document fits").len();
        buf.truncate(n);
        buf
    }

    fn blocks(&mut self, payload: &[u8]) -> Vec<Msg> {
        let req = StreamRequest::decode(payload).expect("valid request");
        let Some(file) = self.files.get(req.file_id as usize) else {
            return vec![];
        };
        let data = Topic::stream(THING, &self.stream, StreamOp::Data, Encoding::Cbor).to_string();
        let out = data_blocks(&data, &req, &file.data);
        self.blocks[req.file_id as usize] += out.len() as u32;
        out
    }
}

/// The GetStream answer: every block of `file` that `req` asks for, each a CBOR `DataBlock`
/// on `data_topic` (the stream's `data/cbor`), in order.
pub fn data_blocks(data_topic: &str, req: &StreamRequest<'_>, file: &[u8]) -> Vec<Msg> {
    let bs = req.block_size as usize;
    let mut out = vec![];
    for i in req.blocks_to_send(file.len() as u32) {
        let a = i as usize * bs;
        let chunk = &file[a..(a + bs).min(file.len())];
        let mut buf = vec![0u8; bs + 64];
        let n = DataBlock::new(req.client_token, req.file_id, i, chunk)
            .encode(&mut buf)
            .expect("block fits");
        buf.truncate(n);
        out.push((data_topic.to_string(), buf));
    }
    out
}

impl Service for JobsStreams {
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let Ok(t) = Topic::parse(topic) else {
            return vec![];
        };
        match t.kind {
            TopicKind::Jobs(JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            }) => {
                let req = JobsRequest::parse(payload).expect("valid request");
                let tok = req.client_token.map(|c| c.raw().to_string());
                vec![(
                    Topic::next_get_accepted(THING).to_string(),
                    self.document(tok.as_deref()),
                )]
            }
            TopicKind::Jobs(JobsTopic::Update {
                reply: Reply::Request,
                ..
            }) => {
                let req = UpdateRequest::parse(payload).expect("valid update");
                self.status = req.status;
                let text = String::from_utf8_lossy(payload).into_owned();
                self.self_test = text.contains("self_test");
                self.updates.push(text);
                vec![]
            }
            TopicKind::Stream { op, .. } => {
                self.stream_requests += 1;
                if op == StreamOp::Get && self.serves_stream {
                    self.blocks(payload)
                } else {
                    vec![]
                }
            }
            _ => vec![],
        }
    }
}
