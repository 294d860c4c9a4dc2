//! `apply(delta(a, b), a) == b` and `apply(full(b)) == b`, on random and on edited pairs,
//! through the no_std applier over NOR-rule flashes.

use ferrota_delta::Codec;
use ferrota_delta::encode::{self, Params};
use proptest::prelude::*;

fn params(codec: Codec, block_size: u32, chunk_size: u32) -> Params {
    Params {
        block_size,
        chunk_size,
        codec,
    }
}

fn small() -> impl Strategy<Value = Params> {
    (
        prop_oneof![Just(Codec::Heatshrink), Just(Codec::Stored)],
        prop_oneof![Just(1024u32), Just(2048), Just(4096)],
        prop_oneof![Just(4096u32), Just(8192)],
    )
        .prop_map(|(c, b, k)| params(c, b, k))
}

/// Bytes that look a little like an image: code-like random runs, zero fill, 0xFF, repeats.
fn image(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 1..600),
            1 => (1usize..3000).prop_map(|n| vec![0u8; n]),
            1 => (1usize..3000).prop_map(|n| vec![0xFFu8; n]),
            1 => (any::<u8>(), 1usize..100).prop_map(|(b, n)| vec![b; n]),
        ],
        1..max,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("non-empty", |v| !v.is_empty())
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Change(usize, u8),
    Pointer(usize, u32),
    Move(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), 1usize..500).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Change(a, b)),
        (any::<usize>(), any::<u32>()).prop_map(|(a, d)| Edit::Pointer(a, d)),
        (any::<usize>(), any::<usize>(), 1usize..2000).prop_map(|(a, b, n)| Edit::Move(a, b, n)),
    ]
}

fn apply_edits(a: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = a.to_vec();
    for e in edits {
        let len = b.len().max(1);
        match e {
            Edit::Insert(at, bytes) => {
                let at = at % len;
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(b.len());
                if end - at < b.len() {
                    b.drain(at..end);
                }
            }
            Edit::Change(at, v) => {
                if let Some(x) = b.get_mut(at % len) {
                    *x = x.wrapping_add(*v | 1);
                }
            }
            Edit::Pointer(at, d) => {
                // Every 4-byte word from `at` on that looks like an address shifts by `d`,
                // as when code moves.
                let mut i = (at % len) & !3;
                while i + 4 <= b.len() {
                    let w = u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                    if w >> 24 == 0x10 {
                        b[i..i + 4].copy_from_slice(&w.wrapping_add(d & 0xFFF).to_le_bytes());
                    }
                    i += 64;
                }
            }
            Edit::Move(from, to, n) => {
                let from = from % len;
                let end = (from + n).min(b.len());
                let block: Vec<u8> = b.drain(from..end).collect();
                let to = to % (b.len() + 1);
                b.splice(to..to, block);
            }
        }
    }
    if b.is_empty() { vec![0] } else { b }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn full_roundtrips(b in image(40), p in small()) {
        let packed = encode::full(&b, &p).unwrap();
        // Every block but the last is whole; the last ends with its frames (block 0 alone is
        // whole).
        let h = ferrota_delta::Header::parse(&packed[..p.block_size as usize]).unwrap();
        let bs = p.block_size as usize;
        let whole = (h.block_count() as usize - 1) * bs;
        prop_assert!(
            packed.len() == bs && h.block_count() == 1
                || packed.len() > whole && packed.len() <= whole + bs
        );
        prop_assert_eq!(encode::apply(&packed, &[]).unwrap(), b.clone());
        // Padded to whole blocks it is the same file.
        let mut padded = packed.clone();
        padded.resize(h.max_file_len() as usize, 0);
        prop_assert_eq!(encode::apply(&padded, &[]).unwrap(), b);
    }

    #[test]
    fn random_pairs_roundtrip(a in image(30), b in image(30), p in small()) {
        let packed = encode::delta(&a, &b, &p).unwrap();
        prop_assert_eq!(encode::apply(&packed, &a).unwrap(), b);
    }

    #[test]
    fn edited_pairs_roundtrip(
        a in image(60),
        edits in prop::collection::vec(edit(), 1..8),
        p in small(),
    ) {
        let b = apply_edits(&a, &edits);
        let packed = encode::delta(&a, &b, &p).unwrap();
        prop_assert_eq!(encode::apply(&packed, &a).unwrap(), b);
    }
}

#[test]
fn identical_images_make_a_small_delta() {
    let a: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let packed = encode::delta(&a, &a, &Params::default()).unwrap();
    assert_eq!(encode::apply(&packed, &a).unwrap(), a);
    // One frame per 32 KB chunk, each a handful of COPY bytes: all 7 share one block, which
    // ends with them.
    assert!(
        packed.len() > 4096 && packed.len() < 4096 + 256,
        "{}",
        packed.len()
    );
    let h = ferrota_delta::Header::parse(&packed[..4096]).unwrap();
    for c in 0..7 {
        let e = h.chunk(c).unwrap();
        assert_eq!((e.first_block, e.blocks), (1, 1), "chunk {c}");
        assert_eq!(h.chunks_of_block(1), Some((0, 7)));
    }
}

#[test]
fn chunks_of_one_value_send_no_frame() {
    let mut b = vec![0u8; 5 * 32768];
    b[32768..65536].fill(0xFF);
    b[3 * 32768 + 100] = 7;
    let packed = encode::full(&b, &Params::default()).unwrap();
    let h = ferrota_delta::Header::parse(&packed[..4096]).unwrap();
    let fills: Vec<_> = (0..5).map(|c| h.chunk(c).unwrap()).collect();
    assert_eq!(
        fills.iter().map(|e| e.blocks).collect::<Vec<_>>(),
        [0, 0, 0, 1, 0]
    );
    assert_eq!(fills[1].fill, 0xFF);
    assert_eq!(fills[0].fill, 0);
    assert_eq!(h.block_count(), 2);
    assert_eq!(encode::apply(&packed, &[]).unwrap(), b);
}
