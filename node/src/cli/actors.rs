//! `mortar call`, `mortar subscribe`, `mortar queue send`, `mortar admin locate`, `mortar admin
//! actors` and `mortar admin destroy`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt as _;
use mortar_proto::v1::actor_admin_client::ActorAdminClient;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::admin_client::AdminClient;
use mortar_proto::v1::{
    ActorCallRequest, ActorSendRequest, ActorSubscribeRequest, DestroyActorRequest, InspectRequest,
    ListActiveRequest, ListActiveResponse, LocateRequest, PatchStateRequest, StatusRequest,
};

use super::{ConnectArgs, EXIT_OK, Failure, note, say};
use crate::actor::CallError;
use crate::actor::service::ARGS_BYTES_MAX;

/// Pause between two subscription attempts.
pub const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(200);
/// Default of `mortar subscribe --retry-for-ms`.
pub const RESUBSCRIBE_FOR_MS_DEFAULT: u64 = 30_000;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mortar call counter user-42 increment '{\"amount\": 5}'\n  \
    mortar call counter user-42 getCount\n  \
    mortar call chatRoom lobby sendMessage '{\"sender\": \"ann\", \"text\": \"hi\"}'\n  \
    mortar call chatRoom lobby getHistory '{\"limit\": 10}'\n  \
    mortar call counter user-7 getCount --input '{\"start\": 100}'\n  \
    mortar call chatRoom lobby sendMessage - < message.json\n\n\
    Exit 0 with the JSON result on stdout. Otherwise the reason is on stderr, and the exit status \
    says what kind it is: 2 the arguments do not fit the action (InvalidArgument); 3 the actor \
    type or action does not exist (NotFound); 4 the action refused (a user error prints \
    `error: <code>: <message>` and its metadata as JSON on the next line; FailedPrecondition: \
    nothing changed); 5 not applied, retry; 6 no answer in time (a write may or may not have \
    happened); 7 an internal error (see the log of the node it names). See `mortar --help`.")]
pub struct CallArgs {
    /// Actor type, e.g. counter.
    pub actor: String,
    /// Actor key, e.g. user-42.
    pub key: String,
    /// Action, e.g. increment.
    pub action: String,
    /// The action's arguments as JSON [default: none]; `-` reads them from stdin.
    #[arg(conflicts_with = "args_file")]
    pub args: Option<String>,
    /// Read the action's arguments (JSON) from this file.
    #[arg(long, value_name = "PATH")]
    pub args_file: Option<PathBuf>,
    /// The actor's creation input as JSON, used only if this call creates the actor (its first
    /// call ever) [default: null].
    #[arg(long, value_name = "JSON", conflicts_with = "get")]
    pub input: Option<String>,
    /// Only if the actor exists: exit 3 with "not found" instead of creating it.
    #[arg(long)]
    pub get: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mortar create counter user-7 --input '{\"start\": 100}'\n  \
    mortar create chatRoom 'org-acme/general'\n\n\
    Exit 0 once the actor is created and stored. Exit 4 when it exists already \
    (FailedPrecondition), 2 when the input does not fit (InvalidArgument), 3 when the type does \
    not exist (NotFound); others as `mortar --help` lists. A destroyed actor is created again.")]
pub struct CreateArgs {
    /// Actor type, e.g. counter.
    pub actor: String,
    /// Actor key, e.g. user-7 (a compound key's parts joined by `/`, with `/` and `\\` inside a
    /// part written `\\/` and `\\\\`).
    pub key: String,
    /// The creation input as JSON [default: null].
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `mortar create`.
pub async fn create(args: CreateArgs) -> Result<u8, Failure> {
    let input_json = args.input.unwrap_or_else(|| "null".into());
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&input_json) {
        return Err(Failure::error(format!("the --input is not valid JSON ({e})")));
    }
    let mut client = ActorsClient::new(args.connect.connect().await?);
    let request = args.connect.request(ActorCallRequest {
        actor: args.actor,
        key: args.key,
        action: crate::actor::runtime::CREATE.into(),
        args_json: String::new(),
        forwarded: false,
        input_json,
    });
    let response = args.connect.call("the actor may or may not be created", client.call(request)).await?;
    note(&format!("created on node {}", response.served_by));
    Ok(EXIT_OK)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Prints one JSON object per event: {\"event\": NAME, \"data\": EVENT, \"node\": ID}.\n\n\
    Events are delivered at most once, from the moment the subscription is made. When the actor \
    moves to another node the node ends the stream, and this command subscribes again by itself \
    (saying so on stderr); events emitted in between are missed.\n\n\
    When the first subscription cannot be made, exit as a call would (`mortar --help`); exit 5 \
    when subscribing again has failed for --retry-for-ms.\n\n\
    Example:\n  mortar subscribe counter user-42 --event newCount"
)]
pub struct SubscribeArgs {
    /// Actor type, e.g. counter.
    pub actor: String,
    /// Actor key, e.g. user-42.
    pub key: String,
    /// Only these events (repeat the flag) [default: every event].
    #[arg(long = "event", value_name = "NAME")]
    pub events: Vec<String>,
    /// Exit after this many events [default: run until interrupted].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// After a subscription ends, keep subscribing again for this long before giving up.
    #[arg(long, default_value_t = RESUBSCRIBE_FOR_MS_DEFAULT, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub retry_for_ms: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `mortar queue ...`.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Append a message to a durable queue of an actor.
    #[command(after_help = "Examples:\n  \
        mortar queue send worker w1 jobs '{\"id\": \"job-1\"}'\n  \
        mortar queue send worker w1 jobs '{\"id\": \"job-2\"}' --wait\n\n\
        Prints the message's sequence number in its queue once the message is stored on a quorum \
        and durable (with --wait: once the actor's run loop has handled it, which it does exactly \
        once). Exit 3 with the reason when the actor declares no such queue or was destroyed \
        (NotFound), 5 when the queue is full (ResourceExhausted: not queued, retry later), 6 when \
        no answer came in time (the message may or may not be queued); others as `mortar --help` \
        lists.")]
    Send(QueueSendArgs),
}

#[derive(Debug, Args)]
pub struct QueueSendArgs {
    /// Actor type, e.g. worker.
    pub actor: String,
    /// Actor key, e.g. w1.
    pub key: String,
    /// Queue, e.g. jobs.
    pub queue: String,
    /// The message as JSON; `-` reads it from stdin.
    pub message: String,
    /// Answer only once the message has been handled.
    #[arg(long)]
    pub wait: bool,
    /// The actor's creation input as JSON, used only if this send creates the actor.
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `mortar queue send`.
pub async fn queue(command: QueueCommand) -> Result<u8, Failure> {
    let QueueCommand::Send(args) = command;
    let body_json = args_of(Some(args.message), None)?;
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&body_json) {
        return Err(Failure::error(format!(
            "the message is not valid JSON ({e}); give e.g. '{{\"id\": \"job-1\"}}', quoted for the shell"
        )));
    }
    let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
    let mut client = ActorsClient::new(args.connect.connect().await?)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let request = args.connect.request(ActorSendRequest {
        actor: args.actor,
        key: args.key,
        queue: args.queue,
        body_json,
        wait: args.wait,
        input_json: args.input.unwrap_or_default(),
    });
    let response = args.connect.call("the message may or may not be queued", client.send(request)).await?;
    say(&response.id.to_string())?;
    Ok(EXIT_OK)
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mortar inspect counter user-42                    # summary\n  \
    mortar inspect chatRoom lobby kv --prefix msg/ --limit 10\n  \
    mortar inspect worker w1 queue\n  \
    mortar inspect reminder ann alarms\n  \
    mortar inspect counter user-42 state --patch '{\"count\": 0}'\n\n\
    Prints the part as JSON. The look runs on the actor's owner like a read-only action (it wakes \
    a sleeping actor; the summary's `awake` says whether it was awake); --patch replaces the state \
    in one write between two of the actor's actions. Needs the admin token when the cluster has \
    one.")]
pub struct InspectArgs {
    /// Actor type, e.g. counter.
    pub actor: String,
    /// Actor key, e.g. user-42.
    pub key: String,
    /// What to show.
    #[arg(default_value = "summary",
          value_parser = clap::builder::PossibleValuesParser::new(crate::actor::inspect::PARTS))]
    pub part: String,
    /// kv: only keys that start with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// kv: only keys after this one (the `next` of the previous page).
    #[arg(long, default_value = "")]
    pub after: String,
    /// kv and queue: at most this many entries or messages (default 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// state: replace the state with this JSON instead of showing it.
    #[arg(long, value_name = "JSON")]
    pub patch: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `mortar inspect`.
pub async fn inspect(args: InspectArgs) -> Result<u8, Failure> {
    let mut client = ActorAdminClient::new(args.connect.connect().await?)
        .max_decoding_message_size(mortar_proto::GRPC_MESSAGE_BYTES_MAX);
    if let Some(patch) = args.patch {
        if args.part != "state" {
            return Err(Failure::error(
                "--patch goes with the state part: mortar inspect ACTOR KEY state --patch JSON",
            ));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&patch) {
            return Err(Failure::error(format!("the --patch is not valid JSON ({e})")));
        }
        let request =
            args.connect.request(PatchStateRequest { actor: args.actor, key: args.key, state_json: patch });
        let response =
            args.connect.call("the patch may or may not be applied", client.patch_state(request)).await?;
        note(&format!("state replaced on node {} (generation {})", response.served_by, response.generation));
        return Ok(EXIT_OK);
    }
    let request = args.connect.request(InspectRequest {
        actor: args.actor,
        key: args.key,
        part: args.part,
        prefix: args.prefix,
        after: args.after,
        limit: args.limit.unwrap_or(0),
    });
    let response = args.connect.call("nothing was changed", client.inspect(request)).await?;
    let pretty = serde_json::from_str::<serde_json::Value>(&response.json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(response.json);
    say(&pretty)?;
    Ok(EXIT_OK)
}

/// `mortar admin destroy`.
pub async fn destroy(args: LocateArgs) -> Result<u8, Failure> {
    let mut client = ActorAdminClient::new(args.connect.connect().await?);
    let request = args.connect.request(DestroyActorRequest { actor: args.actor, key: args.key });
    let response =
        args.connect.call("the actor may or may not be destroyed", client.destroy(request)).await?;
    note(&format!("destroyed on node {}", response.served_by));
    Ok(EXIT_OK)
}

#[derive(Debug, Args)]
pub struct LocateArgs {
    /// Actor type, e.g. counter.
    pub actor: String,
    /// Actor key, e.g. user-42.
    pub key: String,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ActorsArgs {
    /// Most actors listed per node.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `mortar call`.
pub async fn call(args: CallArgs) -> Result<u8, Failure> {
    let args_json = args_of(args.args, args.args_file)?;
    if !args_json.trim().is_empty()
        && let Err(e) = serde_json::from_str::<serde_json::Value>(&args_json)
    {
        return Err(Failure::error(format!(
            "the arguments are not valid JSON ({e}); give e.g. '{{\"amount\": 1}}', quoted for the shell"
        )));
    }
    let input_json = args.input.unwrap_or_default();
    if !input_json.trim().is_empty()
        && let Err(e) = serde_json::from_str::<serde_json::Value>(&input_json)
    {
        return Err(Failure::error(format!(
            "the --input is not valid JSON ({e}); give e.g. '{{\"start\": 10}}', quoted for the shell"
        )));
    }
    let max = mortar_proto::GRPC_MESSAGE_BYTES_MAX;
    let mut client = ActorsClient::new(args.connect.connect().await?)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    if args.get {
        let request = args.connect.request(ActorCallRequest {
            actor: args.actor.clone(),
            key: args.key.clone(),
            action: crate::actor::runtime::EXISTS.into(),
            args_json: String::new(),
            forwarded: false,
            input_json: String::new(),
        });
        let exists = args.connect.call("nothing was changed", client.call(request)).await?;
        if !exists.result_json.contains("\"exists\":true") {
            return Err(Failure::new(
                super::EXIT_NOT_FOUND,
                format!("NotFound: actor {}/{} does not exist", args.actor, args.key),
            ));
        }
    }
    let request = args.connect.request(ActorCallRequest {
        actor: args.actor,
        key: args.key,
        action: args.action,
        args_json,
        forwarded: false,
        input_json,
    });
    let response = args.connect.call("the call's outcome is unknown", client.call(request)).await?;
    say(&response.result_json)?;
    Ok(EXIT_OK)
}

/// The arguments of `mortar call`: the argument itself, stdin (`-`) or `--args-file`, as UTF-8.
fn args_of(args: Option<String>, file: Option<PathBuf>) -> Result<String, Failure> {
    const LIMIT: &str = "more than a node accepts as an action's arguments";
    let (data, what) = match (args, file) {
        (Some(args), None) if args == "-" => super::kv::read_source(None, "", ARGS_BYTES_MAX, LIMIT)?,
        (Some(args), None) => return Ok(args),
        (None, Some(path)) => super::kv::read_source(Some(&path), "--args-file", ARGS_BYTES_MAX, LIMIT)?,
        (None, None) => return Ok(String::new()),
        // clap refuses both at once.
        (Some(_), Some(_)) => return Err(Failure::error("give the arguments or --args-file, not both")),
    };
    String::from_utf8(data)
        .map_err(|e| Failure::error(format!("the arguments in {what} are not UTF-8 JSON ({e})")))
}

/// `mortar subscribe`: fails when the first subscription cannot be made; after a subscription
/// ends, subscribes again until one is made or `--retry-for-ms` has passed.
pub async fn subscribe(args: SubscribeArgs) -> Result<u8, Failure> {
    let mut client = ActorsClient::new(args.connect.connect().await?);
    let retry_for = Duration::from_millis(args.retry_for_ms);
    let mut received = 0u64;
    // Set once a subscription has been made: since when subscribing again has failed.
    let mut ended_at: Option<Instant> = None;
    loop {
        if args.count.is_some_and(|count| received >= count) {
            return Ok(EXIT_OK);
        }
        let request = ActorSubscribeRequest {
            actor: args.actor.clone(),
            key: args.key.clone(),
            events: args.events.clone(),
            forwarded: false,
        };
        let (ended, status) = match tokio::time::timeout(args.connect.timeout(), client.subscribe(request))
            .await
        {
            Err(_) => (CallError::Retry(format!("no answer within {} ms", args.connect.timeout_ms)), None),
            Ok(Err(status)) => (CallError::from_status(&status), Some(status)),
            Ok(Ok(response)) => {
                let mut stream = response.into_inner();
                let ended = loop {
                    match stream.next().await {
                        Some(Ok(event)) => {
                            let data: serde_json::Value = serde_json::from_str(&event.data_json)
                                .unwrap_or(serde_json::Value::String(event.data_json));
                            let line = serde_json::json!({
                                "event": event.event,
                                "data": data,
                                "node": event.served_by,
                            });
                            say(&line.to_string())?;
                            received += 1;
                            if args.count.is_some_and(|count| received >= count) {
                                return Ok(EXIT_OK);
                            }
                        }
                        Some(Err(status)) => break CallError::from_status(&status),
                        None => break CallError::Retry("the node ended the stream".into()),
                    }
                };
                ended_at = Some(Instant::now());
                (ended, None)
            }
        };
        let Some(since) = ended_at else {
            // Never subscribed: retrying what never worked would only hide the reason.
            let what = "no subscription was made";
            let failure = match &status {
                Some(status) => args.connect.failure(status, what),
                None => args.connect.no_answer(what),
            };
            let message = format!("cannot subscribe to {}/{}: {}", args.actor, args.key, failure.message);
            return Err(Failure::new(failure.code, message));
        };
        match ended {
            CallError::Retry(_) | CallError::Unavailable(_) | CallError::Overloaded(_) => {
                if since.elapsed() >= retry_for {
                    return Err(Failure::new(
                        super::EXIT_NOT_APPLIED,
                        format!(
                            "the subscription to {}/{} ended and subscribing again failed for {} ms \
                         (--retry-for-ms); last: {ended}",
                            args.actor, args.key, args.retry_for_ms
                        ),
                    ));
                }
                note(&format!("subscription ended ({ended}); subscribing again"));
                tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
            }
            other => return Err(Failure::status(&tonic::Status::from(other))),
        }
    }
}

/// `mortar admin locate`: the owner's id on the first line.
pub async fn locate(args: LocateArgs) -> Result<u8, Failure> {
    let mut client = ActorAdminClient::new(args.connect.connect().await?);
    let request = args.connect.request(LocateRequest { actor: args.actor, key: args.key });
    let located = args.connect.call("the node did not answer", client.locate(request)).await?;
    say(&located.node_id.to_string())?;
    say(&format!("address {}", located.address))?;
    let live: Vec<String> = located.live_members.iter().map(u32::to_string).collect();
    say(&format!("answered by node {} (live members: {})", located.answered_by, live.join(", ")))?;
    if located.active_here {
        say(&format!("active on node {} with generation {}", located.answered_by, located.generation))?;
    }
    Ok(EXIT_OK)
}

/// `mortar admin actors`: asks every member for its active actors.
pub async fn actors(args: ActorsArgs) -> Result<u8, Failure> {
    let channel = args.connect.connect().await?;
    let mut admin = AdminClient::new(channel);
    let status = args
        .connect
        .call("the node did not report its members", admin.status(args.connect.request(StatusRequest {})))
        .await?;
    let mut nodes = Vec::new();
    for member in &status.members {
        let answer = if !member.reachable {
            Err(format!("unreachable: {}", member.error))
        } else {
            let connect = ConnectArgs { endpoint: member.address.clone(), ..args.connect.clone() };
            match connect.connect().await {
                Err(failure) => Err(failure.message),
                Ok(channel) => {
                    let mut client = ActorAdminClient::new(channel);
                    let request = connect.request(ListActiveRequest { limit: args.limit });
                    connect
                        .call("the node did not list its actors", client.list_active(request))
                        .await
                        .map_err(|f| f.message)
                }
            }
        };
        nodes.push((member.id, member.address.clone(), answer));
    }
    if args.json {
        say(&actors_json(&nodes).to_string())?;
    } else {
        super::write_stdout(actors_table(&nodes).as_bytes(), false)?;
    }
    Ok(EXIT_OK)
}

type NodeActors = (u32, String, Result<ListActiveResponse, String>);

fn actors_json(nodes: &[NodeActors]) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(id, address, answer)| match answer {
            Ok(list) => serde_json::json!({
                "id": id,
                "address": address,
                "active": list.total,
                "actors": list.actors.iter().map(|a| serde_json::json!({
                    "actor": a.actor,
                    "key": a.key,
                    "generation": a.generation,
                    "calls": a.calls,
                    "idle_ms": a.idle_ms,
                })).collect::<Vec<_>>(),
            }),
            Err(error) => serde_json::json!({ "id": id, "address": address, "error": error }),
        })
        .collect();
    serde_json::json!({ "nodes": nodes })
}

/// One block per node: `node <id> (<address>): <n> active`, then a row per listed actor.
pub fn actors_table(nodes: &[NodeActors]) -> String {
    let mut out = String::new();
    for (id, address, answer) in nodes {
        match answer {
            Err(error) => out.push_str(&format!("node {id} ({address}): {}\n", error.replace('\n', " "))),
            Ok(list) => {
                out.push_str(&format!("node {id} ({address}): {} active\n", list.total));
                for a in &list.actors {
                    out.push_str(&format!(
                        "  {}/{}  generation {}  calls {}  idle {} ms\n",
                        a.actor, a.key, a.generation, a.calls, a.idle_ms
                    ));
                }
                if (list.actors.len() as u64) < list.total {
                    out.push_str(&format!(
                        "  … {} more (raise --limit)\n",
                        list.total - list.actors.len() as u64
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortar_proto::v1::ActiveActor;

    #[test]
    fn the_table_has_a_block_per_node() {
        let nodes = vec![
            (
                1,
                "127.0.0.1:7100".to_string(),
                Ok(ListActiveResponse {
                    node_id: 1,
                    total: 2,
                    actors: vec![ActiveActor {
                        actor: "counter".into(),
                        key: "a".into(),
                        generation: 3,
                        calls: 7,
                        idle_ms: 12,
                    }],
                }),
            ),
            (2, "127.0.0.1:7101".to_string(), Err("unreachable: connection refused".to_string())),
        ];
        let table = actors_table(&nodes);
        assert_eq!(
            table,
            "node 1 (127.0.0.1:7100): 2 active\n  counter/a  generation 3  calls 7  idle 12 ms\n  … 1 more \
             (raise --limit)\nnode 2 (127.0.0.1:7101): unreachable: connection refused\n"
        );
        let json = actors_json(&nodes);
        assert_eq!(json["nodes"][0]["actors"][0]["generation"], 3);
        assert_eq!(json["nodes"][1]["error"], "unreachable: connection refused");
    }
}
