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

    /// Some replica knows an interfering instance the proposal misses. The fast path is ruled out,
    /// and phase 1 runs again (tech report §4.4), when that instance is committed there without
    /// depending on this one, or when the leaders the sender excludes leave too few replicas that
    /// can have pre-accepted the proposal unchanged. Otherwise the attempt waits for the other
    /// answers, and asks every replica that does not hold it again a few ticks later in the same
    /// ballot (the interfering instances in flight usually commit by then); the stall timer
    /// starts a fresh attempt at a higher ballot if the recovery gives up.
    pub(crate) fn handle_try_pre_accept_nack(
        &mut self,
        from: ReplicaId,
        id: InstanceId,
        ballot: Ballot,
        committed: bool,
        excluded: &[ReplicaId],
    ) {
        if !self.recoveries.get(&id).is_some_and(|r| r.ballot == ballot && r.trying.is_some()) {
            return;
        }
        self.rule_out(id, excluded);
        if committed || self.fast_path_ruled_out(id) {
            self.rerun_after_try(id);
            return;
        }
        let Some(at) = self.config.index_of(from) else { return };
        if let Some(recovery) = self.recoveries.get_mut(&id) {
            recovery.refused |= 1 << at;
        }
        // Ask again soon, the refusers too: the instances they named are usually in flight and
        // commit within a round trip or two. (Waiting for the silent ones alone could mean
        // waiting on the dead.)
        if self.recoveries.get(&id).is_some_and(|r| r.try_again_in == 0) {
            self.try_again_soon(id);
        }
    }
}
