//! The replicated operations of actors, and how every replica applies them.
//!
//! Each op is an epoxy command on the actor's interference key (see [`keys`](super::keys)), so all
//! ops of one actor are applied in the same order everywhere:
//!
//! * [`ActorOp::Activate`] makes a node the owner: `generation + 1`. Because it interferes with
//!   every earlier op of the actor, once it has executed on the new owner that replica holds every
//!   committed write of the actor (the *activation barrier*).
//! * [`ActorOp::Write`] is every state change of one action, applied atomically, and only if its
//!   generation is still the owner's (*fencing*): a deposed owner's write changes nothing and
//!   answers [`ActorOutcome::Fenced`].
//! * [`ActorOp::Confirm`] writes nothing; it tells an owner whether it still owns the actor (for
//!   read leases).
//! * [`ActorOp::Take`] is the activation nodes send: an [`ActorOp::Activate`] that applies only if
//!   the owner record is still the one the proposer expected (and fenced, below).
//!
//! Two ops are on a node's lease key ([`keys::node_lease_key`]) instead, ordered with each other
//! and with nothing else (see [`lease`](super::lease) for how they make node-wide read leases
//! safe):
//!
//! * [`ActorOp::Renew`] writes nothing; its commit renews the node lease of its proposer.
//! * [`ActorOp::Fence`] records, on every replica, that node `node` may no longer answer reads
//!   of one actor's generations up to `generation` under its node lease.

use super::keys;
use crate::driver::ProposeError;
use crate::state_machine::View;
use bytes::Bytes;
use mortar_storage::StorageError;
use serde::{Deserialize, Serialize};

/// One operation on one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorOp {
    /// Node `node` becomes the owner with the next generation.
    Activate { node: u32 },
    /// The state change of one action by the activation of `generation`: the new state (`None`:
    /// unchanged), then deletes and puts in the actor's key-value space (keys relative to it).
    Write { generation: u64, state: Option<Bytes>, kv_deletes: Vec<Bytes>, kv_puts: Vec<(Bytes, Bytes)> },
    /// Succeeds only while `generation` is the owner's.
    Confirm { generation: u64 },
    /// A write that also schedules, cancels or fires alarms, queues or consumes messages, or
    /// destroys the actor (the plain [`ActorOp::Write`] keeps its encoding for older nodes).
    Commit(Box<Commit>),
    /// On node `node`'s lease key: renews its node lease.
    Renew { node: u32 },
    /// On node `node`'s lease key: node `node` may no longer answer reads of the actor with
    /// interference key `actor`, generations up to `generation`, under its node lease.
    Fence { node: u32, actor: Bytes, generation: u64 },
    /// Node `node` becomes the owner with the next generation if the owner record is `expect`
    /// (the previous owner, fenced by the proposer if it was another node); otherwise nothing
    /// is written and the answer is [`ActorOutcome::Fenced`] with the owner record as it is.
    Take { node: u32, expect: Option<OwnerRecord> },
}

/// The changes of one action, run-loop turn, alarm or send by the activation of `generation`
/// (applied only if it is still the owner's, like [`ActorOp::Write`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub generation: u64,
    pub state: Option<Bytes>,
    pub kv_deletes: Vec<Bytes>,
    pub kv_puts: Vec<(Bytes, Bytes)>,
    /// New alarms: id and record ([`AlarmRecord`]).
    pub alarms_set: Vec<(Bytes, AlarmRecord)>,
    /// Alarms removed (cancelled or fired); absent ones are ignored.
    pub alarms_removed: Vec<Bytes>,
    /// Queue writes: storage keys under the actor's queue prefixes ([`keys::queue_message_key`],
    /// [`keys::queue_meta_key`]) and their values (`None` deletes).
    pub queue_writes: Vec<(Bytes, Option<Bytes>)>,
    /// Removes the actor's tombstone: it is being created again.
    pub recreate: bool,
    /// Removes everything of the actor but its owner record and leaves a tombstone; every other
    /// field is ignored.
    pub destroy: bool,
}

/// A pending alarm: run `action` with `args_json` at `due_ms` (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub due_ms: u64,
    pub action: String,
    pub args_json: String,
    /// When it was scheduled (unix milliseconds, the owner's clock).
    pub set_ms: u64,
}

/// The length of a queue and the sequence number of its next message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub next_seq: u64,
    pub len: u64,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub body_json: String,
    /// When it was sent (unix milliseconds, the owner's clock).
    pub sent_ms: u64,
}

/// `encode` and `decode` for records stored as postcard.
macro_rules! postcard_record {
    ($($record:ty),+) => {$(
        impl $record {
            pub fn encode(&self) -> Bytes {
                postcard::to_stdvec(self).expect("encoding into a Vec cannot fail").into()
            }

            pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
                postcard::from_bytes(bytes)
            }
        }
    )+};
}

postcard_record!(OwnerRecord, AlarmRecord, QueueMeta, QueuedMessage);

/// Entries the destruction of an actor removes per storage scan.
const DESTROY_SCAN_PAGE: usize = 1024;

/// The owner record of an actor: which activation may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub generation: u64,
    pub node: u32,
}

/// What an applied actor op answers the node that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorOutcome {
    /// The proposer is the owner now. `previous` is the owner before it (`None` for an actor
    /// never activated); `state` is the stored state as of this point of the order.
    /// `last_op_bound` is not part of the replicated outcome: the driver of the node that
    /// executed it sets it to an instant no earlier than the execution there of the actor's
    /// latest earlier op ([`RecentOps`](super::recent::RecentOps)), from which a new owner's
    /// handover wait runs (`None`: unknown, the wait runs from the activation).
    Activated {
        generation: u64,
        previous: Option<OwnerRecord>,
        state: Option<Bytes>,
        destroyed: bool,
        last_op_bound: Option<std::time::Instant>,
    },
    /// The write was applied.
    Written,
    /// The generation is still the owner's.
    Confirmed,
    /// Rejected, nothing written: the generation is not the owner's (for a [`ActorOp::Take`]:
    /// the owner is not the expected one); `current` is the owner now.
    Fenced { current: Option<OwnerRecord> },
    /// The node lease's renewal committed.
    Renewed,
    /// The fence is set. `last_op_bound`, like [`ActorOutcome::Activated`]'s, is set by the
    /// driver of the node that executed it: an instant no earlier than the execution there of the
    /// latest earlier op on the node's lease key (its last renewal before the fence).
    FenceSet { last_op_bound: Option<std::time::Instant> },
}

/// Applies one actor op to the actor whose interference key is `actor`.
///
/// The outer error is a storage failure (the node stops); the inner one is what the proposer
/// hears. Deterministic: every replica computes the same writes.
pub fn apply(
    actor: &Bytes,
    op: ActorOp,
    view: &mut View,
) -> Result<Result<ActorOutcome, ProposeError>, StorageError> {
    if let ActorOp::Renew { node } | ActorOp::Fence { node, .. } = &op {
        return apply_to_node_lease(actor, *node, op, view);
    }
    if keys::parse_interference_key(actor).is_none() {
        return Ok(Err(ProposeError::Invalid(format!(
            "actor op on {:?}, which is not an actor key",
            String::from_utf8_lossy(actor)
        ))));
    }
    let owner_key = keys::owner_key(actor);
    let owner = match view.get(&owner_key)? {
        None => None,
        Some(bytes) => match OwnerRecord::decode(&bytes) {
            Ok(record) => Some(record),
            // The same bytes on every replica, so every replica answers alike.
            Err(e) => {
                return Ok(Err(ProposeError::Internal(format!(
                    "owner record of {:?} does not decode: {e}",
                    String::from_utf8_lossy(actor)
                ))));
            }
        },
    };
    let owns = |generation: u64| owner.is_some_and(|o| o.generation == generation);
    let outcome = match op {
        ActorOp::Take { expect, .. } if owner != expect => {
            return Ok(Ok(ActorOutcome::Fenced { current: owner }));
        }
        ActorOp::Activate { node } | ActorOp::Take { node, .. } => {
            let generation = owner.map_or(0, |o| o.generation) + 1;
            view.put(owner_key, Some(OwnerRecord { generation, node }.encode()));
            let state = view.get(&keys::state_key(actor))?;
            let destroyed = view.get(&keys::tombstone_key(actor))?.is_some();
            ActorOutcome::Activated { generation, previous: owner, state, destroyed, last_op_bound: None }
        }
        ActorOp::Write { generation, state, kv_deletes, kv_puts } => {
            if !owns(generation) {
                return Ok(Ok(ActorOutcome::Fenced { current: owner }));
            }
            if let Some(state) = state {
                view.put(keys::state_key(actor), Some(state));
            }
            for key in kv_deletes {
                view.put(keys::kv_key(actor, &key), None);
            }
            for (key, value) in kv_puts {
                view.put(keys::kv_key(actor, &key), Some(value));
            }
            ActorOutcome::Written
        }
        ActorOp::Commit(commit) => {
            if !owns(commit.generation) {
                return Ok(Ok(ActorOutcome::Fenced { current: owner }));
            }
            if commit.destroy {
                destroy(actor, view)?;
                return Ok(Ok(ActorOutcome::Written));
            }
            let Commit {
                state, kv_deletes, kv_puts, alarms_set, alarms_removed, queue_writes, recreate, ..
            } = *commit;
            if recreate {
                view.put(keys::tombstone_key(actor), None);
            }
            if let Some(state) = state {
                view.put(keys::state_key(actor), Some(state));
            }
            for key in kv_deletes {
                view.put(keys::kv_key(actor, &key), None);
            }
            for (key, value) in kv_puts {
                view.put(keys::kv_key(actor, &key), Some(value));
            }
            for id in alarms_removed {
                remove_alarm(view, &keys::alarm_key(actor, &id))?;
            }
            for (id, record) in alarms_set {
                let key = keys::alarm_key(actor, &id);
                remove_alarm(view, &key)?; // a rescheduled id moves in the index
                view.put(keys::alarm_index_key(record.due_ms, &key), Some(Bytes::new()));
                view.put(key, Some(record.encode()));
            }
            if !queue_writes.is_empty() {
                let queues = keys::queues_prefix(actor);
                let meta = keys::data_prefix(actor);
                for (key, value) in queue_writes {
                    // Only under this actor's own data: the proposer cannot reach another's.
                    if key.starts_with(&meta) && key.len() > meta.len() {
                        view.put(key, value);
                    }
                }
                let pending = !view.scan_prefix(&queues, None, 1)?.is_empty();
                view.put(keys::work_index_key(actor), pending.then(Bytes::new));
            }
            ActorOutcome::Written
        }
        ActorOp::Confirm { generation } => {
            if !owns(generation) {
                return Ok(Ok(ActorOutcome::Fenced { current: owner }));
            }
            ActorOutcome::Confirmed
        }
        ActorOp::Renew { .. } | ActorOp::Fence { .. } => unreachable!("node lease ops return above"),
    };
    Ok(Ok(outcome))
}

/// Applies a node lease op ([`ActorOp::Renew`], [`ActorOp::Fence`]) on key `key`, which must be
/// the lease key of the op's node.
fn apply_to_node_lease(
    key: &Bytes,
    node: u32,
    op: ActorOp,
    view: &mut View,
) -> Result<Result<ActorOutcome, ProposeError>, StorageError> {
    if keys::parse_node_lease_key(key) != Some(node) {
        return Ok(Err(ProposeError::Invalid(format!(
            "node lease op of node {node} on {:?}, which is not its lease key",
            String::from_utf8_lossy(key)
        ))));
    }
    match op {
        ActorOp::Renew { .. } => Ok(Ok(ActorOutcome::Renewed)),
        ActorOp::Fence { actor, generation, .. } => {
            if keys::parse_interference_key(&actor).is_none() {
                return Ok(Err(ProposeError::Invalid(format!(
                    "fence for {:?}, which is not an actor key",
                    String::from_utf8_lossy(&actor)
                ))));
            }
            let fence_key = keys::fence_key(node, &actor);
            // Fences only rise: a late fence for an older generation leaves a newer one.
            let generation = generation.max(read_fence(view.get(&fence_key)?.as_deref()));
            view.put(fence_key, Some(Bytes::copy_from_slice(&generation.to_be_bytes())));
            Ok(Ok(ActorOutcome::FenceSet { last_op_bound: None }))
        }
        other => unreachable!("not a node lease op: {other:?}"),
    }
}

/// The generation a stored fence record holds (0, fencing nothing, when there is none). A record
/// of another length than 8 bytes is read as fencing every generation: such a record is never
/// written, so it is damage, and a node must not trust its lease over damage.
pub fn read_fence(record: Option<&[u8]>) -> u64 {
    match record {
        None => 0,
        Some(bytes) => bytes.try_into().map_or(u64::MAX, u64::from_be_bytes),
    }
}

/// Removes the alarm stored under `key` and its index entry, if it exists.
fn remove_alarm(view: &mut View, key: &Bytes) -> Result<(), StorageError> {
    if let Some(record) = view.get(key)? {
        // Every replica decodes the same bytes alike; a record that does not decode has no
        // index entry to find, and is removed all the same.
        if let Ok(record) = AlarmRecord::decode(&record) {
            view.put(keys::alarm_index_key(record.due_ms, key), None);
        }
        view.put(key.clone(), None);
    }
    Ok(())
}

/// Removes everything of `actor` but its owner record (which keeps generations rising), with the
/// index entries of its alarms and queues, and leaves a tombstone.
fn destroy(actor: &Bytes, view: &mut View) -> Result<(), StorageError> {
    let prefix = keys::data_prefix(actor);
    let owner = keys::owner_key(actor);
    let alarms = keys::alarm_prefix(actor);
    let mut after: Option<Bytes> = None;
    loop {
        let page = view.scan_prefix(&prefix, after.as_deref(), DESTROY_SCAN_PAGE)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, value) in page {
            if key == owner {
                continue;
            }
            if key.starts_with(&alarms)
                && let Ok(record) = AlarmRecord::decode(&value)
            {
                view.put(keys::alarm_index_key(record.due_ms, &key), None);
            }
            view.put(key, None);
        }
    }
    view.put(keys::work_index_key(actor), None);
    view.put(keys::tombstone_key(actor), Some(Bytes::from_static(b"1")));
    Ok(())
}

#[cfg(test)]
#[path = "op_test.rs"]
mod tests;
