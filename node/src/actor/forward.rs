//! Calls forwarded to their owner over one stream per pair of nodes
//! (`mortar.internal.v1.ActorForward/Calls`), instead of one gRPC unary call each.
//!
//! A unary call between nodes costs the forwarding node a client-side request (an HTTP/2 stream
//! opened, headers encoded, the channel's buffer task, trailers decoded) and the owner a server
//! side one; measured (`mortar-chaos bench actors --parts calls,ceilings`), that hop cost more CPU
//! than the whole call the owner serves. Here the forwarding node queues each call for the
//! owner's [`Forwarder`]; one task per owner takes what is queued as one batch (up to
//! [`BATCH_CALLS_MAX`] calls or [`BATCH_BYTES_MAX`] bytes), gives each an id and sends it on the
//! stream; the owner runs every call as a forwarded `Actors/Call` would run ([`Router::call`]
//! with `forwarded`: never forwarded again) and sends the answers back in batches, as they come.
//!
//! What a caller is told matches the unary call's rules: a call that could not be sent because
//! the owner could not be reached was not applied ([`CallError::Retry`]); a call sent whose answer
//! has not come when the stream breaks has an unknown outcome ([`CallError::Unavailable`]); the
//! owner's own errors come back as the owner gave them. Bounds: [`QUEUED_CALLS_MAX`] calls wait
//! to be sent to one owner (more are refused as [`CallError::Overloaded`], not applied) and
//! [`IN_FLIGHT_CALLS_MAX`] are sent and not yet answered on one stream (at both ends: the owner
//! stops reading the stream while that many of its calls run).
//!
//! The service needs what `Actors` needs (a client or admin token) and, with TLS, a node
//! certificate; the admin-only built-in actions ([`ADMIN_BUILTINS`]) run only on a stream opened
//! with the admin token, as on `Actors/Call`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use mortar_proto::internal::v1::actor_forward_client::ActorForwardClient;
use mortar_proto::internal::v1::actor_forward_server::ActorForward;
use mortar_proto::internal::v1::call_failure::Kind;
use mortar_proto::internal::v1::{
    CallFailure, ForwardedCall, ForwardedCalls, ForwardedReplies, ForwardedReply,
};
use mortar_proto::v1::{ActorCallRequest, ActorCallResponse};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::error::CallError;
use super::keys::ActorId;
use super::router::Router;
use super::runtime::{ADMIN_BUILTINS, Reply};
use super::service::{ARGS_BYTES_MAX, CALL_TIMEOUT_MAX};

/// Calls waiting to be sent to one owner.
pub const QUEUED_CALLS_MAX: usize = 4096;
/// Calls sent on one stream and not yet answered.
pub const IN_FLIGHT_CALLS_MAX: usize = 16_384;
/// Most calls, or answers, in one message of the stream.
pub const BATCH_CALLS_MAX: usize = 512;
/// A batch takes no more calls, or answers, once its arguments or results pass this many bytes
/// (one alone may be larger: arguments and input are each at most [`ARGS_BYTES_MAX`]).
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Batches of calls waiting for the stream to take them.
const STREAM_BATCHES_QUEUED: usize = 8;

// The largest batch of calls fits in a gRPC message.
const _: () =
    assert!(BATCH_BYTES_MAX + 2 * ARGS_BYTES_MAX + 64 * 1024 < mortar_proto::GRPC_MESSAGE_BYTES_MAX);

type Answer = oneshot::Sender<Result<Reply, CallError>>;

/// A call waiting to be sent.
struct Queued {
    call: ActorCallRequest,
    timeout: Duration,
    answer: Answer,
}

/// The calls this node forwards to one owner, over one stream (opened when a call comes, again
/// after it breaks). Dropping it ends the stream once the calls queued are sent.
pub struct Forwarder {
    owner: u32,
    queue: mpsc::Sender<Queued>,
}

impl Forwarder {
    /// A forwarder to node `owner` through `client`; its task runs on the current runtime.
    pub fn spawn(owner: u32, client: ActorForwardClient<crate::auth::AuthChannel>) -> Forwarder {
        let (queue, queued) = mpsc::channel(QUEUED_CALLS_MAX);
        tokio::spawn(run(owner, client, queued));
        Forwarder { owner, queue }
    }

    /// Sends `call` to the owner, which has `timeout` to answer it; answers what the owner did,
    /// or why it is not known. The caller bounds the wait.
    pub async fn call(&self, call: ActorCallRequest, timeout: Duration) -> Result<Reply, CallError> {
        let (answer, answered) = oneshot::channel();
        self.queue.try_send(Queued { call, timeout, answer }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CallError::Overloaded(format!(
                "{QUEUED_CALLS_MAX} calls are waiting to be sent to node {}; retry later",
                self.owner
            )),
            mpsc::error::TrySendError::Closed(_) => {
                CallError::Retry(format!("the stream of calls to node {} has stopped; retry", self.owner))
            }
        })?;
        answered.await.unwrap_or_else(|_| {
            Err(CallError::Unavailable(format!(
                "the stream of calls to node {} stopped while it had the call; the outcome is unknown",
                self.owner
            )))
        })
    }
}

/// The forwarder's task: opens a stream when calls are queued, sends them in batches, hands the
/// answers to their callers; on a broken stream, tells the callers still waiting, then waits
/// for the next call. Ends when the [`Forwarder`] is dropped.
async fn run(
    owner: u32,
    mut client: ActorForwardClient<crate::auth::AuthChannel>,
    mut queued: mpsc::Receiver<Queued>,
) {
    let mut next_id = 0u64;
    while let Some(first) = queued.recv().await {
        let mut in_flight: HashMap<u64, Answer> = HashMap::new();
        let (batches, stream) = mpsc::channel::<ForwardedCalls>(STREAM_BATCHES_QUEUED);
        let batch = take_batch(first, &mut queued, &mut in_flight, &mut next_id);
        batches.try_send(batch).expect("a new channel has room for one batch");
        let mut replies = match client.calls(tokio_stream::wrappers::ReceiverStream::new(stream)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                metrics::counter!("mortar_node_actor_forward_streams_broken_total").increment(1);
                // A call that never reached the owner (it could not be reached) may be retried;
                // `from_status` tells that case from others.
                let error = match CallError::from_status(&status) {
                    CallError::Unavailable(why) => CallError::Unavailable(format!(
                        "node {owner} did not take the stream of calls: {why}; the outcome is unknown"
                    )),
                    e => e,
                };
                fail_all(&mut in_flight, &error);
                continue;
            }
        };
        let why = loop {
            tokio::select! {
                call = queued.recv(), if in_flight.len() < IN_FLIGHT_CALLS_MAX => match call {
                    Some(call) => {
                        let batch = take_batch(call, &mut queued, &mut in_flight, &mut next_id);
                        if batches.send(batch).await.is_err() {
                            break "the stream stopped taking calls".to_string();
                        }
                    }
                    None => return, // the router has gone: callers learn from their dropped answers
                },
                reply = replies.message() => match reply {
                    Ok(Some(batch)) => {
                        for reply in batch.replies {
                            if let Some(answer) = in_flight.remove(&reply.id) {
                                let _ = answer.send(decode_reply(reply));
                            }
                        }
                    }
                    Ok(None) => break "the owner ended the stream".to_string(),
                    Err(status) => break format!("the stream broke: {status}"),
                },
            }
            // Callers that gave up (their deadline, the owner declared down) need no answer.
            if in_flight.len() >= IN_FLIGHT_CALLS_MAX / 2 {
                in_flight.retain(|_, answer| !answer.is_closed());
            }
        };
        metrics::counter!("mortar_node_actor_forward_streams_broken_total").increment(1);
        tracing::debug!(owner, calls = in_flight.len(), why, "stream of forwarded calls ended");
        fail_all(
            &mut in_flight,
            &CallError::Unavailable(format!(
                "node {owner} did not answer the call: {why}; the outcome is unknown"
            )),
        );
    }
}

/// `first` and whatever else is queued now, up to a batch, numbered and recorded in `in_flight`.
fn take_batch(
    first: Queued,
    queued: &mut mpsc::Receiver<Queued>,
    in_flight: &mut HashMap<u64, Answer>,
    next_id: &mut u64,
) -> ForwardedCalls {
    let mut calls = Vec::with_capacity(1);
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(Queued { call, timeout, answer }) = next.take() {
        if !answer.is_closed() {
            bytes += call.args_json.len() + call.input_json.len() + call.key.len();
            *next_id += 1;
            in_flight.insert(*next_id, answer);
            calls.push(ForwardedCall {
                id: *next_id,
                call: Some(call),
                timeout_micros: u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX),
            });
        }
        if calls.len() < BATCH_CALLS_MAX && bytes < BATCH_BYTES_MAX {
            next = queued.try_recv().ok();
        }
    }
    ForwardedCalls { calls }
}

fn fail_all(in_flight: &mut HashMap<u64, Answer>, error: &CallError) {
    for (_, answer) in in_flight.drain() {
        let _ = answer.send(Err(error.clone()));
    }
}

/// The caller's outcome of an answer from the owner.
fn decode_reply(reply: ForwardedReply) -> Result<Reply, CallError> {
    match (reply.error, reply.ok) {
        (Some(failure), _) => Err(failure_to_error(failure)),
        (None, Some(ok)) => {
            Ok(Reply { result_json: ok.result_json, generation: ok.generation, served_by: ok.served_by })
        }
        (None, None) => {
            Err(CallError::Internal(format!("the owner answered call {} with nothing", reply.id)))
        }
    }
}

/// A [`CallError`] on the stream.
pub fn error_to_failure(error: CallError) -> CallFailure {
    let (kind, message) = match error {
        CallError::NotFound(m) => (Kind::NotFound, m),
        CallError::InvalidArgument(m) => (Kind::InvalidArgument, m),
        CallError::Rejected(m) => (Kind::Rejected, m),
        CallError::User { code, message, metadata } => {
            let user_metadata_json = if metadata.is_null() { String::new() } else { metadata.to_string() };
            return CallFailure { kind: Kind::User.into(), message, user_code: code, user_metadata_json };
        }
        CallError::Retry(m) => (Kind::Retry, m),
        CallError::Unavailable(m) => (Kind::Unavailable, m),
        CallError::Overloaded(m) => (Kind::Overloaded, m),
        CallError::Internal(m) => (Kind::Internal, m),
    };
    CallFailure { kind: kind.into(), message, ..CallFailure::default() }
}

/// The [`CallError`] a [`CallFailure`] stands for; one that does not decode is the sender's bug.
pub fn failure_to_error(failure: CallFailure) -> CallError {
    let CallFailure { kind, message, user_code, user_metadata_json } = failure;
    match Kind::try_from(kind) {
        Ok(Kind::NotFound) => CallError::NotFound(message),
        Ok(Kind::InvalidArgument) => CallError::InvalidArgument(message),
        Ok(Kind::Rejected) => CallError::Rejected(message),
        Ok(Kind::User) => {
            let metadata = (!user_metadata_json.is_empty()).then_some(user_metadata_json.as_bytes());
            super::error::user_error(&user_code, message, metadata)
        }
        Ok(Kind::Retry) => CallError::Retry(message),
        Ok(Kind::Unavailable) => CallError::Unavailable(message),
        Ok(Kind::Overloaded) => CallError::Overloaded(message),
        Ok(Kind::Internal) => CallError::Internal(message),
        Ok(Kind::Unspecified) | Err(_) => {
            CallError::Internal(format!("the owner failed a call with unknown kind {kind}: {message}"))
        }
    }
}

/// `mortar.internal.v1.ActorForward`: runs the calls other nodes forward to this one.
pub struct ForwardService {
    pub router: Arc<Router>,
}

/// The answers of one stream, in batches.
pub type RepliesStream = Pin<Box<dyn Stream<Item = Result<ForwardedReplies, Status>> + Send>>;

#[tonic::async_trait]
impl ActorForward for ForwardService {
    type CallsStream = RepliesStream;

    async fn calls(
        &self,
        request: Request<tonic::Streaming<ForwardedCalls>>,
    ) -> Result<Response<Self::CallsStream>, Status> {
        let admin = request.extensions().get::<crate::auth::Administrator>().is_some();
        let mut incoming = request.into_inner();
        let (replies, answered) = mpsc::channel::<ForwardedReply>(IN_FLIGHT_CALLS_MAX);
        let router = self.router.clone();
        tokio::spawn(async move {
            let running = Arc::new(Semaphore::new(IN_FLIGHT_CALLS_MAX));
            while let Ok(Some(batch)) = incoming.message().await {
                for forwarded in batch.calls {
                    let Ok(permit) = running.clone().acquire_owned().await else { return };
                    let (router, replies) = (router.clone(), replies.clone());
                    tokio::spawn(async move {
                        let id = forwarded.id;
                        let reply = match serve(&router, forwarded, admin).await {
                            Ok(reply) => ForwardedReply {
                                id,
                                ok: Some(ActorCallResponse {
                                    result_json: reply.result_json,
                                    served_by: reply.served_by,
                                    generation: reply.generation,
                                }),
                                error: None,
                            },
                            Err(e) => ForwardedReply { id, ok: None, error: Some(error_to_failure(e)) },
                        };
                        let _ = replies.send(reply).await;
                        drop(permit);
                    });
                }
            }
        });
        Ok(Response::new(Box::pin(reply_batches(answered))))
    }
}

/// Runs one forwarded call here, with the checks of `Actors/Call`.
async fn serve(router: &Router, forwarded: ForwardedCall, admin: bool) -> Result<Reply, CallError> {
    let Some(call) = forwarded.call else {
        return Err(CallError::InvalidArgument("a forwarded call without its call".into()));
    };
    if call.args_json.len() > ARGS_BYTES_MAX || call.input_json.len() > ARGS_BYTES_MAX {
        return Err(CallError::InvalidArgument(format!(
            "the arguments or the input are more than the limit of {ARGS_BYTES_MAX} bytes"
        )));
    }
    if ADMIN_BUILTINS.contains(&call.action.as_str()) && !admin {
        return Err(CallError::Internal(format!(
            "{} needs the admin token, and node {} forwarded it on a stream opened without it",
            call.action,
            router.node_id()
        )));
    }
    let timeout = Duration::from_micros(forwarded.timeout_micros).min(CALL_TIMEOUT_MAX);
    let input_json = (!call.input_json.trim().is_empty()).then_some(call.input_json);
    let id = ActorId::new(call.actor, call.key);
    router.call(&id, &call.action, call.args_json, input_json, true, Instant::now() + timeout).await
}

/// The answers sent to `answered`, as batches: each takes what has come, up to a batch.
fn reply_batches(
    answered: mpsc::Receiver<ForwardedReply>,
) -> impl Stream<Item = Result<ForwardedReplies, Status>> {
    futures::stream::unfold(answered, |mut answered| async move {
        let first = answered.recv().await?;
        let mut bytes = reply_bytes(&first);
        let mut replies = vec![first];
        while replies.len() < BATCH_CALLS_MAX && bytes < BATCH_BYTES_MAX {
            let Ok(reply) = answered.try_recv() else { break };
            bytes += reply_bytes(&reply);
            replies.push(reply);
        }
        Some((Ok(ForwardedReplies { replies }), answered))
    })
}

fn reply_bytes(reply: &ForwardedReply) -> usize {
    reply.ok.as_ref().map_or(0, |ok| ok.result_json.len())
        + reply.error.as_ref().map_or(0, |e| e.message.len() + e.user_metadata_json.len())
}
