//! Attack 2, rollback (TUF §1.5.2 "rollback attacks"): an older, genuinely signed image offered
//! again, with a manifest the release key really signed and a sequence number above the device's.

use super::*;

#[test]
fn rollback() {
    let mut sim = trusted_sim(201);
    // v1.0.0 (below the running v1.1.0), boot-signed by the vendor, re-released with seq 10.
    let old = release("old", Spec::new(0, 1), 10);
    let before = Stopped::before(&sim);
    sim.add_job(old);
    // Decided from the manifest's version, before any image block.
    before.check(&mut sim, "old", "rejected: 0x0000000f", When::Pre);
    // `check` reset the device: the DBM booted v1.1.0 again.
    assert_eq!(sim.running_version(), v1().spec.version.0);
}
