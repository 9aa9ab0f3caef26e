//! Seed 000's two Rust examples (the RivetKit Rust SDK's `counter` and `chat-room-rust`), ported
//! to Mortar's SDK with as few changes as the two SDKs allow; the README's "Porting from
//! RivetKit" shows the diff. The test at the end runs both on an in-process cluster.
//!
//! ```console
//! $ cargo test --release --example seed_000
//! $ cargo run --release --example seed_000 -- dev     # a local cluster hosting both
//! ```

/// The counter: typed actions, persisted state, an event broadcast to every connected client.
pub mod counter {
    use mortar_node::prelude::*;
    use serde::{Deserialize, Serialize};

    pub const ACTOR_NAME: &str = "counter";

    pub struct Counter;

    // Persisted state: serialized, validated, and restored on wake.
    #[derive(Default, Serialize, Deserialize)]
    pub struct CounterState {
        pub count: i64,
    }

    // A typed action with an explicit payload and `Output`.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Increment {
        pub amount: i64,
    }

    impl Action for Increment {
        type Output = i64;
        const NAME: &'static str = "increment";
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct GetCount;

    impl Action for GetCount {
        type Output = i64;
        const NAME: &'static str = "getCount";
    }

    // A typed event broadcast to every connected client.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct NewCount {
        pub count: i64,
    }

    impl Event for NewCount {
        const NAME: &'static str = "newCount";
    }

    impl Actor for Counter {
        const NAME: &'static str = ACTOR_NAME;
        type State = CounterState;
        type Input = ();
        type Actions = (Increment, GetCount);
        type Events = (NewCount,);
        type Vars = ();
        type ConnParams = ();
        type ConnState = ();
    }

    impl Handles<Increment> for Counter {
        async fn handle(&self, action: Increment, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
            // In-memory read-modify-write; the change is persisted for you.
            let count = {
                let state = ctx.state_mut();
                state.count += action.amount;
                state.count
            };
            // Broadcast the new value to every connected client.
            ctx.emit(NewCount { count })?;
            Ok(count)
        }
    }

    impl Handles<GetCount> for Counter {
        async fn handle(&self, _action: GetCount, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
            Ok(ctx.state().count)
        }
    }

    pub fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.register(Counter);
        registry
    }
}

/// The chat room: the same shape, plus durable history (in the actor's key-value space, where
/// the seed has embedded SQLite) and a per-activation value (where the seed has a plain struct
/// field).
pub mod chat_room {
    use std::time::{SystemTime, UNIX_EPOCH};

    use mortar_node::prelude::*;
    use serde::{Deserialize, Serialize};

    pub const ACTOR_NAME: &str = "chatRoom";

    pub struct ChatRoom;

    // Per-activation values, rebuilt at every wake and never stored.
    #[derive(Default)]
    pub struct ChatRoomVars {
        started_at_ms: i64,
    }

    #[derive(Default, Serialize, Deserialize)]
    pub struct ChatRoomState {
        pub sent_count: u64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Message {
        pub sender: String,
        pub text: String,
        pub timestamp: i64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct SendMessage {
        pub sender: String,
        pub text: String,
    }

    impl Action for SendMessage {
        type Output = Message;
        const NAME: &'static str = "sendMessage";
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct GetHistory;

    impl Action for GetHistory {
        type Output = Vec<Message>;
        const NAME: &'static str = "getHistory";
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct GetStats;

    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomStats {
        pub sent_count: u64,
        pub started_at_ms: i64,
    }

    impl Action for GetStats {
        type Output = RoomStats;
        const NAME: &'static str = "getStats";
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct NewMessage {
        pub message: Message,
    }

    impl Event for NewMessage {
        const NAME: &'static str = "newMessage";
    }

    impl Actor for ChatRoom {
        const NAME: &'static str = ACTOR_NAME;
        type State = ChatRoomState;
        type Input = ();
        type Actions = (SendMessage, GetHistory, GetStats);
        type Events = (NewMessage,);
        type Vars = ChatRoomVars;
        type ConnParams = ();
        type ConnState = ();

        async fn on_wake(&self, _ctx: &Context<Self>) -> Result<ChatRoomVars, ActorError> {
            Ok(ChatRoomVars { started_at_ms: now_ms() })
        }
    }

    impl Handles<SendMessage> for ChatRoom {
        async fn handle(&self, action: SendMessage, ctx: &mut Context<Self>) -> Result<Message, ActorError> {
            let message = send_message(ctx, action.sender, action.text)?;
            ctx.state_mut().sent_count += 1;
            ctx.emit(NewMessage { message: message.clone() })?;
            Ok(message)
        }
    }

    impl Handles<GetHistory> for ChatRoom {
        async fn handle(
            &self,
            _action: GetHistory,
            ctx: &mut Context<Self>,
        ) -> Result<Vec<Message>, ActorError> {
            get_history(ctx)
        }
    }

    impl Handles<GetStats> for ChatRoom {
        async fn handle(&self, _action: GetStats, ctx: &mut Context<Self>) -> Result<RoomStats, ActorError> {
            Ok(RoomStats { sent_count: ctx.state().sent_count, started_at_ms: ctx.vars().started_at_ms })
        }
    }

    pub fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.register(ChatRoom);
        registry
    }

    /// Most messages the history returns (one key-value listing).
    const HISTORY_MAX: usize = 1000;

    fn send_message(
        ctx: &mut Context<ChatRoom>,
        sender: String,
        text: String,
    ) -> Result<Message, ActorError> {
        let timestamp = now_ms();
        let message = Message { sender, text, timestamp };
        // One entry per message, keyed by its number: ordered like the seed's `id` column.
        let key = format!("messages/{:020}", ctx.state().sent_count);
        ctx.kv().put(&key, &message)?;
        Ok(message)
    }

    fn get_history(ctx: &mut Context<ChatRoom>) -> Result<Vec<Message>, ActorError> {
        let rows = ctx.kv().list::<Message>("messages/", None, HISTORY_MAX)?;
        Ok(rows.into_iter().map(|(_, message)| message).collect())
    }

    fn now_ms() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
    }
}

fn registry() -> mortar_node::actor::Registry {
    let mut registry = counter::registry();
    registry.register(chat_room::ChatRoom);
    registry
}

// `main` with the whole `mortar` command line, hosting both.
mortar_node::node_main!(registry());

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt as _;
    use mortar_node::testing::TestCluster;

    use super::chat_room::{ChatRoom, GetHistory, GetStats, NewMessage, SendMessage};
    use super::counter::{Counter, GetCount, Increment, NewCount};
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_seeds_counter_and_chat_room_work_as_ported() {
        let mut cluster = TestCluster::start(3, registry).await;
        let client = cluster.client().await;

        // The counter: each increment is persisted and announced.
        let counter = client.actor::<Counter>("c1");
        let mut counts = counter.subscribe::<NewCount, _>().await.unwrap();
        assert_eq!(counter.call(Increment { amount: 5 }).await.unwrap(), 5);
        assert_eq!(counter.call(Increment { amount: 2 }).await.unwrap(), 7);
        for expected in [5, 7] {
            let event = tokio::time::timeout(Duration::from_secs(10), counts.next()).await;
            assert_eq!(
                event.expect("an event in time").expect("the stream goes on").unwrap().count,
                expected
            );
        }

        // The chat room: messages in order, announced, kept across a kill of its owner.
        let room = client.actor::<ChatRoom>("lobby");
        let mut events = room.events().await.unwrap();
        let sent = room.call(SendMessage { sender: "ann".into(), text: "hi".into() }).await.unwrap();
        room.call(SendMessage { sender: "bob".into(), text: "hello".into() }).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
        let first = first.expect("an event in time").expect("the stream goes on").unwrap();
        assert_eq!(first.get::<NewMessage, _>().unwrap().map(|e| e.message), Some(sent));
        let stats = room.call(GetStats).await.unwrap();
        assert_eq!(stats.sent_count, 2);

        cluster.kill(cluster.owner::<ChatRoom>("lobby").await).await;
        let history = room.call(GetHistory).await.unwrap();
        let texts: Vec<(&str, &str)> = history.iter().map(|m| (m.sender.as_str(), m.text.as_str())).collect();
        assert_eq!(texts, [("ann", "hi"), ("bob", "hello")]);
        // A new activation: the per-activation value is new, the stored count is not.
        let after = room.call(GetStats).await.unwrap();
        assert_eq!(after.sent_count, 2);
        assert!(after.started_at_ms >= stats.started_at_ms);
        assert_eq!(client.actor::<Counter>("c1").call(GetCount).await.unwrap(), 7);
    }
}
