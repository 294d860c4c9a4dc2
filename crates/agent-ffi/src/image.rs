//! The image checks a bootloader in C needs: the boot key from the SFlash key object, a bank or
//! one region verified through a read callback, and the version record.

use core::ffi::c_void;
use core::mem::{align_of, size_of};

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use ferrota_image::version::{HARDWARE_ID_LEN, RECORD_AREA};
use ferrota_image::{BootKey, Region, VersionRecord};

use crate::agent::slice;
use crate::{FerrotaStatus, guard};

/// Bytes of a [`FerrotaBootKey`].
pub const FERROTA_BOOT_KEY_SIZE: usize = 320;
/// Bytes of the version record area (bank offsets 0x18..0x100) `ferrota_version_record_parse`
/// reads.
pub const FERROTA_RECORD_AREA: usize = 0xE8;
/// Bytes of [`FerrotaVersionRecord::hardware_id`] (the longest id and its NUL).
pub const FERROTA_HARDWARE_ID_CAP: usize = 33;

// The header's literals are the image crate's.
const _: () = assert!(FERROTA_RECORD_AREA == RECORD_AREA);
const _: () = assert!(FERROTA_HARDWARE_ID_CAP == HARDWARE_ID_LEN + 1);

/// A parsed boot key (the SFlash public key), in memory the caller declares
/// (`FerrotaBootKey key;`) and `ferrota_boot_key_parse` fills. Opaque: only its size is
/// public. An agent borrows it: it must outlive the agent.
#[repr(C)]
pub struct FerrotaBootKey {
    /// [`KEY_MAGIC`] once parsed, so an unfilled key is refused.
    magic: u64,
    storage: [u64; 39],
}

const KEY_MAGIC: u64 = u64::from_le_bytes(*b"FBOOTKEY");

// The key must fit the storage the header declares, at the storage's alignment.
const _: () = assert!(size_of::<BootKey>() <= size_of::<[u64; 39]>());
const _: () = assert!(align_of::<BootKey>() <= align_of::<u64>());
const _: () = assert!(size_of::<FerrotaBootKey>() == FERROTA_BOOT_KEY_SIZE);

impl FerrotaBootKey {
    /// The key, if one was parsed into this storage.
    pub(crate) fn key(&self) -> Result<&BootKey, FerrotaStatus> {
        if self.magic != KEY_MAGIC {
            return Err(FerrotaStatus::FerrotaErrNotInitialized);
        }
        // SAFETY: the marker is only set by `ferrota_boot_key_parse` after it wrote a `BootKey`
        // at the start of `storage`, which is large and aligned enough (asserted above).
        Ok(unsafe { &*self.storage.as_ptr().cast::<BootKey>() })
    }
}

/// Parses the SFlash key object (`obj_len` bytes, at least its objSize) into `*out`. The
/// object is copied; `out` must outlive every agent and check that uses it.
///
/// Errors leave `*out` as it was, like every refused call: a storage never parsed stays
/// unusable (`FERROTA_ERR_NOT_INITIALIZED` where it is passed), a key parsed earlier stays that
/// key. Parse into fresh storage when a key is replaced, and check the status before using it.
///
/// # Safety
/// `obj` valid for reads of `obj_len` bytes; `out` valid for writes of a `FerrotaBootKey`, not
/// borrowed by a live agent (an agent borrows its key until `ferrota_agent_deinit`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_boot_key_parse(
    obj: *const u8,
    obj_len: usize,
    out: *mut FerrotaBootKey,
) -> FerrotaStatus {
    guard(|| {
        if obj.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        // SAFETY: readable for the call by the caller's contract.
        let obj = match unsafe { slice(obj, obj_len) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        let Ok(key) = ferrota_image::sflash_key::parse_key_object(obj) else {
            return FerrotaStatus::FerrotaErrKeyObject;
        };
        // SAFETY: `out` is non-null, aligned and writable; the storage fits a `BootKey`
        // (asserted above). The marker is written after the key.
        unsafe {
            let storage = core::ptr::addr_of_mut!((*out).storage).cast::<BootKey>();
            storage.write(key);
            core::ptr::addr_of_mut!((*out).magic).write(KEY_MAGIC);
        }
        FerrotaStatus::FerrotaOk
    })
}

/// Reads `len` bytes at `offset` of a bank (or of the marker log, for
/// `ferrota_marker_log_read`) into `buf`; returns 0 on success, anything else is a failure.
pub type FerrotaBankReadFn =
    Option<unsafe extern "C" fn(user: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32>;

/// A bank (or any read-only area, e.g. the marker log) seen through a read callback.
pub(crate) struct ReadBank {
    pub(crate) read: unsafe extern "C" fn(*mut c_void, u32, *mut u8, usize) -> i32,
    pub(crate) user: *mut c_void,
    pub(crate) len: u32,
}

/// A failure of a read callback, or a read outside the area.
#[derive(Debug)]
pub(crate) struct ReadError(pub(crate) NorFlashErrorKind);

impl NorFlashError for ReadError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl ErrorType for ReadBank {
    type Error = ReadError;
}

impl ReadNorFlash for ReadBank {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ReadError> {
        if u64::from(offset) + bytes.len() as u64 > u64::from(self.len) {
            return Err(ReadError(NorFlashErrorKind::OutOfBounds));
        }
        // SAFETY: `bytes` writable for its length during the call; callback and `user` are
        // the caller's, valid for the call by contract.
        let rc = unsafe { (self.read)(self.user, offset, bytes.as_mut_ptr(), bytes.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(ReadError(NorFlashErrorKind::Other))
        }
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

/// A decoded version record.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaVersionRecord {
    /// The version, major<<24 | minor<<16 | build.
    pub version: u32,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Build number.
    pub build: u16,
    /// Anti-rollback counter.
    pub security_counter: u32,
    /// Flag bits.
    pub flags: u32,
    /// The board id, NUL-terminated (empty: any board).
    pub hardware_id: [u8; FERROTA_HARDWARE_ID_CAP],
    /// Bytes of `hardware_id` before the NUL.
    pub hardware_id_len: u8,
}

impl FerrotaVersionRecord {
    /// All zero: what a decision without a booted image carries.
    pub(crate) const ZERO: FerrotaVersionRecord = FerrotaVersionRecord {
        version: 0,
        major: 0,
        minor: 0,
        build: 0,
        security_counter: 0,
        flags: 0,
        hardware_id: [0; FERROTA_HARDWARE_ID_CAP],
        hardware_id_len: 0,
    };
}

/// The C form of a version record.
pub(crate) fn record(r: &VersionRecord) -> FerrotaVersionRecord {
    let hw = r.hardware.as_str().as_bytes();
    let mut hardware_id = [0u8; FERROTA_HARDWARE_ID_CAP];
    let n = hw.len().min(HARDWARE_ID_LEN);
    hardware_id[..n].copy_from_slice(&hw[..n]);
    FerrotaVersionRecord {
        version: r.version.0,
        major: r.version.major(),
        minor: r.version.minor(),
        build: r.version.build(),
        security_counter: r.security_counter,
        flags: r.flags,
        hardware_id,
        hardware_id_len: n as u8,
    }
}

/// Writes `rec` to `out` when `out` is non-null (checked aligned by the caller).
///
/// # Safety
/// `out` null or valid for a write.
unsafe fn put(out: *mut FerrotaVersionRecord, rec: &VersionRecord) {
    if !out.is_null() {
        // SAFETY: non-null, aligned (checked), writable by contract.
        unsafe { out.write(record(rec)) };
    }
}

/// Decodes and checks the version record from the [`FERROTA_RECORD_AREA`] bytes at bank
/// offset 0x18 (no signature check: use `ferrota_verify_*` for that).
///
/// # Safety
/// `area` valid for reads of `area_len` bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_version_record_parse(
    area: *const u8,
    area_len: usize,
    out: *mut FerrotaVersionRecord,
) -> FerrotaStatus {
    guard(|| {
        if area.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        if area_len < RECORD_AREA {
            return FerrotaStatus::FerrotaErrBufferTooSmall;
        }
        // SAFETY: readable for `RECORD_AREA` (<= area_len) bytes by contract.
        let bytes = match unsafe { slice(area, RECORD_AREA) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let mut a = [0u8; RECORD_AREA];
        a.copy_from_slice(bytes);
        match VersionRecord::parse(&a) {
            Ok(r) => {
                // SAFETY: checked above.
                unsafe { put(out, &r) };
                FerrotaStatus::FerrotaOk
            }
            Err(_) => FerrotaStatus::FerrotaErrImage,
        }
    })
}

/// Which region `ferrota_verify_region` checks.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaRegion {
    /// The Cortex-M0+ image (carries the version record).
    FerrotaRegionCm0p = 0,
    /// The first Cortex-M7 image.
    FerrotaRegionCm7_0 = 1,
    /// The second Cortex-M7 image.
    FerrotaRegionCm7_1 = 2,
}

/// Common checks of the verify functions: the read callback and the key.
///
/// # Safety
/// `key` null or filled by `ferrota_boot_key_parse`.
unsafe fn inputs<'k>(
    read: FerrotaBankReadFn,
    user: *mut c_void,
    bank_len: u32,
    key: *const FerrotaBootKey,
) -> Result<(ReadBank, &'k BootKey), FerrotaStatus> {
    let read = read.ok_or(FerrotaStatus::FerrotaErrNull)?;
    // SAFETY: the caller's contract for `key`.
    let key = unsafe { key_ref(key) }?;
    Ok((
        ReadBank {
            read,
            user,
            len: bank_len,
        },
        key,
    ))
}

/// Verifies every region of a bank (`bank_len` bytes, read through `read`) with the boot key,
/// and its version record, which goes to `*out` (may be null). `FERROTA_OK` only when all
/// signatures hold; `FERROTA_ERR_IMAGE` otherwise.
///
/// # Safety
/// `read` and `user` valid for the call; `key` filled by `ferrota_boot_key_parse`; `out` null
/// or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_verify_bank(
    read: FerrotaBankReadFn,
    user: *mut c_void,
    bank_len: u32,
    key: *const FerrotaBootKey,
    out: *mut FerrotaVersionRecord,
) -> FerrotaStatus {
    guard(|| {
        // SAFETY: the caller's contract for `key`; `out` checked before use.
        let (mut b, key) = match unsafe { inputs(read, user, bank_len, key) } {
            Ok(i) => i,
            Err(e) => return e,
        };
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        let mut scratch = [0u8; 256];
        match ferrota_image::verify::verify_bank_in_flash(&mut b, 0, key, &mut scratch) {
            Ok(v) => {
                // SAFETY: checked above.
                unsafe { put(out, v.boot().record()) };
                FerrotaStatus::FerrotaOk
            }
            Err(_) => FerrotaStatus::FerrotaErrImage,
        }
    })
}

/// Verifies one region of a bank (`bank_len` bytes, read through `read`) with the boot key.
///
/// # Safety
/// As `ferrota_verify_bank`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_verify_region(
    read: FerrotaBankReadFn,
    user: *mut c_void,
    bank_len: u32,
    region: u32,
    key: *const FerrotaBootKey,
) -> FerrotaStatus {
    guard(|| {
        // SAFETY: the caller's contract for `key`.
        let (mut b, key) = match unsafe { inputs(read, user, bank_len, key) } {
            Ok(i) => i,
            Err(e) => return e,
        };
        // An integer, not the enum: C may pass any value.
        let region = match region {
            0 => Region::Cm0p,
            1 => Region::Cm7_0,
            2 => Region::Cm7_1,
            _ => return FerrotaStatus::FerrotaErrInvalid,
        };
        let mut scratch = [0u8; 256];
        match ferrota_image::verify::verify_region_in_flash(&mut b, 0, region, key, &mut scratch) {
            Ok(_) => FerrotaStatus::FerrotaOk,
            Err(_) => FerrotaStatus::FerrotaErrImage,
        }
    })
}

/// The key behind a C pointer.
///
/// # Safety
/// `key` null or valid for reads of a `FerrotaBootKey` for `'a`.
pub(crate) unsafe fn key_ref<'a>(key: *const FerrotaBootKey) -> Result<&'a BootKey, FerrotaStatus> {
    if key.is_null() {
        return Err(FerrotaStatus::FerrotaErrNull);
    }
    if !key.is_aligned() {
        return Err(FerrotaStatus::FerrotaErrAlignment);
    }
    // SAFETY: non-null, aligned, readable by contract.
    unsafe { &*key }.key()
}
