//! The traits an application implements: [`Actor`], [`Action`], [`Handles`] and [`Event`].
//!
//! Plain traits and serde types, no macros: an actor is a type with a serde `State`; each action
//! is a serde struct naming its output; the actor implements [`Handles`] once per action and lists
//! its actions in [`Actor::actions`]. See the [module docs](super) for a complete example.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::registry::Actions;

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
    /// with `#[serde(default)]`).
    type State: Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Lists the actions the actor answers (and the events it emits), e.g.
    /// `actions.action::<Increment>().action::<GetCount>().event::<NewCount>();`.
    fn actions(actions: &mut Actions<Self>);
}

/// A request an actor answers: a serde type (its JSON form is what `mortar call` sends) with the
/// type of its answer.
pub trait Action: Serialize + DeserializeOwned + Send + 'static {
    /// The name clients call it by, e.g. `increment`.
    const NAME: &'static str;
    /// What the action returns (as JSON to clients).
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// How actor `Self` answers action `A`.
///
/// The handler runs alone: an actor handles one action at a time, in arrival order. Whatever it
/// changes ([`Context::state_mut`], [`Context::kv`]) is committed as one replicated write after
/// it returns `Ok`; the caller hears the answer only once that write is durable on a quorum.
/// Returning `Err` discards every change: the state stays as it was.
pub trait Handles<A: Action>: Actor {
    fn handle(
        &self,
        action: A,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<A::Output, ActorError>> + Send;
}

/// Something an actor announces to its subscribers ([`Context::emit`]). Delivered after the
/// action's write is committed, at most once, to the subscribers connected at that moment.
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    /// The name subscribers filter on, e.g. `newCount`.
    const NAME: &'static str;
}

/// How an action failed; the caller hears the message, and nothing the action changed is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ActorError {
    pub kind: ActorErrorKind,
    pub message: String,
}

/// The kind of an [`ActorError`], which decides the gRPC status the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorErrorKind {
    /// The action refuses in the actor's current state (`FAILED_PRECONDITION`).
    Rejected,
    /// The action's arguments are wrong (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// Something broke that the caller cannot fix (`INTERNAL`).
    Internal,
}

impl ActorError {
    /// The action refuses, e.g. "balance too low".
    pub fn rejected(message: impl Into<String>) -> Self {
        Self { kind: ActorErrorKind::Rejected, message: message.into() }
    }

    /// The arguments are wrong, e.g. "amount must be positive".
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self { kind: ActorErrorKind::InvalidArgument, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: ActorErrorKind::Internal, message: message.into() }
    }
}

impl From<super::CallError> for ActorError {
    /// A failed actor-to-actor call, passed on as this action's failure.
    fn from(e: super::CallError) -> Self {
        match e {
            super::CallError::InvalidArgument(m) => Self::invalid_argument(m),
            super::CallError::Rejected(m) | super::CallError::NotFound(m) => Self::rejected(m),
            other => Self::internal(other.to_string()),
        }
    }
}
