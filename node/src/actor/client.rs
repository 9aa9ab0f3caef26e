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

use std::marker::PhantomData;
use std::sync::Weak;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt as _};
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{ActorCallRequest, ActorSendRequest, ActorSubscribeRequest};
use tonic::transport::{Channel, Endpoint};

use super::error::CallError;
use super::keys::ActorId;
use super::router::Router;
use super::sdk::{Action, Actor, Event, Handles};

/// Default bound on one call of a [`Client`].
pub const CLIENT_CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Bound on connecting to a node.
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of the actors of a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    /// Through one node's `mortar.v1.Actors`.
    Remote(Box<ActorsClient<crate::auth::AuthChannel>>),
    /// Inside a node: its router.
    Local(Weak<Router>),
    /// Not connected (a context built outside a node).
    Detached,
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
    /// Connects to a node at `endpoint` (`host:port` or `http://host:port`).
    pub async fn connect(endpoint: &str) -> Result<Client, CallError> {
        let uri = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let channel = Endpoint::from_shared(uri)
            .map_err(|_| CallError::InvalidArgument(format!("{endpoint:?} is not a host:port address")))?
            .connect_timeout(CLIENT_CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| CallError::Retry(format!("cannot reach a mortar node at {endpoint}: {e}")))?;
        Ok(Client::from_channel(channel))
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Client {
        Client::from_channel_with_token(channel, None)
    }

    /// A client over an existing channel whose calls carry `token` (a cluster started with
    /// `--auth-token-file`; see [`crate::auth`]).
    pub fn from_channel_with_token(channel: Channel, token: Option<crate::auth::Token>) -> Client {
        let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
        let channel = crate::auth::with_token(channel, token);
        let client = ActorsClient::new(channel).max_decoding_message_size(max).max_encoding_message_size(max);
        Client { transport: Transport::Remote(Box::new(client)), timeout: CLIENT_CALL_TIMEOUT_DEFAULT }
    }

    pub(crate) fn local(router: Weak<Router>) -> Client {
        Client { transport: Transport::Local(router), timeout: crate::config::REQUEST_TIMEOUT_DEFAULT }
    }

    pub(crate) fn detached() -> Client {
        Client { transport: Transport::Detached, timeout: CLIENT_CALL_TIMEOUT_DEFAULT }
    }

    /// The same client with another bound on each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
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
            Transport::Remote(client) => {
                let mut client = client.clone();
                let mut request = tonic::Request::new(ActorCallRequest {
                    actor: actor.to_string(),
                    key: key.to_string(),
                    action: action.to_string(),
                    args_json: args_json.to_string(),
                    forwarded: false,
                    input_json: input_json.unwrap_or_default().to_string(),
                });
                request.set_timeout(self.timeout);
                match tokio::time::timeout(self.timeout, client.call(request)).await {
                    Ok(Ok(response)) => Ok(response.into_inner().result_json),
                    Ok(Err(status)) => Err(CallError::from_status(&status)),
                    Err(_) => Err(CallError::Unavailable(format!(
                        "no answer within {} ms; the outcome is unknown",
                        self.timeout.as_millis()
                    ))),
                }
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
            Transport::Remote(client) => {
                let mut client = client.clone();
                let mut request = tonic::Request::new(ActorSendRequest {
                    actor: actor.to_string(),
                    key: key.to_string(),
                    queue: queue.to_string(),
                    body_json: body_json.to_string(),
                    wait,
                    input_json: input_json.unwrap_or_default().to_string(),
                });
                request.set_timeout(self.timeout);
                match tokio::time::timeout(self.timeout, client.send(request)).await {
                    Ok(Ok(response)) => Ok(response.into_inner().id),
                    Ok(Err(status)) => Err(CallError::from_status(&status)),
                    Err(_) => Err(CallError::Unavailable(format!(
                        "no answer within {} ms; the message may or may not be queued",
                        self.timeout.as_millis()
                    ))),
                }
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

    /// The events of actor `actor`/`key` (JSON, as `(name, data)`), filtered by name unless
    /// `events` is empty. The stream ends with [`CallError::Retry`] when the actor moves: subscribe
    /// again to follow it.
    pub async fn subscribe_json(
        &self,
        actor: &str,
        key: &str,
        events: Vec<String>,
    ) -> Result<impl Stream<Item = Result<(String, String), CallError>> + use<>, CallError> {
        let Transport::Remote(client) = &self.transport else {
            return Err(CallError::InvalidArgument("subscribe through a client connected to a node".into()));
        };
        let mut client = client.clone();
        let request = ActorSubscribeRequest {
            actor: actor.to_string(),
            key: key.to_string(),
            events,
            forwarded: false,
        };
        let stream = match tokio::time::timeout(self.timeout, client.subscribe(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(CallError::from_status(&status)),
            Err(_) => return Err(CallError::Retry("the subscription was not accepted in time".into())),
        };
        Ok(stream.map(|item| match item {
            Ok(event) => Ok((event.event, event.data_json)),
            Err(status) => Err(CallError::from_status(&status)),
        }))
    }
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
    pub async fn call<X: Action>(&self, action: X) -> Result<X::Output, CallError>
    where
        A: Handles<X>,
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

    /// Every event of this actor, as its [`Actor::Events`](super::Actor::Events). Ends with
    /// [`CallError::Retry`] when the actor moves: call again to follow it.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<A::Events, CallError>> + use<A>, CallError> {
        let stream = self.client.subscribe_json(A::NAME, &self.key, Vec::new()).await?;
        Ok(stream.map(|item| {
            let (name, data) = item?;
            decode_event::<A::Events>(&name, &data)
        }))
    }

    /// Events of type `E` of this actor (others are skipped). Ends with [`CallError::Retry`] when
    /// the actor moves.
    pub async fn subscribe<E: Event>(
        &self,
    ) -> Result<impl Stream<Item = Result<E, CallError>> + use<A, E>, CallError>
    where
        A::Events: From<E>,
    {
        let stream = self.client.subscribe_json(A::NAME, &self.key, vec![E::NAME.to_string()]).await?;
        Ok(stream.map(|item| {
            let (name, data) = item?;
            serde_json::from_str(&data).map_err(|e| {
                CallError::Internal(format!(
                    "event {name} does not decode as {}: {e}",
                    std::any::type_name::<E>()
                ))
            })
        }))
    }
}

/// Decodes event `name` with JSON `data` as the events type `T` (`{"<name>": <data>}`).
pub(crate) fn decode_event<T: serde::de::DeserializeOwned>(name: &str, data: &str) -> Result<T, CallError> {
    let decode = || -> Result<T, serde_json::Error> {
        let data: serde_json::Value = serde_json::from_str(data)?;
        serde_json::from_value(serde_json::Value::Object([(name.to_string(), data)].into_iter().collect()))
    };
    decode().map_err(|e| {
        CallError::Internal(format!("event {name} does not decode as {}: {e}", std::any::type_name::<T>()))
    })
}
