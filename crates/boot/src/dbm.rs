//! The Dual Bank Manager's decision: which bank to map, or halt.
//!
//! The seed's DBM (spec §2) reads one marker word, verifies the 64 KB CM0+ region of the marked
//! bank, falls back to the other bank, and halts when both fail. Ferrota keeps that shape and adds:
//!
//! * the **version record** inside the verified CM0+ bytes is checked: its security counter
//!   must be at least the **anti-rollback floor** (the larger of the log's floor and the eFuse
//!   counter), and its hardware id must match the board's when one is configured (weakness #4);
//! * **trial boots**: a TRIAL record gives a bank a boot budget (default 3). Each boot of the
//!   trial bank appends BOOTED(attempt) *before* the jump; when the budget is used up without a
//!   CONFIRMED, the DBM appends REVERTED and boots the previous bank (weakness #8);
//! * **bad marks** from the CM0+ stage make the DBM skip an image whose CM7 regions failed
//!   (weakness #3);
//! * **bank locks** (see [`crate::log`], "Bank locks") make it refuse a bank whose image was
//!   rejected or refused, or is being written, on every path below; a revert locks the trial
//!   bank in the same record, so a reverted image never boots again without a new activation;
//! * **USER1** prefers the lower bank as in the seed, falls back to the upper one, makes the
//!   booted bank current (cancelling a pending trial) and is recorded;
//! * every fallback and revert is recorded, so the app can tell what happened.
//!
//! # Rules, in order
//!
//! 1. USER1 held: try lower, then upper. Record USER1 (if the state changes).
//! 2. A trial is pending and its budget is used up: record REVERTED(budget exhausted), locking the
//!    trial bank, and boot the current bank by rule 4.
//! 3. A trial is pending: check the trial bank. Accepted: record BOOTED(used + 1) and boot it.
//!    Refused: record REVERTED(trial invalid), locking it, and boot the current bank by rule 4.
//! 4. Otherwise: check the current bank (lower on a fresh device). Accepted: boot it, writing
//!    nothing if nothing changed. Refused: check the other bank; accepted: record FELL_BACK and
//!    make it current. Both refused: halt (nothing is written).
//!
//! "Check" = bank lock, CM0+ region signature under the SFlash key, version record, bad mark, floor,
//! hardware id. The record is persisted before the [`Decision`] exists: a power cut between the
//! record and the jump only costs a counted attempt, never an uncounted one.
//!
//! The decision is split into typed stages so the log and the code flash never need to be
//! borrowed at the same time (on the model both are views of one device):
//! [`Dbm::read_log`] → [`LogRead::choose`] → [`Choice::persist`] → [`Decision`];
//! [`decide`] runs all three.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ferrota_image::verify::verify_boot_in_flash;
use ferrota_image::{BootVerifier, HardwareId, VerifiedBoot, VersionRecord};

use crate::Bank;
use crate::log::{BootState, Event, Fault, LogError, MarkerLog, RevertReason, Trial};

/// Why a bank was refused, with full detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankFault {
    /// The CM0+ region or its version record failed verification.
    Image(ferrota_image::Error),
    /// The image's security counter is below the floor (an older, possibly vulnerable release).
    BelowFloor {
        /// The image's counter.
        counter: u32,
        /// The floor in force.
        floor: u32,
    },
    /// The image names another board.
    WrongHardware {
        /// The id the image carries.
        found: HardwareId,
    },
    /// The CM0+ stage refused this image's CM7 regions earlier.
    MarkedBad,
    /// The bank is locked: its image was rejected or refused, or is being written.
    Locked,
}

impl BankFault {
    /// The compact form the log stores.
    pub fn logged(&self) -> Fault {
        match self {
            BankFault::Image(e) => Fault::from(e),
            BankFault::BelowFloor { counter, .. } => Fault::BelowFloor { counter: *counter },
            BankFault::WrongHardware { .. } => Fault::WrongHardware,
            BankFault::MarkedBad => Fault::MarkedBad,
            BankFault::Locked => Fault::Locked,
        }
    }
}

impl core::fmt::Display for BankFault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BankFault::Image(e) => e.fmt(f),
            BankFault::BelowFloor { counter, floor } => write!(
                f,
                "security counter {counter} is below the anti-rollback floor {floor}"
            ),
            BankFault::WrongHardware { found } => {
                write!(f, "image is for hardware {:?}", found.as_str())
            }
            BankFault::MarkedBad => f.write_str("the CM0+ stage refused this image's CM7 regions"),
            BankFault::Locked => f.write_str(
                "the bank is locked: its image was rejected or refused, or is being written",
            ),
        }
    }
}

/// Why a trial ended at this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertCause {
    /// Its boot budget was used up without a confirmation.
    BudgetExhausted {
        /// The budget.
        budget: u8,
    },
    /// The trial bank was refused.
    TrialInvalid(BankFault),
}

/// Why the chosen bank boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootReason {
    /// The current bank (the lower one on a fresh device), accepted.
    Current,
    /// A trial attempt of a freshly activated bank.
    Trial {
        /// 1 for the first attempt.
        attempt: u8,
        /// Attempts allowed.
        budget: u8,
    },
    /// The trial of `from` ended; the previous bank boots.
    Reverted {
        /// The trial bank.
        from: Bank,
        /// Why.
        cause: RevertCause,
    },
    /// The preferred bank `from` was refused; this one is the fallback.
    FellBack {
        /// The refused bank.
        from: Bank,
        /// Why.
        fault: BankFault,
    },
    /// USER1 was held.
    User1 {
        /// Why the lower bank was refused, if the upper one boots.
        lower_fault: Option<BankFault>,
    },
}

/// A bank the DBM accepted, ready to be mapped. Only [`Choice::persist`] makes one.
#[derive(Debug, PartialEq, Eq)]
pub struct Boot {
    /// The bank to map at 0x10000000 (MAIN_MAP = [`Bank::main_map`]).
    pub bank: Bank,
    /// Why this bank.
    pub reason: BootReason,
    /// Its version record.
    pub record: VersionRecord,
    /// The proof that its CM0+ region was verified.
    pub proof: VerifiedBoot,
    /// The floor that was enforced.
    pub floor: u32,
    /// The log state as persisted.
    pub state: BootState,
    /// Whether a record was appended.
    pub recorded: bool,
}

/// Both banks were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt {
    /// Why the lower bank was refused.
    pub lower: BankFault,
    /// Why the upper bank was refused.
    pub upper: BankFault,
}

/// What the DBM does.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Map the bank and jump.
    Boot(Boot),
    /// Stop: no bank may run (the seed's `ImageInvalid` loop).
    Halt(Halt),
}

/// The DBM's inputs other than flash: the key, USER1, the eFuse floor, the board's id.
#[derive(Debug, Clone, Copy)]
pub struct Dbm<'k, K> {
    key: &'k K,
    user1: bool,
    efuse_floor: u32,
    hardware: Option<HardwareId>,
}

impl<'k, K: BootVerifier> Dbm<'k, K> {
    /// A DBM verifying with the SFlash boot key; USER1 released, eFuse floor 0, any hardware.
    pub fn new(key: &'k K) -> Self {
        Dbm {
            key,
            user1: false,
            efuse_floor: 0,
            hardware: None,
        }
    }

    /// Whether USER1 (P5.3) reads pressed.
    #[must_use]
    pub fn user1(mut self, pressed: bool) -> Self {
        self.user1 = pressed;
        self
    }

    /// The eFuse anti-rollback counter.
    #[must_use]
    pub fn efuse_floor(mut self, counter: u32) -> Self {
        self.efuse_floor = counter;
        self
    }

    /// The board's hardware id: images naming another board are refused (an image with an empty
    /// id runs on any board).
    #[must_use]
    pub fn hardware(mut self, id: Option<HardwareId>) -> Self {
        self.hardware = id;
        self
    }

    /// Stage 1: reads the marker log.
    pub fn read_log<F: ReadNorFlash>(
        self,
        log: &mut MarkerLog<F>,
    ) -> Result<LogRead<'k, K>, LogError<F::Error>> {
        Ok(LogRead {
            dbm: self,
            state: log.state()?,
        })
    }

    /// Verifies one bank against every rule.
    fn check<B: ReadNorFlash>(
        &self,
        banks: &mut B,
        bank: Bank,
        state: &BootState,
        floor: u32,
        scratch: &mut [u8],
    ) -> Result<VerifiedBoot, BankFault> {
        if state.is_locked(bank) {
            return Err(BankFault::Locked);
        }
        let v = verify_boot_in_flash(banks, bank.sbm_offset(), self.key, scratch)
            .map_err(BankFault::Image)?;
        if state.bad_mark(bank) == Some(fingerprint(&v)) {
            return Err(BankFault::MarkedBad);
        }
        let counter = v.record.security_counter;
        if counter < floor {
            return Err(BankFault::BelowFloor { counter, floor });
        }
        if let Some(want) = &self.hardware {
            let found = v.record.hardware;
            if !found.as_str().is_empty() && found != *want {
                return Err(BankFault::WrongHardware { found });
            }
        }
        Ok(v)
    }
}

/// The bad-mark fingerprint of an image: the first four bytes of its CM0+ digest.
pub fn fingerprint(v: &VerifiedBoot) -> u32 {
    let d = v.cm0p().digest();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// Stage 2 input: the log was read.
#[derive(Debug, Clone, Copy)]
pub struct LogRead<'k, K> {
    dbm: Dbm<'k, K>,
    state: BootState,
}

/// Stage 3 input: the bank is chosen, its record not yet persisted.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a choice must be persisted before the bank may boot"]
pub struct Choice {
    old: BootState,
    outcome: Outcome,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Boot {
        bank: Bank,
        reason: BootReason,
        proof: VerifiedBoot,
        floor: u32,
        state: BootState,
    },
    Halt(Halt),
}

impl<K: BootVerifier> LogRead<'_, K> {
    /// The state read.
    pub fn state(&self) -> &BootState {
        &self.state
    }

    /// Stage 2: verifies the banks through the single-bank code-flash view (lower bank at offset
    /// 0, upper at [`crate::UPPER_BANK_OFFSET`]) and chooses. `scratch` is the hashing buffer
    /// (any size; 4 KB is plenty). Nothing is written.
    pub fn choose<B: ReadNorFlash>(self, banks: &mut B, scratch: &mut [u8]) -> Choice {
        let s = self.state;
        let floor = s.floor.max(self.dbm.efuse_floor);
        let dbm = &self.dbm;
        let mut check = |bank: Bank| dbm.check(banks, bank, &s, floor, scratch);
        let outcome = if dbm.user1 {
            let (bank, proof, lower_fault) = match check(Bank::Lower) {
                Ok(v) => (Bank::Lower, v, None),
                Err(lf) => match check(Bank::Upper) {
                    Ok(v) => (Bank::Upper, v, Some(lf)),
                    Err(uf) => {
                        return Choice {
                            old: s,
                            outcome: Outcome::Halt(Halt {
                                lower: lf,
                                upper: uf,
                            }),
                        };
                    }
                },
            };
            let state = BootState {
                current: Some(bank),
                trial: None,
                event: Event::User1 {
                    booted: bank,
                    lower_fault: lower_fault.as_ref().map(BankFault::logged),
                    cancelled_trial: s.trial.is_some(),
                },
                ..s
            };
            Outcome::Boot {
                bank,
                reason: BootReason::User1 { lower_fault },
                proof,
                floor,
                state,
            }
        } else if let Some(t) = s.trial {
            let previous = s.current.unwrap_or(t.bank.other());
            let revert = |reason, cause| {
                let state = BootState {
                    current: Some(previous),
                    trial: None,
                    event: Event::Reverted {
                        bank: t.bank,
                        reason,
                    },
                    ..s.locking(t.bank)
                };
                (
                    state,
                    BootReason::Reverted {
                        from: t.bank,
                        cause,
                    },
                )
            };
            if t.used >= t.budget {
                let (state, reason) = revert(
                    RevertReason::BudgetExhausted,
                    RevertCause::BudgetExhausted { budget: t.budget },
                );
                steady(&mut check, previous, state, reason, floor)
            } else {
                match check(t.bank) {
                    Ok(proof) => {
                        let attempt = t.used + 1;
                        let state = BootState {
                            trial: Some(Trial { used: attempt, ..t }),
                            event: Event::Booted {
                                bank: t.bank,
                                attempt,
                            },
                            ..s
                        };
                        Outcome::Boot {
                            bank: t.bank,
                            reason: BootReason::Trial {
                                attempt,
                                budget: t.budget,
                            },
                            proof,
                            floor,
                            state,
                        }
                    }
                    Err(f) => {
                        let (state, reason) = revert(
                            RevertReason::TrialInvalid(f.logged()),
                            RevertCause::TrialInvalid(f),
                        );
                        steady(&mut check, previous, state, reason, floor)
                    }
                }
            }
        } else {
            steady(&mut check, s.preferred(), s, BootReason::Current, floor)
        };
        Choice { old: s, outcome }
    }
}

/// Rule 4: the preferred bank, else the other one (recorded as FELL_BACK), else halt.
fn steady(
    check: &mut impl FnMut(Bank) -> Result<VerifiedBoot, BankFault>,
    preferred: Bank,
    base: BootState,
    reason: BootReason,
    floor: u32,
) -> Outcome {
    match check(preferred) {
        Ok(proof) => Outcome::Boot {
            bank: preferred,
            reason,
            proof,
            floor,
            state: base,
        },
        Err(pf) => {
            let other = preferred.other();
            match check(other) {
                Ok(proof) => Outcome::Boot {
                    bank: other,
                    reason: BootReason::FellBack {
                        from: preferred,
                        fault: pf,
                    },
                    proof,
                    floor,
                    state: BootState {
                        current: Some(other),
                        event: Event::FellBack {
                            from: preferred,
                            fault: pf.logged(),
                        },
                        ..base
                    },
                },
                Err(of) => {
                    let (lower, upper) = match preferred {
                        Bank::Lower => (pf, of),
                        Bank::Upper => (of, pf),
                    };
                    Outcome::Halt(Halt { lower, upper })
                }
            }
        }
    }
}

impl Choice {
    /// The bank that will boot, if any (before the record is persisted).
    pub fn bank(&self) -> Option<Bank> {
        match &self.outcome {
            Outcome::Boot { bank, .. } => Some(*bank),
            Outcome::Halt(_) => None,
        }
    }

    /// The state that [`Choice::persist`] will write (`None` for a halt).
    pub fn new_state(&self) -> Option<&BootState> {
        match &self.outcome {
            Outcome::Boot { state, .. } => Some(state),
            Outcome::Halt(_) => None,
        }
    }

    /// Stage 3: appends the record if the state changed, then returns the decision. A halt
    /// writes nothing.
    pub fn persist<F: NorFlash>(
        self,
        log: &mut MarkerLog<F>,
    ) -> Result<Decision, LogError<F::Error>> {
        match self.outcome {
            Outcome::Halt(h) => Ok(Decision::Halt(h)),
            Outcome::Boot {
                bank,
                reason,
                proof,
                floor,
                state,
            } => {
                let recorded = state != self.old;
                if recorded {
                    log.append(&state)?;
                }
                Ok(Decision::Boot(Boot {
                    bank,
                    reason,
                    record: proof.record,
                    proof,
                    floor,
                    state,
                    recorded,
                }))
            }
        }
    }
}

/// All three stages, for a caller that can hold the log and the code flash at once.
pub fn decide<K: BootVerifier, F: NorFlash, B: ReadNorFlash>(
    dbm: Dbm<'_, K>,
    log: &mut MarkerLog<F>,
    banks: &mut B,
    scratch: &mut [u8],
) -> Result<Decision, LogError<F::Error>> {
    dbm.read_log(log)?.choose(banks, scratch).persist(log)
}
