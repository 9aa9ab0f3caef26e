//! Protocol messages (EPaxos, Moraru et al., SOSP'13, Figure 2 and section 4.3).

use crate::types::{Attributes, Ballot, Command, InstanceId};
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
    Progress {
        committed_up_to: u64,
    },
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
        }
    }
}
