//! Why the control plane refused a command. Each message says what was wrong and what to do.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::metadata::{GroupId, NodeState};
use crate::ring::NodeId;

/// What a command wanted a node to do, for [`Refusal::WrongNodeState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Drain,
    Undrain,
    DriveReconfig,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Drain => "be drained (only an active node can be)",
            Action::Undrain => "be undrained (only a draining node can be)",
            Action::DriveReconfig => "drive a reconfiguration (only a live node can)",
        })
    }
}

/// A command the metadata refused; the metadata is unchanged. Serde-encodable so the raft layer
/// can carry it back to the node that proposed the command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("the control plane is not initialized yet: initialize the cluster first, then retry")]
    NotInitialized,
    #[error(
        "the cluster is already initialized (cluster id {cluster_id:#x}) with other nodes: nothing to \
         do if this node belongs to it; a new cluster needs a new control plane"
    )]
    AlreadyInitialized { cluster_id: u64 },
    #[error("an initial cluster has 1 to {max} nodes, not {count}: list between 1 and {max}")]
    InitialClusterSize { count: usize, max: usize },
    #[error("node id {node} is not valid: ids are numbers from 1 to {max}", max = NodeId::MAX - 1)]
    NodeIdInvalid { node: NodeId },
    #[error("node id {node} is listed twice: give every node its own id")]
    NodeIdDuplicate { node: NodeId },
    #[error(
        "incarnation {incarnation:#x} is listed twice: every data directory draws its own; \
         two nodes seem to share (a copy of) one data directory"
    )]
    IncarnationDuplicate { incarnation: u64 },
    #[error("address {address:?} is not valid ({why}): give the node's gRPC address as host:port")]
    AddressInvalid { address: String, why: String },
    #[error("a region is at most {max} bytes, this one is {bytes}: use a shorter region name")]
    RegionTooLong { bytes: usize, max: usize },
    #[error(
        "this node belongs to cluster {got:#x} but this control plane runs cluster {expected:#x}: \
         point the node at its own cluster, or wipe its data directory to join this one"
    )]
    WrongCluster { expected: u64, got: u64 },
    #[error(
        "address {address} is already used by live node {node} (another data directory): give this \
         node another address, or remove node {node} first"
    )]
    AddressInUse { address: String, node: NodeId },
    #[error(
        "this data directory is registered as node {node} at {address} in region {region:?}: \
         start it with that address and region (a node that moves is a new node: remove it, \
         wipe its data directory and register again)"
    )]
    RegisteredElsewhere { node: NodeId, address: String, region: String },
    #[error(
        "this data directory belonged to node {node}, which is {state}: its id is never used again; \
         wipe the data directory and start the node again to join as a new node"
    )]
    IncarnationRetired { node: NodeId, state: NodeState },
    #[error(
        "node {node} started before from another data directory: this one was wiped, replaced or \
         restored from a copy, and must not vote again as node {node} (it could undo what it \
         promised); join this machine as a new node with an empty data directory: \
         `mortar node --join <a member> --replace {node}`"
    )]
    IncarnationReplaced { node: NodeId },
    #[error(
        "the node directory is full ({max} nodes, removed and dead ones included, since their ids \
         are never reused): no more nodes can be registered in this cluster"
    )]
    DirectoryFull { max: usize },
    #[error("every node id has been used: no more nodes can be registered in this cluster")]
    NodeIdsExhausted,
    #[error("node {node} is unknown to the control plane: check the id (`mortar admin members` lists them)")]
    UnknownNode { node: NodeId },
    #[error("node {node} is {state} and cannot {action}")]
    WrongNodeState { node: NodeId, state: NodeState, action: Action },
    #[error(
        "node {node} is {state}: its id is never used again; start the machine with an empty data \
         directory to register it as a new node, and use that id"
    )]
    NodeRetired { node: NodeId, state: NodeState },
    #[error("group {group} does not exist: check the group id")]
    UnknownGroup { group: GroupId },
    #[error(
        "two reconfigurations at once: group {group} already has attempt {attempt} pending, driven by \
         node {driver}; wait for it to commit, or abort attempt {attempt} first"
    )]
    ReconfigPending { group: GroupId, attempt: u64, driver: NodeId },
    #[error(
        "group {group} is at epoch {epoch}, not {from_epoch}: the metadata changed meanwhile; read it \
         again and plan again"
    )]
    StaleEpoch { group: GroupId, epoch: u64, from_epoch: u64 },
    #[error(
        "group {group} is at epoch {current}, not yet {epoch}: a node cannot be ready for an epoch \
         the control plane has not started; this is a bug in the reporting node"
    )]
    EpochNotReached { group: GroupId, epoch: u64, current: u64 },
    #[error("node {node} is already a member of group {group}: nothing to add")]
    AlreadyMember { group: GroupId, node: NodeId },
    #[error("node {node} is not a member of group {group}: check the ids (`mortar admin members`)")]
    NotMember { group: GroupId, node: NodeId },
    #[error(
        "removing would leave group {group} with {left} members, fewer than {min}: add a node \
         first, or replace the node instead of removing it"
    )]
    TooFewMembers { group: GroupId, left: usize, min: usize },
    #[error("node {node} is the last member of group {group}: a group cannot be empty; add a node first")]
    WouldEmptyGroup { group: GroupId, node: NodeId },
    #[error(
        "group {group} would have {count} members, more than {max} (epoxy's limit): remove or \
         replace a member instead"
    )]
    TooManyMembers { group: GroupId, count: usize, max: usize },
    #[error(
        "node {node} is the last voter of the control plane: make another node a voter first, \
         then remove this one"
    )]
    LastControlVoter { node: NodeId },
    #[error(
        "node {node} of group {group} is reachable, so it is not dead: remove it instead, or stop \
         it first and then replace it"
    )]
    ReplacingReachableNode { group: GroupId, node: NodeId },
    /// `epoch` is the sealed one, or the next one when the new members could not work without the
    /// leaving node.
    #[error(
        "no surviving quorum: only {reachable} of the {members} members of group {group} at epoch \
         {epoch} are reachable, and the switch needs {needed} of them; bring members back first (a \
         lost majority needs explicit unsafe recovery)"
    )]
    NoSurvivingQuorum { group: GroupId, epoch: u64, reachable: usize, members: usize, needed: usize },
    #[error(
        "members {nodes:?} of group {group} do not hold the data of epoch {epoch} yet: wait until \
         they report ready, then retry (or replace one of them if it is dead)"
    )]
    MembersNotReady { group: GroupId, epoch: u64, nodes: Vec<NodeId> },
    #[error(
        "attempt {attempt} is not pending on group {group} (pending: {pending:?}): it was aborted, \
         superseded or never begun; read the metadata and begin a new reconfiguration"
    )]
    AttemptNotPending { group: GroupId, attempt: u64, pending: Option<u64> },
    #[error(
        "attempt {attempt} on group {group} already committed epoch {epoch}; it cannot be undone: \
         begin a new reconfiguration to reverse it"
    )]
    AttemptCommitted { group: GroupId, attempt: u64, epoch: u64 },
    #[error(
        "the cut must list each member of the sealed epoch of group {group} once ({expected:?}), \
         it lists {got:?}: this is a bug in the driver"
    )]
    CutMismatch { group: GroupId, expected: Vec<NodeId>, got: Vec<NodeId> },
    #[error(
        "attempt {attempt} on group {group} was committed with another cut: two drivers disagree on \
         the cut, which is a bug; do not retry, report it"
    )]
    CutConflict { group: GroupId, attempt: u64 },
    #[error(
        "draining node {node} would leave group {group} with no member that may own actors (active \
         and ready): undrain another member, or wait until a new one reports ready"
    )]
    LastActiveMember { group: GroupId, node: NodeId },
    #[error("the control plane has 1 to {max} voters, not {count}")]
    ControlVotersSize { count: usize, max: usize },
    #[error(
        "members {nodes:?} of group {group} have not switched to epoch {epoch} yet (cut off or down \
         during the last switch), and a member two switches behind cannot catch up from its peers: \
         wait until they report running epoch {epoch}, then retry (or remove or replace them)"
    )]
    MembersBehind { group: GroupId, epoch: u64, nodes: Vec<NodeId> },
}

impl Refusal {
    /// Whether the same request may succeed later, once other commands ran (a pending switch
    /// ended, members came back or became ready). `false`: someone must change the request or the
    /// cluster.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Refusal::NotInitialized
                | Refusal::ReconfigPending { .. }
                | Refusal::StaleEpoch { .. }
                | Refusal::NoSurvivingQuorum { .. }
                | Refusal::MembersNotReady { .. }
                | Refusal::MembersBehind { .. }
        )
    }
}

#[cfg(test)]
#[path = "refusal_test.rs"]
mod refusal_test;
