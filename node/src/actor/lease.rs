//! Read leases: when an owner may answer a read-only action from memory.
//!
//! An owner holds a lease for [`RuntimeConfig::lease`](super::RuntimeConfig) from the moment it
//! *sent* a command that then confirmed its ownership through a quorum: its activation, a
//! successful write, or an explicit [`Confirm`](super::op::ActorOp::Confirm). While the lease
//! holds, a read-only action is answered from memory; once it has expired, the owner first
//! commits a `Confirm` (which fails, and deactivates the actor, if another node has activated it
//! since).
//!
//! Why a valid lease means the memory is current: another node can only take the actor over by
//! committing an activation ordered after the owner's last confirming command (one ordered after
//! the activation is fenced, and grants no lease). That command interferes with the activation,
//! so the new owner executed it before its activation; it was committed, hence sent, before the
//! new owner executed it. The new owner acknowledges no write until [`handover_wait`] has passed
//! since it executed the actor's last op before its activation (its driver keeps when each
//! actor's latest op executed, [`recent`](super::recent), or a later instant; at worst the
//! activation itself). So by the time the new owner acknowledges a write, the old lease has
//! expired, and a read the old owner answered from memory was current when it was served. (The
//! wait applies only when the previous owner was another node; reads on the new owner are not
//! delayed.) An owner that died stopped sending ops when it died, and gossip takes longer than a
//! handover wait to declare it dead: its actors' new owners write at once.
//!
//! Node leases: answering a read under an actor's own lease needs a `Confirm` per actor once it
//! has lapsed, one consensus round per actor every lease on a node serving reads. Each node
//! therefore also holds one [`NodeLease`] for all its activations: every third of a lease it
//! commits an [`ActorOp::Renew`](super::op::ActorOp::Renew) on its node lease key, and the lease
//! holds for [`RuntimeConfig::lease`](super::RuntimeConfig) from when the renewal was sent. An
//! activation may answer a read from memory while its own lease or the node lease holds, the
//! latter unless a fence on this node covers its generation. Why that is safe: a node takes an
//! actor over from another node `P` only by first committing an
//! [`ActorOp::Fence`](super::op::ActorOp::Fence) on `P`'s lease key for the generation it saw
//! `P` hold, then an [`ActorOp::Take`](super::op::ActorOp::Take) that applies only if the owner
//! record is still that one (so every owner that is superseded by another node was fenced
//! before). `P`'s renewals and the fence are ordered on `P`'s lease key. A renewal ordered
//! before the fence executed on the new owner no later than the fence's `last_op_bound`, and
//! the new owner acknowledges no write until [`handover_wait`] after that bound: that renewal's
//! lease is over by then. A renewal ordered after the fence executes on `P` after the fence,
//! which `P` has written to its store before it hears the renewal committed; `P` reads its
//! fence record before it answers under the node lease and, fenced, confirms instead (which
//! fails). The fence record is read from the store at each read under the node lease; it needs
//! no bookkeeping of activations in flight, and survives restarts.
//!
//! Clocks: each node measures its leases with its own monotonic clock (`Instant`; on Linux
//! `CLOCK_MONOTONIC`, which keeps running while a process is stopped). No synchronised wall
//! clocks are needed. The assumption is that monotonic clocks of different nodes advance at rates
//! that differ by less than [`CLOCK_DRIFT_PERCENT_MAX`] percent over a lease; the handover wait
//! adds that margin.
//!
//! The default lease (300 ms) is shorter than gossip failure detection (about 400 ms of suspicion
//! after a missed probe, see `mortar_placement::membership`): a node cut off from the others
//! stops answering for its actors before they are activated elsewhere. Safety does not rest on
//! that timing: the handover wait alone keeps reads linearizable even when gossip wrongly declares
//! a live owner dead (a pause, or a partition of gossip traffic only). The cost is that the first
//! write on a new owner is acknowledged at least [`handover_wait`] after the old owner's last op
//! executed on the new owner (when the actor moves away from a live owner, about one wait after
//! the activation); reads on it are not delayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The largest rate difference, in percent, assumed between two nodes' monotonic clocks.
pub const CLOCK_DRIFT_PERCENT_MAX: u32 = 10;

/// How long a new owner waits, after its activation executed, before it acknowledges a write,
/// when another node owned the actor before: the lease plus the clock drift margin.
pub fn handover_wait(lease: Duration) -> Duration {
    lease + lease * CLOCK_DRIFT_PERCENT_MAX / 100
}

/// A point in time on one runtime's monotonic clock: nanoseconds since the runtime started. Half
/// the size of an [`Instant`] (every idle actor keeps two) and as exact: an instant since the
/// start converts to a moment and back unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment(u64);

impl Moment {
    /// The start of the clock, earlier than every other moment.
    pub const START: Moment = Moment(0);

    /// Instant `at` on the clock that started at `start` (`START` for an earlier instant).
    pub fn at(start: Instant, at: Instant) -> Self {
        Self(u64::try_from(at.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX))
    }

    /// This moment as an instant, on the clock that started at `start`.
    pub fn instant(self, start: Instant) -> Instant {
        start + Duration::from_nanos(self.0)
    }

    /// The moment `duration` after this one.
    pub fn after(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)))
    }
}

/// The lease of one activation; not granted yet by default. Every idle actor keeps one, so it
/// holds one [`Moment`], and the lease's length is the runtime's, given to [`Lease::confirmed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Lease {
    /// [`Moment::START`] until a confirmation: no moment is earlier, so the lease is not valid.
    valid_until: Moment,
}

impl Lease {
    /// A command sent at `sent_at` confirmed the ownership: the lease holds until `sent_at +
    /// duration` (never shortened by an older confirmation).
    pub fn confirmed(&mut self, sent_at: Moment, duration: Duration) {
        self.valid_until = self.valid_until.max(sent_at.after(duration));
    }

    /// Whether a read may be answered from memory at `now`.
    pub fn is_valid(&self, now: Moment) -> bool {
        now < self.valid_until
    }
}

/// The node lease of one runtime: like a [`Lease`], but shared by all its activations and renewed
/// by [`ActorOp::Renew`](super::op::ActorOp::Renew) (see the module documentation).
#[derive(Debug, Default)]
pub struct NodeLease {
    /// The [`Moment`] (nanoseconds) until which it holds; 0 until the first renewal.
    valid_until: AtomicU64,
}

impl NodeLease {
    /// A renewal sent at `sent_at` committed: the lease holds until `sent_at + duration` (never
    /// shortened by an older renewal). Release: a reader that sees the new bound also sees what
    /// the driver wrote before it answered the renewal (the fences ordered before it).
    pub fn confirmed(&self, sent_at: Moment, duration: Duration) {
        self.valid_until.fetch_max(sent_at.after(duration).0, Ordering::AcqRel);
    }

    /// Whether reads may be answered under it at `now` (the caller still checks its fences).
    pub fn is_valid(&self, now: Moment) -> bool {
        now.0 < self.valid_until.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Moment {
        Moment::START.after(Duration::from_millis(ms))
    }

    #[test]
    fn a_lease_runs_from_when_the_confirming_command_was_sent() {
        let duration = Duration::from_millis(300);
        let mut lease = Lease::default();
        assert!(!lease.is_valid(Moment::START), "no lease before any confirmation");
        assert!(!lease.is_valid(ms(10)), "no lease before any confirmation");
        lease.confirmed(ms(10), duration);
        assert!(lease.is_valid(ms(309)));
        assert!(!lease.is_valid(ms(310)));
        lease.confirmed(ms(110), duration);
        assert!(lease.is_valid(ms(409)));
        // An older confirmation arriving late does not shorten it.
        lease.confirmed(ms(10), duration);
        assert!(lease.is_valid(ms(409)));
        assert!(!lease.is_valid(ms(410)));
    }

    #[test]
    fn a_node_lease_runs_from_when_the_renewal_was_sent_and_never_shrinks() {
        let duration = Duration::from_millis(300);
        let lease = NodeLease::default();
        assert!(!lease.is_valid(Moment::START), "no node lease before a renewal");
        lease.confirmed(ms(100), duration);
        assert!(lease.is_valid(ms(399)));
        assert!(!lease.is_valid(ms(400)));
        lease.confirmed(ms(50), duration);
        assert!(!lease.is_valid(ms(400)), "an older renewal does not move it");
        lease.confirmed(ms(200), duration);
        assert!(lease.is_valid(ms(499)));
        assert!(!lease.is_valid(ms(500)));
    }

    #[test]
    fn a_moment_converts_to_its_instant_exactly() {
        let start = Instant::now();
        let later = start + Duration::new(3, 123_456_789);
        let moment = Moment::at(start, later);
        assert_eq!(moment.instant(start), later);
        assert_eq!(Moment::at(start, start), Moment::START);
        assert_eq!(
            moment,
            Moment::at(start, start + Duration::from_secs(3)).after(Duration::from_nanos(123_456_789))
        );
        assert!(Moment::at(start, later - Duration::from_nanos(1)) < moment);
    }

    #[test]
    fn the_handover_wait_covers_the_lease_and_the_drift() {
        assert_eq!(handover_wait(Duration::from_millis(300)), Duration::from_millis(330));
    }
}
