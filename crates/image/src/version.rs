//! The version record: what the bootloader must know about an image before it runs it.
//!
//! The seed compared versions only after the new image had booted (in the OTA self-test), so a
//! signed old image could always be reinstalled. Ferrota puts a record inside the CM0+ region's
//! signed bytes, between the CySAF header and the vector table (bank offsets 0x18..0x100, zero in
//! the seed), so the Dual Bank Manager can trust it and enforce an anti-rollback floor.
//!
//! Byte layout (little-endian; offsets from the bank start):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0x18 | 4  | magic `"FRVR"` (0x52565246) |
//! | 0x1C | 2  | format, 1 |
//! | 0x1E | 2  | length of the record in bytes, 0x34 for format 1 |
//! | 0x20 | 4  | firmware version: `major<<24 \| minor<<16 \| build` (the seed's `appversion.h`) |
//! | 0x24 | 4  | anti-rollback security counter |
//! | 0x28 | 4  | flags (bit 0: CM7_1 holds an application to start; other bits must be 0) |
//! | 0x2C | 32 | hardware id: printable ASCII, NUL-padded; empty means "any board" |
//! | 0x4C | 0xB4 | reserved, must be zero (so a later format can use them detectably) |
//!
//! The firmware version orders releases; the security counter is what the floor compares. They are
//! separate so that a release can be published without revoking its predecessor (counter unchanged)
//! and a vulnerable release can be revoked without renumbering (counter raised).

use core::fmt;

use crate::error::{Error, ErrorKind};
use crate::layout::Region;

/// Bank offset of the version record.
pub const RECORD_OFFSET: u32 = 0x18;
/// Bytes between the record start and the vector table that the record may occupy.
pub const RECORD_AREA: usize = 0x100 - 0x18;
/// `"FRVR"` read as a little-endian word.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FRVR");
/// The format this code writes and reads.
pub const FORMAT: u16 = 1;
/// Length of a format-1 record.
pub const LENGTH_V1: u16 = 0x34;
/// Flag: the CM7_1 region holds an application the CM0+ stage should start.
pub const FLAG_CM7_1_APP: u32 = 1 << 0;
/// Every flag bit format 1 defines.
pub const KNOWN_FLAGS: u32 = FLAG_CM7_1_APP;
/// Longest hardware id.
pub const HARDWARE_ID_LEN: usize = 32;

/// A firmware version as the seed packs it: major in bits 31:24, minor in 23:16, build in 15:0.
/// Ordering compares the packed word, which is the release order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FirmwareVersion(pub u32);

impl FirmwareVersion {
    /// Packs a version.
    pub const fn new(major: u8, minor: u8, build: u16) -> Self {
        FirmwareVersion(((major as u32) << 24) | ((minor as u32) << 16) | build as u32)
    }
    /// Major number.
    pub const fn major(self) -> u8 {
        (self.0 >> 24) as u8
    }
    /// Minor number.
    pub const fn minor(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// Build number.
    pub const fn build(self) -> u16 {
        self.0 as u16
    }

    /// Parses `major.minor.build` (each part decimal, within its field), as users write versions.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse::<u8>().ok()?;
        let minor = parts.next()?.parse::<u8>().ok()?;
        let build = parts.next()?.parse::<u16>().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(major, minor, build))
    }
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major(), self.minor(), self.build())
    }
}

/// A board identifier carried in the version record, so an image for one board is not installed
/// on another. Stored NUL-padded in 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HardwareId {
    bytes: [u8; HARDWARE_ID_LEN],
    len: u8,
}

impl HardwareId {
    /// A hardware id from printable ASCII (0x21..=0x7E), at most 32 bytes; `None` otherwise.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() > HARDWARE_ID_LEN || !b.iter().all(|c| (0x21..=0x7E).contains(c)) {
            return None;
        }
        let mut bytes = [0u8; HARDWARE_ID_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Some(HardwareId {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The id as text; empty means the image does not restrict the board.
    pub fn as_str(&self) -> &str {
        // Constructed only from printable ASCII, so this cannot fail; fall back to "" regardless.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    fn decode(raw: &[u8; HARDWARE_ID_LEN]) -> Option<Self> {
        let len = raw.iter().position(|&c| c == 0).unwrap_or(HARDWARE_ID_LEN);
        if raw[len..].iter().any(|&c| c != 0) {
            return None;
        }
        Self::new(core::str::from_utf8(&raw[..len]).ok()?)
    }
}

impl fmt::Debug for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The decoded version record of a bank image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionRecord {
    /// Release version, compared against the OTA job and the running firmware.
    pub version: FirmwareVersion,
    /// Anti-rollback counter: the DBM refuses an image whose counter is below the floor.
    pub security_counter: u32,
    /// The board this image is for.
    pub hardware: HardwareId,
    /// Flag bits (`FLAG_*`).
    pub flags: u32,
}

impl VersionRecord {
    /// Encodes the record into the 0xE8 bytes between the CySAF header and the vector table.
    pub fn encode(&self) -> [u8; RECORD_AREA] {
        let mut out = [0u8; RECORD_AREA];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&FORMAT.to_le_bytes());
        out[6..8].copy_from_slice(&LENGTH_V1.to_le_bytes());
        out[8..12].copy_from_slice(&self.version.0.to_le_bytes());
        out[12..16].copy_from_slice(&self.security_counter.to_le_bytes());
        out[16..20].copy_from_slice(&self.flags.to_le_bytes());
        out[20..52].copy_from_slice(&self.hardware.bytes);
        out
    }

    /// Decodes and checks the record from the bytes at bank offsets 0x18..0x100. Errors name the
    /// bank offset of the field at fault.
    pub fn parse(area: &[u8; RECORD_AREA]) -> Result<Self, Error> {
        let at = |rel: usize, kind| Error::at(Region::Cm0p, RECORD_OFFSET + rel as u32, kind);
        let w = |i: usize| u32::from_le_bytes([area[i], area[i + 1], area[i + 2], area[i + 3]]);
        let magic = w(0);
        if magic != MAGIC {
            return Err(at(0, ErrorKind::VersionMissing { found: magic }));
        }
        let format = u16::from_le_bytes([area[4], area[5]]);
        if format != FORMAT {
            return Err(at(4, ErrorKind::VersionFormat { found: format }));
        }
        let length = u16::from_le_bytes([area[6], area[7]]);
        if length != LENGTH_V1 {
            return Err(at(6, ErrorKind::VersionLength { found: length }));
        }
        let flags = w(16);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(at(
                16,
                ErrorKind::VersionFlags {
                    unknown: flags & !KNOWN_FLAGS,
                },
            ));
        }
        let mut raw = [0u8; HARDWARE_ID_LEN];
        raw.copy_from_slice(&area[20..52]);
        let hardware = HardwareId::decode(&raw).ok_or_else(|| at(20, ErrorKind::HardwareId))?;
        if let Some(i) = area[usize::from(LENGTH_V1)..].iter().position(|&b| b != 0) {
            return Err(at(usize::from(LENGTH_V1) + i, ErrorKind::ReservedNotZero));
        }
        Ok(VersionRecord {
            version: FirmwareVersion(w(8)),
            security_counter: w(12),
            hardware,
            flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> VersionRecord {
        VersionRecord {
            version: FirmwareVersion::new(2, 3, 513),
            security_counter: 7,
            hardware: HardwareId::new("KIT_T2G-B-H_LITE").unwrap(),
            flags: FLAG_CM7_1_APP,
        }
    }

    #[test]
    fn round_trip() {
        let r = record();
        assert_eq!(VersionRecord::parse(&r.encode()), Ok(r));
        assert_eq!(r.version.0, 0x0203_0201);
        assert_eq!(r.version.to_string(), "2.3.513");
    }

    #[test]
    fn seed_zeroes_are_a_missing_record() {
        let e = VersionRecord::parse(&[0; RECORD_AREA]).unwrap_err();
        assert_eq!(e.offset, 0x18);
        assert_eq!(e.kind, ErrorKind::VersionMissing { found: 0 });
    }

    #[test]
    fn every_bad_field_is_named() {
        let good = record().encode();
        let cases: [(usize, u8, u32); 5] = [
            (4, 2, 0x1C),     // format
            (6, 0x40, 0x1E),  // length
            (19, 0x80, 0x28), // unknown flag
            (20, 0x01, 0x2C), // non-printable hardware id
            (0xE7, 1, 0xFF),  // reserved tail
        ];
        for (i, v, offset) in cases {
            let mut bad = good;
            bad[i] = v;
            let e = VersionRecord::parse(&bad).unwrap_err();
            assert_eq!(e.offset, offset, "byte {i}: {e}");
        }
        let mut gap = good;
        gap[20 + 16] = 0;
        gap[20 + 20] = b'X'; // text after the NUL padding
        assert_eq!(
            VersionRecord::parse(&gap).unwrap_err().kind,
            ErrorKind::HardwareId
        );
    }

    #[test]
    fn version_text() {
        assert_eq!(
            FirmwareVersion::parse("1.2.3"),
            Some(FirmwareVersion::new(1, 2, 3))
        );
        assert_eq!(
            FirmwareVersion::parse("v255.255.65535"),
            Some(FirmwareVersion(u32::MAX))
        );
        for bad in ["1.2", "1.2.3.4", "256.0.0", "1.2.x", ""] {
            assert_eq!(FirmwareVersion::parse(bad), None, "{bad}");
        }
        assert!(FirmwareVersion::new(1, 10, 0) > FirmwareVersion::new(1, 9, 900));
        assert!(HardwareId::new(&"x".repeat(33)).is_none());
        assert!(HardwareId::new("a b").is_none());
        assert_eq!(HardwareId::new("").unwrap().as_str(), "");
    }
}
