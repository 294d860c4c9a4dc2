//! The CySAF ("Cypress Secure Application Format") header at the start of every region.
//!
//! | offset | field | value Ferrota writes |
//! |---|---|---|
//! | +0  | `objSize`: bytes from the region start to the signature | region size − 256 |
//! | +4  | `appId` (read by no runtime code) | see [`app_id_cm0p`] / [`app_id_cm7`] |
//! | +8  | `appAttributes` | 0 |
//! | +12 | `numCores` | 1 |
//! | +16 | `core0Vt`: vector table offset − 16 | 0xF0 |
//! | +20 | `core0Id` | [`Region::core_id`] |
//!
//! All fields are little-endian `u32`. The signed bytes of a region are exactly
//! `[start, start + objSize)` and the signature slot is the 256 bytes after them.

use crate::error::{Error, ErrorKind};
use crate::layout::{Region, SIGNATURE_SLOT_SIZE, VECTOR_TABLE_OFFSET};
use crate::version::FirmwareVersion;

/// Size of the CySAF header.
pub const HEADER_SIZE: usize = 24;

/// The `core0Vt` value that puts the vector table at region + 0x100.
pub const CORE0_VT: u32 = VECTOR_TABLE_OFFSET - 16;

/// The smallest `objSize` accepted: it must sign the header, the version record and the first two
/// vectors (initial SP and reset handler), or a valid signature could start unsigned code.
pub const MIN_OBJ_SIZE: u32 = VECTOR_TABLE_OFFSET + 8;

/// A region's header, as read from flash; [`CySafHeader::parse`] checks it against its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CySafHeader {
    /// Bytes from the region start to the signature slot.
    pub obj_size: u32,
    /// Application id; informational only.
    pub app_id: u32,
    /// Application attributes; 0 in every known image.
    pub attributes: u32,
    /// Number of cores the image starts; always 1.
    pub num_cores: u32,
    /// Vector table offset minus 16.
    pub core0_vt: u32,
    /// CPUID field plus core index of the core that runs the region.
    pub core0_id: u32,
}

impl CySafHeader {
    /// The header Ferrota writes for a region: full-size `objSize`, vector table at +0x100.
    pub fn for_region(region: Region, version: FirmwareVersion) -> Self {
        CySafHeader {
            obj_size: region.full_obj_size(),
            app_id: match region {
                Region::Cm0p => app_id_cm0p(version),
                Region::Cm7_0 | Region::Cm7_1 => app_id_cm7(version),
            },
            attributes: 0,
            num_cores: 1,
            core0_vt: CORE0_VT,
            core0_id: region.core_id(),
        }
    }

    /// Decodes the 24 header bytes without judging them (for `image show` on broken images).
    pub fn decode(bytes: &[u8; HEADER_SIZE]) -> Self {
        let w = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        CySafHeader {
            obj_size: w(0),
            app_id: w(4),
            attributes: w(8),
            num_cores: w(12),
            core0_vt: w(16),
            core0_id: w(20),
        }
    }

    /// Decodes and checks a header for `region`: the signature must lie inside the region, the
    /// vectors must be signed, and the header must name the region's core. These are the checks
    /// the seed's DBM made (signature bound) plus those it lacked (core, vectors).
    pub fn parse(region: Region, bytes: &[u8; HEADER_SIZE]) -> Result<Self, Error> {
        let h = Self::decode(bytes);
        h.check(region)?;
        Ok(h)
    }

    /// Checks a decoded header against its region; errors name the offending field's bank offset.
    pub fn check(&self, region: Region) -> Result<(), Error> {
        let base = region.offset();
        let max = region.size() - SIGNATURE_SLOT_SIZE;
        if self.obj_size > max {
            return Err(Error::at(
                region,
                base,
                ErrorKind::ObjSizeOutsideRegion {
                    obj_size: self.obj_size,
                    max,
                },
            ));
        }
        if self.obj_size < MIN_OBJ_SIZE {
            return Err(Error::at(
                region,
                base,
                ErrorKind::ObjSizeTooSmall {
                    obj_size: self.obj_size,
                    min: MIN_OBJ_SIZE,
                },
            ));
        }
        if self.num_cores != 1 {
            return Err(Error::at(
                region,
                base + 12,
                ErrorKind::WrongCoreCount {
                    found: self.num_cores,
                },
            ));
        }
        if self.core0_vt != CORE0_VT {
            return Err(Error::at(
                region,
                base + 16,
                ErrorKind::WrongVectorOffset {
                    found: self.core0_vt,
                },
            ));
        }
        if self.core0_id != region.core_id() {
            return Err(Error::at(
                region,
                base + 20,
                ErrorKind::WrongCore {
                    expected: region.core_id(),
                    found: self.core0_id,
                },
            ));
        }
        Ok(())
    }

    /// Encodes the header as it lies in flash.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        for (i, w) in [
            self.obj_size,
            self.app_id,
            self.attributes,
            self.num_cores,
            self.core0_vt,
            self.core0_id,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Bank offset of the signature slot of this region.
    pub fn signature_offset(&self, region: Region) -> u32 {
        region.offset() + self.obj_size
    }
}

/// The CM0+ header's appId as the seed encodes it: `major<<24 | minor<<16 | build`.
pub fn app_id_cm0p(v: FirmwareVersion) -> u32 {
    v.0
}

/// The CM7 headers' appId as the seed encodes it: `major<<24 | minor<<20 | build<<16 | 0x8002`
/// (0x8002 = "secure image"); minor and build are truncated to their 4-bit fields there.
pub fn app_id_cm7(v: FirmwareVersion) -> u32 {
    (u32::from(v.major()) << 24)
        | ((u32::from(v.minor()) & 0xF) << 20)
        | ((u32::from(v.build()) & 0xF) << 16)
        | 0x8002
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_app_ids() {
        let v = FirmwareVersion::new(1, 0, 0);
        assert_eq!(app_id_cm0p(v), 0x0100_0000);
        assert_eq!(app_id_cm7(v), 0x0100_8002);
    }

    #[test]
    fn round_trip_and_checks() {
        for r in Region::ALL {
            let h = CySafHeader::for_region(r, FirmwareVersion::new(2, 1, 7));
            assert_eq!(CySafHeader::parse(r, &h.encode()), Ok(h));
        }
        let h = CySafHeader::for_region(Region::Cm7_1, FirmwareVersion::new(1, 0, 0));
        let e = CySafHeader::parse(Region::Cm7_0, &h.encode()).unwrap_err();
        assert_eq!(e.region, Some(Region::Cm7_0));
        assert_eq!(e.offset, 0x10014);
        assert!(matches!(e.kind, ErrorKind::WrongCore { .. }));
        let mut big = h;
        big.obj_size = u32::MAX;
        let e = CySafHeader::parse(Region::Cm7_1, &big.encode()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::ObjSizeOutsideRegion { .. }));
        let mut edge = h;
        edge.obj_size = Region::Cm7_1.size() - SIGNATURE_SLOT_SIZE + 1;
        assert!(CySafHeader::parse(Region::Cm7_1, &edge.encode()).is_err());
        edge.obj_size = MIN_OBJ_SIZE - 1;
        let e = CySafHeader::parse(Region::Cm7_1, &edge.encode()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::ObjSizeTooSmall { .. }));
    }
}
