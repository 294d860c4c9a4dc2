//! The board-inputs block: what the DBM reads from registers and eFuse on the chip.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `FQIN` |
//! | 4 | 4 | life cycle (SROM value, [`ferrota_boot::rom::LifeCycle`]) |
//! | 8 | 4 | USER1 (P5.3) pressed: 1, released: 0 |
//! | 12 | 4 | eFuse anti-rollback counter |
//! | 16 | 32 | eFuse S-HASH |
//! | 48 | 32 | the board's hardware id (ASCII, zero padded; all zero: any board) |
//!
//! Little-endian words, [`SIZE`] bytes.

use ferrota_boot::rom::LifeCycle;
use ferrota_image::HardwareId;

/// Bytes of the block.
pub const SIZE: usize = 80;
/// `FQIN`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FQIN");
/// Offset of the eFuse anti-rollback counter word (the live board's application raises it
/// after a confirm, as the chip's application blows fuses).
pub const EFUSE_FLOOR_AT: usize = 12;

/// The DBM's inputs other than flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardInputs {
    /// Life-cycle stage.
    pub lifecycle: LifeCycle,
    /// USER1 held.
    pub user1: bool,
    /// eFuse anti-rollback counter.
    pub efuse_floor: u32,
    /// eFuse S-HASH.
    pub shash: [u8; 32],
    /// The board's id (`None`: accept any).
    pub hardware: Option<HardwareId>,
}

fn word(b: &[u8; SIZE], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl BoardInputs {
    /// The block's bytes.
    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&(self.lifecycle as u32).to_le_bytes());
        b[8..12].copy_from_slice(&u32::from(self.user1).to_le_bytes());
        b[EFUSE_FLOOR_AT..EFUSE_FLOOR_AT + 4].copy_from_slice(&self.efuse_floor.to_le_bytes());
        b[16..48].copy_from_slice(&self.shash);
        if let Some(h) = &self.hardware {
            let s = h.as_str().as_bytes();
            b[48..48 + s.len()].copy_from_slice(s);
        }
        b
    }

    /// Decodes a block; `None` without the magic or with a malformed id.
    pub fn decode(b: &[u8; SIZE]) -> Option<Self> {
        if word(b, 0) != MAGIC {
            return None;
        }
        let id = &b[48..80];
        let len = id.iter().position(|&c| c == 0).unwrap_or(id.len());
        let hardware = if len == 0 {
            None
        } else {
            Some(HardwareId::new(core::str::from_utf8(&id[..len]).ok()?)?)
        };
        let mut shash = [0u8; 32];
        shash.copy_from_slice(&b[16..48]);
        Some(BoardInputs {
            lifecycle: LifeCycle::from_value(u8::try_from(word(b, 4)).unwrap_or(u8::MAX)),
            user1: word(b, 8) != 0,
            efuse_floor: word(b, EFUSE_FLOOR_AT),
            shash,
            hardware,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let i = BoardInputs {
            lifecycle: LifeCycle::Secure,
            user1: true,
            efuse_floor: 7,
            shash: [0x5A; 32],
            hardware: HardwareId::new("KIT_T2G-B-H_LITE"),
        };
        assert_eq!(BoardInputs::decode(&i.encode()), Some(i));
        let none = BoardInputs {
            hardware: None,
            ..i
        };
        assert_eq!(BoardInputs::decode(&none.encode()), Some(none));
        assert_eq!(BoardInputs::decode(&[0; SIZE]), None);
    }
}
