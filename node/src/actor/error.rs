//! Why a call failed, and whether retrying can help: the one error type of the actor runtime,
//! its gRPC client and its service.

use tonic::{Code, Status};

/// gRPC metadata key set on an `UNAVAILABLE` status when the call was certainly not applied (so
/// any call, a write included, may be retried safely).
pub const NOT_APPLIED_METADATA: &str = "mortar-not-applied";

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
            Code::FailedPrecondition => CallError::Rejected(message),
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
}
