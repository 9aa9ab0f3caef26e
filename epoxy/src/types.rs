//! The nouns of the protocol: replicas, instances, ballots, commands and their attributes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An epoxy participant. Fixed by the cluster configuration; gossip never changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaId(pub u32);

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One slot in one replica's instance space. The replica that owns the space is the command
/// leader of the instance's first ballot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceId {
    pub replica: ReplicaId,
    pub slot: u64,
}

impl InstanceId {
    pub const fn new(replica: u32, slot: u64) -> Self {
        Self { replica: ReplicaId(replica), slot }
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.replica.0, self.slot)
    }
}

/// A ballot: ordered by round, then by the replica that owns it, so two replicas never share one.
/// The command leader's initial ballot is `(0, leader)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u32,
    pub replica: ReplicaId,
}

impl Ballot {
    pub const fn initial(leader: ReplicaId) -> Self {
        Self { round: 0, replica: leader }
    }
}

/// One client command. Epoxy reads only `key`: two commands interfere exactly when their keys are
/// equal (the node uses one key per KV key or per actor keyspace). `payload` is opaque to epoxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub key: Bytes,
    pub payload: Bytes,
}

impl Command {
    pub fn new(key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Self { key: key.into(), payload: payload.into() }
    }

    pub fn bytes(&self) -> usize {
        self.key.len() + self.payload.len()
    }
}

/// The ordering attributes of an instance: sequence number and dependencies (instances that
/// must execute first, unless in the same strongly connected component). `deps` is sorted and
/// holds at most one instance per replica, its highest: a dependency on an instance stands for
/// every earlier one of its replica (the executor and recovery read deps so, see
/// `handler::covers`), so two attributes that order an instance alike are equal, and a vote that
/// names an earlier instance of a replica the leader already named a later one of does not
/// differ from the proposal (it took the slow path for nothing before: measured, 17% of the
/// instances of `increment`s spread over three leaders).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub seq: u64,
    pub deps: Vec<InstanceId>,
}

impl Attributes {
    /// Merges `other` into `self`: the larger seq, the union of deps.
    pub fn union(&mut self, other: &Attributes) {
        self.seq = self.seq.max(other.seq);
        self.deps.extend_from_slice(&other.deps);
        self.normalize();
    }

    pub(crate) fn normalize(&mut self) {
        self.deps.sort_unstable();
        // Sorted by replica, then slot: keep the last of each replica's run.
        self.deps.dedup_by(|later, kept| {
            let same_replica = later.replica == kept.replica;
            if same_replica {
                *kept = *later;
            }
            same_replica
        });
    }
}

/// Where an instance stands at one replica. Execution is tracked apart (see `Replica::is_executed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// Only a promise: a recoverer's Prepare reached this replica before any value did.
    None,
    PreAccepted,
    Accepted,
    Committed,
}
