//! What a benchmark prints: one result line per run, and `mortar bench compare`'s table.

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

/// A table of text cells, printed as Markdown (readable on a terminal, pastable in the README).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        assert_eq!(row.len(), self.header.len(), "row width differs from the header: row={row:?}");
        self.rows.push(row);
    }

    /// Markdown with padded columns; numbers (cells starting with a digit) are right-aligned.
    pub fn markdown(&self) -> String {
        let columns = self.header.len();
        let width: Vec<usize> = (0..columns)
            .map(|i| {
                let cells = std::iter::once(&self.header[i]).chain(self.rows.iter().map(|r| &r[i]));
                cells.map(|c| c.chars().count()).max().unwrap_or(0).max(3)
            })
            .collect();
        let numeric: Vec<bool> = (0..columns)
            .map(|i| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| r[i].starts_with(|c: char| c.is_ascii_digit()))
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if numeric[i] {
                        format!("{c:>w$}", w = width[i])
                    } else {
                        format!("{c:<w$}", w = width[i])
                    }
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let rule: Vec<String> = (0..columns)
            .map(|i| if numeric[i] { format!("{}:", "-".repeat(width[i] - 1)) } else { "-".repeat(width[i]) })
            .collect();
        let mut out = vec![line(&self.header), format!("| {} |", rule.join(" | "))];
        out.extend(self.rows.iter().map(|r| line(r)));
        out.join("\n")
    }
}

/// Operations per second, without decimals and with thousands separators: `12,345`.
pub fn ops(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with two decimals below 10 ms and one above: `0.83`, `12.4`.
pub fn ms(value: f64) -> String {
    if value < 10.0 { format!("{value:.2}") } else { format!("{value:.1}") }
}

/// `a / b` as `1.23×`, or `-` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() { format!("{:.2}×", a / b) } else { "-".to_string() }
}

#[cfg(test)]
#[path = "report_test.rs"]
mod report_test;
