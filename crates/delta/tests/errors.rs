//! Every refusal the format defines ends in its own error, never a panic and never a silent
//! success: damaged headers, frames and op streams, through the same applier the device runs.

use ferrota_delta::encode::{self, Params};
use ferrota_delta::mem::MemFlash;
use ferrota_delta::{
    Applier, ApplyError, Codec, Corrupt, FormatError, FrameInfo, Header, fill_chunk, frames,
};
use proptest::prelude::*;

const B: usize = 1024;

fn p(codec: Codec) -> Params {
    Params {
        block_size: B as u32,
        chunk_size: 4096,
        codec,
    }
}

fn bytes(seed: u32, n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// A stored delta of one 512-byte frame (base 512 bytes), whose payload the tests replace.
fn delta_file() -> (Vec<u8>, Vec<u8>) {
    let old = bytes(1, 512);
    let mut new = old.clone();
    new[100] ^= 0x55;
    let mut f = encode::delta(&old, &new, &p(Codec::Stored)).unwrap();
    // The last block ends with its frame; padded to B it is the same file (the tests below
    // write longer op streams into it).
    assert!(f.len() > B + 16 && f.len() < 2 * B, "{}", f.len());
    f.resize(2 * B, 0);
    (f, old)
}

/// `file` with block 1's payload replaced by `ops` (stored codec: the payload is the op stream).
fn with_ops(file: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut f = file.to_vec();
    f[B + 12..B + 16].copy_from_slice(&(ops.len() as u32).to_le_bytes());
    f[B + 16..2 * B].fill(0);
    f[B + 16..B + 16 + ops.len()].copy_from_slice(ops);
    f
}

/// The first frame of block `i`, checked ([`frames`]).
fn frame_info(h: &Header, i: u32, block: &[u8]) -> Result<FrameInfo, FormatError> {
    match frames(h, i, block)?.next() {
        Some(f) => f.map(|f| f.info()),
        None => panic!("a block without frames"),
    }
}

fn apply_block1(file: &[u8], old: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let h = Header::parse(&file[..B])?;
    let mut o = MemFlash::<8>::from_bytes(old);
    let mut n = MemFlash::<8>::erased(h.image_len() as usize);
    Applier::new().apply_block(&h, 1, &file[B..2 * B], &mut o, &mut n)?;
    Ok(n.into_bytes())
}

/// `file`'s block 0 with `edit` applied and the CRC recomputed.
fn edit_header(file: &[u8], edit: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut h = file[..B].to_vec();
    edit(&mut h);
    let k = u16::from_le_bytes([h[0x18], h[0x19]]) as usize;
    let at = 0x60 + 6 * k.min(128);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&h[..at]);
    h[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    h
}

fn parse_err(h: &[u8]) -> FormatError {
    Header::parse(h).unwrap_err()
}

#[test]
fn the_valid_fixture_applies() {
    let (f, old) = delta_file();
    let out = apply_block1(&f, &old).unwrap();
    assert_eq!(out[100], old[100] ^ 0x55);
}

#[test]
fn header_rules_each_have_their_error() {
    let (f, _) = delta_file();
    assert!(matches!(
        parse_err(&f[..0x40]),
        FormatError::Truncated {
            needed: 0x60,
            available: 0x40
        }
    ));
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0] = b'X')),
        FormatError::BadMagic
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[4] = 2)),
        FormatError::UnsupportedVersion(2)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[5] = 7)),
        FormatError::UnknownKind(7)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[6] = 9)),
        FormatError::UnknownCodec(9)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[7] = 3)),
        FormatError::CodecParams { a: 3, b: 0 }
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| {
            h[6] = 1;
            h[7] = 12;
            h[8] = 4;
        })),
        FormatError::CodecParams { a: 12, b: 4 }
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x0A] = 1)),
        FormatError::ReservedNotZero
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x1B] = 1)),
        FormatError::ReservedNotZero
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x0C..0x10]
            .copy_from_slice(&1000u32.to_le_bytes()))),
        FormatError::BlockSize(1000)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x0C..0x10].copy_from_slice(&512u32.to_le_bytes()))),
        FormatError::BlockSize(512)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x0C..0x10]
            .copy_from_slice(&2048u32.to_le_bytes()))),
        FormatError::BlockLength {
            expected: 2048,
            found: 1024
        }
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x10..0x14].fill(0))),
        FormatError::EmptyImage
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x14..0x18]
            .copy_from_slice(&5000u32.to_le_bytes()))),
        FormatError::ChunkSize(5000)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x14..0x18]
            .copy_from_slice(&2048u32.to_le_bytes()))),
        FormatError::ChunkSize(2048)
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x18] = 2)),
        FormatError::ChunkCount {
            found: 2,
            expected: 1
        }
    );
    // 129 chunks of 4 KB: more than MAX_CHUNKS even though the count matches the length.
    assert_eq!(
        parse_err(&edit_header(&f, |h| {
            h[0x10..0x14].copy_from_slice(&(129u32 * 4096).to_le_bytes());
            h[0x18] = 129;
        })),
        FormatError::ChunkCount {
            found: 129,
            expected: 129
        }
    );
    // A delta without a base; a full image with one.
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x1C..0x20].fill(0))),
        FormatError::Base
    );
    assert_eq!(parse_err(&edit_header(&f, |h| h[5] = 0)), FormatError::Base);
    // Table: first block not 1, reserved byte set.
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x60] = 2)),
        FormatError::Table { chunk: 0 }
    );
    assert_eq!(
        parse_err(&edit_header(&f, |h| h[0x65] = 1)),
        FormatError::Table { chunk: 0 }
    );
    // CRC: any byte changed without recomputing it.
    let mut bad = f[..B].to_vec();
    bad[0x30] ^= 1;
    assert!(matches!(parse_err(&bad), FormatError::Crc { .. }));
    // Padding after the CRC must be zero.
    let mut bad = f[..B].to_vec();
    bad[B - 1] = 1;
    assert_eq!(parse_err(&bad), FormatError::ReservedNotZero);
}

#[test]
fn inconsistent_table_between_chunks_is_refused() {
    let img: Vec<u8> = bytes(3, 3 * 4096);
    let f = encode::full(&img, &p(Codec::Heatshrink)).unwrap();
    let h = Header::parse(&f[..B]).unwrap();
    let c0 = h.chunk(0).unwrap();
    // Chunk 1 starting two blocks after chunk 0's last leaves a gap after chunk 0's frames.
    let late = c0.first_block + c0.blocks + 1;
    let bad = edit_header(&f, |b| {
        b[0x66..0x68].copy_from_slice(&(late as u16).to_le_bytes())
    });
    assert_eq!(parse_err(&bad), FormatError::Table { chunk: 1 });
}

#[test]
fn frame_rules_each_have_their_error() {
    let (f, old) = delta_file();
    let h = Header::parse(&f[..B]).unwrap();
    let frame = &f[B..];
    assert!(frame_info(&h, 1, frame).is_ok());
    assert_eq!(frame_info(&h, 0, frame), Err(FormatError::BlockIndex(0)));
    assert_eq!(frame_info(&h, 2, frame), Err(FormatError::BlockIndex(2)));
    assert!(matches!(
        frame_info(&h, 1, &frame[..10]),
        Err(FormatError::Truncated { .. })
    ));
    let mut long = frame.to_vec();
    long.push(0);
    assert_eq!(
        frame_info(&h, 1, &long),
        Err(FormatError::BlockLength {
            expected: 1024,
            found: 1025
        })
    );
    let edit = |at: usize, v: &[u8]| {
        let mut b = frame.to_vec();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    assert_eq!(
        frame_info(&h, 1, &edit(0, &[0x46, 0x52])),
        Err(FormatError::FrameMagic)
    );
    assert_eq!(
        frame_info(&h, 1, &edit(2, &[1, 0])),
        Err(FormatError::FrameChunk {
            found: 1,
            expected: 0
        })
    );
    // Offset not a multiple of 256; range past the image; empty range.
    assert!(matches!(
        frame_info(&h, 1, &edit(4, &[1, 0, 0, 0])),
        Err(FormatError::FrameRange { .. })
    ));
    assert!(matches!(
        frame_info(&h, 1, &edit(8, &[0, 3, 0, 0])),
        Err(FormatError::FrameRange { .. })
    ));
    assert!(matches!(
        frame_info(&h, 1, &edit(8, &[0, 0, 0, 0])),
        Err(FormatError::FrameRange { .. })
    ));
    // Length not a multiple of 256 and not ending at the image's end.
    assert!(matches!(
        frame_info(&h, 1, &edit(8, &[0x10, 1, 0, 0])),
        Err(FormatError::FrameRange { .. })
    ));
    assert!(matches!(
        frame_info(&h, 1, &edit(4, &[0xFF, 0xFF, 0xFF, 0xFF])),
        Err(FormatError::FrameRange { .. })
    ));
    assert_eq!(
        frame_info(&h, 1, &edit(12, &[0xF1, 3, 0, 0])),
        Err(FormatError::PayloadLength(0x3F1))
    );
    // The applier refuses the same blocks before writing anything.
    let mut n = MemFlash::<8>::erased(512);
    let mut o = MemFlash::<8>::from_bytes(&old);
    assert_eq!(
        Applier::new().apply_block(&h, 1, &edit(2, &[1, 0]), &mut o, &mut n),
        Err(ApplyError::Format(FormatError::FrameChunk {
            found: 1,
            expected: 0
        }))
    );
    assert_eq!(n.writes(), 0);
}

#[test]
fn op_stream_errors() {
    let (f, old) = delta_file();
    let run = |ops: &[u8]| apply_block1(&with_ops(&f, ops), &old).map(|_| ());
    // Output overflow: LITERAL, FILL and COPY longer than the frame; a diff run past its COPY.
    assert_eq!(
        run(&[0x02, 0x81, 0x04]),
        Err(ApplyError::Corrupt(Corrupt::Overflow))
    );
    assert_eq!(
        run(&[0x03, 0x81, 0x04, 0]),
        Err(ApplyError::Corrupt(Corrupt::Overflow))
    );
    assert_eq!(
        run(&[0x01, 0x81, 0x04, 0]),
        Err(ApplyError::Corrupt(Corrupt::Overflow))
    );
    assert_eq!(
        run(&[0x01, 0x10, 0x00, 0x11]),
        Err(ApplyError::Corrupt(Corrupt::Overflow))
    );
    assert_eq!(
        run(&[0x01, 0x10, 0x00, 0x08, 0x09]),
        Err(ApplyError::Corrupt(Corrupt::Overflow))
    );
    // Underflow: a valid stream that stops short; an empty payload.
    assert_eq!(
        run(&[0x03, 0x80, 0x02, 0]),
        Err(ApplyError::Corrupt(Corrupt::Underflow))
    );
    assert_eq!(run(&[]), Err(ApplyError::Corrupt(Corrupt::Underflow)));
    // A stream that ends inside an op.
    assert_eq!(
        run(&[0x02, 0x80, 0x04, 1, 2]),
        Err(ApplyError::Corrupt(Corrupt::TruncatedOp))
    );
    assert_eq!(
        run(&[0x01, 0x80]),
        Err(ApplyError::Corrupt(Corrupt::TruncatedOp))
    );
    // COPY outside the old image: before its start, past its end.
    assert_eq!(run(&[0x01, 0x10, 0x01]), Err(ApplyError::OldOutOfRange));
    assert_eq!(
        run(&[0x01, 0x80, 0x04, 0x02]),
        Err(ApplyError::OldOutOfRange)
    );
    // Varints: six bytes; five bytes above u32.
    assert_eq!(
        run(&[0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
        Err(ApplyError::Corrupt(Corrupt::Varint))
    );
    assert_eq!(
        run(&[0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]),
        Err(ApplyError::Corrupt(Corrupt::Varint))
    );
    // Unknown tags, also after valid ops.
    assert_eq!(
        run(&[0x00]),
        Err(ApplyError::Corrupt(Corrupt::UnknownTag(0)))
    );
    assert_eq!(
        run(&[0x03, 0x10, 0x00, 0x04]),
        Err(ApplyError::Corrupt(Corrupt::UnknownTag(4)))
    );
    // A whole valid stream still works through the same helper: COPY all 512 unchanged.
    assert_eq!(run(&[0x01, 0x80, 0x04, 0x00, 0x80, 0x04, 0x00]), Ok(()));
}

#[test]
fn corrupted_compressed_payload_is_an_error() {
    let img = bytes(5, 8192);
    let f = encode::full(&img, &p(Codec::Heatshrink)).unwrap();
    assert_eq!(encode::apply(&f, &[]).unwrap(), img);
    let h = Header::parse(&f[..B]).unwrap();
    let mut errors = 0;
    for at in (16..200).step_by(7) {
        let mut g = f.clone();
        g[B + at] ^= 0x5A;
        let mut n = MemFlash::<8>::erased(8192);
        let mut o = MemFlash::<8>::erased(0);
        if Applier::new()
            .apply_block(&h, 1, &g[B..2 * B], &mut o, &mut n)
            .is_err()
        {
            errors += 1;
        }
        // Whatever the frame decodes to, the whole file does not pass as the image.
        assert!(encode::apply(&g, &[]).is_err());
    }
    assert!(errors > 0);
    // A truncated compressed payload (P shortened) ends in an error, not a short frame.
    let mut g = f.clone();
    let plen = u32::from_le_bytes([g[B + 12], g[B + 13], g[B + 14], g[B + 15]]);
    g[B + 12..B + 16].copy_from_slice(&(plen / 2).to_le_bytes());
    let mut n = MemFlash::<8>::erased(8192);
    let mut o = MemFlash::<8>::erased(0);
    assert!(
        Applier::new()
            .apply_block(&h, 1, &g[B..2 * B], &mut o, &mut n)
            .is_err()
    );
}

#[test]
fn whole_file_errors() {
    let (f, old) = delta_file();
    assert!(matches!(
        encode::apply(&f[..B + 10], &old),
        Err(ApplyError::Format(FormatError::Truncated { .. }))
    ));
    assert!(matches!(
        encode::apply(&f[..20], &old),
        Err(ApplyError::Format(_))
    ));
    let mut other = old.clone();
    other[0] ^= 1;
    assert_eq!(encode::apply(&f, &other), Err(ApplyError::BaseHash));
    assert_eq!(encode::apply(&f, &old[..100]), Err(ApplyError::BaseHash));
    // A frame that decodes to other bytes: the image hash catches it.
    let mut g = f.clone();
    // COPY 512 (80 04), delta 0, skip 100, 1 changed byte, skip 411, none changed.
    assert_eq!(g[B + 16..B + 22], [0x01, 0x80, 0x04, 0x00, 0x64, 0x01]);
    assert_eq!(g[B + 23..B + 26], [0x9b, 0x03, 0x00]);
    g[B + 16 + 6] ^= 1;
    assert_eq!(encode::apply(&g, &old), Err(ApplyError::ImageHash));
}

#[test]
fn fill_chunks() {
    let mut img = vec![0u8; 3 * 4096];
    img[4096..8192].fill(0xFF);
    img[8192 + 5] = 9;
    let f = encode::full(&img, &p(Codec::Heatshrink)).unwrap();
    let h = Header::parse(&f[..B]).unwrap();
    assert_eq!(h.block_count(), 2);
    let mut n = MemFlash::<8>::erased(img.len());
    fill_chunk(&h, 1, &mut n).unwrap();
    assert_eq!(n.writes(), 0, "0xFF fill writes nothing");
    fill_chunk(&h, 0, &mut n).unwrap();
    assert_eq!(n.bytes_written(), 4096);
    assert_eq!(
        fill_chunk(&h, 2, &mut n),
        Err(ApplyError::ChunkHasFrames(2))
    );
    assert_eq!(
        fill_chunk(&h, 3, &mut n),
        Err(ApplyError::Format(FormatError::ChunkIndex(3)))
    );
    // A new flash smaller than the image: refused before writing.
    let mut img = bytes(2, 8192);
    img[4096..].fill(0);
    let f = encode::full(&img, &p(Codec::Heatshrink)).unwrap();
    let h = Header::parse(&f[..B]).unwrap();
    let mut small = MemFlash::<8>::erased(4096);
    assert_eq!(
        fill_chunk(&h, 1, &mut small),
        Err(ApplyError::Write(
            embedded_storage::nor_flash::NorFlashErrorKind::OutOfBounds
        ))
    );
    assert_eq!(small.writes(), 0);
}

#[test]
fn erased_words_are_not_written() {
    // Half the chunk is 0xFF inside a frame (as FILL) and some words of data are 0xFF too.
    let mut img = bytes(9, 4096);
    img[2048..].fill(0xFF);
    img[64..72].fill(0xFF);
    let f = encode::full(&img, &p(Codec::Heatshrink)).unwrap();
    let h = Header::parse(&f[..B]).unwrap();
    let mut n = MemFlash::<8>::erased(4096);
    let mut o = MemFlash::<8>::erased(0);
    let mut a = Applier::new();
    for i in 1..h.block_count() {
        a.apply_block(
            &h,
            i,
            &f[i as usize * B..((i as usize + 1) * B).min(f.len())],
            &mut o,
            &mut n,
        )
        .unwrap();
    }
    assert_eq!(&n.bytes()[..4096], &img[..]);
    assert_eq!(n.bytes_written(), 2048 - 8);
}

#[test]
fn image_end_not_on_a_write_word() {
    // 1001 bytes: the last frame ends at the image's end, its tail word padded with 0xFF.
    let img = bytes(4, 1001);
    for codec in [Codec::Stored, Codec::Heatshrink] {
        let f = encode::full(&img, &p(codec)).unwrap();
        assert_eq!(encode::apply(&f, &[]).unwrap(), img);
    }
}

#[test]
fn applier_ram_is_fixed_and_small() {
    let size = core::mem::size_of::<Applier>();
    assert!(size <= 16 * 1024, "{size}");
    // The figure stated in the crate docs (64-bit host; smaller on a 32-bit MCU).
    #[cfg(target_pointer_width = "64")]
    assert_eq!(size, 1472);
    assert!(core::mem::size_of::<Header>() <= 1024);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random payloads under a valid frame header, compressed or stored: an error or a frame,
    /// never a panic, and never a write outside the frame's range.
    #[test]
    fn random_payloads_never_panic(payload in prop::collection::vec(any::<u8>(), 0..1008), heatshrink in any::<bool>()) {
        let (f, old) = delta_file();
        let mut g = with_ops(&f, &payload);
        if heatshrink {
            g[6] = 1;
            g[7] = ferrota_delta::format::HS_WINDOW_BITS;
            g[8] = ferrota_delta::format::HS_LOOKAHEAD_BITS;
            let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&g[..0x66]);
            g[0x66..0x6A].copy_from_slice(&crc.to_le_bytes());
        }
        let _ = apply_block1(&g, &old);
    }

    /// Random bytes as a whole file never panic the parser or the applier.
    #[test]
    fn random_files_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = encode::apply(&bytes, &[1, 2, 3]);
    }
}

#[test]
fn frames_sharing_a_block_keep_chunk_order_and_zero_padding() {
    // Three 4 KB chunks of zeros with one byte set each: three small frames in block 1.
    let mut img = vec![0u8; 3 * 4096];
    for c in 0..3 {
        img[c * 4096 + 5] = c as u8 + 1;
    }
    let mut f = encode::full(&img, &p(Codec::Stored)).unwrap();
    assert!(f.len() < 2 * B, "the last block ends with its frames");
    // Padded to B, so that a byte after the last frame can be set below.
    f.resize(2 * B, 0);
    let h = Header::parse(&f[..B]).unwrap();
    assert_eq!(h.chunks_of_block(1), Some((0, 3)));
    let chunks: Vec<u32> = frames(&h, 1, &f[B..])
        .unwrap()
        .map(|f| f.unwrap().info().chunk)
        .collect();
    assert_eq!(chunks, [0, 1, 2]);
    assert_eq!(encode::apply(&f, &[]).unwrap(), img);
    // Where the second and third frame headers are.
    let plen = |at: usize| u32::from_le_bytes([f[at + 12], f[at + 13], f[at + 14], f[at + 15]]);
    let second = B + 16 + plen(B) as usize;
    let third = second + 16 + plen(second) as usize;
    let with = |at: usize, v: &[u8]| {
        let mut g = f.clone();
        g[at..at + v.len()].copy_from_slice(v);
        g
    };
    let errors = |g: &[u8]| -> Vec<FormatError> {
        frames(&h, 1, &g[B..])
            .unwrap()
            .filter_map(Result::err)
            .collect()
    };
    // A frame naming a chunk before the previous frame's, or one the block does not hold.
    assert_eq!(
        errors(&with(third + 2, &[0, 0])),
        [FormatError::FrameChunk {
            found: 0,
            expected: 1
        }]
    );
    assert_eq!(
        errors(&with(second + 2, &[3, 0])),
        [FormatError::FrameChunk {
            found: 3,
            expected: 0
        }]
    );
    // A byte after the last frame that is not padding.
    assert_eq!(
        errors(&with(2 * B - 1, &[1])),
        [FormatError::ReservedNotZero]
    );
    // Each refusal stops the whole file from rebuilding.
    assert!(encode::apply(&with(third + 2, &[0, 0]), &[]).is_err());
    assert!(encode::apply(&with(2 * B - 1, &[1]), &[]).is_err());
}

#[test]
fn a_chunk_without_frames_names_block_0() {
    let mut img = vec![0u8; 3 * 4096];
    img[5] = 1;
    img[2 * 4096 + 5] = 2;
    let f = encode::full(&img, &p(Codec::Stored)).unwrap();
    let h = Header::parse(&f[..B]).unwrap();
    assert_eq!(h.chunk(1).map(|e| (e.first_block, e.blocks)), Some((0, 0)));
    let bad = edit_header(&f, |b| b[0x66..0x68].copy_from_slice(&1u16.to_le_bytes()));
    assert_eq!(parse_err(&bad), FormatError::Table { chunk: 1 });
}
