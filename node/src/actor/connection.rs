//! Connections: a client attached to one actor over one bidirectional gRPC stream
//! (`mortar.v1.Actors.OpenConnection`), with typed params, per-connection state, and calls that carry
//! the caller's identity.
//!
//! **On the owner** ([`serve`]): the stream's first message opens the connection. The node
//! subscribes to the actor's events first, then queues the connection in the actor's serial line
//! like a call ([`Actor::on_before_connect`], [`Actor::create_conn_state`], [`Actor::on_connect`],
//! whose changes are committed), and answers `connected`. Every call queued after that one (over
//! this connection or not) publishes its events after the subscription began, so none of them
//! is missed; the stream carries them, the events the actor sends to this connection alone, and
//! the results of the connection's calls (queued in the order they arrive). While an actor has
//! connections it does not sleep. When the client goes away the actor's
//! [`Actor::on_disconnect`] runs; when the actor ends the connection ([`Context::disconnect`]) the
//! client hears `disconnected` and the stream ends; when the actor moves (its activation here
//! ends) the stream ends with a retry-safe `UNAVAILABLE` and the client connects again, through
//! any node, to the new owner, where the hooks run again.
//!
//! **On another node** the stream is passed through to the owner, and ends (retry-safe) when this
//! node sees the owner change.
//!
//! **Clients**: [`ActorRef::connect`](super::ActorRef::connect) gives a [`Connection`], which
//! reconnects by itself when the actor moves; `mortar connect` prints a connection's traffic as
//! JSON lines.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt as _};
use mortar_proto::v1::connect_request::Body as RequestBody;
use mortar_proto::v1::connect_response::Body as ResponseBody;
use mortar_proto::v1::{
    ActorEvent as WireEvent, CallFailure, ConnectCall, ConnectCallResult, ConnectOpen, ConnectRequest,
    ConnectResponse, Connected, Disconnected,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tonic::{Status, Streaming};

use super::client::ActorEvent;
use super::context::{ConnId, ConnMessage, EmittedEvent};
use super::error::CallError;
use super::events::Published;
use super::keys::ActorId;
use super::list::Lists;
use super::router::Router;
use super::runtime::answered;
use super::sdk::{Action, Actor, Event};

/// Messages queued for one connection's client before it counts as too slow and is dropped
/// (it then connects again).
pub const CONN_OUTBOX_MAX: usize = 1024;
/// Calls of one connection in flight at once; more wait for a result before being read.
pub const CONN_CALLS_IN_FLIGHT_MAX: usize = 256;
/// How long a client has to send the opening message.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a [`Connection`] keeps trying to connect again after the actor moved.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// Pause between two attempts to connect again.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// The response stream of `OpenConnection`.
pub type ConnectStream = Pin<Box<dyn Stream<Item = Result<ConnectResponse, Status>> + Send>>;

/// What a client sends on a connection (the gRPC stream, or the HTTP gateway's).
pub trait Inbound: Stream<Item = Result<ConnectRequest, Status>> + Send + Unpin + 'static {}

impl<T: Stream<Item = Result<ConnectRequest, Status>> + Send + Unpin + 'static> Inbound for T {}

/// Serves one `OpenConnection` stream at this node (see the module docs).
pub(crate) async fn serve(
    router: Arc<Router>,
    mut inbound: impl Inbound,
) -> Result<ConnectStream, CallError> {
    let open = match tokio::time::timeout(OPEN_TIMEOUT, inbound.next()).await {
        Ok(Some(Ok(ConnectRequest { body: Some(RequestBody::Open(open)) }))) => open,
        Ok(Some(Ok(_))) => {
            return Err(CallError::InvalidArgument(
                "the first message of a connection must be `open`".into(),
            ));
        }
        Ok(None) => return Err(CallError::InvalidArgument("the client closed before opening".into())),
        Ok(Some(Err(status))) => return Err(CallError::from_status(&status)),
        Err(_) => return Err(CallError::InvalidArgument("no `open` message in time".into())),
    };
    let id = ActorId::new(open.actor.clone(), open.key.clone());
    id.validate().map_err(CallError::InvalidArgument)?;
    router.runtime().registry().check_events(id.name(), &open.events)?;
    let owner = router.owner(&id);
    if owner.node == router.node_id() {
        return serve_local(router, id, open, inbound).await;
    }
    if open.forwarded {
        return Err(CallError::Retry(format!(
            "node {} does not own actor {id} (node {} does, by its view of the cluster); connect again",
            router.node_id(),
            owner.node
        )));
    }
    pass_through(router, id, owner, open, inbound).await
}

async fn serve_local(
    router: Arc<Router>,
    id: ActorId,
    open: ConnectOpen,
    inbound: impl Inbound,
) -> Result<ConnectStream, CallError> {
    let runtime = router.runtime();
    // Before the connection is made: every event published after it is then received.
    let receiver = runtime.hub().subscribe(&id).ok_or_else(|| {
        CallError::Overloaded("too many actors have subscribers on this node; retry later".into())
    })?;
    let conn = runtime.next_conn_id();
    let deadline = Instant::now() + runtime.config().call_timeout;
    let input_json = (!open.input_json.trim().is_empty()).then_some(open.input_json);
    let reply = match runtime.connect_local(&id, conn, open.params_json, input_json, deadline).await {
        Ok(reply) => reply,
        Err(e) => {
            // Its outcome may be unknown: make sure no connection is left behind.
            runtime.disconnect_local(&id, conn);
            return Err(e);
        }
    };
    let (out, rx) = mpsc::channel(CONN_OUTBOX_MAX);
    let connected = Connected { conn_id: conn, served_by: reply.served_by, generation: reply.generation };
    out.try_send(Ok(response(ResponseBody::Connected(connected)))).expect("an empty outbox has room");
    tracing::debug!(actor = %id, conn, "connected");
    let link = Link { router, id, conn, events: open.events, out };
    tokio::spawn(link.run(inbound, receiver));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

fn response(body: ResponseBody) -> ConnectResponse {
    ConnectResponse { body: Some(body) }
}

/// One connection at its actor's owner: carries calls in and traffic out.
struct Link {
    router: Arc<Router>,
    id: ActorId,
    conn: ConnId,
    events: Vec<String>,
    out: mpsc::Sender<Result<ConnectResponse, Status>>,
}

/// How a connection ended at the owner.
enum End {
    /// The client closed it or went away: the actor is told.
    ClientLeft,
    /// The actor ended it: the client was told, then the actor is told.
    Disconnected,
    /// The activation ended (the actor moved): the client must connect again.
    Moved(CallError),
    /// The client fell behind: dropped, told to connect again; the actor is told.
    TooSlow(CallError),
}

impl Link {
    async fn run(self, mut inbound: impl Inbound, mut receiver: broadcast::Receiver<Published>) {
        let mut calls = FuturesUnordered::new();
        let end = loop {
            tokio::select! {
                message = inbound.next(), if calls.len() < CONN_CALLS_IN_FLIGHT_MAX => match message {
                    Some(Ok(ConnectRequest { body: Some(RequestBody::Call(call)) })) => {
                        let ConnectCall { call_id, action, args_json } = call;
                        match self.router.runtime().call_conn(&self.id, self.conn, &action, args_json) {
                            Ok(answer) => {
                                let id = self.id.clone();
                                let deadline = Instant::now() + self.router.runtime().config().call_timeout;
                                calls.push(async move {
                                    (call_id, answered(&id, &action, answer, deadline).await)
                                });
                            }
                            Err(e) => {
                                if !self.send(call_result(call_id, Err(e))) {
                                    break End::TooSlow(too_slow());
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {
                        let e = CallError::InvalidArgument("a connection is opened once; send calls".into());
                        let _ = self.out.try_send(Err(Status::from(e)));
                        break End::ClientLeft;
                    }
                    None | Some(Err(_)) => break End::ClientLeft,
                },
                Some((call_id, result)) = calls.next() => {
                    if !self.send(call_result(call_id, result.map(|r| r.result_json))) {
                        break End::TooSlow(too_slow());
                    }
                }
                published = receiver.recv() => match published {
                    Ok(Published::Event(event)) => {
                        if (self.events.is_empty() || self.events.iter().any(|e| e == event.name))
                            && !self.send(ResponseBody::Event(self.event(&event)))
                        {
                            break End::TooSlow(too_slow());
                        }
                    }
                    Ok(Published::Conn(message)) => match &*message {
                        ConnMessage::Event { conn, event }
                            if *conn == self.conn && !self.send(ResponseBody::Message(self.event(event))) =>
                        {
                            break End::TooSlow(too_slow());
                        }
                        ConnMessage::Disconnect { conn, reason } if *conn == self.conn => {
                            let _ = self.out.try_send(Ok(response(ResponseBody::Disconnected(Disconnected {
                                reason: reason.clone(),
                            }))));
                            break End::Disconnected;
                        }
                        _ => {}
                    },
                    Ok(Published::Closed(closed)) => {
                        break End::Moved(CallError::Retry(format!("{}; connect again", closed.reason)));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        break End::TooSlow(CallError::Retry(format!(
                            "this connection fell {missed} events behind and was dropped; connect again"
                        )));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        break End::Moved(CallError::Retry("the node stopped publishing; connect again".into()));
                    }
                },
                () = self.out.closed() => break End::ClientLeft,
            }
        };
        let (id, conn) = (&self.id, self.conn);
        match end {
            End::ClientLeft | End::Disconnected => self.router.runtime().disconnect_local(id, conn),
            End::TooSlow(e) => {
                let _ = self.out.try_send(Err(Status::from(e)));
                self.router.runtime().disconnect_local(id, conn);
            }
            End::Moved(e) => {
                let _ = self.out.try_send(Err(Status::from(e)));
            }
        }
        tracing::debug!(actor = %id, conn, "connection ended");
    }

    fn event(&self, event: &EmittedEvent) -> WireEvent {
        WireEvent {
            event: event.name.to_string(),
            data_json: event.data_json.clone(),
            served_by: self.router.node_id(),
        }
    }

    /// Queues `body` for the client; `false` when it is too far behind (or gone).
    fn send(&self, body: ResponseBody) -> bool {
        self.out.try_send(Ok(response(body))).is_ok()
    }
}

fn too_slow() -> CallError {
    CallError::Retry(format!(
        "the client read too slowly ({CONN_OUTBOX_MAX} messages waiting) and was dropped; connect again"
    ))
}

fn call_result(call_id: u64, result: Result<String, CallError>) -> ResponseBody {
    ResponseBody::Result(match result {
        Ok(result_json) => ConnectCallResult { call_id, result_json, error: None },
        Err(e) => ConnectCallResult { call_id, result_json: String::new(), error: Some(failure(e)) },
    })
}

/// A call's error as a message: the status a plain call would end with.
fn failure(e: CallError) -> CallFailure {
    let status = Status::from(e);
    let mut headers = http::HeaderMap::new();
    let metadata = match status.add_header(&mut headers) {
        Ok(()) => headers
            .iter()
            .filter(|(name, _)| !name.as_str().starts_with("grpc-"))
            .map(|(name, value)| (name.as_str().to_string(), bytes::Bytes::copy_from_slice(value.as_bytes())))
            .collect(),
        Err(_) => HashMap::new(),
    };
    CallFailure {
        code: status.code() as i32,
        message: status.message().to_string(),
        details: bytes::Bytes::copy_from_slice(status.details()),
        metadata,
    }
}

/// The error a [`CallFailure`] stands for.
pub(crate) fn from_failure(failure: CallFailure) -> CallError {
    let mut headers = http::HeaderMap::new();
    for (name, value) in failure.metadata {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(&value))
        {
            headers.insert(name, value);
        }
    }
    let status = Status::with_details_and_metadata(
        tonic::Code::from_i32(failure.code),
        failure.message,
        failure.details,
        tonic::metadata::MetadataMap::from_headers(headers),
    );
    CallError::from_status(&status)
}

/// Passes a connection through to the owner of `id`.
async fn pass_through(
    router: Arc<Router>,
    id: ActorId,
    owner: super::router::Owner,
    mut open: ConnectOpen,
    mut inbound: impl Inbound,
) -> Result<ConnectStream, CallError> {
    let mut client = router.actors_client(&owner)?;
    let (up, up_rx) = mpsc::channel(CONN_OUTBOX_MAX);
    open.forwarded = true;
    up.try_send(ConnectRequest { body: Some(RequestBody::Open(open)) }).expect("an empty channel has room");
    let timeout = router.runtime().config().call_timeout;
    let upstream = tokio::select! {
        response = client.open_connection(tokio_stream::wrappers::ReceiverStream::new(up_rx)) => {
            response.map_err(|s| CallError::from_status(&s))?.into_inner()
        }
        () = tokio::time::sleep(timeout) => {
            return Err(CallError::Retry(format!("node {} did not take the connection in time", owner.node)));
        }
    };
    // The client's calls, up to the owner; dropping `up` closes the owner's side.
    tokio::spawn(async move {
        while let Some(Ok(message)) = inbound.next().await {
            if up.send(message).await.is_err() {
                return;
            }
        }
    });
    let node = owner.node;
    let stream = futures::stream::unfold(Some(upstream), move |upstream| {
        let router = router.clone();
        let id = id.clone();
        async move {
            let mut upstream = upstream?;
            tokio::select! {
                item = upstream.message() => match item {
                    Ok(Some(message)) => Some((Ok(message), Some(upstream))),
                    Ok(None) => None,
                    Err(status) => {
                        let e = match CallError::from_status(&status) {
                            CallError::Unavailable(why) => CallError::Retry(format!(
                                "lost the connection's stream from node {node} ({why}); connect again"
                            )),
                            e => e,
                        };
                        Some((Err(Status::from(e)), None))
                    }
                },
                () = router.owner_changed(&id, node) => Some((
                    Err(Status::from(CallError::Retry(format!(
                        "actor {id} moved away from node {node}; connect again"
                    )))),
                    None,
                )),
            }
        }
    });
    Ok(Box::pin(stream))
}

/// What a [`JsonConnection`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonConnEvent {
    /// Connected (again, after the actor moved: the hooks ran again on the new owner). Every
    /// event of a call ordered after this arrives.
    Connected { conn_id: ConnId, served_by: u32 },
    /// An event the actor emitted: name and JSON data.
    Event { name: String, data_json: String },
    /// An event the actor sent to this connection alone.
    Message { name: String, data_json: String },
    /// The connection is over: the actor disconnected it (`by_actor`) or it could not be made
    /// again. Nothing follows.
    Closed { reason: String, by_actor: bool },
}

type PendingCall = oneshot::Sender<Result<String, CallError>>;

/// A connection to one actor, in JSON: calls, and a stream of [`JsonConnEvent`]s. It connects
/// again by itself when the actor moves (for [`RECONNECT_WINDOW`]); calls in flight then fail
/// ([`CallError::Unavailable`]: they may or may not have run), and calls made while it is
/// connecting again fail with [`CallError::Retry`].
pub struct JsonConnection {
    calls: mpsc::Sender<(ConnectCall, PendingCall)>,
    events: mpsc::Receiver<JsonConnEvent>,
    next_call: u64,
}

/// Where and how a [`JsonConnection`] connects.
pub(crate) struct ConnectTarget {
    pub client: super::Client,
    pub actor: String,
    pub key: String,
    pub params_json: String,
    pub input_json: Option<String>,
    pub events: Vec<String>,
}

impl JsonConnection {
    /// Connects; fails as the first `open` does (refused by a hook, bad params, unreachable).
    pub(crate) async fn open(target: ConnectTarget) -> Result<JsonConnection, CallError> {
        let (calls, calls_rx) = mpsc::channel(CONN_CALLS_IN_FLIGHT_MAX);
        let (events_tx, events) = mpsc::channel(CONN_OUTBOX_MAX);
        let session = Session::open(&target).await?;
        let _ = events_tx
            .send(JsonConnEvent::Connected { conn_id: session.conn_id, served_by: session.served_by })
            .await;
        tokio::spawn(drive(target, session, calls_rx, events_tx));
        Ok(JsonConnection { calls, events, next_call: 1 })
    }

    /// Runs `action` with JSON arguments over the connection; the JSON result.
    pub async fn call(&mut self, action: &str, args_json: &str) -> Result<String, CallError> {
        let answer = self.queue(action, args_json)?;
        answer.await.unwrap_or_else(|_| {
            Err(CallError::Unavailable(
                "the connection ended before the answer; the outcome is unknown".into(),
            ))
        })
    }

    /// Queues `action` without waiting: the calls of a connection run in the order they are
    /// queued. The answer comes on the returned channel.
    pub fn queue(
        &mut self,
        action: &str,
        args_json: &str,
    ) -> Result<oneshot::Receiver<Result<String, CallError>>, CallError> {
        let call_id = self.next_call;
        self.next_call += 1;
        let (tx, rx) = oneshot::channel();
        let call = ConnectCall { call_id, action: action.to_string(), args_json: args_json.to_string() };
        self.calls.try_send((call, tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CallError::Overloaded(format!(
                "{CONN_CALLS_IN_FLIGHT_MAX} calls of this connection are in flight; wait for answers"
            )),
            mpsc::error::TrySendError::Closed(_) => CallError::Retry("the connection is closed".into()),
        })?;
        Ok(rx)
    }

    /// The next thing that happened on the connection; `None` once it is over (after
    /// [`JsonConnEvent::Closed`]).
    pub async fn next(&mut self) -> Option<JsonConnEvent> {
        self.events.recv().await
    }
}

/// One open `OpenConnection` stream from a client.
struct Session {
    conn_id: ConnId,
    served_by: u32,
    up: mpsc::Sender<ConnectRequest>,
    down: Streaming<ConnectResponse>,
}

impl Session {
    async fn open(target: &ConnectTarget) -> Result<Session, CallError> {
        let mut client = target.client.stream_client()?;
        let (up, up_rx) = mpsc::channel(CONN_CALLS_IN_FLIGHT_MAX);
        let open = ConnectOpen {
            actor: target.actor.clone(),
            key: target.key.clone(),
            params_json: target.params_json.clone(),
            input_json: target.input_json.clone().unwrap_or_default(),
            events: target.events.clone(),
            forwarded: false,
        };
        up.try_send(ConnectRequest { body: Some(RequestBody::Open(open)) })
            .expect("an empty channel has room");
        let timeout = target.client.timeout();
        let opened = tokio::time::timeout(timeout, async {
            let mut down = client
                .open_connection(tokio_stream::wrappers::ReceiverStream::new(up_rx))
                .await
                .map_err(|s| CallError::from_status(&s))?
                .into_inner();
            match down.message().await {
                Ok(Some(ConnectResponse { body: Some(ResponseBody::Connected(c)) })) => Ok((c, down)),
                Ok(Some(other)) => {
                    Err(CallError::Internal(format!("a connection began with {other:?}, not `connected`")))
                }
                Ok(None) => Err(CallError::Retry("the node closed the connection before answering".into())),
                Err(status) => Err(CallError::from_status(&status)),
            }
        })
        .await;
        let (connected, down) = match opened {
            Ok(result) => result?,
            Err(_) => {
                return Err(CallError::Retry(format!(
                    "the connection was not answered within {} ms",
                    timeout.as_millis()
                )));
            }
        };
        Ok(Session { conn_id: connected.conn_id, served_by: connected.served_by, up, down })
    }
}

/// Runs a client connection: sends calls, delivers results and events, connects again when the
/// actor moves.
async fn drive(
    target: ConnectTarget,
    mut session: Session,
    mut calls: mpsc::Receiver<(ConnectCall, PendingCall)>,
    events: mpsc::Sender<JsonConnEvent>,
) {
    loop {
        let ended = run_session(&mut session, &mut calls, &events).await;
        let reason = match ended {
            SessionEnd::Dropped => return,
            SessionEnd::Closed { reason, by_actor } => {
                let _ = events.send(JsonConnEvent::Closed { reason, by_actor }).await;
                return;
            }
            SessionEnd::Lost(e) => e,
        };
        tracing::debug!(actor = %target.actor, key = %target.key, error = %reason, "connection lost; connecting again");
        let started = Instant::now();
        session = loop {
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_BACKOFF) => {}
                () = events.closed() => return,
            }
            // Calls made meanwhile are refused at once (they never left).
            while let Ok((_, pending)) = calls.try_recv() {
                let _ = pending.send(Err(CallError::Retry("the connection is being made again".into())));
            }
            match Session::open(&target).await {
                Ok(session) => break session,
                // Connecting again may always be tried again: a connection whose opening had an
                // unknown outcome is ended by the owner when its stream goes.
                Err(CallError::Retry(_) | CallError::Unavailable(_) | CallError::Overloaded(_))
                    if started.elapsed() < RECONNECT_WINDOW =>
                {
                    target.client.rotate();
                }
                Err(e) => {
                    let reason = format!("could not connect again: {e} (after: {reason})");
                    let _ = events.send(JsonConnEvent::Closed { reason, by_actor: false }).await;
                    return;
                }
            }
        };
        let connected = JsonConnEvent::Connected { conn_id: session.conn_id, served_by: session.served_by };
        if events.send(connected).await.is_err() {
            return;
        }
    }
}

enum SessionEnd {
    /// The application dropped the connection.
    Dropped,
    /// Over for good.
    Closed { reason: String, by_actor: bool },
    /// The actor moved or the node went away: connect again.
    Lost(CallError),
}

async fn run_session(
    session: &mut Session,
    calls: &mut mpsc::Receiver<(ConnectCall, PendingCall)>,
    events: &mpsc::Sender<JsonConnEvent>,
) -> SessionEnd {
    let mut pending: HashMap<u64, PendingCall> = HashMap::new();
    let end = loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some((call, answer)) => {
                    let call_id = call.call_id;
                    if session.up.send(ConnectRequest { body: Some(RequestBody::Call(call)) }).await.is_err() {
                        let _ = answer.send(Err(CallError::Retry("the connection was lost before the call left".into())));
                        continue;
                    }
                    pending.insert(call_id, answer);
                }
                None => break SessionEnd::Dropped,
            },
            message = session.down.message() => match message {
                Ok(Some(ConnectResponse { body: Some(body) })) => match body {
                    ResponseBody::Result(result) => {
                        if let Some(answer) = pending.remove(&result.call_id) {
                            let _ = answer.send(match result.error {
                                None => Ok(result.result_json),
                                Some(failure) => Err(from_failure(failure)),
                            });
                        }
                    }
                    ResponseBody::Event(e) => {
                        if events.send(JsonConnEvent::Event { name: e.event, data_json: e.data_json }).await.is_err() {
                            break SessionEnd::Dropped;
                        }
                    }
                    ResponseBody::Message(e) => {
                        if events.send(JsonConnEvent::Message { name: e.event, data_json: e.data_json }).await.is_err() {
                            break SessionEnd::Dropped;
                        }
                    }
                    ResponseBody::Disconnected(d) => break SessionEnd::Closed { reason: d.reason, by_actor: true },
                    ResponseBody::Connected(_) => {}
                },
                Ok(Some(ConnectResponse { body: None })) => {}
                Ok(None) => break SessionEnd::Lost(CallError::Retry("the node ended the connection".into())),
                Err(status) => match CallError::from_status(&status) {
                    e @ (CallError::Retry(_) | CallError::Unavailable(_) | CallError::Overloaded(_)) => {
                        break SessionEnd::Lost(e);
                    }
                    e => break SessionEnd::Closed { reason: e.to_string(), by_actor: false },
                },
            },
            () = events.closed() => break SessionEnd::Dropped,
        }
    };
    for (_, answer) in pending {
        let _ = answer.send(Err(CallError::Unavailable(
            "the connection was lost before the answer; the call may or may not have run".into(),
        )));
    }
    end
}

/// What a typed [`Connection`] receives.
pub enum ConnEvent<A: Actor> {
    /// Connected again after the actor moved (the connection hooks ran again).
    Reconnected { conn_id: ConnId },
    /// An event the actor emitted.
    Event(ActorEvent<A>),
    /// An event the actor sent to this connection alone.
    Message(ActorEvent<A>),
    /// The connection is over (see [`JsonConnEvent::Closed`]).
    Closed { reason: String, by_actor: bool },
}

impl<A: Actor> ConnEvent<A> {
    /// The event as an `E` if this is an [`ConnEvent::Event`] of that type (`None` otherwise):
    /// `event::<NewMessage, _>()`. An error if its data does not decode as an `E`.
    pub fn event<E: Event, I>(&self) -> Result<Option<E>, CallError>
    where
        A::Events: Lists<E, I>,
    {
        match self {
            ConnEvent::Event(e) => e.get(),
            _ => Ok(None),
        }
    }
}

impl<A: Actor> std::fmt::Debug for ConnEvent<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnEvent::Reconnected { conn_id } => {
                f.debug_struct("Reconnected").field("conn_id", conn_id).finish()
            }
            ConnEvent::Event(e) => f.debug_tuple("Event").field(e).finish(),
            ConnEvent::Message(e) => f.debug_tuple("Message").field(e).finish(),
            ConnEvent::Closed { reason, by_actor } => {
                f.debug_struct("Closed").field("reason", reason).field("by_actor", by_actor).finish()
            }
        }
    }
}

/// A typed connection to actor `A` ([`ActorRef::connect`](super::ActorRef::connect)).
pub struct Connection<A: Actor> {
    inner: JsonConnection,
    conn_id: ConnId,
    actor: PhantomData<fn() -> A>,
}

impl<A: Actor> Connection<A> {
    pub(crate) async fn open(target: ConnectTarget) -> Result<Self, CallError> {
        let mut inner = JsonConnection::open(target).await?;
        let Some(JsonConnEvent::Connected { conn_id, .. }) = inner.next().await else {
            unreachable!("a connection's first event is Connected");
        };
        Ok(Connection { inner, conn_id, actor: PhantomData })
    }

    /// The id the actor knows this connection by (it changes when the connection is made again).
    pub fn conn_id(&self) -> ConnId {
        self.conn_id
    }

    /// Runs `action` over the connection: the actor sees this connection as the caller.
    pub async fn call<X: Action, I>(&mut self, action: X) -> Result<X::Output, CallError>
    where
        A::Actions: Lists<X, I>,
    {
        let args = serde_json::to_string(&action)
            .map_err(|e| CallError::InvalidArgument(format!("{} does not encode as JSON: {e}", X::NAME)))?;
        let answer = self.inner.call(X::NAME, &args).await?;
        serde_json::from_str(&answer).map_err(|e| {
            CallError::Internal(format!("the answer of {} does not decode: {e}: {answer}", X::NAME))
        })
    }

    /// The next thing that happened; `None` once the connection is over.
    pub async fn next(&mut self) -> Option<Result<ConnEvent<A>, CallError>> {
        let event = self.inner.next().await?;
        Some(match event {
            JsonConnEvent::Connected { conn_id, .. } => {
                self.conn_id = conn_id;
                Ok(ConnEvent::Reconnected { conn_id })
            }
            JsonConnEvent::Event { name, data_json } => {
                Ok(ConnEvent::Event(ActorEvent::new(name, data_json)))
            }
            JsonConnEvent::Message { name, data_json } => {
                Ok(ConnEvent::Message(ActorEvent::new(name, data_json)))
            }
            JsonConnEvent::Closed { reason, by_actor } => Ok(ConnEvent::Closed { reason, by_actor }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip_every_error() {
        for e in [
            CallError::NotFound("a".into()),
            CallError::InvalidArgument("b".into()),
            CallError::Rejected("c ü".into()),
            CallError::Retry("d".into()),
            CallError::Unavailable("e".into()),
            CallError::Overloaded("f".into()),
            CallError::Internal("g".into()),
            CallError::User {
                code: "name_taken".into(),
                message: "h".into(),
                metadata: serde_json::json!({ "name": "ann", "n": [1, 2] }),
            },
        ] {
            assert_eq!(from_failure(failure(e.clone())), e);
        }
    }
}
