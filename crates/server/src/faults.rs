//! Stream fault injection (a test and benchmark aid, never in the production configuration).
//!
//! [`FaultyOutbound`] wraps the services' [`Outbound`]; the bench and the lab install it
//! ([`crate::Broker::stream_faults`], or [`install`] on bare [`Services`]) and configure
//! it with a [`FaultConfig`].
//!
//! [`Faults`] (`stream_drop = 0.01`, `seed = …`) drops a fraction
//! of the data publishes, chosen by a seeded generator so a run can be repeated. The benchmark
//! of a lossy link (`ferrota bench loss`) needs "1% of block responses lost", and TLS hides
//! MQTT from a proxy on the wire: a proxy could only drop TCP bytes (which TCP then
//! retransmits: no message is ever lost) or break the session. Dropping the block where it is
//! produced is, to the device, the same as a TLS-terminating proxy dropping it, and it costs no
//! link bytes. It is applied in the in-process broker and in client mode alike, before the
//! publish; a dropped block is counted in [`Faults::dropped`].

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrota_proto::topic::{StreamOp, Topic, TopicKind};
use rumqttc::QoS;

use crate::context::{Outbound, Services};
use std::sync::atomic::{AtomicU64, Ordering};

/// The fault-injection settings: a test and benchmark aid, see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction of stream data publishes (blocks) dropped, 0.0 (default: none) to 1.0.
    pub stream_drop: f64,
    /// Seed of the generator that picks the dropped blocks: the same seed and the same
    /// sequence of blocks drop the same ones.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            stream_drop: 0.0,
            seed: 1,
        }
    }
}

impl FaultConfig {
    /// Checks the fraction (a typo such as `stream_drop = 10` for 10% must not drop everything
    /// silently).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.stream_drop) {
            return Err(format!(
                "faults.stream_drop must be a fraction from 0.0 to 1.0, not {}",
                self.stream_drop
            ));
        }
        Ok(())
    }
}

/// The broker's fault injector for stream data ([`FaultConfig`]); off until configured.
#[derive(Debug, Default)]
pub struct Faults {
    /// `(threshold, generator state)`: a block is dropped when the next draw is below the
    /// threshold (`stream_drop × 2^64`). `None`: off.
    state: Mutex<Option<(u64, u64)>>,
    dropped: AtomicU64,
}

impl Faults {
    /// Applies `cfg` (replacing any earlier setting; the generator restarts from the seed).
    pub fn configure(&self, cfg: &FaultConfig) -> Result<(), String> {
        cfg.validate()?;
        let threshold = if cfg.stream_drop >= 1.0 {
            u64::MAX
        } else {
            (cfg.stream_drop * 18_446_744_073_709_551_616.0) as u64
        };
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *g = (threshold > 0).then_some((threshold, cfg.seed));
        Ok(())
    }

    /// Whether the next data publish is dropped (advances the generator when on).
    pub fn drop_next(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((threshold, state)) = g.as_mut() else {
            return false;
        };
        let draw = splitmix64(state);
        let drop = *threshold == u64::MAX || draw < *threshold;
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }

    /// Data publishes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, and good enough to pick blocks.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An [`Outbound`] that drops stream data blocks as [`Faults`] decides and passes everything
/// else (Jobs replies, notifications, stream errors and descriptions) through.
pub struct FaultyOutbound {
    inner: Arc<dyn Outbound>,
    faults: Arc<Faults>,
}

impl FaultyOutbound {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Outbound>, faults: Arc<Faults>) -> Self {
        FaultyOutbound { inner, faults }
    }
}

fn is_stream_data(topic: &str) -> bool {
    matches!(
        Topic::parse(topic).map(|t| t.kind),
        Ok(TopicKind::Stream {
            op: StreamOp::Data,
            ..
        })
    )
}

impl Outbound for FaultyOutbound {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if is_stream_data(topic) && self.faults.drop_next() {
            return;
        }
        self.inner.publish(topic, payload, qos);
    }
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        if is_stream_data(topic) && self.faults.drop_next() {
            return;
        }
        self.inner.deliver_to(client_id, topic, payload, qos);
    }
}

/// Wraps the services' outbound in a [`FaultyOutbound`] and returns its (unconfigured, so
/// still off) injector. Call once per [`Services`]: each call adds a wrapper.
pub fn install(services: &Services) -> Arc<Faults> {
    let faults = Arc::new(Faults::default());
    let f = faults.clone();
    services.wrap_outbound(|inner| Arc::new(FaultyOutbound::new(inner, f)));
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Mutex<Vec<String>>);
    impl Outbound for Rec {
        fn publish(&self, topic: &str, _: Bytes, _: QoS) {
            self.0.lock().unwrap().push(topic.to_string());
        }
    }

    /// The wrapper drops only stream data blocks, and only once configured; a bad fraction is
    /// refused and changes nothing.
    #[test]
    fn the_wrapper_drops_stream_data_only() {
        let rec = Arc::new(Rec::default());
        let faults = Arc::new(Faults::default());
        let w = FaultyOutbound::new(rec.clone(), faults.clone());
        let data = "$aws/things/d/streams/s1/data/cbor";
        let reply = "$aws/things/d/jobs/start-next/accepted";
        let rejected = "$aws/things/d/streams/s1/rejected/cbor";
        w.publish(data, Bytes::new(), QoS::AtLeastOnce);
        let bad = FaultConfig {
            stream_drop: 10.0,
            seed: 1,
        };
        assert!(faults.configure(&bad).unwrap_err().contains("stream_drop"));
        w.publish(data, Bytes::new(), QoS::AtLeastOnce);
        let all = FaultConfig {
            stream_drop: 1.0,
            seed: 1,
        };
        faults.configure(&all).unwrap();
        w.publish(data, Bytes::new(), QoS::AtLeastOnce);
        w.deliver_to("d", data, Bytes::new(), QoS::AtLeastOnce);
        w.publish(reply, Bytes::new(), QoS::AtLeastOnce);
        w.deliver_to("d", rejected, Bytes::new(), QoS::AtLeastOnce);
        assert_eq!(*rec.0.lock().unwrap(), [data, data, reply, rejected]);
        assert_eq!(faults.dropped(), 2);
    }
}
