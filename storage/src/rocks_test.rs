use std::fs;
use std::path::Path;

use crate::rocks::{CF_EXECUTED, CF_INSTANCES, COLUMN_FAMILIES};
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
