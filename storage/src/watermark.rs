//! The synced watermark: how far RocksDB's writes were known durable, kept beside the database
//! so that a disk that lost synced bytes is detected at the next open instead of trusted.
//!
//! RocksDB recovers its write-ahead log up to the first damaged record (`PointInTime`): a torn last
//! record, left by a crash during a write that was never synced or acknowledged, must be dropped
//! without complaint. But a WAL truncated or damaged by the disk looks the same, and RocksDB then
//! opens without a word, missing writes it had synced, which the node acknowledged and voted on.
//!
//! So every synced write raises an in-memory watermark, the sequence number of the last write
//! known durable, and a thread writes it to [`WATERMARK_FILE`] (temporary file, fsync, rename,
//! fsync of the directory) at most every [`PERSIST_INTERVAL`]; a clean close writes the exact
//! final one. An open that recovers less than the file says was synced refuses to start. What a
//! crash loses is never above the watermark: every write below a synced write's sequence number
//! is in the WAL before it and synced with it.
//!
//! An open that refuses records its diagnosis in [`DAMAGED_FILE`]; later opens refuse at once
//! with it, without opening RocksDB again, since the refused open let RocksDB flush what it had
//! recovered and delete the damaged WAL.
//!
//! What this cannot see: synced writes lost after the last persisted watermark (at most
//! [`PERSIST_INTERVAL`] of them after a crash; none after a clean close), and a directory whose
//! watermark file was deleted along with the data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

/// The watermark's file in the data directory.
pub const WATERMARK_FILE: &str = "MORTAR-SYNCED";
/// Written, with the diagnosis, when an open finds that synced writes were lost; a directory
/// holding it is refused at once by every later open.
pub const DAMAGED_FILE: &str = "MORTAR-DAMAGED";
/// How often a raised watermark is written out.
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(200);
const HEADER: &str = "mortar synced watermark v1";
/// Mixed into the check line, so that a damaged number does not pass as another number.
const CHECK_MASK: u64 = 0x6d6f_7274_6172_2121;

/// Reads the watermark in `dir`: `Ok(None)` when there is no file (a new directory, or one written
/// before the watermark existed), `Err` with what is wrong when the file is damaged.
pub fn read(dir: &Path) -> Result<Option<u64>, String> {
    let path = dir.join(WATERMARK_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse(&text).map(Some).ok_or_else(|| format!("{} is damaged: {text:?}", path.display()))
}

fn parse(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let sequence: u64 = lines.next()?.strip_prefix("sequence ")?.parse().ok()?;
    let check: u64 = lines.next()?.strip_prefix("check ")?.parse().ok()?;
    (check == sequence ^ CHECK_MASK && lines.next().is_none()).then_some(sequence)
}

/// Writes `sequence` as the watermark of `dir`, atomically and durably.
pub fn write(dir: &Path, sequence: u64) -> io::Result<()> {
    let temp = dir.join(format!("{WATERMARK_FILE}.tmp"));
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
    write!(file, "{HEADER}\nsequence {sequence}\ncheck {}\n", sequence ^ CHECK_MASK)?;
    file.sync_all()?;
    fs::rename(&temp, dir.join(WATERMARK_FILE))?;
    File::open(dir)?.sync_all()
}

/// The diagnosis recorded by an open that found `dir` damaged, if any.
pub fn read_damaged(dir: &Path) -> Option<String> {
    let found = fs::read_to_string(dir.join(DAMAGED_FILE)).ok()?;
    Some(found.trim().to_string())
}

/// Records that `dir` lost synced writes, and why (see [`DAMAGED_FILE`]).
pub fn write_damaged(dir: &Path, reason: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(dir.join(DAMAGED_FILE))?;
    writeln!(file, "{reason}")?;
    file.sync_all()?;
    File::open(dir)?.sync_all()
}

/// The running watermark of an open database: raised by synced writes, written out by a thread.
#[derive(Debug)]
pub(crate) struct Watermark {
    dir: PathBuf,
    synced: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watermark {
    /// Starts from `persisted`, the value the file holds (0 when none).
    pub(crate) fn start(dir: &Path, persisted: u64) -> io::Result<Self> {
        let synced = Arc::new(AtomicU64::new(persisted));
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = {
            let (dir, synced) = (dir.to_path_buf(), synced.clone());
            std::thread::Builder::new().name("mortar-storage-watermark".into()).spawn(move || {
                let mut written = persisted;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PERSIST_INTERVAL) {
                    let now = synced.load(Ordering::Acquire);
                    if now > written {
                        match write(&dir, now) {
                            Ok(()) => written = now,
                            Err(e) => warn!(error = %e, "could not write the synced watermark"),
                        }
                    }
                }
            })?
        };
        Ok(Self { dir: dir.to_path_buf(), synced, stop: Some(stop), thread: Some(thread) })
    }

    /// Everything up to `sequence` is durable.
    pub(crate) fn synced(&self, sequence: u64) {
        self.synced.fetch_max(sequence, Ordering::AcqRel);
    }

    /// Stops the thread and writes the final watermark, `sequence` (everything is synced).
    pub(crate) fn close(&mut self, sequence: u64) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let last = self.synced.load(Ordering::Acquire).max(sequence);
        if let Err(e) = write(&self.dir, last) {
            warn!(error = %e, "could not write the final synced watermark");
        }
    }
}

impl Drop for Watermark {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_watermark_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None), "no file yet");
        write(dir.path(), 12_345).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(12_345)));
        let path = dir.path().join(WATERMARK_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("12345", "12346")).unwrap();
        assert!(read(dir.path()).is_err(), "a changed number fails its check");
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(read(dir.path()).is_err(), "a truncated file is damaged");
    }

    #[test]
    fn the_thread_writes_raised_watermarks_and_close_writes_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut watermark = Watermark::start(dir.path(), 0).unwrap();
        watermark.synced(7);
        watermark.synced(5); // never goes back
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read(dir.path()) != Ok(Some(7)) {
            assert!(std::time::Instant::now() < deadline, "the watermark thread never wrote 7");
            std::thread::sleep(Duration::from_millis(20));
        }
        watermark.close(9);
        assert_eq!(read(dir.path()), Ok(Some(9)));
    }
}
