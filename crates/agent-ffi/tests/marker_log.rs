//! The marker log through the read callback: the newest valid record, as the boot manager and
//! `ferrota_boot::log::MarkerLog` read it; bad input ends in its error and leaves `*out` alone.

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;

use common::Board;
use embedded_storage::nor_flash::ReadNorFlash;
use ferrota_agent::Platform;
use ferrota_agent_ffi::*;
use ferrota_boot::Bank;
use ferrota_boot::log::{BootState, Event, MarkerLog, SECTOR_SIZE, Trial, encode};
use ferrota_sim::platform::DevPlatform;

/// `user` is a `Vec<u8>` holding the log; reads past its end fail.
unsafe extern "C" fn read_vec(user: *mut c_void, off: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: the test passes a live `Vec<u8>`; `buf` is writable for `len`.
    let (log, out) = unsafe {
        (
            &*user.cast::<Vec<u8>>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let start = off as usize;
    match log.get(start..start + len) {
        Some(s) => {
            out.copy_from_slice(s);
            0
        }
        None => -1,
    }
}

/// A read callback that always fails (a flash driver error).
unsafe extern "C" fn read_fails(_: *mut c_void, _: u32, _: *mut u8, _: usize) -> i32 {
    -5
}

fn read(log: &mut Vec<u8>) -> (FerrotaStatus, FerrotaLogSnapshot) {
    let mut out = sentinel();
    // SAFETY: `log` and `out` live for the call.
    let st =
        unsafe { ferrota_marker_log_read(Some(read_vec), (log as *mut Vec<u8>).cast(), &mut out) };
    (st, out)
}

/// A snapshot no read produces, to see that a refused call leaves `*out` alone.
fn sentinel() -> FerrotaLogSnapshot {
    FerrotaLogSnapshot {
        present: true,
        seq: 0xDEAD,
        sector: 7,
        slot: 99,
        record: [0xA5; FERROTA_LOG_RECORD_SIZE],
    }
}

fn trial(bank: Bank) -> BootState {
    BootState {
        current: Some(bank.other()),
        trial: Some(Trial {
            bank,
            budget: 3,
            used: 0,
        }),
        event: Event::Trial { bank },
        ..BootState::EMPTY
    }
}

fn put(log: &mut [u8], sector: u32, slot: usize, raw: &[u8]) {
    let at = (sector * SECTOR_SIZE) as usize + slot * FERROTA_LOG_RECORD_SIZE;
    log[at..at + raw.len()].copy_from_slice(raw);
}

#[test]
fn the_newest_committed_record_is_read_and_a_torn_one_is_skipped() {
    let mut log = vec![0xFF; FERROTA_LOG_SIZE as usize];
    let (st, snap) = read(&mut log);
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    assert!(!snap.present, "an erased log holds no record");
    assert_eq!((snap.seq, snap.sector, snap.slot), (0, 0, 0));

    let first = encode(1, &BootState::EMPTY);
    let second = encode(2, &trial(Bank::Upper));
    put(&mut log, 0, 0, &first);
    put(&mut log, 0, 1, &second);
    let (st, snap) = read(&mut log);
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    assert!(snap.present);
    assert_eq!((snap.seq, snap.sector, snap.slot), (2, 0, 1));
    assert_eq!(snap.record, second);

    // A power cut before the commit word: the record does not count.
    let mut torn = encode(3, &BootState::EMPTY);
    torn[36..].fill(0xFF);
    put(&mut log, 0, 2, &torn);
    let (_, snap) = read(&mut log);
    assert_eq!((snap.seq, snap.slot, snap.record), (2, 1, second));

    // After a compaction the newest record lies in sector 1.
    put(&mut log, 1, 0, &encode(4, &BootState::EMPTY));
    let (_, snap) = read(&mut log);
    assert_eq!((snap.seq, snap.sector, snap.slot), (4, 1, 0));
}

#[test]
fn a_garbage_log_holds_no_record() {
    // Bytes that are neither erased nor records (a pseudo-random fill).
    let mut x = 0x1234_5678u32;
    let mut log: Vec<u8> = (0..FERROTA_LOG_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let (st, snap) = read(&mut log);
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    assert!(!snap.present);
    // A record whose CRC matches but whose fields do not decode is garbage too.
    let mut bad = encode(5, &BootState::EMPTY);
    bad[4] = 9; // an unknown format
    put(&mut log, 0, 0, &bad);
    assert!(!read(&mut log).1.present);
}

#[test]
fn bad_input_ends_in_its_error_and_leaves_out_untouched() {
    let mut log = vec![0xFF; FERROTA_LOG_SIZE as usize];
    put(&mut log, 0, 0, &encode(1, &BootState::EMPTY));
    let user: *mut c_void = (&mut log as *mut Vec<u8>).cast();
    let mut out = sentinel();
    // SAFETY: every non-null pointer is valid; the null ones are what is tested.
    unsafe {
        assert_eq!(
            ferrota_marker_log_read(None, user, &mut out),
            FerrotaStatus::FerrotaErrNull
        );
        assert_eq!(
            ferrota_marker_log_read(Some(read_vec), user, null_mut()),
            FerrotaStatus::FerrotaErrNull
        );
        assert_eq!(
            ferrota_marker_log_read(Some(read_fails), user, &mut out),
            FerrotaStatus::FerrotaErrFlash
        );
        // A log shorter than two sectors: the read past its end fails.
        let mut short = vec![0xFFu8; SECTOR_SIZE as usize];
        assert_eq!(
            ferrota_marker_log_read(
                Some(read_vec),
                (&mut short as *mut Vec<u8>).cast(),
                &mut out
            ),
            FerrotaStatus::FerrotaErrFlash
        );
        let mut block = [0u64; 8];
        let misaligned = block
            .as_mut_ptr()
            .cast::<u8>()
            .add(1)
            .cast::<FerrotaLogSnapshot>();
        assert_eq!(
            ferrota_marker_log_read(Some(read_vec), user, misaligned),
            FerrotaStatus::FerrotaErrAlignment
        );
    }
    assert_eq!(
        (out.seq, out.sector, out.slot, out.record),
        (0xDEAD, 7, 99, [0xA5; FERROTA_LOG_RECORD_SIZE])
    );
}

/// `user` is a `Board`: its marker log, as the agent's area.
unsafe extern "C" fn read_board_log(user: *mut c_void, off: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: the test passes a live `Board`; `buf` is writable for `len`.
    let (b, out) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    match DevPlatform(&mut b.dev).marker_log() {
        Ok(mut l) => i32::from(l.read(off, out).is_err()),
        Err(_) => -1,
    }
}

/// The C snapshot of `board`'s log.
fn read_board(board: &mut Board) -> FerrotaLogSnapshot {
    let mut out = sentinel();
    // SAFETY: the board and `out` live for the call.
    let st = unsafe {
        ferrota_marker_log_read(Some(read_board_log), (board as *mut Board).cast(), &mut out)
    };
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    out
}

#[test]
fn a_board_s_log_reads_as_the_boot_crate_reads_it() {
    let mut board = Board::new();
    // A fresh board boots its lower bank without writing a record.
    assert!(!read_board(&mut board).present);
    let want = {
        let mut p = DevPlatform(&mut board.dev);
        let flash = p.marker_log().expect("the log area");
        let mut log = MarkerLog::new(flash).expect("4 KB");
        log.append(&trial(Bank::Upper)).expect("appended");
        log.read().expect("readable")
    };
    let out = read_board(&mut board);
    let at = want.at.expect("a record");
    assert!(out.present);
    assert_eq!(
        (out.seq, out.sector, out.slot),
        (want.seq, at.sector as u32, at.slot as u32)
    );
    assert_eq!(out.record, encode(want.seq, &want.state));
}
