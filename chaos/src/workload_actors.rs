//! The `counter`, `set`, `queue` and `alarms` workloads: calls and queue sends to the stock actors
//! `counter`, `chatRoom`, `worker` and `reminder` through `mortar.v1.Actors`, run by the client
//! worker ([`crate::workload`]) like the `register` workload, through nodes picked at random (a
//! node that does not own the actor forwards the request to its owner).
//!
//! * `counter`: each task increments counters `c0`..`c{keys-1}` (60%) by a random amount of 1 to
//!   [`AMOUNT_MAX`] (`increment {"amount": n}`, recorded as `add n`) or reads one (40%,
//!   `getCount`, recorded as `read`). Checked for bounds ([`crate::check::counter`]).
//! * `set`: each task sends a message whose text is a fresh unique integer (the element) to a chat
//!   room (90%, `sendMessage {"sender": "mortar-chaos", "text": "17"}`, recorded as `set_add 17`)
//!   or reads a room's messages (10%, `getHistory {"limit": 1000}`, recorded as `set_read` of the
//!   texts). `keys` rooms are open at a time; a room retires after [`ROOM_ADDS_MAX`] sends (so that
//!   one `getHistory` always returns all of its messages) and a fresh one takes its slot. Checked
//!   for completeness ([`crate::check::set`]).
//! * `queue`: each task sends a job whose id is a fresh unique integer (the element) to the queue
//!   [`QUEUE`] of a `worker` (`Send`, body `{"id": "17", "work_ms": 12}`, recorded as `set_add 17`).
//!   Whether the send waits for the job to be handled, and how long the job works, follow from
//!   its id ([`job_of`]), so the history alone tells them. There are no reads while the workload
//!   runs. `keys` workers are open at a time, each retiring after [`WORKER_JOBS_MAX`] jobs. At the
//!   end the worker polls `processed` of every worker until its queue has drained (recorded as
//!   `set_read` of the ids handled, an id handled more than once listed twice). Checked for
//!   completeness ([`crate::check::set`]): every acknowledged job handled, no job handled that was
//!   never sent or whose send failed, none handled twice.
//! * `alarms`: each task asks a `reminder` for an alarm in [`ALARM_MS_MIN`] to [`ALARM_MS_MAX`] ms
//!   whose note is a fresh unique integer (`remindIn {"ms": 1200, "note": "17"}`, recorded as
//!   `alarm_set` with the note, the delay and the client's wall clock). `keys` reminders are open
//!   at a time, each retiring after [`REMINDER_ALARMS_MAX`] alarms. At the end the worker waits
//!   until every acknowledged alarm is [`LATENESS_MAX`] past due, then reads `fired` of every
//!   reminder (recorded as `alarm_read`). Checked for delivery ([`crate::check::alarms`]).
//!
//! After the workload stops (past the heal), the worker reads every counter, room, worker or
//! reminder once more ([`final_keys`]): the final reads the checkers compare against everything
//! acknowledged.
//!
//! Outcomes follow the actor service's contract (`proto/.../actors.proto`): `ok` when the node
//! answered; `fail` for a definite refusal (`NOT_FOUND`, `INVALID_ARGUMENT`, `FAILED_PRECONDITION`,
//! `RESOURCE_EXHAUSTED`, and `UNAVAILABLE` marked not applied); `info` for everything else
//! (`UNAVAILABLE` unmarked, `DEADLINE_EXCEEDED`, `INTERNAL`, the client timeout, a broken
//! connection). A `fail` add that did land shows up as a counter read above the attempted sum or
//! an unexpected set element: the harness holds the node to its "not applied" promise. A queue
//! send follows the same contract (`RESOURCE_EXHAUSTED` is a full queue); a waiting send whose
//! wait broke off (`UNAVAILABLE` unmarked) may still be handled, once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mortar_node::auth::AuthChannel as Channel;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{ActorCallRequest, ActorSendRequest};
use serde_json::json;

pub use crate::check::alarms::LATENESS_MAX;
use crate::history::{AlarmRequest, EventType, FiredAlarm, Function, Value};
use crate::rng::Rng;
use crate::run::Workload;
use crate::workload::{Completion, GARBAGE_ERROR_PREFIX, Planned};

/// The counter actor of the stock `mortar` binary.
pub const COUNTER_ACTOR: &str = "counter";
/// The chat room actor of the stock `mortar` binary.
pub const CHAT_ROOM_ACTOR: &str = "chatRoom";
/// The worker actor of the stock `mortar` binary: a durable queue and a run loop.
pub const WORKER_ACTOR: &str = "worker";
/// The worker's queue.
pub const QUEUE: &str = "jobs";
/// The reminder actor of the stock `mortar` binary: alarms.
pub const REMINDER_ACTOR: &str = "reminder";
/// gRPC metadata the node sets on an `UNAVAILABLE` status when the call was certainly not applied
/// (`mortar_node::actor::error::NOT_APPLIED_METADATA`).
pub const NOT_APPLIED_METADATA: &str = "mortar-not-applied";
/// Largest amount one increment adds (the smallest is 1).
pub const AMOUNT_MAX: u64 = 5;
/// Sender of every message the `set` workload sends.
pub const CHAT_SENDER: &str = "mortar-chaos";
/// Messages one `getHistory` asks for: the node's maximum (`CHAT_HISTORY_MAX`).
pub const ROOM_READ_LIMIT: usize = 1000;
/// Sends to one room before it retires. Below [`ROOM_READ_LIMIT`], so that a read returns every
/// message of the room, and a read that returns the whole limit shows more messages than sends.
pub const ROOM_ADDS_MAX: u32 = 900;
const _: () = assert!((ROOM_ADDS_MAX as usize) < ROOM_READ_LIMIT);
/// Entries the worker's `processed` and the reminder's `fired` list at most (the node's
/// `LISTED_MAX`).
pub const LISTED_MAX: usize = 100_000;
/// Jobs sent to one worker before it retires. Well below [`LISTED_MAX`], so that `processed`
/// lists every job, and its answer stays far below the 4 MiB a gRPC message may hold.
pub const WORKER_JOBS_MAX: u32 = 20_000;
/// Alarms asked of one reminder before it retires: `fired` answers about 100 bytes per alarm.
pub const REMINDER_ALARMS_MAX: u32 = 10_000;
const _: () = assert!((WORKER_JOBS_MAX as usize) < LISTED_MAX && (REMINDER_ALARMS_MAX as usize) < LISTED_MAX);
/// Shortest and longest delay of an alarm, in ms.
pub const ALARM_MS_MIN: u64 = 200;
pub const ALARM_MS_MAX: u64 = 3000;
const _: () = assert!(ALARM_MS_MIN <= ALARM_MS_MAX);
/// Jobs whose send waits until the job is handled, in percent.
pub const SEND_WAIT_PERCENT: u64 = 25;
/// Jobs that simulate work, in percent, and their longest work in ms (the node allows 1000).
pub const JOB_WORK_PERCENT: u64 = 20;
pub const JOB_WORK_MS_MAX: u64 = 30;
const _: () = assert!(SEND_WAIT_PERCENT <= 100 && JOB_WORK_PERCENT <= 100 && JOB_WORK_MS_MAX <= 1000);
/// Operation mix, in percent: counter reads (the rest increments) and set reads (the rest sends).
const COUNTER_READ_PERCENT: u64 = 40;
const SET_READ_PERCENT: u64 = 10;
const _: () = assert!(COUNTER_READ_PERCENT <= 100 && SET_READ_PERCENT <= 100);

/// The history key and actor key of counter `index`.
pub fn counter_key(index: u32) -> String {
    format!("c{index}")
}

/// The history key and actor key of chat room `index`.
pub fn room_key(index: u32) -> String {
    format!("s{index}")
}

/// The history key and actor key of worker `index`.
pub fn worker_key(index: u32) -> String {
    format!("w{index}")
}

/// The history key and actor key of reminder `index` (`a`: `r` names the register workload's keys).
pub fn reminder_key(index: u32) -> String {
    format!("a{index}")
}

/// The key of actor `index` of a workload that opens actors as it goes.
fn rotated_key(workload: Workload, index: u32) -> String {
    match workload {
        Workload::Set => room_key(index),
        Workload::Queue => worker_key(index),
        Workload::Alarms => reminder_key(index),
        Workload::Register | Workload::Counter => unreachable!("the {workload} workload opens no actors"),
    }
}

/// How a job is sent and handled, drawn from its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The send answers once the job is handled.
    pub wait: bool,
    /// Simulated work while the job is handled.
    pub work_ms: u64,
}

/// The spec of job `id`: the same id always gives the same spec.
pub fn job_of(id: i64) -> JobSpec {
    let mut rng = Rng::new(id as u64);
    let wait = rng.percent(SEND_WAIT_PERCENT);
    let work_ms = if rng.percent(JOB_WORK_PERCENT) { rng.between(1, JOB_WORK_MS_MAX) } else { 0 };
    JobSpec { wait, work_ms }
}

/// The wall clock in unix ms, as the nodes read it for alarms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What an actor call's status says about whether the call happened.
pub fn outcome_of(status: &tonic::Status) -> EventType {
    use tonic::Code;
    match status.code() {
        Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition | Code::ResourceExhausted => {
            EventType::Fail
        }
        Code::Unavailable if status.metadata().contains_key(NOT_APPLIED_METADATA) => EventType::Fail,
        _ => EventType::Info,
    }
}

/// One call to an actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorCall {
    pub actor: &'static str,
    pub key: String,
    pub action: &'static str,
    pub args_json: String,
}

/// One message for an actor's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSend {
    pub actor: &'static str,
    pub key: String,
    pub queue: &'static str,
    pub body_json: String,
    pub wait: bool,
}

/// What carries out a planned operation: an action call, or a queue send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Call(ActorCall),
    Send(QueueSend),
}

/// The request that carries out a planned operation of an actor workload.
pub fn request_of(workload: Workload, planned: &Planned) -> Request {
    let key = planned.key.clone();
    match (workload, planned.f, &planned.value) {
        (Workload::Queue, Function::SetAdd, Value::Int(id)) => {
            let job = job_of(*id);
            Request::Send(QueueSend {
                actor: WORKER_ACTOR,
                key,
                queue: QUEUE,
                body_json: json!({ "id": id.to_string(), "work_ms": job.work_ms }).to_string(),
                wait: job.wait,
            })
        }
        (Workload::Queue, Function::SetRead, Value::Null) => Request::Call(ActorCall {
            actor: WORKER_ACTOR,
            key,
            action: "processed",
            args_json: "null".into(),
        }),
        (Workload::Alarms, Function::AlarmSet, Value::Alarm(request)) => Request::Call(ActorCall {
            actor: REMINDER_ACTOR,
            key,
            action: "remindIn",
            args_json: json!({ "ms": request.ms, "note": request.note.to_string() }).to_string(),
        }),
        (Workload::Alarms, Function::AlarmRead, Value::Null) => {
            Request::Call(ActorCall { actor: REMINDER_ACTOR, key, action: "fired", args_json: "null".into() })
        }
        (Workload::Counter | Workload::Set, _, _) => Request::Call(call_of(planned)),
        (workload, f, value) => unreachable!("the {workload} workload never plans {} {value}", f.name()),
    }
}

/// The call that carries out a planned operation of the `counter` or `set` workload.
pub fn call_of(planned: &Planned) -> ActorCall {
    let key = planned.key.clone();
    match (planned.f, &planned.value) {
        (Function::Add, Value::Int(amount)) => ActorCall {
            actor: COUNTER_ACTOR,
            key,
            action: "increment",
            args_json: json!({ "amount": amount }).to_string(),
        },
        (Function::Read, Value::Null) => {
            ActorCall { actor: COUNTER_ACTOR, key, action: "getCount", args_json: "null".into() }
        }
        (Function::SetAdd, Value::Int(element)) => ActorCall {
            actor: CHAT_ROOM_ACTOR,
            key,
            action: "sendMessage",
            args_json: json!({ "sender": CHAT_SENDER, "text": element.to_string() }).to_string(),
        },
        (Function::SetRead, Value::Null) => ActorCall {
            actor: CHAT_ROOM_ACTOR,
            key,
            action: "getHistory",
            args_json: json!({ "limit": ROOM_READ_LIMIT }).to_string(),
        },
        (f, value) => unreachable!("the actor workloads never plan {} {value}", f.name()),
    }
}

fn ok(value: serde_json::Value) -> Completion {
    Completion { kind: EventType::Ok, value, error: None, known: None }
}

/// An answer this workload cannot make sense of: the outcome is unknown, and the run fails.
fn garbage(what: &str, result_json: &str) -> Completion {
    const SHOWN_BYTES_MAX: usize = 200;
    let mut shown = result_json.to_string();
    if shown.len() > SHOWN_BYTES_MAX {
        let mut end = SHOWN_BYTES_MAX;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push_str("...");
    }
    Completion {
        kind: EventType::Info,
        value: serde_json::Value::Null,
        error: Some(format!("{GARBAGE_ERROR_PREFIX}: {what}: {shown}")),
        known: None,
    }
}

/// The completion of an `ok` answer: `result_json` decoded into the history's value.
///
/// * `add`: the new count (an integer); recorded with the amount added.
/// * `read`: the count.
/// * `set_add`: the message's sequence number (an integer); recorded with the element.
/// * `set_read`: the messages; recorded as their texts parsed as integers, in the order read,
///   duplicates kept. A room holding [`ROOM_READ_LIMIT`] messages may hold more than the read
///   returned, more than were sent to it: `info`, with the error saying so.
/// * `set_read` of a worker (`queue`): `{"ids": [...], "duplicates": [...]}`; recorded as the ids
///   parsed as integers, then the duplicates again: an id handled twice is listed twice.
/// * `alarm_set`: the alarm's id (a string); recorded with the request.
/// * `alarm_read`: the alarms fired; recorded with their notes parsed as integers.
pub fn decode_ok(workload: Workload, planned: &Planned, result_json: &str) -> Completion {
    match (workload, planned.f) {
        (Workload::Queue, Function::SetRead) => return decode_processed(result_json),
        (Workload::Alarms, Function::AlarmSet) => {
            return match serde_json::from_str::<String>(result_json) {
                Ok(_) => ok(planned.value.to_json()),
                Err(_) => garbage("the alarm id is not a string", result_json),
            };
        }
        (Workload::Alarms, Function::AlarmRead) => return decode_fired(result_json),
        _ => {}
    }
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(result_json);
    match planned.f {
        Function::Add | Function::SetAdd => match parsed.ok().and_then(|v| v.as_i64()) {
            Some(_) => ok(planned.value.to_json()),
            None => garbage("the answer is not an integer", result_json),
        },
        Function::Read => match parsed.ok().and_then(|v| v.as_i64()) {
            Some(count) => ok(count.into()),
            None => garbage("the count is not an integer", result_json),
        },
        Function::SetRead => {
            let Some(messages) = parsed.ok().and_then(|v| v.as_array().cloned()) else {
                return garbage("the history is not an array", result_json);
            };
            let mut elements = Vec::with_capacity(messages.len());
            for message in &messages {
                match message.get("text").and_then(|t| t.as_str()).and_then(|t| t.parse::<i64>().ok()) {
                    Some(element) => elements.push(element),
                    None => return garbage("a message text is not an integer", &message.to_string()),
                }
            }
            if messages.len() >= ROOM_READ_LIMIT {
                return Completion {
                    kind: EventType::Info,
                    value: serde_json::Value::Null,
                    error: Some(format!(
                        "room holds {} messages or more, more than the {ROOM_ADDS_MAX} sent to it: the read \
                         may be cut short",
                        messages.len()
                    )),
                    known: None,
                };
            }
            ok(json!(elements))
        }
        f => unreachable!("the {workload} workload never plans {}", f.name()),
    }
}

/// A read that returned [`LISTED_MAX`] entries may have been cut short: unknown.
fn maybe_cut_short(what: &str, listed: usize) -> Option<Completion> {
    (listed >= LISTED_MAX).then(|| Completion {
        kind: EventType::Info,
        value: serde_json::Value::Null,
        error: Some(format!("{what} lists {listed} entries, the most it lists: the read may be cut short")),
        known: None,
    })
}

/// A worker's `processed`: the ids handled, then those handled more than once again.
fn decode_processed(result_json: &str) -> Completion {
    #[derive(serde::Deserialize)]
    struct Processed {
        ids: Vec<String>,
        duplicates: Vec<String>,
    }
    let Ok(processed) = serde_json::from_str::<Processed>(result_json) else {
        return garbage("processed is not {\"ids\": [...], \"duplicates\": [...]}", result_json);
    };
    if let Some(cut) = maybe_cut_short("processed", processed.ids.len()) {
        return cut;
    }
    let mut elements = Vec::with_capacity(processed.ids.len() + processed.duplicates.len());
    for id in &processed.ids {
        match id.parse::<i64>() {
            Ok(element) => elements.push(element),
            Err(_) => return garbage("a job id is not an integer", id),
        }
    }
    for id in &processed.duplicates {
        match id.parse::<i64>() {
            Ok(element) if processed.ids.contains(id) => elements.push(element),
            _ => return garbage("a duplicate is not among the ids handled", id),
        }
    }
    ok(json!(elements))
}

/// A reminder's `fired`: every alarm fired, its note parsed as an integer.
fn decode_fired(result_json: &str) -> Completion {
    #[derive(serde::Deserialize)]
    struct Fired {
        id: String,
        note: String,
        due_ms: u64,
        fired_ms: u64,
        times: u32,
    }
    let Ok(fired) = serde_json::from_str::<Vec<Fired>>(result_json) else {
        return garbage("fired is not an array of {id, note, due_ms, fired_ms, times}", result_json);
    };
    if let Some(cut) = maybe_cut_short("fired", fired.len()) {
        return cut;
    }
    let mut alarms = Vec::with_capacity(fired.len());
    for f in fired {
        let Ok(note) = f.note.parse::<i64>() else {
            return garbage("an alarm's note is not an integer", &f.note);
        };
        if f.times == 0 {
            return garbage("an alarm fired 0 times", &f.id);
        }
        alarms.push(FiredAlarm { id: f.id, note, due_ms: f.due_ms, fired_ms: f.fired_ms, times: f.times });
    }
    ok(Value::Fired(alarms).to_json())
}

/// Runs one planned operation of an actor workload through `client`, within `timeout`.
pub async fn execute(
    workload: Workload,
    client: &mut ActorsClient<Channel>,
    planned: &Planned,
    timeout: Duration,
) -> Completion {
    match request_of(workload, planned) {
        Request::Call(call) => {
            let request = ActorCallRequest {
                actor: call.actor.into(),
                key: call.key,
                action: call.action.into(),
                args_json: call.args_json,
                ..Default::default()
            };
            match tokio::time::timeout(timeout, client.call(request)).await {
                Ok(Ok(reply)) => decode_ok(workload, planned, &reply.into_inner().result_json),
                Ok(Err(status)) => refused(&status),
                Err(_) => Completion::timed_out(timeout),
            }
        }
        Request::Send(send) => {
            let request = ActorSendRequest {
                actor: send.actor.into(),
                key: send.key,
                queue: send.queue.into(),
                body_json: send.body_json,
                wait: send.wait,
                ..Default::default()
            };
            match tokio::time::timeout(timeout, client.send(request)).await {
                // The answer holds the message's sequence number: the history records the job.
                Ok(Ok(_)) => ok(planned.value.to_json()),
                Ok(Err(status)) => refused(&status),
                Err(_) => Completion::timed_out(timeout),
            }
        }
    }
}

/// The completion of an error status: `fail` or `info` ([`outcome_of`]).
fn refused(status: &tonic::Status) -> Completion {
    Completion {
        kind: outcome_of(status),
        value: serde_json::Value::Null,
        error: Some(format!(
            "{:?}{}: {}",
            status.code(),
            if status.metadata().contains_key(NOT_APPLIED_METADATA) { " (not applied)" } else { "" },
            status.message()
        )),
        known: None,
    }
}

/// The `counter` workload's next operation.
pub fn plan_counter(rng: &mut Rng, keys: u32) -> Planned {
    let key = counter_key(rng.below(u64::from(keys)) as u32);
    if rng.percent(COUNTER_READ_PERCENT) {
        Planned { f: Function::Read, key, value: Value::Null }
    } else {
        Planned { f: Function::Add, key, value: Value::Int(rng.between(1, AMOUNT_MAX) as i64) }
    }
}

/// The `set` workload's next operation: a send of the next element, or a read.
pub fn plan_set(rng: &mut Rng, rooms: &Mutex<Rotation>, next_element: &AtomicI64) -> Planned {
    let mut rooms = rooms.lock().expect("rotation lock");
    let slot = rng.below(rooms.slots.len() as u64) as usize;
    if rng.percent(SET_READ_PERCENT) {
        Planned { f: Function::SetRead, key: room_key(rooms.slots[slot].index), value: Value::Null }
    } else {
        let room = rooms.index_for_add(slot);
        let element = next_element.fetch_add(1, Ordering::Relaxed);
        Planned { f: Function::SetAdd, key: room_key(room), value: Value::Int(element) }
    }
}

/// The `queue` workload's next operation: a send of the next job to a worker.
pub fn plan_queue(rng: &mut Rng, workers: &Mutex<Rotation>, next_element: &AtomicI64) -> Planned {
    let mut workers = workers.lock().expect("rotation lock");
    let slot = rng.below(workers.slots.len() as u64) as usize;
    let worker = workers.index_for_add(slot);
    let id = next_element.fetch_add(1, Ordering::Relaxed);
    Planned { f: Function::SetAdd, key: worker_key(worker), value: Value::Int(id) }
}

/// The `alarms` workload's next operation: an alarm with the next note, asked at `unix_ms`.
pub fn plan_alarm(
    rng: &mut Rng,
    reminders: &Mutex<Rotation>,
    next_element: &AtomicI64,
    unix_ms: u64,
) -> Planned {
    let mut reminders = reminders.lock().expect("rotation lock");
    let slot = rng.below(reminders.slots.len() as u64) as usize;
    let reminder = reminders.index_for_add(slot);
    let note = next_element.fetch_add(1, Ordering::Relaxed);
    let ms = rng.between(ALARM_MS_MIN, ALARM_MS_MAX);
    Planned {
        f: Function::AlarmSet,
        key: reminder_key(reminder),
        value: Value::Alarm(AlarmRequest { note, ms, unix_ms }),
    }
}

/// One open actor: its index and the adds (sends, alarms) it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    pub adds: u32,
}

/// The actors the `set`, `queue` and `alarms` workloads add to: `keys` slots, each holding an
/// open actor; an actor that got `adds_max` adds retires and the slot takes the next fresh one.
/// Actors are numbered from 0 in the order they open; actors `0..opened` all get a final read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub slots: Vec<Slot>,
    /// Actors opened so far: `0..opened`.
    pub opened: u32,
    pub adds_max: u32,
}

impl Rotation {
    pub fn new(keys: u32, adds_max: u32) -> Self {
        assert!(keys > 0 && adds_max > 0, "a rotation needs a key and room for an add");
        Rotation { slots: (0..keys).map(|index| Slot { index, adds: 0 }).collect(), opened: keys, adds_max }
    }

    /// The rotation of `workload`, whose bound keeps one final read of an actor complete.
    pub fn of(workload: Workload, keys: u32) -> Self {
        let adds_max = match workload {
            Workload::Queue => WORKER_JOBS_MAX,
            Workload::Alarms => REMINDER_ALARMS_MAX,
            _ => ROOM_ADDS_MAX,
        };
        Rotation::new(keys, adds_max)
    }

    /// The actor the next add through `slot` goes to, counted as added.
    pub fn index_for_add(&mut self, slot: usize) -> u32 {
        let slot = &mut self.slots[slot];
        if slot.adds >= self.adds_max {
            *slot = Slot { index: self.opened, adds: 0 };
            self.opened = self.opened.checked_add(1).expect("fewer than 2^32 actors");
        }
        slot.adds += 1;
        slot.index
    }
}

/// The keys the worker reads once more at the end: every counter, or every room, worker or
/// reminder ever opened.
pub fn final_keys(workload: Workload, keys: u32, rotation: &Rotation) -> Vec<String> {
    match workload {
        Workload::Register => Vec::new(),
        Workload::Counter => (0..keys).map(counter_key).collect(),
        Workload::Set | Workload::Queue | Workload::Alarms => {
            (0..rotation.opened).map(|index| rotated_key(workload, index)).collect()
        }
    }
}

/// The read of a final-read key.
pub fn final_read(workload: Workload, key: String) -> Planned {
    match workload {
        Workload::Register => unreachable!("the register workload has no final reads"),
        Workload::Counter => Planned { f: Function::Read, key, value: Value::Null },
        Workload::Set | Workload::Queue => Planned { f: Function::SetRead, key, value: Value::Null },
        Workload::Alarms => Planned { f: Function::AlarmRead, key, value: Value::Null },
    }
}

#[cfg(test)]
#[path = "workload_actors_test.rs"]
mod tests;
