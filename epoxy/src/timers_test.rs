//! When a replica acts on silence: a crashed leader's instance recovered once the leader missed a
//! progress exchange (`silent_leader_wait` in replica.rs), and a leader's resends after the
//! timeout learned from its own phases (`crate::resend_timer`).

use crate::handler::handler_test::{attrs, cmd, replica};
use crate::message::Message;
use crate::replica::Replica;
use crate::types::{Ballot, InstanceId, ReplicaId};

const R1: ReplicaId = ReplicaId(1);
const R2: ReplicaId = ReplicaId(2);
const R3: ReplicaId = ReplicaId(3);
const I11: InstanceId = InstanceId::new(1, 1);
const B1: Ballot = Ballot::initial(R1);

/// Replica `me` of 5 holds replica 1's PreAccept of I11, and then hears nothing from anyone.
fn holding_a_pre_accept_of_1(me: ReplicaId) -> Replica {
    let mut r = replica(me, 5);
    r.step(R1, Message::PreAccept { id: I11, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("a")] });
    r.ready();
    r
}

/// Ticks `r` until it sends a Prepare for I11 (at most `ticks_max`); the tick it did, if any.
fn ticks_to_prepare(
    r: &mut Replica,
    ticks_max: u32,
    mut each_tick: impl FnMut(u32, &mut Replica),
) -> Option<u32> {
    for tick in 1..=ticks_max {
        each_tick(tick, r);
        r.tick();
        let sent = r.ready().messages_after_persist;
        if sent.iter().any(|m| matches!(m.message, Message::Prepare { id: I11, .. })) {
            return Some(tick);
        }
    }
    None
}

/// Ticks leader `r` until it resends the PreAccept of `id` (at most `ticks_max`); the tick it did.
fn ticks_to_resend(r: &mut Replica, id: InstanceId, ticks_max: u32) -> Option<u32> {
    (1..=ticks_max).find(|_| {
        r.tick();
        r.ready().messages.iter().any(|m| matches!(m.message, Message::PreAccept { id: i, .. } if i == id))
    })
}

#[test]
fn a_leader_silent_for_a_progress_interval_has_its_instance_recovered_in_ring_order() {
    let mut r2 = holding_a_pre_accept_of_1(R2);
    let config = r2.config().clone();
    let silent = config.progress_ticks();
    assert!(silent + 5 < config.recovery_ticks, "the test tells the two waits apart");
    // Replica 2 comes first after replica 1 in ring order, replica 3 a turn later.
    let at = ticks_to_prepare(&mut r2, config.recovery_ticks, |_, _| {}).expect("recovered early");
    assert!((silent..=silent + 3).contains(&at), "replica 2 recovered at tick {at}");
    let mut r3 = holding_a_pre_accept_of_1(R3);
    let at3 = ticks_to_prepare(&mut r3, config.recovery_ticks, |_, _| {}).expect("recovered early");
    assert!(at3 > at && at3 <= silent + 5, "replica 3 recovered at tick {at3}, replica 2 at {at}");
}

#[test]
fn a_leader_heard_from_lately_is_given_its_whole_stall_timeout() {
    let mut r2 = holding_a_pre_accept_of_1(R2);
    let config = r2.config().clone();
    let progress = Message::Progress { committed_up_to: 0, executed_up_to: vec![0; 5] };
    // The leader's progress exchange arrives every interval, a tick early: never a silent interval.
    let every = config.progress_ticks() - 1;
    let at = ticks_to_prepare(&mut r2, 3 * config.recovery_ticks, |tick, r| {
        if tick % every == 0 {
            r.step(R1, progress.clone());
        }
    });
    let at = at.expect("recovered after its stall timeout");
    assert!(at >= config.recovery_ticks, "recovered at tick {at}, before the stall timeout");
}

#[test]
fn a_recoverer_that_came_forward_is_given_a_whole_stall_timeout_though_the_leader_is_silent() {
    let mut r3 = holding_a_pre_accept_of_1(R3);
    let config = r3.config().clone();
    // Replica 2 began recovering I11 before replica 3's turn: replica 3 promises its ballot.
    let at = ticks_to_prepare(&mut r3, 3 * config.recovery_ticks, |tick, r| {
        if tick == config.progress_ticks() {
            r.step(R2, Message::Prepare { id: I11, ballot: Ballot { round: 1, replica: R2 } });
        }
    });
    let at = at.expect("recovered after a whole stall timeout");
    // (The promise's wait counts from the tick it arrived in.)
    assert!(at >= config.progress_ticks() + config.recovery_ticks - 1, "recovered at tick {at}");
}

#[test]
fn a_leader_whose_phases_answer_within_a_tick_resends_after_the_floor_not_the_initial_timeout() {
    let mut r1 = replica(R1, 3);
    let config = r1.config().clone();
    assert!(config.resend_ticks_min < config.retry_ticks);
    // Ten instances answered at once by replica 2: each a sample of zero ticks.
    for slot in 1..=10 {
        let id = r1.propose(vec![cmd(&format!("k{slot}"))]).unwrap();
        r1.ready();
        r1.step(R2, Message::PreAcceptOk { id, ballot: B1, attrs: attrs(1, &[]) });
        r1.ready();
    }
    let id = r1.propose(vec![cmd("silent")]).unwrap();
    r1.ready();
    assert_eq!(ticks_to_resend(&mut r1, id, config.retry_ticks), Some(config.resend_ticks_min));
}

#[test]
fn a_leader_without_samples_resends_after_the_initial_timeout() {
    let mut r1 = replica(R1, 3);
    let config = r1.config().clone();
    let id = r1.propose(vec![cmd("a")]).unwrap();
    r1.ready();
    assert_eq!(ticks_to_resend(&mut r1, id, 2 * config.retry_ticks), Some(config.retry_ticks));
    let counters = r1.counters();
    assert_eq!((counters.resends, counters.resend_timeout_ticks), (1, u64::from(config.retry_ticks)));
}
