//! Load within the limits never stops a node (issue 15): bursts of values near the size limit
//! from many clients at once. Before, one round's write batch grew past storage's limit, the
//! refusal was taken for a disk failure, and every node exited for good; with a thousand clients a
//! node's memory grew without bound. Each run is bounded in operations and time.

mod common;

use std::time::Duration;

use common::{Cluster, NODES, bounded, mortar_cli, retry_unavailable};

/// Bound on the whole test once the cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a node may take to serve again after the load.
const SERVE_AGAIN: Duration = Duration::from_secs(30);
/// What a node may hold at its peak under the loads below: a few times the request bytes it
/// admits at once (64 MiB), their copies in flight to peers, RocksDB's memtables and caches. Far
/// below the gigabytes an unbounded node reached (2.6 GB within 7 s at 1,000 clients).
const PEAK_RSS_BYTES_MAX: u64 = 1536 * 1024 * 1024;

/// Runs `mortar bench kv` against node 1 with `args`; the outcome of single requests (refused
/// when the node is full) does not matter, only that it ends.
async fn burst(cluster: &Cluster, args: &[&str]) {
    let endpoint = cluster.node(1).grpc.to_string();
    let mut all = vec!["bench", "kv", "--endpoints", &endpoint, "--warmup", "0"];
    all.extend_from_slice(args);
    let run = mortar_cli(&all, &[]).await;
    eprintln!("mortar {}: {run:?}", all.join(" "));
}

/// Every node is still running, answers a write and reads every other node's write.
async fn every_node_serves(cluster: &mut Cluster, round: &str) {
    for id in 1..=NODES {
        assert!(
            cluster.is_running(id),
            "node {id} exited after the {round} burst:\n{}",
            cluster.log_tail(id)
        );
    }
    for id in 1..=NODES {
        let (key, kv) = (format!("after-{round}-{id}"), cluster.kv(id));
        retry_unavailable(SERVE_AGAIN, || kv.put(key.clone(), "v"))
            .await
            .unwrap_or_else(|e| panic!("node {id} does not serve after the {round} burst: {e}"));
    }
    for id in 1..=NODES {
        let kv = cluster.kv(id);
        for from in 1..=NODES {
            let key = format!("after-{round}-{from}");
            let got = retry_unavailable(SERVE_AGAIN, || kv.get(key.clone())).await;
            assert_eq!(got.expect("get").as_deref(), Some(&b"v"[..]), "{key} through node {id}");
        }
    }
}

fn assert_memory_bounded(cluster: &Cluster, round: &str) {
    for id in 1..=NODES {
        let peak = cluster.peak_rss_bytes(id).expect("a running node's VmHWM");
        eprintln!("node {id} peak resident memory after the {round} burst: {} MiB", peak / (1024 * 1024));
        assert!(
            peak <= PEAK_RSS_BYTES_MAX,
            "node {id} reached {} MiB of resident memory in the {round} burst (bound {} MiB)",
            peak / (1024 * 1024),
            PEAK_RSS_BYTES_MAX / (1024 * 1024)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_large_values_stop_no_node_and_memory_stays_bounded() {
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        // The burst: 100 clients at once, 900 KiB values, all on one key.
        burst(&cluster, &["--clients", "100", "--value-size", "921600", "--ops-max", "100", "--keys", "1"])
            .await;
        every_node_serves(&mut cluster, "100-client").await;

        // A thousand clients of 1 MiB values.
        burst(
            &cluster,
            &["--clients", "1000", "--value-size", "1048576", "--ops-max", "2000", "--duration", "10"],
        )
        .await;
        every_node_serves(&mut cluster, "1000-client").await;
        assert_memory_bounded(&cluster, "1000-client");

        // The data directories the bursts left start and serve (before, nodes exited again at
        // once: the first round after a start wrote the whole backlog as one batch).
        for id in 1..=NODES {
            cluster.kill(id);
        }
        for id in 1..=NODES {
            cluster.start_node(id);
        }
        cluster.wait_ready(&[1, 2, 3]).await;
        every_node_serves(&mut cluster, "restart").await;
    })
    .await;
}
