//! File-backed state: the non-volatile contents of a device survive a process restart the way a
//! board's survive a power cycle.
//!
//! # Format, version 1 (all integers little-endian)
//!
//! ```text
//! magic    8 bytes  "FRT2GDEV"
//! version  u32      1
//! length   u64      payload length
//! payload:
//!   op_count u64, clock_ns u64, efuse [128]
//!   for code flash, work flash, SFlash (in that order):
//!     sector_count u32                (must match the geometry)
//!     erase_count  u32 × sector_count
//!     present      u32                (sectors not in the clean erased state)
//!     present × { index u32, bytes[sector size], written bitmap u64 × ceil(words / 64) }
//! crc32    u32      CRC-32 (IEEE) of everything before it
//! ```
//!
//! Erased sectors take no space. The volatile register (FLASH_CTL), the pending power cut and
//! the timing are not saved: loading a file is a power-on. Saving writes a temporary file in the
//! same directory, fsyncs it, renames it over the target and fsyncs the directory, so a crash
//! while saving leaves either the old or the new file. Loading never panics on bad input: every
//! length is checked and every defect is a [`PersistError`].

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::device::Device;
use crate::efuse::Efuse;
use crate::geometry::EFUSE_BYTES;
use crate::nor::{NorArray, SectorData, bitmap_len};
use crate::timing::SimClock;

/// The file magic.
pub const MAGIC: [u8; 8] = *b"FRT2GDEV";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;
/// Files larger than this are refused before being read (the largest valid file is ~8.6 MB).
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// Why a device file could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The file system failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the device magic.
    #[error("not a Ferrota T2G device file (bad magic)")]
    NotADeviceFile,
    /// The file is of another format version.
    #[error("device file format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter than its header says.
    #[error("device file truncated: {found} bytes, {expected} expected")]
    Truncated {
        /// Expected length.
        expected: u64,
        /// Actual length.
        found: u64,
    },
    /// The checksum does not match: the file is corrupted.
    #[error("device file corrupted: CRC {computed:#010x}, stored {stored:#010x}")]
    ChecksumMismatch {
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
    },
    /// The checksum matched but the contents are inconsistent with the geometry.
    #[error("device file malformed: {0}")]
    Malformed(&'static str),
    /// The file is larger than any valid device file.
    #[error("device file too large: {len} bytes")]
    TooLarge {
        /// Its length.
        len: u64,
    },
}

impl Device {
    /// Serialises the non-volatile state (format in the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.power.ops.to_le_bytes());
        p.extend_from_slice(&self.clock.nanos().to_le_bytes());
        p.extend_from_slice(self.efuse.bytes());
        for arr in [&self.code, &self.work, &self.sflash] {
            write_array(&mut p, arr);
        }
        let mut out = Vec::with_capacity(HEADER + p.len() + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&p);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a device file's bytes. Registers are at reset, power on, no cut pending, default
    /// timing.
    pub fn from_bytes(b: &[u8]) -> Result<Device, PersistError> {
        if b.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(b) && !b.is_empty() {
                PersistError::Truncated {
                    expected: HEADER as u64 + 4,
                    found: b.len() as u64,
                }
            } else {
                PersistError::NotADeviceFile
            });
        }
        if b[..8] != MAGIC {
            return Err(PersistError::NotADeviceFile);
        }
        if b.len() < HEADER {
            return Err(PersistError::Truncated {
                expected: HEADER as u64 + 4,
                found: b.len() as u64,
            });
        }
        let mut r = Reader { b: &b[8..HEADER] };
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(PersistError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let len = r.u64()?;
        let expected = (HEADER as u64).saturating_add(len).saturating_add(4);
        if (b.len() as u64) < expected {
            return Err(PersistError::Truncated {
                expected,
                found: b.len() as u64,
            });
        }
        if (b.len() as u64) > expected {
            return Err(PersistError::Malformed("trailing bytes after the checksum"));
        }
        let body = b.len() - 4;
        let stored = u32::from_le_bytes([b[body], b[body + 1], b[body + 2], b[body + 3]]);
        let computed = crc32fast::hash(&b[..body]);
        if stored != computed {
            return Err(PersistError::ChecksumMismatch { stored, computed });
        }
        let mut r = Reader {
            b: &b[HEADER..body],
        };
        let mut d = Device::virgin();
        d.power.ops = r.u64()?;
        d.clock = SimClock::from_nanos(r.u64()?);
        let mut fuses = [0u8; EFUSE_BYTES];
        fuses.copy_from_slice(r.take(EFUSE_BYTES)?);
        d.efuse = Efuse::from_bytes(fuses);
        read_array(&mut r, &mut d.code)?;
        read_array(&mut r, &mut d.work)?;
        read_array(&mut r, &mut d.sflash)?;
        if !r.b.is_empty() {
            return Err(PersistError::Malformed("bytes left after the last array"));
        }
        Ok(d)
    }

    /// Saves the non-volatile state to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), PersistError> {
        let bytes = self.to_bytes();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or(PersistError::Malformed("path has no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // Make the rename durable; not every platform can open a directory.
            if let Ok(d) = fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            PersistError::Io(e)
        })
    }

    /// Loads a device saved by [`Device::save`]: a power-on of that board.
    pub fn load(path: &Path) -> Result<Device, PersistError> {
        let len = fs::metadata(path)?.len();
        if len > MAX_FILE_SIZE {
            return Err(PersistError::TooLarge { len });
        }
        Device::from_bytes(&fs::read(path)?)
    }
}

fn write_array(p: &mut Vec<u8>, arr: &NorArray) {
    let sectors = arr.sectors();
    p.extend_from_slice(&(sectors.len() as u32).to_le_bytes());
    for s in sectors {
        p.extend_from_slice(&s.erase_count.to_le_bytes());
    }
    let present = sectors.iter().filter(|s| s.data.is_some()).count() as u32;
    p.extend_from_slice(&present.to_le_bytes());
    for (i, s) in sectors.iter().enumerate() {
        if let Some(d) = &s.data {
            p.extend_from_slice(&(i as u32).to_le_bytes());
            p.extend_from_slice(&d.bytes);
            for w in d.written.iter() {
                p.extend_from_slice(&w.to_le_bytes());
            }
        }
    }
}

fn read_array(r: &mut Reader<'_>, arr: &mut NorArray) -> Result<(), PersistError> {
    let n = r.u32()? as usize;
    if n != arr.sectors().len() {
        return Err(PersistError::Malformed(
            "sector count does not match the geometry",
        ));
    }
    for i in 0..n {
        arr.sectors_mut()[i].erase_count = r.u32()?;
    }
    let present = r.u32()? as usize;
    if present > n {
        return Err(PersistError::Malformed("more present sectors than sectors"));
    }
    let word = arr.word();
    for _ in 0..present {
        let idx = r.u32()? as usize;
        let s = arr
            .sector_by_index(idx)
            .ok_or(PersistError::Malformed("sector index out of range"))?;
        if arr.sectors()[idx].data.is_some() {
            return Err(PersistError::Malformed("sector stored twice"));
        }
        let bytes: Box<[u8]> = r.take(s.size as usize)?.into();
        let words = s.size / word;
        let mut written = Vec::with_capacity(bitmap_len(s.size, word));
        for k in 0..bitmap_len(s.size, word) {
            let w = r.u64()?;
            let valid = words as usize - k * 64;
            if valid < 64 && w >> valid != 0 {
                return Err(PersistError::Malformed("bitmap bits beyond the sector"));
            }
            written.push(w);
        }
        arr.sectors_mut()[idx].data = Some(Arc::new(SectorData {
            bytes,
            written: written.into_boxed_slice(),
        }));
    }
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PersistError> {
        if self.b.len() < n {
            return Err(PersistError::Malformed("payload ends early"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u32(&mut self) -> Result<u32, PersistError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, PersistError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}
