//! The contract every [`Storage`] implementation meets, as a test suite.
//!
//! Each case takes a fresh, empty storage and panics if the storage breaks the contract. Run all
//! of them against a new implementation with [`run_all`]:
//!
//! ```
//! use mortar_storage::{MemStorage, Storage, conformance};
//!
//! conformance::run_all(&|| Box::new(MemStorage::new()) as Box<dyn Storage>);
//! ```

use bytes::Bytes;

use crate::{CONTROL_LOG_INDEX_MAX, InstanceKey, Storage, StorageError, WRITE_BATCH_BYTES_MAX, WriteBatch};

/// One contract test.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    /// Runs the case on an empty storage; panics on a violation.
    pub run: fn(&dyn Storage),
}

/// Every case, in the order [`run_all`] runs them.
pub const CASES: &[Case] = &[
    Case { name: "batch_applies_every_table", run: batch_applies_every_table },
    Case { name: "missing_keys_are_none", run: missing_keys_are_none },
    Case { name: "delete_removes", run: delete_removes },
    Case {
        name: "forget_instances_removes_a_replicas_prefix",
        run: forget_instances_removes_a_replicas_prefix,
    },
    Case { name: "later_op_in_batch_wins", run: later_op_in_batch_wins },
    Case { name: "instances_scan_in_replica_slot_order", run: instances_scan_in_replica_slot_order },
    Case { name: "executed_scan_in_replica_slot_order", run: executed_scan_in_replica_slot_order },
    Case { name: "conflicts_scan_in_key_order", run: conflicts_scan_in_key_order },
    Case { name: "kv_prefix_scan", run: kv_prefix_scan },
    Case { name: "kv_prefix_scan_pages", run: kv_prefix_scan_pages },
    Case { name: "meta_round_trip", run: meta_round_trip },
    Case { name: "scan_callback_error_stops_scan", run: scan_callback_error_stops_scan },
    Case { name: "scan_sees_state_at_its_start", run: scan_sees_state_at_its_start },
    Case { name: "large_value_round_trips", run: large_value_round_trips },
    Case { name: "empty_batch_is_fine", run: empty_batch_is_fine },
    Case { name: "unsynced_write_is_visible", run: unsynced_write_is_visible },
    Case { name: "oversize_batch_is_rejected", run: oversize_batch_is_rejected },
    Case { name: "control_log_scans_in_index_order", run: control_log_scans_in_index_order },
    Case { name: "control_log_delete_range", run: control_log_delete_range },
    Case {
        name: "control_log_scan_callback_error_stops_scan",
        run: control_log_scan_callback_error_stops_scan,
    },
    Case { name: "control_state_round_trip", run: control_state_round_trip },
];

/// Runs every case in [`CASES`], each on a new storage from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Storage>) {
    for case in CASES {
        // Shown by the test harness when the case fails.
        eprintln!("storage conformance case: {}", case.name);
        let storage = make();
        (case.run)(&*storage);
    }
}

fn ok<T>(result: Result<T, StorageError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn write(storage: &dyn Storage, batch: WriteBatch) {
    ok(storage.write(batch, true), "write");
}

fn key(replica: u32, slot: u64) -> InstanceKey {
    InstanceKey { replica, slot }
}

fn instances(storage: &dyn Storage) -> Vec<(InstanceKey, Vec<u8>)> {
    let mut out = Vec::new();
    let scan = storage.scan_instances(&mut |id, record| {
        out.push((id, record.to_vec()));
        Ok(())
    });
    ok(scan, "scan_instances");
    out
}

fn executed(storage: &dyn Storage) -> Vec<InstanceKey> {
    let mut out = Vec::new();
    let scan = storage.scan_executed(&mut |id| {
        out.push(id);
        Ok(())
    });
    ok(scan, "scan_executed");
    out
}

fn conflicts(storage: &dyn Storage) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let scan = storage.scan_conflicts(&mut |key, record| {
        out.push((key.to_vec(), record.to_vec()));
        Ok(())
    });
    ok(scan, "scan_conflicts");
    out
}

/// Keys from `scan_kv_prefix`, checking each value is `"v:" + key`.
fn kv_keys(storage: &dyn Storage, prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
    let found = ok(storage.scan_kv_prefix(prefix, start_after, limit), "scan_kv_prefix");
    found
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v, [&b"v:"[..], &k].concat(), "value of kv key {k:?}");
            k.to_vec()
        })
        .collect()
}

/// The control log's entries with `from <= index < to`, by `scan_control_log`.
fn control_log(storage: &dyn Storage, from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let scan = storage.scan_control_log(from, to, &mut |index, entry| {
        out.push((index, entry.to_vec()));
        Ok(())
    });
    ok(scan, "scan_control_log");
    out
}

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|k| k.to_vec()).collect()
}

fn some(value: &[u8]) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(value))
}

/// One batch touching every table is visible in full once written.
pub fn batch_applies_every_table(storage: &dyn Storage) {
    let id = key(3, 9);
    let mut batch = WriteBatch::new();
    batch.put_instance(id, "record");
    batch.mark_executed(id);
    batch.put_conflict("conflict-key", "conflict-record");
    batch.put_kv("user", "data");
    batch.put_meta("node_id", "7");
    batch.put_control_log(4, "log entry");
    batch.put_control_state("vote", "vote record");
    assert_eq!(batch.len(), 7);
    write(storage, batch);

    assert_eq!(ok(storage.get_instance(id), "get_instance"), some(b"record"));
    assert_eq!(instances(storage), vec![(id, b"record".to_vec())]);
    assert_eq!(executed(storage), vec![id]);
    assert_eq!(conflicts(storage), vec![(b"conflict-key".to_vec(), b"conflict-record".to_vec())]);
    assert_eq!(ok(storage.get_kv(b"user"), "get_kv"), some(b"data"));
    assert_eq!(ok(storage.get_meta("node_id"), "get_meta"), some(b"7"));
    assert_eq!(control_log(storage, 0, u64::MAX), vec![(4, b"log entry".to_vec())]);
    assert_eq!(ok(storage.get_control_state("vote"), "get_control_state"), some(b"vote record"));
}

/// Reads of keys never written find nothing, and scans of empty tables visit nothing.
pub fn missing_keys_are_none(storage: &dyn Storage) {
    assert_eq!(ok(storage.get_kv(b"nope"), "get_kv"), None);
    assert_eq!(ok(storage.get_kv(b""), "get_kv empty key"), None);
    assert_eq!(ok(storage.get_instance(key(0, 0)), "get_instance"), None);
    assert_eq!(ok(storage.get_meta("nope"), "get_meta"), None);
    assert!(instances(storage).is_empty());
    assert!(executed(storage).is_empty());
    assert!(conflicts(storage).is_empty());
    assert!(kv_keys(storage, b"", None, 10).is_empty());

    // Neighbours of a stored key are still missing.
    let mut batch = WriteBatch::new();
    batch.put_kv("ab", "v:ab");
    batch.put_instance(key(1, 1), "r");
    batch.put_meta("a", "m");
    write(storage, batch);
    assert_eq!(ok(storage.get_kv(b"a"), "get_kv"), None);
    assert_eq!(ok(storage.get_kv(b"abc"), "get_kv"), None);
    assert_eq!(ok(storage.get_instance(key(1, 2)), "get_instance"), None);
    assert_eq!(ok(storage.get_instance(key(2, 1)), "get_instance"), None);
    assert_eq!(ok(storage.get_meta("ab"), "get_meta"), None);
}

/// Deletes remove kv pairs and instance records; deleting a missing key is fine.
pub fn delete_removes(storage: &dyn Storage) {
    let (a, b) = (key(1, 1), key(1, 2));
    let mut batch = WriteBatch::new();
    batch.put_instance(a, "a");
    batch.put_instance(b, "b");
    batch.mark_executed(a);
    batch.put_kv("k1", "v:k1");
    batch.put_kv("k2", "v:k2");
    batch.put_conflict("c1", "r1");
    batch.put_conflict("c2", "r2");
    write(storage, batch);

    let mut batch = WriteBatch::new();
    batch.delete_instance(a);
    batch.delete_conflict("c1");
    batch.delete_conflict("never-written");
    batch.delete_kv("k1");
    batch.delete_kv("never-written");
    batch.delete_instance(key(9, 9));
    write(storage, batch);

    assert_eq!(ok(storage.get_instance(a), "get_instance"), None);
    assert_eq!(ok(storage.get_instance(b), "get_instance"), some(b"b"));
    assert_eq!(instances(storage), vec![(b, b"b".to_vec())]);
    // Deleting an instance record leaves its executed mark.
    assert_eq!(executed(storage), vec![a]);
    assert_eq!(ok(storage.get_kv(b"k1"), "get_kv"), None);
    assert_eq!(kv_keys(storage, b"k", None, 10), keys(&[b"k2"]));
    assert_eq!(conflicts(storage), vec![(b"c2".to_vec(), b"r2".to_vec())]);
}

/// Ops in a batch apply in order: the later one wins on the same key.
pub fn later_op_in_batch_wins(storage: &dyn Storage) {
    let id = key(2, 2);
    let mut batch = WriteBatch::new();
    batch.put_kv("put-then-delete", "x");
    batch.delete_kv("put-then-delete");
    batch.delete_kv("delete-then-put");
    batch.put_kv("delete-then-put", "second");
    batch.put_kv("put-twice", "first");
    batch.put_kv("put-twice", "second");
    batch.put_instance(id, "first");
    batch.put_instance(id, "second");
    batch.put_conflict("c", "first");
    batch.put_conflict("c", "second");
    batch.put_meta("m", "first");
    batch.put_meta("m", "second");
    write(storage, batch);

    assert_eq!(ok(storage.get_kv(b"put-then-delete"), "get_kv"), None);
    assert_eq!(ok(storage.get_kv(b"delete-then-put"), "get_kv"), some(b"second"));
    assert_eq!(ok(storage.get_kv(b"put-twice"), "get_kv"), some(b"second"));
    assert_eq!(ok(storage.get_instance(id), "get_instance"), some(b"second"));
    assert_eq!(conflicts(storage), vec![(b"c".to_vec(), b"second".to_vec())]);
    assert_eq!(ok(storage.get_meta("m"), "get_meta"), some(b"second"));

    // And a later batch overwrites an earlier one.
    let mut batch = WriteBatch::new();
    batch.put_kv("put-twice", "third");
    write(storage, batch);
    assert_eq!(ok(storage.get_kv(b"put-twice"), "get_kv"), some(b"third"));
}

/// Keys whose byte order differs from numeric order under a naive (little-endian, varint)
/// encoding.
fn awkward_instance_keys() -> Vec<InstanceKey> {
    vec![
        key(1, 256),
        key(0, u64::MAX),
        key(u32::MAX, 0),
        key(1, 255),
        key(256, 1),
        key(0, 0),
        key(1, 1 << 32),
        key(255, u64::MAX),
        key(1, 0),
    ]
}

/// Instance records come back in (replica, slot) order across replicas.
pub fn instances_scan_in_replica_slot_order(storage: &dyn Storage) {
    let ids = awkward_instance_keys();
    let mut batch = WriteBatch::new();
    for id in &ids {
        batch.put_instance(*id, id.to_string());
    }
    write(storage, batch);

    let mut expected: Vec<(InstanceKey, Vec<u8>)> =
        ids.iter().map(|id| (*id, id.to_string().into_bytes())).collect();
    expected.sort();
    assert_eq!(instances(storage), expected);
    for id in &ids {
        let record = ok(storage.get_instance(*id), "get_instance");
        assert_eq!(record, some(id.to_string().as_bytes()), "instance {id}");
    }
}

/// Executed marks come back in (replica, slot) order; marking twice is the same as once.
pub fn executed_scan_in_replica_slot_order(storage: &dyn Storage) {
    let ids = awkward_instance_keys();
    let mut batch = WriteBatch::new();
    for id in &ids {
        batch.mark_executed(*id);
    }
    write(storage, batch);
    let mut batch = WriteBatch::new();
    batch.mark_executed(ids[0]);
    write(storage, batch);

    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(executed(storage), expected);
    // Marks are separate from instance records.
    assert!(instances(storage).is_empty());
}

/// Conflict records come back in byte order of their keys.
pub fn conflicts_scan_in_key_order(storage: &dyn Storage) {
    let list: [&[u8]; 7] = [b"b", b"a\x00", b"\xff", b"ab", b"a", b"\x00", b"B"];
    let mut batch = WriteBatch::new();
    for k in list {
        batch.put_conflict(k.to_vec(), [&b"r:"[..], k].concat());
    }
    write(storage, batch);

    let mut expected: Vec<(Vec<u8>, Vec<u8>)> =
        list.iter().map(|k| (k.to_vec(), [&b"r:"[..], *k].concat())).collect();
    expected.sort();
    assert_eq!(conflicts(storage), expected);
}

fn put_kv_keys(storage: &dyn Storage, list: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for k in list {
        batch.put_kv(k.to_vec(), [&b"v:"[..], k].concat());
    }
    write(storage, batch);
}

/// `scan_kv_prefix` honours the prefix, `start_after` and `limit`.
pub fn kv_prefix_scan(storage: &dyn Storage) {
    put_kv_keys(
        storage,
        &[
            b"user/2",
            b"a",
            b"user",
            b"user/10",
            b"users",
            b"user/1",
            b"usex",
            b"usep",
            b"\xff\xff",
            b"\xff\xff\x01",
            b"\xff",
        ],
    );

    // The prefix "user/" is itself a prefix of "users"'s neighbours; only "user/..." match.
    let user_slash = keys(&[b"user/1", b"user/10", b"user/2"]);
    assert_eq!(kv_keys(storage, b"user/", None, 100), user_slash);
    // A prefix equal to a stored key includes that key.
    assert_eq!(
        kv_keys(storage, b"user", None, 100),
        keys(&[b"user", b"user/1", b"user/10", b"user/2", b"users"])
    );
    assert_eq!(kv_keys(storage, b"user/", None, 2), keys(&[b"user/1", b"user/10"]));
    assert!(kv_keys(storage, b"user/", None, 0).is_empty());
    // start_after excludes itself, whether or not it is stored.
    let after = Some(&b"user/1"[..]);
    assert_eq!(kv_keys(storage, b"user/", after, 100), keys(&[b"user/10", b"user/2"]));
    let after = Some(&b"user/15"[..]);
    assert_eq!(kv_keys(storage, b"user/", after, 100), keys(&[b"user/2"]));
    let after = Some(&b"user/10"[..]);
    assert_eq!(kv_keys(storage, b"user/", after, 1), keys(&[b"user/2"]));
    // start_after before the prefix is no restriction; after it, nothing is left.
    assert_eq!(kv_keys(storage, b"user/", Some(&b"a"[..]), 100), user_slash);
    assert_eq!(kv_keys(storage, b"user/", Some(&b"user/"[..]), 100), user_slash);
    assert!(kv_keys(storage, b"user/", Some(&b"user/2"[..]), 100).is_empty());
    assert!(kv_keys(storage, b"user/", Some(&b"z"[..]), 100).is_empty());
    // No match at all.
    assert!(kv_keys(storage, b"nobody", None, 100).is_empty());
    assert!(kv_keys(storage, b"user/3", None, 100).is_empty());
    // Prefixes ending in 0xff have no simple upper bound.
    assert_eq!(kv_keys(storage, b"\xff", None, 100), keys(&[b"\xff", b"\xff\xff", b"\xff\xff\x01"]));
    assert_eq!(kv_keys(storage, b"\xff\xff", None, 100), keys(&[b"\xff\xff", b"\xff\xff\x01"]));
    // The empty prefix matches every key.
    assert_eq!(kv_keys(storage, b"", None, 100).len(), 11);
    assert_eq!(kv_keys(storage, b"", None, 3), keys(&[b"a", b"usep", b"user"]));
}

/// Paging with `start_after` = last key of the previous page visits every key once.
pub fn kv_prefix_scan_pages(storage: &dyn Storage) {
    let all: Vec<Vec<u8>> = (0..25u32).map(|i| format!("page/{i:03}").into_bytes()).collect();
    let refs: Vec<&[u8]> = all.iter().map(|k| k.as_slice()).collect();
    put_kv_keys(storage, &refs);
    put_kv_keys(storage, &[b"pagf", b"pag"]);

    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv_keys(storage, b"page/", after.as_deref(), 7);
        assert!(page.len() <= 7, "page of {} keys exceeds limit 7", page.len());
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    assert_eq!(seen, all);
}

/// Metadata round-trips and can be overwritten.
pub fn meta_round_trip(storage: &dyn Storage) {
    let mut batch = WriteBatch::new();
    batch.put_meta("cluster_id", "c-1");
    batch.put_meta("node_id", 3u64.to_be_bytes().to_vec());
    batch.put_meta("empty", Bytes::new());
    write(storage, batch);
    assert_eq!(ok(storage.get_meta("cluster_id"), "get_meta"), some(b"c-1"));
    assert_eq!(ok(storage.get_meta("node_id"), "get_meta"), some(&3u64.to_be_bytes()));
    assert_eq!(ok(storage.get_meta("empty"), "get_meta"), some(b""));

    let mut batch = WriteBatch::new();
    batch.put_meta("cluster_id", "c-2");
    write(storage, batch);
    assert_eq!(ok(storage.get_meta("cluster_id"), "get_meta"), some(b"c-2"));
    // Meta names do not leak into other tables.
    assert_eq!(ok(storage.get_kv(b"cluster_id"), "get_kv"), None);
}

/// An error returned by a scan callback stops the scan and is returned by it.
pub fn scan_callback_error_stops_scan(storage: &dyn Storage) {
    let mut batch = WriteBatch::new();
    for slot in 0..5 {
        batch.put_instance(key(1, slot), "r");
        batch.mark_executed(key(1, slot));
        batch.put_conflict(format!("c{slot}"), "r");
    }
    write(storage, batch);
    let stop = || StorageError::Corrupt { what: "stop here".to_owned() };
    let is_stop = |e: &StorageError| matches!(e, StorageError::Corrupt { what } if what == "stop here");

    let mut calls = 0;
    let result = storage.scan_instances(&mut |_, _| {
        calls += 1;
        if calls == 2 { Err(stop()) } else { Ok(()) }
    });
    assert!(result.as_ref().is_err_and(is_stop), "scan_instances returned {result:?}");
    assert_eq!(calls, 2, "scan_instances kept calling after an error");

    let mut calls = 0;
    let result = storage.scan_executed(&mut |_| {
        calls += 1;
        if calls == 3 { Err(stop()) } else { Ok(()) }
    });
    assert!(result.as_ref().is_err_and(is_stop), "scan_executed returned {result:?}");
    assert_eq!(calls, 3, "scan_executed kept calling after an error");

    let mut calls = 0;
    let result = storage.scan_conflicts(&mut |_, _| {
        calls += 1;
        Err(stop())
    });
    assert!(result.as_ref().is_err_and(is_stop), "scan_conflicts returned {result:?}");
    assert_eq!(calls, 1, "scan_conflicts kept calling after an error");
}

/// A scan callback may read and write the storage; the scan sees the state at its start.
pub fn scan_sees_state_at_its_start(storage: &dyn Storage) {
    let mut batch = WriteBatch::new();
    batch.put_conflict("a", "r");
    batch.put_conflict("b", "r");
    batch.put_instance(key(1, 1), "r");
    write(storage, batch);

    let mut visited = Vec::new();
    let scan = storage.scan_conflicts(&mut |k, _| {
        visited.push(k.to_vec());
        let mut batch = WriteBatch::new();
        batch.put_conflict([k, b"-later"].concat(), "r");
        batch.put_conflict("z", "r");
        storage.write(batch, false)?;
        assert_eq!(storage.get_instance(key(1, 1))?, some(b"r"));
        Ok(())
    });
    ok(scan, "scan_conflicts with writes in the callback");
    assert_eq!(visited, keys(&[b"a", b"b"]));
    assert_eq!(conflicts(storage).len(), 5);
}

/// A 1 MiB value round-trips in every table that holds values.
pub fn large_value_round_trips(storage: &dyn Storage) {
    let value: Bytes = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let id = key(1, 1);
    let mut batch = WriteBatch::new();
    batch.put_kv("big", value.clone());
    batch.put_instance(id, value.clone());
    batch.put_conflict("big", value.clone());
    batch.put_meta("big", value.clone());
    write(storage, batch);
    assert!(ok(storage.get_kv(b"big"), "get_kv") == Some(value.clone()), "kv value differs");
    let record = ok(storage.get_instance(id), "get_instance");
    assert!(record == Some(value.clone()), "instance record differs");
    assert!(conflicts(storage) == vec![(b"big".to_vec(), value.to_vec())], "conflict differs");
    assert!(ok(storage.get_meta("big"), "get_meta") == Some(value), "meta differs");
}

/// An empty batch is accepted, synced or not, and changes nothing.
pub fn empty_batch_is_fine(storage: &dyn Storage) {
    ok(storage.write(WriteBatch::new(), true), "empty synced write");
    ok(storage.write(WriteBatch::new(), false), "empty unsynced write");
    let mut batch = WriteBatch::new();
    batch.put_kv("k", "v:k");
    ok(storage.write(batch, false), "write");
    ok(storage.write(WriteBatch::new(), true), "empty synced write");
    assert_eq!(kv_keys(storage, b"", None, 10), keys(&[b"k"]));
}

/// A write without sync is visible to reads at once.
pub fn unsynced_write_is_visible(storage: &dyn Storage) {
    let mut batch = WriteBatch::new();
    batch.put_kv("k", "v:k");
    batch.put_instance(key(1, 1), "r");
    ok(storage.write(batch, false), "unsynced write");
    assert_eq!(ok(storage.get_kv(b"k"), "get_kv"), some(b"v:k"));
    assert_eq!(instances(storage).len(), 1);
}

/// A batch over [`WRITE_BATCH_BYTES_MAX`] fails with `TooLarge` and writes nothing.
pub fn oversize_batch_is_rejected(storage: &dyn Storage) {
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    let mut batch = WriteBatch::new();
    batch.put_kv("first", "v:first");
    let mut i = 0;
    while batch.bytes() <= WRITE_BATCH_BYTES_MAX {
        // Clones share one buffer: the batch is large only by its byte count.
        batch.put_kv(format!("chunk/{i}"), chunk.clone());
        i += 1;
    }
    let result = storage.write(batch, true);
    assert!(
        matches!(result, Err(StorageError::TooLarge { max: WRITE_BATCH_BYTES_MAX, .. })),
        "oversize write returned {result:?}"
    );
    assert_eq!(ok(storage.get_kv(b"first"), "get_kv"), None);
}

/// Forgetting replica 2 through slot 5 removes its records and executed marks up to 5, and nothing
/// of other replicas or later slots.
pub fn forget_instances_removes_a_replicas_prefix(storage: &dyn Storage) {
    let mut batch = WriteBatch::new();
    for replica in 1..=3u32 {
        for slot in [1u64, 5, 6, u64::MAX] {
            let id = InstanceKey { replica, slot };
            batch.put_instance(id, vec![1u8]);
            batch.mark_executed(id);
        }
    }
    storage.write(batch, true).expect("write");
    let mut batch = WriteBatch::new();
    batch.forget_instances(2, 5);
    batch.forget_instances(3, u64::MAX);
    storage.write(batch, true).expect("forget");
    let mut left = Vec::new();
    storage
        .scan_instances(&mut |id, _| {
            left.push((id.replica, id.slot));
            Ok(())
        })
        .expect("scan");
    let expected = vec![(1, 1), (1, 5), (1, 6), (1, u64::MAX), (2, 6), (2, u64::MAX)];
    assert_eq!(left, expected);
    let mut executed = Vec::new();
    storage
        .scan_executed(&mut |id| {
            executed.push((id.replica, id.slot));
            Ok(())
        })
        .expect("scan");
    assert_eq!(executed, expected);
}

/// Indexes whose byte order differs from numeric order under a naive (little-endian, varint)
/// encoding, plus both ends of the range.
const AWKWARD_CONTROL_LOG_INDEXES: [u64; 7] = [256, 0, CONTROL_LOG_INDEX_MAX, 255, 1 << 32, 1, 65_536];

fn put_control_log_indexes(storage: &dyn Storage, indexes: &[u64]) {
    let mut batch = WriteBatch::new();
    for index in indexes {
        batch.put_control_log(*index, format!("e{index}"));
    }
    write(storage, batch);
}

fn entries(indexes: &[u64]) -> Vec<(u64, Vec<u8>)> {
    indexes.iter().map(|i| (*i, format!("e{i}").into_bytes())).collect()
}

/// Control-log entries come back in index order; a scan covers `from <= index < to`, and the
/// last entry is the one with the highest index.
pub fn control_log_scans_in_index_order(storage: &dyn Storage) {
    assert!(control_log(storage, 0, u64::MAX).is_empty());
    assert_eq!(ok(storage.last_control_log(), "last_control_log"), None);
    put_control_log_indexes(storage, &AWKWARD_CONTROL_LOG_INDEXES);

    let mut all = AWKWARD_CONTROL_LOG_INDEXES.to_vec();
    all.sort();
    assert_eq!(control_log(storage, 0, u64::MAX), entries(&all));
    assert_eq!(control_log(storage, 1, 257), entries(&[1, 255, 256]));
    assert_eq!(control_log(storage, 2, 256), entries(&[255]));
    assert_eq!(control_log(storage, 257, 1 << 32), entries(&[65_536]));
    assert_eq!(control_log(storage, CONTROL_LOG_INDEX_MAX, u64::MAX), entries(&[CONTROL_LOG_INDEX_MAX]));
    // Empty and reversed ranges visit nothing.
    assert!(control_log(storage, 5, 5).is_empty());
    assert!(control_log(storage, 300, 2).is_empty());
    let last = ok(storage.last_control_log(), "last_control_log");
    assert_eq!(last, Some((CONTROL_LOG_INDEX_MAX, Bytes::from(format!("e{CONTROL_LOG_INDEX_MAX}")))));

    // A put at an existing index replaces the entry.
    let mut batch = WriteBatch::new();
    batch.put_control_log(255, "replaced");
    write(storage, batch);
    assert_eq!(control_log(storage, 255, 256), vec![(255, b"replaced".to_vec())]);
}

/// `delete_control_log_range` removes exactly `from <= index < to`: a purged prefix, a truncated
/// tail, a hole in the middle; an empty or reversed range removes nothing.
pub fn control_log_delete_range(storage: &dyn Storage) {
    let indexes: Vec<u64> = (1..=20).collect();
    put_control_log_indexes(storage, &indexes);

    let mut batch = WriteBatch::new();
    batch.delete_control_log_range(7, 7);
    batch.delete_control_log_range(9, 3);
    write(storage, batch);
    assert_eq!(control_log(storage, 0, u64::MAX), entries(&indexes));

    // Purge through 5, truncate from 16, and drop 10..12, in one batch.
    let mut batch = WriteBatch::new();
    batch.delete_control_log_range(0, 6);
    batch.delete_control_log_range(16, u64::MAX);
    batch.delete_control_log_range(10, 12);
    write(storage, batch);
    assert_eq!(control_log(storage, 0, u64::MAX), entries(&[6, 7, 8, 9, 12, 13, 14, 15]));
    assert_eq!(ok(storage.last_control_log(), "last_control_log"), Some((15, Bytes::from("e15"))));

    // A delete then a put in one batch leaves the put.
    let mut batch = WriteBatch::new();
    batch.delete_control_log_range(0, u64::MAX);
    batch.put_control_log(16, "e16");
    write(storage, batch);
    assert_eq!(control_log(storage, 0, u64::MAX), entries(&[16]));
    // The control log is its own table: epoxy's instances are untouched by it.
    assert!(instances(storage).is_empty());
}

/// An error returned by the control-log scan callback stops the scan and is returned by it.
pub fn control_log_scan_callback_error_stops_scan(storage: &dyn Storage) {
    put_control_log_indexes(storage, &[1, 2, 3, 4]);
    let mut calls = 0;
    let result = storage.scan_control_log(0, u64::MAX, &mut |_, _| {
        calls += 1;
        if calls == 2 { Err(StorageError::Corrupt { what: "stop here".to_owned() }) } else { Ok(()) }
    });
    assert!(
        matches!(&result, Err(StorageError::Corrupt { what }) if what == "stop here"),
        "scan_control_log returned {result:?}"
    );
    assert_eq!(calls, 2, "scan_control_log kept calling after an error");
}

/// Control-plane state round-trips, is overwritten by a later put, and is apart from `meta`.
pub fn control_state_round_trip(storage: &dyn Storage) {
    assert_eq!(ok(storage.get_control_state("vote"), "get_control_state"), None);
    let mut batch = WriteBatch::new();
    batch.put_control_state("vote", "v1");
    batch.put_control_state("committed", "c1");
    batch.put_control_state("empty", Bytes::new());
    write(storage, batch);
    assert_eq!(ok(storage.get_control_state("vote"), "get_control_state"), some(b"v1"));
    assert_eq!(ok(storage.get_control_state("committed"), "get_control_state"), some(b"c1"));
    assert_eq!(ok(storage.get_control_state("empty"), "get_control_state"), some(b""));

    let mut batch = WriteBatch::new();
    batch.put_control_state("vote", "v2");
    write(storage, batch);
    assert_eq!(ok(storage.get_control_state("vote"), "get_control_state"), some(b"v2"));
    assert_eq!(ok(storage.get_meta("vote"), "get_meta"), None);
    assert_eq!(ok(storage.get_control_state("vot"), "get_control_state"), None);
}
