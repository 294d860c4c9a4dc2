//! How many new executions a rollout may notify, and when (AWS `jobExecutionsRolloutConfig`).
//! Pure functions over a small persisted state; the engine asks, notifies, and records.
//!
//! # The schedule (the engine's tests hold it to this)
//!
//! 1. **Minutes.** Time runs in windows of one minute. The first window opens at the first
//!    call of [`allowance`] (the engine asks when it has something to release, so that is the
//!    rollout's first release); window *n* is `[first + 60·n, first + 60·(n+1))`. Windows do
//!    not re-anchor: a pause or a closed maintenance window only skips whole windows.
//! 2. **Rate, fixed when a window opens.** In each window at most `rate` things are notified:
//!    - no `jobExecutionsRolloutConfig`: unlimited ([`Allowance::now`] is `u64::MAX`,
//!      [`Allowance::rate`] is `None`);
//!    - `maximumPerMinute` alone: that number;
//!    - `exponentialRate`: `floor(baseRatePerMinute × incrementFactor^k)`, where
//!      `k = floor(count / criteria)`: `count` is the things notified so far
//!      (`numberOfNotifiedThings`) or the things SUCCEEDED so far
//!      (`numberOfSucceededThings`), as the engine passes them when the window opens, and
//!      `criteria` is that number. It is capped by `maximumPerMinute` when both are given;
//!    - a config with neither field: AWS's default, 1000;
//!    - always at most 1000 (AWS's ceiling).
//!
//!    Example: base 2, factor 2.0, every 4 notified, each window used in full: the windows
//!    notify 2 (k=0, 2 notified), 2 (k=0, 4), 4 (k=1, 8), 8 (k=2, 16), 32 (k=4, 48), then
//!    1000. With the criteria on successes the rate grows only as executions SUCCEED.
//! 3. **Counting.** [`record`] adds what was notified to the current window; the allowance is
//!    the window's rate less what it already released. When nothing may go now,
//!    [`Allowance::next_at`] is the start of the next window.
//! 4. **Restart.** [`RateState`] is the whole memory (the engine stores it as JSON): reloaded,
//!    the same window, rate and count go on. The engine writes the count before it creates the
//!    executions it counts, so a crash between the two can lose part of one minute's quota but
//!    never doubles it.

use ferrota_api::RolloutConfig;
use serde::{Deserialize, Serialize};

/// Length of a rate window, seconds.
pub const MINUTE: u64 = 60;
/// AWS's ceiling and default: 1000 things a minute.
pub const MAX_RATE: u64 = 1000;

/// The rate limiter's memory, persisted by the engine with the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateState {
    /// Start of the current one-minute window, epoch seconds (meaningful once `started`).
    pub minute_start: u64,
    /// Things notified in the current window.
    pub released_in_minute: u64,
    /// Whether the first window has opened (the rollout released, or asked to).
    #[serde(default)]
    pub started: bool,
    /// The rate fixed when the current window opened.
    #[serde(default)]
    pub minute_rate: u64,
}

/// What [`allowance`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// How many may be notified now (`u64::MAX` when unlimited).
    pub now: u64,
    /// When more may go, if none may now: the next window's start.
    pub next_at: Option<u64>,
    /// The current window's rate, things a minute (`None`: unlimited).
    pub rate: Option<u64>,
}

/// The rate of a window that opens with `notified` things notified and `succeeded` SUCCEEDED
/// so far (module docs, point 2). `None`: unlimited.
pub fn rate_for(cfg: Option<&RolloutConfig>, notified: u64, succeeded: u64) -> Option<u64> {
    let cfg = cfg?;
    let max = cfg.maximum_per_minute.unwrap_or(MAX_RATE).min(MAX_RATE);
    let Some(e) = &cfg.exponential_rate else {
        return Some(max);
    };
    let k = match (
        e.rate_increase_criteria.number_of_notified_things,
        e.rate_increase_criteria.number_of_succeeded_things,
    ) {
        (Some(n), _) if n > 0 => notified / n,
        (_, Some(n)) if n > 0 => succeeded / n,
        // Refused by validation; be safe: no growth.
        _ => 0,
    };
    let k = i32::try_from(k).unwrap_or(i32::MAX);
    let r = e.base_rate_per_minute as f64 * e.increment_factor.powi(k);
    // A hair of tolerance so 2.2 × 5 is 11, not 10.999…
    let r = if r.is_finite() {
        (r + 1e-9).floor()
    } else {
        max as f64
    };
    Some((r as u64).clamp(1, max))
}

/// How many things may be notified at `now` (epoch seconds); opens a new window first when
/// the current one is over (fixing its rate from `notified`/`succeeded`). Call
/// [`record`] with what was then notified.
pub fn allowance(
    cfg: Option<&RolloutConfig>,
    state: &mut RateState,
    now: u64,
    notified: u64,
    succeeded: u64,
) -> Allowance {
    let Some(rate) = rate_for(cfg, notified, succeeded) else {
        return Allowance {
            now: u64::MAX,
            next_at: None,
            rate: None,
        };
    };
    if !state.started {
        *state = RateState {
            minute_start: now,
            released_in_minute: 0,
            started: true,
            minute_rate: rate,
        };
    } else if now >= state.minute_start.saturating_add(MINUTE) {
        let elapsed = (now - state.minute_start) / MINUTE;
        state.minute_start += elapsed * MINUTE;
        state.released_in_minute = 0;
        state.minute_rate = rate;
    }
    let left = state.minute_rate.saturating_sub(state.released_in_minute);
    Allowance {
        now: left,
        next_at: (left == 0).then(|| state.minute_start + MINUTE),
        rate: Some(state.minute_rate),
    }
}

/// Counts `n` things notified in the current window.
pub fn record(state: &mut RateState, n: u64) {
    state.released_in_minute = state.released_in_minute.saturating_add(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::{ExponentialRate, RateIncreaseCriteria};

    const T0: u64 = 1_796_601_600;

    fn constant(n: u64) -> RolloutConfig {
        RolloutConfig {
            maximum_per_minute: Some(n),
            exponential_rate: None,
        }
    }

    fn exp(base: u64, factor: f64, notified: Option<u64>, succeeded: Option<u64>) -> RolloutConfig {
        RolloutConfig {
            maximum_per_minute: None,
            exponential_rate: Some(ExponentialRate {
                base_rate_per_minute: base,
                increment_factor: factor,
                rate_increase_criteria: RateIncreaseCriteria {
                    number_of_notified_things: notified,
                    number_of_succeeded_things: succeeded,
                },
            }),
        }
    }

    /// Drives a rollout of `targets` things, asking every 5 s for `secs` seconds, releasing all
    /// it may; `succeeded(notified)` says how many succeeded so far. Returns what each
    /// minute window released.
    fn drive(
        cfg: Option<&RolloutConfig>,
        targets: u64,
        secs: u64,
        succeeded: impl Fn(u64) -> u64,
        state: &mut RateState,
        notified: &mut u64,
    ) -> Vec<u64> {
        let mut per_minute = vec![0u64; (secs / MINUTE) as usize + 1];
        let start = if state.started {
            state.minute_start
        } else {
            T0
        };
        let mut t = start;
        while t < start + secs {
            let a = allowance(cfg, state, t, *notified, succeeded(*notified));
            let n = a.now.min(targets - *notified);
            if a.now == 0 {
                assert_eq!(a.next_at, Some(state.minute_start + MINUTE));
            }
            record(state, n);
            *notified += n;
            per_minute[((t - start) / MINUTE) as usize] += n;
            t += 5;
        }
        per_minute.truncate((secs / MINUTE) as usize);
        per_minute
    }

    #[test]
    fn constant_ten_a_minute_over_five_minutes() {
        let cfg = constant(10);
        let (mut s, mut n) = (RateState::default(), 0);
        let got = drive(Some(&cfg), 1000, 300, |_| 0, &mut s, &mut n);
        assert_eq!(got, vec![10, 10, 10, 10, 10]);
        assert_eq!(n, 50);
    }

    #[test]
    fn unlimited_without_config() {
        let mut s = RateState::default();
        let a = allowance(None, &mut s, T0, 0, 0);
        assert_eq!(
            a,
            Allowance {
                now: u64::MAX,
                next_at: None,
                rate: None
            }
        );
        assert_eq!(rate_for(Some(&RolloutConfig::default()), 0, 0), Some(1000));
    }

    #[test]
    fn exponential_on_notified_grows_as_documented() {
        let cfg = exp(2, 2.0, Some(4), None);
        let (mut s, mut n) = (RateState::default(), 0);
        let got = drive(Some(&cfg), 100_000, 420, |_| 0, &mut s, &mut n);
        assert_eq!(got, vec![2, 2, 4, 8, 32, 1000, 1000]);
        // The rate is computed when the window opens: k from the count at that instant.
        assert_eq!(rate_for(Some(&cfg), 3, 0), Some(2));
        assert_eq!(rate_for(Some(&cfg), 4, 0), Some(4));
        assert_eq!(rate_for(Some(&cfg), 12, 0), Some(16));
        // Fractional factors round down.
        assert_eq!(rate_for(Some(&exp(10, 1.5, Some(1), None)), 2, 0), Some(22));
        assert_eq!(rate_for(Some(&exp(5, 2.2, Some(1), None)), 1, 0), Some(11));
    }

    #[test]
    fn exponential_on_succeeded_grows_only_with_successes() {
        let cfg = exp(2, 2.0, None, Some(4));
        // Nothing succeeds: 2 a minute however many were notified.
        let (mut s, mut n) = (RateState::default(), 0);
        let got = drive(Some(&cfg), 100_000, 300, |_| 0, &mut s, &mut n);
        assert_eq!(got, vec![2, 2, 2, 2, 2]);
        // Every notified thing succeeds at once: the same growth as on notified.
        let (mut s, mut n) = (RateState::default(), 0);
        let got = drive(Some(&cfg), 100_000, 300, |n| n, &mut s, &mut n);
        assert_eq!(got, vec![2, 2, 4, 8, 32]);
    }

    #[test]
    fn capped_by_maximum_per_minute() {
        let mut cfg = exp(2, 2.0, Some(4), None);
        cfg.maximum_per_minute = Some(10);
        let (mut s, mut n) = (RateState::default(), 0);
        let got = drive(Some(&cfg), 100_000, 420, |_| 0, &mut s, &mut n);
        assert_eq!(got, vec![2, 2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn windows_stay_anchored_and_skip_idle_minutes() {
        let cfg = constant(3);
        let mut s = RateState::default();
        assert_eq!(allowance(Some(&cfg), &mut s, T0 + 10, 0, 0).now, 3);
        record(&mut s, 3);
        let a = allowance(Some(&cfg), &mut s, T0 + 69, 3, 0);
        assert_eq!((a.now, a.next_at, a.rate), (0, Some(T0 + 70), Some(3)));
        // Idle for a while (a closed maintenance window): the window at T0+190 is the 4th.
        let a = allowance(Some(&cfg), &mut s, T0 + 200, 3, 0);
        assert_eq!(a.now, 3);
        assert_eq!(s.minute_start, T0 + 190);
    }

    #[test]
    fn restart_keeps_the_schedule() {
        let cfg = exp(2, 2.0, Some(4), None);
        let (mut s, mut n) = (RateState::default(), 0);
        // Two and a half minutes, then the server stops.
        let first = drive(Some(&cfg), 100_000, 150, |_| 0, &mut s, &mut n);
        assert_eq!(first, vec![2, 2]);
        let json = serde_json::to_string(&s).unwrap();
        let mut back: RateState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        // Same instant after the restart: the third window already released its 4.
        let a = allowance(Some(&cfg), &mut back, T0 + 150, n, 0);
        assert_eq!((a.now, a.rate), (0, Some(4)));
        // And the minutes after go on as if nothing happened.
        let mut per_minute = Vec::new();
        for m in 3..6 {
            let a = allowance(Some(&cfg), &mut back, T0 + m * MINUTE, n, 0);
            record(&mut back, a.now);
            n += a.now;
            per_minute.push(a.now);
        }
        assert_eq!(per_minute, vec![8, 32, 1000]);
    }
}
