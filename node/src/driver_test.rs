//! The driver's round on one replica over in-memory storage: however much a round executes, its
//! writes reach storage in batches within storage's limit, and a synced round syncs even when it
//! has nothing left to write; and a command counts against the node's request bytes until it is
//! answered.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::kv::{KvOp, storage_key};
use crate::state_machine::Op;
use mortar_epoxy::ready::Executed;
use mortar_epoxy::{Config, InstanceId};
use mortar_storage::{Observed, WriteHook};

/// Records the largest write batch and the writes storage was given.
#[derive(Default)]
struct Sizes {
    largest: AtomicUsize,
    writes: AtomicUsize,
    synced: AtomicUsize,
}

impl WriteHook for Sizes {
    fn before_write(&self, batch: &WriteBatch, sync: bool) {
        self.largest.fetch_max(batch.bytes(), Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        if sync {
            self.synced.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Recording = Observed<Sizes>;

fn driver(storage: Arc<Recording>) -> Driver {
    let replica = Replica::new(Config::new(ReplicaId(1), vec![ReplicaId(1)]).expect("config"));
    let counters = Arc::new(Mutex::new(replica.counters()));
    let (epoch, _) = tokio::sync::watch::channel(super::epoch_status(&replica));
    Driver {
        replica,
        storage,
        peers: Peers::new(),
        pending: HashMap::new(),
        proposals: Vec::new(),
        counters,
        last_diagnosis: Instant::now(),
        last_stuck: None,
        recent_actor_ops: crate::actor::recent::RecentOps::new(Instant::now()),
        boot_marker: None,
        previous_cut: None,
        checkpoints: None,
        seal_waiters: Vec::new(),
        switch: None,
        epoch,
    }
}

/// A restarted node's first round, or a round that a late commit unblocks, can execute far more
/// than one write batch holds: before, it was one batch, storage refused it, and the node stopped.
#[test]
fn a_round_that_executes_more_than_a_write_batch_holds_is_written_in_chunks() {
    const INSTANCES: u64 = 100;
    let storage = Arc::new(Recording::new(Sizes::default()));
    let mut driver = driver(storage.clone());
    let value = Bytes::from(vec![7u8; 900 * 1024]);
    let key = |slot: u64| storage_key(format!("key{slot}").as_bytes());
    let executed = (1..=INSTANCES)
        .map(|slot| Executed {
            id: InstanceId { replica: ReplicaId(2), slot },
            commands: vec![Command {
                key: key(slot),
                payload: Op::Kv(KvOp::Put { value: value.clone() }).encode(),
            }],
        })
        .collect();
    assert!(INSTANCES as usize * value.len() > WRITE_BATCH_BYTES_MAX, "the round exceeds one batch");
    driver.perform(Ready { executed, ..Ready::default() }).expect("the round is written");

    let largest = storage.hook().largest.load(Ordering::Relaxed);
    assert!(largest <= WRITE_BATCH_BYTES_MAX, "a write batch of {largest} bytes");
    assert!(storage.hook().writes.load(Ordering::Relaxed) >= 5, "written in several batches");
    for slot in 1..=INSTANCES {
        assert_eq!(storage.get_kv(&key(slot)).expect("get").as_ref(), Some(&value), "key{slot}");
    }
    let mut marked = 0;
    storage
        .scan_executed(&mut |_| {
            marked += 1;
            Ok(())
        })
        .expect("scan");
    assert_eq!(marked, INSTANCES, "every instance is marked executed with its effects");
}

/// A round that needs a sync (a checkpoint before progress reports) syncs even when it has nothing
/// to write: what earlier rounds wrote unsynced must be durable before its promises leave.
#[test]
fn a_synced_round_with_nothing_to_write_still_syncs() {
    let storage = Arc::new(Recording::new(Sizes::default()));
    let mut driver = driver(storage.clone());
    let mut earlier = WriteBatch::new();
    earlier.put_kv("k/earlier", "unsynced");
    storage.write(earlier, false).expect("write");
    let ready = Ready { persist: vec![Record::Checkpoint], ..Ready::default() };
    assert!(ready.needs_sync());
    driver.perform(ready).expect("perform");
    assert_eq!(storage.hook().synced.load(Ordering::Relaxed), 1, "one synced write");
    storage.inner().crash();
    assert!(storage.get_kv(b"k/earlier").expect("get").is_some(), "the sync made it durable");
}

/// A command counts against the node's request bytes until the driver answers or drops it, not
/// until its caller stops waiting: before, each request timeout let another 64 MiB in while the
/// commands already proposed were still in epoxy, and under more load than the cluster commits
/// the backlog grew without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_caller_gave_up_holds_its_bytes_until_the_driver_lets_it_go() {
    // One replica of three, and no peers: nothing it proposes commits.
    let replica =
        Replica::new(Config::new(ReplicaId(1), vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)]).unwrap());
    let storage: Arc<dyn Storage> = Arc::new(mortar_storage::MemStorage::new());
    let timeout = Duration::from_millis(50);
    let (handle, thread) =
        start(replica, storage, Peers::new(), timeout, None, EpochOptions::default()).expect("start");
    let payload = Bytes::from(vec![7u8; 1024 * 1024]);
    let command_bytes = Command { key: Bytes::from_static(b"k"), payload: payload.clone() }.bytes();
    let result = handle.execute(Bytes::from_static(b"k"), payload).await;
    assert!(matches!(result, Err(ProposeError::Unavailable(_))), "{result:?}");
    assert_eq!(
        handle.admission.available_permits(),
        REQUEST_BYTES_INFLIGHT_MAX - command_bytes,
        "the timed-out command is still in epoxy, and still counted"
    );
    handle.stop().await;
    tokio::task::spawn_blocking(move || thread.join()).await.unwrap().expect("the driver ends");
    assert_eq!(handle.admission.available_permits(), REQUEST_BYTES_INFLIGHT_MAX, "dropped with the driver");
}
