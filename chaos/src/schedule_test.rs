use super::*;

fn config(seed: u64, nodes: u32, nemesis: &str, limit_s: u64) -> ScheduleConfig {
    ScheduleConfig {
        seed,
        topology: Topology::new(nodes).unwrap(),
        nemesis: nemesis.parse().unwrap(),
        time_limit: Duration::from_secs(limit_s),
        latency_ms_max: 200,
        loss_percent_max: 30,
    }
}

#[test]
fn same_seed_same_schedule() {
    for nemesis in ["partition", "partition,kill,pause", "mixed", "loss,latency"] {
        let a = Schedule::generate(&config(17, 5, nemesis, 300));
        let b = Schedule::generate(&config(17, 5, nemesis, 300));
        assert_eq!(a, b, "{nemesis}");
        assert!(!a.windows.is_empty());
        let c = Schedule::generate(&config(18, 5, nemesis, 300));
        assert_ne!(a, c, "another seed gives another schedule ({nemesis})");
    }
}

#[test]
fn windows_are_ordered_and_end_by_the_time_limit() {
    for seed in 0..50 {
        let limit_s = 20 + seed * 7;
        let s = Schedule::generate(&config(seed, 7, "mixed", limit_s));
        let mut previous_end = 0;
        for w in &s.windows {
            assert!(w.start_ms >= previous_end + QUIET_MS_MIN || previous_end == 0, "seed {seed}: {w:?}");
            assert!(w.end_ms - w.start_ms >= FAULT_MS_MIN && w.end_ms - w.start_ms <= FAULT_MS_MAX);
            assert!(w.end_ms <= limit_s * 1000, "seed {seed}: window past the limit");
            previous_end = w.end_ms;
        }
    }
}

#[test]
fn faults_respect_the_request() {
    let mut pairs = 0;
    for seed in 0..100 {
        let s = Schedule::generate(&config(seed, 5, "kill,pause", 120));
        for w in &s.windows {
            assert_eq!(w.faults.len(), 1, "a list gives one fault at a time");
            match &w.faults[0] {
                Fault::Kill { nodes } | Fault::Pause { nodes } => {
                    assert!((1..=2).contains(&nodes.len()), "a minority of 5: {nodes:?}");
                }
                other => panic!("unexpected fault {other}"),
            }
        }
        let mixed = Schedule::generate(&config(seed, 5, "mixed", 120));
        for w in &mixed.windows {
            assert!((1..=2).contains(&w.faults.len()));
            if w.faults.len() == 2 {
                pairs += 1;
                assert_ne!(w.faults[0].kind(), w.faults[1].kind());
            }
            for f in &w.faults {
                match f {
                    Fault::Loss { percent, nodes } => {
                        assert!((5..=30).contains(percent) && !nodes.is_empty());
                    }
                    Fault::Latency { delay_ms } => assert!((50..=200).contains(delay_ms)),
                    _ => {}
                }
            }
        }
    }
    assert!(pairs > 0, "mixed combines faults sometimes");
}

#[test]
fn a_whole_cluster_restart_has_its_window_to_itself() {
    let mut restarts = 0;
    for seed in 0..200 {
        for w in Schedule::generate(&config(seed, 5, "mixed", 300)).windows {
            if w.faults.contains(&Fault::Restart) {
                restarts += 1;
                assert_eq!(w.faults, [Fault::Restart], "seed {seed}: a restart shares its window");
            }
        }
        for w in Schedule::generate(&config(seed, 3, "restart", 60)).windows {
            assert_eq!(w.faults, [Fault::Restart], "seed {seed}");
        }
    }
    assert!(restarts > 0, "mixed restarts the cluster sometimes");
}

#[test]
fn kill_pause_and_membership_in_one_window_hit_different_nodes() {
    for seed in 0..300 {
        for w in Schedule::generate(&config(seed, 3, "mixed", 120)).windows {
            let mut stopped = Vec::new();
            for f in &w.faults {
                match f {
                    Fault::Kill { nodes } | Fault::Pause { nodes } => stopped.extend(nodes.iter().copied()),
                    Fault::Membership { node, .. } => stopped.push(*node),
                    _ => {}
                }
            }
            let count = stopped.len();
            stopped.sort_unstable();
            stopped.dedup();
            assert_eq!(stopped.len(), count, "seed {seed}: {w:?}");
        }
    }
}

#[test]
fn none_and_short_limits_give_no_windows() {
    assert!(Schedule::generate(&config(1, 3, "none", 60)).windows.is_empty());
    assert!(Schedule::generate(&config(1, 3, "kill", 3)).windows.is_empty());
}

#[test]
fn bad_limits_are_refused() {
    let mut c = config(1, 3, "loss", 60);
    c.loss_percent_max = 100;
    assert!(c.validate().unwrap_err().contains("--loss-percent-max"));
    c.loss_percent_max = 30;
    c.latency_ms_max = 0;
    assert!(c.validate().unwrap_err().contains("--latency-ms-max"));
}

/// `mixed` draws the membership nemesis too, one node at a time, on every cluster size.
#[test]
fn mixed_removes_one_node_at_a_time() {
    for nodes in [3, 5, 7] {
        let mut ops = BTreeSet::new();
        for seed in 0..100 {
            for w in Schedule::generate(&config(seed, nodes, "mixed", 120)).windows {
                let mut slots = w.faults.iter().filter_map(|f| match f {
                    Fault::Membership { node, op } => Some((*node, *op)),
                    _ => None,
                });
                if let Some((node, op)) = slots.next() {
                    assert!((1..=nodes).contains(&node), "seed {seed}: {w:?}");
                    ops.insert(op.name());
                }
                assert!(slots.next().is_none(), "seed {seed}: two membership changes at once: {w:?}");
            }
        }
        assert_eq!(ops.len(), MembershipOp::ALL.len(), "{nodes} nodes: mixed drew only {ops:?}");
    }
}
