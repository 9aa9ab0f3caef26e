//! What a replica persists, and what it is rebuilt from after a restart.

use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The durable state of one instance at one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: InstanceId,
    /// Highest ballot this replica promised for the instance.
    pub ballot: Ballot,
    /// Ballot in which this replica last accepted (pre-accepted or accepted) attributes: EPaxos*
    /// keeps it apart from `ballot` so that recovery picks the latest vote, not the latest promise.
    pub accepted_ballot: Ballot,
    pub status: Status,
    pub attrs: Attributes,
    pub commands: Vec<Command>,
    /// See [`crate::message::Vote::matches_proposal`].
    pub matches_proposal: bool,
}

/// What a replica knows of one interference key: the latest instance of each replica that touched
/// it, and the largest sequence number among them. New instances on the key depend on these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub seq_max: u64,
    /// At most one instance per replica, sorted by replica.
    pub latest: Vec<InstanceId>,
}

impl KeyRecord {
    /// Records that instance `id` touches this key with sequence number `seq`; returns whether
    /// the record changed (and must be persisted again).
    pub(crate) fn observe(&mut self, id: InstanceId, seq: u64) -> bool {
        let mut changed = seq > self.seq_max;
        self.seq_max = self.seq_max.max(seq);
        match self.latest.binary_search_by_key(&id.replica, |i| i.replica) {
            Ok(at) => {
                if self.latest[at].slot < id.slot {
                    self.latest[at] = id;
                    changed = true;
                }
            }
            Err(at) => {
                self.latest.insert(at, id);
                changed = true;
            }
        }
        changed
    }
}

/// One write the driver must make durable, in order, in one atomic write batch per `Ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Instance(InstanceRecord),
    Key {
        key: Bytes,
        record: KeyRecord,
    },
    /// This replica's own slots below this value may have been used; a restart starts here.
    SlotReservation(u64),
    /// Every instance of `replica` up to `through` is executed on every replica: delete their
    /// records and executed marks, and remember the floor.
    Forget {
        replica: ReplicaId,
        through: u64,
    },
    /// Every instance the record of `key` named is forgotten: delete the record (a key with no
    /// record has no instance a new one must follow; see `quiet_keys`).
    ForgetKey {
        key: Bytes,
    },
    /// Stores nothing; makes this round's write synced (what a Progress message reports must be
    /// durable before it leaves).
    Checkpoint,
    /// This replica's own instances from this slot on were proposed after its last restart that
    /// may have lost writes (see [`Recovered::writes_complete`]): for each of them it knows whether
    /// it committed.
    OwnCommitsKnownFrom(u64),
    /// This replica is sealed in `epoch` (see [`crate::seal`]): it never votes on a slot above
    /// `bounds` in this epoch. Synced before the SealOk that reports it leaves.
    Seal {
        epoch: u64,
        bounds: Vec<(ReplicaId, u64)>,
    },
    /// The cut of this replica's epoch: the slots that execute in it (every one of them), after
    /// which the next epoch starts. Synced.
    Cut(crate::seal::Cut),
}

/// The durable state a replica restarts from (loaded by the driver from storage).
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Every instance record not yet executed.
    pub instances: Vec<InstanceRecord>,
    /// Every executed instance.
    pub executed: Vec<InstanceId>,
    pub keys: Vec<(Bytes, KeyRecord)>,
    pub slot_reservation: u64,
    /// Per replica, the slot through which instances were forgotten (all executed).
    pub forgotten: Vec<(ReplicaId, u64)>,
    /// Every write this replica completed before it stopped is here, synced or not: the process
    /// stopped but the machine did not (the driver compares boot ids). After a power loss, writes
    /// since the last sync may be gone. Only a complete restart lets the replica vouch that it
    /// has not committed an own instance it proposed before.
    pub writes_complete: bool,
    /// The last [`Record::OwnCommitsKnownFrom`] persisted.
    pub own_commits_known_from: u64,
    /// The last [`Record::Seal`] of the replica's epoch.
    pub seal: Option<Vec<(ReplicaId, u64)>>,
    /// The [`Record::Cut`] of the replica's epoch, once known.
    pub cut: Option<crate::seal::Cut>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ReplicaId;

    fn id(replica: u32, slot: u64) -> InstanceId {
        InstanceId { replica: ReplicaId(replica), slot }
    }

    #[test]
    fn observe_says_whether_the_key_record_changed() {
        let mut record = KeyRecord::default();
        assert!(record.observe(id(2, 5), 1), "a first instance");
        assert!(record.observe(id(1, 3), 1), "another replica's first instance");
        assert_eq!(record.latest, [id(1, 3), id(2, 5)], "sorted by replica");
        assert!(!record.observe(id(2, 5), 1), "the same instance again");
        assert!(!record.observe(id(2, 4), 1), "an older instance of a known replica");
        assert!(record.observe(id(2, 4), 7), "an older instance with a higher seq raises seq_max");
        assert_eq!((record.seq_max, record.latest.clone()), (7, vec![id(1, 3), id(2, 5)]));
        assert!(record.observe(id(1, 9), 2), "a newer instance");
        assert_eq!(record.latest, [id(1, 9), id(2, 5)]);
    }
}
