//! The live board's clock: SysTick interrupts every millisecond on the core clock, a WFI-based
//! idle that books the time it sleeps, and tick counts for instruction figures.
//!
//! Under `-icount shift=0` QEMU advances its virtual clock 1 ns per instruction while the core
//! runs and (with the default `sleep=on`) in real time while it sleeps in WFI. SysTick counts the
//! 25 MHz core clock, so a tick is 40 ns: 40 instructions while busy. [`ticks`] counts every tick
//! since [`start`], [`busy_ticks`] those not spent in [`idle`]: `busy_ticks() * 40` is the
//! instructions executed (interrupt handlers included, ~20 instructions per millisecond).
//!
//! The [`crate::counter`] module uses the same SysTick as a free-running down-counter without
//! interrupts: use one or the other. [`stop`] hands SysTick back.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;

/// SysTick ticks per millisecond: the mps2 core clock is 25 MHz.
pub const TICKS_PER_MS: u32 = 25_000;

/// Milliseconds since [`start`], low and high words (written by the SysTick handler only).
static MS_LO: AtomicU32 = AtomicU32::new(0);
static MS_HI: AtomicU32 = AtomicU32::new(0);
/// The last value [`ticks`] returned.
static LAST: Mutex<core::cell::Cell<u64>> = Mutex::new(core::cell::Cell::new(0));
/// Ticks spent asleep in [`idle`] (thread mode only).
static IDLE: Mutex<core::cell::Cell<u64>> = Mutex::new(core::cell::Cell::new(0));

fn syst() -> SYST {
    // SAFETY: the firmware is single-threaded; SysTick belongs to this module between `start`
    // and `stop` (the module docs say `counter` must not run meanwhile).
    unsafe { cortex_m::Peripherals::steal() }.SYST
}

/// Starts the 1 ms SysTick interrupt and resets every count to 0.
pub fn start() {
    let mut syst = syst();
    syst.disable_interrupt();
    syst.disable_counter();
    MS_LO.store(0, Ordering::Relaxed);
    MS_HI.store(0, Ordering::Relaxed);
    interrupt::free(|cs| {
        IDLE.borrow(cs).set(0);
        LAST.borrow(cs).set(0);
    });
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(TICKS_PER_MS - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Whether [`start`] has SysTick interrupting (and [`stop`] has not stopped it).
pub fn running() -> bool {
    // SysTick CSR: ENABLE (bit 0) and TICKINT (bit 1).
    syst().csr.read() & 0b11 == 0b11
}

/// Stops the SysTick interrupt (before [`crate::counter::start`], or before jumping elsewhere).
pub fn stop() {
    let mut syst = syst();
    syst.disable_interrupt();
    syst.disable_counter();
}

#[cortex_m_rt::exception]
fn SysTick() {
    // Only this handler writes the counts; it cannot preempt itself.
    let lo = MS_LO.load(Ordering::Relaxed).wrapping_add(1);
    if lo == 0 {
        MS_HI.fetch_add(1, Ordering::Relaxed);
    }
    MS_LO.store(lo, Ordering::Release);
}

fn ms_raw() -> u64 {
    loop {
        let hi = MS_HI.load(Ordering::Acquire);
        let lo = MS_LO.load(Ordering::Acquire);
        if MS_HI.load(Ordering::Acquire) == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

/// Milliseconds since [`start`].
pub fn now_ms() -> u64 {
    ms_raw()
}

/// SysTick ticks (40 ns each) since [`start`], never going back.
///
/// The count is the milliseconds times 25,000 plus the current millisecond's elapsed ticks.
/// Right after SysTick reloads, the counter already reads the new millisecond while its
/// interrupt may not have run yet (with interrupts masked, or in the few instructions QEMU
/// takes to raise it): the sum would then fall back by up to a millisecond, so the result is
/// held at the last one returned.
pub fn ticks() -> u64 {
    let raw = loop {
        let ms = ms_raw();
        let current = SYST::get_current();
        if ms_raw() != ms {
            continue; // the millisecond turned over meanwhile
        }
        // A wrap already pended but not yet handled: count it here.
        let pending = cortex_m::peripheral::SCB::is_pendst_pending();
        let ms = if pending && current > TICKS_PER_MS / 2 {
            ms + 1
        } else {
            ms
        };
        break ms * u64::from(TICKS_PER_MS) + u64::from(TICKS_PER_MS - 1 - current);
    };
    interrupt::free(|cs| {
        let last = LAST.borrow(cs);
        let t = raw.max(last.get());
        last.set(t);
        t
    })
}

/// Sleeps (WFI) until the next interrupt, at most a millisecond, and books the time as idle.
pub fn idle() {
    let before = ticks();
    cortex_m::asm::wfi();
    let slept = ticks().saturating_sub(before);
    interrupt::free(|cs| {
        let idle = IDLE.borrow(cs);
        idle.set(idle.get() + slept);
    });
}

/// Ticks since [`start`] not spent in [`idle`]: under `-icount shift=0`, instructions / 40.
pub fn busy_ticks() -> u64 {
    let idle = interrupt::free(|cs| IDLE.borrow(cs).get());
    ticks().saturating_sub(idle)
}
