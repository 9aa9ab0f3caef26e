//! The deterministic state machine every replica applies committed commands to, in execution
//! order. A command's payload is one [`Op`]; applying it reads and writes the node's key-value
//! data through a [`View`] that sees the writes of earlier commands in the same round.
//!
//! Every replica applies the same commands in the same order to the same data, so `apply` must be
//! a pure function of the op and the data: no clocks, no randomness, no node-local state.

use crate::actor::op::{self as actor_op, ActorOp, ActorOutcome};
use crate::driver::ProposeError;
use crate::kv::{KvOp, KvOutcome};
use bytes::Bytes;
use mortar_storage::{Storage, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Every kind of operation epoxy orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A `mortar.v1.Kv` operation on the command's key.
    Kv(KvOp),
    /// An actor's activation, write or ownership check, on the actor's interference key.
    Actor(ActorOp),
}

/// What an applied op answers its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Kv(KvOutcome),
    Actor(ActorOutcome),
}

impl Op {
    pub fn encode(&self) -> Bytes {
        postcard::to_stdvec(self).expect("encoding into a Vec cannot fail").into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// The data as of the commands applied so far in this round: storage plus this round's writes.
pub struct View<'a> {
    storage: &'a dyn Storage,
    overlay: HashMap<Bytes, Option<Bytes>>,
    batch: &'a mut WriteBatch,
}

impl<'a> View<'a> {
    pub fn new(storage: &'a dyn Storage, batch: &'a mut WriteBatch) -> Self {
        Self { storage, overlay: HashMap::new(), batch }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.storage.get_kv(key),
        }
    }

    /// Writes (`Some`) or deletes (`None`) a key, in this round's write batch.
    pub fn put(&mut self, key: Bytes, value: Option<Bytes>) {
        match &value {
            Some(v) => self.batch.put_kv(key.clone(), v.clone()),
            None => self.batch.delete_kv(key.clone()),
        }
        self.overlay.insert(key, value);
    }

    /// Bytes in the round's write batch so far.
    pub fn batch_bytes(&self) -> usize {
        self.batch.bytes()
    }

    /// Marks an instance executed, in the same write batch as its effects.
    pub(crate) fn mark_executed(&mut self, id: mortar_storage::InstanceKey) {
        self.batch.mark_executed(id);
    }

    /// Up to `limit` pairs under `prefix` as of this round (storage merged with this round's
    /// writes), in key order, after `start_after`.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let mut merged: std::collections::BTreeMap<Bytes, Option<Bytes>> = self
            .storage
            .scan_kv_prefix(prefix, start_after, limit)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for (k, v) in &self.overlay {
            if k.starts_with(prefix) && start_after.is_none_or(|after| &k[..] > after) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).take(limit).collect())
    }
}

/// Applies one committed command. The outer error is a storage failure (the node stops); the
/// inner one is what the client hears.
pub fn apply(
    key: &Bytes,
    payload: &[u8],
    view: &mut View,
) -> Result<Result<Outcome, ProposeError>, StorageError> {
    let op = match Op::decode(payload) {
        Ok(op) => op,
        // Committed everywhere alike, so every replica skips it alike.
        Err(e) => return Ok(Err(ProposeError::Internal(format!("command does not decode: {e}")))),
    };
    match op {
        Op::Kv(op) => Ok(Ok(Outcome::Kv(crate::kv::apply(key, op, view)?))),
        Op::Actor(op) => Ok(actor_op::apply(key, op, view)?.map(Outcome::Actor)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_storage::MemStorage;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn later_commands_of_a_round_see_earlier_writes() {
        let storage = MemStorage::new();
        let mut batch = WriteBatch::new();
        let mut view = View::new(&storage, &mut batch);
        let put = Op::Kv(KvOp::Put { value: b("1") }).encode();
        apply(&b("k/a"), &put, &mut view).unwrap().unwrap();
        let get = Op::Kv(KvOp::Get).encode();
        let Outcome::Kv(seen) = apply(&b("k/a"), &get, &mut view).unwrap().unwrap() else {
            panic!("a kv op answered another outcome");
        };
        assert_eq!(seen.previous, Some(b("1")));
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn undecodable_payload_is_an_error_for_the_client_only() {
        let storage = MemStorage::new();
        let mut batch = WriteBatch::new();
        let mut view = View::new(&storage, &mut batch);
        assert!(matches!(apply(&b("k/a"), &[0xff, 0xff], &mut view), Ok(Err(ProposeError::Internal(_)))));
        assert!(batch.is_empty());
    }

    #[test]
    fn prefix_scan_merges_this_rounds_writes() {
        let storage = MemStorage::new();
        let mut seed = WriteBatch::new();
        seed.put_kv(b("p/1"), b("old"));
        seed.put_kv(b("p/2"), b("two"));
        storage.write(seed, true).unwrap();
        let mut batch = WriteBatch::new();
        let mut view = View::new(&storage, &mut batch);
        view.put(b("p/1"), Some(b("new")));
        view.put(b("p/2"), None);
        view.put(b("p/3"), Some(b("three")));
        let got = view.scan_prefix(b"p/", None, 10).unwrap();
        assert_eq!(got, vec![(b("p/1"), b("new")), (b("p/3"), b("three"))]);
    }
}
