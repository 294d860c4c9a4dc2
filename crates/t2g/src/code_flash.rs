//! Code flash: address translation through FLASH_CTL, sector erase and row programming.
//!
//! The physical array is indexed by *physical offset*, which is the single-bank-mode address
//! minus 0x10000000 (so the SBM view is the identity). In dual-bank mode logical bank `L`
//! (0 at 0x10000000, 1 at 0x12000000) shows physical half `L xor MAIN_MAP`; inside a bank, offsets
//! below 0x3F8000 are the half's large sectors, the next 0x20000 its small sectors (geometry
//! decision 1 says which small sectors belong to which half).

use crate::device::Device;
use crate::error::{AddressError, Error};
use crate::geometry::*;
use crate::power::OpMode;
use crate::registers::{BankMode, FlashCtl, Mapping};

/// One of the two physical halves of code flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    /// The SBM lower half: large sectors from 0x10000000, small from 0x107F0000.
    Lower,
    /// The SBM upper half: large sectors from 0x103F8000, small from 0x10810000.
    Upper,
}

/// The physical location of a code-flash address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeLocation {
    /// Physical offset (= the single-bank-mode address − 0x10000000).
    pub phys: u32,
    /// The half it belongs to.
    pub half: Half,
    /// Whether it is in a small (8 KB) sector.
    pub small: bool,
    /// Bytes from here that are physically contiguous in the same view (to the end of the
    /// large or small area in dual-bank mode, to the end of flash in single-bank mode).
    pub contiguous: u32,
}

impl CodeLocation {
    /// The single-bank-mode address of this location.
    pub fn sbm_address(&self) -> u32 {
        CODE_BASE + self.phys
    }
}

fn half_of(phys: u32) -> Half {
    let upper = if phys < 2 * HALF_LARGE_SIZE {
        phys >= HALF_LARGE_SIZE
    } else {
        phys >= 2 * HALF_LARGE_SIZE + HALF_SMALL_SIZE
    };
    if upper { Half::Upper } else { Half::Lower }
}

/// Translates a code-flash address through the register value `ctl`.
///
/// Returns [`AddressError::Unmapped`] for an address of the code-flash windows
/// (0x10000000–0x13FFFFFF) that the bank mode does not map, [`AddressError::NoMemory`] for any
/// other address.
pub fn translate_code(addr: u32, ctl: FlashCtl) -> Result<CodeLocation, AddressError> {
    let mode = ctl.bank_mode();
    let unmapped = || {
        if (0x1000_0000..0x1400_0000).contains(&addr) {
            AddressError::Unmapped { addr, mode }
        } else {
            AddressError::NoMemory { addr }
        }
    };
    match mode {
        BankMode::Single => {
            if !(CODE_BASE..SBM_END).contains(&addr) {
                return Err(unmapped());
            }
            let phys = addr - CODE_BASE;
            Ok(CodeLocation {
                phys,
                half: half_of(phys),
                small: phys >= 2 * HALF_LARGE_SIZE,
                contiguous: CODE_SIZE - phys,
            })
        }
        BankMode::Dual => {
            let (logical, off) = if (BANK0_BASE..BANK0_BASE + BANK_SIZE).contains(&addr) {
                (0, addr - BANK0_BASE)
            } else if (BANK1_BASE..BANK1_BASE + BANK_SIZE).contains(&addr) {
                (1, addr - BANK1_BASE)
            } else {
                return Err(unmapped());
            };
            let map = u32::from(ctl.mapping() == Mapping::B);
            let h = logical ^ map;
            let half = if h == 0 { Half::Lower } else { Half::Upper };
            Ok(if off < HALF_LARGE_SIZE {
                CodeLocation {
                    phys: h * HALF_LARGE_SIZE + off,
                    half,
                    small: false,
                    contiguous: HALF_LARGE_SIZE - off,
                }
            } else {
                CodeLocation {
                    phys: 2 * HALF_LARGE_SIZE + h * HALF_SMALL_SIZE + (off - HALF_LARGE_SIZE),
                    half,
                    small: true,
                    contiguous: BANK_SIZE - off,
                }
            })
        }
    }
}

impl Device {
    /// Translates a code-flash address with the current FLASH_CTL.
    pub fn translate_code(&self, addr: u32) -> Result<CodeLocation, AddressError> {
        translate_code(addr, self.ctl)
    }

    pub(crate) fn read_code(&self, addr: u32, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .checked_add(done as u32)
                .ok_or(AddressError::RangeEnd {
                    addr,
                    len: buf.len(),
                })?;
            let loc = translate_code(a, self.ctl).map_err(|e| match e {
                _ if done > 0 => AddressError::RangeEnd {
                    addr,
                    len: buf.len(),
                },
                e => e,
            })?;
            let n = (buf.len() - done).min(loc.contiguous as usize);
            self.code.read(loc.phys, &mut buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Erases the code-flash sector starting at `addr` (any view). One operation.
    pub(crate) fn erase_code_sector(&mut self, addr: u32) -> Result<(), Error> {
        let loc = self.translate_code(addr)?;
        let s = self
            .code
            .sector_at(loc.phys)
            .ok_or(AddressError::NoMemory { addr })?;
        if s.start != loc.phys {
            return Err(Error::NotSectorStart { addr });
        }
        let t = if loc.small {
            self.timing.code_erase_small
        } else {
            self.timing.code_erase_large
        };
        match self.begin_op()? {
            OpMode::Normal => {
                self.code.erase(s.index);
                self.clock.advance(t);
                Ok(())
            }
            OpMode::Torn(mut rng) => {
                self.code.erase_torn(s.index, &mut rng);
                self.clock
                    .advance(t.mul_f64(rng.below(1000) as f64 / 1000.0));
                Err(Error::PowerLost)
            }
        }
    }

    /// Programs `data` into code flash at `addr` (any view): one SROM program operation.
    ///
    /// `addr` must be 8-byte aligned, `data` a non-zero multiple of 8 bytes, and the range must
    /// stay within one 512 B row (the PDL's `Cy_Flash_ProgramRow`; 8 B and 32 B programs are the
    /// smaller hardware units). Every 64-bit word must be erased: a second program of a word is
    /// an ECC error, even with the same value, and the call then changes nothing.
    pub fn program_code(&mut self, addr: u32, data: &[u8]) -> Result<(), Error> {
        self.ensure_powered()?;
        if !addr.is_multiple_of(CODE_WORD) {
            return Err(Error::NotAligned {
                addr,
                align: CODE_WORD,
            });
        }
        if data.is_empty() || !data.len().is_multiple_of(CODE_WORD as usize) {
            return Err(Error::BadLength {
                len: data.len(),
                unit: CODE_WORD,
            });
        }
        if data.len() > CODE_ROW as usize
            || (addr % CODE_ROW) as usize + data.len() > CODE_ROW as usize
        {
            return Err(Error::CrossesRow {
                addr,
                len: data.len(),
            });
        }
        let loc = self.translate_code(addr)?;
        if let Some(w) = self.code.first_written(loc.phys, data.len() as u32) {
            return Err(Error::NotErased {
                addr: addr + (w - loc.phys),
            });
        }
        let t = self.timing.code_program(data.len() as u32);
        match self.begin_op()? {
            OpMode::Normal => {
                self.code.program(loc.phys, data);
                self.clock.advance(t);
                Ok(())
            }
            OpMode::Torn(mut rng) => {
                let (done, of) = self.code.program_torn(loc.phys, data, &mut rng);
                self.clock.advance(t * done / of);
                Err(Error::PowerLost)
            }
        }
    }

    /// Whether every 64-bit word of `[addr, addr + len)` (any code-flash view) is erased.
    pub fn code_is_erased(&self, addr: u32, len: u32) -> Result<bool, Error> {
        let mut pos = 0;
        while pos < len {
            let loc = self.translate_code(addr + pos)?;
            let n = (len - pos).min(loc.contiguous);
            if self.code.first_written(loc.phys, n).is_some() {
                return Ok(false);
            }
            pos += n;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dual(map: Mapping) -> FlashCtl {
        FlashCtl::RESET
            .with_bank_mode(BankMode::Dual)
            .with_mapping(map)
    }

    #[test]
    fn single_bank_is_identity() {
        let l = translate_code(0x107F_0000, FlashCtl::RESET).unwrap();
        assert_eq!((l.phys, l.half, l.small), (0x7F_0000, Half::Lower, true));
        let l = translate_code(0x1081_0000, FlashCtl::RESET).unwrap();
        assert_eq!(l.half, Half::Upper);
        let l = translate_code(0x103F_8000, FlashCtl::RESET).unwrap();
        assert_eq!((l.half, l.small), (Half::Upper, false));
        assert_eq!(
            translate_code(0x1200_0000, FlashCtl::RESET),
            Err(AddressError::Unmapped {
                addr: 0x1200_0000,
                mode: BankMode::Single
            })
        );
        assert_eq!(
            translate_code(0x1083_0000, FlashCtl::RESET),
            Err(AddressError::Unmapped {
                addr: 0x1083_0000,
                mode: BankMode::Single
            })
        );
        assert_eq!(
            translate_code(0x0800_0000, FlashCtl::RESET),
            Err(AddressError::NoMemory { addr: 0x0800_0000 })
        );
    }

    #[test]
    fn dual_bank_mappings() {
        let a = dual(Mapping::A);
        let b = dual(Mapping::B);
        assert_eq!(
            translate_code(0x1000_0080, a).unwrap().sbm_address(),
            0x1000_0080
        );
        assert_eq!(
            translate_code(0x1200_0080, a).unwrap().sbm_address(),
            0x103F_8080
        );
        assert_eq!(
            translate_code(0x1000_0080, b).unwrap().sbm_address(),
            0x103F_8080
        );
        assert_eq!(
            translate_code(0x1200_0080, b).unwrap().sbm_address(),
            0x1000_0080
        );
        assert_eq!(
            translate_code(0x103F_8000, a).unwrap().sbm_address(),
            0x107F_0000
        );
        assert_eq!(
            translate_code(0x123F_8000, a).unwrap().sbm_address(),
            0x1081_0000
        );
        assert_eq!(
            translate_code(0x123F_8000, b).unwrap().sbm_address(),
            0x107F_0000
        );
        assert_eq!(
            translate_code(0x1241_7FFF, b).unwrap().sbm_address(),
            0x1080_FFFF
        );
        assert!(matches!(
            translate_code(0x1041_8000, a),
            Err(AddressError::Unmapped {
                mode: BankMode::Dual,
                ..
            })
        ));
        assert!(translate_code(0x1241_8000, a).is_err());
    }
}
