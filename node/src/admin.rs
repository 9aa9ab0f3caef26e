//! The `mortar.v1.Admin` service.

use crate::control::ControlPlane;
use crate::driver::DriverHandle;
use crate::metadata::{self, ChangeError, MetadataMachine};
use crate::node_info::{LocalInfo, Peer, counters_proto, probe};
use mortar_placement::control::{ClusterMetadata, Command, ControlRole, NodeState, Refusal};
use mortar_proto::v1::admin_server::Admin;
use mortar_proto::v1::{
    DrainRequest, DrainResponse, Member, MemberStatus, MembersRequest, MembersResponse, StatusRequest,
    StatusResponse,
};
use std::sync::Arc;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub cluster_id: u64,
    pub local: LocalInfo,
    pub peers: Vec<Peer>,
    pub driver: DriverHandle,
    pub control: ControlPlane<MetadataMachine>,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
}

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
}

impl AdminService {
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
