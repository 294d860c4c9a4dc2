//! Signed update metadata through C: `FerrotaConfig.require_signed_metadata` with the trust
//! anchor and the hardware id. With the signed metadata file and a fresh timestamp the update
//! succeeds on the manifest (never on the plain signature) and the manifest's sequence lands in
//! the trust area; a job without the metadata file is refused before any image block, with no
//! sequence stored. (A configuration without the anchor is refused at init: boundary.rs.)

mod common;

use std::ptr::null_mut;

use common::{Board, CData, Mem, run};
use ferrota_agent_ffi::*;
use ferrota_manifest::store;
use ferrota_sim::harness::THING;
use ferrota_sim::images::ota::{Spec, TestImage, image};
use ferrota_sim::service::{JobsStreams, OtaFile, Times};
use ferrota_sim::trust::{self as fx, file_digest, file_signature, release_key_of};

/// Unix seconds of the service's clock.
const EPOCH: u64 = 1_800_000_000;

/// One firmware job for `img`: with `bundle` the metadata file (file 1, type 142) and the image
/// re-signed by the release key, as a Require-mode release is; a fresh timestamp naming the
/// bundle in every `$next/get` answer.
fn signed_job(img: &TestImage, bundle: Option<&[u8]>) -> JobsStreams {
    let signature = match bundle {
        Some(_) => file_signature(&img.file, release_key_of(1)),
        None => img.signature.clone(),
    };
    let mut files = vec![OtaFile {
        cert_file: None,
        ..OtaFile::image(img.file.clone(), Some(signature))
    }];
    if let Some(b) = bundle {
        files.push(OtaFile {
            path: "/ota/image.suit".into(),
            size: b.len() as u32,
            file_type: 142,
            cert_file: None,
            signature: None,
            data: b.to_vec(),
        });
    }
    let mut jobs = JobsStreams::new("job-signed", "stream-signed", files);
    jobs.times = Times {
        now: EPOCH,
        queued_at: EPOCH,
        last_updated_at: EPOCH,
    };
    jobs.ferrota_timestamp = Some(fx::timestamp(
        THING,
        EPOCH,
        EPOCH + 3600,
        bundle.map(file_digest),
        1,
    ));
    jobs
}

/// The test configuration in Require mode: the fixture's root v1 as the anchor.
fn require(data: &CData, board: &Board) -> FerrotaConfig {
    let anchor = fx::anchor_static();
    FerrotaConfig {
        trust_anchor: anchor.as_ptr(),
        trust_anchor_len: anchor.len(),
        require_signed_metadata: 1,
        ..data.config(board)
    }
}

fn start_require(mem: &mut Mem, board: &mut Board, data: &CData) -> *mut FerrotaAgent {
    let cfg = require(data, board);
    let p = board.platform();
    let mut out = null_mut();
    // SAFETY: everything lives for the test; `mem` is aligned and large enough.
    let st =
        unsafe { ferrota_agent_init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &p, 1_000_000, &mut out) };
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    out
}

/// The trust store as the next start reads it: the installed and the highest seen manifest
/// sequence.
fn trust_store(board: &Board) -> (u32, u32) {
    let mut d = board.dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).expect("work flash");
    let mut area = d
        .work_flash_range(store::TRUST_AREA, store::TRUST_AREA_LEN)
        .expect("the trust area");
    let s = store::read(&mut area, &fx::trusted_anchor()).expect("the store reads back");
    (s.installed_seq, s.seen_seq)
}

#[test]
fn require_mode_from_c_updates_on_the_manifest_and_stores_its_sequence() {
    use FerrotaEventKind::*;
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let v2 = image(Spec::new(2, 2));
    let bundle = fx::bundle(&v2, 6);
    let mut server = signed_job(&v2, Some(&bundle));
    let mut now = 1_000_000u64;
    let agent = start_require(&mut mem, &mut board, &data);
    let mut accepted = None;
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventResetRequested,
        |_, _, e| {
            if e.kind == FerrotaEventManifestAccepted {
                accepted = Some((e.a, e.b));
            }
        },
    );
    assert!(
        events.contains(&FerrotaEventTimestampAccepted),
        "{events:?}"
    );
    assert!(events.contains(&FerrotaEventActivated), "{events:?}");
    assert!(
        !events.contains(&FerrotaEventPlainSignatureAccepted),
        "Require never falls back to the plain signature: {events:?}"
    );
    assert_eq!(
        accepted,
        Some((6, v2.spec.version.0)),
        "the manifest's sequence and version"
    );
    assert_eq!(
        trust_store(&board),
        (6, 6),
        "the manifest's sequence was stored"
    );
    // SAFETY: the live agent.
    assert_eq!(
        unsafe { ferrota_agent_deinit(agent) },
        FerrotaStatus::FerrotaOk
    );
}

#[test]
fn require_mode_from_c_refuses_a_job_without_metadata_before_any_image_block() {
    use FerrotaEventKind::*;
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let v2 = image(Spec::new(2, 2));
    let mut server = signed_job(&v2, None);
    let mut now = 1_000_000u64;
    let agent = start_require(&mut mem, &mut board, &data);
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventJobFailed,
        |_, _, _| {},
    );
    assert!(!events.contains(&FerrotaEventDownloadStarted), "{events:?}");
    assert!(!events.contains(&FerrotaEventActivated), "{events:?}");
    let mut stats = FerrotaStats::default();
    // SAFETY: the live agent, then ended.
    unsafe {
        assert_eq!(
            ferrota_agent_stats(agent, &mut stats),
            FerrotaStatus::FerrotaOk
        );
        assert_eq!(stats.blocks_accepted, 0, "no image block was taken");
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
    }
    assert!(
        server.updates.last().is_some_and(|u| u.contains("FAILED")),
        "{:?}",
        server.updates
    );
    assert_eq!(trust_store(&board), (0, 0), "no sequence stored");
}
