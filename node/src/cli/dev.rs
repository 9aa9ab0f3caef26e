//! `mortar dev`: a local cluster of real `mortar node` processes, for development.
//!
//! Node i listens for gRPC on 127.0.0.1:(base-port + i - 1) and for HTTP on
//! 127.0.0.1:(base-port + 100 + i - 1), keeps its state in <data-dir>/node-<i> and appends its
//! output to <data-dir>/node-<i>/node.log. Ctrl-C (or SIGTERM) stops every node it started (by the
//! PIDs of its own children, never by name): SIGTERM, then SIGKILL after a grace period.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::{EXIT_NO, EXIT_OK, Failure, note};
use crate::config::{HTTP_PORT_OFFSET, MEMBERS_MAX};

/// Prints a line on stdout. `mortar dev` keeps running its nodes when nobody reads it any more,
/// so a closed stdout is ignored.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = super::say(&format!($($arg)*));
    }};
}

/// How long every node has to answer `GET /healthz` after it is started.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long nodes have to exit after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for killed nodes to be reaped.
pub const KILL_WAIT: Duration = Duration::from_secs(5);
/// Lines of a node's log printed when it fails to start.
pub const LOG_TAIL_LINES: usize = 20;
/// Most bytes read from the end of a log to find its last lines.
const LOG_TAIL_BYTES_MAX: u64 = 64 * 1024;
/// Pause between health probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on one health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
#[command(after_help = "The data directory is kept between runs: run `mortar dev` again to \
    restart the same cluster with its data, or delete the directory to start empty. A directory \
    holding a cluster of another size is refused before anything starts.\n\n\
    Logs of every node: <data-dir>/node-<i>/node.log (set MORTAR_LOG=debug for more). Each run \
    starts with a line holding the node's command, to restart one node by hand.\n\n\
    Ctrl-C stops the nodes this command started, and only those.")]
pub struct DevArgs {
    /// Number of nodes (1 to 7).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MEMBERS_MAX as i64))]
    pub nodes: u16,

    /// gRPC port of node 1; node i uses base-port + i - 1, and HTTP ports start at base-port + 100.
    #[arg(long, default_value_t = 7100, value_parser = clap::value_parser!(u16).range(1..))]
    pub base_port: u16,

    /// Directory holding one sub-directory per node.
    #[arg(long, default_value = "mortar-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// The node binary to run for each node: `mortar`, or an application's own node (one built
    /// with `mortar_node::node_main!`, which takes the same `node` flags) [default: this
    /// executable].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
}

/// One node of the local cluster.
#[derive(Debug)]
struct DevNode {
    id: u16,
    grpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    /// Length of the log before this run's first line: a failure shows only this run's lines.
    log_start: u64,
    /// Set until the node's exit has been observed (then the PID may be reused: never signal it).
    pid: Option<Pid>,
}

/// The exit of node `id` (1-based), observed by its waiter task.
struct Exited {
    id: u16,
    status: std::io::Result<ExitStatus>,
}

pub async fn run(args: DevArgs) -> Result<u8, Failure> {
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().map_err(|e| {
            Failure::error(format!("cannot find the mortar executable ({e}); pass --bin <path>"))
        })?,
    };
    if !bin.is_file() {
        return Err(Failure::error(format!(
            "--bin {} is not a file; pass the path of a node binary (mortar, or one built with \
             mortar_node::node_main!)",
            bin.display()
        )));
    }
    let mut nodes = plan(&args)?;
    check_data_dir(&args.data_dir, args.nodes)?;
    check_ports_free(&nodes)?;

    // Install signal handlers before starting anything, so Ctrl-C during startup still cleans up.
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| Failure::error(format!("cannot handle SIGINT: {e}")))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Failure::error(format!("cannot handle SIGTERM: {e}")))?;

    let initial_cluster: Vec<String> = nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect();
    let initial_cluster = initial_cluster.join(",");
    let (exits_tx, mut exits) = mpsc::channel::<Exited>(MEMBERS_MAX);
    for i in 0..nodes.len() {
        if let Err(failure) = spawn_node(&bin, &mut nodes[i], &initial_cluster, exits_tx.clone()) {
            stop_all(&mut nodes, &mut exits).await;
            return Err(failure);
        }
    }
    drop(exits_tx);

    // Wait until every node answers /healthz.
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut healthy = vec![false; nodes.len()];
    while healthy.iter().any(|h| !h) {
        if let Ok(exited) = exits.try_recv() {
            let node = mark_exited(&mut nodes, exited.id);
            let (log, log_start) = (node.log.clone(), node.log_start);
            note(&format!(
                "error: node {} exited during startup ({}); its lines in {}:",
                exited.id,
                describe(&exited.status),
                log.display()
            ));
            print_log_tail(&log, log_start);
            stop_all(&mut nodes, &mut exits).await;
            return Ok(EXIT_NO);
        }
        for (i, node) in nodes.iter().enumerate() {
            if !healthy[i] {
                healthy[i] = http_status(node.http, "/healthz").await == Some(200);
            }
        }
        if healthy.iter().all(|h| *h) {
            break;
        }
        if Instant::now() >= deadline {
            let i = healthy.iter().position(|h| !h).expect("some node is not healthy");
            let node = &nodes[i];
            note(&format!(
                "error: node {} did not answer GET http://{}/healthz within {} s; its lines in {}:",
                node.id,
                node.http,
                STARTUP_TIMEOUT.as_secs(),
                node.log.display()
            ));
            print_log_tail(&node.log.clone(), node.log_start);
            stop_all(&mut nodes, &mut exits).await;
            return Ok(EXIT_NO);
        }
        tokio::select! {
            _ = sigint.recv() => { stop_all(&mut nodes, &mut exits).await; return Ok(EXIT_OK); }
            _ = sigterm.recv() => { stop_all(&mut nodes, &mut exits).await; return Ok(EXIT_OK); }
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }

    print_banner(&nodes, &args.data_dir);

    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            exited = exits.recv() => {
                let Some(exited) = exited else {
                    out!("every node has exited; stopping");
                    return Ok(EXIT_NO);
                };
                let node = mark_exited(&mut nodes, exited.id);
                out!(
                    "node {} exited on its own ({}); its log: {}",
                    exited.id,
                    describe(&exited.status),
                    node.log.display()
                );
                if nodes.iter().all(|n| n.pid.is_none()) {
                    out!("every node has exited; stopping");
                    return Ok(EXIT_NO);
                }
            }
        }
    }
    out!("stopping {} nodes", nodes.iter().filter(|n| n.pid.is_some()).count());
    stop_all(&mut nodes, &mut exits).await;
    out!("stopped");
    Ok(EXIT_OK)
}

/// Ports, directories and logs of every node, checking the port arithmetic.
fn plan(args: &DevArgs) -> Result<Vec<DevNode>, Failure> {
    let last_http = u32::from(args.base_port) + u32::from(HTTP_PORT_OFFSET) + u32::from(args.nodes) - 1;
    if last_http > u32::from(u16::MAX) {
        return Err(Failure::error(format!(
            "--base-port {} is too high for {} nodes: HTTP ports would reach {last_http}; pick a \
             base port of at most {}",
            args.base_port,
            args.nodes,
            u32::from(u16::MAX) - u32::from(HTTP_PORT_OFFSET) - u32::from(args.nodes) + 1
        )));
    }
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    Ok((1..=args.nodes)
        .map(|id| {
            let dir = args.data_dir.join(format!("node-{id}"));
            DevNode {
                id,
                grpc: SocketAddr::from((localhost, args.base_port + id - 1)),
                http: SocketAddr::from((localhost, args.base_port + HTTP_PORT_OFFSET + id - 1)),
                log: dir.join("node.log"),
                log_start: 0,
                dir,
                pid: None,
            }
        })
        .collect())
}

/// Refuses a data directory that holds a cluster of another size, before anything is created:
/// its nodes would refuse to start (the membership is part of a cluster's identity).
fn check_data_dir(data_dir: &Path, nodes: u16) -> Result<(), Failure> {
    let held = node_dirs_with_data(data_dir)
        .map_err(|e| Failure::error(format!("cannot read --data-dir {} ({e})", data_dir.display())))?;
    if held.is_empty() || held == (1..=nodes).collect::<Vec<_>>() {
        return Ok(());
    }
    let size = held.last().copied().unwrap_or_default();
    let what = if held == (1..=size).collect::<Vec<_>>() {
        format!("a {size}-node cluster")
    } else {
        let ids: Vec<String> = held.iter().map(u16::to_string).collect();
        format!("the data of nodes {}", ids.join(", "))
    };
    Err(Failure::error(format!(
        "{} holds {what}; run with --nodes {size} or choose another --data-dir",
        data_dir.display()
    )))
}

/// The ids `i` of the `node-<i>` directories under `data_dir` that hold a node's data (anything
/// besides `node.log`), sorted; none when `data_dir` does not exist.
fn node_dirs_with_data(data_dir: &Path) -> std::io::Result<Vec<u16>> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) =
            name.to_str().and_then(|n| n.strip_prefix("node-")).and_then(|n| n.parse::<u16>().ok())
        else {
            continue;
        };
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let mut files = std::fs::read_dir(entry.path())?;
        if files.try_fold(false, |data, f| f.map(|f| data || f.file_name() != "node.log"))? {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn check_ports_free(nodes: &[DevNode]) -> Result<(), Failure> {
    for node in nodes {
        for (address, what) in [(node.grpc, "gRPC"), (node.http, "HTTP")] {
            if let Err(e) = std::net::TcpListener::bind(address) {
                return Err(Failure::error(format!(
                    "port {} is not free for node {}'s {what} listener ({}): stop what uses it \
                     (another `mortar dev`?) or pick another --base-port",
                    address.port(),
                    node.id,
                    super::strip_os_error(&e.to_string())
                )));
            }
        }
    }
    Ok(())
}

fn spawn_node(
    bin: &Path,
    node: &mut DevNode,
    initial_cluster: &str,
    exits: mpsc::Sender<Exited>,
) -> Result<(), Failure> {
    std::fs::create_dir_all(&node.dir).map_err(|e| {
        Failure::error(format!("cannot create {} ({e}); check --data-dir", node.dir.display()))
    })?;
    let open_log = || {
        std::fs::OpenOptions::new().create(true).append(true).open(&node.log).map_err(|e| {
            Failure::error(format!("cannot open {} ({e}); check --data-dir", node.log.display()))
        })
    };
    let mut log = open_log()?;
    node.log_start = log.metadata().map_or(0, |m| m.len());
    let started =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let args = node_args(node, initial_cluster);
    // A marker between runs, with the command that restarts this node by hand; a failure to
    // write it is not worth stopping for.
    let command_line: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let _ = std::io::Write::write_all(
        &mut log,
        format!(
            "--- mortar dev: starting node {} (unix time {started}): mortar {}\n",
            node.id,
            command_line.join(" ")
        )
        .as_bytes(),
    );
    let stderr_log = log
        .try_clone()
        .map_err(|e| Failure::error(format!("cannot open {} ({e}); check --data-dir", node.log.display())))?;
    let mut command = tokio::process::Command::new(bin);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr_log))
        // Own process group: Ctrl-C reaches only `mortar dev`, which stops the nodes in order.
        .process_group(0)
        // Safety net if `mortar dev` itself unwinds: dropping the child kills it.
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        Failure::error(format!(
            "cannot start {} for node {} ({e}); pass --bin <path>",
            bin.display(),
            node.id
        ))
    })?;
    let pid = child.id().ok_or_else(|| Failure::error(format!("node {} exited at once", node.id)))?;
    let pid = i32::try_from(pid)
        .map_err(|_| Failure::error(format!("node {} has pid {pid}, out of range", node.id)))?;
    node.pid = Some(Pid::from_raw(pid));
    let id = node.id;
    tokio::spawn(async move {
        let status = child.wait().await;
        // The receiver is gone only when `mortar dev` is exiting.
        let _ = exits.send(Exited { id, status }).await;
    });
    Ok(())
}

/// The command line of a node: `node` and the flags every node binary takes (`mortar`'s, and
/// those of `mortar_node::node_main!`).
fn node_args(node: &DevNode, initial_cluster: &str) -> Vec<std::ffi::OsString> {
    vec![
        "node".into(),
        "--id".into(),
        node.id.to_string().into(),
        "--listen".into(),
        node.grpc.to_string().into(),
        "--http".into(),
        node.http.to_string().into(),
        "--data-dir".into(),
        node.dir.clone().into(),
        "--initial-cluster".into(),
        initial_cluster.into(),
    ]
}

fn mark_exited(nodes: &mut [DevNode], id: u16) -> &DevNode {
    let node = nodes.iter_mut().find(|n| n.id == id).expect("exit of a node we started");
    node.pid = None;
    node
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("cannot read its exit status: {e}"),
    }
}

/// SIGTERM to every running node, SIGKILL to those still running after [`STOP_GRACE`].
async fn stop_all(nodes: &mut [DevNode], exits: &mut mpsc::Receiver<Exited>) {
    for (signal, wait) in [(Signal::SIGTERM, STOP_GRACE), (Signal::SIGKILL, KILL_WAIT)] {
        let mut running = 0;
        for node in nodes.iter() {
            if let Some(pid) = node.pid {
                // ESRCH: it exited and its waiter has not reported yet; nothing to do.
                let _ = kill(pid, signal);
                running += 1;
            }
        }
        if running == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while nodes.iter().any(|n| n.pid.is_some()) {
            match tokio::time::timeout_at(deadline, exits.recv()).await {
                Ok(Some(exited)) => {
                    mark_exited(nodes, exited.id);
                }
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if signal == Signal::SIGTERM {
            for node in nodes.iter().filter(|n| n.pid.is_some()) {
                out!(
                    "node {} did not stop within {} s of SIGTERM; killing it",
                    node.id,
                    STOP_GRACE.as_secs()
                );
            }
        }
    }
}

fn print_banner(nodes: &[DevNode], data_dir: &Path) {
    let first = &nodes[0];
    out!("mortar dev: {} nodes are up (data in {})", nodes.len(), data_dir.display());
    out!("");
    out!("  NODE  PID      GRPC              HTTP              LOG");
    for node in nodes {
        let pid = node.pid.map_or_else(|| "-".to_string(), |pid| pid.to_string());
        out!(
            "  {:<4}  {:<7}  {:<16}  {:<16}  {}",
            node.id,
            pid,
            node.grpc.to_string(),
            node.http.to_string(),
            node.log.display()
        );
    }
    out!("");
    out!("Try:");
    out!("  mortar kv put hello world --endpoint {}", first.grpc);
    out!("  mortar kv get hello --endpoint {}", first.grpc);
    out!("  mortar admin status --endpoint {}", first.grpc);
    out!("  curl http://{}/metrics", first.http);
    out!("");
    out!("For development only: on loopback, without TLS, tokens or a gossip key. A cluster on a");
    out!("network needs them: see `mortar node --help` (--tls-cert, --auth-token-file, ...).");
    out!("");
    out!("Press Ctrl-C to stop every node.");
}

/// Prints on stderr the last [`LOG_TAIL_LINES`] lines of a log written after byte `from` (this
/// run's).
fn print_log_tail(path: &Path, from: u64) {
    match log_tail_from(path, LOG_TAIL_LINES, from) {
        Ok(lines) if lines.is_empty() => note("  (the log is empty)"),
        Ok(lines) => {
            for line in lines {
                note(&format!("  {line}"));
            }
        }
        Err(e) => note(&format!("  (cannot read the log: {e})")),
    }
}

/// The last `count` lines of a file, reading at most [`LOG_TAIL_BYTES_MAX`] bytes from its end.
pub fn log_tail(path: &Path, count: usize) -> std::io::Result<Vec<String>> {
    log_tail_from(path, count, 0)
}

/// The last `count` lines of a file after byte `from`, reading at most [`LOG_TAIL_BYTES_MAX`]
/// bytes from its end.
pub fn log_tail_from(path: &Path, count: usize, from: u64) -> std::io::Result<Vec<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_BYTES_MAX).max(from.min(len));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > from && !lines.is_empty() {
        lines.remove(0); // Probably cut in the middle.
    }
    let skip = lines.len().saturating_sub(count);
    Ok(lines[skip..].iter().map(|l| l.to_string()).collect())
}

/// The status code of `GET http://<address><path>`, or `None` when there is no valid answer in
/// time.
pub async fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut len = 0;
        while len < 12 {
            let n = stream.read(&mut head[len..]).await.ok()?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let head = std::str::from_utf8(&head[..len]).ok()?;
        let rest = head.strip_prefix("HTTP/1.")?;
        rest.get(2..5)?.parse().ok()
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, base_port: u16) -> DevArgs {
        DevArgs { nodes, base_port, data_dir: "d".into(), bin: None }
    }

    #[test]
    fn plan_assigns_ports_and_directories() {
        let nodes = plan(&args(3, 7100)).unwrap();
        let grpc: Vec<u16> = nodes.iter().map(|n| n.grpc.port()).collect();
        let http: Vec<u16> = nodes.iter().map(|n| n.http.port()).collect();
        assert_eq!(grpc, [7100, 7101, 7102]);
        assert_eq!(http, [7200, 7201, 7202]);
        assert_eq!(nodes[2].dir, PathBuf::from("d/node-3"));
        assert_eq!(nodes[2].log, PathBuf::from("d/node-3/node.log"));
    }

    #[test]
    fn every_node_binary_takes_the_flags_dev_passes() {
        use clap::Parser as _;
        let nodes = plan(&args(3, 7100)).unwrap();
        let initial_cluster = "1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102";
        let mut command_line = vec![std::ffi::OsString::from("my-node")];
        command_line.extend(node_args(&nodes[1], initial_cluster));
        let cli = super::super::Cli::try_parse_from(command_line).unwrap();
        let super::super::Command::Node(node) = cli.command else { panic!("parsed as another command") };
        let config = crate::config::NodeConfig::from_args(*node).unwrap();
        assert_eq!(config.id, 2);
        assert_eq!(config.listen, nodes[1].grpc);
        assert_eq!(config.http, nodes[1].http);
        assert_eq!(config.data_dir, PathBuf::from("d/node-2"));
        assert_eq!(config.initial_cluster.len(), 3);
    }

    #[test]
    fn plan_refuses_ports_past_65535() {
        let e = plan(&args(3, 65_434)).unwrap_err();
        assert!(e.message.contains("at most 65433"), "{}", e.message);
        assert!(plan(&args(3, 65_433)).is_ok());
    }

    #[test]
    fn busy_port_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let nodes = plan(&args(1, port)).unwrap();
        let e = check_ports_free(&nodes).unwrap_err();
        assert!(e.message.contains(&format!("port {port} ")), "{}", e.message);
        assert!(e.message.contains("node 1's gRPC"), "{}", e.message);
    }

    #[test]
    fn a_data_dir_of_another_size_is_refused_before_anything_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("mortar-data");
        check_data_dir(&data, 3).unwrap();
        assert!(!data.exists(), "checking creates nothing");
        for id in 1..=5 {
            let node = data.join(format!("node-{id}"));
            std::fs::create_dir_all(&node).unwrap();
            std::fs::write(node.join("CURRENT"), "x").unwrap();
        }
        // Left behind by an older `mortar dev`: an empty directory and one with only a log.
        std::fs::create_dir_all(data.join("node-6")).unwrap();
        std::fs::create_dir_all(data.join("node-7")).unwrap();
        std::fs::write(data.join("node-7/node.log"), "old lines").unwrap();
        check_data_dir(&data, 5).unwrap();
        let e = check_data_dir(&data, 3).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "{} holds a 5-node cluster; run with --nodes 5 or choose another --data-dir",
                data.display()
            )
        );
        assert!(check_data_dir(&data, 7).unwrap_err().message.contains("holds a 5-node cluster"));
        std::fs::remove_dir_all(data.join("node-2")).unwrap();
        let e = check_data_dir(&data, 5).unwrap_err();
        assert!(
            e.message.contains("holds the data of nodes 1, 3, 4, 5; run with --nodes 5"),
            "{}",
            e.message
        );
    }

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let text: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
        std::fs::write(&path, text.join("\n") + "\n").unwrap();
        let tail = log_tail(&path, 20).unwrap();
        assert_eq!(tail.len(), 20);
        assert_eq!(tail[0], "line 11");
        assert_eq!(tail[19], "line 30");
        // Only the lines after `from`: this run's.
        let from = text[..27].iter().map(|l| l.len() as u64 + 1).sum();
        assert_eq!(log_tail_from(&path, 20, from).unwrap(), ["line 28", "line 29", "line 30"]);
        std::fs::write(&path, "").unwrap();
        assert!(log_tail(&path, 20).unwrap().is_empty());
    }

    #[tokio::test]
    async fn http_status_reads_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await.unwrap();
            stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        assert_eq!(http_status(address, "/healthz").await, Some(503));
        // Bound, never listening: refused, and held so no other test's listener takes the port.
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed = reserved.local_addr().unwrap();
        assert_eq!(http_status(closed, "/healthz").await, None);
    }
}
