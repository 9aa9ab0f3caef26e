//! Runs the conformance suite against every implementation.

use std::sync::Arc;

#[cfg(feature = "rocksdb")]
use crate::RocksStorage;
use crate::{MemStorage, Storage, conformance};

#[test]
fn mem_storage_meets_the_contract() {
    conformance::run_all(&|| Box::new(MemStorage::new()));
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocks_storage_meets_the_contract() {
    // Directories outlive the storages made in them (dropped at the end of each case).
    let dirs = std::cell::RefCell::new(Vec::new());
    conformance::run_all(&|| {
        let dir = tempfile::tempdir().expect("create temp dir");
        let storage = RocksStorage::open(dir.path()).expect("open rocks storage");
        dirs.borrow_mut().push(dir);
        Box::new(storage)
    });
}

#[test]
fn arc_dyn_storage_meets_the_contract() {
    conformance::run_all(&|| {
        let shared: Arc<dyn Storage> = Arc::new(MemStorage::new());
        Box::new(shared)
    });
}
