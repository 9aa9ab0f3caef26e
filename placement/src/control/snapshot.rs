//! Snapshots of the metadata, for the raft layer's snapshot and for a node catching up.
//!
//! A snapshot is postcard bytes behind a format number. [`ClusterMetadata::restore`] checks the
//! size before decoding and every invariant after: bytes from a disk or a peer never panic and
//! never yield a state the commands could not have reached.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::SNAPSHOT_BYTES_MAX;
use super::command::InitialNode;
use super::invariants;
use super::metadata::{ClusterMetadata, Group, GroupId, NodeEntry};
use crate::ring::NodeId;

/// Format of the bytes [`ClusterMetadata::snapshot`] writes. A release that changes the encoding
/// writes a new number and still reads the old ones: format 1 lacks
/// [`ClusterMetadata::behind`] (read as no member behind).
const SNAPSHOT_FORMAT: u32 = 2;

/// [`ClusterMetadata`] as format 1 wrote it: every field but the last, `behind`.
#[derive(Deserialize)]
struct MetadataV1 {
    cluster_id: u64,
    version: u64,
    next_node_id: NodeId,
    nodes: BTreeMap<NodeId, NodeEntry>,
    groups: BTreeMap<GroupId, Group>,
    control_voters: BTreeSet<NodeId>,
    initial: Vec<InitialNode>,
}

impl From<MetadataV1> for ClusterMetadata {
    fn from(v1: MetadataV1) -> Self {
        let MetadataV1 { cluster_id, version, next_node_id, nodes, groups, control_voters, initial } = v1;
        ClusterMetadata {
            cluster_id,
            version,
            next_node_id,
            nodes,
            groups,
            control_voters,
            initial,
            behind: BTreeMap::new(),
        }
    }
}

/// Bytes that are not a snapshot of valid metadata. Retrying with the same bytes cannot help:
/// fetch the snapshot again from a healthy control-plane node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error(
        "a metadata snapshot is {len} bytes, more than the limit of {max}: fetch it again from a healthy node"
    )]
    TooLarge { len: usize, max: usize },
    #[error("malformed metadata snapshot ({reason}): fetch it again from a healthy node")]
    Malformed { reason: String },
    #[error(
        "metadata snapshot format {format} is not known to this release (it knows {known}): upgrade this node"
    )]
    UnknownFormat { format: u32, known: u32 },
    #[error("metadata snapshot breaks an invariant ({reason}): fetch it again from a healthy node")]
    Invalid { reason: String },
}

impl ClusterMetadata {
    pub fn snapshot(&self) -> Vec<u8> {
        // The format comes first and alone, so that a reader can tell an unknown format from bytes
        // it cannot parse.
        let bytes = postcard::to_stdvec(&(SNAPSHOT_FORMAT, self)).expect("encoding into a Vec cannot fail");
        assert!(
            bytes.len() <= SNAPSHOT_BYTES_MAX,
            "metadata snapshot of {} bytes exceeds {SNAPSHOT_BYTES_MAX}: the bounds are inconsistent",
            bytes.len()
        );
        bytes
    }

    pub fn restore(bytes: &[u8]) -> Result<ClusterMetadata, SnapshotError> {
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotError::TooLarge { len: bytes.len(), max: SNAPSHOT_BYTES_MAX });
        }
        let malformed = |e: postcard::Error| SnapshotError::Malformed { reason: e.to_string() };
        let (format, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(malformed)?;
        let (metadata, rest) = match format {
            1 => postcard::take_from_bytes::<MetadataV1>(rest).map(|(m, rest)| (m.into(), rest)),
            SNAPSHOT_FORMAT => postcard::take_from_bytes::<ClusterMetadata>(rest),
            _ => return Err(SnapshotError::UnknownFormat { format, known: SNAPSHOT_FORMAT }),
        }
        .map_err(malformed)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Malformed {
                reason: format!("{} bytes after the snapshot", rest.len()),
            });
        }
        invariants::check(&metadata).map_err(|reason| SnapshotError::Invalid { reason })?;
        Ok(metadata)
    }
}

#[cfg(test)]
#[path = "snapshot_test.rs"]
mod snapshot_test;
