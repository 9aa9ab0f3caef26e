//! The control plane's openraft type configuration: opaque commands and replies, `u64` node ids,
//! nodes known by their gRPC address, snapshots in memory.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A command for the state machine, opaque to Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Command(pub Vec<u8>);

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command of {} bytes", self.0.len())
    }
}

/// What the state machine answered to a [`Command`]; empty for Raft's own entries (blank,
/// membership).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply(pub Vec<u8>);

openraft::declare_raft_types!(
    /// The control plane's Raft types.
    pub(crate) TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type NodeId = u64;
pub(crate) type Node = openraft::BasicNode;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
pub(crate) type RaftStorageError = openraft::StorageError<NodeId>;
pub(crate) type StorageIOError = openraft::StorageIOError<NodeId>;
pub(crate) type Raft = openraft::Raft<TypeConfig>;
