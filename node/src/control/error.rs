//! [`ControlError`]: what can go wrong in the control plane, whether retrying helps, and what to do.

use std::time::Duration;

use mortar_storage::StorageError;

/// A control-plane call that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// No leader took the command within the bounded retries (an election did not finish, or the
    /// leader it named could not be reached). The command was not applied.
    #[error(
        "no control-plane leader was reachable in {attempts} attempts over {waited:?}: check that a majority of \
         the voters run and reach each other on their gRPC ports, then retry"
    )]
    NoLeader { attempts: u32, waited: Duration },
    /// Membership changes are made on the leader; this node is not it.
    #[error(
        "node {me} is not the control-plane leader (the leader is {}): make membership changes on the leader",
        leader_text(.leader, .address)
    )]
    NotLeader { me: u64, leader: Option<u64>, address: Option<String> },
    /// The command reached a leader, but no answer came back: it may or may not be applied.
    #[error(
        "the control-plane command may or may not have been applied ({reason}): read the state to see whether \
         it was before writing it again"
    )]
    OutcomeUnknown { reason: String },
    /// A command above [`super::COMMAND_BYTES_MAX`].
    #[error(
        "control-plane command of {bytes} bytes exceeds the limit of {max} bytes: keep bulk data out of the control plane"
    )]
    CommandTooLarge { bytes: usize, max: usize },
    /// Raft refused a membership change.
    #[error("control-plane membership change refused: {reason}")]
    Membership { reason: String, retryable: bool },
    /// A configuration or argument that can never work (bad address, timeouts, voter set).
    #[error("invalid control-plane configuration: {reason}")]
    InvalidConfig { reason: String },
    /// This node's Raft has stopped: shut down, or a storage failure stopped it.
    #[error(
        "the control plane of this node has stopped ({reason}): restart the node; it resumes from its storage"
    )]
    Stopped { reason: String },
    /// Reading the control plane's state from storage at start failed.
    #[error("control-plane storage: {0}")]
    Storage(#[from] StorageError),
}

fn leader_text(leader: &Option<u64>, address: &Option<String>) -> String {
    match (leader, address) {
        (Some(leader), Some(address)) => format!("node {leader} at {address}"),
        (Some(leader), None) => format!("node {leader}"),
        (None, _) => "not known yet".to_string(),
    }
}

impl ControlError {
    /// Whether the same call may succeed if made again (after a short wait).
    pub fn is_retryable(&self) -> bool {
        match self {
            ControlError::NoLeader { .. } | ControlError::NotLeader { .. } => true,
            ControlError::Membership { retryable, .. } => *retryable,
            ControlError::Storage(e) => e.is_retryable(),
            // Retrying could apply the command twice: read first.
            ControlError::OutcomeUnknown { .. }
            | ControlError::CommandTooLarge { .. }
            | ControlError::InvalidConfig { .. }
            | ControlError::Stopped { .. } => false,
        }
    }
}
