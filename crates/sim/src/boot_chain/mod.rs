//! The boot chain of a CYT4BF on the `ferrota-t2g` model: provisioning, programming, booting
//! (ROM → DBM → mapping switch → CM0+ stage), the app's update actions and a report.
//!
//! ```
//! use ferrota_boot::Bank;
//! use ferrota_sim::boot_chain::{self, BootResult, Provisioning};
//! use ferrota_image::sign::BootSigningKey;
//! use ferrota_t2g::LifeCycle;
//!
//! let sk = BootSigningKey::EcdsaP256(ferrota_image::p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap());
//! let mut dev = boot_chain::provision(&Provisioning {
//!     key: sk.boot_key().unwrap(),
//!     life_cycle: LifeCycle::Secure,
//!     hardware: None,
//! })?;
//! // Both banks erased: the DBM halts, with both reasons.
//! let outcome = boot_chain::boot(&mut dev, false)?;
//! assert!(matches!(outcome.result, BootResult::Halted(_)));
//! println!("{outcome}");
//! # Ok::<(), boot_chain::Error>(())
//! ```

mod actions;
mod error;
mod provision;
mod report;
pub mod revoke;
mod run;
pub mod text;

pub use actions::{
    Activation, BANK_IMAGE_SIZE, Confirmation, Programmed, Rejection, activate, confirm,
    program_bank, reject, running_bank, unchecked_trial, verify_boot_of, verify_physical_bank,
};
pub use error::Error;
pub use provision::{
    DBM_CONFIG_MAGIC, DbmConfig, Provisioning, TOC2_FLAGS, key_object, provision, provision_slots,
    toc2_row,
};
pub use report::{BankMark, BankReport, BankStatus, DeviceReport, LogRecord, Wear, report};
pub use run::{
    AppStart, BootOutcome, BootResult, MAX_RESETS, Pass, SCRATCH, SflashParams, Stage, Started,
    Step, Unprovisioned, boot, boot_pass, boot_with, marker_log, read_params, read_state,
    vector_table,
};

#[cfg(test)]
mod tests;
