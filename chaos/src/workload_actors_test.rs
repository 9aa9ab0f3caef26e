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
    let add = decode_ok(Workload::Counter, &planned(Function::Add, "c0", Value::Int(2)), "7");
    assert_eq!((add.kind, add.value), (EventType::Ok, json!(2)));
    let read = decode_ok(Workload::Counter, &planned(Function::Read, "c0", Value::Null), "7");
    assert_eq!((read.kind, read.value), (EventType::Ok, json!(7)));
    let send = decode_ok(Workload::Set, &planned(Function::SetAdd, "s0", Value::Int(9)), "0");
    assert_eq!((send.kind, send.value), (EventType::Ok, json!(9)));
    // Texts in the order read, duplicates kept (the set checker looks for them).
    let history = r#"[{"seq":0,"sender":"mortar-chaos","text":"9"},{"seq":1,"sender":"x","text":"4"},
        {"seq":2,"sender":"x","text":"9"}]"#;
    let set_read = decode_ok(Workload::Set, &planned(Function::SetRead, "s0", Value::Null), history);
    assert_eq!((set_read.kind, set_read.value), (EventType::Ok, json!([9, 4, 9])));
    let empty = decode_ok(Workload::Set, &planned(Function::SetRead, "s0", Value::Null), "[]");
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
        let completion = decode_ok(Workload::Set, &planned(f, "k", value), answer);
        assert_eq!(completion.kind, EventType::Info, "{answer}");
        assert!(completion.error.as_deref().unwrap().starts_with(GARBAGE_ERROR_PREFIX), "{answer}");
    }
    // A read returning the whole limit may be cut short: unknown, not garbage.
    let messages: Vec<serde_json::Value> =
        (0..ROOM_READ_LIMIT).map(|i| json!({"seq": i, "sender": "x", "text": i.to_string()})).collect();
    let full = decode_ok(
        Workload::Set,
        &planned(Function::SetRead, "s0", Value::Null),
        &json!(messages).to_string(),
    );
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
    let mut rooms = Rotation::of(Workload::Set, 2);
    for _ in 0..ROOM_ADDS_MAX {
        assert_eq!(rooms.index_for_add(1), 1);
    }
    assert_eq!(rooms.opened, 2);
    // Slot 1 is full: room 2 opens in its place; slot 0 keeps room 0.
    assert_eq!(rooms.index_for_add(1), 2);
    assert_eq!(rooms.index_for_add(0), 0);
    assert_eq!(rooms.slots, [Slot { index: 0, adds: 1 }, Slot { index: 2, adds: 1 }]);
    assert_eq!(final_keys(Workload::Set, 2, &rooms), ["s0", "s1", "s2"]);
    assert_eq!(final_keys(Workload::Queue, 2, &rooms), ["w0", "w1", "w2"]);
    assert_eq!(final_keys(Workload::Alarms, 2, &rooms), ["a0", "a1", "a2"]);
    assert_eq!(final_keys(Workload::Counter, 2, &rooms), ["c0", "c1"]);
    assert!(final_keys(Workload::Register, 2, &rooms).is_empty());
    // Workers and reminders retire later: one final read lists everything they got.
    assert_eq!(Rotation::of(Workload::Queue, 1).adds_max, WORKER_JOBS_MAX);
    assert_eq!(Rotation::of(Workload::Alarms, 1).adds_max, REMINDER_ALARMS_MAX);
}

#[test]
fn set_plans_send_unique_elements_within_the_room_bound() {
    let rooms = Mutex::new(Rotation::of(Workload::Set, 1));
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

/// The completion of `result_json`, decoded as the workload of `planned`'s key would.
fn answer(planned: &Planned, result_json: &str) -> Option<Completion> {
    let workload = match planned.key.as_bytes()[0] {
        b'w' => Workload::Queue,
        b'a' => Workload::Alarms,
        b's' => Workload::Set,
        _ => Workload::Counter,
    };
    Some(decode_ok(workload, planned, result_json))
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

#[test]
fn queue_sends_and_reads_become_worker_requests() {
    let send = request_of(Workload::Queue, &planned(Function::SetAdd, "w2", Value::Int(17)));
    let job = job_of(17);
    let Request::Send(send) = send else { panic!("a job goes by Send: {send:?}") };
    assert_eq!((send.actor, send.key.as_str(), send.queue, send.wait), ("worker", "w2", "jobs", job.wait));
    let body: serde_json::Value = serde_json::from_str(&send.body_json).unwrap();
    assert_eq!(body, json!({"id": "17", "work_ms": job.work_ms}));
    let read = request_of(Workload::Queue, &planned(Function::SetRead, "w2", Value::Null));
    let processed =
        ActorCall { actor: "worker", key: "w2".into(), action: "processed", args_json: "null".into() };
    assert_eq!(read, Request::Call(processed));
    // The set workload's reads still go to the chat room.
    let read = request_of(Workload::Set, &planned(Function::SetRead, "s0", Value::Null));
    assert!(
        matches!(read, Request::Call(ActorCall { actor: "chatRoom", action: "getHistory", .. })),
        "{read:?}"
    );
}

#[test]
fn jobs_follow_their_id() {
    let jobs: Vec<JobSpec> = (0..1000).map(job_of).collect();
    assert_eq!(jobs, (0..1000).map(job_of).collect::<Vec<_>>());
    let waiting = jobs.iter().filter(|j| j.wait).count();
    let working = jobs.iter().filter(|j| j.work_ms > 0).count();
    assert!((150..350).contains(&waiting), "{waiting} of 1000 wait");
    assert!((100..300).contains(&working), "{working} of 1000 work");
    assert!(jobs.iter().all(|j| j.work_ms <= JOB_WORK_MS_MAX));
}

#[test]
fn processed_decodes_into_ids_with_duplicates_twice() {
    let read = planned(Function::SetRead, "w0", Value::Null);
    let done = decode_ok(Workload::Queue, &read, r#"{"ids":["3","10","2"],"duplicates":["10"]}"#);
    assert_eq!((done.kind, done.value), (EventType::Ok, json!([3, 10, 2, 10])));
    for answer in [
        r#"{"ids":["3","x"],"duplicates":[]}"#,
        r#"{"ids":["3"],"duplicates":["4"]}"#,
        r#"{"ids":["3"]}"#,
        "[]",
    ] {
        let completion = decode_ok(Workload::Queue, &read, answer);
        assert_eq!(completion.kind, EventType::Info, "{answer}");
        assert!(completion.error.as_deref().unwrap().starts_with(GARBAGE_ERROR_PREFIX), "{answer}");
    }
    let ids: Vec<String> = (0..LISTED_MAX).map(|i| i.to_string()).collect();
    let full = decode_ok(Workload::Queue, &read, &json!({"ids": ids, "duplicates": []}).to_string());
    assert_eq!(full.kind, EventType::Info);
    assert!(full.error.as_deref().unwrap().contains("may be cut short"), "{:?}", full.error);
}

#[test]
fn alarm_plans_ask_unique_notes_within_the_delay_bounds() {
    let reminders = Mutex::new(Rotation::of(Workload::Alarms, 3));
    let next = AtomicI64::new(1);
    let mut rng = Rng::stream(5, 1000);
    let mut notes = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let p = plan_alarm(&mut rng, &reminders, &next, 1_000);
        let Value::Alarm(request) = &p.value else { panic!("{p:?}") };
        assert_eq!(p.f, Function::AlarmSet);
        assert!(["a0", "a1", "a2"].contains(&p.key.as_str()), "{p:?}");
        assert!((ALARM_MS_MIN..=ALARM_MS_MAX).contains(&request.ms), "{p:?}");
        assert_eq!(request.unix_ms, 1_000);
        assert!(notes.insert(request.note), "note {} asked twice", request.note);
    }
}

#[test]
fn alarm_requests_and_answers() {
    let ask = planned(Function::AlarmSet, "a1", Value::Alarm(AlarmRequest { note: 9, ms: 1200, unix_ms: 5 }));
    let Request::Call(call) = request_of(Workload::Alarms, &ask) else { panic!("remindIn is a call") };
    assert_eq!((call.actor, call.action), ("reminder", "remindIn"));
    let args: serde_json::Value = serde_json::from_str(&call.args_json).unwrap();
    assert_eq!(args, json!({"ms": 1200, "note": "9"}));
    // remindIn answers the alarm's id; the history records the request.
    let asked = decode_ok(Workload::Alarms, &ask, r#""3.0""#);
    assert_eq!((asked.kind, asked.value), (EventType::Ok, json!({"note": 9, "ms": 1200, "unix_ms": 5})));
    assert_eq!(decode_ok(Workload::Alarms, &ask, "3").kind, EventType::Info);

    let read = planned(Function::AlarmRead, "a1", Value::Null);
    let fired = r#"[{"id":"3.0","note":"9","due_ms":1205,"fired_ms":1210,"times":1}]"#;
    let done = decode_ok(Workload::Alarms, &read, fired);
    assert_eq!(
        (done.kind, done.value),
        (EventType::Ok, json!([{"id": "3.0", "note": 9, "due_ms": 1205, "fired_ms": 1210, "times": 1}]))
    );
    for answer in [
        r#"[{"id":"3.0","note":"nine","due_ms":1205,"fired_ms":1210,"times":1}]"#,
        r#"[{"id":"3.0","note":"9","due_ms":1205,"fired_ms":1210,"times":0}]"#,
        r#"[{"id":"3.0","note":"9","due_ms":1205}]"#,
        "{}",
    ] {
        let completion = decode_ok(Workload::Alarms, &read, answer);
        assert_eq!(completion.kind, EventType::Info, "{answer}");
        assert!(completion.error.as_deref().unwrap().starts_with(GARBAGE_ERROR_PREFIX), "{answer}");
    }
}

#[test]
fn a_recorded_queue_history_is_checked_for_lost_and_twice_handled_jobs() {
    let send = |id| planned(Function::SetAdd, "w0", Value::Int(id));
    let read = planned(Function::SetRead, "w0", Value::Null);
    let full = Some(refused(&tonic::Status::resource_exhausted("queue full")));
    let kinds = |processed: serde_json::Value| -> Vec<AnomalyKind> {
        let history = recorded(&[
            (0, send(1), None),
            (0, send(1), answer(&send(1), "0")),
            (1, send(2), None),
            (1, send(2), unknown()),
            (0, send(3), None),
            (0, send(3), full.clone()),
            (0, send(4), None),
            (0, send(4), answer(&send(4), "1")),
            (9, read.clone(), None),
            (9, read.clone(), answer(&read, &processed.to_string())),
        ]);
        assert_eq!(Checker::applicable(&history), [Checker::SetCompleteness]);
        check::check(&history).checks[0].result.anomalies.iter().map(|a| a.kind).collect()
    };
    // The unknown 2 may be handled or not.
    assert_eq!(kinds(json!({"ids": ["1", "4"], "duplicates": []})), []);
    assert_eq!(kinds(json!({"ids": ["1", "2", "4"], "duplicates": []})), []);
    // The acknowledged 4 was never handled.
    assert_eq!(kinds(json!({"ids": ["1"], "duplicates": []})), [AnomalyKind::SetElementLost]);
    // 3's send failed (the queue was full), yet it was handled.
    assert_eq!(kinds(json!({"ids": ["1", "3", "4"], "duplicates": []})), [AnomalyKind::SetElementUnexpected]);
    // 1 was handled twice; so was the unknown 2.
    assert_eq!(
        kinds(json!({"ids": ["1", "2", "4"], "duplicates": ["1", "2"]})),
        [AnomalyKind::SetElementDuplicated, AnomalyKind::SetElementDuplicated]
    );
}

#[test]
fn a_recorded_alarm_history_is_checked_for_delivery() {
    let ask = |note| {
        planned(Function::AlarmSet, "a0", Value::Alarm(AlarmRequest { note, ms: 200, unix_ms: 1_000 }))
    };
    let read = planned(Function::AlarmRead, "a0", Value::Null);
    let fired = |note: i64, due_ms: u64, fired_ms: u64| {
        let id = format!("{note}.0");
        json!({"id": id, "note": note.to_string(), "due_ms": due_ms, "fired_ms": fired_ms, "times": 1})
    };
    // 1 is acknowledged, 2 unknown; the final read starts 10 s later, long after both were due.
    let history = |fired: serde_json::Value| {
        let late = 10_000_000_000;
        let events = [
            Event::new(0, EventType::Invoke, Function::AlarmSet, "a0", ask(1).value.to_json(), 0),
            Event::new(
                0,
                EventType::Ok,
                Function::AlarmSet,
                "a0",
                answer(&ask(1), r#""1.0""#).unwrap().value,
                1,
            ),
            Event::new(1, EventType::Invoke, Function::AlarmSet, "a0", ask(2).value.to_json(), 2),
            Event::new(1, EventType::Info, Function::AlarmSet, "a0", serde_json::Value::Null, 3),
            Event::new(9, EventType::Invoke, Function::AlarmRead, "a0", serde_json::Value::Null, late),
            Event::new(
                9,
                EventType::Ok,
                Function::AlarmRead,
                "a0",
                answer(&read, &fired.to_string()).unwrap().value,
                late + 1,
            ),
        ];
        let mut writer = HistoryWriter::new(Vec::new());
        for event in &events {
            writer.write(event).unwrap();
        }
        History::from_jsonl(writer.into_inner().as_slice()).unwrap()
    };
    let kinds = |fired| -> Vec<AnomalyKind> {
        check::check(&history(fired)).checks[0].result.anomalies.iter().map(|a| a.kind).collect()
    };
    assert_eq!(Checker::applicable(&history(json!([]))), [Checker::AlarmDelivery]);
    let report = check::check(&history(json!([fired(1, 1_200, 1_230), fired(2, 1_201, 1_201)])));
    assert!(report.valid, "{report}");
    let lateness = report.checks[0].result.lateness.as_ref().map(|l| (l.alarms, l.max_ms));
    assert_eq!(lateness, Some((2, 30)));
    // The unknown 2 may be missing; the acknowledged 1 may not.
    assert_eq!(kinds(json!([fired(1, 1_200, 1_230)])), []);
    assert_eq!(kinds(json!([fired(2, 1_200, 1_201)])), [AnomalyKind::AlarmLost]);
    assert_eq!(kinds(json!([fired(1, 1_200, 1_199)])), [AnomalyKind::AlarmFiredEarly]);
    // Asked at 1000 for 200 ms: due at 1100 is too soon.
    assert_eq!(kinds(json!([fired(1, 1_100, 1_150)])), [AnomalyKind::AlarmDueEarly]);
    assert_eq!(
        kinds(json!([fired(1, 1_200, 1_200), fired(3, 1_200, 1_200)])),
        [AnomalyKind::AlarmUnexpected]
    );
}
