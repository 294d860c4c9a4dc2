//! Issue 16, end to end on virtual time: the agent reports its state to its Device Shadow
//! after every boot and every job, through the real services (`ferrota_lab::sim_service`),
//! and after an update the server's inventory (`thing describe`) shows the new version, bank
//! and trial state.

use crate::common;

use std::time::Duration;

use common::image::{Spec, image};
use common::*;
use ferrota_proto::job::JobStatus;

fn firmware(report: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(report).unwrap();
    v["state"]["reported"]["firmware"].clone()
}

#[test]
fn after_an_update_the_inventory_shows_the_new_version_bank_and_trial_state() {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    let mut sim = Sim::new(&v1, 7);
    // The boot's report is in before any job.
    assert!(sim.run_until(Duration::from_secs(5), |s| {
        !s.server.shadow_updates.is_empty()
    }));
    let inv = sim.server.inventory(true);
    let fw = inv.reported.as_ref().unwrap().firmware.as_ref().unwrap();
    assert_eq!(fw.version, v1.spec.version.to_string());
    assert_eq!(fw.bank, "A");
    assert!(!fw.pending_trial);
    assert_eq!(
        inv.reported.as_ref().unwrap().hardware_id.as_deref(),
        Some(v1.spec.board)
    );
    assert_eq!(inv.last_job, None);

    sim.add_job(job("up", v2.clone()));
    assert!(sim.run_job("up", Duration::from_secs(60)));
    assert_eq!(sim.server.job("up").status, JobStatus::Succeeded);
    sim.run_until(Duration::from_secs(2), |_| false);

    // The reports in order: v1 at boot; v2 on trial in bank B after the reboot; v2 confirmed
    // (floor raised to its counter) after the job.
    let fws: Vec<_> = sim
        .server
        .shadow_updates
        .iter()
        .map(|r| firmware(r))
        .collect();
    let v2s = v2.spec.version.to_string();
    let on_trial = fws
        .iter()
        .position(|f| f["version"] == v2s.as_str() && f["pendingTrial"] == true)
        .expect("a report on trial after the reboot");
    assert_eq!(fws[on_trial]["bank"], "B");
    let last = fws.last().unwrap();
    assert_eq!(
        *last,
        serde_json::json!({"version": v2s, "bank": "B", "pendingTrial": false,
                           "antiRollbackFloor": 2})
    );
    assert!(on_trial < fws.len() - 1);

    // The server's inventory, as `thing describe` shows it.
    let d = sim.server.describe();
    let fw = d
        .inventory
        .reported
        .as_ref()
        .unwrap()
        .firmware
        .as_ref()
        .unwrap();
    assert_eq!(fw.version, v2s);
    assert_eq!(fw.bank, "B");
    assert!(!fw.pending_trial);
    assert_eq!(fw.anti_rollback_floor, 2);
    let job = d.inventory.last_job.as_ref().unwrap();
    assert_eq!(job.job_id, sim.server.job_id("up"));
    assert_eq!(job.status, "SUCCEEDED");
    assert!(d.inventory.last_seen >= Some(job.last_updated_at));
    assert!(d.inventory.reported_at >= Some(job.last_updated_at));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["inventory"]["reported"]["firmware"]["version"],
        v2s.as_str()
    );
    assert_eq!(
        json["inventory"]["reported"]["firmware"]["pendingTrial"],
        false
    );
    assert_eq!(json["inventory"]["lastJob"]["status"], "SUCCEEDED");
}
