use super::super::testing::{accept, begin_by, cluster, register_command};
use super::super::{Command, ControlRole, GroupId, MemberRow, NodeState, ReconfigKind, Seat};

const G: GroupId = GroupId::FIRST;

fn seat(epoch: u64, ready: bool) -> Vec<Seat> {
    vec![Seat { group: G, epoch, ready }]
}

#[test]
fn members_lists_every_node_with_its_seats_and_control_role() {
    let mut meta = cluster(3);
    accept(&mut meta, &register_command(4));
    accept(&mut meta, &register_command(5));
    accept(&mut meta, &begin_by(1, ReconfigKind::Replace { dead: 3, with: 4 }, &[1, 2]));
    accept(&mut meta, &Command::CommitReconfig { group: G, attempt: 1, cut: vec![(1, 0), (2, 0), (3, 0)] });
    accept(&mut meta, &Command::Drain { node: 2 });
    accept(&mut meta, &Command::SetControlVoters { voters: vec![1, 2, 3] });
    let row = |id: u32, region: &str, state, seats, control| MemberRow {
        id,
        address: format!("10.0.{}.{id}:7100", if id <= 3 { 0 } else { 1 }),
        region: region.into(),
        state,
        seats,
        control,
    };
    let want = vec![
        row(1, "r1", NodeState::Active, seat(2, true), Some(ControlRole::Voter)),
        row(2, "r2", NodeState::Draining, seat(2, true), Some(ControlRole::Voter)),
        // Dead, and still a raft voter until the raft layer removes it.
        row(3, "r0", NodeState::Dead, vec![], Some(ControlRole::Voter)),
        row(4, "r1", NodeState::Active, seat(2, false), Some(ControlRole::Learner)),
        row(5, "r2", NodeState::Joining, vec![], Some(ControlRole::Learner)),
    ];
    assert_eq!(meta.members(), want);
    accept(&mut meta, &Command::SetControlVoters { voters: vec![1, 2] });
    assert_eq!(meta.members()[2].control, None, "a dead node that no longer votes has no role");
}

#[test]
fn placement_members_are_the_active_ready_members() {
    let mut meta = cluster(3);
    assert_eq!(meta.placement_members(G), [1, 2, 3]);
    accept(&mut meta, &register_command(4));
    accept(&mut meta, &begin_by(1, ReconfigKind::Add { node: 4 }, &[1, 2, 3]));
    assert_eq!(meta.placement_members(G), [1, 2, 3], "a pending switch changes nothing");
    accept(&mut meta, &Command::CommitReconfig { group: G, attempt: 1, cut: vec![(1, 0), (2, 0), (3, 0)] });
    assert_eq!(meta.placement_members(G), [1, 2, 3], "node 4 has no data yet");
    accept(&mut meta, &Command::ReportReady { group: G, epoch: 2, node: 4 });
    assert_eq!(meta.placement_members(G), [1, 2, 3, 4]);
    accept(&mut meta, &Command::Drain { node: 2 });
    assert_eq!(meta.placement_members(G), [1, 3, 4]);
    assert_eq!(meta.placement_members(GroupId(9)), [] as [u32; 0]);
}
