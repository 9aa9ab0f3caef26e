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
use super::registry::Registry;
use super::sdk::{Action, Actor, ActorError, Event, Handles};

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
    type Actions = (Increment, GetCount);
    type Events = (NewCount,);
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    fn create(&self, _key: &str, input: Option<CounterInput>) -> Result<CounterState, ActorError> {
        Ok(CounterState { count: input.unwrap_or_default().start })
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
            // A user error: clients get the code `overflow` and the numbers as metadata.
            ActorError::user(
                "overflow",
                format!("adding {} to {} overflows", action.amount, ctx.state().count),
            )
            .with_metadata(serde_json::json!({ "count": ctx.state().count, "amount": action.amount }))
        })?;
        ctx.state_mut().count = count;
        ctx.emit(NewCount { count })?;
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
///
/// Members connect with their name (`mortar connect chatRoom lobby --params '{"name": "ann"}'`):
/// a name already connected, empty or too long is refused; the name is kept in the connection's
/// state, and `sendMessage {text}` over the connection is sent under it (a `sender` argument
/// must then match it). Joining and leaving emit `memberJoined` / `memberLeft`; `getMembers`
/// lists the connected names; `whisper {to, text}` sends a `whisper` event to one member alone;
/// `kick {name}` disconnects a member.
pub struct ChatRoom;

/// What a member gives when connecting to a [`ChatRoom`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatJoin {
    pub name: String,
}

/// A connected member of a [`ChatRoom`] (its connection state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMember {
    pub name: String,
    /// When the member connected, in unix milliseconds.
    pub joined_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJoined {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLeft {
    pub name: String,
}

/// A message for one member alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whisper {
    pub from: String,
    pub text: String,
}

/// `getMembers`: the names connected, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMembers;

/// `whisper {to, text}`: a [`Whisper`] event to member `to` alone (from the caller's connection,
/// or from `"room"` for a plain call). Answers whether `to` was connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendWhisper {
    pub to: String,
    pub text: String,
}

/// `kick {name}`: disconnects member `name`; answers whether it was connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kick {
    pub name: String,
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
    /// Who sends it: required in a plain call; over a connection the member's name (a sender
    /// given must match it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
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
    type Actions = (SendMessage, GetHistory, GetMembers, SendWhisper, Kick);
    type Events = (NewMessage, MemberJoined, MemberLeft, Whisper);
    type Vars = ();
    type ConnParams = ChatJoin;
    type ConnState = ChatMember;

    async fn on_before_connect(&self, ctx: &Context<Self>, join: &ChatJoin) -> Result<(), ActorError> {
        check_sender(&join.name)?;
        if ctx.conns().any(|c| c.state().name == join.name) {
            return Err(ActorError::rejected(format!("{} is already in room {}", join.name, ctx.key())));
        }
        Ok(())
    }

    async fn create_conn_state(&self, _: &Context<Self>, join: &ChatJoin) -> Result<ChatMember, ActorError> {
        Ok(ChatMember { name: join.name.clone(), joined_ms: super::context::unix_ms() })
    }

    async fn on_connect(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let name = ctx.conn().map(|c| c.state().name.clone()).unwrap_or_default();
        ctx.emit(MemberJoined { name })?;
        Ok(())
    }

    async fn on_disconnect(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let name = ctx.conn().map(|c| c.state().name.clone()).unwrap_or_default();
        ctx.emit(MemberLeft { name })?;
        Ok(())
    }
}

fn check_sender(name: &str) -> Result<(), ActorError> {
    if name.is_empty() || name.len() > CHAT_SENDER_BYTES_MAX {
        return Err(ActorError::invalid_argument(format!(
            "a name must be 1 to {CHAT_SENDER_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

impl Action for GetMembers {
    const NAME: &'static str = "getMembers";
    type Output = Vec<String>;
}

impl Action for SendWhisper {
    const NAME: &'static str = "whisper";
    type Output = bool;
}

impl Action for Kick {
    const NAME: &'static str = "kick";
    type Output = bool;
}

impl Event for MemberJoined {
    const NAME: &'static str = "memberJoined";
}

impl Event for MemberLeft {
    const NAME: &'static str = "memberLeft";
}

impl Event for Whisper {
    const NAME: &'static str = "whisper";
}

/// The connection of member `name`, if connected.
fn member(ctx: &Context<ChatRoom>, name: &str) -> Option<super::context::ConnId> {
    ctx.conns().find(|c| c.state().name == name).map(|c| c.id())
}

impl Handles<GetMembers> for ChatRoom {
    async fn handle(&self, _: GetMembers, ctx: &mut Context<Self>) -> Result<Vec<String>, ActorError> {
        let mut names: Vec<String> = ctx.conns().map(|c| c.state().name.clone()).collect();
        names.sort();
        Ok(names)
    }
}

impl Handles<SendWhisper> for ChatRoom {
    async fn handle(&self, action: SendWhisper, ctx: &mut Context<Self>) -> Result<bool, ActorError> {
        let Some(to) = member(ctx, &action.to) else { return Ok(false) };
        let from = ctx.conn().map_or_else(|| "room".to_string(), |c| c.state().name.clone());
        ctx.send_to(to, Whisper { from, text: action.text })?;
        Ok(true)
    }
}

impl Handles<Kick> for ChatRoom {
    async fn handle(&self, action: Kick, ctx: &mut Context<Self>) -> Result<bool, ActorError> {
        let Some(conn) = member(ctx, &action.name) else { return Ok(false) };
        ctx.disconnect(conn, format!("kicked from room {}", ctx.key()))?;
        Ok(true)
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
        let sender = match (ctx.conn(), action.sender) {
            (Some(conn), Some(sender)) if sender != conn.state().name => {
                return Err(ActorError::invalid_argument(format!(
                    "this connection sends as {}, not {sender}",
                    conn.state().name
                )));
            }
            (Some(conn), _) => conn.state().name.clone(),
            (None, Some(sender)) => sender,
            (None, None) => {
                return Err(ActorError::invalid_argument("a sender is needed (or send over a connection)"));
            }
        };
        check_sender(&sender)?;
        if action.text.len() > CHAT_TEXT_BYTES_MAX {
            return Err(ActorError::invalid_argument(format!(
                "text is {} bytes, at most {CHAT_TEXT_BYTES_MAX} allowed",
                action.text.len()
            )));
        }
        let seq = ctx.state().next_seq;
        let message = ChatMessage { seq, sender, text: action.text };
        ctx.kv().put(&message_key(seq), &message)?;
        ctx.state_mut().next_seq = seq + 1;
        ctx.emit(NewMessage { seq, sender: message.sender, text: message.text })?;
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
