//! eFuse: 1024 one-time bits holding the life-cycle stage, S-HASH, the boot-key revocation bits
//! and the anti-rollback counter.
//!
//! A bit can only be blown (0 → 1); nothing returns it to 0. Each blown bit is one operation
//! (the SROM's BlowFuseBit works bit by bit), so a power cut can fall between the bits of a
//! field. The layout (geometry decision 5) is ours: the real fuse map was not available.
//!
//! # Life cycle
//!
//! Each stage other than VIRGIN has one bit. The stage is found by walking from VIRGIN along the
//! allowed transitions whose bit is blown; two blown successors, or a blown bit off that path,
//! decode as CORRUPTED. Allowed transitions (one bit each, forward only):
//!
//! ```text
//! VIRGIN ──▶ SORT ──▶ PROVISIONED ──▶ NORMAL_PROVISIONED ─┬─▶ SECURE ──────────▶ RMA
//!    │                                                    ├─▶ SECURE_WITH_DEBUG ─▶ RMA
//!    └────▶ NORMAL ─────────────── (same three) ──────────┴─▶ NORMAL_RMA
//! ```
//!
//! SECURE_WITH_DEBUG → SECURE is *not* allowed (a part chooses one secure flavour), and RMA,
//! NORMAL_RMA and CORRUPTED are terminal. The common path of a board as shipped
//! (NORMAL_PROVISIONED) to SECURE is one transition.

use crate::device::Device;
use crate::error::{EfuseError, Error};
use crate::geometry::*;
use crate::power::OpMode;

/// Life-cycle stage, with the numeric values of the SROM silicon-ID response (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LifeCycle {
    /// 0: no fuse blown.
    Virgin = 0,
    /// 1: normal, not provisioned by the factory flow.
    Normal = 1,
    /// 2: secure, with debug access.
    SecureWithDebug = 2,
    /// 3: secure.
    Secure = 3,
    /// 4: returned for analysis after a secure stage.
    Rma = 4,
    /// 5: factory sort.
    Sort = 5,
    /// 6: factory provisioned.
    Provisioned = 6,
    /// 7: the stage boards ship in, which the seed assumes.
    NormalProvisioned = 7,
    /// 8: returned for analysis from a normal stage.
    NormalRma = 8,
    /// 9: the fuses do not decode to a stage.
    Corrupted = 9,
}

impl LifeCycle {
    /// The numeric value.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The stage with this numeric value.
    pub fn from_value(v: u8) -> Option<Self> {
        use LifeCycle::*;
        [
            Virgin,
            Normal,
            SecureWithDebug,
            Secure,
            Rma,
            Sort,
            Provisioned,
            NormalProvisioned,
            NormalRma,
            Corrupted,
        ]
        .get(usize::from(v))
        .copied()
    }

    /// The stages reachable from this one in a single transition.
    pub fn next_stages(self) -> &'static [LifeCycle] {
        use LifeCycle::*;
        match self {
            Virgin => &[Normal, Sort],
            Sort => &[Provisioned],
            Provisioned => &[NormalProvisioned],
            Normal | NormalProvisioned => &[SecureWithDebug, Secure, NormalRma],
            SecureWithDebug | Secure => &[Rma],
            Rma | NormalRma | Corrupted => &[],
        }
    }

    /// Whether this is a secure stage (SFlash write-protected, S-HASH locked).
    pub fn is_secure(self) -> bool {
        matches!(self, LifeCycle::Secure | LifeCycle::SecureWithDebug)
    }

    fn bit(self) -> Option<u32> {
        use LifeCycle::*;
        Some(match self {
            Normal => LC_BIT_NORMAL,
            Sort => LC_BIT_SORT,
            Provisioned => LC_BIT_PROVISIONED,
            NormalProvisioned => LC_BIT_NORMAL_PROVISIONED,
            SecureWithDebug => LC_BIT_SECURE_WITH_DEBUG,
            Secure => LC_BIT_SECURE,
            NormalRma => LC_BIT_NORMAL_RMA,
            Rma => LC_BIT_RMA,
            Virgin | Corrupted => return None,
        })
    }
}

/// The eFuse array (blown = 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Efuse {
    bits: [u8; EFUSE_BYTES],
}

impl Default for Efuse {
    fn default() -> Self {
        Efuse {
            bits: [0; EFUSE_BYTES],
        }
    }
}

impl Efuse {
    /// An array with these raw contents (used when loading a device file).
    pub fn from_bytes(bits: [u8; EFUSE_BYTES]) -> Self {
        Efuse { bits }
    }

    /// The raw array.
    pub fn bytes(&self) -> &[u8; EFUSE_BYTES] {
        &self.bits
    }

    /// Whether bit `n` (0..1024) is blown.
    pub fn bit(&self, n: u32) -> bool {
        self.bits
            .get((n / 8) as usize)
            .is_some_and(|b| b & (1 << (n % 8)) != 0)
    }

    fn set(&mut self, n: u32) {
        if let Some(b) = self.bits.get_mut((n / 8) as usize) {
            *b |= 1 << (n % 8);
        }
    }

    /// The decoded life-cycle stage.
    pub fn lifecycle(&self) -> LifeCycle {
        let mut stage = LifeCycle::Virgin;
        let mut path = 0u32;
        loop {
            let mut blown = stage
                .next_stages()
                .iter()
                .filter(|s| s.bit().is_some_and(|b| self.bit(b)));
            match (blown.next(), blown.next()) {
                (None, _) => break,
                (Some(&s), None) => {
                    stage = s;
                    path |= s.bit().map_or(0, |b| 1 << b);
                }
                (Some(_), Some(_)) => return LifeCycle::Corrupted,
            }
        }
        let all = (0..LC_BITS)
            .filter(|&b| self.bit(b))
            .fold(0u32, |m, b| m | 1 << b);
        if all != path {
            LifeCycle::Corrupted
        } else {
            stage
        }
    }

    /// The S-HASH field (all zero until blown).
    pub fn shash(&self) -> [u8; EFUSE_SHASH_LEN] {
        let mut h = [0; EFUSE_SHASH_LEN];
        h.copy_from_slice(&self.bits[EFUSE_SHASH_OFFSET..EFUSE_SHASH_OFFSET + EFUSE_SHASH_LEN]);
        h
    }

    /// The anti-rollback counter: the number of blown bits of its thermometer field.
    pub fn rollback_counter(&self) -> u32 {
        let n = (EFUSE_COUNTER_BITS / 8) as usize;
        self.bits[EFUSE_COUNTER_OFFSET..EFUSE_COUNTER_OFFSET + n]
            .iter()
            .map(|b| b.count_ones())
            .sum()
    }

    /// The boot-key revocation mask: bit `n` set = the key in SFlash slot `n` is revoked
    /// (geometry decision 5; `ferrota_image::KeyRing` takes this mask as it is).
    pub fn revoked_boot_keys(&self) -> u8 {
        self.bits[EFUSE_KEY_REVOKE_OFFSET] & ((1u16 << EFUSE_KEY_SLOTS) - 1) as u8
    }

    fn revoke_bit(slot: u32) -> u32 {
        EFUSE_KEY_REVOKE_OFFSET as u32 * 8 + slot
    }

    fn counter_bit(i: u32) -> u32 {
        EFUSE_COUNTER_OFFSET as u32 * 8 + i
    }
}

impl Device {
    /// The eFuse array.
    pub fn efuse(&self) -> &Efuse {
        &self.efuse
    }

    /// The current life-cycle stage.
    pub fn lifecycle(&self) -> LifeCycle {
        self.efuse.lifecycle()
    }

    /// Blows one bit: one operation. A torn blow leaves the bit blown or not (seeded).
    fn blow_bit(&mut self, n: u32) -> Result<(), Error> {
        let t = self.timing.efuse_blow_bit;
        match self.begin_op()? {
            OpMode::Normal => {
                self.efuse.set(n);
                self.clock.advance(t);
                Ok(())
            }
            OpMode::Torn(mut rng) => {
                if rng.below(2) == 1 {
                    self.efuse.set(n);
                }
                self.clock.advance(t / 2);
                Err(Error::PowerLost)
            }
        }
    }

    /// Moves the life cycle one allowed step forward (see the module doc): one bit, one
    /// operation. Going back, skipping stages or leaving a terminal stage is
    /// [`EfuseError::InvalidTransition`].
    pub fn advance_lifecycle(&mut self, to: LifeCycle) -> Result<(), Error> {
        self.ensure_powered()?;
        let from = self.lifecycle();
        match to.bit() {
            Some(bit) if from.next_stages().contains(&to) => self.blow_bit(bit),
            _ => Err(EfuseError::InvalidTransition { from, to }.into()),
        }
    }

    /// Blows the S-HASH field to `hash` (a SHA-256 digest): one operation per bit to blow.
    ///
    /// Refused before any blow if a bit already blown is 0 in `hash`
    /// ([`EfuseError::WouldUnblow`]) or once the life cycle is secure, RMA or corrupted
    /// ([`EfuseError::Locked`]: the hash is the root of trust of the secure stages).
    pub fn blow_shash(&mut self, hash: &[u8; EFUSE_SHASH_LEN]) -> Result<(), Error> {
        self.ensure_powered()?;
        let stage = self.lifecycle();
        if stage.is_secure() || matches!(stage, LifeCycle::Rma | LifeCycle::Corrupted) {
            return Err(EfuseError::Locked { stage }.into());
        }
        let cur = self.efuse.shash();
        if cur.iter().zip(hash).any(|(c, h)| c & !h != 0) {
            return Err(EfuseError::WouldUnblow.into());
        }
        for (i, (c, h)) in cur.iter().zip(hash).enumerate() {
            for b in 0..8 {
                if (h & !c) & (1 << b) != 0 {
                    self.blow_bit((EFUSE_SHASH_OFFSET + i) as u32 * 8 + b)?;
                }
            }
        }
        Ok(())
    }

    /// The anti-rollback counter.
    pub fn rollback_counter(&self) -> u32 {
        self.efuse.rollback_counter()
    }

    /// Revokes boot-key slot `slot` (0..[`EFUSE_KEY_SLOTS`]): blows its one bit, one operation.
    /// Already revoked: nothing to do, no operation.
    ///
    /// Power-cut safe by construction: the field is one bit per slot, so a torn blow leaves the
    /// slot revoked or not, never another slot's bit, and retrying finishes it.
    ///
    /// Allowed in the secure stages (unlike S-HASH: revoking only *removes* trust, so it is what
    /// a fielded SECURE part needs after a key leak) and refused only when the life cycle is
    /// CORRUPTED ([`EfuseError::Locked`]). Whether the board still has a key to boot with is the
    /// caller's check (the boot chain's revoke guard), not the fuse array's.
    pub fn revoke_boot_key(&mut self, slot: u32) -> Result<(), Error> {
        self.ensure_powered()?;
        if slot >= EFUSE_KEY_SLOTS {
            return Err(EfuseError::NoKeySlot {
                slot,
                max: EFUSE_KEY_SLOTS,
            }
            .into());
        }
        let stage = self.lifecycle();
        if stage == LifeCycle::Corrupted {
            return Err(EfuseError::Locked { stage }.into());
        }
        let bit = Efuse::revoke_bit(slot);
        if self.efuse.bit(bit) {
            return Ok(());
        }
        self.blow_bit(bit)
    }

    /// Raises the anti-rollback counter to `to`: one operation per bit blown. Lowering it is
    /// impossible ([`EfuseError::CounterDecrease`]); the maximum is [`EFUSE_COUNTER_BITS`].
    /// Raising it to its current value does nothing.
    pub fn raise_rollback_counter(&mut self, to: u32) -> Result<(), Error> {
        self.ensure_powered()?;
        let current = self.rollback_counter();
        if to < current {
            return Err(EfuseError::CounterDecrease {
                current,
                requested: to,
            }
            .into());
        }
        if to > EFUSE_COUNTER_BITS {
            return Err(EfuseError::CounterOverflow {
                requested: to,
                max: EFUSE_COUNTER_BITS,
            }
            .into());
        }
        for _ in current..to {
            // The lowest unblown bit: keeps the thermometer code even after a torn blow.
            let next = (0..EFUSE_COUNTER_BITS)
                .map(Efuse::counter_bit)
                .find(|&b| !self.efuse.bit(b))
                .ok_or(EfuseError::CounterOverflow {
                    requested: to,
                    max: EFUSE_COUNTER_BITS,
                })?;
            self.blow_bit(next)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in 0..10 {
            assert_eq!(LifeCycle::from_value(v).map(LifeCycle::value), Some(v));
        }
        assert_eq!(LifeCycle::from_value(10), None);
        assert_eq!(LifeCycle::Secure.value(), 3);
        assert_eq!(LifeCycle::NormalProvisioned.value(), 7);
    }

    #[test]
    fn decoding_and_corruption() {
        let mut e = Efuse::default();
        assert_eq!(e.lifecycle(), LifeCycle::Virgin);
        e.set(LC_BIT_NORMAL);
        assert_eq!(e.lifecycle(), LifeCycle::Normal);
        e.set(LC_BIT_SECURE);
        assert_eq!(e.lifecycle(), LifeCycle::Secure);
        e.set(LC_BIT_SECURE_WITH_DEBUG);
        assert_eq!(e.lifecycle(), LifeCycle::Corrupted);
        let mut e = Efuse::default();
        e.set(LC_BIT_PROVISIONED); // off-path bit
        assert_eq!(e.lifecycle(), LifeCycle::Corrupted);
    }
}
