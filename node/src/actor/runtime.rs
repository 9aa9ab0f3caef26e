//! The actor runtime of one node: the table of its activations and the calls waiting for them.
//!
//! An active actor is an entry in one table, keyed by actor. While it has calls, one task runs
//! them, one at a time, in arrival order ([`activation`](super::activation)); calls that arrive
//! meanwhile wait in the entry's queue. When the queue is empty the task parks the activation
//! (its in-memory state) in the entry and ends: an idle actor costs its table entry and its
//! state, with no task, channel or timer. The next call resumes it in a new task. An entry is
//! removed when
//!
//! * it has been idle for [`RuntimeConfig::idle_timeout`] (the actor *sleeps*: its state stays
//!   on disk and the next call activates it again); a sweeper checks every quarter of that time
//!   (at most every [`SWEEP_INTERVAL_MAX`]),
//! * the ring gives the actor to another node ([`Runtime::retain_owned`]),
//! * its write is fenced (another node activated it) or its outcome is unknown.
//!
//! Calls queued in a removed entry are answered with a retry-safe error (they never ran).
//!
//! An actor type with a sleep hook ([`Actor::on_sleep`](super::Actor::on_sleep)) sleeps through
//! its activation: the sweeper queues a sleep call, which runs the hook and removes the entry
//! unless calls arrived meanwhile.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mortar_storage::Storage;
use tokio::sync::oneshot;

use super::client::Client;
use super::context::ConnId;
use super::error::CallError;
use super::events::EventHub;
use super::keys;
use super::keys::ActorId;
use super::lease::{Moment, NodeLease};
use super::op::{ActorOp, ActorOutcome};
use super::registry::{ActorKind, Registry};
use super::table::{Node, Table};
use crate::driver::DriverHandle;
use crate::state_machine::{Op, Outcome};

/// Default [`RuntimeConfig::idle_timeout`].
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`RuntimeConfig::lease`].
pub const LEASE_DEFAULT: Duration = Duration::from_millis(300);
/// Node lease renewals per lease: a renewal may take up to two thirds of a lease to commit
/// before reads fall back to per-actor confirmation.
pub const NODE_LEASE_RENEWALS_PER_LEASE: u32 = 3;
/// Calls queued for one actor before callers are told to retry later.
pub const MAILBOX_CALLS_MAX: usize = 1024;
/// Active actors on one node before new activations are refused.
pub const ACTIVATIONS_MAX: usize = 1_000_000;
/// Largest write one action may make (state plus key-value changes), well inside one epoxy batch.
pub const WRITE_BYTES_MAX: usize = 3 * 1024 * 1024;
/// Longest pause between two sweeps for idle actors.
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(10);
/// Shortest pause between two sweeps for idle actors.
const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Sleep hooks one sweep starts; the next sweep follows soon when there are more.
const SLEEP_HOOKS_PER_SWEEP_MAX: usize = 4096;
/// Most messages waiting in one durable queue of one actor.
pub const QUEUE_LENGTH_MAX: u64 = 10_000;
/// Pause before a run loop that failed starts again.
pub const RUN_LOOP_RESTART_DELAY: Duration = Duration::from_secs(1);
/// How long a run loop told to stop may go on before it is dropped.
pub const RUN_LOOP_ABORT_GRACE: Duration = Duration::from_secs(1);
/// The runtime's own actions, which every actor type answers: `$send` (`{"queue", "body",
/// "wait"}`: append to a durable queue, answering the message's sequence number), `$destroy`
/// and `$wake` (activate the actor, which starts its run loop).
pub const BUILTINS: &[&str] = &[SEND, DESTROY, WAKE, INSPECT, PATCH_STATE, EXISTS, CREATE];
/// Whether the actor exists (`{"exists": bool, "destroyed": bool}`), creating nothing.
pub const EXISTS: &str = "$exists";
/// Creates the actor from the call's input; refused (`FAILED_PRECONDITION`) if it exists.
pub const CREATE: &str = "$create";
pub const SEND: &str = "$send";
pub const DESTROY: &str = "$destroy";
pub const WAKE: &str = "$wake";
/// The inspector's read (`{"part": "summary" | "state" | "kv" | "queue" | "alarms", "prefix",
/// "after", "limit"}`), answered like a read-only action; see [`inspect`](super::inspect).
pub const INSPECT: &str = "$inspect";
/// The inspector's state patch (`{"state": JSON}`): replaces the state in one fenced write,
/// serialised with the actor's actions.
pub const PATCH_STATE: &str = "$patchState";
/// The built-in actions that need the admin credential from clients.
pub const ADMIN_BUILTINS: &[&str] = &[DESTROY, INSPECT, PATCH_STATE];

const _: () = assert!(WRITE_BYTES_MAX < mortar_epoxy::config::BATCH_BYTES_MAX / 2);
const _: () = assert!(MAILBOX_CALLS_MAX >= 1);

/// How the runtime of one node behaves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// This node's id (the owner recorded by its activations).
    pub node_id: u32,
    /// How long a confirmed ownership lets reads be answered from memory (see
    /// [`lease`](super::lease)).
    pub lease: Duration,
    /// Whether this node renews a node lease and answers reads under it (see
    /// [`lease`](super::lease)); without it, a read after an activation's own lease lapsed
    /// confirms that actor's ownership first.
    pub node_lease: bool,
    /// An activation without calls for this long sleeps.
    pub idle_timeout: Duration,
    /// Bound on a call when the caller gives no deadline.
    pub call_timeout: Duration,
    /// What this node presents when it forwards a call to the owner (see [`crate::auth`]).
    pub peer_token: Option<crate::auth::Token>,
    /// How this node dials the owner it forwards a call to (TLS or not).
    pub peer_dialer: crate::tls::Dialer,
}

impl RuntimeConfig {
    pub fn new(node_id: u32) -> Self {
        Self {
            node_id,
            lease: LEASE_DEFAULT,
            node_lease: true,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            call_timeout: crate::config::REQUEST_TIMEOUT_DEFAULT,
            peer_token: None,
            peer_dialer: crate::tls::Dialer::plain(),
        }
    }
}

/// The answer to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub result_json: String,
    /// The generation of the activation that answered.
    pub generation: u64,
    /// The node that ran the action.
    pub served_by: u32,
}

/// One call waiting for its actor.
pub(crate) struct Call {
    pub action: String,
    pub args_json: String,
    /// The creation input, used only if this call creates the actor.
    pub input_json: Option<String>,
    pub reply: oneshot::Sender<Result<Reply, CallError>>,
    pub kind: CallKind,
}

/// What a call asks of its actor.
pub(crate) enum CallKind {
    /// Run action `Call::action`, over connection `conn` when it came over one.
    Action { conn: Option<ConnId> },
    /// Connect `conn` with `params_json` (the connection hooks), as a call.
    Connect { conn: ConnId, params_json: String },
    /// Connection `conn` ended (its client went away or the actor disconnected it).
    Disconnect { conn: ConnId },
    /// Append `body_json` to durable queue `queue`; `handled` hears when it has been handled.
    Send { queue: String, body_json: String, handled: Option<oneshot::Sender<()>> },
    /// Destroy the actor.
    Destroy,
    /// Only activate the actor (and so start its run loop).
    Wake,
    /// Say whether the actor exists.
    Exists,
    /// Create the actor, refused if it exists.
    Create,
    /// Run alarm `alarm` if it is still pending and due.
    Fire { alarm: String },
    /// The inspector's read; `awake`: whether the actor was active here before it.
    Inspect { args_json: String, awake: bool },
    /// The inspector's state patch.
    PatchState { state_json: String },
    /// A run loop's request for a turn: a boxed `TurnRequest` of the actor's type.
    Turn(Box<dyn std::any::Any + Send>),
    /// Go to sleep (after the sleep hook) unless calls are waiting.
    Sleep,
}

impl CallKind {
    /// Whether someone waits for the reply (a call whose caller gave up need not run).
    fn has_caller(&self) -> bool {
        !matches!(self, CallKind::Turn(_) | CallKind::Sleep | CallKind::Disconnect { .. })
    }
}

/// A call that only its kind describes, with nobody waiting for a reply.
fn internal_call(kind: CallKind) -> Box<Call> {
    let (reply, _) = oneshot::channel();
    Box::new(Call { action: String::new(), args_json: String::new(), input_json: None, reply, kind })
}

/// The arguments of [`SEND`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    queue: String,
    body: serde_json::Value,
    #[serde(default)]
    wait: bool,
}

/// The answer to a queued call of `id` (`what`, for errors), waited for until `deadline`.
pub(crate) async fn answered(
    id: &ActorId,
    what: &str,
    answer: oneshot::Receiver<Result<Reply, CallError>>,
    deadline: Instant,
) -> Result<Reply, CallError> {
    match tokio::time::timeout_at(deadline.into(), answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(CallError::Unavailable(format!(
            "actor {id} stopped before answering {what}; a write it made may or may not be applied"
        ))),
        Err(_) => Err(CallError::Unavailable(format!(
            "actor {id} did not answer {what} in time; a write it makes may still be applied"
        ))),
    }
}

/// How [`Runtime::deliver_with`] queues a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Behind the calls queued (refused when the mailbox is full), activating the actor if needed.
    Activate,
    /// The same, but only to an activation there is.
    Active,
    /// Only to an activation there is, even behind a full mailbox.
    Always,
}

/// An idle activation, type-erased: the next call resumes it.
pub(crate) trait Parked: Send + 'static {
    /// Runs the calls queued for activation `id` (its key in the table), of actor type `kind`,
    /// in a new task.
    fn resume(self: Box<Self>, shared: Arc<Shared>, id: ActorId, kind: Arc<dyn ActorKind>);
    /// The generation of this activation.
    fn generation(&self) -> u64;
    /// Whether the activation must not sleep while idle (it has connections).
    fn pinned(&self) -> bool;
}

/// An active actor in the table; every idle actor costs one, so it is kept small.
///
/// Its key in the table is an [`ActorId`] of its own ([`ActorId::unshared`]), and its tasks hold
/// clones of that key: [`ActorId::is_same`] tells the activation from a later one of the same
/// actor (the block cannot be reused while a task still holds it).
struct Entry {
    slot: Slot,
    calls: u64,
    /// When the last call ended (or the activation was created), in ms since the runtime started.
    last_call_ms: u64,
}

const _: () = assert!(std::mem::size_of::<Entry>() <= 32, "an idle actor's table entry grew");
const _: () = assert!(std::mem::size_of::<ActorId>() <= 16, "an idle actor's table key grew");
const _: () = assert!(std::mem::size_of::<Node<Entry>>() <= 48, "an idle actor's table node grew");

enum Slot {
    /// A task is activating the actor or running one of its calls.
    Busy(Box<Busy>),
    /// Waiting for calls with no task: the activation itself.
    Idle(Box<dyn Parked>),
}

/// An activation that a task is running.
struct Busy {
    /// The calls after the running one, in arrival order.
    queue: VecDeque<Box<Call>>,
    /// 0 while the activation is being committed.
    generation: u64,
}

impl Slot {
    fn busy(queue: VecDeque<Box<Call>>, generation: u64) -> Self {
        Slot::Busy(Box::new(Busy { queue, generation }))
    }
}

impl Entry {
    /// The generation of the activation, 0 while it is being committed.
    fn generation(&self) -> u64 {
        match &self.slot {
            Slot::Busy(busy) => busy.generation,
            Slot::Idle(parked) => parked.generation(),
        }
    }
}

/// An active actor, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveActor {
    pub id: ActorId,
    /// 0 while the activation is still being committed.
    pub generation: u64,
    pub calls: u64,
    pub idle: Duration,
}

/// State shared by the runtime and its activations.
pub(crate) struct Shared {
    pub config: RuntimeConfig,
    pub registry: Registry,
    pub driver: DriverHandle,
    pub storage: Arc<dyn Storage>,
    pub hub: EventHub,
    pub started: Instant,
    /// This node's lease for all its activations (see [`lease`](super::lease)).
    pub node_lease: NodeLease,
    activations: Mutex<Table<Entry>>,
    client: OnceLock<Client>,
    /// Told when an activation scheduled alarms (the alarm scheduler looks again).
    pub alarms_changed: tokio::sync::Notify,
    /// The id of the next connection made here.
    next_conn: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The client actions use to call other actors.
    pub fn client(&self) -> Client {
        self.client.get().cloned().unwrap_or_else(Client::detached)
    }

    /// Instant `at` on the runtime's clock.
    pub fn moment(&self, at: Instant) -> Moment {
        // An earlier instant would be taken for the start: a handover wait could end too soon.
        assert!(
            at >= self.started,
            "instant before the runtime started: at={at:?} started={:?}",
            self.started
        );
        Moment::at(self.started, at)
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table<Entry>> {
        self.activations.lock().expect("activations lock")
    }

    /// Activation `id` (a clone of its key) committed its owner record as `generation`.
    pub fn activated(&self, id: &ActorId, generation: u64) {
        let mut table = self.table();
        if let Some(node) = table.get_same(id)
            && let Slot::Busy(busy) = &mut node.entry.slot
        {
            busy.generation = generation;
        }
    }

    /// The next call for activation `id` (a clone of its key; after one ended, when
    /// `ended_call`), with the activation handed back; or, when no call waits, parks `activation`
    /// in its entry and returns `None`. Also `None` when the entry is gone (the actor moved): the
    /// activation is then dropped.
    pub fn next_call<P: Parked>(
        &self,
        id: &ActorId,
        activation: Box<P>,
        ended_call: bool,
    ) -> Option<(Box<Call>, Box<P>)> {
        let now_ms = self.now_ms();
        let mut table = self.table();
        let entry = &mut table.get_same(id)?.entry;
        if ended_call {
            entry.calls += 1;
            entry.last_call_ms = now_ms;
        }
        let Slot::Busy(busy) = &mut entry.slot else {
            unreachable!("only the task running activation {id} takes its calls");
        };
        while let Some(call) = busy.queue.pop_front() {
            // The caller gave up before the call started: not running it is safe.
            if !(call.kind.has_caller() && call.reply.is_closed()) {
                return Some((call, activation));
            }
        }
        entry.slot = Slot::Idle(activation);
        None
    }

    /// Removes activation `id` (a clone of its key), if it is still in the table, and answers
    /// the calls waiting for it with `error` (they never ran).
    pub fn end(&self, id: &ActorId, error: &CallError) {
        let removed = {
            let mut table = self.table();
            let removed = table.remove_same(id).map(|node| node.entry);
            metrics::gauge!("mortar_node_actors_active").set(table.len() as f64);
            removed
        };
        if let Some(Entry { slot: Slot::Busy(busy), .. }) = removed {
            for call in busy.queue {
                let _ = call.reply.send(Err(error.clone()));
            }
        }
    }

    /// Calls activation `id` (a clone of its key) has answered, and how many wait.
    pub fn calls_of(&self, id: &ActorId) -> (u64, usize) {
        let mut table = self.table();
        table.get_same(id).map_or((0, 0), |node| {
            let entry = &node.entry;
            let waiting = match &entry.slot {
                Slot::Busy(busy) => busy.queue.len(),
                Slot::Idle(_) => 0,
            };
            (entry.calls, waiting)
        })
    }

    /// Whether calls wait for activation `id` (a clone of its key).
    pub fn has_calls(&self, id: &ActorId) -> bool {
        let mut table = self.table();
        table
            .get_same(id)
            .is_some_and(|node| matches!(&node.entry.slot, Slot::Busy(busy) if !busy.queue.is_empty()))
    }

    /// Removes activation `id` (a clone of its key), which is going to sleep, unless calls came
    /// meanwhile; returns whether it is gone (the caller drops the activation).
    pub fn finish_sleep(&self, id: &ActorId) -> bool {
        let mut table = self.table();
        let Some(node) = table.get_same(id) else { return true };
        if matches!(&node.entry.slot, Slot::Busy(busy) if !busy.queue.is_empty()) {
            return false;
        }
        table.remove_same(id);
        metrics::gauge!("mortar_node_actors_active").set(table.len() as f64);
        true
    }

    /// Queues `call` for activation `id` (a clone of its key) only: `false` when that activation
    /// is gone.
    pub fn deliver_exact(self: &Arc<Self>, id: &ActorId, call: Box<Call>) -> bool {
        let mut table = self.table();
        let Some(node) = table.get_same(id) else { return false };
        let slot = &mut node.entry.slot;
        match slot {
            Slot::Busy(busy) => busy.queue.push_back(call),
            Slot::Idle(parked) => {
                let Ok(kind) = self.registry.check_actor(id.name()).cloned() else { return false };
                let busy = Slot::busy(VecDeque::from([call]), parked.generation());
                let Slot::Idle(parked) = std::mem::replace(slot, busy) else {
                    unreachable!("matched Idle above")
                };
                drop(table);
                parked.resume(self.clone(), id.clone(), kind);
            }
        }
        true
    }

    /// Puts to sleep the actors idle for the idle timeout; returns how many, and whether more
    /// wait for a sleep hook.
    fn sweep(self: &Arc<Self>) -> (usize, bool) {
        let now_ms = self.now_ms();
        let idle_ms = self.config.idle_timeout.as_millis() as u64;
        let idle = |entry: &Entry| {
            matches!(&entry.slot, Slot::Idle(parked) if !parked.pinned())
                && now_ms.saturating_sub(entry.last_call_ms) >= idle_ms
        };
        let without_hook = |id: &ActorId| {
            self.registry.check_actor(id.name()).map_or(true, |kind| kind.sleeps_without_hook())
        };
        let mut hooked = Vec::new();
        let mut more = false;
        // Freed outside the lock.
        let asleep: Vec<Node<Entry>> = {
            let mut table = self.table();
            let asleep = table.extract_if(|id, entry| idle(entry) && without_hook(id));
            if !asleep.is_empty() {
                metrics::gauge!("mortar_node_actors_active").set(table.len() as f64);
            }
            for Node { id, entry } in table.iter_mut() {
                if !idle(entry) {
                    continue;
                }
                if hooked.len() >= SLEEP_HOOKS_PER_SWEEP_MAX {
                    more = true;
                    break;
                }
                let Ok(kind) = self.registry.check_actor(id.name()).cloned() else { continue };
                let generation = entry.generation();
                let busy = Slot::busy(VecDeque::from([internal_call(CallKind::Sleep)]), generation);
                let Slot::Idle(parked) = std::mem::replace(&mut entry.slot, busy) else {
                    unreachable!("idle() matched Idle")
                };
                hooked.push((id.clone(), parked, kind));
            }
            asleep
        };
        let hooks = hooked.len();
        for (id, parked, kind) in hooked {
            parked.resume(self.clone(), id, kind);
        }
        (asleep.len() + hooks, more)
    }
}

/// Sweeps for idle actors until the runtime is dropped.
async fn sweep_idle(shared: Weak<Shared>, interval: Duration) {
    let mut pause = interval;
    loop {
        tokio::time::sleep(pause).await;
        let Some(shared) = shared.upgrade() else { return };
        let (asleep, more) = shared.sweep();
        if asleep > 0 {
            tracing::debug!(asleep, "idle actors went to sleep");
        }
        pause = if more { SWEEP_INTERVAL_MIN } else { interval };
    }
}

/// Renews the node lease every third of a lease while actors are active here, until the runtime
/// is dropped. A renewal that fails is not retried: the next one follows on schedule, and in
/// between reads confirm per actor once their own leases lapse.
async fn renew_node_lease(shared: Weak<Shared>) {
    let Some(interval) = shared.upgrade().map(|s| s.config.lease / NODE_LEASE_RENEWALS_PER_LEASE) else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.table().len() == 0 {
            continue;
        }
        let me = shared.config.node_id;
        let sent = Instant::now();
        let op = Op::Actor(ActorOp::Renew { node: me }).encode();
        match shared.driver.execute(keys::node_lease_key(me), op).await {
            Ok(Outcome::Actor(ActorOutcome::Renewed)) => {
                shared.node_lease.confirmed(shared.moment(sent), shared.config.lease);
                metrics::counter!("mortar_node_actor_lease_renewals_total", "result" => "ok").increment(1);
            }
            Ok(other) => {
                tracing::error!(answer = ?other, "node lease renewal answered something else; reads confirm per actor");
                metrics::counter!("mortar_node_actor_lease_renewals_total", "result" => "failed")
                    .increment(1);
            }
            Err(e) => {
                tracing::debug!(error = %e, "node lease renewal did not commit");
                metrics::counter!("mortar_node_actor_lease_renewals_total", "result" => "failed")
                    .increment(1);
            }
        }
    }
}

/// The actor runtime of one node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
}

impl Runtime {
    /// A runtime; starts its sweeper for idle actors (call inside a tokio runtime).
    pub fn new(
        config: RuntimeConfig,
        registry: Registry,
        driver: DriverHandle,
        storage: Arc<dyn Storage>,
    ) -> Self {
        let sweep_interval = (config.idle_timeout / 4).clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL_MAX);
        let shared = Arc::new(Shared {
            config,
            registry,
            driver,
            storage,
            hub: EventHub::new(),
            started: Instant::now(),
            node_lease: NodeLease::default(),
            activations: Mutex::new(Table::default()),
            client: OnceLock::new(),
            alarms_changed: tokio::sync::Notify::new(),
            next_conn: std::sync::atomic::AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_micros() as u64)
                    .max(1),
            ),
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&shared), sweep_interval));
        if shared.config.node_lease {
            tokio::spawn(renew_node_lease(Arc::downgrade(&shared)));
        }
        Self { shared }
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub fn hub(&self) -> &EventHub {
        &self.shared.hub
    }

    /// Sets the client actions get from [`Context::client`](super::Context::client) (once).
    pub fn set_client(&self, client: Client) {
        let _ = self.shared.client.set(client);
    }

    /// Runs `action` of `id` on this node, activating the actor if needed, and waits for the
    /// answer until `deadline`. `input_json` is used only if the call creates the actor.
    pub async fn call_local(
        &self,
        id: &ActorId,
        action: &str,
        args_json: String,
        input_json: Option<String>,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        let kind = self.shared.registry.check_call(id.name(), action)?.clone();
        let (what, handled) = match action {
            SEND => {
                let args: SendArgs = serde_json::from_str(&args_json).map_err(|e| {
                    CallError::InvalidArgument(format!(
                        "a send takes {{\"queue\": NAME, \"body\": JSON, \"wait\": BOOL}}: {e}"
                    ))
                })?;
                super::keys::check_queue_name(&args.queue).map_err(CallError::InvalidArgument)?;
                let (handled, wait) = if args.wait {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some((args.queue.clone(), rx)))
                } else {
                    (None, None)
                };
                (CallKind::Send { queue: args.queue, body_json: args.body.to_string(), handled }, wait)
            }
            DESTROY => (CallKind::Destroy, None),
            WAKE => (CallKind::Wake, None),
            EXISTS => (CallKind::Exists, None),
            CREATE => (CallKind::Create, None),
            INSPECT => {
                let awake = self.generation_of(id).is_some();
                (CallKind::Inspect { args_json: args_json.clone(), awake }, None)
            }
            PATCH_STATE => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Patch {
                    state: serde_json::Value,
                }
                let patch: Patch = serde_json::from_str(&args_json).map_err(|e| {
                    CallError::InvalidArgument(format!("a state patch takes {{\"state\": JSON}}: {e}"))
                })?;
                (CallKind::PatchState { state_json: patch.state.to_string() }, None)
            }
            _ => (CallKind::Action { conn: None }, None),
        };
        let answer = self.enqueue(id, &kind, action, args_json, input_json, what)?;
        let reply = answered(id, action, answer, deadline).await?;
        let Some((queue, handled)) = handled else { return Ok(reply) };
        let seq = &reply.result_json;
        match tokio::time::timeout_at(deadline.into(), handled).await {
            Ok(Ok(())) => Ok(reply),
            Ok(Err(_)) => Err(CallError::Unavailable(format!(
                "message {seq} is in queue {queue} of actor {id} and will be handled once, but the actor \
                 stopped here before handling it: its handling cannot be awaited"
            ))),
            Err(_) => Err(CallError::Unavailable(format!(
                "message {seq} is in queue {queue} of actor {id} and will be handled once, but was not handled \
                 in time"
            ))),
        }
    }

    /// Queues a call of `id` here and returns where its answer comes.
    fn enqueue(
        &self,
        id: &ActorId,
        kind: &Arc<dyn ActorKind>,
        action: &str,
        args_json: String,
        input_json: Option<String>,
        what: CallKind,
    ) -> Result<oneshot::Receiver<Result<Reply, CallError>>, CallError> {
        let (reply, answer) = oneshot::channel();
        let call = Box::new(Call { action: action.to_string(), args_json, input_json, reply, kind: what });
        self.deliver(id, kind, call)?;
        Ok(answer)
    }

    /// A new connection id, unique on this node (a node restarting later starts above it: the
    /// ids begin at the start time in microseconds).
    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.shared.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Connects `conn` to `id` here (activating or creating the actor if needed): runs its
    /// connection hooks and waits for their write until `deadline`.
    pub(crate) async fn connect_local(
        &self,
        id: &ActorId,
        conn: ConnId,
        params_json: String,
        input_json: Option<String>,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        let kind = self.shared.registry.check_actor(id.name())?.clone();
        let answer = self.enqueue(
            id,
            &kind,
            "$connect",
            String::new(),
            input_json,
            CallKind::Connect { conn, params_json },
        )?;
        answered(id, "the connection", answer, deadline).await
    }

    /// Queues action `action` of `id` over connection `conn` here: the calls of one connection
    /// run in the order they are queued. Await the answer with [`answered`].
    pub(crate) fn call_conn(
        &self,
        id: &ActorId,
        conn: ConnId,
        action: &str,
        args_json: String,
    ) -> Result<oneshot::Receiver<Result<Reply, CallError>>, CallError> {
        if BUILTINS.contains(&action) {
            return Err(CallError::InvalidArgument(format!(
                "{action} is not an action a connection may call"
            )));
        }
        let kind = self.shared.registry.check_call(id.name(), action)?.clone();
        let (reply, answer) = oneshot::channel();
        let what = CallKind::Action { conn: Some(conn) };
        let call =
            Box::new(Call { action: action.to_string(), args_json, input_json: None, reply, kind: what });
        // Never activating the actor: a connection's activation never sleeps, so without one the
        // actor has moved (and activating it here could depose its new owner).
        if !self.deliver_with(id, &kind, call, Delivery::Active)? {
            return Err(CallError::Retry(format!(
                "connection {conn} ended: actor {id} is no longer active here; connect again"
            )));
        }
        Ok(answer)
    }

    /// Tells the activation of `id` here that connection `conn` ended (its on_disconnect runs),
    /// without waiting; queued even behind a full mailbox (else the actor would stay pinned
    /// awake), and never activating the actor: with no activation here the connection is gone
    /// already, and activating it could depose its owner elsewhere.
    pub(crate) fn disconnect_local(&self, id: &ActorId, conn: ConnId) {
        let Ok(kind) = self.shared.registry.check_actor(id.name()).cloned() else { return };
        let (reply, _) = oneshot::channel();
        let what = CallKind::Disconnect { conn };
        let call = Box::new(Call {
            action: String::new(),
            args_json: String::new(),
            input_json: None,
            reply,
            kind: what,
        });
        let _ = self.deliver_with(id, &kind, call, Delivery::Always);
    }

    /// Fires alarm `alarm` of `id` here (activating the actor if needed): runs its action and
    /// removes it, if it is still pending and due. Waits until `deadline`.
    pub async fn fire_local(&self, id: &ActorId, alarm: String, deadline: Instant) -> Result<(), CallError> {
        let kind = self.shared.registry.check_actor(id.name())?.clone();
        let (reply, answer) = oneshot::channel();
        let call = Box::new(Call {
            action: String::new(),
            args_json: String::new(),
            input_json: None,
            reply,
            kind: CallKind::Fire { alarm },
        });
        self.deliver(id, &kind, call)?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result.map(|_| ()),
            Ok(Err(_)) => Err(CallError::Unavailable(format!("actor {id} stopped before firing its alarm"))),
            Err(_) => Err(CallError::Unavailable(format!("actor {id} did not fire its alarm in time"))),
        }
    }

    /// Tells the alarm scheduler to look again (alarms were scheduled).
    pub(crate) fn alarms_changed(&self) -> &tokio::sync::Notify {
        &self.shared.alarms_changed
    }

    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// Queues `call` for `id`: behind the running call, or resuming the idle activation, or
    /// starting a new activation when there is none.
    fn deliver(&self, id: &ActorId, kind: &Arc<dyn ActorKind>, call: Box<Call>) -> Result<(), CallError> {
        self.deliver_with(id, kind, call, Delivery::Activate).map(|_| ())
    }

    /// [`Runtime::deliver`] as `how` says; whether the call was queued (only with
    /// [`Delivery::Active`] or [`Delivery::Always`] can it not be: there is no activation).
    fn deliver_with(
        &self,
        id: &ActorId,
        kind: &Arc<dyn ActorKind>,
        call: Box<Call>,
        how: Delivery,
    ) -> Result<bool, CallError> {
        let mut table = self.shared.table();
        if let Some(node) = table.get_mut(id) {
            let slot = &mut node.entry.slot;
            match slot {
                Slot::Busy(busy) if how != Delivery::Always && busy.queue.len() >= MAILBOX_CALLS_MAX => {
                    return Err(CallError::Overloaded(format!(
                        "actor {id} has {MAILBOX_CALLS_MAX} calls queued; retry later"
                    )));
                }
                Slot::Busy(busy) => busy.queue.push_back(call),
                Slot::Idle(parked) => {
                    let busy = Slot::busy(VecDeque::from([call]), parked.generation());
                    let Slot::Idle(parked) = std::mem::replace(slot, busy) else {
                        unreachable!("matched Idle above");
                    };
                    let id = node.id.clone();
                    drop(table);
                    parked.resume(self.shared.clone(), id, kind.clone());
                }
            }
            return Ok(true);
        }
        if how != Delivery::Activate {
            return Ok(false);
        }
        if table.len() >= ACTIVATIONS_MAX {
            return Err(CallError::Overloaded(format!(
                "this node has {ACTIVATIONS_MAX} active actors; retry later or add nodes"
            )));
        }
        // A block of its own, which tells this activation from any other (see `Entry`).
        let id = id.unshared();
        let entry = Entry {
            slot: Slot::busy(VecDeque::from([call]), 0),
            calls: 0,
            last_call_ms: self.shared.now_ms(),
        };
        table.insert(id.clone(), entry);
        metrics::gauge!("mortar_node_actors_active").set(table.len() as f64);
        drop(table);
        kind.clone().spawn(self.shared.clone(), id);
        Ok(true)
    }

    /// Stops every activation whose owner, by `owner_of`, is another node, and ends the
    /// subscriptions of those actors (their subscribers follow them by subscribing again).
    pub fn retain_owned(&self, owner_of: impl Fn(&ActorId) -> u32) {
        let me = self.shared.config.node_id;
        let mut stopped = Vec::new();
        {
            let mut table = self.shared.table();
            stopped.extend(table.extract_if(|id, _| owner_of(id) != me).into_iter().map(|node| {
                let owner = owner_of(&node.id);
                (node.id, owner, node.entry.slot)
            }));
            metrics::gauge!("mortar_node_actors_active").set(table.len() as f64);
        }
        if !stopped.is_empty() {
            tracing::info!(stopped = stopped.len(), "actors moved to other nodes after a membership change");
        }
        // A running call finishes; the calls waiting behind it never ran.
        for (id, owner, slot) in stopped {
            if let Slot::Busy(busy) = slot {
                for call in busy.queue {
                    let _ = call
                        .reply
                        .send(Err(CallError::Retry(format!("actor {id} moved to node {owner}; retry"))));
                }
            }
        }
        self.shared.hub.close_where(|id| {
            let owner = owner_of(id);
            (owner != me).then(|| format!("actor {id} moved to node {owner}; subscribe again"))
        });
    }

    /// How many actors are active here.
    pub fn active_count(&self) -> usize {
        self.shared.table().len()
    }

    /// Whether `id` is active here, and its generation (0 while activating).
    pub fn generation_of(&self, id: &ActorId) -> Option<u64> {
        self.shared.table().get(id).map(|n| n.entry.generation())
    }

    /// Up to `limit` active actors, sorted, and how many there are in all.
    pub fn list(&self, limit: usize) -> (Vec<ActiveActor>, usize) {
        let now_ms = self.shared.now_ms();
        let table = self.shared.table();
        let total = table.len();
        let mut ids: Vec<(&ActorId, &Entry)> = table.iter().map(|n| (&n.id, &n.entry)).collect();
        ids.sort_by(|a, b| a.0.cmp(b.0));
        let listed = ids
            .into_iter()
            .take(limit)
            .map(|(id, entry)| ActiveActor {
                id: id.clone(),
                generation: entry.generation(),
                calls: entry.calls,
                idle: Duration::from_millis(now_ms.saturating_sub(entry.last_call_ms)),
            })
            .collect();
        (listed, total)
    }
}

#[cfg(test)]
#[path = "runtime_test.rs"]
mod tests;
