use serde_json::{Value as Json, json};

use super::*;
use crate::history::{Event, EventType};

use EventType::{Fail, Info, Invoke, Ok as Done};
use Function::{SetAdd, SetRead};

/// `(process, type, f, value, time)` on set `s`.
fn history(events: &[(i64, EventType, Function, Json, u64)]) -> History {
    let events =
        events.iter().map(|(p, t, f, v, time)| Event::new(*p, *t, *f, "s", v.clone(), *time)).collect();
    History::from_events(events).unwrap()
}

#[test]
fn complete_final_read_is_valid() {
    let history = history(&[
        (0, Invoke, SetAdd, json!(1), 0),
        (0, Done, SetAdd, json!(1), 1),
        (1, Invoke, SetAdd, json!(2), 2),
        (1, Info, SetAdd, Json::Null, 3),
        (2, Invoke, SetAdd, json!(3), 4),
        (2, Fail, SetAdd, Json::Null, 5),
        (0, Invoke, SetAdd, json!(4), 6),
        (3, Invoke, SetRead, Json::Null, 7),
        (3, Done, SetRead, json!([1, 2]), 8), // 2 (info) landed; 4 concurrent, not yet
        (0, Done, SetAdd, json!(4), 9),
    ]);
    assert!(check(&history).valid);
}

#[test]
fn lost_and_unexpected_elements() {
    let history = history(&[
        (0, Invoke, SetAdd, json!(1), 0),
        (0, Done, SetAdd, json!(1), 1),
        (0, Invoke, SetAdd, json!(2), 2),
        (0, Fail, SetAdd, Json::Null, 3),
        (1, Invoke, SetRead, Json::Null, 4),
        (1, Done, SetRead, json!([2, 1]), 5),
        (1, Invoke, SetRead, Json::Null, 6),
        (1, Done, SetRead, json!([2]), 7),
    ]);
    let result = check(&history);
    let kinds: Vec<(AnomalyKind, Vec<usize>)> =
        result.anomalies.iter().map(|a| (a.kind, a.lines.clone())).collect();
    assert_eq!(
        kinds,
        [
            // 2's add failed, yet the first read holds it (reported once, not for both reads).
            (AnomalyKind::SetElementUnexpected, vec![3, 4, 5, 6]),
            // 1 was acknowledged before the final read.
            (AnomalyKind::SetElementLost, vec![1, 2, 7, 8]),
        ]
    );
    assert!(result.anomalies[0].message.contains("2 reads hold it"), "{}", result.anomalies[0].message);
}

#[test]
fn a_set_never_read_cannot_be_checked() {
    let history = history(&[(0, Invoke, SetAdd, json!(1), 0), (0, Done, SetAdd, json!(1), 1)]);
    let result = check(&history);
    assert_eq!(result.anomalies[0].kind, AnomalyKind::SetNoFinalRead);
}

#[test]
fn an_acknowledged_element_missing_from_the_final_read_is_lost() {
    let history = history(&[
        (0, Invoke, SetAdd, json!(1), 0),
        (0, Done, SetAdd, json!(1), 1),
        (1, Invoke, SetAdd, json!(2), 2),
        (1, Done, SetAdd, json!(2), 3),
        // 3 is unknown: it may be missing.
        (0, Invoke, SetAdd, json!(3), 4),
        (0, Info, SetAdd, Json::Null, 5),
        // An earlier read held 2; only the final read counts for completeness.
        (2, Invoke, SetRead, Json::Null, 6),
        (2, Done, SetRead, json!([1, 2]), 7),
        (2, Invoke, SetRead, Json::Null, 8),
        (2, Done, SetRead, json!([1]), 9),
    ]);
    let result = check(&history);
    assert!(!result.valid);
    assert_eq!(result.anomalies.len(), 1, "{:?}", result.anomalies);
    let anomaly = &result.anomalies[0];
    assert_eq!(anomaly.kind, AnomalyKind::SetElementLost);
    assert_eq!(anomaly.lines, [3, 4, 9, 10]);
    assert!(anomaly.message.starts_with("2 is missing from the final read"), "{}", anomaly.message);
}

#[test]
fn an_element_read_twice_after_one_add_is_duplicated() {
    let history = history(&[
        (0, Invoke, SetAdd, json!(1), 0),
        (0, Info, SetAdd, Json::Null, 1),
        (1, Invoke, SetAdd, json!(2), 2),
        (1, Done, SetAdd, json!(2), 3),
        (2, Invoke, SetRead, Json::Null, 4),
        (2, Done, SetRead, json!([1, 2, 1]), 5),
        (2, Invoke, SetRead, Json::Null, 6),
        (2, Done, SetRead, json!([1, 2, 1]), 7),
    ]);
    let result = check(&history);
    let kinds: Vec<(AnomalyKind, Vec<usize>)> =
        result.anomalies.iter().map(|a| (a.kind, a.lines.clone())).collect();
    // Reported once, at the first read, with the one add of 1.
    assert_eq!(kinds, [(AnomalyKind::SetElementDuplicated, vec![1, 2, 5, 6])]);
    assert!(result.anomalies[0].message.contains("holds 1 2 times"), "{}", result.anomalies[0].message);
    // Two adds of the same element may both land.
    let history = history_with_two_adds();
    assert!(check(&history).valid);
}

fn history_with_two_adds() -> History {
    history(&[
        (0, Invoke, SetAdd, json!(1), 0),
        (0, Done, SetAdd, json!(1), 1),
        (0, Invoke, SetAdd, json!(1), 2),
        (0, Done, SetAdd, json!(1), 3),
        (2, Invoke, SetRead, Json::Null, 4),
        (2, Done, SetRead, json!([1, 1]), 5),
    ])
}
