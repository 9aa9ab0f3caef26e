//! [`StateMachineStore`]: openraft's state machine over a [`ControlStateMachine`], and its
//! snapshots in the node's storage (`control_state` table, name [`SNAPSHOT`]).
//!
//! The state machine lives in memory; what is durable is its last snapshot. A restart restores the
//! snapshot and openraft re-applies the log after it up to the stored commit point (log_store.rs)
//! before the node serves, so a read after a restart sees at least what the node had committed.
//! Every snapshot is synced before openraft hears of it, because openraft then purges the log
//! entries it covers.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mortar_storage::{Storage, WriteBatch};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::ControlStateMachine;
use super::log_store::write;
use super::types::{
    Entry, LogId, RaftStorageError, Reply, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
    TypeConfig,
};
use super::wire;

/// `control_state` name of the last snapshot.
pub(crate) const SNAPSHOT: &str = "snapshot";

/// The state machine with what Raft knows of it.
pub(crate) struct Applied<SM> {
    pub(crate) state_machine: SM,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

/// The applied state, shared by openraft's state-machine task and [`super::ControlPlane::read`].
pub(crate) struct Shared<SM>(Arc<RwLock<Applied<SM>>>);

impl<SM> Clone for Shared<SM> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<SM> Shared<SM> {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Applied<SM>> {
        // Apply and restore leave the state whole or panic the node (a bug in the state machine),
        // so a poisoned lock still guards the state as of the last complete apply.
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied<SM>> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A snapshot as stored: its metadata and the state machine's bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// openraft's state machine: applies entries to a [`ControlStateMachine`] and keeps its snapshot
/// in a [`Storage`]. Cloning shares both.
pub(crate) struct StateMachineStore<SM> {
    storage: Arc<dyn Storage>,
    applied: Shared<SM>,
    /// Snapshots built since start, to make snapshot ids unique.
    snapshots_built: Arc<AtomicU64>,
}

impl<SM> Clone for StateMachineStore<SM> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            applied: self.applied.clone(),
            snapshots_built: self.snapshots_built.clone(),
        }
    }
}

impl<SM: ControlStateMachine> StateMachineStore<SM> {
    /// Restores `state_machine` from the last snapshot in `storage`, if there is one.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        mut state_machine: SM,
    ) -> Result<Self, mortar_storage::StorageError> {
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        if let Some(stored) = read_snapshot(&*storage)? {
            state_machine.restore(&stored.data).map_err(|reason| mortar_storage::StorageError::Corrupt {
                what: format!(
                    "the control plane's snapshot {} does not restore: {reason}",
                    stored.meta.snapshot_id
                ),
            })?;
            last_applied = stored.meta.last_log_id;
            membership = stored.meta.last_membership;
        }
        let applied = Applied { state_machine, last_applied, membership };
        Ok(Self {
            storage,
            applied: Shared(Arc::new(RwLock::new(applied))),
            snapshots_built: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn shared(&self) -> Shared<SM> {
        self.applied.clone()
    }

    async fn save_snapshot(&self, stored: &StoredSnapshot) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::new();
        batch.put_control_state(SNAPSHOT, wire::encode(stored));
        // Synced: openraft purges the log entries this snapshot covers once it returns.
        write(&self.storage, batch, true)
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(stored.meta.signature()), &e))?;
        Ok(())
    }
}

fn read_snapshot(storage: &dyn Storage) -> Result<Option<StoredSnapshot>, mortar_storage::StorageError> {
    let Some(bytes) = storage.get_control_state(SNAPSHOT)? else {
        return Ok(None);
    };
    let stored = wire::decode("control-plane snapshot", &bytes)
        .map_err(|e| mortar_storage::StorageError::Corrupt { what: e.to_string() })?;
    Ok(Some(stored))
}

impl<SM: ControlStateMachine> RaftSnapshotBuilder<TypeConfig> for StateMachineStore<SM> {
    async fn build_snapshot(&mut self) -> Result<Snapshot, RaftStorageError> {
        let (data, last_log_id, last_membership) = {
            let applied = self.applied.read();
            (applied.state_machine.snapshot(), applied.last_applied, applied.membership.clone())
        };
        let built = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{}-{built}", id.leader_id.term, id.leader_id.node_id, id.index),
            None => format!("empty-{built}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let stored = StoredSnapshot { meta, data };
        self.save_snapshot(&stored).await?;
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl<SM: ControlStateMachine> RaftStateMachine<TypeConfig> for StateMachineStore<SM> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        let applied = self.applied.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.write();
        let applied = &mut *applied;
        let mut replies = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            if let Some(last) = &applied.last_applied {
                assert!(index > last.index, "applied index regressed: last={} next={index}", last.index);
            }
            applied.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Reply::default(),
                EntryPayload::Normal(command) => Reply(applied.state_machine.apply(index, &command.0)),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Reply::default()
                }
            };
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let stored = StoredSnapshot { meta: meta.clone(), data: snapshot.into_inner() };
        {
            let mut applied = self.applied.write();
            // A snapshot from the leader that does not restore is a bug or damage on one side;
            // openraft stops this node's Raft rather than run on a state it cannot trust.
            applied.state_machine.restore(&stored.data).map_err(|reason| {
                StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(reason))
            })?;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
        }
        self.save_snapshot(&stored).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, RaftStorageError> {
        let stored = read_snapshot(&*self.storage).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
