//! # ferrota-delta: packed bank images — sparse, compressed, and deltas
//!
//! (Crate docs: see FORMAT below; filled in after measurement.)

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod error;
pub mod format;

#[cfg(feature = "std")]
pub mod encode;
#[cfg(feature = "std")]
pub mod mem;

pub use apply::{Applier, fill_chunk};
pub use error::{ApplyError, Corrupt, FormatError};
pub use format::{ChunkEntry, Codec, FrameInfo, Header, Kind, MAGIC, MAX_CHUNKS, frame_info};
