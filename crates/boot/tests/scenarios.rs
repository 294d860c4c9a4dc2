//! The boot chain end to end on the T2G model: one named test per seed weakness this crate
//! fixes (DESIGN.md #1, #2, #3, #4, #8), the ROM check, USER1, and the app API.

mod common;

use common::*;
use ferrota_boot::Bank;
use ferrota_boot::app::{self, AppError, ImageState};
use ferrota_boot::dbm::{BankFault, BootReason, RevertCause};
use ferrota_boot::log::{BootState, Event, Fault, ImageFault, LOG_ADDRESS, RevertReason};
use ferrota_boot::rom::RomError;
use ferrota_image::{ErrorKind, Region};
use ferrota_t2g::{Device, LifeCycle, PowerCut};

/// Lower v1 (counter 1) confirmed and running; returns the device and what runs.
fn running_v1() -> (Device, Running) {
    let mut dev = fresh();
    let r = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!((r.bank, r.reason), (Bank::Lower, BootReason::Current));
    (dev, r)
}

/// Runs the update path: the agent on `running` writes `img` and activates it, then reboots.
fn update_and_boot(dev: &mut Device, running: &Running, img: &Image) -> Running {
    agent_update(dev, running.bank, img).unwrap();
    boot(dev, false).unwrap().app().clone()
}

#[test]
fn weakness_1_marker_survives_power_cut_between_erase_and_program() {
    // The seed's writer: erase the marker sector, then program 0xAAAAAAAA ("boot upper").
    // A cut between the two leaves the sector erased, which the seed's DBM reads as "lower".
    let mut seed = Device::new();
    seed.erase_sector(LOG_ADDRESS).unwrap();
    seed.program_work_word(LOG_ADDRESS, 0xAAAA_AAAA).unwrap();
    let n = seed.op_count();
    let mut cut = seed.clone().with_power_cut(PowerCut::Before(n + 1));
    cut.erase_sector(LOG_ADDRESS).unwrap();
    assert!(cut.program_work_word(LOG_ADDRESS, 0xAAAA_AAAA).is_err());
    cut.power_cycle();
    cut.set_work_err_silent(true).unwrap();
    assert_ne!(
        cut.read_u32(LOG_ADDRESS).unwrap(),
        0xAAAA_AAAA,
        "the seed loses the choice"
    );

    // Ferrota: the choice of the upper bank is recorded; fill the sector so the next record needs
    // an erase (compaction), and cut right after that erase.
    let (mut dev, r) = running_v1();
    let v2 = image(Kind::Good, 2);
    let r2 = update_and_boot(&mut dev, &r, &v2);
    agent_confirm(&mut dev, &r2).unwrap();
    let before = state(&dev);
    assert_eq!(before.current, Some(Bank::Upper));
    // The log so far holds LOCKED, TRIAL, BOOTED, CONFIRMED; fill sector 0 up to its last slot.
    pad_log(&mut dev, ferrota_boot::log::SLOTS_PER_SECTOR - 4);
    let snap = dev.clone();
    let v1 = verify_written(&snap, Bank::Lower, &image(Kind::Good, 1)).unwrap();
    let (ops, _) = snap.count_ops(|d| {
        d.set_work_err_silent(true).unwrap();
        app::request_activation(&mut log(d), Bank::Upper, &v1, 3).unwrap();
    });
    assert_eq!(ops, 11, "one erase, then ten word programs");
    for cut in [
        PowerCut::Before(snap.op_count() + 1),
        PowerCut::Tear {
            op: snap.op_count(),
            seed: 7,
        },
    ] {
        let mut d = snap.clone().with_power_cut(cut);
        d.set_work_err_silent(true).unwrap();
        assert!(app::request_activation(&mut log(&mut d), Bank::Upper, &v1, 3).is_err());
        d.power_cycle();
        assert_eq!(state(&d), state(&snap), "cut {cut:?}");
        let ran = boot(&mut d, false).unwrap();
        assert_eq!(ran.app().bank, Bank::Upper, "the choice survives ({cut:?})");
        assert_eq!(ran.app().record.version, v2.version);
    }
}

#[test]
fn weakness_2_rejected_self_test_rolls_back() {
    let (mut dev, r) = running_v1();
    let bad = image(Kind::Rejecting, 2);
    let r2 = update_and_boot(&mut dev, &r, &bad);
    assert_eq!(r2.bank, Bank::Upper);
    assert_eq!(
        r2.reason,
        BootReason::Trial {
            attempt: 1,
            budget: 3
        }
    );
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Upper).unwrap(),
        ImageState::PendingCommit
    );
    // The self-test fails: reject. The very next boot runs the previous bank.
    app::reject(&mut log(&mut dev), Bank::Upper).unwrap();
    let r3 = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(
        (r3.bank, r3.record.version),
        (Bank::Lower, r.record.version)
    );
    assert_sound(&dev, &r3);
    // The previous image runs and may keep running: Valid (AWS PAL meaning: the state of the
    // running image); the revert is in the last event, the rejected bank is locked.
    let rep = app::report(&mut log(&mut dev), Bank::Lower).unwrap();
    assert_eq!(rep.image_state, ImageState::Valid);
    assert_eq!(
        rep.last_event,
        Event::Reverted {
            bank: Bank::Upper,
            reason: RevertReason::Rejected
        }
    );
    assert!(state(&dev).is_locked(Bank::Upper));
    // And it stays there.
    for _ in 0..3 {
        assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    }
    // Rejecting again is refused: nothing is under trial.
    assert!(matches!(
        app::reject(&mut log(&mut dev), Bank::Lower),
        Err(AppError::NoTrial)
    ));
}

#[test]
fn weakness_3_bad_cm7_falls_back_instead_of_halting() {
    for (kind, region, fault) in [
        (
            Kind::TamperedCm7_0,
            Region::Cm7_0,
            ImageFault::SignatureMismatch,
        ),
        (Kind::UnsignedCm7_1, Region::Cm7_1, ImageFault::Unsigned),
        (
            Kind::TamperedCm7_1,
            Region::Cm7_1,
            ImageFault::SignatureMismatch,
        ),
    ] {
        // As an update under trial: the CM0+ stage reverts it.
        let (mut dev, r) = running_v1();
        agent_update(&mut dev, r.bank, &image(kind, 2)).unwrap();
        match boot_pass(&mut dev, false).unwrap() {
            Pass::Reset(reset) => {
                assert_eq!(
                    (reset.bank, reset.region),
                    (Bank::Upper, region),
                    "{kind:?}"
                );
                assert_eq!(
                    reset.state.event,
                    Event::Reverted {
                        bank: Bank::Upper,
                        reason: RevertReason::Cm7Invalid(Fault::Image {
                            region: Some(region),
                            offset: reset.error.offset,
                            kind: fault,
                        }),
                    }
                );
            }
            other => panic!("{kind:?}: expected a reset, got {other:?}"),
        }
        let r2 = boot(&mut dev, false).unwrap().app().clone();
        assert_eq!((r2.bank, r2.reason), (Bank::Lower, BootReason::Current));
        assert_sound(&dev, &r2);
        assert_eq!(
            app::image_state(&mut log(&mut dev), Bank::Lower).unwrap(),
            ImageState::Valid
        );
        assert!(state(&dev).is_locked(Bank::Upper), "{kind:?}");

        // As the current bank (written by a debugger): marked bad, the DBM falls back.
        let mut dev = fresh();
        install(&mut dev, Bank::Upper, &image(Kind::Good, 1));
        install(&mut dev, Bank::Lower, &image(kind, 1));
        let ran = boot(&mut dev, false).unwrap().app().clone();
        assert_eq!(ran.bank, Bank::Upper, "{kind:?}");
        assert_eq!(ran.resets, 1);
        assert_eq!(
            ran.reason,
            BootReason::FellBack {
                from: Bank::Lower,
                fault: BankFault::MarkedBad
            }
        );
        assert_sound(&dev, &ran);
        // The mark sticks to that image: USER1 does not pick it either, and no reset loop.
        let u = boot(&mut dev, true).unwrap().app().clone();
        assert_eq!((u.bank, u.resets), (Bank::Upper, 0));
        // A new image in that bank (activated by the agent) clears the mark.
        agent_update(&mut dev, Bank::Upper, &image(Kind::Good, 2)).unwrap();
        let r3 = boot(&mut dev, false).unwrap().app().clone();
        assert_eq!((r3.bank, r3.record.security_counter), (Bank::Lower, 2));
    }
    // Both banks bad: halt, with both reasons, instead of a reset loop.
    let mut dev = fresh();
    install(&mut dev, Bank::Lower, &image(Kind::TamperedCm7_0, 1));
    install(&mut dev, Bank::Upper, &image(Kind::TamperedCm0p, 1));
    match boot(&mut dev, false).unwrap() {
        Ran::Halt(h) => {
            assert_eq!(h.lower, BankFault::MarkedBad);
            assert!(
                matches!(h.upper, BankFault::Image(e) if e.kind == ErrorKind::SignatureMismatch)
            );
        }
        other => panic!("expected a halt, got {other:?}"),
    }
}

#[test]
fn weakness_4_downgrade_below_floor_is_refused_at_boot() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 3));
    assert_eq!(agent_confirm(&mut dev, &r2).unwrap(), 3);
    assert_eq!(dev.rollback_counter(), 3);
    // A correctly signed older release (counter 2) is activated: refused before it runs.
    agent_update(&mut dev, Bank::Upper, &image(Kind::Good, 2)).unwrap();
    let r3 = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(r3.bank, Bank::Upper);
    assert_eq!(
        r3.reason,
        BootReason::Reverted {
            from: Bank::Lower,
            cause: RevertCause::TrialInvalid(BankFault::BelowFloor {
                counter: 2,
                floor: 3
            }),
        }
    );
    assert_eq!(r3.record.security_counter, 3);
    let st = state(&dev);
    assert_eq!(
        st.event,
        Event::Reverted {
            bank: Bank::Lower,
            reason: RevertReason::TrialInvalid(Fault::BelowFloor { counter: 2 })
        }
    );
    // USER1 cannot bypass it either: the lower bank is refused (locked by the revert), the
    // upper one boots.
    let u = boot(&mut dev, true).unwrap().app().clone();
    assert_eq!(u.bank, Bank::Upper);
    assert_eq!(
        u.reason,
        BootReason::User1 {
            lower_fault: Some(BankFault::Locked)
        }
    );
    // The eFuse counter alone enforces the floor too (a log erased by an attacker with a
    // debugger still cannot bring the old release back).
    let mut d = fresh();
    install(&mut d, Bank::Upper, &image(Kind::Good, 5));
    d.raise_rollback_counter(5).unwrap();
    let ran = boot(&mut d, false).unwrap().app().clone();
    assert_eq!(ran.bank, Bank::Upper);
    assert_eq!(
        ran.reason,
        BootReason::FellBack {
            from: Bank::Lower,
            fault: BankFault::BelowFloor {
                counter: 1,
                floor: 5
            }
        }
    );
}

#[test]
fn weakness_8_image_that_never_confirms_is_reverted() {
    let (mut dev, r) = running_v1();
    agent_update(&mut dev, r.bank, &image(Kind::Crashing, 2)).unwrap();
    for attempt in 1..=3 {
        let ran = boot(&mut dev, false).unwrap().app().clone();
        assert_eq!(ran.bank, Bank::Upper);
        assert_eq!(ran.reason, BootReason::Trial { attempt, budget: 3 });
        assert_eq!(
            state(&dev).event,
            Event::Booted {
                bank: Bank::Upper,
                attempt
            }
        );
        // It crashes: no confirm, the watchdog resets.
    }
    let ran = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(ran.bank, Bank::Lower);
    assert_eq!(
        ran.reason,
        BootReason::Reverted {
            from: Bank::Upper,
            cause: RevertCause::BudgetExhausted { budget: 3 }
        }
    );
    assert_sound(&dev, &ran);
    let rep = app::report(&mut log(&mut dev), Bank::Lower).unwrap();
    assert_eq!(rep.image_state, ImageState::Valid);
    assert_eq!(rep.trial, None);
    assert!(state(&dev).is_locked(Bank::Upper));
    assert_eq!(
        boot(&mut dev, false).unwrap().app().reason,
        BootReason::Current
    );
}

#[test]
fn good_update_confirms_and_raises_the_floor() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 2));
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Upper).unwrap(),
        ImageState::PendingCommit
    );
    assert_eq!(agent_confirm(&mut dev, &r2).unwrap(), 2);
    let s = state(&dev);
    assert_eq!((s.current, s.trial, s.floor), (Some(Bank::Upper), None, 2));
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Upper).unwrap(),
        ImageState::Valid
    );
    // Confirming again changes nothing and writes nothing.
    let ops = dev.op_count();
    assert_eq!(agent_confirm(&mut dev, &r2).unwrap(), 2);
    assert_eq!(dev.op_count(), ops);
    // Normal boots write nothing.
    for _ in 0..3 {
        let ran = boot(&mut dev, false).unwrap().app().clone();
        assert_eq!((ran.bank, ran.reason), (Bank::Upper, BootReason::Current));
    }
    assert_eq!(dev.op_count(), ops);
    // A second update goes back to the lower bank.
    let r3 = update_and_boot(&mut dev, &r2, &image(Kind::Good, 3));
    assert_eq!(r3.bank, Bank::Lower);
    agent_confirm(&mut dev, &r3).unwrap();
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    assert_eq!(dev.rollback_counter(), 3);
}

#[test]
fn user1_prefers_lower_and_is_recorded() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 2));
    agent_confirm(&mut dev, &r2).unwrap();
    // Current is upper; USER1 boots lower (counter 1 is below the floor 2 now, so reinstall an
    // allowed image there first, as a service technician would).
    install(&mut dev, Bank::Lower, &image(Kind::Good, 2));
    let u = boot(&mut dev, true).unwrap().app().clone();
    assert_eq!(
        (u.bank, u.reason),
        (Bank::Lower, BootReason::User1 { lower_fault: None })
    );
    let s = state(&dev);
    assert_eq!(s.current, Some(Bank::Lower));
    assert_eq!(
        s.event,
        Event::User1 {
            booted: Bank::Lower,
            lower_fault: None,
            cancelled_trial: false
        }
    );
    // Holding it again writes nothing; releasing it keeps the override (as the seed's app does).
    let ops = dev.op_count();
    boot(&mut dev, true).unwrap();
    assert_eq!(dev.op_count(), ops);
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    // USER1 during a trial cancels it.
    let lower = boot(&mut dev, false).unwrap().app().clone();
    agent_update(&mut dev, lower.bank, &image(Kind::Good, 3)).unwrap();
    let u = boot(&mut dev, true).unwrap().app().clone();
    assert_eq!(u.bank, Bank::Lower);
    let s: BootState = state(&dev);
    assert_eq!(s.trial, None);
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Lower).unwrap(),
        ImageState::Valid
    );
}

#[test]
fn rom_checks_shash_in_secure_only() {
    let mut dev = provisioned(true);
    assert_eq!(dev.lifecycle(), LifeCycle::Secure);
    install(&mut dev, Bank::Lower, &image(Kind::Good, 1));
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);

    // SFlash changed after the hash was blown (a replaced DBM): a secure part refuses.
    let mut dev = provisioned(false);
    install(&mut dev, Bank::Lower, &image(Kind::Good, 1));
    let mut row = [0u8; 512];
    row[..12].copy_from_slice(b"EVIL DBM....");
    dev.sflash_write_row(0x1700_0800, &row).unwrap();
    // NORMAL_PROVISIONED: the chip does not check.
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    dev.advance_lifecycle(LifeCycle::Secure).unwrap();
    assert!(matches!(
        boot(&mut dev, false).unwrap(),
        Ran::RomRefused(RomError::ShashMismatch { .. })
    ));
}

#[test]
fn fresh_device_and_seed_marker() {
    // Nothing recorded: the lower bank boots and nothing is written.
    let mut dev = fresh();
    let ops = dev.op_count();
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    assert_eq!(dev.op_count(), ops);
    // A device updated from the seed with its marker saying "upper": honoured.
    let mut dev = fresh();
    install(&mut dev, Bank::Upper, &image(Kind::Good, 1));
    dev.erase_sector(LOG_ADDRESS).unwrap();
    dev.program_work(LOG_ADDRESS, &[0xAA; 4]).unwrap();
    dev.program_work(LOG_ADDRESS + 4, &[0xFF; 12]).unwrap();
    let r = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(r.bank, Bank::Upper);
    // The app then records normally; the seed word is ignored from then on.
    agent_update(&mut dev, r.bank, &image(Kind::Good, 2)).unwrap();
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
}

#[test]
fn other_board_and_empty_banks() {
    let mut dev = fresh();
    install(&mut dev, Bank::Lower, &image(Kind::OtherBoard, 1));
    install(&mut dev, Bank::Upper, &image(Kind::Good, 1));
    let r = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(
        r.reason,
        BootReason::FellBack {
            from: Bank::Lower,
            fault: BankFault::WrongHardware {
                found: ferrota_image::HardwareId::new("OTHER_BOARD").unwrap()
            }
        }
    );
    let mut blank = provisioned(false);
    match boot(&mut blank, false).unwrap() {
        Ran::Halt(h) => {
            assert!(matches!(h.lower, BankFault::Image(_)));
            assert!(matches!(h.upper, BankFault::Image(_)));
        }
        other => panic!("expected halt, got {other:?}"),
    }
}

#[test]
fn app_api_refusals() {
    let (mut dev, r) = running_v1();
    let v2 = image(Kind::Good, 2);
    agent_lock(&mut dev, r.bank).unwrap();
    write_image(&mut dev.inactive_bank().unwrap(), &v2).unwrap();
    let proof = verify_written(&dev, Bank::Upper, &v2).unwrap();
    assert!(matches!(
        app::request_activation(&mut log(&mut dev), r.bank, &proof, 0),
        Err(AppError::ZeroBudget)
    ));
    let r2 = update_and_boot(&mut dev, &r, &v2);
    let v1 = verify_written(&dev, Bank::Lower, &image(Kind::Good, 1)).unwrap();
    let boot2 = running_boot(&dev, r2.bank);
    // The trial image may not activate another before confirming.
    assert!(matches!(
        app::request_activation(&mut log(&mut dev), r2.bank, &v1, 3),
        Err(AppError::RunningUnconfirmed)
    ));
    // Confirming from the wrong bank is refused.
    assert!(matches!(
        app::confirm(&mut log(&mut dev), Bank::Lower, &boot2),
        Err(AppError::TrialPendingElsewhere { trial: Bank::Upper })
    ));
    agent_confirm(&mut dev, &r2).unwrap();
    assert!(matches!(
        app::confirm(&mut log(&mut dev), Bank::Lower, &boot2),
        Err(AppError::NotCurrent {
            current: Bank::Upper
        })
    ));
    // The CM7_1 flag decides whether CM7_1 starts (the test images carry a CM7_1 app).
    assert!(boot(&mut dev, false).unwrap().app().start_cm7_1);
}

#[test]
fn combined_apis_decide_and_cm0p_run() {
    // `dbm::decide` and `cm0p::run` hold the log and the code flash at once: on a board they are
    // separate memories; here two copies of the device stand for them.
    let (mut dev, r) = running_v1();
    agent_update(&mut dev, r.bank, &image(Kind::TamperedCm7_0, 2)).unwrap();
    dev.reset();
    dev.set_work_err_silent(true).unwrap();
    let mut code = dev.clone();
    let mut scratch = [0u8; SCRATCH];
    let dbm = ferrota_boot::Dbm::new(key()).hardware(ferrota_image::HardwareId::new(BOARD));
    let decision = ferrota_boot::dbm::decide(
        dbm,
        &mut log(&mut dev),
        &mut code.single_bank().unwrap(),
        &mut scratch,
    )
    .unwrap();
    let ferrota_boot::Decision::Boot(b) = decision else {
        panic!("expected a boot");
    };
    assert_eq!(
        b.reason,
        BootReason::Trial {
            attempt: 1,
            budget: 3
        }
    );
    assert!(b.recorded);
    code.set_bank_mode(ferrota_t2g::BankMode::Dual).unwrap();
    code.set_mapping(ferrota_t2g::Mapping::B).unwrap();
    let out = ferrota_boot::cm0p::run(
        &mut code.active_bank().unwrap(),
        &mut log(&mut dev),
        key(),
        &b.proof,
        b.bank,
        &mut scratch,
    )
    .unwrap();
    let ferrota_boot::cm0p::Outcome::Reset(reset) = out else {
        panic!("expected a reset");
    };
    assert_eq!(reset.region, Region::Cm7_0);
    assert_eq!(state(&dev).trial, None);
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
}

/// Issue 14 item 1: an image rejected by its self-test sits in the lower bank (the one USER1
/// prefers). No later path boots it: not the next boot, not USER1, not a fallback when the
/// good bank breaks (the DBM halts instead); only a new activation makes the bank bootable.
#[test]
fn rejected_image_never_boots_again_without_a_new_activation() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 2));
    agent_confirm(&mut dev, &r2).unwrap();
    let r3 = update_and_boot(&mut dev, &r2, &image(Kind::Rejecting, 3));
    assert_eq!((r3.bank, r3.record.security_counter), (Bank::Lower, 3));
    app::reject(&mut log(&mut dev), Bank::Lower).unwrap();
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Lower).unwrap(),
        ImageState::Invalid,
        "the rejected image, while it still runs"
    );
    assert!(state(&dev).is_locked(Bank::Lower));
    let back = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!(back.bank, Bank::Upper);
    assert_eq!(
        app::image_state(&mut log(&mut dev), Bank::Upper).unwrap(),
        ImageState::Valid,
        "the good image that keeps running"
    );
    // USER1 prefers the lower bank, but it is locked.
    let u = boot(&mut dev, true).unwrap().app().clone();
    assert_eq!(
        (u.bank, u.reason),
        (
            Bank::Upper,
            BootReason::User1 {
                lower_fault: Some(BankFault::Locked)
            }
        )
    );
    // Later boots and resets: still the upper bank.
    for user1 in [false, true, false] {
        dev.power_cycle();
        assert_eq!(boot(&mut dev, user1).unwrap().app().bank, Bank::Upper);
    }
    // The good bank breaks: the DBM halts rather than fall back to the rejected image.
    let mut broken = dev.clone();
    install(&mut broken, Bank::Upper, &image(Kind::TamperedCm0p, 2));
    match boot(&mut broken, false).unwrap() {
        Ran::Halt(h) => assert_eq!(h.lower, BankFault::Locked),
        other => panic!("booted a rejected image: {other:?}"),
    }
    // A new signed activation of the lower bank unlocks it.
    agent_update(&mut dev, Bank::Upper, &image(Kind::Good, 4)).unwrap();
    let r4 = boot(&mut dev, false).unwrap().app().clone();
    assert_eq!((r4.bank, r4.record.security_counter), (Bank::Lower, 4));
}

/// Issue 14 item 1: a download the agent refuses (wrong OTA signature, so never activated)
/// leaves a correctly boot-signed image in the lower bank; it must not boot through USER1 or a
/// fallback, because the agent locked the bank before writing it.
#[test]
fn refused_download_never_boots() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 2));
    agent_confirm(&mut dev, &r2).unwrap();
    // The agent's download into the lower bank: lock, write; the OTA signature is then refused.
    agent_lock(&mut dev, Bank::Upper).unwrap();
    write_image(&mut dev.inactive_bank().unwrap(), &image(Kind::Good, 3)).unwrap();
    assert_eq!(state(&dev).event, Event::Locked { bank: Bank::Lower });
    let u = boot(&mut dev, true).unwrap().app().clone();
    assert_eq!(u.bank, Bank::Upper);
    let mut broken = dev.clone();
    install(&mut broken, Bank::Upper, &image(Kind::TamperedCm0p, 2));
    assert!(matches!(boot(&mut broken, false).unwrap(), Ran::Halt(_)));
    // Locking again (a resumed download) writes nothing.
    let ops = dev.op_count();
    dev.set_work_err_silent(true).unwrap();
    agent_lock(&mut dev, Bank::Upper).unwrap();
    assert_eq!(dev.op_count(), ops);
    // The running image under trial cannot lock the bank it would revert to.
    let mut d = fresh();
    let r = boot(&mut d, false).unwrap().app().clone();
    agent_update(&mut d, r.bank, &image(Kind::Good, 2)).unwrap();
    let t = boot(&mut d, false).unwrap().app().clone();
    assert!(matches!(
        app::lock_for_update(&mut log(&mut d), t.bank),
        Err(AppError::RunningUnconfirmed)
    ));
}

/// An image whose trial used up its boot budget is locked too: USER1 does not revive it.
#[test]
fn budget_exhausted_image_is_locked() {
    let (mut dev, r) = running_v1();
    let r2 = update_and_boot(&mut dev, &r, &image(Kind::Good, 2));
    agent_confirm(&mut dev, &r2).unwrap();
    agent_update(&mut dev, Bank::Upper, &image(Kind::Crashing, 3)).unwrap();
    for _ in 0..3 {
        assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Lower);
    }
    assert_eq!(boot(&mut dev, false).unwrap().app().bank, Bank::Upper);
    assert!(state(&dev).is_locked(Bank::Lower));
    assert_eq!(boot(&mut dev, true).unwrap().app().bank, Bank::Upper);
}
