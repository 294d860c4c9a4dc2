//! Design #20 build item 4: the AwsPlain policy (a device of real AWS IoT, no metadata) still
//! updates on the pinned code-signing key, and says so; the same job to a Require device is
//! refused before any image block.

use super::*;
use ferrota_agent::AgentEvent;
use ferrota_manifest::SUB_MANIFEST;

#[test]
fn aws_plain_mode_warns() {
    // AwsPlain, against a server without trust (as AWS): the job without a metadata file
    // succeeds, with the warning event and `"plain": 1` in the shadow report.
    let v2 = image(Spec::new(2, 2));
    let mut sim = Sim::new(&v1(), 1201);
    sim.run_until(Duration::from_secs(2), |_| false);
    sim.add_job(job("plain", v2.clone()));
    succeeds(&mut sim, "plain", v2.spec.version.0);
    assert!(
        sim.events.contains(&AgentEvent::PlainSignatureAccepted),
        "no PlainSignatureAccepted"
    );
    let plain = sim.server.shadow_updates.iter().any(|r| {
        serde_json::from_str::<serde_json::Value>(r)
            .is_ok_and(|v| v["state"]["reported"]["trust"]["plain"] == serde_json::json!(1))
    });
    assert!(
        plain,
        "no report says plain: 1: {:?}",
        sim.server.shadow_updates
    );

    // The same job to a Require device (server with trust: the answer is timestamped): no
    // metadata file, refused before any image block.
    let mut sim = trusted_sim(1202);
    let before = Stopped::before(&sim);
    sim.add_job(job("plain", v2));
    before.check(&mut sim, "plain", &e3(SUB_MANIFEST), When::Pre);
}
