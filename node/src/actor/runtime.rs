//! The actor runtime of one node: its activations, the mailbox of each, and when they stop.
//!
//! An activation is one tokio task per active actor ([`activation::run`](super::activation::run))
//! that owns the actor's in-memory state and handles its calls one at a time from a bounded
//! mailbox. This module keeps the table `actor → mailbox`; the table holds the only sender of each
//! mailbox, so removing an entry closes the mailbox: the activation answers what is queued (with
//! a retry-safe error when it was stopped) and ends. An entry is removed when
//!
//! * the activation has been idle for [`RuntimeConfig::idle_timeout`] (it *sleeps*: its state
//!   stays on disk and the next call activates it again),
//! * the ring gives the actor to another node ([`Runtime::retain_owned`]),
//! * its write is fenced (another node activated it) or its outcome is unknown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mortar_storage::Storage;
use tokio::sync::{mpsc, oneshot};

use super::activation::ActivationEnv;
use super::client::Client;
use super::error::CallError;
use super::events::EventHub;
use super::keys::ActorId;
use super::registry::Registry;
use crate::driver::DriverHandle;

/// Default [`RuntimeConfig::idle_timeout`].
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`RuntimeConfig::lease`].
pub const LEASE_DEFAULT: Duration = Duration::from_millis(300);
/// Calls queued for one actor before callers are told to retry later.
pub const MAILBOX_CALLS_MAX: usize = 1024;
/// Active actors on one node before new activations are refused.
pub const ACTIVATIONS_MAX: usize = 1_000_000;
/// Largest write one action may make (state plus key-value changes), well inside one epoxy batch.
pub const WRITE_BYTES_MAX: usize = 3 * 1024 * 1024;

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
    /// An activation without calls for this long sleeps.
    pub idle_timeout: Duration,
    /// Bound on a call when the caller gives no deadline.
    pub call_timeout: Duration,
}

impl RuntimeConfig {
    pub fn new(node_id: u32) -> Self {
        Self {
            node_id,
            lease: LEASE_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            call_timeout: crate::config::REQUEST_TIMEOUT_DEFAULT,
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

/// One call waiting in an actor's mailbox.
pub(crate) struct Call {
    pub action: String,
    pub args_json: String,
    /// The creation input, used only if this call creates the actor.
    pub input_json: Option<String>,
    pub reply: oneshot::Sender<Result<Reply, CallError>>,
}

/// What the admin API shows of one activation; updated by the activation.
pub(crate) struct ActivationInfo {
    pub generation: AtomicU64,
    pub calls: AtomicU64,
    /// When the last call was handled, in ms since the runtime started.
    pub last_call_ms: AtomicU64,
    /// Set when the activation was stopped from outside: why.
    pub stopped: OnceLock<String>,
}

struct Entry {
    token: u64,
    mailbox: mpsc::Sender<Box<Call>>,
    info: Arc<ActivationInfo>,
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
    activations: Mutex<HashMap<ActorId, Entry>>,
    next_token: AtomicU64,
    client: OnceLock<Client>,
}

impl Shared {
    /// The client actions use to call other actors.
    pub fn client(&self) -> Client {
        self.client.get().cloned().unwrap_or_else(Client::detached)
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Removes activation `token` of `id` from the table (closing its mailbox), if it is still
    /// there. With `only_if_idle`, only when that mailbox is empty; returns whether it was removed
    /// (or was already gone).
    pub fn retire(&self, id: &ActorId, token: u64, only_if_idle: Option<&mpsc::Receiver<Box<Call>>>) -> bool {
        let mut activations = self.activations.lock().expect("activations lock");
        match activations.get(id) {
            Some(entry) if entry.token == token => {
                if only_if_idle.is_some_and(|mailbox| !mailbox.is_empty()) {
                    return false;
                }
                activations.remove(id);
                metrics::gauge!("mortar_node_actors_active").set(activations.len() as f64);
                true
            }
            _ => true,
        }
    }
}

/// The actor runtime of one node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) shared: Arc<Shared>,
}

impl Runtime {
    pub fn new(
        config: RuntimeConfig,
        registry: Registry,
        driver: DriverHandle,
        storage: Arc<dyn Storage>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                registry,
                driver,
                storage,
                hub: EventHub::new(),
                started: Instant::now(),
                activations: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
                client: OnceLock::new(),
            }),
        }
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
        let kind = self.shared.registry.check_call(&id.name, action)?.clone();
        let (reply, answer) = oneshot::channel();
        let call = Box::new(Call { action: action.to_string(), args_json, input_json, reply });
        self.deliver(id, &kind, call)?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::Unavailable(format!(
                "actor {id} stopped before answering {action}; a write it made may or may not be applied"
            ))),
            Err(_) => Err(CallError::Unavailable(format!(
                "actor {id} did not answer {action} in time; a write it makes may still be applied"
            ))),
        }
    }

    /// Queues `call` in the mailbox of `id`, starting an activation when there is none.
    fn deliver(
        &self,
        id: &ActorId,
        kind: &Arc<dyn super::registry::ActorKind>,
        call: Box<Call>,
    ) -> Result<(), CallError> {
        let mut activations = self.shared.activations.lock().expect("activations lock");
        let mut call = call;
        if let Some(entry) = activations.get(id) {
            match entry.mailbox.try_send(call) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(CallError::Overloaded(format!(
                        "actor {id} has {MAILBOX_CALLS_MAX} calls queued; retry later"
                    )));
                }
                // The activation ended without retiring (it panicked): start a new one.
                Err(mpsc::error::TrySendError::Closed(returned)) => {
                    activations.remove(id);
                    call = returned;
                }
            }
        }
        if activations.len() >= ACTIVATIONS_MAX {
            return Err(CallError::Overloaded(format!(
                "this node has {ACTIVATIONS_MAX} active actors; retry later or add nodes"
            )));
        }
        let (tx, rx) = mpsc::channel(MAILBOX_CALLS_MAX);
        tx.try_send(call).unwrap_or_else(|_| unreachable!("a new mailbox has room"));
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ActivationInfo {
            generation: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            last_call_ms: AtomicU64::new(self.shared.now_ms()),
            stopped: OnceLock::new(),
        });
        activations.insert(id.clone(), Entry { token, mailbox: tx, info: info.clone() });
        metrics::gauge!("mortar_node_actors_active").set(activations.len() as f64);
        drop(activations);
        kind.clone().spawn(ActivationEnv {
            shared: self.shared.clone(),
            id: Arc::new(id.clone()),
            token,
            mailbox: rx,
            info,
        });
        Ok(())
    }

    /// Stops every activation whose owner, by `owner_of`, is another node, and ends the
    /// subscriptions of those actors (their subscribers follow them by subscribing again).
    pub fn retain_owned(&self, owner_of: impl Fn(&ActorId) -> u32) {
        let me = self.shared.config.node_id;
        let mut stopped = 0;
        {
            let mut activations = self.shared.activations.lock().expect("activations lock");
            activations.retain(|id, entry| {
                let owner = owner_of(id);
                if owner == me {
                    return true;
                }
                let _ = entry.info.stopped.set(format!("actor {id} moved to node {owner}; retry"));
                stopped += 1;
                false
            });
            metrics::gauge!("mortar_node_actors_active").set(activations.len() as f64);
        }
        if stopped > 0 {
            tracing::info!(stopped, "actors moved to other nodes after a membership change");
        }
        self.shared.hub.close_where(|id| {
            let owner = owner_of(id);
            (owner != me).then(|| format!("actor {id} moved to node {owner}; subscribe again"))
        });
    }

    /// How many actors are active here.
    pub fn active_count(&self) -> usize {
        self.shared.activations.lock().expect("activations lock").len()
    }

    /// Whether `id` is active here, and its generation (0 while activating).
    pub fn generation_of(&self, id: &ActorId) -> Option<u64> {
        let activations = self.shared.activations.lock().expect("activations lock");
        activations.get(id).map(|e| e.info.generation.load(Ordering::Relaxed))
    }

    /// Up to `limit` active actors, sorted, and how many there are in all.
    pub fn list(&self, limit: usize) -> (Vec<ActiveActor>, usize) {
        let now_ms = self.shared.now_ms();
        let activations = self.shared.activations.lock().expect("activations lock");
        let total = activations.len();
        let mut ids: Vec<(&ActorId, &Entry)> = activations.iter().collect();
        ids.sort_by(|a, b| a.0.cmp(b.0));
        let listed = ids
            .into_iter()
            .take(limit)
            .map(|(id, entry)| ActiveActor {
                id: id.clone(),
                generation: entry.info.generation.load(Ordering::Relaxed),
                calls: entry.info.calls.load(Ordering::Relaxed),
                idle: Duration::from_millis(
                    now_ms.saturating_sub(entry.info.last_call_ms.load(Ordering::Relaxed)),
                ),
            })
            .collect();
        (listed, total)
    }
}

#[cfg(test)]
#[path = "runtime_test.rs"]
mod tests;
