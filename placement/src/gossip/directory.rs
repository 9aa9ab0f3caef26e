//! The allow-list of identities: the cluster's node ids and gRPC addresses as the control plane's
//! node directory knows them. Pure: no I/O.

use std::collections::HashMap;

use crate::gossip::identity::GossipId;
use crate::ring::{GRPC_ADDR_BYTES_MAX, NodeId};

/// Most entries a directory may hold: far above any cluster this runs (a few hundred members),
/// low enough that a wrong call cannot make every datagram's check slow or eat memory.
pub const DIRECTORY_ENTRIES_MAX: usize = 4096;

/// Which identities this member hears and talks to, once the control plane has said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Directory {
    grpc_addrs: HashMap<NodeId, String>,
}

impl Directory {
    /// The directory of `members`, each `(node id, gRPC address)`.
    pub(crate) fn new(members: Vec<(NodeId, String)>) -> Result<Self, DirectoryError> {
        if members.len() > DIRECTORY_ENTRIES_MAX {
            return Err(DirectoryError::TooManyEntries {
                entries: members.len(),
                max: DIRECTORY_ENTRIES_MAX,
            });
        }
        let mut grpc_addrs: HashMap<NodeId, String> = HashMap::with_capacity(members.len());
        for (node, grpc_addr) in members {
            if grpc_addr.len() > GRPC_ADDR_BYTES_MAX {
                return Err(DirectoryError::AddressTooLong {
                    node,
                    bytes: grpc_addr.len(),
                    max: GRPC_ADDR_BYTES_MAX,
                });
            }
            if let Some(first) = grpc_addrs.get(&node)
                && *first != grpc_addr
            {
                return Err(DirectoryError::Conflict { node, first: first.clone(), second: grpc_addr });
            }
            grpc_addrs.insert(node, grpc_addr);
        }
        Ok(Self { grpc_addrs })
    }

    /// Whether `id` is a member of the cluster at the gRPC address the directory knows. Any
    /// generation and gossip address: a restarted member (new generation, maybe a new port) is
    /// still that member.
    pub(crate) fn allows(&self, id: &GossipId) -> bool {
        self.grpc_addrs.get(&id.node).is_some_and(|grpc_addr| *grpc_addr == id.grpc_addr)
    }

    pub(crate) fn len(&self) -> usize {
        self.grpc_addrs.len()
    }
}

/// Why [`Membership::set_directory`](crate::Membership::set_directory) refused a directory. The
/// previous directory (or none) stays in force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// More entries than [`DIRECTORY_ENTRIES_MAX`]: not a cluster's directory; pass the members
    /// of this cluster only.
    #[error("gossip directory: {entries} entries, at most {max} allowed; pass this cluster's members only")]
    TooManyEntries {
        /// How many were given.
        entries: usize,
        /// [`DIRECTORY_ENTRIES_MAX`].
        max: usize,
    },
    /// A gRPC address no member could gossip.
    #[error("gossip directory: node {node}'s address is {bytes} bytes long, at most {max} allowed")]
    AddressTooLong {
        /// The node.
        node: NodeId,
        /// Length of its address.
        bytes: usize,
        /// [`GRPC_ADDR_BYTES_MAX`].
        max: usize,
    },
    /// One node id with two addresses: the caller's directory is inconsistent; pass one entry per
    /// node.
    #[error("gossip directory: node {node} is listed at {first} and at {second}; pass one address per node")]
    Conflict {
        /// The node.
        node: NodeId,
        /// Its first address.
        first: String,
        /// The other one.
        second: String,
    },
    /// The gossip driver has stopped (see [`Membership::is_running`](crate::Membership::is_running)).
    #[error("gossip directory: the gossip driver has stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: NodeId, grpc_addr: &str, generation: u64, port: u16) -> GossipId {
        GossipId {
            node,
            addr: ([127, 0, 0, 1], port).into(),
            generation,
            region: String::new(),
            grpc_addr: grpc_addr.to_owned(),
        }
    }

    #[test]
    fn allows_known_ids_at_their_address_in_any_generation() {
        let directory =
            Directory::new(vec![(1, "10.0.0.1:7100".into()), (2, "10.0.0.2:7100".into())]).expect("valid");
        assert_eq!(directory.len(), 2);
        assert!(directory.allows(&id(1, "10.0.0.1:7100", 5, 7946)));
        assert!(directory.allows(&id(1, "10.0.0.1:7100", 6, 7947)), "a restart on another port");
        assert!(!directory.allows(&id(1, "10.0.0.9:7100", 6, 7946)), "a known id at another address");
        assert!(!directory.allows(&id(3, "10.0.0.3:7100", 1, 7946)), "an unknown id");
        assert!(!directory.allows(&GossipId::seed(([127, 0, 0, 1], 7946).into())));
    }

    #[test]
    fn refuses_what_no_cluster_has() {
        let too_many = (0..=DIRECTORY_ENTRIES_MAX as NodeId).map(|node| (node, String::new())).collect();
        assert!(matches!(Directory::new(too_many), Err(DirectoryError::TooManyEntries { .. })));
        let long = vec![(1, "a".repeat(GRPC_ADDR_BYTES_MAX + 1))];
        assert!(matches!(Directory::new(long), Err(DirectoryError::AddressTooLong { node: 1, .. })));
        let conflict = vec![(1, "10.0.0.1:7100".into()), (1, "10.0.0.9:7100".into())];
        let error = Directory::new(conflict).expect_err("two addresses");
        assert!(error.to_string().contains("listed at 10.0.0.1:7100 and at 10.0.0.9:7100"), "{error}");
        let repeated = vec![(1, "10.0.0.1:7100".into()), (1, "10.0.0.1:7100".into())];
        assert_eq!(Directory::new(repeated).map(|directory| directory.len()), Ok(1));
    }
}
