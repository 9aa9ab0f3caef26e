//! Mortar's persistence layer: one small [`Storage`] trait with two implementations.
//!
//! * [`RocksStorage`] keeps a node's data in a RocksDB directory. Use it in production. It is
//!   behind the default feature `rocksdb`: without it (`default-features = false`) the crate does
//!   not build RocksDB, for code that only needs the trait.
//! * [`MemStorage`] keeps everything in memory and models a disk with a write-ahead log:
//!   [`MemStorage::crash`] throws away every write that was not synced. Use it in simulations
//!   and tests.
//!
//! Both pass the same contract suite, [`conformance`], so code tested against `MemStorage`
//! behaves the same on RocksDB.
//!
//! # Writing
//!
//! Every change goes through a [`WriteBatch`], which is applied atomically: after a crash either
//! all of its [`Op`]s are present or none are. With `sync = true`, [`Storage::write`] returns
//! only once the batch, and everything written before it, is durable. Syncing costs one
//! `fdatasync`, so a node shares it between many batches with [`GroupCommit`], which merges
//! queued batches into one synced write and calls each submitter back.
//!
//! The data is kept in seven tables:
//!
//! | table         | key                   | written by                                        |
//! |---------------|-----------------------|---------------------------------------------------|
//! | instances     | [`InstanceKey`]       | [`Op::PutInstance`], [`Op::DeleteInstance`]       |
//! | executed      | [`InstanceKey`]       | [`Op::MarkExecuted`]                              |
//! | conflicts     | bytes                 | [`Op::PutConflict`], [`Op::DeleteConflict`]       |
//! | kv            | bytes                 | [`Op::PutKv`], [`Op::DeleteKv`]                   |
//! | meta          | name                  | [`Op::PutMeta`]                                   |
//! | control_log   | index (u64 big-endian)| [`Op::PutControlLog`], [`Op::DeleteControlLog`]   |
//! | control_state | name                  | [`Op::PutControlState`]                           |
//!
//! The two `control_*` tables hold the control plane's Raft group (its log, its vote and its
//! state-machine snapshot), apart from epoxy's data so that neither can read the other's keys.
//!
//! # Example
//!
//! ```
//! use mortar_storage::{InstanceKey, MemStorage, Storage, WriteBatch};
//!
//! # fn main() -> Result<(), mortar_storage::StorageError> {
//! let storage = MemStorage::new();
//!
//! // Record an instance and the user data it writes, atomically and durably.
//! let id = InstanceKey { replica: 1, slot: 7 };
//! let mut batch = WriteBatch::new();
//! batch.put_instance(id, "instance record");
//! batch.put_kv("user/42", "alice");
//! batch.mark_executed(id);
//! storage.write(batch, true)?;
//!
//! assert_eq!(storage.get_kv(b"user/42")?.as_deref(), Some(&b"alice"[..]));
//!
//! // Recovery reads instances back in (replica, slot) order.
//! let mut executed = Vec::new();
//! storage.scan_executed(&mut |id| {
//!     executed.push(id);
//!     Ok(())
//! })?;
//! assert_eq!(executed, vec![id]);
//!
//! // A write without sync is visible at once but lost if the node crashes before the next sync.
//! let mut batch = WriteBatch::new();
//! batch.put_kv("user/43", "bob");
//! storage.write(batch, false)?;
//! assert!(storage.get_kv(b"user/43")?.is_some());
//! storage.crash();
//! assert!(storage.get_kv(b"user/43")?.is_none());
//! assert!(storage.get_kv(b"user/42")?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! In production, open a directory instead: `RocksStorage::open(Path::new("/var/lib/mortar"))`.
//! A directory can be open in one process at a time; a second open fails with
//! [`StorageError::Open`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

pub mod conformance;
mod group_commit;
mod mem;
mod observed;
#[cfg(feature = "rocksdb")]
mod rocks;
// RocksDB's synced watermark: nothing else uses it.
#[cfg(feature = "rocksdb")]
pub mod watermark;

#[cfg(test)]
mod conformance_test;
#[cfg(test)]
mod group_commit_test;
#[cfg(test)]
mod lib_test;
#[cfg(test)]
mod mem_test;
#[cfg(all(test, feature = "rocksdb"))]
mod rocks_test;

pub use group_commit::{
    BATCH_BYTES_MAX, BATCHES_MAX, GroupCommit, GroupCommitConfig, GroupCommitStats, QUEUE_DEPTH_MAX,
    WriteDone,
};
pub use mem::MemStorage;
pub use observed::{Observed, WriteHook};
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStorage;

/// The largest [`WriteBatch`] (by [`WriteBatch::bytes`]) that [`Storage::write`] accepts.
/// Larger batches fail with [`StorageError::TooLarge`].
pub const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest index of the control plane's log: [`Storage::scan_control_log`] and
/// [`Op::DeleteControlLog`] take half-open ranges, so `u64::MAX` is kept free as their open end.
pub const CONTROL_LOG_INDEX_MAX: u64 = u64::MAX - 1;

/// Length of a stored control-log key: the index, big-endian, so byte order is index order.
pub(crate) const CONTROL_LOG_KEY_LEN: usize = 8;

/// Parses a stored control-log key. Any length other than 8 bytes is [`StorageError::Corrupt`].
#[cfg(feature = "rocksdb")]
pub(crate) fn decode_control_log_key(b: &[u8]) -> Result<u64, StorageError> {
    let b: [u8; CONTROL_LOG_KEY_LEN] = b.try_into().map_err(|_| StorageError::Corrupt {
        what: format!("control log key has {} bytes, expected {CONTROL_LOG_KEY_LEN}", b.len()),
    })?;
    Ok(u64::from_be_bytes(b))
}

/// Identifies an epoxy instance: the replica that leads it and its slot in that replica's log.
///
/// Stored as 12 bytes, `replica` then `slot`, both big-endian, so that the byte order of stored
/// keys is the `(replica, slot)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    pub replica: u32,
    pub slot: u64,
}

impl InstanceKey {
    /// Length of [`InstanceKey::encode`]'s output.
    pub const ENCODED_LEN: usize = 12;

    /// The stored form: `replica` big-endian followed by `slot` big-endian.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..4].copy_from_slice(&self.replica.to_be_bytes());
        out[4..].copy_from_slice(&self.slot.to_be_bytes());
        out
    }

    /// Parses the stored form. Any length other than 12 bytes is [`StorageError::Corrupt`].
    pub fn decode(b: &[u8]) -> Result<Self, StorageError> {
        let b: [u8; Self::ENCODED_LEN] = b.try_into().map_err(|_| StorageError::Corrupt {
            what: format!("instance key has {} bytes, expected {}", b.len(), Self::ENCODED_LEN),
        })?;
        let mut replica = [0u8; 4];
        replica.copy_from_slice(&b[..4]);
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&b[4..]);
        let (replica, slot) = (u32::from_be_bytes(replica), u64::from_be_bytes(slot));
        Ok(InstanceKey { replica, slot })
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.replica, self.slot)
    }
}

/// One change in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Stores an epoxy instance record (opaque bytes), replacing any previous one.
    PutInstance { id: InstanceKey, record: Bytes },
    /// Removes an instance record. Does not remove its executed mark.
    DeleteInstance { id: InstanceKey },
    /// Records that the instance has been applied to the kv data.
    MarkExecuted { id: InstanceKey },
    /// Removes the records and executed marks of every instance of `replica` with a slot at most
    /// `through` (garbage collection of instances executed on every replica).
    ForgetInstances { replica: u32, through: u64 },
    /// Stores epoxy's per-key conflict record (opaque bytes).
    PutConflict { key: Bytes, record: Bytes },
    /// Removes the conflict record of a key (it names only forgotten instances).
    DeleteConflict { key: Bytes },
    /// Stores applied user data.
    PutKv { key: Bytes, value: Bytes },
    /// Removes applied user data.
    DeleteKv { key: Bytes },
    /// Stores small node metadata (cluster id, node id, slot reservation).
    PutMeta { name: String, value: Bytes },
    /// Stores the control plane's log entry at `index` (opaque bytes), replacing any previous one.
    /// `index` is at most [`CONTROL_LOG_INDEX_MAX`].
    PutControlLog { index: u64, entry: Bytes },
    /// Removes the control plane's log entries with `from <= index < to`.
    DeleteControlLog { from: u64, to: u64 },
    /// Stores one named value of the control plane (its vote, commit point, snapshot).
    PutControlState { name: String, value: Bytes },
}

impl Op {
    /// Approximate payload size: key bytes plus value bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Op::PutInstance { record, .. } => InstanceKey::ENCODED_LEN + record.len(),
            Op::DeleteInstance { .. } | Op::MarkExecuted { .. } | Op::ForgetInstances { .. } => {
                InstanceKey::ENCODED_LEN
            }
            Op::PutConflict { key, record } => key.len() + record.len(),
            Op::DeleteConflict { key } => key.len(),
            Op::PutKv { key, value } => key.len() + value.len(),
            Op::DeleteKv { key } => key.len(),
            Op::PutMeta { name, value } => name.len() + value.len(),
            Op::PutControlLog { entry, .. } => CONTROL_LOG_KEY_LEN + entry.len(),
            Op::DeleteControlLog { .. } => 2 * CONTROL_LOG_KEY_LEN,
            Op::PutControlState { name, value } => name.len() + value.len(),
        }
    }
}

/// An ordered list of [`Op`]s that [`Storage::write`] applies atomically. Later ops win over
/// earlier ones on the same key.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    bytes: usize,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, op: Op) {
        self.bytes += op.bytes();
        self.ops.push(op);
    }

    pub fn forget_instances(&mut self, replica: u32, through: u64) {
        self.push(Op::ForgetInstances { replica, through });
    }

    pub fn put_instance(&mut self, id: InstanceKey, record: impl Into<Bytes>) {
        self.push(Op::PutInstance { id, record: record.into() });
    }

    pub fn delete_instance(&mut self, id: InstanceKey) {
        self.push(Op::DeleteInstance { id });
    }

    pub fn mark_executed(&mut self, id: InstanceKey) {
        self.push(Op::MarkExecuted { id });
    }

    pub fn put_conflict(&mut self, key: impl Into<Bytes>, record: impl Into<Bytes>) {
        self.push(Op::PutConflict { key: key.into(), record: record.into() });
    }

    pub fn delete_conflict(&mut self, key: impl Into<Bytes>) {
        self.push(Op::DeleteConflict { key: key.into() });
    }

    pub fn put_kv(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.push(Op::PutKv { key: key.into(), value: value.into() });
    }

    pub fn delete_kv(&mut self, key: impl Into<Bytes>) {
        self.push(Op::DeleteKv { key: key.into() });
    }

    pub fn put_meta(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        self.push(Op::PutMeta { name: name.into(), value: value.into() });
    }

    /// Stores the control plane's log entry at `index`.
    ///
    /// # Panics
    ///
    /// If `index` is above [`CONTROL_LOG_INDEX_MAX`]: Raft's log never gets there, so it is a bug.
    pub fn put_control_log(&mut self, index: u64, entry: impl Into<Bytes>) {
        assert!(index <= CONTROL_LOG_INDEX_MAX, "control log index {index} is above {CONTROL_LOG_INDEX_MAX}");
        self.push(Op::PutControlLog { index, entry: entry.into() });
    }

    /// Removes the control plane's log entries with `from <= index < to` (none when `from >= to`).
    pub fn delete_control_log_range(&mut self, from: u64, to: u64) {
        self.push(Op::DeleteControlLog { from, to });
    }

    pub fn put_control_state(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        self.push(Op::PutControlState { name: name.into(), value: value.into() });
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Approximate payload bytes (keys + values) of all ops.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves `other`'s ops after this batch's ops.
    pub fn append(&mut self, mut other: WriteBatch) {
        self.bytes += other.bytes;
        self.ops.append(&mut other.ops);
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Fails with [`StorageError::TooLarge`] when the batch exceeds [`WRITE_BATCH_BYTES_MAX`].
    pub(crate) fn check_size(&self) -> Result<(), StorageError> {
        if self.bytes > WRITE_BATCH_BYTES_MAX {
            return Err(StorageError::TooLarge { bytes: self.bytes, max: WRITE_BATCH_BYTES_MAX });
        }
        Ok(())
    }
}

impl IntoIterator for WriteBatch {
    type Item = Op;
    type IntoIter = std::vec::IntoIter<Op>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.into_iter()
    }
}

/// A node's durable state. Object safe: a node holds an `Arc<dyn Storage>`.
///
/// Scans see a consistent view of the data as of the start of the scan; their callbacks may
/// call back into the storage.
// The scan callbacks are spelled out (no type aliases) so that an implementation's signatures can
// be copied from here verbatim.
#[allow(clippy::type_complexity)]
pub trait Storage: Send + Sync + 'static {
    /// Applies the whole batch atomically. With `sync`, returns only once the batch and everything
    /// written before it is durable (fdatasync of the RocksDB WAL). Without `sync`, the batch is
    /// visible to reads at once but a crash may lose it (never part of it).
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError>;

    fn get_kv(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError>;

    fn get_instance(&self, id: InstanceKey) -> Result<Option<Bytes>, StorageError>;

    fn get_meta(&self, name: &str) -> Result<Option<Bytes>, StorageError>;

    /// Visits every instance record in (replica, slot) order. The callback may stop the scan by
    /// returning an error, which is passed through.
    fn scan_instances(
        &self,
        f: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// Visits every instance marked executed, in (replica, slot) order.
    fn scan_executed(
        &self,
        f: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// Visits every conflict record (key, record) in key order.
    fn scan_conflicts(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// Up to `limit` kv pairs whose key starts with `prefix`, in key order, starting after
    /// `start_after` when given (`start_after` itself is excluded).
    fn scan_kv_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError>;

    /// One named value of the control plane, from [`Op::PutControlState`].
    fn get_control_state(&self, name: &str) -> Result<Option<Bytes>, StorageError>;

    /// Visits the control plane's log entries with `from <= index < to`, in index order. The
    /// callback may stop the scan by returning an error, which is passed through.
    fn scan_control_log(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;

    /// The control plane's log entry with the highest index, if the log has any.
    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError>;

    /// Writes a consistent copy of everything stored to the new directory `dir` (a RocksDB
    /// checkpoint: hard links to the table files where the file system allows). What a node
    /// hands to a new member of its group. Storage without the ability says so.
    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StorageError> {
        Err(StorageError::Io(format!("this storage cannot write a checkpoint to {}", dir.display())))
    }
}

impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        (**self).write(batch, sync)
    }

    fn get_kv(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        (**self).get_kv(key)
    }

    fn get_instance(&self, id: InstanceKey) -> Result<Option<Bytes>, StorageError> {
        (**self).get_instance(id)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        (**self).get_meta(name)
    }

    fn scan_instances(
        &self,
        f: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        (**self).scan_instances(f)
    }

    fn scan_executed(
        &self,
        f: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        (**self).scan_executed(f)
    }

    fn scan_conflicts(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        (**self).scan_conflicts(f)
    }

    fn scan_kv_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        (**self).scan_kv_prefix(prefix, start_after, limit)
    }

    fn get_control_state(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        (**self).get_control_state(name)
    }

    fn scan_control_log(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        (**self).scan_control_log(from, to, f)
    }

    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        (**self).last_control_log()
    }

    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StorageError> {
        (**self).checkpoint(dir)
    }
}

/// Why [`RocksStorage::open`] failed; decides the advice in the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// Another process (or another `RocksStorage` in this process) holds the directory's lock.
    Locked,
    /// The directory's files are damaged.
    Corrupt,
    /// Anything else: permissions, not a directory, unreadable, out of space.
    Other,
}

impl fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenFailure::Locked => {
                "is another mortar node using it? stop that node or give this one another data directory"
            }
            OpenFailure::Corrupt => {
                "the data directory looks corrupt; keep it, and keep this node stopped (the others serve while a majority runs): \
                 an emptied or restored directory would make the node vote again on what it promised before, which can lose \
                 acknowledged writes; replace the node instead: `mortar node --join <a member> --replace <its id>` with an empty directory"
            }
            OpenFailure::Other => {
                "check that the path is a directory this user can read and write, on a disk with free space"
            }
        })
    }
}

/// Everything that can go wrong in storage. Cloneable so that [`GroupCommit`] can hand the same
/// failure to every batch of a merged write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be opened.
    #[error("open data directory {}: {reason}; {kind}", path.display())]
    Open { path: PathBuf, kind: OpenFailure, reason: String },
    /// RocksDB failed a read or write. The database may refuse further writes; restart the node
    /// (reopening recovers every synced write from the WAL).
    #[error("storage i/o failed: {0}")]
    Io(String),
    /// RocksDB was temporarily unable to serve the request (busy, timed out, try again).
    #[error("storage busy: {0}")]
    Busy(String),
    /// Stored bytes did not decode.
    #[error("corrupt stored data: {what}")]
    Corrupt { what: String },
    /// A write batch was larger than [`WRITE_BATCH_BYTES_MAX`]; split it.
    #[error("write batch of {bytes} bytes exceeds the limit of {max} bytes; split it into smaller batches")]
    TooLarge { bytes: usize, max: usize },
    /// The group commit thread is gone (dropped, or it panicked).
    #[error("storage closed: the group commit thread has stopped")]
    Closed,
}

impl StorageError {
    /// Whether retrying the same call could succeed.
    ///
    /// `Open { kind: Locked }` is retryable: the other holder may exit. `Io` is not: once a write
    /// fails, RocksDB stops accepting writes and a failed sync cannot be trusted to be retried;
    /// restart the node instead.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Open { kind, .. } => *kind == OpenFailure::Locked,
            StorageError::Busy(_) => true,
            StorageError::Io(_)
            | StorageError::Corrupt { .. }
            | StorageError::TooLarge { .. }
            | StorageError::Closed => false,
        }
    }
}
