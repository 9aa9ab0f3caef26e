//! The timers foca asks for, kept until they are due. Pure: the caller passes the time in.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use foca::Timer;

use crate::gossip::identity::GossipId;

/// Most timers pending at once. foca keeps a handful per member (a probe, a suspicion, a
/// forget-the-dead timer), so this is far above any real cluster; reaching it is a bug.
pub(crate) const TIMERS_PENDING_MAX: usize = 16_384;

struct Entry {
    due: Instant,
    /// Submission order: equal deadlines fire in the order they were asked for.
    seq: u64,
    timer: Timer<GossipId>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Pending foca timers, earliest first.
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

impl TimerQueue {
    /// Schedules `timer` to fire `after` from `now`.
    pub(crate) fn push(&mut self, now: Instant, after: Duration, timer: Timer<GossipId>) {
        assert!(
            self.heap.len() < TIMERS_PENDING_MAX,
            "too many pending gossip timers: pending={} max={TIMERS_PENDING_MAX}",
            self.heap.len()
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { due: now + after, seq, timer }));
    }

    /// When the earliest timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.due)
    }

    /// Removes and returns the timers due at `now`, in the order foca wants them.
    ///
    /// When the driver lagged (a pause, a busy machine) several timers fall due together; foca's
    /// `Ord` on [`Timer`] puts them back in protocol order (an indirect probe before the next probe),
    /// and the sort is stable so timers of one kind keep their deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<Timer<GossipId>> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|Reverse(entry)| entry.due <= now) {
            let Reverse(entry) = self.heap.pop().expect("peeked");
            due.push(entry.timer);
        }
        due.sort(); // stable
        due
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_when_due_in_protocol_order() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        queue.push(start, Duration::from_millis(100), Timer::ProbeRandomMember(0));
        queue.push(start, Duration::from_millis(40), Timer::PeriodicGossip(0));
        queue.push(start, Duration::from_millis(150), Timer::PeriodicAnnounce(0));
        let indirect =
            Timer::SendIndirectProbe { probed_id: GossipId::seed(([127, 0, 0, 1], 1).into()), token: 0 };
        queue.push(start, Duration::from_millis(110), indirect.clone());

        assert_eq!(queue.next_due(), Some(start + Duration::from_millis(40)));
        assert!(queue.pop_due(start + Duration::from_millis(39)).is_empty());
        assert_eq!(queue.pop_due(start + Duration::from_millis(40)), vec![Timer::PeriodicGossip(0)]);
        // A lagging driver wakes at 120 ms: the indirect probe goes before the next probe.
        assert_eq!(
            queue.pop_due(start + Duration::from_millis(120)),
            vec![indirect, Timer::ProbeRandomMember(0)]
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next_due(), Some(start + Duration::from_millis(150)));
    }
}
