//! What one synced write costs, next to what the disk's `fdatasync` costs, on the same file
//! system: where the time between the two goes.
//!
//! Run: `cargo run --release -p mortar-storage --example sync_cost -- [DIR] [WRITES]` (DIR defaults
//! to a temporary directory under `$TMPDIR`; WRITES to 2,000).
//!
//! It prints the p50 / p90 / p99 / mean of, one after another from one thread:
//! * `append`: `write` of 300 bytes at the end of a plain file, then `fdatasync`;
//! * `append-fallocated`: the same into a region preallocated with `fallocate(KEEP_SIZE)`, as
//!   RocksDB preallocates its WAL;
//! * `overwrite`: `pwrite` of 300 bytes over written blocks, then `fdatasync`;
//! * `rocks-new`: `RocksStorage::write` of one 300-byte instance record, synced, in a new database
//!   (its first WAL is a new file);
//! * `rocks-reused`: the same after enough flushes that the WAL reuses an obsolete one's file;
//! * `rocks-nosync`: the same unsynced: RocksDB's own cost without the disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mortar_storage::{InstanceKey, Op, RocksStorage, Storage, WriteBatch};

const RECORD: usize = 300;

fn main() {
    let mut args = std::env::args().skip(1);
    let temp;
    let dir: PathBuf = match args.next() {
        Some(d) => PathBuf::from(d),
        None => {
            temp = tempfile::tempdir().expect("create a temporary directory");
            temp.path().to_path_buf()
        }
    };
    let writes: usize = args.next().map_or(2_000, |n| n.parse().expect("WRITES is a number"));
    report("append", &raw(&dir.join("append"), writes, Mode::Append));
    report("append-fallocated", &raw(&dir.join("falloc"), writes, Mode::Fallocated));
    report("overwrite", &raw(&dir.join("overwrite"), writes, Mode::Overwrite));

    let db = dir.join("db");
    let storage = RocksStorage::open(&db).expect("open RocksDB");
    let mut slot = 0;
    report("rocks-new", &rocks(&storage, &mut slot, writes, true));
    report("rocks-nosync", &rocks(&storage, &mut slot, writes, false));
    // 75 MiB of unsynced bulk writes: the 16 MiB memtables fill and flush, and each flush makes a
    // WAL obsolete, to be reused by a later one.
    for _ in 0..6 {
        for _ in 0..50 {
            let mut batch = WriteBatch::new();
            for _ in 0..256 {
                slot += 1;
                batch.push(instance(slot, 1024));
            }
            storage.write(batch, false).expect("bulk write");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    report("rocks-reused", &rocks(&storage, &mut slot, writes, true));
    let wals: Vec<_> = std::fs::read_dir(&db)
        .expect("list the database")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log") && n.starts_with('0'))
        .collect();
    println!("WAL files now: {wals:?}");
}

enum Mode {
    Append,
    Fallocated,
    Overwrite,
}

fn raw(path: &Path, writes: usize, mode: Mode) -> Vec<Duration> {
    let mut file =
        OpenOptions::new().create(true).truncate(true).read(true).write(true).open(path).expect("open");
    let record = vec![7u8; RECORD];
    match mode {
        Mode::Append => {}
        Mode::Fallocated => {
            // util-linux's fallocate(1): `-n` is FALLOC_FL_KEEP_SIZE (the workspace forbids
            // `unsafe`, so no direct libc call).
            let status = std::process::Command::new("fallocate")
                .args(["-n", "-l", &(writes * RECORD).to_string()])
                .arg(path)
                .status()
                .expect("run fallocate");
            assert!(status.success(), "fallocate failed");
        }
        Mode::Overwrite => {
            file.write_all(&vec![1u8; writes * RECORD]).expect("fill");
            file.sync_all().expect("sync");
        }
    }
    let mut times = Vec::with_capacity(writes);
    for i in 0..writes {
        let start = Instant::now();
        match mode {
            Mode::Append | Mode::Fallocated => file.write_all(&record).expect("append"),
            Mode::Overwrite => file.write_all_at(&record, (i * RECORD) as u64).expect("pwrite"),
        }
        file.sync_data().expect("fdatasync");
        times.push(start.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(path);
    times
}

fn instance(slot: u64, bytes: usize) -> Op {
    Op::PutInstance { id: InstanceKey { replica: 1, slot }, record: Bytes::from(vec![3u8; bytes]) }
}

fn rocks(storage: &RocksStorage, slot: &mut u64, writes: usize, sync: bool) -> Vec<Duration> {
    let mut times = Vec::with_capacity(writes);
    for _ in 0..writes {
        *slot += 1;
        let mut batch = WriteBatch::new();
        batch.push(instance(*slot, RECORD));
        let start = Instant::now();
        storage.write(batch, sync).expect("write");
        times.push(start.elapsed());
    }
    times
}

fn report(name: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let mean = sorted.iter().sum::<Duration>().as_secs_f64() * 1e3 / sorted.len() as f64;
    println!(
        "{name:>18}: p50 {:.3} ms  p90 {:.3}  p99 {:.3}  mean {mean:.3}  ({} writes)",
        at(0.5),
        at(0.9),
        at(0.99),
        sorted.len()
    );
}
