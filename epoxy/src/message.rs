//! Protocol messages (EPaxos, Moraru et al., SOSP'13, Figure 2 and section 4.3).

use crate::types::{Attributes, Ballot, Command, InstanceId, ReplicaId, Status};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1 from the command leader: "order these commands after what you know".
    PreAccept {
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
    },
    /// An acceptor's answer, with its attributes (the leader's, plus what it knew).
    PreAcceptOk {
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
    },
    /// Paxos-Accept of the union of the attributes, when the fast path was not taken.
    Accept {
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
    },
    AcceptOk {
        id: InstanceId,
        ballot: Ballot,
    },
    /// The decision. Carries the commands, so a replica that missed phase 1 can execute.
    Commit {
        id: InstanceId,
        attrs: Attributes,
        commands: Vec<Command>,
    },
    /// A replica blocked on instances it has not seen committed asks its peers for them.
    CommitRequest {
        ids: Vec<InstanceId>,
    },
    /// Periodic: the highest slot of the sender's own instances that it committed. A peer asks for
    /// the slots below it that it has not seen committed (a lost Commit, or a restart).
    ///
    /// `executed_up_to[i]`: every instance of the i-th replica (in `Config::replicas` order) up to
    /// this slot is executed at the sender, durably. An instance executed on every replica is
    /// forgotten (garbage-collected).
    Progress {
        committed_up_to: u64,
        executed_up_to: Vec<u64>,
    },
    /// Recovery, phase 1 (EPaxos §4.4 "Explicit Prepare"): promise `ballot` and report what you
    /// hold for the instance.
    Prepare {
        id: InstanceId,
        ballot: Ballot,
    },
    PrepareOk {
        id: InstanceId,
        ballot: Ballot,
        state: Vote,
    },
    /// Recovery of a possibly fast-committed instance (EPaxos tech report §4.4, TryPreAccept):
    /// pre-accept exactly these attributes, unless you know an interfering instance they miss.
    /// `holders`: replicas other than the leader known to the recoverer to hold these attributes
    /// as their pre-accepted vote. Each ordered its own later instances on the keys after `id`
    /// (see `Replica::conflicts`), so theirs never refuse the proposal.
    TryPreAccept {
        id: InstanceId,
        ballot: Ballot,
        attrs: Attributes,
        commands: Vec<Command>,
        holders: Vec<ReplicaId>,
    },
    TryPreAcceptOk {
        id: InstanceId,
        ballot: Ballot,
    },
    /// `conflict` interferes and is not in the proposed deps. `committed`: an interfering instance
    /// the proposal misses is committed at the sender without depending on `id` (so `id` did not
    /// commit on the fast path). `excluded`: command leaders of interfering instances whose
    /// ballot-0 proposal (held unchanged by the sender) neither covers `id` nor is covered by it:
    /// each proposed before it saw `id`, so it cannot have pre-accepted `id` unchanged.
    TryPreAcceptNack {
        id: InstanceId,
        ballot: Ballot,
        conflict: InstanceId,
        committed: bool,
        excluded: Vec<ReplicaId>,
    },
    /// `ballot` is below what the sender promised for the instance.
    Nack {
        id: InstanceId,
        promised: Ballot,
    },
    /// Reconfiguration (see [`crate::seal`]): stop voting on instances of this epoch the receiver
    /// has no record of, and report, per command leader, the highest slot it holds a record of.
    Seal {
        epoch: u64,
    },
    /// The receiver is sealed (durably): it votes on no slot above `bounds` (per replica, in
    /// replica order) in this epoch.
    SealOk {
        epoch: u64,
        bounds: Vec<(ReplicaId, u64)>,
    },
    /// From the leader of `id` to a replica that answered it: a resend brought no quorum, so
    /// recover `id` now rather than after the stall timeout (the receiver may reach a quorum the
    /// leader cannot, as in a majorities-ring partition).
    TakeOver {
        id: InstanceId,
    },
}

/// What an acceptor holds for an instance, as reported to a recoverer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub status: Status,
    /// The ballot in which `attrs` were last voted for (EPaxos*: not the promised ballot).
    pub accepted_ballot: Ballot,
    pub attrs: Attributes,
    pub commands: Vec<Command>,
    /// The attributes are exactly those the command leader proposed in ballot 0 (or were
    /// installed verbatim by TryPreAccept): such votes count towards a possible fast quorum.
    pub matches_proposal: bool,
    /// The sender is the command leader and knows it did not commit the instance in ballot 0, and
    /// never will: it still leads it in ballot 0 (and has just promised a higher ballot), or it
    /// stopped leading without committing and remembers every write it made since it proposed
    /// (a leader sends a Commit only after its own commit is written). Then no fast-path commit
    /// happened.
    pub leader_never_committed: bool,
}

impl Vote {
    /// The vote of a replica that holds nothing for an instance of `leader`.
    pub fn none(leader: ReplicaId) -> Self {
        Vote {
            status: Status::None,
            accepted_ballot: Ballot::initial(leader),
            attrs: Attributes::default(),
            commands: Vec::new(),
            matches_proposal: false,
            leader_never_committed: false,
        }
    }
}

impl Message {
    pub fn name(&self) -> &'static str {
        match self {
            Message::PreAccept { .. } => "pre_accept",
            Message::PreAcceptOk { .. } => "pre_accept_ok",
            Message::Accept { .. } => "accept",
            Message::AcceptOk { .. } => "accept_ok",
            Message::Commit { .. } => "commit",
            Message::CommitRequest { .. } => "commit_request",
            Message::Progress { .. } => "progress",
            Message::Prepare { .. } => "prepare",
            Message::PrepareOk { .. } => "prepare_ok",
            Message::TryPreAccept { .. } => "try_pre_accept",
            Message::TryPreAcceptOk { .. } => "try_pre_accept_ok",
            Message::TryPreAcceptNack { .. } => "try_pre_accept_nack",
            Message::Nack { .. } => "nack",
            Message::Seal { .. } => "seal",
            Message::TakeOver { .. } => "take_over",
            Message::SealOk { .. } => "seal_ok",
        }
    }
}
