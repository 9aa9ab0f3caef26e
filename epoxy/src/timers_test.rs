//! When a replica acts on silence: a crashed leader's instance recovered once the leader missed a
//! progress exchange (`silent_leader_wait` in replica.rs), a live leader's instances waited for as
//! long as they take to commit (`Replica::stall_wait`), and a leader's resends after the timeout
//! learned from its own phases (`crate::resend_timer`).

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

/// Ticks `r` until it sends a Prepare for `id` (at most `ticks_max`); the tick it did, if any.
fn ticks_to_prepare(
    r: &mut Replica,
    id: InstanceId,
    ticks_max: u32,
    mut each_tick: impl FnMut(u32, &mut Replica),
) -> Option<u32> {
    for tick in 1..=ticks_max {
        each_tick(tick, r);
        r.tick();
        let sent = r.ready().messages_after_persist;
        if sent.iter().any(|m| matches!(m.message, Message::Prepare { id: i, .. } if i == id)) {
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
    let at = ticks_to_prepare(&mut r2, I11, config.recovery_ticks, |_, _| {}).expect("recovered early");
    assert!((silent..=silent + 3).contains(&at), "replica 2 recovered at tick {at}");
    let mut r3 = holding_a_pre_accept_of_1(R3);
    let at3 = ticks_to_prepare(&mut r3, I11, config.recovery_ticks, |_, _| {}).expect("recovered early");
    assert!(at3 > at && at3 <= silent + 5, "replica 3 recovered at tick {at3}, replica 2 at {at}");
}

#[test]
fn a_leader_heard_from_lately_is_given_its_whole_stall_timeout() {
    let mut r2 = holding_a_pre_accept_of_1(R2);
    let config = r2.config().clone();
    let progress = Message::Progress { committed_up_to: 0, executed_up_to: vec![0; 5] };
    // The leader's progress exchange arrives every interval, a tick early: never a silent interval.
    let every = config.progress_ticks() - 1;
    let at = ticks_to_prepare(&mut r2, I11, 3 * config.recovery_ticks, |tick, r| {
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
    let at = ticks_to_prepare(&mut r3, I11, 3 * config.recovery_ticks, |tick, r| {
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

/// Replica 2 of 3 votes for `count` instances of replica 1, one after another, each committed
/// `delay` ticks after its PreAccept; replica 1's progress exchange arrives every interval (it is
/// live and heard from). Per instance: whether replica 2 began recovering it.
fn recovered_of_late_commits(r2: &mut Replica, first_slot: u64, count: u64, delay: u32) -> Vec<bool> {
    let progress = Message::Progress { committed_up_to: 0, executed_up_to: vec![0; 3] };
    let every = r2.config().progress_ticks() - 1;
    let mut tick = 0u32;
    let mut recovered = Vec::new();
    for slot in first_slot..first_slot + count {
        let id = InstanceId::new(1, slot);
        let key = format!("k{slot}");
        r2.step(R1, Message::PreAccept { id, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd(&key)] });
        r2.ready();
        let mut prepared = false;
        for _ in 0..delay {
            tick += 1;
            if tick.is_multiple_of(every) {
                r2.step(R1, progress.clone());
            }
            r2.tick();
            let sent = r2.ready();
            prepared |= sent
                .messages
                .iter()
                .chain(&sent.messages_after_persist)
                .any(|m| matches!(m.message, Message::Prepare { id: i, .. } if i == id));
        }
        r2.step(R1, Message::Commit { id, attrs: attrs(1, &[]), commands: vec![cmd(&key)] });
        r2.ready();
        recovered.push(prepared);
    }
    recovered
}

#[test]
fn a_live_leader_whose_commits_arrive_late_is_given_as_long_as_they_take() {
    let mut r2 = replica(R2, 3);
    let config = r2.config().clone();
    // Each commit takes three stall timeouts (a leader whose queues hold seconds of large values).
    let delay = 3 * config.recovery_ticks;
    assert!(delay < config.stall_ticks_max(), "a delay the stall timeout may learn");
    let recovered = recovered_of_late_commits(&mut r2, 1, 12, delay);
    // The first ones may be recovered (nothing learned yet, then the timeout backs off); once a
    // commit arrives before the timeout, the delay is learned and no later instance is.
    let last = recovered.iter().rposition(|&r| r).map_or(0, |at| at + 1);
    assert!(last <= 4, "replica 2 still recovered instance {last} of 12: {recovered:?}");
    assert!(recovered[4..].iter().all(|&r| !r), "{recovered:?}");
}

#[test]
fn once_commits_are_prompt_again_a_silent_leader_is_recovered_after_a_progress_interval() {
    let mut r2 = replica(R2, 3);
    let config = r2.config().clone();
    recovered_of_late_commits(&mut r2, 1, 8, 3 * config.recovery_ticks);
    // Commits within a tick again, for a while.
    let recovered = recovered_of_late_commits(&mut r2, 9, 40, 1);
    assert!(recovered.iter().all(|&r| !r));
    // Then replica 1 goes silent with an instance pre-accepted here.
    let id = InstanceId::new(1, 49);
    r2.step(R1, Message::PreAccept { id, ballot: B1, attrs: attrs(1, &[]), commands: vec![cmd("last")] });
    r2.ready();
    let silent = config.progress_ticks();
    let at = ticks_to_prepare(&mut r2, id, config.recovery_ticks, |_, _| {});
    let at = at.expect("recovered before its stall timeout");
    assert!(at <= silent + 3, "recovered at tick {at}, a progress interval is {silent}");
}
