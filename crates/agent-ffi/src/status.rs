//! Status codes and their names.

use core::ffi::c_char;

use ferrota_boot::log::LogError;

/// What every `ferrota_*` function returns. 0 is success, 1 "nothing to poll", negative values
/// are errors: C compares with the `FERROTA_*` names, [`ferrota_strerror`] gives a message.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaStatus {
    /// Done.
    FerrotaOk = 0,
    /// Nothing to poll (no transmit, event or timeout pending).
    FerrotaNone = 1,
    /// A required pointer was null.
    FerrotaErrNull = -1,
    /// A buffer or memory block is shorter than required (nothing was consumed).
    FerrotaErrBufferTooSmall = -2,
    /// A pointer or memory block is not aligned as required.
    FerrotaErrAlignment = -3,
    /// A topic or string is not UTF-8.
    FerrotaErrUtf8 = -4,
    /// An argument is out of range (a length, an enum value, a key).
    FerrotaErrInvalid = -5,
    /// The agent handle was not initialised (or was deinitialised).
    FerrotaErrNotInitialized = -6,
    /// The agent configuration was refused (thing name, block size, trust anchor…).
    FerrotaErrConfig = -7,
    /// A flash callback failed.
    FerrotaErrFlash = -8,
    /// The marker log is unusable (too small, sequence exhausted).
    FerrotaErrMarkerLog = -9,
    /// The SFlash key object does not parse.
    FerrotaErrKeyObject = -10,
    /// The image (bank, region or version record) failed verification.
    FerrotaErrImage = -11,
    /// A Rust panic was caught at the boundary (host builds); the agent must be re-created
    /// (every later call with it but `ferrota_agent_deinit` returns this too).
    FerrotaErrPanic = -12,
    /// `ferrota_dbm_decide`: no bank may boot (both refused); the decision's `faults` say why
    /// and its `bank` is 0xFF. Not `FERROTA_OK`, so a boot manager that checks only the status
    /// never maps a bank after a halt.
    FerrotaErrHalt = -13,
    /// The agent is in the middle of a call: one of its own callbacks called it (a flash
    /// callback that polls it, say). Nothing was done; return from the callback first.
    FerrotaErrBusy = -14,
}

impl FerrotaStatus {
    /// Every status, for the tests and for [`ferrota_strerror`]'s coverage (not in the header:
    /// a C array of an enum type has no use there).
    ///
    /// cbindgen:ignore
    pub const ALL: [FerrotaStatus; 16] = [
        FerrotaStatus::FerrotaOk,
        FerrotaStatus::FerrotaNone,
        FerrotaStatus::FerrotaErrNull,
        FerrotaStatus::FerrotaErrBufferTooSmall,
        FerrotaStatus::FerrotaErrAlignment,
        FerrotaStatus::FerrotaErrUtf8,
        FerrotaStatus::FerrotaErrInvalid,
        FerrotaStatus::FerrotaErrNotInitialized,
        FerrotaStatus::FerrotaErrConfig,
        FerrotaStatus::FerrotaErrFlash,
        FerrotaStatus::FerrotaErrMarkerLog,
        FerrotaStatus::FerrotaErrKeyObject,
        FerrotaStatus::FerrotaErrImage,
        FerrotaStatus::FerrotaErrPanic,
        FerrotaStatus::FerrotaErrHalt,
        FerrotaStatus::FerrotaErrBusy,
    ];

    /// The message, NUL-terminated, static.
    const fn message(self) -> &'static core::ffi::CStr {
        match self {
            FerrotaStatus::FerrotaOk => c"ok",
            FerrotaStatus::FerrotaNone => c"nothing pending",
            FerrotaStatus::FerrotaErrNull => c"null pointer",
            FerrotaStatus::FerrotaErrBufferTooSmall => c"buffer too small",
            FerrotaStatus::FerrotaErrAlignment => c"misaligned pointer or memory block",
            FerrotaStatus::FerrotaErrUtf8 => c"topic or string is not UTF-8",
            FerrotaStatus::FerrotaErrInvalid => c"invalid argument",
            FerrotaStatus::FerrotaErrNotInitialized => c"agent not initialised",
            FerrotaStatus::FerrotaErrConfig => c"configuration refused",
            FerrotaStatus::FerrotaErrFlash => c"flash operation failed",
            FerrotaStatus::FerrotaErrMarkerLog => c"marker log unusable",
            FerrotaStatus::FerrotaErrKeyObject => c"boot key object does not parse",
            FerrotaStatus::FerrotaErrImage => c"image verification failed",
            FerrotaStatus::FerrotaErrPanic => c"internal error (panic caught)",
            FerrotaStatus::FerrotaErrHalt => c"no bank may boot: halt",
            FerrotaStatus::FerrotaErrBusy => c"agent busy: called from its own callback",
        }
    }
}

/// The message for a status code: a static NUL-terminated string, never null (an unknown code
/// gives "unknown status"). Safe to call from any thread at any time.
#[unsafe(no_mangle)]
pub extern "C" fn ferrota_strerror(code: i32) -> *const c_char {
    FerrotaStatus::ALL
        .iter()
        .find(|s| **s as i32 == code)
        .map_or(c"unknown status", |s| s.message())
        .as_ptr()
}

/// A marker-log error as a status: the flash failed, or the log is unusable. Here, below both
/// the agent's and the boot manager's entry points, which read the log.
pub(crate) fn log_status<E>(e: &LogError<E>) -> FerrotaStatus {
    match e {
        LogError::Flash(_) => FerrotaStatus::FerrotaErrFlash,
        LogError::TooSmall { .. } | LogError::SequenceExhausted => {
            FerrotaStatus::FerrotaErrMarkerLog
        }
    }
}
