//! Load reports: each member's load number, spread as foca custom broadcasts.
//!
//! A member's region and addresses never change while it runs, so they travel in its identity; its
//! load changes all the time, so it travels separately: a small versioned report that foca piggybacks
//! on its messages, where a newer report of a member replaces the older one still being spread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

use crate::gossip::identity::GossipId;
use crate::ring::NodeId;

/// Most members whose load the table remembers; past it, members not in the current view are
/// forgotten (see [`LoadTable::retain`]).
pub(crate) const LOAD_TABLE_ENTRIES_MAX: usize = 1024;

/// One member's load at one moment. `(generation, seq)` orders the reports of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoadReport {
    pub(crate) node: NodeId,
    pub(crate) generation: u64,
    pub(crate) seq: u64,
    pub(crate) load: u64,
}

impl LoadReport {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a load report always encodes")
    }

    fn version(&self) -> (u64, u64) {
        (self.generation, self.seq)
    }
}

/// What foca keeps to decide which report supersedes which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoadKey {
    node: NodeId,
    version: (u64, u64),
}

impl Invalidates for LoadKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.version > other.version
    }
}

/// The newest load report of every member heard of. Pure: no I/O.
#[derive(Debug, Default)]
pub(crate) struct LoadTable {
    reports: HashMap<NodeId, LoadReport>,
    /// Whether a report changed a load since [`LoadTable::take_changed`] was last called.
    changed: bool,
}

impl LoadTable {
    /// Keeps `report` if it is newer than what we know of its member; returns whether it was kept.
    pub(crate) fn apply(&mut self, report: LoadReport) -> bool {
        let newer = self.reports.get(&report.node).is_none_or(|known| report.version() > known.version());
        if newer {
            let old_load = self.reports.insert(report.node, report).map(|known| known.load);
            self.changed |= old_load != Some(report.load);
        }
        newer
    }

    /// The last load `node` reported, 0 if none.
    pub(crate) fn load_of(&self, node: NodeId) -> u64 {
        self.reports.get(&node).map_or(0, |report| report.load)
    }

    pub(crate) fn len(&self) -> usize {
        self.reports.len()
    }

    /// Forgets every member for which `keep` is false.
    pub(crate) fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.reports.retain(|&node, _| keep(node));
    }

    /// Whether a load changed since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

/// A load report that could not be decoded: a peer running incompatible code, or garbage.
#[derive(Debug, thiserror::Error)]
#[error("undecodable load report: {0}")]
pub(crate) struct LoadDecodeError(#[from] postcard::Error);

/// foca's [`BroadcastHandler`] over a [`LoadTable`] that the gossip driver also reads.
///
/// foca owns its handler and offers no way back to it, hence the shared table; only the driver
/// task touches it, so the lock is never contended.
pub(crate) struct LoadBroadcasts {
    table: Arc<Mutex<LoadTable>>,
}

impl LoadBroadcasts {
    pub(crate) fn new() -> (Self, Arc<Mutex<LoadTable>>) {
        let table = Arc::new(Mutex::new(LoadTable::default()));
        (Self { table: Arc::clone(&table) }, table)
    }
}

/// Locks the table; a poisoned lock means the driver already panicked (a bug).
pub(crate) fn lock(table: &Mutex<LoadTable>) -> MutexGuard<'_, LoadTable> {
    table.lock().expect("load table lock poisoned: the gossip driver panicked")
}

impl BroadcastHandler<GossipId> for LoadBroadcasts {
    type Key = LoadKey;
    type Error = LoadDecodeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&GossipId>,
    ) -> Result<Option<LoadKey>, LoadDecodeError> {
        let report: LoadReport = postcard::from_bytes(data)?;
        let key = LoadKey { node: report.node, version: report.version() };
        // Spread it further only if it was news to us; otherwise foca would never stop sending it.
        Ok(lock(&self.table).apply(report).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: NodeId, generation: u64, seq: u64, load: u64) -> LoadReport {
        LoadReport { node, generation, seq, load }
    }

    #[test]
    fn newer_reports_replace_older_ones() {
        let mut table = LoadTable::default();
        assert!(table.apply(report(1, 5, 1, 10)));
        assert!(table.take_changed());
        assert!(!table.apply(report(1, 5, 1, 99)), "same version is not news");
        assert!(!table.apply(report(1, 4, 9, 99)), "older generation is stale");
        assert_eq!(table.load_of(1), 10);
        assert!(table.apply(report(1, 5, 2, 10)), "newer seq is news");
        assert!(!table.take_changed(), "same load: nothing changed");
        assert!(table.apply(report(1, 6, 0, 3)), "newer generation wins over any seq");
        assert!(table.take_changed());
        assert_eq!(table.load_of(1), 3);
        assert_eq!(table.load_of(2), 0);
    }

    #[test]
    fn handler_spreads_only_news() {
        let (mut handler, table) = LoadBroadcasts::new();
        let data = report(3, 1, 1, 42).encode();
        assert!(handler.receive_item(&data, None).expect("decodes").is_some());
        assert!(handler.receive_item(&data, None).expect("decodes").is_none());
        assert_eq!(lock(&table).load_of(3), 42);
        assert!(handler.receive_item(&[0xff; 3], None).is_err());
    }

    #[test]
    fn newer_key_invalidates_older_of_the_same_member_only() {
        let old = LoadKey { node: 1, version: (1, 1) };
        let new = LoadKey { node: 1, version: (1, 2) };
        let other = LoadKey { node: 2, version: (9, 9) };
        assert!(new.invalidates(&old));
        assert!(!old.invalidates(&new));
        assert!(!other.invalidates(&old));
    }
}
