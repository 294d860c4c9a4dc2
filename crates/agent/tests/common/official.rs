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
