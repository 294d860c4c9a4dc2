//! Why an image was refused, and where.
//!
//! Every refusal names the region and the bank offset of the field at fault, so a message such as
//! `CM7_0 region, bank offset 0x3e7f00: signature does not match` tells a firmware engineer which
//! build to look at without a debugger. The kinds are `Copy` and carry no strings, so the same
//! error type serves the bootloader on the MCU and the host tools.

use core::fmt;

use embedded_storage::nor_flash::NorFlashErrorKind;

use crate::layout::Region;

/// An image refusal: which region (if the fault is in one), at which bank offset, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The region at fault; `None` for faults about the bank as a whole (such as its length).
    pub region: Option<Region>,
    /// Bank offset of the byte or field at fault.
    pub offset: u32,
    /// What is wrong there.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) const fn at(region: Region, offset: u32, kind: ErrorKind) -> Self {
        Error {
            region: Some(region),
            offset,
            kind,
        }
    }

    pub(crate) const fn bank(offset: u32, kind: ErrorKind) -> Self {
        Error {
            region: None,
            offset,
            kind,
        }
    }
}

/// The causes of a refusal, one variant per cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends before the bytes that were needed.
    Truncated {
        /// Bytes needed from the start of the input.
        needed: u32,
        /// Bytes the input has.
        available: u32,
    },
    /// The input is longer than a bank: it cannot be written into one.
    TooLong {
        /// Bytes the input has.
        len: u32,
    },
    /// `objSize` puts the 256-byte signature slot (partly) outside the region, or overflows.
    ObjSizeOutsideRegion {
        /// The header's `objSize`.
        obj_size: u32,
        /// The largest `objSize` that keeps the signature inside the region.
        max: u32,
    },
    /// `objSize` does not cover the header and the first vectors, so the reset vector would run
    /// unsigned.
    ObjSizeTooSmall {
        /// The header's `objSize`.
        obj_size: u32,
        /// The smallest acceptable `objSize`.
        min: u32,
    },
    /// `core0Id` names another core than the one this region belongs to.
    WrongCore {
        /// The core id this region must carry.
        expected: u32,
        /// The core id found.
        found: u32,
    },
    /// `core0Vt` does not put the vector table at region + 0x100.
    WrongVectorOffset {
        /// The `core0Vt` found (0xF0 expected).
        found: u32,
    },
    /// `numCores` is not 1.
    WrongCoreCount {
        /// The `numCores` found.
        found: u32,
    },
    /// The signature slot is all zero: the region was never signed.
    Unsigned,
    /// The signature slot holds bytes the scheme cannot parse, or non-zero padding after them.
    MalformedSignature,
    /// The signature is well-formed but does not match the region's bytes under the key.
    SignatureMismatch,
    /// The key names a scheme this build cannot verify (RSA without the `rsa` feature).
    UnsupportedScheme,
    /// The version record's magic is missing: the image was not built by Ferrota (or the seed's
    /// zeroes are still there).
    VersionMissing {
        /// The word found where the magic should be.
        found: u32,
    },
    /// The version record has a format this code does not know.
    VersionFormat {
        /// The format found.
        found: u16,
    },
    /// The version record's length field does not match its format.
    VersionLength {
        /// The length found.
        found: u16,
    },
    /// The version record sets flag bits this format does not define.
    VersionFlags {
        /// The unknown bits.
        unknown: u32,
    },
    /// The hardware id is not printable ASCII followed by NUL padding.
    HardwareId,
    /// A reserved byte (version record tail) is not zero.
    ReservedNotZero,
    /// The flash reader failed.
    Flash(NorFlashErrorKind),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.region {
            Some(r) => write!(f, "{r} region, bank offset {:#08x}: ", self.offset)?,
            None => write!(f, "bank offset {:#08x}: ", self.offset)?,
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Truncated { needed, available } => write!(
                f,
                "image truncated: needs {needed:#x} bytes, has {available:#x}"
            ),
            ErrorKind::TooLong { len } => write!(
                f,
                "image is {len:#x} bytes, longer than a bank ({:#x})",
                crate::layout::BANK_SIZE
            ),
            ErrorKind::ObjSizeOutsideRegion { obj_size, max } => write!(
                f,
                "objSize {obj_size:#x} puts the signature outside the region (at most {max:#x})"
            ),
            ErrorKind::ObjSizeTooSmall { obj_size, min } => write!(
                f,
                "objSize {obj_size:#x} leaves the vector table unsigned (at least {min:#x})"
            ),
            ErrorKind::WrongCore { expected, found } => write!(
                f,
                "core0Id {found:#010x} belongs to another core (expected {expected:#010x})"
            ),
            ErrorKind::WrongVectorOffset { found } => write!(
                f,
                "core0Vt {found:#x} does not place the vector table at +0x100 (expected 0xf0)"
            ),
            ErrorKind::WrongCoreCount { found } => {
                write!(f, "numCores {found} (expected 1)")
            }
            ErrorKind::Unsigned => f.write_str("region is not signed (signature slot is zero)"),
            ErrorKind::MalformedSignature => f.write_str("signature slot is malformed"),
            ErrorKind::SignatureMismatch => f.write_str("signature does not match"),
            ErrorKind::UnsupportedScheme => {
                f.write_str("the key's signature scheme is not supported by this build")
            }
            ErrorKind::VersionMissing { found } => write!(
                f,
                "no version record (found {found:#010x} where the magic belongs)"
            ),
            ErrorKind::VersionFormat { found } => {
                write!(f, "version record format {found} is not supported")
            }
            ErrorKind::VersionLength { found } => {
                write!(
                    f,
                    "version record length {found:#x} does not match its format"
                )
            }
            ErrorKind::VersionFlags { unknown } => {
                write!(f, "version record sets unknown flags {unknown:#x}")
            }
            ErrorKind::HardwareId => {
                f.write_str("hardware id is not printable ASCII padded with NUL bytes")
            }
            ErrorKind::ReservedNotZero => f.write_str("reserved bytes are not zero"),
            ErrorKind::Flash(kind) => write!(f, "flash read failed: {kind:?}"),
        }
    }
}

impl core::error::Error for Error {}
