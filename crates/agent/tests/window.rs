//! Issue #23 in virtual time (`ferrota_sim::harness`, the `JobsStreams` fixture): the 4 MB
//! bank image over a link of 100 Mbit/s Ethernet's block rate (4 KB blocks 357 µs apart) and
//! a given round trip. Deterministic: the same seed is the same run; nothing is timed.

use std::time::Duration;

use ferrota_agent::config::{MAX_REQUESTS, MAX_WINDOW_BLOCKS};
use ferrota_agent::{AgentEvent, Stats};
use ferrota_sim::harness::{AgentSettings, Sim};
use ferrota_sim::images::ota::{FULL, Spec, image};
use ferrota_sim::service::{JobsStreams, OtaFile};

/// Blocks of the 4,161,536-byte image at 4 KB.
const BLOCKS: u32 = 1016;
/// A 4 KB block and its MQTT/TLS/TCP framing on 100 Mbit/s Ethernet.
const SPACING: Duration = Duration::from_micros(357);

struct Outcome {
    /// First stream request → last new block.
    time: Duration,
    stats: Stats,
    /// Blocks the service sent beyond the image's (duplicates, and copies that came after
    /// the download ended).
    extra: u32,
}

fn download(settings: AgentSettings, rtt_ms: u64, jitter: Duration, seed: u64) -> Outcome {
    let v1 = image(Spec::new(1, 1).len(FULL));
    let v2 = image(Spec::new(2, 2).len(FULL));
    let file = OtaFile::image(v2.file.clone(), Some(v2.signature.clone()));
    let service = JobsStreams::new("job-23", "stream-23", vec![file]);
    let mut sim = Sim::start(service, &v1, seed, settings);
    sim.net.latency = Duration::from_millis(rtt_ms) / 2;
    sim.net.per_block = SPACING;
    sim.net.jitter = jitter;
    assert!(
        sim.run_until(Duration::from_secs(600), |s| {
            s.events.contains(&AgentEvent::Activated)
        }),
        "the update did not activate: {:?}",
        sim.events.last()
    );
    Outcome {
        time: sim
            .last_block_at
            .expect("blocks")
            .saturating_since(sim.first_request_at.expect("a request")),
        stats: sim.agent().stats(),
        extra: sim.server.blocks_sent(0) - BLOCKS,
    }
}

/// The agent's defaults for the window (the harness's own default is 4 requests).
fn defaults() -> AgentSettings {
    AgentSettings {
        requests_in_flight: MAX_REQUESTS,
        precheck_lookahead: MAX_WINDOW_BLOCKS,
        ..AgentSettings::default()
    }
}

/// The whole image is asked for at once, so a 400 ms round trip costs one round trip and the
/// transfer, not two: the window is not held below the link's bandwidth-delay product (4.7 MB
/// at 400 ms). With the caps before issue #23 (16 requests, a 1 MB lookahead before the CM0+
/// region's check) the link idled for most of a second round trip.
#[test]
fn the_first_window_keeps_a_400_ms_link_full() {
    let transfer = SPACING * BLOCKS;
    for rtt in [200, 400] {
        let rtt_d = Duration::from_millis(rtt);
        let now = download(defaults(), rtt, Duration::ZERO, 1);
        assert!(
            now.time <= rtt_d + transfer + transfer / 20,
            "{rtt} ms: {:?} for a {transfer:?} transfer",
            now.time
        );
        assert_eq!(now.stats.requests, 32, "{rtt} ms: the image in 32 requests");
        assert_eq!((now.stats.timeouts, now.extra), (0, 0));
        let before = download(
            AgentSettings {
                requests_in_flight: 16,
                precheck_lookahead: 256,
                ..AgentSettings::default()
            },
            rtt,
            Duration::ZERO,
            1,
        );
        assert!(
            before.time >= now.time + rtt_d / 2,
            "{rtt} ms: {:?} with the old caps, {:?} now",
            before.time,
            now.time
        );
    }
}

/// A service that answers out of order (every message delayed by up to 5 ms at random, so
/// blocks of a request and whole requests overtake each other by up to 14 blocks; 20 ms: up
/// to 56) costs a few wrong guesses, each a duplicate block, and then none: every block that
/// came after it was found lost raised the reordering tolerance. At level 0 for good, each
/// overtaken block would be asked for again.
#[test]
fn reordering_costs_a_bounded_number_of_duplicate_blocks() {
    for (jitter_ms, seeds) in [(5, 42..47), (20, 42..45)] {
        for seed in seeds {
            let o = download(defaults(), 50, Duration::from_millis(jitter_ms), seed);
            let s = o.stats;
            assert!(
                s.late >= 1,
                "{jitter_ms} ms, seed {seed}: no wrong guess? {s:?}"
            );
            assert!(
                o.extra <= BLOCKS / 50 && s.gaps <= BLOCKS / 50,
                "{jitter_ms} ms, seed {seed}: {} extra blocks (< 2%): {s:?}",
                o.extra
            );
            assert_eq!(s.timeouts, 0, "{jitter_ms} ms, seed {seed}: {s:?}");
            // Every block found lost was late, not lost: its copy is the only cost.
            assert_eq!(s.gaps, s.late, "{jitter_ms} ms, seed {seed}: {s:?}");
        }
    }
}

/// In order (the service AWS documents) nothing is late and the tolerance stays at level 0:
/// a lost block is still found as soon as the next block arrives (1% loss at 50 ms).
#[test]
fn in_order_with_loss_nothing_is_late() {
    let clean = download(defaults(), 50, Duration::ZERO, 1);
    let mut sim_loss = defaults();
    sim_loss.gap_retransmit = true;
    for seed in 42..45 {
        let v1 = image(Spec::new(1, 1).len(FULL));
        let v2 = image(Spec::new(2, 2).len(FULL));
        let file = OtaFile::image(v2.file.clone(), Some(v2.signature.clone()));
        let mut sim = Sim::start(JobsStreams::new("j", "s", vec![file]), &v1, seed, sim_loss);
        sim.net.latency = Duration::from_millis(25);
        sim.net.per_block = SPACING;
        sim.net.loss = 0.01;
        assert!(sim.run_until(Duration::from_secs(600), |s| {
            s.events.contains(&AgentEvent::Activated)
        }));
        let s = sim.agent().stats();
        assert!(s.gaps > 0, "seed {seed}: nothing dropped");
        assert_eq!(
            (s.late, s.timeouts, s.duplicates),
            (0, 0, 0),
            "seed {seed}: {s:?}"
        );
        let time = sim
            .last_block_at
            .unwrap()
            .saturating_since(sim.first_request_at.unwrap());
        // At most a round trip and the re-asked blocks more than without loss.
        assert!(
            time <= clean.time + Duration::from_millis(50) + SPACING * s.gaps + SPACING * 8,
            "seed {seed}: {time:?} against {:?} without loss",
            clean.time
        );
    }
}
