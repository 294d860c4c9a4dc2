//! Packed files (`ferrota-delta`): the job's firmware as a sparse and compressed full image, or
//! as a delta rebuilt from the running bank, instead of the 4 MB bank image itself.
//!
//! # Choosing the file
//! `files[0]` is the bank image, the only entry AWS's own device reads. Each further entry with
//! `"encoding":"frpk1"` is another encoding of the same image (its signature value is
//! `files[0]`'s: it signs the image the file rebuilds). The agent takes, in this order:
//! 1. a delta whose `baseSha256` is the SHA-256 of the first `baseSize` bytes of the bank it
//!    runs from — hashed here, before anything is written, so a device whose active bank is not
//!    the base (a different build of the same version, a bank changed since its report) falls
//!    back by itself;
//! 2. the packed full image;
//! 3. `files[0]`.
//!
//! An entry is only considered when its `blockSize` equals [`Config::block_size`] (the frames
//! are cut to the block the device asks with), its `fileType` and signature equal `files[0]`'s,
//! it is smaller than `files[0]`, and [`Config::packed`] is on.
//!
//! # Download
//! Block 0 (the header and its chunk table) is asked for alone first: until it is in, no other
//! block can be placed. Then the chunks' blocks as for a bank image: the CM0+ region's chunks
//! first (their frames come first in the file), checked from flash, the rest after. Each frame
//! decodes on its own into its place in the inactive bank, reading the old image from the
//! active bank for a delta. A chunk is erased before its first frame in a session and marked in
//! the resume record when the last block holding its frames is written, exactly as a bank
//! image's chunk is: after a reset only unmarked chunks are erased and fetched again (block 0
//! always comes again, it is one block). A block may hold frames of several chunks (small
//! chunks share blocks); one shared between a marked chunk and an unmarked one is fetched
//! again and only the unmarked chunk's frames are decoded. A chunk with no frames (all one byte value) is erased and filled without a byte
//! on the wire: those of the CM0+ region at once, the others when the last frame is in.
//!
//! # Failures
//! A header that disagrees with the job document (image length, a delta's base) or a frame that
//! does not decode is `0x000000e3: 0x00000002` (the file does not rebuild the signed image); the
//! rebuilt image then goes through the same checks as a downloaded one (hash read back from
//! flash, OTA signature, CM0+ region, version record), so a frame that decodes into the wrong
//! bytes is `0x000000e3: 0x00000000` as a tampered image is. The old image keeps running in
//! every case.

use core::cell::RefCell;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use ferrota_delta::{Applier, Header, Kind};
use ferrota_proto::job::FileEntry;

use super::*;

/// The job document's `encoding` of Ferrota's packed files (format 1).
pub const PACKED_ENCODING: &str = "frpk1";
/// Sub-code of `0x000000e3` when a packed file does not rebuild the signed image: its header
/// disagrees with the job document, or a frame does not decode.
pub const SUB_PACKED_CORRUPT: u32 = 2;
/// The chunk (resume unit) of a packed file: the T2G's large sector, as the format requires.
pub const PACKED_CHUNK: u32 = 0x8000;

/// What the agent downloads for an OTA job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    /// `files[0]`: the bank image as it is.
    Image,
    /// A packed full image (sparse and compressed).
    Packed,
    /// A delta from the image in the active bank.
    Delta,
}

impl FileEncoding {
    /// `image`, `packed` or `delta`: one spelling for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FileEncoding::Image => "image",
            FileEncoding::Packed => "packed",
            FileEncoding::Delta => "delta",
        }
    }
}

/// A packed download's state beside the block schedule.
pub(super) struct Packed {
    /// The header, once block 0 is in.
    pub header: Option<Header>,
    /// The frame decoder (fixed RAM).
    pub applier: Applier,
    /// A delta's base as the job document named it (checked against block 0's header);
    /// `None`: the packed full image.
    pub base: Option<[u8; 32]>,
    /// Chunks with no frames still to erase and fill.
    pub fill_pending: ChunkSet<4>,
    /// Chunks complete (restored from the resume record, or all their blocks in): their
    /// frames in a block fetched again for another chunk are skipped.
    pub done: ChunkSet<4>,
}

impl Packed {
    /// Delta or packed full image.
    pub(super) fn encoding(&self) -> FileEncoding {
        if self.base.is_some() {
            FileEncoding::Delta
        } else {
            FileEncoding::Packed
        }
    }
}

/// The alternative the agent chose.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choice {
    pub file_id: u8,
    pub file_size: u32,
    pub encoding: FileEncoding,
    pub base: Option<[u8; 32]>,
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

impl<'a, V: BootVerifier> Agent<'a, V> {
    /// The packed alternative to download instead of `image` (`files[0]`), if any fits.
    pub(super) fn choose_packed<P: Platform>(
        &mut self,
        ota: &OtaJob<'_>,
        image: &FileEntry<'_>,
        platform: &mut P,
    ) -> Option<Choice> {
        if !self.cfg.packed {
            return None;
        }
        let sig = image.signature_for(self.cfg.signature_key)?;
        let mut full = None;
        // The digest of the active bank's first `n` bytes, computed once per distinct n.
        let mut hashed: Option<(u32, [u8; 32])> = None;
        for f in ota.files().skip(1) {
            let o = f.object();
            let encoding = o.get("encoding").and_then(|v| v.as_str());
            if !encoding.is_some_and(|e| e.eq_str(PACKED_ENCODING))
                || o.get("blockSize").and_then(|v| v.as_u64())
                    != Some(u64::from(self.cfg.block_size))
                || f.file_type != image.file_type
                || f.signature_for(self.cfg.signature_key).map(|s| s.raw()) != Some(sig.raw())
                // Not smaller than the image (incompressible code): the image itself is cheaper
                // to fetch and needs no decoding.
                || f.file_size >= image.file_size
            {
                continue;
            }
            let base_hex = o.get("baseSha256").and_then(|v| v.as_str());
            let Some(base_hex) = base_hex else {
                full.get_or_insert(Choice {
                    file_id: f.file_id,
                    file_size: f.file_size,
                    encoding: FileEncoding::Packed,
                    base: None,
                });
                continue;
            };
            let (Some(want), Some(size)) = (
                base_hex.as_plain().and_then(hex32),
                o.get("baseSize").and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            let Ok(size) = u32::try_from(size) else {
                continue;
            };
            if size == 0 || size > BANK_SIZE {
                continue;
            }
            let digest = match hashed {
                Some((n, d)) if n == size => d,
                _ => {
                    let mut scratch = [0u8; 256];
                    let Ok(mut active) = platform.active_bank() else {
                        continue;
                    };
                    let Ok(d) =
                        ferrota_image::verify::digest_flash(&mut active, 0, size, &mut scratch)
                    else {
                        continue;
                    };
                    hashed = Some((size, d));
                    d
                }
            };
            if digest == want {
                return Some(Choice {
                    file_id: f.file_id,
                    file_size: f.file_size,
                    encoding: FileEncoding::Delta,
                    base: Some(want),
                });
            }
            self.stats.delta_base_mismatch += 1;
        }
        full
    }

    /// Block 0 of a packed file arrived: read its header, check it against the job document,
    /// restore the chunks the resume record holds, fill the CM0+ region's frameless chunks.
    /// `Ok(false)`: the header was refused (the caller fails the job: [`Agent::fail_packed`]).
    pub(super) fn on_packed_header<P: Platform>(
        &mut self,
        data: &[u8],
        platform: &mut P,
    ) -> Result<bool, FlashFault> {
        let Some(d) = self.phase.download_mut() else {
            return Ok(false);
        };
        let Some(p) = d.packed.as_mut() else {
            return Ok(false);
        };
        let header = match Header::parse(data) {
            Ok(h) => h,
            Err(_) => {
                self.stats.packed_errors += 1;
                return Ok(false);
            }
        };
        let kind_ok = match (header.kind(), p.base) {
            (Kind::Full, None) => true,
            (Kind::Delta, Some(b)) => *header.base_sha256() == b,
            _ => false,
        };
        if !kind_ok
            || header.image_len() != d.image_size
            || header.block_size() != d.block_size
            || header.chunk_size() != PACKED_CHUNK
            || header.block_count() != d.num_blocks
        {
            self.stats.packed_errors += 1;
            return Ok(false);
        }
        // Chunks the resume record marked complete are kept; chunks without frames wait for
        // their fill. A block is kept when every chunk it holds frames of is complete; one
        // shared with an unfinished chunk comes again.
        let mut area = platform.resume_area()?;
        for c in 0..header.chunk_count() {
            let Some(e) = header.chunk(c) else { continue };
            let done = resume::chunk_done(&mut area, c)
                .map_err(|k| FlashFault::new(FlashOp::Resume, k))?;
            if done {
                p.done.set(c, true);
            } else if e.blocks == 0 {
                p.fill_pending.set(c, true);
            }
        }
        drop(area);
        let mut resumed = 0;
        for i in 1..header.block_count() {
            let Some((first, end)) = header.chunks_of_block(i) else {
                continue;
            };
            if (first..end).all(|c| p.done.contains(c)) {
                let _ = d.sched.missing.mark_received(i);
                resumed += 1;
            }
        }
        // The header and the CM0+ region's frames: the blocks up to the end of the last frame of
        // its chunks (a chunk without frames has no meaningful first block).
        d.precheck_blocks = (0..Region::Cm0p.size().div_ceil(PACKED_CHUNK))
            .filter_map(|c| header.chunk(c))
            .filter(|e| e.blocks > 0)
            .map(|e| e.first_block + e.blocks)
            .max()
            .unwrap_or(1);
        let blocks = d.num_blocks;
        p.header = Some(header);
        self.event(AgentEvent::DownloadStarted { blocks, resumed });
        // The CM0+ region is checked from flash as soon as its frames are in: its frameless
        // chunks must be filled first.
        let region_chunks = Region::Cm0p.size().div_ceil(PACKED_CHUNK);
        self.run_fills(platform, region_chunks)?;
        Ok(true)
    }

    /// Erases and fills the pending frameless chunks below `below`, marking each complete.
    pub(super) fn run_fills<P: Platform>(
        &mut self,
        platform: &mut P,
        below: u32,
    ) -> Result<(), FlashFault> {
        let Some(d) = self.phase.download_mut() else {
            return Ok(());
        };
        let Some(pending) = d.packed.as_ref().map(|p| p.fill_pending) else {
            return Ok(());
        };
        let mut mark_failures = 0;
        for c in 0..d.chunks().min(below) {
            if !pending.contains(c) {
                continue;
            }
            {
                let mut bank = platform.inactive_bank()?;
                d.erase_chunk_once(c, &mut bank)?;
                let Some(header) = d.packed.as_ref().and_then(|p| p.header.as_ref()) else {
                    return Ok(());
                };
                ferrota_delta::fill_chunk(header, c, &mut bank).map_err(|e| match e {
                    ferrota_delta::ApplyError::Write(k) => FlashFault::new(FlashOp::WriteBlock, k),
                    _ => FlashFault::new(FlashOp::WriteBlock, NorFlashErrorKind::Other),
                })?;
            }
            if let Some(p) = d.packed.as_mut() {
                p.fill_pending.set(c, false);
            }
            let marked = platform
                .resume_area()
                .ok()
                .and_then(|mut r| resume::mark_chunk(&mut r, c).ok());
            if marked.is_none() {
                mark_failures += 1;
            }
        }
        self.stats.mark_failures += mark_failures;
        Ok(())
    }

    /// A block `i ≥ 1` of a packed file: erase the unfinished chunks it holds frames of (each
    /// once a session), decode their frames into the inactive bank; frames of chunks already
    /// complete are skipped. `Ok(false)`: a frame does not decode (the caller fails the job:
    /// [`Agent::fail_packed`]).
    pub(super) fn on_packed_frame<P: Platform>(
        &mut self,
        i: u32,
        data: &[u8],
        platform: &mut P,
    ) -> Result<bool, FlashFault> {
        let Some(d) = self.phase.download_mut() else {
            return Ok(false);
        };
        // None: not a block of a packed file whose header is in.
        let Some((first, end)) = d.chunks_of(i).filter(|_| d.packed.is_some()) else {
            return Ok(false);
        };
        let done = d.packed.as_ref().map(|p| p.done).unwrap_or_default();
        for c in first..end {
            if !done.contains(c) {
                d.erase_chunk_once(c, &mut platform.inactive_bank()?)?;
            }
        }
        let Some(p) = d.packed.as_mut() else {
            return Ok(false);
        };
        let Some(header) = p.header.as_ref() else {
            return Ok(false);
        };
        let Ok(frames) = ferrota_delta::frames(header, i, data) else {
            self.stats.packed_errors += 1;
            return Ok(false);
        };
        let lent = RefCell::new(Lent {
            platform,
            fault: None,
        });
        let mut r = Ok(());
        for f in frames {
            r = match f {
                Ok(f) if done.contains(f.info().chunk) => Ok(()),
                Ok(f) => p
                    .applier
                    .apply_frame(header, &f, &mut OldBank(&lent), &mut NewBank(&lent))
                    .map(|_| ()),
                Err(e) => Err(e.into()),
            };
            if r.is_err() {
                break;
            }
        }
        let fault = lent.into_inner().fault;
        match r {
            Ok(()) => Ok(true),
            Err(ferrota_delta::ApplyError::Read(k)) => {
                Err(fault.unwrap_or(FlashFault::new(FlashOp::ReadBank, k)))
            }
            Err(ferrota_delta::ApplyError::Write(k)) => {
                Err(fault.unwrap_or(FlashFault::new(FlashOp::WriteBlock, k)))
            }
            Err(_) => {
                self.stats.packed_errors += 1;
                Ok(false)
            }
        }
    }

    /// The packed file does not rebuild the signed image: FAILED, the resume record cleared.
    pub(super) fn fail_packed<P: Platform>(&mut self, platform: &mut P) {
        if let Ok(mut r) = platform.resume_area() {
            let _ = resume::clear(&mut r);
        }
        self.end_job(AgentEvent::JobFailed {
            status: OtaStatus::Failed {
                main: PalErr::SignatureCheckFailed.code(),
                sub: SUB_PACKED_CORRUPT,
            },
        });
    }
}

/// The platform lent to the frame decoder through two views at once (the old image in the
/// active bank, the new one in the inactive bank). `Platform` lends one flash per call; the
/// views take turns, each opening its bank for one operation, and keep the first fault.
struct Lent<'r, P> {
    platform: &'r mut P,
    fault: Option<FlashFault>,
}

/// A flash operation of a view failed (its fault is kept in [`Lent`]).
#[derive(Debug, Clone, Copy)]
struct ViewError(NorFlashErrorKind);

impl NorFlashError for ViewError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// The active bank, read only: the delta's old image.
struct OldBank<'c, 'r, P>(&'c RefCell<Lent<'r, P>>);
/// The inactive bank: the new image.
struct NewBank<'c, 'r, P>(&'c RefCell<Lent<'r, P>>);

impl<P: Platform> ErrorType for OldBank<'_, '_, P> {
    type Error = ViewError;
}
impl<P: Platform> ErrorType for NewBank<'_, '_, P> {
    type Error = ViewError;
}

fn keep<T>(lent: &mut Lent<'_, impl Platform>, r: Result<T, FlashFault>) -> Result<T, ViewError> {
    r.map_err(|f| {
        lent.fault.get_or_insert(f);
        ViewError(f.kind)
    })
}

impl<P: Platform> ReadNorFlash for OldBank<'_, '_, P> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ViewError> {
        let mut l = self.0.borrow_mut();
        let r = match l.platform.active_bank() {
            Ok(mut v) => v.read(offset, bytes).map_err(fk(FlashOp::ReadBank)),
            Err(f) => Err(f),
        };
        keep(&mut l, r)
    }
    fn capacity(&self) -> usize {
        let mut l = self.0.borrow_mut();
        l.platform.active_bank().map_or(0, |v| v.capacity())
    }
}

impl<P: Platform> ReadNorFlash for NewBank<'_, '_, P> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), ViewError> {
        let mut l = self.0.borrow_mut();
        let r = match l.platform.inactive_bank() {
            Ok(mut v) => v.read(offset, bytes).map_err(fk(FlashOp::ReadBank)),
            Err(f) => Err(f),
        };
        keep(&mut l, r)
    }
    fn capacity(&self) -> usize {
        let mut l = self.0.borrow_mut();
        l.platform.inactive_bank().map_or(0, |v| v.capacity())
    }
}

/// Writes of this view are 64-byte aligned: a multiple of every bank's write size the agent
/// accepts (a power of two ≤ 64, checked below), and the frames' ranges are multiples of 256.
impl<P: Platform> NorFlash for NewBank<'_, '_, P> {
    const WRITE_SIZE: usize = 64;
    const ERASE_SIZE: usize = PACKED_CHUNK as usize;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), ViewError> {
        let mut l = self.0.borrow_mut();
        let r = match l.platform.inactive_bank() {
            Ok(mut v) => v.erase(from, to).map_err(fk(FlashOp::EraseBank)),
            Err(f) => Err(f),
        };
        keep(&mut l, r)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), ViewError> {
        const { assert!(64 % <P::Bank<'_> as NorFlash>::WRITE_SIZE == 0) };
        let mut l = self.0.borrow_mut();
        let r = match l.platform.inactive_bank() {
            Ok(mut v) => v.write(offset, bytes).map_err(fk(FlashOp::WriteBlock)),
            Err(f) => Err(f),
        };
        keep(&mut l, r)
    }
}
