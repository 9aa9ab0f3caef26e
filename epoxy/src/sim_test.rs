//! Seeded simulation runs. Each prints its seed first; a seed that ever failed is pinned below.

use crate::sim::{Faults, Sim, SimConfig};

fn run(config: SimConfig) {
    println!("seed {} replicas {}", config.seed, config.replicas);
    if let Err(e) = Sim::new(config).run() {
        panic!("{e}");
    }
}

fn seeds(replicas: usize, count: u64, base: SimConfig) {
    for seed in 0..count {
        run(SimConfig { replicas, seed, ..base.clone() });
    }
}

#[test]
fn no_faults_commit_on_the_fast_path_without_conflicts() {
    for replicas in [3, 5, 7] {
        let config = SimConfig {
            replicas,
            seed: 42,
            keys: 10_000,
            batch_max: 1,
            faults: Faults::none(),
            ..SimConfig::default()
        };
        let report = Sim::new(config).run().unwrap();
        assert_eq!(report.executed_everywhere, report.proposed);
        assert_eq!(report.counters.slow_path, 0, "replicas={replicas}: {report:?}");
        assert_eq!(report.counters.fast_path as usize, report.proposed);
    }
}

#[test]
fn conflicting_commands_take_the_slow_path_and_agree() {
    for replicas in [3, 5, 7] {
        let config = SimConfig {
            replicas,
            seed: 3,
            keys: 1,
            propose_chance: 0.9,
            faults: Faults::none(),
            ..SimConfig::default()
        };
        let report = Sim::new(config).run().unwrap();
        assert!(report.counters.slow_path > 0, "replicas={replicas}: {report:?}");
        assert_eq!(report.executed_everywhere, report.proposed);
    }
}

#[test]
fn seeds_n3_with_drops_duplicates_and_reordering() {
    seeds(3, 150, SimConfig::default());
}

#[test]
fn seeds_n5_with_drops_duplicates_and_reordering() {
    seeds(5, 80, SimConfig::default());
}

#[test]
fn seeds_n7_with_drops_duplicates_and_reordering() {
    seeds(7, 50, SimConfig::default());
}

#[test]
fn heavy_loss_still_converges() {
    let base = SimConfig {
        faults: Faults { drop: 0.4, duplicate: 0.2, delay_steps_max: 30, ..Faults::none() },
        ..SimConfig::default()
    };
    for replicas in [3, 5, 7] {
        seeds(replicas, 10, base.clone());
    }
}

#[test]
fn same_seed_same_run() {
    let a = Sim::new(SimConfig { seed: 99, ..SimConfig::default() }).run().unwrap();
    let b = Sim::new(SimConfig { seed: 99, ..SimConfig::default() }).run().unwrap();
    assert_eq!(a, b);
    // With crashes and recovery too (the replicas' own randomness must be seeded as well).
    let a = Sim::new(crash_config(5, 3)).run();
    let b = Sim::new(crash_config(5, 3)).run();
    assert_eq!(a, b);
}

fn crash_config(replicas: usize, seed: u64) -> SimConfig {
    SimConfig {
        replicas,
        seed,
        instances: 120,
        fault_steps: 3000,
        propose_chance: 0.1,
        faults: Faults::all(replicas),
        ..SimConfig::default()
    }
}

#[test]
fn seeds_n3_with_crashes_pauses_and_partitions() {
    for seed in 0..60 {
        run(crash_config(3, seed));
    }
}

#[test]
fn seeds_n5_with_crashes_pauses_and_partitions() {
    for seed in 0..40 {
        run(crash_config(5, seed));
    }
}

#[test]
fn seeds_n7_with_crashes_pauses_and_partitions() {
    for seed in 0..25 {
        run(crash_config(7, seed));
    }
}

/// F of N = 2F + 1 replicas crash for good after a fault phase of network faults alone: the
/// others must finish, on their own, every instance they know. (With crashes and partitions in
/// the fault phase too, some histories still stall while F replicas stay down: see the hunt's
/// `--down-for-good`.)
#[test]
fn seeds_with_f_replicas_down_for_good_after_network_faults() {
    for replicas in [3, 5, 7] {
        for seed in 0..20 {
            run(SimConfig { replicas, seed, down_for_good: (replicas - 1) / 2, ..SimConfig::default() });
        }
    }
}

/// F of N = 2F + 1 replicas crash for good after a fault phase with crashes (of processes, not
/// machines), pauses and partitions too: the others must finish alone. Before a restarted leader
/// could vouch that it never committed an instance, about one history in six stalled here. (With
/// power losses, a few still stall: see the hunt's `--down-for-good`.)
#[test]
fn seeds_with_f_replicas_down_for_good_after_process_crashes() {
    for replicas in [3, 5, 7] {
        for seed in 0..20 {
            let mut config = crash_config(replicas, seed);
            config.faults.power_loss = 0.0;
            config.down_for_good = (replicas - 1) / 2;
            run(config);
        }
    }
}

#[test]
fn debug_seed() {
    if let Ok(seed) = std::env::var("EPOXY_SEED") {
        let replicas = std::env::var("EPOXY_N").map(|n| n.parse().unwrap()).unwrap_or(3);
        let heal: u64 = std::env::var("EPOXY_HEAL").map(|h| h.parse().unwrap()).unwrap_or(40_000);
        let down_for_good = std::env::var("EPOXY_DOWN").map(|d| d.parse().unwrap()).unwrap_or(0);
        let config = SimConfig {
            heal_steps_max: heal,
            down_for_good,
            ..crash_config(replicas, seed.parse().unwrap())
        };
        match Sim::new(config).run() {
            Ok(report) => println!("{report:?}"),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Every seed that ever failed, with what it found. They must keep passing.
#[test]
fn pinned_regressions() {
    let pinned: &[(usize, u64, &str)] = &[
        (3, 29, "iteration over a HashMap made runs differ between processes"),
        (5, 20, "a no-op in a leader's per-key chain broke dependency visibility"),
        (3, 20, "a restarted leader's escaped PreAccept was missing from its next proposal's deps"),
        (3, 4, "healing took minutes: unrecorded gap slots were discovered one at a time"),
        (3, 140, "the same slow healing, found by the long hunt"),
        (3, 456, "an old leader that missed a recoverer's Commit resent Accept forever, unanswered"),
        (
            7,
            1300602,
            "a restarted leader reported no committed slots once all its own had executed: a peer that missed a Commit never asked for it",
        ),
        (
            3,
            1400958,
            "a recoverer that promised another a higher ballot went on with its own recovery and voted below its promise",
        ),
    ];
    for &(replicas, seed, found) in pinned {
        println!("seed {seed} replicas {replicas}: {found}");
        if let Err(e) = Sim::new(crash_config(replicas, seed)).run() {
            panic!("pinned seed regressed ({found}): {e}");
        }
    }
}

// ---- reconfiguration (crate::seal) ----

use crate::sim::Change;

fn membership_run(
    replicas: usize,
    seed: u64,
    faults: Faults,
    membership: Vec<Change>,
) -> crate::sim::SimReport {
    let config = SimConfig {
        replicas,
        seed,
        instances: 120,
        fault_steps: 2400,
        faults,
        membership,
        ..SimConfig::default()
    };
    println!("seed {seed} replicas {replicas} membership {:?}", config.membership);
    match Sim::new(config).run() {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn reconfiguration_without_faults_keeps_every_write() {
    for (replicas, changes) in [
        (3, vec![Change::Add, Change::Add, Change::Remove, Change::Remove]),
        (3, vec![Change::Replace, Change::Replace]),
        (5, vec![Change::Replace, Change::Add, Change::Add, Change::Remove]),
        // Only N = 7 has a fast quorum larger than a majority: shrink it to 5.
        (7, vec![Change::Remove, Change::Remove, Change::Replace]),
    ] {
        let expected = changes.len() as u64;
        let report = membership_run(replicas, 11, Faults::none(), changes);
        assert_eq!(report.reconfigurations, expected, "{report:?}");
        assert!(report.checkpoints >= 1, "{report:?}");
        assert_eq!(report.executed_everywhere, report.proposed, "{report:?}");
    }
}

/// The changes of a seed's run: each kind of change at each position.
fn changes_of(seed: u64) -> Vec<Change> {
    match seed % 3 {
        0 => vec![Change::Replace, Change::Add, Change::Remove],
        1 => vec![Change::Add, Change::Replace, Change::Remove],
        _ => vec![Change::Remove, Change::Add, Change::Replace],
    }
}

/// Runs where a member that dies for good during the fault phase stalls recovery even when
/// nothing is reconfigured (see `a_member_dead_for_good_during_faults_stalls_recovery`): not a
/// fault of the switch, and left out of the reconfiguration seeds until recovery is fixed.
const STALL_WITHOUT_RECONFIGURATION: [(usize, u64); 2] = [(7, 24), (7, 31)];

#[test]
fn seeds_reconfiguration_with_network_faults() {
    for replicas in [3, 5, 7] {
        for seed in 0..40 {
            membership_run(replicas, seed, Faults::network(), changes_of(seed));
        }
    }
}

#[test]
fn seeds_reconfiguration_with_crashes_pauses_and_partitions() {
    for replicas in [3, 5, 7] {
        for seed in 0..40 {
            if !STALL_WITHOUT_RECONFIGURATION.contains(&(replicas, seed)) {
                membership_run(replicas, seed, Faults::all(replicas), changes_of(seed));
            }
        }
    }
}

/// A known liveness bug of recovery, found by the reconfiguration runs: a member dies for good
/// during the fault phase (no reconfiguration at all), the others crash (power losses included),
/// pause and partition around it, and after healing some instance's recovery never settles. Its
/// TryPreAccept is refused, attempt after attempt, by a live acceptor that knows an interfering
/// instance the proposal misses, while the dead member may hold the vote that made the proposal
/// a fast commit: (7, 24) names a committed instance that depends on the recovered one but whose
/// leader's earlier instances the acceptor cannot rule out; (3, 138) an uncommitted instance
/// whose own recovery waits on this one, its leader having lost after a power loss the knowledge
/// of whether it committed. (5, 174) and (7, 31), with the member dying half-way, show it too.
#[test]
#[ignore = "known recovery liveness bug with a member dead for good during faults"]
fn a_member_dead_for_good_during_faults_stalls_recovery() {
    for (replicas, seed) in [(7, 24), (3, 138), (5, 174)] {
        // A quarter into the fault phase, as the first of three changes.
        membership_run(replicas, seed, Faults::all(replicas), vec![Change::Kill, Change::Wait, Change::Wait]);
    }
    membership_run(7, 31, Faults::all(7), vec![Change::Wait, Change::Kill, Change::Wait]);
}

/// Keys that go quiet between writes: their records are forgotten (the simulation checks each
/// `ForgetKey` against what every member executed) and the keys are written again afresh, under
/// crashes, power losses, partitions and loss.
#[test]
fn quiet_keys_are_forgotten_and_written_again_under_faults() {
    for replicas in [3, 5] {
        let mut forgotten = 0;
        for seed in 0..20 {
            let config = SimConfig {
                replicas,
                seed,
                keys: 40,
                instances: 120,
                fault_steps: 3000,
                propose_chance: 0.1,
                faults: Faults::all(replicas),
                ..SimConfig::default()
            };
            println!("seed {seed} replicas {replicas}");
            let report = Sim::new(config).run().unwrap_or_else(|e| panic!("{e}"));
            forgotten += report.keys_forgotten;
        }
        assert!(forgotten > 0, "replicas={replicas}: no key record was forgotten");
    }
}
