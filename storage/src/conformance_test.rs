//! Runs the conformance suite against every implementation.

use std::cell::RefCell;
use std::sync::Arc;

use crate::{MemStorage, RocksStorage, Storage, conformance};

#[test]
fn mem_storage_meets_the_contract() {
    conformance::run_all(&|| Box::new(MemStorage::new()));
}

#[test]
fn rocks_storage_meets_the_contract() {
    // Directories outlive the storages made in them (dropped at the end of each case).
    let dirs = RefCell::new(Vec::new());
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
