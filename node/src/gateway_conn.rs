//! Connections over HTTP: a server-sent event stream is one connection to an actor
//! ([`crate::actor::connection`]), and calls posted to its session run over it.
//!
//! ```console
//! $ curl -N 'localhost:7200/actors/chatRoom/lobby/connect?params=%7B%22name%22%3A%22ann%22%7D'
//! event: connected
//! data: {"conn":1733450000000123,"node":1,"session":"5f0c9a1e7d2b4c86"}
//!
//! event: memberJoined
//! data: {"name":"ann"}
//! $ curl -X POST localhost:7200/actors/chatRoom/lobby/connections/5f0c9a1e7d2b4c86/actions/sendMessage \
//!     -d '{"text": "hi"}'                     # sent as ann
//! 0
//! ```
//!
//! `GET /actors/{name}/{key}/connect` (`?params=JSON`, the actor's connection params;
//! `?event=NAME`, repeated, keeps only those events; the header `x-mortar-input` as for calls)
//! connects, running the actor's connection hooks (a refusal is the usual JSON error), then
//! streams `connected` (`{"conn", "node", "session"}`), the actor's events (`event: <name>`),
//! the events it sends to this connection alone (`event: message`, `{"event", "data"}`), and
//! `disconnected` (`{"reason"}`) when the actor ends the connection. When the actor moves the
//! stream closes after a comment saying why: connect again (as `EventSource` does by itself),
//! and the hooks run again on the new owner. Closing the stream disconnects (the actor's
//! on_disconnect runs).
//!
//! `POST /actors/{name}/{key}/connections/{session}/actions/{action}` runs an action over the
//! session's connection (the actor sees it as the caller) and answers as a plain call does. The
//! session lives on the node that answered the `connect`: post there (`404 not_found`
//! elsewhere, or once the stream closed). A session id is 16 random hex digits: whoever has it
//! acts as the connection, so keep it as secret as a token.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mortar_proto::v1::connect_request::Body as RequestBody;
use mortar_proto::v1::connect_response::Body as ResponseBody;
use mortar_proto::v1::{ConnectCall, ConnectCallResult, ConnectOpen, ConnectRequest};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::*;
use crate::actor::connection::{self, CONN_CALLS_IN_FLIGHT_MAX, ConnectStream};

/// Most connections the gateway of one node holds.
pub const SESSIONS_MAX: usize = 100_000;

/// The gateway's connections on this node, by session id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    next: AtomicU64,
}

struct Session {
    actor: ActorId,
    up: mpsc::Sender<Result<ConnectRequest, Status>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<ConnectCallResult>>>,
    next_call: AtomicU64,
}

impl Sessions {
    /// A session id no one can guess: 64 bits from the OS-seeded hasher of the standard library.
    fn new_id(&self) -> String {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.next.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        format!("{:016x}", hasher.finish())
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().expect("sessions lock").get(id).cloned()
    }
}

/// Removes its session when the event stream ends (or its client goes away).
struct Registered {
    sessions: Arc<Sessions>,
    id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.map.lock().expect("sessions lock").remove(&self.id);
    }
}

pub(super) async fn connect(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        gateway.authorize(&headers)?;
        let Path((name, key)) = path?;
        let mut events = Vec::new();
        let mut params_json = String::new();
        for (param, value) in query_pairs(query.as_deref())? {
            match param.as_str() {
                "event" => push_event(&mut events, value)?,
                "params" => params_json = value,
                other => return Err(unknown_parameter(other, "params=JSON, event=NAME (repeated)")),
            }
        }
        if params_json.len() > ARGS_BYTES_MAX {
            return Err(GatewayError::invalid(format!("params over {ARGS_BYTES_MAX} bytes")));
        }
        if gateway.sessions.map.lock().expect("sessions lock").len() >= SESSIONS_MAX {
            return Err(CallError::Overloaded(format!(
                "this node's gateway holds {SESSIONS_MAX} connections; retry later"
            ))
            .into());
        }
        let open = ConnectOpen {
            actor: name.clone(),
            key: key.clone(),
            params_json,
            input_json: input_of(&headers)?.unwrap_or_default(),
            events,
            forwarded: false,
        };
        let (up, stream) = connect_retrying(&gateway, open).await?;
        let session = Arc::new(Session {
            actor: ActorId::new(name, key),
            up,
            pending: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
        });
        let id = gateway.sessions.new_id();
        gateway.sessions.map.lock().expect("sessions lock").insert(id.clone(), session.clone());
        let registered = Registered { sessions: gateway.sessions.clone(), id };
        Ok(Sse::new(sse_connection(stream, session, registered))
            .keep_alive(KeepAlive::default())
            .into_response())
    }
    .await;
    finish("connect", result)
}

/// Connects, trying again (as [`subscribe_retrying`] does) while the owner is moving.
async fn connect_retrying(
    gateway: &Gateway,
    open: ConnectOpen,
) -> Result<(mpsc::Sender<Result<ConnectRequest, Status>>, ConnectStream), CallError> {
    let deadline = gateway.deadline();
    let mut view = gateway.router.view_watch();
    loop {
        view.borrow_and_update();
        let (up, rx) = mpsc::channel(CONN_CALLS_IN_FLIGHT_MAX);
        let request = ConnectRequest { body: Some(RequestBody::Open(open.clone())) };
        up.try_send(Ok(request)).expect("an empty channel has room");
        let inbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        match connection::serve(gateway.router.clone(), inbound).await {
            Err(CallError::Retry(why)) if Instant::now() < deadline => {
                tracing::debug!(actor = %open.actor, key = %open.key, error = %why, "connection not made; retrying");
                let wait = RETRY_BACKOFF.min(deadline.saturating_duration_since(Instant::now()));
                if let Ok(Err(_)) = tokio::time::timeout(wait, view.changed()).await {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(e) => return Err(e),
            Ok(stream) => return Ok((up, stream)),
        }
    }
}

/// The SSE events of a connection (see the module docs); calls' results go to their posters.
fn sse_connection(
    stream: ConnectStream,
    session: Arc<Session>,
    registered: Registered,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    futures::stream::unfold(Some((stream, session, registered)), |state| async move {
        let (mut stream, session, registered) = state?;
        loop {
            let sse = match stream.next().await {
                Some(Ok(response)) => match response.body {
                    Some(ResponseBody::Connected(c)) => {
                        let data = serde_json::json!({ "conn": c.conn_id, "node": c.served_by, "session": registered.id });
                        Event::default().event("connected").data(data.to_string()).retry(SSE_RETRY)
                    }
                    Some(ResponseBody::Result(result)) => {
                        let answer = session.pending.lock().expect("pending lock").remove(&result.call_id);
                        if let Some(answer) = answer {
                            let _ = answer.send(result);
                        }
                        continue;
                    }
                    Some(ResponseBody::Event(e)) => {
                        Event::default().event(one_line(&e.event)).data(one_line(&e.data_json))
                    }
                    Some(ResponseBody::Message(e)) => {
                        let data = serde_json::json!({
                            "event": e.event,
                            "data": serde_json::from_str::<serde_json::Value>(&e.data_json).unwrap_or_default(),
                        });
                        Event::default().event("message").data(data.to_string())
                    }
                    Some(ResponseBody::Disconnected(d)) => {
                        let data = serde_json::json!({ "reason": d.reason });
                        return Some((
                            Ok(Event::default().event("disconnected").data(data.to_string())),
                            None,
                        ));
                    }
                    None => continue,
                },
                Some(Err(status)) => {
                    let why = one_line(status.message());
                    let sse = Event::default().comment(format!("connection ended: {why}; connect again"));
                    return Some((Ok(sse), None));
                }
                None => return None,
            };
            return Some((Ok(sse), Some((stream, session, registered))));
        }
    })
}

pub(super) async fn call_over(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        gateway.authorize(&headers)?;
        let Path((name, key, session_id, action)) = path?;
        let not_found = || {
            GatewayError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no connection {session_id} to {name}/{key} on this node: post to the node that \
                     answered its connect, while its stream is open"
                ),
            )
        };
        let session = gateway.sessions.get(&session_id).ok_or_else(not_found)?;
        if session.actor != ActorId::new(name.clone(), key.clone()) {
            return Err(not_found());
        }
        let args_json = action_args(&body?)?;
        let call_id = session.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        session.pending.lock().expect("pending lock").insert(call_id, tx);
        let call = ConnectCall { call_id, action, args_json };
        if session.up.send(Ok(ConnectRequest { body: Some(RequestBody::Call(call)) })).await.is_err() {
            return Err(not_found());
        }
        let answer = tokio::time::timeout_at(gateway.deadline().into(), rx).await;
        session.pending.lock().expect("pending lock").remove(&call_id);
        let result = match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                return Err(CallError::Unavailable(
                    "the connection ended before the answer; the call may or may not have run".into(),
                )
                .into());
            }
            Err(_) => {
                return Err(CallError::Unavailable("no answer in time; the call may still run".into()).into());
            }
        };
        match result.error {
            Some(failure) => Err(connection::from_failure(failure).into()),
            None => Ok(([(header::CONTENT_TYPE, JSON)], result.result_json).into_response()),
        }
    }
    .await;
    finish("connection_action", result)
}
