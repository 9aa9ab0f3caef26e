//! The control plane's state machine in the node: the cluster metadata of
//! `mortar_placement::control`, applied to the log the control plane replicates, published to
//! the rest of the node on a watch channel, and the typed way to change it.

use crate::control::{ControlError, ControlPlane, ControlStateMachine};
use mortar_placement::control::{ClusterMetadata, Command, Outcome, Refusal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;

/// What one applied command answered, as the reply bytes carry it.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Applied(Result<Outcome, Refusal>),
    /// The log entry did not decode: every replica applies nothing for it, alike.
    Undecodable(String),
}

/// [`ClusterMetadata`] as the control plane's state machine.
pub struct MetadataMachine {
    metadata: ClusterMetadata,
    published: watch::Sender<Arc<ClusterMetadata>>,
}

impl MetadataMachine {
    /// An empty machine, and the channel that shows its state after every applied command.
    pub fn new() -> (Self, watch::Receiver<Arc<ClusterMetadata>>) {
        let metadata = ClusterMetadata::new();
        let (published, receiver) = watch::channel(Arc::new(metadata.clone()));
        (Self { metadata, published }, receiver)
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.metadata.clone()));
    }
}

impl ControlStateMachine for MetadataMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let reply = match Command::decode(command) {
            Ok(command) => Reply::Applied(self.metadata.apply(index, &command)),
            Err(e) => Reply::Undecodable(e.to_string()),
        };
        self.publish();
        postcard::to_stdvec(&reply).expect("encoding into a Vec cannot fail")
    }

    fn snapshot(&self) -> Vec<u8> {
        self.metadata.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.metadata = ClusterMetadata::restore(snapshot).map_err(|e| e.to_string())?;
        self.publish();
        Ok(())
    }
}

/// Why a metadata change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The metadata refused it: nothing changed, and the message says why and what to do.
    #[error("{0}")]
    Refused(Refusal),
    /// The control plane could not commit it (no leader reachable, say).
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("the control plane answered what this node cannot read: {0}")]
    Reply(String),
}

/// Commits `command` through the control plane and returns what the metadata answered.
pub async fn change(
    control: &ControlPlane<MetadataMachine>,
    command: &Command,
) -> Result<Outcome, ChangeError> {
    let reply = control.write(command.encode()).await?;
    match postcard::from_bytes::<Reply>(&reply) {
        Ok(Reply::Applied(Ok(outcome))) => Ok(outcome),
        Ok(Reply::Applied(Err(refusal))) => Err(ChangeError::Refused(refusal)),
        Ok(Reply::Undecodable(reason)) => Err(ChangeError::Reply(reason)),
        Err(e) => Err(ChangeError::Reply(e.to_string())),
    }
}
