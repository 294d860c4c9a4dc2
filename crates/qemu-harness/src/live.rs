//! The live board (issue #21): the DBM, then the OTA agent over Ethernet, TLS and MQTT, on QEMU's
//! `mps2-an500`, updating itself from `ferrota serve`.
//!
//! Unlike the matrix and the scripted agent run, the live board resets and must keep its flash:
//! the PSRAM (16 MB at 0x60000000) is QEMU's machine RAM, backed by a file
//! (`-object memory-backend-file,share=on` + `-machine memory-backend=`), so every write the
//! firmware makes survives a system reset and the QEMU process itself. Nothing is loaded with
//! `-device loader` into it (a loader's blob is copied again at every reset); the host writes the
//! file before QEMU starts. Only the DBM comes in with `-kernel` (SSRAM1, restored at reset as the
//! chip's ROM/SFlash code would be).
//!
//! | what | T2G | mps2-an500 |
//! |---|---|---|
//! | lower bank (whole, 0x3F8000) | 0x10000000 | PSRAM [`LOWER_BANK`] |
//! | upper bank | 0x103F8000 (single-bank view) | PSRAM [`UPPER_BANK`] |
//! | SFlash | 0x17000000 | PSRAM 0x60800000 ([`crate::map::MPS2_AN500`]) |
//! | board inputs | registers, eFuse | PSRAM 0x60810000 |
//! | marker log (work flash) | 0x14012000 | PSRAM [`LOG`] |
//! | agent resume area (work flash) | 0x14013000 | PSRAM [`RESUME`] |
//! | trust store (work flash) | [`ferrota_agent`'s `TRUST_AREA`] | PSRAM [`TRUST`] |
//! | provisioning (thing, keys, network) | work flash / SFlash user rows | PSRAM [`PROVISION`] ([`crate::provision`]) |
//! | the running CM7_0 image | bank offset 0x10000, remapped by FLASH_CTL | SSRAM1 [`APP_EXEC`] (copied by the DBM) |
//! | DBM → app hand-off | FLASH_CTL mapping registers | SSRAM2 [`HANDOFF`] |
//!
//! The T2G switches banks by remapping (FLASH_CTL), so the running image always appears at the
//! same address. QEMU has no FLASHC and the M7's MPU cannot remap, so the DBM emulates the remap:
//! after its decision and the CM0+ stage's check of the CM7 regions it copies the mapped bank's
//! CM7_0 region to [`APP_EXEC`], where the application is linked, and jumps to it.

/// PSRAM: the machine RAM, file-backed.
pub const PSRAM: u32 = 0x6000_0000;
/// PSRAM size.
pub const PSRAM_SIZE: u32 = 0x0100_0000;
/// The lower bank, whole.
pub const LOWER_BANK: u32 = PSRAM;
/// The upper bank, whole (single-bank distance, so the DBM's CM0+ windows are its first 64 KB).
pub const UPPER_BANK: u32 = PSRAM + crate::map::UPPER_SBM_OFFSET;
/// The marker log (4 KB). Equal to [`crate::map::MPS2_AN500`]'s `log`.
pub const LOG: u32 = 0x6083_0000;
/// The agent's resume area (2 KB used).
pub const RESUME: u32 = 0x6084_0000;
/// The agent's trust store (4 KB used).
pub const TRUST: u32 = 0x6085_0000;
/// The provisioning block ([`crate::provision`]), at most [`PROVISION_MAX`] bytes.
pub const PROVISION: u32 = 0x6086_0000;
/// Bytes the provisioning block may take.
pub const PROVISION_MAX: u32 = 0x1_0000;
/// Where the running CM7_0 image executes (SSRAM1; the DBM itself is below, from 0).
pub const APP_EXEC: u32 = 0x0010_0000;
/// Most bytes of the CM7_0 image copied to [`APP_EXEC`] (to the end of SSRAM1).
pub const APP_MAX: u32 = 0x0040_0000 - APP_EXEC;
/// The DBM's hand-off to the application (SSRAM2, below both programs' RAM).
pub const HANDOFF: u32 = 0x2000_0000;
/// Bytes of the hand-off window.
pub const HANDOFF_MAX: u32 = 0x1000;

// The scripted agent run's script stays clear of everything the live board keeps.
const _: () = assert!(PROVISION + PROVISION_MAX <= 0x6090_0000);

/// The guest's network: a documentation range (RFC 5737 TEST-NET-1), never routed.
pub mod net {
    /// The board's address.
    pub const GUEST: [u8; 4] = [192, 0, 2, 15];
    /// Prefix length of the guest network.
    pub const PREFIX: u8 = 24;
    /// QEMU's user-mode gateway (and its forwarding address for the server).
    pub const GATEWAY: [u8; 4] = [192, 0, 2, 2];
    /// The board's MAC (locally administered).
    pub const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x02, 0x0f];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_do_not_overlap_and_fit_the_psram() {
        let mut w = [
            (LOWER_BANK, ferrota_image::BANK_SIZE),
            (UPPER_BANK, ferrota_image::BANK_SIZE),
            (crate::map::MPS2_AN500.sflash, crate::map::SFLASH_SIZE),
            (crate::map::MPS2_AN500.inputs, 0x100),
            (LOG, crate::map::LOG_SIZE),
            (RESUME, 0x1_0000),
            (TRUST, 0x1_0000),
            (PROVISION, PROVISION_MAX),
        ];
        w.sort();
        for p in w.windows(2) {
            assert!(p[0].0 + p[0].1 <= p[1].0, "{p:x?}");
        }
        let (last, len) = w[w.len() - 1];
        assert!(last + len <= PSRAM + PSRAM_SIZE);
    }
}
