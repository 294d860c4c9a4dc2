//! The agent's timers, one slot per kind, after quinn-proto's `TimerTable`: each timer is armed,
//! read and stopped by name, [`TimerTable::next_timeout`] is the earliest armed one, and
//! `Agent::handle_timeout` visits the expired ones in [`Timer::VALUES`] order. A slot never
//! stands in for another, so arming the self-test deadline cannot silently cancel a different
//! wait, as the single shared `Option<Instant>` before it could.
//!
//! Decision: the download's retransmission timer is not stored here. It is a function of the
//! request schedule (the oldest request in flight and the current RTO, `crate::download`), which
//! changes with every block; storing it would mean re-arming it after every change. It is
//! computed where it is needed and combined with the table in `Agent::poll_timeout`.

use crate::time::Instant;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Booted under trial: the self-test job document must arrive before this
    /// (`Config::self_test_wait`), else the agent asks for a reset.
    SelfTestWait = 0,
    /// The application's self-test must report before this (`Config::self_test_deadline`), else
    /// it counts as failed.
    SelfTest = 1,
    /// The newest signed timestamp expires (`expires − time` after it arrived): the agent
    /// emits `FreshnessLost` and reports `fresh:false`. Outlives jobs.
    Freshness = 2,
    /// The metadata file's block 0 was asked for: ask again if it has not come.
    ManifestRetry = 3,
    /// The slow-retrieval deadline of a download whose manifest was accepted (design §4.1
    /// step 7): `0x0000000e: 0x00000001` past it.
    SlowRetrieval = 4,
    /// Uptime checkpoint of the time estimate (design D-8): every `TrustConfig::time_checkpoint`
    /// after a timestamp was accepted, the estimate (newest timestamp + uptime since) is
    /// persisted as `clock_floor`, so a device cut off from fresh timestamps for longer than a
    /// timestamp's lifetime still refuses the recorded ones after a reset. Outlives jobs.
    Checkpoint = 5,
}

impl Timer {
    /// Every timer, in the order expired ones are handled.
    pub(super) const VALUES: [Timer; 6] = [
        Timer::SelfTestWait,
        Timer::SelfTest,
        Timer::Freshness,
        Timer::ManifestRetry,
        Timer::SlowRetrieval,
        Timer::Checkpoint,
    ];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    data: [Option<Instant>; Timer::VALUES.len()],
}

impl TimerTable {
    /// Arms `timer` at `time` (re-arming replaces its previous deadline).
    pub(super) fn set(&mut self, timer: Timer, time: Instant) {
        self.data[timer as usize] = Some(time);
    }

    /// The deadline of `timer`, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// Disarms every timer (the job ended, or the agent halted).
    pub(super) fn stop_all(&mut self) {
        self.data = [None; Timer::VALUES.len()];
    }

    /// The earliest armed deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().filter_map(|&t| t).min()
    }

    /// Whether `timer` is armed and due at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.data[timer as usize].is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_independent_and_next_is_the_earliest() {
        let t = |us| Instant::from_micros(us);
        let mut table = TimerTable::default();
        assert_eq!(table.next_timeout(), None);
        table.set(Timer::SelfTest, t(50));
        table.set(Timer::SelfTestWait, t(20));
        assert_eq!(table.next_timeout(), Some(t(20)));
        assert!(table.is_expired(Timer::SelfTestWait, t(20)));
        assert!(!table.is_expired(Timer::SelfTest, t(49)));
        table.stop(Timer::SelfTestWait);
        assert_eq!(table.get(Timer::SelfTestWait), None);
        assert_eq!(table.next_timeout(), Some(t(50)));
        table.stop_all();
        assert_eq!(table.next_timeout(), None);
    }
}
