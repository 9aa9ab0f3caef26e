//! [`ControlService`]: the `mortar.internal.v1.Control` gRPC service, which hands Raft messages
//! from other nodes to this node's Raft and applies commands forwarded by nodes that do not lead.

use mortar_proto::internal::v1::control_server::Control;
use mortar_proto::internal::v1::control_write_reply::Outcome;
use mortar_proto::internal::v1::{
    ControlStatusReply, ControlStatusRequest, ControlWriteReply, ControlWriteRequest, NotLeader, RaftReply,
    RaftRequest,
};
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};
use tracing::warn;

use super::types::{Command, NodeId, Raft, TypeConfig};
use super::{COMMAND_BYTES_MAX, status_of, wire};

/// The `Control` service of one node. Add it to the node's tonic router with
/// [`ControlService::into_server`], beside the other services on the one port.
#[derive(Clone)]
pub struct ControlService {
    cluster_id: u64,
    id: NodeId,
    raft: Raft,
}

/// The tonic server of [`ControlService`], ready for `Router::add_service`.
pub type ControlServer = mortar_proto::internal::v1::control_server::ControlServer<ControlService>;

impl ControlService {
    pub(crate) fn new(cluster_id: u64, id: NodeId, raft: Raft) -> Self {
        Self { cluster_id, id, raft }
    }

    /// The tonic server, bounded to [`mortar_proto::GRPC_MESSAGE_BYTES_MAX`] each way.
    pub fn into_server(self) -> ControlServer {
        ControlServer::new(self)
            .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX)
    }

    /// Refuses a request meant for another cluster or another node: an address may now belong to
    /// a node other than the one the sender knows by it, and Raft messages must only reach the
    /// node they were meant for.
    fn check_target(&self, cluster_id: u64, to: u64) -> Result<(), Status> {
        if cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "control-plane request for cluster {cluster_id:016x}, but this node is in cluster {:016x}: \
                 the sender has a stale or wrong address for a node of its cluster",
                self.cluster_id
            )));
        }
        if to != self.id {
            return Err(Status::failed_precondition(format!(
                "control-plane request for node {to}, but this is node {}: the sender has a stale or wrong \
                 address for node {to}",
                self.id
            )));
        }
        Ok(())
    }

    fn raft_request<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        request: &RaftRequest,
    ) -> Result<T, Status> {
        self.check_target(request.cluster_id, request.to)?;
        wire::decode(what, &request.payload).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

fn reply<T: serde::Serialize>(result: &T) -> Response<RaftReply> {
    Response::new(RaftReply { payload: wire::encode(result).into() })
}

/// The only error of Raft's append-entries and vote: Raft has stopped.
fn fatal_only(e: RaftError<NodeId>) -> Fatal<NodeId> {
    match e {
        RaftError::Fatal(fatal) => fatal,
        RaftError::APIError(never) => match never {},
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            self.raft_request("append-entries request", request.get_ref())?;
        let result = self.raft.append_entries(rpc).await.map_err(fatal_only);
        Ok(reply(&result))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: VoteRequest<NodeId> = self.raft_request("vote request", request.get_ref())?;
        let result = self.raft.vote(rpc).await.map_err(fatal_only);
        Ok(reply(&result))
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            self.raft_request("install-snapshot request", request.get_ref())?;
        let result = self.raft.install_snapshot(rpc).await;
        Ok(reply(&result))
    }

    async fn write(
        &self,
        request: Request<ControlWriteRequest>,
    ) -> Result<Response<ControlWriteReply>, Status> {
        let request = request.into_inner();
        self.check_target(request.cluster_id, request.to)?;
        if request.command.len() > COMMAND_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "control-plane command of {} bytes exceeds the limit of {COMMAND_BYTES_MAX} bytes",
                request.command.len()
            )));
        }
        let outcome = match self.raft.client_write(Command(request.command.to_vec())).await {
            Ok(written) => Outcome::Applied(written.data.0.into()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Outcome::NotLeader(NotLeader {
                    leader_id: forward.leader_id,
                    leader_address: forward.leader_node.map(|n| n.addr).unwrap_or_default(),
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                // A plain command never changes membership.
                return Err(Status::internal(format!(
                    "a control-plane command failed as a membership change: {e}"
                )));
            }
            Err(RaftError::Fatal(fatal)) => {
                warn!(from = request.from, error = %fatal, "forwarded control-plane write failed: raft has stopped");
                return Err(Status::unavailable(format!(
                    "the control plane of node {} has stopped ({fatal}); the command may or may not have been applied",
                    self.id
                )));
            }
        };
        Ok(Response::new(ControlWriteReply { outcome: Some(outcome) }))
    }

    async fn status(
        &self,
        request: Request<ControlStatusRequest>,
    ) -> Result<Response<ControlStatusReply>, Status> {
        self.check_target(request.get_ref().cluster_id, request.get_ref().to)?;
        let status = status_of(&self.raft.metrics().borrow());
        Ok(Response::new(ControlStatusReply {
            id: status.id,
            leader_id: status.leader,
            term: status.term,
            voters: status.voters.into_iter().collect(),
            learners: status.learners.into_iter().collect(),
            last_applied: status.last_applied,
        }))
    }
}
