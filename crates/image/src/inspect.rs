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
