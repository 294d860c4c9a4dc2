//! The GetStream block bitmap (spec §3.2) and a fixed-capacity set of missing blocks.
//!
//! Encoding: bit *k* stands for block `o + k` (`o` = the request's `"o"` offset); bit *k* lives
//! in byte `k >> 3` at bit position `k & 7`, least significant bit first. A set bit means "send
//! me this block". AWS example: offset 20, blocks 20, 21, 24, 43 → `13 00 80`. AWS refuses a
//! bitmap of [`BITMAP_BYTES_LIMIT`] bytes or more.
//!
//! [`BlockSet`] keeps the "still needed" bitmap of a whole file in exactly that encoding, so
//! the official device's request (`o = 0`, the whole bitmap) is [`BlockSet::as_bytes`], and a
//! window of missing blocks at any offset is [`BlockSet::request_window`].

use core::fmt;

use crate::limits::BITMAP_BYTES_LIMIT;

/// Bytes of bitmap needed for `blocks` blocks (`ceil(blocks / 8)`), e.g. for the const parameter
/// of [`BlockSet`]: `BlockSet<{ bitmap_len(1016) }>`.
pub const fn bitmap_len(blocks: u32) -> usize {
    blocks.div_ceil(8) as usize
}

/// Number of blocks of a file of `file_size` bytes at `block_size` bytes a block.
pub const fn block_count(file_size: u32, block_size: u32) -> u32 {
    if block_size == 0 {
        0
    } else {
        file_size.div_ceil(block_size)
    }
}

/// Whether bit `k` of `bitmap` is set (bits past the end read as clear).
pub fn bit(bitmap: &[u8], k: u32) -> bool {
    bitmap
        .get((k >> 3) as usize)
        .is_some_and(|b| b & (1 << (k & 7)) != 0)
}

/// Errors of the bitmap helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BitmapError {
    /// More blocks than the set (or the bitmap) can hold.
    TooManyBlocks,
    /// A block index at or past the number of blocks (or before the offset).
    OutOfRange,
    /// The output buffer cannot hold the bitmap.
    BufferTooSmall,
    /// A restored bitmap has bits set past the last block, or the wrong length.
    Malformed,
}

impl fmt::Display for BitmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BitmapError::TooManyBlocks => "too many blocks for the bitmap",
            BitmapError::OutOfRange => "block index out of range",
            BitmapError::BufferTooSmall => "bitmap buffer too small",
            BitmapError::Malformed => "malformed bitmap",
        })
    }
}

impl core::error::Error for BitmapError {}

/// Writes a request bitmap at `offset` for `blocks` (any order, duplicates allowed) into `buf`,
/// returning its length: just long enough for the highest block.
pub fn encode_blocks(
    offset: u32,
    blocks: impl IntoIterator<Item = u32>,
    buf: &mut [u8],
) -> Result<usize, BitmapError> {
    let mut len = 0usize;
    let mut cleared = 0usize;
    for b in blocks {
        let k = b.checked_sub(offset).ok_or(BitmapError::OutOfRange)?;
        let byte = (k >> 3) as usize;
        if byte >= buf.len() || byte >= BITMAP_BYTES_LIMIT - 1 {
            return Err(BitmapError::BufferTooSmall);
        }
        // Zero the bytes between the previous end and this one before setting the bit.
        while cleared <= byte {
            buf[cleared] = 0;
            cleared += 1;
        }
        buf[byte] |= 1 << (k & 7);
        len = len.max(byte + 1);
    }
    Ok(len)
}

/// A received bitmap with its offset, as a server reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapView<'a> {
    /// Block index of bit 0 (`"o"`).
    pub offset: u32,
    /// The bitmap bytes (`"b"`).
    pub bits: &'a [u8],
}

impl<'a> BitmapView<'a> {
    /// The requested block indices below `num_blocks`, ascending.
    pub fn requested(self, num_blocks: u32) -> impl Iterator<Item = u32> + 'a {
        let offset = self.offset;
        let bits = self.bits;
        let total = (bits.len() as u64) * 8;
        (0..total)
            .filter(move |&k| bits[(k >> 3) as usize] & (1 << (k & 7)) != 0)
            .map(move |k| offset as u64 + k)
            .take_while(move |&b| b < num_blocks as u64)
            .map(|b| b as u32)
    }
}

/// A window of missing blocks to request: the `"o"` offset, the number of blocks set (the `"n"`
/// to send) and the bitmap length written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First block of the window (`"o"`); bit 0 of the bitmap.
    pub offset: u32,
    /// Number of blocks requested (bits set), the `"n"` to send.
    pub count: u32,
    /// Bytes of bitmap written.
    pub len: usize,
}

/// Which blocks of a file are still missing, for a file of up to `BYTES * 8` blocks, stored in
/// the wire encoding of §3.2 (set bit = still needed). `BlockSet<128>` holds the official
/// device's 1024 blocks (4 MiB at 4 KiB, the seed's 1016-block image); `BlockSet<{
/// bitmap_len(n) }>` holds `n`.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockSet<const BYTES: usize> {
    missing: [u8; BYTES],
    num_blocks: u32,
    missing_count: u32,
}

impl<const BYTES: usize> fmt::Debug for BlockSet<BYTES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockSet")
            .field("num_blocks", &self.num_blocks)
            .field("missing", &self.missing_count)
            .finish()
    }
}

impl<const BYTES: usize> BlockSet<BYTES> {
    /// Most blocks this set can track.
    pub const CAPACITY: u32 = {
        assert!(BYTES <= (u32::MAX / 8) as usize);
        (BYTES * 8) as u32
    };

    /// A set for `num_blocks` blocks, all missing. The unused high bits of the last byte are
    /// clear, as the official device initialises its bitmap (25 blocks → `ff ff ff 01`).
    pub fn all_missing(num_blocks: u32) -> Result<Self, BitmapError> {
        if num_blocks > Self::CAPACITY {
            return Err(BitmapError::TooManyBlocks);
        }
        let mut missing = [0u8; BYTES];
        let full = (num_blocks / 8) as usize;
        missing[..full].fill(0xFF);
        let rem = num_blocks % 8;
        if rem != 0 {
            missing[full] = (1u8 << rem) - 1;
        }
        Ok(BlockSet {
            missing,
            num_blocks,
            missing_count: num_blocks,
        })
    }

    /// Restores a set from its [`BlockSet::as_bytes`] form (for resume after a reset).
    pub fn from_bytes(num_blocks: u32, bytes: &[u8]) -> Result<Self, BitmapError> {
        if num_blocks > Self::CAPACITY {
            return Err(BitmapError::TooManyBlocks);
        }
        if bytes.len() != bitmap_len(num_blocks) {
            return Err(BitmapError::Malformed);
        }
        let rem = num_blocks % 8;
        if rem != 0 && bytes.last().is_some_and(|&b| b >> rem != 0) {
            return Err(BitmapError::Malformed);
        }
        let mut missing = [0u8; BYTES];
        missing[..bytes.len()].copy_from_slice(bytes);
        let missing_count = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(BlockSet {
            missing,
            num_blocks,
            missing_count,
        })
    }

    /// Number of blocks of the file.
    pub fn num_blocks(&self) -> u32 {
        self.num_blocks
    }

    /// Blocks still missing.
    pub fn missing_count(&self) -> u32 {
        self.missing_count
    }

    /// Blocks received.
    pub fn received_count(&self) -> u32 {
        self.num_blocks - self.missing_count
    }

    /// Whether every block has been received.
    pub fn is_complete(&self) -> bool {
        self.missing_count == 0
    }

    /// Whether `block` is still missing (`false` past the end).
    pub fn is_missing(&self, block: u32) -> bool {
        block < self.num_blocks && bit(&self.missing, block)
    }

    /// Marks `block` received. Returns `Ok(true)` if it was missing, `Ok(false)` for a duplicate.
    pub fn mark_received(&mut self, block: u32) -> Result<bool, BitmapError> {
        if block >= self.num_blocks {
            return Err(BitmapError::OutOfRange);
        }
        let (byte, mask) = ((block >> 3) as usize, 1u8 << (block & 7));
        let was = self.missing[byte] & mask != 0;
        self.missing[byte] &= !mask;
        if was {
            self.missing_count -= 1;
        }
        Ok(was)
    }

    /// Marks `block` missing again (e.g. a write failed). Returns whether it was received.
    pub fn mark_missing(&mut self, block: u32) -> Result<bool, BitmapError> {
        if block >= self.num_blocks {
            return Err(BitmapError::OutOfRange);
        }
        let (byte, mask) = ((block >> 3) as usize, 1u8 << (block & 7));
        let was_received = self.missing[byte] & mask == 0;
        self.missing[byte] |= mask;
        if was_received {
            self.missing_count += 1;
        }
        Ok(was_received)
    }

    /// The whole "still needed" bitmap, `ceil(num_blocks / 8)` bytes: the official device's
    /// `"b"` with `"o"` = 0.
    pub fn as_bytes(&self) -> &[u8] {
        &self.missing[..bitmap_len(self.num_blocks)]
    }

    /// The first missing block at or after `from`.
    pub fn first_missing_from(&self, from: u32) -> Option<u32> {
        if from >= self.num_blocks {
            return None;
        }
        let bytes = self.as_bytes();
        let mut byte = (from >> 3) as usize;
        // Mask off the bits below `from` in the first byte.
        let mut cur = bytes[byte] & (0xFFu8 << (from & 7));
        loop {
            if cur != 0 {
                let b = (byte as u32) * 8 + cur.trailing_zeros();
                return (b < self.num_blocks).then_some(b);
            }
            byte += 1;
            cur = *bytes.get(byte)?;
        }
    }

    /// The missing blocks, ascending.
    pub fn iter_missing(&self) -> impl Iterator<Item = u32> + '_ {
        let mut next = 0u32;
        core::iter::from_fn(move || {
            let b = self.first_missing_from(next)?;
            next = b + 1;
            Some(b)
        })
    }

    /// Builds a request for up to `max_blocks` missing blocks, starting at the first missing
    /// block at or after `from`: the window's offset is that block, its bitmap (written to `buf`)
    /// has a bit for each chosen block and is cut short when `buf` is full. `None` when nothing
    /// is missing at or after `from`.
    pub fn request_window(&self, from: u32, max_blocks: u32, buf: &mut [u8]) -> Option<Window> {
        let offset = self.first_missing_from(from)?;
        let span_max = (buf.len().min(BITMAP_BYTES_LIMIT - 1) as u64 * 8) as u32;
        let mut count = 0u32;
        let mut len = 0usize;
        let mut b = offset;
        while count < max_blocks {
            let k = b - offset;
            if k >= span_max {
                break;
            }
            let byte = (k >> 3) as usize;
            while len <= byte {
                buf[len] = 0;
                len += 1;
            }
            buf[byte] |= 1 << (k & 7);
            count += 1;
            match self.first_missing_from(b + 1) {
                Some(n) => b = n,
                None => break,
            }
        }
        (count > 0).then_some(Window { offset, count, len })
    }
}
