//! The resume record: which parts of the download are safely in the inactive bank, in one
//! work-flash sector, so a reset or power cut costs only the parts that were not finished
//! (seed weakness #5: the seed kept this in RAM and restarted from block 0).
//!
//! # Unit of persistence: the chunk
//!
//! A *chunk* is `max(block size, bank erase sector)` bytes of the file (32 KB on the T2G at 4 KB
//! blocks: 8 blocks), doubled until the file has at most [`MAX_CHUNKS`] of them. The agent erases
//! a chunk of the bank lazily, just before it writes the first block into it in the current
//! session, and when the last block of a chunk has been written it programs that chunk's mark:
//! **one 32-bit word per chunk** (4 bytes per 32 KB received), never a write per block. After a
//! reset, chunks with a mark are complete; every other chunk is fetched again and erased before
//! its first write, so a block half-written when the power failed is never trusted, and code
//! flash is never programmed twice without an erase.
//!
//! # Layout (little-endian 32-bit words from the start of the area)
//!
//! ```text
//!  0x00 MAGIC "FRRS"     0x04 FORMAT       0x08 file size     0x0C block size
//!  0x10 file id          0x14 tag (lo)     0x18 tag (hi)      0x1C chunk size
//!  0x20 COMMIT           0x24 activating: running version | erased
//!  0x40 + 4·c: chunk c's mark (MARK ^ c), erased until the chunk is complete
//! ```
//!
//! The header is written word by word and COMMIT last, so a torn header reads as "no record".
//! The tag is a 64-bit FNV-1a of the job id, stream name, file id and signature text: a record
//! is only used for the very same job and file. A new job erases the sector first. A torn mark
//! never equals its expected value (a torn program sets a subset of the 1→0 transitions), so it
//! reads as "not complete"; it can then not be programmed again, and that chunk is refetched
//! after every reset until the job ends — bounded, and never wrong.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

/// Most chunks a record tracks.
pub const MAX_CHUNKS: u32 = 496;
/// Bytes of the area the record uses.
pub const AREA_BYTES: u32 = 0x40 + 4 * MAX_CHUNKS;

const MAGIC: u32 = u32::from_le_bytes(*b"FRRS");
const FORMAT: u32 = 1;
const COMMIT: u32 = 0x5245_5355;
const MARK: u32 = 0x4B43_0000;
const HEADER_WORDS: usize = 10;
const ACTIVATING_AT: u32 = 0x24;
const MARKS_AT: u32 = 0x40;

/// What identifies a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// File size in bytes.
    pub file_size: u32,
    /// Block size in bytes.
    pub block_size: u32,
    /// Stream file id.
    pub file_id: u32,
    /// FNV-1a of job id, stream, file id and signature text.
    pub tag: u64,
    /// Chunk size in bytes.
    pub chunk_size: u32,
}

/// A record read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Its download.
    pub identity: Identity,
    /// The running version written just before activation, if it was.
    pub activating: Option<u32>,
}

/// 64-bit FNV-1a over several byte strings, each followed by a 0 separator.
pub fn tag(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(core::iter::once(&0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The chunk size for a file: `max(block, erase)`, doubled until at most [`MAX_CHUNKS`] chunks.
pub fn chunk_size(file_size: u32, block_size: u32, erase_size: u32) -> u32 {
    let mut c = block_size.max(erase_size).max(1);
    while file_size.div_ceil(c) > MAX_CHUNKS {
        c = c.saturating_mul(2);
    }
    c
}

fn kind<E: NorFlashError>(e: E) -> NorFlashErrorKind {
    e.kind()
}

fn write_word<R: NorFlash>(r: &mut R, at: u32, v: u32) -> Result<(), NorFlashErrorKind> {
    const { assert!(R::WRITE_SIZE <= 4 && 4 % R::WRITE_SIZE == 0) };
    r.write(at, &v.to_le_bytes()).map_err(kind)
}

fn read_word<R: NorFlash>(r: &mut R, at: u32) -> Result<u32, NorFlashErrorKind> {
    let mut b = [0u8; 4];
    r.read(at, &mut b).map_err(kind)?;
    Ok(u32::from_le_bytes(b))
}

/// Erases the record (the sectors covering [`AREA_BYTES`]).
pub fn clear<R: NorFlash>(r: &mut R) -> Result<(), NorFlashErrorKind> {
    let erase = R::ERASE_SIZE as u32;
    let end = AREA_BYTES.div_ceil(erase) * erase;
    if (r.capacity() as u32) < end {
        return Err(NorFlashErrorKind::OutOfBounds);
    }
    r.erase(0, end).map_err(kind)
}

/// Reads the record, if a committed one is there.
pub fn read<R: NorFlash>(r: &mut R) -> Result<Option<Record>, NorFlashErrorKind> {
    let mut raw = [0u8; HEADER_WORDS * 4];
    r.read(0, &mut raw).map_err(kind)?;
    let w =
        |i: usize| u32::from_le_bytes([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]);
    if w(0) != MAGIC || w(1) != FORMAT || w(8) != COMMIT {
        return Ok(None);
    }
    let identity = Identity {
        file_size: w(2),
        block_size: w(3),
        file_id: w(4),
        tag: u64::from(w(5)) | (u64::from(w(6)) << 32),
        chunk_size: w(7),
    };
    let activating = match w(9) {
        0xFFFF_FFFF => None,
        v => Some(v),
    };
    Ok(Some(Record {
        identity,
        activating,
    }))
}

/// Starts a record for a new download: erase, header, COMMIT last.
pub fn start<R: NorFlash>(r: &mut R, id: &Identity) -> Result<(), NorFlashErrorKind> {
    clear(r)?;
    let words = [
        MAGIC,
        FORMAT,
        id.file_size,
        id.block_size,
        id.file_id,
        id.tag as u32,
        (id.tag >> 32) as u32,
        id.chunk_size,
    ];
    for (i, v) in words.iter().enumerate() {
        write_word(r, 4 * i as u32, *v)?;
    }
    write_word(r, 0x20, COMMIT)
}

/// Whether chunk `c` is marked complete.
pub fn chunk_done<R: NorFlash>(r: &mut R, c: u32) -> Result<bool, NorFlashErrorKind> {
    if c >= MAX_CHUNKS {
        return Ok(false);
    }
    Ok(read_word(r, MARKS_AT + 4 * c)? == MARK ^ c)
}

/// Marks chunk `c` complete (its blocks are all written).
pub fn mark_chunk<R: NorFlash>(r: &mut R, c: u32) -> Result<(), NorFlashErrorKind> {
    if c >= MAX_CHUNKS {
        return Err(NorFlashErrorKind::OutOfBounds);
    }
    write_word(r, MARKS_AT + 4 * c, MARK ^ c)
}

/// Records that activation is about to be requested by `running_version`.
pub fn mark_activating<R: NorFlash>(
    r: &mut R,
    running_version: u32,
) -> Result<(), NorFlashErrorKind> {
    write_word(r, ACTIVATING_AT, running_version)
}
