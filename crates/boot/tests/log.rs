//! The marker log on the work-flash model: encoding, every prefix of every write sequence,
//! skipped slots, compaction, WORK_ERR_SILENT.

use ferrota_boot::Bank;
use ferrota_boot::log::{
    self, BootState, Event, Fault, ImageFault, LOG_ADDRESS, LOG_SIZE, LogError, MarkerLog,
    RECORD_SIZE, RevertReason, SLOTS_PER_SECTOR, Trial,
};
use ferrota_image::Region;
use ferrota_t2g::{Device, PowerCut, WorkFlashView};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn log(dev: &mut Device) -> MarkerLog<WorkFlashView<'_>> {
    MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).unwrap()).unwrap()
}

fn silent() -> Device {
    let mut d = Device::new();
    d.set_work_err_silent(true).unwrap();
    d
}

fn read(dev: &Device) -> BootState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    log(&mut d).state().unwrap()
}

fn bank() -> impl Strategy<Value = Bank> {
    prop_oneof![Just(Bank::Lower), Just(Bank::Upper)]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (
            prop::option::of(prop_oneof![
                Just(Region::Cm0p),
                Just(Region::Cm7_0),
                Just(Region::Cm7_1)
            ]),
            any::<u32>(),
            0usize..13
        )
            .prop_map(|(region, offset, k)| Fault::Image {
                region,
                offset,
                kind: [
                    ImageFault::Truncated,
                    ImageFault::TooLong,
                    ImageFault::ObjSize,
                    ImageFault::WrongCore,
                    ImageFault::WrongVectorOffset,
                    ImageFault::WrongCoreCount,
                    ImageFault::Unsigned,
                    ImageFault::MalformedSignature,
                    ImageFault::SignatureMismatch,
                    ImageFault::UnsupportedScheme,
                    ImageFault::VersionRecord,
                    ImageFault::Flash,
                    ImageFault::Other,
                ][k],
            }),
        any::<u32>().prop_map(|counter| Fault::BelowFloor { counter }),
        Just(Fault::WrongHardware),
        Just(Fault::MarkedBad),
        Just(Fault::Locked),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::None),
        bank().prop_map(|bank| Event::Trial { bank }),
        (bank(), 1u8..=255).prop_map(|(bank, attempt)| Event::Booted { bank, attempt }),
        bank().prop_map(|bank| Event::Confirmed { bank }),
        (
            bank(),
            prop_oneof![
                Just(RevertReason::BudgetExhausted),
                Just(RevertReason::Rejected),
                fault().prop_map(RevertReason::TrialInvalid),
                fault().prop_map(RevertReason::Cm7Invalid),
            ]
        )
            .prop_map(|(bank, reason)| Event::Reverted { bank, reason }),
        (bank(), fault()).prop_map(|(from, fault)| Event::FellBack { from, fault }),
        (bank(), prop::option::of(fault()), any::<bool>()).prop_map(
            |(booted, lower_fault, cancelled_trial)| Event::User1 {
                booted,
                lower_fault,
                cancelled_trial
            }
        ),
        (bank(), fault()).prop_map(|(bank, fault)| Event::MarkedBad { bank, fault }),
        bank().prop_map(|bank| Event::Locked { bank }),
    ]
}

fn boot_state() -> impl Strategy<Value = BootState> {
    (
        prop::option::of(bank()),
        prop::option::of((bank(), 1u8..=10, 0u8..=10)),
        any::<u32>(),
        [
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
        ],
        event(),
        [any::<bool>(), any::<bool>()],
    )
        .prop_map(
            |(current, trial, floor, mut bad, event, locked)| BootState {
                current,
                trial: trial.map(|(bank, budget, used)| Trial {
                    bank,
                    budget,
                    used: used.min(budget),
                }),
                floor,
                bad: {
                    // Bank locks are the reserved mark value (ferrota_boot::log::LOCK_MARK).
                    for (b, l) in bad.iter_mut().zip(locked) {
                        if l {
                            *b = Some(ferrota_boot::log::LOCK_MARK);
                        }
                    }
                    bad
                },
                event,
            },
        )
}

proptest! {
    #![proptest_config(Config {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x1065),
        failure_persistence: None,
        ..Config::default()
    })]

    /// Every state has one encoding, which decodes to it; any single bit flip is refused.
    #[test]
    fn encoding_round_trips(s in boot_state(), seq in 1u32..u32::MAX, bit in 0usize..RECORD_SIZE * 8) {
        let raw = log::encode(seq, &s);
        prop_assert_eq!(log::decode(&raw), Some((seq, s)));
        let mut flipped = raw;
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(log::decode(&flipped), None);
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x10_6E),
        failure_persistence: None,
        ..Config::default()
    })]

    /// A random sequence of appends (long enough to compact twice), cut before or tearing a
    /// random operation of a random append, reads back as the state before or after that append;
    /// the log then keeps working.
    #[test]
    fn any_prefix_reads_back_old_or_new(
        states in prop::collection::vec(boot_state(), 1..130),
        cut_at in any::<prop::sample::Index>(),
        op_in in 0u64..11,
        tear in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut dev = silent();
        let k = cut_at.index(states.len());
        for s in &states[..k] {
            log(&mut dev).append(s).unwrap();
        }
        let old = read(&dev);
        let (ops, _) = dev.count_ops(|d| log(d).append(&states[k]).unwrap());
        let op = dev.op_count() + op_in % ops;
        let cut = if tear { PowerCut::Tear { op, seed } } else { PowerCut::Before(op) };
        let mut d = dev.clone().with_power_cut(cut);
        prop_assert!(log(&mut d).append(&states[k]).is_err());
        d.power_cycle();
        let got = read(&d);
        prop_assert!(got == old || got == states[k], "{:?}", got);
        // The log keeps working after the cut.
        d.set_work_err_silent(true).unwrap();
        for s in &states[k..] {
            log(&mut d).append(s).unwrap();
            prop_assert_eq!(read(&d), *s);
        }
    }
}

#[test]
fn compaction_alternates_sectors() {
    let mut dev = silent();
    let mut s = BootState::EMPTY;
    for i in 0..(3 * SLOTS_PER_SECTOR as u32 + 5) {
        s.floor = i;
        let snap = log(&mut dev).append(&s).unwrap();
        let at = snap.at.unwrap();
        let n = i as usize;
        assert_eq!(at.sector, (n / SLOTS_PER_SECTOR) % 2, "record {n}");
        assert_eq!(at.slot, n % SLOTS_PER_SECTOR);
        assert_eq!(snap.seq, i + 1);
        assert_eq!(log(&mut dev).state().unwrap(), s);
    }
    // One erase of each sector per 51 records after the first pass.
    let erases: u32 = [LOG_ADDRESS, LOG_ADDRESS + 0x800]
        .iter()
        .map(|&a| dev.erase_count(a).unwrap())
        .sum();
    assert_eq!(erases, 3);
}

#[test]
fn unprogrammable_slot_is_skipped() {
    // A torn append left a word that reads 0xFF but is "written": the next append must skip it.
    let mut dev = silent();
    let mut s = BootState::EMPTY;
    s.floor = 1;
    log(&mut dev).append(&s).unwrap();
    // Program slot 1's first word with 0xFFFFFFFF (reads erased, cannot be programmed again).
    dev.program_work(LOG_ADDRESS + RECORD_SIZE as u32, &[0xFF; 4])
        .unwrap();
    s.floor = 2;
    let snap = log(&mut dev).append(&s).unwrap();
    assert_eq!(snap.at.unwrap().slot, 2);
    assert_eq!(read(&dev), s);
}

#[test]
fn reads_need_work_err_silent() {
    let mut dev = Device::new();
    let r = log(&mut dev).state();
    assert!(matches!(
        r,
        Err(LogError::Flash(ferrota_t2g::Error::ErasedRead { .. }))
    ));
    dev.set_work_err_silent(true).unwrap();
    assert_eq!(log(&mut dev).state().unwrap(), BootState::EMPTY);
}

#[test]
fn too_small_view_is_refused() {
    let mut dev = silent();
    let v = dev.work_flash_range(LOG_ADDRESS, 0x800).unwrap();
    assert!(matches!(
        MarkerLog::new(v),
        Err(LogError::TooSmall { capacity: 0x800 })
    ));
}

#[test]
fn update_writes_only_changes() {
    let mut dev = silent();
    let (s, written) = log(&mut dev).update(|s| *s).unwrap();
    assert_eq!((s, written), (BootState::EMPTY, false));
    assert_eq!(dev.op_count(), 0);
    let (_, written) = log(&mut dev)
        .update(|s| BootState { floor: 3, ..*s })
        .unwrap();
    assert!(written);
    assert_eq!(dev.op_count(), (RECORD_SIZE / 4) as u64);
    let mut n = 0;
    log(&mut dev)
        .for_each_record(|_, seq, st| {
            assert_eq!((seq, st.floor), (1, 3));
            n += 1;
        })
        .unwrap();
    assert_eq!(n, 1);
}
