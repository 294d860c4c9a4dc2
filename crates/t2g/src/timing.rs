//! Operation durations and the simulated clock.
//!
//! The spec marks the erase and program timings of the CYT4BF as **[U]** (the datasheet was not
//! available), so every default in [`Timing::default`] is an *assumption*, chosen to be in the
//! range typical of 40 nm embedded NOR flash, and all of them live in that one function. A test
//! or the simulated board can pass its own [`Timing`] to [`crate::Device::with_timing`].
//!
//! The model never reads the host clock: each operation advances [`SimClock`] by its duration
//! (a torn operation by the fraction that was done), and callers advance it for everything else
//! (boot time, network waits).

use core::time::Duration;

/// Durations of the flash operations. Every field's default is an assumption ([U]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Erase of one 32 KB code-flash sector. Assumed 45 ms.
    pub code_erase_large: Duration,
    /// Erase of one 8 KB code-flash sector. Assumed 15 ms.
    pub code_erase_small: Duration,
    /// Program of one 64-bit code-flash word. Assumed 30 µs.
    pub code_program_word: Duration,
    /// Program of one 256-bit (32 B) code-flash unit. A 512 B row is 16 of these, as the PDL's
    /// `Cy_Flash_ProgramRow` does on CAT1C. Assumed 60 µs (so ~0.96 ms per row).
    pub code_program_chunk: Duration,
    /// Erase of one 2 KB work-flash sector. Assumed 30 ms.
    pub work_erase_large: Duration,
    /// Erase of one 128 B work-flash sector. Assumed 10 ms.
    pub work_erase_small: Duration,
    /// Program of one 32-bit work-flash word. Assumed 30 µs.
    pub work_program_word: Duration,
    /// One SROM write-row (erase + program) of a 512 B SFlash row. Assumed 16 ms.
    pub sflash_write_row: Duration,
    /// Blow of one eFuse bit. Assumed 10 µs.
    pub efuse_blow_bit: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            code_erase_large: Duration::from_millis(45),
            code_erase_small: Duration::from_millis(15),
            code_program_word: Duration::from_micros(30),
            code_program_chunk: Duration::from_micros(60),
            work_erase_large: Duration::from_millis(30),
            work_erase_small: Duration::from_millis(10),
            work_program_word: Duration::from_micros(30),
            sflash_write_row: Duration::from_millis(16),
            efuse_blow_bit: Duration::from_micros(10),
        }
    }
}

impl Timing {
    /// Duration of one code-flash program operation of `len` bytes (a multiple of 8, within one
    /// row): one 64-bit program for 8 bytes, otherwise one 256-bit program per 32 B started.
    pub fn code_program(&self, len: u32) -> Duration {
        if len <= 8 {
            self.code_program_word
        } else {
            self.code_program_chunk * len.div_ceil(32)
        }
    }
}

/// A simulated monotonic clock, in nanoseconds since the device was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimClock {
    nanos: u64,
}

impl SimClock {
    /// A clock at `nanos` ns (used when a device file is loaded).
    pub fn from_nanos(nanos: u64) -> Self {
        SimClock { nanos }
    }

    /// Time elapsed since the device was created.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// Elapsed nanoseconds.
    pub fn nanos(&self) -> u64 {
        self.nanos
    }

    /// Advances the clock (saturating: 584 years of simulated time is the limit).
    pub fn advance(&mut self, d: Duration) {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.nanos = self.nanos.saturating_add(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_is_sixteen_chunks() {
        let t = Timing::default();
        assert_eq!(t.code_program(512), t.code_program_chunk * 16);
        assert_eq!(t.code_program(8), t.code_program_word);
        assert_eq!(t.code_program(40), t.code_program_chunk * 2);
    }

    #[test]
    fn clock_advances_and_saturates() {
        let mut c = SimClock::default();
        c.advance(Duration::from_millis(3));
        assert_eq!(c.now(), Duration::from_millis(3));
        c.advance(Duration::MAX);
        assert_eq!(c.nanos(), u64::MAX);
    }
}
