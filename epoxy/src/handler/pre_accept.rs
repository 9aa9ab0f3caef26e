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
        if self.executor.is_executed(id) {
            return;
        }
        if let Some(instance) = self.instances.get(&id) {
            if ballot < instance.ballot || instance.status != Status::PreAccepted {
                return; // stale, or this replica is past phase 1 for the instance
            }
            if ballot == instance.ballot && instance.accepted_ballot == ballot {
                // A resend: answer again with the attributes already voted for.
                let reply = Message::PreAcceptOk { id, ballot, attrs: instance.attrs.clone() };
                self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
                return;
            }
        }
        let mut merged = attrs;
        self.merge_local_attrs(id, &commands, &mut merged);
        self.observe_keys(id, &commands, merged.seq);
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status: Status::PreAccepted,
            attrs: merged.clone(),
            commands,
            lead: None,
        };
        self.persist_instance(id, &instance);
        self.instances.insert(id, instance);
        let reply = Message::PreAcceptOk { id, ballot, attrs: merged };
        self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
    }
}
