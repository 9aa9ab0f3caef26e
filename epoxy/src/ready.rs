//! The output of the state machine, performed by one driver (see the crate docs for the order).

use crate::message::Message;
use crate::record::Record;
use crate::types::{Command, InstanceId, ReplicaId, Status};

/// A message for one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub to: ReplicaId,
    pub message: Message,
}

/// An executed instance: its commands, to apply in this order, after every earlier `Executed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    pub id: InstanceId,
    pub commands: Vec<Command>,
}

/// Ask the driver to read the committed record of `id` from storage and send it to `to` as a
/// `Message::Commit` (the instance was executed and dropped from memory; a peer asked for it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadRequest {
    pub to: ReplicaId,
    pub id: InstanceId,
}

/// Everything one round of input produced. A driver performs it in this order:
/// 1. send `messages` (they promise nothing about this replica's disk);
/// 2. write `persist` in one atomic write batch, together with the effects of `executed` and a
///    mark that each of them is executed, and sync it;
/// 3. send `messages_after_persist` (they promise durability);
/// 4. answer clients whose commands are in `executed`;
/// 5. serve `load_requests`.
///
/// and only then feeds the replica more input: a command leader counts its own vote only because
/// its vote was persisted before any reply to it can be handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub messages: Vec<Outbound>,
    pub persist: Vec<Record>,
    pub messages_after_persist: Vec<Outbound>,
    pub executed: Vec<Executed>,
    pub load_requests: Vec<LoadRequest>,
    /// This replica drove a seal (see [`crate::seal`]) and a majority answered: the cut to have
    /// the control plane commit with the next epoch's members.
    pub cut: Option<crate::seal::Cut>,
    /// Own instances that will never execute (above the cut of a sealed epoch): their clients may
    /// retry in the next epoch.
    pub dropped: Vec<InstanceId>,
    /// A peer spoke in a newer epoch than this replica's: learn it from the control plane.
    pub newer_epoch: Option<u64>,
}

impl Ready {
    /// Whether `persist` must be synced before `messages_after_persist` leave and clients hear of
    /// `executed`: true when it holds a vote, a promise, a slot reservation or what a restart
    /// learnt (`OwnCommitsKnownFrom`). A round that only
    /// records commits (and the driver's applied data) needs no sync: a committed value is locked
    /// in by durable votes on a quorum, recovery re-derives it after any crash, and a later synced
    /// write makes every earlier write durable in order.
    pub fn needs_sync(&self) -> bool {
        self.persist.iter().any(|r| match r {
            Record::Instance(i) => i.status != Status::Committed,
            Record::SlotReservation(_)
            | Record::Checkpoint
            | Record::OwnCommitsKnownFrom(_)
            | Record::Seal { .. }
            | Record::Cut(_) => true,
            Record::Key { .. } | Record::ForgetKey { .. } | Record::Forget { .. } => false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.persist.is_empty()
            && self.messages_after_persist.is_empty()
            && self.executed.is_empty()
            && self.load_requests.is_empty()
            && self.cut.is_none()
            && self.dropped.is_empty()
            && self.newer_epoch.is_none()
    }
}
