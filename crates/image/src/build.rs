//! Building a signed bank image from the three cores' builds (what the seed's linker scripts,
//! `cymcuelftool --sign` and `mkbin.pl` do together).
//!
//! The builds are linked at their final addresses in the active bank (0x10000000 + region
//! offset), as ModusToolbox links them. The builder places their bytes, zero-fills the rest (the
//! seed's linkers use `FILL(0)` and objcopy gap-fills with 0), then writes each region's CySAF
//! header (replacing whatever header the build carried, so `objSize` and `core0Id` are always
//! right), the version record, and every region's boot signature — CM7_1 included, even when no
//! CM7_1 build is given (its region is then an empty, signed image).

use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::{ACTIVE_BANK_BASE, BANK_SIZE, Region};
use crate::scheme::SLOT;
use crate::sign::{BootSigningKey, SignError, region_signature};
use crate::version::{FLAG_CM7_1_APP, RECORD_OFFSET, VersionRecord};

/// A run of bytes at an absolute load address, as an ELF program header, a HEX record run or a
/// raw binary describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Load address (LMA) of the first byte.
    pub address: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why a bank image could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A segment's bytes fall outside the region given for them (or in its signature slot).
    OutsideRegion {
        /// The region the build was given for.
        region: Region,
        /// First address outside it.
        address: u32,
    },
    /// The CM0+ build has data where the version record goes (bank offset 0x18..0x100).
    RecordAreaUsed {
        /// Address of the first non-zero byte there.
        address: u32,
    },
    /// The same region was given twice.
    Duplicate(Region),
    /// A required build (CM0+ or CM7_0) is missing.
    Missing(Region),
    /// Signing failed.
    Sign(SignError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::OutsideRegion { region, address } => write!(
                f,
                "{region} build has data at {address:#010x}, outside its region {:#010x}..{:#010x} (the last 256 bytes are the signature slot)",
                ACTIVE_BANK_BASE + region.offset(),
                ACTIVE_BANK_BASE + region.offset() + region.full_obj_size()
            ),
            BuildError::RecordAreaUsed { address } => write!(
                f,
                "CM0+ build has data at {address:#010x}, inside the version record area {:#010x}..{:#010x}; leave it zero (as the seed's linker does)",
                ACTIVE_BANK_BASE + RECORD_OFFSET,
                ACTIVE_BANK_BASE + 0x100
            ),
            BuildError::Duplicate(r) => write!(f, "{r} build given twice"),
            BuildError::Missing(r) => write!(f, "{r} build is required"),
            BuildError::Sign(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

/// Assembles a bank image; see the module docs.
#[derive(Debug, Clone)]
pub struct BankBuilder {
    image: Vec<u8>,
    given: [bool; 3],
    record: VersionRecord,
}

impl BankBuilder {
    /// An empty, zero-filled bank that will carry `record` (its CM7_1 flag is set by the builder).
    pub fn new(record: VersionRecord) -> Self {
        BankBuilder {
            image: vec![0; BANK_SIZE as usize],
            given: [false; 3],
            record,
        }
    }

    /// Places one core's build. Every byte must lie in the region's signed area; a CM0+ build
    /// must leave the version record area zero. On error nothing is placed.
    pub fn add(&mut self, region: Region, segments: &[Segment]) -> Result<&mut Self, BuildError> {
        let idx = region as usize;
        if self.given[idx] {
            return Err(BuildError::Duplicate(region));
        }
        let lo = u64::from(ACTIVE_BANK_BASE + region.offset());
        let hi = lo + u64::from(region.full_obj_size());
        for s in segments {
            let start = u64::from(s.address);
            let end = start + s.data.len() as u64;
            if s.data.is_empty() {
                continue;
            }
            if start < lo || end > hi {
                let address = if start < lo {
                    s.address
                } else {
                    hi.max(start) as u32
                };
                return Err(BuildError::OutsideRegion { region, address });
            }
            if region == Region::Cm0p {
                let rec_lo = lo + u64::from(RECORD_OFFSET);
                let rec_hi = lo + 0x100;
                for (i, &b) in s.data.iter().enumerate() {
                    let a = start + i as u64;
                    if a >= rec_lo && a < rec_hi && b != 0 {
                        return Err(BuildError::RecordAreaUsed { address: a as u32 });
                    }
                }
            }
        }
        for s in segments {
            let at = (s.address - ACTIVE_BANK_BASE) as usize;
            self.image[at..at + s.data.len()].copy_from_slice(&s.data);
        }
        self.given[idx] = true;
        Ok(self)
    }

    /// Writes the headers and version record, signs every region, and returns the bank image.
    pub fn finish(mut self, key: &BootSigningKey) -> Result<Vec<u8>, BuildError> {
        for r in [Region::Cm0p, Region::Cm7_0] {
            if !self.given[r as usize] {
                return Err(BuildError::Missing(r));
            }
        }
        let mut record = self.record;
        if self.given[Region::Cm7_1 as usize] {
            record.flags |= FLAG_CM7_1_APP;
        } else {
            record.flags &= !FLAG_CM7_1_APP;
        }
        let rec = record.encode();
        let at = RECORD_OFFSET as usize;
        self.image[at..at + rec.len()].copy_from_slice(&rec);
        for region in Region::ALL {
            let header = CySafHeader::for_region(region, record.version);
            let base = region.offset() as usize;
            self.image[base..base + HEADER_SIZE].copy_from_slice(&header.encode());
            let sig_at = header.signature_offset(region) as usize;
            let slot =
                region_signature(&self.image, region, &header, key).map_err(BuildError::Sign)?;
            self.image[sig_at..sig_at + SLOT].copy_from_slice(&slot);
        }
        Ok(self.image)
    }
}

/// Seeded pseudo-random bytes (xorshift64) standing in for code: images built from them do
/// not compress and differ per seed, so tests, the demo and benchmarks move real data.
pub fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A stand-in build for `region`, as a linker would place it: the vector table (initial SP,
/// reset vector) at +0x100 and `code_len` bytes of [`sample_bytes`] (seeded by the region's
/// offset + `seed`) from there. `code_len` must be at least 8.
pub fn sample_build(region: Region, code_len: usize, seed: u64) -> Vec<Segment> {
    let base = ACTIVE_BANK_BASE + region.offset();
    let mut code = sample_bytes(u64::from(region.offset()) + seed, code_len.max(8));
    code[..4].copy_from_slice(&0x2802_0000u32.to_le_bytes());
    code[4..8].copy_from_slice(&(base + 0x201).to_le_bytes());
    vec![Segment {
        address: base + 0x100,
        data: code,
    }]
}

/// A bank whose every region is filled to its full signed size with [`sample_build`] code,
/// signed with `key`: boot verification then hashes all 4,161,536 bytes and nothing
/// compresses or short-circuits. Benchmarks (`verify_bank`, `ferrota bench verify`) measure
/// on it.
pub fn filled_bank(
    record: VersionRecord,
    key: &BootSigningKey,
    seed: u64,
) -> Result<Vec<u8>, BuildError> {
    let mut b = BankBuilder::new(record);
    for region in Region::ALL {
        let len = (region.full_obj_size() - 0x100) as usize;
        b.add(region, &sample_build(region, len, seed))?;
    }
    b.finish(key)
}
