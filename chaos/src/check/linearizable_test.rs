use std::time::Instant;

use serde_json::{Value as Json, json};

use super::*;
use crate::history::{Event, EventType};

// ---------------------------------------------------------------------------------------------
// Builders

fn op(call: RegisterCall, invoke: u64, complete: Option<u64>) -> RegisterOp {
    RegisterOp { call, invoke, complete, source: 0 }
}

fn read(value: Option<i64>, invoke: u64, complete: u64) -> RegisterOp {
    op(RegisterCall::Read(value), invoke, Some(complete))
}

fn write(value: i64, invoke: u64, complete: u64) -> RegisterOp {
    op(RegisterCall::Write(value), invoke, Some(complete))
}

fn write_info(value: i64, invoke: u64) -> RegisterOp {
    op(RegisterCall::Write(value), invoke, None)
}

fn cas(expected: Option<i64>, new: i64, invoke: u64, complete: u64) -> RegisterOp {
    op(RegisterCall::Cas { expected, new }, invoke, Some(complete))
}

fn numbered(mut ops: Vec<RegisterOp>) -> Vec<RegisterOp> {
    for (index, op) in ops.iter_mut().enumerate() {
        op.source = index;
    }
    ops
}

fn is_linearizable(ops: Vec<RegisterOp>) -> bool {
    match check_key(ops, CONFIGURATIONS_MAX) {
        KeyVerdict::Linearizable => true,
        KeyVerdict::NotLinearizable(_) => false,
        KeyVerdict::Undecided { configurations } => panic!("undecided after {configurations} configurations"),
    }
}

fn witness_of(ops: Vec<RegisterOp>) -> Witness {
    match check_key(numbered(ops), CONFIGURATIONS_MAX) {
        KeyVerdict::NotLinearizable(witness) => witness,
        other => panic!("expected not linearizable, got {other:?}"),
    }
}

fn sources(witness: &Witness) -> Vec<usize> {
    let mut sources: Vec<usize> = witness.ops.iter().map(|op| op.source).collect();
    sources.sort_unstable();
    sources
}

// ---------------------------------------------------------------------------------------------
// The search on hand-made histories

#[test]
fn empty_and_trivial_histories_are_linearizable() {
    assert!(is_linearizable(vec![]));
    assert!(is_linearizable(vec![read(None, 0, 1)]));
    assert!(is_linearizable(vec![write(1, 0, 1), read(Some(1), 2, 3)]));
}

#[test]
fn read_of_a_value_never_written_is_caught_alone() {
    let witness = witness_of(vec![write(1, 0, 1), read(Some(1), 2, 3), read(Some(9), 4, 5)]);
    // The writes are not needed: 9 was never written.
    assert_eq!(sources(&witness), [2]);
    assert_eq!(witness.states, [None]);
}

#[test]
fn stale_read_is_caught_with_both_writes() {
    let witness = witness_of(vec![write(1, 0, 1), write(2, 2, 3), read(Some(1), 4, 5), read(Some(2), 6, 7)]);
    assert_eq!(sources(&witness), [0, 1, 2]);
    assert_eq!(witness.ops[witness.blocked].source, 2);
    assert_eq!(witness.states, [Some(2)]);
    // The history is cut at the stale read's completion: the later read is gone.
    assert_eq!(witness.time_max, Some(5));
}

#[test]
fn read_concurrent_with_a_write_may_see_either_value() {
    assert!(is_linearizable(vec![write(1, 0, 1), write(2, 2, 10), read(Some(1), 3, 4), read(Some(2), 5, 6)]));
    assert!(is_linearizable(vec![write(1, 0, 1), write(2, 2, 10), read(Some(2), 3, 4), read(Some(2), 5, 6)]));
    // ... but not go back once it saw the new one.
    assert!(!is_linearizable(vec![
        write(1, 0, 1),
        write(2, 2, 10),
        read(Some(2), 3, 4),
        read(Some(1), 5, 6)
    ]));
}

#[test]
fn equal_times_are_concurrent() {
    // The write completes at 5 and the read is invoked at 5: either order is allowed.
    assert!(is_linearizable(vec![write(1, 0, 5), read(None, 5, 6)]));
    assert!(!is_linearizable(vec![write(1, 0, 5), read(None, 6, 7)]));
}

#[test]
fn info_write_may_take_effect_late_or_never() {
    // Never.
    assert!(is_linearizable(vec![write(1, 0, 1), write_info(2, 2), read(Some(1), 10, 11)]));
    // Long after the client gave up.
    assert!(is_linearizable(vec![
        write(1, 0, 1),
        write_info(2, 2),
        read(Some(1), 10, 11),
        read(Some(2), 12, 13)
    ]));
    // But only once.
    assert!(!is_linearizable(vec![
        write(1, 0, 1),
        write_info(2, 2),
        read(Some(2), 10, 11),
        read(Some(1), 12, 13),
        read(Some(2), 14, 15),
    ]));
    // And never before its invoke.
    assert!(!is_linearizable(vec![read(Some(2), 0, 1), write_info(2, 2)]));
}

#[test]
fn cas_takes_effect_only_on_its_expected_value() {
    assert!(is_linearizable(vec![cas(None, 1, 0, 1), cas(Some(1), 2, 2, 3), read(Some(2), 4, 5)]));
    assert!(!is_linearizable(vec![write(0, 0, 1), cas(None, 1, 2, 3)]));
    // Two CAS from the same value cannot both succeed, even concurrently.
    let witness = witness_of(vec![
        write(0, 0, 1),
        cas(Some(0), 1, 2, 10),
        cas(Some(0), 2, 3, 11),
        read(Some(2), 12, 13),
    ]);
    assert_eq!(sources(&witness), [0, 1, 2]);
}

#[test]
fn open_cas_whose_value_is_read_must_take_effect() {
    let info_cas = op(RegisterCall::Cas { expected: Some(0), new: 5 }, 2, None);
    assert!(is_linearizable(vec![write(0, 0, 1), info_cas, read(Some(5), 10, 11)]));
    assert!(!is_linearizable(vec![write(1, 0, 1), info_cas, read(Some(5), 10, 11)]));
}

#[test]
fn many_unobserved_info_writes_stay_cheap() {
    // 200 timed-out writes nobody reads: without dropping them the search would branch on each.
    let mut ops = vec![write(0, 0, 1)];
    for i in 0..200 {
        ops.push(write_info(1000 + i, 2 + i as u64));
    }
    ops.push(read(Some(0), 500, 501));
    ops.push(read(Some(7), 502, 503));
    let witness = witness_of(ops);
    assert_eq!(witness.ops.len(), 1, "only the impossible read: {witness:?}");
}

#[test]
fn configuration_stores_highest_member_and_holes() {
    let mut taken = Bitset::new(200);
    assert_eq!(Configuration::new(&taken, None).end, 0);
    for i in [0, 1, 3, 63, 64, 130] {
        taken.insert(i);
    }
    let configuration = Configuration::new(&taken, Some(4));
    assert_eq!(configuration.end, 131);
    let holes: Vec<u32> = (0..131).filter(|i| ![0, 1, 3, 63, 64, 130].contains(i)).collect();
    assert_eq!(&*configuration.holes, holes.as_slice());
    taken.remove(130);
    taken.insert(127);
    let configuration = Configuration::new(&taken, Some(4));
    assert_eq!(configuration.end, 128);
    assert_eq!(configuration.holes.len(), 128 - 6);
}

#[test]
fn search_gives_up_at_its_budget() {
    let ops: Vec<RegisterOp> = (0..20).map(|i| write(i, 0, 100)).chain([read(Some(-1), 200, 201)]).collect();
    assert!(matches!(search(&ops, 1000), Search::GaveUp { configurations: 1001 }));
}

// ---------------------------------------------------------------------------------------------
// Simulated clients against a linearizable register

/// SplitMix64: small, seedable, good enough to draw test histories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

struct Simulation {
    /// Concurrent clients.
    clients: usize,
    ops: usize,
    /// Values are drawn from `0..values`; `None`: every write is a new value.
    values: Option<i64>,
    /// Chance that an operation times out (`info`); a timed-out write or cas takes effect half of
    /// the time, possibly after the client gave up.
    info_percent: u64,
    duration_max: u64,
}

#[derive(Clone, Copy)]
enum Planned {
    Read,
    Write(i64),
    Cas(Option<i64>, i64),
}

/// A history of `sim.clients` clients against one register that applies each operation at a
/// random instant inside its interval (the definition of linearizable), as JSON events on key
/// `"k"`, in time order.
fn simulate(rng: &mut Rng, sim: &Simulation) -> Vec<Event> {
    struct Plan {
        process: i64,
        what: Planned,
        invoke: u64,
        complete: u64,
        effect: Option<u64>,
        info: bool,
    }
    let mut clocks: Vec<u64> = (0..sim.clients).map(|_| rng.below(5)).collect();
    let mut processes: Vec<i64> = (0..sim.clients as i64).collect();
    let mut next_process = sim.clients as i64;
    let mut next_value = 0;
    let mut recent: Vec<i64> = Vec::new();
    let mut plans = Vec::with_capacity(sim.ops);
    for _ in 0..sim.ops {
        let client = rng.below(sim.clients as u64) as usize;
        let what = match rng.below(100) {
            0..40 => Planned::Read,
            40..75 => Planned::Write(draw_value(rng, sim.values, &mut next_value)),
            _ => {
                let new = draw_value(rng, sim.values, &mut next_value);
                let expected = match (sim.values, recent.len()) {
                    (Some(values), _) if rng.percent(70) => Some(rng.below(values as u64) as i64),
                    (_, 0) => None,
                    _ if rng.percent(10) => None,
                    (_, n) => Some(recent[n - 1 - rng.below(n.min(3) as u64) as usize]),
                };
                Planned::Cas(expected, new)
            }
        };
        if let Planned::Write(v) | Planned::Cas(_, v) = what {
            recent.push(v);
        }
        let invoke = clocks[client] + 1 + rng.below(5);
        let duration = 1 + rng.below(sim.duration_max);
        let complete = invoke + duration;
        let info = rng.percent(sim.info_percent);
        let effect = if !info {
            Some(invoke + rng.below(duration + 1))
        } else if matches!(what, Planned::Read) || rng.percent(50) {
            None
        } else {
            Some(invoke + rng.below(3 * duration + 1))
        };
        plans.push(Plan { process: processes[client], what, invoke, complete, effect, info });
        clocks[client] = complete;
        if info {
            processes[client] = next_process;
            next_process += 1;
        }
    }

    // Apply in effect order to a real register.
    let mut order: Vec<usize> = (0..plans.len()).filter(|&i| plans[i].effect.is_some()).collect();
    order.sort_by_key(|&i| (plans[i].effect, i));
    let mut results: Vec<(EventType, Json)> = plans.iter().map(|_| (EventType::Info, Json::Null)).collect();
    let mut state: Option<i64> = None;
    for i in order {
        let plan = &plans[i];
        results[i] = match plan.what {
            Planned::Read => (EventType::Ok, json!(state)),
            Planned::Write(v) => {
                state = Some(v);
                (EventType::Ok, json!(v))
            }
            Planned::Cas(expected, new) if expected == state => {
                state = Some(new);
                (EventType::Ok, json!([expected, new]))
            }
            Planned::Cas(expected, new) => (EventType::Fail, json!([expected, new])),
        };
    }

    let mut events: Vec<(u64, usize, Event)> = Vec::with_capacity(2 * plans.len());
    for (i, plan) in plans.iter().enumerate() {
        let (f, argument) = match plan.what {
            Planned::Read => (Function::Read, Json::Null),
            Planned::Write(v) => (Function::Write, json!(v)),
            Planned::Cas(expected, new) => (Function::Cas, json!([expected, new])),
        };
        events.push((
            plan.invoke,
            2 * i,
            Event::new(plan.process, EventType::Invoke, f, "k", argument, plan.invoke),
        ));
        let (kind, value) = if plan.info {
            (EventType::Info, Json::Null)
        } else if results[i].0 == EventType::Fail {
            (EventType::Fail, Json::Null)
        } else {
            results[i].clone()
        };
        let value = if f == Function::Read { value } else { Json::Null };
        events.push((plan.complete, 2 * i + 1, Event::new(plan.process, kind, f, "k", value, plan.complete)));
    }
    events.sort_by_key(|(time, seq, _)| (*time, *seq));
    events.into_iter().map(|(_, _, event)| event).collect()
}

fn draw_value(rng: &mut Rng, values: Option<i64>, next_value: &mut i64) -> i64 {
    match values {
        Some(values) => rng.below(values as u64) as i64,
        None => {
            *next_value += 1;
            *next_value
        }
    }
}

fn key_ops(events: &[Event]) -> Vec<RegisterOp> {
    let history = History::from_events(events.to_vec()).expect("simulated histories are well-formed");
    register_ops(&history).remove("k").unwrap_or_default()
}

/// Indexes of the `ok` read events.
fn ok_reads(events: &[Event]) -> Vec<usize> {
    (0..events.len()).filter(|&i| events[i].f == Function::Read && events[i].kind == EventType::Ok).collect()
}

/// Exhaustive check, for small histories: tries every order that respects real time, taking open
/// operations or not.
fn brute_force(ops: &[RegisterOp]) -> bool {
    fn extend(ops: &[RegisterOp], taken: u32, state: Option<i64>) -> bool {
        let all_required = (0..ops.len()).all(|i| taken & (1 << i) != 0 || ops[i].complete.is_none());
        if all_required {
            return true;
        }
        (0..ops.len()).any(|i| {
            let free = taken & (1 << i) == 0;
            let ready = (0..ops.len()).all(|j| {
                taken & (1 << j) != 0 || ops[j].complete.is_none_or(|complete| complete >= ops[i].invoke)
            });
            free && ready && ops[i].call.step(state).is_some_and(|next| extend(ops, taken | (1 << i), next))
        })
    }
    assert!(ops.len() <= 16, "brute force is for small histories");
    extend(ops, 0, None)
}

#[test]
fn simulated_histories_are_linearizable() {
    for seed in 0..300 {
        let mut rng = Rng(seed);
        let sim = Simulation {
            clients: 1 + (seed % 8) as usize,
            ops: 20 + rng.below(300) as usize,
            values: if seed % 2 == 0 { Some(1 + rng.below(5) as i64) } else { None },
            info_percent: rng.below(20),
            duration_max: 1 + rng.below(40),
        };
        let events = simulate(&mut rng, &sim);
        assert!(is_linearizable(key_ops(&events)), "seed {seed}: a real register's history was rejected");
    }
}

/// Small histories with few values (so plenty of ambiguity), corrupted in one read: the checker
/// must agree with the exhaustive check every time, and its witness must itself be rejected by it.
#[test]
fn search_agrees_with_brute_force_on_small_histories() {
    let mut corrupted_invalid = 0;
    let mut corrupted_total = 0;
    for seed in 0..3000 {
        let mut rng = Rng(seed);
        let sim = Simulation {
            clients: 2 + rng.below(3) as usize,
            ops: 2 + rng.below(7) as usize,
            values: Some(1 + rng.below(3) as i64),
            info_percent: rng.below(30),
            duration_max: 1 + rng.below(10),
        };
        let mut events = simulate(&mut rng, &sim);
        let ops = key_ops(&events);
        assert!(brute_force(&ops), "seed {seed}: simulation produced a non-linearizable history");
        assert!(is_linearizable(ops), "seed {seed}");

        let reads = ok_reads(&events);
        if reads.is_empty() {
            continue;
        }
        let target = reads[rng.below(reads.len() as u64) as usize];
        let corrupt = match rng.below(4) as i64 {
            0 => Json::Null,
            v => json!(v - 1),
        };
        if events[target].value == corrupt {
            continue;
        }
        events[target].value = corrupt;
        corrupted_total += 1;
        let ops = numbered(key_ops(&events));
        let expected = brute_force(&ops);
        match check_key(ops.clone(), CONFIGURATIONS_MAX) {
            KeyVerdict::Linearizable => assert!(expected, "seed {seed}: missed an anomaly"),
            KeyVerdict::NotLinearizable(witness) => {
                assert!(!expected, "seed {seed}: false alarm");
                corrupted_invalid += 1;
                assert!(!brute_force(&witness.ops), "seed {seed}: the witness alone is linearizable");
                assert!(witness.ops.len() <= ops.len(), "seed {seed}");
            }
            KeyVerdict::Undecided { .. } => panic!("seed {seed}: undecided on a tiny history"),
        }
    }
    println!(
        "corrupted {corrupted_total} small histories, {corrupted_invalid} truly not linearizable: all found"
    );
    assert!(corrupted_invalid > corrupted_total / 4, "the test must exercise real anomalies");
}

/// Larger histories: a read corrupted to a value never written is always found, and is its own
/// witness; a read corrupted to an older value is found when it breaks linearizability, with a
/// witness that (when small enough to brute-force) is rejected on its own.
#[test]
fn corrupted_reads_are_found_in_larger_histories() {
    let mut stale_found = 0;
    for seed in 0..100 {
        let mut rng = Rng(1_000 + seed);
        let sim = Simulation { clients: 6, ops: 400, values: None, info_percent: 5, duration_max: 30 };
        let events = simulate(&mut rng, &sim);
        let reads = ok_reads(&events);
        let target = reads[rng.below(reads.len() as u64) as usize];

        let mut unwritten = events.clone();
        unwritten[target].value = json!(-7);
        let witness = witness_of(key_ops(&unwritten));
        assert_eq!(witness.ops.len(), 1, "seed {seed}: {witness:?}");
        assert_eq!(witness.ops[0].call, RegisterCall::Read(Some(-7)));

        let mut stale = events.clone();
        let old = match events[target].value.as_i64() {
            Some(v) if v > 2 => v - 2,
            _ => continue,
        };
        stale[target].value = json!(old);
        if let KeyVerdict::NotLinearizable(witness) = check_key(key_ops(&stale), CONFIGURATIONS_MAX) {
            stale_found += 1;
            assert!(witness.ops.iter().any(|op| op.call == RegisterCall::Read(Some(old))), "seed {seed}");
            if witness.ops.len() <= 10 {
                assert!(!brute_force(&witness.ops), "seed {seed}: the witness alone is linearizable");
            }
        }
    }
    println!("stale reads found in {stale_found} of 100 histories");
    assert!(stale_found > 50, "found only {stale_found}");
}

/// Not a timed assertion: prints how long a 5,000-operation key takes (run with --nocapture).
#[test]
fn performance_of_a_5000_operation_key() {
    let mut rng = Rng(42);
    let sim = Simulation { clients: 10, ops: 5_000, values: None, info_percent: 3, duration_max: 50 };
    let events = simulate(&mut rng, &sim);
    let history = History::from_events(events.clone()).unwrap();

    let start = Instant::now();
    let result = check(&history);
    let elapsed = start.elapsed();
    assert!(result.valid, "{result:?}");
    println!("valid history: {} ops, 10 clients: checked in {elapsed:?}", history.ops().len());

    // The same history with one read near the end made stale (it returns a value acknowledged
    // long before): search, cut and shrink.
    let mut corrupted = events;
    let reads = ok_reads(&corrupted);
    let target = reads[reads.len() - 10];
    let stale = corrupted[..target - 200]
        .iter()
        .rev()
        .find(|e| e.f == Function::Write && e.kind == EventType::Invoke)
        .and_then(|e| e.value.as_i64())
        .unwrap();
    corrupted[target].value = json!(stale);
    let history = History::from_events(corrupted).unwrap();
    let start = Instant::now();
    let result = check(&history);
    let elapsed = start.elapsed();
    assert!(!result.valid);
    println!(
        "stale read near the end: found in {elapsed:?}, witness of {} events: {}",
        result.anomalies[0].events.len(),
        result.anomalies[0].message
    );
}
