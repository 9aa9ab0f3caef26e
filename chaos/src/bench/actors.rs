//! `mortar-chaos bench actors`: measures the actor runtime on a three-node cluster of real
//! processes that it starts itself (on loopback, in a temporary directory):
//!
//! * **calls/s** of `counter.getCount` and `counter.increment` through node 1 (closed loop,
//!   `--clients` callers over `--keys` counters, each for `--duration` seconds), with latency
//!   percentiles and the CPU time per call of the load generator, node 1 and nodes 2–3 (and of
//!   each node's epoxy driver thread), from `/proc`;
//! * **activation latency**: the first call of fresh counters owned by node 1, through node 1;
//! * **failover time**: SIGKILL the owner of an active counter, then call it through a survivor
//!   until a call succeeds (with the counter's value intact); the node is restarted between
//!   trials;
//! * **memory per idle actor**: activate `--idle-actors` counters owned by node 1 and compare
//!   the resident memory of node 1 (which hosts them) and of the other nodes (which only
//!   replicate the activations) before and after; and over the second half of the actors
//!   alone, what one more actor costs once the storage engine's bounded buffers are full.
//!
//! Those four run by default. **ceilings** (only when named) measures what bounds the calls/s
//! runs through node 1, with the same clients, keys and duration: `increment` and `getCount` on
//! counters that node 1 owns itself (no call is forwarded), plain KV puts through node 1 (the
//! write an `increment` is built on), and KV puts through all three nodes (three leaders, as the
//! spread counters have, without the forwarding hop). With `--etcd`, each is printed as a ratio to
//! etcd's puts/s.
//!
//! The durable parts run only when named in `--parts` (see
//! [`super::actors_durable`]):
//!
//! * **alarms**: lateness (fired minus due) of reminders on a quiet cluster, and of reminders
//!   whose owner is SIGKILLed right after they are scheduled; each must fire exactly once;
//! * **queue**: messages sent per second to the queues of `worker` actors through node 1, then
//!   messages handled per second until every one sent is handled (exactly once);
//! * **alarm-memory**: resident memory per *sleeping* actor with one pending alarm, on a cluster
//!   of its own whose nodes put actors to sleep after 1 s idle;
//! * **sleep-memory**: resident memory per *sleeping* counter (created, then asleep), on such a
//!   cluster too, overall and over the second half of the actors alone.
//!
//! ```text
//! $ mortar-chaos bench actors --parts alarms,queue --duration 10 --json
//! $ mortar-chaos bench actors --parts alarm-memory --idle-actors 100000
//! $ mortar-chaos bench actors --parts sleep-memory --idle-actors 1000000
//! ```
//!
//! Every part is bounded (trials, actors, durations, per-call timeouts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use mortar_proto::v1::ActorCallRequest;
use mortar_proto::v1::actors_client::ActorsClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::{Channel, Endpoint};

use super::actors_durable;
use super::metrics::Sample;

/// Nodes of the benchmark cluster.
pub const BENCH_NODES: u32 = 3;
/// Bound on nodes becoming ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one failover trial (kill to first success).
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle actors activated.
pub const IDLE_ACTORS_MAX: usize = 1_000_000;
/// Concurrent activations while filling memory.
pub const FILL_CONCURRENCY: usize = 64;
/// How long an idle actor stays in memory on the nodes of the main cluster: longer than any run,
/// so that the memory part measures idle actors, not sleeping ones.
pub const IDLE_TIMEOUT_MS: u64 = 3_600_000;
/// The parts run on the main cluster, in this order; the first four are the default.
pub const PARTS: [&str; 7] = ["calls", "ceilings", "activation", "failover", "memory", "alarms", "queue"];
/// The parts run on a cluster of their own (its nodes put idle actors to sleep quickly).
pub const PART_ALARM_MEMORY: &str = "alarm-memory";
pub const PART_SLEEP_MEMORY: &str = "sleep-memory";

#[derive(clap::Args, Debug, Clone)]
pub struct ActorBenchArgs {
    /// Parts to run, comma-separated: calls, activation, failover, memory (the default), and
    /// ceilings (what bounds the calls part: calls on counters node 1 owns, KV puts), alarms
    /// (alarm lateness, quiet and across a failover of the owner), queue (queue messages sent and
    /// handled per second), alarm-memory (memory per sleeping actor with an alarm, on a
    /// cluster of its own), sleep-memory (memory per sleeping counter, on a cluster of its own).
    #[arg(long, value_delimiter = ',', default_value = "calls,activation,failover,memory")]
    pub parts: Vec<String>,
    /// Seconds each calls/s run (and the queue part's sending) lasts.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Concurrent callers in the calls/s runs (and senders in the queue part).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub clients: u64,
    /// Counters the calls/s runs spread over (the queue part uses at most 100 workers).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,
    /// Fresh actors activated one after the other for the activation latency.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub activations: u64,
    /// Failover trials.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub failover_trials: u64,
    /// Idle actors activated on node 1 for the memory measurement (and sleeping actors with an
    /// alarm for alarm-memory, sleeping counters for sleep-memory).
    #[arg(long, default_value_t = 100_000)]
    pub idle_actors: usize,
    /// The mortar binary to run as nodes [default: `mortar` beside this program].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// With the calls or ceilings part: after the Mortar cluster has stopped, start a
    /// three-member etcd cluster on loopback and measure its puts/s with the same clients,
    /// `--duration` and keys per client, through all members (etcd's best case), then print the
    /// ratio of each calls/s (and KV puts/s) run to etcd puts/s (issue 21's targets: 1.5 for
    /// `increment`, 4 for `getCount`).
    #[arg(long)]
    pub etcd: bool,
    /// The etcd executable, for `--etcd`.
    #[arg(long, default_value = "etcd", value_name = "PATH")]
    pub etcd_bin: PathBuf,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    /// `increment`, `getCount`, or `kv put` (a ceiling).
    pub action: String,
    /// Which counters: `spread` (over the three owners, as `--keys` counters) or `node 1's` (all
    /// owned by node 1: no call is forwarded); for KV puts, the nodes put through: `node 1` or
    /// `all nodes`.
    pub counters: String,
    pub calls: u64,
    pub errors: u64,
    pub calls_per_sec: f64,
    pub latency: Latency,
    /// Where the CPU went, per call.
    pub cpu: CallCpu,
    /// What the three nodes' epoxy did for it.
    pub epoxy: EpoxyCost,
}

/// The epoxy work behind a calls/s run, from the three nodes' `/metrics` before and after it:
/// how many commands the instances carried (a node batches the commands it proposes in one round
/// into one instance), synced writes per call and their mean time, and the share of instances
/// committed on the slow path (an Accept round more).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct EpoxyCost {
    pub commands_per_instance: Option<f64>,
    pub syncs_per_call: f64,
    pub sync_ms_mean: f64,
    pub slow_path_fraction: Option<f64>,
}

impl EpoxyCost {
    /// From the nodes' summed counters over a run (`delta`, after minus before) of `calls` calls.
    pub fn of(delta: &Sample, calls: u64) -> EpoxyCost {
        EpoxyCost {
            commands_per_instance: delta.commands_per_instance(),
            syncs_per_call: delta.syncs / calls.max(1) as f64,
            sync_ms_mean: delta.sync_ms_mean(),
            slow_path_fraction: delta.slow_path_fraction(),
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let or_dash = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "-".to_string(), f);
        format!(
            "epoxy: {} commands per instance, {:.2} synced writes per call ({:.2} ms each), {} of instances on the slow path",
            or_dash(self.commands_per_instance, &|c| format!("{c:.1}")),
            self.syncs_per_call,
            self.sync_ms_mean,
            or_dash(self.slow_path_fraction, &|f| format!("{:.0}%", f * 100.0)),
        )
    }
}

/// The three nodes' epoxy and storage counters, summed.
async fn epoxy_sample(cluster: &BenchCluster) -> anyhow::Result<Sample> {
    let mut sum = Sample::default();
    for id in 1..=3 {
        let text = super::metrics::http_get(cluster.http(id), "/metrics")
            .await
            .with_context(|| format!("read node {id}'s /metrics"))?;
        sum = sum + Sample::from_mortar(&text);
    }
    Ok(sum)
}

/// The node's epoxy driver thread, as `/proc` names it (thread names are cut to 15 bytes).
pub const DRIVER_THREAD: &str = "mortar-epoxy-dr";

/// CPU time (user and system) per answered call of a calls/s run, in microseconds, by process,
/// and of each node the share of its epoxy driver thread (consensus rounds and storage writes;
/// the rest is gRPC, forwarding and the actor runtime). On a machine that runs the load
/// generator and the three nodes, their sum bounds calls/s: cores ÷ sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CallCpu {
    /// This process: the load generator's gRPC clients.
    pub load_generator_us: f64,
    /// Node 1, which every call enters and which forwards the calls it does not own.
    pub node1_us: f64,
    pub node1_driver_us: f64,
    /// Nodes 2 and 3 together: owners of the calls node 1 forwards, and replicas of every write.
    pub others_us: f64,
    pub others_driver_us: f64,
    /// The share of the run the machine's CPUs were idle (or waiting for I/O), everything on it
    /// counted: near 0, calls/s is CPU per call's to tell; well above, the calls waited on
    /// something else.
    pub machine_idle: f64,
    pub machine_cpus: usize,
}

impl CallCpu {
    pub fn total_us(&self) -> f64 {
        self.load_generator_us + self.node1_us + self.others_us
    }

    /// The CPU per call between two snapshots (processes `[this process, node 1, node 2, node
    /// 3]`, each `(driver thread, whole process)` seconds) over `calls` calls.
    pub fn between(before: &CpuSnapshot, after: &CpuSnapshot, calls: u64) -> CallCpu {
        let (b, a) = (&before.processes, &after.processes);
        let per = |seconds: f64| seconds * 1e6 / calls.max(1) as f64;
        let delta = |i: usize| (a[i].0 - b[i].0, a[i].1 - b[i].1);
        let others = (2..b.len().min(a.len())).map(delta).fold((0.0, 0.0), |s, d| (s.0 + d.0, s.1 + d.1));
        CallCpu {
            load_generator_us: per(delta(0).1),
            node1_us: per(delta(1).1),
            node1_driver_us: per(delta(1).0),
            others_us: per(others.1),
            others_driver_us: per(others.0),
            machine_idle: before.machine.idle_share_until(&after.machine),
            machine_cpus: after.machine.cpus,
        }
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        // Below this idle share the run used the CPUs whole; above it, something other than CPU
        // (synced writes, round trips) held the calls back.
        const BOUND_BY_CPU_IDLE_MAX: f64 = 0.10;
        let bound = if self.machine_idle <= BOUND_BY_CPU_IDLE_MAX {
            "bound by CPU: calls/s ≈ cores ÷ CPU per call"
        } else {
            "not bound by CPU alone"
        };
        format!(
            "CPU per call: {:.0} µs = load generator {:.0} + node 1 {:.0} (epoxy driver {:.0}) + nodes 2-3 {:.0} \
             (epoxy drivers {:.0}); {} ({bound})",
            self.total_us(),
            self.load_generator_us,
            self.node1_us,
            self.node1_driver_us,
            self.others_us,
            self.others_driver_us,
            super::metrics::idle_words(self.machine_idle, self.machine_cpus),
        )
    }
}

/// CPU time so far: of this process and of each node, `(driver thread, whole process)` seconds,
/// and of the whole machine; for [`CallCpu::between`].
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub processes: Vec<(f64, f64)>,
    pub machine: super::metrics::MachineCpu,
}

/// The CPU time so far of this process, each node and the machine.
fn cpu_snapshot(cluster: &BenchCluster) -> anyhow::Result<CpuSnapshot> {
    let mut snapshot = vec![(0.0, super::metrics::cpu_seconds(std::process::id())?)];
    for id in 1..=BENCH_NODES {
        let pid = cluster.pid(id).with_context(|| format!("node {id} is not running"))?;
        snapshot.push((
            super::metrics::thread_cpu_seconds(pid, DRIVER_THREAD)?,
            super::metrics::cpu_seconds(pid)?,
        ));
    }
    Ok(CpuSnapshot { processes: snapshot, machine: super::metrics::machine_cpu()? })
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ActorBenchResult {
    pub throughput: Vec<Throughput>,
    pub activation: Option<Latency>,
    pub failover: Option<Latency>,
    /// From the kill to the first acknowledged write (after that first read), which includes the
    /// new owner's wait for the old owner's read lease to expire.
    pub failover_write: Option<Latency>,
    pub idle_actors: Option<usize>,
    /// Resident memory growth of node 1 (hosting the actors) per idle actor, in bytes.
    pub owner_rss_bytes_per_actor: Option<f64>,
    /// The same minus the average growth of the other nodes (replication and storage only).
    pub runtime_rss_bytes_per_actor: Option<f64>,
    /// Growth of node 1 per actor over the second half of the actors alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_rss_bytes_per_actor_marginal: Option<f64>,
    /// Average growth of the other nodes per actor over the second half alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_rss_bytes_per_actor_marginal: Option<f64>,
    /// Part alarms: lateness (fired minus due) of reminders on a quiet cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_lateness: Option<Latency>,
    /// Part alarms: lateness of reminders whose owner was SIGKILLed before they were due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_failover_lateness: Option<Latency>,
    /// How long before the first of those was due their owner was killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_failover_kill_lead_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<super::actors_durable::QueueResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_memory: Option<super::actors_durable::AlarmMemoryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep_memory: Option<super::actors_durable::SleepMemoryResult>,
    /// `--etcd`: a three-member etcd cluster's puts/s with the same clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_puts_per_sec: Option<f64>,
    /// `--etcd`: its CPU per put, warm-up included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_cpu: Option<EtcdCpu>,
}

/// CPU time per answered put of the `--etcd` run, in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct EtcdCpu {
    pub load_generator_us: f64,
    pub members_us: f64,
    /// As [`CallCpu::machine_idle`], over the run (warm-up included).
    pub machine_idle: f64,
}

/// One node process of the benchmark cluster.
struct BenchNode {
    id: u32,
    grpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

/// A three-node cluster of `mortar node` processes.
pub(super) struct BenchCluster {
    bin: PathBuf,
    root: PathBuf,
    initial_cluster: String,
    /// `--actor-idle-timeout-ms` of every node.
    idle_timeout_ms: u64,
    nodes: Vec<BenchNode>,
}

impl BenchCluster {
    /// A cluster whose nodes put actors idle for `idle_timeout_ms` to sleep; nothing runs yet.
    pub(super) fn new(bin: PathBuf, idle_timeout_ms: u64) -> anyhow::Result<Self> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros();
        let root = std::env::temp_dir().join(format!("mortar-bench-actors-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        let listeners: Vec<std::net::TcpListener> = (0..2 * BENCH_NODES)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .context("find free loopback ports")?;
        let ports: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect::<Result<_, _>>()?;
        drop(listeners);
        let nodes: Vec<BenchNode> = (1..=BENCH_NODES)
            .map(|id| {
                let i = 2 * (id as usize - 1);
                BenchNode {
                    id,
                    grpc: ports[i],
                    http: ports[i + 1],
                    dir: root.join(format!("node-{id}")),
                    child: None,
                }
            })
            .collect();
        let initial_cluster =
            nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect::<Vec<_>>().join(",");
        Ok(Self { bin, root, initial_cluster, idle_timeout_ms, nodes })
    }

    /// Starts every node, waits until each is ready and gossip has seen them all.
    pub(super) async fn start_all(&mut self) -> anyhow::Result<()> {
        for id in 1..=BENCH_NODES {
            self.start(id)?;
        }
        for id in 1..=BENCH_NODES {
            self.wait_ready(id).await?;
        }
        // Let gossip see every member before placing actors.
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!(
            "cluster of {BENCH_NODES} nodes up in {} (actor idle timeout {} ms)",
            self.root.display(),
            self.idle_timeout_ms
        );
        Ok(())
    }

    fn node(&self, id: u32) -> &BenchNode {
        &self.nodes[id as usize - 1]
    }

    /// The HTTP address (`/metrics`, `/readyz`) of node `id`.
    pub(super) fn http(&self, id: u32) -> SocketAddr {
        self.node(id).http
    }

    pub(super) fn start(&mut self, id: u32) -> anyhow::Result<()> {
        let initial_cluster = self.initial_cluster.clone();
        let bin = self.bin.clone();
        let idle_timeout_ms = self.idle_timeout_ms.to_string();
        let node = &mut self.nodes[id as usize - 1];
        std::fs::create_dir_all(&node.dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.dir.join("node.log"))?;
        let child = Command::new(&bin)
            .args(["node", "--id", &id.to_string()])
            .args(["--listen", &node.grpc.to_string(), "--http", &node.http.to_string()])
            .arg("--data-dir")
            .arg(&node.dir)
            .args(["--initial-cluster", &initial_cluster])
            .args(["--actor-idle-timeout-ms", &idle_timeout_ms])
            .env("MORTAR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        node.child = Some(child);
        Ok(())
    }

    pub(super) fn kill(&mut self, id: u32) {
        if let Some(mut child) = self.nodes[id as usize - 1].child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    pub(super) fn pid(&self, id: u32) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    pub(super) async fn wait_ready(&mut self, id: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let node = &mut self.nodes[id as usize - 1];
            if let Some(child) = &mut node.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("node {id} exited ({status}); see {}", node.dir.join("node.log").display());
            }
            if http_status(node.http, "/readyz").await == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {id} not ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) async fn client(&self, id: u32) -> anyhow::Result<ActorsClient<Channel>> {
        let channel = Endpoint::from_shared(format!("http://{}", self.node(id).grpc))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .with_context(|| format!("connect to node {id}"))?;
        Ok(ActorsClient::new(channel))
    }
}

impl Drop for BenchCluster {
    fn drop(&mut self) {
        for id in 1..=BENCH_NODES {
            self.kill(id);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        String::from_utf8_lossy(&response).split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten()
}

/// Resident memory of process `pid`, in bytes.
pub(super) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS in /proc status")?;
    let kib: u64 = line.split_whitespace().nth(1).context("malformed VmRSS")?.parse()?;
    Ok(kib * 1024)
}

/// Calls `action` of counter `key`; answers its JSON result.
async fn call(
    client: &mut ActorsClient<Channel>,
    key: &str,
    action: &str,
    args: &str,
) -> Result<String, tonic::Status> {
    call_actor(client, "counter", key, action, args).await
}

/// Calls `action` of actor `(actor, key)`, bounded by [`CALL_TIMEOUT`]; answers its JSON result.
pub(super) async fn call_actor(
    client: &mut ActorsClient<Channel>,
    actor: &str,
    key: &str,
    action: &str,
    args: &str,
) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(ActorCallRequest {
        actor: actor.into(),
        key: key.into(),
        action: action.into(),
        args_json: args.into(),
        forwarded: false,
        input_json: String::new(),
    });
    request.set_timeout(CALL_TIMEOUT);
    match tokio::time::timeout(CALL_TIMEOUT, client.call(request)).await {
        Ok(result) => result.map(|r| r.into_inner().result_json),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

/// Percentiles of `histogram`, whose values are microseconds.
pub(super) fn latency(histogram: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
    }
}

/// A histogram of microseconds, up to two minutes.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// Keys of actors of type `actor` that node `owner` owns when every node is live.
/// Calls `getCount` on `keys[range]` (activating each), [`FILL_CONCURRENCY`] at a time.
async fn activate_all(
    client: &ActorsClient<Channel>,
    keys: Arc<Vec<String>>,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(range.start as u64));
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let (keys, next, end, mut client) = (keys.clone(), next.clone(), range.end, client.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= end {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = &keys[i];
                call(&mut client, key, "getCount", "")
                    .await
                    .map_err(|s| anyhow::anyhow!("activate {key}: {s}"))?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub(super) fn keys_owned_by(owner: u32, actor: &str, prefix: &str, count: usize) -> Vec<String> {
    let members: Vec<mortar_placement::Member> =
        (1..=BENCH_NODES).map(|id| mortar_placement::Member::new(id, "")).collect();
    let ring = mortar_placement::Ring::new(&members);
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|key| ring.owner(actor, key.as_bytes()) == Some(owner))
        .take(count)
        .collect()
}

pub async fn run(args: ActorBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.idle_actors <= IDLE_ACTORS_MAX, "--idle-actors is at most {IDLE_ACTORS_MAX}");
    for part in &args.parts {
        anyhow::ensure!(
            PARTS.contains(&part.as_str()) || part == PART_ALARM_MEMORY || part == PART_SLEEP_MEMORY,
            "--parts names {part:?}, which is not a part: give some of {}, {PART_ALARM_MEMORY}, {PART_SLEEP_MEMORY}",
            PARTS.join(", ")
        );
    }
    let bin = super::mortar_bin(args.bin.as_deref())?;
    let wants = |part: &str| args.parts.iter().any(|p| p == part);
    let mut result = ActorBenchResult::default();
    if PARTS.iter().any(|part| wants(part)) {
        let mut cluster = BenchCluster::new(bin.clone(), IDLE_TIMEOUT_MS)?;
        cluster.start_all().await?;
        run_parts(&mut cluster, &args, &mut result).await?;
        // Dropped here: its nodes stop before another cluster starts.
    }
    if args.etcd && (wants("calls") || wants("ceilings")) {
        let (puts, cpu) = etcd_puts(&args).await?;
        result.etcd_puts_per_sec = Some(puts);
        result.etcd_cpu = Some(cpu);
        print_ratios(&result, puts, args.clients);
    }
    if wants(PART_ALARM_MEMORY) && args.idle_actors > 0 {
        let mut cluster = BenchCluster::new(bin.clone(), actors_durable::ALARM_MEMORY_IDLE_TIMEOUT_MS)?;
        cluster.start_all().await?;
        actors_durable::alarm_memory(&cluster, args.idle_actors, &mut result).await?;
    }
    if wants(PART_SLEEP_MEMORY) && args.idle_actors > 0 {
        let mut cluster = BenchCluster::new(bin, actors_durable::ALARM_MEMORY_IDLE_TIMEOUT_MS)?;
        cluster.start_all().await?;
        actors_durable::sleep_memory(&cluster, args.idle_actors, &mut result).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// The parts of [`PARTS`] named in `--parts`, in that order, on `cluster`.
async fn run_parts(
    cluster: &mut BenchCluster,
    args: &ActorBenchArgs,
    result: &mut ActorBenchResult,
) -> anyhow::Result<()> {
    let wants = |part: &str| args.parts.iter().any(|p| p == part);
    if wants("calls") {
        let keys: Vec<String> = (0..args.keys).map(|k| format!("load-{k}")).collect();
        for (action, args_json) in ACTIONS {
            let run = throughput(cluster, args, action, args_json, SPREAD, &keys).await?;
            print_throughput(&run, args);
            result.throughput.push(run);
        }
    }
    if wants("ceilings") {
        let keys = keys_owned_by(1, "counter", "local", args.keys as usize);
        for (action, args_json) in ACTIONS {
            let run = throughput(cluster, args, action, args_json, NODE1_OWNS, &keys).await?;
            print_throughput(&run, args);
            result.throughput.push(run);
        }
        for (through, nodes, what) in KV_CEILINGS {
            let run = kv_puts(cluster, args, through, nodes).await?;
            println!(
                "KV puts/s {what}: {:.0} ({} puts, {} errors; p50 {:.2} ms, p99 {:.2} ms; {} clients)",
                run.calls_per_sec,
                run.calls,
                run.errors,
                run.latency.p50_ms,
                run.latency.p99_ms,
                args.clients
            );
            println!("  {}", run.cpu.line());
            println!("  {}", run.epoxy.line());
            result.throughput.push(run);
        }
    }
    if wants("activation") {
        let mut client = cluster.client(1).await?;
        let mut histogram = new_histogram();
        for key in keys_owned_by(1, "counter", "fresh", args.activations as usize) {
            let started = Instant::now();
            call(&mut client, &key, "getCount", "")
                .await
                .map_err(|s| anyhow::anyhow!("activate {key}: {s}"))?;
            histogram.record(started.elapsed().as_micros() as u64)?;
        }
        let l = latency(&histogram);
        println!(
            "activation latency (first call of a fresh counter owned by node 1, through node 1): p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms over {}",
            l.p50_ms, l.p99_ms, l.max_ms, l.count
        );
        result.activation = Some(l);
    }
    if wants("failover") {
        let (l, w) = failover(cluster, args.failover_trials).await?;
        println!(
            "failover (SIGKILL of the owner to the first successful call, getCount, through a survivor): p50 \
             {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} trials",
            l.p50_ms, l.p99_ms, l.max_ms, l.count
        );
        println!(
            "failover to the first acknowledged increment (after that read; includes the read-lease \
             handover wait): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            w.p50_ms, w.p99_ms, w.max_ms
        );
        result.failover = Some(l);
        result.failover_write = Some(w);
    }
    if wants("memory") && args.idle_actors > 0 {
        memory(cluster, args.idle_actors, result).await?;
    }
    if wants("alarms") {
        actors_durable::alarms(cluster, result).await?;
    }
    if wants("queue") {
        actors_durable::queue(cluster, args, result).await?;
    }
    Ok(())
}

/// `--etcd`: puts/s of a three-member etcd cluster (started, measured, stopped and removed here)
/// under the calls part's clients.
async fn etcd_puts(args: &ActorBenchArgs) -> anyhow::Result<(f64, EtcdCpu)> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let root = std::env::temp_dir().join(format!("mortar-bench-actors-etcd-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    let measured = async {
        let mut cluster = super::cluster::Cluster::spawn_etcd(&args.etcd_bin, &root)?;
        cluster.wait_ready().await?;
        let kv_args = mortar_node::bench::KvBenchArgs {
            clients: args.clients,
            duration: args.duration,
            keys: args.keys,
            ..mortar_node::bench::KvBenchArgs::new(mortar_node::bench::Target::Etcd, cluster.endpoints())
        };
        let warmup = kv_args.warmup;
        let before = cluster.sample().await;
        let client_before = super::metrics::cpu_seconds(std::process::id());
        let machine_before = super::metrics::machine_cpu();
        let run = super::target::run_kv(kv_args).await;
        let machine_after = super::metrics::machine_cpu();
        let client_cpu = super::metrics::cpu_seconds(std::process::id());
        let after = cluster.sample().await;
        cluster.stop().await;
        let run = run?;
        println!("etcd, same clients: {}", run.line());
        let puts_per_sec = run.ops_per_sec;
        // Per answered put, warm-up included, as `bench compare` counts it.
        let costs =
            super::compare::SystemRun::new(run, after? - before?, client_cpu? - client_before?, warmup);
        let machine_after = machine_after?;
        let cpu = EtcdCpu {
            load_generator_us: costs.client_cpu_us_per_op,
            members_us: costs.server_cpu_us_per_op,
            machine_idle: machine_before?.idle_share_until(&machine_after),
        };
        println!(
            "  CPU per put: {:.0} µs = load generator {:.0} + the three members {:.0}; {}",
            cpu.load_generator_us + cpu.members_us,
            cpu.load_generator_us,
            cpu.members_us,
            super::metrics::idle_words(cpu.machine_idle, machine_after.cpus)
        );
        Ok::<_, anyhow::Error>((puts_per_sec, cpu))
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&root) {
        eprintln!("cannot remove {} ({e}); remove it by hand", root.display());
    }
    measured
}

/// Prints each calls/s run of the calls and ceilings parts against etcd's puts/s.
fn print_ratios(result: &ActorBenchResult, etcd_puts: f64, clients: u64) {
    for line in ratio_lines(&result.throughput, etcd_puts, clients) {
        println!("{line}");
    }
}

/// One line per run: its rate over etcd's puts/s, with issue 21's target for the calls part's
/// runs (the ceilings bound them: a ceiling below a target shows the target out of reach until
/// what the ceiling measures gets faster).
fn ratio_lines(runs: &[Throughput], etcd_puts: f64, clients: u64) -> Vec<String> {
    runs.iter()
        .map(|run| {
            let ratio = run.calls_per_sec / etcd_puts.max(1e-9);
            let what = match (run.action.as_str(), run.counters.as_str()) {
                (KV_PUT, KV_ALL_NODES) => "three leaders, nothing forwarded".to_string(),
                (KV_PUT, _) => "ceiling of increment".to_string(),
                ("increment", SPREAD) => "issue 21's target ≥ 1.5".to_string(),
                (_, SPREAD) => "issue 21's target ≥ 4".to_string(),
                _ => "ceiling: nothing forwarded".to_string(),
            };
            let unit = if run.action == KV_PUT { "puts/s" } else { "calls/s" };
            let which = match run.counters.as_str() {
                NODE1_OWNS => " (node 1's counters)",
                KV_ALL_NODES => " (all three nodes)",
                _ => "",
            };
            format!(
                "{}{which} {unit} ÷ etcd puts/s at {clients} clients: {ratio:.2} ({:.0} / {etcd_puts:.0}; {what})",
                run.action, run.calls_per_sec
            )
        })
        .collect()
}

/// The calls of the calls/s runs, with their arguments.
const ACTIONS: [(&str, &str); 2] = [("increment", r#"{"amount":1}"#), ("getCount", "")];
/// [`Throughput::counters`]: spread over the three owners, or all owned by node 1.
const SPREAD: &str = "spread";
const NODE1_OWNS: &str = "node 1's";
const KV_PUT: &str = "kv put";
/// [`Throughput::counters`] of KV puts: the nodes the clients put through.
const KV_NODE1: &str = "node 1";
const KV_ALL_NODES: &str = "all nodes";
/// The KV runs of the ceilings part: their [`Throughput::counters`], the nodes the clients put
/// through, and what the run stands for.
const KV_CEILINGS: [(&str, &[u32], &str); 2] = [
    (KV_NODE1, &[1], "through node 1 (the write an increment is built on)"),
    (
        KV_ALL_NODES,
        &[1, 2, 3],
        "through all three nodes (three leaders, as the spread counters' owners; nothing forwarded)",
    ),
];

fn print_throughput(run: &Throughput, args: &ActorBenchArgs) {
    let which = if run.counters == NODE1_OWNS { ", all owned by node 1 (none forwarded)" } else { "" };
    println!(
        "calls/s through node 1, {}: {:.0} ({} calls, {} errors; p50 {:.2} ms, p99 {:.2} ms; {} clients over \
         {} counters{which})",
        run.action,
        run.calls_per_sec,
        run.calls,
        run.errors,
        run.latency.p50_ms,
        run.latency.p99_ms,
        args.clients,
        args.keys
    );
    println!("  {}", run.cpu.line());
    println!("  {}", run.epoxy.line());
}

/// Ceiling: KV puts with the calls part's clients, duration and keys per client, spread over
/// `nodes` (each leads its clients' puts), and their CPU per put (no warm-up: the connections are
/// open before the clock starts). `through` names the run (see [`KV_CEILINGS`]).
async fn kv_puts(
    cluster: &BenchCluster,
    args: &ActorBenchArgs,
    through: &str,
    nodes: &[u32],
) -> anyhow::Result<Throughput> {
    let kv_args = mortar_node::bench::KvBenchArgs {
        clients: args.clients,
        duration: args.duration,
        keys: args.keys,
        warmup: 0,
        ..mortar_node::bench::KvBenchArgs::new(
            mortar_node::bench::Target::Mortar,
            nodes.iter().map(|&id| cluster.node(id).grpc.to_string()).collect(),
        )
    };
    let epoxy_before = epoxy_sample(cluster).await?;
    let before = cpu_snapshot(cluster)?;
    let run = super::target::run_kv(kv_args).await?;
    let after = cpu_snapshot(cluster)?;
    let epoxy_after = epoxy_sample(cluster).await?;
    Ok(Throughput {
        action: KV_PUT.to_string(),
        counters: through.to_string(),
        calls: run.ops,
        errors: run.errors,
        calls_per_sec: run.ops_per_sec,
        latency: Latency { count: run.ops, p50_ms: run.p50_ms, p99_ms: run.p99_ms, max_ms: run.max_ms },
        cpu: CallCpu::between(&before, &after, run.ops),
        epoxy: EpoxyCost::of(&(epoxy_after - epoxy_before), run.ops),
    })
}

/// Calls `action` on `keys` (counters) through node 1 from `--clients` callers for `--duration`.
async fn throughput(
    cluster: &BenchCluster,
    args: &ActorBenchArgs,
    action: &str,
    args_json: &str,
    counters: &str,
    keys: &[String],
) -> anyhow::Result<Throughput> {
    anyhow::ensure!(!keys.is_empty(), "no counters to call");
    let client = cluster.client(1).await?;
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    // Warm up: activate every counter first.
    for key in keys {
        let mut c = client.clone();
        call(&mut c, key, "getCount", "").await.map_err(|s| anyhow::anyhow!("warm-up call: {s}"))?;
    }
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let epoxy_before = epoxy_sample(cluster).await?;
    let cpu_before = cpu_snapshot(cluster)?;
    let end = Instant::now() + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for client_index in 0..args.clients {
        let mut client = client.clone();
        let (calls, errors) = (calls.clone(), errors.clone());
        let (action, args_json, keys, clients) =
            (action.to_string(), args_json.to_string(), keys.clone(), args.clients as usize);
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut k = client_index as usize;
            while Instant::now() < end {
                let key = &keys[k % keys.len()];
                k += clients;
                let started = Instant::now();
                match call(&mut client, key, &action, &args_json).await {
                    Ok(_) => {
                        let _ = histogram.record(started.elapsed().as_micros() as u64);
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            histogram
        }));
    }
    let started = Instant::now();
    let mut histogram = new_histogram();
    for task in tasks {
        histogram.add(task.await?)?;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let cpu_after = cpu_snapshot(cluster)?;
    let epoxy_after = epoxy_sample(cluster).await?;
    let calls = calls.load(Ordering::Relaxed);
    Ok(Throughput {
        action: action.to_string(),
        counters: counters.to_string(),
        calls,
        errors: errors.load(Ordering::Relaxed),
        calls_per_sec: calls as f64 / seconds,
        latency: latency(&histogram),
        cpu: CallCpu::between(&cpu_before, &cpu_after, calls),
        epoxy: EpoxyCost::of(&(epoxy_after - epoxy_before), calls),
    })
}

/// Failover times: to the first successful read, and to the first acknowledged write after it.
async fn failover(cluster: &mut BenchCluster, trials: u64) -> anyhow::Result<(Latency, Latency)> {
    let mut histogram = new_histogram();
    let mut writes = new_histogram();
    for trial in 0..trials {
        // Alternate the victim between nodes 2 and 3; call through node 1.
        let victim = 2 + (trial % 2) as u32;
        let key = keys_owned_by(victim, "counter", &format!("failover-{trial}"), 1).remove(0);
        let mut client = cluster.client(1).await?;
        call(&mut client, &key, "increment", r#"{"amount":1}"#)
            .await
            .map_err(|s| anyhow::anyhow!("activate {key} on node {victim}: {s}"))?;
        cluster.kill(victim);
        let killed = Instant::now();
        let value = loop {
            match call(&mut client, &key, "getCount", "").await {
                Ok(value) => break value,
                Err(status) if killed.elapsed() < FAILOVER_TIMEOUT => {
                    tracing::debug!(%status, "call during failover failed; retrying");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(status) => {
                    bail!("no successful call within {FAILOVER_TIMEOUT:?} after the kill: {status}")
                }
            }
        };
        let elapsed = killed.elapsed();
        anyhow::ensure!(value == "1", "counter {key} lost its write in failover: {value}");
        histogram.record(elapsed.as_micros() as u64)?;
        let value = call(&mut client, &key, "increment", r#"{"amount":1}"#)
            .await
            .map_err(|s| anyhow::anyhow!("increment {key} after the failover: {s}"))?;
        anyhow::ensure!(value == "2", "counter {key} after the failover and one increment: {value}");
        let write_elapsed = killed.elapsed();
        writes.record(write_elapsed.as_micros() as u64)?;
        eprintln!(
            "failover trial {}: node {victim} killed, {key} answered a read after {elapsed:?}, a write after \
             {write_elapsed:?}",
            trial + 1
        );
        cluster.start(victim)?;
        cluster.wait_ready(victim).await?;
        // Let gossip take the restarted node back in before the next trial.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok((latency(&histogram), latency(&writes)))
}

/// The resident memory of each node, node 1 first.
pub(super) fn nodes_rss(cluster: &BenchCluster) -> anyhow::Result<Vec<u64>> {
    (1..=BENCH_NODES).map(|id| rss_bytes(cluster.pid(id).context("node not running")?)).collect()
}

/// Per actor, from `from` to `after` (each node's resident memory, node 1 first) over `count`
/// actors: node 1's growth and the other nodes' average growth.
pub(super) fn growth_per_actor(from: &[u64], after: &[u64], count: usize) -> (f64, f64) {
    let growth: Vec<f64> = from.iter().zip(after).map(|(b, a)| *a as f64 - *b as f64).collect();
    let others = growth[1..].iter().sum::<f64>() / (growth.len() - 1) as f64;
    (growth[0] / count as f64, others / count as f64)
}

/// What [`activate_in_halves`] measured.
pub(super) struct Halves {
    /// Time spent activating (both halves, without the waits).
    pub fill: Duration,
    /// From the first activation to the end of the last wait for sleep.
    pub elapsed: Duration,
    /// Actors still active on node 1 after the last wait for sleep (0 without one).
    pub active_left: u64,
    /// Per actor: node 1's growth and the other nodes' average, overall.
    pub owner: f64,
    pub others: f64,
    /// The same over the second half alone.
    pub owner_marginal: f64,
    pub others_marginal: f64,
}

/// Activates `keys` (counters owned by node 1) through node 1, half and then the rest, reading
/// every node's resident memory before, after the first half and at the end: the second half's
/// growth is what each further actor costs, once the storage engine's bounded buffers
/// (memtables, caches) have filled. After each half, when `asleep_part` names the part, it first
/// waits until node 1 has no active actor; then 2 s, for memory to settle.
pub(super) async fn activate_in_halves(
    cluster: &BenchCluster,
    keys: Vec<String>,
    asleep_part: Option<&str>,
) -> anyhow::Result<Halves> {
    let actors = keys.len();
    let half = actors / 2;
    let keys = Arc::new(keys);
    let client = cluster.client(1).await?;
    let before = nodes_rss(cluster)?;
    let started = Instant::now();
    let mut fill = Duration::ZERO;
    let mut active_left = 0;
    let mut readings = Vec::new();
    for range in [0..half, half..actors] {
        let activating = Instant::now();
        activate_all(&client, keys.clone(), range).await?;
        fill += activating.elapsed();
        if let Some(part) = asleep_part {
            active_left = actors_durable::all_asleep(cluster, part).await?;
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        readings.push((nodes_rss(cluster)?, elapsed));
    }
    let (middle, after, elapsed) = (&readings[0].0, &readings[1].0, readings[1].1);
    let (owner, others) = growth_per_actor(&before, after, actors);
    let (owner_marginal, others_marginal) = growth_per_actor(middle, after, actors - half);
    Ok(Halves { fill, elapsed, active_left, owner, others, owner_marginal, others_marginal })
}

async fn memory(cluster: &BenchCluster, actors: usize, result: &mut ActorBenchResult) -> anyhow::Result<()> {
    let Halves { fill, owner, others, owner_marginal, others_marginal, .. } =
        activate_in_halves(cluster, keys_owned_by(1, "counter", "idle", actors), None).await?;
    println!(
        "memory: {actors} idle counters activated on node 1 in {fill:.1?} ({:.0}/s); resident memory growth \
         per actor: node 1 (hosting) {owner:.0} B, other nodes (replicating only) {others:.0} B, \
         so about {:.0} B per idle actor in the runtime; over the second half alone (what one more actor \
         costs once the storage engine's bounded buffers are full): node 1 {owner_marginal:.0} B, other \
         nodes {others_marginal:.0} B",
        actors as f64 / fill.as_secs_f64(),
        owner - others
    );
    result.owner_rss_bytes_per_actor_marginal = Some(owner_marginal);
    result.replica_rss_bytes_per_actor_marginal = Some(others_marginal);
    result.idle_actors = Some(actors);
    result.owner_rss_bytes_per_actor = Some(owner);
    result.runtime_rss_bytes_per_actor = Some(owner - others);
    Ok(())
}

#[cfg(test)]
#[path = "actors_test.rs"]
mod actors_test;
