//! Issue #19 on the simulated board against the real server's services: the packed full image,
//! the delta rebuilt from the running bank, the fall-back when the running bank is not the
//! delta's base, a corrupted packed file, and a power cut at every flash operation of a delta
//! update.

use crate::common;

use std::time::Duration;

use common::image::{Spec, image};
use common::*;
use ferrota_agent::{AgentEvent, FileEncoding};
use ferrota_boot::Bank;
use ferrota_proto::job::JobStatus;

const LIMIT: Duration = Duration::from_secs(600);

/// The agent as shipped: packed files and deltas taken when offered.
fn packed() -> AgentSettings {
    AgentSettings {
        packed: true,
        ..AgentSettings::default()
    }
}

/// The files the agent chose, in order (one per download start).
fn chosen(sim: &Sim) -> Vec<(FileEncoding, u32)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::FileChosen {
                encoding,
                file_bytes,
            } => Some((*encoding, *file_bytes)),
            _ => None,
        })
        .collect()
}

/// A device on v1 whose report the server has read (the delta is offered by reported version).
fn device_on_v1(seed: u64) -> (Sim, std::sync::Arc<ferrota_sim::images::ota::TestImage>) {
    let v1 = image(Spec::new(1, 1));
    let mut sim = Sim::with_settings(&v1, seed, packed());
    // Let the connection's shadow report reach the server.
    sim.run_until(Duration::from_secs(2), |_| false);
    (sim, v1)
}

/// Runs OTA update `id` to its end: it must be SUCCEEDED with `version` running from the upper
/// bank; returns the files the agent chose.
fn succeeds(sim: &mut Sim, id: &str, version: u32) -> Vec<(FileEncoding, u32)> {
    assert!(sim.run_job(id, LIMIT), "{:?}", sim.statuses(id));
    assert_eq!(
        sim.server.job(id).status,
        JobStatus::Succeeded,
        "{:?}",
        sim.statuses(id)
    );
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), version);
    assert_eq!(sim.running.unwrap().bank, Bank::Upper);
    chosen(sim)
}

#[test]
fn delta_update_rebuilds_the_image_from_the_running_bank() {
    let (mut sim, v1) = device_on_v1(91);
    let v2 = image(Spec::new(2, 2));
    sim.add_job(job("delta", v2.clone()).delta_from(v1.clone()));
    let c = succeeds(&mut sim, "delta", v2.spec.version.0);
    assert_eq!(c.first().map(|c| c.0), Some(FileEncoding::Delta), "{c:?}");
    // Only the delta's blocks crossed the link (the test images' filler is random and new in
    // every version, so the delta is not small here: `ferrota bench delta` measures sizes on
    // real builds).
    let sent = sim.server.blocks_sent();
    assert_eq!(sent, c[0].1.div_ceil(4096), "blocks sent {sent}");
}

#[test]
fn packed_full_image_when_no_delta_fits() {
    let (mut sim, _v1) = device_on_v1(92);
    let v2 = image(Spec::new(2, 2));
    sim.add_job(job("packed", v2.clone()));
    let c = succeeds(&mut sim, "packed", v2.spec.version.0);
    assert_eq!(c.first().map(|c| c.0), Some(FileEncoding::Packed), "{c:?}");
    assert!(
        (c[0].1 as usize) < v2.file.len(),
        "packed {} ≥ image {}",
        c[0].1,
        v2.file.len()
    );
}

#[test]
fn a_running_bank_that_is_not_the_base_falls_back_to_the_packed_image() {
    // The server offers the delta by the reported version; the device runs another build of
    // that version (one CM0+ byte differs), so its bank does not hash to the base.
    let (mut sim, _v1) = device_on_v1(93);
    let other_build = image(Spec::new(1, 1).tamper_cm0p());
    let v2 = image(Spec::new(2, 2));
    sim.add_job(job("wrong-base", v2.clone()).delta_from(other_build));
    let c = succeeds(&mut sim, "wrong-base", v2.spec.version.0);
    assert_eq!(c.first().map(|c| c.0), Some(FileEncoding::Packed), "{c:?}");
}

/// A delta whose block `block` arrives with byte `at` inverted: FAILED with `reason`'s code
/// (prefix), nothing activated, the old image still running and still the boot choice.
fn corrupted_delta(seed: u64, block: u32, at: usize, reason: &str) {
    let (mut sim, v1) = device_on_v1(seed);
    let v2 = image(Spec::new(2, 2));
    // Files: 0 the image, 1 the packed image, 2 the delta.
    sim.server.corrupt_block(2, block, at);
    sim.add_job(job("bad", v2).delta_from(v1.clone()));
    assert!(sim.run_job("bad", LIMIT));
    assert_eq!(sim.server.job("bad").status, JobStatus::Failed);
    let r = sim.server.job("bad").details.get("reason").cloned();
    assert!(
        r.as_deref().is_some_and(|r| r.starts_with(reason)),
        "block {block} byte {at}: {r:?}"
    );
    assert!(!sim.events.contains(&AgentEvent::Activated));
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), v1.spec.version.0);
    assert_eq!(sim.running.unwrap().bank, Bank::Lower);
    assert_eq!(state(&sim.dev).trial, None);
}

#[test]
fn a_corrupted_delta_ends_failed_with_the_old_image_running() {
    // A frame header that breaks the format: refused as it arrives.
    corrupted_delta(94, 1, 0, "0x000000e3: 0x00000002");
    // The header block (its CRC).
    corrupted_delta(95, 0, 0x40, "0x000000e3: 0x00000002");
    // A byte inside a frame's compressed payload: refused when it does not decode, or when
    // the rebuilt image fails its checks (CM0+ region or the OTA signature).
    corrupted_delta(96, 1, 200, "0x000000e3: 0x0000000");
}

/// Every code flash sector's erase count and erased state (work flash, where the resume
/// record lives, left out): equal before and after means nothing was erased in either bank and
/// nothing written into an erased sector (the strict NOR model refuses a write over data that
/// is not erased).
fn code_flash(dev: &ferrota_t2g::Device) -> Vec<(u32, u32, bool)> {
    use ferrota_t2g::geometry::{CODE_BASE, CODE_SIZE};
    dev.sectors()
        .into_iter()
        .filter(|s| (CODE_BASE..CODE_BASE + CODE_SIZE).contains(&s.addr))
        .map(|s| (s.addr, s.erase_count, s.erased))
        .collect()
}

#[test]
fn a_valid_header_that_disagrees_with_the_job_document_is_refused_before_writing() {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    let params = ferrota_delta::encode::Params::default();
    let b = params.block_size as usize;
    // Headers that parse (CRC and every rule) but describe another file than the delta the
    // job document names: a delta from another build of v1 (its base hash differs), and the
    // packed full image (no base at all).
    let other_base = image(Spec::new(1, 1).tamper_cm0p());
    let from_other = ferrota_delta::encode::delta(&other_base.file, &v2.file, &params).unwrap();
    let full = ferrota_delta::encode::full(&v2.file, &params).unwrap();
    for (k, header) in [&from_other[..b], &full[..b]].into_iter().enumerate() {
        let id = format!("swapped-{k}");
        let (mut sim2, _) = device_on_v1(98 + k as u64);
        // Files: 0 the image, 1 the packed image, 2 the delta.
        sim2.server.replace_block(2, 0, header.to_vec());
        let before = code_flash(&sim2.dev);
        sim2.add_job(job(&id, v2.clone()).delta_from(v1.clone()));
        assert!(sim2.run_job(&id, LIMIT));
        assert_eq!(sim2.server.job(&id).status, JobStatus::Failed);
        let r = sim2.server.job(&id).details.get("reason").cloned();
        assert_eq!(r.as_deref(), Some("0x000000e3: 0x00000002"), "{id}");
        assert_eq!(
            chosen(&sim2).first().map(|c| c.0),
            Some(FileEncoding::Delta),
            "{id}"
        );
        // Nothing was erased or written in either bank; v1 still runs and is the boot choice.
        assert!(code_flash(&sim2.dev) == before, "{id}: code flash changed");
        assert_eq!(before.len(), 2 * (127 + 16), "both banks' sectors");
        sim2.run_until(Duration::from_secs(2), |_| false);
        assert_eq!(sim2.running_version(), v1.spec.version.0);
        assert_eq!(sim2.running.unwrap().bank, Bank::Lower);
        assert_eq!(state(&sim2.dev).trial, None);
    }
}

/// One delta update of a 128 KB file (the CM0+ region and 64 KB of CM7 code: every kind of
/// chunk, in a quarter of the operations of the 256 KB images) with the power cut at flash
/// operation `op` (counted from the job's arrival), before it or tearing it. It must end
/// SUCCEEDED on v2.
fn delta_with_cut(op: Option<(u64, bool)>) -> (u64, Sim) {
    let v1 = image(Spec::new(1, 1).len(0x2_0000));
    let mut sim = Sim::with_settings(&v1, 97, packed());
    sim.run_until(Duration::from_secs(2), |_| false);
    let v2 = image(Spec::new(2, 2).len(0x2_0000));
    let op0 = sim.dev.op_count();
    if let Some((n, tear)) = op {
        sim.cut_power_at_op(cut_at(op0 + n, n, tear));
    }
    sim.add_job(job("delta-pc", v2.clone()).delta_from(v1));
    let done = sim.run_job("delta-pc", LIMIT);
    assert!(
        done,
        "cut {op:?}: job not finished; statuses {:?}",
        sim.statuses("delta-pc")
    );
    assert_eq!(
        sim.server.job("delta-pc").status,
        JobStatus::Succeeded,
        "cut {op:?}: {:?}",
        sim.statuses("delta-pc")
    );
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), v2.spec.version.0, "cut {op:?}");
    assert_eq!(sim.running.unwrap().bank, Bank::Upper, "cut {op:?}");
    let st = state(&sim.dev);
    assert_eq!(st.trial, None, "cut {op:?}");
    (sim.dev.op_count() - op0, sim)
}

#[test]
fn power_cut_at_every_flash_operation_of_a_delta_update() {
    // The delta these runs fetch (the server packs with the default parameters) has blocks
    // shared by two chunks: a cut between their completions makes the agent fetch such a block
    // again and skip the finished chunk's frames in it (writing them again over programmed
    // flash would be refused by the strict NOR model).
    let v1 = image(Spec::new(1, 1).len(0x2_0000));
    let v2 = image(Spec::new(2, 2).len(0x2_0000));
    let params = ferrota_delta::encode::Params::default();
    let d = ferrota_delta::encode::delta(&v1.file, &v2.file, &params).unwrap();
    let h = ferrota_delta::Header::parse(&d[..params.block_size as usize]).unwrap();
    let shared = (1..h.block_count())
        .filter(|&b| h.chunks_of_block(b).is_some_and(|(a, e)| e - a > 1))
        .count();
    assert!(shared > 0, "no block holds frames of two chunks");
    let (total, clean) = delta_with_cut(None);
    assert_eq!(clean.power_cuts, 0);
    assert_eq!(
        chosen(&clean).first().map(|c| c.0),
        Some(FileEncoding::Delta)
    );
    assert!(total > 20, "{total} operations");
    let mut cuts = 0;
    let mut resumed_delta = 0;
    for n in 0..total {
        // Tearing every 4th operation as well (a half-programmed row, a half-erased sector).
        for tear in [false, true] {
            if tear && n % 4 != 0 {
                continue;
            }
            let (_, sim) = delta_with_cut(Some((n, tear)));
            cuts += sim.power_cuts;
            // Resumed with the delta again, not restarted on another file.
            if chosen(&sim)
                .iter()
                .skip(1)
                .all(|c| c.0 == FileEncoding::Delta)
            {
                resumed_delta += 1;
            }
        }
    }
    assert!(cuts as u64 >= total, "{cuts} cuts for {total} operations");
    assert!(
        resumed_delta as u64 >= total,
        "{resumed_delta} runs of {total} operations kept the delta"
    );
}
