//! # ferrota-image: the signed bank image of a TRAVEO T2G (CYT4BF)
//!
//! A CYT4BF in dual-bank mode runs from one 0x3F8000-byte bank of code flash while the OTA agent
//! writes the next firmware into the other. This crate owns what a bank holds, how it is signed,
//! and how it is checked — on the MCU (`#![no_std]`, no allocation, the bootloader and the agent
//! read it through [`embedded_storage`] flash traits) and on the host (feature `std`: building
//! and signing; feature `rsa`: the T2G ROM's RSA-2048 scheme).
//!
//! ```text
//!  bank offset  0x000000 ┌──────────────────────────────┐ ┐
//!               0x000000 │ CySAF header (24 B)          │ │
//!               0x000018 │ version record (Ferrota)     │ │ CM0+ region, 64 KB
//!               0x000100 │ vector table, code, zeroes   │ │ (signed: 0x000000..objSize)
//!               0x00FF00 │ boot signature (256 B)       │ │
//!               0x010000 ├──────────────────────────────┤ ┘
//!                        │ CySAF header, vectors at     │ ┐ CM7_0 region, 3.9 MB
//!                        │ +0x100, code, zeroes         │ │
//!               0x3E7F00 │ boot signature               │ │
//!               0x3E8000 ├──────────────────────────────┤ ┘
//!                        │ CySAF header, ..., signature │   CM7_1 region, 64 KB
//!               0x3F8000 └──────────────────────────────┘
//! ```
//!
//! Design overview:
//! * [`layout`] fixes the region offsets; [`header`] reads and checks the CySAF headers (the
//!   signature must lie inside its region, the vectors must be signed, the core id must match).
//! * [`version`] is the record the Dual Bank Manager trusts for anti-rollback (byte layout in its
//!   docs).
//! * [`scheme`] defines the boot signature slot encodings and the pluggable [`BootVerifier`];
//!   [`sflash_key`] the public-key object provisioned in SFlash that names the scheme.
//! * [`verify`] checks a bank from memory or from flash in bounded memory and returns proof values;
//!   [`inspect`] describes any input without failing.
//! * [`ota`] is the separate code-signing signature of the OTA file (AWS's `sig-sha256-ecdsa`).
//! * With `std`: [`build`] assembles and signs a bank from the cores' builds, [`sign`] holds the
//!   private keys, [`input`] reads ELF, Intel HEX and raw builds, [`output`] writes a bank as
//!   Intel HEX for a debugger.
//!
//! Every refusal is an [`Error`] naming the region and the bank offset at fault.
//!
//! # Boot-key slots and revocation (#20)
//!
//! A board can hold up to four boot keys ([`sflash_key::BOOT_KEY_SLOTS`]: slot 0 is the key
//! object at 0x17006400 the single-key boards already have; slots 1..3 are the last three 512 B
//! rows of the same 0xC00 area, P-256 only) and one eFuse revocation bit per slot (byte 48 of
//! the `ferrota-t2g` model). [`KeyRing`] holds the slots and the fuse mask and is itself a
//! [`BootVerifier`], so the Dual Bank Manager and the CM0+ stage take it where they took one
//! key: a region verifies if its signature verifies under any present, non-revoked slot. One
//! ring holds one scheme ([`KeyRingError::MixedSchemes`] at load), so a signature slot is read
//! one way only.
//!
//! A rotation: provision the next key in a later slot while SFlash can still be written (the
//! slots are under the ROM's S-HASH, so SECURE locks them like slot 0), sign and confirm images
//! with it, then blow the old slot's bit. Fuses only go 0 → 1, so the bit is the whole state:
//! a torn blow leaves it blown or not, never a half-trusted key, and nothing written to flash
//! brings the key back. The sim's `boot_chain::revoke::apply` blows bits only if the running
//! image verifies without them.
//!
//! * **Defends**: a stolen boot key stops being trusted once its slot is revoked: images the
//!   thief signs afterwards are refused on every boot path (current bank, trial, fallback,
//!   USER1), and so are old releases signed only with that key.
//! * **Does not defend**: anything the thief signs and gets installed *before* the revocation
//!   (the ring cannot tell the owner's signatures from the thief's under a trusted key); a key
//!   stolen for every slot at once; a board whose slots are written by an attacker before the
//!   secure life cycle; and a delay in revoking (that is the update metadata's job).
//!
//! Scope today: the ring is host- and simulation-side (`ferrota-sim`'s boot chain reads every
//! slot and the fuse mask). The CM0+ firmware DBM (`firmware/dbm`) still reads slot 0 only: it
//! has about 40 bytes left under its 16 KB target and the ring costs a few hundred; moving it
//! there is the plan's P1. Slot 0 alone with no bit blown is exactly the single-key behaviour.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod header;
pub mod inspect;
pub mod layout;
pub mod ota;
pub mod scheme;
pub mod sflash_key;
pub mod verify;
pub mod version;

#[cfg(feature = "std")]
pub mod build;
#[cfg(feature = "std")]
pub mod input;
#[cfg(feature = "std")]
pub mod output;
#[cfg(feature = "std")]
pub mod sign;

pub use error::{Error, ErrorKind};
pub use layout::{BANK_SIZE, Region};
pub use scheme::{BootKey, BootVerifier, KeyRing, KeyRingError, Scheme};
pub use verify::{BankVerified, VerifiedBank, VerifiedBoot, VerifiedRegion};
pub use version::{FirmwareVersion, HardwareId, VersionRecord};

/// Re-exported so users name the same P-256 types this crate uses.
pub use p256;
