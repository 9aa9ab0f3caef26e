//! The emulated WAN of `mortar-chaos bench wan`: one network namespace per region on a private bridge,
//! user-space delay proxies between the regions (the chaos harness's [`crate::proxy`]), and
//! the threads and processes that run inside a region.
//!
//! | host | namespace | addresses |
//! |---|---|---|
//! | region `r` (0, 1, 2 = a, b, c) | `mwan-<name>` | `10.78.0.<10+r>` on its veth (its servers listen here, its clients connect here); `10.78.0.<30+s>` for every region `s` on `lo` (the proxies towards `s`) |
//! | bridge | `mwan-br` | none: the bridge `mwan-bridge` and the far ends of the veths |
//!
//! Servers name their peers by the proxy addresses `10.78.0.<30+s>` (Mortar's `--initial-cluster`,
//! etcd's advertised peer URLs), which are local in every region: in region `r` a proxy listens
//! there and forwards to region `s`'s own address, holding every chunk for the one-way delay
//! between `r` and `s` in each direction. A connection from `r` to `s` therefore takes one
//! round trip of `2 × delay(r, s)`; a region's proxy towards itself adds nothing (it only keeps
//! the proxy addresses off the bridge). Clients run inside their region and talk to its own
//! address. Only the subnet [`SUBNET`] is used; the root namespace gets a blackhole route for it
//! while the namespaces exist, so nothing sent there from the root namespace leaves the machine.
//!
//! Code runs in a region in two ways: a server as a child process under `ip netns exec` (which
//! execs, so the child's pid is the server's own), and the benchmark's own tasks (proxies,
//! clients, probes) on a thread that entered the namespace ([`in_region`]): every socket is
//! bound to the namespace of the thread that opened it.

use std::ffi::OsString;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::{self, Delay};
use crate::run::lab::command;
use crate::run::netns::{self, Namespaces, RunLock, Subnet};
use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Regions of a run: one member of each 3-member cluster per region.
pub const REGIONS: usize = 3;
pub const REGION_NAMES: [&str; REGIONS] = ["a", "b", "c"];
/// Prefix of every namespace and link this benchmark creates (the chaos harness uses `mch-`).
pub const PREFIX: &str = "mwan-";
/// The only subnet used, inside the namespaces (the chaos harness uses 10.77.0.0/24).
pub const SUBNET: &str = "10.78.0.0/24";
pub const BRIDGE_NS: &str = "mwan-br";
pub const BRIDGE: &str = "mwan-bridge";
/// Mortar's gRPC listener (clients and peers; gossip uses the same number over UDP).
pub const MORTAR_GRPC_PORT: u16 = 7000;
pub const MORTAR_HTTP_PORT: u16 = 7100;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// A TCP echo server in every region, reached through the proxies to time round trips.
pub const ECHO_PORT: u16 = 7900;
/// Ports forwarded by every proxy pair: what servers send each other, and the echo.
pub const PROXIED_PORTS: [u16; 3] = [MORTAR_GRPC_PORT, ETCD_PEER_PORT, ECHO_PORT];
const HOST_ADDR_BASE: u8 = 10;
const PROXY_ADDR_BASE: u8 = 30;
const _: () = assert!(HOST_ADDR_BASE as usize + REGIONS < PROXY_ADDR_BASE as usize);
const _: () = assert!(PROXY_ADDR_BASE as usize + REGIONS < 255);
/// How long servers have to exit after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a server's log shown when it fails.
const LOG_TAIL_LINES: usize = 15;
/// Bytes one echo read takes at a time.
const ECHO_BYTES_MAX: usize = 64;
/// Echo connections served at once.
const ECHO_CONNECTIONS_MAX: usize = 16;

pub fn namespace(region: usize) -> String {
    format!("{PREFIX}{}", REGION_NAMES[region])
}

/// The region's own address: its servers listen here.
pub fn host_addr(region: usize) -> Ipv4Addr {
    assert!(region < REGIONS, "region {region} is not below {REGIONS}");
    Ipv4Addr::new(10, 78, 0, HOST_ADDR_BASE + region as u8)
}

/// Where every region reaches region `region` through its local proxy.
pub fn proxy_addr(region: usize) -> Ipv4Addr {
    assert!(region < REGIONS, "region {region} is not below {REGIONS}");
    Ipv4Addr::new(10, 78, 0, PROXY_ADDR_BASE + region as u8)
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    command("ip", args, None)
}

/// True when `tool` is an executable file in a directory of `PATH`, or a path to one.
fn found(tool: &Path) -> bool {
    if tool.components().count() > 1 {
        return tool.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// Checks the privileges and tools a run needs, saying what to do when one is missing.
pub fn preflight(etcd_bin: Option<&Path>) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("mortar-chaos bench wan creates network namespaces and must run as root (try sudo)");
    }
    if !found(Path::new("ip")) {
        bail!("`ip` is not installed: apt-get install -y iproute2");
    }
    if let Some(etcd) = etcd_bin
        && !found(etcd)
    {
        bail!(
            "etcd is not installed at {} (apt-get install -y etcd-server); pass --etcd-bin <path>, or \
             --targets mortar to run without etcd",
            etcd.display()
        );
    }
    Ok(())
}

/// The names and subnet of the emulated WAN.
const NETWORK: Subnet = Subnet { prefix: PREFIX, cidr: SUBNET };

/// Removes what a killed earlier run left behind (see [`netns::clean_stale`]). Call it holding
/// the lock from [`lock`]. Returns what it removed.
pub fn clean_stale() -> anyhow::Result<Vec<String>> {
    netns::clean_stale(NETWORK)
}

/// Takes the WAN's network for this run: only one run at a time may own it.
pub fn lock() -> anyhow::Result<RunLock> {
    RunLock::acquire("mortar-bench-wan.pid", "mortar", "`mortar-chaos bench wan`")
}

/// The namespaces, veths, bridge and blackhole route; removed again by [`Lab::teardown`] or
/// when dropped.
pub struct Lab {
    namespaces: Namespaces,
}

impl Lab {
    /// Builds the network. On error, what was built is removed (by `Drop`).
    pub fn create() -> anyhow::Result<Lab> {
        // The route first, so that nothing sent to the subnet from the root namespace ever leaves
        // the machine.
        let mut lab = Lab { namespaces: Namespaces::guard(NETWORK)? };
        lab.namespaces.add(BRIDGE_NS)?;
        ip(&["-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])?;
        for (region, name) in REGION_NAMES.iter().enumerate() {
            let namespace = namespace(region);
            lab.namespaces.add(&namespace)?;
            let (inner, outer) = (format!("{PREFIX}v{name}"), format!("{PREFIX}b{name}"));
            ip(&[
                "link", "add", &inner, "netns", &namespace, "type", "veth", "peer", "name", &outer, "netns",
                BRIDGE_NS,
            ])?;
            ip(&["-n", BRIDGE_NS, "link", "set", &outer, "master", BRIDGE, "up"])?;
            ip(&["-n", &namespace, "addr", "add", &format!("{}/24", host_addr(region)), "dev", &inner])?;
            ip(&["-n", &namespace, "link", "set", &inner, "up"])?;
            for to in 0..REGIONS {
                ip(&["-n", &namespace, "addr", "add", &format!("{}/32", proxy_addr(to)), "dev", "lo"])?;
            }
        }
        Ok(lab)
    }

    /// Removes everything (deleting a namespace deletes its links); returns what could not be
    /// removed.
    pub fn teardown(&mut self) -> Vec<String> {
        self.namespaces.teardown()
    }
}

/// Moves the calling thread into `namespace` (network namespace only).
fn enter(namespace: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{namespace}");
    let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("enter network namespace {namespace}"))?;
    Ok(())
}

/// Runs `task` to completion on a new thread inside `region`'s namespace, on a single-threaded
/// runtime of its own, so that every socket it opens belongs to the region. If the caller stops
/// waiting, the thread still runs `task` to its end: give it bounded work.
pub async fn in_region<T, F, Fut>(region: usize, task: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let namespace = namespace(region);
    let name = namespace.clone();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let result = enter(&name).and_then(|()| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("build a runtime")?;
                runtime.block_on(task())
            });
            let _ = tx.send(result);
        })
        .with_context(|| format!("start a thread for namespace {namespace}"))?;
    rx.await.map_err(|_| anyhow::anyhow!("the thread working in namespace {namespace} panicked"))?
}

/// One proxied port: connections to `listen` go on to `target`, each chunk held for `delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    pub delay: Duration,
}

/// Region `from`'s proxies towards every region (itself with no delay), on every proxied port.
pub fn routes(from: usize, one_way: impl Fn(usize, usize) -> Duration) -> Vec<Route> {
    let mut routes = Vec::new();
    for to in 0..REGIONS {
        let delay = if to == from { Duration::ZERO } else { one_way(from, to) };
        for port in PROXIED_PORTS {
            routes.push(Route {
                listen: SocketAddr::new(proxy_addr(to).into(), port),
                target: SocketAddr::new(host_addr(to).into(), port),
                delay,
            });
        }
    }
    routes
}

/// A region's network services, on a thread inside its namespace until stopped: the delay
/// proxies towards every region and the echo server.
pub struct RegionNet {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RegionNet {
    /// Binds every listener, then serves in the background, logging connections to `log`; an
    /// error means nothing serves.
    pub async fn start(region: usize, routes: Vec<Route>, log: &Path) -> anyhow::Result<RegionNet> {
        let namespace = namespace(region);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let name = namespace.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{namespace}-net"))
            .spawn(move || {
                // The proxies log every connection: into the region's file, not the terminal.
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(std::sync::Mutex::new(log))
                    .with_ansi(false)
                    .with_max_level(tracing::Level::INFO)
                    .finish();
                let _log = tracing::subscriber::set_default(subscriber);
                let runtime = enter(&name).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("build a runtime")
                });
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match bind_all(region, &routes).await {
                        Ok((echo, listeners)) => {
                            tokio::spawn(serve_echo(echo));
                            for (listener, route) in listeners.into_iter().zip(&routes) {
                                tokio::spawn(proxy::serve(listener, route.target, Delay::new(route.delay)));
                            }
                            let _ = ready_tx.send(Ok(()));
                            // Dropping the runtime after this ends every connection.
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .with_context(|| format!("start the network thread of namespace {namespace}"))?;
        let net = RegionNet { stop: Some(stop_tx), thread: Some(thread) };
        ready_rx.await.map_err(|_| anyhow::anyhow!("the network thread of {namespace} panicked"))??;
        Ok(net)
    }

    /// Stops the proxies and the echo server and waits for the thread to end.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RegionNet {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn bind_all(region: usize, routes: &[Route]) -> anyhow::Result<(TcpListener, Vec<TcpListener>)> {
    let echo_addr = SocketAddr::new(host_addr(region).into(), ECHO_PORT);
    let echo = TcpListener::bind(echo_addr).await.with_context(|| format!("listen on {echo_addr}"))?;
    let mut listeners = Vec::with_capacity(routes.len());
    for route in routes {
        listeners.push(
            TcpListener::bind(route.listen)
                .await
                .with_context(|| format!("listen on {} for a proxy", route.listen))?,
        );
    }
    Ok((echo, listeners))
}

/// Sends back every byte it receives, on up to [`ECHO_CONNECTIONS_MAX`] connections at once.
async fn serve_echo(listener: TcpListener) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(ECHO_CONNECTIONS_MAX));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut buf = [0u8; ECHO_BYTES_MAX];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            drop(permit);
        });
    }
}

/// Round trips of one byte to `region`'s echo server through the local proxy, timed; run it
/// inside the region that measures. The first round trip (which also opens the proxy's onward
/// connection) is not counted.
pub async fn echo_round_trips(to: usize, count: usize, timeout: Duration) -> anyhow::Result<Vec<Duration>> {
    let addr = SocketAddr::new(proxy_addr(to).into(), ECHO_PORT);
    let work = async {
        let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut samples = Vec::with_capacity(count);
        let mut byte = [0u8; 1];
        for k in 0..=count {
            let sent = Instant::now();
            stream.write_all(&[k as u8]).await?;
            stream.read_exact(&mut byte).await.with_context(|| format!("read the echo from {addr}"))?;
            if k > 0 {
                samples.push(sent.elapsed());
            }
        }
        anyhow::Ok(samples)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| anyhow::anyhow!("no echo from {addr} within {} s", timeout.as_secs()))?
}

/// One server process in a region, started under `ip netns exec` in a process group of its own
/// (Ctrl-C in the terminal reaches only the benchmark, which stops servers in order), its output
/// appended to `log`. Killed if still running when dropped.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn spawn(
        name: String,
        region: usize,
        program: &Path,
        args: &[OsString],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> anyhow::Result<Server> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &namespace(region)]).arg(program).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().with_context(|| format!("open {}", log.display()))?)
            .stderr(file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {} for {name}", program.display()))?;
        Ok(Server { name, log, child: Some(child) })
    }

    /// An error naming the server and showing the end of its log, if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else { bail!("{} is not running", self.name) };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        match mortar_node::cli::dev::log_tail(&self.log, LOG_TAIL_LINES) {
            Ok(lines) => lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"),
            Err(e) => format!("  (cannot read the log: {e})"),
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            // ESRCH: it exited and has not been reaped yet; nothing to do.
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// True once the process has exited and been reaped.
    fn reap(&mut self) -> bool {
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(Some(_)) | Err(_))
        {
            self.child = None;
        }
        self.child.is_none()
    }

    /// SIGTERM to every server, SIGKILL to those still running after [`STOP_GRACE`]; returns
    /// when all have been reaped.
    pub async fn stop_all(servers: &mut [Server]) {
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            for server in servers.iter() {
                server.signal(signal);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while !servers.iter_mut().all(Server::reap) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if servers.iter_mut().all(Server::reap) {
                return;
            }
            if signal == Signal::SIGTERM {
                for server in servers.iter().filter(|s| s.child.is_some()) {
                    eprintln!(
                        "{} did not stop within {} s of SIGTERM; killing it",
                        server.name,
                        STOP_GRACE.as_secs()
                    );
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
