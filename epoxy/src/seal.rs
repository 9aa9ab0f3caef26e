//! Reconfiguration: sealing an epoch, its cut, and the start of the next epoch.
//!
//! A replica set changes by *epochs*. Epoch `e` has members `M`; epoch `e + 1` has members `M'`
//! (a node added, removed or replaced). The switch is Vertical Paxos (Lamport, Malkhi, Zhou 2009)
//! with the control plane as the configuration master, made simple by EPaxos' instance spaces:
//!
//! 1. **Seal.** A driver (any member of `M`) sends `Seal{e}` to `M`. A member that receives it
//!    records, per command leader `r`, the highest slot of `r` it holds any record of (its
//!    *bounds*), makes that durable, and from then on never votes (PreAccept, Accept,
//!    TryPreAccept, nor as a recoverer) on a slot of `r` above its bound, and proposes nothing new
//!    in `e`. It answers `SealOk{e, bounds}`.
//! 2. **Cut.** With `SealOk` from a majority `S` of `M`, the driver takes the per-leader maximum
//!    of their bounds: the *cut*. Every instance that ever commits in `e` is at or below it: a
//!    committed instance has votes from a quorum (fast or slow, both at least a majority), which
//!    meets `S`, and a member of `S` holding a vote reported at least its slot. No instance above
//!    it ever commits: its quorum would need a vote from a member of `S`, whose bound is below it.
//!    Any majority's cut is valid, so a driver that crashes is simply replaced; the control plane
//!    commits exactly one cut per epoch (compare-and-set on the attempt).
//! 3. **Install.** Each member of `M` installs the committed cut ([`Replica::install_cut`]): it
//!    drops what it holds above the cut (never committed anywhere), treats dependencies above the
//!    cut as the no-ops they are, votes on any slot up to the cut, and chases every slot up to it
//!    (from peers, or by recovery, which commits a no-op where no one holds a command) until all
//!    have executed: [`Replica::epoch_done`]. Nothing of `e` executes after that.
//! 4. **Next epoch.** The node then starts a replica of `e + 1` over `M'`
//!    ([`Recovered::starting_epoch`]): instance spaces continue above the cut, every slot up to
//!    the cut counts as executed, and interference starts afresh (every instance of `e` executed
//!    before any of `e + 1`, so no `e + 1` instance needs an `e` dependency). Messages carry their
//!    epoch ([`Replica::step_in_epoch`]): a late epoch-`e` message is ignored, and a message from a
//!    newer epoch tells the node to learn that epoch from the control plane first.
//!
//! A member new in `M'` holds no state of `e`: the node installs a copy of a donor's data taken
//! at the cut before that member executes anything of `e + 1` (it may vote at once: votes need
//! no data).

use crate::message::Message;
use crate::ready::Outbound;
use crate::record::{Record, Recovered};
use crate::replica::Replica;
use crate::types::{InstanceId, ReplicaId, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The instances that execute in an epoch: every slot of each command leader up to its bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub epoch: u64,
    /// One per member of the epoch, in replica order.
    pub bounds: Vec<(ReplicaId, u64)>,
}

impl Cut {
    /// The bound of `replica` (0 for a replica not in the epoch).
    pub fn bound(&self, replica: ReplicaId) -> u64 {
        bound_of(&self.bounds, replica)
    }
}

/// The bound of `replica` in per-replica bounds (0 when absent): a cut's, or a stored seal's.
pub(crate) fn bound_of(bounds: &[(ReplicaId, u64)], replica: ReplicaId) -> u64 {
    bounds.iter().find(|(r, _)| *r == replica).map_or(0, |(_, s)| *s)
}

/// A seal this replica drives: the bounds each member reported.
#[derive(Debug, Default)]
pub(crate) struct Sealing {
    pub(crate) replies: BTreeMap<ReplicaId, Vec<(ReplicaId, u64)>>,
    pub(crate) ticks: u32,
}

impl Recovered {
    /// What a member of the epoch after `cut` starts from: every slot up to the cut counts as
    /// executed (the node's data holds their effects), and this replica's own instances continue
    /// above its bound.
    pub fn starting_epoch(cut: &Cut, me: ReplicaId) -> Recovered {
        Recovered {
            forgotten: cut.bounds.clone(),
            slot_reservation: cut.bound(me) + 1,
            writes_complete: true,
            ..Recovered::default()
        }
    }
}

impl Replica {
    pub fn epoch(&self) -> u64 {
        self.config.epoch
    }

    /// Handles a message a peer sent in `epoch`: a late message from an older epoch changes
    /// nothing; one from a newer epoch is not acted on either, but [`crate::Ready::newer_epoch`]
    /// tells the driver to learn that epoch first.
    pub fn step_in_epoch(&mut self, from: ReplicaId, epoch: u64, message: Message) {
        if epoch == self.config.epoch {
            self.step(from, message);
        } else if epoch > self.config.epoch {
            self.ready.newer_epoch = Some(self.ready.newer_epoch.map_or(epoch, |e| e.max(epoch)));
        }
    }

    /// Starts sealing this replica's epoch as its driver: seals itself and asks every peer; the
    /// cut arrives in [`crate::Ready::cut`] once a majority answered. Calling it again restarts
    /// the collection (after a control-plane retry, say).
    pub fn start_seal(&mut self) {
        self.seal_here();
        let mut sealing = Sealing::default();
        sealing.replies.insert(self.config.id, self.sealed_bounds());
        self.sealing = Some(sealing);
        for &peer in &self.config.replicas {
            if peer != self.config.id {
                let seal = Message::Seal { epoch: self.config.epoch };
                self.ready.messages_after_persist.push(Outbound { to: peer, message: seal });
            }
        }
        self.check_seal_quorum();
    }

    /// Whether this replica is sealed: it proposes nothing more in its epoch.
    pub fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// The cut installed in this replica's epoch, if any.
    pub fn cut(&self) -> Option<&Cut> {
        self.cut.as_ref()
    }

    pub(crate) fn handle_seal(&mut self, from: ReplicaId, epoch: u64) {
        if epoch != self.config.epoch {
            return;
        }
        self.seal_here();
        let reply = Message::SealOk { epoch, bounds: self.sealed_bounds() };
        // A durable promise: it leaves after the seal record is synced.
        self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
    }

    pub(crate) fn handle_seal_ok(&mut self, from: ReplicaId, epoch: u64, bounds: Vec<(ReplicaId, u64)>) {
        if epoch != self.config.epoch
            || bounds.iter().map(|(r, _)| *r).ne(self.config.replicas.iter().copied())
        {
            return; // not an answer about this epoch's members: misdirected
        }
        let Some(sealing) = self.sealing.as_mut() else { return };
        sealing.replies.insert(from, bounds);
        self.check_seal_quorum();
    }

    fn check_seal_quorum(&mut self) {
        let Some(sealing) = &self.sealing else { return };
        if sealing.replies.len() < self.config.slow_quorum() {
            return;
        }
        let bounds = (self.config.replicas.iter().enumerate())
            .map(|(at, &r)| (r, sealing.replies.values().map(|b| b[at].1).max().unwrap_or(0)))
            .collect();
        self.ready.cut = Some(Cut { epoch: self.config.epoch, bounds });
        self.sealing = None;
    }

    /// Seals this replica (once; durably): its bounds are the highest slot of each leader it
    /// holds any record of.
    fn seal_here(&mut self) {
        if self.sealed.is_some() {
            return;
        }
        let mut bounds: Vec<u64> = (self.config.replicas.iter().enumerate())
            .map(|(at, &r)| self.forgotten[at].max(self.executor.executed_max(r)))
            .collect();
        for id in self.instances.keys() {
            if let Some(at) = self.config.index_of(id.replica) {
                bounds[at] = bounds[at].max(id.slot);
            }
        }
        let me = self.config.index_of(self.config.id).expect("a member");
        bounds[me] = bounds[me].max(self.next_slot - 1);
        self.sealed = Some(bounds);
        self.ready.persist.push(Record::Seal { epoch: self.config.epoch, bounds: self.sealed_bounds() });
        self.drop_above_limit();
    }

    fn sealed_bounds(&self) -> Vec<(ReplicaId, u64)> {
        let bounds = self.sealed.as_ref().expect("sealed");
        self.config.replicas.iter().copied().zip(bounds.iter().copied()).collect()
    }

    /// The highest slot of `replica` this replica may vote on: the installed cut, else its seal.
    pub(crate) fn vote_limit(&self, replica: ReplicaId) -> Option<u64> {
        let at = self.config.index_of(replica)?;
        match (&self.cut, &self.sealed) {
            (Some(cut), _) => Some(cut.bounds[at].1),
            (None, Some(bounds)) => Some(bounds[at]),
            (None, None) => None,
        }
    }

    /// `id`, or, above an installed cut, the leader's last slot at the cut (what a dependency on
    /// `id` then stands for: everything above is a no-op); `None` when that leaves no slot.
    pub(crate) fn clamp_to_cut(&self, id: InstanceId) -> Option<InstanceId> {
        let Some(cut) = &self.cut else { return Some(id) };
        let bound = cut.bound(id.replica);
        if id.slot <= bound {
            Some(id)
        } else {
            (bound > 0).then_some(InstanceId { replica: id.replica, slot: bound })
        }
    }

    pub(crate) fn above_vote_limit(&self, id: InstanceId) -> bool {
        self.vote_limit(id.replica).is_some_and(|limit| id.slot > limit)
    }

    /// Stops every recovery this replica would run above its vote limit (it may not vote there);
    /// above an installed cut, the own slots a crash lost are no-ops too.
    pub(crate) fn drop_above_limit(&mut self) {
        if self.cut.is_some() {
            let gap: Vec<InstanceId> =
                self.restart_gap.iter().copied().filter(|id| self.above_vote_limit(*id)).collect();
            for id in gap {
                self.restart_gap.remove(&id);
            }
        }
        let above: Vec<InstanceId> = (self.stalled.keys().chain(self.recoveries.keys()))
            .copied()
            .filter(|id| self.above_vote_limit(*id))
            .collect();
        for id in above {
            self.forget_recovery(id);
        }
    }

    /// Installs the cut the control plane committed for this replica's epoch (idempotent): see the
    /// module documentation, step 3.
    pub fn install_cut(&mut self, cut: Cut) {
        assert_eq!(cut.epoch, self.config.epoch, "a cut of another epoch: cut={cut:?}");
        assert!(
            cut.bounds.iter().map(|(r, _)| *r).eq(self.config.replicas.iter().copied()),
            "a cut over other members: cut={cut:?} members={:?}",
            self.config.replicas
        );
        if let Some(installed) = &self.cut {
            assert_eq!(installed, &cut, "two cuts of one epoch");
            return;
        }
        if self.sealed.is_none() {
            let bounds = cut.bounds.iter().map(|(_, s)| *s).collect();
            self.sealed = Some(bounds);
        }
        self.ready.persist.push(Record::Cut(cut.clone()));
        self.executor.set_clamp(cut.bounds.iter().copied());
        self.cut = Some(cut);
        self.sealing = None;
        self.settle_keys_at_cut();
        let above: Vec<InstanceId> =
            self.instances.keys().copied().filter(|id| self.above_vote_limit(*id)).collect();
        for id in above {
            let instance = self.instances.remove(&id).expect("listed");
            assert!(
                instance.status != Status::Committed,
                "an instance committed above the cut of epoch {}: instance={id}",
                self.config.epoch
            );
            if self.leading.remove(&id) {
                self.ready.dropped.push(id);
            }
            self.forget_recovery(id);
        }
        self.counters.in_flight = self.leading.len() as u64;
        self.drop_above_limit();
        self.chase_cut();
    }

    /// Rewrites the conflict index so that no key names an instance above the cut as its latest:
    /// such an instance is a no-op, and it would hide its leader's real instances on the key
    /// (acceptors would name it as a conflict that never resolves). It is replaced by what it
    /// stood for: its leader's highest own dependency (the leader's chain on the key) when its
    /// record is here, else, conservatively, the leader's last slot at the cut.
    fn settle_keys_at_cut(&mut self) {
        let mut changed = Vec::new();
        for (key, record) in self.keys.iter_mut() {
            let mut touched = false;
            for latest in record.latest.iter_mut() {
                let Some(cut) = &self.cut else { return };
                let bound = cut.bound(latest.replica);
                if latest.slot <= bound {
                    continue;
                }
                let own_dep = (self.instances.get(latest)).and_then(|i| {
                    i.attrs.deps.iter().filter(|d| d.replica == latest.replica).map(|d| d.slot).max()
                });
                latest.slot = own_dep.map_or(bound, |s| s.min(bound));
                touched = true;
            }
            if touched {
                record.latest.retain(|l| l.slot > 0);
                changed.push(key.clone());
            }
        }
        for key in changed {
            let record = self.keys[&key].clone();
            self.watch_key(&key, &record);
            self.ready.persist.push(Record::Key { key, record });
        }
    }

    /// Whether every instance of this replica's epoch has executed here: the cut is installed and
    /// every slot up to it executed. The next epoch may start.
    pub fn epoch_done(&self) -> bool {
        self.cut.as_ref().is_some_and(|cut| {
            cut.bounds.iter().all(|&(r, bound)| self.executor.executed_contiguous(r) >= bound)
        })
    }

    /// Watches (for recovery) and asks peers for the slots up to the cut not committed here, a
    /// bounded number per leader at a time.
    pub(crate) fn chase_cut(&mut self) {
        let Some(cut) = &self.cut else { return };
        let mut ids = Vec::new();
        for &(r, bound) in &cut.bounds {
            let mut slot = self.executor.next_unexecuted(r, 1);
            while slot <= bound && ids.len() < crate::config::COMMIT_REQUEST_IDS_MAX {
                let id = InstanceId { replica: r, slot };
                if self.instances.get(&id).is_none_or(|i| i.status != Status::Committed) {
                    ids.push(id);
                }
                slot = self.executor.next_unexecuted(r, slot + 1);
            }
        }
        for &id in &ids {
            self.watch_stall(id);
        }
        if ids.is_empty() {
            return;
        }
        for &peer in &self.config.replicas {
            if peer != self.config.id {
                let request = Message::CommitRequest { ids: ids.clone() };
                self.ready.messages.push(Outbound { to: peer, message: request });
            }
        }
    }

    /// Resends the seal to the members that have not answered.
    pub(crate) fn tick_seal(&mut self) {
        let epoch = self.config.epoch;
        let Some(sealing) = self.sealing.as_mut() else { return };
        sealing.ticks += 1;
        if sealing.ticks < self.config.retry_ticks {
            return;
        }
        sealing.ticks = 0;
        for &peer in &self.config.replicas {
            if !sealing.replies.contains_key(&peer) {
                self.ready.messages.push(Outbound { to: peer, message: Message::Seal { epoch } });
            }
        }
    }
}

#[cfg(test)]
#[path = "seal_test.rs"]
mod tests;
