//! The HTTP/JSON gateway: actors for any HTTP client (curl, a browser, Python), on every node's
//! HTTP listener (`--http`), beside `/metrics`.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /actors/{name}/{key}/actions/{action}`, the action's JSON as body | 200, the action's JSON output |
//! | `POST /actors/{name}/{key}/queues/{queue}[?wait=true]`, a JSON message as body | 200, `{"id": N}` |
//! | `GET /actors/{name}/{key}/events[?event=NAME...]` | server-sent events, one per actor event |
//! | `GET /actors` | `{"actors": [{"name", "actions", "events", "queues"}]}` |
//! | `GET /actors/{name}/{key}/connect[?params=JSON]` | a connection, as server-sent events (see [`conn`]) |
//! | `POST /actors/{name}/{key}/connections/{session}/actions/{action}` | an action over that connection |
//!
//! ```console
//! $ curl -X POST localhost:7200/actors/counter/user-42/actions/increment -d '{"amount": 5}'
//! 5
//! $ curl -X POST localhost:7200/actors/counter/user-42/actions/increment -d '{"args": [{"amount": 5}]}'
//! 10
//! $ curl -X POST localhost:7200/actors/counter/user-7/actions/getCount -H 'x-mortar-input: {"start": 100}'
//! 100
//! $ curl -N localhost:7200/actors/counter/user-42/events
//! : subscribed
//! event: newCount
//! data: {"count":11}
//! ```
//!
//! **Calls.** An action's body is its JSON arguments, as `mortar call` takes them; an empty body
//! means no arguments. A body that is an object whose only field is `args`, an array, is read as
//! the RivetKit envelope: `{"args": [x]}` calls with `x`, `{"args": []}` without arguments, and
//! more elements are refused. The header `x-mortar-input` carries the creation input
//! (`--input`, used only if the call creates the actor; visible ASCII, so `\u`-escape other
//! characters). Calls go through [`Router::call`] like gRPC ones (forwarded to the owner), with
//! the node's call timeout (twice `--request-timeout-ms`). A key with `/` in it is
//! percent-encoded (`%2F`). The runtime's own actions (`$...`) are not reachable here: a queue
//! message goes to `/queues/{queue}` (the runtime's `$send`), and `?wait=true` answers once the
//! actor's run loop has handled it.
//!
//! **Errors** are JSON, `{"code": ..., "message": ..., "metadata": ...}`, with the status that
//! says what to do; `metadata` is `null` but for a user error:
//!
//! | Status | `code` | Meaning |
//! |---|---|---|
//! | 400 | `invalid_argument` | malformed JSON, name, key, query or arguments |
//! | 401 | `unauthenticated` | the node has tokens and the request none, or a wrong one |
//! | 404 | `not_found` | no such actor type or action (or an actor that needs an input) |
//! | 409 | `rejected` | the action refused; the actor's state is unchanged |
//! | 409 | the actor's own | a user error ([`ActorError::user`](crate::actor::ActorError::user)): its code, message and metadata |
//! | 413 | `payload_too_large` | a body over [`ARGS_BYTES_MAX`] |
//! | 429 | `overloaded` | too many calls queued; not applied, retry after `Retry-After` |
//! | 500 | `internal` | a bug or corrupt data; for the actor's own code, `internal error (id …); see the log of node N` |
//! | 503 | `not_applied` | certainly not applied (the actor is moving); retry after `Retry-After` |
//! | 504 | `outcome_unknown` | no answer in time: the call may or may not have been applied |
//!
//! ```console
//! $ curl -X POST localhost:7200/actors/account/a1/actions/withdraw -d '{"cents": 500}'
//! {"code":"insufficient_funds","message":"the balance is too low","metadata":{"balance":100}}
//! ```
//!
//! A user error's code is the actor's to choose and may be any of the codes above too: the
//! status (409) tells that it is the actor's.
//!
//! **Events.** `GET .../events` answers `text/event-stream`: first a comment `: subscribed`
//! (with `retry: 1000`) once the subscription is made, then `event: <name>` and `data: <json>`
//! per event (`?event=NAME`, repeated, keeps only those). The stream closes, after a comment
//! saying why, when the subscription ends (the actor moved, the subscriber fell behind): the
//! client subscribes again, as `EventSource` does by itself and `mortar subscribe` does. A
//! subscription the owner could not take (it is unreachable or moving) is retried by the node
//! until the call timeout, so a reconnecting client is not told 503 during a failover.
//! Events emitted between two subscriptions are not seen.
//!
//! **Auth.** When the node has a client or admin token (`--auth-token-file`,
//! `--admin-token-file`), every gateway request needs `Authorization: Bearer <token>` (either
//! token; see [`crate::auth`]); `/metrics`, `/healthz` and `/readyz` stay open. Each request is
//! counted in `mortar_node_gateway_requests_total{route, status}`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;

use crate::actor::error::CallError;
use crate::actor::keys::ActorId;
use crate::actor::router::{CALL_ATTEMPTS_MAX, EventStream, RETRY_BACKOFF, Router};
use crate::actor::runtime::SEND;
pub use crate::actor::service::ARGS_BYTES_MAX;
use crate::actor::service::EVENT_FILTER_NAMES_MAX;
use crate::auth::{Level, Refusal, Tokens};

/// The header carrying a call's creation input.
pub const INPUT_HEADER: &str = "x-mortar-input";
/// The header naming the node that ran an action.
pub const SERVED_BY_HEADER: &str = "x-mortar-served-by";
/// What `Retry-After` says on a 429 or 503, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;
/// How long an SSE client waits before subscribing again (the `retry:` field).
pub const SSE_RETRY: Duration = Duration::from_secs(1);
/// Most parameters in one query string.
const QUERY_PARAMS_MAX: usize = EVENT_FILTER_NAMES_MAX + 8;
/// Content type of JSON answers.
const JSON: &str = "application/json";

/// What the gateway's handlers read. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    router: Arc<Router>,
    tokens: Arc<Tokens>,
    sessions: Arc<conn::Sessions>,
}

impl Gateway {
    /// A gateway calling actors through `router`, admitting requests with `tokens` (none: all).
    pub fn new(router: Arc<Router>, tokens: Arc<Tokens>) -> Gateway {
        Gateway { router, tokens, sessions: Arc::default() }
    }

    /// Refuses a request without a token the node accepts at the client level.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.tokens.admit(authorization, Level::Client).map(|_| ()).map_err(|refusal| {
            refusal.count();
            let message = match refusal {
                Refusal::Missing => "this node needs a token: send `Authorization: Bearer <token>`",
                Refusal::Wrong | Refusal::NotAdmin => "the token is not valid for this cluster",
            };
            GatewayError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
        })
    }

    /// Refuses a request without the admin token (the client one where no admin token is set).
    fn authorize_admin(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.tokens.admit(authorization, Level::Admin).map(|_| ()).map_err(|refusal| {
            refusal.count();
            match refusal {
                Refusal::NotAdmin => GatewayError::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    "the inspector needs the admin token; the token given is a client's",
                ),
                Refusal::Missing => GatewayError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "this node needs a token: send `Authorization: Bearer <token>`",
                ),
                Refusal::Wrong => GatewayError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the token is not valid for this cluster",
                ),
            }
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.router.runtime().config().call_timeout
    }
}

/// The gateway's routes, with their state, body limit and auth, to merge into the listener's.
pub fn routes(gateway: Gateway) -> axum::Router {
    axum::Router::new()
        .route("/actors", get(list_actors))
        .route("/actors/{name}/{key}/actions/{action}", post(call_action))
        .route("/actors/{name}/{key}/queues/{queue}", post(send_message))
        .route("/actors/{name}/{key}/events", get(subscribe))
        .route("/actors/{name}/{key}/connect", get(conn::connect))
        .route("/actors/{name}/{key}/connections/{session}/actions/{action}", post(conn::call_over))
        .route("/actors/{name}/{key}/inspector/{part}", get(inspect).patch(patch_state))
        // The envelope `{"args":[...]}` around the largest arguments fits in the slack.
        .layer(DefaultBodyLimit::max(ARGS_BYTES_MAX + 64))
        .with_state(gateway)
}

/// A refusal as the gateway answers it: a status and a JSON body `{code, message, metadata}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    /// One of the gateway's codes (see the [module docs](self)), or a user error's own.
    pub code: Cow<'static, str>,
    pub message: String,
    /// A user error's metadata; `null` otherwise.
    pub metadata: serde_json::Value,
}

impl GatewayError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GatewayError {
        GatewayError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            metadata: serde_json::Value::Null,
        }
    }

    fn invalid(message: impl Into<String>) -> GatewayError {
        GatewayError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
}

impl From<CallError> for GatewayError {
    /// The status and code of a call's error (the table of the [module docs](self)). A user
    /// error answers 409, as a rejection does, with its own code, message and metadata.
    fn from(e: CallError) -> GatewayError {
        let (status, code) = match e {
            CallError::User { code, message, metadata } => {
                return GatewayError {
                    status: StatusCode::CONFLICT,
                    code: Cow::Owned(code),
                    message,
                    metadata,
                };
            }
            CallError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            CallError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            CallError::Rejected(_) => (StatusCode::CONFLICT, "rejected"),
            CallError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            CallError::Retry(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_applied"),
            CallError::Unavailable(_) => (StatusCode::GATEWAY_TIMEOUT, "outcome_unknown"),
            CallError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        GatewayError::new(status, code, e.to_string())
    }
}

impl From<PathRejection> for GatewayError {
    fn from(rejection: PathRejection) -> GatewayError {
        GatewayError::invalid(format!("the path is not valid: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for GatewayError {
    fn from(rejection: BytesRejection) -> GatewayError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return GatewayError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is more than the limit of {ARGS_BYTES_MAX} bytes"),
            );
        }
        GatewayError::invalid(format!("the body could not be read: {}", rejection.body_text()))
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "code": self.code, "message": self.message, "metadata": self.metadata });
        let mut response = (self.status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response();
        let headers = response.headers_mut();
        if matches!(self.status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Counts the request and answers it.
fn finish(route: &'static str, result: Result<Response, GatewayError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_str().to_string();
    metrics::counter!("mortar_node_gateway_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}

/// The JSON arguments of a call from its body: the body itself, or `x` of the envelope
/// `{"args": [x]}` (`""`, no arguments, for an empty body or `{"args": []}`).
pub fn action_args(body: &[u8]) -> Result<String, GatewayError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| GatewayError::invalid(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| GatewayError::invalid(format!("the body is not JSON: {e}")))?;
    let serde_json::Value::Object(fields) = &value else { return Ok(text.to_string()) };
    let (Some(serde_json::Value::Array(args)), 1) = (fields.get("args"), fields.len()) else {
        return Ok(text.to_string());
    };
    match args.as_slice() {
        [] => Ok(String::new()),
        [x] => Ok(x.to_string()),
        more => Err(GatewayError::invalid(format!(
            "`args` holds {} values; an action takes one (an object with its fields), or none",
            more.len()
        ))),
    }
}

/// The creation input of a call, from [`INPUT_HEADER`].
fn input_of(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    let Some(value) = headers.get(INPUT_HEADER) else { return Ok(None) };
    let text = value.to_str().map_err(|_| {
        GatewayError::invalid(format!("{INPUT_HEADER} is visible ASCII only: \\u-escape other characters"))
    })?;
    Ok((!text.trim().is_empty()).then(|| text.to_string()))
}

/// The decoded `name=value` pairs of a query string (`+` is a space), in order.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, GatewayError> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| GatewayError::invalid("the query string is not UTF-8 once decoded"))
    };
    let mut pairs = Vec::new();
    for part in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == QUERY_PARAMS_MAX {
            return Err(GatewayError::invalid(format!("more than {QUERY_PARAMS_MAX} query parameters")));
        }
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn unknown_parameter(name: &str, known: &str) -> GatewayError {
    GatewayError::invalid(format!("unknown query parameter {name:?}; this route takes {known}"))
}

async fn list_actors(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let result = gateway.authorize(&headers).map(|()| {
        let registry = gateway.router.runtime().registry();
        let actors: Vec<serde_json::Value> = registry
            .names()
            .into_iter()
            .filter_map(|name| {
                let kind = registry.check_actor(name).ok()?;
                Some(serde_json::json!({
                    "name": name,
                    "actions": kind.action_names(),
                    "events": kind.event_names(),
                    "queues": kind.queue_names(),
                }))
            })
            .collect();
        let body = serde_json::json!({ "actors": actors });
        ([(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
    });
    finish("list", result)
}

async fn call_action(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        gateway.authorize(&headers)?;
        let Path((name, key, action)) = path?;
        if let Some((name, _)) = query_pairs(query.as_deref())?.first() {
            return Err(unknown_parameter(name, "none (the creation input goes in x-mortar-input)"));
        }
        if action.starts_with('$') {
            return Err(GatewayError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("actions starting with '$' are the runtime's, not {name}'s; queue messages go to /actors/{{name}}/{{key}}/queues/{{queue}}"),
            ));
        }
        let args_json = action_args(&body?)?;
        let input_json = input_of(&headers)?;
        let id = ActorId::new(name, key);
        let reply =
            gateway.router.call(&id, &action, args_json, input_json, false, gateway.deadline()).await?;
        Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON)), (
                header::HeaderName::from_static(SERVED_BY_HEADER),
                HeaderValue::from(reply.served_by),
            )],
            reply.result_json,
        )
            .into_response())
    }
    .await;
    finish("action", result)
}

/// `GET /actors/{name}/{key}/inspector/{part}` (`?prefix=&after=&limit=`): the inspector's look
/// (see [`crate::actor::inspect`]); `PATCH .../inspector/state` with `{"state": JSON}` replaces the
/// state. Both need the admin token.
async fn inspect(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        gateway.authorize_admin(&headers)?;
        let Path((name, key, part)) = path?;
        let mut args = serde_json::json!({ "part": part });
        for (param, value) in query_pairs(query.as_deref())? {
            match param.as_str() {
                "prefix" | "after" => args[param.as_str()] = serde_json::Value::String(value),
                "limit" => {
                    let limit: u64 = value
                        .parse()
                        .map_err(|_| GatewayError::invalid(format!("limit is a number, not {value:?}")))?;
                    args["limit"] = limit.into();
                }
                other => return Err(unknown_parameter(other, "prefix, after, limit")),
            }
        }
        let id = ActorId::new(name, key);
        let reply = gateway
            .router
            .call(&id, crate::actor::runtime::INSPECT, args.to_string(), None, false, gateway.deadline())
            .await?;
        Ok(([(header::CONTENT_TYPE, JSON)], reply.result_json).into_response())
    }
    .await;
    finish("inspector", result)
}

async fn patch_state(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        gateway.authorize_admin(&headers)?;
        let Path((name, key, part)) = path?;
        if part != "state" {
            return Err(GatewayError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "only the state is patched: PATCH .../inspector/state",
            ));
        }
        let patch: serde_json::Value = serde_json::from_slice(&body?)
            .map_err(|e| GatewayError::invalid(format!("the patch (the body) is not JSON: {e}")))?;
        if patch.get("state").is_none() || patch.as_object().is_some_and(|o| o.len() != 1) {
            return Err(GatewayError::invalid("a state patch is {\"state\": JSON}"));
        }
        let id = ActorId::new(name, key);
        gateway
            .router
            .call(&id, crate::actor::runtime::PATCH_STATE, patch.to_string(), None, false, gateway.deadline())
            .await?;
        Ok(([(header::CONTENT_TYPE, JSON)], r#"{"ok":true}"#).into_response())
    }
    .await;
    finish("inspector", result)
}

async fn send_message(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        gateway.authorize(&headers)?;
        let Path((name, key, queue)) = path?;
        let mut wait = false;
        for (param, value) in query_pairs(query.as_deref())? {
            match (param.as_str(), value.as_str()) {
                ("wait", "true" | "1" | "") => wait = true,
                ("wait", "false" | "0") => wait = false,
                ("wait", other) => {
                    return Err(GatewayError::invalid(format!("wait is true or false, not {other:?}")));
                }
                (other, _) => return Err(unknown_parameter(other, "wait=true|false")),
            }
        }
        let body = body?;
        let message: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::invalid(format!("the message (the body) is not JSON: {e}")))?;
        let args = serde_json::json!({ "queue": queue, "body": message, "wait": wait }).to_string();
        let input_json = input_of(&headers)?;
        let id = ActorId::new(name, key);
        let reply = gateway.router.call(&id, SEND, args, input_json, false, gateway.deadline()).await?;
        let sequence: u64 = reply.result_json.parse().map_err(|e| {
            GatewayError::from(CallError::Internal(format!(
                "the owner answered a send with {:?}: {e}",
                reply.result_json
            )))
        })?;
        let body = serde_json::json!({ "id": sequence }).to_string();
        Ok(([(header::CONTENT_TYPE, JSON)], body).into_response())
    }
    .await;
    finish("queue", result)
}

async fn subscribe(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        gateway.authorize(&headers)?;
        let Path((name, key)) = path?;
        let mut events = Vec::new();
        for (param, value) in query_pairs(query.as_deref())? {
            match param.as_str() {
                "event" => push_event(&mut events, value)?,
                other => return Err(unknown_parameter(other, "event=NAME, repeated")),
            }
        }
        let stream =
            subscribe_retrying(&gateway.router, ActorId::new(name, key), events, gateway.deadline()).await?;
        Ok(Sse::new(sse_events(stream)).keep_alive(KeepAlive::default()).into_response())
    }
    .await;
    finish("events", result)
}

/// Adds `name` to an event filter, refusing more than [`EVENT_FILTER_NAMES_MAX`] names.
fn push_event(events: &mut Vec<String>, name: String) -> Result<(), GatewayError> {
    if events.len() == EVENT_FILTER_NAMES_MAX {
        return Err(GatewayError::invalid(format!(
            "at most {EVENT_FILTER_NAMES_MAX} event names in one stream"
        )));
    }
    events.push(name);
    Ok(())
}

/// Subscribes as [`Router::call`] calls: a subscription certainly not made (the owner is
/// unreachable or moving) is tried again, at the next membership change or after
/// [`RETRY_BACKOFF`], until `deadline`. An `EventSource` that reconnects gets a stream rather
/// than a 503, which it would not retry.
async fn subscribe_retrying(
    router: &Arc<Router>,
    id: ActorId,
    events: Vec<String>,
    deadline: Instant,
) -> Result<EventStream, CallError> {
    let mut view = router.view_watch();
    for _ in 1..CALL_ATTEMPTS_MAX {
        view.borrow_and_update();
        match router.subscribe(id.clone(), events.clone(), false).await {
            Err(CallError::Retry(why)) if Instant::now() < deadline => {
                tracing::debug!(actor = %id, error = %why, "subscription not made; retrying");
                let wait = RETRY_BACKOFF.min(deadline.saturating_duration_since(Instant::now()));
                if let Ok(Err(_)) = tokio::time::timeout(wait, view.changed()).await {
                    // Membership has stopped: the view will not change, just back off.
                    tokio::time::sleep(wait).await;
                }
            }
            result => return result,
        }
    }
    router.subscribe(id, events, false).await
}

/// One SSE field's text: SSE fields end at a line break, so none may hold one.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The SSE events of a subscription: `: subscribed`, then one per actor event, then a comment
/// saying why the subscription ended, after which the stream closes.
fn sse_events(
    stream: EventStream,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let subscribed = Event::default().comment("subscribed").retry(SSE_RETRY);
    let events = futures::stream::unfold(Some(stream), |stream| async move {
        let mut stream = stream?;
        match stream.next().await {
            Some(Ok(event)) => {
                let sse = Event::default().event(one_line(&event.event)).data(one_line(&event.data_json));
                Some((Ok(sse), Some(stream)))
            }
            Some(Err(status)) => {
                let why = one_line(status.message());
                let sse = Event::default().comment(format!("subscription ended: {why}; subscribe again"));
                Some((Ok(sse), None))
            }
            None => None,
        }
    });
    futures::stream::once(async move { Ok(subscribed) }).chain(events)
}

#[path = "gateway_conn.rs"]
pub mod conn;

#[cfg(test)]
#[path = "gateway_test.rs"]
mod tests;
