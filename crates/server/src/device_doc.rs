//! The job document a device is served (issue #19): the stored `afr_ota` document lists, after
//! the request's files, alternative encodings of `files[0]` (a packed full image, and deltas
//! from earlier images, each with its `baseVersion`). A device is sent `files[0]` and the
//! others as stored, but of the deltas only those it may use: whose `baseVersion` is the
//! `firmware.version` it reports in its shadow and, when both are known, whose
//! `baseHardwareId` is its `hardwareId`. A thing with no reported state gets no delta. This
//! keeps the document a device parses small (each delta entry is ~300 bytes) and never offers
//! a delta that cannot apply.
//!
//! The document is filtered as text: kept entries are copied byte for byte, so `files[0]` and
//! everything around `files` is exactly what was stored (AWS devices see what they always
//! saw). An operator reads the whole document (`DescribeJob`, the API), not this one.

use std::borrow::Cow;

use ferrota_proto::json::{JsonObject, parse_object};

use crate::context::Services;
use crate::inventory::{ReportedState, reported_state};
use crate::shadow;
use crate::store::StoreResult;

/// The key that marks a delta entry.
const BASE_VERSION: &str = "baseVersion";

/// `document` as `thing` is to see it (see the module docs). The shadow is read only when the
/// document holds a delta entry.
pub async fn for_thing<'d>(
    b: &Services,
    thing: &str,
    document: &'d str,
) -> StoreResult<Cow<'d, str>> {
    if !document.contains(BASE_VERSION) {
        return Ok(Cow::Borrowed(document));
    }
    let rec = b.store.shadow(thing).await?;
    let reported = rec
        .as_ref()
        .and_then(shadow::Document::of)
        .and_then(|d| d.reported().map(reported_state));
    Ok(tailor(document, reported.as_ref()))
}

/// Whether a delta entry may go to a device that reports `r`.
fn matches(entry: JsonObject<'_>, r: Option<&ReportedState>) -> bool {
    let Some(r) = r else {
        return false;
    };
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| s.as_plain())
    };
    let version_ok = match (text(BASE_VERSION), &r.firmware) {
        (Some(v), Some(f)) => v == f.version,
        _ => false,
    };
    let hardware_ok = match (text("baseHardwareId"), r.hardware_id.as_deref()) {
        (Some(want), Some(have)) if !want.is_empty() && !have.is_empty() => want == have,
        _ => true,
    };
    version_ok && hardware_ok
}

/// `document` with the delta entries `r` does not match left out of `afr_ota.files`; the
/// document as it is when it has none to leave out or is not an `afr_ota` document.
pub fn tailor<'d>(document: &'d str, r: Option<&ReportedState>) -> Cow<'d, str> {
    let files = parse_object(document.as_bytes())
        .ok()
        .flatten()
        .and_then(|top| top.get("afr_ota"))
        .and_then(|v| v.as_object())
        .and_then(|ota| ota.get("files"))
        .and_then(|v| v.as_array());
    let Some(files) = files else {
        return Cow::Borrowed(document);
    };
    let mut kept = Vec::new();
    let mut dropped = false;
    for v in files.iter() {
        match v.as_object() {
            Some(o) if o.get(BASE_VERSION).is_some() && !matches(o, r) => dropped = true,
            Some(o) => kept.push(o.raw()),
            // Not an object: kept as stored (the server never writes one).
            None => return Cow::Borrowed(document),
        }
    }
    if !dropped {
        return Cow::Borrowed(document);
    }
    // `files.raw()` is a slice of `document`: its offset locates the array in the text.
    let start = files.raw().as_ptr() as usize - document.as_ptr() as usize;
    let end = start + files.raw().len();
    let mut out = String::with_capacity(document.len());
    out.push_str(&document[..start]);
    out.push('[');
    out.push_str(&kept.join(","));
    out.push(']');
    out.push_str(&document[end..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::FirmwareState;

    const DOC: &str = r#"{"afr_ota":{"protocols":["MQTT"],"streamname":"s","files":[{"filepath":"a.bin","filesize":9,"fileid":0},{"filepath":"a.bin.frpk","filesize":5,"fileid":1,"encoding":"frpk1","blockSize":4096},{"filepath":"a.bin.from-1.0.0.frpk","filesize":3,"fileid":2,"encoding":"frpk1","blockSize":4096,"baseSha256":"00","baseSize":9,"baseVersion":"1.0.0","baseHardwareId":"KIT"},{"filepath":"a.bin.from-1.1.0.frpk","filesize":3,"fileid":3,"encoding":"frpk1","blockSize":4096,"baseSha256":"11","baseSize":9,"baseVersion":"1.1.0"}]}}"#;

    fn reported(version: Option<&str>, hw: Option<&str>) -> ReportedState {
        ReportedState {
            firmware: version.map(|v| FirmwareState {
                version: v.into(),
                bank: "A".into(),
                pending_trial: false,
                anti_rollback_floor: 0,
            }),
            hardware_id: hw.map(str::to_string),
        }
    }

    fn ids(doc: &str) -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        v["afr_ota"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["fileid"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn a_device_gets_the_deltas_of_its_version_and_board_only() {
        assert_eq!(ids(&tailor(DOC, None)), [0, 1]);
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(None, Some("KIT"))))),
            [0, 1]
        );
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(Some("1.0.0"), None)))),
            [0, 1, 2]
        );
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(Some("1.0.0"), Some("KIT"))))),
            [0, 1, 2]
        );
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(Some("1.0.0"), Some("OTHER"))))),
            [0, 1]
        );
        // A base without a hardware id matches any board.
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(Some("1.1.0"), Some("OTHER"))))),
            [0, 1, 3]
        );
        assert_eq!(
            ids(&tailor(DOC, Some(&reported(Some("2.0.0"), None)))),
            [0, 1]
        );
    }

    #[test]
    fn kept_entries_and_the_rest_are_copied_byte_for_byte() {
        let t = tailor(DOC, Some(&reported(Some("1.1.0"), None)));
        let cut_start = DOC.find(r#",{"filepath":"a.bin.from-1.0.0"#).unwrap();
        let cut_end = DOC.find(r#",{"filepath":"a.bin.from-1.1.0"#).unwrap();
        let want = format!("{}{}", &DOC[..cut_start], &DOC[cut_end..]);
        assert_eq!(t, want);
        // Nothing to leave out, or not an OTA document: the very same text.
        let plain = r#"{"afr_ota":{"protocols":["MQTT"],"files":[{"filesize":1,"fileid":0}]}}"#;
        assert!(matches!(tailor(plain, None), Cow::Borrowed(_)));
        assert!(matches!(tailor(r#"{"custom":1}"#, None), Cow::Borrowed(_)));
        assert!(matches!(tailor("not json", None), Cow::Borrowed(_)));
    }
}
