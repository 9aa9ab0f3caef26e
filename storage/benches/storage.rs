//! Micro-benchmarks of the write path of [`RocksStorage`], in a temporary directory (on the same
//! file system as `$TMPDIR`, `/tmp` by default: what `fdatasync` costs depends on that disk).
//!
//! * `write_sync`: one write batch of 1, 16 or 256 records of 100 bytes, synced (`fdatasync` of the
//!   WAL), one after another from one thread.
//! * `write_nosync`: the same batches unsynced, for contrast.
//! * `group_commit`: 1, 8 or 64 threads each write one-record batches through one [`GroupCommit`]
//!   (`submit_and_wait`) as fast as it lets them. One iteration is one write per writer, so
//!   criterion's time divided by the writer count (the `thrpt` line) is the cost of one durable
//!   write; the group commit statistics printed after each run give the batches per `fdatasync`.
//! * `concurrent_sync`: 8 or 64 threads each write one-record batches with `Storage::write(batch,
//!   true)` directly, for contrast: RocksDB's own write groups already share a WAL sync between
//!   writers that arrive together.
//!
//! Run: `cargo bench -p mortar-storage --bench storage -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mortar_storage::{GroupCommit, GroupCommitConfig, InstanceKey, RocksStorage, Storage, WriteBatch};
use tempfile::TempDir;

/// Bytes of one record (an epoxy instance record of one small command is about this size).
const RECORD_BYTES: usize = 100;
/// Slots each writer cycles through, so that the data set stays bounded however long a run is.
const SLOTS: u64 = 1 << 20;
/// Samples of the synced benchmarks: each write takes milliseconds, and 20 samples keep a run short.
const SYNCED_SAMPLES: usize = 20;

fn open() -> (TempDir, Arc<RocksStorage>) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let storage = RocksStorage::open(dir.path()).expect("open RocksDB in the temporary directory");
    (dir, Arc::new(storage))
}

/// A batch of `records` instance records of `replica`, from slot `*next` on.
fn batch(replica: u32, next: &mut u64, records: usize) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for _ in 0..records {
        let id = InstanceKey { replica, slot: *next % SLOTS };
        *next += 1;
        batch.put_instance(id, vec![0x5a; RECORD_BYTES]);
    }
    batch
}

fn write(c: &mut Criterion, sync: bool) {
    let (_dir, storage) = open();
    let name = if sync { "write_sync" } else { "write_nosync" };
    let mut group = c.benchmark_group(name);
    if sync {
        group.sample_size(SYNCED_SAMPLES).sampling_mode(SamplingMode::Flat);
    }
    let mut next = 0;
    for records in [1, 16, 256] {
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{records}_records")), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let batch = batch(0, &mut next, records);
                    let start = Instant::now();
                    storage.write(black_box(batch), sync).expect("write");
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn write_sync(c: &mut Criterion) {
    write(c, true);
}

fn write_nosync(c: &mut Criterion) {
    write(c, false);
}

/// `writers` threads each make `writes` one-record writes durable with `write_durably`, back to
/// back; the wall time from when all are ready until the last is done.
fn run_writers(writers: u32, writes: u64, write_durably: &(dyn Fn(WriteBatch) + Sync)) -> Duration {
    let ready = Barrier::new(writers as usize + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|writer| {
                let ready = &ready;
                s.spawn(move || {
                    let mut next = 0;
                    ready.wait();
                    for _ in 0..writes {
                        write_durably(batch(writer + 1, &mut next, 1));
                    }
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        for handle in handles {
            handle.join().expect("writer thread");
        }
        start.elapsed()
    })
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(SYNCED_SAMPLES).sampling_mode(SamplingMode::Flat);
    for writers in [1u32, 8, 64] {
        let (_dir, storage) = open();
        let group_commit = GroupCommit::start(storage, GroupCommitConfig::default());
        group.throughput(Throughput::Elements(u64::from(writers)));
        group.bench_function(BenchmarkId::new("writers", writers), |b| {
            b.iter_custom(|iters| {
                run_writers(writers, iters, &|batch| {
                    group_commit.submit_and_wait(batch).expect("durable write")
                })
            })
        });
        let stats = group_commit.stats();
        eprintln!(
            "group_commit/writers/{writers}: {} batches in {} synced writes, {:.1} batches per fdatasync",
            stats.batches_committed,
            stats.synced_writes,
            stats.batches_committed as f64 / stats.synced_writes.max(1) as f64
        );
    }
    group.finish();
}

fn concurrent_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("concurrent_sync");
    group.sample_size(SYNCED_SAMPLES).sampling_mode(SamplingMode::Flat);
    for writers in [8u32, 64] {
        let (_dir, storage) = open();
        group.throughput(Throughput::Elements(u64::from(writers)));
        group.bench_function(BenchmarkId::new("writers", writers), |b| {
            b.iter_custom(|iters| {
                run_writers(writers, iters, &|batch| storage.write(batch, true).expect("durable write"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, write_sync, write_nosync, group_commit, concurrent_sync);
criterion_main!(benches);
