//! The NOR array shared by code flash, work flash and SFlash: sparse, copy-on-write sectors
//! with a per-ECC-word "written" bitmap.
//!
//! * A sector that was erased cleanly holds no memory (`data: None`) and reads 0xFF.
//! * Otherwise its bytes live in an `Arc`, so cloning a whole device (the snapshot each
//!   power-cut attempt starts from) costs one reference-count increment per sector; the first
//!   write after a clone copies only that sector (`Arc::make_mut`).
//! * `written` has one bit per ECC word: set once the word was programmed (or left undefined by
//!   a torn operation) since the last complete erase. Programming a word whose bit is set is the
//!   ECC error of the real part, even with the same value. Checks are done 64 words at a time.

use std::fmt;
use std::sync::Arc;

use crate::geometry::Segment;
use crate::power::Rng;

/// Bytes and written-bitmap of one non-erased sector.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SectorData {
    pub bytes: Box<[u8]>,
    pub written: Box<[u64]>,
}

impl SectorData {
    fn erased(size: u32, word: u32) -> Self {
        SectorData {
            bytes: vec![0xFF; size as usize].into_boxed_slice(),
            written: vec![0; bitmap_len(size, word)].into_boxed_slice(),
        }
    }
}

/// Number of `u64` in the written-bitmap of a sector.
pub(crate) fn bitmap_len(size: u32, word: u32) -> usize {
    (size / word).div_ceil(64) as usize
}

/// One sector: its contents (or `None` when cleanly erased) and its wear.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Sector {
    pub data: Option<Arc<SectorData>>,
    pub erase_count: u32,
}

/// Where a sector lies in its array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SectorRef {
    pub index: usize,
    pub start: u32,
    pub size: u32,
}

/// A NOR flash array described by its layout and ECC word size.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NorArray {
    word: u32,
    layout: &'static [Segment],
    sectors: Vec<Sector>,
}

impl fmt::Debug for NorArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.sectors.iter().filter(|s| s.data.is_some()).count();
        f.debug_struct("NorArray")
            .field("word", &self.word)
            .field("sectors", &self.sectors.len())
            .field("non_erased", &used)
            .finish()
    }
}

impl NorArray {
    pub fn new(word: u32, layout: &'static [Segment]) -> Self {
        let n: u32 = layout.iter().map(|s| s.count).sum();
        NorArray {
            word,
            layout,
            sectors: vec![Sector::default(); n as usize],
        }
    }

    pub fn word(&self) -> u32 {
        self.word
    }

    pub fn sectors(&self) -> &[Sector] {
        &self.sectors
    }

    pub fn sectors_mut(&mut self) -> &mut [Sector] {
        &mut self.sectors
    }

    /// The sector containing offset `off`, if any.
    pub fn sector_at(&self, off: u32) -> Option<SectorRef> {
        let (mut base, mut index) = (0u32, 0usize);
        for seg in self.layout {
            let len = seg.count * seg.size;
            if off < base + len {
                let i = (off - base) / seg.size;
                return Some(SectorRef {
                    index: index + i as usize,
                    start: base + i * seg.size,
                    size: seg.size,
                });
            }
            base += len;
            index += seg.count as usize;
        }
        None
    }

    /// The sector with this index, if any.
    pub fn sector_by_index(&self, idx: usize) -> Option<SectorRef> {
        let (mut base, mut index) = (0u32, 0usize);
        for seg in self.layout {
            if idx < index + seg.count as usize {
                let i = (idx - index) as u32;
                return Some(SectorRef {
                    index: idx,
                    start: base + i * seg.size,
                    size: seg.size,
                });
            }
            base += seg.count * seg.size;
            index += seg.count as usize;
        }
        None
    }

    /// Copies `buf.len()` bytes from offset `off` (caller checked the bounds); erased reads 0xFF.
    pub fn read(&self, mut off: u32, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let Some(s) = self.sector_at(off) else { return };
            let rel = (off - s.start) as usize;
            let n = (buf.len() - done).min(s.size as usize - rel);
            let dst = &mut buf[done..done + n];
            match &self.sectors[s.index].data {
                None => dst.fill(0xFF),
                Some(d) => dst.copy_from_slice(&d.bytes[rel..rel + n]),
            }
            done += n;
            off += n as u32;
        }
    }

    /// Offset of the first erased word overlapping `[off, off + len)`, if any.
    pub fn first_erased(&self, off: u32, len: u32) -> Option<u32> {
        self.scan(off, len, false)
    }

    /// Offset of the first written (not erased) word overlapping `[off, off + len)`, if any.
    pub fn first_written(&self, off: u32, len: u32) -> Option<u32> {
        self.scan(off, len, true)
    }

    fn scan(&self, off: u32, len: u32, want_written: bool) -> Option<u32> {
        let end = off.checked_add(len)?;
        let mut pos = off - off % self.word;
        while pos < end {
            let s = self.sector_at(pos)?;
            let stop = end.min(s.start + s.size);
            let w0 = ((pos - s.start) / self.word) as usize;
            let w1 = (stop - s.start).div_ceil(self.word) as usize;
            let hit = match &self.sectors[s.index].data {
                None => (!want_written).then_some(w0),
                Some(d) => first_bit(&d.written, w0, w1, want_written),
            };
            if let Some(w) = hit {
                return Some(s.start + w as u32 * self.word);
            }
            pos = s.start + s.size;
        }
        None
    }

    fn data_mut(&mut self, s: SectorRef) -> &mut SectorData {
        let word = self.word;
        let slot = self.sectors[s.index]
            .data
            .get_or_insert_with(|| Arc::new(SectorData::erased(s.size, word)));
        Arc::make_mut(slot)
    }

    /// Programs `data` at `off` (word aligned, within one sector, every word erased: the caller
    /// checked). NOR programming only clears bits: on erased words that is a plain copy.
    pub fn program(&mut self, off: u32, data: &[u8]) {
        let Some(s) = self.sector_at(off) else { return };
        let word = self.word;
        let rel = (off - s.start) as usize;
        let d = self.data_mut(s);
        d.bytes[rel..rel + data.len()].copy_from_slice(data);
        let w0 = rel / word as usize;
        set_bits(&mut d.written, w0, w0 + data.len() / word as usize);
    }

    /// A torn [`program`](Self::program): a prefix of the words done, the next one partial (a
    /// random proper subset of its 1→0 transitions), those marked written; the rest untouched.
    /// Returns the fraction of words fully or partly done, for the clock.
    pub fn program_torn(&mut self, off: u32, data: &[u8], rng: &mut Rng) -> (u32, u32) {
        let Some(s) = self.sector_at(off) else {
            return (0, 1);
        };
        let word = self.word as usize;
        let words = data.len() / word;
        let full = rng.below(words as u64) as usize;
        let rel = (off - s.start) as usize;
        let d = self.data_mut(s);
        d.bytes[rel..rel + full * word].copy_from_slice(&data[..full * word]);
        let p = rel + full * word;
        let mut old = [0u8; 8];
        let mut new = [0u8; 8];
        old[..word].copy_from_slice(&d.bytes[p..p + word]);
        new[..word].copy_from_slice(&data[full * word..(full + 1) * word]);
        let (old, new) = (u64::from_le_bytes(old), u64::from_le_bytes(new));
        let cleared = rng.partial(old & !new);
        let result = (old & !cleared).to_le_bytes();
        d.bytes[p..p + word].copy_from_slice(&result[..word]);
        let w0 = rel / word;
        set_bits(&mut d.written, w0, w0 + full + 1);
        (full as u32 + 1, words as u32)
    }

    /// Replaces the bytes at `off` and marks them written, whatever their state (SFlash's SROM
    /// write-row erases and programs in one operation).
    pub fn overwrite(&mut self, off: u32, data: &[u8]) {
        let Some(s) = self.sector_at(off) else { return };
        let word = self.word as usize;
        let rel = (off - s.start) as usize;
        let d = self.data_mut(s);
        d.bytes[rel..rel + data.len()].copy_from_slice(data);
        set_bits(
            &mut d.written,
            rel / word,
            (rel + data.len()).div_ceil(word),
        );
    }

    /// Sets random bits to 1 in `[off, off + len)` of one sector and marks it written.
    pub fn scramble(&mut self, off: u32, len: u32, rng: &mut Rng) {
        let Some(s) = self.sector_at(off) else { return };
        let word = self.word as usize;
        let rel = (off - s.start) as usize;
        let d = self.data_mut(s);
        for chunk in d.bytes[rel..rel + len as usize].chunks_mut(8) {
            let r = rng.next_u64().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(r) {
                *b |= r;
            }
        }
        set_bits(
            &mut d.written,
            rel / word,
            (rel + len as usize).div_ceil(word),
        );
    }

    /// A complete erase: the sector returns to the sparse erased state.
    pub fn erase(&mut self, idx: usize) {
        let s = &mut self.sectors[idx];
        s.data = None;
        s.erase_count = s.erase_count.saturating_add(1);
    }

    /// A torn erase: random bits set to 1, and the whole sector *not* erased.
    pub fn erase_torn(&mut self, idx: usize, rng: &mut Rng) {
        if let Some(s) = self.sector_by_index(idx) {
            self.scramble(s.start, s.size, rng);
            let c = &mut self.sectors[idx].erase_count;
            *c = c.saturating_add(1);
        }
    }
}

/// First word index in `[from, to)` whose bit equals `want`, 64 words per step.
fn first_bit(bits: &[u64], from: usize, to: usize, want: bool) -> Option<usize> {
    let mut i = from;
    while i < to {
        let (w, b) = (i / 64, i % 64);
        let n = (64 - b).min(to - i);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << b
        };
        let v = if want { bits[w] } else { !bits[w] } & mask;
        if v != 0 {
            return Some(w * 64 + v.trailing_zeros() as usize);
        }
        i += n;
    }
    None
}

/// Sets bits `[from, to)`, 64 at a time.
fn set_bits(bits: &mut [u64], from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let (w, b) = (i / 64, i % 64);
        let n = (64 - b).min(to - i);
        let mask = if n == 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << b
        };
        bits[w] |= mask;
        i += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{CODE_LAYOUT, WORK_LAYOUT};

    #[test]
    fn bitmap_helpers() {
        let mut b = vec![0u64; 3];
        set_bits(&mut b, 5, 130);
        assert_eq!(first_bit(&b, 0, 192, true), Some(5));
        assert_eq!(first_bit(&b, 0, 192, false), Some(0));
        assert_eq!(first_bit(&b, 5, 192, false), Some(130));
        assert_eq!(first_bit(&b, 5, 130, false), None);
        assert_eq!(first_bit(&b, 130, 192, true), None);
    }

    #[test]
    fn sector_lookup_both_segments() {
        let a = NorArray::new(8, CODE_LAYOUT);
        assert_eq!(a.sector_at(0x8000 * 254 - 1).map(|s| s.index), Some(253));
        let s = a.sector_at(0x7F_0000 + 0x2001).unwrap();
        assert_eq!((s.index, s.start, s.size), (255, 0x7F_2000, 0x2000));
        assert_eq!(a.sector_by_index(255), Some(s));
        assert!(a.sector_at(0x83_0000).is_none());
        let w = NorArray::new(4, WORK_LAYOUT);
        assert_eq!(
            w.sector_at(0x3_0080).map(|s| (s.index, s.size)),
            Some((97, 0x80))
        );
    }

    #[test]
    fn clone_is_copy_on_write() {
        let mut a = NorArray::new(8, CODE_LAYOUT);
        a.program(0, &[0u8; 8]);
        let b = a.clone();
        a.program(8, &[1u8; 8]);
        let mut x = [0u8; 16];
        b.read(0, &mut x);
        assert_eq!(&x[8..], &[0xFF; 8]);
        a.read(0, &mut x);
        assert_eq!(&x[8..], &[1; 8]);
    }
}
