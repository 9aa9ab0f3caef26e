//! [`Network`]: openraft's clients to the other nodes' `Control` service, over each node's gRPC
//! port. A client connects on its first call, never when openraft creates it (openraft creates
//! clients for every member, reachable or not).

use bytes::Bytes;
use mortar_proto::internal::v1::RaftRequest;
use mortar_proto::internal::v1::control_client::ControlClient;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RPCTypes, RaftNetwork, RaftNetworkFactory};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::{debug, warn};

use super::types::{Node, NodeId, TypeConfig};
use super::{RAFT_PAYLOAD_BYTES_MAX, wire};

/// Makes one [`PeerClient`] per target for openraft.
pub(crate) struct Network {
    pub(crate) cluster_id: u64,
    pub(crate) me: NodeId,
    pub(crate) dialer: crate::tls::Dialer,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            cluster_id: self.cluster_id,
            me: self.me,
            target,
            node: node.clone(),
            dialer: self.dialer.clone(),
            client: None,
            refused_logged: false,
        }
    }
}

/// The client of one target node, connected on first use.
pub(crate) struct PeerClient {
    cluster_id: u64,
    me: NodeId,
    target: NodeId,
    node: Node,
    dialer: crate::tls::Dialer,
    client: Option<ControlClient<Channel>>,
    /// Whether a refusal by the target (wrong cluster or node id at its address) was logged.
    refused_logged: bool,
}

/// Why a call did not get a reply from the target's Raft.
enum Failure {
    Unreachable(Unreachable),
    Timeout(Timeout<NodeId>),
    Network(NetworkError),
}

impl Failure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, Node, E> {
        match self {
            Failure::Unreachable(e) => RPCError::Unreachable(e),
            Failure::Timeout(e) => RPCError::Timeout(e),
            Failure::Network(e) => RPCError::Network(e),
        }
    }
}

/// A gRPC client of `Control` on a lazily connected channel, with the node's message size bounds.
pub(crate) fn control_client(
    dialer: &crate::tls::Dialer,
    address: &str,
) -> Result<ControlClient<Channel>, tonic::transport::Error> {
    let channel = crate::transport::peer_channel(dialer, address)?;
    Ok(ControlClient::new(channel)
        .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX))
}

/// Whether a failed call certainly never reached the target: its connection could not be made.
pub(crate) fn never_sent(status: &Status) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

impl PeerClient {
    fn client(&mut self) -> Result<&mut ControlClient<Channel>, Failure> {
        if self.client.is_none() {
            let client = control_client(&self.dialer, &self.node.addr).map_err(|e| {
                warn!(target_node = self.target, address = %self.node.addr, error = %e, "control-plane peer address is not a valid endpoint");
                Failure::Unreachable(Unreachable::new(&e))
            })?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("client was just set"))
    }

    /// Sends one encoded Raft request and returns the encoded reply.
    async fn send(&mut self, rpc: RPCTypes, payload: Vec<u8>, option: &RPCOption) -> Result<Bytes, Failure> {
        let (cluster_id, from, to) = (self.cluster_id, self.me, self.target);
        let mut request = tonic::Request::new(RaftRequest { cluster_id, from, to, payload: payload.into() });
        request.set_timeout(option.hard_ttl());
        let client = self.client()?;
        let reply = match rpc {
            RPCTypes::AppendEntries => client.append_entries(request).await,
            RPCTypes::Vote => client.vote(request).await,
            RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
        };
        match reply {
            Ok(reply) => Ok(reply.into_inner().payload),
            Err(status) => Err(self.failure(rpc, status, option)),
        }
    }

    fn failure(&mut self, rpc: RPCTypes, status: Status, option: &RPCOption) -> Failure {
        match status.code() {
            Code::Unavailable => {
                debug!(target_node = self.target, address = %self.node.addr, %status, "control-plane peer unreachable");
                Failure::Unreachable(Unreachable::new(&status))
            }
            Code::DeadlineExceeded | Code::Cancelled => Failure::Timeout(Timeout {
                action: rpc,
                id: self.me,
                target: self.target,
                timeout: option.hard_ttl(),
            }),
            Code::FailedPrecondition => {
                // Another cluster or another node answers at this address: a configuration
                // mistake, logged once per client rather than at every heartbeat.
                if !std::mem::replace(&mut self.refused_logged, true) {
                    warn!(
                        target_node = self.target, address = %self.node.addr, %status,
                        "control-plane peer refused our request: is the address of another node or cluster?"
                    );
                }
                Failure::Unreachable(Unreachable::new(&status))
            }
            _ => Failure::Network(NetworkError::new(&status)),
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e))
    }
}

fn undecodable<E: std::error::Error>(e: wire::DecodeError) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let payload = wire::encode(&rpc);
        if payload.len() > RAFT_PAYLOAD_BYTES_MAX {
            if entries <= 1 {
                // Commands are bounded (COMMAND_BYTES_MAX) far below the payload bound.
                panic!(
                    "one control-plane log entry encodes to {} bytes, over {RAFT_PAYLOAD_BYTES_MAX}",
                    payload.len()
                );
            }
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)));
        }
        let reply = self.send(RPCTypes::AppendEntries, payload, &option).await.map_err(Failure::into_rpc)?;
        let result: Result<AppendEntriesResponse<NodeId>, Fatal<NodeId>> =
            wire::decode("append-entries reply", &reply).map_err(undecodable)?;
        result.map_err(|fatal| self.remote(RaftError::Fatal(fatal)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let payload = wire::encode(&rpc);
        let reply =
            self.send(RPCTypes::InstallSnapshot, payload, &option).await.map_err(Failure::into_rpc)?;
        let result: Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> =
            wire::decode("install-snapshot reply", &reply).map_err(undecodable)?;
        result.map_err(|e| self.remote(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let payload = wire::encode(&rpc);
        let reply = self.send(RPCTypes::Vote, payload, &option).await.map_err(Failure::into_rpc)?;
        let result: Result<VoteResponse<NodeId>, Fatal<NodeId>> =
            wire::decode("vote reply", &reply).map_err(undecodable)?;
        result.map_err(|fatal| self.remote(RaftError::Fatal(fatal)))
    }
}
