use crate::replica::Replica;
use crate::types::{Ballot, InstanceId, ReplicaId};

impl Replica {
    /// One more replica holds the proposal unchanged: with a whole fast quorum, Accept it.
    pub(crate) fn handle_try_pre_accept_ok(&mut self, from: ReplicaId, id: InstanceId, ballot: Ballot) {
        let Some(at) = self.config.index_of(from) else { return };
        let Some(recovery) = self.recoveries.get_mut(&id) else { return };
        if recovery.ballot != ballot || recovery.trying.is_none() {
            return;
        }
        recovery.holding |= 1 << at;
        self.check_trying(id);
    }

    /// Some replica knows an interfering instance the proposal misses. Whether or not it is
    /// committed, this attempt cannot show the proposal safe now: give up, and let the stall timer
    /// start a fresh attempt (by then the interfering instance or more replicas may settle it).
    pub(crate) fn handle_try_pre_accept_nack(
        &mut self,
        id: InstanceId,
        ballot: Ballot,
        _conflict: InstanceId,
        _committed: bool,
    ) {
        if self.recoveries.get(&id).is_some_and(|r| r.ballot == ballot) {
            self.recoveries.remove(&id);
        }
    }
}
