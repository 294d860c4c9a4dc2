//! CM7 harness (QEMU `mps2-an500`, run with `-icount shift=0`): verifies the CM0+ region and
//! then the whole bank loaded at 0x60000000 with the SFlash key at 0x60806400, and reports the
//! SysTick ticks of each step and of a calibration loop of known length, so the host converts
//! ticks to instructions. With feature `asm-p256` it does it again with the `p256-cortex-m4`
//! assembly ([`ferrota_fw_verifier::AsmKey`]) and reports those as `asm-...-ticks=`. The CM0+
//! region's verify is also split: SHA-256 of its signed bytes alone (`sha-cm0p-region-ticks=`)
//! and the P-256 check of that digest alone (`[asm-]p256-verify-ticks=`), and the same hash
//! with the verifier crate's ARMv7-M SHA-256 (`fast-sha-cm0p-region-ticks=`).
//!
//! Agent hook: when `ferrota-agent` exists, its core (job-document check, block writes, the
//! read-back hash and OTA signature check) gets a harness of its own next to this one, built the
//! same way, so the report gains its flash/RAM and instruction figures.

#![no_std]
#![no_main]

use embedded_storage::nor_flash::ReadNorFlash;
use ferrota_fw_board::{BOARD, MappedFlash, counter, entry, exit, report, report_num, stack};
use ferrota_fw_verifier::sha256;
use ferrota_image::scheme::{BootVerifier, SLOT};
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::verify::{digest_flash, verify_bank_in_flash, verify_boot_in_flash};
use ferrota_image::{BANK_SIZE, Region, VerifiedRegion};
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

/// The CM0+ region's verify in its two parts: SHA-256 of its signed bytes through the same
/// hasher and scratch buffer as the verifier (`digest_flash`: RustCrypto's `sha2`), reported
/// once as `sha-cm0p-region-ticks=`, and the signature check of that digest alone,
/// `<prefix>p256-verify-ticks=`.
#[inline(never)]
fn split(
    prefix: &str,
    bank: &mut MappedFlash,
    key: &impl BootVerifier,
    region: &VerifiedRegion,
    scratch: &mut [u8],
) -> bool {
    let len = region.header().obj_size;
    if prefix.is_empty() {
        let t = counter::now();
        let digest = digest_flash(bank, Region::Cm0p.offset(), len, scratch);
        let ticks = counter::since(t);
        report_num("sha-cm0p-region-ticks=", ticks);
        report_num("sha-cm0p-region-bytes=", len);
        if digest != Ok(*region.digest()) {
            report(b"error sha-digest");
            return false;
        }
        // The same bytes through the same scratch buffer, hashed by the verifier crate's
        // ARMv7-M SHA-256 instead.
        let t = counter::now();
        let digest = fast_digest(bank, Region::Cm0p.offset(), len, scratch);
        let ticks = counter::since(t);
        report_num("fast-sha-cm0p-region-ticks=", ticks);
        if digest != Some(*region.digest()) {
            report(b"error fast-sha-digest");
            return false;
        }
        // What both spend on reading the flash into the scratch buffer (memcpy).
        let t = counter::now();
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(scratch.len() as u32) as usize;
            if bank.read(done, &mut scratch[..n]).is_err() {
                return false;
            }
            done += n as u32;
        }
        report_num("read-cm0p-region-ticks=", counter::since(t));
    }
    let at = region.header().signature_offset(Region::Cm0p) as usize;
    let mut slot = [0u8; SLOT];
    slot.copy_from_slice(&bank.bytes()[at..at + SLOT]);
    let t = counter::now();
    let ok = key.verify_digest(region.digest(), &slot);
    let ticks = counter::since(t);
    let mut l = Line::new();
    l.push(prefix).push("p256-verify-ticks=").num(ticks);
    report(l.as_bytes());
    if ok.is_err() {
        report(b"error p256-verify");
        return false;
    }
    true
}

/// `digest_flash` with [`ferrota_fw_verifier::sha256`].
#[inline(never)]
fn fast_digest(flash: &mut MappedFlash, at: u32, len: u32, buf: &mut [u8]) -> Option<[u8; 32]> {
    let mut h = sha256::Sha256::new();
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        flash.read(at + done, &mut buf[..n]).ok()?;
        h.update(&buf[..n]);
        done += n as u32;
    }
    Some(h.finalize())
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
    let Ok(boot) = boot else {
        report(b"error cm0p-region-refused");
        return false;
    };
    if !split(prefix, bank, key, boot.cm0p(), &mut scratch) {
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
