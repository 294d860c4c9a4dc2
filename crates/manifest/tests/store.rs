//! The trust store (design §3.4): record round trip, strict decode, and a power cut — clean and
//! torn — at every flash operation of every write, across both compaction directions.

mod common;

use common::*;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use ferrota_manifest::store::{
    self, RECORD_SIZE, SLOTS_PER_SECTOR, StoreError, TRUST_AREA_LEN, TrustState,
};
use ferrota_manifest::{TrustedRoot, walk_roots};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlashError {
    PowerLost,
    NotErased,
    Misaligned,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::Misaligned => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// Work flash with the T2G's rules (4-byte words programmed once after an erase, 2 KB sectors)
/// and a power cut before operation `cut`, optionally tearing it (seeded).
#[derive(Debug, Clone)]
struct Flash {
    data: Vec<u8>,
    ops: u64,
    cut: Option<(u64, Option<u64>)>,
    dead: bool,
}

impl Flash {
    fn blank() -> Self {
        Flash {
            data: vec![0xFF; TRUST_AREA_LEN as usize],
            ops: 0,
            cut: None,
            dead: false,
        }
    }

    /// Power back on: the bytes stay, the cut is gone.
    fn power_cycle(&self) -> Self {
        Flash {
            data: self.data.clone(),
            ops: 0,
            cut: None,
            dead: false,
        }
    }

    /// Counts the operation; on the cut one, returns the tear seed (if any) and dies.
    fn op(&mut self) -> Result<(), Option<u64>> {
        if self.dead {
            return Err(None);
        }
        let n = self.ops;
        self.ops += 1;
        match self.cut {
            Some((at, tear)) if at == n => {
                self.dead = true;
                Err(tear)
            }
            _ => Ok(()),
        }
    }
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

impl ErrorType for Flash {
    type Error = FlashError;
}

impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.data[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 2048;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let (f, t) = (from as usize, to as usize);
        if !f.is_multiple_of(2048) || !t.is_multiple_of(2048) || t > self.data.len() {
            return Err(FlashError::Misaligned);
        }
        match self.op() {
            Ok(()) => {
                self.data[f..t].fill(0xFF);
                Ok(())
            }
            Err(tear) => {
                if let Some(seed) = tear {
                    // A torn erase: some words erased, some left, some garbage.
                    let mut r = rng(seed);
                    for w in self.data[f..t].chunks_mut(4) {
                        match r() % 3 {
                            0 => w.fill(0xFF),
                            1 => {}
                            _ => w.copy_from_slice(&(r() as u32).to_le_bytes()),
                        }
                    }
                }
                Err(FlashError::PowerLost)
            }
        }
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let o = offset as usize;
        if !o.is_multiple_of(4)
            || !bytes.len().is_multiple_of(4)
            || o + bytes.len() > self.data.len()
        {
            return Err(FlashError::Misaligned);
        }
        let target = o..o + bytes.len();
        let erased = self.data[target.clone()].iter().all(|&b| b == 0xFF);
        match self.op() {
            Ok(()) if !erased => Err(FlashError::NotErased),
            Ok(()) => {
                self.data[target].copy_from_slice(bytes);
                Ok(())
            }
            Err(tear) => {
                if let (Some(seed), true) = (tear, erased) {
                    // A torn program: a prefix of words written, then one garbage word.
                    let mut r = rng(seed);
                    let words = bytes.len() / 4;
                    let k = (r() as usize) % (words + 1);
                    self.data[o..o + 4 * k].copy_from_slice(&bytes[..4 * k]);
                    if k < words {
                        let g = (r() as u32).to_le_bytes();
                        self.data[o + 4 * k..o + 4 * k + 4].copy_from_slice(&g);
                    }
                }
                Err(FlashError::PowerLost)
            }
        }
    }
}

fn state(i: u32) -> TrustState {
    let root = if i.is_multiple_of(3) {
        let (v2, v3) = (root_v2(), root_v3());
        walk_roots(&anchor(), [&v2[..], &v3[..]].into_iter()).unwrap()
    } else {
        anchor()
    };
    TrustState {
        root,
        seen_seq: 10 + i,
        seen_kid: [i as u8; 8],
        seen_digest: [0xA0 ^ i as u8; 32],
        installed_seq: 5 + i,
        attested_time: 1_000 * u64::from(i),
        clock_floor: 1_000 * u64::from(i) + 7,
    }
}

#[test]
fn record_round_trip_and_strict_decode() {
    let s = state(3);
    let raw = store::encode(42, &s);
    assert_eq!(store::decode(&raw), Some((42, s.clone())));
    // Any single changed bit is refused (CRC or commit word).
    for i in 0..RECORD_SIZE {
        for bit in [0x01u8, 0x80] {
            let mut r = raw;
            r[i] ^= bit;
            assert_eq!(store::decode(&r), None, "byte {i} bit {bit:#x}");
        }
    }
    assert_eq!(store::decode(&[0xFF; RECORD_SIZE]), None);
    assert_eq!(store::decode(&[0; RECORD_SIZE]), None);
}

#[test]
fn blank_store_reads_the_anchor() {
    let mut f = Flash::blank();
    assert_eq!(
        store::read(&mut f, &anchor()).unwrap(),
        TrustState::new(anchor())
    );
    let mut small = Flash::blank();
    small.data.truncate(2048);
    assert_eq!(
        store::read(&mut small, &anchor()),
        Err(StoreError::TooSmall { capacity: 2048 })
    );
}

#[test]
fn a_newer_anchor_replaces_an_older_stored_root() {
    let mut f = Flash::blank();
    let s = state(1); // root v1
    store::write(&mut f, &s).unwrap();
    let v2 = root_v2();
    let r2: TrustedRoot = walk_roots(&anchor(), [&v2[..]].into_iter()).unwrap();
    let got = store::read(&mut f, &r2).unwrap();
    assert_eq!(got.root, r2);
    assert_eq!(got.installed_seq, s.installed_seq);
    // A stored root above the anchor wins.
    let s3 = state(3);
    store::write(&mut f, &s3).unwrap();
    assert_eq!(store::read(&mut f, &r2).unwrap(), s3);
}

#[test]
fn writes_fill_and_compact_both_sectors() {
    let mut f = Flash::blank();
    for i in 1..=(4 * SLOTS_PER_SECTOR as u32 + 1) {
        store::write(&mut f, &state(i)).unwrap();
        assert_eq!(
            store::read(&mut f, &anchor()).unwrap(),
            state(i),
            "write {i}"
        );
    }
}

/// The sweep: for each write of a history long enough to compact into both sectors, cut at
/// every operation, clean and torn; after the power cycle the store reads the old or the new
/// state, and the write then completes.
#[test]
fn power_cut_at_every_operation() {
    let mut f = Flash::blank();
    let mut before = TrustState::new(anchor());
    let (mut cuts, mut olds, mut news) = (0u32, 0u32, 0u32);
    for i in 1..=(2 * SLOTS_PER_SECTOR as u32 + 2) {
        let new = state(i);
        let mut clean = f.power_cycle();
        store::write(&mut clean, &new).unwrap();
        let total = clean.ops;
        assert!(total >= 2, "a write is at least two programs");
        for at in 0..total {
            for tear in [None, Some(1), Some(2), Some(3), Some(4)] {
                let mut d = f.power_cycle();
                d.cut = Some((at, tear));
                assert!(store::write(&mut d, &new).is_err(), "write {i} cut at {at}");
                let mut d = d.power_cycle();
                let got = store::read(&mut d, &anchor()).unwrap();
                if got == before {
                    olds += 1;
                } else {
                    assert_eq!(got, new, "write {i}, cut at op {at}, tear {tear:?}");
                    news += 1;
                }
                cuts += 1;
                // Power back: the write is repeated and lands.
                store::write(&mut d, &new).unwrap();
                assert_eq!(store::read(&mut d, &anchor()).unwrap(), new);
                // And the one after it too (skipping torn slots, compacting as needed).
                store::write(&mut d, &state(100 + i)).unwrap();
                assert_eq!(store::read(&mut d, &anchor()).unwrap(), state(100 + i));
            }
        }
        f = clean;
        before = new;
    }
    println!("{cuts} cuts: {olds} read the old state, {news} the new");
    assert!(olds > 0 && news > 0);
}
