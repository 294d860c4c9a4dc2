//! CM7 harness (QEMU `mps2-an500`, run with `-icount shift=0`): verifies the CM0+ region and
//! then the whole bank loaded at 0x60000000 with the SFlash key at 0x60806400, and reports the
//! SysTick ticks of each step and of a calibration loop of known length, so the host converts
//! ticks to instructions.
//!
//! Agent hook: when `ferrota-agent` exists, its core (job-document check, block writes, the
//! read-back hash and OTA signature check) gets a harness of its own next to this one, built the
//! same way, so the report gains its flash/RAM and instruction figures.

#![no_std]
#![no_main]

use ferrota_fw_board::{BOARD, MappedFlash, counter, entry, exit, report, report_num, stack};
use ferrota_image::BANK_SIZE;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::verify::{verify_bank_in_flash, verify_boot_in_flash};
use ferrota_qemu_harness::map::{SFLASH_SIZE, T2G_SFLASH};

const SCRATCH: usize = 1024;
const CALIBRATION_LOOPS: u32 = 1_000_000;

#[entry]
fn main() -> ! {
    stack::paint();
    counter::start();
    // 2 * n + 2 instructions.
    report_num("calibrate-instructions=", 2 * CALIBRATION_LOOPS + 2);
    report_num("calibrate-ticks=", counter::calibrate(CALIBRATION_LOOPS));
    let ok = run();
    report_num("stack=", stack::high_water());
    exit(ok)
}

#[inline(never)]
fn run() -> bool {
    let sflash = MappedFlash::new(BOARD.sflash, SFLASH_SIZE);
    let at = (SFLASH_KEY_ADDRESS - T2G_SFLASH) as usize;
    let Ok(key) = parse_key_object(&sflash.bytes()[at..at + SFLASH_KEY_AREA]) else {
        report(b"error key-object");
        return false;
    };
    let Some(base) = BOARD.bank else {
        report(b"error no-room-for-a-bank");
        return false;
    };
    let mut bank = MappedFlash::new(base, BANK_SIZE);
    let mut scratch = [0u8; SCRATCH];

    let t = counter::now();
    let boot = verify_boot_in_flash(&mut bank, 0, &key, &mut scratch);
    report_num("cm0p-region-ticks=", counter::since(t));
    if boot.is_err() {
        report(b"error cm0p-region-refused");
        return false;
    }
    let t = counter::now();
    let all = verify_bank_in_flash(&mut bank, 0, &key, &mut scratch);
    report_num("full-bank-ticks=", counter::since(t));
    if all.is_err() {
        report(b"error bank-refused");
        return false;
    }
    report(b"verified");
    true
}
