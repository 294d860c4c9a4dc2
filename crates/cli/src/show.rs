//! `ferrota image show`: text and JSON renderings of [`ferrota_image::inspect::BankSummary`].

use std::fmt::Write as _;

use anyhow::Result;
use ferrota_image::inspect::{self, BankSummary, RegionSummary};
use ferrota_image::version::FLAG_CM7_1_APP;
use ferrota_image::{BANK_SIZE, VersionRecord};
use serde_json::{Value, json};

use crate::args::ShowArgs;
use crate::fsio;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `image show`.
pub fn show(a: &ShowArgs) -> Result<()> {
    let bytes = fsio::read(&a.input, fsio::BANK_LIMIT)?;
    let summary = inspect::inspect(&bytes);
    let file = a.input.display().to_string();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&file, &summary))?
        );
    } else {
        print!("{}", to_text(&file, &summary));
    }
    Ok(())
}

fn region_json(r: &RegionSummary) -> Value {
    let header = r.header.map(|h| {
        json!({
            "obj_size": h.obj_size,
            "app_id": h.app_id,
            "attributes": h.attributes,
            "num_cores": h.num_cores,
            "core0_vt": h.core0_vt,
            "core0_id": h.core0_id,
        })
    });
    let valid = r.header_check.is_ok();
    json!({
        "name": r.region.name(),
        "offset": r.region.offset(),
        "size": r.region.size(),
        "header": header,
        "header_ok": valid,
        "header_error": r.header_check.as_ref().err().map(ToString::to_string),
        "signature_offset": r.header.filter(|_| valid).map(|h| h.signature_offset(r.region)),
        "signed": r.signed,
        "sha256": r.digest.as_ref().map(|d| hex(d)),
    })
}

fn record_json(r: &VersionRecord) -> Value {
    json!({
        "version": r.version.to_string(),
        "version_word": r.version.0,
        "security_counter": r.security_counter,
        "hardware": r.hardware.as_str(),
        "flags": r.flags,
        "cm7_1_app": r.flags & FLAG_CM7_1_APP != 0,
    })
}

/// The JSON document of `show --json`.
pub fn to_json(file: &str, s: &BankSummary) -> Value {
    json!({
        "file": file,
        "size": s.len,
        "bank_size": BANK_SIZE,
        "size_ok": s.len == BANK_SIZE as usize,
        "regions": s.regions.iter().map(region_json).collect::<Vec<_>>(),
        "version_record": s.record.as_ref().ok().map(record_json),
        "version_record_error": s.record.as_ref().err().map(ToString::to_string),
    })
}

/// The text of `show`.
pub fn to_text(file: &str, s: &BankSummary) -> String {
    let mut out = String::new();
    let size_note = if s.len == BANK_SIZE as usize {
        "one bank".to_string()
    } else {
        format!("a bank is {BANK_SIZE:#x} bytes")
    };
    let _ = writeln!(out, "{file}: {:#x} bytes ({size_note})", s.len);
    match &s.record {
        Ok(r) => {
            let _ = writeln!(
                out,
                "version record: {} (word {:#010x}), security counter {}, hardware {:?}, flags {:#x}{}",
                r.version,
                r.version.0,
                r.security_counter,
                r.hardware.as_str(),
                r.flags,
                if r.flags & FLAG_CM7_1_APP != 0 {
                    " (CM7_1 app)"
                } else {
                    ""
                }
            );
        }
        Err(e) => {
            let _ = writeln!(out, "version record: none ({e})");
        }
    }
    for r in &s.regions {
        let _ = writeln!(
            out,
            "{} region at {:#08x}..{:#08x}:",
            r.region,
            r.region.offset(),
            r.region.end()
        );
        match &r.header {
            Some(h) => {
                let _ = writeln!(
                    out,
                    "  header: objSize {:#x}, appId {:#010x}, attributes {:#x}, numCores {}, core0Vt {:#x}, core0Id {:#010x}",
                    h.obj_size, h.app_id, h.attributes, h.num_cores, h.core0_vt, h.core0_id
                );
            }
            None => {
                let _ = writeln!(out, "  header: missing");
            }
        }
        match &r.header_check {
            Ok(()) => {
                let sig_at = r.header.map_or(0, |h| h.signature_offset(r.region));
                let signed = match r.signed {
                    Some(true) => "present",
                    Some(false) => "empty (unsigned)",
                    None => "missing (image truncated)",
                };
                let _ = writeln!(out, "  signature slot at {sig_at:#08x}: {signed}");
            }
            Err(e) => {
                let _ = writeln!(out, "  header refused: {e}");
            }
        }
        if let Some(d) = &r.digest {
            let _ = writeln!(out, "  sha256 of signed bytes: {}", hex(d));
        }
    }
    out
}
