//! Execution: committed instances run in an order every replica agrees on. The dependency graph
//! of committed instances is split into strongly connected components (Tarjan's algorithm,
//! iterative: no recursion however long the chains); components run in reverse topological order
//! (dependencies first) and the instances inside one in (seq, id) order.
//! An instance that depends on one not yet committed here waits; the replica asks its peers for the
//! missing commit after a timeout instead of spinning.

use crate::ready::Executed;
use crate::replica::Instance;
use crate::types::{InstanceId, Status};
use std::collections::{BTreeMap, HashMap};

/// Which of one replica's slots are executed: every slot `<= contiguous`, and the inclusive
/// ranges in `above` (start -> end), kept disjoint and non-adjacent.
#[derive(Debug, Default, Clone)]
struct Watermark {
    contiguous: u64,
    above: BTreeMap<u64, u64>,
}

impl Watermark {
    fn contains(&self, slot: u64) -> bool {
        slot <= self.contiguous || self.above.range(..=slot).next_back().is_some_and(|(_, &end)| end >= slot)
    }

    /// The first slot at or after `slot` that is not executed.
    fn next_unexecuted(&self, slot: u64) -> u64 {
        let slot = slot.max(self.contiguous + 1);
        match self.above.range(..=slot).next_back() {
            Some((_, &end)) if end >= slot => end + 1,
            _ => slot,
        }
    }

    fn insert(&mut self, slot: u64) {
        if self.contains(slot) {
            return;
        }
        let mut start = slot;
        let mut end = slot;
        if let Some((&s, &e)) = self.above.range(..slot).next_back()
            && e + 1 == slot
        {
            start = s;
            self.above.remove(&s);
        }
        if let Some(e) = self.above.remove(&(slot + 1)) {
            end = e;
        }
        if start == self.contiguous + 1 {
            self.contiguous = end;
        } else {
            self.above.insert(start, end);
        }
    }
}

#[derive(Debug, Default)]
struct Waiting {
    roots: Vec<InstanceId>,
    ticks: u32,
}

#[derive(Debug, Clone, Copy)]
struct Visit {
    index: u32,
    low: u32,
    on_stack: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Executor {
    executed: HashMap<crate::types::ReplicaId, Watermark>,
    /// Committed instances to try to execute.
    queue: Vec<InstanceId>,
    /// Instances not committed here that committed instances wait on.
    waiting: HashMap<InstanceId, Waiting>,
    // Scratch space for Tarjan's algorithm, kept to avoid allocating per run.
    visits: HashMap<InstanceId, Visit>,
    stack: Vec<InstanceId>,
    /// Search frames: instance, index into its deps, next slot of that dependency's prefix.
    calls: Vec<(InstanceId, usize, u64)>,
    component: Vec<InstanceId>,
}

impl Executor {
    pub(crate) fn is_executed(&self, id: InstanceId) -> bool {
        self.executed.get(&id.replica).is_some_and(|w| w.contains(id.slot))
    }

    /// The first slot of `replica` at or after `slot` that is not executed here.
    pub(crate) fn next_unexecuted(&self, replica: crate::types::ReplicaId, slot: u64) -> u64 {
        self.executed.get(&replica).map_or(slot.max(1), |w| w.next_unexecuted(slot))
    }

    /// Every slot of `replica` up to this one is executed.
    pub(crate) fn executed_contiguous(&self, replica: crate::types::ReplicaId) -> u64 {
        self.executed.get(&replica).map_or(0, |w| w.contiguous)
    }

    /// Every slot of `replica` up to `slot` is executed (a forgotten prefix, after a restart).
    pub(crate) fn mark_executed_through(&mut self, replica: crate::types::ReplicaId, slot: u64) {
        let w = self.executed.entry(replica).or_default();
        if slot > w.contiguous {
            w.contiguous = slot;
            let stale: Vec<u64> = w.above.range(..=slot).map(|(s, _)| *s).collect();
            let mut reach = slot;
            for s in stale {
                let end = w.above.remove(&s).expect("listed");
                reach = reach.max(end);
            }
            w.contiguous = reach;
            while let Some(end) = w.above.remove(&(w.contiguous + 1)) {
                w.contiguous = end;
            }
        }
    }

    pub(crate) fn mark_executed(&mut self, id: InstanceId) {
        self.executed.entry(id.replica).or_default().insert(id.slot);
    }

    pub(crate) fn on_committed(&mut self, id: InstanceId) {
        self.queue.push(id);
        if let Some(w) = self.waiting.remove(&id) {
            self.queue.extend(w.roots);
        }
    }

    /// Instances that committed instances have waited on for `ticks_max` ticks; their wait starts
    /// over.
    pub(crate) fn tick(&mut self, ticks_max: u32) -> Vec<InstanceId> {
        let mut due = Vec::new();
        for (id, w) in self.waiting.iter_mut() {
            w.ticks += 1;
            if w.ticks >= ticks_max {
                w.ticks = 0;
                due.push(*id);
            }
        }
        due.sort_unstable();
        due
    }

    pub(crate) fn waiting_on(&self) -> impl Iterator<Item = &InstanceId> {
        self.waiting.keys()
    }

    /// Executes everything executable, appending to `out`.
    pub(crate) fn run(&mut self, instances: &mut HashMap<InstanceId, Instance>, out: &mut Vec<Executed>) {
        while let Some(root) = self.queue.pop() {
            if self.is_executed(root) {
                continue;
            }
            match instances.get(&root) {
                Some(i) if i.status == Status::Committed => {}
                _ => continue, // queued again when it commits here
            }
            if let Err(missing) = self.execute_from(root, instances, out) {
                self.waiting.entry(missing).or_default().roots.push(root);
            }
        }
    }

    /// Tarjan's SCC algorithm from `root` over committed, unexecuted instances. Components are
    /// complete (every instance they reach is committed) when emitted, so they execute at once even
    /// if the search later meets an instance that is not committed, which it then returns.
    ///
    /// A dependency `r.s` stands for every instance of replica `r` up to slot `s` (as in the EPaxos
    /// reference implementation): the "latest instance per replica per key" that attributes record
    /// then covers the earlier ones on that key even when a no-op or a crash broke the chain.
    fn execute_from(
        &mut self,
        root: InstanceId,
        instances: &mut HashMap<InstanceId, Instance>,
        out: &mut Vec<Executed>,
    ) -> Result<(), InstanceId> {
        self.visits.clear();
        self.stack.clear();
        self.calls.clear();
        let mut next_index = 0u32;
        self.open(root, &mut next_index);
        while let Some(&(v, dep_at, slot_at)) = self.calls.last() {
            let deps = &instances.get(&v).expect("visited instance is in memory").attrs.deps;
            let Some(&dep) = deps.get(dep_at) else {
                self.close(v, instances, out);
                continue;
            };
            // Next unexecuted slot of this dependency's prefix (an instance never waits on itself).
            let mut slot = self.next_unexecuted(dep.replica, slot_at);
            if dep.replica == v.replica && slot == v.slot {
                slot = self.next_unexecuted(dep.replica, slot + 1);
            }
            let next = (slot <= dep.slot).then_some(slot);
            let frame = self.calls.last_mut().expect("non-empty");
            let Some(slot) = next else {
                frame.1 += 1;
                frame.2 = 0;
                continue;
            };
            frame.2 = slot + 1;
            let w = InstanceId { replica: dep.replica, slot };
            match self.visits.get(&w) {
                None => {
                    match instances.get(&w) {
                        Some(i) if i.status == Status::Committed => {}
                        _ => return Err(w),
                    }
                    self.open(w, &mut next_index);
                }
                Some(visit) if visit.on_stack => {
                    let index = visit.index;
                    let low = &mut self.visits.get_mut(&v).expect("visited").low;
                    *low = (*low).min(index);
                }
                Some(_) => {} // in a component already executed by this search
            }
        }
        Ok(())
    }

    fn close(
        &mut self,
        v: InstanceId,
        instances: &mut HashMap<InstanceId, Instance>,
        out: &mut Vec<Executed>,
    ) {
        self.calls.pop();
        let visit = self.visits[&v];
        if visit.low == visit.index {
            self.emit_component(v, instances, out);
        }
        if let Some(&(parent, _, _)) = self.calls.last() {
            let low = &mut self.visits.get_mut(&parent).expect("visited").low;
            *low = (*low).min(visit.low);
        }
    }

    fn open(&mut self, v: InstanceId, next_index: &mut u32) {
        self.visits.insert(v, Visit { index: *next_index, low: *next_index, on_stack: true });
        *next_index += 1;
        self.stack.push(v);
        self.calls.push((v, 0, 0));
    }

    fn emit_component(
        &mut self,
        head: InstanceId,
        instances: &mut HashMap<InstanceId, Instance>,
        out: &mut Vec<Executed>,
    ) {
        self.component.clear();
        loop {
            let w = self.stack.pop().expect("component head is on the stack");
            self.visits.get_mut(&w).expect("visited").on_stack = false;
            self.component.push(w);
            if w == head {
                break;
            }
        }
        self.component.sort_unstable_by_key(|id| (instances[id].attrs.seq, *id));
        for i in 0..self.component.len() {
            let id = self.component[i];
            let instance = instances.remove(&id).expect("component member is in memory");
            assert!(
                instance.status == Status::Committed,
                "executing an uncommitted instance: instance={id} status={:?}",
                instance.status
            );
            self.mark_executed(id);
            out.push(Executed { id, commands: instance.commands });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_tracks_gaps() {
        let mut w = Watermark::default();
        w.insert(2);
        assert!(!w.contains(1) && w.contains(2));
        w.insert(1);
        assert_eq!(w.contiguous, 2);
        assert!(w.above.is_empty());
        w.insert(5);
        w.insert(3);
        assert_eq!(w.contiguous, 3);
        assert!(w.contains(5) && !w.contains(4));
    }

    #[test]
    fn watermark_merges_ranges_and_finds_the_next_gap() {
        let mut w = Watermark::default();
        for slot in [10, 12, 11, 20, 5, 6, 7, 19] {
            w.insert(slot);
        }
        assert_eq!(
            w.above.iter().map(|(s, e)| (*s, *e)).collect::<Vec<_>>(),
            vec![(5, 7), (10, 12), (19, 20)]
        );
        assert_eq!(w.next_unexecuted(1), 1);
        assert_eq!(w.next_unexecuted(5), 8);
        assert_eq!(w.next_unexecuted(11), 13);
        assert_eq!(w.next_unexecuted(19), 21);
        for slot in 1..=4 {
            w.insert(slot);
        }
        assert_eq!(w.contiguous, 7);
        assert_eq!(w.next_unexecuted(1), 8);
        for slot in 8..=9 {
            w.insert(slot);
        }
        assert_eq!(w.contiguous, 12);
        assert!(!w.contains(13) && w.contains(20));
    }
}
