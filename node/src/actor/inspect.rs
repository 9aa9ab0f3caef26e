//! The actor inspector: what an operator sees of one actor (`mortar inspect`, `ActorAdmin.Inspect`).
//!
//! Each look is the runtime's built-in read [`INSPECT`](super::runtime::INSPECT), run on the
//! actor's owner in the actor's serial line like a read-only action (answered under the owner's
//! lease, so it is linearizable); the state patch ([`PATCH_STATE`](super::runtime::PATCH_STATE))
//! is a fenced write between two actions, so no update is lost. Inspecting a sleeping actor wakes
//! it (the summary says whether it was awake). Parts:
//!
//! * `summary`: owner node, generation, awake before the look, whether it exists or was
//!   destroyed, state size, calls answered and waiting, actions, events, queues with their
//!   depths, pending alarms, subscribers, whether a run loop runs;
//! * `state`: the state as JSON;
//! * `kv`: the key-value space by `prefix`, `after` a key, at most `limit` entries;
//! * `queue`: every queue's depth and first `limit` messages;
//! * `alarms`: the pending alarms, by due time;
//! * `connections`: the connections (id, params, state) and the number of event subscribers.

use mortar_storage::Storage;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::CallError;
use super::keys::{self, ActorId};
use super::op::{AlarmRecord, QueueMeta, QueuedMessage};
use super::registry::ActorKind;

/// Entries or messages one look lists by default.
pub const LIST_DEFAULT: usize = 100;
/// Most entries or messages one look lists.
pub const LIST_MAX: usize = 1000;
/// The parts a look may ask for.
pub const PARTS: &[&str] = &["summary", "state", "kv", "queue", "alarms", "connections"];

/// What the inspector sees of one activation.
pub(crate) struct View<'a> {
    pub id: &'a ActorId,
    pub kind: &'a dyn ActorKind,
    pub storage: &'a dyn Storage,
    pub node: u32,
    pub generation: u64,
    pub exists: bool,
    pub destroyed: bool,
    /// Whether the actor was active before this look.
    pub awake: bool,
    pub state_json: Result<String, CallError>,
    pub calls: u64,
    pub waiting: usize,
    pub subscribers: usize,
    pub run_loop: bool,
    /// The connections: `{"id", "params", "state"}` each.
    pub connections: Vec<Value>,
}

/// A look's arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Look {
    #[serde(default = "summary")]
    pub part: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

fn summary() -> String {
    "summary".into()
}

/// Answers look `args_json` at `view`, as JSON.
pub(crate) fn look(view: View<'_>, args_json: &str) -> Result<String, CallError> {
    let args: Look = if args_json.trim().is_empty() {
        Look { part: summary(), ..Look::default() }
    } else {
        serde_json::from_str(args_json)
            .map_err(|e| CallError::InvalidArgument(format!("bad inspector request: {e}")))?
    };
    let limit = args.limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX);
    let ikey = view.id.interference_key();
    let storage_error =
        |e: mortar_storage::StorageError| CallError::Internal(format!("inspect {}: {e}", view.id));
    let answer = match args.part.as_str() {
        "summary" => {
            let state_bytes = view.state_json.as_ref().map_or(0, String::len);
            let queues = queues(&view, &ikey, 0)?;
            let alarms = view
                .storage
                .scan_kv_prefix(&keys::alarm_prefix(&ikey), None, LIST_MAX + 1)
                .map_err(storage_error)?;
            json!({
                "actor": view.id.name(),
                "key": view.id.key(),
                "owner": view.node,
                "generation": view.generation,
                "awake": view.awake,
                "exists": view.exists,
                "destroyed": view.destroyed,
                "stateBytes": if view.exists { state_bytes } else { 0 },
                "calls": view.calls,
                "waitingCalls": view.waiting,
                "actions": view.kind.action_names(),
                "events": view.kind.event_names(),
                "queues": queues,
                "pendingAlarms": alarms.len(),
                "subscribers": view.subscribers,
                "connections": view.connections.len(),
                "runLoop": view.run_loop,
            })
        }
        "state" => {
            let state: Value = match &view.state_json {
                Ok(json) if view.exists => serde_json::from_str(json).unwrap_or(Value::Null),
                Ok(_) => Value::Null,
                Err(e) => return Err(e.clone()),
            };
            json!({ "state": state, "exists": view.exists })
        }
        "kv" => {
            let base = keys::kv_prefix(&ikey);
            let prefix = [&base[..], args.prefix.as_bytes()].concat();
            let after = args.after.as_ref().map(|a| [&base[..], a.as_bytes()].concat());
            let page =
                view.storage.scan_kv_prefix(&prefix, after.as_deref(), limit + 1).map_err(storage_error)?;
            let more = page.len() > limit;
            let entries: Vec<Value> = page
                .into_iter()
                .take(limit)
                .map(|(k, v)| json!({ "key": String::from_utf8_lossy(&k[base.len()..]), "value": value_of(&v) }))
                .collect();
            let next =
                more.then(|| entries.last().and_then(|e| e["key"].as_str().map(str::to_string))).flatten();
            json!({ "entries": entries, "next": next })
        }
        "queue" => json!({ "queues": queues(&view, &ikey, limit)? }),
        "alarms" => {
            let prefix = keys::alarm_prefix(&ikey);
            let mut alarms = Vec::new();
            for (k, v) in view.storage.scan_kv_prefix(&prefix, None, LIST_MAX).map_err(storage_error)? {
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                match AlarmRecord::decode(&v) {
                    Ok(r) => alarms.push(json!({
                        "id": id, "dueMs": r.due_ms, "action": r.action,
                        "args": value_of(r.args_json.as_bytes()), "setMs": r.set_ms,
                    })),
                    Err(e) => alarms.push(json!({ "id": id, "error": e.to_string() })),
                }
            }
            alarms.sort_by_key(|a| a["dueMs"].as_u64().unwrap_or(0));
            json!({ "alarms": alarms })
        }
        "connections" => {
            let mut connections = view.connections;
            connections.sort_by_key(|c| c["id"].as_u64());
            connections.truncate(limit);
            json!({ "subscribers": view.subscribers, "connections": connections })
        }
        other => {
            return Err(CallError::InvalidArgument(format!(
                "no inspector part {other:?}; the parts: {}",
                PARTS.join(", ")
            )));
        }
    };
    Ok(answer.to_string())
}

/// Every declared queue with its depth and its first `limit` messages.
fn queues(view: &View<'_>, ikey: &[u8], limit: usize) -> Result<Vec<Value>, CallError> {
    let mut all = Vec::new();
    for name in view.kind.queue_names() {
        let storage_error =
            |e: mortar_storage::StorageError| CallError::Internal(format!("inspect {}: {e}", view.id));
        let meta = match view.storage.get_kv(&keys::queue_meta_key(ikey, name)).map_err(storage_error)? {
            Some(bytes) => QueueMeta::decode(&bytes).unwrap_or_default(),
            None => QueueMeta::default(),
        };
        let mut queue = json!({ "name": name, "depth": meta.len, "nextId": meta.next_seq });
        if limit > 0 {
            let prefix = keys::queue_prefix(ikey, name);
            let messages: Vec<Value> = view
                .storage
                .scan_kv_prefix(&prefix, None, limit)
                .map_err(storage_error)?
                .into_iter()
                .map(|(k, v)| {
                    let seq = k[k.len() - 8..].try_into().map(u64::from_be_bytes).unwrap_or(0);
                    match QueuedMessage::decode(&v) {
                        Ok(m) => json!({ "id": seq, "sentMs": m.sent_ms, "body": value_of(m.body_json.as_bytes()) }),
                        Err(e) => json!({ "id": seq, "error": e.to_string() }),
                    }
                })
                .collect();
            queue["messages"] = Value::Array(messages);
        }
        all.push(queue);
    }
    Ok(all)
}

/// Stored JSON as a value (a string when it is not JSON).
fn value_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
