use crate::message::Message;
use crate::ready::Outbound;
use crate::replica::{Instance, Replica};
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};

impl Replica {
    /// Phase 1 at an acceptor: add what this replica knows of the keys to the leader's attributes,
    /// persist, then answer (after the persist: the answer is a durable vote).
    pub(crate) fn handle_pre_accept(
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
        if let Some(instance) = self.instances.get(&id) {
            if ballot < instance.ballot {
                let nack = Message::Nack { id, promised: instance.ballot };
                self.ready.messages.push(Outbound { to: from, message: nack });
                return;
            }
            if instance.status == Status::Accepted && instance.accepted_ballot == ballot {
                return; // this replica is past phase 1 in this ballot
            }
            if instance.status == Status::PreAccepted && instance.accepted_ballot == ballot {
                // A resend: answer again with the attributes already voted for.
                let reply = Message::PreAcceptOk { id, ballot, attrs: instance.attrs.clone() };
                self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
                return;
            }
        }
        if self.instances.get(&id).is_some_and(|i| i.lead.is_some() && i.ballot < ballot) {
            self.abandon_lead(id); // a recoverer's higher ballot takes over
        }
        let mut merged = attrs.clone();
        self.merge_local_attrs(id, &commands, &mut merged);
        if self.restart_gap_open() {
            // This replica may have led an interfering instance a crash made it forget: it must not
            // vote for a proposal unchanged (nor count towards its fast path) until its lost
            // slots are settled. A higher seq is always a valid answer.
            merged.seq += 1;
        }
        // Only the leader's own ballot-0 proposal, left unchanged, can be part of a fast quorum.
        let matches_proposal = ballot == Ballot::initial(id.replica) && merged == attrs;
        self.observe_keys(id, &commands, merged.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::PreAccepted,
            attrs: merged.clone(),
            commands,
            matches_proposal,
            lead: None,
        };
        self.record_vote(id, instance);
        let reply = Message::PreAcceptOk { id, ballot, attrs: merged };
        self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
    }
}
