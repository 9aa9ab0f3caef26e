//! What an acceptor concludes about pre-accepting a recoverer's proposal verbatim.

use crate::types::InstanceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryOutcome {
    Ok,
    /// An interfering instance the proposal misses; whether it is committed here.
    Conflict {
        conflict: InstanceId,
        committed: bool,
    },
}
