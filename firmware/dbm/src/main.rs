//! The Dual Bank Manager on the CM0+ (here: QEMU's Cortex-M0 `microbit`, or the `mps2-an500`).
//!
//! What the chip's DBM does from reset, over the emulated windows of
//! [`ferrota_qemu_harness::map`]:
//!
//! 1. the ROM's S-HASH check over SFlash ([`ferrota_boot::rom::check`]);
//! 2. WORK_ERR_SILENT (here: nothing to do, the log window is plain RAM holding 0xFF);
//! 3. the boot key from the SFlash public-key object (0x17006400);
//! 4. the decision ([`ferrota_boot::dbm::decide`]): marker log, CM0+ region of the preferred
//!    bank (and the other one), version record, floors, USER1; the record is appended to the log;
//! 5. the mapping it would switch to, as the FLASH_CTL value, reported with the decision.
//!
//! The switch routine and the jump are not run: QEMU has no FLASHC, and the images hold no
//! code for these machines. One `DBM ...` line ([`ferrota_qemu_harness::report`]) goes to the
//! host over semihosting, then `stack=` and `room=`, and QEMU exits.
//!
//! With feature `live` (the live board, issue #21) the DBM boots for real after that line: the
//! CM0+ stage, the emulated remap and the jump to the application ([`live`]).

#![no_std]
#![no_main]

#[cfg(feature = "live")]
mod live;

use embedded_storage::nor_flash::ReadNorFlash;
use ferrota_boot::dbm::{Dbm, decide};
use ferrota_boot::log::{LOG_SIZE, MarkerLog};
use ferrota_boot::rom;
use ferrota_fw_board::{
    BOARD, MappedFlash, RamNor, SingleBankView, entry, exit, report, report_num, stack,
};
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA};
use ferrota_qemu_harness::inputs::{self, BoardInputs};
use ferrota_qemu_harness::map::{SFLASH_SIZE, T2G_SFLASH};
use ferrota_qemu_harness::report::{self as line, Line};

/// The verifier: [`SflashKey`] reads the key object and checks the point with its own
/// arithmetic ([`ferrota_fw_verifier::TinyKey`]: no RustCrypto field code, no tables; the
/// `p256-cortex-m4` assembly cannot run on ARMv6-M).
#[cfg(not(feature = "uecc-p256"))]
use ferrota_fw_verifier::SflashKey;
/// With `uecc-p256`: micro-ecc (C, Thumb-1 assembly) through micro-ecc-sys.
#[cfg(feature = "uecc-p256")]
use {ferrota_fw_verifier::UeccKey, ferrota_image::sflash_key::parse_key_object};

/// Hash scratch: larger is fewer flash reads, smaller is less RAM.
#[cfg(not(feature = "live"))]
const SCRATCH: usize = 512;
/// Hash scratch of the live board, which also hashes both CM7 regions (3.9 MB): RAM is
/// plentiful on the mps2-an500.
#[cfg(feature = "live")]
const SCRATCH: usize = 4096;

#[entry]
fn main() -> ! {
    stack::paint();
    let ok = run();
    report_num("stack=", stack::high_water());
    report_num("room=", stack::room());
    exit(ok)
}

#[inline(never)]
fn run() -> bool {
    let mut raw = [0u8; inputs::SIZE];
    let _ = embedded_storage_read(BOARD.inputs, &mut raw);
    let Some(inputs) = BoardInputs::decode(&raw) else {
        report(b"DBM error inputs");
        return false;
    };
    let mut scratch = [0u8; SCRATCH];
    let mut l = Line::new();
    let mut sflash = MappedFlash::new(BOARD.sflash, SFLASH_SIZE);
    if let Err(e) = rom::check(&mut sflash, inputs.lifecycle, &inputs.shash, &mut scratch) {
        line::rom_refused(&mut l, &e);
        report(l.as_bytes());
        return true;
    }
    let at = (SFLASH_KEY_ADDRESS - T2G_SFLASH) as usize;
    let object = &sflash.bytes()[at..at + SFLASH_KEY_AREA];
    #[cfg(not(feature = "uecc-p256"))]
    let Ok(verifier) = SflashKey::from_object(object) else {
        report(b"DBM error key-object");
        return false;
    };
    #[cfg(feature = "uecc-p256")]
    let Ok(key) = parse_key_object(object) else {
        report(b"DBM error key-object");
        return false;
    };
    #[cfg(feature = "uecc-p256")]
    let verifier = UeccKey::new(&key);
    let dbm = Dbm::new(&verifier)
        .user1(inputs.user1)
        .efuse_floor(inputs.efuse_floor)
        .hardware(inputs.hardware);
    // SAFETY: the log window is RAM below the firmware's own (memory.x) that only this uses.
    let Ok(mut log) = MarkerLog::new(unsafe { RamNor::new(BOARD.log, LOG_SIZE) }) else {
        report(b"DBM error log");
        return false;
    };
    let d = match decide(dbm, &mut log, &mut SingleBankView::new(BOARD), &mut scratch) {
        Ok(d) => d,
        Err(_) => {
            report(b"DBM error log-write");
            return false;
        }
    };
    let Ok(after) = log.read() else {
        report(b"DBM error log-read");
        return false;
    };
    line::decision(&mut l, &d, &after);
    report(l.as_bytes());
    #[cfg(feature = "live")]
    return live::start(d, &verifier, &mut log, &mut scratch);
    #[cfg(not(feature = "live"))]
    true
}

fn embedded_storage_read(addr: u32, out: &mut [u8]) -> Result<(), ()> {
    MappedFlash::new(addr, out.len() as u32)
        .read(0, out)
        .map_err(|_| ())
}
