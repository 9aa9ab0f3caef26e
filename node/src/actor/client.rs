//! Calling actors from Rust: a typed client over gRPC (from outside the cluster), and the same
//! client inside a node (from an action, through [`Context::client`](super::Context::client)).
//!
//! ```no_run
//! use mortar_node::prelude::*;
//! use mortar_node::actor::examples::{Counter, GetCount, Increment};
//!
//! # async fn example() -> Result<(), CallError> {
//! let client = Client::connect("127.0.0.1:7100").await?;
//! let count = client.actor::<Counter>("user-42").call(Increment { amount: 1 }).await?;
//! assert_eq!(client.actor::<Counter>("user-42").call(GetCount).await?, count);
//! # Ok(())
//! # }
//! ```
//!
//! # Several endpoints
//!
//! A client given several nodes (`Client::connect_any(&["10.0.0.1:7100", "10.0.0.2:7100"])`, or
//! `Client::connect("10.0.0.1:7100,10.0.0.2:7100")`) calls through one of them and keeps to it
//! while it answers. A call that was certainly not applied there ([`CallError::Retry`]: the node
//! could not be reached, or it says the call was not applied) is sent through the next endpoint,
//! each endpoint at most once per call, within the client's timeout; the endpoint that answers is
//! the one later calls go through first. A call whose outcome is unknown
//! ([`CallError::Unavailable`]) is never sent again, as its write may have been applied; nor is
//! one refused as [`CallError::Overloaded`] (the next endpoint reaches the same busy actor: back
//! off, then retry).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt as _};
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{ActorCallRequest, ActorSendRequest, ActorSubscribeRequest};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use super::error::{CallError, is_connect_failure};
use super::keys::ActorId;
use super::list::Lists;
use super::router::Router;
use super::sdk::{Action, Actor, Event};
use crate::auth::{AuthChannel, Token};

/// Default bound on one call of a [`Client`].
pub const CLIENT_CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Bound on connecting to a node.
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Most endpoints one client takes (and so most attempts of one call).
pub const CLIENT_ENDPOINTS_MAX: usize = 64;

const _: () = assert!(CLIENT_CONNECT_TIMEOUT.as_millis() < CLIENT_CALL_TIMEOUT_DEFAULT.as_millis());

/// A client of the actors of a cluster. Cheap to clone; clones share the endpoint they call
/// through.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    /// Through the `mortar.v1.Actors` of one node of several.
    Remote(Arc<Endpoints>),
    /// Inside a node: its router.
    Local(Weak<Router>),
    /// Not connected (a context built outside a node).
    Detached,
}

/// The nodes a remote client calls through, and the one it calls through first.
struct Endpoints {
    /// In the order given; 1 to [`CLIENT_ENDPOINTS_MAX`].
    nodes: Vec<RemoteNode>,
    /// Carried by every call (see [`crate::auth`]).
    token: Option<Token>,
    /// Index in `nodes` of the endpoint calls go through first.
    current: AtomicUsize,
}

#[derive(Clone)]
struct RemoteNode {
    /// As given (`host:port`), for messages.
    address: String,
    channel: Channel,
}

impl Endpoints {
    fn new(nodes: Vec<RemoteNode>, token: Option<Token>, current: usize) -> Endpoints {
        assert!(
            !nodes.is_empty() && nodes.len() <= CLIENT_ENDPOINTS_MAX && current < nodes.len(),
            "endpoints out of bounds: count={} current={current}",
            nodes.len()
        );
        Endpoints { nodes, token, current: AtomicUsize::new(current) }
    }

    fn client(&self, i: usize) -> ActorsClient<AuthChannel> {
        let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
        let channel = crate::auth::with_token(self.nodes[i].channel.clone(), self.token.clone());
        ActorsClient::new(channel).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Calls go through endpoint `i` first from now on.
    fn keep(&self, i: usize) {
        self.current.store(i, Ordering::Relaxed);
    }

    /// Moves on from endpoint `i` to the next, unless another call moved on already.
    fn move_on_from(&self, i: usize) {
        let next = (i + 1) % self.nodes.len();
        let _ = self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The error of a status from endpoint `i`: one that could not be reached is named.
    fn error(&self, i: usize, status: &Status) -> CallError {
        if is_connect_failure(status) {
            return CallError::Retry(format!(
                "cannot reach the mortar node at {} ({}); nothing was sent",
                self.nodes[i].address,
                status.message()
            ));
        }
        CallError::from_status(status)
    }
}

/// A typed handle on one actor.
pub struct ActorRef<A: Actor> {
    client: Client,
    key: String,
    /// The creation input sent with each call, JSON.
    input_json: Option<String>,
    actor: PhantomData<fn() -> A>,
}

impl Client {
    /// Connects to a node at `endpoint` (`host:port` or `http://host:port`), or to the first
    /// that answers of several, comma-separated (see [`Client::connect_any`]).
    pub async fn connect(endpoint: &str) -> Result<Client, CallError> {
        let endpoints: Vec<&str> = endpoint.split(',').collect();
        Client::connect_any(&endpoints).await
    }

    /// Connects to the first of `endpoints` that answers (`host:port` or `http://host:port`
    /// each); calls go through it, and through the others in turn when it cannot take them (see
    /// the [module docs](self)). Fails when none answers.
    pub async fn connect_any<S: AsRef<str>>(endpoints: &[S]) -> Result<Client, CallError> {
        if endpoints.is_empty() || endpoints.len() > CLIENT_ENDPOINTS_MAX {
            return Err(CallError::InvalidArgument(format!(
                "give 1 to {CLIENT_ENDPOINTS_MAX} endpoints (host:port), not {}",
                endpoints.len()
            )));
        }
        let mut dials = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let address = endpoint.as_ref().trim();
            let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
            let dial = Endpoint::from_shared(uri)
                .map_err(|_| CallError::InvalidArgument(format!("{address:?} is not a host:port address")))?
                .connect_timeout(CLIENT_CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            dials.push((address.to_string(), dial));
        }
        // Calls go first through the first endpoint that answers; the others connect when a call
        // needs them.
        let mut unreachable = Vec::new();
        let mut first = None;
        for (i, (address, dial)) in dials.iter().enumerate() {
            match dial.connect().await {
                Ok(channel) => {
                    first = Some((i, channel));
                    break;
                }
                Err(e) => unreachable.push(format!("{address} ({})", error_chain(&e))),
            }
        }
        let Some((current, channel)) = first else {
            return Err(CallError::Retry(format!(
                "cannot reach a mortar node at {}; is the cluster running?",
                unreachable.join(", ")
            )));
        };
        let mut channel = Some(channel);
        let nodes = dials
            .into_iter()
            .enumerate()
            .map(|(i, (address, dial))| {
                let channel = match (i == current).then(|| channel.take()).flatten() {
                    Some(channel) => channel,
                    None => dial.connect_lazy(),
                };
                RemoteNode { address, channel }
            })
            .collect();
        let endpoints = Endpoints::new(nodes, None, current);
        Ok(Client { transport: Transport::Remote(Arc::new(endpoints)), timeout: CLIENT_CALL_TIMEOUT_DEFAULT })
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Client {
        Client::from_channel_with_token(channel, None)
    }

    /// A client over an existing channel whose calls carry `token` (a cluster started with
    /// `--auth-token-file`; see [`crate::auth`]).
    pub fn from_channel_with_token(channel: Channel, token: Option<Token>) -> Client {
        let node = RemoteNode { address: "the node of this channel".to_string(), channel };
        let endpoints = Endpoints::new(vec![node], token, 0);
        Client { transport: Transport::Remote(Arc::new(endpoints)), timeout: CLIENT_CALL_TIMEOUT_DEFAULT }
    }

    pub(crate) fn local(router: Weak<Router>) -> Client {
        Client { transport: Transport::Local(router), timeout: crate::config::REQUEST_TIMEOUT_DEFAULT }
    }

    pub(crate) fn detached() -> Client {
        Client { transport: Transport::Detached, timeout: CLIENT_CALL_TIMEOUT_DEFAULT }
    }

    /// The same client with another bound on each call (all its attempts included).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The same client with `token` on every call (a cluster started with `--auth-token-file`;
    /// see [`crate::auth`]). A client inside a node needs none.
    pub fn with_token(mut self, token: Option<Token>) -> Client {
        if let Transport::Remote(endpoints) = &self.transport {
            let endpoints = Endpoints::new(endpoints.nodes.clone(), token, endpoints.current());
            self.transport = Transport::Remote(Arc::new(endpoints));
        }
        self
    }

    /// The channel of the endpoint this client calls through now, and the token its calls
    /// carry: for a stream of its own (a connection, a subscription). `None` for a client inside
    /// a node or detached. When the stream cannot be opened there with a retry-safe error, call
    /// [`Client::rotate`] and ask again, at most [`Client::endpoint_count`] times.
    pub(crate) fn endpoint_channel(&self) -> Option<(Channel, Option<Token>)> {
        let Transport::Remote(endpoints) = &self.transport else { return None };
        Some((endpoints.nodes[endpoints.current()].channel.clone(), endpoints.token.clone()))
    }

    /// Moves this client, and its clones, on to its next endpoint.
    pub(crate) fn rotate(&self) {
        if let Transport::Remote(endpoints) = &self.transport {
            endpoints.move_on_from(endpoints.current());
        }
    }

    /// How many endpoints this client has (1 inside a node or detached).
    pub(crate) fn endpoint_count(&self) -> usize {
        match &self.transport {
            Transport::Remote(endpoints) => endpoints.nodes.len(),
            Transport::Local(_) | Transport::Detached => 1,
        }
    }

    /// The actor of type `A` with key `key`.
    pub fn actor<A: Actor>(&self, key: impl Into<String>) -> ActorRef<A> {
        ActorRef { client: self.clone(), key: key.into(), input_json: None, actor: PhantomData }
    }

    /// A handle on actor `A` at compound key `parts` (see [`compound_key`](super::keys::compound_key)).
    pub fn actor_at<A: Actor, S: AsRef<str>>(&self, parts: &[S]) -> ActorRef<A> {
        self.actor(super::keys::compound_key(parts))
    }

    /// A handle on actor `A` at `key` if it exists (never creates it): `None` if it was never
    /// created or was destroyed.
    pub async fn get<A: Actor>(&self, key: impl Into<String>) -> Result<Option<ActorRef<A>>, CallError> {
        let key = key.into();
        let answer = self.call_json(A::NAME, &key, super::runtime::EXISTS, "").await?;
        let exists: serde_json::Value = serde_json::from_str(&answer)
            .map_err(|e| CallError::Internal(format!("an existence check answered {answer:?}: {e}")))?;
        Ok((exists["exists"] == true).then(|| self.actor(key)))
    }

    /// Creates actor `A` at `key` from `input` and returns a handle on it; fails with
    /// [`CallError::Rejected`] if it exists already (a destroyed actor is created again).
    pub async fn create<A: Actor>(
        &self,
        key: impl Into<String>,
        input: &A::Input,
    ) -> Result<ActorRef<A>, CallError> {
        let key = key.into();
        let input = serde_json::to_string(input)
            .map_err(|e| CallError::InvalidArgument(format!("the input does not encode as JSON: {e}")))?;
        self.call_json_with_input(A::NAME, &key, super::runtime::CREATE, "", Some(&input)).await?;
        Ok(self.actor(key))
    }

    /// Runs `action` of actor `actor`/`key` with JSON arguments; returns the JSON result.
    pub async fn call_json(
        &self,
        actor: &str,
        key: &str,
        action: &str,
        args_json: &str,
    ) -> Result<String, CallError> {
        self.call_json_with_input(actor, key, action, args_json, None).await
    }

    /// [`Client::call_json`], with the actor's creation input (JSON), used only if this call
    /// creates the actor ([`Actor::create`](super::Actor::create)).
    pub async fn call_json_with_input(
        &self,
        actor: &str,
        key: &str,
        action: &str,
        args_json: &str,
        input_json: Option<&str>,
    ) -> Result<String, CallError> {
        match &self.transport {
            Transport::Remote(endpoints) => {
                let call = ActorCallRequest {
                    actor: actor.to_string(),
                    key: key.to_string(),
                    action: action.to_string(),
                    args_json: args_json.to_string(),
                    forwarded: false,
                    input_json: input_json.unwrap_or_default().to_string(),
                };
                let no_answer = |timeout: Duration| {
                    CallError::Unavailable(format!(
                        "no answer within {} ms; the outcome is unknown",
                        timeout.as_millis()
                    ))
                };
                let response = self
                    .through_endpoints(endpoints, no_answer, |mut client, left| {
                        let mut request = tonic::Request::new(call.clone());
                        request.set_timeout(left);
                        async move { client.call(request).await }
                    })
                    .await?;
                Ok(response.result_json)
            }
            Transport::Local(router) => {
                let router = router
                    .upgrade()
                    .ok_or_else(|| CallError::Unavailable("the node is shutting down".into()))?;
                let id = ActorId::new(actor, key);
                let deadline = Instant::now() + self.timeout;
                let input_json = input_json.map(str::to_string);
                Ok(router
                    .call(&id, action, args_json.to_string(), input_json, false, deadline)
                    .await?
                    .result_json)
            }
            Transport::Detached => {
                Err(CallError::Unavailable("this client is not connected to a node".into()))
            }
        }
    }

    /// Appends `body_json` to durable queue `queue` of actor `actor`/`key`; returns the message's
    /// sequence number once it is stored, or, with `wait`, once the actor has handled it.
    /// `input_json` is used only if the send creates the actor.
    pub async fn send_json(
        &self,
        actor: &str,
        key: &str,
        queue: &str,
        body_json: &str,
        wait: bool,
        input_json: Option<&str>,
    ) -> Result<u64, CallError> {
        match &self.transport {
            Transport::Remote(endpoints) => {
                let send = ActorSendRequest {
                    actor: actor.to_string(),
                    key: key.to_string(),
                    queue: queue.to_string(),
                    body_json: body_json.to_string(),
                    wait,
                    input_json: input_json.unwrap_or_default().to_string(),
                };
                let no_answer = |timeout: Duration| {
                    CallError::Unavailable(format!(
                        "no answer within {} ms; the message may or may not be queued",
                        timeout.as_millis()
                    ))
                };
                let response = self
                    .through_endpoints(endpoints, no_answer, |mut client, left| {
                        let mut request = tonic::Request::new(send.clone());
                        request.set_timeout(left);
                        async move { client.send(request).await }
                    })
                    .await?;
                Ok(response.id)
            }
            Transport::Local(_) | Transport::Detached => {
                let body: serde_json::Value = serde_json::from_str(body_json)
                    .map_err(|e| CallError::InvalidArgument(format!("the message is not JSON: {e}")))?;
                let args = serde_json::json!({ "queue": queue, "body": body, "wait": wait }).to_string();
                let seq =
                    self.call_json_with_input(actor, key, super::runtime::SEND, &args, input_json).await?;
                seq.parse().map_err(|e| CallError::Internal(format!("a send answered {seq:?}: {e}")))
            }
        }
    }

    /// Runs `attempt` through the endpoints in turn, from the current one, until one answers
    /// other than [`CallError::Retry`] (certainly not applied), every endpoint has been tried
    /// once, or the client's timeout has passed (`no_answer`; the outcome is unknown then).
    /// `attempt` gets a client of the endpoint and the time left.
    async fn through_endpoints<T, F, Fut>(
        &self,
        endpoints: &Endpoints,
        no_answer: impl Fn(Duration) -> CallError,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(ActorsClient<AuthChannel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let count = endpoints.nodes.len();
        let first = endpoints.current();
        let mut not_applied = None;
        for i in (0..count).map(|n| (first + n) % count) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let error = match tokio::time::timeout(left, attempt(endpoints.client(i), left)).await {
                Ok(Ok(response)) => {
                    endpoints.keep(i);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => endpoints.error(i, &status),
                Err(_) => return Err(no_answer(self.timeout)),
            };
            if !matches!(error, CallError::Retry(_)) {
                endpoints.keep(i);
                return Err(error);
            }
            endpoints.move_on_from(i);
            not_applied = Some(error);
        }
        Err(not_applied.unwrap_or_else(|| no_answer(self.timeout)))
    }

    /// The events of actor `actor`/`key` (JSON, as `(name, data)`), filtered by name unless
    /// `events` is empty. The stream ends with [`CallError::Retry`] when the actor moves: subscribe
    /// again to follow it.
    pub async fn subscribe_json(
        &self,
        actor: &str,
        key: &str,
        events: Vec<String>,
    ) -> Result<impl Stream<Item = Result<(String, String), CallError>> + use<>, CallError> {
        let subscribe = ActorSubscribeRequest {
            actor: actor.to_string(),
            key: key.to_string(),
            events,
            forwarded: false,
        };
        let deadline = Instant::now() + self.timeout;
        let mut attempts = 0;
        let stream = loop {
            let Some((channel, token)) = self.endpoint_channel() else {
                return Err(CallError::InvalidArgument(
                    "subscribe through a client connected to a node".into(),
                ));
            };
            let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
            let mut client = ActorsClient::new(crate::auth::with_token(channel, token))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max);
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match tokio::time::timeout(left, client.subscribe(subscribe.clone())).await {
                Ok(Ok(response)) => break response.into_inner(),
                Ok(Err(status)) => CallError::from_status(&status),
                Err(_) => CallError::Retry("the subscription was not accepted in time".into()),
            };
            attempts += 1;
            if !matches!(error, CallError::Retry(_)) || attempts >= self.endpoint_count() {
                return Err(error);
            }
            self.rotate();
        };
        Ok(stream.map(|item| match item {
            Ok(event) => Ok((event.event, event.data_json)),
            Err(status) => Err(CallError::from_status(&status)),
        }))
    }
}

/// An error and its sources, `: `-separated ("transport error: tcp connect error: Connection
/// refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(&format!(": {err}"));
        source = err.source();
    }
    text
}

impl<A: Actor> ActorRef<A> {
    /// Appends `message` to durable queue `queue` (one the actor declares); returns its sequence
    /// number once it is stored (on a quorum, durable). The actor's run loop handles it once.
    pub async fn send<T: serde::Serialize>(&self, queue: &str, message: &T) -> Result<u64, CallError> {
        self.send_with(queue, message, false).await
    }

    /// [`ActorRef::send`], answering only once the actor has handled the message.
    pub async fn send_and_wait<T: serde::Serialize>(
        &self,
        queue: &str,
        message: &T,
    ) -> Result<u64, CallError> {
        self.send_with(queue, message, true).await
    }

    async fn send_with<T: serde::Serialize>(
        &self,
        queue: &str,
        message: &T,
        wait: bool,
    ) -> Result<u64, CallError> {
        let body = serde_json::to_string(message)
            .map_err(|e| CallError::InvalidArgument(format!("the message does not encode as JSON: {e}")))?;
        self.client.send_json(A::NAME, &self.key, queue, &body, wait, self.input_json.as_deref()).await
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same actor, with `input` sent along with every call: the call that creates the actor
    /// (its first ever) gives it to [`Actor::create`](super::Actor::create); once the actor
    /// exists it is ignored (get-or-create).
    pub fn with_input(mut self, input: &A::Input) -> Result<Self, CallError> {
        let json = serde_json::to_string(input).map_err(|e| {
            CallError::InvalidArgument(format!("the input of {} does not encode: {e}", A::NAME))
        })?;
        self.input_json = Some(json);
        Ok(self)
    }

    /// Runs `action` on this actor and decodes its output.
    pub async fn call<X: Action, I>(&self, action: X) -> Result<X::Output, CallError>
    where
        A::Actions: Lists<X, I>,
    {
        let args = serde_json::to_string(&action).map_err(|e| {
            CallError::InvalidArgument(format!("arguments of {} do not encode: {e}", X::NAME))
        })?;
        let json = self
            .client
            .call_json_with_input(A::NAME, &self.key, X::NAME, &args, self.input_json.as_deref())
            .await?;
        serde_json::from_str(&json).map_err(|e| {
            CallError::Internal(format!(
                "the output of {}.{} does not decode: {e}; got {json}",
                A::NAME,
                X::NAME
            ))
        })
    }

    /// Every event of this actor, each an [`ActorEvent`] to decode as one of its
    /// [`Actor::Events`](super::Actor::Events). Ends with [`CallError::Retry`] when the actor
    /// moves: call again to follow it.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<ActorEvent<A>, CallError>> + use<A>, CallError> {
        let stream = self.client.subscribe_json(A::NAME, &self.key, Vec::new()).await?;
        Ok(stream.map(|item| {
            let (name, data_json) = item?;
            Ok(ActorEvent::new(name, data_json))
        }))
    }

    /// Events of type `E` of this actor (others are skipped), `E` one of its
    /// [`Actor::Events`](super::Actor::Events): `subscribe::<NewCount, _>()` (the `_` is the
    /// place of `E` in the list, found by the compiler). Ends with [`CallError::Retry`] when the
    /// actor moves.
    pub async fn subscribe<E: Event, I>(
        &self,
    ) -> Result<impl Stream<Item = Result<E, CallError>> + use<A, E, I>, CallError>
    where
        A::Events: Lists<E, I>,
    {
        let stream = self.client.subscribe_json(A::NAME, &self.key, vec![E::NAME.to_string()]).await?;
        Ok(stream.map(|item| {
            let (name, data) = item?;
            decode_event_data(&name, &data)
        }))
    }
}

/// One event of actor `A` as a subscriber or a connection receives it: its name and JSON data,
/// decoded with [`ActorEvent::get`] as the [`Event`] type it is, one of `A`'s
/// [`Actor::Events`](super::Actor::Events).
///
/// ```
/// # use mortar_node::prelude::*;
/// # use mortar_node::actor::examples::{Counter, NewCount};
/// # fn show(event: ActorEvent<Counter>) -> Result<(), CallError> {
/// if let Some(NewCount { count }) = event.get()? {
///     println!("the count is {count}");
/// }
/// # Ok(())
/// # }
/// ```
pub struct ActorEvent<A: Actor> {
    name: String,
    data_json: String,
    actor: PhantomData<fn() -> A>,
}

impl<A: Actor> ActorEvent<A> {
    pub(crate) fn new(name: String, data_json: String) -> Self {
        Self { name, data_json, actor: PhantomData }
    }

    /// `event` as a subscriber of `A` receives it (to compare with what one received).
    pub fn of<E: Event, I>(event: &E) -> Self
    where
        A::Events: Lists<E, I>,
    {
        let data_json =
            serde_json::to_string(event).unwrap_or_else(|e| format!("{{\"not encoded\": \"{e}\"}}"));
        Self::new(E::NAME.to_string(), data_json)
    }

    /// The event's name, its [`Event::NAME`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event's data as JSON.
    pub fn data_json(&self) -> &str {
        &self.data_json
    }

    /// Whether this is an `E` (`is::<NewCount, _>()`).
    pub fn is<E: Event, I>(&self) -> bool
    where
        A::Events: Lists<E, I>,
    {
        self.name == E::NAME
    }

    /// This event as an `E` if it is one (`None` if it is another of `A`'s events); an error if
    /// its data does not decode as an `E` (the actor's and the client's types differ).
    pub fn get<E: Event, I>(&self) -> Result<Option<E>, CallError>
    where
        A::Events: Lists<E, I>,
    {
        if self.name != E::NAME {
            return Ok(None);
        }
        decode_event_data(&self.name, &self.data_json).map(Some)
    }
}

impl<A: Actor> Clone for ActorEvent<A> {
    fn clone(&self) -> Self {
        Self::new(self.name.clone(), self.data_json.clone())
    }
}

impl<A: Actor> PartialEq for ActorEvent<A> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.data_json == other.data_json
    }
}

impl<A: Actor> std::fmt::Debug for ActorEvent<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.data_json)
    }
}

/// Decodes the JSON `data` of event `name` as `E`.
fn decode_event_data<E: serde::de::DeserializeOwned>(name: &str, data: &str) -> Result<E, CallError> {
    serde_json::from_str(data).map_err(|e| {
        CallError::Internal(format!("event {name} does not decode as {}: {e}", std::any::type_name::<E>()))
    })
}

/// Connections ([`connection`](super::connection)).
impl Client {
    /// A client of the `Actors` service on the node this client talks to, to open a stream.
    pub(crate) fn stream_client(&self) -> Result<ActorsClient<crate::auth::AuthChannel>, CallError> {
        match &self.transport {
            Transport::Remote(endpoints) => Ok(endpoints.client(endpoints.current())),
            Transport::Local(_) | Transport::Detached => {
                Err(CallError::InvalidArgument("connect through a client connected to a node".into()))
            }
        }
    }

    /// The bound on each call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects to actor `actor`/`key` with `params_json` (its `ConnParams` as JSON), receiving
    /// its events (those named in `events`, or all) and the events it sends to this connection;
    /// `input_json` is used only if connecting creates the actor. See
    /// [`connection`](super::connection).
    pub async fn connect_json(
        &self,
        actor: &str,
        key: &str,
        params_json: &str,
        input_json: Option<&str>,
        events: Vec<String>,
    ) -> Result<super::connection::JsonConnection, CallError> {
        super::connection::JsonConnection::open(super::connection::ConnectTarget {
            client: self.clone(),
            actor: actor.to_string(),
            key: key.to_string(),
            params_json: params_json.to_string(),
            input_json: input_json.map(str::to_string),
            events,
        })
        .await
    }
}

impl<A: Actor> ActorRef<A> {
    /// Connects to this actor with `params` (its [`Actor::ConnParams`](super::Actor::ConnParams)):
    /// its connection hooks run, and the [`Connection`](super::connection::Connection) then
    /// carries calls (the actor sees who calls) and every event. It connects again by itself when
    /// the actor moves.
    pub async fn connect(
        &self,
        params: &A::ConnParams,
    ) -> Result<super::connection::Connection<A>, CallError> {
        let params_json = serde_json::to_string(params)
            .map_err(|e| CallError::InvalidArgument(format!("the params do not encode as JSON: {e}")))?;
        super::connection::Connection::open(super::connection::ConnectTarget {
            client: self.client.clone(),
            actor: A::NAME.to_string(),
            key: self.key.clone(),
            params_json,
            input_json: self.input_json.clone(),
            events: Vec::new(),
        })
        .await
    }
}

#[cfg(test)]
#[path = "client_test.rs"]
mod tests;
