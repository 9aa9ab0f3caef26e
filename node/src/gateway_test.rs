//! The gateway's handlers against a one-node runtime in process (a one-replica epoxy driver over
//! in-memory storage, the example actors), through `tower::ServiceExt::oneshot`.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt as _;

use super::*;
use crate::actor::runtime::{Runtime, RuntimeConfig};
use crate::actor::{examples, router};
use crate::auth::Token;
use crate::driver::{self, Peers};
use mortar_epoxy::{Config as EpoxyConfig, Replica, ReplicaId};
use mortar_storage::MemStorage;

const ME: u32 = 1;
const CLIENT: &str = "client-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
/// Bound on waiting for a server-sent event.
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn gateway_with(tokens: Tokens) -> axum::Router {
    let epoxy = EpoxyConfig::new(ReplicaId(ME), vec![ReplicaId(ME)]).unwrap();
    let storage = Arc::new(MemStorage::new());
    let (driver, _thread) = driver::start(
        Replica::new(epoxy),
        storage.clone(),
        Peers::new(),
        Duration::from_secs(5),
        None,
        Default::default(),
    )
    .unwrap();
    let runtime = Runtime::new(RuntimeConfig::new(ME), examples::registry(), driver, storage);
    let router = Router::new(runtime, router::single_node_view(ME));
    routes(Gateway::new(router, Arc::new(tokens)))
}

fn gateway() -> axum::Router {
    gateway_with(Tokens::default())
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).body(body.into()).unwrap()
}

/// Sends `request`; answers (status, headers, body text).
async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn status_and_body(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let (status, _, body) = send(app, request).await;
    (status, body)
}

/// The `code` of a JSON error body, checking its shape.
fn error_code(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(value["message"].is_string(), "{body}");
    assert!(value["metadata"].is_null(), "{body}");
    assert_eq!(value.as_object().unwrap().len(), 3, "{body}");
    value["code"].as_str().unwrap().to_string()
}

#[test]
fn action_args_take_a_body_or_the_seeds_envelope() {
    assert_eq!(action_args(b"").unwrap(), "");
    assert_eq!(action_args(b"  \n").unwrap(), "");
    assert_eq!(action_args(br#"{"amount": 5}"#).unwrap(), r#"{"amount": 5}"#);
    assert_eq!(action_args(b"7").unwrap(), "7");
    assert_eq!(action_args(br#"{"args": [5]}"#).unwrap(), "5");
    assert_eq!(action_args(br#"{"args": [{"amount": 5}]}"#).unwrap(), r#"{"amount":5}"#);
    assert_eq!(action_args(br#"{"args": []}"#).unwrap(), "");
    // Not the envelope: passed on as they are.
    assert_eq!(action_args(br#"{"args": 5}"#).unwrap(), r#"{"args": 5}"#);
    assert_eq!(action_args(br#"{"args": [1], "x": 2}"#).unwrap(), r#"{"args": [1], "x": 2}"#);
    let two = action_args(br#"{"args": [1, 2]}"#).unwrap_err();
    assert_eq!((two.status, &*two.code), (StatusCode::BAD_REQUEST, "invalid_argument"));
    assert!(two.message.contains("2 values"), "{}", two.message);
    let malformed = action_args(b"{amount: 5").unwrap_err();
    assert_eq!((malformed.status, &*malformed.code), (StatusCode::BAD_REQUEST, "invalid_argument"));
    assert!(action_args(&[0xff, 0xfe]).is_err());
}

#[test]
fn query_strings_decode_percent_and_plus() {
    let pairs = query_pairs(Some("event=new%43ount&event=a+b&wait&&x=%7B%7D")).unwrap();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(pairs, [("event", "newCount"), ("event", "a b"), ("wait", ""), ("x", "{}")]);
    assert!(query_pairs(None).unwrap().is_empty());
    assert!(query_pairs(Some("x=%ff")).is_err());
    let many = vec!["event=a"; QUERY_PARAMS_MAX + 1].join("&");
    assert!(query_pairs(Some(&many)).is_err());
}

#[tokio::test]
async fn every_call_error_has_its_status_code_and_retry_hint() {
    let cases = [
        (CallError::NotFound("a".into()), 404, "not_found", false),
        (CallError::InvalidArgument("b".into()), 400, "invalid_argument", false),
        (CallError::Rejected("c".into()), 409, "rejected", false),
        (CallError::Overloaded("d".into()), 429, "overloaded", true),
        (CallError::Retry("e".into()), 503, "not_applied", true),
        (CallError::Unavailable("f".into()), 504, "outcome_unknown", false),
        (CallError::Internal("g".into()), 500, "internal", false),
    ];
    for (error, status, code, retry_after) in cases {
        let message = error.to_string();
        let response = GatewayError::from(error).into_response();
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], JSON);
        let hint = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(hint, retry_after.then(|| "1".to_string()), "{code}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({ "code": code, "message": message, "metadata": null }));
    }
    // A user error: 409 with the actor's own code, message and metadata.
    let metadata = serde_json::json!({ "balance": 5, "needed": 10 });
    let user = CallError::User { code: "insufficient_funds".into(), message: "too low".into(), metadata };
    let response = GatewayError::from(user).into_response();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.headers().get(header::RETRY_AFTER).is_none());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "code": "insufficient_funds",
            "message": "too low",
            "metadata": { "balance": 5, "needed": 10 },
        })
    );
}

#[tokio::test]
async fn calls_answer_outputs_and_json_errors() {
    let app = gateway();
    let increment = "/actors/counter/c1/actions/increment";
    let (status, headers, body) = send(&app, post(increment, r#"{"amount": 5}"#)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "5"));
    assert_eq!(headers[header::CONTENT_TYPE], JSON);
    assert_eq!(headers[SERVED_BY_HEADER], "1");
    assert_eq!(
        status_and_body(&app, post(increment, r#"{"args": [{"amount": 2}]}"#)).await,
        (StatusCode::OK, "7".into())
    );
    assert_eq!(status_and_body(&app, post(increment, "")).await, (StatusCode::OK, "8".into()));
    let get_count = "/actors/counter/c1/actions/getCount";
    assert_eq!(status_and_body(&app, post(get_count, r#"{"args": []}"#)).await, (StatusCode::OK, "8".into()));

    // The creation input, only when the call creates the actor.
    let created = Request::post("/actors/counter/c2/actions/getCount")
        .header(INPUT_HEADER, r#"{"start": 100}"#)
        .body(Body::empty())
        .unwrap();
    assert_eq!(status_and_body(&app, created).await, (StatusCode::OK, "100".into()));

    for (uri, body, status, code) in [
        ("/actors/nope/c1/actions/increment", "", 404, "not_found"),
        ("/actors/counter/c1/actions/nope", "", 404, "not_found"),
        ("/actors/counter/c1/actions/$send", "", 404, "not_found"),
        (increment, "{amount: 5", 400, "invalid_argument"),
        (increment, r#"{"amont": 5}"#, 400, "invalid_argument"),
        (increment, r#"{"args": [1, 2]}"#, 400, "invalid_argument"),
        ("/actors/counter/c1/actions/increment?input=1", "", 400, "invalid_argument"),
    ] {
        let (got, response) = status_and_body(&app, post(uri, body)).await;
        assert_eq!(got.as_u16(), status, "{uri} {body}: {response}");
        assert_eq!(error_code(&response), code, "{uri} {body}: {response}");
    }
    // An overflow is the counter's user error: 409 with its own code, message and metadata.
    let (got, response) = status_and_body(&app, post(increment, r#"{"amount": 9223372036854775807}"#)).await;
    assert_eq!(got, StatusCode::CONFLICT, "{response}");
    let expected = serde_json::json!({
        "code": "overflow",
        "message": "adding 9223372036854775807 to 8 overflows",
        "metadata": { "count": 8, "amount": i64::MAX },
    });
    assert_eq!(serde_json::from_str::<serde_json::Value>(&response).unwrap(), expected);
    // A refused increment changed nothing.
    assert_eq!(status_and_body(&app, post(get_count, "")).await, (StatusCode::OK, "8".into()));

    let big = vec![b' '; ARGS_BYTES_MAX + 1024];
    let (status, body) = status_and_body(&app, post(increment, big)).await;
    assert_eq!((status, error_code(&body).as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
}

#[tokio::test]
async fn lists_actor_types_with_their_actions_events_and_queues() {
    let app = gateway();
    let (status, body) = status_and_body(&app, Request::get("/actors").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let actors = listing["actors"].as_array().unwrap();
    let names: Vec<&str> = actors.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chatRoom", "counter", "reminder", "worker"]);
    let counter = &actors[1];
    assert_eq!(
        counter,
        &serde_json::json!({
            "name": "counter", "actions": ["getCount", "increment"], "events": ["newCount"], "queues": []
        })
    );
    assert_eq!(actors[3]["queues"], serde_json::json!(["jobs"]));
}

#[tokio::test]
async fn queue_messages_answer_their_sequence_number() {
    let app = gateway();
    let (status, body) = status_and_body(&app, post("/actors/worker/w1/queues/jobs", r#"{"id": "a"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = first["id"].as_u64().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(first, 0, "a new queue numbers from 0");
    let (status, body) =
        status_and_body(&app, post("/actors/worker/w1/queues/jobs?wait=true", r#"{"id": "b"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(second["id"].as_u64().unwrap() > first, "{body}");
    // Handled (wait=true): the worker lists it.
    let (status, body) = status_and_body(&app, post("/actors/worker/w1/actions/processed", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"b\""), "{body}");

    for (uri, body, status) in [
        ("/actors/worker/w1/queues/nope", "{}", 404),
        ("/actors/worker/w1/queues/jobs", "not json", 400),
        ("/actors/worker/w1/queues/jobs", "", 400),
        ("/actors/worker/w1/queues/jobs?wait=maybe", "{}", 400),
        ("/actors/worker/w1/queues/jobs?later=1", "{}", 400),
    ] {
        let (got, response) = status_and_body(&app, post(uri, body)).await;
        assert_eq!(got.as_u16(), status, "{uri} {body}: {response}");
        error_code(&response);
    }
}

/// The next chunk of an SSE body that holds more than a keep-alive, as text.
async fn next_event(body: &mut (impl futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin)) -> String {
    let chunk = tokio::time::timeout(EVENT_WAIT, body.next()).await.expect("an event in time");
    String::from_utf8(chunk.expect("the stream is open").unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn events_stream_as_server_sent_events() {
    let app = gateway();
    let request = Request::get("/actors/counter/s1/events?event=newCount").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    let first = next_event(&mut body).await;
    assert!(first.contains(": subscribed") && first.contains("retry: 1000"), "{first:?}");
    let (status, _) =
        status_and_body(&app, post("/actors/counter/s1/actions/increment", r#"{"amount": 3}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next_event(&mut body).await, "event: newCount\ndata: {\"count\":3}\n\n");

    for (uri, status) in [
        ("/actors/counter/s1/events?event=nope", 400),
        ("/actors/nope/s1/events", 404),
        ("/actors/counter/s1/events?other=1", 400),
    ] {
        let (got, response) = status_and_body(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(got.as_u16(), status, "{uri}: {response}");
        error_code(&response);
    }
}

#[tokio::test]
async fn with_tokens_the_gateway_needs_one_of_them() {
    let tokens =
        Tokens { client: Some(Token::new(CLIENT).unwrap()), admin: Some(Token::new(ADMIN).unwrap()) };
    let app = gateway_with(tokens);
    let with = |token: Option<&str>| {
        let mut request = Request::post("/actors/counter/a1/actions/increment");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    };
    for token in [None, Some("not-the-token-at-all-0001"), Some("")] {
        let (status, headers, body) = send(&app, with(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(error_code(&body), "unauthenticated");
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            assert!(!body.contains(token), "{body}");
        }
    }
    assert_eq!(status_and_body(&app, with(Some(CLIENT))).await, (StatusCode::OK, "1".into()));
    assert_eq!(status_and_body(&app, with(Some(ADMIN))).await, (StatusCode::OK, "2".into()));
    let (status, _) = status_and_body(&app, Request::get("/actors").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
