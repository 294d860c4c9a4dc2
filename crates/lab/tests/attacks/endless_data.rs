//! Attack 4, endless data (TUF §1.5.2 "endless data attacks"): the size the device would
//! download is inflated, so it fills flash or never finishes.

use super::*;
use ferrota_manifest::{SUB_MANIFEST, SUB_MISMATCH};
use ferrota_sim::images::ota::FULL;
use ferrota_t2g::geometry::BANK_SIZE;

#[test]
fn endless_data() {
    // a) A man in the middle enlarges the image's `filesize` in the job document to the seed's
    // whole-bank image (4,161,536 bytes, which the agent's own size limits allow); the manifest
    // says the real size (256 KB). Refused before any image block.
    let mut sim = trusted_sim(401);
    sim.server.edit_jobs(|v| {
        if let Some(f) = v.pointer_mut("/execution/jobDocument/afr_ota/files/0/filesize") {
            *f = serde_json::json!(FULL);
        }
    });
    let before = Stopped::before(&sim);
    sim.add_job(release("big", Spec::new(2, 2), INSTALLED_SEQ + 1));
    before.check(&mut sim, "big", &e3(SUB_MISMATCH), When::Pre);

    // The design's size, a whole bank (`BANK_SIZE`): already refused by the agent's size
    // limits (`0x000000e5`, file too large for the bank), before the manifest is fetched.
    let mut sim = trusted_sim(403);
    sim.server.edit_jobs(|v| {
        if let Some(f) = v.pointer_mut("/execution/jobDocument/afr_ota/files/0/filesize") {
            *f = serde_json::json!(BANK_SIZE);
        }
    });
    let before = Stopped::before(&sim);
    sim.add_job(release("bank", Spec::new(2, 2), INSTALLED_SEQ + 1));
    before.check(&mut sim, "bank", "0x000000e5: 0x00000000", When::Pre);
    assert_eq!(sim.server.blocks_sent_of(1), 0, "manifest blocks sent");

    // b) The metadata file's own `filesize` enlarged to 1 MB: more than the one block a
    // manifest may take. Refused before the manifest file is even asked for.
    let mut sim = trusted_sim(402);
    sim.server.edit_jobs(|v| {
        if let Some(f) = v.pointer_mut("/execution/jobDocument/afr_ota/files/1/filesize") {
            *f = serde_json::json!(1u32 << 20);
        }
    });
    let before = Stopped::before(&sim);
    let requests = sim.server.stream_requests;
    sim.add_job(release("big-manifest", Spec::new(2, 2), INSTALLED_SEQ + 1));
    before.check(&mut sim, "big-manifest", &e3(SUB_MANIFEST), When::Pre);
    assert_eq!(sim.server.blocks_sent_of(1), 0, "manifest blocks sent");
    assert_eq!(sim.server.stream_requests, requests, "stream requests");
}
