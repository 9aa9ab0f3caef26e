//! `mortar connect`: a connection to one actor, driven from a terminal or a script.

use clap::Args;
use tokio::io::AsyncBufReadExt as _;

use super::{ConnectArgs, EXIT_OK, Failure, say};
use crate::actor::{CallError, Client, JsonConnEvent};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mortar connect chatRoom lobby --params '{\"name\": \"ann\"}'\n  \
    echo 'sendMessage {\"text\": \"hi\"}' | mortar connect chatRoom lobby --params '{\"name\": \"bob\"}'\n  \
    mortar connect chatRoom lobby --params '{\"name\": \"eve\"}' --listen --count 3\n\n\
    Connects (the actor's on_before_connect may refuse: exit as `mortar call` does), then prints \
    one JSON line per thing that happens: {\"connected\": {\"conn\", \"node\"}} (again after the \
    actor moved and the connection was made again), {\"event\", \"data\", \"node\"}, \
    {\"message\", \"data\"} (an event for this connection alone), {\"id\", \"call\", \"result\"} \
    or {\"id\", \"call\", \"error\": {\"status\", \"message\"}}, and {\"closed\": {\"reason\", \
    \"byActor\"}}. Each line of stdin is a call over the connection: `ACTION [JSON]` (the actor \
    sees the connection as the caller). At the end of stdin it waits for the answers and exits 0, \
    unless --listen. It exits 0 when the actor ends the connection, and as `mortar call` would \
    when it cannot be made again.")]
pub struct ConnectCmdArgs {
    /// Actor type, e.g. chatRoom.
    pub actor: String,
    /// Actor key, e.g. lobby.
    pub key: String,
    /// The connection's params as JSON (the actor's ConnParams) [default: null].
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// The actor's creation input as JSON, used only if connecting creates it.
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    /// Only these events (repeat the flag); events for this connection alone always come
    /// [default: every event].
    #[arg(long = "event", value_name = "NAME")]
    pub events: Vec<String>,
    /// Keep the connection after stdin ends (until --count, the actor ends it, or interrupted).
    #[arg(long)]
    pub listen: bool,
    /// Exit after this many events and messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs `mortar connect`.
pub async fn run(args: ConnectCmdArgs) -> Result<u8, Failure> {
    let token = args.connect.credentials.token().map_err(Failure::error)?;
    let channel = args.connect.connect_channel().await?;
    let client = Client::from_channel_with_token(channel, token).with_timeout(args.connect.timeout());
    let params = args.params.as_deref().unwrap_or("null");
    let mut conn = client
        .connect_json(&args.actor, &args.key, params, args.input.as_deref(), args.events.clone())
        .await
        .map_err(|e| {
            let failure = Failure::status(&tonic::Status::from(e));
            Failure::new(
                failure.code,
                format!("cannot connect to {}/{}: {}", args.actor, args.key, failure.message),
            )
        })?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut answers = futures::stream::FuturesUnordered::new();
    let mut received = 0u64;
    let mut next_id = 0u64;
    loop {
        if args.count.is_some_and(|count| received >= count) {
            return Ok(EXIT_OK);
        }
        if !stdin_open && !args.listen && answers.is_empty() {
            return Ok(EXIT_OK);
        }
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    let (action, call_args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                    next_id += 1;
                    let id = next_id;
                    let action = action.to_string();
                    match conn.queue(&action, call_args.trim()) {
                        Ok(answer) => answers.push(async move {
                            let result = answer.await.unwrap_or_else(|_| {
                                Err(CallError::Unavailable("the connection ended before the answer".into()))
                            });
                            (id, action, result)
                        }),
                        Err(e) => say(&answer_line(id, &action, Err(e)))?,
                    }
                }
                Ok(None) => stdin_open = false,
                Err(e) => return Err(Failure::error(format!("cannot read stdin: {e}"))),
            },
            Some((id, action, result)) = futures::StreamExt::next(&mut answers) => {
                say(&answer_line(id, &action, result))?;
            }
            event = conn.next() => match event {
                Some(JsonConnEvent::Connected { conn_id, served_by }) => {
                    say(&serde_json::json!({ "connected": { "conn": conn_id, "node": served_by } }).to_string())?;
                }
                Some(JsonConnEvent::Event { name, data_json }) => {
                    say(&serde_json::json!({ "event": name, "data": json_of(&data_json) }).to_string())?;
                    received += 1;
                }
                Some(JsonConnEvent::Message { name, data_json }) => {
                    say(&serde_json::json!({ "message": name, "data": json_of(&data_json) }).to_string())?;
                    received += 1;
                }
                Some(JsonConnEvent::Closed { reason, by_actor }) => {
                    say(&serde_json::json!({ "closed": { "reason": reason, "byActor": by_actor } }).to_string())?;
                    if by_actor {
                        return Ok(EXIT_OK);
                    }
                    let failure = Failure::status(&tonic::Status::unavailable(reason.clone()));
                    return Err(Failure::new(failure.code, format!("the connection ended: {reason}")));
                }
                None => return Ok(EXIT_OK),
            },
        }
    }
}

fn answer_line(id: u64, action: &str, result: Result<String, CallError>) -> String {
    match result {
        Ok(json) => serde_json::json!({ "id": id, "call": action, "result": json_of(&json) }).to_string(),
        Err(e) => {
            let status = tonic::Status::from(e);
            serde_json::json!({
                "id": id,
                "call": action,
                "error": { "status": format!("{:?}", status.code()), "message": status.message() },
            })
            .to_string()
        }
    }
}

/// JSON text as a value (a string if it is not JSON).
fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}
