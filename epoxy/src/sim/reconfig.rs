//! The simulation's control plane and nodes during reconfiguration: it plans changes of the
//! replica set (add, remove, replace a dead member), has a member drive the seal, commits the
//! first cut a driver reports (the control plane's compare-and-set), installs it on the members
//! of the old epoch, starts each of them in the new epoch once it has executed the whole cut, and
//! gives new members (and members that fell behind a switch) a checkpoint of a donor's data at
//! the cut. Faults go on throughout.

use super::{Disk, Life, Sim};
use crate::config::REPLICAS_MAX;
use crate::record::Recovered;
use crate::seal::Cut;
use crate::types::{InstanceId, ReplicaId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Steps a driver has to collect a majority of seals before another member drives.
const SEAL_ATTEMPT_STEPS: u64 = 400;
/// Steps a member of the old epoch may stay behind after the cut (its peers moved on and no longer
/// answer in the old epoch) before it gets a checkpoint instead.
const LAG_STEPS: u64 = 800;

/// One change of the replica set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new node joins.
    Add,
    /// A member leaves (skipped when it would leave fewer than 3).
    Remove,
    /// A member dies for good with its disk, and a new node takes its place.
    Replace,
    /// A member dies for good with its disk, and nothing else changes (the others carry on with
    /// a permanent minority down).
    Kill,
    /// Nothing: holds a place in the schedule.
    Wait,
}

/// The control plane's view, and the switch in progress.
pub(super) struct Membership {
    epoch: u64,
    members: Vec<ReplicaId>,
    /// Changes not started yet, with the step each may start at.
    planned: Vec<(u64, Change)>,
    switch: Option<Switch>,
    /// The committed cut of each sealed epoch.
    cuts: BTreeMap<u64, Cut>,
    /// Members that left or died for good: never started again.
    retired: BTreeSet<ReplicaId>,
    /// Members dead for good whose replacement is under way (still counted as down members).
    wiped: BTreeSet<ReplicaId>,
    /// New members waiting for their checkpoint.
    waiting: BTreeSet<ReplicaId>,
    /// The step each replica last started at.
    booted: HashMap<usize, u64>,
}

struct Switch {
    change: Change,
    from: Vec<ReplicaId>,
    to: Vec<ReplicaId>,
    /// The driving member and the step it started sealing.
    driver: Option<(usize, u64)>,
    /// The step the cut was committed.
    cut_at: Option<u64>,
}

impl Membership {
    pub(super) fn new(ids: &[ReplicaId], changes: Vec<Change>, fault_steps: u64) -> Self {
        let count = changes.len() as u64;
        let planned = changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| (fault_steps * (i as u64 + 1) / (count + 1), c))
            .collect();
        Self {
            epoch: 1,
            members: ids.to_vec(),
            planned,
            switch: None,
            cuts: BTreeMap::new(),
            retired: BTreeSet::new(),
            wiped: BTreeSet::new(),
            waiting: BTreeSet::new(),
            booted: HashMap::new(),
        }
    }

    pub(super) fn cut_of(&self, epoch: u64) -> Option<&Cut> {
        self.cuts.get(&epoch)
    }

    /// The size of the current epoch, or of the smaller of the two while switching.
    pub(super) fn smallest_epoch_size(&self) -> usize {
        let to = self.switch.as_ref().map_or(usize::MAX, |s| s.to.len());
        self.members.len().min(to)
    }

    /// No change planned or under way.
    pub(super) fn settled(&self) -> bool {
        self.planned.is_empty() && self.switch.is_none()
    }

    pub(super) fn describe(&self) -> String {
        match &self.switch {
            Some(s) => format!(
                "epoch {} {:?} switching to {:?} ({:?}, driver {:?}, cut at {:?}); waiting {:?}",
                self.epoch, self.members, s.to, s.change, s.driver, s.cut_at, self.waiting
            ),
            None => {
                format!("epoch {} {:?}, {} changes planned", self.epoch, self.members, self.planned.len())
            }
        }
    }

    pub(super) fn note_boot(&mut self, at: usize, step: u64) {
        self.booted.insert(at, step);
    }
}

impl Sim {
    /// A member of the current epoch, or of the next while switching, with a running process or
    /// one that will restart (not retired, not waiting for its first checkpoint).
    pub(super) fn is_active(&self, at: usize) -> bool {
        let id = self.ids[at];
        let m = &self.membership;
        let listed = m.members.contains(&id) || m.switch.as_ref().is_some_and(|s| s.to.contains(&id));
        listed && !m.retired.contains(&id) && !m.waiting.contains(&id)
    }

    /// Whether a dead member is gone for good (its replacement under way): it never restarts.
    pub(super) fn is_wiped(&self, at: usize) -> bool {
        self.membership.wiped.contains(&self.ids[at])
    }

    /// A member of the current epoch (at the end of a run: of the final one).
    pub(super) fn is_member(&self, at: usize) -> bool {
        let id = self.ids[at];
        self.membership.members.contains(&id) && !self.membership.retired.contains(&id)
    }

    /// Starts the next planned change when its time has come, and moves the one under way on.
    pub(super) fn drive_membership(&mut self) {
        if self.membership.switch.is_none() {
            let Some(&(start, change)) = self.membership.planned.first() else { return };
            if self.step >= start {
                self.membership.planned.remove(0);
                self.begin_change(change);
            }
            return;
        }
        if self.membership.switch.as_ref().is_some_and(|s| s.cut_at.is_none()) {
            self.drive_seal();
        } else {
            self.drive_switch();
        }
    }

    fn begin_change(&mut self, change: Change) {
        let from = self.membership.members.clone();
        let mut to = from.clone();
        match change {
            Change::Add if from.len() < REPLICAS_MAX => to.push(self.add_replica()),
            Change::Remove if from.len() > 3 => {
                let victim = from[self.rng.below(from.len() as u64) as usize];
                to.retain(|r| *r != victim);
            }
            Change::Wait => return,
            Change::Replace | Change::Kill => {
                let victim = from[self.rng.below(from.len() as u64) as usize];
                let at = self.index(victim);
                // Dead for good, with its disk: it never restarts.
                if matches!(self.lives[at], Life::Up | Life::Paused { .. } | Life::CrashMidRound) {
                    self.report.crashes += 1;
                    self.crash(at);
                }
                self.lives[at] = Life::Down { until: u64::MAX };
                self.membership.wiped.insert(victim);
                if change == Change::Kill {
                    return;
                }
                to.retain(|r| *r != victim);
                to.push(self.add_replica());
            }
            _ => return, // the control plane refuses it (too many or too few members)
        }
        to.sort_unstable();
        self.membership.switch = Some(Switch { change, from, to, driver: None, cut_at: None });
    }

    /// A new replica id, never used before, waiting for its checkpoint.
    fn add_replica(&mut self) -> ReplicaId {
        let id = ReplicaId(self.ids.last().map_or(1, |r| r.0 + 1));
        self.ids.push(id);
        self.lives.push(Life::Down { until: u64::MAX });
        self.restarts.push(0);
        self.power_loss_pending.push(false);
        self.disks.push(Disk { epoch: self.membership.epoch + 1, members: vec![id], ..Disk::default() });
        self.executed.push(Vec::new());
        self.executed_sets.push(BTreeSet::new());
        let at = self.ids.len() - 1;
        let placeholder = self.boot(at);
        self.replicas.push(placeholder);
        self.membership.waiting.insert(id);
        id
    }

    /// Has a running member of the old epoch seal it, replacing a driver that is down or slow.
    fn drive_seal(&mut self) {
        let switch = self.membership.switch.as_ref().expect("a switch");
        let stale = match switch.driver {
            None => true,
            Some((at, since)) => self.lives[at] != Life::Up || self.step >= since + SEAL_ATTEMPT_STEPS,
        };
        if !stale {
            return;
        }
        let candidates: Vec<usize> = (switch.from.iter())
            .map(|r| self.index(*r))
            .filter(|&at| self.lives[at] == Life::Up && self.is_active(at))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let at = candidates[self.rng.below(candidates.len() as u64) as usize];
        self.membership.switch.as_mut().expect("a switch").driver = Some((at, self.step));
        self.replicas[at].start_seal();
        self.perform(at);
    }

    /// A driver's cut: the control plane commits the first one of the epoch.
    pub(super) fn on_cut(&mut self, at: usize, cut: Cut) {
        let epoch = self.membership.epoch;
        let Some(switch) = self.membership.switch.as_mut() else { return };
        if cut.epoch != epoch || switch.cut_at.is_some() {
            return; // a later driver's, or a stale one: the compare-and-set fails
        }
        switch.cut_at = Some(self.step);
        let from = switch.from.clone();
        // Every instance committed in the epoch is at or below the cut (crate::seal, step 2).
        for id in self.committed.keys() {
            if from.contains(&id.replica) && id.slot > cut.bound(id.replica) {
                self.violations.push(format!(
                    "instance {id} committed above the cut of epoch {epoch} that replica {} computed: {cut:?}",
                    self.ids[at]
                ));
            }
        }
        self.membership.cuts.insert(epoch, cut);
    }

    /// A replica's own instance that will never execute: its client retries. It must not have
    /// been acknowledged.
    pub(super) fn on_dropped(&mut self, at: usize, id: InstanceId) {
        if self.acknowledged.contains_key(&id) {
            self.violations.push(format!("replica {} dropped {id}, which it had acknowledged", self.ids[at]));
        }
        if self.proposed.remove(&id).is_some() {
            self.report.dropped += 1;
        }
    }

    /// Installs the committed cut on the old epoch's running members, starts those done in the
    /// new epoch, hands out checkpoints, and completes the switch.
    fn drive_switch(&mut self) {
        let epoch = self.membership.epoch;
        let cut = self.membership.cuts[&epoch].clone();
        let switch = self.membership.switch.as_ref().expect("a switch");
        let (from, to, cut_at) = (switch.from.clone(), switch.to.clone(), switch.cut_at.expect("cut"));
        for &r in &from {
            let at = self.index(r);
            if self.lives[at] != Life::Up || !self.is_active(at) || self.replicas[at].epoch() != epoch {
                continue;
            }
            if self.replicas[at].cut().is_none() {
                self.replicas[at].install_cut(cut.clone());
                self.perform(at);
            }
            if self.replicas[at].epoch_done() {
                self.switch_member(at, &cut, &to);
            }
        }
        let donor = (to.iter()).map(|r| self.index(*r)).find(|&at| {
            self.disks[at].epoch == epoch + 1 && !self.membership.waiting.contains(&self.ids[at])
        });
        if let Some(donor) = donor {
            for &r in &to {
                let at = self.index(r);
                let new = self.membership.waiting.contains(&r);
                let booted = self.membership.booted.get(&at).copied().unwrap_or(0);
                let lagging = self.lives[at] == Life::Up
                    && self.disks[at].epoch == epoch
                    && self.step > cut_at.max(booted) + LAG_STEPS;
                if new || lagging {
                    self.checkpoint(at, donor, &cut, &from, &to);
                }
            }
        }
        let complete = to.iter().all(|r| {
            let at = self.index(*r);
            self.disks[at].epoch == epoch + 1 && !self.membership.waiting.contains(r)
        });
        if complete {
            for &r in from.iter().filter(|r| !to.contains(r)) {
                let at = self.index(r);
                self.retire(at);
                self.drop_above_cut(at, &cut);
            }
            self.membership.epoch += 1;
            self.membership.members = to;
            self.membership.switch = None;
            self.membership.wiped.clear();
            self.report.reconfigurations += 1;
        }
    }

    /// A member of the old epoch that executed the whole cut: it continues in the new epoch if it
    /// is a member, and stops otherwise.
    fn switch_member(&mut self, at: usize, cut: &Cut, to: &[ReplicaId]) {
        if !to.contains(&self.ids[at]) {
            self.retire(at);
            return;
        }
        self.drop_above_cut(at, cut);
        self.disks[at] = self.starting_disk(at, cut, to);
        self.replicas[at] = self.boot(at);
        self.perform(at);
    }

    /// What replica `at` proposed above the cut never executes: a power loss may have erased its
    /// record, so the replica itself cannot always say. Called before it proposes in the next
    /// epoch, whose slots continue above the cut.
    fn drop_above_cut(&mut self, at: usize, cut: &Cut) {
        let r = self.ids[at];
        let above: Vec<InstanceId> =
            self.proposed.keys().filter(|id| id.replica == r && id.slot > cut.bound(r)).copied().collect();
        for id in above {
            self.on_dropped(at, id);
        }
    }

    fn retire(&mut self, at: usize) {
        if self.lives[at] != (Life::Down { until: u64::MAX })
            && !self.membership.retired.contains(&self.ids[at])
        {
            crate::sim::add_counters(&mut self.report.counters, self.replicas[at].counters());
        }
        self.lives[at] = Life::Down { until: u64::MAX };
        self.membership.retired.insert(self.ids[at]);
    }

    /// What the node writes when a replica starts in the epoch after `cut` (its data stays).
    fn starting_disk(&self, at: usize, cut: &Cut, to: &[ReplicaId]) -> Disk {
        let start = Recovered::starting_epoch(cut, self.ids[at]);
        Disk {
            slot_reservation: start.slot_reservation,
            forgotten: start.forgotten.into_iter().collect(),
            own_commits_known_from: start.slot_reservation,
            writes_complete: start.writes_complete,
            epoch: cut.epoch + 1,
            members: to.to_vec(),
            ..Disk::default()
        }
    }

    /// Gives replica `at` the donor's data as of the cut (what executed up to it), and starts it
    /// in the new epoch.
    fn checkpoint(&mut self, at: usize, donor: usize, cut: &Cut, from: &[ReplicaId], to: &[ReplicaId]) {
        let at_boundary = |id: &InstanceId| {
            if from.contains(&id.replica) {
                id.slot <= cut.bound(id.replica)
            } else {
                !to.contains(&id.replica) // an earlier epoch's member: all of it is older
            }
        };
        let log: Vec<InstanceId> = self.executed[donor].iter().copied().filter(at_boundary).collect();
        self.executed_sets[at] = log.iter().copied().collect();
        self.executed[at] = log;
        if self.lives[at] != (Life::Down { until: u64::MAX }) {
            crate::sim::add_counters(&mut self.report.counters, self.replicas[at].counters());
        }
        if from.contains(&self.ids[at]) {
            self.drop_above_cut(at, cut);
        }
        self.disks[at] = self.starting_disk(at, cut, to);
        self.membership.waiting.remove(&self.ids[at]);
        self.report.checkpoints += 1;
        self.restart(at);
    }
}
