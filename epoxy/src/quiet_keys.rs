//! When the conflict index may forget a key. A key's record names the latest instance of each
//! replica on it; once every one of them is forgotten (executed on every replica, see
//! `Replica::forget_executed_everywhere`), nothing new on the key can execute before them. So the
//! record leaves memory and disk, and the key costs nothing of its own until it is touched again
//! (see docs/ARCHITECTURE.md, "Quiet keys").
//!
//! A dropped record still counts in this replica's votes, in summary: recovery reasons that a
//! replica that saw an instance J on a key names it (or a later instance of J's replica) in every
//! vote it gives on that key, so that an instance committed without J and J committed without it
//! cannot both hold a fast quorum's votes. A replica that dropped the key's record would vote
//! without J, and a recoverer would wrongly rule out a fast commit. So each dropped record's
//! slots are folded into its key's bucket (`DroppedSlots`: per bucket of keys and replica, the
//! highest slot a dropped record named), and a vote or proposal on a key without a record depends
//! on its bucket's slots. They are forgotten, so executing waits on nothing; and a proposal whose
//! leader folded the same records already covers them, so the vote does not change.
//!
//! `QuietKeys` keeps, per replica, the keys whose record named one of its slots, in the order they
//! were named: when the replica's forgotten floor passes a slot, its keys are looked at again.

use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct QuietKeys {
    /// Per replica index: (slot, key), mostly by slot (an instance named out of order waits
    /// behind a later one until the floor passes both).
    named: Vec<VecDeque<(u64, Bytes)>>,
}

impl QuietKeys {
    pub(crate) fn new(replicas: usize) -> Self {
        Self { named: vec![VecDeque::new(); replicas] }
    }

    /// The record of `key` names slot `slot` of the replica at index `at`.
    pub(crate) fn named(&mut self, at: usize, slot: u64, key: Bytes) {
        if let Some(queue) = self.named.get_mut(at) {
            queue.push_back((slot, key));
        }
    }

    /// The keys named with a slot of the replica at index `at` up to `through`: each may now be
    /// quiet (the caller checks the rest of its record).
    pub(crate) fn due(&mut self, at: usize, through: u64) -> Vec<Bytes> {
        let Some(queue) = self.named.get_mut(at) else { return Vec::new() };
        let mut due = Vec::new();
        while queue.front().is_some_and(|(slot, _)| *slot <= through) {
            due.push(queue.pop_front().expect("checked").1);
        }
        due
    }
}

/// Buckets of keys in [`DroppedSlots`]: more buckets, fewer keys share one (a shared bucket makes
/// a vote depend on slots another key's record named, which are forgotten: harmless but for a
/// vote that then differs from the leader's, and a slow path).
const BUCKETS: usize = 16_384;

/// Per bucket of keys and replica, the highest slot of that replica a dropped record of a key in
/// the bucket named (see the module documentation); and per bucket, the highest `seq_max` of
/// those records. Allocated at the first drop.
///
/// The seq keeps a vote on a key without a record equal to one on the key's record: a replica
/// that still holds the record answers at least `seq_max + 1`, so a leader that dropped it
/// proposes that too, or the two differ and the instance takes the slow path (with the deps
/// rule of `Attributes::normalize`, this took `increment`s spread over three leaders from 13-30%
/// of instances on the slow path to 4-7%). A higher seq is always a valid proposal or answer;
/// this one only makes them agree.
#[derive(Debug, Default)]
pub(crate) struct DroppedSlots {
    replicas: usize,
    /// `BUCKETS * replicas` slots, bucket-major; empty until a record is dropped.
    slots: Vec<u64>,
    /// `BUCKETS` seqs; empty until a record is dropped.
    seqs: Vec<u64>,
}

impl DroppedSlots {
    pub(crate) fn new(replicas: usize) -> Self {
        Self { replicas, slots: Vec::new(), seqs: Vec::new() }
    }

    /// The record of `key`, whose highest seq was `seq_max`, was dropped.
    pub(crate) fn dropped_record(&mut self, key: &[u8], seq_max: u64) {
        self.allocate();
        let cell = &mut self.seqs[bucket(key)];
        *cell = (*cell).max(seq_max);
    }

    /// A record of `key` naming slot `slot` of the replica at index `at` was dropped.
    pub(crate) fn dropped(&mut self, key: &[u8], at: usize, slot: u64) {
        if at >= self.replicas {
            return;
        }
        self.allocate();
        let cell = &mut self.slots[bucket(key) * self.replicas + at];
        *cell = (*cell).max(slot);
    }

    /// A record of `key` named slot `slot` of the replica at index `at` with seq `seq` (for the
    /// summary of every record seen, `Replica::seen`): `dropped` and `dropped_record` in one.
    pub(crate) fn saw(&mut self, key: &[u8], at: Option<usize>, slot: u64, seq: u64) {
        self.allocate();
        let bucket = bucket(key);
        if let Some(at) = at.filter(|&at| at < self.replicas) {
            let cell = &mut self.slots[bucket * self.replicas + at];
            *cell = (*cell).max(slot);
        }
        let cell = &mut self.seqs[bucket];
        *cell = (*cell).max(seq);
    }

    fn allocate(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![0; BUCKETS * self.replicas];
        }
        if self.seqs.is_empty() {
            self.seqs = vec![0; BUCKETS];
        }
    }

    /// After a restart the dropped records are not known: every bucket takes the forgotten floors,
    /// above every slot a record dropped before could have named.
    pub(crate) fn restarted(&mut self, forgotten: &[u64]) {
        if forgotten.len() == self.replicas && forgotten.iter().any(|f| *f > 0) {
            self.slots = forgotten.iter().copied().cycle().take(BUCKETS * self.replicas).collect();
        }
    }

    /// What the dropped records of `key`'s bucket named: per replica index the highest slot
    /// (0: none), and the highest seq (0: none, or not known since a restart: then votes may
    /// differ, which costs a slow path and nothing else). None while nothing was dropped.
    pub(crate) fn of(&self, key: &[u8]) -> Option<(&[u64], u64)> {
        if self.slots.is_empty() {
            return None;
        }
        let bucket = bucket(key);
        let from = bucket * self.replicas;
        let seq = self.seqs.get(bucket).copied().unwrap_or(0);
        Some((&self.slots[from..from + self.replicas], seq))
    }
}

/// FNV-1a: the same bucket on every replica (a leader and its acceptors fold alike).
pub(crate) fn bucket(key: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % BUCKETS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_gives_the_keys_named_up_to_the_floor_in_order() {
        let mut quiet = QuietKeys::new(2);
        quiet.named(0, 3, "a".into());
        quiet.named(0, 5, "b".into());
        quiet.named(1, 1, "c".into());
        quiet.named(0, 4, "d".into());
        assert_eq!(quiet.due(0, 2), Vec::<Bytes>::new());
        assert_eq!(quiet.due(0, 4), vec![Bytes::from("a")], "d waits behind b");
        assert_eq!(quiet.due(0, 5), vec![Bytes::from("b"), Bytes::from("d")]);
        assert_eq!(quiet.due(1, 9), vec![Bytes::from("c")]);
        assert_eq!(quiet.due(0, 99), Vec::<Bytes>::new(), "each key is given once");
        assert_eq!(quiet.due(7, 9), Vec::<Bytes>::new(), "an index out of range has nothing");
    }

    #[test]
    fn dropped_slots_keep_the_highest_slot_per_bucket_and_replica() {
        let mut dropped = DroppedSlots::new(3);
        assert_eq!(dropped.of(b"a"), None, "nothing dropped yet");
        dropped.dropped_record(b"a", 9);
        dropped.dropped_record(b"a", 4);
        dropped.dropped(b"a", 1, 7);
        dropped.dropped(b"a", 1, 5);
        dropped.dropped(b"a", 2, 3);
        dropped.dropped(b"a", 9, 3);
        assert_eq!(dropped.of(b"a"), Some((&[0, 7, 3][..], 9)), "the highest slots and seq of the bucket");
        let other = (0..).map(|i| format!("k{i}")).find(|k| bucket(k.as_bytes()) != bucket(b"a")).unwrap();
        assert_eq!(dropped.of(other.as_bytes()), Some((&[0, 0, 0][..], 0)));
        let mut restarted = DroppedSlots::new(3);
        restarted.restarted(&[4, 0, 2]);
        assert_eq!(restarted.of(b"a"), Some((&[4, 0, 2][..], 0)), "a restart takes the floors, no seq");
        assert_eq!(restarted.of(other.as_bytes()), Some((&[4, 0, 2][..], 0)));
    }
}
