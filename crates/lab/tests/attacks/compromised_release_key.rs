//! Attack 9, a compromised release key (Uptane's "compromise of an online key"; TUF §6.1 key
//! compromise): the attacker holds release key R1. What it buys before the rotation, and that
//! a rotation (root v2, release key R2, signed by the offline root keys) takes it back.

use super::*;
use ferrota_agent::AgentEvent;
use ferrota_manifest::{SUB_METADATA, SUB_SEQUENCE, SUB_SIGNER};

fn accepted(sim: &Sim, from: usize, seq: u32) -> bool {
    sim.events[from..]
        .iter()
        .any(|e| matches!(e, AgentEvent::ManifestAccepted { sequence, .. } if *sequence == seq))
}

#[test]
fn compromised_release_key() {
    let r1 = trust::release_key_of(1);
    let evil = attacker_image();
    let mut sim = trusted_sim(901);

    // a) R1 alone, on the path (no timestamp key): the genuine job B is announced, and the
    // attacker swaps the stream's metadata file for one it signed with R1 naming its image
    // (and the image too). The metadata file's signature is good, but the server's timestamp
    // names B's file: refused before any image block.
    let b = release("b", Spec::new(2, 2), INSTALLED_SEQ + 1);
    let forged = trust::bundle_for(&evil, 20, 0, None, r1, &[]);
    assert_eq!(
        forged.len(),
        b.bundle.as_ref().unwrap().len(),
        "same-size swap"
    );
    sim.server.replace_block(1, 0, forged);
    sim.server.replace_file(0, evil.file.clone(), BLOCK);
    let before = Stopped::before(&sim);
    sim.add_job(b);
    before.check(&mut sim, "b", &e3(SUB_METADATA), When::Pre);

    // b) R1 and the server (timestamp key, job store). A fresh device, no swap on the path.
    let mut sim = trusted_sim(902);
    let running = v1();
    // Fast-forward: a manifest with seq 1,000,000 for the running image. Refused as the same
    // version, before any image block. (The design expected the manifest to be accepted first,
    // raising the floor; the agent compares the version in `check_manifest`, before it
    // accepts and persists a manifest, so this one raises nothing.)
    let events = sim.events.len();
    let before = Stopped::before(&sim);
    sim.add_job_unchecked(signed_release("ff", running, 1_000_000, r1, &[]));
    before.check(&mut sim, "ff", "rejected: 0x00000010", When::Pre);
    assert!(
        !accepted(&sim, events, 1_000_000),
        "a refused manifest was accepted"
    );
    // Attacker code under an R1 manifest with seq 1,000,001: the manifest passes every check
    // and is accepted (its sequence becomes the floor), then the boot signature (the board's
    // boot key, which the attacker does not hold) refuses the image at the CM0+ region.
    let events = sim.events.len();
    let before = Stopped::before(&sim);
    sim.add_job_unchecked(signed_release("code", evil.clone(), 1_000_001, r1, &[]));
    before.check(&mut sim, "code", &e3(1), When::During);
    assert!(
        accepted(&sim, events, 1_000_001),
        "the attacker's manifest was not accepted"
    );
    // The genuine next release (seq 8) is now refused as a replay: the denial of service the
    // stolen key buys.
    let before = Stopped::before(&sim);
    sim.add_job(release("genuine-8", Spec::new(2, 2), 8));
    before.check(&mut sim, "genuine-8", &e3(SUB_SEQUENCE), When::Pre);

    // The rotation: `ferrota key rotate --role release` writes root v2 (release key R2), signed
    // by root v1's threshold and by v2's own root keys; the server restarts with it. Release
    // seq 8 signed by R2 carries root v2: the device walks to v2, R1 (which set the 1,000,001
    // floor) is no longer a release key, so the floor falls back to the installed sequence 5.
    sim.server.set_trust(&TrustSetup::chain(2));
    let events = sim.events.len();
    let r2 = trust::release_key_of(2);
    let v2 = trust::root_chain(2);
    sim.add_job(signed_release(
        "rotated-8",
        image(Spec::new(2, 2)),
        8,
        r2,
        &v2,
    ));
    succeeds(&mut sim, "rotated-8", Spec::new(2, 2).version.0);
    assert!(
        sim.events[events..]
            .iter()
            .any(|e| matches!(e, AgentEvent::RootUpdated { version: 2 })),
        "no RootUpdated to v2"
    );
    // After the rotation an R1 manifest is refused at its signature, before any image block.
    let before = Stopped::before(&sim);
    sim.add_job_unchecked(signed_release(
        "r1-after",
        image(Spec::new(4, 4)),
        9,
        r1,
        &[],
    ));
    before.check(&mut sim, "r1-after", &e3(SUB_SIGNER), When::Pre);
}
