//! Reason codes in words, for every place a person reads a job's `statusDetails.reason`
//! (`ota describe`, `thing describe`, the device log, the demo table).
//!
//! The device reports AWS's strings (`rejected: 0x0000000f`, `0x000000e3: 0x00000000`, …) so
//! that AWS's console and tools show what they show for the official library; those codes are
//! kept verbatim and the words go *beside* them: [`explain`] turns a reason into a short phrase
//! and [`Explained`] prints `"<code> (<words>)"`.
//!
//! Decision: the words follow the official library's `OtaErr_t` / `OtaPalMainStatus_t` /
//! `OtaJobParseErr_t` names, refined by the sub-codes this project's agent gives them
//! (`ferrota_agent`'s crate docs list each): `0x000000e3: 0x00000000` is the OTA file
//! signature, `0x000000e3: 0x00000001` the boot signature or version record of the CM0+
//! region, `0x000000e3: 0x00000002` a packed or delta file that does not rebuild the image,
//! `rejected: 0x00000000` a failed self-test. Subs 3..=11 of `0x000000e3` are the signed
//! update metadata's refusals (#20, `ferrota_manifest::TrustError::sub`: manifest, signer, root
//! chain, timestamp, freshness, expiry, sequence, mismatch, mix-and-match) and
//! `0x0000000e: 0x00000001` a download slower than its signed size allows. An unknown code is
//! printed as it is, never guessed.

use core::fmt;

use crate::status::{JobParseErr, OtaErr, PalErr};

/// A reason string recognised, ready to print as `"<reason> (<words>)"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explained<'a> {
    /// The reason as the device sent it.
    pub reason: &'a str,
    /// What it means, in words.
    pub words: &'static str,
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.words)
    }
}

/// The words for a `statusDetails.reason` value; `None` when the reason is not one of the
/// official forms or its code is unknown (print the reason alone then).
pub fn explain(reason: &str) -> Option<Explained<'_>> {
    let words = words(reason.trim())?;
    Some(Explained { reason, words })
}

fn words(r: &str) -> Option<&'static str> {
    if r.starts_with("accepted") {
        return Some("new firmware running and confirmed");
    }
    if let Some(x) = r.strip_prefix("rejected: ") {
        return rejected(OtaErr::from_code(hex(x)?)?);
    }
    if let Some(x) = r.strip_prefix("aborted: ") {
        return aborted(OtaErr::from_code(hex(x)?)?);
    }
    let (a, b) = r.split_once(": ")?;
    failed(hex(a)?, hex(b)?)
}

fn rejected(e: OtaErr) -> Option<&'static str> {
    Some(match e {
        OtaErr::None => "self-test failed: the previous firmware runs again",
        OtaErr::InvalidArg => "image not built for this board",
        OtaErr::DowngradeNotAllowed => "version not newer / below the anti-rollback floor",
        OtaErr::SameFirmwareVersion => "same version as the running firmware",
        OtaErr::ImageStateMismatch => "image state mismatch: not the image under trial",
        other => ota_err(other)?,
    })
}

fn aborted(e: OtaErr) -> Option<&'static str> {
    Some(match e {
        OtaErr::None => "aborted by the device",
        OtaErr::InvalidDataProtocol => "no MQTT protocol or stream in the job document",
        OtaErr::MomentumAbort => "download stalled: too many requests without progress",
        OtaErr::UserAbort => "aborted by the application",
        other => ota_err(other)?,
    })
}

fn failed(main: u32, sub: u32) -> Option<&'static str> {
    if let Some(p) = PalErr::from_code(main) {
        return Some(match (p, sub) {
            (PalErr::SignatureCheckFailed, 0) => {
                "signature check failed: OTA file signature does not match the code-signing key"
            }
            (PalErr::SignatureCheckFailed, 1) => {
                "signature check failed: boot signature or version record of the CM0+ region"
            }
            (PalErr::SignatureCheckFailed, 2) => {
                "packed or delta file does not rebuild the signed image (bad header or frame)"
            }
            // Subs 3..=11: the signed update metadata of #20, one per rule family, as
            // `ferrota_manifest::TrustError::sub` maps its errors (`ferrota_manifest::SUB_*`).
            (PalErr::SignatureCheckFailed, 3) => {
                "manifest missing or unreadable (no fileType-142 file, larger than one block, or not the Ferrota SUIT subset)"
            }
            (PalErr::SignatureCheckFailed, 4) => {
                "manifest not signed by a release key of the trusted root"
            }
            (PalErr::SignatureCheckFailed, 5) => {
                "root document chain refused (signatures, threshold, version or key ids)"
            }
            (PalErr::SignatureCheckFailed, 6) => {
                "timestamp missing, unreadable, for another thing, or not signed by a timestamp key"
            }
            (PalErr::SignatureCheckFailed, 7) => "timestamp stale or expired (freeze or replay)",
            (PalErr::SignatureCheckFailed, 8) => "manifest expired",
            (PalErr::SignatureCheckFailed, 9) => {
                "manifest sequence number not newer (replay of an older release)"
            }
            (PalErr::SignatureCheckFailed, 10) => {
                "job document or image disagrees with the manifest (size, digest, CM0+ region or version record)"
            }
            (PalErr::SignatureCheckFailed, 11) => {
                "timestamp names another metadata file (mix-and-match)"
            }
            (PalErr::SignatureCheckFailed, _) => "signature check failed",
            (PalErr::RxFileTooLarge, 1) => "file too small to hold a CM0+ region",
            (PalErr::RxFileTooLarge, _) => "file too large for the bank",
            (PalErr::RxFileCreateFailed, _) => "could not prepare the inactive bank",
            (PalErr::BadSignerCert, _) => "bad code-signing certificate",
            (PalErr::BadImageState, _) => "bad image state",
            (PalErr::ActivateFailed, _) => "activation failed: marker not written",
            (PalErr::CommitFailed, _) => "confirm failed: marker not written",
            (PalErr::RejectFailed, _) => "reject failed: marker not written",
            (PalErr::AbortFailed, _) => "abort failed",
            (PalErr::FileAbort, _) => "download abandoned",
            (PalErr::FileClose, _) => "closing the received file failed",
            (PalErr::OutOfMemory, _) => "out of memory",
            (PalErr::NullFileContext, _) => "no file open",
            (PalErr::Uninitialized, _) => "flash fault: the agent stopped",
            (PalErr::BootInfoCreateFailed, _) => "boot information not written",
        });
    }
    let e = OtaErr::from_code(main)?;
    Some(match (e, sub) {
        (OtaErr::JobParserError, s) => match JobParseErr::from_code(s)? {
            JobParseErr::NonConformingJobDoc => "not an OTA job for this application",
            JobParseErr::ZeroFileSize => "job document names a file of size 0",
            JobParseErr::NullJob => "empty job document",
            JobParseErr::UpdateCurrentJob => "job document updates the current job",
            JobParseErr::BadModelInitParams => "job parser misconfigured",
            JobParseErr::NoContextAvailable => "no free job context",
            JobParseErr::NoActiveJobs => "no active job",
        },
        // #20 slow retrieval: the download ran past the deadline its signed size allows at the
        // configured minimum rate (`TrustConfig::min_rate`), not merely stalled.
        (OtaErr::MomentumAbort, 1) => {
            "download slower than the minimum rate for its signed size (slow retrieval)"
        }
        (OtaErr::RequestFileBlockFailed, _) => {
            "firmware stream unavailable (ResourceNotFound or Unauthorized)"
        }
        (other, _) => ota_err(other)?,
    })
}

fn ota_err(e: OtaErr) -> Option<&'static str> {
    Some(match e {
        OtaErr::None => "no error",
        OtaErr::Uninitialized => "agent not initialised",
        OtaErr::Panic => "agent panic",
        OtaErr::InvalidArg => "invalid argument",
        OtaErr::AgentStopped => "agent stopped",
        OtaErr::SignalEventFailed => "internal event failed",
        OtaErr::RequestJobFailed => "job request failed",
        OtaErr::InitFileTransferFailed => "file transfer could not start",
        OtaErr::RequestFileBlockFailed => "block request failed",
        OtaErr::CleanupControlFailed => "control cleanup failed",
        OtaErr::CleanupDataFailed => "data cleanup failed",
        OtaErr::UpdateJobStatusFailed => "job status update failed",
        OtaErr::JobParserError => "job document not understood",
        OtaErr::InvalidDataProtocol => "no usable data protocol",
        OtaErr::MomentumAbort => "download stalled",
        OtaErr::DowngradeNotAllowed => "version not newer / below the anti-rollback floor",
        OtaErr::SameFirmwareVersion => "same version as the running firmware",
        OtaErr::ImageStateMismatch => "image state mismatch",
        OtaErr::NoActiveJob => "no active job",
        OtaErr::UserAbort => "aborted by the application",
        OtaErr::FailedToEncodeCbor => "CBOR encoding failed",
        OtaErr::FailedToDecodeCbor => "CBOR decoding failed",
        OtaErr::ActivateFailed => "activation failed",
        OtaErr::FileSizeOverflow => "file size overflow",
        OtaErr::EmptyJobDocument => "empty job document",
    })
}

/// `0x` + 8 hex digits (either case: people retype these).
fn hex(s: &str) -> Option<u32> {
    let h = s.trim().strip_prefix("0x")?;
    if h.len() != 8 {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &str) -> Option<&'static str> {
        explain(r).map(|e| e.words)
    }

    #[test]
    fn the_reasons_the_agent_sends_have_words() {
        assert!(
            text("0x000000e3: 0x00000000")
                .unwrap()
                .contains("OTA file signature")
        );
        assert!(
            text("0x000000e3: 0x00000001")
                .unwrap()
                .contains("boot signature")
        );
        assert!(text("rejected: 0x0000000f").unwrap().contains("not newer"));
        assert!(
            text("rejected: 0x00000010")
                .unwrap()
                .contains("same version")
        );
        assert!(
            text("rejected: 0x00000000")
                .unwrap()
                .contains("self-test failed")
        );
        assert!(text("rejected: 0x00000003").unwrap().contains("board"));
        assert!(text("aborted: 0x0000000e").unwrap().contains("stalled"));
        assert!(text("aborted: 0x0000000d").unwrap().contains("protocol"));
        assert!(
            text("0x0000000c: 0x00000004")
                .unwrap()
                .contains("not an OTA job")
        );
        assert!(
            text("0x00000008: 0x00000000")
                .unwrap()
                .contains("stream unavailable")
        );
        assert!(
            text("0x000000e5: 0x00000001")
                .unwrap()
                .contains("too small")
        );
        assert!(
            text("0x000000e5: 0x00000000")
                .unwrap()
                .contains("too large")
        );
        assert!(text("accepted  v1.1.0").unwrap().contains("confirmed"));
    }

    /// The #20 sub-codes, as `ferrota_manifest::SUB_*` numbers them (design §4.2), and the
    /// slow-retrieval abort: each has its own words, distinct from the others and from the
    /// generic signature failure.
    #[test]
    fn the_trust_reasons_have_words() {
        let cases: [(&str, &str); 10] = [
            ("0x000000e3: 0x00000003", "manifest missing"),
            ("0x000000e3: 0x00000004", "release key"),
            ("0x000000e3: 0x00000005", "root document chain"),
            ("0x000000e3: 0x00000006", "timestamp missing"),
            ("0x000000e3: 0x00000007", "stale or expired"),
            ("0x000000e3: 0x00000008", "manifest expired"),
            ("0x000000e3: 0x00000009", "not newer"),
            ("0x000000e3: 0x0000000a", "disagrees with the manifest"),
            ("0x000000e3: 0x0000000b", "mix-and-match"),
            ("0x0000000e: 0x00000001", "minimum rate"),
        ];
        let mut seen: [&str; 10] = [""; 10];
        for (i, (r, want)) in cases.iter().enumerate() {
            let w = text(r).unwrap_or_else(|| panic!("{r} has no words"));
            assert!(w.contains(want), "{r}: {w}");
            assert!(!seen.contains(&w), "{r}: words repeated");
            seen[i] = w;
        }
        // Uppercase hex as people retype it; a sub above 11 stays the generic failure.
        assert!(
            text("0x000000E3: 0x0000000B")
                .unwrap()
                .contains("mix-and-match")
        );
        assert_eq!(
            text("0x000000e3: 0x0000000c"),
            Some("signature check failed")
        );
        // Other subs of the momentum abort keep their meaning.
        assert_eq!(text("0x0000000e: 0x00000000"), Some("download stalled"));
    }

    #[test]
    fn the_display_keeps_the_code_aws_shows_beside_the_words() {
        let e = explain("rejected: 0x0000000f").unwrap();
        let mut buf = [0u8; 128];
        let mut w = crate::write::SliceWriter::new(&mut buf);
        core::fmt::Write::write_fmt(&mut w, format_args!("{e}")).unwrap();
        let s = w.finish();
        assert!(s.starts_with("rejected: 0x0000000f ("), "{s}");
        assert!(s.ends_with(')'), "{s}");
    }

    #[test]
    fn unknown_or_malformed_reasons_are_not_guessed() {
        for r in [
            "",
            "rejected: 0x000000ff",
            "rejected: 15",
            "0x000000e3",
            "0x00000099: 0x00000000",
            "0x0000000c: 0x00000063",
            "something went wrong",
            "rejected: 0x0000000f0",
        ] {
            assert_eq!(explain(r), None, "{r:?}");
        }
    }
}
