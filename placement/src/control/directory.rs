//! The node directory's commands: `Initialize`, `RegisterNode`, `Drain`, `Undrain` and
//! `SetControlVoters`. None of them changes a group's members.

use super::command::InitialNode;
use super::metadata::{ClusterMetadata, Group, GroupId, NodeEntry, NodeState, Outcome};
use super::refusal::{Action, Refusal};
use super::{CONTROL_VOTERS_MAX, GROUP_MEMBERS_MAX, NODES_MAX};
use crate::ring::{GRPC_ADDR_BYTES_MAX, NodeId, REGION_BYTES_MAX};

/// Highest node id handed out: `next_node_id` must stay representable above every id.
const NODE_ID_MAX: NodeId = NodeId::MAX - 1;

impl ClusterMetadata {
    pub(super) fn initialize(&mut self, cluster_id: u64, nodes: &[InitialNode]) -> Result<Outcome, Refusal> {
        let mut sorted = nodes.to_vec();
        sorted.sort();
        if self.is_initialized() {
            // The raft layer may apply an operator's retried init after the first one: same
            // content, same answer. Anything else is another cluster.
            if cluster_id == self.cluster_id && sorted == self.initial {
                return Ok(Outcome::Initialized { cluster_id });
            }
            return Err(Refusal::AlreadyInitialized { cluster_id: self.cluster_id });
        }
        if sorted.is_empty() || sorted.len() > GROUP_MEMBERS_MAX {
            return Err(Refusal::InitialClusterSize { count: sorted.len(), max: GROUP_MEMBERS_MAX });
        }
        for (i, node) in sorted.iter().enumerate() {
            if node.id == 0 || node.id > NODE_ID_MAX {
                return Err(Refusal::NodeIdInvalid { node: node.id });
            }
            check_address(&node.address)?;
            check_region(&node.region)?;
            let earlier = &sorted[..i];
            if earlier.iter().any(|e| e.id == node.id) {
                return Err(Refusal::NodeIdDuplicate { node: node.id });
            }
            if let Some(e) = earlier.iter().find(|e| e.address == node.address) {
                return Err(Refusal::AddressInUse { address: node.address.clone(), node: e.id });
            }
            if earlier.iter().any(|e| e.incarnation == node.incarnation) {
                return Err(Refusal::IncarnationDuplicate { incarnation: node.incarnation });
            }
        }
        let members: Vec<NodeId> = sorted.iter().map(|n| n.id).collect();
        self.cluster_id = cluster_id;
        self.next_node_id = members.last().expect("checked non-empty") + 1;
        for n in &sorted {
            let entry = NodeEntry {
                id: n.id,
                address: n.address.clone(),
                region: n.region.clone(),
                incarnation: n.incarnation,
                state: NodeState::Active,
            };
            self.nodes.insert(n.id, entry);
        }
        let group = Group {
            id: GroupId::FIRST,
            epoch: 1,
            members: members.clone(),
            ready: members.iter().copied().collect(),
            pending: None,
            attempts: 0,
            last_commit: None,
        };
        self.groups.insert(GroupId::FIRST, group);
        // The raft layer initializes the control plane with the initial nodes as its voters; if it
        // chose fewer it says so with SetControlVoters.
        self.control_voters = members.iter().copied().collect();
        self.initial = sorted;
        Ok(Outcome::Initialized { cluster_id })
    }

    pub(super) fn register_node(
        &mut self,
        cluster_id: u64,
        address: &str,
        region: &str,
        incarnation: u64,
        replaces: Option<NodeId>,
    ) -> Result<Outcome, Refusal> {
        if !self.is_initialized() {
            return Err(Refusal::NotInitialized);
        }
        if cluster_id != self.cluster_id {
            return Err(Refusal::WrongCluster { expected: self.cluster_id, got: cluster_id });
        }
        check_address(address)?;
        check_region(region)?;
        if let Some(known) = self.nodes.values().find(|n| n.incarnation == incarnation) {
            // The same data directory again: a retry, or a restart before it learnt its id.
            if !known.state.is_live() {
                return Err(Refusal::IncarnationRetired { node: known.id, state: known.state });
            }
            if known.address != address || known.region != region {
                return Err(Refusal::RegisteredElsewhere {
                    node: known.id,
                    address: known.address.clone(),
                    region: known.region.clone(),
                });
            }
            return Ok(Outcome::Registered { node: known.id });
        }
        // Two live data directories behind one address would have peers mix their messages up,
        // unless one is the dead node the other replaces: every message names the node it is
        // for, and the replacement refuses what is addressed to the dead one.
        // (A joining node is no member yet: there is nothing of it to replace.)
        let replaced = |n: &NodeEntry| Some(n.id) == replaces && n.state != NodeState::Joining;
        let taken = |n: &&NodeEntry| n.state.is_live() && n.address == address && !replaced(n);
        if let Some(other) = self.nodes.values().find(taken) {
            return Err(Refusal::AddressInUse { address: address.to_owned(), node: other.id });
        }
        if self.nodes.len() >= NODES_MAX {
            return Err(Refusal::DirectoryFull { max: NODES_MAX });
        }
        let id = self.next_node_id;
        if id > NODE_ID_MAX {
            return Err(Refusal::NodeIdsExhausted);
        }
        let entry = NodeEntry {
            id,
            address: address.to_owned(),
            region: region.to_owned(),
            incarnation,
            state: NodeState::Joining,
        };
        self.nodes.insert(id, entry);
        self.next_node_id = id + 1;
        Ok(Outcome::Registered { node: id })
    }

    pub(super) fn drain(&mut self, node: NodeId) -> Result<Outcome, Refusal> {
        let state = self.node(node)?.state;
        match state {
            NodeState::Draining => return Ok(Outcome::Drained { node }),
            NodeState::Active => {}
            _ => return Err(Refusal::WrongNodeState { node, state, action: Action::Drain }),
        }
        // Some other member must still be able to own the group's actors.
        for group in self.groups_of(node) {
            if !group.members.iter().any(|&m| m != node && self.may_own_actors(group, m)) {
                return Err(Refusal::LastActiveMember { group: group.id, node });
            }
        }
        self.set_state(node, NodeState::Draining);
        Ok(Outcome::Drained { node })
    }

    pub(super) fn undrain(&mut self, node: NodeId) -> Result<Outcome, Refusal> {
        let state = self.node(node)?.state;
        match state {
            NodeState::Active => Ok(Outcome::Undrained { node }),
            NodeState::Draining => {
                self.set_state(node, NodeState::Active);
                Ok(Outcome::Undrained { node })
            }
            _ => Err(Refusal::WrongNodeState { node, state, action: Action::Undrain }),
        }
    }

    /// Records the raft voters as they are, retired nodes included: this mirrors the raft
    /// membership (the raft layer removes a retired voter with its own change), it decides nothing.
    pub(super) fn set_control_voters(&mut self, voters: &[NodeId]) -> Result<Outcome, Refusal> {
        if !self.is_initialized() {
            return Err(Refusal::NotInitialized);
        }
        if voters.is_empty() || voters.len() > CONTROL_VOTERS_MAX {
            return Err(Refusal::ControlVotersSize { count: voters.len(), max: CONTROL_VOTERS_MAX });
        }
        for &node in voters {
            self.node(node)?;
        }
        self.control_voters = voters.iter().copied().collect();
        Ok(Outcome::ControlVotersSet)
    }

    pub(super) fn claim_incarnation(&mut self, node: NodeId, incarnation: u64) -> Result<Outcome, Refusal> {
        let entry = self.node(node)?;
        if !entry.state.is_live() {
            return Err(Refusal::IncarnationRetired { node, state: entry.state });
        }
        if entry.incarnation == incarnation {
            return Ok(Outcome::Claimed { node });
        }
        let unclaimed = self.initial.iter().any(|i| i.id == node && i.incarnation == entry.incarnation);
        if !unclaimed {
            return Err(Refusal::IncarnationReplaced { node });
        }
        if self.nodes.values().any(|n| n.incarnation == incarnation) {
            return Err(Refusal::IncarnationDuplicate { incarnation });
        }
        self.nodes.get_mut(&node).expect("looked up above").incarnation = incarnation;
        Ok(Outcome::Claimed { node })
    }

    pub(super) fn set_state(&mut self, node: NodeId, state: NodeState) {
        self.nodes.get_mut(&node).expect("callers checked the node exists").state = state;
    }
}

/// A gRPC address: `host:port`, within the bound gossip also enforces.
fn check_address(address: &str) -> Result<(), Refusal> {
    let invalid = |why: String| {
        let shown: String = address.chars().take(GRPC_ADDR_BYTES_MAX).collect();
        Err(Refusal::AddressInvalid { address: shown, why })
    };
    if address.len() > GRPC_ADDR_BYTES_MAX {
        return invalid(format!("{} bytes, more than {GRPC_ADDR_BYTES_MAX}", address.len()));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return invalid("no port".into());
    };
    if host.is_empty() {
        return invalid("no host".into());
    }
    if port.parse::<u16>().is_err() {
        return invalid(format!("port {port:?} is not a number from 0 to 65535"));
    }
    Ok(())
}

fn check_region(region: &str) -> Result<(), Refusal> {
    if region.len() > REGION_BYTES_MAX {
        return Err(Refusal::RegionTooLong { bytes: region.len(), max: REGION_BYTES_MAX });
    }
    Ok(())
}

#[cfg(test)]
#[path = "directory_test.rs"]
mod directory_test;
