//! An application's own node binary (`node/examples/bank_node.rs`: a `bankAccount` actor and
//! `mortar_node::node_main!`) run by `mortar dev --bin`: the flags dev passes are the binary's
//! own, its nodes serve `bankAccount` (and only it), and both the stock CLI and the application's
//! binary call it, the latter through a comma-separated `--endpoint` whose first node is down;
//! such a list is checked whole before anything is dialled.

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    CLI_TIMEOUT, DevProcess, bounded, clear_mortar_env, free_addresses, free_dev_base_port, mortar_cli,
};

/// Bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on `mortar dev` printing its next line (the nodes start within its own 15 s bound).
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The example binary: cargo builds examples in `examples/` beside the binaries.
fn bank_node() -> PathBuf {
    let path = Path::new(common::MORTAR).parent().expect("a target directory").join("examples/bank_node");
    assert!(
        path.is_file(),
        "no {}: build the examples first (cargo build --release --workspace --all-targets)",
        path.display()
    );
    path
}

/// Runs the example binary as a CLI: (exit code, stdout, stderr).
async fn bank_node_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(bank_node());
    command.args(args);
    clear_mortar_env(&mut command);
    let mut command = tokio::process::Command::from(command);
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
        .await
        .expect("bank_node answered in time")
        .expect("run bank_node");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mortar_dev_runs_an_applications_node_binary_and_both_clis_call_its_actor() {
    bounded(TEST_TIMEOUT, async {
        let bin = bank_node();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let base = free_dev_base_port();
        let mut command = Command::new(common::MORTAR);
        command
            .args(["dev", "--base-port", &base.to_string(), "--data-dir", data.to_str().unwrap(), "--bin"])
            .arg(&bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        clear_mortar_env(&mut command);
        let mut dev = DevProcess { child: command.spawn().expect("start mortar dev") };
        // Its stdout, line by line, from a thread (reads block).
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let stdout = dev.child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        });
        let wait_for = |prefix: &str| loop {
            let line = lines.recv_timeout(LINE_TIMEOUT).unwrap_or_else(|e| {
                let logs: Vec<String> = (1..=3)
                    .map(|i| {
                        std::fs::read_to_string(data.join(format!("node-{i}/node.log"))).unwrap_or_default()
                    })
                    .collect();
                panic!("mortar dev printed no line starting {prefix:?}: {e}; node logs:\n{}", logs.join("\n"))
            });
            if line.trim_start().starts_with(prefix) {
                return;
            }
        };
        wait_for("Press Ctrl-C");

        let node_1 = format!("127.0.0.1:{base}");
        let deposit =
            ["call", "bankAccount", "acc-1", "deposit", r#"{"amount": 100}"#, "--endpoint", &node_1];
        let out = mortar_cli(&deposit, &[]).await;
        assert_eq!((out.code, out.stdout.trim()), (Some(0), "100"), "{out:?}");
        // The node hosts the application's actors, not mortar's examples.
        let out = mortar_cli(&["call", "counter", "c", "getCount", "--endpoint", &node_1], &[]).await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(out.stderr.contains("counter"), "{out:?}");

        // The application's binary is a client too; the first endpoint of its list is down.
        let down = free_addresses(1)[0];
        let endpoints = format!("{down},127.0.0.1:{}", base + 1);
        let withdraw =
            ["call", "bankAccount", "acc-1", "withdraw", r#"{"amount": 30}"#, "--endpoint", &endpoints];
        let (code, stdout, stderr) = bank_node_cli(&withdraw).await;
        assert_eq!((code, stdout.trim()), (Some(0), "70"), "{stderr}");
        let get =
            ["call", "bankAccount", "acc-1", "getBalance", "--endpoint", &format!("127.0.0.1:{}", base + 2)];
        let (code, stdout, stderr) = bank_node_cli(&get).await;
        assert_eq!((code, stdout.trim()), (Some(0), "70"), "{stderr}");
        let (code, _, stderr) =
            bank_node_cli(&["call", "bankAccount", "acc-1", "getBalance", "--endpoint", &down.to_string()])
                .await;
        assert_ne!(code, Some(0));
        assert!(stderr.contains(&down.to_string()), "the unreachable endpoint is named: {stderr}");

        // Ctrl-C stops its nodes.
        let pid = nix::unistd::Pid::from_raw(dev.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        wait_for("stopped");
        let status = dev.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_list_is_checked_whole_before_anything_connects() {
    let down = free_addresses(1)[0];
    let endpoints = format!("{down},not-an-endpoint");
    let out = mortar_cli(&["call", "bankAccount", "a", "getBalance", "--endpoint", &endpoints], &[]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("invalid endpoint 'not-an-endpoint'"), "{out:?}");
    assert!(!out.stderr.contains("cannot reach"), "nothing was dialled: {out:?}");
}
