//! Execution: committed instances run in an order every replica agrees on. The dependency graph
//! of committed instances is split into strongly connected components (Tarjan's algorithm,
//! iterative: no recursion however long the chains); components run in reverse topological order
//! (dependencies first) and the instances inside one in (seq, id) order.
//! An instance that depends on one not yet committed here waits; the replica asks its peers for the
//! missing commit after a timeout instead of spinning.
//!
//! A dependency `r.s` stands for every instance of replica `r` up to slot `s`. The search does not
//! expand it into an edge per slot, which made it quadratic in the unexecuted instances (a replica
//! catching up on thousands of them stalled its driver for minutes): `r.s` is one edge to a *prefix
//! node* `P(r, s)`, whose edges are `r.u` (`u` the highest unexecuted slot `<= s`) and
//! `P(r, u - 1)`. Prefix nodes reach exactly the instances their dependencies stand for, so the
//! components of instances, and the order between them, are those of the expanded graph; each
//! prefix node is shared by every dependency on that prefix, and a search is linear in its size.

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

    /// The last slot at or before `slot` that is not executed, if any (slots start at 1).
    fn prev_unexecuted(&self, slot: u64) -> Option<u64> {
        if slot <= self.contiguous {
            return None;
        }
        match self.above.range(..=slot).next_back() {
            // Ranges never touch `contiguous` or each other: the slot before one is unexecuted.
            Some((&start, &end)) if end >= slot => (start - 1 > self.contiguous).then_some(start - 1),
            _ => Some(slot),
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

/// The slot bit that marks a search node as a prefix node `P(r, s)` (see the module
/// documentation); no instance's slot comes near it.
const PREFIX: u64 = 1 << 63;

fn is_prefix(id: InstanceId) -> bool {
    id.slot & PREFIX != 0
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
    /// Search frames: node, index of its next edge.
    calls: Vec<(InstanceId, usize)>,
    component: Vec<InstanceId>,
    /// Search nodes found blocked, with the instance not committed here that each reaches: a
    /// later search that meets one stops there instead of searching the blocked region again
    /// (each new commit behind a long-blocked instance would). Only that instance's commit can
    /// unblock them (nothing on a path to it can execute first), and it clears them.
    blocked: HashMap<InstanceId, InstanceId>,
    /// The nodes in `blocked`, by the instance that blocks them.
    blocked_by: HashMap<InstanceId, Vec<InstanceId>>,
    /// Steps the searches took (each examines one edge or closes one instance), over this
    /// executor's life: the work execution costs.
    pub(crate) search_steps: u64,
    /// The cut of a sealed epoch (see `crate::seal`): a dependency above it stands for a slot that
    /// never committed anywhere, a no-op, so it counts only up to the cut.
    clamp: HashMap<crate::types::ReplicaId, u64>,
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

    /// The highest executed slot of `replica` (0 if none).
    pub(crate) fn executed_max(&self, replica: crate::types::ReplicaId) -> u64 {
        self.executed
            .get(&replica)
            .map_or(0, |w| w.above.values().next_back().copied().unwrap_or(w.contiguous))
    }

    /// Installs the cut of a sealed epoch: dependencies count only up to it. Everything that waited
    /// on a slot above it is tried again.
    pub(crate) fn set_clamp(&mut self, cut: impl IntoIterator<Item = (crate::types::ReplicaId, u64)>) {
        self.clamp = cut.into_iter().collect();
        for (_, w) in self.waiting.drain() {
            self.queue.extend(w.roots);
        }
        self.blocked.clear();
        self.blocked_by.clear();
    }

    pub(crate) fn mark_executed(&mut self, id: InstanceId) {
        self.executed.entry(id.replica).or_default().insert(id.slot);
    }

    pub(crate) fn on_committed(&mut self, id: InstanceId) {
        self.queue.push(id);
        if let Some(w) = self.waiting.remove(&id) {
            self.queue.extend(w.roots);
        }
        for v in self.blocked_by.remove(&id).unwrap_or_default() {
            self.blocked.remove(&v);
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
            let result = match self.blocked.get(&root) {
                Some(&missing) => Err(missing),
                None => self.execute_from(root, instances, out),
            };
            if let Err(missing) = result {
                self.waiting.entry(missing).or_default().roots.push(root);
            }
        }
    }

    /// Tarjan's SCC algorithm from `root` over committed, unexecuted instances (and the prefix
    /// nodes their dependencies point to; see the module documentation). Components are complete
    /// (every instance they reach is committed) when emitted, so they execute at once even if the
    /// search later meets an instance that is not committed, which it then returns.
    ///
    /// A dependency `r.s` stands for every instance of replica `r` up to slot `s` (as in the EPaxos
    /// reference implementation): the "latest instance per replica per key" that attributes record
    /// then covers the earlier ones on that key even when a no-op or a crash broke the chain. An
    /// instance's dependency on its own replica's prefix may cover the instance itself: a path
    /// back to an instance on the stack only joins it to a component, so it never waits on itself.
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
        while let Some(&(v, _)) = self.calls.last() {
            self.search_steps += 1;
            let Some(w) = self.next_edge(v, instances) else {
                self.close(v, instances, out);
                continue;
            };
            match self.visits.get(&w) {
                None => {
                    let missing = match self.blocked.get(&w) {
                        Some(&missing) => missing,
                        None if is_prefix(w) => {
                            self.open(w, &mut next_index);
                            continue;
                        }
                        None => match instances.get(&w) {
                            Some(i) if i.status == Status::Committed => {
                                self.open(w, &mut next_index);
                                continue;
                            }
                            _ => w,
                        },
                    };
                    // Everything still on the stack reaches `missing`: the search path does, and
                    // each other entry is in a component with a node on the path.
                    let by = self.blocked_by.entry(missing).or_default();
                    for &v in &self.stack {
                        self.blocked.insert(v, missing);
                        by.push(v);
                    }
                    return Err(missing);
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

    /// The next edge of search node `v` (its frame is the top of `calls`), advancing the frame;
    /// `None` once `v` has no more edges. Executed instances and empty prefixes are skipped.
    fn next_edge(&mut self, v: InstanceId, instances: &HashMap<InstanceId, Instance>) -> Option<InstanceId> {
        loop {
            let frame = self.calls.last_mut().expect("v's frame");
            let edge_at = frame.1;
            frame.1 += 1;
            let target = if is_prefix(v) {
                // P(r, u): first r.u, then the prefix below it.
                let u = v.slot & !PREFIX;
                match edge_at {
                    0 => Some(InstanceId { replica: v.replica, slot: u }).filter(|i| !self.is_executed(*i)),
                    1 => self.prefix_node(v.replica, u - 1),
                    _ => return None,
                }
            } else {
                let deps = &instances.get(&v).expect("visited instance is in memory").attrs.deps;
                let &dep = deps.get(edge_at)?;
                let slot = self.clamp.get(&dep.replica).map_or(dep.slot, |&bound| dep.slot.min(bound));
                self.prefix_node(dep.replica, slot)
            };
            if target.is_some() {
                return target;
            }
        }
    }

    /// The prefix node for every unexecuted instance of `replica` up to `slot`, named by the
    /// highest of them so that equal prefixes share one node; `None` when all are executed.
    fn prefix_node(&self, replica: crate::types::ReplicaId, slot: u64) -> Option<InstanceId> {
        let u = match self.executed.get(&replica) {
            Some(w) => w.prev_unexecuted(slot)?,
            None => slot,
        };
        (u >= 1).then_some(InstanceId { replica, slot: u | PREFIX })
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
        if let Some(&(parent, _)) = self.calls.last() {
            let low = &mut self.visits.get_mut(&parent).expect("visited").low;
            *low = (*low).min(visit.low);
        }
    }

    fn open(&mut self, v: InstanceId, next_index: &mut u32) {
        self.visits.insert(v, Visit { index: *next_index, low: *next_index, on_stack: true });
        *next_index += 1;
        self.stack.push(v);
        self.calls.push((v, 0));
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
            if !is_prefix(w) {
                self.component.push(w);
            }
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
#[path = "exec_test.rs"]
mod tests;
