//! Arbitrary bytes as a packed file: block 0 parsed as a header, every further block's frames
//! checked and applied into in-memory NOR flashes (old image: a fixed pattern). Must never panic; an error
//! for any block is fine, and so is success on whatever a frame decodes to.
#![no_main]

use ferrota_delta::mem::MemFlash;
use ferrota_delta::{Applier, Header, fill_chunk, frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the block size, so short inputs reach the frame code too.
    let Some((sel, data)) = data.split_first() else {
        return;
    };
    let b = 1024usize << (sel % 3);
    let mut blocks = data.chunks(b);
    let Some(block0) = blocks.next() else {
        return;
    };
    let mut block0 = block0.to_vec();
    block0.resize(b, 0);
    let small = Header::parse(&block0).is_ok_and(|h| h.image_len() <= 1 << 20);
    let _ = apply_blocks(&block0, blocks);
    // The whole-file path too (hash checks, chunk order), where its output buffer is small:
    // `encode::apply` allocates the whole image.
    if small {
        let _ = ferrota_delta::encode::apply(data, &[0x5A; 4096]);
    }
});

fn apply_blocks<'a>(block0: &[u8], blocks: impl Iterator<Item = &'a [u8]>) -> Option<()> {
    let h = Header::parse(block0).ok()?;
    let mut old = MemFlash::<8>::from_bytes(&[0x5A; 4096]);
    let mut new = MemFlash::<8>::erased(h.image_len().min(1 << 20) as usize);
    let mut a = Applier::new();
    for c in 0..h.chunk_count() {
        let _ = fill_chunk(&h, c, &mut new);
    }
    for (i, block) in blocks.enumerate() {
        let i = i as u32 + 1;
        if let Ok(fs) = frames(&h, i, block) {
            let _ = fs.count();
        }
        let _ = a.apply_block(&h, i, block, &mut old, &mut new);
    }
    Some(())
}
