//! `ferrota image show`: text and JSON renderings of [`ferrota_image::inspect::BankSummary`].

use anyhow::Result;
use ferrota_image::inspect::{self, BankSummary, RegionSummary};
use ferrota_image::version::FLAG_CM7_1_APP;
use ferrota_image::{BANK_SIZE, VersionRecord};
use serde_json::{Value, json};

use crate::args::ShowArgs;
use crate::imagecmd::bankfile;

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    inspect::hex(bytes)
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
        "appIdExpected": inspect::app_id_mismatch(r, record),
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

/// The text of `show` (shared with the console's release page: [`inspect::report`]).
pub fn to_text(file: &str, s: &BankSummary) -> String {
    inspect::report(file, s)
}
