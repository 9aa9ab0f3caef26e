//! Histories: what clients asked the cluster to do and what they heard back.
//!
//! A history is a JSON-lines file, one event per line, in time order:
//!
//! ```text
//! {"process":0,"type":"invoke","f":"write","key":"k1","value":3,"time":1000}
//! {"process":0,"type":"ok","f":"write","key":"k1","value":3,"time":2500}
//! {"process":1,"type":"invoke","f":"read","key":"k1","value":null,"time":2600}
//! {"process":1,"type":"ok","f":"read","key":"k1","value":3,"time":3100}
//! ```
//!
//! * `process`: the client that issued the operation. One process has at most one operation in
//!   flight. A process whose operation ended in `info` is never used again: a fresh process id
//!   takes over, as in Jepsen.
//! * `type`: `invoke` (the request is sent), then one completion: `ok` (it happened), `fail` (it
//!   certainly did not happen) or `info` (unknown: a timeout or a lost connection). An operation
//!   still in flight at the end of the history counts as `info`.
//! * `f` and `value`, by workload:
//!
//!   | `f` | invoke `value` | `ok` `value` |
//!   |---|---|---|
//!   | `read` | `null` | the integer read, `null` when the key is absent (a counter reads `null` as 0) |
//!   | `write` | the integer written | `null` or the same integer |
//!   | `cas` | `[expected, new]`, `expected` `null` = expect absent | `null` or the same pair |
//!   | `add` | the amount added to the counter `key` | `null` or the same amount |
//!   | `set_add` | the integer element added to the set `key` | `null` or the same element |
//!   | `set_read` | `null` | the array of elements in the set `key` |
//!   | `alarm_set` | `{"note": n, "ms": m, "unix_ms": t}`: an alarm on `key`, due `m` ms after the client's wall clock read `t` (unix ms), that records the integer `n` when it fires | `null` or the same object |
//!   | `alarm_read` | `null` | the alarms of `key` that fired: `[{"id", "note", "due_ms", "fired_ms", "times"}]`, with the due and fire times on the nodes' wall clock (unix ms) and how many times the alarm's action ran |
//!   | `restart` | see below | |
//!
//!   The value of a `fail` or `info` completion is not interpreted.
//! * `time`: nanoseconds since the start of the run. Events appear in non-decreasing time order.
//!   Operation `a` precedes `b` in real time only when `a` completed strictly before `b` was
//!   invoked; equal times count as concurrent.
//! * Restart marker: `{"process":-1,"type":"info","f":"restart","key":"","value":null,"time":T}`
//!   records that the whole cluster was stopped and started again at time `T`. It is not an
//!   operation; the durability checker uses it to tell reads taken after a restart. Process `-1`
//!   is reserved for markers.
//!
//! Fields other than these six are ignored. Each key is used by one workload: registers (`read`,
//! `write`, `cas`), counters (`add`, `read`), sets (`set_add`, `set_read`) or alarms
//! (`alarm_set`, `alarm_read`). A key with only
//! `read`s is a register, unless the history has counter keys and no register key: then it is a
//! counter that was never added to.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

/// Process id reserved for markers such as `restart`.
pub const MARKER_PROCESS: i64 = -1;

/// What an event records: the start of an operation or how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the request.
    Invoke,
    /// The operation happened.
    Ok,
    /// The operation certainly did not happen.
    Fail,
    /// The outcome is unknown (timeout, connection lost). Also the type of markers.
    Info,
}

/// The operation an event belongs to (Jepsen's `:f`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Read a register or a counter.
    Read,
    /// Write an integer to a register.
    Write,
    /// Compare-and-set a register.
    Cas,
    /// Add an amount to a counter.
    Add,
    /// Add an element to a set.
    SetAdd,
    /// Read a whole set.
    SetRead,
    /// Schedule an alarm.
    AlarmSet,
    /// Read the alarms that fired.
    AlarmRead,
    /// Marker: the whole cluster restarted (not an operation).
    Restart,
}

impl Function {
    /// The name used in the history format.
    pub fn name(self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
            Function::Add => "add",
            Function::SetAdd => "set_add",
            Function::SetRead => "set_read",
            Function::AlarmSet => "alarm_set",
            Function::AlarmRead => "alarm_read",
            Function::Restart => "restart",
        }
    }
}

/// One line of a history, exactly as written in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub process: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: Function,
    pub key: String,
    pub value: serde_json::Value,
    /// Nanoseconds since the start of the run.
    pub time: u64,
}

impl Event {
    pub fn new(
        process: i64,
        kind: EventType,
        f: Function,
        key: impl Into<String>,
        value: serde_json::Value,
        time: u64,
    ) -> Self {
        Event { process, kind, f, key: key.into(), value, time }
    }

    /// The marker for a whole-cluster restart at `time`.
    pub fn restart(time: u64) -> Self {
        Event::new(MARKER_PROCESS, EventType::Info, Function::Restart, "", serde_json::Value::Null, time)
    }

    /// The event as one JSON line, without the newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may have happened at any time after its invoke, or never. Also operations still
    /// in flight when the history ends.
    Info,
}

/// A value carried by an operation, interpreted according to its `f`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// `null`: a read's argument, an absent key.
    Null,
    /// An integer written, read, added, or a set element.
    Int(i64),
    /// A `cas` argument `[expected, new]`; `expected: None` expects the key to be absent.
    Cas { expected: Option<i64>, new: i64 },
    /// The elements returned by a `set_read`.
    Elements(Vec<i64>),
    /// An `alarm_set` argument.
    Alarm(AlarmRequest),
    /// The alarms an `alarm_read` found fired.
    Fired(Vec<FiredAlarm>),
}

/// An alarm asked for: due `ms` after `unix_ms`, the client's wall clock when it asked; when it
/// fires it records `note`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRequest {
    pub note: i64,
    pub ms: u64,
    pub unix_ms: u64,
}

/// One alarm that fired, as its actor recorded it: due at `due_ms`, fired at `fired_ms` (the
/// nodes' wall clock, unix ms), its action run `times` times.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiredAlarm {
    pub id: String,
    pub note: i64,
    pub due_ms: u64,
    pub fired_ms: u64,
    pub times: u32,
}

impl Value {
    /// The value in the history format.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(v) => (*v).into(),
            Value::Cas { expected, new } => serde_json::json!([expected, new]),
            Value::Elements(elements) => serde_json::json!(elements),
            Value::Alarm(request) => serde_json::to_value(request).expect("an alarm request serializes"),
            Value::Fired(fired) => serde_json::to_value(fired).expect("fired alarms serialize"),
        }
    }

    /// The integer, for `Int`; `None` for `Null` and anything else.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// An invoke paired with its completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub process: u64,
    pub f: Function,
    pub key: String,
    /// The value of the invoke event.
    pub invoke_value: Value,
    /// The value of an `ok` completion (a read's result; mutations echo their argument or carry
    /// `Null`); `None` for `fail`, `info` and operations still in flight.
    pub result_value: Option<Value>,
    pub outcome: Outcome,
    pub invoke_time: u64,
    /// When the client heard the outcome; `None` for `info` and in-flight operations, which are
    /// open-ended: they may take effect at any time after their invoke.
    pub complete_time: Option<u64>,
    /// Index of the invoke event in [`History::events`].
    pub invoke_event: usize,
    /// Index of the completion event in [`History::events`]; `None` when the history ends with the
    /// operation in flight.
    pub complete_event: Option<usize>,
}

/// Elements of a set read shown by `Op`'s `Display`.
const DISPLAY_ELEMENTS_MAX: usize = 10;

impl fmt::Display for Op {
    /// `process 3 write k1 5: ok`, `process 1 read k1: ok 5`, `process 2 cas k1 [0,1]: info`,
    /// `process 4 alarm_set a0 note 9 in 1200 ms: ok`, `process 5 alarm_read a0: ok 2 fired [9,3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} {} {}", self.process, self.f.name(), self.key)?;
        match &self.invoke_value {
            Value::Null => {}
            Value::Alarm(request) => write!(f, " note {} in {} ms", request.note, request.ms)?,
            value => write!(f, " {value}")?,
        }
        match (self.outcome, &self.result_value, self.complete_event) {
            (Outcome::Ok, Some(Value::Fired(fired)), _) => {
                let shown: Vec<String> =
                    fired.iter().take(DISPLAY_ELEMENTS_MAX).map(|a| a.note.to_string()).collect();
                let more = if fired.len() > DISPLAY_ELEMENTS_MAX { ",..." } else { "" };
                write!(f, ": ok {} fired [{}{more}]", fired.len(), shown.join(","))
            }
            (Outcome::Ok, Some(Value::Elements(elements)), _) if elements.len() > DISPLAY_ELEMENTS_MAX => {
                let shown: Vec<String> =
                    elements[..DISPLAY_ELEMENTS_MAX].iter().map(i64::to_string).collect();
                write!(f, ": ok [{},... {} elements]", shown.join(","), elements.len())
            }
            (Outcome::Ok, Some(result), _) if matches!(self.f, Function::Read | Function::SetRead) => {
                write!(f, ": ok {result}")
            }
            (Outcome::Ok, _, _) => write!(f, ": ok"),
            (Outcome::Fail, _, _) => write!(f, ": fail"),
            (Outcome::Info, _, Some(_)) => write!(f, ": info"),
            (Outcome::Info, _, None) => write!(f, ": still in flight"),
        }
    }
}

/// Which workload a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `read`, `write`, `cas`.
    Register,
    /// `add`, `read`.
    Counter,
    /// `set_add`, `set_read`.
    Set,
    /// `alarm_set`, `alarm_read`.
    Alarm,
}

/// Why a history could not be read. Every variant names the 1-based line at fault; retrying does
/// not help, the file must be fixed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: cannot read: {cause}")]
    Read { line: usize, cause: io::Error },
    #[error("line {line}, column {column}: malformed event: {message}")]
    Malformed { line: usize, column: usize, message: String },
    #[error("line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

impl HistoryError {
    /// The 1-based line at fault.
    pub fn line(&self) -> usize {
        match self {
            HistoryError::Read { line, .. }
            | HistoryError::Malformed { line, .. }
            | HistoryError::Invalid { line, .. } => *line,
        }
    }
}

/// A validated history: its events, and its operations paired up.
#[derive(Clone, Debug, Default)]
pub struct History {
    events: Vec<Event>,
    /// 1-based line of each event (blank lines are skipped, so lines and indexes differ).
    lines: Vec<usize>,
    ops: Vec<Op>,
    /// Indexes of the restart markers in `events`.
    restarts: Vec<usize>,
    key_kinds: BTreeMap<String, KeyKind>,
}

impl History {
    /// Reads a JSON-lines history and validates it. Blank lines are skipped.
    pub fn from_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        for (index, text) in reader.lines().enumerate() {
            let line = index + 1;
            let text = text.map_err(|cause| HistoryError::Read { line, cause })?;
            if text.trim().is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(&text).map_err(|e| malformed(line, &e))?;
            events.push(event);
            lines.push(line);
        }
        History::build(events, lines)
    }

    /// Validates events built in memory; event `i` is reported as line `i + 1`.
    pub fn from_events(events: Vec<Event>) -> Result<History, HistoryError> {
        let lines = (1..=events.len()).collect();
        History::build(events, lines)
    }

    /// Writes the history as JSON lines.
    pub fn write_jsonl(&self, out: impl Write) -> io::Result<()> {
        let mut writer = HistoryWriter::new(out);
        for event in &self.events {
            writer.write(event)?;
        }
        writer.flush()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The 1-based line of event `index` in the file it was read from.
    pub fn line(&self, index: usize) -> usize {
        self.lines[index]
    }

    /// Operations in invoke order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Indexes (in [`History::events`]) of the restart markers, in time order.
    pub fn restarts(&self) -> &[usize] {
        &self.restarts
    }

    pub fn key_kind(&self, key: &str) -> Option<KeyKind> {
        self.key_kinds.get(key).copied()
    }

    /// The keys used by one workload, sorted.
    pub fn keys(&self, kind: KeyKind) -> impl Iterator<Item = &str> {
        self.key_kinds.iter().filter(move |(_, k)| **k == kind).map(|(key, _)| key.as_str())
    }

    /// The events of an operation that are at or before `time_max`: its invoke, and its completion
    /// when there is one by then. Used to show an operation as a witness.
    pub fn op_events(&self, op: &Op, time_max: Option<u64>) -> Vec<usize> {
        let mut events = vec![op.invoke_event];
        if let Some(complete) = op.complete_event
            && time_max.is_none_or(|t| self.events[complete].time <= t)
        {
            events.push(complete);
        }
        events
    }

    fn build(events: Vec<Event>, lines: Vec<usize>) -> Result<History, HistoryError> {
        assert_eq!(events.len(), lines.len(), "one line number per event");
        let mut builder = Builder::default();
        for (index, event) in events.iter().enumerate() {
            builder
                .push(index, lines[index], event)
                .map_err(|reason| HistoryError::Invalid { line: lines[index], reason })?;
        }
        let Builder { ops, restarts, key_kinds, .. } = builder;
        // A key with only reads is a register, unless the history is a counter history: it has
        // counter keys and no register key (a counter nobody added to yet reads 0, which no
        // register could).
        let has = |kind| key_kinds.values().any(|(k, _)| *k == Some(kind));
        let read_only = if has(KeyKind::Counter) && !has(KeyKind::Register) {
            KeyKind::Counter
        } else {
            KeyKind::Register
        };
        let key_kinds =
            key_kinds.into_iter().map(|(key, (kind, _))| (key, kind.unwrap_or(read_only))).collect();
        Ok(History { events, lines, ops, restarts, key_kinds })
    }
}

fn malformed(line: usize, error: &serde_json::Error) -> HistoryError {
    // serde_json appends " at line 1 column N" (relative to the one-line string): drop it, the
    // column is reported separately and the line is the file's.
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
    HistoryError::Malformed { line, column: error.column(), message }
}

/// What one process is doing while the history is being read.
enum ProcessState {
    /// Index in `ops` of the operation in flight.
    InFlight(usize),
    Idle,
    /// Ended with `info` on this line: never used again.
    Ended(usize),
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    /// Line of each op's invoke.
    invoke_lines: Vec<usize>,
    restarts: Vec<usize>,
    processes: HashMap<i64, ProcessState>,
    /// Workload of each key (`None` while only reads were seen) and the line that decided it.
    key_kinds: BTreeMap<String, (Option<KeyKind>, usize)>,
    time_last: u64,
}

impl Builder {
    /// Adds event `index`, read from `line`; an error is the reason the event is invalid.
    fn push(&mut self, index: usize, line: usize, event: &Event) -> Result<(), String> {
        if event.time < self.time_last {
            return Err(format!(
                "time {} is earlier than {} on an earlier line; events must be in time order",
                event.time, self.time_last
            ));
        }
        self.time_last = event.time;

        if event.f == Function::Restart {
            if event.process != MARKER_PROCESS
                || event.kind != EventType::Info
                || !event.key.is_empty()
                || !event.value.is_null()
            {
                return Err(format!(
                    "a restart marker must be {{\"process\":{MARKER_PROCESS},\"type\":\"info\",\"f\":\"restart\",\
                     \"key\":\"\",\"value\":null,\"time\":T}}"
                ));
            }
            self.restarts.push(index);
            return Ok(());
        }
        let process = u64::try_from(event.process).map_err(|_| {
            format!("process {} is negative; negative ids are reserved for markers", event.process)
        })?;

        match event.kind {
            EventType::Invoke => self.invoke(index, line, process, event),
            EventType::Ok | EventType::Fail | EventType::Info => self.complete(index, line, process, event),
        }
    }

    fn invoke(&mut self, index: usize, line: usize, process: u64, event: &Event) -> Result<(), String> {
        match self.processes.get(&event.process) {
            Some(ProcessState::InFlight(op)) => {
                return Err(format!(
                    "process {process} invokes {} while its {} invoked on line {} is still in flight",
                    event.f.name(),
                    self.ops[*op].f.name(),
                    self.invoke_lines[*op]
                ));
            }
            Some(ProcessState::Ended(at)) => return Err(ended(process, *at)),
            Some(ProcessState::Idle) | None => {}
        }
        self.classify_key(line, event)?;
        let invoke_value = parse_invoke_value(event.f, &event.value)?;
        self.processes.insert(event.process, ProcessState::InFlight(self.ops.len()));
        self.invoke_lines.push(line);
        self.ops.push(Op {
            process,
            f: event.f,
            key: event.key.clone(),
            invoke_value,
            result_value: None,
            outcome: Outcome::Info,
            invoke_time: event.time,
            complete_time: None,
            invoke_event: index,
            complete_event: None,
        });
        Ok(())
    }

    fn complete(&mut self, index: usize, line: usize, process: u64, event: &Event) -> Result<(), String> {
        let op_index = match self.processes.get(&event.process) {
            Some(ProcessState::InFlight(op)) => *op,
            Some(ProcessState::Ended(at)) => return Err(ended(process, *at)),
            Some(ProcessState::Idle) | None => {
                return Err(format!(
                    "{} of {} for process {process}, which has no operation in flight",
                    type_name(event.kind),
                    event.f.name()
                ));
            }
        };
        let op = &mut self.ops[op_index];
        if op.f != event.f || op.key != event.key {
            return Err(format!(
                "{} of {} {:?} for process {process}, whose operation in flight is {} {:?}",
                type_name(event.kind),
                event.f.name(),
                event.key,
                op.f.name(),
                op.key
            ));
        }
        op.complete_event = Some(index);
        match event.kind {
            EventType::Ok => {
                op.outcome = Outcome::Ok;
                op.complete_time = Some(event.time);
                op.result_value = Some(parse_ok_value(event.f, &event.value, &op.invoke_value)?);
                self.processes.insert(event.process, ProcessState::Idle);
            }
            EventType::Fail => {
                op.outcome = Outcome::Fail;
                op.complete_time = Some(event.time);
                self.processes.insert(event.process, ProcessState::Idle);
            }
            EventType::Info => {
                op.outcome = Outcome::Info;
                self.processes.insert(event.process, ProcessState::Ended(line));
            }
            EventType::Invoke => unreachable!("invokes are handled by Builder::invoke"),
        }
        Ok(())
    }

    fn classify_key(&mut self, line: usize, event: &Event) -> Result<(), String> {
        let kind = match event.f {
            Function::Read => None,
            Function::Write | Function::Cas => Some(KeyKind::Register),
            Function::Add => Some(KeyKind::Counter),
            Function::SetAdd | Function::SetRead => Some(KeyKind::Set),
            Function::AlarmSet | Function::AlarmRead => Some(KeyKind::Alarm),
            Function::Restart => unreachable!("markers are not operations"),
        };
        let Some((known, known_line)) = self.key_kinds.get(&event.key).copied() else {
            self.key_kinds.insert(event.key.clone(), (kind, line));
            return Ok(());
        };
        match (known, kind) {
            (Some(known), Some(kind)) if known != kind => Err(format!(
                "key {:?} is used as {} on line {known_line} and here as {}; each key belongs to one workload",
                event.key,
                kind_phrase(known),
                kind_phrase(kind)
            )),
            (Some(known @ (KeyKind::Set | KeyKind::Alarm)), None) => Err(format!(
                "key {:?} is {} (line {known_line}): read it with {}",
                event.key,
                kind_phrase(known),
                if known == KeyKind::Set { "set_read" } else { "alarm_read" }
            )),
            (None, Some(kind @ (KeyKind::Set | KeyKind::Alarm))) => Err(format!(
                "key {:?} was read with read on line {known_line}, so it cannot be {}",
                event.key,
                kind_phrase(kind)
            )),
            (None, Some(_)) => {
                self.key_kinds.insert(event.key.clone(), (kind, line));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn ended(process: u64, info_line: usize) -> String {
    format!(
        "process {process} already ended with info on line {info_line}; after an info a fresh process id \
         must take over"
    )
}

fn type_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

/// "a set", "an alarm key": for messages.
fn kind_phrase(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Register => "a register",
        KeyKind::Counter => "a counter",
        KeyKind::Set => "a set",
        KeyKind::Alarm => "an alarm key",
    }
}

fn parse_invoke_value(f: Function, value: &serde_json::Value) -> Result<Value, String> {
    match f {
        Function::Read | Function::SetRead | Function::AlarmRead => {
            if value.is_null() {
                Ok(Value::Null)
            } else {
                Err(format!("{} is invoked with value null, not {value}", f.name()))
            }
        }
        Function::Write | Function::Add | Function::SetAdd => value
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("{} is invoked with an integer value, not {value}", f.name())),
        Function::Cas => parse_cas(value).ok_or_else(|| {
            format!("cas is invoked with [expected, new]: integers, expected may be null; not {value}")
        }),
        Function::AlarmSet => AlarmRequest::deserialize(value).map(Value::Alarm).map_err(|e| {
            format!("alarm_set is invoked with {{\"note\": n, \"ms\": m, \"unix_ms\": t}} (integers), not {value}: {e}")
        }),
        Function::Restart => unreachable!("markers are not operations"),
    }
}

fn parse_cas(value: &serde_json::Value) -> Option<Value> {
    let [expected, new] = value.as_array()?.as_slice() else { return None };
    let expected = if expected.is_null() { None } else { Some(expected.as_i64()?) };
    Some(Value::Cas { expected, new: new.as_i64()? })
}

fn parse_ok_value(f: Function, value: &serde_json::Value, invoke: &Value) -> Result<Value, String> {
    match f {
        Function::Read => match value {
            serde_json::Value::Null => Ok(Value::Null),
            _ => value
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("an ok read carries the integer read or null, not {value}")),
        },
        Function::SetRead => value
            .as_array()
            .and_then(|elements| elements.iter().map(serde_json::Value::as_i64).collect::<Option<Vec<_>>>())
            .map(Value::Elements)
            .ok_or_else(|| format!("an ok set_read carries an array of integers, not {value}")),
        Function::AlarmRead => Vec::<FiredAlarm>::deserialize(value).map(Value::Fired).map_err(|e| {
            format!(
                "an ok alarm_read carries an array of {{\"id\", \"note\", \"due_ms\", \"fired_ms\", \"times\"}}, \
                 not {value}: {e}"
            )
        }),
        Function::Write | Function::Add | Function::SetAdd | Function::Cas | Function::AlarmSet => {
            if value.is_null() {
                Ok(Value::Null)
            } else if *value == invoke.to_json() {
                Ok(invoke.clone())
            } else {
                Err(format!("an ok {} carries null or its invoke value {invoke}, not {value}", f.name()))
            }
        }
        Function::Restart => unreachable!("markers are not operations"),
    }
}

/// Writes events as JSON lines, one per line.
pub struct HistoryWriter<W: Write> {
    out: W,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(out: W) -> Self {
        HistoryWriter { out }
    }

    /// Writes one event and its newline.
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
#[path = "history_test.rs"]
mod tests;
