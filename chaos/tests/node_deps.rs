//! The `mortar` binary operators deploy does not link the lab: nothing in `mortar-node`'s normal
//! dependencies, however deep, is `mortar-chaos` or the etcd client only the lab's benchmarks use
//! (DESIGN.md: production crates never depend on chaos). The lab may depend on the node, never the
//! other way round; this test fails the day someone adds such a dependency back.
//!
//! And an application that only calls actors, or defines actor types to share with its clients,
//! depends on `mortar-node` without its default `server` feature: that build must have no RocksDB
//! (nor the lab) in its dependencies, and must compile.

use std::collections::{BTreeMap, VecDeque};
use std::process::Command;

use serde_json::Value;

/// The production crate whose dependencies are checked.
const NODE: &str = "mortar-node";
/// Packages only the lab may depend on.
const LAB_ONLY: [&str; 2] = ["mortar-chaos", "etcd-client"];

/// Packages a client-only build (`mortar-node` without default features) must not depend on: the
/// RocksDB build, and what the node never links anyway.
const SERVER_ONLY: [&str; 4] = ["rocksdb", "librocksdb-sys", "etcd-client", "mortar-chaos"];

/// `cargo` as the test was built by, or the one on `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The host's target triple, from `cargo -vV`: dependencies of other platforms do not count (and
/// need not be downloaded).
fn host() -> String {
    let version = String::from_utf8(run(cargo().arg("-vV"))).expect("cargo -vV prints UTF-8");
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("no `host:` line in cargo -vV: {version}"))
        .trim()
        .to_string()
}

/// `cargo metadata` of the workspace, resolved for the host.
fn metadata() -> Value {
    let stdout = run(cargo()
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    serde_json::from_slice(&stdout).expect("cargo metadata prints JSON")
}

/// Every package reachable from `root` through normal dependencies (not dev or build), each with
/// the chain of package names that reaches it from `root`.
fn normal_closure(metadata: &Value, root: &str) -> BTreeMap<String, Vec<String>> {
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("package id"), p["name"].as_str().expect("package name")))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("node id"), n))
        .collect();
    let root_id = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .find(|id| name_of.get(id) == Some(&root))
        .unwrap_or_else(|| panic!("{root} is not a workspace member"));
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::from([root_id]);
    let mut queue = VecDeque::from([(root_id, vec![root.to_string()])]);
    while let Some((id, chain)) = queue.pop_front() {
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().expect("dep pkg");
            if normal && seen.insert(dep_id) {
                let mut dep_chain = chain.clone();
                dep_chain.push(name_of[dep_id].to_string());
                chains.entry(name_of[dep_id].to_string()).or_insert_with(|| dep_chain.clone());
                queue.push_back((dep_id, dep_chain));
            }
        }
    }
    chains
}

#[test]
fn the_node_does_not_depend_on_the_lab() {
    let metadata = metadata();
    let closure = normal_closure(&metadata, NODE);
    // The walk itself works: the node's own crates are found.
    for expected in ["mortar-epoxy", "mortar-storage", "tonic"] {
        assert!(closure.contains_key(expected), "{expected} missing from {NODE}'s dependencies: {closure:?}");
    }
    for lab in LAB_ONLY {
        if let Some(chain) = closure.get(lab) {
            panic!(
                "{NODE} depends on {lab} ({}): the `mortar` binary would link the lab. Move the code that \
                 needs it into mortar-chaos, which may depend on {NODE}.",
                chain.join(" -> ")
            );
        }
    }
}

#[test]
fn the_lab_does_depend_on_what_the_node_must_not() {
    // The check above would pass vacuously if a name were misspelt.
    let closure = normal_closure(&metadata(), "mortar-chaos");
    assert!(closure.contains_key("etcd-client"), "mortar-chaos no longer uses etcd-client: update LAB_ONLY");
    assert!(closure.contains_key(NODE));
}

/// The packages `mortar-node` depends on through normal dependencies (not dev or build), with its
/// default features or without: `cargo tree` resolves the features of this one package (`cargo
/// metadata` would resolve them for the workspace, where the lab enables the defaults).
fn node_tree(default_features: bool) -> Vec<String> {
    let host = host();
    let mut command = cargo();
    command.args(["tree", "--locked", "-p", NODE, "-e", "normal", "--prefix", "none", "--format", "{p}"]);
    command.args(["--target", &host]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if !default_features {
        command.arg("--no-default-features");
    }
    let stdout = String::from_utf8(run(&mut command)).expect("cargo tree prints UTF-8");
    stdout.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_string).collect()
}

#[test]
fn the_client_build_has_no_rocksdb() {
    let client = node_tree(false);
    // The walk itself works: what the SDK and the typed client need is there.
    for expected in ["mortar-proto", "mortar-storage", "tonic", "serde_json"] {
        assert!(
            client.iter().any(|p| p == expected),
            "{expected} missing from {NODE}'s client build: {client:?}"
        );
    }
    for package in SERVER_ONLY {
        if client.iter().any(|p| p == package) {
            let why = run(cargo()
                .args(["tree", "--locked", "-p", NODE, "--no-default-features"])
                .args(["-e", "normal", "--invert", package])
                .current_dir(env!("CARGO_MANIFEST_DIR")));
            panic!(
                "{NODE} without default features depends on {package}:\n{}\nGate the code that needs it \
                 behind the `server` feature (node/Cargo.toml), or keep it out of the node.",
                String::from_utf8_lossy(&why)
            );
        }
    }
    // Not vacuous: the full node does build RocksDB.
    let full = node_tree(true);
    assert!(full.iter().any(|p| p == "librocksdb-sys"), "{NODE} no longer uses RocksDB: update SERVER_ONLY");
}

#[test]
fn the_client_build_compiles() {
    // The target directory this test was built in (its `CARGO_TARGET_TMPDIR` is `<target>/tmp`):
    // the check reuses what is built there and never builds RocksDB.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("a target directory");
    run(cargo()
        .args(["check", "--locked", "--release", "-p", NODE, "--no-default-features", "--lib"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
}
