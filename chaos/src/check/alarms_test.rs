use serde_json::{Value as Json, json};

use super::*;
use crate::history::{Event, EventType};

use EventType::{Fail, Info, Invoke, Ok as Done};
use Function::{AlarmRead, AlarmSet};

/// `(process, type, f, value, time)` on alarm key `a`.
fn history(events: &[(i64, EventType, Function, Json, u64)]) -> History {
    let events =
        events.iter().map(|(p, t, f, v, time)| Event::new(*p, *t, *f, "a", v.clone(), *time)).collect();
    History::from_events(events).unwrap()
}

/// Seconds, in history time (ns).
const S: u64 = 1_000_000_000;

/// An alarm asked at wall clock 10 000 ms for `ms` ms, with `note`.
fn ask(note: i64, ms: u64) -> Json {
    json!({"note": note, "ms": ms, "unix_ms": 10_000})
}

fn fired(note: i64, due_ms: u64, fired_ms: u64, times: u32) -> Json {
    json!({"id": format!("{note}.0"), "note": note, "due_ms": due_ms, "fired_ms": fired_ms, "times": times})
}

fn kinds(result: &CheckResult) -> Vec<(AnomalyKind, Vec<usize>)> {
    result.anomalies.iter().map(|a| (a.kind, a.lines.clone())).collect()
}

#[test]
fn alarms_fired_once_after_due_are_valid() {
    let history = history(&[
        (0, Invoke, AlarmSet, ask(1, 500), 0),
        (0, Done, AlarmSet, ask(1, 500), 1),
        (1, Invoke, AlarmSet, ask(2, 500), 2),
        (1, Info, AlarmSet, Json::Null, 3),
        (2, Invoke, AlarmSet, ask(3, 500), 4),
        (2, Info, AlarmSet, Json::Null, 5),
        (3, Invoke, AlarmSet, ask(4, 500), 6),
        (3, Fail, AlarmSet, Json::Null, 7),
        // 2 (info) fired, 3 (info) did not, 4 (failed) did not.
        (4, Invoke, AlarmRead, Json::Null, 10 * S),
        (4, Done, AlarmRead, json!([fired(1, 10_500, 10_520, 1), fired(2, 10_501, 10_501, 1)]), 10 * S + 1),
    ]);
    let result = check(&history);
    assert!(result.valid, "{:?}", result.anomalies);
    assert_eq!(result.lateness, Some(Lateness { alarms: 2, p50_ms: 20, p99_ms: 20, max_ms: 20 }));
}

#[test]
fn an_acknowledged_alarm_long_past_due_missing_from_the_final_read_is_lost() {
    let events = |read_at: u64| {
        history(&[
            (0, Invoke, AlarmSet, ask(1, 2_000), 0),
            (0, Done, AlarmSet, ask(1, 2_000), S),
            // An earlier read held it: only the final read counts.
            (1, Invoke, AlarmRead, Json::Null, 4 * S),
            (1, Done, AlarmRead, json!([fired(1, 12_000, 12_001, 1)]), 4 * S),
            (1, Invoke, AlarmRead, Json::Null, read_at),
            (1, Done, AlarmRead, json!([]), read_at + 1),
        ])
    };
    // Acknowledged at 1 s, due by 3 s at the latest: lost from 8 s on.
    let result = check(&events(8 * S));
    assert_eq!(kinds(&result), [(AnomalyKind::AlarmLost, vec![1, 2, 5, 6])]);
    let message = &result.anomalies[0].message;
    assert!(message.starts_with("note 1 is not in the final read (process 1 on line 5)"), "{message}");
    assert!(message.contains("due at least 5000 ms before"), "{message}");
    // Just before that, it may still be on its way.
    assert!(check(&events(8 * S - 1)).valid);
}

#[test]
fn an_alarm_that_ran_twice_or_fired_for_one_request_twice() {
    let history = history(&[
        (0, Invoke, AlarmSet, ask(1, 500), 0),
        (0, Info, AlarmSet, Json::Null, 1),
        (1, Invoke, AlarmSet, ask(2, 500), 2),
        (1, Done, AlarmSet, ask(2, 500), 3),
        (2, Invoke, AlarmRead, Json::Null, 10 * S),
        (2, Done, AlarmRead, json!([fired(1, 10_500, 10_500, 2)]), 10 * S + 1),
        // Note 2 fired by two alarms; 1 is still reported once.
        (2, Invoke, AlarmRead, Json::Null, 10 * S + 2),
        (
            2,
            Done,
            AlarmRead,
            json!([
                fired(1, 10_500, 10_500, 2),
                fired(2, 10_500, 10_500, 1),
                {"id": "9.0", "note": 2, "due_ms": 10_500, "fired_ms": 10_600, "times": 1}
            ]),
            10 * S + 3,
        ),
    ]);
    let result = check(&history);
    assert_eq!(
        kinds(&result),
        [(AnomalyKind::AlarmFiredTwice, vec![1, 2, 5, 6]), (AnomalyKind::AlarmFiredTwice, vec![3, 4, 7, 8])]
    );
    assert!(
        result.anomalies[0].message.contains("ran its action 2 times"),
        "{}",
        result.anomalies[0].message
    );
    let message = &result.anomalies[1].message;
    assert!(message.contains("note 2 fired by 2 alarms (2.0, 9.0), but 1 alarm_set"), "{message}");
}

#[test]
fn alarms_before_due_or_due_too_soon_are_early() {
    let history = history(&[
        (0, Invoke, AlarmSet, ask(1, 500), 0),
        (0, Done, AlarmSet, ask(1, 500), 1),
        (1, Invoke, AlarmSet, ask(2, 500), 2),
        (1, Done, AlarmSet, ask(2, 500), 3),
        (2, Invoke, AlarmRead, Json::Null, 10 * S),
        // 1 fired 1 ms before its due time; 2 was due at 10 400 though asked at 10 000 for 500 ms.
        (2, Done, AlarmRead, json!([fired(1, 10_500, 10_499, 1), fired(2, 10_400, 10_450, 1)]), 10 * S + 1),
    ]);
    let result = check(&history);
    assert_eq!(
        kinds(&result),
        [(AnomalyKind::AlarmFiredEarly, vec![1, 2, 5, 6]), (AnomalyKind::AlarmDueEarly, vec![3, 4, 5, 6])]
    );
    assert!(
        result.anomalies[0].message.contains("1 ms before it was due"),
        "{}",
        result.anomalies[0].message
    );
    let message = &result.anomalies[1].message;
    assert!(message.contains("100 ms before the delay asked for had passed (10500 ms"), "{message}");
}

#[test]
fn alarms_nobody_could_have_asked_for_are_unexpected() {
    let history = history(&[
        (0, Invoke, AlarmSet, ask(1, 500), 0),
        (0, Fail, AlarmSet, Json::Null, 1),
        (1, Invoke, AlarmRead, Json::Null, 10 * S),
        // 1's request failed; 2 was never asked for; 3 was asked after the read completed.
        (
            1,
            Done,
            AlarmRead,
            json!([fired(1, 10_500, 10_500, 1), fired(2, 10_500, 10_500, 1), fired(3, 10_500, 10_500, 1)]),
            10 * S + 1,
        ),
        (2, Invoke, AlarmSet, ask(3, 500), 10 * S + 2),
        (2, Done, AlarmSet, ask(3, 500), 10 * S + 3),
    ]);
    let result = check(&history);
    assert_eq!(
        kinds(&result),
        [
            (AnomalyKind::AlarmUnexpected, vec![1, 2, 3, 4]),
            (AnomalyKind::AlarmUnexpected, vec![3, 4]),
            (AnomalyKind::AlarmUnexpected, vec![3, 4, 5, 6]),
        ]
    );
    assert!(result.anomalies[1].message.contains("(0 alarm_sets of it in the whole history)"));
}

#[test]
fn a_key_never_read_cannot_be_checked() {
    let history = history(&[(0, Invoke, AlarmSet, ask(1, 500), 0), (0, Done, AlarmSet, ask(1, 500), 1)]);
    let result = check(&history);
    assert_eq!(kinds(&result), [(AnomalyKind::AlarmNoFinalRead, vec![])]);
    assert_eq!(result.lateness, Some(Lateness::default()));
}

#[test]
fn lateness_percentiles() {
    assert_eq!(Lateness::of(vec![]), Lateness::default());
    let late: Vec<u64> = (1..=200).rev().collect();
    assert_eq!(Lateness::of(late), Lateness { alarms: 200, p50_ms: 101, p99_ms: 198, max_ms: 200 });
}
