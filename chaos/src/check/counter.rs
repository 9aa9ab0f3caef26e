//! Counter bounds.
//!
//! A counter key takes `add` operations (value = amount) and `read`s (`null` reads as 0). Every
//! `ok` read must lie between
//!
//! * **lower**: the acknowledged (`ok`) adds that completed before the read was invoked — they
//!   certainly happened before it; and
//! * **upper**: every attempted add (`ok`, `info`, still in flight) invoked before the read
//!   completed — nothing else can have happened before it.
//!
//! Adds in between may or may not count. With negative amounts the bounds widen accordingly: an
//! uncertain negative add lowers the lower bound, an uncertain positive one raises the upper bound.
//! `fail` adds did not happen. Equal times count as concurrent (the looser bound).
//!
//! Evidence: for a read above the upper bound, the read and every add invoked before it
//! completed (all of them are needed to show that nothing else could add up); for a read below the
//! lower bound, the read and the fewest acknowledged adds (largest first) whose sum already
//! exceeds it, plus any negative adds that might have counted.

use std::collections::BTreeMap;

use crate::check::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Function, History, KeyKind, Op, Outcome, Value};

/// Checks every counter key of `history`.
pub fn check(history: &History) -> CheckResult {
    let mut keys: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        if history.key_kind(&op.key) == Some(KeyKind::Counter) {
            keys.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut anomalies = Vec::new();
    for (key, ops) in keys {
        check_key(history, key, &ops, &mut anomalies);
    }
    CheckResult::from_anomalies(anomalies)
}

#[derive(Clone, Copy)]
struct Add<'a> {
    amount: i64,
    invoke: u64,
    /// Completion of an acknowledged add; `None` for info and in-flight ones.
    acknowledged: Option<u64>,
    op: &'a Op,
}

/// Prefix sums of the positive and the negative amounts of a sorted list of adds.
struct Sums {
    positive: Vec<i128>,
    negative: Vec<i128>,
}

impl Sums {
    fn new<'a>(adds: impl Iterator<Item = &'a Add<'a>>) -> Self {
        let mut sums = Sums { positive: vec![0], negative: vec![0] };
        for add in adds {
            let amount = i128::from(add.amount);
            sums.positive.push(sums.positive.last().unwrap() + amount.max(0));
            sums.negative.push(sums.negative.last().unwrap() + amount.min(0));
        }
        sums
    }
}

fn check_key(history: &History, key: &str, ops: &[&Op], anomalies: &mut Vec<Anomaly>) {
    let mut attempted: Vec<Add> = ops
        .iter()
        .filter(|op| op.f == Function::Add && op.outcome != Outcome::Fail)
        .map(|op| Add {
            amount: op.invoke_value.as_int().expect("validated: add carries an integer"),
            invoke: op.invoke_time,
            acknowledged: if op.outcome == Outcome::Ok { op.complete_time } else { None },
            op,
        })
        .collect();
    attempted.sort_by_key(|add| add.invoke);
    let mut acknowledged: Vec<Add> =
        attempted.iter().filter(|add| add.acknowledged.is_some()).copied().collect();
    acknowledged.sort_by_key(|add| add.acknowledged);
    let attempted_sums = Sums::new(attempted.iter());
    let acknowledged_sums = Sums::new(acknowledged.iter());

    for read in ops.iter().filter(|op| op.f == Function::Read && op.outcome == Outcome::Ok) {
        let value = i128::from(read.result_value.as_ref().and_then(Value::as_int).unwrap_or(0));
        let read_complete = read.complete_time.expect("ok operations have a completion time");
        // Adds that may have happened before the read: invoked before it completed.
        let possible = attempted.partition_point(|add| add.invoke <= read_complete);
        // Adds that certainly happened before the read: acknowledged before it was invoked.
        let certain =
            acknowledged.partition_point(|add| add.acknowledged.is_some_and(|c| c < read.invoke_time));
        let upper = attempted_sums.positive[possible] + acknowledged_sums.negative[certain];
        let lower = acknowledged_sums.positive[certain] + attempted_sums.negative[possible];

        if value > upper {
            let shown: Vec<&Add> = attempted[..possible].iter().filter(|add| add.amount != 0).collect();
            let message = format!(
                "{read} is above {upper}, the most that the {} add{} invoked before the read completed can sum to",
                shown.len(),
                if shown.len() == 1 { "" } else { "s" }
            );
            anomalies.push(anomaly(history, AnomalyKind::CounterAboveAttempted, key, message, read, &shown));
        } else if value < lower {
            // The fewest acknowledged positive adds, largest first, that push the bound above the
            // read, with every negative add that might have counted.
            let negatives: Vec<&Add> = attempted[..possible].iter().filter(|add| add.amount < 0).collect();
            let mut positives: Vec<&Add> =
                acknowledged[..certain].iter().filter(|add| add.amount > 0).collect();
            positives.sort_by_key(|add| std::cmp::Reverse(add.amount));
            let mut bound: i128 = negatives.iter().map(|add| i128::from(add.amount)).sum();
            let mut shown = negatives;
            for add in positives {
                if bound > value {
                    break;
                }
                bound += i128::from(add.amount);
                shown.push(add);
            }
            let message = format!(
                "{read} is below {lower}, the sum of the adds acknowledged before the read was invoked \
                 (the adds shown already sum to {bound})"
            );
            anomalies.push(anomaly(
                history,
                AnomalyKind::CounterBelowAcknowledged,
                key,
                message,
                read,
                &shown,
            ));
        }
    }
}

fn anomaly(
    history: &History,
    kind: AnomalyKind,
    key: &str,
    message: String,
    read: &Op,
    adds: &[&Add],
) -> Anomaly {
    let events = history
        .op_events(read, None)
        .into_iter()
        .chain(adds.iter().flat_map(|add| history.op_events(add.op, None)))
        .collect();
    Anomaly::new(history, kind, key, message, events)
}

#[cfg(test)]
#[path = "counter_test.rs"]
mod tests;
