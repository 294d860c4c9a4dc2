//! The seam to `ferrota-delta`: every call the scenario makes into it is in this module, so a
//! change of that crate's API is a change here only.
//!
//! Besides encoding, it applies a packed file the way the agent does (DESIGN-19): block 0 is
//! parsed, the active bank's first `base length` bytes are hashed, then chunk by chunk the
//! inactive bank's sector is erased and either the chunk's fill is written ([`fill_chunk`]) or
//! its frames are applied by the no_std [`Applier`] — into the inactive bank of a
//! `ferrota-t2g` device, whose timing model charges every erase and program. The old image is
//! read through a counting [`ReadNorFlash`]; reads are charged at [`READ_BYTES_PER_SEC`].

use core::time::Duration;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use ferrota_delta::encode::{self, Params};
use ferrota_delta::{Applier, Header, fill_chunk};
use ferrota_t2g::{BankMode, Device};

/// The stream block size the packed files are made for (the agent's default request size).
pub const BLOCK_SIZE: u32 = 4096;

/// Flash read throughput of the CM7 reading the active bank (memory-mapped code flash through
/// its cache and the flash controller's wait states). An assumption ([U]: the T2G datasheet's
/// figures were not available), chosen low: 100 MB/s, about a quarter of one 16-byte fetch per
/// flash cycle. `ferrota-t2g`'s timing model has no read durations; this is its one addition.
pub const READ_BYTES_PER_SEC: f64 = 100e6;

/// The encoder's parameters: the design's defaults (4 KB blocks, 32 KB chunks), checked.
fn params() -> Result<Params, String> {
    let p = Params::default();
    if p.block_size != BLOCK_SIZE || p.chunk_size != 32768 {
        return Err(format!(
            "ferrota-delta's default parameters changed (blocks of {}, chunks of {}): update \
             the bench's BLOCK_SIZE",
            p.block_size, p.chunk_size
        ));
    }
    Ok(p)
}

/// `new` as a packed full image (sparse and compressed).
pub fn full(new: &[u8]) -> Result<Vec<u8>, String> {
    encode::full(new, &params()?).map_err(|e| format!("packing the full image: {e}"))
}

/// `new` as a delta from `old`, checked: rebuilt in memory from `old` it must equal `new`.
pub fn delta(old: &[u8], new: &[u8]) -> Result<Vec<u8>, String> {
    let d = encode::delta(old, new, &params()?).map_err(|e| format!("encoding the delta: {e}"))?;
    let back = encode::apply(&d, old).map_err(|e| format!("applying the delta: {e}"))?;
    if back != new {
        return Err("the delta does not rebuild the new image".into());
    }
    Ok(d)
}

/// Whether the linked `ferrota-delta` codes deltas at all: an image against itself must come
/// out far smaller than the packed full image. False for the placeholder crate (stored frames,
/// no delta coding), whose figures are then labelled as such instead of passed off as results.
pub fn codes_deltas() -> Result<bool, String> {
    let image = ferrota_image::build::sample_bytes(0xDE17A, 256 * 1024);
    let d = encode::delta(&image, &image, &params()?).map_err(|e| e.to_string())?;
    let f = full(&image)?;
    Ok(d.len() * 4 < f.len())
}

/// The device RAM a delta update adds to the agent, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ram {
    /// `size_of::<Applier>()`: the decoder's state, its decompressor and page buffer.
    pub applier: usize,
    /// `size_of::<Header>()`: the parsed block 0 (chunk table) the agent keeps for the job.
    pub header: usize,
    /// `size_of::<sha2::Sha256>()`: hashing the active bank to check the base.
    pub base_hash: usize,
}

impl Ram {
    /// The sum.
    pub fn total(&self) -> usize {
        self.applier + self.header + self.base_hash
    }
}

/// What a delta update adds to the agent's RAM (its stream block buffer, resume record and
/// job state exist for a full image too and are not counted).
pub fn ram() -> Ram {
    Ram {
        applier: core::mem::size_of::<Applier>(),
        header: core::mem::size_of::<Header>(),
        base_hash: core::mem::size_of::<sha2::Sha256>(),
    }
}

/// Flash work of writing one image into the inactive bank.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlashCost {
    /// Flash operations (sector erases, row programs).
    pub ops: u64,
    /// Erase and program time on the timing model.
    pub write_time: Duration,
    /// Bytes read from the active bank (the base hash and COPY ops).
    pub read_bytes: u64,
}

impl FlashCost {
    /// Write time plus reads at [`READ_BYTES_PER_SEC`].
    pub fn time(&self) -> Duration {
        self.write_time + Duration::from_secs_f64(self.read_bytes as f64 / READ_BYTES_PER_SEC)
    }
}

/// The old image as the active bank, counting the bytes read.
struct Old<'a> {
    bytes: &'a [u8],
    read: u64,
}

impl ErrorType for Old<'_> {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for Old<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        let s = self
            .bytes
            .get(offset as usize..offset as usize + out.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        out.copy_from_slice(s);
        self.read += out.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

fn device() -> Result<Device, String> {
    let mut dev = Device::new();
    dev.set_bank_mode(BankMode::Dual)
        .map_err(|e| format!("dual-bank mode: {e}"))?;
    Ok(dev)
}

fn cost(dev: &Device, ops: u64, t: Duration, read_bytes: u64) -> FlashCost {
    FlashCost {
        ops: dev.op_count() - ops,
        write_time: dev.now() - t,
        read_bytes,
    }
}

/// Today's full update: every 32 KB sector of the inactive bank erased and every block of the
/// image programmed as it arrives.
pub fn write_full(image: &[u8]) -> Result<FlashCost, String> {
    let mut dev = device()?;
    let (ops, t) = (dev.op_count(), dev.now());
    let mut bank = dev.inactive_bank().map_err(|e| e.to_string())?;
    let sector = ferrota_t2g::geometry::CODE_LARGE_SECTOR as usize;
    for (i, s) in image.chunks(sector).enumerate() {
        let at = (i * sector) as u32;
        bank.erase(at, at + sector as u32)
            .map_err(|e| format!("erase at {at:#x}: {e}"))?;
        for (j, b) in s.chunks(BLOCK_SIZE as usize).enumerate() {
            let off = at + j as u32 * BLOCK_SIZE;
            bank.write(off, b)
                .map_err(|e| format!("write at {off:#x}: {e}"))?;
        }
    }
    Ok(cost(&dev, ops, t, 0))
}

/// Applies `packed` (full or delta) as the agent does, checks the inactive bank then holds
/// `new`, and returns the flash work.
pub fn apply_on_device(packed: &[u8], old: &[u8], new: &[u8]) -> Result<FlashCost, String> {
    let b = BLOCK_SIZE as usize;
    let block0 = packed.get(..b.min(packed.len())).unwrap_or_default();
    let header = Header::parse(block0).map_err(|e| format!("block 0: {e}"))?;
    let base_len = header.base_len() as usize;
    if base_len > old.len() {
        return Err(format!("base length {base_len} > old image {}", old.len()));
    }
    let mut old = Old {
        bytes: old,
        // The agent hashes the active bank's first `base length` bytes before its first write.
        read: base_len as u64,
    };
    let mut dev = device()?;
    let (ops, t) = (dev.op_count(), dev.now());
    let mut bank = dev.inactive_bank().map_err(|e| e.to_string())?;
    let mut applier = Applier::new();
    let c_size = header.chunk_size();
    for c in 0..header.chunk_count() {
        let at = c * c_size;
        let end = (at + c_size)
            .min(header.image_len())
            .next_multiple_of(c_size);
        bank.erase(at, end)
            .map_err(|e| format!("erase at {at:#x}: {e}"))?;
        let entry = header
            .chunk(c)
            .ok_or_else(|| format!("chunk {c} not in the table"))?;
        if entry.blocks == 0 {
            fill_chunk(&header, c, &mut bank).map_err(|e| format!("chunk {c}: fill: {e}"))?;
        }
    }
    for i in 1..header.block_count() {
        let from = i as usize * b;
        let block = packed
            .get(from..(from + b).min(packed.len()))
            .ok_or_else(|| format!("block {i} missing from the file"))?;
        applier
            .apply_block(&header, i, block, &mut old, &mut bank)
            .map_err(|e| format!("block {i}: {e}"))?;
    }
    let mut back = vec![0u8; new.len()];
    bank.read(0, &mut back)
        .map_err(|e| format!("reading the bank back: {e}"))?;
    if back != new {
        return Err("the bank does not hold the new image after applying".into());
    }
    Ok(cost(&dev, ops, t, old.read))
}
