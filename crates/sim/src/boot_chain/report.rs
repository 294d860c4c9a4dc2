//! A description of a device for `ferrota t2g show`.

use core::time::Duration;

use ferrota_boot::Bank;
use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE};
use ferrota_image::sflash_key::KeyObjectError;
use ferrota_image::{Scheme, VersionRecord};
use ferrota_t2g::{Device, FlashCtl, Half, LifeCycle, Mapping, Region, translate_code};

use super::Error;
use super::actions::{fingerprint_of, running_bank, verify_boot_of, verify_physical_bank};
use super::provision::DbmConfig;
use super::run::{marker_log, read_params};

/// One record of the marker log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Sector (0 at 0x14012000, 1 at 0x14012800).
    pub sector: usize,
    /// Slot in the sector.
    pub slot: usize,
    /// Sequence number.
    pub seq: u32,
    /// The state it holds.
    pub state: BootState,
}

/// What a physical bank holds, as the boot chain judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankStatus {
    /// Every large sector is erased.
    Erased,
    /// Every region verifies.
    Valid(VersionRecord),
    /// The CM0+ region and version record verify (the DBM accepts it) but a CM7 region does not
    /// (the CM0+ stage will refuse it).
    CoresInvalid {
        /// The record.
        record: VersionRecord,
        /// Why.
        error: ferrota_image::Error,
    },
    /// The DBM refuses it.
    Invalid(ferrota_image::Error),
    /// No key is provisioned to judge it.
    NoKey,
}

/// What the marker log says about a bank, beside what its image is: an image that verifies
/// may still be refused by the DBM on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankMark {
    /// Nothing: the DBM judges the image alone.
    None,
    /// Locked (`ferrota_boot::log`, "Bank locks"): its image was rejected by the self-test,
    /// reverted, refused by the agent, or is being written; it boots only after a new activation.
    Locked,
    /// The CM0+ stage refused this very image's CM7 regions (its fingerprint is marked).
    MarkedBad,
}

/// A physical bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankReport {
    /// Which.
    pub bank: Bank,
    /// What it holds.
    pub status: BankStatus,
    /// What the log says about it.
    pub mark: BankMark,
}

/// Erase counts of an area, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wear {
    /// The area.
    pub area: &'static str,
    /// Sectors (SFlash: rows).
    pub sectors: u32,
    /// Sectors not in the erased state.
    pub written: u32,
    /// Total erases (SFlash: row writes).
    pub erases: u64,
    /// The most erased sector's count.
    pub max: u32,
}

/// Everything `show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// The life-cycle stage.
    pub life_cycle: LifeCycle,
    /// Whether an S-HASH is blown.
    pub shash_blown: bool,
    /// The provisioned key's scheme, or why there is none.
    pub key: Result<Scheme, KeyObjectError>,
    /// The DBM configuration (`None`: not provisioned).
    pub dbm: Option<DbmConfig>,
    /// The bank the last boot started (from the log).
    pub running: Bank,
    /// Its mapping: what FLASH_CTL holds while the app runs (dual-bank mode).
    pub mapping: Mapping,
    /// The log's current state.
    pub state: BootState,
    /// Every valid record of the log, by location.
    pub records: Vec<LogRecord>,
    /// Both physical banks, lower first.
    pub banks: [BankReport; 2],
    /// The log's anti-rollback floor.
    pub floor_log: u32,
    /// The eFuse anti-rollback counter.
    pub floor_efuse: u32,
    /// The boot-key slots that hold a key (bit `n` = slot `n`; 0 when the ring cannot be read).
    pub key_slots: u8,
    /// The eFuse boot-key revocation bits (bit `n` = slot `n` revoked).
    pub revoked_boot_keys: u8,
    /// Erase counts per area.
    pub wear: Vec<Wear>,
    /// Simulated time since the device was made.
    pub clock: Duration,
    /// Flash operations since the device was made.
    pub op_count: u64,
}

/// Describes a device (nothing is written; a copy is read as the DBM would).
pub fn report(dev: &Device) -> Result<DeviceReport, Error> {
    let params = read_params(dev);
    let key = match &params {
        Ok(p) => Ok(ferrota_image::BootVerifier::scheme(&p.key)),
        Err(Error::Key(k)) => Err(*k),
        // Slot 0 itself is fine when only slots 1..3 are refused: report its scheme.
        Err(Error::NoDbm | Error::KeySlot(_)) => match read_params_key_only(dev) {
            Ok(s) => Ok(s),
            Err(k) => Err(k),
        },
        Err(_) => Err(KeyObjectError::Truncated { needed: 8 }),
    };
    let mut d = dev.clone();
    d.reset();
    d.set_work_err_silent(true)?;
    let mut records = Vec::new();
    let state = {
        let mut log = marker_log(&mut d)?;
        log.for_each_record(|at, seq, s| {
            records.push(LogRecord {
                sector: at.sector,
                slot: at.slot,
                seq,
                state: *s,
            })
        })?;
        log.state()?
    };
    let running = running_bank(&state);
    let key_ref = params.as_ref().ok().map(|p| &p.ring);
    let banks = Bank::ALL.map(|bank| BankReport {
        bank,
        status: bank_status(dev, bank, key_ref),
        mark: if state.is_locked(bank) {
            BankMark::Locked
        } else if state.bad_mark(bank).is_some()
            && key_ref.and_then(|k| fingerprint_of(dev, bank, k)) == state.bad_mark(bank)
        {
            BankMark::MarkedBad
        } else {
            BankMark::None
        },
    });
    Ok(DeviceReport {
        life_cycle: dev.lifecycle(),
        shash_blown: dev.efuse().shash() != [0; 32],
        key,
        dbm: DbmConfig::read(dev)?,
        running,
        mapping: if running.main_map() {
            Mapping::B
        } else {
            Mapping::A
        },
        state,
        records,
        banks,
        floor_log: state.floor,
        floor_efuse: dev.rollback_counter(),
        key_slots: params.as_ref().map_or(0, |p| p.ring.present()),
        revoked_boot_keys: dev.efuse().revoked_boot_keys(),
        wear: wear(dev),
        clock: dev.now(),
        op_count: dev.op_count(),
    })
}

fn read_params_key_only(dev: &Device) -> Result<Scheme, KeyObjectError> {
    let mut obj = vec![0u8; ferrota_image::sflash_key::SFLASH_KEY_AREA];
    dev.read(ferrota_image::sflash_key::SFLASH_KEY_ADDRESS, &mut obj)
        .map_err(|_| KeyObjectError::Truncated { needed: 8 })?;
    ferrota_image::sflash_key::parse_key_object(&obj)
        .map(|k| ferrota_image::BootVerifier::scheme(&k))
}

fn bank_status(
    dev: &Device,
    bank: Bank,
    key: Option<&ferrota_image::KeyRing<ferrota_image::BootKey>>,
) -> BankStatus {
    let mut d = dev.clone();
    d.reset();
    let base = ferrota_t2g::geometry::CODE_BASE + bank.sbm_offset();
    if d.code_is_erased(base, ferrota_t2g::geometry::HALF_LARGE_SIZE) == Ok(true) {
        return BankStatus::Erased;
    }
    let Some(key) = key else {
        return BankStatus::NoKey;
    };
    match verify_boot_of(dev, bank, key) {
        Err(e) => BankStatus::Invalid(e),
        Ok(record) => match verify_physical_bank(dev, bank, key) {
            Ok(r) => BankStatus::Valid(r),
            Err(error) => BankStatus::CoresInvalid { record, error },
        },
    }
}

fn wear(dev: &Device) -> Vec<Wear> {
    let mut areas: Vec<Wear> = [
        "code flash, lower half",
        "code flash, upper half",
        "work flash, marker log (0x14012000, 2 sectors)",
        "work flash, other sectors",
        "SFlash rows",
    ]
    .iter()
    .map(|&area| Wear {
        area,
        sectors: 0,
        written: 0,
        erases: 0,
        max: 0,
    })
    .collect();
    for s in dev.sectors() {
        let i = match s.region {
            Region::Code => match translate_code(s.addr, FlashCtl::RESET).map(|l| l.half) {
                Ok(Half::Upper) => 1,
                _ => 0,
            },
            Region::Work if (LOG_ADDRESS..LOG_ADDRESS + LOG_SIZE).contains(&s.addr) => 2,
            Region::Work => 3,
            Region::SFlash => 4,
        };
        let w = &mut areas[i];
        w.sectors += 1;
        w.written += u32::from(!s.erased);
        w.erases += u64::from(s.erase_count);
        w.max = w.max.max(s.erase_count);
    }
    areas
}
