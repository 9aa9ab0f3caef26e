//! The commands the control plane's log carries, and their bytes.
//!
//! The raft layer replicates opaque bytes: [`Command::encode`] makes them, [`Command::decode`]
//! reads them back and never panics, whatever the bytes. The log outlives releases, so the
//! encoding is part of the format: append new variants and fields at the end, never reorder.

use serde::{Deserialize, Serialize};

use super::COMMAND_BYTES_MAX;
use super::metadata::{GroupId, ReconfigKind};
use crate::ring::NodeId;

/// One node of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InitialNode {
    pub id: NodeId,
    pub address: String,
    pub region: String,
    pub incarnation: u64,
}

/// One entry of the control plane's log. Each is idempotent (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Starts the cluster: every node active, all of them the members of group 0 at epoch 1.
    Initialize { cluster_id: u64, nodes: Vec<InitialNode> },
    /// A new node (a new data directory) asks for an id; it starts as joining.
    RegisterNode { cluster_id: u64, address: String, region: String, incarnation: u64 },
    /// Starts a switch of `group` from `from_epoch`. `reachable` is what the driver could reach
    /// just before asking: the control plane refuses a switch that no majority could seal. A
    /// retry of the pending request (same epoch, kind and driver) gets its attempt back, whatever
    /// it reached this time.
    BeginReconfig {
        group: GroupId,
        from_epoch: u64,
        kind: ReconfigKind,
        driver: NodeId,
        reachable: Vec<NodeId>,
    },
    /// Ends the pending switch `attempt` (compare-and-set): the next epoch starts. `cut` holds,
    /// for every member of the sealed epoch, the last slot of its instance space in the cut.
    CommitReconfig { group: GroupId, attempt: u64, cut: Vec<(NodeId, u64)> },
    /// Gives the pending switch `attempt` up; the group stays at its epoch.
    AbortReconfig { group: GroupId, attempt: u64 },
    /// `node` holds the data of `group` at `epoch` and may lead and serve reads.
    ReportReady { group: GroupId, epoch: u64, node: NodeId },
    /// The node keeps its memberships but stops owning actors (e.g. before a restart).
    Drain { node: NodeId },
    /// The node owns actors again.
    Undrain { node: NodeId },
    /// The control plane's raft voters changed; recorded for operators.
    SetControlVoters { voters: Vec<NodeId> },
    /// An initial node's data directory names itself: at its first start it drew `incarnation`,
    /// which replaces the one `Initialize` gave it. Any other incarnation is then refused: a
    /// directory that was wiped or restored from a copy must not vote again under that id.
    ClaimIncarnation { node: NodeId, incarnation: u64 },
    /// `RegisterNode` for a node that is to take the place of `replaces`, which it may do at the
    /// same address: a machine rebuilt after its disk died comes back where it was.
    RegisterReplacement {
        cluster_id: u64,
        address: String,
        region: String,
        incarnation: u64,
        replaces: NodeId,
    },
}

/// Bytes that are not a command. Retrying cannot help: the same bytes decode the same way.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "a control-plane command is {len} bytes, more than the limit of {max}: \
         the log entry is corrupt or was written by an incompatible release"
    )]
    TooLarge { len: usize, max: usize },
    #[error(
        "malformed control-plane command ({reason}): \
         the log entry is corrupt or was written by an incompatible release"
    )]
    Malformed { reason: String },
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding into a Vec cannot fail")
    }

    /// Reads a command back. Sizes are checked before decoding; what the command says is checked
    /// by [`ClusterMetadata::apply`](super::ClusterMetadata::apply), which refuses nonsense.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(DecodeError::TooLarge { len: bytes.len(), max: COMMAND_BYTES_MAX });
        }
        let (command, rest) = postcard::take_from_bytes::<Command>(bytes)
            .map_err(|e| DecodeError::Malformed { reason: e.to_string() })?;
        if !rest.is_empty() {
            return Err(DecodeError::Malformed { reason: format!("{} bytes after the command", rest.len()) });
        }
        Ok(command)
    }
}

#[cfg(test)]
#[path = "command_test.rs"]
mod command_test;
