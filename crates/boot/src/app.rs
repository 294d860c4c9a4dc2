//! What the CM7 application (the OTA agent) asks of the boot chain.
//!
//! * [`lock_for_update`]: before the agent's first erase or write of the inactive bank, append
//!   LOCKED: whatever the download leaves there (a torn, refused or unsigned image) never boots
//!   through USER1 or a fallback.
//! * [`request_activation`]: after the agent wrote and verified the inactive bank, append TRIAL
//!   (which unlocks it). Instant: no copy, the bank is switched by the mapping at the next boot.
//!   Takes a [`BankVerified`]: the proof, which only `ferrota_image::verify::verify_written_bank`
//!   makes, that the OTA signature and the boot signature of the written bank were checked.
//! * [`confirm`]: the new image passed its self-test: CONFIRMED, raising the floor to its
//!   security counter. Returns the new floor so the caller can also raise the eFuse counter.
//!   Takes the [`VerifiedBoot`] of the running bank, whose version record gives the counter.
//! * [`reject`]: the self-test failed: REVERTED, locking the rejected bank, so the very next boot
//!   runs the previous bank (the seed kept running the rejected image, weakness #2) and no later
//!   boot, USER1 or fallback included, runs the rejected one.
//! * [`image_state`]: the AWS OTA PAL image state; [`report`]: what the last recorded boot event
//!   was, so the agent can report FAILED with a reason after a fallback or revert.
//!
//! `running` is the bank the app runs from: [`Bank::from_main_map`] of FLASH_CTL.MAIN_MAP.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use ferrota_image::{BankVerified, VerifiedBoot};

use crate::Bank;
use crate::log::{BootState, Event, LogError, MarkerLog, RevertReason, Trial};

/// Why an app request was refused. Nothing is written then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppError<E> {
    /// The log failed.
    Log(LogError<E>),
    /// The running image is itself under trial: confirm or reject it before activating another.
    RunningUnconfirmed,
    /// A trial budget of 0 would never boot the image.
    ZeroBudget,
    /// Confirm or reject from a bank that is not under trial while a trial of the other bank is
    /// pending (the DBM would have booted the trial bank: the app runs without the DBM).
    TrialPendingElsewhere {
        /// The trial bank.
        trial: Bank,
    },
    /// Confirm from a bank that the log does not consider current (the app runs without the DBM).
    NotCurrent {
        /// The log's current bank.
        current: Bank,
    },
    /// Reject without a trial of the running bank.
    NoTrial,
}

impl<E> From<LogError<E>> for AppError<E> {
    fn from(e: LogError<E>) -> Self {
        AppError::Log(e)
    }
}

/// The AWS OTA PAL image state (`OtaPalImageState_t`) of the running image.
///
/// As in AWS's PALs (`spec/aws-iot-ota.md` §4.5: "platform in self-test" ⇔ PendingCommit; the
/// ESP-IDF and MCUboot PALs answer for the image that runs), the state is about the *running*
/// image, not about the last update: an image the DBM boots outside a trial was confirmed, ran
/// all along, or was chosen by a fallback or USER1 over a refused bank, and is `Valid`. Whether
/// the last update took is in [`Report::last_event`] (REVERTED, FELL_BACK, …), which the agent
/// reports to the server; the rejected image itself is locked ([`crate::log`], "Bank locks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageState {
    /// Running a trial that is not confirmed yet: the self-test must decide.
    PendingCommit,
    /// The running image may keep running: confirmed, the image the device has been running all
    /// along, or the one a revert, fallback or USER1 override returned to.
    Valid,
    /// The running image was rejected (or its bank locked) while it still runs: between
    /// [`reject`] and the reset that leaves it.
    Invalid,
}

/// What the app learns at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The bank running.
    pub running: Bank,
    /// The PAL image state.
    pub image_state: ImageState,
    /// The last recorded event (a fallback, revert or USER1 override shows here).
    pub last_event: Event,
    /// The trial in progress, if any.
    pub trial: Option<Trial>,
    /// The log's anti-rollback floor.
    pub floor: u32,
}

/// Appends LOCKED for the inactive bank before the agent erases or writes it (writes nothing if
/// it is locked already, e.g. when a download resumes). Refused while the running image is
/// itself under trial: the inactive bank is then the one to revert to. A pending trial of the
/// inactive bank (the app runs without the DBM having booted it) is cancelled: its image is
/// about to be overwritten.
pub fn lock_for_update<F: NorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
) -> Result<BootState, AppError<F::Error>> {
    let s = log.state()?;
    if matches!(s.trial, Some(t) if t.bank == running) {
        return Err(AppError::RunningUnconfirmed);
    }
    let target = running.other();
    if s.is_locked(target) && s.trial.is_none() {
        return Ok(s);
    }
    let new = BootState {
        current: Some(s.current.unwrap_or(running)),
        trial: None,
        event: Event::Locked { bank: target },
        ..s.locking(target)
    };
    log.append(&new)?;
    Ok(new)
}

/// Appends TRIAL for the inactive bank with a boot budget ([`crate::log::DEFAULT_BUDGET`] is
/// what the agent normally passes). The running bank becomes the one to return to.
///
/// `_verified` is the proof that the inactive bank (`running.other()`) was checked as it lies in
/// flash; it is required, not read: the type is the point, no caller can activate a bank it did
/// not verify. (Which bank it covers is the caller's view of the inactive bank: the proof does
/// not name banks, `ferrota-image` knows none.)
pub fn request_activation<F: NorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
    _verified: &BankVerified,
    budget: u8,
) -> Result<BootState, AppError<F::Error>> {
    if budget == 0 {
        return Err(AppError::ZeroBudget);
    }
    let s = log.state()?;
    if matches!(s.trial, Some(t) if t.bank == running) {
        return Err(AppError::RunningUnconfirmed);
    }
    let target = running.other();
    let new = BootState {
        current: Some(running),
        trial: Some(Trial {
            bank: target,
            budget,
            used: 0,
        }),
        event: Event::Trial { bank: target },
        ..s.with_bad_mark(target, None)
    };
    log.append(&new)?;
    Ok(new)
}

/// Confirms the running image: CONFIRMED, floor raised to the security counter of `boot`'s
/// version record. `boot` is the proof that the running bank's CM0+ region was verified (the
/// DBM's, or the app's own check of the bank it runs from), so the floor can only be raised to a
/// counter read from signed bytes. Returns the new floor. Confirming an image that is already
/// current with the floor already there writes nothing.
pub fn confirm<F: NorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
    boot: &VerifiedBoot,
) -> Result<u32, AppError<F::Error>> {
    let counter = boot.security_counter();
    let s = log.state()?;
    match (s.trial, s.current) {
        (Some(t), _) if t.bank != running => {
            return Err(AppError::TrialPendingElsewhere { trial: t.bank });
        }
        (None, Some(current)) if current != running => {
            return Err(AppError::NotCurrent { current });
        }
        _ => {}
    }
    let floor = s.floor.max(counter);
    let new = BootState {
        current: Some(running),
        trial: None,
        floor,
        event: Event::Confirmed { bank: running },
        ..s
    };
    let unchanged = s.trial.is_none() && s.current == Some(running) && s.floor == floor;
    if !unchanged {
        log.append(&new)?;
    }
    Ok(floor)
}

/// Rejects the running trial image: REVERTED and its bank locked in one record, so the previous
/// bank boots next and the rejected image never again (until a new activation).
pub fn reject<F: NorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
) -> Result<BootState, AppError<F::Error>> {
    let s = log.state()?;
    let t = match s.trial {
        Some(t) if t.bank == running => t,
        Some(t) => return Err(AppError::TrialPendingElsewhere { trial: t.bank }),
        None => return Err(AppError::NoTrial),
    };
    let new = BootState {
        current: Some(s.current.unwrap_or(t.bank.other())),
        trial: None,
        event: Event::Reverted {
            bank: running,
            reason: RevertReason::Rejected,
        },
        ..s.locking(running)
    };
    log.append(&new)?;
    Ok(new)
}

/// The PAL image state of the running image, from a log state.
/// See [`ImageState`]: PendingCommit under trial, Invalid once its bank is locked, else Valid.
pub fn image_state_of(s: &BootState, running: Bank) -> ImageState {
    match s.trial {
        Some(t) if t.bank == running => ImageState::PendingCommit,
        _ if s.is_locked(running) => ImageState::Invalid,
        _ => ImageState::Valid,
    }
}

/// The PAL image state of the running image.
pub fn image_state<F: ReadNorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
) -> Result<ImageState, LogError<F::Error>> {
    Ok(image_state_of(&log.state()?, running))
}

/// What the app learns at startup: image state, last event, trial, floor.
pub fn report<F: ReadNorFlash>(
    log: &mut MarkerLog<F>,
    running: Bank,
) -> Result<Report, LogError<F::Error>> {
    let s = log.state()?;
    Ok(Report {
        running,
        image_state: image_state_of(&s, running),
        last_event: s.event,
        trial: s.trial,
        floor: s.floor,
    })
}
