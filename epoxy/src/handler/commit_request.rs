use crate::config::COMMIT_REQUEST_IDS_MAX;
use crate::message::Message;
use crate::ready::{LoadRequest, Outbound};
use crate::replica::Replica;
use crate::types::{InstanceId, ReplicaId, Status};

impl Replica {
    /// A phase message for an instance already committed here answers with the commit: its
    /// sender (an old leader or recoverer that missed the Commit) would otherwise resend forever.
    /// True when the instance is committed or executed here. Like every Commit, the answer leaves
    /// after this round's write, which holds the commit if this round made it: a leader that
    /// restarts without its commit record vouches that it never committed.
    pub(crate) fn answer_with_commit(&mut self, to: ReplicaId, id: InstanceId) -> bool {
        if self.executor.is_executed(id) {
            self.ready.load_requests.push(LoadRequest { to, id });
            return true;
        }
        let Some(instance) = self.instances.get(&id).filter(|i| i.status == Status::Committed) else {
            return false;
        };
        let message =
            Message::Commit { id, attrs: instance.attrs.clone(), commands: instance.commands.clone() };
        self.ready.messages_after_persist.push(Outbound { to, message });
        true
    }

    /// A peer waits on these instances: send the ones committed here (from memory, after this
    /// round's write, or from storage through the driver when already executed).
    pub(crate) fn handle_commit_request(&mut self, from: ReplicaId, ids: Vec<InstanceId>) {
        for id in ids.into_iter().take(COMMIT_REQUEST_IDS_MAX) {
            if self.executor.is_executed(id) {
                self.ready.load_requests.push(LoadRequest { to: from, id });
            } else if let Some(instance) = self.instances.get(&id).filter(|i| i.status == Status::Committed) {
                let message = Message::Commit {
                    id,
                    attrs: instance.attrs.clone(),
                    commands: instance.commands.clone(),
                };
                self.ready.messages_after_persist.push(Outbound { to: from, message });
            }
        }
    }
}
