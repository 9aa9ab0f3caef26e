//! [`RocksStorage`]: [`Storage`] in a RocksDB directory, one column family per table.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode,
    ErrorKind, Options, ReadOptions, WriteOptions,
};
use tracing::{info, warn};

use crate::watermark::{self, Watermark};
use crate::{InstanceKey, Op, OpenFailure, Storage, StorageError, WriteBatch, decode_control_log_key};

pub(crate) const CF_INSTANCES: &str = "instances";
pub(crate) const CF_EXECUTED: &str = "executed";
const CF_CONFLICTS: &str = "conflicts";
pub(crate) const CF_KV: &str = "kv";
const CF_META: &str = "meta";
pub(crate) const CF_CONTROL_LOG: &str = "control_log";
const CF_CONTROL_STATE: &str = "control_state";
/// Every table. A directory made before a table was added gets it at the next open
/// (`create_missing_column_families`), empty.
pub(crate) const COLUMN_FAMILIES: [&str; 7] =
    [CF_INSTANCES, CF_EXECUTED, CF_CONFLICTS, CF_KV, CF_META, CF_CONTROL_LOG, CF_CONTROL_STATE];

const MIB: usize = 1024 * 1024;
/// Memtable size of one column family; a full memtable is flushed to an SST file.
const WRITE_BUFFER_BYTES: usize = 16 * MIB;
/// Memtables of all column families together; reaching it flushes the largest.
const DB_WRITE_BUFFER_BYTES_MAX: usize = 64 * MIB;
/// Block cache shared by all column families.
const BLOCK_CACHE_BYTES: usize = 64 * MIB;
/// WAL size that forces a flush of the column families still holding the oldest WAL file.
const WAL_BYTES_MAX: usize = 128 * MIB;
/// Obsolete WAL files kept for reuse by the next WALs (see `options`).
const WAL_FILES_RECYCLED: usize = 4;

const _: () = assert!(WRITE_BUFFER_BYTES <= DB_WRITE_BUFFER_BYTES_MAX);
const _: () = assert!(DB_WRITE_BUFFER_BYTES_MAX <= WAL_BYTES_MAX);

/// A node's data in a RocksDB directory.
///
/// Tables are column families (`instances`, `executed`, `conflicts`, `kv`, `meta`, `control_log`,
/// `control_state`), so one
/// RocksDB write batch, and one WAL record, covers a whole [`WriteBatch`]: after a crash it is
/// recovered entirely or not at all, and every synced write is recovered. A directory that lost
/// synced writes (a short, damaged or deleted WAL or table file) refuses to open: see
/// [`crate::watermark`].
#[derive(Debug)]
pub struct RocksStorage {
    pub(crate) db: DB,
    path: PathBuf,
    watermark: Watermark,
}

impl RocksStorage {
    /// Opens the data directory at `path`, creating it and any missing table if needed.
    ///
    /// Fails with [`StorageError::Open`] if another process holds the directory, if its files
    /// are damaged, or if it cannot be read or written.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let failed = |kind, reason: String| StorageError::Open { path: path.to_path_buf(), kind, reason };
        // A directory found damaged before is not opened again: the open that found it let RocksDB
        // flush what it recovered and remove the damaged WAL, so only the record tells what it was.
        if let Some(found) = watermark::read_damaged(path) {
            return Err(failed(OpenFailure::Corrupt, format!("found damaged at an earlier start: {found}")));
        }
        // What the WAL files were before RocksDB replays (and then may remove) them.
        let wal_files = wal_files(path);
        let persisted = watermark::read(path)
            .map_err(|e| failed(OpenFailure::Corrupt, format!("the synced watermark: {e}")))?;
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let column_families =
            COLUMN_FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, options(&cache)));
        let db = DB::open_cf_descriptors(&options(&cache), path, column_families)
            .map_err(|e| open_error(path, e))?;
        let recovered = db.latest_sequence_number();
        match persisted {
            Some(synced) if recovered < synced => {
                drop(db);
                let newest = wal_files.last().map_or_else(
                    || "none left".to_string(),
                    |(name, bytes)| format!("the newest, {name}, held {bytes} bytes"),
                );
                let reason = format!(
                    "the disk lost synced writes: they reached sequence {synced}, but only {recovered} were \
                     recovered; a write-ahead log file is shorter than what was synced, damaged or deleted \
                     ({} WAL files, {newest}), or a table file or the MANIFEST is missing",
                    wal_files.len()
                );
                if let Err(e) = watermark::write_damaged(path, &reason) {
                    warn!(error = %e, "could not record that the data directory is damaged");
                }
                return Err(failed(OpenFailure::Corrupt, reason));
            }
            Some(_) => {}
            None if recovered > 0 => warn!(
                path = %path.display(),
                "no synced watermark in this data directory (written by an older version?); lost synced writes are detected from now on"
            ),
            None => {}
        }
        let watermark = Watermark::start(path, persisted.unwrap_or(0))
            .map_err(|e| failed(OpenFailure::Other, format!("start the watermark thread: {e}")))?;
        info!(path = %path.display(), sequence = recovered, "storage opened");
        Ok(RocksStorage { db, path: path.to_path_buf(), watermark })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} missing although open created it"))
    }

    /// Calls `f` with every entry of a column family in key order.
    #[allow(clippy::type_complexity)] // the same callback type as `Storage::scan_conflicts`
    fn scan_cf(
        &self,
        name: &str,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut read = ReadOptions::default();
        // Full scans run at recovery; keep them from evicting the working set.
        read.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(name), read);
        it.seek_to_first();
        while let Some((key, value)) = it.item() {
            f(key, value)?;
            it.next();
        }
        it.status().map_err(io_error)
    }
}

/// Options for every column family and for the database: a latency-sensitive store of small
/// values on a machine with 2 cores.
fn options(cache: &Cache) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    // One flush and one compaction at a time; the other core serves requests.
    o.set_max_background_jobs(2);
    // Modest memtables: flushes stay short and memory bounded. Two per column family so writes
    // continue while one flushes.
    o.set_write_buffer_size(WRITE_BUFFER_BYTES);
    o.set_max_write_buffer_number(2);
    o.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES_MAX);
    // Rarely written column families (meta, executed) would otherwise pin old WAL files forever.
    o.set_max_total_wal_size(WAL_BYTES_MAX as u64);
    // Values are small and mostly incompressible records; save the CPU.
    o.set_compression_type(DBCompressionType::None);
    // Write SST files out in 1 MiB steps instead of one large burst at the end of a flush, so
    // the WAL fdatasync of a concurrent write does not wait behind it.
    o.set_bytes_per_sync(MIB as u64);
    // After a crash, recover every complete WAL record up to the first damaged one: a torn last
    // record (never acknowledged, since its sync did not finish) is dropped. A WAL that lost synced
    // records is caught by the synced watermark (see `crate::watermark`).
    o.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // Closed WALs' synced sizes go to the MANIFEST: one that is missing or short fails the open.
    o.set_track_and_verify_wals_in_manifest(true);
    // A new WAL reuses an obsolete one's file (RocksDB writes such WALs in its recyclable record
    // format, each record naming its log, so the old records past the end are never replayed).
    // Writes then overwrite allocated, written blocks, and an fdatasync need not journal the
    // file's size or extents: 0.11 ms instead of 0.14 ms per synced append on this machine's disk.
    // RocksDB 11 supports it with point-in-time recovery (facebook/rocksdb#12403).
    o.set_recycle_log_file_num(WAL_FILES_RECYCLED);
    // Bound RocksDB's own info LOG files.
    o.set_keep_log_file_num(4);
    o.set_max_log_file_size(16 * MIB);
    // Point lookups (get_kv, get_instance) skip SST files with a bloom filter; one block cache
    // for all column families.
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    o.set_block_based_table_factory(&table);
    o
}

impl Drop for RocksStorage {
    /// A clean close syncs the WAL and records the exact watermark.
    fn drop(&mut self) {
        match self.db.flush_wal(true) {
            Ok(()) => self.watermark.close(self.db.latest_sequence_number()),
            Err(e) => warn!(error = %e, "could not sync the WAL at close"),
        }
    }
}

/// RocksDB's WAL files in `dir` (named by number, `000123.log`; other `.log` files, such as a
/// node's own log kept in its data directory, are not) with their sizes, oldest first.
fn wal_files(dir: &Path) -> Vec<(String, u64)> {
    let is_wal = |name: &str| {
        name.strip_suffix(".log").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            is_wal(&name).then(|| (name, e.metadata().map_or(0, |m| m.len())))
        })
        .collect();
    files.sort();
    files
}

fn open_error(path: &Path, e: rocksdb::Error) -> StorageError {
    let kind = e.kind();
    // RocksDB messages may end in a period; ours continues after a semicolon.
    let reason = e.into_string().trim_end_matches(['.', ' ']).to_owned();
    // Look for the lock only outside the path, which may contain "lock" itself.
    let without_path = reason.replace(&*path.to_string_lossy(), "");
    let kind = if kind == ErrorKind::Corruption {
        OpenFailure::Corrupt
    } else if without_path.to_ascii_lowercase().contains("lock") {
        OpenFailure::Locked
    } else {
        OpenFailure::Other
    };
    StorageError::Open { path: path.to_path_buf(), kind, reason }
}

fn io_error(e: rocksdb::Error) -> StorageError {
    match e.kind() {
        ErrorKind::Busy | ErrorKind::TryAgain | ErrorKind::TimedOut | ErrorKind::Incomplete => {
            StorageError::Busy(e.into_string())
        }
        ErrorKind::Corruption => StorageError::Corrupt { what: e.into_string() },
        _ => StorageError::Io(e.into_string()),
    }
}

/// The smallest key greater than every key starting with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|b| *b != u8::MAX)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

impl Storage for RocksStorage {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        batch.check_size()?;
        // Every write before a synced one is durable once it returns.
        let durable_after = sync.then(|| self.db.latest_sequence_number());
        if batch.is_empty() {
            // Nothing to apply, but a sync still has to make earlier writes durable.
            if sync {
                self.db.flush_wal(true).map_err(io_error)?;
            }
            if let Some(sequence) = durable_after {
                self.watermark.synced(sequence);
            }
            return Ok(());
        }
        let instances = self.cf(CF_INSTANCES);
        let executed = self.cf(CF_EXECUTED);
        let conflicts = self.cf(CF_CONFLICTS);
        let kv = self.cf(CF_KV);
        let meta = self.cf(CF_META);
        let control_log = self.cf(CF_CONTROL_LOG);
        let control_state = self.cf(CF_CONTROL_STATE);
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch {
            match op {
                Op::PutInstance { id, record } => rocks_batch.put_cf(instances, id.encode(), record),
                Op::DeleteInstance { id } => rocks_batch.delete_cf(instances, id.encode()),
                Op::MarkExecuted { id } => rocks_batch.put_cf(executed, id.encode(), b""),
                Op::ForgetInstances { replica, through } => {
                    let from = InstanceKey { replica, slot: 0 }.encode();
                    // delete_range's end is exclusive: the next slot, or the next replica's first.
                    let to = match through.checked_add(1) {
                        Some(next) => InstanceKey { replica, slot: next }.encode().to_vec(),
                        None => InstanceKey { replica: replica.saturating_add(1), slot: 0 }.encode().to_vec(),
                    };
                    rocks_batch.delete_range_cf(instances, from.as_slice(), to.as_slice());
                    rocks_batch.delete_range_cf(executed, from.as_slice(), to.as_slice());
                }
                Op::PutConflict { key, record } => rocks_batch.put_cf(conflicts, key, record),
                Op::DeleteConflict { key } => rocks_batch.delete_cf(conflicts, key),
                Op::PutKv { key, value } => rocks_batch.put_cf(kv, key, value),
                Op::DeleteKv { key } => rocks_batch.delete_cf(kv, key),
                Op::PutMeta { name, value } => rocks_batch.put_cf(meta, name, value),
                Op::PutControlLog { index, entry } => {
                    rocks_batch.put_cf(control_log, index.to_be_bytes(), entry)
                }
                Op::DeleteControlLog { from, to } => {
                    // RocksDB requires begin <= end; an empty range deletes nothing.
                    if from < to {
                        rocks_batch.delete_range_cf(control_log, from.to_be_bytes(), to.to_be_bytes());
                    }
                }
                Op::PutControlState { name, value } => rocks_batch.put_cf(control_state, name, value),
            }
        }
        let mut write = WriteOptions::default();
        // fdatasync of the WAL; the WAL stays enabled.
        write.set_sync(sync);
        self.db.write_opt(rocks_batch, &write).map_err(io_error)?;
        if let Some(sequence) = durable_after {
            self.watermark.synced(sequence);
        }
        Ok(())
    }

    fn get_kv(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        let value = self.db.get_pinned_cf(self.cf(CF_KV), key);
        Ok(value.map_err(io_error)?.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn get_instance(&self, id: InstanceKey) -> Result<Option<Bytes>, StorageError> {
        let value = self.db.get_pinned_cf(self.cf(CF_INSTANCES), id.encode());
        Ok(value.map_err(io_error)?.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn get_meta(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        let value = self.db.get_pinned_cf(self.cf(CF_META), name);
        Ok(value.map_err(io_error)?.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan_instances(
        &self,
        f: &mut dyn FnMut(InstanceKey, &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.scan_cf(CF_INSTANCES, &mut |key, record| f(InstanceKey::decode(key)?, record))
    }

    fn scan_executed(
        &self,
        f: &mut dyn FnMut(InstanceKey) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.scan_cf(CF_EXECUTED, &mut |key, _| f(InstanceKey::decode(key)?))
    }

    fn scan_conflicts(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.scan_cf(CF_CONFLICTS, f)
    }

    fn scan_kv_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_KV), read);
        match start_after {
            Some(after) if after >= prefix => {
                it.seek(after);
                if it.key() == Some(after) {
                    it.next();
                }
            }
            _ => it.seek(prefix),
        }
        while found.len() < limit {
            let Some((key, value)) = it.item() else { break };
            if !key.starts_with(prefix) {
                break;
            }
            found.push((Bytes::copy_from_slice(key), Bytes::copy_from_slice(value)));
            it.next();
        }
        it.status().map_err(io_error)?;
        Ok(found)
    }

    fn get_control_state(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        let value = self.db.get_pinned_cf(self.cf(CF_CONTROL_STATE), name);
        Ok(value.map_err(io_error)?.map(|v| Bytes::copy_from_slice(&v)))
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
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(to.to_be_bytes());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_CONTROL_LOG), read);
        it.seek(from.to_be_bytes());
        while let Some((key, entry)) = it.item() {
            f(decode_control_log_key(key)?, entry)?;
            it.next();
        }
        it.status().map_err(io_error)
    }

    fn last_control_log(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_CONTROL_LOG));
        it.seek_to_last();
        let last = match it.item() {
            Some((key, entry)) => Some((decode_control_log_key(key)?, Bytes::copy_from_slice(entry))),
            None => None,
        };
        it.status().map_err(io_error)?;
        Ok(last)
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(io_error)?;
        checkpoint.create_checkpoint(dir).map_err(io_error)
    }
}
