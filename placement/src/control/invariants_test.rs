//! The always-on assertions fire, with the values in the message. Each test hands
//! `assert_transition` a step no command takes.

use super::super::testing::{accept, cluster, register_command};
use super::super::{ClusterMetadata, GroupId, NodeState};
use super::assert_transition;

/// Nodes 1..=3 in group 0, node 4 registered.
fn before() -> ClusterMetadata {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    meta
}

/// `before` one version later, changed by `change`.
fn after(before: &ClusterMetadata, change: impl FnOnce(&mut ClusterMetadata)) -> ClusterMetadata {
    let mut after = before.clone();
    after.version += 1;
    change(&mut after);
    after
}

#[test]
fn an_unchanged_state_one_version_later_passes() {
    let before = before();
    assert_transition(&before, &after(&before, |_| {}));
}

#[test]
#[should_panic(expected = "control metadata version regressed: before=2 after=2")]
fn the_version_must_advance() {
    let before = before();
    assert_transition(&before, &before.clone());
}

#[test]
#[should_panic(expected = "group 0 epoch went from 2 to 1")]
fn epochs_never_go_back() {
    let mut before = before();
    before.groups.get_mut(&GroupId::FIRST).expect("group 0").epoch = 2;
    let after = after(&before, |m| m.groups.get_mut(&GroupId::FIRST).expect("group 0").epoch = 1);
    assert_transition(&before, &after);
}

#[test]
#[should_panic(expected = "node id 4 reused at version 3: next_node_id was 5")]
fn ids_are_never_reused() {
    let mut before = before();
    let entry = before.nodes.remove(&4).expect("node 4");
    let after = after(&before, |m| {
        m.nodes.insert(4, entry);
    });
    assert_transition(&before, &after);
}

#[test]
#[should_panic(expected = "retired node 4 came back at version 3: removed -> Some(Joining)")]
fn retired_nodes_stay_retired() {
    let mut before = before();
    before.nodes.get_mut(&4).expect("node 4").state = NodeState::Removed;
    let after = after(&before, |m| m.nodes.get_mut(&4).expect("node 4").state = NodeState::Joining);
    assert_transition(&before, &after);
}

#[test]
#[should_panic(expected = "node 4 vanished or changed identity at version 3")]
fn a_node_keeps_its_incarnation() {
    let before = before();
    let after = after(&before, |m| m.nodes.get_mut(&4).expect("node 4").incarnation = 1);
    assert_transition(&before, &after);
}

#[test]
#[should_panic(
    expected = "control metadata invariant broken at version 3: group 0 epoch 1 members: 3 is dead"
)]
fn no_retired_node_is_a_member() {
    let before = before();
    let after = after(&before, |m| m.nodes.get_mut(&3).expect("node 3").state = NodeState::Dead);
    assert_transition(&before, &after);
}
