//! Provisioning a blank device for a boot key: what the factory (or Infineon's provisioning
//! flow) does before the first boot.
//!
//! In order, on a device fresh from [`Device::new`] (NORMAL_PROVISIONED) or [`Device::virgin`]:
//!
//! 1. SFlash, by SROM row writes: a stand-in for the Dual Bank Manager at 0x17000800 (its CySAF
//!    header and the DBM's build configuration, [`DbmConfig`]; the DBM's logic is
//!    `ferrota-boot`), the public-key object at 0x17006400 (boot-key slot 0), with
//!    [`provision_slots`] the P-256 objects of slots 1..3 (one row each, `BOOT_KEY_SLOTS`), and
//!    TOC2 at 0x17007C00 as the seed's (spec §1.6: app1 = the DBM, three S-HASH objects,
//!    flash-boot flags 0x4C3).
//! 2. eFuse: the S-HASH of the SFlash objects ([`rom::compute_shash`]), blown while SFlash and
//!    the hash can still be written. Every stage gets it, so a device provisioned in
//!    NORMAL_PROVISIONED can later move to SECURE.
//! 3. eFuse: the life-cycle bits, one transition at a time, last (SECURE write-protects SFlash
//!    and locks the S-HASH).

use ferrota_boot::rom;
use ferrota_image::sflash_key::{self, BOOT_KEY_SLOTS, SFLASH_KEY_ADDRESS};
use ferrota_image::version::HARDWARE_ID_LEN;
use ferrota_image::{BootKey, HardwareId};
use ferrota_t2g::geometry::{SFLASH_DBM, SFLASH_ROW, SFLASH_TOC2};
use ferrota_t2g::{Device, LifeCycle};

use super::Error;

/// What to provision.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// The boot public key (its SFlash object is written at 0x17006400).
    pub key: BootKey,
    /// The life-cycle stage to leave the device in.
    pub life_cycle: LifeCycle,
    /// The board's hardware id, which the DBM enforces (`None`: any image's id is accepted).
    pub hardware: Option<HardwareId>,
}

/// The DBM's build configuration, stored in the DBM area after its CySAF header (SFlash
/// 0x17000818), so it is covered by the S-HASH like the DBM code it configures.
///
/// | offset | size | field |
/// |---|---|---|
/// | +0x18 | 8  | magic `FRDBMCFG` |
/// | +0x20 | 4  | format, 1 |
/// | +0x24 | 32 | hardware id, NUL-padded (all zero: any board) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbmConfig {
    /// The board's id.
    pub hardware: Option<HardwareId>,
}

/// Magic of [`DbmConfig`].
pub const DBM_CONFIG_MAGIC: [u8; 8] = *b"FRDBMCFG";
const DBM_CONFIG_OFFSET: usize = 0x18;
const DBM_CONFIG_FORMAT: u32 = 1;
/// TOC2 flash-boot flags of the seed (spec §1.6): 100 MHz, 20 ms listen window, SWJ enabled,
/// no app validation in NORMAL, internal bootloader disabled.
pub const TOC2_FLAGS: u32 = 0x4C3;

impl DbmConfig {
    /// The first row of the DBM area: CySAF header, this configuration, zero padding.
    pub fn dbm_row(&self) -> [u8; SFLASH_ROW as usize] {
        let mut row = [0u8; SFLASH_ROW as usize];
        let header = [0x700u32, 0x0100_8002, 0, 1, 0xF0, 0xC600_0000];
        for (i, w) in header.iter().enumerate() {
            row[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        let c = DBM_CONFIG_OFFSET;
        row[c..c + 8].copy_from_slice(&DBM_CONFIG_MAGIC);
        row[c + 8..c + 12].copy_from_slice(&DBM_CONFIG_FORMAT.to_le_bytes());
        if let Some(h) = &self.hardware {
            let s = h.as_str().as_bytes();
            row[c + 12..c + 12 + s.len()].copy_from_slice(s);
        }
        row
    }

    /// Reads the configuration from the DBM area; `None` if it holds no Ferrota DBM.
    pub fn read(dev: &Device) -> Result<Option<DbmConfig>, Error> {
        let mut b = [0u8; 12 + HARDWARE_ID_LEN];
        dev.read(SFLASH_DBM + DBM_CONFIG_OFFSET as u32, &mut b)?;
        if b[..8] != DBM_CONFIG_MAGIC || b[8..12] != DBM_CONFIG_FORMAT.to_le_bytes() {
            return Ok(None);
        }
        let raw = &b[12..];
        let len = raw.iter().position(|&c| c == 0).unwrap_or(HARDWARE_ID_LEN);
        if raw[len..].iter().any(|&c| c != 0) {
            return Ok(None);
        }
        let hardware = if len == 0 {
            None
        } else {
            match core::str::from_utf8(&raw[..len])
                .ok()
                .and_then(HardwareId::new)
            {
                Some(h) => Some(h),
                None => return Ok(None),
            }
        };
        Ok(Some(DbmConfig { hardware }))
    }
}

/// The seed's TOC2 (spec §1.6).
pub fn toc2_row() -> [u8; SFLASH_ROW as usize] {
    let mut t = [0u8; SFLASH_ROW as usize];
    let mut put = |off: usize, v: u32| t[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put(0x000, 0x1FC);
    put(0x004, 0x0121_1220);
    put(0x00C, SFLASH_DBM);
    put(0x010, 1);
    put(0x018, 1);
    put(0x100, 3);
    put(0x104, SFLASH_KEY_ADDRESS);
    put(0x108, ferrota_t2g::geometry::SFLASH_SWPU);
    put(0x10C, SFLASH_TOC2);
    put(0x1F8, TOC2_FLAGS);
    t
}

/// The SFlash key object of a boot key.
pub fn key_object(key: &BootKey) -> Vec<u8> {
    match key {
        BootKey::EcdsaP256(k) => sflash_key::p256_key_object(k).to_vec(),
        BootKey::Rsa2048(k) => sflash_key::rsa2048_key_object(k).to_vec(),
    }
}

/// The transitions from `from` to `to` (shortest path), `None` if unreachable.
fn lifecycle_path(from: LifeCycle, to: LifeCycle) -> Option<Vec<LifeCycle>> {
    let mut paths = vec![(from, Vec::new())];
    while !paths.is_empty() {
        let mut next = Vec::new();
        for (stage, path) in paths {
            if stage == to {
                return Some(path);
            }
            for &s in stage.next_stages() {
                let mut p = path.clone();
                p.push(s);
                next.push((s, p));
            }
        }
        paths = next;
    }
    None
}

/// A blank device provisioned as [`Provisioning`] says (see the module docs for the steps).
/// Stages reachable from NORMAL_PROVISIONED (the stage boards ship in) start from
/// [`Device::new`]; VIRGIN, NORMAL, SORT and PROVISIONED from [`Device::virgin`].
pub fn provision(p: &Provisioning) -> Result<Device, Error> {
    provision_slots(p, &[])
}

/// [`provision`] with more boot keys: `extra_keys[i]` goes to boot-key slot `i + 1` (at most 3,
/// P-256 only, the slot 0 key's scheme: the DBM refuses a ring of mixed schemes). Written before
/// the S-HASH is computed, so the slots are under the ROM's check like slot 0 (the hash covers
/// the whole 0xC00 key area).
///
/// A separate function rather than a `Provisioning` field so that every existing
/// `Provisioning { .. }` literal (lab, CLI, QEMU harness, boot tests) stays as it is.
pub fn provision_slots(p: &Provisioning, extra_keys: &[BootKey]) -> Result<Device, Error> {
    if extra_keys.len() >= BOOT_KEY_SLOTS.len() {
        return Err(Error::ExtraKey {
            slot: extra_keys.len(),
            why: "there are only slots 1..3",
        });
    }
    let mut objects = Vec::new();
    for (i, k) in extra_keys.iter().enumerate() {
        let slot = i + 1;
        let obj = match (k, &p.key) {
            (BootKey::EcdsaP256(k), BootKey::EcdsaP256(_)) => sflash_key::p256_key_object(k),
            _ => {
                return Err(Error::ExtraKey {
                    slot,
                    why: "only a P-256 key, in a ring whose slot 0 is P-256 (one scheme per ring)",
                });
            }
        };
        let mut row = [0u8; SFLASH_ROW as usize];
        row[..obj.len()].copy_from_slice(&obj);
        objects.push((BOOT_KEY_SLOTS[slot], row));
    }
    let (mut dev, path) = match lifecycle_path(LifeCycle::NormalProvisioned, p.life_cycle) {
        Some(path) => (Device::new(), path),
        None => match lifecycle_path(LifeCycle::Virgin, p.life_cycle) {
            Some(path) => (Device::virgin(), path),
            None => return Err(Error::LifeCycle(p.life_cycle)),
        },
    };
    let dbm = DbmConfig {
        hardware: p.hardware,
    };
    dev.sflash_write_row(SFLASH_DBM, &dbm.dbm_row())?;
    let obj = key_object(&p.key);
    for (i, chunk) in obj.chunks(SFLASH_ROW as usize).enumerate() {
        let mut row = [0u8; SFLASH_ROW as usize];
        row[..chunk.len()].copy_from_slice(chunk);
        dev.sflash_write_row(SFLASH_KEY_ADDRESS + i as u32 * SFLASH_ROW, &row)?;
    }
    for (addr, row) in &objects {
        dev.sflash_write_row(*addr, row)?;
    }
    dev.sflash_write_row(SFLASH_TOC2, &toc2_row())?;
    let hash = rom::compute_shash(&mut dev.sflash(), &mut [0u8; 512]).map_err(Error::Shash)?;
    dev.blow_shash(&hash)?;
    for stage in path {
        dev.advance_lifecycle(stage)?;
    }
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        use LifeCycle::*;
        assert_eq!(
            lifecycle_path(NormalProvisioned, Secure),
            Some(vec![Secure])
        );
        assert_eq!(
            lifecycle_path(NormalProvisioned, NormalProvisioned),
            Some(vec![])
        );
        assert_eq!(lifecycle_path(NormalProvisioned, Normal), None);
        assert_eq!(lifecycle_path(Virgin, Normal), Some(vec![Normal]));
        assert_eq!(lifecycle_path(Virgin, Corrupted), None);
    }

    #[test]
    fn toc2_is_the_seeds() {
        let t = toc2_row();
        let w = |o: usize| u32::from_le_bytes([t[o], t[o + 1], t[o + 2], t[o + 3]]);
        assert_eq!(
            (w(0), w(4), w(0xC), w(0x100)),
            (0x1FC, 0x0121_1220, 0x1700_0800, 3)
        );
        assert_eq!(w(0x1F8), 0x4C3);
    }
}
