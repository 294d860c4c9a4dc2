//! The boot manager's side for C: the marker log as the boot manager reads it.
//!
//! The marker log (two 2 KB work-flash sectors, `ferrota_boot::log`) holds the whole boot state
//! as snapshot records; the newest valid one is the state. C reads it through the same kind of
//! read callback as the bank checks ([`FerrotaBankReadFn`], offset 0 = the log's start).

use core::ffi::c_void;

use ferrota_boot::log::{LOG_SIZE, LogError, MarkerLog, RECORD_SIZE, Snapshot, encode};

use crate::image::{FerrotaBankReadFn, ReadBank};
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

/// A log error as a status: the flash failed, or the log is unusable.
pub(crate) fn log_status<E>(e: &LogError<E>) -> FerrotaStatus {
    match e {
        LogError::Flash(_) => FerrotaStatus::FerrotaErrFlash,
        LogError::TooSmall { .. } | LogError::SequenceExhausted => {
            FerrotaStatus::FerrotaErrMarkerLog
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
