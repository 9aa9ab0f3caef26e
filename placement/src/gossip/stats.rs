//! What gossip refused or dropped, counted for the node's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of what this member's gossip refused or dropped since it started, from
/// [`Membership::stats`](crate::Membership::stats). Every count only grows.
///
/// On a healthy cluster they all stay at 0, except `renewals` (a pause or a partition longer than
/// the suspicion timeout) and a few `datagrams_rejected` (a member that just restarted hears
/// packets meant for its previous generation). Growing `datagrams_unauthenticated`,
/// `identities_refused` or `generations_refused` means someone sends what a member of this cluster
/// would not: a misconfigured member (another key, not in the directory, the same node id as
/// another), or an attacker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Datagrams dropped before being read because their authentication tag was missing or wrong:
    /// with a [`GossipKey`](crate::GossipKey), a datagram sealed with another key, corrupted on
    /// the way, or not sealed at all; without a key, a sealed datagram.
    pub datagrams_unauthenticated: u64,
    /// Authentic datagrams dropped because they could not be decoded, were too large, or foca
    /// refused them (e.g. addressed to a previous generation of this member).
    pub datagrams_rejected: u64,
    /// Identities refused because the directory (see
    /// [`Membership::set_directory`](crate::Membership::set_directory)) does not allow them: a
    /// datagram from such a sender, or asking to contact one, is dropped; a piece of gossip about
    /// one is removed from its datagram. Also counts members removed from the view when a
    /// directory that excludes them is set.
    pub identities_refused: u64,
    /// Identities refused because they claim this member's node id or gossip address with a newer
    /// generation than its own: it is running, so no newer start of it exists, and accepting one
    /// would make this member renew itself (at that address) or make peers prefer the impostor.
    pub generations_refused: u64,
    /// Datagrams not sent because their destination is not allowed by the directory.
    pub sends_refused: u64,
    /// Times this member rejoined as its next generation after the cluster declared it down.
    pub renewals: u64,
    /// Times the cluster declared this member down while a rejoin was already pending, or less
    /// than [`MembershipConfig::suspect_to_down_after`](crate::MembershipConfig::suspect_to_down_after)
    /// after its last renewal: no renewal for these; it rejoins once that time has passed.
    pub renewals_refused: u64,
    /// foca timers dropped because the timer queue was full (the one due last is dropped).
    pub timers_dropped: u64,
}

/// The live counters behind [`GossipStats`]: written by the driver, read by the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_unauthenticated: AtomicU64,
    pub(crate) datagrams_rejected: AtomicU64,
    pub(crate) identities_refused: AtomicU64,
    pub(crate) generations_refused: AtomicU64,
    pub(crate) sends_refused: AtomicU64,
    pub(crate) renewals: AtomicU64,
    pub(crate) renewals_refused: AtomicU64,
    pub(crate) timers_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> GossipStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        GossipStats {
            datagrams_unauthenticated: read(&self.datagrams_unauthenticated),
            datagrams_rejected: read(&self.datagrams_rejected),
            identities_refused: read(&self.identities_refused),
            generations_refused: read(&self.generations_refused),
            sends_refused: read(&self.sends_refused),
            renewals: read(&self.renewals),
            renewals_refused: read(&self.renewals_refused),
            timers_dropped: read(&self.timers_dropped),
        }
    }
}

/// Adds `n` to `counter`; returns whether the count crossed a power of two, i.e. whether this is
/// worth a WARN: the first occurrence, then ever more rarely (a flood logs a few lines, not one a
/// datagram).
pub(crate) fn add(counter: &AtomicU64, n: u64) -> bool {
    if n == 0 {
        return false;
    }
    let before = counter.fetch_add(n, Ordering::Relaxed);
    let after = before.saturating_add(n);
    before.checked_ilog2() != after.checked_ilog2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_thin_out_as_counts_grow() {
        let counter = AtomicU64::new(0);
        let warned: Vec<u64> = (1..=100).filter(|_| add(&counter, 1)).collect();
        assert_eq!(warned, [1, 2, 4, 8, 16, 32, 64]);
        assert!(!add(&counter, 0));
        assert!(add(&counter, 1_000), "a large step crosses a power of two");
        assert_eq!(counter.load(Ordering::Relaxed), 1_100);
    }
}
