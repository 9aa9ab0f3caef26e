use crate::message::Message;
use crate::ready::Outbound;
use crate::replica::{Instance, Replica, record_of};
use crate::types::{Ballot, InstanceId, ReplicaId};

impl Replica {
    /// Recovery phase 1 at an acceptor (EPaxos §4.4, Figure 3): promise the higher ballot durably,
    /// then report the vote. A committed instance answers with its commit instead, a lower ballot
    /// with a Nack, and the ballot already promised (a resend) with the vote again.
    pub(crate) fn handle_prepare(&mut self, from: ReplicaId, id: InstanceId, ballot: Ballot) {
        if self.answer_with_commit(from, id) {
            return;
        }
        if let Some(instance) = self.instances.get(&id)
            && ballot <= instance.ballot
        {
            if ballot == instance.ballot {
                // The same recoverer again (its answer was lost): the promise stands, answer again.
                let reply = Message::PrepareOk { id, ballot, state: self.vote_of(id) };
                self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
            } else {
                let nack = Message::Nack { id, promised: instance.ballot };
                self.ready.messages.push(Outbound { to: from, message: nack });
            }
            return;
        }
        let state = self.vote_of(id);
        // The recoverer's higher ballot takes over, whether this replica led the instance as its
        // command leader (ballot 0 is over) or as an earlier recoverer.
        self.abandon_lead(id);
        let instance = self.instances.entry(id).or_insert_with(|| Instance::promise_only(ballot, id.replica));
        instance.ballot = ballot;
        let record = record_of(id, instance);
        self.ready.persist.push(record);
        self.recovery_is_current(id); // a recovery of its own at a lower ballot stops here
        // Another replica is recovering it: give that recovery a whole wait before competing
        // (a recovery started meanwhile would take its ballot and undo its progress).
        let wait = self.stall_wait(id);
        self.stalled.insert(id, wait);
        let reply = Message::PrepareOk { id, ballot, state };
        self.ready.messages_after_persist.push(Outbound { to: from, message: reply });
    }
}
