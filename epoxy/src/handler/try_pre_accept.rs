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
            TryOutcome::Conflict { conflict, committed } => {
                let nack = Message::TryPreAcceptNack { id, ballot, conflict, committed };
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
                return TryOutcome::Conflict { conflict: id, committed: false };
            }
            let holds = instance.status == Status::PreAccepted
                && instance.matches_proposal
                && instance.attrs == attrs;
            if !holds && let Some(outcome) = self.first_conflict(id, &attrs, &commands) {
                return outcome;
            }
        } else if let Some(outcome) = self.first_conflict(id, &attrs, &commands) {
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

    /// The first instance this replica knows on the proposal's keys that the proposal does not
    /// depend on. Conservative: only the latest instance of each replica per key is known, and it
    /// must be among the dependencies itself.
    fn first_conflict(&self, id: InstanceId, attrs: &Attributes, commands: &[Command]) -> Option<TryOutcome> {
        for c in commands {
            let Some(key) = self.keys.get(&c.key) else { continue };
            for &other in &key.latest {
                if other == id || attrs.deps.binary_search(&other).is_ok() {
                    continue;
                }
                let committed = self.executor.is_executed(other)
                    || self.instances.get(&other).is_some_and(|i| i.status == Status::Committed);
                return Some(TryOutcome::Conflict { conflict: other, committed });
            }
        }
        None
    }
}
