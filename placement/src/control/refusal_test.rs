use super::super::{GroupId, NodeState};
use super::Refusal;

#[test]
fn refusals_say_whether_waiting_can_help() {
    let g = GroupId::FIRST;
    let wait = [
        Refusal::NotInitialized,
        Refusal::ReconfigPending { group: g, attempt: 1, driver: 1 },
        Refusal::StaleEpoch { group: g, epoch: 2, from_epoch: 1 },
        Refusal::NoSurvivingQuorum { group: g, epoch: 1, reachable: 1, members: 3, needed: 2 },
        Refusal::MembersNotReady { group: g, epoch: 1, nodes: vec![3] },
        Refusal::MembersBehind { group: g, epoch: 2, nodes: vec![4] },
    ];
    for refusal in wait {
        assert!(refusal.is_retryable(), "{refusal}");
    }
    let act = [
        Refusal::WrongCluster { expected: 1, got: 2 },
        Refusal::IncarnationRetired { node: 3, state: NodeState::Dead },
        Refusal::TooFewMembers { group: g, left: 2, min: 3 },
        Refusal::CutConflict { group: g, attempt: 1 },
    ];
    for refusal in act {
        assert!(!refusal.is_retryable(), "{refusal}");
    }
}

#[test]
fn messages_name_the_values_and_what_to_do() {
    let refusal = Refusal::ReplacingReachableNode { group: GroupId::FIRST, node: 3 };
    assert_eq!(
        refusal.to_string(),
        "node 3 of group 0 is reachable, so it is not dead: remove it instead, or stop it first and \
         then replace it"
    );
    let refusal =
        Refusal::NoSurvivingQuorum { group: GroupId::FIRST, epoch: 4, reachable: 1, members: 3, needed: 2 };
    assert_eq!(
        refusal.to_string(),
        "no surviving quorum: only 1 of the 3 members of group 0 at epoch 4 are reachable, and the \
         switch needs 2 of them; bring members back first (a lost majority needs explicit unsafe \
         recovery)"
    );
}
