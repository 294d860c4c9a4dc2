//! Verifying a bank: from a byte slice (host tools) or through a flash reader (the bootloader and
//! the OTA agent, which must judge the bytes as they lie in flash, not as they were received).
//!
//! Hashing streams through a caller-supplied scratch buffer, so nothing is allocated and the
//! stack cost is fixed; the result of a successful check is a proof value ([`VerifiedRegion`],
//! [`VerifiedBoot`], [`VerifiedBank`], [`BankVerified`]) that can only be made here, so "no error" can never be
//! mistaken for "verified".

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind, ReadNorFlash};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};
use crate::header::{CySafHeader, HEADER_SIZE};
use crate::layout::{BANK_SIZE, Region};
use crate::ota::{OtaSignature, OtaSignatureError, OtaSignatureValid};
use crate::scheme::{BootVerifier, SLOT, SignatureFault};
use crate::version::{RECORD_AREA, RECORD_OFFSET, VersionRecord};
use p256::ecdsa::VerifyingKey;

/// Proof that a signature was checked. Not constructible outside this crate, neither `Clone`
/// nor `Copy`: a proof is a value the check returned, never one copied from elsewhere.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureValid(());

/// A region whose signature was checked against a boot key. Only this module makes one; the
/// fields are read through accessors so a caller cannot assemble one from parts.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedRegion {
    region: Region,
    header: CySafHeader,
    digest: [u8; 32],
    proof: SignatureValid,
}

impl VerifiedRegion {
    /// Which region.
    #[inline]
    pub fn region(&self) -> Region {
        self.region
    }
    /// Its (checked) header.
    #[inline]
    pub fn header(&self) -> &CySafHeader {
        &self.header
    }
    /// SHA-256 of its signed bytes.
    #[inline]
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
    /// The signature proof.
    #[inline]
    pub fn proof(&self) -> &SignatureValid {
        &self.proof
    }
}

/// What the Dual Bank Manager needs before it maps a bank: the CM0+ region verified and the
/// version record inside its signed bytes decoded. Required by `ferrota_boot::app::confirm`.
///
/// ```compile_fail
/// fn copy(p: &ferrota_image::VerifiedBoot) -> ferrota_image::VerifiedBoot {
///     p.clone()
/// }
/// ```
///
/// Decision: `record` is a public field, read in place, because the Cortex-M0+ DBM that reads it
/// on every boot has no room for what reading it through an accessor cost there (90–170 B
/// with this toolchain, over a 16 KB budget). A public field can be changed by whoever owns the
/// proof, so what a caller is allowed to trust is kept private as well: the security counter
/// that `ferrota_boot::app::confirm` raises the floor to comes from
/// [`VerifiedBoot::security_counter`], a private copy made by the check; the proof itself can
/// still only be made here (the CM0+ region is private) and is neither `Clone` nor `Copy`.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedBoot {
    cm0p: VerifiedRegion,
    /// The version record, trusted because it lies inside the verified bytes (see above).
    pub record: VersionRecord,
    counter: u32,
}

impl VerifiedBoot {
    /// The verified CM0+ region.
    #[inline]
    pub fn cm0p(&self) -> &VerifiedRegion {
        &self.cm0p
    }
    /// The version record, trusted because it lies inside the verified bytes.
    #[inline]
    pub fn record(&self) -> &VersionRecord {
        &self.record
    }
    /// The record's security counter as the check read it (unaffected by changes to
    /// [`VerifiedBoot::record`] since): what a confirm may raise the floor to.
    #[inline]
    pub fn security_counter(&self) -> u32 {
        self.counter
    }
}

/// A whole bank with every region verified.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedBank {
    boot: VerifiedBoot,
    cm7_0: VerifiedRegion,
    cm7_1: VerifiedRegion,
}

impl VerifiedBank {
    /// The CM0+ region and version record.
    #[inline]
    pub fn boot(&self) -> &VerifiedBoot {
        &self.boot
    }
    /// The CM7_0 region.
    #[inline]
    pub fn cm7_0(&self) -> &VerifiedRegion {
        &self.cm7_0
    }
    /// The CM7_1 region.
    #[inline]
    pub fn cm7_1(&self) -> &VerifiedRegion {
        &self.cm7_1
    }
    /// The boot proof, giving up the CM7 regions' (e.g. to confirm the running image).
    pub fn into_boot(self) -> VerifiedBoot {
        self.boot
    }
}

/// Proof that a bank written by an update may be activated: in **one** bank, as its bytes lie in
/// flash, (1) the OTA file signature (AWS's `sig-sha256-ecdsa`, [`crate::ota`]) over the first
/// [`BankVerified::file_len`] bytes checked against the pinned code-signing key, and (2) the
/// boot signature the Dual Bank Manager checks, the CM0+ region with its version record, checked
/// against the boot key. Required by `ferrota_boot::app::request_activation`; only
/// [`verify_written_bank`] makes one, so both checks are bound to the same bytes.
///
/// Decision: the CM7 regions are not part of the proof. The new image's CM0+ stage checks them at
/// its first (trial) boot and records a failure, which reverts the trial
/// (`ferrota_boot::cm0p`); checking them here as well would hash the 3.9 MB CM7_0 region a second
/// time on every update. A caller that wants them checked first uses [`verify_bank_in_flash`].
///
/// Outside this crate a proof can be neither assembled nor copied:
///
/// ```compile_fail
/// fn forge(
///     boot: ferrota_image::VerifiedBoot,
///     ota: ferrota_image::ota::OtaSignatureValid,
/// ) -> ferrota_image::BankVerified {
///     ferrota_image::BankVerified { boot, ota, file_len: 0 }
/// }
/// ```
///
/// ```compile_fail
/// fn copy(p: &ferrota_image::BankVerified) -> ferrota_image::BankVerified {
///     p.clone()
/// }
/// ```
///
/// ```compile_fail
/// fn forge() -> ferrota_image::ota::OtaSignatureValid {
///     ferrota_image::ota::OtaSignatureValid(())
/// }
/// ```
///
/// Decision (#20): the proof also carries the SHA-256 of the file it checked
/// ([`BankVerified::file_digest`]). The OTA check computes it anyway (the ECDSA signature is over
/// it), so keeping it costs 32 bytes and no hashing, and it lets the signed update metadata
/// (`ferrota_manifest::bind`) compare the bytes in flash with the digest a release key signed,
/// without hashing the bank a second time. It is a private field set only by
/// [`verify_written_bank`], from the same digest the signature was checked over.
#[derive(Debug, PartialEq, Eq)]
pub struct BankVerified {
    boot: VerifiedBoot,
    ota: OtaSignatureValid,
    file_len: u32,
    file_digest: [u8; 32],
}

impl BankVerified {
    /// The boot check of the written bank.
    #[inline]
    pub fn boot(&self) -> &VerifiedBoot {
        &self.boot
    }
    /// The written bank's version record.
    #[inline]
    pub fn record(&self) -> &VersionRecord {
        &self.boot.record
    }
    /// The OTA signature proof.
    #[inline]
    pub fn ota(&self) -> &OtaSignatureValid {
        &self.ota
    }
    /// Bytes of the bank the OTA signature covers (the file as streamed).
    #[inline]
    pub fn file_len(&self) -> u32 {
        self.file_len
    }
    /// SHA-256 of the first [`BankVerified::file_len`] bytes of the bank as read back from flash:
    /// the digest the OTA signature was verified over (the file as streamed). A manifest names
    /// the same digest, so binding the two needs no second pass over the bank.
    #[inline]
    pub fn file_digest(&self) -> &[u8; 32] {
        &self.file_digest
    }
}

/// Why [`verify_written_bank`] refused a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrittenBankError {
    /// Reading the bank failed.
    Flash(NorFlashErrorKind),
    /// The OTA file signature does not match the bytes in flash (checked first).
    OtaSignature(OtaSignatureError),
    /// The CM0+ region's boot signature or version record was refused.
    Boot(Error),
}

impl core::fmt::Display for WrittenBankError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WrittenBankError::Flash(k) => write!(f, "reading the bank failed: {k:?}"),
            WrittenBankError::OtaSignature(e) => e.fmt(f),
            WrittenBankError::Boot(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for WrittenBankError {}

/// Checks a bank an update wrote, as it lies in `flash` at `bank_base`: the OTA signature over
/// its first `file_len` bytes with `code_key` first (the file as streamed, read back, not as it
/// was received), then the CM0+ region and version record with `boot_key`. The only way to
/// obtain a [`BankVerified`]. `scratch` is any size (larger reads faster).
pub fn verify_written_bank<F: ReadNorFlash>(
    flash: &mut F,
    bank_base: u32,
    file_len: u32,
    signature: &OtaSignature,
    code_key: &VerifyingKey,
    boot_key: &impl BootVerifier,
    scratch: &mut [u8],
) -> Result<BankVerified, WrittenBankError> {
    let digest =
        digest_flash(flash, bank_base, file_len, scratch).map_err(WrittenBankError::Flash)?;
    let ota = signature
        .verify_digest(code_key, &digest)
        .map_err(WrittenBankError::OtaSignature)?;
    let boot =
        verify_boot_in_flash(flash, bank_base, boot_key, scratch).map_err(|e| match e.kind {
            ErrorKind::Flash(k) => WrittenBankError::Flash(k),
            _ => WrittenBankError::Boot(e),
        })?;
    Ok(BankVerified {
        boot,
        ota,
        file_len,
        file_digest: digest,
    })
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
    Ok(VerifiedBoot {
        cm0p,
        counter: record.security_counter,
        record,
    })
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
