//! The timers foca asks for, kept until they are due. Pure: the caller passes the time in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use foca::Timer;

use crate::gossip::identity::GossipId;

/// Most timers pending at once. foca keeps a handful per member (a probe, a suspicion, a
/// forget-the-dead timer), so a real cluster stays far below this. Only a flood of identities (a
/// hostile or broken network) reaches it; then the queue drops the timer due last, see
/// [`TimerQueue::push`].
pub(crate) const TIMERS_PENDING_MAX: usize = 16_384;

/// Pending foca timers, earliest first; equal deadlines in submission order.
#[derive(Default)]
pub(crate) struct TimerQueue {
    entries: BTreeMap<(Instant, u64), Timer<GossipId>>,
    next_seq: u64,
}

impl TimerQueue {
    /// Schedules `timer` to fire `after` from `now`. When [`TIMERS_PENDING_MAX`] timers are already
    /// pending, the one due last (the new one, or the pending one it displaces) is dropped and
    /// returned, for the caller to count.
    ///
    /// Why the one due last: foca's periodic timers (probe, gossip, announce) are due within
    /// seconds and each one that fires schedules the next, so dropping one would stop probing or
    /// gossip for good; the timers due last are the "forget this dead member" ones an hour away,
    /// whose loss only means remembering a dead identity longer.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        after: Duration,
        timer: Timer<GossipId>,
    ) -> Option<Timer<GossipId>> {
        let key = (now + after, self.next_seq);
        self.next_seq += 1;
        if self.entries.len() < TIMERS_PENDING_MAX {
            self.entries.insert(key, timer);
            return None;
        }
        let last = *self.entries.last_key_value().map(|(last, _)| last).expect("the queue is full");
        if key > last {
            return Some(timer);
        }
        let (_, dropped) = self.entries.pop_last().expect("the queue is full");
        self.entries.insert(key, timer);
        Some(dropped)
    }

    /// When the earliest timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.entries.first_key_value().map(|(&(due, _), _)| due)
    }

    /// Removes and returns the timers due at `now`, in the order foca wants them.
    ///
    /// When the driver lagged (a pause, a busy machine) several timers fall due together; foca's
    /// `Ord` on [`Timer`] puts them back in protocol order (an indirect probe before the next probe),
    /// and the sort is stable so timers of one kind keep their deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<Timer<GossipId>> {
        let mut due = Vec::new();
        while let Some(entry) = self.entries.first_entry()
            && entry.key().0 <= now
        {
            due.push(entry.remove());
        }
        due.sort(); // stable
        due
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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

    fn remove_down(port: u16) -> Timer<GossipId> {
        Timer::RemoveDown(GossipId::seed(([127, 0, 0, 1], port).into()))
    }

    /// What a flood of identities does: every one declared down asks for a timer an hour away.
    #[test]
    fn a_flood_of_timers_drops_the_latest_and_keeps_gossip_alive() {
        let start = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut queue = TimerQueue::default();
        queue.push(start, Duration::from_millis(100), Timer::ProbeRandomMember(0));
        let flood = TIMERS_PENDING_MAX + 1_000;
        let mut dropped = Vec::new();
        for n in 0..flood {
            let port = u16::try_from(n % 60_000).expect("fits");
            dropped.extend(queue.push(start, hour + Duration::from_millis(n as u64), remove_down(port)));
        }
        assert_eq!(queue.len(), TIMERS_PENDING_MAX, "bounded");
        assert_eq!(dropped.len(), flood + 1 - TIMERS_PENDING_MAX, "each one beyond the bound is counted");
        // The newest (due last) were refused; the earlier ones are all still there.
        assert_eq!(dropped[0], remove_down(u16::try_from((TIMERS_PENDING_MAX - 1) % 60_000).expect("fits")));

        // Full, the periodic timers still get in: they displace the timer due last.
        let displaced = queue.push(start, Duration::from_millis(50), Timer::PeriodicGossip(0));
        assert!(matches!(displaced, Some(Timer::RemoveDown(_))), "{displaced:?}");
        assert_eq!(queue.len(), TIMERS_PENDING_MAX);
        assert_eq!(
            queue.pop_due(start + Duration::from_millis(100)),
            vec![Timer::ProbeRandomMember(0), Timer::PeriodicGossip(0)]
        );
        // The room they left is taken again by the next one due last.
        assert_eq!(queue.push(start, hour * 2, remove_down(1)), None);
        assert_eq!(queue.push(start, hour * 2, remove_down(2)), None);
        assert_eq!(queue.push(start, hour * 2, remove_down(3)), Some(remove_down(3)));
    }
}
