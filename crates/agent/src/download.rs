//! The block schedule of one download: which blocks are missing, which are requested, the
//! requests in flight, the round-trip estimator and the momentum counter. Pure bookkeeping:
//! no flash, no messages (the agent does those).
//!
//! # Schedule
//!
//! * Up to `requests_in_flight` requests are outstanding at once, each for up to
//!   `blocks_per_request` blocks that are missing and not already requested, lowest first, as a
//!   window `"o"` + bitmap `"b"` + `"n"` (§3.1–§3.2): a sliding window of
//!   `requests_in_flight × blocks_per_request` blocks (at most [`MAX_WINDOW_BLOCKS`]) instead
//!   of the official stop-and-wait.
//! * The first window goes out whole, before anything is measured: the agent cannot know the
//!   bandwidth-delay product before the first answers, and a link whose round trip is longer
//!   than the transfer (a 4 MB image takes 0.36 s on 100 Mbit/s; 400 ms RTT) stays full only
//!   if the whole image is asked for at once (`ferrota bench link`: 400 ms, 97% of the link;
//!   with a first window of 2 MB, 69% at 200 ms). The service queues what the link has not
//!   taken yet (Ferrota's server: up to 2,048 messages a device). Nothing is lost by the deep
//!   first queue: a block asked for again joins its end, and the last blocks, whose loss
//!   decides when the download ends, are sent when that queue has drained.
//! * The first block of each request feeds the round-trip estimator (RFC 6298: `srtt`,
//!   `rttvar`) with the time from sending the request to its answer, queueing behind the
//!   requests ahead included, unless the request is ambiguous (Karn: it re-asks for a block
//!   asked for before). The other blocks of a request only show how fast the stream drains:
//!   sampling them made `srtt` collapse to the block spacing (a few ms on loopback TLS) and the
//!   RTO to its floor, below the occasional 40–50 ms answer (TCP delayed ACK), so whole windows
//!   were asked for twice.
//! * A block restarts the timer of its request and of every request sent after it (they are
//!   served after it: queued, not lost).
//! * A request whose blocks stop arriving for one retransmission timeout
//!   (`srtt + max(4·rttvar, srtt/2)`, clamped to `[min_rto, max_rto]`, doubled per consecutive
//!   timeout) is dropped; its still-missing blocks become requestable again, and only they are
//!   asked for again — a lost block costs about one round trip, not 10 s (seed weakness #6).
//! * The service answers a request's blocks in order, so a block of a request that is overtaken
//!   by a later block of the same request was lost (on this server: dropped by fault
//!   injection; on AWS: a publish lost between broker and device). It becomes requestable at
//!   once ([`crate::Config::gap_retransmit`]) and goes into the next request, about one round
//!   trip later, instead of waiting a retransmission timeout. A request's answer, once
//!   started, is sent as one burst (Ferrota's server handles a session's requests one after
//!   the other), so [`OVERTAKE_LIMIT`] new blocks of *later* requests after the last block of
//!   a request whose answer had started mean its tail was lost too: without this, a lost last
//!   block of a request waited a timeout (≥ 100 ms, a quarter of a 4 MB download at
//!   100 Mbit/s: `FERROTA_BENCH_LOSS_SEED=7 ferrota bench loss --short`). The limit tolerates
//!   answers that interleave a little, and a wrong guess costs a duplicate block.
//! * A request not yet answered may be served late, behind later ones (one can reach the
//!   service late, behind a delayed TCP segment: the 45 ms stalls of
//!   `small_rtt_late_answers_and_slow_device_are_not_loss`), so later answers alone do not
//!   condemn it. Once it is *passed* — a later request answered in full and
//!   [`OVERTAKE_LIMIT`] blocks of later requests arrived — it gets a reorder wait
//!   ([`crate::Config::min_rto`], above a delayed ACK) from then, instead of a timeout from
//!   the last block of the requests ahead of it with a round trip inflated by the queue. This
//!   is how a re-request of one block whose answer was dropped again is found: it waited for
//!   its timeout (`FERROTA_BENCH_LOSS_SEED=42` at 50 ms: block 171, re-asked at once and
//!   dropped again, timed out 0.3 s after it was sent and was the download's last block).
//! * The newest request in flight has no later one to overtake it (the end of a download):
//!   once its answer started, a pause of [`TAIL_SPACINGS`] times the usual spacing of a
//!   burst (at least [`TAIL_MIN`]) means its tail was lost, and it is asked again without
//!   backing off the timeout. Only the loss of a whole request
//!   still waits for the timeout.
//! * The window adapts: no more requests in flight for new blocks than the bandwidth-delay
//!   product needs (`Schedule::slots`: smallest round trip ÷ spacing of blocks in a burst,
//!   plus two requests), at most [`crate::Config::requests_in_flight`]; more would only queue,
//!   and a block asked for again waits behind the queue. A block found lost is asked for again
//!   at once even when the window is full (any of the [`MAX_REQUESTS`] slots): a re-request is
//!   small, and waiting for a window slot made it wait for a whole request to drain.
//! * Reordering ([`Tolerance`]): a block that arrives after it was found lost — not in any
//!   request any more, or in a request sent less than ¾ of the smallest round trip ago, too
//!   soon to be that request's answer, or, later than that, as a duplicate of one of the last
//!   8 blocks found lost (both copies came) — was late, not lost. Each such wrong guess raises the
//!   tolerance one level: the distances of the rules above double (a block of the same request
//!   2^level blocks further, `OVERTAKE_LIMIT × 2^level` blocks of later requests) and the
//!   tail and reorder waits grow by one base each. Reordering by `d` blocks then costs about
//!   `log2(d)` wrong guesses, each a few duplicate blocks, and no more (`ferrota bench link`,
//!   the reordering and bursty links). On the service AWS documents (in order) and on a link
//!   that does not reorder, nothing changes: the level stays 0.
//! * Every timeout round without a new block adds one to the momentum; a new block resets it.

use core::time::Duration;

use ferrota_proto::bitmap::BlockSet;

use crate::config::{MAX_REQUESTS, MAX_WINDOW_BLOCKS, REQUEST_BITMAP_BYTES};
use crate::time::Instant;

/// Bytes of a block bitmap: enough for a 0x3F8000-byte bank at 256-byte blocks (16 256 blocks).
pub const BITMAP_BYTES: usize = 2048;
/// Most blocks a file may have.
pub const MAX_BLOCKS: u32 = (BITMAP_BYTES * 8) as u32;

/// Blocks of later requests that must arrive after a request's last block before its missing
/// blocks count as lost: tolerance for a service that interleaves its answers a little (as
/// TCP's three duplicate ACKs tolerate reordering); a wrong guess costs a duplicate block.
pub const OVERTAKE_LIMIT: u32 = 3;

/// Shortest pause in the answer of the newest request in flight after which its tail counts
/// as lost: well above the spacing of blocks in a burst (0.35 ms for 4 KB at 100 Mbit/s), and
/// above a scheduling hiccup of a busy host.
pub const TAIL_MIN: Duration = Duration::from_millis(10);
/// A pause of this many block spacings in the answer of the newest request means its tail
/// was lost (a throttled service, e.g. 512 KB/s a connection, spaces 4 KB blocks by 8 ms).
pub const TAIL_SPACINGS: u64 = 8;

/// A plain bit set over block indices.
#[derive(Clone)]
pub(crate) struct Bits {
    bits: [u8; BITMAP_BYTES],
}

impl Bits {
    pub(crate) const fn new() -> Self {
        Bits {
            bits: [0; BITMAP_BYTES],
        }
    }
    pub(crate) fn get(&self, i: u32) -> bool {
        self.bits
            .get((i >> 3) as usize)
            .is_some_and(|b| b & (1 << (i & 7)) != 0)
    }
    pub(crate) fn set(&mut self, i: u32, v: bool) {
        if let Some(b) = self.bits.get_mut((i >> 3) as usize) {
            if v {
                *b |= 1 << (i & 7);
            } else {
                *b &= !(1 << (i & 7));
            }
        }
    }
    pub(crate) fn clear_all(&mut self) {
        self.bits.fill(0);
    }
}

/// Round-trip estimator (RFC 6298).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rtt {
    srtt: Option<u64>,
    rttvar: u64,
    backoff: u32,
    /// The smallest sample: the round trip without the requests queued ahead.
    min: Option<u64>,
}

impl Rtt {
    pub(crate) const fn new() -> Self {
        Rtt {
            srtt: None,
            rttvar: 0,
            backoff: 0,
            min: None,
        }
    }
    pub(crate) fn sample(&mut self, r: Duration) {
        let r = u64::try_from(r.as_micros()).unwrap_or(u64::MAX);
        self.min = Some(self.min.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                self.rttvar = (3 * self.rttvar + s.abs_diff(r)) / 4;
                self.srtt = Some((7 * s + r) / 8);
            }
        }
        self.backoff = 0;
    }
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }
    pub(crate) fn on_timeout(&mut self) {
        self.backoff = (self.backoff + 1).min(16);
    }
    pub(crate) fn rto(&self, initial: Duration, min: Duration, max: Duration) -> Duration {
        let base = match self.srtt {
            None => initial,
            Some(s) => Duration::from_micros(s + (4 * self.rttvar).max(s / 2)),
        };
        let base = base.clamp(min, max);
        base.checked_mul(1 << self.backoff).unwrap_or(max).min(max)
    }
}

/// One request in flight. Laid out small (72 bytes on a 64-bit host): the agent holds
/// [`MAX_REQUESTS`] of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req {
    pub sent_at: Instant,
    pub last_activity: Instant,
    /// When this request, with no answer yet, was passed (a later request answered in full
    /// and [`OVERTAKE_LIMIT`] blocks of later requests arrived: loss detection), in µs after
    /// `sent_at` and at least 1; 0: not passed. See [`Req::passed_at`].
    passed: u32,
    /// Order of sending: the service answers requests in this order.
    pub seq: u32,
    pub offset: u32,
    pub bits: [u8; REQUEST_BITMAP_BYTES],
    pub outstanding: u16,
    /// New blocks of later requests since this request's last block (loss detection).
    pub overtaken: u16,
    /// Bytes of `bits` in use.
    pub len: u8,
    /// Whether a block of this request arrived (the request was answered).
    pub answered: bool,
    pub ambiguous: bool,
    /// Whether a later request was answered in full while this one had no answer yet.
    pub later_done: bool,
    /// Decided, not yet handed out by [`Schedule::take_unsent`].
    pub unsent: bool,
    /// The highest block of this request that arrived, from `offset`.
    pub top: u8,
}

impl Req {
    /// When it was passed (see `passed`).
    pub(crate) fn passed_at(&self) -> Option<Instant> {
        (self.passed != 0).then(|| self.sent_at + Duration::from_micros(u64::from(self.passed)))
    }
    fn set_passed(&mut self, now: Instant) {
        if self.passed == 0 {
            let us = now.saturating_since(self.sent_at).as_micros();
            self.passed = u32::try_from(us).unwrap_or(u32::MAX).max(1);
        }
    }
    fn holds(&self, block: u32) -> bool {
        block
            .checked_sub(self.offset)
            .filter(|k| (*k as usize) < usize::from(self.len) * 8)
            .is_some_and(|k| self.bits[(k >> 3) as usize] & (1 << (k & 7)) != 0)
    }
    fn take(&mut self, block: u32) -> bool {
        if !self.holds(block) {
            return false;
        }
        let k = block - self.offset;
        self.bits[(k >> 3) as usize] &= !(1 << (k & 7));
        self.outstanding -= 1;
        true
    }
    fn blocks(&self) -> impl Iterator<Item = u32> + '_ {
        (0..u32::from(self.len) * 8)
            .filter(|k| self.bits[(k >> 3) as usize] & (1 << (k & 7)) != 0)
            .map(|k| self.offset + k)
    }
}

/// The bookkeeping of one download.
pub(crate) struct Schedule {
    pub missing: BlockSet<BITMAP_BYTES>,
    requested: Bits,
    /// Every missing block below this block was asked for before: requests take the lowest
    /// requestable blocks first, so the scan of [`Schedule::next_request`] never skips one.
    /// Karn's rule (no round-trip sample from a request that asks for a block again) without
    /// a second 2 KB bitmap.
    high_water: u32,
    reqs: [Option<Req>; MAX_REQUESTS],
    next_seq: u32,
    pub rtt: Rtt,
    pub momentum: u32,
    /// Smoothed time between consecutive blocks of one request's answer (µs).
    spacing: Option<u64>,
    /// How much reordering the loss detection tolerates; raised by each wrong guess.
    pub tolerance: Tolerance,
    /// The last [`RECENT_LOST`] blocks found lost (`u16::MAX`: none): a duplicate of one of
    /// them means both its copies came, so it was not lost (the original was late by more
    /// than the re-request's round trip, which the ¾-round-trip rule cannot see).
    recent_lost: [u16; RECENT_LOST],
    recent_next: u8,
}

/// Blocks found lost remembered for [`Schedule::on_duplicate`] (16 bytes).
const RECENT_LOST: usize = 8;

/// What one new block told the schedule ([`Schedule::on_block`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BlockNews {
    /// Blocks found lost (asked for again at once).
    pub lost: u32,
    /// The block itself had been found lost (or timed out) and was asked for again: it was
    /// late, not lost, and the reordering tolerance was raised.
    pub late: bool,
}

/// The reordering tolerance of the early loss detection (`gap_retransmit`), as a level
/// from 0 to [`TOLERANCE_MAX`]. Level 0 is the schedule before issue #23: a block of a
/// request is lost as soon as one later block of the same request arrived, a started request
/// once [`OVERTAKE_LIMIT`] blocks of later requests followed its last block, the newest
/// request's tail after a pause of [`TAIL_SPACINGS`] burst spacings (at least [`TAIL_MIN`]).
/// Each block that arrives after it was found lost (a wrong guess: the service answered out
/// of order, or the link delivered in bursts) raises the level by one, which doubles all
/// three (like TCP's reordering metric after a DSACK, RFC 4015 and RACK's `reo_wnd`
/// back-off, RFC 8985): reordering by `d` blocks costs at most about `log2(d)` wrong guesses,
/// each a few duplicate blocks, and then none. It never falls within a download: a service
/// that reordered once is expected to again, and a higher level only costs a few block
/// spacings of detection time (a lost block is found 2^level later blocks after it, not one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tolerance {
    level: u8,
}

/// Highest [`Tolerance`] level: 64 later blocks of the same request, 192 of later requests,
/// a tail pause of 64 × 8 spacings (at least 640 ms; the retransmission timeout bounds it).
pub const TOLERANCE_MAX: u8 = 6;

impl Tolerance {
    /// Its level (wrong guesses so far, capped at [`TOLERANCE_MAX`]).
    #[cfg(test)]
    pub(crate) fn level(self) -> u8 {
        self.level
    }
    /// How far (in blocks) a block of the same request sent after a missing one must be for
    /// the missing one to count as lost: 1, 2, 4 … 64.
    pub(crate) fn within(self) -> u16 {
        1 << self.level
    }
    /// Blocks of later requests after a started request's last block before what it still
    /// misses is lost.
    pub(crate) fn overtake(self) -> u32 {
        OVERTAKE_LIMIT << self.level
    }
    /// How much longer than at level 0 a time-based wait is (the newest request's tail, a
    /// passed request's reorder wait): 1 + level, linear as RACK's `reo_wnd`: a wait is
    /// detection time every lost block pays.
    fn tail_factor(self) -> u32 {
        1 + u32::from(self.level)
    }
    fn raise(&mut self) {
        self.level = (self.level + 1).min(TOLERANCE_MAX);
    }
}

/// A request to send, as decided.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRequest {
    pub offset: u32,
    pub bits: [u8; REQUEST_BITMAP_BYTES],
    pub len: usize,
    pub count: u32,
}

impl Schedule {
    pub(crate) fn new(missing: BlockSet<BITMAP_BYTES>) -> Self {
        Schedule {
            missing,
            requested: Bits::new(),
            high_water: 0,
            reqs: [None; MAX_REQUESTS],
            next_seq: 0,
            rtt: Rtt::new(),
            momentum: 0,
            spacing: None,
            tolerance: Tolerance::default(),
            recent_lost: [u16::MAX; RECENT_LOST],
            recent_next: 0,
        }
    }

    /// Forgets every request (disconnect: nothing in flight will arrive).
    pub(crate) fn drop_requests(&mut self) {
        self.reqs = [None; MAX_REQUESTS];
        self.requested.clear_all();
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.reqs.iter().flatten().count()
    }

    /// Remembers `b` as found lost (see `recent_lost`).
    fn found_lost(&mut self, b: u32) {
        let i = usize::from(self.recent_next) % RECENT_LOST;
        self.recent_lost[i] = u16::try_from(b).unwrap_or(u16::MAX);
        self.recent_next = self.recent_next.wrapping_add(1);
    }

    /// Forgets `b` as found lost; whether it was remembered.
    fn forget_lost(&mut self, b: u32) -> bool {
        let Ok(b) = u16::try_from(b) else {
            return false;
        };
        let Some(slot) = self.recent_lost.iter_mut().find(|x| **x == b) else {
            return false;
        };
        *slot = u16::MAX;
        true
    }

    /// A block that was already in arrived again. If it was one found lost lately, both its
    /// copies came: it was late, not lost, and the reordering tolerance is raised (`true`).
    pub(crate) fn on_duplicate(&mut self, block: u32) -> bool {
        let late = self.forget_lost(block);
        if late {
            self.tolerance.raise();
        }
        late
    }

    /// Blocks requested and not yet received nor given up: the window in blocks.
    pub(crate) fn window_blocks(&self) -> u32 {
        self.reqs
            .iter()
            .flatten()
            .map(|r| u32::from(r.outstanding))
            .sum()
    }

    /// A new block arrived (and was written). Updates its request and the estimator. With
    /// `gaps`, the blocks of the same request [`Tolerance::within`] or more below it that are
    /// still outstanding are lost (the service sends a request's blocks in order): they
    /// become requestable at once. A block that comes
    /// after it was found lost was late, not lost: that raises the tolerance.
    pub(crate) fn on_block(&mut self, now: Instant, block: u32, gaps: bool) -> BlockNews {
        let mut progressed = None;
        let mut completed = false;
        let mut news = BlockNews::default();
        let mut found = false;
        // Blocks found lost in this call (the last RECENT_LOST of them), remembered below.
        let (mut lost_now, mut lost_n) = ([0u32; RECENT_LOST], 0u8);
        // Sooner after its request than any answer can come: the late original of a block
        // that was asked for again.
        let too_soon = self
            .rtt
            .min
            .map(|m| Duration::from_micros(m.saturating_mul(3) / 4));
        for slot in self.reqs.iter_mut() {
            let Some(r) = slot else { continue };
            if !r.take(block) {
                continue;
            }
            found = true;
            if too_soon.is_some_and(|w| now.saturating_since(r.sent_at) < w) {
                news.late = true;
                if r.outstanding == 0 {
                    *slot = None;
                }
                break;
            }
            // One round-trip sample per request: from sending it to its first block, which
            // includes the wait behind the requests ahead of it. Later blocks of the same
            // request only measure how fast the stream is drained, not the round trip.
            if !r.ambiguous && !r.answered {
                self.rtt.sample(now.saturating_since(r.sent_at));
            } else if r.answered {
                // The spacing of a burst: how long a pause in one is normal.
                let gap = u64::try_from(now.saturating_since(r.last_activity).as_micros())
                    .unwrap_or(u64::MAX);
                self.spacing = Some(self.spacing.map_or(gap, |s| (7 * s + gap) / 8));
            }
            r.answered = true;
            r.passed = 0;
            r.last_activity = now;
            progressed = Some(r.seq);
            if gaps {
                // Lost: the outstanding blocks `within` or more below the highest block of
                // the request that arrived (sent after them; at level 0 any higher block).
                r.top = r.top.max((block - r.offset) as u8);
                let reach = u32::from(r.top) + 1;
                let below = reach.saturating_sub(u32::from(self.tolerance.within()));
                for b in r.offset..r.offset + below {
                    if r.take(b) {
                        self.requested.set(b, false);
                        news.lost += 1;
                        lost_now[usize::from(lost_n) % RECENT_LOST] = b;
                        lost_n = lost_n.saturating_add(1);
                    }
                }
            }
            if r.outstanding == 0 {
                *slot = None;
                completed = true;
            }
            break;
        }
        // Asked for before, found lost (or timed out) and not asked for again yet: it was
        // late, not lost.
        news.late |= !found && block < self.high_water;
        if news.late {
            self.tolerance.raise();
            // Its copy asked for again will come as a duplicate: one wrong guess, not two.
            self.forget_lost(block);
        }
        // The requests behind it are served after it: while it progresses they are queued, not
        // lost, so their timers restart too. A request ahead of it whose answer had started
        // was served before it: once `Tolerance::overtake` blocks of later requests came after
        // its last block, what it still misses was lost. A request ahead of it with no answer
        // yet (typically a re-request of one or two blocks whose answer was dropped again) is
        // passed once a later request was answered in full and as many blocks of later
        // requests arrived; it is given up a reorder wait later (`expire`), not a timeout.
        let limit = self.tolerance.overtake();
        if let Some(seq) = progressed {
            for slot in self.reqs.iter_mut() {
                let Some(r) = slot else { continue };
                let ahead = seq.wrapping_sub(r.seq) as i32;
                if ahead < 0 {
                    r.last_activity = r.last_activity.max(now);
                } else if ahead > 0 && gaps {
                    r.overtaken = r.overtaken.saturating_add(1);
                    r.later_done |= completed;
                    let overtaken = u32::from(r.overtaken) >= limit;
                    if overtaken && !r.answered && r.later_done {
                        r.set_passed(now);
                    } else if overtaken && r.answered {
                        for b in r.blocks() {
                            self.requested.set(b, false);
                            lost_now[usize::from(lost_n) % RECENT_LOST] = b;
                            lost_n = lost_n.saturating_add(1);
                        }
                        news.lost += u32::from(r.outstanding);
                        *slot = None;
                    }
                } else if ahead == 0 {
                    r.overtaken = 0;
                }
            }
        }
        self.requested.set(block, false);
        for &b in lost_now.iter().take(usize::from(lost_n).min(RECENT_LOST)) {
            self.found_lost(b);
        }
        news
    }

    /// Decides the next request: up to `max` blocks that are missing and not requested, lowest
    /// first, below `limit`. `None` when there is no free slot or nothing to ask for.
    ///
    /// `slots` bounds the requests in flight for new blocks (the adaptive window,
    /// [`Schedule::slots`]); with `reask`, blocks asked for before and found lost are asked
    /// again whenever one of the [`MAX_REQUESTS`] slots is free, even when the window is full
    /// (a re-request is small, and waiting for a window slot cost a lost block the time the
    /// whole window took to drain). New blocks also stop at [`MAX_WINDOW_BLOCKS`] in flight.
    pub(crate) fn next_request(
        &mut self,
        now: Instant,
        slots: usize,
        reask: bool,
        max: u32,
        limit: u32,
    ) -> Option<NewRequest> {
        let in_flight = self.in_flight();
        if in_flight >= MAX_REQUESTS {
            return None;
        }
        let mut b = self.missing.first_missing_from(0)?;
        while self.requested.get(b) {
            b = self.missing.first_missing_from(b + 1)?;
        }
        if b >= limit {
            return None;
        }
        // Only re-requests (blocks below the high water mark) when the window is full.
        let only_again = in_flight >= slots.min(MAX_REQUESTS);
        if only_again && (!reask || b >= self.high_water) {
            return None;
        }
        let mut room = MAX_WINDOW_BLOCKS.saturating_sub(self.window_blocks());
        if b >= self.high_water && room == 0 {
            return None;
        }
        let offset = b;
        let span = (REQUEST_BITMAP_BYTES * 8) as u32;
        let mut bits = [0u8; REQUEST_BITMAP_BYTES];
        let (mut count, mut len, mut ambiguous) = (0u32, 0usize, false);
        let mut cur = Some(b);
        while let Some(x) = cur {
            if count >= max || x >= limit || x - offset >= span {
                break;
            }
            let again = x < self.high_water;
            if !again && (only_again || room == 0) {
                break;
            }
            if !self.requested.get(x) {
                let k = x - offset;
                bits[(k >> 3) as usize] |= 1 << (k & 7);
                len = len.max((k >> 3) as usize + 1);
                count += 1;
                self.requested.set(x, true);
                ambiguous |= again;
                if !again {
                    room -= 1;
                    self.high_water = x + 1;
                }
            }
            cur = self.missing.first_missing_from(x + 1);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        let req = Req {
            sent_at: now,
            last_activity: now,
            passed: 0,
            seq: self.next_seq,
            offset,
            bits,
            outstanding: count as u16,
            overtaken: 0,
            len: len as u8,
            answered: false,
            ambiguous,
            later_done: false,
            unsent: true,
            top: 0,
        };
        let slot = self.reqs.iter_mut().find(|s| s.is_none())?;
        *slot = Some(req);
        Some(NewRequest {
            offset,
            bits,
            len,
            count,
        })
    }

    /// The oldest request decided and not yet handed out (to be sent now), as sent.
    pub(crate) fn take_unsent(&mut self) -> Option<NewRequest> {
        let r = self
            .reqs
            .iter_mut()
            .flatten()
            .filter(|r| r.unsent)
            .min_by_key(|r| r.seq.wrapping_sub(self.next_seq) as i32)?;
        r.unsent = false;
        Some(NewRequest {
            offset: r.offset,
            bits: r.bits,
            len: usize::from(r.len),
            count: u32::from(r.outstanding),
        })
    }

    /// Whether a request waits for [`Schedule::take_unsent`].
    pub(crate) fn has_unsent(&self) -> bool {
        self.reqs.iter().flatten().any(|r| r.unsent)
    }

    /// Requests in flight the link needs, at most `max`: the bandwidth-delay product in
    /// blocks (smallest round trip ÷ spacing of blocks in a burst) in requests of `per_request`
    /// blocks, plus one being refilled and one to spare. More only queue up at the service
    /// and on the path: a block asked for again waits behind all of them (with 8 × 128 KB in
    /// flight at 2 ms RTT, 85 ms; a loss near the end cost 11% of the goodput). `max` until
    /// both are measured.
    pub(crate) fn slots(&self, max: usize, per_request: u32) -> usize {
        let (Some(rtt), Some(spacing)) = (self.rtt.min, self.spacing) else {
            return max;
        };
        let bdp = rtt / spacing.max(1);
        let n = bdp
            .div_ceil(u64::from(per_request.max(1)))
            .saturating_add(2);
        usize::try_from(n).unwrap_or(usize::MAX).clamp(1, max)
    }

    /// The newest request in flight (the service answers it last).
    fn newest(&self) -> Option<u32> {
        let mut newest: Option<u32> = None;
        for r in self.reqs.iter().flatten() {
            if newest.is_none_or(|n| r.seq.wrapping_sub(n) as i32 > 0) {
                newest = Some(r.seq);
            }
        }
        newest
    }

    /// How long the answer of the newest request may pause before its tail counts as lost
    /// (`gaps` on, the spacing of a burst measured): [`TAIL_SPACINGS`] times the smoothed
    /// spacing of blocks within a request's answer, at least [`TAIL_MIN`]. Not the round trip:
    /// a burst is sent back to back, and the round trip measured while a window is queued
    /// holds the queue (at 2 ms RTT, srtt/4 still cost 12% of the goodput at the end).
    fn tail_wait(&self, gaps: bool) -> Option<Duration> {
        let spacing = self.spacing.filter(|_| gaps)?;
        let wait = Duration::from_micros(spacing.saturating_mul(TAIL_SPACINGS)).max(TAIL_MIN);
        Some(wait * self.tolerance.tail_factor())
    }

    fn req_deadline(
        r: &Req,
        rto: Duration,
        tail: Option<(u32, Duration)>,
        reorder: Duration,
    ) -> Instant {
        let mut d = r.last_activity + rto;
        if let Some(p) = r.passed_at() {
            d = d.min(p + reorder);
        }
        if let Some((newest, wait)) = tail
            && r.seq == newest
            && r.answered
        {
            d = d.min(r.last_activity + wait);
        }
        d
    }

    /// The earliest request deadline (`gaps`: with the tail timer of the newest request; a
    /// request passed by later answers gets `reorder` from then).
    pub(crate) fn deadline(&self, rto: Duration, gaps: bool, reorder: Duration) -> Option<Instant> {
        let tail = self.newest().zip(self.tail_wait(gaps));
        let reorder = reorder * self.tolerance.tail_factor();
        self.reqs
            .iter()
            .flatten()
            .map(|r| Self::req_deadline(r, rto, tail, reorder))
            .min()
    }

    /// Drops the requests whose deadline passed; their missing blocks become requestable.
    /// Returns how many timed out, and how many blocks the tail timer or the passed timer
    /// (`reorder` after a request was passed) found lost (no back-off: the round trip is known
    /// and the link is not congested, a block was lost).
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        rto: Duration,
        gaps: bool,
        reorder: Duration,
    ) -> (u32, u32) {
        let tail = self.newest().zip(self.tail_wait(gaps));
        let reorder = reorder * self.tolerance.tail_factor();
        let (mut n, mut lost) = (0, 0);
        let (mut lost_now, mut lost_n) = ([0u32; RECENT_LOST], 0usize);
        for slot in self.reqs.iter_mut() {
            let Some(r) = slot else { continue };
            let timed_out = r.last_activity + rto <= now;
            if timed_out {
                n += 1;
            } else if Self::req_deadline(r, rto, tail, reorder) <= now {
                lost += u32::from(r.outstanding);
            } else {
                continue;
            }
            for b in r.blocks() {
                self.requested.set(b, false);
                if !timed_out {
                    lost_now[lost_n % RECENT_LOST] = b;
                    lost_n += 1;
                }
            }
            *slot = None;
        }
        for &b in lost_now.iter().take(lost_n.min(RECENT_LOST)) {
            self.found_lost(b);
        }
        if n > 0 {
            self.rtt.on_timeout();
            self.momentum += 1;
        }
        (n, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn sched(blocks: u32) -> Schedule {
        Schedule::new(BlockSet::all_missing(blocks).expect("bitmap"))
    }

    fn receive(s: &mut Schedule, now: Instant, b: u32, gaps: bool) -> u32 {
        let _ = s.missing.mark_received(b);
        s.on_block(now, b, gaps).lost
    }

    #[test]
    fn a_block_overtaken_in_its_request_is_asked_again_at_once() {
        let mut s = sched(64);
        let r = s
            .next_request(t(0), 1, false, 8, 64)
            .expect("first request");
        assert_eq!((r.offset, r.count), (0, 8));
        assert!(s.next_request(t(0), 1, false, 8, 64).is_none(), "one slot");
        assert_eq!(receive(&mut s, t(10), 0, true), 0);
        assert_eq!(receive(&mut s, t(10), 1, true), 0);
        // 2 and 3 were lost: 4 overtook them.
        assert_eq!(receive(&mut s, t(11), 4, true), 2);
        for b in 5..8 {
            assert_eq!(receive(&mut s, t(11), b, true), 0);
        }
        // The request is complete without them; the next one starts with them, before any
        // timeout.
        assert_eq!(s.in_flight(), 0);
        let again = s.next_request(t(11), 1, false, 8, 64).expect("re-request");
        assert_eq!(again.offset, 2);
        assert_eq!(again.bits[0] & 0b11, 0b11, "blocks 2 and 3");
        assert_eq!(again.count, 8);
    }

    #[test]
    fn without_gap_retransmit_a_lost_block_waits_for_the_timeout() {
        let mut s = sched(64);
        let _ = s
            .next_request(t(0), 1, false, 8, 64)
            .expect("first request");
        for b in [0, 1, 3, 4, 5, 6, 7] {
            assert_eq!(receive(&mut s, t(10), b, false), 0);
        }
        assert_eq!(s.in_flight(), 1, "still waiting for block 2");
        assert!(s.next_request(t(10), 1, false, 8, 64).is_none());
        let rto = Duration::from_secs(10);
        assert_eq!(s.expire(t(9_000), rto, false, MS100), (0, 0));
        assert_eq!(s.expire(t(10_010), rto, false, MS100), (1, 0));
        let again = s
            .next_request(t(10_010), 1, false, 8, 64)
            .expect("re-request");
        assert_eq!(again.offset, 2);
    }

    #[test]
    fn a_request_overtaken_by_later_ones_lost_what_it_misses() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("first");
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("second");
        // The first request's last block is lost; the second's blocks follow.
        for b in 0..7 {
            assert_eq!(receive(&mut s, t(5), b, true), 0);
        }
        // Fewer than OVERTAKE_LIMIT later blocks: a little reordering is tolerated.
        for b in 8..8 + OVERTAKE_LIMIT - 1 {
            assert_eq!(receive(&mut s, t(6), b, true), 0);
        }
        assert!(s.requested.get(7));
        // One more, and block 7 is lost: its slot frees and the next request starts with it.
        assert_eq!(receive(&mut s, t(6), 8 + OVERTAKE_LIMIT - 1, true), 1);
        assert!(!s.requested.get(7));
        assert_eq!(s.in_flight(), 1);
        let next = s.next_request(t(6), 2, false, 8, 64).expect("a free slot");
        assert_eq!(next.offset, 7);
    }

    const MS100: Duration = Duration::from_millis(100);

    /// A re-request of one block (0), a second one-block request (1) and two full ones (2..10,
    /// 10..18; the newest unanswered, so no tail timer) in flight; the first one's answer never
    /// comes, the second is answered in full, and OVERTAKE_LIMIT blocks of later requests
    /// arrive by 50 ms: the first is passed at 50 ms.
    fn passed_lone_request() -> Schedule {
        let mut s = sched(64);
        let lone = s.next_request(t(0), 3, false, 1, 64).expect("one block");
        assert_eq!((lone.offset, lone.count), (0, 1));
        let _ = s.next_request(t(0), 3, false, 1, 64).expect("one block");
        let _ = s.next_request(t(0), 4, false, 8, 64).expect("eight blocks");
        let _ = s.next_request(t(0), 4, false, 8, 64).expect("eight more");
        for b in 1..OVERTAKE_LIMIT {
            assert_eq!(receive(&mut s, t(40), b, true), 0);
        }
        assert!(s.reqs.iter().flatten().all(|r| r.passed_at().is_none()));
        assert_eq!(receive(&mut s, t(50), OVERTAKE_LIMIT, true), 0);
        assert!(s.requested.get(0), "late, not yet lost");
        s
    }

    #[test]
    fn an_unanswered_request_passed_by_later_answers_is_asked_again_after_a_reorder_wait() {
        let mut s = passed_lone_request();
        let rto = Duration::from_secs(10);
        // Its deadline is the reorder wait from being passed, not the timeout.
        assert_eq!(s.deadline(rto, true, MS100), Some(t(150)));
        assert_eq!(s.expire(t(149), rto, true, MS100), (0, 0));
        assert_eq!(
            s.expire(t(150), rto, true, MS100),
            (0, 1),
            "lost, no timeout"
        );
        assert!(!s.requested.get(0));
        assert_eq!(s.in_flight(), 2);
        let again = s
            .next_request(t(150), 4, false, 1, 64)
            .expect("a free slot");
        assert_eq!((again.offset, again.count), (0, 1));
        // Without gap_retransmit nothing is passed: the timeout decides.
        let mut o = sched(64);
        let _ = o.next_request(t(0), 3, false, 1, 64).expect("one block");
        let _ = o.next_request(t(0), 3, false, 1, 64).expect("one block");
        let _ = o.next_request(t(0), 3, false, 8, 64).expect("eight blocks");
        for b in 1..=OVERTAKE_LIMIT {
            assert_eq!(receive(&mut o, t(50), b, false), 0);
        }
        assert_eq!(o.expire(t(150), rto, false, MS100), (0, 0));
    }

    #[test]
    fn a_passed_request_answered_within_the_reorder_wait_is_not_asked_again() {
        let mut s = passed_lone_request();
        let rto = Duration::from_secs(10);
        // Served late, behind the later requests (a delayed segment), within the wait.
        assert_eq!(receive(&mut s, t(120), 0, true), 0);
        assert_eq!(s.expire(t(150), rto, true, MS100), (0, 0));
        assert!(
            (4..18).all(|b| s.requested.get(b)),
            "the full requests wait"
        );
        // Only timeouts are left: the requests behind it restarted theirs with its block.
        assert_eq!(s.deadline(rto, true, MS100), Some(t(10_120)));
    }

    #[test]
    fn an_unanswered_request_is_not_passed_by_a_later_answer_in_progress() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("first");
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("second");
        // The second request is answered before the first (served out of order) but not in
        // full: the first is not passed.
        for b in 8..15 {
            assert_eq!(receive(&mut s, t(5), b, true), 0);
        }
        assert!((0..8).all(|b| s.requested.get(b)));
        assert!(s.reqs.iter().flatten().all(|r| r.passed_at().is_none()));
        for b in 0..8 {
            assert_eq!(receive(&mut s, t(6), b, true), 0);
        }
        assert_eq!(receive(&mut s, t(6), 15, true), 0);
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.missing.received_count(), 16);
    }

    #[test]
    fn a_block_of_the_request_resets_its_overtaken_count() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("first");
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("second");
        // Interleaved answers: never OVERTAKE_LIMIT later blocks in a row.
        for (a, b) in (0..8).zip(8..16) {
            assert_eq!(receive(&mut s, t(5), b, true), 0);
            assert_eq!(receive(&mut s, t(5), a, true), 0);
        }
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.missing.received_count(), 16);
    }

    #[test]
    fn without_gap_retransmit_later_requests_say_nothing() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("first");
        let _ = s.next_request(t(0), 2, false, 8, 64).expect("second");
        for b in 8..16 {
            assert_eq!(receive(&mut s, t(5), b, false), 0);
        }
        assert!(
            (0..8).all(|b| s.requested.get(b)),
            "blocks 0..8 still asked for"
        );
    }

    #[test]
    fn a_lost_block_is_asked_again_at_once_even_when_the_window_is_full() {
        let mut s = sched(64);
        for _ in 0..2 {
            let _ = s.next_request(t(0), 2, true, 8, 64).expect("the window");
        }
        assert!(s.next_request(t(0), 2, true, 8, 64).is_none(), "full");
        assert_eq!(receive(&mut s, t(10), 0, true), 0);
        assert_eq!(receive(&mut s, t(10), 2, true), 1, "block 1 was lost");
        // Still two requests in flight: block 1 goes out alone, no new block with it.
        let again = s.next_request(t(10), 2, true, 8, 64).expect("a re-request");
        assert_eq!((again.offset, again.count, again.bits[0]), (1, 1, 1));
        assert!(s.next_request(t(10), 2, true, 8, 64).is_none());
        // Probing after a timeout (`reask` off): the window decides.
        let mut p = sched(64);
        for _ in 0..2 {
            let _ = p.next_request(t(0), 2, false, 8, 64).expect("the window");
        }
        assert_eq!(
            receive(&mut p, t(10), 2, true),
            2,
            "blocks 0 and 1 were lost"
        );
        assert!(p.next_request(t(10), 2, false, 8, 64).is_none());
    }

    #[test]
    fn the_first_window_stops_at_max_window_blocks() {
        let mut s = sched(4000);
        let mut n = 0;
        while let Some(r) = s.next_request(t(0), MAX_REQUESTS, true, 64, 4000) {
            n += r.count;
        }
        assert_eq!(n, MAX_WINDOW_BLOCKS);
        assert_eq!(s.window_blocks(), MAX_WINDOW_BLOCKS);
        // Block 1 arrives, block 0 is lost: both leave the window. Block 0 is asked again
        // (alone: a request spans 256 blocks) and is in it again, then the one new block
        // that fills the window up, and no more.
        assert_eq!(receive(&mut s, t(10), 1, true), 1);
        let again = s.next_request(t(10), MAX_REQUESTS, true, 64, 4000);
        assert_eq!(again.map(|r| (r.offset, r.count)), Some((0, 1)));
        let more = s.next_request(t(10), MAX_REQUESTS, true, 64, 4000);
        assert_eq!(
            more.map(|r| (r.offset, r.count)),
            Some((MAX_WINDOW_BLOCKS, 1))
        );
        assert_eq!(s.window_blocks(), MAX_WINDOW_BLOCKS);
        assert!(
            s.next_request(t(10), MAX_REQUESTS, true, 64, 4000)
                .is_none()
        );
    }

    #[test]
    fn the_window_follows_the_bandwidth_delay_product_past_the_old_cap() {
        let mut s = sched(64);
        assert_eq!(
            s.slots(MAX_REQUESTS, 32),
            MAX_REQUESTS,
            "unmeasured: all of it"
        );
        // 4 KB blocks on 100 Mbit/s Ethernet arrive 357 µs apart.
        s.spacing = Some(357);
        for (rtt, slots) in [(2, 3), (50, 7), (200, 20), (400, 37), (600, MAX_REQUESTS)] {
            s.rtt = Rtt::new();
            s.rtt.sample(Duration::from_millis(rtt));
            assert_eq!(s.slots(MAX_REQUESTS, 32), slots, "{rtt} ms");
        }
        // Configured lower: that is the cap.
        assert_eq!(s.slots(16, 32), 16);
    }

    #[test]
    fn a_re_request_gives_no_round_trip_sample() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 1, true, 8, 64).expect("first");
        assert_eq!(receive(&mut s, t(50), 0, true), 0);
        assert_eq!(receive(&mut s, t(50), 2, true), 1, "block 1 lost");
        for b in 3..8 {
            assert_eq!(receive(&mut s, t(51), b, true), 0);
        }
        let again = s
            .next_request(t(51), 1, true, 8, 64)
            .expect("block 1 and new ones");
        assert_eq!((again.offset, again.count), (1, 8));
        let before = (s.rtt.srtt(), s.rtt.min);
        // Its first block comes late (queued): not a sample, it asked for block 1 again.
        assert_eq!(receive(&mut s, t(400), 1, true), 0);
        assert_eq!((s.rtt.srtt(), s.rtt.min), before);
        // A request of new blocks only is sampled.
        let _ = s.next_request(t(400), 2, true, 8, 64).expect("new blocks");
        assert_eq!(receive(&mut s, t(460), 15, true), 0);
        assert_ne!(s.rtt.srtt(), before.0);
    }

    #[test]
    fn requests_are_handed_out_oldest_first_once() {
        let mut s = sched(64);
        for _ in 0..3 {
            let _ = s.next_request(t(0), 3, true, 8, 64).expect("a request");
        }
        assert!(s.has_unsent());
        let offsets: [u32; 3] = core::array::from_fn(|_| s.take_unsent().expect("unsent").offset);
        assert_eq!(offsets, [0, 8, 16]);
        assert!(!s.has_unsent());
        assert!(s.take_unsent().is_none());
    }

    /// One request of 16 blocks, answered from 50 ms (the smallest round trip); block 1 is
    /// overtaken by block 2, found lost and asked for again at 51 ms.
    fn one_wrong_guess() -> Schedule {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 1, true, 16, 64).expect("first");
        assert_eq!(receive(&mut s, t(50), 0, true), 0);
        assert_eq!(receive(&mut s, t(50), 2, true), 1, "level 0: lost at once");
        let again = s.next_request(t(51), 2, true, 16, 64).expect("re-request");
        assert_eq!(again.offset, 1);
        s
    }

    #[test]
    fn a_block_found_lost_that_arrives_too_soon_for_its_re_request_was_late() {
        let mut s = one_wrong_guess();
        // 1 ms after the re-request, far sooner than any answer: the original, late.
        let _ = s.missing.mark_received(1);
        let news = s.on_block(t(52), 1, true);
        assert_eq!(
            news,
            BlockNews {
                lost: 0,
                late: true
            }
        );
        assert_eq!(s.tolerance.level(), 1);
        // Level 1: block 3 is lost only once a block 2 further came (5), not 4.
        assert_eq!(receive(&mut s, t(53), 4, true), 0);
        assert!(s.requested.get(3));
        assert_eq!(receive(&mut s, t(53), 5, true), 1);
        assert!(!s.requested.get(3));
        // The re-request's own answer, a round trip later, is its answer again.
        assert_eq!(receive(&mut s, t(101), 16, true), 0);
        assert_eq!(s.tolerance.level(), 1);
    }

    #[test]
    fn a_block_found_lost_and_not_asked_again_yet_that_arrives_was_late() {
        let mut s = sched(64);
        let _ = s.next_request(t(0), 1, false, 8, 64).expect("first");
        assert_eq!(receive(&mut s, t(50), 2, true), 2, "0 and 1 lost");
        // Not asked again yet (one slot, taken): 1 arrives after all.
        let _ = s.missing.mark_received(1);
        assert!(s.on_block(t(51), 1, true).late);
        assert_eq!(s.tolerance.level(), 1);
        // A block never asked for before is not late.
        assert!(!s.on_block(t(51), 40, true).late);
    }

    #[test]
    fn both_copies_of_a_block_found_lost_mean_it_was_late() {
        // 2 ms round trip; block 1 overtaken, asked again; the re-request's answer comes
        // first (taken as its answer), then the original, later than a round trip.
        let mut s = sched(64);
        let _ = s.next_request(t(0), 1, true, 8, 64).expect("first");
        assert_eq!(receive(&mut s, t(2), 0, true), 0);
        assert_eq!(receive(&mut s, t(2), 2, true), 1);
        let again = s.next_request(t(2), 2, true, 8, 64).expect("re-request");
        assert_eq!(again.offset, 1);
        let news = {
            let _ = s.missing.mark_received(1);
            s.on_block(t(5), 1, true)
        };
        assert!(!news.late, "3 ms after the re-request: its answer");
        assert_eq!(s.tolerance.level(), 0);
        assert!(s.on_duplicate(1), "the original came too");
        assert_eq!(s.tolerance.level(), 1);
        assert!(!s.on_duplicate(1), "one wrong guess, counted once");
        assert!(
            !s.on_duplicate(0),
            "never found lost: the service sent it twice"
        );
        assert_eq!(s.tolerance.level(), 1);
    }

    #[test]
    fn the_tolerance_scales_every_rule_and_stops_at_its_maximum() {
        let mut tol = Tolerance::default();
        assert_eq!((tol.within(), tol.overtake(), tol.tail_factor()), (1, 3, 1));
        tol.raise();
        assert_eq!((tol.within(), tol.overtake(), tol.tail_factor()), (2, 6, 2));
        for _ in 0..10 {
            tol.raise();
        }
        assert_eq!(tol.level(), TOLERANCE_MAX);
        assert_eq!(
            (tol.within(), tol.overtake(), tol.tail_factor()),
            (64, 192, 7)
        );
        // The newest request's tail waits longer: 10 ms at level 0, 20 ms at level 1.
        let mut s = one_wrong_guess();
        let rto = Duration::from_secs(10);
        s.spacing = Some(300);
        let _ = s.missing.mark_received(16);
        let _ = s.on_block(t(100), 16, true);
        assert_eq!(s.deadline(rto, true, MS100), Some(t(110)));
        s.tolerance.raise();
        assert_eq!(s.deadline(rto, true, MS100), Some(t(120)));
    }
}

#[cfg(test)]
mod ram {
    use super::*;

    /// The RAM the request slots cost is stated in `MAX_REQUESTS`' documentation: keep it.
    #[test]
    fn a_request_slot_is_72_bytes() {
        assert_eq!(core::mem::size_of::<Option<Req>>(), 72);
    }
}
