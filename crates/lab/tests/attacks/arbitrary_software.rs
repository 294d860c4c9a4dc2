//! Attack 1, arbitrary software (TUF §1.5.2 "arbitrary installation"): a compromised server or
//! path offers code the vendor never released.

use super::*;
use ferrota_manifest::{SUB_MISMATCH, SUB_SIGNER};

#[test]
fn arbitrary_software() {
    // a) A compromised server: a metadata file signed by a key no root lists, naming an
    // attacker image (boot-signed with a key the board does not hold); the server's create
    // check is off, and the server timestamps the job as usual. Refused at the manifest's
    // signature, before any image block.
    let mut sim = trusted_sim(101);
    let evil = attacker_image();
    let before = Stopped::before(&sim);
    sim.add_job_unchecked(signed_release(
        "evil",
        evil.clone(),
        100,
        trust::attacker_key(),
        &[],
    ));
    before.check(&mut sim, "evil", &e3(SUB_SIGNER), When::Pre);

    // b) A genuine release (manifest and job document untouched) whose image bytes are swapped
    // in the stream for the attacker's (same size): the first region the agent checks (the
    // CM0+ region, against the manifest's digest and the boot key) refuses it. The design
    // expects sub 10 (the manifest's CM0+ digest) and accepts sub 1 (the boot signature): any
    // `0x000000e3:` refusal, never a trial.
    let mut sim = trusted_sim(102);
    let genuine = release("genuine", Spec::new(2, 2), INSTALLED_SEQ + 1);
    sim.server.replace_file(0, evil.file.clone(), BLOCK);
    let before = Stopped::before(&sim);
    sim.add_job(genuine);
    before.check(&mut sim, "genuine", "0x000000e3: ", When::During);
    let (_, reason) = last_status(&sim, "genuine").unwrap();
    let reason = reason.unwrap();
    assert!(
        reason == e3(SUB_MISMATCH) || reason == e3(1),
        "swapped image refused as {reason}"
    );
}
