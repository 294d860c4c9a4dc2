//! Block 0 (the header with the chunk table) and the frame header of every other block; the
//! byte layout is in the crate docs and pinned by `tests/golden.rs`.

use crate::error::FormatError;

/// The first four bytes of a packed file.
pub const MAGIC: [u8; 4] = *b"FRPK";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// At most this many chunks (a 4 MB bank in 32 KB chunks is 127): it bounds the header's RAM.
pub const MAX_CHUNKS: usize = 128;
/// The smallest block size: a frame must hold at least one 256-byte page of literal output.
pub const MIN_BLOCK_SIZE: u32 = 1024;
/// The largest block size (AWS IoT Streams serve at most 128 KB per request).
pub const MAX_BLOCK_SIZE: u32 = 131_072;
/// The smallest chunk size (one small erase sector).
pub const MIN_CHUNK_SIZE: u32 = 4096;
/// The chunk size the encoder uses by default: the T2G's large erase sector.
pub const DEFAULT_CHUNK_SIZE: u32 = 32_768;
/// The block size the encoder uses by default: the agent's stream block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Frame offsets and lengths are multiples of this (except a frame ending at the image's end),
/// so a frame starts on a page boundary of the applier's write buffer.
pub const FRAME_ALIGN: u32 = 256;
/// Bytes of a frame header before its payload.
pub const FRAME_HEADER_LEN: usize = 16;
/// The frame magic, `0x4652` little-endian (bytes "RF").
pub const FRAME_MAGIC: u16 = 0x4652;
/// Offset of the chunk table in block 0.
pub const TABLE_OFFSET: usize = 0x60;
/// Bytes per chunk table entry.
pub const TABLE_ENTRY_LEN: usize = 6;

/// Codec byte: the op stream is stored as is.
pub const CODEC_STORED: u8 = 0;
/// Codec byte: the op stream is heatshrink-compressed (LZSS).
pub const CODEC_HEATSHRINK: u8 = 1;
/// The heatshrink window bits this build decodes (2^W bytes of the applier's RAM); chosen by
/// measurement, see the crate docs.
pub const HS_WINDOW_BITS: u8 = 10;
/// The heatshrink lookahead bits this build decodes (longest back-reference 2^L bytes).
pub const HS_LOOKAHEAD_BITS: u8 = 4;

// The largest table always fits in the smallest block, so the table needs no length check.
const _: () = assert!(header_len(MAX_CHUNKS) <= MIN_BLOCK_SIZE as usize);

pub(crate) const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Full image or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No base: the frames hold LITERAL and FILL ops only (any COPY is out of range).
    Full,
    /// The frames COPY from the base image (the device's active bank).
    Delta,
}

/// How a frame's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The payload is the op stream.
    Stored,
    /// The payload is the op stream compressed with heatshrink
    /// ([`HS_WINDOW_BITS`], [`HS_LOOKAHEAD_BITS`]).
    Heatshrink,
}

/// One chunk table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// The first block holding one of the chunk's frames (0 when `blocks` is 0).
    pub first_block: u32,
    /// How many blocks hold the chunk's frames (consecutive from `first_block`; the first and
    /// the last may hold frames of neighbouring chunks too); 0 = the chunk is `fill`
    /// throughout.
    pub blocks: u32,
    /// The byte value of a chunk without frames.
    pub fill: u8,
}

/// A parsed, checked block 0. Fixed size (no allocation), about 750 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    kind: Kind,
    codec: Codec,
    block_size: u32,
    image_len: u32,
    chunk_size: u32,
    chunk_count: u32,
    base_len: u32,
    image_sha256: [u8; 32],
    base_sha256: [u8; 32],
    first: [u16; MAX_CHUNKS],
    blocks: [u16; MAX_CHUNKS],
    fill: [u8; MAX_CHUNKS],
    block_count: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn truncated(needed: usize, available: usize) -> FormatError {
    FormatError::Truncated {
        needed: needed as u32,
        available: available as u32,
    }
}

/// Whether `b` is a block size the format allows.
pub const fn valid_block_size(b: u32) -> bool {
    b.is_power_of_two() && b >= MIN_BLOCK_SIZE && b <= MAX_BLOCK_SIZE
}

/// Whether `c` is a chunk size the format allows.
pub const fn valid_chunk_size(c: u32) -> bool {
    c.is_power_of_two() && c >= MIN_CHUNK_SIZE
}

/// The length of block 0's checked part: the fixed fields, the table and the CRC.
pub const fn header_len(chunk_count: usize) -> usize {
    TABLE_OFFSET + chunk_count * TABLE_ENTRY_LEN + 4
}

impl Header {
    /// Parses and checks block 0 (exactly one block long). Every rule of the format is checked
    /// here, each with its own error, so nothing later trusts an unchecked field.
    pub fn parse(block0: &[u8]) -> Result<Header, FormatError> {
        if block0.len() < TABLE_OFFSET {
            return Err(truncated(TABLE_OFFSET, block0.len()));
        }
        if block0[0..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if block0[4] != VERSION {
            return Err(FormatError::UnsupportedVersion(block0[4]));
        }
        let kind = match block0[5] {
            0 => Kind::Full,
            1 => Kind::Delta,
            k => return Err(FormatError::UnknownKind(k)),
        };
        let (a, b) = (block0[7], block0[8]);
        let codec = match block0[6] {
            CODEC_STORED if a == 0 && b == 0 => Codec::Stored,
            CODEC_HEATSHRINK if a == HS_WINDOW_BITS && b == HS_LOOKAHEAD_BITS => Codec::Heatshrink,
            CODEC_STORED | CODEC_HEATSHRINK => return Err(FormatError::CodecParams { a, b }),
            c => return Err(FormatError::UnknownCodec(c)),
        };
        if block0[9..12] != [0; 3] || block0[0x1A..0x1C] != [0; 2] {
            return Err(FormatError::ReservedNotZero);
        }
        let block_size = u32_at(block0, 0x0C);
        if !valid_block_size(block_size) {
            return Err(FormatError::BlockSize(block_size));
        }
        if block0.len() != block_size as usize {
            return Err(FormatError::BlockLength {
                expected: block_size,
                found: block0.len() as u32,
            });
        }
        let image_len = u32_at(block0, 0x10);
        if image_len == 0 {
            return Err(FormatError::EmptyImage);
        }
        let chunk_size = u32_at(block0, 0x14);
        if !valid_chunk_size(chunk_size) {
            return Err(FormatError::ChunkSize(chunk_size));
        }
        let chunk_count = u32::from(u16_at(block0, 0x18));
        let expected = image_len.div_ceil(chunk_size);
        if chunk_count != expected || chunk_count as usize > MAX_CHUNKS {
            return Err(FormatError::ChunkCount {
                found: chunk_count,
                expected,
            });
        }
        let base_len = u32_at(block0, 0x1C);
        let mut image_sha256 = [0; 32];
        image_sha256.copy_from_slice(&block0[0x20..0x40]);
        let mut base_sha256 = [0; 32];
        base_sha256.copy_from_slice(&block0[0x40..0x60]);
        let base_ok = match kind {
            Kind::Full => base_len == 0 && base_sha256 == [0; 32],
            Kind::Delta => base_len != 0,
        };
        if !base_ok {
            return Err(FormatError::Base);
        }
        let k = chunk_count as usize;
        // Fits: header_len(MAX_CHUNKS) <= MIN_BLOCK_SIZE (checked at compile time below).
        let crc_at = TABLE_OFFSET + k * TABLE_ENTRY_LEN;
        let stored = u32_at(block0, crc_at);
        let computed = CRC32.checksum(&block0[..crc_at]);
        if stored != computed {
            return Err(FormatError::Crc { stored, computed });
        }
        if block0[crc_at + 4..].iter().any(|&b| b != 0) {
            return Err(FormatError::ReservedNotZero);
        }
        let mut h = Header {
            kind,
            codec,
            block_size,
            image_len,
            chunk_size,
            chunk_count,
            base_len,
            image_sha256,
            base_sha256,
            first: [0; MAX_CHUNKS],
            blocks: [0; MAX_CHUNKS],
            fill: [0; MAX_CHUNKS],
            block_count: 0,
        };
        // The last block holding a frame so far (0: none yet, block 0 is the header).
        let mut last: u32 = 0;
        for c in 0..k {
            let e = TABLE_OFFSET + c * TABLE_ENTRY_LEN;
            let first = u32::from(u16_at(block0, e));
            let count = u32::from(u16_at(block0, e + 2));
            // A chunk with frames starts in the block that holds the previous chunk's last frame
            // or in the next one; a chunk without frames names block 0.
            let ok = if count == 0 {
                first == 0
            } else {
                first == last + 1 || (last > 0 && first == last)
            };
            if !ok || block0[e + 5] != 0 {
                return Err(FormatError::Table { chunk: c as u32 });
            }
            if count > 0 {
                last = first + count - 1;
            }
            h.first[c] = first as u16;
            h.blocks[c] = count as u16;
            h.fill[c] = block0[e + 4];
        }
        if last >= u32::from(u16::MAX) {
            return Err(FormatError::Table {
                chunk: chunk_count - 1,
            });
        }
        h.block_count = last + 1;
        Ok(h)
    }

    /// Full image or delta.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// How frames are compressed.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The block size B: every block of the file is exactly this long.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Length of the new image the file rebuilds.
    pub fn image_len(&self) -> u32 {
        self.image_len
    }

    /// SHA-256 of the new image: the agent checks the rebuilt bank against it.
    pub fn image_sha256(&self) -> &[u8; 32] {
        &self.image_sha256
    }

    /// How many bytes of the old image a delta reads (0 for a full image).
    pub fn base_len(&self) -> u32 {
        self.base_len
    }

    /// SHA-256 of the old image's first [`Header::base_len`] bytes (zeros for a full image).
    pub fn base_sha256(&self) -> &[u8; 32] {
        &self.base_sha256
    }

    /// The chunk size C: the erase and resume unit.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// How many chunks cover the image.
    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    /// Chunk `c`'s table entry, `None` past the last chunk.
    pub fn chunk(&self, c: u32) -> Option<ChunkEntry> {
        if c >= self.chunk_count {
            return None;
        }
        let i = c as usize;
        Some(ChunkEntry {
            first_block: u32::from(self.first[i]),
            blocks: u32::from(self.blocks[i]),
            fill: self.fill[i],
        })
    }

    /// The output byte range `[start, end)` of chunk `c` (`None` past the last chunk).
    pub fn chunk_range(&self, c: u32) -> Option<(u32, u32)> {
        if c >= self.chunk_count {
            return None;
        }
        let start = c * self.chunk_size;
        Some((start, (start + self.chunk_size).min(self.image_len)))
    }

    /// The chunks `[first, end)` whose frames block `block` holds (consecutive: the file
    /// keeps chunk order); `None` for block 0 and past the last block.
    pub fn chunks_of_block(&self, block: u32) -> Option<(u32, u32)> {
        if block == 0 || block >= self.block_count {
            return None;
        }
        let holds = |c: u32| {
            let i = c as usize;
            let first = u32::from(self.first[i]);
            self.blocks[i] > 0 && block >= first && block < first + u32::from(self.blocks[i])
        };
        let start = (0..self.chunk_count).find(|&c| holds(c))?;
        let end = (start..self.chunk_count)
            .find(|&c| self.blocks[c as usize] > 0 && !holds(c))
            .unwrap_or(self.chunk_count);
        Some((start, end))
    }

    /// Blocks in the file: block 0 and the blocks of frames.
    pub fn block_count(&self) -> u32 {
        self.block_count
    }

    /// The longest the packed file can be: every block B long. Every block but the last is;
    /// the last may end with its last frame (the encoder ends it there).
    pub fn max_file_len(&self) -> u64 {
        u64::from(self.block_count) * u64::from(self.block_size)
    }
}

/// Where a frame's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The chunk the frame belongs to.
    pub chunk: u32,
    /// Absolute output offset of the frame's first byte.
    pub offset: u32,
    /// Output bytes the frame produces.
    pub len: u32,
}

/// One checked frame of a block, as [`frames`] yields it: only the iterator makes one, so
/// [`crate::Applier::apply_frame`] decodes nothing that has not passed the frame rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'b> {
    info: FrameInfo,
    payload: &'b [u8],
}

impl<'b> Frame<'b> {
    /// Where the frame's output goes.
    pub fn info(&self) -> FrameInfo {
        self.info
    }

    /// The (compressed) op stream.
    pub(crate) fn payload(&self) -> &'b [u8] {
        self.payload
    }
}

/// The frames of block `block_index`, in order, each checked against the header before it is
/// yielded (the agent learns a frame's chunk before erasing or writing anything). After an
/// error the iterator ends. The block itself (its index and length) is checked here.
pub fn frames<'h, 'b>(
    header: &'h Header,
    block_index: u32,
    block: &'b [u8],
) -> Result<Frames<'h, 'b>, FormatError> {
    let (first, end) = header
        .chunks_of_block(block_index)
        .ok_or(FormatError::BlockIndex(block_index))?;
    if block.len() > header.block_size as usize {
        return Err(FormatError::BlockLength {
            expected: header.block_size,
            found: block.len() as u32,
        });
    }
    if block.len() < FRAME_HEADER_LEN {
        return Err(truncated(FRAME_HEADER_LEN, block.len()));
    }
    Ok(Frames {
        header,
        block,
        at: 0,
        next_chunk: first,
        end_chunk: end,
        ended: false,
    })
}

/// The iterator of [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'h, 'b> {
    header: &'h Header,
    block: &'b [u8],
    /// Offset of the next frame header in the block.
    at: usize,
    /// The lowest chunk the next frame may name (frames keep chunk order).
    next_chunk: u32,
    /// One past the block's last chunk.
    end_chunk: u32,
    ended: bool,
}

impl<'b> Iterator for Frames<'_, 'b> {
    type Item = Result<Frame<'b>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let r = self.step();
        match &r {
            Some(Ok(_)) => {}
            _ => self.ended = true,
        }
        r
    }
}

impl<'b> Frames<'_, 'b> {
    fn step(&mut self) -> Option<Result<Frame<'b>, FormatError>> {
        let b = self.block;
        let rest = &b[self.at..];
        // The end: the block's end, or zero padding to it (the first frame must be there).
        if self.at > 0 && (rest.len() < FRAME_HEADER_LEN || u16_at(rest, 0) == 0) {
            if rest.iter().any(|&x| x != 0) {
                return Some(Err(FormatError::ReservedNotZero));
            }
            return None;
        }
        if rest.len() < FRAME_HEADER_LEN {
            return Some(Err(truncated(self.at + FRAME_HEADER_LEN, b.len())));
        }
        if u16_at(rest, 0) != FRAME_MAGIC {
            return Some(Err(FormatError::FrameMagic));
        }
        let chunk = u32::from(u16_at(rest, 2));
        if chunk < self.next_chunk || chunk >= self.end_chunk {
            return Some(Err(FormatError::FrameChunk {
                found: chunk,
                expected: self.next_chunk,
            }));
        }
        let offset = u32_at(rest, 4);
        let len = u32_at(rest, 8);
        let header = self.header;
        let Some((start, end)) = header.chunk_range(chunk) else {
            return Some(Err(FormatError::ChunkIndex(chunk)));
        };
        let bad = FormatError::FrameRange { offset, len };
        let Some(frame_end) = offset.checked_add(len) else {
            return Some(Err(bad));
        };
        if len == 0 || offset < start || frame_end > end || !offset.is_multiple_of(FRAME_ALIGN) {
            return Some(Err(bad));
        }
        if !frame_end.is_multiple_of(FRAME_ALIGN) && frame_end != header.image_len {
            return Some(Err(bad));
        }
        let p = u32_at(rest, 12);
        let Some(payload_end) = (p as usize)
            .checked_add(FRAME_HEADER_LEN)
            .filter(|&e| e <= rest.len())
        else {
            return Some(Err(FormatError::PayloadLength(p)));
        };
        self.at += payload_end;
        self.next_chunk = chunk;
        Some(Ok(Frame {
            info: FrameInfo { chunk, offset, len },
            payload: &rest[FRAME_HEADER_LEN..payload_end],
        }))
    }
}
