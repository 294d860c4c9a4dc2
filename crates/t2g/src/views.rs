//! `embedded-storage` 0.3 views of the device, for the bootloader and the OTA agent.
//!
//! Each view borrows the device mutably and addresses its memory by offset from the view's
//! start. Writes are split at 512 B row boundaries (code flash) or per 32-bit word (work
//! flash): each piece is one operation, and any of them can be cut. `MultiwriteNorFlash` is
//! deliberately not implemented: this is ECC flash and a word is written once per erase.

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use crate::device::Device;
use crate::error::Error;
use crate::geometry::*;
use crate::registers::BankMode;

fn check(offset: u32, len: usize, capacity: usize) -> Result<(), Error> {
    if offset as usize > capacity || len > capacity - offset as usize {
        return Err(Error::OutOfView {
            offset,
            len,
            capacity,
        });
    }
    Ok(())
}

fn check_erase(from: u32, to: u32, capacity: usize, unit: u32, base: u32) -> Result<(), Error> {
    if from > to {
        return Err(Error::OutOfView {
            offset: from,
            len: 0,
            capacity,
        });
    }
    check(from, (to - from) as usize, capacity)?;
    for v in [from, to] {
        if v % unit != 0 {
            return Err(Error::NotAligned {
                addr: base + v,
                align: unit,
            });
        }
    }
    Ok(())
}

/// A code-flash window: a dual-bank bank (through the current mapping) or the single-bank view.
#[derive(Debug)]
pub struct CodeFlashView<'a> {
    dev: &'a mut Device,
    base: u32,
    len: u32,
}

impl<'a> CodeFlashView<'a> {
    /// The absolute address of offset 0.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The device behind the view.
    pub fn device(&mut self) -> &mut Device {
        self.dev
    }
}

impl ErrorType for CodeFlashView<'_> {
    type Error = Error;
}

impl ReadNorFlash for CodeFlashView<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        check(offset, bytes.len(), self.len as usize)?;
        self.dev.read(self.base + offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl NorFlash for CodeFlashView<'_> {
    /// One 64-bit ECC word.
    const WRITE_SIZE: usize = CODE_WORD as usize;
    /// 32 KB: a large sector, or four small ones (each erased as its own operation).
    const ERASE_SIZE: usize = CODE_LARGE_SECTOR as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        check_erase(from, to, self.len as usize, CODE_LARGE_SECTOR, self.base)?;
        let mut a = self.base + from;
        while a < self.base + to {
            let small = self.dev.translate_code(a)?.small;
            self.dev.erase_sector(a)?;
            a += if small {
                CODE_SMALL_SECTOR
            } else {
                CODE_LARGE_SECTOR
            };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        check(offset, bytes.len(), self.len as usize)?;
        if !offset.is_multiple_of(CODE_WORD) {
            return Err(Error::NotAligned {
                addr: self.base + offset,
                align: CODE_WORD,
            });
        }
        if !bytes.len().is_multiple_of(CODE_WORD as usize) {
            return Err(Error::BadLength {
                len: bytes.len(),
                unit: CODE_WORD,
            });
        }
        let mut addr = self.base + offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = rest.len().min((CODE_ROW - addr % CODE_ROW) as usize);
            self.dev.program_code(addr, &rest[..n])?;
            addr += n as u32;
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// A work-flash range (whole, or e.g. the marker-log sectors).
#[derive(Debug)]
pub struct WorkFlashView<'a> {
    dev: &'a mut Device,
    base: u32,
    len: u32,
}

impl WorkFlashView<'_> {
    /// The absolute address of offset 0.
    pub fn base(&self) -> u32 {
        self.base
    }
}

impl ErrorType for WorkFlashView<'_> {
    type Error = Error;
}

impl ReadNorFlash for WorkFlashView<'_> {
    const READ_SIZE: usize = 1;

    /// Faults with [`Error::ErasedRead`] on an erased word unless WORK_ERR_SILENT is set.
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        check(offset, bytes.len(), self.len as usize)?;
        self.dev.read(self.base + offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl NorFlash for WorkFlashView<'_> {
    /// One 32-bit ECC word.
    const WRITE_SIZE: usize = WORK_WORD as usize;
    /// 2 KB: a large sector, or sixteen small ones (each erased as its own operation).
    const ERASE_SIZE: usize = WORK_LARGE_SECTOR as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        check_erase(from, to, self.len as usize, WORK_LARGE_SECTOR, self.base)?;
        let mut a = self.base + from;
        while a < self.base + to {
            self.dev.erase_sector(a)?;
            a += if a < WORK_SMALL_BASE {
                WORK_LARGE_SECTOR
            } else {
                WORK_SMALL_SECTOR
            };
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        check(offset, bytes.len(), self.len as usize)?;
        self.dev.program_work(self.base + offset, bytes)
    }
}

/// SFlash, read-only through the traits (writes are [`Device::sflash_write_row`]).
#[derive(Debug)]
pub struct SFlashView<'a> {
    dev: &'a mut Device,
}

impl ErrorType for SFlashView<'_> {
    type Error = Error;
}

impl ReadNorFlash for SFlashView<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        check(offset, bytes.len(), SFLASH_SIZE as usize)?;
        self.dev.read(SFLASH_BASE + offset, bytes)
    }

    fn capacity(&self) -> usize {
        SFLASH_SIZE as usize
    }
}

impl Device {
    fn bank_view(&mut self, base: u32) -> Result<CodeFlashView<'_>, Error> {
        if self.flash_ctl().bank_mode() != BankMode::Dual {
            return Err(Error::WrongBankMode {
                needed: BankMode::Dual,
            });
        }
        Ok(CodeFlashView {
            dev: self,
            base,
            len: BANK_SIZE,
        })
    }

    /// The active bank at 0x10000000 (dual-bank mode; the physical half the mapping selects):
    /// 0x418000 bytes, large sectors then small ones from offset 0x3F8000.
    pub fn active_bank(&mut self) -> Result<CodeFlashView<'_>, Error> {
        self.bank_view(BANK0_BASE)
    }

    /// The inactive bank, through the 0x12000000 alias (dual-bank mode).
    pub fn inactive_bank(&mut self) -> Result<CodeFlashView<'_>, Error> {
        self.bank_view(BANK1_BASE)
    }

    /// The whole code flash in single-bank mode (0x10000000, 8384 KB).
    pub fn single_bank(&mut self) -> Result<CodeFlashView<'_>, Error> {
        if self.flash_ctl().bank_mode() != BankMode::Single {
            return Err(Error::WrongBankMode {
                needed: BankMode::Single,
            });
        }
        Ok(CodeFlashView {
            dev: self,
            base: CODE_BASE,
            len: CODE_SIZE,
        })
    }

    /// The whole work flash.
    pub fn work_flash(&mut self) -> WorkFlashView<'_> {
        WorkFlashView {
            dev: self,
            base: WORK_BASE,
            len: WORK_SIZE,
        }
    }

    /// A work-flash range `[addr, addr + len)`, both ends 2 KB aligned (e.g. the two marker-log
    /// sectors: `work_flash_range(WORK_MARKER_LOG, 0x1000)`).
    pub fn work_flash_range(&mut self, addr: u32, len: u32) -> Result<WorkFlashView<'_>, Error> {
        let off = Self::work_offset(addr, len as usize)?;
        for v in [off, off + len] {
            if v % WORK_LARGE_SECTOR != 0 {
                return Err(Error::NotAligned {
                    addr: WORK_BASE + v,
                    align: WORK_LARGE_SECTOR,
                });
            }
        }
        Ok(WorkFlashView {
            dev: self,
            base: addr,
            len,
        })
    }

    /// SFlash, read-only.
    pub fn sflash(&mut self) -> SFlashView<'_> {
        SFlashView { dev: self }
    }
}
