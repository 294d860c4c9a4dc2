//! Feeds arbitrary bytes to the stream CBOR decoders of `ferrota-proto` (GetStream request,
//! data block, rejection). None may panic; whatever decodes must re-encode and decode to the
//! same value, and a decoded request's block plan must stay inside the file and its caps.
#![no_main]

use ferrota_proto::stream::{DataBlock, StreamRejection, StreamRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; data.len() + 64];
    if let Ok(r) = StreamRequest::decode(data) {
        let n = r.encode(&mut buf).expect("re-encode request");
        assert_eq!(StreamRequest::decode(&buf[..n]), Ok(r));
        if r.validate().is_ok() {
            let file_size = 1u32 << 20;
            let blocks = file_size.div_ceil(r.block_size);
            let mut last = None;
            let mut count = 0u32;
            for b in r.blocks_to_send(file_size) {
                assert!(b < blocks);
                assert!(last.is_none_or(|l| l < b));
                last = Some(b);
                count += 1;
            }
            assert!(count <= r.block_cap());
        }
    }
    if let Ok(b) = DataBlock::decode(data) {
        assert_eq!(b.block_size as usize, b.payload.len());
        let n = b.encode(&mut buf).expect("re-encode block");
        assert_eq!(n, b.encoded_len());
        assert_eq!(DataBlock::decode(&buf[..n]), Ok(b));
    }
    if let Ok(r) = StreamRejection::decode(data) {
        let n = r.encode(&mut buf).expect("re-encode rejection");
        assert_eq!(StreamRejection::decode(&buf[..n]), Ok(r));
    }
});
