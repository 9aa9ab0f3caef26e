//! Every refusal of `BeginReconfig`, one test each, and what a safe one plans.

use super::super::testing::{accept, accept_twice, begin_by, cluster, refuse, register_command};
use super::super::{Action, ClusterMetadata, Command, GroupId, NodeState, Outcome, ReconfigKind, Refusal};
use crate::ring::NodeId;

const G: GroupId = GroupId::FIRST;

fn begin(kind: ReconfigKind, reachable: &[NodeId]) -> Command {
    begin_by(1, kind, reachable)
}

/// Nodes `1..=members` in group 0, and node `members + 1` registered (joining).
fn with_spare(members: NodeId) -> ClusterMetadata {
    let mut meta = cluster(members);
    accept(&mut meta, &register_command(members + 1));
    meta
}

fn pending_to(meta: &ClusterMetadata) -> Vec<NodeId> {
    meta.groups[&G].pending.as_ref().expect("a pending reconfiguration").to.clone()
}

#[test]
fn add_plans_the_members_plus_the_node() {
    let mut meta = with_spare(3);
    let outcome = accept_twice(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    assert_eq!(outcome, Outcome::ReconfigBegun { group: G, attempt: 1 });
    assert_eq!(pending_to(&meta), [1, 2, 3, 4]);
    assert_eq!(meta.groups[&G].members, [1, 2, 3], "nothing switches before the commit");
}

#[test]
fn remove_plans_the_members_minus_the_node() {
    let mut meta = cluster(4);
    accept(&mut meta, &begin(ReconfigKind::Remove { node: 2 }, &[1, 3, 4]));
    assert_eq!(pending_to(&meta), [1, 3, 4]);
}

#[test]
fn replace_plans_the_members_with_the_new_node_in_place_of_the_dead_one() {
    let mut meta = with_spare(3);
    accept(&mut meta, &begin(ReconfigKind::Replace { dead: 2, with: 4 }, &[1, 3]));
    assert_eq!(pending_to(&meta), [1, 3, 4]);
}

#[test]
fn the_same_request_again_gets_the_same_attempt_even_with_other_reachable_nodes() {
    let mut meta = with_spare(3);
    accept(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    let before = meta.groups.clone();
    let outcome = accept(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2]));
    assert_eq!(outcome, Outcome::ReconfigBegun { group: G, attempt: 1 });
    assert_eq!(meta.groups, before);
}

#[test]
fn two_reconfigurations_at_once_are_refused() {
    let mut meta = with_spare(3);
    accept(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 3 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::ReconfigPending { group: G, attempt: 1, driver: 1 });
    // The same kind from another driver is another request.
    let other_driver = begin_by(2, ReconfigKind::Add { node: 4 }, &[]);
    assert_eq!(
        refuse(&mut meta, &other_driver),
        Refusal::ReconfigPending { group: G, attempt: 1, driver: 1 }
    );
}

#[test]
fn an_unknown_group_is_refused() {
    let mut meta = with_spare(3);
    let command = Command::BeginReconfig {
        group: GroupId(1),
        from_epoch: 1,
        kind: ReconfigKind::Add { node: 4 },
        driver: 1,
        reachable: vec![1, 2, 3],
    };
    assert_eq!(refuse(&mut meta, &command), Refusal::UnknownGroup { group: GroupId(1) });
}

#[test]
fn a_stale_epoch_is_refused() {
    let mut meta = with_spare(3);
    let command = Command::BeginReconfig {
        group: G,
        from_epoch: 0,
        kind: ReconfigKind::Add { node: 4 },
        driver: 1,
        reachable: vec![1, 2, 3],
    };
    assert_eq!(refuse(&mut meta, &command), Refusal::StaleEpoch { group: G, epoch: 1, from_epoch: 0 });
}

#[test]
fn an_unknown_or_retired_driver_is_refused() {
    let mut meta = with_spare(3);
    assert_eq!(
        refuse(&mut meta, &begin_by(9, ReconfigKind::Add { node: 4 }, &[1, 2, 3])),
        Refusal::UnknownNode { node: 9 }
    );
    meta.nodes.get_mut(&4).expect("node 4").state = NodeState::Removed;
    accept(&mut meta, &register_command(5));
    let command = begin_by(4, ReconfigKind::Add { node: 5 }, &[1, 2, 3]);
    let want = Refusal::WrongNodeState { node: 4, state: NodeState::Removed, action: Action::DriveReconfig };
    assert_eq!(refuse(&mut meta, &command), want);
}

#[test]
fn adding_an_unknown_or_retired_node_is_refused() {
    let mut meta = with_spare(3);
    assert_eq!(
        refuse(&mut meta, &begin(ReconfigKind::Add { node: 9 }, &[1, 2, 3])),
        Refusal::UnknownNode { node: 9 }
    );
    meta.nodes.get_mut(&4).expect("node 4").state = NodeState::Dead;
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::NodeRetired { node: 4, state: NodeState::Dead });
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]));
    assert_eq!(refusal, Refusal::NodeRetired { node: 4, state: NodeState::Dead });
}

#[test]
fn adding_a_member_is_refused() {
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Add { node: 2 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::AlreadyMember { group: G, node: 2 });
}

#[test]
fn more_than_seven_members_are_refused() {
    let mut meta = with_spare(7);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Add { node: 8 }, &[1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(refusal, Refusal::TooManyMembers { group: G, count: 8, max: 7 });
}

#[test]
fn removing_a_non_member_is_refused() {
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 4 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::NotMember { group: G, node: 4 });
}

#[test]
fn removing_below_three_members_is_refused() {
    let mut meta = cluster(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 3 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::TooFewMembers { group: G, left: 2, min: 3 });
}

#[test]
fn a_group_already_below_three_may_shrink_but_not_to_nothing() {
    let mut meta = cluster(2);
    accept(&mut meta, &begin(ReconfigKind::Remove { node: 2 }, &[1, 2]));
    assert_eq!(pending_to(&meta), [1]);

    let mut meta = cluster(1);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 1 }, &[1]));
    assert_eq!(refusal, Refusal::WouldEmptyGroup { group: G, node: 1 });
}

#[test]
fn removing_the_last_control_voter_is_refused() {
    let mut meta = cluster(4);
    accept(&mut meta, &Command::SetControlVoters { voters: vec![2] });
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 2 }, &[1, 2, 3, 4]));
    assert_eq!(refusal, Refusal::LastControlVoter { node: 2 });
    // One of several voters may go: the raft layer removes it from the voters itself.
    accept(&mut meta, &Command::SetControlVoters { voters: vec![2, 3] });
    accept(&mut meta, &begin(ReconfigKind::Remove { node: 2 }, &[1, 2, 3, 4]));
}

#[test]
fn replacing_a_non_member_or_with_a_member_is_refused() {
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Replace { dead: 4, with: 4 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::NotMember { group: G, node: 4 });
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Replace { dead: 3, with: 3 }, &[1, 2]));
    assert_eq!(refusal, Refusal::AlreadyMember { group: G, node: 3 });
}

#[test]
fn replacing_a_reachable_node_is_refused() {
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::ReplacingReachableNode { group: G, node: 3 });
}

#[test]
fn no_surviving_quorum_is_refused() {
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Replace { dead: 3, with: 4 }, &[1]));
    let want = Refusal::NoSurvivingQuorum { group: G, epoch: 1, reachable: 1, members: 3, needed: 2 };
    assert_eq!(refusal, want);
    // The removed node may help seal when it answers, but the new epoch must work without it.
    let mut meta = cluster(5);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 5 }, &[1, 2, 5]));
    let want = Refusal::NoSurvivingQuorum { group: G, epoch: 2, reachable: 2, members: 4, needed: 3 };
    assert_eq!(refusal, want);
    let mut meta = cluster(4);
    accept(&mut meta, &begin(ReconfigKind::Remove { node: 4 }, &[1, 2, 4]));
    // Non-members in `reachable` do not count either.
    let mut meta = with_spare(3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 4, 9]));
    let want = Refusal::NoSurvivingQuorum { group: G, epoch: 1, reachable: 1, members: 3, needed: 2 };
    assert_eq!(refusal, want);
}

#[test]
fn members_not_ready_are_refused_unless_they_are_the_one_leaving() {
    let mut meta = with_spare(3);
    meta.groups.get_mut(&G).expect("group 0").ready.remove(&3);
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Remove { node: 2 }, &[1, 2, 3]));
    // (A removal from 3 is refused for size first; grow the group to see the readiness check.)
    assert_eq!(refusal, Refusal::TooFewMembers { group: G, left: 2, min: 3 });
    let refusal = refuse(&mut meta, &begin(ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    assert_eq!(refusal, Refusal::MembersNotReady { group: G, epoch: 1, nodes: vec![3] });
    // A member that died before it became ready can still be replaced.
    accept(&mut meta, &begin(ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]));
}

/// `BeginReconfig` of group 0 from its current epoch, driven by node 1.
fn begin_now(meta: &ClusterMetadata, kind: ReconfigKind, reachable: &[NodeId]) -> Command {
    Command::BeginReconfig {
        group: G,
        from_epoch: meta.groups[&G].epoch,
        kind,
        driver: 1,
        reachable: reachable.to_vec(),
    }
}

/// Commits the pending switch of group 0 (any cut naming its members).
fn commit(meta: &mut ClusterMetadata) {
    let attempt = meta.groups[&G].pending.as_ref().expect("a pending switch").attempt;
    let cut = meta.groups[&G].members.iter().map(|&m| (m, 1)).collect();
    accept(meta, &Command::CommitReconfig { group: G, attempt, cut });
}

#[test]
fn a_member_that_missed_the_last_switch_holds_the_next_one_back_unless_it_leaves() {
    // Five members; node 5 is cut off while node 3 is removed (a majority seals without it).
    let mut meta = cluster(5);
    accept(&mut meta, &begin(ReconfigKind::Remove { node: 3 }, &[1, 2, 3, 4]));
    commit(&mut meta);
    assert_eq!(meta.behind[&G], [1, 2, 4, 5].into(), "every continuing member is behind until it reports");
    for node in [1, 2, 4] {
        accept(&mut meta, &Command::ReportReady { group: G, epoch: 2, node });
    }
    assert_eq!(meta.behind[&G], [5].into());
    // Joining again now would leave node 5 two switches behind: refused until it reports.
    accept(&mut meta, &register_command(6));
    let join = begin_now(&meta, ReconfigKind::Add { node: 6 }, &[1, 2, 4, 5, 6]);
    let refusal = refuse(&mut meta, &join);
    assert_eq!(refusal, Refusal::MembersBehind { group: G, epoch: 2, nodes: vec![5] });
    assert!(refusal.is_retryable());
    // Removing (or replacing) the member that is behind is not held back by it.
    let mut without = meta.clone();
    accept(&mut without, &begin_now(&meta, ReconfigKind::Remove { node: 5 }, &[1, 2, 4]));
    // Once it reports running epoch 2, the join goes ahead.
    accept(&mut meta, &Command::ReportReady { group: G, epoch: 2, node: 5 });
    assert!(!meta.behind.contains_key(&G), "no member behind: no entry");
    accept(&mut meta, &join);
    commit(&mut meta);
    assert_eq!(meta.behind[&G], [1, 2, 4, 5].into(), "a new member is not behind: it was not there");
}
