//! `mortar bench kv`: the load generator for a running cluster.
//!
//! [`run_kv`] sends puts, and with `--reads` linearizable gets, to a Mortar cluster. Closed loop
//! by default: each client sends its next request when the previous one is answered. Open loop
//! with `--rate`: requests are due on a fixed schedule ([`schedule`]) and latency counts from the
//! due time, so a slow answer cannot hide the requests it delayed. Latencies go into HDR
//! histograms.
//!
//! The benchmarks that build whole clusters (`compare`, `wan`, `actors`) and the etcd client are
//! the lab's: `mortar-chaos bench compare|wan|actors`, and `mortar-chaos bench kv --target etcd`
//! for a running etcd cluster. They drive this same load generator through [`run_kv_on`] with
//! their own [`Connection`]s.
//!
//! Every run is bounded in time (`--duration`, `--timeout-ms` per request) and in operations
//! (`--ops-max`).
//!
//! ```text
//! $ mortar dev --base-port 7400 &
//! $ mortar bench kv --endpoints 127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402 --clients 16 --duration 5
//! $ mortar bench kv --endpoints 127.0.0.1:7400 --clients 16 --rate 2000 --json
//! ```

pub mod report;
pub mod schedule;
pub mod target;
pub mod workload;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;

pub use report::KvBenchResult;
pub use target::{Connection, MortarConnection, Target};
use workload::{Ops, Workload};

/// Most concurrent clients of one run.
pub const CLIENTS_MAX: u64 = 4096;
/// Longest `--duration` and `--warmup`, in seconds.
pub const DURATION_SECONDS_MAX: u64 = 24 * 3600;
/// Largest `--value-size` (Mortar's default `--value-bytes-max`; etcd's request limit is 1.5 MiB).
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Longest latency a histogram records; longer ones are recorded as this.
pub const LATENCY_MAX: Duration = Duration::from_secs(120);

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Closed loop by default: each client sends its next request when the previous \
    one is answered. With --rate, requests are due on a fixed schedule shared by the clients and latency \
    counts from the due time (give enough --clients: each has one request in flight).")]
pub struct KvBenchArgs {
    /// System under test (`mortar bench kv` drives mortar; `mortar-chaos bench kv` drives both).
    #[arg(long, value_enum, default_value_t = Target::Mortar)]
    pub target: Target,
    /// Comma-separated host:port list; clients are spread over them round-robin [default:
    /// 127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102 for mortar, 127.0.0.1:2379 for etcd].
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub endpoints: Vec<String>,
    /// Concurrent clients (each with one request in flight).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX))]
    pub clients: u64,
    /// Seconds to measure (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=DURATION_SECONDS_MAX))]
    pub duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=DURATION_SECONDS_MAX))]
    pub warmup: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys per client.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Fraction of requests on one key shared by all clients (0.0 = no conflicts, 1.0 = all conflict).
    #[arg(long, default_value_t = 0.0)]
    pub conflict: f64,
    /// Fraction of requests that are linearizable gets (the rest are puts).
    #[arg(long, default_value_t = 0.0)]
    pub reads: f64,
    /// Open loop: requests per second from all clients together, on a fixed schedule.
    #[arg(long, value_name = "OPS_PER_SEC")]
    pub rate: Option<f64>,
    /// Give up on one request after this many milliseconds (it counts as an error).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Stop after this many operations in all, whatever the duration.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops_max: u64,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Token and TLS, as every client command takes them.
    #[command(flatten)]
    pub access: crate::cli::Credentials,
}

impl KvBenchArgs {
    /// The flags' defaults, for `target` at `endpoints`.
    pub fn new(target: Target, endpoints: Vec<String>) -> KvBenchArgs {
        KvBenchArgs {
            target,
            endpoints,
            clients: 1,
            duration: 10,
            warmup: 1,
            value_size: 100,
            keys: 1000,
            conflict: 0.0,
            reads: 0.0,
            rate: None,
            timeout_ms: 10_000,
            ops_max: 10_000_000,
            json: false,
            access: crate::cli::Credentials::default(),
        }
    }

    /// Checks what clap cannot; the message names the flag and the allowed range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=CLIENTS_MAX).contains(&self.clients),
            "--clients {} is out of range: give 1 to {CLIENTS_MAX}",
            self.clients
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.conflict),
            "--conflict {} is out of range: give a fraction from 0.0 to 1.0",
            self.conflict
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.reads),
            "--reads {} is out of range: give a fraction from 0.0 to 1.0",
            self.reads
        );
        anyhow::ensure!(
            self.value_size <= VALUE_BYTES_MAX,
            "--value-size {} is too large: give at most {VALUE_BYTES_MAX} bytes",
            self.value_size
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate > 0.0 && rate <= schedule::RATE_MAX,
                "--rate {rate} is out of range: give more than 0 and at most {} requests per second",
                schedule::RATE_MAX
            );
        }
        anyhow::ensure!(self.keys >= 1, "--keys must be at least 1");
        Ok(())
    }

    fn workload(&self) -> Workload {
        Workload { keys: self.keys, conflict: self.conflict, reads: self.reads }
    }

    /// `--endpoints`, or the target's default ones when none is given.
    pub fn endpoints(&self) -> Vec<String> {
        if self.endpoints.is_empty() { self.target.endpoints_default() } else { self.endpoints.clone() }
    }
}

/// What one client measured.
struct ClientTally {
    latency: Histogram<u64>,
    errors: u64,
    missed: u64,
    first_error: Option<String>,
}

/// When a run measures, shared by its clients.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX.as_micros() as u64, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = latency.min(LATENCY_MAX).as_micros().max(1) as u64;
    histogram.record(us).expect("latency within the histogram's bounds");
}

/// Runs one load on a Mortar cluster: connects to every endpoint, runs the clients, merges what
/// they measured. etcd is the lab's: `mortar-chaos bench kv --target etcd`.
pub async fn run_kv(args: KvBenchArgs) -> anyhow::Result<KvBenchResult> {
    args.validate()?;
    anyhow::ensure!(
        args.target == Target::Mortar,
        "--target {}: the mortar binary drives Mortar clusters only; run `mortar-chaos bench kv --target {}` \
         with the same flags (build it with `cargo build --release -p mortar-chaos`)",
        args.target,
        args.target
    );
    let mut connections = Vec::new();
    for endpoint in args.endpoints() {
        connections.push(MortarConnection::open(&endpoint, &args.access).await?);
    }
    run_kv_on(args, connections).await
}

/// Runs one load through `connections` (one per endpoint; clients are spread over them
/// round-robin) and merges what the clients measured.
pub async fn run_kv_on<C: Connection>(
    args: KvBenchArgs,
    connections: Vec<C>,
) -> anyhow::Result<KvBenchResult> {
    args.validate()?;
    anyhow::ensure!(!connections.is_empty(), "no endpoint to send requests to; give --endpoints");
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let window = Window { start, measure_from, end: measure_from + Duration::from_secs(args.duration) };
    let ops_per_client = args.ops_max.div_ceil(args.clients);
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut tasks = Vec::with_capacity(args.clients as usize);
    for c in 0..args.clients {
        let connection = connections[c as usize % connections.len()].clone();
        let ops = Ops::new(args.workload(), c).take(ops_per_client as usize);
        let value = value.clone();
        let (clients, rate) = (args.clients, args.rate);
        tasks.push(tokio::spawn(async move {
            match rate {
                None => closed_loop(connection, ops, value, window, timeout).await,
                Some(rate) => open_loop(connection, ops, value, window, timeout, (c, clients, rate)).await,
            }
        }));
    }
    let mut latency = new_histogram();
    let (mut errors, mut missed, mut first_error) = (0, 0, None);
    for task in tasks {
        let tally = task.await.context("a benchmark client panicked")?;
        latency.add(&tally.latency).context("merge latency histograms")?;
        errors += tally.errors;
        missed += tally.missed;
        first_error = first_error.or(tally.first_error);
    }
    Ok(KvBenchResult::new(&args, &latency, errors, missed, first_error))
}

/// Sends one request with the per-request timeout.
async fn send(
    connection: &mut impl Connection,
    op: &workload::Op,
    value: &Bytes,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, connection.send(op, value)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Each request is sent when the previous one is answered; latency counts from the send.
async fn closed_loop(
    mut connection: impl Connection,
    ops: impl Iterator<Item = workload::Op>,
    value: Bytes,
    window: Window,
    timeout: Duration,
) -> ClientTally {
    let mut tally = ClientTally { latency: new_histogram(), errors: 0, missed: 0, first_error: None };
    for op in ops {
        let sent = Instant::now();
        if sent >= window.end {
            break;
        }
        let outcome = send(&mut connection, &op, &value, timeout).await;
        if sent >= window.measure_from {
            tally.count(outcome, sent);
        }
    }
    tally
}

/// Each request is due at its place in the schedule; latency counts from the due time. Requests
/// due before the end but not sent by then (the client was waiting on earlier ones) are `missed`.
async fn open_loop(
    mut connection: impl Connection,
    ops: impl Iterator<Item = workload::Op>,
    value: Bytes,
    window: Window,
    timeout: Duration,
    (client, clients, rate): (u64, u64, f64),
) -> ClientTally {
    let mut tally = ClientTally { latency: new_histogram(), errors: 0, missed: 0, first_error: None };
    for (k, op) in ops.enumerate() {
        let due = window.start + schedule::due(client, k as u64, clients, rate);
        if due >= window.end {
            break;
        }
        if Instant::now() >= window.end {
            if due >= window.measure_from {
                tally.missed += 1;
            }
            continue;
        }
        tokio::time::sleep_until(due.into()).await;
        let outcome = send(&mut connection, &op, &value, timeout).await;
        if due >= window.measure_from {
            tally.count(outcome, due);
        }
    }
    tally
}

impl ClientTally {
    fn count(&mut self, outcome: Result<(), String>, since: Instant) {
        match outcome {
            Ok(()) => record(&mut self.latency, since.elapsed()),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// One result as printed: a line for people, and with `json` one JSON object on the last line.
pub fn render(result: &KvBenchResult, json: bool) -> String {
    let mut out = result.line();
    if json {
        out.push('\n');
        out.push_str(&serde_json::to_string(result).expect("serialize bench result"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn etcd_is_left_to_the_lab_with_a_pointer() {
        let e = run_kv(KvBenchArgs::new(Target::Etcd, Vec::new())).await.unwrap_err().to_string();
        assert!(e.contains("mortar-chaos bench kv --target etcd"), "{e}");
    }
}
