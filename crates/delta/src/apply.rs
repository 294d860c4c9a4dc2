//! The device side: decode one frame into the new bank, in fixed RAM, reading the old bank in
//! small pieces straight into the output page.
//!
//! Data path of one frame:
//!
//! ```text
//!  payload ──► heatshrink decoder ──► 64-byte poll buffer ──► op parser
//!              (2^W-byte window)                               │ COPY: old.read() into the page,
//!                                                              │       diff bytes added in place
//!                                                              │ LITERAL / FILL: into the page
//!                                                              ▼
//!                                          256-byte page ──► new.write() per WRITE_SIZE word,
//!                                                            all-0xFF words skipped
//! ```

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use heatshrink::decoder::HeatshrinkDecoder;
use heatshrink::{Poll, SinkError};

use crate::error::{ApplyError, Corrupt, FormatError};
use crate::format::{Codec, Frame, FrameInfo, HS_LOOKAHEAD_BITS, HS_WINDOW_BITS, Header, frames};

/// The output page: frames start on a multiple of it, writes leave from it.
const PAGE: usize = 256;
/// Decompressed bytes handed to the op parser at a time.
const POLL: usize = 64;
/// The decoder's input buffer.
const HS_INPUT: usize = 32;
const HS_W: usize = HS_WINDOW_BITS as usize;
const HS_L: usize = HS_LOOKAHEAD_BITS as usize;
type Decoder = HeatshrinkDecoder<HS_W, HS_L, HS_INPUT, { 1 << HS_W }>;

/// Op tags of the op stream.
pub(crate) const OP_COPY: u8 = 0x01;
pub(crate) const OP_LITERAL: u8 = 0x02;
pub(crate) const OP_FILL: u8 = 0x03;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Tag,
    CopyLen,
    CopyDelta,
    CopySkip,
    CopyN,
    CopyRun,
    LiteralLen,
    Literal,
    FillLen,
    FillValue,
}

/// The op parser and output position of the frame being applied.
#[derive(Debug)]
struct Ops {
    st: St,
    var_acc: u32,
    var_shift: u8,
    /// Next output offset (absolute).
    at: u32,
    /// End of the frame's output.
    end: u32,
    /// Output offset of `page[0]`.
    page_base: u32,
    /// Bytes in the page.
    pos: usize,
    base_len: u32,
    old_cursor: u32,
    old_pos: u32,
    /// Bytes of the current COPY not yet covered.
    copy_rem: u32,
    /// Bytes of the current op (COPY length, LITERAL/FILL remaining, diff run remaining).
    len: u32,
    /// Old bytes read into the page ahead of the diff bytes that go onto them.
    loaded: usize,
}

impl Ops {
    const fn idle() -> Self {
        Ops {
            st: St::Tag,
            var_acc: 0,
            var_shift: 0,
            at: 0,
            end: 0,
            page_base: 0,
            pos: 0,
            base_len: 0,
            old_cursor: 0,
            old_pos: 0,
            copy_rem: 0,
            len: 0,
            loaded: 0,
        }
    }
}

/// Applies frames, one at a time, in fixed RAM: the struct is all the state (a test asserts its
/// size; see the crate docs for the figure). Reuse one for a whole update.
pub struct Applier {
    dec: Decoder,
    poll: [u8; POLL],
    page: [u8; PAGE],
    ops: Ops,
}

impl Default for Applier {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Applier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Applier").field("ops", &self.ops).finish()
    }
}

fn read_err<E: NorFlashError>(e: E) -> ApplyError {
    ApplyError::Read(e.kind())
}

fn write_err<E: NorFlashError>(e: E) -> ApplyError {
    ApplyError::Write(e.kind())
}

/// Writes `buf[..len]` at `base`, padded with 0xFF to whole `N::WRITE_SIZE` words; words that
/// are all 0xFF are skipped (the chunk was erased: they already hold 0xFF).
fn write_page<N: NorFlash>(
    new: &mut N,
    base: u32,
    buf: &mut [u8; PAGE],
    len: usize,
) -> Result<(), ApplyError> {
    let ws = N::WRITE_SIZE;
    let padded = len.div_ceil(ws) * ws;
    buf[len..padded].fill(0xFF);
    let mut run: Option<usize> = None;
    let mut w = 0;
    while w <= padded {
        let erased = w == padded || buf[w..w + ws].iter().all(|&b| b == 0xFF);
        match (run, erased) {
            (None, false) => run = Some(w),
            (Some(start), true) => {
                new.write(base + start as u32, &buf[start..w])
                    .map_err(write_err)?;
                run = None;
            }
            _ => {}
        }
        w += ws;
    }
    Ok(())
}

/// Checks at compile time that the page is whole write words and that the old image reads
/// byte by byte (so old bytes go straight into the page at any output position).
const fn check_geometry<O: ReadNorFlash, N: NorFlash>() {
    assert!(N::WRITE_SIZE > 0 && PAGE.is_multiple_of(N::WRITE_SIZE));
    assert!(O::READ_SIZE == 1);
}

impl Applier {
    /// A fresh applier. Not `const`: the decoder's constructor is not.
    pub fn new() -> Self {
        Applier {
            dec: Decoder::new(),
            poll: [0; POLL],
            page: [0; PAGE],
            ops: Ops::idle(),
        }
    }

    /// Decodes `frame` (from [`frames`]) and writes its output into `new` at its offset (the
    /// caller erased the frame's chunk before the chunk's first frame). `old` is the base
    /// image (the active bank, from offset 0; any flash for a full image). FILL 0xFF writes
    /// nothing, and neither does any all-0xFF write word. Writes are whole `N::WRITE_SIZE`
    /// words (≤ 256, a divisor of 256; the tail word at the image's end is padded with 0xFF, so
    /// `new` must extend to the next word boundary).
    ///
    /// On an error the frame's output may be partly written: the agent erases the chunk and
    /// fetches its blocks again.
    pub fn apply_frame<O: ReadNorFlash, N: NorFlash>(
        &mut self,
        header: &Header,
        frame: &Frame<'_>,
        old: &mut O,
        new: &mut N,
    ) -> Result<FrameInfo, ApplyError> {
        const { check_geometry::<O, N>() };
        let (info, payload) = (frame.info(), frame.payload());
        let end = info.offset + info.len;
        let ws = N::WRITE_SIZE as u64;
        if u64::from(end).div_ceil(ws) * ws > new.capacity() as u64 {
            return Err(ApplyError::Write(NorFlashErrorKind::OutOfBounds));
        }
        self.ops = Ops {
            at: info.offset,
            end,
            page_base: info.offset,
            base_len: header.base_len(),
            old_cursor: info.offset,
            ..Ops::idle()
        };
        match header.codec() {
            Codec::Stored => feed(&mut self.ops, &mut self.page, payload, old, new)?,
            Codec::Heatshrink => {
                self.dec.reset();
                let mut i = 0;
                while i < payload.len() {
                    match self.dec.sink(&payload[i..]) {
                        Ok(n) => i += n,
                        Err(SinkError::Full) => {}
                        Err(SinkError::Misuse) => return Err(Corrupt::Compressed.into()),
                    }
                    loop {
                        let (n, more) = match self.dec.poll(&mut self.poll) {
                            Ok(Poll::More(n)) => (n, true),
                            Ok(Poll::Empty(n)) => (n, false),
                            Err(_) => return Err(Corrupt::Compressed.into()),
                        };
                        feed(&mut self.ops, &mut self.page, &self.poll[..n], old, new)?;
                        if !more {
                            break;
                        }
                    }
                }
                if self.dec.finish() != heatshrink::Finish::Done {
                    return Err(Corrupt::Compressed.into());
                }
            }
        }
        let ops = &self.ops;
        if ops.st != St::Tag {
            return Err(Corrupt::TruncatedOp.into());
        }
        if ops.at != ops.end {
            return Err(Corrupt::Underflow.into());
        }
        if ops.pos > 0 {
            write_page(new, ops.page_base, &mut self.page, ops.pos)?;
        }
        Ok(info)
    }

    /// Applies every frame of block `block_index` in order ([`frames`], then
    /// [`Applier::apply_frame`]), for a caller that erased all the block's chunks first (the
    /// host's rebuild, the fuzz target). The agent applies frame by frame instead: it skips
    /// the frames of chunks a reset left complete.
    pub fn apply_block<O: ReadNorFlash, N: NorFlash>(
        &mut self,
        header: &Header,
        block_index: u32,
        block: &[u8],
        old: &mut O,
        new: &mut N,
    ) -> Result<(), ApplyError> {
        for f in frames(header, block_index, block)? {
            self.apply_frame(header, &f?, old, new)?;
        }
        Ok(())
    }
}

/// Writes the page once it is full and starts the next.
fn advance<N: NorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    n: usize,
    new: &mut N,
) -> Result<(), ApplyError> {
    ops.pos += n;
    ops.at += n as u32;
    if ops.pos == PAGE {
        write_page(new, ops.page_base, page, PAGE)?;
        ops.page_base += PAGE as u32;
        ops.pos = 0;
    }
    Ok(())
}

/// Reads `n` old bytes at `ops.old_pos` into the page (the range was checked at the COPY).
fn load_old<O: ReadNorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    n: usize,
    old: &mut O,
) -> Result<(), ApplyError> {
    old.read(ops.old_pos, &mut page[ops.pos..ops.pos + n])
        .map_err(read_err)?;
    ops.old_pos += n as u32;
    Ok(())
}

/// Copies `n` old bytes unchanged to the output.
fn emit_old<O: ReadNorFlash, N: NorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    mut n: u32,
    old: &mut O,
    new: &mut N,
) -> Result<(), ApplyError> {
    while n > 0 {
        let k = (n as usize).min(PAGE - ops.pos);
        load_old(ops, page, k, old)?;
        advance(ops, page, k, new)?;
        n -= k as u32;
    }
    Ok(())
}

fn emit_fill<N: NorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    mut n: u32,
    value: u8,
    new: &mut N,
) -> Result<(), ApplyError> {
    while n > 0 {
        let k = (n as usize).min(PAGE - ops.pos);
        page[ops.pos..ops.pos + k].fill(value);
        advance(ops, page, k, new)?;
        n -= k as u32;
    }
    Ok(())
}

/// Checks that `len` more output bytes stay inside the frame.
fn room(ops: &Ops, len: u32) -> Result<(), ApplyError> {
    if len > ops.end - ops.at {
        return Err(Corrupt::Overflow.into());
    }
    Ok(())
}

/// Feeds decompressed op-stream bytes to the parser, writing output as it completes.
fn feed<O: ReadNorFlash, N: NorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    mut input: &[u8],
    old: &mut O,
    new: &mut N,
) -> Result<(), ApplyError> {
    while let Some((&b, rest)) = input.split_first() {
        match ops.st {
            St::Tag => {
                input = rest;
                ops.st = match b {
                    OP_COPY => St::CopyLen,
                    OP_LITERAL => St::LiteralLen,
                    OP_FILL => St::FillLen,
                    t => return Err(Corrupt::UnknownTag(t).into()),
                };
            }
            St::Literal => {
                let k = input.len().min(ops.len as usize).min(PAGE - ops.pos);
                page[ops.pos..ops.pos + k].copy_from_slice(&input[..k]);
                input = &input[k..];
                ops.len -= k as u32;
                advance(ops, page, k, new)?;
                if ops.len == 0 {
                    ops.st = St::Tag;
                }
            }
            St::CopyRun => {
                if ops.loaded == 0 {
                    let k = (ops.len as usize).min(PAGE - ops.pos);
                    load_old(ops, page, k, old)?;
                    ops.loaded = k;
                }
                let k = input.len().min(ops.loaded);
                for (o, d) in page[ops.pos..ops.pos + k].iter_mut().zip(&input[..k]) {
                    *o = o.wrapping_add(*d);
                }
                input = &input[k..];
                ops.loaded -= k;
                ops.len -= k as u32;
                ops.copy_rem -= k as u32;
                advance(ops, page, k, new)?;
                if ops.len == 0 {
                    ops.st = if ops.copy_rem == 0 {
                        St::Tag
                    } else {
                        St::CopySkip
                    };
                }
            }
            St::FillValue => {
                input = rest;
                emit_fill(ops, page, ops.len, b, new)?;
                ops.st = St::Tag;
            }
            St::CopyLen
            | St::CopyDelta
            | St::CopySkip
            | St::CopyN
            | St::LiteralLen
            | St::FillLen => {
                input = rest;
                if ops.var_shift == 28 && b > 0x0F {
                    return Err(Corrupt::Varint.into());
                }
                ops.var_acc |= u32::from(b & 0x7F) << ops.var_shift;
                if b & 0x80 != 0 {
                    ops.var_shift += 7;
                    if ops.var_shift > 28 {
                        return Err(Corrupt::Varint.into());
                    }
                    continue;
                }
                let v = ops.var_acc;
                ops.var_acc = 0;
                ops.var_shift = 0;
                varint_done(ops, page, v, old, new)?;
            }
        }
    }
    Ok(())
}

/// Acts on a complete varint in state `ops.st`.
fn varint_done<O: ReadNorFlash, N: NorFlash>(
    ops: &mut Ops,
    page: &mut [u8; PAGE],
    v: u32,
    old: &mut O,
    new: &mut N,
) -> Result<(), ApplyError> {
    match ops.st {
        St::CopyLen => {
            room(ops, v)?;
            ops.len = v;
            ops.st = St::CopyDelta;
        }
        St::CopyDelta => {
            let delta = i64::from((v >> 1) as i32 ^ -((v & 1) as i32));
            let start = i64::from(ops.old_cursor) + delta;
            let end = start + i64::from(ops.len);
            if start < 0 || end > i64::from(ops.base_len) {
                return Err(ApplyError::OldOutOfRange);
            }
            ops.old_pos = start as u32;
            ops.old_cursor = end as u32;
            ops.copy_rem = ops.len;
            ops.st = if ops.len == 0 { St::Tag } else { St::CopySkip };
        }
        St::CopySkip => {
            if v > ops.copy_rem {
                return Err(Corrupt::Overflow.into());
            }
            emit_old(ops, page, v, old, new)?;
            ops.copy_rem -= v;
            ops.st = St::CopyN;
        }
        St::CopyN => {
            if v > ops.copy_rem {
                return Err(Corrupt::Overflow.into());
            }
            ops.len = v;
            ops.loaded = 0;
            ops.st = if v > 0 {
                St::CopyRun
            } else if ops.copy_rem == 0 {
                St::Tag
            } else {
                St::CopySkip
            };
        }
        St::LiteralLen => {
            room(ops, v)?;
            ops.len = v;
            ops.st = if v == 0 { St::Tag } else { St::Literal };
        }
        St::FillLen => {
            room(ops, v)?;
            ops.len = v;
            ops.st = St::FillValue;
        }
        St::Tag | St::Literal | St::CopyRun | St::FillValue => {}
    }
    Ok(())
}

/// For a chunk without frames: writes its fill byte over the chunk's output (nothing for 0xFF,
/// which the erase already left). The caller erased the chunk first.
pub fn fill_chunk<N: NorFlash>(header: &Header, c: u32, new: &mut N) -> Result<(), ApplyError> {
    const { assert!(N::WRITE_SIZE > 0 && PAGE.is_multiple_of(N::WRITE_SIZE)) };
    let entry = header.chunk(c).ok_or(FormatError::ChunkIndex(c))?;
    if entry.blocks != 0 {
        return Err(ApplyError::ChunkHasFrames(c));
    }
    let (start, end) = header.chunk_range(c).ok_or(FormatError::ChunkIndex(c))?;
    if entry.fill == 0xFF {
        return Ok(());
    }
    let ws = N::WRITE_SIZE as u64;
    if u64::from(end).div_ceil(ws) * ws > new.capacity() as u64 {
        return Err(ApplyError::Write(NorFlashErrorKind::OutOfBounds));
    }
    let mut page = [entry.fill; PAGE];
    let mut at = start;
    while at < end {
        let k = ((end - at) as usize).min(PAGE);
        page[..k].fill(entry.fill);
        write_page(new, at, &mut page, k)?;
        at += k as u32;
    }
    Ok(())
}
