//! Issue 16: the agent reports its state to its classic Device Shadow
//! (`$aws/things/<thing>/shadow/update`, `state.reported` with `ferrota-api`'s
//! `ReportedState` names) on every connection and after every job, and subscribes to nothing
//! for it. On a fixture service that records what the device publishes and subscribes
//! (the agent crate must not build the server; the end-to-end run against the real services
//! is `crates/lab/tests/inventory.rs`).

use std::time::Duration;

mod common;

use ferrota_proto::job::JobStatus;
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::status::UpdateRequest;
use ferrota_proto::topic::{JobRef, JobsTopic, Reply, Topic, TopicKind};
use ferrota_sim::harness::{AgentSettings, Msg, Service, Sim, THING};
use ferrota_sim::images::ota::{Spec, image};

const JOB: &str = "job-refused";

/// Every publish in order (`"status"` for a job update, `"report"` for a shadow report), the
/// shadow reports' bodies, and a job whose document the agent refuses (no signature).
#[derive(Default)]
struct Fixture {
    job: bool,
    status: Option<JobStatus>,
    order: Vec<&'static str>,
    reports: Vec<serde_json::Value>,
}

impl Fixture {
    fn document(&self, token: Option<&str>) -> Vec<u8> {
        let pending = self.job && !self.status.is_some_and(|s| s.is_terminal());
        let job = common::Job {
            id: JOB,
            stream: "stream-1",
            size: 100_000,
            signature: None,
            status: JobStatus::Queued,
        };
        common::next_document(pending.then_some(&job), token)
    }
}

impl Service for Fixture {
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let t = Topic::parse(topic).expect("the agent publishes valid topics");
        assert_eq!(t.thing, THING);
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
                self.status = Some(UpdateRequest::parse(payload).expect("valid").status);
                self.order.push("status");
                vec![]
            }
            TopicKind::Shadow { .. } => {
                assert_eq!(topic, format!("$aws/things/{THING}/shadow/update"));
                self.order.push("report");
                self.reports
                    .push(serde_json::from_slice(payload).expect("the report is JSON"));
                vec![]
            }
            _ => vec![],
        }
    }
}

fn firmware(r: &serde_json::Value) -> &serde_json::Value {
    &r["state"]["reported"]["firmware"]
}

#[test]
fn it_reports_once_per_connection_with_what_it_runs() {
    let v1 = image(Spec::new(1, 4));
    let mut sim = Sim::start(Fixture::default(), &v1, 1, AgentSettings::default());
    assert!(sim.run_until(Duration::from_secs(5), |s| !s.server.reports.is_empty()));
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.server.reports.len(), 1, "{:?}", sim.server.reports);
    let r = &sim.server.reports[0];
    let floor = sim.agent().anti_rollback_floor();
    assert_eq!(
        *firmware(r),
        serde_json::json!({"version": v1.spec.version.to_string(), "bank": "A",
                           "pendingTrial": false, "antiRollbackFloor": floor})
    );
    assert_eq!(r["state"]["reported"]["hardwareId"], v1.spec.board);
    assert!(r["clientToken"].is_string());
    // Only `reported`: the device never writes desired.
    assert!(r["state"].get("desired").is_none());

    // A reconnection reports again (the first report may have been lost with the session).
    sim.disconnect_for(Duration::from_secs(3));
    assert!(sim.run_until(Duration::from_secs(10), |s| s.server.reports.len() == 2));
    assert_eq!(
        sim.server.reports[1]["state"],
        sim.server.reports[0]["state"]
    );
}

#[test]
fn it_reports_after_a_job_ends() {
    let v1 = image(Spec::new(1, 1));
    let fixture = Fixture {
        job: true,
        ..Default::default()
    };
    let mut sim = Sim::start(fixture, &v1, 2, AgentSettings::default());
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        s.server.status.is_some_and(|st| st.is_terminal())
    }));
    sim.run_until(Duration::from_secs(2), |_| false);
    // Connect: a report; the refused job's FAILED; then the report after the job.
    assert_eq!(sim.server.order, ["report", "status", "report"]);
    assert_eq!(sim.server.status, Some(JobStatus::Failed));
    assert_eq!(firmware(&sim.server.reports[1])["version"], "1.1.0");
    assert_ne!(
        sim.server.reports[0]["clientToken"],
        sim.server.reports[1]["clientToken"]
    );
}
