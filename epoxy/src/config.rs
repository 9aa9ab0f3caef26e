//! Replica configuration, quorum sizes and the named bounds of the protocol.

use crate::types::ReplicaId;

/// Most replicas in a cluster (reply sets are bitmasks; EPaxos is meant for small replica sets).
pub const REPLICAS_MAX: usize = 7;
/// Most commands one instance carries (the node batches client commands into one instance).
pub const BATCH_COMMANDS_MAX: usize = 512;
/// Most payload bytes of one instance.
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Largest interference key.
pub const COMMAND_KEY_BYTES_MAX: usize = 4096;
/// Most dependencies of one instance: one per replica for every key it touches.
pub const DEPS_MAX: usize = BATCH_COMMANDS_MAX * REPLICAS_MAX + SLOT_RESERVATION_CHUNK as usize;
/// Most of a replica's own instances proposed but not yet committed.
pub const INFLIGHT_INSTANCES_MAX: usize = 4096;
/// Most instance ids in one CommitRequest.
pub const COMMIT_REQUEST_IDS_MAX: usize = 256;
/// Slots a command leader reserves durably at a time, so that a restart never reuses a slot it may
/// have sent before crashing. A restarted leader recovers every slot of its last reservation it has
/// no record of (committing a no-op where nobody saw it), so the chunk bounds that work. It is
/// renewed half-way: only a round of more than half a chunk of instances (thousands of queued
/// commands, or large values) outruns it, and those PreAccepts then wait for the round's write.
pub const SLOT_RESERVATION_CHUNK: u64 = 64;

const _: () = assert!(REPLICAS_MAX <= 64, "reply sets are u64 bitmasks");
const _: () = assert!(DEPS_MAX >= REPLICAS_MAX);
const _: () = assert!(SLOT_RESERVATION_CHUNK >= 2);
const _: () = assert!(
    DEPS_MAX >= SLOT_RESERVATION_CHUNK as usize + REPLICAS_MAX * BATCH_COMMANDS_MAX,
    "a restarted leader's proposal depends on its whole reservation gap"
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica.
    pub id: ReplicaId,
    /// Every replica of this epoch, this one included. Quorum sizes come from this set alone:
    /// reconfiguration (see [`crate::seal`]) changes it by starting a new epoch.
    pub replicas: Vec<ReplicaId>,
    /// The configuration's number: 1 for the first, one more with each reconfiguration. Replicas
    /// of different epochs never act on each other's protocol messages.
    pub epoch: u64,
    /// Ticks a command leader waits for a phase's replies before resending to the silent ones,
    /// until it has timed phases of its own (then see [`crate::resend_timer`]); also the resend
    /// interval of recoveries and seals.
    pub retry_ticks: u32,
    /// The least a command leader's learned resend timeout may be (see [`crate::resend_timer`]).
    pub resend_ticks_min: u32,
    /// Ticks a command leader waits for a fast quorum before settling for the slow path with a
    /// majority of replies.
    pub fast_path_wait_ticks: u32,
    /// Ticks the executor waits on an instance it has not seen committed before asking peers (or
    /// the leader's learned resend timeout, when shorter: a commit is as late as a lost reply).
    pub commit_request_ticks: u32,
    /// Ticks an instance may stay uncommitted here (while this replica does not lead it) before
    /// this replica recovers it; each wait adds a random 0..recovery_ticks so that competing
    /// recoverers rarely collide.
    pub recovery_ticks: u32,
    /// Seed of the replica's random source (recovery jitter).
    pub seed: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("a cluster has 1 to {REPLICAS_MAX} replicas, not {0}")]
    ReplicaCount(usize),
    #[error("replica {0} is listed twice")]
    Duplicate(ReplicaId),
    #[error("this replica ({0}) is not in the replica set")]
    NotAMember(ReplicaId),
    #[error("timeouts must be at least one tick")]
    ZeroTimeout,
    #[error("epochs start at 1")]
    ZeroEpoch,
}

impl Config {
    /// A configuration with default timeouts (in ticks of ~10 ms).
    pub fn new(id: ReplicaId, mut replicas: Vec<ReplicaId>) -> Result<Self, ConfigError> {
        replicas.sort_unstable();
        let config = Self {
            id,
            replicas,
            epoch: 1,
            retry_ticks: 10,
            resend_ticks_min: 5,
            fast_path_wait_ticks: 5,
            commit_request_ticks: 10,
            recovery_ticks: 30,
            seed: u64::from(id.0),
        };
        config.validate()?;
        Ok(config)
    }

    /// Ticks between progress exchanges (`Message::Progress`). Each makes its round's write
    /// synced, so they stay a few per second: twice the commit-request wait.
    pub fn progress_ticks(&self) -> u32 {
        2 * self.commit_request_ticks
    }

    /// The longest a replica waits on a stalled instance before recovering it, however slowly its
    /// leader's instances have been committing here (see `Replica::stall_wait`): ten stall
    /// timeouts. A leader that is down or cut off is recovered sooner (its silence is noticed
    /// within a progress interval), and one that gets no quorum asks for a take-over.
    pub fn stall_ticks_max(&self) -> u32 {
        10 * self.recovery_ticks
    }

    /// Ticks a recovery attempt runs before it gives up (the stall timer starts the next, at a
    /// higher ballot): eight resends of its current phase.
    pub fn recovery_give_up_ticks(&self) -> u32 {
        8 * self.retry_ticks
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas.is_empty() || self.replicas.len() > REPLICAS_MAX {
            return Err(ConfigError::ReplicaCount(self.replicas.len()));
        }
        for pair in self.replicas.windows(2) {
            if pair[0] == pair[1] {
                return Err(ConfigError::Duplicate(pair[0]));
            }
        }
        if !self.replicas.contains(&self.id) {
            return Err(ConfigError::NotAMember(self.id));
        }
        if self.retry_ticks == 0
            || self.resend_ticks_min == 0
            || self.fast_path_wait_ticks == 0
            || self.commit_request_ticks == 0
            || self.recovery_ticks == 0
        {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.epoch == 0 {
            return Err(ConfigError::ZeroEpoch);
        }
        Ok(())
    }

    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    /// F, the number of failures tolerated: N = 2F + 1.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 2
    }

    /// Slow-path (and recovery) quorum: F + 1 of an odd N, a majority in general.
    pub fn slow_quorum(&self) -> usize {
        self.n() / 2 + 1
    }

    /// Fast-path quorum of optimized EPaxos: F + ⌊(F+1)/2⌋ (N=3→2, 5→3, 7→5), never below a
    /// majority (which only matters for N < 3).
    pub fn fast_quorum(&self) -> usize {
        let f = self.f();
        (f + f.div_ceil(2)).max(self.slow_quorum()) // ⌊(F+1)/2⌋ = ⌈F/2⌉
    }

    /// Position of a replica in `replicas`, for reply bitmasks.
    pub(crate) fn index_of(&self, r: ReplicaId) -> Option<usize> {
        self.replicas.binary_search(&r).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<ReplicaId> {
        (1..=n).map(ReplicaId).collect()
    }

    #[test]
    fn quorum_sizes_follow_the_paper() {
        let q = |n| {
            let c = Config::new(ReplicaId(1), ids(n)).unwrap();
            (c.fast_quorum(), c.slow_quorum())
        };
        assert_eq!(q(1), (1, 1));
        assert_eq!(q(3), (2, 2));
        assert_eq!(q(5), (3, 3));
        assert_eq!(q(7), (5, 4));
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(Config::new(ReplicaId(1), vec![]), Err(ConfigError::ReplicaCount(0)));
        assert_eq!(Config::new(ReplicaId(9), ids(3)), Err(ConfigError::NotAMember(ReplicaId(9))));
        assert_eq!(
            Config::new(ReplicaId(1), vec![ReplicaId(1), ReplicaId(1)]),
            Err(ConfigError::Duplicate(ReplicaId(1)))
        );
        assert_eq!(Config::new(ReplicaId(1), ids(8)), Err(ConfigError::ReplicaCount(8)));
    }
}
