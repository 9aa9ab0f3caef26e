use serde_json::{Value as Json, json};

use super::*;
use crate::check::AnomalyKind;
use crate::history::{Event, EventType, Function};

use EventType::{Info, Invoke, Ok as Done};
use Function::{Read, Write};

fn history(events: &[(i64, EventType, Function, Json, u64)]) -> History {
    let events = events
        .iter()
        .map(|(p, t, f, v, time)| {
            if *f == Function::Restart {
                Event::restart(*time)
            } else {
                Event::new(*p, *t, *f, "k", v.clone(), *time)
            }
        })
        .collect();
    History::from_events(events).unwrap()
}

#[test]
fn acknowledged_write_lost_by_a_restart_is_caught() {
    let history = history(&[
        (0, Invoke, Write, json!(1), 0),
        (0, Done, Write, json!(1), 1),
        (0, Invoke, Write, json!(2), 2),
        (0, Done, Write, json!(2), 3), // acknowledged ...
        (-1, Info, Function::Restart, Json::Null, 4),
        (1, Invoke, Read, Json::Null, 5),
        (1, Done, Read, json!(1), 6), // ... and gone after the restart
    ]);
    let result = check(&history);
    assert!(!result.valid);
    let anomaly = &result.anomalies[0];
    assert_eq!(anomaly.kind, AnomalyKind::LostAcrossRestart);
    assert_eq!(anomaly.lines, [1, 2, 3, 4, 5, 6, 7]);
    assert!(
        anomaly.message.starts_with("after the cluster restart on line 5, process 1 read k: ok 1"),
        "{}",
        anomaly.message
    );
    // The plain linearizability checker finds the same operations, without the restart.
    let plain = crate::check::linearizable::check(&history);
    assert_eq!(plain.anomalies[0].kind, AnomalyKind::NotLinearizable);
    assert_eq!(plain.anomalies[0].lines, [1, 2, 3, 4, 6, 7]);
}

#[test]
fn unknown_write_may_be_lost_by_a_restart() {
    let history = history(&[
        (0, Invoke, Write, json!(1), 0),
        (0, Done, Write, json!(1), 1),
        (1, Invoke, Write, json!(2), 2),
        (-1, Info, Function::Restart, Json::Null, 4),
        (1, Info, Write, Json::Null, 5),
        (2, Invoke, Read, Json::Null, 6),
        (2, Done, Read, json!(1), 7),
    ]);
    assert!(check(&history).valid);
}

#[test]
fn anomaly_before_the_restart_is_not_blamed_on_it() {
    let history = history(&[
        (0, Invoke, Write, json!(1), 0),
        (0, Done, Write, json!(1), 1),
        (1, Invoke, Read, Json::Null, 2),
        (1, Done, Read, json!(9), 3),
        (-1, Info, Function::Restart, Json::Null, 4),
    ]);
    let result = check(&history);
    assert_eq!(result.anomalies[0].kind, AnomalyKind::NotLinearizable);
}
