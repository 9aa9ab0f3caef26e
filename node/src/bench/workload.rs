//! The operations one benchmark client sends: the same sequence for every target, so Mortar and
//! etcd see the same keys in the same order.

use bytes::Bytes;

/// The key every client writes when a request "conflicts".
pub const HOT_KEY: &str = "bench/hot";

/// What every client of a run does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Distinct keys each client cycles through.
    pub keys: u64,
    /// Fraction of requests on [`HOT_KEY`], shared by all clients.
    pub conflict: f64,
    /// Fraction of requests that are linearizable reads; the rest are puts.
    pub reads: f64,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Bytes),
    Get(Bytes),
}

/// The requests of one client: a deterministic pseudo-random sequence seeded by the client's
/// number.
#[derive(Debug, Clone)]
pub struct Ops {
    workload: Workload,
    client: u64,
    sent: u64,
    state: u64,
}

impl Ops {
    pub fn new(workload: Workload, client: u64) -> Ops {
        assert!(workload.keys >= 1, "keys must be at least 1: keys={}", workload.keys);
        Ops { workload, client, sent: 0, state: 0x9e37_79b9_7f4a_7c15 ^ (client + 1) }
    }

    /// A uniform number in [0, 1) (PCG-style LCG; quality is plenty for picking keys).
    fn uniform(&mut self) -> f64 {
        self.state =
            self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Iterator for Ops {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        let hot = self.uniform() < self.workload.conflict;
        let key = if hot {
            Bytes::from_static(HOT_KEY.as_bytes())
        } else {
            Bytes::from(format!("bench/{}/{}", self.client, self.sent % self.workload.keys))
        };
        self.sent += 1;
        let read = self.uniform() < self.workload.reads;
        Some(if read { Op::Get(key) } else { Op::Put(key) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(workload: Workload, n: usize) -> (usize, usize) {
        let ops: Vec<Op> = Ops::new(workload, 3).take(n).collect();
        let hot =
            ops.iter().filter(|op| matches!(op, Op::Put(k) | Op::Get(k) if k == HOT_KEY.as_bytes())).count();
        let reads = ops.iter().filter(|op| matches!(op, Op::Get(_))).count();
        (hot, reads)
    }

    #[test]
    fn fractions_are_respected() {
        assert_eq!(count(Workload { keys: 10, conflict: 0.0, reads: 0.0 }, 1000), (0, 0));
        assert_eq!(count(Workload { keys: 10, conflict: 1.0, reads: 1.0 }, 1000), (1000, 1000));
        let (hot, reads) = count(Workload { keys: 10, conflict: 0.5, reads: 0.2 }, 10_000);
        assert!((4500..5500).contains(&hot), "hot={hot}");
        assert!((1500..2500).contains(&reads), "reads={reads}");
    }

    #[test]
    fn clients_cycle_through_their_own_keys() {
        let workload = Workload { keys: 2, conflict: 0.0, reads: 0.0 };
        let keys: Vec<Op> = Ops::new(workload, 7).take(3).collect();
        let put = |k: &'static str| Op::Put(Bytes::from_static(k.as_bytes()));
        assert_eq!(keys, [put("bench/7/0"), put("bench/7/1"), put("bench/7/0")]);
    }
}
