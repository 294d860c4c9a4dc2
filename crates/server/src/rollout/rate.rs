//! Rate (STUB on the lead's branch; the helper's version replaces it).

use ferrota_api::RolloutConfig;
use serde::{Deserialize, Serialize};

/// Rate state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateState {
    /// Minute start.
    pub minute_start: u64,
    /// Released in it.
    pub released_in_minute: u64,
}

/// What may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// How many now.
    pub now: u64,
    /// When more.
    pub next_at: Option<u64>,
    /// Rate.
    pub rate: Option<u64>,
}

/// Allowance.
pub fn allowance(
    cfg: Option<&RolloutConfig>,
    state: &mut RateState,
    now: u64,
    _notified: u64,
    _succeeded: u64,
) -> Allowance {
    let Some(rate) = cfg.and_then(|c| c.maximum_per_minute) else {
        return Allowance {
            now: u64::MAX,
            next_at: None,
            rate: None,
        };
    };
    if now >= state.minute_start + 60 || state.minute_start == 0 {
        state.minute_start = if state.minute_start == 0 {
            now
        } else {
            state.minute_start + (now - state.minute_start) / 60 * 60
        };
        state.released_in_minute = 0;
    }
    let left = rate.saturating_sub(state.released_in_minute);
    Allowance {
        now: left,
        next_at: (left == 0).then_some(state.minute_start + 60),
        rate: Some(rate),
    }
}

/// Records releases.
pub fn record(state: &mut RateState, n: u64) {
    state.released_in_minute += n;
}
