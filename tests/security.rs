//! A hostile network around a real cluster: gossip keyed with `--gossip-key-file` hears only the
//! nodes that hold the key, and garbage sent to the gossip port changes nothing. Bounded in time
//! and operations; cluster tests run one at a time (see `common::SERIAL`).

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, bounded, http_get};

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a metric may take to reach a value (nodes export gossip's every second).
const METRIC_WAIT: Duration = Duration::from_secs(20);
/// Datagrams of garbage sent at a node's gossip port.
const GARBAGE_DATAGRAMS: u64 = 200;

/// The value of metric `name` (no labels) in node `id`'s `/metrics`, if exported.
async fn metric(cluster: &Cluster, id: usize, name: &str) -> Option<f64> {
    let (_, body) = http_get(cluster.node(id).http, "/metrics").await?;
    body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until metric `name` of node `id` satisfies `want`; panics with the last value after
/// [`METRIC_WAIT`].
async fn wait_metric(cluster: &Cluster, id: usize, name: &str, want: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + METRIC_WAIT;
    loop {
        let value = metric(cluster, id, name).await;
        if let Some(v) = value.filter(|v| want(*v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "node {id}: {name} is {value:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Three nodes sharing a gossip key see each other; random datagrams at a node's gossip port are
/// dropped and counted; a node restarted with another key is not heard (its peers count its
/// datagrams as unauthenticated and drop it from their view), and is heard again with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_key_keeps_strangers_out_and_the_cluster_serving() {
    let keys = tempfile::tempdir().expect("a temp dir");
    let key = keys.path().join("gossip.key");
    let other = keys.path().join("other.key");
    std::fs::write(&key, "the cluster's secret, 32 bytes!!\n").expect("write the key");
    std::fs::write(&other, "another cluster's secret, 32 b!!\n").expect("write the other key");
    let key_args = ["--gossip-key-file", key.to_str().expect("a UTF-8 path")];
    let mut cluster = Cluster::start_with(&key_args).await;
    bounded(TEST_TIMEOUT, async {
        wait_metric(&cluster, 1, "mortar_gossip_live_members", |v| v == 3.0).await;
        cluster.kv(1).put("before", "keyed").await.expect("put");

        // Garbage at node 1's gossip port (UDP, the gRPC port number).
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..GARBAGE_DATAGRAMS {
            let len = 8 + (i as usize * 37) % 600;
            let datagram: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            socket.send_to(&datagram, cluster.node(1).grpc).expect("send a datagram");
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // UDP may drop some on the way (a full receive buffer): most must be counted.
        let name = "mortar_gossip_datagrams_unauthenticated_total";
        wait_metric(&cluster, 1, name, |v| v >= (GARBAGE_DATAGRAMS / 2) as f64).await;
        assert_eq!(metric(&cluster, 1, "mortar_gossip_live_members").await, Some(3.0));
        assert_eq!(cluster.kv(2).get("before").await.expect("get").as_deref(), Some(&b"keyed"[..]));

        // Node 3 with another key: nobody hears it, and it hears nobody.
        cluster.kill(3);
        let counted = metric(&cluster, 1, name).await.expect("exported above");
        cluster.set_extra_args(&["--gossip-key-file", other.to_str().expect("a UTF-8 path")]);
        cluster.start_node(3);
        wait_metric(&cluster, 1, name, |v| v > counted).await;
        wait_metric(&cluster, 1, "mortar_gossip_live_members", |v| v == 2.0).await;
        wait_metric(&cluster, 3, "mortar_gossip_live_members", |v| v == 1.0).await;

        // With the cluster's key again it is a member as before, and the data is all there.
        cluster.kill(3);
        cluster.set_extra_args(&key_args);
        cluster.restart(3).await;
        wait_metric(&cluster, 1, "mortar_gossip_live_members", |v| v == 3.0).await;
        wait_metric(&cluster, 3, "mortar_gossip_live_members", |v| v == 3.0).await;
        let kv = cluster.kv(3);
        let value = common::retry_unavailable(Duration::from_secs(10), || kv.get("before"))
            .await
            .expect("get through node 3");
        assert_eq!(value.as_deref(), Some(&b"keyed"[..]));
    })
    .await;
}

/// Silent connections beyond `--connections-max` are closed as soon as they are accepted, the
/// rest at the handshake deadline, and the node serves throughout and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_and_closed_and_the_node_keeps_serving() {
    const CAP: usize = 64;
    const SILENT: usize = 100;
    let cluster = Cluster::start_with(&["--connections-max", &CAP.to_string()]).await;
    bounded(TEST_TIMEOUT, async {
        cluster.kv(1).put("before", "capped").await.expect("put");
        let mut silent = Vec::new();
        for _ in 0..SILENT {
            silent.push(tokio::net::TcpStream::connect(cluster.node(1).grpc).await.expect("connect"));
        }
        let refused = r#"mortar_node_connections_refused_total{port="grpc"}"#;
        wait_metric(&cluster, 1, refused, |v| v >= (SILENT - CAP) as f64).await;

        // Each silent connection is closed by the node: over the cap at once, the others when
        // their handshake deadline (10 s) passes.
        // (The node sends its HTTP/2 SETTINGS first: read to the end.)
        let mut buf = Vec::new();
        for (i, stream) in silent.iter_mut().enumerate() {
            let read = tokio::io::AsyncReadExt::read_to_end(stream, &mut buf);
            let closed = tokio::time::timeout(Duration::from_secs(30), read).await;
            assert!(closed.is_ok(), "silent connection {i} is still open");
        }
        let timed_out = r#"mortar_node_connections_timed_out_total{port="grpc"}"#;
        wait_metric(&cluster, 1, timed_out, |v| v >= 1.0).await;

        let kv = cluster.kv(1);
        common::retry_unavailable(Duration::from_secs(10), || kv.put("after", "capped"))
            .await
            .expect("node 1 serves after the flood");
        let value = cluster.kv(2).get("before").await.expect("get");
        assert_eq!(value.as_deref(), Some(&b"capped"[..]));
    })
    .await;
}

/// A cluster started with client and admin tokens: without a token, or with a wrong one, nothing
/// is read, written or listed (`Unauthenticated`); the client token reads and writes, including
/// an actor call forwarded to another node, but cannot administer (`PermissionDenied`); the admin
/// token does both. No refusal shows the token presented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_keep_out_who_has_none_and_clients_out_of_administration() {
    let files = tempfile::tempdir().expect("a temp dir");
    let (client_file, admin_file) = (files.path().join("client.token"), files.path().join("admin.token"));
    const CLIENT: &str = "client-secret-token-0001";
    const ADMIN: &str = "admin-secret-token-0001";
    std::fs::write(&client_file, format!("{CLIENT}\n")).expect("write the client token");
    std::fs::write(&admin_file, format!("{ADMIN}\n")).expect("write the admin token");
    let args = [
        "--auth-token-file",
        client_file.to_str().expect("a UTF-8 path"),
        "--admin-token-file",
        admin_file.to_str().expect("a UTF-8 path"),
    ];
    let cluster = Cluster::start_with(&args).await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let cli = |args: Vec<&'static str>, token: Option<&'static str>| {
            let endpoint = endpoint.clone();
            async move {
                let mut all: Vec<&str> = args.clone();
                all.extend(["--endpoint", endpoint.as_str()]);
                let env: Vec<(&str, &str)> = token.map(|t| vec![("MORTAR_TOKEN", t)]).unwrap_or_default();
                common::mortar_cli(&all, &env).await
            }
        };
        let put = || vec!["kv", "put", "k", "v"];
        let members = || vec!["admin", "members"];

        let none = cli(put(), None).await;
        assert_ne!(none.code, Some(0), "a put without a token: {none:?}");
        assert!(none.stderr.contains("needs a token"), "{}", none.stderr);
        let wrong = cli(put(), Some("not-the-token-at-all-0001")).await;
        assert_ne!(wrong.code, Some(0), "a put with a wrong token: {wrong:?}");
        assert!(wrong.stderr.contains("not valid"), "{}", wrong.stderr);
        assert!(!wrong.stderr.contains("not-the-token-at-all-0001"), "{}", wrong.stderr);
        let listing = cli(members(), None).await;
        assert_ne!(listing.code, Some(0), "members without a token: {listing:?}");

        let client_put = cli(put(), Some(CLIENT)).await;
        assert_eq!(client_put.code, Some(0), "{client_put:?}");
        let client_get = cli(vec!["kv", "get", "k"], Some(CLIENT)).await;
        assert_eq!(client_get.stdout.trim(), "v", "{client_get:?}");
        let from_file = common::mortar_cli(
            &["kv", "get", "k", "--endpoint", &endpoint],
            &[("MORTAR_TOKEN_FILE", client_file.to_str().expect("a UTF-8 path"))],
        )
        .await;
        assert_eq!(from_file.stdout.trim(), "v", "{from_file:?}");
        let denied = cli(members(), Some(CLIENT)).await;
        assert_ne!(denied.code, Some(0), "members with the client token: {denied:?}");
        assert!(denied.stderr.contains("admin token"), "{}", denied.stderr);
        let drain = cli(vec!["admin", "drain", "2"], Some(CLIENT)).await;
        assert_ne!(drain.code, Some(0), "a drain with the client token: {drain:?}");

        let admin_members = cli(members(), Some(ADMIN)).await;
        assert_eq!(admin_members.code, Some(0), "{admin_members:?}");
        let admin_get = cli(vec!["kv", "get", "k"], Some(ADMIN)).await;
        assert_eq!(admin_get.stdout.trim(), "v", "{admin_get:?}");

        // Actor calls through node 1 for many keys: some are owned elsewhere and forwarded, with
        // node 1's own credential.
        for i in 0..12 {
            let key = format!("room-{i}");
            let key: &'static str = Box::leak(key.into_boxed_str());
            let call = cli(vec!["call", "counter", key, "increment"], Some(CLIENT)).await;
            assert_eq!(call.code, Some(0), "{call:?}");
        }
        let unauthenticated_call = cli(vec!["call", "counter", "room-0", "increment"], None).await;
        assert_ne!(unauthenticated_call.code, Some(0), "{unauthenticated_call:?}");

        let refused = metric(&cluster, 1, r#"mortar_node_auth_refused_total{reason="missing"}"#).await;
        assert!(refused.is_some_and(|v| v >= 1.0), "{refused:?}");
    })
    .await;
}

/// Writes a CA and a node certificate for `hosts` into `dir` with `mortar cert`; returns the
/// paths of ca.pem, node.pem and node.key.
async fn make_certs(dir: &std::path::Path, hosts: &[&str]) -> [String; 3] {
    let dir_text = dir.to_str().expect("a UTF-8 path");
    let ca = common::mortar_cli(&["cert", "ca", "--dir", dir_text], &[]).await;
    assert_eq!(ca.code, Some(0), "{ca:?}");
    let mut node_args = vec!["cert", "node", "--dir", dir_text];
    node_args.extend_from_slice(hosts);
    let node = common::mortar_cli(&node_args, &[]).await;
    assert_eq!(node.code, Some(0), "{node:?}");
    ["ca.pem", "node.pem", "node.key"].map(|f| dir.join(f).to_str().expect("a UTF-8 path").to_string())
}

/// A cluster with `--tls-cert/--tls-key/--tls-ca` (certificates from `mortar cert`): its peers
/// reach each other (readiness needs a quorum of them, over mutual TLS) and clients with `--ca`
/// put, get and call actors (calls forwarded between nodes over TLS); a client without TLS, or
/// trusting another CA, is not served; the peer service refuses a TLS client without a node
/// certificate (and counts it) and a certificate another CA signed never gets through the
/// handshake; a node whose certificate does not name its address refuses to start, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_and_peers_and_keeps_non_nodes_out_of_peer_services() {
    let files = tempfile::tempdir().expect("a temp dir");
    let (ours, theirs) = (files.path().join("ours"), files.path().join("theirs"));
    let [ca, cert, key] = make_certs(&ours, &["127.0.0.1", "localhost"]).await;
    let [other_ca, other_cert, other_key] = make_certs(&theirs, &["127.0.0.1"]).await;
    let args = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str(), "--tls-ca", ca.as_str()];
    let cluster = Cluster::start_with(&args).await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let cli = |args: Vec<&str>, ca: Option<&str>| {
            let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            all.extend(["--endpoint".to_string(), endpoint.clone()]);
            let env: Vec<(String, String)> =
                ca.map(|ca| vec![("MORTAR_CA".to_string(), ca.to_string())]).unwrap_or_default();
            async move {
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                common::mortar_cli(&all, &env).await
            }
        };
        let put = cli(vec!["kv", "put", "k", "v"], Some(&ca)).await;
        assert_eq!(put.code, Some(0), "{put:?}");
        let get = cli(vec!["kv", "get", "k"], Some(&ca)).await;
        assert_eq!(get.stdout.trim(), "v", "{get:?}");
        for i in 0..12 {
            let key = format!("room-{i}");
            let call = cli(vec!["call", "counter", &key, "increment"], Some(&ca)).await;
            assert_eq!(call.code, Some(0), "{call:?}");
        }
        // The image's HEALTHCHECK: the HTTP port stays plain.
        let http = cluster.node(1).http.to_string();
        let health = common::mortar_cli(&["health", "--http", &http], &[]).await;
        assert_eq!(health.code, Some(0), "{health:?}");
        let ready = common::mortar_cli(&["health", "--ready", "--http", &http], &[]).await;
        assert_eq!(ready.code, Some(0), "{ready:?}");
        let closed = common::free_addresses(1)[0].to_string();
        let nobody = common::mortar_cli(&["health", "--http", &closed], &[]).await;
        assert_ne!(nobody.code, Some(0), "{nobody:?}");
        let members = cli(vec!["admin", "members"], Some(&ca)).await;
        assert_eq!(members.code, Some(0), "{members:?}");
        assert!(members.stdout.matches("127.0.0.1:").count() >= 3, "{members:?}");

        let plain = cli(vec!["kv", "get", "k"], None).await;
        assert_ne!(plain.code, Some(0), "a client without TLS: {plain:?}");
        let stranger = cli(vec!["kv", "get", "k"], Some(&other_ca)).await;
        assert_ne!(stranger.code, Some(0), "a client trusting another CA: {stranger:?}");

        // The peer service, over TLS, without a node certificate.
        let read = |path: &str| std::fs::read(path).expect("read a PEM file");
        let node_info = |dialer: mortar_node::tls::Dialer| {
            let endpoint = cluster.node(2).grpc.to_string();
            async move {
                let channel = dialer.endpoint(&endpoint).expect("an endpoint").connect_lazy();
                let mut client = mortar_proto::internal::v1::epoxy_client::EpoxyClient::new(channel);
                let request = mortar_proto::internal::v1::NodeInfoRequest { cluster_id: 0 };
                tokio::time::timeout(Duration::from_secs(10), client.node_info(request))
                    .await
                    .expect("an answer")
            }
        };
        let anonymous = node_info(mortar_node::tls::Dialer::client(&read(&ca), None)).await;
        let status = anonymous.expect_err("a peer service without a node certificate");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("node certificate"), "{status:?}");
        let refused =
            metric(&cluster, 2, r#"mortar_node_auth_refused_total{reason="no_node_certificate"}"#).await;
        assert!(refused.is_some_and(|v| v >= 1.0), "{refused:?}");
        // With the node certificate the check lets it through (the wrong cluster id is refused next).
        let node =
            node_info(mortar_node::tls::Dialer::client(&read(&ca), Some((&read(&cert), &read(&key))))).await;
        let status = node.expect_err("cluster id 0 is not this cluster's");
        assert_ne!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        // A certificate of another CA: the handshake fails, nothing reaches a service.
        let forged =
            mortar_node::tls::Dialer::client(&read(&ca), Some((&read(&other_cert), &read(&other_key))));
        let status = node_info(forged).await.expect_err("another CA's certificate");
        // The server's alert ends the connection (TLS 1.3 checks the client's certificate after
        // the client thinks the handshake done, so the call fails as a transport error, which
        // tonic reports as one of these, depending on when the connection closes).
        let transport = [tonic::Code::Unavailable, tonic::Code::Unknown, tonic::Code::Cancelled];
        assert!(transport.contains(&status.code()), "{status:?}");
        assert!(!status.message().contains("cluster"), "a service answered: {status:?}");

        // A node whose certificate does not name the address its peers dial does not start.
        let wrong_host = common::mortar_cli(
            &[
                "node",
                "--id",
                "1",
                "--initial-cluster",
                "1=127.0.0.2:7999",
                "--data-dir",
                files.path().join("data").to_str().expect("a UTF-8 path"),
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-ca",
                &ca,
            ],
            &[],
        )
        .await;
        assert_ne!(wrong_host.code, Some(0), "{wrong_host:?}");
        assert!(wrong_host.stderr.contains("cannot serve as this node's"), "{}", wrong_host.stderr);
        assert!(wrong_host.stderr.contains("127.0.0.2"), "{}", wrong_host.stderr);
    })
    .await;
}
