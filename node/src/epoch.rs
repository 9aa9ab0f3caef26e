//! The node's side of an epoch switch (see `mortar_epoxy::seal`): which epoch and members its
//! replica runs, what it stores when it moves to the next epoch, and what it tells the rest of
//! the node about its epoch.
//!
//! A switch is one synced write ([`switch_batch`]) followed by a new replica built from
//! [`mortar_epoxy::Recovered::starting_epoch`]. The write records the new epoch and its members,
//! floors every instance space at the cut (each slot up to it executed here), and deletes the
//! instance records above the cut (never committed anywhere). Records up to the cut stay until
//! garbage collection forgets them: a member still finishing the old epoch asks for them
//! ([`Driver`](crate::driver) answers its old-epoch `CommitRequest`s from storage).

use mortar_epoxy::{Cut, ReplicaId};
use mortar_storage::{InstanceKey, Storage, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};

/// Storage metadata key of the [`EpochRecord`] (absent: epoch 1 over `--initial-cluster`).
pub const META_EPOCH: &str = "epoxy_epoch";
/// Storage metadata key written when this node learns it was removed from the cluster.
pub const META_REMOVED: &str = "removed_at_epoch";

/// The epoch a node's replica runs, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u64,
    /// Members of this epoch, sorted.
    pub members: Vec<u32>,
    /// The gRPC address of every member (the node reconnects its peers from these at restart).
    pub addresses: std::collections::BTreeMap<u32, String>,
    /// The cut of the epoch before (its bounds floor every instance space).
    pub previous_cut: Cut,
}

impl EpochRecord {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        postcard::from_bytes(bytes).map_err(|e| StorageError::Corrupt { what: format!("epoch record: {e}") })
    }

    /// The stored record, if this node ever switched epochs.
    pub fn load(storage: &dyn Storage) -> Result<Option<Self>, StorageError> {
        storage.get_meta(META_EPOCH)?.map(|b| Self::decode(&b)).transpose()
    }
}

/// What the driver tells the rest of the node about its replica's epoch, after every round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochStatus {
    pub epoch: u64,
    pub members: Vec<u32>,
    /// The replica proposes nothing more in this epoch.
    pub sealed: bool,
    /// The cut the control plane committed is installed.
    pub cut_installed: bool,
    /// Every slot up to the cut executed here: the node may switch to the next epoch.
    pub done: bool,
    /// The highest epoch a peer spoke in, when above this one.
    pub newer_epoch_seen: Option<u64>,
}

/// The synced write that moves this node from the epoch of `cut` to `next` (see the module
/// documentation) as node `me`. Fails on a storage error only.
pub fn switch_batch(
    storage: &dyn Storage,
    me: u32,
    cut: &Cut,
    next: &EpochRecord,
) -> Result<WriteBatch, StorageError> {
    assert_eq!(next.epoch, cut.epoch + 1, "a switch skips no epoch");
    assert_eq!(&next.previous_cut, cut, "the record names the cut it starts from");
    let mut batch = WriteBatch::new();
    let mut above: Vec<InstanceKey> = Vec::new();
    storage.scan_instances(&mut |key, _| {
        if key.slot > cut.bound(ReplicaId(key.replica)) {
            above.push(key);
        }
        Ok(())
    })?;
    for key in above {
        batch.delete_instance(key);
    }
    for &(replica, bound) in &cut.bounds {
        batch.put_meta(crate::driver::forgotten_meta_key(replica.0), bound.to_be_bytes().to_vec());
    }
    // This node's instance space continues above its bound, and it vouches for every own slot
    // of the new epoch (see Recovered::starting_epoch).
    let reservation = cut.bound(ReplicaId(me)) + 1;
    batch.put_meta(crate::driver::META_SLOT_RESERVATION, reservation.to_be_bytes().to_vec());
    batch.put_meta(crate::driver::META_OWN_COMMITS_KNOWN_FROM, 0u64.to_be_bytes().to_vec());
    batch.put_meta(META_EPOCH, next.encode());
    Ok(batch)
}

/// Whether a key's conflict entry is of an epoch before the current one (at or below the floor
/// of its instance space, or of a replica not in the current epoch): such an entry is no
/// dependency of anything in the current epoch and is left out when the node restarts.
pub fn is_stale_entry(record: &EpochRecord, replica: ReplicaId, slot: u64) -> bool {
    !record.members.contains(&replica.0) || slot <= record.previous_cut.bound(replica)
}

#[cfg(all(test, feature = "server"))]
#[path = "epoch_test.rs"]
mod epoch_test;
