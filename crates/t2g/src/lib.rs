//! A faithful model of the memories of the Infineon TRAVEO T2G CYT4BF (`spec/t2g-cyt4bf.md` §1),
//! for the Ferrota bootloader, OTA agent and simulated board.
//!
//! # Memory map
//!
//! ```text
//!  single-bank mode (FLASH_CTL reset value)      dual-bank mode (MAIN_BANK_MODE = 1)
//!  0x10000000 ┌──────────────────────┐          0x10000000 ┌──────────────────────┐ logical bank 0
//!             │ lower half, 127×32KB │                     │ large 127×32KB       │ (active, where
//!  0x103F8000 ├──────────────────────┤          0x103F8000 ├──────────────────────┤  code runs)
//!             │ upper half, 127×32KB │                     │ small 16×8KB         │
//!  0x107F0000 ├──────────────────────┤          0x10418000 └──────────────────────┘
//!             │ lower small, 16×8KB  │ [I]      0x12000000 ┌──────────────────────┐ logical bank 1
//!  0x10810000 ├──────────────────────┤                     │ large 127×32KB       │ (inactive, the
//!             │ upper small, 16×8KB  │ [I]      0x123F8000 ├──────────────────────┤  OTA target)
//!  0x10830000 └──────────────────────┘                     │ small 16×8KB         │
//!                                               0x12418000 └──────────────────────┘
//!  mapping A (MAIN_MAP = 0): bank 0 = lower half, bank 1 = upper half
//!  mapping B (MAIN_MAP = 1): bank 0 = upper half, bank 1 = lower half
//!
//!  0x14000000 ┌──────────────────────┐ work flash, 32-bit ECC words
//!             │ 96 × 2KB large       │   0x14012000: marker log (2 sectors)
//!  0x14030000 ├──────────────────────┤
//!             │ 512 × 128B small     │
//!  0x14040000 └──────────────────────┘
//!  0x17000000 ┌──────────────────────┐ SFlash, 64 rows of 512B (SROM write-row)
//!             │ 0x17000800 DBM  2KB  │   0x17006400 public key (0xC00)
//!             │ 0x17007600 SWPU      │   0x17007C00 TOC2 (0x200)
//!  0x17008000 └──────────────────────┘
//!  eFuse: 1024 bits — life cycle, S-HASH (32 B), anti-rollback counter (128-bit thermometer)
//! ```
//!
//! # Design overview
//!
//! * [`Device`] holds everything; the memories share one sparse, copy-on-write NOR array
//!   (`nor`), so a clone is a snapshot that costs a few hundred reference counts.
//! * NOR rules are strict: erase by whole sector ([`Device::erase_sector`]); code flash programs
//!   within one 512 B row ([`Device::program_code`]), work flash per 32-bit word
//!   ([`Device::program_work`]); a second program of an ECC word without erase is
//!   [`Error::NotErased`]; an erased work-flash read is [`Error::ErasedRead`] unless
//!   WORK_ERR_SILENT.
//! * FLASH_CTL ([`FlashCtl`]) decides the bank mode and the mapping; it is volatile and resets
//!   on [`Device::reset`] and [`Device::power_cycle`].
//! * Every operation has a duration ([`Timing`], all defaults assumptions) that advances the
//!   simulated clock ([`SimClock`]).
//! * Every operation has a number; [`PowerCut`] cuts before or tears operation N.
//! * [`Device::active_bank`], [`Device::inactive_bank`], [`Device::single_bank`],
//!   [`Device::work_flash`], [`Device::work_flash_range`] and [`Device::sflash`] are
//!   `embedded-storage` 0.3 views.
//! * [`Device::save`] / [`Device::load`] keep the non-volatile state in a sparse, versioned,
//!   checksummed file written atomically.
//!
//! All layout decisions for the spec's [I]/[U] items are in [`geometry`].
//!
//! ```
//! use ferrota_t2g::{BankMode, Device, Mapping, PowerCut};
//! use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
//!
//! let mut dev = Device::new();
//! dev.set_bank_mode(BankMode::Dual)?;
//! let mut bank1 = dev.inactive_bank()?;
//! bank1.erase(0, 0x8000)?;
//! bank1.write(0x80, &[0x5A; 16])?;
//! dev.set_mapping(Mapping::B)?; // the DBM switching to the new bank
//! let mut b = [0; 16];
//! dev.active_bank()?.read(0x80, &mut b)?;
//! assert_eq!(b, [0x5A; 16]);
//!
//! // Power cut before the next operation:
//! dev.schedule_power_cut(PowerCut::Before(dev.op_count()));
//! assert!(dev.erase_sector(0x12000000).is_err());
//! dev.power_cycle(); // back in single-bank mode, mapping A
//! # Ok::<(), ferrota_t2g::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod code_flash;
mod device;
pub mod efuse;
mod error;
pub mod geometry;
mod nor;
mod persist;
mod power;
mod registers;
mod sflash;
mod timing;
mod views;
mod work_flash;

pub use code_flash::{CodeLocation, Half, translate_code};
pub use device::{Device, Location, Region, SectorInfo};
pub use efuse::{Efuse, LifeCycle};
pub use error::{AddressError, EfuseError, Error};
pub use persist::{FORMAT_VERSION, MAGIC, MAX_FILE_SIZE, PersistError};
pub use power::PowerCut;
pub use registers::{BankMode, FlashCtl, Mapping};
pub use timing::{SimClock, Timing};
pub use views::{CodeFlashView, SFlashView, WorkFlashView};

#[cfg(test)]
mod tests;
