//! [`Observed`]: an in-memory [`Storage`] that shows each write to a hook before applying it, so
//! that a test can record what reached storage (batch sizes, syncs) or hold a write up.

use bytes::Bytes;

use crate::{InstanceKey, MemStorage, Storage, StorageError, WriteBatch};

/// Called with every write before [`Observed`] applies it.
pub trait WriteHook: Send + Sync + 'static {
    fn before_write(&self, batch: &WriteBatch, sync: bool);
}

/// A [`MemStorage`] whose writes pass through a [`WriteHook`] first; reads go straight to it.
#[derive(Default)]
pub struct Observed<H> {
    inner: MemStorage,
    hook: H,
}

impl<H: WriteHook> Observed<H> {
    pub fn new(hook: H) -> Self {
        Self { inner: MemStorage::new(), hook }
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The store underneath, for [`MemStorage::crash`].
    pub fn inner(&self) -> &MemStorage {
        &self.inner
    }
}

impl<H: WriteHook> Storage for Observed<H> {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        self.hook.before_write(&batch, sync);
        self.inner.write(batch, sync)
    }

    fn get_kv(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_kv(key)
    }

    fn get_instance(&self, id: InstanceKey) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_instance(id)
    }

    fn get_meta(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_meta(name)
    }

    fn scan_instances(
        &self,
        f: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.scan_instances(f)
    }

    fn scan_executed(
        &self,
        f: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.scan_executed(f)
    }

    fn scan_conflicts(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.scan_conflicts(f)
    }

    fn scan_kv_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        self.inner.scan_kv_prefix(prefix, start_after, limit)
    }

    fn get_control_state(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_control_state(name)
    }

    fn scan_control_log(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.inner.scan_control_log(from, to, f)
    }

    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        self.inner.last_control_log()
    }
}
