//! The processes of a run: one `mortar node` and one delay proxy in every node namespace, and the
//! client worker in the client namespace, each started with `ip netns exec` (which execs, so the
//! child's pid is the process's own) in a process group of its own (a Ctrl-C in the terminal
//! reaches only the runner, which then stops everything in order). Every process is ended by its
//! pid; dropping [`Procs`] kills whatever still runs.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::topology::{CLIENT_NS, NodeId, Topology};

/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a killed process may take to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(5);
/// How long gdb may take to print a node's thread stacks.
const STACKS_WAIT: Duration = Duration::from_secs(60);

/// Where the files of a run go.
#[derive(Clone, Debug)]
pub struct Paths {
    pub run_dir: PathBuf,
}

impl Paths {
    pub fn node_log(&self, node: NodeId) -> PathBuf {
        self.run_dir.join("logs").join(format!("n{node}.log"))
    }

    pub fn proxy_log(&self, node: NodeId) -> PathBuf {
        self.run_dir.join("logs").join(format!("proxy-n{node}.log"))
    }

    pub fn stacks(&self, node: NodeId) -> PathBuf {
        self.run_dir.join("logs").join(format!("n{node}-stacks.txt"))
    }

    pub fn metrics(&self, node: NodeId) -> PathBuf {
        self.run_dir.join("logs").join(format!("n{node}-metrics.txt"))
    }

    pub fn client_log(&self) -> PathBuf {
        self.run_dir.join("logs").join("client.log")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.run_dir.join("data")
    }

    pub fn node_data(&self, node: NodeId) -> PathBuf {
        self.data_dir().join(format!("n{node}"))
    }

    /// The run's gossip secret, which every node is given: gossip runs authenticated, as in
    /// production.
    pub fn gossip_key(&self) -> PathBuf {
        self.run_dir.join("gossip.key")
    }

    /// The run's client token (the worker's) and admin token (the nemesis' admin commands):
    /// every node asks for them, as a production cluster would.
    pub fn token(&self, which: &str) -> PathBuf {
        self.run_dir.join(format!("{which}.token"))
    }

    /// The run's TLS files: `ca.pem` (nodes' --tls-ca, clients' MORTAR_CA), and `node.pem` /
    /// `node.key`, one certificate naming every slot's addresses (nodes serve and dial with TLS,
    /// as in production).
    pub fn tls(&self, file: &str) -> PathBuf {
        self.run_dir.join("tls").join(file)
    }
}

/// Writes the run's CA and node certificate (see [`Paths::tls`]) unless they exist: a run's
/// restarts and replacements keep them.
fn ensure_tls(paths: &Paths, topology: &Topology) -> anyhow::Result<()> {
    if paths.tls("node.key").exists() {
        return Ok(());
    }
    let dir = paths.tls("");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let ca = mortar_node::tls::generate_ca(7).context("create the run's CA")?;
    let hosts: Vec<String> = topology
        .ids()
        .flat_map(|n| [topology.grpc(n).ip().to_string(), topology.proxy(n).ip().to_string()])
        .collect();
    let (cert, key) =
        mortar_node::tls::generate_node(&ca, &hosts, 7).context("create the run's node certificate")?;
    for (file, text) in [("ca.pem", &ca.ca_cert), ("node.pem", &cert), ("node.key", &key)] {
        std::fs::write(paths.tls(file), text)
            .with_context(|| format!("write {}", paths.tls(file).display()))?;
    }
    Ok(())
}

/// Hard-links the `mortar` binary into the run directory and returns the link, so that every
/// start and restart of the run uses the same build even when the original is rebuilt meanwhile
/// (cargo replaces the file; the link keeps the old one), and a failed run keeps the binary that
/// failed. Falls back to the original path when a link is impossible (another file system).
pub fn pin_binary(source: &Path, run_dir: &Path) -> PathBuf {
    let dir = run_dir.join("bin");
    let link = dir.join("mortar");
    let linked = std::fs::create_dir_all(&dir).and_then(|()| std::fs::hard_link(source, &link));
    match linked {
        Ok(()) => link,
        Err(e) => {
            tracing::warn!(
                source = %source.display(),
                error = %e,
                "cannot link the mortar binary into the run directory; a rebuild during the run would change it"
            );
            source.to_path_buf()
        }
    }
}

/// What the runner knows about one node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    /// Killed by the nemesis.
    Killed,
    /// Exited on its own: a crash.
    Exited,
}

struct NodeProc {
    child: Option<Child>,
    state: NodeState,
    starts: u32,
}

struct ProxyProc {
    child: Child,
    control: Option<ChildStdin>,
}

/// How the nodes are started.
#[derive(Clone, Debug)]
pub struct NodeLaunch {
    pub mortar_bin: PathBuf,
    pub request_timeout_ms: u64,
    /// `MORTAR_LOG` for the nodes.
    pub log_filter: String,
}

pub struct Procs {
    topology: Topology,
    paths: Paths,
    launch: NodeLaunch,
    self_bin: PathBuf,
    nodes: BTreeMap<NodeId, NodeProc>,
    proxies: BTreeMap<NodeId, ProxyProc>,
    worker: Option<Child>,
    /// Slots whose node joined the running cluster (the membership nemesis): they start with
    /// `--join` through the slot named here, not with `--id`, and with `--replace` when the
    /// node id named here died with its disk.
    joined: BTreeMap<NodeId, (NodeId, Option<u32>)>,
    /// Data directories set aside so far (a removed or replaced node's), to name the next one.
    retired_dirs: u32,
}

/// Most time one `mortar admin` command of the membership nemesis may take.
const ADMIN_WAIT: Duration = Duration::from_secs(30);

/// Writes 32 random bytes, hex-encoded, to `path` (a gossip secret or a token) unless the run
/// has it already.
fn ensure_secret(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut secret = [0u8; 32];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut secret)
        .context("read a secret from /dev/urandom")?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, hex).with_context(|| format!("write {}", path.display()))
}

fn read_secret(path: &Path) -> anyhow::Result<String> {
    ensure_secret(path)?;
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open log {}", path.display()))
}

fn in_namespace(namespace: &str, program: &Path) -> Command {
    let mut command = Command::new("ip");
    command.arg("netns").arg("exec").arg(namespace).arg(program);
    command.process_group(0).kill_on_drop(true);
    command
}

fn signal(child: &Child, signal: Signal) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        kill(Pid::from_raw(pid as i32), signal).with_context(|| format!("send {signal} to pid {pid}"))?;
    }
    Ok(())
}

/// Saves the body of `GET url` to `path` with `curl`, a command that runs curl (`curl` itself, or
/// curl inside a namespace); an HTTP error status or no answer within 3 s is an error.
pub async fn fetch_to_file(mut curl: Command, url: &str, path: &Path) -> anyhow::Result<()> {
    curl.args(["-sS", "--fail", "-m", "3", "-o"]).arg(path).arg(url).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(STACKS_WAIT, curl.output())
        .await
        .context("curl did not finish in time")?
        .context("run curl (install it to record the nodes' metrics)")?;
    anyhow::ensure!(
        output.status.success(),
        "curl {url} exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Writes every thread's stack of process `pid` to `path` with gdb, attached for a moment: the
/// process goes on afterwards.
pub async fn write_stacks(pid: u32, path: &Path) -> anyhow::Result<()> {
    let out = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut gdb = Command::new("gdb");
    gdb.args(["-p", &pid.to_string(), "-batch", "-nx", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    let mut child = gdb.spawn().context("start gdb (install it to record a stuck node's stacks)")?;
    match tokio::time::timeout(STACKS_WAIT, child.wait()).await {
        Ok(status) => {
            let status = status.context("wait for gdb")?;
            anyhow::ensure!(status.success(), "gdb exited with {status}; see {}", path.display());
            // gdb exits 0 also when it could not attach.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            anyhow::ensure!(
                text.lines().any(|l| l.starts_with("#0")),
                "gdb printed no stack; see {}",
                path.display()
            );
            Ok(())
        }
        Err(_) => {
            let _ = signal(&child, Signal::SIGKILL);
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
            // A gdb killed while attached leaves the process stopped: let it run on.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            anyhow::bail!("gdb did not finish within {} s", STACKS_WAIT.as_secs())
        }
    }
}

impl Procs {
    pub fn new(topology: Topology, paths: Paths, launch: NodeLaunch, self_bin: PathBuf) -> Self {
        Procs {
            topology,
            paths,
            launch,
            self_bin,
            nodes: BTreeMap::new(),
            proxies: BTreeMap::new(),
            worker: None,
            joined: BTreeMap::new(),
            retired_dirs: 0,
        }
    }

    /// Runs `mortar admin <args>` against slot `via`'s node, from inside its namespace: stdout,
    /// or an error with the command's stderr.
    async fn admin(&self, via: NodeId, args: &[&str]) -> anyhow::Result<Result<String, String>> {
        let token = read_secret(&self.paths.token("admin"))?;
        let mut command = in_namespace(&self.topology.namespace(via), &self.launch.mortar_bin);
        command
            .arg("admin")
            .args(args)
            .env("MORTAR_TOKEN", token)
            .env("MORTAR_CA", self.paths.tls("ca.pem"))
            .args(["--endpoint", &self.topology.grpc(via).to_string(), "--timeout-ms", "20000"])
            .stdin(Stdio::null());
        command.kill_on_drop(true);
        // Under faults a command may not finish (no control-plane quorum, say): its outcome is
        // unknown, which the runner treats as a refusal (a removal that went through anyway is
        // noticed when the node stops by itself).
        let Ok(output) = tokio::time::timeout(ADMIN_WAIT, command.output()).await else {
            return Ok(Err(format!(
                "mortar admin {args:?} did not finish within {} s",
                ADMIN_WAIT.as_secs()
            )));
        };
        let output = output.context("run mortar admin")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Ok(if output.status.success() { Ok(stdout) } else { Err(stderr) })
    }

    /// The id of the live member at slot `node`'s address, as slot `via`'s node lists the
    /// directory (a slot that joined again has a new id).
    pub async fn member_id(&self, node: NodeId, via: NodeId) -> anyhow::Result<Result<u32, String>> {
        let listing = match self.admin(via, &["members", "--json"]).await? {
            Ok(listing) => listing,
            Err(e) => return Ok(Err(e)),
        };
        let json: serde_json::Value =
            serde_json::from_str(&listing).with_context(|| format!("members --json printed {listing:?}"))?;
        let address = self.topology.proxy(node).to_string();
        let live = ["joining", "active", "draining"];
        let id = json["members"].as_array().into_iter().flatten().find_map(|m| {
            let here = m["address"].as_str() == Some(address.as_str());
            let alive = m["state"].as_str().is_some_and(|s| live.contains(&s));
            (here && alive).then(|| m["id"].as_u64()).flatten()
        });
        Ok(id.map(|id| id as u32).ok_or_else(|| format!("no live member at {address} in {listing}")))
    }

    /// Removes slot `node`'s node from the replica group through slot `via`: the command's
    /// output, or why it was refused.
    pub async fn remove_member(&self, node: NodeId, via: NodeId) -> anyhow::Result<Result<String, String>> {
        self.member_command(node, via, "remove").await
    }

    /// `mortar admin <verb> <id of slot node's node>` through slot `via` (drain, undrain,
    /// remove): the command's output, or why it was refused.
    pub async fn member_command(
        &self,
        node: NodeId,
        via: NodeId,
        verb: &str,
    ) -> anyhow::Result<Result<String, String>> {
        let id = match self.member_id(node, via).await? {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        self.admin(via, &[verb, &id.to_string()]).await
    }

    /// Waits up to `wait` for slot `node`'s node to exit by itself (a removed node does), then
    /// kills it if it has not; sets its data directory aside (kept for the report) and marks the
    /// slot to join again through slot `via` at its next start.
    pub async fn retire(
        &mut self,
        node: NodeId,
        via: NodeId,
        replaces: Option<u32>,
        wait: Duration,
    ) -> anyhow::Result<()> {
        let proc = self.nodes.get_mut(&node).with_context(|| format!("node {node} was never started"))?;
        if let Some(mut child) = proc.child.take()
            && tokio::time::timeout(wait, child.wait()).await.is_err()
        {
            signal(&child, Signal::SIGKILL)?;
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
        }
        proc.state = NodeState::Killed;
        self.retired_dirs += 1;
        let aside = self.paths.data_dir().join(format!("n{node}-removed-{}", self.retired_dirs));
        let data = self.paths.node_data(node);
        if data.exists() {
            std::fs::rename(&data, &aside)
                .with_context(|| format!("set {} aside as {}", data.display(), aside.display()))?;
        }
        self.joined.insert(node, (via, replaces));
        Ok(())
    }

    pub fn start_proxy(&mut self, node: NodeId) -> anyhow::Result<()> {
        let log = append(&self.paths.proxy_log(node))?;
        let mut child = in_namespace(&self.topology.namespace(node), &self.self_bin)
            .arg("proxy")
            .arg("--listen")
            .arg(self.topology.proxy(node).to_string())
            .arg("--target")
            .arg(self.topology.grpc(node).to_string())
            .env("MORTAR_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start the proxy of node {node}"))?;
        let control = child.stdin.take();
        self.proxies.insert(node, ProxyProc { child, control });
        Ok(())
    }

    /// Starts (or restarts, on the same data directory) node `node`; `note` goes in its log.
    pub fn start_node(&mut self, node: NodeId, note: &str) -> anyhow::Result<()> {
        let key = self.paths.gossip_key();
        for secret in [key.clone(), self.paths.token("client"), self.paths.token("admin")] {
            ensure_secret(&secret)?;
        }
        ensure_tls(&self.paths, &self.topology)?;
        let path = self.paths.node_log(node);
        let mut log = append(&path)?;
        let starts = self.nodes.get(&node).map_or(0, |n| n.starts) + 1;
        writeln!(log, "=== mortar-chaos: start {starts} of node {node}: {note} ===")?;
        let topology = self.topology;
        let mut command = in_namespace(&topology.namespace(node), &self.launch.mortar_bin);
        command.arg("node");
        match self.joined.get(&node) {
            // A slot whose node was removed: a new node with a new id, at the same addresses.
            Some(&(via, replaces)) => {
                command
                    .args(["--join", &topology.proxy(via).to_string()])
                    .args(["--advertise", &topology.proxy(node).to_string()]);
                if let Some(dead) = replaces {
                    command.args(["--replace", &dead.to_string()]);
                }
                &mut command
            }
            None => command
                .args(["--id", &node.to_string()])
                .args(["--initial-cluster", &topology.initial_cluster()]),
        };
        let child = command
            .args(["--listen", &topology.grpc(node).to_string()])
            .args(["--http", &topology.http(node).to_string()])
            .arg("--data-dir")
            .arg(self.paths.node_data(node))
            .args(["--request-timeout-ms", &self.launch.request_timeout_ms.to_string()])
            .env("MORTAR_LOG", &self.launch.log_filter)
            // Gossip (UDP) goes through the peers' delay proxies too: each node binds its own
            // address and advertises its proxy's. Environment variables rather than flags, which
            // older builds refuse (they ignore the advertised address and gossip directly).
            .env("MORTAR_GOSSIP_SEEDS", topology.gossip_seeds(node))
            .env("MORTAR_GOSSIP_ADVERTISE", topology.gossip_advertise(node))
            .env("MORTAR_GOSSIP_KEY_FILE", &key)
            .env("MORTAR_AUTH_TOKEN_FILE", self.paths.token("client"))
            .env("MORTAR_ADMIN_TOKEN_FILE", self.paths.token("admin"))
            .env("MORTAR_TLS_CERT", self.paths.tls("node.pem"))
            .env("MORTAR_TLS_KEY", self.paths.tls("node.key"))
            .env("MORTAR_TLS_CA", self.paths.tls("ca.pem"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start node {node} with {}", self.launch.mortar_bin.display()))?;
        self.nodes.insert(node, NodeProc { child: Some(child), state: NodeState::Running, starts });
        Ok(())
    }

    /// Where node `node` logs.
    pub fn node_log(&self, node: NodeId) -> PathBuf {
        self.paths.node_log(node)
    }

    pub fn state(&self, node: NodeId) -> Option<NodeState> {
        self.nodes.get(&node).map(|n| n.state)
    }

    /// SIGKILL, and wait for the process to go.
    pub async fn kill_node(&mut self, node: NodeId) -> anyhow::Result<()> {
        let proc = self.nodes.get_mut(&node).with_context(|| format!("node {node} was never started"))?;
        if let Some(mut child) = proc.child.take() {
            signal(&child, Signal::SIGKILL)?;
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
        }
        proc.state = NodeState::Killed;
        Ok(())
    }

    pub fn pause_node(&mut self, node: NodeId) -> anyhow::Result<()> {
        let proc = self.nodes.get_mut(&node).with_context(|| format!("node {node} was never started"))?;
        if let (Some(child), NodeState::Running) = (&proc.child, proc.state) {
            signal(child, Signal::SIGSTOP)?;
            proc.state = NodeState::Paused;
        }
        Ok(())
    }

    pub fn resume_node(&mut self, node: NodeId) -> anyhow::Result<()> {
        let proc = self.nodes.get_mut(&node).with_context(|| format!("node {node} was never started"))?;
        if let (Some(child), NodeState::Paused) = (&proc.child, proc.state) {
            signal(child, Signal::SIGCONT)?;
            proc.state = NodeState::Running;
        }
        Ok(())
    }

    /// Writes every thread's stack of node `node`'s process to `logs/n<node>-stacks.txt` (see
    /// [`write_stacks`]), so that a node that stopped serving shows where it waits.
    pub async fn capture_stacks(&self, node: NodeId) -> anyhow::Result<PathBuf> {
        let pid = self
            .nodes
            .get(&node)
            .and_then(|n| n.child.as_ref())
            .and_then(Child::id)
            .with_context(|| format!("node {node} has no running process"))?;
        let path = self.paths.stacks(node);
        write_stacks(pid, &path).await?;
        Ok(path)
    }

    /// Saves what node `node` serves on `/metrics` (fetched with curl inside its namespace).
    pub async fn capture_metrics(&self, node: NodeId) -> anyhow::Result<PathBuf> {
        let path = self.paths.metrics(node);
        let url = format!("http://{}/metrics", self.topology.http(node));
        fetch_to_file(in_namespace(&self.topology.namespace(node), Path::new("curl")), &url, &path).await?;
        Ok(path)
    }

    /// Nodes that exited without being killed, with their exit status, since the last call.
    pub fn reap_exited(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        for (&node, proc) in &mut self.nodes {
            if let Some(child) = &mut proc.child
                && let Ok(Some(status)) = child.try_wait()
            {
                proc.child = None;
                proc.state = NodeState::Exited;
                exited.push((node, status));
            }
        }
        exited
    }

    /// Sets every proxy's delay.
    pub async fn set_delay(&mut self, delay_ms: u64) -> anyhow::Result<()> {
        for (node, proxy) in &mut self.proxies {
            let control =
                proxy.control.as_mut().with_context(|| format!("proxy of node {node} is stopped"))?;
            control.write_all(format!("delay {delay_ms}\n").as_bytes()).await.with_context(|| {
                format!("set the delay of node {node}'s proxy (did it exit? see its log)")
            })?;
            control.flush().await?;
        }
        Ok(())
    }

    /// Proxies that exited (they never should while the run goes on).
    pub fn exited_proxies(&mut self) -> Vec<NodeId> {
        self.proxies
            .iter_mut()
            .filter_map(|(&n, p)| matches!(p.child.try_wait(), Ok(Some(_))).then_some(n))
            .collect()
    }

    /// Starts the client worker; returns its standard output.
    pub fn start_worker(&mut self, args: &[String]) -> anyhow::Result<ChildStdout> {
        let log = append(&self.paths.client_log())?;
        let token = read_secret(&self.paths.token("client"))?;
        let mut child = in_namespace(CLIENT_NS, &self.self_bin)
            .arg("client-worker")
            .env("MORTAR_TOKEN", token)
            .env("MORTAR_CA", self.paths.tls("ca.pem"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("start the client worker")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        self.worker = Some(child);
        Ok(stdout)
    }

    /// Tells the worker to stop (it finishes the operations in flight).
    pub async fn stop_worker(&mut self) {
        if let Some(worker) = &mut self.worker
            && let Some(mut stdin) = worker.stdin.take()
        {
            let _ = stdin.write_all(b"stop\n").await;
            drop(stdin);
        }
    }

    /// Waits up to `wait` for the worker to exit, then kills it.
    pub async fn reap_worker(&mut self, wait: Duration) {
        if let Some(mut worker) = self.worker.take()
            && tokio::time::timeout(wait, worker.wait()).await.is_err()
        {
            tracing::warn!("client worker did not stop in time; killing it");
            let _ = signal(&worker, Signal::SIGKILL);
            let _ = tokio::time::timeout(REAP_WAIT, worker.wait()).await;
        }
    }

    /// Stops everything: the worker, the nodes (SIGTERM, then SIGKILL after a grace period), the
    /// proxies (their control input closes).
    pub async fn stop_all(&mut self) {
        self.stop_worker().await;
        self.reap_worker(Duration::from_secs(5)).await;
        for proc in self.nodes.values_mut() {
            if let Some(child) = &proc.child {
                let _ = signal(child, Signal::SIGCONT);
                let _ = signal(child, Signal::SIGTERM);
            }
        }
        for (node, proc) in &mut self.nodes {
            if let Some(mut child) = proc.child.take()
                && tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err()
            {
                tracing::warn!(node, "node did not stop after SIGTERM; killing it");
                let _ = signal(&child, Signal::SIGKILL);
                let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
            }
        }
        for proxy in self.proxies.values_mut() {
            proxy.control = None;
        }
        for (node, mut proxy) in std::mem::take(&mut self.proxies) {
            if tokio::time::timeout(Duration::from_secs(2), proxy.child.wait()).await.is_err() {
                tracing::warn!(node, "proxy did not stop; killing it");
                let _ = signal(&proxy.child, Signal::SIGKILL);
                let _ = tokio::time::timeout(REAP_WAIT, proxy.child.wait()).await;
            }
        }
    }
}

impl Drop for Procs {
    /// On an error or a panic: kill whatever still runs, by pid (a paused process gets SIGCONT
    /// first so that nothing stays stopped).
    fn drop(&mut self) {
        let children = self
            .nodes
            .values()
            .filter_map(|n| n.child.as_ref())
            .chain(self.proxies.values().map(|p| &p.child))
            .chain(self.worker.as_ref());
        for child in children {
            let _ = signal(child, Signal::SIGCONT);
            let _ = signal(child, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stacks of a live process are written, and the process runs on afterwards.
    #[tokio::test]
    async fn stacks_of_a_running_process_are_written_and_it_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = Command::new("sleep").arg("30").kill_on_drop(true).spawn().unwrap();
        let pid = sleeper.id().unwrap();
        let path = dir.path().join("stacks.txt");
        write_stacks(pid, &path).await.unwrap();
        let stacks = std::fs::read_to_string(&path).unwrap();
        assert!(stacks.contains("#0"), "no frame in the stacks:\n{stacks}");
        assert!(sleeper.try_wait().unwrap().is_none(), "the process ended");
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = state.rsplit(')').next().unwrap().split_whitespace().next().unwrap().to_string();
        assert_ne!(state, "T", "the process was left stopped");
        sleeper.kill().await.unwrap();
    }

    /// A process that is gone gives an error, not an empty file taken for stacks.
    #[tokio::test]
    async fn stacks_of_a_process_that_is_gone_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut done = Command::new("true").spawn().unwrap();
        let pid = done.id().unwrap();
        done.wait().await.unwrap();
        assert!(write_stacks(pid, &dir.path().join("stacks.txt")).await.is_err());
    }

    /// A server that answers every connection with `response` and closes it.
    async fn answering(response: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        address
    }

    /// The body is saved (curl run through `env`, as `ip netns exec` runs it); an error status or
    /// nobody listening is an error.
    #[tokio::test]
    async fn a_fetched_body_is_saved_and_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.txt");
        let ok =
            answering("HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nmortar_x 1\nok\n")
                .await;
        let mut through_env = Command::new("env");
        through_env.arg("curl");
        fetch_to_file(through_env, &format!("http://{ok}/metrics"), &path).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mortar_x 1\nok\n");
        let missing =
            answering("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        let error = fetch_to_file(Command::new("curl"), &format!("http://{missing}/metrics"), &path)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("404"), "{error:#}");
        // Bound, never listening: refused, and held so no other test's listener takes the port.
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed = reserved.local_addr().unwrap();
        assert!(
            fetch_to_file(Command::new("curl"), &format!("http://{closed}/metrics"), &path).await.is_err()
        );
    }
}
