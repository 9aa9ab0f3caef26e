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
}

/// The owner record of an actor: which activation may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub generation: u64,
    pub node: u32,
}

impl OwnerRecord {
    pub fn encode(&self) -> Bytes {
        postcard::to_stdvec(self).expect("encoding into a Vec cannot fail").into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// What an applied actor op answers the node that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorOutcome {
    /// The proposer is the owner now. `previous` is the owner before it (`None` for an actor
    /// never activated); `state` is the stored state as of this point of the order.
    Activated { generation: u64, previous: Option<OwnerRecord>, state: Option<Bytes> },
    /// The write was applied.
    Written,
    /// The generation is still the owner's.
    Confirmed,
    /// Rejected, nothing written: the generation is not the owner's; `current` is the owner now.
    Fenced { current: Option<OwnerRecord> },
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
        ActorOp::Activate { node } => {
            let generation = owner.map_or(0, |o| o.generation) + 1;
            view.put(owner_key, Some(OwnerRecord { generation, node }.encode()));
            let state = view.get(&keys::state_key(actor))?;
            ActorOutcome::Activated { generation, previous: owner, state }
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
        ActorOp::Confirm { generation } => {
            if !owns(generation) {
                return Ok(Ok(ActorOutcome::Fenced { current: owner }));
            }
            ActorOutcome::Confirmed
        }
    };
    Ok(Ok(outcome))
}

#[cfg(test)]
#[path = "op_test.rs"]
mod tests;
