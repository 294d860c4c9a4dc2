//! The CM0+ stage through C (`ferrota_cm0p_check`) on the simulated board, after the boot
//! manager's decision (`ferrota_dbm_decide`) and with its callbacks: a good bank starts and
//! writes nothing; a tampered CM7_0 region is refused and marked bad (MARKED_BAD, or REVERTED
//! on trial), so the next decision falls back; bad input and failing callbacks end in their
//! errors with the marker log as it was.

mod common;

use std::ptr::null;

use common::{Board, CData, activate_upper, log_key, log_snapshot, tampered_cm7_0};
use ferrota_agent_ffi::*;
use ferrota_image::Region;
use ferrota_image::verify::verify_region;
use ferrota_image::version::FLAG_CM7_1_APP;
use ferrota_sim::images::ota::{FULL, Spec, image};

/// A whole-bank image (the agent tests' images end before CM7_1, which the CM0+ stage checks):
/// version 1.`minor`.0, counter `counter`.
fn spec(minor: u8, counter: u32) -> Spec {
    Spec::new(minor, counter).len(FULL)
}

/// `ferrota_cm0p_check` of `bank` on the board as it is (the boot manager's callbacks).
fn check(board: &mut Board, key: *const FerrotaBootKey, bank: u32) -> (FerrotaStatus, Outcome) {
    let p = board.dbm_platform();
    check_with(&p, key, bank)
}

/// The outcome's fields a test compares, or `None` when `*out` was not written.
type Outcome = Option<(bool, bool, bool, FerrotaBankFault, u32, u32)>;

fn check_with(
    p: &FerrotaDbmPlatform,
    key: *const FerrotaBootKey,
    bank: u32,
) -> (FerrotaStatus, Outcome) {
    let mut out = std::mem::MaybeUninit::<FerrotaCm0pOutcome>::zeroed();
    // SAFETY: the zeroed outcome is a valid value (bools false, enums at their 0 variant).
    let before = unsafe { out.assume_init() };
    // SAFETY: the board behind `p` and `out` live for the call; `key` is parsed or what the
    // test passes on purpose (null, unparsed).
    let st = unsafe { ferrota_cm0p_check(key, bank, p, out.as_mut_ptr()) };
    // SAFETY: zeroed above, possibly written by the call.
    let o = unsafe { out.assume_init() };
    let written = st == FerrotaStatus::FerrotaOk;
    if !written {
        assert_eq!(
            (o.start, o.reverted, o.fault, o.record.version),
            (
                before.start,
                before.reverted,
                before.fault,
                before.record.version
            ),
            "*out untouched on an error"
        );
    }
    let fields = (
        o.start,
        o.start_cm7_1,
        o.reverted,
        o.fault,
        o.record.version,
        o.record.flags,
    );
    (st, written.then_some(fields))
}

fn cm7_0_refused(o: Outcome) -> FerrotaBankFault {
    let Some((start, _, _, fault, _, _)) = o else {
        panic!("no outcome");
    };
    assert!(!start, "refused");
    assert_eq!(fault.kind, FerrotaFaultKind::FerrotaFaultImage);
    assert_eq!(fault.region, 2, "CM7_0");
    assert_eq!(
        fault.image_fault,
        FerrotaImageFault::FerrotaImageFaultSignatureMismatch
    );
    fault
}

#[test]
fn the_test_image_is_refused_by_the_cm0p_stage_only() {
    let img = tampered_cm7_0(spec(1, 1));
    let key = ferrota_sim::keys::boot_key();
    assert!(verify_region(&img.file, Region::Cm0p, key).is_ok());
    assert!(verify_region(&img.file, Region::Cm7_0, key).is_err());
    assert!(verify_region(&image(spec(1, 1)).file, Region::Cm7_0, key).is_ok());
}

#[test]
fn a_good_bank_starts_and_writes_nothing() {
    let mut board = Board::with_lower(&image(spec(1, 1)));
    let data = CData::new();
    let (_, d) = board.decide(&data.dbm_config());
    assert_eq!(
        (d.reason, d.bank),
        (FerrotaBootReason::FerrotaBootCurrent, 0)
    );
    let before = log_key(&log_snapshot(&mut board));
    let (st, o) = check(&mut board, &*data.key, u32::from(d.bank));
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    let (start, start_cm7_1, reverted, fault, version, flags) = o.expect("written");
    assert!(start && !reverted, "{fault:?}");
    assert!(start_cm7_1, "the test image carries a CM7_1 application");
    assert_eq!(start_cm7_1, flags & FLAG_CM7_1_APP != 0);
    assert_eq!(fault.kind, FerrotaFaultKind::FerrotaFaultNone);
    assert_eq!(version, spec(1, 1).version.0);
    assert_eq!(
        log_key(&log_snapshot(&mut board)),
        before,
        "nothing written"
    );
    assert_eq!(board.failures, 0);
}

#[test]
fn a_tampered_cm7_region_is_marked_bad_and_the_next_decision_refuses_it() {
    let mut board = Board::with_lower(&tampered_cm7_0(spec(1, 1)));
    let data = CData::new();
    let (_, d) = board.decide(&data.dbm_config());
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootCurrent, "{d:?}");
    assert_eq!(d.bank, 0, "the boot manager checks the CM0+ region only");
    let before = log_snapshot(&mut board);
    let (st, o) = check(&mut board, &*data.key, 0);
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    cm7_0_refused(o);
    assert!(!o.expect("written").2, "not on trial: MARKED_BAD");
    let after = log_snapshot(&mut board);
    assert_eq!(after.seq, before.seq + 1, "one record appended");
    // The next decision skips the marked image; the upper bank is empty: nothing may run.
    let (st, d) = board.decide(&data.dbm_config());
    assert_eq!(st, FerrotaStatus::FerrotaErrHalt);
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootHalt, "{d:?}");
    assert_eq!(d.faults[0].kind, FerrotaFaultKind::FerrotaFaultMarkedBad);
}

#[test]
fn a_tampered_cm7_region_on_trial_reverts_to_the_previous_bank() {
    let mut board = Board::with_lower(&image(spec(1, 1)));
    let data = CData::new();
    board.decide(&data.dbm_config());
    activate_upper(&mut board, &tampered_cm7_0(spec(2, 2)));
    let (_, d) = board.decide(&data.dbm_config());
    assert_eq!(d.reason, FerrotaBootReason::FerrotaBootTrial, "{d:?}");
    assert_eq!(d.bank, 1);
    let (st, o) = check(&mut board, &*data.key, 1);
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    cm7_0_refused(o);
    let (_, _, reverted, _, version, _) = o.expect("written");
    assert!(reverted, "on trial: REVERTED");
    assert_eq!(version, spec(2, 2).version.0);
    // The trial is over: the lower bank boots again, the upper one is refused from now on.
    let (_, d) = board.decide(&data.dbm_config());
    assert_eq!(d.bank, 0, "{d:?}");
    assert_ne!(d.reason, FerrotaBootReason::FerrotaBootTrial, "{d:?}");
    assert_eq!(d.record.version, spec(1, 1).version.0);
    let (_, again) = board.decide(&data.dbm_config());
    assert_eq!(again.bank, 0, "{again:?}");
}

#[test]
fn bad_input_and_failing_callbacks_end_in_errors_with_the_log_as_it_was() {
    use FerrotaStatus::*;
    let mut board = Board::with_lower(&tampered_cm7_0(spec(1, 1)));
    let data = CData::new();
    board.decide(&data.dbm_config());
    let before = log_key(&log_snapshot(&mut board));
    let key: *const FerrotaBootKey = &*data.key;
    let p = board.dbm_platform();
    // SAFETY: zeroed storage is a valid unparsed key.
    let blank: FerrotaBootKey = unsafe { std::mem::zeroed() };
    let cases: Vec<(
        &str,
        FerrotaDbmPlatform,
        *const FerrotaBootKey,
        u32,
        FerrotaStatus,
    )> = vec![
        ("null key", p, null(), 0, FerrotaErrNull),
        ("unparsed key", p, &blank, 0, FerrotaErrNotInitialized),
        ("bank 2", p, key, 2, FerrotaErrInvalid),
        ("bank 256", p, key, 256, FerrotaErrInvalid),
        (
            "bank size",
            FerrotaDbmPlatform {
                bank_size: FERROTA_BANK_SIZE + 1,
                ..p
            },
            key,
            0,
            FerrotaErrInvalid,
        ),
        (
            "no bank read",
            FerrotaDbmPlatform {
                read_bank: None,
                ..p
            },
            key,
            0,
            FerrotaErrNull,
        ),
        (
            "no log write",
            FerrotaDbmPlatform {
                write_log: None,
                ..p
            },
            key,
            0,
            FerrotaErrNull,
        ),
        // The upper bank is erased: its CM0+ region does not verify.
        ("not the chosen bank", p, key, 1, FerrotaErrImage),
    ];
    for (what, p, key, bank, want) in cases {
        let (st, _) = check_with(&p, key, bank);
        assert_eq!(st, want, "{what}");
    }
    // SAFETY: null `platform` and `out` are refused before any use.
    unsafe {
        let mut out = std::mem::MaybeUninit::<FerrotaCm0pOutcome>::uninit();
        assert_eq!(
            ferrota_cm0p_check(key, 0, null(), out.as_mut_ptr()),
            FerrotaErrNull
        );
        assert_eq!(
            ferrota_cm0p_check(key, 0, &p, std::ptr::null_mut()),
            FerrotaErrNull
        );
        let mut raw = [0u64; 64];
        let odd = raw
            .as_mut_ptr()
            .cast::<u8>()
            .add(1)
            .cast::<FerrotaCm0pOutcome>();
        assert_eq!(ferrota_cm0p_check(key, 0, &p, odd), FerrotaErrAlignment);
    }
    assert_eq!(log_key(&log_snapshot(&mut board)), before);
    assert_eq!(board.failures, 0, "no callback was called to fail");

    // Failing callbacks: each an error, nothing recorded (a bank read that fails is the
    // driver's error, never a bad mark).
    board.bank_reads_fail[0] = true;
    assert_eq!(check(&mut board, key, 0).0, FerrotaErrFlash, "bank read");
    board.bank_reads_fail[0] = false;
    board.log_reads_fail = true;
    assert_eq!(check(&mut board, key, 0).0, FerrotaErrFlash, "log read");
    board.log_reads_fail = false;
    board.log_writes_fail = true;
    assert_eq!(check(&mut board, key, 0).0, FerrotaErrFlash, "log write");
    board.log_writes_fail = false;
    assert!(board.failures >= 3);
    assert_eq!(
        log_key(&log_snapshot(&mut board)),
        before,
        "the log as it was"
    );

    // The same board, callbacks working again: the refusal is recorded.
    let (st, o) = check(&mut board, key, 0);
    assert_eq!(st, FerrotaOk);
    cm7_0_refused(o);
    assert_ne!(log_key(&log_snapshot(&mut board)), before);
}
