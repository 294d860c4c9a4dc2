//! The marker log: the boot state in work flash, power-cut safe.
//!
//! The seed kept one word at 0x14012000 and rewrote it by *erase, then program* (spec §4.2): a
//! power cut between the two left an erased marker, which the DBM reads as "lower bank", whatever
//! had been chosen (weakness #1). Ferrota appends records instead, and never erases the sector
//! that holds the newest valid record.
//!
//! # Layout
//!
//! Two 2 KB work-flash sectors from 0x14012000 (sector 0 at 0x14012000, sector 1 at 0x14012800;
//! the caller passes the 4 KB range as one [`NorFlash`]). Each sector holds 51 slots of 40 bytes
//! (the last 8 bytes of a sector are unused). Every record is a **full snapshot** of the
//! [`BootState`] plus the event that produced it, so reading the log means: the valid record with
//! the highest sequence number in either sector.
//!
//! Record (little-endian; 10 words of 32 bits, programmed word by word in address order):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4 | sequence number (1, 2, …; one more than the newest record when written) |
//! | 4  | 1 | format, 1 |
//! | 5  | 1 | event kind: 1 TRIAL, 2 BOOTED, 3 CONFIRMED, 4 REVERTED, 5 FELL_BACK, 6 USER1, 7 MARKED_BAD, 8 LOCKED (0: none) |
//! | 6  | 1 | current bank: 0 none, 1 lower, 2 upper |
//! | 7  | 1 | trial bank: 0 no trial, 1 lower, 2 upper |
//! | 8  | 1 | trial budget (boot attempts allowed), 0 without a trial |
//! | 9  | 1 | trial attempts used, ≤ budget |
//! | 10 | 1 | the event's bank (0 for none) |
//! | 11 | 1 | event detail: BOOTED: attempt number; REVERTED: 1 budget exhausted, 2 rejected by the app, 3 trial bank invalid, 4 CM7 region invalid; USER1: bit 0 = a trial was cancelled |
//! | 12 | 4 | anti-rollback floor (security counter) |
//! | 16 | 1 | fault class: 0 none, 1 image refused, 2 below floor, 3 wrong hardware, 4 marked bad, 5 bank locked |
//! | 17 | 1 | fault region: 0 none/whole bank, 1 CM0+, 2 CM7_0, 3 CM7_1 |
//! | 18 | 1 | image fault kind ([`ImageFault`] code), 0 unless class 1 |
//! | 19 | 1 | bad marks present: bit 0 lower, bit 1 upper |
//! | 20 | 4 | fault value: bank offset (class 1), the image's security counter (class 2), else 0 |
//! | 24 | 4 | bad mark of the lower bank: first 4 bytes of the refused image's CM0+ digest, or [`LOCK_MARK`] (bank locked), else 0 |
//! | 28 | 4 | bad mark of the upper bank, likewise |
//! | 32 | 4 | CRC-32 (IEEE) of bytes 0..32 |
//! | 36 | 4 | commit word [`COMMIT`], written **last**, in a separate program operation |
//!
//! Every field has exactly one encoding (unused fields are zero), so decoding is strict: a record
//! whose CRC matches but whose fields do not decode is treated like a torn one.
//!
//! # Write rules, and why any prefix reads back as the old or the new state
//!
//! * **Append**: the new record goes into the first slot after the last slot that is not blank
//!   (all 0xFF) in the sector holding the newest record. Bytes 0..36 are programmed first, the
//!   commit word after them. Until the commit word is complete the record is ignored, so a cut
//!   before or during any of its 10 word programs leaves the previous newest record in charge.
//!   A slot that fails to program (a torn earlier attempt left words written that read 0xFF, which
//!   ECC flash refuses to program again) is skipped.
//! * **Compaction**: when the current sector has no usable slot, the *other* sector is erased
//!   and the record is written into its slot 0. The other sector only holds older records, so a
//!   cut during the erase (which leaves it neither erased nor intact) or during the program still
//!   reads the newest record of the full sector. Compaction always erases first, because a torn
//!   erase can leave words that read 0xFF but cannot be programmed.
//! * **Read**: the newest record that has the commit word, a matching CRC and valid fields;
//!   blank and torn slots are skipped. Reads see erased words, so FLASH_CTL.WORK_ERR_SILENT must
//!   be set (the DBM sets it as the seed does; erased words then read 0xFF).
//! * The seed's marker (0xAAAAAAAA in the first word of sector 0, i.e. "boot the upper bank") is
//!   honoured while no record exists, so a device updated from the seed keeps its choice.
//!
//! # Bank locks: a rejected or unverified image never boots again
//!
//! A bank's lock means "this bank holds no image that may boot until the agent activates a new,
//! fully verified image in it" ([`BootState::is_locked`]). It is stored as the bank's bad mark
//! with the reserved value [`LOCK_MARK`] (no new record field, so the DBM stays within its 16 KB
//! on the CM0+; a fingerprint mark and a lock never need to coexist, and TRIAL clears both). It
//! is set in the same record as the event it belongs to (so a power cut leaves either the old
//! state or the locked one):
//!
//! * LOCKED — by the agent ([`crate::app::lock_for_update`]) *before* its first erase or write
//!   of the inactive bank. A download that is then refused (wrong OTA signature, hash, version
//!   not newer, below the floor) or never finished leaves the bank locked, so a half-written or
//!   refused image cannot boot through USER1 or a fallback, and a cut anywhere in the download
//!   finds the lock already in place;
//! * REVERTED — by the app's [`crate::app::reject`] (failed self-test), by the DBM when a trial's
//!   boot budget is used up or its bank is refused, and by the CM0+ stage when a trial bank's CM7
//!   regions fail.
//!
//! Only TRIAL ([`crate::app::request_activation`], called after the agent verified the new
//! image's hash, OTA signature, boot signature and version) clears it. The DBM refuses a locked
//! bank on every path (rule 1 USER1, rule 3 trial, rule 4 current and fallback) with
//! [`Fault::Locked`]; with both banks refused it halts rather than boot a rejected image.
//!
//! A lock is per bank, not per image (unlike the CM0+ stage's bad marks, which name the image
//! by its CM0+ fingerprint): the agent locks before the bank holds the new image, when no
//! fingerprint exists yet, and a rejected image must stay refused even if it is the only one.
//! An image programmed into a locked bank by a debugger stays refused until it is activated
//! (or the marker log is erased with the rest of work flash, as initial programming does).
//!
//! The running image's AWS PAL state follows from this (`spec/aws-iot-ota.md` §4.5; see
//! [`crate::app::ImageState`]): PendingCommit while its bank is under trial, Invalid once its
//! bank is locked (between a rejection and the reset), Valid otherwise — the good image that
//! keeps running after a revert is Valid, and the failed update shows in the last event.
//!
//! Ferrota's writers only append when the state changes ([`MarkerLog::update`]), so a device that
//! boots normally writes nothing: 51 state changes per erase of 2 KB.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ferrota_image::{ErrorKind, Region};

use crate::Bank;
use crate::crc::crc32;

/// Address of the log on the CYT4BF (work flash large sector #36 and #37).
pub const LOG_ADDRESS: u32 = 0x1401_2000;
/// Size of one log sector (a work-flash large sector).
pub const SECTOR_SIZE: u32 = 0x800;
/// Size of the whole log: two sectors.
pub const LOG_SIZE: u32 = 2 * SECTOR_SIZE;
/// Size of one record.
pub const RECORD_SIZE: usize = 40;
/// Record slots per sector.
pub const SLOTS_PER_SECTOR: usize = SECTOR_SIZE as usize / RECORD_SIZE;
/// The commit word, programmed after the rest of the record.
pub const COMMIT: u32 = 0x5A3C_C0DE;
/// The record format this code writes and reads.
pub const FORMAT: u8 = 1;
/// Boot attempts a trial gets unless the agent asks otherwise.
pub const DEFAULT_BUDGET: u8 = 3;
/// The bad-mark value that locks a bank whatever image it holds (see "Bank locks" above). A
/// CM0+ fingerprint with this value (a 2⁻³² chance) would only make its mark stricter: the bank
/// stays refused until the next activation clears the mark anyway.
pub const LOCK_MARK: u32 = 0xFFFF_FFFF;
/// The seed's "boot the upper bank" marker value (spec §2 step 6).
pub const SEED_MARKER_UPPER: u32 = 0xAAAA_AAAA;

const BODY: usize = RECORD_SIZE - 8;

/// A pending trial of a freshly activated bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trial {
    /// The bank under trial.
    pub bank: Bank,
    /// Boot attempts allowed before the DBM reverts.
    pub budget: u8,
    /// Boot attempts the DBM has started.
    pub used: u8,
}

/// The boot state: what the newest log record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BootState {
    /// The bank that runs when no trial is pending: the last confirmed bank, or the one a
    /// fallback or USER1 made current. `None` before anything was recorded (the DBM then prefers
    /// the lower bank, as the seed does for any marker but 0xAAAAAAAA).
    pub current: Option<Bank>,
    /// A trial in progress.
    pub trial: Option<Trial>,
    /// The anti-rollback floor recorded by confirmations (the DBM also takes the eFuse counter).
    pub floor: u32,
    /// Per bank (index: lower, upper), the fingerprint (first four bytes of the CM0+ digest) of
    /// an image whose CM7 regions the CM0+ stage refused. The DBM skips that image; a new image
    /// in the bank has another fingerprint, so a mark never outlives the image it is about.
    pub bad: [Option<u32>; 2],
    /// What produced this state.
    pub event: Event,
}

impl BootState {
    /// The state of a log with no record.
    pub const EMPTY: BootState = BootState {
        current: None,
        trial: None,
        floor: 0,
        bad: [None, None],
        event: Event::None,
    };

    /// The bank the DBM tries first when no trial is pending.
    pub fn preferred(&self) -> Bank {
        self.current.unwrap_or(Bank::Lower)
    }

    /// The bad mark of a bank, if any.
    pub fn bad_mark(&self, bank: Bank) -> Option<u32> {
        self.bad[bank.index()]
    }

    /// Whether a bank is locked: its image was rejected, refused or is being written, and the
    /// DBM boots nothing from it until a new activation (see "Bank locks" in the module docs).
    pub fn is_locked(&self, bank: Bank) -> bool {
        self.bad[bank.index()] == Some(LOCK_MARK)
    }

    /// This state with a bank locked (its bad mark set to [`LOCK_MARK`]).
    #[must_use]
    pub fn locking(self, bank: Bank) -> Self {
        self.with_bad_mark(bank, Some(LOCK_MARK))
    }

    /// This state with a bank's bad mark replaced.
    #[must_use]
    pub fn with_bad_mark(mut self, bank: Bank, mark: Option<u32>) -> Self {
        self.bad[bank.index()] = mark;
        self
    }
}

impl Default for BootState {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The event a record carries: what happened when the state was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// No record yet (or the seed's marker).
    None,
    /// TRIAL: the agent activated `bank` (written by [`crate::app::request_activation`]).
    Trial {
        /// The bank activated.
        bank: Bank,
    },
    /// BOOTED: the DBM started trial attempt `attempt` of `bank` (written before the jump).
    Booted {
        /// The trial bank.
        bank: Bank,
        /// 1 for the first attempt.
        attempt: u8,
    },
    /// CONFIRMED: the app confirmed `bank`; the floor may have been raised.
    Confirmed {
        /// The confirmed bank.
        bank: Bank,
    },
    /// REVERTED: the trial of `bank` ended without confirmation.
    Reverted {
        /// The bank whose trial ended.
        bank: Bank,
        /// Why.
        reason: RevertReason,
    },
    /// FELL_BACK: the preferred bank `from` was refused; the other one became current.
    FellBack {
        /// The refused bank.
        from: Bank,
        /// Why it was refused.
        fault: Fault,
    },
    /// USER1: the button was held; `booted` became current.
    User1 {
        /// The bank booted (lower unless it was refused).
        booted: Bank,
        /// Why the lower bank was refused, if it was.
        lower_fault: Option<Fault>,
        /// Whether a pending trial was cancelled by the override.
        cancelled_trial: bool,
    },
    /// MARKED_BAD: the CM0+ stage refused a CM7 region of `bank` (outside a trial).
    MarkedBad {
        /// The bank.
        bank: Bank,
        /// The region fault.
        fault: Fault,
    },
    /// LOCKED: the agent is about to erase and write `bank` (the inactive one); nothing boots
    /// from it until the new image is activated.
    Locked {
        /// The bank.
        bank: Bank,
    },
}

/// Why a trial ended without confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevertReason {
    /// The boot budget was used up: the image never confirmed (it crashes, or never reaches
    /// the network).
    BudgetExhausted,
    /// The app rejected the image (failed self-test).
    Rejected,
    /// The DBM refused the trial bank.
    TrialInvalid(Fault),
    /// The CM0+ stage refused a CM7 region of the trial bank.
    Cm7Invalid(Fault),
}

/// Why a bank was refused, in the compact form the log stores (the DBM's
/// [`crate::dbm::BankFault`] has the full detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The image failed verification.
    Image {
        /// The region at fault (`None`: the bank as a whole).
        region: Option<Region>,
        /// Bank offset of the fault.
        offset: u32,
        /// What failed.
        kind: ImageFault,
    },
    /// The image's security counter is below the anti-rollback floor.
    BelowFloor {
        /// The image's counter.
        counter: u32,
    },
    /// The image is for another board.
    WrongHardware,
    /// The image carries a bad mark from the CM0+ stage.
    MarkedBad,
    /// The bank is locked: its image was rejected or refused, or is being written.
    Locked,
}

/// The class of an image refusal ([`ferrota_image::ErrorKind`] without its data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ImageFault {
    Truncated = 1,
    TooLong,
    ObjSize,
    WrongCore,
    WrongVectorOffset,
    WrongCoreCount,
    Unsigned,
    MalformedSignature,
    SignatureMismatch,
    UnsupportedScheme,
    VersionRecord,
    Flash,
    Other,
}

impl ImageFault {
    const ALL: [ImageFault; 13] = [
        ImageFault::Truncated,
        ImageFault::TooLong,
        ImageFault::ObjSize,
        ImageFault::WrongCore,
        ImageFault::WrongVectorOffset,
        ImageFault::WrongCoreCount,
        ImageFault::Unsigned,
        ImageFault::MalformedSignature,
        ImageFault::SignatureMismatch,
        ImageFault::UnsupportedScheme,
        ImageFault::VersionRecord,
        ImageFault::Flash,
        ImageFault::Other,
    ];

    fn from_code(c: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u8 == c)
    }

    /// The class of an image crate error kind.
    pub fn of(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::Truncated { .. } => ImageFault::Truncated,
            ErrorKind::TooLong { .. } => ImageFault::TooLong,
            ErrorKind::ObjSizeOutsideRegion { .. } | ErrorKind::ObjSizeTooSmall { .. } => {
                ImageFault::ObjSize
            }
            ErrorKind::WrongCore { .. } => ImageFault::WrongCore,
            ErrorKind::WrongVectorOffset { .. } => ImageFault::WrongVectorOffset,
            ErrorKind::WrongCoreCount { .. } => ImageFault::WrongCoreCount,
            ErrorKind::Unsigned => ImageFault::Unsigned,
            ErrorKind::MalformedSignature => ImageFault::MalformedSignature,
            ErrorKind::SignatureMismatch => ImageFault::SignatureMismatch,
            ErrorKind::UnsupportedScheme => ImageFault::UnsupportedScheme,
            ErrorKind::VersionMissing { .. }
            | ErrorKind::VersionFormat { .. }
            | ErrorKind::VersionLength { .. }
            | ErrorKind::VersionFlags { .. }
            | ErrorKind::HardwareId
            | ErrorKind::ReservedNotZero => ImageFault::VersionRecord,
            ErrorKind::Flash(_) => ImageFault::Flash,
            _ => ImageFault::Other,
        }
    }
}

impl From<&ferrota_image::Error> for Fault {
    fn from(e: &ferrota_image::Error) -> Self {
        Fault::Image {
            region: e.region,
            offset: e.offset,
            kind: ImageFault::of(&e.kind),
        }
    }
}

/// A log failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogError<E> {
    /// The flash failed (on the model: also a power cut).
    Flash(E),
    /// The flash passed in is smaller than the two sectors.
    TooSmall {
        /// Its capacity.
        capacity: usize,
    },
    /// The sequence number reached its maximum (more than 4·10⁹ records: the work flash is
    /// worn out long before).
    SequenceExhausted,
}

impl<E> From<E> for LogError<E> {
    fn from(e: E) -> Self {
        LogError::Flash(e)
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for LogError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LogError::Flash(e) => write!(f, "marker log flash error: {e:?}"),
            LogError::TooSmall { capacity } => write!(
                f,
                "marker log needs {LOG_SIZE:#x} bytes of work flash, got {capacity:#x}"
            ),
            LogError::SequenceExhausted => f.write_str("marker log sequence number exhausted"),
        }
    }
}

/// Where a record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Sector, 0 or 1.
    pub sector: usize,
    /// Slot in the sector.
    pub slot: usize,
}

impl Location {
    fn offset(self) -> u32 {
        self.sector as u32 * SECTOR_SIZE + (self.slot * RECORD_SIZE) as u32
    }
}

/// The log's newest state and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The state.
    pub state: BootState,
    /// Its sequence number (0: no record).
    pub seq: u32,
    /// Where its record lies (`None`: no record).
    pub at: Option<Location>,
}

/// What a scan of both sectors found.
#[derive(Debug, Clone, Copy)]
struct Scan {
    newest: Snapshot,
    /// Per sector, the last slot that is not blank.
    last_used: [Option<usize>; 2],
}

/// The marker log over a 4 KB work-flash range (see the module docs).
#[derive(Debug)]
pub struct MarkerLog<F> {
    flash: F,
}

impl<F: ReadNorFlash> MarkerLog<F> {
    /// The log in `flash`, which must hold the two sectors from its offset 0 (on the CYT4BF:
    /// `work_flash_range(LOG_ADDRESS, LOG_SIZE)`).
    pub fn new(flash: F) -> Result<Self, LogError<F::Error>> {
        const {
            assert!(4 % F::READ_SIZE == 0, "records are read at 4-byte offsets");
        }
        if flash.capacity() < LOG_SIZE as usize {
            return Err(LogError::TooSmall {
                capacity: flash.capacity(),
            });
        }
        Ok(MarkerLog { flash })
    }

    /// The flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The newest state (with FLASH_CTL.WORK_ERR_SILENT set on the chip).
    pub fn read(&mut self) -> Result<Snapshot, LogError<F::Error>> {
        Ok(self.scan()?.newest)
    }

    /// The newest state only.
    pub fn state(&mut self) -> Result<BootState, LogError<F::Error>> {
        Ok(self.read()?.state)
    }

    /// Visits every valid record, oldest sector order (for a `show` command or a test).
    pub fn for_each_record(
        &mut self,
        mut f: impl FnMut(Location, u32, &BootState),
    ) -> Result<(), LogError<F::Error>> {
        for sector in 0..2 {
            for slot in 0..SLOTS_PER_SECTOR {
                let at = Location { sector, slot };
                let mut raw = [0u8; RECORD_SIZE];
                self.flash.read(at.offset(), &mut raw)?;
                if let Some((seq, state)) = decode(&raw) {
                    f(at, seq, &state);
                }
            }
        }
        Ok(())
    }

    fn scan(&mut self) -> Result<Scan, LogError<F::Error>> {
        let mut newest = Snapshot {
            state: BootState::EMPTY,
            seq: 0,
            at: None,
        };
        let mut last_used = [None; 2];
        let mut seed_marker = false;
        for (sector, last) in last_used.iter_mut().enumerate() {
            for slot in 0..SLOTS_PER_SECTOR {
                let at = Location { sector, slot };
                let mut raw = [0u8; RECORD_SIZE];
                self.flash.read(at.offset(), &mut raw)?;
                if raw.iter().all(|&b| b == 0xFF) {
                    continue;
                }
                *last = Some(slot);
                if at.offset() == 0 {
                    seed_marker = raw[..4] == SEED_MARKER_UPPER.to_le_bytes()
                        && raw[4..16].iter().all(|&b| b == 0xFF);
                }
                if let Some((seq, state)) = decode(&raw)
                    && seq > newest.seq
                {
                    newest = Snapshot {
                        state,
                        seq,
                        at: Some(at),
                    };
                }
            }
        }
        if newest.at.is_none() && seed_marker {
            newest.state.current = Some(Bank::Upper);
        }
        Ok(Scan { newest, last_used })
    }
}

impl<F: NorFlash> MarkerLog<F> {
    /// Appends `state` as the newest record (compacting into the other sector if needed) and
    /// returns where it went. On an error the log reads back as before or as `state`.
    pub fn append(&mut self, state: &BootState) -> Result<Snapshot, LogError<F::Error>> {
        let scan = self.scan()?;
        self.append_after(&scan, state)
    }

    /// Reads the state, applies `f`, and appends the result if it differs. Returns the new
    /// state and whether a record was written.
    pub fn update(
        &mut self,
        f: impl FnOnce(&BootState) -> BootState,
    ) -> Result<(BootState, bool), LogError<F::Error>> {
        let scan = self.scan()?;
        let new = f(&scan.newest.state);
        if new == scan.newest.state {
            return Ok((new, false));
        }
        self.append_after(&scan, &new)?;
        Ok((new, true))
    }

    fn append_after(
        &mut self,
        scan: &Scan,
        state: &BootState,
    ) -> Result<Snapshot, LogError<F::Error>> {
        const {
            assert!(
                4 % F::WRITE_SIZE == 0,
                "the commit word must be programmable on its own"
            );
            assert!(
                (SECTOR_SIZE as usize).is_multiple_of(F::ERASE_SIZE),
                "a log sector must be erasable on its own"
            );
            assert!(RECORD_SIZE.is_multiple_of(4) && SLOTS_PER_SECTOR >= 2);
        }
        let seq = scan
            .newest
            .seq
            .checked_add(1)
            .filter(|&s| s != u32::MAX)
            .ok_or(LogError::SequenceExhausted)?;
        let raw = encode(seq, state);
        let sector = scan.newest.at.map_or(0, |l| l.sector);
        let first = scan.last_used[sector].map_or(0, |s| s + 1);
        let mut last_err = None;
        for slot in first..SLOTS_PER_SECTOR {
            let at = Location { sector, slot };
            match self.program(at, &raw) {
                Ok(()) => return Ok(self.written(seq, state, at)),
                Err(e) => last_err = Some(e),
            }
        }
        // Compaction: the other sector only holds older records.
        let other = 1 - sector;
        let from = other as u32 * SECTOR_SIZE;
        self.flash.erase(from, from + SECTOR_SIZE)?;
        for slot in 0..SLOTS_PER_SECTOR {
            let at = Location {
                sector: other,
                slot,
            };
            match self.program(at, &raw) {
                Ok(()) => return Ok(self.written(seq, state, at)),
                Err(e) => last_err = Some(e),
            }
        }
        // Unreachable on working flash: a freshly erased sector has free slots.
        Err(last_err.map_or(LogError::SequenceExhausted, LogError::Flash))
    }

    fn written(&self, seq: u32, state: &BootState, at: Location) -> Snapshot {
        Snapshot {
            state: *state,
            seq,
            at: Some(at),
        }
    }

    fn program(&mut self, at: Location, raw: &[u8; RECORD_SIZE]) -> Result<(), F::Error> {
        let off = at.offset();
        self.flash.write(off, &raw[..RECORD_SIZE - 4])?;
        self.flash
            .write(off + (RECORD_SIZE - 4) as u32, &raw[RECORD_SIZE - 4..])
    }
}

// ---- encoding ----

const K_TRIAL: u8 = 1;
const K_BOOTED: u8 = 2;
const K_CONFIRMED: u8 = 3;
const K_REVERTED: u8 = 4;
const K_FELL_BACK: u8 = 5;
const K_USER1: u8 = 6;
const K_MARKED_BAD: u8 = 7;
const K_LOCKED: u8 = 8;

const R_BUDGET: u8 = 1;
const R_REJECTED: u8 = 2;
const R_TRIAL_INVALID: u8 = 3;
const R_CM7_INVALID: u8 = 4;

fn region_code(r: Option<Region>) -> u8 {
    match r {
        None => 0,
        Some(Region::Cm0p) => 1,
        Some(Region::Cm7_0) => 2,
        Some(Region::Cm7_1) => 3,
    }
}

fn region_from(c: u8) -> Option<Option<Region>> {
    Some(match c {
        0 => None,
        1 => Some(Region::Cm0p),
        2 => Some(Region::Cm7_0),
        3 => Some(Region::Cm7_1),
        _ => return None,
    })
}

/// Fault → (class, region, kind, value).
fn fault_fields(f: Option<Fault>) -> (u8, u8, u8, u32) {
    match f {
        None => (0, 0, 0, 0),
        Some(Fault::Image {
            region,
            offset,
            kind,
        }) => (1, region_code(region), kind as u8, offset),
        Some(Fault::BelowFloor { counter }) => (2, 0, 0, counter),
        Some(Fault::WrongHardware) => (3, 0, 0, 0),
        Some(Fault::MarkedBad) => (4, 0, 0, 0),
        Some(Fault::Locked) => (5, 0, 0, 0),
    }
}

fn fault_from(class: u8, region: u8, kind: u8, value: u32) -> Option<Option<Fault>> {
    let plain = region == 0 && kind == 0;
    Some(Some(match class {
        0 if plain && value == 0 => return Some(None),
        1 => Fault::Image {
            region: region_from(region)?,
            offset: value,
            kind: ImageFault::from_code(kind)?,
        },
        2 if plain => Fault::BelowFloor { counter: value },
        3 if plain && value == 0 => Fault::WrongHardware,
        4 if plain && value == 0 => Fault::MarkedBad,
        5 if plain && value == 0 => Fault::Locked,
        _ => return None,
    }))
}

/// (kind, bank, detail, fault) of an event.
fn event_fields(e: &Event) -> (u8, Option<Bank>, u8, Option<Fault>) {
    match *e {
        Event::None => (0, None, 0, None),
        Event::Trial { bank } => (K_TRIAL, Some(bank), 0, None),
        Event::Booted { bank, attempt } => (K_BOOTED, Some(bank), attempt, None),
        Event::Confirmed { bank } => (K_CONFIRMED, Some(bank), 0, None),
        Event::Reverted { bank, reason } => {
            let (d, f) = match reason {
                RevertReason::BudgetExhausted => (R_BUDGET, None),
                RevertReason::Rejected => (R_REJECTED, None),
                RevertReason::TrialInvalid(f) => (R_TRIAL_INVALID, Some(f)),
                RevertReason::Cm7Invalid(f) => (R_CM7_INVALID, Some(f)),
            };
            (K_REVERTED, Some(bank), d, f)
        }
        Event::FellBack { from, fault } => (K_FELL_BACK, Some(from), 0, Some(fault)),
        Event::User1 {
            booted,
            lower_fault,
            cancelled_trial,
        } => (
            K_USER1,
            Some(booted),
            u8::from(cancelled_trial),
            lower_fault,
        ),
        Event::MarkedBad { bank, fault } => (K_MARKED_BAD, Some(bank), 0, Some(fault)),
        Event::Locked { bank } => (K_LOCKED, Some(bank), 0, None),
    }
}

fn event_from(kind: u8, bank: Option<Bank>, detail: u8, fault: Option<Fault>) -> Option<Event> {
    let e = match (kind, bank, fault) {
        (0, None, None) if detail == 0 => Event::None,
        (K_TRIAL, Some(bank), None) if detail == 0 => Event::Trial { bank },
        (K_BOOTED, Some(bank), None) if detail > 0 => Event::Booted {
            bank,
            attempt: detail,
        },
        (K_CONFIRMED, Some(bank), None) if detail == 0 => Event::Confirmed { bank },
        (K_REVERTED, Some(bank), f) => Event::Reverted {
            bank,
            reason: match (detail, f) {
                (R_BUDGET, None) => RevertReason::BudgetExhausted,
                (R_REJECTED, None) => RevertReason::Rejected,
                (R_TRIAL_INVALID, Some(f)) => RevertReason::TrialInvalid(f),
                (R_CM7_INVALID, Some(f)) => RevertReason::Cm7Invalid(f),
                _ => return None,
            },
        },
        (K_FELL_BACK, Some(from), Some(fault)) if detail == 0 => Event::FellBack { from, fault },
        (K_USER1, Some(booted), lower_fault) if detail <= 1 => Event::User1 {
            booted,
            lower_fault,
            cancelled_trial: detail == 1,
        },
        (K_MARKED_BAD, Some(bank), Some(fault)) if detail == 0 => Event::MarkedBad { bank, fault },
        (K_LOCKED, Some(bank), None) if detail == 0 => Event::Locked { bank },
        _ => return None,
    };
    Some(e)
}

fn bank_code(b: Option<Bank>) -> u8 {
    b.map_or(0, Bank::code)
}

/// The bytes of a record.
pub fn encode(seq: u32, s: &BootState) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    let (kind, ebank, detail, fault) = event_fields(&s.event);
    let (class, region, fkind, value) = fault_fields(fault);
    r[0..4].copy_from_slice(&seq.to_le_bytes());
    r[4] = FORMAT;
    r[5] = kind;
    r[6] = bank_code(s.current);
    if let Some(t) = s.trial {
        r[7] = t.bank.code();
        r[8] = t.budget;
        r[9] = t.used;
    }
    r[10] = bank_code(ebank);
    r[11] = detail;
    r[12..16].copy_from_slice(&s.floor.to_le_bytes());
    r[16] = class;
    r[17] = region;
    r[18] = fkind;
    r[19] = u8::from(s.bad[0].is_some()) | (u8::from(s.bad[1].is_some()) << 1);
    r[20..24].copy_from_slice(&value.to_le_bytes());
    r[24..28].copy_from_slice(&s.bad[0].unwrap_or(0).to_le_bytes());
    r[28..32].copy_from_slice(&s.bad[1].unwrap_or(0).to_le_bytes());
    let crc = crc32(&r[..BODY]);
    r[32..36].copy_from_slice(&crc.to_le_bytes());
    r[36..40].copy_from_slice(&COMMIT.to_le_bytes());
    r
}

/// A record's sequence number and state, if it is committed, intact and well-formed.
pub fn decode(r: &[u8; RECORD_SIZE]) -> Option<(u32, BootState)> {
    let w = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    if w(36) != COMMIT || w(32) != crc32(&r[..BODY]) || r[4] != FORMAT {
        return None;
    }
    let seq = w(0);
    if seq == 0 || seq == u32::MAX {
        return None;
    }
    let current = Bank::from_code(r[6])?;
    let trial = match Bank::from_code(r[7])? {
        None if r[8] == 0 && r[9] == 0 => None,
        Some(bank) if r[8] > 0 && r[9] <= r[8] => Some(Trial {
            bank,
            budget: r[8],
            used: r[9],
        }),
        _ => return None,
    };
    let fault = fault_from(r[16], r[17], r[18], w(20))?;
    let event = event_from(r[5], Bank::from_code(r[10])?, r[11], fault)?;
    if r[19] & !3 != 0 {
        return None;
    }
    let mut bad = [None; 2];
    for (i, b) in bad.iter_mut().enumerate() {
        let v = w(24 + 4 * i);
        if r[19] & (1 << i) != 0 {
            *b = Some(v);
        } else if v != 0 {
            return None;
        }
    }
    Some((
        seq,
        BootState {
            current,
            trial,
            floor: w(12),
            bad,
            event,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(SLOTS_PER_SECTOR, 51);
        assert_eq!(RECORD_SIZE % 4, 0);
    }

    #[test]
    fn round_trip_examples() {
        let s = BootState {
            current: Some(Bank::Upper),
            trial: Some(Trial {
                bank: Bank::Lower,
                budget: 3,
                used: 2,
            }),
            floor: 7,
            bad: [Some(0xDEAD_BEEF), Some(LOCK_MARK)],
            event: Event::User1 {
                booted: Bank::Upper,
                lower_fault: Some(Fault::Image {
                    region: Some(Region::Cm0p),
                    offset: 0xFF00,
                    kind: ImageFault::SignatureMismatch,
                }),
                cancelled_trial: true,
            },
        };
        assert_eq!(decode(&encode(9, &s)), Some((9, s)));
        assert_eq!(
            decode(&encode(1, &BootState::EMPTY)),
            Some((1, BootState::EMPTY))
        );
        let mut torn = encode(3, &s);
        torn[39] = 0xFF;
        assert_eq!(decode(&torn), None);
        let mut flipped = encode(3, &s);
        flipped[12] ^= 1;
        assert_eq!(decode(&flipped), None);
    }
}
