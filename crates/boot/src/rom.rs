//! The ROM boot's integrity check of SFlash (a model of the part the DBM relies on).
//!
//! In the secure life-cycle stages the T2G ROM computes a hash over SFlash objects and compares
//! it with the S-HASH in eFuse before it starts anything (spec §1.5). Which objects it covers is
//! **\[U\]** in the spec: TOC2 names three (public key, SWPU, TOC2), and whether the DBM code at
//! 0x17000800 is covered is not shown. **Ferrota's choice**: the S-HASH is SHA-256 over the
//! concatenation, in this order, of
//!
//! | object | address | size |
//! |---|---|---|
//! | DBM area (CySAF header, vectors, code, switch routine) | 0x17000800 | 0x800 |
//! | public-key object | 0x17006400 | 0xC00 |
//! | SWPU objects | 0x17007600 | 0x200 |
//! | TOC2 | 0x17007C00 | 0x200 |
//!
//! so replacing the DBM or the key in SFlash makes a secure part refuse to start. In NORMAL and
//! NORMAL_PROVISIONED the check is skipped (as the chip does: TOC2's "validate app" flag is off);
//! a CORRUPTED part never starts. The other stages (VIRGIN, SORT, PROVISIONED, RMA, NORMAL_RMA)
//! are treated like NORMAL — an assumption (\[I\]): none of them runs field firmware.
//!
//! Addresses below are offsets in the SFlash view (0x17000000 = offset 0).

use embedded_storage::nor_flash::{NorFlashErrorKind, ReadNorFlash};
use ferrota_image::verify::digest_into;
use sha2::{Digest, Sha256};

/// Base address of SFlash.
pub const SFLASH_BASE: u32 = 0x1700_0000;

/// The SFlash objects the S-HASH covers, in hashing order: (name, address, size).
pub const SHASH_OBJECTS: [(&str, u32, u32); 4] = [
    ("dbm", 0x1700_0800, 0x800),
    ("public-key", 0x1700_6400, 0xC00),
    ("swpu", 0x1700_7600, 0x200),
    ("toc2", 0x1700_7C00, 0x200),
];

/// Life-cycle stage, with the SROM silicon-ID values (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum LifeCycle {
    Virgin = 0,
    Normal = 1,
    SecureWithDebug = 2,
    Secure = 3,
    Rma = 4,
    Sort = 5,
    Provisioned = 6,
    NormalProvisioned = 7,
    NormalRma = 8,
    Corrupted = 9,
}

impl LifeCycle {
    /// The stage with this numeric value (anything unknown decodes as CORRUPTED).
    pub fn from_value(v: u8) -> LifeCycle {
        use LifeCycle::*;
        match v {
            0 => Virgin,
            1 => Normal,
            2 => SecureWithDebug,
            3 => Secure,
            4 => Rma,
            5 => Sort,
            6 => Provisioned,
            7 => NormalProvisioned,
            8 => NormalRma,
            _ => Corrupted,
        }
    }

    /// Whether the ROM checks the S-HASH in this stage.
    pub fn checks_shash(self) -> bool {
        matches!(self, LifeCycle::Secure | LifeCycle::SecureWithDebug)
    }
}

/// Proof that the S-HASH matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShashValid(());

/// The ROM lets the DBM start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RomOk {
    /// Secure stage: the S-HASH matched.
    Checked(ShashValid),
    /// A non-secure stage: nothing was checked.
    Skipped(LifeCycle),
}

/// The ROM refuses to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RomError {
    /// The SFlash objects do not hash to the eFuse S-HASH.
    ShashMismatch {
        /// What SFlash hashes to.
        computed: [u8; 32],
        /// What eFuse holds.
        expected: [u8; 32],
    },
    /// The life cycle does not decode.
    Corrupted,
    /// SFlash could not be read.
    Flash(NorFlashErrorKind),
}

/// The S-HASH of the SFlash objects ([`SHASH_OBJECTS`]): what provisioning blows into eFuse.
/// `sflash` is the whole SFlash (offset 0 = 0x17000000); `scratch` any size.
pub fn compute_shash<F: ReadNorFlash>(
    sflash: &mut F,
    scratch: &mut [u8],
) -> Result<[u8; 32], NorFlashErrorKind> {
    let mut h = Sha256::new();
    for (_, addr, len) in SHASH_OBJECTS {
        digest_into(sflash, addr - SFLASH_BASE, len, scratch, &mut h)?;
    }
    Ok(h.finalize().into())
}

/// The ROM's decision: may the DBM start?
pub fn check<F: ReadNorFlash>(
    sflash: &mut F,
    lifecycle: LifeCycle,
    efuse_shash: &[u8; 32],
    scratch: &mut [u8],
) -> Result<RomOk, RomError> {
    if lifecycle == LifeCycle::Corrupted {
        return Err(RomError::Corrupted);
    }
    if !lifecycle.checks_shash() {
        return Ok(RomOk::Skipped(lifecycle));
    }
    let computed = compute_shash(sflash, scratch).map_err(RomError::Flash)?;
    // Constant-time enough for a boot check: compare every byte.
    let diff = computed
        .iter()
        .zip(efuse_shash)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(RomError::ShashMismatch {
            computed,
            expected: *efuse_shash,
        });
    }
    Ok(RomOk::Checked(ShashValid(())))
}
