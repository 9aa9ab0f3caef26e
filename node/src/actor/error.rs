//! Why a call failed, and whether retrying can help: the one error type of the actor runtime,
//! its gRPC client and its service.
//!
//! # On the wire
//!
//! Each [`CallError`] is a gRPC status code with a message; two kinds carry more, in the
//! status's metadata (trailers), so that a status forwarded from node to node
//! ([`CallError::from_status`], then `Status::from`) keeps them:
//!
//! * [`CallError::Retry`]: `mortar-not-applied: true` ([`NOT_APPLIED_METADATA`]).
//! * [`CallError::User`], an error an actor chose to return with a code of its own
//!   ([`ActorError::user`](super::ActorError::user)): `FAILED_PRECONDITION`, the message as the
//!   status message, `mortar-error-code: <code>` ([`ERROR_CODE_METADATA`], ASCII) and, unless
//!   the metadata is `null`, `mortar-error-metadata-bin: <JSON>` ([`ERROR_METADATA_METADATA`],
//!   binary, so base64 on the wire as gRPC does for every `-bin` key). A client in any language
//!   reads them from the trailers; a `FAILED_PRECONDITION` without the code is a plain
//!   [`CallError::Rejected`].
//!
//! # Internal errors
//!
//! What an actor's own code fails with (an internal [`ActorError`](super::ActorError), an error
//! passed on with `?`, a panic) may hold anything: a panic message, a query, a path. Clients are
//! told only `internal error (id 7f3a9c21e0b4d512); see the log of node 2`, and that node logs
//! the whole text at ERROR with `error_id=7f3a9c21e0b4d512`. The runtime's own internal errors
//! (a corrupt record, a write answered unexpectedly) say what they are.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Code, Status};

/// gRPC metadata key set on an `UNAVAILABLE` status when the call was certainly not applied (so
/// any call, a write included, may be retried safely).
pub const NOT_APPLIED_METADATA: &str = "mortar-not-applied";
/// gRPC metadata key holding the code of a [`CallError::User`] (ASCII).
pub const ERROR_CODE_METADATA: &str = "mortar-error-code";
/// gRPC binary metadata key holding the metadata of a [`CallError::User`] as JSON; absent when
/// the metadata is `null`.
pub const ERROR_METADATA_METADATA: &str = "mortar-error-metadata-bin";
/// Longest code of a user error, in bytes.
pub const ERROR_CODE_BYTES_MAX: usize = 64;
/// Largest metadata of a user error, encoded as JSON. It travels in a gRPC trailer (base64, a
/// third larger) and HTTP/2 peers refuse header blocks over 16 KiB by default.
pub const ERROR_METADATA_BYTES_MAX: usize = 4096;
const _: () = assert!((ERROR_METADATA_BYTES_MAX * 4).div_ceil(3) + ERROR_CODE_BYTES_MAX < 16 * 1024 / 2);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No such actor type or action (`NOT_FOUND`). Retrying does not help.
    #[error("{0}")]
    NotFound(String),
    /// Malformed name, key or JSON arguments (`INVALID_ARGUMENT`). Retrying does not help.
    #[error("{0}")]
    InvalidArgument(String),
    /// The action returned an error (`FAILED_PRECONDITION`); the actor's state is unchanged.
    #[error("{0}")]
    Rejected(String),
    /// The actor refused with an error of its own, [`ActorError::user`](super::ActorError::user):
    /// a `code` clients can match on (1 to [`ERROR_CODE_BYTES_MAX`] ASCII letters, digits, `_`,
    /// `-` or `.`), its `message`, and `metadata` (JSON, `null` for none). `FAILED_PRECONDITION`
    /// with the code and metadata in the status's metadata (see the [module docs](self)). The
    /// actor's state is unchanged; retrying the same call does not help.
    #[error("{code}: {message}")]
    User { code: String, message: String, metadata: serde_json::Value },
    /// The call was not applied (the actor moved, its owner is changing or unreachable before the
    /// call was sent, no quorum to activate it): retrying is safe and may succeed
    /// (`UNAVAILABLE` with metadata [`NOT_APPLIED_METADATA`]).
    #[error("{0}")]
    Retry(String),
    /// The outcome is unknown: the action's write may or may not be applied (`UNAVAILABLE`, or
    /// `DEADLINE_EXCEEDED`). Retrying a write may apply it twice.
    #[error("{0}")]
    Unavailable(String),
    /// Too many calls queued for the actor or too many active actors on the node
    /// (`RESOURCE_EXHAUSTED`); not applied, retry later.
    #[error("{0}")]
    Overloaded(String),
    /// A bug or corrupt data (`INTERNAL`).
    #[error("{0}")]
    Internal(String),
}

impl CallError {
    /// Whether the call was certainly not applied and may succeed when sent again.
    pub fn is_retry_safe(&self) -> bool {
        matches!(self, CallError::Retry(_) | CallError::Overloaded(_))
    }

    /// The error a client decodes from a status.
    pub fn from_status(status: &Status) -> CallError {
        let message = status.message().to_string();
        match status.code() {
            Code::NotFound => CallError::NotFound(message),
            Code::InvalidArgument => CallError::InvalidArgument(message),
            Code::FailedPrecondition => match status.metadata().get(ERROR_CODE_METADATA) {
                None => CallError::Rejected(message),
                Some(code) => user_from_status(code.to_str().ok(), status, message),
            },
            Code::ResourceExhausted => CallError::Overloaded(message),
            Code::Unavailable if status.metadata().contains_key(NOT_APPLIED_METADATA) => {
                CallError::Retry(message)
            }
            Code::Unavailable if is_connect_failure(status) => {
                CallError::Retry(format!("the node could not be reached, nothing was sent: {message}"))
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
                CallError::Unavailable(message)
            }
            Code::Internal => CallError::Internal(message),
            code => CallError::Internal(format!("{code:?}: {message}")),
        }
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        match e {
            CallError::NotFound(m) => Status::not_found(m),
            CallError::InvalidArgument(m) => Status::invalid_argument(m),
            CallError::Rejected(m) => Status::failed_precondition(m),
            CallError::User { code, message, metadata } => user_status(code, message, &metadata),
            CallError::Retry(m) => {
                let mut status = Status::unavailable(m);
                status.metadata_mut().insert(NOT_APPLIED_METADATA, "true".parse().expect("ascii metadata"));
                status
            }
            CallError::Unavailable(m) => Status::unavailable(m),
            CallError::Overloaded(m) => Status::resource_exhausted(m),
            CallError::Internal(m) => Status::internal(m),
        }
    }
}

/// Decodes the [`CallError::User`] of a `FAILED_PRECONDITION` status whose code metadata reads
/// `code` (`None`: not ASCII). Details that do not decode are a bug of the sender: an internal
/// error that says so.
fn user_from_status(code: Option<&str>, status: &Status, message: String) -> CallError {
    let Some(code) = code else {
        return CallError::Internal(format!("a user error came with a code that is not ASCII: {message}"));
    };
    let metadata = match status.metadata().get_bin(ERROR_METADATA_METADATA).map(|v| v.to_bytes()) {
        // A bad code is told first, as `user_error` tells it.
        Some(Err(e)) if check_error_code(code).is_ok() => {
            return CallError::Internal(format!(
                "user error {code} came with metadata that is not base64 ({e}): {message}"
            ));
        }
        Some(Ok(bytes)) => Some(bytes),
        _ => None,
    };
    user_error(code, message, metadata.as_deref())
}

/// The [`CallError::User`] of `code`, `message` and metadata as JSON (`None`: `null`), as a
/// sender gave them (a status's metadata, a forwarded call's failure); a bad code or metadata
/// that is not JSON is the sender's bug: an internal error that says so.
pub fn user_error(code: &str, message: String, metadata_json: Option<&[u8]>) -> CallError {
    if let Err(why) = check_error_code(code) {
        return CallError::Internal(format!("a user error came with a bad code ({why}): {message}"));
    }
    let metadata = match metadata_json.map(serde_json::from_slice) {
        None => serde_json::Value::Null,
        Some(Ok(metadata)) => metadata,
        Some(Err(e)) => {
            return CallError::Internal(format!(
                "user error {code} came with metadata that is not JSON ({e}): {message}"
            ));
        }
    };
    CallError::User { code: code.to_string(), message, metadata }
}

/// The status of a [`CallError::User`]. A code that [`check_error_code`] refuses (the runtime
/// never sends one) leaves a plain `FAILED_PRECONDITION` saying `code: message`.
fn user_status(code: String, message: String, metadata: &serde_json::Value) -> Status {
    if check_error_code(&code).is_err() {
        return Status::failed_precondition(format!("{code}: {message}"));
    }
    let value: MetadataValue<Ascii> = code.parse().expect("a checked error code is a metadata value");
    let mut status = Status::failed_precondition(message);
    status.metadata_mut().insert(ERROR_CODE_METADATA, value);
    if !metadata.is_null() {
        let json = serde_json::to_vec(metadata).expect("a JSON value encodes");
        status.metadata_mut().insert_bin(ERROR_METADATA_METADATA, MetadataValue::from_bytes(&json));
    }
    status
}

/// Checks the code of a user error: 1 to [`ERROR_CODE_BYTES_MAX`] ASCII letters, digits, `_`,
/// `-` or `.` (e.g. `insufficient_funds`).
pub fn check_error_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > ERROR_CODE_BYTES_MAX {
        return Err(format!("error code {code:?} must be 1 to {ERROR_CODE_BYTES_MAX} bytes long"));
    }
    if !code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(format!("error code {code:?} may only contain ASCII letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

tokio::task_local! {
    /// The id of the node whose activation task this is (see [`in_node`]).
    static NODE_ID: u32;
}

/// Runs `task`, an activation's task on node `node_id`, so that the internal errors of its
/// actor's code can name the node whose log holds them ([`actor_internal`]).
pub(crate) async fn in_node<F: std::future::Future>(node_id: u32, task: F) -> F::Output {
    NODE_ID.scope(node_id, task).await
}

/// The error a client is told when the code of an actor fails (an internal
/// [`ActorError`](super::ActorError), an error passed on with `?`, a panic): `internal error (id
/// <16 hex digits>); see the log of node <id>`, while the node logs `what` failed and `detail`
/// at ERROR with that `error_id`. Never the detail itself: it may hold anything.
pub(crate) fn actor_internal(what: &str, detail: &str) -> CallError {
    let id = error_id();
    let node = NODE_ID.try_with(|node| *node).ok();
    tracing::error!(error_id = %id, what, error = %detail, "actor code failed; its caller was told the error id");
    CallError::Internal(match node {
        Some(node) => format!("internal error (id {id}); see the log of node {node}"),
        None => format!("internal error (id {id}); see the log of the node that runs the actor"),
    })
}

/// A new id for an internal error: 16 hex digits, unpredictable and, within a cluster's logs,
/// unique. SipHash with the process's random keys over a counter and the time: no two calls of
/// one process hash the same input, and other processes have other keys.
pub(crate) fn error_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    format!("{:016x}", hasher.finish())
}

/// Whether a client-side status says the TCP connection could not be made (so the request never
/// left this process).
pub fn is_connect_failure(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        if err.to_string().contains("tcp connect error") {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_a_status_round_trip() {
        for e in [
            CallError::NotFound("a".into()),
            CallError::InvalidArgument("b".into()),
            CallError::Rejected("c".into()),
            CallError::User {
                code: "insufficient_funds".into(),
                message: "c2".into(),
                metadata: serde_json::Value::Null,
            },
            CallError::User {
                code: "x.Y-9_z".into(),
                message: "balance too low: 5 < 10 ✓".into(),
                metadata: serde_json::json!({"balance": 5, "needed": [10, "cents"], "note": "ünïcode"}),
            },
            CallError::Retry("d".into()),
            CallError::Unavailable("e".into()),
            CallError::Overloaded("f".into()),
            CallError::Internal("g".into()),
        ] {
            assert_eq!(CallError::from_status(&Status::from(e.clone())), e);
        }
        assert!(CallError::Retry("x".into()).is_retry_safe());
        assert!(!CallError::Unavailable("x".into()).is_retry_safe());
        assert!(matches!(CallError::from_status(&Status::deadline_exceeded("t")), CallError::Unavailable(_)));
    }

    #[test]
    fn a_user_error_travels_in_the_status_metadata() {
        let metadata = serde_json::json!({"balance": 5});
        let status = Status::from(CallError::User {
            code: "insufficient_funds".into(),
            message: "too low".into(),
            metadata,
        });
        assert_eq!((status.code(), status.message()), (Code::FailedPrecondition, "too low"));
        assert_eq!(status.metadata().get(ERROR_CODE_METADATA).unwrap(), "insufficient_funds");
        let json = status.metadata().get_bin(ERROR_METADATA_METADATA).unwrap().to_bytes().unwrap();
        assert_eq!(&json[..], br#"{"balance":5}"#);
        // No metadata: no metadata entry.
        let status = Status::from(CallError::User {
            code: "nope".into(),
            message: "m".into(),
            metadata: serde_json::Value::Null,
        });
        assert!(status.metadata().get_bin(ERROR_METADATA_METADATA).is_none());
        // A code that is not one cannot be sent as one: said in the message instead.
        for code in ["bad\ncode", "has space"] {
            let status = Status::from(CallError::User {
                code: code.into(),
                message: "m".into(),
                metadata: serde_json::Value::Null,
            });
            assert_eq!(CallError::from_status(&status), CallError::Rejected(format!("{code}: m")));
        }
    }

    #[test]
    fn user_error_details_that_do_not_decode_are_internal() {
        let mut status = Status::failed_precondition("m");
        status.metadata_mut().insert(ERROR_CODE_METADATA, "has space".parse().unwrap());
        let e = CallError::from_status(&status);
        assert!(
            matches!(&e, CallError::Internal(m) if m.contains("bad code") && m.ends_with(": m")),
            "{e:?}"
        );
        let mut status = Status::failed_precondition("m");
        status.metadata_mut().insert(ERROR_CODE_METADATA, "ok".parse().unwrap());
        status.metadata_mut().insert_bin(ERROR_METADATA_METADATA, MetadataValue::from_bytes(b"{not json"));
        let e = CallError::from_status(&status);
        assert!(matches!(&e, CallError::Internal(m) if m.contains("not JSON")), "{e:?}");
    }

    #[test]
    fn error_codes_are_short_identifiers() {
        for good in ["a", "insufficient_funds", "E.42-x", &"c".repeat(ERROR_CODE_BYTES_MAX)] {
            assert_eq!(check_error_code(good), Ok(()), "{good}");
        }
        for bad in ["", "has space", "é", "a/b", "a:b", &"c".repeat(ERROR_CODE_BYTES_MAX + 1)] {
            assert!(check_error_code(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_ids_are_16_hex_digits_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| error_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())), "{ids:?}");
    }

    #[tokio::test]
    async fn an_internal_error_is_opaque_and_names_the_node() {
        let e =
            in_node(7, async { actor_internal("action x of actor a/b", "secret: password=hunter2") }).await;
        let CallError::Internal(message) = &e else { panic!("{e:?}") };
        let id = message
            .strip_prefix("internal error (id ")
            .and_then(|m| m.strip_suffix("); see the log of node 7"));
        assert!(id.is_some_and(|id| id.len() == 16), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let e = actor_internal("x", "y");
        assert!(
            matches!(&e, CallError::Internal(m) if m.ends_with("see the log of the node that runs the actor")),
            "{e:?}"
        );
    }
}
