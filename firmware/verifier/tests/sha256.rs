//! `ferrota_fw_verifier::sha256` against RustCrypto's `sha2`: every length around the padding
//! boundaries, random lengths and contents, multi-block messages, and incremental updates split
//! at random points.

use ferrota_fw_verifier::sha256;
use sha2::{Digest, Sha256};

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn reference(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[test]
fn known_answers() {
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(sha256::digest(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex(sha256::digest(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(sha256::digest(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn boundary_lengths() {
    let mut rng = Rng(0x5eed_0001);
    for len in [
        0, 1, 3, 4, 31, 32, 54, 55, 56, 57, 62, 63, 64, 65, 119, 120, 127, 128, 129, 191, 192, 193,
        255, 256, 1000, 1024, 4096,
    ] {
        for fill in [Some(0u8), Some(0xff), None] {
            let data = match fill {
                Some(b) => vec![b; len],
                None => rng.bytes(len),
            };
            assert_eq!(
                sha256::digest(&data),
                reference(&data),
                "len {len} fill {fill:?}"
            );
        }
    }
}

#[test]
fn random_lengths_and_contents() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..2000 {
        let len = match rng.below(3) {
            0 => rng.below(130),
            1 => rng.below(1100),
            _ => rng.below(70_000),
        };
        let data = rng.bytes(len);
        assert_eq!(sha256::digest(&data), reference(&data), "len {len}");
    }
}

#[test]
fn incremental_updates() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..500 {
        let len = rng.below(3000);
        let data = rng.bytes(len);
        let mut h = sha256::Sha256::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = rng.below(rest.len().min(200) + 1);
            h.update(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(h.finalize(), reference(&data), "len {len}");
    }
}

#[test]
fn compress_matches_sha2() {
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..200 {
        let n = 1 + rng.below(8);
        let blocks: Vec<[u8; 64]> = (0..n).map(|_| rng.bytes(64).try_into().unwrap()).collect();
        let mut ours = [
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
            rng.next() as u32,
        ];
        let mut theirs = ours;
        sha256::compress(&mut ours, &blocks);
        sha2::block_api::compress256(&mut theirs, &blocks);
        assert_eq!(ours, theirs);
    }
}
