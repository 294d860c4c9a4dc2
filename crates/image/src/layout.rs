//! Where each core's image lives inside one code-flash bank of the CYT4BF in dual-bank mode.
//!
//! The numbers come from the seed's linker scripts and `mkbin.pl` (`spec/t2g-cyt4bf.md` §1.7, §5):
//! a bank's large sectors are 0x3F8000 bytes (127 × 32 KB) and hold three regions, each of which
//! starts with a CySAF header and ends with a 256-byte signature slot.

use core::fmt;

/// Size of one bank's large-sector area, and so of a bank image file (`app_combined_s.bin`).
pub const BANK_SIZE: u32 = 0x003F_8000;

/// Address at which the running bank appears in dual-bank mode (and at which the builds are linked).
pub const ACTIVE_BANK_BASE: u32 = 0x1000_0000;

/// Address at which the other (inactive) bank appears in dual-bank mode; updates are written here.
pub const INACTIVE_BANK_BASE: u32 = 0x1200_0000;

/// Size of the signature slot at `region start + objSize`, as `cymcuelftool` reserves it.
pub const SIGNATURE_SLOT_SIZE: u32 = 256;

/// Offset of the vector table from the region start: the linkers align it to 256 bytes.
pub const VECTOR_TABLE_OFFSET: u32 = 0x100;

/// One core's image inside a bank. Every region is signed, CM7_1 included (the seed left it
/// unsigned, so nobody could tell what it held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The Cortex-M0+ image: first to run after the Dual Bank Manager; carries the version record.
    Cm0p,
    /// The first Cortex-M7 image: the application (the OTA agent in the seed).
    Cm7_0,
    /// The second Cortex-M7 image: an optional second application core.
    Cm7_1,
}

impl Region {
    /// All regions in bank order.
    pub const ALL: [Region; 3] = [Region::Cm0p, Region::Cm7_0, Region::Cm7_1];

    /// Offset of the region from the bank start.
    pub const fn offset(self) -> u32 {
        match self {
            Region::Cm0p => 0x0000_0000,
            Region::Cm7_0 => 0x0001_0000,
            Region::Cm7_1 => 0x003E_8000,
        }
    }

    /// Size of the region in bytes; the signature slot is inside it.
    pub const fn size(self) -> u32 {
        match self {
            Region::Cm0p => 0x0001_0000,
            Region::Cm7_0 => 0x003E_8000 - 0x0001_0000,
            Region::Cm7_1 => 0x0001_0000,
        }
    }

    /// One past the last byte of the region, as a bank offset.
    pub const fn end(self) -> u32 {
        self.offset() + self.size()
    }

    /// The `core0Id` the CySAF header must carry for this region (CPUID field plus core index),
    /// so an image built for one core can never be started on another.
    pub const fn core_id(self) -> u32 {
        match self {
            Region::Cm0p => 0xC600_0000,
            Region::Cm7_0 => 0xC240_0000,
            Region::Cm7_1 => 0xC240_0001,
        }
    }

    /// The `objSize` the seed's linkers produce: everything up to the signature slot at the end.
    pub const fn full_obj_size(self) -> u32 {
        self.size() - SIGNATURE_SLOT_SIZE
    }

    /// Short name used in messages and JSON (`cm0p`, `cm7_0`, `cm7_1`).
    pub const fn name(self) -> &'static str {
        match self {
            Region::Cm0p => "cm0p",
            Region::Cm7_0 => "cm7_0",
            Region::Cm7_1 => "cm7_1",
        }
    }

    /// The region that contains a bank offset, if any.
    pub fn containing(bank_offset: u32) -> Option<Region> {
        Region::ALL
            .into_iter()
            .find(|r| bank_offset >= r.offset() && bank_offset < r.end())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Cm0p => "CM0+",
            Region::Cm7_0 => "CM7_0",
            Region::Cm7_1 => "CM7_1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_tile_the_bank_exactly() {
        let mut next = 0;
        for r in Region::ALL {
            assert_eq!(
                r.offset(),
                next,
                "{r} must start where the previous region ends"
            );
            next = r.end();
        }
        assert_eq!(next, BANK_SIZE);
        assert_eq!(
            Region::Cm7_0.full_obj_size(),
            0x003D_7F00,
            "seed's CM7_0 objSize"
        );
        assert_eq!(Region::Cm0p.full_obj_size(), 0xFF00, "seed's CM0+ objSize");
    }

    #[test]
    fn containing_maps_edges() {
        assert_eq!(Region::containing(0), Some(Region::Cm0p));
        assert_eq!(Region::containing(0xFFFF), Some(Region::Cm0p));
        assert_eq!(Region::containing(0x10000), Some(Region::Cm7_0));
        assert_eq!(Region::containing(0x3E8000), Some(Region::Cm7_1));
        assert_eq!(Region::containing(BANK_SIZE), None);
    }
}
