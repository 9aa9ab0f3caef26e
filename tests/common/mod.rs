//! Harness for end-to-end tests: real `mortar node` processes on loopback, gRPC clients with
//! timeouts, and the `mortar` CLI.
//!
//! A [`Cluster`] kills every process it started (by PID) and removes its temporary directory when
//! dropped, also when a test panics; on a panic it first prints the end of every node's log.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mortar_proto::v1::admin_client::AdminClient;
use mortar_proto::v1::kv_client::KvClient;
use mortar_proto::v1::{
    CasRequest, CasResponse, DeleteRequest, GetRequest, PutRequest, StatusRequest, StatusResponse,
    cas_request,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The binary under test.
pub const MORTAR: &str = env!("CARGO_BIN_EXE_mortar");
/// Nodes of every test cluster.
pub const NODES: usize = 3;
/// `--request-timeout-ms` of every test node.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
/// Bound on one client call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on connecting to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on nodes becoming ready after a start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a node exiting after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bound on one CLI run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each node's log printed when a test fails.
pub const LOG_TAIL_LINES: usize = 40;

/// Cluster tests run one at a time: three RocksDB-backed processes per test are plenty on a small
/// machine, and timing-sensitive assertions (Unavailable within the request timeout) need the CPU.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` with an overall time bound.
pub async fn bounded<T>(limit: Duration, test: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(value) => value,
        Err(_) => panic!("test did not finish within {limit:?}"),
    }
}

/// `count` loopback addresses nobody listens on right now (bound to port 0, then released).
pub fn free_addresses(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners.iter().map(|l| l.local_addr().expect("read a bound address")).collect()
}

/// One node of a test cluster (ids are 1-based).
pub struct Node {
    pub id: usize,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// For a node started with `--join`: the member's endpoint and the node it replaces.
    pub join: Option<(String, Option<u32>)>,
    child: Option<Child>,
}

/// A three-node cluster of real processes in a temporary directory.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub initial_cluster: String,
    dir: tempfile::TempDir,
    /// Flags every node gets besides the standard ones.
    extra_args: Vec<String>,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// Allocates ports and directories for three nodes without starting any.
    pub async fn new() -> Cluster {
        Cluster::of_size(NODES).await
    }

    /// Allocates ports and directories for `size` nodes (ids 1..=size) without starting any.
    pub async fn of_size(size: usize) -> Cluster {
        let serial = SERIAL.lock().await;
        let dir = tempfile::Builder::new().prefix("mortar-cluster-").tempdir().expect("create a temp dir");
        let addresses = free_addresses(2 * size);
        let nodes: Vec<Node> = (1..=size)
            .map(|id| Node {
                id,
                grpc: addresses[2 * (id - 1)],
                http: addresses[2 * (id - 1) + 1],
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                join: None,
                child: None,
            })
            .collect();
        let initial_cluster: Vec<String> = nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect();
        Cluster {
            nodes,
            initial_cluster: initial_cluster.join(","),
            dir,
            extra_args: Vec::new(),
            _serial: serial,
        }
    }

    /// Starts all three nodes and waits until each is ready.
    pub async fn start() -> Cluster {
        Cluster::start_with(&[]).await
    }

    /// Starts all three nodes, each with `extra_args` too, and waits until each is ready.
    pub async fn start_with(extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::new().await;
        cluster.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        for id in 1..=NODES {
            cluster.start_node(id);
        }
        cluster.wait_ready(&[1, 2, 3]).await;
        cluster
    }

    pub fn node(&self, id: usize) -> &Node {
        &self.nodes[id - 1]
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts node `id` (its output appended to its log) without waiting for it.
    pub fn start_node(&mut self, id: usize) {
        let initial_cluster = self.initial_cluster.clone();
        let extra_args = self.extra_args.clone();
        let node = &mut self.nodes[id - 1];
        assert!(node.child.is_none(), "node {id} is already running");
        std::fs::create_dir_all(&node.data_dir).expect("create a node data dir");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("open a node log");
        let stderr = log.try_clone().expect("clone a log handle");
        let mut command = Command::new(MORTAR);
        command.arg("node");
        match &node.join {
            None => {
                command.args(["--id", &id.to_string()]).args(["--initial-cluster", &initial_cluster]);
            }
            Some((endpoint, replace)) => {
                command.args(["--join", endpoint]);
                if let Some(dead) = replace {
                    command.args(["--replace", &dead.to_string()]);
                }
            }
        }
        command
            .args(["--listen", &node.grpc.to_string()])
            .args(["--http", &node.http.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--request-timeout-ms", &REQUEST_TIMEOUT.as_millis().to_string()])
            .args(&extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        clear_mortar_env(&mut command);
        node.child = Some(command.spawn().expect("spawn mortar node"));
    }

    /// Starts a new node with `--join` through node `via` (replacing node `replace`, if given),
    /// on fresh ports and an empty directory, without waiting for it. Its index here is the id
    /// the control plane assigns when no other node joined meanwhile (ids are never reused).
    pub fn join_node(&mut self, via: usize, replace: Option<u32>) -> usize {
        let addresses = free_addresses(2);
        self.join_node_at(via, replace, addresses[0], addresses[1])
    }

    /// Like `join_node`, but in place of node `dead` (down) at its addresses: a machine rebuilt
    /// after its disk died.
    pub fn replace_node_in_place(&mut self, via: usize, dead: usize) -> usize {
        let (grpc, http) = (self.node(dead).grpc, self.node(dead).http);
        self.join_node_at(via, Some(dead as u32), grpc, http)
    }

    fn join_node_at(
        &mut self,
        via: usize,
        replace: Option<u32>,
        grpc: std::net::SocketAddr,
        http: std::net::SocketAddr,
    ) -> usize {
        let id = self.nodes.len() + 1;
        let endpoint = self.node(via).grpc.to_string();
        self.nodes.push(Node {
            id,
            grpc,
            http,
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            join: Some((endpoint, replace)),
            child: None,
        });
        self.start_node(id);
        id
    }

    /// Waits up to `limit` for node `id` to exit on its own: its exit status, or `None` when it
    /// is still running.
    pub async fn wait_exit(&mut self, id: usize, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let node = &mut self.nodes[id - 1];
            let child = node.child.as_mut().unwrap_or_else(|| panic!("node {id} is not running"));
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill(&mut self, id: usize) {
        let node = &mut self.nodes[id - 1];
        let mut child = node.child.take().unwrap_or_else(|| panic!("node {id} is not running"));
        kill_and_reap(&mut child);
    }

    /// The extra arguments every node started from now on gets (see `start_with`).
    pub fn set_extra_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
    }

    /// Starts node `id` again on the same ports and data directory, and waits until it is ready.
    pub async fn restart(&mut self, id: usize) {
        self.start_node(id);
        self.wait_ready(&[id]).await;
    }

    /// SIGTERMs node `id` and waits up to `grace` for it to exit: its exit status, or `None`
    /// when it was still running (it is then SIGKILLed).
    pub fn terminate(&mut self, id: usize, grace: Duration) -> Option<std::process::ExitStatus> {
        let node = &mut self.nodes[id - 1];
        let mut child = node.child.take().unwrap_or_else(|| panic!("node {id} is not running"));
        let _ = kill(pid_of(&child), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    kill_and_reap(&mut child);
                    return None;
                }
            }
        }
    }

    /// SIGTERMs every running node, waits up to [`STOP_GRACE`], then SIGKILLs what is left.
    pub fn stop_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &node.child {
                let _ = kill(pid_of(child), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) => break,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => {
                            eprintln!("node {} ignored SIGTERM for {STOP_GRACE:?}; killing it", node.id);
                            kill_and_reap(&mut child);
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Node `id`'s peak resident memory so far (`VmHWM`), in bytes, while it runs.
    pub fn peak_rss_bytes(&self, id: usize) -> Option<u64> {
        let child = self.nodes[id - 1].child.as_ref()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Whether node `id`'s process is running (and has not exited on its own).
    pub fn is_running(&mut self, id: usize) -> bool {
        match &mut self.nodes[id - 1].child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until `GET /readyz` answers 200 on each node in `ids`; panics with the logs when one
    /// exits or the bound passes.
    pub async fn wait_ready(&mut self, ids: &[usize]) {
        self.wait_http(ids, "/readyz").await;
    }

    /// Waits until `GET /healthz` answers 200 on each node in `ids`.
    pub async fn wait_healthy(&mut self, ids: &[usize]) {
        self.wait_http(ids, "/healthz").await;
    }

    async fn wait_http(&mut self, ids: &[usize], path: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for &id in ids {
            loop {
                if !self.is_running(id) {
                    panic!("node {id} exited while waiting for {path}:\n{}", self.log_tail(id));
                }
                let status = http_get(self.node(id).http, path).await;
                if matches!(status, Some((200, _))) {
                    break;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "node {id} did not answer {path} with 200 within {READY_TIMEOUT:?} (last answer: \
                         {status:?}):\n{}",
                        self.log_tail(id)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The last lines of node `id`'s log.
    pub fn log_tail(&self, id: usize) -> String {
        let text = std::fs::read(&self.node(id).log).map(|b| String::from_utf8_lossy(&b).into_owned());
        match text {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(LOG_TAIL_LINES);
                let mut out = format!("--- last lines of {}\n", self.node(id).log.display());
                for line in &lines[start..] {
                    out.push_str(line);
                    out.push('\n');
                }
                out
            }
            Err(e) => format!("--- cannot read {}: {e}\n", self.node(id).log.display()),
        }
    }

    /// A gRPC client of node `id` (connects lazily, so a stopped node gives Unavailable).
    pub fn kv(&self, id: usize) -> Kv {
        Kv { channel: channel(self.node(id).grpc) }
    }

    pub fn admin(&self, id: usize) -> AdminClient<Channel> {
        AdminClient::new(channel(self.node(id).grpc))
    }

    /// `Admin.Status` through node `id`, bounded by [`CALL_TIMEOUT`].
    pub async fn status(&self, id: usize) -> Result<StatusResponse, Status> {
        let mut admin = self.admin(id);
        bounded_call(admin.status(StatusRequest {})).await
    }

    /// Sends `signal` to node `id`'s process (SIGSTOP pauses it, SIGCONT resumes it).
    pub fn signal(&self, id: usize, signal: Signal) {
        let child = self.node(id).child.as_ref().unwrap_or_else(|| panic!("node {id} is not running"));
        kill(pid_of(child), signal).unwrap_or_else(|e| panic!("send {signal} to node {id}: {e}"));
    }

    /// A lazily connected channel to node `id`'s gRPC port.
    pub fn channel(&self, id: usize) -> Channel {
        channel(self.node(id).grpc)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in 1..=self.nodes.len() {
                eprintln!("{}", self.log_tail(id));
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                kill_and_reap(&mut child);
            }
        }
        // `dir` (a TempDir) removes every data dir and log when it drops after this.
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"))
}

/// SIGKILL by PID, then reap (so the PID is never signalled again after it could be reused).
fn kill_and_reap(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = kill(pid_of(child), Signal::SIGKILL);
    }
    let _ = child.wait();
}

/// Removes every `MORTAR_*` variable, so the caller's environment cannot change a test.
pub fn clear_mortar_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MORTAR_") {
            command.env_remove(key);
        }
    }
}

fn channel(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a loopback address is a valid URI")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_lazy()
}

/// Awaits a call for at most [`CALL_TIMEOUT`]; a timeout becomes `DeadlineExceeded` (an unknown
/// outcome, never a failure).
pub async fn bounded_call<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!("client gave up after {CALL_TIMEOUT:?}"))),
    }
}

/// A `mortar.v1.Kv` client of one node with bounded calls.
#[derive(Clone)]
pub struct Kv {
    channel: Channel,
}

impl Kv {
    fn client(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), Status> {
        let request = PutRequest { key: key.into(), value: value.into(), ..Default::default() };
        bounded_call(self.client().put(request)).await.map(|_| ())
    }

    /// A put that takes effect at most once per `request_id`.
    pub async fn put_once(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        request_id: &'static str,
    ) -> Result<(), Status> {
        let request = PutRequest {
            key: key.into(),
            value: value.into(),
            request_id: Bytes::from_static(request_id.as_bytes()),
        };
        bounded_call(self.client().put(request)).await.map(|_| ())
    }

    /// `Ok(None)` when the key has no value.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, Status> {
        let response = bounded_call(self.client().get(GetRequest { key: key.into() })).await?;
        Ok(response.found.then_some(response.value))
    }

    /// Whether the key held a value.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool, Status> {
        let response =
            bounded_call(self.client().delete(DeleteRequest { key: key.into(), ..Default::default() }))
                .await?;
        Ok(response.existed)
    }

    /// `expect: None` means "expect absent".
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expect: Option<&'static str>,
        value: impl Into<Bytes>,
    ) -> Result<CasResponse, Status> {
        let expect = match expect {
            Some(old) => cas_request::Expect::ExpectValue(Bytes::from_static(old.as_bytes())),
            None => cas_request::Expect::ExpectAbsent(true),
        };
        let request =
            CasRequest { key: key.into(), expect: Some(expect), value: value.into(), ..Default::default() };
        bounded_call(self.client().cas(request)).await
    }
}

/// Retries `op` while it fails with `Unavailable` or `DeadlineExceeded`, for at most `limit`
/// (only for tests about availability). Returns the last result.
pub async fn retry_unavailable<T, F, Fut>(limit: Duration, mut op: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match op().await {
            Err(status)
                if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

/// `GET http://<address><path>` over a raw socket: `(status, body)`, or `None` without a valid
/// answer within two seconds.
pub async fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten()
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Stdout byte for byte (`stdout` is its lossy UTF-8 text).
    pub stdout_bytes: Vec<u8>,
}

impl CliRun {
    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// How a CLI run's stdin and stdout are connected.
#[derive(Clone, Copy)]
enum CliIo<'a> {
    /// Stdin empty (`/dev/null`), stdout captured.
    Plain,
    /// Stdin holds these bytes, stdout captured.
    Stdin(&'a [u8]),
    /// Stdout is a pipe whose reader has gone before the command writes (`| head -0`).
    StdoutClosed,
}

/// Runs `mortar <args>` with a clean `MORTAR_*` environment plus `env`, bounded by
/// [`CLI_TIMEOUT`] (the process is killed when the bound passes).
pub async fn mortar_cli(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    run_cli(args, env, CliIo::Plain).await
}

/// [`mortar_cli`] with `stdin` on its standard input.
pub async fn mortar_cli_stdin(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> CliRun {
    run_cli(args, env, CliIo::Stdin(stdin)).await
}

/// [`mortar_cli`] with a stdout nobody reads: the pipe's read end is closed before it starts.
pub async fn mortar_cli_stdout_closed(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    run_cli(args, env, CliIo::StdoutClosed).await
}

async fn run_cli(args: &[&str], env: &[(&str, &str)], io: CliIo<'_>) -> CliRun {
    let mut command = Command::new(MORTAR);
    command.args(args);
    clear_mortar_env(&mut command);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut command = tokio::process::Command::from(command);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command.stdin(if matches!(io, CliIo::Stdin(_)) { Stdio::piped() } else { Stdio::null() });
    let run = async {
        let mut child = command.spawn().expect("run the mortar binary");
        if let CliIo::StdoutClosed = io {
            drop(child.stdout.take());
        }
        if let CliIo::Stdin(bytes) = io {
            let mut stdin = child.stdin.take().expect("a piped stdin");
            let bytes = bytes.to_vec();
            // The command may stop reading early (a refused value): a broken pipe is its answer.
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        child.wait_with_output().await.expect("wait for the mortar binary")
    };
    let output = tokio::time::timeout(CLI_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("`mortar {}` did not finish within {CLI_TIMEOUT:?}", args.join(" ")));
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout_bytes: output.stdout,
    }
}

/// A `mortar dev` process of a test: on drop (also when the test panics) it gets SIGTERM, which
/// stops the nodes it started, and is reaped.
pub struct DevProcess {
    pub child: std::process::Child,
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A base port for `mortar dev --nodes 3` whose six gRPC and HTTP ports are free right now.
pub fn free_dev_base_port() -> u16 {
    for base in (20_000..40_000).step_by(997) {
        let ports = [base, base + 1, base + 2, base + 100, base + 101, base + 102];
        if ports.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()) {
            return base;
        }
    }
    panic!("no free ports for mortar dev");
}
