use std::fs;
use std::path::Path;

use bytes::Bytes;

use crate::rocks::{CF_CONTROL_LOG, CF_EXECUTED, CF_INSTANCES, CF_KV, COLUMN_FAMILIES};
use crate::{InstanceKey, OpenFailure, RocksStorage, Storage, StorageError, WriteBatch};

fn open(path: &Path) -> RocksStorage {
    RocksStorage::open(path).unwrap_or_else(|e| panic!("{e}"))
}

fn open_err(path: &Path) -> StorageError {
    match RocksStorage::open(path) {
        Ok(_) => panic!("open {} succeeded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn reopen_resumes_with_synced_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = InstanceKey { replica: 2, slot: 40 };
    {
        let storage = open(dir.path());
        let mut batch = WriteBatch::new();
        batch.put_instance(id, "record");
        batch.mark_executed(id);
        batch.put_conflict("c", "conflict");
        batch.put_kv("k", "v");
        batch.put_meta("node_id", "n1");
        storage.write(batch, true).expect("write");
        let mut batch = WriteBatch::new();
        batch.delete_kv("k");
        batch.put_kv("k2", "v2");
        storage.write(batch, true).expect("write");
    }

    let storage = open(dir.path());
    assert_eq!(storage.path(), dir.path());
    assert_eq!(storage.get_instance(id).expect("get").as_deref(), Some(&b"record"[..]));
    assert_eq!(storage.get_kv(b"k").expect("get"), None);
    assert_eq!(storage.get_kv(b"k2").expect("get").as_deref(), Some(&b"v2"[..]));
    assert_eq!(storage.get_meta("node_id").expect("get").as_deref(), Some(&b"n1"[..]));
    let mut executed = Vec::new();
    storage
        .scan_executed(&mut |id| {
            executed.push(id);
            Ok(())
        })
        .expect("scan");
    assert_eq!(executed, vec![id]);
    let mut conflicts = Vec::new();
    storage
        .scan_conflicts(&mut |k, r| {
            conflicts.push((k.to_vec(), r.to_vec()));
            Ok(())
        })
        .expect("scan");
    assert_eq!(conflicts, vec![(b"c".to_vec(), b"conflict".to_vec())]);
}

#[test]
fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = open(dir.path());
    let err = open_err(dir.path());
    let message = err.to_string();
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Locked, .. }), "{err:?}");
    assert!(message.contains(&dir.path().display().to_string()), "{message}");
    assert!(message.contains("is another mortar node using it?"), "{message}");
    assert!(err.is_retryable());
}

#[test]
fn garbage_current_file_is_an_open_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()));
    fs::write(dir.path().join("CURRENT"), b"\x00\x01garbage").expect("write CURRENT");
    let err = open_err(dir.path());
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("looks corrupt"), "{message}");
    // Never the unsafe advice: a node that forgot its votes can break agreement.
    assert!(message.contains("keep this node stopped"), "{message}");
    assert!(!err.is_retryable());
}

#[test]
fn garbage_manifest_is_an_open_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let storage = open(dir.path());
        let mut batch = WriteBatch::new();
        batch.put_kv("k", "v");
        storage.write(batch, true).expect("write");
    }
    let mut manifests = 0;
    for entry in fs::read_dir(dir.path()).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        if name.starts_with("MANIFEST-") {
            fs::write(&path, vec![0xa5; 4096]).expect("write MANIFEST");
            manifests += 1;
        }
    }
    assert!(manifests > 0, "no MANIFEST file found");
    let err = open_err(dir.path());
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
    assert!(err.to_string().contains("MANIFEST"), "{err}");
}

#[test]
fn a_file_in_place_of_the_directory_is_an_open_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("not-a-directory");
    fs::write(&path, b"hello").expect("write file");
    let err = open_err(&path);
    assert!(matches!(err, StorageError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-directory"), "{err}");
}

#[test]
fn malformed_stored_instance_key_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), COLUMN_FAMILIES).expect("raw open");
        for name in [CF_INSTANCES, CF_EXECUTED] {
            let cf = db.cf_handle(name).expect("column family");
            db.put_cf(cf, b"short", b"record").expect("raw put");
        }
    }
    let storage = open(dir.path());
    let err = storage.scan_instances(&mut |_, _| Ok(())).expect_err("scan must fail");
    assert!(matches!(&err, StorageError::Corrupt { what } if what.contains("5 bytes")), "{err:?}");
    let err = storage.scan_executed(&mut |_| Ok(())).expect_err("scan must fail");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_directory_made_before_the_control_tables_opens_with_them_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        // The tables of the version before the control plane.
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let old = ["instances", "executed", "conflicts", "kv", "meta"];
        let db = rocksdb::DB::open_cf(&options, dir.path(), old).expect("raw open");
        db.put_cf(db.cf_handle(CF_KV).expect("kv"), b"k", b"v").expect("raw put");
        db.flush_wal(true).expect("sync");
    }
    let storage = open(dir.path());
    assert_eq!(storage.get_kv(b"k").expect("get_kv").as_deref(), Some(&b"v"[..]));
    assert_eq!(storage.get_control_state("vote").expect("get_control_state"), None);
    assert_eq!(storage.last_control_log().expect("last_control_log"), None);
    let mut batch = WriteBatch::new();
    batch.put_control_log(1, "entry");
    storage.write(batch, true).expect("write");
    drop(storage);
    let storage = open(dir.path());
    assert_eq!(storage.last_control_log().expect("last_control_log"), Some((1, Bytes::from("entry"))));
}

#[test]
fn malformed_stored_control_log_key_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), COLUMN_FAMILIES).expect("raw open");
        db.put_cf(db.cf_handle(CF_CONTROL_LOG).expect("cf"), b"short", b"entry").expect("raw put");
    }
    let storage = open(dir.path());
    let err = storage.scan_control_log(0, u64::MAX, &mut |_, _| Ok(())).expect_err("scan must fail");
    assert!(matches!(&err, StorageError::Corrupt { what } if what.contains("5 bytes")), "{err:?}");
    let err = storage.last_control_log().expect_err("last must fail");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

// A disk that lost synced bytes is detected at open (see `crate::watermark`), the ways issue 15
// found it: a truncated WAL, flipped bytes in it, a deleted WAL, a truncated or deleted table file.

/// Writes `count` synced batches of one 1 KiB value each and closes the database cleanly.
fn fill(dir: &Path, count: usize) {
    let storage = open(dir);
    for i in 0..count {
        let mut batch = WriteBatch::new();
        batch.put_kv(format!("key{i}"), vec![b'v'; 1024]);
        storage.write(batch, true).expect("write");
    }
}

/// The files in `dir` whose names end in `suffix`, in name order.
fn files_ending(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn newest_wal(dir: &Path) -> std::path::PathBuf {
    let mut wals = files_ending(dir, ".log");
    wals.retain(|p| p.file_name().is_some_and(|n| n != "node.log"));
    wals.pop().expect("a WAL file")
}

fn assert_lost_synced_writes(err: &StorageError) {
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("lost synced writes"), "{message}");
    assert!(message.contains("keep this node stopped"), "{message}");
}

#[test]
fn a_truncated_wal_refuses_to_open_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path(), 200);
    // A node's own log in its data directory (as `mortar dev` keeps it) is not a WAL.
    fs::write(dir.path().join("node.log"), "a log line\n").expect("write node.log");
    let wal = newest_wal(dir.path());
    let len = fs::metadata(&wal).expect("stat").len();
    fs::OpenOptions::new().write(true).open(&wal).expect("open WAL").set_len(len / 2).expect("truncate");
    let err = open_err(dir.path());
    assert_lost_synced_writes(&err);
    let name = wal.file_name().expect("name").to_string_lossy().into_owned();
    assert!(err.to_string().contains(&name), "the message names {name}: {err}");
    // Refused again, naming the same file: the open that refused neither made the loss look
    // normal nor removed the damaged WAL.
    let again = open_err(dir.path());
    assert_lost_synced_writes(&again);
    assert!(again.to_string().contains(&name), "the second refusal names {name}: {again}");
}

#[test]
fn flipped_bytes_in_the_wal_refuse_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path(), 200);
    let wal = newest_wal(dir.path());
    let mut bytes = fs::read(&wal).expect("read WAL");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 8] {
        *b ^= 0x5a;
    }
    fs::write(&wal, bytes).expect("write WAL");
    assert_lost_synced_writes(&open_err(dir.path()));
}

#[test]
fn a_deleted_wal_refuses_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill(dir.path(), 50);
    fs::remove_file(newest_wal(dir.path())).expect("delete WAL");
    assert_lost_synced_writes(&open_err(dir.path()));
}

/// Fills a database and flushes its memtables, so that the data is in table (`.sst`) files.
fn fill_tables(dir: &Path) {
    fill(dir, 100);
    let storage = open(dir);
    storage
        .db
        .flush_cfs_opt(
            &COLUMN_FAMILIES.iter().map(|name| storage.db.cf_handle(name).expect("cf")).collect::<Vec<_>>(),
            &rocksdb::FlushOptions::default(),
        )
        .expect("flush");
    assert!(!files_ending(dir, ".sst").is_empty(), "the flush wrote no table file");
}

#[test]
fn a_truncated_table_file_refuses_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill_tables(dir.path());
    let sst = files_ending(dir.path(), ".sst").pop().expect("an sst");
    let len = fs::metadata(&sst).expect("stat").len();
    fs::OpenOptions::new().write(true).open(&sst).expect("open sst").set_len(len / 2).expect("truncate");
    let err = open_err(dir.path());
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
}

#[test]
fn a_deleted_table_file_refuses_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill_tables(dir.path());
    let sst = files_ending(dir.path(), ".sst").pop().expect("an sst");
    fs::remove_file(&sst).expect("delete sst");
    let err = open_err(dir.path());
    assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
}

#[test]
fn flipped_bytes_in_a_table_file_are_detected_when_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    fill_tables(dir.path());
    for sst in files_ending(dir.path(), ".sst") {
        let mut bytes = fs::read(&sst).expect("read sst");
        // The first data blocks: past the first few bytes, well before the footer and index.
        let end = 1024.min(bytes.len() / 2);
        for b in &mut bytes[64..end] {
            *b ^= 0x5a;
        }
        fs::write(&sst, bytes).expect("write sst");
    }
    let storage = match RocksStorage::open(dir.path()) {
        Ok(storage) => storage,
        Err(err) => {
            assert!(matches!(err, StorageError::Open { kind: OpenFailure::Corrupt, .. }), "{err:?}");
            return;
        }
    };
    let errors = (0..100).filter(|i| storage.get_kv(format!("key{i}").as_bytes()).is_err()).count();
    assert!(errors > 0, "no read noticed the flipped bytes");
    let err = storage.get_kv(b"key0").expect_err("the first block is damaged");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_torn_unsynced_tail_still_opens_with_every_synced_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = tempfile::tempdir().expect("temp dir");
    {
        let storage = open(dir.path());
        for i in 0..50 {
            let mut batch = WriteBatch::new();
            batch.put_kv(format!("key{i}"), vec![b'v'; 1024]);
            storage.write(batch, true).expect("write");
        }
        // Let the watermark thread write what was synced.
        std::thread::sleep(crate::watermark::PERSIST_INTERVAL * 3);
        let mut batch = WriteBatch::new();
        batch.put_kv("unsynced", vec![b'u'; 64 * 1024]);
        storage.write(batch, false).expect("write");
        // What a crash leaves: the files as they are now, the last record torn.
        copy_files(dir.path(), copy.path());
    }
    let wal = newest_wal(copy.path());
    let len = fs::metadata(&wal).expect("stat").len();
    fs::OpenOptions::new().write(true).open(&wal).expect("open WAL").set_len(len - 1000).expect("truncate");
    let storage = open(copy.path());
    for i in 0..50 {
        assert!(storage.get_kv(format!("key{i}").as_bytes()).expect("get").is_some(), "synced key{i}");
    }
    assert_eq!(storage.get_kv(b"unsynced").expect("get"), None, "the torn record is dropped");
}

/// A checkpoint holds what was written before it and nothing after; it opens as a data directory
/// of its own, and a second checkpoint into the same directory is refused.
#[test]
fn a_checkpoint_is_a_consistent_copy_that_opens_on_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = open(&dir.path().join("db"));
    let mut batch = WriteBatch::new();
    batch.put_kv(Bytes::from_static(b"a"), Bytes::from_static(b"1"));
    batch.put_kv(Bytes::from_static(b"b"), Bytes::from_static(b"2"));
    storage.write(batch, true).unwrap();
    let copy = dir.path().join("copy");
    storage.checkpoint(&copy).unwrap();
    let mut after = WriteBatch::new();
    after.put_kv(Bytes::from_static(b"c"), Bytes::from_static(b"3"));
    after.delete_kv(Bytes::from_static(b"a"));
    storage.write(after, true).unwrap();
    assert!(storage.checkpoint(&copy).is_err(), "the directory exists already");

    let copied = open(&copy);
    let pairs = copied.scan_kv_prefix(b"", None, 10).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
    assert_eq!(storage.get_kv(b"a").unwrap(), None, "the original moved on");
}

/// Flushes every column family's memtable to table files: the WALs written so far become obsolete.
fn flush_all(storage: &RocksStorage) {
    let families: Vec<_> =
        COLUMN_FAMILIES.iter().map(|name| storage.db.cf_handle(name).expect("cf")).collect();
    storage.db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default()).expect("flush");
}

/// A copy of `dir`'s files as they are now (what a crash would leave), into `to`.
fn copy_files(dir: &Path, to: &Path) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        if name != "LOCK" {
            fs::copy(&path, to.join(name)).expect("copy");
        }
    }
}

/// Writes 1 KiB values under `prefix`0.. `prefix`(count-1), each synced.
fn write_synced(storage: &RocksStorage, prefix: &str, count: usize) {
    for i in 0..count {
        let mut batch = WriteBatch::new();
        batch.put_kv(format!("{prefix}{i}"), vec![b'v'; 1024]);
        storage.write(batch, true).expect("write");
    }
}

/// A WAL that reuses an obsolete WAL's file (`recycle_log_file_num`), with the older log's records
/// still in it past the new ones, recovers exactly the synced writes after a crash; and when the
/// disk gives back the file's old contents instead of the synced writes, the open refuses as for
/// any other lost synced write.
#[test]
fn a_recycled_wal_recovers_its_synced_writes_and_a_lost_one_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    let crashed = tempfile::tempdir().expect("temp dir");
    let lying = tempfile::tempdir().expect("temp dir");
    let old_contents;
    {
        let storage = open(dir.path());
        write_synced(&storage, "first", 300);
        let first = newest_wal(dir.path());
        old_contents = fs::read(&first).expect("read WAL");
        flush_all(&storage); // `first` becomes obsolete: kept for reuse
        write_synced(&storage, "second", 10);
        flush_all(&storage); // the next WAL takes `first`'s file
        write_synced(&storage, "third", 20);
        let wal = newest_wal(dir.path());
        assert!(!first.exists(), "the first WAL's file was neither reused nor kept");
        assert!(
            fs::metadata(&wal).expect("stat").len() >= old_contents.len() as u64,
            "the newest WAL {} is not the first one's file reused: it is shorter than 300 KiB",
            wal.display()
        );
        // Let the watermark thread record what was synced.
        std::thread::sleep(crate::watermark::PERSIST_INTERVAL * 3);
        copy_files(dir.path(), crashed.path());
        copy_files(dir.path(), lying.path());
        // The disk lost every write into the reused file: it holds the first log's records again.
        let name = wal.file_name().expect("name");
        fs::write(lying.path().join(name), &old_contents).expect("write the old contents");
    }
    let storage = open(crashed.path());
    for (prefix, count) in [("first", 300), ("second", 10), ("third", 20)] {
        for i in 0..count {
            let key = format!("{prefix}{i}");
            assert!(storage.get_kv(key.as_bytes()).expect("get").is_some(), "synced {key} is lost");
        }
    }
    assert_lost_synced_writes(&open_err(lying.path()));
}
