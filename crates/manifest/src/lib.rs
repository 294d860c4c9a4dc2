//! Signed update metadata for Ferrota (issue #20): which firmware a device may install, signed
//! by whom, and how fresh the offer is.
//!
//! The AWS OTA job document is unsigned and a firmware file's signature says only "the code
//! signing key signed these bytes". It says nothing about which board, which version, whether
//! this is the newest release or whether the offer is still current. This crate adds the
//! metadata that does, in the shape of TUF and Uptane (roles, thresholds, rotation, timestamps)
//! carried in a standard SUIT envelope. It is `no_std` without `alloc`, parses in place from the
//! stream block that carried the file, and reuses the image crate's crypto stack (`p256` 0.14,
//! `sha2` 0.11): nothing new to trust on the CM7. Feature `std` adds the host builders
//! (`build`).
//!
//! # Documents
//!
//! | Document | Signed by | Says | Checked by |
//! |---|---|---|---|
//! | Root (COSE_Sign) | a threshold of root keys: the old root's **and** its own | the keys, their roles, the root threshold, revoked boot-key slots | [`TrustedRoot::from_anchor`], [`walk_roots`] |
//! | Manifest (SUIT envelope, fileType 142) | one release key | image digest, size, class, version, counter, expiry, region digests, sequence | [`parse_bundle`], [`verify_envelope`], [`check_sequence`] |
//! | Timestamp (COSE_Sign1) | one timestamp key | "at `time`, for this thing, the metadata file is `metadata`", until `expires` | [`verify_timestamp`], [`Timestamp::check_fresh`], [`Timestamp::check_names`] |
//!
//! The byte layouts are in `FORMAT.md` beside this crate, byte for byte, with an annotated
//! example that `tests/manifests.rs` pins.
//!
//! # The threats each check stops
//!
//! Names as in the TUF specification §1.5.2 and Uptane (design doc §2.1–2.2).
//!
//! | Attack | What stops it here | Error (sub) |
//! |---|---|---|
//! | Arbitrary software (server or network forges an update) | manifest signed by a **release-role** key of the trusted root; the image digest, size and region digests it signs | [`TrustError::UnknownSigner`], [`TrustError::WrongRole`], [`TrustError::BadSignature`], [`TrustError::DigestMismatch`] (4) |
//! | Compromised online key (server holds the timestamp key) | roles are separate: a timestamp key signs neither manifests nor roots; roots need an offline threshold | [`TrustError::WrongRole`] (4), [`TrustError::OldThreshold`] (5) |
//! | Compromised release key | rotation by a new root (threshold-signed); the sequence floor the stolen key pushed up is dropped when it leaves the root (TUF §5.3.11 fast-forward recovery, [`store::TrustState::floor`]) | [`TrustError::UnknownSigner`] (4) after rotation |
//! | Forged or replayed root rotation | version exactly current+1, old **and** new threshold, a kid counts once, revocations cannot be undone | [`TrustError::VersionSkip`], [`TrustError::OldThreshold`], [`TrustError::NewThreshold`], [`TrustError::Revocation`] (5) |
//! | Rollback / replay of an old manifest | monotonic sequence number against the persisted floor (the agent also compares version and counter with the running image) | [`TrustError::SequenceNotNewer`] (9) |
//! | Indefinite freeze (server keeps serving old metadata) | timestamp expiry against the device's clock estimate | [`TrustError::TimestampExpired`] (7) |
//! | Replay of an old timestamp | timestamp time not below the newest accepted | [`TrustError::TimestampStale`] (7) |
//! | Mix-and-match (genuine pieces of different releases) | the timestamp names the SHA-256 of the whole metadata file; the manifest names the image | [`TrustError::MetadataMismatch`] (11) |
//! | Wrong hardware / wrong device | signed class id and optional device id, compared by the agent with its own ([`class_id`], [`device_id`]) | agent: `rejected 0x03` |
//! | Endless data | signed image size | agent: sub 10 |
//! | Image swapped in the stream (the manifest is genuine, the bytes written are not) | [`bind`]: the written bank's digest, as the activation proof read it back from flash, against the signed digest | [`TrustError::ImageMismatch`] (10) |
//! | Expired release | signed manifest expiry | [`TrustError::ManifestExpired`] (8) |
//! | Cross-type reuse (a timestamp offered as a root, a root signature as a manifest's) | a document type field in each payload, different COSE structures and contexts | [`TrustError::WrongDocumentType`] |
//! | Power cut while the device persists what it trusts (rollback of the trust state itself) | full-snapshot records, commit word last, never erase the sector holding the newest record ([`store`], marker-log rules) | `tests/store.rs`: clean and torn cut at every operation |
//! | Parser attacks (the parser reads attacker bytes before any signature check) | a strict, allocation-free deterministic-CBOR subset; bounded counts; fuzzed (`tests/robustness.rs`, `fuzz/fuzz_targets/manifest_bundle.rs`) | [`TrustError::Malformed`], [`TrustError::NotCanonical`], [`TrustError::Unsupported`], [`TrustError::Truncated`], [`TrustError::TrailingBytes`] (3/5/6) |
//!
//! Every [`TrustError`] maps to its FAILED reason sub-code of design §4.2 in one place,
//! [`TrustError::sub`]. The same broken rule in a different document is a different sub
//! ([`Doc`]): truncated CBOR is sub 3 in a manifest, 5 in a root, 6 in a timestamp.
//!
//! # Order of the checks (the agent's flow, design §4.1)
//!
//! ```text
//! timestamp bytes ─▶ peek_timestamp_root ─▶ verify_timestamp(root)   (or deferred until after the walk)
//! metadata file  ─▶ parse_bundle ─▶ walk_roots(trusted, bundle.roots()) ─▶ verify_envelope(bundle, new root)
//!                ─▶ timestamp.check_names(bundle.file_digest()) ─▶ check_expiry ─▶ check_sequence ─▶ persist
//! ```
//! Inside [`verify_envelope`] the order is SUIT's (§8.3): the manifest bytes against the signed
//! digest, the signature by a release key, and only then the manifest's contents are parsed.
//!
//! # Decisions where the plan (docs/design/20-manifests.md) is silent or was refined
//!
//! - **D-1**: a hand-checked subset on `minicbor`'s `Decoder`, with the deterministic-encoding
//!   rules added by a strict reader (`cbor.rs`): shortest heads, definite lengths, map keys
//!   strictly ascending bytewise. One generic rule gives canonical order and refuses duplicates.
//! - **SUIT numbers** (the plan asked for a re-check against the draft): envelope 2/3, manifest
//!   1/2/3/7, common 2/4, commands 1, 2, 3, 20, 24, parameters 1, 2, 3, 14, 24, SHA-256 −16,
//!   ES256 −7, COSE_Sign1 tag 18 with a `null` (detached) payload match the draft's registries
//!   and public SUIT examples (libcsuit, nRF SUIT). `tests/cose.rs` rebuilds each Sig_structure
//!   from RFC 9052 §4.4 by hand and checks the signatures with `p256` directly.
//! - **D-2, shared sequence**: the plan writes the device condition as `[24, 15]`; SUIT command
//!   sequences are flat `[cmd, arg, cmd, arg, …]`, so it is `…, 24, 15`. The device-id parameter
//!   and its condition come together or not at all. A vendor id other than [`vendor_id`] is
//!   [`TrustError::Unsupported`] (sub 3: not a Ferrota manifest).
//! - **Digest mismatch is sub 4**: a manifest whose bytes do not match its signed digest was
//!   tampered with; it is an authentication failure like a bad signature, not unreadable input.
//! - **Low S only**: a high-S signature is refused ([`TrustError::BadSignature`]), so a
//!   signed document has one valid encoding; the builders normalise S.
//! - **D-6, counting**: as TUF, an invalid signature or an unknown kid counts for nothing rather
//!   than failing the document. So a root document with an extra broken signature still walks,
//!   and the envelope carrying it has another file digest than the genuine one: a timestamp
//!   naming the genuine file refuses it, and the sequence rule does not take it as a resume
//!   (`tests/robustness.rs` states this as a property).
//! - **D-6, roots**: every role must have a key and the root threshold must be reachable, so a
//!   rotation cannot leave the device unable to take any further update or rotation. Release and
//!   timestamp thresholds are fixed at 1. Boot-key revocations are cumulative: a new root that
//!   clears a bit set by its predecessor is refused ([`TrustError::Revocation`]), since the
//!   eFuse bits cannot be unblown anyway and such a root is a mistake or an attack. The anchor
//!   must carry its own threshold of signatures. The version in an envelope's root key name must
//!   equal the version the document claims (one encoding per envelope); only the walk's
//!   signatures make that claim trusted.
//! - **D-5, timestamps**: a timestamp naming a root above the trusted one is
//!   [`TrustError::TimestampRootAhead`] (sub 6), for the agent to verify again after the walk; one
//!   naming an older root is accepted while its key is still a timestamp key of the trusted
//!   root. `expires ≤ time` is refused as [`TrustError::TimestampExpired`].
//! - **Proof values**: [`VerifiedManifest`] is not `Clone` and its fields are private with
//!   getters (the contract's field list), so only [`verify_envelope`] makes one:
//!
//! ```compile_fail
//! // A VerifiedManifest cannot be made outside the crate...
//! let m = ferrota_manifest::VerifiedManifest { sequence: 1 };
//! ```
//! ```compile_fail
//! // ...nor copied.
//! fn copy(m: &ferrota_manifest::VerifiedManifest) -> ferrota_manifest::VerifiedManifest {
//!     m.clone()
//! }
//! ```
//!
//! # What it costs
//!
//! No heap; documents are read in place. On a 64-bit host (`tests/robustness.rs::sizes`):
//! [`TrustedRoot`] 496 B (5 keys as parsed `VerifyingKey`s; the plan's 76 B per key is the
//! flash record, not the RAM value), [`VerifiedManifest`] 304 B, [`Bundle`] 208 B (slices: less
//! on the 32-bit CM7), [`store::TrustState`] 560 B, [`Timestamp`] 56 B, [`TrustError`] 12 B.
//! Verifying costs one ES256 verification per manifest or timestamp and at most one per
//! distinct root-key signer per root document, plus SHA-256 over each document once; the
//! Sig_structure is hashed as it is encoded (no buffer). The trust store reads one 512 B
//! record at a time into a stack buffer; a write costs two program operations (plus one 2 KB
//! erase every fourth write).
//!
//! # Not in this crate yet
//!
//! The `coset` interop test (a new dev-dependency).
//!
//! Done since the first cut (W1 phase 1b):
//! - [`bind`] → [`ManifestMatched`], over the new `ferrota_image::BankVerified::file_digest`
//!   (`tests/bind.rs`);
//! - the FAILED reason words for subs 3..=11 and `0x0000000e: 0x00000001`
//!   (`ferrota_proto::reason`), and the Jobs reply's `ferrotaTimestamp` key both ways
//!   (`ferrota_proto::job::JobMessage::ferrota_timestamp`, `JobMessageOut::ferrota_timestamp`);
//! - deterministic fixtures for the agent's and the lab's tests (`ferrota_sim::trust`: keys,
//!   anchor, root chain, the metadata file of a test image, timestamps);
//! - a fuzz target over every parser here (`fuzz/fuzz_targets/manifest_bundle.rs`).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod binding;
#[cfg(feature = "std")]
pub mod build;
mod cbor;
mod cose;
pub mod error;
pub mod manifest;
pub mod root;
pub mod store;
pub mod timestamp;

pub use binding::{ManifestMatched, bind};
pub use error::{Doc, TrustError};
pub use manifest::{Bundle, VerifiedManifest, parse_bundle, verify_envelope};
pub use root::{Role, RootKey, TrustedRoot, walk_roots};
pub use store::check_sequence;
pub use timestamp::{Timestamp, peek_timestamp_root, verify_timestamp};

pub use error::{
    SUB_EXPIRED, SUB_MANIFEST, SUB_METADATA, SUB_MISMATCH, SUB_ROOT, SUB_SEQUENCE, SUB_SIGNER,
    SUB_STALE, SUB_TIMESTAMP,
};

pub use p256;

use sha2::{Digest, Sha256};

/// The OTA `fileType` of the metadata file (the SUIT envelope) in a job document.
pub const MANIFEST_FILE_TYPE: u8 = 142;
/// The most keys a root document lists.
pub const MAX_ROOT_KEYS: usize = 5;
/// The most signatures a root document carries (more are refused unread).
pub const MAX_SIGNATURES: usize = 8;
/// The most root documents an envelope integrates.
pub const MAX_BUNDLE_ROOTS: usize = 4;

/// A key id: the first 8 bytes of SHA-256 of the key's SEC1 uncompressed encoding.
pub type Kid = [u8; 8];

/// The key id of a P-256 public key given as SEC1 uncompressed bytes (`04‖X‖Y`).
pub fn kid_of(sec1: &[u8; 65]) -> Kid {
    let d = Sha256::digest(sec1);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&d[..8]);
    kid
}

/// An RFC 9562 UUIDv8 made from SHA-256 of `prefix ‖ s` (design D-3; the device needs no SHA-1).
fn uuid8(prefix: &[u8], s: &[u8]) -> [u8; 16] {
    let d = Sha256::new()
        .chain_update(prefix)
        .chain_update(s)
        .finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0F) | 0x80;
    u[8] = (u[8] & 0x3F) | 0x80;
    u
}

/// The SUIT class id of a hardware id (the board): `uuid8("ferrota-class\0" ‖ hw)`.
pub fn class_id(hw: &str) -> [u8; 16] {
    uuid8(b"ferrota-class\0", hw.as_bytes())
}

/// The SUIT device id of a thing name: `uuid8("ferrota-thing\0" ‖ thing)`.
pub fn device_id(thing: &str) -> [u8; 16] {
    uuid8(b"ferrota-thing\0", thing.as_bytes())
}

/// The SUIT vendor id of Ferrota: `uuid8("ferrota-vendor\0ferrota")`.
pub fn vendor_id() -> [u8; 16] {
    uuid8(b"ferrota-vendor\0", b"ferrota")
}
