//! Property tests: parsing untrusted bytes never panics, and what is accepted obeys the rules.

use ferrota_image::header::{CySafHeader, MIN_OBJ_SIZE};
use ferrota_image::inspect::inspect;
use ferrota_image::layout::SIGNATURE_SLOT_SIZE;
use ferrota_image::ota::OtaSignature;
use ferrota_image::sflash_key::parse_key_object;
use ferrota_image::version::{HARDWARE_ID_LEN, RECORD_AREA, VersionRecord};
use ferrota_image::{FirmwareVersion, HardwareId, Region};
use proptest::prelude::*;

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![Just(Region::Cm0p), Just(Region::Cm7_0), Just(Region::Cm7_1)]
}

proptest! {
    #[test]
    fn accepted_headers_keep_the_signature_inside_the_region(
        region in region(),
        words in prop::array::uniform6(prop_oneof![any::<u32>(), 0u32..0x40_0000, Just(0xF0), Just(1)]),
        core_ok in any::<bool>(),
    ) {
        let mut w = words;
        if core_ok { w[5] = region.core_id(); }
        let mut raw = [0u8; 24];
        for (i, x) in w.iter().enumerate() { raw[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes()); }
        if let Ok(h) = CySafHeader::parse(region, &raw) {
            prop_assert!(h.obj_size >= MIN_OBJ_SIZE);
            prop_assert!(u64::from(h.obj_size) + u64::from(SIGNATURE_SLOT_SIZE) <= u64::from(region.size()));
            prop_assert_eq!(h.core0_vt, 0xF0);
            prop_assert_eq!(h.num_cores, 1);
            prop_assert_eq!(h.core0_id, region.core_id());
            prop_assert_eq!(h.encode(), raw);
        } else if let Err(e) = CySafHeader::parse(region, &raw) {
            prop_assert_eq!(e.region, Some(region));
            prop_assert!(e.offset >= region.offset() && e.offset < region.offset() + 24);
        }
    }

    #[test]
    fn version_records_round_trip(
        version in any::<u32>(),
        counter in any::<u32>(),
        hw in "[!-~]{0,32}",
        cm7_1 in any::<bool>(),
    ) {
        let r = VersionRecord {
            version: FirmwareVersion(version),
            security_counter: counter,
            hardware: HardwareId::new(&hw).unwrap(),
            flags: u32::from(cm7_1),
        };
        prop_assert_eq!(VersionRecord::parse(&r.encode()), Ok(r));
        prop_assert_eq!(FirmwareVersion::parse(&r.version.to_string()), Some(r.version));
    }

    #[test]
    fn version_record_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), RECORD_AREA)) {
        let mut a = [0u8; RECORD_AREA];
        a.copy_from_slice(&bytes);
        if let Ok(r) = VersionRecord::parse(&a) {
            prop_assert!(r.hardware.as_str().len() <= HARDWARE_ID_LEN);
            prop_assert_eq!(r.encode(), a);
        }
    }

    #[test]
    fn inspect_and_key_objects_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let s = inspect(&bytes);
        prop_assert_eq!(s.len, bytes.len());
        let _ = parse_key_object(&bytes);
    }

    #[test]
    fn ota_signature_parser_never_panics(text in ".{0,600}") {
        let _ = OtaSignature::from_base64(&text);
    }
}
