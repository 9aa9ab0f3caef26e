//! The client worker (`mortar-chaos client-worker`), run inside the client namespace, and its
//! `register` workload; the `counter`, `set`, `queue` and `alarms` workloads are in
//! [`crate::workload_actors`].
//!
//! `concurrency` tasks each run a closed loop, bounded by `--ops-max` operations in all and by
//! the worker's own time bound. In the `register` workload they pick from a handful of keys: read (40%), write (30%) a
//! fresh unique integer, or compare-and-set (30%) from the value last seen on that key to a fresh
//! integer, each through a node picked at random. Every invoke and completion goes to standard
//! output as a [`WorkerMessage`], stamped on the run's shared clock ([`crate::clock`]) under one
//! lock, so the events come out in time order; the runner writes them to the history.
//!
//! Outcomes:
//!
//! * `ok`: the node answered. A CAS that did not swap is a `fail`: it certainly did not write.
//! * `fail`: a definite refusal (`InvalidArgument`, `Aborted` — recovery replaced the command with
//!   a no-op — `FailedPrecondition`, ...).
//! * `info`: anything that leaves the outcome unknown: the client timeout, `Unavailable` (no
//!   quorum in time: the command may still commit), `DeadlineExceeded`, `Internal`, a broken
//!   connection. The task's process id then retires and a fresh one takes over.
//!
//! An operation is only invoked over an established connection: when a node cannot be reached
//! (it was killed) the task tries another node without recording anything, since nothing was
//! sent. Partitions never cut clients off; they cut nodes off from each other.
//!
//! When told to stop, the actor workloads read every key once more
//! ([`workload_actors::final_keys`]), each through a random node and again through others until
//! one answers `ok` (at most [`FINAL_READ_ATTEMPTS_MAX`] attempts, all within
//! [`FINAL_READS_TIME_MAX`]): the final reads the checkers hold the acknowledged writes against.
//! The `alarms` workload first waits until every acknowledged alarm is
//! [`workload_actors::LATENESS_MAX`] past due. The `queue` workload reads each worker's
//! `processed` every [`QUEUE_POLL_INTERVAL`] until it has not grown for [`QUEUE_SETTLE`] (the
//! queue drained), all within [`QUEUE_DRAIN_TIME_MAX`]; its last `ok` read is the final one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{CasRequest, GetRequest, PutRequest, cas_request};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::sync::{mpsc, watch};
// Every client's channel carries the run's client token (`MORTAR_TOKEN`), when there is one.
use mortar_node::auth::AuthChannel as Channel;

use crate::clock;
use crate::history::{Event, EventType, Function, Value};
use crate::rng::Rng;
use crate::run::Workload;
use crate::schedule::RNG_STREAM_CLIENT_BASE;
use crate::topology::NodeId;
use crate::workload_actors::{self, Rotation};

/// Client tasks, at most.
pub const CONCURRENCY_MAX: u32 = 256;
/// Keys, at most.
pub const KEYS_MAX: u32 = 1_000;
/// Messages queued for standard output; a full queue slows the clients down.
const MESSAGES_QUEUED_MAX: usize = 8_192;
/// How long connecting to a node may take; an unreachable node is skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after failing to connect, before trying another node.
const CONNECT_BACKOFF: Duration = Duration::from_millis(20);
/// Pause between warm-up probes of a node.
const WARMUP_RETRY: Duration = Duration::from_millis(250);
/// The key warm-up reads (a KV key, or a counter for the actor workloads); not part of the
/// history.
pub const WARMUP_KEY: &str = "mch-warmup";
/// How long the final reads of the `counter` and `set` workloads may take in all.
pub const FINAL_READS_TIME_MAX: Duration = Duration::from_secs(30);
/// Attempts at the final read of one key.
pub const FINAL_READ_ATTEMPTS_MAX: u32 = 20;
/// Pause after a final read that did not succeed, before the next attempt.
const FINAL_READ_BACKOFF: Duration = Duration::from_millis(100);
/// How long the `queue` workload's final phase may take in all: every worker drained and read.
pub const QUEUE_DRAIN_TIME_MAX: Duration = Duration::from_secs(60);
/// A worker whose `processed` did not grow for this long has drained its queue (its run loop
/// restarts within a second after a failure).
pub const QUEUE_SETTLE: Duration = Duration::from_secs(3);
/// Pause between two reads of a worker's `processed` while its queue drains.
pub const QUEUE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Reads of one worker's `processed` at the end, at most.
const QUEUE_POLLS_MAX: u32 = 300;
const _: () = assert!(
    QUEUE_SETTLE.as_millis() < QUEUE_DRAIN_TIME_MAX.as_millis()
        && QUEUE_POLLS_MAX as u128 * QUEUE_POLL_INTERVAL.as_millis() >= QUEUE_DRAIN_TIME_MAX.as_millis()
);
/// Extra wait of the `alarms` workload, past [`workload_actors::LATENESS_MAX`] after the last
/// acknowledged alarm was due, before its final reads.
const ALARM_READ_MARGIN: Duration = Duration::from_secs(1);
/// How long the final phase of the `alarms` workload may take in all: the wait, then the reads.
pub const ALARMS_FINAL_TIME_MAX: Duration = Duration::from_millis(
    workload_actors::ALARM_MS_MAX
        + workload_actors::LATENESS_MAX.as_millis() as u64
        + ALARM_READ_MARGIN.as_millis() as u64
        + FINAL_READS_TIME_MAX.as_millis() as u64,
);
/// Final-read task `t` draws from stream `RNG_STREAM_CLIENT_BASE + CONCURRENCY_MAX + t`.
const RNG_STREAM_FINAL_BASE: u64 = RNG_STREAM_CLIENT_BASE + CONCURRENCY_MAX as u64;
/// Prefix of the error of an `info` read whose value is not an integer this workload wrote.
pub const GARBAGE_ERROR_PREFIX: &str = "read a value that is not an integer";
/// Operation mix, in percent: reads, writes, and the rest CAS.
const READ_PERCENT: u64 = 40;
const WRITE_PERCENT: u64 = 30;
const _: () = assert!(READ_PERCENT + WRITE_PERCENT <= 100);

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub workload: Workload,
    pub seed: u64,
    pub nodes: Vec<(NodeId, SocketAddr)>,
    pub concurrency: u32,
    pub keys: u32,
    /// [`clock::monotonic_ns`] at the start of the run: event times count from it.
    pub origin_ns: u64,
    /// The worker stops by itself this long after it starts, whatever the runner says.
    pub duration_max: Duration,
    pub op_timeout: Duration,
    /// Pause between two operations of one task.
    pub think: Duration,
    /// Operations in all, at most.
    pub ops_max: u64,
    /// How long every node may take to answer a first read.
    pub warmup_timeout: Duration,
}

/// One line of the worker's standard output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Every node answered a read: the workload starts.
    Ready { time: u64 },
    /// Some node did not answer in time; the worker stops.
    NotReady { time: u64, reason: String },
    /// A history event. `node` served it; completions that are not `ok` carry the error.
    Op {
        node: NodeId,
        event: Event,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The workload ended; nothing follows.
    Done { time: u64, reason: String },
}

/// What a gRPC status says about whether the operation happened.
pub fn outcome_of(code: tonic::Code) -> EventType {
    use tonic::Code;
    match code {
        Code::InvalidArgument
        | Code::Aborted
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented => EventType::Fail,
        Code::Ok
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal
        | Code::ResourceExhausted
        | Code::DataLoss => EventType::Info,
    }
}

/// Decodes a value this workload wrote: the decimal digits of an integer.
pub fn decode_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub fn encode_value(value: i64) -> Bytes {
    Bytes::from(value.to_string())
}

pub fn key_name(index: u32) -> String {
    format!("r{index}")
}

/// State shared by the tasks.
struct Shared {
    config: WorkerConfig,
    recorder: Recorder,
    next_value: AtomicI64,
    next_process: AtomicI64,
    ops_started: AtomicU64,
    /// The value last seen on each key (`None`: absent), for CAS expectations.
    known: Mutex<HashMap<String, Option<i64>>>,
    /// The rooms, workers or reminders of the `set`, `queue` and `alarms` workloads.
    rotation: Mutex<Rotation>,
    /// The `alarms` workload: the latest time (ns since the origin) an acknowledged alarm can be
    /// due at.
    due_last_ns: AtomicU64,
    stop: watch::Receiver<bool>,
}

struct Recorder {
    tx: tokio::sync::Mutex<mpsc::Sender<WorkerMessage>>,
    origin_ns: u64,
}

impl Recorder {
    /// Stamps the message with the current time and queues it; time order is queue order.
    async fn send(&self, make: impl FnOnce(u64) -> WorkerMessage) {
        let tx = self.tx.lock().await;
        let message = make(clock::since(self.origin_ns));
        // A closed queue means standard output is gone: the runner stopped listening.
        let _ = tx.send(message).await;
    }

    async fn op(&self, node: NodeId, mut event: Event, error: Option<String>) {
        self.send(|time| {
            event.time = time;
            WorkerMessage::Op { node, event, error }
        })
        .await;
    }
}

/// The `mortar-chaos client-worker` command.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=CONCURRENCY_MAX).contains(&config.concurrency),
        "--concurrency must be 1..={CONCURRENCY_MAX}"
    );
    anyhow::ensure!((1..=KEYS_MAX).contains(&config.keys), "--keys must be 1..={KEYS_MAX}");
    anyhow::ensure!(!config.nodes.is_empty(), "--nodes lists no node");
    let (tx, rx) = mpsc::channel(MESSAGES_QUEUED_MAX);
    let writer = tokio::spawn(write_messages(rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    // Stop when the runner says so or goes away (standard input closes), or at the time bound.
    let stdin_stop = stop_tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "stop" {
                break;
            }
        }
        let _ = stdin_stop.send(true);
    });
    let deadline_stop = stop_tx.clone();
    let duration_max = config.duration_max;
    tokio::spawn(async move {
        tokio::time::sleep(duration_max).await;
        tracing::warn!(seconds = duration_max.as_secs(), "time bound reached, stopping");
        let _ = deadline_stop.send(true);
    });

    let recorder = Recorder { tx: tokio::sync::Mutex::new(tx), origin_ns: config.origin_ns };
    let shared = Arc::new(Shared {
        recorder,
        next_value: AtomicI64::new(1),
        next_process: AtomicI64::new(i64::from(config.concurrency)),
        ops_started: AtomicU64::new(0),
        known: Mutex::new(HashMap::new()),
        rotation: Mutex::new(Rotation::of(config.workload, config.keys)),
        due_last_ns: AtomicU64::new(0),
        stop: stop_rx,
        config,
    });

    let reason = match warmup(&shared).await {
        Err(reason) => {
            shared.recorder.send(|time| WorkerMessage::NotReady { time, reason: reason.clone() }).await;
            reason
        }
        Ok(()) => {
            shared.recorder.send(|time| WorkerMessage::Ready { time }).await;
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..shared.config.concurrency {
                tasks.spawn(client_loop(shared.clone(), task));
            }
            while let Some(result) = tasks.join_next().await {
                result.context("client task")?;
            }
            final_reads(&shared).await.context("final reads")?;
            if shared.ops_started.load(Ordering::Relaxed) >= shared.config.ops_max {
                "operation bound reached".to_string()
            } else {
                "stopped".to_string()
            }
        }
    };
    shared.recorder.send(|time| WorkerMessage::Done { time, reason }).await;
    drop(shared);
    writer.await.context("stdout writer task")?
}

async fn write_messages(mut rx: mpsc::Receiver<WorkerMessage>) -> anyhow::Result<()> {
    let mut out = BufWriter::new(tokio::io::stdout());
    while let Some(message) = rx.recv().await {
        let mut line = serde_json::to_vec(&message).expect("a worker message always serializes");
        line.push(b'\n');
        out.write_all(&line).await.context("write to standard output")?;
        if rx.is_empty() {
            out.flush().await.context("flush standard output")?;
        }
    }
    out.flush().await.context("flush standard output")?;
    Ok(())
}

/// What the worker presents and how it dials, from `MORTAR_TOKEN` and `MORTAR_CA` (the runner
/// sets them), resolved once for every connection by the client commands' own
/// [`Credentials`](mortar_node::cli::Credentials) (its errors name `--token` and `--ca`).
fn access() -> Result<&'static (Option<mortar_node::auth::Token>, mortar_node::tls::Dialer), String> {
    type Access = Result<(Option<mortar_node::auth::Token>, mortar_node::tls::Dialer), String>;
    static ACCESS: std::sync::OnceLock<Access> = std::sync::OnceLock::new();
    ACCESS
        .get_or_init(|| {
            let credentials = mortar_node::cli::Credentials {
                token: std::env::var("MORTAR_TOKEN").ok(),
                ca: std::env::var_os("MORTAR_CA").map(std::path::PathBuf::from),
                ..Default::default()
            };
            Ok((credentials.token()?, credentials.dialer()?))
        })
        .as_ref()
        .map_err(Clone::clone)
}

async fn connect(address: SocketAddr) -> Result<Channel, String> {
    let (token, dialer) = access()?;
    let endpoint = dialer
        .endpoint(&address.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(mortar_node::auth::with_token(channel, token.clone())),
        Ok(Err(e)) => Err(format!("connect to {address}: {e}")),
        Err(_) => Err(format!("connect to {address}: timed out")),
    }
}

/// Reads [`WARMUP_KEY`] once through `channel`: a KV read for the `register` workload, a counter
/// read for the actor workloads (which need the actor runtime and placement up, not just the KV
/// service).
async fn warmup_read(workload: Workload, channel: Channel, timeout: Duration) -> Result<(), String> {
    let result = match workload {
        Workload::Register => {
            let request = GetRequest { key: Bytes::from_static(WARMUP_KEY.as_bytes()) };
            tokio::time::timeout(timeout, KvClient::new(channel).get(request)).await.map(|r| r.map(drop))
        }
        Workload::Counter | Workload::Set | Workload::Queue | Workload::Alarms => {
            let request = mortar_proto::v1::ActorCallRequest {
                actor: workload_actors::COUNTER_ACTOR.into(),
                key: WARMUP_KEY.into(),
                action: "getCount".into(),
                args_json: "null".into(),
                ..Default::default()
            };
            tokio::time::timeout(timeout, ActorsClient::new(channel).call(request)).await.map(|r| r.map(drop))
        }
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
        Err(_) => Err("read timed out".into()),
    }
}

/// Waits until every node answers a read of [`WARMUP_KEY`].
async fn warmup(shared: &Arc<Shared>) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + shared.config.warmup_timeout;
    let mut probes = tokio::task::JoinSet::new();
    for &(node, address) in &shared.config.nodes {
        let op_timeout = shared.config.op_timeout;
        let workload = shared.config.workload;
        let stop = shared.stop.clone();
        probes.spawn(async move {
            let mut last_error = String::from("no answer yet");
            while tokio::time::Instant::now() < deadline && !*stop.borrow() {
                match connect(address).await {
                    Ok(channel) => match warmup_read(workload, channel, op_timeout).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last_error = e,
                    },
                    Err(e) => last_error = e,
                }
                tokio::time::sleep(WARMUP_RETRY).await;
            }
            Err(format!("node {node} ({address}): {last_error}"))
        });
    }
    let mut errors = Vec::new();
    while let Some(result) = probes.join_next().await {
        if let Err(e) = result.expect("warm-up probe task") {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort();
        Err(format!(
            "not every node answered a read within {:?}: {}",
            shared.config.warmup_timeout,
            errors.join("; ")
        ))
    }
}

/// What a task is about to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub f: Function,
    pub key: String,
    /// The invoke value.
    pub value: Value,
}

fn plan(rng: &mut Rng, shared: &Shared) -> Planned {
    let key = key_name(rng.below(u64::from(shared.config.keys)) as u32);
    let roll = rng.below(100);
    if roll < READ_PERCENT {
        Planned { f: Function::Read, key, value: Value::Null }
    } else if roll < READ_PERCENT + WRITE_PERCENT {
        Planned {
            f: Function::Write,
            key,
            value: Value::Int(shared.next_value.fetch_add(1, Ordering::Relaxed)),
        }
    } else {
        let expected = shared.known.lock().expect("known values lock").get(&key).copied().flatten();
        let new = shared.next_value.fetch_add(1, Ordering::Relaxed);
        Planned { f: Function::Cas, key, value: Value::Cas { expected, new } }
    }
}

/// How a request ended: the completion type, its value, the error for people, and (registers
/// only) the value the key is now known to hold (`Some(None)`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub kind: EventType,
    pub value: serde_json::Value,
    pub error: Option<String>,
    pub known: Option<Option<i64>>,
}

impl Completion {
    /// No answer within the client timeout: the outcome is unknown.
    pub fn timed_out(timeout: Duration) -> Self {
        Completion {
            kind: EventType::Info,
            value: serde_json::Value::Null,
            error: Some(format!("client timeout after {} ms", timeout.as_millis())),
            known: None,
        }
    }
}

async fn execute(client: &mut KvClient<Channel>, planned: &Planned, timeout: Duration) -> Completion {
    let key = Bytes::from(planned.key.clone());
    let call = async {
        match &planned.value {
            Value::Null => client.get(GetRequest { key }).await.map(|r| {
                let r = r.into_inner();
                if !r.found {
                    return Completion {
                        kind: EventType::Ok,
                        value: serde_json::Value::Null,
                        error: None,
                        known: Some(None),
                    };
                }
                match decode_value(&r.value) {
                    Some(v) => {
                        Completion { kind: EventType::Ok, value: v.into(), error: None, known: Some(Some(v)) }
                    }
                    None => Completion {
                        kind: EventType::Info,
                        value: serde_json::Value::Null,
                        error: Some(format!(
                            "{GARBAGE_ERROR_PREFIX}: {:?}",
                            String::from_utf8_lossy(&r.value)
                        )),
                        known: None,
                    },
                }
            }),
            Value::Int(v) => client
                .put(PutRequest { key, value: encode_value(*v), ..Default::default() })
                .await
                .map(|_| Completion {
                    kind: EventType::Ok,
                    value: (*v).into(),
                    error: None,
                    known: Some(Some(*v)),
                }),
            Value::Cas { expected, new } => {
                let expect = match expected {
                    Some(e) => cas_request::Expect::ExpectValue(encode_value(*e)),
                    None => cas_request::Expect::ExpectAbsent(true),
                };
                client
                    .cas(CasRequest {
                        key,
                        expect: Some(expect),
                        value: encode_value(*new),
                        ..Default::default()
                    })
                    .await
                    .map(|r| {
                        let r = r.into_inner();
                        if r.swapped {
                            Completion {
                                kind: EventType::Ok,
                                value: planned.value.to_json(),
                                error: None,
                                known: Some(Some(*new)),
                            }
                        } else {
                            let current = if r.found { decode_value(&r.current) } else { None };
                            let text = if r.found {
                                String::from_utf8_lossy(&r.current).into_owned()
                            } else {
                                "absent".into()
                            };
                            Completion {
                                kind: EventType::Fail,
                                value: serde_json::Value::Null,
                                error: Some(format!("cas did not swap: the key holds {text}")),
                                known: if r.found && current.is_none() { None } else { Some(current) },
                            }
                        }
                    })
            }
            Value::Elements(_) | Value::Alarm(_) | Value::Fired(_) => {
                unreachable!("the register workload plans no {}", planned.f.name())
            }
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(completion)) => completion,
        Ok(Err(status)) => Completion {
            kind: outcome_of(status.code()),
            value: serde_json::Value::Null,
            error: Some(format!("{:?}: {}", status.code(), status.message())),
            known: None,
        },
        Err(_) => Completion::timed_out(timeout),
    }
}

/// The channel to `node`, connecting first when there is none; `None` when the node cannot be
/// reached (nothing was sent).
async fn channel_to(
    clients: &mut HashMap<NodeId, Channel>,
    node: NodeId,
    address: SocketAddr,
) -> Option<Channel> {
    if let Some(channel) = clients.get(&node) {
        return Some(channel.clone());
    }
    match connect(address).await {
        Ok(channel) => Some(clients.entry(node).or_insert(channel).clone()),
        Err(e) => {
            tracing::debug!(node, error = %e, "node unreachable, trying another");
            tokio::time::sleep(CONNECT_BACKOFF).await;
            None
        }
    }
}

/// Invokes one operation through `node` and records its invoke and completion. After an `info`,
/// `process` retires (a fresh id replaces it) and the connection to the node is dropped (a paused
/// node keeps it open but silent). Returns the completion type and value.
async fn perform(
    shared: &Shared,
    clients: &mut HashMap<NodeId, Channel>,
    node: NodeId,
    channel: Channel,
    process: &mut i64,
    planned: &Planned,
) -> (EventType, serde_json::Value) {
    let config = &shared.config;
    let invoke =
        Event::new(*process, EventType::Invoke, planned.f, planned.key.clone(), planned.value.to_json(), 0);
    shared.recorder.op(node, invoke, None).await;
    let completion = match config.workload {
        Workload::Register => execute(&mut KvClient::new(channel), planned, config.op_timeout).await,
        Workload::Counter | Workload::Set | Workload::Queue | Workload::Alarms => {
            let client = &mut ActorsClient::new(channel);
            workload_actors::execute(config.workload, client, planned, config.op_timeout).await
        }
    };
    let kind = completion.kind;
    let event = Event::new(*process, kind, planned.f, planned.key.clone(), completion.value.clone(), 0);
    shared.recorder.op(node, event, completion.error).await;
    if let Some(known) = completion.known {
        shared.known.lock().expect("known values lock").insert(planned.key.clone(), known);
    }
    if let (EventType::Ok, Value::Alarm(request)) = (kind, &planned.value) {
        // Recorded above: the history's acknowledgement is no later than now.
        let due_ns = clock::since(shared.recorder.origin_ns) + request.ms * 1_000_000;
        shared.due_last_ns.fetch_max(due_ns, Ordering::Relaxed);
    }
    if kind == EventType::Info {
        *process = shared.next_process.fetch_add(1, Ordering::Relaxed);
        clients.remove(&node);
    }
    (kind, completion.value)
}

async fn client_loop(shared: Arc<Shared>, task: u32) {
    let config = &shared.config;
    let mut rng = Rng::stream(config.seed, RNG_STREAM_CLIENT_BASE + u64::from(task));
    let mut process = i64::from(task);
    let mut clients: HashMap<NodeId, Channel> = HashMap::new();
    while !*shared.stop.borrow() {
        if shared.ops_started.load(Ordering::Relaxed) >= config.ops_max {
            break;
        }
        let &(node, address) = rng.pick(&config.nodes);
        let Some(channel) = channel_to(&mut clients, node, address).await else { continue };
        let planned = match config.workload {
            Workload::Register => plan(&mut rng, &shared),
            Workload::Counter => workload_actors::plan_counter(&mut rng, config.keys),
            Workload::Set => workload_actors::plan_set(&mut rng, &shared.rotation, &shared.next_value),
            Workload::Queue => workload_actors::plan_queue(&mut rng, &shared.rotation, &shared.next_value),
            Workload::Alarms => workload_actors::plan_alarm(
                &mut rng,
                &shared.rotation,
                &shared.next_value,
                workload_actors::unix_ms(),
            ),
        };
        shared.ops_started.fetch_add(1, Ordering::Relaxed);
        perform(&shared, &mut clients, node, channel, &mut process, &planned).await;
        if !config.think.is_zero() {
            tokio::time::sleep(config.think).await;
        }
    }
}

/// The final reads of the actor workloads: every key once, with `ok`, if the cluster answers
/// within the bounds (for `queue`, each worker until its queue drained). Nothing for `register`.
async fn final_reads(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let workload = shared.config.workload;
    let keys = {
        let rotation = shared.rotation.lock().expect("rotation lock");
        workload_actors::final_keys(workload, shared.config.keys, &rotation)
    };
    if keys.is_empty() {
        return Ok(());
    }
    if workload == Workload::Alarms {
        wait_for_alarms(shared).await;
    }
    tracing::info!(keys = keys.len(), "final reads");
    let time_max = if workload == Workload::Queue { QUEUE_DRAIN_TIME_MAX } else { FINAL_READS_TIME_MAX };
    let deadline = tokio::time::Instant::now() + time_max;
    let tasks_count = keys.len().min(shared.config.concurrency as usize);
    let queue = Arc::new(Mutex::new(keys));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..tasks_count {
        let shared = shared.clone();
        let queue = queue.clone();
        tasks.spawn(async move {
            let mut reader = FinalReader {
                shared: &shared,
                rng: Rng::stream(shared.config.seed, RNG_STREAM_FINAL_BASE + task as u64),
                process: shared.next_process.fetch_add(1, Ordering::Relaxed),
                clients: HashMap::new(),
                deadline,
            };
            loop {
                let Some(key) = queue.lock().expect("final read queue lock").pop() else { break };
                let planned = workload_actors::final_read(workload, key);
                if workload == Workload::Queue {
                    reader.drain(&planned).await;
                } else {
                    reader.read(&planned).await;
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.context("final read task")?;
    }
    Ok(())
}

/// Waits until every acknowledged alarm is past due by [`workload_actors::LATENESS_MAX`] and
/// [`ALARM_READ_MARGIN`]: then a final read that misses one shows it lost.
async fn wait_for_alarms(shared: &Shared) {
    let wait_ns = workload_actors::LATENESS_MAX + ALARM_READ_MARGIN;
    let until_ns = shared.due_last_ns.load(Ordering::Relaxed) + wait_ns.as_nanos() as u64;
    let now_ns = clock::since(shared.recorder.origin_ns);
    let wait = Duration::from_nanos(until_ns.saturating_sub(now_ns));
    // Alarms are due at most ALARM_MS_MAX after their acknowledgement, which came before now.
    assert!(
        wait <= Duration::from_millis(workload_actors::ALARM_MS_MAX) + wait_ns,
        "alarm wait out of bounds: wait={wait:?} until_ns={until_ns} now_ns={now_ns}"
    );
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        "waiting for the alarms to be due before the final reads"
    );
    tokio::time::sleep(wait).await;
}

/// One task of the final phase: its process, its connections, and the phase's deadline.
struct FinalReader<'a> {
    shared: &'a Shared,
    rng: Rng,
    process: i64,
    clients: HashMap<NodeId, Channel>,
    deadline: tokio::time::Instant,
}

impl FinalReader<'_> {
    /// One attempt at `planned` through a random node; `None` when the node cannot be reached.
    async fn attempt(&mut self, planned: &Planned) -> Option<(EventType, serde_json::Value)> {
        let &(node, address) = self.rng.pick(&self.shared.config.nodes);
        let channel = channel_to(&mut self.clients, node, address).await?;
        Some(perform(self.shared, &mut self.clients, node, channel, &mut self.process, planned).await)
    }

    /// Reads a key until one read is `ok` (at most [`FINAL_READ_ATTEMPTS_MAX`] attempts).
    async fn read(&mut self, planned: &Planned) {
        let mut attempts = 0;
        while attempts < FINAL_READ_ATTEMPTS_MAX && tokio::time::Instant::now() < self.deadline {
            let Some((kind, _)) = self.attempt(planned).await else { continue };
            attempts += 1;
            if kind == EventType::Ok {
                return;
            }
            tokio::time::sleep(FINAL_READ_BACKOFF).await;
        }
        tracing::warn!(key = %planned.key, attempts, "final read did not succeed");
    }

    /// Reads a worker's `processed` until it stops growing for [`QUEUE_SETTLE`] (at most
    /// [`QUEUE_POLLS_MAX`] reads).
    async fn drain(&mut self, planned: &Planned) {
        // Ids handled at the last ok read, and since when that count holds.
        let mut last: Option<(usize, tokio::time::Instant)> = None;
        let mut polls = 0;
        while polls < QUEUE_POLLS_MAX && tokio::time::Instant::now() < self.deadline {
            let Some((kind, value)) = self.attempt(planned).await else { continue };
            polls += 1;
            if kind == EventType::Ok {
                let handled = value.as_array().map_or(0, Vec::len);
                let now = tokio::time::Instant::now();
                match last {
                    Some((count, since)) if count == handled => {
                        if now.duration_since(since) >= QUEUE_SETTLE {
                            tracing::info!(key = %planned.key, handled, "queue drained");
                            return;
                        }
                    }
                    _ => last = Some((handled, now)),
                }
            }
            tokio::time::sleep(QUEUE_POLL_INTERVAL).await;
        }
        tracing::warn!(key = %planned.key, polls, last = ?last.map(|(count, _)| count), "queue did not settle in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_errors_fail_and_the_rest_is_unknown() {
        assert_eq!(outcome_of(tonic::Code::Aborted), EventType::Fail);
        assert_eq!(outcome_of(tonic::Code::InvalidArgument), EventType::Fail);
        assert_eq!(outcome_of(tonic::Code::Unavailable), EventType::Info);
        assert_eq!(outcome_of(tonic::Code::DeadlineExceeded), EventType::Info);
        assert_eq!(outcome_of(tonic::Code::Internal), EventType::Info);
        assert_eq!(outcome_of(tonic::Code::Cancelled), EventType::Info);
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(decode_value(&encode_value(-42)), Some(-42));
        assert_eq!(decode_value(b"12x"), None);
        assert_eq!(decode_value(&[0xff]), None);
    }

    #[test]
    fn messages_round_trip() {
        let message = WorkerMessage::Op {
            node: 2,
            event: Event::new(3, EventType::Info, Function::Write, "r1", 5.into(), 10),
            error: Some("client timeout".into()),
        };
        let line = serde_json::to_string(&message).unwrap();
        assert!(line.starts_with(r#"{"msg":"op","node":2,"event":{"process":3,"type":"info""#), "{line}");
        assert_eq!(serde_json::from_str::<WorkerMessage>(&line).unwrap(), message);
    }
}
