//! The device's trust state in work flash (design §3.4, D-7) and the sequence rule over it.
//!
//! # Layout
//!
//! [`TRUST_AREA`]: two 2 KB sectors, 4 slots of 512 B each. Every record is a **full snapshot**
//! of a [`TrustState`], little-endian:
//!
//! | off | size | field |
//! |---|---|---|
//! | 0x000 | 4 | record sequence (1, 2, …) |
//! | 0x004 | 1 | format = 1 |
//! | 0x005 | 1 | key count n, 1..=5 |
//! | 0x006 | 1 | root threshold |
//! | 0x007 | 1 | reserved 0 |
//! | 0x008 | 4 | root version |
//! | 0x00C | 4 | revoked boot-key slots (bitmask) |
//! | 0x010 | 380 | 5 × 76 B keys `[roles, 0, 0, 0, kid 8, X 32, Y 32]`, unused = 0 |
//! | 0x18C | 4 | `seen_seq` |
//! | 0x190 | 8 | `seen_kid` |
//! | 0x198 | 32 | `seen_digest` |
//! | 0x1B8 | 4 | `installed_seq` |
//! | 0x1BC | 4 | reserved 0 |
//! | 0x1C0 | 8 | `attested_time` |
//! | 0x1C8 | 8 | `clock_floor` |
//! | 0x1D0 | 8 | root `issued` (the plan's reserved bytes: the root must read back equal) |
//! | 0x1D8 | 32 | reserved 0 |
//! | 0x1F8 | 4 | CRC-32 (IEEE) of 0x000..0x1F8 |
//! | 0x1FC | 4 | commit word [`COMMIT`], programmed last, in its own operation |
//!
//! # Write rules (the marker log's, `ferrota_boot::log`)
//!
//! * Append into the first slot after the last non-blank slot of the sector holding the newest
//!   record: bytes 0..0x1FC in one program operation, then the commit word. Until the commit word
//!   is complete the record does not exist, so a cut leaves the previous record in charge.
//! * A slot that fails to program (a torn earlier attempt) is skipped.
//! * When that sector is full, the *other* sector (older records only) is erased first, then the
//!   record goes into its slot 0: a cut during the erase or the program still reads the newest
//!   record of the full sector.
//! * Read: the valid record (commit word, CRC, strict decode, keys re-checked against their kids
//!   and the root rules) with the highest sequence; none at all is the anchor and zeros.
//!
//! **Decision (anchor vs store):** the store is trusted only as far as the firmware's anchor: if
//! the anchor's version is above the stored root's (firmware that ships a newer anchor), the
//! anchor replaces the stored root and the rest of the state is kept. A stored root at or above
//! the anchor's version was reached by a verified walk and wins.

use embedded_storage::nor_flash::NorFlash;
use p256::ecdsa::VerifyingKey;

/// CRC-32 (IEEE 802.3, as zlib computes it): the marker log's record check, from the `crc`
/// crate that `ferrota-delta` already links into the agent (one table on the MCU).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fn crc32(data: &[u8]) -> u32 {
    CRC32.checksum(data)
}
use crate::root::{RootKey, check_rules};
use crate::{Kid, MAX_ROOT_KEYS, TrustedRoot, kid_of};

/// Work-flash area of the trust records (two 2 KB sectors after the resume area).
pub const TRUST_AREA: u32 = 0x1401_3800;
/// Length of [`TRUST_AREA`].
pub const TRUST_AREA_LEN: u32 = 0x1000;

/// Size of one record.
pub const RECORD_SIZE: usize = 512;
/// Size of one sector of the area.
pub const SECTOR_SIZE: u32 = 0x800;
/// Records per sector.
pub const SLOTS_PER_SECTOR: usize = 4;
/// The commit word ("Trst" little-endian).
pub const COMMIT: u32 = 0x7473_7254;
const FORMAT: u8 = 1;
const KEYS_AT: usize = 0x10;
const KEY_LEN: usize = 76;
const CRC_AT: usize = 0x1F8;
const COMMIT_AT: usize = 0x1FC;

/// Why the trust store could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError<E> {
    /// The flash refused an operation.
    Flash(E),
    /// The flash given is smaller than [`TRUST_AREA_LEN`].
    TooSmall {
        /// Its capacity.
        capacity: usize,
    },
    /// The record sequence number reached its end (2^32 − 2 writes).
    SequenceExhausted,
}

impl<E> From<E> for StoreError<E> {
    fn from(e: E) -> Self {
        StoreError::Flash(e)
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Flash(e) => write!(f, "trust store flash error: {e:?}"),
            StoreError::TooSmall { capacity } => {
                write!(
                    f,
                    "trust store area is {capacity} bytes, needs {TRUST_AREA_LEN}"
                )
            }
            StoreError::SequenceExhausted => f.write_str("trust store sequence exhausted"),
        }
    }
}

/// Encodes `s` as record number `seq`, commit word included.
pub fn encode(seq: u32, s: &TrustState) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    let root = &s.root;
    r[0..4].copy_from_slice(&seq.to_le_bytes());
    r[4] = FORMAT;
    r[5] = root.keys().count() as u8;
    r[6] = root.threshold;
    r[8..12].copy_from_slice(&root.version.to_le_bytes());
    r[12..16].copy_from_slice(&u32::from(root.revoked).to_le_bytes());
    for (i, k) in root.keys().enumerate() {
        let at = KEYS_AT + i * KEY_LEN;
        r[at] = k.roles;
        r[at + 4..at + 12].copy_from_slice(&k.kid);
        let p = k.key.to_sec1_point(false);
        r[at + 12..at + 76].copy_from_slice(&p.as_bytes()[1..65]);
    }
    r[0x18C..0x190].copy_from_slice(&s.seen_seq.to_le_bytes());
    r[0x190..0x198].copy_from_slice(&s.seen_kid);
    r[0x198..0x1B8].copy_from_slice(&s.seen_digest);
    r[0x1B8..0x1BC].copy_from_slice(&s.installed_seq.to_le_bytes());
    r[0x1C0..0x1C8].copy_from_slice(&s.attested_time.to_le_bytes());
    r[0x1C8..0x1D0].copy_from_slice(&s.clock_floor.to_le_bytes());
    r[0x1D0..0x1D8].copy_from_slice(&root.issued.to_le_bytes());
    let crc = crc32(&r[..CRC_AT]);
    r[CRC_AT..COMMIT_AT].copy_from_slice(&crc.to_le_bytes());
    r[COMMIT_AT..].copy_from_slice(&COMMIT.to_le_bytes());
    r
}

fn u32_at(r: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&r[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(r: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&r[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes a record strictly: commit word, CRC, format, zero reserved and unused bytes, every
/// key on the curve with its own kid, and the root rules. `None` for anything else (a blank,
/// torn or foreign slot).
pub fn decode(r: &[u8; RECORD_SIZE]) -> Option<(u32, TrustState)> {
    if u32_at(r, COMMIT_AT) != COMMIT || u32_at(r, CRC_AT) != crc32(&r[..CRC_AT]) {
        return None;
    }
    let seq = u32_at(r, 0);
    let n = usize::from(r[5]);
    if r[4] != FORMAT || r[7] != 0 || n == 0 || n > MAX_ROOT_KEYS || seq == 0 {
        return None;
    }
    let revoked = u32_at(r, 12);
    let mut keys: [Option<RootKey>; MAX_ROOT_KEYS] = [None; MAX_ROOT_KEYS];
    for i in 0..MAX_ROOT_KEYS {
        let k = &r[KEYS_AT + i * KEY_LEN..KEYS_AT + (i + 1) * KEY_LEN];
        if i >= n {
            if k.iter().any(|&b| b != 0) {
                return None;
            }
            continue;
        }
        if k[1..4] != [0, 0, 0] || k[0] == 0 || k[0] > crate::root::ROLE_MASK {
            return None;
        }
        let mut sec1 = [0x04u8; 65];
        sec1[1..].copy_from_slice(&k[12..76]);
        let key = VerifyingKey::from_sec1_bytes(&sec1).ok()?;
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&k[4..12]);
        if kid_of(&sec1) != kid || keys_before(&keys, i).any(|o| o.kid == kid) {
            return None;
        }
        keys[i] = Some(RootKey {
            kid,
            roles: k[0],
            key,
        });
    }
    check_rules(&keys, [u64::from(r[6]), 1, 1], u64::from(revoked)).ok()?;
    if r[0x1BC..0x1C0]
        .iter()
        .chain(&r[0x1D8..CRC_AT])
        .any(|&b| b != 0)
    {
        return None;
    }
    let version = u32_at(r, 8);
    if version == 0 {
        return None;
    }
    let mut seen_kid = [0u8; 8];
    seen_kid.copy_from_slice(&r[0x190..0x198]);
    let mut seen_digest = [0u8; 32];
    seen_digest.copy_from_slice(&r[0x198..0x1B8]);
    let state = TrustState {
        root: TrustedRoot {
            version,
            issued: u64_at(r, 0x1D0),
            threshold: r[6],
            revoked: revoked as u8,
            keys,
        },
        seen_seq: u32_at(r, 0x18C),
        seen_kid,
        seen_digest,
        installed_seq: u32_at(r, 0x1B8),
        attested_time: u64_at(r, 0x1C0),
        clock_floor: u64_at(r, 0x1C8),
    };
    Some((seq, state))
}

fn keys_before(
    keys: &[Option<RootKey>; MAX_ROOT_KEYS],
    i: usize,
) -> impl Iterator<Item = &RootKey> {
    keys[..i].iter().flatten()
}

fn offset(sector: usize, slot: usize) -> u32 {
    sector as u32 * SECTOR_SIZE + (slot * RECORD_SIZE) as u32
}

struct Scan {
    newest: Option<(u32, TrustState, usize)>,
    last_used: [Option<usize>; 2],
}

fn scan<F: NorFlash>(f: &mut F) -> Result<Scan, StoreError<F::Error>> {
    const {
        assert!(4 % F::READ_SIZE == 0, "records are read at 4-byte offsets");
    }
    if f.capacity() < TRUST_AREA_LEN as usize {
        return Err(StoreError::TooSmall {
            capacity: f.capacity(),
        });
    }
    let mut out = Scan {
        newest: None,
        last_used: [None; 2],
    };
    let mut raw = [0u8; RECORD_SIZE];
    for sector in 0..2 {
        for slot in 0..SLOTS_PER_SECTOR {
            f.read(offset(sector, slot), &mut raw)?;
            if raw.iter().all(|&b| b == 0xFF) {
                continue;
            }
            out.last_used[sector] = Some(slot);
            if let Some((seq, state)) = decode(&raw)
                && out.newest.as_ref().is_none_or(|(s, _, _)| seq > *s)
            {
                out.newest = Some((seq, state, sector));
            }
        }
    }
    Ok(out)
}

/// The trust state: the newest valid record, or the anchor and zeros on a blank store (see the
/// module docs for the anchor-versus-store decision).
pub fn read<F: NorFlash>(
    f: &mut F,
    anchor: &TrustedRoot,
) -> Result<TrustState, StoreError<F::Error>> {
    let Some((_, mut state, _)) = scan(f)?.newest else {
        return Ok(TrustState::new(anchor.clone()));
    };
    if anchor.version > state.root.version {
        state.root = anchor.clone();
    }
    Ok(state)
}

/// Appends `s` as the newest record (compacting into the other sector when needed). After an
/// error, or a power cut at any point, the store reads back as before or as `s`.
pub fn write<F: NorFlash>(f: &mut F, s: &TrustState) -> Result<(), StoreError<F::Error>> {
    const {
        assert!(
            4 % F::WRITE_SIZE == 0,
            "the commit word must be programmable on its own"
        );
        assert!(
            (SECTOR_SIZE as usize).is_multiple_of(F::ERASE_SIZE),
            "a trust sector must be erasable on its own"
        );
    }
    let scan = scan(f)?;
    let (last_seq, sector) = scan
        .newest
        .as_ref()
        .map_or((0, 0), |(q, _, sec)| (*q, *sec));
    let seq = last_seq
        .checked_add(1)
        .filter(|&q| q != u32::MAX)
        .ok_or(StoreError::SequenceExhausted)?;
    let raw = encode(seq, s);
    let first = scan.last_used[sector].map_or(0, |l| l + 1);
    let mut last_err = None;
    for slot in first..SLOTS_PER_SECTOR {
        match program(f, offset(sector, slot), &raw) {
            Ok(()) => return Ok(()),
            Err(e) => last_err = Some(e),
        }
    }
    let other = 1 - sector;
    let from = other as u32 * SECTOR_SIZE;
    f.erase(from, from + SECTOR_SIZE)?;
    for slot in 0..SLOTS_PER_SECTOR {
        match program(f, offset(other, slot), &raw) {
            Ok(()) => return Ok(()),
            Err(e) => last_err = Some(e),
        }
    }
    // Unreachable on working flash: a freshly erased sector has free slots.
    Err(last_err.map_or(StoreError::SequenceExhausted, StoreError::Flash))
}

fn program<F: NorFlash>(f: &mut F, at: u32, raw: &[u8; RECORD_SIZE]) -> Result<(), F::Error> {
    f.write(at, &raw[..COMMIT_AT])?;
    f.write(at + COMMIT_AT as u32, &raw[COMMIT_AT..])
}

/// What the device trusts and has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustState {
    /// The trusted root.
    pub root: TrustedRoot,
    /// Highest manifest sequence accepted (reset when its release key leaves the root).
    pub seen_seq: u32,
    /// Release key id that signed the manifest of `seen_seq`.
    pub seen_kid: Kid,
    /// SHA-256 of that metadata file (the same digest is the same manifest: a resume).
    pub seen_digest: [u8; 32],
    /// Sequence of the last activated manifest (never reset).
    pub installed_seq: u32,
    /// Newest accepted timestamp `time`.
    pub attested_time: u64,
    /// Device time estimate, checkpointed (≥ `attested_time`).
    pub clock_floor: u64,
}

impl TrustState {
    /// The state of a device that has only its anchor: nothing seen, nothing installed.
    pub fn new(root: TrustedRoot) -> Self {
        TrustState {
            root,
            seen_seq: 0,
            seen_kid: [0; 8],
            seen_digest: [0; 32],
            installed_seq: 0,
            attested_time: 0,
            clock_floor: 0,
        }
    }

    /// The sequence floor a new manifest must beat: `installed_seq`, raised to `seen_seq` while
    /// the key that signed `seen_seq` is still a release key of `root` (TUF §5.3.11
    /// fast-forward recovery: a floor pushed up by a key that was rotated out no longer binds).
    pub fn floor(&self) -> u32 {
        if self.root.has_release_kid(&self.seen_kid) {
            self.installed_seq.max(self.seen_seq)
        } else {
            self.installed_seq
        }
    }
}

/// Replay: a manifest must carry a sequence number above [`TrustState::floor`], or be the very
/// file last accepted (same sequence and same file digest: a download resumed after a reset).
///
/// `s.root` must be the root the manifest was verified against (after the walk).
pub fn check_sequence(
    s: &TrustState,
    m: &crate::VerifiedManifest,
) -> Result<(), crate::TrustError> {
    let floor = s.floor();
    let seq = m.sequence();
    if seq > floor {
        return Ok(());
    }
    if seq == floor
        && seq == s.seen_seq
        && s.root.has_release_kid(&s.seen_kid)
        && m.file_digest() == &s.seen_digest
    {
        return Ok(());
    }
    Err(crate::TrustError::SequenceNotNewer { found: seq, floor })
}
