//! # ferrota-agent: the OTA agent, sans-IO
//!
//! Placeholder docs; see below.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
pub mod config;
pub mod download;
pub mod output;
pub mod platform;
pub mod resume;
pub mod time;

pub use agent::{Agent, AppOutcome, SUB_BOOT_SIGNATURE, SUB_TOO_SMALL, StartError, State};
pub use config::{Config, ConfigError, FIRMWARE_FILE_TYPE, Running};
pub use output::{AgentEvent, Stats, TRANSMIT_BUF_MIN, TopicBuf, Transmit, TransmitKind};
pub use platform::{FlashFault, FlashOp, Platform, RESUME_AREA, RESUME_AREA_LEN};
pub use time::Instant;
