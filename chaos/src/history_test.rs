use super::*;

fn parse(text: &str) -> Result<History, HistoryError> {
    History::from_jsonl(text.as_bytes())
}

/// The reason of an `Invalid` error and its line.
fn invalid(text: &str) -> (usize, String) {
    match parse(text) {
        Err(HistoryError::Invalid { line, reason }) => (line, reason),
        other => panic!("expected an invalid history, got {other:?}"),
    }
}

const WRITE_READ: &str = r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":3,"time":1}
{"process":1,"type":"invoke","f":"read","key":"k1","value":null,"time":2}
{"process":0,"type":"ok","f":"write","key":"k1","value":3,"time":3}
{"process":1,"type":"ok","f":"read","key":"k1","value":3,"time":4}
{"process":2,"type":"invoke","f":"cas","key":"k1","value":[null,5],"time":5}
{"process":2,"type":"fail","f":"cas","key":"k1","value":null,"time":6}
{"process":3,"type":"invoke","f":"write","key":"k1","value":4,"time":7}
{"process":3,"type":"info","f":"write","key":"k1","value":null,"time":8}
{"process":-1,"type":"info","f":"restart","key":"","value":null,"time":9}
{"process":4,"type":"invoke","f":"read","key":"k1","value":null,"time":10}
"#;

#[test]
fn pairs_invokes_with_completions() {
    let history = parse(WRITE_READ).unwrap();
    assert_eq!(history.events().len(), 10);
    assert_eq!(history.restarts(), [8]);
    assert_eq!(history.key_kind("k1"), Some(KeyKind::Register));
    let ops = history.ops();
    assert_eq!(ops.len(), 5);
    assert_eq!(
        ops[0],
        Op {
            process: 0,
            f: Function::Write,
            key: "k1".into(),
            invoke_value: Value::Int(3),
            result_value: Some(Value::Int(3)),
            outcome: Outcome::Ok,
            invoke_time: 1,
            complete_time: Some(3),
            invoke_event: 0,
            complete_event: Some(2),
        }
    );
    assert_eq!(ops[1].result_value, Some(Value::Int(3)));
    assert_eq!(
        (ops[2].invoke_value.clone(), ops[2].outcome),
        (Value::Cas { expected: None, new: 5 }, Outcome::Fail)
    );
    assert_eq!(ops[2].complete_time, Some(6));
    // Info: open-ended, but its completion event is known.
    assert_eq!((ops[3].outcome, ops[3].complete_time, ops[3].complete_event), (Outcome::Info, None, Some(7)));
    // Still in flight at the end: info without a completion event.
    assert_eq!((ops[4].outcome, ops[4].complete_time, ops[4].complete_event), (Outcome::Info, None, None));
    assert_eq!(ops[0].to_string(), "process 0 write k1 3: ok");
    assert_eq!(ops[1].to_string(), "process 1 read k1: ok 3");
    assert_eq!(ops[2].to_string(), "process 2 cas k1 [null,5]: fail");
    assert_eq!(ops[3].to_string(), "process 3 write k1 4: info");
    assert_eq!(ops[4].to_string(), "process 4 read k1: still in flight");
}

#[test]
fn writes_back_exactly_what_it_read() {
    let history = parse(WRITE_READ).unwrap();
    let mut out = Vec::new();
    history.write_jsonl(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), WRITE_READ);
    assert_eq!(
        Event::restart(9).to_json_line(),
        r#"{"process":-1,"type":"info","f":"restart","key":"","value":null,"time":9}"#
    );
}

#[test]
fn skips_blank_lines_and_keeps_line_numbers() {
    let text = "\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\",\"value\":null,\"time\":0}\n  \n\
                {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":null,\"time\":1}\n";
    let history = parse(text).unwrap();
    assert_eq!((history.line(0), history.line(1)), (2, 4));
    let (line, _) = invalid(&format!(
        "{text}\n{{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\",\"value\":null,\"time\":2}}"
    ));
    assert_eq!(line, 6);
}

#[test]
fn counter_and_set_values() {
    let history = parse(
        r#"{"process":0,"type":"invoke","f":"add","key":"c","value":2,"time":0}
{"process":0,"type":"ok","f":"add","key":"c","value":null,"time":1}
{"process":0,"type":"invoke","f":"read","key":"c","value":null,"time":2}
{"process":0,"type":"ok","f":"read","key":"c","value":2,"time":3}
{"process":1,"type":"invoke","f":"set_add","key":"s","value":7,"time":4}
{"process":1,"type":"ok","f":"set_add","key":"s","value":7,"time":5}
{"process":1,"type":"invoke","f":"set_read","key":"s","value":null,"time":6}
{"process":1,"type":"ok","f":"set_read","key":"s","value":[7],"time":7}
"#,
    )
    .unwrap();
    assert_eq!(history.key_kind("c"), Some(KeyKind::Counter));
    assert_eq!(history.key_kind("s"), Some(KeyKind::Set));
    assert_eq!(history.ops()[0].result_value, Some(Value::Null));
    assert_eq!(history.ops()[3].result_value, Some(Value::Elements(vec![7])));
    assert_eq!(history.keys(KeyKind::Counter).collect::<Vec<_>>(), ["c"]);
}

#[test]
fn malformed_line_names_line_and_column() {
    let text = format!("{}{}", WRITE_READ.lines().next().unwrap(), "\n{\"process\":0,\"type\":\"ok\"\n");
    match parse(&text) {
        Err(e @ HistoryError::Malformed { line: 2, .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("line 2, column "), "{message}");
            assert!(!message.contains("at line 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let unknown_f = r#"{"process":0,"type":"invoke","f":"delete","key":"k","value":null,"time":0}"#;
    assert!(parse(unknown_f).unwrap_err().to_string().contains("unknown variant `delete`"));
    let missing = r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null}"#;
    assert!(parse(missing).unwrap_err().to_string().contains("missing field `time`"));
}

#[test]
fn rejects_completion_without_invoke() {
    let (line, reason) = invalid(r#"{"process":0,"type":"ok","f":"read","key":"k","value":1,"time":0}"#);
    assert_eq!(line, 1);
    assert_eq!(reason, "ok of read for process 0, which has no operation in flight");
}

#[test]
fn rejects_two_invokes_in_flight() {
    let (line, reason) = invalid(
        r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null,"time":0}
{"process":0,"type":"invoke","f":"write","key":"k","value":1,"time":1}"#,
    );
    assert_eq!(line, 2);
    assert_eq!(reason, "process 0 invokes write while its read invoked on line 1 is still in flight");
}

#[test]
fn rejects_events_after_info() {
    let text = r#"{"process":0,"type":"invoke","f":"write","key":"k","value":1,"time":0}
{"process":0,"type":"info","f":"write","key":"k","value":null,"time":1}
{"process":0,"type":"invoke","f":"read","key":"k","value":null,"time":2}"#;
    let (line, reason) = invalid(text);
    assert_eq!(line, 3);
    assert!(reason.starts_with("process 0 already ended with info on line 2"), "{reason}");
}

#[test]
fn rejects_mismatched_completion() {
    let (line, reason) = invalid(
        r#"{"process":0,"type":"invoke","f":"write","key":"k","value":1,"time":0}
{"process":0,"type":"ok","f":"write","key":"j","value":1,"time":1}"#,
    );
    assert_eq!(line, 2);
    assert!(reason.contains("whose operation in flight is write \"k\""), "{reason}");
}

#[test]
fn rejects_time_going_backwards() {
    let (line, reason) = invalid(
        r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null,"time":5}
{"process":1,"type":"invoke","f":"read","key":"k","value":null,"time":4}"#,
    );
    assert_eq!(line, 2);
    assert!(reason.contains("time order"), "{reason}");
}

#[test]
fn rejects_values_of_the_wrong_shape() {
    let cases = [
        (r#"{"process":0,"type":"invoke","f":"write","key":"k","value":"x","time":0}"#, "integer"),
        (r#"{"process":0,"type":"invoke","f":"read","key":"k","value":1,"time":0}"#, "null"),
        (r#"{"process":0,"type":"invoke","f":"cas","key":"k","value":[1],"time":0}"#, "[expected, new]"),
        (r#"{"process":0,"type":"invoke","f":"cas","key":"k","value":[1,null],"time":0}"#, "[expected, new]"),
        (r#"{"process":0,"type":"invoke","f":"add","key":"k","value":1.5,"time":0}"#, "integer"),
        (r#"{"process":0,"type":"invoke","f":"set_add","key":"k","value":null,"time":0}"#, "integer"),
    ];
    for (text, expected) in cases {
        let (line, reason) = invalid(text);
        assert_eq!(line, 1);
        assert!(reason.contains(expected), "{text}: {reason}");
    }
    let completions = [
        (
            r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null,"time":0}"#,
            r#"{"process":0,"type":"ok","f":"read","key":"k","value":[1],"time":1}"#,
        ),
        (
            r#"{"process":0,"type":"invoke","f":"write","key":"k","value":1,"time":0}"#,
            r#"{"process":0,"type":"ok","f":"write","key":"k","value":2,"time":1}"#,
        ),
        (
            r#"{"process":0,"type":"invoke","f":"set_read","key":"s","value":null,"time":0}"#,
            r#"{"process":0,"type":"ok","f":"set_read","key":"s","value":[1,"x"],"time":1}"#,
        ),
    ];
    for (invoke, complete) in completions {
        let (line, _) = invalid(&format!("{invoke}\n{complete}"));
        assert_eq!(line, 2, "{complete}");
    }
    // The value of a fail or info completion is not interpreted.
    parse(
        r#"{"process":0,"type":"invoke","f":"read","key":"k","value":null,"time":0}
{"process":0,"type":"info","f":"read","key":"k","value":"timeout","time":1}"#,
    )
    .unwrap();
}

#[test]
fn rejects_a_key_used_by_two_workloads() {
    let (line, reason) = invalid(
        r#"{"process":0,"type":"invoke","f":"write","key":"k","value":1,"time":0}
{"process":0,"type":"ok","f":"write","key":"k","value":1,"time":1}
{"process":0,"type":"invoke","f":"add","key":"k","value":1,"time":2}"#,
    );
    assert_eq!(line, 3);
    assert!(reason.contains("used as a register on line 1 and here as a counter"), "{reason}");
    let (line, _) = invalid(
        r#"{"process":0,"type":"invoke","f":"set_add","key":"k","value":1,"time":0}
{"process":1,"type":"invoke","f":"read","key":"k","value":null,"time":1}"#,
    );
    assert_eq!(line, 2);
    // Reads first, then adds: a counter.
    let history = parse(
        r#"{"process":0,"type":"invoke","f":"read","key":"c","value":null,"time":0}
{"process":1,"type":"invoke","f":"add","key":"c","value":1,"time":1}"#,
    )
    .unwrap();
    assert_eq!(history.key_kind("c"), Some(KeyKind::Counter));
}

#[test]
fn rejects_malformed_markers_and_negative_processes() {
    let (_, reason) = invalid(r#"{"process":3,"type":"info","f":"restart","key":"","value":null,"time":0}"#);
    assert!(reason.starts_with("a restart marker must be"), "{reason}");
    let (_, reason) =
        invalid(r#"{"process":-1,"type":"invoke","f":"restart","key":"","value":null,"time":0}"#);
    assert!(reason.starts_with("a restart marker must be"), "{reason}");
    let (_, reason) = invalid(r#"{"process":-2,"type":"invoke","f":"read","key":"k","value":null,"time":0}"#);
    assert!(reason.contains("negative"), "{reason}");
}

#[test]
fn from_events_numbers_lines_from_one() {
    let events = vec![
        Event::new(0, EventType::Invoke, Function::Read, "k", serde_json::Value::Null, 0),
        Event::new(0, EventType::Invoke, Function::Read, "k", serde_json::Value::Null, 1),
    ];
    match History::from_events(events) {
        Err(e) => assert_eq!(e.line(), 2),
        Ok(_) => panic!("two invokes in flight"),
    }
}

#[test]
fn read_only_keys_are_counters_in_a_counter_history() {
    // c2 is only read: beside the counter c1 and no register, it is a counter that reads 0.
    let history = parse(
        r#"{"process":0,"type":"invoke","f":"add","key":"c1","value":1,"time":0}
{"process":0,"type":"ok","f":"add","key":"c1","value":1,"time":1}
{"process":1,"type":"invoke","f":"read","key":"c2","value":null,"time":2}
{"process":1,"type":"ok","f":"read","key":"c2","value":0,"time":3}
"#,
    )
    .unwrap();
    assert_eq!(history.key_kind("c2"), Some(KeyKind::Counter));
    // With a register in the history, a read-only key stays a register.
    let history = parse(
        r#"{"process":0,"type":"invoke","f":"add","key":"c1","value":1,"time":0}
{"process":0,"type":"ok","f":"add","key":"c1","value":1,"time":1}
{"process":1,"type":"invoke","f":"write","key":"r1","value":1,"time":2}
{"process":1,"type":"ok","f":"write","key":"r1","value":1,"time":3}
{"process":1,"type":"invoke","f":"read","key":"r2","value":null,"time":4}
{"process":1,"type":"ok","f":"read","key":"r2","value":null,"time":5}
"#,
    )
    .unwrap();
    assert_eq!(history.key_kind("r2"), Some(KeyKind::Register));
    // Reads alone: registers.
    let history = parse(
        r#"{"process":1,"type":"invoke","f":"read","key":"k","value":null,"time":0}
{"process":1,"type":"ok","f":"read","key":"k","value":null,"time":1}
"#,
    )
    .unwrap();
    assert_eq!(history.key_kind("k"), Some(KeyKind::Register));
}
