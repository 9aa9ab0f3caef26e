use crate::message::Message;
use crate::ready::Outbound;
use crate::replica::{Instance, Replica};
use crate::try_outcome::TryOutcome;
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};

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
        match self.try_pre_accept_here(id, ballot, attrs, commands) {
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
    /// the recoverer on itself.
    pub(crate) fn try_pre_accept_here(
        &mut self,
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
    ) -> TryOutcome {
        if let Some(instance) = self.instances.get(&id) {
            if instance.status == Status::Accepted {
                // A vote from a later phase: the recoverer must start over and see it.
                return TryOutcome::Conflict { conflict: id, committed: false, excluded: Vec::new() };
            }
            let holds = instance.status == Status::PreAccepted
                && instance.matches_proposal
                && instance.attrs == attrs;
            if !holds && let Some(outcome) = self.conflicts(id, &attrs, &commands) {
                return outcome;
            }
        } else if let Some(outcome) = self.conflicts(id, &attrs, &commands) {
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

    /// What refuses the proposal here: every instance this replica knows on the proposal's keys
    /// that the proposal does not depend on (conservative: only the latest instance of each
    /// replica per key is known, and the proposal must cover it), and its own slots a crash may
    /// have lost, whose keys are unknown. None when there is nothing.
    fn conflicts(&self, id: InstanceId, attrs: &Attributes, commands: &[Command]) -> Option<TryOutcome> {
        let mut first = None;
        let mut committed = false;
        let mut excluded = Vec::new();
        for gap in &self.restart_gap {
            if *gap != id && !self.executor.is_executed(*gap) && !covers(&attrs.deps, *gap) {
                first.get_or_insert(*gap);
            }
        }
        for c in commands {
            let Some(key) = self.keys.get(&c.key) else { continue };
            for &latest in &key.latest {
                // Above an installed cut, the latest instance is a no-op that never committed; the
                // replica's latest real one on the key is at most its bound (crate::seal).
                let Some(other) = self.clamp_to_cut(latest) else { continue };
                // A later instance of the same leader is ordered after `id`: its leader proposed it
                // knowing `id` (or the restart gap that holds it), and every vote for it keeps that.
                let later_of_leader = other.replica == id.replica && other.slot > id.slot;
                if other == id
                    || later_of_leader
                    || covers(&attrs.deps, other)
                    || self.ordered_after(other, id, attrs)
                {
                    continue;
                }
                first.get_or_insert(other);
                committed |= self.committed_before(other, id);
                if self.proposed_before_seeing(other, id) && !excluded.contains(&other.replica) {
                    excluded.push(other.replica);
                }
            }
        }
        first.map(|conflict| TryOutcome::Conflict { conflict, committed, excluded })
    }

    /// Whether `other` is committed here with dependencies that include `id`, and the proposal
    /// covers every earlier instance of `other`'s replica: then nothing this replica knows of that
    /// replica on these keys (its index holds only the latest) is left unordered with `id`.
    fn ordered_after(&self, other: InstanceId, id: InstanceId, attrs: &Attributes) -> bool {
        let earlier_covered = other.slot <= 1
            || covers(&attrs.deps, InstanceId { replica: other.replica, slot: other.slot - 1 });
        earlier_covered
            && self
                .instances
                .get(&other)
                .is_some_and(|i| i.status == Status::Committed && covers(&i.attrs.deps, id))
    }

    /// Whether `other` is committed here with dependencies that do not include `id`. Then `id`
    /// cannot have committed on the fast path without `other` in its dependencies (tech report
    /// §4.4): the commit of `other` went through a quorum that meets every fast quorum of `id` in
    /// a replica that would have ordered one after the other. An instance executed here is such:
    /// executing it needed its dependencies committed here, and `id` is not (the caller answered
    /// with the commit otherwise).
    fn committed_before(&self, other: InstanceId, id: InstanceId) -> bool {
        if self.executor.is_executed(other) {
            return true;
        }
        self.instances
            .get(&other)
            .is_some_and(|i| i.status == Status::Committed && !covers(&i.attrs.deps, id))
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

/// Whether dependencies order an instance after `id`: a dependency on an instance of the same
/// replica at `id`'s slot or later stands for every earlier one (the executor reads it so).
pub(crate) fn covers(deps: &[InstanceId], id: InstanceId) -> bool {
    deps.iter().any(|d| d.replica == id.replica && d.slot >= id.slot)
}
