//! The keys of the instances a replica executed last. An executed instance leaves memory (its
//! record stays on disk for peers that ask), and the conflict index keeps only each replica's
//! latest instance per key, so without this a TryPreAccept could not tell whether an instance
//! executed a moment ago touched the keys of the one being recovered (see
//! `Replica::conflicts`). Bounded by count and bytes, not by the number of keys ever written:
//! an instance no longer here is "not known", and the question is answered conservatively.

use crate::types::{Command, InstanceId};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Most instances remembered.
const INSTANCES_MAX: usize = 65_536;
/// Most key bytes remembered (each key also costs its 4-byte length).
const BYTES_MAX: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct ExecutedKeys {
    /// Per instance: the key of each of its commands, each as a little-endian u32 length then
    /// the bytes (one allocation per instance; empty for a no-op). A key a batch repeats is
    /// packed again: looking for repeats would cost more, on every executed batch, than the bytes.
    keys: HashMap<InstanceId, Box<[u8]>>,
    /// Oldest first, for eviction.
    order: VecDeque<InstanceId>,
    bytes: usize,
}

impl ExecutedKeys {
    /// `id` executed here with `commands`.
    pub(crate) fn record(&mut self, id: InstanceId, commands: &[Command]) {
        let mut packed = Vec::with_capacity(commands.iter().map(|c| 4 + c.key.len()).sum());
        for c in commands {
            packed.extend_from_slice(&(c.key.len() as u32).to_le_bytes());
            packed.extend_from_slice(&c.key);
        }
        let packed = packed.into_boxed_slice();
        self.bytes += packed.len();
        if let Some(old) = self.keys.insert(id, packed) {
            self.bytes -= old.len(); // executed once; only a test feeds one twice
        } else {
            self.order.push_back(id);
        }
        while self.order.len() > INSTANCES_MAX || self.bytes > BYTES_MAX {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(old) = self.keys.remove(&oldest) {
                self.bytes -= old.len();
            }
        }
    }

    /// Whether executed instance `id` touched any of `keys` (sorted); None when it is not
    /// remembered.
    pub(crate) fn touches(&self, id: InstanceId, keys: &[&Bytes]) -> Option<bool> {
        let mut packed: &[u8] = self.keys.get(&id)?;
        while packed.len() >= 4 {
            let len = u32::from_le_bytes(packed[..4].try_into().expect("four bytes")) as usize;
            let key = &packed[4..4 + len];
            if keys.binary_search_by(|k| k.as_ref().cmp(key)).is_ok() {
                return Some(true);
            }
            packed = &packed[4 + len..];
        }
        Some(false)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u64) -> InstanceId {
        InstanceId::new(2, slot)
    }

    #[test]
    fn answers_for_remembered_instances_only() {
        let mut e = ExecutedKeys::default();
        let (x, y, z) = (Bytes::from("x"), Bytes::from("y"), Bytes::from("z"));
        e.record(id(1), &[Command::new("x", "1"), Command::new("y", "2"), Command::new("x", "3")]);
        e.record(id(2), &[]);
        assert_eq!(e.touches(id(1), &[&y, &z]), Some(true));
        assert_eq!(e.touches(id(1), &[&z]), Some(false));
        assert_eq!(e.touches(id(2), &[&x]), Some(false), "a no-op touches nothing");
        assert_eq!(e.touches(id(3), &[&x]), None);
        assert_eq!(e.bytes, 3 * (4 + 1), "one key per command");
    }

    #[test]
    fn forgets_the_oldest_past_its_bound() {
        let mut e = ExecutedKeys::default();
        let x = Bytes::from("x");
        for slot in 1..=(INSTANCES_MAX as u64 + 10) {
            e.record(id(slot), &[Command::new("x", "v")]);
        }
        assert_eq!(e.len(), INSTANCES_MAX);
        assert_eq!(e.touches(id(10), &[&x]), None);
        assert_eq!(e.touches(id(11), &[&x]), Some(true));
        let big = "k".repeat(1024 * 1024);
        for slot in 1..=10 {
            e.record(InstanceId::new(3, slot), &[Command::new(big.clone(), "v")]);
        }
        assert!(e.bytes <= BYTES_MAX, "{} bytes", e.bytes);
        assert_eq!(e.touches(InstanceId::new(3, 10), &[&Bytes::from(big)]), Some(true));
    }
}
