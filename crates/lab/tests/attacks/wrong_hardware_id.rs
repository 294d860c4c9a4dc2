//! Attack 6, wrong hardware id (Uptane §5.4.4.2 "install incompatible software"): a genuine
//! release built for another board, targeted at this thing.

use super::*;

#[test]
fn wrong_hardware_id() {
    let mut sim = trusted_sim(601);
    // Release key, genuine manifest, but class id of "KIT_T2G_OTHER" (the server's create check
    // passes: the manifest matches its file).
    let other = release(
        "other",
        Spec::new(2, 2).board("KIT_T2G_OTHER"),
        INSTALLED_SEQ + 1,
    );
    let before = Stopped::before(&sim);
    sim.add_job(other);
    before.check(&mut sim, "other", "rejected: 0x00000003", When::Pre);
}
