//! What a node says about itself, and how it asks its peers (for `Admin.Status` and readiness).

use crate::driver::DriverHandle;
use mortar_epoxy::Counters;
use mortar_proto::internal::v1::epoxy_client::EpoxyClient;
use mortar_proto::internal::v1::{NodeInfoRequest, NodeInfoResponse};
use mortar_proto::v1::{EpoxyCounters, MemberStatus};
use std::time::Duration;
use tonic::transport::Channel;

/// How long a peer may take to answer a node-info probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone, Debug)]
pub struct LocalInfo {
    pub id: u32,
    pub address: String,
    pub region: String,
}

impl LocalInfo {
    pub fn response(&self, driver: &DriverHandle) -> NodeInfoResponse {
        NodeInfoResponse {
            id: self.id,
            address: self.address.clone(),
            region: self.region.clone(),
            epoxy: Some(counters_proto(driver.counters())),
        }
    }
}

pub fn counters_proto(c: Counters) -> EpoxyCounters {
    EpoxyCounters {
        instances_proposed: c.proposed,
        instances_committed: c.committed,
        instances_executed: c.executed,
        fast_path_commits: c.fast_path,
        slow_path_commits: c.slow_path,
        instances_in_flight: c.in_flight,
    }
}

/// A peer this node can probe.
#[derive(Clone)]
pub struct Peer {
    pub id: u32,
    pub address: String,
    pub client: EpoxyClient<Channel>,
}

/// Asks a peer for its status; an unreachable peer is reported with the reason.
pub async fn probe(cluster_id: u64, peer: &Peer) -> MemberStatus {
    let mut client = peer.client.clone();
    let call = client.node_info(NodeInfoRequest { cluster_id });
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(response)) => {
            let info = response.into_inner();
            MemberStatus {
                id: peer.id,
                address: peer.address.clone(),
                region: info.region,
                reachable: true,
                error: String::new(),
                epoxy: info.epoxy,
            }
        }
        Ok(Err(status)) => {
            unreachable_member(peer, format!("{}: {}", code_name(status.code()), status.message()))
        }
        Err(_) => unreachable_member(peer, format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
    }
}

fn unreachable_member(peer: &Peer, error: String) -> MemberStatus {
    MemberStatus {
        id: peer.id,
        address: peer.address.clone(),
        region: String::new(),
        reachable: false,
        error,
        epoxy: None,
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}").to_lowercase()
}
