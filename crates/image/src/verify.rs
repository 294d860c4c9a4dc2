//! Verifying a bank: from a byte slice (host tools) or through a flash reader (the bootloader and
//! the OTA agent, which must judge the bytes as they lie in flash, not as they were received).
//!
//! Hashing streams through a caller-supplied scratch buffer, so nothing is allocated and the
//! stack cost is fixed; the result of a successful check is a proof value ([`VerifiedRegion`],
//! [`VerifiedBoot`], [`VerifiedBank`]) that can only be made here, so "no error" can never be
//! mistaken for "verified".

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind, ReadNorFlash};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};
use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::{BANK_SIZE, Region};
use crate::scheme::{BootVerifier, SLOT, SignatureFault};
use crate::version::{RECORD_AREA, RECORD_OFFSET, VersionRecord};

/// Proof that a signature was checked. Not constructible outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureValid(());

/// A region whose signature was checked against a boot key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRegion {
    /// Which region.
    pub region: Region,
    /// Its (checked) header.
    pub header: CySafHeader,
    /// SHA-256 of its signed bytes.
    pub digest: [u8; 32],
    /// The proof.
    pub proof: SignatureValid,
}

/// What the Dual Bank Manager needs before it maps a bank: the CM0+ region verified and the
/// version record inside its signed bytes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBoot {
    /// The verified CM0+ region.
    pub cm0p: VerifiedRegion,
    /// The version record, trusted because it lies inside the verified bytes.
    pub record: VersionRecord,
}

/// A whole bank with every region verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBank {
    /// The CM0+ region and version record.
    pub boot: VerifiedBoot,
    /// The CM7_0 region.
    pub cm7_0: VerifiedRegion,
    /// The CM7_1 region.
    pub cm7_1: VerifiedRegion,
}

/// Where the bank's bytes come from.
trait Source {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ErrorKind>;
    fn hash(&mut self, offset: u32, len: u32, hasher: &mut Sha256) -> Result<(), ErrorKind>;
}

struct SliceSource<'a>(&'a [u8]);

impl SliceSource<'_> {
    fn range(&self, offset: u32, len: u32) -> Result<core::ops::Range<usize>, ErrorKind> {
        let end = offset as usize + len as usize;
        if end > self.0.len() {
            return Err(ErrorKind::Truncated {
                needed: end as u32,
                available: self.0.len() as u32,
            });
        }
        Ok(offset as usize..end)
    }
}

impl Source for SliceSource<'_> {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let r = self.range(offset, buf.len() as u32)?;
        buf.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn hash(&mut self, offset: u32, len: u32, hasher: &mut Sha256) -> Result<(), ErrorKind> {
        let r = self.range(offset, len)?;
        hasher.update(&self.0[r]);
        Ok(())
    }
}

struct FlashSource<'f, 's, F> {
    flash: &'f mut F,
    base: u32,
    scratch: &'s mut [u8],
}

impl<F: ReadNorFlash> Source for FlashSource<'_, '_, F> {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let at = self
            .base
            .checked_add(offset)
            .ok_or(ErrorKind::Flash(NorFlashErrorKind::OutOfBounds))?;
        self.flash
            .read(at, buf)
            .map_err(|e| ErrorKind::Flash(e.kind()))
    }
    fn hash(&mut self, offset: u32, len: u32, hasher: &mut Sha256) -> Result<(), ErrorKind> {
        let at = self
            .base
            .checked_add(offset)
            .ok_or(ErrorKind::Flash(NorFlashErrorKind::OutOfBounds))?;
        digest_into(self.flash, at, len, self.scratch, hasher).map_err(ErrorKind::Flash)
    }
}

/// Feeds `len` bytes of flash from `offset` into `hasher`, reading through `scratch` (any size;
/// larger is faster). This is how the agent hashes the inactive bank as read back from flash.
pub fn digest_into<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
    scratch: &mut [u8],
    hasher: &mut Sha256,
) -> Result<(), NorFlashErrorKind> {
    let mut fallback = [0u8; 64];
    let buf: &mut [u8] = if scratch.is_empty() {
        &mut fallback
    } else {
        scratch
    };
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32);
        let at = offset
            .checked_add(done)
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        flash
            .read(at, &mut buf[..n as usize])
            .map_err(|e| e.kind())?;
        hasher.update(&buf[..n as usize]);
        done += n;
    }
    Ok(())
}

/// SHA-256 of `len` bytes of flash from `offset`; see [`digest_into`].
pub fn digest_flash<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
    scratch: &mut [u8],
) -> Result<[u8; 32], NorFlashErrorKind> {
    let mut h = Sha256::new();
    digest_into(flash, offset, len, scratch, &mut h)?;
    Ok(h.finalize().into())
}

fn check_region(
    src: &mut impl Source,
    region: Region,
    key: &impl BootVerifier,
    first: &mut [u8; 0x100],
) -> Result<VerifiedRegion, Error> {
    let base = region.offset();
    src.read(base, first)
        .map_err(|k| Error::at(region, base, k))?;
    let mut raw = [0u8; HEADER_SIZE];
    raw.copy_from_slice(&first[..HEADER_SIZE]);
    let header = CySafHeader::parse(region, &raw)?;
    let sig_at = header.signature_offset(region);
    let mut hasher = Sha256::new();
    hasher.update(&first[..]);
    src.hash(base + 0x100, header.obj_size - 0x100, &mut hasher)
        .map_err(|k| Error::at(region, base + 0x100, k))?;
    let digest: [u8; 32] = hasher.finalize().into();
    let mut slot = [0u8; SLOT];
    src.read(sig_at, &mut slot)
        .map_err(|k| Error::at(region, sig_at, k))?;
    key.verify_digest(&digest, &slot).map_err(|f| {
        Error::at(
            region,
            sig_at,
            match f {
                SignatureFault::Unsigned => ErrorKind::Unsigned,
                SignatureFault::Malformed => ErrorKind::MalformedSignature,
                SignatureFault::Mismatch => ErrorKind::SignatureMismatch,
                SignatureFault::Unsupported => ErrorKind::UnsupportedScheme,
            },
        )
    })?;
    Ok(VerifiedRegion {
        region,
        header,
        digest,
        proof: SignatureValid(()),
    })
}

fn check_boot(src: &mut impl Source, key: &impl BootVerifier) -> Result<VerifiedBoot, Error> {
    let mut first = [0u8; 0x100];
    let cm0p = check_region(src, Region::Cm0p, key, &mut first)?;
    let mut area = [0u8; RECORD_AREA];
    area.copy_from_slice(&first[RECORD_OFFSET as usize..]);
    let record = VersionRecord::parse(&area)?;
    Ok(VerifiedBoot { cm0p, record })
}

fn check_bank(src: &mut impl Source, key: &impl BootVerifier) -> Result<VerifiedBank, Error> {
    let boot = check_boot(src, key)?;
    let mut first = [0u8; 0x100];
    let cm7_0 = check_region(src, Region::Cm7_0, key, &mut first)?;
    let cm7_1 = check_region(src, Region::Cm7_1, key, &mut first)?;
    Ok(VerifiedBank { boot, cm7_0, cm7_1 })
}

fn check_len(bank: &[u8]) -> Result<(), Error> {
    if bank.len() > BANK_SIZE as usize {
        return Err(Error::bank(
            BANK_SIZE,
            ErrorKind::TooLong {
                len: u32::try_from(bank.len()).unwrap_or(u32::MAX),
            },
        ));
    }
    Ok(())
}

/// Verifies one region of a bank image held in memory.
pub fn verify_region(
    bank: &[u8],
    region: Region,
    key: &impl BootVerifier,
) -> Result<VerifiedRegion, Error> {
    check_len(bank)?;
    check_region(&mut SliceSource(bank), region, key, &mut [0u8; 0x100])
}

/// Verifies every region of a bank image held in memory, and its version record.
pub fn verify_bank(bank: &[u8], key: &impl BootVerifier) -> Result<VerifiedBank, Error> {
    check_len(bank)?;
    check_bank(&mut SliceSource(bank), key)
}

/// Verifies one region of the bank that starts at `bank_base` in `flash`.
pub fn verify_region_in_flash<F: ReadNorFlash>(
    flash: &mut F,
    bank_base: u32,
    region: Region,
    key: &impl BootVerifier,
    scratch: &mut [u8],
) -> Result<VerifiedRegion, Error> {
    let mut src = FlashSource {
        flash,
        base: bank_base,
        scratch,
    };
    check_region(&mut src, region, key, &mut [0u8; 0x100])
}

/// What the Dual Bank Manager checks before it maps a bank: the CM0+ region's signature and the
/// version record inside it.
pub fn verify_boot_in_flash<F: ReadNorFlash>(
    flash: &mut F,
    bank_base: u32,
    key: &impl BootVerifier,
    scratch: &mut [u8],
) -> Result<VerifiedBoot, Error> {
    let mut src = FlashSource {
        flash,
        base: bank_base,
        scratch,
    };
    check_boot(&mut src, key)
}

/// Verifies every region of the bank that starts at `bank_base` in `flash`.
pub fn verify_bank_in_flash<F: ReadNorFlash>(
    flash: &mut F,
    bank_base: u32,
    key: &impl BootVerifier,
    scratch: &mut [u8],
) -> Result<VerifiedBank, Error> {
    let mut src = FlashSource {
        flash,
        base: bank_base,
        scratch,
    };
    check_bank(&mut src, key)
}
