//! The live board (feature `live`, `mps2-an500` only): the DBM boots for real.
//!
//! After the decision ([`ferrota_boot::dbm::decide`], reported as in the matrix) the chip's
//! switch routine maps the chosen bank at 0x10000000 and the CM0+ stage runs from it. Here
//! (addresses: [`ferrota_qemu_harness::live`]):
//!
//! 1. the CM0+ stage's decision ([`ferrota_boot::cm0p::run`]) over the whole mapped bank in the
//!    PSRAM (`LOWER_BANK` / `UPPER_BANK`): both CM7 regions verified with the same boot key; a
//!    refusal is recorded in the marker log (MARKED_BAD, or REVERTED when the bank is under
//!    trial) and the board resets (SYSRESETREQ), as the chip does, so the next DBM run chooses
//!    again;
//! 2. the FLASH_CTL remap, emulated (`live::remap`): the CM7_0 region's signed bytes, from the
//!    region start (CySAF header first), at most `APP_MAX`, are copied to `APP_EXEC`;
//! 3. the hand-off (`live::handoff`) at `HANDOFF`: FLASH_CTL (the mapped bank), the vector
//!    table, the bytes copied;
//! 4. `DBM boot bank=<lower|upper> version=X.Y.Z`, then the jump: VTOR = the vector table at
//!    region + 16 + `core0Vt` (as the CM0+ stage starts CM7_0), MSP from its first word, branch
//!    to its reset vector.
//!
//! A halt (both banks refused) has already been reported by the decision line; the caller ends
//! the run with a failure.

use ferrota_boot::cm0p::{self, Outcome};
use ferrota_boot::dbm::Decision;
use ferrota_boot::log::MarkerLog;
use ferrota_boot::{Bank, Event};
use ferrota_fw_board::{MappedFlash, RamNor, report, report_num, stack};
use ferrota_image::{BANK_SIZE, BootVerifier, FirmwareVersion, Region};
use ferrota_qemu_harness::live::{
    APP_EXEC, APP_MAX, HANDOFF, LOWER_BANK, UPPER_BANK, handoff::Handoff, remap,
};
use ferrota_qemu_harness::report::{self as line, Line};

/// SSRAM2/3, where the application's stack pointer must point.
const RAM: core::ops::Range<u32> = 0x2000_0000..0x2040_0000;

/// Runs the CM0+ stage and starts the application; returns only on an error or a halt (then
/// `false`: the caller ends the run with a failure).
pub fn start<K: BootVerifier>(
    d: Decision,
    key: &K,
    log: &mut MarkerLog<RamNor>,
    scratch: &mut [u8],
) -> bool {
    let Decision::Boot(boot) = d else {
        return false;
    };
    let base = match boot.bank {
        Bank::Lower => LOWER_BANK,
        Bank::Upper => UPPER_BANK,
    };
    let mut active = MappedFlash::new(base, BANK_SIZE);
    let start = match cm0p::run(&mut active, log, key, &boot.proof, boot.bank, scratch) {
        Ok(Outcome::Start(s)) => s,
        Ok(Outcome::Reset(r)) => {
            let mut l = Line::new();
            l.push("DBM cm0p-refused bank=")
                .push(bank_name(r.bank))
                .push(" region=")
                .push(match r.region {
                    Region::Cm0p => "cm0p",
                    Region::Cm7_0 => "cm7_0",
                    Region::Cm7_1 => "cm7_1",
                })
                .push(match r.state.event {
                    Event::Reverted { .. } => " recorded=reverted",
                    _ => " recorded=marked-bad",
                });
            if let Ok(snap) = log.read() {
                line::log(&mut l, &snap);
            }
            l.finish();
            report(l.as_bytes());
            report(b"DBM reset");
            cortex_m::peripheral::SCB::sys_reset();
        }
        Err(_) => {
            report(b"DBM error log-write");
            return false;
        }
    };
    let header = start.cm7_0.header();
    let len = header.obj_size.min(APP_MAX);
    let vector_table = APP_EXEC + 16 + header.core0_vt;
    // The header check pins core0Vt (vector table at +0x100) and objSize >= 0x108, so the table's
    // first two words are among the bytes copied; checked again here, as the copy is cut.
    if header.core0_vt + 16 != remap::VECTOR_TABLE_OFFSET || len < remap::VECTOR_TABLE_OFFSET + 8 {
        report(b"DBM error vector-table");
        return false;
    }
    let from = base + remap::CM7_0_OFFSET;
    // SAFETY: `from..from + len` lies in the mapped bank (objSize is bounded by the CM7_0
    // region, checked by the verification); `APP_EXEC..APP_EXEC + APP_MAX` is SSRAM1 above the
    // DBM's own code (memory.x: 1 MB at 0), which nothing else uses; the two do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(
            from as usize as *const u8,
            APP_EXEC as usize as *mut u8,
            len as usize,
        );
    }
    let copied = MappedFlash::new(APP_EXEC, len).bytes();
    let at = remap::VECTOR_TABLE_OFFSET as usize;
    let word = |i: usize| {
        u32::from_le_bytes([
            copied[at + i],
            copied[at + i + 1],
            copied[at + i + 2],
            copied[at + i + 3],
        ])
    };
    let (sp, reset) = (word(0), word(4));
    // A signed image linked for the chip (0x10010000) cannot run here: say so instead of
    // faulting in the application.
    if !RAM.contains(&sp.wrapping_sub(4))
        || sp % 8 != 0
        || reset & 1 == 0
        || !(APP_EXEC..APP_EXEC + len).contains(&(reset & !1))
    {
        report(b"DBM error entry: the CM7_0 image is not linked at live::APP_EXEC");
        return false;
    }
    let h = Handoff {
        bank: boot.bank,
        vector_table,
        image_len: len,
        cm7_1: start.start_cm7_1,
        log_seq: log.read().map(|s| s.seq).unwrap_or(0),
    };
    let bytes = h.encode();
    // SAFETY: HANDOFF..HANDOFF + HANDOFF_MAX is SSRAM2 below the DBM's RAM (memory.x) and the
    // application's; `bytes` fits it (checked at compile time in ferrota-qemu-harness).
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), HANDOFF as usize as *mut u8, bytes.len());
    }
    let mut l = Line::new();
    l.push("DBM boot bank=")
        .push(bank_name(boot.bank))
        .push(" version=");
    version(&mut l, boot.record.version);
    report(l.as_bytes());
    report_num("fig dbm-stack=", stack::high_water());
    jump(vector_table)
}

fn bank_name(b: Bank) -> &'static str {
    match b {
        Bank::Lower => "lower",
        Bank::Upper => "upper",
    }
}

/// `X.Y.Z`, as `FirmwareVersion`'s `Display`, without `core::fmt`.
fn version(l: &mut Line, v: FirmwareVersion) {
    l.num(v.major().into())
        .push(".")
        .num(v.minor().into())
        .push(".")
        .num(v.build().into());
}

/// Starts CM7_0 as the CM0+ stage does: VTOR, then MSP and the reset vector from the table.
fn jump(vector_table: u32) -> ! {
    // SAFETY: the DBM is done with everything; `vector_table` is the verified image's table,
    // copied to SSRAM1, whose stack pointer and reset vector were checked above. The DBM
    // enabled no interrupt and no SysTick, so nothing fires before the application sets up its
    // own; the writes are made visible (DSB) and the pipeline refilled (ISB) before the jump.
    unsafe {
        let p = cortex_m::Peripherals::steal();
        p.SCB.vtor.write(vector_table);
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
        cortex_m::asm::bootload(vector_table as usize as *const u32)
    }
}
