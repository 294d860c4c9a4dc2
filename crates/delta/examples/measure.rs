//! Measures packed sizes on bank images (the numbers in the crate docs):
//!
//! ```text
//! cargo run --release -p ferrota-delta --example measure [CODE_V1 CODE_V2]
//! ```
//!
//! Builds signed 4,161,536-byte banks with `ferrota_image::build::BankBuilder`, as
//! `ferrota image pack` does, for three v1.0.0 → v1.1.0 pairs:
//! * `bump`: the same stand-in code (`sample_build`), only the version changes (headers,
//!   version record and signatures differ);
//! * `edit`: stand-in code (random bytes, 256 KB in CM7_0) with random edits: an insertion,
//!   a deletion, scattered byte changes and address-like words shifted after the insertion;
//! * `code` (with two files): real code in CM7_0, e.g. the .text/.rodata of two builds.
//!
//! and prints, per pair, the packed full image and the delta (÷ image, ÷ code size), with
//! heatshrink at several window/lookahead sizes and stored, and the time to encode and apply.

use std::time::Instant;

use ferrota_delta::Codec;
use ferrota_delta::encode::{self, Params};
use ferrota_image::build::{BankBuilder, Segment, sample_build, sample_bytes};
use ferrota_image::layout::ACTIVE_BANK_BASE;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

fn bank(version: FirmwareVersion, cm7_code: &[u8]) -> Vec<u8> {
    let key = BootSigningKey::EcdsaP256(SigningKey::from_slice(&[0x11; 32]).expect("key"));
    let record = VersionRecord {
        version,
        security_counter: 1,
        hardware: HardwareId::new("KIT_T2G-B-H_LITE").expect("id"),
        flags: 0,
    };
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x2000, 7))
        .expect("cm0+");
    let base = ACTIVE_BANK_BASE + Region::Cm7_0.offset();
    let mut code = cm7_code.to_vec();
    code[..4].copy_from_slice(&0x2802_0000u32.to_le_bytes());
    code[4..8].copy_from_slice(&(base + 0x201).to_le_bytes());
    b.add(
        Region::Cm7_0,
        &[Segment {
            address: base + 0x100,
            data: code,
        }],
    )
    .expect("cm7_0");
    b.add(Region::Cm7_1, &sample_build(Region::Cm7_1, 0x400, 7))
        .expect("cm7_1");
    b.finish(&key).expect("sign")
}

/// Random edits as a release makes them: code inserted (later code shifts, and the words that
/// point past it change), some removed, scattered byte changes.
fn edited(code: &[u8]) -> Vec<u8> {
    let mut c = code.to_vec();
    let noise = sample_bytes(99, 4096);
    let ins = c.len() / 3;
    c.splice(ins..ins, noise[..700].iter().copied());
    let del = c.len() * 2 / 3;
    c.drain(del..del + 300);
    for k in 0..60 {
        let at = (k * 4099 + 17) % c.len();
        c[at] = c[at].wrapping_add(noise[1000 + k] | 1);
    }
    // Address-like words after the insertion move by its length.
    let mut i = ins & !3;
    while i + 4 <= c.len() {
        let w = u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]).wrapping_add(700);
        c[i..i + 4].copy_from_slice(&w.to_le_bytes());
        i += 512;
    }
    c
}

/// Payload bytes in the frames of a packed file (the file less headers and padding): what a
/// codec choice changes before the 4 KB block granularity hides it.
fn payload(packed: &[u8], block: usize) -> usize {
    packed
        .chunks(block)
        .skip(1)
        .map(|b| u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize)
        .sum()
}

/// Bytes as one heatshrink stream (W=10, L=4): given all the op streams of a stored file, what
/// self-contained frames give up.
fn one_stream(image: &[u8]) -> usize {
    use heatshrink::encoder::HeatshrinkEncoder;
    use heatshrink::{Finish, Poll};
    let mut enc = Box::new(HeatshrinkEncoder::<10, 4, 2048>::new());
    let mut buf = [0u8; 4096];
    let (mut i, mut n) = (0, 0);
    loop {
        if i < image.len() {
            i += enc.sink(&image[i..]).unwrap_or(0);
        } else if enc.finish() == Finish::Done {
            return n;
        }
        loop {
            match enc.poll(&mut buf) {
                Ok(Poll::More(k)) => n += k,
                Ok(Poll::Empty(k)) => {
                    n += k;
                    break;
                }
                Err(_) => return n,
            }
        }
    }
}

/// The op streams of a stored file, concatenated.
fn op_streams(packed: &[u8], block: usize) -> Vec<u8> {
    packed
        .chunks(block)
        .skip(1)
        .flat_map(|b| {
            let p = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
            b[16..16 + p].to_vec()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let v1 = FirmwareVersion::new(1, 0, 0);
    let v2 = FirmwareVersion::new(1, 1, 0);
    let stand_in = sample_bytes(42, 256 * 1024);
    let mut pairs = vec![
        (
            "bump",
            stand_in.len(),
            bank(v1, &stand_in),
            bank(v2, &stand_in),
        ),
        (
            "edit",
            stand_in.len(),
            bank(v1, &stand_in),
            bank(v2, &edited(&stand_in)),
        ),
    ];
    if let [a, b] = &args[..] {
        let a = std::fs::read(a).expect("read CODE_V1");
        let b = std::fs::read(b).expect("read CODE_V2");
        pairs.push(("code", b.len(), bank(v1, &a), bank(v2, &b)));
        pairs.push(("code-edit", a.len(), bank(v1, &a), bank(v2, &edited(&a))));
    }
    let p = Params::default();
    for (name, code_len, old, new) in &pairs {
        let image = new.len() as f64;
        let t = Instant::now();
        let full = encode::full(new, &p).expect("full");
        let t_full = t.elapsed();
        let t = Instant::now();
        let delta = encode::delta(old, new, &p).expect("delta");
        let t_delta = t.elapsed();
        let t = Instant::now();
        assert_eq!(&encode::apply(&full, &[]).expect("apply full"), new);
        assert_eq!(&encode::apply(&delta, old).expect("apply delta"), new);
        let t_apply = t.elapsed();
        println!(
            "{name}: image {} B, code {code_len} B | full {} B ({:.4} of image) | delta {} B ({:.5} of image, {:.3} of code) | encode full {:.2?}, delta {:.2?}, apply both {:.2?}",
            new.len(),
            full.len(),
            full.len() as f64 / image,
            delta.len(),
            delta.len() as f64 / image,
            delta.len() as f64 / *code_len as f64,
            t_full,
            t_delta,
            t_apply,
        );
        println!(
            "  payload bytes: full {} (its op streams as one heatshrink stream: {}), delta {} | delta with B=1024: {} B, B=2048: {} B",
            payload(&full, 4096),
            one_stream(&op_streams(
                &encode::full(
                    new,
                    &Params {
                        codec: Codec::Stored,
                        ..p
                    }
                )
                .expect("stored"),
                4096
            )),
            payload(&delta, 4096),
            encode::delta(
                old,
                new,
                &Params {
                    block_size: 1024,
                    ..p
                }
            )
            .expect("delta")
            .len(),
            encode::delta(
                old,
                new,
                &Params {
                    block_size: 2048,
                    ..p
                }
            )
            .expect("delta")
            .len(),
        );
        let stored = Params {
            codec: Codec::Stored,
            ..p
        };
        println!(
            "  stored: full {} B, delta {} B",
            encode::full(new, &stored).expect("full").len(),
            encode::delta(old, new, &stored).expect("delta").len()
        );
        for w in 8..=13u8 {
            let mut line = format!("  heatshrink W={w:2}:");
            for l in [4u8, 5, 6] {
                let f = encode::measure_heatshrink(None, new, &p, w, l).expect("full");
                let d = encode::measure_heatshrink(Some(old), new, &p, w, l).expect("delta");
                line += &format!(
                    "  L={l}: full {:7}/{:7} delta {:6}/{:6}",
                    f.len(),
                    payload(&f, 4096),
                    d.len(),
                    payload(&d, 4096)
                );
            }
            println!("{line}");
        }
    }
}
