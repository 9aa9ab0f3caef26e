use serde_json::json;

use super::*;
use crate::check::{self, AnomalyKind, Checker};
use crate::history::{Event, History, HistoryWriter};
use crate::run::Workload;

fn planned(f: Function, key: &str, value: Value) -> Planned {
    Planned { f, key: key.into(), value }
}

#[test]
fn operations_become_actor_calls() {
    let call = call_of(&planned(Function::Add, "c1", Value::Int(3)));
    assert_eq!(
        call,
        ActorCall {
            actor: "counter",
            key: "c1".into(),
            action: "increment",
            args_json: r#"{"amount":3}"#.into()
        }
    );
    let call = call_of(&planned(Function::Read, "c1", Value::Null));
    assert_eq!((call.actor, call.action, call.args_json.as_str()), ("counter", "getCount", "null"));
    let call = call_of(&planned(Function::SetAdd, "s4", Value::Int(17)));
    assert_eq!((call.actor, call.key.as_str(), call.action), ("chatRoom", "s4", "sendMessage"));
    let args: serde_json::Value = serde_json::from_str(&call.args_json).unwrap();
    assert_eq!(args, json!({"sender": "mortar-chaos", "text": "17"}));
    let call = call_of(&planned(Function::SetRead, "s4", Value::Null));
    assert_eq!((call.action, call.args_json.as_str()), ("getHistory", r#"{"limit":1000}"#));
}

#[test]
fn answers_decode_into_history_values() {
    // An increment answers the new count; the history records the amount added.
    let add = decode_ok(&planned(Function::Add, "c0", Value::Int(2)), "7");
    assert_eq!((add.kind, add.value), (EventType::Ok, json!(2)));
    let read = decode_ok(&planned(Function::Read, "c0", Value::Null), "7");
    assert_eq!((read.kind, read.value), (EventType::Ok, json!(7)));
    let send = decode_ok(&planned(Function::SetAdd, "s0", Value::Int(9)), "0");
    assert_eq!((send.kind, send.value), (EventType::Ok, json!(9)));
    // Texts in the order read, duplicates kept (the set checker looks for them).
    let history = r#"[{"seq":0,"sender":"mortar-chaos","text":"9"},{"seq":1,"sender":"x","text":"4"},
        {"seq":2,"sender":"x","text":"9"}]"#;
    let set_read = decode_ok(&planned(Function::SetRead, "s0", Value::Null), history);
    assert_eq!((set_read.kind, set_read.value), (EventType::Ok, json!([9, 4, 9])));
    let empty = decode_ok(&planned(Function::SetRead, "s0", Value::Null), "[]");
    assert_eq!(empty.value, json!([]));
}

#[test]
fn answers_that_make_no_sense_are_unknown_and_flagged() {
    for (f, answer) in [
        (Function::Read, r#""7""#),
        (Function::Read, "null"),
        (Function::Add, "{}"),
        (Function::SetRead, r#"{"seq":0}"#),
        (Function::SetRead, r#"[{"seq":0,"sender":"x","text":"hello"}]"#),
        (Function::SetRead, r#"[{"seq":0,"sender":"x"}]"#),
    ] {
        let value = if f == Function::Add { Value::Int(1) } else { Value::Null };
        let completion = decode_ok(&planned(f, "k", value), answer);
        assert_eq!(completion.kind, EventType::Info, "{answer}");
        assert!(completion.error.as_deref().unwrap().starts_with(GARBAGE_ERROR_PREFIX), "{answer}");
    }
    // A read returning the whole limit may be cut short: unknown, not garbage.
    let messages: Vec<serde_json::Value> =
        (0..ROOM_READ_LIMIT).map(|i| json!({"seq": i, "sender": "x", "text": i.to_string()})).collect();
    let full = decode_ok(&planned(Function::SetRead, "s0", Value::Null), &json!(messages).to_string());
    assert_eq!(full.kind, EventType::Info);
    assert!(full.error.as_deref().unwrap().contains("may be cut short"), "{:?}", full.error);
}

#[test]
fn only_calls_certainly_not_applied_fail() {
    let mut not_applied = tonic::Status::unavailable("the actor is moving");
    not_applied.metadata_mut().insert(NOT_APPLIED_METADATA, "true".parse().unwrap());
    assert_eq!(outcome_of(&not_applied), EventType::Fail);
    assert_eq!(outcome_of(&tonic::Status::unavailable("no quorum")), EventType::Info);
    assert_eq!(outcome_of(&tonic::Status::failed_precondition("overflow")), EventType::Fail);
    assert_eq!(outcome_of(&tonic::Status::resource_exhausted("queue full")), EventType::Fail);
    assert_eq!(outcome_of(&tonic::Status::invalid_argument("bad args")), EventType::Fail);
    assert_eq!(outcome_of(&tonic::Status::deadline_exceeded("late")), EventType::Info);
    assert_eq!(outcome_of(&tonic::Status::internal("bug")), EventType::Info);
    // The node never sends ABORTED for a call; its own client reads it as unknown.
    assert_eq!(outcome_of(&tonic::Status::aborted("?")), EventType::Info);
}

#[test]
fn counter_plans_stay_in_range_and_follow_the_seed() {
    let mut rng = Rng::stream(7, 1000);
    let plans: Vec<Planned> = (0..1000).map(|_| plan_counter(&mut rng, 3)).collect();
    let reads = plans.iter().filter(|p| p.f == Function::Read).count();
    assert!((300..500).contains(&reads), "{reads} reads of 1000");
    for p in &plans {
        assert!(["c0", "c1", "c2"].contains(&p.key.as_str()), "{p:?}");
        match (p.f, &p.value) {
            (Function::Read, Value::Null) => {}
            (Function::Add, Value::Int(amount)) => assert!((1..=AMOUNT_MAX as i64).contains(amount)),
            other => panic!("unexpected plan {other:?}"),
        }
    }
    let mut again = Rng::stream(7, 1000);
    assert_eq!(plans[..10], (0..10).map(|_| plan_counter(&mut again, 3)).collect::<Vec<_>>()[..]);
}

#[test]
fn rooms_retire_after_their_bound_and_all_get_final_reads() {
    let mut rooms = Rooms::new(2);
    for _ in 0..ROOM_ADDS_MAX {
        assert_eq!(rooms.room_for_add(1), 1);
    }
    assert_eq!(rooms.opened, 2);
    // Slot 1 is full: room 2 opens in its place; slot 0 keeps room 0.
    assert_eq!(rooms.room_for_add(1), 2);
    assert_eq!(rooms.room_for_add(0), 0);
    assert_eq!(rooms.slots, [Slot { room: 0, adds: 1 }, Slot { room: 2, adds: 1 }]);
    assert_eq!(final_keys(Workload::Set, 2, &rooms), ["s0", "s1", "s2"]);
    assert_eq!(final_keys(Workload::Counter, 2, &rooms), ["c0", "c1"]);
    assert!(final_keys(Workload::Register, 2, &rooms).is_empty());
}

#[test]
fn set_plans_send_unique_elements_within_the_room_bound() {
    let rooms = Mutex::new(Rooms::new(1));
    let next = AtomicI64::new(1);
    let mut rng = Rng::stream(3, 1000);
    let mut elements = std::collections::BTreeSet::new();
    let mut per_room = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..2000 {
        let p = plan_set(&mut rng, &rooms, &next);
        if let (Function::SetAdd, Value::Int(element)) = (p.f, &p.value) {
            assert!(elements.insert(*element), "element {element} sent twice");
            *per_room.entry(p.key).or_default() += 1;
        }
    }
    assert!(per_room.values().all(|&n| n <= ROOM_ADDS_MAX), "{per_room:?}");
    assert!(per_room.len() >= 2, "the first room retired: {per_room:?}");
}

/// Records what the worker would for `(process, planned, completion or None for the invoke)` and
/// reads the history back from JSON lines, as `mortar-chaos check` does.
fn recorded(steps: &[(i64, Planned, Option<Completion>)]) -> History {
    let mut writer = HistoryWriter::new(Vec::new());
    for (time, (process, planned, completion)) in steps.iter().enumerate() {
        let event = match completion {
            None => Event::new(
                *process,
                EventType::Invoke,
                planned.f,
                planned.key.clone(),
                planned.value.to_json(),
                time as u64,
            ),
            Some(c) => {
                Event::new(*process, c.kind, planned.f, planned.key.clone(), c.value.clone(), time as u64)
            }
        };
        writer.write(&event).unwrap();
    }
    History::from_jsonl(writer.into_inner().as_slice()).unwrap()
}

fn add(key: &str, amount: i64) -> Planned {
    planned(Function::Add, key, Value::Int(amount))
}

fn read(key: &str) -> Planned {
    planned(Function::Read, key, Value::Null)
}

fn answer(planned: &Planned, result_json: &str) -> Option<Completion> {
    Some(decode_ok(planned, result_json))
}

fn unknown() -> Option<Completion> {
    Some(Completion { kind: EventType::Info, value: serde_json::Value::Null, error: None, known: None })
}

/// c0: +2 acknowledged, +3 unknown (process 1 retires, 5 takes over). c1 is only read.
fn counter_steps(final_count: &str) -> Vec<(i64, Planned, Option<Completion>)> {
    vec![
        (0, add("c0", 2), None),
        (0, add("c0", 2), answer(&add("c0", 2), "2")),
        (1, add("c0", 3), None),
        (1, add("c0", 3), unknown()),
        (2, read("c1"), None),
        (2, read("c1"), answer(&read("c1"), "0")),
        (5, read("c0"), None),
        (5, read("c0"), answer(&read("c0"), final_count)),
    ]
}

#[test]
fn a_recorded_counter_history_is_checked_for_bounds() {
    // 2 (the unknown add did not land) and 5 (it did) are both valid.
    for count in ["2", "5"] {
        let history = recorded(&counter_steps(count));
        assert_eq!(Checker::applicable(&history), [Checker::CounterBounds], "the read-only c1 is a counter");
        let report = check::check(&history);
        assert!(report.valid, "final count {count}: {report}");
    }
    let kind_of = |count: &str| {
        let report = check::check(&recorded(&counter_steps(count)));
        assert!(!report.valid, "final count {count} must be invalid");
        let anomalies = &report.checks[0].result.anomalies;
        assert_eq!(anomalies.len(), 1, "{report}");
        assert_eq!(anomalies[0].key, "c0");
        anomalies[0].kind
    };
    // Above every attempted increment.
    assert_eq!(kind_of("6"), AnomalyKind::CounterAboveAttempted);
    // Below the increment acknowledged before the read began.
    assert_eq!(kind_of("1"), AnomalyKind::CounterBelowAcknowledged);
}

#[test]
fn a_recorded_set_history_with_a_lost_message_is_invalid() {
    let send = |element| planned(Function::SetAdd, "s0", Value::Int(element));
    let read = planned(Function::SetRead, "s0", Value::Null);
    let message =
        |seq: u64, element: i64| json!({"seq": seq, "sender": CHAT_SENDER, "text": element.to_string()});
    let steps = |final_read: serde_json::Value| {
        vec![
            (0, send(1), None),
            (0, send(1), answer(&send(1), "0")),
            (1, send(2), None),
            (1, send(2), unknown()),
            (0, send(3), None),
            (0, send(3), answer(&send(3), "1")),
            (9, read.clone(), None),
            (9, read.clone(), answer(&read, &final_read.to_string())),
        ]
    };
    // The unknown 2 may be there or not.
    assert!(check::check(&recorded(&steps(json!([message(0, 1), message(1, 3)])))).valid);
    assert!(check::check(&recorded(&steps(json!([message(0, 1), message(1, 2), message(2, 3)])))).valid);
    // The acknowledged 3 is lost.
    let report = check::check(&recorded(&steps(json!([message(0, 1), message(1, 2)]))));
    assert!(!report.valid);
    let kinds: Vec<AnomalyKind> = report.checks[0].result.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AnomalyKind::SetElementLost], "{report}");
    // 4 was never sent.
    let report = check::check(&recorded(&steps(json!([message(0, 1), message(1, 3), message(2, 4)]))));
    let kinds: Vec<AnomalyKind> = report.checks[0].result.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AnomalyKind::SetElementUnexpected], "{report}");
}
