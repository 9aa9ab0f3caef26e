//! Copies a group's data to a new member: when a node finishes an epoch it takes a RocksDB
//! checkpoint (the data exactly at the cut, before anything of the next epoch executes), and a
//! member new in the next epoch streams the key-value pairs of that checkpoint over gRPC
//! (`mortar.internal.v1.Epoxy/Transfer`) into its own store before it starts its replica.
//!
//! The copy is resumable: the new member records the last key it stored with every batch and
//! asks for what follows after a restart. A node deletes its checkpoints once every member of
//! its current epoch reported ready (see `crate::reconfig`).

use bytes::Bytes;
use mortar_proto::internal::v1::epoxy_client::EpoxyClient;
use mortar_proto::internal::v1::{TransferChunk, TransferRequest};
use mortar_storage::{Storage, StorageError, WriteBatch};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};

/// Most bytes of pairs in one streamed chunk (a single larger pair goes alone).
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;
// A chunk is at most CHUNK_BYTES_MAX plus one pair, within a gRPC message.
const _: () = assert!(
    CHUNK_BYTES_MAX + mortar_proto::VALUE_BYTES_LIMIT + 64 * 1024 < mortar_proto::GRPC_MESSAGE_BYTES_MAX
);
/// Pairs read from the checkpoint at a time.
const SCAN_PAGE: usize = 256;
/// Chunks queued for one stream (the stream waits on the receiver beyond it).
const CHUNKS_QUEUED_MAX: usize = 4;
/// Storage metadata key of the last key a copy in progress stored.
pub const META_TRANSFER_AFTER: &str = "transfer_after";
/// How often a copy in progress logs how far it got.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// The directory of the checkpoint taken when `epoch` ended, under `root`.
pub fn checkpoint_dir(root: &Path, epoch: u64) -> PathBuf {
    root.join(format!("epoch-{epoch}"))
}

/// The checkpoints directory of a data directory.
pub fn checkpoints_root(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

/// Deletes every checkpoint under `root` of an epoch before `epoch`.
pub fn delete_before(root: &Path, epoch: u64) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(e) =
            name.to_str().and_then(|n| n.strip_prefix("epoch-")).and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if e < epoch {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    info!(epoch = e, "deleted the checkpoint of epoch {e}: every member holds the data")
                }
                Err(err) => warn!(epoch = e, error = %err, "could not delete an old checkpoint"),
            }
        }
    }
}

/// A checkpoint opened for reading, and the epoch it ends.
type Opened = (u64, Arc<dyn Storage>);

/// Opens a checkpoint directory for reading: the backend that wrote it (`RocksStorage::open` on a
/// node). Passed in, so that this module, which the actor runtime reaches, does not name RocksDB.
pub type OpenCheckpoint = fn(&Path) -> Result<Arc<dyn Storage>, StorageError>;

/// Serves `Transfer` from the checkpoints under `root` (one opened at a time, kept open).
#[derive(Clone)]
pub struct Source {
    root: PathBuf,
    open_checkpoint: OpenCheckpoint,
    opened: Arc<Mutex<Option<Opened>>>,
}

impl Source {
    pub fn new(root: PathBuf, open_checkpoint: OpenCheckpoint) -> Self {
        Self { root, open_checkpoint, opened: Arc::new(Mutex::new(None)) }
    }

    /// Closes an open checkpoint of an epoch before `epoch`, then deletes every such checkpoint
    /// (see [`delete_before`]).
    pub fn delete_before(&self, epoch: u64) {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if opened.as_ref().is_some_and(|(e, _)| *e < epoch) {
            *opened = None;
        }
        drop(opened);
        delete_before(&self.root, epoch);
    }

    fn open(&self, epoch: u64) -> Result<Arc<dyn Storage>, Status> {
        let dir = checkpoint_dir(&self.root, epoch);
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((e, storage)) = &*opened
            && *e == epoch
            && dir.exists()
        {
            return Ok(storage.clone());
        }
        *opened = None;
        if !dir.exists() {
            return Err(Status::not_found(format!(
                "this node holds no copy of the data at the end of epoch {epoch} (not finished here yet, \
                 or deleted once every member was ready)"
            )));
        }
        let storage = (self.open_checkpoint)(&dir).map_err(|e| Status::internal(e.to_string()))?;
        *opened = Some((epoch, storage.clone()));
        Ok(storage)
    }

    /// Streams the pairs of `epoch`'s checkpoint after `start_after`.
    pub fn stream(
        &self,
        epoch: u64,
        start_after: Bytes,
    ) -> Result<mpsc::Receiver<Result<TransferChunk, Status>>, Status> {
        let storage = self.open(epoch)?;
        let (tx, rx) = mpsc::channel(CHUNKS_QUEUED_MAX);
        tokio::task::spawn_blocking(move || {
            let mut after = (!start_after.is_empty()).then_some(start_after);
            let mut chunk = TransferChunk::default();
            let mut bytes = 0;
            loop {
                let page = match storage.scan_kv_prefix(b"", after.as_deref(), SCAN_PAGE) {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                        return;
                    }
                };
                let last_page = page.len() < SCAN_PAGE;
                for (key, value) in page {
                    // A chunk holds pairs up to CHUNK_BYTES_MAX (one pair alone may pass it: a
                    // value is far below the gRPC message limit).
                    let size = key.len() + value.len();
                    if bytes + size > CHUNK_BYTES_MAX && !chunk.keys.is_empty() {
                        if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                            return; // the receiver went away
                        }
                        bytes = 0;
                    }
                    bytes += size;
                    after = Some(key.clone());
                    chunk.keys.push(key);
                    chunk.values.push(value);
                }
                if last_page {
                    if !chunk.keys.is_empty() {
                        let _ = tx.blocking_send(Ok(chunk));
                    }
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// Copies the data at the end of `epoch` from one of `donors` (gRPC addresses, tried in turn)
/// into `storage`, resuming after the last key a previous attempt stored. Returns the pairs and
/// bytes copied by this call.
pub async fn fetch(
    storage: &dyn Storage,
    cluster_id: u64,
    epoch: u64,
    donors: &[(u32, String)],
    deadline: Duration,
    dialer: &crate::tls::Dialer,
) -> anyhow::Result<(u64, u64)> {
    let started = Instant::now();
    let mut pairs = 0u64;
    let mut bytes = 0u64;
    let mut last_log = Instant::now();
    loop {
        for (donor, address) in donors {
            let after = storage.get_meta(META_TRANSFER_AFTER)?.unwrap_or_default();
            // No deadline on the call: a large copy streams for minutes (progress is logged, and
            // an interrupted stream resumes after the last key stored).
            let endpoint =
                dialer.endpoint(address).map(|e| e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true));
            let channel = match endpoint {
                Ok(e) => e.connect_lazy(),
                Err(e) => {
                    warn!(donor, %address, error = %e, "invalid donor address");
                    continue;
                }
            };
            let mut client =
                EpoxyClient::new(channel).max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
            let request = TransferRequest { cluster_id, epoch, start_after: after };
            let mut stream = match client.transfer(request).await {
                Ok(s) => s.into_inner(),
                Err(status) => {
                    info!(donor, code = ?status.code(), message = status.message(), "donor cannot send the data yet");
                    continue;
                }
            };
            loop {
                let chunk = match stream.message().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => {
                        info!(
                            donor,
                            pairs,
                            bytes,
                            seconds = started.elapsed().as_secs_f64(),
                            "state transfer complete"
                        );
                        return Ok((pairs, bytes));
                    }
                    Err(status) => {
                        warn!(donor, %status, "state transfer interrupted; resuming");
                        break;
                    }
                };
                store_chunk(storage, &chunk)?;
                pairs += chunk.keys.len() as u64;
                bytes += chunk.keys.iter().chain(&chunk.values).map(|b| b.len() as u64).sum::<u64>();
                if last_log.elapsed() >= PROGRESS_INTERVAL {
                    last_log = Instant::now();
                    info!(donor, pairs, megabytes = bytes / (1024 * 1024), "state transfer in progress");
                }
            }
        }
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "no member sent the data at the end of epoch {epoch} within {} s (asked {:?}); start again to resume",
                deadline.as_secs(),
                donors.iter().map(|(id, _)| *id).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stores one chunk and the key it ends at, in one write (unsynced: the final write of the join
/// is synced, and a lost chunk is copied again).
fn store_chunk(storage: &dyn Storage, chunk: &TransferChunk) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    for (key, value) in chunk.keys.iter().zip(&chunk.values) {
        batch.put_kv(key.clone(), value.clone());
    }
    if let Some(last) = chunk.keys.last() {
        batch.put_meta(META_TRANSFER_AFTER, last.clone());
    }
    storage.write(batch, false)
}

#[cfg(all(test, feature = "server"))]
#[path = "transfer_test.rs"]
mod transfer_test;
