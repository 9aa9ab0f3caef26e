//! End-to-end tests: three real `mortar node` processes on loopback, driven through gRPC and the
//! `mortar` CLI. Each test is bounded in time and in the number of operations; cluster tests run
//! one at a time (see `common::SERIAL`). When a test fails, the end of every node's log is
//! printed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    Cluster, DevProcess, bounded, free_addresses, free_dev_base_port, http_get, mortar_cli, mortar_cli_stdin,
    mortar_cli_stdout_closed, retry_unavailable,
};
use tonic::Code;

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// How long an availability test retries `Unavailable` before failing.
const AVAILABILITY_RETRY: Duration = Duration::from_secs(20);
/// Allowance on top of the node's request timeout for an `Unavailable` answer to arrive.
const UNAVAILABLE_SLACK: Duration = Duration::from_secs(3);

fn text(bytes: &Option<Bytes>) -> Option<&str> {
    bytes.as_ref().map(|b| std::str::from_utf8(b).expect("test values are utf-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_one_node_is_read_through_the_others() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let (n1, n2, n3) = (cluster.kv(1), cluster.kv(2), cluster.kv(3));
        n1.put("greeting", "hello").await.expect("put through node 1");
        assert_eq!(text(&n2.get("greeting").await.expect("get through node 2")), Some("hello"));
        assert_eq!(text(&n3.get("greeting").await.expect("get through node 3")), Some("hello"));

        n3.put("greeting", "hello again").await.expect("overwrite through node 3");
        assert_eq!(text(&n1.get("greeting").await.unwrap()), Some("hello again"));

        assert!(n2.delete("greeting").await.expect("delete through node 2"), "the key existed");
        assert_eq!(n3.get("greeting").await.expect("get after delete"), None);
        assert!(!n1.delete("greeting").await.expect("delete again"), "the key was already gone");

        assert_eq!(n1.get("never-written").await.expect("get of a missing key"), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_swaps_only_on_the_expected_value() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let (n1, n2, n3) = (cluster.kv(1), cluster.kv(2), cluster.kv(3));

        let r = n1.cas("lock", None, "v1").await.expect("cas expect-absent on a missing key");
        assert!(r.swapped && !r.found, "expect-absent on a missing key swaps: {r:?}");

        let r = n2.cas("lock", None, "v2").await.expect("cas expect-absent on a present key");
        assert!(!r.swapped, "expect-absent on a present key fails: {r:?}");
        assert!(r.found && r.current == "v1", "it returns the current value: {r:?}");

        let r = n3.cas("lock", Some("wrong"), "v3").await.expect("cas with a wrong expectation");
        assert!(!r.swapped && r.found && r.current == "v1", "a wrong expectation fails: {r:?}");

        let r = n1.cas("lock", Some("v1"), "v4").await.expect("cas with the right expectation");
        assert!(r.swapped, "the right expectation swaps: {r:?}");
        assert!(r.found && r.current == "v1", "current is the value before the swap: {r:?}");

        assert_eq!(text(&n2.get("lock").await.unwrap()), Some("v4"));
        let r = n3.cas("missing", Some("v1"), "x").await.expect("cas expecting a value on a missing key");
        assert!(!r.swapped && !r.found, "{r:?}");
        assert_eq!(n1.get("missing").await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_keys_and_values_are_invalid_arguments() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let n1 = cluster.kv(1);
        let key = vec![b'k'; mortar_proto::KEY_BYTES_MAX + 1];
        let e = n1.put(key.clone(), "v").await.expect_err("a 1025-byte key is refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let e = n1.get(key).await.expect_err("a 1025-byte key is refused by get too");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

        let value = vec![b'v'; mortar_proto::VALUE_BYTES_MAX_DEFAULT + 1];
        let e = n1.put("big", value.clone()).await.expect_err("a 1 MiB + 1 value is refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        let e = n1.cas("big", None, value).await.expect_err("cas checks the value size too");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(cluster.kv(2).get("big").await.unwrap(), None, "nothing was written");
        // The expected value of a CAS travels in the replicated command too: it is checked alike.
        let huge = Bytes::from(vec![b'e'; mortar_proto::VALUE_BYTES_LIMIT]);
        let request = mortar_proto::v1::CasRequest {
            key: "big".into(),
            expect: Some(mortar_proto::v1::cas_request::Expect::ExpectValue(huge)),
            value: "v".into(),
            ..Default::default()
        };
        let mut client = mortar_proto::v1::kv_client::KvClient::new(cluster.channel(1));
        let e = common::bounded_call(client.cas(request)).await.expect_err("a 3 MiB expect is refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with("expect_value: value is 3145728 bytes"), "{e:?}");

        // The limits themselves are accepted.
        let key = vec![b'k'; mortar_proto::KEY_BYTES_MAX];
        let value = Bytes::from(vec![b'v'; mortar_proto::VALUE_BYTES_MAX_DEFAULT]);
        n1.put(key.clone(), value.clone()).await.expect("a 1024-byte key and a 1 MiB value");
        assert_eq!(cluster.kv(3).get(key).await.unwrap(), Some(value));
    })
    .await;
}

/// Bytes sent as they are, as the body of one gRPC message: what a broken client sends.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_arguments() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        // A field tag with a varint that never ends: no message type decodes it.
        let garbage = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        for method in [
            "/mortar.v1.Kv/Put",
            "/mortar.v1.Admin/Status",
            "/mortar.v1.Actors/Call",
            "/mortar.v1.ActorAdmin/Locate",
        ] {
            let mut grpc = tonic::client::Grpc::new(cluster.channel(1));
            grpc.ready().await.expect("the channel connects");
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
            let call = grpc.unary(tonic::Request::new(garbage.clone()), path, RawCodec);
            let status = common::bounded_call(call).await.expect_err("garbage is refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{method}: {status:?}");
            assert!(status.message().contains("cannot decode"), "{method}: {status:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_catches_up_after_restart() {
    const KEYS: usize = 10;
    const ROUNDS: usize = 3;
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        cluster.kv(3).put("before-kill", "1").await.expect("put before the kill");
        // The node marked this boot in its data directory: a restart in the same boot trusts
        // writes it made without a sync (they are in the page cache).
        let marker = std::fs::read_to_string(cluster.node(3).data_dir.join("boot_id")).expect("boot marker");
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
        assert_eq!(marker.trim(), boot.trim());
        cluster.kill(3);

        // Two of three nodes are a quorum: writes through either survivor succeed.
        for round in 0..ROUNDS {
            for k in 0..KEYS {
                let node = cluster.kv(1 + (round * KEYS + k) % 2);
                let (key, value) = (format!("key-{k}"), format!("value-{k}-{round}"));
                retry_unavailable(AVAILABILITY_RETRY, || node.put(key.clone(), value.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("put {key} with node 3 down: {e:?}"));
            }
        }

        cluster.restart(3).await;
        let n3 = cluster.kv(3);
        for k in 0..KEYS {
            let key = format!("key-{k}");
            let got = retry_unavailable(AVAILABILITY_RETRY, || n3.get(key.clone()))
                .await
                .unwrap_or_else(|e| panic!("get {key} through the restarted node 3: {e:?}"));
            let latest = format!("value-{k}-{}", ROUNDS - 1);
            assert_eq!(text(&got), Some(latest.as_str()), "node 3 returns the latest value of {key}");
        }
        assert_eq!(text(&n3.get("before-kill").await.unwrap()), Some("1"));
        let log = std::fs::read_to_string(&cluster.node(3).log).expect("node 3 log");
        let loads: Vec<bool> = (log.lines())
            .filter(|l| l.contains("state loaded"))
            .map(|l| l.contains("writes_complete=true"))
            .collect();
        assert_eq!(loads, [false, true], "a first start trusts nothing, a restart after SIGKILL all writes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_killing_every_node() {
    /// Puts attempted at most.
    const PUTS_MAX: usize = 300;
    /// Acknowledged puts after which every node is killed.
    const KILL_AFTER_ACKS: usize = 150;
    /// Consecutive failures after which the workload stops (every node is dead).
    const FAILURES_MAX: usize = 3;

    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
        let clients = [cluster.kv(1), cluster.kv(2), cluster.kv(3)];
        let workload = tokio::spawn({
            let acked = acked.clone();
            async move {
                let mut failures = 0;
                let mut unknown = 0;
                for i in 0..PUTS_MAX {
                    match clients[i % 3].put(format!("k{i}"), format!("v{i}")).await {
                        Ok(()) => {
                            acked.lock().unwrap().push(i);
                            failures = 0;
                        }
                        // The outcome of a failed write is unknown: it may or may not exist.
                        Err(_) => {
                            unknown += 1;
                            failures += 1;
                            if failures >= FAILURES_MAX {
                                break;
                            }
                        }
                    }
                }
                unknown
            }
        });

        let deadline = Instant::now() + Duration::from_secs(90);
        while acked.lock().unwrap().len() < KILL_AFTER_ACKS && !workload.is_finished() {
            assert!(Instant::now() < deadline, "the workload did not reach {KILL_AFTER_ACKS} acks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for id in 1..=3 {
            cluster.kill(id);
        }
        let unknown = workload.await.expect("the workload does not panic");
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= KILL_AFTER_ACKS, "only {} writes were acknowledged", acked.len());
        eprintln!("{} writes acknowledged, {unknown} unknown, before every node was killed", acked.len());

        for id in 1..=3 {
            cluster.start_node(id);
        }
        cluster.wait_ready(&[1, 2, 3]).await;
        for &i in &acked {
            let node = cluster.kv(1 + (i + 1) % 3);
            let key = format!("k{i}");
            let got = retry_unavailable(AVAILABILITY_RETRY, || node.get(key.clone()))
                .await
                .unwrap_or_else(|e| panic!("get {key} after the restart: {e:?}"));
            let expected = format!("v{i}");
            assert_eq!(text(&got), Some(expected.as_str()), "acknowledged write {key} was lost");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_quorum_answers_unavailable_then_recovers() {
    let mut cluster = Cluster::new().await;
    cluster.start_node(1);
    cluster.wait_healthy(&[1]).await;
    bounded(TEST_TIMEOUT, async {
        // Make sure the gRPC listener itself is up, so Unavailable below comes from the node and
        // not from a refused connection.
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(cluster.node(1).grpc).await.is_err() {
            assert!(Instant::now() < deadline, "node 1's gRPC port never accepted a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let n1 = cluster.kv(1);
        let started = Instant::now();
        let e = n1.put("alone", "1").await.expect_err("a put without a quorum fails");
        let elapsed = started.elapsed();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(
            elapsed <= common::REQUEST_TIMEOUT + UNAVAILABLE_SLACK,
            "Unavailable took {elapsed:?}, more than the request timeout {:?} + {UNAVAILABLE_SLACK:?}",
            common::REQUEST_TIMEOUT
        );

        cluster.start_node(2);
        cluster.start_node(3);
        let n1 = cluster.kv(1);
        retry_unavailable(AVAILABILITY_RETRY, || n1.put("alone", "1"))
            .await
            .expect("the put succeeds once the peers are up");
        let n3 = cluster.kv(3);
        let got = retry_unavailable(AVAILABILITY_RETRY, || n3.get("alone")).await.unwrap();
        assert_eq!(text(&got), Some("1"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_talks_to_a_cluster() {
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let endpoint2 = cluster.node(2).grpc.to_string();
        let at = |args: &[&str], endpoint: &str| -> Vec<String> {
            let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            v.extend(["--endpoint".to_string(), endpoint.to_string()]);
            v
        };
        let run = |args: Vec<String>| async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            mortar_cli(&args, &[]).await
        };

        let out = run(at(&["kv", "put", "cli-key", "cli value"], &endpoint)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let out = run(at(&["kv", "get", "cli-key"], &endpoint2)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout, "cli value\n");

        let out = run(at(&["kv", "get", "cli-missing"], &endpoint)).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stdout, "");
        assert!(out.stderr.contains("not found"), "{out:?}");

        let out = run(at(&["kv", "cas", "cli-key", "--absent", "--value", "x"], &endpoint)).await;
        assert_eq!(out.code, Some(1), "cas --absent on an existing key: {out:?}");
        assert_eq!(out.stdout, "cli value\n", "it prints the current value");
        let out =
            run(at(&["kv", "cas", "cli-key", "--expect", "cli value", "--value", "new"], &endpoint)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let out = run(at(&["kv", "delete", "cli-key"], &endpoint2)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let out = run(at(&["kv", "get", "cli-key"], &endpoint)).await;
        assert_eq!(out.code, Some(1), "{out:?}");

        // An oversize key is the node's InvalidArgument, exit 2. (An oversize value does not fit
        // in one command-line argument: Linux caps those at 128 KiB.)
        let big = "k".repeat(mortar_proto::KEY_BYTES_MAX + 1);
        let out = run(at(&["kv", "put", &big, "v"], &endpoint)).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.starts_with("error: InvalidArgument: "), "{out:?}");

        // Every member reports reachable once the peers have exchanged counters.
        let deadline = Instant::now() + AVAILABILITY_RETRY;
        loop {
            let out = run(at(&["admin", "status", "--json"], &endpoint)).await;
            assert_eq!(out.code, Some(0), "{out:?}");
            let json: serde_json::Value = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("admin status --json prints JSON ({e}): {out:?}"));
            let members = json["members"].as_array().expect("members is an array");
            assert_eq!(members.len(), 3, "{json}");
            assert_eq!(json["answered_by"], 1, "{json}");
            let id = json["cluster_id"].as_str().expect("the cluster id is a string");
            assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{json}");
            if members.iter().all(|m| m["reachable"] == true) {
                for m in members {
                    assert!(m["epoxy"]["instances_committed"].is_u64(), "{json}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "some member stayed unreachable: {json}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let out = run(at(&["admin", "status"], &endpoint)).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout.lines().count(), 5, "header lines and one row per member: {out:?}");
        assert!(out.stdout.contains("IN-FLIGHT"), "{out:?}");
        // The cluster id in JSON is the table's hex string (a number above 2^53 is rounded by jq).
        let json = run(at(&["admin", "status", "--json"], &endpoint)).await;
        let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("admin status --json");
        let shown = out.stdout.split_whitespace().nth(1).expect("cluster <id>,").trim_end_matches(',');
        assert_eq!(json["cluster_id"], shown, "{json}");

        // A data dir of this cluster refuses to join a cluster with another membership.
        cluster.stop_all();
        let fresh = free_addresses(4);
        let data_dir = cluster.node(1).data_dir.to_str().expect("utf-8 temp path").to_string();
        let other_cluster = format!("1={},2={},3={}", fresh[0], fresh[2], fresh[3]);
        let out = mortar_cli(
            &[
                "node",
                "--id",
                "1",
                "--listen",
                &fresh[0].to_string(),
                "--http",
                &fresh[1].to_string(),
                "--data-dir",
                &data_dir,
                "--initial-cluster",
                &other_cluster,
            ],
            &[],
        )
        .await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr.to_lowercase().contains("another cluster"),
            "the refusal mentions another cluster: {out:?}"
        );
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_values_come_from_stdin_or_a_file_byte_for_byte() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let env = [("MORTAR_ENDPOINT", endpoint.as_str())];
        // 1 MiB, the default limit, of bytes that are not UTF-8: more than one argument can hold.
        let value: Vec<u8> =
            (0..mortar_proto::VALUE_BYTES_MAX_DEFAULT).map(|i| (i % 251) as u8 | 0x80).collect();
        assert!(std::str::from_utf8(&value).is_err());
        let out = mortar_cli_stdin(&["kv", "put", "binary", "-"], &env, &value).await;
        assert_eq!((out.code, out.stdout.as_str()), (Some(0), "ok\n"), "{out:?}");
        let out = mortar_cli(&["kv", "get", "binary", "--raw"], &env).await;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stdout_bytes == value, "read back {} bytes, not the same", out.stdout_bytes.len());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("value");
        std::fs::write(&file, &value[..1000]).unwrap();
        let out = mortar_cli(&["kv", "put", "from-file", "--value-file", file.to_str().unwrap()], &env).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let out = mortar_cli(&["kv", "get", "from-file"], &env).await;
        assert_eq!(out.stdout_bytes, [&value[..1000], b"\n"].concat(), "without --raw, a newline follows");

        // A CAS compares with, and writes, values from files too.
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&old, &value).unwrap();
        let new_value: Vec<u8> = value.iter().rev().copied().collect();
        std::fs::write(&new, &new_value).unwrap();
        let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
        let out = mortar_cli(&["kv", "cas", "binary", "--expect-file", old, "--value-file", new], &env).await;
        assert_eq!((out.code, out.stdout.as_str()), (Some(0), "swapped\n"), "{out:?}");
        let out = mortar_cli(&["kv", "get", "binary", "--raw"], &env).await;
        assert!(
            out.stdout_bytes == new_value,
            "read back {} bytes, not the new value",
            out.stdout_bytes.len()
        );
        let out = mortar_cli(&["kv", "cas", "binary", "--expect-file", old, "--value", "x"], &env).await;
        assert_eq!(out.code, Some(1), "the key no longer holds the old value: {out:?}");
        assert!(out.stdout_bytes == [&new_value[..], b"\n"].concat(), "it prints the current value");

        // One byte over the node's limit: the node says so. Over what any node takes: the CLI
        // says so before sending.
        let over = vec![0xffu8; mortar_proto::VALUE_BYTES_MAX_DEFAULT + 1];
        let out = mortar_cli_stdin(&["kv", "put", "big", "-"], &env, &over).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert_eq!(
            out.stderr,
            "error: InvalidArgument: value is 1048577 bytes, more than this node's limit of 1048576 bytes \
             (--value-bytes-max)\n"
        );
        let huge = vec![0u8; mortar_proto::VALUE_BYTES_LIMIT + 1];
        let out = mortar_cli_stdin(&["kv", "put", "big", "-"], &env, &huge).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.starts_with("error: stdin holds more than 3145728 bytes"), "{out:?}");
        let out = mortar_cli(&["kv", "get", "big"], &env).await;
        assert_eq!(out.code, Some(1), "nothing was written: {out:?}");
        let out = mortar_cli(&["kv", "put", "k"], &env).await;
        assert_eq!(out.code, Some(2), "a value is required: {out:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_output_to_a_closed_pipe_ends_quietly() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let env = [("MORTAR_ENDPOINT", endpoint.as_str())];
        let out = mortar_cli(&["kv", "put", "k", "v"], &env).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        // `mortar admin locate counter k | head -0`: the reader has gone before anything is
        // printed. No panic, no message, exit 0.
        for args in [
            &["admin", "locate", "counter", "k"][..],
            &["admin", "status"],
            &["admin", "status", "--json"],
            &["admin", "actors"],
            &["kv", "get", "k"],
            &["kv", "put", "k", "v"],
            &["call", "counter", "k", "getCount"],
            &[
                "bench",
                "kv",
                "--endpoints",
                endpoint.as_str(),
                "--ops-max",
                "5",
                "--warmup",
                "0",
                "--duration",
                "1",
            ],
        ] {
            let out = mortar_cli_stdout_closed(args, &env).await;
            assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{args:?}: {out:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_names_an_endpoint_that_is_not_a_mortar_node() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        // The node's HTTP port answers HTTP/2 too, but not gRPC.
        let http = cluster.node(1).http.to_string();
        let out = mortar_cli(&["kv", "get", "k", "--endpoint", &http], &[]).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(
            out.stderr.starts_with(&format!(
                "error: {http} answered, but not as a Mortar gRPC endpoint (an HTTP 404 without a gRPC \
                 status); is it the HTTP port?"
            )),
            "{out:?}"
        );
        // A listener that accepts connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_address = silent.local_addr().unwrap().to_string();
        for args in [vec!["kv", "get", "k"], vec!["admin", "status"]] {
            let mut args = args.clone();
            args.extend(["--endpoint", &silent_address, "--timeout-ms", "1000"]);
            let started = Instant::now();
            let out = mortar_cli(&args, &[]).await;
            assert_eq!(out.code, Some(6), "no answer in time: {args:?}: {out:?}");
            assert_eq!(out.stderr_lines().len(), 1, "{args:?}: {out:?}");
            assert!(
                out.stderr.contains(&format!("no answer from {silent_address} within 1000 ms")),
                "{args:?}: {out:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} gave up after {:?}",
                started.elapsed()
            );
        }
        drop(silent);
        for (endpoint, why) in
            [("127.0.0.1:99999", "port must be 1-65535"), ("127.0.0.1", "the port is missing")]
        {
            let out = mortar_cli(&["kv", "get", "k", "--endpoint", endpoint], &[]).await;
            assert_eq!(out.code, Some(2), "{out:?}");
            assert!(
                out.stderr.starts_with(&format!("error: invalid endpoint '{endpoint}': {why}")),
                "{out:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_one_clear_line() {
    bounded(TEST_TIMEOUT, async {
        // Nobody listens on a just-released port.
        let closed = free_addresses(1)[0].to_string();
        for args in [
            vec!["kv", "get", "k", "--endpoint", &closed],
            vec!["kv", "put", "k", "v", "--endpoint", &closed],
            vec!["admin", "status", "--endpoint", &closed],
        ] {
            let out = mortar_cli(&args, &[]).await;
            assert_eq!(out.code, Some(5), "not applied: {args:?}: {out:?}");
            assert_eq!(out.stderr_lines().len(), 1, "{args:?}: {out:?}");
            assert!(out.stderr.contains("cannot reach"), "{args:?}: {out:?}");
            assert!(out.stderr.contains(&closed), "{args:?}: {out:?}");
        }
        // The endpoint also comes from MORTAR_ENDPOINT.
        let out = mortar_cli(&["kv", "get", "k"], &[("MORTAR_ENDPOINT", &closed)]).await;
        assert_eq!(out.code, Some(5), "{out:?}");
        assert!(out.stderr.contains(&closed), "{out:?}");

        let bad = [
            vec!["node", "--no-such-flag"],
            vec!["node", "--id", "one"],
            vec!["node"],
            vec!["node", "--id", "1", "--data-dir", "x", "--initial-cluster", "1=127.0.0.1:1,2="],
            vec!["node", "--id", "1", "--data-dir", "x", "--initial-cluster", "1=127.0.0.1:1,x=host:1"],
            vec!["node", "--id", "4", "--data-dir", "x", "--initial-cluster", "1=127.0.0.1:1"],
            vec!["node", "--id", "1", "--data-dir", "x", "--initial-cluster", "1=127.0.0.1:1,1=127.0.0.1:2"],
            vec![
                "node",
                "--id",
                "1",
                "--data-dir",
                "x",
                "--initial-cluster",
                "1=127.0.0.1:1",
                "--value-bytes-max",
                "99999999",
            ],
            vec!["node", "--config", "/nonexistent/mortar.toml"],
            vec!["kv", "cas", "k", "--value", "v"],
        ];
        for args in bad {
            let out = mortar_cli(&args, &[]).await;
            assert!(matches!(out.code, Some(c) if c != 0), "{args:?} must fail: {out:?}");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{args:?} prints one line: {out:?}");
            assert!(lines[0].starts_with("error: "), "{args:?}: {out:?}");
            assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
            assert!(!out.stderr.contains("RUST_BACKTRACE"), "{args:?}: {out:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_settings_come_from_flag_then_env_then_file() {
    bounded(TEST_TIMEOUT, async {
        // An id that is not in --initial-cluster is refused before anything starts, naming the
        // id in effect: that shows which layer won.
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mortar.toml");
        std::fs::write(&config, "id = 7\ninitial_cluster = \"1=127.0.0.1:1\"\ndata_dir = \"x\"\n").unwrap();
        let config = config.to_str().unwrap();

        let id_in_effect = |out: &common::CliRun| -> String {
            let line = out.stderr_lines().first().copied().unwrap_or_default().to_string();
            assert!(line.contains("is not in --initial-cluster"), "{out:?}");
            line
        };
        let file_only = mortar_cli(&["node", "--config", config], &[]).await;
        assert!(id_in_effect(&file_only).contains("node id 7 "), "{file_only:?}");

        let env_over_file = mortar_cli(&["node", "--config", config], &[("MORTAR_ID", "9")]).await;
        assert!(id_in_effect(&env_over_file).contains("node id 9 "), "{env_over_file:?}");

        let flag_over_env =
            mortar_cli(&["node", "--config", config, "--id", "8"], &[("MORTAR_ID", "9")]).await;
        assert!(id_in_effect(&flag_over_env).contains("node id 8 "), "{flag_over_env:?}");

        let all_env = mortar_cli(
            &["node"],
            &[
                ("MORTAR_ID", "5"),
                ("MORTAR_INITIAL_CLUSTER", "1=127.0.0.1:1,2=127.0.0.1:2"),
                ("MORTAR_DATA_DIR", "x"),
            ],
        )
        .await;
        assert!(id_in_effect(&all_env).contains("node id 5 "), "{all_env:?}");

        let bad_file = dir.path().join("bad.toml");
        std::fs::write(&bad_file, "id = 1\nbogus_key = 2\n").unwrap();
        let out = mortar_cli(&["node", "--config", bad_file.to_str().unwrap()], &[]).await;
        assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
        assert!(out.stderr.contains("bogus_key") && out.stderr.contains("bad.toml"), "{out:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_answer() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        cluster.kv(1).put("m", "1").await.expect("a put, so there is something to count");
        let http = cluster.node(1).http;
        assert_eq!(http_get(http, "/healthz").await.map(|r| r.0), Some(200));
        assert_eq!(http_get(http, "/readyz").await.map(|r| r.0), Some(200));
        let value = |body: &str, line: &str| -> Option<u64> {
            body.lines()
                .find_map(|l| l.strip_prefix(line))
                .and_then(|v| v.strip_prefix(' ')?.trim().parse().ok())
        };
        // The put needed one peer's vote (a fast quorum of 2), not both: the other peer's traffic
        // is counted once it happens, so poll for it.
        let deadline = Instant::now() + AVAILABILITY_RETRY;
        let body = loop {
            let (status, body) = http_get(http, "/metrics").await.expect("GET /metrics");
            assert_eq!(status, 200);
            assert!(body.contains("mortar_"), "metrics carry mortar_ names: {body}");
            let counted = [2, 3].iter().all(|peer| {
                [
                    "mortar_node_peer_connects_total",
                    "mortar_node_peer_messages_sent_total",
                    "mortar_node_peer_messages_received_total",
                ]
                .iter()
                .all(|name| value(&body, &format!("{name}{{peer=\"{peer}\"}}")).is_some_and(|v| v >= 1))
            });
            if counted {
                break body;
            }
            assert!(Instant::now() < deadline, "per-peer traffic of both peers never counted: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The put executed here, before it was answered: the executor's search took a step for it.
        let steps = value(&body, "mortar_epoxy_execution_search_steps_total")
            .unwrap_or_else(|| panic!("no mortar_epoxy_execution_search_steps_total in the metrics: {body}"));
        assert!(steps >= 1, "{steps} search steps after an executed put");
        // The resend timeout the node uses: the initial one, or one learned from its phases.
        let timeout = value(&body, "mortar_epoxy_resend_timeout_ticks")
            .unwrap_or_else(|| panic!("no mortar_epoxy_resend_timeout_ticks in the metrics: {body}"));
        assert!((1..=100).contains(&timeout), "resend timeout {timeout} ticks");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_cleanly() {
    /// A node given SIGTERM exits within this, with status 0, whether or not its peers are up.
    const GRACE: Duration = Duration::from_secs(10);
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        cluster.kv(1).put("k", "v").await.expect("a put, so peers hold open streams");
        // Node 3 alone, while its peers stay up.
        let status = cluster.terminate(3, GRACE);
        assert!(
            status.is_some_and(|s| s.success()),
            "node 3 did not exit with status 0 within {GRACE:?} of SIGTERM (its peers up): {status:?}"
        );
        // Then the others, the last one with no peer left.
        let s1 = cluster.terminate(1, GRACE);
        let s2 = cluster.terminate(2, GRACE);
        assert!(s1.is_some_and(|s| s.success()), "node 1 after SIGTERM: {s1:?}");
        assert!(s2.is_some_and(|s| s.success()), "node 2 after SIGTERM: {s2:?}");
    })
    .await;
}

/// Issue 3: SIGKILL the node that leads in-flight writes while 32 clients write to overlapping
/// keys. Its unfinished instances block those keys until the survivors recover them, which must
/// take seconds, not forever; and after a whole-cluster restart every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_of_in_flight_writes_blocks_no_key() {
    const CLIENTS: usize = 32;
    const HOT_KEYS: usize = 8;
    /// Operations per client at most.
    const OPS_MAX: usize = 400;
    /// Acknowledged writes through node 1 before it is killed.
    const KILL_AFTER_ACKS: usize = 200;
    /// How long the survivors may take to make every hot key writable again.
    const WRITABLE_WITHIN: Duration = Duration::from_secs(10);

    #[derive(Default)]
    struct Log {
        /// Own keys whose write was acknowledged, with their value.
        acked: Vec<(String, String)>,
        /// Every value ever sent to each hot key whose outcome is unknown (error or timeout).
        unknown_hot: Vec<(usize, String)>,
        acks_via_node1: usize,
    }

    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let log: Arc<Mutex<Log>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            // Half the clients go through node 1, so it leads many of the in-flight writes.
            let node = if c % 2 == 0 { 1 } else { 2 + (c / 2) % 2 };
            let kv = cluster.kv(node);
            let (log, stop) = (log.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                for op in 0..OPS_MAX {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let hot = (c + op) % HOT_KEYS;
                    let value = format!("c{c}-{op}");
                    let hot_result = kv.put(format!("hot{hot}"), value.clone()).await;
                    let own_key = format!("own/{c}/{op}");
                    let own_result = kv.put(own_key.clone(), value.clone()).await;
                    let mut log = log.lock().unwrap();
                    if hot_result.is_err() {
                        log.unknown_hot.push((hot, value.clone()));
                    }
                    match own_result {
                        Ok(()) => {
                            log.acked.push((own_key, value));
                            if node == 1 {
                                log.acks_via_node1 += 1;
                            }
                        }
                        Err(_) if node == 1 => break, // its node is gone
                        Err(_) => {}
                    }
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while log.lock().unwrap().acks_via_node1 < KILL_AFTER_ACKS {
            assert!(
                Instant::now() < deadline,
                "the workload did not reach {KILL_AFTER_ACKS} acks through node 1"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cluster.kill(1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in clients {
            client.await.expect("a client does not panic");
        }

        // Every hot key is writable from the survivors within a few seconds.
        let survivor = cluster.kv(2);
        let started = Instant::now();
        for hot in 0..HOT_KEYS {
            let key = format!("hot{hot}");
            retry_unavailable(WRITABLE_WITHIN, || survivor.put(key.clone(), format!("final-{hot}")))
                .await
                .unwrap_or_else(|e| panic!("{key} not writable from the survivors: {e:?}"));
        }
        let took = started.elapsed();
        eprintln!("every hot key writable again {took:?} after the workload stopped");
        assert!(took < WRITABLE_WITHIN, "took {took:?}");

        for id in 2..=3 {
            cluster.kill(id);
        }
        for id in 1..=3 {
            cluster.start_node(id);
        }
        cluster.wait_ready(&[1, 2, 3]).await;
        let log = std::mem::take(&mut *log.lock().unwrap());
        eprintln!(
            "{} acknowledged writes, {} hot writes with unknown outcome",
            log.acked.len(),
            log.unknown_hot.len()
        );
        for (i, (key, value)) in log.acked.iter().enumerate() {
            let node = cluster.kv(1 + i % 3);
            let got = retry_unavailable(AVAILABILITY_RETRY, || node.get(key.clone()))
                .await
                .unwrap_or_else(|e| panic!("get {key} after the restart: {e:?}"));
            assert_eq!(text(&got), Some(value.as_str()), "acknowledged write of {key} lost");
        }
        // A write whose outcome is unknown may still take effect after the final one.
        for hot in 0..HOT_KEYS {
            let got = cluster.kv(3).get(format!("hot{hot}")).await.expect("get a hot key");
            let got = text(&got).expect("a hot key has a value").to_string();
            let allowed =
                got == format!("final-{hot}") || log.unknown_hot.iter().any(|(k, v)| *k == hot && *v == got);
            assert!(
                allowed,
                "hot{hot} holds {got:?}, neither its final write nor a write of unknown outcome"
            );
        }
    })
    .await;
}

/// A client that retries a request (same request id) after an unknown outcome must not apply it
/// twice, whichever node the retry reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_id_takes_effect_once() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let (n1, n2) = (cluster.kv(1), cluster.kv(2));
        n1.put_once("account", "first", "req-1").await.expect("first attempt");
        n2.put("account", "second").await.expect("another client's write");
        n2.put_once("account", "first", "req-1").await.expect("the retry answers the first outcome");
        assert_eq!(text(&n1.get("account").await.unwrap()), Some("second"), "the retry wrote again");
        n2.put_once("account", "third", "req-2").await.expect("a new request id");
        assert_eq!(text(&n1.get("account").await.unwrap()), Some("third"));
        let too_long: &'static str = Box::leak("r".repeat(65).into_boxed_str());
        let e = n1.put_once("account", "x", too_long).await.expect_err("oversize request id");
        assert_eq!(e.code(), Code::InvalidArgument);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mortar_dev_refuses_a_data_dir_of_another_size_and_creates_nothing() {
    bounded(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("mortar-data");
        for id in 1..=5 {
            let node = data.join(format!("node-{id}"));
            std::fs::create_dir_all(&node).unwrap();
            std::fs::write(node.join("CURRENT"), "MANIFEST-000001\n").unwrap();
        }
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(&data)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let before = listing();
        let data_arg = data.to_str().unwrap();
        let out = mortar_cli(&["dev", "--nodes", "3", "--data-dir", data_arg], &[]).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert_eq!(
            out.stderr_lines(),
            [format!(
                "error: {data_arg} holds a 5-node cluster; run with --nodes 5 or choose another --data-dir"
            )],
        );
        let out = mortar_cli(&["dev", "--nodes", "7", "--data-dir", data_arg], &[]).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert_eq!(listing(), before, "nothing was created");
        for id in 1..=5 {
            let files = std::fs::read_dir(data.join(format!("node-{id}"))).unwrap().count();
            assert_eq!(files, 1, "node-{id} holds no log or lock of this run");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dev_node_restarts_by_hand_and_mortar_dev_stops_only_its_own() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    bounded(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("mortar-data");
        let base = free_dev_base_port();
        let mut command = Command::new(common::MORTAR);
        command
            .args(["dev", "--base-port", &base.to_string(), "--data-dir", data.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        common::clear_mortar_env(&mut command);
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
        let wait_for = |prefix: &str| -> String {
            loop {
                let line = lines
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("mortar dev printed no line starting {prefix:?}: {e}"));
                if line.trim_start().starts_with(prefix) {
                    return line;
                }
            }
        };
        // The banner names each node's PID: kill node 2 by it.
        let row = wait_for("2 ");
        let pid: i32 = row.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("a PID column");
        wait_for("Press Ctrl-C");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        wait_for("node 2 exited on its own");

        // Restart it by hand with the command that heads its last run in node.log.
        let log_path = data.join("node-2").join("node.log");
        let log = std::fs::read_to_string(&log_path).unwrap();
        let marker = log.lines().rfind(|l| l.starts_with("--- mortar dev: starting node 2 ")).unwrap();
        let (_, command_line) = marker.split_once("): mortar ").expect("the marker holds the command");
        let log_file = std::fs::OpenOptions::new().append(true).open(&log_path).unwrap();
        let mut node = Command::new(common::MORTAR);
        node.args(command_line.split_whitespace())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        common::clear_mortar_env(&mut node);
        let mut node = node.spawn().expect("restart node 2");
        let endpoint = format!("127.0.0.1:{}", base + 1);
        let deadline = Instant::now() + AVAILABILITY_RETRY;
        loop {
            let out = mortar_cli(&["kv", "put", "restarted", "yes", "--endpoint", &endpoint], &[]).await;
            if out.code == Some(0) {
                break;
            }
            assert!(Instant::now() < deadline, "the restarted node 2 does not serve: {out:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Ctrl-C stops the nodes `mortar dev` started, not the one started by hand.
        let dev_pid = nix::unistd::Pid::from_raw(dev.child.id() as i32);
        nix::sys::signal::kill(dev_pid, nix::sys::signal::Signal::SIGINT).unwrap();
        wait_for("stopped");
        let status = dev.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        assert!(matches!(node.try_wait(), Ok(None)), "mortar dev stopped a node it did not start");
        let _ = node.kill();
        let _ = node.wait();
    })
    .await;
}

/// The metric names a PromQL expression uses: `mortar_*` and `process_*` identifiers, with a
/// histogram's `_bucket`, `_count` or `_sum` suffix taken off.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (expr[i..].starts_with("mortar_") || expr[i..].starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let end =
            expr[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(expr.len(), |n| i + n);
        let name = &expr[i..end];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.push(base.to_string());
        i = end;
    }
    names
}

/// A node's `/metrics` after puts and actor calls passes Prometheus's own `promtool check
/// metrics` (HELP text everywhere, latencies as histograms, process metrics), and every metric
/// the Grafana dashboard (`deploy/grafana/mortar.json`) queries is among those it exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_feed_every_dashboard_query() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        for i in 0..5 {
            let key = format!("metrics-{i}");
            let put = mortar_cli(&["kv", "put", &key, "v", "--endpoint", &endpoint], &[]).await;
            assert_eq!(put.code, Some(0), "{put:?}");
            let call =
                mortar_cli(&["call", "counter", &key, "increment", "--endpoint", &endpoint], &[]).await;
            assert_eq!(call.code, Some(0), "{call:?}");
        }
        let (status, body) =
            http_get(cluster.node(1).http, "/metrics").await.expect("an answer from /metrics");
        assert_eq!(status, 200);

        let mut promtool = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (scripts/setup.sh installs Debian's prometheus package)");
        std::io::Write::write_all(&mut promtool.stdin.take().expect("piped stdin"), body.as_bytes())
            .expect("write the metrics to promtool");
        let checked = promtool.wait_with_output().expect("promtool ran");
        assert!(
            checked.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        assert!(body.contains("# TYPE mortar_node_kv_request_seconds histogram"), "{body}");
        assert!(body.contains("# TYPE process_resident_memory_bytes gauge"), "{body}");

        let exported: std::collections::BTreeSet<&str> =
            body.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split_whitespace().next()).collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/mortar.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard")).expect("JSON");
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("an expr");
                let names = metric_names(expr);
                assert!(!names.is_empty(), "panel {:?} queries no metric: {expr}", panel["title"]);
                for name in names {
                    assert!(
                        exported.contains(name.as_str()),
                        "the dashboard queries {name}, not exported: {expr}"
                    );
                    queried += 1;
                }
            }
        }
        assert!(queried >= 10, "{queried} metric references in the dashboard");
    })
    .await;
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(mortar_node_kv_request_seconds_bucket{job=~\"$job\"}[1m])))"
        ),
        ["mortar_node_kv_request_seconds"]
    );
    assert_eq!(
        metric_names("rate(process_cpu_seconds_total[1m]) + x_mortar_y"),
        ["process_cpu_seconds_total"]
    );
}

/// A fake OpenTelemetry collector: the `path` attribute of every span it receives.
#[derive(Clone, Default)]
struct Collector {
    paths: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let mut paths = self.paths.lock().expect("paths lock");
        for resource in &request.get_ref().resource_spans {
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    for attribute in span.attributes.iter().filter(|a| a.key == "path") {
                        if let Some(Value::StringValue(path)) =
                            attribute.value.as_ref().and_then(|v| v.value.as_ref())
                        {
                            paths.push(format!("{} {path}", span.name));
                        }
                    }
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// With `--otlp-endpoint`, a node sends a span of each client request to the collector: a put
/// through the CLI arrives as a `grpc` span with its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_requests_are_traced_to_an_otlp_collector() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the collector");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let collector = Collector::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(
                    collector.clone(),
                ),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cluster = Cluster::start_with(&["--otlp-endpoint", &url]).await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let put = mortar_cli(&["kv", "put", "traced", "v", "--endpoint", &endpoint], &[]).await;
        assert_eq!(put.code, Some(0), "{put:?}");
        // The SDK exports its batch every 5 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if collector.paths.lock().expect("paths lock").iter().any(|p| p == "grpc /mortar.v1.Kv/Put") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no Kv/Put span: {:?}",
                collector.paths.lock().expect("paths lock")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let paths = collector.paths.lock().expect("paths lock").clone();
        assert!(
            !paths.iter().any(|p| p.contains("mortar.internal")),
            "peer streams are not traced: {paths:?}"
        );
    })
    .await;
    server.abort();
}
