//! The test network: namespaces, veths, the bridge, the root namespace's blackhole route, the
//! nftables table of every node namespace; and removing all of it again, including leftovers of
//! a run that was killed.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::netns::{self, Namespaces, RunLock, Subnet};
use crate::nemesis::node_ruleset;
use crate::topology::{
    BRIDGE, BRIDGE_NS, CLIENT_ADDR, CLIENT_NS, CLIENT_VETH, NodeId, PREFIX, SUBNET, Topology,
};

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

/// The names and subnet of the chaos test network.
pub const NETWORK: Subnet = Subnet { prefix: PREFIX, cidr: SUBNET };

/// Removes what an earlier run left behind (see [`netns::clean_stale`]).
pub fn clean_stale() -> anyhow::Result<Vec<String>> {
    netns::clean_stale(NETWORK)
}

/// Takes the test network for this run (see [`RunLock`]).
pub fn lock() -> anyhow::Result<RunLock> {
    RunLock::acquire("mch-runner.pid", "mortar-chaos", "mortar-chaos run")
}

/// The test network, removed again when dropped.
pub struct Lab {
    topology: Topology,
    namespaces: Namespaces,
}

impl Lab {
    /// Builds the network. On error, what was built is removed (by `Drop`).
    pub fn create(topology: Topology) -> anyhow::Result<Lab> {
        // The route first, so that nothing sent to the subnet from the root namespace ever leaves
        // the machine.
        let mut lab = Lab { topology, namespaces: Namespaces::guard(NETWORK)? };
        lab.namespaces.add(BRIDGE_NS)?;
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

    fn add_host(
        &mut self,
        namespace: &str,
        inner: &str,
        outer: &str,
        addrs: &[String],
    ) -> anyhow::Result<()> {
        self.namespaces.add(namespace)?;
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

    /// Removes everything (nodes and clients first, the bridge last); returns what could not be
    /// removed.
    pub fn teardown(&mut self) -> Vec<String> {
        self.namespaces.teardown()
    }
}
