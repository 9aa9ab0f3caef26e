//! Placement for Mortar: who is alive, and which live member owns each actor.
//!
//! Two parts, usable separately:
//!
//! * [`Ring`] (module [`ring`]): pure owner selection. The owner of an actor `(name, key)` is
//!   chosen by rendezvous hashing over the live members, optionally preferring the caller's
//!   region; [`Ring::successors`] is the failover order.
//! * [`Membership`] (module [`membership`]): gossip membership (SWIM, through the `foca` crate)
//!   over UDP. Each member gossips its id, gossip and gRPC addresses, region and load; a killed
//!   member is declared down in well under a second, a member paused for 200 ms is not. The
//!   current [`View`] (live members plus the ring over them) is one call away, and
//!   [`Membership::subscribe`] wakes the node on every change.
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
//! # Failure detection
//!
//! See [`membership`] for how detection works and [`MembershipConfig`] for the timings and their
//! defaults (100 ms probes, 40 ms probe RTT, 400 ms suspicion, 50 ms gossip).

pub mod control;
mod gossip;
pub mod membership;
pub mod ring;

pub use membership::{ConfigError, LeaveError, Membership, MembershipConfig, StartError, View};
pub use ring::{Member, NodeId, Ring};
