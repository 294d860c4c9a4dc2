//! CM7 harness (QEMU `mps2-an500`, run with `-icount shift=0`): verifies the CM0+ region and
//! then the whole bank loaded at 0x60000000 with the SFlash key at 0x60806400, and reports the
//! SysTick ticks of each step and of a calibration loop of known length, so the host converts
//! ticks to instructions. With feature `asm-p256` it does it again with the `p256-cortex-m4`
//! assembly ([`ferrota_fw_verifier::AsmKey`]) and reports those as `asm-...-ticks=`.
//!
//! Agent hook: when `ferrota-agent` exists, its core (job-document check, block writes, the
//! read-back hash and OTA signature check) gets a harness of its own next to this one, built the
//! same way, so the report gains its flash/RAM and instruction figures.

#![no_std]
#![no_main]

use ferrota_fw_board::{BOARD, MappedFlash, counter, entry, exit, report, report_num, stack};
use ferrota_image::BANK_SIZE;
use ferrota_image::scheme::BootVerifier;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::verify::{verify_bank_in_flash, verify_boot_in_flash};
use ferrota_qemu_harness::map::{SFLASH_SIZE, T2G_SFLASH};
use ferrota_qemu_harness::report::Line;

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
    if !bench("", &mut bank, &key) {
        return false;
    }
    #[cfg(feature = "asm-p256")]
    {
        let Some(asm) = ferrota_fw_verifier::AsmKey::new(&key) else {
            report(b"error asm-key");
            return false;
        };
        if !bench("asm-", &mut bank, &asm) {
            return false;
        }
    }
    report(b"verified");
    true
}

/// Verifies the CM0+ region, then the whole bank, with `key`; reports `<prefix>cm0p-region-ticks=`
/// and `<prefix>full-bank-ticks=`.
#[inline(never)]
fn bench(prefix: &str, bank: &mut MappedFlash, key: &impl BootVerifier) -> bool {
    let mut scratch = [0u8; SCRATCH];
    let mut l = Line::new();

    let t = counter::now();
    let boot = verify_boot_in_flash(bank, 0, key, &mut scratch);
    let ticks = counter::since(t);
    l.push(prefix).push("cm0p-region-ticks=").num(ticks);
    report(l.as_bytes());
    if boot.is_err() {
        report(b"error cm0p-region-refused");
        return false;
    }
    let t = counter::now();
    let all = verify_bank_in_flash(bank, 0, key, &mut scratch);
    let ticks = counter::since(t);
    let mut l = Line::new();
    l.push(prefix).push("full-bank-ticks=").num(ticks);
    report(l.as_bytes());
    if all.is_err() {
        report(b"error bank-refused");
        return false;
    }
    true
}
