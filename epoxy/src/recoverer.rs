//! The recoverer's side of recovery: promise a higher ballot to itself and ask every peer
//! (Prepare), decide with [`crate::recovery::decide`], and carry the decision out at that ballot.
//! Every message a recoverer sends leaves after its own promise and vote are durable.

use crate::message::Message;
use crate::ready::Outbound;
use crate::recovery::{Decision, decide, decide_ruling_out};
use crate::replica::{Instance, Lead, Phase, Recovery, Replica, record_of};
use crate::try_outcome::TryOutcome;
use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use std::collections::BTreeMap;

/// Ticks a refused TryPreAccept waits before it is asked again (the instances in flight that
/// refused it usually commit within a round trip or two).
const TRY_AGAIN_TICKS: u32 = 3;

impl Replica {
    /// Starts recovering an instance this replica does not lead and has not seen committed.
    pub(crate) fn start_recovery(&mut self, id: InstanceId) {
        if self.executor.is_executed(id) || self.leading.contains(&id) || self.recoveries.contains_key(&id) {
            return;
        }
        if self.instances.get(&id).is_some_and(|i| i.status == Status::Committed) {
            return;
        }
        if self.above_vote_limit(id) {
            self.stalled.remove(&id); // sealed: this replica may not vote on it (see crate::seal)
            return;
        }
        let current = self.instances.get(&id).map_or(0, |i| i.ballot.round);
        let floor = self.min_round.get(&id).copied().unwrap_or(0);
        let ballot = Ballot { round: (current + 1).max(floor), replica: self.config.id };
        let vote = self.vote_of(id);
        let instance = self.instances.entry(id).or_insert_with(|| Instance::promise_only(ballot, id.replica));
        instance.ballot = ballot;
        let record = record_of(id, instance);
        self.ready.persist.push(record);
        self.counters.recoveries_started += 1;
        let mut votes = BTreeMap::new();
        votes.insert(self.config.id, vote);
        self.recoveries.insert(
            id,
            Recovery {
                ballot,
                votes,
                trying: None,
                holding: 0,
                refused: 0,
                ruled_out: 0,
                ticks: 0,
                try_again_in: 0,
            },
        );
        for &peer in &self.config.replicas {
            if peer != self.config.id {
                let prepare = Message::Prepare { id, ballot };
                self.ready.messages_after_persist.push(Outbound { to: peer, message: prepare });
            }
        }
        self.decide_recovery(id);
    }

    /// Whether this replica's recovery of `id` still holds the ballot it promised itself. A replica
    /// that has since promised a higher ballot (to another recoverer) drops its recovery: acting
    /// on it would vote in a ballot below its promise, and two recoverers could then get two
    /// different values accepted by majorities.
    pub(crate) fn recovery_is_current(&mut self, id: InstanceId) -> bool {
        let Some(recovery) = self.recoveries.get(&id) else { return false };
        if self.instances.get(&id).is_some_and(|i| i.ballot > recovery.ballot) {
            self.recoveries.remove(&id);
            self.watch_stall(id);
            return false;
        }
        true
    }

    pub(crate) fn decide_recovery(&mut self, id: InstanceId) {
        if !self.recovery_is_current(id) {
            return;
        }
        let Some(recovery) = self.recoveries.get(&id) else { return };
        if recovery.trying.is_some() {
            return;
        }
        match decide(&self.config, id.replica, &recovery.votes) {
            Decision::Wait => {}
            Decision::Commit { attrs, commands } => {
                self.counters.recovered_commit += 1;
                self.recoveries.remove(&id);
                self.handle_commit(id, attrs.clone(), commands.clone());
                for &peer in &self.config.replicas {
                    if peer != self.config.id {
                        let commit = Message::Commit { id, attrs: attrs.clone(), commands: commands.clone() };
                        self.ready.messages_after_persist.push(Outbound { to: peer, message: commit });
                    }
                }
            }
            Decision::Accept { attrs, commands } => {
                self.counters.recovered_accept += 1;
                self.recovery_accept(id, attrs, commands);
            }
            Decision::NoOp => {
                self.counters.recovered_no_op += 1;
                self.recovery_accept(id, Attributes::default(), Vec::new());
            }
            Decision::Rerun { base, commands } => {
                self.counters.recovered_rerun += 1;
                self.recovery_rerun(id, base, commands);
            }
            Decision::TryPreAccept { attrs, commands } => {
                self.counters.recovered_try_pre_accept += 1;
                self.recovery_try(id, attrs, commands);
            }
        }
    }

    /// Paxos-Accept of the decided attributes at the recoverer's ballot, then commit as a leader.
    fn recovery_accept(&mut self, id: InstanceId, attrs: Attributes, commands: Vec<Command>) {
        self.take_over(id, Status::Accepted, Phase::Accept, attrs, commands);
        if self.config.slow_quorum() == 1 {
            self.commit(id, false);
        }
    }

    /// Phase 1 again at the recoverer's ballot, never on the fast path.
    fn recovery_rerun(&mut self, id: InstanceId, base: Attributes, commands: Vec<Command>) {
        let mut attrs = base;
        self.merge_local_attrs(id, &commands, &mut attrs);
        self.take_over(id, Status::PreAccepted, Phase::PreAccept, attrs, commands);
        self.check_pre_accept_quorum(id);
    }

    /// Leads the instance from here on at the recovery's ballot, in `phase` (never the fast path),
    /// with this replica's own vote recorded, and sends the phase once that vote is durable.
    fn take_over(
        &mut self,
        id: InstanceId,
        status: Status,
        phase: Phase,
        attrs: Attributes,
        commands: Vec<Command>,
    ) {
        let ballot = self.recoveries.remove(&id).expect("recovering").ballot;
        self.stalled.remove(&id);
        self.observe_keys(id, &commands, attrs.seq);
        let lead = Lead {
            phase,
            original: attrs.clone(),
            replied: self.me_bit,
            all_equal: false,
            ticks: 0,
            resends: 0,
            asked_on_reply: false,
        };
        let instance = Instance {
            ballot,
            accepted_ballot: ballot,
            status,
            attrs,
            commands,
            matches_proposal: false,
            lead: Some(Box::new(lead)),
        };
        self.ready.persist.push(record_of(id, &instance));
        self.instances.insert(id, instance);
        self.leading.insert(id);
        self.counters.in_flight = self.leading.len() as u64;
        self.broadcast_phase(id, None, true);
    }

    /// Asks the replicas that do not hold the leader's proposal to pre-accept it verbatim.
    fn recovery_try(&mut self, id: InstanceId, attrs: Attributes, commands: Vec<Command>) {
        let leader = id.replica;
        let mut holding = 0u64;
        let recovery = self.recoveries.get(&id).expect("recovering");
        for (r, v) in &recovery.votes {
            if *r != leader && v.status == Status::PreAccepted && v.matches_proposal {
                holding |= 1 << self.config.index_of(*r).expect("member");
            }
        }
        let recovery = self.recoveries.get_mut(&id).expect("recovering");
        recovery.trying = Some((attrs, commands));
        recovery.holding = holding;
        self.try_here_then_ask(id, true);
    }

    /// One attempt of the TryPreAccept in progress: this replica pre-accepts the proposal itself
    /// when it can; then it is accepted if enough hold it, or asked of the others that may.
    fn try_here_then_ask(&mut self, id: InstanceId, after_persist: bool) {
        let Some(recovery) = self.recoveries.get(&id) else { return };
        let Some((attrs, commands)) = recovery.trying.clone() else { return };
        if self.config.id != id.replica && recovery.holding & self.me_bit == 0 {
            let (ballot, holders) = (recovery.ballot, self.replicas_in(recovery.holding));
            match self.try_pre_accept_here(id, ballot, attrs, commands, &holders) {
                TryOutcome::Ok => self.recoveries.get_mut(&id).expect("recovering").holding |= self.me_bit,
                TryOutcome::Conflict { committed, excluded, .. } => {
                    self.rule_out(id, &excluded);
                    if committed || self.fast_path_ruled_out(id) {
                        self.rerun_after_try(id);
                        return;
                    }
                    self.recoveries.get_mut(&id).expect("recovering").refused |= self.me_bit;
                }
            }
        }
        if self.check_trying(id) {
            return;
        }
        if self.try_may_succeed(id) {
            self.send_try(id, after_persist);
        } else {
            self.try_again_soon(id);
        }
    }

    /// A replica refused the proposal for instances in flight (or every one that could hold it
    /// did): ask those that do not hold it again in a few ticks, in the same ballot.
    pub(crate) fn try_again_soon(&mut self, id: InstanceId) {
        if let Some(recovery) = self.recoveries.get_mut(&id) {
            recovery.try_again_in = TRY_AGAIN_TICKS;
        }
    }

    /// The pause of [`Self::try_again_soon`] is over.
    pub(crate) fn try_again(&mut self, id: InstanceId) {
        if !self.recovery_is_current(id) {
            return;
        }
        if let Some(recovery) = self.recoveries.get_mut(&id) {
            recovery.refused = 0;
        }
        self.try_here_then_ask(id, false);
    }

    /// The fast path is ruled out: run phase 1 again at this recovery's ballot, from the union of
    /// the pre-accepted votes (as [`Decision::Rerun`]).
    pub(crate) fn rerun_recovery(&mut self, id: InstanceId, commands: Vec<Command>) {
        if !self.recovery_is_current(id) {
            return;
        }
        let Some(recovery) = self.recoveries.get(&id) else { return };
        let mut base = Attributes::default();
        for vote in recovery.votes.values().filter(|v| v.status == Status::PreAccepted) {
            base.union(&vote.attrs);
        }
        self.counters.recovered_rerun += 1;
        self.recovery_rerun(id, base, commands);
    }

    /// [`Self::rerun_recovery`] of the proposal being tried.
    pub(crate) fn rerun_after_try(&mut self, id: InstanceId) {
        let Some(commands) = self.recoveries.get_mut(&id).and_then(|r| r.trying.take()).map(|t| t.1) else {
            return;
        };
        self.rerun_recovery(id, commands);
    }

    /// The replicas of a bitmask by position in the configuration.
    fn replicas_in(&self, bits: u64) -> Vec<ReplicaId> {
        (self.config.replicas.iter().enumerate())
            .filter(|(at, _)| bits & (1 << at) != 0)
            .map(|(_, r)| *r)
            .collect()
    }

    /// Notes replicas that cannot have pre-accepted the leader's proposal unchanged.
    pub(crate) fn rule_out(&mut self, id: InstanceId, replicas: &[ReplicaId]) {
        let bits: u64 = replicas.iter().filter_map(|r| self.config.index_of(*r)).map(|at| 1u64 << at).sum();
        if let Some(recovery) = self.recoveries.get_mut(&id) {
            recovery.ruled_out |= bits;
        }
    }

    /// Whether, with what TryPreAccept refusals taught, too few replicas can have pre-accepted the
    /// leader's proposal unchanged for it to have committed on the fast path.
    pub(crate) fn fast_path_ruled_out(&self, id: InstanceId) -> bool {
        let Some(recovery) = self.recoveries.get(&id) else { return false };
        matches!(
            decide_ruling_out(&self.config, id.replica, &recovery.votes, recovery.ruled_out),
            Decision::Rerun { .. }
        )
    }

    /// Whether enough replicas may still come to hold the proposal for TryPreAccept to succeed.
    pub(crate) fn try_may_succeed(&self, id: InstanceId) -> bool {
        let Some(recovery) = self.recoveries.get(&id) else { return false };
        let possible = (self.config.replicas.iter().enumerate())
            .filter(|(at, r)| {
                let bit = 1u64 << at;
                **r != id.replica
                    && (recovery.holding & bit != 0 || (recovery.refused & bit == 0 && **r != self.config.id))
            })
            .count();
        possible >= self.config.fast_quorum() - 1
    }

    /// Accepts the proposal once the leader and enough others hold it; true when it did.
    pub(crate) fn check_trying(&mut self, id: InstanceId) -> bool {
        if !self.recovery_is_current(id) {
            return false;
        }
        let Some(recovery) = self.recoveries.get(&id) else { return false };
        if (recovery.holding.count_ones() as usize) < self.config.fast_quorum() - 1 {
            return false;
        }
        let (attrs, commands) = recovery.trying.clone().expect("trying");
        self.recovery_accept(id, attrs, commands);
        true
    }

    fn send_try(&mut self, id: InstanceId, after_persist: bool) {
        let recovery = &self.recoveries[&id];
        let (attrs, commands) = recovery.trying.as_ref().expect("trying");
        let holders = self.replicas_in(recovery.holding);
        for (at, &peer) in self.config.replicas.iter().enumerate() {
            if peer == self.config.id || peer == id.replica || recovery.holding & (1 << at) != 0 {
                continue;
            }
            let message = Message::TryPreAccept {
                id,
                ballot: recovery.ballot,
                attrs: attrs.clone(),
                commands: commands.clone(),
                holders: holders.clone(),
            };
            let out = Outbound { to: peer, message };
            if after_persist {
                self.ready.messages_after_persist.push(out);
            } else {
                self.ready.messages.push(out);
            }
        }
    }

    /// Resends the current recovery phase to the replicas that have not answered.
    pub(crate) fn resend_recovery(&mut self, id: InstanceId) {
        if !self.recovery_is_current(id) {
            return;
        }
        let Some(recovery) = self.recoveries.get(&id) else { return };
        if recovery.trying.is_some() {
            self.send_try(id, false);
            return;
        }
        let ballot = recovery.ballot;
        let silent: Vec<_> = self
            .config
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != self.config.id && !recovery.votes.contains_key(r))
            .collect();
        for peer in silent {
            self.ready.messages.push(Outbound { to: peer, message: Message::Prepare { id, ballot } });
        }
    }
}
