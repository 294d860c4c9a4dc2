//! The classic Device Shadow, device side: the reported document `ferrota-agent` publishes on
//! `$aws/things/<thing>/shadow/update` (topics in [`crate::topic`]), and AWS's shadow limits,
//! which the server enforces.
//!
//! ```text
//! {"state":{"reported":{"firmware":{"version":"1.2.0","bank":"A","pendingTrial":false,
//!   "antiRollbackFloor":3},"hardwareId":"KIT_T2G-B-H_LITE"}},"clientToken":"7"}
//! ```
//!
//! The names are `ferrota-api`'s `ReportedState` (serde camelCase), so the server's inventory
//! reads the document with that type. Encoded into a caller buffer, no allocation.

use crate::status::AppVersion;
use crate::write::{BufferTooSmall, SliceWriter};

/// AWS's limit on a shadow's state: the `desired` and `reported` sections (as stored, after
/// the merge), in bytes of JSON; metadata does not count. Larger is refused with 413.
pub const STATE_BYTES_MAX: usize = 8 * 1024;
/// AWS's limit on the nesting of `desired` and `reported`: "JSON contains too many levels of
/// nesting; maximum is 6". Counted as objects below the section: `{"a":{"b":1}}` as a
/// section is 2 levels (the section's own object is 1).
pub const STATE_DEPTH_MAX: usize = 6;
/// AWS's limit on a request's payload (the MQTT message), in bytes. Larger is refused with 413.
pub const REQUEST_BYTES_MAX: usize = 128 * 1024;
/// Longest `clientToken` (64 bytes; longer is 400 "Invalid clientToken").
pub const CLIENT_TOKEN_MAX: usize = crate::limits::CLIENT_TOKEN_MAX;
/// The longest reported document [`ReportedOut::encode`] writes (a 10-digit token, a 32-byte
/// hardware id of characters that all need escaping, a `trust` object with every number at its
/// maximum): the agent's transmit buffer is this size. Without `trust` the longest is 240.
pub const REPORTED_BYTES_MAX: usize = 352;

/// The device's signed-metadata state (issue #20), reported as `"trust":{…}` under `reported`.
///
/// ```text
/// "trust":{"policy":"require","root":2,"seq":7,"fresh":true,"plain":0}
/// "trust":{"policy":"aws-plain","plain":1}
/// ```
/// Decision: in `aws-plain` mode with no root state worth showing the agent fills only
/// `policy` and `plain` (`root`, `seq`, `fresh` are `None` and left out), so the report stays
/// short for AWS devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustOut {
    /// `true`: `"require"`; `false`: `"aws-plain"`.
    pub require: bool,
    /// The trusted root's version.
    pub root: Option<u32>,
    /// The sequence number of the last activated manifest.
    pub seq: Option<u32>,
    /// Whether a signed timestamp is currently fresh.
    pub fresh: Option<bool>,
    /// Images activated on the AWS code-signing signature alone (no manifest), since start.
    pub plain: u32,
}

/// The device's reported state, as the agent publishes it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedOut<'a> {
    /// The running version (`major.minor.build`).
    pub version: AppVersion,
    /// The bank it booted from, `'A'` or `'B'`.
    pub bank: char,
    /// Whether the running image is on trial (not yet confirmed).
    pub pending_trial: bool,
    /// The anti-rollback floor in force.
    pub anti_rollback_floor: u32,
    /// The board's hardware id; left out when `None` or empty.
    pub hardware_id: Option<&'a str>,
    /// The request's `clientToken`; left out when `None`.
    pub client_token: Option<&'a str>,
    /// The signed-metadata state (issue #20); left out when `None` (the AWS bytes unchanged).
    pub trust: Option<TrustOut>,
}

impl ReportedOut<'_> {
    /// Writes the update request into `buf`, returning the text.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.raw("{\"state\":{\"reported\":{\"firmware\":{\"version\":\"")?;
        let v = self.version;
        w.fmt(format_args!("{}.{}.{}", v.major, v.minor, v.build))?;
        w.raw("\",\"bank\":")?;
        let mut b = [0u8; 4];
        w.json_str(self.bank.encode_utf8(&mut b))?;
        w.raw(",\"pendingTrial\":")?;
        w.raw(if self.pending_trial { "true" } else { "false" })?;
        w.raw(",\"antiRollbackFloor\":")?;
        w.u64(u64::from(self.anti_rollback_floor))?;
        w.raw("}")?;
        if let Some(h) = self.hardware_id.filter(|h| !h.is_empty()) {
            w.raw(",")?;
            w.key("hardwareId")?;
            w.json_str(h)?;
        }
        if let Some(t) = &self.trust {
            w.raw(",\"trust\":{\"policy\":")?;
            w.raw(if t.require {
                "\"require\""
            } else {
                "\"aws-plain\""
            })?;
            if let Some(r) = t.root {
                w.raw(",\"root\":")?;
                w.u64(u64::from(r))?;
            }
            if let Some(q) = t.seq {
                w.raw(",\"seq\":")?;
                w.u64(u64::from(q))?;
            }
            if let Some(f) = t.fresh {
                w.raw(",\"fresh\":")?;
                w.raw(if f { "true" } else { "false" })?;
            }
            w.raw(",\"plain\":")?;
            w.u64(u64::from(t.plain))?;
            w.raw("}")?;
        }
        w.raw("}}")?;
        if let Some(t) = self.client_token {
            w.raw(",")?;
            w.key("clientToken")?;
            w.json_str(t)?;
        }
        w.raw("}")?;
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_document_is_the_api_names() {
        let r = ReportedOut {
            version: AppVersion::new(1, 2, 0),
            bank: 'A',
            pending_trial: false,
            anti_rollback_floor: 3,
            hardware_id: Some("KIT_T2G-B-H_LITE"),
            client_token: Some("7"),
            trust: None,
        };
        let mut buf = [0u8; 256];
        assert_eq!(
            r.encode(&mut buf).unwrap(),
            "{\"state\":{\"reported\":{\"firmware\":{\"version\":\"1.2.0\",\"bank\":\"A\",\
             \"pendingTrial\":false,\"antiRollbackFloor\":3},\"hardwareId\":\"KIT_T2G-B-H_LITE\"}},\
             \"clientToken\":\"7\"}"
        );
        let bare = ReportedOut {
            hardware_id: Some(""),
            client_token: None,
            pending_trial: true,
            ..r
        };
        assert_eq!(
            bare.encode(&mut buf).unwrap(),
            "{\"state\":{\"reported\":{\"firmware\":{\"version\":\"1.2.0\",\"bank\":\"A\",\
             \"pendingTrial\":true,\"antiRollbackFloor\":3}}}}"
        );
    }

    #[test]
    fn trust_object_under_reported() {
        let r = ReportedOut {
            version: AppVersion::new(1, 2, 0),
            bank: 'A',
            pending_trial: false,
            anti_rollback_floor: 3,
            hardware_id: None,
            client_token: None,
            trust: Some(TrustOut {
                require: true,
                root: Some(2),
                seq: Some(7),
                fresh: Some(true),
                plain: 0,
            }),
        };
        let mut buf = [0u8; 512];
        assert_eq!(
            r.encode(&mut buf).unwrap(),
            "{\"state\":{\"reported\":{\"firmware\":{\"version\":\"1.2.0\",\"bank\":\"A\",\
             \"pendingTrial\":false,\"antiRollbackFloor\":3},\"trust\":{\"policy\":\"require\",\
             \"root\":2,\"seq\":7,\"fresh\":true,\"plain\":0}}}}"
        );
        let plain = ReportedOut {
            trust: Some(TrustOut {
                require: false,
                root: None,
                seq: None,
                fresh: None,
                plain: 1,
            }),
            ..r
        };
        assert_eq!(
            plain.encode(&mut buf).unwrap(),
            "{\"state\":{\"reported\":{\"firmware\":{\"version\":\"1.2.0\",\"bank\":\"A\",\
             \"pendingTrial\":false,\"antiRollbackFloor\":3},\"trust\":{\"policy\":\"aws-plain\",\
             \"plain\":1}}}}"
        );
    }

    #[test]
    fn the_longest_document_fits_its_bound_and_too_small_a_buffer_is_an_error() {
        let r = ReportedOut {
            version: AppVersion::new(255, 255, 65535),
            bank: 'B',
            pending_trial: false,
            anti_rollback_floor: u32::MAX,
            hardware_id: Some("\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""),
            client_token: Some("4294967295"),
            trust: None,
        };
        let mut buf = [0u8; 512];
        let n = r.encode(&mut buf).unwrap().len();
        assert!(n <= 240, "{n}");
        let r = ReportedOut {
            trust: Some(TrustOut {
                require: false,
                root: Some(u32::MAX),
                seq: Some(u32::MAX),
                fresh: Some(false),
                plain: u32::MAX,
            }),
            ..r
        };
        let n = r.encode(&mut buf).unwrap().len();
        assert!(n <= REPORTED_BYTES_MAX, "{n}");
        let mut small = [0u8; 40];
        assert_eq!(r.encode(&mut small), Err(BufferTooSmall));
    }
}
