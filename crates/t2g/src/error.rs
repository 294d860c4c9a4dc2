//! Typed errors of the memory model.

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};

use crate::efuse::LifeCycle;
use crate::registers::BankMode;

/// An address that does not reach any modelled memory in the current register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// A code-flash window address that the current bank mode does not map (e.g. 0x12000000 in
    /// single-bank mode, 0x10800000 in dual-bank mode).
    #[error("address {addr:#010x} is not mapped in {mode:?}-bank mode")]
    Unmapped {
        /// The address.
        addr: u32,
        /// The bank mode in force.
        mode: BankMode,
    },
    /// An address outside code flash, work flash and SFlash.
    #[error("address {addr:#010x} is outside every modelled memory")]
    NoMemory {
        /// The address.
        addr: u32,
    },
    /// A range that starts in a memory but runs past its end.
    #[error("range {addr:#010x}+{len:#x} runs past the end of its memory")]
    RangeEnd {
        /// Start of the range.
        addr: u32,
        /// Its length.
        len: usize,
    },
}

/// An error of a memory operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address is not mapped.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The address is not aligned to the operation's unit.
    #[error("address {addr:#010x} is not aligned to {align} bytes")]
    NotAligned {
        /// The address.
        addr: u32,
        /// The required alignment.
        align: u32,
    },
    /// The length is zero or not a multiple of the operation's unit.
    #[error("length {len} is not a non-zero multiple of {unit}")]
    BadLength {
        /// The length.
        len: usize,
        /// The unit.
        unit: u32,
    },
    /// A code-flash program operation must stay within one 512 B row.
    #[error("program at {addr:#010x}+{len} crosses a 512-byte row")]
    CrossesRow {
        /// Start address.
        addr: u32,
        /// Length.
        len: usize,
    },
    /// Erases are by whole sector: the address must be a sector's first byte.
    #[error("{addr:#010x} is not the start of a sector")]
    NotSectorStart {
        /// The address.
        addr: u32,
    },
    /// The ECC word was programmed since its last erase: programming it again (even with the
    /// same value) is an error on ECC flash.
    #[error("word at {addr:#010x} is not erased (ECC flash: program only after erase)")]
    NotErased {
        /// Address of the first such word.
        addr: u32,
    },
    /// Reading erased work flash is an ECC fault (a HardFault on the chip) unless
    /// FLASH_CTL.WORK_ERR_SILENT is set.
    #[error("ECC fault: read of erased work flash at {addr:#010x} with WORK_ERR_SILENT clear")]
    ErasedRead {
        /// Address of the first erased word read.
        addr: u32,
    },
    /// SFlash is write-protected in the secure life-cycle stages.
    #[error("SFlash at {addr:#010x} is write-protected in life cycle {stage:?}")]
    WriteProtected {
        /// The row address.
        addr: u32,
        /// The life-cycle stage that protects it.
        stage: LifeCycle,
    },
    /// The operation does not apply to the memory at this address (e.g. a code-flash row program
    /// on work flash, or an erase of SFlash).
    #[error("this operation does not apply to the memory at {addr:#010x}")]
    WrongMemory {
        /// The address.
        addr: u32,
    },
    /// The view needs another bank mode than the one in force.
    #[error("this view needs {needed:?}-bank mode")]
    WrongBankMode {
        /// The mode the view needs.
        needed: BankMode,
    },
    /// An offset outside a view.
    #[error("range {offset:#x}+{len:#x} is outside the view ({capacity:#x} bytes)")]
    OutOfView {
        /// Offset in the view.
        offset: u32,
        /// Length.
        len: usize,
        /// The view's capacity.
        capacity: usize,
    },
    /// The power is lost: nothing works until [`crate::Device::power_cycle`].
    #[error("power lost")]
    PowerLost,
    /// An eFuse rule was violated.
    #[error(transparent)]
    Efuse(#[from] EfuseError),
}

/// An eFuse rule violation. eFuse bits can only be blown (0 → 1), never cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EfuseError {
    /// The life-cycle transition is not allowed (see [`LifeCycle::next_stages`]).
    #[error("life-cycle transition {from:?} -> {to:?} is not allowed")]
    InvalidTransition {
        /// The current stage.
        from: LifeCycle,
        /// The requested stage.
        to: LifeCycle,
    },
    /// The anti-rollback counter can only go up.
    #[error("anti-rollback counter is {current}, cannot lower it to {requested}")]
    CounterDecrease {
        /// Current value.
        current: u32,
        /// Requested value.
        requested: u32,
    },
    /// The anti-rollback counter has a fixed number of bits.
    #[error("anti-rollback counter maximum is {max}, {requested} requested")]
    CounterOverflow {
        /// Requested value.
        requested: u32,
        /// The maximum.
        max: u32,
    },
    /// Writing this S-HASH would need a blown bit to return to 0.
    #[error("S-HASH already holds bits this value would clear")]
    WouldUnblow,
    /// The field can no longer be written in this stage (S-HASH after the secure transition).
    #[error("the field is locked in life cycle {stage:?}")]
    Locked {
        /// The stage.
        stage: LifeCycle,
    },
    /// There is no revocation bit for this boot-key slot.
    #[error("boot-key slot {slot} has no revocation bit (slots 0..{max})")]
    NoKeySlot {
        /// The slot requested.
        slot: u32,
        /// The number of slots.
        max: u32,
    },
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Error::NotAligned { .. }
            | Error::BadLength { .. }
            | Error::CrossesRow { .. }
            | Error::NotSectorStart { .. } => NorFlashErrorKind::NotAligned,
            Error::Address(_) | Error::OutOfView { .. } => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}
