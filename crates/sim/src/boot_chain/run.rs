//! One boot from reset: ROM → DBM → mapping switch → CM0+ stage, as the chip runs them, with
//! every step explained.

use core::fmt;
use core::time::Duration;

use ferrota_boot::Bank;
use ferrota_boot::app::{self, ImageState};
use ferrota_boot::cm0p::{self, Start};
use ferrota_boot::dbm::{Boot, BootReason, Dbm, Decision, Halt};
use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE, MarkerLog};
use ferrota_boot::rom::{self, RomError, RomOk};
use ferrota_image::layout::ACTIVE_BANK_BASE;
use ferrota_image::sflash_key::{
    KeyObjectError, SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, SlotError, read_key_ring,
};
use ferrota_image::{
    BootKey, BootVerifier, HardwareId, KeyRing, Region, VerifiedRegion, VersionRecord,
};
use ferrota_t2g::{BankMode, Device, Mapping, WorkFlashView};

use super::Error;
use super::provision::DbmConfig;
use super::text::*;

/// CM0+-stage resets a boot follows before it gives up (each one records a failure, so the
/// DBM's next choice differs; more than this means a bug, reported as [`BootResult::ResetLoop`]).
pub const MAX_RESETS: u32 = 4;
/// Hashing scratch buffer of the boot chain.
pub const SCRATCH: usize = 4096;

/// Which part of the chain a [`Step`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The ROM boot (S-HASH check).
    Rom,
    /// The Dual Bank Manager.
    Dbm,
    /// The mapping switch (FLASH_CTL).
    Switch,
    /// The CM0+ stage.
    Cm0p,
    /// A reset requested by the CM0+ stage.
    Reset,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Rom => "ROM",
            Stage::Dbm => "DBM",
            Stage::Switch => "switch",
            Stage::Cm0p => "CM0+",
            Stage::Reset => "reset",
        })
    }
}

/// One explained step of a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The stage.
    pub stage: Stage,
    /// What it did and why.
    pub text: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>6}: {}", self.stage.to_string(), self.text)
    }
}

/// The marker log of a device (WORK_ERR_SILENT must be set to read it).
pub fn marker_log(dev: &mut Device) -> Result<MarkerLog<WorkFlashView<'_>>, Error> {
    Ok(MarkerLog::new(
        dev.work_flash_range(LOG_ADDRESS, LOG_SIZE)?,
    )?)
}

/// The log state, read as the DBM reads it, on a copy (the device is unchanged).
pub fn read_state(dev: &Device) -> Result<BootState, Error> {
    let mut d = dev.clone();
    d.reset();
    d.set_work_err_silent(true)?;
    Ok(marker_log(&mut d)?.state()?)
}

/// What the DBM reads from SFlash (and eFuse): its keys and its configuration.
#[derive(Debug, Clone)]
pub struct SflashParams {
    /// The boot key of slot 0 (the public-key object at 0x17006400), **whatever its revocation
    /// bit says**: kept for callers of the single-key era (the device board's agent). Anything
    /// that decides what boots uses [`SflashParams::ring`].
    pub key: BootKey,
    /// Every provisioned boot-key slot with the eFuse revocation mask: what the DBM, the CM0+
    /// stage and this module's app actions verify with.
    pub ring: KeyRing<BootKey>,
    /// The DBM's configuration.
    pub config: DbmConfig,
}

/// Reads the DBM's key ring and configuration from SFlash, and the revocation bits from eFuse
/// ([`Error::NoDbm`], [`Error::Key`] when the device is not provisioned; [`Error::KeySlot`] when
/// slots 1..3 are invalid or mix schemes with slot 0).
pub fn read_params(dev: &Device) -> Result<SflashParams, Error> {
    let config = DbmConfig::read(dev)?.ok_or(Error::NoDbm)?;
    let mut area = Box::new([0u8; SFLASH_KEY_AREA]);
    dev.read(SFLASH_KEY_ADDRESS, &mut area[..])?;
    let ring = read_key_ring(&area, dev.efuse().revoked_boot_keys()).map_err(|e| match e {
        SlotError::Object { slot: 0, error } => Error::Key(error),
        other => Error::KeySlot(other),
    })?;
    let key = ring
        .slot(0)
        .cloned()
        .ok_or(Error::Key(KeyObjectError::Truncated {
            needed: SFLASH_KEY_AREA,
        }))?;
    Ok(SflashParams { key, ring, config })
}

/// The CM0+ stage started the app.
#[derive(Debug, PartialEq, Eq)]
pub struct AppStart {
    /// The DBM's decision (bank, reason, record, floor, state).
    pub boot: Boot,
    /// The CM0+ stage's verification of the CM7 regions.
    pub start: Start,
    /// The mapping switched to.
    pub mapping: Mapping,
}

/// The end of one pass of the chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// The app runs.
    App(Box<AppStart>),
    /// The CM0+ stage refused a CM7 region, recorded it and resets.
    Reset(cm0p::Reset),
    /// The DBM halted: both banks refused.
    Halt(Halt),
    /// The ROM refused to start the DBM.
    RomRefused(RomError),
}

fn mapping_of(bank: Bank) -> Mapping {
    if bank.main_map() {
        Mapping::B
    } else {
        Mapping::A
    }
}

/// The vector table a CM7 core is started at (header + 16 + core0Vt).
pub fn vector_table(r: &VerifiedRegion) -> u32 {
    ACTIVE_BANK_BASE + r.region().offset() + 16 + r.header().core0_vt
}

/// One pass from reset, with an explicit key and board id (tests pass a caching verifier).
/// Appends its steps to `steps`.
pub fn boot_pass<K: BootVerifier>(
    dev: &mut Device,
    key: &K,
    hardware: Option<HardwareId>,
    user1: bool,
    steps: &mut Vec<Step>,
) -> Result<Pass, Error> {
    let mut say = |stage, text: String| steps.push(Step { stage, text });
    dev.reset();
    let mut scratch = [0u8; SCRATCH];
    let efuse = dev.efuse().shash();
    let stage = dev.lifecycle();
    let lc = rom::LifeCycle::from_value(stage.value());
    match rom::check(&mut dev.sflash(), lc, &efuse, &mut scratch) {
        Ok(RomOk::Checked(_)) => say(
            Stage::Rom,
            format!("life cycle {stage:?}: S-HASH of SFlash (DBM, key, SWPU, TOC2) matches eFuse"),
        ),
        Ok(RomOk::Skipped(_)) => say(
            Stage::Rom,
            format!("life cycle {stage:?}: S-HASH not checked (only SECURE stages check it)"),
        ),
        Err(e) => {
            say(
                Stage::Rom,
                format!("refused to start: {}", describe_rom_error(&e)),
            );
            return Ok(Pass::RomRefused(e));
        }
    }
    // The DBM: WORK_ERR_SILENT first, as the seed does.
    dev.set_work_err_silent(true)?;
    let efuse_floor = dev.rollback_counter();
    let dbm = Dbm::new(key)
        .user1(user1)
        .efuse_floor(efuse_floor)
        .hardware(hardware);
    let read = dbm.read_log(&mut marker_log(dev)?)?;
    let old = *read.state();
    say(
        Stage::Dbm,
        format!(
            "USER1 {}; marker log: {}",
            if user1 { "held" } else { "released" },
            describe_state(&old)
        ),
    );
    let choice = read.choose(&mut dev.single_bank()?, &mut scratch);
    let boot = match choice.persist(&mut marker_log(dev)?)? {
        Decision::Halt(h) => {
            say(Stage::Dbm, format!("halt: {}", describe_halt(&h)));
            return Ok(Pass::Halt(h));
        }
        Decision::Boot(b) => b,
    };
    say(
        Stage::Dbm,
        format!(
            "boot the {} bank: {}; CM0+ region verified, {}, floor {} (log {}, eFuse {}); {}",
            boot.bank,
            describe_reason(&boot.reason),
            describe_record(&boot.record),
            boot.floor,
            old.floor,
            efuse_floor,
            if boot.recorded {
                format!("recorded {}", describe_event(&boot.state.event))
            } else {
                "nothing recorded (state unchanged)".into()
            }
        ),
    );
    // The switch routine: dual-bank mode, then the mapping.
    let mapping = mapping_of(boot.bank);
    dev.set_bank_mode(BankMode::Dual)?;
    dev.set_mapping(mapping)?;
    say(
        Stage::Switch,
        format!(
            "FLASH_CTL = {:#010x}: dual-bank mode, mapping {mapping:?} ({} half at 0x10000000)",
            dev.flash_ctl().bits(),
            match boot.bank {
                Bank::Lower => "lower",
                Bank::Upper => "upper",
            }
        ),
    );
    // The CM0+ stage, from the mapped bank.
    let running = Bank::from_main_map(dev.flash_ctl().mapping() == Mapping::B);
    let checked = cm0p::verify_cores(&mut dev.active_bank()?, key, &boot.proof, &mut scratch);
    match checked {
        Ok(start) => {
            say(
                Stage::Cm0p,
                format!(
                    "CM7_0 and CM7_1 verified; start CM7_0 at {:#010x}{}",
                    vector_table(&start.cm7_0),
                    if start.start_cm7_1 {
                        format!(" and CM7_1 at {:#010x}", vector_table(&start.cm7_1))
                    } else {
                        " (CM7_1 holds no app: not started)".into()
                    }
                ),
            );
            Ok(Pass::App(Box::new(AppStart {
                boot,
                start,
                mapping,
            })))
        }
        Err(failure) => {
            let region: Region = failure.region;
            let error = failure.error;
            let reset = failure.record(&mut marker_log(dev)?, running)?;
            say(
                Stage::Cm0p,
                format!(
                    "{region} refused: {error}; recorded {}; reset",
                    describe_event(&reset.state.event)
                ),
            );
            Ok(Pass::Reset(reset))
        }
    }
}

/// Why the DBM could not run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprovisioned {
    /// SFlash holds no Ferrota DBM.
    NoDbm,
    /// The SFlash key object is missing or invalid.
    Key(KeyObjectError),
    /// A boot-key slot 1..3 is invalid, or the slots mix signature schemes.
    KeySlot(SlotError),
}

/// What runs after a successful boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The physical bank mapped at 0x10000000.
    pub bank: Bank,
    /// The mapping.
    pub mapping: Mapping,
    /// Why the DBM chose it.
    pub reason: BootReason,
    /// Its version record.
    pub record: VersionRecord,
    /// The anti-rollback floor enforced.
    pub floor: u32,
    /// Vector table CM7_0 is started at.
    pub cm7_0: u32,
    /// Vector table CM7_1 is started at, if its region holds an app.
    pub cm7_1: Option<u32>,
    /// The AWS PAL image state the app will see.
    pub image_state: ImageState,
    /// The log state after the boot.
    pub state: BootState,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootResult {
    /// An image runs.
    Started(Box<Started>),
    /// The DBM halted: both banks refused.
    Halted(Halt),
    /// The ROM refused to start (SECURE: S-HASH mismatch; CORRUPTED).
    RomRefused(RomError),
    /// The DBM has no key or no configuration in SFlash.
    NotProvisioned(Unprovisioned),
    /// The CM0+ stage kept refusing ([`MAX_RESETS`] resets).
    ResetLoop,
}

/// A boot from reset, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOutcome {
    /// Whether USER1 was held.
    pub user1: bool,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// How it ended.
    pub result: BootResult,
    /// CM0+-stage resets on the way.
    pub resets: u32,
    /// Flash operations the boot performed (log records).
    pub ops: u64,
    /// Simulated flash time the boot took.
    pub flash_time: Duration,
}

impl BootOutcome {
    /// What runs, if anything.
    pub fn started(&self) -> Option<&Started> {
        match &self.result {
            BootResult::Started(s) => Some(s),
            _ => None,
        }
    }

    /// One line: what runs, or why nothing does.
    pub fn summary(&self) -> String {
        match &self.result {
            BootResult::Started(s) => format!(
                "started the {} bank: {}; {}; image state {:?}",
                s.bank,
                describe_record(&s.record),
                describe_reason(&s.reason),
                s.image_state
            ),
            BootResult::Halted(h) => format!("halted: {}", describe_halt(h)),
            BootResult::RomRefused(e) => {
                format!("the ROM refused to start: {}", describe_rom_error(e))
            }
            BootResult::NotProvisioned(Unprovisioned::NoDbm) => {
                "halted: SFlash holds no Ferrota DBM (not provisioned)".into()
            }
            BootResult::NotProvisioned(Unprovisioned::Key(e)) => {
                format!("halted: the DBM has no usable key: {e}")
            }
            BootResult::NotProvisioned(Unprovisioned::KeySlot(e)) => {
                format!("halted: the DBM has no usable key ring: {e}")
            }
            BootResult::ResetLoop => format!(
                "halted: the CM0+ stage refused the image {} times in a row",
                self.resets
            ),
        }
    }
}

impl fmt::Display for BootOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// Boots with the key ring and configuration provisioned in SFlash and the revocation bits of
/// eFuse, looping on CM0+-stage resets (at most [`MAX_RESETS`]). The DBM and the CM0+ stage get
/// the ring as their `BootVerifier`: a region verifies under any present, non-revoked slot key.
pub fn boot(dev: &mut Device, user1: bool) -> Result<BootOutcome, Error> {
    match read_params(dev) {
        Ok(p) => boot_with(dev, &p.ring, p.config.hardware, user1),
        Err(e @ (Error::NoDbm | Error::Key(_) | Error::KeySlot(_))) => {
            // The ROM runs before the DBM: its refusal comes first.
            let (ops, t) = (dev.op_count(), dev.now());
            let mut steps = Vec::new();
            let why = match e {
                Error::Key(k) => Unprovisioned::Key(k),
                Error::KeySlot(k) => Unprovisioned::KeySlot(k),
                _ => Unprovisioned::NoDbm,
            };
            dev.reset();
            let efuse = dev.efuse().shash();
            let lc = rom::LifeCycle::from_value(dev.lifecycle().value());
            let result = match rom::check(&mut dev.sflash(), lc, &efuse, &mut [0u8; SCRATCH]) {
                Err(r) => BootResult::RomRefused(r),
                Ok(_) => BootResult::NotProvisioned(why),
            };
            steps.push(Step {
                stage: Stage::Dbm,
                text: match why {
                    Unprovisioned::NoDbm => "no Ferrota DBM in SFlash".into(),
                    Unprovisioned::Key(k) => format!("no usable key in SFlash: {k}"),
                    Unprovisioned::KeySlot(k) => format!("no usable key ring in SFlash: {k}"),
                },
            });
            Ok(BootOutcome {
                user1,
                steps,
                result,
                resets: 0,
                ops: dev.op_count() - ops,
                flash_time: dev.now() - t,
            })
        }
        Err(e) => Err(e),
    }
}

/// [`boot`] with an explicit key and board id.
pub fn boot_with<K: BootVerifier>(
    dev: &mut Device,
    key: &K,
    hardware: Option<HardwareId>,
    user1: bool,
) -> Result<BootOutcome, Error> {
    let (ops, t) = (dev.op_count(), dev.now());
    let mut steps = Vec::new();
    let mut resets = 0;
    let result = loop {
        match boot_pass(dev, key, hardware, user1, &mut steps)? {
            Pass::App(a) => {
                let state = a.boot.state;
                break BootResult::Started(Box::new(Started {
                    bank: a.boot.bank,
                    mapping: a.mapping,
                    reason: a.boot.reason,
                    record: a.boot.record,
                    floor: a.boot.floor,
                    cm7_0: vector_table(&a.start.cm7_0),
                    cm7_1: a.start.start_cm7_1.then(|| vector_table(&a.start.cm7_1)),
                    image_state: app::image_state_of(&state, a.boot.bank),
                    state,
                }));
            }
            Pass::Halt(h) => break BootResult::Halted(h),
            Pass::RomRefused(e) => break BootResult::RomRefused(e),
            Pass::Reset(_) if resets >= MAX_RESETS => break BootResult::ResetLoop,
            Pass::Reset(_) => {
                resets += 1;
                steps.push(Step {
                    stage: Stage::Reset,
                    text: format!("reset {resets}: the chain starts again from the ROM"),
                });
            }
        }
    };
    Ok(BootOutcome {
        user1,
        steps,
        result,
        resets,
        ops: dev.op_count() - ops,
        flash_time: dev.now() - t,
    })
}
