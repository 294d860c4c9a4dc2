//! A whole update through the C API: the agent, created in caller memory on a simulated board
//! behind the C flash callbacks, talks to a Jobs + MQTT-streams service (`ferrota_sim::service`'s
//! `JobsStreams`, as the agent's own tests use) until it asks for the reset after activation;
//! the board then "reboots" through the boot manager's decision in C (`ferrota_dbm_decide`)
//! into the new image on trial, and a new agent on it self-tests and confirms. The loop
//! (`common::run`) is what a C program's event loop does.

mod common;

use common::{Board, CData, Mem, fixture, run, start};
use ferrota_agent_ffi::*;
use ferrota_sim::images::ota::{Spec, image};

#[test]
fn a_whole_update_through_the_c_api_activates_reboots_self_tests_and_confirms() {
    use FerrotaEventKind::*;
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let v2 = image(Spec::new(2, 2));
    let mut server = fixture(&v2);
    let mut now = 1_000_000u64;
    let agent = start(&mut mem, &mut board, &data, now);
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventResetRequested,
        |_, _, _| {},
    );
    for want in [
        FerrotaEventDownloadStarted,
        FerrotaEventVersionAccepted,
        FerrotaEventActivated,
        FerrotaEventPlainSignatureAccepted,
    ] {
        assert!(events.contains(&want), "{want:?} missing from {events:?}");
    }
    let mut stats = FerrotaStats::default();
    // SAFETY: live agent, then ended.
    unsafe {
        assert_eq!(
            ferrota_agent_stats(agent, &mut stats),
            FerrotaStatus::FerrotaOk
        );
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
    }
    assert_eq!(stats.blocks_accepted as usize, v2.file.len().div_ceil(4096));
    assert!(
        server
            .updates
            .last()
            .is_some_and(|u| u.contains("self_test")),
        "{:?}",
        server.updates
    );
    assert_eq!(board.failures, 0, "no flash callback failed");

    // The reset, as a C program does it: the boot manager's decision through the C API runs
    // v2 on trial from the other bank, and the agent is created on that bank.
    let before = board.bank;
    let d = board.reboot(&data);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootTrial, "{d:?}");
    assert_eq!((d.bank, d.attempt), (1 - before, 1));
    assert_eq!(d.record.version, v2.spec.version.0);
    // A new agent in the same memory: the trial image waits for the job, self-tests, confirms.
    let agent = start(&mut mem, &mut board, &data, now);
    let mut self_tests = 0;
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventJobSucceeded,
        |a, t, e| {
            if e.kind == FerrotaEventStartSelfTest {
                assert!(e.a > t, "the deadline is ahead");
                self_tests += 1;
                // SAFETY: the live agent.
                let st = unsafe { ferrota_agent_self_test_result(a, t, 1) };
                assert_eq!(st, FerrotaStatus::FerrotaOk);
            }
        },
    );
    assert_eq!(self_tests, 1);
    assert!(events.contains(&FerrotaEventConfirmed), "{events:?}");
    assert!(
        server
            .updates
            .last()
            .is_some_and(|u| u.contains("SUCCEEDED")),
        "{:?}",
        server.updates
    );
    // SAFETY: the live agent.
    assert_eq!(
        unsafe { ferrota_agent_deinit(agent) },
        FerrotaStatus::FerrotaOk
    );
    assert_eq!(board.failures, 0, "no flash callback failed");
    // Confirmed: the next reset boots v2 as the current bank, with the floor raised to its
    // counter, and writes nothing.
    let d = board.reboot(&data);
    assert_eq!(
        (d.reason, d.bank, d.floor, d.recorded),
        (FerrotaBootReason::FerrotaBootCurrent, 1 - before, 2, false)
    );
}

#[test]
fn a_callback_that_calls_its_agent_is_refused_busy_and_the_update_goes_on() {
    use FerrotaEventKind::*;
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let mut server = fixture(&image(Spec::new(2, 2)));
    let mut now = 1_000_000u64;
    let agent = start(&mut mem, &mut board, &data, now);
    board.reenter = agent;
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventResetRequested,
        |_, _, _| {},
    );
    assert!(events.contains(&FerrotaEventActivated), "{events:?}");
    assert!(board.reentries.len() > 100, "every write re-entered");
    assert!(
        board
            .reentries
            .iter()
            .all(|s| *s == FerrotaStatus::FerrotaErrBusy),
        "{:?}",
        &board.reentries[..4]
    );
    board.reenter = std::ptr::null_mut();
    // Not ended by the refused deinit: still usable, then ended.
    let mut stats = FerrotaStats::default();
    // SAFETY: the live agent.
    unsafe {
        assert_eq!(
            ferrota_agent_stats(agent, &mut stats),
            FerrotaStatus::FerrotaOk
        );
        assert!(stats.blocks_accepted > 0);
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
        assert_eq!(
            ferrota_agent_stats(agent, &mut stats),
            FerrotaStatus::FerrotaErrNotInitialized
        );
    }
}

#[test]
fn a_failing_flash_callback_stops_the_download_with_a_flash_fault_event() {
    use FerrotaEventKind::*;
    let mut board = Board::new();
    board.bank_writes_left = Some(3);
    let data = CData::new();
    let mut mem = Mem::new();
    let mut server = fixture(&image(Spec::new(2, 2)));
    let mut now = 1_000_000u64;
    let agent = start(&mut mem, &mut board, &data, now);
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventFlashFault,
        |_, _, _| {},
    );
    assert!(!events.contains(&FerrotaEventActivated), "{events:?}");
    assert!(board.failures > 0);
    // The job is reported FAILED, as the AWS PAL's write failure.
    assert!(
        server.updates.last().is_some_and(|u| u.contains("FAILED")),
        "{:?}",
        server.updates
    );
    // The agent is still usable from C after the fault.
    let mut stats = FerrotaStats::default();
    // SAFETY: the live agent.
    unsafe {
        assert_eq!(
            ferrota_agent_stats(agent, &mut stats),
            FerrotaStatus::FerrotaOk
        );
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
    }
}
