use std::collections::BTreeMap;

use proptest::prelude::*;

use super::super::testing::{CLUSTER, cluster, initialize_command, refuse};
use super::super::{ClusterMetadata, Command, GroupId, ReconfigKind, Refusal};
use crate::ring::NodeId;

#[test]
fn an_accepted_command_sets_the_version_and_a_refused_one_leaves_it() {
    let mut meta = cluster(3);
    assert_eq!(meta.version, 1);
    assert_eq!(meta.apply(10, &Command::Drain { node: 1 }).map(|_| meta.version), Ok(10));
    // refuse() checks the whole metadata, version included, is unchanged.
    assert_eq!(refuse(&mut meta, &Command::Drain { node: 9 }), Refusal::UnknownNode { node: 9 });
    assert_eq!(meta.version, 10);
}

#[test]
#[should_panic(expected = "control metadata version regressed: current=1 applying=1")]
fn applying_at_an_old_version_is_a_bug() {
    let mut meta = cluster(3);
    let _ = meta.apply(1, &Command::Drain { node: 1 });
}

/// One random step, read against the current metadata so that most steps are plausible: ids
/// near the known ones, the current epoch and attempt most of the time.
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    a: u8,
    b: u8,
    c: u8,
    mask: u16,
}

fn step() -> impl Strategy<Value = Step> {
    (0u8..16, any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(op, a, b, c, mask)| Step {
        op,
        a,
        b,
        c,
        mask,
    })
}

/// The command `step` stands for in `meta`.
fn command(meta: &ClusterMetadata, s: &Step) -> Command {
    // Ids 1..=next_node_id: every known node and one unknown.
    let node = |x: u8| 1 + NodeId::from(x) % meta.next_node_id;
    let group = if s.c % 8 == 7 { GroupId(1) } else { GroupId::FIRST };
    let g = meta.groups.get(&GroupId::FIRST);
    let epoch = g.map_or(1, |g| g.epoch);
    let members = g.map_or(vec![], |g| g.members.clone());
    let pending = g.and_then(|g| g.pending.as_ref()).map(|p| p.attempt);
    let bit = |i: usize| s.mask & (1 << (i % 16)) != 0;
    // Mostly a member, sometimes any id.
    let member = |x: u8| {
        if members.is_empty() || x.is_multiple_of(4) {
            node(x)
        } else {
            members[usize::from(x) % members.len()]
        }
    };
    match s.op {
        0 => initialize_command(1..=NodeId::from(s.a % 4 + 2)),
        1 if s.c % 4 == 3 => Command::RegisterReplacement {
            cluster_id: CLUSTER,
            address: format!("10.0.1.{}:7100", s.b % 8),
            region: format!("r{}", s.a % 3),
            incarnation: 2000 + u64::from(s.a % 10),
            replaces: member(s.b),
        },
        1 | 2 => Command::RegisterNode {
            cluster_id: if s.c % 16 == 15 { CLUSTER + 1 } else { CLUSTER },
            // Few incarnations and addresses: retries and collisions happen.
            address: format!("10.0.1.{}:7100", s.b % 8),
            region: format!("r{}", s.a % 3),
            incarnation: 2000 + u64::from(s.a % 10),
        },
        3..=6 => {
            let kind = match s.c % 3 {
                0 => ReconfigKind::Add { node: node(s.a) },
                1 => ReconfigKind::Remove { node: member(s.a) },
                _ => ReconfigKind::Replace { dead: member(s.a), with: node(s.b) },
            };
            // Each member unreachable one time in four; the dead one of a replace usually.
            let unreachable =
                |i: usize, m: NodeId| (bit(i) && bit(i + 7)) || (kind.leaving() == Some(m) && bit(i));
            let reachable =
                members.iter().enumerate().filter(|&(i, &m)| !unreachable(i, m)).map(|(_, &m)| m).collect();
            let from_epoch = if s.mask >> 13 == 0b111 { epoch.saturating_sub(1) } else { epoch };
            Command::BeginReconfig { group, from_epoch, kind, driver: member(s.b), reachable }
        }
        7..=9 => {
            let attempt = if s.c.is_multiple_of(8) { u64::from(s.a % 4) } else { pending.unwrap_or(1) };
            let mut cut: Vec<(NodeId, u64)> = members.iter().map(|&m| (m, u64::from(s.b % 2))).collect();
            if s.c % 8 == 1 {
                cut.pop();
            }
            Command::CommitReconfig { group, attempt, cut }
        }
        10 => {
            let attempt = if s.c.is_multiple_of(4) { u64::from(s.a % 4) } else { pending.unwrap_or(1) };
            Command::AbortReconfig { group, attempt }
        }
        11 | 12 => {
            let epoch =
                if s.b.is_multiple_of(4) { (epoch + u64::from(s.b % 3)).saturating_sub(1) } else { epoch };
            Command::ReportReady { group, epoch, node: member(s.a) }
        }
        13 if s.c.is_multiple_of(3) => {
            Command::ClaimIncarnation { node: member(s.a), incarnation: u64::from(s.b % 4) + 1 }
        }
        13 => Command::Drain { node: member(s.a) },
        14 => Command::Undrain { node: member(s.a) },
        _ => {
            // Now and then an unknown id, or more than the control plane may have.
            let last = if s.c.is_multiple_of(4) { meta.next_node_id } else { meta.next_node_id - 1 };
            let voters = (1..=last).filter(|&id| bit(id as usize)).take(8).collect();
            Command::SetControlVoters { voters }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random command sequences: each accepted command is idempotent, each refused one changes
    /// nothing, epochs and identities never go back, snapshots round-trip, and replaying the same
    /// log gives the same metadata (`apply` itself asserts the invariants after every command).
    #[test]
    fn random_commands_keep_the_invariants(steps in proptest::collection::vec(step(), 1..80)) {
        let mut meta = ClusterMetadata::new();
        let mut log = Vec::new();
        let mut epochs: BTreeMap<GroupId, u64> = BTreeMap::new();
        let mut identities = BTreeMap::new();
        for s in &steps {
            let command = if log.is_empty() { initialize_command(1..=NodeId::from(s.a % 5 + 1)) } else { command(&meta, s) };
            let before = meta.clone();
            let version = meta.version + 1 + u64::from(s.c % 3);
            match meta.apply(version, &command) {
                Ok(outcome) => {
                    prop_assert_eq!(meta.version, version);
                    let after = meta.clone();
                    let again = meta.apply(version + 1, &command);
                    prop_assert_eq!(again, Ok(outcome), "{:?} is not idempotent", command);
                    let mut unchanged = after;
                    unchanged.version = version + 1;
                    prop_assert_eq!(&meta, &unchanged, "repeating {:?} changed the metadata", command);
                    log.push((version, command.clone()));
                    log.push((version + 1, command));
                }
                Err(refusal) => {
                    prop_assert_eq!(&meta, &before, "refusal {} changed the metadata", refusal);
                    let again = meta.apply(version, &command);
                    prop_assert_eq!(again, Err(refusal));
                }
            }
            for (id, group) in &meta.groups {
                let seen = epochs.entry(*id).or_insert(group.epoch);
                prop_assert!(group.epoch >= *seen, "group {} epoch {} after {}", id, group.epoch, seen);
                *seen = group.epoch;
            }
            for (id, node) in &meta.nodes {
                // An initial node's incarnation changes once, when its directory claims it.
                let initial = meta.initial.iter().find(|i| i.id == *id).map(|i| i.incarnation);
                let first = identities.entry(*id).or_insert(node.incarnation);
                if Some(*first) == initial && node.incarnation != *first {
                    *first = node.incarnation;
                }
                prop_assert_eq!(*first, node.incarnation, "node {} changed incarnation", id);
            }
            prop_assert_eq!(ClusterMetadata::restore(&meta.snapshot()), Ok(meta.clone()));
        }
        let mut replayed = ClusterMetadata::new();
        for (version, command) in &log {
            prop_assert!(replayed.apply(*version, command).is_ok());
        }
        prop_assert_eq!(replayed, meta);
    }
}
