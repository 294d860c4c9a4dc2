//! The server's one door to `ferrota-delta` (issue #19): packs a firmware bank image as a
//! sparse, compressed "FRPK" file and a delta from an earlier bank image, on a blocking thread
//! (4 MB take a while: the async runtime keeps serving devices meanwhile). Nothing else in the
//! server names `ferrota_delta`, so a change of its API is a change of this file.
//!
//! Packing is a pure function of the image and its bases, and it is slow (the heatshrink
//! encoder searches its whole window for every byte: about 0.2 s for a 100 KB image, seconds for
//! a full bank). An operator who creates several updates of the same release (one per group, a
//! retry after a cancel) would pay it each time, and so would every test that builds a fresh
//! server around the same image. The results are therefore remembered per process, keyed by
//! the SHA-256 of the inputs, up to [`MEMO_BYTES`] of output (oldest forgotten first).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use ferrota_delta::encode::{self, Params};
use sha2::{Digest, Sha256};

/// The `encoding` of a packed entry in the job document.
pub const ENCODING: &str = "frpk1";

/// Output bytes the process keeps of earlier packings (see the module docs).
pub const MEMO_BYTES: usize = 64 << 20;

/// The wire block size a packed file is made for: the stream block size the agent requests
/// (`otaconfigLOG2_FILE_BLOCK_SIZE` 12 of the written `ota_config.h`), the design's default.
pub fn block_size() -> u32 {
    Params::default().block_size
}

/// The full image packed, then one delta per base.
type Packed = (Vec<u8>, Vec<Vec<u8>>);

/// Earlier packings, newest last, and the bytes they hold.
#[derive(Default)]
struct Memo {
    entries: VecDeque<([u8; 32], Arc<Packed>)>,
    bytes: usize,
}

static MEMO: Mutex<Memo> = Mutex::new(Memo {
    entries: VecDeque::new(),
    bytes: 0,
});

fn size_of(p: &Packed) -> usize {
    p.0.len() + p.1.iter().map(Vec::len).sum::<usize>()
}

/// The memo key: every input with its length (so no two input lists share a byte stream).
fn key(new: &[u8], bases: &[Arc<Vec<u8>>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in std::iter::once(new).chain(bases.iter().map(|b| b.as_slice())) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn remembered(k: &[u8; 32]) -> Option<Arc<Packed>> {
    let memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    memo.entries
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, p)| p.clone())
}

fn remember(k: [u8; 32], p: Arc<Packed>) {
    let size = size_of(&p);
    if size > MEMO_BYTES {
        return;
    }
    let mut memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
    if memo.entries.iter().any(|(key, _)| *key == k) {
        return;
    }
    while memo.bytes + size > MEMO_BYTES {
        match memo.entries.pop_front() {
            Some((_, old)) => memo.bytes -= size_of(&old),
            None => break,
        }
    }
    memo.bytes += size;
    memo.entries.push_back((k, p));
}

/// The packed files of one update: the full image packed, then one delta per base, in the
/// order of `bases`. Runs on the blocking pool; an encoder error is returned as its text (and
/// not remembered).
pub async fn pack(new: Arc<Vec<u8>>, bases: Vec<Arc<Vec<u8>>>) -> Result<Packed, String> {
    tokio::task::spawn_blocking(move || {
        let k = key(&new, &bases);
        if let Some(p) = remembered(&k) {
            return Ok((*p).clone());
        }
        let p = Params::default();
        let full = encode::full(&new, &p).map_err(|e| format!("packing the image: {e}"))?;
        let deltas = bases
            .iter()
            .enumerate()
            .map(|(i, old)| {
                encode::delta(old, &new, &p)
                    .map_err(|e| format!("deltaFrom[{i}]: making the delta: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let packed = (full, deltas);
        remember(k, Arc::new(packed.clone()));
        Ok(packed)
    })
    .await
    .map_err(|e| format!("the packing thread failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_separates_inputs_that_share_a_byte_stream() {
        let a = key(b"abcd", &[Arc::new(b"ef".to_vec())]);
        let b = key(b"abc", &[Arc::new(b"def".to_vec())]);
        let c = key(b"abcdef", &[]);
        assert!(a != b && b != c && a != c);
        assert_eq!(a, key(b"abcd", &[Arc::new(b"ef".to_vec())]));
    }

    #[test]
    fn the_memo_forgets_the_oldest_past_its_budget() {
        // Two fifths each: room for what other tests of this process remember meanwhile.
        let big = Arc::new((vec![0u8; MEMO_BYTES * 2 / 5], Vec::new()));
        let k = |i: u8| [i; 32];
        remember(k(201), big.clone());
        remember(k(202), big.clone());
        assert!(remembered(&k(201)).is_some() && remembered(&k(202)).is_some());
        remember(k(203), big.clone());
        assert!(remembered(&k(201)).is_none(), "the oldest is forgotten");
        assert!(remembered(&k(202)).is_some() && remembered(&k(203)).is_some());
        let memo = MEMO.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(memo.bytes <= MEMO_BYTES);
    }
}
