//! MQTT topic names and filters (MQTT 3.1.1 §4.7): validation, matching, and "filter A is
//! covered by filter B" for policy checks on SUBSCRIBE.
//!
//! Our own matcher rather than `rumqttc::matches`, which never matches a topic starting with
//! `$`: here `$aws/things/+/jobs/#` matches `$aws/things/t/jobs/notify-next`, and only a
//! wildcard in the *first* level (`#`, `+/…`) skips `$` topics, as §4.7.2 says.

/// A topic name a client may publish to: non-empty, no wildcards, no NUL, ≤ 65535 bytes.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// A topic filter: non-empty; `#` only as the whole last level; `+` only as a whole level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return false;
        }
        if l.contains('+') && *l != "+" {
            return false;
        }
    }
    true
}

/// Whether a filter is within AWS IoT Core's size limits: at most `max_len` bytes (256) and
/// `max_slashes` forward slashes (7). Checked on SUBSCRIBE so that one session cannot hold
/// large filters (60 KB filters × thousands were accepted before).
pub fn within_limits(filter: &str, max_len: usize, max_slashes: usize) -> bool {
    filter.len() <= max_len && filter.bytes().filter(|&b| b == b'/').count() <= max_slashes
}

/// Whether `topic` (a valid topic name) matches `filter` (a valid filter).
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic matched by `inner` is also matched by `outer` (both valid filters).
/// Used to decide whether a policy pattern allows a SUBSCRIBE.
pub fn covers(outer: &str, inner: &str) -> bool {
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    let mut first = true;
    loop {
        match (o.next(), i.next()) {
            (Some("#"), Some(il)) => {
                // `#` at the first level does not cover `$` topics.
                return !(first && il.starts_with('$'));
            }
            (Some("#"), None) => return true,
            (Some("+"), Some(il)) => {
                if il == "#" || (first && il.starts_with('$')) {
                    return false;
                }
            }
            (Some(ol), Some(il)) if ol == il && il != "+" && il != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(matches(
            "$aws/things/t/jobs/notify-next",
            "$aws/things/+/jobs/#"
        ));
        assert!(matches("$aws/things/t/jobs", "$aws/things/t/jobs/#"));
        assert!(!matches("$aws/things/t/jobs", "#"));
        assert!(!matches("$aws/x", "+/x"));
        assert!(matches("a/b/c", "a/+/c"));
        assert!(!matches("a/b/c", "a/+"));
        assert!(matches("a//c", "a/+/c"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn validity() {
        assert!(valid_filter("a/+/#"));
        assert!(valid_filter("#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b#"));
        assert!(!valid_filter("a+/b"));
        assert!(!valid_filter(""));
        assert!(valid_topic("$aws/things/t/jobs/$next/get"));
        assert!(!valid_topic("a/+"));
    }

    #[test]
    fn covering() {
        let p = "$aws/things/t/#";
        assert!(covers(p, "$aws/things/t/jobs/notify-next"));
        assert!(covers(p, "$aws/things/t/#"));
        assert!(covers(p, "$aws/things/t/streams/+/data/cbor"));
        assert!(!covers(p, "$aws/things/+/jobs/#"));
        assert!(!covers(p, "$aws/things/u/jobs/#"));
        assert!(!covers(p, "#"));
        assert!(!covers("#", "$aws/things/t/jobs"));
        assert!(covers("#", "a/b"));
        assert!(covers("a/+/c", "a/b/c"));
        assert!(!covers("a/+/c", "a/#"));
        assert!(!covers("a/b/c", "a/+/c"));
    }
}
