//! An in-memory NOR flash that enforces NOR rules, for [`crate::encode::apply`], tests and the
//! fuzz target: the applier is exercised exactly as on the device, and a write that would only
//! work on RAM (unaligned, or onto bytes not erased) is an error here too.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// The flash refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemFlashError(pub NorFlashErrorKind);

impl NorFlashError for MemFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// Byte-readable NOR flash in a `Vec`, `WRITE` bytes per write word (8 on the T2G's code flash),
/// 4 KB erase sectors. A write must be word-aligned and land on erased (0xFF) words only.
#[derive(Debug, Clone)]
pub struct MemFlash<const WRITE: usize = 8> {
    data: Vec<u8>,
    writes: usize,
    bytes_written: usize,
}

impl<const WRITE: usize> MemFlash<WRITE> {
    /// Erase sector size.
    pub const SECTOR: usize = 4096;

    /// An erased flash of at least `len` bytes (rounded up to whole sectors).
    pub fn erased(len: usize) -> Self {
        MemFlash {
            data: vec![0xFF; len.div_ceil(Self::SECTOR).max(1) * Self::SECTOR],
            writes: 0,
            bytes_written: 0,
        }
    }

    /// A flash holding `bytes` (for the old image: only read).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        MemFlash {
            data: bytes.to_vec(),
            writes: 0,
            bytes_written: 0,
        }
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The contents, consumed.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// How many `write` calls succeeded.
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// How many bytes those writes carried.
    pub fn bytes_written(&self) -> usize {
        self.bytes_written
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, MemFlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(start..end),
            _ => Err(MemFlashError(NorFlashErrorKind::OutOfBounds)),
        }
    }
}

impl<const WRITE: usize> ErrorType for MemFlash<WRITE> {
    type Error = MemFlashError;
}

impl<const WRITE: usize> ReadNorFlash for MemFlash<WRITE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const WRITE: usize> NorFlash for MemFlash<WRITE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to {
            return Err(MemFlashError(NorFlashErrorKind::OutOfBounds));
        }
        if !(from as usize).is_multiple_of(Self::SECTOR)
            || !(to as usize).is_multiple_of(Self::SECTOR)
        {
            return Err(MemFlashError(NorFlashErrorKind::NotAligned));
        }
        let r = self.range(from, (to - from) as usize)?;
        self.data[r].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if !(offset as usize).is_multiple_of(WRITE) || !bytes.len().is_multiple_of(WRITE) {
            return Err(MemFlashError(NorFlashErrorKind::NotAligned));
        }
        let r = self.range(offset, bytes.len())?;
        if self.data[r.clone()].iter().any(|&b| b != 0xFF) {
            return Err(MemFlashError(NorFlashErrorKind::Other));
        }
        self.data[r].copy_from_slice(bytes);
        self.writes += 1;
        self.bytes_written += bytes.len();
        Ok(())
    }
}
