//! The exit statuses of `mortar`, one meaning each, so that a script can tell what to do next
//! without reading stderr:
//!
//! | Status | Meaning | What to do |
//! |---|---|---|
//! | 0 | success | |
//! | 1 | a definite "no": `kv get` found no key, `kv cas` did not swap; a node (`mortar node`, `mortar dev`) stopped with an error | |
//! | 2 | bad input: a usage error, a bad flag, JSON or endpoint, arguments the actor or node refuses (`INVALID_ARGUMENT`), missing or wrong credentials; also a failure of the command itself (a file it cannot read) | fix the command |
//! | 3 | not found: no such actor type, action or queue; an actor that does not exist (`call --get`, a required input, destroyed) | |
//! | 4 | refused: the actor returned a user error (stderr: `error: <code>: <message>`, then its metadata as one line of JSON) or rejected the call (`FAILED_PRECONDITION`); nothing changed | |
//! | 5 | unavailable, not applied: the node could not be reached, the actor is moving, too many calls are queued | retry, it is safe |
//! | 6 | no answer in time: the call may or may not have been applied | check before retrying a write |
//! | 7 | internal error: a bug or corrupt data (an actor's: `internal error (id …); see the log of node N`) | read that node's log |
//!
//! Usage errors exit 2 as clap's do. `mortar subscribe` exits like a call when it cannot
//! subscribe, and 5 when subscribing again after a move has failed for `--retry-for-ms`.

use super::Failure;
use crate::actor::CallError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A definite negative answer (not found, not swapped), or a node that stopped with an error.
pub const EXIT_NO: u8 = 1;
/// Bad input: a usage error, a bad flag, JSON or endpoint, an `INVALID_ARGUMENT` answer, missing
/// or wrong credentials; also a failure of the command itself.
pub const EXIT_ERROR: u8 = 2;
/// No such actor type, action or queue, or no such actor.
pub const EXIT_NOT_FOUND: u8 = 3;
/// The actor refused the call: a user error or a rejection. Nothing changed.
pub const EXIT_REFUSED: u8 = 4;
/// The call was certainly not applied (unreachable node, moving actor, overload): retry.
pub const EXIT_NOT_APPLIED: u8 = 5;
/// No answer in time: the outcome is unknown.
pub const EXIT_UNKNOWN: u8 = 6;
/// An internal error of the cluster or of an actor's code.
pub const EXIT_INTERNAL: u8 = 7;

/// The table for `mortar --help`.
pub const EXIT_STATUSES_HELP: &str = "Exit statuses:\n  \
    0  success\n  \
    1  a definite \"no\": kv get found no key, kv cas did not swap; or a node stopped with an error\n  \
    2  bad input: usage, flags, JSON, endpoint, arguments refused (InvalidArgument), credentials\n  \
    3  not found: no such actor type, action, queue, or actor\n  \
    4  refused by the actor, nothing changed: a rejection, or a user error (stderr: \
    `error: <code>: <message>`,\n     then its metadata as one line of JSON)\n  \
    5  unavailable and not applied (unreachable node, moving actor, overload): retrying is safe\n  \
    6  no answer in time: a write may or may not have happened\n  \
    7  internal error: see the log of the node the message names";

/// The exit status of a call's error.
pub fn of_call_error(e: &CallError) -> u8 {
    match e {
        CallError::InvalidArgument(_) => EXIT_ERROR,
        CallError::NotFound(_) => EXIT_NOT_FOUND,
        CallError::Rejected(_) | CallError::User { .. } => EXIT_REFUSED,
        CallError::Retry(_) | CallError::Overloaded(_) => EXIT_NOT_APPLIED,
        CallError::Unavailable(_) => EXIT_UNKNOWN,
        CallError::Internal(_) => EXIT_INTERNAL,
    }
}

/// The failure for an error status a node answered: exit status by [`of_call_error`] (bad
/// credentials are bad input), message `<Code>: <message>`; for a user error `<code>: <message>`
/// and, when it has metadata, a second line with the metadata as JSON.
pub fn of_status(status: &tonic::Status) -> Failure {
    let e = CallError::from_status(status);
    let code = match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => EXIT_ERROR,
        _ => of_call_error(&e),
    };
    if let CallError::User { code: user_code, message, metadata } = &e {
        let mut text = format!("{user_code}: {}", one_line(message));
        if !metadata.is_null() {
            text.push_str(&format!("\n{metadata}"));
        }
        return Failure::new(code, text);
    }
    let message = one_line(status.message());
    if message.is_empty() {
        Failure::new(code, format!("{:?}", status.code()))
    } else {
        Failure::new(code, format!("{:?}: {message}", status.code()))
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    #[test]
    fn every_error_has_its_exit_status() {
        let user = CallError::User {
            code: "insufficient_funds".into(),
            message: "too\nlow".into(),
            metadata: serde_json::json!({"balance": 5}),
        };
        let cases = [
            (Status::invalid_argument("a"), EXIT_ERROR, "InvalidArgument: a"),
            (Status::unauthenticated("b"), EXIT_ERROR, "Unauthenticated: b"),
            (Status::permission_denied("c"), EXIT_ERROR, "PermissionDenied: c"),
            (Status::not_found("d"), EXIT_NOT_FOUND, "NotFound: d"),
            (Status::failed_precondition("e"), EXIT_REFUSED, "FailedPrecondition: e"),
            (Status::from(user), EXIT_REFUSED, "insufficient_funds: too low\n{\"balance\":5}"),
            (Status::from(CallError::Retry("f".into())), EXIT_NOT_APPLIED, "Unavailable: f"),
            (Status::resource_exhausted("g"), EXIT_NOT_APPLIED, "ResourceExhausted: g"),
            (Status::unavailable("h"), EXIT_UNKNOWN, "Unavailable: h"),
            (Status::deadline_exceeded("i"), EXIT_UNKNOWN, "DeadlineExceeded: i"),
            (Status::internal("j\nk"), EXIT_INTERNAL, "Internal: j k"),
            (Status::unimplemented(""), EXIT_INTERNAL, "Unimplemented"),
        ];
        for (status, code, message) in cases {
            let failure = of_status(&status);
            assert_eq!((failure.code, failure.message.as_str()), (code, message), "{status:?}");
        }
        let user =
            CallError::User { code: "nope".into(), message: "m".into(), metadata: serde_json::Value::Null };
        assert_eq!(of_status(&Status::from(user)).message, "nope: m", "no metadata, no second line");
    }

    #[test]
    fn the_help_lists_every_status() {
        for code in [
            EXIT_OK,
            EXIT_NO,
            EXIT_ERROR,
            EXIT_NOT_FOUND,
            EXIT_REFUSED,
            EXIT_NOT_APPLIED,
            EXIT_UNKNOWN,
            EXIT_INTERNAL,
        ] {
            assert!(EXIT_STATUSES_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
