//! The official library's download schedule (spec §4.2), as a model for the benchmark:
//! one request at a time for `n` blocks from the whole bitmap (`o = 0`), the next request as soon
//! as the `n`-th new block arrived, and after any loss a stall until the 10 s request timer
//! (restarted by each data message) expires.

use std::time::Duration;

pub struct Outcome {
    pub requests: u32,
    pub time: Duration,
}

pub fn official_schedule(blocks: u32, n: u32, rtt: Duration, loss: f64, seed: u64) -> Outcome {
    let wait = Duration::from_secs(10);
    let mut rng = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut missing = vec![true; blocks as usize];
    let mut left = blocks;
    let (mut t, mut requests) = (Duration::ZERO, 0u32);
    while left > 0 {
        requests += 1;
        let asked: Vec<usize> = (0..blocks as usize)
            .filter(|&i| missing[i])
            .take(n as usize)
            .collect();
        let mut got = 0;
        for &i in &asked {
            if rand() >= loss {
                missing[i] = false;
                got += 1;
            }
        }
        left -= got;
        t += if got as usize == asked.len() {
            rtt
        } else if got > 0 {
            rtt + wait
        } else {
            wait
        };
    }
    Outcome { requests, time: t }
}

/// This agent fetching the seed's 4,161,536-byte image through the harness (4 KB blocks,
/// default window: 4 requests × 32 blocks), RTT `rtt`, block loss `loss`. Time runs from the
/// first stream request to the last block written (the CM0+ version check is included).
pub fn agent_schedule(rtt: std::time::Duration, loss: f64, seed: u64) -> Outcome {
    use super::image::{FULL, Spec, image};
    let v1 = image(Spec::new(1, 1).len(FULL));
    let v2 = image(Spec::new(2, 2).len(FULL));
    use super::SimExt;
    let mut sim = super::Sim::new(&v1, seed);
    sim.net.latency = rtt / 2;
    sim.net.loss = loss;
    sim.add_job(super::job("job-bench", v2));
    assert!(sim.run_job("job-bench", Duration::from_secs(3600)));
    assert_eq!(
        sim.server.job("job-bench").status,
        ferrota_proto::job::JobStatus::Succeeded
    );
    Outcome {
        requests: sim.server.stream_requests,
        time: sim
            .last_block_at
            .unwrap()
            .saturating_since(sim.first_request_at.unwrap()),
    }
}

/// Mean over `seeds` runs.
pub fn mean(f: impl Fn(u64) -> Outcome, seeds: u64) -> Outcome {
    let (mut r, mut t) = (0u64, Duration::ZERO);
    for s in 0..seeds {
        let o = f(s + 1);
        r += u64::from(o.requests);
        t += o.time;
    }
    Outcome {
        requests: (r / seeds) as u32,
        time: t / seeds as u32,
    }
}

/// The benchmark table (markdown) and the two speed-ups (0 %, 1 %).
pub fn table() -> (String, f64, f64) {
    let rtt = Duration::from_millis(50);
    let seeds = 5;
    let mut out = String::from(
        "| schedule | block loss | requests | simulated time | speed-up |\n|---|---|---|---|---|\n",
    );
    let mut ups = [0f64; 2];
    for (k, loss) in [0.0, 0.01].into_iter().enumerate() {
        let off = mean(|s| official_schedule(1016, 8, rtt, loss, s), seeds);
        let ours = mean(
            |s| agent_schedule(rtt, loss, s),
            if loss == 0.0 { 1 } else { seeds },
        );
        let up = off.time.as_secs_f64() / ours.time.as_secs_f64();
        ups[k] = up;
        out += &format!(
            "| official (n = 8, one request at a time, 10 s wait) | {:.0} % | {} | {:.3} s | 1× |\n",
            loss * 100.0,
            off.requests,
            off.time.as_secs_f64()
        );
        out += &format!(
            "| ferrota-agent (4 × 32 blocks in flight, RTO from RTT) | {:.0} % | {} | {:.3} s | {:.1}× |\n",
            loss * 100.0,
            ours.requests,
            ours.time.as_secs_f64(),
            up
        );
    }
    (out, ups[0], ups[1])
}
