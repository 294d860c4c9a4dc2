//! Power-cut injection: an operation counter and a scheduled cut.
//!
//! Every flash operation — each code-flash row program, each work-flash word program, each
//! sector erase, each SFlash row write, each eFuse bit blow — takes the next operation number
//! (see [`crate::Device::op_count`]). A test runs a scenario once to count its operations, then,
//! for every `N`, clones the snapshot taken before the scenario, schedules a cut at `N` and runs
//! it again: the same pattern as mcuboot's simulator.
//!
//! After the cut every flash operation, read and register access fails with
//! [`crate::Error::PowerLost`] until [`crate::Device::power_cycle`].

/// When and how the power is cut.
///
/// Operation numbers are absolute: the value [`crate::Device::op_count`] has when the operation
/// starts (the first operation of a fresh device is 0). A number already passed never fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerCut {
    /// The power fails just before operation `N` starts: operation `N` has no effect and is not
    /// counted.
    Before(u64),
    /// The power fails in the middle of operation `op`, which is counted and leaves its target
    /// partly done, chosen deterministically from `seed`:
    /// * a program leaves a prefix of its ECC words programmed, the next word with a random
    ///   subset of its 1→0 transitions, all of them marked not-erased, the rest untouched;
    /// * a sector erase leaves the sector with random bits set to 1 and *not* erased (every word
    ///   must be erased again before it can be programmed);
    /// * an SFlash row write leaves a prefix of the row new and the rest partly erased;
    /// * an eFuse blow leaves the bit blown or not.
    Tear {
        /// The operation number that is torn.
        op: u64,
        /// Seed of the deterministic choice of what was done.
        seed: u64,
    },
}

/// The power state of a device: counter, schedule, and whether power is currently lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PowerState {
    pub ops: u64,
    pub scheduled: Option<PowerCut>,
    pub lost: bool,
}

/// How the operation that was just started must be carried out.
#[derive(Debug)]
pub(crate) enum OpMode {
    /// Complete the operation.
    Normal,
    /// Tear it with this generator, then report [`crate::Error::PowerLost`].
    Torn(Rng),
}

impl PowerState {
    /// Starts an operation: returns how to perform it, or `None` if power failed before it.
    pub fn begin(&mut self) -> Option<OpMode> {
        let n = self.ops;
        match self.scheduled {
            Some(PowerCut::Before(at)) if at == n => {
                self.scheduled = None;
                self.lost = true;
                None
            }
            Some(PowerCut::Tear { op, seed }) if op == n => {
                self.scheduled = None;
                self.lost = true;
                self.ops += 1;
                Some(OpMode::Torn(Rng::new(seed ^ op.rotate_left(32))))
            }
            _ => {
                self.ops += 1;
                Some(OpMode::Normal)
            }
        }
    }
}

/// A small deterministic generator (SplitMix64): tears must be reproducible from a seed, and the
/// crate needs no `rand` dependency for this.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the tiny modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A random *proper, non-empty* subset of the set bits of `mask` when it has at least two
    /// bits, so a partially programmed word is neither the old nor the new value; with one bit
    /// or none, a random subset.
    pub fn partial(&mut self, mask: u64) -> u64 {
        let ones = mask.count_ones();
        if ones < 2 {
            return mask & self.next_u64();
        }
        loop {
            let sub = mask & self.next_u64();
            if sub != 0 && sub != mask {
                return sub;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_cut_does_not_count_the_op() {
        let mut p = PowerState {
            scheduled: Some(PowerCut::Before(1)),
            ..Default::default()
        };
        assert!(matches!(p.begin(), Some(OpMode::Normal)));
        assert!(p.begin().is_none());
        assert!(p.lost);
        assert_eq!(p.ops, 1);
    }

    #[test]
    fn tear_counts_the_op() {
        let mut p = PowerState {
            scheduled: Some(PowerCut::Tear { op: 0, seed: 3 }),
            ..Default::default()
        };
        assert!(matches!(p.begin(), Some(OpMode::Torn(_))));
        assert!(p.lost);
        assert_eq!(p.ops, 1);
    }

    #[test]
    fn partial_is_proper_subset() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let s = r.partial(0xF0F0);
            assert!(s != 0 && s != 0xF0F0 && s & !0xF0F0 == 0);
        }
        assert_eq!(Rng::new(1).next_u64(), Rng::new(1).next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
