//! The actors the stock `mortar` binary hosts: `counter` and `chatRoom` here, `reminder` and
//! `worker` in [`examples_work`](super::examples_work).
//!
//! ```console
//! $ mortar call counter user-42 increment '{"amount": 5}'
//! 5
//! $ mortar call counter user-42 getCount
//! 5
//! $ mortar call counter user-7 getCount --input '{"start": 100}'
//! 100
//! $ mortar call chatRoom lobby sendMessage '{"sender": "ann", "text": "hi"}'
//! 0
//! $ mortar call chatRoom lobby getHistory
//! [{"seq":0,"sender":"ann","text":"hi"}]
//! ```

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::registry::{Actions, Registry};
use super::sdk::{Action, Actor, ActorError, Event, Events, Handles};

/// A registry with the example actors.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(Counter)
        .register(ChatRoom)
        .register(super::examples_work::Reminder)
        .register(super::examples_work::Worker);
    registry
}

/// A counter: `increment {amount}` (default 1) returns the new count, `getCount` the count; every
/// increment emits `newCount`. Created at 0, or at `start` with the input `{"start": n}`.
pub struct Counter;

/// The creation input of a [`Counter`] (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterInput {
    #[serde(default)]
    pub start: i64,
}

/// The events of a [`Counter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterEvent {
    #[serde(rename = "newCount")]
    NewCount(NewCount),
}

impl Events for CounterEvent {
    const NAMES: &'static [&'static str] = &[NewCount::NAME];
}

impl From<NewCount> for CounterEvent {
    fn from(e: NewCount) -> Self {
        CounterEvent::NewCount(e)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Increment {
    #[serde(default = "one")]
    pub amount: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCount;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCount {
    pub count: i64,
}

impl Actor for Counter {
    const NAME: &'static str = "counter";
    type State = CounterState;
    type Input = Option<CounterInput>;
    type Events = CounterEvent;
    type Vars = ();

    fn create(&self, _key: &str, input: Option<CounterInput>) -> Result<CounterState, ActorError> {
        Ok(CounterState { count: input.unwrap_or_default().start })
    }

    fn actions(actions: &mut Actions<Self>) {
        actions.action::<Increment>().action::<GetCount>();
    }
}

impl Action for Increment {
    const NAME: &'static str = "increment";
    type Output = i64;
}

impl Action for GetCount {
    const NAME: &'static str = "getCount";
    type Output = i64;
}

impl Event for NewCount {
    const NAME: &'static str = "newCount";
}

impl Handles<Increment> for Counter {
    async fn handle(&self, action: Increment, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        let count = ctx.state().count.checked_add(action.amount).ok_or_else(|| {
            ActorError::rejected(format!("adding {} to {} overflows", action.amount, ctx.state().count))
        })?;
        ctx.state_mut().count = count;
        ctx.emit(NewCount { count });
        Ok(count)
    }
}

impl Handles<GetCount> for Counter {
    async fn handle(&self, _: GetCount, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        Ok(ctx.state().count)
    }
}

/// A chat room: `sendMessage {sender, text}` appends a message (one entry in the room's key-value
/// space, not a growing state) and emits `newMessage`; `getHistory {limit, from}` returns up to
/// `limit` messages (default 100, at most 1000), oldest first: the last ones, or those from
/// sequence number `from` on (to page through a long history).
pub struct ChatRoom;

/// The events of a [`ChatRoom`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatRoomEvent {
    #[serde(rename = "newMessage")]
    NewMessage(NewMessage),
}

impl Events for ChatRoomEvent {
    const NAMES: &'static [&'static str] = &[NewMessage::NAME];
}

impl From<NewMessage> for ChatRoomEvent {
    fn from(e: NewMessage) -> Self {
        ChatRoomEvent::NewMessage(e)
    }
}

/// Longest message text.
pub const CHAT_TEXT_BYTES_MAX: usize = 4096;
/// Longest sender name.
pub const CHAT_SENDER_BYTES_MAX: usize = 256;
/// Messages `getHistory` returns by default.
pub const CHAT_HISTORY_DEFAULT: u64 = 100;
/// Most messages one `getHistory` returns.
pub const CHAT_HISTORY_MAX: u64 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRoomState {
    /// Sequence number of the next message (= messages sent).
    pub next_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub seq: u64,
    pub sender: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub sender: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetHistory {
    #[serde(default)]
    pub limit: Option<u64>,
    /// The first sequence number to return; by default the last `limit` messages.
    #[serde(default)]
    pub from: Option<u64>,
}

/// Emitted for every message sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub seq: u64,
    pub sender: String,
    pub text: String,
}

impl Actor for ChatRoom {
    const NAME: &'static str = "chatRoom";
    type State = ChatRoomState;
    type Input = ();
    type Events = ChatRoomEvent;
    type Vars = ();

    fn actions(actions: &mut Actions<Self>) {
        actions.action::<SendMessage>().action::<GetHistory>();
    }
}

impl Action for SendMessage {
    const NAME: &'static str = "sendMessage";
    /// The message's sequence number.
    type Output = u64;
}

impl Action for GetHistory {
    const NAME: &'static str = "getHistory";
    type Output = Vec<ChatMessage>;
}

impl Event for NewMessage {
    const NAME: &'static str = "newMessage";
}

/// Key of message `seq`: zero-padded so that key order is send order.
fn message_key(seq: u64) -> String {
    format!("m/{seq:020}")
}

impl Handles<SendMessage> for ChatRoom {
    async fn handle(&self, action: SendMessage, ctx: &mut Context<Self>) -> Result<u64, ActorError> {
        if action.sender.is_empty() || action.sender.len() > CHAT_SENDER_BYTES_MAX {
            return Err(ActorError::invalid_argument(format!(
                "sender must be 1 to {CHAT_SENDER_BYTES_MAX} bytes"
            )));
        }
        if action.text.len() > CHAT_TEXT_BYTES_MAX {
            return Err(ActorError::invalid_argument(format!(
                "text is {} bytes, at most {CHAT_TEXT_BYTES_MAX} allowed",
                action.text.len()
            )));
        }
        let seq = ctx.state().next_seq;
        let message = ChatMessage { seq, sender: action.sender, text: action.text };
        ctx.kv().put(&message_key(seq), &message)?;
        ctx.state_mut().next_seq = seq + 1;
        ctx.emit(NewMessage { seq, sender: message.sender, text: message.text });
        Ok(seq)
    }
}

impl Handles<GetHistory> for ChatRoom {
    async fn handle(
        &self,
        action: GetHistory,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<ChatMessage>, ActorError> {
        let limit = action.limit.unwrap_or(CHAT_HISTORY_DEFAULT);
        if limit > CHAT_HISTORY_MAX {
            return Err(ActorError::invalid_argument(format!(
                "limit {limit} is above the maximum of {CHAT_HISTORY_MAX}"
            )));
        }
        let next = ctx.state().next_seq;
        let first = action.from.unwrap_or(next.saturating_sub(limit));
        let start_after = first.checked_sub(1).map(message_key);
        let messages = ctx.kv().list::<ChatMessage>("m/", start_after.as_deref(), limit as usize)?;
        Ok(messages.into_iter().map(|(_, m)| m).collect())
    }
}
