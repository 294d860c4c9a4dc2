//! AWS-IoT-style authorisation: which topics a connected thing may publish to and subscribe to.
//!
//! A [`Policy`] is a list of allowed *patterns*, MQTT topic filters in which
//! `${iot:Connection.Thing.ThingName}` stands for the connected thing's name (the policy
//! variable AWS IoT uses). It is evaluated per connection, so one policy document serves every
//! thing, as an AWS policy attached to every certificate does.
//!
//! * PUBLISH to topic `t` is allowed when `t` matches one of the publish patterns.
//! * SUBSCRIBE to filter `f` is allowed when every topic `f` can match is matched by one
//!   subscribe pattern ([`crate::filter::covers`]); receiving is implied by subscribing.
//! * Everything else is denied; a denied PUBLISH or SUBSCRIBE disconnects the client, as AWS IoT
//!   does, and is logged.
//!
//! The default policy allows exactly `$aws/things/${iot:Connection.Thing.ThingName}/#` for both,
//! so a thing can use its own Jobs, Streams and Device Shadow topics and nothing of another
//! thing's (`tests/shadow.rs` holds the shadow to it).

use serde::{Deserialize, Serialize};

use crate::filter::{covers, matches};

/// The policy variable replaced by the thing name.
pub const THING_NAME_VAR: &str = "${iot:Connection.Thing.ThingName}";

/// Allowed patterns for publish and subscribe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Topic filters a thing may publish to.
    pub publish: Vec<String>,
    /// Topic filters a thing may subscribe to (a subscription must be covered by one).
    pub subscribe: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        let own = format!("$aws/things/{THING_NAME_VAR}/#");
        Policy {
            publish: vec![own.clone()],
            subscribe: vec![own],
        }
    }
}

/// Substitutes the thing name. A thing name cannot hold MQTT wildcards (AWS's character set,
/// checked at connect), so the result is a filter of the same shape as the pattern.
fn expand(pattern: &str, thing: &str) -> String {
    pattern.replace(THING_NAME_VAR, thing)
}

impl Policy {
    /// The default policy plus extra patterns (configuration).
    pub fn with_extra(publish: &[String], subscribe: &[String]) -> Self {
        let mut p = Policy::default();
        p.publish.extend(publish.iter().cloned());
        p.subscribe.extend(subscribe.iter().cloned());
        p
    }

    /// May `thing` publish to `topic`?
    pub fn allows_publish(&self, thing: &str, topic: &str) -> bool {
        self.publish
            .iter()
            .any(|p| matches(topic, &expand(p, thing)))
    }

    /// May `thing` subscribe to `filter`?
    pub fn allows_subscribe(&self, thing: &str, filter: &str) -> bool {
        self.subscribe
            .iter()
            .any(|p| covers(&expand(p, thing), filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_own_thing_only() {
        let p = Policy::default();
        assert!(p.allows_publish("a", "$aws/things/a/jobs/$next/get"));
        assert!(!p.allows_publish("a", "$aws/things/b/jobs/$next/get"));
        assert!(!p.allows_publish("a", "$aws/things/ab/jobs/$next/get"));
        assert!(!p.allows_publish("a", "other/topic"));
        assert!(p.allows_subscribe("a", "$aws/things/a/jobs/notify-next"));
        assert!(p.allows_subscribe("a", "$aws/things/a/streams/+/data/cbor"));
        assert!(!p.allows_subscribe("a", "$aws/things/+/jobs/notify-next"));
        assert!(!p.allows_subscribe("a", "#"));
    }

    #[test]
    fn extra_patterns() {
        let p = Policy::with_extra(
            &["telemetry/${iot:Connection.Thing.ThingName}".into()],
            &["broadcast/#".into()],
        );
        assert!(p.allows_publish("a", "telemetry/a"));
        assert!(!p.allows_publish("a", "telemetry/b"));
        assert!(p.allows_subscribe("a", "broadcast/x/+"));
    }
}
