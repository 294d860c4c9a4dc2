//! The image pairs: synthetic ones built in-process (always), and real releases read from the
//! directory `scripts/delta-pairs.sh` fills, packed into signed bank images as
//! `ferrota image pack` packs them.

use std::path::Path;

use ferrota_image::build::{BankBuilder, Segment, sample_build, sample_bytes};
use ferrota_image::input::{self, Format};
use ferrota_image::layout::{ACTIVE_BANK_BASE, VECTOR_TABLE_OFFSET};
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

/// The board the pairs are packed for (the demo's).
pub const BOARD: &str = "KIT_T2G-B-H_LITE";

/// Largest build file the bench reads (a region is at most 4 MB).
const BUILD_LIMIT: u64 = 8 << 20;

/// Two bank images: what a device runs and the release it is updated to.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Short name (the directory's name for a built pair).
    pub name: String,
    /// What differs, one line.
    pub about: String,
    /// Whether it was built in-process (no cross toolchain needed).
    pub synthetic: bool,
    /// The running image.
    pub old: Vec<u8>,
    /// The new release.
    pub new: Vec<u8>,
}

fn record(version: FirmwareVersion) -> Result<VersionRecord, String> {
    Ok(VersionRecord {
        version,
        // `ferrota image pack --security-counter auto`.
        security_counter: version.0,
        hardware: HardwareId::new(BOARD).ok_or("board id")?,
        flags: 0,
    })
}

fn pack(
    key: &BootSigningKey,
    version: FirmwareVersion,
    builds: &[(Region, Vec<Segment>)],
) -> Result<Vec<u8>, String> {
    let mut b = BankBuilder::new(record(version)?);
    for (region, segments) in builds {
        b.add(*region, segments)
            .map_err(|e| format!("{region} build: {e}"))?;
    }
    b.finish(key).map_err(|e| format!("signing: {e}"))
}

/// The in-process pairs: the same generated code at two versions (only the version record,
/// headers and signatures change), and a random edit of it (scattered byte changes and a
/// 64-byte insertion that shifts the rest of CM7_0, as added code does). Generated code is
/// pseudo-random bytes: it does not compress, unlike compiler output.
pub fn synthetic(key: &BootSigningKey) -> Result<Vec<Pair>, String> {
    let (v1, v2) = (FirmwareVersion::new(1, 0, 0), FirmwareVersion::new(1, 1, 0));
    let cm0p = sample_build(Region::Cm0p, 16 * 1024, 7);
    let cm7 = sample_build(Region::Cm7_0, 192 * 1024, 7);
    let old = pack(
        key,
        v1,
        &[(Region::Cm0p, cm0p.clone()), (Region::Cm7_0, cm7.clone())],
    )?;
    let bumped = pack(
        key,
        v2,
        &[(Region::Cm0p, cm0p.clone()), (Region::Cm7_0, cm7.clone())],
    )?;
    let mut edited = cm7;
    let code = &mut edited[0].data;
    let noise = sample_bytes(99, 64 + 2 * 32);
    for (k, pair) in noise[64..].chunks(2).enumerate() {
        // 32 scattered changes past the vector table.
        let at = 0x400 + (usize::from(pair[0]) << 8 | usize::from(pair[1])) * 2 + k;
        if let Some(b) = code.get_mut(at) {
            *b ^= 0x5A;
        }
    }
    let at = code.len() / 3;
    code.splice(at..at, noise[..64].iter().copied());
    let edit = pack(key, v2, &[(Region::Cm0p, cm0p), (Region::Cm7_0, edited)])?;
    Ok(vec![
        Pair {
            name: "synthetic-version".into(),
            about:
                "generated code, unchanged; version 1.0.0 -> 1.1.0 (record, headers, signatures)"
                    .into(),
            synthetic: true,
            old: old.clone(),
            new: bumped,
        },
        Pair {
            name: "synthetic-edit".into(),
            about: "generated code with 32 bytes changed and 64 inserted in CM7_0; 1.0.0 -> 1.1.0"
                .into(),
            synthetic: true,
            old,
            new: edit,
        },
    ])
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One side of a built pair: `cm0p.{elf,bin}`, `cm7_0.{elf,bin}`, optionally `cm7_1.*`, and
/// `version`. An ELF carries its addresses; a raw `.bin` is placed after its region's CySAF
/// header (region start + 0x100), where a linker puts the vector table.
fn side(dir: &Path, key: &BootSigningKey) -> Result<Vec<u8>, String> {
    let v = read_text(&dir.join("version"))?;
    let version = FirmwareVersion::parse(&v)
        .ok_or_else(|| format!("{}: '{v}' is not a version", dir.join("version").display()))?;
    let mut builds = Vec::new();
    for region in Region::ALL {
        let (elf, raw) = (
            dir.join(format!("{}.elf", region.name())),
            dir.join(format!("{}.bin", region.name())),
        );
        let (path, format) = if elf.is_file() {
            (elf, None)
        } else if raw.is_file() {
            let address = ACTIVE_BANK_BASE + region.offset() + VECTOR_TABLE_OFFSET;
            (raw, Some(Format::Raw { address }))
        } else if region == Region::Cm7_1 {
            continue;
        } else {
            return Err(format!(
                "{}: no {}.elf or {}.bin",
                dir.display(),
                region.name(),
                region.name()
            ));
        };
        let len = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if len > BUILD_LIMIT {
            return Err(format!(
                "{}: {len} bytes, too large a build",
                path.display()
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let segments =
            input::read(&bytes, format).map_err(|e| format!("{}: {e}", path.display()))?;
        builds.push((region, segments));
    }
    pack(key, version, &builds).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The pairs in `dir`: every subdirectory with `old/` and `new/` (hidden ones skipped), in
/// name order. `Ok(None)` when `dir` does not exist.
pub fn from_dir(dir: &Path, key: &BootSigningKey) -> Result<Option<Vec<Pair>>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut dirs = Vec::new();
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if !name.starts_with('.') && p.join("old").is_dir() && p.join("new").is_dir() {
            dirs.push((name, p));
        }
    }
    dirs.sort();
    let mut pairs = Vec::new();
    for (name, p) in dirs {
        let about = read_text(&p.join("about")).unwrap_or_default();
        pairs.push(Pair {
            name,
            about,
            synthetic: false,
            old: side(&p.join("old"), key)?,
            new: side(&p.join("new"), key)?,
        });
    }
    Ok(Some(pairs))
}

/// Bytes of `image` that are code rather than fill: for each region, from its start to its
/// last non-zero byte before the signature slot, plus the 256-byte signature slot.
pub fn code_bytes(image: &[u8]) -> usize {
    Region::ALL
        .into_iter()
        .map(|r| {
            let lo = r.offset() as usize;
            let hi = (lo + r.full_obj_size() as usize).min(image.len());
            let used = image
                .get(lo..hi)
                .and_then(|s| s.iter().rposition(|&b| b != 0))
                .map_or(0, |i| i + 1);
            used + ferrota_image::layout::SIGNATURE_SLOT_SIZE as usize
        })
        .sum()
}
