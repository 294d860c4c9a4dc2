//! The byte layout of block 0 and of a frame, pinned: a change here is a format change (bump
//! the version) and the agent, the server and old files must agree with it.

use ferrota_delta::encode::{self, Params};
use ferrota_delta::{Codec, Header, Kind};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn full_image_layout() {
    // 600 bytes: 256 counting bytes, then 344 zeros (a FILL).
    let mut img: Vec<u8> = (0..=255u8).collect();
    img.resize(600, 0);
    let p = Params {
        block_size: 1024,
        chunk_size: 4096,
        codec: Codec::Stored,
    };
    let f = encode::full(&img, &p).unwrap();
    // Block 0, then the last block, which ends with its one frame (16 + 263 bytes).
    assert_eq!(f.len(), 1024 + 279);
    let sha = "0000000000000000000000000000000000000000000000000000000000000000";
    let expected_header = [
        "4652504b", // "FRPK"
        "01",       // version
        "00",       // kind: full
        "00", "00", "00",       // codec stored, params 0, 0
        "000000",   // reserved
        "00040000", // block size 1024
        "58020000", // image length 600
        "00100000", // chunk size 4096
        "0100",     // chunk count 1
        "0000",     // reserved
        "00000000", // base length 0
    ]
    .concat();
    assert_eq!(hex(&f[..0x20]), expected_header);
    assert_eq!(hex(&f[0x20..0x40]), hex(&sha2_of(&img)));
    assert_eq!(hex(&f[0x40..0x60]), sha);
    // Chunk table: first block 1, 1 block, fill 0, reserved 0; then the CRC-32 (IEEE).
    assert_eq!(hex(&f[0x60..0x66]), "010001000000");
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&f[..0x66]);
    assert_eq!(f[0x66..0x6A], crc.to_le_bytes());
    assert!(f[0x6A..1024].iter().all(|&b| b == 0));

    // The frame: magic "RF", chunk 0, offset 0, length 600, payload length 263.
    let frame = &f[1024..];
    assert_eq!(hex(&frame[..16]), "52460000000000005802000007010000");
    // LITERAL 256 (varint 80 02) + the bytes, then FILL 344 (varint d8 02) of 0x00.
    assert_eq!(hex(&frame[16..19]), "028002");
    assert_eq!(&frame[19..19 + 256], &img[..256]);
    assert_eq!(hex(&frame[275..279]), "03d80200");
    assert_eq!(frame.len(), 279);

    let h = Header::parse(&f[..1024]).unwrap();
    assert_eq!(h.kind(), Kind::Full);
    assert_eq!(h.max_file_len(), 2048);
    // The same file with its last block padded to B is just as valid.
    let mut padded = f.clone();
    padded.resize(2048, 0);
    assert_eq!(encode::apply(&padded, &[]).unwrap(), img);
    assert_eq!(encode::apply(&f, &[]).unwrap(), img);
}

#[test]
fn delta_copy_layout() {
    // Old: 512 counting bytes; new: the same with bytes 10 and 11 raised by 1 and 2.
    let old: Vec<u8> = (0..512u32).map(|i| (i * 7 + 1) as u8).collect();
    let mut new = old.clone();
    new[10] = new[10].wrapping_add(1);
    new[11] = new[11].wrapping_add(2);
    let p = Params {
        block_size: 1024,
        chunk_size: 4096,
        codec: Codec::Stored,
    };
    let f = encode::delta(&old, &new, &p).unwrap();
    assert_eq!(f[5], 1, "kind: delta");
    assert_eq!(f[0x1C..0x20], 512u32.to_le_bytes());
    assert_eq!(f[0x40..0x60], sha2_of(&old));
    // COPY 512 (80 04), delta 0; skip 10, 2 changed bytes (+1, +2), skip 500, 0 changed.
    let frame = &f[1024..];
    assert_eq!(hex(&frame[12..16]), "0b000000");
    assert_eq!(hex(&frame[16..27]), "018004000a020102f40300");
}

fn sha2_of(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
