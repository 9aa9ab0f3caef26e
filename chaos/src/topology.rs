//! Names and addresses of the test hosts: one network namespace per node, one for the clients,
//! one holding the bridge that joins them. Everything uses the private subnet [`SUBNET`] and the
//! name prefix [`PREFIX`], and nothing else.
//!
//! | host | namespace | addresses |
//! |---|---|---|
//! | node `i` (1..=7) | `mch-n<i>` | `10.77.0.<10+i>` node (clients), `10.77.0.<110+i>` its delay proxy (peers) |
//! | clients | `mch-c` | `10.77.0.2` |
//! | bridge | `mch-br` | none: a bridge `mch-bridge` and the far ends of every veth |
//!
//! Every node is started with the same `--initial-cluster`, naming the proxy addresses, so all
//! peer traffic over TCP (epoxy) passes a proxy that can hold it back (the `latency` nemesis);
//! clients talk to the node addresses directly. Gossip (UDP) goes between the node addresses
//! directly: partitions and loss apply to it, latency does not.

use std::net::{Ipv4Addr, SocketAddr};

/// Prefix of every namespace, link and table this harness creates; leftovers with it are removed
/// at the start of a run.
pub const PREFIX: &str = "mch-";
/// The only subnet used, inside the namespaces. The root namespace gets a blackhole route for it.
pub const SUBNET: &str = "10.77.0.0/24";
pub const BRIDGE_NS: &str = "mch-br";
pub const BRIDGE: &str = "mch-bridge";
pub const CLIENT_NS: &str = "mch-c";
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Port of every node's gRPC listener and of every proxy.
pub const GRPC_PORT: u16 = 7000;
/// Port of every node's HTTP listener.
pub const HTTP_PORT: u16 = 7100;
/// Cluster sizes the harness runs: 3, 5 or 7 tolerate 1, 2 or 3 failures.
pub const NODES_ALLOWED: [u32; 3] = [3, 5, 7];
const NODE_ADDR_BASE: u8 = 10;
const PROXY_ADDR_BASE: u8 = 110;
const _: () = assert!(NODE_ADDR_BASE as u32 + 7 < PROXY_ADDR_BASE as u32);
const _: () = assert!(PROXY_ADDR_BASE as u32 + 7 < 255);

/// Node ids run from 1 to `nodes`, as in Mortar's `--initial-cluster`.
pub type NodeId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    nodes: u32,
}

impl Topology {
    pub fn new(nodes: u32) -> Result<Self, String> {
        if NODES_ALLOWED.contains(&nodes) {
            Ok(Topology { nodes })
        } else {
            Err(format!("--nodes {nodes} is not supported: use 3, 5 or 7"))
        }
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        1..=self.nodes
    }

    /// Failures the cluster tolerates: a minority.
    pub fn minority(&self) -> u32 {
        (self.nodes - 1) / 2
    }

    pub fn namespace(&self, node: NodeId) -> String {
        self.check(node);
        format!("mch-n{node}")
    }

    /// The veth end inside the node's namespace, and its peer inside the bridge namespace.
    pub fn veth(&self, node: NodeId) -> (String, String) {
        self.check(node);
        (format!("mch-v{node}"), format!("mch-b{node}"))
    }

    pub fn node_addr(&self, node: NodeId) -> Ipv4Addr {
        self.check(node);
        Ipv4Addr::new(10, 77, 0, NODE_ADDR_BASE + node as u8)
    }

    pub fn proxy_addr(&self, node: NodeId) -> Ipv4Addr {
        self.check(node);
        Ipv4Addr::new(10, 77, 0, PROXY_ADDR_BASE + node as u8)
    }

    /// Where clients reach node `node`.
    pub fn grpc(&self, node: NodeId) -> SocketAddr {
        SocketAddr::new(self.node_addr(node).into(), GRPC_PORT)
    }

    pub fn http(&self, node: NodeId) -> SocketAddr {
        SocketAddr::new(self.node_addr(node).into(), HTTP_PORT)
    }

    /// Where peers reach node `node`: its proxy.
    pub fn proxy(&self, node: NodeId) -> SocketAddr {
        SocketAddr::new(self.proxy_addr(node).into(), GRPC_PORT)
    }

    /// Where node `node` finds its gossip peers (UDP): the other nodes' proxies, on the gRPC port
    /// number (the nodes' default gossip port), so the latency nemesis delays gossip too.
    pub fn gossip_seeds(&self, node: NodeId) -> String {
        self.ids().filter(|&n| n != node).map(|n| self.proxy(n).to_string()).collect::<Vec<_>>().join(",")
    }

    /// The gossip address node `node` gives its peers: its proxy's (it binds its own address).
    pub fn gossip_advertise(&self, node: NodeId) -> String {
        self.proxy(node).to_string()
    }

    /// The `--initial-cluster` every node gets: the proxy addresses.
    pub fn initial_cluster(&self) -> String {
        self.ids().map(|i| format!("{i}={}", self.proxy(i))).collect::<Vec<_>>().join(",")
    }

    fn check(&self, node: NodeId) {
        assert!((1..=self.nodes).contains(&node), "node {node} is not in 1..={}", self.nodes);
    }
}

/// The client veth pair: inside the client namespace, inside the bridge namespace.
pub const CLIENT_VETH: (&str, &str) = ("mch-vc", "mch-bc");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_cluster() {
        let t = Topology::new(3).unwrap();
        assert_eq!(t.grpc(2).to_string(), "10.77.0.12:7000");
        assert_eq!(t.proxy(3).to_string(), "10.77.0.113:7000");
        assert_eq!(t.initial_cluster(), "1=10.77.0.111:7000,2=10.77.0.112:7000,3=10.77.0.113:7000");
        assert_eq!(t.namespace(1), "mch-n1");
        assert_eq!(t.gossip_seeds(2), "10.77.0.111:7000,10.77.0.113:7000");
        assert_eq!(t.gossip_advertise(2), "10.77.0.112:7000");
        assert_eq!(t.minority(), 1);
        assert!(Topology::new(4).is_err());
        assert_eq!(Topology::new(7).unwrap().minority(), 3);
    }
}
