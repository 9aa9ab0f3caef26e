use crate::replica::Replica;
use crate::types::{Ballot, InstanceId};

impl Replica {
    /// Someone promised a higher ballot for the instance: stop leading or recovering it in a
    /// lower one, and start any later recovery above it.
    pub(crate) fn handle_nack(&mut self, id: InstanceId, promised: Ballot) {
        let floor = self.min_round.entry(id).or_insert(0);
        *floor = (*floor).max(promised.round + 1);
        if self.recoveries.get(&id).is_some_and(|r| r.ballot < promised) {
            self.recoveries.remove(&id);
        }
        if self.instances.get(&id).is_some_and(|i| i.lead.is_some() && i.ballot < promised) {
            self.abandon_lead(id);
            self.watch_stall(id);
        }
    }
}
