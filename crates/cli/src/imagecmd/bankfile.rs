//! Bank image files as the `image` commands read and write them: a raw `.bin` of one bank, or
//! the Intel HEX `image pack -o bank.hex` writes for a debugger; and what a file is when it is
//! not a bank image at all, so `image show` and `--previous` can say so instead of describing
//! noise.

use std::path::Path;

use anyhow::{Result, anyhow};
use ferrota_boot::Bank;
use ferrota_image::input::{self, Format};
use ferrota_image::{BANK_SIZE, inspect, output};
use ferrota_t2g::geometry::CODE_BASE;

use crate::args::{ImageFormat, ImageOutputArgs};
use crate::fsio::{self, Access};

/// Largest bank image file read: a bank as Intel HEX is about 11.5 MB of text.
pub const BANK_FILE_LIMIT: u64 = 32 * 1024 * 1024;

/// The code-flash address of a physical bank in the single-bank view a debugger sees after reset
/// (the same address `t2g program --bank` writes: 0x10000000 lower, 0x103F8000 upper).
pub fn bank_address(bank: Bank) -> u32 {
    CODE_BASE + bank.sbm_offset()
}

/// Where and how a bank image was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The format written.
    pub format: ImageFormat,
    /// Flash address of the first byte (Intel HEX only).
    pub address: Option<u32>,
    /// Bytes in the file.
    pub file_bytes: usize,
}

impl ImageFormat {
    /// Lower-case name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Bin => "bin",
            ImageFormat::Ihex => "ihex",
        }
    }
}

/// The format for `path`: `--format`, else Intel HEX for a name ending in `.hex` (any case),
/// else raw. `--bank` with a raw output is refused: a raw file carries no address, and an
/// option that changes nothing must not be accepted silently.
pub fn output_format(path: &Path, o: &ImageOutputArgs) -> Result<(ImageFormat, Option<u32>)> {
    let by_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hex"));
    let format = o.format.unwrap_or(if by_name {
        ImageFormat::Ihex
    } else {
        ImageFormat::Bin
    });
    match format {
        ImageFormat::Ihex => Ok((format, Some(bank_address(o.bank.unwrap_or(Bank::Lower))))),
        ImageFormat::Bin if o.bank.is_some() => Err(anyhow!(
            "{}: --bank sets the address of Intel HEX output, and a raw .bin carries no address \
             (use a .hex name or --format ihex)",
            path.display()
        )),
        ImageFormat::Bin => Ok((format, None)),
    }
}

/// Writes `bank` to `path` in the chosen format, atomically (an error leaves no file and an
/// existing one untouched).
pub fn write_bank(path: &Path, bank: &[u8], o: &ImageOutputArgs) -> Result<Written> {
    let (format, address) = output_format(path, o)?;
    let bytes = match address {
        Some(a) => output::to_intel_hex(bank, a)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
            .into_bytes(),
        None => bank.to_vec(),
    };
    fsio::write_atomic(path, &bytes, Access::Public, true)?;
    Ok(Written {
        format,
        address,
        file_bytes: bytes.len(),
    })
}

/// A bank image read from a file, and where an Intel HEX one was placed.
#[derive(Debug)]
pub struct BankFile {
    /// The bank's bytes (a malformed or truncated bank is returned as it is).
    pub bytes: Vec<u8>,
    /// The flash address of an Intel HEX bank image; `None` for a raw file.
    pub hex_address: Option<u32>,
}

/// Reads a bank image: raw, or Intel HEX holding one bank at the lower or upper bank's address
/// (what `image pack -o bank.hex` writes). Anything that is not a bank image is an error saying
/// what the file is instead ([`not_a_bank_image`]).
pub fn read_bank_file(path: &Path) -> Result<BankFile> {
    let bytes = fsio::read(path, BANK_FILE_LIMIT)?;
    let name = path.display();
    let file = match input::detect(&bytes) {
        Some(Format::Hex) => {
            let segs = input::read(&bytes, Some(Format::Hex))
                .map_err(|e| anyhow!("{name}: Intel HEX that is not a bank image ({e})"))?;
            let lower = bank_address(Bank::Lower);
            let upper = bank_address(Bank::Upper);
            match segs.as_slice() {
                [s] if (s.address == lower || s.address == upper)
                    && s.data.len() == BANK_SIZE as usize =>
                {
                    BankFile {
                        hex_address: Some(s.address),
                        bytes: segs.into_iter().next().map(|s| s.data).unwrap_or_default(),
                    }
                }
                _ => {
                    return Err(anyhow!(
                        "{name}: Intel HEX that is not one bank image (one run of {BANK_SIZE:#x} \
                         bytes at {lower:#010x} or {upper:#010x}): a core's build or a merged \
                         HEX; `ferrota image pack` or `ferrota image from-merged-hex` make a \
                         bank image from it"
                    ));
                }
            }
        }
        _ => BankFile {
            bytes,
            hex_address: None,
        },
    };
    if let Some(why) = not_a_bank_image(&file.bytes) {
        return Err(anyhow!("{name}: not a bank image: {why}"));
    }
    Ok(file)
}

/// What `bytes` are, when they are not a bank image at all: an empty file, an ELF build, an
/// erased bank (all 0xFF), all zeroes, or data in which no region has a valid CySAF header and
/// there is no version record. A bank image that is merely truncated, unsigned or corrupt in
/// places is still a bank image (`None`): `image show` describes it and says why it would be
/// refused.
pub fn not_a_bank_image(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".into());
    }
    if input::detect(bytes) == Some(Format::Elf) {
        return Some(
            "an ELF file (a core's build); `ferrota image pack` makes a bank image from the \
             cores' builds"
                .into(),
        );
    }
    for fill in [0xFF, 0x00] {
        if bytes.iter().all(|&b| b == fill) {
            return Some(format!(
                "every one of its {:#x} bytes is {fill:#04x}{}",
                bytes.len(),
                if fill == 0xFF {
                    " (an erased bank)"
                } else {
                    ""
                }
            ));
        }
    }
    let s = inspect::inspect(bytes);
    if s.record.is_err() && s.regions.iter().all(|r| r.header_check.is_err()) {
        return Some(
            "no region has a valid CySAF header and there is no version record (random or \
             foreign data?)"
                .into(),
        );
    }
    None
}
