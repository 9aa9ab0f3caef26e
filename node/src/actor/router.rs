//! Where a call goes: the owner of an actor is `ring.owner(name, key)` over the live members that
//! gossip reports. A call reaching another node is forwarded once to the owner; a forwarded call
//! is never forwarded again: the receiver answers it if its own ring agrees that it owns the
//! actor, and otherwise refuses it with a retry-safe `UNAVAILABLE` (nothing applied), after which
//! the first node looks the owner up again. Views converge within a gossip round or two, so
//! retries are few.
//!
//! The first node retries retry-safe failures (owner unreachable before the call was sent, the
//! owner refusing a forwarded call, an activation deposed by another node; not overload, which
//! the caller hears at once as `RESOURCE_EXHAUSTED`) until the call's
//! deadline, waiting for the next membership change between attempts: during a failover a call
//! waits until gossip has declared the dead owner down, then runs on the new owner. It never
//! retries a call whose outcome is unknown.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::Stream;
use mortar_placement::{Member, View};
use mortar_proto::internal::v1::actor_forward_client::ActorForwardClient;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{ActorCallRequest, ActorEvent, ActorSubscribeRequest};
use tokio::sync::{broadcast, watch};
use tonic::Status;
use tonic::transport::Channel;

use super::error::CallError;
use super::events::Published;
use super::forward::Forwarder;
use super::keys::ActorId;
use super::runtime::{Reply, Runtime};

/// Most attempts of one call at the first node.
pub const CALL_ATTEMPTS_MAX: usize = 64;
/// Longest wait for a membership change between two attempts.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Bound on connecting to another node.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time a forwarding node keeps to answer after the owner's deadline.
pub const FORWARD_DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// A stream of events for the `Subscribe` RPC.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ActorEvent, Status>> + Send>>;

/// Routes calls and subscriptions to the owner of each actor.
pub struct Router {
    me: u32,
    runtime: Runtime,
    view: watch::Receiver<View>,
    channels: Mutex<HashMap<String, Channel>>,
    /// The stream of forwarded calls to each owner, by address ([`super::forward`]).
    forwarders: Mutex<HashMap<String, Arc<Forwarder>>>,
}

/// The owner of an actor, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: u32,
    pub address: String,
}

impl Router {
    /// A router for `runtime`, placing actors over the live members in `view`; actions of
    /// `runtime` call other actors through it.
    pub fn new(runtime: Runtime, view: watch::Receiver<View>) -> Arc<Self> {
        let me = runtime.config().node_id;
        let router = Arc::new(Self {
            me,
            runtime,
            view,
            channels: Mutex::new(HashMap::new()),
            forwarders: Mutex::new(HashMap::new()),
        });
        let timeout = router.runtime.config().call_timeout;
        router.runtime.set_client(super::Client::local(Arc::downgrade(&router)).with_timeout(timeout));
        router
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn node_id(&self) -> u32 {
        self.me
    }

    /// A receiver of membership views.
    pub fn view_watch(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Starts the alarm scheduler of this node ([`scheduler`](super::scheduler)).
    pub fn spawn_scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        super::scheduler::spawn(self)
    }

    /// The current membership view.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// The owner of `id` in `view` (this node when the view is empty, which only happens after it
    /// left).
    fn owner_in(&self, view: &View, id: &ActorId) -> Owner {
        let node = view.ring.owner(id.name(), id.key().as_bytes()).unwrap_or(self.me);
        let address = view.member(node).map(|m: &Member| m.grpc_addr.clone()).unwrap_or_default();
        Owner { node, address }
    }

    pub fn owner(&self, id: &ActorId) -> Owner {
        self.owner_in(&self.view.borrow(), id)
    }

    /// Stops, from now on whenever membership changes, the activations and subscriptions of
    /// actors that another node owns. Runs until membership stops.
    pub fn spawn_rebalancer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let router = Arc::downgrade(self);
        let mut view = self.view.clone();
        tokio::spawn(async move {
            let mut epoch = view.borrow().epoch;
            while view.changed().await.is_ok() {
                let Some(router) = router.upgrade() else { return };
                let current = view.borrow_and_update().clone();
                if current.epoch == epoch {
                    continue; // only loads changed
                }
                epoch = current.epoch;
                router.runtime.retain_owned(|id| router.owner_in(&current, id).node);
            }
        })
    }

    /// Runs a call on the actor's owner, from here (forwarding once) or, when `forwarded`, only
    /// if this node owns the actor. `input_json` is used only if the call creates the actor.
    pub async fn call(
        &self,
        id: &ActorId,
        action: &str,
        args_json: String,
        input_json: Option<String>,
        forwarded: bool,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        id.validate().map_err(CallError::InvalidArgument)?;
        self.runtime.registry().check_call(id.name(), action)?;
        let mut view = self.view.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let owner = self.owner_in(&view.borrow_and_update(), id);
            let result = if owner.node == self.me {
                self.runtime.call_local(id, action, args_json.clone(), input_json.clone(), deadline).await
            } else if forwarded {
                return Err(CallError::Retry(format!(
                    "node {} does not own actor {id} (node {} does, by its view of the cluster); retry",
                    self.me, owner.node
                )));
            } else {
                self.forward_call(&owner, id, action, &args_json, input_json.as_deref(), deadline).await
            };
            match result {
                // The node that was asked does not pass the call on: its caller retries. An
                // overloaded actor or node (a full mailbox or queue) is told to the caller at once.
                Err(e @ CallError::Retry(_)) if !forwarded => {
                    if attempt >= CALL_ATTEMPTS_MAX || Instant::now() >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(actor = %id, action, attempt, error = %e, "call not applied; retrying");
                    let wait = RETRY_BACKOFF.min(deadline.saturating_duration_since(Instant::now()));
                    if let Ok(Err(_)) = tokio::time::timeout(wait, view.changed()).await {
                        // Membership has stopped: the view will not change, just back off.
                        tokio::time::sleep(wait).await;
                    }
                    if Instant::now() >= deadline {
                        return Err(e); // no time left for another attempt
                    }
                }
                result => return result,
            }
        }
    }

    fn channel(&self, address: &str) -> Result<Channel, CallError> {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = self
            .runtime
            .config()
            .peer_dialer
            .endpoint(address)
            .map_err(|e| CallError::Internal(format!("node address {address:?} is not a valid URI: {e}")))?
            .connect_timeout(PEER_CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// The channel to `owner`, presenting this node's token.
    fn peer_channel(&self, owner: &Owner) -> Result<crate::auth::AuthChannel, CallError> {
        Ok(crate::auth::with_token(self.channel(&owner.address)?, self.runtime.config().peer_token.clone()))
    }

    pub(crate) fn actors_client(
        &self,
        owner: &Owner,
    ) -> Result<ActorsClient<crate::auth::AuthChannel>, CallError> {
        let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
        Ok(ActorsClient::new(self.peer_channel(owner)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max))
    }

    /// Resolves when `owner` no longer owns `id` in this node's view (it was declared dead, or the
    /// ring moved the actor); never when membership has stopped.
    pub(crate) async fn owner_changed(&self, id: &ActorId, owner: u32) {
        let mut view = self.view.clone();
        if view.wait_for(|v| self.owner_in(v, id).node != owner).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The forwarder of calls to `owner`, started on first use.
    fn forwarder(&self, owner: &Owner) -> Result<Arc<Forwarder>, CallError> {
        if let Some(forwarder) = self.forwarders.lock().expect("forwarders lock").get(&owner.address) {
            return Ok(forwarder.clone());
        }
        let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
        let client = ActorForwardClient::new(self.peer_channel(owner)?)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let mut forwarders = self.forwarders.lock().expect("forwarders lock");
        let forwarder = forwarders
            .entry(owner.address.clone())
            .or_insert_with(|| Arc::new(Forwarder::spawn(owner.node, client)));
        Ok(forwarder.clone())
    }

    async fn forward_call(
        &self,
        owner: &Owner,
        id: &ActorId,
        action: &str,
        args_json: &str,
        input_json: Option<&str>,
        deadline: Instant,
    ) -> Result<Reply, CallError> {
        let forwarder = self.forwarder(owner)?;
        let call = ActorCallRequest {
            actor: id.name().to_string(),
            key: id.key().to_string(),
            action: action.to_string(),
            args_json: args_json.to_string(),
            forwarded: true,
            input_json: input_json.unwrap_or_default().to_string(),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = remaining.saturating_sub(FORWARD_DEADLINE_MARGIN).max(Duration::from_millis(1));
        tokio::select! {
            result = forwarder.call(call, timeout) => result,
            () = self.owner_changed(id, owner.node) => Err(CallError::Unavailable(format!(
                "node {} stopped owning actor {id} (declared down?) while it had the call; the outcome \
                 is unknown",
                owner.node
            ))),
            () = tokio::time::sleep_until(deadline.into()) => Err(CallError::Unavailable(format!(
                "node {} did not answer for actor {id} in time; the outcome is unknown",
                owner.node
            ))),
        }
    }

    /// Subscribes to the events of `id` (filtered by name unless `events` is empty) at its owner.
    pub async fn subscribe(
        self: &Arc<Self>,
        id: ActorId,
        events: Vec<String>,
        forwarded: bool,
    ) -> Result<EventStream, CallError> {
        id.validate().map_err(CallError::InvalidArgument)?;
        self.runtime.registry().check_events(id.name(), &events)?;
        let owner = self.owner(&id);
        if owner.node == self.me {
            let receiver = self.runtime.hub().subscribe(&id).ok_or_else(|| {
                CallError::Overloaded("too many actors have subscribers on this node; retry later".into())
            })?;
            return Ok(local_stream(self.me, receiver, events));
        }
        if forwarded {
            return Err(CallError::Retry(format!(
                "node {} does not own actor {id} (node {} does, by its view of the cluster); subscribe again",
                self.me, owner.node
            )));
        }
        let mut client = self.actors_client(&owner)?;
        let request = ActorSubscribeRequest {
            actor: id.name().to_string(),
            key: id.key().to_string(),
            events,
            forwarded: true,
        };
        let upstream = tokio::select! {
            response = client.subscribe(request) => response.map_err(|s| CallError::from_status(&s))?.into_inner(),
            () = tokio::time::sleep(self.runtime.config().call_timeout) => {
                return Err(CallError::Retry(format!("node {} did not accept the subscription in time", owner.node)));
            }
        };
        Ok(proxied_stream(Arc::downgrade(self), id, owner.node, upstream))
    }
}

/// Events of an actor owned here.
fn local_stream(me: u32, receiver: broadcast::Receiver<Published>, events: Vec<String>) -> EventStream {
    let stream = futures::stream::unfold(Some(receiver), move |receiver| {
        let events = events.clone();
        async move {
            let mut receiver = receiver?;
            loop {
                let item = match receiver.recv().await {
                    Ok(Published::Event(event)) => {
                        if !events.is_empty() && !events.iter().any(|e| e == event.name) {
                            continue;
                        }
                        let event = ActorEvent {
                            event: event.name.to_string(),
                            data_json: event.data_json.clone(),
                            served_by: me,
                        };
                        return Some((Ok(event), Some(receiver)));
                    }
                    Ok(Published::Conn(_)) => continue,
                    Ok(Published::Closed(closed)) => CallError::Retry(closed.reason),
                    Err(broadcast::error::RecvError::Lagged(missed)) => CallError::Retry(format!(
                        "this subscriber fell {missed} events behind and was dropped; subscribe again"
                    )),
                    Err(broadcast::error::RecvError::Closed) => {
                        CallError::Retry("the node stopped publishing; subscribe again".into())
                    }
                };
                return Some((Err(Status::from(item)), None));
            }
        }
    });
    Box::pin(stream)
}

/// Events of an actor owned by `owner`, passed through from its stream; ends (asking the client to
/// subscribe again) when `owner` stops owning the actor in this node's view.
fn proxied_stream(
    router: Weak<Router>,
    id: ActorId,
    owner: u32,
    upstream: tonic::Streaming<ActorEvent>,
) -> EventStream {
    let stream = futures::stream::unfold(Some(upstream), move |upstream| {
        let router = router.clone();
        let id = id.clone();
        async move {
            let mut upstream = upstream?;
            let moved = async {
                match router.upgrade() {
                    Some(router) => router.owner_changed(&id, owner).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = upstream.message() => match item {
                    Ok(Some(event)) => Some((Ok(event), Some(upstream))),
                    Ok(None) => None,
                    Err(status) => {
                        let e = CallError::from_status(&status);
                        let e = if matches!(e, CallError::Unavailable(_)) {
                            CallError::Retry(format!("lost the stream from node {owner} ({e}); subscribe again"))
                        } else {
                            e
                        };
                        Some((Err(Status::from(e)), None))
                    }
                },
                () = moved => Some((
                    Err(Status::from(CallError::Retry(format!(
                        "actor {id} moved away from node {owner}; subscribe again"
                    )))),
                    None,
                )),
            }
        }
    });
    Box::pin(stream)
}

/// A view with this node as the only member, for a runtime without gossip (tests, one node).
pub fn single_node_view(node_id: u32) -> watch::Receiver<View> {
    let members = vec![Member::new(node_id, "")];
    let ring = mortar_placement::Ring::new(&members);
    // The sender goes at once: the view never changes.
    let (_tx, rx) = watch::channel(View { epoch: 0, local: node_id, members, ring });
    rx
}
