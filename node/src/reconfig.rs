//! Follows the control plane through epoch switches (see `mortar_epoxy::seal` and
//! `docs/ARCHITECTURE.md`, "Epochs and reconfiguration"). One task per node watches the cluster
//! metadata and its replica's epoch and does this node's part:
//!
//! * **Drive.** When a switch is pending with this node as its driver, seal the old epoch, then
//!   commit the cut (`CommitReconfig`, a compare-and-set on the attempt). A driver that restarts
//!   finds the switch still pending and drives it again; sealing twice is harmless.
//! * **Install.** When the control plane committed the cut of this node's epoch, install it; the
//!   replica then finishes the epoch (executes every slot up to the cut).
//! * **Switch.** Once the epoch is done, move to the next one: its members, their addresses
//!   (new peers connected), a fresh replica. A node that is not a member of the next epoch was
//!   removed: it records so and stops.
//!
//! Each step is idempotent and driven by what the metadata and the replica say now, so a crash
//! anywhere resumes on restart.

use crate::control::ControlPlane;
use crate::driver::{DriverHandle, Peers};
use crate::epoch::{EpochRecord, EpochStatus, META_REMOVED};
use crate::metadata::{self, ChangeError, MetadataMachine};
use crate::transport::{self, PeerQueue};
use mortar_epoxy::{Cut, ReplicaId};
use mortar_placement::control::{ClusterMetadata, Command, Group, GroupId, NodeState, Refusal};
use mortar_storage::Storage;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// How long a driver waits for a majority to seal before asking again.
const SEAL_WAIT: Duration = Duration::from_secs(5);
/// How often the task looks again while something is in progress.
const POLL: Duration = Duration::from_millis(200);
/// How long a removed node keeps answering the members finishing its last epoch before it stops.
pub const REMOVED_LINGER: Duration = Duration::from_secs(2);

/// The sender queues of this node's peers, kept across switches: a peer of both epochs keeps
/// its connection.
pub struct PeerSet {
    cluster_id: u64,
    me: u32,
    queues: HashMap<u32, (String, PeerQueue)>,
    dialer: crate::tls::Dialer,
}

impl PeerSet {
    pub fn new(cluster_id: u64, me: u32, dialer: crate::tls::Dialer) -> Self {
        Self { cluster_id, me, queues: HashMap::new(), dialer }
    }

    /// The queues of `addresses`' members other than this node, connecting new ones; queues of
    /// nodes no longer listed are dropped (their senders stop).
    pub fn peers_for(&mut self, addresses: &BTreeMap<u32, String>) -> Peers {
        self.queues.retain(|id, (address, _)| addresses.get(id) == Some(address));
        let mut peers = Peers::new();
        for (&id, address) in addresses {
            if id == self.me {
                continue;
            }
            let (_, queue) = self.queues.entry(id).or_insert_with(|| {
                (
                    address.clone(),
                    transport::spawn_peer(self.cluster_id, self.me, id, address.clone(), &self.dialer),
                )
            });
            peers.insert(ReplicaId(id), queue.clone());
        }
        peers
    }
}

/// Why the task ended.
#[derive(Debug)]
pub enum Ended {
    /// This node is not a member of the group's epoch any more: it must stop.
    Removed { epoch: u64 },
    /// This data directory is not the one its node id started with: it must stop.
    Replaced { reason: String },
}

/// Starts the task; a message arrives on the returned channel when the node must stop.
pub fn spawn(
    me: u32,
    incarnation: u64,
    control: ControlPlane<MetadataMachine>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    driver: DriverHandle,
    peers: PeerSet,
    checkpoints: crate::transfer::Source,
) -> (mpsc::Receiver<Ended>, tokio::task::JoinHandle<()>) {
    let (ended_tx, ended_rx) = mpsc::channel(1);
    let task = Follower {
        me,
        incarnation,
        claimed: false,
        control,
        metadata,
        driver,
        peers,
        checkpoints,
        driving: None,
        reported: 0,
        cleaned: 0,
        learner_added: HashMap::new(),
        voters_changed: None,
    };
    let handle = tokio::spawn(async move {
        if let Some(ended) = task.run().await {
            let _ = ended_tx.send(ended).await;
        }
    });
    (ended_rx, handle)
}

struct Follower {
    me: u32,
    /// This data directory's incarnation, claimed once with the control plane.
    incarnation: u64,
    claimed: bool,
    control: ControlPlane<MetadataMachine>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    driver: DriverHandle,
    peers: PeerSet,
    /// The checkpoints this node serves to new members.
    checkpoints: crate::transfer::Source,
    /// The attempt this node drives, with the task doing it.
    driving: Option<(u64, tokio::task::JoinHandle<()>)>,
    /// The epoch this node last reported ready in.
    reported: u64,
    /// The epoch before which checkpoints were deleted.
    cleaned: u64,
    /// When this node, as the control leader, last asked to add each node as a learner.
    learner_added: HashMap<u32, std::time::Instant>,
    /// When this node, as the control leader, last changed the voters.
    voters_changed: Option<std::time::Instant>,
}

impl Follower {
    async fn run(mut self) -> Option<Ended> {
        let mut status = self.driver.epoch_status();
        let mut warned_behind = 0;
        loop {
            let metadata = self.metadata.borrow_and_update().clone();
            let local = status.borrow_and_update().clone();
            if let Some(group) = metadata.groups.get(&GroupId::FIRST) {
                match self.step(&metadata, group, &local).await {
                    Step::Ended(ended) => return Some(ended),
                    Step::Behind if warned_behind != group.epoch => {
                        warned_behind = group.epoch;
                        error!(
                            local_epoch = local.epoch,
                            group_epoch = group.epoch,
                            "this node missed an epoch switch and cannot finish its epoch from its peers: \
                             stop it and start a new node in its place (`mortar node --join <member> \
                             --replace {}` with an empty data directory), or remove it (`mortar admin \
                             remove {}`)",
                            self.me,
                            self.me
                        );
                    }
                    _ => {}
                }
            }
            tokio::select! {
                changed = self.metadata.changed() => if changed.is_err() { return None },
                changed = status.changed() => if changed.is_err() { return None },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Confirms with the control plane that this data directory is the one its id started with.
    async fn claim(&mut self) -> Option<Ended> {
        let claim = Command::ClaimIncarnation { node: self.me, incarnation: self.incarnation };
        match metadata::change(&self.control, &claim).await {
            Ok(_) => {
                self.claimed = true;
                if !self.driver.is_serving() {
                    info!("the control plane confirmed this data directory; serving");
                }
                self.driver.serve();
                None
            }
            Err(ChangeError::Refused(refusal @ Refusal::IncarnationReplaced { .. })) => {
                Some(Ended::Replaced { reason: refusal.to_string() })
            }
            Err(e) => {
                warn!(error = %e, "could not confirm this data directory with the control plane yet");
                None
            }
        }
    }

    async fn step(&mut self, metadata: &ClusterMetadata, group: &Group, local: &EpochStatus) -> Step {
        // Removed or replaced while this node was down or cut off: it must not serve again.
        if let Some(entry) = metadata.nodes.get(&self.me)
            && !entry.state.is_live()
            && !group.members.contains(&self.me)
        {
            return Step::Ended(Ended::Removed { epoch: group.epoch });
        }
        if !self.claimed
            && let Some(ended) = self.claim().await
        {
            return Step::Ended(ended);
        }
        // Drive a pending switch of this node's epoch when it is the driver.
        match &group.pending {
            Some(pending) if pending.driver == self.me && pending.from_epoch == local.epoch => {
                let running =
                    self.driving.as_ref().is_some_and(|(a, t)| *a == pending.attempt && !t.is_finished());
                if !running {
                    let (control, driver) = (self.control.clone(), self.driver.clone());
                    let (attempt, epoch) = (pending.attempt, pending.from_epoch);
                    let task = tokio::spawn(drive(control, driver, epoch, attempt));
                    if let Some((_, old)) = self.driving.replace((attempt, task)) {
                        old.abort();
                    }
                }
            }
            _ => {
                if let Some((_, old)) = self.driving.take() {
                    old.abort();
                }
            }
        }
        self.follow_as_control_leader(metadata).await;
        if group.epoch == local.epoch && group.members.contains(&self.me) {
            let behind = metadata.behind.get(&group.id).is_some_and(|b| b.contains(&self.me));
            if (!group.ready.contains(&self.me) || behind) && self.reported != local.epoch {
                // A new member: it holds the data of the epoch (copied before its replica
                // started), so it may lead and own actors. A continuing one: it runs the epoch,
                // so the next switch need not wait for it.
                let report =
                    Command::ReportReady { group: GroupId::FIRST, epoch: local.epoch, node: self.me };
                match metadata::change(&self.control, &report).await {
                    Ok(_) => {
                        info!(epoch = local.epoch, "reported ready in epoch {}", local.epoch);
                        self.reported = local.epoch;
                    }
                    Err(e) => warn!(error = %e, "could not report ready yet"),
                }
            }
            if self.cleaned != local.epoch && group.members.iter().all(|m| group.ready.contains(m)) {
                // Every member holds the data: the copies taken at earlier cuts are not needed.
                let (checkpoints, epoch) = (self.checkpoints.clone(), local.epoch);
                let _ = tokio::task::spawn_blocking(move || checkpoints.delete_before(epoch)).await;
                self.cleaned = local.epoch;
            }
        }
        if group.epoch <= local.epoch {
            return Step::Idle;
        }
        // The last commit started the group's current epoch: it holds the cut of this node's
        // epoch only when the group is one epoch ahead.
        let Some(last) = group.last_commit.as_ref().filter(|l| l.epoch == local.epoch + 1) else {
            return Step::Behind;
        };
        let cut =
            Cut { epoch: local.epoch, bounds: last.cut.iter().map(|&(n, s)| (ReplicaId(n), s)).collect() };
        if !local.cut_installed {
            self.driver.install_cut(cut).await;
            return Step::Working;
        }
        if !group.members.contains(&self.me) {
            // Its data is no longer needed: the members of the next epoch hold it.
            return Step::Ended(Ended::Removed { epoch: group.epoch });
        }
        if !local.done {
            return Step::Working;
        }
        let addresses: BTreeMap<u32, String> = group
            .members
            .iter()
            .filter_map(|m| metadata.nodes.get(m).map(|n| (*m, n.address.clone())))
            .collect();
        let next =
            EpochRecord { epoch: group.epoch, members: group.members.clone(), addresses, previous_cut: cut };
        let peers = self.peers.peers_for(&next.addresses);
        match self.driver.switch(next, peers).await {
            Ok(()) => info!(epoch = group.epoch, members = ?group.members, "this node runs the new epoch"),
            Err(e) => warn!(error = %e, "could not switch epochs yet"),
        }
        Step::Working
    }
}

impl Follower {
    /// On the control plane's leader: every live node in the directory follows the control
    /// plane's log (a node that joined is added as a learner).
    async fn follow_as_control_leader(&mut self, metadata: &ClusterMetadata) {
        let status = self.control.status();
        if status.leader != Some(u64::from(self.me)) {
            return;
        }
        for (id, entry) in &metadata.nodes {
            let known = status.voters.contains(&u64::from(*id)) || status.learners.contains(&u64::from(*id));
            let recently = self.learner_added.get(id).is_some_and(|at| at.elapsed() < LEARNER_RETRY);
            if known || !entry.state.is_live() || recently {
                continue;
            }
            self.learner_added.insert(*id, std::time::Instant::now());
            match self.control.add_learner(u64::from(*id), entry.address.clone()).await {
                Ok(()) => info!(node = id, "added node {id} to the control plane as a learner"),
                Err(e) => warn!(node = id, error = %e, "could not add a learner yet"),
            }
        }
        // Voters follow the directory: a removed node stops voting, and a live learner takes
        // its seat, so the control plane keeps 3 (or 5) voters among the live nodes.
        let Some(target) = control_voters(metadata, &status.voters, &status.learners) else { return };
        if self.voters_changed.is_some_and(|at| at.elapsed() < LEARNER_RETRY) {
            return;
        }
        self.voters_changed = Some(std::time::Instant::now());
        match self.control.change_voters(target.iter().map(|&v| u64::from(v)).collect()).await {
            Ok(()) => {
                info!(voters = ?target, "control plane voters changed");
                let record = Command::SetControlVoters { voters: target.into_iter().collect() };
                if let Err(e) = metadata::change(&self.control, &record).await {
                    warn!(error = %e, "could not record the control plane's voters");
                }
            }
            Err(e) => warn!(error = %e, "could not change the control plane's voters yet"),
        }
    }
}

/// The voters the control plane should have, when they differ from `voters`: the live ones,
/// topped up from active learners (lowest ids first) to 5 when 5 nodes are active, else 3, else
/// all. A node still joining is never promoted: it may never come up.
pub fn control_voters(
    metadata: &ClusterMetadata,
    voters: &std::collections::BTreeSet<u64>,
    learners: &std::collections::BTreeSet<u64>,
) -> Option<std::collections::BTreeSet<u32>> {
    let state = |id: u64| u32::try_from(id).ok().and_then(|id| metadata.nodes.get(&id)).map(|n| n.state);
    let settled = |s: NodeState| matches!(s, NodeState::Active | NodeState::Draining);
    let settled_count = metadata.nodes.values().filter(|n| settled(n.state)).count();
    let want = match settled_count {
        n if n >= 5 => 5,
        n if n >= 3 => 3,
        n => n,
    };
    let mut target: std::collections::BTreeSet<u32> =
        voters.iter().filter(|v| state(**v).is_some_and(NodeState::is_live)).map(|&v| v as u32).collect();
    for &learner in learners {
        if target.len() >= want {
            break;
        }
        if state(learner).is_some_and(settled) {
            target.insert(learner as u32);
        }
    }
    let current: std::collections::BTreeSet<u32> = voters.iter().map(|&v| v as u32).collect();
    (target != current && !target.is_empty()).then_some(target)
}

/// How long the control leader waits before asking again to add a learner.
const LEARNER_RETRY: Duration = Duration::from_secs(5);

enum Step {
    Idle,
    Working,
    Behind,
    Ended(Ended),
}

/// Seals `epoch` and commits its cut for `attempt`, retrying until the control plane answers
/// (the attempt may be aborted meanwhile: then the commit is refused and this ends).
async fn drive(control: ControlPlane<MetadataMachine>, driver: DriverHandle, epoch: u64, attempt: u64) {
    info!(epoch, attempt, "driving the switch: sealing epoch {epoch}");
    let cut = loop {
        match tokio::time::timeout(SEAL_WAIT, driver.seal(epoch)).await {
            Ok(Some(cut)) => break cut,
            Ok(None) => return, // another epoch now, or stopping
            Err(_) => warn!(epoch, attempt, "no majority sealed yet; asking again"),
        }
    };
    let bounds: Vec<(u32, u64)> = cut.bounds.iter().map(|(r, s)| (r.0, *s)).collect();
    info!(epoch, attempt, cut = ?bounds, "epoch sealed; committing the cut");
    let command = Command::CommitReconfig { group: GroupId::FIRST, attempt, cut: bounds };
    loop {
        match metadata::change(&control, &command).await {
            Ok(outcome) => {
                info!(?outcome, "switch committed");
                return;
            }
            Err(ChangeError::Refused(refusal)) if !refusal.is_retryable() => {
                warn!(%refusal, "the control plane refused the cut");
                return;
            }
            Err(e) => {
                warn!(error = %e, "could not commit the cut yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Records that this node was removed at `epoch`, so that it refuses to start again.
pub fn record_removed(storage: &dyn Storage, epoch: u64) -> Result<(), mortar_storage::StorageError> {
    let mut batch = mortar_storage::WriteBatch::new();
    batch.put_meta(META_REMOVED, epoch.to_be_bytes().to_vec());
    storage.write(batch, true)
}

#[cfg(test)]
#[path = "reconfig_test.rs"]
mod reconfig_test;
