//! Whether a restarted node still has every write its last process made, synced or not.
//!
//! A write RocksDB returned from without a sync is in the kernel's page cache: it survives the
//! process (SIGKILL, a crash, an OOM kill) but not the machine (power loss, a kernel panic, a
//! reboot). The node records the kernel's boot id in its data directory once it has started (after
//! its first round has durably written what the start concluded); when the next start finds the
//! same boot id, the machine did not go down in between, so nothing was lost. Epoxy uses that to let a restarted command leader vouch that it did not commit an
//! instance (see `mortar_epoxy::Recovered::writes_complete`), which unblocks recoveries that
//! could otherwise wait on dead replicas.
//!
//! A failed write may have dropped unsynced pages without a reboot, so the driver deletes the
//! marker before it stops on a storage error: the next start then counts as one after a power
//! loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the marker file in the data directory.
pub const BOOT_MARKER_FILE: &str = "boot_id";
/// Where Linux publishes the id of the running boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The marker of the running process (see the module docs).
#[derive(Debug, Clone)]
pub struct BootMarker {
    path: PathBuf,
    boot_id: Option<String>,
}

/// The id of the running boot, if the kernel tells it.
pub fn current_boot_id() -> Option<String> {
    let id = fs::read_to_string(BOOT_ID_PATH).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

impl BootMarker {
    /// Compares the marker in `data_dir` with `boot_id` (the running boot's, when known): whether
    /// every write of the previous process survived. Without a boot id, nothing is known to have.
    /// Call [`BootMarker::mark`] once what the start concluded from the answer is durable.
    pub fn check(data_dir: &Path, boot_id: Option<&str>) -> io::Result<(bool, BootMarker)> {
        let path = data_dir.join(BOOT_MARKER_FILE);
        let previous = match fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let complete = matches!((&previous, boot_id), (Some(p), Some(b)) if p == b);
        Ok((complete, BootMarker { path, boot_id: boot_id.map(str::to_string) }))
    }

    /// Records the running boot's id (or removes the marker when the id is unknown). Until then a
    /// crash leaves the previous marker, which names this boot only if the check found it complete.
    pub fn mark(&self) -> io::Result<()> {
        match &self.boot_id {
            Some(id) => self.write(id),
            None => self.invalidate(),
        }
    }

    /// Writes the marker atomically and durably (temporary file, fsync, rename, fsync of the
    /// directory).
    fn write(&self, boot_id: &str) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!("{BOOT_MARKER_FILE}.tmp"));
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
        file.write_all(boot_id.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, &self.path)?;
        File::open(dir)?.sync_all()
    }

    /// Removes the marker: the next start will not trust unsynced writes.
    pub fn invalidate(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_boot_keeps_unsynced_writes() {
        let dir = tempfile::tempdir().unwrap();
        let start = |boot| {
            let (complete, marker) = BootMarker::check(dir.path(), Some(boot)).unwrap();
            marker.mark().unwrap();
            complete
        };
        assert!(!start("boot-a"), "a first start knows nothing of earlier writes");
        assert!(start("boot-a"), "a restart in the same boot");
        assert!(!start("boot-b"), "a restart after a reboot");
        // A start after a reboot that crashed before marking: the old boot's marker remains.
        let (complete, _) = BootMarker::check(dir.path(), Some("boot-c")).unwrap();
        assert!(!complete);
        assert!(!start("boot-c"), "still not the marked boot");
        assert!(start("boot-c"));
    }

    #[test]
    fn an_invalidated_marker_or_an_unknown_boot_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_, marker) = BootMarker::check(dir.path(), Some("boot-a")).unwrap();
        marker.mark().unwrap();
        marker.invalidate().unwrap();
        marker.invalidate().unwrap();
        let (complete, marker) = BootMarker::check(dir.path(), Some("boot-a")).unwrap();
        assert!(!complete, "after a storage failure");
        marker.mark().unwrap();
        let (complete, marker) = BootMarker::check(dir.path(), None).unwrap();
        assert!(!complete, "the boot id is unknown");
        marker.mark().unwrap();
        assert!(!dir.path().join(BOOT_MARKER_FILE).exists(), "an unknown boot leaves no marker");
        let (complete, _) = BootMarker::check(dir.path(), Some("boot-a")).unwrap();
        assert!(!complete);
    }

    #[test]
    fn the_running_boot_has_an_id() {
        // Linux publishes it; the node relies on it to trust a restart.
        let id = current_boot_id().expect("a boot id on Linux");
        assert_eq!(id.len(), 36, "{id}");
    }
}
