//! What an action sees: its actor's key and state, the per-actor key-value space, events to emit
//! and a client for calling other actors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use mortar_storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::Client;
use super::keys::{self, ActorId};
use super::sdk::{Actor, ActorError, Event, Events};

/// Most entries one [`Kv::list`] returns.
pub const KV_LIST_ENTRIES_MAX: usize = 10_000;

/// The context of one action of actor `A`.
///
/// Changes are staged: the state and key-value writes become visible to later actions only once
/// this action returns `Ok` and its write is committed.
pub struct Context<A: Actor> {
    id: ActorId,
    state: Arc<A::State>,
    state_changed: bool,
    kv: Kv,
    events: Vec<EmittedEvent>,
    emit_error: Option<String>,
    client: Client,
}

/// One event emitted by an action, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    pub name: &'static str,
    pub data_json: String,
}

/// What an action staged, taken out of its context after it returned.
pub(crate) struct Staged<S> {
    /// The new state, when the action changed it.
    pub state: Option<Arc<S>>,
    pub kv_deletes: Vec<Bytes>,
    pub kv_puts: Vec<(Bytes, Bytes)>,
    pub events: Vec<EmittedEvent>,
    pub emit_error: Option<String>,
}

impl<S> Staged<S> {
    /// Whether the action changed nothing (it may then be answered from memory under a lease).
    pub fn is_read_only(&self) -> bool {
        self.state.is_none() && self.kv_deletes.is_empty() && self.kv_puts.is_empty()
    }
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(id: ActorId, state: Arc<A::State>, storage: Arc<dyn Storage>, client: Client) -> Self {
        let prefix = id.kv_prefix();
        Self {
            id,
            state,
            state_changed: false,
            kv: Kv { storage, prefix, pending: BTreeMap::new() },
            events: Vec::new(),
            emit_error: None,
            client,
        }
    }

    /// The key of this actor (`user-42` in `counter/user-42`).
    pub fn key(&self) -> &str {
        self.id.key()
    }

    /// The type name of this actor (`counter`).
    pub fn name(&self) -> &str {
        self.id.name()
    }

    /// The state as this action sees it (including its own changes so far).
    pub fn state(&self) -> &A::State {
        &self.state
    }

    /// The state, to change it. Calling this marks the state as changed: it is written when the
    /// action succeeds.
    pub fn state_mut(&mut self) -> &mut A::State {
        self.state_changed = true;
        Arc::make_mut(&mut self.state)
    }

    /// The actor's own key-value space: for data that grows (one entry per message, per item),
    /// rather than one growing state.
    pub fn kv(&mut self) -> &mut Kv {
        &mut self.kv
    }

    /// Announces `event`, one of the actor's [`Actor::Events`], to its subscribers once this
    /// action's write is committed (not at all if the action fails).
    pub fn emit<E: Event>(&mut self, event: E)
    where
        A::Events: From<E>,
    {
        if !A::Events::NAMES.contains(&E::NAME) {
            self.emit_error =
                Some(format!("event {} is not listed in the Events::NAMES of actor {}", E::NAME, A::NAME));
            return;
        }
        match serde_json::to_string(&event) {
            Ok(data_json) => self.events.push(EmittedEvent { name: E::NAME, data_json }),
            Err(e) => self.emit_error = Some(format!("event {} does not encode as JSON: {e}", E::NAME)),
        }
    }

    /// A client for calling other actors, by type and key, wherever they run. Do not call this
    /// actor itself (it is busy with this action: the call would wait until it times out).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn into_staged(self) -> Staged<A::State> {
        let mut kv_deletes = Vec::new();
        let mut kv_puts = Vec::new();
        for (key, value) in self.kv.pending {
            match value {
                Some(value) => kv_puts.push((Bytes::from(key.into_bytes()), value)),
                None => kv_deletes.push(Bytes::from(key.into_bytes())),
            }
        }
        Staged {
            state: self.state_changed.then_some(self.state),
            kv_deletes,
            kv_puts,
            events: self.events,
            emit_error: self.emit_error,
        }
    }
}

/// The key-value space of one actor: string keys, JSON values. Reads see the committed data plus
/// this action's own pending writes.
pub struct Kv {
    storage: Arc<dyn Storage>,
    prefix: Bytes,
    /// This action's writes: `None` deletes.
    pending: BTreeMap<String, Option<Bytes>>,
}

impl Kv {
    /// The value under `key`, if any.
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, ActorError> {
        let bytes = match self.pending.get(key) {
            Some(value) => value.clone(),
            None => self
                .storage
                .get_kv(&[&self.prefix[..], key.as_bytes()].concat())
                .map_err(|e| ActorError::internal(format!("read actor kv {key:?}: {e}")))?,
        };
        bytes.map(|b| decode(key, &b)).transpose()
    }

    /// Writes `value` under `key` (1 to 1024 bytes).
    pub fn put<V: Serialize>(&mut self, key: &str, value: &V) -> Result<(), ActorError> {
        keys::check_kv_key(key).map_err(ActorError::invalid_argument)?;
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ActorError::internal(format!("value for actor kv {key:?} does not encode: {e}")))?;
        self.pending.insert(key.to_string(), Some(bytes.into()));
        Ok(())
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn delete(&mut self, key: &str) -> Result<(), ActorError> {
        keys::check_kv_key(key).map_err(ActorError::invalid_argument)?;
        self.pending.insert(key.to_string(), None);
        Ok(())
    }

    /// Up to `limit` (at most [`KV_LIST_ENTRIES_MAX`]) entries whose key starts with `prefix`, in
    /// key order, starting after `start_after` when given.
    pub fn list<V: DeserializeOwned>(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, V)>, ActorError> {
        let limit = limit.min(KV_LIST_ENTRIES_MAX);
        let in_range =
            |k: &String| k.starts_with(prefix) && start_after.is_none_or(|after| k.as_str() > after);
        let deletes = self.pending.iter().filter(|(k, v)| v.is_none() && in_range(k)).count();
        let full_prefix = [&self.prefix[..], prefix.as_bytes()].concat();
        let start = start_after.map(|after| [&self.prefix[..], after.as_bytes()].concat());
        let stored = self
            .storage
            .scan_kv_prefix(&full_prefix, start.as_deref(), limit + deletes)
            .map_err(|e| ActorError::internal(format!("list actor kv {prefix:?}: {e}")))?;
        let mut merged: BTreeMap<String, Option<Bytes>> = BTreeMap::new();
        for (key, value) in stored {
            let key = String::from_utf8_lossy(&key[self.prefix.len()..]).into_owned();
            merged.insert(key, Some(value));
        }
        for (key, value) in self.pending.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if in_range(key) {
                merged.insert(key.clone(), value.clone());
            }
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .take(limit)
            .map(|(k, v)| decode(&k, &v).map(|v| (k, v)))
            .collect()
    }
}

fn decode<V: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<V, ActorError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ActorError::internal(format!("actor kv {key:?} does not decode as the expected type: {e}"))
    })
}
