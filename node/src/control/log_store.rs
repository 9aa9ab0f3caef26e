//! [`LogStore`]: openraft's log, vote, commit point and purge point in the node's storage. Log
//! entries are in the `control_log` table under their index; the rest are named values in
//! `control_state`.
//!
//! Durability follows openraft's rules: the vote and appended entries are synced before openraft
//! is told (a node must never forget a vote it gave or an entry it acknowledged), and so is a
//! truncation. The commit point and the purge point are not: losing them in a crash only means
//! re-applying entries from the snapshot, or purging again.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use mortar_storage::{Storage, WriteBatch};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};

use super::types::{Entry, LogId, RaftStorageError, StorageIOError, TypeConfig, Vote};
use super::wire;

/// `control_state` name of the vote.
pub(crate) const VOTE: &str = "vote";
/// `control_state` name of the last committed log id.
pub(crate) const COMMITTED: &str = "committed";
/// `control_state` name of the last purged log id.
pub(crate) const PURGED: &str = "purged";

/// The control plane's Raft log in a [`Storage`]. Cloning shares the storage.
#[derive(Clone)]
pub(crate) struct LogStore {
    storage: Arc<dyn Storage>,
}

impl LogStore {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, mortar_storage::StorageError> {
        let Some(bytes) = self.storage.get_control_state(name)? else {
            return Ok(None);
        };
        let value = wire::decode(name, &bytes).map_err(corrupt)?;
        Ok(Some(value))
    }

    fn last_log_id(&self) -> Result<Option<LogId>, mortar_storage::StorageError> {
        let Some((index, bytes)) = self.storage.last_control_log()? else {
            return Ok(None);
        };
        Ok(Some(decode_entry(index, &bytes)?.log_id))
    }
}

/// Decodes the entry stored at `index`, checking that it is the entry for that index.
fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, mortar_storage::StorageError> {
    let entry: Entry = wire::decode("control log entry", bytes).map_err(corrupt)?;
    if entry.log_id.index != index {
        return Err(mortar_storage::StorageError::Corrupt {
            what: format!("control log entry stored at index {index} is for index {}", entry.log_id.index),
        });
    }
    Ok(entry)
}

fn corrupt(e: wire::DecodeError) -> mortar_storage::StorageError {
    mortar_storage::StorageError::Corrupt { what: e.to_string() }
}

/// Runs a storage write off the async workers: a synced write waits for an fdatasync.
pub(crate) async fn write(
    storage: &Arc<dyn Storage>,
    batch: WriteBatch,
    sync: bool,
) -> Result<(), mortar_storage::StorageError> {
    let storage = storage.clone();
    match tokio::task::spawn_blocking(move || storage.write(batch, sync)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(mortar_storage::StorageError::Io(format!("storage write task: {e}"))),
    }
}

/// The half-open index range `[from, to)` of `range`.
fn index_range(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let (from, to) = index_range(&range);
        let mut entries: Vec<Entry> = Vec::new();
        self.storage
            .scan_control_log(from, to, &mut |index, bytes| {
                let entry = decode_entry(index, bytes)?;
                if let Some(previous) = entries.last() {
                    // openraft's rule: no hole in the log.
                    if previous.log_id.index + 1 != index {
                        return Err(mortar_storage::StorageError::Corrupt {
                            what: format!(
                                "control log has a hole between {} and {index}",
                                previous.log_id.index
                            ),
                        });
                    }
                }
                entries.push(entry);
                Ok(())
            })
            .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged_log_id: Option<LogId> =
            self.read_state(PURGED).map_err(|e| StorageIOError::read_logs(&e))?;
        let last_log_id = self.last_log_id().map_err(|e| StorageIOError::read_logs(&e))?;
        // An empty log (all of it purged) ends where the purge did.
        let last_log_id = last_log_id.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::new();
        batch.put_control_state(VOTE, wire::encode(vote));
        // Synced: a vote forgotten in a crash could be given twice in one term.
        write(&self.storage, batch, true).await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, RaftStorageError> {
        Ok(self.read_state(VOTE).map_err(|e| StorageIOError::read_vote(&e))?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::new();
        batch.put_control_state(COMMITTED, wire::encode(&committed));
        // Not synced: it only lets a restart re-apply committed entries before it serves reads;
        // an older one found after a crash is still a committed point.
        write(&self.storage, batch, false).await.map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        let committed: Option<Option<LogId>> =
            self.read_state(COMMITTED).map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut previous: Option<u64> = None;
        for entry in entries {
            let index = entry.log_id.index;
            if let Some(previous) = previous {
                assert_eq!(
                    previous + 1,
                    index,
                    "appended entries are not consecutive: {previous} then {index}"
                );
            }
            previous = Some(index);
            batch.put_control_log(index, wire::encode(&entry));
        }
        // Synced before openraft hears of it: the leader counts this node's copy toward a commit.
        let result = write(&self.storage, batch, true).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let io = std::io::Error::other(e.to_string());
                callback.log_io_completed(Err(io));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::new();
        batch.delete_control_log_range(log_id.index, u64::MAX);
        // Synced, so that entries a new leader replaced never come back after a crash.
        write(&self.storage, batch, true).await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::new();
        batch.put_control_state(PURGED, wire::encode(&log_id));
        // Inclusive of `log_id.index`; the index is far below u64::MAX in any real log.
        batch.delete_control_log_range(0, log_id.index.saturating_add(1));
        // Not synced: the snapshot that covers these entries already is (state_machine.rs), and
        // a purge lost in a crash is done again.
        write(&self.storage, batch, false).await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
