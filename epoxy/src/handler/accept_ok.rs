use crate::replica::{Phase, Replica};
use crate::types::{Ballot, InstanceId, ReplicaId, Status};

impl Replica {
    /// Phase 2 at the command leader: commit once a majority (this replica included) accepted.
    pub(crate) fn handle_accept_ok(&mut self, from: ReplicaId, id: InstanceId, ballot: Ballot) {
        let Some(at) = self.config.index_of(from) else {
            return;
        };
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        if instance.ballot != ballot || instance.status != Status::Accepted {
            return;
        }
        let Some(lead) = instance.lead.as_mut() else {
            return;
        };
        if lead.phase != Phase::Accept || lead.replied & (1 << at) != 0 {
            return;
        }
        lead.replied |= 1 << at;
        if lead.replied.count_ones() as usize >= self.config.slow_quorum() {
            if lead.resends == 0 {
                self.resend_timer.sample(lead.ticks);
            }
            self.commit(id, false);
        }
    }
}
