//! What an acceptor concludes about pre-accepting a recoverer's proposal verbatim.

use crate::types::{InstanceId, ReplicaId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TryOutcome {
    Ok,
    /// An interfering instance the proposal misses, with what it tells the recoverer (see
    /// `Message::TryPreAcceptNack`).
    Conflict {
        conflict: InstanceId,
        committed: bool,
        excluded: Vec<ReplicaId>,
    },
}
