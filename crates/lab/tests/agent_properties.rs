//! Property tests: any network behaviour (loss, duplication, reordering, request loss,
//! disconnects) ends in a verified, activated, confirmed update; arbitrary messages never panic
//! the agent or fail a good download. The agent in virtual time against the real server's Jobs
//! and Streams services (`ferrota_lab::sim_service`).

use crate::common;

use std::time::Duration;

use common::image::{Spec, image};
use common::*;
use ferrota_proto::job::JobStatus;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Seeded, so a CI run is repeatable; raise `cases` locally to explore further.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0F07_A5EED),
        .. ProptestConfig::default()
    })]

    #[test]
    fn any_network_ends_in_a_confirmed_update(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        dup in 0.0f64..0.3,
        request_loss in 0.0f64..0.2,
        jitter_ms in 0u64..80,
        latency_ms in 1u64..200,
        per_block_us in 0u64..3000,
        disconnect_after in proptest::option::of(5u32..60),
        reset_after in proptest::option::of(5u32..60),
        block_log2 in 10u32..14,
        in_flight in 1usize..16,
        per_request in 1u32..40,
        lookahead in 0u32..300,
        gap_retransmit in proptest::bool::ANY,
    ) {
        let v1 = image(Spec::new(1, 1));
        let v2 = image(Spec::new(2, 2));
        let settings = AgentSettings {
            block_size: 1 << block_log2,
            blocks_per_request: per_request,
            requests_in_flight: in_flight,
            precheck_lookahead: lookahead,
            gap_retransmit,
            // Half the runs take the packed image (at 4 KB blocks, the size it is cut for).
            packed: seed % 2 == 0,
            ..AgentSettings::default()
        };
        let mut sim = Sim::with_settings(&v1, seed, settings);
        sim.net.loss = loss;
        sim.net.dup = dup;
        sim.net.request_loss = request_loss;
        sim.net.jitter = Duration::from_millis(jitter_ms);
        sim.net.latency = Duration::from_millis(latency_ms);
        sim.net.per_block = Duration::from_micros(per_block_us);
        sim.add_job(job("job-p", v2.clone()));
        let limit = Duration::from_secs(3600);
        if let Some(n) = disconnect_after {
            sim.run_until(limit, |s| s.agent.as_ref().and_then(|a| a.progress()).is_some_and(|(r, _)| r >= n));
            sim.disconnect_for(Duration::from_secs(3));
        }
        if let Some(n) = reset_after {
            sim.run_until(limit, |s| s.agent.as_ref().and_then(|a| a.progress()).is_some_and(|(r, _)| r >= n));
            if sim.agent.as_ref().and_then(|a| a.progress()).is_some() {
                sim.reset_now();
            }
        }
        prop_assert!(sim.run_job("job-p", limit));
        prop_assert_eq!(sim.server.job("job-p").status, JobStatus::Succeeded, "{:?}", sim.statuses("job-p"));
        sim.run_until(Duration::from_secs(1), |_| false);
        prop_assert_eq!(sim.running_version(), v2.spec.version.0);
        prop_assert_eq!(state(&sim.dev).floor, 2);
    }

    #[test]
    fn arbitrary_messages_never_panic_or_fail_a_good_download(
        seed in any::<u64>(),
        junk in proptest::collection::vec((0usize..6, proptest::collection::vec(any::<u8>(), 0..200)), 1..40),
    ) {
        let v1 = image(Spec::new(1, 1));
        let v2 = image(Spec::new(2, 2));
        let mut sim = Sim::new(&v1, seed);
        sim.add_job(job("job-j", v2.clone()));
        sim.run_until(Duration::from_secs(60), |s| s.agent.as_ref().and_then(|a| a.progress()).is_some_and(|(r, _)| r >= 8));
        let (stream, job_id) = (sim.server.stream_id("job-j"), sim.server.job_id("job-j"));
        let topics = [
            format!("$aws/things/{THING}/streams/{stream}/data/cbor"),
            format!("$aws/things/{THING}/streams/{stream}/rejected/cbor"),
            format!("$aws/things/{THING}/jobs/{job_id}/update/accepted"),
            format!("$aws/things/{THING}/jobs/{job_id}/update/rejected"),
            format!("$aws/things/{THING}/streams/other/data/cbor"),
            "$aws/things/other-thing/jobs/notify-next".to_string(),
        ];
        for (t, payload) in &junk {
            let now = sim.now;
            if let Some(a) = sim.agent.as_mut() {
                a.handle_message(now, &topics[*t], payload, &mut DevPlatform(&mut sim.dev));
            }
            sim.pump();
        }
        prop_assert!(sim.run_job("job-j", Duration::from_secs(600)));
        prop_assert_eq!(sim.server.job("job-j").status, JobStatus::Succeeded);
    }
}
