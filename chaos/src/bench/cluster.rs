//! Local clusters for `mortar-chaos bench compare`: three `mortar node` processes or three etcd members
//! on loopback, each with its own data directory and log, durable as configured by default
//! (fsync on). [`Cluster::stop`] sends SIGTERM, then SIGKILL after [`STOP_GRACE`]; a member
//! still running when dropped is killed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt as _;

use mortar_node::bench::target::CONNECT_TIMEOUT;
use mortar_node::bench::workload::Op;
use mortar_node::bench::{Connection as _, Target};

use super::metrics::{self, Sample};
use super::target::LabConnection;

/// Members of each benchmark cluster.
pub const MEMBERS: usize = 3;
/// Bound on every member answering a write after it is started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long members have to exit after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause between readiness and exit checks.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of a member's log shown when it fails.
const LOG_TAIL_LINES: usize = 15;

/// One server process.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    /// Where clients connect.
    pub client: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// Set until the process has been reaped.
    child: Option<Child>,
}

impl Member {
    fn spawn(&mut self, command: &mut Command) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("create {}", self.dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().with_context(|| format!("open {}", self.log.display()))?)
            .stderr(log)
            // Own process group: Ctrl-C reaches only the benchmark, which stops members in order.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {:?} for {}", command.get_program(), self.name))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An error naming the member and showing the end of its log, if it has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else { anyhow::bail!("{} is not running", self.name) };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            anyhow::bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        match mortar_node::cli::dev::log_tail(&self.log, LOG_TAIL_LINES) {
            Ok(lines) => lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"),
            Err(e) => format!("  (cannot read the log: {e})"),
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // ESRCH: it exited and has not been reaped yet; nothing to do.
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// True once the process has exited (and is reaped).
    fn reap(&mut self) -> bool {
        match &mut self.child {
            None => true,
            Some(child) => {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    self.child = None;
                }
                self.child.is_none()
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cluster of [`MEMBERS`] processes of one system.
#[derive(Debug)]
pub struct Cluster {
    pub target: Target,
    pub members: Vec<Member>,
}

/// `count` loopback ports that were free a moment ago.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("find free loopback ports")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))
}

impl Cluster {
    /// Starts three `mortar node` processes of `bin` with data under `root`/mortar-<i>.
    pub fn spawn_mortar(bin: &Path, root: &Path) -> anyhow::Result<Cluster> {
        let ports = free_ports(2 * MEMBERS)?;
        let mut members: Vec<Member> = (0..MEMBERS)
            .map(|i| {
                let dir = root.join(format!("mortar-{}", i + 1));
                Member {
                    name: format!("mortar node {}", i + 1),
                    client: loopback(ports[2 * i]),
                    metrics: loopback(ports[2 * i + 1]),
                    log: dir.join("node.log"),
                    dir,
                    child: None,
                }
            })
            .collect();
        let initial_cluster: Vec<String> =
            members.iter().enumerate().map(|(i, m)| format!("{}={}", i + 1, m.client)).collect();
        let initial_cluster = initial_cluster.join(",");
        for (i, member) in members.iter_mut().enumerate() {
            let mut command = Command::new(bin);
            command
                .arg("node")
                .args(["--id", &(i + 1).to_string()])
                .args(["--listen", &member.client.to_string(), "--http", &member.metrics.to_string()])
                .arg("--data-dir")
                .arg(&member.dir)
                .args(["--initial-cluster", &initial_cluster])
                .env("MORTAR_LOG", "warn");
            member.spawn(&mut command)?;
        }
        Ok(Cluster { target: Target::Mortar, members })
    }

    /// Starts three etcd members of `bin` with data under `root`/etcd-<i>: default settings (a
    /// WAL fsync per Raft batch), loopback URLs, a fresh cluster.
    pub fn spawn_etcd(bin: &Path, root: &Path) -> anyhow::Result<Cluster> {
        let ports = free_ports(2 * MEMBERS)?;
        let mut members: Vec<Member> = (0..MEMBERS)
            .map(|i| {
                let dir = root.join(format!("etcd-{}", i + 1));
                let client = loopback(ports[2 * i]);
                Member {
                    name: format!("etcd member {}", i + 1),
                    client,
                    metrics: client,
                    log: root.join(format!("etcd-{}.log", i + 1)),
                    dir,
                    child: None,
                }
            })
            .collect();
        let peer = |i: usize| format!("http://{}", loopback(ports[2 * i + 1]));
        let initial_cluster: Vec<String> =
            (0..MEMBERS).map(|i| format!("bench{}={}", i + 1, peer(i))).collect();
        let initial_cluster = initial_cluster.join(",");
        let token = format!("mortar-bench-{}", std::process::id());
        for (i, member) in members.iter_mut().enumerate() {
            let client_url = format!("http://{}", member.client);
            let mut command = Command::new(bin);
            command
                .args(["--name", &format!("bench{}", i + 1)])
                .arg("--data-dir")
                .arg(&member.dir)
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer(i), "--initial-advertise-peer-urls", &peer(i)])
                .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]);
            member.spawn(&mut command).map_err(|e| {
                e.context("is etcd installed? `apt-get install etcd-server`, or pass --etcd-bin <path>")
            })?;
        }
        Ok(Cluster { target: Target::Etcd, members })
    }

    /// Waits until every member answers a write, or fails with the log of one that exited.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut ready = vec![false; self.members.len()];
        let mut last_error = String::new();
        while ready.iter().any(|r| !r) {
            for (i, member) in self.members.iter_mut().enumerate() {
                member.check_running()?;
                if !ready[i] {
                    match probe(self.target, member.client).await {
                        Ok(()) => ready[i] = true,
                        Err(e) => last_error = format!("{}: {e:#}", member.name),
                    }
                }
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the {} cluster did not answer writes within {} s ({last_error}); logs in {}",
                    self.target,
                    READY_TIMEOUT.as_secs(),
                    self.members[0].log.parent().map_or(String::new(), |p| p.display().to_string())
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// `host:port` of every member, for `bench kv --endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.to_string()).collect()
    }

    /// Counters and CPU time of every member, summed; fails if a member has exited.
    pub async fn sample(&mut self) -> anyhow::Result<Sample> {
        let mut total = Sample::default();
        for member in &mut self.members {
            member.check_running()?;
            let text = metrics::http_get(member.metrics, "/metrics").await?;
            let mut sample = match self.target {
                Target::Mortar => Sample::from_mortar(&text),
                Target::Etcd => Sample::from_etcd(&text),
            };
            sample.cpu_seconds = metrics::cpu_seconds(member.pid().expect("a running member has a pid"))?;
            total = total + sample;
        }
        Ok(total)
    }

    /// SIGTERM to every member, SIGKILL to those still running after [`STOP_GRACE`]; returns
    /// when all have been reaped.
    pub async fn stop(&mut self) {
        for (signal, wait) in [(Signal::SIGTERM, STOP_GRACE), (Signal::SIGKILL, STOP_GRACE)] {
            for member in &self.members {
                member.signal(signal);
            }
            let deadline = Instant::now() + wait;
            while !self.members.iter_mut().all(Member::reap) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.members.iter_mut().all(Member::reap) {
                return;
            }
            if signal == Signal::SIGTERM {
                for member in self.members.iter().filter(|m| m.child.is_some()) {
                    eprintln!(
                        "{} did not stop within {} s of SIGTERM; killing it",
                        member.name,
                        STOP_GRACE.as_secs()
                    );
                }
            }
        }
    }
}

/// One write through `endpoint`.
async fn probe(target: Target, endpoint: SocketAddr) -> anyhow::Result<()> {
    let mut connection = LabConnection::open(target, &endpoint.to_string(), &Default::default()).await?;
    let put = Op::Put(Bytes::from_static(b"bench/ready"));
    match tokio::time::timeout(CONNECT_TIMEOUT, connection.send(&put, &Bytes::from_static(b"1"))).await {
        Ok(outcome) => outcome.map_err(|e| anyhow::anyhow!("{e}")),
        Err(_) => anyhow::bail!("no answer to a write within {CONNECT_TIMEOUT:?}"),
    }
}
