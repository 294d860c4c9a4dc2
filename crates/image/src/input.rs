//! Reading a core's build (ELF, Intel HEX or raw binary) into [`Segment`]s, and turning
//! ModusToolbox's merged HEX into a bank image the way the seed's `mkbin.pl` does.
//!
//! * **ELF**: every `PT_LOAD` program header with file bytes, placed at its **physical (load)
//!   address `p_paddr`**. For code in flash this equals the virtual address, but for `.data`
//!   the virtual address is in RAM while its initial values are stored in flash at `p_paddr`;
//!   using `p_vaddr` would lose them. `p_memsz` beyond `p_filesz` (`.bss`) is not stored in
//!   flash and is skipped.
//! * **Intel HEX**: data records (00), extended linear (04) and extended segment (02) address
//!   records; start-address records (03, 05) are ignored; reading stops at the end-of-file record
//!   (01), which must be present so a truncated file is noticed. Contiguous records are merged.
//! * **Raw binary**: the bytes at an address the caller gives.
//!
//! Overlapping bytes (two records or segments for the same address) are refused rather than
//! silently letting the later one win. No input makes this module panic: every refusal is an
//! [`InputError`] naming the line, segment or address at fault.

use core::fmt;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

use crate::build::Segment;
use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::{ACTIVE_BANK_BASE, BANK_SIZE, Region, VECTOR_TABLE_OFFSET};
use crate::version::{FLAG_CM7_1_APP, FirmwareVersion, RECORD_AREA, RECORD_OFFSET, VersionRecord};

/// The format of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An ELF executable (32- or 64-bit, either endianness).
    Elf,
    /// Intel HEX text.
    Hex,
    /// A raw binary whose first byte belongs at `address`.
    Raw {
        /// Load address of the first byte.
        address: u32,
    },
}

/// Where in the input a fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A line of a HEX file (1-based).
    Line(usize),
    /// A program header of an ELF file (0-based index).
    ProgramHeader(usize),
    /// The raw binary.
    Raw,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::ProgramHeader(i) => write!(f, "program header {i}"),
            Location::Raw => f.write_str("raw binary"),
        }
    }
}

/// Why a build could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputError {
    /// The content is neither ELF nor Intel HEX, and no address was given for a raw binary.
    UnknownFormat,
    /// The ELF file is malformed (the text is the `object` crate's description).
    Elf(object::read::Error),
    /// An ELF program header's file range lies outside the file.
    ElfSegmentData {
        /// The program header at fault.
        index: usize,
    },
    /// An ELF load address or extent does not fit the 32-bit address space.
    ElfAddress {
        /// The program header at fault.
        index: usize,
        /// Its physical address.
        address: u64,
    },
    /// A HEX file contains a byte that is not ASCII text, at this byte offset.
    HexNotText {
        /// Byte offset of the first non-ASCII byte.
        offset: usize,
    },
    /// A HEX line could not be parsed (syntax, length or checksum).
    HexRecord {
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        error: ihex::ReaderError,
    },
    /// A HEX data record wraps around the end of its 64 KB segment (extended segment addressing).
    HexSegmentWrap {
        /// The line (1-based).
        line: usize,
    },
    /// The HEX file ends without an end-of-file record: it is probably truncated.
    HexMissingEof {
        /// Number of lines read.
        lines: usize,
    },
    /// A record or segment extends past the 4 GB address space.
    AddressOverflow {
        /// Where.
        at: Location,
    },
    /// Two records or segments give bytes for the same address.
    Overlap {
        /// First address given twice.
        address: u32,
        /// The later of the two.
        at: Location,
    },
    /// The build holds no bytes to load.
    NoData,
    /// Merged HEX: data below code flash (0x10000000).
    BelowCodeFlash {
        /// The line (1-based).
        line: usize,
        /// The address.
        address: u32,
    },
    /// Merged HEX: code-flash data beyond the bank (0x103F8000..0x107F0000), which a dual-bank
    /// bank cannot hold.
    OutsideBank {
        /// The line (1-based).
        line: usize,
        /// The first address outside the bank.
        address: u32,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::UnknownFormat => f.write_str(
                "neither ELF (magic 7f 45 4c 46) nor Intel HEX (text starting with ':'); \
                 a raw binary needs its load address (file.bin@0x10010000)",
            ),
            InputError::Elf(e) => write!(f, "malformed ELF: {e}"),
            InputError::ElfSegmentData { index } => write!(
                f,
                "ELF program header {index}: its file range lies outside the file (truncated?)"
            ),
            InputError::ElfAddress { index, address } => write!(
                f,
                "ELF program header {index}: load address {address:#x} does not fit 32 bits"
            ),
            InputError::HexNotText { offset } => {
                write!(f, "Intel HEX: byte offset {offset}: not ASCII text")
            }
            InputError::HexRecord { line, error } => write!(f, "Intel HEX line {line}: {error}"),
            InputError::HexSegmentWrap { line } => write!(
                f,
                "Intel HEX line {line}: data record wraps around its 64 KB segment"
            ),
            InputError::HexMissingEof { lines } => write!(
                f,
                "Intel HEX: no end-of-file record after {lines} lines (is the file truncated?)"
            ),
            InputError::AddressOverflow { at } => {
                write!(f, "{at}: data extends past the 4 GB address space")
            }
            InputError::Overlap { address, at } => write!(
                f,
                "{at}: address {address:#010x} is given data twice (overlapping records)"
            ),
            InputError::NoData => f.write_str("the build holds no bytes to load"),
            InputError::BelowCodeFlash { line, address } => write!(
                f,
                "Intel HEX line {line}: address {address:#010x} is below code flash (0x10000000)"
            ),
            InputError::OutsideBank { line, address } => write!(
                f,
                "Intel HEX line {line}: address {address:#010x} is code flash outside the bank \
                 {:#010x}..{:#010x} (a dual-bank image cannot hold it)",
                ACTIVE_BANK_BASE,
                ACTIVE_BANK_BASE + BANK_SIZE
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// Recognises ELF (by its magic) and Intel HEX (text whose first non-blank character is ':').
pub fn detect(data: &[u8]) -> Option<Format> {
    if data.starts_with(b"\x7fELF") {
        return Some(Format::Elf);
    }
    match data.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b':') => Some(Format::Hex),
        _ => None,
    }
}

/// Reads a build; `format` overrides detection (and is required for raw binaries).
pub fn read(data: &[u8], format: Option<Format>) -> Result<Vec<Segment>, InputError> {
    let segments = match format.or_else(|| detect(data)) {
        Some(Format::Elf) => read_elf(data)?,
        Some(Format::Hex) => read_hex(hex_text(data)?)?,
        Some(Format::Raw { address }) => read_raw(data, address)?,
        None => return Err(InputError::UnknownFormat),
    };
    if segments.iter().all(|s| s.data.is_empty()) {
        return Err(InputError::NoData);
    }
    Ok(segments)
}

/// The input as HEX text, refusing non-ASCII bytes.
pub fn hex_text(data: &[u8]) -> Result<&str, InputError> {
    if let Some(offset) = data.iter().position(|b| !b.is_ascii()) {
        return Err(InputError::HexNotText { offset });
    }
    core::str::from_utf8(data).map_err(|e| InputError::HexNotText {
        offset: e.valid_up_to(),
    })
}

/// A raw binary at `address`.
pub fn read_raw(data: &[u8], address: u32) -> Result<Vec<Segment>, InputError> {
    if u64::from(address) + data.len() as u64 > 1 << 32 {
        return Err(InputError::AddressOverflow { at: Location::Raw });
    }
    Ok(vec![Segment {
        address,
        data: data.to_vec(),
    }])
}

/// The `PT_LOAD` segments of an ELF file at their physical addresses, sorted by address.
pub fn read_elf(data: &[u8]) -> Result<Vec<Segment>, InputError> {
    match object::FileKind::parse(data).map_err(InputError::Elf)? {
        object::FileKind::Elf32 => elf_segments::<elf::FileHeader32<object::Endianness>>(data),
        object::FileKind::Elf64 => elf_segments::<elf::FileHeader64<object::Endianness>>(data),
        _ => Err(InputError::UnknownFormat),
    }
}

fn elf_segments<H: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Result<Vec<Segment>, InputError> {
    let header = H::parse(data).map_err(InputError::Elf)?;
    let endian = header.endian().map_err(InputError::Elf)?;
    let phdrs = header
        .program_headers(endian, data)
        .map_err(InputError::Elf)?;
    let mut located = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let filesz: u64 = ph.p_filesz(endian).into();
        if filesz == 0 {
            continue;
        }
        let paddr: u64 = ph.p_paddr(endian).into();
        let address = u32::try_from(paddr).map_err(|_| InputError::ElfAddress {
            index,
            address: paddr,
        })?;
        let bytes = ph
            .data(endian, data)
            .map_err(|()| InputError::ElfSegmentData { index })?;
        if paddr + bytes.len() as u64 > 1 << 32 {
            return Err(InputError::AddressOverflow {
                at: Location::ProgramHeader(index),
            });
        }
        located.push((
            Location::ProgramHeader(index),
            Segment {
                address,
                data: bytes.to_vec(),
            },
        ));
    }
    merge(located)
}

/// One HEX data record with its absolute address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexRecord {
    /// Line it came from (1-based).
    pub line: usize,
    /// Absolute address of its first byte.
    pub address: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The data records of a HEX file with their absolute addresses, in file order, up to the
/// end-of-file record.
pub fn hex_records(text: &str) -> Result<Vec<HexRecord>, InputError> {
    enum Base {
        Linear(u32),
        Segment(u32),
    }
    let mut base = Base::Linear(0);
    let mut out = Vec::new();
    let mut lines = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        lines = line;
        let rec = raw.trim();
        if rec.is_empty() {
            continue;
        }
        let record = ihex::Record::from_record_string(rec)
            .map_err(|error| InputError::HexRecord { line, error })?;
        match record {
            ihex::Record::Data { offset, value } => {
                let len = value.len() as u64;
                let address = match base {
                    Base::Linear(b) => u64::from(b) + u64::from(offset),
                    Base::Segment(b) => {
                        if u64::from(offset) + len > 0x1_0000 {
                            return Err(InputError::HexSegmentWrap { line });
                        }
                        u64::from(b) + u64::from(offset)
                    }
                };
                if address + len > 1 << 32 {
                    return Err(InputError::AddressOverflow {
                        at: Location::Line(line),
                    });
                }
                out.push(HexRecord {
                    line,
                    address: address as u32,
                    data: value,
                });
            }
            ihex::Record::ExtendedLinearAddress(ula) => base = Base::Linear(u32::from(ula) << 16),
            ihex::Record::ExtendedSegmentAddress(usba) => {
                base = Base::Segment(u32::from(usba) << 4)
            }
            ihex::Record::StartLinearAddress(_) | ihex::Record::StartSegmentAddress { .. } => {}
            ihex::Record::EndOfFile => return Ok(out),
        }
    }
    Err(InputError::HexMissingEof { lines })
}

/// The contents of a HEX file as segments: contiguous records merged, sorted by address.
pub fn read_hex(text: &str) -> Result<Vec<Segment>, InputError> {
    let records = hex_records(text)?;
    merge(
        records
            .into_iter()
            .map(|r| {
                (
                    Location::Line(r.line),
                    Segment {
                        address: r.address,
                        data: r.data,
                    },
                )
            })
            .collect(),
    )
}

/// Sorts located runs by address, refuses overlaps, and merges runs that touch.
fn merge(mut runs: Vec<(Location, Segment)>) -> Result<Vec<Segment>, InputError> {
    runs.retain(|(_, s)| !s.data.is_empty());
    runs.sort_by_key(|(_, s)| s.address);
    let mut out: Vec<Segment> = Vec::new();
    for (at, seg) in runs {
        if let Some(last) = out.last_mut() {
            let end = u64::from(last.address) + last.data.len() as u64;
            let start = u64::from(seg.address);
            if start < end {
                return Err(InputError::Overlap {
                    address: seg.address,
                    at,
                });
            }
            if start == end {
                last.data.extend_from_slice(&seg.data);
                continue;
            }
        }
        out.push(seg);
    }
    Ok(out)
}

/// Start of the code-flash small sectors in the single-bank view (DBM_DEBUG builds put the Dual
/// Bank Manager here).
pub const SMALL_SECTORS: u32 = 0x107F_0000;
/// End of code flash (small sectors included).
pub const CODE_FLASH_END: u32 = 0x1083_0000;
/// Work flash.
pub const WORK_FLASH: u32 = 0x1400_0000;
/// SFlash (Dual Bank Manager, public key, TOC2).
pub const SFLASH: u32 = 0x1700_0000;
/// End of SFlash.
pub const SFLASH_END: u32 = 0x1700_8000;
/// The eFuse programming-file region.
pub const EFUSE: u32 = 0x9070_0000;

/// An area whose records [`merged_hex_to_bank`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DroppedArea {
    /// Code-flash small sectors (0x107F0000..0x10830000): a DBM_DEBUG build's Dual Bank Manager.
    SmallSectors,
    /// Work flash (0x14000000..0x17000000).
    WorkFlash,
    /// SFlash (0x17000000..0x17008000): Dual Bank Manager, public key, TOC2.
    SFlash,
    /// The eFuse region (0x90700000..).
    EFuse,
    /// Any other address above the bank.
    Other,
}

impl DroppedArea {
    /// The area an address (at or above [`SMALL_SECTORS`]) belongs to.
    pub fn of(address: u32) -> Self {
        match address {
            SMALL_SECTORS..CODE_FLASH_END => DroppedArea::SmallSectors,
            WORK_FLASH..SFLASH => DroppedArea::WorkFlash,
            SFLASH..SFLASH_END => DroppedArea::SFlash,
            EFUSE.. => DroppedArea::EFuse,
            _ => DroppedArea::Other,
        }
    }

    /// Short name for messages and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            DroppedArea::SmallSectors => "small-sectors",
            DroppedArea::WorkFlash => "work-flash",
            DroppedArea::SFlash => "sflash",
            DroppedArea::EFuse => "efuse",
            DroppedArea::Other => "other",
        }
    }
}

impl fmt::Display for DroppedArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DroppedArea::SmallSectors => "code-flash small sectors (DBM_DEBUG)",
            DroppedArea::WorkFlash => "work flash",
            DroppedArea::SFlash => "SFlash",
            DroppedArea::EFuse => "eFuse",
            DroppedArea::Other => "other addresses",
        })
    }
}

/// What was dropped from one area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The area.
    pub area: DroppedArea,
    /// Data records dropped.
    pub records: usize,
    /// Bytes dropped.
    pub bytes: u64,
    /// Lowest address dropped.
    pub first_address: u32,
}

/// What [`merged_hex_to_bank`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergedHexReport {
    /// Data records kept.
    pub kept_records: usize,
    /// Bytes kept (the rest of the bank is zero fill).
    pub kept_bytes: u64,
    /// Dropped data, one entry per area, in area order.
    pub dropped: Vec<Dropped>,
}

impl MergedHexReport {
    /// Total bytes dropped.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.iter().map(|d| d.bytes).sum()
    }
}

/// What `mkbin.pl` does to ModusToolbox's merged `app_combined.hex`: keeps the code-flash records
/// of the bank (0x10000000..0x103F8000), drops everything at or above the small sectors
/// (0x107F0000: DBM_DEBUG builds, SFlash, eFuse, ...), fills gaps with 0x00, and returns exactly
/// [`BANK_SIZE`] bytes. Unlike `mkbin.pl` it does not assume the records are sorted: each record is
/// judged by its address. Records below code flash, or in code flash beyond the bank, are errors.
pub fn merged_hex_to_bank(text: &str) -> Result<(Vec<u8>, MergedHexReport), InputError> {
    let records = hex_records(text)?;
    let bank_end = u64::from(ACTIVE_BANK_BASE + BANK_SIZE);
    let mut image = vec![0u8; BANK_SIZE as usize];
    let mut written = vec![false; BANK_SIZE as usize];
    let mut report = MergedHexReport::default();
    for r in records {
        if r.data.is_empty() {
            continue;
        }
        if r.address < ACTIVE_BANK_BASE {
            return Err(InputError::BelowCodeFlash {
                line: r.line,
                address: r.address,
            });
        }
        if r.address >= SMALL_SECTORS {
            let area = DroppedArea::of(r.address);
            let entry = match report.dropped.iter_mut().find(|d| d.area == area) {
                Some(e) => e,
                None => {
                    report.dropped.push(Dropped {
                        area,
                        records: 0,
                        bytes: 0,
                        first_address: r.address,
                    });
                    let last = report.dropped.len() - 1;
                    &mut report.dropped[last]
                }
            };
            entry.records += 1;
            entry.bytes += r.data.len() as u64;
            entry.first_address = entry.first_address.min(r.address);
            continue;
        }
        let end = u64::from(r.address) + r.data.len() as u64;
        if end > bank_end {
            return Err(InputError::OutsideBank {
                line: r.line,
                address: u32::try_from(bank_end.max(u64::from(r.address))).unwrap_or(u32::MAX),
            });
        }
        let at = (r.address - ACTIVE_BANK_BASE) as usize;
        if let Some(i) = written[at..at + r.data.len()].iter().position(|&w| w) {
            return Err(InputError::Overlap {
                address: r.address + i as u32,
                at: Location::Line(r.line),
            });
        }
        image[at..at + r.data.len()].copy_from_slice(&r.data);
        written[at..at + r.data.len()].fill(true);
        report.kept_records += 1;
        report.kept_bytes += r.data.len() as u64;
    }
    report.dropped.sort_by_key(|d| d.area);
    Ok((image, report))
}

/// Why [`write_version_record`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The input is not one bank long.
    BankSize {
        /// Its length.
        len: usize,
    },
    /// The CM0+ region is already signed and the caller will not re-sign it: writing the record
    /// would break that signature.
    Cm0pSigned,
    /// The CM0+ build has data in the record area (and it is not a version record).
    AreaUsed {
        /// Address of the first non-zero byte there.
        address: u32,
    },
    /// A signed region's appId differs from the one the version gives, and the caller will not
    /// re-sign: rewriting it would break that region's signature.
    AppIdSigned {
        /// The region.
        region: Region,
        /// Its appId.
        found: u32,
        /// The appId for the version.
        expected: u32,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::BankSize { len } => {
                write!(f, "image is {len:#x} bytes, not one bank ({BANK_SIZE:#x})")
            }
            RecordError::Cm0pSigned => f.write_str(
                "the CM0+ region is already signed; writing a version record changes its signed \
                 bytes and would break that signature, so every region must be re-signed",
            ),
            RecordError::AreaUsed { address } => write!(
                f,
                "the CM0+ build has data at {address:#010x}, in the version record area \
                 {:#010x}..{:#010x}; leave it zero",
                ACTIVE_BANK_BASE + RECORD_OFFSET,
                ACTIVE_BANK_BASE + VECTOR_TABLE_OFFSET
            ),
            RecordError::AppIdSigned {
                region,
                found,
                expected,
            } => write!(
                f,
                "the {region} region is signed and its CySAF appId {found:#010x} is not the \
                 version's {expected:#010x} (the appId follows the version record, as in \
                 `image pack`); rewriting it would break that signature, so every region must be \
                 re-signed"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Writes a version record into a bank made from a merged HEX (whose CM0+ region the seed's
/// linker left zero at 0x18..0x100), replacing an existing record. Unless `will_resign`, a signed
/// CM0+ region is refused, since the record lies inside its signed bytes. The CM7_1 flag is set
/// when CM7_1's reset vector (vector table at +0x100) is non-zero, as [`crate::build`] sets it
/// when a CM7_1 build is given. Returns the record written.
pub fn write_version_record(
    bank: &mut [u8],
    record: VersionRecord,
    will_resign: bool,
) -> Result<VersionRecord, RecordError> {
    if bank.len() != BANK_SIZE as usize {
        return Err(RecordError::BankSize { len: bank.len() });
    }
    let summary = crate::inspect::inspect(bank);
    if summary.regions[0].signed == Some(true) && !will_resign {
        return Err(RecordError::Cm0pSigned);
    }
    let at = RECORD_OFFSET as usize;
    if summary.record.is_err()
        && let Some(i) = bank[at..at + RECORD_AREA].iter().position(|&b| b != 0)
    {
        return Err(RecordError::AreaUsed {
            address: ACTIVE_BANK_BASE + RECORD_OFFSET + i as u32,
        });
    }
    let reset = (Region::Cm7_1.offset() + VECTOR_TABLE_OFFSET + 4) as usize;
    let mut record = record;
    if bank[reset..reset + 4].iter().any(|&b| b != 0) {
        record.flags |= FLAG_CM7_1_APP;
    } else {
        record.flags &= !FLAG_CM7_1_APP;
    }
    bank[at..at + RECORD_AREA].copy_from_slice(&record.encode());
    Ok(record)
}

/// A region of a merged HEX that the build left empty: every byte of it zero, header included.
/// A two-core ModusToolbox build (CM0+ and CM7_0 only) leaves CM7_1 so.
pub fn region_is_empty(bank: &[u8], region: Region) -> bool {
    bank.get(region.offset() as usize..region.end() as usize)
        .is_some_and(|r| r.iter().all(|&b| b == 0))
}

/// Gives an empty CM7_1 region (see [`region_is_empty`]) the header [`crate::build`] writes for
/// a CM7_1 without a build, so that signing makes it an empty, signed image exactly as
/// `image pack` does. Its appId is derived from `version` like every other header (see
/// [`set_app_ids`]). Returns whether the header was written. CM0+ and CM7_0 are never filled:
/// a bank without them is not firmware, and signing must then fail on their headers.
pub fn fill_empty_cm7_1(bank: &mut [u8], version: FirmwareVersion) -> bool {
    if bank.len() != BANK_SIZE as usize || !region_is_empty(bank, Region::Cm7_1) {
        return false;
    }
    let at = Region::Cm7_1.offset() as usize;
    let header = CySafHeader::for_region(Region::Cm7_1, version);
    bank[at..at + HEADER_SIZE].copy_from_slice(&header.encode());
    true
}

/// The version a merged bank's headers should carry when no version record is written: the
/// existing record's, else the version the seed's build encoded in the CM0+ header's appId
/// ([`crate::header::app_id_cm0p`] is the version word), else 0.0.0.
pub fn bank_version(bank: &[u8]) -> FirmwareVersion {
    let summary = crate::inspect::inspect(bank);
    if let Ok(r) = summary.record {
        return r.version;
    }
    match (&summary.regions[0].header_check, summary.regions[0].header) {
        (Ok(()), Some(h)) => FirmwareVersion(h.app_id),
        _ => FirmwareVersion::default(),
    }
}

/// Sets every region's CySAF appId to what `image pack` writes for `version`
/// ([`CySafHeader::for_region`]), so that `pack` and `from-merged-hex` give the same bytes for
/// the same inputs.
///
/// Decision: the appId follows the version record. The record is what the boot chain trusts
/// and compares; the appId is read by no runtime code, and a build's appId is whatever its
/// `appversion.h` said when it was compiled, which is easily stale. A header that disagrees with
/// the record only misleads whoever reads it, so `image show` flags one.
///
/// The appId lies inside its region's signed bytes: unless `will_resign`, changing the appId of
/// a signed region is refused ([`RecordError::AppIdSigned`]), checked for every region before
/// anything is changed. A region whose header is not valid is left alone (signing reports it).
/// Returns the regions whose appId changed.
pub fn set_app_ids(
    bank: &mut [u8],
    version: FirmwareVersion,
    will_resign: bool,
) -> Result<Vec<Region>, RecordError> {
    if bank.len() != BANK_SIZE as usize {
        return Err(RecordError::BankSize { len: bank.len() });
    }
    let summary = crate::inspect::inspect(bank);
    let mut change = Vec::new();
    for r in &summary.regions {
        let (Ok(()), Some(h)) = (&r.header_check, r.header) else {
            continue;
        };
        let want = CySafHeader::for_region(r.region, version).app_id;
        if h.app_id == want {
            continue;
        }
        if r.signed == Some(true) && !will_resign {
            return Err(RecordError::AppIdSigned {
                region: r.region,
                found: h.app_id,
                expected: want,
            });
        }
        change.push((r.region, want));
    }
    for &(region, want) in &change {
        let at = region.offset() as usize + 4;
        bank[at..at + 4].copy_from_slice(&want.to_le_bytes());
    }
    Ok(change.into_iter().map(|(r, _)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes one record (type, 16-bit offset, payload) with its checksum.
    fn rec(kind: u8, offset: u16, data: &[u8]) -> String {
        let mut bytes = vec![data.len() as u8, (offset >> 8) as u8, offset as u8, kind];
        bytes.extend_from_slice(data);
        let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        bytes.push(sum.wrapping_neg());
        let mut s = String::from(":");
        for b in bytes {
            s.push_str(&format!("{b:02X}"));
        }
        s.push('\n');
        s
    }

    fn ela(upper: u16) -> String {
        rec(4, 0, &upper.to_be_bytes())
    }

    const EOF: &str = ":00000001FF\n";

    #[test]
    fn hex_extended_linear_and_merge() {
        let text = [
            ela(0x1000),
            rec(0, 0x0000, &[1, 2, 3, 4]),
            rec(0, 0x0004, &[5, 6]),
            rec(0, 0x0100, &[7]),
            ela(0x1001),
            rec(0, 0xFFFE, &[8, 9]),
            ela(0x1002),
            rec(0, 0x0000, &[10]),
            rec(5, 0, &0x1000_0101u32.to_be_bytes()),
            EOF.into(),
            rec(0, 0, &[0xEE]), // after EOF: ignored
        ]
        .concat();
        let segs = read(text.as_bytes(), None).unwrap();
        assert_eq!(
            segs,
            vec![
                Segment {
                    address: 0x1000_0000,
                    data: vec![1, 2, 3, 4, 5, 6]
                },
                Segment {
                    address: 0x1000_0100,
                    data: vec![7]
                },
                Segment {
                    address: 0x1001_FFFE,
                    data: vec![8, 9, 10]
                },
            ]
        );
    }

    #[test]
    fn hex_extended_segment_address() {
        let text = [
            rec(2, 0, &0x1000u16.to_be_bytes()),
            rec(0, 0x10, &[0xAA, 0xBB]),
            EOF.into(),
        ]
        .concat();
        let segs = read_hex(&text).unwrap();
        assert_eq!(segs[0].address, 0x1_0010);
        let wrap = [
            rec(2, 0, &0x1000u16.to_be_bytes()),
            rec(0, 0xFFFF, &[1, 2]),
            EOF.into(),
        ]
        .concat();
        assert_eq!(read_hex(&wrap), Err(InputError::HexSegmentWrap { line: 2 }));
    }

    #[test]
    fn hex_malformed_lines_are_named() {
        let mut bad_sum = rec(0, 0, &[1, 2, 3]);
        bad_sum.replace_range(bad_sum.len() - 3..bad_sum.len() - 1, "00");
        let text = [ela(0x1000), bad_sum, EOF.into()].concat();
        let e = read_hex(&text).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::HexRecord {
                    line: 2,
                    error: ihex::ReaderError::ChecksumMismatch(..)
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("line 2"), "{e}");
        for (text, line) in [
            (format!("{}:10zz\n{EOF}", ela(0x1000)), 2),
            (format!("{}:0\n{EOF}", ela(0x1000)), 2),
            (format!("\n\nxyz\n{EOF}"), 3),
            (format!(":0400000000\n{EOF}"), 1), // length says 4, payload missing
        ] {
            match read_hex(&text) {
                Err(InputError::HexRecord { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let no_eof = [ela(0x1000), rec(0, 0, &[1])].concat();
        assert_eq!(
            read_hex(&no_eof),
            Err(InputError::HexMissingEof { lines: 2 })
        );
        let overlap = [
            ela(0x1000),
            rec(0, 0, &[1, 2, 3]),
            rec(0, 2, &[9]),
            EOF.into(),
        ]
        .concat();
        assert_eq!(
            read_hex(&overlap),
            Err(InputError::Overlap {
                address: 0x1000_0002,
                at: Location::Line(3)
            })
        );
        let past_4g = [ela(0xFFFF), rec(0, 0xFFFF, &[1, 2]), EOF.into()].concat();
        assert!(matches!(
            read_hex(&past_4g),
            Err(InputError::AddressOverflow { .. })
        ));
        assert_eq!(
            read("é:".as_bytes(), Some(Format::Hex)),
            Err(InputError::HexNotText { offset: 0 })
        );
        assert_eq!(read(EOF.as_bytes(), None), Err(InputError::NoData));
        assert_eq!(read(b"\x00\x01", None), Err(InputError::UnknownFormat));
    }

    /// A minimal little-endian ELF32 (ARM) with the given program headers
    /// `(p_type, p_vaddr, p_paddr, data, memsz)`.
    fn elf32(phdrs: &[(u32, u32, u32, &[u8], u32)]) -> Vec<u8> {
        let ehsize = 52usize;
        let phsize = 32usize;
        let mut data_off = ehsize + phsize * phdrs.len();
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
        for v in [2u16, 40] {
            out.extend_from_slice(&v.to_le_bytes()); // e_type EXEC, e_machine ARM
        }
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u32.to_le_bytes()); // e_entry
        out.extend_from_slice(&(ehsize as u32).to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        for v in [ehsize as u16, phsize as u16, phdrs.len() as u16, 40, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut blobs = Vec::new();
        for &(ty, vaddr, paddr, bytes, memsz) in phdrs {
            for v in [
                ty,
                data_off as u32,
                vaddr,
                paddr,
                bytes.len() as u32,
                memsz,
                5,
                4,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            data_off += bytes.len();
            blobs.extend_from_slice(bytes);
        }
        out.extend_from_slice(&blobs);
        out
    }

    #[test]
    fn elf_uses_physical_addresses() {
        let elf = elf32(&[
            (elf::PT_LOAD, 0x1001_0000, 0x1001_0000, &[1, 2, 3, 4], 4),
            // .data: runs in RAM (vaddr) but its initial values are stored in flash (paddr).
            (elf::PT_LOAD, 0x2800_0000, 0x1001_0004, &[5, 6], 0x100),
            // .bss only: nothing stored.
            (elf::PT_LOAD, 0x2800_1000, 0x2800_1000, &[], 0x400),
            // not loadable.
            (elf::PT_NOTE, 0x1002_0000, 0x1002_0000, &[9, 9], 2),
            (elf::PT_LOAD, 0x1001_1000, 0x1001_1000, &[7], 1),
        ]);
        assert_eq!(detect(&elf), Some(Format::Elf));
        let segs = read(&elf, None).unwrap();
        assert_eq!(
            segs,
            vec![
                Segment {
                    address: 0x1001_0000,
                    data: vec![1, 2, 3, 4, 5, 6]
                },
                Segment {
                    address: 0x1001_1000,
                    data: vec![7]
                },
            ]
        );
    }

    #[test]
    fn elf_malformed_is_an_error() {
        let elf = elf32(&[(elf::PT_LOAD, 0x1001_0000, 0x1001_0000, &[1, 2, 3, 4], 4)]);
        for cut in [4, 20, 52, 60, elf.len() - 1] {
            assert!(
                read(&elf[..cut], Some(Format::Elf)).is_err(),
                "cut at {cut}"
            );
        }
        let overlap = elf32(&[
            (elf::PT_LOAD, 0x1001_0000, 0x1001_0000, &[1, 2, 3, 4], 4),
            (elf::PT_LOAD, 0x2800_0000, 0x1001_0002, &[5], 4),
        ]);
        assert_eq!(
            read(&overlap, None),
            Err(InputError::Overlap {
                address: 0x1001_0002,
                at: Location::ProgramHeader(1)
            })
        );
    }

    #[test]
    fn raw_needs_an_address() {
        assert_eq!(read(b"\x01\x02", None), Err(InputError::UnknownFormat));
        let segs = read(
            b"\x01\x02",
            Some(Format::Raw {
                address: 0x1001_0000,
            }),
        )
        .unwrap();
        assert_eq!(segs[0].address, 0x1001_0000);
        assert!(read(b"\x01\x02", Some(Format::Raw { address: u32::MAX })).is_err());
    }

    #[test]
    fn mkbin_semantics() {
        let text = [
            ela(0x1000),
            rec(0, 0x0000, &[0xC0; 16]),
            rec(0, 0x0020, &[0xC1; 4]), // gap 0x10..0x20 becomes zeroes
            ela(0x103F),
            rec(0, 0x7FFC, &[0xEE; 4]), // last 4 bytes of the bank
            ela(0x107F),
            rec(0, 0x0000, &[0xDB; 8]), // DBM_DEBUG small sectors: dropped
            ela(0x1700),
            rec(0, 0x0800, &[0x5F; 16]), // SFlash DBM: dropped
            rec(0, 0x6400, &[0x5F; 4]),  // SFlash key: dropped
            ela(0x9070),
            rec(0, 0x0000, &[0xEF; 2]), // eFuse: dropped
            ela(0x1001),
            rec(0, 0x0000, &[0xC7; 2]), // unsorted code-flash record: kept (mkbin.pl would lose it)
            EOF.into(),
        ]
        .concat();
        let (bank, report) = merged_hex_to_bank(&text).unwrap();
        assert_eq!(bank.len(), BANK_SIZE as usize);
        assert_eq!(&bank[..16], &[0xC0; 16]);
        assert_eq!(&bank[16..32], &[0; 16]);
        assert_eq!(&bank[32..36], &[0xC1; 4]);
        assert_eq!(&bank[0x1_0000..0x1_0002], &[0xC7; 2]);
        assert_eq!(&bank[BANK_SIZE as usize - 4..], &[0xEE; 4]);
        assert_eq!(bank.iter().filter(|&&b| b != 0).count(), 16 + 4 + 4 + 2);
        assert_eq!(report.kept_records, 4);
        assert_eq!(report.kept_bytes, 26);
        assert_eq!(report.dropped_bytes(), 8 + 20 + 2);
        let areas: Vec<_> = report
            .dropped
            .iter()
            .map(|d| (d.area, d.records, d.bytes, d.first_address))
            .collect();
        assert_eq!(
            areas,
            vec![
                (DroppedArea::SmallSectors, 1, 8, 0x107F_0000),
                (DroppedArea::SFlash, 2, 20, 0x1700_0800),
                (DroppedArea::EFuse, 1, 2, 0x9070_0000),
            ]
        );
    }

    #[test]
    fn mkbin_refuses_data_it_cannot_place() {
        let below = [ela(0x0800), rec(0, 0, &[1]), EOF.into()].concat();
        assert_eq!(
            merged_hex_to_bank(&below),
            Err(InputError::BelowCodeFlash {
                line: 2,
                address: 0x0800_0000
            })
        );
        let beyond = [
            ela(0x1000),
            rec(0, 0, &[1]),
            ela(0x1040),
            rec(0, 0, &[1]),
            EOF.into(),
        ]
        .concat();
        assert_eq!(
            merged_hex_to_bank(&beyond),
            Err(InputError::OutsideBank {
                line: 4,
                address: 0x1040_0000
            })
        );
        let straddle = [ela(0x103F), rec(0, 0x7FFE, &[1, 2, 3, 4]), EOF.into()].concat();
        let e = merged_hex_to_bank(&straddle).unwrap_err();
        assert_eq!(
            e,
            InputError::OutsideBank {
                line: 2,
                address: 0x103F_8000
            }
        );
        assert!(e.to_string().contains("line 2"));
        let twice = [ela(0x1000), rec(0, 0, &[1, 2]), rec(0, 1, &[3]), EOF.into()].concat();
        assert!(matches!(
            merged_hex_to_bank(&twice),
            Err(InputError::Overlap {
                address: 0x1000_0001,
                ..
            })
        ));
        let truncated = [ela(0x1000), rec(0, 0, &[1, 2])].concat();
        assert!(matches!(
            merged_hex_to_bank(&truncated),
            Err(InputError::HexMissingEof { .. })
        ));
    }

    #[test]
    fn version_record_into_a_merged_bank() {
        use crate::version::{FirmwareVersion, HardwareId};
        let record = VersionRecord {
            version: FirmwareVersion::new(1, 2, 3),
            security_counter: 9,
            hardware: HardwareId::new("B").unwrap(),
            flags: 0,
        };
        let mut bank = vec![0u8; BANK_SIZE as usize];
        // A valid CM0+ header with an empty (unsigned) slot; CM7_1 has a reset vector.
        let h = crate::header::CySafHeader::for_region(Region::Cm0p, FirmwareVersion::default());
        bank[..24].copy_from_slice(&h.encode());
        bank[0x3E8104] = 0x01;
        let written = write_version_record(&mut bank, record, false).unwrap();
        assert_eq!(written.flags, FLAG_CM7_1_APP);
        assert_eq!(crate::inspect::inspect(&bank).record, Ok(written));
        // Replacing a record is fine; a signed CM0+ needs re-signing.
        bank[0xFF00] = 1;
        assert_eq!(
            write_version_record(&mut bank, record, false),
            Err(RecordError::Cm0pSigned)
        );
        bank[0x3E8104] = 0;
        assert_eq!(
            write_version_record(&mut bank, record, true).unwrap().flags,
            0
        );
        // Foreign data in the record area is refused.
        bank[0x18..0x100].fill(0);
        bank[0x40] = 7;
        assert_eq!(
            write_version_record(&mut bank, record, true),
            Err(RecordError::AreaUsed {
                address: 0x1000_0040
            })
        );
        assert!(matches!(
            write_version_record(&mut bank[..10], record, true),
            Err(RecordError::BankSize { len: 10 })
        ));
    }

    #[test]
    fn empty_cm7_1_and_app_ids_follow_the_version() {
        use crate::header::{app_id_cm0p, app_id_cm7};
        let v = FirmwareVersion::new(1, 2, 3);
        let mut bank = vec![0u8; BANK_SIZE as usize];
        for r in [Region::Cm0p, Region::Cm7_0] {
            let h = CySafHeader::for_region(r, FirmwareVersion::new(1, 0, 0));
            let at = r.offset() as usize;
            bank[at..at + HEADER_SIZE].copy_from_slice(&h.encode());
        }
        // Without a record, the version is the one the seed encoded in CM0+'s appId.
        assert_eq!(bank_version(&bank), FirmwareVersion::new(1, 0, 0));
        assert!(region_is_empty(&bank, Region::Cm7_1));
        assert!(fill_empty_cm7_1(&mut bank, v));
        assert!(
            !fill_empty_cm7_1(&mut bank, v),
            "only an empty region is filled"
        );
        let at = Region::Cm7_1.offset() as usize;
        assert_eq!(
            &bank[at..at + HEADER_SIZE],
            &CySafHeader::for_region(Region::Cm7_1, v).encode()
        );
        // CM7_0 signed: its appId may change only when every region is re-signed.
        bank[0x3E_7F00] = 1;
        let before = bank.clone();
        assert_eq!(
            set_app_ids(&mut bank, v, false),
            Err(RecordError::AppIdSigned {
                region: Region::Cm7_0,
                found: app_id_cm7(FirmwareVersion::new(1, 0, 0)),
                expected: app_id_cm7(v),
            })
        );
        assert_eq!(bank, before, "nothing changed on refusal");
        assert_eq!(
            set_app_ids(&mut bank, v, true),
            Ok(vec![Region::Cm0p, Region::Cm7_0])
        );
        assert_eq!(bank[4..8], app_id_cm0p(v).to_le_bytes());
        assert_eq!(bank[0x1_0004..0x1_0008], app_id_cm7(v).to_le_bytes());
        assert_eq!(set_app_ids(&mut bank, v, false), Ok(vec![]));
    }
}
