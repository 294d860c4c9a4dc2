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
/// hardware id of characters that all need escaping): fits the agent's 256-byte buffer.
pub const REPORTED_BYTES_MAX: usize = 240;

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
    fn the_longest_document_fits_its_bound_and_too_small_a_buffer_is_an_error() {
        let r = ReportedOut {
            version: AppVersion::new(255, 255, 65535),
            bank: 'B',
            pending_trial: false,
            anti_rollback_floor: u32::MAX,
            hardware_id: Some("\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""),
            client_token: Some("4294967295"),
        };
        let mut buf = [0u8; 512];
        let n = r.encode(&mut buf).unwrap().len();
        assert!(n <= REPORTED_BYTES_MAX, "{n}");
        let mut small = [0u8; 40];
        assert_eq!(r.encode(&mut small), Err(BufferTooSmall));
    }
}
