//! The device's trust state (design §3.4, D-7) and the sequence rule over it.
//!
//! Persistence in work flash (the 512 B snapshot records of §3.4) is not in this crate yet: the
//! state is plain data here, so the agent can hold and compare it.

use crate::{Kid, TrustedRoot};

/// Work-flash area of the trust records (two 2 KB sectors after the resume area).
pub const TRUST_AREA: u32 = 0x1401_3800;
/// Length of [`TRUST_AREA`].
pub const TRUST_AREA_LEN: u32 = 0x1000;

/// What the device trusts and has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustState {
    /// The trusted root.
    pub root: TrustedRoot,
    /// Highest manifest sequence accepted (reset when its release key leaves the root).
    pub seen_seq: u32,
    /// Release key id that signed the manifest of `seen_seq`.
    pub seen_kid: Kid,
    /// SHA-256 of that metadata file (the same digest is the same manifest: a resume).
    pub seen_digest: [u8; 32],
    /// Sequence of the last activated manifest (never reset).
    pub installed_seq: u32,
    /// Newest accepted timestamp `time`.
    pub attested_time: u64,
    /// Device time estimate, checkpointed (≥ `attested_time`).
    pub clock_floor: u64,
}

impl TrustState {
    /// The state of a device that has only its anchor: nothing seen, nothing installed.
    pub fn new(root: TrustedRoot) -> Self {
        TrustState {
            root,
            seen_seq: 0,
            seen_kid: [0; 8],
            seen_digest: [0; 32],
            installed_seq: 0,
            attested_time: 0,
            clock_floor: 0,
        }
    }

    /// The sequence floor a new manifest must beat: `installed_seq`, raised to `seen_seq` while
    /// the key that signed `seen_seq` is still a release key of `root` (TUF §5.3.11
    /// fast-forward recovery: a floor pushed up by a key that was rotated out no longer binds).
    pub fn floor(&self) -> u32 {
        if self.root.has_release_kid(&self.seen_kid) {
            self.installed_seq.max(self.seen_seq)
        } else {
            self.installed_seq
        }
    }
}

/// Replay: a manifest must carry a sequence number above [`TrustState::floor`], or be the very
/// file last accepted (same sequence and same file digest: a download resumed after a reset).
///
/// `s.root` must be the root the manifest was verified against (after the walk).
pub fn check_sequence(
    s: &TrustState,
    m: &crate::VerifiedManifest,
) -> Result<(), crate::TrustError> {
    let floor = s.floor();
    let seq = m.sequence();
    if seq > floor {
        return Ok(());
    }
    if seq == floor
        && seq == s.seen_seq
        && s.root.has_release_kid(&s.seen_kid)
        && m.file_digest() == &s.seen_digest
    {
        return Ok(());
    }
    Err(crate::TrustError::SequenceNotNewer { found: seq, floor })
}
