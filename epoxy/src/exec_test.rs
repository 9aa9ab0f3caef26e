use super::*;
use crate::types::{Attributes, Ballot, ReplicaId};

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
    assert_eq!(w.above.iter().map(|(s, e)| (*s, *e)).collect::<Vec<_>>(), vec![(5, 7), (10, 12), (19, 20)]);
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

#[test]
fn watermark_finds_the_previous_unexecuted_slot() {
    let mut w = Watermark::default();
    assert_eq!(w.prev_unexecuted(0), None);
    assert_eq!(w.prev_unexecuted(4), Some(4));
    for slot in [1, 2, 5, 6, 9] {
        w.insert(slot);
    }
    assert_eq!(w.prev_unexecuted(2), None);
    assert_eq!(w.prev_unexecuted(3), Some(3));
    assert_eq!(w.prev_unexecuted(6), Some(4));
    assert_eq!(w.prev_unexecuted(8), Some(8));
    assert_eq!(w.prev_unexecuted(9), Some(8));
    assert_eq!(w.prev_unexecuted(12), Some(12));
    w.insert(3);
    w.insert(4);
    assert_eq!(w.contiguous, 6);
    assert_eq!(w.prev_unexecuted(6), None);
    assert_eq!(w.prev_unexecuted(9), Some(8));
}

const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const R3: ReplicaId = ReplicaId(3);

fn id(replica: ReplicaId, slot: u64) -> InstanceId {
    InstanceId { replica, slot }
}

fn committed(seq: u64, deps: &[InstanceId]) -> Instance {
    let mut attrs = Attributes { seq, deps: deps.to_vec() };
    attrs.normalize();
    Instance {
        ballot: Ballot::initial(R1),
        accepted_ballot: Ballot::initial(R1),
        status: Status::Committed,
        attrs,
        commands: Vec::new(),
        matches_proposal: false,
        lead: None,
    }
}

/// Commits `instance` as `id` and runs the executor; the ids it executed.
fn commit(
    executor: &mut Executor,
    instances: &mut HashMap<InstanceId, Instance>,
    id: InstanceId,
    instance: Instance,
) -> Vec<InstanceId> {
    instances.insert(id, instance);
    executor.on_committed(id);
    let mut out = Vec::new();
    executor.run(instances, &mut out);
    out.into_iter().map(|e| e.id).collect()
}

/// A reference: what a dependency stands for, slot by slot (every unexecuted instance of its
/// replica up to its slot, the instance itself excepted), and what each instance reaches that way.
struct Reference {
    deps: BTreeMap<InstanceId, (u64, Vec<InstanceId>)>,
    executed_through: HashMap<ReplicaId, u64>,
}

impl Reference {
    fn expanded(&self, v: InstanceId) -> Vec<InstanceId> {
        let mut out = Vec::new();
        for dep in &self.deps[&v].1 {
            let from = self.executed_through.get(&dep.replica).copied().unwrap_or(0) + 1;
            out.extend((from..=dep.slot).map(|slot| id(dep.replica, slot)).filter(|w| *w != v));
        }
        out
    }

    /// Every instance `v` reaches (committed ones are followed; others end a path).
    fn reach(&self, v: InstanceId) -> std::collections::BTreeSet<InstanceId> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![v];
        while let Some(u) = todo.pop() {
            for w in self.expanded(u) {
                if seen.insert(w) && self.deps.contains_key(&w) {
                    todo.push(w);
                }
            }
        }
        seen
    }
}

/// Random dependency graphs over three replicas (cycles, dependencies past an instance's own
/// slot, executed prefixes, instances that never commit), committed in random order: the executor
/// runs exactly the instances whose every dependency, slot by slot, is committed, each after what
/// it depends on, and the members of a cycle in (seq, id) order.
#[test]
fn execution_follows_every_slot_a_dependency_stands_for() {
    const SLOTS: u64 = 12;
    for seed in 0..400 {
        let mut rng = crate::rng::Rng::new(seed);
        let mut executor = Executor::default();
        let mut reference = Reference { deps: BTreeMap::new(), executed_through: HashMap::new() };
        let mut to_commit = Vec::new();
        for replica in [R1, R2, R3] {
            let through = rng.below(4);
            executor.mark_executed_through(replica, through);
            reference.executed_through.insert(replica, through);
            for slot in through + 1..=SLOTS {
                if rng.chance(0.08) {
                    continue; // never committed here
                }
                let deps: Vec<InstanceId> = (0..rng.below(4))
                    .map(|_| id(ReplicaId(1 + rng.below(3) as u32), 1 + rng.below(SLOTS)))
                    .collect();
                let seq = 1 + rng.below(4);
                reference.deps.insert(id(replica, slot), (seq, committed(seq, &deps).attrs.deps));
                to_commit.push(id(replica, slot));
            }
        }
        for i in (1..to_commit.len()).rev() {
            to_commit.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut instances = HashMap::new();
        let mut order = Vec::new();
        for v in &to_commit {
            let (seq, deps) = &reference.deps[v];
            instances.insert(*v, committed(*seq, deps));
            executor.on_committed(*v);
            if rng.chance(0.3) {
                let mut out = Vec::new();
                executor.run(&mut instances, &mut out);
                order.extend(out.into_iter().map(|e| e.id));
            }
        }
        let mut out = Vec::new();
        executor.run(&mut instances, &mut out);
        order.extend(out.into_iter().map(|e| e.id));

        let reach: BTreeMap<InstanceId, _> =
            reference.deps.keys().map(|v| (*v, reference.reach(*v))).collect();
        let expected: Vec<InstanceId> = (reference.deps.keys())
            .filter(|v| reach[*v].iter().all(|w| reference.deps.contains_key(w)))
            .copied()
            .collect();
        let mut executed = order.clone();
        executed.sort_unstable();
        assert_eq!(executed, expected, "seed {seed}: what executed");
        let position: HashMap<InstanceId, usize> = order.iter().enumerate().map(|(i, v)| (*v, i)).collect();
        for a in &order {
            for b in &reach[a] {
                let Some(&pb) = position.get(b) else { continue };
                let pa = position[a];
                if !reach[b].contains(a) {
                    assert!(pb < pa, "seed {seed}: {a} depends on {b}, which executed after it");
                } else {
                    let key = |v: &InstanceId| (reference.deps[v].0, *v);
                    assert_eq!(
                        pa < pb,
                        key(a) < key(b),
                        "seed {seed}: {a} and {b} form a cycle, out of (seq, id) order"
                    );
                }
            }
        }
    }
}

/// `count` committed instances of R1 and R2 in one cycle (each of R1's depends on R2's prefix up
/// to the same slot, each of R2's on R1's up to the next), all waiting on R3.1, never committed.
fn blocked_cycle(count: u64) -> (Executor, HashMap<InstanceId, Instance>) {
    let mut executor = Executor::default();
    let mut instances = HashMap::new();
    for slot in 1..=count {
        commit(&mut executor, &mut instances, id(R1, slot), committed(1, &[id(R2, slot)]));
        let deps = if slot == count { vec![id(R1, slot), id(R3, 1)] } else { vec![id(R1, slot + 1)] };
        commit(&mut executor, &mut instances, id(R2, slot), committed(1, &deps));
    }
    (executor, instances)
}

/// The regression: a dependency stands for a whole prefix, and the search expanded it slot by slot,
/// so one search over n blocked instances took about n²/2 steps, and every later commit behind
/// them searched them all again. A replica that caught up on thousands of commits, or kept
/// committing behind a long-blocked instance, did little else: its driver stalled, and the node
/// answered no request while the rest of the cluster served. (Building this region of 600 took
/// the old executor over five minutes.)
#[test]
fn searches_over_a_blocked_region_are_linear_and_not_repeated() {
    const COUNT: u64 = 300;
    let (mut executor, mut instances) = blocked_cycle(COUNT);
    // A new commit that depends on the region searches all of it, and finds it blocked.
    let before = executor.search_steps;
    assert!(commit(&mut executor, &mut instances, id(R3, 2), committed(1, &[id(R2, COUNT)])).is_empty());
    let steps = executor.search_steps - before;
    // Each instance: an edge or two and its close; each prefix node: two edges and its close.
    assert!(steps <= 8 * 2 * COUNT, "{steps} steps to search {} blocked instances", 2 * COUNT);
    // Later commits that depend on the region stop where that search found it blocked.
    let before = executor.search_steps;
    for slot in 3..53 {
        assert!(
            commit(&mut executor, &mut instances, id(R3, slot), committed(1, &[id(R2, COUNT)])).is_empty()
        );
    }
    let steps = executor.search_steps - before;
    assert!(steps <= 4 * 50, "{steps} steps for 50 more commits behind one blocked region");
    // Once the missing instance commits, the cycle executes in (seq, id) order, then what waited.
    let executed = commit(&mut executor, &mut instances, id(R3, 1), committed(1, &[]));
    let mut cycle: Vec<InstanceId> = (1..=COUNT).flat_map(|s| [id(R1, s), id(R2, s)]).collect();
    cycle.sort_unstable();
    assert_eq!(executed[0], id(R3, 1));
    assert_eq!(executed[1..=cycle.len()], cycle[..]);
    assert_eq!(executed.len(), 1 + cycle.len() + 51);
}
