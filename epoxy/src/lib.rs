//! # epoxy: EPaxos as a pure state machine
//!
//! Epoxy replicates commands among a fixed set of replicas without a leader, after Egalitarian
//! Paxos (Moraru, Andersen, Kaminsky, SOSP'13). Every replica leads the instances it proposes.
//! Commands interfere only when they touch the same key, so commands on different keys commit on
//! the fast path in one round trip to a fast quorum (F + ⌊(F+1)/2⌋ replicas: 2 of 3, 3 of 5, 5
//! of 7), and those on one key are ordered by a dependency graph that every replica executes the
//! same way.
//!
//! There are no sockets, disks, clocks or threads in this crate. A [`Replica`] takes input —
//! [`Replica::propose`], [`Replica::step`] (a message from a peer), [`Replica::tick`] (time) —
//! and collects its effects in a [`Ready`] that one driver performs: send, persist with sync,
//! send what promised durability, apply what executed. The node crate drives it over gRPC and
//! RocksDB; the [`sim`] module drives several replicas in one thread with a seeded network.
//!
//! ```
//! use mortar_epoxy::{Command, Config, Message, Replica, ReplicaId};
//!
//! let ids = vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)];
//! let mut r1 = Replica::new(Config::new(ReplicaId(1), ids.clone()).unwrap());
//! let mut r2 = Replica::new(Config::new(ReplicaId(2), ids).unwrap());
//!
//! let id = r1.propose(vec![Command::new("k", "set 1")]).unwrap();
//! // r1's own vote and a slot reservation to persist; PreAccept to 2 and 3 once that is durable.
//! let out = r1.ready();
//! let pre_accept = out.messages_after_persist.iter().find(|m| m.to == ReplicaId(2)).unwrap();
//! let pre_accept = pre_accept.message.clone();
//!
//! r2.step(ReplicaId(1), pre_accept);
//! let reply = r2.ready().messages_after_persist.remove(0).message; // after r2 persisted its vote
//!
//! r1.step(ReplicaId(2), reply); // 2 of 3 agree: committed on the fast path, and executed
//! let out = r1.ready();
//! assert_eq!(out.executed[0].id, id);
//! assert_eq!(r1.counters().fast_path, 1);
//! # let _ = Message::CommitRequest { ids: vec![] };
//! ```
//!
//! The replica set changes by epochs: [`seal`] seals an epoch on a majority of its members,
//! computes the cut (the instances that execute in it), and starts the next epoch above it. Every
//! message travels with its sender's epoch ([`Replica::step_in_epoch`]); quorum sizes come from
//! the epoch's members.

pub mod codec;
pub mod config;
mod exec;
mod executed_keys;
mod handler;
pub mod message;
mod quiet_keys;
#[cfg(test)]
mod quiet_keys_test;
pub mod ready;
pub mod record;
mod recoverer;
pub mod recovery;
mod replica;
pub mod resend_timer;
pub mod rng;
#[cfg(test)]
mod scenario_test;
pub mod seal;
pub mod sim;
#[cfg(test)]
mod sim_test;
#[cfg(test)]
mod timers_test;
mod try_outcome;
pub mod types;

pub use config::{Config, ConfigError};
pub use message::Message;
pub use ready::{Executed, LoadRequest, Outbound, Ready};
pub use record::{InstanceRecord, KeyRecord, Record, Recovered};
pub use replica::{Counters, ProposeError, Replica};
pub use seal::Cut;
pub use types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
