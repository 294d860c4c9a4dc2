//! Attack 7, replay (Uptane's "replay attack", TUF's rollback of metadata): an update the device
//! already installed, offered again, with new or with recorded signatures.

use super::*;
use ferrota_manifest::{SUB_SEQUENCE, SUB_STALE};

#[test]
fn replay() {
    let mut sim = trusted_sim(701);
    // The device installs A (seq 6, v1.2) then B (seq 7, v1.3).
    let a = release("a", Spec::new(2, 2), INSTALLED_SEQ + 1);
    let b = release("b", Spec::new(3, 3), INSTALLED_SEQ + 2);
    let mark = sim.server.jobs_sent.len();
    sim.add_job(a.clone());
    // What the server sent the device when it announced A (timestamped then).
    let a_announced = sim.server.jobs_sent[mark..].to_vec();
    assert!(!a_announced.is_empty());
    succeeds(&mut sim, "a", Spec::new(2, 2).version.0);
    sim.add_job(b);
    succeeds(&mut sim, "b", Spec::new(3, 3).version.0);

    // a) A compromised server offers A again: its genuine metadata file and image, a fresh
    // timestamp naming it. Refused by sequence number (6 is not above 7), before any image
    // block.
    let before = Stopped::before(&sim);
    let again = FirmwareJob {
        id: "a-again".into(),
        ..a
    };
    sim.add_job(again);
    before.check(&mut sim, "a-again", &e3(SUB_SEQUENCE), When::Pre);

    // b) An attacker on the path replays the message that announced A, old timestamp and all:
    // refused as stale (older than the newest timestamp the device accepted).
    let before = Stopped::before(&sim);
    let reports = sim.statuses("a").len();
    for (topic, payload) in a_announced {
        sim.send_to_device(topic, payload);
    }
    let reported = sim.run_until(LIMIT, |s| s.statuses("a").len() > reports);
    assert!(reported, "the device said nothing of the replayed A");
    before.check_ended(&mut sim, "a", &e3(SUB_STALE), When::Pre);
    // B still runs (`check_ended` reset the device).
    assert_eq!(sim.running_version(), Spec::new(3, 3).version.0);
}
