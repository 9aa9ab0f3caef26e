//! Alarm delivery: every alarm asked for fires once, and never before it is due.
//!
//! An alarm key takes `alarm_set` operations (value: the note the alarm records, the delay `ms`
//! and the client's wall clock `unix_ms` when it asked) and `alarm_read`s (value: every alarm
//! that fired, with its note, due time, fire time and how many times its action ran). The nodes
//! and the client read one machine's wall clock, so the client's `unix_ms` and the nodes' times
//! compare. The final read of a key is the `ok` `alarm_read` invoked last. Anomalies:
//!
//! * [`AnomalyKind::AlarmLost`]: an alarm acknowledged and due at least [`LATENESS_MAX`] before
//!   the final read was invoked is not in it. Its due time is taken as the latest the node can
//!   have set: when the acknowledgement arrived, plus `ms`. Evidence: the `alarm_set` and the
//!   final read.
//! * [`AnomalyKind::AlarmUnexpected`]: a read holds a note that no `alarm_set` (`ok`, `info` or
//!   in flight) invoked before the read completed asked for. Evidence: the first such read and
//!   every `alarm_set` of that note.
//! * [`AnomalyKind::AlarmFiredTwice`]: an alarm whose action ran more than once (`times` > 1),
//!   or a note fired by more alarms than there were `alarm_set`s of it that did not fail (one
//!   request applied twice). Evidence: the first such read and every `alarm_set` of the note.
//! * [`AnomalyKind::AlarmFiredEarly`]: an alarm fired before its due time (`fired_ms` <
//!   `due_ms`). Evidence: the first read showing it and the `alarm_set`s of its note.
//! * [`AnomalyKind::AlarmDueEarly`]: an alarm due before the delay asked for had passed: its
//!   `due_ms` is earlier than `unix_ms + ms` of every `alarm_set` of its note that could have
//!   scheduled it. With [`AnomalyKind::AlarmFiredEarly`], this holds the node to the caller's
//!   promise: not before `ms` after the call.
//! * [`AnomalyKind::AlarmNoFinalRead`]: a key with acknowledged alarms was never read.
//!
//! An `alarm_set` that ended `info` may have fired or not, but at most once. Besides its verdict,
//! the checker reports how late the alarms of the final reads fired ([`Lateness`]), for
//! information.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::check::{Anomaly, AnomalyKind, CheckResult};
use crate::history::{AlarmRequest, FiredAlarm, Function, History, KeyKind, Op, Outcome, Value};

/// How late an alarm may fire before a final read that misses it counts it lost. The `alarms`
/// workload reads only once every acknowledged alarm is this far past due.
pub const LATENESS_MAX: Duration = Duration::from_secs(5);

/// How late the alarms of the final reads fired (`fired_ms - due_ms`; an early one counts 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lateness {
    pub alarms: usize,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

impl Lateness {
    /// The lateness of `late_ms`, one value per alarm, any order.
    pub fn of(mut late_ms: Vec<u64>) -> Self {
        if late_ms.is_empty() {
            return Lateness::default();
        }
        late_ms.sort_unstable();
        let at = |q: f64| late_ms[((late_ms.len() - 1) as f64 * q).round() as usize];
        Lateness { alarms: late_ms.len(), p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// Checks every alarm key of `history`.
pub fn check(history: &History) -> CheckResult {
    let mut keys: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        if history.key_kind(&op.key) == Some(KeyKind::Alarm) {
            keys.entry(op.key.as_str()).or_default().push(op);
        }
    }
    let mut anomalies = Vec::new();
    let mut late_ms = Vec::new();
    for (key, ops) in keys {
        check_key(history, key, &ops, &mut anomalies, &mut late_ms);
    }
    CheckResult { lateness: Some(Lateness::of(late_ms)), ..CheckResult::from_anomalies(anomalies) }
}

/// One key's requests, and what is already reported on it (each anomaly shows once, at the first
/// read that shows it).
struct KeyCheck<'h> {
    history: &'h History,
    key: &'h str,
    /// Requests of each note, in invoke order.
    requests: HashMap<i64, Vec<&'h Op>>,
    unexpected: BTreeSet<i64>,
    twice: BTreeSet<i64>,
    /// Alarm ids.
    early: BTreeSet<String>,
    due_early: BTreeSet<String>,
    anomalies: Vec<Anomaly>,
}

fn check_key(
    history: &History,
    key: &str,
    ops: &[&Op],
    anomalies: &mut Vec<Anomaly>,
    late_ms: &mut Vec<u64>,
) {
    let mut requests: HashMap<i64, Vec<&Op>> = HashMap::new();
    for op in ops.iter().filter(|op| op.f == Function::AlarmSet) {
        requests.entry(request_of(op).note).or_default().push(op);
    }
    let reads: Vec<&Op> =
        ops.iter().filter(|op| op.f == Function::AlarmRead && op.outcome == Outcome::Ok).copied().collect();
    let mut check = KeyCheck {
        history,
        key,
        requests,
        unexpected: BTreeSet::new(),
        twice: BTreeSet::new(),
        early: BTreeSet::new(),
        due_early: BTreeSet::new(),
        anomalies: Vec::new(),
    };
    for read in &reads {
        let mut by_note: BTreeMap<i64, Vec<&FiredAlarm>> = BTreeMap::new();
        for alarm in fired_of(read) {
            by_note.entry(alarm.note).or_default().push(alarm);
        }
        for (note, alarms) in by_note {
            check.note(read, note, &alarms);
        }
    }
    match reads.last() {
        // The final read: invoked last (reads are in invoke order, so the last one).
        Some(last_read) => {
            late_ms.extend(fired_of(last_read).iter().map(|a| a.fired_ms.saturating_sub(a.due_ms)));
            check.final_read(last_read);
        }
        None => {
            let acknowledged =
                ops.iter().filter(|op| op.f == Function::AlarmSet && op.outcome == Outcome::Ok).count();
            if acknowledged > 0 {
                let message = format!(
                    "{acknowledged} acknowledged alarm{} but no ok alarm_read: delivery cannot be checked",
                    if acknowledged == 1 { "" } else { "s" }
                );
                let anomaly = Anomaly::new(history, AnomalyKind::AlarmNoFinalRead, key, message, Vec::new());
                check.anomalies.push(anomaly);
            }
        }
    }
    anomalies.append(&mut check.anomalies);
}

impl KeyCheck<'_> {
    fn push(&mut self, kind: AnomalyKind, message: String, events: Vec<usize>) {
        self.anomalies.push(Anomaly::new(self.history, kind, self.key, message, events));
    }

    /// The events of `read` and of every request of `note`: the evidence about one note.
    fn evidence(&self, read: &Op, note: i64) -> Vec<usize> {
        let note_requests = self.requests.get(&note).map(Vec::as_slice).unwrap_or(&[]);
        std::iter::once(read)
            .chain(note_requests.iter().copied())
            .flat_map(|op| self.history.op_events(op, None))
            .collect()
    }

    /// Checks the alarms of `note` that `read` found fired.
    fn note(&mut self, read: &Op, note: i64, alarms: &[&FiredAlarm]) {
        let note_requests = self.requests.get(&note).map(Vec::as_slice).unwrap_or(&[]);
        let read_complete = read.complete_time.expect("ok operations have a completion time");
        // The earliest due time a request that could have scheduled this alarm asked for.
        let asked_due_min = note_requests
            .iter()
            .filter(|request| request.outcome != Outcome::Fail && request.invoke_time <= read_complete)
            .map(|request| request_of(request))
            .map(|r| r.unix_ms.saturating_add(r.ms))
            .min();
        let Some(asked_due_min) = asked_due_min else {
            if self.unexpected.insert(note) {
                let message = format!(
                    "{read} holds note {note} (alarm {}), but no alarm_set of it that could have happened was \
                     invoked before the read completed ({} alarm_set{} of it in the whole history)",
                    alarms[0].id,
                    note_requests.len(),
                    if note_requests.len() == 1 { "" } else { "s" }
                );
                self.push(AnomalyKind::AlarmUnexpected, message, self.evidence(read, note));
            }
            return;
        };

        let attempted = note_requests.iter().filter(|request| request.outcome != Outcome::Fail).count();
        let repeated = alarms.iter().find(|alarm| alarm.times > 1);
        if (repeated.is_some() || alarms.len() > attempted) && self.twice.insert(note) {
            let message = match repeated {
                Some(alarm) => format!(
                    "{read} shows alarm {} (note {note}) ran its action {} times: an alarm fires once",
                    alarm.id, alarm.times
                ),
                None => {
                    let ids: Vec<&str> = alarms.iter().map(|a| a.id.as_str()).collect();
                    format!(
                        "{read} shows note {note} fired by {} alarms ({}), but {attempted} alarm_set{} of it did \
                         not fail: a request was applied more than once",
                        alarms.len(),
                        ids.join(", "),
                        if attempted == 1 { "" } else { "s" }
                    )
                }
            };
            self.push(AnomalyKind::AlarmFiredTwice, message, self.evidence(read, note));
        }

        for alarm in alarms {
            if alarm.fired_ms < alarm.due_ms && self.early.insert(alarm.id.clone()) {
                let message = format!(
                    "{read} shows alarm {} (note {note}) fired at {} ms, {} ms before it was due at {} ms",
                    alarm.id,
                    alarm.fired_ms,
                    alarm.due_ms - alarm.fired_ms,
                    alarm.due_ms
                );
                self.push(AnomalyKind::AlarmFiredEarly, message, self.evidence(read, note));
            }
            if alarm.due_ms < asked_due_min && self.due_early.insert(alarm.id.clone()) {
                let message = format!(
                    "{read} shows alarm {} (note {note}) due at {} ms, {} ms before the delay asked for had \
                     passed ({} ms at the earliest)",
                    alarm.id,
                    alarm.due_ms,
                    asked_due_min - alarm.due_ms,
                    asked_due_min
                );
                self.push(AnomalyKind::AlarmDueEarly, message, self.evidence(read, note));
            }
        }
    }

    /// Every acknowledged alarm long enough past due is in the final read.
    fn final_read(&mut self, last_read: &Op) {
        let fired_notes: BTreeSet<i64> = fired_of(last_read).iter().map(|a| a.note).collect();
        let lateness_max_ns = LATENESS_MAX.as_nanos() as u64;
        let mut lost: Vec<(i64, &Op, u64)> = self
            .requests
            .iter()
            .filter(|(note, _)| !fired_notes.contains(note))
            .filter_map(|(note, note_requests)| {
                note_requests.iter().find_map(|request| {
                    let due_latest = due_latest_ns(request)?;
                    (due_latest.saturating_add(lateness_max_ns) <= last_read.invoke_time)
                        .then_some((*note, *request, due_latest))
                })
            })
            .collect();
        lost.sort_by_key(|(_, request, _)| request.invoke_event);
        for (note, request, due_latest) in lost {
            let message = format!(
                "note {note} is not in the final read (process {} on line {}), but its alarm ({request}) was \
                 acknowledged and due at least {} ms before that read was invoked",
                last_read.process,
                self.history.line(last_read.invoke_event),
                (last_read.invoke_time - due_latest) / 1_000_000
            );
            let events = self
                .history
                .op_events(request, None)
                .into_iter()
                .chain(self.history.op_events(last_read, None))
                .collect();
            self.push(AnomalyKind::AlarmLost, message, events);
        }
    }
}

/// For an acknowledged `alarm_set`, the latest time (history ns) the node can have set its alarm
/// due: when the acknowledgement arrived, plus the delay. `None` for the others.
fn due_latest_ns(request: &Op) -> Option<u64> {
    if request.outcome != Outcome::Ok {
        return None;
    }
    let delay_ns = request_of(request).ms.saturating_mul(1_000_000);
    request.complete_time.map(|acknowledged| acknowledged.saturating_add(delay_ns))
}

/// The request of an `alarm_set`.
fn request_of(op: &Op) -> &AlarmRequest {
    match &op.invoke_value {
        Value::Alarm(request) => request,
        _ => unreachable!("validated: an alarm_set carries its request: {op:?}"),
    }
}

/// The alarms of an `ok` `alarm_read`.
fn fired_of(read: &Op) -> &[FiredAlarm] {
    match &read.result_value {
        Some(Value::Fired(fired)) => fired,
        _ => unreachable!("validated: an ok alarm_read carries the alarms fired: {read:?}"),
    }
}

#[cfg(test)]
#[path = "alarms_test.rs"]
mod tests;
