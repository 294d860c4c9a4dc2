//! # ferrota-boot: the boot chain of a TRAVEO T2G CYT4BF
//!
//! The seed system boots through the ROM, a Dual Bank Manager (DBM) in SFlash and a CM0+ app
//! that starts CM7_0 (`spec/t2g-cyt4bf.md` §2–§4). This crate is that chain as `no_std` Rust with
//! no allocation and no I/O of its own: every memory is passed in as an `embedded-storage` flash
//! trait, so the same code runs on the MCU and on the `ferrota-t2g` model.
//!
//! # Design overview
//!
//! ```text
//!  reset ─▶ rom::check ──▶ dbm (single-bank mode) ──────────────▶ switch ──▶ cm0p (dual-bank) ──▶ CM7_0 [+ CM7_1]
//!           S-HASH over     read marker log ─ verify banks ─       MAIN_BANK_MODE   verify CM7_0,     app::confirm
//!           SFlash objects  choose ─ persist ─ Decision            MAIN_MAP         CM7_1             app::reject
//!           (SECURE only)        ▲       │                                          │ failure          app::request_activation
//!                                │       ▼                                          ▼                       │
//!                             ┌──────────────── marker log (work flash 0x14012000, 2 × 2 KB) ◀──────────────┘
//!                             └─ full-state snapshots: seq, event, current bank, trial, floor, bad marks, CRC, commit
//! ```
//!
//! * [`log`]: the marker log — append-only snapshot records, a commit word written last,
//!   compaction into the other sector; any prefix of any write sequence reads back as the state
//!   before or after it (weakness #1 of the seed).
//! * [`dbm`]: the bank choice as typed stages ([`dbm::Dbm`] → [`dbm::LogRead`] →
//!   [`dbm::Choice`] → [`dbm::Decision`]): a [`dbm::Decision`] only exists once its record is
//!   persisted, and a [`dbm::Boot`] carries the image crate's proof value. Anti-rollback floor
//!   (#4), trial budget and revert (#8), USER1 override, fallback, and **bank locks**: a
//!   rejected, reverted or refused image (and a bank the agent is writing) boots on no path
//!   until a new activation (`log`, "Bank locks").
//! * [`cm0p`]: verifies CM7_0 and CM7_1 and, on failure, records it and asks for a reset so the
//!   DBM falls back instead of halting (#3).
//! * [`app`]: what the OTA agent calls: activation (instant: the inactive bank already holds the
//!   image), confirm (raises the floor), reject (the next boot runs the previous bank, #2), the
//!   AWS PAL image state and a report of the last boot.
//! * [`rom`]: the ROM boot's S-HASH check in the secure life-cycle stages.
//!
//! # Running the chain on a device
//!
//! ```text
//! rom::check(&mut sflash, lifecycle, &efuse_shash, &mut scratch)?;            // refuse to start otherwise
//! set FLASH_CTL.WORK_ERR_SILENT                                              // as the seed's DBM does
//! let read = Dbm::new(&key).user1(pressed).efuse_floor(counter).read_log(&mut log)?;
//! let choice = read.choose(&mut single_bank_code_flash, &mut scratch);
//! match choice.persist(&mut log)? {
//!     Decision::Halt(h) => loop {},
//!     Decision::Boot(boot) => {
//!         set MAIN_BANK_MODE = dual, MAIN_MAP = boot.bank.main_map()            // the switch routine
//!         match cm0p::verify_cores(&mut active_bank, &key, &boot.proof, &mut scratch) {
//!             Ok(start) => start CM7_0 (and CM7_1 if start.start_cm7_1),
//!             Err(failure) => { failure.record(&mut log, boot.bank)?; reset }
//!         }
//!     }
//! }
//! ```
//!
//! `crates/boot/tests/common/mod.rs` does exactly this on a `ferrota_t2g::Device`.

#![no_std]
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod app;
pub mod cm0p;
mod crc;
pub mod dbm;
pub mod log;
pub mod rom;

use core::fmt;

pub use dbm::{Boot, BootReason, Dbm, Decision, Halt};
pub use log::{BootState, Event, LogError, MarkerLog};

/// Bank offset of the upper physical half in the single-bank view (0x103F8000 − 0x10000000).
pub const UPPER_BANK_OFFSET: u32 = 0x003F_8000;

/// A physical half of code flash: which one the DBM maps at 0x10000000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bank {
    /// The lower half (single-bank 0x10000000); booted with mapping A (MAIN_MAP = 0).
    Lower,
    /// The upper half (single-bank 0x103F8000); booted with mapping B (MAIN_MAP = 1).
    Upper,
}

impl Bank {
    /// Both banks, lower first.
    pub const ALL: [Bank; 2] = [Bank::Lower, Bank::Upper];

    /// The other half.
    pub const fn other(self) -> Bank {
        match self {
            Bank::Lower => Bank::Upper,
            Bank::Upper => Bank::Lower,
        }
    }

    /// Offset of the bank's start in the single-bank code-flash view (where the DBM reads it).
    pub const fn sbm_offset(self) -> u32 {
        match self {
            Bank::Lower => 0,
            Bank::Upper => UPPER_BANK_OFFSET,
        }
    }

    /// The FLASH_CTL.MAIN_MAP value that maps this bank at 0x10000000 (mapping A = 0, B = 1).
    pub const fn main_map(self) -> bool {
        matches!(self, Bank::Upper)
    }

    /// The bank that runs under a MAIN_MAP value: how the CM0+ stage and the app learn where
    /// they run.
    pub const fn from_main_map(main_map: bool) -> Bank {
        if main_map { Bank::Upper } else { Bank::Lower }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            Bank::Lower => 1,
            Bank::Upper => 2,
        }
    }

    pub(crate) const fn from_code(c: u8) -> Option<Option<Bank>> {
        match c {
            0 => Some(None),
            1 => Some(Some(Bank::Lower)),
            2 => Some(Some(Bank::Upper)),
            _ => None,
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Bank::Lower => 0,
            Bank::Upper => 1,
        }
    }
}

impl fmt::Display for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bank::Lower => "lower (mapping A)",
            Bank::Upper => "upper (mapping B)",
        })
    }
}
