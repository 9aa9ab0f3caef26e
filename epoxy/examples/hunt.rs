//! Long seed hunts for the epoxy simulation: many seeds with crashes (some of them power losses,
//! which lose the writes since the last sync), pauses, partitions, drops, duplicates and
//! reordering, for N = 3, 5 and 7; every other seed ends with F replicas down for
//! good, and the others must finish without them. Prints the seed of the first failure (pin it as
//! a regression test in `sim_test.rs`) and, at the end, how many times each recovery branch ran.
//!
//! ```sh
//! cargo run --release -p mortar-epoxy --example hunt -- --seeds 5000 [--first 0] [--replicas 3,5,7]
//! ```
//!
//! `--instances N --fault-steps S` (default 120 and 3000) scale a history up: past a few hundred
//! instances per replica, slot reservations renew, catch-up requests fill their windows and
//! executed prefixes are forgotten, as in a long real run. `--steps-per-tick 40` (default 4)
//! runs many message exchanges per tick, as on a real loopback network. `--keys K` (default 5)
//! spreads commands over K keys: with 40 or more, keys go quiet between writes, so their records
//! are forgotten and started afresh (the count is printed at the end).

use mortar_epoxy::sim::{Faults, Sim, SimConfig};
use std::time::Instant;

#[path = "shared/args.rs"]
mod args;
#[path = "shared/percentiles.rs"]
mod percentiles;

use percentiles::percentiles;

fn main() {
    let args = args::Args::from_env();
    let seeds: u64 = args.get("--seeds", "1000");
    let first: u64 = args.get("--first", "0");
    let replicas = args.replicas("3,5,7");
    let down_for_good = args.has("--down-for-good");
    let power_loss: Option<f64> = args.has("--power-loss").then(|| args.get("--power-loss", "0.3"));
    let keep_going = args.has("--keep-going");
    let instances_max: usize = args.get("--instances", "120");
    let fault_steps: u64 = args.get("--fault-steps", "3000");
    // The default, 4, makes a message take about a quarter of a tick; a node on loopback
    // exchanges dozens of messages per tick, which `--steps-per-tick 40` comes nearer to.
    let steps_per_tick: u64 = args.get("--steps-per-tick", "4");
    // More keys: each goes quiet between writes, so its record is forgotten and started afresh.
    let keys: usize = args.get("--keys", "5");
    let mut failed = 0u64;
    let started = Instant::now();
    let mut totals = mortar_epoxy::Counters::default();
    let (mut runs, mut instances, mut crashes, mut power_losses) = (0u64, 0usize, 0u64, 0u64);
    let (mut steps, mut messages) = (0u64, 0u64);
    // How long healing and the probes after it took, to find slow recoveries that still finish.
    let (mut heal_steps, mut probe_steps) = (Vec::new(), Vec::new());
    for &n in &replicas {
        for seed in first..first + seeds {
            let config = SimConfig {
                replicas: n,
                seed,
                instances: instances_max,
                fault_steps,
                steps_per_tick,
                propose_chance: 0.1,
                keys,
                faults: Faults {
                    power_loss: power_loss.unwrap_or(Faults::all(n).power_loss),
                    ..Faults::all(n)
                },
                // With --down-for-good, every other seed ends with F replicas down for good: the
                // rest must finish alone.
                down_for_good: if down_for_good && seed % 2 == 1 { (n - 1) / 2 } else { 0 },
                ..SimConfig::default()
            };
            match Sim::new(config).run() {
                Ok(report) => {
                    runs += 1;
                    heal_steps.push((report.heal_steps, n, seed));
                    probe_steps.push((report.probe_steps, n, seed));
                    instances += report.proposed;
                    crashes += report.crashes;
                    power_losses += report.power_losses;
                    steps += report.steps;
                    messages += report.messages_sent;
                    let c = report.counters;
                    totals.recoveries_started += c.recoveries_started;
                    totals.recovered_commit += c.recovered_commit;
                    totals.recovered_accept += c.recovered_accept;
                    totals.recovered_try_pre_accept += c.recovered_try_pre_accept;
                    totals.recovered_rerun += c.recovered_rerun;
                    totals.recovered_no_op += c.recovered_no_op;
                    totals.fast_path += c.fast_path;
                    totals.slow_path += c.slow_path;
                    totals.keys_forgotten += c.keys_forgotten;
                }
                Err(e) => {
                    eprintln!("FAILED: {e}");
                    failed += 1;
                    if !keep_going {
                        std::process::exit(1);
                    }
                }
            }
        }
    }
    if failed > 0 {
        println!("{failed} runs FAILED");
    }
    println!("{steps} simulated steps, {messages} messages sent");
    println!("steps to heal: {}", percentiles(&mut heal_steps));
    println!("steps to execute a new proposal of every replica after: {}", percentiles(&mut probe_steps));
    println!(
        "{runs} runs ({seeds} seeds x N={replicas:?}) passed in {:.1} s: {instances} instances proposed, \
         {crashes} crashes ({power_losses} of them power losses)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "commits: {} fast path, {} slow path; recoveries started: {}; decisions: commit {}, accept {}, \
         try-pre-accept {}, rerun {}, no-op {}; key records forgotten as quiet: {}",
        totals.fast_path,
        totals.slow_path,
        totals.recoveries_started,
        totals.recovered_commit,
        totals.recovered_accept,
        totals.recovered_try_pre_accept,
        totals.recovered_rerun,
        totals.recovered_no_op,
        totals.keys_forgotten
    );
}
