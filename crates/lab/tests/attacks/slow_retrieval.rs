//! Attack 8, slow retrieval (TUF §1.5.2 "slow retrieval attacks"): the link is throttled so
//! the device stays on vulnerable code while it downloads forever.

use super::*;
use ferrota_agent::AgentEvent;

#[test]
fn slow_retrieval() {
    // One block every 10 s (about 400 B/s, under the 1024 B/s minimum): refused at the
    // deadline, about 60 s + 256 KB / 1024 B/s = 316 s after the manifest was accepted.
    let mut sim = trusted_sim(801);
    sim.net.per_block = Duration::from_secs(10);
    let before = Stopped::before(&sim);
    let t0 = sim.now;
    sim.add_job(release("slow", Spec::new(2, 2), INSTALLED_SEQ + 1));
    run_to_end(&mut sim, "slow");
    let took = sim.since(t0);
    let size = u64::from(v1().spec.len);
    let deadline = Duration::from_secs(60 + size / 1024);
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(30),
        "refused after {took:?}, deadline {deadline:?}"
    );
    before.check_ended(&mut sim, "slow", "0x0000000e: 0x00000001", When::During);
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e, AgentEvent::Activated)),
        "activated"
    );

    // Contrast: the same release over a link at 2 ms a block succeeds.
    let mut sim = trusted_sim(802);
    sim.net.per_block = Duration::from_millis(2);
    sim.add_job(release("fast", Spec::new(2, 2), INSTALLED_SEQ + 1));
    succeeds(&mut sim, "fast", Spec::new(2, 2).version.0);
}
