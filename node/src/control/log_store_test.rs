//! openraft's storage suite on both backends, and what the suite does not cover: durability
//! across a crash and damaged bytes on disk.

use std::sync::Arc;

use mortar_storage::{MemStorage, RocksStorage, Storage, WriteBatch};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder};

use super::log_store::{LogStore, VOTE};
use super::state_machine::StateMachineStore;
use super::test_support::Journal;
use super::types::{Entry, LogId, RaftStorageError, StorageIOError, TypeConfig, Vote};
use super::wire;

type SmStore = StateMachineStore<Journal>;

fn stores(storage: Arc<dyn Storage>) -> Result<(LogStore, SmStore), mortar_storage::StorageError> {
    let state_machine = StateMachineStore::open(storage.clone(), Journal::default())?;
    Ok((LogStore::new(storage), state_machine))
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore, SmStore, ()> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore, SmStore), RaftStorageError> {
        let (log, sm) = stores(Arc::new(MemStorage::new())).map_err(|e| StorageIOError::read(&e))?;
        Ok(((), log, sm))
    }
}

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, SmStore, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, SmStore), RaftStorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let storage = RocksStorage::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = stores(Arc::new(storage)).map_err(|e| StorageIOError::read(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_suite_on_mem_storage() {
    Suite::<TypeConfig, LogStore, SmStore, MemBuilder, ()>::test_all(MemBuilder).expect("storage suite");
}

#[test]
fn openraft_suite_on_rocks_storage() {
    Suite::<TypeConfig, LogStore, SmStore, RocksBuilder, tempfile::TempDir>::test_all(RocksBuilder)
        .expect("storage suite");
}

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id(term, 1, index)
}

fn blank(term: u64, index: u64) -> Entry {
    openraft::testing::blank_ent::<TypeConfig>(term, 1, index)
}

fn normal(term: u64, index: u64, command: &[u8]) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: openraft::EntryPayload::Normal(super::types::Command(command.to_vec())),
    }
}

/// Appends through openraft's blocking helper (it waits for the flush callback).
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.expect("append");
}

#[tokio::test]
async fn vote_and_appended_entries_survive_a_crash_and_applied_state_comes_back_from_the_snapshot() {
    let storage = Arc::new(MemStorage::new());
    let (mut log, mut sm) = stores(storage.clone()).expect("open");
    log.save_vote(&Vote::new(3, 1)).await.expect("save vote");
    append(&mut log, vec![blank(3, 1), normal(3, 2, b"a"), normal(3, 3, b"b")]).await;
    sm.apply(vec![blank(3, 1), normal(3, 2, b"a")]).await.expect("apply");
    sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    sm.apply(vec![normal(3, 3, b"b")]).await.expect("apply");
    log.save_committed(Some(log_id(3, 3))).await.expect("save committed");
    log.purge(log_id(3, 1)).await.expect("purge");
    drop((log, sm));

    storage.crash();

    let (mut log, mut sm) = stores(storage.clone()).expect("reopen");
    assert_eq!(log.read_vote().await.expect("read vote"), Some(Vote::new(3, 1)));
    let entries = log.try_get_log_entries(0..).await.expect("read log");
    let ids: Vec<LogId> = entries.iter().map(|e| e.log_id).collect();
    // The unsynced purge is lost with the crash: the log still starts at 1.
    assert_eq!(ids, vec![log_id(3, 1), log_id(3, 2), log_id(3, 3)]);
    // The state machine is back at its snapshot; openraft re-applies the rest from the log.
    let (applied, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(3, 2)));
}

#[tokio::test]
async fn damaged_log_entry_and_vote_are_storage_errors_not_panics() {
    let storage = Arc::new(MemStorage::new());
    let mut batch = WriteBatch::new();
    batch.put_control_log(1, vec![wire::FORMAT, 0xff, 0xff]);
    batch.put_control_log(2, vec![99, 1, 2]);
    batch.put_control_state(VOTE, Vec::new());
    storage.write(batch, true).expect("write garbage");
    let (mut log, _sm) = stores(storage.clone()).expect("open");
    let err = log.try_get_log_entries(1..2).await.expect_err("garbage entry must not decode");
    assert!(err.to_string().contains("control log entry"), "{err}");
    let err = log.try_get_log_entries(2..3).await.expect_err("unknown format must not decode");
    assert!(err.to_string().contains("format 99"), "{err}");
    let err = log.read_vote().await.expect_err("empty vote must not decode");
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(log.get_log_state().await.is_err());
}

#[tokio::test]
async fn an_entry_stored_under_another_index_is_corrupt() {
    let storage = Arc::new(MemStorage::new());
    let mut batch = WriteBatch::new();
    batch.put_control_log(7, wire::encode(&blank(1, 6)));
    storage.write(batch, true).expect("write");
    let (mut log, _sm) = stores(storage).expect("open");
    let err = log.try_get_log_entries(0..).await.expect_err("misplaced entry");
    assert!(err.to_string().contains("stored at index 7 is for index 6"), "{err}");
}

#[tokio::test]
async fn a_snapshot_that_does_not_restore_fails_the_start() {
    let storage = Arc::new(MemStorage::new());
    {
        let (_log, mut sm) = stores(storage.clone()).expect("open");
        sm.apply(vec![normal(1, 1, b"a")]).await.expect("apply");
        sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    }
    /// Refuses every snapshot.
    struct Picky;
    impl super::ControlStateMachine for Picky {
        fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
            Vec::new()
        }
        fn snapshot(&self) -> Vec<u8> {
            Vec::new()
        }
        fn restore(&mut self, _: &[u8]) -> Result<(), String> {
            Err("not my format".to_string())
        }
    }
    let err = StateMachineStore::open(storage, Picky).err().expect("restore must fail");
    assert!(err.to_string().contains("not my format"), "{err}");
}
