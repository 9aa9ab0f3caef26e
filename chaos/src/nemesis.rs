//! Nemeses: the faults a run injects, and the pure parts of injecting them (which node pairs a
//! partition cuts, the nftables rules each node namespace gets). The runner in [`crate::run`]
//! performs them.
//!
//! | nemesis | start | end |
//! |---|---|---|
//! | `partition` | nftables drop rules between the node pairs the shape cuts | rules removed |
//! | `kill` | `SIGKILL` a minority of nodes | restart them on the same data directory |
//! | `pause` | `SIGSTOP` a minority of nodes | `SIGCONT` |
//! | `loss` | nftables drops a random share of the packets some nodes send to their peers | rules removed |
//! | `latency` | every peer proxy holds data back for a delay | delay 0 |
//! | `membership` | `mortar admin remove` one node (it stops) | its slot joins again with a wiped directory (`mortar node --join`): a new id |
//!
//! Partition shapes (Jepsen's): random halves (a minority and a majority), one node isolated, a
//! bridge (two halves that cannot talk, and one node that talks to both), and a majorities ring
//! (every node sees a majority, no two see the same one; not for 3 nodes, where every node sees
//! every other).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::topology::{NodeId, Topology};

/// The nftables table each node namespace gets (`inet`, so it sees IPv4 and IPv6).
pub const NFT_TABLE: &str = "mch_chaos";
/// Packet loss is given in percent; nftables' `numgen random mod 100 < P` needs `P` in 1..=99.
pub const LOSS_PERCENT_MAX: u32 = 99;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    Partition,
    Kill,
    Pause,
    Loss,
    Latency,
    /// The whole cluster at once: every node SIGKILLed, restarted when the window ends.
    Restart,
    /// One node removed from the replica group (a switch of epochs); its slot joins again as a
    /// new node with a wiped directory when the window ends (another switch, and a state copy).
    Membership,
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 7] = [
        NemesisKind::Partition,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Loss,
        NemesisKind::Latency,
        NemesisKind::Restart,
        NemesisKind::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Partition => "partition",
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Loss => "loss",
            NemesisKind::Latency => "latency",
            NemesisKind::Restart => "restart",
            NemesisKind::Membership => "membership",
        }
    }
}

impl fmt::Display for NemesisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `--nemesis` asked for: a comma-separated list of kinds (one fault at a time, kinds drawn
/// at random), `mixed` (every kind, sometimes two at once) or `none`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NemesisSpec {
    pub kinds: Vec<NemesisKind>,
    /// Windows may combine two faults of different kinds.
    pub mixed: bool,
}

impl FromStr for NemesisSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut kinds = BTreeSet::new();
        let mut mixed = false;
        let mut none = false;
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "mixed" => mixed = true,
                "none" => none = true,
                _ => {
                    let kind = NemesisKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
                        format!(
                            "unknown nemesis {name:?}: use a comma-separated list of partition, kill, pause, \
                             loss, latency, restart, membership, or mixed, or none"
                        )
                    })?;
                    kinds.insert(kind);
                }
            }
        }
        if none {
            if mixed || !kinds.is_empty() {
                return Err("--nemesis none cannot be combined with other nemeses".into());
            }
            return Ok(NemesisSpec { kinds: Vec::new(), mixed: false });
        }
        if mixed {
            kinds.extend(NemesisKind::ALL);
        }
        if kinds.is_empty() {
            return Err("--nemesis is empty: name at least one nemesis, mixed, or none".into());
        }
        Ok(NemesisSpec { kinds: kinds.into_iter().collect(), mixed })
    }
}

impl fmt::Display for NemesisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mixed {
            return f.write_str("mixed");
        }
        if self.kinds.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        f.write_str(&names.join(","))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionShape {
    /// A random minority and the majority.
    Halves,
    /// One node cut off from all others.
    Isolate,
    /// Two halves that cannot talk to each other and one node that talks to both.
    Bridge,
    /// Nodes on a ring, each connected to its nearest neighbours: every node sees a majority.
    MajoritiesRing,
}

impl PartitionShape {
    pub const ALL: [PartitionShape; 4] = [
        PartitionShape::Halves,
        PartitionShape::Isolate,
        PartitionShape::Bridge,
        PartitionShape::MajoritiesRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionShape::Halves => "halves",
            PartitionShape::Isolate => "isolate",
            PartitionShape::Bridge => "bridge",
            PartitionShape::MajoritiesRing => "majorities-ring",
        }
    }

    /// Shapes that cut something in a cluster of `nodes` (a ring of 3 is fully connected).
    pub fn for_nodes(nodes: u32) -> Vec<PartitionShape> {
        PartitionShape::ALL
            .into_iter()
            .filter(|s| *s != PartitionShape::MajoritiesRing || nodes >= 5)
            .collect()
    }
}

/// Whether two nodes stay connected under a partition.
type Connected = Box<dyn Fn(NodeId, NodeId) -> bool>;

/// A partition: which node pairs cannot reach each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub shape: PartitionShape,
    /// For people: halves and isolate `[[side], [side]]`; bridge `[[side], [bridge], [side]]`;
    /// majorities ring `[[ring order]]`.
    pub groups: Vec<Vec<NodeId>>,
    /// Pairs `(low, high)` that cannot exchange packets, sorted.
    pub cut: Vec<(NodeId, NodeId)>,
}

impl Partition {
    pub fn generate(shape: PartitionShape, topology: Topology, rng: &mut Rng) -> Partition {
        let n = topology.nodes();
        let mut order: Vec<NodeId> = topology.ids().collect();
        rng.shuffle(&mut order);
        let (groups, connected): (Vec<Vec<NodeId>>, Connected) = match shape {
            PartitionShape::Halves => {
                let minority = order[..(n / 2) as usize].to_vec();
                let majority = order[(n / 2) as usize..].to_vec();
                let side = minority.clone();
                (vec![minority, majority], Box::new(move |a, b| side.contains(&a) == side.contains(&b)))
            }
            PartitionShape::Isolate => {
                let alone = order[0];
                (vec![vec![alone], order[1..].to_vec()], Box::new(move |a, b| (a == alone) == (b == alone)))
            }
            PartitionShape::Bridge => {
                let bridge = order[0];
                let rest = &order[1..];
                let left = rest[..rest.len() / 2].to_vec();
                let right = rest[rest.len() / 2..].to_vec();
                let side = left.clone();
                (
                    vec![left, vec![bridge], right],
                    Box::new(move |a, b| {
                        a == bridge || b == bridge || side.contains(&a) == side.contains(&b)
                    }),
                )
            }
            PartitionShape::MajoritiesRing => {
                // Each node sees itself and `reach` neighbours on each side: 1 + 2 * reach must be
                // a majority.
                let majority = n / 2 + 1;
                let reach = majority / 2;
                assert!(1 + 2 * reach >= majority, "ring reach too small: n={n} reach={reach}");
                let position = order.clone();
                let place = move |node: NodeId| {
                    position.iter().position(|&x| x == node).expect("node on ring") as u32
                };
                (
                    vec![order.clone()],
                    Box::new(move |a, b| {
                        let d = place(a).abs_diff(place(b));
                        d.min(n - d) <= reach
                    }),
                )
            }
        };
        let mut cut = Vec::new();
        for a in topology.ids() {
            for b in (a + 1)..=n {
                if !connected(a, b) {
                    cut.push((a, b));
                }
            }
        }
        Partition { shape, groups, cut }
    }

    /// The peers `node` cannot reach, sorted.
    pub fn blocked(&self, node: NodeId) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self
            .cut
            .iter()
            .filter_map(|&(a, b)| {
                if a == node {
                    Some(b)
                } else if b == node {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        peers.sort_unstable();
        peers
    }
}

impl fmt::Display for Partition {
    /// `halves [1,4] | [2,3,5]`, `bridge [1] | 3 | [2,4]`, `majorities-ring 2-5-1-3-4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |g: &[NodeId]| format!("[{}]", g.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        match self.shape {
            PartitionShape::MajoritiesRing => {
                let ring: Vec<String> = self.groups[0].iter().map(u32::to_string).collect();
                write!(f, "{} {}", self.shape.name(), ring.join("-"))
            }
            PartitionShape::Bridge => write!(
                f,
                "{} {} | {} | {}",
                self.shape.name(),
                list(&self.groups[0]),
                self.groups[1][0],
                list(&self.groups[2])
            ),
            _ => write!(f, "{} {} | {}", self.shape.name(), list(&self.groups[0]), list(&self.groups[1])),
        }
    }
}

/// One fault, with its targets decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    Partition(Partition),
    Kill {
        nodes: Vec<NodeId>,
    },
    Pause {
        nodes: Vec<NodeId>,
    },
    /// Drop `percent` of the packets these nodes send to their peers.
    Loss {
        nodes: Vec<NodeId>,
        percent: u32,
    },
    /// Every peer proxy holds data back this long, each way.
    Latency {
        delay_ms: u64,
    },
    /// Every node is SIGKILLed at the start of the window and restarted on its data directory at
    /// its end: the whole cluster down at once. Never shares a window with another fault.
    Restart,
    /// A change of the cluster's membership at slot `node`, through another node's admin API; see
    /// [`MembershipOp`]. A change the control plane refuses (another fault left no safe switch) is
    /// recorded, and the slot stays as it was.
    Membership {
        node: NodeId,
        op: MembershipOp,
    },
}

/// What the membership nemesis does to its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipOp {
    /// `mortar admin remove` at the start (the node stops by itself); at the end the slot joins
    /// again as a new node with a wiped data directory (`--join`: an add).
    Remove,
    /// The node is SIGKILLed and its data directory wiped at the start (its disk died); at the
    /// end a new node takes its place at its address (`--join --replace`: one switch).
    Replace,
    /// `mortar admin drain` at the start (its actors move away, it stays a member), `undrain`
    /// at the end.
    Drain,
}

impl MembershipOp {
    pub const ALL: [MembershipOp; 3] = [MembershipOp::Remove, MembershipOp::Replace, MembershipOp::Drain];

    pub fn name(self) -> &'static str {
        match self {
            MembershipOp::Remove => "remove",
            MembershipOp::Replace => "replace",
            MembershipOp::Drain => "drain",
        }
    }
}

impl Fault {
    pub fn kind(&self) -> NemesisKind {
        match self {
            Fault::Partition(_) => NemesisKind::Partition,
            Fault::Kill { .. } => NemesisKind::Kill,
            Fault::Pause { .. } => NemesisKind::Pause,
            Fault::Loss { .. } => NemesisKind::Loss,
            Fault::Latency { .. } => NemesisKind::Latency,
            Fault::Restart => NemesisKind::Restart,
            Fault::Membership { .. } => NemesisKind::Membership,
        }
    }

    /// The `detail` of the fault's timeline events.
    pub fn detail(&self) -> serde_json::Value {
        let mut detail = match self {
            Fault::Partition(p) => serde_json::json!({"shape": p.shape, "groups": p.groups, "cut": p.cut}),
            Fault::Kill { nodes } | Fault::Pause { nodes } => serde_json::json!({"nodes": nodes}),
            Fault::Loss { nodes, percent } => serde_json::json!({"nodes": nodes, "percent": percent}),
            Fault::Latency { delay_ms } => serde_json::json!({"delay_ms": delay_ms}),
            Fault::Restart => serde_json::json!({}),
            Fault::Membership { node, op } => serde_json::json!({"nodes": [node], "op": op.name()}),
        };
        detail["text"] = self.to_string().into();
        detail
    }
}

fn node_list(nodes: &[NodeId]) -> String {
    nodes.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(p) => write!(f, "partition {p}"),
            Fault::Kill { nodes } => write!(f, "kill {}", node_list(nodes)),
            Fault::Pause { nodes } => write!(f, "pause {}", node_list(nodes)),
            Fault::Loss { nodes, percent } => write!(f, "loss {percent}% {}", node_list(nodes)),
            Fault::Latency { delay_ms } => write!(f, "latency {delay_ms}ms"),
            Fault::Restart => f.write_str("restart of every node"),
            Fault::Membership { node, op: MembershipOp::Remove } => {
                write!(f, "remove n{node}, then join it again wiped")
            }
            Fault::Membership { node, op: MembershipOp::Replace } => {
                write!(f, "kill n{node} and wipe it, then replace it in place")
            }
            Fault::Membership { node, op: MembershipOp::Drain } => {
                write!(f, "drain n{node}, then undrain it")
            }
        }
    }
}

/// The nftables script that sets node `node`'s table to what `active` faults need. It replaces
/// the whole table in one transaction (add, delete, re-create), so it is correct whatever the
/// table held before, and an empty `active` leaves an empty, accepting table.
///
/// Only peer traffic is touched: both addresses of every affected peer (node and proxy), never
/// the clients.
pub fn node_ruleset(topology: Topology, node: NodeId, active: &[&Fault]) -> String {
    let peer_addrs = |peers: &[NodeId]| -> String {
        let addrs: Vec<String> = peers
            .iter()
            .flat_map(|&p| [topology.node_addr(p).to_string(), topology.proxy_addr(p).to_string()])
            .collect();
        format!("{{ {} }}", addrs.join(", "))
    };
    let mut input = Vec::new();
    let mut output = Vec::new();
    for fault in active {
        match fault {
            Fault::Partition(partition) => {
                let blocked = partition.blocked(node);
                if !blocked.is_empty() {
                    input.push(format!("ip saddr {} drop", peer_addrs(&blocked)));
                    output.push(format!("ip daddr {} drop", peer_addrs(&blocked)));
                }
            }
            Fault::Loss { nodes, percent } if nodes.contains(&node) => {
                assert!(
                    (1..=LOSS_PERCENT_MAX).contains(percent),
                    "loss percent out of range: node={node} percent={percent}"
                );
                // Egress only: a packet between two lossy nodes is dropped once, not twice.
                let peers: Vec<NodeId> = topology.ids().filter(|&p| p != node).collect();
                output
                    .push(format!("ip daddr {} numgen random mod 100 < {percent} drop", peer_addrs(&peers)));
            }
            _ => {}
        }
    }
    let mut script =
        format!("table inet {NFT_TABLE} {{}}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n");
    for (chain, rules) in [("input", input), ("output", output)] {
        script.push_str(&format!(
            "\tchain {chain} {{\n\t\ttype filter hook {chain} priority 0; policy accept;\n"
        ));
        for rule in rules {
            script.push_str(&format!("\t\t{rule}\n"));
        }
        script.push_str("\t}\n");
    }
    script.push_str("}\n");
    script
}

#[cfg(test)]
#[path = "nemesis_test.rs"]
mod tests;
