//! The nemesis schedule: which faults start and end when, decided by the seed alone.
//!
//! The run's fault phase is cut into windows: a quiet stretch, a fault window, a quiet stretch, ...
//! Each window holds one fault of a kind drawn from `--nemesis` (with `mixed`, sometimes two of
//! different kinds at once, but a whole-cluster restart always alone). The last window ends by
//! the time limit, when the healing phase begins. The same [`ScheduleConfig`] always gives the
//! same [`Schedule`]; what the cluster does in response is not deterministic (real processes,
//! real clocks).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::nemesis::{
    Fault, LOSS_PERCENT_MAX, MembershipOp, NemesisKind, NemesisSpec, Partition, PartitionShape,
};
use crate::rng::Rng;
use crate::topology::{NodeId, Topology};

/// Quiet time before the first fault, at most (a sixth of the time limit when that is shorter).
const QUIET_FIRST_MS_MAX: u64 = 5_000;
/// Quiet time between faults.
const QUIET_MS_MIN: u64 = 2_000;
const QUIET_MS_MAX: u64 = 6_000;
/// Length of a fault window; a window cut short by the time limit is dropped when shorter than
/// the minimum.
const FAULT_MS_MIN: u64 = 3_000;
const FAULT_MS_MAX: u64 = 15_000;
/// Windows in one schedule, at most (a 24 h run needs about 8,000).
pub const WINDOWS_MAX: usize = 20_000;
/// Share of `mixed` windows that combine two faults, in percent.
const MIXED_PAIR_PERCENT: u64 = 40;
/// Lowest packet loss drawn, in percent.
const LOSS_PERCENT_MIN: u32 = 5;
const _: () = assert!(QUIET_MS_MIN <= QUIET_MS_MAX && FAULT_MS_MIN <= FAULT_MS_MAX);
const _: () = assert!(LOSS_PERCENT_MIN <= LOSS_PERCENT_MAX);

/// Stream ids, so that schedule and workload draw from independent generators of one seed.
pub const RNG_STREAM_SCHEDULE: u64 = 1;
/// Client task `t` draws from stream `RNG_STREAM_CLIENT_BASE + t`.
pub const RNG_STREAM_CLIENT_BASE: u64 = 1_000;

#[derive(Clone, Debug)]
pub struct ScheduleConfig {
    pub seed: u64,
    pub topology: Topology,
    pub nemesis: NemesisSpec,
    pub time_limit: Duration,
    /// The `latency` nemesis draws a delay from a quarter of this up to this.
    pub latency_ms_max: u64,
    /// The `loss` nemesis draws a loss from 5% up to this.
    pub loss_percent_max: u32,
}

impl ScheduleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.latency_ms_max) {
            return Err(format!("--latency-ms-max {} is out of range: give 1 to 10000", self.latency_ms_max));
        }
        if !(LOSS_PERCENT_MIN..=LOSS_PERCENT_MAX).contains(&self.loss_percent_max) {
            return Err(format!(
                "--loss-percent-max {} is out of range: give {LOSS_PERCENT_MIN} to {LOSS_PERCENT_MAX}",
                self.loss_percent_max
            ));
        }
        Ok(())
    }
}

/// A fault window, in milliseconds since the start of the fault phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
    pub faults: Vec<Fault>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    pub windows: Vec<Window>,
}

impl Schedule {
    pub fn generate(config: &ScheduleConfig) -> Schedule {
        config.validate().expect("schedule configuration is validated before use");
        let mut rng = Rng::stream(config.seed, RNG_STREAM_SCHEDULE);
        let limit_ms = config.time_limit.as_millis() as u64;
        let mut windows = Vec::new();
        if config.nemesis.kinds.is_empty() {
            return Schedule { seed: config.seed, windows };
        }
        let mut start_ms = QUIET_FIRST_MS_MAX.min(limit_ms / 6);
        while windows.len() < WINDOWS_MAX {
            let end_ms = (start_ms + rng.between(FAULT_MS_MIN, FAULT_MS_MAX)).min(limit_ms);
            if end_ms < start_ms + FAULT_MS_MIN {
                break;
            }
            let faults = draw_faults(config, &mut rng);
            windows.push(Window { start_ms, end_ms, faults });
            start_ms = end_ms + rng.between(QUIET_MS_MIN, QUIET_MS_MAX);
        }
        Schedule { seed: config.seed, windows }
    }
}

fn draw_faults(config: &ScheduleConfig, rng: &mut Rng) -> Vec<Fault> {
    let mut kinds = config.nemesis.kinds.clone();
    rng.shuffle(&mut kinds);
    let count =
        if config.nemesis.mixed && kinds.len() > 1 && rng.percent(MIXED_PAIR_PERCENT) { 2 } else { 1 };
    kinds.truncate(count);
    // A whole-cluster restart stops every node: it has its window to itself.
    if kinds.contains(&NemesisKind::Restart) {
        kinds.truncate(1);
    }
    kinds.sort_unstable();
    // Kill and pause in one window hit different nodes.
    let mut stopped = BTreeSet::new();
    kinds.into_iter().map(|kind| draw_fault(kind, config, rng, &mut stopped)).collect()
}

fn draw_fault(
    kind: NemesisKind,
    config: &ScheduleConfig,
    rng: &mut Rng,
    stopped: &mut BTreeSet<NodeId>,
) -> Fault {
    let topology = config.topology;
    match kind {
        NemesisKind::Partition => {
            let shapes = PartitionShape::for_nodes(topology.nodes());
            let shape = *rng.pick(&shapes);
            Fault::Partition(Partition::generate(shape, topology, rng))
        }
        NemesisKind::Kill => Fault::Kill { nodes: pick_minority(topology, rng, stopped) },
        NemesisKind::Pause => Fault::Pause { nodes: pick_minority(topology, rng, stopped) },
        NemesisKind::Loss => {
            let mut nodes: Vec<NodeId> = topology.ids().collect();
            rng.shuffle(&mut nodes);
            nodes.truncate(rng.between(1, u64::from(topology.nodes())) as usize);
            nodes.sort_unstable();
            let percent = rng.between(u64::from(LOSS_PERCENT_MIN), u64::from(config.loss_percent_max)) as u32;
            Fault::Loss { nodes, percent }
        }
        NemesisKind::Latency => {
            let delay_ms = rng.between((config.latency_ms_max / 4).max(1), config.latency_ms_max);
            Fault::Latency { delay_ms }
        }
        NemesisKind::Restart => Fault::Restart,
        NemesisKind::Membership => {
            let mut nodes = pick_minority(topology, rng, stopped);
            nodes.truncate(1);
            Fault::Membership { node: nodes[0], op: *rng.pick(&MembershipOp::ALL) }
        }
    }
}

/// One to a minority of nodes, none already in `stopped` (at least one even if that means a
/// majority stops together).
fn pick_minority(topology: Topology, rng: &mut Rng, stopped: &mut BTreeSet<NodeId>) -> Vec<NodeId> {
    let mut free: Vec<NodeId> = topology.ids().filter(|n| !stopped.contains(n)).collect();
    rng.shuffle(&mut free);
    let count = rng.between(1, u64::from(topology.minority())) as usize;
    free.truncate(count.max(1));
    free.sort_unstable();
    stopped.extend(&free);
    free
}

#[cfg(test)]
#[path = "schedule_test.rs"]
mod tests;
