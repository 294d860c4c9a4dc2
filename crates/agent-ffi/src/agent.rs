//! The agent: created in caller memory, fed events, polled for actions; flash through C
//! callbacks.

use core::ffi::c_void;
use core::mem::{align_of, size_of};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use ferrota_agent::{
    Agent, AgentEvent, AppOutcome, Config, FlashFault, FlashOp, Instant, Platform, Running,
    StartError, Stats, TransmitKind, TrustPolicy,
};
use ferrota_boot::Bank;
use ferrota_boot::log::MarkerLog;
use ferrota_image::p256::ecdsa::VerifyingKey;
use ferrota_image::version::{RECORD_AREA, RECORD_OFFSET};
use ferrota_image::{BootKey, HardwareId, VersionRecord};
use ferrota_proto::status::OtaStatus;
use ferrota_proto::stream::StreamErrorCode;

use crate::image::FerrotaBootKey;
use crate::status::log_status;
use crate::{FerrotaStatus, guard};

/// Program granule of code flash (the banks): one 8-byte word, as on the T2G.
pub const FERROTA_CODE_WRITE_SIZE: u32 = 8;
/// Erase granule of code flash: one 32 KB large sector.
pub const FERROTA_CODE_ERASE_SIZE: u32 = 0x8000;
/// Program granule of work flash (resume area, marker log, trust store): one 4-byte word.
pub const FERROTA_WORK_WRITE_SIZE: u32 = 4;
/// Erase granule of work flash: one 2 KB sector.
pub const FERROTA_WORK_ERASE_SIZE: u32 = 0x800;
/// Bytes a topic buffer of [`FerrotaTransmit`] holds, with its NUL.
pub const FERROTA_TOPIC_CAP: usize = 161;
/// Smallest payload buffer `ferrota_agent_poll_transmit` accepts: every payload the agent
/// writes fits (a shorter buffer is refused before anything is dequeued).
pub const FERROTA_TRANSMIT_BUF_MIN: usize = 352;
/// Longest thing name (AWS's limit for OTA devices).
pub const FERROTA_THING_NAME_MAX: usize = 64;
/// Most stream requests in flight `FerrotaConfig.requests_in_flight` accepts (the agent's
/// request slots: 40 × 32 blocks of 4 KB is 5 MB, the bandwidth-delay product of 100 Mbit/s at
/// about 400 ms), and its default.
pub const FERROTA_REQUESTS_IN_FLIGHT_MAX: u32 = 40;

// The header's literals (cbindgen cannot evaluate other crates' constants) are the agent's.
const _: () = assert!(FERROTA_TOPIC_CAP == ferrota_agent::output::TOPIC_MAX + 1);
const _: () =
    assert!(FERROTA_REQUESTS_IN_FLIGHT_MAX as usize == ferrota_agent::config::MAX_REQUESTS);
const _: () = assert!(FERROTA_TRANSMIT_BUF_MIN == ferrota_agent::TRANSMIT_BUF_MIN);

/// The agent as it lives in the caller's memory block.
struct Inner {
    /// [`MAGIC`] while initialised: calls on a block that was never initialised or was
    /// deinitialised are refused instead of reading garbage as an agent.
    magic: u32,
    platform: FerrotaPlatform,
    agent: Agent<'static, BootKey>,
}

/// "FAGT".
const MAGIC: u32 = u32::from_le_bytes(*b"FAGT");

/// Bytes of memory `ferrota_agent_init` needs (a `static` array of this size): 16 KB, about
/// 15.3 KB used on a 64-bit host, less on a Cortex-M.
pub const FERROTA_AGENT_SIZE: usize = 16384;
/// Alignment of the memory block `ferrota_agent_init` needs.
pub const FERROTA_AGENT_ALIGN: usize = 8;

// The exported constants must cover the real type: a change of the agent that outgrows them
// fails the build here, not in a C program at run time. (The size is rounded up so that small
// changes of the agent do not change the ABI.)
const _: () = assert!(size_of::<Inner>() <= FERROTA_AGENT_SIZE);
const _: () = assert!(align_of::<Inner>() <= FERROTA_AGENT_ALIGN);

/// A flash area the agent works on, as passed to the [`FerrotaPlatform`] callbacks.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaArea {
    /// The inactive bank (offset 0 = bank offset 0): the image is written here. Code flash.
    FerrotaAreaInactiveBank = 0,
    /// The bank the application runs from, read only (its version record; the CM0+ region is
    /// verified before a confirm). Code flash.
    FerrotaAreaActiveBank = 1,
    /// The resume area (one 2 KB work-flash sector): which chunks are in flash.
    FerrotaAreaResume = 2,
    /// The boot manager's marker log (two 2 KB work-flash sectors): activation, confirm and
    /// reject requests, the anti-rollback floor, the trial state. This is the boot API.
    FerrotaAreaMarkerLog = 3,
    /// The trust store (two 2 KB work-flash sectors): trusted root, sequence floor, time.
    FerrotaAreaTrust = 4,
}

/// Number of [`FerrotaArea`] values (the length of [`FerrotaPlatform::area_size`]).
pub const FERROTA_AREA_COUNT: usize = 5;

/// Reads `len` bytes at `offset` of `area` into `buf`; returns 0 on success, anything else is a
/// failure (the agent reports a flash fault).
pub type FerrotaReadFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        area: FerrotaArea,
        offset: u32,
        buf: *mut u8,
        len: usize,
    ) -> i32,
>;
/// Programs `len` bytes at `offset` of `area` (offset and len multiples of the area's write
/// size, the range erased); returns 0 once the bytes are programmed.
pub type FerrotaWriteFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        area: FerrotaArea,
        offset: u32,
        data: *const u8,
        len: usize,
    ) -> i32,
>;
/// Erases `[from, to)` of `area` (multiples of the area's erase size); returns 0 once erased.
pub type FerrotaEraseFn =
    Option<unsafe extern "C" fn(user: *mut c_void, area: FerrotaArea, from: u32, to: u32) -> i32>;

/// The flash the agent works on, as C callbacks. The agent calls them synchronously from
/// inside `ferrota_agent_*` calls only, never from elsewhere; `user` is passed through. A
/// callback must not call a `ferrota_agent_*` function of the same agent: such a call is
/// refused with `FERROTA_ERR_BUSY` (nothing done).
/// Copied by `ferrota_agent_init`: `user` must stay valid for the agent's life.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaPlatform {
    /// Passed to every callback.
    pub user: *mut c_void,
    /// Reads (required).
    pub read: FerrotaReadFn,
    /// Programs (required).
    pub write: FerrotaWriteFn,
    /// Erases (required).
    pub erase: FerrotaEraseFn,
    /// Bytes of each area, indexed by [`FerrotaArea`] (the banks: the bank size; the resume
    /// area at least 2 KB; marker log and trust store 4 KB).
    pub area_size: [u32; FERROTA_AREA_COUNT],
}

/// A flash error as `embedded-storage` wants it.
#[derive(Debug, Clone, Copy)]
struct CFlashError(NorFlashErrorKind);

impl NorFlashError for CFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// One area seen through the callbacks. `W` and `E` are the write and erase granules.
struct CFlash<'p, const W: usize, const E: usize> {
    p: &'p FerrotaPlatform,
    area: FerrotaArea,
}

impl<const W: usize, const E: usize> CFlash<'_, W, E> {
    fn capacity(&self) -> u32 {
        self.p.area_size[self.area as usize]
    }

    fn in_bounds(&self, offset: u32, len: usize) -> Result<(), CFlashError> {
        let end = u64::from(offset) + len as u64;
        if end > u64::from(self.capacity()) {
            return Err(CFlashError(NorFlashErrorKind::OutOfBounds));
        }
        Ok(())
    }
}

fn cb_result(rc: i32) -> Result<(), CFlashError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(CFlashError(NorFlashErrorKind::Other))
    }
}

impl<const W: usize, const E: usize> ErrorType for CFlash<'_, W, E> {
    type Error = CFlashError;
}

impl<const W: usize, const E: usize> ReadNorFlash for CFlash<'_, W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), CFlashError> {
        self.in_bounds(offset, bytes.len())?;
        let Some(read) = self.p.read else {
            return Err(CFlashError(NorFlashErrorKind::Other));
        };
        // SAFETY: `bytes` is a valid writable buffer of `bytes.len()` bytes for the call; the
        // callback and `user` are the caller's, valid by `ferrota_agent_init`'s contract.
        cb_result(unsafe {
            read(
                self.p.user,
                self.area,
                offset,
                bytes.as_mut_ptr(),
                bytes.len(),
            )
        })
    }

    fn capacity(&self) -> usize {
        self.capacity() as usize
    }
}

impl<const W: usize, const E: usize> NorFlash for CFlash<'_, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), CFlashError> {
        if from > to || to > CFlash::capacity(self) {
            return Err(CFlashError(NorFlashErrorKind::OutOfBounds));
        }
        if !(from as usize).is_multiple_of(E) || !(to as usize).is_multiple_of(E) {
            return Err(CFlashError(NorFlashErrorKind::NotAligned));
        }
        let Some(erase) = self.p.erase else {
            return Err(CFlashError(NorFlashErrorKind::Other));
        };
        // SAFETY: plain integers; the callback and `user` are valid by the init contract.
        cb_result(unsafe { erase(self.p.user, self.area, from, to) })
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), CFlashError> {
        self.in_bounds(offset, bytes.len())?;
        if !(offset as usize).is_multiple_of(W) || !bytes.len().is_multiple_of(W) {
            return Err(CFlashError(NorFlashErrorKind::NotAligned));
        }
        let Some(write) = self.p.write else {
            return Err(CFlashError(NorFlashErrorKind::Other));
        };
        // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes for the call; the callback
        // and `user` are valid by the init contract.
        cb_result(unsafe { write(self.p.user, self.area, offset, bytes.as_ptr(), bytes.len()) })
    }
}

const CW: usize = FERROTA_CODE_WRITE_SIZE as usize;
const CE: usize = FERROTA_CODE_ERASE_SIZE as usize;
const WW: usize = FERROTA_WORK_WRITE_SIZE as usize;
const WE: usize = FERROTA_WORK_ERASE_SIZE as usize;

/// The agent's [`Platform`] over the callbacks.
struct CPlatform<'p>(&'p FerrotaPlatform);

impl Platform for CPlatform<'_> {
    type Bank<'p>
        = CFlash<'p, CW, CE>
    where
        Self: 'p;
    type Resume<'p>
        = CFlash<'p, WW, WE>
    where
        Self: 'p;
    type Log<'p>
        = CFlash<'p, WW, WE>
    where
        Self: 'p;
    type Active<'p>
        = CFlash<'p, CW, CE>
    where
        Self: 'p;
    type Trust<'p>
        = CFlash<'p, WW, WE>
    where
        Self: 'p;

    fn inactive_bank(&mut self) -> Result<Self::Bank<'_>, FlashFault> {
        Ok(CFlash {
            p: self.0,
            area: FerrotaArea::FerrotaAreaInactiveBank,
        })
    }
    fn resume_area(&mut self) -> Result<Self::Resume<'_>, FlashFault> {
        Ok(CFlash {
            p: self.0,
            area: FerrotaArea::FerrotaAreaResume,
        })
    }
    fn marker_log(&mut self) -> Result<Self::Log<'_>, FlashFault> {
        Ok(CFlash {
            p: self.0,
            area: FerrotaArea::FerrotaAreaMarkerLog,
        })
    }
    fn active_bank(&mut self) -> Result<Self::Active<'_>, FlashFault> {
        Ok(CFlash {
            p: self.0,
            area: FerrotaArea::FerrotaAreaActiveBank,
        })
    }
    fn trust_area(&mut self) -> Result<Self::Trust<'_>, FlashFault> {
        Ok(CFlash {
            p: self.0,
            area: FerrotaArea::FerrotaAreaTrust,
        })
    }
}

/// The agent's configuration. Everything a pointer names is borrowed, not copied: it must stay
/// valid and unchanged until `ferrota_agent_deinit` (a `static const` in firmware). Zero in a
/// numeric field means the default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaConfig {
    /// The thing name (the MQTT client id), UTF-8, not NUL-terminated: `thing_name_len` bytes.
    pub thing_name: *const u8,
    /// Bytes of `thing_name` (1 to 64).
    pub thing_name_len: usize,
    /// The boot key (`ferrota_boot_key_parse`).
    pub boot_key: *const FerrotaBootKey,
    /// The pinned code-signing public key: SEC1 bytes (65 uncompressed or 33 compressed).
    pub code_signing_key: *const u8,
    /// Bytes of `code_signing_key`.
    pub code_signing_key_len: usize,
    /// This board's hardware id (UTF-8, at most 32 bytes), or null to accept any.
    pub hardware_id: *const u8,
    /// Bytes of `hardware_id`.
    pub hardware_id_len: usize,
    /// The trust anchor (a self-signed root document), or null for none.
    pub trust_anchor: *const u8,
    /// Bytes of `trust_anchor`.
    pub trust_anchor_len: usize,
    /// Nonzero: require signed update metadata (Ferrota's server; needs the anchor and the
    /// hardware id). Zero: accept AWS's plain code-signing signature.
    pub require_signed_metadata: u8,
    /// The bank the application runs from: 0 lower, 1 upper (not "default": 0 is the lower
    /// bank). `ferrota_agent_init` refuses a bank other than the one the marker log says the
    /// boot manager started (`FERROTA_ERR_CONFIG`): take it from `ferrota_dbm_decide`'s
    /// `bank` or from the boot manager's hand-off.
    pub running_bank: u8,
    /// Block size of stream requests in bytes: a power of two, 256 to 131072 (0: 4096, the
    /// agent's default). Another value is `FERROTA_ERR_CONFIG`.
    pub block_size: u32,
    /// Blocks asked for in one stream request, its `"n"` (0: 32, the agent's default). Any
    /// other value is accepted and, as in the agent, capped at 128 KB of payload and 256 blocks
    /// per request.
    pub blocks_per_request: u32,
    /// Most stream requests in flight at once, 1 to [`FERROTA_REQUESTS_IN_FLIGHT_MAX`] (0: that
    /// maximum, the agent's default; the agent uses fewer once it has measured the link). Above
    /// it is `FERROTA_ERR_CONFIG`.
    pub requests_in_flight: u32,
}

/// A checked borrow of `len` bytes at `ptr` (null with 0 bytes is the empty slice).
///
/// # Safety
/// A non-null `ptr` must be valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], FerrotaStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FerrotaStatus::FerrotaErrNull);
    }
    if len > isize::MAX as usize {
        return Err(FerrotaStatus::FerrotaErrInvalid);
    }
    // SAFETY: non-null, length bounded, validity for `'a` is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Builds the agent's `Config` and `Running` from C's, reading the running version record
/// through the platform.
///
/// # Safety
/// Every pointer of `c` must be valid as [`FerrotaConfig`] says, for `'static` as far as this
/// crate can tell (the contract of `ferrota_agent_init`).
unsafe fn config(
    c: &FerrotaConfig,
    platform: &FerrotaPlatform,
) -> Result<(Config<'static, BootKey>, Running), FerrotaStatus> {
    // SAFETY: the caller's contract: valid until deinit.
    let name = unsafe { slice(c.thing_name, c.thing_name_len) }?;
    if name.is_empty() || name.len() > FERROTA_THING_NAME_MAX {
        return Err(FerrotaStatus::FerrotaErrInvalid);
    }
    let name = core::str::from_utf8(name).map_err(|_| FerrotaStatus::FerrotaErrUtf8)?;
    if c.boot_key.is_null() {
        return Err(FerrotaStatus::FerrotaErrNull);
    }
    if !c.boot_key.is_aligned() {
        return Err(FerrotaStatus::FerrotaErrAlignment);
    }
    // SAFETY: non-null and aligned; initialised by `ferrota_boot_key_parse` and valid until
    // deinit by contract.
    let boot_key: &'static BootKey = unsafe { &*c.boot_key }.key()?;
    // SAFETY: the caller's contract (valid for the call; copied into the key).
    let csk = unsafe { slice(c.code_signing_key, c.code_signing_key_len) }?;
    if csk.is_empty() {
        return Err(FerrotaStatus::FerrotaErrNull);
    }
    let csk = VerifyingKey::from_sec1_bytes(csk).map_err(|_| FerrotaStatus::FerrotaErrInvalid)?;
    let mut cfg = Config::new(name, boot_key, csk);
    if !c.hardware_id.is_null() {
        // SAFETY: the caller's contract (copied into a `HardwareId`).
        let hw = unsafe { slice(c.hardware_id, c.hardware_id_len) }?;
        let hw = core::str::from_utf8(hw).map_err(|_| FerrotaStatus::FerrotaErrUtf8)?;
        cfg.hardware = Some(HardwareId::new(hw).ok_or(FerrotaStatus::FerrotaErrInvalid)?);
    }
    if !c.trust_anchor.is_null() {
        // SAFETY: the caller's contract: valid until deinit.
        let anchor = unsafe { slice(c.trust_anchor, c.trust_anchor_len) }?;
        cfg.trust.anchor = Some(anchor);
    }
    if c.require_signed_metadata != 0 {
        cfg.trust.policy = TrustPolicy::Require;
    }
    // Zero keeps `Config::new`'s default; other values are the agent's to check
    // (`Config::validate`: `FERROTA_ERR_CONFIG` from `ferrota_agent_init`).
    if c.block_size != 0 {
        cfg.block_size = c.block_size;
    }
    if c.blocks_per_request != 0 {
        cfg.blocks_per_request = c.blocks_per_request;
    }
    if c.requests_in_flight != 0 {
        cfg.requests_in_flight =
            usize::try_from(c.requests_in_flight).map_err(|_| FerrotaStatus::FerrotaErrConfig)?;
    }
    let bank = match c.running_bank {
        0 => Bank::Lower,
        1 => Bank::Upper,
        _ => return Err(FerrotaStatus::FerrotaErrInvalid),
    };
    // The marker log says which bank the boot manager started; an agent told another bank would
    // lock and erase the running image as the "inactive" one (a C config that leaves
    // `running_bank` at 0 on a board running the upper bank). Refused instead.
    if let Some(booted) = booted_bank(platform)?
        && booted != bank
    {
        return Err(FerrotaStatus::FerrotaErrConfig);
    }
    let mut area = [0u8; RECORD_AREA];
    CFlash::<CW, CE> {
        p: platform,
        area: FerrotaArea::FerrotaAreaActiveBank,
    }
    .read(RECORD_OFFSET, &mut area)
    .map_err(|_| FerrotaStatus::FerrotaErrFlash)?;
    let record = VersionRecord::parse(&area).map_err(|_| FerrotaStatus::FerrotaErrImage)?;
    Ok((cfg, Running { bank, record }))
}

/// The bank the boot manager started, as the marker log's newest record says: the trial bank
/// once a boot attempt of it has begun, otherwise the current bank; `None` for a log with no
/// record (the first boot: nothing to check against).
fn booted_bank(platform: &FerrotaPlatform) -> Result<Option<Bank>, FerrotaStatus> {
    let area = CFlash::<WW, WE> {
        p: platform,
        area: FerrotaArea::FerrotaAreaMarkerLog,
    };
    let state = MarkerLog::new(area)
        .and_then(|mut log| log.state())
        .map_err(|e| log_status(&e))?;
    Ok(match state.trial {
        Some(t) if t.used >= 1 => Some(t.bank),
        _ => state.current,
    })
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (addresses only; empty ranges
/// share none).
fn overlaps(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    a_len != 0 && b_len != 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// Opaque: the agent in the caller's memory block. Only ever used through a pointer.
pub struct FerrotaAgent {
    _private: [u8; 0],
}

/// Creates the agent in `mem` (`mem_len` >= [`FERROTA_AGENT_SIZE`], aligned to
/// [`FERROTA_AGENT_ALIGN`]) after a boot: reads the running image's version record and the
/// marker log (is the running image on trial?). On success `*out` is the handle (`mem` itself).
/// Call `ferrota_agent_handle_connected` once MQTT is up.
///
/// Lifetime contract (as mbedTLS's for its buffers): `mem`, everything `cfg` points to (thing
/// name, boot key, trust anchor) and `platform->user` must stay valid and unchanged until
/// `ferrota_agent_deinit`; `cfg` and `platform` themselves are copied. Not thread-safe: one
/// thread (or task) calls every function of one agent.
///
/// # Safety
/// Pointers must be valid as described; `mem` must not be used otherwise while the agent lives.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_init(
    mem: *mut c_void,
    mem_len: usize,
    cfg: *const FerrotaConfig,
    platform: *const FerrotaPlatform,
    now_us: u64,
    out: *mut *mut FerrotaAgent,
) -> FerrotaStatus {
    guard(|| {
        if mem.is_null() || cfg.is_null() || platform.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if mem_len < FERROTA_AGENT_SIZE {
            return FerrotaStatus::FerrotaErrBufferTooSmall;
        }
        if mem.align_offset(FERROTA_AGENT_ALIGN) != 0 {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        if !cfg.is_aligned() || !platform.is_aligned() || !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        // SAFETY: non-null and aligned; readable by the caller's contract. Copied.
        let (c, p) = unsafe { (*cfg, *platform) };
        if p.read.is_none() || p.write.is_none() || p.erase.is_none() {
            return FerrotaStatus::FerrotaErrNull;
        }
        // SAFETY: the pointers of `c` follow this function's contract (valid until deinit).
        let (config, running) = match unsafe { config(&c, &p) } {
            Ok(x) => x,
            Err(e) => return e,
        };
        let agent = match Agent::new(
            Instant::from_micros(now_us),
            config,
            running,
            &mut CPlatform(&p),
        ) {
            Ok(a) => a,
            Err(StartError::Config(_)) => return FerrotaStatus::FerrotaErrConfig,
            Err(StartError::Flash(_)) => return FerrotaStatus::FerrotaErrFlash,
            Err(StartError::Log) => return FerrotaStatus::FerrotaErrMarkerLog,
        };
        let inner = mem.cast::<Inner>();
        // SAFETY: `mem` is non-null, aligned for `Inner` (const-asserted above) and at least
        // `size_of::<Inner>()` bytes; any previous content is overwritten, not dropped.
        unsafe {
            inner.write(Inner {
                magic: MAGIC,
                platform: p,
                agent,
            });
            *out = mem.cast::<FerrotaAgent>();
        }
        FerrotaStatus::FerrotaOk
    })
}

/// Ends the agent: drops it in place and clears the block's marker, so any later call with the
/// handle is refused ([`FerrotaStatus::FerrotaErrNotInitialized`]). The memory and the
/// configuration may then be reused. An agent that panicked (host builds: `FERROTA_ERR_PANIC`)
/// can only be ended; one in the middle of a call (from its own callback) cannot
/// (`FERROTA_ERR_BUSY`).
///
/// # Safety
/// `agent` must be null or a handle from `ferrota_agent_init` (or its memory block).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_deinit(agent: *mut FerrotaAgent) -> FerrotaStatus {
    guard(|| {
        // SAFETY: the caller passes a handle; `claim` checks null, alignment and the marker.
        let p = match unsafe { claim(agent, true) } {
            Ok(p) => p,
            Err(e) => return e,
        };
        // SAFETY: claimed (marker BUSY or POISONED read from a whole `Inner`): no reference to
        // it is alive; the marker is cleared first, so the agent is dropped at most once.
        unsafe {
            let was = core::ptr::addr_of!((*p).magic).read();
            core::ptr::addr_of_mut!((*p).magic).write(0);
            if was != POISONED {
                core::ptr::drop_in_place(core::ptr::addr_of_mut!((*p).agent));
            }
        }
        FerrotaStatus::FerrotaOk
    })
}

/// The block's marker while one of the agent's calls runs ("FAGB"): a call from one of its own
/// callbacks (a flash callback that polls the agent, say) is refused with `FERROTA_ERR_BUSY`
/// instead of making a second mutable reference to an agent in the middle of a change.
const BUSY: u32 = u32::from_le_bytes(*b"FAGB");
/// The block's marker after a panic was caught in one of its calls ("FAGX"): its state is
/// unknown, every later call but `ferrota_agent_deinit` is `FERROTA_ERR_PANIC`.
const POISONED: u32 = u32::from_le_bytes(*b"FAGX");

/// Checks the handle and marks its block busy: the initialised agent behind `agent`, as a raw
/// pointer (no reference is made here). `poisoned_ok` lets a poisoned agent through (deinit);
/// its marker is then left as it was.
///
/// # Safety
/// `agent` must be null or point to a memory block passed to `ferrota_agent_init` (at least
/// [`FERROTA_AGENT_SIZE`] bytes), not used by another thread during the call.
unsafe fn claim(agent: *mut FerrotaAgent, poisoned_ok: bool) -> Result<*mut Inner, FerrotaStatus> {
    if agent.is_null() {
        return Err(FerrotaStatus::FerrotaErrNull);
    }
    let p = agent.cast::<Inner>();
    if !p.is_aligned() {
        return Err(FerrotaStatus::FerrotaErrAlignment);
    }
    // SAFETY: aligned, non-null, a block of at least `size_of::<Inner>()` bytes by contract;
    // the marker is read (by raw pointer: an outer call may hold references to the other
    // fields) before anything else is trusted.
    let magic = unsafe { core::ptr::addr_of!((*p).magic).read() };
    match magic {
        MAGIC => {
            // SAFETY: as above; the marker is the one field no reference ever covers.
            unsafe { core::ptr::addr_of_mut!((*p).magic).write(BUSY) };
            Ok(p)
        }
        BUSY => Err(FerrotaStatus::FerrotaErrBusy),
        POISONED if poisoned_ok => Ok(p),
        POISONED => Err(FerrotaStatus::FerrotaErrPanic),
        _ => Err(FerrotaStatus::FerrotaErrNotInitialized),
    }
}

/// What a call may use of the agent's block: disjoint from its marker, which stays readable by a
/// re-entrant call (refused) while these references live.
struct Parts<'a> {
    platform: &'a FerrotaPlatform,
    agent: &'a mut Agent<'static, BootKey>,
}

/// Runs `f` on the agent behind `agent` (private: only the entry points call it, and their
/// `# Safety` contracts are [`claim`]'s): the block is busy during `f`, poisoned if `f` panics
/// (host builds; the MCU build aborts).
fn with(agent: *mut FerrotaAgent, f: impl FnOnce(Parts<'_>) -> FerrotaStatus) -> FerrotaStatus {
    guard(|| {
        // SAFETY: every caller is an `unsafe extern "C"` function whose contract says `agent`
        // is a handle from `ferrota_agent_init` (or null, refused by `claim`).
        let p = match unsafe { claim(agent, false) } {
            Ok(p) => p,
            Err(e) => return e,
        };
        // SAFETY: claimed: a whole initialised `Inner`, and no other call makes references to
        // it until the marker is restored below (a re-entrant one is refused by `claim`).
        let parts = unsafe {
            Parts {
                platform: &*core::ptr::addr_of!((*p).platform),
                agent: &mut *core::ptr::addr_of_mut!((*p).agent),
            }
        };
        let status = guard(|| f(parts));
        let magic = if status == FerrotaStatus::FerrotaErrPanic {
            POISONED
        } else {
            MAGIC
        };
        // SAFETY: `parts` is gone; the marker as in `claim`.
        unsafe { core::ptr::addr_of_mut!((*p).magic).write(magic) };
        status
    })
}

/// MQTT is connected (a clean session): the agent subscribes, reports to its Device Shadow,
/// asks for the next job and resumes a download in progress. Then poll.
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_handle_connected(
    agent: *mut FerrotaAgent,
    now_us: u64,
) -> FerrotaStatus {
    with(agent, |i| {
        i.agent.handle_connected(Instant::from_micros(now_us));
        FerrotaStatus::FerrotaOk
    })
}

/// MQTT is down: nothing in flight will arrive (the agent asks again after the next connect).
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_handle_disconnected(
    agent: *mut FerrotaAgent,
    now_us: u64,
) -> FerrotaStatus {
    with(agent, |i| {
        i.agent.handle_disconnected(Instant::from_micros(now_us));
        FerrotaStatus::FerrotaOk
    })
}

/// An MQTT message arrived (any topic: the agent ignores what is not its own). `topic` is
/// UTF-8, `topic_len` bytes, not NUL-terminated (as MQTT clients hand it over); `payload` may be
/// null when `payload_len` is 0. Both are only read during the call; either inside the agent's
/// own block is `FERROTA_ERR_INVALID`.
///
/// # Safety
/// `agent` is a handle; `topic`/`payload` valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_handle_message(
    agent: *mut FerrotaAgent,
    now_us: u64,
    topic: *const u8,
    topic_len: usize,
    payload: *const u8,
    payload_len: usize,
) -> FerrotaStatus {
    with(agent, |i| {
        if topic.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        // SAFETY: valid for the call by the caller's contract.
        let (t, p) = match unsafe { (slice(topic, topic_len), slice(payload, payload_len)) } {
            (Ok(t), Ok(p)) => (t, p),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        // A message inside the agent's own block (a C bug) would change under the agent's feet.
        if overlaps(t.as_ptr(), t.len(), agent.cast(), FERROTA_AGENT_SIZE)
            || overlaps(p.as_ptr(), p.len(), agent.cast(), FERROTA_AGENT_SIZE)
        {
            return FerrotaStatus::FerrotaErrInvalid;
        }
        let Ok(t) = core::str::from_utf8(t) else {
            return FerrotaStatus::FerrotaErrUtf8;
        };
        let Parts { platform, agent } = i;
        agent.handle_message(Instant::from_micros(now_us), t, p, &mut CPlatform(platform));
        FerrotaStatus::FerrotaOk
    })
}

/// The timer armed at `ferrota_agent_poll_timeout` may have expired (a spurious call does
/// nothing).
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_handle_timeout(
    agent: *mut FerrotaAgent,
    now_us: u64,
) -> FerrotaStatus {
    with(agent, |i| {
        let Parts { platform, agent } = i;
        agent.handle_timeout(Instant::from_micros(now_us), &mut CPlatform(platform));
        FerrotaStatus::FerrotaOk
    })
}

/// The application's self-test finished (`passed` nonzero: it passed), after
/// [`FerrotaEventKind::FerrotaEventStartSelfTest`].
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_self_test_result(
    agent: *mut FerrotaAgent,
    now_us: u64,
    passed: u8,
) -> FerrotaStatus {
    with(agent, |i| {
        let Parts { platform, agent } = i;
        agent.self_test_result(
            Instant::from_micros(now_us),
            passed != 0,
            &mut CPlatform(platform),
        );
        FerrotaStatus::FerrotaOk
    })
}

/// Asks for the next job again (the AWS library's `OTA_CheckForUpdate`); the agent already
/// does on every connection. Ignored while disconnected.
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_check_for_update(
    agent: *mut FerrotaAgent,
    now_us: u64,
) -> FerrotaStatus {
    with(agent, |i| {
        i.agent.check_for_update(Instant::from_micros(now_us));
        FerrotaStatus::FerrotaOk
    })
}

/// How the application finished a job handed to it.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaAppOutcome {
    /// Handled: the job is reported SUCCEEDED.
    FerrotaAppSucceeded = 0,
    /// Not for this application: the job is reported FAILED as the AWS agent reports an
    /// unclaimed job.
    FerrotaAppDeclined = 1,
}

/// The application finished the job of [`FerrotaEventKind::FerrotaEventOtherFileJob`] or
/// [`FerrotaEventKind::FerrotaEventCustomJob`]: `outcome` is a [`FerrotaAppOutcome`] value
/// (an integer, checked: another value is `FERROTA_ERR_INVALID`). Without such a job pending
/// the call does nothing.
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_finish_app_job(
    agent: *mut FerrotaAgent,
    now_us: u64,
    outcome: u32,
) -> FerrotaStatus {
    with(agent, |i| {
        let outcome = match outcome {
            0 => AppOutcome::Succeeded,
            1 => AppOutcome::Declined,
            _ => return FerrotaStatus::FerrotaErrInvalid,
        };
        i.agent
            .finish_app_job(Instant::from_micros(now_us), outcome);
        FerrotaStatus::FerrotaOk
    })
}

/// How a job failed, as the AWS console shows the reason: the `a` of
/// [`FerrotaEventKind::FerrotaEventJobFailed`] and the `kind` of `ferrota_agent_fail_app_job`.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaFailKind {
    /// `"0x<main>: 0x<sub>"`: a main code (the AWS library's `OtaPalStatus` or `OtaErr_t`) and
    /// a sub code.
    FerrotaFailCodes = 0,
    /// `"rejected: 0x<main>"`.
    FerrotaFailRejected = 1,
    /// `"aborted: 0x<main>"`.
    FerrotaFailAborted = 2,
    /// Another status (events only).
    FerrotaFailOther = 3,
}

/// The application failed the job of [`FerrotaEventKind::FerrotaEventOtherFileJob`] or
/// [`FerrotaEventKind::FerrotaEventCustomJob`] with its own status (the AWS library's
/// `OTA_SetImageState`/app-callback failure codes): `kind` a [`FerrotaFailKind`] value, 0 with
/// `main` and `sub` (`"0x<main>: 0x<sub>"`), 1 rejected or 2 aborted with `main` as the
/// sub-reason and `sub` 0. Another `kind`, or a nonzero `sub` with 1 or 2, is
/// `FERROTA_ERR_INVALID` and changes nothing. Without such a job pending the call does nothing.
///
/// # Safety
/// `agent` is a handle from `ferrota_agent_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_fail_app_job(
    agent: *mut FerrotaAgent,
    now_us: u64,
    kind: u32,
    main: u32,
    sub: u32,
) -> FerrotaStatus {
    with(agent, |i| {
        let status = match (kind, sub) {
            (0, _) => OtaStatus::Failed { main, sub },
            (1, 0) => OtaStatus::Rejected { sub_reason: main },
            (2, 0) => OtaStatus::Aborted { sub_reason: main },
            _ => return FerrotaStatus::FerrotaErrInvalid,
        };
        i.agent
            .finish_app_job(Instant::from_micros(now_us), AppOutcome::Failed(status));
        FerrotaStatus::FerrotaOk
    })
}

/// AWS's GetStream error codes (the `o` of a `…/streams/<s>/rejected` message), the `a` of
/// [`FerrotaEventKind::FerrotaEventStreamRejected`].
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaStreamError {
    /// A code this version does not recognise.
    FerrotaStreamErrorUnknown = 0,
    /// `InvalidTopic`.
    FerrotaStreamErrorInvalidTopic = 1,
    /// `InvalidJson`.
    FerrotaStreamErrorInvalidJson = 2,
    /// `InvalidCbor`.
    FerrotaStreamErrorInvalidCbor = 3,
    /// `InvalidRequest`.
    FerrotaStreamErrorInvalidRequest = 4,
    /// `Unauthorized`.
    FerrotaStreamErrorUnauthorized = 5,
    /// `BlockSizeOutOfBounds`.
    FerrotaStreamErrorBlockSizeOutOfBounds = 6,
    /// `OffsetOutOfBounds`.
    FerrotaStreamErrorOffsetOutOfBounds = 7,
    /// `BlockCountLimitExceeded`.
    FerrotaStreamErrorBlockCountLimitExceeded = 8,
    /// `BlockBitmapLimitExceeded`.
    FerrotaStreamErrorBlockBitmapLimitExceeded = 9,
    /// `ResourceNotFound`: the stream is gone.
    FerrotaStreamErrorResourceNotFound = 10,
    /// `VersionMismatch`.
    FerrotaStreamErrorVersionMismatch = 11,
    /// `ETagMismatch`.
    FerrotaStreamErrorETagMismatch = 12,
    /// `InternalError`.
    FerrotaStreamErrorInternalError = 13,
}

fn stream_error(code: Option<StreamErrorCode>) -> FerrotaStreamError {
    use FerrotaStreamError as E;
    match code {
        None => E::FerrotaStreamErrorUnknown,
        Some(StreamErrorCode::InvalidTopic) => E::FerrotaStreamErrorInvalidTopic,
        Some(StreamErrorCode::InvalidJson) => E::FerrotaStreamErrorInvalidJson,
        Some(StreamErrorCode::InvalidCbor) => E::FerrotaStreamErrorInvalidCbor,
        Some(StreamErrorCode::InvalidRequest) => E::FerrotaStreamErrorInvalidRequest,
        Some(StreamErrorCode::Unauthorized) => E::FerrotaStreamErrorUnauthorized,
        Some(StreamErrorCode::BlockSizeOutOfBounds) => E::FerrotaStreamErrorBlockSizeOutOfBounds,
        Some(StreamErrorCode::OffsetOutOfBounds) => E::FerrotaStreamErrorOffsetOutOfBounds,
        Some(StreamErrorCode::BlockCountLimitExceeded) => {
            E::FerrotaStreamErrorBlockCountLimitExceeded
        }
        Some(StreamErrorCode::BlockBitmapLimitExceeded) => {
            E::FerrotaStreamErrorBlockBitmapLimitExceeded
        }
        Some(StreamErrorCode::ResourceNotFound) => E::FerrotaStreamErrorResourceNotFound,
        Some(StreamErrorCode::VersionMismatch) => E::FerrotaStreamErrorVersionMismatch,
        Some(StreamErrorCode::ETagMismatch) => E::FerrotaStreamErrorETagMismatch,
        Some(StreamErrorCode::InternalError) => E::FerrotaStreamErrorInternalError,
    }
}

/// What to do with a [`FerrotaTransmit`].
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaTransmitKind {
    /// SUBSCRIBE to `topic` at `qos`.
    FerrotaSubscribe = 0,
    /// UNSUBSCRIBE from `topic`.
    FerrotaUnsubscribe = 1,
    /// PUBLISH the first `payload_len` bytes of the caller's buffer to `topic` at `qos`.
    FerrotaPublish = 2,
}

/// One MQTT operation for the caller to carry out.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaTransmit {
    /// Subscribe, unsubscribe or publish.
    pub kind: FerrotaTransmitKind,
    /// MQTT QoS (0 or 1).
    pub qos: u8,
    /// The topic, NUL-terminated.
    pub topic: [u8; FERROTA_TOPIC_CAP],
    /// Bytes of `topic` before the NUL.
    pub topic_len: usize,
    /// Publish: bytes of payload written to the caller's buffer; otherwise 0.
    pub payload_len: usize,
}

/// The next MQTT operation: fills `*out` (a publish's payload goes to `buf`, at least
/// [`FERROTA_TRANSMIT_BUF_MIN`] bytes) and returns `FERROTA_OK`, or returns `FERROTA_NONE` when
/// there is nothing more. A short buffer is refused before anything is dequeued, and so is a
/// `buf` that overlaps `*out` or the agent's block (`FERROTA_ERR_INVALID`).
///
/// # Safety
/// `agent` is a handle; `buf` valid for writes of `buf_len` bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_poll_transmit(
    agent: *mut FerrotaAgent,
    buf: *mut u8,
    buf_len: usize,
    out: *mut FerrotaTransmit,
) -> FerrotaStatus {
    with(agent, |i| {
        if buf.is_null() || out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        if buf_len < FERROTA_TRANSMIT_BUF_MIN || buf_len > isize::MAX as usize {
            return FerrotaStatus::FerrotaErrBufferTooSmall;
        }
        // The payload buffer may overlap neither `*out` nor the agent's block: the agent writes
        // both while it holds the other.
        if overlaps(buf, buf_len, out.cast(), size_of::<FerrotaTransmit>())
            || overlaps(buf, buf_len, agent.cast(), FERROTA_AGENT_SIZE)
            || overlaps(
                out.cast(),
                size_of::<FerrotaTransmit>(),
                agent.cast(),
                FERROTA_AGENT_SIZE,
            )
        {
            return FerrotaStatus::FerrotaErrInvalid;
        }
        // SAFETY: non-null, bounded, writable for the call by the caller's contract.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf, buf_len) };
        let Some(t) = i.agent.poll_transmit(buf) else {
            return FerrotaStatus::FerrotaNone;
        };
        let mut topic = [0u8; FERROTA_TOPIC_CAP];
        topic[..t.topic.len()].copy_from_slice(t.topic.as_bytes());
        let (kind, payload_len) = match t.kind {
            TransmitKind::Subscribe => (FerrotaTransmitKind::FerrotaSubscribe, 0),
            TransmitKind::Unsubscribe => (FerrotaTransmitKind::FerrotaUnsubscribe, 0),
            TransmitKind::Publish { len } => (FerrotaTransmitKind::FerrotaPublish, len),
        };
        // SAFETY: non-null and aligned, writable by contract.
        unsafe {
            out.write(FerrotaTransmit {
                kind,
                qos: t.qos,
                topic,
                topic_len: t.topic.len(),
                payload_len,
            });
        }
        FerrotaStatus::FerrotaOk
    })
}

/// When `ferrota_agent_handle_timeout` must be called next: `*out_us` and `FERROTA_OK`, or
/// `FERROTA_NONE` when no timer is needed.
///
/// # Safety
/// `agent` is a handle; `out_us` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_poll_timeout(
    agent: *mut FerrotaAgent,
    out_us: *mut u64,
) -> FerrotaStatus {
    with(agent, |i| {
        if out_us.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out_us.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        match i.agent.poll_timeout() {
            Some(t) => {
                // SAFETY: non-null, aligned, writable by contract.
                unsafe { out_us.write(t.as_micros()) };
                FerrotaStatus::FerrotaOk
            }
            None => FerrotaStatus::FerrotaNone,
        }
    })
}

/// What a [`FerrotaEvent`] says; the meaning of its `a`/`b`/`c` fields is given per kind.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FerrotaEventKind {
    /// A job for a non-firmware file: `a` file type, `b` file size, `c` file id. Handle it,
    /// then call `ferrota_agent_finish_app_job`.
    FerrotaEventOtherFileJob = 0,
    /// A non-`afr_ota` job document: handle it, then call `ferrota_agent_finish_app_job`.
    FerrotaEventCustomJob = 1,
    /// The file chosen: `a` bytes that will cross the link, `b` 0 image / 1 packed / 2 delta.
    FerrotaEventFileChosen = 2,
    /// A download started: `a` blocks, `b` blocks kept from before a reset.
    FerrotaEventDownloadStarted = 3,
    /// The new image's version record passed: `a` its version (major<<24|minor<<16|build).
    FerrotaEventVersionAccepted = 4,
    /// The job ended FAILED, with the reason the AWS console shows: `a` a [`FerrotaFailKind`]:
    /// 0 `"<b>: <c>"` (main and sub code), 1 `"rejected: <b>"`, 2 `"aborted: <b>"`, 3 another
    /// status.
    FerrotaEventJobFailed = 5,
    /// The job ended SUCCEEDED.
    FerrotaEventJobSucceeded = 6,
    /// The job went away; the download was abandoned.
    FerrotaEventJobCancelled = 7,
    /// The image was verified and activated (trial written in the marker log).
    FerrotaEventActivated = 8,
    /// Reset the device once the queued QoS 1 publishes are out.
    FerrotaEventResetRequested = 9,
    /// Run the self-test; answer with `ferrota_agent_self_test_result` before `a` (µs).
    FerrotaEventStartSelfTest = 10,
    /// The running image was confirmed; `a` is the new anti-rollback floor.
    FerrotaEventConfirmed = 11,
    /// The trial image was rejected: the next boot runs the previous bank.
    FerrotaEventRejected = 12,
    /// The service refused a stream request: `a` is AWS's error code as a
    /// [`FerrotaStreamError`] (0 when not recognised).
    FerrotaEventStreamRejected = 13,
    /// A flash operation failed: `a` the operation (0 open, 1 erase bank, 2 write block,
    /// 3 read bank, 4 resume, 5 marker log, 6 trust).
    FerrotaEventFlashFault = 14,
    /// A signed timestamp was accepted: `a` its Unix time.
    FerrotaEventTimestampAccepted = 15,
    /// A manifest was accepted: `a` its sequence, `b` the version.
    FerrotaEventManifestAccepted = 16,
    /// The trusted root moved on: `a` its version.
    FerrotaEventRootUpdated = 17,
    /// The last timestamp expired: `a` when (Unix seconds).
    FerrotaEventFreshnessLost = 18,
    /// An image was activated on the AWS code-signing signature alone.
    FerrotaEventPlainSignatureAccepted = 19,
    /// Revoke these boot-key slots (`a` the mask).
    FerrotaEventRevokeBootKeys = 20,
    /// An event this version of the C API does not name.
    FerrotaEventOther = 255,
}

/// Something the application must know or do.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerrotaEvent {
    /// What happened.
    pub kind: FerrotaEventKind,
    /// First value (see the kind).
    pub a: u64,
    /// Second value.
    pub b: u32,
    /// Third value.
    pub c: u32,
}

fn event(e: AgentEvent) -> FerrotaEvent {
    use FerrotaEventKind as K;
    let (kind, a, b, c) = match e {
        AgentEvent::OtherFileJob {
            file_type,
            file_size,
            file_id,
        } => (
            K::FerrotaEventOtherFileJob,
            u64::from(file_type),
            file_size,
            u32::from(file_id),
        ),
        AgentEvent::CustomJob => (K::FerrotaEventCustomJob, 0, 0, 0),
        AgentEvent::FileChosen {
            encoding,
            file_bytes,
        } => {
            let enc = match encoding {
                ferrota_agent::FileEncoding::Image => 0,
                ferrota_agent::FileEncoding::Packed => 1,
                ferrota_agent::FileEncoding::Delta => 2,
            };
            (K::FerrotaEventFileChosen, u64::from(file_bytes), enc, 0)
        }
        AgentEvent::DownloadStarted { blocks, resumed } => (
            K::FerrotaEventDownloadStarted,
            u64::from(blocks),
            resumed,
            0,
        ),
        AgentEvent::VersionAccepted { version } => {
            (K::FerrotaEventVersionAccepted, u64::from(version.0), 0, 0)
        }
        AgentEvent::JobFailed { status } => {
            let (how, main, sub) = match status {
                OtaStatus::Failed { main, sub } => (FerrotaFailKind::FerrotaFailCodes, main, sub),
                OtaStatus::Rejected { sub_reason } => {
                    (FerrotaFailKind::FerrotaFailRejected, sub_reason, 0)
                }
                OtaStatus::Aborted { sub_reason } => {
                    (FerrotaFailKind::FerrotaFailAborted, sub_reason, 0)
                }
                _ => (FerrotaFailKind::FerrotaFailOther, 0, 0),
            };
            (K::FerrotaEventJobFailed, how as u64, main, sub)
        }
        AgentEvent::JobSucceeded => (K::FerrotaEventJobSucceeded, 0, 0, 0),
        AgentEvent::JobCancelled => (K::FerrotaEventJobCancelled, 0, 0, 0),
        AgentEvent::Activated => (K::FerrotaEventActivated, 0, 0, 0),
        AgentEvent::ResetRequested => (K::FerrotaEventResetRequested, 0, 0, 0),
        AgentEvent::StartSelfTest { deadline } => {
            (K::FerrotaEventStartSelfTest, deadline.as_micros(), 0, 0)
        }
        AgentEvent::Confirmed { floor } => (K::FerrotaEventConfirmed, u64::from(floor), 0, 0),
        AgentEvent::Rejected => (K::FerrotaEventRejected, 0, 0, 0),
        AgentEvent::StreamRejected { code } => (
            K::FerrotaEventStreamRejected,
            stream_error(code) as u64,
            0,
            0,
        ),
        AgentEvent::FlashFault(f) => {
            let op = match f.op {
                FlashOp::Open => 0,
                FlashOp::EraseBank => 1,
                FlashOp::WriteBlock => 2,
                FlashOp::ReadBank => 3,
                FlashOp::Resume => 4,
                FlashOp::MarkerLog => 5,
                FlashOp::Trust => 6,
            };
            (K::FerrotaEventFlashFault, op, 0, 0)
        }
        AgentEvent::TimestampAccepted { time } => (K::FerrotaEventTimestampAccepted, time, 0, 0),
        AgentEvent::ManifestAccepted { sequence, version } => (
            K::FerrotaEventManifestAccepted,
            u64::from(sequence),
            version.0,
            0,
        ),
        AgentEvent::RootUpdated { version } => {
            (K::FerrotaEventRootUpdated, u64::from(version), 0, 0)
        }
        AgentEvent::FreshnessLost { expired_at } => {
            (K::FerrotaEventFreshnessLost, expired_at, 0, 0)
        }
        AgentEvent::PlainSignatureAccepted => (K::FerrotaEventPlainSignatureAccepted, 0, 0, 0),
        AgentEvent::RevokeBootKeys { mask } => {
            (K::FerrotaEventRevokeBootKeys, u64::from(mask), 0, 0)
        }
        _ => (K::FerrotaEventOther, 0, 0, 0),
    };
    FerrotaEvent { kind, a, b, c }
}

/// The next application event into `*out` (`FERROTA_OK`), or `FERROTA_NONE`.
///
/// # Safety
/// `agent` is a handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_poll_event(
    agent: *mut FerrotaAgent,
    out: *mut FerrotaEvent,
) -> FerrotaStatus {
    with(agent, |i| {
        if out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        match i.agent.poll_event() {
            Some(e) => {
                // SAFETY: non-null, aligned, writable by contract.
                unsafe { out.write(event(e)) };
                FerrotaStatus::FerrotaOk
            }
            None => FerrotaStatus::FerrotaNone,
        }
    })
}

/// `(received, total)` blocks of the download in progress (`FERROTA_OK`), or `FERROTA_NONE`
/// when none runs.
///
/// # Safety
/// `agent` is a handle; `received`, `total` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_progress(
    agent: *mut FerrotaAgent,
    received: *mut u32,
    total: *mut u32,
) -> FerrotaStatus {
    with(agent, |i| {
        if received.is_null() || total.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !received.is_aligned() || !total.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        match i.agent.progress() {
            Some((r, t)) => {
                // SAFETY: non-null, aligned, writable by contract.
                unsafe {
                    received.write(r);
                    total.write(t);
                }
                FerrotaStatus::FerrotaOk
            }
            None => FerrotaStatus::FerrotaNone,
        }
    })
}

/// The agent's counters, for logs.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FerrotaStats {
    /// Stream requests sent.
    pub requests: u32,
    /// Blocks written.
    pub blocks_accepted: u32,
    /// Blocks that were already held.
    pub duplicates: u32,
    /// Data messages for another stream or file.
    pub ignored: u32,
    /// Data messages that do not decode.
    pub malformed: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Blocks found lost before a timeout.
    pub gaps: u32,
    /// Chunk marks that could not be written.
    pub mark_failures: u32,
    /// Transmits dropped (queue or buffer too small).
    pub dropped_transmits: u32,
    /// Delta entries of a job document whose base is not the image in the active bank (the
    /// agent took another encoding).
    pub delta_base_mismatch: u32,
    /// Packed files refused: a header that disagrees with the job document, a frame that does
    /// not decode.
    pub packed_errors: u32,
    /// Blocks that arrived after they had been found lost (or timed out): late, not lost; each
    /// raises the download's reordering tolerance.
    pub late: u32,
}

/// The agent's counters into `*out`.
///
/// # Safety
/// `agent` is a handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ferrota_agent_stats(
    agent: *mut FerrotaAgent,
    out: *mut FerrotaStats,
) -> FerrotaStatus {
    with(agent, |i| {
        if out.is_null() {
            return FerrotaStatus::FerrotaErrNull;
        }
        if !out.is_aligned() {
            return FerrotaStatus::FerrotaErrAlignment;
        }
        // Destructured, not read field by field: a counter added to the agent fails the build
        // here until C gets it too.
        let Stats {
            requests,
            blocks_accepted,
            duplicates,
            ignored,
            malformed,
            timeouts,
            gaps,
            mark_failures,
            dropped_transmits,
            delta_base_mismatch,
            packed_errors,
            late,
        } = i.agent.stats();
        // SAFETY: non-null, aligned, writable by contract.
        unsafe {
            out.write(FerrotaStats {
                requests,
                blocks_accepted,
                duplicates,
                ignored,
                malformed,
                timeouts,
                gaps,
                mark_failures,
                dropped_transmits,
                delta_base_mismatch,
                packed_errors,
                late,
            });
        }
        FerrotaStatus::FerrotaOk
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_error_code_reaches_c_as_its_own_value_in_aws_order() {
        let wire = [
            "InvalidTopic",
            "InvalidJson",
            "InvalidCbor",
            "InvalidRequest",
            "Unauthorized",
            "BlockSizeOutOfBounds",
            "OffsetOutOfBounds",
            "BlockCountLimitExceeded",
            "BlockBitmapLimitExceeded",
            "ResourceNotFound",
            "VersionMismatch",
            "ETagMismatch",
            "InternalError",
        ];
        for (i, name) in wire.iter().enumerate() {
            let code = StreamErrorCode::from_wire(name);
            assert!(code.is_some(), "{name} is one of AWS's codes");
            assert_eq!(stream_error(code) as usize, i + 1, "{name}");
        }
        assert_eq!(
            stream_error(None),
            FerrotaStreamError::FerrotaStreamErrorUnknown
        );
    }
}
