//! `ferrota image diff | compress`: packed "FRPK" files (issue #19) made on the operator's
//! machine, to see what a delta or a packed image costs before an update is created. The CLI's
//! one door to `ferrota-delta`: every call to it is in [`Packer`].

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use ferrota_delta::encode::{self, Params};
use ferrota_image::inspect;
use serde_json::json;

use crate::args::{CompressArgs, DiffArgs};
use crate::fsio::{self, Access};
use crate::imagecmd::not_a_bank;

/// The encoder with the parameters the server uses (its default block and chunk sizes), and
/// the check that what it made rebuilds the image.
struct Packer;

impl Packer {
    /// A delta from `old` to `new`, rebuilt in memory and compared with `new`.
    fn delta(old: &[u8], new: &[u8]) -> Result<Vec<u8>> {
        let p = encode::delta(old, new, &Params::default())
            .map_err(|e| anyhow!("making the delta failed: {e}"))?;
        Self::check(&p, old, new)?;
        Ok(p)
    }

    /// `image` packed, unpacked in memory and compared with `image`.
    fn full(image: &[u8]) -> Result<Vec<u8>> {
        let p = encode::full(image, &Params::default())
            .map_err(|e| anyhow!("packing the image failed: {e}"))?;
        Self::check(&p, &[], image)?;
        Ok(p)
    }

    fn check(packed: &[u8], old: &[u8], want: &[u8]) -> Result<()> {
        let got = encode::apply(packed, old)
            .map_err(|e| anyhow!("self-check: the packed file does not apply: {e}"))?;
        if got != want {
            bail!(
                "self-check: the packed file rebuilds another image (an encoder bug); nothing written"
            );
        }
        Ok(())
    }
}

/// Reads a bank image as OTA sends it; the error names the file and what is wrong.
fn read_bank(path: &Path, role: &str) -> Result<Vec<u8>> {
    let data = fsio::read(path, fsio::BANK_LIMIT).map_err(|e| anyhow!("{role}: {e:#}"))?;
    if let Some(why) = not_a_bank(&data) {
        bail!("{}: {role} is not a bank image: {why}", path.display());
    }
    Ok(data)
}

/// Runs of one byte value at least this long are fill (erased flash, or the padding `image
/// pack` leaves after a region's code), not code.
const FILL_RUN: usize = 256;

/// The image's code: its bytes outside runs of [`FILL_RUN`] or more of one value, so the ratio
/// says what a patch costs against the firmware that is really there, not the 4 MB bank.
fn code_bytes(image: &[u8]) -> usize {
    image
        .chunk_by(|a, b| a == b)
        .filter(|run| run.len() < FILL_RUN)
        .map(<[u8]>::len)
        .sum()
}

/// Prints what was written: sizes and ratios, as text or JSON.
fn report(what: &str, out: &Path, packed: usize, new: &[u8], from: Option<String>, json: bool) {
    let code = code_bytes(new);
    let pct = |d: usize| {
        if d == 0 {
            0.0
        } else {
            100.0 * packed as f64 / d as f64
        }
    };
    let version = |b: &[u8]| {
        inspect::inspect(b)
            .record
            .map(|r| r.version.to_string())
            .unwrap_or_default()
    };
    if json {
        let v = json!({
            "kind": what,
            "output": out.display().to_string(),
            "bytes": packed,
            "version": version(new),
            "baseVersion": from,
            "imageBytes": new.len(),
            "codeBytes": code,
            "percentOfCode": pct(code),
            "percentOfBank": pct(new.len()),
        });
        println!("{v}");
        return;
    }
    let from = from.map(|f| format!(" from {f}")).unwrap_or_default();
    println!(
        "{}: {what}{from} to {}, {packed} bytes (rebuilt and checked)",
        out.display(),
        version(new)
    );
    println!(
        "  {:.2} % of the image's code ({code} bytes outside runs of one value)",
        pct(code)
    );
    println!(
        "  {:.2} % of the bank ({} bytes, what a device downloads without it)",
        pct(new.len()),
        new.len()
    );
}

/// `image diff OLD NEW -o PATCH`.
pub fn diff(a: &DiffArgs) -> Result<()> {
    let old = read_bank(&a.old, "OLD")?;
    let new = read_bank(&a.new, "NEW")?;
    if old == new {
        bail!(
            "{} and {} are the same image: a device running it has nothing to update",
            a.old.display(),
            a.new.display()
        );
    }
    let patch = Packer::delta(&old, &new)?;
    fsio::write_atomic(&a.output, &patch, Access::Public, a.force)?;
    let from = inspect::inspect(&old)
        .record
        .ok()
        .map(|r| r.version.to_string());
    report("delta", &a.output, patch.len(), &new, from, a.json);
    Ok(())
}

/// `image compress IMAGE -o PACKED`.
pub fn compress(a: &CompressArgs) -> Result<()> {
    let image = read_bank(&a.input, "IMAGE")?;
    let packed = Packer::full(&image)?;
    fsio::write_atomic(&a.output, &packed, Access::Public, a.force)?;
    report(
        "packed image",
        &a.output,
        packed.len(),
        &image,
        None,
        a.json,
    );
    Ok(())
}
