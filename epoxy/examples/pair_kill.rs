//! How soon replicas crashed together serve again: F replicas of N crash at once under steady
//! load (some half-way through a round), stay down while the rest go on, and restart together.
//! It reports, in ticks, how long after its restart each restarted replica executed a proposal
//! of its own (the way a client of that node sees it); how long the survivors' slowest proposal
//! took while F were down; and the executor's search steps per executed instance. The chaos
//! harness saw a node crashed together with another not serve again for a minute; this found why
//! (the executor's search was cubic in a blocked backlog).
//!
//! ```sh
//! cargo run --release -p mortar-epoxy --example pair_kill -- --seeds 500 [--first 0] [--replicas 5,7] [--drop 0.02]
//! ```
//!
//! A tick stands for 10 ms of a node's time; `--steps-per-tick` (default 4) sets how many message
//! delays fit in one (on loopback, dozens: try 40). Times are reported in ticks. A restarted
//! replica that has not served within `--bound` ticks (default 500, about 5 s) fails the seed.

use mortar_epoxy::rng::Rng;
use mortar_epoxy::sim::{Faults, Sim, SimConfig};
use mortar_epoxy::{Command, InstanceId};

#[path = "shared/args.rs"]
mod args;
#[path = "shared/percentiles.rs"]
mod percentiles;

use percentiles::percentiles;

fn main() {
    let args = args::Args::from_env();
    let seeds: u64 = args.get("--seeds", "200");
    let first: u64 = args.get("--first", "0");
    let replicas = args.replicas("5,7");
    let drop: f64 = args.get("--drop", "0.02");
    let rate: f64 = args.get("--rate", "0.5");
    let bound: u64 = args.get("--bound", "500");
    let steps_per_tick: u64 = args.get("--steps-per-tick", "4");
    let (mut serve, mut while_down, mut work) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = Vec::new();
    for &n in &replicas {
        for seed in first..first + seeds {
            match run(n, seed, drop, rate, bound, steps_per_tick) {
                Ok(outcome) => {
                    if (seed + 1 - first).is_multiple_of(25) {
                        eprintln!("N={n}: {} seeds done", seed + 1 - first);
                    }
                    serve.extend(outcome.serve_ticks.into_iter().map(|t| (t, n, seed)));
                    while_down.push((outcome.slowest_while_down_ticks, n, seed));
                    work.push((outcome.search_steps_per_execution, n, seed));
                }
                Err(e) => {
                    eprintln!("FAILED: N={n} seed {seed}: {e}");
                    failed.push((n, seed));
                }
            }
        }
    }
    println!("ticks from restart to serving, per restarted replica: {}", percentiles(&mut serve));
    println!("slowest survivor proposal while F were down, ticks, per run: {}", percentiles(&mut while_down));
    println!("executor search steps per executed instance, per run: {}", percentiles(&mut work));
    if !failed.is_empty() {
        println!("{} runs FAILED: {failed:?}", failed.len());
        std::process::exit(1);
    }
}

struct Outcome {
    serve_ticks: Vec<u64>,
    slowest_while_down_ticks: u64,
    search_steps_per_execution: f64,
}

/// One run.
fn run(
    n: usize,
    seed: u64,
    drop: f64,
    rate: f64,
    bound: u64,
    steps_per_tick: u64,
) -> Result<Outcome, String> {
    let mut rng = Rng::new(seed ^ 0x9a1f);
    let config = SimConfig {
        replicas: n,
        seed,
        faults: Faults { drop, duplicate: drop / 2.0, delay_steps_max: 4, ..Faults::none() },
        steps_per_tick,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config);
    // Durations below are in ticks; the load per tick is the same at any steps per tick.
    let ticks = |t: u64| t * steps_per_tick;
    let rate = rate * 4.0 / steps_per_tick as f64;
    let bound = ticks(bound);
    for _ in 0..ticks(125 + rng.below(375)) {
        load(&mut sim, &mut rng, n, rate);
    }
    let f = (n - 1) / 2;
    let mut down = Vec::new();
    while down.len() < f {
        let at = rng.below(n as u64) as usize;
        if !down.contains(&at) {
            down.push(at);
        }
    }
    for &at in &down {
        if rng.chance(0.5) {
            sim.crash_mid_next_round(at);
        } else {
            sim.crash_now(at);
        }
    }
    // While they are down, how long the survivors' own proposals take to execute there.
    let mut pending: Vec<(usize, InstanceId, u64)> = Vec::new();
    let mut slowest_while_down = 0;
    for _ in 0..ticks(12 + rng.below(1500)) {
        if let Some((at, id)) = load(&mut sim, &mut rng, n, rate) {
            pending.push((at, id, sim.step()));
        }
        let now = sim.step();
        pending.retain(|&(at, id, since)| {
            let done = sim.executed_at(at, id);
            if done {
                slowest_while_down = slowest_while_down.max(now - since);
            }
            !done
        });
    }
    for &(_, _, since) in &pending {
        slowest_while_down = slowest_while_down.max(sim.step() - since);
    }
    // (A replica crashed mid-round went down at its next round: it had ticks and messages since.)
    let restarted_at = sim.step();
    for &at in &down {
        sim.restart_now(at);
    }
    let mut served: Vec<Option<u64>> = vec![None; down.len()];
    let mut probes: Vec<Vec<InstanceId>> = vec![Vec::new(); down.len()];
    while sim.step() < restarted_at + bound && served.iter().any(Option::is_none) {
        // Load everywhere, and each restarted replica keeps trying a proposal of its own.
        for (i, &at) in down.iter().enumerate() {
            if served[i].is_none()
                && probes[i].len() < 16
                && rng.chance(0.4 / steps_per_tick as f64)
                && let Some(id) = propose(&mut sim, &mut rng, at)
            {
                probes[i].push(id);
            }
        }
        load(&mut sim, &mut rng, n, rate);
        for (i, &at) in down.iter().enumerate() {
            if served[i].is_none() && probes[i].iter().any(|id| sim.executed_at(at, *id)) {
                served[i] = Some((sim.step() - restarted_at) / steps_per_tick);
            }
        }
    }
    if let Some(i) = served.iter().position(Option::is_none) {
        let at = down[i];
        let detail = probes[i]
            .first()
            .map(|id| sim.debug_at(at, *id))
            .unwrap_or_else(|| "no proposal accepted".into());
        return Err(format!(
            "replica {} (restarted with {:?}) did not serve within {} ticks: {detail}",
            at + 1,
            down.iter().map(|a| a + 1).collect::<Vec<_>>(),
            bound / steps_per_tick
        ));
    }
    let report = sim.finish()?;
    let c = report.counters;
    Ok(Outcome {
        serve_ticks: served.into_iter().flatten().collect(),
        slowest_while_down_ticks: slowest_while_down / steps_per_tick,
        search_steps_per_execution: (c.execution_steps as f64 / c.executed.max(1) as f64 * 10.0).round()
            / 10.0,
    })
}

/// Proposes one to three commands on five keys at replica `at`, if it takes them.
fn propose(sim: &mut Sim, rng: &mut Rng, at: usize) -> Option<InstanceId> {
    let commands = (0..1 + rng.below(3))
        .map(|_| Command::new(format!("k{}", rng.below(5)), format!("op{}", rng.next_u64())))
        .collect();
    sim.try_propose_at(at, commands).ok()
}

/// One step of steady load: a proposal at a random replica with chance `rate`; where it went.
fn load(sim: &mut Sim, rng: &mut Rng, n: usize, rate: f64) -> Option<(usize, InstanceId)> {
    let mut proposed = None;
    if rng.chance(rate) {
        let at = rng.below(n as u64) as usize;
        proposed = propose(sim, rng, at).map(|id| (at, id));
    }
    sim.steps(1);
    proposed
}
