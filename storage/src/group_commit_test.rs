use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use bytes::Bytes;

use crate::{
    GroupCommit, GroupCommitConfig, GroupCommitStats, InstanceKey, MemStorage, Observed, Storage,
    StorageError, WriteBatch, WriteHook,
};

/// A MemStorage whose writes wait at a gate the test opens, so the test knows exactly what is
/// queued while the group commit thread is busy. Records the op count of every write.
type Gated = Observed<Gate>;

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    writes_entered: usize,
    write_ops: Vec<usize>,
    syncs: Vec<bool>,
}

fn closed() -> Arc<Gated> {
    Arc::new(Observed::new(Gate::default()))
}

fn open() -> Arc<Gated> {
    let gated = Observed::new(Gate::default());
    gated.hook().state.lock().expect("gate").open = true;
    Arc::new(gated)
}

impl Gate {
    fn wait_for_writes_entered(&self, n: usize) {
        let mut gate = self.state.lock().expect("gate");
        while gate.writes_entered < n {
            gate = self.changed.wait(gate).expect("gate");
        }
    }

    fn open_gate(&self) {
        self.state.lock().expect("gate").open = true;
        self.changed.notify_all();
    }

    fn write_ops(&self) -> Vec<usize> {
        self.state.lock().expect("gate").write_ops.clone()
    }
}

impl WriteHook for Gate {
    fn before_write(&self, batch: &WriteBatch, sync: bool) {
        let mut gate = self.state.lock().expect("gate");
        gate.writes_entered += 1;
        gate.write_ops.push(batch.len());
        gate.syncs.push(sync);
        self.changed.notify_all();
        while !gate.open {
            gate = self.changed.wait(gate).expect("gate");
        }
    }
}

type Outcome = (usize, Result<(), StorageError>);

fn kv_batch(key: impl Into<Bytes>, value: impl Into<Bytes>) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put_kv(key, value);
    batch
}

/// Submits `batch` tagged `tag`; its outcome arrives on `outcomes`.
fn submit(gc: &GroupCommit, batch: WriteBatch, tag: usize, outcomes: &mpsc::Sender<Outcome>) {
    let outcomes = outcomes.clone();
    gc.submit(
        batch,
        Box::new(move |result| {
            outcomes.send((tag, result)).expect("test receiver alive");
        }),
    );
}

fn collect(outcomes: &mpsc::Receiver<Outcome>, n: usize) -> Vec<Outcome> {
    (0..n).map(|_| outcomes.recv().expect("callback")).collect()
}

fn get(storage: &dyn Storage, key: &str) -> Option<Bytes> {
    storage.get_kv(key.as_bytes()).expect("get_kv")
}

#[test]
fn merges_batches_queued_while_a_write_is_in_flight() {
    let storage = closed();
    let gc = Arc::new(GroupCommit::start(storage.clone(), GroupCommitConfig::default()));
    let (tx, rx) = mpsc::channel();

    // The first batch occupies the thread at the gate...
    submit(&gc, kv_batch("key/first", "v"), 0, &tx);
    storage.hook().wait_for_writes_entered(1);
    // ...while four threads queue 25 batches each.
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let (gc, tx) = (Arc::clone(&gc), tx.clone());
            thread::spawn(move || {
                for i in 0..25 {
                    let tag = 1 + t * 25 + i;
                    submit(&gc, kv_batch(format!("key/{tag}"), "v"), tag, &tx);
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().expect("submitter");
    }
    storage.hook().open_gate();

    let outcomes = collect(&rx, 101);
    for (tag, result) in &outcomes {
        assert!(result.is_ok(), "batch {tag}: {result:?}");
    }
    assert!(get(&*storage, "key/first").is_some());
    for tag in 1..=100 {
        assert!(get(&*storage, &format!("key/{tag}")).is_some(), "key/{tag} missing");
    }
    // One write for the first batch, one for the other hundred.
    assert_eq!(storage.hook().write_ops(), vec![1, 100]);
    assert!(storage.hook().state.lock().expect("gate").syncs.iter().all(|s| *s));
    assert_eq!(gc.stats(), GroupCommitStats { synced_writes: 2, batches_committed: 101, failed_writes: 0 });
}

#[test]
fn concurrent_submitters_without_a_gate_all_commit() {
    let storage = open();
    let gc = Arc::new(GroupCommit::start(storage.clone(), GroupCommitConfig::default()));
    let (tx, rx) = mpsc::channel();
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let (gc, tx) = (Arc::clone(&gc), tx.clone());
            thread::spawn(move || {
                for i in 0..50 {
                    let tag = t * 50 + i;
                    submit(&gc, kv_batch(format!("key/{tag}"), "v"), tag, &tx);
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().expect("submitter");
    }
    let outcomes = collect(&rx, 200);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()));
    for tag in 0..200 {
        assert!(get(&*storage, &format!("key/{tag}")).is_some(), "key/{tag} missing");
    }
    let stats = gc.stats();
    assert_eq!(stats.batches_committed, 200);
    assert!(stats.synced_writes <= 200, "{stats:?}");
    assert_eq!(stats.synced_writes as usize, storage.hook().write_ops().len());
}

#[test]
fn merged_write_holds_at_most_batches_max_batches() {
    let storage = closed();
    let config = GroupCommitConfig { batches_max: 4, ..GroupCommitConfig::default() };
    let gc = GroupCommit::start(storage.clone(), config);
    let (tx, rx) = mpsc::channel();
    submit(&gc, kv_batch("k", "0"), 0, &tx);
    storage.hook().wait_for_writes_entered(1);
    for tag in 1..=10 {
        submit(&gc, kv_batch(format!("k{tag}"), "v"), tag, &tx);
    }
    storage.hook().open_gate();
    collect(&rx, 11);
    assert_eq!(storage.hook().write_ops(), vec![1, 4, 4, 2]);
}

#[test]
fn merged_write_holds_at_most_batch_bytes_max_bytes() {
    let storage = closed();
    let config = GroupCommitConfig { batch_bytes_max: 100, ..GroupCommitConfig::default() };
    let gc = GroupCommit::start(storage.clone(), config);
    let (tx, rx) = mpsc::channel();
    let value = "v".repeat(38); // 2 + 38 = 40 bytes per batch: two fit, three do not.
    submit(&gc, kv_batch("k0", value.clone()), 0, &tx);
    storage.hook().wait_for_writes_entered(1);
    for tag in 1..=5 {
        submit(&gc, kv_batch(format!("k{tag}"), value.clone()), tag, &tx);
    }
    // A batch larger than the bound on its own is written alone.
    submit(&gc, kv_batch("big", "x".repeat(500)), 6, &tx);
    submit(&gc, kv_batch("k7", value.clone()), 7, &tx);
    storage.hook().open_gate();
    let outcomes = collect(&rx, 8);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(storage.hook().write_ops(), vec![1, 2, 2, 1, 1, 1]);
    // Callbacks come in submission order.
    let tags: Vec<usize> = outcomes.iter().map(|(tag, _)| *tag).collect();
    assert_eq!(tags, (0..8).collect::<Vec<_>>());
}

#[test]
fn later_submission_wins_within_a_merged_write() {
    let storage = closed();
    let gc = GroupCommit::start(storage.clone(), GroupCommitConfig::default());
    let (tx, rx) = mpsc::channel();
    submit(&gc, kv_batch("other", "x"), 0, &tx);
    storage.hook().wait_for_writes_entered(1);
    submit(&gc, kv_batch("key", "first"), 1, &tx);
    submit(&gc, kv_batch("key", "second"), 2, &tx);
    storage.hook().open_gate();
    collect(&rx, 3);
    assert_eq!(storage.hook().write_ops(), vec![1, 2]);
    assert_eq!(get(&*storage, "key").as_deref(), Some(&b"second"[..]));
}

#[test]
fn later_submission_wins_across_writes() {
    let storage = Arc::new(MemStorage::new());
    let gc = GroupCommit::start(storage.clone(), GroupCommitConfig::default());
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        submit(&gc, kv_batch("counter", i.to_string()), i, &tx);
    }
    collect(&rx, 100);
    assert_eq!(get(&*storage, "counter").as_deref(), Some(&b"99"[..]));
    // Everything acknowledged is durable.
    storage.crash();
    assert_eq!(get(&*storage, "counter").as_deref(), Some(&b"99"[..]));
}

#[test]
fn drop_writes_the_queue_before_stopping() {
    let storage = Arc::new(MemStorage::new());
    let gc = GroupCommit::start(storage.clone(), GroupCommitConfig::default());
    let (tx, rx) = mpsc::channel();
    for tag in 0..50 {
        submit(&gc, kv_batch(format!("key/{tag}"), "v"), tag, &tx);
    }
    drop(gc);
    let outcomes: Vec<Outcome> = rx.try_iter().collect();
    assert_eq!(outcomes.len(), 50);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()));
    storage.crash();
    assert_eq!(storage.scan_kv_prefix(b"key/", None, 100).expect("scan").len(), 50);
}

#[test]
fn submit_and_wait_returns_once_durable() {
    let storage = Arc::new(MemStorage::new());
    let gc = GroupCommit::start(storage.clone(), GroupCommitConfig::default());
    gc.submit_and_wait(kv_batch("k", "v")).expect("write");
    storage.crash();
    assert_eq!(get(&*storage, "k").as_deref(), Some(&b"v"[..]));
}

/// Fails every write, or panics in it.
struct Broken {
    panic: bool,
}

impl Storage for Broken {
    fn write(&self, _: WriteBatch, _: bool) -> Result<(), StorageError> {
        assert!(!self.panic, "storage bug (expected by this test)");
        Err(StorageError::Io("disk on fire".to_owned()))
    }

    fn get_kv(&self, _: &[u8]) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    fn get_instance(&self, _: InstanceKey) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    fn get_meta(&self, _: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    fn scan_instances(
        &self,
        _: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    fn scan_executed(
        &self,
        _: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    fn scan_conflicts(
        &self,
        _: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    fn scan_kv_prefix(
        &self,
        _: &[u8],
        _: Option<&[u8]>,
        _: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        Ok(Vec::new())
    }

    fn get_control_state(&self, _: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    fn scan_control_log(
        &self,
        _: u64,
        _: u64,
        _: &mut dyn FnMut(u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        Ok(None)
    }
}

#[test]
fn write_error_reaches_every_batch_of_the_write() {
    let gc = GroupCommit::start(Arc::new(Broken { panic: false }), GroupCommitConfig::default());
    let (tx, rx) = mpsc::channel();
    for tag in 0..10 {
        submit(&gc, kv_batch("k", "v"), tag, &tx);
    }
    for (tag, result) in collect(&rx, 10) {
        assert!(
            matches!(&result, Err(StorageError::Io(m)) if m == "disk on fire"),
            "batch {tag}: {result:?}"
        );
    }
    let stats = gc.stats();
    assert_eq!((stats.synced_writes, stats.batches_committed), (0, 0));
    assert!(stats.failed_writes >= 1);
}

#[test]
fn a_panicking_write_fails_its_batches_with_closed() {
    let gc = GroupCommit::start(Arc::new(Broken { panic: true }), GroupCommitConfig::default());
    let (tx, rx) = mpsc::channel();
    submit(&gc, kv_batch("k", "v"), 0, &tx);
    let (_, result) = rx.recv().expect("callback");
    assert!(matches!(result, Err(StorageError::Closed)), "{result:?}");
    // Later submissions fail too, whether they reach the queue before it is dropped or not.
    submit(&gc, kv_batch("k", "v"), 1, &tx);
    let (_, result) = rx.recv().expect("callback");
    assert!(matches!(result, Err(StorageError::Closed)), "{result:?}");
    assert_eq!(
        gc.submit_and_wait(kv_batch("k", "v")).expect_err("closed").to_string(),
        StorageError::Closed.to_string()
    );
}
