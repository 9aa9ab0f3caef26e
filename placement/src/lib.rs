//! Placement for Mortar: who is alive, and which live member owns each actor.
//!
//! Three parts, usable separately:
//!
//! * [`Ring`] (module [`ring`]): pure owner selection. The owner of an actor `(name, key)` is
//!   chosen by rendezvous hashing over the live members, optionally preferring the caller's
//!   region; [`Ring::successors`] is the failover order.
//! * [`Membership`] (module [`membership`]): gossip membership (SWIM, through the `foca` crate)
//!   over UDP. Each member gossips its id, gossip and gRPC addresses, region and load; a killed
//!   member is declared down in well under a second, a member paused for 200 ms is not. The
//!   current [`View`] (live members plus the ring over them) is one call away, and
//!   [`Membership::subscribe`] wakes the node on every change. On a network others can write to,
//!   a [`GossipKey`] makes only the cluster's members heard, [`Membership::set_directory`] only the
//!   nodes the control plane knows, and [`Membership::stats`] counts what was dropped.
//!
//! * [`control::ClusterMetadata`] (module [`control`]): the control plane's metadata as a pure
//!   state machine: the node directory, each replica group's epoch and members, and the
//!   reconfiguration in progress. The control plane's raft log carries [`control::Command`]s; each
//!   is applied, or refused with a [`control::Refusal`] that says what to do, and changes nothing.
//!
//! Gossip decides who is *alive*, never who *replicates*: epoxy's replica set and quorums change
//! only through consensus. An owner chosen here is a hint the actor runtime fences with activation
//! generations, so two nodes that briefly disagree about the ring cannot both write.
//!
//! # Owner selection
//!
//! ```
//! use mortar_placement::{Member, Ring};
//!
//! let ring = Ring::new([
//!     Member::new(1, "eu-west"),
//!     Member::new(2, "eu-west"),
//!     Member::new(3, "us-east"),
//! ]);
//!
//! // Every node computes the same owner from the same members.
//! let owner = ring.owner("counter", b"user-42").expect("the ring is not empty");
//! assert!([1, 2, 3].contains(&owner));
//!
//! // Created from us-east: lives in us-east while a member is there.
//! assert_eq!(ring.owner_preferring_region("counter", b"user-42", "us-east"), Some(3));
//!
//! // Failover order: when the owner dies, the next one takes over, and nothing else moves.
//! let order = ring.successors("counter", b"user-42", 3);
//! assert_eq!(order[0], owner);
//! assert_eq!(ring.without(owner).owner("counter", b"user-42"), Some(order[1]));
//! ```
//!
//! # Joining a cluster
//!
//! ```
//! use std::time::Duration;
//! use mortar_placement::{Membership, MembershipConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The first member starts a cluster (no seeds); in production bind a fixed port, e.g.
//! // 0.0.0.0:7946, and set `advertise_addr` to the address peers reach.
//! let mut config = MembershipConfig::new(1, "127.0.0.1:0".parse()?);
//! config.grpc_addr = "127.0.0.1:50051".into();
//! let first = Membership::start(config).await?;
//!
//! // The second joins through the first.
//! let mut config = MembershipConfig::new(2, "127.0.0.1:0".parse()?);
//! config.seeds = vec![first.gossip_addr().to_string()];
//! let second = Membership::start(config).await?;
//!
//! // React to changes: wait until the second member sees both.
//! let mut views = second.subscribe();
//! tokio::time::timeout(Duration::from_secs(5), views.wait_for(|view| view.ids() == [1, 2])).await??;
//! let owner = second.ring().owner("counter", b"user-42");
//! assert!(owner == Some(1) || owner == Some(2));
//!
//! second.set_load(17); // e.g. active actors; peers see it in `View::members`
//! second.leave().await?; // graceful: peers drop it at once
//! first.leave().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The control plane's metadata
//!
//! Every control-plane node applies the same log to its own [`control::ClusterMetadata`]; the
//! version is the raft index of the entry. Replacing a dead node is one switch of epochs:
//!
//! ```
//! use mortar_placement::control::{
//!     ClusterMetadata, Command, GroupId, InitialNode, NodeState, Outcome, ReconfigKind, Refusal,
//! };
//!
//! let node = |id: u32| InitialNode {
//!     id,
//!     address: format!("10.0.0.{id}:7100"),
//!     region: format!("region-{id}"),
//!     incarnation: 0xfeed_0000 + u64::from(id), // drawn once by each data directory
//! };
//! let mut meta = ClusterMetadata::new();
//! let init = Command::Initialize { cluster_id: 7, nodes: vec![node(1), node(2), node(3)] };
//! assert_eq!(meta.apply(1, &init), Ok(Outcome::Initialized { cluster_id: 7 }));
//!
//! // A new machine registers and gets a fresh id; it joins no group yet.
//! let register = Command::RegisterNode {
//!     cluster_id: 7,
//!     address: "10.0.0.4:7100".into(),
//!     region: "region-3".into(),
//!     incarnation: 0xbeef,
//! };
//! assert_eq!(meta.apply(2, &register), Ok(Outcome::Registered { node: 4 }));
//!
//! // Node 3 died. Its driver (node 1) reached nodes 1 and 2: a majority can seal epoch 1.
//! let group = GroupId::FIRST;
//! let begin = Command::BeginReconfig {
//!     group,
//!     from_epoch: 1,
//!     kind: ReconfigKind::Replace { dead: 3, with: 4 },
//!     driver: 1,
//!     reachable: vec![1, 2],
//! };
//! assert_eq!(meta.apply(3, &begin), Ok(Outcome::ReconfigBegun { group, attempt: 1 }));
//!
//! // Only one switch per group at a time; the refusal says what to do and changes nothing.
//! let before = meta.clone();
//! let remove = Command::BeginReconfig {
//!     group,
//!     from_epoch: 1,
//!     kind: ReconfigKind::Remove { node: 2 },
//!     driver: 2,
//!     reachable: vec![1, 2],
//! };
//! let refusal = meta.apply(4, &remove).unwrap_err();
//! assert_eq!(refusal, Refusal::ReconfigPending { group, attempt: 1, driver: 1 });
//! assert!(refusal.to_string().starts_with("two reconfigurations at once"));
//! assert_eq!(meta, before);
//!
//! // The driver sealed epoch 1 and commits with the cut: epoch 2 is {1, 2, 4}.
//! let commit = Command::CommitReconfig { group, attempt: 1, cut: vec![(1, 41), (2, 17), (3, 9)] };
//! assert_eq!(meta.apply(5, &commit), Ok(Outcome::ReconfigCommitted { group, epoch: 2 }));
//! assert_eq!(meta.groups[&group].members, [1, 2, 4]);
//! assert_eq!(meta.nodes[&3].state, NodeState::Dead); // its id is never used again
//!
//! // Node 4 owns actors once it holds the data of epoch 2.
//! assert_eq!(meta.placement_members(group), [1, 2]);
//! meta.apply(6, &Command::ReportReady { group, epoch: 2, node: 4 })?;
//! assert_eq!(meta.placement_members(group), [1, 2, 4]);
//!
//! // Log entries and snapshots are bytes; bad bytes are typed errors, never panics.
//! assert_eq!(Command::decode(&commit.encode()), Ok(commit));
//! assert_eq!(ClusterMetadata::restore(&meta.snapshot()), Ok(meta.clone()));
//! assert!(ClusterMetadata::restore(b"not a snapshot").is_err());
//! # Ok::<(), Refusal>(())
//! ```
//!
//! # Failure detection
//!
//! See [`membership`] for how detection works and [`MembershipConfig`] for the timings and their
//! defaults (100 ms probes, 40 ms probe RTT, 400 ms suspicion, 50 ms gossip).

pub mod control;
mod gossip;
pub mod membership;
pub mod ring;

pub use membership::{
    ConfigError, DirectoryError, GossipKey, GossipStats, KeyError, LeaveError, Membership, MembershipConfig,
    StartError, View,
};
pub use ring::{Member, NodeId, Ring};
