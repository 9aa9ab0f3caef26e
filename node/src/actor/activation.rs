//! One activation: an active actor's in-memory state, and the task that runs its calls one at a
//! time while it has any.
//!
//! 1. **Activate**: commit [`ActorOp::Activate`] on the actor's interference key. Once it has
//!    executed here, this replica holds every committed write of the actor (the activation
//!    barrier), and the outcome carries the stored state: no remote read.
//! 2. **Serve** the calls queued in the runtime's table, in order. An action that changed nothing
//!    is answered from memory while the [`Lease`] holds, after a [`ActorOp::Confirm`] otherwise.
//!    An action that changed the state or the key-value space is committed as one
//!    [`ActorOp::Write`] with this activation's generation; the caller hears the answer once it
//!    is committed, durable and executed, and the action's events are published then. When no
//!    call waits, the activation is parked in the table and its task ends; the next call resumes
//!    it in a new task.
//! 3. **End** when the runtime removes it (the actor moved, or it slept after
//!    [`RuntimeConfig::idle_timeout`](super::RuntimeConfig) without calls), when a write is fenced
//!    (another node activated the actor: this one is deposed) or when a write's outcome is
//!    unknown (the next activation reloads whatever was committed).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt as _;

use super::context::Context;
use super::error::CallError;
use super::keys::ActorId;
use super::lease::{Lease, Moment, handover_wait};
use super::op::{ActorOp, ActorOutcome, OwnerRecord};
use super::registry::{Actions, ActorKind, Kind};
use super::runtime::{Call, Parked, Reply, Shared, WRITE_BYTES_MAX};
use super::sdk::{Actor, ActorErrorKind, NoEvents};
use crate::driver::ProposeError;
use crate::state_machine::{Op, Outcome};

/// The in-memory side of an active actor: what an idle actor keeps (parked in the runtime's
/// table, with no task). Every idle actor keeps one, so what the task that runs it can be handed
/// (its id, the key of its table entry; its actor type, from the registry) is not in it.
struct Activation<A: Actor> {
    generation: u64,
    state: Arc<A::State>,
    /// Whether the state is stored: the actor exists. Until then each call creates the state
    /// afresh ([`Actor::create`]) from the call's input, and a call that carries an input stores
    /// what it created.
    exists: bool,
    lease: Lease,
    /// Writes are acknowledged no earlier than this (see [`handover_wait`]).
    acks_not_before: Moment,
}

/// An actor type of the usual shape, to size an idle activation without the runtime naming an
/// application's actor: an activation holds its state behind an `Arc`, so every actor's
/// activation has this size.
enum SizeProbe {}

impl Actor for SizeProbe {
    const NAME: &'static str = "size-probe";
    type State = i64;
    type Input = ();
    type Events = NoEvents;

    fn actions(_: &mut Actions<Self>) {}
}

const _: () = assert!(std::mem::size_of::<Activation<SizeProbe>>() <= 40, "an idle actor's activation grew");

impl<A: Actor> Parked for Activation<A> {
    fn resume(self: Box<Self>, shared: Arc<Shared>, id: ActorId, kind: Arc<dyn ActorKind>) {
        let kind: Arc<dyn Any + Send + Sync> = kind;
        let Ok(kind) = kind.downcast::<Kind<A>>() else {
            unreachable!("actor {id} resumed with another type than {}", std::any::type_name::<A>());
        };
        tokio::spawn(guarded(shared.clone(), id.clone(), serve(self, kind, shared, id)));
    }

    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Runs activation `id` (its key in the runtime's table): activates the actor, then serves its
/// calls (see the module docs).
pub(crate) async fn run<A: Actor>(kind: Arc<Kind<A>>, shared: Arc<Shared>, id: ActorId) {
    let activate = async {
        let started = Instant::now();
        // Boxed, like each call below, so that the task stays small (tasks come and go with
        // calls; a large one fragments the heap that idle activations live in).
        match Box::pin(Activation::<A>::activate(&shared, &id)).await {
            Ok(activation) => {
                metrics::histogram!("mortar_node_actor_activation_seconds")
                    .record(started.elapsed().as_secs_f64());
                shared.activated(&id, activation.generation);
                tracing::debug!(actor = %id, generation = activation.generation, "actor activated");
                serve(Box::new(activation), kind, shared.clone(), id.clone()).await;
            }
            Err(e) => {
                tracing::warn!(actor = %id, error = %e, "activation failed");
                shared.end(&id, &e);
            }
        }
    };
    guarded(shared.clone(), id.clone(), activate).await;
}

/// Runs `task` of activation `id`; if it panics (a bug: actions' panics are caught per call),
/// the activation ends and the calls waiting for it are refused.
async fn guarded(shared: Arc<Shared>, id: ActorId, task: impl Future<Output = ()>) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        let reason = format!("the activation of actor {id} failed; retry");
        tracing::error!(actor = %id, "an activation task panicked");
        shared.end(&id, &CallError::Retry(reason.clone()));
        shared.hub.close(&id, &reason);
    }
}

/// Runs the calls waiting for `activation` of `id`, one at a time, until none waits (it parks)
/// or it ends.
async fn serve<A: Actor>(
    mut activation: Box<Activation<A>>,
    kind: Arc<Kind<A>>,
    shared: Arc<Shared>,
    id: ActorId,
) {
    let mut ended_call = false;
    loop {
        let call;
        (call, activation) = match shared.next_call(&id, activation, ended_call) {
            Some(next) => next,
            // Parked until the next call, or removed (the actor moved).
            None => return,
        };
        let Call { action, args_json, input_json, reply } = *call;
        let started = Instant::now();
        let (result, end) =
            Box::pin(activation.call(&kind, &shared, &id, &action, args_json, input_json)).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_retry_safe() => "retry",
            Err(CallError::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        metrics::histogram!("mortar_node_actor_call_seconds", "actor" => A::NAME, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        let _ = reply.send(result);
        if let Some(reason) = end {
            tracing::info!(actor = %id, generation = activation.generation, reason = %reason, "actor deactivated");
            shared.end(&id, &CallError::Retry(reason.clone()));
            shared.hub.close(&id, &reason);
            return;
        }
        ended_call = true;
    }
}

impl<A: Actor> Activation<A> {
    async fn activate(shared: &Shared, id: &ActorId) -> Result<Self, CallError> {
        let me = shared.config.node_id;
        let key = id.interference_key();
        let sent = Instant::now();
        let outcome =
            shared.driver.execute(key.clone(), Op::Actor(ActorOp::Activate { node: me }).encode()).await;
        let executed = Instant::now();
        let (generation, previous, stored) = match outcome {
            Ok(Outcome::Actor(ActorOutcome::Activated { generation, previous, state })) => {
                (generation, previous, state)
            }
            Ok(other) => return Err(CallError::Internal(format!("activation of {id} answered {other:?}"))),
            Err(ProposeError::Unavailable(why) | ProposeError::Aborted(why)) => {
                return Err(CallError::Retry(format!("could not activate actor {id}: {why}")));
            }
            Err(ProposeError::Overloaded(why)) => {
                return Err(CallError::Overloaded(format!("could not activate actor {id}: {why}")));
            }
            Err(ProposeError::Invalid(why) | ProposeError::Internal(why)) => {
                return Err(CallError::Internal(format!("could not activate actor {id}: {why}")));
            }
        };
        let exists = stored.is_some();
        let state = match stored {
            None => A::State::default(),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                CallError::Internal(format!(
                    "the stored state of actor {id} does not decode as {}: {e}; the actor type changed \
                     incompatibly",
                    std::any::type_name::<A::State>()
                ))
            })?,
        };
        let mut lease = Lease::default();
        lease.confirmed(shared.moment(sent), shared.config.lease);
        // Another node may still hold a read lease, granted by a command it sent before our
        // activation executed here: acknowledge no write before that lease has surely expired.
        let executed = shared.moment(executed);
        let acks_not_before = match previous {
            Some(OwnerRecord { node, .. }) if node != me => {
                executed.after(handover_wait(shared.config.lease))
            }
            _ => executed,
        };
        Ok(Self { generation, state: Arc::new(state), exists, lease, acks_not_before })
    }

    /// Runs one call. Returns its result and, when the activation must end, why.
    async fn call(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        action: &str,
        args_json: String,
        input_json: Option<String>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let Some(handler) = kind.actions.handler(action) else {
            return (Err(CallError::NotFound(format!("actor {} has no action {action:?}", id.name()))), None);
        };
        // A call with an input that creates the actor stores the created state with its write.
        let mut created = None;
        if !self.exists {
            let given = input_json.is_some();
            match create::<A>(kind, id, input_json) {
                Ok(state) => {
                    let state = Arc::new(state);
                    if given {
                        created = Some(state.clone());
                    }
                    self.state = state;
                }
                Err(e) => return (Err(e), None),
            }
        }
        let mut ctx =
            Context::<A>::new(id.clone(), self.state.clone(), shared.storage.clone(), shared.client());
        let ran = AssertUnwindSafe(handler(&kind.actor, args_json, &mut ctx)).catch_unwind().await;
        let result_json = match ran {
            Ok(Ok(json)) => json,
            Ok(Err(e)) => return (Err(e), None),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(actor = %id, action, panic = %what, "an action panicked; its changes were discarded");
                return (
                    Err(CallError::Internal(format!(
                        "action {action} of actor {id} panicked ({what}); its changes were discarded"
                    ))),
                    None,
                );
            }
        };
        let mut staged = ctx.into_staged();
        if staged.state.is_none() {
            staged.state = created;
        }
        if let Some(e) = staged.emit_error {
            return (Err(CallError::Internal(e)), None);
        }
        let reply = Reply { result_json, generation: self.generation, served_by: shared.config.node_id };

        if staged.is_read_only() {
            if !self.lease.is_valid(shared.moment(Instant::now())) {
                let sent = Instant::now();
                let op = Op::Actor(ActorOp::Confirm { generation: self.generation });
                match shared.driver.execute(id.interference_key(), op.encode()).await {
                    Ok(Outcome::Actor(ActorOutcome::Confirmed)) => {
                        self.lease.confirmed(shared.moment(sent), shared.config.lease)
                    }
                    Ok(Outcome::Actor(ActorOutcome::Fenced { current })) => return self.fenced(id, current),
                    Ok(other) => {
                        let why = format!("ownership check of {id} answered {other:?}");
                        return (Err(CallError::Internal(why.clone())), Some(why));
                    }
                    // Nothing was written: the read is simply not answered.
                    Err(e) => {
                        return (
                            Err(CallError::Retry(format!("could not confirm ownership of actor {id}: {e}"))),
                            None,
                        );
                    }
                }
            }
            shared.hub.publish(id, staged.events);
            return (Ok(reply), None);
        }

        let state = match &staged.state {
            None => None,
            Some(state) => match serde_json::to_vec(&**state) {
                Ok(bytes) => Some(Bytes::from(bytes)),
                Err(e) => {
                    return (
                        Err(CallError::Internal(format!("the state of actor {id} does not encode: {e}"))),
                        None,
                    );
                }
            },
        };
        let bytes = state.as_ref().map_or(0, Bytes::len)
            + staged.kv_deletes.iter().map(Bytes::len).sum::<usize>()
            + staged.kv_puts.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if bytes > WRITE_BYTES_MAX {
            return (
                Err(CallError::Rejected(format!(
                    "action {action} of actor {id} wrote {bytes} bytes, more than the {WRITE_BYTES_MAX} one \
                     action may write; nothing was changed"
                ))),
                None,
            );
        }
        let op = ActorOp::Write {
            generation: self.generation,
            state,
            kv_deletes: staged.kv_deletes,
            kv_puts: staged.kv_puts,
        };
        let sent = Instant::now();
        match shared.driver.execute(id.interference_key(), Op::Actor(op).encode()).await {
            Ok(Outcome::Actor(ActorOutcome::Written)) => {
                self.lease.confirmed(shared.moment(sent), shared.config.lease);
                if let Some(state) = staged.state {
                    self.state = state;
                    self.exists = true;
                }
                tokio::time::sleep_until(self.acks_not_before.instant(shared.started).into()).await;
                shared.hub.publish(id, staged.events);
                (Ok(reply), None)
            }
            Ok(Outcome::Actor(ActorOutcome::Fenced { current })) => self.fenced(id, current),
            Ok(other) => {
                let why = format!("write of {id} answered {other:?}");
                (Err(CallError::Internal(why.clone())), Some(why))
            }
            Err(ProposeError::Unavailable(why)) => (
                Err(CallError::Unavailable(format!(
                    "{why} (action {action} of actor {id}: its write may or may not be applied)"
                ))),
                Some(format!("the outcome of a write of actor {id} is unknown; it will be reloaded")),
            ),
            // Refused before it was proposed: nothing was written and the state is as it was.
            Err(ProposeError::Overloaded(why)) => {
                (Err(CallError::Overloaded(format!("{why} (action {action} of actor {id})"))), None)
            }
            Err(ProposeError::Aborted(why)) => (
                Err(CallError::Retry(format!("{why} (action {action} of actor {id})"))),
                Some(format!("a write of actor {id} was aborted by recovery; it will be reloaded")),
            ),
            Err(ProposeError::Invalid(why) | ProposeError::Internal(why)) => {
                let why = format!("write of actor {id} failed: {why}");
                (Err(CallError::Internal(why.clone())), Some(why))
            }
        }
    }

    fn fenced(
        &self,
        id: &ActorId,
        current: Option<OwnerRecord>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let reason = match current {
            Some(owner) => format!(
                "actor {id} was activated on node {} (generation {}); this activation (generation {}) is \
                 deposed, retry",
                owner.node, owner.generation, self.generation
            ),
            None => format!("actor {id} has no owner record; retry"),
        };
        metrics::counter!("mortar_node_actor_fenced_total").increment(1);
        (Err(CallError::Retry(reason.clone())), Some(reason))
    }
}

/// The state of a new actor `id`, created from `input_json` (JSON `null` when absent).
fn create<A: Actor>(kind: &Kind<A>, id: &ActorId, input_json: Option<String>) -> Result<A::State, CallError> {
    let given = input_json.is_some();
    let json = input_json.as_deref().unwrap_or("null");
    let input: A::Input = super::args::from_str_strict(json).map_err(|e| {
        if given {
            CallError::InvalidArgument(format!("the input to create actor {id} is not valid: {e}"))
        } else {
            CallError::NotFound(format!(
                "actor {id} does not exist yet and creating it takes an input ({e}): call it with one \
                 (`mortar call --input JSON`, `ActorRef::with_input`)"
            ))
        }
    })?;
    kind.actor.create(id.key(), input).map_err(|e| {
        let message = format!("creating actor {id}: {}", e.message);
        match e.kind {
            ActorErrorKind::Rejected => CallError::Rejected(message),
            ActorErrorKind::InvalidArgument => CallError::InvalidArgument(message),
            ActorErrorKind::Internal => CallError::Internal(message),
        }
    })
}
