//! The volatile flash-controller register FLASHC_FLASH_CTL (0x40240000).
//!
//! It decides the bank mode and the mapping, so which physical half of code flash a CPU sees at
//! 0x10000000 and at 0x12000000, and whether an erased work-flash read faults. It is volatile:
//! it resets to 0 (single-bank, mapping A, faults on) at every reset and power-on, while the flash
//! contents survive (spec §1.1 "Reset state" [I], geometry decision 2).

/// Bank mode of the main (code) flash: FLASH_CTL.MAIN_BANK_MODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BankMode {
    /// Single-bank mode (bit clear): one linear view 0x10000000–0x1082FFFF.
    Single,
    /// Dual-bank mode (bit set): two logical banks at 0x10000000 and 0x12000000.
    Dual,
}

/// Mapping of the physical halves to the logical banks: FLASH_CTL.MAIN_MAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mapping {
    /// MAIN_MAP = 0: the lower half at 0x10000000, the upper at 0x12000000.
    A,
    /// MAIN_MAP = 1: the upper half at 0x10000000, the lower at 0x12000000.
    B,
}

/// The value of FLASHC_FLASH_CTL. Bits the model does not interpret are kept as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlashCtl(pub u32);

impl FlashCtl {
    /// MAIN_MAP, bit 8 [V].
    pub const MAIN_MAP: u32 = 1 << 8;
    /// MAIN_BANK_MODE, bit 12, 1 = dual [V].
    pub const MAIN_BANK_MODE: u32 = 1 << 12;
    /// WORK_ERR_SILENT, bit 22 [V]: erased work-flash reads return data instead of faulting.
    pub const WORK_ERR_SILENT: u32 = 1 << 22;

    /// The reset value: 0.
    pub const RESET: FlashCtl = FlashCtl(0);

    /// The raw register value.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The main-flash bank mode.
    pub fn bank_mode(self) -> BankMode {
        if self.0 & Self::MAIN_BANK_MODE != 0 {
            BankMode::Dual
        } else {
            BankMode::Single
        }
    }

    /// The main-flash mapping (only meaningful in dual-bank mode).
    pub fn mapping(self) -> Mapping {
        if self.0 & Self::MAIN_MAP != 0 {
            Mapping::B
        } else {
            Mapping::A
        }
    }

    /// Whether erased work-flash reads are silent.
    pub fn work_err_silent(self) -> bool {
        self.0 & Self::WORK_ERR_SILENT != 0
    }

    /// This value with the bank mode replaced.
    #[must_use]
    pub fn with_bank_mode(self, m: BankMode) -> Self {
        self.with_bit(Self::MAIN_BANK_MODE, m == BankMode::Dual)
    }

    /// This value with the mapping replaced.
    #[must_use]
    pub fn with_mapping(self, m: Mapping) -> Self {
        self.with_bit(Self::MAIN_MAP, m == Mapping::B)
    }

    /// This value with WORK_ERR_SILENT replaced.
    #[must_use]
    pub fn with_work_err_silent(self, on: bool) -> Self {
        self.with_bit(Self::WORK_ERR_SILENT, on)
    }

    fn with_bit(self, bit: u32, on: bool) -> Self {
        FlashCtl(if on { self.0 | bit } else { self.0 & !bit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_decode() {
        let c = FlashCtl::RESET
            .with_bank_mode(BankMode::Dual)
            .with_mapping(Mapping::B);
        assert_eq!(c.bits(), 0x1100);
        assert_eq!(
            (c.bank_mode(), c.mapping(), c.work_err_silent()),
            (BankMode::Dual, Mapping::B, false)
        );
        let c = c.with_work_err_silent(true).with_mapping(Mapping::A);
        assert_eq!(c.bits(), 0x0040_1000);
        assert_eq!(FlashCtl::RESET.bank_mode(), BankMode::Single);
    }
}
