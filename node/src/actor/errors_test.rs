//! What a client sees when an actor fails: a user error with its code and metadata, as the actor
//! gave it (also through a status, as forwarded between nodes); everything else of the actor's
//! code (an internal error, `?` on any error, a panic) as an opaque internal error whose id is in
//! the node's log with the whole text. One node in process, as `runtime_test`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::actor::error::{CallError, ERROR_METADATA_BYTES_MAX};
use crate::actor::router::{self, Router};
use crate::actor::runtime::{Reply, Runtime, RuntimeConfig};
use crate::actor::{Action, Actor, ActorError, ActorErrorKind, ActorId, Context, Handles};
use crate::driver::{self, Peers};
use mortar_epoxy::{Config as EpoxyConfig, Replica, ReplicaId};
use mortar_storage::MemStorage;

const ME: u32 = 3;

/// Fails in every way an action can.
struct Failing;

impl Actor for Failing {
    const NAME: &'static str = "failing";
    type State = u32;
    type Input = ();
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    type Actions = (Withdraw, Anyhow, Serde, Panic, BadCode, BigMetadata, Nested, Reject, WithContext);
}

macro_rules! actions {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        #[derive(Serialize, Deserialize)]
        struct $ty;

        impl Action for $ty {
            const NAME: &'static str = $name;
            type Output = u32;
        }
    )*};
}

actions!(
    Withdraw = "withdraw",
    Anyhow = "anyhow",
    Serde = "serde",
    Panic = "panic",
    BadCode = "badCode",
    BigMetadata = "bigMetadata",
    Nested = "nested",
    Reject = "reject",
    WithContext = "withContext",
);

impl Handles<Withdraw> for Failing {
    async fn handle(&self, _: Withdraw, ctx: &mut Context<Self>) -> Result<u32, ActorError> {
        *ctx.state_mut() += 1; // discarded
        Err(ActorError::user("insufficient_funds", "the balance is too low")
            .with_metadata(serde_json::json!({ "balance": 5, "needed": [10, "cents"] })))
    }
}

impl Handles<Anyhow> for Failing {
    async fn handle(&self, _: Anyhow, _: &mut Context<Self>) -> Result<u32, ActorError> {
        let refused: anyhow::Result<u32> = Err(anyhow::anyhow!("password=hunter2 refused"));
        Ok(refused.context("open the ledger")?)
    }
}

impl Handles<Serde> for Failing {
    async fn handle(&self, _: Serde, _: &mut Context<Self>) -> Result<u32, ActorError> {
        Ok(serde_json::from_str::<u32>("\"secret-serde-input\"")?)
    }
}

impl Handles<Panic> for Failing {
    async fn handle(&self, _: Panic, _: &mut Context<Self>) -> Result<u32, ActorError> {
        panic!("secret panic text");
    }
}

impl Handles<BadCode> for Failing {
    async fn handle(&self, _: BadCode, _: &mut Context<Self>) -> Result<u32, ActorError> {
        Err(ActorError::user("has space", "secret bad-code message"))
    }
}

impl Handles<BigMetadata> for Failing {
    async fn handle(&self, _: BigMetadata, _: &mut Context<Self>) -> Result<u32, ActorError> {
        let big = "x".repeat(ERROR_METADATA_BYTES_MAX);
        Err(ActorError::user("too_big", "secret big message").with_metadata(serde_json::json!([big])))
    }
}

/// Passes on, with `?`, the user error of another actor's action.
impl Handles<Nested> for Failing {
    async fn handle(&self, _: Nested, ctx: &mut Context<Self>) -> Result<u32, ActorError> {
        Ok(ctx.client().actor::<Failing>("inner").call(Withdraw).await?)
    }
}

impl Handles<Reject> for Failing {
    async fn handle(&self, _: Reject, _: &mut Context<Self>) -> Result<u32, ActorError> {
        Err(ActorError::rejected("no"))
    }
}

/// Passes on another actor's rejection under an `anyhow` context: still a rejection.
impl Handles<WithContext> for Failing {
    async fn handle(&self, _: WithContext, ctx: &mut Context<Self>) -> Result<u32, ActorError> {
        Ok(ctx.client().actor::<Failing>("inner").call(Reject).await.context("charge the card")?)
    }
}

struct Node {
    router: Arc<Router>,
}

impl Node {
    fn start() -> Node {
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
        let mut registry = crate::actor::Registry::new();
        registry.register(Failing);
        let runtime = Runtime::new(RuntimeConfig::new(ME), registry, driver, storage);
        Node { router: Router::new(runtime, router::single_node_view(ME)) }
    }

    async fn call(&self, key: &str, action: &str) -> Result<Reply, CallError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        self.router.call(&ActorId::new("failing", key), action, String::new(), None, false, deadline).await
    }
}

/// What the node logs, in a buffer: a `tracing` subscriber for this thread (a current-thread
/// runtime polls every task of the test on it).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_log() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    (log, tracing::subscriber::set_default(subscriber))
}

/// The id in `internal error (id <id>); see the log of node 3`, checked to be 16 hex digits.
fn error_id(e: &CallError) -> String {
    let CallError::Internal(message) = e else { panic!("not an internal error: {e:?}") };
    let id = message
        .strip_prefix("internal error (id ")
        .and_then(|m| m.strip_suffix(&format!("); see the log of node {ME}")))
        .unwrap_or_else(|| panic!("not an opaque internal error: {message}"));
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{message}");
    id.to_string()
}

#[tokio::test]
async fn a_user_error_reaches_the_caller_as_the_actor_gave_it() {
    let node = Node::start();
    let expected = CallError::User {
        code: "insufficient_funds".into(),
        message: "the balance is too low".into(),
        metadata: serde_json::json!({ "balance": 5, "needed": [10, "cents"] }),
    };
    let e = node.call("a", "withdraw").await.unwrap_err();
    assert_eq!(e, expected);
    // Forwarded from the owner to the node that was asked: through a gRPC status and back.
    assert_eq!(CallError::from_status(&tonic::Status::from(e)), expected);
    // Passed on by another actor's action with `?`: unchanged.
    assert_eq!(node.call("b", "nested").await.unwrap_err(), expected);
    // Nothing the failing action changed was kept, and the actor still answers.
    assert_eq!(node.call("a", "withdraw").await.unwrap_err(), expected);
}

#[tokio::test]
async fn a_rejection_under_an_anyhow_context_stays_a_rejection() {
    let node = Node::start();
    let e = node.call("c", "withContext").await.unwrap_err();
    assert_eq!(e, CallError::Rejected("failing.withContext: charge the card: failing.reject: no".into()));
}

#[tokio::test]
async fn internal_errors_and_panics_are_opaque_with_an_id_in_the_log() {
    let (log, _guard) = capture_log();
    let node = Node::start();
    // Each action's secret is in the log under the error id the caller got, never in the answer.
    let cases = [
        ("anyhow", "open the ledger: password=hunter2 refused"),
        ("serde", "secret-serde-input"),
        ("panic", "panicked (secret panic text)"),
        ("badCode", "secret bad-code message"),
        ("bigMetadata", "secret big message"),
    ];
    let mut ids = Vec::new();
    for (action, secret) in cases {
        // Twice: the second call finds the activation parked, in another task.
        for _ in 0..2 {
            let e = node.call("d", action).await.unwrap_err();
            assert!(!e.to_string().contains(secret), "{action}: {e}");
            let id = error_id(&e);
            let line = log.text().lines().find(|l| l.contains(&format!("error_id={id}"))).map(str::to_string);
            let line = line.unwrap_or_else(|| panic!("{action}: no log line with id {id}:\n{}", log.text()));
            assert!(line.contains("ERROR") && line.contains(secret), "{action}: {line}");
            assert!(line.contains(&format!("action {action} of actor failing/d")), "{action}: {line}");
            ids.push(id);
        }
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "every failure has its own id: {ids:?}");
    // The actor still answers after all that.
    assert_eq!(node.call("d", "reject").await.unwrap_err(), CallError::Rejected("failing.reject: no".into()));
}

#[test]
fn any_error_converts_with_its_meaning() {
    // A std error: internal, with its message.
    let e = ActorError::from(serde_json::from_str::<u32>("x").unwrap_err());
    assert_eq!((e.kind, e.message.as_str()), (ActorErrorKind::Internal, "expected value at line 1 column 1"));
    // An anyhow error: internal, with its chain.
    let e = ActorError::from(anyhow::anyhow!("inner").context("outer"));
    assert_eq!((e.kind, e.message.as_str()), (ActorErrorKind::Internal, "outer: inner"));
    // A failed call keeps today's meaning, the user error all of it.
    let cases = [
        (CallError::InvalidArgument("a".into()), ActorError::invalid_argument("a")),
        (CallError::Rejected("b".into()), ActorError::rejected("b")),
        (CallError::NotFound("c".into()), ActorError::rejected("c")),
        (CallError::Retry("d".into()), ActorError::internal("d")),
        (CallError::Unavailable("e".into()), ActorError::internal("e")),
        (CallError::Overloaded("f".into()), ActorError::internal("f")),
        (CallError::Internal("g".into()), ActorError::internal("g")),
        (
            CallError::User { code: "x".into(), message: "h".into(), metadata: serde_json::json!([1]) },
            ActorError::user("x", "h").with_metadata(serde_json::json!([1])),
        ),
    ];
    for (call, expected) in cases {
        assert_eq!(ActorError::from(call.clone()), expected, "{call:?}");
        // Inside an anyhow error too.
        assert_eq!(ActorError::from(anyhow::Error::from(call.clone())), expected, "{call:?}");
    }
    // An ActorError carried by an anyhow error comes out whole.
    let user = ActorError::user("y", "i").with_metadata(serde_json::json!({"k": 1}));
    assert_eq!(ActorError::from(anyhow::Error::msg(user.clone())), user);
    assert_eq!(user.to_string(), "y: i");
    assert_eq!(ActorError::rejected("j").to_string(), "j");
}

#[test]
fn bad_user_errors_are_internal() {
    let (log, _guard) = capture_log();
    let ok = crate::actor::registry::call_error("w", ActorError::user("a.b-c_D9", "m"));
    assert_eq!(
        ok,
        CallError::User { code: "a.b-c_D9".into(), message: "m".into(), metadata: serde_json::Value::Null }
    );
    for bad in [
        ActorError::user("", "m"),
        ActorError::user("x".repeat(65), "m"),
        ActorError::user("a/b", "m"),
        ActorError::user("ok", "m").with_metadata(serde_json::json!("x".repeat(ERROR_METADATA_BYTES_MAX))),
    ] {
        let e = crate::actor::registry::call_error("w", bad.clone());
        assert!(
            matches!(&e, CallError::Internal(m) if m.starts_with("internal error (id ")),
            "{bad:?}: {e:?}"
        );
    }
    // Right at the bound: still a user error (a JSON string adds its two quotes).
    let at_bound = serde_json::json!("x".repeat(ERROR_METADATA_BYTES_MAX - 2));
    let e =
        crate::actor::registry::call_error("w", ActorError::user("ok", "m").with_metadata(at_bound.clone()));
    assert_eq!(e, CallError::User { code: "ok".into(), message: "m".into(), metadata: at_bound });
    assert!(log.text().contains("a user error has a bad code"), "{}", log.text());
}
