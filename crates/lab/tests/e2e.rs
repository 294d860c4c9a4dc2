//! End to end through the real server and mutual TLS on loopback: each demo step as its own
//! test (each on a fresh world: CA, server, keys, images, board), several boards updating at
//! once, and the testing aids (crash before the network, power cut at flash operation N).

use std::time::Duration;

use ferrota_boot::Bank;
use ferrota_device::board::{BoardEvent, Options};
use ferrota_lab::demo::{self, World};
use ferrota_lab::lab;

async fn world() -> World {
    demo::setup(true).await.expect("set-up")
}

macro_rules! assert_step {
    ($r:expr) => {{
        let r = $r.expect("step runs");
        assert!(r.ok, "step {} misbehaved: {}", r.step, r.outcome);
        r
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step1_first_boot_connects() {
    let mut w = world().await;
    assert_step!(demo::step1_first_boot(&mut w).await);
    w.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_2_to_4_update_tamper_downgrade() {
    let mut w = world().await;
    assert_step!(demo::step1_first_boot(&mut w).await);
    let r = assert_step!(demo::step2_update(&mut w).await);
    assert!(r.bytes >= 4_161_536, "a whole image moved: {}", r.bytes);
    // The download stats of the job count the download, which ran before the activation reset
    // (issue 14 item 12: they said "0 requests").
    let s = w.board.last_job_stats().expect("a job ended");
    assert_eq!(s.blocks_accepted, 1016, "{s:?}");
    assert!(s.requests > 0, "{s:?}");
    assert_step!(demo::step3_tampered(&mut w).await);
    // The refused download is locked in bank 0 (issue 14 item 1): no path boots it.
    let rep = ferrota_sim::boot_chain::report(&w.board.dev).expect("report");
    assert_eq!(rep.banks[0].mark, ferrota_sim::boot_chain::BankMark::Locked);
    let r = assert_step!(demo::step4_downgrade(&mut w).await);
    // The reason code with its words beside it (issue 14 item 6).
    assert!(
        r.outcome.contains("rejected: 0x0000000f ("),
        "{}",
        r.outcome
    );
    w.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_5_to_8_power_cut_self_test_user1_delta() {
    let mut w = world().await;
    assert_step!(demo::step1_first_boot(&mut w).await);
    assert_step!(demo::step2_update(&mut w).await);
    assert_step!(demo::step5_power_cut(&mut w).await);
    let r = assert_step!(demo::step6_self_test_fails(&mut w).await);
    assert!(r.outcome.contains("image state Valid"), "{}", r.outcome);
    // USER1 no longer boots the rejected v1.2.0 in bank 0 (issue 14 item 1).
    let r = assert_step!(demo::step7_user1(&mut w).await);
    assert!(
        r.outcome.contains("runs v1.1.0, image state Valid"),
        "{}",
        r.outcome
    );
    // Issue 19: v1.3.0 rebuilt from the running v1.1.0 and a delta, into the locked bank 0.
    let r = assert_step!(demo::step8_delta(&mut w).await);
    assert!(r.outcome.starts_with("delta of "), "{}", r.outcome);
    assert!(r.bytes > 0 && r.bytes < 4_161_536 / 20, "{}", r.bytes);
    let rep = ferrota_sim::boot_chain::report(&w.board.dev).expect("report");
    assert_eq!(
        rep.banks[0].mark,
        ferrota_sim::boot_chain::BankMark::None,
        "{rep:?}"
    );
    w.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_boards_update_at_once() {
    let w = world().await;
    let names = ["fleet-a", "fleet-b", "fleet-c"];
    let mut boards = Vec::new();
    for n in names {
        let (dev, cfg) = w.lab.add_device(n, &w.images.v1_0).await.unwrap();
        let quiet = Options {
            quiet: true,
            ..Options::default()
        };
        boards.push(lab::board(dev, cfg, quiet));
    }
    w.lab
        .update("fleet_v1_1_0", &names, &w.images.v1_1)
        .await
        .unwrap();
    let runs = boards.into_iter().map(|mut b| {
        tokio::spawn(async move {
            let (ev, met) = lab::drive(&mut b, Duration::from_secs(60), |e| {
                e.last() == Some(&BoardEvent::JobSucceeded)
            })
            .await
            .unwrap();
            (met, ev)
        })
    });
    for (i, r) in futures_join(runs).await.into_iter().enumerate() {
        let (met, ev) = r;
        assert!(met, "{}: {ev:?}", names[i]);
        assert!(ev.iter().any(|e| matches!(
            e,
            BoardEvent::Booted {
                bank: Bank::Upper,
                ..
            }
        )));
    }
    for n in names {
        let (s, _) = w.lab.terminal_status("fleet_v1_1_0", n).await.unwrap();
        assert_eq!(s, "SUCCEEDED", "{n}");
    }
    w.lab.shutdown().await;
}

async fn futures_join<T: Send + 'static>(
    hs: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in hs.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_image_that_crashes_before_the_network_is_reverted() {
    let mut w = world().await;
    assert_step!(demo::step1_first_boot(&mut w).await);
    let mut o = w.board.opts.clone();
    o.crash_on_trial = true;
    w.board.set_options(o);
    w.lab
        .update("crashy", &[demo::THING], &w.images.v1_1)
        .await
        .unwrap();
    // The DBM's budget (3 trial boots) runs out; v1.0.0 boots again, and the agent reports
    // the job FAILED from the marker log's REVERTED record.
    let (ev, met) = lab::drive(&mut w.board, Duration::from_secs(30), |e| {
        matches!(e.last(), Some(BoardEvent::JobFailed(_)))
    })
    .await
    .unwrap();
    let crashes = ev.iter().filter(|e| **e == BoardEvent::Crashed).count();
    assert!(met, "{ev:?}");
    assert_eq!(crashes, 3, "{ev:?}");
    assert!(ev.iter().any(|e| matches!(
        e,
        BoardEvent::Booted {
            bank: Bank::Lower,
            ..
        }
    )));
    let (s, _) = w.lab.terminal_status("crashy", demo::THING).await.unwrap();
    assert_eq!(s, "FAILED");
    w.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_at_flash_operation_n_is_survived() {
    let mut w = world().await;
    assert_step!(demo::step1_first_boot(&mut w).await);
    let mut o = w.board.opts.clone();
    // The first operations of the update are the bank erases and the first block writes.
    o.power_cut_at_op = Some(300);
    w.board.set_options(o);
    w.lab
        .update("cut", &[demo::THING], &w.images.v1_1)
        .await
        .unwrap();
    let (ev, met) = lab::drive(&mut w.board, Duration::from_secs(30), |e| {
        e.last() == Some(&BoardEvent::JobSucceeded)
    })
    .await
    .unwrap();
    assert!(met, "{ev:?}");
    assert!(ev.contains(&BoardEvent::PowerCut), "{ev:?}");
    w.lab.shutdown().await;
}

/// Step 9: the canary wave stops a release that fails on 30 % of 200 simulated devices;
/// no device beyond the canary, none after the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step9_canary_catches_a_bad_release() {
    let r = assert_step!(demo::step9_canary().await);
    assert!(
        r.outcome.contains("STOPPED (WAVE_ERROR_THRESHOLD)"),
        "{}",
        r.outcome
    );
    let o = tokio::task::spawn_blocking(|| ferrota_lab::rollout_sim::run(&demo::canary_scenario()))
        .await
        .expect("joins")
        .expect("runs");
    let canary = o.rollout.waves[0].number_of_things;
    assert_eq!(canary, 10, "5 % of 200");
    assert!(o.notified <= canary && o.notified_after_stop == 0, "{o:?}");
    assert_eq!(
        o.failed_at_stop,
        demo::CANARY_ERRORS,
        "stopped at exactly the threshold's failures: {o:?}"
    );
    assert_eq!(o.rollout.waves[1].number_of_notified_things, 0);
}
