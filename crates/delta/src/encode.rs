//! The host side: packing a full image or a delta into a packed file, and rebuilding one in
//! memory through the device's own [`Applier`] (feature `std`).
//!
//! How a file is made:
//! 1. The new image is described as segments: FILL for every run of one byte value of at least
//!    [`FILL_MIN`] bytes (the builder zero-fills unused flash), and, between them, COPY from
//!    the old image where [`bidiff`]'s bsdiff matching found an approximate match (the changed
//!    bytes become sparse diff runs), LITERAL elsewhere. A full image has no COPY.
//! 2. Per chunk (in parallel): a chunk that is one byte value throughout gets no frame.
//!    Otherwise frames are cut greedily from the chunk's start: each takes the longest output
//!    range (a multiple of 256 bytes, or up to the chunk's end) whose compressed op stream fits
//!    in B − 16 bytes (binary search on the range).
//! 3. The frames go into blocks in chunk order, back to back: a frame that does not fit in the
//!    block being filled starts the next one, unless the room left is worth it (at least 128
//!    bytes): then the rest of its chunk is cut again so that its first frame fills that room.
//!    A small chunk costs its frame's bytes, not a block.
//! 4. Block 0 gets the header and chunk table; every block but the last is padded to B (the
//!    last ends with its last frame).

use std::convert::Infallible;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::apply::{Applier, OP_COPY, OP_FILL, OP_LITERAL, fill_chunk};
use crate::error::{ApplyError, FormatError};
use crate::format::{
    CODEC_HEATSHRINK, CODEC_STORED, CRC32, Codec, DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_SIZE,
    FRAME_ALIGN, FRAME_HEADER_LEN, FRAME_MAGIC, HS_LOOKAHEAD_BITS, HS_WINDOW_BITS, Header,
    MAX_CHUNKS, TABLE_ENTRY_LEN, TABLE_OFFSET, VERSION, valid_block_size, valid_chunk_size,
};
use crate::mem::MemFlash;

/// Runs of one byte value at least this long become FILL ops. Shorter runs cost the
/// compressor little, and a FILL between two COPYs breaks them apart.
pub const FILL_MIN: usize = 32;

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Block size B: the stream block size the device requests (default 4096).
    pub block_size: u32,
    /// Chunk size C: the erase and resume unit (default 32768, the T2G's large sector).
    pub chunk_size: u32,
    /// How frame payloads are compressed (default heatshrink).
    pub codec: Codec,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            block_size: DEFAULT_BLOCK_SIZE,
            chunk_size: DEFAULT_CHUNK_SIZE,
            codec: Codec::Heatshrink,
        }
    }
}

/// Why a file could not be packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The block size is not a power of two in 1024..=131072.
    BlockSize(u32),
    /// The chunk size is not a power of two of at least 4096.
    ChunkSize(u32),
    /// The new image is empty.
    EmptyImage,
    /// The image needs more chunks than [`MAX_CHUNKS`], or is 4 GB or more.
    ImageTooLarge,
    /// A delta needs a non-empty base.
    EmptyBase,
    /// More than 65,535 frames.
    TooManyBlocks,
    /// The compressor failed (or a 256-byte literal frame did not fit: a bug).
    Compressor,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BlockSize(b) => write!(
                f,
                "block size {b} is not a power of two between 1024 and 131072"
            ),
            EncodeError::ChunkSize(c) => {
                write!(f, "chunk size {c} is not a power of two of at least 4096")
            }
            EncodeError::EmptyImage => f.write_str("the image is empty"),
            EncodeError::ImageTooLarge => write!(
                f,
                "the image needs more than {MAX_CHUNKS} chunks: use a larger chunk size"
            ),
            EncodeError::EmptyBase => f.write_str("a delta needs a non-empty base image"),
            EncodeError::TooManyBlocks => f.write_str("more than 65535 frames"),
            EncodeError::Compressor => f.write_str("the compressor failed"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Packs `image` with no base: LITERAL and FILL ops (the compressor finds repeats within a
/// frame).
pub fn full(image: &[u8], p: &Params) -> Result<Vec<u8>, EncodeError> {
    pack(None, image, p, &spec(p.codec))
}

/// Packs `new` as a delta from `old` (the device's active bank, from its start; all of `old` is
/// the base: its length and SHA-256 go in the header).
pub fn delta(old: &[u8], new: &[u8], p: &Params) -> Result<Vec<u8>, EncodeError> {
    if old.is_empty() {
        return Err(EncodeError::EmptyBase);
    }
    pack(Some(old), new, p, &spec(p.codec))
}

/// Rebuilds the image from a packed file through the no_std [`Applier`] over in-memory NOR
/// flashes, chunk by chunk as the agent does (erase, then frames or fill), and checks the
/// base's and the result's SHA-256 against the header. `old` is ignored for a full image.
/// It allocates the header's image length (at most 4 GB): bound that before handing it an
/// untrusted file.
pub fn apply(packed: &[u8], old: &[u8]) -> Result<Vec<u8>, ApplyError> {
    // Block 0 is B bytes long, and B is in block 0: take B as written, let the parser judge.
    let b = match packed.get(0x0C..0x10) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    };
    let block0 = match packed.get(..b as usize) {
        Some(block0) if valid_block_size(b) => block0,
        _ => packed,
    };
    let header = Header::parse(block0)?;
    // Every block but the last is B long; the last is at least a frame header (or block 0).
    let max_len = header.max_file_len();
    let bs64 = u64::from(header.block_size());
    let min_len = if header.block_count() == 1 {
        bs64
    } else {
        max_len - bs64 + FRAME_HEADER_LEN as u64
    };
    let len = packed.len() as u64;
    if len < min_len || len > max_len {
        return Err(FormatError::Truncated {
            needed: min_len.min(u64::from(u32::MAX)) as u32,
            available: packed.len().min(u32::MAX as usize) as u32,
        }
        .into());
    }
    let base_len = header.base_len() as usize;
    if base_len > 0 {
        if old.len() < base_len {
            return Err(ApplyError::BaseHash);
        }
        if Sha256::digest(&old[..base_len]).as_slice() != header.base_sha256() {
            return Err(ApplyError::BaseHash);
        }
    }
    let mut old_flash = MemFlash::<8>::from_bytes(&old[..base_len]);
    let mut new_flash = MemFlash::<8>::erased(header.image_len() as usize);
    // The new flash starts erased: fill the chunks without frames, then apply every block.
    for c in 0..header.chunk_count() {
        let entry = header.chunk(c).ok_or(FormatError::ChunkIndex(c))?;
        if entry.blocks == 0 {
            fill_chunk(&header, c, &mut new_flash)?;
        }
    }
    let mut applier = Applier::new();
    let bs = header.block_size() as usize;
    for i in 1..header.block_count() {
        let at = i as usize * bs;
        applier.apply_block(
            &header,
            i,
            &packed[at..(at + bs).min(packed.len())],
            &mut old_flash,
            &mut new_flash,
        )?;
    }
    let mut image = new_flash.into_bytes();
    image.truncate(header.image_len() as usize);
    if Sha256::digest(&image).as_slice() != header.image_sha256() {
        return Err(ApplyError::ImageHash);
    }
    Ok(image)
}

/// The codec as the packer uses it: header bytes and a compression function.
pub(crate) struct Spec {
    id: u8,
    a: u8,
    b: u8,
    compress: fn(&[u8]) -> Option<Vec<u8>>,
}

fn spec(codec: Codec) -> Spec {
    match codec {
        Codec::Stored => Spec {
            id: CODEC_STORED,
            a: 0,
            b: 0,
            compress: |ops| Some(ops.to_vec()),
        },
        Codec::Heatshrink => Spec {
            id: CODEC_HEATSHRINK,
            a: HS_WINDOW_BITS,
            b: HS_LOOKAHEAD_BITS,
            compress: heatshrink_compress::<
                { HS_WINDOW_BITS as usize },
                { HS_LOOKAHEAD_BITS as usize },
                { 2 << HS_WINDOW_BITS as usize },
            >,
        },
    }
}

/// Compresses `src` with heatshrink (window 2^W, lookahead 2^L; `BUF` = 2 << W).
fn heatshrink_compress<const W: usize, const L: usize, const BUF: usize>(
    src: &[u8],
) -> Option<Vec<u8>> {
    use heatshrink::encoder::HeatshrinkEncoder;
    use heatshrink::{Finish, Poll, SinkError};
    let mut enc = Box::new(HeatshrinkEncoder::<W, L, BUF>::new());
    let mut out = Vec::with_capacity(src.len() / 2 + 16);
    let mut buf = [0u8; 1024];
    let mut drain = |enc: &mut HeatshrinkEncoder<W, L, BUF>, out: &mut Vec<u8>| loop {
        match enc.poll(&mut buf) {
            Ok(Poll::More(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Poll::Empty(n)) => {
                out.extend_from_slice(&buf[..n]);
                return Some(());
            }
            Err(_) => return None,
        }
    };
    let mut i = 0;
    while i < src.len() {
        match enc.sink(&src[i..]) {
            Ok(n) => i += n,
            Err(SinkError::Full) => {}
            Err(SinkError::Misuse) => return None,
        }
        drain(&mut enc, &mut out)?;
    }
    while enc.finish() == Finish::More {
        drain(&mut enc, &mut out)?;
    }
    Some(out)
}

/// For choosing codec parameters by measurement (the crate docs' table): the packed length
/// with heatshrink window `w` (8..=13) and lookahead `l` (3..=7) bits. Files made with other
/// parameters than [`HS_WINDOW_BITS`]/[`HS_LOOKAHEAD_BITS`] are not decodable by this build:
/// measure them, do not ship them.
#[doc(hidden)]
pub fn measure_heatshrink(
    old: Option<&[u8]>,
    new: &[u8],
    p: &Params,
    w: u8,
    l: u8,
) -> Result<Vec<u8>, EncodeError> {
    macro_rules! pick {
        ($($w:literal),*; $ls:tt) => {
            match w {
                $($w => pick!(@l $w; $ls),)*
                _ => None,
            }
        };
        (@l $w:literal; [$($l:literal),*]) => {
            match l {
                $($l => Some(heatshrink_compress::<$w, $l, { 2 << $w }> as fn(&[u8]) -> Option<Vec<u8>>),)*
                _ => None,
            }
        };
    }
    let compress = pick!(8, 9, 10, 11, 12, 13; [3, 4, 5, 6, 7]).ok_or(EncodeError::Compressor)?;
    let s = Spec {
        id: CODEC_HEATSHRINK,
        a: w,
        b: l,
        compress,
    };
    pack(old, new, p, &s)
}

/// What produces a range of the new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// `len` bytes of `value`.
    Fill { start: usize, len: usize, value: u8 },
    /// `len` bytes from old at `old` (plus diff).
    Copy {
        start: usize,
        len: usize,
        old: usize,
    },
    /// `len` new bytes as they are.
    Lit { start: usize, len: usize },
}

impl Seg {
    fn start(&self) -> usize {
        match *self {
            Seg::Fill { start, .. } | Seg::Copy { start, .. } | Seg::Lit { start, .. } => start,
        }
    }

    fn len(&self) -> usize {
        match *self {
            Seg::Fill { len, .. } | Seg::Copy { len, .. } | Seg::Lit { len, .. } => len,
        }
    }

    /// The part of the segment inside `[lo, hi)`.
    fn clip(&self, lo: usize, hi: usize) -> Option<Seg> {
        let s = self.start().max(lo);
        let e = (self.start() + self.len()).min(hi);
        if s >= e {
            return None;
        }
        let len = e - s;
        Some(match *self {
            Seg::Fill { value, .. } => Seg::Fill {
                start: s,
                len,
                value,
            },
            Seg::Copy { start, old, .. } => Seg::Copy {
                start: s,
                len,
                old: old + (s - start),
            },
            Seg::Lit { .. } => Seg::Lit { start: s, len },
        })
    }
}

/// Runs of one byte value of at least [`FILL_MIN`] bytes: `(start, end, value)`.
fn fill_runs(new: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < new.len() {
        let v = new[i];
        let mut j = i + 1;
        while j < new.len() && new[j] == v {
            j += 1;
        }
        if j - i >= FILL_MIN {
            runs.push((i, j, v));
        }
        i = j;
    }
    runs
}

/// Segments covering `new`: COPY/LITERAL from bsdiff matching (LITERAL only without a base),
/// with the fill runs laid over them.
fn segments(old: Option<&[u8]>, new: &[u8]) -> Vec<Seg> {
    let mut base = Vec::new();
    let mut at = 0;
    if let Some(old) = old {
        let _ = bidiff::diff(old, new, &bidiff::DiffParams::default(), |m| {
            // Matches tile the new image in order; anything else would be a bidiff bug, and
            // is covered by LITERAL rather than trusted.
            if m.add_new_start == at
                && m.add_old_start + m.add_length <= old.len()
                && m.copy_start() <= m.copy_end
                && m.copy_end <= new.len()
            {
                if m.add_length > 0 {
                    base.push(Seg::Copy {
                        start: at,
                        len: m.add_length,
                        old: m.add_old_start,
                    });
                }
                if m.copy_end > m.copy_start() {
                    base.push(Seg::Lit {
                        start: m.copy_start(),
                        len: m.copy_end - m.copy_start(),
                    });
                }
                at = m.copy_end;
            }
            Ok::<(), Infallible>(())
        });
    }
    if at < new.len() {
        base.push(Seg::Lit {
            start: at,
            len: new.len() - at,
        });
    }
    // Lay the fill runs over the base segments.
    let runs = fill_runs(new);
    let mut out = Vec::with_capacity(base.len() + 2 * runs.len());
    let mut r = 0;
    for seg in base {
        let (mut lo, hi) = (seg.start(), seg.start() + seg.len());
        while lo < hi {
            while r < runs.len() && runs[r].1 <= lo {
                r += 1;
            }
            match runs.get(r) {
                Some(&(rs, re, value)) if rs < hi => {
                    if rs > lo {
                        out.extend(seg.clip(lo, rs));
                    }
                    let fe = re.min(hi);
                    let fs = rs.max(lo);
                    match out.last_mut() {
                        Some(Seg::Fill {
                            start,
                            len,
                            value: v,
                        }) if *v == value && *start + *len == fs => *len += fe - fs,
                        _ => out.push(Seg::Fill {
                            start: fs,
                            len: fe - fs,
                            value,
                        }),
                    }
                    lo = fe;
                }
                _ => {
                    out.extend(seg.clip(lo, hi));
                    lo = hi;
                }
            }
        }
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> Option<u32> {
    let v = i32::try_from(v).ok()?;
    Some(((v << 1) ^ (v >> 31)) as u32)
}

/// A COPY op with its diff runs (`None` if the old position is out of zigzag range).
fn copy_op(out: &mut Vec<u8>, diff: &[u8], delta: i64) -> Option<()> {
    out.push(OP_COPY);
    put_varint(out, diff.len() as u32);
    put_varint(out, zigzag(delta)?);
    let mut i = 0;
    while i < diff.len() {
        let s = i;
        while i < diff.len() && diff[i] == 0 {
            i += 1;
        }
        let skip = i - s;
        let n_start = i;
        // A run of changed bytes, bridging zero gaps shorter than a new {skip, n} pair costs.
        while i < diff.len() {
            if diff[i] != 0 {
                i += 1;
                continue;
            }
            let z = diff[i..].iter().take_while(|&&d| d == 0).count();
            if z < 3 && i + z < diff.len() {
                i += z;
            } else {
                break;
            }
        }
        put_varint(out, skip as u32);
        put_varint(out, (i - n_start) as u32);
        out.extend_from_slice(&diff[n_start..i]);
    }
    Some(())
}

fn literal_op(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(OP_LITERAL);
    put_varint(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// The op stream producing `new[lo..hi]`.
fn ops_for(segs: &[Seg], old: &[u8], new: &[u8], lo: usize, hi: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(hi - lo + 16);
    let mut old_cursor = lo as i64;
    let first = segs.partition_point(|s| s.start() + s.len() <= lo);
    let mut copy = Vec::new();
    let mut diff = Vec::new();
    for seg in segs[first..].iter().take_while(|s| s.start() < hi) {
        let Some(seg) = seg.clip(lo, hi) else {
            continue;
        };
        match seg {
            Seg::Fill { len, value, .. } => {
                out.push(OP_FILL);
                put_varint(&mut out, len as u32);
                out.push(value);
            }
            Seg::Lit { start, len } => literal_op(&mut out, &new[start..start + len]),
            Seg::Copy { start, len, old: o } => {
                diff.clear();
                diff.extend(
                    new[start..start + len]
                        .iter()
                        .zip(&old[o..o + len])
                        .map(|(n, o)| n.wrapping_sub(*o)),
                );
                copy.clear();
                copy_op(&mut copy, &diff, o as i64 - old_cursor)?;
                // A poor match whose diff costs more than the bytes themselves goes as LITERAL.
                if copy.len() > len + 6 {
                    literal_op(&mut out, &new[start..start + len]);
                } else {
                    out.extend_from_slice(&copy);
                    old_cursor = (o + len) as i64;
                }
            }
        }
    }
    Some(out)
}

/// The frame (header and payload, unpadded) for `new[lo..hi]` if it is at most `cap` bytes.
#[allow(clippy::too_many_arguments)]
fn frame(
    segs: &[Seg],
    old: &[u8],
    new: &[u8],
    chunk: u16,
    lo: usize,
    hi: usize,
    cap: usize,
    s: &Spec,
) -> Result<Option<Vec<u8>>, EncodeError> {
    let ops = ops_for(segs, old, new, lo, hi).ok_or(EncodeError::Compressor)?;
    let payload = (s.compress)(&ops).ok_or(EncodeError::Compressor)?;
    if FRAME_HEADER_LEN + payload.len() > cap {
        return Ok(None);
    }
    let mut b = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    b.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    b.extend_from_slice(&chunk.to_le_bytes());
    b.extend_from_slice(&(lo as u32).to_le_bytes());
    b.extend_from_slice(&((hi - lo) as u32).to_le_bytes());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&payload);
    Ok(Some(b))
}

/// A frame and the output offset it starts at.
type Framed = (usize, Vec<u8>);

/// The frames of `new[cs..ce]` (one chunk or its tail), cut greedily: the first at most
/// `first_cap` bytes (the room left in the block being filled), the others at most `cap` (a
/// whole block). Empty when not even one page fits in `first_cap` (< `cap`): the caller
/// starts a new block.
#[allow(clippy::too_many_arguments)]
fn chunk_frames(
    segs: &[Seg],
    old: &[u8],
    new: &[u8],
    chunk: u16,
    cs: usize,
    ce: usize,
    first_cap: usize,
    cap: usize,
    s: &Spec,
) -> Result<Vec<Framed>, EncodeError> {
    let align = FRAME_ALIGN as usize;
    let mut frames = Vec::new();
    let mut lo = cs;
    while lo < ce {
        let limit = if frames.is_empty() { first_cap } else { cap };
        let end_of = |k: usize| (lo + k * align).min(ce);
        let kmax = (ce - lo).div_ceil(align);
        if let Some(f) = frame(segs, old, new, chunk, lo, ce, limit, s)? {
            frames.push((lo, f));
            break;
        }
        // Largest k in [1, kmax) that fits; k = 1 is the fallback below if none does.
        let (mut good, mut bad) = (0, kmax);
        let mut best = None;
        while bad - good > 1 {
            let mid = (good + bad) / 2;
            match frame(segs, old, new, chunk, lo, end_of(mid), limit, s)? {
                Some(f) => {
                    good = mid;
                    best = Some(f);
                }
                None => bad = mid,
            }
        }
        let f = match best {
            Some(f) => f,
            None if limit < cap => return Ok(frames),
            None => {
                // Not even one page fits as planned: send it as one LITERAL, which always fits
                // (B ≥ 1024, a 256-byte literal compresses to at most ~300 bytes).
                good = 1;
                let lit = [Seg::Lit {
                    start: lo,
                    len: end_of(1) - lo,
                }];
                frame(&lit, old, new, chunk, lo, end_of(1), cap, s)?
                    .ok_or(EncodeError::Compressor)?
            }
        };
        frames.push((lo, f));
        lo = end_of(good);
    }
    Ok(frames)
}

/// Room in a block below which a frame that does not fit is not cut to fill it: a new block
/// starts instead (a frame header and a few ops are not worth a re-encode).
const SPLIT_MIN: usize = 128;

/// A chunk's fill byte and frames.
type ChunkResult = Result<(u8, Vec<Framed>), EncodeError>;

fn pack(old: Option<&[u8]>, new: &[u8], p: &Params, s: &Spec) -> Result<Vec<u8>, EncodeError> {
    if !valid_block_size(p.block_size) {
        return Err(EncodeError::BlockSize(p.block_size));
    }
    if !valid_chunk_size(p.chunk_size) {
        return Err(EncodeError::ChunkSize(p.chunk_size));
    }
    if new.is_empty() {
        return Err(EncodeError::EmptyImage);
    }
    let image_len = u32::try_from(new.len()).map_err(|_| EncodeError::ImageTooLarge)?;
    let chunks = image_len.div_ceil(p.chunk_size) as usize;
    if chunks > MAX_CHUNKS {
        return Err(EncodeError::ImageTooLarge);
    }
    let bs = p.block_size as usize;
    let base_len = match old {
        Some(o) => u32::try_from(o.len()).map_err(|_| EncodeError::ImageTooLarge)?,
        None => 0,
    };
    let old_bytes = old.unwrap_or(&[]);
    let segs = segments(old, new);
    let cs = p.chunk_size as usize;

    // Chunks are independent: pack them on every core.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; chunks]);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(chunks) {
            scope.spawn(|| {
                loop {
                    let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if c >= chunks {
                        break;
                    }
                    let lo = c * cs;
                    let hi = (lo + cs).min(new.len());
                    let first = new[lo];
                    let r = if new[lo..hi].iter().all(|&b| b == first) {
                        Ok((first, Vec::new()))
                    } else {
                        chunk_frames(&segs, old_bytes, new, c as u16, lo, hi, bs, bs, s)
                            .map(|f| (0, f))
                    };
                    if let Ok(mut all) = results.lock() {
                        all[c] = Some(r);
                    }
                }
            });
        }
    });
    let per_chunk: Vec<ChunkResult> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or(Err(EncodeError::Compressor)))
        .collect();

    let mut h = vec![0u8; bs];
    h[0..4].copy_from_slice(&crate::MAGIC);
    h[4] = VERSION;
    h[5] = u8::from(old.is_some());
    h[6] = s.id;
    h[7] = s.a;
    h[8] = s.b;
    h[0x0C..0x10].copy_from_slice(&p.block_size.to_le_bytes());
    h[0x10..0x14].copy_from_slice(&image_len.to_le_bytes());
    h[0x14..0x18].copy_from_slice(&p.chunk_size.to_le_bytes());
    h[0x18..0x1A].copy_from_slice(&(chunks as u16).to_le_bytes());
    h[0x1C..0x20].copy_from_slice(&base_len.to_le_bytes());
    h[0x20..0x40].copy_from_slice(&Sha256::digest(new));
    if let Some(o) = old {
        h[0x40..0x60].copy_from_slice(&Sha256::digest(o));
    }
    // Frames into blocks, in chunk order: a frame goes into the block being filled if it fits;
    // if not, and the block has room worth it, the rest of its chunk is cut again so that its
    // first frame fills that room; else a new block starts.
    let mut body: Vec<u8> = Vec::new();
    let mut cur: Vec<u8> = Vec::with_capacity(bs);
    let flush = |body: &mut Vec<u8>, cur: &mut Vec<u8>| {
        cur.resize(bs, 0);
        body.append(cur);
    };
    for (c, r) in per_chunk.into_iter().enumerate() {
        let (fill, mut frames) = r?;
        let e = TABLE_OFFSET + c * TABLE_ENTRY_LEN;
        h[e + 4] = fill;
        if frames.is_empty() {
            continue;
        }
        let ce = ((c + 1) * cs).min(new.len());
        let mut first_block = None;
        let mut i = 0;
        while i < frames.len() {
            let room = bs - cur.len();
            if frames[i].1.len() > room && !cur.is_empty() && room >= SPLIT_MIN {
                let lo = frames[i].0;
                let again = chunk_frames(&segs, old_bytes, new, c as u16, lo, ce, room, bs, s)?;
                if !again.is_empty() {
                    frames.truncate(i);
                    frames.extend(again);
                }
            }
            if frames[i].1.len() > bs - cur.len() {
                flush(&mut body, &mut cur);
            }
            cur.extend_from_slice(&frames[i].1);
            let block = 1 + body.len() / bs;
            first_block.get_or_insert(block);
            i += 1;
        }
        let first = first_block.unwrap_or(1);
        let last = 1 + body.len() / bs;
        if last >= usize::from(u16::MAX) {
            return Err(EncodeError::TooManyBlocks);
        }
        h[e..e + 2].copy_from_slice(&(first as u16).to_le_bytes());
        h[e + 2..e + 4].copy_from_slice(&((last + 1 - first) as u16).to_le_bytes());
    }
    // The last block ends with its last frame: padding it would only add bytes to the wire.
    body.append(&mut cur);
    let crc_at = TABLE_OFFSET + chunks * TABLE_ENTRY_LEN;
    let crc = CRC32.checksum(&h[..crc_at]);
    h[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&body);
    Ok(h)
}
