//! What a member says about itself in every gossip packet: foca's [`Identity`].

use std::net::SocketAddr;

use foca::Identity;
use serde::{Deserialize, Serialize};

use crate::ring::{GRPC_ADDR_BYTES_MAX, Member, NodeId, REGION_BYTES_MAX};

/// Upper bound of an encoded [`GossipId`] (postcard: varints and length-prefixed strings).
///
/// node (≤ 5) + socket address (≤ 1 + 16 + 3 + 4 + 5 for IPv6 with scope, generous) + generation
/// (≤ 10) + two strings with their length prefixes (≤ 2 each).
pub(crate) const GOSSIP_ID_BYTES_MAX: usize =
    5 + 32 + 10 + (2 + REGION_BYTES_MAX) + (2 + GRPC_ADDR_BYTES_MAX);

/// A member's identity in foca: who it is, where to reach it, and which start of the process.
///
/// foca's address ([`Identity::addr`]) is the gossip socket address, so that a node can announce
/// itself to a seed knowing only the seed's `host:port`. Two identities with the same address are
/// the same node restarted or renewed: the higher generation wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct GossipId {
    pub(crate) node: NodeId,
    /// Advertised gossip (UDP) address.
    pub(crate) addr: SocketAddr,
    /// Which start of the process; [`GossipId::next_generation`] bumps it after the cluster
    /// wrongly declared us down.
    pub(crate) generation: u64,
    pub(crate) region: String,
    pub(crate) grpc_addr: String,
}

impl GossipId {
    /// The identity to announce to a seed we only know the address of: a receiver accepts an
    /// `Announce` whose destination has its address, whatever the other fields say.
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self { node: 0, addr, generation: 0, region: String::new(), grpc_addr: String::new() }
    }

    /// The identity this member rejoins with after the cluster declared it down: the next
    /// generation, which wins the address conflict against this one. `None` at `u64::MAX`.
    pub(crate) fn next_generation(&self) -> Option<Self> {
        Some(Self { generation: self.generation.checked_add(1)?, ..self.clone() })
    }

    /// The member this identity describes, with `load`.
    pub(crate) fn to_member(&self, load: u64) -> Member {
        Member {
            id: self.node,
            region: self.region.clone(),
            grpc_addr: self.grpc_addr.clone(),
            gossip_addr: Some(self.addr),
            generation: self.generation,
            load,
        }
    }
}

impl Identity for GossipId {
    type Addr = SocketAddr;

    /// Opt out of foca's automatic rejoin: foca would renew on every "you are down" it hears, as
    /// fast as they arrive (a forged or corrupted identity made a node renew thousands of times a
    /// second). Declared down, foca goes idle and notifies `Defunct`; the gossip driver then rejoins
    /// with [`GossipId::next_generation`], at once, but at most once per suspicion timeout.
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // The later start of the process at that address wins; the node id only breaks a tie that
        // a correct deployment never produces (two nodes claiming the same address).
        (self.generation, self.node) > (adversary.generation, adversary.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(generation: u64) -> GossipId {
        GossipId {
            node: 7,
            addr: "127.0.0.1:7946".parse().expect("valid address"),
            generation,
            region: "eu".to_owned(),
            grpc_addr: "127.0.0.1:50051".to_owned(),
        }
    }

    #[test]
    fn next_generation_wins_the_conflict() {
        let old = id(10);
        let new = old.next_generation().expect("renewable");
        assert_eq!(new.generation, 11);
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(id(u64::MAX).next_generation(), None);
        assert_eq!(old.renew(), None, "the driver renews, not foca");
    }

    #[test]
    fn encoded_size_is_bounded() {
        let longest = GossipId {
            node: NodeId::MAX,
            addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
                .parse()
                .expect("valid address"),
            generation: u64::MAX,
            region: "r".repeat(REGION_BYTES_MAX),
            grpc_addr: "g".repeat(GRPC_ADDR_BYTES_MAX),
        };
        let bytes = postcard::to_stdvec(&longest).expect("encodes");
        assert!(bytes.len() <= GOSSIP_ID_BYTES_MAX, "encoded {} > {GOSSIP_ID_BYTES_MAX}", bytes.len());
    }
}
