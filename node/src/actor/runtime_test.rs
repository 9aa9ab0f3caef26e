//! The runtime on one node, in process: a one-replica epoxy driver over in-memory storage, the
//! example actors and a test actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::*;
use crate::actor::examples::{self, ChatMessage, Counter, GetCount, Increment};
use crate::actor::lease;
use crate::actor::op::{ActorOp, ActorOutcome, OwnerRecord};
use crate::actor::router::{self, Router};
use crate::actor::{Action, Actor, ActorError, Context, Handles};
use crate::driver::{self, DriverHandle, Peers};
use crate::state_machine::{Op, Outcome};
use mortar_epoxy::{Config as EpoxyConfig, Replica, ReplicaId};
use mortar_storage::MemStorage;

const ME: u32 = 1;

struct Node {
    router: Arc<Router>,
    driver: DriverHandle,
    storage: Arc<MemStorage>,
}

fn node_with(config: RuntimeConfig) -> Node {
    let epoxy = EpoxyConfig::new(ReplicaId(ME), vec![ReplicaId(ME)]).unwrap();
    let storage = Arc::new(MemStorage::new());
    let (driver, _thread) = driver::start(
        Replica::new(epoxy),
        storage.clone(),
        Peers::new(),
        Duration::from_secs(5),
        None,
        Default::default(),
    )
    .unwrap();
    let mut registry = examples::registry();
    registry.register(Probe).register(Ledger).register(Tally);
    durable::register(&mut registry);
    conn_tests::register(&mut registry);
    let runtime = Runtime::new(config, registry, driver.clone(), storage.clone());
    let router = Router::new(runtime, router::single_node_view(ME));
    Node { router, driver, storage }
}

fn node() -> Node {
    node_with(RuntimeConfig::new(ME))
}

fn node_with_lease(lease: Duration) -> Node {
    let mut config = RuntimeConfig::new(ME);
    config.lease = lease;
    node_with(config)
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

impl Node {
    async fn call(&self, actor: &str, key: &str, action: &str, args: &str) -> Result<Reply, CallError> {
        self.router.call(&ActorId::new(actor, key), action, args.to_string(), None, false, deadline()).await
    }

    async fn call_with_input(
        &self,
        actor: &str,
        key: &str,
        action: &str,
        input: &str,
    ) -> Result<Reply, CallError> {
        let id = ActorId::new(actor, key);
        self.router.call(&id, action, String::new(), Some(input.to_string()), false, deadline()).await
    }

    async fn call_local(&self, actor: &str, key: &str, action: &str, args: &str) -> Result<Reply, CallError> {
        self.router
            .runtime()
            .call_local(&ActorId::new(actor, key), action, args.to_string(), None, deadline())
            .await
    }

    /// What another node's activation would commit: a fence on the owner's node lease if that
    /// is a node other than `node`, then the take.
    async fn activate_elsewhere(&self, actor: &str, key: &str, node: u32) -> u64 {
        use mortar_storage::Storage as _;
        let key = ActorId::new(actor, key).interference_key();
        let expect = self
            .storage
            .get_kv(&crate::actor::keys::owner_key(&key))
            .unwrap()
            .map(|bytes| OwnerRecord::decode(&bytes).unwrap());
        if let Some(owner) = expect
            && owner.node != node
        {
            let fence = ActorOp::Fence { node: owner.node, actor: key.clone(), generation: owner.generation };
            let fence_key = crate::actor::keys::node_lease_key(owner.node);
            match self.driver.execute(fence_key, Op::Actor(fence).encode()).await.unwrap() {
                Outcome::Actor(ActorOutcome::FenceSet { .. }) => {}
                other => panic!("fence answered {other:?}"),
            }
        }
        let op = Op::Actor(ActorOp::Take { node, expect }).encode();
        match self.driver.execute(key, op).await.unwrap() {
            Outcome::Actor(ActorOutcome::Activated { generation, .. }) => generation,
            other => panic!("activation answered {other:?}"),
        }
    }

    /// What node `node` commits to renew its node lease.
    async fn renew_elsewhere(&self, node: u32) {
        let op = Op::Actor(ActorOp::Renew { node }).encode();
        let outcome = self.driver.execute(crate::actor::keys::node_lease_key(node), op).await.unwrap();
        assert_eq!(outcome, Outcome::Actor(ActorOutcome::Renewed));
    }

    fn stored_state(&self, actor: &str, key: &str) -> Option<String> {
        use mortar_storage::Storage as _;
        let key = crate::actor::keys::state_key(&ActorId::new(actor, key).interference_key());
        self.storage.get_kv(&key).unwrap().map(|b| String::from_utf8(b.to_vec()).unwrap())
    }
}

#[path = "durable_test.rs"]
mod durable;

#[path = "connection_test.rs"]
mod conn_tests;

#[path = "forward_test.rs"]
mod forward_tests;

/// A test actor: exercises failures, panics and the key-value space.
struct Probe;

#[derive(Clone, Default, Serialize, Deserialize)]
struct ProbeState {
    touched: u32,
}

/// Changes the state, then fails.
#[derive(Serialize, Deserialize)]
struct FailAfterChange;

/// Panics after changing the state.
#[derive(Serialize, Deserialize)]
struct PanicAfterChange;

/// Writes `puts`, deletes `deletes`, then lists `prefix` and reads `get` as this action sees them.
#[derive(Serialize, Deserialize)]
struct KvScript {
    puts: Vec<(String, u32)>,
    deletes: Vec<String>,
    prefix: String,
    get: String,
}

/// Returns its `n`; ignores fields it does not declare, by choice.
#[derive(Serialize, Deserialize)]
struct Tolerant {
    n: u32,
}

impl Actor for Probe {
    const NAME: &'static str = "probe";
    type State = ProbeState;
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
    type Actions = (FailAfterChange, PanicAfterChange, KvScript, Tolerant);
}

impl Action for Tolerant {
    const NAME: &'static str = "tolerant";
    type Output = u32;
    const ALLOW_UNKNOWN_FIELDS: bool = true;
}

impl Handles<Tolerant> for Probe {
    async fn handle(&self, action: Tolerant, _: &mut Context<Self>) -> Result<u32, ActorError> {
        Ok(action.n)
    }
}

impl Action for FailAfterChange {
    const NAME: &'static str = "fail";
    type Output = ();
}

impl Action for PanicAfterChange {
    const NAME: &'static str = "panic";
    type Output = ();
}

impl Action for KvScript {
    const NAME: &'static str = "kv";
    type Output = (Vec<(String, u32)>, Option<u32>);
}

impl Handles<FailAfterChange> for Probe {
    async fn handle(&self, _: FailAfterChange, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().touched += 1;
        ctx.kv().put("x", &1)?;
        Err(ActorError::rejected("refused on purpose"))
    }
}

impl Handles<PanicAfterChange> for Probe {
    async fn handle(&self, _: PanicAfterChange, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.state_mut().touched += 1;
        panic!("on purpose");
    }
}

/// A test actor that cannot exist without an input: an owner, who must not be empty.
struct Ledger;

#[derive(Clone, Default, Serialize, Deserialize)]
struct LedgerState {
    owner: String,
    created: u32,
}

#[derive(Serialize, Deserialize)]
struct LedgerInput {
    owner: String,
}

/// Returns the owner and how often `create` ran for the stored state.
#[derive(Serialize, Deserialize)]
struct Owner;

impl Actor for Ledger {
    const NAME: &'static str = "ledger";
    type State = LedgerState;
    type Input = LedgerInput;
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    fn create(&self, _key: &str, input: LedgerInput) -> Result<LedgerState, ActorError> {
        if input.owner.is_empty() {
            return Err(ActorError::invalid_argument("a ledger needs an owner"));
        }
        Ok(LedgerState { owner: input.owner, created: 1 })
    }

    type Actions = (Owner,);
}

impl Action for Owner {
    const NAME: &'static str = "owner";
    type Output = (String, u32);
}

impl Handles<Owner> for Ledger {
    async fn handle(&self, _: Owner, ctx: &mut Context<Self>) -> Result<(String, u32), ActorError> {
        Ok((ctx.state().owner.clone(), ctx.state().created))
    }
}

impl Handles<KvScript> for Probe {
    async fn handle(
        &self,
        script: KvScript,
        ctx: &mut Context<Self>,
    ) -> Result<(Vec<(String, u32)>, Option<u32>), ActorError> {
        for (k, v) in &script.puts {
            ctx.kv().put(k, v)?;
        }
        for k in &script.deletes {
            ctx.kv().delete(k)?;
        }
        let listed = ctx.kv().list(&script.prefix, None, 100)?;
        let got = ctx.kv().get(&script.get)?;
        Ok((listed, got))
    }
}

#[tokio::test]
async fn counter_counts_and_reads_back() {
    let node = node();
    for expected in 1..=3 {
        let reply = node.call("counter", "a", "increment", r#"{"amount": 1}"#).await.unwrap();
        assert_eq!(reply.result_json, expected.to_string());
        assert_eq!((reply.generation, reply.served_by), (1, ME));
    }
    assert_eq!(
        node.call("counter", "a", "increment", "").await.unwrap().result_json,
        "4",
        "amount defaults to 1"
    );
    assert_eq!(node.call("counter", "a", "getCount", "").await.unwrap().result_json, "4");
    assert_eq!(node.call("counter", "b", "getCount", "null").await.unwrap().result_json, "0");
    assert_eq!(node.stored_state("counter", "a").as_deref(), Some(r#"{"count":4}"#));
    assert_eq!(node.router.runtime().active_count(), 2);
}

#[tokio::test]
async fn an_actor_with_a_required_input_exists_once_a_call_creates_it() {
    let node = node();
    let e = node.call("ledger", "l1", "owner", "").await.unwrap_err();
    assert!(matches!(&e, CallError::NotFound(m) if m.contains("does not exist yet")), "{e:?}");
    let e = node.call_with_input("ledger", "l1", "owner", r#"{"owner": ""}"#).await.unwrap_err();
    assert_eq!(e, CallError::InvalidArgument("creating actor ledger/l1: a ledger needs an owner".into()));
    let e = node.call_with_input("ledger", "l1", "owner", r#"{"who": "ann"}"#).await.unwrap_err();
    assert!(matches!(&e, CallError::InvalidArgument(m) if m.contains("input")), "{e:?}");
    assert_eq!(node.stored_state("ledger", "l1"), None, "refused creations store nothing");

    // A read-only call that creates the actor stores the created state.
    let reply = node.call_with_input("ledger", "l1", "owner", r#"{"owner": "ann"}"#).await.unwrap();
    assert_eq!(reply.result_json, r#"["ann",1]"#);
    assert_eq!(node.stored_state("ledger", "l1").as_deref(), Some(r#"{"owner":"ann","created":1}"#));
    // Later inputs are ignored, and a new activation finds the stored state.
    let reply = node.call_with_input("ledger", "l1", "owner", r#"{"owner": "bob"}"#).await.unwrap();
    assert_eq!(reply.result_json, r#"["ann",1]"#);
    node.router.runtime().retain_owned(|_| 2);
    let reply = node.call("ledger", "l1", "owner", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), (r#"["ann",1]"#, 2));
}

#[tokio::test]
async fn an_optional_input_starts_a_counter_and_no_input_stores_nothing_until_a_write() {
    let node = node();
    assert_eq!(node.call("counter", "plain", "getCount", "").await.unwrap().result_json, "0");
    assert_eq!(node.stored_state("counter", "plain"), None, "a read of a plain actor writes nothing");
    let reply = node.call_with_input("counter", "ten", "getCount", r#"{"start": 10}"#).await.unwrap();
    assert_eq!(reply.result_json, "10");
    assert_eq!(node.call("counter", "ten", "increment", "").await.unwrap().result_json, "11");
    assert_eq!(node.stored_state("counter", "ten").as_deref(), Some(r#"{"count":11}"#));
}

#[tokio::test]
async fn typed_events_decode_as_the_event_types_the_actor_lists() {
    use crate::actor::ActorEvent;
    use crate::actor::examples::{ChatRoom, MemberJoined, NewCount, NewMessage};
    let event = ActorEvent::<Counter>::new("newCount".into(), r#"{"count":3}"#.into());
    assert_eq!(event.get().unwrap(), Some(NewCount { count: 3 }));
    assert!(event.is::<NewCount, _>());
    // Another of the actor's events is not this one.
    let event = ActorEvent::<ChatRoom>::new("memberJoined".into(), r#"{"name":"ann"}"#.into());
    assert_eq!(event.get::<NewMessage, _>().unwrap(), None);
    assert_eq!(event.get().unwrap(), Some(MemberJoined { name: "ann".into() }));
    // Data that does not decode as the type its name says: the two sides' types differ.
    let event = ActorEvent::<Counter>::new("newCount".into(), r#"{"total":3}"#.into());
    let e = event.get::<NewCount, _>().unwrap_err();
    assert!(matches!(&e, CallError::Internal(m) if m.contains("newCount")), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_of_one_actor_run_one_at_a_time_in_arrival_order() {
    let node = Arc::new(node());
    node.call("counter", "q", "getCount", "").await.unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let node = node.clone();
            tokio::spawn(async move { node.call("counter", "q", "increment", "").await })
        })
        .collect();
    let mut counts = Vec::new();
    for call in calls {
        counts.push(call.await.unwrap().unwrap().result_json.parse::<i64>().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<_>>(), "each increment saw the one before it");
    let reply = node.call("counter", "q", "getCount", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("50", 1), "one activation throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_keeps_no_task() {
    let node = node();
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    node.call("counter", "warm", "increment", "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = tasks();
    for i in 0..200 {
        node.call("counter", &format!("idle-{i}"), "increment", "").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node.router.runtime().active_count(), 201);
    let after = tasks();
    assert!(after < before + 10, "{before} tasks before 200 activations, {after} after");
    // Each resumes with its state.
    assert_eq!(node.call("counter", "idle-7", "increment", "").await.unwrap().result_json, "2");
}

#[tokio::test]
async fn the_typed_client_calls_from_inside_the_node() {
    let node = node();
    let client = node.router.runtime().shared.client();
    let counter = client.actor::<Counter>("typed");
    assert_eq!(counter.call(Increment { amount: 5 }).await.unwrap(), 5);
    assert_eq!(counter.call(GetCount).await.unwrap(), 5);
}

#[tokio::test]
async fn bad_calls_get_clear_errors_and_leave_the_actor_running_and_unchanged() {
    let node = node();
    node.call("counter", "c", "increment", r#"{"amount": 7}"#).await.unwrap();
    let cases = [
        ("nope", "increment", "{}", "NotFound", "no actor type named \"nope\""),
        ("counter", "nope", "{}", "NotFound", "has no action \"nope\""),
        ("counter", "increment", "{\"amount\": ", "InvalidArgument", "not valid"),
        ("counter", "increment", r#"{"amount": "x"}"#, "InvalidArgument", "not valid"),
        ("counter", "increment", &format!(r#"{{"amount": {}}}"#, i64::MAX), "User", "overflow: adding"),
    ];
    for (actor, action, args, kind, text) in cases {
        let e = node.call(actor, "c", action, args).await.unwrap_err();
        let debug = format!("{e:?}");
        assert!(debug.starts_with(kind) && e.to_string().contains(text), "{actor}.{action}({args}): {debug}");
    }
    let e = node.call("counter", "", "increment", "{}").await.unwrap_err();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
    let reply = node.call("counter", "c", "getCount", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("7", 1), "same activation, same state");
    assert_eq!(node.stored_state("counter", "c").as_deref(), Some(r#"{"count":7}"#));
}

#[tokio::test]
async fn unknown_fields_in_arguments_and_inputs_are_refused_by_name() {
    let node = node();
    // Argument types written without `deny_unknown_fields`: the SDK refuses unknown fields itself.
    let script = r#"{"puts": [["a", 1]], "deletes": [], "prefix": "", "get": "a", "gett": "b"}"#;
    let e = node.call("probe", "p", "kv", script).await.unwrap_err();
    let CallError::InvalidArgument(message) = &e else { panic!("{e:?}") };
    assert!(message.contains(r#"unknown field "gett"; expected puts, deletes, prefix, get"#), "{e:?}");
    assert_eq!(node.stored_state("probe", "p"), None, "the action did not run");
    let e =
        node.call_with_input("ledger", "l", "owner", r#"{"owner": "ann", "ownr": "bob"}"#).await.unwrap_err();
    assert!(matches!(&e, CallError::InvalidArgument(m) if m.contains(r#"unknown field "ownr""#)), "{e:?}");
    // The example actors declare it too, and say so alike.
    let e = node.call("counter", "c", "increment", r#"{"amont": 5}"#).await.unwrap_err();
    assert!(matches!(&e, CallError::InvalidArgument(m) if m.contains("amont")), "{e:?}");
    assert_eq!(node.call("counter", "c", "getCount", "").await.unwrap().result_json, "0");
    // An action may choose to ignore them.
    let reply = node.call("probe", "p", "tolerant", r#"{"n": 3, "extra": true}"#).await.unwrap();
    assert_eq!(reply.result_json, "3");
}

#[tokio::test]
async fn a_failed_or_panicking_action_changes_nothing() {
    let node = node();
    let e = node.call("probe", "p", "fail", "").await.unwrap_err();
    assert_eq!(e, CallError::Rejected("probe.fail: refused on purpose".into()));
    let e = node.call("probe", "p", "panic", "").await.unwrap_err();
    assert!(matches!(&e, CallError::Internal(m) if m.starts_with("internal error (id ")), "{e:?}");
    // Still the first activation, state and key-value space untouched.
    let script = r#"{"puts": [], "deletes": [], "prefix": "", "get": "x"}"#;
    let reply = node.call("probe", "p", "kv", script).await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("[[],null]", 1));
    assert_eq!(node.stored_state("probe", "p"), None);
}

#[tokio::test]
async fn kv_reads_see_committed_data_plus_the_actions_own_writes() {
    let node = node();
    let script =
        r#"{"puts": [["a/1", 1], ["a/2", 2], ["b/1", 9]], "deletes": [], "prefix": "a/", "get": "b/1"}"#;
    let reply = node.call("probe", "k", "kv", script).await.unwrap();
    assert_eq!(reply.result_json, r#"[[["a/1",1],["a/2",2]],9]"#);
    let script = r#"{"puts": [["a/3", 3]], "deletes": ["a/1", "b/1"], "prefix": "a/", "get": "b/1"}"#;
    let reply = node.call("probe", "k", "kv", script).await.unwrap();
    assert_eq!(reply.result_json, r#"[[["a/2",2],["a/3",3]],null]"#);
    // A later action reads the committed data from storage.
    let script = r#"{"puts": [], "deletes": [], "prefix": "a/", "get": "a/3"}"#;
    assert_eq!(
        node.call("probe", "k", "kv", script).await.unwrap().result_json,
        r#"[[["a/2",2],["a/3",3]],3]"#
    );
}

#[tokio::test]
async fn chat_history_lives_in_the_key_value_space() {
    let node = node();
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let args = format!(r#"{{"sender": "ann", "text": "{text}"}}"#);
        assert_eq!(
            node.call("chatRoom", "lobby", "sendMessage", &args).await.unwrap().result_json,
            i.to_string()
        );
    }
    let reply = node.call("chatRoom", "lobby", "getHistory", r#"{"limit": 2}"#).await.unwrap();
    let history: Vec<ChatMessage> = serde_json::from_str(&reply.result_json).unwrap();
    assert_eq!(history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["two", "three"]);
    let all: Vec<ChatMessage> =
        serde_json::from_str(&node.call("chatRoom", "lobby", "getHistory", "").await.unwrap().result_json)
            .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        node.stored_state("chatRoom", "lobby").as_deref(),
        Some(r#"{"next_seq":3}"#),
        "state stays small"
    );
    let e =
        node.call("chatRoom", "lobby", "sendMessage", r#"{"sender": "", "text": "x"}"#).await.unwrap_err();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
}

#[tokio::test]
async fn a_deposed_activation_is_fenced_and_the_next_call_reactivates() {
    let node = node();
    assert_eq!(node.call_local("counter", "f", "increment", "").await.unwrap().result_json, "1");
    // Another node takes the actor over (its activation orders after our write).
    assert_eq!(node.activate_elsewhere("counter", "f", 2).await, 2);
    let e = node.call_local("counter", "f", "increment", "").await.unwrap_err();
    assert!(matches!(&e, CallError::Retry(m) if m.contains("node 2")), "{e:?}");
    assert_eq!(
        node.stored_state("counter", "f").as_deref(),
        Some(r#"{"count":1}"#),
        "the fenced write changed nothing"
    );
    assert_eq!(node.router.runtime().active_count(), 0, "a fenced activation deactivates");
    // The next call activates again (generation 3) from the stored state.
    let reply = node.call_local("counter", "f", "increment", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("2", 3));
}

#[tokio::test]
async fn reads_after_the_lease_confirm_ownership_first() {
    let node = node_with_lease(Duration::from_millis(100));
    node.call_local("counter", "l", "increment", "").await.unwrap();
    node.activate_elsewhere("counter", "l", 2).await;
    // Within the lease the owner answers from memory (the new owner would not have acknowledged a
    // write yet: it waits out the lease first).
    assert_eq!(node.call_local("counter", "l", "getCount", "").await.unwrap().result_json, "1");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let e = node.call_local("counter", "l", "getCount", "").await.unwrap_err();
    assert!(matches!(e, CallError::Retry(_)), "an expired lease must not serve a read: {e:?}");
}

#[tokio::test]
async fn a_new_owner_waits_out_the_old_lease_before_acknowledging_a_write() {
    let node = node_with_lease(Duration::from_millis(200));
    // The wait runs from the old owner's last op here: its activation, which executed after this.
    let before = Instant::now();
    node.activate_elsewhere("counter", "h", 2).await;
    node.call_local("counter", "h", "increment", "").await.unwrap();
    assert!(before.elapsed() >= lease::handover_wait(Duration::from_millis(200)), "{:?}", before.elapsed());
    // Reads are not delayed, and later writes neither.
    let started = Instant::now();
    node.call_local("counter", "h", "increment", "").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_new_owner_of_an_actor_whose_old_owner_went_quiet_writes_at_once() {
    let node = node_with_lease(Duration::from_millis(1000));
    node.activate_elsewhere("counter", "quiet", 2).await;
    // The old owner does nothing more (it died): once its lease is surely over, which gossip
    // takes longer than to declare it dead, a new owner's first write is not held back.
    tokio::time::sleep(lease::handover_wait(Duration::from_millis(1000))).await;
    let started = Instant::now();
    let reply = node.call_local("counter", "quiet", "increment", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("1", 2));
    assert!(started.elapsed() < Duration::from_millis(1000), "held back {:?}", started.elapsed());
}

#[tokio::test]
async fn reads_after_the_actors_own_lease_lapsed_are_answered_under_the_node_lease() {
    for node_lease in [true, false] {
        let mut config = RuntimeConfig::new(ME);
        config.lease = Duration::from_millis(300);
        config.node_lease = node_lease;
        let node = node_with(config);
        node.call_local("counter", "n", "increment", "").await.unwrap();
        // The activation's own lease lapses; the node lease was renewed every 100 ms meanwhile.
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Nothing can be committed any more: a read that needed a confirmation would fail.
        node.driver.hold();
        let read = node.call_local("counter", "n", "getCount", "").await;
        if node_lease {
            assert_eq!(read.unwrap().result_json, "1", "the node lease answers the read");
        } else {
            let e = read.unwrap_err();
            assert!(matches!(e, CallError::Retry(_)), "without a node lease the read confirms: {e:?}");
        }
    }
}

#[tokio::test]
async fn a_fenced_activation_does_not_answer_under_the_node_lease() {
    let node = node_with_lease(Duration::from_millis(300));
    node.call_local("counter", "r", "increment", "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    node.activate_elsewhere("counter", "r", 2).await;
    // The activation's own lease lapsed and its node lease is renewed, but the fence covers its
    // generation: it confirms, finds itself deposed, and does not answer.
    let e = node.call_local("counter", "r", "getCount", "").await.unwrap_err();
    assert!(matches!(&e, CallError::Retry(m) if m.contains("node 2")), "{e:?}");
    assert_eq!(node.router.runtime().active_count(), 0, "a deposed activation deactivates");
}

#[tokio::test]
async fn a_new_owner_waits_out_the_old_owners_node_lease_from_its_last_renewal() {
    let lease = Duration::from_millis(200);
    let node = node_with_lease(lease);
    node.activate_elsewhere("counter", "w", 2).await;
    // Long after node 2's last op on the actor (its activation), it renews its node lease: it may
    // answer reads of the actor from memory until `lease` after the renewal was sent.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let renewed = Instant::now();
    node.renew_elsewhere(2).await;
    let reply = node.call_local("counter", "w", "increment", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("1", 2));
    assert!(
        renewed.elapsed() >= lease::handover_wait(lease),
        "the first write was acknowledged {:?} after the old owner's renewal",
        renewed.elapsed()
    );
}

#[tokio::test]
async fn idle_actors_sleep_and_wake_with_their_state() {
    let mut config = RuntimeConfig::new(ME);
    config.idle_timeout = Duration::from_millis(100);
    let node = node_with(config);
    node.call("counter", "s", "increment", r#"{"amount": 3}"#).await.unwrap();
    assert_eq!(node.router.runtime().active_count(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.router.runtime().active_count(), 0, "the idle actor went to sleep");
    let reply = node.call("counter", "s", "getCount", "").await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("3", 2));
}

#[tokio::test]
async fn subscribers_receive_events_after_the_write() {
    let node = node();
    let mut all = node.router.subscribe(ActorId::new("counter", "e"), vec![], false).await.unwrap();
    let mut none = node.router.subscribe(ActorId::new("counter", "e"), vec!["other".into()], false).await;
    assert!(
        matches!(none.as_ref().err(), Some(CallError::InvalidArgument(_))),
        "unknown event names are refused"
    );
    none = node.router.subscribe(ActorId::new("counter", "e"), vec!["newCount".into()], false).await;
    let mut filtered = none.unwrap();
    node.call("counter", "e", "increment", r#"{"amount": 2}"#).await.unwrap();
    node.call("counter", "e", "getCount", "").await.unwrap();
    node.call("counter", "e", "increment", r#"{"amount": 2}"#).await.unwrap();
    for stream in [&mut all, &mut filtered] {
        for expected in [2, 4] {
            let event =
                tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(event.event, "newCount");
            assert_eq!(event.data_json, format!(r#"{{"count":{expected}}}"#));
        }
    }
    // When the actor moves away the stream ends and says to subscribe again.
    node.router.runtime().retain_owned(|_| 2);
    let end = tokio::time::timeout(Duration::from_secs(5), all.next()).await.unwrap().unwrap().unwrap_err();
    assert_eq!(end.code(), tonic::Code::Unavailable);
    assert!(end.message().contains("subscribe again"), "{end:?}");
    assert!(all.next().await.is_none());
}

#[tokio::test]
async fn moving_actors_stops_their_activations() {
    let node = node();
    node.call("counter", "m1", "increment", "").await.unwrap();
    node.call("counter", "m2", "increment", "").await.unwrap();
    node.router.runtime().retain_owned(|id| if id.key() == "m1" { 3 } else { ME });
    let (listed, total) = node.router.runtime().list(10);
    assert_eq!(total, 1);
    assert_eq!(listed[0].id, ActorId::new("counter", "m2"));
    assert_eq!(listed[0].generation, 1);
}

/// How many times a [`TallyState`] was decoded (from storage, or copied through JSON).
static TALLY_DECODES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A test actor whose state is not `Clone`, and counts its decodings.
struct Tally;

#[derive(Default, Serialize, Deserialize)]
#[serde(from = "TallyStored")]
struct TallyState {
    total: i64,
}

#[derive(Deserialize)]
struct TallyStored {
    total: i64,
}

impl From<TallyStored> for TallyState {
    fn from(stored: TallyStored) -> Self {
        TALLY_DECODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        TallyState { total: stored.total }
    }
}

/// Adds `n`; fails after adding when `fail`.
#[derive(Serialize, Deserialize)]
struct Add {
    n: i64,
    fail: bool,
}

impl Action for Add {
    const NAME: &'static str = "add";
    type Output = i64;
}

impl Actor for Tally {
    const NAME: &'static str = "tally";
    type State = TallyState;
    type Input = ();
    type Actions = (Add,);
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
}

impl Handles<Add> for Tally {
    async fn handle(&self, add: Add, ctx: &mut Context<Self>) -> Result<i64, ActorError> {
        ctx.state_mut().total += add.n;
        if add.fail {
            return Err(ActorError::user("refused", "after adding, on purpose"));
        }
        Ok(ctx.state().total)
    }
}

#[tokio::test]
async fn actions_change_the_state_in_place_and_a_failed_one_is_undone_from_the_store() {
    use std::sync::atomic::Ordering::SeqCst;
    let node = node();
    let add = |n: i64, fail: bool| format!(r#"{{"n": {n}, "fail": {fail}}}"#);
    assert_eq!(node.call("tally", "t", "add", &add(5, false)).await.unwrap().result_json, "5");
    let decoded = TALLY_DECODES.load(SeqCst);
    for i in 1..=20 {
        let reply = node.call("tally", "t", "add", &add(1, false)).await.unwrap();
        assert_eq!(reply.result_json, (5 + i).to_string());
    }
    assert_eq!(TALLY_DECODES.load(SeqCst), decoded, "no action copied the state");
    // A failed action changed the state in memory: the activation reads it back, once.
    let e = node.call("tally", "t", "add", &add(100, true)).await.unwrap_err();
    assert!(matches!(&e, CallError::User { code, .. } if code == "refused"), "{e:?}");
    let reply = node.call("tally", "t", "add", &add(1, false)).await.unwrap();
    assert_eq!((reply.result_json.as_str(), reply.generation), ("26", 1), "same activation, change undone");
    assert_eq!(TALLY_DECODES.load(SeqCst), decoded + 1, "read back from the store once");
    assert_eq!(node.stored_state("tally", "t").as_deref(), Some(r#"{"total":26}"#));
}

/// An actor that lists one action twice: a bug the registry refuses.
struct Twice;

impl Actor for Twice {
    const NAME: &'static str = "twice";
    type State = TallyState;
    type Input = ();
    type Actions = (Add, Add);
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
}

impl Handles<Add> for Twice {
    async fn handle(&self, add: Add, _: &mut Context<Self>) -> Result<i64, ActorError> {
        Ok(add.n)
    }
}

#[test]
#[should_panic(expected = "actor twice lists action add twice")]
fn an_action_listed_twice_is_refused_at_registration() {
    crate::actor::Registry::new().register(Twice);
}
