//! The metadata itself, and [`ClusterMetadata::apply`], the one way it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::{Command, InitialNode};
use super::invariants;
use super::refusal::Refusal;
use crate::ring::NodeId;

/// A replica group: a set of nodes that runs one epoxy instance space per epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u32);

impl GroupId {
    /// The group `Initialize` creates, holding every actor until the shard map lands.
    pub const FIRST: GroupId = GroupId(0);
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a node is in its life. Removed and dead are final: the id is never used again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeState {
    /// Registered, in no group yet.
    Joining,
    /// A group member (or was one), serving.
    Active,
    /// Serving its groups but owning no actors, e.g. before a restart. Not a membership change.
    Draining,
    /// Left the cluster on purpose (decommissioned): its id and data directory are retired.
    Removed,
    /// Replaced after a failure: its id and data directory are retired, even if it comes back.
    Dead,
}

impl NodeState {
    /// Neither removed nor dead: may still be (or become) a group member.
    pub fn is_live(self) -> bool {
        !matches!(self, NodeState::Removed | NodeState::Dead)
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Joining => "joining",
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Removed => "removed",
            NodeState::Dead => "dead",
        })
    }
}

/// One node of the directory. Only `state` ever changes: a node with another address, region or
/// data directory is another node, with another id (reusing an id or an address for other data is
/// how openraft's `SetNodes` and Cassandra's host replacement lost data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: NodeId,
    /// The node's gRPC endpoint, `host:port`.
    pub address: String,
    pub region: String,
    /// Random id the node's data directory drew when it was created: a wiped directory has a new
    /// one, so it can never answer as the node whose data it lost.
    pub incarnation: u64,
    pub state: NodeState,
}

/// How a reconfiguration changes a group's members. Each is one switch of epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReconfigKind {
    /// Add a live node (e.g. growing from 3 to 5 members).
    Add { node: NodeId },
    /// Remove a member (decommissioning it when it is in no other group).
    Remove { node: NodeId },
    /// Replace a dead member with a live node; the dead one is retired for good.
    Replace { dead: NodeId, with: NodeId },
}

impl ReconfigKind {
    /// The member that leaves the group, if any.
    pub fn leaving(self) -> Option<NodeId> {
        match self {
            ReconfigKind::Add { .. } => None,
            ReconfigKind::Remove { node } => Some(node),
            ReconfigKind::Replace { dead, .. } => Some(dead),
        }
    }

    /// The node that enters the group, if any.
    pub fn joining(self) -> Option<NodeId> {
        match self {
            ReconfigKind::Add { node } => Some(node),
            ReconfigKind::Remove { .. } => None,
            ReconfigKind::Replace { with, .. } => Some(with),
        }
    }
}

impl fmt::Display for ReconfigKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconfigKind::Add { node } => write!(f, "add node {node}"),
            ReconfigKind::Remove { node } => write!(f, "remove node {node}"),
            ReconfigKind::Replace { dead, with } => write!(f, "replace node {dead} with node {with}"),
        }
    }
}

/// A reconfiguration in progress: begun, not yet committed or aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconfig {
    /// The epoch being sealed; the switch produces `from_epoch + 1`.
    pub from_epoch: u64,
    /// Members of the next epoch, sorted.
    pub to: Vec<NodeId>,
    /// Number of this attempt; a later attempt of the same group always has a higher one, so the
    /// seal ballot `(from_epoch + 1, attempt, driver)` of a retry is above every earlier one.
    pub attempt: u64,
    /// The node that seals the old epoch and commits.
    pub driver: NodeId,
    pub kind: ReconfigKind,
}

/// The switch that produced a group's current epoch, kept so that a retried commit is recognised
/// and observers can check the cut they fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCommit {
    pub attempt: u64,
    /// The epoch this commit started.
    pub epoch: u64,
    /// For every member of the sealed epoch, the last slot of its instance space in the cut,
    /// sorted by node.
    pub cut: Vec<(NodeId, u64)>,
}

/// A replica group at its current epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    /// Starts at 1, one more at every committed switch; quorums come from this epoch's members.
    pub epoch: u64,
    /// Members of the current epoch, sorted.
    pub members: Vec<NodeId>,
    /// Members that hold the data of the current epoch (they may lead and serve reads).
    pub ready: BTreeSet<NodeId>,
    pub pending: Option<Reconfig>,
    /// Highest attempt number handed out so far (0: none yet).
    pub attempts: u64,
    /// `None` until the first switch.
    pub last_commit: Option<LastCommit>,
}

/// What an accepted command did. A repeated command answers what the first one did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Initialized {
        cluster_id: u64,
    },
    Registered {
        node: NodeId,
    },
    ReconfigBegun {
        group: GroupId,
        attempt: u64,
    },
    ReconfigCommitted {
        group: GroupId,
        epoch: u64,
    },
    ReconfigAborted {
        group: GroupId,
        attempt: u64,
    },
    Ready {
        group: GroupId,
        epoch: u64,
        node: NodeId,
    },
    /// A ready report for an epoch the group has already left: nothing to do.
    ReportIgnored {
        group: GroupId,
        epoch: u64,
        current: u64,
    },
    Drained {
        node: NodeId,
    },
    Undrained {
        node: NodeId,
    },
    ControlVotersSet,
    Claimed {
        node: NodeId,
    },
}

/// Everything the control plane knows about the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Set by `Initialize`; every node of the cluster carries it (0 before).
    pub cluster_id: u64,
    /// Raft index of the last accepted command (a refused one changes nothing, this included).
    pub version: u64,
    /// Id the next registered node gets; above every id ever used.
    pub next_node_id: NodeId,
    pub nodes: BTreeMap<NodeId, NodeEntry>,
    pub groups: BTreeMap<GroupId, Group>,
    /// The raft voters of the control plane, as the raft layer last reported them.
    pub control_voters: BTreeSet<NodeId>,
    /// The `Initialize` the cluster started from (sorted by id), so a repeat can be recognised.
    pub initial: Vec<InitialNode>,
    /// Per group, the members that continued from the previous epoch and have not yet reported
    /// running the current one (`ReportReady`): cut off or down during the switch. A member two
    /// switches behind cannot finish its epoch from its peers, so no switch begins while a member
    /// that stays is in here. No entry: none behind. (Last, so that snapshots of format 1, which
    /// end before it, still read.)
    pub behind: BTreeMap<GroupId, BTreeSet<NodeId>>,
}

impl Default for ClusterMetadata {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterMetadata {
    /// Empty metadata, before `Initialize`.
    pub fn new() -> Self {
        Self {
            cluster_id: 0,
            version: 0,
            next_node_id: 1, // ids count from 1, as in --initial-cluster
            nodes: BTreeMap::new(),
            groups: BTreeMap::new(),
            control_voters: BTreeSet::new(),
            initial: Vec::new(),
            behind: BTreeMap::new(),
        }
    }

    /// Whether `Initialize` has been applied.
    pub fn is_initialized(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Applies the command at raft index `version`.
    ///
    /// A refusal changes nothing at all. Panics if `version` is not above the current one: the raft
    /// layer applies each log index once, in order, so anything else is a bug there.
    pub fn apply(&mut self, version: u64, command: &Command) -> Result<Outcome, Refusal> {
        assert!(
            version > self.version,
            "control metadata version regressed: current={} applying={version} command={command:?}",
            self.version
        );
        // Work on a copy: a refusal found half-way cannot leave half a change behind, and the
        // invariants compare before with after. The metadata is small and commands are rare.
        let mut next = self.clone();
        let outcome = match command {
            Command::Initialize { cluster_id, nodes } => next.initialize(*cluster_id, nodes),
            Command::RegisterNode { cluster_id, address, region, incarnation } => {
                next.register_node(*cluster_id, address, region, *incarnation, None)
            }
            Command::RegisterReplacement { cluster_id, address, region, incarnation, replaces } => {
                next.register_node(*cluster_id, address, region, *incarnation, Some(*replaces))
            }
            Command::BeginReconfig { group, from_epoch, kind, driver, reachable } => {
                next.begin_reconfig(*group, *from_epoch, *kind, *driver, reachable)
            }
            Command::CommitReconfig { group, attempt, cut } => next.commit_reconfig(*group, *attempt, cut),
            Command::AbortReconfig { group, attempt } => next.abort_reconfig(*group, *attempt),
            Command::ReportReady { group, epoch, node } => next.report_ready(*group, *epoch, *node),
            Command::Drain { node } => next.drain(*node),
            Command::Undrain { node } => next.undrain(*node),
            Command::SetControlVoters { voters } => next.set_control_voters(voters),
            Command::ClaimIncarnation { node, incarnation } => next.claim_incarnation(*node, *incarnation),
        }?;
        next.version = version;
        invariants::assert_transition(self, &next);
        *self = next;
        Ok(outcome)
    }

    /// The group, or the refusal that names it.
    pub(super) fn group(&self, group: GroupId) -> Result<&Group, Refusal> {
        if !self.is_initialized() {
            return Err(Refusal::NotInitialized);
        }
        self.groups.get(&group).ok_or(Refusal::UnknownGroup { group })
    }

    /// The node, or the refusal that names it.
    pub(super) fn node(&self, node: NodeId) -> Result<&NodeEntry, Refusal> {
        if !self.is_initialized() {
            return Err(Refusal::NotInitialized);
        }
        self.nodes.get(&node).ok_or(Refusal::UnknownNode { node })
    }

    /// Groups that list `node` as a member.
    pub(super) fn groups_of(&self, node: NodeId) -> impl Iterator<Item = &Group> {
        self.groups.values().filter(move |g| g.members.binary_search(&node).is_ok())
    }
}

#[cfg(test)]
#[path = "metadata_test.rs"]
mod metadata_test;
