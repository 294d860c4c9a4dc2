//! The bootloader's checks through the read callback: a good bank passes, a flipped byte fails;
//! the version record parses into the C struct.

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;

use common::CData;
use ferrota_agent_ffi::*;
use ferrota_sim::images::ota::{BOARD, FULL, Spec, image};

/// `user` is a `Vec<u8>` holding the bank.
unsafe extern "C" fn read_vec(user: *mut c_void, off: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: the test passes a live `Vec<u8>`; `buf` is writable for `len`.
    let (bank, out) = unsafe {
        (
            &*user.cast::<Vec<u8>>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let start = off as usize;
    match bank.get(start..start + len) {
        Some(s) => {
            out.copy_from_slice(s);
            0
        }
        None => -1,
    }
}

fn verify(
    bank: &mut Vec<u8>,
    key: &FerrotaBootKey,
    out: *mut FerrotaVersionRecord,
) -> FerrotaStatus {
    let len = bank.len() as u32;
    // SAFETY: `bank` and `key` live for the call.
    unsafe { ferrota_verify_bank(Some(read_vec), (bank as *mut Vec<u8>).cast(), len, key, out) }
}

#[test]
fn a_good_bank_passes_and_a_flipped_byte_fails() {
    let data = CData::new();
    let mut bank = image(Spec::new(3, 7).len(FULL)).file.clone();
    let mut rec = std::mem::MaybeUninit::<FerrotaVersionRecord>::uninit();
    assert_eq!(
        verify(&mut bank, &data.key, rec.as_mut_ptr()),
        FerrotaStatus::FerrotaOk
    );
    // SAFETY: written on OK.
    let rec = unsafe { rec.assume_init() };
    assert_eq!(
        (rec.major, rec.minor, rec.build, rec.security_counter),
        (1, 3, 0, 7)
    );
    assert_eq!(
        &rec.hardware_id[..usize::from(rec.hardware_id_len)],
        BOARD.as_bytes()
    );
    assert_eq!(rec.hardware_id[usize::from(rec.hardware_id_len)], 0);
    // Without an out pointer too.
    assert_eq!(
        verify(&mut bank, &data.key, null_mut()),
        FerrotaStatus::FerrotaOk
    );
    for region in 0..3 {
        let len = bank.len() as u32;
        // SAFETY: as above.
        let st = unsafe {
            ferrota_verify_region(
                Some(read_vec),
                (&mut bank as *mut Vec<u8>).cast(),
                len,
                region,
                &*data.key,
            )
        };
        assert!(
            matches!(
                st,
                FerrotaStatus::FerrotaOk | FerrotaStatus::FerrotaErrImage
            ),
            "region {region}: {st:?}"
        );
        if region == 0 {
            assert_eq!(st, FerrotaStatus::FerrotaOk);
        }
    }

    // One flipped byte anywhere signed (the CM0+ code, the version record) is refused.
    for at in [0x40usize, 0x120, 0x1_0100] {
        let mut bad = bank.clone();
        bad[at] ^= 0x01;
        assert_eq!(
            verify(&mut bad, &data.key, null_mut()),
            FerrotaStatus::FerrotaErrImage,
            "flip at {at:#x}"
        );
    }
    let mut bad = bank.clone();
    bad[0x120] ^= 0x80;
    let len = bad.len() as u32;
    // SAFETY: as above.
    let st = unsafe {
        ferrota_verify_region(
            Some(read_vec),
            (&mut bad as *mut Vec<u8>).cast(),
            len,
            0,
            &*data.key,
        )
    };
    assert_eq!(st, FerrotaStatus::FerrotaErrImage);
}

#[test]
fn bad_arguments_are_refused() {
    let data = CData::new();
    let mut bank = image(Spec::new(3, 7).len(FULL)).file.clone();
    let len = bank.len() as u32;
    let user = (&mut bank as *mut Vec<u8>).cast::<c_void>();
    // SAFETY (whole block): valid pointers, or the bad ones under test.
    unsafe {
        assert_eq!(
            ferrota_verify_bank(None, user, len, &*data.key, null_mut()),
            FerrotaStatus::FerrotaErrNull
        );
        assert_eq!(
            ferrota_verify_bank(Some(read_vec), user, len, std::ptr::null(), null_mut()),
            FerrotaStatus::FerrotaErrNull
        );
        let blank: FerrotaBootKey = std::mem::zeroed();
        assert_eq!(
            ferrota_verify_bank(Some(read_vec), user, len, &blank, null_mut()),
            FerrotaStatus::FerrotaErrNotInitialized
        );
        assert_eq!(
            ferrota_verify_region(Some(read_vec), user, len, 3, &*data.key),
            FerrotaStatus::FerrotaErrInvalid
        );
        // A bank length shorter than the image: reads beyond it fail, so does the check.
        assert_eq!(
            ferrota_verify_bank(Some(read_vec), user, 0x100, &*data.key, null_mut()),
            FerrotaStatus::FerrotaErrImage
        );
        // Key objects.
        let mut key: FerrotaBootKey = std::mem::zeroed();
        assert_eq!(
            ferrota_boot_key_parse(std::ptr::null(), 4, &mut key),
            FerrotaStatus::FerrotaErrNull
        );
        assert_eq!(
            ferrota_boot_key_parse([0u8; 4].as_ptr(), 4, &mut key),
            FerrotaStatus::FerrotaErrKeyObject
        );
        assert_eq!(
            ferrota_boot_key_parse([0xFFu8; 64].as_ptr(), 64, &mut key),
            FerrotaStatus::FerrotaErrKeyObject
        );
        // Version records.
        let mut rec = std::mem::MaybeUninit::<FerrotaVersionRecord>::uninit();
        let area = &bank[0x18..0x100];
        assert_eq!(
            ferrota_version_record_parse(area.as_ptr(), area.len(), rec.as_mut_ptr()),
            FerrotaStatus::FerrotaOk
        );
        assert_eq!(rec.assume_init().minor, 3);
        assert_eq!(
            ferrota_version_record_parse(area.as_ptr(), area.len() - 1, rec.as_mut_ptr()),
            FerrotaStatus::FerrotaErrBufferTooSmall
        );
        assert_eq!(
            ferrota_version_record_parse(std::ptr::null(), area.len(), rec.as_mut_ptr()),
            FerrotaStatus::FerrotaErrNull
        );
        assert_eq!(
            ferrota_version_record_parse(area.as_ptr(), area.len(), null_mut()),
            FerrotaStatus::FerrotaErrNull
        );
        let zeros = [0u8; FERROTA_RECORD_AREA];
        assert_eq!(
            ferrota_version_record_parse(zeros.as_ptr(), zeros.len(), rec.as_mut_ptr()),
            FerrotaStatus::FerrotaErrImage
        );
    }
}
