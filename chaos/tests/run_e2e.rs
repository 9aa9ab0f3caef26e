//! End-to-end: `mortar-chaos run` drives a real 3-node cluster in network namespaces under
//! partitions, kills and pauses, and under whole-cluster restarts, and must pass and clean up
//! after itself.
//!
//! It needs root, `ip`, `nft` and a built `mortar` binary (beside `mortar-chaos`, or in
//! `MORTAR_BIN`), so it only runs when `MORTAR_CHAOS_E2E=1`:
//!
//! ```text
//! cargo build --release -p mortar-node
//! MORTAR_CHAOS_E2E=1 cargo test --release -p mortar-chaos --test run_e2e -- --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

const SEED: &str = "42";

fn mortar_bin() -> PathBuf {
    match std::env::var_os("MORTAR_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_BIN_EXE_mortar-chaos")).with_file_name("mortar"),
    }
}

fn our_namespaces() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().expect("run ip netns list");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("mch-"))
        .map(str::to_string)
        .collect()
}

/// Whether the end-to-end runs are enabled; says how to enable them when not.
fn enabled() -> bool {
    if std::env::var("MORTAR_CHAOS_E2E").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "skipped: set MORTAR_CHAOS_E2E=1 to run (as root, with ip and nft, after cargo build --release -p \
         mortar-node)"
    );
    false
}

/// Runs `mortar-chaos run` on 3 nodes for 25 s under `nemesis` and checks what every run must
/// leave: exit 0, the seed first, every file of the run directory, a summary that says passed,
/// valid and recovered, faults and the heal in the timeline, shaded faults in the plot, and no
/// namespace left. Then `more` checks the run directory; an error message from it fails the test.
/// The run directory is kept when the test fails.
fn run_and_check(nemesis: &str, more: impl Fn(&Path) -> Result<(), String>) {
    let dir = tempfile::Builder::new().prefix("mch-e2e-").tempdir().expect("create a temporary directory");
    let out = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_mortar-chaos"))
        .args(["run", "--nodes", "3", "--workload", "register", "--nemesis", nemesis])
        .args(["--time-limit", "25", "--seed", SEED, "--keep-data"])
        .arg("--out")
        .arg(&out)
        .arg("--mortar-bin")
        .arg(mortar_bin())
        .output()
        .expect("run mortar-chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let keep = |why: &str| -> ! {
        let kept = dir.keep();
        panic!("{why}; run directory kept in {}\nstdout:\n{stdout}\nstderr:\n{stderr}", kept.display());
    };
    if !output.status.success() {
        keep(&format!("mortar-chaos run exited with {}", output.status));
    }
    if stdout.lines().next() != Some(&format!("seed {SEED}")) {
        keep("the seed is not the first line");
    }
    for file in ["history.jsonl", "nemesis.jsonl", "schedule.json", "summary.json", "report.txt", "plot.svg"]
    {
        if !out.join(file).is_file() {
            keep(&format!("{file} is missing"));
        }
    }
    for node in 1..=3 {
        if !out.join(format!("logs/n{node}.log")).is_file() || !out.join(format!("data/n{node}")).is_dir() {
            keep(&format!("node {node}'s log or data directory is missing"));
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    if summary["passed"] != true || summary["valid"] != true || summary["recovery"]["recovered"] != true {
        keep("the summary does not say passed, valid and recovered");
    }
    if summary["ops"]["ok"].as_u64().unwrap_or(0) == 0 {
        keep("no operation succeeded");
    }
    let timeline = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    let starts =
        timeline.lines().filter(|l| l.contains(r#""event":"start""#) && !l.contains("workload")).count();
    if starts < 2 || !timeline.contains(r#""nemesis":"heal""#) {
        keep("the timeline lacks faults or the heal");
    }
    if !std::fs::read_to_string(out.join("plot.svg")).unwrap().contains(r#"class="fault""#) {
        keep("the plot shades no fault");
    }
    let left = our_namespaces();
    if !left.is_empty() {
        keep(&format!("namespaces left behind: {left:?}"));
    }
    if let Err(why) = more(&out) {
        keep(&why);
    }
}

#[test]
fn three_nodes_under_partition_kill_pause() {
    if enabled() {
        run_and_check("partition,kill,pause", |_| Ok(()));
    }
}

/// Whole-cluster restarts: every node SIGKILLed at once and restarted. The history marks each
/// restart where its time falls, and the durability checker reads it: every write acknowledged
/// before a restart is there after it.
#[test]
fn three_nodes_through_whole_cluster_restarts() {
    if !enabled() {
        return;
    }
    run_and_check("restart", |out| {
        let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
        let markers = history.lines().filter(|l| l.contains(r#""f":"restart""#)).count();
        let schedule: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("schedule.json")).unwrap()).unwrap();
        let windows = schedule["windows"].as_array().map_or(0, Vec::len);
        if markers == 0 || markers != windows {
            return Err(format!("{markers} restart markers in the history for {windows} restart windows"));
        }
        let parsed = mortar_chaos::History::from_jsonl(history.as_bytes()).map_err(|e| e.to_string())?;
        let report = mortar_chaos::check::check(&parsed);
        if !report.checks.iter().any(|c| c.checker == mortar_chaos::Checker::Durability) {
            return Err(format!("the durability checker did not run: {report}"));
        }
        // Some operations succeeded after the last restart, so the check had something to read.
        let last_marker = history.rfind(r#""f":"restart""#).unwrap();
        if !history[last_marker..].contains(r#""type":"ok""#) {
            return Err("no operation succeeded after the last restart".into());
        }
        Ok(())
    });
}
