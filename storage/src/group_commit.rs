//! [`GroupCommit`]: shares one synced write between many write batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SendError, SyncSender};
use std::thread::{self, JoinHandle};

use tracing::{error, trace};

use crate::{Storage, StorageError, WRITE_BATCH_BYTES_MAX, WriteBatch};

/// Default [`GroupCommitConfig::queue_depth_max`].
pub const QUEUE_DEPTH_MAX: usize = 1024;
/// Default [`GroupCommitConfig::batches_max`].
pub const BATCHES_MAX: usize = 256;
/// Default [`GroupCommitConfig::batch_bytes_max`].
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

// A merged write never waits for more batches than the queue can hold.
const _: () = assert!(BATCHES_MAX <= QUEUE_DEPTH_MAX);
// Merging never builds a batch that storage rejects.
const _: () = assert!(BATCH_BYTES_MAX <= WRITE_BATCH_BYTES_MAX);

/// Bounds of a [`GroupCommit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// Batches waiting to be written; [`GroupCommit::submit`] blocks while the queue is full.
    pub queue_depth_max: usize,
    /// Batches merged into one synced write.
    pub batches_max: usize,
    /// Bytes ([`WriteBatch::bytes`]) merged into one synced write. A single batch larger than this
    /// is written alone.
    pub batch_bytes_max: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            queue_depth_max: QUEUE_DEPTH_MAX,
            batches_max: BATCHES_MAX,
            batch_bytes_max: BATCH_BYTES_MAX,
        }
    }
}

/// Counters since [`GroupCommit::start`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Successful synced writes (`mortar_storage_synced_writes_total`).
    pub synced_writes: u64,
    /// Batches made durable by them (`mortar_storage_batches_committed_total`).
    pub batches_committed: u64,
    /// Synced writes that failed; each failed all of its batches.
    pub failed_writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    synced_writes: AtomicU64,
    batches_committed: AtomicU64,
    failed_writes: AtomicU64,
}

/// Called once with the outcome of a submitted batch.
pub type WriteDone = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Calls its callback exactly once: with the write's result, or with
/// [`StorageError::Closed`] if it is dropped first (the queue was closed, or the thread panicked).
struct Completion(Option<WriteDone>);

impl Completion {
    fn complete(mut self, result: Result<(), StorageError>) {
        if let Some(done) = self.0.take() {
            done(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(StorageError::Closed));
        }
    }
}

struct Request {
    batch: WriteBatch,
    done: Completion,
}

/// Merges concurrently submitted write batches into one synced write.
///
/// A dedicated thread ("mortar-group-commit") takes the first queued batch, appends whatever
/// else is already queued (up to [`GroupCommitConfig::batches_max`] batches and
/// [`GroupCommitConfig::batch_bytes_max`] bytes), writes the result with `sync = true`, and then
/// calls every batch's callback with the outcome. Batches are applied in submission order.
///
/// Dropping a `GroupCommit` writes every batch still queued, then stops the thread.
pub struct GroupCommit {
    sender: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the group commit thread.
    ///
    /// Panics if a bound in `config` is zero or `batch_bytes_max` exceeds
    /// [`WRITE_BATCH_BYTES_MAX`], or if the thread cannot be spawned.
    pub fn start(storage: Arc<dyn Storage>, config: GroupCommitConfig) -> Self {
        assert!(
            config.queue_depth_max > 0 && config.batches_max > 0 && config.batch_bytes_max > 0,
            "group commit bounds must be positive: {config:?}"
        );
        assert!(
            config.batch_bytes_max <= WRITE_BATCH_BYTES_MAX,
            "group commit batch_bytes_max={} exceeds WRITE_BATCH_BYTES_MAX={WRITE_BATCH_BYTES_MAX}",
            config.batch_bytes_max
        );
        let (sender, receiver) = mpsc::sync_channel(config.queue_depth_max);
        let counters = Arc::new(Counters::default());
        let thread = thread::Builder::new()
            .name("mortar-group-commit".to_owned())
            .spawn({
                let counters = Arc::clone(&counters);
                move || run(&*storage, config, &receiver, &counters)
            })
            .unwrap_or_else(|e| panic!("spawn the mortar-group-commit thread: {e}"));
        GroupCommit { sender: Some(sender), thread: Some(thread), counters }
    }

    /// Queues `batch` to be written durably, then `done` is called with the outcome on the group
    /// commit thread (keep it short: it delays the next write). Blocks while the queue is full.
    ///
    /// If the group commit thread is gone, `done` is called at once with
    /// [`StorageError::Closed`].
    pub fn submit(&self, batch: WriteBatch, done: WriteDone) {
        let request = Request { batch, done: Completion(Some(done)) };
        let Some(sender) = &self.sender else {
            request.done.complete(Err(StorageError::Closed));
            return;
        };
        if let Err(SendError(request)) = sender.send(request) {
            request.done.complete(Err(StorageError::Closed));
        }
    }

    /// Submits `batch` and blocks until it is durable.
    pub fn submit_and_wait(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(
            batch,
            Box::new(move |result| {
                // The receiver below waits for this; it cannot be gone.
                let _ = sender.send(result);
            }),
        );
        receiver.recv().unwrap_or(Err(StorageError::Closed))
    }

    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            synced_writes: self.counters.synced_writes.load(Ordering::Relaxed),
            batches_committed: self.counters.batches_committed.load(Ordering::Relaxed),
            failed_writes: self.counters.failed_writes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish the queue and exit.
        drop(self.sender.take());
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.thread().id() == thread::current().id() {
            // Dropped from one of its own callbacks: the thread exits once this callback returns.
            return;
        }
        if thread.join().is_err() {
            error!("group commit thread panicked; batches queued behind the panic failed with Closed");
        }
    }
}

fn run(storage: &dyn Storage, config: GroupCommitConfig, receiver: &Receiver<Request>, counters: &Counters) {
    // A request taken from the queue that did not fit into the previous write.
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match receiver.recv() {
                Ok(request) => request,
                Err(_) => return, // closed and drained
            },
        };
        let mut batch = first.batch;
        let mut dones = Vec::with_capacity(config.batches_max.min(64));
        dones.push(first.done);
        while dones.len() < config.batches_max {
            let Ok(next) = receiver.try_recv() else {
                break;
            };
            if batch.bytes() + next.batch.bytes() > config.batch_bytes_max {
                carried = Some(next);
                break;
            }
            batch.append(next.batch);
            dones.push(next.done);
        }
        trace!(batches = dones.len(), bytes = batch.bytes(), "group commit write");
        let result = storage.write(batch, true);
        if result.is_ok() {
            counters.synced_writes.fetch_add(1, Ordering::Relaxed);
            let batches = dones.len() as u64;
            counters.batches_committed.fetch_add(batches, Ordering::Relaxed);
        } else {
            counters.failed_writes.fetch_add(1, Ordering::Relaxed);
        }
        for done in dones {
            done.complete(result.clone());
        }
    }
}
