//! The `counter` and `set` workloads: calls to the stock actors `counter` and `chatRoom` through
//! `mortar.v1.Actors`, run by the client worker ([`crate::workload`]) like the `register`
//! workload, through nodes picked at random (a node that does not own the actor forwards the call
//! to its owner).
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
//!
//! After the workload stops (past the heal), the worker reads every counter or room once more
//! ([`final_keys`]): the final reads the checkers compare against everything acknowledged.
//!
//! Outcomes follow the actor service's contract (`proto/.../actors.proto`): `ok` when the node
//! answered; `fail` for a definite refusal (`NOT_FOUND`, `INVALID_ARGUMENT`, `FAILED_PRECONDITION`,
//! `RESOURCE_EXHAUSTED`, and `UNAVAILABLE` marked not applied); `info` for everything else
//! (`UNAVAILABLE` unmarked, `DEADLINE_EXCEEDED`, `INTERNAL`, the client timeout, a broken
//! connection). A `fail` add that did land shows up as a counter read above the attempted sum or
//! an unexpected set element: the harness holds the node to its "not applied" promise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mortar_node::auth::AuthChannel as Channel;
use mortar_proto::v1::ActorCallRequest;
use mortar_proto::v1::actors_client::ActorsClient;
use serde_json::json;

use crate::history::{EventType, Function, Value};
use crate::rng::Rng;
use crate::workload::{Completion, GARBAGE_ERROR_PREFIX, Planned};

/// The counter actor of the stock `mortar` binary.
pub const COUNTER_ACTOR: &str = "counter";
/// The chat room actor of the stock `mortar` binary.
pub const CHAT_ROOM_ACTOR: &str = "chatRoom";
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
pub fn decode_ok(planned: &Planned, result_json: &str) -> Completion {
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
        f => unreachable!("the actor workloads never plan {}", f.name()),
    }
}

/// Runs one planned operation through `client`, within `timeout`.
pub async fn execute(client: &mut ActorsClient<Channel>, planned: &Planned, timeout: Duration) -> Completion {
    let call = call_of(planned);
    let request = ActorCallRequest {
        actor: call.actor.into(),
        key: call.key,
        action: call.action.into(),
        args_json: call.args_json,
        ..Default::default()
    };
    match tokio::time::timeout(timeout, client.call(request)).await {
        Ok(Ok(reply)) => decode_ok(planned, &reply.into_inner().result_json),
        Ok(Err(status)) => Completion {
            kind: outcome_of(&status),
            value: serde_json::Value::Null,
            error: Some(format!(
                "{:?}{}: {}",
                status.code(),
                if status.metadata().contains_key(NOT_APPLIED_METADATA) { " (not applied)" } else { "" },
                status.message()
            )),
            known: None,
        },
        Err(_) => Completion::timed_out(timeout),
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
pub fn plan_set(rng: &mut Rng, rooms: &Mutex<Rooms>, next_element: &AtomicI64) -> Planned {
    let mut rooms = rooms.lock().expect("rooms lock");
    let slot = rng.below(rooms.slots.len() as u64) as usize;
    if rng.percent(SET_READ_PERCENT) {
        Planned { f: Function::SetRead, key: room_key(rooms.slots[slot].room), value: Value::Null }
    } else {
        let room = rooms.room_for_add(slot);
        let element = next_element.fetch_add(1, Ordering::Relaxed);
        Planned { f: Function::SetAdd, key: room_key(room), value: Value::Int(element) }
    }
}

/// One open room: its index and the sends it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub room: u32,
    pub adds: u32,
}

/// The chat rooms of the `set` workload: `keys` slots, each holding an open room; a room that got
/// [`ROOM_ADDS_MAX`] sends retires and the slot takes the next fresh room. Rooms are numbered
/// from 0 in the order they open; rooms `0..opened` all get a final read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rooms {
    pub slots: Vec<Slot>,
    /// Rooms opened so far: `0..opened`.
    pub opened: u32,
}

impl Rooms {
    pub fn new(keys: u32) -> Self {
        assert!(keys > 0, "the set workload needs at least one room");
        Rooms { slots: (0..keys).map(|room| Slot { room, adds: 0 }).collect(), opened: keys }
    }

    /// The room the next send through `slot` goes to, counted as sent.
    pub fn room_for_add(&mut self, slot: usize) -> u32 {
        let slot = &mut self.slots[slot];
        if slot.adds >= ROOM_ADDS_MAX {
            *slot = Slot { room: self.opened, adds: 0 };
            self.opened = self.opened.checked_add(1).expect("fewer than 2^32 rooms");
        }
        slot.adds += 1;
        slot.room
    }
}

/// The keys the worker reads once more at the end: every counter, or every room ever opened.
pub fn final_keys(workload: crate::run::Workload, keys: u32, rooms: &Rooms) -> Vec<String> {
    use crate::run::Workload;
    match workload {
        Workload::Register => Vec::new(),
        Workload::Counter => (0..keys).map(counter_key).collect(),
        Workload::Set => (0..rooms.opened).map(room_key).collect(),
    }
}

/// The read of a final-read key.
pub fn final_read(workload: crate::run::Workload, key: String) -> Planned {
    use crate::run::Workload;
    match workload {
        Workload::Register => unreachable!("the register workload has no final reads"),
        Workload::Counter => Planned { f: Function::Read, key, value: Value::Null },
        Workload::Set => Planned { f: Function::SetRead, key, value: Value::Null },
    }
}

#[cfg(test)]
#[path = "workload_actors_test.rs"]
mod tests;
