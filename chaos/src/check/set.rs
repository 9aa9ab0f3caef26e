//! Set completeness.
//!
//! A set key takes `set_add` operations (value = element) and `set_read`s (value = the elements).
//! Its final read is the `ok` `set_read` invoked last. Anomalies:
//!
//! * [`AnomalyKind::SetElementLost`]: an element whose add was acknowledged before the final read
//!   was invoked is missing from it. Evidence: that add and the final read.
//! * [`AnomalyKind::SetElementUnexpected`]: any `ok` read holds an element that no add (`ok`,
//!   `info` or in flight) invoked before the read completed could have put there. Evidence: the
//!   first such read and every add of that element (failed ones, later ones).
//! * [`AnomalyKind::SetElementDuplicated`]: any `ok` read holds an element more often than it
//!   was added (adds that did not fail count): one add was applied twice. A set would not show
//!   it; the `set` workload's chat rooms are logs, where it is a duplicated message. Evidence: the
//!   first such read and every add of that element.
//! * [`AnomalyKind::SetNoFinalRead`]: a set with acknowledged adds was never read: completeness
//!   cannot be checked, so the run proves nothing about it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::check::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{Function, History, KeyKind, Op, Outcome, Value};

/// Checks every set key of `history`.
pub fn check(history: &History) -> CheckResult {
    let mut keys: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        if history.key_kind(&op.key) == Some(KeyKind::Set) {
            keys.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut anomalies = Vec::new();
    for (key, ops) in keys {
        check_key(history, key, &ops, &mut anomalies);
    }
    CheckResult::from_anomalies(anomalies)
}

fn check_key(history: &History, key: &str, ops: &[&Op], anomalies: &mut Vec<Anomaly>) {
    // Adds of each element, in invoke order.
    let mut adds: HashMap<i64, Vec<&Op>> = HashMap::new();
    for op in ops.iter().filter(|op| op.f == Function::SetAdd) {
        let element = op.invoke_value.as_int().expect("validated: set_add carries an integer");
        adds.entry(element).or_default().push(op);
    }
    let reads: Vec<(&Op, BTreeSet<i64>)> = ops
        .iter()
        .filter(|op| op.f == Function::SetRead && op.outcome == Outcome::Ok)
        .map(|op| (*op, read_elements(op).iter().copied().collect()))
        .collect();

    // Duplicated elements: reported once per element, at the first read holding it too often.
    let mut duplicated: BTreeSet<i64> = BTreeSet::new();
    for (read, _) in &reads {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for &element in read_elements(read) {
            *counts.entry(element).or_default() += 1;
        }
        for (element, count) in counts {
            let element_adds = adds.get(&element).map(Vec::as_slice).unwrap_or(&[]);
            let attempted = element_adds.iter().filter(|add| add.outcome != Outcome::Fail).count();
            // An element never attempted is unexpected (below), not duplicated.
            if attempted == 0 || count <= attempted || !duplicated.insert(element) {
                continue;
            }
            let message = format!(
                "{read} holds {element} {count} times, but it was added {attempted} time{} (adds that did \
                 not fail): an add was applied more than once",
                if attempted == 1 { "" } else { "s" }
            );
            let events = std::iter::once(*read)
                .chain(element_adds.iter().copied())
                .flat_map(|op| history.op_events(op, None));
            anomalies.push(Anomaly::new(
                history,
                AnomalyKind::SetElementDuplicated,
                key,
                message,
                events.collect(),
            ));
        }
    }

    // Unexpected elements: reported once per element, at the first read holding it.
    let mut reported: BTreeSet<i64> = BTreeSet::new();
    for (read, elements) in &reads {
        let read_complete = read.complete_time.expect("ok operations have a completion time");
        for &element in elements {
            let element_adds = adds.get(&element).map(Vec::as_slice).unwrap_or(&[]);
            let possible = element_adds
                .iter()
                .any(|add| add.outcome != Outcome::Fail && add.invoke_time <= read_complete);
            if possible || !reported.insert(element) {
                continue;
            }
            let holding = reads.iter().filter(|(_, e)| e.contains(&element)).count();
            let message = format!(
                "{read} holds {element}, but no add of {element} that could have happened was invoked before \
                 the read completed ({} add{} of it in the whole history; {holding} read{} hold it)",
                element_adds.len(),
                if element_adds.len() == 1 { "" } else { "s" },
                if holding == 1 { "" } else { "s" }
            );
            let events = std::iter::once(*read)
                .chain(element_adds.iter().copied())
                .flat_map(|op| history.op_events(op, None));
            anomalies.push(Anomaly::new(
                history,
                AnomalyKind::SetElementUnexpected,
                key,
                message,
                events.collect(),
            ));
        }
    }

    // The final read: invoked last (reads are in invoke order, so the last one).
    let Some((last_read, final_elements)) = reads.last() else {
        let acknowledged =
            ops.iter().filter(|op| op.f == Function::SetAdd && op.outcome == Outcome::Ok).count();
        if acknowledged > 0 {
            let message = format!(
                "{acknowledged} acknowledged add{} but no ok set_read: completeness cannot be checked",
                if acknowledged == 1 { "" } else { "s" }
            );
            anomalies.push(Anomaly::new(history, AnomalyKind::SetNoFinalRead, key, message, Vec::new()));
        }
        return;
    };
    let mut lost: Vec<(i64, &Op)> = adds
        .iter()
        .filter(|(element, _)| !final_elements.contains(element))
        .filter_map(|(element, element_adds)| {
            element_adds
                .iter()
                .find(|add| {
                    add.outcome == Outcome::Ok && add.complete_time.is_some_and(|c| c < last_read.invoke_time)
                })
                .map(|add| (*element, *add))
        })
        .collect();
    lost.sort_by_key(|(_, add)| add.invoke_event);
    for (element, add) in lost {
        let message = format!(
            "{element} is missing from the final read (process {} on line {}), but its add ({add}) was \
             acknowledged before that read was invoked",
            last_read.process,
            history.line(last_read.invoke_event)
        );
        let events =
            history.op_events(add, None).into_iter().chain(history.op_events(last_read, None)).collect();
        anomalies.push(Anomaly::new(history, AnomalyKind::SetElementLost, key, message, events));
    }
}

/// The elements of an `ok` `set_read`, duplicates included.
fn read_elements(read: &Op) -> &[i64] {
    match &read.result_value {
        Some(Value::Elements(elements)) => elements,
        _ => unreachable!("validated: an ok set_read carries its elements: {read:?}"),
    }
}

#[cfg(test)]
#[path = "set_test.rs"]
mod tests;
