//! What operators and placement read from the metadata.

use serde::{Deserialize, Serialize};

use super::metadata::{ClusterMetadata, Group, GroupId, NodeState};
use crate::ring::NodeId;

/// A node's part in the control plane's raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRole {
    /// Votes in the control plane.
    Voter,
    /// Follows the control plane's log without voting.
    Learner,
}

/// A node's seat in one replica group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    pub group: GroupId,
    /// The group's current epoch.
    pub epoch: u64,
    /// The node holds the data of that epoch.
    pub ready: bool,
}

/// One line of `mortar admin members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub id: NodeId,
    pub address: String,
    pub region: String,
    pub state: NodeState,
    /// The groups the node is a member of (one today; several once the shard map lands).
    pub seats: Vec<Seat>,
    /// `None` for a removed or dead node that no longer votes.
    pub control: Option<ControlRole>,
}

impl ClusterMetadata {
    /// Every node ever registered, by id, removed and dead ones included.
    pub fn members(&self) -> Vec<MemberRow> {
        self.nodes
            .values()
            .map(|node| {
                let seats = self
                    .groups_of(node.id)
                    .map(|g| Seat { group: g.id, epoch: g.epoch, ready: g.ready.contains(&node.id) })
                    .collect();
                let control = if self.control_voters.contains(&node.id) {
                    Some(ControlRole::Voter)
                } else if node.state.is_live() {
                    Some(ControlRole::Learner)
                } else {
                    None
                };
                MemberRow {
                    id: node.id,
                    address: node.address.clone(),
                    region: node.region.clone(),
                    state: node.state,
                    seats,
                    control,
                }
            })
            .collect()
    }

    /// The members of `group` that may own actors, sorted: active (not joining, draining, removed
    /// or dead) and ready, since a member without the epoch's data may neither lead nor serve
    /// reads. Empty for an unknown group.
    pub fn placement_members(&self, group: GroupId) -> Vec<NodeId> {
        let Some(group) = self.groups.get(&group) else {
            return Vec::new();
        };
        group.members.iter().copied().filter(|&m| self.may_own_actors(group, m)).collect()
    }

    /// Whether member `node` of `group` may own actors: see [`Self::placement_members`].
    pub(super) fn may_own_actors(&self, group: &Group, node: NodeId) -> bool {
        group.ready.contains(&node) && self.nodes.get(&node).is_some_and(|n| n.state == NodeState::Active)
    }
}

#[cfg(test)]
#[path = "query_test.rs"]
mod query_test;
