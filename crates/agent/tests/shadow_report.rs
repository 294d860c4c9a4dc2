//! Issue 16: the agent reports its state to its classic Device Shadow
//! (`$aws/things/<thing>/shadow/update`, `state.reported` with `ferrota-api`'s
//! `ReportedState` names) on every connection and after every job, and subscribes to nothing
//! for it. On a fixture service that records what the device publishes and subscribes
//! (the agent crate must not build the server; the end-to-end run against the real services
//! is `crates/lab/tests/inventory.rs`).

use std::time::Duration;

use ferrota_proto::job::JobStatus;
use ferrota_proto::topic::{JobsTopic, Reply, Topic, TopicKind};
use ferrota_sim::harness::{AgentSettings, Msg, Service, Sim, THING};
use ferrota_sim::images::ota::{Spec, image};
use ferrota_sim::service::{JobsStreams, OtaFile};

/// Every publish in order (`"status"` for a job update, `"report"` for a shadow report), the
/// shadow reports' bodies, around a job whose document the agent refuses (no signature; offered
/// only if `jobs.offers_job`).
struct Fixture {
    jobs: JobsStreams,
    order: Vec<&'static str>,
    reports: Vec<serde_json::Value>,
}

impl Fixture {
    fn new(job: bool) -> Self {
        let mut file = OtaFile::image(vec![], None);
        file.size = 100_000;
        let mut jobs = JobsStreams::new("job-refused", "stream-1", vec![file]);
        jobs.offers_job = job;
        jobs.serves_stream = false;
        Fixture {
            jobs,
            order: vec![],
            reports: vec![],
        }
    }
}

impl Service for Fixture {
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let t = Topic::parse(topic).expect("the agent publishes valid topics");
        assert_eq!(t.thing, THING);
        match t.kind {
            TopicKind::Jobs(JobsTopic::Update {
                reply: Reply::Request,
                ..
            }) => self.order.push("status"),
            TopicKind::Shadow { .. } => {
                assert_eq!(topic, format!("$aws/things/{THING}/shadow/update"));
                self.order.push("report");
                self.reports
                    .push(serde_json::from_slice(payload).expect("the report is JSON"));
                return vec![];
            }
            _ => {}
        }
        self.jobs.handle(topic, payload)
    }
}

fn firmware(r: &serde_json::Value) -> &serde_json::Value {
    &r["state"]["reported"]["firmware"]
}

#[test]
fn it_reports_once_per_connection_with_what_it_runs() {
    let v1 = image(Spec::new(1, 4));
    let mut sim = Sim::start(Fixture::new(false), &v1, 1, AgentSettings::default());
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
    let fixture = Fixture::new(true);
    let mut sim = Sim::start(fixture, &v1, 2, AgentSettings::default());
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        s.server.jobs.status.is_terminal()
    }));
    sim.run_until(Duration::from_secs(2), |_| false);
    // Connect: a report; the refused job's FAILED; then the report after the job.
    assert_eq!(sim.server.order, ["report", "status", "report"]);
    assert_eq!(sim.server.jobs.status, JobStatus::Failed);
    assert_eq!(firmware(&sim.server.reports[1])["version"], "1.1.0");
    assert_ne!(
        sim.server.reports[0]["clientToken"],
        sim.server.reports[1]["clientToken"]
    );
}
