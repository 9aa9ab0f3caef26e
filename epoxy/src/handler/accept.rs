use crate::message::Message;
use crate::ready::Outbound;
use crate::replica::{Instance, Replica};
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};

impl Replica {
    /// Phase 2 at an acceptor: accept the attributes unless a higher ballot was promised, persist,
    /// then answer.
    pub(crate) fn handle_accept(
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
                assert!(
                    instance.attrs == attrs,
                    "two values accepted in one ballot: instance={id} ballot={ballot:?} held={:?} new={attrs:?}",
                    instance.attrs
                );
                let reply = Message::AcceptOk { id, ballot };
                self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
                return;
            }
        }
        if self.instances.get(&id).is_some_and(|i| i.lead.is_some() && i.ballot < ballot) {
            self.abandon_lead(id);
        }
        self.observe_keys(id, &commands, attrs.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::Accepted,
            attrs,
            commands,
            matches_proposal: false,
            lead: None,
        };
        self.record_vote(id, instance);
        self.ready
            .messages_after_persist
            .push(Outbound { to: from, message: Message::AcceptOk { id, ballot } });
    }
}
