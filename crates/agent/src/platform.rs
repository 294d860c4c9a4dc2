//! The flash the agent works on, lent to it for the duration of each call.
//!
//! The agent is generic over three `embedded-storage` flashes: the inactive bank (offset 0 =
//! bank offset 0, the 0x12000000 alias on the T2G), the resume area (one work-flash sector of at
//! least 2 KB, by default [`RESUME_AREA`]), and the boot manager's marker log (two work-flash
//! sectors at 0x14012000). The caller lends them through [`Platform`] on every call that may touch
//! flash; the agent keeps no borrow between calls, so the same `Device` (or HAL) can be used by
//! the rest of the application in between.

use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind, ReadNorFlash};

/// Default resume area: the work-flash sector after the marker log's two sectors.
pub const RESUME_AREA: u32 = 0x1401_3000;
/// Bytes the resume area needs (one 2 KB work-flash sector).
pub const RESUME_AREA_LEN: u32 = 0x800;
/// Default trust store: the two work-flash sectors after the resume area.
pub const TRUST_AREA: u32 = ferrota_manifest::store::TRUST_AREA;
/// Bytes the trust store needs (two 2 KB work-flash sectors).
pub const TRUST_AREA_LEN: u32 = ferrota_manifest::store::TRUST_AREA_LEN;

/// The flashes the agent reads and writes.
pub trait Platform {
    /// The inactive bank.
    type Bank<'p>: NorFlash
    where
        Self: 'p;
    /// The resume area in work flash (reading erased words must not fault: WORK_ERR_SILENT).
    type Resume<'p>: NorFlash
    where
        Self: 'p;
    /// The marker log (two 2 KB work-flash sectors).
    type Log<'p>: NorFlash
    where
        Self: 'p;
    /// The bank the application runs from, read only.
    type Active<'p>: ReadNorFlash
    where
        Self: 'p;
    /// The trust store (two 2 KB work-flash sectors, by default [`TRUST_AREA`]): the trusted
    /// root, the manifest sequence floor and the attested time (`ferrota_manifest::store`).
    type Trust<'p>: NorFlash
    where
        Self: 'p;
    /// The inactive bank, offset 0 = bank offset 0.
    fn inactive_bank(&mut self) -> Result<Self::Bank<'_>, FlashFault>;
    /// The resume area.
    fn resume_area(&mut self) -> Result<Self::Resume<'_>, FlashFault>;
    /// The marker log.
    fn marker_log(&mut self) -> Result<Self::Log<'_>, FlashFault>;
    /// The running bank, offset 0 = bank offset 0 (the 0x10000000 mapping on the T2G). Read
    /// once per update, before the confirm: `ferrota_boot::app::confirm` requires the proof that
    /// the running image's CM0+ region verifies, so the agent checks the bank it runs from.
    fn active_bank(&mut self) -> Result<Self::Active<'_>, FlashFault>;
    /// The trust store. Opened when a timestamp or a manifest is accepted, at start (to read
    /// the trusted root) and before an activation (the installed sequence).
    fn trust_area(&mut self) -> Result<Self::Trust<'_>, FlashFault>;
}

/// Which flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashOp {
    /// Opening a view ([`Platform`]).
    Open,
    /// Erasing part of the inactive bank.
    EraseBank,
    /// Writing a block.
    WriteBlock,
    /// Reading a bank back (the inactive bank's version record and hash, the running bank's
    /// CM0+ region before a confirm).
    ReadBank,
    /// Reading or writing the resume area.
    Resume,
    /// Reading or appending to the marker log.
    MarkerLog,
    /// Reading or writing the trust store.
    Trust,
}

/// A flash operation failed (on the simulator: also a power cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashFault {
    /// What was being done.
    pub op: FlashOp,
    /// The `embedded-storage` error kind.
    pub kind: NorFlashErrorKind,
}

impl FlashFault {
    /// A fault of `op` with `kind`.
    pub const fn new(op: FlashOp, kind: NorFlashErrorKind) -> Self {
        FlashFault { op, kind }
    }
}
