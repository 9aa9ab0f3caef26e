//! The `mortar.v1.Admin` service.

use crate::driver::DriverHandle;
use crate::node_info::{LocalInfo, Peer, counters_proto, probe};
use mortar_proto::v1::admin_server::Admin;
use mortar_proto::v1::{MemberStatus, StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

pub struct AdminService {
    pub cluster_id: u64,
    pub local: LocalInfo,
    pub peers: Vec<Peer>,
    pub driver: DriverHandle,
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
}
