//! The boot manager's decision through C (`ferrota_dbm_decide`) on the simulated board: a
//! trial boots the activated bank and its budget runs out into a revert, a tampered bank is
//! refused, both refused halt; the agent starts on the bank chosen; bad input and failing log
//! callbacks end in their errors with the log as it was.

mod common;

use std::ptr::{null, null_mut};

use common::{Board, CData, Mem, activate_upper, log_key, log_snapshot};
use ferrota_agent_ffi::*;
use ferrota_boot::Bank;
use ferrota_sim::harness::install;
use ferrota_sim::images::ota::{Spec, TestImage, image};

/// `img` with one byte of its CM0+ code flipped (after the signing).
fn tampered(img: &TestImage) -> TestImage {
    let mut file = img.file.clone();
    file[0x400] ^= 0x01;
    TestImage {
        spec: img.spec,
        file,
        signature: img.signature.clone(),
    }
}

#[test]
fn a_fresh_board_boots_its_lower_bank_and_writes_nothing() {
    let mut board = Board::new();
    let data = CData::new();
    let before = log_key(&log_snapshot(&mut board));
    let d = board.reboot(&data);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootCurrent);
    assert_eq!((d.bank, d.trial, d.recorded), (0, false, false));
    assert_eq!(
        (d.record.major, d.record.minor, d.record.security_counter),
        (1, 1, 1)
    );
    assert_eq!(d.faults[0].kind, FerrotaFaultKind::FerrotaFaultNone);
    assert_eq!(log_key(&log_snapshot(&mut board)), before);
}

#[test]
fn after_an_activation_the_new_bank_boots_on_trial_and_the_agent_starts_on_it() {
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let v2 = image(Spec::new(2, 2));
    activate_upper(&mut board, &v2);
    let seq = log_snapshot(&mut board).seq;

    for attempt in 1..=3 {
        let d = board.reboot(&data);
        assert_eq!(d.reason, FerrotaBootReason::FerrotaBootTrial, "{d:?}");
        assert_eq!(
            (d.bank, d.trial, d.attempt, d.budget),
            (1, true, attempt, 3)
        );
        assert_eq!(d.record.version, v2.spec.version.0);
        assert_eq!(d.record.security_counter, 2);
        assert!(d.recorded, "BOOTED is recorded before the jump");
        let snap = log_snapshot(&mut board);
        assert_eq!(snap.seq, seq + u32::from(attempt));
        // A configuration naming the other bank (a C program that left `running_bank` at 0) is
        // refused: the agent would treat the running image as the inactive bank and erase it.
        let mut cfg = data.config(&board);
        cfg.running_bank = 0;
        let p = board.platform();
        let mut out = std::ptr::null_mut();
        // SAFETY: everything lives for the call; `mem` is aligned and large enough.
        let st = unsafe {
            ferrota_agent_init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &p, 1_000_000, &mut out)
        };
        assert_eq!(st, FerrotaStatus::FerrotaErrConfig);
        assert_eq!(
            log_key(&log_snapshot(&mut board)),
            log_key(&snap),
            "log untouched"
        );
        // The agent starts on the bank chosen: its version record is read from there.
        let agent = common::start(&mut mem, &mut board, &data, 1_000_000);
        // SAFETY: the live agent.
        assert_eq!(
            unsafe { ferrota_agent_deinit(agent) },
            FerrotaStatus::FerrotaOk
        );
    }
    // Never confirmed: the fourth reset reverts to the lower bank, locking the upper one.
    let d = board.reboot(&data);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootReverted, "{d:?}");
    assert_eq!((d.bank, d.from_bank, d.budget, d.trial), (0, 1, 3, false));
    assert_eq!((d.record.major, d.record.minor), (1, 1));
    assert!(d.recorded);
    // And it stays there.
    let d = board.reboot(&data);
    assert_eq!(
        (d.reason, d.bank, d.recorded),
        (FerrotaBootReason::FerrotaBootCurrent, 0, false)
    );
}

#[test]
fn a_tampered_bank_is_refused_and_both_refused_halt_without_writing() {
    let mut board = Board::new();
    let data = CData::new();
    activate_upper(&mut board, &tampered(&image(Spec::new(2, 2))));
    let d = board.reboot(&data);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootReverted, "{d:?}");
    assert_eq!((d.bank, d.from_bank, d.trial), (0, 1, false));
    let f = d.faults[1];
    assert_eq!(f.kind, FerrotaFaultKind::FerrotaFaultImage);
    assert_eq!(f.region, 1, "the CM0+ region");
    assert_eq!(
        f.image_fault,
        FerrotaImageFault::FerrotaImageFaultSignatureMismatch
    );
    assert_eq!(d.faults[0].kind, FerrotaFaultKind::FerrotaFaultNone);

    // Now the lower bank is tampered too: nothing may run, and nothing is written.
    install(
        &mut board.dev,
        Bank::Lower,
        &tampered(&image(Spec::new(1, 1))),
    );
    let before = log_key(&log_snapshot(&mut board));
    let (st, d) = board.decide(&data.dbm_config());
    assert_eq!(
        st,
        FerrotaStatus::FerrotaErrHalt,
        "a halt is never FERROTA_OK (fail closed)"
    );
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootHalt);
    assert_eq!(
        (d.bank, d.from_bank),
        (FERROTA_HALT_BANK, FERROTA_HALT_BANK)
    );
    assert!(!d.recorded);
    assert_eq!(
        d.faults[0].image_fault,
        FerrotaImageFault::FerrotaImageFaultSignatureMismatch
    );
    assert_eq!(
        d.faults[1].kind,
        FerrotaFaultKind::FerrotaFaultLocked,
        "the reverted bank stays locked"
    );
    assert_eq!(d.record.version, 0);
    assert_eq!(log_key(&log_snapshot(&mut board)), before);
}

#[test]
fn an_unreadable_bank_is_refused_as_a_flash_fault() {
    let mut board = Board::new();
    let data = CData::new();
    activate_upper(&mut board, &image(Spec::new(2, 2)));
    board.bank_reads_fail = [false, true];
    let d = board.reboot(&data);
    assert_eq!(
        (d.reason, d.bank, d.from_bank),
        (FerrotaBootReason::FerrotaBootReverted, 0, 1)
    );
    assert_eq!(
        d.faults[1].image_fault,
        FerrotaImageFault::FerrotaImageFaultFlash
    );
    board.bank_reads_fail = [true, true];
    let before = log_key(&log_snapshot(&mut board));
    let (st, d) = board.decide(&data.dbm_config());
    assert_eq!(st, FerrotaStatus::FerrotaErrHalt);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootHalt);
    assert_eq!(
        d.faults[0].image_fault,
        FerrotaImageFault::FerrotaImageFaultFlash
    );
    assert_eq!(log_key(&log_snapshot(&mut board)), before);
}

/// A decision no call produces, to see that a refused call leaves `*out` alone.
fn sentinel() -> FerrotaDbmDecision {
    let mut d = std::mem::MaybeUninit::<FerrotaDbmDecision>::zeroed();
    // SAFETY: all-zero is a valid decision (every enum has a 0 value); then a marker.
    unsafe {
        (*d.as_mut_ptr()).floor = 0xDEAD_BEEF;
        d.assume_init()
    }
}

#[test]
fn bad_input_and_failing_log_callbacks_end_in_errors_with_the_log_unchanged() {
    use FerrotaStatus::*;
    let mut board = Board::new();
    let data = CData::new();
    // A pending trial: a decision would write a BOOTED record.
    activate_upper(&mut board, &image(Spec::new(2, 2)));
    board.reset();
    let before = log_key(&log_snapshot(&mut board));
    let good_cfg = data.dbm_config();
    let good_p = board.dbm_platform();
    let decide = |cfg: *const FerrotaDbmConfig, p: *const FerrotaDbmPlatform| {
        let mut out = sentinel();
        // SAFETY: every non-null pointer is valid; the bad ones are what is tested.
        let st = unsafe { ferrota_dbm_decide(cfg, p, &mut out) };
        assert_eq!(out.floor, 0xDEAD_BEEF, "out untouched on {st:?}");
        st
    };
    assert_eq!(decide(null(), &good_p), FerrotaErrNull);
    assert_eq!(decide(&good_cfg, null()), FerrotaErrNull);
    // SAFETY: valid pointers but a null out.
    assert_eq!(
        unsafe { ferrota_dbm_decide(&good_cfg, &good_p, null_mut()) },
        FerrotaErrNull
    );
    let mut block = [0u64; 32];
    // SAFETY: an in-bounds, misaligned pointer into `block`.
    let misaligned = unsafe { block.as_mut_ptr().cast::<u8>().add(1) }.cast::<FerrotaDbmDecision>();
    // SAFETY: as above.
    assert_eq!(
        unsafe { ferrota_dbm_decide(&good_cfg, &good_p, misaligned) },
        FerrotaErrAlignment
    );
    for p in [
        FerrotaDbmPlatform {
            read_bank: None,
            ..good_p
        },
        FerrotaDbmPlatform {
            read_log: None,
            ..good_p
        },
        FerrotaDbmPlatform {
            write_log: None,
            ..good_p
        },
        FerrotaDbmPlatform {
            erase_log: None,
            ..good_p
        },
    ] {
        assert_eq!(decide(&good_cfg, &p), FerrotaErrNull);
    }
    assert_eq!(
        decide(
            &good_cfg,
            &FerrotaDbmPlatform {
                bank_size: FERROTA_BANK_SIZE + 1,
                ..good_p
            }
        ),
        FerrotaErrInvalid
    );
    // SAFETY: zeroed storage is an unparsed key.
    let unparsed: FerrotaBootKey = unsafe { std::mem::zeroed() };
    let long = [b'x'; 33];
    let not_utf8 = [0xFFu8, 0xFE];
    for (cfg, want) in [
        (
            FerrotaDbmConfig {
                boot_key: null(),
                ..good_cfg
            },
            FerrotaErrNull,
        ),
        (
            FerrotaDbmConfig {
                boot_key: &unparsed,
                ..good_cfg
            },
            FerrotaErrNotInitialized,
        ),
        (
            FerrotaDbmConfig {
                hardware_id: long.as_ptr(),
                hardware_id_len: long.len(),
                ..good_cfg
            },
            FerrotaErrInvalid,
        ),
        (
            FerrotaDbmConfig {
                hardware_id: not_utf8.as_ptr(),
                hardware_id_len: not_utf8.len(),
                ..good_cfg
            },
            FerrotaErrUtf8,
        ),
    ] {
        assert_eq!(decide(&cfg, &good_p), want);
    }
    // The log's callbacks fail: a clear error, and the log reads as before.
    board.log_reads_fail = true;
    assert_eq!(decide(&good_cfg, &good_p), FerrotaErrFlash);
    board.log_reads_fail = false;
    board.log_writes_fail = true;
    assert_eq!(decide(&good_cfg, &good_p), FerrotaErrFlash);
    board.log_writes_fail = false;
    assert!(board.failures > 0);
    assert_eq!(log_key(&log_snapshot(&mut board)), before);
    // Nothing was half done: the next decision is the first trial attempt.
    let d = board.reboot(&data);
    assert_eq!(
        (d.reason, d.attempt),
        (FerrotaBootReason::FerrotaBootTrial, 1)
    );
}

#[test]
fn user1_and_the_efuse_floor_reach_the_boot_manager() {
    let mut board = Board::new();
    let data = CData::new();
    activate_upper(&mut board, &image(Spec::new(2, 2)));
    // USER1 held: the lower bank boots and the trial is cancelled.
    let (_, d) = board.decide(&FerrotaDbmConfig {
        user1: 1,
        ..data.dbm_config()
    });
    assert_eq!(
        (d.reason, d.bank, d.recorded),
        (FerrotaBootReason::FerrotaBootUser1, 0, true)
    );
    // An eFuse counter above v1.1's counter (1): the lower bank is refused, nothing else boots.
    let (st, d) = board.decide(&FerrotaDbmConfig {
        efuse_floor: 5,
        ..data.dbm_config()
    });
    assert_eq!(st, FerrotaStatus::FerrotaErrHalt);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootHalt);
    assert_eq!(d.floor, 5);
    assert_eq!(
        (d.faults[0].kind, d.faults[0].value),
        (FerrotaFaultKind::FerrotaFaultBelowFloor, 1)
    );
}
