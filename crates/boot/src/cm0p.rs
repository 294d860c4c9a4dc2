//! The CM0+ stage: what runs from the mapped bank before any CM7 core starts.
//!
//! The seed's CM0+ app verifies only CM7_0 and halts (`CY_ASSERT(0)`) when it fails, with no
//! fallback; CM7_1 is neither signed nor checked (spec §3, weakness #3). Here both CM7 regions
//! are verified in the active bank (dual-bank mode, offsets from the bank start). On failure the
//! stage records it in the marker log and asks for a reset:
//!
//! * the bank is under trial: REVERTED(CM7 invalid), locking the bank — the next boot runs the
//!   previous bank;
//! * otherwise: MARKED_BAD — the DBM skips this image and falls back to the other bank.
//!
//! Either way the image gets a bad mark (its CM0+ fingerprint, [`crate::dbm::fingerprint`]), so
//! a later USER1 boot or fallback does not pick it again. On success the stage says which cores
//! to start: CM7_0 always, CM7_1 only if the version record's `FLAG_CM7_1_APP` is set.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ferrota_image::verify::verify_region_in_flash;
use ferrota_image::version::FLAG_CM7_1_APP;
use ferrota_image::{BootVerifier, Region, VerifiedBoot, VerifiedRegion};

use crate::Bank;
use crate::dbm::fingerprint;
use crate::log::{BootState, Event, LogError, MarkerLog, RevertReason};

/// Both CM7 regions verified: start the cores.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Start {
    /// The verified CM7_0 region (entry: vector table at bank offset 0x10100).
    pub cm7_0: VerifiedRegion,
    /// The verified CM7_1 region.
    pub cm7_1: VerifiedRegion,
    /// Whether CM7_1 holds an application to start (`FLAG_CM7_1_APP`).
    pub start_cm7_1: bool,
}

/// A CM7 region failed verification; [`Cm7Failure::record`] it and reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the failure must be recorded so the DBM falls back"]
pub struct Cm7Failure {
    /// The refused region.
    pub region: Region,
    /// Why.
    pub error: ferrota_image::Error,
    fingerprint: u32,
}

/// The failure was recorded: reset the chip so the DBM chooses again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Reset {
    /// The bank that was refused.
    pub bank: Bank,
    /// The refused region.
    pub region: Region,
    /// Why.
    pub error: ferrota_image::Error,
    /// The log state written.
    pub state: BootState,
}

/// What the CM0+ stage does.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Start CM7_0 (and CM7_1).
    Start(Start),
    /// Reset: the failure is recorded.
    Reset(Reset),
}

/// Verifies CM7_0 and CM7_1 in the active bank (`active`: the bank at 0x10000000, offset 0 =
/// bank start). `boot` is the DBM's proof for this bank.
pub fn verify_cores<A: ReadNorFlash, K: BootVerifier>(
    active: &mut A,
    key: &K,
    boot: &VerifiedBoot,
    scratch: &mut [u8],
) -> Result<Start, Cm7Failure> {
    let fail = |region, error| Cm7Failure {
        region,
        error,
        fingerprint: fingerprint(boot),
    };
    let cm7_0 = verify_region_in_flash(active, 0, Region::Cm7_0, key, scratch)
        .map_err(|e| fail(Region::Cm7_0, e))?;
    let cm7_1 = verify_region_in_flash(active, 0, Region::Cm7_1, key, scratch)
        .map_err(|e| fail(Region::Cm7_1, e))?;
    Ok(Start {
        cm7_0,
        cm7_1,
        start_cm7_1: boot.record().flags & FLAG_CM7_1_APP != 0,
    })
}

impl Cm7Failure {
    /// Records the failure of the bank this stage runs from (`running`: from FLASH_CTL.MAIN_MAP).
    pub fn record<F: NorFlash>(
        self,
        log: &mut MarkerLog<F>,
        running: Bank,
    ) -> Result<Reset, LogError<F::Error>> {
        let fault = crate::log::Fault::from(&self.error);
        let (state, _) = log.update(|s| {
            let marked = s.with_bad_mark(running, Some(self.fingerprint));
            match s.trial {
                Some(t) if t.bank == running => BootState {
                    current: Some(s.current.unwrap_or(running.other())),
                    trial: None,
                    event: Event::Reverted {
                        bank: running,
                        reason: RevertReason::Cm7Invalid(fault),
                    },
                    ..marked.locking(running)
                },
                _ => BootState {
                    event: Event::MarkedBad {
                        bank: running,
                        fault,
                    },
                    ..marked
                },
            }
        })?;
        Ok(Reset {
            bank: running,
            region: self.region,
            error: self.error,
            state,
        })
    }
}

/// The whole stage, for a caller that can hold the active bank and the log at once.
pub fn run<A: ReadNorFlash, F: NorFlash, K: BootVerifier>(
    active: &mut A,
    log: &mut MarkerLog<F>,
    key: &K,
    boot: &VerifiedBoot,
    running: Bank,
    scratch: &mut [u8],
) -> Result<Outcome, LogError<F::Error>> {
    match verify_cores(active, key, boot, scratch) {
        Ok(start) => Ok(Outcome::Start(start)),
        Err(failure) => failure.record(log, running).map(Outcome::Reset),
    }
}
