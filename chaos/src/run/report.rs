//! The end of a run: `summary.json`, the printed summary, and `plot.svg`.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context as _;
use serde::Serialize;

use super::Runner;
use crate::check::Report;
use crate::check::alarms::Lateness;
use crate::nemesis::NemesisKind;
use crate::stats::{self, AvailabilityReport, Latency, OutcomeCounts, Recovery, RestartRecovery};
use crate::svg;

/// Error groups listed in the summary.
const ERROR_GROUPS_MAX: usize = 8;

#[derive(Clone, Debug, Serialize)]
pub struct CheckSummary {
    pub checker: String,
    pub valid: bool,
    pub anomalies: usize,
    /// Anomaly kinds with their counts.
    pub kinds: BTreeMap<String, usize>,
    /// How late alarms fired (the alarm checker only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateness: Option<Lateness>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ErrorGroup {
    pub error: String,
    pub count: u64,
}

/// What a run did and concluded; written as `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub nodes: u32,
    pub workload: super::Workload,
    pub nemesis: String,
    pub time_limit_s: u64,
    pub run_dir: String,
    /// The command line that replays the schedule and workload choices.
    pub replay: String,
    pub duration_s: f64,
    pub ops: OutcomeCounts,
    pub ops_by_function: BTreeMap<String, OutcomeCounts>,
    pub errors: Vec<ErrorGroup>,
    /// Of `ok` and `fail` operations.
    pub latency: Latency,
    /// Faults injected, by nemesis.
    pub faults: BTreeMap<NemesisKind, usize>,
    pub availability: AvailabilityReport,
    /// `null` when the run never reached the heal.
    pub recovery: Option<Recovery>,
    /// How the cluster came back from each whole-cluster restart.
    pub restarts: Vec<RestartRecovery>,
    pub node_crashes: Vec<String>,
    /// Reads that returned a value this workload never writes (not an integer).
    pub garbage_reads: u64,
    pub checks: Vec<CheckSummary>,
    pub anomalies: usize,
    /// Every checker passed.
    pub valid: bool,
    pub interrupted: bool,
    /// Valid, recovered in time, no crash, no garbage, not interrupted.
    pub passed: bool,
    /// Why the run did not pass.
    pub reasons: Vec<String>,
}

pub(super) fn build(runner: &Runner<'_>, report: Option<&Report>, end_ns: u64, interrupted: bool) -> Summary {
    let config = runner.config;
    let ops = &runner.ops.ops;
    let (counts, by_function) = stats::counts(ops);
    let mut faults = BTreeMap::new();
    for interval in &runner.timeline.intervals {
        *faults.entry(interval.kind).or_insert(0) += 1;
    }
    let nodes: Vec<u32> = config.topology.ids().collect();
    let recovery = runner
        .heal_ns
        .map(|heal| stats::recovery(ops, &nodes, heal, config.recovery_timeout.as_millis() as u64));
    let checks: Vec<CheckSummary> = report
        .map(|r| {
            r.checks
                .iter()
                .map(|c| {
                    let mut kinds = BTreeMap::new();
                    for a in &c.result.anomalies {
                        *kinds.entry(a.kind.name().to_string()).or_insert(0) += 1;
                    }
                    CheckSummary {
                        checker: c.checker.name().to_string(),
                        valid: c.result.valid,
                        anomalies: c.result.anomalies.len(),
                        kinds,
                        lateness: c.result.lateness.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let anomalies = checks.iter().map(|c| c.anomalies).sum();
    let valid = report.is_some_and(|r| r.valid);

    let mut reasons = runner.reasons.clone();
    if let Some(report) = report
        && !report.valid
    {
        reasons.push(format!("the checkers found {anomalies} anomalies (see report.txt)"));
    }
    if counts.ok == 0 && !interrupted {
        reasons.push("no operation succeeded".to_string());
    }
    match &recovery {
        Some(r) if !r.recovered => reasons.push(format!(
            "the cluster did not serve through every node within {} ms of the heal",
            r.bound_ms
        )),
        None if !interrupted && runner.reasons.is_empty() => {
            reasons.push("the run never reached the heal".into())
        }
        _ => {}
    }
    if !runner.crashes.is_empty() {
        reasons.push(format!("{} node crash(es): {}", runner.crashes.len(), runner.crashes.join("; ")));
    }
    if runner.garbage_reads > 0 {
        reasons.push(format!("{} reads returned a value that was never written", runner.garbage_reads));
    }
    if runner.bad_lines > 0 {
        reasons.push(format!("{} unreadable lines from the client worker (a harness bug)", runner.bad_lines));
    }
    if interrupted {
        reasons.push("interrupted".to_string());
    }
    Summary {
        seed: config.seed,
        nodes: config.topology.nodes(),
        workload: config.workload,
        nemesis: config.nemesis.to_string(),
        time_limit_s: config.time_limit.as_secs(),
        run_dir: config.run_dir.display().to_string(),
        replay: config.replay.clone(),
        duration_s: end_ns as f64 / 1e9,
        ops: counts,
        ops_by_function: by_function,
        errors: stats::errors(ops, ERROR_GROUPS_MAX)
            .into_iter()
            .map(|(error, count)| ErrorGroup { error, count })
            .collect(),
        latency: stats::latency(ops),
        faults,
        availability: stats::availability(ops, &runner.timeline.intervals, runner.heal_ns),
        recovery,
        restarts: stats::restart_recoveries(ops, &nodes, &runner.timeline.intervals),
        node_crashes: runner.crashes.clone(),
        garbage_reads: runner.garbage_reads,
        checks,
        anomalies,
        valid,
        interrupted,
        passed: reasons.is_empty(),
        reasons,
    }
}

pub(super) fn write_files(summary: &Summary, runner: &Runner<'_>, end_ns: u64) -> anyhow::Result<()> {
    let dir = &runner.config.run_dir;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary).expect("a summary serializes") + "\n",
    )
    .context("write summary.json")?;
    let buckets = stats::buckets(&runner.ops.ops, end_ns);
    let title = format!(
        "mortar-chaos: {} nodes, {}, nemesis {}, seed {} — {}",
        summary.nodes,
        summary.workload,
        summary.nemesis,
        summary.seed,
        if summary.passed { "passed" } else { "FAILED" }
    );
    let picture = svg::render(&svg::Plot {
        title: &title,
        buckets: &buckets,
        faults: &runner.timeline.intervals,
        heal_s: runner.heal_ns.map(|h| h as f64 / 1e9),
    });
    std::fs::write(dir.join("plot.svg"), picture).context("write plot.svg")?;
    Ok(())
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== summary ==")?;
        writeln!(
            f,
            "seed {}  nodes {}  workload {}  nemesis {}  time limit {} s  ran {:.1} s",
            self.seed, self.nodes, self.workload, self.nemesis, self.time_limit_s, self.duration_s
        )?;
        let o = &self.ops;
        writeln!(
            f,
            "operations: {} invoked: {} ok, {} fail, {} info, {} in flight at the end",
            o.invoked, o.ok, o.fail, o.info, o.in_flight
        )?;
        for (name, c) in &self.ops_by_function {
            writeln!(
                f,
                "  {name:<6} {:>7} invoked: {} ok, {} fail, {} info",
                c.invoked, c.ok, c.fail, c.info
            )?;
        }
        if !self.errors.is_empty() {
            let groups: Vec<String> =
                self.errors.iter().map(|e| format!("{} ×{}", e.error, e.count)).collect();
            writeln!(f, "errors: {}", groups.join(", "))?;
        }
        let l = &self.latency;
        writeln!(
            f,
            "latency (ok and fail): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        )?;
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        writeln!(f, "faults: {}", if faults.is_empty() { "none".to_string() } else { faults.join(", ") })?;
        let a = &self.availability;
        writeln!(
            f,
            "availability (answered / invoked): outside faults {} of {}, during faults {} of {}",
            ratio(a.outside_faults.ratio),
            a.outside_faults.ops,
            ratio(a.during_faults.ratio),
            a.during_faults.ops
        )?;
        for (kind, av) in &a.by_nemesis {
            writeln!(f, "  during {kind:<9} {} of {} ({} ok)", ratio(av.ratio), av.ops, av.ok)?;
        }
        let nodes: Vec<String> =
            a.by_node.iter().map(|(n, av)| format!("n{n} {} of {}", ratio(av.ratio), av.ops)).collect();
        writeln!(f, "  by node, whole run: {}", nodes.join(", "))?;
        match &self.recovery {
            Some(r) => writeln!(
                f,
                "recovery after the heal: first ok {} ms, every node {} (bound {} ms)",
                r.first_ok_ms.map_or("-".into(), |v| v.to_string()),
                r.all_nodes_ms.map_or("never".into(), |v| format!("{v} ms")),
                r.bound_ms
            )?,
            None => writeln!(f, "recovery: the run never reached the heal")?,
        }
        if !self.restarts.is_empty() {
            // A restart after which nothing was served counts as the worst.
            let never_last = |v: &Option<u64>| v.unwrap_or(u64::MAX);
            let ms = |v: Option<u64>| v.map_or("never".to_string(), |v| format!("{v} ms"));
            let mut first: Vec<Option<u64>> = self.restarts.iter().map(|r| r.first_ok_ms).collect();
            first.sort_unstable_by_key(never_last);
            let every = self.restarts.iter().map(|r| r.all_nodes_ms).max_by_key(never_last).flatten();
            writeln!(
                f,
                "whole-cluster restarts ×{}: first ok after median {}, max {}; every node served after max {}",
                first.len(),
                ms(first[first.len() / 2]),
                ms(first[first.len() - 1]),
                ms(every),
            )?;
        }
        for c in &self.checks {
            let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            writeln!(
                f,
                "checker {}: {}{}",
                c.checker,
                if c.valid { "valid" } else { "INVALID" },
                if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
            )?;
            if let Some(l) = &c.lateness {
                writeln!(
                    f,
                    "  alarm lateness (fired - due), {} alarms: p50 {} ms, p99 {} ms, max {} ms",
                    l.alarms, l.p50_ms, l.p99_ms, l.max_ms
                )?;
            }
        }
        writeln!(f, "anomalies: {}", self.anomalies)?;
        writeln!(f, "run directory: {}", self.run_dir)?;
        writeln!(f, "replay: {}", self.replay)?;
        if self.passed { writeln!(f, "PASSED") } else { writeln!(f, "FAILED: {}", self.reasons.join("; ")) }
    }
}
