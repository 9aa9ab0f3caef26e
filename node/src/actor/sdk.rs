//! The traits an application implements: [`Actor`], [`Action`], [`Handles`] and [`Event`].
//!
//! Plain traits and serde types, no macros: an actor is a type with a serde `State`; each action
//! is a serde struct naming its output; the actor lists its actions in [`Actor::Actions`]
//! (`(Increment, GetCount)`) and its events in [`Actor::Events`] (`(NewCount,)`), and implements
//! [`Handles`] once per action. The compiler checks the lists ([`list`](super::list)). See the
//! [module docs](super) for a complete example.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{Context, RunContext};
use super::list::{ActionList, EventList};
use super::registry::Work;

/// An actor type: one activation per key, its [`Actor::State`] kept in memory while active and
/// stored (replicated, durable) after every action that changes it.
///
/// The value registered in the [`Registry`](super::Registry) is shared by every activation of the
/// type (put clients or configuration in it); per-key data belongs in the state or in the
/// per-actor key-value space ([`Context::kv`]).
pub trait Actor: Send + Sync + Sized + 'static {
    /// The name clients call the type by, e.g. `counter`: 1 to 64 ASCII letters, digits, `_`,
    /// `-` or `.`.
    const NAME: &'static str;
    /// The state of one activation. A new actor starts from `Default`; it is stored as JSON, so
    /// keep it small (grow data in [`Context::kv`] instead) and evolve it compatibly (new fields
    /// with `#[serde(default)]`). It need not be `Clone`: an action changes it in place
    /// ([`Context::state_mut`]), and a failed action's changes are undone by reading the last
    /// committed state back from the node's own store.
    type State: Default + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What creating an actor takes: the `input` of the call that creates it (its first call
    /// ever), given to [`Actor::create`]. A call without input passes JSON `null`, so with
    /// `Input = ()` or `Option<..>` an actor exists as soon as it is called (a plain virtual
    /// actor); with a required input, calls fail with `NOT_FOUND` until one creates it with an
    /// input. Once the actor exists, inputs are ignored. As with [`Action`] arguments, a field the
    /// input type does not declare is refused.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The actions the actor answers, a tuple of [`Action`] types: `(Increment, GetCount)`, `()`
    /// for none. The actor must implement [`Handles`] for each (else it does not compile), and
    /// only these can be called through the typed client.
    type Actions: ActionList<Self>;
    /// The events the actor emits ([`Context::emit`]), a tuple of [`Event`] types: `(NewCount,)`,
    /// `()` for none. Emitting, sending or subscribing to another event does not compile.
    type Events: EventList;
    /// Per-activation values, built by [`Actor::on_wake`] at each activation and never stored:
    /// caches, handles, counters (`()` for none). Actions and the run loop share them
    /// ([`Context::vars`]); change them through interior mutability (a `Mutex`, atomics).
    type Vars: Default + Send + Sync + 'static;
    /// What a client gives when it connects ([`ActorRef::connect`](super::ActorRef::connect),
    /// `mortar connect --params JSON`), as JSON; [`Actor::on_before_connect`] may refuse it.
    /// `()` for nothing.
    type ConnParams: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Per-connection values ([`Conn::state`](super::Conn::state)), built by
    /// [`Actor::create_conn_state`] when a client connects and kept in memory while it stays
    /// connected (never stored: a client that reconnects builds a new one). `()` for none.
    type ConnState: Default + Serialize + Send + Sync + 'static;

    /// The state of a new actor, from the input of the call that creates it. Runs once per actor
    /// (not once per activation): the state it returns is stored with that call's write. An
    /// error refuses the call and leaves the actor uncreated. By default the input is ignored and
    /// the state starts from `Default`.
    fn create(&self, key: &str, input: Self::Input) -> Result<Self::State, ActorError> {
        let _ = (key, input);
        Ok(Self::State::default())
    }

    /// Declares the actor's durable work: the queues it reads (`work.queue("jobs")`) and its run
    /// loop (`work.run_loop()`, see [`RunLoop`]). None by default.
    fn work(work: &mut Work<Self>) {
        let _ = work;
    }

    /// Runs once in the life of the actor, in the call that creates it (before that call's
    /// action, which sees what it did): its changes are committed with that call's write. An
    /// error refuses the call and leaves the actor uncreated.
    fn on_create(&self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs at every activation (first call after a sleep, a move or a restart) once the state
    /// is loaded, before any call: builds the activation's [`Actor::Vars`], which are never
    /// stored. It reads the state and the key-value space; it writes nothing. An error fails the
    /// activation (the calls waiting for it are told to retry).
    fn on_wake(&self, ctx: &Context<Self>) -> impl Future<Output = Result<Self::Vars, ActorError>> + Send {
        let _ = ctx;
        async { Ok(Self::Vars::default()) }
    }

    /// Runs when the actor goes to sleep after being idle (not when it moves or its node dies:
    /// do not rely on it for anything that must happen). What it changes is committed like an
    /// action's write, unless another activation has taken over meanwhile.
    fn on_sleep(&self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ActorError>> + Send {
        ctx.default_hook = true;
        async { Ok(()) }
    }

    /// Runs when a client connects, before anything else of the connection: an error refuses it
    /// (the client hears the error, as from an action). The seeds' place to check credentials
    /// carried in the params. Reads only: it writes nothing.
    fn on_before_connect(
        &self,
        ctx: &Context<Self>,
        params: &Self::ConnParams,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = (ctx, params);
        async { Ok(()) }
    }

    /// Builds the state of a new connection from its params, after
    /// [`Actor::on_before_connect`] let it in; an error refuses it. By default `Default`.
    fn create_conn_state(
        &self,
        ctx: &Context<Self>,
        params: &Self::ConnParams,
    ) -> impl Future<Output = Result<Self::ConnState, ActorError>> + Send {
        let _ = (ctx, params);
        async { Ok(Self::ConnState::default()) }
    }

    /// Runs once a connection is set up ([`Context::conn`] is the new one, listed in
    /// [`Context::conns`]). What it changes is committed like an action's write before the client
    /// hears that it is connected; an error refuses the connection and discards the changes.
    fn on_connect(&self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs when a connection ends because its client closed it or went away, or the actor
    /// disconnected it ([`Context::conn`] is the one leaving, no longer in [`Context::conns`]).
    /// What it changes is committed like an action's write. It does not run when the actor
    /// moves, sleeps or its node dies (every connection then ends and its client reconnects to
    /// the next activation): do not rely on it for anything that must happen.
    fn on_disconnect(&self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs when the actor is destroyed ([`Context::destroy`], `mortar admin destroy`), before
    /// its data is removed; an error cancels the destruction.
    fn on_destroy(&self, ctx: &mut Context<Self>) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}

/// The background loop of an actor ([`Actor::work`] declares it with `work.run_loop()`): it
/// starts when the actor activates (once the actor exists) and is told to stop
/// ([`RunContext::aborted`]) when the actor sleeps, moves, is destroyed or its node stops.
///
/// It consumes the actor's durable queues one message at a time
/// (`while let Some(msg) = ctx.queue("jobs").next().await { .. }`). Each message opens a *turn*:
/// until the next `next()` (or [`RunContext::commit`], or the loop's end) the loop has the actor
/// to itself, like an action, and what it changes through the context (state, key-value space,
/// alarms, events) is committed in one write together with the message's removal from the
/// queue. A message is therefore handled exactly once: if the actor moves or its node dies
/// before the turn commits, nothing of the turn is kept and the next activation gets the same
/// message again. Between turns, actions run as usual.
///
/// Returning `Err` (or panicking) discards the open turn; the loop starts again after
/// [`RUN_LOOP_RESTART_DELAY`](super::runtime::RUN_LOOP_RESTART_DELAY). Returning `Ok` commits
/// the open turn and ends the loop until the next activation.
pub trait RunLoop: Actor {
    fn run(&self, ctx: &mut RunContext<Self>) -> impl Future<Output = Result<(), ActorError>> + Send;
}

/// A request an actor answers: a serde type (its JSON form is what `mortar call` sends) with the
/// type of its answer.
///
/// Arguments with a field the type does not declare are refused with `INVALID_ARGUMENT` naming
/// the field (`{"amont": 5}` for `Increment { amount }`), where serde alone would drop it and run
/// the action with a default: no `#[serde(deny_unknown_fields)]` needed. That holds for the
/// fields of nested structs and `Option`s too, not inside lists or maps. Set
/// [`Action::ALLOW_UNKNOWN_FIELDS`] to accept and ignore them instead.
pub trait Action: Serialize + DeserializeOwned + Send + 'static {
    /// The name clients call it by, e.g. `increment`.
    const NAME: &'static str;
    /// What the action returns (as JSON to clients).
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Whether arguments may carry fields the type does not declare (they are then ignored).
    const ALLOW_UNKNOWN_FIELDS: bool = false;
}

/// How actor `Self` answers action `A`.
///
/// The handler runs alone: an actor handles one action at a time, in arrival order. Whatever it
/// changes ([`Context::state_mut`], [`Context::kv`]) is committed as one replicated write after
/// it returns `Ok`; the caller hears the answer only once that write is durable on a quorum.
/// Returning `Err` discards every change: the state stays as it was.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not handle action `{A}`",
    label = "`{A}` is listed, so `{Self}` must handle it",
    note = "implement `Handles<{A}>` for `{Self}`, or take `{A}` out of its `type Actions`"
)]
pub trait Handles<A: Action>: Actor {
    fn handle(
        &self,
        action: A,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<A::Output, ActorError>> + Send;
}

/// Something an actor announces to its subscribers ([`Context::emit`]), listed in its
/// [`Actor::Events`]. Delivered after the action's write is committed, at most once, to the
/// subscribers connected at that moment.
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    /// The name subscribers filter on, e.g. `newCount`.
    const NAME: &'static str;
}

/// How an action (or a hook) failed: nothing the action changed is kept, and the caller hears
/// an error that depends on the [kind](ActorErrorKind).
///
/// ```
/// # use mortar_node::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Clone, Serialize, Deserialize)] struct Balance { cents: u64 }
/// fn withdraw(balance: &Balance, cents: u64) -> Result<u64, ActorError> {
///     if cents > balance.cents {
///         // The client sees the code, the message and the metadata, as they are.
///         return Err(ActorError::user("insufficient_funds", "the balance is too low")
///             .with_metadata(serde_json::json!({ "balance": balance.cents, "needed": cents })));
///     }
///     // Any error converts with `?`: the client sees an opaque internal error with an id, and
///     // the node logs the id with this error's text.
///     let limit: u64 = "10000".parse()?;
///     Ok(balance.cents - cents.min(limit))
/// }
/// ```
///
/// Like `anyhow::Error`, `ActorError` is not itself a [`std::error::Error`]: that is what lets
/// `?` turn any error (a `std::error::Error + Send + Sync + 'static`, or an `anyhow::Error`) into
/// one. A failed call to another actor ([`CallError`](super::CallError)) keeps its meaning: its
/// invalid argument stays one, its rejection or not-found becomes a rejection, its user error
/// reaches this action's caller unchanged, the rest is internal; so does an `anyhow::Error` that
/// holds a `CallError` or an `ActorError`, under any context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorError {
    pub kind: ActorErrorKind,
    pub message: String,
    /// The code of a [`ActorErrorKind::User`] error (empty for the other kinds).
    pub code: String,
    /// Details of a [`ActorErrorKind::User`] error for programs, as JSON (`null` for none);
    /// ignored for the other kinds.
    pub metadata: serde_json::Value,
}

/// The kind of an [`ActorError`], which decides what the caller sees.
///
/// | Kind | gRPC status | HTTP gateway | `mortar call` exits |
/// |---|---|---|---|
/// | `User` | `FAILED_PRECONDITION`, code and metadata ([more](super::error)) | 409, its own code | 4 |
/// | `Rejected` | `FAILED_PRECONDITION` | 409, `rejected` | 4 |
/// | `InvalidArgument` | `INVALID_ARGUMENT` | 400, `invalid_argument` | 2 |
/// | `Internal` | `INTERNAL`: `internal error (id …); see the log of node N` | 500, `internal` | 7 |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorErrorKind {
    /// The actor refuses with a code of its own ([`ActorError::user`]); the caller sees the
    /// code, the message and the metadata as they are.
    User,
    /// The action refuses in the actor's current state (`FAILED_PRECONDITION`); the message is
    /// prefixed with the actor and action.
    Rejected,
    /// The action's arguments are wrong (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// Something broke that the caller cannot fix (`INTERNAL`). The caller is told only an id;
    /// the message goes to the log of the node, at ERROR with that id (as do panics).
    Internal,
}

impl ActorError {
    fn new(kind: ActorErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), code: String::new(), metadata: serde_json::Value::Null }
    }

    /// The actor refuses with an error of its own that clients can tell apart by `code`, e.g.
    /// `ActorError::user("insufficient_funds", "the balance is too low")`. The code is 1 to 64
    /// ASCII letters, digits, `_`, `-` or `.` (another is a bug in the actor: the caller then
    /// gets an internal error). Add details for programs with [`ActorError::with_metadata`].
    pub fn user(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), ..Self::new(ActorErrorKind::User, message) }
    }

    /// Details of a user error for programs, any JSON of at most 4 KiB encoded
    /// ([`ERROR_METADATA_BYTES_MAX`](super::error::ERROR_METADATA_BYTES_MAX); more is a bug in
    /// the actor: the caller then gets an internal error). Only user errors carry metadata to
    /// their caller.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The action refuses, e.g. "balance too low".
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ActorErrorKind::Rejected, message)
    }

    /// The arguments are wrong, e.g. "amount must be positive".
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ActorErrorKind::InvalidArgument, message)
    }

    /// Something broke: the caller is told an opaque internal error with an id, the node logs
    /// `message` with that id.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ActorErrorKind::Internal, message)
    }

    /// A failed call to another actor, passed on as this action's failure.
    fn from_call(e: &super::CallError, message: String) -> Self {
        use super::CallError;
        match e {
            CallError::InvalidArgument(_) => Self::invalid_argument(message),
            CallError::Rejected(_) | CallError::NotFound(_) => Self::rejected(message),
            CallError::User { code, message, metadata } => {
                Self::user(code.clone(), message.clone()).with_metadata(metadata.clone())
            }
            _ => Self::internal(message),
        }
    }
}

impl std::fmt::Display for ActorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ActorErrorKind::User => write!(f, "{}: {}", self.code, self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// `?` on any error: a [`CallError`](super::CallError) or an `anyhow::Error` holding one (or an
/// `ActorError`) keeps its meaning (see [`ActorError`]); every other error is internal, its
/// message the error with its chain of sources (`outer: inner`).
impl<E: Into<anyhow::Error>> From<E> for ActorError {
    fn from(e: E) -> Self {
        let e: anyhow::Error = e.into();
        // `{:#}`: the contexts and sources too, as `anyhow` shows them.
        let message = format!("{e:#}");
        if let Some(actor) = e.downcast_ref::<ActorError>() {
            return actor.clone();
        }
        match e.downcast_ref::<super::CallError>() {
            Some(call) => Self::from_call(call, message),
            None => Self::internal(message),
        }
    }
}
