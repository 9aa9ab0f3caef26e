//! What an action sees: its actor's key and state, the per-actor key-value space, events to emit,
//! alarms to schedule, a client for calling other actors; and what a run loop sees
//! ([`RunContext`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mortar_storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

use super::client::Client;
use super::error::CallError;
use super::keys::{self, ActorId};
use super::list::Lists;
use super::op::AlarmRecord;
use super::sdk::{Action, Actor, ActorError, Event};

/// Most entries one [`Kv::list`] returns.
pub const KV_LIST_ENTRIES_MAX: usize = 10_000;
/// Most pending alarms of one actor.
pub const ALARMS_PER_ACTOR_MAX: usize = 1000;
/// Latest an alarm may be due: ten years ahead.
pub const ALARM_HORIZON: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Milliseconds since the Unix epoch, by this node's clock: the time alarms are due in.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

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
    vars: Arc<A::Vars>,
    alarms: Alarms,
    destroy: bool,
    /// The alarm this call fires, if it is one, and when it was due.
    firing: Option<String>,
    firing_due_ms: u64,
    /// Set by the default [`Actor::on_sleep`]: the actor type has no sleep hook.
    pub(crate) default_hook: bool,
    /// The actor is being created: its state is stored with any write the call makes.
    creating: bool,
    /// The actor's connections (in actions and connection hooks; empty elsewhere), and the one
    /// this call came over.
    conns: Conns<A>,
    caller: Option<ConnId>,
    /// The connection whose on_disconnect runs.
    leaving: Option<Conn<A>>,
    /// Messages to single connections and disconnections, delivered after the commit.
    conn_messages: Vec<ConnMessage>,
}

/// The id of a connection: unique on its node ([`Conn::id`]).
pub type ConnId = u64;

/// The connections of one activation, by id.
pub(crate) type Conns<A> = HashMap<ConnId, Conn<A>>;

/// A client connected to the actor ([`Context::conn`], [`Context::conns`]): what it gave when it
/// connected and the state [`Actor::create_conn_state`] built for it.
pub struct Conn<A: Actor> {
    id: ConnId,
    params: A::ConnParams,
    state: A::ConnState,
}

impl<A: Actor> Conn<A> {
    pub(crate) fn new(id: ConnId, params: A::ConnParams, state: A::ConnState) -> Self {
        Self { id, params, state }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    /// What the client gave when it connected (checked by [`Actor::on_before_connect`]).
    pub fn params(&self) -> &A::ConnParams {
        &self.params
    }

    /// The connection's state: in memory, changed at once (not rolled back by a failing action).
    pub fn state(&self) -> &A::ConnState {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut A::ConnState {
        &mut self.state
    }
}

/// Something for one connection, delivered once the write of the call that staged it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnMessage {
    /// An event sent to connection `conn` alone.
    Event { conn: ConnId, event: EmittedEvent },
    /// The actor ends connection `conn`.
    Disconnect { conn: ConnId, reason: String },
}

/// The alarms an action scheduled and cancelled.
struct Alarms {
    /// Prefix of new alarm ids: `<generation>.`; each new one adds the next sequence number.
    generation: u64,
    next_seq: u32,
    set: Vec<(String, AlarmRecord)>,
    removed: Vec<String>,
}

/// A pending alarm of an actor ([`Schedule::list`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Alarm {
    pub id: String,
    /// When it is due, in unix milliseconds.
    pub due_ms: u64,
    pub action: String,
    pub args_json: String,
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
    /// The state as it was lent to the context, when the action did not change it: it goes back
    /// to the activation as it is.
    pub kept: Option<Arc<S>>,
    pub kv_deletes: Vec<Bytes>,
    pub kv_puts: Vec<(Bytes, Bytes)>,
    pub events: Vec<EmittedEvent>,
    pub conn_messages: Vec<ConnMessage>,
    pub emit_error: Option<String>,
    pub alarms_set: Vec<(String, AlarmRecord)>,
    pub alarms_removed: Vec<String>,
    /// The sequence number the next alarm id of the activation takes.
    pub next_alarm_seq: u32,
    pub destroy: bool,
}

impl<S> Staged<S> {
    /// Whether the action changed nothing (it may then be answered from memory under a lease).
    pub fn is_read_only(&self) -> bool {
        self.state.is_none()
            && self.kv_deletes.is_empty()
            && self.kv_puts.is_empty()
            && self.alarms_set.is_empty()
            && self.alarms_removed.is_empty()
            && !self.destroy
    }
}

/// What a context is made from, besides the state.
pub(crate) struct ContextParts<A: Actor> {
    pub storage: Arc<dyn Storage>,
    pub client: Client,
    pub vars: Arc<A::Vars>,
    pub generation: u64,
    pub next_alarm_seq: u32,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(id: ActorId, state: Arc<A::State>, parts: ContextParts<A>) -> Self {
        let prefix = id.kv_prefix();
        Self {
            id,
            state,
            state_changed: false,
            kv: Kv { storage: parts.storage, prefix, pending: BTreeMap::new() },
            events: Vec::new(),
            emit_error: None,
            client: parts.client,
            vars: parts.vars,
            alarms: Alarms {
                generation: parts.generation,
                next_seq: parts.next_alarm_seq,
                set: Vec::new(),
                removed: Vec::new(),
            },
            destroy: false,
            firing: None,
            firing_due_ms: 0,
            default_hook: false,
            creating: false,
            conns: HashMap::new(),
            caller: None,
            leaving: None,
            conn_messages: Vec::new(),
        }
    }

    /// Gives the call the actor's connections, `caller` the one it came over.
    pub(crate) fn attach_conns(&mut self, conns: Conns<A>, caller: Option<ConnId>) {
        self.conns = conns;
        self.caller = caller;
    }

    /// Adds connection `conn` and makes it the caller (in on_connect).
    pub(crate) fn add_conn(&mut self, conn: Conn<A>) {
        self.caller = Some(conn.id);
        self.conns.insert(conn.id, conn);
    }

    /// Makes `conn` the connection of [`Context::conn`] (in on_disconnect: it is no longer listed).
    pub(crate) fn set_leaving(&mut self, conn: Conn<A>) {
        self.leaving = Some(conn);
    }

    /// Takes the connections back from the call.
    pub(crate) fn detach_conns(&mut self) -> Conns<A> {
        std::mem::take(&mut self.conns)
    }

    /// The connection this call came over: the caller's identity (its params, its state). `None`
    /// for a plain call, an alarm or a run-loop turn. In [`Actor::on_connect`] the new
    /// connection, in [`Actor::on_disconnect`] the one leaving.
    pub fn conn(&self) -> Option<&Conn<A>> {
        self.leaving.as_ref().or_else(|| self.caller.and_then(|id| self.conns.get(&id)))
    }

    pub fn conn_mut(&mut self) -> Option<&mut Conn<A>> {
        match &mut self.leaving {
            Some(leaving) => Some(leaving),
            None => self.caller.and_then(|id| self.conns.get_mut(&id)),
        }
    }

    /// The actor's connections, in no particular order (in actions and connection hooks; empty
    /// in alarms, run-loop turns and the other hooks).
    pub fn conns(&self) -> impl Iterator<Item = &Conn<A>> {
        self.conns.values()
    }

    /// Sends `event` to connection `conn` alone, once this call's write is committed (not at
    /// all if the call fails); at most once, like [`Context::emit`]. Unknown connection: an
    /// error.
    pub fn send_to<E: Event, I>(&mut self, conn: ConnId, event: E) -> Result<(), ActorError>
    where
        A::Events: Lists<E, I>,
    {
        if !self.conns.contains_key(&conn) {
            return Err(ActorError::rejected(format!("actor {} has no connection {conn}", self.id)));
        }
        let event = self.encode_event(event).map_err(ActorError::internal)?;
        self.conn_messages.push(ConnMessage::Event { conn, event });
        Ok(())
    }

    /// Ends connection `conn` once this call's write is committed: its client hears `reason`
    /// and does not reconnect by itself; [`Actor::on_disconnect`] runs. Unknown connection: an
    /// error.
    pub fn disconnect(&mut self, conn: ConnId, reason: impl Into<String>) -> Result<(), ActorError> {
        if !self.conns.contains_key(&conn) {
            return Err(ActorError::rejected(format!("actor {} has no connection {conn}", self.id)));
        }
        self.conn_messages.push(ConnMessage::Disconnect { conn, reason: reason.into() });
        Ok(())
    }

    fn encode_event<E: Event>(&self, event: E) -> Result<EmittedEvent, String> {
        serde_json::to_string(&event)
            .map(|data_json| EmittedEvent { name: E::NAME, data_json })
            .map_err(|e| format!("event {} does not encode as JSON: {e}", E::NAME))
    }

    /// Marks the actor as being created: if the call writes anything, its state is stored too.
    pub(crate) fn set_creating(&mut self) {
        self.creating = true;
    }

    pub(crate) fn set_firing(&mut self, alarm: String, due_ms: u64) {
        self.firing = Some(alarm);
        self.firing_due_ms = due_ms;
    }

    /// The per-activation values [`Actor::on_wake`] built.
    pub fn vars(&self) -> &A::Vars {
        &self.vars
    }

    /// The actor's alarms: schedule an action to run later, cancel, list.
    pub fn schedule(&mut self) -> Schedule<'_, A> {
        Schedule { ctx: self }
    }

    /// The id of the alarm this call fires, when an alarm runs it.
    pub fn alarm(&self) -> Option<&str> {
        self.firing.as_deref()
    }

    /// When the alarm this call fires was due (unix milliseconds), when an alarm runs it.
    pub fn alarm_due_ms(&self) -> Option<u64> {
        self.firing.as_ref().map(|_| self.firing_due_ms)
    }

    /// Destroys the actor when this action succeeds: its state, key-value space, alarms and
    /// queues are removed in one write (after [`Actor::on_destroy`]), its subscribers are told,
    /// and calls fail with `NOT_FOUND` until a call with an input creates it again. The
    /// action's other changes are dropped.
    pub fn destroy(&mut self) {
        self.destroy = true;
    }

    pub(crate) fn destroying(&self) -> bool {
        self.destroy
    }

    /// The key of this actor (`user-42` in `counter/user-42`).
    pub fn key(&self) -> &str {
        self.id.key()
    }

    /// The type name of this actor (`counter`).
    pub fn name(&self) -> &str {
        self.id.name()
    }

    /// The parts of this actor's compound key (`["org-acme", "general"]` for the key
    /// `org-acme/general`, see [`keys::compound_key`]); a plain key is one part.
    pub fn key_parts(&self) -> Vec<String> {
        keys::key_parts(self.id.key())
    }

    /// The state as this action sees it (including its own changes so far).
    pub fn state(&self) -> &A::State {
        &self.state
    }

    /// The state, to change it in place (it is not copied). Calling this marks the state as
    /// changed: it is written when the action succeeds. If the action fails instead, the
    /// activation reads the state back from its node's store (the last committed one).
    pub fn state_mut(&mut self) -> &mut A::State {
        self.state_changed = true;
        if Arc::get_mut(&mut self.state).is_none() {
            // Never for the runtime's own contexts: each call is lent the activation's only
            // reference. A copy through JSON (the state need not be `Clone`), as a safe fallback.
            tracing::warn!(actor = %self.id, "the state of a call was shared; it is copied before a change");
            let copy = serde_json::to_value(&*self.state)
                .and_then(serde_json::from_value)
                .unwrap_or_else(|e| panic!("the state of actor {} does not copy through JSON: {e}", self.id));
            self.state = Arc::new(copy);
        }
        Arc::get_mut(&mut self.state).expect("the state was just made unique")
    }

    /// Gives the state back: `None` when the call changed it (only what it staged may be kept).
    pub(crate) fn into_unchanged_state(self) -> Option<Arc<A::State>> {
        (!self.state_changed).then_some(self.state)
    }

    /// The actor's own key-value space: for data that grows (one entry per message, per item),
    /// rather than one growing state.
    pub fn kv(&mut self) -> &mut Kv {
        &mut self.kv
    }

    /// Announces `event`, one of the actor's [`Actor::Events`] (another does not compile), to
    /// its subscribers and connections once this action's write is committed (not at all if the
    /// action fails). An event that does not encode as JSON is an error, and fails the action
    /// even if the error is ignored.
    pub fn emit<E: Event, I>(&mut self, event: E) -> Result<(), ActorError>
    where
        A::Events: Lists<E, I>,
    {
        match self.encode_event(event) {
            Ok(event) => {
                self.events.push(event);
                Ok(())
            }
            Err(e) => {
                self.emit_error = Some(e.clone());
                Err(ActorError::internal(e))
            }
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
        let writes = self.state_changed
            || !kv_deletes.is_empty()
            || !kv_puts.is_empty()
            || !self.alarms.set.is_empty()
            || !self.alarms.removed.is_empty();
        let written = self.state_changed || (self.creating && writes);
        let (state, kept) = if written { (Some(self.state), None) } else { (None, Some(self.state)) };
        Staged {
            state,
            kept,
            kv_deletes,
            kv_puts,
            events: self.events,
            conn_messages: self.conn_messages,
            emit_error: self.emit_error,
            alarms_set: self.alarms.set,
            alarms_removed: self.alarms.removed,
            next_alarm_seq: self.alarms.next_seq,
            destroy: self.destroy,
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

/// The alarms of an actor, from an action ([`Context::schedule`]).
///
/// An alarm runs an action of the actor at a time (unix milliseconds, this node's clock) on the
/// actor's owner, waking the actor if it sleeps and on a surviving node if its owner died.
/// Scheduling and cancelling take effect with the action's write (a failed action schedules
/// nothing). Firing runs the action and removes the alarm in one write, so its effect happens
/// exactly once; an action that fails when fired is logged and the alarm is removed all the same.
pub struct Schedule<'c, A: Actor> {
    ctx: &'c mut Context<A>,
}

impl<A: Actor> Schedule<'_, A> {
    /// Runs `action` in `delay` from now; returns the alarm's id.
    pub fn after<X: Action, I>(&mut self, delay: Duration, action: X) -> Result<String, ActorError>
    where
        A::Actions: Lists<X, I>,
    {
        if delay > ALARM_HORIZON {
            return Err(beyond_horizon());
        }
        self.set(unix_ms() + delay.as_millis() as u64, action)
    }

    /// Runs `action` at `unix_ms` (milliseconds since the Unix epoch); returns the alarm's id.
    /// A time in the past is refused.
    pub fn at<X: Action, I>(&mut self, unix_ms: u64, action: X) -> Result<String, ActorError>
    where
        A::Actions: Lists<X, I>,
    {
        let now = self::unix_ms();
        if unix_ms < now {
            return Err(ActorError::invalid_argument(format!(
                "alarm time {unix_ms} is {} ms in the past; use after(Duration::ZERO, ..) to run at once",
                now - unix_ms
            )));
        }
        if unix_ms - now > ALARM_HORIZON.as_millis() as u64 {
            return Err(beyond_horizon());
        }
        self.set(unix_ms, action)
    }

    fn set<X: Action>(&mut self, due_ms: u64, action: X) -> Result<String, ActorError> {
        let args_json = serde_json::to_string(&action).map_err(|e| {
            ActorError::internal(format!("arguments of alarm action {} do not encode: {e}", X::NAME))
        })?;
        let pending = self.stored()?.len() + self.ctx.alarms.set.len();
        if pending >= ALARMS_PER_ACTOR_MAX {
            return Err(ActorError::rejected(format!(
                "actor {} has {pending} pending alarms, the most one actor may have",
                self.ctx.id
            )));
        }
        let alarms = &mut self.ctx.alarms;
        let id = format!("{}.{}", alarms.generation, alarms.next_seq);
        alarms.next_seq = alarms.next_seq.wrapping_add(1);
        let record = AlarmRecord { due_ms, action: X::NAME.to_string(), args_json, set_ms: unix_ms() };
        alarms.set.push((id.clone(), record));
        Ok(id)
    }

    /// Cancels alarm `id`; an id that is not pending (unknown, fired or cancelled already) is an
    /// error.
    pub fn cancel(&mut self, id: &str) -> Result<(), ActorError> {
        let alarms = &mut self.ctx.alarms;
        if let Some(i) = alarms.set.iter().position(|(set, _)| set == id) {
            alarms.set.remove(i);
            return Ok(());
        }
        let stored = self
            .ctx
            .kv
            .storage
            .get_kv(&keys::alarm_key(&self.ctx.id.interference_key(), id.as_bytes()))
            .map_err(|e| ActorError::internal(format!("read alarm {id:?}: {e}")))?;
        let gone = stored.is_none()
            || self.ctx.alarms.removed.iter().any(|r| r == id)
            || self.ctx.firing.as_deref() == Some(id);
        if gone {
            return Err(ActorError::rejected(format!("actor {} has no pending alarm {id:?}", self.ctx.id)));
        }
        self.ctx.alarms.removed.push(id.to_string());
        Ok(())
    }

    /// The pending alarms, as this action sees them (its own changes included), by due time.
    pub fn list(&self) -> Result<Vec<Alarm>, ActorError> {
        let mut all: Vec<Alarm> = self
            .stored()?
            .into_iter()
            .chain(self.ctx.alarms.set.iter().map(|(id, record)| alarm(id.clone(), record)))
            .collect();
        all.sort_by(|a, b| (a.due_ms, &a.id).cmp(&(b.due_ms, &b.id)));
        Ok(all)
    }

    /// The stored alarms not cancelled by this action (nor the one it fires).
    fn stored(&self) -> Result<Vec<Alarm>, ActorError> {
        let prefix = keys::alarm_prefix(&self.ctx.id.interference_key());
        let stored = self
            .ctx
            .kv
            .storage
            .scan_kv_prefix(&prefix, None, ALARMS_PER_ACTOR_MAX + 1)
            .map_err(|e| ActorError::internal(format!("list alarms: {e}")))?;
        let mut alarms = Vec::with_capacity(stored.len());
        for (key, value) in stored {
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if self.ctx.alarms.removed.contains(&id) || self.ctx.firing.as_deref() == Some(id.as_str()) {
                continue;
            }
            let record = AlarmRecord::decode(&value)
                .map_err(|e| ActorError::internal(format!("alarm {id:?} does not decode: {e}")))?;
            alarms.push(alarm(id, &record));
        }
        Ok(alarms)
    }
}

fn beyond_horizon() -> ActorError {
    ActorError::invalid_argument(format!(
        "an alarm may be due at most {} days ahead",
        ALARM_HORIZON.as_secs() / 86_400
    ))
}

fn alarm(id: String, record: &AlarmRecord) -> Alarm {
    Alarm { id, due_ms: record.due_ms, action: record.action.clone(), args_json: record.args_json.clone() }
}

/// A message taken from a durable queue by a run loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub queue: String,
    /// Its sequence number in the queue (what `send` answered).
    pub id: u64,
    pub body_json: String,
    /// When it was sent, in unix milliseconds.
    pub sent_ms: u64,
}

impl Message {
    /// The body, decoded.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ActorError> {
        serde_json::from_str(&self.body_json).map_err(|e| {
            ActorError::invalid_argument(format!(
                "message {} of queue {} does not decode as {}: {e}",
                self.id,
                self.queue,
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A run loop's request for its next turn on `queue`, delivered to its activation.
pub(crate) struct TurnRequest<A: Actor> {
    pub queue: String,
    pub grant: oneshot::Sender<TurnGrant<A>>,
}

/// The activation's answer to a [`TurnRequest`].
pub(crate) enum TurnGrant<A: Actor> {
    /// The head of the queue: a turn is open until the run loop sends back its context.
    Message { ctx: Box<Context<A>>, message: Message, done: oneshot::Sender<TurnDone<A>> },
    /// The queue is empty; the receiver fires when a message arrives.
    Empty(oneshot::Receiver<()>),
    /// The actor does not declare the queue.
    Undeclared,
}

/// A turn's changes, sent back to the activation to commit.
pub(crate) struct TurnDone<A: Actor> {
    pub ctx: Box<Context<A>>,
    pub committed: oneshot::Sender<Result<(), CallError>>,
}

struct OpenTurn<A: Actor> {
    ctx: Box<Context<A>>,
    done: oneshot::Sender<TurnDone<A>>,
}

/// Delivers a run loop's turn requests to its own activation.
pub(crate) trait TurnLine<A: Actor>: Send + Sync {
    /// Queues `request` behind the activation's calls; `false` when the activation is gone.
    fn request(&self, request: TurnRequest<A>) -> bool;
}

/// What a run loop ([`RunLoop::run`](super::sdk::RunLoop)) sees: its actor's key, the queues to
/// consume and, during a turn, the actor itself (it dereferences to the turn's [`Context`]).
pub struct RunContext<A: Actor> {
    id: ActorId,
    line: Arc<dyn TurnLine<A>>,
    abort: watch::Receiver<()>,
    turn: Option<OpenTurn<A>>,
    vars: Arc<A::Vars>,
}

impl<A: Actor> RunContext<A> {
    pub(crate) fn new(
        id: ActorId,
        line: Arc<dyn TurnLine<A>>,
        abort: watch::Receiver<()>,
        vars: Arc<A::Vars>,
    ) -> Self {
        Self { id, line, abort, turn: None, vars }
    }

    /// The key of this actor.
    pub fn key(&self) -> &str {
        self.id.key()
    }

    /// The per-activation values [`Actor::on_wake`] built.
    pub fn vars(&self) -> &A::Vars {
        &self.vars
    }

    /// Whether the loop has been told to stop (the actor sleeps, moves, is destroyed or its node
    /// stops). It is dropped after a grace period, its open turn discarded.
    pub fn is_aborted(&self) -> bool {
        self.abort.has_changed().is_err()
    }

    /// Resolves when the loop is told to stop (see [`RunContext::is_aborted`]).
    pub async fn aborted(&self) {
        let mut abort = self.abort.clone();
        while abort.changed().await.is_ok() {}
    }

    /// Durable queue `name` of this actor (declared with `work.queue(name)` in [`Actor::work`]).
    pub fn queue(&mut self, name: &str) -> QueueReader<'_, A> {
        QueueReader { ctx: self, name: name.to_string() }
    }

    /// Whether a turn is open (since the last `next()` gave a message).
    pub fn in_turn(&self) -> bool {
        self.turn.is_some()
    }

    /// Commits the open turn now: its changes and the removal of its message, in one write.
    /// Nothing happens outside a turn. After an error the activation is over: end the loop.
    pub async fn commit(&mut self) -> Result<(), ActorError> {
        let Some(OpenTurn { ctx, done }) = self.turn.take() else { return Ok(()) };
        let (committed, outcome) = oneshot::channel();
        let stopped = || ActorError::internal(format!("actor {} stopped before the turn committed", self.id));
        if done.send(TurnDone { ctx, committed }).is_err() {
            return Err(stopped());
        }
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                Err(ActorError::internal(format!("the turn of actor {} did not commit: {e}", self.id)))
            }
            Err(_) => Err(stopped()),
        }
    }

    async fn next(&mut self, queue: &str) -> Option<Message> {
        if let Err(e) = self.commit().await {
            tracing::warn!(actor = %self.id, error = %e, "run loop stops: its turn did not commit");
            return None;
        }
        loop {
            if self.is_aborted() {
                return None;
            }
            let (grant, granted) = oneshot::channel();
            if !self.line.request(TurnRequest { queue: queue.to_string(), grant }) {
                return None;
            }
            let grant = tokio::select! {
                grant = granted => grant.ok()?,
                () = self.aborted() => return None,
            };
            match grant {
                TurnGrant::Message { ctx, message, done } => {
                    self.turn = Some(OpenTurn { ctx, done });
                    return Some(message);
                }
                TurnGrant::Empty(arrived) => {
                    tokio::select! {
                        _ = arrived => {}
                        () = self.aborted() => return None,
                    }
                }
                TurnGrant::Undeclared => {
                    tracing::error!(actor = %self.id, queue, "the run loop reads a queue its actor does not declare");
                    return None;
                }
            }
        }
    }
}

impl<A: Actor> std::ops::Deref for RunContext<A> {
    type Target = Context<A>;

    /// The open turn's context.
    ///
    /// # Panics
    ///
    /// Outside a turn (before the first message, or after [`RunContext::commit`]): a run loop
    /// touches its actor only while it holds a turn.
    fn deref(&self) -> &Context<A> {
        match &self.turn {
            Some(turn) => &turn.ctx,
            None => panic!("the run loop of actor {} used its context outside a turn", self.id),
        }
    }
}

impl<A: Actor> std::ops::DerefMut for RunContext<A> {
    fn deref_mut(&mut self) -> &mut Context<A> {
        match &mut self.turn {
            Some(turn) => &mut turn.ctx,
            None => panic!("the run loop of actor {} used its context outside a turn", self.id),
        }
    }
}

/// A durable queue, read by a run loop ([`RunContext::queue`]).
pub struct QueueReader<'c, A: Actor> {
    ctx: &'c mut RunContext<A>,
    name: String,
}

impl<A: Actor> QueueReader<'_, A> {
    /// Commits the open turn, then waits for the queue's next message and opens a turn for it.
    /// `None` when the loop must stop: the actor sleeps, moves or is destroyed, the turn did not
    /// commit, or the actor does not declare the queue.
    pub async fn next(self) -> Option<Message> {
        self.ctx.next(&self.name).await
    }
}
