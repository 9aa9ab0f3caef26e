use serde_json::{Value as Json, json};

use super::*;
use crate::history::{Event, EventType};

/// `(process, type, f, value, time)` on counter `c`.
fn history(events: &[(i64, EventType, Function, Json, u64)]) -> History {
    let events =
        events.iter().map(|(p, t, f, v, time)| Event::new(*p, *t, *f, "c", v.clone(), *time)).collect();
    History::from_events(events).unwrap()
}

use EventType::{Fail, Info, Invoke, Ok as Done};
use Function::{Add, Read};

#[test]
fn reads_within_bounds_are_valid() {
    let history = history(&[
        (0, Invoke, Add, json!(1), 0),
        (1, Invoke, Read, Json::Null, 1),
        (1, Done, Read, Json::Null, 2), // absent = 0: the add may not have happened yet
        (0, Done, Add, json!(1), 3),
        (1, Invoke, Read, Json::Null, 4),
        (1, Done, Read, json!(1), 5),
        (2, Invoke, Add, json!(5), 6),
        (2, Info, Add, Json::Null, 7),
        (1, Invoke, Read, Json::Null, 8),
        (1, Done, Read, json!(6), 9), // the info add landed
        (1, Invoke, Read, Json::Null, 10),
        (1, Done, Read, json!(6), 11),
    ]);
    assert_eq!(check(&history), CheckResult::from_anomalies(vec![]));
}

#[test]
fn failed_adds_never_count() {
    let history = history(&[
        (0, Invoke, Add, json!(5), 0),
        (0, Fail, Add, Json::Null, 1),
        (1, Invoke, Read, Json::Null, 2),
        (1, Done, Read, json!(5), 3),
    ]);
    let result = check(&history);
    assert_eq!(result.anomalies.len(), 1);
    assert_eq!(result.anomalies[0].kind, AnomalyKind::CounterAboveAttempted);
    assert_eq!(result.anomalies[0].lines, [3, 4]);
}

#[test]
fn a_read_concurrent_with_an_add_may_include_it_or_not() {
    for value in [0, 3] {
        let history = history(&[
            (0, Invoke, Add, json!(3), 0),
            (1, Invoke, Read, Json::Null, 1),
            (1, Done, Read, json!(value), 2),
            (0, Done, Add, json!(3), 3),
        ]);
        assert!(check(&history).valid, "read {value}");
    }
}

#[test]
fn below_acknowledged_shows_the_fewest_adds() {
    let history = history(&[
        (0, Invoke, Add, json!(1), 0),
        (0, Done, Add, json!(1), 1),
        (0, Invoke, Add, json!(10), 2),
        (0, Done, Add, json!(10), 3),
        (0, Invoke, Add, json!(2), 4),
        (0, Done, Add, json!(2), 5),
        (1, Invoke, Read, Json::Null, 6),
        (1, Done, Read, json!(9), 7),
    ]);
    let result = check(&history);
    assert_eq!(result.anomalies.len(), 1);
    let anomaly = &result.anomalies[0];
    assert_eq!(anomaly.kind, AnomalyKind::CounterBelowAcknowledged);
    assert_eq!(anomaly.lines, [3, 4, 7, 8], "the add of 10 alone exceeds 9");
    assert!(anomaly.message.contains("is below 13"), "{}", anomaly.message);
}

#[test]
fn negative_amounts_widen_the_bounds() {
    // +5 acknowledged, -3 unknown: a read may see 2 or 5, not 1 nor 6.
    let events = |read: i64| {
        history(&[
            (0, Invoke, Add, json!(5), 0),
            (0, Done, Add, json!(5), 1),
            (1, Invoke, Add, json!(-3), 2),
            (1, Info, Add, Json::Null, 3),
            (2, Invoke, Read, Json::Null, 4),
            (2, Done, Read, json!(read), 5),
        ])
    };
    assert!(check(&events(2)).valid);
    assert!(check(&events(5)).valid);
    assert_eq!(check(&events(1)).anomalies[0].kind, AnomalyKind::CounterBelowAcknowledged);
    assert_eq!(check(&events(1)).anomalies[0].lines, [1, 2, 3, 4, 5, 6]);
    assert_eq!(check(&events(6)).anomalies[0].kind, AnomalyKind::CounterAboveAttempted);
}
