//! A description of a bank image that never fails: what `ferrota image show` prints, including
//! for images that would not verify (so users can see *why*).

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};
use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::Region;
use crate::scheme::SLOT;
use crate::version::{RECORD_AREA, RECORD_OFFSET, VersionRecord};

/// What a region's header and signature slot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSummary {
    /// Which region.
    pub region: Region,
    /// The header as decoded, whether or not it is valid; `None` if the image is too short.
    pub header: Option<CySafHeader>,
    /// Whether the header is acceptable for this region.
    pub header_check: Result<(), Error>,
    /// SHA-256 of the signed bytes, when the header is valid and the bytes are present.
    pub digest: Option<[u8; 32]>,
    /// Whether the signature slot holds anything (an all-zero slot is unsigned).
    pub signed: Option<bool>,
}

/// What a bank image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSummary {
    /// Length of the input.
    pub len: usize,
    /// The three regions.
    pub regions: [RegionSummary; 3],
    /// The version record, or why it is missing or invalid.
    pub record: Result<VersionRecord, Error>,
}

fn summarize(bank: &[u8], region: Region) -> RegionSummary {
    let base = region.offset() as usize;
    let Some(raw) = bank.get(base..base + HEADER_SIZE) else {
        return RegionSummary {
            region,
            header: None,
            header_check: Err(Error::at(
                region,
                region.offset(),
                ErrorKind::Truncated {
                    needed: (base + HEADER_SIZE) as u32,
                    available: bank.len() as u32,
                },
            )),
            digest: None,
            signed: None,
        };
    };
    let mut arr = [0u8; HEADER_SIZE];
    arr.copy_from_slice(raw);
    let header = CySafHeader::decode(&arr);
    let header_check = header.check(region);
    let sig_at = header.signature_offset(region) as usize;
    let (digest, signed) = match (
        &header_check,
        bank.get(base..sig_at),
        bank.get(sig_at..sig_at + SLOT),
    ) {
        (Ok(()), Some(signed_bytes), slot) => (
            Some(Sha256::digest(signed_bytes).into()),
            slot.map(|s| s.iter().any(|&b| b != 0)),
        ),
        _ => (None, None),
    };
    RegionSummary {
        region,
        header: Some(header),
        header_check,
        digest,
        signed,
    }
}

impl BankSummary {
    /// Why this is not a bank image the agent can check before it downloads the rest: the
    /// first refusal of the CM0+ region's header (`"CM0+ region"`) or of the version record
    /// (`"version record"`), with its error; `None` when both are sound. One rule for the CLI,
    /// the server and the console, which all refuse a firmware file that fails it.
    pub fn not_a_bank_image(&self) -> Option<(&'static str, Error)> {
        if let Some(Err(e)) = self.regions.first().map(|r| r.header_check) {
            return Some(("CM0+ region", e));
        }
        self.record.err().map(|e| ("version record", e))
    }
}

/// Describes a bank image.
pub fn inspect(bank: &[u8]) -> BankSummary {
    let at = RECORD_OFFSET as usize;
    let record = match bank.get(at..at + RECORD_AREA) {
        Some(area) => {
            let mut a = [0u8; RECORD_AREA];
            a.copy_from_slice(area);
            VersionRecord::parse(&a)
        }
        None => Err(Error::at(
            Region::Cm0p,
            RECORD_OFFSET,
            ErrorKind::Truncated {
                needed: (at + RECORD_AREA) as u32,
                available: bank.len() as u32,
            },
        )),
    };
    BankSummary {
        len: bank.len(),
        regions: Region::ALL.map(|r| summarize(bank, r)),
        record,
    }
}

/// The appId `image pack` writes for this region and the record's version, when the header
/// holds another one (the appId follows the version record; see
/// `ferrota_image::input::set_app_ids`).
pub fn app_id_mismatch(r: &RegionSummary, record: Option<&VersionRecord>) -> Option<u32> {
    let (Ok(()), Some(h), Some(rec)) = (&r.header_check, r.header, record) else {
        return None;
    };
    let want = CySafHeader::for_region(r.region, rec.version).app_id;
    (h.app_id != want).then_some(want)
}

/// Lower-case hex of `bytes`.
#[cfg(feature = "std")]
pub fn hex(bytes: &[u8]) -> std::string::String {
    use std::fmt::Write as _;
    bytes.iter().fold(
        std::string::String::with_capacity(bytes.len() * 2),
        |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        },
    )
}

/// What `ferrota image show` prints for `file`: size, version record, and per region its
/// header, signature slot and digest, with the reasons an image would be refused. One text for
/// the CLI and the operator's console, so a release looks the same in both.
#[cfg(feature = "std")]
pub fn report(file: &str, s: &BankSummary) -> std::string::String {
    use std::fmt::Write as _;
    let mut out = std::string::String::new();
    let size_note = if s.len == crate::layout::BANK_SIZE as usize {
        "one bank".to_string()
    } else {
        std::format!("a bank is {:#x} bytes", crate::layout::BANK_SIZE)
    };
    let _ = writeln!(out, "{file}: {:#x} bytes ({size_note})", s.len);
    match &s.record {
        Ok(r) => {
            let _ = writeln!(
                out,
                "version record: {} (word {:#010x}), security counter {}, hardware {:?}, flags {:#x}{}",
                r.version,
                r.version.0,
                r.security_counter,
                r.hardware.as_str(),
                r.flags,
                if r.flags & crate::version::FLAG_CM7_1_APP != 0 {
                    " (CM7_1 app)"
                } else {
                    ""
                }
            );
        }
        Err(e) => {
            let _ = writeln!(out, "version record: none ({e})");
        }
    }
    for r in &s.regions {
        let _ = writeln!(
            out,
            "{} region at {:#08x}..{:#08x}:",
            r.region,
            r.region.offset(),
            r.region.end()
        );
        match &r.header {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "  header: objSize {:#x}, appId {:#010x}, attributes {:#x}, numCores {}, core0Vt {:#x}, core0Id {:#010x}",
                    h.obj_size, h.app_id, h.attributes, h.num_cores, h.core0_vt, h.core0_id
                );
                if let (Some(want), Ok(rec)) =
                    (app_id_mismatch(r, s.record.as_ref().ok()), &s.record)
                {
                    let _ = writeln!(
                        out,
                        "  warning: appId {:#010x} disagrees with the version record's {} (pack writes {want:#010x} for it): the header names another version than the one the boot chain checks",
                        h.app_id, rec.version
                    );
                }
            }
            None => {
                let _ = writeln!(out, "  header: missing");
            }
        }
        match &r.header_check {
            Ok(()) => {
                let sig_at = r.header.map_or(0, |h| h.signature_offset(r.region));
                let signed = match r.signed {
                    Some(true) => "present",
                    Some(false) => "empty (unsigned)",
                    None => "missing (image truncated)",
                };
                let _ = writeln!(out, "  signature slot at {sig_at:#08x}: {signed}");
            }
            Err(e) => {
                let _ = writeln!(out, "  header refused: {e}");
            }
        }
        if let Some(d) = &r.digest {
            let _ = writeln!(out, "  sha256 of signed bytes: {}", hex(d));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_bank_image_is_named_by_its_first_refusal() {
        let s = inspect(&[0xFF; 64]);
        assert_eq!(
            s.not_a_bank_image().map(|(what, _)| what),
            Some("CM0+ region")
        );
        let mut s = s;
        s.regions[0].header_check = Ok(());
        assert_eq!(
            s.not_a_bank_image().map(|(what, _)| what),
            Some("version record")
        );
    }
}
