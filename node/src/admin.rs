//! The `mortar.v1.Admin` service.

use crate::control::ControlPlane;
use crate::driver::DriverHandle;
use crate::metadata::{self, ChangeError, MetadataMachine};
use crate::node_info::{LocalInfo, Peer, counters_proto, probe};
use mortar_placement::View;
use mortar_placement::control::{
    ClusterMetadata, Command, ControlRole, GroupId, NodeState, Outcome, ReconfigKind, Refusal,
};
use mortar_proto::v1::admin_server::Admin;
use mortar_proto::v1::{
    DrainRequest, DrainResponse, JoinRequest, JoinResponse, Member, MemberStatus, MembersRequest,
    MembersResponse, ReconfigResponse, RemoveRequest, StatusRequest, StatusResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub cluster_id: u64,
    pub local: LocalInfo,
    pub peers: Vec<Peer>,
    pub driver: DriverHandle,
    pub control: ControlPlane<MetadataMachine>,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// Gossip's live members: which nodes a switch can count on.
    pub gossip: watch::Receiver<View>,
}

/// How long a switch whose begin had an unknown outcome looks for it in this node's copy.
const BEGIN_UNKNOWN_WAIT: Duration = Duration::from_secs(5);
/// How long `Remove` (and the other switches) waits for the switch to commit.
const SWITCH_WAIT: Duration = Duration::from_secs(60);
/// How long a committed switch's answer waits for the continuing members to run the new epoch.
const BEHIND_WAIT: Duration = Duration::from_secs(5);
/// How long a replace waits for gossip to declare the node it replaces down (detection takes
/// about `probe_period + suspect_to_down_after`, well under a second).
const REPLACE_DEAD_WAIT: Duration = Duration::from_secs(5);

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let me = MemberStatus {
            id: self.local.id,
            address: self.local.address.clone(),
            region: self.local.region.clone(),
            reachable: true,
            error: String::new(),
            epoxy: Some(counters_proto(self.driver.counters())),
        };
        let probes = self.peers.iter().map(|p| probe(self.cluster_id, p));
        let mut members = futures::future::join_all(probes).await;
        members.push(me);
        members.sort_by_key(|m| m.id);
        Ok(Response::new(StatusResponse { cluster_id: self.cluster_id, answered_by: self.local.id, members }))
    }

    async fn members(&self, _request: Request<MembersRequest>) -> Result<Response<MembersResponse>, Status> {
        let metadata = self.metadata.borrow().clone();
        let status = self.control.status();
        let members = metadata.members().into_iter().map(|row| {
            let seat = row.seats.first();
            Member {
                id: row.id,
                address: row.address,
                region: row.region,
                state: state_name(row.state).to_string(),
                epoch: seat.map_or(0, |s| s.epoch),
                control: match row.control {
                    Some(ControlRole::Voter) => "voter",
                    Some(ControlRole::Learner) => "learner",
                    None => "",
                }
                .to_string(),
                ready: seat.is_some_and(|s| s.ready),
            }
        });
        Ok(Response::new(MembersResponse {
            cluster_id: self.cluster_id,
            answered_by: self.local.id,
            control_leader: status.leader.and_then(|l| u32::try_from(l).ok()).unwrap_or(0),
            applied_index: metadata.version,
            members: members.collect(),
        }))
    }

    async fn drain(&self, request: Request<DrainRequest>) -> Result<Response<DrainResponse>, Status> {
        let node = request.into_inner().id;
        self.change_state(node, Command::Drain { node }).await
    }

    async fn undrain(&self, request: Request<DrainRequest>) -> Result<Response<DrainResponse>, Status> {
        let node = request.into_inner().id;
        self.change_state(node, Command::Undrain { node }).await
    }

    async fn remove(&self, request: Request<RemoveRequest>) -> Result<Response<ReconfigResponse>, Status> {
        let node = request.into_inner().id;
        let metadata = self.metadata.borrow().clone();
        if let Some(entry) = metadata.nodes.get(&node)
            && matches!(entry.state, NodeState::Removed | NodeState::Dead)
            && metadata.groups.values().all(|g| !g.members.contains(&node))
        {
            // Done before: answer what the group is now.
            let group = metadata.groups.get(&GroupId::FIRST);
            return Ok(Response::new(ReconfigResponse {
                epoch: group.map_or(0, |g| g.epoch),
                members: group.map(|g| g.members.clone()).unwrap_or_default(),
                attempt: 0,
                progress: vec![format!("node {node} is {} already", state_name(entry.state))],
            }));
        }
        self.reconfigure(ReconfigKind::Remove { node }).await.map(Response::new)
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let request = request.into_inner();
        if request.cluster_id != 0 && request.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "this node is in cluster {:016x}, but the joining node's data directory belongs to cluster {:016x}: \
                 join with an empty data directory, or through a member of its own cluster",
                self.cluster_id, request.cluster_id
            )));
        }
        let admitted = {
            let metadata = self.metadata.borrow();
            let known = metadata.nodes.values().find(|n| n.incarnation == request.incarnation).map(|n| n.id);
            known.is_some_and(|id| {
                metadata.groups.get(&GroupId::FIRST).is_some_and(|g| g.members.contains(&id))
            })
        };
        if request.replace != 0 && !admitted {
            // Checked before the node is registered, so that a refused replace leaves nothing
            // behind; the control plane checks again when the switch begins.
            let dead = request.replace;
            let metadata = self.metadata.borrow().clone();
            let member = metadata.groups.get(&GroupId::FIRST).is_some_and(|g| g.members.contains(&dead));
            if !member {
                return Err(Status::failed_precondition(format!(
                    "node {dead} is not a member of the replica group: there is nothing to replace (see `mortar admin members`)"
                )));
            }
            // A node killed a moment ago is still a gossip member until it is declared down
            // (about a second): give gossip that long rather than refuse an operator who acted
            // at once.
            let mut gossip = self.gossip.clone();
            let gone = gossip.wait_for(|view| !view.members.iter().any(|m| m.id == dead));
            if !matches!(tokio::time::timeout(REPLACE_DEAD_WAIT, gone).await, Ok(Ok(_))) {
                return Err(Status::failed_precondition(format!(
                    "node {dead} is alive: a node is replaced only once it is dead for good (stop it first), \
                     or removed with `mortar admin remove {dead}` while alive"
                )));
            }
        }
        let register = match request.replace {
            0 => Command::RegisterNode {
                cluster_id: self.cluster_id,
                address: request.address.clone(),
                region: request.region.clone(),
                incarnation: request.incarnation,
            },
            // The replacement may come back at the dead node's address.
            dead => Command::RegisterReplacement {
                cluster_id: self.cluster_id,
                address: request.address.clone(),
                region: request.region.clone(),
                incarnation: request.incarnation,
                replaces: dead,
            },
        };
        let node = match metadata::change(&self.control, &register).await {
            Ok(Outcome::Registered { node }) => node,
            Ok(other) => return Err(Status::internal(format!("unexpected answer {other:?}"))),
            Err(e) => return Err(status_of(e)),
        };
        let mut progress = vec![format!("registered as node {node} at {}", request.address)];
        let metadata = self.metadata.borrow().clone();
        let is_member = metadata.groups.get(&GroupId::FIRST).is_some_and(|g| g.members.contains(&node));
        if !is_member {
            let kind = match request.replace {
                0 => ReconfigKind::Add { node },
                dead => ReconfigKind::Replace { dead, with: node },
            };
            progress.extend(self.reconfigure(kind).await?.progress);
        }
        let metadata = self.metadata.borrow().clone();
        let group = &metadata.groups[&GroupId::FIRST];
        let Some(last) = group.last_commit.as_ref().filter(|_| group.members.contains(&node)) else {
            return Err(Status::aborted(format!(
                "node {node} is not a member of the group now (members {:?}); ask again",
                group.members
            )));
        };
        let initial: Vec<String> =
            metadata.initial.iter().map(|n| format!("{}={}", n.id, n.address)).collect();
        let address = |m: &u32| metadata.nodes.get(m).map(|n| n.address.clone()).unwrap_or_default();
        Ok(Response::new(JoinResponse {
            cluster_id: self.cluster_id,
            id: node,
            initial_cluster: initial.join(","),
            epoch: group.epoch,
            members: group.members.clone(),
            addresses: group.members.iter().map(address).collect(),
            cut_nodes: last.cut.iter().map(|(n, _)| *n).collect(),
            cut_slots: last.cut.iter().map(|(_, s)| *s).collect(),
            progress,
        }))
    }
}

impl AdminService {
    /// Runs one switch of the first group, driven by this node: begins it (taking over the same
    /// switch left pending by a driver that stopped), then waits until this node's follower has
    /// sealed the old epoch and committed the cut (see `crate::reconfig`).
    async fn reconfigure(&self, kind: ReconfigKind) -> Result<ReconfigResponse, Status> {
        let me = self.local.id;
        let mut progress = Vec::new();
        let metadata = self.metadata.borrow().clone();
        let Some(group) = metadata.groups.get(&GroupId::FIRST) else {
            return Err(Status::unavailable("the control plane has not been initialized yet; retry shortly"));
        };
        if !group.members.contains(&me) {
            return Err(Status::failed_precondition(format!(
                "node {me} is not a member of the replica group (members: {:?}); send this to one of them",
                group.members
            )));
        }
        let local_epoch = self.driver.epoch_status().borrow().epoch;
        if local_epoch != group.epoch {
            return Err(Status::unavailable(format!(
                "node {me} is still switching from epoch {local_epoch} to {}; retry shortly",
                group.epoch
            )));
        }
        let reachable: Vec<u32> = self.gossip.borrow().members.iter().map(|m| m.id).collect();
        let begin = Command::BeginReconfig {
            group: GroupId::FIRST,
            from_epoch: group.epoch,
            kind,
            driver: me,
            reachable: reachable.clone(),
        };
        let attempt = match metadata::change(&self.control, &begin).await {
            Ok(Outcome::ReconfigBegun { attempt, .. }) => attempt,
            Err(ChangeError::Refused(Refusal::ReconfigPending { attempt, driver, .. }))
                if group.pending.as_ref().is_some_and(|p| p.kind == kind && p.attempt == attempt) =>
            {
                // The same switch, left by a driver that stopped (or still at it): take it over.
                // Aborting is safe before a commit: the commit is a compare-and-set on the
                // attempt, and any majority's cut is a valid one.
                progress.push(format!("took over attempt {attempt} of node {driver}"));
                let abort = Command::AbortReconfig { group: GroupId::FIRST, attempt };
                match metadata::change(&self.control, &abort).await {
                    Ok(_) => {}
                    Err(ChangeError::Refused(Refusal::AttemptCommitted { epoch, .. })) => {
                        return self.committed(attempt, epoch, progress).await;
                    }
                    Err(e) => return Err(status_of(e)),
                }
                match metadata::change(&self.control, &begin).await {
                    Ok(Outcome::ReconfigBegun { attempt, .. }) => attempt,
                    Ok(other) => return Err(Status::internal(format!("unexpected answer {other:?}"))),
                    Err(e) => return Err(status_of(e)),
                }
            }
            Ok(other) => return Err(Status::internal(format!("unexpected answer {other:?}"))),
            Err(ChangeError::Control(e)) => {
                // The outcome is unknown (the leader changed, say): the begin may have been
                // applied, and then this node's follower drives it. Look before giving up.
                let mut watch = self.metadata.clone();
                let begun = watch.wait_for(|m| {
                    m.groups
                        .get(&GroupId::FIRST)
                        .and_then(|g| g.pending.as_ref())
                        .is_some_and(|p| p.kind == kind && p.driver == me && p.from_epoch == group.epoch)
                });
                match tokio::time::timeout(BEGIN_UNKNOWN_WAIT, begun).await {
                    Ok(Ok(m)) => m.groups[&GroupId::FIRST].pending.as_ref().expect("matched above").attempt,
                    _ => return Err(status_of(ChangeError::Control(e))),
                }
            }
            Err(e) => return Err(status_of(e)),
        };
        progress.push(format!(
            "begun: {kind}, attempt {attempt}, from epoch {}; node {me} seals it",
            group.epoch
        ));
        let mut watch = self.metadata.clone();
        let settled = watch.wait_for(|m| {
            m.groups.get(&GroupId::FIRST).is_some_and(|g| {
                // This node's copy may not have applied the begin yet: only once it has is a
                // switch no longer pending one that was given up.
                g.last_commit.as_ref().is_some_and(|l| l.attempt == attempt)
                    || (g.attempts >= attempt && g.pending.as_ref().is_none_or(|p| p.attempt != attempt))
            })
        });
        let settled = match tokio::time::timeout(SWITCH_WAIT, settled).await {
            Ok(Ok(m)) => m.clone(),
            Ok(Err(_)) => return Err(Status::unavailable("the node is stopping")),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "the switch (attempt {attempt}) has not committed within {} s: a majority of the \
                     group may be unreachable; run the command again to resume it",
                    SWITCH_WAIT.as_secs()
                )));
            }
        };
        let group = &settled.groups[&GroupId::FIRST];
        match &group.last_commit {
            Some(last) if last.attempt == attempt => self.committed(attempt, last.epoch, progress).await,
            _ => Err(Status::aborted(format!(
                "the switch (attempt {attempt}) was given up by another request; check `mortar admin members` \
                 and run the command again"
            ))),
        }
    }

    /// The answer for a committed switch.
    async fn committed(
        &self,
        attempt: u64,
        epoch: u64,
        mut progress: Vec<String>,
    ) -> Result<ReconfigResponse, Status> {
        let metadata = self.metadata.borrow().clone();
        let group = &metadata.groups[&GroupId::FIRST];
        if let Some(last) = group.last_commit.as_ref().filter(|l| l.attempt == attempt) {
            progress.push(format!("sealed epoch {}: cut {:?}", epoch - 1, last.cut));
        }
        progress.push(format!("committed epoch {epoch}: members {:?}", group.members));
        // Until every continuing member runs the new epoch no further switch begins: wait a
        // little for them, so that the next command is not refused for a member about to report.
        let mut watch = self.metadata.clone();
        let switched = watch.wait_for(|m| {
            m.groups.get(&GroupId::FIRST).is_none_or(|g| g.epoch != epoch)
                || !m.behind.contains_key(&GroupId::FIRST)
        });
        let behind = match tokio::time::timeout(BEHIND_WAIT, switched).await {
            Ok(Ok(_)) => None,
            _ => self.metadata.borrow().behind.get(&GroupId::FIRST).cloned(),
        };
        match behind {
            None => progress.push(format!("every member runs epoch {epoch}")),
            Some(nodes) => progress.push(format!(
                "members {nodes:?} do not run epoch {epoch} yet (cut off or down): no further switch \
                 begins until they do, or are removed or replaced"
            )),
        }
        Ok(ReconfigResponse { epoch, members: group.members.clone(), attempt, progress })
    }

    /// Commits a command that changes one node's state, and answers its state afterwards.
    async fn change_state(&self, node: u32, command: Command) -> Result<Response<DrainResponse>, Status> {
        metadata::change(&self.control, &command).await.map_err(status_of)?;
        let mut metadata = self.metadata.clone();
        // The answer reads this node's copy, which applies the command shortly after the leader.
        let applied =
            metadata.wait_for(|m| m.nodes.get(&node).is_some_and(|n| matches_command(n.state, &command)));
        let state = match tokio::time::timeout(std::time::Duration::from_secs(5), applied).await {
            Ok(Ok(m)) => m.nodes.get(&node).map_or("unknown", |n| state_name(n.state)),
            _ => "changing (this node has not applied it yet)",
        };
        Ok(Response::new(DrainResponse { state: state.to_string() }))
    }
}

fn matches_command(state: NodeState, command: &Command) -> bool {
    match command {
        Command::Drain { .. } => state == NodeState::Draining,
        Command::Undrain { .. } => state == NodeState::Active,
        _ => true,
    }
}

/// The name operators see for a node state.
pub fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Joining => "joining",
        NodeState::Active => "active",
        NodeState::Draining => "draining",
        NodeState::Removed => "removed",
        NodeState::Dead => "dead",
    }
}

/// The gRPC status of a failed metadata change: a refusal says what to do; a control plane
/// that cannot commit is unavailable.
pub fn status_of(error: ChangeError) -> Status {
    match &error {
        ChangeError::Refused(Refusal::UnknownNode { .. }) => Status::not_found(error.to_string()),
        ChangeError::Refused(refusal) if refusal.is_retryable() => Status::unavailable(error.to_string()),
        ChangeError::Refused(_) => Status::failed_precondition(error.to_string()),
        ChangeError::Control(_) => Status::unavailable(error.to_string()),
        ChangeError::Reply(_) => Status::internal(error.to_string()),
    }
}
