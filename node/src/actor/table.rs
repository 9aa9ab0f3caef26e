//! The runtime's table of active actors: one boxed [`Node`] (an id and its entry) per actor, and
//! a hash table of pointers to them.
//!
//! Every idle actor costs its slot in the table, and a hash table keeps between 1 and 2 slots per
//! entry (it doubles when 7/8 full). A `HashMap<ActorId, Entry>` slot holds the 16-byte key and
//! the 32-byte entry; this table's holds an 8-byte pointer, so at a million actors (2^21 slots)
//! it costs about 19 B per actor instead of 103 B, for one 48-byte allocation each.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::keys::ActorId;

/// One active actor: its id (the block of its own that its tasks hold clones of) and `E`.
pub(super) struct Node<E> {
    pub id: ActorId,
    pub entry: E,
}

/// Active actors by id.
pub(super) struct Table<E> {
    nodes: HashTable<Box<Node<E>>>,
    hasher: RandomState,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self { nodes: HashTable::new(), hasher: RandomState::new() }
    }
}

impl<E> Table<E> {
    fn hash(&self, id: &ActorId) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The actor equal to `id`, whichever activation it is.
    pub fn get(&self, id: &ActorId) -> Option<&Node<E>> {
        self.nodes.find(self.hash(id), |n| n.id == *id).map(|n| &**n)
    }

    /// The actor equal to `id`, whichever activation it is.
    pub fn get_mut(&mut self, id: &ActorId) -> Option<&mut Node<E>> {
        let hash = self.hash(id);
        self.nodes.find_mut(hash, |n| n.id == *id).map(|n| &mut **n)
    }

    /// Activation `id` (a clone of its key: [`ActorId::is_same`]), if it is still in the table.
    pub fn get_same(&mut self, id: &ActorId) -> Option<&mut Node<E>> {
        self.get_mut(id).filter(|n| n.id.is_same(id))
    }

    /// Removes activation `id` (a clone of its key), if it is still in the table.
    pub fn remove_same(&mut self, id: &ActorId) -> Option<Node<E>> {
        let hash = self.hash(id);
        let entry = self.nodes.find_entry(hash, |n| n.id.is_same(id)).ok()?;
        Some(*entry.remove().0)
    }

    /// Adds `id`, which must not be in the table.
    pub fn insert(&mut self, id: ActorId, entry: E) {
        debug_assert!(self.get(&id).is_none(), "actor {id} is in the table twice");
        let hash = self.hash(&id);
        let hasher = &self.hasher;
        self.nodes.insert_unique(hash, Box::new(Node { id, entry }), |n| hasher.hash_one(&n.id));
    }

    /// Removes and returns the actors `pred` picks.
    pub fn extract_if(&mut self, mut pred: impl FnMut(&ActorId, &mut E) -> bool) -> Vec<Node<E>> {
        self.nodes.extract_if(|n| pred(&n.id, &mut n.entry)).map(|n| *n).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Node<E>> {
        self.nodes.iter().map(|n| &**n)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Node<E>> {
        self.nodes.iter_mut().map(|n| &mut **n)
    }
}

#[cfg(test)]
#[path = "table_test.rs"]
mod tests;
