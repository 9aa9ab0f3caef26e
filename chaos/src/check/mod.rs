//! Checkers: each reads a [`History`] and says whether the cluster kept one promise.
//!
//! | checker | applies to | promise |
//! |---|---|---|
//! | [`Checker::Linearizability`] | register keys (`read`, `write`, `cas`) | every key behaves like one register changed atomically at an instant between invoke and completion |
//! | [`Checker::Durability`] | register keys, when the history has restart markers | the same, across whole-cluster restarts: no acknowledged write is lost |
//! | [`Checker::CounterBounds`] | counter keys (`add`, `read`) | every read lies between the acknowledged and the attempted increments |
//! | [`Checker::SetCompleteness`] | set keys (`set_add`, `set_read`) | the final read holds every acknowledged element, and no read holds an element never added, nor one more often than it was added |
//! | [`Checker::AlarmDelivery`] | alarm keys (`alarm_set`, `alarm_read`) | every acknowledged alarm fires, once, and no alarm fires before it is due or without having been asked for |
//!
//! Each returns a [`CheckResult`]; an [`Anomaly`] carries the few original events that show it.
//! The alarm checker also measures how late alarms fired ([`alarms::Lateness`]), for information.

use std::fmt;

use serde::Serialize;

use crate::history::{Event, History, KeyKind};

pub mod alarms;
pub mod counter;
pub mod durability;
pub mod linearizable;
pub mod set;

/// What one checker found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// True when no anomaly was found. A key the search could not decide is an anomaly
    /// ([`AnomalyKind::Undecided`]): the history is not proven valid.
    pub valid: bool,
    pub anomalies: Vec<Anomaly>,
    /// How late alarms fired ([`Checker::AlarmDelivery`] only): information, not a verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lateness: Option<alarms::Lateness>,
}

impl CheckResult {
    pub fn from_anomalies(anomalies: Vec<Anomaly>) -> Self {
        CheckResult { valid: anomalies.is_empty(), anomalies, lateness: None }
    }
}

/// The kinds of broken promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// Some operation on a register cannot be placed in any order that respects real time.
    NotLinearizable,
    /// Like `NotLinearizable`, for an operation that started after a whole-cluster restart while
    /// the ops that contradict it were acknowledged before it: a write was lost by the restart.
    LostAcrossRestart,
    /// The linearizability search gave up (too many configurations): neither proven nor refuted.
    Undecided,
    /// A counter read more than every increment that could have been applied.
    CounterAboveAttempted,
    /// A counter read less than the increments acknowledged before the read began.
    CounterBelowAcknowledged,
    /// An acknowledged element is missing from the final read of its set.
    SetElementLost,
    /// A set read holds an element that was never added (or whose add started after the read).
    SetElementUnexpected,
    /// A set read holds an element more often than it was added: an add was applied twice.
    SetElementDuplicated,
    /// A set has acknowledged adds but no `ok` `set_read`: completeness cannot be checked.
    SetNoFinalRead,
    /// An acknowledged alarm, long past due, is missing from the final read of its key.
    AlarmLost,
    /// A read holds an alarm nobody asked for (or whose request failed, or started after the read).
    AlarmUnexpected,
    /// An alarm's action ran more than once, or one request fired several alarms.
    AlarmFiredTwice,
    /// An alarm fired before its due time.
    AlarmFiredEarly,
    /// An alarm was due before the delay its request asked for had passed.
    AlarmDueEarly,
    /// An alarm key has acknowledged alarms but no `ok` `alarm_read`: delivery cannot be checked.
    AlarmNoFinalRead,
}

impl AnomalyKind {
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::NotLinearizable => "not-linearizable",
            AnomalyKind::LostAcrossRestart => "lost-across-restart",
            AnomalyKind::Undecided => "undecided",
            AnomalyKind::CounterAboveAttempted => "counter-above-attempted",
            AnomalyKind::CounterBelowAcknowledged => "counter-below-acknowledged",
            AnomalyKind::SetElementLost => "set-element-lost",
            AnomalyKind::SetElementUnexpected => "set-element-unexpected",
            AnomalyKind::SetElementDuplicated => "set-element-duplicated",
            AnomalyKind::SetNoFinalRead => "set-no-final-read",
            AnomalyKind::AlarmLost => "alarm-lost",
            AnomalyKind::AlarmUnexpected => "alarm-unexpected",
            AnomalyKind::AlarmFiredTwice => "alarm-fired-twice",
            AnomalyKind::AlarmFiredEarly => "alarm-fired-early",
            AnomalyKind::AlarmDueEarly => "alarm-due-early",
            AnomalyKind::AlarmNoFinalRead => "alarm-no-final-read",
        }
    }
}

/// One broken promise and the evidence for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub key: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The 1-based history lines of `events`, same order.
    pub lines: Vec<usize>,
    /// The original events that show the anomaly, in history order. Written out as JSON lines they
    /// form a history of their own that the same checker rejects.
    pub events: Vec<Event>,
}

impl Anomaly {
    /// An anomaly whose evidence is the history events at `event_indexes` (any order, duplicates
    /// allowed).
    pub fn new(
        history: &History,
        kind: AnomalyKind,
        key: &str,
        message: String,
        mut event_indexes: Vec<usize>,
    ) -> Self {
        event_indexes.sort_unstable();
        event_indexes.dedup();
        Anomaly {
            kind,
            key: key.to_string(),
            message,
            lines: event_indexes.iter().map(|&i| history.line(i)).collect(),
            events: event_indexes.iter().map(|&i| history.events()[i].clone()).collect(),
        }
    }
}

/// The checkers this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checker {
    Linearizability,
    Durability,
    CounterBounds,
    SetCompleteness,
    AlarmDelivery,
}

impl Checker {
    pub fn name(self) -> &'static str {
        match self {
            Checker::Linearizability => "linearizability",
            Checker::Durability => "durability",
            Checker::CounterBounds => "counter-bounds",
            Checker::SetCompleteness => "set-completeness",
            Checker::AlarmDelivery => "alarm-delivery",
        }
    }

    pub fn run(self, history: &History) -> CheckResult {
        match self {
            Checker::Linearizability => linearizable::check(history),
            Checker::Durability => durability::check(history),
            Checker::CounterBounds => counter::check(history),
            Checker::SetCompleteness => set::check(history),
            Checker::AlarmDelivery => alarms::check(history),
        }
    }

    /// The checkers that apply to a history, chosen from the workloads of its keys. With restart
    /// markers, [`Checker::Durability`] replaces [`Checker::Linearizability`]: it runs the same
    /// search and also labels the anomalies a restart caused.
    pub fn applicable(history: &History) -> Vec<Checker> {
        let mut checkers = Vec::new();
        if history.keys(KeyKind::Register).next().is_some() {
            checkers.push(if history.restarts().is_empty() {
                Checker::Linearizability
            } else {
                Checker::Durability
            });
        }
        if history.keys(KeyKind::Counter).next().is_some() {
            checkers.push(Checker::CounterBounds);
        }
        if history.keys(KeyKind::Set).next().is_some() {
            checkers.push(Checker::SetCompleteness);
        }
        if history.keys(KeyKind::Alarm).next().is_some() {
            checkers.push(Checker::AlarmDelivery);
        }
        checkers
    }
}

/// The verdict of every applicable checker on one history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// True when every checker found the history valid.
    pub valid: bool,
    pub checks: Vec<CheckerReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckerReport {
    pub checker: Checker,
    #[serde(flatten)]
    pub result: CheckResult,
}

/// Runs every applicable checker (see [`Checker::applicable`]).
pub fn check(history: &History) -> Report {
    let checks: Vec<CheckerReport> = Checker::applicable(history)
        .into_iter()
        .map(|checker| {
            tracing::debug!(checker = checker.name(), "checking");
            CheckerReport { checker, result: checker.run(history) }
        })
        .collect();
    Report { valid: checks.iter().all(|c| c.result.valid), checks }
}

/// Anomalies shown per checker in the text report; `--json` shows all.
const TEXT_ANOMALIES_MAX: usize = 20;
/// Events shown per anomaly in the text report.
const TEXT_EVENTS_MAX: usize = 40;

impl fmt::Display for Report {
    /// `valid` or `invalid` on the first line, then one line per checker and, under it, each
    /// anomaly with its evidence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", if self.valid { "valid" } else { "invalid" })?;
        if self.checks.is_empty() {
            writeln!(f, "no operations to check")?;
        }
        for check in &self.checks {
            let anomalies = &check.result.anomalies;
            match anomalies.len() {
                0 => writeln!(f, "{}: valid", check.checker.name())?,
                1 => writeln!(f, "{}: invalid, 1 anomaly", check.checker.name())?,
                n => writeln!(f, "{}: invalid, {n} anomalies", check.checker.name())?,
            }
            if let Some(l) = &check.result.lateness {
                writeln!(
                    f,
                    "  lateness (fired - due) of {} alarms in the final reads: p50 {} ms, p99 {} ms, max {} ms",
                    l.alarms, l.p50_ms, l.p99_ms, l.max_ms
                )?;
            }
            for anomaly in anomalies.iter().take(TEXT_ANOMALIES_MAX) {
                writeln!(f, "  {} on key {:?}: {}", anomaly.kind.name(), anomaly.key, anomaly.message)?;
                for (line, event) in anomaly.lines.iter().zip(&anomaly.events).take(TEXT_EVENTS_MAX) {
                    writeln!(f, "    line {line}: {}", event.to_json_line())?;
                }
                if anomaly.events.len() > TEXT_EVENTS_MAX {
                    writeln!(
                        f,
                        "    ... {} more events (--json shows all)",
                        anomaly.events.len() - TEXT_EVENTS_MAX
                    )?;
                }
            }
            if anomalies.len() > TEXT_ANOMALIES_MAX {
                writeln!(
                    f,
                    "  ... {} more anomalies (--json shows all)",
                    anomalies.len() - TEXT_ANOMALIES_MAX
                )?;
            }
        }
        Ok(())
    }
}
