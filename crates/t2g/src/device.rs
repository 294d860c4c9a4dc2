//! The device: all memories, the volatile register, the clock and the power state.

use core::time::Duration;

use crate::efuse::{Efuse, LifeCycle};
use crate::error::{AddressError, Error};
use crate::geometry::*;
use crate::nor::NorArray;
use crate::power::{OpMode, PowerCut, PowerState};
use crate::registers::{BankMode, FlashCtl, Mapping};
use crate::timing::{SimClock, Timing};

/// A CYT4BF's memories.
///
/// Cloning is cheap (one reference count per non-erased sector: sectors are copy-on-write):
/// take a snapshot before a scenario and clone it for every power-cut attempt.
#[derive(Debug, Clone)]
pub struct Device {
    pub(crate) code: NorArray,
    pub(crate) work: NorArray,
    pub(crate) sflash: NorArray,
    pub(crate) efuse: Efuse,
    pub(crate) ctl: FlashCtl,
    pub(crate) timing: Timing,
    pub(crate) clock: SimClock,
    pub(crate) power: PowerState,
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

/// Which memory an address is in, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// Code flash.
    Code(crate::code_flash::CodeLocation),
    /// Work flash, at this offset from 0x14000000.
    Work(u32),
    /// SFlash, at this offset from 0x17000000.
    SFlash(u32),
}

/// Which array a sector belongs to, for the wear report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Code flash.
    Code,
    /// Work flash.
    Work,
    /// SFlash (rows).
    SFlash,
}

/// One sector's wear, for a `show` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SectorInfo {
    /// Which array.
    pub region: Region,
    /// Start address in the single-bank view (code flash: SBM address).
    pub addr: u32,
    /// Size in bytes.
    pub size: u32,
    /// Completed or torn erases (SFlash: row writes) since the device was made.
    pub erase_count: u32,
    /// Whether the sector is in the clean erased state.
    pub erased: bool,
}

impl Device {
    /// A board as shipped: every flash erased, life cycle NORMAL_PROVISIONED (what the seed
    /// assumes), registers at reset, clock at 0, default [`Timing`].
    pub fn new() -> Self {
        let mut d = Self::virgin();
        for bit in [LC_BIT_SORT, LC_BIT_PROVISIONED, LC_BIT_NORMAL_PROVISIONED] {
            let mut bytes = *d.efuse.bytes();
            bytes[(bit / 8) as usize] |= 1 << (bit % 8);
            d.efuse = Efuse::from_bytes(bytes);
        }
        d
    }

    /// A device with no eFuse blown (life cycle VIRGIN) and every flash erased.
    pub fn virgin() -> Self {
        Device {
            code: NorArray::new(CODE_WORD, CODE_LAYOUT),
            work: NorArray::new(WORK_WORD, WORK_LAYOUT),
            sflash: NorArray::new(8, SFLASH_LAYOUT),
            efuse: Efuse::default(),
            ctl: FlashCtl::RESET,
            timing: Timing::default(),
            clock: SimClock::default(),
            power: PowerState::default(),
        }
    }

    /// This device with other operation durations.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The operation durations.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The simulated clock.
    pub fn clock(&self) -> SimClock {
        self.clock
    }

    /// Simulated time since the device was made.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Advances the simulated clock (boot time, waits: anything that is not a flash operation).
    pub fn advance_clock(&mut self, d: Duration) {
        self.clock.advance(d);
    }

    // ---- power ----

    /// Number of flash operations started so far (the number the next one gets).
    pub fn op_count(&self) -> u64 {
        self.power.ops
    }

    /// Schedules a power cut, replacing any pending one.
    pub fn schedule_power_cut(&mut self, cut: PowerCut) {
        self.power.scheduled = Some(cut);
    }

    /// The pending power cut, if any (`None` once it has fired).
    pub fn pending_power_cut(&self) -> Option<PowerCut> {
        self.power.scheduled
    }

    /// This device with a power cut scheduled (builder form of [`Device::schedule_power_cut`]).
    #[must_use]
    pub fn with_power_cut(mut self, cut: PowerCut) -> Self {
        self.power.scheduled = Some(cut);
        self
    }

    /// Runs `scenario` on a clone of this device and returns how many operations it performed,
    /// with its result: the first half of a power-cut sweep.
    ///
    /// ```
    /// # use ferrota_t2g::{Device, Error, PowerCut};
    /// let snapshot = Device::new();
    /// let scenario = |d: &mut Device| -> Result<(), Error> {
    ///     d.erase_sector(0x1401_2000)?;
    ///     d.program_work(0x1401_2000, &[0xAA; 8])
    /// };
    /// let (total, result) = snapshot.count_ops(scenario);
    /// assert_eq!((total, result), (3, Ok(())));
    /// for n in 0..total {
    ///     let mut d = snapshot.clone().with_power_cut(PowerCut::Before(snapshot.op_count() + n));
    ///     assert_eq!(scenario(&mut d), Err(Error::PowerLost));
    ///     d.power_cycle();
    ///     // ... check the invariants of the state left behind ...
    /// }
    /// ```
    pub fn count_ops<T>(&self, scenario: impl FnOnce(&mut Device) -> T) -> (u64, T) {
        let mut d = self.clone();
        d.power.scheduled = None;
        let r = scenario(&mut d);
        (d.power.ops - self.power.ops, r)
    }

    /// Removes a pending power cut.
    pub fn cancel_power_cut(&mut self) {
        self.power.scheduled = None;
    }

    /// Whether the power is lost (a cut fired and no power cycle happened since).
    pub fn power_lost(&self) -> bool {
        self.power.lost
    }

    /// Power off and on: restores power after a cut and resets the volatile registers. The
    /// flash and eFuse contents, the operation count and the clock are kept; a cut that is
    /// scheduled but has not fired stays scheduled.
    pub fn power_cycle(&mut self) {
        self.power.lost = false;
        self.ctl = FlashCtl::RESET;
    }

    /// A reset without power loss: resets the volatile registers. Does not restore lost power.
    pub fn reset(&mut self) {
        self.ctl = FlashCtl::RESET;
    }

    pub(crate) fn ensure_powered(&self) -> Result<(), Error> {
        if self.power.lost {
            Err(Error::PowerLost)
        } else {
            Ok(())
        }
    }

    /// Starts one flash operation (after its arguments were validated).
    pub(crate) fn begin_op(&mut self) -> Result<OpMode, Error> {
        self.ensure_powered()?;
        self.power.begin().ok_or(Error::PowerLost)
    }

    // ---- registers ----

    /// The current FLASHC_FLASH_CTL value.
    pub fn flash_ctl(&self) -> FlashCtl {
        self.ctl
    }

    /// Writes FLASHC_FLASH_CTL (the whole register, as the seed's DBM does). The write, the
    /// read-back and the cache invalidation are one step in the model.
    pub fn write_flash_ctl(&mut self, v: FlashCtl) -> Result<(), Error> {
        self.ensure_powered()?;
        self.ctl = v;
        Ok(())
    }

    /// Read-modify-writes MAIN_BANK_MODE.
    pub fn set_bank_mode(&mut self, m: BankMode) -> Result<(), Error> {
        self.write_flash_ctl(self.ctl.with_bank_mode(m))
    }

    /// Read-modify-writes MAIN_MAP.
    pub fn set_mapping(&mut self, m: Mapping) -> Result<(), Error> {
        self.write_flash_ctl(self.ctl.with_mapping(m))
    }

    /// Read-modify-writes WORK_ERR_SILENT.
    pub fn set_work_err_silent(&mut self, on: bool) -> Result<(), Error> {
        self.write_flash_ctl(self.ctl.with_work_err_silent(on))
    }

    // ---- addresses and generic access ----

    /// Which memory `addr` is in under the current FLASH_CTL.
    pub fn locate(&self, addr: u32) -> Result<Location, AddressError> {
        if (WORK_BASE..WORK_BASE + WORK_SIZE).contains(&addr) {
            Ok(Location::Work(addr - WORK_BASE))
        } else if (SFLASH_BASE..SFLASH_BASE + SFLASH_SIZE).contains(&addr) {
            Ok(Location::SFlash(addr - SFLASH_BASE))
        } else {
            self.translate_code(addr).map(Location::Code)
        }
    }

    /// Reads memory as a CPU would: code flash through the current mapping (erased reads 0xFF),
    /// work flash (erased words fault unless WORK_ERR_SILENT), SFlash. The range must stay
    /// within one memory (and one mapped area of code flash).
    pub fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), Error> {
        self.ensure_powered()?;
        match self.locate(addr)? {
            Location::Code(_) => self.read_code(addr, buf),
            Location::Work(_) => self.read_work(addr, buf),
            Location::SFlash(off) => {
                Self::sflash_offset(addr, buf.len())?;
                self.sflash.read(off, buf);
                Ok(())
            }
        }
    }

    /// Reads a little-endian 32-bit word.
    pub fn read_u32(&self, addr: u32) -> Result<u32, Error> {
        let mut b = [0; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Erases the code- or work-flash sector that starts at `addr`: one operation. `addr` must
    /// be the sector's first byte ([`Error::NotSectorStart`] otherwise); SFlash is written by
    /// row instead ([`Device::sflash_write_row`]).
    pub fn erase_sector(&mut self, addr: u32) -> Result<(), Error> {
        self.ensure_powered()?;
        match self.locate(addr)? {
            Location::Code(_) => self.erase_code_sector(addr),
            Location::Work(_) => self.erase_work_sector(addr),
            Location::SFlash(_) => Err(Error::WrongMemory { addr }),
        }
    }

    /// Per-sector wear of every array: code flash (SBM addresses), work flash, SFlash rows.
    pub fn sectors(&self) -> Vec<SectorInfo> {
        let mut out = Vec::new();
        for (region, arr, base) in [
            (Region::Code, &self.code, CODE_BASE),
            (Region::Work, &self.work, WORK_BASE),
            (Region::SFlash, &self.sflash, SFLASH_BASE),
        ] {
            for (i, s) in arr.sectors().iter().enumerate() {
                if let Some(r) = arr.sector_by_index(i) {
                    out.push(SectorInfo {
                        region,
                        addr: base + r.start,
                        size: r.size,
                        erase_count: s.erase_count,
                        erased: s.data.is_none(),
                    });
                }
            }
        }
        out
    }

    /// Erase count of the sector containing `addr` (code flash through the current mapping).
    pub fn erase_count(&self, addr: u32) -> Result<u32, Error> {
        let (arr, off) = match self.locate(addr)? {
            Location::Code(l) => (&self.code, l.phys),
            Location::Work(o) => (&self.work, o),
            Location::SFlash(o) => (&self.sflash, o),
        };
        let s = arr.sector_at(off).ok_or(AddressError::NoMemory { addr })?;
        Ok(arr.sectors()[s.index].erase_count)
    }

    /// Whether the stage is one in which SFlash is protected (convenience for callers).
    pub fn is_secure(&self) -> bool {
        self.lifecycle() == LifeCycle::Secure || self.lifecycle() == LifeCycle::SecureWithDebug
    }
}
