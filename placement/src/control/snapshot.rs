//! Snapshots of the metadata, for the raft layer's snapshot and for a node catching up.
//!
//! A snapshot is postcard bytes behind a format number. [`ClusterMetadata::restore`] checks the
//! size before decoding and every invariant after: bytes from a disk or a peer never panic and
//! never yield a state the commands could not have reached.

use super::SNAPSHOT_BYTES_MAX;
use super::invariants;
use super::metadata::ClusterMetadata;

/// Format of the bytes [`ClusterMetadata::snapshot`] writes. A release that changes the encoding
/// writes a new number and still reads the old ones.
const SNAPSHOT_FORMAT: u32 = 1;

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
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::UnknownFormat { format, known: SNAPSHOT_FORMAT });
        }
        let (metadata, rest) = postcard::take_from_bytes::<ClusterMetadata>(rest).map_err(malformed)?;
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
