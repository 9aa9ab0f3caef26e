//! Named recovery scenarios: each drives one failure at an exact point of the protocol, then heals
//! and runs the simulation's checkers (agreement, per-key execution order, real-time order,
//! nothing acknowledged lost, everything executed everywhere). Each runs with N = 3, 5 and 7.

use crate::Message;
use crate::sim::{Faults, Sim, SimConfig, SimReport};
use crate::types::{InstanceId, ReplicaId, Status};

const LEADER: usize = 0;
const KEY: &str = "x";

fn sim(replicas: usize) -> Sim {
    seeded_sim(replicas, replicas as u64)
}

/// A fault-free simulation of `replicas` with the given seed (the scenarios inject their faults).
fn seeded_sim(replicas: usize, seed: u64) -> Sim {
    Sim::new(SimConfig { replicas, seed, faults: Faults::none(), fault_steps: 0, ..SimConfig::default() })
}

fn fast_quorum(n: usize) -> usize {
    let f = (n - 1) / 2;
    (f + f.div_ceil(2)).max(n / 2 + 1)
}

fn check(name: &str, n: usize, sim: Sim) -> SimReport {
    let report = sim.finish().unwrap_or_else(|e| panic!("{name}, N={n}: {e}"));
    println!("{name} N={n}: {:?}", report.counters);
    report
}

/// Every replica in `at` (0-based) has executed every instance in `ids`.
fn assert_executed(sim: &Sim, at: &[usize], ids: &[InstanceId], context: &str) {
    for &a in at {
        for &id in ids {
            assert!(
                sim.executed_at(a, id),
                "{context}: replica {} has not executed {id}: {}",
                a + 1,
                sim.debug_at(a, id)
            );
        }
    }
}

/// A first instance on the key commits normally, so the slot reservation is durable and later
/// PreAccepts leave at once (before the leader's disk write).
fn warm_up(sim: &mut Sim) {
    sim.propose_at(LEADER, KEY);
    sim.steps(50);
}

/// The leader's PreAccept for its next instance reaches `reach` peers, then the leader crashes.
/// `durable`: the leader's own vote was written before the crash (else the round's write is lost).
fn leader_crash_after_pre_accept(n: usize, reach: usize, durable: bool) -> SimReport {
    let mut sim = sim(n);
    warm_up(&mut sim);
    let reached: Vec<ReplicaId> = (2..=n as u32).map(ReplicaId).take(reach).collect();
    sim.set_filter(move |from, to, m| match m {
        Message::PreAccept { .. } if from == ReplicaId(1) => reached.contains(&to),
        _ => from != ReplicaId(1) && to != ReplicaId(1), // the leader hears nothing back
    });
    if durable {
        sim.propose_at(LEADER, KEY);
        sim.crash_now(LEADER);
    } else {
        sim.crash_mid_next_round(LEADER);
        sim.propose_at(LEADER, KEY);
    }
    sim.clear_filter();
    // Others keep writing the key; the stalled instance must not block them.
    sim.propose_at(1, KEY);
    sim.steps(400);
    let name = format!("leader crash after PreAccept reached {reach} peers (vote durable: {durable})");
    check(&name, n, sim)
}

#[test]
fn leader_crash_after_pre_accept_reached_fewer_than_a_fast_quorum() {
    for n in [3, 5, 7] {
        let fewer = fast_quorum(n) - 2; // with the leader: one short of a fast quorum
        leader_crash_after_pre_accept(n, fewer, true);
        leader_crash_after_pre_accept(n, fewer, false);
    }
}

#[test]
fn leader_crash_after_pre_accept_reached_exactly_a_fast_quorum() {
    for n in [3, 5, 7] {
        let report = leader_crash_after_pre_accept(n, fast_quorum(n) - 1, true);
        assert!(report.counters.recoveries_started > 0, "N={n}: {report:?}");
        leader_crash_after_pre_accept(n, fast_quorum(n) - 1, false);
    }
}

#[test]
fn leader_crash_after_pre_accept_reached_more_than_a_fast_quorum() {
    for n in [3, 5, 7] {
        leader_crash_after_pre_accept(n, n - 1, true);
        leader_crash_after_pre_accept(n, n - 1, false);
    }
}

/// Conflicting proposals force the slow path; the leader crashes after its Accept reached one peer.
#[test]
fn leader_crash_during_accept() {
    for n in [3, 5, 7] {
        let mut sim = sim(n);
        warm_up(&mut sim);
        // Replica 2's instance on the key reaches only replica 3, so replica 1's replies differ.
        sim.set_filter(|from, to, m| {
            !(from == ReplicaId(2) && to != ReplicaId(3) && matches!(m, Message::PreAccept { .. }))
        });
        sim.propose_at(1, KEY);
        sim.steps(3);
        let accept_sent = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = accept_sent.clone();
        sim.set_filter(move |from, to, m| match m {
            Message::Accept { .. } if from == ReplicaId(1) => {
                counter.set(counter.get() + 1);
                to == ReplicaId(3)
            }
            Message::AcceptOk { .. } if to == ReplicaId(1) => false,
            _ => true,
        });
        sim.propose_at(LEADER, KEY);
        sim.steps(40);
        assert!(accept_sent.get() > 0, "N={n}: the leader never reached the Accept phase");
        sim.crash_now(LEADER);
        sim.clear_filter();
        sim.propose_at(2, KEY);
        sim.steps(400);
        check("leader crash during Accept", n, sim);
    }
}

/// The leader commits (fast path) but no Commit leaves before it crashes.
#[test]
fn leader_crash_after_local_commit_before_the_commit_broadcast() {
    for n in [3, 5, 7] {
        let mut sim = sim(n);
        warm_up(&mut sim);
        sim.set_filter(|from, _, m| !(from == ReplicaId(1) && matches!(m, Message::Commit { .. })));
        let id = sim.propose_at(LEADER, KEY);
        sim.steps(30);
        assert_eq!(
            sim.status_at(LEADER, id),
            None,
            "N={n}: executed (and dropped from memory) at the leader"
        );
        sim.crash_now(LEADER);
        sim.clear_filter();
        sim.propose_at(1, KEY);
        sim.steps(400);
        let report = check("leader crash after local commit, before Commit", n, sim);
        assert!(report.acknowledged >= 2, "N={n}: the instance was acknowledged by its leader");
    }
}

/// The leader commits on the fast path and its Commit reaches one peer only; then the leader loses
/// power, which takes its unsynced commit record, and that peer goes down. The restarted leader
/// must not vouch that it never committed (it cannot know): were it to, recovery would run phase 1
/// again and order the instance after a later one on the key, against the commit already made.
#[test]
fn leader_loses_power_after_a_fast_commit_that_reached_one_peer() {
    for n in [3, 5, 7] {
        let mut sim = sim(n);
        warm_up(&mut sim);
        sim.set_filter(|from, to, m| {
            !(from == ReplicaId(1) && to != ReplicaId(2) && matches!(m, Message::Commit { .. }))
        });
        let id = sim.propose_at(LEADER, KEY);
        for _ in 0..30 {
            if sim.executed_at(LEADER, id) {
                break;
            }
            sim.steps(1);
        }
        assert!(sim.executed_at(LEADER, id), "N={n}: the leader committed and executed");
        sim.lose_power_now(LEADER);
        sim.crash_now(1);
        sim.clear_filter();
        // A later instance on the key, proposed knowing `id` uncommitted.
        sim.propose_at(2, KEY);
        sim.steps(5);
        sim.restart_now(LEADER);
        assert_eq!(
            sim.status_at(LEADER, id),
            Some(Status::PreAccepted),
            "N={n}: the power loss took the leader's commit, not its vote"
        );
        sim.steps(400);
        sim.restart_now(1);
        sim.steps(400);
        let report = check("leader loses power after a fast commit that reached one peer", n, sim);
        assert_eq!(report.power_losses, 1, "N={n}");
        assert!(report.acknowledged >= 2, "N={n}: the instance was acknowledged by its leader");
    }
}

/// Two leaders propose interfering instances and crash before any reply; each proposal reached
/// the F replicas that then go down for good (and, for N = 7, one more survivor), so each may have
/// committed on the fast path as far as the survivors can tell. Both leaders restart (their
/// processes crashed, their machines did not). TryPreAccept cannot settle either instance: each
/// leader refuses the other's, knowing its own instance that the other misses. Only a leader can
/// tell that it never committed; it remembers every write it made since it proposed, so it
/// vouches for that and the survivors run phase 1 again. Before, they waited for the dead
/// replicas forever.
#[test]
fn restarted_leaders_vouch_while_their_fast_quorums_are_down_for_good() {
    for n in [5usize, 7] {
        let f = (n - 1) / 2;
        let mut sim = sim(n);
        warm_up(&mut sim);
        let dead = move |r: ReplicaId| (2..=f as u32 + 1).contains(&r.0);
        // Survivors other than the two leaders hold a proposal each when a fast quorum needs them.
        let extra = fast_quorum(n) - 1 - f;
        let y_leader = ReplicaId(f as u32 + 2);
        let x_extra: Vec<ReplicaId> = (f as u32 + 3..=n as u32).map(ReplicaId).take(extra).collect();
        let y_extra: Vec<ReplicaId> = (f as u32 + 3..=n as u32).rev().map(ReplicaId).take(extra).collect();
        sim.set_filter(move |from, to, m| match m {
            Message::PreAccept { .. } if from == ReplicaId(1) => dead(to) || x_extra.contains(&to),
            Message::PreAccept { .. } if from == y_leader => dead(to) || y_extra.contains(&to),
            _ => false,
        });
        let x = sim.propose_at(LEADER, KEY);
        let y = sim.propose_at(f + 1, KEY);
        sim.crash_now(LEADER);
        sim.crash_now(f + 1);
        sim.steps(5);
        for at in 1..=f {
            sim.crash_now(at);
        }
        sim.set_filter(move |from, to, _| !dead(from) && !dead(to));
        sim.restart_now(LEADER);
        sim.restart_now(f + 1);
        sim.steps(5000);
        let survivors: Vec<usize> = std::iter::once(LEADER).chain(f + 1..n).collect();
        assert_executed(&sim, &survivors, &[x, y], &format!("N={n}, {f} replicas down"));
        check("restarted leaders vouch while their fast quorums are down for good", n, sim);
    }
}

/// Two replicas recover the same instance with competing ballots while the old leader is slow
/// (cut off, not crashed), then the leader comes back.
#[test]
fn competing_recoverers_while_the_old_leader_is_slow() {
    for n in [3, 5, 7] {
        let mut sim = sim(n);
        warm_up(&mut sim);
        sim.set_filter(|from, to, m| {
            let leader_msg = from == ReplicaId(1) || to == ReplicaId(1);
            !leader_msg
                || (from == ReplicaId(1) && to == ReplicaId(2) && matches!(m, Message::PreAccept { .. }))
        });
        let id: InstanceId = sim.propose_at(LEADER, KEY);
        sim.steps(5);
        sim.recover_at(1, id);
        sim.recover_at(2, id);
        sim.steps(20);
        sim.clear_filter(); // the old leader is back, still believing it leads in ballot 0
        sim.propose_at(2, KEY);
        sim.steps(400);
        let report = check("competing recoverers", n, sim);
        assert!(report.counters.recoveries_started >= 2, "N={n}: {report:?}");
    }
}

/// The recoverer crashes half-way through its recovery (its Prepares left, its round's write did
/// not); another replica finishes the job.
#[test]
fn recoverer_crash_mid_recovery() {
    for n in [3, 5, 7] {
        let mut sim = sim(n);
        warm_up(&mut sim);
        sim.set_filter(|from, to, m| {
            !(from == ReplicaId(1) || to == ReplicaId(1))
                || (to == ReplicaId(2) && matches!(m, Message::PreAccept { .. }))
        });
        let id = sim.propose_at(LEADER, KEY);
        sim.steps(5);
        sim.crash_now(LEADER);
        sim.crash_mid_next_round(1);
        sim.recover_at(1, id);
        sim.steps(400);
        sim.clear_filter();
        sim.propose_at(2, KEY);
        sim.steps(400);
        check("recoverer crash mid-recovery", n, sim);
    }
}

/// F replicas (N = 2F + 1) crash for good, each the leader of an instance on the same key that
/// reached just one survivor, so each survivor holds a different proposal unchanged; then a
/// survivor writes the key. The survivors must commit and execute everything without the crashed
/// replicas: EPaxos stays live with F down. Recovering any of the instances decides TryPreAccept
/// (one survivor holds the proposal unchanged, the other leaders' votes are unknown), and every
/// survivor refuses it, knowing another leader's interfering instance. Before the fix the
/// recoverers gave up and retried forever. Now a refusal tells what rules the fast path out: a
/// leader whose own proposal missed the instance (it cannot have pre-accepted it unchanged), or
/// an interfering instance committed without it; and an interfering instance committed after it
/// no longer refuses.
#[test]
fn f_leaders_of_interfering_instances_crash_for_good() {
    for n in [5usize, 7] {
        let f = (n - 1) / 2;
        for seed in 0..20 {
            let mut sim = seeded_sim(n, seed);
            warm_up(&mut sim);
            warm_up(&mut sim);
            let crashed = move |r: ReplicaId| (r.0 as usize) <= f;
            // Leader i's proposal reaches only survivor f + i.
            sim.set_filter(move |from, to, m| match m {
                Message::PreAccept { .. } if crashed(from) => to.0 == from.0 + f as u32,
                _ => !crashed(from),
            });
            let mut ids: Vec<InstanceId> = (0..f).map(|at| sim.propose_at(at, KEY)).collect();
            for at in 0..f {
                sim.crash_now(at);
            }
            sim.steps(5);
            sim.set_filter(move |from, to, _| !crashed(from) && !crashed(to));
            ids.push(sim.propose_at(f, KEY));
            sim.steps(5000);
            let survivors: Vec<usize> = (f..n).collect();
            assert_executed(&sim, &survivors, &ids, &format!("N={n} seed {seed}, {f} replicas down"));
            check("F leaders of interfering instances crash for good", n, sim);
        }
    }
}

/// The shape `pair_kill` found (README, issue 21): F of N = 2F + 1 die, among them the leader of
/// an instance on the key that one survivor holds unchanged, the other survivors having added an
/// interfering instance they saw first; a dead replica may have held it unchanged too, so the
/// fast path cannot be ruled out and recovery must TryPreAccept it. Meanwhile every survivor
/// keeps writing the key. The survivors' own later instances used to refuse the proposal (the
/// index shows only each replica's latest on the key, and the earlier ones may not be ordered
/// after it) until the dead returned. Now an acceptor looks at each earlier slot, the instances
/// of the replicas that hold the proposal are known to come after it, and a refusal for
/// instances in flight is asked again a few ticks later: the survivors execute everything while
/// F stay down.
#[test]
fn survivors_writing_the_key_recover_a_dead_leaders_instance_while_f_are_down() {
    for n in [5usize, 7] {
        let f = (n - 1) / 2;
        for seed in 0..10 {
            let mut sim = seeded_sim(n, seed);
            warm_up(&mut sim);
            // Replicas 0..f die: 0 leads the instance, the others may hold it unchanged.
            let dead = move |r: ReplicaId| (r.0 as usize) <= f;
            let (holder, other_leader) = (f, f + 1);
            // The other leader's instance reaches only the survivors but the holder.
            let holder_id = ReplicaId(holder as u32 + 1);
            sim.set_filter(move |from, to, m| match m {
                Message::PreAccept { .. } if from == ReplicaId(other_leader as u32 + 1) => {
                    !dead(to) && to != holder_id
                }
                _ => true,
            });
            let first = sim.propose_at(other_leader, KEY);
            sim.steps(2);
            // The leader's instance reaches everyone; it hears nothing back.
            sim.set_filter(move |from, to, m| match m {
                Message::PreAccept { .. } if from == ReplicaId(other_leader as u32 + 1) => {
                    !dead(to) && to != holder_id
                }
                _ => to != ReplicaId(1),
            });
            let stuck = sim.propose_at(LEADER, KEY);
            sim.steps(2);
            for at in 0..f {
                sim.crash_now(at);
            }
            sim.set_filter(move |from, to, _| !dead(from) && !dead(to));
            let survivors: Vec<usize> = (f..n).collect();
            let mut ids = vec![first, stuck];
            let bound = sim.step() + 500 * 4; // 5 s of ticks: liveness, not speed
            while sim.step() < bound
                && !survivors.iter().all(|&at| ids.iter().all(|id| sim.executed_at(at, *id)))
            {
                if sim.step().is_multiple_of(4) && ids.len() < 120 {
                    let at = survivors[(sim.step() / 4) as usize % survivors.len()];
                    ids.push(sim.propose_at(at, KEY));
                }
                sim.steps(1);
            }
            assert_executed(&sim, &survivors, &ids, &format!("N={n} seed {seed}, {f} replicas down"));
            check("survivors writing the key recover a dead leader's instance", n, sim);
        }
    }
}

/// Five replicas, warmed up, then cut as in chaos seed 9191's window (a majorities ring with two
/// replicas paused): only the links 1–3 and 1–4 carry messages.
fn ring_with_two_paused(seed: u64) -> Sim {
    let mut sim = seeded_sim(5, seed);
    warm_up(&mut sim);
    let link = |a: u32, b: u32| matches!((a.min(b), a.max(b)), (1, 3) | (1, 4));
    sim.set_filter(move |from, to, _| link(from.0, to.0));
    sim
}

/// A majorities-ring partition with two replicas paused (chaos seed 9191's window): replica 3
/// reaches only replica 1, replica 4 only replica 1, and replica 1 reaches both, the one live
/// majority. The instances of 3 and 4 get one vote each (1's), never a quorum; replica 1, asked
/// by their leader after a resend ([`Message::TakeOver`]), recovers each at once instead of after
/// its stall timeout (at least `recovery_ticks`).
#[test]
fn a_leader_without_a_quorum_has_a_replica_that_answered_recover_its_instance() {
    let n = 5;
    for seed in 0..10 {
        let mut sim = ring_with_two_paused(seed);
        let start = sim.step();
        let ids = [sim.propose_at(2, KEY), sim.propose_at(3, KEY)];
        let config = crate::Config::new(ReplicaId(1), (1..=n as u32).map(ReplicaId).collect()).unwrap();
        let stall_steps = u64::from(config.recovery_ticks) * SimConfig::default().steps_per_tick;
        let done = |sim: &Sim| [0, 2, 3].iter().all(|&at| ids.iter().all(|id| sim.executed_at(at, *id)));
        while sim.step() < start + stall_steps && !done(&sim) {
            sim.steps(1);
        }
        assert_executed(&sim, &[0, 2, 3], &ids, &format!("seed {seed}, before any stall timer"));
        sim.clear_filter();
        check("a leader without a quorum has a replica that answered recover its instance", n, sim);
    }
}

/// The same ring, but the replicas replica 3 cannot reach have been silent for more than two
/// progress exchanges when it proposes: the first reply (replica 1's) shows that no resend will
/// bring a quorum, so replica 3 asks replica 1 to recover the instance at once
/// (`Replica::take_over_when_out_of_reach`), and it is executed before the first resend would
/// even have been sent.
#[test]
fn a_leader_whose_missing_replicas_are_long_silent_asks_for_a_take_over_on_the_first_reply() {
    let n = 5;
    for seed in 0..10 {
        let mut sim = ring_with_two_paused(seed);
        let config = crate::Config::new(ReplicaId(3), (1..=n as u32).map(ReplicaId).collect()).unwrap();
        let steps_per_tick = SimConfig::default().steps_per_tick;
        sim.steps(u64::from(2 * config.progress_ticks() + 2) * steps_per_tick);
        let start = sim.step();
        let id = sim.propose_at(2, KEY);
        let first_resend = u64::from(config.retry_ticks) * steps_per_tick;
        while sim.step() < start + first_resend && !(sim.executed_at(0, id) && sim.executed_at(2, id)) {
            sim.steps(1);
        }
        assert_executed(&sim, &[0, 2], &[id], &format!("seed {seed}, before the first resend"));
        sim.clear_filter();
        check("a leader whose missing replicas are long silent asks on the first reply", n, sim);
    }
}

/// An idle cluster without faults: the progress exchanges keep every replica heard from, so a
/// proposal after a long quiet spell asks nobody to take it over (it commits on the fast path).
#[test]
fn a_quiet_spell_alone_asks_for_no_take_over() {
    for n in [5, 7] {
        for seed in 0..5 {
            let mut sim = seeded_sim(n, seed);
            warm_up(&mut sim);
            let config = crate::Config::new(ReplicaId(3), (1..=n as u32).map(ReplicaId).collect()).unwrap();
            sim.steps(u64::from(10 * config.progress_ticks()) * SimConfig::default().steps_per_tick);
            let ids = [sim.propose_at(2, KEY), sim.propose_at(0, KEY)];
            sim.steps(200);
            assert_executed(&sim, &(0..n).collect::<Vec<_>>(), &ids, &format!("N={n} seed {seed}"));
            let report = check("a quiet spell alone asks for no take-over", n, sim);
            assert_eq!(report.counters.take_overs_asked, 0, "N={n} seed {seed}: {:?}", report.counters);
        }
    }
}
