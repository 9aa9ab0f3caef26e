//! End-to-end tests of actor connections: real `mortar node` processes on loopback, the Rust
//! client's `Connection` and `mortar connect`, with the example `chatRoom` (members connect by
//! name).
//!
//! The property checked across an owner SIGKILL: the connection is made again by itself (through
//! the node it used, which passes it to the new owner), the connection hooks run again there, and
//! every message acknowledged after the new `connected` reaches it. Timings are printed, never
//! asserted; every test is bounded in time and cluster tests run one at a time
//! (`common::SERIAL`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, bounded, mortar_cli, mortar_cli_stdin};
use mortar_node::actor::connection::{ConnEvent, Connection};
use mortar_node::actor::examples::{ChatJoin, ChatRoom, GetMembers, MemberJoined, NewMessage, SendMessage};
use mortar_node::actor::{ActorEvent, CallError};
use mortar_node::prelude::Client;
use mortar_proto::v1::LocateRequest;
use mortar_proto::v1::actor_admin_client::ActorAdminClient;

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on waiting for one event on a connection.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages sent after the connection is made again.
const MESSAGES_AFTER: usize = 50;

/// Starts three nodes and waits until each is ready.
async fn start_cluster() -> Cluster {
    let mut cluster = Cluster::of_size(3).await;
    for id in 1..=3 {
        cluster.start_node(id);
    }
    cluster.wait_ready(&[1, 2, 3]).await;
    cluster
}

async fn client(cluster: &Cluster, id: usize) -> Client {
    Client::connect(&cluster.node(id).grpc.to_string()).await.unwrap().with_timeout(Duration::from_secs(10))
}

/// A chat room key that node `via` sees owned by node `owner`.
async fn room_owned_by(cluster: &Cluster, via: usize, owner: u32) -> String {
    let mut admin = ActorAdminClient::new(cluster.channel(via));
    for i in 0..1000 {
        let key = format!("room-{i}");
        let request = LocateRequest { actor: "chatRoom".into(), key: key.clone() };
        if admin.locate(request).await.unwrap().into_inner().node_id == owner {
            return key;
        }
    }
    panic!("no room of 1000 is owned by node {owner}");
}

async fn next(conn: &mut Connection<ChatRoom>) -> ConnEvent<ChatRoom> {
    tokio::time::timeout(EVENT_TIMEOUT, conn.next())
        .await
        .expect("an event in time")
        .expect("the connection goes on")
        .expect("the event decodes")
}

fn joined(name: &str) -> ActorEvent<ChatRoom> {
    ActorEvent::of(&MemberJoined { name: name.into() })
}

/// The chat message `event` carries, if it is one.
fn message(event: &ConnEvent<ChatRoom>) -> Option<NewMessage> {
    event.event().expect("a newMessage decodes")
}

/// Sends `text` as `sender` through `client`, retrying what was not applied; `None` if the
/// outcome stayed unknown.
async fn send(client: &Client, room: &str, text: &str) -> Option<u64> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let message = SendMessage { sender: Some("writer".into()), text: text.into() };
        match client.actor::<ChatRoom>(room).call(message).await {
            Ok(seq) => return Some(seq),
            Err(e) if e.is_retry_safe() && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(CallError::Unavailable(why)) => {
                println!("send {text}: outcome unknown ({why})");
                return None;
            }
            Err(e) => panic!("send {text} failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_follows_its_actor_when_the_owner_is_killed() {
    let mut cluster = start_cluster().await;
    bounded(TEST_TIMEOUT, async {
        let room = room_owned_by(&cluster, 1, 3).await;
        let via_one = client(&cluster, 1).await;
        let writer = client(&cluster, 2).await;
        let mut ann =
            via_one.actor::<ChatRoom>(&room).connect(&ChatJoin { name: "ann".into() }).await.unwrap();
        assert!(matches!(next(&mut ann).await, ConnEvent::Event(e) if e == joined("ann")));
        for i in 0..5 {
            let seq = send(&writer, &room, &format!("before-{i}")).await.expect("no failure yet");
            assert_eq!(message(&next(&mut ann).await).map(|m| m.seq), Some(seq));
        }
        let first = ann.conn_id();
        // Carl's client talks to the owner itself, and knows node 1 too.
        let endpoints = format!("{},{}", cluster.node(3).grpc, cluster.node(1).grpc);
        let to_owner = Client::connect(&endpoints).await.unwrap().with_timeout(Duration::from_secs(10));
        let mut carl =
            to_owner.actor::<ChatRoom>(&room).connect(&ChatJoin { name: "carl".into() }).await.unwrap();
        assert!(matches!(next(&mut carl).await, ConnEvent::Event(e) if e == joined("carl")));
        assert!(matches!(next(&mut ann).await, ConnEvent::Event(e) if e == joined("carl")));

        cluster.kill(3);
        let killed = Instant::now();
        // The connection ends and is made again on the new owner, whose hooks run again.
        let reconnected = loop {
            match next(&mut ann).await {
                ConnEvent::Reconnected { conn_id } => break conn_id,
                ConnEvent::Closed { reason, .. } => panic!("the connection ended for good: {reason}"),
                _ => {}
            }
        };
        println!("connected again {} ms after the kill", killed.elapsed().as_millis());
        assert_ne!(reconnected, first);
        loop {
            match next(&mut ann).await {
                ConnEvent::Event(e) if e == joined("ann") => break, // the hooks ran again
                ConnEvent::Event(e) if e == joined("carl") => {}    // carl may be back first
                other => panic!("ann got {other:?} before joining again"),
            }
        }
        // Carl's node died: his connection is made again through the other endpoint.
        loop {
            match next(&mut carl).await {
                ConnEvent::Reconnected { .. } => break,
                ConnEvent::Closed { reason, .. } => panic!("carl's connection ended for good: {reason}"),
                _ => {}
            }
        }
        let mut members = ann.call(GetMembers).await.unwrap();
        while members != ["ann", "carl"] {
            // Carl's reconnection may still be on its way; no one else may be listed.
            assert!(members == ["ann"], "{members:?}: the old connections must be gone");
            tokio::time::sleep(Duration::from_millis(50)).await;
            members = ann.call(GetMembers).await.unwrap();
        }

        // Every message acknowledged from now on reaches the connection.
        let mut acked = BTreeSet::new();
        for i in 0..MESSAGES_AFTER {
            if let Some(seq) = send(&writer, &room, &format!("after-{i}")).await {
                acked.insert(seq);
            }
        }
        assert!(!acked.is_empty(), "no message was acknowledged");
        let mut seen = BTreeSet::new();
        while !acked.is_subset(&seen) {
            let event = next(&mut ann).await;
            if let Some(m) = message(&event) {
                seen.insert(m.seq);
            }
            match event {
                ConnEvent::Reconnected { .. } => panic!("the connection was lost again"),
                ConnEvent::Closed { reason, .. } => panic!("the connection ended: {reason}"),
                _ => {}
            }
        }
        println!("{} acknowledged messages after the reconnection, all received", acked.len());
    })
    .await;
    cluster.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mortar_connect_prints_the_traffic_and_sends_calls_as_the_member() {
    let mut cluster = start_cluster().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(2).grpc.to_string();
        let env = [("MORTAR_ENDPOINT", endpoint.as_str())];
        // A listener, connected for the whole test.
        let listener = tokio::process::Command::new(common::MORTAR)
            .args(["connect", "chatRoom", "cli", "--params", r#"{"name": "eve"}"#, "--listen", "--count", "3"])
            .env("MORTAR_ENDPOINT", &endpoint)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Wait until eve is in the room.
        let members = client(&cluster, 1).await;
        let until = Instant::now() + Duration::from_secs(20);
        while members.actor::<ChatRoom>("cli").call(GetMembers).await.unwrap() != ["eve"] {
            assert!(Instant::now() < until, "eve never joined");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Bob's calls come from stdin, sent as bob.
        let run = mortar_cli_stdin(
            &["connect", "chatRoom", "cli", "--params", r#"{"name": "bob"}"#],
            &env,
            b"sendMessage {\"text\": \"hi from bob\"}\ngetMembers\nsendMessage {\"sender\": \"ann\", \"text\": \"x\"}\n",
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines[0]["connected"]["conn"].as_u64().is_some(), "{}", run.stdout);
        let result = |call: &str| lines.iter().find(|l| l["call"] == call).cloned().unwrap_or_default();
        let sent = lines.iter().find(|l| l["call"] == "sendMessage" && l.get("result").is_some()).unwrap();
        assert!(sent["result"].as_u64().is_some(), "{}", run.stdout);
        assert_eq!(result("getMembers")["result"], serde_json::json!(["bob", "eve"]), "{}", run.stdout);
        let spoofed = lines.iter().find(|l| l["call"] == "sendMessage" && l.get("error").is_some()).unwrap();
        assert_eq!(spoofed["error"]["status"], "InvalidArgument", "{}", run.stdout);
        // Eve saw bob join, his message, and bob leave.
        let out = tokio::time::timeout(Duration::from_secs(30), listener.wait_with_output()).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(names, ["memberJoined", "memberJoined", "newMessage"], "{stdout}");
        assert!(stdout.contains("hi from bob") && stdout.contains(r#""sender":"bob""#), "{stdout}");

        // A refused connection exits as `mortar call` does for the same error.
        let taken = mortar_cli(&["connect", "chatRoom", "cli", "--params", r#"{"name": ""}"#], &env).await;
        assert_eq!(taken.code, Some(2), "{}", taken.stderr);
        assert!(taken.stderr.contains("cannot connect"), "{}", taken.stderr);
    })
    .await;
    cluster.stop_all();
}
