//! The emulated board under the Ferrota firmware.
//!
//! * [`BOARD`]: the placement of the T2G memories on this QEMU machine
//!   ([`ferrota_qemu_harness::map`], selected by the `microbit` / `mps2-an500` feature).
//! * [`MappedFlash`]: a read-only `ReadNorFlash` over a memory-mapped window;
//!   [`SingleBankView`]: the T2G single-bank code flash as the DBM addresses it (offset 0 =
//!   0x10000000), backed by the two CM0+ windows; [`RamNor`] / [`RamCodeFlash`]: read-write
//!   `NorFlash` in RAM with the T2G work- / code-flash rules (erase to 0xFF by sector, program
//!   only erased words) for the marker log, the agent's resume area and inactive bank.
//! * [`report`]/[`exit`]: semihosting output.
//! * [`stack`]: stack painting; [`counter`]: SysTick-based instruction counting under
//!   `-icount shift=0`.
//!
//! This is the one crate of the firmware with `unsafe`: raw reads of the emulated memories and
//! registers.

#![no_std]
#![warn(missing_docs)]

use core::ptr;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
pub use ferrota_qemu_harness::map::Board;
use ferrota_qemu_harness::map::{CM0P_WINDOW, UPPER_SBM_OFFSET};

pub use cortex_m_rt::entry;

/// This board.
#[cfg(feature = "microbit")]
pub const BOARD: Board = ferrota_qemu_harness::map::MICROBIT;
/// This board.
#[cfg(feature = "mps2-an500")]
pub const BOARD: Board = ferrota_qemu_harness::map::MPS2_AN500;

fn copy_from(addr: u32, out: &mut [u8]) {
    // SAFETY: callers check `addr..addr + out.len()` against a window of `BOARD`, which the
    // harness fills with -device loader and nothing else aliases mutably.
    unsafe { ptr::copy_nonoverlapping(addr as usize as *const u8, out.as_mut_ptr(), out.len()) }
}

fn in_bounds(offset: u32, len: usize, capacity: u32) -> Result<(), NorFlashErrorKind> {
    match offset.checked_add(len as u32) {
        Some(end) if end <= capacity && len <= capacity as usize => Ok(()),
        _ => Err(NorFlashErrorKind::OutOfBounds),
    }
}

/// A read-only memory-mapped window.
#[derive(Debug, Clone, Copy)]
pub struct MappedFlash {
    base: u32,
    len: u32,
}

impl MappedFlash {
    /// The window `[base, base + len)`, which must be one of `BOARD`'s.
    pub const fn new(base: u32, len: u32) -> Self {
        MappedFlash { base, len }
    }

    /// The window as a byte slice.
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: as in `copy_from`; the window is never written while the firmware runs.
        unsafe { core::slice::from_raw_parts(self.base as usize as *const u8, self.len as usize) }
    }
}

impl ErrorType for MappedFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for MappedFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        in_bounds(offset, bytes.len(), self.len)?;
        copy_from(self.base + offset, bytes);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.len as usize
    }
}

/// The T2G single-bank code flash (offset 0 = 0x10000000, 0x7F0000 bytes) as far as the DBM
/// reads it: the lower CM0+ region `[0, 0x10000)` and the upper one `[0x3F8000, 0x408000)`;
/// any other read is `OutOfBounds` (the DBM never makes one).
#[derive(Debug, Clone, Copy)]
pub struct SingleBankView {
    board: Board,
}

impl SingleBankView {
    /// The view on `board`.
    pub const fn new(board: Board) -> Self {
        SingleBankView { board }
    }
}

impl ErrorType for SingleBankView {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for SingleBankView {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if bytes.is_empty() {
            return Ok(());
        }
        let last = offset
            .checked_add(bytes.len() as u32 - 1)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        // Both ends inside the same window (windows are 64 KB and far apart).
        let window = |o: u32| {
            if o < CM0P_WINDOW {
                Some(0)
            } else if (UPPER_SBM_OFFSET..UPPER_SBM_OFFSET + CM0P_WINDOW).contains(&o) {
                Some(1)
            } else {
                None
            }
        };
        match (window(offset), window(last)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(NorFlashErrorKind::OutOfBounds),
        }
        let addr = self
            .board
            .code_window(offset)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        copy_from(addr, bytes);
        Ok(())
    }
    fn capacity(&self) -> usize {
        0x7F_0000
    }
}

/// Read-write NOR in RAM with the T2G rules: erase by `ERASE`-byte sector to 0xFF, program
/// `WRITE`-byte words, each only once per erase ([`RamNor`]: work flash, 4-byte words and 2 KB
/// sectors, as `ferrota-t2g`; [`RamCodeFlash`]: code flash, 8-byte words and 32 KB sectors).
#[derive(Debug)]
pub struct Nor<const WRITE: usize, const ERASE: usize> {
    base: u32,
    len: u32,
}

/// Work flash (the marker log, the agent's resume area).
pub type RamNor = Nor<4, 0x800>;
/// Code flash (the agent's inactive bank).
pub type RamCodeFlash = Nor<8, 0x8000>;

impl<const WRITE: usize, const ERASE: usize> Nor<WRITE, ERASE> {
    /// The window `[base, base + len)`.
    ///
    /// # Safety
    /// The window must be RAM that nothing else uses while the value lives.
    pub const unsafe fn new(base: u32, len: u32) -> Self {
        Nor { base, len }
    }
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for Nor<WRITE, ERASE> {
    type Error = NorFlashErrorKind;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for Nor<WRITE, ERASE> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        in_bounds(offset, bytes.len(), self.len)?;
        copy_from(self.base + offset, bytes);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for Nor<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to || to > self.len {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        if !from.is_multiple_of(ERASE as u32) || !to.is_multiple_of(ERASE as u32) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        for a in (self.base + from..self.base + to).step_by(4) {
            // SAFETY: inside the window `new` was given.
            unsafe { ptr::write_volatile(a as usize as *mut u32, u32::MAX) };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        in_bounds(offset, bytes.len(), self.len)?;
        if !offset.is_multiple_of(WRITE as u32) || !bytes.len().is_multiple_of(WRITE) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        for (i, w) in bytes.chunks_exact(4).enumerate() {
            let a = (self.base + offset) as usize + 4 * i;
            // SAFETY: inside the window, word aligned (WRITE is a multiple of 4).
            unsafe {
                if ptr::read_volatile(a as *const u32) != u32::MAX {
                    return Err(NorFlashErrorKind::Other);
                }
                ptr::write_volatile(a as *mut u32, u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
        Ok(())
    }
}

/// Writes `line` and a newline to the host's stdout (semihosting).
pub fn report(line: &[u8]) {
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let _ = out.write_all(line);
        let _ = out.write_all(b"\n");
    }
}

/// Writes `label` and a decimal number.
pub fn report_num(label: &str, v: u32) {
    let mut l = ferrota_qemu_harness::report::Line::new();
    l.push(label).num(v);
    report(l.as_bytes());
}

/// Ends the QEMU run with the given status.
pub fn exit(ok: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::nop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    report(b"PANIC");
    exit(false)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(_: &cortex_m_rt::ExceptionFrame) -> ! {
    report(b"HARDFAULT");
    exit(false)
}

// The clock needs atomic read-modify-write (fetch_add), which ARMv6-M (the microbit's CM0+
// stand-in) does not have; only the M7 board uses it.
#[cfg(feature = "mps2-an500")]
pub mod clock;

/// Stack painting: fill the free stack with a pattern, later find the deepest overwritten word.
pub mod stack {
    const PAINT: u32 = 0xC0DE_5A5A;

    unsafe extern "C" {
        static mut __sheap: u32;
        static _stack_start: u32;
    }

    fn bottom() -> usize {
        (&raw const __sheap) as usize
    }

    fn top() -> usize {
        (&raw const _stack_start) as usize
    }

    /// Paints from the end of .bss up to 256 bytes below the current stack pointer.
    #[inline(never)]
    pub fn paint() {
        let sp = cortex_m::register::msp::read() as usize - 256;
        let mut a = bottom();
        while a < sp {
            // SAFETY: below the live stack, above .bss/.uninit: memory nobody uses yet.
            unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
            a += 4;
        }
    }

    /// Bytes of stack used at most since [`paint`] (from the top of RAM).
    pub fn high_water() -> u32 {
        let mut a = bottom();
        // SAFETY: reads of RAM between .bss and the stack top.
        while a < top() && unsafe { core::ptr::read_volatile(a as *const u32) } == PAINT {
            a += 4;
        }
        (top() - a) as u32
    }

    /// Bytes between the end of .bss and the top of RAM: the stack's room.
    pub fn room() -> u32 {
        (top() - bottom()) as u32
    }
}

/// Instruction counting: SysTick from the core clock. Under `-icount shift=0` QEMU's virtual
/// clock advances 1 ns per instruction, and the mps2 core clock is 25 MHz, so one SysTick
/// decrement is 40 instructions ([`calibrate`] measures it instead of trusting this).
pub mod counter {
    use cortex_m::peripheral::SYST;
    use cortex_m::peripheral::syst::SystClkSource;

    /// Starts SysTick free-running from 0xFFFFFF.
    pub fn start() {
        // SAFETY: the firmware is single-threaded and uses SysTick for nothing else.
        let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
    }

    /// The current SysTick value (counts down).
    pub fn now() -> u32 {
        SYST::get_current()
    }

    /// Ticks elapsed since `then` (at most one wrap of 2^24 ticks).
    pub fn since(then: u32) -> u32 {
        then.wrapping_sub(now()) & 0x00FF_FFFF
    }

    /// Ticks taken by a loop of exactly `2 * n + 2` instructions (`subs`/`bne` per iteration).
    #[inline(never)]
    pub fn calibrate(n: u32) -> u32 {
        let t = now();
        // SAFETY: a register-only loop.
        unsafe {
            core::arch::asm!(
                "2:",
                "subs {0}, {0}, #1",
                "bne 2b",
                inout(reg) n => _,
                options(nomem, nostack),
            );
        }
        since(t)
    }
}
