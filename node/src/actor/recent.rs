//! When the latest op on each actor executed on this node, for a new owner's handover wait
//! ([`lease`](super::lease)): the wait ends [`handover_wait`](super::lease::handover_wait) after
//! the last earlier op on the actor executed here, not after the activation, so an actor whose
//! old owner went quiet (it died, and gossip took its time to say so) is written at once.
//!
//! Kept for a [`RECENT_OPS_WINDOW`] only, in two generations of maps that rotate, so its size
//! follows the op rate, not the number of actors. An actor with no entry had its last op executed
//! before `now - RECENT_OPS_WINDOW` or before this node started: [`RecentOps::last_op_bound`]
//! then answers the later of those two instants, which is never earlier than the truth.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How long an op's execution time is kept at least; longer than any handover wait the runtime
/// takes this bound for (see [`RecentOps::last_op_bound`]).
pub const RECENT_OPS_WINDOW: Duration = Duration::from_secs(1);

/// The execution times of the recent ops on actors, by interference key.
#[derive(Debug)]
pub struct RecentOps {
    /// When this node started executing (ops executed before, in an earlier process, are not
    /// known: they all come before it).
    started: Instant,
    /// Entries since `rotated`, and those of the generation before.
    current: HashMap<Bytes, Instant>,
    previous: HashMap<Bytes, Instant>,
    rotated: Instant,
}

impl RecentOps {
    pub fn new(started: Instant) -> Self {
        Self { started, current: HashMap::new(), previous: HashMap::new(), rotated: started }
    }

    /// Records that an op on actor `key` executed at `at` (non-decreasing across calls).
    pub fn record(&mut self, key: &Bytes, at: Instant) {
        if at.saturating_duration_since(self.rotated) >= RECENT_OPS_WINDOW {
            // Every entry of `previous` is older than one window: it may go.
            self.previous = std::mem::take(&mut self.current);
            self.rotated = at;
        }
        self.current.insert(key.clone(), at);
    }

    /// An instant no earlier than the execution here of the latest op on actor `key` recorded
    /// so far (as of `now`): its time if known, else the later of `now - RECENT_OPS_WINDOW` and
    /// this node's start.
    pub fn last_op_bound(&self, key: &[u8], now: Instant) -> Instant {
        if let Some(at) = self.current.get(key).or_else(|| self.previous.get(key)) {
            return *at;
        }
        // Not in either map: recorded before `rotated - RECENT_OPS_WINDOW` (when `previous`
        // began), hence before `now - RECENT_OPS_WINDOW`; or never since this node started.
        now.checked_sub(RECENT_OPS_WINDOW).map_or(self.started, |window| window.max(self.started))
    }

    /// Entries held (its size follows the op rate over two windows).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_recent_op_is_known_and_an_old_one_is_bounded_by_the_window() {
        let t0 = Instant::now();
        let mut recent = RecentOps::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        recent.record(&key("a"), ms(100));
        recent.record(&key("b"), ms(900));
        assert_eq!(recent.last_op_bound(b"a", ms(950)), ms(100));
        // A rotation keeps the last generation: `a` is still known.
        recent.record(&key("c"), ms(1_200));
        assert_eq!(recent.last_op_bound(b"a", ms(1_300)), ms(100));
        assert_eq!(recent.last_op_bound(b"b", ms(1_300)), ms(900));
        // The next rotation drops `a` and `b`: their bound is a window before now, later than
        // the truth; `c` is still known.
        recent.record(&key("d"), ms(2_300));
        assert_eq!(recent.last_op_bound(b"a", ms(2_300)), ms(1_300));
        assert_eq!(recent.last_op_bound(b"b", ms(2_400)), ms(1_400));
        assert_eq!(recent.last_op_bound(b"c", ms(2_400)), ms(1_200));
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn an_unknown_actor_is_bounded_by_the_start_until_a_window_has_passed() {
        let t0 = Instant::now();
        let recent = RecentOps::new(t0);
        // Its last op may have executed in an earlier process, just before this one started.
        assert_eq!(recent.last_op_bound(b"x", t0 + Duration::from_millis(10)), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(recent.last_op_bound(b"x", later), later - RECENT_OPS_WINDOW);
    }

    #[test]
    fn the_bound_is_never_earlier_than_the_latest_recorded_op() {
        // Ops at irregular times on a few actors; at each step, every actor's bound is at or
        // after its latest op.
        let t0 = Instant::now();
        let mut recent = RecentOps::new(t0);
        let mut latest: HashMap<Bytes, Instant> = HashMap::new();
        let mut now = t0;
        for i in 0u64..2_000 {
            now += Duration::from_millis((i * 7919) % 97);
            let k = key(&format!("k{}", (i * 31) % 13));
            recent.record(&k, now);
            latest.insert(k, now);
            for (k, at) in &latest {
                assert!(recent.last_op_bound(k, now) >= *at, "step {i}");
            }
        }
        assert!(recent.len() <= 26);
    }
}
