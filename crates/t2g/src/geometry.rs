//! Every address, size and layout decision of the model, in one place.
//!
//! Facts marked **[V]** come from `spec/t2g-cyt4bf.md` §1 (device header, PDL, the seed's code).
//! Decisions marked **[I]** or **[U]** are ours: the spec could not establish them, so the model
//! picks one value and every other module uses the constant from here, never a literal.
//!
//! # Decisions for the spec's [I]/[U] items
//!
//! 1. **Small-sector split between the halves [I].** The 256 KB of 8 KB small sectors
//!    (SBM 0x107F0000–0x1082FFFF) are split in two: the first 128 KB (0x107F0000–0x1080FFFF)
//!    belong to the *lower* physical half, the last 128 KB (0x10810000–0x1082FFFF) to the
//!    *upper* half. So under mapping A bank 0's small sectors (0x103F8000) are SBM 0x107F0000,
//!    under mapping B they are SBM 0x10810000. This is the spec's "presumably" reading; the seed
//!    does not depend on it.
//! 2. **Reset state [I].** FLASHC_FLASH_CTL resets to 0 at every reset and power-on: single-bank
//!    mode, mapping A, WORK_ERR_SILENT clear.
//! 3. **Code-flash erased reads [I/U].** Erased code flash reads as 0xFF without a fault (the
//!    spec's J-Flash convention). Erased *work* flash faults unless WORK_ERR_SILENT is set, as the
//!    Infineon KBA says.
//! 4. **Work-flash bank mode.** WORK_BANK_MODE/WORK_MAP are not modelled: work flash is always
//!    seen at its SBM addresses (the seed never switches it); 0x15000000 is unmapped.
//! 5. **eFuse layout [U].** The real fuse map is not public in the sources read. The model uses a
//!    1024-bit (128-byte) array, blown = 1, with:
//!    * bytes 0..2: life-cycle stage bits, one bit per stage ([`LC_BIT_NORMAL`] …), see
//!      [`crate::efuse::LifeCycle`] for the decoding and the allowed transitions;
//!    * bytes 16..48: S-HASH, 32 bytes = a SHA-256 digest ([`EFUSE_SHASH_OFFSET`]);
//!    * byte 48, bits 0..4 (array bits 384..388): boot-key revocation, one bit per key slot
//!      ([`EFUSE_KEY_REVOKE_OFFSET`], [`EFUSE_KEY_SLOTS`]; design #20 §5): bit n blown = the
//!      key in SFlash slot n is no longer trusted. The rest of byte 48 is kept free;
//!    * bytes 64..80: the anti-rollback counter, 128 bits of thermometer code
//!      ([`EFUSE_COUNTER_OFFSET`], [`EFUSE_COUNTER_BITS`]): value = number of blown bits;
//!    * bytes 2..16, 49..64 and 80..128 are free.
//! 6. **SFlash.** 64 rows of 512 B. A row write is the SROM "write row" (erase + program in one
//!    operation, no erased-state precondition). Fresh SFlash reads 0xFF (the factory content of
//!    the Infineon rows is not modelled).

/// Base of code flash (all views) [V].
pub const CODE_BASE: u32 = 0x1000_0000;
/// Large code-flash sector: 32 KB [V].
pub const CODE_LARGE_SECTOR: u32 = 0x8000;
/// Small code-flash sector: 8 KB [V].
pub const CODE_SMALL_SECTOR: u32 = 0x2000;
/// Large sectors per physical half: 127 [V].
pub const CODE_LARGE_PER_HALF: u32 = 127;
/// Small sectors per physical half: 16 (decision 1, [I]).
pub const CODE_SMALL_PER_HALF: u32 = 16;
/// Large-sector bytes of one half / one dual-bank bank: 0x3F8000 [V].
pub const HALF_LARGE_SIZE: u32 = CODE_LARGE_PER_HALF * CODE_LARGE_SECTOR;
/// Small-sector bytes of one half / one dual-bank bank: 0x20000 [V].
pub const HALF_SMALL_SIZE: u32 = CODE_SMALL_PER_HALF * CODE_SMALL_SECTOR;
/// Size of one dual-bank bank (large + small sectors): 0x418000.
pub const BANK_SIZE: u32 = HALF_LARGE_SIZE + HALF_SMALL_SIZE;
/// Total code flash: 8384 KB [V].
pub const CODE_SIZE: u32 = 2 * BANK_SIZE;
/// Number of code-flash sectors (254 large + 32 small) [V].
pub const CODE_SECTORS: u32 = 2 * (CODE_LARGE_PER_HALF + CODE_SMALL_PER_HALF);

/// Single-bank view: large sectors 0x10000000–0x107EFFFF [V].
pub const SBM_LARGE_BASE: u32 = CODE_BASE;
/// Single-bank view: small sectors 0x107F0000–0x1082FFFF [V].
pub const SBM_SMALL_BASE: u32 = CODE_BASE + 2 * HALF_LARGE_SIZE;
/// End (exclusive) of the single-bank view.
pub const SBM_END: u32 = CODE_BASE + CODE_SIZE;
/// SBM address of the upper half's large sectors: 0x103F8000 [V].
pub const SBM_UPPER_LARGE_BASE: u32 = CODE_BASE + HALF_LARGE_SIZE;
/// SBM address of the upper half's small sectors: 0x10810000 (decision 1, [I]).
pub const SBM_UPPER_SMALL_BASE: u32 = SBM_SMALL_BASE + HALF_SMALL_SIZE;

/// Dual-bank view: logical bank 0 (the active bank, where code runs) [V].
pub const BANK0_BASE: u32 = 0x1000_0000;
/// Dual-bank view: logical bank 1 (the inactive bank, written through this alias) [V].
pub const BANK1_BASE: u32 = 0x1200_0000;
/// Offset of the small sectors inside a dual-bank bank (0x103F8000 / 0x123F8000) [V].
pub const BANK_SMALL_OFFSET: u32 = HALF_LARGE_SIZE;

/// Code-flash ECC word: 64 bits (the unit that may be programmed once per erase) [V].
pub const CODE_WORD: u32 = 8;
/// Code-flash 256-bit program unit [V].
pub const CODE_CHUNK: u32 = 32;
/// Code-flash row (page): 512 B, the largest single program operation [V].
pub const CODE_ROW: u32 = 512;

/// Base of work flash [V].
pub const WORK_BASE: u32 = 0x1400_0000;
/// Large work-flash sector: 2 KB [V].
pub const WORK_LARGE_SECTOR: u32 = 0x800;
/// Small work-flash sector: 128 B [V].
pub const WORK_SMALL_SECTOR: u32 = 0x80;
/// Large work-flash region size: 192 KB (96 sectors) [V].
pub const WORK_LARGE_SIZE: u32 = 0x30000;
/// Small work-flash region base: 0x14030000 [V].
pub const WORK_SMALL_BASE: u32 = WORK_BASE + WORK_LARGE_SIZE;
/// Small work-flash region size: 64 KB (512 sectors) [V].
pub const WORK_SMALL_SIZE: u32 = 0x10000;
/// Total work flash: 256 KB [V].
pub const WORK_SIZE: u32 = WORK_LARGE_SIZE + WORK_SMALL_SIZE;
/// Work-flash ECC word: 32 bits [V].
pub const WORK_WORD: u32 = 4;
/// The seed's marker word, and the start of Ferrota's two-sector marker log [V].
pub const WORK_MARKER_LOG: u32 = 0x1401_2000;

/// Base of SFlash [V].
pub const SFLASH_BASE: u32 = 0x1700_0000;
/// SFlash size: 32 KB [V].
pub const SFLASH_SIZE: u32 = 0x8000;
/// SFlash row: 512 B, the unit of an SROM write-row operation [V].
pub const SFLASH_ROW: u32 = 512;
/// SFlash user data, holding the Dual Bank Manager [V].
pub const SFLASH_DBM: u32 = 0x1700_0800;
/// Size of the DBM area [V].
pub const SFLASH_DBM_SIZE: u32 = 0x800;
/// Public-key object [V].
pub const SFLASH_PUBLIC_KEY: u32 = 0x1700_6400;
/// Size of the public-key area [V].
pub const SFLASH_PUBLIC_KEY_SIZE: u32 = 0xC00;
/// The key structure passed to `Cy_FB_VerifyApplication` (public-key object + 8) [V].
pub const SFLASH_PUBLIC_KEY_STRUCT: u32 = 0x1700_6408;
/// SWPU objects [V].
pub const SFLASH_SWPU: u32 = 0x1700_7600;
/// Size of the SWPU area [V].
pub const SFLASH_SWPU_SIZE: u32 = 0x200;
/// TOC2 [V].
pub const SFLASH_TOC2: u32 = 0x1700_7C00;
/// Size of TOC2 [V].
pub const SFLASH_TOC2_SIZE: u32 = 0x200;

/// Address of FLASHC_FLASH_CTL [V] (informational: the model exposes the register by method).
pub const FLASHC_FLASH_CTL_ADDR: u32 = 0x4024_0000;

/// eFuse size in bytes (1024 bits, [V] "1024-bit OTP").
pub const EFUSE_BYTES: usize = 128;
/// Life-cycle bit: NORMAL (decision 5).
pub const LC_BIT_NORMAL: u32 = 0;
/// Life-cycle bit: SORT.
pub const LC_BIT_SORT: u32 = 1;
/// Life-cycle bit: PROVISIONED.
pub const LC_BIT_PROVISIONED: u32 = 2;
/// Life-cycle bit: NORMAL_PROVISIONED.
pub const LC_BIT_NORMAL_PROVISIONED: u32 = 3;
/// Life-cycle bit: SECURE_WITH_DEBUG.
pub const LC_BIT_SECURE_WITH_DEBUG: u32 = 4;
/// Life-cycle bit: SECURE.
pub const LC_BIT_SECURE: u32 = 5;
/// Life-cycle bit: NORMAL_RMA.
pub const LC_BIT_NORMAL_RMA: u32 = 6;
/// Life-cycle bit: RMA.
pub const LC_BIT_RMA: u32 = 7;
/// Number of life-cycle bits (bits 0..LC_BITS of the eFuse array).
pub const LC_BITS: u32 = 8;
/// Byte offset of S-HASH in the eFuse array (decision 5, [U]).
pub const EFUSE_SHASH_OFFSET: usize = 16;
/// S-HASH length: 32 bytes, a SHA-256 digest ([U]: chosen).
pub const EFUSE_SHASH_LEN: usize = 32;
/// Byte offset of the boot-key revocation bits in the eFuse array (decision 5, design #20 §5).
pub const EFUSE_KEY_REVOKE_OFFSET: usize = 48;
/// Number of boot-key slots with a revocation bit (bits 0..4 of byte 48).
pub const EFUSE_KEY_SLOTS: u32 = 4;
// The revocation byte overlaps neither S-HASH nor the counter, and its bits fit one byte.
const _: () = assert!(
    EFUSE_SHASH_OFFSET + EFUSE_SHASH_LEN <= EFUSE_KEY_REVOKE_OFFSET
        && EFUSE_KEY_REVOKE_OFFSET < EFUSE_COUNTER_OFFSET
        && EFUSE_KEY_SLOTS <= 8
);
/// Byte offset of the anti-rollback counter in the eFuse array (decision 5).
pub const EFUSE_COUNTER_OFFSET: usize = 64;
/// Width of the anti-rollback counter in bits, so its maximum value (decision 5).
pub const EFUSE_COUNTER_BITS: u32 = 128;

/// A run of equally sized sectors, used to describe a flash array's physical layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub count: u32,
    pub size: u32,
}

/// Physical code-flash layout, indexed by *physical offset* = SBM address − 0x10000000:
/// 254 large sectors (lower half first), then 32 small (lower half's 16 first).
pub(crate) const CODE_LAYOUT: &[Segment] = &[
    Segment {
        count: 2 * CODE_LARGE_PER_HALF,
        size: CODE_LARGE_SECTOR,
    },
    Segment {
        count: 2 * CODE_SMALL_PER_HALF,
        size: CODE_SMALL_SECTOR,
    },
];

/// Work-flash layout, indexed by offset from 0x14000000.
pub(crate) const WORK_LAYOUT: &[Segment] = &[
    Segment {
        count: WORK_LARGE_SIZE / WORK_LARGE_SECTOR,
        size: WORK_LARGE_SECTOR,
    },
    Segment {
        count: WORK_SMALL_SIZE / WORK_SMALL_SECTOR,
        size: WORK_SMALL_SECTOR,
    },
];

/// SFlash layout: 64 rows, indexed by offset from 0x17000000.
pub(crate) const SFLASH_LAYOUT: &[Segment] = &[Segment {
    count: SFLASH_SIZE / SFLASH_ROW,
    size: SFLASH_ROW,
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_spec() {
        assert_eq!(HALF_LARGE_SIZE, 0x3F8000);
        assert_eq!(CODE_SIZE, 8384 * 1024);
        assert_eq!(SBM_SMALL_BASE, 0x107F_0000);
        assert_eq!(SBM_END, 0x1083_0000);
        assert_eq!(BANK0_BASE + BANK_SMALL_OFFSET, 0x103F_8000);
        assert_eq!(BANK1_BASE + BANK_SMALL_OFFSET, 0x123F_8000);
        assert_eq!(CODE_SECTORS, 286);
        assert_eq!(WORK_BASE + WORK_SIZE, 0x1404_0000);
        let code: u32 = CODE_LAYOUT.iter().map(|s| s.count * s.size).sum();
        assert_eq!(code, CODE_SIZE);
        let work: u32 = WORK_LAYOUT.iter().map(|s| s.count * s.size).sum();
        assert_eq!(work, WORK_SIZE);
        assert!((EFUSE_COUNTER_BITS / 8) as usize + EFUSE_COUNTER_OFFSET <= EFUSE_BYTES);
    }
}
