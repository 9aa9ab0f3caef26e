use crate::message::Message;
use crate::ready::Outbound;
use crate::replica::{Instance, Replica};
use crate::try_outcome::TryOutcome;
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use bytes::Bytes;

impl Replica {
    /// TryPreAccept at an acceptor (tech report §4.4): pre-accept exactly the proposal at the
    /// recoverer's ballot if every interfering instance this replica knows is already among its
    /// dependencies; otherwise name the first that is not.
    pub(crate) fn handle_try_pre_accept(
        &mut self,
        from: ReplicaId,
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
        holders: &[ReplicaId],
    ) {
        if self.answer_with_commit(from, id) {
            return;
        }
        if let Some(instance) = self.instances.get(&id)
            && ballot < instance.ballot
        {
            let nack = Message::Nack { id, promised: instance.ballot };
            self.ready.messages.push(Outbound { to: from, message: nack });
            return;
        }
        match self.try_pre_accept_here(id, ballot, attrs, commands, holders) {
            TryOutcome::Ok => {
                let ok = Message::TryPreAcceptOk { id, ballot };
                self.ready.messages_after_persist.push(Outbound { to: from, message: ok });
            }
            TryOutcome::Conflict { conflict, committed, excluded } => {
                let nack = Message::TryPreAcceptNack { id, ballot, conflict, committed, excluded };
                self.ready.messages.push(Outbound { to: from, message: nack });
            }
        }
    }

    /// Installs the proposal as this replica's vote when it can, as an acceptor would. Also used by
    /// the recoverer on itself. `holders`: see [`Message::TryPreAccept`].
    pub(crate) fn try_pre_accept_here(
        &mut self,
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
        holders: &[ReplicaId],
    ) -> TryOutcome {
        if let Some(instance) = self.instances.get(&id) {
            if instance.status == Status::Accepted {
                // A vote from a later phase: the recoverer must start over and see it.
                return TryOutcome::Conflict { conflict: id, committed: false, excluded: Vec::new() };
            }
            let holds = instance.status == Status::PreAccepted
                && instance.matches_proposal
                && instance.attrs == attrs;
            if !holds && let Some(outcome) = self.conflicts(id, &attrs, &commands, holders) {
                return outcome;
            }
        } else if let Some(outcome) = self.conflicts(id, &attrs, &commands, holders) {
            return outcome;
        }
        self.abandon_lead(id);
        self.observe_keys(id, &commands, attrs.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::PreAccepted,
            attrs,
            commands,
            matches_proposal: true,
            lead: None,
        };
        self.record_vote(id, instance);
        TryOutcome::Ok
    }

    /// What refuses the proposal here: every instance on the proposal's keys that the proposal
    /// does not depend on and that is not known to be ordered after `id`, and its own slots a
    /// crash may have lost, whose keys are unknown. The index holds only each replica's latest
    /// instance per key, so every slot of that replica between what the proposal covers and the
    /// latest is looked at ([`Self::judge`]); one whose keys are not known here refuses. None
    /// when there is nothing.
    ///
    /// Instances of the leader and of the `holders` never refuse it, nor do forgotten ones. A
    /// holder pre-accepted exactly `attrs` (in ballot 0, or by an earlier TryPreAccept that this
    /// check let through): when it voted, each of its own instances on these keys was covered by
    /// `attrs.deps` (its index holds its own latest per key, and no restart gap was open: a
    /// replica with one never votes for a proposal unchanged), or ordered after `id`
    /// (TryPreAccept). Every instance it proposed after the vote depends on `id` in every vote
    /// for it (its leader's attributes do, and acceptors only add), as the leader's own later
    /// instances do; a no-op touches no key.
    fn conflicts(
        &self,
        id: InstanceId,
        attrs: &Attributes,
        commands: &[Command],
        holders: &[ReplicaId],
    ) -> Option<TryOutcome> {
        let mut first = None;
        let mut committed = false;
        let mut excluded = Vec::new();
        for gap in &self.restart_gap {
            if *gap != id && !self.executor.is_executed(*gap) && !covers(&attrs.deps, *gap) {
                first.get_or_insert(*gap);
            }
        }
        let mut keys: Vec<&Bytes> = commands.iter().map(|c| &c.key).collect();
        keys.sort_unstable();
        keys.dedup();
        // Per replica, the latest of its instances on the keys that may refuse the proposal.
        let mut scan: Vec<InstanceId> = Vec::new();
        for key in &keys {
            let Some(key) = self.keys.get(*key) else { continue };
            for &latest in &key.latest {
                // Above an installed cut, the latest instance is a no-op that never committed; the
                // replica's latest real one on the key is at most its bound (crate::seal).
                let Some(other) = self.clamp_to_cut(latest) else { continue };
                // A later instance of the same leader is ordered after `id`: its leader proposed it
                // knowing `id` (or the restart gap that holds it), and every vote for it keeps that.
                let later_of_leader = other.replica == id.replica && other.slot > id.slot;
                if other == id
                    || later_of_leader
                    || holders.contains(&other.replica)
                    || covers(&attrs.deps, other)
                    || other.slot <= self.forgotten_through(other.replica)
                {
                    continue;
                }
                match scan.iter_mut().find(|s| s.replica == other.replica) {
                    Some(s) => s.slot = s.slot.max(other.slot),
                    None => scan.push(other),
                }
            }
        }
        scan.sort_unstable();
        for other in scan {
            // The index shows only the replica's latest instance on each key: every slot of that
            // replica the proposal does not cover, up to it, may be on the keys too.
            // A forgotten slot never refuses: it executed on every replica before this answer,
            // so before `id` can commit with the proposal anywhere but on a fast path, whose
            // proposal it is (see docs/ARCHITECTURE.md, "Quiet keys").
            let from =
                covered_through(&attrs.deps, other.replica).max(self.forgotten_through(other.replica)) + 1;
            if other.slot - from >= SCAN_SLOTS_MAX {
                first.get_or_insert(other);
                continue;
            }
            for slot in from..=other.slot {
                let earlier = InstanceId { replica: other.replica, slot };
                match self.judge(earlier, id, &keys) {
                    Judged::Apart | Judged::After => {}
                    Judged::Unknown => {
                        first.get_or_insert(earlier);
                    }
                    Judged::Conflict { committed_without } => {
                        first.get_or_insert(earlier);
                        committed |= committed_without;
                        if self.proposed_before_seeing(earlier, id) && !excluded.contains(&earlier.replica) {
                            excluded.push(earlier.replica);
                        }
                    }
                }
            }
        }
        first.map(|conflict| TryOutcome::Conflict { conflict, committed, excluded })
    }

    /// What this replica knows of instance `other` against the proposal for `id` on `keys`
    /// (sorted).
    fn judge(&self, other: InstanceId, id: InstanceId, keys: &[&Bytes]) -> Judged {
        if other == id {
            return Judged::Apart;
        }
        let Some(instance) = self.instances.get(&other) else {
            if !self.executor.is_executed(other) {
                return Judged::Unknown; // never seen here, or lost in a crash
            }
            // Executed here, so committed without `id`, which is not committed here (the caller
            // answered with the commit otherwise): on the keys, `id` cannot have committed on
            // the fast path without it (see `Judged::Conflict`).
            return match self.executed_keys.touches(other, keys) {
                Some(true) => Judged::Conflict { committed_without: true },
                Some(false) => Judged::Apart,
                None => Judged::Unknown,
            };
        };
        let committed = instance.status == Status::Committed;
        if instance.commands.is_empty() {
            // A no-op, once committed; before, a recoverer's no-op that may yet lose to the
            // leader's commands.
            return if committed { Judged::Apart } else { Judged::Unknown };
        }
        // An instance's commands are its leader's or, through recovery, none: never others.
        if !instance.commands.iter().any(|c| keys.binary_search(&&c.key).is_ok()) {
            return Judged::Apart;
        }
        if committed && covers(&instance.attrs.deps, id) {
            return Judged::After;
        }
        if !committed && proposed_after(instance, other, id) {
            return Judged::After;
        }
        Judged::Conflict { committed_without: committed }
    }

    /// Whether this replica holds `other`'s ballot-0 proposal unchanged, and it does not cover
    /// `id`: then `other`'s leader proposed it before it saw `id` (it orders what it saw before
    /// its own proposals), so its own vote for `id`, if any, names `other` and differs from `id`'s
    /// proposal, which misses `other`. (After a crash that lost `other`, the leader answers with a
    /// higher seq until its lost slots are settled: different too.) The leader cannot be in a fast
    /// quorum of `id`.
    fn proposed_before_seeing(&self, other: InstanceId, id: InstanceId) -> bool {
        other.replica != id.replica
            && self.instances.get(&other).is_some_and(|i| {
                i.status == Status::PreAccepted && i.matches_proposal && !covers(&i.attrs.deps, id)
            })
    }
}

/// Most slots of one replica a TryPreAccept looks at before it refuses unseen: a longer stretch of
/// instances the proposal misses is refused without looking.
const SCAN_SLOTS_MAX: u64 = 4096;

/// What an acceptor knows of one instance, against a proposal it is asked to pre-accept.
enum Judged {
    /// Touches none of the proposal's keys (or is the proposal's own instance).
    Apart,
    /// Ordered after the proposal's instance: committed so here, or proposed so by its leader.
    After,
    /// Touches the keys and is not known to be ordered after the proposal's instance.
    /// `committed_without`: committed here without depending on it. Then the proposal's
    /// instance did not commit on the fast path (tech report §4.4): that commit went through a
    /// quorum that meets every fast quorum in a replica that would have ordered one after the
    /// other, and the proposal misses this one. (An instance executed here is such: executing
    /// it needed its dependencies committed here.)
    Conflict { committed_without: bool },
    /// Its keys are not known here.
    Unknown,
}

/// Whether the ballot-0 attributes of `other`'s leader, known from this replica's `instance` of it,
/// depend on `id`: every vote for `other` adds to them (acceptors merge, recoverers take the union
/// of votes or a vote as it is), so any commit of it but a no-op depends on `id` too. Known when
/// this replica leads `other` in ballot 0, or holds that proposal unchanged as its vote.
fn proposed_after(instance: &Instance, other: InstanceId, id: InstanceId) -> bool {
    let ballot_zero = Ballot::initial(other.replica);
    let original = match &instance.lead {
        Some(lead) if instance.ballot == ballot_zero => &lead.original,
        Some(_) => return false,
        None if instance.status == Status::PreAccepted
            && instance.matches_proposal
            && instance.accepted_ballot == ballot_zero =>
        {
            &instance.attrs
        }
        None => return false,
    };
    covers(&original.deps, id)
}

/// The highest slot of `replica` that `deps` cover (0 for none).
fn covered_through(deps: &[InstanceId], replica: ReplicaId) -> u64 {
    deps.iter().filter(|d| d.replica == replica).map(|d| d.slot).max().unwrap_or(0)
}

/// Whether dependencies order an instance after `id`: a dependency on an instance of the same
/// replica at `id`'s slot or later stands for every earlier one (the executor reads it so).
pub(crate) fn covers(deps: &[InstanceId], id: InstanceId) -> bool {
    deps.iter().any(|d| d.replica == id.replica && d.slot >= id.slot)
}
