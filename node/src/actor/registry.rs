//! The actor types a node hosts, and type-erased dispatch: from `(actor name, action name, JSON
//! arguments)` to a typed handler call.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::future::BoxFuture;

use super::activation;
use super::context::{Context, RunContext};
use super::error::{self, CallError};
use super::keys;
use super::keys::ActorId;
use super::list::{ActionList, EventList};
use super::runtime::Shared;
use super::sdk::{Action, Actor, ActorError, ActorErrorKind, Handles, RunLoop};

/// A type-erased handler of one action: decodes the JSON arguments, runs the typed handler,
/// encodes its output.
pub(crate) type Handler<A> =
    for<'a> fn(&'a A, String, &'a mut Context<A>) -> BoxFuture<'a, Result<String, CallError>>;

/// A type-erased run loop.
pub(crate) type RunFn<A> =
    fn(Arc<Kind<A>>, RunContext<A>) -> BoxFuture<'static, (RunContext<A>, Result<(), ActorError>)>;

/// The handlers of one actor type's actions, from its [`Actor::Actions`] list.
#[doc(hidden)]
pub struct Handlers<A: Actor> {
    handlers: BTreeMap<&'static str, Handler<A>>,
}

impl<A: Actor> Handlers<A> {
    fn new() -> Self {
        Self { handlers: BTreeMap::new() }
    }

    /// Adds action `X`, answered by `A`'s [`Handles<X>`] implementation.
    ///
    /// # Panics
    ///
    /// When another action of `A` has the same name (a bug in the actor's declaration).
    pub fn add<X: Action>(&mut self)
    where
        A: Handles<X>,
    {
        assert!(!X::NAME.starts_with('$'), "action names starting with '$' are the runtime's ({})", X::NAME);
        let previous = self.handlers.insert(X::NAME, dispatch::<A, X>);
        assert!(previous.is_none(), "actor {} lists action {} twice", A::NAME, X::NAME);
    }

    pub(crate) fn get(&self, action: &str) -> Option<Handler<A>> {
        self.handlers.get(action).copied()
    }
}

/// The durable work of one actor type, declared by [`Actor::work`]: the queues it reads and its
/// run loop.
pub struct Work<A: Actor> {
    queues: Vec<&'static str>,
    run: Option<RunFn<A>>,
}

impl<A: Actor> Work<A> {
    fn new() -> Self {
        Self { queues: Vec::new(), run: None }
    }

    /// Declares durable queue `name`: clients and actors send to it (`mortar queue send`,
    /// [`ActorRef::send`](super::ActorRef::send)) and the run loop reads it.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid queue name or is declared twice (a bug in the declaration).
    pub fn queue(&mut self, name: &'static str) -> &mut Self {
        if let Err(e) = keys::check_queue_name(name) {
            panic!("actor {} declares a bad queue: {e}", A::NAME);
        }
        assert!(!self.queues.contains(&name), "actor {} declares queue {name} twice", A::NAME);
        self.queues.push(name);
        self
    }

    /// Declares the actor's run loop, its [`RunLoop`] implementation.
    pub fn run_loop(&mut self) -> &mut Self
    where
        A: RunLoop,
    {
        self.run = Some(run_dispatch::<A>);
        self
    }

    pub(crate) fn run(&self) -> Option<RunFn<A>> {
        self.run
    }

    pub(crate) fn has_queue(&self, name: &str) -> bool {
        self.queues.contains(&name)
    }
}

fn run_dispatch<A: RunLoop>(
    kind: Arc<Kind<A>>,
    mut ctx: RunContext<A>,
) -> BoxFuture<'static, (RunContext<A>, Result<(), ActorError>)> {
    Box::pin(async move {
        let result = kind.actor.run(&mut ctx).await;
        (ctx, result)
    })
}

/// The error a caller hears for an error an actor's code returned: a rejection or invalid
/// argument with its message prefixed by `what`; a user error as it is, once its code and
/// metadata are checked (a bad one is a bug in the actor, so internal); an internal error as
/// an opaque id, its message logged ([`error::actor_internal`]).
pub(crate) fn call_error(what: &str, e: ActorError) -> CallError {
    match e.kind {
        ActorErrorKind::Rejected => CallError::Rejected(format!("{what}: {}", e.message)),
        ActorErrorKind::InvalidArgument => CallError::InvalidArgument(format!("{what}: {}", e.message)),
        ActorErrorKind::Internal => error::actor_internal(what, &e.message),
        ActorErrorKind::User => match check_user_error(&e) {
            Ok(()) => CallError::User { code: e.code, message: e.message, metadata: e.metadata },
            Err(why) => error::actor_internal(what, &format!("{why}; the error was {e}")),
        },
    }
}

/// Checks what an actor gives in a user error: a valid code, metadata of a bounded size.
fn check_user_error(e: &ActorError) -> Result<(), String> {
    error::check_error_code(&e.code).map_err(|why| format!("a user error has a bad code: {why}"))?;
    let metadata_bytes = serde_json::to_vec(&e.metadata).map_or(usize::MAX, |json| json.len());
    if metadata_bytes > error::ERROR_METADATA_BYTES_MAX {
        return Err(format!(
            "the metadata of user error {} is {metadata_bytes} bytes as JSON, more than the {} allowed",
            e.code,
            error::ERROR_METADATA_BYTES_MAX
        ));
    }
    Ok(())
}

fn dispatch<'a, A: Handles<X>, X: Action>(
    actor: &'a A,
    args_json: String,
    ctx: &'a mut Context<A>,
) -> BoxFuture<'a, Result<String, CallError>> {
    Box::pin(async move {
        let action: X = decode_args(&args_json).map_err(|e| {
            CallError::InvalidArgument(format!(
                "arguments of {}.{} are not valid: {e}; got {}",
                A::NAME,
                X::NAME,
                abbreviate(&args_json)
            ))
        })?;
        let output = actor.handle(action, ctx).await.map_err(|e: ActorError| {
            // What failed, as the message's prefix or, for an internal error, in the log.
            let what = match e.kind {
                ActorErrorKind::Rejected | ActorErrorKind::InvalidArgument => {
                    format!("{}.{}", A::NAME, X::NAME)
                }
                ActorErrorKind::Internal | ActorErrorKind::User => {
                    format!("action {} of actor {}/{}", X::NAME, A::NAME, ctx.key())
                }
            };
            call_error(&what, e)
        })?;
        serde_json::to_string(&output).map_err(|e| {
            CallError::Internal(format!("output of {}.{} does not encode: {e}", A::NAME, X::NAME))
        })
    })
}

/// Decodes JSON arguments; empty arguments mean `null`, or `{}` for an action with named fields.
/// A field `X` does not declare is an error unless [`Action::ALLOW_UNKNOWN_FIELDS`].
fn decode_args<X: Action>(args_json: &str) -> Result<X, serde_json::Error> {
    if args_json.trim().is_empty() {
        return serde_json::from_str("null").or_else(|_| serde_json::from_str("{}"));
    }
    if X::ALLOW_UNKNOWN_FIELDS {
        return serde_json::from_str(args_json);
    }
    super::args::from_str_strict(args_json)
}

fn abbreviate(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 80;
    if text.chars().count() <= SHOWN_CHARS_MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{head:?}…")
    }
}

/// One registered actor type, erased.
pub(crate) trait ActorKind: Any + Send + Sync + 'static {
    fn action_names(&self) -> Vec<&'static str>;
    fn event_names(&self) -> Vec<&'static str>;
    fn has_action(&self, action: &str) -> bool;
    fn queue_names(&self) -> Vec<&'static str>;
    /// Whether the type is known to keep the default [`Actor::on_sleep`] (its actors then sleep
    /// without running it).
    fn sleeps_without_hook(&self) -> bool;
    /// Runs activation `id` (its key in the runtime's table), a new actor of this type, in a new
    /// task (see [`activation::run`]).
    fn spawn(self: Arc<Self>, shared: Arc<Shared>, id: ActorId);
}

/// An actor type with its handlers.
pub(crate) struct Kind<A: Actor> {
    pub actor: A,
    pub handlers: Handlers<A>,
    pub work: Work<A>,
    /// What running [`Actor::on_sleep`] has shown: [`HOOK_UNKNOWN`], [`HOOK_DEFAULT`] or
    /// [`HOOK_CUSTOM`].
    pub sleep_hook: AtomicU8,
    /// One value of [`Actor::Vars`] shared by every activation when the type holds nothing (see
    /// [`Kind::share_vars`]).
    empty_vars: Arc<A::Vars>,
}

pub(crate) const HOOK_UNKNOWN: u8 = 0;
pub(crate) const HOOK_DEFAULT: u8 = 1;
pub(crate) const HOOK_CUSTOM: u8 = 2;

impl<A: Actor> Kind<A> {
    /// `vars` behind an `Arc`: without an allocation when [`Actor::Vars`] holds nothing (a
    /// zero-sized type without `Drop`, such as `()`: all its values are the same), so that an idle
    /// actor of such a type does not keep a 16-byte block for it.
    pub fn share_vars(&self, vars: A::Vars) -> Arc<A::Vars> {
        if std::mem::size_of::<A::Vars>() == 0 && !std::mem::needs_drop::<A::Vars>() {
            self.empty_vars.clone()
        } else {
            Arc::new(vars)
        }
    }

    /// Records whether the sleep hook that just ran was the default one.
    pub fn learned_sleep_hook(&self, default: bool) {
        self.sleep_hook.store(if default { HOOK_DEFAULT } else { HOOK_CUSTOM }, Ordering::Relaxed);
    }
}

impl<A: Actor> ActorKind for Kind<A> {
    fn action_names(&self) -> Vec<&'static str> {
        self.handlers.handlers.keys().copied().collect()
    }

    fn event_names(&self) -> Vec<&'static str> {
        let mut names = A::Events::NAMES.to_vec();
        names.sort_unstable();
        names
    }

    fn has_action(&self, action: &str) -> bool {
        self.handlers.handlers.contains_key(action)
    }

    fn queue_names(&self) -> Vec<&'static str> {
        self.work.queues.clone()
    }

    fn sleeps_without_hook(&self) -> bool {
        self.sleep_hook.load(Ordering::Relaxed) == HOOK_DEFAULT
    }

    fn spawn(self: Arc<Self>, shared: Arc<Shared>, id: ActorId) {
        tokio::spawn(activation::run(self, shared, id));
    }
}

/// The actor types a node hosts. Every node of a cluster must register the same types (a call
/// may be served by any of them).
///
/// ```
/// use mortar_node::actor::{Registry, examples::{ChatRoom, Counter}};
/// let mut registry = Registry::new();
/// registry.register(Counter).register(ChatRoom);
/// assert_eq!(registry.names(), ["chatRoom", "counter"]);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ActorKind>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds actor type `A`; `actor` is shared by all its activations.
    ///
    /// # Panics
    ///
    /// When `A::NAME` is not a valid actor name or is registered already, or when
    /// [`Actor::Actions`] or [`Actor::Events`] lists two with the same name (bugs in the program).
    pub fn register<A: Actor>(&mut self, actor: A) -> &mut Self {
        if let Err(e) = keys::check_actor_name(A::NAME) {
            panic!("cannot register actor type {}: {e}", std::any::type_name::<A>());
        }
        let events = A::Events::NAMES;
        if let Some(twice) = events.iter().enumerate().find(|(i, e)| events[..*i].contains(e)) {
            panic!("actor {} lists event {} twice in its Events", A::NAME, twice.1);
        }
        let mut handlers = Handlers::new();
        A::Actions::register(&mut handlers);
        let mut work = Work::new();
        A::work(&mut work);
        let kind = Kind {
            actor,
            handlers,
            work,
            sleep_hook: AtomicU8::new(HOOK_UNKNOWN),
            empty_vars: Arc::new(A::Vars::default()),
        };
        let previous = self.kinds.insert(A::NAME, Arc::new(kind));
        assert!(previous.is_none(), "actor name {} is registered twice", A::NAME);
        self
    }

    /// The registered type names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Checks that actor type `name` exists.
    pub(crate) fn check_actor(&self, name: &str) -> Result<&Arc<dyn ActorKind>, CallError> {
        self.kinds.get(name).ok_or_else(|| {
            CallError::NotFound(format!(
                "no actor type named {name:?}; this node hosts: {}",
                self.names().join(", ")
            ))
        })
    }

    /// Checks that actor type `name` exists and has action `action`.
    pub(crate) fn check_call(&self, name: &str, action: &str) -> Result<&Arc<dyn ActorKind>, CallError> {
        let kind = self.check_actor(name)?;
        if action.starts_with('$') && super::runtime::BUILTINS.contains(&action) {
            return Ok(kind);
        }
        if !kind.has_action(action) {
            return Err(CallError::NotFound(format!(
                "actor {name} has no action {action:?}; its actions: {}",
                kind.action_names().join(", ")
            )));
        }
        Ok(kind)
    }

    /// Checks that actor type `name` exists and declares every event in `events`.
    pub(crate) fn check_events(&self, name: &str, events: &[String]) -> Result<(), CallError> {
        let kind = self.check_actor(name)?;
        let declared = kind.event_names();
        if let Some(unknown) = events.iter().find(|e| !declared.contains(&e.as_str())) {
            return Err(CallError::InvalidArgument(format!(
                "actor {name} emits no event {unknown:?}; its events: {}",
                declared.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn kind<A: Actor>(actor: A) -> Kind<A> {
        Kind {
            actor,
            handlers: Handlers::new(),
            work: Work::new(),
            sleep_hook: AtomicU8::new(HOOK_UNKNOWN),
            empty_vars: Arc::new(A::Vars::default()),
        }
    }

    struct Tally;

    impl Actor for Tally {
        const NAME: &'static str = "tally";
        type State = i64;
        type Input = ();
        type Actions = ();
        type Events = ();
        type Vars = AtomicU64;
        type ConnParams = ();
        type ConnState = ();
    }

    #[test]
    fn empty_vars_are_shared_and_others_are_each_activations_own() {
        let counter = kind(crate::actor::examples::Counter);
        assert!(Arc::ptr_eq(&counter.share_vars(()), &counter.share_vars(())));
        let tally = kind(Tally);
        let (a, b) = (tally.share_vars(AtomicU64::new(1)), tally.share_vars(AtomicU64::new(2)));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!((a.load(Ordering::Relaxed), b.load(Ordering::Relaxed)), (1, 2));
    }
}
