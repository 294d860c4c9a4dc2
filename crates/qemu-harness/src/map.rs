//! Where the T2G memories live on each emulated board.
//!
//! The DBM reads four T2G memories: SFlash (0x17000000, 32 KB: the DBM area, the public-key
//! object, SWPU, TOC2, hashed by the ROM check), the 64 KB CM0+ region of each bank in the
//! single-bank view (lower at 0x10000000, upper at 0x103F8000), and the marker log in work flash
//! (0x14012000, 4 KB, written). Nothing else: a CM0+ region's `objSize` is bounded by the region,
//! so no read leaves these windows. Each window is copied to one place in the emulated machine:
//!
//! | T2G memory | T2G address | microbit (nRF51, 256 KB flash, 16 KB RAM) | mps2-an500 (M7) |
//! |---|---|---|---|
//! | DBM code / data | SFlash 0x17000800 | flash 0x00000000 (64 KB) / RAM 0x20001000 (12 KB) | SSRAM1 0x00000000 / 0x20001000 |
//! | SFlash | 0x17000000 | flash 0x00010000 | PSRAM 0x60800000 |
//! | lower CM0+ region | 0x10000000 | flash 0x00018000 | PSRAM 0x60000000 |
//! | upper CM0+ region | 0x103F8000 | flash 0x00028000 | PSRAM 0x603F8000 |
//! | board inputs ([`crate::inputs`]) | registers, eFuse | flash 0x00038000 | PSRAM 0x60810000 |
//! | marker log (read-write) | 0x14012000 | RAM 0x20000000 | PSRAM 0x60830000 ([`crate::live::LOG`]) |
//!
//! On the mps2-an500 the PSRAM (16 MB) is large enough for the whole single-bank code flash, so
//! the two CM0+ windows keep their single-bank distance (`0x60000000 + sbm offset`) and a whole
//! bank can be loaded at 0x60000000 for the CM7 verification benchmark. The marker log is in RAM
//! on both boards because it is written (QEMU's nRF51 flash is written only through its NVMC);
//! on the mps2-an500 it is in the PSRAM, which the live board ([`crate::live`]) backs with a
//! file so the log survives resets, and the matrix loads like any other window.

/// The single-bank offset of the upper bank (0x103F8000 − 0x10000000).
pub const UPPER_SBM_OFFSET: u32 = 0x003F_8000;
/// Size of a CM0+ region: the bytes the DBM verifies per bank.
pub const CM0P_WINDOW: u32 = 0x1_0000;
/// SFlash size.
pub const SFLASH_SIZE: u32 = 0x8000;
/// T2G address of SFlash.
pub const T2G_SFLASH: u32 = 0x1700_0000;
/// T2G address of the single-bank code flash.
pub const T2G_CODE: u32 = 0x1000_0000;
/// T2G address of the marker log.
pub const T2G_LOG: u32 = 0x1401_2000;
/// Marker log size (two 2 KB work-flash sectors).
pub const LOG_SIZE: u32 = 0x1000;

/// One emulated board's placement of the T2G memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// QEMU `-machine` name.
    pub machine: &'static str,
    /// SFlash copy.
    pub sflash: u32,
    /// Lower bank's CM0+ region (T2G 0x10000000).
    pub lower_cm0p: u32,
    /// Upper bank's CM0+ region (T2G 0x103F8000).
    pub upper_cm0p: u32,
    /// The marker log (read-write).
    pub log: u32,
    /// The board-inputs block.
    pub inputs: u32,
    /// Where a whole bank can be loaded for the verification benchmark, if the board has room.
    pub bank: Option<u32>,
}

/// QEMU `-machine microbit`: Cortex-M0 (the CM0+ stand-in).
pub const MICROBIT: Board = Board {
    machine: "microbit",
    sflash: 0x0001_0000,
    lower_cm0p: 0x0001_8000,
    upper_cm0p: 0x0002_8000,
    inputs: 0x0003_8000,
    log: 0x2000_0000,
    bank: None,
};

/// QEMU `-machine mps2-an500`: Cortex-M7 (the CM7 stand-in, and the DBM when a board with room
/// is needed).
pub const MPS2_AN500: Board = Board {
    machine: "mps2-an500",
    sflash: 0x6080_0000,
    lower_cm0p: 0x6000_0000,
    upper_cm0p: 0x6000_0000 + UPPER_SBM_OFFSET,
    inputs: 0x6081_0000,
    log: 0x6083_0000,
    bank: Some(0x6000_0000),
};

// The microbit's flash is 256 KB, the DBM's own 64 KB come first.
const _: () = assert!(MICROBIT.inputs + 0x100 <= 0x4_0000 && MICROBIT.sflash >= 0x1_0000);

/// Every board.
pub const BOARDS: [Board; 2] = [MICROBIT, MPS2_AN500];

impl Board {
    /// The board by QEMU machine name.
    pub fn by_machine(name: &str) -> Option<Board> {
        BOARDS.into_iter().find(|b| b.machine == name)
    }

    /// The emulated address of a T2G address, if the DBM's windows cover it.
    pub fn translate(&self, t2g: u32) -> Option<u32> {
        let within = |base: u32, len: u32| t2g.checked_sub(base).filter(|o| *o < len);
        if let Some(o) = within(T2G_SFLASH, SFLASH_SIZE) {
            return Some(self.sflash + o);
        }
        if let Some(o) = within(T2G_LOG, LOG_SIZE) {
            return Some(self.log + o);
        }
        self.code_window(t2g.checked_sub(T2G_CODE)?)
    }

    /// The emulated address of a single-bank code-flash offset, if it lies in a CM0+ window.
    pub fn code_window(&self, sbm_offset: u32) -> Option<u32> {
        if sbm_offset < CM0P_WINDOW {
            return Some(self.lower_cm0p + sbm_offset);
        }
        let o = sbm_offset.checked_sub(UPPER_SBM_OFFSET)?;
        (o < CM0P_WINDOW).then(|| self.upper_cm0p + o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_translate_and_do_not_overlap() {
        for b in BOARDS {
            assert_eq!(b.translate(0x1000_0000), Some(b.lower_cm0p));
            assert_eq!(b.translate(0x1000_FFFF), Some(b.lower_cm0p + 0xFFFF));
            assert_eq!(b.translate(0x1001_0000), None);
            assert_eq!(b.translate(0x103F_8000), Some(b.upper_cm0p));
            assert_eq!(b.translate(0x1040_8000), None);
            assert_eq!(b.translate(0x1700_6400), Some(b.sflash + 0x6400));
            assert_eq!(b.translate(0x1401_2000), Some(b.log));
            assert_eq!(b.translate(0x1401_1FFC), None);
            let mut w = [
                (b.sflash, SFLASH_SIZE),
                (b.lower_cm0p, CM0P_WINDOW),
                (b.upper_cm0p, CM0P_WINDOW),
                (b.inputs, 0x100),
                (b.log, LOG_SIZE),
            ];
            w.sort();
            for p in w.windows(2) {
                assert!(p[0].0 + p[0].1 <= p[1].0, "{}: {p:x?}", b.machine);
            }
        }
    }
}
