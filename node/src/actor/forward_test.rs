//! Forwarded calls over one stream: batching, answers in any order, what a caller is told when
//! the stream breaks or the owner cannot be reached, the error kinds on the wire, and the owner's
//! side (a real node, through a real gRPC server).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mortar_proto::internal::v1::actor_forward_client::ActorForwardClient;
use mortar_proto::internal::v1::actor_forward_server::{ActorForward, ActorForwardServer};
use mortar_proto::internal::v1::{ForwardedCalls, ForwardedReplies, ForwardedReply};
use mortar_proto::v1::{ActorCallRequest, ActorCallResponse};
use tonic::{Request, Response, Status};

use super::*;
use crate::actor::forward::{self, ForwardService, Forwarder, RepliesStream};

/// Serves `service` on a loopback port; answers its address.
async fn serve<S: ActorForward>(service: S) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ActorForwardServer::new(service))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (address, server)
}

fn forwarder_to(address: &str) -> Forwarder {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect_lazy();
    Forwarder::spawn(2, ActorForwardClient::new(crate::auth::with_token(channel, None)))
}

fn request(key: &str, action: &str, args: &str) -> ActorCallRequest {
    ActorCallRequest {
        actor: "counter".into(),
        key: key.into(),
        action: action.into(),
        args_json: args.into(),
        forwarded: true,
        input_json: String::new(),
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// A stand-in owner: records the size of every batch it gets; on stream number `fail_stream`
/// (counting from 0) it ends the stream with an error instead of answering; otherwise it answers
/// each batch's calls in reverse order with the call's key as the result.
struct FakeOwner {
    batches: Arc<Mutex<Vec<usize>>>,
    streams: Arc<AtomicUsize>,
    fail_stream: Option<usize>,
}

#[tonic::async_trait]
impl ActorForward for FakeOwner {
    type CallsStream = RepliesStream;

    async fn calls(
        &self,
        request: Request<tonic::Streaming<ForwardedCalls>>,
    ) -> Result<Response<Self::CallsStream>, Status> {
        let fail = self.fail_stream == Some(self.streams.fetch_add(1, Ordering::SeqCst));
        let batches = self.batches.clone();
        let stream = futures::stream::unfold(Some(request.into_inner()), move |incoming| {
            let batches = batches.clone();
            async move {
                let mut incoming = incoming?;
                let batch = incoming.message().await.ok()??;
                batches.lock().unwrap().push(batch.calls.len());
                if fail {
                    return Some((Err(Status::unavailable("the owner went away")), None));
                }
                let replies = batch
                    .calls
                    .into_iter()
                    .rev()
                    .map(|call| ForwardedReply {
                        id: call.id,
                        ok: Some(ActorCallResponse {
                            result_json: call.call.unwrap().key,
                            served_by: 2,
                            generation: 1,
                        }),
                        error: None,
                    })
                    .collect();
                Some((Ok(ForwardedReplies { replies }), Some(incoming)))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn fake_owner(fail_stream: Option<usize>) -> (FakeOwner, Arc<Mutex<Vec<usize>>>) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    (FakeOwner { batches: batches.clone(), streams: Arc::new(AtomicUsize::new(0)), fail_stream }, batches)
}

#[tokio::test]
async fn calls_queued_together_travel_in_one_message_and_each_caller_gets_its_own_answer() {
    let (owner, batches) = fake_owner(None);
    let (address, server) = serve(owner).await;
    let forwarder = forwarder_to(&address);
    // On this single-threaded runtime every call is queued before the forwarder's task runs.
    let calls = (0..50).map(|i| forwarder.call(request(&format!("k{i}"), "getCount", ""), TIMEOUT));
    let answers = futures::future::join_all(calls).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap().result_json, format!("k{i}"), "answered in reverse, matched by id");
    }
    assert_eq!(*batches.lock().unwrap(), vec![50]);
    server.abort();
}

#[tokio::test]
async fn a_broken_stream_leaves_the_outcome_unknown_and_the_next_call_opens_another() {
    let (owner, batches) = fake_owner(Some(0));
    let (address, server) = serve(owner).await;
    let forwarder = forwarder_to(&address);
    match forwarder.call(request("a", "increment", "{}"), TIMEOUT).await {
        Err(CallError::Unavailable(why)) => assert!(why.contains("the outcome is unknown"), "{why}"),
        other => panic!("a call sent on a stream that broke before its answer: {other:?}"),
    }
    let answer = forwarder.call(request("b", "increment", "{}"), TIMEOUT).await.unwrap();
    assert_eq!(answer.result_json, "b");
    assert_eq!(*batches.lock().unwrap(), vec![1, 1], "one call on each of two streams");
    server.abort();
}

#[tokio::test]
async fn a_call_to_an_owner_that_cannot_be_reached_was_not_applied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let forwarder = forwarder_to(&address);
    let error = forwarder.call(request("a", "increment", "{}"), TIMEOUT).await.unwrap_err();
    assert!(error.is_retry_safe(), "nothing was sent, so retrying is safe: {error:?}");
}

#[test]
fn every_call_error_crosses_the_stream_as_it_was() {
    let errors = [
        CallError::NotFound("no such action".into()),
        CallError::InvalidArgument("bad key".into()),
        CallError::Rejected("no".into()),
        CallError::User {
            code: "overflow".into(),
            message: "too big".into(),
            metadata: serde_json::json!({"count": 3}),
        },
        CallError::User { code: "refused".into(), message: "m".into(), metadata: serde_json::Value::Null },
        CallError::Retry("moved".into()),
        CallError::Unavailable("unknown".into()),
        CallError::Overloaded("full".into()),
        CallError::Internal("bug".into()),
    ];
    for error in errors {
        assert_eq!(forward::failure_to_error(forward::error_to_failure(error.clone())), error);
    }
}

#[test]
fn a_failure_that_does_not_decode_is_an_internal_error_that_says_why() {
    let unknown =
        mortar_proto::internal::v1::CallFailure { kind: 99, message: "m".into(), ..Default::default() };
    assert!(
        matches!(forward::failure_to_error(unknown), CallError::Internal(why) if why.contains("unknown kind 99"))
    );
    let bad_code = forward::error_to_failure(CallError::User {
        code: "ok".into(),
        message: "m".into(),
        metadata: serde_json::Value::Null,
    });
    let bad_code = mortar_proto::internal::v1::CallFailure { user_code: "not ok!".into(), ..bad_code };
    assert!(
        matches!(forward::failure_to_error(bad_code), CallError::Internal(why) if why.contains("bad code"))
    );
    let bad_metadata = mortar_proto::internal::v1::CallFailure {
        kind: mortar_proto::internal::v1::call_failure::Kind::User.into(),
        user_code: "c".into(),
        user_metadata_json: "{".into(),
        ..Default::default()
    };
    assert!(
        matches!(forward::failure_to_error(bad_metadata), CallError::Internal(why) if why.contains("not JSON"))
    );
}

#[tokio::test]
async fn the_owner_runs_forwarded_calls_with_the_checks_of_a_call() {
    let node = node();
    let (address, server) = serve(ForwardService { router: node.router.clone() }).await;
    let forwarder = forwarder_to(&address);
    let answer = forwarder.call(request("f-1", "increment", r#"{"amount":5}"#), TIMEOUT).await.unwrap();
    assert_eq!((answer.result_json.as_str(), answer.served_by), ("5", ME));
    let read = node.call("counter", "f-1", "getCount", "").await.unwrap();
    assert_eq!(read.result_json, "5", "the forwarded write is the actor's");
    // The owner's errors come back with their kind: a user error with its code and metadata.
    let overflow = format!(r#"{{"amount":{}}}"#, i64::MAX);
    match forwarder.call(request("f-1", "increment", &overflow), TIMEOUT).await {
        Err(CallError::User { code, metadata, .. }) => {
            assert_eq!(code, "overflow");
            assert_eq!(metadata["count"], 5);
        }
        other => panic!("an overflow is the counter's user error: {other:?}"),
    }
    assert!(matches!(
        forwarder.call(request("f-1", "noSuchAction", ""), TIMEOUT).await,
        Err(CallError::NotFound(_))
    ));
    // This stream was opened without the admin token (no token check here): no admin built-ins.
    match forwarder.call(request("f-1", crate::actor::runtime::INSPECT, ""), TIMEOUT).await {
        Err(CallError::Internal(why)) => assert!(why.contains("needs the admin token"), "{why}"),
        other => panic!("inspect on a stream without the admin token: {other:?}"),
    }
    server.abort();
}
