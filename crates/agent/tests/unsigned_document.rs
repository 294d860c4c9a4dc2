//! A job document the real server never sends: a firmware file with no signature, or one that
//! is not base64 DER. `ferrota-server`'s `create_ota` refuses both, so the agent's tests against
//! the real services (`crates/lab/tests/agent_*.rs`) cannot produce them; AWS (or another
//! service) might, and the agent must refuse such a job before downloading a byte. So this one
//! case runs here on a fixture: a service that answers `$next/get` with that document and
//! records what the device publishes (the agent crate must not build the server).

use std::time::Duration;

use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, JobStatus, OtaJobOut, Protocols,
};
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::status::UpdateRequest;
use ferrota_proto::topic::{JobRef, JobsTopic, Reply, Topic, TopicKind};
use ferrota_sim::harness::{AgentSettings, Msg, Service, Sim, THING};
use ferrota_sim::images::ota::{Spec, image};

const JOB: &str = "job-nosig";

/// One firmware job whose document carries `signature`; no stream behind it.
struct Fixture {
    size: u32,
    signature: Option<String>,
    status: JobStatus,
    updates: Vec<String>,
    stream_requests: u32,
}

impl Fixture {
    fn document(&self, token: Option<&str>) -> Vec<u8> {
        let files = [FileOut {
            file_path: Some("/ota/image.bin"),
            file_size: self.size,
            file_id: 0,
            cert_file: Some("signer.crt"),
            file_type: Some(141),
            signature: self.signature.as_deref().map(|s| ("sig-sha256-ecdsa", s)),
            ..Default::default()
        }];
        let exec = (!self.status.is_terminal()).then_some(ExecutionOut {
            job_id: JOB,
            thing_name: None,
            status: self.status,
            status_details: &[],
            queued_at: 1_795_635_657,
            started_at: None,
            last_updated_at: 1_795_635_717,
            version_number: 1,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(OtaJobOut {
                protocols: Protocols::MQTT,
                stream_name: Some("stream-nosig"),
                files: &files,
            }),
        });
        let m = JobMessageOut {
            timestamp: 1_795_635_717,
            client_token: token,
            execution: exec,
        };
        let mut buf = vec![0u8; 4096];
        let n = m.encode(&mut buf).expect("document fits").len();
        buf.truncate(n);
        buf
    }
}

impl Service for Fixture {
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
                self.updates
                    .push(String::from_utf8_lossy(payload).into_owned());
                vec![]
            }
            TopicKind::Stream { .. } => {
                self.stream_requests += 1;
                vec![]
            }
            _ => vec![],
        }
    }
}

#[test]
fn a_firmware_job_without_a_valid_signature_is_refused_before_the_download() {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    for sig in [None, Some("AAAA".to_string())] {
        let fixture = Fixture {
            size: v2.file.len() as u32,
            signature: sig.clone(),
            status: JobStatus::Queued,
            updates: vec![],
            stream_requests: 0,
        };
        let mut sim = Sim::start(fixture, &v1, 12, AgentSettings::default());
        assert!(
            sim.run_until(Duration::from_secs(60), |s| s.server.status.is_terminal()),
            "{sig:?}: {:?}",
            sim.server.updates
        );
        // Not a block asked for (so none sent), and the refusal names the signature.
        assert_eq!(sim.server.stream_requests, 0, "{sig:?}");
        assert!(
            sim.server
                .updates
                .last()
                .unwrap()
                .contains("0x000000e3: 0x00000000"),
            "{sig:?}: {:?}",
            sim.server.updates
        );
        assert_eq!(sim.running_version(), v1.spec.version.0);
    }
}
