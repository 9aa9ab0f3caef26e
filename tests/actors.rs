//! End-to-end tests of virtual actors: three real `mortar node` processes on loopback, driven
//! through `mortar.v1.Actors` / `ActorAdmin` and the `mortar` CLI. Every test is bounded in time
//! and operations; cluster tests run one at a time (see `common::SERIAL`).
//!
//! Outcomes are recorded as in a Jepsen history: an increment is *acknowledged* (ok), *not
//! applied* (an error that says so), or *unknown* (a timeout or a lost connection: it may or may
//! not have happened). A counter must then be at least the sum of its acknowledged increments and
//! at most that plus its unknown ones; with no unknown increment, exactly the acknowledged sum.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, NODES, bounded, mortar_cli, mortar_cli_stdin};
use mortar_node::actor::CallError;
use mortar_proto::v1::actor_admin_client::ActorAdminClient;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{ActorCallRequest, ActorCallResponse, LocateRequest, LocateResponse};
use nix::sys::signal::Signal;
use tonic::Code;
use tonic::transport::Channel;

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Bound on one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on gossip agreeing on a membership change.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on retrying a read until a node answers it.
const READ_RETRY: Duration = Duration::from_secs(20);
/// Counters of the failover test.
const COUNTERS: usize = 20;
/// Increments of each counter in each phase of the failover test.
const INCREMENTS_PER_PHASE: usize = 5;

/// gRPC clients of every node, shareable with tasks (the cluster itself stays with the test).
#[derive(Clone)]
struct Nodes {
    channels: Vec<Channel>,
}

impl Nodes {
    fn of(cluster: &Cluster) -> Nodes {
        Nodes { channels: (1..=NODES).map(|id| cluster.channel(id)).collect() }
    }

    async fn call_full(
        &self,
        id: usize,
        actor: &str,
        key: &str,
        action: &str,
        args: &str,
    ) -> Result<ActorCallResponse, tonic::Status> {
        self.call_with_input(id, actor, key, action, args, "").await
    }

    /// A call carrying the actor's creation input (`""` for none).
    async fn call_with_input(
        &self,
        id: usize,
        actor: &str,
        key: &str,
        action: &str,
        args: &str,
        input: &str,
    ) -> Result<ActorCallResponse, tonic::Status> {
        let mut request = tonic::Request::new(ActorCallRequest {
            actor: actor.into(),
            key: key.into(),
            action: action.into(),
            args_json: args.into(),
            forwarded: false,
            input_json: input.into(),
        });
        request.set_timeout(CALL_TIMEOUT);
        let mut client = ActorsClient::new(self.channels[id - 1].clone());
        match tokio::time::timeout(CALL_TIMEOUT, client.call(request)).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("the test gave up waiting")),
        }
    }

    async fn call(
        &self,
        id: usize,
        actor: &str,
        key: &str,
        action: &str,
        args: &str,
    ) -> Result<String, tonic::Status> {
        self.call_full(id, actor, key, action, args).await.map(|r| r.result_json)
    }

    async fn locate(&self, id: usize, actor: &str, key: &str) -> Result<LocateResponse, tonic::Status> {
        let mut admin = ActorAdminClient::new(self.channels[id - 1].clone());
        let request = LocateRequest { actor: actor.into(), key: key.into() };
        match tokio::time::timeout(CALL_TIMEOUT, admin.locate(request)).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("the test gave up waiting")),
        }
    }

    async fn owner(&self, via: usize, key: &str) -> usize {
        self.locate(via, "counter", key).await.expect("locate").node_id as usize
    }

    /// Waits until each node in `ids` sees exactly `live` as the live members.
    async fn wait_for_membership(&self, ids: &[usize], live: &[u32]) {
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        for &id in ids {
            loop {
                let seen = self.locate(id, "counter", "probe").await.map(|l| l.live_members);
                if seen.as_ref().is_ok_and(|s| s == live) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {id} sees members {seen:?}, expected {live:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Reads counter `key` through `id`, retrying `UNAVAILABLE` (a read has no effect, so retrying
    /// one of unknown outcome is harmless).
    async fn read_count(&self, id: usize, key: &str) -> i64 {
        let deadline = Instant::now() + READ_RETRY;
        loop {
            match self.call(id, "counter", key, "getCount", "").await {
                Ok(json) => return json.parse().expect("a count is a JSON integer"),
                Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                    assert!(
                        Instant::now() < deadline,
                        "node {id} did not answer getCount of {key}: {status:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("getCount of {key} through node {id}: {status:?}"),
            }
        }
    }
}

/// A counter's history: acknowledged and unknown increments.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    acked: i64,
    unknown: i64,
    not_applied: u64,
}

impl Tally {
    fn record(&mut self, amount: i64, result: &Result<String, tonic::Status>) {
        match result {
            Ok(_) => self.acked += amount,
            Err(status) => match CallError::from_status(status) {
                e if e.is_retry_safe() => self.not_applied += 1,
                CallError::Unavailable(_) => self.unknown += amount,
                e => panic!("an increment failed with {e:?}"),
            },
        }
    }

    fn check(&self, key: &str, value: i64) {
        assert!(
            self.acked <= value && value <= self.acked + self.unknown,
            "counter {key} is {value}, but its acknowledged increments sum to {} (plus {} unknown)",
            self.acked,
            self.unknown
        );
    }
}

type Tallies = Arc<Mutex<BTreeMap<String, Tally>>>;

/// Increments every counter `rounds` times, each counter in its own task, through the nodes in
/// `via` in turn; amounts vary so that a lost or doubled increment shows.
async fn increment_all(nodes: &Nodes, keys: &[String], rounds: usize, via: &[usize], tallies: &Tallies) {
    let mut tasks = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let (nodes, tallies, via, key) = (nodes.clone(), tallies.clone(), via.to_vec(), key.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let node = via[(k + round) % via.len()];
                let amount = (round % 3 + 1) as i64;
                let args = format!(r#"{{"amount": {amount}}}"#);
                let result = nodes.call(node, "counter", &key, "increment", &args).await;
                tallies.lock().unwrap().entry(key.clone()).or_default().record(amount, &result);
            }
        }));
    }
    for task in tasks {
        task.await.expect("an increment task panicked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_keep_every_acknowledged_increment_when_their_owner_is_killed() {
    let mut cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        let keys: Vec<String> = (0..COUNTERS).map(|i| format!("failover-{i}")).collect();
        let tallies: Tallies = Arc::default();
        increment_all(&nodes, &keys, INCREMENTS_PER_PHASE, &[1, 2, 3], &tallies).await;
        for (key, tally) in tallies.lock().unwrap().iter() {
            assert_eq!(
                (tally.unknown, tally.not_applied),
                (0, 0),
                "{key}: all nodes are up, every increment is acknowledged"
            );
        }

        // The victim is the node that owns the most counters.
        let mut owners = BTreeMap::new();
        for key in &keys {
            owners.insert(key.clone(), nodes.owner(1, key).await);
        }
        let victim = (1..=NODES).max_by_key(|id| owners.values().filter(|o| *o == id).count()).unwrap();
        let moved: Vec<String> =
            owners.iter().filter(|(_, o)| **o == victim).map(|(k, _)| k.clone()).collect();
        let survivors: Vec<usize> = (1..=NODES).filter(|&id| id != victim).collect();
        eprintln!("killing node {victim}, the owner of {} of the {COUNTERS} counters", moved.len());

        // Increment through every node while the victim is killed mid-way...
        let during = {
            let (nodes, keys, tallies) = (nodes.clone(), keys.clone(), tallies.clone());
            tokio::spawn(async move {
                increment_all(&nodes, &keys, INCREMENTS_PER_PHASE, &[1, 2, 3], &tallies).await
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        cluster.kill(victim);
        let killed_at = Instant::now();
        during.await.unwrap();
        // ...then through the survivors only.
        increment_all(&nodes, &keys, INCREMENTS_PER_PHASE, &survivors, &tallies).await;
        eprintln!("increments done {:?} after the kill", killed_at.elapsed());

        let tallies = tallies.lock().unwrap().clone();
        for key in &keys {
            assert_ne!(
                nodes.owner(survivors[0], key).await,
                victim,
                "{key} is still placed on the dead node"
            );
            for &id in &survivors {
                tallies[key].check(key, nodes.read_count(id, key).await);
            }
        }
        let unknown: i64 = tallies.values().map(|t| t.unknown).sum();
        let not_applied: u64 = tallies.values().map(|t| t.not_applied).sum();
        eprintln!(
            "increments of unknown outcome (in flight at the kill): {unknown}; not applied: {not_applied}"
        );

        // The killed node restarts, rejoins, gets its actors back and reads the same counts.
        cluster.restart(victim).await;
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        for key in &keys {
            let value = nodes.read_count(victim, key).await;
            tallies[key].check(key, value);
            for &id in &survivors {
                assert_eq!(nodes.read_count(id, key).await, value, "{key} reads alike through node {id}");
            }
            if moved.contains(key) {
                assert_eq!(nodes.owner(1, key).await, victim, "{key} moved back to the restarted node");
                let after =
                    nodes.call_full(victim, "counter", key, "increment", r#"{"amount": 100}"#).await.unwrap();
                assert_eq!(after.result_json.parse::<i64>().unwrap(), value + 100);
                assert_eq!(after.served_by as usize, victim);
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_serves_no_stale_read_and_loses_no_write() {
    let cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        let key = "paused";
        let owner = nodes.owner(1, key).await;
        let other = if owner == 1 { 2 } else { 1 };
        let mut tally = Tally::default();
        for _ in 0..3 {
            let result = nodes.call(owner, "counter", key, "increment", r#"{"amount": 1}"#).await;
            tally.record(1, &result);
        }
        assert_eq!(nodes.read_count(owner, key).await, 3);

        // Pause the owner longer than its lease and than failure detection.
        cluster.signal(owner, Signal::SIGSTOP);
        let paused_at = Instant::now();
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        while nodes.owner(other, key).await == owner {
            assert!(Instant::now() < deadline, "node {other} never stopped placing {key} on the paused node");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("node {other} moved {key} away from paused node {owner} after {:?}", paused_at.elapsed());
        for _ in 0..4 {
            let result = nodes.call(other, "counter", key, "increment", r#"{"amount": 10}"#).await;
            assert!(result.is_ok(), "increment through node {other} while {owner} is paused: {result:?}");
            tally.record(10, &result);
        }
        let expected = tally.acked;
        assert_eq!(expected, 43);

        // Resume it: whatever it answers for the actor must include the increments made meanwhile.
        cluster.signal(owner, Signal::SIGCONT);
        let resumed_at = Instant::now();
        let mut answered = 0;
        while resumed_at.elapsed() < Duration::from_secs(3) {
            match nodes.call(owner, "counter", key, "getCount", "").await {
                Ok(json) => {
                    let value: i64 = json.parse().unwrap();
                    assert_eq!(
                        value,
                        expected,
                        "the resumed node served a stale read {:?} after resuming",
                        resumed_at.elapsed()
                    );
                    answered += 1;
                }
                Err(status) => {
                    let e = CallError::from_status(&status);
                    assert!(matches!(e, CallError::Retry(_) | CallError::Unavailable(_)), "{e:?}");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered > 0, "the resumed node never answered");
        // Whether the resumed node found out through a fenced ownership check (its activation was
        // still there) or through gossip first (it had stopped the activation) depends on timing.
        let metrics = common::http_get(cluster.node(owner).http, "/metrics").await.map(|(_, body)| body);
        let fenced = metrics
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("mortar_node_actor_fenced_total"))
            .map(str::to_string);
        eprintln!("resumed node {owner}: {answered} reads answered, all current; {fenced:?}");
        // It writes again (through whichever node owns the actor now), and nothing was lost.
        let result = nodes.call(owner, "counter", key, "increment", r#"{"amount": 100}"#).await;
        tally.record(100, &result);
        for id in 1..=NODES {
            tally.check(key, nodes.read_count(id, key).await);
        }
        assert_eq!(tally.unknown, 0, "no increment had an unknown outcome");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_sleeps_and_wakes_with_its_created_state() {
    let cluster = Cluster::start_with(&["--actor-idle-timeout-ms", "300"]).await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        // Created with an input: the creating call stores it, later inputs are ignored.
        let created =
            nodes.call_with_input(1, "counter", "sleepy", "getCount", "", r#"{"start": 40}"#).await.unwrap();
        assert_eq!(created.result_json, "40");
        let again =
            nodes.call_with_input(2, "counter", "sleepy", "getCount", "", r#"{"start": 7}"#).await.unwrap();
        assert_eq!(again.result_json, "40", "the input of a call to an existing actor is ignored");
        let first = nodes.call_full(3, "counter", "sleepy", "increment", r#"{"amount": 2}"#).await.unwrap();
        assert_eq!(first.result_json, "42");
        let owner = first.served_by as usize;
        assert_eq!(first.generation, created.generation, "one activation served all three calls");

        // Idle past its timeout, it leaves the owner's memory.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let located = nodes.locate(owner, "counter", "sleepy").await.unwrap();
            if !located.active_here {
                break;
            }
            assert!(Instant::now() < deadline, "the idle actor is still active: {located:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listed =
            mortar_cli(&["admin", "actors"], &[("MORTAR_ENDPOINT", &cluster.node(owner).grpc.to_string())])
                .await;
        assert!(!listed.stdout.contains("counter/sleepy"), "{listed:?}");

        // The next call wakes it, in a new activation, with every write in place.
        let woken = nodes.call_full(2, "counter", "sleepy", "getCount", "").await.unwrap();
        assert_eq!(woken.result_json, "42");
        assert!(woken.generation > first.generation, "{woken:?} after {first:?}");
        assert!(nodes.locate(owner, "counter", "sleepy").await.unwrap().active_here);

        // A bad input is refused and creates nothing.
        let status = nodes
            .call_with_input(1, "counter", "bad-input", "getCount", "", r#"{"start": "x"}"#)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("input"), "{status:?}");
        let fresh = nodes.call_full(1, "counter", "bad-input", "getCount", "").await.unwrap();
        assert_eq!(fresh.result_json, "0");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_clear_statuses_and_leave_the_actor_unchanged() {
    let cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        let first = nodes.call_full(1, "counter", "errors", "increment", r#"{"amount": 7}"#).await.unwrap();
        let cases: [(&str, &str, &str, Code, &str); 5] = [
            ("nope", "increment", "{}", Code::NotFound, "no actor type named"),
            ("counter", "nope", "{}", Code::NotFound, "has no action"),
            ("counter", "increment", "{\"amount\": ", Code::InvalidArgument, "not valid"),
            ("counter", "increment", "[1, 2]", Code::InvalidArgument, "not valid"),
            (
                "counter",
                "increment",
                r#"{"amount": 9223372036854775807}"#,
                Code::FailedPrecondition,
                "overflows",
            ),
        ];
        for id in 1..=NODES {
            for (actor, action, args, code, text) in cases {
                let status = nodes.call(id, actor, "errors", action, args).await.unwrap_err();
                assert_eq!(status.code(), code, "{actor}.{action}({args}) through node {id}: {status:?}");
                assert!(status.message().contains(text), "{status:?}");
                if code == Code::FailedPrecondition {
                    // The counter's user error, with its code and metadata, forwarded or not.
                    let e = CallError::from_status(&status);
                    let metadata = serde_json::json!({"count": 7, "amount": i64::MAX});
                    let expected = CallError::User {
                        code: "overflow".into(),
                        message: format!("adding {} to 7 overflows", i64::MAX),
                        metadata,
                    };
                    assert_eq!(e, expected, "through node {id}");
                }
            }
        }
        let status = nodes.call(1, "counter", "", "getCount", "").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        // Same activation, same state.
        let after = nodes.call_full(2, "counter", "errors", "getCount", "").await.unwrap();
        assert_eq!(after.result_json, "7");
        assert_eq!((after.generation, after.served_by), (first.generation, first.served_by));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_calls_subscribes_locates_and_lists() {
    let cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        nodes.wait_for_membership(&[1, 2, 3], &[1, 2, 3]).await;
        let endpoints: Vec<String> = (1..=NODES).map(|id| cluster.node(id).grpc.to_string()).collect();
        let on = |id: usize| vec![("MORTAR_ENDPOINT", endpoints[id - 1].as_str())];

        let run = mortar_cli(&["call", "counter", "cli", "increment", r#"{"amount": 2}"#], &on(1)).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "2\n"), "{run:?}");
        let run = mortar_cli(&["call", "counter", "cli", "getCount"], &on(3)).await;
        assert_eq!(run.stdout, "2\n", "{run:?}");
        let run =
            mortar_cli(&["call", "counter", "cli-made", "getCount", "--input", r#"{"start": 5}"#], &on(2))
                .await;
        assert_eq!(run.stdout, "5\n", "{run:?}");
        let run = mortar_cli(&["call", "counter", "cli-made", "increment"], &on(1)).await;
        assert_eq!(run.stdout, "6\n", "the created state was stored: {run:?}");

        // Errors: one line on stderr, and an exit status that says which kind (cli/exit.rs).
        for (args, code, text) in [
            (vec!["call", "nope", "k", "x"], 3, "error: NotFound: no actor type named \"nope\""),
            (
                vec!["call", "counter", "k", "nope"],
                3,
                "error: NotFound: actor counter has no action \"nope\"",
            ),
            (
                vec!["call", "counter", "never", "getCount", "--get"],
                3,
                "error: NotFound: actor counter/never",
            ),
            (vec!["call", "counter", "k", "increment", "{"], 2, "error: the arguments are not valid JSON"),
            (vec!["call", "counter", "k", "increment", r#"{"amount": "x"}"#], 2, "error: InvalidArgument"),
            (
                vec!["call", "counter", "k", "getCount", "--input", "{"],
                2,
                "error: the --input is not valid JSON",
            ),
        ] {
            let run = mortar_cli(&args, &on(2)).await;
            assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
            assert_eq!(run.stderr_lines().len(), 1, "{run:?}");
            assert!(run.stderr.starts_with(text), "{args:?}: {run:?}");
        }
        // A user error, through a node that may forward it: `error: <code>: <message>`, then the
        // metadata as one line of JSON; exit 4.
        let max = format!(r#"{{"amount": {}}}"#, i64::MAX);
        let run = mortar_cli(&["call", "counter", "cli-max", "increment", &max], &on(1)).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = mortar_cli(&["call", "counter", "cli-max", "increment", &max], &on(3)).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(4), ""), "{run:?}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 2, "{run:?}");
        assert_eq!(lines[0], format!("error: overflow: adding {0} to {0} overflows", i64::MAX), "{run:?}");
        let metadata: serde_json::Value = serde_json::from_str(lines[1]).expect("the metadata is JSON");
        assert_eq!(metadata, serde_json::json!({"count": i64::MAX, "amount": i64::MAX}));
        // Nobody listens on a just-released port: not applied, retrying is safe; exit 5.
        let closed = common::free_addresses(1)[0].to_string();
        let run = mortar_cli(&["call", "counter", "k", "getCount", "--endpoint", &closed], &[]).await;
        assert_eq!(run.code, Some(5), "{run:?}");
        assert!(run.stderr.starts_with(&format!("error: cannot reach a mortar node at {closed}")), "{run:?}");

        // Subscribe through a node that does not own the actor, then cause two events.
        let owner = nodes.owner(1, "cli").await;
        let through = if owner == 3 { 1 } else { 3 };
        let subscriber = tokio::spawn({
            let env = on(through).iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
            async move {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                mortar_cli(&["subscribe", "counter", "cli", "--event", "newCount", "--count", "2"], &env)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        for _ in 0..2 {
            nodes.call(2, "counter", "cli", "increment", r#"{"amount": 1}"#).await.unwrap();
        }
        let run = subscriber.await.unwrap();
        assert_eq!(run.code, Some(0), "{run:?}");
        let lines: Vec<serde_json::Value> =
            run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{run:?}");
        assert_eq!(lines[0]["event"], "newCount");
        assert_eq!(lines[0]["data"]["count"], 3);
        assert_eq!(lines[1]["data"]["count"], 4);
        assert_eq!(lines[1]["node"], owner);

        let run = mortar_cli(&["admin", "locate", "counter", "cli"], &on(2)).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(run.stdout.lines().next(), Some(owner.to_string().as_str()), "{run:?}");

        let run = mortar_cli(&["admin", "actors"], &on(1)).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let block =
            run.stdout.split("node ").find(|b| b.starts_with(&format!("{owner} "))).unwrap_or_default();
        assert!(block.contains("counter/cli  generation 1"), "{run:?}");

        // A chat room through a node that forwards.
        let run = mortar_cli(
            &["call", "chatRoom", "lobby", "sendMessage", r#"{"sender": "ann", "text": "hi"}"#],
            &on(1),
        )
        .await;
        assert_eq!(run.stdout, "0\n", "{run:?}");
        let run = mortar_cli(&["call", "chatRoom", "lobby", "getHistory"], &on(2)).await;
        assert_eq!(run.stdout, "[{\"seq\":0,\"sender\":\"ann\",\"text\":\"hi\"}]\n", "{run:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locating_an_unregistered_actor_type_is_not_found() {
    let cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        // As a call says: an unregistered type has no owner.
        let status = nodes.locate(1, "nosuch", "k").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains("no actor type named \"nosuch\""), "{status:?}");
        let endpoint = cluster.node(2).grpc.to_string();
        let run = mortar_cli(&["admin", "locate", "nosuch", "k"], &[("MORTAR_ENDPOINT", &endpoint)]).await;
        assert_eq!(run.code, Some(3), "{run:?}");
        assert!(run.stderr.starts_with("error: NotFound: no actor type named \"nosuch\""), "{run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_argument_is_refused_by_name() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let env = [("MORTAR_ENDPOINT", endpoint.as_str())];
        let run = mortar_cli(&["call", "counter", "typo", "increment", r#"{"amont": 5}"#], &env).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.starts_with("error: InvalidArgument: "), "{run:?}");
        assert!(run.stderr.contains("unknown field `amont`, expected `amount`"), "{run:?}");
        let run = mortar_cli(&["call", "counter", "typo", "getCount"], &env).await;
        assert_eq!(run.stdout, "0\n", "nothing was added: {run:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_arguments_come_from_stdin_or_a_file() {
    let cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(1).grpc.to_string();
        let env = [("MORTAR_ENDPOINT", endpoint.as_str())];
        let message = br#"{"sender": "ann", "text": "from stdin"}"#;
        let run = mortar_cli_stdin(&["call", "chatRoom", "io", "sendMessage", "-"], &env, message).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "0\n"), "{run:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("args.json");
        std::fs::write(&file, r#"{"sender": "bob", "text": "from a file"}"#).unwrap();
        let file = file.to_str().unwrap();
        let run = mortar_cli(&["call", "chatRoom", "io", "sendMessage", "--args-file", file], &env).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "1\n"), "{run:?}");
        let run = mortar_cli(&["call", "chatRoom", "io", "getHistory"], &env).await;
        assert!(run.stdout.contains("from stdin") && run.stdout.contains("from a file"), "{run:?}");
        let run =
            mortar_cli_stdin(&["call", "chatRoom", "io", "sendMessage", "-"], &env, &[0xff, 0xfe]).await;
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.starts_with("error: the arguments in stdin are not UTF-8 JSON"), "{run:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mortar_subscribe_gives_up_when_it_cannot_subscribe() {
    // A listener that accepts connections and never answers: the first subscription is never
    // made, and that is the answer, at once.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_address = silent.local_addr().unwrap().to_string();
    let args = ["subscribe", "counter", "k", "--endpoint", &silent_address, "--timeout-ms", "1000"];
    let run = mortar_cli(&args, &[]).await;
    assert_eq!(run.code, Some(6), "no answer in time: {run:?}");
    assert_eq!(
        run.stderr_lines(),
        [format!(
            "error: cannot subscribe to counter/k: no answer from {silent_address} within 1000 ms; no \
             subscription was made (is it a Mortar node? raise --timeout-ms to wait longer)"
        )],
        "{run:?}"
    );
    drop(silent);

    // A subscription whose node dies is made again until --retry-for-ms, then given up.
    let mut cluster = Cluster::start().await;
    bounded(TEST_TIMEOUT, async {
        let endpoint = cluster.node(3).grpc.to_string();
        let subscriber = tokio::spawn(async move {
            let args = ["subscribe", "counter", "sub", "--retry-for-ms", "2000", "--timeout-ms", "1000"];
            mortar_cli(&args, &[("MORTAR_ENDPOINT", endpoint.as_str())]).await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!subscriber.is_finished(), "the subscription was made and waits for events");
        cluster.kill(3);
        let killed = Instant::now();
        let run = subscriber.await.unwrap();
        assert_eq!(run.code, Some(5), "not applied, retry: {run:?}");
        let last = run.stderr_lines().last().copied().unwrap_or_default();
        assert!(
            last.starts_with(
                "error: the subscription to counter/sub ended and subscribing again failed for 2000 ms \
                 (--retry-for-ms)"
            ),
            "{run:?}"
        );
        assert!(killed.elapsed() < Duration::from_secs(8), "gave up {:?} after the kill", killed.elapsed());
    })
    .await;
}

/// `mortar admin members` lists the control plane's directory; a drained node owns no actor (its
/// actors move to the others with every acknowledged increment), the last member that may own
/// actors cannot be drained, and an undrained node owns actors again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_owns_no_actor_and_members_shows_it() {
    let cluster = Cluster::start().await;
    let nodes = Nodes::of(&cluster);
    let on = |id: usize| [("MORTAR_ENDPOINT", cluster.node(id).grpc.to_string())];
    bounded(TEST_TIMEOUT, async {
        let env = |id: usize| on(id).map(|(k, v)| (k, v));
        let members = |id: usize| {
            let env = env(id);
            async move {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let run = mortar_cli(&["admin", "members", "--json"], &env).await;
                assert_eq!(run.code, Some(0), "{run:?}");
                serde_json::from_str::<serde_json::Value>(&run.stdout).expect("members --json prints JSON")
            }
        };
        let states = |json: &serde_json::Value| -> Vec<String> {
            let rows = json["members"].as_array().expect("an array");
            rows.iter().map(|m| format!("{}:{}", m["id"], m["state"].as_str().unwrap_or("?"))).collect()
        };
        // The control plane initializes itself from --initial-cluster.
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        loop {
            let json = members(2).await;
            if states(&json) == ["1:active", "2:active", "3:active"] {
                for m in json["members"].as_array().unwrap() {
                    assert_eq!(
                        (m["epoch"].as_u64(), m["control"].as_str(), m["ready"].as_bool()),
                        (Some(1), Some("voter"), Some(true)),
                        "{json}"
                    );
                }
                break;
            }
            assert!(Instant::now() < deadline, "the control plane did not list the initial members: {json}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let keys: Vec<String> = (0..24).map(|i| format!("drained-{i}")).collect();
        for key in &keys {
            nodes.call(1, "counter", key, "increment", r#"{"amount": 3}"#).await.expect("increment");
        }
        let mut on_two = Vec::new();
        for key in &keys {
            if nodes.owner(1, key).await == 2 {
                on_two.push(key.clone());
            }
        }
        assert!(!on_two.is_empty(), "no key owned by node 2 among {keys:?}");

        let drain = |args: &'static [&'static str; 3], id: usize| {
            let env = env(id);
            async move {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                mortar_cli(args, &env).await
            }
        };
        let run = drain(&["admin", "drain", "2"], 3).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("node 2 is draining"), "{run:?}");
        let run = drain(&["admin", "drain", "2"], 1).await;
        assert_eq!(run.code, Some(0), "draining again is a no-op: {run:?}");

        // Every node moves node 2's actors to the others, and they keep their counts.
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        for via in 1..=NODES {
            for key in &keys {
                while nodes.owner(via, key).await == 2 {
                    assert!(Instant::now() < deadline, "node {via} still places {key} on drained node 2");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        for key in &on_two {
            nodes.call(3, "counter", key, "increment", r#"{"amount": 4}"#).await.expect("increment");
            assert_eq!(nodes.read_count(2, key).await, 7, "{key} after moving off node 2");
        }
        assert_eq!(states(&members(1).await), ["1:active", "2:draining", "3:active"]);

        // Draining every member that may own actors is refused, with the reason.
        let run = drain(&["admin", "drain", "1"], 1).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = drain(&["admin", "drain", "3"], 1).await;
        assert_ne!(run.code, Some(0), "{run:?}");
        assert!(run.stderr.contains("no member that may own actors"), "{run:?}");
        let run = drain(&["admin", "drain", "9"], 1).await;
        assert_ne!(run.code, Some(0), "an unknown node: {run:?}");

        for args in [&["admin", "undrain", "1"], &["admin", "undrain", "2"]] {
            let run = drain(args, 3).await;
            assert_eq!(run.code, Some(0), "{run:?}");
            assert!(run.stdout.contains("active"), "{run:?}");
        }
        assert_eq!(states(&members(3).await), ["1:active", "2:active", "3:active"]);
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        for key in &on_two {
            while nodes.owner(1, key).await != 2 {
                assert!(Instant::now() < deadline, "{key} did not go back to undrained node 2");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(nodes.read_count(1, key).await, 7, "{key} back on node 2");
        }
    })
    .await;
}
