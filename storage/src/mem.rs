//! [`MemStorage`]: the in-memory twin of [`crate::RocksStorage`], for simulation and tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::{InstanceKey, Op, Storage, StorageError, WriteBatch};

/// Storage in memory that models a disk with a write-ahead log.
///
/// A write is visible to reads as soon as [`Storage::write`] returns. Writes made with
/// `sync = false` stay "unsynced" until the next write with `sync = true`, which makes them and
/// itself durable. [`MemStorage::crash`] discards every unsynced write, leaving exactly the state
/// as of the last synced write, as a machine crash would.
#[derive(Debug, Default)]
pub struct MemStorage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// What a crash leaves behind: every synced write.
    durable: Tables,
    /// Writes since the last sync, oldest first; `durable` + these = `visible`.
    unsynced: Vec<WriteBatch>,
    /// What reads see.
    visible: Tables,
}

#[derive(Debug, Default, Clone)]
struct Tables {
    instances: BTreeMap<InstanceKey, Bytes>,
    executed: BTreeSet<InstanceKey>,
    conflicts: BTreeMap<Bytes, Bytes>,
    kv: BTreeMap<Bytes, Bytes>,
    meta: BTreeMap<String, Bytes>,
    control_log: BTreeMap<u64, Bytes>,
    control_state: BTreeMap<String, Bytes>,
}

impl Tables {
    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::PutInstance { id, record } => {
                    self.instances.insert(*id, record.clone());
                }
                Op::DeleteInstance { id } => {
                    self.instances.remove(id);
                }
                Op::MarkExecuted { id } => {
                    self.executed.insert(*id);
                }
                Op::ForgetInstances { replica, through } => {
                    let forgotten = |id: &InstanceKey| id.replica == *replica && id.slot <= *through;
                    self.instances.retain(|id, _| !forgotten(id));
                    self.executed.retain(|id| !forgotten(id));
                }
                Op::PutConflict { key, record } => {
                    self.conflicts.insert(key.clone(), record.clone());
                }
                Op::DeleteConflict { key } => {
                    self.conflicts.remove(key);
                }
                Op::PutKv { key, value } => {
                    self.kv.insert(key.clone(), value.clone());
                }
                Op::DeleteKv { key } => {
                    self.kv.remove(key);
                }
                Op::PutMeta { name, value } => {
                    self.meta.insert(name.clone(), value.clone());
                }
                Op::PutControlLog { index, entry } => {
                    self.control_log.insert(*index, entry.clone());
                }
                Op::DeleteControlLog { from, to } => {
                    if from < to {
                        // Split off [from, ..), then put back [to, ..).
                        let mut removed = self.control_log.split_off(from);
                        let mut kept = removed.split_off(to);
                        self.control_log.append(&mut kept);
                    }
                }
                Op::PutControlState { name, value } => {
                    self.control_state.insert(name.clone(), value.clone());
                }
            }
        }
    }
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a machine crash: discards every write made since the last synced write.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.unsynced.clear();
        state.visible = state.durable.clone();
    }

    /// Number of writes a [`MemStorage::crash`] would discard now.
    pub fn unsynced_writes(&self) -> usize {
        self.lock().unsynced.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so even a poisoned lock guards consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Storage for MemStorage {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        batch.check_size()?;
        let mut state = self.lock();
        let state = &mut *state;
        state.visible.apply(batch.ops());
        if sync {
            for unsynced in state.unsynced.drain(..) {
                state.durable.apply(unsynced.ops());
            }
            state.durable.apply(batch.ops());
        } else if !batch.is_empty() {
            state.unsynced.push(batch);
        }
        Ok(())
    }

    fn get_kv(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().visible.kv.get(key).cloned())
    }

    fn get_instance(&self, id: InstanceKey) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().visible.instances.get(&id).cloned())
    }

    fn get_meta(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().visible.meta.get(name).cloned())
    }

    // Scans copy the entries (cheap `Bytes` clones) and release the lock before calling back, so
    // callbacks may use the storage, as they may with RocksDB.

    fn scan_instances(
        &self,
        f: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let entries: Vec<(InstanceKey, Bytes)> = {
            let state = self.lock();
            let instances = &state.visible.instances;
            instances.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        for (id, record) in entries {
            f(id, &record)?;
        }
        Ok(())
    }

    fn scan_executed(
        &self,
        f: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let entries: Vec<InstanceKey> = self.lock().visible.executed.iter().copied().collect();
        for id in entries {
            f(id)?;
        }
        Ok(())
    }

    fn scan_conflicts(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let entries: Vec<(Bytes, Bytes)> = {
            let state = self.lock();
            let conflicts = &state.visible.conflicts;
            conflicts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (key, record) in entries {
            f(&key, &record)?;
        }
        Ok(())
    }

    fn scan_kv_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        use std::ops::Bound;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let state = self.lock();
        let found = state
            .visible
            .kv
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(found)
    }

    fn get_control_state(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        Ok(self.lock().visible.control_state.get(name).cloned())
    }

    fn scan_control_log(
        &self,
        from: u64,
        to: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        if from >= to {
            return Ok(());
        }
        let entries: Vec<(u64, Bytes)> = {
            let state = self.lock();
            state.visible.control_log.range(from..to).map(|(k, v)| (*k, v.clone())).collect()
        };
        for (index, entry) in entries {
            f(index, &entry)?;
        }
        Ok(())
    }

    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        let state = self.lock();
        Ok(state.visible.control_log.last_key_value().map(|(k, v)| (*k, v.clone())))
    }
}
