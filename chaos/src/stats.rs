//! Numbers about a run: operations by outcome, latency, availability during faults, recovery
//! after healing, and per-second series for the plot. Pure functions over what the runner
//! recorded.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::history::{EventType, Function};
use crate::nemesis::NemesisKind;
use crate::topology::NodeId;

/// One operation as the runner saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpRecord {
    pub process: i64,
    pub f: Function,
    pub node: NodeId,
    pub invoke_ns: u64,
    /// `None` while in flight (and for operations the run ended on).
    pub complete_ns: Option<u64>,
    /// `Ok`, `Fail` or `Info`; `None` while in flight.
    pub outcome: Option<EventType>,
    pub error: Option<String>,
}

/// A fault as it happened: from its start to its end on the run's clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultInterval {
    pub kind: NemesisKind,
    pub text: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Pairs invokes and completions as they arrive from the worker.
#[derive(Debug, Default)]
pub struct OpLog {
    pub ops: Vec<OpRecord>,
    in_flight: HashMap<i64, usize>,
}

impl OpLog {
    pub fn invoke(&mut self, process: i64, f: Function, node: NodeId, time: u64) {
        self.in_flight.insert(process, self.ops.len());
        self.ops.push(OpRecord {
            process,
            f,
            node,
            invoke_ns: time,
            complete_ns: None,
            outcome: None,
            error: None,
        });
    }

    /// When the operation `process` has in flight was invoked.
    pub fn invoke_time(&self, process: i64) -> Option<u64> {
        self.in_flight.get(&process).map(|&i| self.ops[i].invoke_ns)
    }

    /// Records a completion; returns the operation it completes (`None` for a completion without
    /// an invoke, which the history validation reports).
    pub fn complete(
        &mut self,
        process: i64,
        kind: EventType,
        time: u64,
        error: Option<String>,
    ) -> Option<&OpRecord> {
        let index = self.in_flight.remove(&process)?;
        let op = &mut self.ops[index];
        op.complete_ns = Some(time);
        op.outcome = Some(kind);
        op.error = error;
        Some(op)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutcomeCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Still in flight when the run ended (they count as `info` for the checkers).
    pub in_flight: u64,
}

impl OutcomeCounts {
    fn add(&mut self, op: &OpRecord) {
        self.invoked += 1;
        match op.outcome {
            Some(EventType::Ok) => self.ok += 1,
            Some(EventType::Fail) => self.fail += 1,
            Some(EventType::Info) => self.info += 1,
            Some(EventType::Invoke) | None => self.in_flight += 1,
        }
    }
}

/// Share of operations that got a definite answer (`ok` or `fail`) rather than `info`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    /// Operations invoked in the period (in-flight ones at the end excluded).
    pub ops: u64,
    pub ok: u64,
    pub answered: u64,
    /// `answered / ops`, `null` without operations.
    pub ratio: Option<f64>,
}

impl Availability {
    fn add(&mut self, op: &OpRecord) {
        match op.outcome {
            Some(EventType::Ok) => {
                self.ops += 1;
                self.ok += 1;
                self.answered += 1;
            }
            Some(EventType::Fail) => {
                self.ops += 1;
                self.answered += 1;
            }
            Some(EventType::Info) => self.ops += 1,
            _ => {}
        }
        self.ratio = (self.ops > 0).then(|| self.answered as f64 / self.ops as f64);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AvailabilityReport {
    pub outside_faults: Availability,
    pub during_faults: Availability,
    pub by_nemesis: BTreeMap<NemesisKind, Availability>,
    /// Every operation of the run, by the node that served it: a node that stops serving while
    /// the others go on stands out here.
    pub by_node: BTreeMap<NodeId, Availability>,
}

/// Availability of operations by whether a fault was active when they were invoked (an operation
/// counts once for each kind active then).
pub fn availability(ops: &[OpRecord], faults: &[FaultInterval], heal_ns: Option<u64>) -> AvailabilityReport {
    let mut report = AvailabilityReport::default();
    for op in ops {
        report.by_node.entry(op.node).or_default().add(op);
        let active: Vec<&FaultInterval> =
            faults.iter().filter(|f| f.start_ns <= op.invoke_ns && op.invoke_ns < f.end_ns).collect();
        if active.is_empty() {
            // After the heal the cluster is recovering: that is the recovery measure's business.
            if heal_ns.is_none_or(|heal| op.invoke_ns < heal) {
                report.outside_faults.add(op);
            }
            continue;
        }
        report.during_faults.add(op);
        let mut kinds: Vec<NemesisKind> = active.iter().map(|f| f.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            report.by_nemesis.entry(kind).or_default().add(op);
        }
    }
    report
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recovery {
    /// When the heal began, seconds since the start of the run.
    pub healed_at_s: f64,
    /// The bound the cluster had to recover in.
    pub bound_ms: u64,
    /// From the heal to the first `ok` operation invoked after it.
    pub first_ok_ms: Option<u64>,
    /// From the heal until every node had served an `ok` operation invoked after it.
    pub all_nodes_ms: Option<u64>,
    pub per_node_ms: BTreeMap<NodeId, Option<u64>>,
    /// `all_nodes_ms` is within the bound.
    pub recovered: bool,
}

/// Recovery after the heal at `heal_ns`: per node, the first `ok` operation invoked after it.
pub fn recovery(ops: &[OpRecord], nodes: &[NodeId], heal_ns: u64, bound_ms: u64) -> Recovery {
    let mut per_node: BTreeMap<NodeId, Option<u64>> = nodes.iter().map(|&n| (n, None)).collect();
    for op in ops.iter().filter(|op| op.invoke_ns >= heal_ns && op.outcome == Some(EventType::Ok)) {
        let ms = (op.complete_ns.expect("ok operations have completed") - heal_ns) / 1_000_000;
        if let Some(slot) = per_node.get_mut(&op.node) {
            *slot = Some(slot.map_or(ms, |prev| prev.min(ms)));
        }
    }
    let first_ok_ms = per_node.values().flatten().min().copied();
    let all_nodes_ms =
        per_node.values().copied().collect::<Option<Vec<u64>>>().and_then(|v| v.into_iter().max());
    Recovery {
        healed_at_s: heal_ns as f64 / 1e9,
        bound_ms,
        first_ok_ms,
        all_nodes_ms,
        recovered: all_nodes_ms.is_some_and(|ms| ms <= bound_ms),
        per_node_ms: per_node,
    }
}

/// How the cluster came back from one whole-cluster restart (the `restart` nemesis).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestartRecovery {
    /// When every node had been started again, seconds since the start of the run.
    pub restarted_at_s: f64,
    /// From then to the first `ok` operation invoked after it.
    pub first_ok_ms: Option<u64>,
    /// From then until every node had served an `ok` operation invoked after it.
    pub all_nodes_ms: Option<u64>,
}

/// One entry per `restart` fault in `faults`, measured from its end (when the nodes start
/// again). A node that served nothing more before the run ended counts as never.
pub fn restart_recoveries(
    ops: &[OpRecord],
    nodes: &[NodeId],
    faults: &[FaultInterval],
) -> Vec<RestartRecovery> {
    faults
        .iter()
        .filter(|f| f.kind == NemesisKind::Restart)
        .map(|f| {
            let r = recovery(ops, nodes, f.end_ns, u64::MAX);
            RestartRecovery {
                restarted_at_s: f.end_ns as f64 / 1e9,
                first_ok_ms: r.first_ok_ms,
                all_nodes_ms: r.all_nodes_ms,
            }
        })
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latency of operations with a definite answer (`ok` and `fail`).
pub fn latency<'a>(ops: impl IntoIterator<Item = &'a OpRecord>) -> Latency {
    let mut ms: Vec<f64> = ops
        .into_iter()
        .filter(|op| matches!(op.outcome, Some(EventType::Ok | EventType::Fail)))
        .filter_map(|op| op.complete_ns.map(|c| (c - op.invoke_ns) as f64 / 1e6))
        .collect();
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Latency { count: ms.len() as u64, p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), max_ms: at(1.0) }
}

pub fn counts(ops: &[OpRecord]) -> (OutcomeCounts, BTreeMap<String, OutcomeCounts>) {
    let mut all = OutcomeCounts::default();
    let mut by_f: BTreeMap<String, OutcomeCounts> = BTreeMap::new();
    for op in ops {
        all.add(op);
        by_f.entry(op.f.name().to_string()).or_default().add(op);
    }
    (all, by_f)
}

/// Errors of `fail` and `info` operations, grouped by their first words (`Unavailable`, `client
/// timeout`, `cas did not swap`), most frequent first, at most `limit`.
pub fn errors(ops: &[OpRecord], limit: usize) -> Vec<(String, u64)> {
    let mut groups: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops {
        if let Some(error) = &op.error {
            let group = error.split(':').next().unwrap_or(error).trim().to_string();
            *groups.entry(group).or_default() += 1;
        }
    }
    let mut sorted: Vec<(String, u64)> = groups.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.truncate(limit);
    sorted
}

/// One second of the run, by completion time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Latency of the `ok` and `fail` operations completed in this second; `None` without any.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Per-second buckets from 0 to `end_ns`.
pub fn buckets(ops: &[OpRecord], end_ns: u64) -> Vec<Bucket> {
    let seconds = (end_ns / 1_000_000_000 + 1) as usize;
    let mut buckets = vec![Bucket::default(); seconds];
    let mut latencies: Vec<Vec<&OpRecord>> = vec![Vec::new(); seconds];
    for op in ops {
        let Some(complete) = op.complete_ns else { continue };
        let second = ((complete / 1_000_000_000) as usize).min(seconds - 1);
        match op.outcome {
            Some(EventType::Ok) => buckets[second].ok += 1,
            Some(EventType::Fail) => buckets[second].fail += 1,
            Some(EventType::Info) => buckets[second].info += 1,
            _ => continue,
        }
        latencies[second].push(op);
    }
    for (bucket, ops) in buckets.iter_mut().zip(latencies) {
        let l = latency(ops);
        if l.count > 0 {
            bucket.p50_ms = Some(l.p50_ms);
            bucket.p99_ms = Some(l.p99_ms);
            bucket.max_ms = Some(l.max_ms);
        }
    }
    buckets
}

#[cfg(test)]
#[path = "stats_test.rs"]
mod tests;
