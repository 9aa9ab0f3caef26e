//! The HTTP/JSON gateway of a real three-node cluster with tokens, driven with curl as a user
//! would: calls through any node (forwarded to the owner), the seeds' `{"args": [x]}` envelope, the
//! creation input, every error status a client can provoke, `GET /actors`, a queue message, the
//! server-sent events of an actor, and a subscription that ends when its actor's owner is killed
//! and is made again. Bounded in time and operations; cluster tests run one at a time (see
//! `common::SERIAL`).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Cluster, bounded};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Bound on the test once its cluster is up.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// curl's own bound on one request, in seconds.
const CURL_SECONDS_MAX: &str = "20";
/// curl's bound on one event stream, in seconds.
const STREAM_SECONDS_MAX: &str = "90";
/// Bound on waiting for a line of an event stream.
const LINE_WAIT: Duration = Duration::from_secs(30);
const CLIENT: &str = "gateway-client-token-0001";
const ADMIN: &str = "gateway-admin-token-0001";

/// What curl got: the status and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The `code` of a JSON error, checking the error's shape.
    fn code(&self) -> String {
        let json = self.json();
        assert!(json["message"].is_string() && json["metadata"].is_null(), "{self:?}");
        json["code"].as_str().unwrap_or_else(|| panic!("no code: {self:?}")).to_string()
    }
}

/// Runs `curl -s -w '%{http_code}' <args>` (the status after the body, on its own line).
async fn curl(args: &[String]) -> Answer {
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", CURL_SECONDS_MAX, "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run curl (is it installed?)");
    let stdout = String::from_utf8(output.stdout).expect("curl prints UTF-8 here");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (body, status) =
        stdout.rsplit_once('\n').unwrap_or_else(|| panic!("curl printed {stdout:?}: {stderr}"));
    let status = status.parse().unwrap_or_else(|_| panic!("curl printed {stdout:?}: {stderr}"));
    Answer { status, body: body.to_string() }
}

/// One node's HTTP listener, as a client holding `token`.
struct Http {
    base: String,
    token: Option<&'static str>,
}

impl Http {
    fn of(cluster: &Cluster, id: usize, token: Option<&'static str>) -> Http {
        Http { base: format!("http://{}", cluster.node(id).http), token }
    }

    fn args(&self, method: &str, path: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec!["-X".into(), method.into()];
        if let Some(token) = self.token {
            args.extend(["-H".into(), format!("Authorization: Bearer {token}")]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(format!("{}{path}", self.base));
        args
    }

    async fn post(&self, path: &str, body: &str) -> Answer {
        self.post_with(path, body, &[]).await
    }

    async fn post_with(&self, path: &str, body: &str, extra: &[&str]) -> Answer {
        let mut all = vec!["-H", "content-type: application/json", "--data-binary", body];
        all.extend(extra);
        curl(&self.args("POST", path, &all)).await
    }

    async fn get(&self, path: &str) -> Answer {
        curl(&self.args("GET", path, &[])).await
    }

    /// An action's JSON output; panics unless it answers 200.
    async fn call(&self, actor: &str, key: &str, action: &str, body: &str) -> String {
        let answer = self.post(&format!("/actors/{actor}/{key}/actions/{action}"), body).await;
        assert_eq!(answer.status, 200, "{actor} {key} {action} {body}: {answer:?}");
        answer.body
    }

    /// The node that ran an action (`x-mortar-served-by`).
    async fn served_by(&self, actor: &str, key: &str, action: &str) -> usize {
        let path = format!("/actors/{actor}/{key}/actions/{action}");
        let args = self.args("POST", &path, &["-o", "/dev/null", "-d", ""]);
        let output = tokio::process::Command::new("curl")
            .args(["-s", "--max-time", CURL_SECONDS_MAX, "-w", "%header{x-mortar-served-by}"])
            .args(&args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.trim().parse().unwrap_or_else(|_| panic!("x-mortar-served-by is {text:?}"))
    }

    /// `curl -N` on an actor's event stream, its output read line by line.
    fn stream(&self, path: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut args = self.args("GET", path, &[]);
        args.splice(0..0, ["-s".to_string(), "-N".into(), "--max-time".into(), STREAM_SECONDS_MAX.into()]);
        let mut child = tokio::process::Command::new("curl")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run curl");
        let stdout = child.stdout.take().expect("a piped stdout");
        (child, BufReader::new(stdout).lines())
    }
}

/// Reads lines until one satisfies `want`; panics at the end of the stream or after
/// [`LINE_WAIT`], with the lines read.
async fn expect_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str, want: impl Fn(&str) -> bool) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LINE_WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read curl's output") {
            if want(&line) {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no {what} in the event stream; read {seen:?}");
}

/// Everything the gateway offers, against a cluster with a client and an admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_drives_actors_through_the_gateway() {
    let files = tempfile::tempdir().expect("a temp dir");
    let (client_file, admin_file) = (files.path().join("client.token"), files.path().join("admin.token"));
    std::fs::write(&client_file, format!("{CLIENT}\n")).expect("write the client token");
    std::fs::write(&admin_file, format!("{ADMIN}\n")).expect("write the admin token");
    let args = [
        "--auth-token-file",
        client_file.to_str().expect("a UTF-8 path"),
        "--admin-token-file",
        admin_file.to_str().expect("a UTF-8 path"),
    ];
    let mut cluster = Cluster::start_with(&args).await;
    bounded(TEST_TIMEOUT, async {
        // Without a token, or with a wrong one: 401, and the probes stay open.
        for token in [None, Some("not-the-token-at-all-0001")] {
            let stranger = Http::of(&cluster, 1, token);
            let answer = stranger.post("/actors/counter/gw-1/actions/increment", "").await;
            assert_eq!((answer.status, answer.code().as_str()), (401, "unauthenticated"), "{answer:?}");
            assert!(!answer.body.contains("not-the-token"), "{answer:?}");
            assert_eq!(stranger.get("/actors").await.status, 401);
            assert_eq!(stranger.get("/metrics").await.status, 200);
            assert_eq!(stranger.get("/healthz").await.status, 200);
        }

        // Either token, through any node: the owner answers.
        let nodes: Vec<Http> =
            (1..=3).map(|id| Http::of(&cluster, id, Some(if id == 2 { ADMIN } else { CLIENT }))).collect();
        assert_eq!(nodes[0].call("counter", "gw-1", "increment", r#"{"amount": 5}"#).await, "5");
        assert_eq!(nodes[1].call("counter", "gw-1", "increment", r#"{"args": [{"amount": 5}]}"#).await, "10");
        assert_eq!(nodes[2].call("counter", "gw-1", "increment", "").await, "11");
        assert_eq!(nodes[0].call("counter", "gw-1", "getCount", r#"{"args": []}"#).await, "11");
        // A key with a space and a slash, percent-encoded.
        assert_eq!(nodes[1].call("counter", "a%20b%2Fc", "increment", "").await, "1");
        assert_eq!(nodes[2].call("counter", "a%20b%2Fc", "getCount", "").await, "1");
        // The creation input.
        let created = nodes[0]
            .post_with(
                "/actors/counter/gw-start/actions/getCount",
                "",
                &["-H", r#"x-mortar-input: {"start": 100}"#],
            )
            .await;
        assert_eq!((created.status, created.body.as_str()), (200, "100"), "{created:?}");

        // The inspector: the admin token only; a patch shows in the next call.
        assert_eq!(nodes[0].call("counter", "gw-insp", "increment", r#"{"amount": 11}"#).await, "11");
        let summary = nodes[1].get("/actors/counter/gw-insp/inspector/summary").await;
        assert_eq!(summary.status, 200, "{summary:?}");
        assert_eq!(summary.json()["stateBytes"], r#"{"count":11}"#.len(), "{summary:?}");
        let refused = nodes[0].get("/actors/counter/gw-insp/inspector/state").await;
        assert_eq!((refused.status, refused.code()), (403, "permission_denied".to_string()), "{refused:?}");
        let patched = curl(&nodes[1].args(
            "PATCH",
            "/actors/counter/gw-insp/inspector/state",
            &["-H", "content-type: application/json", "--data-binary", r#"{"state": {"count": 50}}"#],
        ))
        .await;
        assert_eq!(patched.status, 200, "{patched:?}");
        let state = nodes[1].get("/actors/counter/gw-insp/inspector/state").await;
        assert_eq!(state.json()["state"], serde_json::json!({"count": 50}), "{state:?}");
        assert_eq!(nodes[0].call("counter", "gw-insp", "increment", "").await, "51");
        let bad = nodes[1].get("/actors/counter/gw-insp/inspector/nope").await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_argument".to_string()), "{bad:?}");

        // `{"args": [5]}` is unwrapped to `5`, which an increment (an object) refuses.
        let five = nodes[0].post("/actors/counter/gw-1/actions/increment", r#"{"args": [5]}"#).await;
        assert_eq!((five.status, five.code().as_str()), (400, "invalid_argument"), "{five:?}");
        assert!(five.json()["message"].as_str().unwrap().contains(r#"got "5""#), "{five:?}");
        for (path, body, status, code) in [
            ("/actors/nope/gw-1/actions/increment", "", 404, "not_found"),
            ("/actors/counter/gw-1/actions/nope", "", 404, "not_found"),
            ("/actors/counter/gw-1/actions/increment", "{amount: 5", 400, "invalid_argument"),
            ("/actors/counter/gw-1/actions/increment", r#"{"amont": 5}"#, 400, "invalid_argument"),
            ("/actors/counter/gw-1/actions/increment", r#"{"args": [1, 2]}"#, 400, "invalid_argument"),
        ] {
            let answer = nodes[1].post(path, body).await;
            assert_eq!((answer.status, answer.code().as_str()), (status, code), "{path} {body}: {answer:?}");
        }
        // An overflow is the counter's user error: 409 with its own code, message and metadata,
        // through a node that may forward it; it changes nothing.
        let max = r#"{"amount": 9223372036854775807}"#;
        assert_eq!(nodes[0].call("counter", "gw-max", "increment", max).await, "9223372036854775807");
        let refused = nodes[2].post("/actors/counter/gw-max/actions/increment", max).await;
        assert_eq!(refused.status, 409, "{refused:?}");
        let expected = serde_json::json!({
            "code": "overflow",
            "message": "adding 9223372036854775807 to 9223372036854775807 overflows",
            "metadata": { "count": i64::MAX, "amount": i64::MAX },
        });
        assert_eq!(refused.json(), expected, "{refused:?}");
        // A plain rejection keeps the gateway's code: a reminder rings only from its alarm.
        let ring = nodes[1].post("/actors/reminder/gw-r/actions/ring", r#"{"note": "now"}"#).await;
        assert_eq!((ring.status, ring.code().as_str()), (409, "rejected"), "{ring:?}");
        assert_eq!(nodes[1].call("counter", "gw-max", "getCount", "").await, "9223372036854775807");
        assert_eq!(nodes[1].call("counter", "gw-1", "getCount", "").await, "11");

        // The actor types.
        let listing = nodes[1].get("/actors").await;
        assert_eq!(listing.status, 200, "{listing:?}");
        let actors = listing.json()["actors"].as_array().expect("a list of actors").clone();
        let counter = actors.iter().find(|a| a["name"] == "counter").expect("counter is listed");
        assert_eq!(counter["actions"], serde_json::json!(["getCount", "increment"]));
        assert_eq!(counter["events"], serde_json::json!(["newCount"]));
        let worker = actors.iter().find(|a| a["name"] == "worker").expect("worker is listed");
        assert_eq!(worker["queues"], serde_json::json!(["jobs"]));

        // A queue message, then one waited for until the worker has handled it.
        let sent = nodes[2].post("/actors/worker/gw-w/queues/jobs", r#"{"id": "j1"}"#).await;
        assert_eq!(sent.status, 200, "{sent:?}");
        let first = sent.json()["id"].as_u64().expect("a sequence number");
        let waited = nodes[0].post("/actors/worker/gw-w/queues/jobs?wait=true", r#"{"id": "j2"}"#).await;
        assert_eq!(waited.status, 200, "{waited:?}");
        assert!(waited.json()["id"].as_u64().expect("a sequence number") > first, "{waited:?}");
        let processed = nodes[1].call("worker", "gw-w", "processed", "").await;
        assert!(processed.contains("\"j2\""), "{processed}");
        let nope = nodes[2].post("/actors/worker/gw-w/queues/nope", "{}").await;
        assert_eq!((nope.status, nope.code().as_str()), (404, "not_found"), "{nope:?}");

        // A chat room member connected with curl: its name in the connection, calls over it.
        let (_ann, mut ann) =
            nodes[0].stream("/actors/chatRoom/gw-chat/connect?params=%7B%22name%22%3A%22ann%22%7D");
        let session = tokio::time::timeout(LINE_WAIT, async {
            while let Some(line) = ann.next_line().await.expect("read curl's output") {
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(data)
                    && let Some(session) = json["session"].as_str()
                {
                    return session.to_string();
                }
            }
            panic!("the connection stream ended before `connected`");
        })
        .await
        .expect("`connected` in time");
        expect_line(&mut ann, "ann's own joining", |l| l == r#"data: {"name":"ann"}"#).await;
        let over = format!("/actors/chatRoom/gw-chat/connections/{session}/actions/sendMessage");
        let sent = nodes[0].post(&over, r#"{"text": "hi from curl"}"#).await;
        assert_eq!((sent.status, sent.body.as_str()), (200, "0"), "{sent:?}");
        expect_line(&mut ann, "the message, sent as ann", |l| l.contains(r#""sender":"ann""#)).await;
        let members = nodes[0]
            .post(&format!("/actors/chatRoom/gw-chat/connections/{session}/actions/getMembers"), "")
            .await;
        assert_eq!(members.body, r#"["ann"]"#, "{members:?}");
        let spoofed = nodes[0].post(&over, r#"{"sender": "bob", "text": "x"}"#).await;
        assert_eq!((spoofed.status, spoofed.code().as_str()), (400, "invalid_argument"), "{spoofed:?}");
        let elsewhere = nodes[1].post(&over, r#"{"text": "x"}"#).await;
        assert_eq!((elsewhere.status, elsewhere.code().as_str()), (404, "not_found"), "{elsewhere:?}");
        let taken =
            nodes[1].get("/actors/chatRoom/gw-chat/connect?params=%7B%22name%22%3A%22ann%22%7D").await;
        assert_eq!((taken.status, taken.code().as_str()), (409, "rejected"), "{taken:?}");
        let whisper =
            nodes[2].call("chatRoom", "gw-chat", "whisper", r#"{"to": "ann", "text": "psst"}"#).await;
        assert_eq!(whisper, "true");
        expect_line(&mut ann, "the whisper, for ann alone", |l| l == "event: message").await;
        assert_eq!(nodes[2].call("chatRoom", "gw-chat", "kick", r#"{"name": "ann"}"#).await, "true");
        expect_line(&mut ann, "the disconnection", |l| l == "event: disconnected").await;

        // Events: subscribed through a node that does not own the actor, which is then killed.
        let owner = nodes[0].served_by("counter", "gw-sse", "getCount").await;
        let via = if owner == 1 { 2 } else { 1 };
        let events = "/actors/counter/gw-sse/events?event=newCount";
        let (mut child, mut lines) = nodes[via - 1].stream(events);
        expect_line(&mut lines, "`: subscribed`", |l| l == ": subscribed").await;
        assert_eq!(nodes[2].call("counter", "gw-sse", "increment", r#"{"amount": 2}"#).await, "2");
        expect_line(&mut lines, "`event: newCount`", |l| l == "event: newCount").await;
        expect_line(&mut lines, "its data", |l| l == r#"data: {"count":2}"#).await;

        cluster.kill(owner);
        expect_line(&mut lines, "the end of the subscription", |l| l.starts_with(": subscription ended"))
            .await;
        let exited = tokio::time::timeout(LINE_WAIT, child.wait()).await;
        assert!(matches!(exited, Ok(Ok(status)) if status.success()), "curl did not end: {exited:?}");

        // Subscribing again reaches the new owner.
        let (_child, mut lines) = nodes[via - 1].stream(events);
        expect_line(&mut lines, "`: subscribed` again", |l| l == ": subscribed").await;
        let count = loop {
            // The new owner may still be taking over: a not-applied call is retried.
            let answer = nodes[via - 1].post("/actors/counter/gw-sse/actions/increment", "").await;
            match answer.status {
                200 => break answer.body,
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => panic!("increment after the failover: {answer:?}"),
            }
        };
        assert_eq!(count, "3");
        expect_line(&mut lines, "`event: newCount` after the failover", |l| l == "event: newCount").await;
        expect_line(&mut lines, "its data", |l| l == r#"data: {"count":3}"#).await;
    })
    .await;
}
