//! Resets and power cuts: the resume record (seed weakness #5) and a cut at every flash
//! operation of a whole update; the agent in virtual time against the real server's Jobs and
//! Streams services (`ferrota_lab::sim_service`).

use crate::common;

use std::time::Duration;

use common::image::{FULL, Spec, image};
use common::*;
use ferrota_agent::AgentEvent;
use ferrota_boot::Bank;
use ferrota_proto::job::JobStatus;

const LIMIT: Duration = Duration::from_secs(600);

#[test]
fn weakness_5_reset_during_download_resumes() {
    let v1 = image(Spec::new(1, 1).len(FULL));
    let v2 = image(Spec::new(2, 2).len(FULL));
    for cut in [false, true] {
        let mut sim = Sim::new(&v1, 71);
        sim.net.per_block = Duration::from_millis(2);
        sim.add_job(job("job-5", v2.clone()));
        sim.run_until(LIMIT, |s| {
            s.agent().progress().is_some_and(|(r, _)| r >= 700)
        });
        let held = sim.agent().progress().unwrap().0;
        let ops_before = sim.dev.op_count();
        if cut {
            sim.cut_power_now();
            // The next block write hits the cut.
            sim.run_until(LIMIT, |s| s.power_cuts == 1);
        } else {
            sim.reset_now();
        }
        assert!(sim.run_job("job-5", LIMIT));
        assert_eq!(
            sim.server.job("job-5").status,
            JobStatus::Succeeded,
            "cut {cut}"
        );
        assert_eq!(sim.running_version(), v2.spec.version.0);
        let resumed = sim
            .events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::DownloadStarted { resumed, .. } => Some(*resumed),
                _ => None,
            })
            .nth(1)
            .expect("a second start after the reset");
        // All but the chunks in progress (8 blocks a 32 KB chunk, four requests in flight)
        // were kept.
        assert!(
            resumed + 5 * 8 >= held,
            "cut {cut}: kept {resumed} of {held}"
        );
        // Only missing blocks were fetched after the reset (plus what was in flight).
        let refetched = sim.server.blocks_sent() - 1016;
        assert!(
            refetched <= 5 * 8 + 128 + 32,
            "cut {cut}: {refetched} blocks fetched twice"
        );
        let _ = ops_before;
    }
}

#[test]
fn resume_record_costs_one_word_per_chunk() {
    // Count work-flash programs during a whole download: the header, one mark per 32 KB chunk,
    // the marker-log records — never one per block.
    let v1 = image(Spec::new(1, 1).len(FULL));
    let v2 = image(Spec::new(2, 2).len(FULL));
    let mut sim = Sim::new(&v1, 72);
    sim.add_job(job("job-w", v2.clone()));
    let before = work_words(&sim.dev);
    sim.run_until(LIMIT, |s| {
        s.agent().progress().is_some_and(|(r, t)| r == t - 1)
    });
    let after = work_words(&sim.dev);
    let written = after - before;
    // 9 header words + 126 or 127 chunk marks.
    assert!(
        written <= 9 + 127,
        "{written} work-flash words for 1015 blocks"
    );
}

fn work_words(dev: &ferrota_t2g::Device) -> u32 {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    let mut buf = vec![0u8; ferrota_agent::RESUME_AREA_LEN as usize];
    d.read(ferrota_agent::RESUME_AREA, &mut buf).unwrap();
    buf.chunks(4).filter(|w| *w != [0xFF; 4]).count() as u32
}

/// One whole update, small image, with the power cut at flash operation `op` (counted from the
/// job's arrival), before it or tearing it. The update must still end SUCCEEDED on v2.
fn update_with_cut(op: Option<(u64, bool)>) -> (u64, Sim) {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    let mut sim = Sim::new(&v1, 81);
    let op0 = sim.dev.op_count();
    if let Some((n, tear)) = op {
        sim.cut_power_at_op(cut_at(op0 + n, n, tear));
    }
    sim.add_job(job("job-pc", v2.clone()));
    let done = sim.run_job("job-pc", LIMIT);
    assert!(
        done,
        "cut {op:?}: job not finished; statuses {:?}",
        sim.statuses("job-pc")
    );
    let status = sim.server.job("job-pc").status;
    assert_eq!(
        status,
        JobStatus::Succeeded,
        "cut {op:?}: {:?}",
        sim.statuses("job-pc")
    );
    // Let the device settle (the final status is out before anything else happens).
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), v2.spec.version.0, "cut {op:?}");
    assert_eq!(sim.running.unwrap().bank, Bank::Upper, "cut {op:?}");
    let st = state(&sim.dev);
    assert_eq!(st.trial, None, "cut {op:?}");
    assert_eq!(st.floor, 2, "cut {op:?}");
    (sim.dev.op_count() - op0, sim)
}

#[test]
fn power_cut_at_every_flash_operation_of_an_update() {
    let (total, clean) = update_with_cut(None);
    assert_eq!(clean.power_cuts, 0);
    assert!(total > 500, "{total} operations");
    let mut cuts = 0;
    for n in 0..total {
        let (_, sim) = update_with_cut(Some((n, false)));
        cuts += sim.power_cuts;
        // Tearing every 4th operation as well (a half-programmed row, a half-erased sector).
        if n % 4 == 0 {
            let (_, sim) = update_with_cut(Some((n, true)));
            cuts += sim.power_cuts;
        }
    }
    assert!(cuts as u64 >= total, "{cuts} cuts for {total} operations");
}
