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
