//! Recovery of an instance whose command leader may have failed: decide what to propose from the
//! votes a recoverer collected with its Prepare (EPaxos, Moraru et al. SOSP'13 §4.4 and Figure 3,
//! "Explicit Prepare"; the tech report CMU-PDL-13-111 §4.4 for TryPreAccept), with the fix of
//! EPaxos* (Ryabinin, Gotsman, Sutra, OPODIS'25, and Sutra's counterexample): accepted votes are
//! compared by the ballot they were cast in (`accepted_ballot`), never by the promised ballot.
//!
//! Only the command leader ever uses ballot 0, and only ballot 0 has a fast path. Whatever a
//! recoverer decides goes through Accept (or PreAccept then Accept) at its own, higher ballot.

use crate::config::Config;
use crate::message::Vote;
use crate::types::{Attributes, Ballot, Command, ReplicaId, Status};
use std::collections::BTreeMap;

/// What a recoverer does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Fewer votes than a majority: wait for more.
    Wait,
    /// Figure 3 step 3: some replica holds a commit; commit the same.
    Commit { attrs: Attributes, commands: Vec<Command> },
    /// Figure 3 step 4, EPaxos* ballots: run Accept on the vote accepted in the highest ballot. Also
    /// the fast-path case once a whole fast quorum is known to hold the leader's proposal.
    Accept { attrs: Attributes, commands: Vec<Command> },
    /// Tech report §4.4 (step 5 of optimized EPaxos): the leader's proposal may have committed on
    /// the fast path; try to have more replicas pre-accept exactly it.
    TryPreAccept { attrs: Attributes, commands: Vec<Command> },
    /// Figure 3 step 6: no fast-path commit can have happened; run phase 1 again for the commands at
    /// the new ballot, never taking the fast path.
    Rerun { base: Attributes, commands: Vec<Command> },
    /// Figure 3 step 7: no replica in the quorum holds the commands; commit a no-op.
    NoOp,
}

/// Decides from the votes of the replicas that promised the recoverer's ballot (its own included).
pub fn decide(config: &Config, leader: ReplicaId, votes: &BTreeMap<ReplicaId, Vote>) -> Decision {
    decide_ruling_out(config, leader, votes, 0)
}

/// [`decide`], knowing that the replicas in `ruled_out` (a bitmask by position in
/// `config.replicas`), which did not vote, cannot have pre-accepted the leader's proposal unchanged
/// (what TryPreAccept refusals teach).
pub fn decide_ruling_out(
    config: &Config,
    leader: ReplicaId,
    votes: &BTreeMap<ReplicaId, Vote>,
    ruled_out: u64,
) -> Decision {
    if votes.len() < config.slow_quorum() {
        return Decision::Wait;
    }
    if let Some(v) = votes.values().find(|v| v.status == Status::Committed) {
        return Decision::Commit { attrs: v.attrs.clone(), commands: v.commands.clone() };
    }
    if let Some(v) = votes.values().filter(|v| v.status == Status::Accepted).max_by_key(|v| v.accepted_ballot)
    {
        return Decision::Accept { attrs: v.attrs.clone(), commands: v.commands.clone() };
    }
    let pre_accepted: Vec<&Vote> = votes.values().filter(|v| v.status == Status::PreAccepted).collect();
    let Some(first) = pre_accepted.first() else { return Decision::NoOp };
    let commands = first.commands.clone();
    let mut base = Attributes::default();
    for v in &pre_accepted {
        base.union(&v.attrs);
    }
    let rerun = Decision::Rerun { base, commands: commands.clone() };
    // The leader did not commit in ballot 0 and never will (it still led and promised our ballot,
    // or it stopped leading and remembers it did not commit), so no fast-path commit happened
    // ("none of them is the leader", step 5).
    if votes.get(&leader).is_some_and(|v| v.leader_never_committed) {
        return rerun;
    }
    // The leader lost its own vote: it never counted itself, so it never committed.
    if votes.get(&leader).is_some_and(|v| v.status == Status::None) {
        return rerun;
    }
    // An earlier recoverer already ran phase 1 again: it had ruled the fast path out.
    if pre_accepted.iter().any(|v| !v.matches_proposal && v.accepted_ballot != Ballot::initial(leader)) {
        return rerun;
    }
    let proposal = votes.values().find(|v| v.status == Status::PreAccepted && v.matches_proposal);
    let Some(proposal) = proposal else { return rerun };
    let matched = votes
        .iter()
        .filter(|(r, v)| **r != leader && v.status == Status::PreAccepted && v.matches_proposal)
        .inspect(|(_, v)| {
            debug_assert_eq!(v.attrs, proposal.attrs, "two different proposals for one instance")
        })
        .count();
    // Replicas without a vote that may hold the proposal unchanged.
    let unknown = (config.replicas.iter().enumerate())
        .filter(|(at, r)| **r != leader && !votes.contains_key(r) && ruled_out & (1 << at) == 0)
        .count();
    // A fast quorum is the leader and `need` others that pre-accepted its proposal unchanged.
    let need = config.fast_quorum() - 1;
    if matched >= need {
        Decision::Accept { attrs: proposal.attrs.clone(), commands: proposal.commands.clone() }
    } else if matched + unknown < need {
        rerun
    } else {
        Decision::TryPreAccept { attrs: proposal.attrs.clone(), commands: proposal.commands.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::InstanceId;

    const L: ReplicaId = ReplicaId(1);

    fn config(n: u32) -> Config {
        Config::new(ReplicaId(2), (1..=n).map(ReplicaId).collect()).unwrap()
    }

    fn cmds() -> Vec<Command> {
        vec![Command::new("k", "v")]
    }

    fn proposal() -> Attributes {
        Attributes { seq: 1, deps: vec![] }
    }

    fn vote(status: Status, ballot: Ballot, attrs: Attributes, matches: bool) -> Vote {
        Vote {
            status,
            accepted_ballot: ballot,
            attrs,
            commands: if status == Status::None { vec![] } else { cmds() },
            matches_proposal: matches,
            leader_never_committed: false,
        }
    }

    fn b0() -> Ballot {
        Ballot::initial(L)
    }

    fn matched() -> Vote {
        vote(Status::PreAccepted, b0(), proposal(), true)
    }

    fn changed() -> Vote {
        vote(Status::PreAccepted, b0(), Attributes { seq: 2, deps: vec![InstanceId::new(3, 1)] }, false)
    }

    fn none() -> Vote {
        vote(Status::None, b0(), Attributes::default(), false)
    }

    fn votes(list: &[(u32, Vote)]) -> BTreeMap<ReplicaId, Vote> {
        list.iter().map(|(r, v)| (ReplicaId(*r), v.clone())).collect()
    }

    #[test]
    fn waits_for_a_majority() {
        assert_eq!(decide(&config(5), L, &votes(&[(2, matched()), (3, matched())])), Decision::Wait);
    }

    #[test]
    fn a_commit_wins() {
        let c = vote(Status::Committed, b0(), proposal(), true);
        let d = decide(&config(3), L, &votes(&[(2, changed()), (3, c)]));
        assert_eq!(d, Decision::Commit { attrs: proposal(), commands: cmds() });
    }

    #[test]
    fn highest_accepted_ballot_wins_not_highest_promise() {
        let old = vote(Status::Accepted, b0(), proposal(), false);
        let newer_attrs = Attributes { seq: 9, deps: vec![] };
        let newer =
            vote(Status::Accepted, Ballot { round: 2, replica: ReplicaId(4) }, newer_attrs.clone(), false);
        let d = decide(&config(5), L, &votes(&[(2, old), (3, none()), (4, newer)]));
        assert_eq!(d, Decision::Accept { attrs: newer_attrs, commands: cmds() });
    }

    #[test]
    fn nothing_known_commits_a_no_op() {
        assert_eq!(decide(&config(3), L, &votes(&[(2, none()), (3, none())])), Decision::NoOp);
    }

    #[test]
    fn replicas_ruled_out_can_leave_too_few_for_a_fast_quorum() {
        // N = 5, fast quorum 3: the leader, one matched acceptor, and maybe replica 5 (no vote).
        let v = votes(&[(2, matched()), (3, changed()), (4, none())]);
        let d = decide(&config(5), L, &v);
        assert_eq!(d, Decision::TryPreAccept { attrs: proposal(), commands: cmds() });
        let five = 1 << 4;
        let d = decide_ruling_out(&config(5), L, &v, five);
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
    }

    #[test]
    fn a_live_leader_rules_out_the_fast_path() {
        let mut leader = matched();
        leader.leader_never_committed = true;
        let d = decide(&config(3), L, &votes(&[(1, leader), (2, matched())]));
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
    }

    #[test]
    fn n3_one_matched_acceptor_is_a_possible_fast_quorum() {
        // Fast quorum of 3 is 2: the leader and one acceptor.
        let d = decide(&config(3), L, &votes(&[(2, matched()), (3, changed())]));
        assert_eq!(d, Decision::Accept { attrs: proposal(), commands: cmds() });
        let d = decide(&config(3), L, &votes(&[(2, changed()), (3, changed())]));
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
    }

    #[test]
    fn n7_needs_four_matched_acceptors_or_tries() {
        let c = config(7);
        // Fast quorum 5 = leader + 4; with 2 matched of 4 voters and 2 unknown, it may have happened.
        let d = decide(&c, L, &votes(&[(2, matched()), (3, matched()), (4, changed()), (5, none())]));
        assert_eq!(d, Decision::TryPreAccept { attrs: proposal(), commands: cmds() });
        // With only one unknown left, it cannot have.
        let d = decide(
            &c,
            L,
            &votes(&[(2, matched()), (3, matched()), (4, changed()), (5, none()), (6, none())]),
        );
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
        let four = votes(&[(2, matched()), (3, matched()), (4, matched()), (5, matched())]);
        assert_eq!(decide(&c, L, &four), Decision::Accept { attrs: proposal(), commands: cmds() });
    }

    #[test]
    fn an_earlier_rerun_rules_out_the_fast_path() {
        let rerun_vote =
            vote(Status::PreAccepted, Ballot { round: 1, replica: ReplicaId(3) }, proposal(), false);
        let d = decide(&config(3), L, &votes(&[(2, matched()), (3, rerun_vote)]));
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
    }

    #[test]
    fn a_leader_without_its_vote_never_committed() {
        let d = decide(&config(3), L, &votes(&[(1, none()), (2, matched())]));
        assert!(matches!(d, Decision::Rerun { .. }), "{d:?}");
    }
}
