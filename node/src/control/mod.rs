//! The control plane: one Raft group (openraft) whose state machine holds the cluster's metadata,
//! on the node's gRPC port and in the node's storage.
//!
//! This module keeps openraft behind its own types: nothing outside `control/` names an openraft
//! type, so the state machine (crate `mortar-placement`) sees only [`ControlStateMachine`], and
//! the node only [`ControlPlane`], [`ControlService`] and [`ControlError`].
//!
//! # Use
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use mortar_node::control::{ControlConfig, ControlPlane, ControlStateMachine};
//!
//! /// Remembers every command, in order.
//! #[derive(Default)]
//! struct Journal(Vec<Vec<u8>>);
//!
//! impl ControlStateMachine for Journal {
//!     fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
//!         self.0.push(command.to_vec());
//!         (self.0.len() as u64).to_be_bytes().to_vec()
//!     }
//!     fn snapshot(&self) -> Vec<u8> {
//!         postcard::to_allocvec(&self.0).expect("encode")
//!     }
//!     fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
//!         self.0 = postcard::from_bytes(snapshot).map_err(|e| e.to_string())?;
//!         Ok(())
//!     }
//! }
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = Arc::new(mortar_storage::MemStorage::new());
//! let config = ControlConfig::new(1, 0xc1, storage);
//! let (control, service) = ControlPlane::start(config, Journal::default()).await?;
//! // Serve `service` beside the node's other services, on the address given below.
//! let router = tonic::transport::Server::builder().add_service(service.into_server());
//! # drop(router);
//! control.initialize(BTreeMap::from([(1, "127.0.0.1:7000".to_string())])).await?;
//! let reply = control.write(b"hello".to_vec()).await?;
//! assert_eq!(reply, 1u64.to_be_bytes());
//! assert_eq!(control.read(|journal| journal.0.len()), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Membership
//!
//! A node joins as a learner ([`ControlPlane::add_learner`]), then the voters are replaced as a
//! whole ([`ControlPlane::change_voters`]). openraft passes through a joint configuration (old and
//! new voters must both agree) and then commits the new one; if the leader crashes between the
//! two, the group stays in the joint configuration until the change is made again: re-issue
//! `change_voters` with the same set after a leader change (it is idempotent).
//!
//! # Pinned version
//!
//! openraft is pinned to exactly `=0.9.25` (workspace `Cargo.toml`): before 1.0 any release may
//! change its API, and the stored log entries and vote are openraft's structs in postcard
//! (`wire.rs`), whose layout must not change under an existing data directory.

mod error;
mod log_store;
mod network;
mod service;
mod state_machine;
mod types;
mod wire;

#[cfg(test)]
mod cluster_test;
#[cfg(all(test, feature = "server"))]
mod log_store_test;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mortar_proto::internal::v1::ControlWriteRequest;
use mortar_proto::internal::v1::control_client::ControlClient;
use mortar_proto::internal::v1::control_write_reply::Outcome;
use mortar_storage::Storage;
use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use tonic::Code;
use tonic::transport::Channel;
use tracing::{debug, info};

pub use error::ControlError;
pub use service::{ControlServer, ControlService};

use log_store::LogStore;
use network::{Network, control_client, never_sent};
use state_machine::{Shared, StateMachineStore};
use types::{Command, NodeId, Raft};

/// The metadata state machine the control plane replicates: a deterministic function of the
/// committed commands, applied in log order on every node.
pub trait ControlStateMachine: Send + Sync + 'static {
    /// Applies one committed command (raft log index `index`); returns the reply bytes.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// The whole state, for a snapshot that [`ControlStateMachine::restore`] reads back.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's. On `Err` the state must be left as it was.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
}

/// Largest command [`ControlPlane::write`] takes: the control plane holds metadata, not data.
pub const COMMAND_BYTES_MAX: usize = 64 * 1024;
/// Most log entries in one AppendEntries message.
pub const APPEND_ENTRIES_MAX: u64 = 64;
/// Largest encoded Raft message this node sends; larger AppendEntries are split.
pub const RAFT_PAYLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of the state machine's snapshot sent in one InstallSnapshot message.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;
/// By default, a snapshot is built once this many entries were applied since the last one.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 1000;
/// By default, entries kept in the log behind the last snapshot, so that a follower a little behind catches up
/// from the log rather than by a snapshot.
pub const LOG_KEPT_AFTER_SNAPSHOT: u64 = 1000;
/// Attempts of [`ControlPlane::write`] to find a leader that takes the command.
pub const WRITE_ATTEMPTS_MAX: u32 = 40;
/// Attempts of a membership change while another one is still in progress (a new leader has
/// not committed the membership it inherited yet, or a joint configuration is being left).
pub const MEMBERSHIP_ATTEMPTS_MAX: u32 = 40;
/// Wait between two attempts of [`ControlPlane::write`]: a few attempts per election timeout.
pub const WRITE_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Encoding overhead of one entry beyond its command: log id, payload tag, lengths.
const ENTRY_OVERHEAD_BYTES: usize = 64;
const _: () = assert!(
    APPEND_ENTRIES_MAX as usize * (COMMAND_BYTES_MAX + ENTRY_OVERHEAD_BYTES) < RAFT_PAYLOAD_BYTES_MAX,
    "a full AppendEntries of the largest commands must fit a Raft message"
);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES as usize + ENTRY_OVERHEAD_BYTES < RAFT_PAYLOAD_BYTES_MAX);
// A Raft message plus the gRPC envelope (cluster, node ids) fits a gRPC message.
const _: () = assert!(RAFT_PAYLOAD_BYTES_MAX + 1024 < mortar_proto::GRPC_MESSAGE_BYTES_MAX);
const _: () = assert!(COMMAND_BYTES_MAX + 1024 < mortar_proto::GRPC_MESSAGE_BYTES_MAX);

/// How to start a node's control plane.
#[derive(Clone)]
pub struct ControlConfig {
    /// This node's id in the Raft group (the node id).
    pub id: u64,
    /// The cluster's id: requests from another cluster are refused.
    pub cluster_id: u64,
    /// The node's storage: the control plane keeps its log and snapshot in their own tables.
    pub storage: Arc<dyn Storage>,
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in `[min, max)` starts an election.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind the last snapshot.
    pub log_kept_after_snapshot: u64,
    /// How the node dials its peers' `Control` service (TLS or not).
    pub dialer: crate::tls::Dialer,
}

impl ControlConfig {
    /// Heartbeats every 500 ms, elections after 2 to 4 s of silence. openraft 0.9 gives each
    /// AppendEntries the heartbeat interval as its deadline, so the interval bounds the round
    /// trip the control plane works over: at 100 ms a link with 51 ms each way stopped it (a
    /// chaos run's latency window). Nothing on the data path waits for it, so slower failover of
    /// its leader costs only the latency of membership changes.
    pub fn new(id: u64, cluster_id: u64, storage: Arc<dyn Storage>) -> Self {
        Self {
            id,
            cluster_id,
            storage,
            heartbeat_interval: Duration::from_millis(500),
            election_timeout_min: Duration::from_millis(2000),
            election_timeout_max: Duration::from_millis(4000),
            snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES,
            log_kept_after_snapshot: LOG_KEPT_AFTER_SNAPSHOT,
            dialer: crate::tls::Dialer::plain(),
        }
    }

    fn raft_config(&self) -> Result<openraft::Config, ControlError> {
        let millis = |d: Duration| d.as_millis().try_into().unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: format!("{:016x}", self.cluster_id),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            // Wait for one snapshot chunk: a few milliseconds on a LAN, far less than this.
            install_snapshot_timeout: 2 * millis(self.election_timeout_max),
            max_payload_entries: APPEND_ENTRIES_MAX,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            max_in_snapshot_log_to_keep: self.log_kept_after_snapshot,
            ..Default::default()
        };
        config.validate().map_err(|e| ControlError::InvalidConfig { reason: e.to_string() })
    }
}

/// A node's role in the control plane's Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRole {
    Leader,
    Follower,
    Candidate,
    /// Receives the log but does not vote (or is not in any configuration yet).
    Learner,
    /// Shut down.
    Stopped,
}

/// What a node knows of the control plane's Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlStatus {
    pub id: u64,
    pub role: ControlRole,
    /// The leader this node knows of, if any.
    pub leader: Option<u64>,
    pub term: u64,
    /// Voters of the current configuration (of both halves while a joint one is in force).
    pub voters: BTreeSet<u64>,
    pub learners: BTreeSet<u64>,
    /// Every member's gRPC address.
    pub addresses: BTreeMap<u64, String>,
    /// Index of the last entry applied to the state machine.
    pub last_applied: Option<u64>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
}

pub(crate) fn status_of(metrics: &RaftMetrics<NodeId, BasicNode>) -> ControlStatus {
    let membership = metrics.membership_config.membership();
    let role = match metrics.state {
        ServerState::Leader => ControlRole::Leader,
        ServerState::Follower => ControlRole::Follower,
        ServerState::Candidate => ControlRole::Candidate,
        ServerState::Learner => ControlRole::Learner,
        ServerState::Shutdown => ControlRole::Stopped,
    };
    ControlStatus {
        id: metrics.id,
        role,
        leader: metrics.current_leader,
        term: metrics.current_term,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        addresses: membership.nodes().map(|(id, node)| (*id, node.addr.clone())).collect(),
        last_applied: metrics.last_applied.map(|id| id.index),
        last_log_index: metrics.last_log_index,
    }
}

/// A node's handle on the control plane. Cloning shares it.
pub struct ControlPlane<SM> {
    id: NodeId,
    cluster_id: u64,
    raft: Raft,
    applied: Shared<SM>,
    /// The client of the leader last forwarded to, reused while that node leads.
    leader_client: Arc<Mutex<Option<LeaderClient>>>,
    dialer: crate::tls::Dialer,
}

/// A client of the leader's `Control` service, known by the leader's id and address.
struct LeaderClient {
    id: NodeId,
    address: String,
    client: ControlClient<Channel>,
}

impl<SM> Clone for ControlPlane<SM> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            cluster_id: self.cluster_id,
            raft: self.raft.clone(),
            applied: self.applied.clone(),
            leader_client: self.leader_client.clone(),
            dialer: self.dialer.clone(),
        }
    }
}

/// What became of a command forwarded to the leader.
enum Forwarded {
    Applied(Vec<u8>),
    /// Not applied: the target does not lead, or the call never reached it.
    NotApplied,
}

impl<SM: ControlStateMachine> ControlPlane<SM> {
    /// Starts this node's Raft from what `config.storage` holds (nothing, for a new node), with
    /// `state_machine` restored from the last snapshot there and the committed log after it
    /// re-applied. Returns the handle and the gRPC service to serve on the node's port.
    pub async fn start(
        config: ControlConfig,
        state_machine: SM,
    ) -> Result<(Self, ControlService), ControlError> {
        let raft_config = Arc::new(config.raft_config()?);
        let log_store = LogStore::new(config.storage.clone());
        let state_machine = StateMachineStore::open(config.storage.clone(), state_machine)?;
        let applied = state_machine.shared();
        let network = Network { cluster_id: config.cluster_id, me: config.id, dialer: config.dialer.clone() };
        let raft = Raft::new(config.id, raft_config, network, log_store, state_machine)
            .await
            .map_err(|e| ControlError::Stopped { reason: format!("start raft: {e}") })?;
        info!(id = config.id, cluster = %format!("{:016x}", config.cluster_id), "control plane started");
        let service = ControlService::new(config.cluster_id, config.id, raft.clone());
        let plane = ControlPlane {
            id: config.id,
            cluster_id: config.cluster_id,
            raft,
            applied,
            leader_client: Arc::new(Mutex::new(None)),
            dialer: config.dialer,
        };
        Ok((plane, service))
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes a new group of `voters` (node id → gRPC address, this node among them). Safe to call
    /// on several of the voters with the same map. A node that already has a log or a vote keeps
    /// it and returns `Ok`: the group exists already.
    pub async fn initialize(&self, voters: BTreeMap<u64, String>) -> Result<(), ControlError> {
        if !voters.contains_key(&self.id) {
            return Err(ControlError::InvalidConfig {
                reason: format!(
                    "node {} initializes a group of voters {:?} that leaves it out",
                    self.id,
                    voters.keys()
                ),
            });
        }
        let mut nodes = BTreeMap::new();
        for (id, address) in voters {
            check_address(id, &address)?;
            nodes.insert(id, BasicNode::new(address));
        }
        match self.raft.initialize(nodes).await {
            Ok(()) => {
                info!(id = self.id, "control plane initialized");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                debug!(id = self.id, reason = %e, "control plane already initialized");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                Err(ControlError::InvalidConfig { reason: e.to_string() })
            }
            Err(RaftError::Fatal(e)) => Err(ControlError::Stopped { reason: e.to_string() }),
        }
    }

    /// Commits `command` and returns the state machine's reply once this node knows it applied.
    ///
    /// On a node that does not lead, the command is forwarded to the leader over gRPC. While no
    /// leader is known (an election) or the one named cannot be reached, it retries, up to
    /// [`WRITE_ATTEMPTS_MAX`] times [`WRITE_RETRY_BACKOFF`] apart, then fails with
    /// [`ControlError::NoLeader`]; it retries only where the command was certainly not appended.
    pub async fn write(&self, command: Vec<u8>) -> Result<Vec<u8>, ControlError> {
        if command.len() > COMMAND_BYTES_MAX {
            return Err(ControlError::CommandTooLarge { bytes: command.len(), max: COMMAND_BYTES_MAX });
        }
        let started = Instant::now();
        for attempt in 1..=WRITE_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(WRITE_RETRY_BACKOFF).await;
            }
            match self.raft.client_write(Command(command.clone())).await {
                Ok(written) => return Ok(written.data.0),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) else {
                        debug!(id = self.id, attempt, "no control-plane leader known yet");
                        continue;
                    };
                    if leader == self.id {
                        // This node led a moment ago and has stepped down since.
                        continue;
                    }
                    match self.forward(leader, &node.addr, &command).await? {
                        Forwarded::Applied(reply) => return Ok(reply),
                        Forwarded::NotApplied => continue,
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    panic!("a control-plane command failed as a membership change: {e}");
                }
                Err(RaftError::Fatal(fatal)) => return Err(self.stopped_or_unknown(fatal.to_string())),
            }
        }
        Err(ControlError::NoLeader { attempts: WRITE_ATTEMPTS_MAX, waited: started.elapsed() })
    }

    /// After openraft failed a call: stopped if Raft has, else the call's outcome is unknown.
    fn stopped_or_unknown(&self, reason: String) -> ControlError {
        if self.raft.metrics().borrow().running_state.is_err() {
            ControlError::Stopped { reason }
        } else {
            ControlError::OutcomeUnknown { reason }
        }
    }

    /// Sends `command` to `leader` at `address` with the `Write` call.
    async fn forward(
        &self,
        leader: NodeId,
        address: &str,
        command: &[u8],
    ) -> Result<Forwarded, ControlError> {
        let mut client = self.leader_client(leader, address)?;
        let request = ControlWriteRequest {
            cluster_id: self.cluster_id,
            from: self.id,
            to: leader,
            command: command.to_vec().into(),
        };
        match client.write(request).await {
            Ok(reply) => match reply.into_inner().outcome {
                Some(Outcome::Applied(reply)) => Ok(Forwarded::Applied(reply.to_vec())),
                Some(Outcome::NotLeader(hint)) => {
                    debug!(id = self.id, leader, now = ?hint.leader_id, "forwarded to a node that no longer leads");
                    Ok(Forwarded::NotApplied)
                }
                None => Err(ControlError::OutcomeUnknown {
                    reason: format!("node {leader} answered the forwarded command with nothing"),
                }),
            },
            Err(status) if never_sent(&status) => {
                debug!(id = self.id, leader, %address, %status, "control-plane leader unreachable");
                Ok(Forwarded::NotApplied)
            }
            // Refused before Raft saw it: another node or cluster answers at the leader's address.
            Err(status) if status.code() == Code::FailedPrecondition => {
                debug!(id = self.id, leader, %address, %status, "forwarded command refused");
                Ok(Forwarded::NotApplied)
            }
            Err(status) if status.code() == Code::InvalidArgument => Err(ControlError::InvalidConfig {
                reason: format!("node {leader} refused the command: {}", status.message()),
            }),
            Err(status) => Err(ControlError::OutcomeUnknown {
                reason: format!("forwarded to leader {leader} at {address}: {status}"),
            }),
        }
    }

    fn leader_client(&self, leader: NodeId, address: &str) -> Result<ControlClient<Channel>, ControlError> {
        let mut cached = self.leader_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = &*cached
            && cached.id == leader
            && cached.address == address
        {
            return Ok(cached.client.clone());
        }
        let client = control_client(&self.dialer, address).map_err(|e| ControlError::InvalidConfig {
            reason: format!("the leader, node {leader}, has an invalid address {address:?}: {e}"),
        })?;
        *cached = Some(LeaderClient { id: leader, address: address.to_string(), client: client.clone() });
        Ok(client)
    }

    /// Adds node `id` at gRPC `address` as a learner: it receives the log and catches up, but
    /// does not vote. Returns once the change is committed (the learner may still be catching
    /// up: see [`ControlPlane::status`] on it). Made on the leader. While another membership
    /// change is in progress it retries, up to [`MEMBERSHIP_ATTEMPTS_MAX`] times.
    pub async fn add_learner(&self, id: u64, address: String) -> Result<(), ControlError> {
        check_address(id, &address)?;
        self.retry_membership(|| self.raft.add_learner(id, BasicNode::new(address.clone()), false)).await
    }

    /// Makes `voters` the set of voters. Each must be a member already (a voter, or a learner
    /// added with [`ControlPlane::add_learner`]); learners stay learners, and voters left out
    /// become learners. Made on the leader. Passes through a joint configuration: if the leader
    /// fails before the change completes, call it again with the same set on the new leader.
    pub async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ControlError> {
        self.retry_membership(|| {
            self.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), true)
        })
        .await
    }

    /// Runs a membership change, again while another one is still in progress, up to
    /// [`MEMBERSHIP_ATTEMPTS_MAX`] times.
    async fn retry_membership<T, F, Fut>(&self, mut change: F) -> Result<(), ControlError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>>,
    {
        for attempt in 1..=MEMBERSHIP_ATTEMPTS_MAX {
            match change().await.map_err(|e| self.membership_error(e)) {
                Err(ControlError::Membership { retryable: true, .. })
                    if attempt < MEMBERSHIP_ATTEMPTS_MAX =>
                {
                    tokio::time::sleep(WRITE_RETRY_BACKOFF).await;
                }
                result => return result.map(|_| ()),
            }
        }
        unreachable!("the last attempt returns");
    }

    fn membership_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ControlError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => ControlError::NotLeader {
                me: self.id,
                leader: forward.leader_id,
                address: forward.leader_node.map(|n| n.addr),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                let retryable = matches!(e, ChangeMembershipError::InProgress(_));
                let advice = match &e {
                    ChangeMembershipError::InProgress(_) => "retry once the change in progress is done",
                    ChangeMembershipError::LearnerNotFound(_) => "add the node as a learner first",
                    ChangeMembershipError::EmptyMembership(_) => "give at least one voter",
                };
                ControlError::Membership { reason: format!("{e}: {advice}"), retryable }
            }
            RaftError::Fatal(fatal) => self.stopped_or_unknown(fatal.to_string()),
        }
    }

    /// Calls `f` on this node's state machine as applied so far (it may lag the leader's).
    pub fn read<T>(&self, f: impl FnOnce(&SM) -> T) -> T {
        f(&self.applied.read().state_machine)
    }

    /// What this node knows of the group now.
    pub fn status(&self) -> ControlStatus {
        status_of(&self.raft.metrics().borrow())
    }

    /// Stops this node's Raft. Its storage keeps everything needed to start it again.
    pub async fn shutdown(&self) -> Result<(), ControlError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| ControlError::Stopped { reason: format!("shut down raft: {e}") })?;
        info!(id = self.id, "control plane stopped");
        Ok(())
    }
}

fn check_address(id: u64, address: &str) -> Result<(), ControlError> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}")).map(|_| ()).map_err(|e| {
        ControlError::InvalidConfig { reason: format!("node {id} has an invalid address {address:?}: {e}") }
    })
}
