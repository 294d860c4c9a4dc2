//! Attack 5, mix-and-match (TUF §1.5.2 "mix-and-match attacks"): pieces of different genuine
//! releases combined.

use super::*;
use ferrota_manifest::{SUB_METADATA, SUB_MISMATCH};

#[test]
fn mix_and_match() {
    let b_img = image(Spec::new(2, 2));
    let c_img = image(Spec::new(3, 3));
    assert_eq!(b_img.file.len(), c_img.file.len());
    let key = trust::release_key_of(1);
    let b_bundle = trust::bundle_for(&b_img, INSTALLED_SEQ + 1, 0, None, key, &[]);
    let c_bundle = trust::bundle_for(&c_img, INSTALLED_SEQ + 2, 0, None, key, &[]);

    // a) Release B's metadata file with release C's image (same size, both genuine, C's file
    // signature by the release key): the server's create check is off. The job document
    // agrees with B's manifest (same size), so the image is fetched, and its CM0+ region (C's
    // version record and digest) is refused against B's manifest; never a trial.
    let mut sim = trusted_sim(501);
    let mixed = job("mixed", c_img.clone())
        .signed_by(key)
        .with_bundle(b_bundle.clone(), key);
    let before = Stopped::before(&sim);
    sim.add_job_unchecked(mixed);
    before.check(&mut sim, "mixed", &e3(SUB_MISMATCH), When::During);

    // b) Genuine job B, but the stream's metadata file (file 1) replaced by release C's
    // genuine one: the timestamp names B's file. Refused before any image block.
    let mut sim = trusted_sim(502);
    sim.server.replace_block(1, 0, c_bundle);
    let before = Stopped::before(&sim);
    sim.add_job(job("b", b_img).signed_by(key).with_bundle(b_bundle, key));
    before.check(&mut sim, "b", &e3(SUB_METADATA), When::Pre);
}
