//! A key's record leaves memory and disk once every instance it names is forgotten (executed on
//! every replica), and the key then costs nothing until it is touched again.

use crate::Config;
use crate::handler::handler_test::{attrs, cmd, replica, try_pre_accept_i11};
use crate::message::Message;
use crate::record::{KeyRecord, Record, Recovered};
use crate::replica::Replica;
use crate::types::{Attributes, Ballot, InstanceId, ReplicaId, Status};

const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const R3: ReplicaId = ReplicaId(3);
const I11: InstanceId = InstanceId::new(1, 1);
const I21: InstanceId = InstanceId::new(2, 1);
const I22: InstanceId = InstanceId::new(2, 2);
const I31: InstanceId = InstanceId::new(3, 1);

fn commit(r: &mut Replica, id: InstanceId, a: Attributes, key: &str) {
    r.step(id.replica, Message::Commit { id, attrs: a, commands: vec![cmd(key)] });
    r.ready();
}

/// Every peer of `r` reports `executed` as its executed watermarks, and enough progress intervals
/// pass for `r` to drop the records of what all of them and it executed (its floors are those of
/// `DROP_LAG_EXCHANGES` exchanges ago). The records it persisted meanwhile.
fn every_peer_executed(r: &mut Replica, executed: &[u64]) -> Vec<Record> {
    exchanges_after_reports(r, executed, 1 + crate::replica::DROP_LAG_EXCHANGES as u32)
}

/// Every peer of `r` reports `executed`, then `exchanges` progress intervals pass. The records `r`
/// persisted meanwhile.
fn exchanges_after_reports(r: &mut Replica, executed: &[u64], exchanges: u32) -> Vec<Record> {
    let me = r.config().id;
    let peers: Vec<ReplicaId> = r.config().replicas.iter().copied().filter(|p| *p != me).collect();
    for peer in peers {
        r.step(peer, Message::Progress { committed_up_to: 0, executed_up_to: executed.to_vec() });
    }
    let mut persisted = r.ready().persist;
    for _ in 0..r.config().progress_ticks() * exchanges {
        r.tick();
        persisted.extend(r.ready().persist);
    }
    persisted
}

fn forgets_key(persisted: &[Record], key: &str) -> bool {
    persisted.iter().any(|p| matches!(p, Record::ForgetKey { key: k } if k == key))
}

/// The attributes `r` proposes a command on `key` with.
fn proposed_attrs(r: &mut Replica, key: &str) -> Attributes {
    let id = r.propose(vec![cmd(key)]).unwrap();
    let ready = r.ready();
    let mut sent = ready.messages.into_iter().chain(ready.messages_after_persist);
    sent.find_map(|o| match o.message {
        Message::PreAccept { id: sent, attrs, .. } if sent == id => Some(attrs),
        _ => None,
    })
    .expect("a PreAccept")
}

#[test]
fn a_key_whose_instances_are_all_forgotten_leaves_memory_and_disk() {
    let mut r = replica(R1, 3);
    commit(&mut r, I21, attrs(1, &[]), "x");
    commit(&mut r, I22, attrs(1, &[]), "y");
    assert_eq!(r.counters().keys_held, 2);
    // Every replica executed 2.1, not 2.2: `x` is quiet, `y` is not.
    let persisted = every_peer_executed(&mut r, &[0, 1, 0]);
    assert!(forgets_key(&persisted, "x"), "{persisted:?}");
    assert!(!forgets_key(&persisted, "y"), "{persisted:?}");
    assert_eq!((r.counters().keys_held, r.counters().keys_forgotten), (1, 1));
    // A new instance on `x` names the dropped record's slot (forgotten: nothing waits on it) and
    // a seq above the record's, as a replica still holding the record would; one on `y` still
    // follows 2.2.
    assert_eq!(proposed_attrs(&mut r, "x"), attrs(2, &[I21]));
    assert_eq!(proposed_attrs(&mut r, "y"), attrs(2, &[I22]));
}

/// The PreAcceptOk `r` answers replica 3's instance 3.1 on `x` proposed with `proposed`.
fn vote_on_x(r: &mut Replica, proposed: Attributes) -> Attributes {
    let message = Message::PreAccept {
        id: I31,
        ballot: Ballot::initial(R3),
        attrs: proposed,
        commands: vec![cmd("x")],
    };
    r.step(R3, message);
    let ready = r.ready();
    let sent = ready.messages.into_iter().chain(ready.messages_after_persist);
    sent.into_iter()
        .find_map(|o| match o.message {
            Message::PreAcceptOk { attrs, .. } => Some(attrs),
            _ => None,
        })
        .expect("a PreAcceptOk")
}

#[test]
fn a_vote_on_a_dropped_key_still_names_what_its_record_named() {
    // Recovery counts on it: a replica that saw 2.1 on `x` names it in every vote on `x`, so an
    // instance that misses 2.1 cannot get that vote unchanged (see `quiet_keys`).
    let dropped_x = || {
        let mut r = replica(R1, 3);
        commit(&mut r, I21, attrs(1, &[]), "x");
        every_peer_executed(&mut r, &[0, 1, 0]);
        assert_eq!(r.counters().keys_held, 0);
        r
    };
    assert_eq!(vote_on_x(&mut dropped_x(), attrs(1, &[])), attrs(2, &[I21]), "a proposal that misses it");
    // A leader that dropped the record alike proposed it: the vote is the proposal, a fast path.
    assert_eq!(vote_on_x(&mut dropped_x(), attrs(2, &[I21])), attrs(2, &[I21]));
    assert_eq!(vote_on_x(&mut dropped_x(), attrs(2, &[I22])), attrs(2, &[I22]), "a later slot covers it");
}

#[test]
fn a_leader_that_dropped_a_record_proposes_what_a_replica_holding_it_votes() {
    // Forgetting is learned at different times: the leader may have dropped `x`'s record while
    // an acceptor still holds it. Both must give 3.1 the same attributes, or it takes the slow
    // path for nothing.
    let mut leader = replica(R3, 3);
    commit(&mut leader, I21, attrs(1, &[]), "x");
    every_peer_executed(&mut leader, &[0, 1, 0]);
    assert_eq!(leader.counters().keys_held, 0, "the leader dropped the record");
    let proposed = proposed_attrs(&mut leader, "x");
    let mut holder = replica(R1, 3);
    commit(&mut holder, I21, attrs(1, &[]), "x");
    assert_eq!(holder.counters().keys_held, 1, "the acceptor holds it");
    assert_eq!(vote_on_x(&mut holder, proposed.clone()), proposed);
}

#[test]
fn a_vote_that_names_an_earlier_instance_of_a_named_replica_is_the_proposal() {
    // The acceptor's record of `x` names 2.1; the proposal names 2.2 (of another key), which
    // stands for 2.1: the vote adds nothing, so the instance keeps its fast path.
    let mut holder = replica(R1, 3);
    commit(&mut holder, I21, attrs(1, &[]), "x");
    assert_eq!(vote_on_x(&mut holder, attrs(2, &[I22])), attrs(2, &[I22]));
}

#[test]
fn a_key_is_kept_while_one_replica_it_names_has_an_instance_not_forgotten() {
    let mut r = replica(R1, 3);
    commit(&mut r, I21, attrs(1, &[]), "x");
    // 3.1 on `x`, pre-accepted only.
    r.step(
        R3,
        Message::PreAccept {
            id: I31,
            ballot: Ballot::initial(R3),
            attrs: attrs(2, &[I21]),
            commands: vec![cmd("x")],
        },
    );
    r.ready();
    let persisted = every_peer_executed(&mut r, &[0, 1, 0]);
    assert!(!forgets_key(&persisted, "x"), "{persisted:?}");
    assert_eq!(r.counters().keys_held, 1);
    // Once 3.1 executed everywhere too, the key goes.
    commit(&mut r, I31, attrs(2, &[I21]), "x");
    assert_eq!(r.status(I31), None, "executed");
    let persisted = every_peer_executed(&mut r, &[0, 1, 1]);
    assert!(forgets_key(&persisted, "x"), "{persisted:?}");
    assert_eq!(r.counters().keys_held, 0);
}

#[test]
fn a_restarted_replica_drops_stored_records_of_forgotten_instances() {
    let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
    let record = |latest: &[InstanceId]| KeyRecord { seq_max: 1, latest: latest.to_vec() };
    let recovered = Recovered {
        keys: vec![("x".into(), record(&[I21])), ("y".into(), record(&[I11, I22]))],
        forgotten: vec![(R2, 1)],
        executed: vec![I11, I22],
        slot_reservation: 2,
        ..Recovered::default()
    };
    let mut r = Replica::recover(config, recovered);
    assert_eq!(r.counters().keys_held, 1, "only `y`");
    let persisted = r.ready().persist;
    assert!(forgets_key(&persisted, "x"), "{persisted:?}");
    // `y` goes once its instances are forgotten too: the restart put it back under watch.
    let persisted = every_peer_executed(&mut r, &[1, 2, 0]);
    assert!(forgets_key(&persisted, "y"), "{persisted:?}");
    assert_eq!(r.counters().keys_held, 0);
}

#[test]
fn try_pre_accept_is_not_refused_by_a_forgotten_instance() {
    // As `try_pre_accept_rules_out_the_fast_path_by_an_executed_instance_on_the_key` in the
    // handler tests, but 2.1 (on `x`, committed without 1.1) is forgotten: it executed on every
    // replica before this vote, hence before 1.1 can execute anywhere.
    let mut r = replica(R3, 5);
    commit(&mut r, I21, attrs(1, &[]), "x");
    every_peer_executed(&mut r, &[0, 1, 0, 0, 0]);
    commit(&mut r, I22, attrs(2, &[I11, I21]), "x");
    assert_eq!(r.status(I22), Some(Status::Committed), "waits for 1.1");
    let ballot = Ballot { round: 1, replica: ReplicaId(4) };
    assert_eq!(try_pre_accept_i11(&mut r), vec![Message::TryPreAcceptOk { id: I11, ballot }]);
}

/// A key other than `x` in `x`'s bucket of dropped records.
fn bucket_mate_of_x() -> String {
    let x = crate::quiet_keys::bucket(b"x");
    (0..).map(|n| format!("k{n}")).find(|k| crate::quiet_keys::bucket(k.as_bytes()) == x).expect("a mate")
}

#[test]
fn a_leader_still_holding_a_bucket_mate_s_record_proposes_what_an_acceptor_that_dropped_it_votes() {
    // 2.1 on `mate` executed everywhere. The acceptor dropped `mate`'s record, so its votes on `x`
    // (same bucket) name 2.1; the leader learned at its last exchange that 2.1 is forgotten, but
    // drops records only at the floors of earlier exchanges, so it still holds `mate`'s record and
    // `x`'s bucket holds nothing dropped. Before, it proposed 3.1 on `x` without 2.1, the vote
    // added it, and 3.1 took the slow path.
    let mate = bucket_mate_of_x();
    let mut acceptor = replica(R1, 3);
    commit(&mut acceptor, I21, attrs(1, &[]), &mate);
    every_peer_executed(&mut acceptor, &[0, 1, 0]);
    assert_eq!(acceptor.counters().keys_held, 0, "the acceptor dropped the record");
    let mut leader = replica(R3, 3);
    commit(&mut leader, I21, attrs(1, &[]), &mate);
    exchanges_after_reports(&mut leader, &[0, 1, 0], 1);
    assert_eq!(leader.forgotten_through(R2), 1, "the leader forgot 2.1");
    assert_eq!(leader.counters().keys_held, 1, "the leader still holds the record");
    let proposed = proposed_attrs(&mut leader, "x");
    assert_eq!(proposed, attrs(2, &[I21]), "forgotten, 2.1 waits on nothing");
    assert_eq!(vote_on_x(&mut acceptor, proposed.clone()), proposed, "the vote is the proposal: a fast path");
}

#[test]
fn a_record_is_dropped_only_at_the_floor_of_earlier_exchanges() {
    let mut r = replica(R1, 3);
    commit(&mut r, I21, attrs(1, &[]), "x");
    let mut persisted =
        exchanges_after_reports(&mut r, &[0, 1, 0], crate::replica::DROP_LAG_EXCHANGES as u32);
    assert_eq!(r.forgotten_through(R2), 1);
    assert!(!forgets_key(&persisted, "x"), "dropped at the floor of the exchange that learned it");
    persisted = exchanges_after_reports(&mut r, &[0, 1, 0], 1);
    assert!(forgets_key(&persisted, "x"), "{persisted:?}");
}
