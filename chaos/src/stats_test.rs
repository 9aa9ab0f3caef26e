use super::*;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn op(node: NodeId, invoke_ns: u64, latency_ns: u64, outcome: EventType) -> OpRecord {
    OpRecord {
        process: 0,
        f: Function::Read,
        node,
        invoke_ns,
        complete_ns: Some(invoke_ns + latency_ns),
        outcome: Some(outcome),
        error: (outcome != EventType::Ok).then(|| "Unavailable: no quorum".to_string()),
    }
}

#[test]
fn restart_recovery_is_measured_from_each_restart() {
    let faults = [
        FaultInterval { kind: NemesisKind::Restart, text: "restart".into(), start_ns: 5 * S, end_ns: 10 * S },
        FaultInterval { kind: NemesisKind::Kill, text: "kill n1".into(), start_ns: 12 * S, end_ns: 14 * S },
        FaultInterval {
            kind: NemesisKind::Restart,
            text: "restart".into(),
            start_ns: 20 * S,
            end_ns: 25 * S,
        },
    ];
    let ops = [
        op(1, 9 * S, MS, EventType::Ok), // invoked before the nodes came back: not counted
        op(1, 10 * S, 200 * MS, EventType::Fail),
        op(1, 10 * S + 100 * MS, 400 * MS, EventType::Ok),
        op(2, 10 * S + 300 * MS, 600 * MS, EventType::Ok),
        op(1, 25 * S + 50 * MS, 100 * MS, EventType::Ok), // node 2 never serves after the second
    ];
    let r = restart_recoveries(&ops, &[1, 2], &faults);
    assert_eq!(r.len(), 2, "one entry per restart, none for the kill");
    assert_eq!((r[0].restarted_at_s, r[0].first_ok_ms, r[0].all_nodes_ms), (10.0, Some(500), Some(900)));
    assert_eq!((r[1].first_ok_ms, r[1].all_nodes_ms), (Some(150), None));
}

#[test]
fn op_log_pairs_by_process() {
    let mut log = OpLog::default();
    log.invoke(1, Function::Write, 2, 10);
    log.invoke(2, Function::Read, 3, 11);
    let done = log.complete(1, EventType::Ok, 20, None).unwrap();
    assert_eq!((done.node, done.complete_ns), (2, Some(20)));
    assert!(log.complete(1, EventType::Ok, 30, None).is_none(), "already completed");
    let (all, by_f) = counts(&log.ops);
    assert_eq!((all.invoked, all.ok, all.in_flight), (2, 1, 1));
    assert_eq!(by_f["write"].ok, 1);
}

#[test]
fn availability_splits_by_fault_window() {
    let faults =
        [FaultInterval { kind: NemesisKind::Kill, text: "kill n1".into(), start_ns: 10 * S, end_ns: 20 * S }];
    let ops = [
        op(1, S, MS, EventType::Ok),
        op(1, 11 * S, MS, EventType::Info),
        op(2, 12 * S, MS, EventType::Ok),
        op(2, 13 * S, MS, EventType::Fail),
        op(2, 31 * S, MS, EventType::Info), // after the heal: not counted
    ];
    let a = availability(&ops, &faults, Some(30 * S));
    assert_eq!(a.outside_faults.ops, 1);
    assert_eq!(a.outside_faults.ratio, Some(1.0));
    assert_eq!((a.during_faults.ops, a.during_faults.ok, a.during_faults.answered), (3, 1, 2));
    assert_eq!(a.by_nemesis[&NemesisKind::Kill].ops, 3);
    assert_eq!((a.by_node[&1].ops, a.by_node[&1].answered), (2, 1));
    assert_eq!((a.by_node[&2].ops, a.by_node[&2].answered), (3, 2));
}

#[test]
fn recovery_waits_for_every_node() {
    let heal = 100 * S;
    let ops = [
        op(1, heal - S, MS, EventType::Ok), // before the heal
        op(1, heal + 10 * MS, 5 * MS, EventType::Ok),
        op(2, heal + 20 * MS, 5 * MS, EventType::Info),
        op(2, heal + 400 * MS, 100 * MS, EventType::Ok),
    ];
    let r = recovery(&ops, &[1, 2], heal, 1_000);
    assert_eq!(r.first_ok_ms, Some(15));
    assert_eq!(r.all_nodes_ms, Some(500));
    assert!(r.recovered);
    let r = recovery(&ops, &[1, 2, 3], heal, 1_000);
    assert_eq!(r.all_nodes_ms, None);
    assert!(!r.recovered);
    assert!(!recovery(&ops, &[1, 2], heal, 100).recovered);
}

#[test]
fn latency_and_buckets() {
    let ops: Vec<OpRecord> = (0..100).map(|i| op(1, i * 10 * MS, (i + 1) * MS, EventType::Ok)).collect();
    let l = latency(&ops);
    assert_eq!(l.count, 100);
    assert_eq!(l.max_ms, 100.0);
    assert!((49.0..=52.0).contains(&l.p50_ms));
    let b = buckets(&ops, 2 * S);
    assert_eq!(b.len(), 3);
    assert_eq!(b.iter().map(|b| b.ok).sum::<u64>(), 100);
    assert!(b[2].p50_ms.is_none());
}

#[test]
fn errors_group_by_first_words() {
    let ops = [op(1, 0, 1, EventType::Info), op(1, 0, 1, EventType::Info), op(1, 0, 1, EventType::Ok)];
    assert_eq!(errors(&ops, 5), vec![("Unavailable".to_string(), 2)]);
}
