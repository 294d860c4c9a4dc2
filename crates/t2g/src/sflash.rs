//! SFlash (supervisory flash): 32 KB at 0x17000000, written a 512 B row at a time.
//!
//! The model follows the SROM "write row" API: one operation erases and programs a whole row,
//! so a row can be rewritten without a separate erase (there is no erased-state precondition).
//! In the secure life-cycle stages (SECURE, SECURE_WITH_DEBUG, and CORRUPTED, which must not be
//! trusted) SFlash is write-protected: the ROM boot's S-HASH covers the objects that TOC2 names,
//! and the secure-boot README says to forbid SFlash rewriting there.

use crate::device::Device;
use crate::efuse::LifeCycle;
use crate::error::{AddressError, Error};
use crate::geometry::*;
use crate::power::OpMode;

impl Device {
    pub(crate) fn sflash_offset(addr: u32, len: usize) -> Result<u32, AddressError> {
        if !(SFLASH_BASE..SFLASH_BASE + SFLASH_SIZE).contains(&addr) {
            return Err(AddressError::NoMemory { addr });
        }
        let off = addr - SFLASH_BASE;
        if len > (SFLASH_SIZE - off) as usize {
            return Err(AddressError::RangeEnd { addr, len });
        }
        Ok(off)
    }

    /// Whether SFlash can be written in this life-cycle stage.
    pub fn sflash_writable(&self) -> bool {
        !matches!(
            self.efuse.lifecycle(),
            LifeCycle::Secure | LifeCycle::SecureWithDebug | LifeCycle::Corrupted
        )
    }

    /// Writes one 512 B SFlash row (SROM write-row: erase + program, one operation).
    ///
    /// A torn write leaves a prefix of the row with the new bytes and the rest with random bits
    /// set (partly erased).
    pub fn sflash_write_row(&mut self, addr: u32, data: &[u8]) -> Result<(), Error> {
        self.ensure_powered()?;
        if !addr.is_multiple_of(SFLASH_ROW) {
            return Err(Error::NotAligned {
                addr,
                align: SFLASH_ROW,
            });
        }
        if data.len() != SFLASH_ROW as usize {
            return Err(Error::BadLength {
                len: data.len(),
                unit: SFLASH_ROW,
            });
        }
        let off = Self::sflash_offset(addr, data.len())?;
        if !self.sflash_writable() {
            return Err(Error::WriteProtected {
                addr,
                stage: self.efuse.lifecycle(),
            });
        }
        let t = self.timing.sflash_write_row;
        let idx = (off / SFLASH_ROW) as usize;
        match self.begin_op()? {
            OpMode::Normal => {
                self.sflash.overwrite(off, data);
                self.bump_sflash_wear(idx);
                self.clock.advance(t);
                Ok(())
            }
            OpMode::Torn(mut rng) => {
                let words = SFLASH_ROW / 8;
                let done = rng.below(u64::from(words)) as u32 * 8;
                let rest = SFLASH_ROW - done;
                self.sflash.scramble(off + done, rest, &mut rng);
                if done > 0 {
                    self.sflash.overwrite(off, &data[..done as usize]);
                }
                self.bump_sflash_wear(idx);
                self.clock.advance(t / 2);
                Err(Error::PowerLost)
            }
        }
    }

    fn bump_sflash_wear(&mut self, idx: usize) {
        if let Some(s) = self.sflash.sectors_mut().get_mut(idx) {
            s.erase_count = s.erase_count.saturating_add(1);
        }
    }
}
