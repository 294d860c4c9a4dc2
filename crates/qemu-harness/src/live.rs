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
//! | DBM → app hand-off | FLASH_CTL mapping registers | SSRAM2 [`HANDOFF`] ([`handoff`]) |
//!
//! The T2G switches banks by remapping (FLASH_CTL), so the running image always appears at the
//! same address. QEMU has no FLASHC and the M7's MPU cannot remap, so the DBM emulates the remap:
//! after its decision and the CM0+ stage's check of the CM7 regions it copies the mapped bank's
//! CM7_0 region to [`APP_EXEC`], where the application is linked ([`remap`]: what exactly is
//! copied), writes the [`handoff`] and jumps to it.

/// PSRAM: the machine RAM, file-backed.
pub const PSRAM: u32 = 0x6000_0000;
/// PSRAM size.
pub const PSRAM_SIZE: u32 = 0x0100_0000;
/// The lower bank, whole.
pub const LOWER_BANK: u32 = PSRAM;
/// The upper bank, whole (single-bank distance, so the DBM's CM0+ windows are its first 64 KB).
pub const UPPER_BANK: u32 = PSRAM + crate::map::UPPER_SBM_OFFSET;
/// The marker log (4 KB): [`crate::map::MPS2_AN500`]'s `log`, so the matrix DBM and the live
/// one keep it in the same place.
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
// The DBM reads the live board's log through the board map: one place for both.
const _: () = assert!(LOG == crate::map::MPS2_AN500.log);
const _: () = assert!(handoff::SIZE as u32 <= HANDOFF_MAX);

/// What the DBM copies to [`APP_EXEC`], and where the application's vector table lands.
///
/// The FLASH_CTL remap makes the mapped bank appear at 0x10000000, so the CM7_0 region appears
/// at 0x10010000 with its CySAF header first and the vector table at region + 0x100 (header
/// `core0Vt` + 16). The emulation keeps that shape: [`APP_EXEC`] stands for 0x10010000, the
/// DBM copies the region's signed bytes from its start (header included) up to its `objSize`,
/// at most [`APP_MAX`], and starts CM7_0 at `APP_EXEC + 16 + core0Vt` ([`APP_VECTOR_TABLE`]).
/// The application is therefore linked with its vector table at [`APP_VECTOR_TABLE`] and its
/// raw binary starting at [`APP_EXEC`] (0x100 bytes of header room first), packed with
/// `--cm7-0 app.bin@0x10010000`. A signed `objSize` is always the whole region (0x3D7F00, the
/// builder writes it so), longer than [`APP_MAX`]: the bytes past [`APP_MAX`] are signed and
/// verified by the CM0+ stage but not copied, and the application's `memory.x` keeps it below.
pub mod remap {
    /// Bank offset of the CM7_0 region: the first byte copied to [`super::APP_EXEC`].
    pub const CM7_0_OFFSET: u32 = 0x1_0000;
    /// The vector table's offset in the region (CySAF `core0Vt` + 16, checked by the header).
    pub const VECTOR_TABLE_OFFSET: u32 = 0x100;
}

/// Where CM7_0's vector table is after the copy: the application's `memory.x` puts it here.
pub const APP_VECTOR_TABLE: u32 = APP_EXEC + remap::VECTOR_TABLE_OFFSET;

/// The DBM's hand-off to the application, at [`HANDOFF`]: what the T2G's registers tell the
/// CM7 application after the DBM and the CM0+ stage ran.
///
/// On the chip the application learns the bank it runs from by reading FLASH_CTL (MAIN_MAP,
/// [`ferrota_boot::Bank::from_main_map`]), and its own start by the CM7_0 vector-table base the
/// CM0+ stage programmed. Here the DBM writes those into SSRAM2 (below both programs' RAM,
/// never reloaded by QEMU's reset), just before the jump, at every boot:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `FQHO` |
/// | 4 | 4 | FLASH_CTL as the switch routine wrote it ([`crate::report::flash_ctl`]) |
/// | 8 | 4 | CM7_0 vector table the core was started at |
/// | 12 | 4 | bytes of the CM7_0 region copied to [`APP_EXEC`] |
/// | 16 | 4 | 1: the version record asks for CM7_1 too (not emulated: one M7 here), else 0 |
/// | 20 | 4 | the DBM's marker-log sequence number after its decision (diagnostics) |
///
/// Everything else the application needs it reads where the chip's application reads it: the
/// version record from the mapped bank, the image state from the marker log, the eFuse counter
/// from the board-inputs block.
pub mod handoff {
    use ferrota_boot::Bank;

    use crate::report::{MAIN_BANK_MODE, MAIN_MAP, flash_ctl};

    /// `FQHO`.
    pub const MAGIC: u32 = u32::from_le_bytes(*b"FQHO");
    /// Bytes of the block.
    pub const SIZE: usize = 24;

    /// The hand-off.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Handoff {
        /// The bank mapped at 0x10000000: the one the application runs from.
        pub bank: Bank,
        /// The vector table CM7_0 was started at.
        pub vector_table: u32,
        /// Bytes of the CM7_0 region copied to [`super::APP_EXEC`].
        pub image_len: u32,
        /// Whether the CM0+ stage would also start CM7_1 (`FLAG_CM7_1_APP`).
        pub cm7_1: bool,
        /// The marker log's newest sequence number after the DBM's decision.
        pub log_seq: u32,
    }

    fn word(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    impl Handoff {
        /// Where the mapped bank lives in the PSRAM ([`super::LOWER_BANK`] or
        /// [`super::UPPER_BANK`]).
        pub const fn bank_base(&self) -> u32 {
            match self.bank {
                Bank::Lower => super::LOWER_BANK,
                Bank::Upper => super::UPPER_BANK,
            }
        }

        /// The other bank's place: the application's inactive bank.
        pub const fn other_bank_base(&self) -> u32 {
            match self.bank {
                Bank::Lower => super::UPPER_BANK,
                Bank::Upper => super::LOWER_BANK,
            }
        }

        /// The block's bytes.
        pub fn encode(&self) -> [u8; SIZE] {
            let mut b = [0u8; SIZE];
            for (i, w) in [
                MAGIC,
                flash_ctl(self.bank),
                self.vector_table,
                self.image_len,
                u32::from(self.cm7_1),
                self.log_seq,
            ]
            .into_iter()
            .enumerate()
            {
                b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
            b
        }

        /// Reads a block; `None` without the magic, with a FLASH_CTL that is not dual-bank mode,
        /// or with an unknown CM7_1 word.
        pub fn decode(b: &[u8]) -> Option<Self> {
            if word(b, 0)? != MAGIC {
                return None;
            }
            let ctl = word(b, 4)?;
            if ctl & MAIN_BANK_MODE == 0 {
                return None;
            }
            Some(Handoff {
                bank: Bank::from_main_map(ctl & MAIN_MAP != 0),
                vector_table: word(b, 8)?,
                image_len: word(b, 12)?,
                cm7_1: match word(b, 16)? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
                log_seq: word(b, 20)?,
            })
        }
    }
}

/// The guest's network: a documentation range (RFC 5737 TEST-NET-1), never routed.
pub mod net {
    /// The board's address.
    pub const GUEST: [u8; 4] = [192, 0, 2, 15];
    /// Prefix length of the guest network.
    pub const PREFIX: u8 = 24;
    /// QEMU's user-mode gateway and host (`-nic user,host=`).
    pub const GATEWAY: [u8; 4] = [192, 0, 2, 2];
    /// The server as the board reaches it: QEMU's `guestfwd` to a relay that connects to the
    /// server on 127.0.0.1. Not [`GATEWAY`]: libslirp refuses a `guestfwd` on its own host
    /// address ("Conflicting/invalid host:port"); an address on the board's /24, which slirp
    /// answers ARP for.
    pub const SERVER: [u8; 4] = [192, 0, 2, 100];
    /// The server's port as the board reaches it.
    pub const SERVER_PORT: u16 = 8883;
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

    #[test]
    fn handoff_round_trips_and_refuses_damage() {
        use ferrota_boot::Bank;
        for bank in Bank::ALL {
            let h = handoff::Handoff {
                bank,
                vector_table: APP_VECTOR_TABLE,
                image_len: APP_MAX,
                cm7_1: bank == Bank::Upper,
                log_seq: 7,
            };
            let b = h.encode();
            assert_eq!(handoff::Handoff::decode(&b), Some(h));
            assert_eq!(handoff::Handoff::decode(&b[..handoff::SIZE - 1]), None);
            let mut bad = b;
            bad[0] ^= 1;
            assert_eq!(handoff::Handoff::decode(&bad), None, "magic");
            let mut bad = b;
            bad[16] = 2;
            assert_eq!(handoff::Handoff::decode(&bad), None, "cm7_1");
        }
        // Erased or never written SSRAM is not a hand-off.
        assert_eq!(handoff::Handoff::decode(&[0xFF; handoff::SIZE]), None);
        assert_eq!(handoff::Handoff::decode(&[0; handoff::SIZE]), None);
    }
}
