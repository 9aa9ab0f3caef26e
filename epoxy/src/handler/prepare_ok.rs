use crate::message::Vote;
use crate::replica::Replica;
use crate::types::{Ballot, InstanceId, ReplicaId};

impl Replica {
    /// Recovery phase 1 at the recoverer: collect votes until a decision can be made.
    pub(crate) fn handle_prepare_ok(&mut self, from: ReplicaId, id: InstanceId, ballot: Ballot, state: Vote) {
        let Some(recovery) = self.recoveries.get_mut(&id) else { return };
        if recovery.ballot != ballot || recovery.trying.is_some() {
            return;
        }
        recovery.votes.insert(from, state);
        self.decide_recovery(id);
    }
}
