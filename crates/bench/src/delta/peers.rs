//! The peers, run as a subprocess on the same old/new files: detools (`create_patch`,
//! sequential, bsdiff, lzma and heatshrink) and bsdiff4 (`file_diff`), through
//! `scripts/delta-peers.py` (embedded, run with `python3 -c`), which applies every patch back
//! and checks it rebuilds the new image.

use std::path::Path;
use std::process::Command;

/// The helper script.
const SCRIPT: &str = include_str!("../../../../scripts/delta-peers.py");

/// Patch sizes of the peers for one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sizes {
    /// `detools create_patch --compression lzma`.
    pub detools_lzma: u64,
    /// `detools create_patch --compression heatshrink`.
    pub detools_heatshrink: u64,
    /// `bsdiff4.file_diff`.
    pub bsdiff4: u64,
}

/// What running the peers gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sizes, and the modules' versions ("detools 0.53.0, bsdiff4 1.3.2").
    Sizes(Sizes, String),
    /// Python or a module is missing: the one-line note to print.
    Missing(String),
}

/// Runs the peers on `old` and `new` (files), with scratch space in `work`.
pub fn run(old: &Path, new: &Path, work: &Path) -> Result<Outcome, String> {
    let out = match Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(old)
        .arg(new)
        .arg(work)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::Missing(
                "python3 not found: detools and bsdiff4 skipped".into(),
            ));
        }
        Err(e) => return Err(format!("python3: {e}")),
    };
    if !out.status.success() {
        return Err(format!(
            "scripts/delta-peers.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "scripts/delta-peers.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    })?;
    if let Some(m) = v["missing"].as_str() {
        return Ok(Outcome::Missing(format!(
            "python module {m} missing: peers skipped (python3 -m pip install detools bsdiff4)"
        )));
    }
    let size = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("scripts/delta-peers.py: no size for {k}: {v}"))
    };
    let versions = format!(
        "detools {}, bsdiff4 {}",
        v["versions"]["detools"].as_str().unwrap_or("?"),
        v["versions"]["bsdiff4"].as_str().unwrap_or("?")
    );
    Ok(Outcome::Sizes(
        Sizes {
            detools_lzma: size("detools_lzma")?,
            detools_heatshrink: size("detools_heatshrink")?,
            bsdiff4: size("bsdiff4")?,
        },
        versions,
    ))
}
