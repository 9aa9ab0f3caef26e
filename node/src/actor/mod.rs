//! Virtual actors: the SDK an application writes against, and the runtime that hosts them.
//!
//! An actor is addressed by its type name and a key (`counter/user-42`). It always exists: the
//! first call activates it on its *owner* (the node the ring over the live members picks), later
//! calls find it there, it sleeps when idle, and it comes back on a surviving node when its owner
//! dies, with every acknowledged write in place.
//!
//! # Writing an actor
//!
//! ```
//! use mortar_node::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// A bank account: one activation per account number.
//! struct Account;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Balance {
//!     owner: String,
//!     cents: u64,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Deposit {
//!     cents: u64,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Deposited {
//!     balance: u64,
//! }
//!
//! /// Opening an account takes an owner.
//! #[derive(Serialize, Deserialize)]
//! struct Open {
//!     owner: String,
//! }
//!
//! impl Actor for Account {
//!     const NAME: &'static str = "account";
//!     type State = Balance;
//!     type Input = Open;
//!     type Actions = (Deposit,); // each handled below, or it does not compile
//!     type Events = (Deposited,); // emitting another event does not compile
//!     type Vars = ();
//!     type ConnParams = ();
//!     type ConnState = ();
//!
//!     /// Runs once, for the call that creates the account: calls without an input fail with
//!     /// `NOT_FOUND` until then.
//!     fn create(&self, _key: &str, input: Open) -> Result<Balance, ActorError> {
//!         Ok(Balance { owner: input.owner, cents: 0 })
//!     }
//! }
//!
//! impl Action for Deposit {
//!     const NAME: &'static str = "deposit";
//!     type Output = u64;
//! }
//!
//! impl Event for Deposited {
//!     const NAME: &'static str = "deposited";
//! }
//!
//! impl Handles<Deposit> for Account {
//!     async fn handle(&self, action: Deposit, ctx: &mut Context<Self>) -> Result<u64, ActorError> {
//!         if action.cents == 0 {
//!             return Err(ActorError::invalid_argument("deposit at least one cent"));
//!         }
//!         let balance = ctx.state().cents + action.cents;
//!         ctx.state_mut().cents = balance;
//!         ctx.kv().put(&format!("deposit/{balance}"), &action.cents)?; // grows without a big state
//!         ctx.emit(Deposited { balance })?;
//!         Ok(balance)
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register(Account);
//! // mortar_node::serve(registry, config).await runs a node hosting it; clients then call
//! // `Client::connect(..).await?.actor::<Account>("acc-1").with_input(&Open { owner: "ann".into() })?
//! //     .call(Deposit { cents: 100 }).await` (get-or-create), or
//! // `mortar call account acc-1 deposit '{"cents": 100}' --input '{"owner": "ann"}'`.
//! ```
//!
//! # What the runtime guarantees
//!
//! * **One activation at a time.** Every state change of an action is one replicated write tagged
//!   with its activation's *generation*; the write is refused unless that generation is still the
//!   actor's current one ([`op`]). A node that lost an actor (partitioned, paused, wrongly declared
//!   dead) learns it on its next write and deactivates; none of its writes is acknowledged after
//!   another node has taken over.
//! * **Serial actions, replies after durability.** Actions of one actor run one at a time. An
//!   action's caller hears the answer once its write is committed on a quorum, fsynced and applied
//!   on the owner; an action that fails changes nothing.
//! * **Reads under a lease.** An action that changes nothing is answered from memory while the
//!   owner's lease holds (see [`lease`] for its length and the clock assumption), otherwise after
//!   the owner has confirmed its ownership through a quorum.
//! * **Failover.** When gossip declares the owner dead, the ring gives its actors to other nodes;
//!   the next call activates each one there, loading its state from that node's own replica.
//! * **Sleep.** An actor idle for `--actor-idle-timeout-ms` (default 60 s) is deactivated: memory
//!   freed, state on disk, activated again by its next call.
//! * **Creation.** An actor exists once a call has stored what [`Actor::create`] made of its
//!   input ([`Actor::Input`]): a call that carries an input always stores it; one without (JSON
//!   `null`) stores it with whatever the call writes. Until then every call creates the state
//!   afresh (so `create` must be a deterministic function of the key and the input; with
//!   `Input = ()` the actor simply always exists). [`Actor::on_create`] runs in the creating call
//!   and its changes join that call's write.
//! * **Alarms** ([`Context::schedule`]) run an action at a time, on the owner, waking the actor;
//!   the action and the alarm's removal are one write, so each alarm's effect happens exactly
//!   once, across failovers and restarts ([`scheduler`]).
//! * **Durable queues and the run loop** ([`RunLoop`]): sends are fenced writes of the owner; a
//!   run-loop turn commits what it did with its message's removal, so each message is handled
//!   exactly once.
//! * **Destruction** ([`Context::destroy`]) removes everything of the actor in one write and
//!   leaves a tombstone: calls answer `NOT_FOUND` until a call with an input creates it again.
//! * **Events** ([`Context::emit`]) go to the subscribers connected to the owner after the action's
//!   write is committed, at most once; a subscription ends with `UNAVAILABLE` when the actor moves,
//!   and the client subscribes again (the CLI does so by itself).
//! * **Errors** ([`ActorError`]): a user error ([`ActorError::user`], a code and JSON metadata)
//!   reaches the caller as the actor gave it ([`CallError::User`], through forwarding too); an
//!   internal error, any error passed on with `?` and a panic reach it as an opaque `internal
//!   error (id …); see the log of node N`, the whole text in that node's log under that id.

mod activation;
pub mod args;
pub mod client;
pub mod connection;
pub mod context;
pub mod error;
#[cfg(test)]
mod errors_test;
pub mod events;
pub mod examples;
pub mod examples_work;
pub mod forward;
pub mod inspect;
pub mod keys;
pub mod lease;
pub mod list;
pub mod op;
pub mod recent;
pub mod registry;
pub mod router;
pub mod runtime;
pub mod scheduler;
pub mod sdk;
pub mod service;
mod table;

pub use client::{ActorEvent, ActorRef, Client};
pub use connection::{ConnEvent, Connection, JsonConnEvent, JsonConnection};
pub use context::{Alarm, Conn, ConnId, Context, Kv, Message, QueueReader, RunContext, Schedule, unix_ms};
pub use error::CallError;
pub use keys::ActorId;
pub use list::{ActionList, EventList, Lists};
pub use registry::{Registry, Work};
pub use router::Router;
pub use runtime::{Runtime, RuntimeConfig};
pub use sdk::{Action, Actor, ActorError, ActorErrorKind, Event, Handles, RunLoop};
