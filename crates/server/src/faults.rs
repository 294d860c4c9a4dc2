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
//!
//! [`Faults::configure_reorder`] ([`ReorderConfig`]) makes the service answer out of order:
//! a fraction of the data publishes is held back until a random number (1 to
//! `max_overtake`) of later data publishes on the same topic went out, then published: those
//! overtook it (issue #23: "a service that answers out of order"; a TLS proxy on the wire
//! cannot reorder messages). Decision: the displacement is counted in blocks, not time:
//! Ferrota's server queues a whole window for a device at once, so a block held back for a
//! time would land behind the whole window (hundreds of blocks), whatever the delay. A held
//! block that nothing overtakes (the end of a download) goes out after `flush`, from a tokio
//! task; outside a tokio runtime nothing is held back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Out-of-order answers ([`Faults::configure_reorder`]): a test and benchmark aid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReorderConfig {
    /// Fraction of stream data publishes held back, 0.0 (off) to 1.0.
    pub fraction: f64,
    /// A held block is overtaken by a number of later blocks of the same topic drawn
    /// uniformly from `1..=max_overtake`.
    pub max_overtake: u32,
    /// A held block that is not overtaken that often within this time goes out then.
    pub flush: Duration,
    /// Seed of the generator that picks the held blocks and how far they fall behind.
    pub seed: u64,
}

impl ReorderConfig {
    /// No reordering.
    pub const OFF: ReorderConfig = ReorderConfig {
        fraction: 0.0,
        max_overtake: 1,
        flush: Duration::from_millis(50),
        seed: 1,
    };

    /// Checks the fraction, the displacement and the flush time (minutes would strand a
    /// download).
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(format!(
                "the reordered fraction must be from 0.0 to 1.0, not {}",
                self.fraction
            ));
        }
        if self.max_overtake == 0 {
            return Err("a held block must be overtaken by at least 1 block".into());
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&self.flush) {
            return Err(format!(
                "the reorder flush must be from 1 ms to 10 s, not {:?}",
                self.flush
            ));
        }
        Ok(())
    }
}

/// A data publish held back ([`ReorderConfig`]).
#[derive(Debug)]
struct Held {
    id: u64,
    topic: String,
    to: Option<String>,
    payload: Bytes,
    qos: QoS,
    /// Later blocks of `topic` still to overtake it.
    left: u32,
}

/// The reordering state: `(threshold, max_overtake, generator state)` while on, the held
/// publishes, the next hold's id.
#[derive(Debug, Default)]
struct Reorder {
    on: Option<(u64, u32, u64)>,
    flush: Duration,
    held: Vec<Held>,
    next_id: u64,
}

/// The broker's fault injector for stream data ([`FaultConfig`], [`ReorderConfig`]); off
/// until configured.
#[derive(Debug, Default)]
pub struct Faults {
    /// `(threshold, generator state)`: a block is dropped when the next draw is below the
    /// threshold (`stream_drop × 2^64`). `None`: off.
    state: Mutex<Option<(u64, u64)>>,
    dropped: AtomicU64,
    reorder: Mutex<Reorder>,
    reordered: AtomicU64,
}

impl Faults {
    /// Applies `cfg` (replacing any earlier setting; the generator restarts from the seed).
    pub fn configure(&self, cfg: &FaultConfig) -> Result<(), String> {
        cfg.validate()?;
        let threshold = fraction_threshold(cfg.stream_drop);
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

    /// Applies `cfg` (replacing any earlier setting; the generator restarts from the seed).
    /// Blocks held at the time keep their place.
    pub fn configure_reorder(&self, cfg: &ReorderConfig) -> Result<(), String> {
        cfg.validate()?;
        let threshold = fraction_threshold(cfg.fraction);
        let mut g = self.reorder.lock().unwrap_or_else(|e| e.into_inner());
        g.on = (threshold > 0).then_some((threshold, cfg.max_overtake, cfg.seed));
        g.flush = cfg.flush;
        Ok(())
    }

    /// How many later blocks overtake the next data publish, if it is held back (advances
    /// the generator when on).
    pub fn hold_next(&self) -> Option<u32> {
        let mut g = self.reorder.lock().unwrap_or_else(|e| e.into_inner());
        let (threshold, max, state) = g.on.as_mut()?;
        let draw = splitmix64(state);
        if *threshold != u64::MAX && draw >= *threshold {
            return None;
        }
        self.reordered.fetch_add(1, Ordering::Relaxed);
        Some(1 + (splitmix64(state) % u64::from(*max)) as u32)
    }

    /// Data publishes held back so far.
    pub fn reordered(&self) -> u64 {
        self.reordered.load(Ordering::Relaxed)
    }
}

/// `fraction × 2^64`, saturating (a draw below it is picked).
fn fraction_threshold(fraction: f64) -> u64 {
    if fraction >= 1.0 {
        u64::MAX
    } else {
        (fraction * 18_446_744_073_709_551_616.0) as u64
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

/// One data publish to send: to a client (`deliver_to`) or to the topic's subscribers.
type Message = (String, Option<String>, Bytes, QoS);

impl FaultyOutbound {
    fn send(&self, (topic, to, payload, qos): Message) {
        match to {
            Some(c) => self.inner.deliver_to(&c, &topic, payload, qos),
            None => self.inner.publish(&topic, payload, qos),
        }
    }

    /// A data publish that was not dropped: sent, or held back ([`ReorderConfig`]); the held
    /// blocks of the same topic it overtook for the last time follow it.
    fn data(&self, topic: &str, to: Option<&str>, payload: Bytes, qos: QoS) {
        let hold = self.faults.hold_next();
        let rt = tokio::runtime::Handle::try_current().ok();
        let mut released = Vec::new();
        let mut flush = None;
        let now = {
            let mut g = self
                .faults
                .reorder
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut k = 0;
            while k < g.held.len() {
                if g.held[k].topic == topic {
                    g.held[k].left -= 1;
                    if g.held[k].left == 0 {
                        let h = g.held.remove(k);
                        released.push((h.topic, h.to, h.payload, h.qos));
                        continue;
                    }
                }
                k += 1;
            }
            match (hold, &rt) {
                (Some(left), Some(_)) => {
                    let id = g.next_id;
                    g.next_id += 1;
                    g.held.push(Held {
                        id,
                        topic: topic.to_string(),
                        to: to.map(str::to_string),
                        payload,
                        qos,
                        left,
                    });
                    flush = Some((id, g.flush));
                    None
                }
                _ => Some((topic.to_string(), to.map(str::to_string), payload, qos)),
            }
        };
        if let Some(m) = now {
            self.send(m);
        }
        for m in released {
            self.send(m);
        }
        if let (Some((id, after)), Some(rt)) = (flush, rt) {
            let (faults, inner) = (self.faults.clone(), self.inner.clone());
            rt.spawn(async move {
                tokio::time::sleep(after).await;
                let h = {
                    let mut g = faults.reorder.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(k) = g.held.iter().position(|h| h.id == id) else {
                        return;
                    };
                    g.held.remove(k)
                };
                FaultyOutbound { inner, faults }.send((h.topic, h.to, h.payload, h.qos));
            });
        }
    }
}

impl Outbound for FaultyOutbound {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if !is_stream_data(topic) {
            return self.inner.publish(topic, payload, qos);
        }
        if !self.faults.drop_next() {
            self.data(topic, None, payload, qos);
        }
    }
    fn deliver_to(&self, client_id: &str, topic: &str, payload: Bytes, qos: QoS) {
        if !is_stream_data(topic) {
            return self.inner.deliver_to(client_id, topic, payload, qos);
        }
        if !self.faults.drop_next() {
            self.data(topic, Some(client_id), payload, qos);
        }
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

    /// A held block comes after the number of later blocks of its topic drawn for it (other
    /// topics do not count and pass at once); one that nothing overtakes goes out after the
    /// flush time; the same seed holds the same blocks; a bad setting is refused.
    #[tokio::test(start_paused = true)]
    async fn held_blocks_are_overtaken_by_later_ones() {
        let rec = Arc::new(Rec::default());
        let faults = Arc::new(Faults::default());
        let w = FaultyOutbound::new(rec.clone(), faults.clone());
        for bad in [
            ReorderConfig {
                fraction: 1.5,
                ..ReorderConfig::OFF
            },
            ReorderConfig {
                max_overtake: 0,
                ..ReorderConfig::OFF
            },
            ReorderConfig {
                flush: Duration::from_secs(60),
                ..ReorderConfig::OFF
            },
        ] {
            assert!(faults.configure_reorder(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(faults.hold_next(), None, "still off");
        let a = "$aws/things/a/streams/s1/data/cbor";
        let b = "$aws/things/b/streams/s1/data/cbor";
        let reply = "$aws/things/a/jobs/start-next/accepted";
        // Hold the first block of `a` (overtaken by 2), then nothing.
        faults
            .configure_reorder(&ReorderConfig {
                fraction: 1.0,
                max_overtake: 2,
                flush: Duration::from_millis(50),
                seed: 5,
            })
            .unwrap();
        let left = {
            let f = Faults::default();
            f.configure_reorder(&ReorderConfig {
                fraction: 1.0,
                max_overtake: 2,
                flush: Duration::from_millis(50),
                seed: 5,
            })
            .unwrap();
            f.hold_next().unwrap()
        };
        w.publish(a, Bytes::from_static(b"a0"), QoS::AtMostOnce);
        faults.configure_reorder(&ReorderConfig::OFF).unwrap();
        w.publish(reply, Bytes::new(), QoS::AtLeastOnce);
        w.publish(b, Bytes::new(), QoS::AtMostOnce);
        for _ in 0..left {
            w.publish(a, Bytes::from_static(b"a+"), QoS::AtMostOnce);
        }
        let got = rec.0.lock().unwrap().clone();
        let mut want = vec![reply, b];
        want.extend(std::iter::repeat_n(a, left as usize + 1));
        assert_eq!(got, want, "held for {left}");
        assert_eq!(faults.reordered(), 1);
        // Held with nothing after it: out after the flush time.
        faults
            .configure_reorder(&ReorderConfig {
                fraction: 1.0,
                max_overtake: 5,
                flush: Duration::from_millis(50),
                seed: 5,
            })
            .unwrap();
        w.publish(a, Bytes::new(), QoS::AtMostOnce);
        let n = rec.0.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(49)).await;
        assert_eq!(rec.0.lock().unwrap().len(), n, "still held");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(rec.0.lock().unwrap().len(), n + 1, "flushed");
        // Repeatable, and about the fraction asked for.
        let draws = |seed| {
            let f = Faults::default();
            f.configure_reorder(&ReorderConfig {
                fraction: 0.3,
                max_overtake: 32,
                flush: Duration::from_millis(50),
                seed,
            })
            .unwrap();
            (0..200).map(|_| f.hold_next()).collect::<Vec<_>>()
        };
        let d = draws(3);
        assert_eq!(d, draws(3));
        assert_ne!(d, draws(4));
        let held = d.iter().flatten().count();
        assert!((30..=90).contains(&held), "{held} of 200 held at 30%");
        assert!(d.iter().flatten().all(|k| (1..=32).contains(k)));
    }
}
