//! Alarms, durable queues, run loops, lifecycle hooks and destruction, on one node in process
//! (the harness of `runtime_test.rs`, with the alarm scheduler running).

use std::sync::atomic::{AtomicU32, Ordering};

use futures::StreamExt as _;
use mortar_storage::Storage as _;
use serde::{Deserialize, Serialize};

use super::*;
use crate::actor::context::{ALARMS_PER_ACTOR_MAX, Alarm};
use crate::actor::examples_work::{FiredNote, ProcessedJobs};
use crate::actor::keys;
use crate::actor::runtime::{DESTROY, INSPECT, PATCH_STATE, QUEUE_LENGTH_MAX, SEND};
use crate::actor::unix_ms;
use crate::actor::{RunContext, RunLoop, Work};

pub(super) fn register(registry: &mut Registry) {
    registry.register(Clock).register(Inbox).register(Hooked::default()).register(Flaky);
}

/// A node whose scheduler runs, with `idle_timeout`.
fn durable_node(idle_timeout: Duration) -> Node {
    let mut config = RuntimeConfig::new(ME);
    config.idle_timeout = idle_timeout;
    let node = node_with(config);
    node.router.spawn_scheduler();
    node
}

impl Node {
    async fn send(
        &self,
        actor: &str,
        key: &str,
        queue: &str,
        body: &str,
        wait: bool,
    ) -> Result<u64, CallError> {
        let args = format!(r#"{{"queue": "{queue}", "body": {body}, "wait": {wait}}}"#);
        let reply = self.call(actor, key, SEND, &args).await?;
        Ok(reply.result_json.parse().unwrap())
    }

    async fn fired(&self, key: &str) -> Vec<FiredNote> {
        serde_json::from_str(&self.call("reminder", key, "fired", "").await.unwrap().result_json).unwrap()
    }

    /// Entries of the alarm index, of every actor.
    fn alarm_index(&self) -> usize {
        self.storage.scan_kv_prefix(keys::ALARM_INDEX_PREFIX, None, 10_000).unwrap().len()
    }
}

/// Polls `check` every 20 ms until it holds, for at most 10 s.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let until = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_reminder_fires_once_at_its_time_and_its_alarm_is_gone() {
    let node = durable_node(Duration::from_secs(60));
    let scheduled = unix_ms();
    let id = node.call("reminder", "ann", "remindIn", r#"{"ms": 300, "note": "stand up"}"#).await.unwrap();
    let id: String = serde_json::from_str(&id.result_json).unwrap();
    assert!(node.fired("ann").await.is_empty(), "fired before its time");
    assert_eq!(node.alarm_index(), 1);
    eventually("the reminder fires", async || !node.fired("ann").await.is_empty()).await;
    let fired = node.fired("ann").await;
    assert_eq!(fired.len(), 1);
    let note = &fired[0];
    assert_eq!((note.id.as_str(), note.note.as_str(), note.times), (id.as_str(), "stand up", 1));
    assert!(note.due_ms >= scheduled + 300 && note.fired_ms >= note.due_ms, "{note:?}");
    assert_eq!(node.alarm_index(), 0, "a fired alarm leaves no index entry");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.fired("ann").await.len(), 1, "an alarm fires once");
}

#[tokio::test]
async fn an_alarm_wakes_its_sleeping_actor_and_many_alarms_fire_in_due_order() {
    let node = durable_node(Duration::from_millis(50));
    for (ms, note) in [(400, "c"), (200, "a"), (300, "b")] {
        node.call("reminder", "sleepy", "remindIn", &format!(r#"{{"ms": {ms}, "note": "{note}"}}"#))
            .await
            .unwrap();
    }
    eventually("the actor sleeps", async || node.router.runtime().active_count() == 0).await;
    eventually("all three fire", async || node.fired("sleepy").await.len() == 3).await;
    let mut fired = node.fired("sleepy").await;
    fired.sort_by_key(|f| f.fired_ms);
    let notes: Vec<&str> = fired.iter().map(|f| f.note.as_str()).collect();
    assert_eq!(notes, ["a", "b", "c"]);
}

#[tokio::test]
async fn cancelled_alarms_and_alarms_of_failed_actions_never_fire() {
    let node = durable_node(Duration::from_secs(60));
    let id = node.call("reminder", "c", "remindIn", r#"{"ms": 200, "note": "x"}"#).await.unwrap().result_json;
    node.call("reminder", "c", "cancel", &format!(r#"{{"id": {id}}}"#)).await.unwrap();
    let e = node.call("reminder", "c", "cancel", &format!(r#"{{"id": {id}}}"#)).await.unwrap_err();
    assert!(matches!(&e, CallError::Rejected(m) if m.contains("no pending alarm")), "{e:?}");
    let e = node.call("reminder", "c", "cancel", r#"{"id": "9.9"}"#).await.unwrap_err();
    assert!(matches!(e, CallError::Rejected(_)), "{e:?}");
    let e = node.call("clock", "f", "setThenFail", r#"{"ms": 100}"#).await.unwrap_err();
    assert!(matches!(e, CallError::Rejected(_)), "{e:?}");
    assert!(list(&node, "f").await.is_empty(), "a failed action schedules nothing");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(node.fired("c").await.is_empty());
    assert_eq!(node.alarm_index(), 0);
    let e = node.call("reminder", "c", "ring", r#"{"note": "by hand"}"#).await.unwrap_err();
    assert!(matches!(e, CallError::Rejected(_)), "ring is only for alarms: {e:?}");
}

#[tokio::test]
async fn alarms_in_the_past_and_beyond_the_bound_are_refused() {
    let node = durable_node(Duration::from_secs(60));
    let past = unix_ms() - 1000;
    let e = node.call("clock", "p", "at", &format!(r#"{{"at_ms": {past}}}"#)).await.unwrap_err();
    assert!(matches!(&e, CallError::InvalidArgument(m) if m.contains("in the past")), "{e:?}");
    let far = unix_ms() + 3_600_000;
    let n = ALARMS_PER_ACTOR_MAX - 1;
    node.call("clock", "p", "many", &format!(r#"{{"n": {n}, "at_ms": {far}}}"#)).await.unwrap();
    node.call("clock", "p", "at", &format!(r#"{{"at_ms": {far}}}"#)).await.unwrap();
    let e = node.call("clock", "p", "at", &format!(r#"{{"at_ms": {far}}}"#)).await.unwrap_err();
    assert!(matches!(&e, CallError::Rejected(m) if m.contains("pending alarms")), "{e:?}");
    let alarms = list(&node, "p").await;
    assert_eq!(alarms.len(), ALARMS_PER_ACTOR_MAX);
    assert!(alarms.iter().all(|a| a.due_ms == far && a.action == "tick"));
}

async fn list(node: &Node, key: &str) -> Vec<Alarm> {
    serde_json::from_str(&node.call("clock", key, "list", "").await.unwrap().result_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_handles_each_job_once_and_a_send_can_wait_for_it() {
    let node = durable_node(Duration::from_secs(60));
    for i in 0..20 {
        let seq = node.send("worker", "w", "jobs", &format!(r#"{{"id": "j{i}"}}"#), false).await.unwrap();
        assert_eq!(seq, i);
    }
    node.send("worker", "w", "jobs", r#"{"id": "last"}"#, true).await.unwrap();
    let processed: ProcessedJobs =
        serde_json::from_str(&node.call("worker", "w", "processed", "").await.unwrap().result_json).unwrap();
    assert!(processed.ids.contains(&"last".to_string()), "a waited-for send is handled when it answers");
    eventually("all 21 jobs are handled", async || {
        let reply = node.call("worker", "w", "processed", "").await.unwrap();
        serde_json::from_str::<ProcessedJobs>(&reply.result_json).unwrap().ids.len() == 21
    })
    .await;
    let processed: ProcessedJobs =
        serde_json::from_str(&node.call("worker", "w", "processed", "").await.unwrap().result_json).unwrap();
    assert!(processed.duplicates.is_empty());
    assert!(node.storage.scan_kv_prefix(keys::WORK_INDEX_PREFIX, None, 10).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_worker_is_woken_by_the_next_message() {
    let node = durable_node(Duration::from_millis(50));
    node.send("worker", "z", "jobs", r#"{"id": "first"}"#, true).await.unwrap();
    eventually("the worker sleeps", async || node.router.runtime().active_count() == 0).await;
    node.send("worker", "z", "jobs", r#"{"id": "second"}"#, true).await.unwrap();
    let processed: ProcessedJobs =
        serde_json::from_str(&node.call("worker", "z", "processed", "").await.unwrap().result_json).unwrap();
    assert_eq!(processed.ids, ["first", "second"]);
}

#[tokio::test]
async fn sends_to_unknown_queues_full_queues_and_bad_messages_are_refused() {
    let node = durable_node(Duration::from_secs(60));
    let e = node.send("worker", "w", "nope", "{}", false).await.unwrap_err();
    assert!(matches!(&e, CallError::NotFound(m) if m.contains("no queue \"nope\"")), "{e:?}");
    let e = node.call("worker", "w", SEND, r#"{"queue": "jobs"}"#).await.unwrap_err();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
    let e = node.send("worker", "w", "bad/name", "{}", false).await.unwrap_err();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
    // `inbox` has a queue and no run loop: nothing drains it.
    for i in 0..QUEUE_LENGTH_MAX {
        node.send("inbox", "full", "in", &i.to_string(), false).await.unwrap();
    }
    let e = node.send("inbox", "full", "in", "0", false).await.unwrap_err();
    assert!(matches!(&e, CallError::Overloaded(m) if m.contains("full")), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_removes_everything_leaves_a_tombstone_and_ends_subscriptions() {
    let node = durable_node(Duration::from_secs(60));
    node.call("counter", "d", "increment", r#"{"amount": 5}"#).await.unwrap();
    node.call("reminder", "d", "remindIn", r#"{"ms": 300, "note": "never"}"#).await.unwrap();
    node.send("inbox", "d", "in", "1", false).await.unwrap();
    let mut events = node.router.subscribe(ActorId::new("counter", "d"), vec![], false).await.unwrap();
    for actor in ["counter", "reminder", "inbox"] {
        node.call(actor, "d", DESTROY, "").await.unwrap();
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap();
    assert!(matches!(ended, Some(Err(_))), "subscribers are told: {ended:?}");
    let e = node.call("counter", "d", "getCount", "").await.unwrap_err();
    assert!(matches!(&e, CallError::NotFound(m) if m.contains("destroyed")), "{e:?}");
    let e = node.send("inbox", "d", "in", "2", false).await.unwrap_err();
    assert!(matches!(e, CallError::NotFound(_)), "a send to a destroyed actor: {e:?}");
    assert_eq!(node.alarm_index(), 0, "its alarms are gone");
    assert!(node.storage.scan_kv_prefix(keys::WORK_INDEX_PREFIX, None, 10).unwrap().is_empty());
    let data = keys::data_prefix(&ActorId::new("counter", "d").interference_key());
    let left: Vec<_> =
        node.storage.scan_kv_prefix(&data, None, 10).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left.len(), 2, "only the owner record and the tombstone are left: {left:?}");
    // Destroying again is harmless; a call with an input creates it again, from scratch.
    node.call("counter", "d", DESTROY, "").await.unwrap();
    let reply = node.call_with_input("counter", "d", "getCount", "null").await.unwrap();
    assert_eq!(reply.result_json, "0");
    assert_eq!(node.call("counter", "d", "increment", "").await.unwrap().result_json, "1");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = node.call("reminder", "d", "fired", "").await.unwrap_err();
    assert!(matches!(e, CallError::NotFound(_)), "its alarm did not bring it back: {e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_hooks_run_when_they_should() {
    let node = durable_node(Duration::from_millis(60));
    let first: (u32, u32, u32) =
        serde_json::from_str(&node.call("hooked", "h", "look", "").await.unwrap().result_json).unwrap();
    assert_eq!(first, (1, 1, 0), "(creations, this activation's wake number, sleeps)");
    let again: (u32, u32, u32) =
        serde_json::from_str(&node.call("hooked", "h", "look", "").await.unwrap().result_json).unwrap();
    assert_eq!(again, (1, 1, 0), "on_create runs once, on_wake once per activation");
    eventually("the actor sleeps", async || node.router.runtime().active_count() == 0).await;
    let woke: (u32, u32, u32) =
        serde_json::from_str(&node.call("hooked", "h", "look", "").await.unwrap().result_json).unwrap();
    assert_eq!(woke, (1, 2, 1), "on_sleep's write is kept, on_wake ran again");
    let e = node.call("hooked", "h", DESTROY, "").await.unwrap_err();
    assert!(matches!(&e, CallError::Rejected(m) if m.contains("keep")), "on_destroy may refuse: {e:?}");
    let still: (u32, u32, u32) =
        serde_json::from_str(&node.call("hooked", "h", "look", "").await.unwrap().result_json).unwrap();
    assert_eq!(still.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_turn_is_discarded_and_its_message_handled_again() {
    let node = durable_node(Duration::from_secs(60));
    node.send("flaky", "f", "in", r#""fail once""#, false).await.unwrap();
    node.send("flaky", "f", "in", r#""ok""#, false).await.unwrap();
    eventually("both messages are handled", async || {
        node.call("flaky", "f", "handled", "").await.unwrap().result_json == r#"["fail once","ok"]"#
    })
    .await;
}

/// Schedules and lists alarms directly.
struct Clock;

#[derive(Serialize, Deserialize)]
struct At {
    at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Many {
    n: usize,
    at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct SetThenFail {
    ms: u64,
}

#[derive(Serialize, Deserialize)]
struct List;

#[derive(Serialize, Deserialize)]
struct Tick;

impl Actor for Clock {
    const NAME: &'static str = "clock";
    type State = ();
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    type Actions = (At, Many, SetThenFail, List, Tick);
}

impl Action for At {
    const NAME: &'static str = "at";
    type Output = String;
}

impl Action for Many {
    const NAME: &'static str = "many";
    type Output = ();
}

impl Action for SetThenFail {
    const NAME: &'static str = "setThenFail";
    type Output = ();
}

impl Action for List {
    const NAME: &'static str = "list";
    type Output = Vec<Alarm>;
}

impl Action for Tick {
    const NAME: &'static str = "tick";
    type Output = ();
}

impl Handles<At> for Clock {
    async fn handle(&self, action: At, ctx: &mut Context<Self>) -> Result<String, ActorError> {
        ctx.schedule().at(action.at_ms, Tick)
    }
}

impl Handles<Many> for Clock {
    async fn handle(&self, action: Many, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        for _ in 0..action.n {
            ctx.schedule().at(action.at_ms, Tick)?;
        }
        Ok(())
    }
}

impl Handles<SetThenFail> for Clock {
    async fn handle(&self, action: SetThenFail, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.schedule().after(Duration::from_millis(action.ms), Tick)?;
        Err(ActorError::rejected("failing on purpose"))
    }
}

impl Handles<List> for Clock {
    async fn handle(&self, _: List, ctx: &mut Context<Self>) -> Result<Vec<Alarm>, ActorError> {
        ctx.schedule().list()
    }
}

impl Handles<Tick> for Clock {
    async fn handle(&self, _: Tick, _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

/// A queue without a run loop.
struct Inbox;

#[derive(Serialize, Deserialize)]
struct Nothing;

impl Actor for Inbox {
    const NAME: &'static str = "inbox";
    type State = ();
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    type Actions = (Nothing,);

    fn work(work: &mut Work<Self>) {
        work.queue("in");
    }
}

impl Action for Nothing {
    const NAME: &'static str = "nothing";
    type Output = ();
}

impl Handles<Nothing> for Inbox {
    async fn handle(&self, _: Nothing, _: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Counts its hooks: creations and sleeps in its state, wakes in its activation values.
#[derive(Default)]
struct Hooked {
    wakes: AtomicU32,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct HookedState {
    created: u32,
    slept: u32,
}

#[derive(Serialize, Deserialize)]
struct Look;

impl Actor for Hooked {
    const NAME: &'static str = "hooked";
    type State = HookedState;
    type Input = ();
    type Events = ();
    /// This activation's wake number.
    type Vars = u32;
    type ConnParams = ();
    type ConnState = ();

    type Actions = (Look,);

    async fn on_create(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().created += 1;
        Ok(())
    }

    async fn on_wake(&self, _: &Context<Self>) -> Result<u32, ActorError> {
        Ok(self.wakes.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn on_sleep(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().slept += 1;
        Ok(())
    }

    async fn on_destroy(&self, _: &mut Context<Self>) -> Result<(), ActorError> {
        Err(ActorError::rejected("keep me"))
    }
}

impl Action for Look {
    const NAME: &'static str = "look";
    type Output = (u32, u32, u32);
}

impl Handles<Look> for Hooked {
    async fn handle(&self, _: Look, ctx: &mut Context<Self>) -> Result<(u32, u32, u32), ActorError> {
        Ok((ctx.state().created, *ctx.vars(), ctx.state().slept))
    }
}

/// A run loop that fails the first time it meets a message saying "fail once".
struct Flaky;

#[derive(Clone, Default, Serialize, Deserialize)]
struct FlakyState {
    handled: Vec<String>,
    failed: bool,
}

#[derive(Serialize, Deserialize)]
struct Handled;

impl Actor for Flaky {
    const NAME: &'static str = "flaky";
    type State = FlakyState;
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    type Actions = (Handled,);

    fn work(work: &mut Work<Self>) {
        work.queue("in").run_loop();
    }
}

impl Action for Handled {
    const NAME: &'static str = "handled";
    type Output = Vec<String>;
}

impl Handles<Handled> for Flaky {
    async fn handle(&self, _: Handled, ctx: &mut Context<Self>) -> Result<Vec<String>, ActorError> {
        Ok(ctx.state().handled.clone())
    }
}

static FLAKY_FAILED: AtomicU32 = AtomicU32::new(0);

impl RunLoop for Flaky {
    async fn run(&self, ctx: &mut RunContext<Self>) -> Result<(), ActorError> {
        while let Some(message) = ctx.queue("in").next().await {
            let text: String = message.body()?;
            ctx.state_mut().handled.push(text.clone());
            if text == "fail once" && FLAKY_FAILED.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(ActorError::internal("failing once on purpose"));
            }
        }
        Ok(())
    }
}

async fn inspect(node: &Node, actor: &str, key: &str, args: &str) -> serde_json::Value {
    serde_json::from_str(&node.call(actor, key, INSPECT, args).await.unwrap().result_json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_summary_state_kv_queues_and_alarms() {
    let node = durable_node(Duration::from_secs(60));
    node.call("counter", "i", "increment", r#"{"amount": 7}"#).await.unwrap();
    let summary = inspect(&node, "counter", "i", "").await;
    assert_eq!(summary["owner"], ME);
    assert_eq!(summary["awake"], true);
    assert_eq!(summary["exists"], true);
    assert_eq!(summary["actions"], serde_json::json!(["getCount", "increment"]));
    assert_eq!(summary["events"], serde_json::json!(["newCount"]));
    assert_eq!(summary["stateBytes"], r#"{"count":7}"#.len());
    assert_eq!(
        inspect(&node, "counter", "i", r#"{"part": "state"}"#).await["state"],
        serde_json::json!({"count": 7})
    );

    for text in ["a", "b", "c"] {
        node.call("chatRoom", "i", "sendMessage", &format!(r#"{{"sender": "s", "text": "{text}"}}"#))
            .await
            .unwrap();
    }
    let kv = inspect(&node, "chatRoom", "i", r#"{"part": "kv", "limit": 2}"#).await;
    assert_eq!(kv["entries"].as_array().unwrap().len(), 2);
    let next = kv["next"].as_str().unwrap().to_string();
    let rest = inspect(&node, "chatRoom", "i", &format!(r#"{{"part": "kv", "after": "{next}"}}"#)).await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert_eq!(rest["entries"][0]["value"]["text"], "c");

    node.send("inbox", "i", "in", r#"{"n": 1}"#, false).await.unwrap();
    node.send("inbox", "i", "in", r#"{"n": 2}"#, false).await.unwrap();
    let queue = inspect(&node, "inbox", "i", r#"{"part": "queue"}"#).await;
    assert_eq!(queue["queues"][0]["depth"], 2);
    assert_eq!(queue["queues"][0]["messages"][1]["body"], serde_json::json!({"n": 2}));
    assert_eq!(inspect(&node, "inbox", "i", "").await["queues"][0]["depth"], 2);

    node.call("reminder", "i", "remindIn", r#"{"ms": 60000, "note": "later"}"#).await.unwrap();
    let alarms = inspect(&node, "reminder", "i", r#"{"part": "alarms"}"#).await;
    assert_eq!(alarms["alarms"][0]["action"], "ring");
    assert_eq!(alarms["alarms"][0]["args"], serde_json::json!({"note": "later"}));
    assert_eq!(inspect(&node, "reminder", "i", "").await["pendingAlarms"], 1);

    let e = node.call("counter", "i", INSPECT, r#"{"part": "nope"}"#).await.unwrap_err();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
    let e = node.call("counter", "i", PATCH_STATE, r#"{"state": {"cont": 1}}"#).await.unwrap_err();
    assert!(
        matches!(&e, CallError::InvalidArgument(m) if m.contains("not a state")),
        "a patch must be a state: {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_patch_racing_increments_loses_no_update() {
    let node = Arc::new(durable_node(Duration::from_secs(60)));
    const INCREMENTS: usize = 200;
    let mut tasks = Vec::new();
    for i in 0..INCREMENTS {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            if i == INCREMENTS / 2 {
                node.call("counter", "race", PATCH_STATE, r#"{"state": {"count": 100000}}"#).await.unwrap();
            }
            node.call("counter", "race", "increment", "").await.unwrap().result_json.parse::<i64>().unwrap()
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    let before: Vec<i64> = seen.iter().copied().filter(|&c| c < 100_000).collect();
    let after: Vec<i64> = seen.iter().copied().filter(|&c| c > 100_000).collect();
    // Every increment is one step of one sequence: 1.. before the patch, 100001.. after it.
    assert_eq!(before, (1..=before.len() as i64).collect::<Vec<_>>());
    assert_eq!(after, (100_001..=100_000 + after.len() as i64).collect::<Vec<_>>());
    assert_eq!(before.len() + after.len(), INCREMENTS);
    let last = node.call("counter", "race", "getCount", "").await.unwrap().result_json;
    assert_eq!(last, (100_000 + after.len()).to_string());
}

#[tokio::test]
async fn get_never_creates_create_refuses_an_existing_actor_and_compound_keys_work() {
    use crate::actor::examples::{ChatRoom, CounterInput, SendMessage};
    let node = durable_node(Duration::from_secs(60));
    let client = crate::actor::Client::local(Arc::downgrade(&node.router));
    assert!(client.get::<Counter>("g").await.unwrap().is_none());
    assert_eq!(node.stored_state("counter", "g"), None, "a get creates nothing");
    let counter = client.create::<Counter>("g", &Some(CounterInput { start: 5 })).await.unwrap();
    assert_eq!(counter.call(GetCount).await.unwrap(), 5);
    let Err(e) = client.create::<Counter>("g", &None).await else { panic!("created twice") };
    assert!(matches!(&e, CallError::Rejected(m) if m.contains("exists already")), "{e:?}");
    assert!(client.get::<Counter>("g").await.unwrap().is_some());
    node.call("counter", "g", DESTROY, "").await.unwrap();
    assert!(client.get::<Counter>("g").await.unwrap().is_none(), "a destroyed actor is not found");
    let again = client.create::<Counter>("g", &None).await.unwrap();
    assert_eq!(again.call(GetCount).await.unwrap(), 0);

    let room = client.actor_at::<ChatRoom, _>(&["org/acme", "general"]);
    assert_eq!(room.key(), "org\\/acme/general");
    room.call(SendMessage { sender: Some("ann".into()), text: "hi".into() }).await.unwrap();
    let other = client.actor_at::<ChatRoom, _>(&["org", "acme/general"]);
    assert_ne!(other.key(), room.key(), "parts with slashes do not collide");
}
