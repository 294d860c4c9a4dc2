//! `ferrota image show`: text and JSON renderings of [`ferrota_image::inspect::BankSummary`].

use std::fmt::Write as _;

use anyhow::Result;
use ferrota_image::header::CySafHeader;
use ferrota_image::inspect::{self, BankSummary, RegionSummary};
use ferrota_image::version::FLAG_CM7_1_APP;
use ferrota_image::{BANK_SIZE, VersionRecord};
use serde_json::{Value, json};

use crate::args::ShowArgs;
use crate::imagecmd::bankfile;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `image show`: a raw bank image, or the Intel HEX `image pack -o bank.hex` writes. A file
/// that is not a bank image at all is an error saying what it is
/// ([`bankfile::not_a_bank_image`]); a malformed bank image is shown with the reasons it would
/// be refused.
pub fn show(a: &ShowArgs) -> Result<()> {
    let bank = bankfile::read_bank_file(&a.input)?;
    let summary = inspect::inspect(&bank.bytes);
    let file = a.input.display().to_string();
    if a.json {
        let mut doc = to_json(&file, &summary);
        doc["hexAddress"] = json!(bank.hex_address);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        if let Some(at) = bank.hex_address {
            println!("{file}: Intel HEX bank image at {at:#010x}");
        }
        print!("{}", to_text(&file, &summary));
    }
    Ok(())
}

/// The appId `image pack` writes for this region and the record's version, when the header
/// holds another one (the appId follows the version record; see
/// `ferrota_image::input::set_app_ids`).
fn app_id_mismatch(r: &RegionSummary, record: Option<&VersionRecord>) -> Option<u32> {
    let (Ok(()), Some(h), Some(rec)) = (&r.header_check, r.header, record) else {
        return None;
    };
    let want = CySafHeader::for_region(r.region, rec.version).app_id;
    (h.app_id != want).then_some(want)
}

fn region_json(r: &RegionSummary, record: Option<&VersionRecord>) -> Value {
    let header = r.header.map(|h| {
        json!({
            "objSize": h.obj_size,
            "appId": h.app_id,
            "attributes": h.attributes,
            "numCores": h.num_cores,
            "core0Vt": h.core0_vt,
            "core0Id": h.core0_id,
        })
    });
    let valid = r.header_check.is_ok();
    json!({
        "name": r.region.name(),
        "offset": r.region.offset(),
        "size": r.region.size(),
        "header": header,
        "headerOk": valid,
        "headerError": r.header_check.as_ref().err().map(ToString::to_string),
        "appIdExpected": app_id_mismatch(r, record),
        "signatureOffset": r.header.filter(|_| valid).map(|h| h.signature_offset(r.region)),
        "signed": r.signed,
        "sha256": r.digest.as_ref().map(|d| hex(d)),
    })
}

fn record_json(r: &VersionRecord) -> Value {
    json!({
        "version": r.version.to_string(),
        "versionWord": r.version.0,
        "securityCounter": r.security_counter,
        "hardware": r.hardware.as_str(),
        "flags": r.flags,
        "cm7_1App": r.flags & FLAG_CM7_1_APP != 0,
    })
}

/// The JSON document of `show --json`, in the camelCase of AWS's APIs and every other `--json`.
/// A region's `appIdExpected` is `null` when its appId agrees with the version record, else the
/// appId `image pack` would write.
pub fn to_json(file: &str, s: &BankSummary) -> Value {
    let record = s.record.as_ref().ok();
    json!({
        "file": file,
        "size": s.len,
        "bankSize": BANK_SIZE,
        "sizeOk": s.len == BANK_SIZE as usize,
        "regions": s.regions.iter().map(|r| region_json(r, record)).collect::<Vec<_>>(),
        "versionRecord": record.map(record_json),
        "versionRecordError": s.record.as_ref().err().map(ToString::to_string),
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
                if let (Some(want), Ok(rec)) =
                    (app_id_mismatch(r, s.record.as_ref().ok()), &s.record)
                {
                    let _ = writeln!(
                        out,
                        "  warning: appId {:#010x} disagrees with the version record's {} (pack writes {want:#010x} for it): the header names another version than the one the boot chain checks",
                        h.app_id, rec.version
                    );
                }
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
