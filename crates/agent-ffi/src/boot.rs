//! The boot manager's side for C: the marker log as the boot manager reads it, and the Dual
//! Bank Manager's decision.
//!
//! The marker log (two 2 KB work-flash sectors, `ferrota_boot::log`) holds the whole boot state
//! as snapshot records; the newest valid one is the state. C reads it through the same kind of
//! read callback as the bank checks ([`FerrotaBankReadFn`], offset 0 = the log's start).
//!
//! `ferrota_dbm_decide` is `ferrota_boot::dbm::decide` over C callbacks: read the log, verify
//! the banks (CM0+ region, version record, floor, hardware id, bad marks and locks), choose,
//! append the record *before* returning, so a C program that emulates a board (or a C boot
//! manager) boots exactly what the Rust DBM would. The decision names the bank to map; it is
//! what `FerrotaConfig.running_bank` of the next `ferrota_agent_init` says, and the agent reads
//! from the same log whether that image is on trial. Decisions made here (documented once):
//!
//! * **Per-bank callbacks, not the single-bank view.** The Rust DBM reads one flash in which the
//!   upper bank starts at [`FERROTA_BANK_SIZE`]; C passes one read callback with a bank number
//!   (0 lower, 1 upper), which is what a file- or driver-backed board has. The adapter splits a
//!   read at the boundary and refuses reads past `bank_size`.
//! * **A bank that cannot be read is refused, not an error.** A failing bank read is a
//!   verification failure of that bank (fault `FERROTA_IMAGE_FAULT_FLASH`), as on the chip:
//!   the DBM falls back, or halts when both fail. Only the log's callbacks end in an error
//!   (`FERROTA_ERR_FLASH`), and then the log reads back as before.
//! * **The CM0+ stage is a call of its own** (`ferrota_cm0p_check`, `ferrota_boot::cm0p`): on
//!   the chip it runs after the switch to dual-bank mode, from the mapped bank, as a program of
//!   its own (the image's CM0+ application), so it gets the DBM's platform callbacks and the
//!   bank the DBM chose, not the DBM's proof: it verifies the CM0+ region again before it
//!   trusts the version record and the fingerprint its bad mark names (one more P-256
//!   signature and SHA-256 of the 64 KB region). Both CM7 regions are then verified; a refusal
//!   is written to the marker log (REVERTED when the bank is on trial, else MARKED_BAD, with
//!   the image's bad mark either way) and the caller resets.
//! * **An unreadable bank in the CM0+ stage is an error, not a refusal.** The DBM refuses a
//!   bank it cannot read for this boot only; the CM0+ stage's refusal is a bad mark that lasts,
//!   so a failing read callback there ends in `FERROTA_ERR_FLASH` with nothing written (the
//!   chip's memory-mapped flash does not fail: this is a C driver's I/O error).

use core::ffi::c_void;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use ferrota_boot::cm0p;
use ferrota_boot::dbm::{BootReason, Dbm, Decision, RevertCause};
use ferrota_boot::log::{
    Fault, ImageFault, LOG_SIZE, MarkerLog, RECORD_SIZE, SECTOR_SIZE, Snapshot, encode,
};
use ferrota_boot::{Bank, Event, UPPER_BANK_OFFSET};
use ferrota_image::verify::verify_boot_in_flash;
use ferrota_image::{ErrorKind, HardwareId, Region};

use crate::agent::slice;
use crate::image::{
    FerrotaBankReadFn, FerrotaBootKey, FerrotaVersionRecord, ReadBank, ReadError, key_ref, record,
};
use crate::status::log_status;
use crate::{FerrotaStatus, guard};

/// Bytes of the marker log: two 2 KB work-flash sectors (on the CYT4BF at 0x14012000).
pub const FERROTA_LOG_SIZE: u32 = 4096;
/// Bytes of one marker-log record.
pub const FERROTA_LOG_RECORD_SIZE: usize = 40;

// The header's literals are the boot crate's.
const _: () = assert!(FERROTA_LOG_SIZE == LOG_SIZE);
const _: () = assert!(FERROTA_LOG_RECORD_SIZE == RECORD_SIZE);

/// The marker log's newest valid record, as the boot manager reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaLogSnapshot {
    /// false: the log holds no valid record (erased, or only torn or garbage slots); the other
    /// fields are then zero.
    pub present: bool,
    /// Its sequence number (1, 2, …).
    pub seq: u32,
    /// The sector it lies in: 0 or 1.
    pub sector: u32,
    /// Its slot within the sector (0 to 50).
    pub slot: u32,
    /// The record as stored (`ferrota_boot::log::encode(seq, state)`; layout in that module's
    /// documentation).
    pub record: [u8; FERROTA_LOG_RECORD_SIZE],
}

impl FerrotaLogSnapshot {
    /// The C form of a snapshot.
    pub(crate) fn of(snap: &Snapshot) -> Self {
        match snap.at {
            Some(at) => FerrotaLogSnapshot {
                present: true,
                seq: snap.seq,
                sector: at.sector as u32,
                slot: at.slot as u32,
                record: encode(snap.seq, &snap.state),
            },
            None => FerrotaLogSnapshot {
                present: false,
                seq: 0,
                sector: 0,
                slot: 0,
                record: [0; FERROTA_LOG_RECORD_SIZE],
            },
        }
    }
}

/// Reads the marker log ([`FERROTA_LOG_SIZE`] bytes through `read`, offset 0 = the log's start)
/// and writes its newest valid record to `*out`. A log without one (erased, torn or garbage
/// slots only) is not an error: `out->present` is false (the boot manager then boots the
/// lower bank, or the upper one under the seed's 0xAAAAAAAA marker). Nothing is written to flash.
///
/// Errors: `FERROTA_ERR_NULL` (`read` or `out` null), `FERROTA_ERR_ALIGNMENT` (`out`
/// misaligned), `FERROTA_ERR_FLASH` (`read` returned nonzero); `*out` is then untouched.
///
/// # Safety
/// `read` and `user` valid for the call; `out` valid for a write of a `FerrotaLogSnapshot`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_marker_log_read(
    read: FerrotaBankReadFn,
    user: *mut c_void,
    out: *mut FerrotaLogSnapshot,
) -> FerrotaStatus {
    guard(|| {
        let Some(read) = read else {
            return FerrotaStatus::FerrotaErrNull;
        };
        if out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        let area = ReadBank {
            read,
            user,
            len: FERROTA_LOG_SIZE,
        };
        let snap = match MarkerLog::new(area).and_then(|mut log| log.read()) {
            Ok(s) => s,
            Err(e) => return log_status(&e),
        };
        // SAFETY: non-null, aligned, writable by the caller's contract.
        unsafe { out.write(FerrotaLogSnapshot::of(&snap)) };
        FerrotaStatus::FerrotaOk
    })
}

/// Bytes of a bank as images fill it (the large sectors of one half of code flash); the most
/// `FerrotaDbmPlatform.bank_size` may be. In the DBM's single-bank view the upper bank starts
/// at this offset.
pub const FERROTA_BANK_SIZE: u32 = 0x3F_8000;

const _: () = assert!(FERROTA_BANK_SIZE == UPPER_BANK_OFFSET);
const _: () = assert!(FERROTA_BANK_SIZE == ferrota_image::BANK_SIZE);

/// Reads `len` bytes at `offset` of bank `bank` (0 lower, 1 upper) into `buf`; returns 0 on
/// success, anything else is a failure (the bank is then refused).
pub type FerrotaBankSideReadFn = Option<
    unsafe extern "C" fn(user: *mut c_void, bank: u8, offset: u32, buf: *mut u8, len: usize) -> i32,
>;
/// Programs `len` bytes at `offset` of the marker log (multiples of
/// `FERROTA_WORK_WRITE_SIZE`, the range erased); returns 0 once programmed.
pub type FerrotaLogWriteFn = Option<
    unsafe extern "C" fn(user: *mut c_void, offset: u32, data: *const u8, len: usize) -> i32,
>;
/// Erases `[from, to)` of the marker log (multiples of `FERROTA_WORK_ERASE_SIZE`); returns 0
/// once erased.
pub type FerrotaLogEraseFn =
    Option<unsafe extern "C" fn(user: *mut c_void, from: u32, to: u32) -> i32>;

/// The flash the boot manager reads and writes, as C callbacks (all required). They are
/// called synchronously from inside `ferrota_dbm_decide` only, with `user`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaDbmPlatform {
    /// Passed to every callback.
    pub user: *mut c_void,
    /// Reads a bank (both banks, by number).
    pub read_bank: FerrotaBankSideReadFn,
    /// Bytes each bank holds (at most [`FERROTA_BANK_SIZE`]): reads past it are refused
    /// before the callback is called.
    pub bank_size: u32,
    /// Reads the marker log ([`FERROTA_LOG_SIZE`] bytes; the callback of
    /// `ferrota_marker_log_read`).
    pub read_log: FerrotaBankReadFn,
    /// Programs the marker log.
    pub write_log: FerrotaLogWriteFn,
    /// Erases marker-log sectors (a compaction, once in 51 records).
    pub erase_log: FerrotaLogEraseFn,
}

/// The boot manager's inputs other than flash. Read during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaDbmConfig {
    /// The boot key (`ferrota_boot_key_parse` of the SFlash key object).
    pub boot_key: *const FerrotaBootKey,
    /// This board's hardware id (UTF-8, at most 32 bytes), or null for any: an image naming
    /// another board is refused.
    pub hardware_id: *const u8,
    /// Bytes of `hardware_id`.
    pub hardware_id_len: usize,
    /// The eFuse anti-rollback counter (0 without one): the floor is the larger of it and the
    /// log's.
    pub efuse_floor: u32,
    /// Nonzero: USER1 is held (boot the lower bank if it verifies, else the upper one).
    pub user1: u8,
}

/// Why the chosen bank boots (`ferrota_boot::dbm::BootReason`), or that none does.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaBootReason {
    /// The current bank (the lower one on a fresh device), accepted.
    FerrotaBootCurrent = 0,
    /// A trial attempt of a freshly activated bank (`attempt` of `budget`).
    FerrotaBootTrial = 1,
    /// The trial of `from_bank` ended (budget used up, or the bank refused: its `faults`
    /// entry); the previous bank boots.
    FerrotaBootReverted = 2,
    /// The preferred bank `from_bank` was refused (its `faults` entry); the other one boots and
    /// becomes current.
    FerrotaBootFellBack = 3,
    /// USER1 was held (the lower bank's `faults` entry says why the upper one boots, if it does).
    FerrotaBootUser1 = 4,
    /// Both banks were refused (`faults` says why): nothing may run.
    FerrotaBootHalt = 5,
}

/// The kind of a bank refusal: the fault class the marker log stores (record byte 16).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaFaultKind {
    /// Not refused (or not checked at this boot).
    FerrotaFaultNone = 0,
    /// The CM0+ region or its version record failed verification (`image_fault`, `region`,
    /// `value` = bank offset).
    FerrotaFaultImage = 1,
    /// The image's security counter (`value`) is below the floor.
    FerrotaFaultBelowFloor = 2,
    /// The image names another board.
    FerrotaFaultWrongHardware = 3,
    /// The CM0+ stage refused this image's CM7 regions earlier.
    FerrotaFaultMarkedBad = 4,
    /// The bank is locked: its image was rejected or refused, or is being written.
    FerrotaFaultLocked = 5,
}

/// What failed in an image refusal (`ferrota_boot::log::ImageFault`; record byte 18).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaImageFault {
    /// No image fault.
    FerrotaImageFaultNone = 0,
    /// The image ends early.
    FerrotaImageFaultTruncated = 1,
    /// The image is longer than its region.
    FerrotaImageFaultTooLong = 2,
    /// The header's objSize is outside the region or too small.
    FerrotaImageFaultObjSize = 3,
    /// The header names another core.
    FerrotaImageFaultWrongCore = 4,
    /// The vector table is not where the header says.
    FerrotaImageFaultWrongVectorOffset = 5,
    /// The header's core count is wrong.
    FerrotaImageFaultWrongCoreCount = 6,
    /// The signature slot is empty.
    FerrotaImageFaultUnsigned = 7,
    /// The signature does not decode.
    FerrotaImageFaultMalformedSignature = 8,
    /// The signature does not match the key (a tampered or foreign image).
    FerrotaImageFaultSignatureMismatch = 9,
    /// The signature scheme is not supported.
    FerrotaImageFaultUnsupportedScheme = 10,
    /// The version record is missing or malformed.
    FerrotaImageFaultVersionRecord = 11,
    /// The bank could not be read (the read callback failed).
    FerrotaImageFaultFlash = 12,
    /// Another verification failure.
    FerrotaImageFaultOther = 13,
}

/// Why a bank was refused, in the marker log's compact form.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FerrotaBankFault {
    /// What kind of refusal (`FERROTA_FAULT_NONE`: the bank was not refused).
    pub kind: FerrotaFaultKind,
    /// Image faults: what failed.
    pub image_fault: FerrotaImageFault,
    /// Image faults: the region, 0 the bank as a whole, 1 CM0+, 2 CM7_0, 3 CM7_1.
    pub region: u8,
    /// Image faults: the bank offset of the fault; below floor: the image's counter; else 0.
    pub value: u32,
}

impl FerrotaBankFault {
    const NONE: FerrotaBankFault = FerrotaBankFault {
        kind: FerrotaFaultKind::FerrotaFaultNone,
        image_fault: FerrotaImageFault::FerrotaImageFaultNone,
        region: 0,
        value: 0,
    };

    fn of(f: Fault) -> Self {
        use FerrotaFaultKind as C;
        let fault_kind = match f {
            Fault::Image { .. } => C::FerrotaFaultImage,
            Fault::BelowFloor { .. } => C::FerrotaFaultBelowFloor,
            Fault::WrongHardware => C::FerrotaFaultWrongHardware,
            Fault::MarkedBad => C::FerrotaFaultMarkedBad,
            Fault::Locked => C::FerrotaFaultLocked,
        };
        let (image_fault, region, value) = match f {
            Fault::Image {
                region,
                offset,
                kind,
            } => (image_fault(kind), region_code(region), offset),
            Fault::BelowFloor { counter } => (FerrotaImageFault::FerrotaImageFaultNone, 0, counter),
            _ => (FerrotaImageFault::FerrotaImageFaultNone, 0, 0),
        };
        FerrotaBankFault {
            kind: fault_kind,
            image_fault,
            region,
            value,
        }
    }
}

fn image_fault(k: ImageFault) -> FerrotaImageFault {
    use FerrotaImageFault as F;
    match k {
        ImageFault::Truncated => F::FerrotaImageFaultTruncated,
        ImageFault::TooLong => F::FerrotaImageFaultTooLong,
        ImageFault::ObjSize => F::FerrotaImageFaultObjSize,
        ImageFault::WrongCore => F::FerrotaImageFaultWrongCore,
        ImageFault::WrongVectorOffset => F::FerrotaImageFaultWrongVectorOffset,
        ImageFault::WrongCoreCount => F::FerrotaImageFaultWrongCoreCount,
        ImageFault::Unsigned => F::FerrotaImageFaultUnsigned,
        ImageFault::MalformedSignature => F::FerrotaImageFaultMalformedSignature,
        ImageFault::SignatureMismatch => F::FerrotaImageFaultSignatureMismatch,
        ImageFault::UnsupportedScheme => F::FerrotaImageFaultUnsupportedScheme,
        ImageFault::VersionRecord => F::FerrotaImageFaultVersionRecord,
        ImageFault::Flash => F::FerrotaImageFaultFlash,
        ImageFault::Other => F::FerrotaImageFaultOther,
    }
}

fn region_code(r: Option<Region>) -> u8 {
    match r {
        None => 0,
        Some(Region::Cm0p) => 1,
        Some(Region::Cm7_0) => 2,
        Some(Region::Cm7_1) => 3,
    }
}

/// `FerrotaDbmDecision.bank` after a halt: no bank (a C boot manager that maps it anyway
/// indexes past its two banks instead of running the lower one).
pub const FERROTA_HALT_BANK: u8 = 0xFF;

/// The boot manager's decision.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaDbmDecision {
    /// Why this bank boots, or `FERROTA_BOOT_HALT` (with `FERROTA_ERR_HALT`).
    pub reason: FerrotaBootReason,
    /// The bank to map and run: 0 lower, 1 upper (0xFF for a halt: no bank). Pass it as
    /// `FerrotaConfig.running_bank` to `ferrota_agent_init`; the agent's active bank area is
    /// this bank, its inactive bank area the other one.
    pub bank: u8,
    /// The image boots on trial (reason `FERROTA_BOOT_TRIAL`): the agent, created on it, waits
    /// for the job's self-test and confirms or rejects it.
    pub trial: bool,
    /// Trial: this attempt (1 for the first).
    pub attempt: u8,
    /// Trial, or a revert because the budget was used up: the attempts the trial had.
    pub budget: u8,
    /// Reverted: the trial bank; fell back: the refused preferred bank; otherwise `bank`.
    pub from_bank: u8,
    /// Per bank (index 0 lower, 1 upper): why it was refused at this boot, kind
    /// `FERROTA_FAULT_NONE` if it was not (or was not checked).
    pub faults: [FerrotaBankFault; 2],
    /// The booted image's version record, read from its verified CM0+ region (zero for a
    /// halt).
    pub record: FerrotaVersionRecord,
    /// The anti-rollback floor enforced (the larger of the log's and `efuse_floor`).
    pub floor: u32,
    /// Whether a record was appended to the marker log (a boot that changes nothing writes
    /// nothing).
    pub recorded: bool,
}

/// The marker log through the C callbacks, as `ferrota_boot` wants it.
struct LogFlash {
    read: unsafe extern "C" fn(*mut c_void, u32, *mut u8, usize) -> i32,
    write: unsafe extern "C" fn(*mut c_void, u32, *const u8, usize) -> i32,
    erase: unsafe extern "C" fn(*mut c_void, u32, u32) -> i32,
    user: *mut c_void,
}

fn rc(r: i32) -> Result<(), ReadError> {
    if r == 0 {
        Ok(())
    } else {
        Err(ReadError(NorFlashErrorKind::Other))
    }
}

fn in_log(offset: u32, len: usize) -> Result<(), ReadError> {
    if u64::from(offset) + len as u64 > u64::from(LOG_SIZE) {
        return Err(ReadError(NorFlashErrorKind::OutOfBounds));
    }
    Ok(())
}

impl ErrorType for LogFlash {
    type Error = ReadError;
}

impl ReadNorFlash for LogFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ReadError> {
        in_log(offset, bytes.len())?;
        // SAFETY: `bytes` writable for its length during the call; callback and `user` are the
        // caller's, valid for the call by `ferrota_dbm_decide`'s contract.
        rc(unsafe { (self.read)(self.user, offset, bytes.as_mut_ptr(), bytes.len()) })
    }

    fn capacity(&self) -> usize {
        LOG_SIZE as usize
    }
}

impl NorFlash for LogFlash {
    const WRITE_SIZE: usize = crate::agent::FERROTA_WORK_WRITE_SIZE as usize;
    const ERASE_SIZE: usize = SECTOR_SIZE as usize;

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), ReadError> {
        in_log(offset, bytes.len())?;
        if !(offset as usize).is_multiple_of(Self::WRITE_SIZE)
            || !bytes.len().is_multiple_of(Self::WRITE_SIZE)
        {
            return Err(ReadError(NorFlashErrorKind::NotAligned));
        }
        // SAFETY: `bytes` readable for its length during the call; callback and `user` valid
        // by contract.
        rc(unsafe { (self.write)(self.user, offset, bytes.as_ptr(), bytes.len()) })
    }

    fn erase(&mut self, from: u32, to: u32) -> Result<(), ReadError> {
        if from > to || to > LOG_SIZE {
            return Err(ReadError(NorFlashErrorKind::OutOfBounds));
        }
        if !(from as usize).is_multiple_of(Self::ERASE_SIZE)
            || !(to as usize).is_multiple_of(Self::ERASE_SIZE)
        {
            return Err(ReadError(NorFlashErrorKind::NotAligned));
        }
        // SAFETY: plain integers; callback and `user` valid by contract.
        rc(unsafe { (self.erase)(self.user, from, to) })
    }
}

/// Both banks as the DBM's single-bank view (upper bank at [`FERROTA_BANK_SIZE`]) over the
/// per-bank read callback.
struct Banks {
    read: unsafe extern "C" fn(*mut c_void, u8, u32, *mut u8, usize) -> i32,
    user: *mut c_void,
    bank_size: u32,
}

impl ErrorType for Banks {
    type Error = ReadError;
}

impl ReadNorFlash for Banks {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ReadError> {
        let mut at = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (bank, off) = if at < UPPER_BANK_OFFSET {
                (0u8, at)
            } else {
                (1u8, at - UPPER_BANK_OFFSET)
            };
            // This piece ends at the bank's end (or at the upper bank's start in the view).
            let end = if bank == 0 {
                UPPER_BANK_OFFSET
            } else {
                2 * UPPER_BANK_OFFSET
            };
            if at >= end {
                return Err(ReadError(NorFlashErrorKind::OutOfBounds));
            }
            let n = rest.len().min((end - at) as usize);
            if u64::from(off) + n as u64 > u64::from(self.bank_size) {
                return Err(ReadError(NorFlashErrorKind::OutOfBounds));
            }
            let (piece, tail) = rest.split_at_mut(n);
            // SAFETY: `piece` writable for its length during the call; callback and `user`
            // valid by `ferrota_dbm_decide`'s contract.
            rc(unsafe { (self.read)(self.user, bank, off, piece.as_mut_ptr(), piece.len()) })?;
            rest = tail;
            at += n as u32;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        2 * UPPER_BANK_OFFSET as usize
    }
}

fn bank_no(b: Bank) -> u8 {
    match b {
        Bank::Lower => 0,
        Bank::Upper => 1,
    }
}

/// The boot manager's decision (the Rust DBM, `ferrota_boot::dbm::decide`): reads the marker
/// log, verifies the banks, chooses one (or halts), appends the decision's record to the log
/// when the state changes, and only then writes `*out`. A C program that emulates a board calls
/// it at every "reset" and creates the agent on `out->bank`; a C boot manager maps that bank.
///
/// Errors, with the log as it was and `*out` untouched: `FERROTA_ERR_NULL` (a pointer or
/// callback null), `FERROTA_ERR_ALIGNMENT`, `FERROTA_ERR_NOT_INITIALIZED` (the key was never
/// parsed), `FERROTA_ERR_INVALID` (`bank_size` above [`FERROTA_BANK_SIZE`], hardware id longer
/// than 32 bytes), `FERROTA_ERR_UTF8`, `FERROTA_ERR_FLASH` (a log callback failed; a failed
/// append leaves the previous record newest), `FERROTA_ERR_MARKER_LOG` (sequence numbers
/// exhausted).
///
/// A halt (no bank may boot) is `FERROTA_ERR_HALT`, the one status with `*out` written: reason
/// `FERROTA_BOOT_HALT`, `bank` 0xFF, `faults` saying why each bank was refused. It is not
/// `FERROTA_OK` so that a caller which checks only the status cannot map a bank after a halt
/// (fail closed).
///
/// # Safety
/// `cfg`, `platform` and `out` valid for the call (the key parsed by `ferrota_boot_key_parse`,
/// `hardware_id` readable for its length); the callbacks and `user` valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_dbm_decide(
    cfg: *const FerrotaDbmConfig,
    platform: *const FerrotaDbmPlatform,
    out: *mut FerrotaDbmDecision,
) -> FerrotaStatus {
    guard(|| {
        if cfg.is_null() || platform.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !cfg.is_aligned() || !platform.is_aligned() || !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        // SAFETY: non-null, aligned, readable by the caller's contract. Copied.
        let (c, p) = unsafe { (*cfg, *platform) };
        // SAFETY: the pointers inside `c` and `p` follow this function's contract.
        match unsafe { decide(&c, &p) } {
            Ok(d) => {
                // SAFETY: non-null, aligned, writable by contract.
                unsafe { out.write(d) };
                if d.reason == FerrotaBootReason::FerrotaBootHalt {
                    FerrotaStatus::FerrotaErrHalt
                } else {
                    FerrotaStatus::FerrotaOk
                }
            }
            Err(e) => e,
        }
    })
}

/// The body of [`ferrota_dbm_decide`] once its pointers are copied.
///
/// # Safety
/// As `ferrota_dbm_decide`'s contract for the pointers inside `c` and `p`.
unsafe fn decide(
    c: &FerrotaDbmConfig,
    p: &FerrotaDbmPlatform,
) -> Result<FerrotaDbmDecision, FerrotaStatus> {
    let (Some(read_bank), Some(read), Some(write), Some(erase)) =
        (p.read_bank, p.read_log, p.write_log, p.erase_log)
    else {
        return Err(FerrotaStatus::FerrotaErrNull);
    };
    if p.bank_size > FERROTA_BANK_SIZE {
        return Err(FerrotaStatus::FerrotaErrInvalid);
    }
    // SAFETY: the caller's contract for the key.
    let key = unsafe { key_ref(c.boot_key) }?;
    let hardware = if c.hardware_id.is_null() {
        None
    } else {
        // SAFETY: readable for its length by contract (copied into a `HardwareId`).
        let hw = unsafe { slice(c.hardware_id, c.hardware_id_len) }?;
        let hw = core::str::from_utf8(hw).map_err(|_| FerrotaStatus::FerrotaErrUtf8)?;
        Some(HardwareId::new(hw).ok_or(FerrotaStatus::FerrotaErrInvalid)?)
    };
    let mut log = MarkerLog::new(LogFlash {
        read,
        write,
        erase,
        user: p.user,
    })
    .map_err(|e| log_status(&e))?;
    let mut banks = Banks {
        read: read_bank,
        user: p.user,
        bank_size: p.bank_size,
    };
    let dbm = Dbm::new(key)
        .user1(c.user1 != 0)
        .efuse_floor(c.efuse_floor)
        .hardware(hardware);
    let read = dbm.read_log(&mut log).map_err(|e| log_status(&e))?;
    let floor = read.state().floor.max(c.efuse_floor);
    let mut scratch = [0u8; 512];
    let decision = read
        .choose(&mut banks, &mut scratch)
        .persist(&mut log)
        .map_err(|e| log_status(&e))?;
    let mut d = FerrotaDbmDecision {
        reason: FerrotaBootReason::FerrotaBootHalt,
        bank: 0,
        trial: false,
        attempt: 0,
        budget: 0,
        from_bank: 0,
        faults: [FerrotaBankFault::NONE; 2],
        record: FerrotaVersionRecord::ZERO,
        floor,
        recorded: false,
    };
    match decision {
        Decision::Halt(h) => {
            d.bank = FERROTA_HALT_BANK;
            d.from_bank = FERROTA_HALT_BANK;
            d.faults = [
                FerrotaBankFault::of(h.lower.logged()),
                FerrotaBankFault::of(h.upper.logged()),
            ];
        }
        Decision::Boot(b) => {
            d.bank = bank_no(b.bank);
            d.from_bank = d.bank;
            d.record = record(&b.record);
            d.floor = b.floor;
            d.recorded = b.recorded;
            match b.reason {
                BootReason::Current => d.reason = FerrotaBootReason::FerrotaBootCurrent,
                BootReason::Trial { attempt, budget } => {
                    d.reason = FerrotaBootReason::FerrotaBootTrial;
                    d.trial = true;
                    d.attempt = attempt;
                    d.budget = budget;
                }
                BootReason::Reverted { from, cause } => {
                    d.reason = FerrotaBootReason::FerrotaBootReverted;
                    d.from_bank = bank_no(from);
                    match cause {
                        RevertCause::BudgetExhausted { budget } => d.budget = budget,
                        RevertCause::TrialInvalid(f) => {
                            d.faults[usize::from(d.from_bank)] = FerrotaBankFault::of(f.logged());
                        }
                    }
                }
                BootReason::FellBack { from, fault } => {
                    d.reason = FerrotaBootReason::FerrotaBootFellBack;
                    d.from_bank = bank_no(from);
                    d.faults[usize::from(d.from_bank)] = FerrotaBankFault::of(fault.logged());
                }
                BootReason::User1 { lower_fault } => {
                    d.reason = FerrotaBootReason::FerrotaBootUser1;
                    if let Some(f) = lower_fault {
                        d.faults[0] = FerrotaBankFault::of(f.logged());
                    }
                }
            }
        }
    }
    Ok(d)
}

/// One bank through the per-bank read callback of [`FerrotaDbmPlatform`] (offset 0 = the
/// bank's start: the CM0+ stage's view of the mapped bank).
struct OneBank {
    read: unsafe extern "C" fn(*mut c_void, u8, u32, *mut u8, usize) -> i32,
    user: *mut c_void,
    bank: u8,
    len: u32,
}

impl ErrorType for OneBank {
    type Error = ReadError;
}

impl ReadNorFlash for OneBank {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ReadError> {
        if u64::from(offset) + bytes.len() as u64 > u64::from(self.len) {
            return Err(ReadError(NorFlashErrorKind::OutOfBounds));
        }
        // SAFETY: `bytes` writable for its length during the call; callback and `user` valid
        // by `ferrota_cm0p_check`'s contract.
        rc(unsafe {
            (self.read)(
                self.user,
                self.bank,
                offset,
                bytes.as_mut_ptr(),
                bytes.len(),
            )
        })
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

/// What the CM0+ stage decided (`ferrota_cm0p_check`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaCm0pOutcome {
    /// true: both CM7 regions verified: start CM7_0 (and CM7_1 when `start_cm7_1`). false: a
    /// region was refused and the refusal is in the marker log: reset the chip, so that the
    /// boot manager chooses again.
    pub start: bool,
    /// Start: the version record's `FLAG_CM7_1_APP` is set (CM7_1 holds an application).
    pub start_cm7_1: bool,
    /// Refused while the bank was on trial: the record is REVERTED (the trial ends, the bank
    /// is locked, the previous bank boots next); otherwise MARKED_BAD (the boot manager skips
    /// this image and falls back).
    pub reverted: bool,
    /// Refused: why (`FERROTA_FAULT_IMAGE`, the `FerrotaImageFault`, region 2 CM7_0 or 3
    /// CM7_1, the bank offset), as the marker log stores it; `FERROTA_FAULT_NONE` on a start.
    pub fault: FerrotaBankFault,
    /// The running image's version record, from its verified CM0+ region.
    pub record: FerrotaVersionRecord,
}

/// The CM0+ stage (`ferrota_boot::cm0p`): verifies the CM7_0 and CM7_1 regions of
/// `running_bank` (the bank the boot manager chose and mapped: `FerrotaDbmDecision.bank`)
/// through the boot manager's callbacks, and writes `*out`. A refused region is recorded in
/// the marker log *before* the call returns (REVERTED if the bank is on trial, else
/// MARKED_BAD; the image's bad mark either way): the caller then resets, and the next
/// `ferrota_dbm_decide` falls back. A refusal is not an error: `FERROTA_OK` with
/// `out->start` false. The CM0+ region is verified again first (module documentation).
///
/// Errors, with the marker log as it was and `*out` untouched: `FERROTA_ERR_NULL` (a pointer
/// or callback null), `FERROTA_ERR_ALIGNMENT`, `FERROTA_ERR_NOT_INITIALIZED` (the key was never
/// parsed), `FERROTA_ERR_INVALID` (`running_bank` not 0 or 1, `bank_size` above
/// [`FERROTA_BANK_SIZE`]), `FERROTA_ERR_IMAGE` (the bank's CM0+ region does not verify: not the
/// bank the boot manager chose), `FERROTA_ERR_FLASH` (a bank read or a log callback failed; a
/// failed append leaves the previous record newest), `FERROTA_ERR_MARKER_LOG`.
///
/// # Safety
/// `key` filled by `ferrota_boot_key_parse`; `platform` and `out` valid for the call; the
/// callbacks and `user` valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_cm0p_check(
    key: *const FerrotaBootKey,
    running_bank: u32,
    platform: *const FerrotaDbmPlatform,
    out: *mut FerrotaCm0pOutcome,
) -> FerrotaStatus {
    guard(|| {
        if platform.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !platform.is_aligned() || !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        // SAFETY: non-null, aligned, readable by the caller's contract. Copied.
        let p = unsafe { *platform };
        // SAFETY: the pointers inside `p` and `key` follow this function's contract.
        match unsafe { cm0p_stage(key, running_bank, &p) } {
            Ok(o) => {
                // SAFETY: non-null, aligned, writable by contract.
                unsafe { out.write(o) };
                FerrotaStatus::FerrotaOk
            }
            Err(e) => e,
        }
    })
}

/// The body of [`ferrota_cm0p_check`] once its pointers are checked.
///
/// # Safety
/// As `ferrota_cm0p_check`'s contract for `key` and the pointers inside `p`.
unsafe fn cm0p_stage(
    key: *const FerrotaBootKey,
    running_bank: u32,
    p: &FerrotaDbmPlatform,
) -> Result<FerrotaCm0pOutcome, FerrotaStatus> {
    let (Some(read_bank), Some(read), Some(write), Some(erase)) =
        (p.read_bank, p.read_log, p.write_log, p.erase_log)
    else {
        return Err(FerrotaStatus::FerrotaErrNull);
    };
    // SAFETY: the caller's contract for the key.
    let key = unsafe { key_ref(key) }?;
    let (running, bank) = match running_bank {
        0 => (Bank::Lower, 0u8),
        1 => (Bank::Upper, 1u8),
        _ => return Err(FerrotaStatus::FerrotaErrInvalid),
    };
    if p.bank_size > FERROTA_BANK_SIZE {
        return Err(FerrotaStatus::FerrotaErrInvalid);
    }
    let mut active = OneBank {
        read: read_bank,
        user: p.user,
        bank,
        len: p.bank_size,
    };
    // A read that failed is the callback's error, not the image's fault.
    let failed = |e: &ferrota_image::Error| match e.kind {
        ErrorKind::Flash(_) => FerrotaStatus::FerrotaErrFlash,
        _ => FerrotaStatus::FerrotaErrImage,
    };
    let mut scratch = [0u8; 512];
    let proof = verify_boot_in_flash(&mut active, 0, key, &mut scratch).map_err(|e| failed(&e))?;
    let mut o = FerrotaCm0pOutcome {
        start: false,
        start_cm7_1: false,
        reverted: false,
        fault: FerrotaBankFault::NONE,
        record: record(proof.record()),
    };
    match cm0p::verify_cores(&mut active, key, &proof, &mut scratch) {
        Ok(start) => {
            o.start = true;
            o.start_cm7_1 = start.start_cm7_1;
        }
        Err(f) => {
            if let ErrorKind::Flash(_) = f.error.kind {
                return Err(FerrotaStatus::FerrotaErrFlash);
            }
            let mut log = MarkerLog::new(LogFlash {
                read,
                write,
                erase,
                user: p.user,
            })
            .map_err(|e| log_status(&e))?;
            let reset = f.record(&mut log, running).map_err(|e| log_status(&e))?;
            o.reverted = matches!(reset.state.event, Event::Reverted { .. });
            o.fault = FerrotaBankFault::of(Fault::from(&reset.error));
        }
    }
    Ok(o)
}
