//! End-to-end tests of durable alarms and durable queues: real `mortar node` processes on
//! loopback, driven through `mortar.v1.Actors` / `ActorAdmin` and the `mortar` CLI, with the
//! example actors `reminder` (alarms) and `worker` (a queue `jobs` and a run loop).
//!
//! The properties checked are the ones the runtime promises, whatever the failures:
//! * an acknowledged alarm fires exactly once, never before it is due, on whichever node owns its
//!   actor (after its owner is killed, or after the whole cluster restarts);
//! * an acknowledged message is handled exactly once; a send of unknown outcome (a timeout, a lost
//!   connection: UNAVAILABLE without `mortar-not-applied`) at most once; a send that was not
//!   applied never.
//!
//! Timings (how late alarms fire, how long sends took) are printed, never asserted. Every test is
//! bounded in time; cluster tests run one at a time (see `common::SERIAL`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{CliRun, Cluster, bounded, mortar_cli};
use mortar_node::actor::CallError;
use mortar_proto::v1::actor_admin_client::ActorAdminClient;
use mortar_proto::v1::actors_client::ActorsClient;
use mortar_proto::v1::{
    ActorCallRequest, ActorSendRequest, ActorSendResponse, LocateRequest, LocateResponse,
};
use serde::Deserialize;
use tonic::Status;
use tonic::transport::Channel;

/// Bound on one test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound the test sets on one request (the node's deadline; it answers within it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// Bound on one call, client side (longer than the node's deadline, so the node answers first).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on gossip agreeing on a membership change.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on retrying a read (or a call refused as not applied) until a node answers it.
const READ_RETRY: Duration = Duration::from_secs(20);
/// Bound on every due alarm having fired, counted from the kill (or the restart).
const FIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait after every alarm fired before the final read, so that a second fire would show.
const FIRE_SETTLE: Duration = Duration::from_secs(1);
/// Shortest and longest `remindIn` delay, in ms: all alarms are due 1–3 s after scheduling.
const REMIND_MS_MIN: u64 = 1000;
const REMIND_MS_MAX: u64 = 3000;

/// How long before the first reminder is due the failover test kills its first victim.
const KILL_BEFORE_DUE: Duration = Duration::from_millis(200);
/// Nodes, reminder actors and reminders of the failover test.
const FAILOVER_NODES: usize = 5;
const FAILOVER_ACTORS: usize = 50;
const FAILOVER_REMINDERS_PER_ACTOR: usize = 4;
/// Nodes, reminder actors and reminders of the whole-cluster restart test.
const RESTART_NODES: usize = 3;
const RESTART_ACTORS: usize = 50;
const RESTART_REMINDERS_PER_ACTOR: usize = 4;

/// Nodes, workers, jobs and concurrent senders of the queue test.
const QUEUE_NODES: usize = 3;
const WORKERS: usize = 10;
const JOBS: usize = 1000;
const SENDERS: usize = 20;
/// Simulated work of each job: near what a worker can keep up with at the senders' pace, so
/// that queues hold messages (and a run loop is often mid-job) when an owner is killed.
const JOB_WORK_MS: u64 = 80;
/// How long senders go on picking a killed node (refused connections: not applied, sent again).
const KILL_NOTICE: Duration = Duration::from_millis(500);
/// Every this many jobs is sent with `wait` (answered once handled).
const WAIT_EVERY: usize = 7;
/// Pause of each sender between two jobs, so that the sends span the kills.
const SEND_PACE: Duration = Duration::from_millis(150);
/// Bound on retrying one send refused as not applied (then it is given up: never sent).
const SEND_RETRY: Duration = Duration::from_secs(20);
/// Bound on the workers handling every acknowledged job once the senders are done.
const HANDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of the looks at `processed` while waiting for the counts to stop growing.
const HANDLE_POLL: Duration = Duration::from_secs(1);

/// SplitMix64 (Steele, Lea, Flood 2014): a seedable generator, so that a seed replays the random
/// choices of a run (the choices only: node timing is not replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The seed of this run: `DURABLE_SEED` when set, else the clock. Printed first, to replay a run.
fn seed() -> u64 {
    let seed = match std::env::var("DURABLE_SEED") {
        Ok(text) => text.parse().expect("DURABLE_SEED is a u64"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970").as_nanos() as u64,
    };
    eprintln!("seed {seed} (DURABLE_SEED={seed} replays the test's random choices)");
    seed
}

/// Now, in unix ms (the clock the nodes on this machine stamp alarms with).
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970").as_millis() as u64
}

/// Sleeps until the clock reads `unix_ms` (at once if it has passed).
async fn sleep_until_unix_ms(unix_ms: u64) {
    tokio::time::sleep(Duration::from_millis(unix_ms.saturating_sub(self::unix_ms()))).await;
}

/// Starts a cluster of `size` nodes and waits until each is ready.
async fn start_cluster(size: usize) -> Cluster {
    let mut cluster = Cluster::of_size(size).await;
    for id in 1..=size {
        cluster.start_node(id);
    }
    cluster.wait_ready(&(1..=size).collect::<Vec<_>>()).await;
    cluster
}

/// Fails the test when a node's log shows a panic: a bug, even one the node survived (a task's or
/// an actor's).
fn assert_no_panic(cluster: &Cluster) {
    let panics = log_lines(cluster, &["panicked at"]);
    assert!(panics.is_empty(), "nodes panicked:\n{}", panics.join("\n"));
}

/// The lines of the nodes' logs that contain any of `needles`, each prefixed with its node.
fn log_lines(cluster: &Cluster, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for node in &cluster.nodes {
        let text =
            std::fs::read(&node.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        for line in text.lines().filter(|l| needles.iter().any(|n| l.contains(n))) {
            found.push(format!("node {}: {line}", node.id));
        }
    }
    found
}

/// Awaits a call for at most [`CALL_TIMEOUT`]; a timeout is an unknown outcome.
async fn within<T>(call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded("the test gave up waiting")),
    }
}

/// Whether a failed read may be tried again: the read was not applied, or its outcome is unknown
/// (a read has no effect, so trying it again is harmless).
fn read_may_retry(status: &Status) -> bool {
    let error = CallError::from_status(status);
    error.is_retry_safe() || matches!(error, CallError::Unavailable(_))
}

/// gRPC clients of every node, shareable with tasks (the cluster itself stays with the test).
#[derive(Clone)]
struct Nodes {
    channels: Vec<Channel>,
}

impl Nodes {
    fn of(cluster: &Cluster) -> Nodes {
        Nodes { channels: (1..=cluster.nodes.len()).map(|id| cluster.channel(id)).collect() }
    }

    fn all(&self) -> Vec<usize> {
        (1..=self.channels.len()).collect()
    }

    async fn call(
        &self,
        id: usize,
        actor: &str,
        key: &str,
        action: &str,
        args: &str,
    ) -> Result<String, Status> {
        let mut request = tonic::Request::new(ActorCallRequest {
            actor: actor.into(),
            key: key.into(),
            action: action.into(),
            args_json: args.into(),
            forwarded: false,
            input_json: String::new(),
        });
        request.set_timeout(REQUEST_TIMEOUT);
        let mut client = ActorsClient::new(self.channels[id - 1].clone());
        within(client.call(request)).await.map(|r| r.result_json)
    }

    /// Sends `{"id": job, "work_ms": JOB_WORK_MS}` to queue `jobs` of worker `key` through node `id`.
    async fn send_job(
        &self,
        id: usize,
        key: &str,
        job: &str,
        wait: bool,
    ) -> Result<ActorSendResponse, Status> {
        let mut request = tonic::Request::new(ActorSendRequest {
            actor: "worker".into(),
            key: key.into(),
            queue: "jobs".into(),
            body_json: serde_json::json!({ "id": job, "work_ms": JOB_WORK_MS }).to_string(),
            wait,
            input_json: String::new(),
        });
        request.set_timeout(REQUEST_TIMEOUT);
        let mut client = ActorsClient::new(self.channels[id - 1].clone());
        within(client.send(request)).await
    }

    async fn locate(&self, id: usize, actor: &str, key: &str) -> Result<LocateResponse, Status> {
        let mut admin = ActorAdminClient::new(self.channels[id - 1].clone());
        within(admin.locate(LocateRequest { actor: actor.into(), key: key.into() })).await
    }

    /// The owner of `actor`/`key` by node `via`'s view.
    async fn owner(&self, via: usize, actor: &str, key: &str) -> usize {
        let located = self.locate(via, actor, key).await;
        located.unwrap_or_else(|e| panic!("locate {actor}/{key} through node {via}: {e:?}")).node_id as usize
    }

    /// Waits until each node in `ids` sees exactly `live` as the live members.
    async fn wait_for_membership(&self, ids: &[usize], live: &[usize]) {
        let live: Vec<u32> = live.iter().map(|&id| id as u32).collect();
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        for &id in ids {
            loop {
                let seen = self.locate(id, "worker", "probe").await.map(|l| l.live_members);
                if seen.as_ref().is_ok_and(|s| *s == live) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {id} sees members {seen:?}, expected {live:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Calls a read-only action through the nodes in `via` in turn (starting at `first`),
    /// retrying a failure that may pass, for at most [`READ_RETRY`].
    async fn read(&self, via: &[usize], first: usize, actor: &str, key: &str, action: &str) -> String {
        let deadline = Instant::now() + READ_RETRY;
        for attempt in 0.. {
            let id = via[(first + attempt) % via.len()];
            match self.call(id, actor, key, action, "").await {
                Ok(json) => return json,
                Err(status) if read_may_retry(&status) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("{actor}/{key}.{action} through node {id}: {status:?}"),
            }
        }
        unreachable!("the attempts are unbounded")
    }
}

/// One reminder the test scheduled (acknowledged).
#[derive(Debug, Clone)]
struct Scheduled {
    key: String,
    note: String,
    /// The alarm id `remindIn` returned.
    id: String,
    ms: u64,
    /// Unix ms just before the call was sent, and just after its answer came.
    sent_ms: u64,
    acked_ms: u64,
}

/// One entry of `reminder.fired`.
#[derive(Debug, Clone, Deserialize)]
struct FiredNote {
    id: String,
    note: String,
    due_ms: u64,
    fired_ms: u64,
    times: u32,
}

/// Schedules `per_actor` reminders on each of `actors` reminder actors (`<prefix>-<i>`), one task
/// per actor, through the nodes in turn, each due 1–3 s after its call. Every node is up: every
/// `remindIn` must be acknowledged (one refused as not applied is sent again).
async fn schedule_reminders(
    nodes: &Nodes,
    prefix: &str,
    actors: usize,
    per_actor: usize,
    seed: u64,
) -> Vec<Scheduled> {
    let mut tasks = Vec::new();
    for a in 0..actors {
        let (nodes, key) = (nodes.clone(), format!("{prefix}-{a}"));
        let mut rng = Rng(seed ^ (a as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        tasks.push(tokio::spawn(async move {
            let mut scheduled = Vec::new();
            for r in 0..per_actor {
                let note = format!("{key}/note-{r}");
                let ms = REMIND_MS_MIN + rng.next() % (REMIND_MS_MAX - REMIND_MS_MIN + 1);
                let args = serde_json::json!({ "ms": ms, "note": note }).to_string();
                let deadline = Instant::now() + READ_RETRY;
                for attempt in 0.. {
                    let via = (a + r + attempt) % nodes.channels.len() + 1;
                    let sent_ms = unix_ms();
                    let result = nodes.call(via, "reminder", &key, "remindIn", &args).await;
                    let acked_ms = unix_ms();
                    match result {
                        Ok(json) => {
                            let id: String = serde_json::from_str(&json).unwrap_or_else(|e| {
                                panic!("remindIn answered {json:?}, not a JSON string: {e}")
                            });
                            scheduled.push(Scheduled { key: key.clone(), note, id, ms, sent_ms, acked_ms });
                            break;
                        }
                        Err(status)
                            if CallError::from_status(&status).is_retry_safe()
                                && Instant::now() < deadline =>
                        {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => {
                            panic!(
                                "remindIn {args} on {key} through node {via} with every node up: {status:?}"
                            )
                        }
                    }
                }
            }
            scheduled
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a scheduling task panicked"));
    }
    all
}

/// The keys of the actors `scheduled` names.
fn keys_of(scheduled: &[Scheduled]) -> Vec<String> {
    scheduled.iter().map(|s| s.key.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// `fired` of every actor in `keys`, read through the nodes in `via`.
async fn read_fired(nodes: &Nodes, via: &[usize], keys: &[String]) -> BTreeMap<String, Vec<FiredNote>> {
    let mut tasks = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let (nodes, via, key) = (nodes.clone(), via.to_vec(), key.clone());
        tasks.push(tokio::spawn(async move {
            let json = nodes.read(&via, k, "reminder", &key, "fired").await;
            let fired: Vec<FiredNote> = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("fired of {key} answered {json:?}, not a list of notes: {e}"));
            (key, fired)
        }));
    }
    let mut all = BTreeMap::new();
    for task in tasks {
        let (key, fired) = task.await.expect("a read task panicked");
        all.insert(key, fired);
    }
    all
}

/// Polls `fired` through `via` until every scheduled reminder has an entry, for at most
/// [`FIRE_TIMEOUT`]; then waits [`FIRE_SETTLE`] (so that a second fire would show) and returns
/// the last read, complete or not (the caller checks it).
async fn wait_for_fires(
    nodes: &Nodes,
    via: &[usize],
    scheduled: &[Scheduled],
) -> BTreeMap<String, Vec<FiredNote>> {
    let keys = keys_of(scheduled);
    let deadline = Instant::now() + FIRE_TIMEOUT;
    loop {
        let fired = read_fired(nodes, via, &keys).await;
        let count: usize = fired.values().map(Vec::len).sum();
        if count >= scheduled.len() || Instant::now() >= deadline {
            eprintln!("{count} of {} reminders fired", scheduled.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(FIRE_SETTLE).await;
    read_fired(nodes, via, &keys).await
}

/// What is wrong with `fired` given the acknowledged `scheduled` reminders: a reminder that did
/// not fire, fired more than once, fired before it was due or with the wrong due time, and a
/// fired note nobody scheduled.
fn check_fired(scheduled: &[Scheduled], fired: &BTreeMap<String, Vec<FiredNote>>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected: BTreeMap<(&str, &str), &Scheduled> = BTreeMap::new();
    for s in scheduled {
        let previous = expected.insert((s.key.as_str(), s.note.as_str()), s);
        assert!(previous.is_none(), "the test scheduled {}/{} twice", s.key, s.note);
    }
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (key, notes) in fired {
        for f in notes {
            *seen.entry((key.as_str(), f.note.as_str())).or_default() += 1;
            let Some(s) = expected.get(&(key.as_str(), f.note.as_str())) else {
                problems.push(format!("{key}: fired a note nobody scheduled: {f:?}"));
                continue;
            };
            if f.id != s.id {
                problems.push(format!("{key}: {f:?} has another id than remindIn returned ({})", s.id));
            }
            if f.times != 1 {
                problems.push(format!("{key}: {f:?} ran {} times", f.times));
            }
            if f.fired_ms < f.due_ms {
                problems.push(format!("{key}: {f:?} fired {} ms before it was due", f.due_ms - f.fired_ms));
            }
            // Due `ms` after the call arrived: between our send and its answer, on one clock.
            if f.due_ms < s.sent_ms + s.ms || f.due_ms > s.acked_ms + s.ms {
                problems.push(format!(
                    "{key}: {f:?} is due outside [{}, {}] (remindIn {} ms sent at {}, answered at {})",
                    s.sent_ms + s.ms,
                    s.acked_ms + s.ms,
                    s.ms,
                    s.sent_ms,
                    s.acked_ms
                ));
            }
        }
    }
    for (key, note) in expected.keys() {
        match seen.get(&(*key, *note)).copied().unwrap_or(0) {
            1 => {}
            0 => problems.push(format!("{key}: {note} (acknowledged) never fired")),
            n => problems.push(format!("{key}: {note} fired as {n} separate entries")),
        }
    }
    problems
}

/// Prints the p50, p99 and max of `values_ms`.
fn print_spread(label: &str, mut values_ms: Vec<i64>) {
    if values_ms.is_empty() {
        eprintln!("{label}: none");
        return;
    }
    values_ms.sort_unstable();
    let at = |p: usize| values_ms[(values_ms.len() - 1) * p / 100];
    eprintln!(
        "{label}: p50 {} ms, p99 {} ms, max {} ms ({} alarms)",
        at(50),
        at(99),
        values_ms[values_ms.len() - 1],
        values_ms.len()
    );
}

/// Lateness (fired − due) of the notes of the actors `keep` selects.
fn lateness(fired: &BTreeMap<String, Vec<FiredNote>>, keep: impl Fn(&str) -> bool) -> Vec<i64> {
    fired
        .iter()
        .filter(|(key, _)| keep(key))
        .flat_map(|(_, notes)| notes.iter().map(|f| f.fired_ms as i64 - f.due_ms as i64))
        .collect()
}

/// 200 reminders due 1–3 s ahead on 50 actors of a five-node cluster. The node owning the most
/// actors is killed just before the first is due, the node owning the most of the rest halfway
/// through (while it fires). Every reminder fires exactly once, not early, on the survivors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_fire_exactly_once_when_their_owner_is_killed() {
    let seed = seed();
    let mut cluster = start_cluster(FAILOVER_NODES).await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        let all = nodes.all();
        nodes.wait_for_membership(&all, &all).await;
        let keys: Vec<String> = (0..FAILOVER_ACTORS).map(|a| format!("failover-{a}")).collect();
        let mut owners = BTreeMap::new();
        for key in &keys {
            owners.insert(key.clone(), nodes.owner(1, "reminder", key).await);
        }
        // The first victim owns the most actors, the second the most of the rest.
        let owned = |id: &usize| owners.values().filter(|o| *o == id).count();
        let first = *all.iter().max_by_key(|id| owned(id)).unwrap();
        let second = *all.iter().filter(|&&id| id != first).max_by_key(|id| owned(id)).unwrap();
        let owned_by = |victim: usize| -> BTreeSet<String> {
            owners.iter().filter(|(_, o)| **o == victim).map(|(k, _)| k.clone()).collect()
        };
        let (of_first, of_second) = (owned_by(first), owned_by(second));
        let survivors: Vec<usize> = all.iter().copied().filter(|&id| id != first && id != second).collect();

        let started = Instant::now();
        let scheduled =
            schedule_reminders(&nodes, "failover", FAILOVER_ACTORS, FAILOVER_REMINDERS_PER_ACTOR, seed).await;
        assert_eq!(scheduled.len(), FAILOVER_ACTORS * FAILOVER_REMINDERS_PER_ACTOR);
        let first_due_ms = scheduled.iter().map(|s| s.sent_ms + s.ms).min().unwrap();
        let on = |keys: &BTreeSet<String>| scheduled.iter().filter(|s| keys.contains(&s.key)).count();
        eprintln!("scheduled {} reminders in {:?}", scheduled.len(), started.elapsed());

        // Killed just before the first reminder is due: the reminders due before the survivors
        // notice come due on a dead owner.
        sleep_until_unix_ms(first_due_ms.saturating_sub(KILL_BEFORE_DUE.as_millis() as u64)).await;
        cluster.kill(first);
        let killed_ms = unix_ms();
        let due_before_kill = scheduled.iter().filter(|s| s.acked_ms + s.ms <= killed_ms).count();
        eprintln!(
            "killed node {first} (owner of {} of the {FAILOVER_ACTORS} actors, {} reminders) {} ms before \
             the first reminder was due; {due_before_kill} were due before the kill",
            of_first.len(),
            on(&of_first),
            first_due_ms as i64 - killed_ms as i64,
        );
        // The second victim dies while it fires its reminders (a fire may be under way).
        sleep_until_unix_ms(first_due_ms + (REMIND_MS_MAX - REMIND_MS_MIN) / 2).await;
        cluster.kill(second);
        let second_killed_ms = unix_ms();
        let due_by_then = scheduled
            .iter()
            .filter(|s| of_second.contains(&s.key) && s.acked_ms + s.ms <= second_killed_ms)
            .count();
        eprintln!(
            "killed node {second} (owner of {} actors, {} reminders, {due_by_then} of them due) \
             {} ms after the first kill",
            of_second.len(),
            on(&of_second),
            second_killed_ms - killed_ms
        );

        let fired = wait_for_fires(&nodes, &survivors, &scheduled).await;
        eprintln!("all fired (or gave up) {} ms after the first kill", unix_ms() - killed_ms);
        print_spread(
            &format!("lateness, actors of node {first}"),
            lateness(&fired, |k| of_first.contains(k)),
        );
        print_spread(
            &format!("lateness, actors of node {second}"),
            lateness(&fired, |k| of_second.contains(k)),
        );
        print_spread(
            "lateness, other actors",
            lateness(&fired, |k| !of_first.contains(k) && !of_second.contains(k)),
        );
        print_spread("lateness, all", lateness(&fired, |_| true));
        let problems = check_fired(&scheduled, &fired);
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        for key in of_first.iter().chain(&of_second) {
            let owner = nodes.owner(survivors[0], "reminder", key).await;
            assert!(survivors.contains(&owner), "{key} is still placed on dead node {owner}");
        }
        assert_no_panic(&cluster);
    })
    .await;
}

/// 50 reminders due 1–3 s ahead; every node is killed at once before any is due and started
/// again on its data once all are due. Every reminder fires exactly once, after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_due_while_the_cluster_is_down_fire_on_restart() {
    let seed = seed();
    let mut cluster = start_cluster(RESTART_NODES).await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        let all = nodes.all();
        nodes.wait_for_membership(&all, &all).await;
        let started = Instant::now();
        let scheduled =
            schedule_reminders(&nodes, "restart", RESTART_ACTORS, RESTART_REMINDERS_PER_ACTOR, seed).await;
        assert_eq!(scheduled.len(), RESTART_ACTORS * RESTART_REMINDERS_PER_ACTOR);
        for &id in &all {
            cluster.kill(id);
        }
        let killed_ms = unix_ms();
        let first_due_ms = scheduled.iter().map(|s| s.sent_ms + s.ms).min().unwrap();
        let last_due_ms = scheduled.iter().map(|s| s.acked_ms + s.ms).max().unwrap();
        eprintln!(
            "scheduled {} reminders in {:?}; killed every node {} ms before the first was due",
            scheduled.len(),
            started.elapsed(),
            first_due_ms as i64 - killed_ms as i64
        );

        // Down until every reminder is due, then all nodes start again on their data.
        tokio::time::sleep(Duration::from_millis(last_due_ms.saturating_sub(unix_ms()) + 200)).await;
        let restart_ms = unix_ms();
        for &id in &all {
            cluster.start_node(id);
        }
        cluster.wait_ready(&all).await;
        eprintln!("restarted every node; ready {} ms after the start", unix_ms() - restart_ms);

        let fired = wait_for_fires(&nodes, &all, &scheduled).await;
        print_spread("lateness (includes the downtime)", lateness(&fired, |_| true));
        let since_restart: Vec<i64> =
            fired.values().flatten().map(|f| f.fired_ms as i64 - f.due_ms.max(restart_ms) as i64).collect();
        print_spread("fired after max(due, restart)", since_restart);
        let mut problems = check_fired(&scheduled, &fired);
        for f in fired.values().flatten() {
            if f.due_ms > killed_ms && f.fired_ms < restart_ms {
                problems.push(format!(
                    "{f:?} fired while every node was down (killed {killed_ms}, restarted {restart_ms})"
                ));
            }
        }
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        assert_no_panic(&cluster);
    })
    .await;
}

/// The queue test's history: each job's outcome as its sender saw it.
#[derive(Debug, Default)]
struct JobHistory {
    /// Job id → worker: the send answered OK (stored; handled exactly once).
    acked: BTreeMap<String, String>,
    /// The outcome is unknown (handled at most once).
    unknown: BTreeMap<String, String>,
    /// Every try was refused as not applied until [`SEND_RETRY`] passed (never handled).
    gave_up: BTreeMap<String, String>,
    /// Sends refused as not applied (and sent again).
    not_applied: u64,
}

impl JobHistory {
    /// Records the outcome of one try of sending `job` to `worker` through node `via`, sent
    /// `elapsed` ago; whether the job is done with (else it is sent again).
    fn record(
        &mut self,
        job: &str,
        worker: &str,
        via: usize,
        wait: bool,
        result: Result<ActorSendResponse, Status>,
        elapsed: Duration,
    ) -> bool {
        let outcome = match result {
            Ok(response) => {
                assert_eq!(response.handled, wait, "{job}: {response:?}");
                &mut self.acked
            }
            Err(status) => match CallError::from_status(&status) {
                e if e.is_retry_safe() => {
                    self.not_applied += 1;
                    if elapsed < SEND_RETRY {
                        return false;
                    }
                    eprintln!("gave up {job} after {elapsed:?} of refusals; last: {e:?}");
                    &mut self.gave_up
                }
                CallError::Unavailable(message) => {
                    eprintln!("{job} to {worker} through node {via}: unknown outcome: {message}");
                    &mut self.unknown
                }
                e => panic!("send {job} to {worker} through node {via}: {e:?}"),
            },
        };
        let previous = outcome.insert(job.to_string(), worker.to_string());
        assert!(previous.is_none(), "{job} was recorded twice");
        true
    }
}

/// Sends the jobs `first, first + SENDERS, ...` (`job-NNNN` to worker `w<N mod WORKERS>`), each
/// through a random node of `live`, one at a time with [`SEND_PACE`] between them.
async fn send_jobs(
    nodes: Nodes,
    first: usize,
    live: Arc<Mutex<Vec<usize>>>,
    history: Arc<Mutex<JobHistory>>,
    seed: u64,
) {
    let mut rng = Rng(seed ^ (first as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    for j in (first..JOBS).step_by(SENDERS) {
        let (job, worker, wait) = (format!("job-{j:04}"), format!("w{}", j % WORKERS), j % WAIT_EVERY == 0);
        let started = Instant::now();
        loop {
            let via = {
                let live = live.lock().unwrap();
                live[rng.below(live.len())]
            };
            let result = nodes.send_job(via, &worker, &job, wait).await;
            if history.lock().unwrap().record(&job, &worker, via, wait, result, started.elapsed()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(SEND_PACE).await;
    }
}

/// `processed` of every worker, through the nodes in `via`: worker → (ids, duplicates).
async fn read_processed(nodes: &Nodes, via: &[usize]) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    #[derive(Deserialize)]
    struct Processed {
        ids: Vec<String>,
        duplicates: Vec<String>,
    }
    let mut all = BTreeMap::new();
    for w in 0..WORKERS {
        let key = format!("w{w}");
        let json = nodes.read(via, w, "worker", &key, "processed").await;
        let processed: Processed = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("processed of {key} answered {json:?}: {e}"));
        all.insert(key, (processed.ids, processed.duplicates));
    }
    all
}

/// Prints how many jobs are acknowledged and how many handled so far (their difference is about
/// what the queues hold).
async fn print_backlog(nodes: &Nodes, via: &[usize], history: &Mutex<JobHistory>, started: Instant) {
    let handled: usize = read_processed(nodes, via).await.values().map(|(ids, _)| ids.len()).sum();
    let acked = history.lock().unwrap().acked.len();
    eprintln!("{:?}: {acked} jobs acknowledged, {handled} handled", started.elapsed());
}

/// 1000 jobs sent to 10 workers by 20 concurrent senders through random nodes, while the node
/// owning the most workers is killed and restarted, then another killed (one down at a time).
/// Every acknowledged job is handled exactly once, one of unknown outcome at most once, nothing
/// else is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_handled_exactly_once_while_owners_are_killed() {
    let seed = seed();
    let mut cluster = start_cluster(QUEUE_NODES).await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        let all = nodes.all();
        nodes.wait_for_membership(&all, &all).await;
        // The first victim owns the most workers, the second the most of the rest.
        let mut owners = Vec::new();
        for w in 0..WORKERS {
            owners.push(nodes.owner(1, "worker", &format!("w{w}")).await);
        }
        let owned = |id: &usize| owners.iter().filter(|o| *o == id).count();
        let first = *all.iter().max_by_key(|id| owned(id)).unwrap();
        let second = *all.iter().filter(|&&id| id != first).max_by_key(|id| owned(id)).unwrap();
        eprintln!("workers per node: {:?}", all.iter().map(|id| (id, owned(id))).collect::<Vec<_>>());

        let live = Arc::new(Mutex::new(all.clone()));
        let history = Arc::new(Mutex::new(JobHistory::default()));
        let started = Instant::now();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| tokio::spawn(send_jobs(nodes.clone(), s, live.clone(), history.clone(), seed)))
            .collect();

        // Kill one node, restart it, then kill another: never more than one down.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        print_backlog(&nodes, &all, &history, started).await;
        cluster.kill(first);
        eprintln!("{:?}: killed node {first} ({} workers)", started.elapsed(), owned(&first));
        tokio::time::sleep(KILL_NOTICE).await;
        live.lock().unwrap().retain(|&id| id != first);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        cluster.restart(first).await;
        nodes.wait_for_membership(&all, &all).await;
        live.lock().unwrap().push(first);
        eprintln!("{:?}: node {first} is back", started.elapsed());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        print_backlog(&nodes, &all, &history, started).await;
        cluster.kill(second);
        eprintln!("{:?}: killed node {second} ({} workers)", started.elapsed(), owned(&second));
        tokio::time::sleep(KILL_NOTICE).await;
        live.lock().unwrap().retain(|&id| id != second);
        for sender in senders {
            sender.await.expect("a sender panicked");
        }
        eprintln!("{:?}: every job sent", started.elapsed());
        cluster.restart(second).await;
        nodes.wait_for_membership(&all, &all).await;
        eprintln!("{:?}: node {second} is back", started.elapsed());

        // Wait until every acknowledged job is handled and the counts stop growing.
        let history = std::mem::take(&mut *history.lock().unwrap());
        let deadline = Instant::now() + HANDLE_TIMEOUT;
        let mut last_total = None;
        let processed = loop {
            let processed = read_processed(&nodes, &all).await;
            let handled: BTreeSet<&String> = processed.values().flat_map(|(ids, _)| ids).collect();
            let missing = history.acked.keys().filter(|id| !handled.contains(id)).count();
            let total = handled.len();
            if last_total.is_none() {
                eprintln!(
                    "{:?}: {total} jobs handled, {missing} acknowledged ones not yet",
                    started.elapsed()
                );
            }
            if (missing == 0 && last_total == Some(total)) || Instant::now() >= deadline {
                eprintln!("{:?}: {total} jobs handled, {missing} acknowledged ones not", started.elapsed());
                break processed;
            }
            last_total = Some(total);
            tokio::time::sleep(HANDLE_POLL).await;
        };

        let mut problems = Vec::new();
        let mut handled: BTreeMap<&str, &str> = BTreeMap::new();
        for (worker, (ids, duplicates)) in &processed {
            if !duplicates.is_empty() {
                problems.push(format!("{worker} handled {duplicates:?} more than once"));
            }
            for id in ids {
                if let Some(other) = handled.insert(id, worker) {
                    problems.push(format!("{id} was handled by {other} and by {worker}"));
                }
                let sent_to = history.acked.get(id).or_else(|| history.unknown.get(id));
                if sent_to != Some(worker) {
                    let gave_up = history.gave_up.get(id);
                    problems.push(format!(
                        "{worker} handled {id}, sent to {sent_to:?} (given up, never applied: {gave_up:?})"
                    ));
                }
            }
        }
        for (id, worker) in &history.acked {
            if !handled.contains_key(id.as_str()) {
                problems.push(format!("{id} (acknowledged by {worker}) was never handled"));
            }
        }
        let unknown_handled = history.unknown.keys().filter(|id| handled.contains_key(id.as_str())).count();
        eprintln!(
            "jobs: {} acknowledged, {} unknown ({unknown_handled} of them handled), {} given up; {} sends \
             refused as not applied and sent again",
            history.acked.len(),
            history.unknown.len(),
            history.gave_up.len(),
            history.not_applied
        );
        assert_eq!(history.acked.len() + history.unknown.len() + history.gave_up.len(), JOBS);
        assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
        assert_no_panic(&cluster);
    })
    .await;
}

/// `mortar queue send` prints the message's sequence number (with `--wait`, once handled),
/// refuses an undeclared queue by name; `mortar admin destroy` makes calls and sends answer
/// NotFound until a call with an input creates the actor again, empty and without its alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_to_queues_and_destroys_actors() {
    let cluster = start_cluster(3).await;
    let nodes = Nodes::of(&cluster);
    bounded(TEST_TIMEOUT, async {
        let all = nodes.all();
        nodes.wait_for_membership(&all, &all).await;
        let endpoints: Vec<String> = all.iter().map(|&id| cluster.node(id).grpc.to_string()).collect();
        let cli = |id: usize, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let endpoint = endpoints[id - 1].clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                mortar_cli(&args, &[("MORTAR_ENDPOINT", endpoint.as_str())]).await
            }
        };
        let ids_of = |run: &CliRun| -> Vec<String> {
            let json: serde_json::Value =
                serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{run:?} is not JSON: {e}"));
            assert_eq!(json["duplicates"], serde_json::json!([]), "{run:?}");
            let ids = json["ids"].as_array().unwrap_or_else(|| panic!("{run:?} has no ids"));
            ids.iter().map(|id| id.as_str().expect("an id is a string").to_string()).collect()
        };
        let seq_of = |run: &CliRun| -> u64 {
            assert_eq!(run.code, Some(0), "{run:?}");
            run.stdout.trim_end().parse().unwrap_or_else(|e| panic!("{run:?} prints no sequence number: {e}"))
        };

        // With --wait the answer comes once handled: `processed` lists the job at once.
        let first =
            seq_of(&cli(1, &["queue", "send", "worker", "cli-w", "jobs", r#"{"id": "c1"}"#, "--wait"]).await);
        let run = cli(2, &["call", "worker", "cli-w", "processed"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(ids_of(&run), ["c1"], "{run:?}");
        let second = seq_of(&cli(3, &["queue", "send", "worker", "cli-w", "jobs", r#"{"id": "c2"}"#]).await);
        assert_eq!(second, first + 1, "the second message of the queue");

        // A queue the actor does not declare is refused by name.
        let run = cli(2, &["queue", "send", "worker", "cli-w", "nope", r#"{"id": "c3"}"#]).await;
        assert_ne!(run.code, Some(0), "{run:?}");
        assert!(run.stderr.starts_with("error: NotFound: "), "{run:?}");
        assert!(run.stderr.contains("\"nope\""), "the message names the queue: {run:?}");
        assert_eq!(run.stdout, "", "{run:?}");

        // A destroyed worker answers NotFound to calls and sends alike.
        let run = cli(3, &["admin", "destroy", "worker", "cli-w"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        for (id, args) in [
            (1, vec!["call", "worker", "cli-w", "processed"]),
            (2, vec!["queue", "send", "worker", "cli-w", "jobs", r#"{"id": "c4"}"#]),
            (3, vec!["queue", "send", "worker", "cli-w", "jobs", r#"{"id": "c5"}"#, "--wait"]),
        ] {
            let run = cli(id, &args).await;
            assert_ne!(run.code, Some(0), "{args:?}: {run:?}");
            assert!(run.stderr.starts_with("error: NotFound: "), "{args:?}: {run:?}");
            assert!(run.stderr.contains("destroyed"), "{args:?}: {run:?}");
        }
        // A call with an input creates it again, empty: nothing of before, nothing refused since.
        let run = cli(1, &["call", "worker", "cli-w", "processed", "--input", "null"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(ids_of(&run), Vec::<String>::new(), "{run:?}");
        seq_of(&cli(2, &["queue", "send", "worker", "cli-w", "jobs", r#"{"id": "c6"}"#, "--wait"]).await);
        let run = cli(3, &["call", "worker", "cli-w", "processed"]).await;
        assert_eq!(ids_of(&run), ["c6"], "{run:?}");

        // Destroying a reminder removes its alarms: created again, it never fires the old one (the
        // check means something only when the actor is created again before the alarm is due).
        let remind_ms = 2000;
        let due = Instant::now() + Duration::from_millis(remind_ms);
        let args = serde_json::json!({ "ms": remind_ms, "note": "gone" }).to_string();
        let run = cli(1, &["call", "reminder", "cli-r", "remindIn", &args]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = cli(2, &["admin", "destroy", "reminder", "cli-r"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = cli(3, &["call", "reminder", "cli-r", "fired", "--input", "null"]).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "[]\n"), "{run:?}");
        eprintln!(
            "reminder created again {:?} before its destroyed alarm was due",
            due.saturating_duration_since(Instant::now())
        );
        tokio::time::sleep_until((due + FIRE_SETTLE).into()).await;
        let run = cli(1, &["call", "reminder", "cli-r", "fired"]).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "[]\n"), "the destroyed alarm fired: {run:?}");

        // `call --get` never creates; `create` refuses an actor that exists; the inspector sees
        // the result, and a state patch shows in the next call.
        let run = cli(1, &["call", "counter", "org\\/x/cli-c", "getCount", "--get"]).await;
        assert!(run.code != Some(0) && run.stderr.contains("NotFound"), "{run:?}");
        let run = cli(2, &["create", "counter", "org\\/x/cli-c", "--input", r#"{"start": 40}"#]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = cli(3, &["create", "counter", "org\\/x/cli-c"]).await;
        assert!(run.code != Some(0) && run.stderr.contains("exists already"), "{run:?}");
        let run = cli(1, &["call", "counter", "org\\/x/cli-c", "increment", "--get"]).await;
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "41\n"), "{run:?}");
        let run = cli(2, &["inspect", "counter", "org\\/x/cli-c"]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON summary");
        assert_eq!(
            (summary["exists"].as_bool(), summary["stateBytes"].as_u64()),
            (Some(true), Some(12)),
            "{run:?}"
        );
        let run =
            cli(3, &["inspect", "counter", "org\\/x/cli-c", "state", "--patch", r#"{"count": 7}"#]).await;
        assert_eq!(run.code, Some(0), "{run:?}");
        let run = cli(1, &["call", "counter", "org\\/x/cli-c", "getCount"]).await;
        assert_eq!(run.stdout, "7\n", "{run:?}");
        assert_no_panic(&cluster);
    })
    .await;
}
