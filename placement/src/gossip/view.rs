//! Turning what foca knows into the [`View`](crate::View) the node reads. Pure: no I/O.

use std::collections::BTreeMap;

use crate::gossip::identity::GossipId;
use crate::gossip::load::LoadTable;
use crate::ring::{Member, NodeId};

/// The live members, sorted by id, one per node id, and the ids that more than one live identity
/// claimed.
///
/// `local` is this node's identity, included when `local_live` (not after it left the cluster).
/// `peers` are the identities foca considers active (alive or suspect: a suspect member keeps its
/// actors until it is declared down). Several identities can carry one node id for a moment (a node
/// restarted on a new port before the old identity was declared down): the highest generation wins,
/// the same rule on every node, so every node builds the same ring from the same knowledge.
pub(crate) fn live_members<'a>(
    local: &GossipId,
    local_load: u64,
    local_live: bool,
    peers: impl IntoIterator<Item = &'a GossipId>,
    loads: &LoadTable,
) -> (Vec<Member>, Vec<NodeId>) {
    let mut by_node: BTreeMap<NodeId, Member> = BTreeMap::new();
    let mut duplicates = Vec::new();
    let local_member = local_live.then(|| local.to_member(local_load));
    let peer_members = peers.into_iter().map(|id| id.to_member(loads.load_of(id.node)));
    for member in local_member.into_iter().chain(peer_members) {
        match by_node.get_mut(&member.id) {
            None => {
                by_node.insert(member.id, member);
            }
            Some(known) => {
                duplicates.push(member.id);
                if member.generation > known.generation {
                    *known = member;
                }
            }
        }
    }
    duplicates.sort_unstable();
    duplicates.dedup();
    (by_node.into_values().collect(), duplicates)
}

/// Whether two member lists describe the same cluster, ignoring loads (what the ring and the
/// view's epoch depend on).
pub(crate) fn same_identities(a: &[Member], b: &[Member]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            (a.id, a.generation, &a.region, &a.grpc_addr, a.gossip_addr)
                == (b.id, b.generation, &b.region, &b.grpc_addr, b.gossip_addr)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::load::LoadReport;

    fn id(node: NodeId, port: u16, generation: u64) -> GossipId {
        GossipId {
            node,
            addr: ([127, 0, 0, 1], port).into(),
            generation,
            region: "eu".to_owned(),
            grpc_addr: format!("127.0.0.1:{}", port + 1000),
        }
    }

    #[test]
    fn members_are_sorted_deduplicated_and_loaded() {
        let mut loads = LoadTable::default();
        loads.apply(LoadReport { node: 2, generation: 9, seq: 1, load: 20 });
        let peers = [id(3, 3, 1), id(2, 2, 9), id(2, 22, 10)];
        let (members, duplicates) = live_members(&id(1, 1, 5), 7, true, &peers, &loads);
        let got: Vec<(NodeId, u64, u64)> = members.iter().map(|m| (m.id, m.generation, m.load)).collect();
        assert_eq!(got, vec![(1, 5, 7), (2, 10, 20), (3, 1, 0)]);
        assert_eq!(members[1].gossip_addr, Some(([127, 0, 0, 1], 22).into()));
        assert_eq!(duplicates, vec![2]);

        let (without_local, _) = live_members(&id(1, 1, 5), 7, false, &peers, &loads);
        assert_eq!(without_local.len(), 2);
        assert!(!same_identities(&members, &without_local));
        let mut reloaded = members.clone();
        reloaded[0].load = 1_000;
        assert!(same_identities(&members, &reloaded));
    }
}
