//! The test network: namespaces, veths, the bridge, the root namespace's blackhole route, the
//! nftables table of every node namespace; and removing all of it again, including leftovers of
//! a run that was killed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::nemesis::node_ruleset;
use crate::topology::{
    BRIDGE, BRIDGE_NS, CLIENT_ADDR, CLIENT_NS, CLIENT_VETH, NodeId, PREFIX, SUBNET, Topology,
};

/// How long stale processes get to exit after `SIGKILL`.
const STALE_EXIT_WAIT: Duration = Duration::from_secs(3);

/// Runs a command to completion; an error names the command and carries its standard error.
pub fn command(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("run `{program}` (is it installed? `apt-get install -y iproute2 nftables`)")
        })?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(input.as_bytes()).with_context(|| format!("write the input of `{program}`"))?;
    }
    let output = child.wait_with_output().with_context(|| format!("wait for `{program}`"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    command("ip", args, None)
}

/// Checks the tools and the privileges a run needs, with what to do when one is missing.
pub fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("mortar-chaos run creates network namespaces and must run as root (try sudo)");
    }
    for tool in ["ip", "nft"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            bail!("`{tool}` is not installed: apt-get install -y iproute2 nftables");
        }
    }
    Ok(())
}

/// Namespaces whose names start with [`PREFIX`].
fn our_namespaces() -> anyhow::Result<Vec<String>> {
    let listing = ip(&["netns", "list"])?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

fn namespace_pids(namespace: &str) -> Vec<i32> {
    ip(&["netns", "pids", namespace])
        .map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes what an earlier run left behind: processes inside our namespaces (a runner killed
/// with SIGKILL leaves its nodes running there), the namespaces, links with our prefix in the
/// root namespace, and the blackhole route. Returns what it removed, for the log.
pub fn clean_stale() -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for namespace in our_namespaces()? {
        let pids = namespace_pids(&namespace);
        for &pid in &pids {
            // Only processes inside our own namespaces: an earlier run started them.
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let started = Instant::now();
        while !namespace_pids(&namespace).is_empty() && started.elapsed() < STALE_EXIT_WAIT {
            std::thread::sleep(Duration::from_millis(50));
        }
        ip(&["netns", "del", &namespace]).with_context(|| format!("remove stale namespace {namespace}"))?;
        removed.push(format!("namespace {namespace} ({} processes)", pids.len()));
    }
    let links = ip(&["-o", "link", "show"])?;
    for line in links.lines() {
        // `7: mch-v1@if6: <...>`
        let Some(name) = line.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("")) else {
            continue;
        };
        if name.starts_with(PREFIX) {
            ip(&["link", "del", name]).with_context(|| format!("remove stale link {name}"))?;
            removed.push(format!("link {name}"));
        }
    }
    if ip(&["route", "show", "type", "blackhole", SUBNET])?
        .contains(SUBNET.split('/').next().expect("subnet"))
    {
        ip(&["route", "del", "blackhole", SUBNET])?;
        removed.push(format!("blackhole route {SUBNET}"));
    }
    Ok(removed)
}

/// The test network, removed again when dropped.
pub struct Lab {
    topology: Topology,
    namespaces: Vec<String>,
    route: bool,
}

impl Lab {
    /// Builds the network. On error, what was built is removed (by `Drop`).
    pub fn create(topology: Topology) -> anyhow::Result<Lab> {
        let mut lab = Lab { topology, namespaces: Vec::new(), route: false };
        // First, so that nothing sent to the subnet from the root namespace ever leaves the machine.
        ip(&["route", "add", "blackhole", SUBNET]).context("add the blackhole route for the test subnet")?;
        lab.route = true;
        lab.add_namespace(BRIDGE_NS)?;
        ip(&["-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])?;
        for node in topology.ids() {
            let namespace = topology.namespace(node);
            let (inner, outer) = topology.veth(node);
            lab.add_host(
                &namespace,
                &inner,
                &outer,
                &[topology.node_addr(node).to_string(), topology.proxy_addr(node).to_string()],
            )?;
            lab.set_rules(node, &node_ruleset(topology, node, &[]))?;
        }
        lab.add_host(CLIENT_NS, CLIENT_VETH.0, CLIENT_VETH.1, &[CLIENT_ADDR.to_string()])?;
        Ok(lab)
    }

    fn add_namespace(&mut self, namespace: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", namespace])?;
        self.namespaces.push(namespace.to_string());
        ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn add_host(
        &mut self,
        namespace: &str,
        inner: &str,
        outer: &str,
        addrs: &[String],
    ) -> anyhow::Result<()> {
        self.add_namespace(namespace)?;
        ip(&[
            "link", "add", inner, "netns", namespace, "type", "veth", "peer", "name", outer, "netns",
            BRIDGE_NS,
        ])?;
        ip(&["-n", BRIDGE_NS, "link", "set", outer, "master", BRIDGE, "up"])?;
        for addr in addrs {
            ip(&["-n", namespace, "addr", "add", &format!("{addr}/24"), "dev", inner])?;
        }
        ip(&["-n", namespace, "link", "set", inner, "up"])?;
        Ok(())
    }

    /// Replaces node `node`'s nftables table with `script` (from [`node_ruleset`]).
    pub fn set_rules(&self, node: NodeId, script: &str) -> anyhow::Result<()> {
        let namespace = self.topology.namespace(node);
        command("ip", &["netns", "exec", &namespace, "nft", "-f", "-"], Some(script))
            .with_context(|| format!("set the nftables rules of node {node}"))?;
        Ok(())
    }

    /// Removes everything; returns what could not be removed.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        // Nodes and clients first, the bridge last.
        while let Some(namespace) = self.namespaces.pop() {
            if let Err(e) = ip(&["netns", "del", &namespace]) {
                errors.push(format!("{e:#}"));
            }
        }
        if self.route {
            self.route = false;
            if let Err(e) = ip(&["route", "del", "blackhole", SUBNET]) {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for error in self.teardown() {
            tracing::error!("cleanup: {error}");
        }
    }
}

/// Only one run at a time may own the test network: a pid file in the temporary directory.
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    pub fn acquire() -> anyhow::Result<RunLock> {
        let path = std::env::temp_dir().join("mch-runner.pid");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid != std::process::id() as i32
            && kill(Pid::from_raw(pid), None).is_ok()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("mortar-chaos"))
        {
            bail!(
                "another mortar-chaos run (pid {pid}) owns the test network; wait for it to finish or stop it \
                 (kill {pid}), then try again"
            );
        }
        std::fs::write(&path, std::process::id().to_string())
            .with_context(|| format!("write the run lock {}", path.display()))?;
        Ok(RunLock { path })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
