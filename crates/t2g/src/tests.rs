//! Behavioural tests of the whole model (they use crate internals to compare sector states).

use core::time::Duration;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use crate::geometry::*;
use crate::*;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) & 0x7E)
        .collect()
}

fn dual() -> Device {
    let mut d = Device::new();
    d.set_bank_mode(BankMode::Dual).unwrap();
    d
}

// ---------------------------------------------------------------- NOR rules

#[test]
fn code_word_programs_once_per_erase() {
    let mut d = Device::new();
    d.program_code(0x1000_0000, &[0x12; 8]).unwrap();
    // Same value again: still an ECC error.
    assert_eq!(
        d.program_code(0x1000_0000, &[0x12; 8]),
        Err(Error::NotErased { addr: 0x1000_0000 })
    );
    // A row overlapping a programmed word is refused as a whole and changes nothing.
    assert_eq!(
        d.program_code(0x1000_0000, &[0; 16]),
        Err(Error::NotErased { addr: 0x1000_0000 })
    );
    assert!(d.code_is_erased(0x1000_0008, 8).unwrap());
    d.program_code(0x1000_0008, &[0x34; 8]).unwrap();
    d.erase_sector(0x1000_0000).unwrap();
    let mut b = [0; 16];
    d.read(0x1000_0000, &mut b).unwrap();
    assert_eq!(b, [0xFF; 16]);
    d.program_code(0x1000_0000, &[0x56; 8]).unwrap();
    d.read(0x1000_0000, &mut b).unwrap();
    assert_eq!(&b[..8], &[0x56; 8]);
    assert_eq!(&b[8..], &[0xFF; 8]);
}

#[test]
fn code_program_alignment_and_rows() {
    let mut d = Device::new();
    assert_eq!(
        d.program_code(0x1000_0004, &[0; 8]),
        Err(Error::NotAligned {
            addr: 0x1000_0004,
            align: 8
        })
    );
    assert_eq!(
        d.program_code(0x1000_0000, &[0; 12]),
        Err(Error::BadLength { len: 12, unit: 8 })
    );
    assert_eq!(
        d.program_code(0x1000_0000, &[]),
        Err(Error::BadLength { len: 0, unit: 8 })
    );
    assert_eq!(
        d.program_code(0x1000_01F8, &[0; 16]),
        Err(Error::CrossesRow {
            addr: 0x1000_01F8,
            len: 16
        })
    );
    assert_eq!(d.op_count(), 0, "refused calls are not operations");
    d.program_code(0x1000_0200, &[0; 512]).unwrap();
    assert_eq!(d.op_count(), 1);
}

#[test]
fn erase_needs_exact_sector_start() {
    let mut d = Device::new();
    assert_eq!(
        d.erase_sector(0x1000_0200),
        Err(Error::NotSectorStart { addr: 0x1000_0200 })
    );
    assert_eq!(
        d.erase_sector(0x1000_4000),
        Err(Error::NotSectorStart { addr: 0x1000_4000 })
    );
    d.erase_sector(0x107F_2000).unwrap(); // small sector
    assert_eq!(
        d.erase_sector(0x107F_1000),
        Err(Error::NotSectorStart { addr: 0x107F_1000 })
    );
    assert_eq!(
        d.erase_sector(0x1401_2004),
        Err(Error::NotSectorStart { addr: 0x1401_2004 })
    );
    d.erase_sector(0x1403_0080).unwrap(); // 128 B work sector
    assert_eq!(
        d.erase_sector(SFLASH_BASE),
        Err(Error::WrongMemory { addr: SFLASH_BASE })
    );
    assert!(matches!(
        d.erase_sector(0x1200_0000),
        Err(Error::Address(AddressError::Unmapped { .. }))
    ));
    assert_eq!(d.erase_count(0x107F_2000), Ok(1));
    assert_eq!(d.erase_count(0x107F_0000), Ok(0));
}

#[test]
fn work_flash_rules() {
    let mut d = Device::new();
    let a = WORK_MARKER_LOG;
    assert_eq!(d.read_u32(a), Err(Error::ErasedRead { addr: a }));
    d.set_work_err_silent(true).unwrap();
    assert_eq!(d.read_u32(a), Ok(0xFFFF_FFFF));
    d.set_work_err_silent(false).unwrap();
    d.program_work_word(a, 0xAAAA_AAAA).unwrap();
    assert_eq!(d.read_u32(a), Ok(0xAAAA_AAAA));
    // A read overlapping an erased word faults at that word.
    let mut b = [0; 8];
    assert_eq!(d.read(a, &mut b), Err(Error::ErasedRead { addr: a + 4 }));
    assert_eq!(
        d.program_work_word(a, 0xAAAA_AAAA),
        Err(Error::NotErased { addr: a })
    );
    assert_eq!(
        d.program_work_word(a + 2, 0),
        Err(Error::NotAligned {
            addr: a + 2,
            align: 4
        })
    );
    // A multi-word program is all-or-nothing on the precondition.
    assert_eq!(
        d.program_work(a - 4, &[0; 8]),
        Err(Error::NotErased { addr: a })
    );
    assert!(d.work_is_erased(a - 4, 4).unwrap());
    d.erase_sector(a).unwrap();
    d.program_work_word(a, 0x5555_5555).unwrap();
    assert_eq!(d.read_u32(a), Ok(0x5555_5555));
    // The reset clears WORK_ERR_SILENT.
    d.set_work_err_silent(true).unwrap();
    d.reset();
    assert_eq!(d.read_u32(a + 4), Err(Error::ErasedRead { addr: a + 4 }));
}

// ---------------------------------------------------------------- mapping

#[test]
fn mapping_b_swaps_the_aliases() {
    let mut d = dual();
    d.inactive_bank().unwrap().write(0x80, &[0xA5; 8]).unwrap();
    let mut b = [0; 8];
    d.read(0x1000_0080, &mut b).unwrap();
    assert_eq!(b, [0xFF; 8], "bank 0 untouched under mapping A");
    d.set_mapping(Mapping::B).unwrap();
    d.read(0x1000_0080, &mut b).unwrap();
    assert_eq!(b, [0xA5; 8]);
    d.read(0x1200_0080, &mut b).unwrap();
    assert_eq!(b, [0xFF; 8]);
    // The switch survives nothing: after a reset the device is single-bank, mapping A, and the
    // data is in the upper half at its SBM address.
    d.reset();
    assert_eq!(d.flash_ctl(), FlashCtl::RESET);
    d.read(0x103F_8080, &mut b).unwrap();
    assert_eq!(b, [0xA5; 8]);
}

#[test]
fn single_and_dual_bank_addresses_agree() {
    let mut d = Device::new();
    let cases = [
        (0x1000_0000u32, 0x1000_0000u32, 0x1200_0000u32),
        (0x103F_8000, 0x1200_0000, 0x1000_0000),
        (0x107F_0000, 0x103F_8000, 0x123F_8000),
        (0x1081_0000, 0x123F_8000, 0x103F_8000),
        (0x1080_FE00, 0x1041_7E00, 0x1241_7E00),
        (0x107E_FE00, 0x123F_7E00, 0x103F_7E00),
    ];
    for (i, (sbm, _, _)) in cases.iter().enumerate() {
        d.program_code(*sbm, &pattern(512, i as u8)).unwrap();
    }
    for map in [Mapping::A, Mapping::B] {
        d.write_flash_ctl(
            FlashCtl::RESET
                .with_bank_mode(BankMode::Dual)
                .with_mapping(map),
        )
        .unwrap();
        for (i, (sbm, a, b)) in cases.iter().enumerate() {
            let addr = if map == Mapping::A { *a } else { *b };
            let mut got = vec![0; 512];
            d.read(addr, &mut got).unwrap();
            assert_eq!(
                got,
                pattern(512, i as u8),
                "{sbm:#x} seen at {addr:#x} in {map:?}"
            );
            assert_eq!(d.translate_code(addr).unwrap().sbm_address(), *sbm);
        }
    }
}

#[test]
fn reads_across_the_large_small_boundary_of_a_bank() {
    let mut d = dual();
    d.set_mapping(Mapping::B).unwrap();
    d.program_code(0x103F_7FF8, &[1; 8]).unwrap();
    d.program_code(0x103F_8000, &[2; 8]).unwrap();
    let mut b = [0; 16];
    d.active_bank().unwrap().read(0x3F_7FF8, &mut b).unwrap();
    assert_eq!(b, [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    d.reset();
    d.read(0x107F_7FF8, &mut b[..8]).unwrap(); // upper half ends at 0x107EFFFF
    d.read(0x107E_FFF8, &mut b[..8]).unwrap();
    assert_eq!(&b[..8], &[1; 8]);
    d.read(0x1081_0000, &mut b[..8]).unwrap();
    assert_eq!(&b[..8], &[2; 8]);
    let mut big = [0; 16];
    assert!(matches!(
        d.read(0x1082_FFF8, &mut big),
        Err(Error::Address(AddressError::RangeEnd { .. }))
    ));
}

// ---------------------------------------------------------------- views

#[test]
fn views_check_mode_bounds_and_alignment() {
    let mut d = Device::new();
    assert!(matches!(
        d.active_bank(),
        Err(Error::WrongBankMode {
            needed: BankMode::Dual
        })
    ));
    assert_eq!(d.single_bank().unwrap().capacity(), CODE_SIZE as usize);
    d.set_bank_mode(BankMode::Dual).unwrap();
    assert!(d.single_bank().is_err());
    let mut b = d.inactive_bank().unwrap();
    assert_eq!(b.capacity(), BANK_SIZE as usize);
    assert_eq!(
        b.write(4, &[0; 8]).unwrap_err().kind(),
        NorFlashErrorKind::NotAligned
    );
    assert_eq!(
        b.write(BANK_SIZE - 8, &[0; 16]).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    assert_eq!(
        b.erase(0, 0x2000).unwrap_err().kind(),
        NorFlashErrorKind::NotAligned
    );
    assert_eq!(
        b.erase(0x8000, 0).unwrap_err().kind(),
        NorFlashErrorKind::OutOfBounds
    );
    // Erasing the last 32 KB of a bank erases four small sectors.
    let ops = d.op_count();
    d.inactive_bank()
        .unwrap()
        .erase(BANK_SIZE - 0x8000, BANK_SIZE)
        .unwrap();
    assert_eq!(d.op_count() - ops, 4);
    // A write spanning rows is one operation per row piece.
    let ops = d.op_count();
    d.inactive_bank()
        .unwrap()
        .write(0x1F8, &[0; 0x210])
        .unwrap();
    assert_eq!(d.op_count() - ops, 3);
    assert_eq!(Error::PowerLost.kind(), NorFlashErrorKind::Other);
}

#[test]
fn work_flash_views() {
    let mut d = Device::new();
    assert!(d.work_flash_range(WORK_MARKER_LOG + 4, 0x800).is_err());
    assert!(
        d.work_flash_range(WORK_BASE + WORK_SIZE - 0x800, 0x1000)
            .is_err()
    );
    let mut w = d.work_flash_range(WORK_MARKER_LOG, 0x1000).unwrap();
    assert_eq!(w.capacity(), 0x1000);
    w.write(0x800, &[1, 2, 3, 4]).unwrap();
    let mut b = [0; 4];
    w.read(0x800, &mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4]);
    assert_eq!(
        w.read(0x804, &mut b),
        Err(Error::ErasedRead {
            addr: WORK_MARKER_LOG + 0x804
        })
    );
    w.erase(0x800, 0x1000).unwrap();
    assert!(d.work_is_erased(WORK_MARKER_LOG + 0x800, 4).unwrap());
    let ops = d.op_count();
    d.work_flash()
        .erase(WORK_LARGE_SIZE, WORK_LARGE_SIZE + 0x800)
        .unwrap();
    assert_eq!(d.op_count() - ops, 16, "2 KB of small sectors is 16 erases");
}

// ---------------------------------------------------------------- SFlash and eFuse

#[test]
fn sflash_rows_and_protection() {
    let mut d = Device::new();
    let row = pattern(512, 9);
    d.sflash_write_row(SFLASH_TOC2, &row).unwrap();
    d.sflash_write_row(SFLASH_TOC2, &row).unwrap(); // write-row includes the erase
    let mut b = vec![0; 512];
    d.sflash().read(SFLASH_TOC2 - SFLASH_BASE, &mut b).unwrap();
    assert_eq!(b, row);
    assert_eq!(d.erase_count(SFLASH_TOC2), Ok(2));
    assert_eq!(
        d.sflash_write_row(SFLASH_TOC2 + 8, &row),
        Err(Error::NotAligned {
            addr: SFLASH_TOC2 + 8,
            align: 512
        })
    );
    assert!(matches!(
        d.sflash_write_row(SFLASH_DBM, &row[..256]),
        Err(Error::BadLength { .. })
    ));
    d.advance_lifecycle(LifeCycle::Secure).unwrap();
    assert_eq!(
        d.sflash_write_row(SFLASH_PUBLIC_KEY, &row),
        Err(Error::WriteProtected {
            addr: SFLASH_PUBLIC_KEY,
            stage: LifeCycle::Secure
        })
    );
    d.read(SFLASH_TOC2, &mut b).unwrap();
    assert_eq!(b, row, "reads still work");
}

#[test]
fn lifecycle_moves_forward_only() {
    let mut d = Device::new();
    assert_eq!(d.lifecycle(), LifeCycle::NormalProvisioned);
    let bad = |from, to| Err(Error::Efuse(EfuseError::InvalidTransition { from, to }));
    assert_eq!(
        d.advance_lifecycle(LifeCycle::Normal),
        bad(LifeCycle::NormalProvisioned, LifeCycle::Normal)
    );
    assert_eq!(
        d.advance_lifecycle(LifeCycle::Rma),
        bad(LifeCycle::NormalProvisioned, LifeCycle::Rma)
    );
    d.advance_lifecycle(LifeCycle::Secure).unwrap();
    assert_eq!(d.lifecycle(), LifeCycle::Secure);
    assert_eq!(
        d.advance_lifecycle(LifeCycle::SecureWithDebug),
        bad(LifeCycle::Secure, LifeCycle::SecureWithDebug)
    );
    assert_eq!(
        d.advance_lifecycle(LifeCycle::NormalProvisioned),
        bad(LifeCycle::Secure, LifeCycle::NormalProvisioned)
    );
    d.advance_lifecycle(LifeCycle::Rma).unwrap();
    assert_eq!(d.lifecycle().value(), 4);
    let mut v = Device::virgin();
    assert_eq!(v.lifecycle(), LifeCycle::Virgin);
    v.advance_lifecycle(LifeCycle::Normal).unwrap();
    v.advance_lifecycle(LifeCycle::SecureWithDebug).unwrap();
    assert!(v.is_secure());
    assert!(!v.sflash_writable());
}

#[test]
fn shash_is_blow_only_and_locks() {
    let mut d = Device::new();
    let mut h = [0u8; 32];
    h[0] = 0b1010;
    h[31] = 0x80;
    let ops = d.op_count();
    d.blow_shash(&h).unwrap();
    assert_eq!(d.op_count() - ops, 3, "one operation per blown bit");
    assert_eq!(d.efuse().shash(), h);
    let mut h2 = h;
    h2[0] = 0b0001;
    assert_eq!(
        d.blow_shash(&h2),
        Err(Error::Efuse(EfuseError::WouldUnblow))
    );
    h2[0] = 0b1011;
    d.blow_shash(&h2).unwrap();
    assert_eq!(d.efuse().shash(), h2);
    d.advance_lifecycle(LifeCycle::Secure).unwrap();
    assert_eq!(
        d.blow_shash(&[0xFF; 32]),
        Err(Error::Efuse(EfuseError::Locked {
            stage: LifeCycle::Secure
        }))
    );
}

#[test]
fn rollback_counter_is_monotonic() {
    let mut d = Device::new();
    assert_eq!(d.rollback_counter(), 0);
    d.raise_rollback_counter(3).unwrap();
    assert_eq!(d.rollback_counter(), 3);
    d.raise_rollback_counter(3).unwrap();
    assert_eq!(
        d.raise_rollback_counter(2),
        Err(Error::Efuse(EfuseError::CounterDecrease {
            current: 3,
            requested: 2
        }))
    );
    assert_eq!(
        d.raise_rollback_counter(EFUSE_COUNTER_BITS + 1),
        Err(Error::Efuse(EfuseError::CounterOverflow {
            requested: 129,
            max: 128
        }))
    );
    d.raise_rollback_counter(EFUSE_COUNTER_BITS).unwrap();
    assert_eq!(d.rollback_counter(), EFUSE_COUNTER_BITS);
    // Survives a power cycle (non-volatile).
    d.power_cycle();
    assert_eq!(d.rollback_counter(), EFUSE_COUNTER_BITS);
}

// ---------------------------------------------------------------- timing

#[test]
fn operations_advance_the_clock() {
    let t = Timing::default();
    let mut d = Device::new();
    assert_eq!(d.now(), Duration::ZERO);
    d.erase_sector(0x1000_0000).unwrap();
    assert_eq!(d.now(), t.code_erase_large);
    d.program_code(0x1000_0000, &[0; 512]).unwrap();
    assert_eq!(d.now(), t.code_erase_large + t.code_program_chunk * 16);
    d.program_work_word(WORK_BASE, 0).unwrap();
    d.advance_clock(Duration::from_millis(100));
    assert_eq!(
        d.now(),
        t.code_erase_large
            + t.code_program_chunk * 16
            + t.work_program_word
            + Duration::from_millis(100)
    );
    let custom = Timing {
        code_erase_small: Duration::from_secs(1),
        ..Timing::default()
    };
    let mut d = Device::new().with_timing(custom);
    d.erase_sector(SBM_SMALL_BASE).unwrap();
    assert_eq!(d.clock().now(), Duration::from_secs(1));
    // A refused operation takes no time.
    let _ = d.erase_sector(SBM_SMALL_BASE + 8);
    assert_eq!(d.clock().nanos(), 1_000_000_000);
}

// ---------------------------------------------------------------- power cuts

type Step = Box<dyn Fn(&mut Device) -> Result<(), Error>>;

const MARK: u32 = WORK_MARKER_LOG;

/// A device with content everywhere the scenario touches, so that every operation is visible.
fn base() -> Device {
    let mut d = dual();
    d.inactive_bank()
        .unwrap()
        .write(0, &pattern(0x8000, 0x11))
        .unwrap();
    d.program_work(MARK, &pattern(0x800, 0x22)).unwrap();
    d.sflash_write_row(SFLASH_DBM, &pattern(512, 0x33)).unwrap();
    d.raise_rollback_counter(1).unwrap();
    d
}

/// The scenario through the high-level APIs (views that split into operations).
fn scenario(d: &mut Device) -> Result<(), Error> {
    let mut b = d.inactive_bank()?;
    b.erase(0, 0x8000)?;
    b.write(0x100, &pattern(1024, 1))?;
    let mut w = d.work_flash_range(MARK, 0x800)?;
    w.erase(0, 0x800)?;
    w.write(0, &[1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x20, 0x30, 0x40])?;
    d.sflash_write_row(SFLASH_DBM, &pattern(512, 2))?;
    let c = d.rollback_counter();
    d.raise_rollback_counter(c + 2)
}

/// The same scenario, one closure per single operation, and which sector each one targets.
fn steps() -> Vec<(Step, Region, u32)> {
    let p = pattern(1024, 1);
    let (p0, p1, p2) = (p[..256].to_vec(), p[256..768].to_vec(), p[768..].to_vec());
    let up = SBM_UPPER_LARGE_BASE; // bank 1 under mapping A
    let mut v: Vec<(Step, Region, u32)> = vec![
        (Box::new(|d| d.erase_sector(0x1200_0000)), Region::Code, up),
        (
            Box::new(move |d| d.program_code(0x1200_0100, &p0)),
            Region::Code,
            up,
        ),
        (
            Box::new(move |d| d.program_code(0x1200_0200, &p1)),
            Region::Code,
            up,
        ),
        (
            Box::new(move |d| d.program_code(0x1200_0400, &p2)),
            Region::Code,
            up,
        ),
        (Box::new(|d| d.erase_sector(MARK)), Region::Work, MARK),
    ];
    for (i, w) in [0x0403_0201u32, 0x0807_0605, 0x4030_2010]
        .into_iter()
        .enumerate()
    {
        v.push((
            Box::new(move |d| d.program_work_word(MARK + 4 * i as u32, w)),
            Region::Work,
            MARK,
        ));
    }
    v.push((
        Box::new(|d| d.sflash_write_row(SFLASH_DBM, &pattern(512, 2))),
        Region::SFlash,
        SFLASH_DBM,
    ));
    v.push((Box::new(|d| d.raise_rollback_counter(2)), Region::SFlash, 0));
    v.push((Box::new(|d| d.raise_rollback_counter(3)), Region::SFlash, 0));
    v
}

/// The non-volatile state after the first `n` single operations, from `base`.
fn expected(base: &Device, n: usize) -> Device {
    let mut d = base.clone();
    for (s, _, _) in steps().iter().take(n) {
        s(&mut d).unwrap();
    }
    d
}

fn sector(d: &Device, region: Region, addr: u32) -> &crate::nor::Sector {
    let (arr, off) = match region {
        Region::Code => (&d.code, addr - CODE_BASE),
        Region::Work => (&d.work, addr - WORK_BASE),
        Region::SFlash => (&d.sflash, addr - SFLASH_BASE),
    };
    let i = arr.sector_at(off).unwrap().index;
    &arr.sectors()[i]
}

/// Every sector except `skip` is identical in `a` and `b`.
fn same_except(a: &Device, b: &Device, skip: Option<(Region, u32)>) -> bool {
    let skip = skip.map(|(r, addr)| {
        let (arr, off) = match r {
            Region::Code => (&a.code, addr - CODE_BASE),
            Region::Work => (&a.work, addr - WORK_BASE),
            Region::SFlash => (&a.sflash, addr - SFLASH_BASE),
        };
        (r, arr.sector_at(off).unwrap().index)
    });
    [
        (Region::Code, &a.code, &b.code),
        (Region::Work, &a.work, &b.work),
        (Region::SFlash, &a.sflash, &b.sflash),
    ]
    .into_iter()
    .all(|(r, x, y)| {
        x.sectors()
            .iter()
            .zip(y.sectors())
            .enumerate()
            .all(|(i, (s, t))| skip == Some((r, i)) || s == t)
    })
}

#[test]
fn steps_match_the_scenario() {
    let b = base();
    let mut clean = b.clone();
    scenario(&mut clean).unwrap();
    let total = (clean.op_count() - b.op_count()) as usize;
    assert_eq!(total, steps().len());
    assert_eq!(b.count_ops(scenario), (total as u64, Ok(())));
    let e = expected(&b, total);
    assert_eq!(clean.to_bytes(), e.to_bytes());
    assert_ne!(b.to_bytes(), e.to_bytes());
}

#[test]
fn cut_before_every_operation() {
    let b = base();
    let total = steps().len() as u64;
    for n in 0..=total {
        let mut d = b.clone();
        d.schedule_power_cut(PowerCut::Before(b.op_count() + n));
        let r = scenario(&mut d);
        if n == total {
            assert_eq!(r, Ok(()), "a cut after the last operation does not fire");
            assert_eq!(
                d.pending_power_cut(),
                Some(PowerCut::Before(b.op_count() + n))
            );
            continue;
        }
        assert_eq!(r, Err(Error::PowerLost), "cut {n}");
        assert!(d.power_lost());
        assert_eq!(d.op_count(), b.op_count() + n);
        // Everything before N is applied, nothing from N on.
        assert_eq!(
            d.to_bytes(),
            expected(&b, n as usize).to_bytes(),
            "cut before op {n}"
        );
        // Dead until a power cycle, which resets the register.
        assert_eq!(d.read_u32(0x1000_0000), Err(Error::PowerLost));
        assert_eq!(d.erase_sector(0x1000_0000), Err(Error::PowerLost));
        assert_eq!(d.set_mapping(Mapping::B), Err(Error::PowerLost));
        assert_eq!(d.program_work_word(WORK_BASE, 0), Err(Error::PowerLost));
        assert_eq!(
            d.sflash_write_row(SFLASH_BASE, &[0; 512]),
            Err(Error::PowerLost)
        );
        assert_eq!(d.raise_rollback_counter(100), Err(Error::PowerLost));
        assert_eq!(
            d.op_count(),
            b.op_count() + n,
            "failed calls are not operations"
        );
        d.power_cycle();
        assert_eq!(d.flash_ctl(), FlashCtl::RESET);
        assert_eq!(d.pending_power_cut(), None);
        d.erase_sector(0x1000_0000).unwrap();
    }
}

#[test]
fn tear_every_operation() {
    let b = base();
    let steps = steps();
    for (n, (_, region, addr)) in steps.iter().enumerate() {
        let before = expected(&b, n);
        let after = expected(&b, n + 1);
        let is_efuse = *addr == 0;
        for seed in 0..4 {
            let mut d = b.clone();
            d.schedule_power_cut(PowerCut::Tear {
                op: b.op_count() + n as u64,
                seed,
            });
            assert_eq!(scenario(&mut d), Err(Error::PowerLost));
            assert_eq!(
                d.op_count(),
                b.op_count() + n as u64 + 1,
                "the torn op counts"
            );
            if is_efuse {
                assert!(same_except(&d, &before, None));
                assert!(d.efuse == before.efuse || d.efuse == after.efuse);
                continue;
            }
            let target = Some((*region, *addr));
            let sbm = if *region == Region::Code {
                SBM_UPPER_LARGE_BASE
            } else {
                *addr
            };
            assert!(
                same_except(&d, &before, target),
                "op {n} seed {seed}: other sectors changed"
            );
            assert!(d.efuse == before.efuse);
            let torn = sector(&d, *region, sbm);
            assert!(
                torn != sector(&before, *region, sbm),
                "op {n} seed {seed}: torn == old"
            );
            assert!(
                torn != sector(&after, *region, sbm),
                "op {n} seed {seed}: torn == new"
            );
            d.power_cycle();
            d.set_bank_mode(BankMode::Dual).unwrap();
            // The torn area is not erased: it cannot be programmed until erased again.
            match *region {
                Region::Code => {
                    let first = [0x1200_0000, 0x1200_0100, 0x1200_0200, 0x1200_0400][n];
                    assert!(matches!(
                        d.program_code(first, &[0; 8]),
                        Err(Error::NotErased { .. })
                    ));
                    d.erase_sector(0x1200_0000).unwrap();
                    d.program_code(first, &[0; 8]).unwrap();
                }
                Region::Work => {
                    let w = if n == 4 {
                        MARK
                    } else {
                        MARK + 4 * (n as u32 - 5)
                    };
                    assert!(matches!(
                        d.program_work_word(w, 0),
                        Err(Error::NotErased { .. })
                    ));
                    d.erase_sector(MARK).unwrap();
                    d.program_work_word(w, 0).unwrap();
                }
                Region::SFlash => d.sflash_write_row(SFLASH_DBM, &[0; 512]).unwrap(),
            }
        }
    }
}

#[test]
fn tears_are_deterministic_per_seed() {
    let b = base();
    let run = |seed| {
        let mut d = b.clone();
        d.schedule_power_cut(PowerCut::Tear {
            op: b.op_count() + 2,
            seed,
        });
        let _ = scenario(&mut d);
        d.to_bytes()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn clones_are_independent_snapshots() {
    let mut d = dual();
    d.inactive_bank().unwrap().write(0, &[0; 0x10000]).unwrap();
    let snaps: Vec<Device> = (0..1000).map(|_| d.clone()).collect();
    d.inactive_bank().unwrap().erase(0, 0x8000).unwrap();
    let mut b = [0xAA; 8];
    let mut s = snaps[999].clone();
    s.inactive_bank().unwrap().read(0, &mut b).unwrap();
    assert_eq!(b, [0; 8]);
    d.inactive_bank().unwrap().read(0, &mut b).unwrap();
    assert_eq!(b, [0xFF; 8]);
}

#[test]
fn wear_report() {
    let mut d = Device::new();
    d.erase_sector(0x1000_8000).unwrap();
    d.erase_sector(0x1000_8000).unwrap();
    d.program_code(0x1000_8000, &[0; 8]).unwrap();
    let s = d.sectors();
    assert_eq!(s.len(), (CODE_SECTORS + 96 + 512 + 64) as usize);
    let x = s.iter().find(|s| s.addr == 0x1000_8000).unwrap();
    assert_eq!(
        (x.region, x.size, x.erase_count, x.erased),
        (Region::Code, 0x8000, 2, false)
    );
    assert!(
        s.iter()
            .filter(|s| s.addr != 0x1000_8000)
            .all(|s| s.erase_count == 0 && s.erased)
    );
}

// ---------------------------------------------------------------- files

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrota-t2g-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn file_round_trip() {
    let mut d = base();
    d.erase_sector(0x1403_0080).unwrap();
    d.program_work_word(0x1403_0080, 7).unwrap();
    d.advance_lifecycle(LifeCycle::Secure).unwrap();
    d.advance_clock(Duration::from_secs(3));
    d.set_mapping(Mapping::B).unwrap();
    let p = temp_path("round.t2g");
    d.save(&p).unwrap();
    let l = Device::load(&p).unwrap();
    assert_eq!(l.to_bytes(), d.to_bytes());
    assert!(same_except(&l, &d, None));
    assert_eq!(l.efuse, d.efuse);
    assert_eq!(l.op_count(), d.op_count());
    assert_eq!(l.now(), d.now());
    assert_eq!(l.flash_ctl(), FlashCtl::RESET, "loading is a power-on");
    assert_eq!(l.erase_count(0x1403_0080), Ok(1));
    assert_eq!(l.read_u32(0x1403_0080), Ok(7));
    // Sparse: an erased device is a few KB, the base device holds 2 sectors + 1 row of data.
    let blank = Device::new().to_bytes().len();
    assert!(blank < 8 * 1024, "{blank}");
    let size = std::fs::metadata(&p).unwrap().len() as usize;
    assert!(size < blank + 0x8000 + 0x800 + 512 + 1024, "{size}");
    // Saving again replaces the file and leaves no temporary behind.
    Device::new().save(&p).unwrap();
    assert_eq!(
        Device::load(&p).unwrap().to_bytes(),
        Device::new().to_bytes()
    );
    let leftovers = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

fn with_crc(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn bad_files_are_typed_errors() {
    let mut d = Device::new();
    d.program_code(0x1000_0000, &[0; 8]).unwrap();
    let good = d.to_bytes();
    assert!(Device::from_bytes(&good).is_ok());
    // Every truncation.
    for n in 0..good.len() {
        let e = Device::from_bytes(&good[..n]).unwrap_err();
        assert!(
            matches!(
                e,
                PersistError::Truncated { .. } | PersistError::NotADeviceFile
            ),
            "{n}: {e}"
        );
        if n >= 8 {
            assert!(matches!(e, PersistError::Truncated { .. }), "{n}: {e}");
        }
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        Device::from_bytes(&long),
        Err(PersistError::Malformed(_))
    ));
    // Wrong version.
    let mut v = good.clone();
    v[8] = 2;
    assert!(matches!(
        Device::from_bytes(&v),
        Err(PersistError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    // Not a device file.
    assert!(matches!(
        Device::from_bytes(b"hello, world, this is text"),
        Err(PersistError::NotADeviceFile)
    ));
    assert!(matches!(
        Device::from_bytes(b""),
        Err(PersistError::NotADeviceFile)
    ));
    // Corrupted: a flipped bit anywhere after the header is a checksum error.
    let mut rng = crate::power::Rng::new(1);
    for _ in 0..200 {
        let mut c = good.clone();
        let i = 20 + rng.below((c.len() - 20) as u64) as usize;
        c[i] ^= 1 << rng.below(8);
        assert!(matches!(
            Device::from_bytes(&c),
            Err(PersistError::ChecksumMismatch { .. })
        ));
    }
    // Corrupted with a recomputed checksum: malformed, never a panic.
    let mut sector_count = good.clone();
    sector_count[20 + 8 + 8 + 128] ^= 1;
    assert!(matches!(
        Device::from_bytes(&with_crc(sector_count)),
        Err(PersistError::Malformed(_))
    ));
    for _ in 0..500 {
        let mut c = good.clone();
        let i = 20 + rng.below((c.len() - 24) as u64) as usize;
        c[i] = rng.next_u64() as u8;
        let _ = Device::from_bytes(&with_crc(c));
    }
    // Files: missing, wrong content.
    assert!(matches!(
        Device::load(&temp_path("missing.t2g")),
        Err(PersistError::Io(_))
    ));
    let p = temp_path("text.t2g");
    std::fs::write(&p, "not a device").unwrap();
    assert!(matches!(
        Device::load(&p),
        Err(PersistError::NotADeviceFile)
    ));
    let p = temp_path("trunc.t2g");
    std::fs::write(&p, &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        Device::load(&p),
        Err(PersistError::Truncated { .. })
    ));
}

#[test]
fn boot_key_revocation_is_one_bit_per_slot_and_persists() {
    let mut d = Device::new();
    assert_eq!(d.efuse().revoked_boot_keys(), 0);
    let ops = d.op_count();
    d.revoke_boot_key(1).unwrap();
    assert_eq!(d.op_count() - ops, 1, "one blow, one operation");
    assert_eq!(d.efuse().revoked_boot_keys(), 0b0010);
    assert_eq!(d.efuse().bytes()[EFUSE_KEY_REVOKE_OFFSET], 0b0010);
    // Again: already blown, nothing to do.
    d.revoke_boot_key(1).unwrap();
    assert_eq!(d.op_count() - ops, 1);
    assert_eq!(
        d.revoke_boot_key(EFUSE_KEY_SLOTS),
        Err(Error::Efuse(EfuseError::NoKeySlot { slot: 4, max: 4 }))
    );
    // Allowed in SECURE (S-HASH is not), and the bits survive power cycles and resets.
    d.advance_lifecycle(LifeCycle::Secure).unwrap();
    d.revoke_boot_key(3).unwrap();
    d.power_cycle();
    d.reset();
    assert_eq!(d.efuse().revoked_boot_keys(), 0b1010);
    let reloaded = Efuse::from_bytes(*d.efuse().bytes());
    assert_eq!(reloaded.revoked_boot_keys(), 0b1010);
    // And a device file (the `t2g` CLI's state between runs).
    let file = Device::from_bytes(&d.to_bytes()).unwrap();
    assert_eq!(file.efuse().revoked_boot_keys(), 0b1010);
    // Only CORRUPTED refuses.
    let mut bits = [0u8; EFUSE_BYTES];
    bits[0] = 0b0011_0000; // SECURE and SECURE_WITH_DEBUG: no valid path
    let mut c = Device::new();
    c.efuse = Efuse::from_bytes(bits);
    assert_eq!(c.lifecycle(), LifeCycle::Corrupted);
    assert_eq!(
        c.revoke_boot_key(0),
        Err(Error::Efuse(EfuseError::Locked {
            stage: LifeCycle::Corrupted
        }))
    );
}

#[test]
fn a_torn_revocation_blow_ends_in_either_state() {
    let base = Device::new();
    let mut seen = [false; 2];
    for seed in 0..16 {
        let mut d = base.clone();
        d.schedule_power_cut(PowerCut::Tear {
            op: d.op_count(),
            seed,
        });
        assert_eq!(d.revoke_boot_key(2), Err(Error::PowerLost));
        d.power_cycle();
        let mask = d.efuse().revoked_boot_keys();
        assert!(mask == 0 || mask == 0b0100, "seed {seed}: mask {mask:#b}");
        seen[usize::from(mask != 0)] = true;
        // Nothing but that bit changed.
        let mut other = *d.efuse().bytes();
        other[EFUSE_KEY_REVOKE_OFFSET] &= !0b0100;
        assert_eq!(&other, base.efuse().bytes(), "seed {seed}");
        // The retry finishes it.
        d.revoke_boot_key(2).unwrap();
        assert_eq!(d.efuse().revoked_boot_keys(), 0b0100);
    }
    assert_eq!(seen, [true, true], "both outcomes of a torn blow occur");
    // Cut before the blow: nothing blown.
    let mut d = base.clone();
    d.schedule_power_cut(PowerCut::Before(d.op_count()));
    assert_eq!(d.revoke_boot_key(2), Err(Error::PowerLost));
    d.power_cycle();
    assert_eq!(d.efuse().revoked_boot_keys(), 0);
}
