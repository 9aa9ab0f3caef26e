//! An in-process test cluster for unit-testing actors (as Orleans' `TestCluster`).
//!
//! [`TestCluster::start`] runs N real nodes in the test's process: each with in-memory storage
//! ([`MemStorage`]), a Tokio runtime of its own (its "process") and a temporary directory, talking
//! to the others over loopback gRPC and gossip as nodes on machines do. [`TestCluster::kill`]
//! stops a node abruptly, as SIGKILL would: its actors move to the survivors, with their state.
//! [`TestCluster::restart`] brings it back on its storage.
//!
//! ```no_run
//! use mortar_node::actor::examples::{self, Counter, GetCount, Increment};
//! use mortar_node::testing::TestCluster;
//!
//! # async fn a_count_survives_its_owner() {
//! // In a #[tokio::test(flavor = "multi_thread")]:
//! let mut cluster = TestCluster::start(3, examples::registry).await;
//! let client = cluster.client().await;
//! let counter = client.actor::<Counter>("c-1");
//! assert_eq!(counter.call(Increment { amount: 5 }).await.unwrap(), 5);
//! cluster.kill(cluster.owner::<Counter>("c-1").await).await;
//! assert_eq!(counter.call(GetCount).await.unwrap(), 5);
//! # }
//! ```
//!
//! Every method panics, with what went wrong, when the cluster does not do what it should within
//! its bound ([`CONVERGE_TIMEOUT`], [`STOP_TIMEOUT`]): it is a tool for tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mortar_proto::v1::LocateRequest;
use mortar_proto::v1::actor_admin_client::ActorAdminClient;
use mortar_storage::MemStorage;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument as _;

use crate::actor::{Actor, Client, Registry};
use crate::config::{MEMBERS_MAX, NodeArgs, NodeConfig};

/// Bound on the nodes agreeing on who is alive (and being ready) after a start, kill, stop or
/// restart.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a node stopping (after [`TestCluster::stop`]) and on a killed node's last thread
/// letting go of its storage.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one request of the cluster to a node (a readiness probe, a locate).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between probes while waiting.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Worker threads of each node's runtime.
const NODE_THREADS: usize = 2;
/// Ports tried per free address wanted (one whose UDP twin is taken is skipped).
const PORT_ATTEMPTS_PER_ADDRESS: usize = 16;

/// N nodes in this process. Dropping it kills every node and removes their directories.
pub struct TestCluster {
    /// Node `i` (1-based id) at index `i - 1`.
    nodes: Vec<TestNode>,
    registry: Arc<dyn Fn() -> Registry + Send + Sync>,
    /// `--initial-cluster` of every node.
    initial_cluster: String,
    /// An actor type of the registry: locating one of its actors tells whom a node sees alive.
    probe_actor: &'static str,
    dir: tempfile::TempDir,
}

struct TestNode {
    id: u32,
    grpc: SocketAddr,
    http: SocketAddr,
    data_dir: PathBuf,
    /// Survives kills and restarts, as a disk does.
    storage: Arc<MemStorage>,
    /// Lazy: connects when a probe needs it, again after a restart.
    channel: Channel,
    running: Option<Running>,
}

/// A node's "process": a thread running the node in a runtime of its own.
struct Running {
    /// Ends the node abruptly: its runtime is dropped with every task. Dropping it does too.
    kill: oneshot::Sender<()>,
    /// Ends the node as SIGTERM does.
    stop: oneshot::Sender<()>,
    /// How the node ended: `None` when killed.
    exited: oneshot::Receiver<Option<anyhow::Result<()>>>,
}

impl TestCluster {
    /// Starts `nodes` nodes (ids 1 to `nodes`), each hosting the actor types of a registry
    /// `registry` makes, and waits until every node is ready and sees every other alive.
    ///
    /// # Panics
    ///
    /// When `nodes` is not 1 to 7, the registry is empty, or the cluster does not come up within
    /// [`CONVERGE_TIMEOUT`].
    pub async fn start<F>(nodes: usize, registry: F) -> TestCluster
    where
        F: Fn() -> Registry + Send + Sync + 'static,
    {
        assert!(
            (1..=MEMBERS_MAX).contains(&nodes),
            "a test cluster has 1 to {MEMBERS_MAX} nodes, not {nodes}"
        );
        let probe_actor = *registry()
            .names()
            .first()
            .expect("the registry of a test cluster needs at least one actor type");
        let dir =
            tempfile::Builder::new().prefix("mortar-test-cluster-").tempdir().expect("create a temp dir");
        let addresses = free_loopback_addresses(2 * nodes);
        let nodes: Vec<TestNode> = (1..=nodes as u32)
            .map(|id| {
                let i = 2 * (id as usize - 1);
                let (grpc, http) = (addresses[i], addresses[i + 1]);
                let channel =
                    Endpoint::from_shared(format!("http://{grpc}")).expect("a loopback URI").connect_lazy();
                TestNode {
                    id,
                    grpc,
                    http,
                    data_dir: dir.path().join(format!("node-{id}")),
                    storage: Arc::new(MemStorage::new()),
                    channel,
                    running: None,
                }
            })
            .collect();
        let initial_cluster: Vec<String> = nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect();
        let mut cluster = TestCluster {
            nodes,
            registry: Arc::new(registry),
            initial_cluster: initial_cluster.join(","),
            probe_actor,
            dir,
        };
        for id in cluster.ids() {
            cluster.launch(id);
        }
        cluster.converge().await;
        cluster
    }

    /// Ids of every node, running or not.
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Ids of the running nodes.
    pub fn running(&self) -> Vec<u32> {
        self.nodes.iter().filter(|n| n.running.is_some()).map(|n| n.id).collect()
    }

    /// The gRPC endpoint (`host:port`) of node `node`.
    pub fn endpoint(&self, node: u32) -> String {
        self.node(node).grpc.to_string()
    }

    /// The HTTP address of node `node`: `/metrics`, `/healthz`, `/readyz` and the actors'
    /// JSON gateway.
    pub fn http_address(&self, node: u32) -> SocketAddr {
        self.node(node).http
    }

    /// A client of every node (see [`Client::connect_any`]): it calls through the first that
    /// answers and moves on when that one is killed.
    pub async fn client(&self) -> Client {
        let endpoints: Vec<String> = self.ids().into_iter().map(|id| self.endpoint(id)).collect();
        Client::connect_any(&endpoints).await.unwrap_or_else(|e| panic!("connect to the test cluster: {e}"))
    }

    /// The node that owns actor `A` at `key` now, as a running node sees it.
    pub async fn owner<A: Actor>(&self, key: &str) -> u32 {
        let via = *self.running().first().expect("a running node to ask");
        self.locate(via, A::NAME, key)
            .await
            .unwrap_or_else(|e| panic!("locate {}/{key}: {e}", A::NAME))
            .node_id
    }

    /// Stops node `node` abruptly, as SIGKILL would (what it wrote stays written), and waits
    /// until every other running node sees it gone: from then on its actors answer from the
    /// survivors.
    pub async fn kill(&mut self, node: u32) {
        let running =
            self.node_mut(node).running.take().unwrap_or_else(|| panic!("node {node} is not running"));
        let _ = running.kill.send(());
        match tokio::time::timeout(STOP_TIMEOUT, running.exited).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(result))) => panic!("node {node} had ended before it was killed: {result:?}"),
            Ok(Err(_)) => panic!("node {node}'s thread panicked"),
            Err(_) => panic!("node {node} was not killed within {STOP_TIMEOUT:?}"),
        }
        self.let_go(node).await;
        self.converge().await;
    }

    /// Stops node `node` as SIGTERM would (it leaves gossip first, so its actors move at once),
    /// and waits until every other running node sees it gone.
    pub async fn stop(&mut self, node: u32) {
        let running =
            self.node_mut(node).running.take().unwrap_or_else(|| panic!("node {node} is not running"));
        let _ = running.stop.send(());
        match tokio::time::timeout(STOP_TIMEOUT, running.exited).await {
            Ok(Ok(Some(Ok(())))) => {}
            Ok(Ok(Some(Err(e)))) => panic!("node {node} stopped with an error: {e:#}"),
            Ok(Ok(None) | Err(_)) => panic!("node {node}'s thread panicked while stopping"),
            Err(_) => panic!("node {node} did not stop within {STOP_TIMEOUT:?}"),
        }
        self.let_go(node).await;
        self.converge().await;
    }

    /// Starts node `node` again on its storage (killed or stopped before), and waits until every
    /// running node sees every other alive.
    pub async fn restart(&mut self, node: u32) {
        assert!(self.node(node).running.is_none(), "node {node} is running already");
        self.launch(node);
        self.converge().await;
    }

    fn node(&self, node: u32) -> &TestNode {
        self.nodes.get((node as usize).wrapping_sub(1)).unwrap_or_else(|| panic!("no node {node}"))
    }

    fn node_mut(&mut self, node: u32) -> &mut TestNode {
        self.nodes.get_mut((node as usize).wrapping_sub(1)).unwrap_or_else(|| panic!("no node {node}"))
    }

    /// Starts node `node` in a thread and runtime of its own, without waiting for it.
    fn launch(&mut self, node: u32) {
        let args = NodeArgs {
            id: Some(node),
            listen: Some(self.node(node).grpc.to_string()),
            http: Some(self.node(node).http.to_string()),
            data_dir: Some(self.node(node).data_dir.clone()),
            initial_cluster: Some(self.initial_cluster.clone()),
            ..NodeArgs::default()
        };
        let config =
            NodeConfig::from_args(args).unwrap_or_else(|e| panic!("node {node}'s configuration: {e}"));
        // A recorder of its own, not installed: `/metrics` answers, the node's metrics go nowhere.
        let metrics = crate::telemetry::builder().expect("the metrics buckets").build_recorder().handle();
        let registry = (self.registry)();
        let storage: Arc<dyn mortar_storage::Storage> = self.node(node).storage.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(NODE_THREADS)
            .thread_name(format!("mortar-test-node-{node}"))
            .enable_all()
            .build()
            .expect("start a node's runtime");
        let (kill, killed) = oneshot::channel::<()>();
        let (stop, stopped) = oneshot::channel::<()>();
        let (exit, exited) = oneshot::channel();
        let stopped = async move {
            let _ = stopped.await;
        };
        std::thread::Builder::new()
            .name(format!("mortar-test-node-{node}"))
            .spawn(move || {
                // Made on this thread: the node's future need not be `Send`.
                let run = crate::server::run_on(config, metrics, registry, storage, stopped)
                    .instrument(tracing::info_span!("node", id = node));
                let outcome = runtime.block_on(async {
                    tokio::select! {
                        biased;
                        _ = killed => None,
                        result = run => Some(result),
                    }
                });
                // Drops every task of the node at its next yield point; the driver thread ends
                // when its channel closes.
                runtime.shutdown_background();
                let _ = exit.send(outcome);
            })
            .expect("start a node's thread");
        self.node_mut(node).running = Some(Running { kill, stop, exited });
    }

    /// Waits until nothing of stopped node `node` holds its storage any more (its driver thread
    /// and its tasks are gone), so that a restart is the only writer.
    async fn let_go(&self, node: u32) {
        let storage = &self.node(node).storage;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Arc::strong_count(storage) > 1 {
            assert!(
                Instant::now() < deadline,
                "node {node} still holds its storage {STOP_TIMEOUT:?} after it stopped"
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Waits until every running node sees exactly the running nodes alive, and, while they are
    /// a majority, is ready (it reaches a quorum).
    async fn converge(&mut self) {
        let running = self.running();
        let quorum = running.len() > self.nodes.len() / 2;
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        for &id in &running {
            let http = self.node(id).http;
            loop {
                let seen = if !quorum || crate::cli::dev::http_status(http, "/readyz").await == Some(200) {
                    match self.locate(id, self.probe_actor, "probe").await {
                        Ok(located) if located.live_members == running => break,
                        Ok(located) => format!("it sees {:?} alive", located.live_members),
                        Err(e) => e,
                    }
                } else {
                    "it is not ready".to_string()
                };
                if let Some(node) = &mut self.node_mut(id).running
                    && let Ok(outcome) = node.exited.try_recv()
                {
                    panic!("node {id} ended while the cluster waited for it: {outcome:?}");
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id} did not see nodes {running:?} alive within {CONVERGE_TIMEOUT:?}: {seen}"
                );
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        }
    }

    async fn locate(
        &self,
        via: u32,
        actor: &str,
        key: &str,
    ) -> Result<mortar_proto::v1::LocateResponse, String> {
        let mut admin = ActorAdminClient::new(self.node(via).channel.clone());
        let request = LocateRequest { actor: actor.to_string(), key: key.to_string() };
        match tokio::time::timeout(PROBE_TIMEOUT, admin.locate(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(format!("node {via} answered {:?}: {}", status.code(), status.message())),
            Err(_) => Err(format!("node {via} did not answer within {PROBE_TIMEOUT:?}")),
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(running) = node.running.take() {
                let _ = running.kill.send(());
            }
        }
        tracing::debug!(dir = %self.dir.path().display(), "test cluster dropped: its nodes are killed");
    }
}

/// `count` loopback addresses whose port is free for TCP and UDP (gossip binds the gRPC port
/// number) right now: bound to port 0, then released together.
fn free_loopback_addresses(count: usize) -> Vec<SocketAddr> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count * PORT_ATTEMPTS_PER_ADDRESS {
        if held.len() == count {
            break;
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
        let address = tcp.local_addr().expect("read a bound address");
        if let Ok(udp) = std::net::UdpSocket::bind(address) {
            held.push((address, tcp, udp));
        }
    }
    assert_eq!(held.len(), count, "no {count} loopback ports free for both TCP and UDP");
    held.into_iter().map(|(address, _, _)| address).collect()
}

#[cfg(test)]
#[path = "testing_test.rs"]
mod tests;
