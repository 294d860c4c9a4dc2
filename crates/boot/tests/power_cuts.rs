//! Exhaustive power cuts (mcuboot's `run_perm_with_fails`, plus torn operations).
//!
//! For each scenario — activation, the first trial boot, confirm (with the eFuse counter), the
//! revert after a failed trial, a USER1 boot, the CM0+ stage's failure record, and compaction of
//! a full log sector — the scenario runs once from a snapshot to count its flash operations; then
//! for every operation it runs again from the snapshot, cutting the power *before* it and
//! *tearing* it (several seeds). After every cut the device is power-cycled and:
//!
//! * the log reads back as the state before the scenario or the state after it, never a third;
//! * the next boot starts a correctly signed image (every region re-verified independently) at
//!   or above the floor, and exactly the image the old or new state calls for;
//! * neither that boot nor a boot with USER1 held starts a bank the state read back locks (a
//!   rejected, refused or half-written image; `ferrota_boot::log`, "Bank locks").
//!
//! Each scenario runs at several log positions: from the first slot to the last slot of a
//! sector, and across both compaction directions (into a blank sector and into one holding old
//! records). Run with `--nocapture` to see the counts:
//! `cargo test -p ferrota-boot --test power_cuts -- --nocapture`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use ferrota_boot::log::SLOTS_PER_SECTOR;
use ferrota_boot::{Bank, app, cm0p};
use ferrota_image::FirmwareVersion;
use ferrota_image::verify::verify_boot_in_flash;
use ferrota_t2g::{BankMode, Device, Mapping, PowerCut};

/// Tear seeds per operation.
const SEEDS: u64 = 16;

static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Cuts after which the log read back the old state, and the new one.
static OLD: AtomicU64 = AtomicU64::new(0);
static NEW: AtomicU64 = AtomicU64::new(0);

type Scenario = dyn Fn(&mut Device) -> Result<(), SimError>;

fn expected(dev: &Device) -> (Bank, FirmwareVersion) {
    let mut d = dev.clone();
    d.power_cycle();
    let r = boot(&mut d, false).unwrap().app().clone();
    (r.bank, r.record.version)
}

/// Cuts `scenario` at every operation, from `snapshot`; returns the cut points covered.
fn sweep(name: &str, snapshot: &Device, scenario: &Scenario) -> u64 {
    let old = state(snapshot);
    let mut clean = snapshot.clone();
    let start = clean.op_count();
    scenario(&mut clean).unwrap_or_else(|e| panic!("{name}: clean run failed: {e:?}"));
    let total = clean.op_count() - start;
    let new = state(&clean);
    assert_ne!(old, new, "{name}: the scenario must change the state");
    let (exp_old, exp_new) = (expected(snapshot), expected(&clean));
    // Without a cut too: no boot, with or without USER1, starts a bank the new state locks.
    for user1 in [false, true] {
        let mut d = clean.clone();
        d.power_cycle();
        if let Ran::App(r) = boot(&mut d, user1).unwrap() {
            assert!(
                !new.is_locked(r.bank),
                "{name}: booted a locked bank (USER1 {user1})"
            );
        }
    }
    let mut points = 0;
    for op in start..start + total {
        let cuts = std::iter::once(PowerCut::Before(op))
            .chain((0..SEEDS).map(|seed| PowerCut::Tear { op, seed }));
        for cut in cuts {
            let mut d = snapshot.clone().with_power_cut(cut);
            let r = scenario(&mut d);
            assert!(d.power_lost(), "{name}: {cut:?} did not fire ({r:?})");
            d.power_cycle();
            let st = state(&d);
            let exp = if st == old {
                OLD.fetch_add(1, Ordering::Relaxed);
                exp_old
            } else if st == new {
                NEW.fetch_add(1, Ordering::Relaxed);
                exp_new
            } else {
                panic!("{name}: a third state after {cut:?}:\n{st:?}\nold {old:?}\nnew {new:?}");
            };
            let mut with_user1 = d.clone();
            let ran = boot(&mut d, false).unwrap();
            let r = ran.app();
            assert_eq!((r.bank, r.record.version), exp, "{name}: after {cut:?}");
            assert_sound(&d, r);
            assert!(
                !st.is_locked(r.bank),
                "{name}: booted a locked bank after {cut:?}"
            );
            if let Ran::App(u) = boot(&mut with_user1, true).unwrap() {
                assert!(
                    !st.is_locked(u.bank),
                    "{name}: USER1 booted a locked bank after {cut:?}"
                );
                assert_sound(&with_user1, &u);
            }
            points += 1;
        }
    }
    points
}

/// Runs the sweep with the log's next write at several positions: the snapshot's own, the
/// middle and last slot of sector 0, compaction into sector 1, its last slot, compaction back
/// into sector 0 (erasing old records).
fn sweep_positions(name: &str, base: &Device, scenario: &Scenario) -> u64 {
    let seq = {
        let mut d = base.clone();
        d.power_cycle();
        d.set_work_err_silent(true).unwrap();
        log(&mut d).read().unwrap().seq as usize
    };
    let s = SLOTS_PER_SECTOR;
    let mut targets = vec![seq, s / 2, s - 1, s, 2 * s - 1, 2 * s];
    targets.retain(|&t| t >= seq);
    targets.dedup();
    let mut points = 0;
    for t in targets {
        let mut snap = base.clone();
        if t > seq {
            pad_log(&mut snap, t - seq);
        }
        points += sweep(&format!("{name} @ record {t}"), &snap, scenario);
    }
    TOTAL.fetch_add(points, Ordering::Relaxed);
    println!(
        "{name}: {points} cut points (running total {}; old state {}, new state {})",
        TOTAL.load(Ordering::Relaxed),
        OLD.load(Ordering::Relaxed),
        NEW.load(Ordering::Relaxed)
    );
    points
}

/// Lower v1 running, v2 (`kind`) written into the upper bank by the agent, not yet activated.
fn written(kind: Kind) -> Device {
    let mut d = fresh();
    let r = boot(&mut d, false).unwrap().app().clone();
    write_image(&mut d.inactive_bank().unwrap(), &image(kind, 2)).unwrap();
    assert_eq!(r.bank, Bank::Lower);
    d
}

fn activated(kind: Kind) -> Device {
    let mut d = written(kind);
    activate_written(&mut d, Bank::Lower, &image(kind, 2), 3).unwrap();
    d
}

fn boot_once(user1: bool) -> impl Fn(&mut Device) -> Result<(), SimError> {
    move |d| boot_pass(d, user1).map(|_| ())
}

/// The CM0+ stage alone, from the bank already chosen: map it, verify, record the failure.
fn cm0p_stage(bank: Bank) -> impl Fn(&mut Device) -> Result<(), SimError> {
    move |d| {
        d.reset();
        d.set_work_err_silent(true)?;
        d.set_bank_mode(BankMode::Dual)?;
        d.set_mapping(if bank.main_map() {
            Mapping::B
        } else {
            Mapping::A
        })?;
        let mut scratch = [0u8; SCRATCH];
        let proof = verify_boot_in_flash(&mut d.active_bank()?, 0, key(), &mut scratch)
            .expect("the DBM accepted this bank");
        let failure = cm0p::verify_cores(&mut d.active_bank()?, key(), &proof, &mut scratch)
            .expect_err("a CM7 region is bad");
        let _reset = failure.record(&mut log(d), bank)?;
        Ok(())
    }
}

#[test]
fn power_cuts_activation() {
    let base = written(Kind::Good);
    // The sweep's closures are 'static: the proof lives for the test binary.
    let proof: &'static _ = Box::leak(Box::new(
        verify_written(&base, Bank::Upper, &image(Kind::Good, 2)).unwrap(),
    ));
    let activate = move |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        app::request_activation(&mut log(d), Bank::Lower, proof, 3)?;
        Ok(())
    };
    let n = sweep_positions("activation (TRIAL)", &base, &activate);
    assert!(n >= 500, "{n}");
}

#[test]
fn power_cuts_first_trial_boot() {
    let n = sweep_positions(
        "first trial boot (BOOTED)",
        &activated(Kind::Good),
        &boot_once(false),
    );
    assert!(n >= 500, "{n}");
}

#[test]
fn power_cuts_confirm() {
    let mut base = activated(Kind::Good);
    let r = boot(&mut base, false).unwrap().app().clone();
    assert_eq!(r.bank, Bank::Upper);
    let confirm = move |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        agent_confirm(d, &r).map(|_| ())
    };
    let n = sweep_positions("confirm (CONFIRMED + eFuse counter)", &base, &confirm);
    assert!(n >= 500, "{n}");
}

#[test]
fn power_cuts_revert_after_failed_trial() {
    let mut base = activated(Kind::Crashing);
    for _ in 0..3 {
        assert_eq!(boot(&mut base, false).unwrap().app().bank, Bank::Upper);
    }
    let n = sweep_positions(
        "revert after budget exhaustion (REVERTED)",
        &base,
        &boot_once(false),
    );
    // Rejection by the app (REVERTED(rejected)) too.
    let mut base = activated(Kind::Rejecting);
    assert_eq!(boot(&mut base, false).unwrap().app().bank, Bank::Upper);
    let reject = |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        app::reject(&mut log(d), Bank::Upper)?;
        Ok(())
    };
    let m = sweep_positions("reject (REVERTED by the app)", &base, &reject);
    assert!(n >= 500 && m >= 500, "{n} {m}");
}

/// Upper v2 confirmed and running (floor 2); the lower bank holds an image USER1 would boot.
fn running_upper_with_lower_bootable() -> (Device, Running) {
    let mut base = activated(Kind::Good);
    let r = boot(&mut base, false).unwrap().app().clone();
    agent_confirm(&mut base, &r).unwrap();
    install(&mut base, Bank::Lower, &image(Kind::Good, 2));
    assert_eq!(r.bank, Bank::Upper);
    (base, r)
}

#[test]
fn power_cuts_lock_before_download() {
    // The agent locks the inactive (lower) bank before its first erase: a cut leaves it either
    // bootable with its old image intact, or locked; never a half-written image USER1 boots.
    let (base, _) = running_upper_with_lower_bootable();
    let lock = |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        agent_lock(d, Bank::Upper)
    };
    let n = sweep_positions("lock before download (LOCKED)", &base, &lock);
    // After the lock, USER1 no longer picks the lower bank.
    let mut d = base.clone();
    lock(&mut d).unwrap();
    assert_eq!(boot(&mut d, true).unwrap().app().bank, Bank::Upper);
    assert!(n >= 500, "{n}");
}

#[test]
fn power_cuts_reject_in_lower_bank() {
    // The self-test-rejected image sits in the lower bank, the one USER1 prefers (demo step 7).
    let (mut base, _) = running_upper_with_lower_bootable();
    let r = boot(&mut base, false).unwrap().app().clone();
    agent_update(&mut base, r.bank, &image(Kind::Rejecting, 3)).unwrap();
    assert_eq!(boot(&mut base, false).unwrap().app().bank, Bank::Lower);
    let reject = |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        app::reject(&mut log(d), Bank::Lower)?;
        Ok(())
    };
    let n = sweep_positions("reject in the lower bank (REVERTED + lock)", &base, &reject);
    assert!(n >= 500, "{n}");
}

#[test]
fn power_cuts_user1_boot() {
    // Upper confirmed (floor 2); an allowed image in the lower bank; USER1 held.
    let mut base = activated(Kind::Good);
    let r = boot(&mut base, false).unwrap().app().clone();
    agent_confirm(&mut base, &r).unwrap();
    install(&mut base, Bank::Lower, &image(Kind::Good, 2));
    let n = sweep_positions("USER1 boot (USER1)", &base, &boot_once(true));
    // USER1 during a pending trial (cancels it).
    let m = sweep_positions(
        "USER1 boot during a trial",
        &activated(Kind::Good),
        &boot_once(true),
    );
    assert!(n >= 500 && m >= 500, "{n} {m}");
}

#[test]
fn power_cuts_cm0p_failure_record() {
    // Under trial: the DBM already counted attempt 1; the CM0+ stage refuses CM7_0.
    let mut base = activated(Kind::TamperedCm7_0);
    {
        let mut scratch = [0u8; SCRATCH];
        base.reset();
        base.set_work_err_silent(true).unwrap();
        let read = ferrota_boot::Dbm::new(key())
            .read_log(&mut log(&mut base))
            .unwrap();
        let choice = read.choose(&mut base.single_bank().unwrap(), &mut scratch);
        let _ = choice.persist(&mut log(&mut base)).unwrap();
    }
    let n = sweep_positions(
        "CM0+ stage failure under trial (REVERTED)",
        &base,
        &cm0p_stage(Bank::Upper),
    );
    // Outside a trial: an unsigned CM7_1 in the current bank (MARKED_BAD).
    let mut base = fresh();
    install(&mut base, Bank::Lower, &image(Kind::UnsignedCm7_1, 1));
    install(&mut base, Bank::Upper, &image(Kind::Good, 1));
    let m = sweep_positions(
        "CM0+ stage failure of the current bank (MARKED_BAD)",
        &base,
        &cm0p_stage(Bank::Lower),
    );
    assert!(n >= 500 && m >= 500, "{n} {m}");
}

#[test]
fn power_cuts_compaction() {
    // A full sector: the next record needs the erase of the other one. Every state-changing
    // writer at the compaction boundaries, with more tear seeds on the erase.
    let mut base = activated(Kind::Good);
    let r = boot(&mut base, false).unwrap().app().clone();
    let confirm = move |d: &mut Device| -> Result<(), SimError> {
        d.set_work_err_silent(true)?;
        agent_confirm(d, &r).map(|_| ())
    };
    let mut points = 0;
    for target in [SLOTS_PER_SECTOR, 2 * SLOTS_PER_SECTOR, 3 * SLOTS_PER_SECTOR] {
        let mut snap = base.clone();
        let seq = state_seq(&snap);
        pad_log(&mut snap, target - seq);
        let start = snap.op_count();
        let (ops, _) = snap.count_ops(|d| confirm(d));
        assert_eq!(ops, 13, "erase + 10 word programs + 2 eFuse bits");
        points += sweep(&format!("compaction @ record {target}"), &snap, &confirm);
        // The erase, torn with many more seeds.
        for seed in SEEDS..SEEDS + 64 {
            let mut d = snap
                .clone()
                .with_power_cut(PowerCut::Tear { op: start, seed });
            assert!(confirm(&mut d).is_err());
            d.power_cycle();
            assert_eq!(state(&d), state(&snap), "torn erase, seed {seed}");
            let ran = boot(&mut d, false).unwrap();
            assert_sound(&d, ran.app());
            points += 1;
        }
    }
    TOTAL.fetch_add(points, Ordering::Relaxed);
    println!("compaction of a full sector: {points} cut points");
    assert!(points >= 500, "{points}");
}

fn state_seq(d: &Device) -> usize {
    let mut d = d.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    log(&mut d).read().unwrap().seq as usize
}
