use super::*;

fn topo(n: u32) -> Topology {
    Topology::new(n).unwrap()
}

/// Which nodes `node` can reach (itself included).
fn reach(p: &Partition, t: Topology, node: NodeId) -> Vec<NodeId> {
    let blocked = p.blocked(node);
    t.ids().filter(|x| !blocked.contains(x)).collect()
}

#[test]
fn halves_split_minority_from_majority() {
    for n in [3, 5, 7] {
        for seed in 0..20 {
            let t = topo(n);
            let p = Partition::generate(PartitionShape::Halves, t, &mut Rng::new(seed));
            let (minority, majority) = (&p.groups[0], &p.groups[1]);
            assert_eq!(minority.len() as u32, n / 2);
            assert_eq!(majority.len() as u32, n - n / 2);
            assert_eq!(p.cut.len(), minority.len() * majority.len());
            for &a in minority {
                assert_eq!(reach(&p, t, a).len(), minority.len());
            }
        }
    }
}

#[test]
fn isolate_cuts_one_node_from_all() {
    let t = topo(5);
    let p = Partition::generate(PartitionShape::Isolate, t, &mut Rng::new(3));
    let alone = p.groups[0][0];
    assert_eq!(p.blocked(alone).len(), 4);
    assert_eq!(p.cut.len(), 4);
    for other in t.ids().filter(|&x| x != alone) {
        assert_eq!(p.blocked(other), vec![alone]);
    }
}

#[test]
fn bridge_sees_both_sides() {
    for n in [3, 5, 7] {
        let t = topo(n);
        let p = Partition::generate(PartitionShape::Bridge, t, &mut Rng::new(9));
        let bridge = p.groups[1][0];
        assert!(p.blocked(bridge).is_empty(), "the bridge reaches everyone");
        for &a in &p.groups[0] {
            for &b in &p.groups[2] {
                assert!(p.blocked(a).contains(&b));
            }
        }
        // Both sides plus the bridge: the larger side with the bridge is a majority.
        let larger = p.groups[0].len().max(p.groups[2].len()) as u32 + 1;
        assert!(larger > n / 2);
    }
}

#[test]
fn majorities_ring_gives_every_node_a_distinct_majority() {
    for n in [5, 7] {
        let t = topo(n);
        let p = Partition::generate(PartitionShape::MajoritiesRing, t, &mut Rng::new(1));
        assert!(!p.cut.is_empty());
        let mut views = BTreeSet::new();
        for node in t.ids() {
            let seen = reach(&p, t, node);
            assert!(seen.len() as u32 > n / 2, "node {node} sees {seen:?}, not a majority");
            assert!((seen.len() as u32) < n, "node {node} sees everyone");
            views.insert(seen);
        }
        assert_eq!(views.len() as u32, n, "every node sees a different majority");
    }
    assert!(!PartitionShape::for_nodes(3).contains(&PartitionShape::MajoritiesRing));
}

#[test]
fn same_seed_same_partition() {
    let t = topo(7);
    for shape in PartitionShape::ALL {
        let a = Partition::generate(shape, t, &mut Rng::new(42));
        let b = Partition::generate(shape, t, &mut Rng::new(42));
        assert_eq!(a, b);
    }
}

#[test]
fn partition_rules_drop_both_addresses_of_blocked_peers() {
    let t = topo(3);
    let p = Partition {
        shape: PartitionShape::Isolate,
        groups: vec![vec![2], vec![1, 3]],
        cut: vec![(1, 2), (2, 3)],
    };
    let fault = Fault::Partition(p);
    let script = node_ruleset(t, 1, &[&fault]);
    assert_eq!(
        script,
        "table inet mch_chaos {}\n\
         delete table inet mch_chaos\n\
         table inet mch_chaos {\n\
         \tchain input {\n\
         \t\ttype filter hook input priority 0; policy accept;\n\
         \t\tip saddr { 10.77.0.12, 10.77.0.112 } drop\n\
         \t}\n\
         \tchain output {\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\tip daddr { 10.77.0.12, 10.77.0.112 } drop\n\
         \t}\n\
         }\n"
    );
    let isolated = node_ruleset(t, 2, &[&fault]);
    assert!(isolated.contains("ip saddr { 10.77.0.11, 10.77.0.111, 10.77.0.13, 10.77.0.113 } drop"));
    // Never the client address.
    assert!(!isolated.contains("10.77.0.2 ") && !isolated.contains("10.77.0.2,"));
}

#[test]
fn loss_rules_apply_only_to_chosen_nodes() {
    let t = topo(3);
    let fault = Fault::Loss { nodes: vec![3], percent: 20 };
    let lossy = node_ruleset(t, 3, &[&fault]);
    // Egress only.
    assert!(lossy.contains(
        "\t\tip daddr { 10.77.0.11, 10.77.0.111, 10.77.0.12, 10.77.0.112 } numgen random mod 100 < 20 drop\n"
    ));
    assert_eq!(lossy.matches("numgen").count(), 1);
    let clean = node_ruleset(t, 1, &[&fault]);
    assert!(!clean.contains("drop"));
    // No faults: an empty accepting table.
    assert_eq!(node_ruleset(t, 1, &[]), clean);
}

#[test]
fn partition_and_loss_combine() {
    let t = topo(5);
    let p = Partition::generate(PartitionShape::Isolate, t, &mut Rng::new(0));
    let alone = p.groups[0][0];
    let faults = [Fault::Partition(p), Fault::Loss { nodes: vec![alone], percent: 5 }];
    let script = node_ruleset(t, alone, &faults.iter().collect::<Vec<_>>());
    // Partition: input and output; loss: output.
    assert_eq!(script.matches(" drop\n").count(), 3);
}

#[test]
fn nemesis_spec_parses() {
    let spec: NemesisSpec = "partition,kill,pause".parse().unwrap();
    assert_eq!(spec.kinds, vec![NemesisKind::Partition, NemesisKind::Kill, NemesisKind::Pause]);
    assert!(!spec.mixed);
    assert_eq!(spec.to_string(), "partition,kill,pause");
    let mixed: NemesisSpec = "mixed".parse().unwrap();
    assert!(mixed.mixed);
    assert_eq!(mixed.kinds.len(), 7);
    assert!(mixed.kinds.contains(&NemesisKind::Restart));
    assert!(mixed.kinds.contains(&NemesisKind::Membership));
    assert_eq!("restart".parse::<NemesisSpec>().unwrap().kinds, vec![NemesisKind::Restart]);
    assert_eq!("membership".parse::<NemesisSpec>().unwrap().kinds, vec![NemesisKind::Membership]);
    assert_eq!("none".parse::<NemesisSpec>().unwrap().kinds, vec![]);
    assert!("partition,frobnicate".parse::<NemesisSpec>().unwrap_err().contains("frobnicate"));
    assert!("none,kill".parse::<NemesisSpec>().is_err());
    assert!("".parse::<NemesisSpec>().is_err());
}

#[test]
fn fault_text() {
    assert_eq!(Fault::Kill { nodes: vec![1, 3] }.to_string(), "kill n1,n3");
    assert_eq!(Fault::Loss { nodes: vec![2], percent: 20 }.to_string(), "loss 20% n2");
    let p = Partition {
        shape: PartitionShape::Bridge,
        groups: vec![vec![1], vec![3], vec![2]],
        cut: vec![(1, 2)],
    };
    assert_eq!(Fault::Partition(p).to_string(), "partition bridge [1] | 3 | [2]");
    let detail = Fault::Latency { delay_ms: 50 }.detail();
    assert_eq!(detail["delay_ms"], 50);
    assert_eq!(detail["text"], "latency 50ms");
    assert_eq!(Fault::Restart.to_string(), "restart of every node");
    assert_eq!(Fault::Restart.kind(), NemesisKind::Restart);
}

#[test]
fn a_restart_adds_no_rules() {
    let t = topo(3);
    assert_eq!(node_ruleset(t, 1, &[&Fault::Restart]), node_ruleset(t, 1, &[]));
}
