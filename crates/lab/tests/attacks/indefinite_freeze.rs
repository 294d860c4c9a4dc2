//! Attack 3, indefinite freeze (TUF §1.5.2 "indefinite freeze attacks"): an attacker on the path
//! keeps answering with an old, genuinely signed job list so the device never learns of a
//! security fix.

use super::*;
use ferrota_agent::AgentEvent;
use ferrota_manifest::SUB_STALE;

/// The job-document messages the server sent the device from `from` on.
fn recorded(sim: &Sim, from: usize) -> Vec<ferrota_sim::harness::Msg> {
    sim.server.jobs_sent[from..].to_vec()
}

fn freshness_lost(sim: &Sim, from: usize) -> Option<u64> {
    sim.events[from..].iter().find_map(|e| match e {
        AgentEvent::FreshnessLost { expired_at } => Some(*expired_at),
        _ => None,
    })
}

#[test]
fn indefinite_freeze() {
    let hour = Duration::from_secs(3600);
    // First, an idle device (no job) frozen on its own "nothing to do" answer. Its
    // timestamp's hour runs out: `FreshnessLost`, and its report says it is not fresh.
    let mut sim = trusted_sim(302);
    let events = sim.events.len();
    let t0 = sim.now;
    let idle = recorded(&sim, 0);
    sim.server.freeze(idle);
    let lost = sim.run_until(2 * hour, |s| freshness_lost(s, events).is_some());
    assert!(lost, "no FreshnessLost on an idle frozen device");
    // One lifetime after the last genuine timestamp (received just before `t0`).
    let after = sim.since(t0);
    assert!(
        after > hour - Duration::from_secs(60) && after <= hour,
        "FreshnessLost {after:?} after the freeze"
    );
    // Reports after that (the next connection's) say `fresh: false`.
    sim.disconnect_for(Duration::from_secs(1));
    sim.run_until(Duration::from_secs(5), |_| false);
    let report = sim.server.shadow_updates.last().expect("a shadow report");
    let v: serde_json::Value = serde_json::from_str(report).expect("JSON report");
    assert_eq!(
        v["state"]["reported"]["trust"]["fresh"],
        serde_json::json!(false),
        "{report}"
    );

    let mut sim = trusted_sim(301);
    let before = Stopped::before(&sim);
    let events = sim.events.len();

    // Job A (v1.5) is created while the device is away for 2 h; the attacker records the
    // server's announcement of A (its notify-next, timestamped now, valid for 1 h).
    sim.disconnect_for(2 * hour);
    let mark = sim.server.jobs_sent.len();
    sim.add_job(release("a", Spec::new(5, 5), INSTALLED_SEQ + 1));
    let a_msgs = recorded(&sim, mark);
    assert!(!a_msgs.is_empty(), "the server announced A");
    // The operator cancels A and releases security fix B; from now on the attacker answers
    // every Jobs request of the device with A's recorded announcement.
    sim.cancel_job("a");
    sim.add_job(release("b", Spec::new(6, 6), INSTALLED_SEQ + 2));
    sim.server.freeze(a_msgs);

    // The device's last timestamp (at its connection) expired one hour later, while it was away.
    sim.run_until(hour + Duration::from_secs(60), |_| false);
    assert!(
        freshness_lost(&sim, events).is_some(),
        "no FreshnessLost within the timestamp's lifetime"
    );

    // It reconnects at T0 + 2 h: A's announcement is an hour past its expiry. Refused before
    // any image block; B never reaches the device; v1.1 runs.
    let spoke = sim.run_until(2 * hour, |s| !s.statuses("a").is_empty());
    assert!(spoke, "the device never answered the frozen A");
    // `check` then resets the device with the freeze still on. After a reset the agent's time
    // estimate is its persisted clock floor (D-8); A stays refused only if that floor followed
    // the 2 h of uptime (§3.4: the estimate checkpointed every `time_checkpoint`, 15 min), not
    // just the time of the last timestamp received (which A's is not older than).
    before.check(&mut sim, "a", &e3(SUB_STALE), When::Pre);
    assert_eq!(sim.server.job("b").status, JobStatus::Queued);
    assert!(sim.statuses("b").is_empty(), "the device saw B");
}
