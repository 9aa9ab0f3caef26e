//! The ring: which live member owns an actor.
//!
//! Pure code: no sockets, clocks or randomness. Given the same members it gives the same answer in
//! every process, on every machine, in every release.
//!
//! # Scheme: rendezvous (highest-random-weight) hashing
//!
//! For an actor `(name, key)` every member `m` gets a score `h(actor, m)`; the owner is the member
//! with the highest score, and the preference list ([`Ring::successors`]) is the members sorted by
//! descending score. Why this scheme rather than a ring of virtual nodes (the `hashring` crate):
//!
//! * **Minimal movement, exactly.** A member that joins takes over only the actors for which it
//!   scores highest (about `1/(N+1)` of them) and no actor moves between two old members; a member
//!   that leaves gives away only its own actors. A virtual-node ring has the same property only
//!   approximately, and its balance depends on how many virtual nodes each member gets.
//! * **Balance without tuning.** Every member wins an actor with probability `1/N`; there is no
//!   virtual-node count to choose (the property tests check every share is within 10 % of the mean
//!   for 3–7 members at 100k actors).
//! * **Failover order for free.** The next member in the preference list is the owner once the
//!   current one is gone, which is exactly what [`Ring::successors`] returns.
//! * **Cost.** A lookup is `O(N)` hashes of 12 bytes. For the cluster sizes Mortar targets (up to
//!   about a hundred members) that is well under a microsecond, and the ring itself is just the
//!   sorted member list, so rebuilding it on every membership change costs nothing.
//!
//! The hash is XXH3-64 (crate `xxhash-rust`) with fixed seeds: XXH3 is a specified, frozen
//! algorithm, unlike `std`'s `RandomState`/`DefaultHasher`, whose output may change between Rust
//! releases and is randomised per process. `ring_test.rs` pins a few owners so that an accidental
//! change of the scheme fails a test instead of silently moving every actor in a rolling upgrade.
//!
//! # Regions
//!
//! [`Ring::owner_preferring_region`] restricts the choice to the members of one region when there
//! are any (an actor created from `eu-west` lives in `eu-west`), and falls back to the whole ring
//! otherwise. Within a region the same rendezvous scores decide, so the region-preferred owner is
//! stable under joins and leaves in other regions.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

/// A member's identifier, unique in the cluster and stable across restarts of the same node.
pub type NodeId = u32;

/// Seed of the hash of an actor's `(name, key)`. Changing it moves every actor: never change it.
const ACTOR_HASH_SEED: u64 = 0x6d6f_7274_6172_2d61; // "mortar-a"
/// Seed of the per-member score. Changing it moves every actor: never change it.
const SCORE_HASH_SEED: u64 = 0x6d6f_7274_6172_2d73; // "mortar-s"

/// Longest region name a member may carry (it travels in every gossip packet).
pub const REGION_BYTES_MAX: usize = 64;
/// Longest gRPC address a member may carry (it travels in every gossip packet).
pub const GRPC_ADDR_BYTES_MAX: usize = 256;

/// A live member of the cluster as placement sees it.
///
/// The ring uses only [`Member::id`] and [`Member::region`]; the rest is what gossip tells about the
/// member so that a caller can reach it and balance load.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Unique, stable id of the node.
    pub id: NodeId,
    /// Region (or zone) of the node, e.g. `"eu-west-1"`. Empty means "no region".
    pub region: String,
    /// Address of the node's gRPC endpoint (`host:port`), as the node advertises it.
    pub grpc_addr: String,
    /// Address of the node's gossip (UDP) endpoint; `None` for members not learnt by gossip.
    pub gossip_addr: Option<SocketAddr>,
    /// Which start of the node this is: a restarted node comes back with a higher generation.
    pub generation: u64,
    /// Load the node reports (e.g. active actors); `0` until it has reported one.
    pub load: u64,
}

impl Member {
    /// A member with an id and a region, no addresses, generation 0 and no load: enough for a ring.
    pub fn new(id: NodeId, region: impl Into<String>) -> Self {
        Self {
            id,
            region: region.into(),
            grpc_addr: String::new(),
            gossip_addr: None,
            generation: 0,
            load: 0,
        }
    }
}

/// One slot of the ring: what owner selection needs to know about a member.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    id: NodeId,
    region: Arc<str>,
}

/// The owners of actors over a set of live members.
///
/// Cheap to build (a sorted list of ids and regions) and to clone; two rings over the same ids and
/// regions are equal whatever order the members were given in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by id, ids unique.
    slots: Vec<Slot>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.slots.iter().map(|slot| (slot.id, &*slot.region))).finish()
    }
}

/// The hash of an actor's `(name, key)`, the first half of every score.
fn actor_hash(name: &str, key: &[u8]) -> u64 {
    let mut hasher = Xxh3::with_seed(ACTOR_HASH_SEED);
    // Length prefix: ("ab", "c") and ("a", "bc") must not collide.
    let name_len = u64::try_from(name.len()).expect("usize fits in u64");
    hasher.update(&name_len.to_le_bytes());
    hasher.update(name.as_bytes());
    hasher.update(key);
    hasher.digest()
}

/// The rendezvous score of member `id` for the actor whose hash is `actor`.
fn score(actor: u64, id: NodeId) -> u64 {
    let mut input = [0u8; 12];
    input[..8].copy_from_slice(&actor.to_le_bytes());
    input[8..].copy_from_slice(&id.to_le_bytes());
    xxh3_64_with_seed(&input, SCORE_HASH_SEED)
}

impl Ring {
    /// A ring over `members`, in any order.
    ///
    /// # Panics
    ///
    /// If two members share an id (a caller bug: ids are unique in a cluster).
    pub fn new<I>(members: I) -> Self
    where
        I: IntoIterator,
        I::Item: Borrow<Member>,
    {
        let mut slots: Vec<Slot> = members
            .into_iter()
            .map(|member| {
                let member = member.borrow();
                Slot { id: member.id, region: Arc::from(member.region.as_str()) }
            })
            .collect();
        slots.sort_unstable_by_key(|slot| slot.id);
        for pair in slots.windows(2) {
            assert!(pair[0].id != pair[1].id, "duplicate member id in ring: id={}", pair[0].id);
        }
        Self { slots }
    }

    /// This ring with `member` added (or its region updated if its id is already there).
    #[must_use]
    pub fn with(&self, member: &Member) -> Self {
        let mut slots = self.slots.clone();
        let slot = Slot { id: member.id, region: Arc::from(member.region.as_str()) };
        match slots.binary_search_by_key(&member.id, |slot| slot.id) {
            Ok(index) => slots[index] = slot,
            Err(index) => slots.insert(index, slot),
        }
        Self { slots }
    }

    /// This ring without member `id` (unchanged if it is not there).
    #[must_use]
    pub fn without(&self, id: NodeId) -> Self {
        let mut slots = self.slots.clone();
        if let Ok(index) = slots.binary_search_by_key(&id, |slot| slot.id) {
            slots.remove(index);
        }
        Self { slots }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the ring has no member (then no actor has an owner).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether member `id` is in the ring.
    pub fn contains(&self, id: NodeId) -> bool {
        self.slots.binary_search_by_key(&id, |slot| slot.id).is_ok()
    }

    /// The member ids, ascending.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.slots.iter().map(|slot| slot.id)
    }

    /// The region of member `id`, if it is in the ring.
    pub fn region_of(&self, id: NodeId) -> Option<&str> {
        let index = self.slots.binary_search_by_key(&id, |slot| slot.id).ok()?;
        Some(&self.slots[index].region)
    }

    /// The owner of actor `(name, key)`: the member with the highest score. `None` on an empty ring.
    pub fn owner(&self, name: &str, key: &[u8]) -> Option<NodeId> {
        let actor = actor_hash(name, key);
        self.best(actor, |_| true)
    }

    /// The owner of actor `(name, key)` among the members of `region`; the owner over the whole
    /// ring when no member is in `region`. `None` on an empty ring.
    ///
    /// Use it when the actor is created, with the caller's region, so that actors live near the
    /// callers that created them.
    pub fn owner_preferring_region(&self, name: &str, key: &[u8], region: &str) -> Option<NodeId> {
        let actor = actor_hash(name, key);
        self.best(actor, |slot| &*slot.region == region).or_else(|| self.best(actor, |_| true))
    }

    /// The preference list of actor `(name, key)`: at most `n` distinct members, best first.
    ///
    /// The first is [`Ring::owner`]; if it leaves the ring, the second becomes the owner, and so on
    /// (removing a member never reorders the others).
    pub fn successors(&self, name: &str, key: &[u8], n: usize) -> Vec<NodeId> {
        let actor = actor_hash(name, key);
        let mut scored: Vec<(u64, NodeId)> =
            self.slots.iter().map(|slot| (score(actor, slot.id), slot.id)).collect();
        // Highest score first; ties (astronomically rare) broken by the lower id, deterministically.
        scored.sort_unstable_by_key(|&(score, id)| (Reverse(score), id));
        scored.into_iter().take(n).map(|(_, id)| id).collect()
    }

    /// The preference list of actor `(name, key)` with the members of `region` first: at most `n`
    /// distinct members. The first is [`Ring::owner_preferring_region`].
    pub fn successors_preferring_region(
        &self,
        name: &str,
        key: &[u8],
        region: &str,
        n: usize,
    ) -> Vec<NodeId> {
        let actor = actor_hash(name, key);
        let mut scored: Vec<(bool, u64, NodeId)> =
            self.slots.iter().map(|slot| (&*slot.region == region, score(actor, slot.id), slot.id)).collect();
        scored.sort_unstable_by_key(|&(in_region, score, id)| (Reverse(in_region), Reverse(score), id));
        scored.into_iter().take(n).map(|(_, _, id)| id).collect()
    }

    /// The member with the highest score among those `eligible`.
    fn best(&self, actor: u64, eligible: impl Fn(&Slot) -> bool) -> Option<NodeId> {
        self.slots
            .iter()
            .filter(|slot| eligible(slot))
            .map(|slot| (score(actor, slot.id), slot.id))
            // max_by_key keeps the last maximum: order by (score, Reverse(id)) so a tie goes to the
            // lower id, the same rule as `successors`.
            .max_by_key(|&(score, id)| (score, Reverse(id)))
            .map(|(_, id)| id)
    }
}

#[cfg(test)]
#[path = "ring_test.rs"]
mod ring_test;
