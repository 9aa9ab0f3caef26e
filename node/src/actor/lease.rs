//! Read leases: when an owner may answer a read-only action from memory.
//!
//! An owner holds a lease for [`Lease::duration`] from the moment it *sent* a command that then
//! confirmed its ownership through a quorum: its activation, a successful write, or an explicit
//! [`Confirm`](super::op::ActorOp::Confirm). While the lease holds, a read-only action is answered
//! from memory; once it has expired, the owner first commits a `Confirm` (which fails, and
//! deactivates the actor, if another node has activated it since).
//!
//! Why a valid lease means the memory is current: another node can only take the actor over by
//! committing an activation ordered after the owner's last confirming command. That command was
//! committed, hence sent, before the activation executed on the new owner, and the new owner
//! acknowledges no write until [`handover_wait`] has passed since its activation executed. So by
//! the time the new owner acknowledges a write, the old lease has expired, and a read the old
//! owner answered from memory was current when it was served. (The wait applies only when the
//! previous owner was another node; reads on the new owner are not delayed.)
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
//! write on a new owner is acknowledged at least [`handover_wait`] after its activation; reads on
//! it are not delayed.

use std::time::{Duration, Instant};

/// The largest rate difference, in percent, assumed between two nodes' monotonic clocks.
pub const CLOCK_DRIFT_PERCENT_MAX: u32 = 10;

/// How long a new owner waits, after its activation executed, before it acknowledges a write,
/// when another node owned the actor before: the lease plus the clock drift margin.
pub fn handover_wait(lease: Duration) -> Duration {
    lease + lease * CLOCK_DRIFT_PERCENT_MAX / 100
}

/// The lease of one activation.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    duration: Duration,
    valid_until: Option<Instant>,
}

impl Lease {
    /// A lease of `duration` that has not been granted yet.
    pub fn new(duration: Duration) -> Self {
        Self { duration, valid_until: None }
    }

    /// A command sent at `sent_at` confirmed the ownership: the lease holds until `sent_at +
    /// duration` (never shortened by an older confirmation).
    pub fn confirmed(&mut self, sent_at: Instant) {
        let until = sent_at + self.duration;
        self.valid_until = Some(self.valid_until.map_or(until, |current| current.max(until)));
    }

    /// Whether a read may be answered from memory at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_when_the_confirming_command_was_sent() {
        let t0 = Instant::now();
        let mut lease = Lease::new(Duration::from_millis(300));
        assert!(!lease.is_valid(t0), "no lease before any confirmation");
        lease.confirmed(t0);
        assert!(lease.is_valid(t0 + Duration::from_millis(299)));
        assert!(!lease.is_valid(t0 + Duration::from_millis(300)));
        lease.confirmed(t0 + Duration::from_millis(100));
        assert!(lease.is_valid(t0 + Duration::from_millis(399)));
        // An older confirmation arriving late does not shorten it.
        lease.confirmed(t0);
        assert!(lease.is_valid(t0 + Duration::from_millis(399)));
    }

    #[test]
    fn the_handover_wait_covers_the_lease_and_the_drift() {
        assert_eq!(handover_wait(Duration::from_millis(300)), Duration::from_millis(330));
    }
}
