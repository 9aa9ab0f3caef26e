//! What `bench kv` prints: one result line per run, and the same as one JSON object.

use hdrhistogram::Histogram;

use super::KvBenchArgs;

/// The outcome of one `bench kv` run. Latencies in milliseconds; only requests sent (closed
/// loop) or due (open loop) after the warm-up count.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KvBenchResult {
    pub target: String,
    /// `closed` or `open`.
    pub mode: String,
    pub clients: u64,
    /// Open loop: requests per second asked for.
    pub rate: Option<f64>,
    pub conflict: f64,
    pub reads: f64,
    pub value_size: usize,
    /// Answered requests.
    pub ops: u64,
    /// Requests that failed or timed out.
    pub errors: u64,
    /// Open loop: requests due before the end that no client was free to send.
    pub missed: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The first error seen, to tell what went wrong.
    pub first_error: Option<String>,
}

impl KvBenchResult {
    pub fn new(
        args: &KvBenchArgs,
        latency: &Histogram<u64>,
        errors: u64,
        missed: u64,
        first_error: Option<String>,
    ) -> KvBenchResult {
        let seconds = args.duration as f64;
        let ms = |us: u64| us as f64 / 1000.0;
        KvBenchResult {
            target: args.target.name().to_string(),
            mode: if args.rate.is_some() { "open" } else { "closed" }.to_string(),
            clients: args.clients,
            rate: args.rate,
            conflict: args.conflict,
            reads: args.reads,
            value_size: args.value_size,
            ops: latency.len(),
            errors,
            missed,
            seconds,
            ops_per_sec: latency.len() as f64 / seconds,
            p50_ms: ms(latency.value_at_quantile(0.5)),
            p90_ms: ms(latency.value_at_quantile(0.9)),
            p99_ms: ms(latency.value_at_quantile(0.99)),
            p999_ms: ms(latency.value_at_quantile(0.999)),
            max_ms: ms(latency.max()),
            first_error,
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {} clients={} conflict={} reads={} ops={} errors={} ops/s={:.0} p50={:.3}ms p90={:.3}ms \
             p99={:.3}ms p999={:.3}ms max={:.3}ms",
            self.target,
            self.mode,
            self.clients,
            self.conflict,
            self.reads,
            self.ops,
            self.errors,
            self.ops_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        );
        if let Some(rate) = self.rate {
            line.push_str(&format!(" rate={rate} missed={}", self.missed));
        }
        if let Some(e) = &self.first_error {
            line.push_str(&format!(" first_error=\"{e}\""));
        }
        line
    }
}
