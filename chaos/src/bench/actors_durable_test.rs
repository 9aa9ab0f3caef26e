use super::*;

fn scheduled(note: &str, id: &str, ms: u64) -> Scheduled {
    Scheduled { note: note.into(), ms, id: id.into(), sent_ms: 1_000, acked_ms: 1_002 }
}

fn fired(note: &str, id: &str, due_ms: u64, fired_ms: u64, times: u32) -> FiredNote {
    FiredNote { id: id.into(), note: note.into(), due_ms, fired_ms, times }
}

#[test]
fn reminders_fired_once_each_give_their_lateness() {
    let keys = vec!["a".to_string(), "b".to_string()];
    let plan = vec![
        vec![scheduled("n0", "1.0", 500), scheduled("n2", "1.1", 700)],
        vec![scheduled("n1", "2.0", 600)],
    ];
    let got = vec![
        vec![fired("n0", "1.0", 1_501, 1_503, 1), fired("n2", "1.1", 1_701, 1_711, 1)],
        vec![fired("n1", "2.0", 1_600, 1_600, 1)],
    ];
    let lateness = verify_fired(&keys, &plan, &got).expect("every reminder fired once");
    assert_eq!(lateness.count, 3);
    assert_eq!(lateness.p50_ms, 2.0);
    assert!((lateness.max_ms - 10.0).abs() < 0.01, "max {}", lateness.max_ms);
}

#[test]
fn every_kind_of_violation_is_reported() {
    let keys = vec!["a".to_string()];
    let plan = vec![vec![
        scheduled("missing", "1.0", 500),
        scheduled("twice", "1.1", 500),
        scheduled("renamed", "1.2", 500),
        scheduled("early", "1.3", 500),
        scheduled("misdated", "1.4", 500),
    ]];
    let got = vec![vec![
        fired("twice", "1.1", 1_501, 1_502, 2),
        fired("renamed", "9.9", 1_501, 1_502, 1),
        fired("early", "1.3", 1_501, 1_499, 1),
        fired("misdated", "1.4", 5_000, 5_000, 1),
        fired("stranger", "7.0", 1_501, 1_502, 1),
    ]];
    let error = verify_fired(&keys, &plan, &got).expect_err("violations").to_string();
    assert!(error.starts_with("6 violations of exactly-once alarms"), "{error}");
    for expected in [
        "reminder missing (1.0) never fired",
        "reminder twice fired 2 times",
        "reminder renamed was scheduled as 1.2 but fired as 9.9",
        "reminder early fired 2 ms before it was due",
        "reminder misdated due at 5000 though scheduled 500 ms ahead between 1000 and 1002",
        "1 entries of a reminder never scheduled (stranger)",
    ] {
        assert!(error.contains(expected), "{expected:?} not in {error}");
    }
    let twice =
        vec![vec![fired("missing", "1.0", 1_501, 1_502, 1), fired("missing", "1.0", 1_501, 1_503, 1)]];
    let error =
        verify_fired(&keys, &[vec![scheduled("missing", "1.0", 500)]], &twice).expect_err("two entries");
    assert!(error.to_string().contains("fired as 2 entries"), "{error}");
}

#[test]
fn a_plan_spreads_delays_over_the_range_the_same_way_every_time() {
    let plan = plan(QUIET_REMINDERS, QUIET_REMINDER_ACTORS, QUIET_DELAY_MS, "quiet");
    assert_eq!(plan, super::plan(QUIET_REMINDERS, QUIET_REMINDER_ACTORS, QUIET_DELAY_MS, "quiet"));
    assert_eq!(plan.len(), QUIET_REMINDERS);
    assert!(plan.iter().all(|(_, _, ms)| QUIET_DELAY_MS.contains(ms)));
    let tenth = (QUIET_DELAY_MS.end - QUIET_DELAY_MS.start) / 10;
    for decile in 0..10 {
        let low = QUIET_DELAY_MS.start + decile * tenth;
        let hits = plan.iter().filter(|(_, _, ms)| (low..low + tenth).contains(ms)).count();
        assert!((25..=75).contains(&hits), "{hits} of {QUIET_REMINDERS} delays in {low}..{}", low + tenth);
    }
    let per_actor = plan.iter().filter(|(actor, _, _)| *actor == 0).count();
    assert_eq!(per_actor, QUIET_REMINDERS / QUIET_REMINDER_ACTORS);
}
