//! TakeOver: the leader of an instance got no quorum from a resend and asks this replica, which
//! answered it, to recover the instance now instead of after its stall timeout. Recovering is
//! always safe (it is what the stall timer does); the request only moves it earlier.

use crate::replica::Replica;
use crate::types::{InstanceId, ReplicaId, Status};

impl Replica {
    pub(crate) fn handle_take_over(&mut self, from: ReplicaId, id: InstanceId) {
        if from != id.replica {
            return; // only the leader knows it reaches no quorum
        }
        if self.instances.get(&id).is_none_or(|i| i.status == Status::Committed) {
            return; // not held here (it would recover nothing), or committed already
        }
        if self.recoveries.contains_key(&id) {
            return;
        }
        // The stall timer restarts, so it does not start a second attempt at once.
        let wait = self.stall_wait(id);
        self.stalled.insert(id, wait);
        self.start_recovery(id);
    }
}
