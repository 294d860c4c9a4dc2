//! Plain-language descriptions of the boot chain's typed values, for `boot` and `show`.

use ferrota_boot::dbm::{BankFault, BootReason, Halt, RevertCause};
use ferrota_boot::log::{BootState, Event, Fault, RevertReason};
use ferrota_boot::rom::RomError;
use ferrota_image::VersionRecord;

/// The hex form of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A version record in one line.
pub fn describe_record(r: &VersionRecord) -> String {
    let hw = r.hardware.as_str();
    format!(
        "version {} (security counter {}{})",
        r.version,
        r.security_counter,
        if hw.is_empty() {
            String::new()
        } else {
            format!(", hardware {hw}")
        }
    )
}

/// A logged fault.
pub fn describe_fault(f: &Fault) -> String {
    match f {
        Fault::Image {
            region,
            offset,
            kind,
        } => match region {
            Some(r) => format!("{r} refused at bank offset {offset:#x}: {kind:?}"),
            None => format!("image refused at bank offset {offset:#x}: {kind:?}"),
        },
        Fault::BelowFloor { counter } => {
            format!("security counter {counter} below the anti-rollback floor")
        }
        Fault::WrongHardware => "image for another board".into(),
        Fault::MarkedBad => "image marked bad by the CM0+ stage".into(),
        Fault::Locked => {
            "bank locked (its image was rejected or refused, or is being written)".into()
        }
    }
}

/// A log event.
pub fn describe_event(e: &Event) -> String {
    match e {
        Event::None => "none".into(),
        Event::Trial { bank } => format!("TRIAL of the {bank} bank"),
        Event::Booted { bank, attempt } => {
            format!("BOOTED trial attempt {attempt} of the {bank} bank")
        }
        Event::Confirmed { bank } => format!("CONFIRMED the {bank} bank"),
        Event::Reverted { bank, reason } => format!(
            "REVERTED the trial of the {bank} bank: {}",
            match reason {
                RevertReason::BudgetExhausted =>
                    "boot budget used up without a confirmation".into(),
                RevertReason::Rejected => "rejected by the app (self-test failed)".into(),
                RevertReason::TrialInvalid(f) =>
                    format!("refused by the DBM: {}", describe_fault(f)),
                RevertReason::Cm7Invalid(f) =>
                    format!("refused by the CM0+ stage: {}", describe_fault(f)),
            }
        ),
        Event::FellBack { from, fault } => {
            format!("FELL_BACK from the {from} bank: {}", describe_fault(fault))
        }
        Event::User1 {
            booted,
            lower_fault,
            cancelled_trial,
        } => format!(
            "USER1 held: booted the {booted} bank{}{}",
            lower_fault
                .map(|f| format!(" (lower refused: {})", describe_fault(&f)))
                .unwrap_or_default(),
            if *cancelled_trial {
                ", pending trial cancelled"
            } else {
                ""
            }
        ),
        Event::MarkedBad { bank, fault } => {
            format!("MARKED_BAD the {bank} bank: {}", describe_fault(fault))
        }
        Event::Locked { bank } => format!(
            "LOCKED the {bank} bank: the agent is writing a new image there; it boots only once activated"
        ),
    }
}

/// A log state in one line.
pub fn describe_state(s: &BootState) -> String {
    let current = s
        .current
        .map_or("none recorded (lower preferred)".to_string(), |b| {
            b.to_string()
        });
    let trial = match s.trial {
        Some(t) => format!(
            "trial of the {} bank, {} of {} boots used",
            t.bank, t.used, t.budget
        ),
        None => "no trial".into(),
    };
    let bad: Vec<String> = ferrota_boot::Bank::ALL
        .iter()
        .filter(|&&b| !s.is_locked(b))
        .filter_map(|&b| s.bad_mark(b).map(|m| format!("{b} {m:#010x}")))
        .collect();
    let locked: Vec<String> = ferrota_boot::Bank::ALL
        .iter()
        .filter(|&&b| s.is_locked(b))
        .map(ToString::to_string)
        .collect();
    format!(
        "current {current}; {trial}; floor {}; bad marks: {}; locked banks: {}; last event: {}",
        s.floor,
        if bad.is_empty() {
            "none".into()
        } else {
            bad.join(", ")
        },
        if locked.is_empty() {
            "none".into()
        } else {
            locked.join(", ")
        },
        describe_event(&s.event)
    )
}

/// Why the DBM chose a bank.
pub fn describe_reason(r: &BootReason) -> String {
    match r {
        BootReason::Current => "the current bank, accepted".into(),
        BootReason::Trial { attempt, budget } => {
            format!("trial boot, attempt {attempt} of {budget}")
        }
        BootReason::Reverted { from, cause } => format!(
            "the trial of the {from} bank ended ({}); the previous bank boots",
            match cause {
                RevertCause::BudgetExhausted { budget } => {
                    format!("{budget} boots without a confirmation")
                }
                RevertCause::TrialInvalid(f) =>
                    format!("trial image refused: {}", describe_bank_fault(f)),
            }
        ),
        BootReason::FellBack { from, fault } => format!(
            "fallback: the {from} bank was refused ({})",
            describe_bank_fault(fault)
        ),
        BootReason::User1 { lower_fault } => match lower_fault {
            None => "USER1 held: the lower bank is preferred".into(),
            Some(f) => format!(
                "USER1 held, but the lower bank was refused ({}): fallback to the upper bank",
                describe_bank_fault(f)
            ),
        },
    }
}

/// A bank refusal with detail.
pub fn describe_bank_fault(f: &BankFault) -> String {
    f.to_string()
}

/// A DBM halt.
pub fn describe_halt(h: &Halt) -> String {
    format!(
        "both banks refused: lower: {}; upper: {}",
        describe_bank_fault(&h.lower),
        describe_bank_fault(&h.upper)
    )
}

/// A ROM refusal.
pub fn describe_rom_error(e: &RomError) -> String {
    match e {
        RomError::ShashMismatch { computed, expected } => format!(
            "S-HASH mismatch: SFlash (DBM, key, SWPU, TOC2) hashes to {}, eFuse holds {}",
            hex(computed),
            hex(expected)
        ),
        RomError::Corrupted => "the life-cycle fuses do not decode (CORRUPTED)".into(),
        RomError::Flash(k) => format!("SFlash could not be read: {k:?}"),
    }
}
