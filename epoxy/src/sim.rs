//! Deterministic simulation: several replicas in one thread, each with an in-memory disk, joined
//! by a network that a seeded random source delays, reorders, duplicates and drops messages on,
//! while replicas crash (sometimes half-way through a round: after sending, before persisting;
//! sometimes losing power, and with it every write since their last sync), restart from their
//! disks, pause past the recovery timeout, and get partitioned. A run has a fault phase and then
//! a healing phase; one seed decides the whole run, so a failing seed replays exactly. After every
//! run the checkers must pass:
//!
//! * **agreement**: every replica that committed an instance committed the same attributes and
//!   commands (checked at every persist);
//! * **execution consistency**: for every key, every replica executed the instances touching it in
//!   the same order;
//! * **linearizability**: that order respects real time — an instance acknowledged (executed by
//!   its leader, which is when a client hears "ok") before another was proposed comes first;
//! * **nothing acknowledged is lost**: an acknowledged instance executes everywhere with its
//!   commands (never replaced by a no-op);
//! * **liveness**: after healing, every proposed instance is committed (or replaced by a no-op)
//!   and executed on every replica;
//! * **exactly once**: no replica executes an instance twice.
//!
//! With [`SimConfig::membership`], the replica set also changes during the fault phase (nodes
//! added, removed, and dead ones replaced; see [`crate::seal`] and the `reconfig` submodule),
//! and the checks then also cover every epoch: no instance commits above its epoch's cut, none
//! acknowledged is dropped, and every member of the final epoch executes everything.
//!
//! ```
//! use mortar_epoxy::sim::{Sim, SimConfig};
//! let report = Sim::new(SimConfig { replicas: 3, seed: 7, ..SimConfig::default() }).run().unwrap();
//! assert!(report.executed_everywhere > 0);
//! ```

mod reconfig;

pub use reconfig::Change;

use crate::config::Config;
use crate::message::Message;
use crate::ready::Ready;
use crate::record::{InstanceRecord, KeyRecord, Record, Recovered};
use crate::replica::{Counters, ProposeError, Replica};
pub use crate::rng::Rng;
use crate::types::{Attributes, Command, InstanceId, ReplicaId, Status};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// Faults during the fault phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Messages take 1..=delay_steps_max steps (the spread reorders them).
    pub delay_steps_max: u64,
    /// Chance per step that a running replica crashes (half of the crashes happen half-way
    /// through a round: after its messages left, before its disk write).
    pub crash: f64,
    /// Steps a crashed replica stays down.
    pub down_steps: u64,
    /// Chance per step that a replica is paused (its process stopped: it neither ticks nor reads).
    pub pause: f64,
    pub pause_steps: u64,
    /// Chance per step that the network splits into two random sides.
    pub partition: f64,
    pub partition_steps: u64,
    /// Most replicas down or paused at once.
    pub unavailable_max: usize,
    /// Fraction of crashes that are power losses: the writes since the replica's last synced
    /// write are lost too, and it restarts knowing that (`Recovered::writes_complete`).
    pub power_loss: f64,
}

impl Faults {
    /// A reliable network: no faults, short delays.
    pub fn none() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            delay_steps_max: 3,
            crash: 0.0,
            down_steps: 0,
            pause: 0.0,
            pause_steps: 0,
            partition: 0.0,
            partition_steps: 0,
            unavailable_max: 0,
            power_loss: 0.0,
        }
    }

    /// Lossy, duplicating, reordering network; no crashes.
    pub fn network() -> Self {
        Self { drop: 0.1, duplicate: 0.05, delay_steps_max: 12, ..Self::none() }
    }

    /// Everything: the network faults, crashes, pauses and partitions.
    pub fn all(replicas: usize) -> Self {
        Self {
            crash: 0.004,
            down_steps: 300,
            pause: 0.003,
            pause_steps: 400,
            partition: 0.002,
            partition_steps: 300,
            unavailable_max: (replicas - 1) / 2,
            power_loss: 0.3,
            ..Self::network()
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub replicas: usize,
    pub seed: u64,
    /// Instances to propose in all (each a batch of 1..=batch_max commands).
    pub instances: usize,
    pub batch_max: usize,
    /// Distinct keys: fewer keys, more conflicts.
    pub keys: usize,
    /// Chance per step that some replica proposes.
    pub propose_chance: f64,
    pub faults: Faults,
    /// Steps of the fault phase; proposals stop at its end.
    pub fault_steps: u64,
    /// Steps the healing phase may take before the run is declared stuck.
    pub heal_steps_max: u64,
    /// A tick every this many steps.
    pub steps_per_tick: u64,
    /// Replicas (at most F of N = 2F + 1) that crash for good at the end of the fault phase: the
    /// others, healed, must then finish every instance any of them knows without them, within
    /// `heal_steps_max` steps; only then do the crashed ones restart for the final checks.
    pub down_for_good: usize,
    /// Reconfigurations, one after another, spread over the fault phase.
    pub membership: Vec<Change>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            replicas: 3,
            seed: 1,
            instances: 60,
            batch_max: 3,
            keys: 5,
            propose_chance: 0.3,
            faults: Faults::network(),
            fault_steps: 400,
            heal_steps_max: 40_000,
            steps_per_tick: 4,
            down_for_good: 0,
            membership: Vec::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub seed: u64,
    pub proposed: usize,
    pub acknowledged: usize,
    pub executed_everywhere: usize,
    pub no_ops: usize,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub crashes: u64,
    /// Crashes that were power losses (writes since the last sync lost).
    pub power_losses: u64,
    /// Forget records written (garbage collection rounds, over all replicas).
    pub forgotten: u64,
    /// Key records dropped as quiet (over all replicas).
    pub keys_forgotten: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub steps: u64,
    /// Steps from the heal until every proposed instance executed everywhere.
    pub heal_steps: u64,
    /// Steps from then until every replica's probe (a new proposal) executed everywhere.
    pub probe_steps: u64,
    /// Summed over every replica and every life of it.
    pub counters: Counters,
    /// Reconfigurations completed (epochs started after the first).
    pub reconfigurations: u64,
    /// Members that got their state from a donor's checkpoint (new, or lagging behind a switch).
    pub checkpoints: u64,
    /// Own instances replicas dropped above a cut (their clients retry).
    pub dropped: u64,
}

/// The disk of one simulated replica: what its driver wrote.
#[derive(Debug, Default, Clone)]
struct Disk {
    instances: BTreeMap<InstanceId, InstanceRecord>,
    keys: BTreeMap<Bytes, KeyRecord>,
    executed: BTreeSet<InstanceId>,
    slot_reservation: u64,
    forgotten: BTreeMap<ReplicaId, u64>,
    own_commits_known_from: u64,
    /// How to undo each write since the last synced one, newest last: what a power loss undoes.
    unsynced: Vec<Undo>,
    /// Whether the next restart finds every write completed before the crash.
    writes_complete: bool,
    /// The replica's epoch and its members (what the node keeps beside epoxy's records).
    epoch: u64,
    members: Vec<ReplicaId>,
    seal: Option<Vec<(ReplicaId, u64)>>,
    cut: Option<crate::seal::Cut>,
}

/// The inverse of one unsynced write.
#[derive(Clone, Debug)]
enum Undo {
    Instance(InstanceId, Option<InstanceRecord>),
    Key(Bytes, Option<KeyRecord>),
    Executed(InstanceId),
    OwnCommitsKnownFrom(u64),
    /// The whole disk before a write too large to undo piecemeal (a `Forget`).
    Everything(Box<Disk>),
}

impl Disk {
    /// What a restarted replica loads.
    fn recovered(&self) -> Recovered {
        Recovered {
            instances: self.instances.values().filter(|r| !self.executed.contains(&r.id)).cloned().collect(),
            executed: self.executed.iter().copied().collect(),
            keys: self.keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            slot_reservation: self.slot_reservation,
            forgotten: self.forgotten.iter().map(|(r, s)| (*r, *s)).collect(),
            writes_complete: self.writes_complete,
            own_commits_known_from: self.own_commits_known_from,
            seal: self.seal.clone(),
            cut: self.cut.clone(),
        }
    }
}

struct Envelope {
    /// The sender's epoch when it sent the message.
    epoch: u64,
    from: ReplicaId,
    to: ReplicaId,
    message: Message,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Up,
    /// Crashes at its next round, after sending that round's immediate messages.
    CrashMidRound,
    Down {
        until: u64,
    },
    Paused {
        until: u64,
    },
}

/// Decides whether a message is delivered (`true`) or dropped, in scenario tests.
pub type Filter = Box<dyn FnMut(ReplicaId, ReplicaId, &Message) -> bool>;

pub struct Sim {
    config: SimConfig,
    filter: Option<Filter>,
    rng: Rng,
    /// Decides which crashes are power losses, apart from `rng` so that adding power losses left
    /// the schedule of faults as it was.
    power_rng: Rng,
    /// Replicas whose pending crash (`Life::CrashMidRound`) is a power loss.
    power_loss_pending: Vec<bool>,
    ids: Vec<ReplicaId>,
    replicas: Vec<Replica>,
    lives: Vec<Life>,
    restarts: Vec<u64>,
    disks: Vec<Disk>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: HashMap<u64, Envelope>,
    next_envelope: u64,
    /// Replica sides while partitioned, until a step.
    partition: Option<(Vec<bool>, u64)>,
    step: u64,
    healing: bool,
    proposed: BTreeMap<InstanceId, (Vec<Command>, u64)>,
    acknowledged: BTreeMap<InstanceId, u64>,
    committed: HashMap<InstanceId, (Attributes, Vec<Command>)>,
    executed: Vec<Vec<InstanceId>>,
    executed_sets: Vec<BTreeSet<InstanceId>>,
    violations: Vec<String>,
    report: SimReport,
    /// Membership: the current epoch, and the reconfiguration in progress.
    membership: reconfig::Membership,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let ids: Vec<ReplicaId> = (1..=config.replicas as u32).map(ReplicaId).collect();
        let n = ids.len();
        let first_disk = Disk { epoch: 1, members: ids.clone(), ..Disk::default() };
        let membership = reconfig::Membership::new(&ids, config.membership.clone(), config.fault_steps);
        let mut sim = Self {
            rng: Rng::new(config.seed),
            power_rng: Rng::new(config.seed ^ 0x9e37_79b9_7f4a_7c15),
            power_loss_pending: vec![false; n],
            report: SimReport { seed: config.seed, ..SimReport::default() },
            ids,
            replicas: Vec::new(),
            lives: vec![Life::Up; n],
            restarts: vec![0; n],
            disks: vec![first_disk; n],
            queue: BinaryHeap::new(),
            in_flight: HashMap::new(),
            next_envelope: 0,
            partition: None,
            step: 0,
            healing: false,
            proposed: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            committed: HashMap::new(),
            executed: vec![Vec::new(); n],
            executed_sets: vec![BTreeSet::new(); n],
            violations: Vec::new(),
            filter: None,
            membership,
            config,
        };
        sim.replicas = (0..n).map(|at| sim.boot(at)).collect();
        sim
    }

    fn boot(&self, at: usize) -> Replica {
        let disk = &self.disks[at];
        let mut config = Config::new(self.ids[at], disk.members.clone()).expect("valid sim config");
        config.epoch = disk.epoch;
        config.seed = self.config.seed.wrapping_mul(31).wrapping_add(at as u64 * 1009 + self.restarts[at]);
        let mut replica = Replica::recover(config, disk.recovered());
        // A node learns a cut committed while it was down from the control plane when it starts.
        if disk.cut.is_none()
            && let Some(cut) = self.membership.cut_of(disk.epoch)
        {
            replica.install_cut(cut.clone());
        }
        replica
    }

    /// Runs the fault phase, then heals and runs until every proposed instance executed
    /// everywhere; returns the report, or every violation found, with the seed.
    pub fn run(mut self) -> Result<SimReport, String> {
        while self.step < self.config.fault_steps && self.violations.is_empty() {
            if self.proposed.len() < self.config.instances && self.rng.chance(self.config.propose_chance) {
                self.propose_random();
            }
            self.inject_faults();
            self.advance();
        }
        if self.config.down_for_good > 0 && self.violations.is_empty() {
            self.run_without_some();
        }
        self.finish()
    }

    /// Crashes `down_for_good` replicas for good, heals the others, and checks that they finish,
    /// on their own, every instance proposed by one of them or known to one of them.
    fn run_without_some(&mut self) {
        let n = self.replicas.len();
        let down_count = self.config.down_for_good.min((n - 1) / 2);
        let mut down = BTreeSet::new();
        while down.len() < down_count {
            down.insert(self.rng.below(n as u64) as usize);
        }
        self.partition = None;
        self.healing = true;
        for at in 0..n {
            let gone = down.contains(&at);
            match self.lives[at] {
                Life::Up | Life::Paused { .. } if gone => self.crash(at),
                Life::CrashMidRound if gone => self.crash(at),
                Life::Down { .. } if !gone => self.restart(at),
                Life::CrashMidRound => {
                    self.crash(at);
                    self.restart(at);
                }
                Life::Paused { .. } => self.lives[at] = Life::Up,
                _ => {}
            }
            if gone {
                self.report.crashes += 1;
                self.lives[at] = Life::Down { until: u64::MAX };
            }
        }
        let alive: Vec<usize> = (0..n).filter(|at| !down.contains(at)).collect();
        let end = self.step + self.config.heal_steps_max;
        loop {
            let known: Vec<InstanceId> = (self.proposed.keys())
                .filter(|id| {
                    !down.contains(&self.index(id.replica))
                        || alive.iter().any(|&at| {
                            self.replicas[at].status(**id).is_some() || self.replicas[at].is_executed(**id)
                        })
                })
                .copied()
                .collect();
            let missing =
                known.iter().find(|id| alive.iter().any(|&at| !self.executed_sets[at].contains(id))).copied();
            let Some(missing) = missing else { break };
            if self.step >= end || !self.violations.is_empty() {
                if !self.violations.is_empty() {
                    return;
                }
                let at = *alive.iter().find(|&&at| !self.executed_sets[at].contains(&missing)).expect("one");
                let blocked = self.replicas[at].blocked_on();
                let first = blocked.first().copied().unwrap_or(missing);
                let holders: Vec<String> = alive
                    .iter()
                    .map(|&a| format!("at {}: {}", self.ids[a], self.replicas[a].debug_instance(first)))
                    .collect();
                self.violations.push(format!(
                    "liveness with {down_count} of {n} down for good (replicas {:?}): replica {} has not executed {missing} ({}; blocked on {:?}: {})",
                    down.iter().map(|at| self.ids[*at].0).collect::<Vec<_>>(),
                    self.ids[at],
                    self.replicas[at].debug_instance(missing),
                    blocked,
                    holders.join("; ")
                ));
                return;
            }
            for _ in 0..8 {
                self.advance();
            }
        }
    }

    // ---- manual control, for scenario tests ----

    /// Proposes one command on `key` at replica `at` (0-based) and performs its round.
    pub fn propose_at(&mut self, at: usize, key: &str) -> InstanceId {
        let commands = vec![Command::new(key.to_string(), format!("op{}", self.rng.next_u64()))];
        self.propose_recorded(at, commands).expect("proposal accepted")
    }

    /// Proposes `commands` at replica `at` (0-based) if it is up, and performs its round; the
    /// replica's refusal otherwise (`Busy` while `at` is down).
    pub fn try_propose_at(&mut self, at: usize, commands: Vec<Command>) -> Result<InstanceId, ProposeError> {
        if self.lives[at] != Life::Up {
            return Err(ProposeError::Busy);
        }
        self.propose_recorded(at, commands)
    }

    /// Proposes `commands` at replica `at`; when it takes them, records the proposal for the
    /// end checks and performs the replica's round.
    fn propose_recorded(&mut self, at: usize, commands: Vec<Command>) -> Result<InstanceId, ProposeError> {
        let id = self.replicas[at].propose(commands.clone())?;
        self.proposed.insert(id, (commands, self.step));
        self.perform(at);
        Ok(id)
    }

    /// The current step.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Drops every message for which `filter` returns false, until cleared.
    pub fn set_filter(&mut self, filter: impl FnMut(ReplicaId, ReplicaId, &Message) -> bool + 'static) {
        self.filter = Some(Box::new(filter));
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Crashes a replica now: what it performed is on its disk, nothing else survives.
    pub fn crash_now(&mut self, at: usize) {
        self.report.crashes += 1;
        self.crash(at);
        self.lives[at] = Life::Down { until: u64::MAX };
    }

    /// Cuts a replica's power now: like [`Sim::crash_now`], and every write since its last synced
    /// one is lost too.
    pub fn lose_power_now(&mut self, at: usize) {
        self.power_loss_pending[at] = true;
        self.crash_now(at);
    }

    /// Crashes a replica during its next round, after that round's messages left and before its
    /// disk write.
    pub fn crash_mid_next_round(&mut self, at: usize) {
        self.report.crashes += 1;
        self.lives[at] = Life::CrashMidRound;
    }

    pub fn restart_now(&mut self, at: usize) {
        self.restart(at);
    }

    /// Makes a replica start recovering an instance now (as its stall timer would).
    pub fn recover_at(&mut self, at: usize, id: InstanceId) {
        self.replicas[at].start_recovery(id);
        self.perform(at);
    }

    pub fn status_at(&self, at: usize, id: InstanceId) -> Option<Status> {
        self.replicas[at].status(id)
    }

    /// What replica `at` (0-based) holds for `id` (diagnostics).
    pub fn debug_at(&self, at: usize, id: InstanceId) -> String {
        self.replicas[at].debug_instance(id)
    }

    /// Whether replica `at` (0-based) has executed `id`.
    pub fn executed_at(&self, at: usize, id: InstanceId) -> bool {
        self.replicas[at].is_executed(id)
    }

    /// Advances the network and the clocks.
    pub fn steps(&mut self, count: u64) {
        for _ in 0..count {
            self.advance();
        }
    }

    /// Heals everything (filters, crashes, pauses, partitions), runs until every proposed
    /// instance executed everywhere, and checks the whole run.
    pub fn finish(mut self) -> Result<SimReport, String> {
        self.filter = None;
        self.heal();
        let healed_at = self.step;
        let heal_end = self.step + self.config.heal_steps_max;
        while !self.membership.settled() && self.step < heal_end && self.violations.is_empty() {
            self.advance();
        }
        if !self.membership.settled() && self.violations.is_empty() {
            self.violations.push(format!(
                "liveness: membership not settled after healing: {}",
                self.membership.describe()
            ));
        }
        while !self.all_executed() && self.step < heal_end && self.violations.is_empty() {
            self.advance();
        }
        self.report.heal_steps = self.step - healed_at;
        if self.all_executed() && self.violations.is_empty() {
            let probed_at = self.step;
            self.probe_every_replica();
            self.report.probe_steps = self.step - probed_at;
        }
        self.check_end();
        self.report.steps = self.step;
        for r in &self.replicas {
            add_counters(&mut self.report.counters, r.counters());
        }
        self.report.proposed = self.proposed.len();
        self.report.acknowledged = self.acknowledged.len();
        if self.violations.is_empty() {
            Ok(self.report)
        } else {
            Err(format!(
                "seed {} ({} replicas): {}",
                self.config.seed,
                self.config.replicas,
                self.violations.join("; ")
            ))
        }
    }

    /// After healing, every replica must still be able to serve: one after another, each proposes
    /// a new instance on a key of the workload (retrying while it answers `Busy` or
    /// `Recovering`), which must execute everywhere within `heal_steps_max` in all. A replica a
    /// restart left unable to commit or execute anything of its own fails here, even though every
    /// earlier instance executed. (One at a time, so that the probes do not conflict.)
    fn probe_every_replica(&mut self) {
        let end = self.step + self.config.heal_steps_max;
        for at in 0..self.replicas.len() {
            if !self.is_member(at) {
                continue;
            }
            let commands = vec![Command::new("k0".to_string(), format!("probe{at}"))];
            let mut refused = None;
            let proposed = loop {
                if self.step >= end || !self.violations.is_empty() {
                    break false;
                }
                match self.propose_recorded(at, commands.clone()) {
                    Ok(_) => break true,
                    Err(e @ (ProposeError::Busy | ProposeError::Recovering(_))) => refused = Some(e),
                    Err(e) => self.violations.push(format!("probe refused at {}: {e}", self.ids[at])),
                }
                self.advance();
            };
            if !proposed {
                self.violations.push(format!(
                    "liveness: replica {} refused every new proposal for {} steps after healing (last: {refused:?})",
                    self.ids[at], self.config.heal_steps_max
                ));
                return;
            }
            while self.step < end && self.violations.is_empty() && !self.all_executed() {
                self.advance();
            }
            // A probe that did not execute everywhere shows in `check_end`.
        }
    }

    fn network_faults(&self) -> (f64, f64, u64) {
        let f = &self.config.faults;
        if self.healing { (0.0, 0.0, 3) } else { (f.drop, f.duplicate, f.delay_steps_max) }
    }

    /// Members (of the current epoch, or of the next while switching) not up.
    fn unavailable(&self) -> usize {
        (0..self.replicas.len()).filter(|&at| self.is_active(at) && self.lives[at] != Life::Up).count()
    }

    /// Most members down or paused at once: the configured bound, and a minority of the smaller
    /// epoch while switching.
    fn unavailable_max(&self) -> usize {
        self.config.faults.unavailable_max.min((self.membership.smallest_epoch_size() - 1) / 2)
    }

    fn inject_faults(&mut self) {
        let f = self.config.faults.clone();
        for at in 0..self.replicas.len() {
            if !self.is_active(at) {
                continue;
            }
            match self.lives[at] {
                Life::Down { until } if self.step >= until => self.restart(at),
                Life::Paused { until } if self.step >= until => self.lives[at] = Life::Up,
                _ => {}
            }
        }
        if self.unavailable() < self.unavailable_max() {
            let at = self.rng.below(self.replicas.len() as u64) as usize;
            if self.lives[at] == Life::Up && self.is_active(at) {
                if self.rng.chance(f.crash) {
                    self.report.crashes += 1;
                    let power_loss = f.power_loss > 0.0 && self.power_rng.chance(f.power_loss);
                    self.power_loss_pending[at] = power_loss;
                    if self.rng.chance(0.5) {
                        self.lives[at] = Life::CrashMidRound;
                    } else {
                        self.crash(at);
                    }
                } else if self.rng.chance(f.pause) {
                    self.report.pauses += 1;
                    self.lives[at] = Life::Paused { until: self.step + f.pause_steps };
                }
            }
        }
        match self.partition {
            Some((_, until)) if self.step >= until => self.partition = None,
            None if self.rng.chance(f.partition) => {
                self.report.partitions += 1;
                let sides = (0..self.replicas.len()).map(|_| self.rng.chance(0.5)).collect();
                self.partition = Some((sides, self.step + f.partition_steps));
            }
            _ => {}
        }
    }

    fn crash(&mut self, at: usize) {
        add_counters(&mut self.report.counters, self.replicas[at].counters());
        self.lives[at] = Life::Down { until: self.step + self.config.faults.down_steps };
        if std::mem::take(&mut self.power_loss_pending[at]) {
            self.lose_power(at);
        } else {
            // The process died, the machine did not: its page cache writes everything back.
            self.disks[at].unsynced.clear();
            self.disks[at].writes_complete = true;
        }
    }

    /// The crashed replica `at`'s machine loses power: every write since its last synced one is
    /// lost (its executions with them: they will run again), and it restarts knowing so.
    fn lose_power(&mut self, at: usize) {
        self.report.power_losses += 1;
        let disk = &mut self.disks[at];
        disk.writes_complete = false;
        while let Some(undo) = disk.unsynced.pop() {
            match undo {
                Undo::Instance(id, old) => match old {
                    Some(r) => {
                        disk.instances.insert(id, r);
                    }
                    None => {
                        disk.instances.remove(&id);
                    }
                },
                Undo::Key(key, old) => match old {
                    Some(r) => {
                        disk.keys.insert(key, r);
                    }
                    None => {
                        disk.keys.remove(&key);
                    }
                },
                Undo::Executed(id) => {
                    disk.executed.remove(&id);
                    self.executed_sets[at].remove(&id);
                    if let Some(i) = self.executed[at].iter().rposition(|e| *e == id) {
                        self.executed[at].remove(i);
                    }
                }
                Undo::OwnCommitsKnownFrom(slot) => disk.own_commits_known_from = slot,
                Undo::Everything(before) => *disk = *before,
            }
        }
        // A disk restored whole carried its own flag and log: keep what this loss means.
        disk.writes_complete = false;
        disk.unsynced.clear();
    }

    fn restart(&mut self, at: usize) {
        self.membership.note_boot(at, self.step);
        self.restarts[at] += 1;
        self.replicas[at] = self.boot(at);
        self.lives[at] = Life::Up;
        self.perform(at);
    }

    fn heal(&mut self) {
        self.healing = true;
        self.partition = None;
        for at in 0..self.replicas.len() {
            if !self.is_active(at) || self.is_wiped(at) {
                continue;
            }
            match self.lives[at] {
                Life::Down { .. } => self.restart(at),
                Life::CrashMidRound => {
                    self.crash(at);
                    self.restart(at);
                }
                Life::Paused { .. } => self.lives[at] = Life::Up,
                Life::Up => {}
            }
        }
    }

    fn propose_random(&mut self) {
        let at = self.rng.below(self.replicas.len() as u64) as usize;
        if self.lives[at] != Life::Up || !self.is_active(at) {
            return;
        }
        let count = 1 + self.rng.below(self.config.batch_max as u64) as usize;
        let commands: Vec<Command> = (0..count)
            .map(|_| {
                let key = format!("k{}", self.rng.below(self.config.keys as u64));
                let payload = format!("op{}", self.rng.next_u64());
                Command::new(key, payload)
            })
            .collect();
        match self.propose_recorded(at, commands) {
            Ok(_) | Err(ProposeError::Busy | ProposeError::Recovering(_) | ProposeError::Sealed(_)) => {}
            Err(e) => self.violations.push(format!("valid proposal refused: {e}")),
        }
    }

    /// One step: every message due is handed to its replica, the clocks tick, and then each
    /// replica that got input performs one round for all of it, as the node's driver batches the
    /// inputs that queued up while it wrote.
    fn advance(&mut self) {
        self.step += 1;
        let mut fed = vec![false; self.replicas.len()];
        while let Some(&Reverse((at, key))) = self.queue.peek() {
            if at > self.step {
                break;
            }
            self.queue.pop();
            let envelope = self.in_flight.remove(&key).expect("queued envelope exists");
            let to = self.index(envelope.to);
            match self.lives[to] {
                Life::Up | Life::CrashMidRound => {
                    self.replicas[to].step_in_epoch(envelope.from, envelope.epoch, envelope.message);
                    fed[to] = true;
                }
                // A stopped process reads its socket when it resumes.
                Life::Paused { until } => self.enqueue(until + 1, envelope),
                Life::Down { .. } => {}
            }
        }
        if self.step.is_multiple_of(self.config.steps_per_tick) {
            for (at, fed) in fed.iter_mut().enumerate() {
                if matches!(self.lives[at], Life::Up | Life::CrashMidRound) {
                    self.replicas[at].tick();
                    *fed = true;
                }
            }
        }
        for (at, fed) in fed.into_iter().enumerate() {
            if fed {
                self.perform(at);
            }
        }
        self.drive_membership();
    }

    fn index(&self, id: ReplicaId) -> usize {
        self.ids.binary_search(&id).expect("known replica")
    }

    fn enqueue(&mut self, at: u64, envelope: Envelope) {
        let key = self.next_envelope;
        self.next_envelope += 1;
        self.in_flight.insert(key, envelope);
        self.queue.push(Reverse((at, key)));
    }

    fn send(&mut self, from: ReplicaId, to: ReplicaId, message: Message) {
        let (drop, duplicate, delay_max) = self.network_faults();
        self.report.messages_sent += 1;
        let cut = self
            .partition
            .as_ref()
            .is_some_and(|(sides, _)| side(sides, self.index(from)) != side(sides, self.index(to)));
        let filtered = self.filter.as_mut().is_some_and(|deliver| !deliver(from, to, &message));
        if cut || filtered || self.rng.chance(drop) {
            self.report.messages_dropped += 1;
            return;
        }
        let copies = if self.rng.chance(duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 1 + self.rng.below(delay_max.max(1));
            let epoch = self.replicas[self.index(from)].epoch();
            self.enqueue(self.step + delay, Envelope { epoch, from, to, message: message.clone() });
        }
    }

    /// Performs a replica's `Ready` the way the node's driver does.
    fn perform(&mut self, at: usize) {
        let ready: Ready = self.replicas[at].ready();
        let synced = ready.needs_sync();
        let me = self.ids[at];
        for out in ready.messages {
            self.send(me, out.to, out.message);
        }
        if self.lives[at] == Life::CrashMidRound {
            self.crash(at); // the disk write of this round never happened
            return;
        }
        for record in ready.persist {
            if !synced {
                let undo = self.undo_of(at, &record);
                self.disks[at].unsynced.push(undo);
            }
            self.persist(at, record);
        }
        for out in ready.messages_after_persist {
            self.send(me, out.to, out.message);
        }
        for executed in ready.executed {
            let id = executed.id;
            if !self.executed_sets[at].insert(id) {
                self.violations.push(format!("replica {me} executed {id} twice"));
            }
            match self.committed.get(&id) {
                Some((_, commands)) if *commands == executed.commands => {}
                _ => self.violations.push(format!("replica {me} executed {id}, not what was committed")),
            }
            if id.replica == me && !executed.commands.is_empty() {
                self.acknowledged.entry(id).or_insert(self.step);
            }
            self.disks[at].executed.insert(id);
            if !synced {
                self.disks[at].unsynced.push(Undo::Executed(id));
            }
            self.executed[at].push(id);
        }
        if synced {
            // A synced write makes every earlier one durable too.
            self.disks[at].unsynced.clear();
        }
        if let Some(cut) = ready.cut {
            self.on_cut(at, cut);
        }
        for id in ready.dropped {
            self.on_dropped(at, id);
        }
        for load in ready.load_requests {
            match self.disks[at].instances.get(&load.id) {
                Some(r) if r.status == Status::Committed => {
                    let message =
                        Message::Commit { id: r.id, attrs: r.attrs.clone(), commands: r.commands.clone() };
                    self.send(me, load.to, message);
                }
                // A late request for an instance every replica executed and then forgot.
                _ if self.disks[at].forgotten.get(&load.id.replica).is_some_and(|f| load.id.slot <= *f) => {}
                _ => {
                    self.violations.push(format!("replica {me} asked to load {} it never committed", load.id))
                }
            }
        }
    }

    /// How to undo `record` on replica `at`'s disk.
    fn undo_of(&self, at: usize, record: &Record) -> Undo {
        let disk = &self.disks[at];
        match record {
            Record::Instance(r) => Undo::Instance(r.id, disk.instances.get(&r.id).cloned()),
            Record::Key { key, .. } | Record::ForgetKey { key } => {
                Undo::Key(key.clone(), disk.keys.get(key).cloned())
            }
            Record::OwnCommitsKnownFrom(_) => Undo::OwnCommitsKnownFrom(disk.own_commits_known_from),
            Record::Forget { .. }
            | Record::SlotReservation(_)
            | Record::Checkpoint
            | Record::Seal { .. }
            | Record::Cut(_) => Undo::Everything(Box::new(disk.clone())),
        }
    }

    fn persist(&mut self, at: usize, record: Record) {
        let disk = &mut self.disks[at];
        match record {
            Record::Instance(r) => {
                if r.status == Status::Committed {
                    match self.committed.get(&r.id) {
                        None => {
                            self.committed.insert(r.id, (r.attrs.clone(), r.commands.clone()));
                        }
                        Some((attrs, commands)) if *attrs != r.attrs || *commands != r.commands => {
                            self.violations.push(format!(
                                "agreement: replica {} committed {} with {:?} ({} commands), another with {:?} ({} commands)",
                                self.ids[at],
                                r.id,
                                r.attrs,
                                r.commands.len(),
                                attrs,
                                commands.len()
                            ));
                        }
                        Some(_) => {}
                    }
                }
                if let Some(old) = disk.instances.get(&r.id)
                    && old.status == Status::Committed
                    && r.status != Status::Committed
                {
                    self.violations.push(format!("replica {} un-committed {}", self.ids[at], r.id));
                }
                // Paxos: a promise never goes back, and no vote is cast below the promise.
                if let Some(old) = disk.instances.get(&r.id)
                    && r.status != Status::Committed
                    && r.ballot < old.ballot
                {
                    self.violations.push(format!(
                        "replica {} lowered its promise for {} from {:?} to {:?}",
                        self.ids[at], r.id, old.ballot, r.ballot
                    ));
                }
                if r.status != Status::Committed && r.accepted_ballot > r.ballot {
                    self.violations
                        .push(format!("replica {} voted for {} above its promise", self.ids[at], r.id));
                }
                disk.instances.insert(r.id, r);
            }
            Record::Key { key, record } => {
                disk.keys.insert(key, record);
            }
            Record::ForgetKey { key } => {
                // Only a record whose every instance every member of the epoch executed says
                // nothing a new instance must follow.
                let members = disk.members.clone();
                let named = disk.keys.remove(&key).map(|r| r.latest).unwrap_or_default();
                for (q, set) in self.executed_sets.iter().enumerate() {
                    if !members.contains(&self.ids[q]) {
                        continue;
                    }
                    if let Some(id) = named.iter().find(|id| !set.contains(id)) {
                        self.violations.push(format!(
                            "replica {} forgot key {key:?} naming {id}, which replica {} has not executed",
                            self.ids[at], self.ids[q]
                        ));
                    }
                }
                self.report.keys_forgotten += 1;
            }
            Record::Checkpoint => {}
            Record::Seal { epoch, bounds } => {
                assert_eq!(epoch, disk.epoch, "a seal of another epoch");
                if disk.seal.as_ref().is_some_and(|old| *old != bounds) {
                    self.violations.push(format!("replica {} sealed epoch {epoch} twice", self.ids[at]));
                }
                disk.seal = Some(bounds);
            }
            Record::Cut(cut) => {
                if self.membership.cut_of(cut.epoch) != Some(&cut) {
                    self.violations.push(format!(
                        "replica {} installed a cut the control plane never committed",
                        self.ids[at]
                    ));
                }
                disk.cut = Some(cut);
            }
            Record::Forget { replica, through } => {
                // Only what every member of the epoch has executed may be forgotten.
                let members = disk.members.clone();
                for (q, set) in self.executed_sets.iter().enumerate() {
                    if !members.contains(&self.ids[q]) {
                        continue;
                    }
                    let missing = self
                        .committed
                        .keys()
                        .filter(|id| id.replica == replica && id.slot <= through)
                        .find(|id| !set.contains(id));
                    if let Some(id) = missing {
                        self.violations.push(format!(
                            "replica {} forgot {replica} through {through}, but replica {} has not executed {id}",
                            self.ids[at], self.ids[q]
                        ));
                    }
                }
                let disk = &mut self.disks[at];
                disk.instances.retain(|id, _| !(id.replica == replica && id.slot <= through));
                disk.executed.retain(|id| !(id.replica == replica && id.slot <= through));
                disk.forgotten.insert(replica, through);
                self.report.forgotten += 1;
            }
            Record::OwnCommitsKnownFrom(slot) => {
                if slot < disk.own_commits_known_from {
                    self.violations.push(format!("own commits known from went back at {}", self.ids[at]));
                }
                disk.own_commits_known_from = slot;
            }
            Record::SlotReservation(s) => {
                if s < disk.slot_reservation {
                    self.violations.push(format!("slot reservation went back at replica {}", self.ids[at]));
                }
                disk.slot_reservation = s;
            }
        }
    }

    /// Every member of the current epoch executed every proposed instance (but the dropped).
    fn all_executed(&self) -> bool {
        (self.executed_sets.iter().enumerate())
            .filter(|(at, _)| self.is_member(*at))
            .all(|(_, set)| self.proposed.keys().all(|id| set.contains(id)))
    }

    fn check_end(&mut self) {
        for (at, set) in self.executed_sets.iter().enumerate() {
            if !self.is_member(at) {
                continue;
            }
            let missing: Vec<_> = self.proposed.keys().filter(|id| !set.contains(id)).collect();
            if !missing.is_empty() {
                self.violations.push(format!(
                    "liveness: replica {} has not executed {} of {} instances after healing (first {}; blocked on {:?})",
                    self.ids[at],
                    missing.len(),
                    self.proposed.len(),
                    missing[0],
                    self.replicas[at].blocked_on()
                ));
                let first = *missing[0];
                self.violations.push(format!(
                    "  at {}: {}",
                    self.ids[at],
                    self.replicas[at].debug_instance(first)
                ));
                for b in self.replicas[at].blocked_on().into_iter().take(1) {
                    self.violations.push(format!(
                        "  at {}: {}",
                        self.ids[at],
                        self.replicas[at].debug_instance(b)
                    ));
                }
            }
        }
        for id in self.acknowledged.keys() {
            let (commands, _) = &self.proposed[id];
            match self.committed.get(id) {
                Some((_, c)) if c == commands => {}
                _ => self
                    .violations
                    .push(format!("acknowledged instance {id} lost (not committed with its commands)")),
            }
        }
        self.report.no_ops = self.committed.values().filter(|(_, c)| c.is_empty()).count();
        // Execution consistency and real-time order, per key, over what was executed.
        let mut orders: Vec<BTreeMap<Bytes, Vec<InstanceId>>> = Vec::new();
        for log in &self.executed {
            let mut per_key: BTreeMap<Bytes, Vec<InstanceId>> = BTreeMap::new();
            for id in log {
                let Some((_, commands)) = self.committed.get(id) else { continue };
                let mut keys: Vec<&Bytes> = commands.iter().map(|c| &c.key).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    per_key.entry(key.clone()).or_default().push(*id);
                }
            }
            orders.push(per_key);
        }
        let reference = (0..orders.len()).find(|&at| self.is_member(at)).unwrap_or(0);
        for at in 0..orders.len() {
            for (key, order) in &orders[at] {
                let first = orders[reference].get(key).map(|v| v.as_slice()).unwrap_or(&[]);
                let common = first.len().min(order.len());
                if first[..common] != order[..common] {
                    let split = (0..common).find(|&i| first[i] != order[i]).unwrap_or(common);
                    let describe = |id: &InstanceId| {
                        let attrs = self.committed.get(id).map(|(a, _)| a.clone()).unwrap_or_default();
                        format!(
                            "{id}(seq {} deps {:?})",
                            attrs.seq,
                            attrs.deps.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                        )
                    };
                    let a: Vec<String> =
                        first[split..(split + 3).min(first.len())].iter().map(describe).collect();
                    let b: Vec<String> =
                        order[split..(split + 3).min(order.len())].iter().map(describe).collect();
                    self.violations.push(format!(
                        "execution order of key {key:?} differs between replica {} and {} from position {split}: {a:?} vs {b:?}",
                        self.ids[reference], self.ids[at]
                    ));
                }
            }
        }
        for (key, order) in &orders[reference] {
            for (i, a) in order.iter().enumerate() {
                for b in &order[i + 1..] {
                    let (Some((_, a_proposed)), Some(b_acked)) =
                        (self.proposed.get(a), self.acknowledged.get(b))
                    else {
                        continue;
                    };
                    if *b_acked < *a_proposed {
                        self.violations.push(format!(
                            "linearizability on key {key:?}: {b} was acknowledged at step {b_acked}, before {a} was \
                             proposed at step {a_proposed}, yet {a} executes first"
                        ));
                    }
                }
            }
        }
        self.report.executed_everywhere = (self.proposed.keys())
            .filter(|id| {
                (self.executed_sets.iter().enumerate())
                    .filter(|(at, _)| self.is_member(*at))
                    .all(|(_, s)| s.contains(id))
            })
            .count();
    }
}

/// The side of a partition replica `at` is on (replicas added since it began are on one side).
fn side(sides: &[bool], at: usize) -> bool {
    sides.get(at).copied().unwrap_or(false)
}

fn add_counters(total: &mut Counters, c: Counters) {
    total.proposed += c.proposed;
    total.committed += c.committed;
    total.executed += c.executed;
    total.fast_path += c.fast_path;
    total.slow_path += c.slow_path;
    total.recoveries_started += c.recoveries_started;
    total.recovered_commit += c.recovered_commit;
    total.recovered_accept += c.recovered_accept;
    total.recovered_try_pre_accept += c.recovered_try_pre_accept;
    total.recovered_rerun += c.recovered_rerun;
    total.recovered_no_op += c.recovered_no_op;
    total.execution_steps += c.execution_steps;
    total.keys_forgotten += c.keys_forgotten;
    total.take_overs_asked += c.take_overs_asked;
    total.resends += c.resends;
}
