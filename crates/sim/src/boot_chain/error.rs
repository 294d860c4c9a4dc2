//! Typed errors of the boot chain's host-side operations.

use ferrota_boot::Bank;
use ferrota_boot::app::AppError;
use ferrota_boot::log::LogError;
use ferrota_image::sflash_key::{KeyObjectError, SlotError};
use ferrota_t2g::LifeCycle;

/// An error of provisioning, programming, booting or an app action. Refusals of the boot chain
/// itself (a halt, a ROM refusal) are not errors: they are [`super::BootResult`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The memory model refused an operation (or the power was cut).
    #[error("memory: {0}")]
    Memory(#[from] ferrota_t2g::Error),
    /// The marker log could not be read or written.
    #[error("{0}")]
    Log(LogError<ferrota_t2g::Error>),
    /// The boot chain's app API refused the request (nothing was written).
    #[error("{}", describe_app_error(.0))]
    App(AppError<ferrota_t2g::Error>),
    /// SFlash holds no usable boot key.
    #[error("SFlash public-key object at 0x17006400: {0}")]
    Key(KeyObjectError),
    /// SFlash could not be read to compute the S-HASH.
    #[error("cannot read SFlash to compute the S-HASH: {0:?}")]
    Shash(embedded_storage::nor_flash::NorFlashErrorKind),
    /// SFlash holds no Ferrota DBM stand-in (the device was not provisioned by this crate).
    #[error("SFlash at 0x17000800 holds no Ferrota DBM (is the device provisioned?)")]
    NoDbm,
    /// The life cycle cannot be reached from a blank device.
    #[error("life cycle {0:?} cannot be reached from a blank device")]
    LifeCycle(LifeCycle),
    /// A bank image must fill exactly the large sectors of one bank.
    #[error("a bank image is exactly 4161536 bytes (0x3F8000), this one is {len} bytes")]
    BankSize {
        /// Its length.
        len: usize,
    },
    /// The bank to activate does not hold an image the boot key accepts.
    #[error("the {bank} bank does not verify with the provisioned key: {error}")]
    BankInvalid {
        /// The bank.
        bank: Bank,
        /// Why.
        error: ferrota_image::Error,
    },
    /// The lab could not carry out the agent's check of a bank (signing or reading it).
    #[error("{0}")]
    Lab(String),
    /// The image to activate is older than the anti-rollback floor.
    #[error(
        "the {bank} bank holds security counter {counter}, below the anti-rollback floor {floor}: a downgrade"
    )]
    Downgrade {
        /// The bank.
        bank: Bank,
        /// Its counter.
        counter: u32,
        /// The floor.
        floor: u32,
    },
    /// Boot-key slots 1..3 (or the ring they make with slot 0) are refused. Slot 0's own errors
    /// stay [`Error::Key`], as on a single-key board.
    #[error("SFlash key area: {0}")]
    KeySlot(SlotError),
    /// A boot-key slot cannot be provisioned with this key.
    #[error("boot-key slot {slot}: {why}")]
    ExtraKey {
        /// The slot.
        slot: usize,
        /// Why.
        why: &'static str,
    },
    /// The revoke guard refused: the running image is under trial. If it were rejected the board
    /// would fall back to the previous image, which may need the key; confirm it first.
    #[error(
        "revoking boot-key slots refused: the running {bank} bank is under trial (confirm it first: its fallback may need the key)"
    )]
    RevokeDuringTrial {
        /// The trial bank.
        bank: Bank,
    },
    /// The revoke guard refused: after the revocation the running image would not verify, so
    /// the board would not boot it again. Nothing was blown.
    #[error(
        "revoking boot-key slots {mask:#06b} refused: the running {bank} bank's image verifies only under them ({error})"
    )]
    RevokeRefused {
        /// The slots asked for.
        mask: u8,
        /// The running bank.
        bank: Bank,
        /// Why it would not verify.
        error: ferrota_image::Error,
    },
}

impl From<LogError<ferrota_t2g::Error>> for Error {
    fn from(e: LogError<ferrota_t2g::Error>) -> Self {
        match e {
            LogError::Flash(e) => Error::Memory(e),
            other => Error::Log(other),
        }
    }
}

impl From<AppError<ferrota_t2g::Error>> for Error {
    fn from(e: AppError<ferrota_t2g::Error>) -> Self {
        match e {
            AppError::Log(l) => l.into(),
            other => Error::App(other),
        }
    }
}

impl From<KeyObjectError> for Error {
    fn from(e: KeyObjectError) -> Self {
        Error::Key(e)
    }
}

fn describe_app_error(e: &AppError<ferrota_t2g::Error>) -> String {
    match e {
        AppError::Log(l) => l.to_string(),
        AppError::RunningUnconfirmed => {
            "the running image is itself under trial: confirm or reject it first".into()
        }
        AppError::ZeroBudget => "a trial budget of 0 would never boot the image".into(),
        AppError::TrialPendingElsewhere { trial } => {
            format!("a trial of the {trial} bank is pending; the running bank is not under trial")
        }
        AppError::NotCurrent { current } => {
            format!("the running bank is not the current one ({current})")
        }
        AppError::NoTrial => "no trial is pending for the running bank: nothing to reject".into(),
    }
}
