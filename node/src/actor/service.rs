//! The gRPC services `mortar.v1.Actors` (call, subscribe) and `mortar.v1.ActorAdmin` (locate,
//! list active actors).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mortar_proto::v1::actor_admin_server::ActorAdmin;
use mortar_proto::v1::actors_server::Actors;
use mortar_proto::v1::{
    ActiveActor, ActorCallRequest, ActorCallResponse, ActorSendRequest, ActorSendResponse,
    ActorSubscribeRequest, DestroyActorRequest, DestroyActorResponse, InspectRequest, InspectResponse,
    ListActiveRequest, ListActiveResponse, LocateRequest, LocateResponse, PatchStateRequest,
    PatchStateResponse,
};
use tonic::{Request, Response, Status};

use super::keys::ActorId;
use super::router::{EventStream, Router};

/// Most actors one `ListActive` returns.
pub const LIST_ACTIVE_MAX: usize = 100_000;
/// `ListActive` limit when the request gives none.
pub const LIST_ACTIVE_DEFAULT: usize = 1000;
/// Longest deadline honoured for a call.
pub const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// Largest JSON arguments accepted.
pub const ARGS_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most event names in one subscription filter.
pub const EVENT_FILTER_NAMES_MAX: usize = 64;

/// `mortar.v1.Actors`.
pub struct ActorsService {
    pub router: Arc<Router>,
}

/// `mortar.v1.ActorAdmin`.
pub struct ActorAdminService {
    pub router: Arc<Router>,
}

/// The deadline of a request: its `grpc-timeout` (bounded), or the node's call timeout.
fn deadline_of<T>(request: &Request<T>, default: Duration) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default)
        .min(CALL_TIMEOUT_MAX);
    Instant::now() + timeout
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (`H M S m u n`).
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Actors for ActorsService {
    async fn call(&self, request: Request<ActorCallRequest>) -> Result<Response<ActorCallResponse>, Status> {
        let deadline = deadline_of(&request, self.router.runtime().config().call_timeout);
        let is_admin = request.extensions().get::<crate::auth::Administrator>().copied();
        let req = request.into_inner();
        if req.args_json.len() > ARGS_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "arguments are {} bytes, more than the limit of {ARGS_BYTES_MAX}",
                req.args_json.len()
            )));
        }
        if req.input_json.len() > ARGS_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "the input is {} bytes, more than the limit of {ARGS_BYTES_MAX}",
                req.input_json.len()
            )));
        }
        let input_json = (!req.input_json.trim().is_empty()).then_some(req.input_json);
        let id = ActorId::new(req.actor, req.key);
        if super::runtime::ADMIN_BUILTINS.contains(&req.action.as_str()) && is_admin.is_none() {
            return Err(Status::permission_denied(format!(
                "{} needs the admin token (`mortar admin destroy`, `mortar inspect`)",
                req.action
            )));
        }
        let reply =
            self.router.call(&id, &req.action, req.args_json, input_json, req.forwarded, deadline).await?;
        Ok(Response::new(ActorCallResponse {
            result_json: reply.result_json,
            served_by: reply.served_by,
            generation: reply.generation,
        }))
    }

    async fn send(&self, request: Request<ActorSendRequest>) -> Result<Response<ActorSendResponse>, Status> {
        let deadline = deadline_of(&request, self.router.runtime().config().call_timeout);
        let req = request.into_inner();
        if req.body_json.len() > ARGS_BYTES_MAX || req.input_json.len() > ARGS_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "the message or the input is more than the limit of {ARGS_BYTES_MAX} bytes"
            )));
        }
        let body: serde_json::Value = serde_json::from_str(&req.body_json)
            .map_err(|e| Status::invalid_argument(format!("the message is not JSON: {e}")))?;
        let args = serde_json::json!({ "queue": req.queue, "body": body, "wait": req.wait }).to_string();
        let input_json = (!req.input_json.trim().is_empty()).then_some(req.input_json);
        let id = ActorId::new(req.actor, req.key);
        let reply = self.router.call(&id, super::runtime::SEND, args, input_json, false, deadline).await?;
        let id = reply.result_json.parse().map_err(|e| {
            Status::internal(format!("the owner answered a send with {:?}: {e}", reply.result_json))
        })?;
        Ok(Response::new(ActorSendResponse { id, served_by: reply.served_by, handled: req.wait }))
    }

    type SubscribeStream = EventStream;
    type OpenConnectionStream = super::connection::ConnectStream;

    async fn open_connection(
        &self,
        request: Request<tonic::Streaming<mortar_proto::v1::ConnectRequest>>,
    ) -> Result<Response<Self::OpenConnectionStream>, Status> {
        let stream = super::connection::serve(self.router.clone(), request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn subscribe(
        &self,
        request: Request<ActorSubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        if req.events.len() > EVENT_FILTER_NAMES_MAX {
            return Err(Status::invalid_argument(format!(
                "{} event names given, at most {EVENT_FILTER_NAMES_MAX} allowed",
                req.events.len()
            )));
        }
        let id = ActorId::new(req.actor, req.key);
        let stream = self.router.subscribe(id, req.events, req.forwarded).await?;
        Ok(Response::new(stream))
    }
}

#[tonic::async_trait]
impl ActorAdmin for ActorAdminService {
    async fn locate(&self, request: Request<LocateRequest>) -> Result<Response<LocateResponse>, Status> {
        let req = request.into_inner();
        let id = ActorId::new(req.actor, req.key);
        id.validate().map_err(Status::invalid_argument)?;
        // As a call would: an unregistered type has no owner to report.
        self.router.runtime().registry().check_actor(id.name())?;
        let view = self.router.view();
        let owner = self.router.owner(&id);
        let generation = self.router.runtime().generation_of(&id);
        Ok(Response::new(LocateResponse {
            node_id: owner.node,
            address: owner.address,
            answered_by: self.router.node_id(),
            active_here: generation.is_some(),
            generation: generation.unwrap_or(0),
            live_members: view.ids(),
        }))
    }

    async fn list_active(
        &self,
        request: Request<ListActiveRequest>,
    ) -> Result<Response<ListActiveResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => LIST_ACTIVE_DEFAULT,
            n => (n as usize).min(LIST_ACTIVE_MAX),
        };
        let (listed, total) = self.router.runtime().list(limit);
        let actors = listed
            .into_iter()
            .map(|a| ActiveActor {
                actor: a.id.name().to_string(),
                key: a.id.key().to_string(),
                generation: a.generation,
                calls: a.calls,
                idle_ms: a.idle.as_millis() as u64,
            })
            .collect();
        Ok(Response::new(ListActiveResponse { node_id: self.router.node_id(), total: total as u64, actors }))
    }

    async fn destroy(
        &self,
        request: Request<DestroyActorRequest>,
    ) -> Result<Response<DestroyActorResponse>, Status> {
        let deadline = deadline_of(&request, self.router.runtime().config().call_timeout);
        let req = request.into_inner();
        let id = ActorId::new(req.actor, req.key);
        let reply =
            self.router.call(&id, super::runtime::DESTROY, String::new(), None, false, deadline).await?;
        Ok(Response::new(DestroyActorResponse { served_by: reply.served_by }))
    }

    async fn inspect(&self, request: Request<InspectRequest>) -> Result<Response<InspectResponse>, Status> {
        let deadline = deadline_of(&request, self.router.runtime().config().call_timeout);
        let req = request.into_inner();
        let part = if req.part.is_empty() { "summary".to_string() } else { req.part };
        let args = serde_json::json!({
            "part": part,
            "prefix": req.prefix,
            "after": (!req.after.is_empty()).then_some(req.after),
            "limit": (req.limit > 0).then_some(req.limit),
        })
        .to_string();
        let id = ActorId::new(req.actor, req.key);
        let reply = self.router.call(&id, super::runtime::INSPECT, args, None, false, deadline).await?;
        Ok(Response::new(InspectResponse { json: reply.result_json, served_by: reply.served_by }))
    }

    async fn patch_state(
        &self,
        request: Request<PatchStateRequest>,
    ) -> Result<Response<PatchStateResponse>, Status> {
        let deadline = deadline_of(&request, self.router.runtime().config().call_timeout);
        let req = request.into_inner();
        if req.state_json.len() > ARGS_BYTES_MAX {
            return Err(Status::invalid_argument(format!("the state is more than {ARGS_BYTES_MAX} bytes")));
        }
        let state: serde_json::Value = serde_json::from_str(&req.state_json)
            .map_err(|e| Status::invalid_argument(format!("the state is not JSON: {e}")))?;
        let args = serde_json::json!({ "state": state }).to_string();
        let id = ActorId::new(req.actor, req.key);
        let reply = self.router.call(&id, super::runtime::PATCH_STATE, args, None, false, deadline).await?;
        Ok(Response::new(PatchStateResponse { served_by: reply.served_by, generation: reply.generation }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("1999m"), Some(Duration::from_millis(1999)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }
}
