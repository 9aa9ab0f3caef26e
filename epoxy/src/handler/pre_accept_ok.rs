use crate::replica::{Phase, Replica};
use crate::types::{Attributes, Ballot, InstanceId, ReplicaId, Status};

impl Replica {
    /// Phase 1 at the command leader: collect the replies; commit on the fast path when a fast
    /// quorum returned exactly the proposed attributes, else run the Accept phase on their union.
    pub(crate) fn handle_pre_accept_ok(
        &mut self,
        from: ReplicaId,
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
    ) {
        let Some(at) = self.config.index_of(from) else {
            return;
        };
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        if instance.ballot != ballot || instance.status != Status::PreAccepted {
            return;
        }
        let Some(lead) = instance.lead.as_mut() else {
            return;
        };
        if lead.phase != Phase::PreAccept || lead.replied & (1 << at) != 0 {
            return; // a duplicate or late reply
        }
        lead.replied |= 1 << at;
        if lead.resends == 0 && lead.replied.count_ones() as usize == self.config.slow_quorum() {
            self.resend_timer.sample(lead.ticks);
        }
        if attrs != lead.original {
            lead.all_equal = false;
        }
        instance.attrs.union(&attrs);
        self.check_pre_accept_quorum(id);
        self.take_over_when_out_of_reach(id);
    }
}
