//! Each test builds a replica in a known state, feeds one input, and compares the exact output.

use crate::message::Message;
use crate::ready::{Executed, LoadRequest, Outbound, Ready};
use crate::record::{InstanceRecord, KeyRecord, Record};
use crate::replica::Replica;
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use crate::{Config, config::SLOT_RESERVATION_CHUNK};

const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const R3: ReplicaId = ReplicaId(3);

pub(crate) fn replica(id: ReplicaId, n: u32) -> Replica {
    Replica::new(Config::new(id, (1..=n).map(ReplicaId).collect()).unwrap())
}

pub(crate) fn cmd(key: &str) -> Command {
    Command::new(key.to_string(), format!("set {key}"))
}

pub(crate) fn attrs(seq: u64, deps: &[InstanceId]) -> Attributes {
    Attributes { seq, deps: deps.to_vec() }
}

fn record(id: InstanceId, ballot: Ballot, status: Status, a: Attributes, commands: Vec<Command>) -> Record {
    record_m(id, ballot, status, a, commands, false)
}

/// A record whose attributes are the leader's unchanged ballot-0 proposal.
fn record_m(
    id: InstanceId,
    ballot: Ballot,
    status: Status,
    a: Attributes,
    commands: Vec<Command>,
    m: bool,
) -> Record {
    Record::Instance(InstanceRecord {
        id,
        ballot,
        accepted_ballot: ballot,
        status,
        attrs: a,
        commands,
        matches_proposal: m,
    })
}

fn key_record(key: &str, seq_max: u64, latest: &[InstanceId]) -> Record {
    Record::Key { key: key.to_string().into(), record: KeyRecord { seq_max, latest: latest.to_vec() } }
}

const I11: InstanceId = InstanceId::new(1, 1);
const I21: InstanceId = InstanceId::new(2, 1);
const B1: Ballot = Ballot::initial(R1);
const B2: Ballot = Ballot::initial(R2);

#[test]
fn propose_reserves_slots_and_sends_pre_accept_after_the_reservation_is_durable() {
    let mut r = replica(R1, 3);
    assert_eq!(r.propose(vec![cmd("a")]).unwrap(), I11);
    let pre_accept = |to| Outbound {
        to,
        message: Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] },
    };
    assert_eq!(
        r.ready(),
        Ready {
            persist: vec![
                Record::SlotReservation(1 + SLOT_RESERVATION_CHUNK),
                key_record("a", 1, &[I11]),
                record_m(I11, B1, Status::PreAccepted, attrs(1, &[]), vec![cmd("a")], true),
            ],
            messages_after_persist: vec![pre_accept(R2), pre_accept(R3)],
            ..Ready::default()
        }
    );
    // The next slot is inside the reservation: its PreAccepts leave at once.
    r.propose(vec![cmd("b")]).unwrap();
    let out = r.ready();
    assert_eq!(out.messages.len(), 2);
    assert!(out.messages_after_persist.is_empty());
}

/// A round may propose more instances than half a reservation chunk: the reservation it raises is
/// not durable before the round's write, so the PreAccepts of slots beyond the durable one wait
/// for it (else a crash could restart below a slot whose PreAccept escaped, and reuse it).
#[test]
fn pre_accepts_beyond_the_durable_reservation_wait_for_the_write() {
    let mut r = replica(R1, 3);
    r.propose(vec![cmd("a")]).unwrap();
    r.ready();
    let durable = 1 + SLOT_RESERVATION_CHUNK;
    let ids: Vec<InstanceId> =
        (0..SLOT_RESERVATION_CHUNK + 20).map(|_| r.propose(vec![cmd("b")]).unwrap()).collect();
    let out = r.ready();
    for id in ids {
        let sent_at_once =
            out.messages.iter().any(|o| matches!(&o.message, Message::PreAccept { id: i, .. } if *i == id));
        let sent_after = (out.messages_after_persist.iter())
            .any(|o| matches!(&o.message, Message::PreAccept { id: i, .. } if *i == id));
        assert_eq!((sent_at_once, sent_after), (id.slot < durable, id.slot >= durable), "{id}");
    }
}

#[test]
fn pre_accept_adds_local_conflicts_and_replies_after_persist() {
    let mut r2 = replica(R2, 3);
    r2.propose(vec![cmd("a")]).unwrap(); // 2.1 touches "a"
    r2.ready();
    r2.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    assert_eq!(
        r2.ready(),
        Ready {
            persist: vec![
                key_record("a", 2, &[I11, I21]),
                record(I11, B1, Status::PreAccepted, attrs(2, &[I21]), vec![cmd("a")]),
            ],
            messages_after_persist: vec![Outbound {
                to: R1,
                message: Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(2, &[I21]) },
            }],
            ..Ready::default()
        }
    );
}

#[test]
fn duplicate_pre_accept_repeats_the_vote() {
    let mut r2 = replica(R2, 3);
    let pa = Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] };
    r2.step(R1, pa.clone());
    r2.ready();
    r2.step(R1, pa);
    assert_eq!(
        r2.ready(),
        Ready {
            messages_after_persist: vec![Outbound {
                to: R1,
                message: Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) },
            }],
            ..Ready::default()
        }
    );
}

#[test]
fn matching_reply_commits_on_the_fast_path_and_executes() {
    let mut r1 = replica(R1, 3);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    let commit = |to| Outbound {
        to,
        message: Message::Commit { id: I11, attrs: attrs(1, &[]), commands: vec![cmd("a")] },
    };
    assert_eq!(
        r1.ready(),
        Ready {
            persist: vec![record_m(I11, B1, Status::Committed, attrs(1, &[]), vec![cmd("a")], true)],
            messages_after_persist: vec![commit(R2), commit(R3)],
            executed: vec![Executed { id: I11, commands: vec![cmd("a")] }],
            ..Ready::default()
        }
    );
    assert_eq!(r1.counters().fast_path, 1);
    assert!(r1.is_executed(I11));
}

#[test]
fn differing_reply_runs_accept_on_the_union() {
    let mut r1 = replica(R1, 3);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(2, &[I21]) });
    let accept = |to| Outbound {
        to,
        message: Message::Accept { id: I11, ballot: B1, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] },
    };
    assert_eq!(
        r1.ready(),
        Ready {
            persist: vec![
                key_record("a", 2, &[I11]),
                record_m(I11, B1, Status::Accepted, attrs(2, &[I21]), vec![cmd("a")], true),
            ],
            messages_after_persist: vec![accept(R2), accept(R3)],
            ..Ready::default()
        }
    );
    // A majority (itself and R3) accepts: committed on the slow path, waiting for 2.1 to execute.
    r1.step(R3, Message::AcceptOk { id: I11, ballot: B1 });
    let out = r1.ready();
    assert_eq!(
        out.persist,
        vec![record_m(I11, B1, Status::Committed, attrs(2, &[I21]), vec![cmd("a")], true)]
    );
    assert!(out.executed.is_empty());
    assert_eq!(r1.counters().slow_path, 1);
    assert_eq!(r1.blocked_on(), vec![I21]);
}

#[test]
fn n7_waits_for_a_fast_quorum_of_five() {
    let mut r1 = replica(R1, 7);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    for from in 2..=4 {
        r1.step(ReplicaId(from), Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    }
    // Four of seven is a majority but not a fast quorum.
    assert_eq!(r1.status(I11), Some(Status::PreAccepted));
    r1.step(ReplicaId(5), Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    assert!(r1.is_executed(I11) || r1.status(I11) == Some(Status::Committed));
    assert_eq!(r1.counters().fast_path, 1);
}

#[test]
fn n7_settles_for_the_slow_path_when_the_fast_quorum_is_late() {
    let mut r1 = replica(R1, 7);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    for from in 2..=4 {
        r1.step(ReplicaId(from), Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    }
    r1.ready();
    for _ in 0..r1.config().fast_path_wait_ticks {
        r1.tick();
    }
    assert_eq!(r1.status(I11), Some(Status::Accepted));
}

#[test]
fn accept_is_persisted_then_acknowledged() {
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::Accept { id: I11, ballot: B1, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] });
    assert_eq!(
        r3.ready(),
        Ready {
            persist: vec![
                key_record("a", 2, &[I11]),
                record(I11, B1, Status::Accepted, attrs(2, &[I21]), vec![cmd("a")]),
            ],
            messages_after_persist: vec![Outbound {
                to: R1,
                message: Message::AcceptOk { id: I11, ballot: B1 }
            }],
            ..Ready::default()
        }
    );
}

#[test]
fn stale_ballot_accept_is_refused_with_the_promised_ballot() {
    let mut r3 = replica(R3, 3);
    let high = Ballot { round: 1, replica: R2 };
    r3.step(R2, Message::Accept { id: I11, ballot: high, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    r3.ready();
    r3.step(R1, Message::Accept { id: I11, ballot: B1, attrs: attrs(5, &[]), commands: vec![cmd("a")] });
    let nack = Outbound { to: R1, message: Message::Nack { id: I11, promised: high } };
    assert_eq!(r3.ready(), Ready { messages: vec![nack], ..Ready::default() });
}

#[test]
fn commit_waits_for_dependencies_then_executes_in_order() {
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::Commit { id: I11, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] });
    let out = r3.ready();
    assert!(out.executed.is_empty());
    r3.step(R2, Message::Commit { id: I21, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    let out = r3.ready();
    let order: Vec<_> = out.executed.iter().map(|e| e.id).collect();
    assert_eq!(order, vec![I21, I11]);
}

#[test]
fn a_cycle_executes_in_seq_order() {
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::Commit { id: I11, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] });
    r3.step(R2, Message::Commit { id: I21, attrs: attrs(1, &[I11]), commands: vec![cmd("a")] });
    let order: Vec<_> = r3.ready().executed.iter().map(|e| e.id).collect();
    assert_eq!(order, vec![I21, I11]);
}

#[test]
fn blocked_executor_asks_peers_for_the_commit() {
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::Commit { id: I11, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] });
    r3.ready();
    for _ in 0..r3.config().commit_request_ticks {
        r3.tick();
    }
    let ask = |to| Outbound { to, message: Message::CommitRequest { ids: vec![I21] } };
    let out = r3.ready();
    let asks: Vec<_> =
        out.messages.into_iter().filter(|m| matches!(m.message, Message::CommitRequest { .. })).collect();
    assert_eq!(asks, vec![ask(R1), ask(R2)]);
}

#[test]
fn commit_request_is_served_from_memory_or_storage() {
    let mut r2 = replica(R2, 3);
    r2.step(R1, Message::Commit { id: I11, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    r2.ready(); // executed and dropped from memory
    r2.step(
        R1,
        Message::Commit { id: InstanceId::new(1, 2), attrs: attrs(3, &[I21]), commands: vec![cmd("b")] },
    );
    r2.ready(); // committed, waiting on 2.1
    r2.step(R3, Message::CommitRequest { ids: vec![I11, InstanceId::new(1, 2), InstanceId::new(1, 9)] });
    assert_eq!(
        r2.ready(),
        Ready {
            messages_after_persist: vec![Outbound {
                to: R3,
                message: Message::Commit {
                    id: InstanceId::new(1, 2),
                    attrs: attrs(3, &[I21]),
                    commands: vec![cmd("b")]
                },
            }],
            load_requests: vec![LoadRequest { to: R3, id: I11 }],
            ..Ready::default()
        }
    );
}

#[test]
#[should_panic(expected = "agreement violated")]
fn conflicting_commits_are_a_bug() {
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::Commit { id: I11, attrs: attrs(1, &[I21]), commands: vec![cmd("a")] });
    r3.step(R1, Message::Commit { id: I11, attrs: attrs(2, &[I21]), commands: vec![cmd("a")] });
}

#[test]
fn messages_from_non_members_change_nothing() {
    let mut r1 = replica(R1, 3);
    r1.step(ReplicaId(9), Message::Commit { id: I21, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    assert_eq!(r1.ready(), Ready::default());
    let _ = B2;
}

/// Ticks `r` for `intervals` resend intervals; returns what it then sends: (to, message name).
fn sent_after_resend_intervals(r: &mut Replica, intervals: u32) -> Vec<(ReplicaId, &'static str)> {
    for _ in 0..intervals * r.config().retry_ticks {
        r.tick();
    }
    r.ready().messages.into_iter().map(|m| (m.to, m.message.name())).collect()
}

#[test]
fn unanswered_pre_accept_is_resent_to_the_silent_replicas_only() {
    let mut r1 = replica(R1, 5);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    r1.ready();
    let sent = sent_after_resend_intervals(&mut r1, 1);
    let resent = |to| (to, "pre_accept");
    assert_eq!(sent, vec![resent(R3), resent(ReplicaId(4)), resent(ReplicaId(5))]);
    // Still two of five after a second resend, no quorum: the one peer that answered is asked to
    // recover it. (The first resend doubled the resend timeout: the second comes two intervals
    // later.)
    let sent = sent_after_resend_intervals(&mut r1, 2);
    let expected = vec![resent(R3), resent(ReplicaId(4)), resent(ReplicaId(5)), (R2, "take_over")];
    assert_eq!(sent, expected);
}

#[test]
fn a_leader_whose_missing_peers_have_long_been_silent_asks_for_a_take_over_at_the_first_resend() {
    let mut r1 = replica(R1, 5);
    // Replicas 3, 4 and 5 have said nothing for two resend intervals (partitioned or paused).
    sent_after_resend_intervals(&mut r1, 2);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    r1.ready();
    let sent = sent_after_resend_intervals(&mut r1, 1);
    assert!(sent.contains(&(R2, "take_over")), "{sent:?}");
}

#[test]
fn a_leader_with_a_quorum_asks_no_one_to_take_over() {
    let mut r1 = replica(R1, 5);
    r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    r1.step(R3, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[I21]) });
    r1.ready();
    let sent = sent_after_resend_intervals(&mut r1, 3);
    assert!(!sent.iter().any(|(_, name)| *name == "take_over"), "{sent:?}");
}

#[test]
fn take_over_recovers_a_held_instance_at_once_and_only_for_its_leader() {
    let pre_accept =
        Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] };
    let prepares = |r: &mut Replica| {
        let ready = r.ready();
        (ready.messages.into_iter().chain(ready.messages_after_persist))
            .filter(|m| matches!(m.message, Message::Prepare { id: I11, .. }))
            .count()
    };
    let mut r2 = replica(R2, 5);
    r2.step(R1, pre_accept);
    r2.ready();
    r2.step(R3, Message::TakeOver { id: I11 });
    assert_eq!(prepares(&mut r2), 0, "only the leader may ask");
    r2.step(R1, Message::TakeOver { id: I11 });
    assert_eq!(prepares(&mut r2), 4, "a Prepare to every peer");
    r2.step(R1, Message::TakeOver { id: I11 });
    assert_eq!(prepares(&mut r2), 0, "already recovering");
    let mut r3 = replica(R3, 5);
    r3.step(R1, Message::TakeOver { id: I11 });
    assert_eq!(prepares(&mut r3), 0, "not held here");
}

/// Replica 1's durable record of its own ballot-0 proposal I11 on key "a", not yet committed.
fn own_proposal_i11() -> InstanceRecord {
    InstanceRecord {
        id: I11,
        ballot: B1,
        accepted_ballot: B1,
        status: Status::PreAccepted,
        attrs: attrs(1, &[]),
        commands: vec![cmd("a")],
        matches_proposal: true,
    }
}

#[test]
fn restart_recovers_own_uncommitted_instances_at_a_higher_ballot() {
    let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
    let recovered = crate::Recovered {
        instances: vec![own_proposal_i11()],
        executed: vec![],
        keys: vec![("a".into(), KeyRecord { seq_max: 1, latest: vec![I11] })],
        slot_reservation: 1 + SLOT_RESERVATION_CHUNK,
        forgotten: vec![],
        ..crate::Recovered::default()
    };
    let mut r1 = Replica::recover(config, recovered);
    let mut prepares = Vec::new();
    for _ in 0..2 * r1.config().recovery_ticks {
        r1.tick();
        let out = r1.ready();
        prepares.extend(
            out.messages_after_persist.into_iter().filter(|m| matches!(m.message, Message::Prepare { .. })),
        );
    }
    let higher = Ballot { round: 1, replica: R1 };
    let for_i11: Vec<_> =
        prepares.iter().filter(|m| m.message == Message::Prepare { id: I11, ballot: higher }).collect();
    assert_eq!(for_i11.iter().map(|m| m.to).collect::<Vec<_>>(), vec![R2, R3]);
    // Every other slot of the reservation it has no record of is recovered too (once per peer).
    let gap = SLOT_RESERVATION_CHUNK as usize - 1;
    assert_eq!(prepares.len(), 2 * (1 + gap), "one Prepare per peer for 1.1 and each gap slot");
    assert_eq!(r1.propose(vec![cmd("b")]).unwrap(), InstanceId::new(1, 1 + SLOT_RESERVATION_CHUNK));
    // Until they have executed, new proposals depend on every slot it may have lost.
    let pre_accept = r1
        .ready()
        .messages_after_persist
        .into_iter()
        .find(|m| matches!(m.message, Message::PreAccept { .. }));
    let Some(Outbound { message: Message::PreAccept { attrs, .. }, .. }) = pre_accept else {
        panic!("no PreAccept")
    };
    // The highest of them stands for every earlier one (deps keep one instance per replica).
    assert_eq!(attrs.deps, vec![InstanceId::new(1, SLOT_RESERVATION_CHUNK)], "{attrs:?}");
}

/// Each restart that comes before the last one's gap is recovered (a node restarted into a
/// minority, then killed again) adds most of a chunk to the gap every proposal depends on. Past a
/// chunk the replica refuses to propose, retryably, rather than send deps no peer would decode;
/// once the gap is recovered it proposes again.
#[test]
fn restarts_in_quick_succession_never_propose_past_the_deps_bound() {
    use crate::codec::{decode_instance, decode_message, encode_instance, encode_message};
    use crate::replica::ProposeError;
    let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
    let mut reservation = 1 + SLOT_RESERVATION_CHUNK;
    let mut durable: Vec<InstanceRecord> = Vec::new();
    let mut refused = None;
    // Enough restarts for the gap to pass DEPS_MAX if nothing stopped it.
    let restarts = crate::config::DEPS_MAX / SLOT_RESERVATION_CHUNK as usize + 2;
    for restart in 0..restarts {
        let recovered = crate::Recovered {
            instances: durable.clone(),
            slot_reservation: reservation,
            writes_complete: true,
            ..crate::Recovered::default()
        };
        let mut r1 = Replica::recover(config.clone(), recovered);
        match r1.propose(vec![cmd("a")]) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, ProposeError::Recovering(r1.restart_gap.len()), "restart {restart}");
                assert!(e.is_retryable());
                refused = Some(r1);
                break;
            }
        }
        // The round is written (the instance and the reservation it renewed), then the node dies
        // before any tick: no gap slot was recovered.
        for record in r1.ready().persist {
            match record {
                Record::Instance(ir) => {
                    let deps = ir.attrs.deps.len();
                    assert!(deps <= crate::config::DEPS_MAX, "{deps} deps");
                    decode_instance(&encode_instance(&ir)).expect("a restart loads it");
                    durable.retain(|d| d.id != ir.id);
                    durable.push(ir);
                }
                Record::SlotReservation(slot) => reservation = slot,
                _ => {}
            }
        }
    }
    let mut r1 = refused.expect("never refused a proposal");
    assert!(
        r1.restart_gap.len() <= 2 * SLOT_RESERVATION_CHUNK as usize,
        "refused only at {}",
        r1.restart_gap.len()
    );
    // Peers answer the gap's recoveries with nothing: each commits a no-op and executes.
    for _ in 0..8 * r1.config().recovery_ticks {
        r1.tick();
        let out = r1.ready();
        for o in out.messages_after_persist.into_iter().chain(out.messages) {
            let reply = match o.message {
                Message::Prepare { id, ballot } => {
                    Message::PrepareOk { id, ballot, state: crate::message::Vote::none(id.replica) }
                }
                Message::Accept { id, ballot, .. } => Message::AcceptOk { id, ballot },
                _ => continue,
            };
            let (_, reply) = decode_message(&encode_message(1, &reply)).unwrap();
            r1.step(o.to, reply);
        }
        if r1.propose(vec![cmd("b")]).is_ok() {
            return;
        }
    }
    panic!("still refusing with {} gap slots", r1.restart_gap.len());
}

#[test]
fn votes_need_a_sync_and_commits_do_not() {
    let mut r1 = replica(R1, 3);
    r1.propose(vec![cmd("a")]).unwrap();
    assert!(r1.ready().needs_sync(), "the leader's own vote");
    r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
    let commit_round = r1.ready();
    assert!(!commit_round.persist.is_empty() && !commit_round.needs_sync(), "{commit_round:?}");
    let mut r3 = replica(R3, 3);
    r3.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    assert!(r3.ready().needs_sync(), "an acceptor's vote");
    r3.step(R2, Message::Prepare { id: InstanceId::new(2, 1), ballot: Ballot { round: 1, replica: R2 } });
    assert!(r3.ready().needs_sync(), "a promise");
}

#[test]
fn phase_messages_for_a_committed_instance_are_answered_with_the_commit() {
    let mut r2 = replica(R2, 3);
    r2.step(
        R3,
        Message::Commit { id: InstanceId::new(1, 2), attrs: attrs(1, &[I21]), commands: vec![cmd("b")] },
    );
    r2.ready(); // committed, waiting on 2.1
    r2.step(
        R1,
        Message::Accept {
            id: InstanceId::new(1, 2),
            ballot: B1,
            attrs: attrs(1, &[I21]),
            commands: vec![cmd("b")],
        },
    );
    let commit =
        Message::Commit { id: InstanceId::new(1, 2), attrs: attrs(1, &[I21]), commands: vec![cmd("b")] };
    assert_eq!(
        r2.ready(),
        Ready { messages_after_persist: vec![Outbound { to: R1, message: commit }], ..Ready::default() }
    );
    r2.step(R3, Message::Commit { id: I11, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    r2.ready(); // executed and dropped from memory
    r2.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    assert_eq!(
        r2.ready(),
        Ready { load_requests: vec![LoadRequest { to: R1, id: I11 }], ..Ready::default() }
    );
}

/// The answers of an acceptor to a TryPreAccept, in any of the round's outboxes.
fn try_answers(r: &mut Replica) -> Vec<Message> {
    let ready = r.ready();
    (ready.messages.into_iter().chain(ready.messages_after_persist))
        .map(|o| o.message)
        .filter(|m| matches!(m, Message::TryPreAcceptOk { .. } | Message::TryPreAcceptNack { .. }))
        .collect()
}

const R4: ReplicaId = ReplicaId(4);
const I31: InstanceId = InstanceId::new(3, 1);

pub(crate) fn try_pre_accept_i11(r: &mut Replica) -> Vec<Message> {
    try_pre_accept_i11_held_by(r, vec![])
}

/// TryPreAccept of 1.1 (on `x`, no deps) from replica 4, saying `holders` hold it unchanged.
fn try_pre_accept_i11_held_by(r: &mut Replica, holders: Vec<ReplicaId>) -> Vec<Message> {
    let ballot = Ballot { round: 1, replica: R4 };
    let message =
        Message::TryPreAccept { id: I11, ballot, attrs: attrs(1, &[]), commands: vec![cmd("x")], holders };
    r.step(R4, message);
    try_answers(r)
}

#[test]
fn try_pre_accept_refusal_names_leaders_that_proposed_before_seeing_the_instance() {
    let mut r = replica(R3, 5);
    // Replica 2's ballot-0 proposal, held unchanged: it does not order itself after 1.1.
    r.step(R2, Message::PreAccept { id: I21, ballot: B2, attrs: attrs(1, &[]), commands: vec![cmd("x")] });
    r.ready();
    let nack = |committed, excluded: Vec<ReplicaId>| Message::TryPreAcceptNack {
        id: I11,
        ballot: Ballot { round: 1, replica: R4 },
        conflict: I21,
        committed,
        excluded,
    };
    assert_eq!(try_pre_accept_i11(&mut r), vec![nack(false, vec![R2])]);
}

#[test]
fn try_pre_accept_refusal_says_when_a_conflict_committed_without_the_instance() {
    let mut r = replica(R3, 5);
    r.step(R2, Message::Commit { id: I21, attrs: attrs(1, &[]), commands: vec![cmd("x")] });
    r.ready();
    let answers = try_pre_accept_i11(&mut r);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict: I21, committed: true, excluded, .. }] if excluded.is_empty()),
        "{answers:?}"
    );
}

#[test]
fn try_pre_accept_ignores_a_conflict_committed_after_the_instance() {
    let mut r = replica(R3, 5);
    // 3.1 is committed after 1.1 (it depends on it), and is the first of its replica.
    r.step(R2, Message::Commit { id: I31, attrs: attrs(2, &[I11]), commands: vec![cmd("x")] });
    r.ready();
    let ballot = Ballot { round: 1, replica: R4 };
    assert_eq!(try_pre_accept_i11(&mut r), vec![Message::TryPreAcceptOk { id: I11, ballot }]);
}

#[test]
fn try_pre_accept_refuses_a_conflict_committed_after_the_instance_with_unknown_predecessors() {
    let mut r = replica(R3, 5);
    // 2.2 depends on 1.1, but replica 2's earlier 2.1 is not covered by the proposal: this
    // replica has never seen 2.1, so it cannot tell whether 2.1 touched the key, and must refuse.
    let i22 = InstanceId::new(2, 2);
    r.step(R2, Message::Commit { id: i22, attrs: attrs(2, &[I11]), commands: vec![cmd("x")] });
    r.ready();
    let answers = try_pre_accept_i11(&mut r);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict: I21, committed: false, .. }]),
        "{answers:?}"
    );
}

#[test]
fn try_pre_accept_looks_at_each_earlier_instance_of_a_replica() {
    // The index shows only replica 2's latest on `x`, 2.3, ordered after 1.1; the slots before
    // it decide. 2.1 on another key and 2.2 on `x` after 1.1: nothing refuses.
    let mut r = replica(R3, 5);
    let (i22, i23) = (InstanceId::new(2, 2), InstanceId::new(2, 3));
    r.step(R2, Message::PreAccept { id: I21, ballot: B2, attrs: attrs(1, &[]), commands: vec![cmd("y")] });
    r.step(R2, Message::Commit { id: i22, attrs: attrs(2, &[I11, I21]), commands: vec![cmd("x")] });
    r.step(R2, Message::Commit { id: i23, attrs: attrs(3, &[I11, i22]), commands: vec![cmd("x")] });
    r.ready();
    let ballot = Ballot { round: 1, replica: R4 };
    assert_eq!(try_pre_accept_i11(&mut r), vec![Message::TryPreAcceptOk { id: I11, ballot }]);
    // 2.2 only pre-accepted, proposed after 1.1: ordered after it in every vote, nothing refuses.
    let mut r = replica(R3, 5);
    r.step(R2, Message::PreAccept { id: I21, ballot: B2, attrs: attrs(1, &[]), commands: vec![cmd("y")] });
    r.step(
        R2,
        Message::PreAccept { id: i22, ballot: B2, attrs: attrs(2, &[I11, I21]), commands: vec![cmd("x")] },
    );
    r.step(R2, Message::Commit { id: i23, attrs: attrs(3, &[I11, i22]), commands: vec![cmd("x")] });
    r.ready();
    assert_eq!(try_pre_accept_i11(&mut r), vec![Message::TryPreAcceptOk { id: I11, ballot }]);
    // 2.2 only pre-accepted, proposed without 1.1: refused, naming it.
    let mut r = replica(R3, 5);
    r.step(R2, Message::PreAccept { id: I21, ballot: B2, attrs: attrs(1, &[]), commands: vec![cmd("y")] });
    r.step(R2, Message::PreAccept { id: i22, ballot: B2, attrs: attrs(2, &[I21]), commands: vec![cmd("x")] });
    r.step(R2, Message::Commit { id: i23, attrs: attrs(3, &[I11, i22]), commands: vec![cmd("x")] });
    r.ready();
    let answers = try_pre_accept_i11(&mut r);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict, committed: false, .. }] if *conflict == i22),
        "{answers:?}"
    );
}

#[test]
fn try_pre_accept_rules_out_the_fast_path_by_an_executed_instance_on_the_key() {
    // 2.1 on `x` committed and executed here without 1.1, then 2.2 on `x` after 1.1: 2.1 left
    // memory, but the highest slot of replica 2 executed on `x` is kept while 2.2 is in flight.
    let mut r = replica(R3, 5);
    let i22 = InstanceId::new(2, 2);
    r.step(R2, Message::Commit { id: I21, attrs: attrs(1, &[]), commands: vec![cmd("x")] });
    assert_eq!(r.ready().executed.len(), 1);
    assert_eq!(r.status(I21), None, "executed instances leave memory");
    r.step(R2, Message::Commit { id: i22, attrs: attrs(2, &[I11, I21]), commands: vec![cmd("x")] });
    r.ready();
    let answers = try_pre_accept_i11(&mut r);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict: I21, committed: true, .. }]),
        "{answers:?}"
    );
    // Executed on another key: not on `x`, so nothing refuses.
    let mut r = replica(R3, 5);
    r.step(R2, Message::Commit { id: I21, attrs: attrs(1, &[]), commands: vec![cmd("y")] });
    r.ready();
    r.step(R2, Message::Commit { id: i22, attrs: attrs(2, &[I11, I21]), commands: vec![cmd("x")] });
    r.ready();
    let ballot = Ballot { round: 1, replica: R4 };
    assert_eq!(try_pre_accept_i11(&mut r), vec![Message::TryPreAcceptOk { id: I11, ballot }]);
}

#[test]
fn try_pre_accept_lets_through_the_instances_of_replicas_holding_the_proposal() {
    // As above, but the recoverer saw replica 2 hold 1.1's proposal unchanged: replica 2 then had
    // no instance on `x` the proposal misses, so 2.1 and 2.2, whatever they touch, came after
    // its vote and depend on 1.1.
    let mut r = replica(R3, 5);
    let i22 = InstanceId::new(2, 2);
    r.step(R2, Message::Commit { id: i22, attrs: attrs(2, &[I11]), commands: vec![cmd("x")] });
    r.ready();
    let ballot = Ballot { round: 1, replica: R4 };
    assert_eq!(
        try_pre_accept_i11_held_by(&mut r, vec![R2]),
        vec![Message::TryPreAcceptOk { id: I11, ballot }]
    );
    // A replica that is not a holder is still checked: 3.1 below, its own, is refused.
    let mut r = replica(R3, 5);
    r.propose(vec![cmd("x")]).unwrap();
    r.ready();
    let answers = try_pre_accept_i11_held_by(&mut r, vec![R2]);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict: I31, committed: false, .. }]),
        "{answers:?}"
    );
}

#[test]
fn a_restarted_acceptor_keeps_out_of_fast_paths_until_its_lost_slots_are_settled() {
    // Replica 2 restarts with slots 1 and 2 reserved and no record of them: a proposal of its
    // own on any key may have escaped before the crash.
    let config = Config::new(R2, vec![R1, R2, R3]).unwrap();
    let recovered = crate::Recovered { slot_reservation: 3, ..crate::Recovered::default() };
    let mut r2 = Replica::recover(config, recovered);
    r2.ready();
    r2.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("x")] });
    // It answers, but never with the proposal unchanged: a higher seq keeps it out of the fast path.
    let reply = r2.ready().messages_after_persist.into_iter().find(|o| o.to == R1).map(|o| o.message);
    assert_eq!(reply, Some(Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(2, &[]) }));
    // Nor does it pre-accept a recoverer's proposal that misses them.
    r2.step(
        R3,
        Message::TryPreAccept {
            id: I11,
            ballot: Ballot { round: 1, replica: R3 },
            attrs: attrs(1, &[]),
            commands: vec![cmd("x")],
            holders: vec![],
        },
    );
    let answers = try_answers(&mut r2);
    assert!(
        matches!(&answers[..], [Message::TryPreAcceptNack { conflict: I21, committed: false, .. }]),
        "{answers:?}"
    );
}

#[test]
fn a_restarted_replica_reports_its_executed_slots_as_committed() {
    // Replica 1 restarts with its slots 1 and 2 executed and nothing else unfinished: peers that
    // missed their Commits learn of them only from its Progress.
    let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
    let recovered = crate::Recovered {
        executed: vec![I11, InstanceId::new(1, 2)],
        slot_reservation: 3,
        ..crate::Recovered::default()
    };
    let mut r1 = Replica::recover(config, recovered);
    let mut reported = None;
    for _ in 0..4 * r1.config().progress_ticks() {
        r1.tick();
        for out in r1.ready().messages_after_persist {
            if let Message::Progress { committed_up_to, .. } = out.message {
                reported = Some(committed_up_to);
            }
        }
    }
    assert_eq!(reported, Some(2));
}

#[test]
fn a_replica_asks_a_peer_for_slots_of_a_silent_leader_the_peer_executed() {
    // Replica 2 reports it executed replica 3's slots 1 and 2; replica 3 says nothing (down for
    // good). Replica 1 never saw them: a progress interval later, it asks replica 2.
    let mut r1 = replica(R1, 3);
    let progress = Message::Progress { committed_up_to: 0, executed_up_to: vec![0, 0, 2] };
    let mut asked = Vec::new();
    for _ in 0..3 * r1.config().progress_ticks() {
        r1.step(R2, progress.clone());
        r1.tick();
        for out in r1.ready().messages {
            if let Message::CommitRequest { ids } = out.message {
                asked.push((out.to, ids));
            }
        }
    }
    let i31 = InstanceId::new(3, 1);
    let i32 = InstanceId::new(3, 2);
    assert!(asked.contains(&(R2, vec![i31, i32])), "{asked:?}");
    assert!(asked.iter().all(|(to, _)| *to == R2), "only the peer that executed them: {asked:?}");
}

/// What a restarted leader says of its own uncommitted instance: that it never committed it when
/// the restart kept every write (the process died, the machine did not), nothing when it may have
/// lost some; and after such a restart it again vouches for what it proposes next.
#[test]
fn a_restarted_leader_vouches_it_never_committed_only_when_no_write_was_lost() {
    let restart = |writes_complete: bool| {
        let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
        let recovered = crate::Recovered {
            instances: vec![own_proposal_i11()],
            keys: vec![("a".into(), KeyRecord { seq_max: 1, latest: vec![I11] })],
            slot_reservation: 1 + SLOT_RESERVATION_CHUNK,
            writes_complete,
            ..crate::Recovered::default()
        };
        Replica::recover(config, recovered)
    };
    let vote = |r: &mut Replica, id: InstanceId, round: u32| {
        r.step(R2, Message::Prepare { id, ballot: Ballot { round, replica: R2 } });
        let out = r.ready().messages_after_persist;
        match &out[..] {
            [Outbound { message: Message::PrepareOk { state, .. }, .. }] => state.leader_never_committed,
            other => panic!("{other:?}"),
        }
    };
    let mut kept = restart(true);
    assert!(kept.ready().persist.is_empty(), "nothing new to record");
    assert!(vote(&mut kept, I11, 1), "the same boot: it knows it did not commit");

    let mut lost = restart(false);
    let from = 1 + SLOT_RESERVATION_CHUNK;
    assert_eq!(lost.ready().persist, vec![Record::OwnCommitsKnownFrom(from)]);
    assert!(!vote(&mut lost, I11, 1), "a power loss may have taken its commit");
    // A proposal after the restart, then a recoverer takes over: that one it vouches for.
    let next = lost.propose(vec![cmd("b")]).unwrap();
    assert_eq!(next.slot, from);
    lost.ready();
    assert!(vote(&mut lost, next, 1));
    // Once committed, never.
    lost.step(R3, Message::Commit { id: next, attrs: attrs(1, &[]), commands: vec![cmd("b")] });
    lost.ready();
    lost.step(R2, Message::Prepare { id: next, ballot: Ballot { round: 2, replica: R2 } });
    let out = lost.ready();
    assert!(
        out.messages
            .iter()
            .chain(&out.messages_after_persist)
            .all(|o| !matches!(o.message, Message::PrepareOk { .. })),
        "a committed instance answers with its commit"
    );
}

/// A recoverer that has promised another recoverer a higher ballot must not go on with its own
/// recovery: a late vote for its lower ballot would otherwise have it take over and vote below its
/// promise, and two recoverers could each get a different value accepted by a majority. (Found by
/// the seed hunt, seed 1400958 with N = 3.)
#[test]
fn a_recoverer_that_promised_a_higher_ballot_drops_its_recovery() {
    let mut r1 = replica(R1, 3);
    let proposal = attrs(1, &[]);
    r1.step(
        R2,
        Message::PreAccept { id: I21, ballot: B2, attrs: proposal.clone(), commands: vec![cmd("a")] },
    );
    r1.ready();
    r1.start_recovery(I21);
    r1.ready();
    let mine = Ballot { round: 1, replica: R1 };
    let theirs = Ballot { round: 2, replica: R3 };
    r1.step(R3, Message::Prepare { id: I21, ballot: theirs });
    r1.ready();
    // The leader's late answer to the older Prepare: with this replica's own, a majority.
    let vote = crate::message::Vote {
        status: Status::PreAccepted,
        accepted_ballot: B2,
        attrs: proposal,
        commands: vec![cmd("a")],
        matches_proposal: true,
        leader_never_committed: true,
    };
    r1.step(R2, Message::PrepareOk { id: I21, ballot: mine, state: vote });
    let out = r1.ready();
    let sent: Vec<_> = out.messages.iter().chain(&out.messages_after_persist).map(|o| &o.message).collect();
    assert!(sent.is_empty(), "{sent:?}");
    for record in &out.persist {
        if let Record::Instance(r) = record {
            assert!(r.ballot >= theirs, "a vote below the promise: {r:?}");
        }
    }
}

/// A Commit leaves a replica only after the commit is written there, also when it answers a
/// Prepare or a CommitRequest in the round that committed (the driver batches inputs): a leader
/// that restarts without the commit record may vouch that it never committed.
#[test]
fn a_commit_answered_in_the_round_that_committed_leaves_after_the_write() {
    for late in [
        Message::Prepare { id: I11, ballot: Ballot { round: 1, replica: R3 } },
        Message::CommitRequest { ids: vec![I11] },
    ] {
        let mut r1 = replica(R1, 3);
        r1.propose(vec![cmd("a")]).unwrap();
        r1.ready();
        r1.step(R2, Message::PreAcceptOk { id: I11, ballot: B1, attrs: attrs(1, &[]) });
        r1.step(R3, late.clone());
        let out = r1.ready();
        assert!(
            out.persist.iter().any(|r| matches!(r, Record::Instance(i) if i.status == Status::Committed))
        );
        assert!(
            out.messages.iter().all(|o| !matches!(o.message, Message::Commit { .. })),
            "{late:?}: a Commit before the write: {:?}",
            out.messages
        );
        let to: Vec<_> = (out.messages_after_persist.iter())
            .filter(|o| matches!(o.message, Message::Commit { .. }))
            .map(|o| o.to)
            .collect();
        assert_eq!(to, [R2, R3, R3], "{late:?}: the broadcast, then the answer");
    }
}

/// A recoverer whose PrepareOk was lost asks again at the same ballot: the answer is the vote
/// again, not a Nack (which would cost it a whole recovery at a higher ballot).
#[test]
fn a_repeated_prepare_at_the_promised_ballot_is_answered_again() {
    let mut r2 = replica(R2, 3);
    r2.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    r2.ready();
    let ballot = Ballot { round: 1, replica: R3 };
    let answers = |r: &mut Replica| -> Vec<Message> {
        let out = r.ready();
        out.messages.into_iter().chain(out.messages_after_persist).map(|o| o.message).collect()
    };
    r2.step(R3, Message::Prepare { id: I11, ballot });
    let first = answers(&mut r2);
    assert!(matches!(&first[..], [Message::PrepareOk { .. }]), "{first:?}");
    r2.step(R3, Message::Prepare { id: I11, ballot });
    assert_eq!(answers(&mut r2), first);
    r2.step(R1, Message::Prepare { id: I11, ballot: Ballot { round: 1, replica: R1 } });
    assert_eq!(answers(&mut r2), [Message::Nack { id: I11, promised: ballot }]);
}

/// The chaos harness saw a node SIGKILLed together with another, then restarted, answer nothing
/// for about a minute (once for the rest of the run) while the other nodes served. A replica
/// killed while its committed instances waited on an instance of the other (uncommitted here:
/// its leader died with it) restarts with every one of them queued for execution, each of which
/// the executor searched separately, expanding every dependency slot by slot: cubic in their
/// number, in the driver's first round. Now the first search finds the region blocked, the rest
/// stop there, and the round is linear in it.
#[test]
fn a_restarted_replica_with_a_blocked_backlog_executes_it_in_linear_work() {
    const COUNT: u64 = 400;
    // Replica 1's and replica 2's instances on one key, as concurrent leaders under contention
    // leave them: one cycle (each of replica 1's depends on replica 2's latest, each of replica
    // 2's on replica 1's next), whose last instance also depends on replica 3's slot 1.
    let committed = |id: InstanceId, deps: &[InstanceId]| crate::InstanceRecord {
        id,
        ballot: Ballot::initial(id.replica),
        accepted_ballot: Ballot::initial(id.replica),
        status: Status::Committed,
        attrs: attrs(1, deps),
        commands: vec![cmd("a")],
        matches_proposal: false,
    };
    let mut instances = vec![];
    for slot in 1..=COUNT {
        instances.push(committed(InstanceId::new(1, slot), &[InstanceId::new(2, slot)]));
        let next = if slot < COUNT {
            vec![InstanceId::new(1, slot + 1)]
        } else {
            vec![InstanceId::new(1, slot), InstanceId::new(3, 1)]
        };
        instances.push(committed(InstanceId::new(2, slot), &next));
    }
    let config = Config::new(R1, vec![R1, R2, R3]).unwrap();
    let recovered = crate::Recovered {
        instances,
        slot_reservation: COUNT + 1,
        writes_complete: true,
        ..Default::default()
    };
    let mut r1 = Replica::recover(config, recovered);
    assert!(r1.ready().executed.is_empty());
    let steps = r1.counters().execution_steps;
    assert!(steps <= 10 * 2 * COUNT, "{steps} search steps for a backlog of {}", 2 * COUNT);
    // The missing instance commits: the whole backlog runs, in order.
    r1.step(
        R3,
        Message::Commit { id: InstanceId::new(3, 1), attrs: attrs(1, &[]), commands: vec![cmd("a")] },
    );
    let executed: Vec<InstanceId> = r1.ready().executed.iter().map(|e| e.id).collect();
    // One component: in (seq, id) order, all of replica 1's, then all of replica 2's.
    let mut expected = vec![InstanceId::new(3, 1)];
    expected.extend((1..=COUNT).map(|s| InstanceId::new(1, s)));
    expected.extend((1..=COUNT).map(|s| InstanceId::new(2, s)));
    assert_eq!(executed, expected);
    let steps = r1.counters().execution_steps;
    assert!(steps <= 20 * 2 * COUNT, "{steps} search steps to execute a backlog of {}", 2 * COUNT);
}
