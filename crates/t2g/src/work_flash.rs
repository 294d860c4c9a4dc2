//! Work flash: 256 KB of 2 KB and 128 B sectors at 0x14000000, 32-bit ECC words.
//!
//! A word can be programmed once per erase. Reading an erased word is an ECC fault (a HardFault
//! on the chip, [`Error::ErasedRead`] here) unless FLASH_CTL.WORK_ERR_SILENT is set, in which
//! case it reads 0xFF — which is why the seed's DBM sets that bit before reading its marker.

use crate::device::Device;
use crate::error::{AddressError, Error};
use crate::geometry::*;
use crate::power::OpMode;

impl Device {
    /// Offset in work flash of `[addr, addr + len)`, checked to lie inside it.
    pub(crate) fn work_offset(addr: u32, len: usize) -> Result<u32, AddressError> {
        if !(WORK_BASE..WORK_BASE + WORK_SIZE).contains(&addr) {
            return Err(AddressError::NoMemory { addr });
        }
        let off = addr - WORK_BASE;
        if len > (WORK_SIZE - off) as usize {
            return Err(AddressError::RangeEnd { addr, len });
        }
        Ok(off)
    }

    pub(crate) fn read_work(&self, addr: u32, buf: &mut [u8]) -> Result<(), Error> {
        let off = Self::work_offset(addr, buf.len())?;
        if !self.ctl.work_err_silent()
            && let Some(w) = self.work.first_erased(off, buf.len() as u32)
        {
            return Err(Error::ErasedRead {
                addr: WORK_BASE + w,
            });
        }
        self.work.read(off, buf);
        Ok(())
    }

    pub(crate) fn erase_work_sector(&mut self, addr: u32) -> Result<(), Error> {
        let off = Self::work_offset(addr, 0)?;
        let s = self
            .work
            .sector_at(off)
            .ok_or(AddressError::NoMemory { addr })?;
        if s.start != off {
            return Err(Error::NotSectorStart { addr });
        }
        let t = if s.size == WORK_LARGE_SECTOR {
            self.timing.work_erase_large
        } else {
            self.timing.work_erase_small
        };
        match self.begin_op()? {
            OpMode::Normal => {
                self.work.erase(s.index);
                self.clock.advance(t);
                Ok(())
            }
            OpMode::Torn(mut rng) => {
                self.work.erase_torn(s.index, &mut rng);
                self.clock
                    .advance(t.mul_f64(rng.below(1000) as f64 / 1000.0));
                Err(Error::PowerLost)
            }
        }
    }

    /// Programs one 32-bit word of work flash (little-endian): one operation.
    pub fn program_work_word(&mut self, addr: u32, value: u32) -> Result<(), Error> {
        self.program_work(addr, &value.to_le_bytes())
    }

    /// Programs `data` (a non-zero multiple of 4 bytes, 4-byte aligned) into work flash: one
    /// operation per 32-bit word, in address order, so a power cut can fall between any two.
    ///
    /// Every word is checked to be erased before the first is programmed, so a refused call
    /// changes nothing.
    pub fn program_work(&mut self, addr: u32, data: &[u8]) -> Result<(), Error> {
        self.ensure_powered()?;
        if !addr.is_multiple_of(WORK_WORD) {
            return Err(Error::NotAligned {
                addr,
                align: WORK_WORD,
            });
        }
        if data.is_empty() || !data.len().is_multiple_of(WORK_WORD as usize) {
            return Err(Error::BadLength {
                len: data.len(),
                unit: WORK_WORD,
            });
        }
        let off = Self::work_offset(addr, data.len())?;
        if let Some(w) = self.work.first_written(off, data.len() as u32) {
            return Err(Error::NotErased {
                addr: WORK_BASE + w,
            });
        }
        for (i, word) in data.chunks_exact(WORK_WORD as usize).enumerate() {
            let o = off + i as u32 * WORK_WORD;
            let t = self.timing.work_program_word;
            match self.begin_op()? {
                OpMode::Normal => {
                    self.work.program(o, word);
                    self.clock.advance(t);
                }
                OpMode::Torn(mut rng) => {
                    self.work.program_torn(o, word, &mut rng);
                    self.clock.advance(t / 2);
                    return Err(Error::PowerLost);
                }
            }
        }
        Ok(())
    }

    /// Whether every word of `[addr, addr + len)` in work flash is erased (no fault: this is the
    /// model's view, not a CPU read).
    pub fn work_is_erased(&self, addr: u32, len: u32) -> Result<bool, Error> {
        let off = Self::work_offset(addr, len as usize)?;
        Ok(self.work.first_written(off, len).is_none())
    }
}
