//! Why a packed file, a block or a frame was refused.
//!
//! The kinds are `Copy` and carry no strings, so the agent on the MCU can keep, compare and
//! report them without an allocator; `Display` gives the words for logs and the host tools.
//! One variant per cause, so a test can assert exactly which rule a damaged input broke.

use core::fmt;

use embedded_storage::nor_flash::NorFlashErrorKind;

/// A header (block 0) or a frame header that breaks a rule of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The block ends before the bytes the format needs.
    Truncated {
        /// Bytes needed from the start of the block.
        needed: u32,
        /// Bytes the block has.
        available: u32,
    },
    /// Block 0 does not start with "FRPK".
    BadMagic,
    /// The format version is not 1.
    UnsupportedVersion(u8),
    /// The kind byte is neither 0 (full) nor 1 (delta).
    UnknownKind(u8),
    /// The codec byte names no codec this build decodes.
    UnknownCodec(u8),
    /// The codec parameters are not the ones this build decodes (heatshrink window and
    /// lookahead bits; both 0 for stored).
    CodecParams {
        /// Parameter a (heatshrink window bits).
        a: u8,
        /// Parameter b (heatshrink lookahead bits).
        b: u8,
    },
    /// A reserved byte is not zero.
    ReservedNotZero,
    /// The block size is not a power of two in 1024..=131072.
    BlockSize(u32),
    /// Block 0 is not exactly one block long.
    BlockLength {
        /// The header's block size.
        expected: u32,
        /// The length of the block given.
        found: u32,
    },
    /// The image length is 0.
    EmptyImage,
    /// The chunk size is not a power of two of at least 4096.
    ChunkSize(u32),
    /// The chunk count is not ceil(image length / chunk size), or exceeds [`crate::MAX_CHUNKS`].
    ChunkCount {
        /// The header's chunk count.
        found: u32,
        /// The count the image length and chunk size give.
        expected: u32,
    },
    /// A full image names a base, or a delta names none.
    Base,
    /// The header's CRC-32 does not match its bytes.
    Crc {
        /// The CRC stored in the header.
        stored: u32,
        /// The CRC of the header's bytes.
        computed: u32,
    },
    /// The chunk table is not contiguous from block 1 (or its second reserved byte is set).
    Table {
        /// The first chunk whose entry is wrong.
        chunk: u32,
    },
    /// The chunk index is not in the table.
    ChunkIndex(u32),
    /// The block index is 0 (the header) or past the last block.
    BlockIndex(u32),
    /// A frame block does not start with the frame magic.
    FrameMagic,
    /// The frame says it belongs to another chunk than the table gives its block.
    FrameChunk {
        /// The chunk the frame names.
        found: u32,
        /// The chunk the table gives its block.
        expected: u32,
    },
    /// The frame's output range is empty, leaves its chunk or the image, or is not a multiple
    /// of 256 where it must be.
    FrameRange {
        /// The frame's output offset.
        offset: u32,
        /// The frame's output length.
        len: u32,
    },
    /// The frame's payload does not fit in its block.
    PayloadLength(u32),
}

/// What is wrong inside a frame's (decompressed) op stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corrupt {
    /// An op byte that is not COPY, LITERAL or FILL.
    UnknownTag(u8),
    /// A varint longer than 5 bytes or larger than a u32.
    Varint,
    /// An op (or a COPY's diff run) reaches past the frame's output length.
    Overflow,
    /// The payload ends before the frame's output is complete.
    Underflow,
    /// The payload ends inside an op.
    TruncatedOp,
    /// The compressed payload cannot be decoded (the decompressor refused it, or bytes are
    /// left over after the last op).
    Compressed,
}

/// Why a frame (or a fill chunk) could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyError {
    /// The block or header breaks a format rule.
    Format(FormatError),
    /// The frame's op stream is damaged.
    Corrupt(Corrupt),
    /// A COPY reads outside the base image (`[0, base length)`).
    OldOutOfRange,
    /// `fill_chunk` was asked for a chunk that has frames.
    ChunkHasFrames(u32),
    /// Reading the old image failed.
    Read(NorFlashErrorKind),
    /// Writing the new image failed (or it is smaller than the image).
    Write(NorFlashErrorKind),
    /// The old image's first `base length` bytes do not hash to the header's base SHA-256.
    BaseHash,
    /// The rebuilt image does not hash to the header's image SHA-256.
    ImageHash,
}

impl From<FormatError> for ApplyError {
    fn from(e: FormatError) -> Self {
        ApplyError::Format(e)
    }
}

impl From<Corrupt> for ApplyError {
    fn from(e: Corrupt) -> Self {
        ApplyError::Corrupt(e)
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::Truncated { needed, available } => {
                write!(f, "block truncated: needs {needed} bytes, has {available}")
            }
            FormatError::BadMagic => f.write_str("not a packed image (magic is not FRPK)"),
            FormatError::UnsupportedVersion(v) => {
                write!(f, "packed format version {v} is not supported")
            }
            FormatError::UnknownKind(k) => write!(f, "unknown packed kind {k}"),
            FormatError::UnknownCodec(c) => write!(f, "unknown codec {c}"),
            FormatError::CodecParams { a, b } => {
                write!(
                    f,
                    "codec parameters {a}/{b} are not supported by this build"
                )
            }
            FormatError::ReservedNotZero => f.write_str("reserved header bytes are not zero"),
            FormatError::BlockSize(b) => write!(
                f,
                "block size {b} is not a power of two between 1024 and 131072"
            ),
            FormatError::BlockLength { expected, found } => {
                write!(f, "block is {found} bytes, the header says {expected}")
            }
            FormatError::EmptyImage => f.write_str("image length is 0"),
            FormatError::ChunkSize(c) => {
                write!(f, "chunk size {c} is not a power of two of at least 4096")
            }
            FormatError::ChunkCount { found, expected } => write!(
                f,
                "chunk count {found} does not match the image (expected {expected}, at most {})",
                crate::MAX_CHUNKS
            ),
            FormatError::Base => {
                f.write_str("base length or hash does not match the kind (full or delta)")
            }
            FormatError::Crc { stored, computed } => write!(
                f,
                "header CRC {stored:#010x} does not match its bytes ({computed:#010x})"
            ),
            FormatError::Table { chunk } => {
                write!(f, "chunk table is inconsistent at chunk {chunk}")
            }
            FormatError::ChunkIndex(c) => write!(f, "chunk {c} is not in the table"),
            FormatError::BlockIndex(b) => write!(f, "block {b} is not a frame of this file"),
            FormatError::FrameMagic => f.write_str("block is not a frame (bad frame magic)"),
            FormatError::FrameChunk { found, expected } => write!(
                f,
                "frame says chunk {found}, the table puts its block in chunk {expected}"
            ),
            FormatError::FrameRange { offset, len } => write!(
                f,
                "frame output {offset:#x}+{len:#x} is empty, misaligned or outside its chunk"
            ),
            FormatError::PayloadLength(p) => {
                write!(f, "frame payload of {p} bytes does not fit in its block")
            }
        }
    }
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Corrupt::UnknownTag(_) => "unknown op tag",
            Corrupt::Varint => "varint longer than 5 bytes or above u32",
            Corrupt::Overflow => "ops produce more than the frame's output length",
            Corrupt::Underflow => "ops produce less than the frame's output length",
            Corrupt::TruncatedOp => "payload ends inside an op",
            Corrupt::Compressed => "compressed payload cannot be decoded",
        })?;
        if let Corrupt::UnknownTag(t) = self {
            write!(f, " {t:#04x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Format(e) => e.fmt(f),
            ApplyError::Corrupt(e) => write!(f, "frame is corrupt: {e}"),
            ApplyError::OldOutOfRange => f.write_str("COPY reads outside the base image"),
            ApplyError::ChunkHasFrames(c) => {
                write!(f, "chunk {c} has frames: it is not a fill chunk")
            }
            ApplyError::Read(k) => write!(f, "reading the old image failed: {k:?}"),
            ApplyError::Write(k) => write!(f, "writing the new image failed: {k:?}"),
            ApplyError::BaseHash => {
                f.write_str("the old image is not the base this delta was made from")
            }
            ApplyError::ImageHash => {
                f.write_str("the rebuilt image does not match the header's SHA-256")
            }
        }
    }
}

impl core::error::Error for FormatError {}
impl core::error::Error for ApplyError {}
