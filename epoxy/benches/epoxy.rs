//! Micro-benchmarks of epoxy's hot paths, through the public API of the pure state machine.
//!
//! * `pre_accept`: an acceptor handles a PreAccept for a new instance (`step` + `ready`), with a
//!   conflict index built by 10,000 earlier committed instances over 1,000 keys.
//! * `deps`: the dependency lookup alone (`Replica::local_attrs`) at several index sizes.
//! * `execute`: the executor orders and executes 1,000 committed instances (chains on 100 keys,
//!   one in ten in a two-instance strongly connected component), in one `ready`.
//! * `propose`: a command leader proposes one instance of 1 or 64 commands (`propose` + `ready`).
//!
//! Before measuring, each of `pre_accept` and `propose` prints its heap allocations per operation
//! (counted by the allocator below, on this thread only).
//!
//! Run: `cargo bench -p mortar-epoxy --bench epoxy -- --warm-up-time 1 --measurement-time 3`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mortar_epoxy::rng::Rng;
use mortar_epoxy::{
    Attributes, Ballot, Command, Config, InstanceId, KeyRecord, Message, Ready, Recovered, Replica, ReplicaId,
};

// ---- allocation counting ----

/// Forwards to the system allocator and counts allocations per thread (a thread-local counter
/// costs about a nanosecond; an atomic shared by threads would perturb the timings more).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the counter may be gone while a thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// A global allocator is unsafe to implement by definition; this one only forwards to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as for `dealloc`; the caller guarantees `new_size` is valid for `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- a small cluster and its history ----

const ME: ReplicaId = ReplicaId(1);
/// The peers that lead the instances the benchmarked replica accepts.
const LEADERS: [ReplicaId; 2] = [ReplicaId(2), ReplicaId(3)];
/// Payload bytes of one command (a small KV write).
const PAYLOAD_BYTES: usize = 100;

fn config(id: ReplicaId) -> Config {
    Config::new(id, vec![ReplicaId(1), ReplicaId(2), ReplicaId(3)]).expect("valid config")
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key/{i:07}"))
}

/// A command as it arrives from the network: freshly decoded, owning its bytes.
fn command(key_index: u64) -> Command {
    Command::new(key(key_index), vec![b'v'; PAYLOAD_BYTES])
}

/// `count` distinct random key indices below `keys`.
fn key_indices(rng: &mut Rng, keys: u64, count: usize) -> Vec<u64> {
    let mut chosen: Vec<u64> = Vec::with_capacity(count);
    while chosen.len() < count {
        let k = rng.below(keys);
        if !chosen.contains(&k) {
            chosen.push(k);
        }
    }
    chosen
}

fn commands(key_indices: &[u64]) -> Vec<Command> {
    key_indices.iter().map(|&k| command(k)).collect()
}

fn find_message(ready: &Ready, to: ReplicaId) -> &Message {
    ready
        .messages
        .iter()
        .chain(&ready.messages_after_persist)
        .find(|o| o.to == to)
        .map(|o| &o.message)
        .expect("a message for the peer")
}

/// An acceptor (replica 1 of 3) of instances its two peers lead, round robin.
struct Acceptor {
    replica: Replica,
    next_slot: [u64; 2],
    turn: usize,
}

impl Acceptor {
    /// Replica 1 after `history` instances of one command each, on random keys of `keys`, were
    /// pre-accepted, committed and executed.
    fn with_history(history: u64, keys: u64, rng: &mut Rng) -> Self {
        let mut acceptor = Acceptor { replica: Replica::new(config(ME)), next_slot: [1, 1], turn: 0 };
        for _ in 0..history {
            let on = key_indices(rng, keys, 1);
            let (leader, id, pre_accept) = acceptor.next_pre_accept(commands(&on));
            acceptor.replica.step(leader, pre_accept);
            let ready = acceptor.replica.ready();
            acceptor.commit(leader, id, &on, &ready);
        }
        assert_eq!(acceptor.replica.counters().executed, history, "the history executed");
        acceptor
    }

    /// The next instance's PreAccept, with the attributes its leader proposes (the leader knows
    /// what this replica knows, so the acceptor adds nothing: the fast path).
    fn next_pre_accept(&mut self, commands: Vec<Command>) -> (ReplicaId, InstanceId, Message) {
        let at = self.turn % LEADERS.len();
        self.turn += 1;
        let leader = LEADERS[at];
        let id = InstanceId { replica: leader, slot: self.next_slot[at] };
        self.next_slot[at] += 1;
        let attrs = self.replica.local_attrs(id, &commands);
        (leader, id, Message::PreAccept { id, ballot: Ballot::initial(leader), attrs, commands })
    }

    /// Commits `id` with the attributes of the PreAcceptOk in `ready` and executes it, so that
    /// memory holds only the conflict index between two PreAccepts.
    fn commit(&mut self, leader: ReplicaId, id: InstanceId, on: &[u64], ready: &Ready) {
        let Message::PreAcceptOk { attrs, .. } = find_message(ready, leader).clone() else {
            panic!("expected a PreAcceptOk for {id}");
        };
        let executed = self.replica.counters().executed;
        self.replica.step(leader, Message::Commit { id, attrs, commands: commands(on) });
        drop(self.replica.ready());
        assert_eq!(self.replica.counters().executed, executed + 1, "{id} executed at once");
    }

    /// Handles one PreAccept for a new instance of `on`'s commands, timing only `step` + `ready`.
    fn time_pre_accept(&mut self, on: &[u64]) -> Duration {
        let (leader, id, pre_accept) = self.next_pre_accept(commands(on));
        let start = Instant::now();
        self.replica.step(leader, pre_accept);
        let ready = black_box(self.replica.ready());
        let elapsed = start.elapsed();
        self.commit(leader, id, on, &ready);
        elapsed
    }
}

/// Heap allocations per call of `op`, averaged over `rounds`, where `op` reports the allocations of
/// its measured part.
fn allocations_per_op(rounds: u64, mut op: impl FnMut() -> u64) -> f64 {
    let total: u64 = (0..rounds).map(|_| op()).sum();
    total as f64 / rounds as f64
}

// ---- benchmarks ----

/// Commands per instance in the batched variants (the node groups client commands so).
const BATCH: usize = 64;
const HISTORY_INSTANCES: u64 = 10_000;
const HISTORY_KEYS: u64 = 1_000;

fn pre_accept(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let mut acceptor = Acceptor::with_history(HISTORY_INSTANCES, HISTORY_KEYS, &mut rng);
    let mut group = c.benchmark_group("pre_accept");
    for batch in [1, BATCH] {
        let allocs = allocations_per_op(1_000, || {
            let on = key_indices(&mut rng, HISTORY_KEYS, batch);
            let (leader, id, pre_accept) = acceptor.next_pre_accept(commands(&on));
            let before = allocations();
            acceptor.replica.step(leader, pre_accept);
            let ready = black_box(acceptor.replica.ready());
            let counted = allocations() - before;
            acceptor.commit(leader, id, &on, &ready);
            counted
        });
        eprintln!("pre_accept/{batch}: {allocs:.1} allocations per PreAccept (step + ready)");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{batch}_commands")), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let on = key_indices(&mut rng, HISTORY_KEYS, batch);
                        acceptor.time_pre_accept(&on)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

/// The dependency lookup of one new instance against conflict indexes of several sizes. Every key
/// was last touched by each of the three replicas.
fn deps(c: &mut Criterion) {
    let mut group = c.benchmark_group("deps");
    for keys in [1_000u64, 10_000, 100_000] {
        let index: Vec<(Bytes, KeyRecord)> = (0..keys)
            .map(|k| {
                let latest = (1..=3).map(|r| InstanceId::new(r, 10 * k + u64::from(r))).collect();
                (key(k), KeyRecord { seq_max: k + 1, latest })
            })
            .collect();
        let replica = Replica::recover(config(ME), Recovered { keys: index, ..Recovered::default() });
        let id = InstanceId::new(2, 100 * keys);
        let mut rng = Rng::new(keys);
        for batch in [1, BATCH] {
            // Distinct random lookups, so that a large index is not served from the cache.
            let inputs: Vec<Vec<Command>> =
                (0..1024).map(|_| commands(&key_indices(&mut rng, keys, batch))).collect();
            let mut next = 0;
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(format!("{batch}_commands"), keys), |b| {
                b.iter(|| {
                    next = (next + 1) % inputs.len();
                    replica.local_attrs(id, &inputs[next])
                })
            });
        }
    }
    group.finish();
}

/// Per key: the latest slot of each leader (0: none) and the largest seq.
type Latest = HashMap<u64, ([u64; 2], u64)>;

/// What a leader proposes for an instance on key `k`: a dependency on the latest instance of each
/// leader on it, and a seq above theirs.
fn attrs_on_key(latest: &Latest, k: u64) -> Attributes {
    let mut attrs = Attributes { seq: 1, deps: Vec::new() };
    if let Some((slots, seq_max)) = latest.get(&k) {
        for (at, &slot) in slots.iter().enumerate() {
            if slot > 0 {
                attrs.deps.push(InstanceId { replica: LEADERS[at], slot });
            }
        }
        attrs.seq = seq_max + 1;
    }
    attrs
}

/// Commit messages of `count` instances led round robin by replicas 2 and 3, one command each on
/// `keys` keys, with the attributes the protocol would give them: each depends on the latest
/// instance of each leader on its key. One in `pair_every` is committed together with the next
/// (other leader, same key) as if both were pre-accepted concurrently: each depends on the other,
/// a strongly connected component of two.
fn commit_history(count: u64, keys: u64, pair_every: u64, rng: &mut Rng) -> (Vec<(ReplicaId, Message)>, u64) {
    let mut latest = Latest::new();
    let mut next_slot = [1u64; 2];
    let mut out = Vec::new();
    let mut pairs = 0;
    let mut i = 0;
    while i < count {
        let k = rng.below(keys);
        let paired = i + 1 < count && rng.below(pair_every) == 0;
        let members: &[usize] = if paired { &[0, 1] } else { &[(i % 2) as usize] };
        let mut ids = Vec::new();
        let mut attrs = Vec::new();
        for &at in members {
            ids.push(InstanceId { replica: LEADERS[at], slot: next_slot[at] });
            next_slot[at] += 1;
            attrs.push(attrs_on_key(&latest, k));
        }
        if paired {
            pairs += 1;
            let seq = attrs[0].seq.max(attrs[1].seq);
            for (a, other) in attrs.iter_mut().zip([ids[1], ids[0]]) {
                a.seq = seq;
                a.deps.push(other);
            }
        }
        for (id, mut a) in ids.into_iter().zip(attrs) {
            a.deps.sort_unstable();
            a.deps.dedup();
            let entry = latest.entry(k).or_insert(([0, 0], 0));
            let at = LEADERS.iter().position(|l| *l == id.replica).expect("a leader");
            entry.0[at] = entry.0[at].max(id.slot);
            entry.1 = entry.1.max(a.seq);
            out.push((id.replica, Message::Commit { id, attrs: a, commands: vec![command(k)] }));
        }
        i += members.len() as u64;
    }
    (out, pairs)
}

const EXECUTE_INSTANCES: u64 = 1_000;

/// One `ready` that executes 1,000 committed instances (the commits arrived before it).
fn execute(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let (commits, pairs) = commit_history(EXECUTE_INSTANCES, 100, 10, &mut rng);
    let committed = || {
        let mut replica = Replica::new(config(ME));
        for (from, commit) in &commits {
            replica.step(*from, commit.clone());
        }
        replica
    };
    let check = committed().ready();
    assert_eq!(check.executed.len() as u64, EXECUTE_INSTANCES, "every committed instance executed");
    eprintln!(
        "execute: {EXECUTE_INSTANCES} instances on 100 keys, {pairs} two-instance components, \
         {} dependencies",
        commits
            .iter()
            .map(|(_, m)| if let Message::Commit { attrs, .. } = m { attrs.deps.len() } else { 0 })
            .sum::<usize>()
    );
    let mut group = c.benchmark_group("execute");
    group.throughput(Throughput::Elements(EXECUTE_INSTANCES));
    group.bench_function(BenchmarkId::from_parameter(format!("{EXECUTE_INSTANCES}_instances")), |b| {
        b.iter_batched(committed, |mut replica| replica.ready(), BatchSize::LargeInput)
    });
    group.finish();
}

/// A command leader (replica 1 of 3, its conflict index warmed by its peers' history).
struct Leader {
    replica: Replica,
}

impl Leader {
    /// Proposes one instance of `on`'s commands, timing only `propose` + `ready`, then commits it
    /// on the fast path (a PreAcceptOk from replica 2) and executes it.
    fn time_propose(&mut self, on: &[u64]) -> Duration {
        let replica = &mut self.replica;
        let commands = commands(on);
        let start = Instant::now();
        let id = replica.propose(commands).expect("below the in-flight bound");
        let ready = black_box(replica.ready());
        let elapsed = start.elapsed();
        self.fast_commit(id, &ready);
        elapsed
    }

    fn fast_commit(&mut self, id: InstanceId, ready: &Ready) {
        let replica = &mut self.replica;
        let Message::PreAccept { attrs, .. } = find_message(ready, LEADERS[0]).clone() else {
            panic!("expected a PreAccept for {id}");
        };
        let executed = replica.counters().executed;
        replica.step(LEADERS[0], Message::PreAcceptOk { id, ballot: Ballot::initial(ME), attrs });
        drop(replica.ready());
        assert_eq!(replica.counters().executed, executed + 1, "{id} committed and executed at once");
    }
}

fn propose(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let history = Acceptor::with_history(HISTORY_INSTANCES, HISTORY_KEYS, &mut rng);
    let mut leader = Leader { replica: history.replica };
    let mut group = c.benchmark_group("propose");
    for batch in [1, BATCH] {
        let allocs = allocations_per_op(1_000, || {
            let commands = commands(&key_indices(&mut rng, HISTORY_KEYS, batch));
            let replica = &mut leader.replica;
            let before = allocations();
            let id = replica.propose(commands).expect("below the in-flight bound");
            let ready = black_box(replica.ready());
            let counted = allocations() - before;
            leader.fast_commit(id, &ready);
            counted
        });
        eprintln!("propose/{batch}: {allocs:.1} allocations per proposal (propose + ready)");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{batch}_commands")), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let on = key_indices(&mut rng, HISTORY_KEYS, batch);
                        leader.time_propose(&on)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pre_accept, deps, execute, propose);
criterion_main!(benches);
