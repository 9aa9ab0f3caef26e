use std::collections::{BTreeMap, BTreeSet};

use super::super::testing::{
    CLUSTER, accept, accept_twice, begin_by, cluster, initial_node, initialize_command, refuse,
    register_command,
};
use super::super::{
    Action, ClusterMetadata, Command, Group, GroupId, InitialNode, NODES_MAX, NodeEntry, NodeState, Outcome,
    ReconfigKind, Refusal,
};
use super::NODE_ID_MAX;
use crate::ring::{GRPC_ADDR_BYTES_MAX, NodeId, REGION_BYTES_MAX};

fn with_address(mut node: InitialNode, address: &str) -> InitialNode {
    node.address = address.into();
    node
}

fn entry(id: NodeId, state: NodeState) -> NodeEntry {
    let n = initial_node(id);
    NodeEntry { id, address: n.address, region: n.region, incarnation: n.incarnation, state }
}

#[test]
fn initialize_makes_every_node_an_active_ready_member_at_epoch_1() {
    let mut meta = ClusterMetadata::new();
    let outcome = accept(&mut meta, &initialize_command([3, 1, 2]));
    assert_eq!(outcome, Outcome::Initialized { cluster_id: CLUSTER });
    let want = ClusterMetadata {
        cluster_id: CLUSTER,
        version: 1,
        next_node_id: 4,
        nodes: (1..=3).map(|id| (id, entry(id, NodeState::Active))).collect(),
        groups: BTreeMap::from([(
            GroupId::FIRST,
            Group {
                id: GroupId::FIRST,
                epoch: 1,
                members: vec![1, 2, 3],
                ready: BTreeSet::from([1, 2, 3]),
                pending: None,
                attempts: 0,
                last_commit: None,
            },
        )]),
        control_voters: BTreeSet::from([1, 2, 3]),
        initial: (1..=3).map(initial_node).collect(),
        behind: BTreeMap::new(),
    };
    assert_eq!(meta, want);
}

#[test]
fn initialize_again_with_the_same_nodes_in_any_order_is_a_no_op() {
    let mut meta = ClusterMetadata::new();
    accept_twice(&mut meta, &initialize_command([1, 2, 3]));
    let before = meta.clone();
    assert_eq!(
        accept(&mut meta, &initialize_command([3, 2, 1])),
        Outcome::Initialized { cluster_id: CLUSTER }
    );
    assert_eq!(meta.nodes, before.nodes);
}

#[test]
fn initialize_again_with_other_nodes_is_refused() {
    let mut meta = cluster(3);
    let refusal = refuse(&mut meta, &initialize_command([1, 2]));
    assert_eq!(refusal, Refusal::AlreadyInitialized { cluster_id: CLUSTER });
    let other_cluster =
        Command::Initialize { cluster_id: CLUSTER + 1, nodes: (1..=3).map(initial_node).collect() };
    assert_eq!(refuse(&mut meta, &other_cluster), Refusal::AlreadyInitialized { cluster_id: CLUSTER });
}

#[test]
fn initialize_refuses_no_nodes_and_more_than_a_group_holds() {
    let mut meta = ClusterMetadata::new();
    assert_eq!(refuse(&mut meta, &initialize_command([])), Refusal::InitialClusterSize { count: 0, max: 7 });
    assert_eq!(
        refuse(&mut meta, &initialize_command(1..=8)),
        Refusal::InitialClusterSize { count: 8, max: 7 }
    );
}

#[test]
fn initialize_refuses_bad_node_ids() {
    let mut meta = ClusterMetadata::new();
    assert_eq!(refuse(&mut meta, &initialize_command([0, 1])), Refusal::NodeIdInvalid { node: 0 });
    let max = NodeId::MAX;
    assert_eq!(refuse(&mut meta, &initialize_command([1, max])), Refusal::NodeIdInvalid { node: max });
    let twice = Command::Initialize {
        cluster_id: CLUSTER,
        nodes: vec![initial_node(1), with_address(initial_node(1), "10.9.9.9:1")],
    };
    assert_eq!(refuse(&mut meta, &twice), Refusal::NodeIdDuplicate { node: 1 });
    // The highest id is fine: next_node_id stays representable.
    accept(&mut meta, &initialize_command([NODE_ID_MAX]));
    assert_eq!(meta.next_node_id, NodeId::MAX);
}

#[test]
fn initialize_refuses_shared_addresses_and_incarnations() {
    let mut meta = ClusterMetadata::new();
    let mut second = initial_node(2);
    second.address = initial_node(1).address;
    let same_address = Command::Initialize { cluster_id: CLUSTER, nodes: vec![initial_node(1), second] };
    let refusal = refuse(&mut meta, &same_address);
    assert_eq!(refusal, Refusal::AddressInUse { address: "10.0.0.1:7100".into(), node: 1 });
    let mut second = initial_node(2);
    second.incarnation = initial_node(1).incarnation;
    let same_incarnation = Command::Initialize { cluster_id: CLUSTER, nodes: vec![initial_node(1), second] };
    assert_eq!(refuse(&mut meta, &same_incarnation), Refusal::IncarnationDuplicate { incarnation: 1001 });
}

#[test]
fn addresses_must_be_host_and_port_and_regions_short() {
    let mut meta = ClusterMetadata::new();
    let with_address = |address: &str| Command::Initialize {
        cluster_id: CLUSTER,
        nodes: vec![with_address(initial_node(1), address)],
    };
    let why = |command: &Command, meta: &mut ClusterMetadata| match refuse(meta, command) {
        Refusal::AddressInvalid { why, .. } => why,
        other => panic!("{other:?}"),
    };
    assert_eq!(why(&with_address("10.0.0.1"), &mut meta), "no port");
    assert_eq!(why(&with_address(":7100"), &mut meta), "no host");
    assert_eq!(why(&with_address("host:http"), &mut meta), "port \"http\" is not a number from 0 to 65535");
    let long = format!("{}:1", "h".repeat(GRPC_ADDR_BYTES_MAX));
    assert_eq!(why(&with_address(&long), &mut meta), format!("{} bytes, more than 256", long.len()));
    let mut far = initial_node(1);
    far.region = "r".repeat(REGION_BYTES_MAX + 1);
    let command = Command::Initialize { cluster_id: CLUSTER, nodes: vec![far] };
    assert_eq!(refuse(&mut meta, &command), Refusal::RegionTooLong { bytes: 65, max: 64 });
}

#[test]
fn commands_before_initialize_are_refused() {
    let mut meta = ClusterMetadata::new();
    for command in [
        register_command(4),
        Command::Drain { node: 1 },
        Command::Undrain { node: 1 },
        Command::SetControlVoters { voters: vec![1] },
        begin_by(1, ReconfigKind::Add { node: 2 }, &[1]),
        Command::CommitReconfig { group: GroupId::FIRST, attempt: 1, cut: vec![] },
        Command::AbortReconfig { group: GroupId::FIRST, attempt: 1 },
        Command::ReportReady { group: GroupId::FIRST, epoch: 1, node: 1 },
    ] {
        assert_eq!(refuse(&mut meta, &command), Refusal::NotInitialized, "{command:?}");
    }
}

#[test]
fn register_gives_a_fresh_id_and_the_same_one_again_to_the_same_incarnation() {
    let mut meta = cluster(3);
    assert_eq!(accept_twice(&mut meta, &register_command(4)), Outcome::Registered { node: 4 });
    assert_eq!(accept(&mut meta, &register_command(5)), Outcome::Registered { node: 5 });
    assert_eq!(meta.next_node_id, 6);
    let want = NodeEntry {
        id: 4,
        address: "10.0.1.4:7100".into(),
        region: "r1".into(),
        incarnation: 2004,
        state: NodeState::Joining,
    };
    assert_eq!(meta.nodes[&4], want);
    assert_eq!(meta.groups[&GroupId::FIRST].members, [1, 2, 3], "registering changes no group");
}

#[test]
fn register_refuses_another_cluster() {
    let mut meta = cluster(3);
    let Command::RegisterNode { address, region, incarnation, .. } = register_command(4) else {
        unreachable!()
    };
    let command = Command::RegisterNode { cluster_id: 7, address, region, incarnation };
    assert_eq!(refuse(&mut meta, &command), Refusal::WrongCluster { expected: CLUSTER, got: 7 });
}

#[test]
fn register_refuses_an_address_a_live_node_uses_but_not_one_a_removed_node_used() {
    let mut meta = cluster(3);
    let Command::RegisterNode { region, incarnation, .. } = register_command(4) else { unreachable!() };
    let taken =
        Command::RegisterNode { cluster_id: CLUSTER, address: "10.0.0.2:7100".into(), region, incarnation };
    assert_eq!(refuse(&mut meta, &taken), Refusal::AddressInUse { address: "10.0.0.2:7100".into(), node: 2 });
    meta.nodes.get_mut(&2).expect("node 2").state = NodeState::Removed;
    meta.groups.get_mut(&GroupId::FIRST).expect("group 0").members = vec![1, 3];
    meta.groups.get_mut(&GroupId::FIRST).expect("group 0").ready = BTreeSet::from([1, 3]);
    assert_eq!(accept(&mut meta, &taken), Outcome::Registered { node: 4 });
}

#[test]
fn a_replacement_may_take_the_address_of_the_node_it_replaces_and_no_other() {
    let mut meta = cluster(3);
    let Command::RegisterNode { region, incarnation, .. } = register_command(4) else { unreachable!() };
    let replacement = |address: &str, replaces| Command::RegisterReplacement {
        cluster_id: CLUSTER,
        address: address.into(),
        region: region.clone(),
        incarnation,
        replaces,
    };
    assert_eq!(
        refuse(&mut meta, &replacement("10.0.0.2:7100", 3)),
        Refusal::AddressInUse { address: "10.0.0.2:7100".into(), node: 2 }
    );
    assert_eq!(accept(&mut meta, &replacement("10.0.0.3:7100", 3)), Outcome::Registered { node: 4 });
    assert_eq!(meta.nodes[&4].state, NodeState::Joining);
    assert_eq!(meta.nodes[&4].address, "10.0.0.3:7100");
    // A retry is answered the same; a plain registration at that address is refused.
    assert_eq!(accept(&mut meta, &replacement("10.0.0.3:7100", 3)), Outcome::Registered { node: 4 });
    let Command::RegisterNode { region, incarnation, .. } = register_command(5) else { unreachable!() };
    let plain =
        Command::RegisterNode { cluster_id: CLUSTER, address: "10.0.0.3:7100".into(), region, incarnation };
    assert!(matches!(refuse(&mut meta, &plain), Refusal::AddressInUse { .. }));
}

#[test]
fn register_refuses_a_retired_incarnation() {
    let mut meta = cluster(3);
    meta.nodes.get_mut(&3).expect("node 3").state = NodeState::Dead;
    meta.groups.get_mut(&GroupId::FIRST).expect("group 0").members = vec![1, 2];
    let node = initial_node(3);
    let command = Command::RegisterNode {
        cluster_id: CLUSTER,
        address: "10.0.2.3:7100".into(),
        region: node.region,
        incarnation: node.incarnation,
    };
    assert_eq!(refuse(&mut meta, &command), Refusal::IncarnationRetired { node: 3, state: NodeState::Dead });
}

#[test]
fn register_refuses_a_known_incarnation_at_another_address() {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    let Command::RegisterNode { region, incarnation, .. } = register_command(4) else { unreachable!() };
    let moved =
        Command::RegisterNode { cluster_id: CLUSTER, address: "10.0.9.9:7100".into(), region, incarnation };
    let want = Refusal::RegisteredElsewhere { node: 4, address: "10.0.1.4:7100".into(), region: "r1".into() };
    assert_eq!(refuse(&mut meta, &moved), want);
}

#[test]
fn register_refuses_when_the_directory_is_full_or_ids_ran_out() {
    let mut meta = cluster(3);
    for id in 4..=NODES_MAX as NodeId {
        let mut entry = entry(id, NodeState::Removed);
        entry.incarnation = 5000 + u64::from(id);
        meta.nodes.insert(id, entry);
    }
    meta.next_node_id = NODES_MAX as NodeId + 1;
    assert_eq!(refuse(&mut meta, &register_command(9)), Refusal::DirectoryFull { max: NODES_MAX });

    let mut meta = ClusterMetadata::new();
    accept(&mut meta, &initialize_command([NODE_ID_MAX]));
    assert_eq!(refuse(&mut meta, &register_command(9)), Refusal::NodeIdsExhausted);
}

#[test]
fn drain_and_undrain_switch_between_active_and_draining_and_repeat_harmlessly() {
    let mut meta = cluster(3);
    assert_eq!(accept_twice(&mut meta, &Command::Drain { node: 2 }), Outcome::Drained { node: 2 });
    assert_eq!(meta.nodes[&2].state, NodeState::Draining);
    assert_eq!(meta.groups[&GroupId::FIRST].members, [1, 2, 3], "draining changes no membership");
    assert_eq!(accept_twice(&mut meta, &Command::Undrain { node: 2 }), Outcome::Undrained { node: 2 });
    assert_eq!(meta.nodes[&2].state, NodeState::Active);
}

#[test]
fn drain_refuses_the_last_active_member_of_a_group() {
    let mut meta = cluster(2);
    accept(&mut meta, &Command::Drain { node: 1 });
    let refusal = refuse(&mut meta, &Command::Drain { node: 2 });
    assert_eq!(refusal, Refusal::LastActiveMember { group: GroupId::FIRST, node: 2 });
}

#[test]
fn drain_refuses_when_the_other_members_are_not_ready() {
    let mut meta = cluster(2);
    meta.groups.get_mut(&GroupId::FIRST).expect("group 0").ready.remove(&2);
    let refusal = refuse(&mut meta, &Command::Drain { node: 1 });
    assert_eq!(refusal, Refusal::LastActiveMember { group: GroupId::FIRST, node: 1 });
}

#[test]
fn drain_and_undrain_refuse_nodes_in_other_states() {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    let refusal = refuse(&mut meta, &Command::Drain { node: 4 });
    assert_eq!(
        refusal,
        Refusal::WrongNodeState { node: 4, state: NodeState::Joining, action: Action::Drain }
    );
    let refusal = refuse(&mut meta, &Command::Undrain { node: 4 });
    assert_eq!(
        refusal,
        Refusal::WrongNodeState { node: 4, state: NodeState::Joining, action: Action::Undrain }
    );
    assert_eq!(refuse(&mut meta, &Command::Drain { node: 9 }), Refusal::UnknownNode { node: 9 });
}

#[test]
fn set_control_voters_records_the_raft_voters() {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    let command = Command::SetControlVoters { voters: vec![4, 1, 2] };
    assert_eq!(accept_twice(&mut meta, &command), Outcome::ControlVotersSet);
    assert_eq!(meta.control_voters, BTreeSet::from([1, 2, 4]));
}

#[test]
fn set_control_voters_refuses_no_voters_too_many_and_unknown_ones() {
    let mut meta = cluster(3);
    let none = Command::SetControlVoters { voters: vec![] };
    assert_eq!(refuse(&mut meta, &none), Refusal::ControlVotersSize { count: 0, max: 7 });
    let many = Command::SetControlVoters { voters: (1..=8).collect() };
    assert_eq!(refuse(&mut meta, &many), Refusal::ControlVotersSize { count: 8, max: 7 });
    let unknown = Command::SetControlVoters { voters: vec![1, 9] };
    assert_eq!(refuse(&mut meta, &unknown), Refusal::UnknownNode { node: 9 });
}

/// An initial node's first start names its data directory; a wiped or restored one is refused
/// under that id, and the claim is idempotent.
#[test]
fn an_initial_node_claims_its_incarnation_once_and_a_replaced_directory_is_refused() {
    let mut meta = cluster(3);
    let claim = Command::ClaimIncarnation { node: 2, incarnation: 0xfeed };
    assert_eq!(accept_twice(&mut meta, &claim), Outcome::Claimed { node: 2 });
    assert_eq!(meta.nodes[&2].incarnation, 0xfeed);

    let wiped = Command::ClaimIncarnation { node: 2, incarnation: 0xbeef };
    assert_eq!(refuse(&mut meta, &wiped), Refusal::IncarnationReplaced { node: 2 });
    assert!(refuse(&mut meta, &wiped).to_string().contains("--replace 2"));

    // Another node's incarnation is never taken.
    let taken = Command::ClaimIncarnation { node: 3, incarnation: 0xfeed };
    assert_eq!(refuse(&mut meta, &taken), Refusal::IncarnationDuplicate { incarnation: 0xfeed });
    let unknown = Command::ClaimIncarnation { node: 9, incarnation: 1 };
    assert_eq!(refuse(&mut meta, &unknown), Refusal::UnknownNode { node: 9 });
}
