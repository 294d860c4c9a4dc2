//! A model of AWS IoT Jobs + MQTT file delivery, built on ferrota-proto (both directions).

use std::sync::Arc;

use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, JobStatus, OtaJobOut, Protocols,
};
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::status::UpdateRequest;
use ferrota_proto::stream::{DataBlock, StreamRequest};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};

use super::image::TestImage;

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub stream: String,
    pub image: Arc<TestImage>,
    pub file_id: u8,
    pub file_type: Option<u8>,
    pub signature: Option<String>,
    pub protocols: Protocols,
    pub status: JobStatus,
    pub details: Vec<(String, String)>,
    pub version: u64,
}

impl Job {
    pub fn firmware(id: &str, image: Arc<TestImage>) -> Self {
        Job {
            id: id.into(),
            stream: format!("{id}-stream"),
            signature: Some(image.signature.clone()),
            image,
            file_id: 0,
            file_type: Some(141),
            protocols: Protocols::MQTT,
            status: JobStatus::Queued,
            details: vec![],
            version: 1,
        }
    }
    pub fn detail(&self, k: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A status update the device published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub job: String,
    pub payload: String,
}

#[derive(Debug, Default)]
pub struct Server {
    pub thing: String,
    pub jobs: Vec<Job>,
    pub updates: Vec<Update>,
    pub stream_requests: u32,
    pub blocks_sent: u32,
    /// Send every block twice (the §4.9 hazard 1 server).
    pub send_twice: bool,
    /// Also push notify-next with the current job after every status update (§4.9 hazard 3).
    pub notify_after_update: bool,
}

pub type Msg = (String, Vec<u8>);

impl Server {
    pub fn new(thing: &str) -> Self {
        Server {
            thing: thing.into(),
            ..Default::default()
        }
    }

    pub fn next_job(&self) -> Option<&Job> {
        self.jobs
            .iter()
            .find(|j| j.status == JobStatus::InProgress)
            .or_else(|| self.jobs.iter().find(|j| j.status == JobStatus::Queued))
    }

    pub fn job(&self, id: &str) -> &Job {
        self.jobs.iter().find(|j| j.id == id).unwrap()
    }

    pub fn job_message(&self, token: Option<&str>) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let job = self.next_job();
        let details: Vec<(&str, &str)> = job
            .map(|j| {
                j.details
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let files: Vec<FileOut<'_>> = job
            .map(|j| {
                vec![FileOut {
                    file_path: Some("/ota/image.bin"),
                    file_size: j.image.file.len() as u32,
                    file_id: j.file_id,
                    cert_file: Some("signer.crt"),
                    file_type: j.file_type,
                    signature: j.signature.as_deref().map(|s| ("sig-sha256-ecdsa", s)),
                    ..Default::default()
                }]
            })
            .unwrap_or_default();
        let exec = job.map(|j| ExecutionOut {
            job_id: &j.id,
            thing_name: None,
            status: j.status,
            status_details: &details,
            queued_at: 1_795_635_657,
            started_at: None,
            last_updated_at: 1_795_635_717,
            version_number: j.version,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(OtaJobOut {
                protocols: j.protocols,
                stream_name: Some(&j.stream),
                files: &files,
            }),
        });
        let m = JobMessageOut {
            timestamp: 1_795_635_717,
            client_token: token,
            execution: exec,
        };
        let n = m.encode(&mut buf).unwrap().len();
        buf.truncate(n);
        buf
    }

    fn notify_next(&self) -> Msg {
        (
            Topic::notify_next(&self.thing).to_string(),
            self.job_message(None),
        )
    }

    /// A device publish; returns the messages for the device.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let t = Topic::parse(topic).expect("device publishes valid topics");
        assert_eq!(t.thing, self.thing);
        match t.kind {
            TopicKind::Jobs(JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            }) => {
                let req = JobsRequest::parse(payload).unwrap();
                let tok = req.client_token.map(|c| c.raw().to_string());
                vec![(
                    Topic::next_get_accepted(&self.thing).to_string(),
                    self.job_message(tok.as_deref()),
                )]
            }
            TopicKind::Jobs(JobsTopic::Update {
                job,
                reply: Reply::Request,
            }) => {
                let req = UpdateRequest::parse(payload).expect("valid update");
                self.updates.push(Update {
                    job: job.to_string(),
                    payload: String::from_utf8(payload.to_vec()).unwrap(),
                });
                let before = self.next_job().map(|j| j.id.clone());
                let j = self
                    .jobs
                    .iter_mut()
                    .find(|j| j.id == job)
                    .expect("update for a known job");
                assert!(
                    !j.status.is_terminal(),
                    "update after a terminal state: {}",
                    String::from_utf8_lossy(payload)
                );
                j.status = req.status;
                j.version += 1;
                if let Some(d) = req.status_details {
                    j.details = d
                        .iter()
                        .map(|(k, v)| (k.raw().to_string(), v.as_str().unwrap().raw().to_string()))
                        .collect();
                }
                let mut out = vec![(
                    Topic::update(&self.thing, job, Reply::Accepted).to_string(),
                    b"{\"timestamp\":1}".to_vec(),
                )];
                let after = self.next_job().map(|j| j.id.clone());
                if before != after || self.notify_after_update {
                    out.push(self.notify_next());
                }
                out
            }
            TopicKind::Stream {
                stream,
                op: StreamOp::Get,
                encoding: Encoding::Cbor,
            } => {
                self.stream_requests += 1;
                let req = StreamRequest::decode(payload).expect("valid request");
                req.validate().expect("request within AWS limits");
                let Some(j) = self.jobs.iter().find(|j| j.stream == stream) else {
                    return vec![];
                };
                let file = &j.image.file;
                let l = req.block_size as usize;
                let mut out = vec![];
                let data =
                    Topic::stream(&self.thing, stream, StreamOp::Data, Encoding::Cbor).to_string();
                for i in req.blocks_to_send(file.len() as u32) {
                    let a = i as usize * l;
                    let b = (a + l).min(file.len());
                    let blk = DataBlock::new(req.client_token, req.file_id, i, &file[a..b]);
                    let mut buf = vec![0u8; l + 64];
                    let n = blk.encode(&mut buf).unwrap();
                    buf.truncate(n);
                    self.blocks_sent += 1;
                    if self.send_twice {
                        out.push((data.clone(), buf.clone()));
                    }
                    out.push((data.clone(), buf));
                }
                out
            }
            _ => vec![],
        }
    }

    /// Queues a job; returns the notify-next to push if it became next.
    pub fn add_job(&mut self, job: Job) -> Option<Msg> {
        let before = self.next_job().map(|j| j.id.clone());
        self.jobs.push(job);
        let after = self.next_job().map(|j| j.id.clone());
        (before != after).then(|| self.notify_next())
    }
}
