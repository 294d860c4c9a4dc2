//! A job document the real server never sends: a firmware file with no signature, or one that
//! is not base64 DER. `ferrota-server`'s `create_ota` refuses both, so the agent's tests against
//! the real services (`crates/lab/tests/agent_*.rs`) cannot produce them; AWS (or another
//! service) might, and the agent must refuse such a job before downloading a byte. So this one
//! case runs here on a fixture: a service that answers `$next/get` with that document and
//! records what the device publishes (the agent crate must not build the server).

use std::time::Duration;

mod common;

use ferrota_proto::job::JobStatus;
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
        let job = common::Job {
            id: JOB,
            stream: "stream-nosig",
            size: self.size,
            signature: self.signature.as_deref(),
            status: self.status,
        };
        common::next_document((!self.status.is_terminal()).then_some(&job), token)
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
