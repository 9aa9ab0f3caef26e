//! The control plane's metadata: a pure, deterministic state machine.
//!
//! The control plane is one openraft group (in `node`) that replicates a log of opaque command
//! bytes. This module is what those bytes mean: [`ClusterMetadata::apply`] takes one decoded
//! [`Command`] and either changes the metadata and says what happened ([`Outcome`]) or changes
//! nothing and says why not ([`Refusal`]). No clocks, sockets, disks or randomness: every replica
//! of the control plane that applies the same log holds the same metadata.
//!
//! What it holds (the design's "Control plane and epochs"):
//!
//! * the node directory: [`NodeEntry`] per id, ids never reused, one incarnation (data directory)
//!   per id;
//! * each replica [`Group`]'s epoch, members, which members hold the data of the epoch (ready),
//!   and at most one reconfiguration in progress ([`Reconfig`]);
//! * the control plane's own voters, so that operators see who votes and who learns.
//!
//! A reconfiguration is one switch of epochs: `BeginReconfig` (the driver then seals the old
//! epoch and computes the cut), `CommitReconfig` (compare-and-set on the attempt), then every new
//! member sends `ReportReady` once it holds the data of the new epoch. `AbortReconfig` gives an
//! attempt up; the next `BeginReconfig` gets a higher attempt.
//!
//! Every command is idempotent: the raft layer may apply a client's retry after the original
//! committed, and both must answer the same.

mod command;
mod directory;
mod invariants;
mod metadata;
mod plan;
mod query;
mod reconfig;
mod refusal;
mod snapshot;

#[cfg(test)]
mod testing;

pub use command::{Command, DecodeError, InitialNode};
pub use metadata::{
    ClusterMetadata, Group, GroupId, LastCommit, NodeEntry, NodeState, Outcome, Reconfig, ReconfigKind,
};
pub use query::{ControlRole, MemberRow, Seat};
pub use refusal::{Action, Refusal};
pub use snapshot::SnapshotError;

/// Most members of one replica group: epoxy's `REPLICAS_MAX` (its quorum arithmetic is tested up
/// to 7). Placement does not depend on epoxy; `node` checks the two agree.
pub const GROUP_MEMBERS_MAX: usize = 7;
/// Fewest members a removal may leave in a group that has at least this many: fewer cannot
/// survive the loss of one node.
pub const GROUP_MEMBERS_MIN: usize = 3;
/// Most entries in the node directory. Removed and dead nodes stay listed for good (so that their
/// ids and data directories are never taken for live ones), so this bounds registrations over the
/// cluster's life, and with it the snapshot's size.
pub const NODES_MAX: usize = 8192;
/// Most replica groups (one today; the shard map will create more).
pub const GROUPS_MAX: usize = 4096;
/// Most control-plane voters (the raft group has 3 or 5; 7 leaves room for a migration).
pub const CONTROL_VOTERS_MAX: usize = 7;
/// Largest encoded command accepted: a `BeginReconfig` naming every node as reachable, with room.
pub const COMMAND_BYTES_MAX: usize = 64 * 1024;
/// Largest snapshot accepted by [`ClusterMetadata::restore`].
pub const SNAPSHOT_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Upper bound on one encoded [`NodeEntry`]: id, two strings with their length prefixes,
/// incarnation and state, each varint at its widest.
const NODE_ENTRY_BYTES_MAX: usize =
    5 + 5 + crate::ring::GRPC_ADDR_BYTES_MAX + 2 + crate::ring::REGION_BYTES_MAX + 10 + 1;
/// Upper bound on one encoded [`Group`]: generous, members and cut are at most
/// [`GROUP_MEMBERS_MAX`] entries of at most 15 bytes each.
const GROUP_BYTES_MAX: usize = 256 + 4 * GROUP_MEMBERS_MAX * 15;

const _: () = assert!(GROUP_MEMBERS_MIN <= GROUP_MEMBERS_MAX);
const _: () = assert!(GROUP_MEMBERS_MAX <= NODES_MAX);
const _: () = assert!(CONTROL_VOTERS_MAX <= NODES_MAX);
const _: () = assert!(GROUP_MEMBERS_MAX <= CONTROL_VOTERS_MAX, "every initial node can be a control voter");
const _: () = assert!(
    NODES_MAX * 5 + 1024 <= COMMAND_BYTES_MAX,
    "a BeginReconfig naming every node as reachable must fit in one command"
);
const _: () = assert!(
    (NODES_MAX + GROUP_MEMBERS_MAX) * NODE_ENTRY_BYTES_MAX + GROUPS_MAX * GROUP_BYTES_MAX + 4096
        <= SNAPSHOT_BYTES_MAX,
    "the largest valid metadata (directory, initial nodes, groups) must fit in a snapshot"
);
