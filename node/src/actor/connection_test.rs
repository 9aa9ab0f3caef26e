//! Connections on one node in process, through a real gRPC server (`mortar.v1.Actors`) and the
//! client's [`Connection`]: the hooks, the refusals, identity in calls, messages to one
//! connection, disconnection by the actor and by the client, no sleep while connected, and
//! reconnection after the activation is deposed.

use serde::{Deserialize, Serialize};

use super::*;
use crate::actor::ActorEvent;
use crate::actor::connection::{ConnEvent, Connection};
use crate::actor::examples::{
    ChatJoin, ChatRoom, GetMembers, Kick, MemberJoined, MemberLeft, NewMessage, SendMessage, SendWhisper,
    Whisper,
};
use crate::actor::runtime::INSPECT;

pub(super) fn register(registry: &mut Registry) {
    registry.register(Door);
}

/// A node serving `mortar.v1.Actors` on loopback, and a client of it.
struct Served {
    node: Node,
    client: Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn served(config: RuntimeConfig) -> Served {
    let node = node_with(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let service = mortar_proto::v1::actors_server::ActorsServer::new(crate::actor::service::ActorsService {
        router: node.router.clone(),
    });
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await.unwrap();
    });
    let client = Client::connect(&address).await.unwrap().with_timeout(Duration::from_secs(5));
    Served { node, client, server }
}

async fn join(client: &Client, room: &str, name: &str) -> Connection<ChatRoom> {
    client.actor::<ChatRoom>(room).connect(&ChatJoin { name: name.into() }).await.unwrap()
}

/// The next event of `conn`, within 5 s.
async fn next<A: Actor>(conn: &mut Connection<A>) -> ConnEvent<A> {
    tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("an event within 5 s")
        .expect("the connection goes on")
        .expect("the event decodes")
}

fn joined(name: &str) -> ActorEvent<ChatRoom> {
    ActorEvent::of(&MemberJoined { name: name.into() })
}

/// The chat message `event` carries, if it is one.
fn message(event: &ConnEvent<ChatRoom>) -> Option<NewMessage> {
    event.event().expect("a newMessage decodes")
}

/// Skips `conn`'s events until `wanted` (at most 20 events).
async fn until<A: Actor>(conn: &mut Connection<A>, wanted: impl Fn(&ConnEvent<A>) -> bool) -> ConnEvent<A> {
    for _ in 0..20 {
        let event = next(conn).await;
        if wanted(&event) {
            return event;
        }
    }
    panic!("the event did not come within 20 events");
}

#[tokio::test]
async fn members_connect_by_name_and_their_calls_carry_it() {
    let served = served(RuntimeConfig::new(ME)).await;
    let mut ann = join(&served.client, "lobby", "ann").await;
    // A connection hears its own joining: its subscription began before the hooks ran.
    assert!(matches!(next(&mut ann).await, ConnEvent::Event(e) if e == joined("ann")));
    let mut bob = join(&served.client, "lobby", "bob").await;
    assert!(matches!(next(&mut ann).await, ConnEvent::Event(e) if e == joined("bob")));
    assert!(matches!(next(&mut bob).await, ConnEvent::Event(e) if e == joined("bob")));
    assert_ne!(ann.conn_id(), bob.conn_id());

    // The sender is the connection's name.
    let seq = bob.call(SendMessage { sender: None, text: "hi".into() }).await.unwrap();
    let expected = ActorEvent::of(&NewMessage { seq, sender: "bob".into(), text: "hi".into() });
    assert!(matches!(next(&mut ann).await, ConnEvent::Event(e) if e == expected));
    assert!(matches!(next(&mut bob).await, ConnEvent::Event(e) if e == expected));
    let spoofed = bob.call(SendMessage { sender: Some("ann".into()), text: "x".into() }).await.unwrap_err();
    assert!(matches!(&spoofed, CallError::InvalidArgument(m) if m.contains("sends as bob")), "{spoofed:?}");
    // A plain call has no connection: it names its sender.
    let plain = served.client.actor::<ChatRoom>("lobby");
    assert!(matches!(
        plain.call(SendMessage { sender: None, text: "x".into() }).await,
        Err(CallError::InvalidArgument(_))
    ));
    assert_eq!(bob.call(GetMembers).await.unwrap(), ["ann", "bob"]);

    // A whisper reaches its addressee alone.
    assert!(bob.call(SendWhisper { to: "ann".into(), text: "psst".into() }).await.unwrap());
    let whisper = ActorEvent::of(&Whisper { from: "bob".into(), text: "psst".into() });
    assert!(matches!(next(&mut ann).await, ConnEvent::Message(e) if e == whisper));
    let seq = bob.call(SendMessage { sender: None, text: "after".into() }).await.unwrap();
    let got = next(&mut bob).await;
    assert_eq!(message(&got).map(|m| m.seq), Some(seq), "bob got no whisper first: {got:?}");
    assert!(!bob.call(SendWhisper { to: "nobody".into(), text: "x".into() }).await.unwrap());

    // The inspector lists both connections with their params and state.
    let look = served.node.call("chatRoom", "lobby", INSPECT, r#"{"part": "connections"}"#).await.unwrap();
    let look: serde_json::Value = serde_json::from_str(&look.result_json).unwrap();
    let names: Vec<&str> = look["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{look}");
    assert!(names.contains(&"ann") && names.contains(&"bob"), "{look}");
    assert_eq!(look["connections"][0]["params"]["name"], look["connections"][0]["state"]["name"]);
}

#[tokio::test]
async fn the_actor_refuses_bad_params_and_taken_names() {
    let served = served(RuntimeConfig::new(ME)).await;
    let _ann = join(&served.client, "gate", "ann").await;
    let taken = served.client.actor::<ChatRoom>("gate").connect(&ChatJoin { name: "ann".into() }).await;
    assert!(
        matches!(&taken, Err(CallError::Rejected(m)) if m.contains("already in room")),
        "{:?}",
        taken.err()
    );
    let empty = served.client.actor::<ChatRoom>("gate").connect(&ChatJoin { name: String::new() }).await;
    assert!(matches!(empty, Err(CallError::InvalidArgument(_))), "{:?}", empty.err());
    let wrong = served.client.connect_json("chatRoom", "gate", r#"{"nam": "x"}"#, None, Vec::new()).await;
    assert!(matches!(&wrong, Err(CallError::InvalidArgument(m)) if m.contains("nam")), "{:?}", wrong.err());
    let unknown =
        served.client.connect_json("chatRoom", "gate", r#"{"name": "x"}"#, None, vec!["nope".into()]).await;
    assert!(
        matches!(unknown, Err(CallError::NotFound(_)) | Err(CallError::InvalidArgument(_))),
        "{:?}",
        unknown.err()
    );
    let no_type = served.client.connect_json("nope", "gate", "null", None, Vec::new()).await;
    assert!(matches!(no_type, Err(CallError::NotFound(_))), "{:?}", no_type.err());
    // Refused connections left nothing behind.
    assert_eq!(served.client.actor::<ChatRoom>("gate").call(GetMembers).await.unwrap(), ["ann"]);
}

#[tokio::test]
async fn a_kicked_member_is_told_and_leaving_members_are_announced() {
    let served = served(RuntimeConfig::new(ME)).await;
    let mut ann = join(&served.client, "hall", "ann").await;
    let mut bob = join(&served.client, "hall", "bob").await;
    assert!(ann.call(Kick { name: "bob".into() }).await.unwrap());
    match until(&mut bob, |e| matches!(e, ConnEvent::Closed { .. })).await {
        ConnEvent::Closed { reason, by_actor } => assert!(by_actor && reason.contains("kicked"), "{reason}"),
        _ => unreachable!(),
    }
    let left = ActorEvent::of(&MemberLeft { name: "bob".into() });
    until(&mut ann, |e| matches!(e, ConnEvent::Event(e) if *e == left)).await;
    assert_eq!(ann.call(GetMembers).await.unwrap(), ["ann"]);
    // Bob may come back.
    let _bob = join(&served.client, "hall", "bob").await;
    // A client that goes away is disconnected: its on_disconnect runs.
    let mut carl = join(&served.client, "hall", "carl").await;
    drop(ann);
    let left = ActorEvent::of(&MemberLeft { name: "ann".into() });
    until(&mut carl, |e| matches!(e, ConnEvent::Event(e) if *e == left)).await;
    assert_eq!(carl.call(GetMembers).await.unwrap(), ["bob", "carl"]);
}

/// An actor that counts its connections in its state, and lets in only the right password.
struct Door;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DoorState {
    connects: u32,
    disconnects: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Password(String);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Visit {
    /// Calls made over this connection.
    calls: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Count;

impl Actor for Door {
    const NAME: &'static str = "door";
    type State = DoorState;
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = Password;
    type ConnState = Visit;

    type Actions = (Count,);

    async fn on_before_connect(&self, _: &Context<Self>, password: &Password) -> Result<(), ActorError> {
        if password.0 != "sesame" {
            return Err(ActorError::rejected("wrong password"));
        }
        Ok(())
    }

    async fn on_connect(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().connects += 1;
        Ok(())
    }

    async fn on_disconnect(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().disconnects += 1;
        Ok(())
    }
}

impl Action for Count {
    const NAME: &'static str = "count";
    /// The calls of this connection so far, and the state.
    type Output = (u32, DoorState);
}

impl Handles<Count> for Door {
    async fn handle(&self, _: Count, ctx: &mut Context<Self>) -> Result<(u32, DoorState), ActorError> {
        let calls = match ctx.conn_mut() {
            Some(conn) => {
                conn.state_mut().calls += 1;
                conn.state().calls
            }
            None => 0,
        };
        Ok((calls, ctx.state().clone()))
    }
}

fn stored(node: &Node, key: &str) -> DoorState {
    serde_json::from_str(&node.stored_state("door", key).expect("the state is stored")).unwrap()
}

#[tokio::test]
async fn connection_hooks_commit_their_changes_and_connection_state_lives_in_memory() {
    let served = served(RuntimeConfig::new(ME)).await;
    let door = served.client.actor::<Door>("front");
    let refused = door.connect(&Password("open".into())).await;
    assert!(
        matches!(&refused, Err(CallError::Rejected(m)) if m.contains("wrong password")),
        "{:?}",
        refused.err()
    );
    assert!(served.node.stored_state("door", "front").is_none(), "a refused connection wrote nothing");
    let mut first = door.connect(&Password("sesame".into())).await.unwrap();
    assert_eq!(stored(&served.node, "front"), DoorState { connects: 1, disconnects: 0 });
    assert_eq!(first.call(Count).await.unwrap().0, 1);
    assert_eq!(first.call(Count).await.unwrap().0, 2);
    let mut second = door.connect(&Password("sesame".into())).await.unwrap();
    assert_eq!(second.call(Count).await.unwrap(), (1, DoorState { connects: 2, disconnects: 0 }));
    assert_eq!(door.call(Count).await.unwrap().0, 0, "a plain call has no connection");
    drop(first);
    let node = &served.node;
    eventually_stored(node, "front", DoorState { connects: 2, disconnects: 1 }).await;
    drop(second);
    eventually_stored(node, "front", DoorState { connects: 2, disconnects: 2 }).await;
}

async fn eventually_stored(node: &Node, key: &str, wanted: DoorState) {
    let until = Instant::now() + Duration::from_secs(10);
    while stored(node, key) != wanted {
        assert!(Instant::now() < until, "the state never became {wanted:?}: {:?}", stored(node, key));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_connected_actor_stays_awake_and_sleeps_once_its_connections_end() {
    let mut config = RuntimeConfig::new(ME);
    config.idle_timeout = Duration::from_millis(100);
    let served = served(config).await;
    let id = ActorId::new("door", "side");
    let mut conn = served.client.actor::<Door>("side").connect(&Password("sesame".into())).await.unwrap();
    let generation = served.node.router.runtime().generation_of(&id).expect("active");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(served.node.router.runtime().generation_of(&id), Some(generation), "it slept while connected");
    assert_eq!(conn.call(Count).await.unwrap().0, 1, "the connection state is still there");
    drop(conn);
    let until = Instant::now() + Duration::from_secs(10);
    while served.node.router.runtime().generation_of(&id).is_some() {
        assert!(Instant::now() < until, "the actor never slept after its connection ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_deposed_activation_ends_its_connections_and_they_connect_again() {
    let served = served(RuntimeConfig::new(ME)).await;
    let mut conn = join(&served.client, "moving", "ann").await;
    assert!(matches!(next(&mut conn).await, ConnEvent::Event(e) if e == joined("ann")));
    let first = conn.conn_id();
    // Another node activates the actor: this activation is deposed at its next write.
    served.node.activate_elsewhere("chatRoom", "moving", 2).await;
    let plain = served.client.actor::<ChatRoom>("moving");
    let _ = plain.call(SendMessage { sender: Some("x".into()), text: "fenced".into() }).await;
    // The connection is made again, and its hooks run again.
    match until(&mut conn, |e| matches!(e, ConnEvent::Reconnected { .. })).await {
        ConnEvent::Reconnected { conn_id } => assert_ne!(conn_id, first),
        _ => unreachable!(),
    }
    // (The fenced message, retried by the router, may come before or after.)
    until(&mut conn, |e| matches!(e, ConnEvent::Event(e) if *e == joined("ann"))).await;
    // Every event after the reconnection arrives.
    for i in 0..20 {
        let seq = plain.call(SendMessage { sender: Some("x".into()), text: format!("m{i}") }).await.unwrap();
        let got = next(&mut conn).await;
        let m = message(&got).unwrap_or_else(|| panic!("got {got:?}"));
        assert_eq!((m.seq, m.text), (seq, format!("m{i}")));
    }
    assert_eq!(conn.call(GetMembers).await.unwrap(), ["ann"]);
}
