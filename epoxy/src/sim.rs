//! Deterministic simulation: several replicas in one thread, each with an in-memory disk, joined
//! by a network that a seeded random source delays, reorders, duplicates and drops messages on.
//! A run has a fault phase and a healing phase; one seed decides the whole run, so a failing seed
//! replays exactly. After every run the checkers must pass:
//!
//! * **agreement**: every replica that committed an instance committed the same attributes and
//!   commands (checked at every persist);
//! * **execution consistency**: for every key, every replica executed the instances touching it in
//!   the same order;
//! * **liveness**: every proposed command is committed and executed on every replica after healing;
//! * **exactly once**: no replica executes an instance twice, and it executes what was committed.
//!
//! ```
//! use mortar_epoxy::sim::{Sim, SimConfig};
//! let report = Sim::new(SimConfig { replicas: 3, seed: 7, ..SimConfig::default() }).run().unwrap();
//! assert!(report.executed_everywhere > 0);
//! ```

use crate::config::Config;
use crate::message::Message;
use crate::ready::Ready;
use crate::record::{InstanceRecord, KeyRecord, Record, Recovered};
use crate::replica::{ProposeError, Replica};
use crate::types::{Attributes, Command, InstanceId, ReplicaId, Status};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// SplitMix64: small, fast, and the same on every platform and crate version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// Network faults during the fault phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Messages take 1..=delay_steps_max steps (the spread reorders them).
    pub delay_steps_max: u64,
}

impl Faults {
    pub fn none() -> Self {
        Self { drop: 0.0, duplicate: 0.0, delay_steps_max: 3 }
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
            faults: Faults { drop: 0.1, duplicate: 0.05, delay_steps_max: 12 },
            fault_steps: 400,
            heal_steps_max: 20_000,
            steps_per_tick: 4,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub seed: u64,
    pub proposed: usize,
    pub executed_everywhere: usize,
    pub fast_path: u64,
    pub slow_path: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub commit_requests: u64,
    pub steps: u64,
}

/// The disk of one simulated replica.
#[derive(Debug, Default, Clone)]
struct Disk {
    instances: BTreeMap<InstanceId, InstanceRecord>,
    keys: BTreeMap<Bytes, KeyRecord>,
    executed: BTreeSet<InstanceId>,
    slot_reservation: u64,
}

impl Disk {
    /// What a restarted replica would load.
    #[allow(dead_code)]
    fn recovered(&self) -> Recovered {
        Recovered {
            instances: self.instances.values().filter(|r| !self.executed.contains(&r.id)).cloned().collect(),
            executed: self.executed.iter().copied().collect(),
            keys: self.keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            slot_reservation: self.slot_reservation,
        }
    }
}

struct Envelope {
    from: ReplicaId,
    to: ReplicaId,
    message: Message,
}

pub struct Sim {
    config: SimConfig,
    rng: Rng,
    ids: Vec<ReplicaId>,
    replicas: Vec<Replica>,
    disks: Vec<Disk>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: HashMap<u64, Envelope>,
    next_envelope: u64,
    step: u64,
    healing: bool,
    /// Every instance proposed, with its commands.
    proposed: BTreeMap<InstanceId, Vec<Command>>,
    /// The first commit seen of each instance, anywhere.
    committed: HashMap<InstanceId, (Attributes, Vec<Command>)>,
    /// Per replica, the instances executed, in order.
    executed: Vec<Vec<InstanceId>>,
    executed_sets: Vec<BTreeSet<InstanceId>>,
    violations: Vec<String>,
    report: SimReport,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let ids: Vec<ReplicaId> = (1..=config.replicas as u32).map(ReplicaId).collect();
        let replicas = ids
            .iter()
            .map(|&id| Replica::new(Config::new(id, ids.clone()).expect("valid sim config")))
            .collect();
        let n = ids.len();
        Self {
            rng: Rng::new(config.seed),
            report: SimReport { seed: config.seed, ..SimReport::default() },
            config,
            ids,
            replicas,
            disks: vec![Disk::default(); n],
            queue: BinaryHeap::new(),
            in_flight: HashMap::new(),
            next_envelope: 0,
            step: 0,
            healing: false,
            proposed: BTreeMap::new(),
            committed: HashMap::new(),
            executed: vec![Vec::new(); n],
            executed_sets: vec![BTreeSet::new(); n],
            violations: Vec::new(),
        }
    }

    /// Runs the fault phase, then heals and runs until every proposed instance executed
    /// everywhere; returns the report, or every violation found with the seed.
    pub fn run(mut self) -> Result<SimReport, String> {
        while self.step < self.config.fault_steps {
            if self.proposed.len() < self.config.instances && self.rng.chance(self.config.propose_chance) {
                self.propose_random();
            }
            self.advance();
        }
        self.healing = true;
        let heal_end = self.step + self.config.heal_steps_max;
        while !self.all_executed() && self.step < heal_end && self.violations.is_empty() {
            self.advance();
        }
        self.check_end();
        self.report.steps = self.step;
        for r in &self.replicas {
            let c = r.counters();
            self.report.fast_path += c.fast_path;
            self.report.slow_path += c.slow_path;
        }
        self.report.proposed = self.proposed.len();
        if self.violations.is_empty() {
            Ok(self.report)
        } else {
            Err(format!("seed {}: {}", self.config.seed, self.violations.join("; ")))
        }
    }

    fn faults(&self) -> Faults {
        if self.healing { Faults::none() } else { self.config.faults.clone() }
    }

    fn propose_random(&mut self) {
        let at = self.rng.below(self.replicas.len() as u64) as usize;
        let count = 1 + self.rng.below(self.config.batch_max as u64) as usize;
        let commands: Vec<Command> = (0..count)
            .map(|_| {
                let key = format!("k{}", self.rng.below(self.config.keys as u64));
                let payload = format!("op{}", self.rng.next_u64());
                Command::new(key, payload)
            })
            .collect();
        match self.replicas[at].propose(commands.clone()) {
            Ok(id) => {
                self.proposed.insert(id, commands);
                self.perform(at);
            }
            Err(ProposeError::Busy) => {}
            Err(e) => self.violations.push(format!("valid proposal refused: {e}")),
        }
    }

    fn advance(&mut self) {
        self.step += 1;
        while let Some(&Reverse((at, key))) = self.queue.peek() {
            if at > self.step {
                break;
            }
            self.queue.pop();
            let envelope = self.in_flight.remove(&key).expect("queued envelope exists");
            let to = self.index(envelope.to);
            self.replicas[to].step(envelope.from, envelope.message);
            self.perform(to);
        }
        if self.step.is_multiple_of(self.config.steps_per_tick) {
            for at in 0..self.replicas.len() {
                self.replicas[at].tick();
                self.perform(at);
            }
        }
    }

    fn index(&self, id: ReplicaId) -> usize {
        self.ids.binary_search(&id).expect("known replica")
    }

    fn send(&mut self, from: ReplicaId, to: ReplicaId, message: Message) {
        let faults = self.faults();
        self.report.messages_sent += 1;
        if matches!(message, Message::CommitRequest { .. }) {
            self.report.commit_requests += 1;
        }
        if self.rng.chance(faults.drop) {
            self.report.messages_dropped += 1;
            return;
        }
        let copies = if self.rng.chance(faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 1 + self.rng.below(faults.delay_steps_max.max(1));
            let key = self.next_envelope;
            self.next_envelope += 1;
            self.in_flight.insert(key, Envelope { from, to, message: message.clone() });
            self.queue.push(Reverse((self.step + delay, key)));
        }
    }

    /// Performs a replica's `Ready` the way the node's driver does.
    fn perform(&mut self, at: usize) {
        let ready: Ready = self.replicas[at].ready();
        let me = self.ids[at];
        for out in ready.messages {
            self.send(me, out.to, out.message);
        }
        for record in ready.persist {
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
            self.disks[at].executed.insert(id);
            self.executed[at].push(id);
        }
        for load in ready.load_requests {
            match self.disks[at].instances.get(&load.id) {
                Some(r) if r.status == Status::Committed => {
                    let message =
                        Message::Commit { id: r.id, attrs: r.attrs.clone(), commands: r.commands.clone() };
                    self.send(me, load.to, message);
                }
                _ => {
                    self.violations.push(format!("replica {me} asked to load {} it never committed", load.id))
                }
            }
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
                        Some((attrs, commands)) => {
                            if *attrs != r.attrs || *commands != r.commands {
                                self.violations.push(format!(
                                    "agreement: replica {} committed {} with {:?}, another with {:?}",
                                    self.ids[at], r.id, r.attrs, attrs
                                ));
                            }
                        }
                    }
                }
                if let Some(old) = disk.instances.get(&r.id)
                    && old.status == Status::Committed
                    && r.status != Status::Committed
                {
                    {
                        self.violations.push(format!("replica {} un-committed {}", self.ids[at], r.id));
                    }
                }
                disk.instances.insert(r.id, r);
            }
            Record::Key { key, record } => {
                disk.keys.insert(key, record);
            }
            Record::SlotReservation(s) => {
                if s < disk.slot_reservation {
                    self.violations.push(format!("slot reservation went back at replica {}", self.ids[at]));
                }
                disk.slot_reservation = s;
            }
        }
    }

    fn all_executed(&self) -> bool {
        self.executed_sets.iter().all(|set| self.proposed.keys().all(|id| set.contains(id)))
    }

    fn check_end(&mut self) {
        for (at, set) in self.executed_sets.iter().enumerate() {
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
            }
        }
        // Execution consistency: per key, the same order everywhere.
        let mut orders: Vec<BTreeMap<&Bytes, Vec<InstanceId>>> = Vec::new();
        for log in &self.executed {
            let mut per_key: BTreeMap<&Bytes, Vec<InstanceId>> = BTreeMap::new();
            for id in log {
                let mut keys: Vec<&Bytes> = self.proposed[id].iter().map(|c| &c.key).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    per_key.entry(key).or_default().push(*id);
                }
            }
            orders.push(per_key);
        }
        for at in 1..orders.len() {
            for (key, order) in &orders[at] {
                let first = orders[0].get(key).map(|v| v.as_slice()).unwrap_or(&[]);
                let common = first.len().min(order.len());
                if first[..common] != order[..common] {
                    self.violations.push(format!(
                        "execution order of key {key:?} differs between replica {} and {}",
                        self.ids[0], self.ids[at]
                    ));
                }
            }
        }
        self.report.executed_everywhere =
            self.proposed.keys().filter(|id| self.executed_sets.iter().all(|s| s.contains(id))).count();
    }
}
