//! Network namespaces on a private test subnet, guarded by a blackhole route for that subnet in
//! the root namespace (so that nothing sent there from the root namespace leaves the machine), a
//! run lock, and the removal of what a killed earlier run left behind. Shared by `mortar-chaos run`
//! ([`super::lab`]) and `mortar-chaos bench wan` ([`crate::bench::wan_net`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::lab::command;

/// How long stale processes get to exit after `SIGKILL`.
const STALE_EXIT_WAIT: Duration = Duration::from_secs(3);

/// The names and addresses one kind of test network owns.
#[derive(Debug, Clone, Copy)]
pub struct Subnet {
    /// Every namespace and root-namespace link of this network starts with it.
    pub prefix: &'static str,
    /// The private subnet, e.g. `10.77.0.0/24`.
    pub cidr: &'static str,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    command("ip", args, None)
}

/// Namespaces of `subnet`, with the blackhole route added first; all removed again by
/// [`Namespaces::teardown`] or when dropped.
pub struct Namespaces {
    subnet: Subnet,
    names: Vec<String>,
    route: bool,
}

impl Namespaces {
    /// Adds the blackhole route for `subnet` in the root namespace.
    pub fn guard(subnet: Subnet) -> anyhow::Result<Namespaces> {
        ip(&["route", "add", "blackhole", subnet.cidr])
            .with_context(|| format!("add the blackhole route for the test subnet {}", subnet.cidr))?;
        Ok(Namespaces { subnet, names: Vec::new(), route: true })
    }

    /// Creates namespace `name` with its loopback up.
    pub fn add(&mut self, name: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", name]).with_context(|| format!("create namespace {name}"))?;
        self.names.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Removes the namespaces, last created first (deleting one deletes its links), then the
    /// route; returns what could not be removed.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(name) = self.names.pop() {
            if let Err(e) = ip(&["netns", "del", &name]) {
                errors.push(format!("{e:#}"));
            }
        }
        if self.route {
            self.route = false;
            if let Err(e) = ip(&["route", "del", "blackhole", self.subnet.cidr]) {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for error in self.teardown() {
            tracing::error!("cleanup: {error}; remove it by hand");
        }
    }
}

/// Namespaces whose names start with the prefix of `subnet`.
fn stale_namespaces(subnet: Subnet) -> anyhow::Result<Vec<String>> {
    let listing = ip(&["netns", "list"])?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(subnet.prefix))
        .map(str::to_string)
        .collect())
}

fn namespace_pids(namespace: &str) -> Vec<i32> {
    ip(&["netns", "pids", namespace])
        .map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Removes what an earlier run of `subnet` left behind: processes inside its namespaces (a
/// runner killed with SIGKILL leaves its servers running there), the namespaces, links with its
/// prefix in the root namespace, and the blackhole route. Call it holding the [`RunLock`].
/// Returns what it removed, for the log.
pub fn clean_stale(subnet: Subnet) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for namespace in stale_namespaces(subnet)? {
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
        if name.starts_with(subnet.prefix) {
            ip(&["link", "del", name]).with_context(|| format!("remove stale link {name}"))?;
            removed.push(format!("link {name}"));
        }
    }
    let address = subnet.cidr.split('/').next().expect("a subnet has an address");
    if ip(&["route", "show", "type", "blackhole", subnet.cidr])?.contains(address) {
        ip(&["route", "del", "blackhole", subnet.cidr])?;
        removed.push(format!("blackhole route {}", subnet.cidr));
    }
    Ok(removed)
}

/// Only one run at a time may own a test network: a pid file in the temporary directory.
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Takes lock file `file` unless a live process whose name starts with `holder` holds it;
    /// `what` names such a run in the error.
    pub fn acquire(file: &str, holder: &str, what: &str) -> anyhow::Result<RunLock> {
        let path = std::env::temp_dir().join(file);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid != std::process::id() as i32
            && kill(Pid::from_raw(pid), None).is_ok()
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(holder))
        {
            bail!(
                "another {what} (pid {pid}) owns the test network; wait for it to finish or stop it \
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
