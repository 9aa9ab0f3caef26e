//! Per-key linearizability of a register (`read`, `write`, `cas`).
//!
//! Linearizability is compositional (P-compositionality, Lowe 2017): a history is linearizable
//! when each key's sub-history is, so every key is checked on its own.
//!
//! # The search
//!
//! Wing & Gong's search with Lowe's just-in-time linearization and memoisation ("Testing for
//! linearizability", 2017), as in Porcupine:
//!
//! * The invoke and completion times of a key's operations form one list sorted by time (invokes
//!   before completions at equal times: equal times count as concurrent).
//! * Walking the list from its head, an operation whose invoke is reached before any completion
//!   may take effect now. The search applies it to the register (state `Option<i64>`: absent or a
//!   value) when it is legal there, removes its entries from the list (dancing links, so undoing is
//!   exact), and starts again from the head.
//! * Reaching the completion of an operation that has not taken effect means the choices so far
//!   were wrong: undo the last one (explicit stack, no recursion) and try the next candidate.
//! * A configuration is the set of operations that took effect (a bitset) and the register state.
//!   Two paths reaching the same configuration have the same future, so each is explored once (a
//!   hash set of visited configurations). Stored compactly: the highest operation taken plus the
//!   few lower ones not yet taken.
//!
//! `fail` operations are dropped: they did not happen. `info` operations (and those still in
//! flight at the end) have no completion: they may take effect at any time after their invoke, or
//! never, and never force a backtrack. `info` reads constrain nothing and are dropped. An `info`
//! write or cas whose value no other operation observes (reads, or expects in a cas) is dropped
//! too: taking effect could only make later reads harder to explain, so the verdict is unchanged,
//! and without this each such operation would double the configurations.
//!
//! The search succeeds when every `ok` operation took effect; it gives up after
//! [`CONFIGURATIONS_MAX`] configurations and reports the key as undecided.
//!
//! # The witness
//!
//! For a key that is not linearizable the checker reports a small set of operations that is not
//! linearizable on its own and whose non-linearizability implies that of the whole history:
//!
//! 1. The operation that cannot be linearized: over every configuration the search explored, the
//!    latest completion it could not get past. Its completion at time `T` is the first instant at
//!    which the history stops being linearizable.
//! 2. Cut the history at `T` (Knossos's "last linearizable prefix and the op that cannot follow
//!    it"): operations invoked later go, operations completing later become open-ended. Any
//!    linearization of the whole history restricted to the operations that took effect by `T` is
//!    one of the prefix, so a non-linearizable prefix proves the whole history is not.
//! 3. Shrink the prefix (delta debugging: chunks from half its size down to single operations),
//!    keeping a removal only when the rest is still not linearizable. Only sound removals are
//!    tried: a set `C` may go only if no remaining operation observes a value written by `C`
//!    (each chunk is closed under "observes a value it writes"). Then any linearization of the
//!    larger set, minus `C`, is one of the smaller set: every remaining read or cas still sees the
//!    write it saw before. So a non-linearizable smaller set proves the larger one is not; a
//!    removal that would leave a read of a value nobody wrote is never made.
//!
//! The result is typically the two or three operations a person would point at: for a stale read,
//! the old write, the newer write that completed before the read began, and the read.
//!
//! # Cost
//!
//! Measured on one key written and read by 10 concurrent clients (release build, 2 shared cores):
//! a valid history of 5,000 operations checks in 35-60 ms, 50,000 in about 0.6 s. Refuting a
//! history explores every configuration up to the anomaly, about 100 per operation at that
//! concurrency: a stale read near the end of 5,000 operations is found and shrunk in 0.6-0.8 s, of
//! 50,000 in about 9 s. Histories of a few thousand operations per key, spread over many keys,
//! check fastest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use crate::check::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Function, History, KeyKind, Outcome, Value};

/// Configurations one key's search may visit before giving up (memory: about 100 bytes each, so
/// up to ~400 MB).
pub const CONFIGURATIONS_MAX: usize = 4_000_000;
/// Configurations each search made while shrinking a witness may visit, at least; a candidate whose
/// search gives up is kept in the witness. Searches may also visit twice as many as the search
/// that proved the uncut witness not linearizable.
const WITNESS_CONFIGURATIONS_MIN: usize = 100_000;
/// Configurations all the searches made while shrinking one witness may visit together, and
/// searches they may make: the witness found so far is reported after that.
const WITNESS_CONFIGURATIONS_TOTAL_MAX: usize = 20_000_000;
const WITNESS_SEARCHES_MAX: usize = 2_000;
/// Register states listed in a witness message.
const BLOCKED_STATES_MAX: usize = 8;

const _: () = assert!(WITNESS_CONFIGURATIONS_MIN <= CONFIGURATIONS_MAX);
const _: () = assert!(WITNESS_CONFIGURATIONS_MIN <= WITNESS_CONFIGURATIONS_TOTAL_MAX);

/// Checks every register key of `history`. Restart markers are ignored.
pub fn check(history: &History) -> CheckResult {
    let mut anomalies = Vec::new();
    for (key, ops) in register_ops(history) {
        match check_key(ops, CONFIGURATIONS_MAX) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable(witness) => {
                anomalies.push(witness_anomaly(
                    history,
                    key,
                    &witness,
                    AnomalyKind::NotLinearizable,
                    "",
                    &[],
                ));
            }
            KeyVerdict::Undecided { configurations } => {
                anomalies.push(undecided_anomaly(history, key, configurations));
            }
        }
    }
    CheckResult::from_anomalies(anomalies)
}

/// A register operation as the search sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegisterCall {
    /// An `ok` read and what it returned (`None`: absent).
    Read(Option<i64>),
    Write(i64),
    Cas {
        expected: Option<i64>,
        new: i64,
    },
}

impl RegisterCall {
    /// The state after the operation, or `None` when it cannot take effect in `state`.
    pub(crate) fn step(self, state: Option<i64>) -> Option<Option<i64>> {
        match self {
            RegisterCall::Read(value) => (value == state).then_some(state),
            RegisterCall::Write(value) => Some(Some(value)),
            RegisterCall::Cas { expected, new } => (expected == state).then_some(Some(new)),
        }
    }

    /// The value the register must hold for the operation to take effect.
    pub(crate) fn observes(self) -> Option<i64> {
        match self {
            RegisterCall::Read(value) => value,
            RegisterCall::Write(_) => None,
            RegisterCall::Cas { expected, .. } => expected,
        }
    }

    /// The value the register holds after the operation took effect, for operations that change it.
    pub(crate) fn writes(self) -> Option<i64> {
        match self {
            RegisterCall::Read(_) => None,
            RegisterCall::Write(value) | RegisterCall::Cas { new: value, .. } => Some(value),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegisterOp {
    pub call: RegisterCall,
    pub invoke: u64,
    /// `Some` for `ok` operations, which must take effect by then; `None` for open-ended ones,
    /// which may take effect at any time after `invoke`, or never.
    pub complete: Option<u64>,
    /// Index of the operation in [`History::ops`] (or the caller's own id).
    pub source: usize,
}

/// The register operations of every register key, in invoke order, ready for [`check_key`].
pub(crate) fn register_ops(history: &History) -> BTreeMap<&str, Vec<RegisterOp>> {
    let mut keys: BTreeMap<&str, Vec<RegisterOp>> = BTreeMap::new();
    for (source, op) in history.ops().iter().enumerate() {
        if history.key_kind(&op.key) != Some(KeyKind::Register) {
            continue;
        }
        let call = match (op.f, op.outcome, &op.invoke_value) {
            (_, Outcome::Fail, _) | (Function::Read, Outcome::Info, _) => continue,
            (Function::Read, Outcome::Ok, _) => {
                RegisterCall::Read(op.result_value.as_ref().and_then(Value::as_int))
            }
            (Function::Write, _, Value::Int(value)) => RegisterCall::Write(*value),
            (Function::Cas, _, Value::Cas { expected, new }) => {
                RegisterCall::Cas { expected: *expected, new: *new }
            }
            _ => unreachable!("register keys hold only validated read, write and cas: {op:?}"),
        };
        let complete = if op.outcome == Outcome::Ok { op.complete_time } else { None };
        keys.entry(op.key.as_str()).or_default().push(RegisterOp {
            call,
            invoke: op.invoke_time,
            complete,
            source,
        });
    }
    keys
}

/// The verdict on one key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KeyVerdict {
    Linearizable,
    NotLinearizable(Witness),
    Undecided { configurations: usize },
}

/// Operations that cannot be linearized together (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Witness {
    /// In invoke order.
    pub ops: Vec<RegisterOp>,
    /// Index in `ops` of the operation that cannot be linearized.
    pub blocked: usize,
    /// Register states in which `ops[blocked]` had to take effect but could not.
    pub states: Vec<Option<i64>>,
    /// The history was cut here: events after this time are not part of the witness.
    pub time_max: Option<u64>,
}

/// Checks one key's operations (in invoke order), with a budget of `configurations_max`.
pub(crate) fn check_key(ops: Vec<RegisterOp>, configurations_max: usize) -> KeyVerdict {
    let ops = drop_unobserved_open(ops);
    match search(&ops, configurations_max) {
        Search::Linearizable { .. } => KeyVerdict::Linearizable,
        Search::GaveUp { configurations } => KeyVerdict::Undecided { configurations },
        Search::NotLinearizable { blocked, states, configurations } => {
            KeyVerdict::NotLinearizable(witness(ops, Blocked { op: blocked, states, configurations }))
        }
    }
}

/// Where a failed search got stuck, and how many configurations it visited.
struct Blocked {
    op: usize,
    states: Vec<Option<i64>>,
    configurations: usize,
}

fn witness(ops: Vec<RegisterOp>, blocked: Blocked) -> Witness {
    let time_cut = ops[blocked.op].complete.expect("only ok operations block the search");
    let prefix = drop_unobserved_open(cut(&ops, time_cut));
    let (ops, blocked, time_max) = match search(&prefix, CONFIGURATIONS_MAX) {
        Search::NotLinearizable { blocked, states, configurations } => {
            (prefix, Blocked { op: blocked, states, configurations }, Some(time_cut))
        }
        // Cannot happen when the search is right (the prefix up to the first blocking completion
        // is already not linearizable); keep the uncut history rather than report nothing.
        Search::Linearizable { .. } | Search::GaveUp { .. } => (ops, blocked, None),
    };
    let (ops, blocked) = shrink(ops, blocked);
    Witness { ops, blocked: blocked.op, states: blocked.states, time_max }
}

/// The history up to `time`: later invokes go, later completions become open-ended.
fn cut(ops: &[RegisterOp], time: u64) -> Vec<RegisterOp> {
    ops.iter()
        .filter(|op| op.invoke <= time)
        .map(|op| RegisterOp { complete: op.complete.filter(|&c| c <= time), ..*op })
        .collect()
}

/// Drops open-ended operations that cannot change the verdict: reads, and writes or cas whose
/// value no other operation observes (repeated, since dropping a cas drops an observer).
fn drop_unobserved_open(mut ops: Vec<RegisterOp>) -> Vec<RegisterOp> {
    loop {
        let mut observers: HashMap<i64, usize, Fx> = HashMap::default();
        for op in &ops {
            if let Some(value) = op.call.observes() {
                *observers.entry(value).or_default() += 1;
            }
        }
        let droppable = |op: &RegisterOp| {
            op.complete.is_none()
                && match op.call.writes() {
                    None => true,
                    Some(value) => {
                        let own = usize::from(op.call.observes() == Some(value));
                        observers.get(&value).copied().unwrap_or(0) == own
                    }
                }
        };
        let before = ops.len();
        let kept: Vec<RegisterOp> = ops.iter().filter(|op| !droppable(op)).copied().collect();
        if kept.len() == before {
            return ops;
        }
        ops = kept;
    }
}

/// Delta debugging over sound removals (see the module docs). Returns the smaller witness and
/// where its search blocks.
fn shrink(mut ops: Vec<RegisterOp>, mut blocked: Blocked) -> (Vec<RegisterOp>, Blocked) {
    let per_search =
        blocked.configurations.saturating_mul(2).clamp(WITNESS_CONFIGURATIONS_MIN, CONFIGURATIONS_MAX);
    let mut spent = 0;
    let mut searches = 0;
    let mut chunk = (ops.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            let removed = closed_removal(&ops, start..end);
            let candidate: Vec<RegisterOp> =
                ops.iter().zip(&removed).filter(|(_, removed)| !**removed).map(|(op, _)| *op).collect();
            if !candidate.is_empty() {
                let budget = per_search.min(WITNESS_CONFIGURATIONS_TOTAL_MAX.saturating_sub(spent));
                if searches == WITNESS_SEARCHES_MAX || budget == 0 {
                    return (ops, blocked);
                }
                searches += 1;
                let outcome = search(&candidate, budget);
                spent += outcome.configurations();
                if let Search::NotLinearizable { blocked: op, states, configurations } = outcome {
                    ops = candidate;
                    blocked = Blocked { op, states, configurations };
                    removed_any = true;
                    continue;
                }
            }
            start = end;
        }
        if chunk == 1 && !removed_any {
            return (ops, blocked);
        }
        chunk = (chunk / 2).max(1);
    }
}

/// `seed` plus, transitively, every operation that observes a value written by one already taken:
/// the smallest superset of `seed` whose removal is sound.
fn closed_removal(ops: &[RegisterOp], seed: Range<usize>) -> Vec<bool> {
    let mut observers: HashMap<i64, Vec<usize>, Fx> = HashMap::default();
    for (index, op) in ops.iter().enumerate() {
        if let Some(value) = op.call.observes() {
            observers.entry(value).or_default().push(index);
        }
    }
    let mut removed = vec![false; ops.len()];
    let mut pending: Vec<usize> = seed.collect();
    for &index in &pending {
        removed[index] = true;
    }
    let mut values_done: HashSet<i64, Fx> = HashSet::default();
    while let Some(index) = pending.pop() {
        let Some(value) = ops[index].call.writes() else { continue };
        if !values_done.insert(value) {
            continue;
        }
        for &observer in observers.get(&value).map(Vec::as_slice).unwrap_or(&[]) {
            if !removed[observer] {
                removed[observer] = true;
                pending.push(observer);
            }
        }
    }
    removed
}

/// The outcome of one search, with the number of configurations it visited.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Search {
    Linearizable {
        configurations: usize,
    },
    /// `blocked`: index of the operation whose completion the search got least far past (see
    /// [`Witness::blocked`]); `states`: register states in which it had to take effect but could
    /// not.
    NotLinearizable {
        blocked: usize,
        states: Vec<Option<i64>>,
        configurations: usize,
    },
    GaveUp {
        configurations: usize,
    },
}

impl Search {
    fn configurations(&self) -> usize {
        match self {
            Search::Linearizable { configurations }
            | Search::NotLinearizable { configurations, .. }
            | Search::GaveUp { configurations } => *configurations,
        }
    }
}

/// Node ids of the entry list: two sentinels, then a call and a return node per operation.
const HEAD: usize = 0;
const TAIL: usize = 1;

fn call_node(op: usize) -> usize {
    2 + 2 * op
}

fn return_node(op: usize) -> usize {
    3 + 2 * op
}

/// Doubly linked list of entries in time order; removal and reinsertion are O(1) and exact when
/// undone in reverse order (dancing links).
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Entries {
    fn new(ops: &[RegisterOp]) -> Self {
        // (time, 0 = call / 1 = return, op): calls first at equal times, so equal times overlap.
        let mut order: Vec<(u64, usize, usize)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            order.push((op.invoke, 0, index));
            if let Some(complete) = op.complete {
                assert!(
                    complete >= op.invoke,
                    "operation completes before its invoke: invoke={} complete={complete}",
                    op.invoke
                );
                order.push((complete, 1, index));
            }
        }
        order.sort_unstable();
        let nodes = 2 + 2 * ops.len();
        let mut entries = Entries { next: vec![TAIL; nodes], prev: vec![HEAD; nodes] };
        let mut last = HEAD;
        for (_, kind, op) in order {
            let node = call_node(op) + kind;
            entries.next[last] = node;
            entries.prev[node] = last;
            last = node;
        }
        entries.next[last] = TAIL;
        entries.prev[TAIL] = last;
        entries
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

/// The set of operations that took effect.
struct Bitset {
    words: Vec<u64>,
    /// Every word below `low` is full: the operations taken form nearly a prefix, and this keeps
    /// [`Configuration::new`] from rescanning it.
    low: usize,
    /// Every word from `high` on is empty.
    high: usize,
}

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset { words: vec![0; len.div_ceil(64)], low: 0, high: 0 }
    }

    fn insert(&mut self, index: usize) {
        let word = index / 64;
        self.words[word] |= 1 << (index % 64);
        self.high = self.high.max(word + 1);
        while self.low < self.words.len() && self.words[self.low] == u64::MAX {
            self.low += 1;
        }
    }

    fn remove(&mut self, index: usize) {
        let word = index / 64;
        self.words[word] &= !(1 << (index % 64));
        self.low = self.low.min(word);
        while self.high > 0 && self.words[self.high - 1] == 0 {
            self.high -= 1;
        }
    }
}

/// A visited configuration. Operations are numbered in invoke order, so the set of operations
/// that took effect is nearly a prefix: stored as one past the highest member and the few
/// non-members below it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Configuration {
    state: Option<i64>,
    end: u32,
    holes: Box<[u32]>,
}

impl Configuration {
    fn new(taken: &Bitset, state: Option<i64>) -> Self {
        if taken.high == 0 {
            return Configuration { state, end: 0, holes: Box::new([]) };
        }
        let last_word = taken.high - 1;
        let end = last_word * 64 + 64 - taken.words[last_word].leading_zeros() as usize;
        let mut holes = Vec::new();
        for w in taken.low.min(taken.high)..taken.high {
            let mut missing = !taken.words[w];
            if w == last_word {
                let bits = end - w * 64; // 1..=64 members of this word are below `end`
                missing &= if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            }
            while missing != 0 {
                holes.push(
                    u32::try_from(w * 64).expect("operation count fits u32") + missing.trailing_zeros(),
                );
                missing &= missing - 1;
            }
        }
        Configuration {
            state,
            end: u32::try_from(end).expect("operation count fits u32"),
            holes: holes.into(),
        }
    }
}

/// Searches for a linearization of `ops` (in any order; each `complete >= invoke`), visiting at
/// most `configurations_max` configurations.
pub(crate) fn search(ops: &[RegisterOp], configurations_max: usize) -> Search {
    assert!(u32::try_from(ops.len()).is_ok(), "too many operations on one key: {}", ops.len());
    let mut entries = Entries::new(ops);
    // Rank of each completion in time order, to find the one the search got least far past.
    let mut return_rank = vec![usize::MAX; ops.len()];
    {
        let mut rank = 0;
        let mut node = entries.next[HEAD];
        while node != TAIL {
            if node % 2 == 1 {
                return_rank[(node - 2) / 2] = rank;
                rank += 1;
            }
            node = entries.next[node];
        }
    }

    let mut required = ops.iter().filter(|op| op.complete.is_some()).count();
    let mut taken = Bitset::new(ops.len());
    let mut visited: HashSet<Configuration, Fx> = HashSet::default();
    // Operations taken, with the state before each: the undo log.
    let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
    let mut state: Option<i64> = None;
    let mut blocked: Option<(usize, usize)> = None; // (rank, op)
    let mut blocked_states: Vec<Option<i64>> = Vec::new();
    let mut entry = entries.next[HEAD];
    loop {
        if required == 0 {
            return Search::Linearizable { configurations: visited.len() };
        }
        assert!(entry != TAIL, "search walked past every completion with {required} operations left");
        let op = (entry - 2) / 2;
        if entry == call_node(op) {
            if let Some(next_state) = ops[op].call.step(state) {
                taken.insert(op);
                if visited.insert(Configuration::new(&taken, next_state)) {
                    if visited.len() > configurations_max {
                        return Search::GaveUp { configurations: visited.len() };
                    }
                    stack.push((op, state));
                    state = next_state;
                    entries.unlink(call_node(op));
                    if ops[op].complete.is_some() {
                        entries.unlink(return_node(op));
                        required -= 1;
                    }
                    entry = entries.next[HEAD];
                    continue;
                }
                taken.remove(op);
            }
            entry = entries.next[entry];
        } else {
            // The completion of an operation that has not taken effect: undo the last choice.
            let rank = return_rank[op];
            match blocked {
                Some((best, _)) if best > rank => {}
                Some((best, _)) if best == rank => {
                    if ops[op].call.step(state).is_none()
                        && !blocked_states.contains(&state)
                        && blocked_states.len() < BLOCKED_STATES_MAX
                    {
                        blocked_states.push(state);
                    }
                }
                _ => {
                    blocked = Some((rank, op));
                    blocked_states.clear();
                    if ops[op].call.step(state).is_none() {
                        blocked_states.push(state);
                    }
                }
            }
            let Some((last, state_before)) = stack.pop() else {
                let (_, op) = blocked.expect("a failed search blocked at least once");
                blocked_states.sort_unstable();
                return Search::NotLinearizable {
                    blocked: op,
                    states: blocked_states,
                    configurations: visited.len(),
                };
            };
            taken.remove(last);
            state = state_before;
            if ops[last].complete.is_some() {
                entries.relink(return_node(last));
                required += 1;
            }
            entries.relink(call_node(last));
            entry = entries.next[call_node(last)];
        }
    }
}

/// The anomaly for a witness; `context` is prepended to the message and `extra_events` (indexes
/// in [`History::events`]) join the evidence.
pub(crate) fn witness_anomaly(
    history: &History,
    key: &str,
    witness: &Witness,
    kind: AnomalyKind,
    context: &str,
    extra_events: &[usize],
) -> Anomaly {
    let blocked = &history.ops()[witness.ops[witness.blocked].source];
    let states = if witness.states.is_empty() {
        String::new()
    } else {
        let states: Vec<String> = witness
            .states
            .iter()
            .map(|s| s.map_or_else(|| "nothing (absent)".to_string(), |v| v.to_string()))
            .collect();
        format!("; when it had to take effect the register held {}", states.join(" or "))
    };
    let count = witness.ops.len();
    let message = format!(
        "{context}{blocked} cannot be linearized: no order of the {count} operation{} below respects real \
         time and makes every operation legal{states}",
        if count == 1 { "" } else { "s" }
    );
    let events = witness
        .ops
        .iter()
        .flat_map(|op| history.op_events(&history.ops()[op.source], witness.time_max))
        .chain(extra_events.iter().copied())
        .collect();
    Anomaly::new(history, kind, key, message, events)
}

pub(crate) fn undecided_anomaly(history: &History, key: &str, configurations: usize) -> Anomaly {
    let message = format!(
        "the linearizability search gave up after {configurations} configurations: this key is neither \
         proven linearizable nor refuted; check a shorter history or one with fewer concurrent or info \
         operations per key"
    );
    Anomaly::new(history, AnomalyKind::Undecided, key, message, Vec::new())
}

/// FxHash (rustc's hasher): the visited set hashes millions of small keys; SipHash's DoS
/// resistance buys nothing here.
type Fx = BuildHasherDefault<FxHasher>;

#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
#[path = "linearizable_test.rs"]
mod tests;
