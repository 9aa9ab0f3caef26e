//! One activation: an active actor's in-memory state, and the task that runs its calls one at a
//! time while it has any.
//!
//! 1. **Activate**: commit [`ActorOp::Take`] on the actor's interference key (after an
//!    [`ActorOp::Fence`] on the previous owner's node lease, if that was another node). Once it has
//!    executed here, this replica holds every committed write of the actor (the activation
//!    barrier), and the outcome carries the stored state: no remote read.
//! 2. **Serve** the calls queued in the runtime's table, in order. An action that changed nothing
//!    is answered from memory while the [`Lease`] or the node lease holds, after a
//!    [`ActorOp::Confirm`] otherwise.
//!    An action that changed the state or the key-value space is committed as one
//!    [`ActorOp::Write`] with this activation's generation; the caller hears the answer once it
//!    is committed, durable and executed, and the action's events are published then. When no
//!    call waits, the activation is parked in the table and its task ends; the next call resumes
//!    it in a new task.
//! 3. **End** when the runtime removes it (the actor moved, or it slept after
//!    [`RuntimeConfig::idle_timeout`](super::RuntimeConfig) without calls), when a write is fenced
//!    (another node activated the actor: this one is deposed) or when a write's outcome is
//!    unknown (the next activation reloads whatever was committed).

//!
//! Besides actions, the serial line of calls carries the runtime's own work, each committed the
//! same way: sends to the actor's durable queues, alarms that came due (run the alarm's action
//! and remove the alarm in one write), run-loop turns (a message, what the loop changed while
//! handling it, and the message's removal, in one write), destruction, and going to sleep (the
//! sleep hook).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt as _;
use tokio::sync::{oneshot, watch};

use super::context::{
    Conn, ConnId, Conns, Context, ContextParts, Message, RunContext, Staged, TurnDone, TurnGrant, TurnLine,
    TurnRequest, unix_ms,
};
use super::error::CallError;
use super::keys::{self, ActorId};
use super::lease::{Lease, Moment, handover_wait};
use super::op::{
    ActorOp, ActorOutcome, AlarmRecord, Commit, OwnerRecord, QueueMeta, QueuedMessage, read_fence,
};
use super::registry::{ActorKind, Kind, call_error};
use super::runtime::{
    Call, CallKind, Parked, QUEUE_LENGTH_MAX, RUN_LOOP_ABORT_GRACE, RUN_LOOP_RESTART_DELAY, Reply, Shared,
    WRITE_BYTES_MAX,
};
use super::sdk::Actor;
use crate::driver::ProposeError;
use crate::state_machine::{Op, Outcome};

/// The in-memory side of an active actor: what an idle actor keeps (parked in the runtime's
/// table, with no task). Every idle actor keeps one, so what the task that runs it can be handed
/// (its id, the key of its table entry; its actor type, from the registry) is not in it.
struct Activation<A: Actor> {
    generation: u64,
    /// The state, `None` while a call has it ([`Activation::context`]) or after a call that
    /// changed it failed (it is then read again from this node's store).
    state: Option<Arc<A::State>>,
    /// Whether the state is stored: the actor exists. Until then the call that comes first
    /// creates it ([`Actor::create`], [`Actor::on_create`]) and stores what it created.
    exists: bool,
    /// Whether the actor was destroyed: only a call with an input creates it again.
    destroyed: bool,
    /// The sequence number of the next alarm id (`<generation>.<seq>`).
    next_alarm_seq: u32,
    lease: Lease,
    /// Writes are acknowledged no earlier than this (see [`handover_wait`]).
    acks_not_before: Moment,
    vars: Arc<A::Vars>,
    /// What only some activations need (a run loop, waiters, connections), allocated when they
    /// do.
    local: Option<Box<Local<A>>>,
}

/// The parts of an activation that only some need.
struct Local<A: Actor> {
    /// The connections to the actor (see [`Activation::connect`]).
    conns: Conns<A>,
    /// Dropped (with the activation) to tell the run loop to stop.
    run_abort: Option<watch::Sender<()>>,
    /// Run-loop turn requests that found their queue empty, by queue: told when a message arrives.
    waiting: Vec<(String, oneshot::Sender<()>)>,
    /// Senders waiting for their message (queue, sequence number) to be handled.
    handled: Vec<(String, u64, oneshot::Sender<()>)>,
}

impl<A: Actor> Default for Local<A> {
    fn default() -> Self {
        Self { conns: Conns::default(), run_abort: None, waiting: Vec::new(), handled: Vec::new() }
    }
}

/// An actor type of the usual shape, to size an idle activation without the runtime naming an
/// application's actor: an activation holds its state behind an `Arc`, so every actor's
/// activation has this size.
enum SizeProbe {}

impl Actor for SizeProbe {
    const NAME: &'static str = "size-probe";
    type State = i64;
    type Input = ();
    type Actions = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
}

const _: () = assert!(std::mem::size_of::<Activation<SizeProbe>>() <= 56, "an idle actor's activation grew");

/// Changes the runtime adds to a write, besides what the actor's code staged.
#[derive(Default)]
struct Extra {
    queue_writes: Vec<(Bytes, Option<Bytes>)>,
    fired: Option<String>,
    recreate: bool,
}

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

    fn pinned(&self) -> bool {
        self.local.as_ref().is_some_and(|l| !l.conns.is_empty())
    }
}

/// Runs activation `id` (its key in the runtime's table): activates the actor, then serves its
/// calls (see the module docs).
pub(crate) async fn run<A: Actor>(kind: Arc<Kind<A>>, shared: Arc<Shared>, id: ActorId) {
    let activate = async {
        let started = Instant::now();
        // Boxed, like each call below, so that the task stays small (tasks come and go with
        // calls; a large one fragments the heap that idle activations live in).
        match Box::pin(Activation::<A>::activate(&kind, &shared, &id)).await {
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
/// The task runs "in" its node, for the errors of the actor's code to name it
/// ([`super::error::actor_internal`]).
async fn guarded(shared: Arc<Shared>, id: ActorId, task: impl Future<Output = ()>) {
    let task = super::error::in_node(shared.config.node_id, task);
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
        activation.start_run_loop(&kind, &shared, &id);
        let call;
        (call, activation) = match shared.next_call(&id, activation, ended_call) {
            Some(next) => next,
            // Parked until the next call, or removed (the actor moved).
            None => return,
        };
        let Call { action, args_json, input_json, reply, kind: what } = *call;
        let end = match what {
            CallKind::Sleep => {
                if Box::pin(activation.sleep(&kind, &shared, &id)).await {
                    return; // the activation is dropped: its run loop is told to stop
                }
                ended_call = false;
                continue;
            }
            CallKind::Turn(request) => {
                let Ok(request) = request.downcast::<TurnRequest<A>>() else {
                    unreachable!("a turn request of another actor type reached actor {id}");
                };
                Box::pin(activation.turn(&kind, &shared, &id, *request)).await
            }
            what => {
                let started = Instant::now();
                let is_action = matches!(what, CallKind::Action { .. });
                let (result, end) =
                    Box::pin(activation.call(&kind, &shared, &id, what, &action, args_json, input_json))
                        .await;
                if is_action {
                    let outcome = match &result {
                        Ok(_) => "ok",
                        Err(e) if e.is_retry_safe() => "retry",
                        Err(CallError::Unavailable(_)) => "unavailable",
                        Err(_) => "error",
                    };
                    metrics::histogram!("mortar_node_actor_call_seconds", "actor" => A::NAME, "outcome" => outcome)
                        .record(started.elapsed().as_secs_f64());
                }
                let _ = reply.send(result);
                end
            }
        };
        if let Some(reason) = end {
            tracing::info!(actor = %id, generation = activation.generation, reason = %reason, "actor deactivated");
            shared.end(&id, &CallError::Retry(reason.clone()));
            shared.hub.close(&id, &reason);
            return;
        }
        ended_call = true;
    }
}

/// Delivers a run loop's turn requests to the activation that started it.
struct Line {
    shared: Weak<Shared>,
    /// A clone of the activation's key in the runtime's table.
    id: ActorId,
}

impl<A: Actor> TurnLine<A> for Line {
    fn request(&self, request: TurnRequest<A>) -> bool {
        let Some(shared) = self.shared.upgrade() else { return false };
        let (reply, _) = oneshot::channel();
        let call = Box::new(Call {
            action: String::new(),
            args_json: String::new(),
            input_json: None,
            reply,
            kind: CallKind::Turn(Box::new(request)),
        });
        shared.deliver_exact(&self.id, call)
    }
}

/// Resolves when `abort`'s sender is dropped.
async fn closed(abort: &mut watch::Receiver<()>) {
    while abort.changed().await.is_ok() {}
}

impl<A: Actor> Activation<A> {
    async fn activate(kind: &Kind<A>, shared: &Shared, id: &ActorId) -> Result<Self, CallError> {
        let me = shared.config.node_id;
        let key = id.interference_key();
        // The owner this node's replica knows of: fenced first if it is another node, and the
        // take applies only if it is still the owner. A replica that lags learns the owner from
        // the refusal and tries again with it.
        let mut expect = stored_owner(shared, &key).map_err(CallError::Internal)?;
        let mut fence_bound = None;
        let mut attempt = 1;
        let (sent, outcome) = loop {
            if let Some(OwnerRecord { node, generation }) = expect
                && node != me
            {
                fence_bound = Some(fence(shared, id, &key, node, generation).await?);
            }
            let sent = Instant::now();
            let op = Op::Actor(ActorOp::Take { node: me, expect });
            let outcome = shared.driver.execute(key.clone(), op.encode()).await;
            match outcome {
                Ok(Outcome::Actor(ActorOutcome::Fenced { current })) if attempt < TAKE_ATTEMPTS_MAX => {
                    expect = current;
                    fence_bound = None;
                    attempt += 1;
                }
                Ok(Outcome::Actor(ActorOutcome::Fenced { current })) => {
                    return Err(CallError::Retry(format!(
                        "could not activate actor {id}: its owner changed {TAKE_ATTEMPTS_MAX} times while \
                         this node took it over (now {current:?})"
                    )));
                }
                outcome => break (sent, outcome),
            }
        };
        let executed = Instant::now();
        let (generation, previous, stored, destroyed, last_op_bound) = match outcome {
            Ok(Outcome::Actor(ActorOutcome::Activated {
                generation,
                previous,
                state,
                destroyed,
                last_op_bound,
            })) => (generation, previous, state, destroyed, last_op_bound),
            Ok(other) => return Err(CallError::Internal(format!("activation of {id} answered {other:?}"))),
            Err(e) => return Err(propose_failed(e, format!("could not activate actor {id}"))),
        };
        assert_eq!(
            previous, expect,
            "a take applied over another owner than the expected one: actor={id} generation={generation}"
        );
        let exists = stored.is_some();
        let state = decode_state::<A>(id, stored.as_deref())?;
        let mut lease = Lease::default();
        lease.confirmed(shared.moment(sent), shared.config.lease);
        // Another node may still hold a read lease, granted by a command it sent before that
        // command executed here, at or before the last op on the actor executed here before our
        // activation (`last_op_bound` is no earlier than that; without it, the activation
        // itself): acknowledge no write before that lease has surely expired. An owner that
        // died went quiet when it died: by the time gossip has said so, its lease is long over.
        let since = last_op_bound.map_or(executed, |at| at.clamp(shared.started, executed));
        let executed = shared.moment(executed);
        let acks_not_before = match previous {
            Some(OwnerRecord { node, .. }) if node != me => {
                // The previous owner's node lease likewise, from its last renewal ordered before
                // our fence (see [`lease`](super::lease)).
                let fenced = fence_bound.expect("another node's ownership is fenced before it is taken");
                let since = since.max(fenced);
                shared.moment(since).after(handover_wait(shared.config.lease))
            }
            _ => executed,
        };
        let mut activation = Self {
            generation,
            state: Some(Arc::new(state)),
            exists,
            destroyed,
            next_alarm_seq: 0,
            lease,
            acks_not_before,
            vars: kind.share_vars(A::Vars::default()),
            local: None,
        };
        if exists {
            let ctx = activation.context(shared, id)?;
            let vars = hook("on_wake", id, kind.actor.on_wake(&ctx)).await;
            activation.give_back(ctx);
            activation.vars = kind.share_vars(vars?);
        }
        Ok(activation)
    }

    /// The context of a call: the activation lends it its state, and so the only reference to it,
    /// for the call to change it in place (a state need not be `Clone`, and no call copies it).
    /// The state comes back with what the call staged ([`Activation::staged`]) or, unchanged,
    /// through [`Activation::give_back`]. When a call that changed it fails, it does not come
    /// back: the next context reads it from this node's store, which holds what this
    /// activation last committed (the activation is the actor's only writer, and every write
    /// of it is applied here before it is acknowledged).
    fn context(&mut self, shared: &Shared, id: &ActorId) -> Result<Context<A>, CallError> {
        let state = self.take_state(shared, id)?;
        Ok(Context::new(id.clone(), state, self.parts(shared)))
    }

    fn take_state(&mut self, shared: &Shared, id: &ActorId) -> Result<Arc<A::State>, CallError> {
        if let Some(state) = self.state.take() {
            return Ok(state);
        }
        metrics::counter!("mortar_node_actor_state_reloads_total").increment(1);
        let stored = shared
            .storage
            .get_kv(&keys::state_key(&id.interference_key()))
            .map_err(|e| CallError::Internal(format!("could not read the state of actor {id} again: {e}")))?;
        let stored = if self.exists { stored } else { None };
        Ok(Arc::new(decode_state::<A>(id, stored.as_deref())?))
    }

    /// The state, read again if a failed call took it.
    fn state(&mut self, shared: &Shared, id: &ActorId) -> Result<&A::State, CallError> {
        let state = self.take_state(shared, id)?;
        Ok(self.state.insert(state))
    }

    /// A context with the state as it was before `failed` (a call that failed) changed it.
    fn fresh_context(
        &mut self,
        failed: Context<A>,
        shared: &Shared,
        id: &ActorId,
    ) -> Result<Context<A>, CallError> {
        self.give_back(failed);
        self.context(shared, id)
    }

    /// Takes back the state lent to `ctx` if the call did not change it.
    fn give_back(&mut self, ctx: Context<A>) {
        if let Some(state) = ctx.into_unchanged_state() {
            self.state = Some(state);
        }
    }

    /// What `ctx` staged; the state it did not change is back in the activation.
    fn staged(&mut self, ctx: Context<A>) -> Staged<A::State> {
        let mut staged = ctx.into_staged();
        if let Some(kept) = staged.kept.take() {
            self.state = Some(kept);
        }
        staged
    }

    fn parts(&self, shared: &Shared) -> ContextParts<A> {
        ContextParts {
            storage: shared.storage.clone(),
            client: shared.client(),
            vars: self.vars.clone(),
            generation: self.generation,
            next_alarm_seq: self.next_alarm_seq,
        }
    }

    fn local(&mut self) -> &mut Local<A> {
        self.local.get_or_insert_with(Box::default)
    }

    /// Starts the run loop, if the actor type has one, the actor exists and it is not running.
    fn start_run_loop(&mut self, kind: &Arc<Kind<A>>, shared: &Arc<Shared>, id: &ActorId) {
        let Some(run) = kind.work.run() else { return };
        if !self.exists || self.destroyed || self.local.as_ref().is_some_and(|l| l.run_abort.is_some()) {
            return;
        }
        let (abort_tx, abort) = watch::channel(());
        self.local().run_abort = Some(abort_tx);
        let line: Arc<dyn TurnLine<A>> = Arc::new(Line { shared: Arc::downgrade(shared), id: id.clone() });
        let (kind, id, vars) = (kind.clone(), id.clone(), self.vars.clone());
        tokio::spawn(async move {
            loop {
                let ctx = RunContext::new(id.clone(), line.clone(), abort.clone(), vars.clone());
                let running = AssertUnwindSafe(run(kind.clone(), ctx)).catch_unwind();
                tokio::pin!(running);
                let mut told = abort.clone();
                let ended = tokio::select! {
                    ended = &mut running => Some(ended),
                    () = closed(&mut told) => None,
                };
                let ended = match ended {
                    Some(ended) => ended,
                    // Told to stop: a grace period to do so, then dropped.
                    None => match tokio::time::timeout(RUN_LOOP_ABORT_GRACE, &mut running).await {
                        Ok(ended) => ended,
                        Err(_) => {
                            tracing::debug!(actor = %id, "run loop dropped: it did not stop when told");
                            return;
                        }
                    },
                };
                match ended {
                    Ok((mut ctx, Ok(()))) => {
                        if let Err(e) = ctx.commit().await {
                            tracing::warn!(actor = %id, error = %e, "the run loop's last turn did not commit");
                        }
                        return;
                    }
                    Ok((_, Err(e))) => {
                        tracing::warn!(actor = %id, error = %e, "run loop failed; its open turn is discarded")
                    }
                    Err(panic) => {
                        tracing::error!(actor = %id, panic = %panic_text(&panic), "run loop panicked; its open turn is discarded")
                    }
                }
                let mut told = abort.clone();
                tokio::select! {
                    () = tokio::time::sleep(RUN_LOOP_RESTART_DELAY) => {}
                    () = closed(&mut told) => return,
                }
            }
        });
    }

    /// Runs one call (an action, a send, a fired alarm, a destruction or a wake). Returns its
    /// result and, when the activation must end, why.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        what: CallKind,
        action: &str,
        args_json: String,
        input_json: Option<String>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let generation = self.generation;
        let reply = |result_json: String| Reply { result_json, generation, served_by: shared.config.node_id };
        match what {
            CallKind::Action { conn } => {
                self.action(kind, shared, id, action, args_json, input_json, conn).await
            }
            CallKind::Connect { conn, params_json } => {
                self.connect(kind, shared, id, conn, &params_json, input_json).await
            }
            CallKind::Disconnect { conn } => self.disconnect(kind, shared, id, conn).await,
            CallKind::Wake => (Ok(reply("null".into())), None),
            CallKind::Exists => {
                let json =
                    serde_json::json!({ "exists": self.exists, "destroyed": self.destroyed && !self.exists });
                match self.confirm_lease(shared, id).await {
                    Ok(()) => (Ok(reply(json.to_string())), None),
                    Err(failed) => failed,
                }
            }
            CallKind::Create => {
                if self.exists {
                    return (Err(CallError::Rejected(format!("actor {id} exists already"))), None);
                }
                let input_json = Some(input_json.unwrap_or_else(|| "null".to_string()));
                let (ctx, extra) = match self.create(kind, shared, id, input_json).await {
                    Ok(created) => created,
                    Err(e) => return (Err(e), None),
                };
                let staged = self.staged(ctx);
                let (result, end) = self.commit(shared, id, staged, extra, "create").await;
                (result.map(|()| reply("null".into())), end)
            }
            CallKind::Fire { alarm } => self.fire(kind, shared, id, alarm).await,
            CallKind::Destroy => self.destroy(kind, shared, id).await,
            CallKind::Inspect { args_json, awake } => {
                let looked = super::inspect::look(self.view(kind, shared, id, awake), &args_json);
                match looked {
                    Ok(json) => match self.confirm_lease(shared, id).await {
                        Ok(()) => (Ok(reply(json)), None),
                        Err(failed) => failed,
                    },
                    Err(e) => (Err(e), None),
                }
            }
            CallKind::PatchState { state_json } => self.patch_state(shared, id, &state_json).await,
            CallKind::Send { queue, body_json, handled } => {
                self.send(kind, shared, id, queue, body_json, input_json, handled).await
            }
            CallKind::Turn(_) | CallKind::Sleep => unreachable!("served by serve"),
        }
    }

    /// The context of a call, creating the actor first when it does not exist: its state from
    /// `input_json` ([`Actor::create`]), its activation values ([`Actor::on_wake`]), then
    /// [`Actor::on_create`], whose changes join the call's write. The created state is stored
    /// when the call carries an input or when the hook or the call change anything; otherwise the
    /// next call creates it again (so a hook that changes nothing runs again).
    async fn create(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        input_json: Option<String>,
    ) -> Result<(Context<A>, Extra), CallError> {
        let mut extra = Extra::default();
        if self.exists {
            return Ok((self.context(shared, id)?, extra));
        }
        if self.destroyed {
            if input_json.is_none() {
                return Err(CallError::NotFound(format!(
                    "actor {id} was destroyed; a call with an input (`mortar call --input JSON`, \
                     `ActorRef::with_input`) creates it again"
                )));
            }
            extra.recreate = true;
        }
        let given = input_json.is_some();
        let state = Arc::new(create::<A>(kind, id, input_json)?);
        // The new actor's activation values, as at the activation of an existing one.
        let probe = Context::new(id.clone(), state, self.parts(shared));
        self.vars = kind.share_vars(hook("on_wake", id, kind.actor.on_wake(&probe)).await?);
        let state = probe.into_unchanged_state().expect("on_wake only reads the state");
        let mut ctx = Context::new(id.clone(), state, self.parts(shared));
        ctx.set_creating();
        if given {
            // Created with an input: stored whatever the call does.
            ctx.state_mut();
        }
        hook("on_create", id, kind.actor.on_create(&mut ctx)).await?;
        Ok((ctx, extra))
    }

    #[allow(clippy::too_many_arguments)]
    async fn action(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        action: &str,
        args_json: String,
        input_json: Option<String>,
        conn: Option<ConnId>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let Some(handler) = kind.handlers.get(action) else {
            return (Err(CallError::NotFound(format!("actor {} has no action {action:?}", id.name()))), None);
        };
        if let Some(conn) = conn
            && !self.local.as_ref().is_some_and(|l| l.conns.contains_key(&conn))
        {
            return (
                Err(CallError::Retry(format!(
                    "connection {conn} is not connected to this activation of actor {id}; connect again"
                ))),
                None,
            );
        }
        let (mut ctx, extra) = match self.create(kind, shared, id, input_json).await {
            Ok(created) => created,
            Err(e) => return (Err(e), None),
        };
        if let Some(local) = self.local.as_mut() {
            ctx.attach_conns(std::mem::take(&mut local.conns), conn);
        }
        let ran = AssertUnwindSafe(handler(&kind.actor, args_json, &mut ctx)).catch_unwind().await;
        if let Some(local) = self.local.as_mut() {
            local.conns = ctx.detach_conns();
        }
        let result_json = match ran {
            Ok(Ok(json)) => json,
            Ok(Err(e)) => {
                self.give_back(ctx);
                return (Err(e), None);
            }
            Err(panic) => {
                self.give_back(ctx);
                // Logged with an error id, the caller told only the id.
                let e = super::error::actor_internal(
                    &format!("action {action} of actor {id}"),
                    &format!("panicked ({}); its changes were discarded", panic_text(&panic)),
                );
                return (Err(e), None);
            }
        };
        if let Err(e) = self.before_destroy(kind, id, &mut ctx).await {
            self.give_back(ctx);
            return (Err(e), None);
        }
        let staged = self.staged(ctx);
        if let Some(e) = staged.emit_error {
            return (Err(CallError::Internal(e)), None);
        }
        let reply = Reply { result_json, generation: self.generation, served_by: shared.config.node_id };

        if staged.is_read_only() && !extra.recreate {
            if let Err(failed) = self.confirm_lease(shared, id).await {
                return failed;
            }
            shared.hub.publish(id, staged.events, staged.conn_messages);
            return (Ok(reply), None);
        }
        let destroy = staged.destroy;
        let (result, end) = self.commit(shared, id, staged, extra, action).await;
        match result {
            Ok(()) if destroy => (Ok(reply), Some(format!("actor {id} was destroyed"))),
            Ok(()) => (Ok(reply), end),
            Err(e) => (Err(e), end),
        }
    }

    /// Connects `conn`: decodes its params, creates the actor if needed, runs
    /// [`Actor::on_before_connect`], [`Actor::create_conn_state`] and [`Actor::on_connect`], and
    /// commits what they changed like an action's write. The connection counts once that is done;
    /// any failure refuses it.
    async fn connect(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        conn: ConnId,
        params_json: &str,
        input_json: Option<String>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let json = if params_json.trim().is_empty() { "null" } else { params_json };
        let params: A::ConnParams = match super::args::from_str_strict(json) {
            Ok(params) => params,
            Err(e) => {
                return (
                    Err(CallError::InvalidArgument(format!(
                        "the connection params are not what actor {} takes: {e}",
                        id.name()
                    ))),
                    None,
                );
            }
        };
        let (mut ctx, extra) = match self.create(kind, shared, id, input_json).await {
            Ok(created) => created,
            Err(e) => return (Err(e), None),
        };
        // The hooks see the connections there are; on_connect sees the new one too.
        let conns = self.local.as_mut().map(|l| std::mem::take(&mut l.conns)).unwrap_or_default();
        ctx.attach_conns(conns, None);
        let admitted = match hook("on_before_connect", id, kind.actor.on_before_connect(&ctx, &params)).await
        {
            Ok(()) => hook("create_conn_state", id, kind.actor.create_conn_state(&ctx, &params)).await,
            Err(e) => Err(e),
        };
        let connected = match admitted {
            Ok(state) => {
                ctx.add_conn(Conn::new(conn, params, state));
                hook("on_connect", id, kind.actor.on_connect(&mut ctx)).await
            }
            Err(e) => Err(e),
        };
        self.local().conns = ctx.detach_conns();
        let refuse = |activation: &mut Self, e: CallError| {
            activation.local().conns.remove(&conn);
            (Err(e), None)
        };
        if let Err(e) = connected {
            self.give_back(ctx);
            return refuse(self, e);
        }
        let staged = self.staged(ctx);
        let reply = Reply {
            result_json: conn.to_string(),
            generation: self.generation,
            served_by: shared.config.node_id,
        };
        if staged.is_read_only() && !extra.recreate {
            if let Some(e) = staged.emit_error {
                return refuse(self, CallError::Internal(e));
            }
            if let Err((result, end)) = self.confirm_lease(shared, id).await {
                self.local().conns.remove(&conn);
                return (result, end);
            }
            shared.hub.publish(id, staged.events, staged.conn_messages);
            return (Ok(reply), None);
        }
        let (result, end) = self.commit(shared, id, staged, extra, "on_connect").await;
        match result {
            Ok(()) => (Ok(reply), end),
            Err(e) => {
                self.local().conns.remove(&conn);
                (Err(e), end)
            }
        }
    }

    /// Ends connection `conn` (if it is still here): runs [`Actor::on_disconnect`] and commits
    /// what it changed. Nothing waits for the answer.
    async fn disconnect(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        conn: ConnId,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let reply = Reply {
            result_json: "null".into(),
            generation: self.generation,
            served_by: shared.config.node_id,
        };
        let Some(leaving) = self.local.as_mut().and_then(|l| l.conns.remove(&conn)) else {
            return (Ok(reply), None);
        };
        if self.destroyed {
            return (Ok(reply), None);
        }
        let mut ctx = match self.context(shared, id) {
            Ok(ctx) => ctx,
            Err(e) => return (Err(e), None),
        };
        let conns = self.local.as_mut().map(|l| std::mem::take(&mut l.conns)).unwrap_or_default();
        ctx.attach_conns(conns, None);
        ctx.set_leaving(leaving);
        let ran = hook("on_disconnect", id, kind.actor.on_disconnect(&mut ctx)).await;
        self.local().conns = ctx.detach_conns();
        if let Err(e) = ran {
            tracing::warn!(actor = %id, conn, error = %e, "on_disconnect failed; its changes are discarded");
            self.give_back(ctx);
            return (Ok(reply), None);
        }
        let staged = self.staged(ctx);
        if staged.is_read_only() {
            if (!staged.events.is_empty() || !staged.conn_messages.is_empty())
                && self.confirm_lease(shared, id).await.is_ok()
            {
                shared.hub.publish(id, staged.events, staged.conn_messages);
            }
            return (Ok(reply), None);
        }
        let (result, end) = self.commit(shared, id, staged, Extra::default(), "on_disconnect").await;
        if let Err(e) = result {
            tracing::warn!(actor = %id, conn, error = %e, "the write of on_disconnect failed");
        }
        (Ok(reply), end)
    }

    /// Makes sure this activation still owns the actor before a read is answered from memory:
    /// at once under the lease, else after an [`ActorOp::Confirm`]. The error is the call's
    /// answer (and, when the activation must end, why).
    async fn confirm_lease(
        &mut self,
        shared: &Shared,
        id: &ActorId,
    ) -> Result<(), (Result<Reply, CallError>, Option<String>)> {
        let now = shared.moment(Instant::now());
        if self.lease.is_valid(now) || self.under_node_lease(shared, id, now) {
            return Ok(());
        }
        metrics::counter!("mortar_node_actor_read_confirms_total").increment(1);
        let sent = Instant::now();
        let op = Op::Actor(ActorOp::Confirm { generation: self.generation });
        match shared.driver.execute(id.interference_key(), op.encode()).await {
            Ok(Outcome::Actor(ActorOutcome::Confirmed)) => {
                self.lease.confirmed(shared.moment(sent), shared.config.lease);
                Ok(())
            }
            Ok(Outcome::Actor(ActorOutcome::Fenced { current })) => Err(self.fenced(id, current)),
            Ok(other) => {
                let why = format!("ownership check of {id} answered {other:?}");
                Err((Err(CallError::Internal(why.clone())), Some(why)))
            }
            // Nothing was written: the read is simply not answered.
            Err(e) => {
                Err((Err(CallError::Retry(format!("could not confirm ownership of actor {id}: {e}"))), None))
            }
        }
    }

    /// Whether the node lease lets this activation answer a read at `now`: it holds, and no
    /// fence on this node covers this generation (read from this node's store, where the driver
    /// wrote every fence ordered before the renewal that granted the lease).
    fn under_node_lease(&self, shared: &Shared, id: &ActorId, now: Moment) -> bool {
        if !shared.config.node_lease || !shared.node_lease.is_valid(now) {
            return false;
        }
        let fence_key = keys::fence_key(shared.config.node_id, &id.interference_key());
        match shared.storage.get_kv(&fence_key) {
            Ok(record) => read_fence(record.as_deref()) < self.generation,
            // Confirm instead: the quorum answers what the store could not.
            Err(e) => {
                tracing::warn!(actor = %id, error = %e, "could not read this node's fence; confirming instead");
                false
            }
        }
    }

    /// What the inspector sees of this activation.
    fn view<'a>(
        &'a mut self,
        kind: &'a Kind<A>,
        shared: &'a Shared,
        id: &'a ActorId,
        awake: bool,
    ) -> super::inspect::View<'a> {
        let (calls, waiting) = shared.calls_of(id);
        let state_json = self.state(shared, id).and_then(|state| {
            serde_json::to_string(state)
                .map_err(|e| CallError::Internal(format!("the state of actor {id} does not encode: {e}")))
        });
        super::inspect::View {
            id,
            kind,
            storage: shared.storage.as_ref(),
            node: shared.config.node_id,
            generation: self.generation,
            exists: self.exists,
            destroyed: self.destroyed,
            awake,
            state_json,
            calls,
            waiting,
            subscribers: shared.hub.subscribers(id),
            run_loop: self.local.as_ref().is_some_and(|l| l.run_abort.is_some()),
            connections: self.local.as_ref().map_or_else(Vec::new, |l| {
                l.conns
                    .values()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id(),
                            "params": serde_json::to_value(c.params()).unwrap_or_default(),
                            "state": serde_json::to_value(c.state()).unwrap_or_default(),
                        })
                    })
                    .collect()
            }),
        }
    }

    /// Replaces the state with `state_json` (which must decode as the actor's state) in one
    /// fenced write, between two calls: no update of a concurrent action is lost.
    async fn patch_state(
        &mut self,
        shared: &Shared,
        id: &ActorId,
        state_json: &str,
    ) -> (Result<Reply, CallError>, Option<String>) {
        if self.destroyed && !self.exists {
            return (Err(CallError::NotFound(format!("actor {id} was destroyed"))), None);
        }
        let state: A::State = match super::args::from_str_strict(state_json) {
            Ok(state) => state,
            Err(e) => {
                return (
                    Err(CallError::InvalidArgument(format!(
                        "the patch is not a state of actor {} ({}): {e}",
                        id.name(),
                        std::any::type_name::<A::State>()
                    ))),
                    None,
                );
            }
        };
        let mut ctx = match self.context(shared, id) {
            Ok(ctx) => ctx,
            Err(e) => return (Err(e), None),
        };
        *ctx.state_mut() = state;
        let staged = self.staged(ctx);
        let (result, end) = self.commit(shared, id, staged, Extra::default(), "state patch").await;
        let reply = Reply {
            result_json: "null".into(),
            generation: self.generation,
            served_by: shared.config.node_id,
        };
        (result.map(|()| reply), end)
    }

    /// Runs [`Actor::on_destroy`] when the call destroys the actor.
    async fn before_destroy(
        &self,
        kind: &Kind<A>,
        id: &ActorId,
        ctx: &mut Context<A>,
    ) -> Result<(), CallError> {
        if !ctx.destroying() {
            return Ok(());
        }
        hook("on_destroy", id, kind.actor.on_destroy(ctx)).await
    }

    async fn destroy(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let reply = Reply {
            result_json: "null".into(),
            generation: self.generation,
            served_by: shared.config.node_id,
        };
        if self.destroyed && !self.exists {
            return (Ok(reply), None);
        }
        let mut ctx = match self.context(shared, id) {
            Ok(ctx) => ctx,
            Err(e) => return (Err(e), None),
        };
        ctx.destroy();
        if let Err(e) = self.before_destroy(kind, id, &mut ctx).await {
            self.give_back(ctx);
            return (Err(e), None);
        }
        let staged = self.staged(ctx);
        match self.commit(shared, id, staged, Extra::default(), "destroy").await {
            (Ok(()), _) => (Ok(reply), Some(format!("actor {id} was destroyed"))),
            (Err(e), end) => (Err(e), end),
        }
    }

    /// Runs alarm `alarm`, if it is still pending and due: its action and its removal, in one
    /// write.
    async fn fire(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        alarm: String,
    ) -> (Result<Reply, CallError>, Option<String>) {
        let reply =
            |generation| Reply { result_json: "null".into(), generation, served_by: shared.config.node_id };
        let key = keys::alarm_key(&id.interference_key(), alarm.as_bytes());
        let stored = match shared.storage.get_kv(&key) {
            Ok(stored) => stored,
            Err(e) => {
                return (Err(CallError::Internal(format!("read alarm {alarm} of actor {id}: {e}"))), None);
            }
        };
        // Fired or cancelled already.
        let Some(stored) = stored else { return (Ok(reply(self.generation)), None) };
        let now = unix_ms();
        let mut ctx = match self.context(shared, id) {
            Ok(ctx) => ctx,
            Err(e) => return (Err(e), None),
        };
        let record = AlarmRecord::decode(&stored);
        let due_ms = record.as_ref().map_or(0, |r| r.due_ms);
        ctx.set_firing(alarm.clone(), due_ms);
        match record {
            Err(e) => {
                tracing::error!(actor = %id, alarm, error = %e, "alarm record does not decode; removed")
            }
            Ok(record) if record.due_ms > now => {
                self.give_back(ctx);
                return (Ok(reply(self.generation)), None);
            }
            Ok(record) => {
                let late_ms = now - record.due_ms;
                metrics::histogram!("mortar_node_actor_alarm_lateness_seconds")
                    .record(late_ms as f64 / 1000.0);
                if late_ms >= 1000 {
                    tracing::info!(actor = %id, alarm, late_ms, "alarm fires late: it came due while its actor's \
                        owner was down, the cluster was stopped, or the node was overloaded");
                }
                match kind.handlers.get(&record.action) {
                    None => tracing::error!(actor = %id, alarm, action = %record.action,
                        "alarm action no longer exists; the alarm is removed"),
                    Some(handler) => {
                        let ran = AssertUnwindSafe(handler(&kind.actor, record.args_json, &mut ctx))
                            .catch_unwind()
                            .await;
                        let failure = match ran {
                            Ok(Ok(_)) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(panic) => Some(format!("panicked ({})", panic_text(&panic))),
                        };
                        if let Some(failure) = failure {
                            metrics::counter!("mortar_node_actor_alarm_failed_total").increment(1);
                            tracing::warn!(actor = %id, alarm, action = %record.action, error = %failure,
                                "alarm action failed; its changes are discarded and the alarm removed");
                            ctx = match self.fresh_context(ctx, shared, id) {
                                Ok(ctx) => ctx,
                                Err(e) => return (Err(e), None),
                            };
                            ctx.set_firing(alarm.clone(), due_ms);
                        } else if let Err(e) = self.before_destroy(kind, id, &mut ctx).await {
                            tracing::warn!(actor = %id, alarm, error = %e, "alarm action's destroy refused");
                            ctx = match self.fresh_context(ctx, shared, id) {
                                Ok(ctx) => ctx,
                                Err(e) => return (Err(e), None),
                            };
                            ctx.set_firing(alarm.clone(), due_ms);
                        }
                    }
                }
            }
        }
        let staged = self.staged(ctx);
        let destroy = staged.destroy;
        let extra = Extra { fired: Some(alarm), ..Extra::default() };
        match self.commit(shared, id, staged, extra, "alarm").await {
            (Ok(()), _) if destroy => (Ok(reply(self.generation)), Some(format!("actor {id} was destroyed"))),
            (Ok(()), end) => {
                metrics::counter!("mortar_node_actor_alarms_fired_total").increment(1);
                (Ok(reply(self.generation)), end)
            }
            (Err(e), end) => (Err(e), end),
        }
    }

    /// Appends a message to queue `queue`.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        queue: String,
        body_json: String,
        input_json: Option<String>,
        handled: Option<oneshot::Sender<()>>,
    ) -> (Result<Reply, CallError>, Option<String>) {
        if !kind.work.has_queue(&queue) {
            return (
                Err(CallError::NotFound(format!(
                    "actor {} has no queue {queue:?}; its queues: {}",
                    id.name(),
                    kind.queue_names().join(", ")
                ))),
                None,
            );
        }
        let (mut ctx, mut extra) = match self.create(kind, shared, id, input_json).await {
            Ok(created) => created,
            Err(e) => return (Err(e), None),
        };
        if !self.exists {
            ctx.state_mut(); // a send creates the actor (its run loop starts once it exists)
        }
        let ikey = id.interference_key();
        let meta_key = keys::queue_meta_key(&ikey, &queue);
        let meta = match read_meta(shared, &meta_key) {
            Ok(meta) => meta,
            Err(e) => {
                self.give_back(ctx);
                return (Err(CallError::Internal(format!("queue {queue} of actor {id}: {e}"))), None);
            }
        };
        if meta.len >= QUEUE_LENGTH_MAX {
            self.give_back(ctx);
            return (
                Err(CallError::Overloaded(format!(
                    "queue {queue} of actor {id} is full ({} messages); retry once some are handled",
                    meta.len
                ))),
                None,
            );
        }
        let seq = meta.next_seq;
        let message = QueuedMessage { body_json, sent_ms: unix_ms() };
        extra.queue_writes.push((keys::queue_message_key(&ikey, &queue, seq), Some(message.encode())));
        let meta = QueueMeta { next_seq: seq + 1, len: meta.len + 1 };
        extra.queue_writes.push((meta_key, Some(meta.encode())));
        let staged = self.staged(ctx);
        let (result, end) = self.commit(shared, id, staged, extra, "send").await;
        if let Err(e) = result {
            return (Err(e), end);
        }
        metrics::counter!("mortar_node_actor_queue_sent_total").increment(1);
        let local = self.local();
        local.waiting.retain_mut(|(waiting_for, waiter)| {
            if *waiting_for != queue {
                return true;
            }
            let _ = std::mem::replace(waiter, oneshot::channel().0).send(());
            false
        });
        if let Some(handled) = handled {
            local.handled.push((queue, seq, handled));
        }
        let reply = Reply {
            result_json: seq.to_string(),
            generation: self.generation,
            served_by: shared.config.node_id,
        };
        (Ok(reply), end)
    }

    /// Serves a run loop's request for a turn: grants the head message of its queue and commits
    /// what the loop did with it, or tells the loop to wait. Returns why the activation must end.
    async fn turn(
        &mut self,
        kind: &Kind<A>,
        shared: &Shared,
        id: &ActorId,
        request: TurnRequest<A>,
    ) -> Option<String> {
        let TurnRequest { queue, grant } = request;
        if !kind.work.has_queue(&queue) {
            let _ = grant.send(TurnGrant::Undeclared);
            return None;
        }
        let ikey = id.interference_key();
        let head = match shared.storage.scan_kv_prefix(&keys::queue_prefix(&ikey, &queue), None, 1) {
            Ok(head) => head.into_iter().next(),
            Err(e) => {
                tracing::error!(actor = %id, queue, error = %e, "could not read the queue");
                return None; // the loop's grant is dropped: it stops
            }
        };
        let Some((key, value)) = head else {
            let (arrived, wait) = oneshot::channel();
            self.local().waiting.push((queue, arrived));
            let _ = grant.send(TurnGrant::Empty(wait));
            return None;
        };
        let seq = u64::from_be_bytes(key[key.len() - 8..].try_into().expect("a message key ends in 8 bytes"));
        let message = match QueuedMessage::decode(&value) {
            Ok(m) => Message { queue: queue.clone(), id: seq, body_json: m.body_json, sent_ms: m.sent_ms },
            Err(e) => {
                tracing::error!(actor = %id, queue, seq, error = %e, "queued message does not decode");
                return None;
            }
        };
        let (done, finished) = oneshot::channel();
        let ctx = match self.context(shared, id) {
            Ok(ctx) => Box::new(ctx),
            Err(e) => {
                tracing::error!(actor = %id, error = %e, "no turn for the run loop");
                return None; // the loop's grant is dropped: it stops
            }
        };
        if grant.send(TurnGrant::Message { ctx, message, done }).is_err() {
            return None; // the loop stopped
        }
        // The loop has the actor until it sends its context back (or drops it: nothing kept).
        let Ok(TurnDone { ctx, committed }) = finished.await else { return None };
        let staged = self.staged(*ctx);
        let destroy = staged.destroy;
        let meta_key = keys::queue_meta_key(&ikey, &queue);
        let meta = match read_meta(shared, &meta_key) {
            Ok(meta) => meta,
            Err(e) => {
                let _ = committed.send(Err(CallError::Internal(format!("queue {queue} of actor {id}: {e}"))));
                return None;
            }
        };
        let meta = QueueMeta { next_seq: meta.next_seq, len: meta.len.saturating_sub(1) };
        let extra =
            Extra { queue_writes: vec![(key, None), (meta_key, Some(meta.encode()))], ..Extra::default() };
        let (result, end) = self.commit(shared, id, staged, extra, "run-loop turn").await;
        let ok = result.is_ok();
        let _ = committed.send(result);
        if !ok {
            return end;
        }
        metrics::counter!("mortar_node_actor_queue_handled_total").increment(1);
        if let Some(local) = &mut self.local {
            local.handled.retain_mut(|(q, s, waiter)| {
                if *q != queue || *s != seq {
                    return true;
                }
                let _ = std::mem::replace(waiter, oneshot::channel().0).send(());
                false
            });
        }
        if destroy { Some(format!("actor {id} was destroyed")) } else { end }
    }

    /// Puts the actor to sleep, after its sleep hook, unless calls came meanwhile. Returns
    /// whether it sleeps (its entry is gone: drop the activation).
    async fn sleep(&mut self, kind: &Kind<A>, shared: &Shared, id: &ActorId) -> bool {
        if shared.has_calls(id) {
            return false;
        }
        if self.exists && !kind.sleeps_without_hook() {
            let mut ctx = match self.context(shared, id) {
                Ok(ctx) => ctx,
                Err(e) => {
                    tracing::warn!(actor = %id, error = %e, "the actor sleeps without its sleep hook");
                    return shared.finish_sleep(id);
                }
            };
            let ran = AssertUnwindSafe(kind.actor.on_sleep(&mut ctx)).catch_unwind().await;
            kind.learned_sleep_hook(ctx.default_hook);
            match ran {
                Ok(Ok(())) => {
                    let staged = self.staged(ctx);
                    if !staged.is_read_only() {
                        let (result, end) = self.commit(shared, id, staged, Extra::default(), "sleep").await;
                        if let Err(e) = result {
                            tracing::warn!(actor = %id, error = %e, "the sleep hook's write failed");
                        }
                        if let Some(reason) = end {
                            shared.end(id, &CallError::Retry(reason.clone()));
                            shared.hub.close(id, &reason);
                            return true;
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(actor = %id, error = %e, "on_sleep failed; its changes are discarded")
                }
                Err(panic) => tracing::error!(actor = %id, panic = %panic_text(&panic), "on_sleep panicked"),
            }
        }
        shared.finish_sleep(id)
    }

    /// Commits what a call staged, with the runtime's `extra` changes, as one write of this
    /// activation. Returns the result and, when the activation must end, why.
    async fn commit(
        &mut self,
        shared: &Shared,
        id: &ActorId,
        staged: Staged<A::State>,
        extra: Extra,
        what: &str,
    ) -> (Result<(), CallError>, Option<String>) {
        self.next_alarm_seq = staged.next_alarm_seq;
        if let Some(e) = staged.emit_error {
            return (Err(CallError::Internal(e)), None);
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
            + staged.kv_puts.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + staged
                .alarms_set
                .iter()
                .map(|(i, r)| i.len() + r.action.len() + r.args_json.len())
                .sum::<usize>()
            + extra
                .queue_writes
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
                .sum::<usize>();
        if bytes > WRITE_BYTES_MAX {
            return (
                Err(CallError::Rejected(format!(
                    "{what} of actor {id} wrote {bytes} bytes, more than the {WRITE_BYTES_MAX} one write may \
                     hold; nothing was changed"
                ))),
                None,
            );
        }
        let scheduled = !staged.alarms_set.is_empty();
        let plain = staged.alarms_set.is_empty()
            && staged.alarms_removed.is_empty()
            && !staged.destroy
            && extra.queue_writes.is_empty()
            && extra.fired.is_none()
            && !extra.recreate;
        let op = if plain {
            ActorOp::Write {
                generation: self.generation,
                state,
                kv_deletes: staged.kv_deletes,
                kv_puts: staged.kv_puts,
            }
        } else {
            let mut alarms_removed: Vec<Bytes> =
                staged.alarms_removed.into_iter().map(|id| Bytes::from(id.into_bytes())).collect();
            alarms_removed.extend(extra.fired.map(|id| Bytes::from(id.into_bytes())));
            ActorOp::Commit(Box::new(Commit {
                generation: self.generation,
                state,
                kv_deletes: staged.kv_deletes,
                kv_puts: staged.kv_puts,
                alarms_set: staged
                    .alarms_set
                    .into_iter()
                    .map(|(id, r)| (Bytes::from(id.into_bytes()), r))
                    .collect(),
                alarms_removed,
                queue_writes: extra.queue_writes,
                recreate: extra.recreate,
                destroy: staged.destroy,
            }))
        };
        let sent = Instant::now();
        match shared.driver.execute(id.interference_key(), Op::Actor(op).encode()).await {
            Ok(Outcome::Actor(ActorOutcome::Written)) => {
                self.lease.confirmed(shared.moment(sent), shared.config.lease);
                if staged.destroy {
                    self.exists = false;
                    self.destroyed = true;
                } else if let Some(state) = staged.state {
                    self.state = Some(state);
                    self.exists = true;
                    self.destroyed = false;
                }
                if scheduled {
                    shared.alarms_changed.notify_one();
                }
                tokio::time::sleep_until(self.acks_not_before.instant(shared.started).into()).await;
                shared.hub.publish(id, staged.events, staged.conn_messages);
                (Ok(()), None)
            }
            Ok(Outcome::Actor(ActorOutcome::Fenced { current })) => {
                let (result, end) = self.fenced(id, current);
                (result.map(|_| ()), end)
            }
            Ok(other) => {
                let why = format!("write of {id} answered {other:?}");
                (Err(CallError::Internal(why.clone())), Some(why))
            }
            Err(ProposeError::Unavailable(why)) => (
                Err(CallError::Unavailable(format!(
                    "{why} ({what} of actor {id}: its write may or may not be applied)"
                ))),
                Some(format!("the outcome of a write of actor {id} is unknown; it will be reloaded")),
            ),
            // Refused before it was proposed: nothing was written and the state is as it was.
            Err(ProposeError::Overloaded(why)) => {
                (Err(CallError::Overloaded(format!("{why} ({what} of actor {id})"))), None)
            }
            Err(ProposeError::Aborted(why)) => (
                Err(CallError::Retry(format!("{why} ({what} of actor {id})"))),
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

/// How many times an activation takes an actor over whose owner changed under it before it gives
/// up (each time it learns the new owner from the refusal).
const TAKE_ATTEMPTS_MAX: u32 = 4;

/// The owner record of the actor with interference key `key` in this node's store.
fn stored_owner(shared: &Shared, key: &[u8]) -> Result<Option<OwnerRecord>, String> {
    match shared.storage.get_kv(&keys::owner_key(key)) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => OwnerRecord::decode(&bytes)
            .map(Some)
            .map_err(|e| format!("the owner record of {key:?} does not decode: {e}")),
        Err(e) => Err(format!("could not read the owner record of {key:?}: {e}")),
    }
}

/// Fences node `node`'s reads of generations up to `generation` of actor `id` (interference key
/// `key`) under its node lease; answers an instant no earlier than the execution here of that
/// node's last renewal ordered before the fence.
async fn fence(
    shared: &Shared,
    id: &ActorId,
    key: &Bytes,
    node: u32,
    generation: u64,
) -> Result<Instant, CallError> {
    let op = Op::Actor(ActorOp::Fence { node, actor: key.clone(), generation });
    match shared.driver.execute(keys::node_lease_key(node), op.encode()).await {
        Ok(Outcome::Actor(ActorOutcome::FenceSet { last_op_bound })) => {
            let executed = Instant::now();
            // Without a bound (it is always set), the fence itself: no earlier than the truth.
            Ok(last_op_bound.map_or(executed, |at| at.clamp(shared.started, executed)))
        }
        Ok(other) => Err(CallError::Internal(format!("the fence of node {node} on {id} answered {other:?}"))),
        Err(e) => Err(propose_failed(e, format!("could not fence node {node}'s reads of actor {id}"))),
    }
}

/// The call error for a proposal of this runtime that failed: `what` it was for, and why.
fn propose_failed(error: ProposeError, what: String) -> CallError {
    match error {
        ProposeError::Unavailable(why) | ProposeError::Aborted(why) => {
            CallError::Retry(format!("{what}: {why}"))
        }
        ProposeError::Overloaded(why) => CallError::Overloaded(format!("{what}: {why}")),
        ProposeError::Invalid(why) | ProposeError::Internal(why) => {
            CallError::Internal(format!("{what}: {why}"))
        }
    }
}

/// The length and next sequence number of a queue, from its stored record.
fn read_meta(shared: &Shared, key: &[u8]) -> Result<QueueMeta, String> {
    match shared.storage.get_kv(key) {
        Ok(None) => Ok(QueueMeta::default()),
        Ok(Some(bytes)) => QueueMeta::decode(&bytes).map_err(|e| format!("its record does not decode: {e}")),
        Err(e) => Err(format!("read its record: {e}")),
    }
}

/// Runs lifecycle hook `name` of actor `id`; its error, or its panic, is the call's error.
async fn hook<T>(
    name: &str,
    id: &ActorId,
    hook: impl Future<Output = Result<T, super::sdk::ActorError>>,
) -> Result<T, CallError> {
    match AssertUnwindSafe(hook).catch_unwind().await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(call_error(&format!("{name} of actor {id}"), e)),
        Err(panic) => Err(super::error::actor_internal(
            &format!("{name} of actor {id}"),
            &format!("panicked ({})", panic_text(&panic)),
        )),
    }
}

/// What a caught panic said.
fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// The state of actor `id` as stored (`None`: it has none stored, so it starts from `Default`).
fn decode_state<A: Actor>(id: &ActorId, stored: Option<&[u8]>) -> Result<A::State, CallError> {
    let Some(bytes) = stored else { return Ok(A::State::default()) };
    serde_json::from_slice(bytes).map_err(|e| {
        CallError::Internal(format!(
            "the stored state of actor {id} does not decode as {}: {e}; the actor type changed incompatibly",
            std::any::type_name::<A::State>()
        ))
    })
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
    kind.actor.create(id.key(), input).map_err(|e| call_error(&format!("creating actor {id}"), e))
}
