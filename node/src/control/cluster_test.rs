//! Control planes of several nodes in one process, each with a tonic server on a loopback port:
//! agreement, forwarding, leader loss, restart from storage, membership, refused requests.
//! Every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mortar_proto::internal::v1::control_client::ControlClient;
use mortar_proto::internal::v1::{ControlStatusRequest, ControlWriteRequest, RaftRequest};
use mortar_storage::{MemStorage, Storage};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;

use super::test_support::Journal;
use super::{ControlConfig, ControlError, ControlPlane, ControlRole};

const CLUSTER: u64 = 0xc0de;
/// Bound of every wait for the group to reach a state (an election, catching up).
const SETTLE: Duration = Duration::from_secs(20);
/// Bound of one write (its own retries end well before).
const WRITE: Duration = Duration::from_secs(15);

struct TestNode {
    id: u64,
    address: String,
    storage: Arc<MemStorage>,
    control: ControlPlane<Journal>,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

fn config(id: u64, storage: Arc<MemStorage>) -> ControlConfig {
    let storage: Arc<dyn Storage> = storage;
    let mut config = ControlConfig::new(id, CLUSTER, storage);
    // Small, so that the tests build snapshots and send them to nodes that are behind.
    config.snapshot_every_entries = 8;
    config.log_kept_after_snapshot = 2;
    config
}

/// Starts node `id`'s control plane on `storage` and serves it on `listener`.
async fn start(id: u64, listener: TcpListener, storage: Arc<MemStorage>) -> TestNode {
    let address = listener.local_addr().expect("local address").to_string();
    let (control, service) = ControlPlane::start(config(id, storage.clone()), Journal::default())
        .await
        .unwrap_or_else(|e| panic!("start node {id}: {e}"));
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    TestNode { id, address, storage, control, stop_server: Some(stop_server), server: Some(server) }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port")
}

/// Starts `count` nodes (ids 1..=count) and initializes them as one group.
async fn cluster(count: u64) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for id in 1..=count {
        nodes.push(start(id, listener().await, Arc::new(MemStorage::new())).await);
    }
    let voters: BTreeMap<u64, String> = nodes.iter().map(|n| (n.id, n.address.clone())).collect();
    nodes[0].control.initialize(voters).await.expect("initialize");
    nodes
}

impl TestNode {
    /// Stops the server, then Raft, as a crash of the node would (its storage stays).
    async fn stop(&mut self) {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            // In-flight calls end within their own timeouts; don't wait on them forever.
            if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
                panic!("node {}'s server did not stop within 5 s", self.id);
            }
        }
        within(Duration::from_secs(5), "raft shutdown", self.control.shutdown()).await.expect("shutdown");
    }

    fn commands(&self) -> Vec<Vec<u8>> {
        self.control.read(|journal| journal.commands())
    }
}

async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// Polls `check` until it returns `Some`, for at most [`SETTLE`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {SETTLE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader every running node in `nodes` agrees on.
async fn agreed_leader(nodes: &[&TestNode]) -> u64 {
    eventually("one leader that every node knows", || {
        let leader = nodes[0].control.status().leader?;
        let agreed = nodes.iter().all(|n| n.control.status().leader == Some(leader));
        let leads = nodes.iter().any(|n| n.id == leader && n.control.status().role == ControlRole::Leader);
        (agreed && leads).then_some(leader)
    })
    .await
}

async fn write(node: &TestNode, command: &str) -> Vec<u8> {
    within(WRITE, "a write", node.control.write(command.as_bytes().to_vec()))
        .await
        .unwrap_or_else(|e| panic!("write {command:?} through node {}: {e}", node.id))
}

async fn same_commands(nodes: &[&TestNode], expected: &[Vec<u8>]) {
    for node in nodes {
        eventually(&format!("node {} to apply {} commands", node.id, expected.len()), || {
            (node.commands() == expected).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_and_survive_a_leader_crash_and_a_restart() {
    let mut nodes = cluster(3).await;
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;

    // A second initialize, on the same node or another, is fine.
    let voters: BTreeMap<u64, String> = nodes.iter().map(|n| (n.id, n.address.clone())).collect();
    for node in &nodes {
        node.control.initialize(voters.clone()).await.expect("initialize again");
    }

    // Writes through a follower are forwarded; every state machine applies the same sequence.
    let follower = nodes.iter().position(|n| n.id != leader).expect("a follower");
    let mut expected = Vec::new();
    for i in 0..5 {
        let command = format!("through-follower-{i}");
        let reply = write(&nodes[follower], &command).await;
        expected.push(command.into_bytes());
        assert_eq!(reply, (expected.len() as u64).to_be_bytes(), "reply of the state machine");
    }
    write(&nodes[nodes.iter().position(|n| n.id == leader).expect("leader")], "on-leader").await;
    expected.push(b"on-leader".to_vec());
    same_commands(&nodes.iter().collect::<Vec<_>>(), &expected).await;
    for node in &nodes {
        let journal = node.control.read(|j| j.clone());
        assert_eq!(journal, nodes[0].control.read(|j| j.clone()), "indexes differ on node {}", node.id);
    }

    // The leader crashes: the other two elect a new one and take writes.
    let old = nodes.iter().position(|n| n.id == leader).expect("leader");
    nodes[old].stop().await;
    let survivors: Vec<&TestNode> = nodes.iter().filter(|n| n.id != leader).collect();
    let new_leader = agreed_leader(&survivors).await;
    assert_ne!(new_leader, leader);
    for i in 0..12 {
        let command = format!("after-crash-{i}");
        write(survivors[i % 2], &command).await;
        expected.push(command.into_bytes());
    }
    same_commands(&survivors, &expected).await;
    let status = survivors[0].control.status();
    assert!(status.term >= 2, "a new term after the election: {status:?}");
    assert_eq!(status.voters, BTreeSet::from([1, 2, 3]));

    // The old leader restarts from what it had synced and catches up (from a snapshot: the log
    // it missed was purged behind the snapshots built meanwhile).
    nodes[old].storage.crash();
    let address = nodes[old].address.clone();
    let listener = TcpListener::bind(&address).await.expect("bind the old address again");
    let restarted = start(leader, listener, nodes[old].storage.clone()).await;
    nodes[old] = restarted;
    same_commands(&nodes.iter().collect::<Vec<_>>(), &expected).await;
    write(&nodes[old], "from-restarted").await;
    expected.push(b"from-restarted".to_vec());
    same_commands(&nodes.iter().collect::<Vec<_>>(), &expected).await;

    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_and_becomes_a_voter() {
    let mut nodes = cluster(3).await;
    let leader = agreed_leader(&nodes.iter().collect::<Vec<_>>()).await;
    let leader_at = nodes.iter().position(|n| n.id == leader).expect("leader");
    let mut expected = Vec::new();
    for i in 0..10 {
        let command = format!("before-join-{i}");
        write(&nodes[leader_at], &command).await;
        expected.push(command.into_bytes());
    }

    let joining = start(4, listener().await, Arc::new(MemStorage::new())).await;
    let follower_at = nodes.iter().position(|n| n.id != leader).expect("a follower");
    let err =
        nodes[follower_at].control.add_learner(4, joining.address.clone()).await.expect_err("on a follower");
    assert!(matches!(err, ControlError::NotLeader { leader: Some(l), .. } if l == leader), "{err}");
    assert!(err.is_retryable());

    within(WRITE, "add learner", nodes[leader_at].control.add_learner(4, joining.address.clone()))
        .await
        .expect("add learner");
    same_commands(&[&joining], &expected).await;
    assert_eq!(joining.control.status().role, ControlRole::Learner);

    let err =
        nodes[leader_at].control.change_voters(BTreeSet::from([1, 2, 5])).await.expect_err("5 is unknown");
    assert!(matches!(err, ControlError::Membership { retryable: false, .. }), "{err}");

    within(WRITE, "change voters", nodes[leader_at].control.change_voters(BTreeSet::from([1, 2, 3, 4])))
        .await
        .expect("change voters");
    let status = nodes[leader_at].control.status();
    assert_eq!(status.voters, BTreeSet::from([1, 2, 3, 4]));
    assert!(status.learners.is_empty(), "{status:?}");
    eventually("node 4 to vote", || (joining.control.status().role == ControlRole::Follower).then_some(()))
        .await;

    write(&joining, "from-new-voter").await;
    expected.push(b"from-new-voter".to_vec());
    nodes.push(joining);
    same_commands(&nodes.iter().collect::<Vec<_>>(), &expected).await;
    for node in &mut nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_cluster_or_node_are_refused() {
    let mut node = start(1, listener().await, Arc::new(MemStorage::new())).await;
    let mut client = ControlClient::connect(format!("http://{}", node.address)).await.expect("connect");

    let raft = |cluster_id, to, payload: &[u8]| RaftRequest {
        cluster_id,
        from: 2,
        to,
        payload: payload.to_vec().into(),
    };
    for (request, mistake) in [(raft(CLUSTER + 1, 1, b""), "cluster"), (raft(CLUSTER, 2, b""), "node 2")] {
        for status in [
            client.append_entries(request.clone()).await.expect_err("append entries"),
            client.vote(request.clone()).await.expect_err("vote"),
            client.install_snapshot(request.clone()).await.expect_err("install snapshot"),
        ] {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert!(status.message().contains(mistake), "{status:?}");
        }
    }
    let write_request =
        |cluster_id, to| ControlWriteRequest { cluster_id, from: 2, to, command: b"x".to_vec().into() };
    for request in [write_request(CLUSTER + 1, 1), write_request(CLUSTER, 3)] {
        let status = client.write(request).await.expect_err("write");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    }
    let status =
        client.status(ControlStatusRequest { cluster_id: CLUSTER, to: 9 }).await.expect_err("status");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Meant for this node, but not a Raft message: refused as the sender's mistake.
    let status = client.vote(raft(CLUSTER, 1, b"\x01garbage")).await.expect_err("garbage");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = client.append_entries(raft(CLUSTER, 1, b"")).await.expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The right cluster and node get an answer.
    let reply = client.status(ControlStatusRequest { cluster_id: CLUSTER, to: 1 }).await.expect("status");
    assert_eq!(reply.get_ref().id, 1);
    node.stop().await;
}

#[tokio::test]
async fn a_write_without_a_group_gives_up_with_no_leader() {
    let mut node = start(1, listener().await, Arc::new(MemStorage::new())).await;
    let err = within(WRITE, "a write", node.control.write(b"x".to_vec())).await.expect_err("no group yet");
    assert!(matches!(err, ControlError::NoLeader { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("majority"), "{err}");

    let err = node.control.write(vec![0; super::COMMAND_BYTES_MAX + 1]).await.expect_err("too large");
    assert!(matches!(err, ControlError::CommandTooLarge { .. }), "{err}");
    assert!(!err.is_retryable());

    let err = node
        .control
        .initialize(BTreeMap::from([(2, "127.0.0.1:1".to_string())]))
        .await
        .expect_err("not in it");
    assert!(matches!(err, ControlError::InvalidConfig { .. }), "{err}");
    node.stop().await;
}
