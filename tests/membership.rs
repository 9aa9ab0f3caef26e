//! Membership changes on real clusters: `mortar admin remove` under a write load, and what the
//! removed nodes and the remaining group do afterwards. Bounded in time and operations; cluster
//! tests run one at a time (see `common::SERIAL`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cluster, bounded, mortar_cli, retry_unavailable};

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Most puts the background load makes.
const LOAD_PUTS_MAX: usize = 3000;
/// How long a read-back retries a node that is still switching epochs.
const READ_RETRY: Duration = Duration::from_secs(20);

/// Writes unique keys through `clients` in turn until `stop` (or [`LOAD_PUTS_MAX`]); returns the
/// keys whose put was acknowledged.
async fn write_load(clients: Vec<common::Kv>, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for i in 0..LOAD_PUTS_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("load-{i}");
        if clients[i % clients.len()].put(key.clone(), key.clone()).await.is_ok() {
            acknowledged.push(key);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    acknowledged
}

/// `mortar admin <args>` through node `via`.
async fn admin(cluster: &Cluster, via: usize, args: &[&str]) -> common::CliRun {
    let endpoint = cluster.node(via).grpc.to_string();
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    mortar_cli(&all, &[("MORTAR_ENDPOINT", endpoint.as_str())]).await
}

fn members_json(run: &common::CliRun) -> Vec<(u64, String, u64, bool)> {
    assert_eq!(run.code, Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("members --json prints JSON");
    json["members"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["state"].as_str().unwrap().to_string(),
                m["epoch"].as_u64().unwrap(),
                m["ready"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits until `mortar admin members --json` through node `via` lists exactly `expected` as
/// `id:state:epoch:ready` rows.
async fn wait_members(cluster: &Cluster, via: usize, expected: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = members_json(&admin(cluster, via, &["members", "--json"]).await);
        let rows: Vec<String> = rows.iter().map(|r| format!("{}:{}:{}:{}", r.0, r.1, r.2, r.3)).collect();
        if rows == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "members did not become {expected:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads every key back through each node in `via`: its value is the key.
async fn read_back(cluster: &Cluster, via: &[usize], keys: &[String]) {
    for &id in via {
        let kv = cluster.kv(id);
        for key in keys {
            let value = retry_unavailable(READ_RETRY, || kv.get(key.clone())).await;
            let value = value.unwrap_or_else(|e| panic!("get {key} through node {id}: {e}"));
            assert_eq!(value.as_deref(), Some(key.as_bytes()), "{key} through node {id}");
        }
    }
}

/// A three-node group grows to five and seven by `--join` and shrinks back to three by `admin
/// remove`, under a write load: once through a remaining member, once through the very node removed.
/// Each removed node stops and refuses to start again; a further removal is refused; every
/// acknowledged write is read back from every node; and quorums follow the epoch: two of the
/// final three serve with the third killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grows_and_shrinks_under_load_and_keeps_every_acknowledged_write() {
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        wait_members(&cluster, 1, &["1:active:1:true", "2:active:1:true", "3:active:1:true"]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(write_load(vec![cluster.kv(1), cluster.kv(2), cluster.kv(3)], stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Grow one node at a time, each join through another member: 3 -> 5 -> 7.
        for (id, via) in [(4, 2), (5, 4), (6, 1), (7, 5)] {
            assert_eq!(cluster.join_node(via, None), id);
            cluster.wait_ready(&[id]).await;
            let epoch = id - 2;
            let rows: Vec<String> = (1..=id).map(|m| format!("{m}:active:{epoch}:true")).collect();
            let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
            wait_members(&cluster, 3, &rows).await;
            assert!(cluster.log_tail(id).contains("state transfer complete"), "{}", cluster.log_tail(id));
        }

        // Shrink back: through a remaining member, and through the very node removed (which
        // drives its own removal, then stops).
        for (id, via) in [(7, 1), (6, 6), (5, 2), (4, 4)] {
            let run = admin(&cluster, via, &["remove", &id.to_string()]).await;
            assert_eq!(run.code, Some(0), "{run:?}");
            let members: Vec<String> = (1..id).map(|m| m.to_string()).collect();
            let expected = format!("the group runs epoch {} with members [{}]", 13 - id, members.join(", "));
            assert!(run.stdout.contains(&expected), "{expected}: {run:?}");
            let exit = cluster.wait_exit(id, Duration::from_secs(20)).await;
            assert!(exit.is_some_and(|s| !s.success()), "node {id} did not stop with an error: {exit:?}");
            assert!(
                cluster.log_tail(id).contains("was removed from the cluster"),
                "{}",
                cluster.log_tail(id)
            );
        }

        // Idempotent: removing it again answers what happened.
        let run = admin(&cluster, 2, &["remove", "4"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("node 4 is removed already"), "{run:?}");
        // Three members are the fewest a removal leaves.
        let run = admin(&cluster, 2, &["remove", "3"]).await;
        assert_ne!(run.code, Some(0), "{run:?}");
        assert!(run.stderr.contains("fewer than 3") || run.stderr.contains("at least 3"), "{run:?}");

        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let acknowledged = load.await.expect("the load task");
        assert!(acknowledged.len() >= 20, "the load made too little progress: {}", acknowledged.len());
        let mut rows: Vec<String> = (1..=3).map(|m| format!("{m}:active:9:true")).collect();
        rows.extend((4..=7).map(|m| format!("{m}:removed:0:false")));
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        wait_members(&cluster, 3, &rows).await;
        read_back(&cluster, &[1, 2, 3], &acknowledged).await;

        // A removed node refuses to start again on its data directory.
        cluster.start_node(5);
        let exit = cluster.wait_exit(5, Duration::from_secs(20)).await;
        assert!(exit.is_some_and(|s| !s.success()), "removed node 5 started: {exit:?}");
        assert!(cluster.log_tail(5).contains("was removed from the cluster"), "{}", cluster.log_tail(5));

        // Quorums come from the epoch's members: two of three serve.
        cluster.kill(3);
        let kv = cluster.kv(1);
        retry_unavailable(READ_RETRY, || kv.put("after-shrink", "two of three"))
            .await
            .expect("nodes 1 and 2 are a majority of epoch 9");
        assert_eq!(cluster.kv(2).get("after-shrink").await.unwrap().as_deref(), Some(&b"two of three"[..]));
    })
    .await;
}

/// A node's disk dies: it is killed and its directory wiped (started so, it refuses). A new node
/// joins in its place at its address (one switch), copies the data, and then a second original
/// node is killed: the replacement and the last original are a majority, and every write is still
/// there. Without the replacement, two of three would be gone. Replacing a live node is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_replaced_and_the_group_survives_another_failure() {
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        wait_members(&cluster, 1, &["1:active:1:true", "2:active:1:true", "3:active:1:true"]).await;
        let keys: Vec<String> = (0..200).map(|i| format!("before-{i}")).collect();
        for key in &keys {
            cluster.kv(1).put(key.clone(), key.clone()).await.expect("put");
        }

        // Node 2 is alive: it cannot be replaced.
        let refused = cluster.join_node(1, Some(2));
        let exit = cluster.wait_exit(refused, Duration::from_secs(30)).await;
        assert!(exit.is_some_and(|s| !s.success()), "a replacement of a live node started: {exit:?}");
        assert!(cluster.log_tail(refused).contains("node 2 is alive"), "{}", cluster.log_tail(refused));
        wait_members(&cluster, 1, &["1:active:1:true", "2:active:1:true", "3:active:1:true"]).await;

        cluster.kill(3);
        std::fs::remove_dir_all(&cluster.node(3).data_dir).expect("wipe node 3's directory");
        // The wiped directory must not vote again as node 3: it refuses to start, and says how
        // to bring the machine back.
        cluster.start_node(3);
        let exit = cluster.wait_exit(3, Duration::from_secs(30)).await;
        assert!(exit.is_some_and(|s| !s.success()), "a wiped node 3 started: {exit:?}");
        assert!(cluster.log_tail(3).contains("--replace 3"), "{}", cluster.log_tail(3));
        // The machine comes back at node 3's addresses; the member waits for gossip to declare
        // node 3 down, so the replace works right after the kill.
        let replacement = cluster.replace_node_in_place(1, 3);
        cluster.wait_ready(&[replacement]).await;
        // The refused attempts registered nothing: the replacement got id 4.
        wait_members(
            &cluster,
            1,
            &["1:active:2:true", "2:active:2:true", "3:dead:0:false", "4:active:2:true"],
        )
        .await;

        cluster.kill(2);
        let kv = cluster.kv(replacement);
        retry_unavailable(READ_RETRY, || kv.put("after-replace", "still here"))
            .await
            .expect("node 1 and the replacement are a majority of epoch 2");
        read_back(&cluster, &[1, replacement], &keys).await;

        // A directory of a node started with --id is not joined anew: its data would be
        // overwritten with an older copy.
        cluster.kill(1);
        cluster.nodes[0].join = Some((cluster.node(replacement).grpc.to_string(), None));
        cluster.start_node(1);
        let exit = cluster.wait_exit(1, Duration::from_secs(30)).await;
        assert!(exit.is_some_and(|s| !s.success()), "node 1's directory joined: {exit:?}");
        assert!(cluster.log_tail(1).contains("started with --id"), "{}", cluster.log_tail(1));
    })
    .await;
}
