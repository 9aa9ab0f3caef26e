//! Commit, abort and ready reports of a switch (the begin's own refusals are in `plan_test.rs`).

use std::collections::BTreeSet;

use super::super::testing::{accept, accept_twice, begin_by, cluster, refuse, register_command};
use super::super::{
    ClusterMetadata, Command, Group, GroupId, LastCommit, NodeState, Outcome, ReconfigKind, Refusal,
};
use crate::ring::NodeId;

const G: GroupId = GroupId::FIRST;

/// Nodes 1..=3 in group 0, node 4 registered, and `kind` begun from epoch 1 as attempt 1.
fn begun(kind: ReconfigKind, reachable: &[NodeId]) -> ClusterMetadata {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    assert_eq!(
        accept(&mut meta, &begin_by(1, kind, reachable)),
        Outcome::ReconfigBegun { group: G, attempt: 1 }
    );
    meta
}

fn commit(attempt: u64, cut: &[(NodeId, u64)]) -> Command {
    Command::CommitReconfig { group: G, attempt, cut: cut.to_vec() }
}

const CUT: [(NodeId, u64); 3] = [(1, 10), (2, 20), (3, 30)];

#[test]
fn committing_an_add_starts_the_next_epoch_with_the_new_member_not_ready() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let outcome = accept_twice(&mut meta, &commit(1, &[(3, 30), (1, 10), (2, 20)]));
    assert_eq!(outcome, Outcome::ReconfigCommitted { group: G, epoch: 2 });
    let want = Group {
        id: G,
        epoch: 2,
        members: vec![1, 2, 3, 4],
        ready: BTreeSet::from([1, 2, 3]),
        pending: None,
        attempts: 1,
        last_commit: Some(LastCommit { attempt: 1, epoch: 2, cut: CUT.to_vec() }),
    };
    assert_eq!(meta.groups[&G], want);
    assert_eq!(meta.nodes[&4].state, NodeState::Active);
}

#[test]
fn committing_a_replace_retires_the_dead_node_for_good() {
    let mut meta = begun(ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]);
    assert_eq!(accept(&mut meta, &commit(1, &CUT)), Outcome::ReconfigCommitted { group: G, epoch: 2 });
    assert_eq!(meta.groups[&G].members, [1, 2, 4]);
    assert_eq!(meta.groups[&G].ready, BTreeSet::from([1, 2]));
    assert_eq!(meta.nodes[&3].state, NodeState::Dead);
    assert_eq!(meta.nodes[&4].state, NodeState::Active);
}

#[test]
fn committing_a_remove_retires_the_node_when_it_is_in_no_group() {
    let mut meta = cluster(4);
    let begin = begin_by(1, ReconfigKind::Remove { node: 4 }, &[1, 2, 3]);
    accept(&mut meta, &begin);
    let cut = [(1, 1), (2, 2), (3, 3), (4, 4)];
    assert_eq!(accept(&mut meta, &commit(1, &cut)), Outcome::ReconfigCommitted { group: G, epoch: 2 });
    assert_eq!(meta.groups[&G].members, [1, 2, 3]);
    assert_eq!(meta.nodes[&4].state, NodeState::Removed);
}

#[test]
fn a_node_leaving_one_group_stays_live_while_another_group_holds_it() {
    let mut meta = begun(ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]);
    let mut other = meta.groups[&G].clone();
    other.id = GroupId(1);
    other.pending = None;
    meta.groups.insert(GroupId(1), other);
    accept(&mut meta, &commit(1, &CUT));
    assert_eq!(meta.nodes[&3].state, NodeState::Active, "group 1 still holds node 3");
}

#[test]
fn a_commit_whose_joining_node_was_retired_meanwhile_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    // Another group's switch retired node 4 after this begin.
    meta.nodes.get_mut(&4).expect("node 4").state = NodeState::Removed;
    assert_eq!(
        refuse(&mut meta, &commit(1, &CUT)),
        Refusal::NodeRetired { node: 4, state: NodeState::Removed }
    );
}

#[test]
fn a_commit_of_another_attempt_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let refusal = refuse(&mut meta, &commit(2, &CUT));
    assert_eq!(refusal, Refusal::AttemptNotPending { group: G, attempt: 2, pending: Some(1) });
    let mut meta = cluster(3);
    let refusal = refuse(&mut meta, &commit(1, &CUT));
    assert_eq!(refusal, Refusal::AttemptNotPending { group: G, attempt: 1, pending: None });
}

#[test]
fn a_cut_that_does_not_list_each_old_member_once_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let want = |got: Vec<NodeId>| Refusal::CutMismatch { group: G, expected: vec![1, 2, 3], got };
    assert_eq!(refuse(&mut meta, &commit(1, &[(1, 1), (2, 2)])), want(vec![1, 2]));
    assert_eq!(refuse(&mut meta, &commit(1, &[(1, 1), (2, 2), (2, 3), (3, 3)])), want(vec![1, 2, 2, 3]));
    assert_eq!(refuse(&mut meta, &commit(1, &[(1, 1), (2, 2), (3, 3), (4, 4)])), want(vec![1, 2, 3, 4]));
}

#[test]
fn a_committed_attempt_again_with_another_cut_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    accept(&mut meta, &commit(1, &CUT));
    let refusal = refuse(&mut meta, &commit(1, &[(1, 11), (2, 20), (3, 30)]));
    assert_eq!(refusal, Refusal::CutConflict { group: G, attempt: 1 });
}

#[test]
fn abort_clears_the_pending_attempt_and_the_next_begin_gets_a_higher_one() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let abort = Command::AbortReconfig { group: G, attempt: 1 };
    assert_eq!(accept_twice(&mut meta, &abort), Outcome::ReconfigAborted { group: G, attempt: 1 });
    assert_eq!(meta.groups[&G].pending, None);
    assert_eq!(meta.groups[&G].epoch, 1);
    let begin = begin_by(2, ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    assert_eq!(accept(&mut meta, &begin), Outcome::ReconfigBegun { group: G, attempt: 2 });
    // The aborted attempt can no longer commit, and aborting it again still answers the same.
    let refusal = refuse(&mut meta, &commit(1, &CUT));
    assert_eq!(refusal, Refusal::AttemptNotPending { group: G, attempt: 1, pending: Some(2) });
    assert_eq!(accept(&mut meta, &abort), Outcome::ReconfigAborted { group: G, attempt: 1 });
    assert_eq!(meta.groups[&G].pending.as_ref().map(|p| p.attempt), Some(2));
}

#[test]
fn aborting_a_committed_attempt_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    accept(&mut meta, &commit(1, &CUT));
    let refusal = refuse(&mut meta, &Command::AbortReconfig { group: G, attempt: 1 });
    assert_eq!(refusal, Refusal::AttemptCommitted { group: G, attempt: 1, epoch: 2 });
}

#[test]
fn aborting_an_attempt_never_begun_is_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let refusal = refuse(&mut meta, &Command::AbortReconfig { group: G, attempt: 2 });
    assert_eq!(refusal, Refusal::AttemptNotPending { group: G, attempt: 2, pending: Some(1) });
    let refusal = refuse(&mut meta, &Command::AbortReconfig { group: GroupId(3), attempt: 1 });
    assert_eq!(refusal, Refusal::UnknownGroup { group: GroupId(3) });
}

#[test]
fn ready_reports_mark_the_member_for_the_current_epoch_only() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    accept(&mut meta, &commit(1, &CUT));
    let ready = Command::ReportReady { group: G, epoch: 2, node: 4 };
    assert_eq!(accept_twice(&mut meta, &ready), Outcome::Ready { group: G, epoch: 2, node: 4 });
    assert_eq!(meta.groups[&G].ready, BTreeSet::from([1, 2, 3, 4]));
    let late = Command::ReportReady { group: G, epoch: 1, node: 4 };
    assert_eq!(accept(&mut meta, &late), Outcome::ReportIgnored { group: G, epoch: 1, current: 2 });
}

#[test]
fn ready_reports_for_a_future_epoch_or_from_a_non_member_are_refused() {
    let mut meta = begun(ReconfigKind::Add { node: 4 }, &[1, 2, 3]);
    let early = Command::ReportReady { group: G, epoch: 2, node: 4 };
    assert_eq!(refuse(&mut meta, &early), Refusal::EpochNotReached { group: G, epoch: 2, current: 1 });
    let stranger = Command::ReportReady { group: G, epoch: 1, node: 4 };
    assert_eq!(refuse(&mut meta, &stranger), Refusal::NotMember { group: G, node: 4 });
}
