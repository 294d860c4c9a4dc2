//! The agent's flashes on the live board: PSRAM windows with the T2G's NOR rules.
//!
//! | agent view | T2G | here |
//! |---|---|---|
//! | inactive bank (written) | 0x12000000 alias, code flash | the other bank, whole, [`RamCodeFlash`] (8-byte words, 32 KB sectors, program only erased words: the host model's rules) |
//! | running bank (read) | 0x10000000 | the mapped bank, [`MappedFlash`] |
//! | resume area | work flash 0x14013000 | [`live::RESUME`], [`RamNor`] (4-byte words, 2 KB sectors) |
//! | marker log | work flash 0x14012000 | [`live::LOG`], [`RamNor`] |
//! | trust store | work flash | [`live::TRUST`], [`RamNor`] |
//!
//! The PSRAM is file-backed (the host writes it before QEMU starts), so everything written here
//! survives the resets.

use ferrota_agent::{FlashFault, Platform, RESUME_AREA_LEN, TRUST_AREA_LEN};
use ferrota_boot::log::LOG_SIZE;
use ferrota_fw_board::{MappedFlash, RamCodeFlash, RamNor};
use ferrota_image::BANK_SIZE;
use ferrota_qemu_harness::live::{self, handoff::Handoff};

/// The windows of one power-on: which bank runs is the DBM's hand-off.
pub struct LivePlatform {
    running: u32,
    inactive: u32,
}

impl LivePlatform {
    /// The windows for the bank the hand-off names.
    pub const fn new(h: &Handoff) -> Self {
        LivePlatform {
            running: h.bank_base(),
            inactive: h.other_bank_base(),
        }
    }
}

impl Platform for LivePlatform {
    type Bank<'p> = RamCodeFlash;
    type Resume<'p> = RamNor;
    type Log<'p> = RamNor;
    type Active<'p> = MappedFlash;
    type Trust<'p> = RamNor;

    fn inactive_bank(&mut self) -> Result<RamCodeFlash, FlashFault> {
        // SAFETY: the other bank's PSRAM window: nothing else writes it while the agent holds
        // it (the agent holds one view of each kind at a time, and the windows are disjoint:
        // ferrota-qemu-harness live's test).
        Ok(unsafe { RamCodeFlash::new(self.inactive, BANK_SIZE) })
    }

    fn resume_area(&mut self) -> Result<RamNor, FlashFault> {
        // SAFETY: as above, the resume area's window.
        Ok(unsafe { RamNor::new(live::RESUME, RESUME_AREA_LEN) })
    }

    fn marker_log(&mut self) -> Result<RamNor, FlashFault> {
        // SAFETY: as above, the marker log's window (the app reads it only between calls).
        Ok(unsafe { RamNor::new(live::LOG, LOG_SIZE) })
    }

    fn active_bank(&mut self) -> Result<MappedFlash, FlashFault> {
        Ok(MappedFlash::new(self.running, BANK_SIZE))
    }

    fn trust_area(&mut self) -> Result<RamNor, FlashFault> {
        // SAFETY: as above, the trust store's window.
        Ok(unsafe { RamNor::new(live::TRUST, TRUST_AREA_LEN) })
    }
}
