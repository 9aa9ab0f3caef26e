//! The seal, the cut and the start of the next epoch, one input at a time (see `crate::seal`).

use crate::Config;
use crate::message::Message;
use crate::ready::Outbound;
use crate::record::{Record, Recovered};
use crate::replica::{ProposeError, Replica};
use crate::seal::Cut;
use crate::types::{Command, InstanceId, ReplicaId};

const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const R3: ReplicaId = ReplicaId(3);

fn replica(id: ReplicaId) -> Replica {
    Replica::new(Config::new(id, vec![R1, R2, R3]).unwrap())
}

fn cmd(key: &str) -> Vec<Command> {
    vec![Command::new(key.to_string(), format!("set {key}"))]
}

/// The PreAccept sent to `to` in a round (after the persist when it reserved slots, else at once).
fn pre_accept_to(out: &crate::Ready, to: ReplicaId) -> Message {
    let mut sent = out.messages_after_persist.iter().chain(&out.messages);
    sent.find(|m| m.to == to && matches!(m.message, Message::PreAccept { .. }))
        .expect("a PreAccept")
        .message
        .clone()
}

/// Replica 1's ballot-0 PreAccept of `id`, with no dependencies.
fn pre_accept_of(id: InstanceId) -> Message {
    let ballot = crate::types::Ballot::initial(R1);
    Message::PreAccept { id, ballot, attrs: Default::default(), commands: cmd("x") }
}

fn bounds(b: [u64; 3]) -> Vec<(ReplicaId, u64)> {
    vec![(R1, b[0]), (R2, b[1]), (R3, b[2])]
}

#[test]
fn a_sealed_replica_reports_its_bounds_durably_and_votes_on_nothing_above_them() {
    let mut r1 = replica(R1);
    let mut r2 = replica(R2);
    r1.propose(cmd("a")).unwrap();
    let first = pre_accept_to(&r1.ready(), R2);
    r1.propose(cmd("b")).unwrap();
    let second = pre_accept_to(&r1.ready(), R2);
    r2.step(R1, first.clone());
    r2.ready();

    r2.step(R1, Message::Seal { epoch: 1 });
    let out = r2.ready();
    assert_eq!(out.persist, vec![Record::Seal { epoch: 1, bounds: bounds([1, 0, 0]) }]);
    assert!(out.needs_sync(), "the seal is a promise: synced before it is reported");
    assert_eq!(
        out.messages_after_persist,
        vec![Outbound { to: R1, message: Message::SealOk { epoch: 1, bounds: bounds([1, 0, 0]) } }]
    );
    assert!(out.messages.is_empty());

    // 1.2 is above the bound: no vote, no answer. 1.1 (a resend) is still answered.
    r2.step(R1, second);
    assert!(r2.ready().is_empty(), "a vote above the bound");
    r2.step(R1, first);
    assert_eq!(r2.ready().messages_after_persist.len(), 1, "the resend of a vote it holds");

    // Sealing again reports the same bounds and writes nothing.
    r2.step(R3, Message::Seal { epoch: 1 });
    let out = r2.ready();
    assert!(out.persist.is_empty());
    assert_eq!(
        out.messages_after_persist,
        vec![Outbound { to: R3, message: Message::SealOk { epoch: 1, bounds: bounds([1, 0, 0]) } }]
    );
    assert_eq!(r2.propose(cmd("c")), Err(ProposeError::Sealed(1)));
    assert!(ProposeError::Sealed(1).is_retryable());
}

#[test]
fn the_driver_takes_the_highest_bound_of_a_majority_as_the_cut() {
    let mut r1 = replica(R1);
    r1.propose(cmd("a")).unwrap();
    r1.ready();
    r1.start_seal();
    let out = r1.ready();
    assert_eq!(out.persist, vec![Record::Seal { epoch: 1, bounds: bounds([1, 0, 0]) }]);
    let seals: Vec<ReplicaId> = out.messages_after_persist.iter().map(|m| m.to).collect();
    assert_eq!(seals, [R2, R3]);
    assert_eq!(out.cut, None, "one of three is no majority");
    assert_eq!(r1.propose(cmd("b")), Err(ProposeError::Sealed(1)));

    // An answer about other members, or another epoch, does not count.
    r1.step(R2, Message::SealOk { epoch: 1, bounds: vec![(R1, 9)] });
    r1.step(R2, Message::SealOk { epoch: 2, bounds: bounds([9, 9, 9]) });
    assert_eq!(r1.ready().cut, None);

    r1.step(R3, Message::SealOk { epoch: 1, bounds: bounds([0, 4, 7]) });
    let out = r1.ready();
    assert_eq!(out.cut, Some(Cut { epoch: 1, bounds: bounds([1, 4, 7]) }));
    // Done: a late answer changes nothing.
    r1.step(R2, Message::SealOk { epoch: 1, bounds: bounds([5, 5, 5]) });
    assert_eq!(r1.ready().cut, None);
}

#[test]
fn installing_the_cut_drops_what_is_above_it_and_finishes_what_is_below() {
    let mut r1 = replica(R1);
    let mut r2 = replica(R2);
    // 1.1 commits on the fast path with r2; 1.2 reaches nobody before the seal.
    let id = r1.propose(cmd("a")).unwrap();
    let pre_accept = pre_accept_to(&r1.ready(), R2);
    r2.step(R1, pre_accept);
    let reply = r2.ready().messages_after_persist.remove(0).message;
    r1.step(R2, reply);
    assert_eq!(r1.ready().executed[0].id, id);
    let lost = r1.propose(cmd("b")).unwrap();
    r1.ready();

    // r2 and r3 sealed with r2's bounds (r1 never answered): 1.2 is above the cut.
    let cut = Cut { epoch: 1, bounds: bounds([1, 0, 0]) };
    assert!(!r1.epoch_done());
    r1.install_cut(cut.clone());
    let out = r1.ready();
    assert_eq!(out.dropped, vec![lost], "its client retries in the next epoch");
    assert!(out.persist.contains(&Record::Cut(cut.clone())));
    // The conflict index no longer names the no-op 1.2 as the latest on "b": in its place, the
    // leader's last slot at the cut (1.2 named no earlier instance of its leader).
    let b = crate::record::KeyRecord { seq_max: 1, latest: vec![InstanceId::new(1, 1)] };
    assert!(out.persist.contains(&Record::Key { key: "b".into(), record: b }), "{:?}", out.persist);
    assert!(r1.epoch_done(), "everything up to the cut executed here");
    assert_eq!(r1.propose(cmd("c")), Err(ProposeError::Sealed(1)));
    r1.install_cut(cut.clone()); // idempotent
    assert!(r1.ready().is_empty());

    // r3 saw nothing: it chases 1.1 from its peers.
    let mut r3 = replica(R3);
    r3.install_cut(cut.clone());
    let out = r3.ready();
    let asked: Vec<&Outbound> =
        out.messages.iter().filter(|m| matches!(m.message, Message::CommitRequest { .. })).collect();
    assert_eq!(asked.len(), 2, "{:?}", out.messages);
    assert_eq!(asked[0].message, Message::CommitRequest { ids: vec![id] });
    assert!(!r3.epoch_done());
}

#[test]
#[should_panic(expected = "two cuts of one epoch")]
fn a_second_cut_of_one_epoch_is_a_bug() {
    let mut r1 = replica(R1);
    r1.install_cut(Cut { epoch: 1, bounds: bounds([0, 0, 0]) });
    r1.install_cut(Cut { epoch: 1, bounds: bounds([1, 0, 0]) });
}

#[test]
fn messages_of_other_epochs_are_not_acted_on() {
    let mut r2 = replica(R2);
    r2.step_in_epoch(R1, 0, Message::Seal { epoch: 0 });
    assert!(r2.ready().is_empty(), "a late message of an older epoch");
    r2.step_in_epoch(R1, 3, Message::Seal { epoch: 3 });
    let out = r2.ready();
    assert_eq!(out.newer_epoch, Some(3), "learn epoch 3 first");
    assert!(out.persist.is_empty() && out.messages_after_persist.is_empty());
    assert!(!r2.is_sealed());
}

#[test]
fn the_next_epoch_continues_above_the_cut_with_its_own_members() {
    let cut = Cut { epoch: 1, bounds: bounds([5, 3, 0]) };
    let r4 = ReplicaId(4);
    let members = vec![R1, R2, r4];
    let start = |id| {
        let mut config = Config::new(id, members.clone()).unwrap();
        config.epoch = 2;
        Replica::recover(config, Recovered::starting_epoch(&cut, id))
    };
    let (mut r1, mut new) = (start(R1), start(r4));
    assert_eq!(r1.epoch(), 2);
    assert!(r1.is_executed(InstanceId::new(1, 5)) && new.is_executed(InstanceId::new(2, 3)));
    let id = r1.propose(cmd("a")).unwrap();
    assert_eq!(id, InstanceId::new(1, 6), "slots continue above the cut");
    let pre_accept = pre_accept_to(&r1.ready(), r4);
    new.step_in_epoch(R1, 2, pre_accept);
    let reply = new.ready().messages_after_persist.remove(0).message;
    r1.step_in_epoch(r4, 2, reply);
    let out = r1.ready();
    assert_eq!(out.executed.len(), 1, "a fast quorum of the new members: {out:?}");
    assert_eq!(new.propose(cmd("b")).unwrap(), InstanceId::new(4, 1));
}

#[test]
fn a_restart_keeps_the_seal_and_the_cut() {
    let cut = Cut { epoch: 1, bounds: bounds([2, 0, 0]) };
    let recovered =
        Recovered { seal: Some(bounds([1, 0, 0])), cut: Some(cut.clone()), ..Recovered::default() };
    let mut r2 = Replica::recover(Config::new(R2, vec![R1, R2, R3]).unwrap(), recovered);
    assert!(r2.is_sealed());
    assert_eq!(r2.cut(), Some(&cut));
    assert_eq!(r2.propose(cmd("a")), Err(ProposeError::Sealed(1)));
    // Up to the cut it votes again (recovery of 1.2 needs it); above it, never.
    let above = pre_accept_of(InstanceId::new(1, 3));
    r2.step(R1, above);
    assert!(r2.ready().messages_after_persist.is_empty());
    let within = pre_accept_of(InstanceId::new(1, 2));
    r2.step(R1, within);
    assert_eq!(r2.ready().messages_after_persist.len(), 1);
}
