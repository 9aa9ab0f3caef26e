use bytes::Bytes;

use crate::{InstanceKey, MemStorage, Storage, WriteBatch};

fn put(storage: &MemStorage, key: &'static str, value: &'static str, sync: bool) {
    let mut batch = WriteBatch::new();
    batch.put_kv(key, value);
    storage.write(batch, sync).expect("write");
}

fn get(storage: &MemStorage, key: &str) -> Option<Bytes> {
    storage.get_kv(key.as_bytes()).expect("get_kv")
}

#[test]
fn crash_keeps_synced_and_drops_unsynced_writes() {
    let storage = MemStorage::new();
    put(&storage, "synced", "1", true);
    put(&storage, "unsynced", "2", false);
    put(&storage, "synced", "overwritten-unsynced", false);
    assert_eq!(storage.unsynced_writes(), 2);
    assert_eq!(get(&storage, "unsynced").as_deref(), Some(&b"2"[..]));

    storage.crash();

    assert_eq!(storage.unsynced_writes(), 0);
    assert_eq!(get(&storage, "synced").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&storage, "unsynced"), None);
}

#[test]
fn sync_makes_earlier_unsynced_writes_durable() {
    let storage = MemStorage::new();
    put(&storage, "a", "1", false);
    put(&storage, "b", "2", false);
    put(&storage, "c", "3", true);
    put(&storage, "d", "4", false);
    storage.crash();
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(get(&storage, key).as_deref(), Some(value.as_bytes()), "{key}");
    }
    assert_eq!(get(&storage, "d"), None);
}

#[test]
fn empty_synced_write_makes_earlier_writes_durable() {
    let storage = MemStorage::new();
    put(&storage, "a", "1", false);
    storage.write(WriteBatch::new(), true).expect("sync");
    storage.crash();
    assert_eq!(get(&storage, "a").as_deref(), Some(&b"1"[..]));
}

#[test]
fn crash_restores_what_unsynced_deletes_removed() {
    let storage = MemStorage::new();
    let id = InstanceKey { replica: 1, slot: 1 };
    let mut batch = WriteBatch::new();
    batch.put_kv("k", "v");
    batch.put_instance(id, "r");
    storage.write(batch, true).expect("write");

    let mut batch = WriteBatch::new();
    batch.delete_kv("k");
    batch.delete_instance(id);
    batch.mark_executed(id);
    batch.put_meta("m", "x");
    batch.put_conflict("c", "x");
    storage.write(batch, false).expect("write");
    assert_eq!(get(&storage, "k"), None);

    storage.crash();
    assert_eq!(get(&storage, "k").as_deref(), Some(&b"v"[..]));
    assert!(storage.get_instance(id).expect("get").is_some());
    assert_eq!(storage.get_meta("m").expect("get"), None);
    let mut executed = 0;
    storage
        .scan_executed(&mut |_| {
            executed += 1;
            Ok(())
        })
        .expect("scan");
    assert_eq!(executed, 0);
    let mut conflicts = 0;
    storage
        .scan_conflicts(&mut |_, _| {
            conflicts += 1;
            Ok(())
        })
        .expect("scan");
    assert_eq!(conflicts, 0);
}

#[test]
fn storage_keeps_working_after_crash() {
    let storage = MemStorage::new();
    put(&storage, "a", "1", false);
    storage.crash();
    storage.crash();
    put(&storage, "b", "2", false);
    put(&storage, "c", "3", true);
    storage.crash();
    assert_eq!(get(&storage, "a"), None);
    assert_eq!(get(&storage, "b").as_deref(), Some(&b"2"[..]));
    assert_eq!(get(&storage, "c").as_deref(), Some(&b"3"[..]));
}
