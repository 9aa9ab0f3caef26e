//! `mortar bench kv`: a closed-loop load generator for the KV API. Each client sends one request,
//! waits for the answer, and sends the next; latencies go into HDR histograms. Bounded in time
//! (`--duration`) and in operations (`--ops-max`).

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use mortar_proto::v1::PutRequest;
use mortar_proto::v1::kv_client::KvClient;
use std::time::{Duration, Instant};
use tonic::transport::Endpoint;

#[derive(clap::Args, Debug, Clone)]
pub struct KvBenchArgs {
    /// System under test (only `mortar` for now).
    #[arg(long, default_value = "mortar")]
    pub target: String,
    /// Comma-separated host:port list; clients are spread over them round-robin.
    #[arg(long, default_value = "127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Concurrent clients (each with one request in flight).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys per client.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Fraction of requests that write one shared key (0.0 = no conflicts, 1.0 = all conflict).
    #[arg(long, default_value_t = 0.0)]
    pub conflict: f64,
    /// Stop after this many operations in all, whatever the duration.
    #[arg(long, default_value_t = 10_000_000)]
    pub ops_max: u64,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KvBenchResult {
    pub target: String,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub async fn run_kv(args: KvBenchArgs) -> anyhow::Result<KvBenchResult> {
    anyhow::ensure!(args.target == "mortar", "--target {} is not supported yet (mortar only)", args.target);
    anyhow::ensure!(args.clients >= 1 && args.clients <= 4096, "--clients must be 1..=4096");
    anyhow::ensure!((0.0..=1.0).contains(&args.conflict), "--conflict must be within 0.0..=1.0");
    anyhow::ensure!(!args.endpoints.is_empty(), "--endpoints is empty");
    let mut channels = Vec::new();
    for e in &args.endpoints {
        let channel = Endpoint::from_shared(format!("http://{e}"))
            .with_context(|| format!("bad endpoint {e:?}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .with_context(|| format!("cannot reach a mortar node at {e}"))?;
        channels.push(channel);
    }
    let value = Bytes::from(vec![b'x'; args.value_size]);
    let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.duration);
    let ops_per_client = args.ops_max / args.clients as u64 + 1;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut client = KvClient::new(channels[c % channels.len()].clone());
        let value = value.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut errors = 0u64;
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1);
            for i in 0..ops_per_client {
                if Instant::now() >= end {
                    break;
                }
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let hot = ((state >> 11) as f64 / (1u64 << 53) as f64) < args.conflict;
                let key = if hot { "bench/hot".to_string() } else { format!("bench/{c}/{}", i % args.keys) };
                let started = Instant::now();
                let result = client
                    .put(PutRequest { key: key.into(), value: value.clone(), ..Default::default() })
                    .await;
                if started >= warmup_end {
                    match result {
                        Ok(_) => {
                            let us = started.elapsed().as_micros().max(1) as u64;
                            let _ = hist.record(us.min(60_000_000));
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.context("bench client panicked")?;
        hist.add(h).context("merge histograms")?;
        errors += e;
    }
    let seconds = args.duration as f64;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(KvBenchResult {
        target: args.target,
        clients: args.clients,
        ops: hist.len(),
        errors,
        seconds,
        ops_per_sec: hist.len() as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
    })
}

pub fn print(result: &KvBenchResult, json: bool) {
    println!(
        "{} clients={} ops={} errors={} ops/s={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms p999={:.3}ms",
        result.target,
        result.clients,
        result.ops,
        result.errors,
        result.ops_per_sec,
        result.p50_ms,
        result.p90_ms,
        result.p99_ms,
        result.p999_ms
    );
    if json {
        println!("{}", serde_json::to_string(result).expect("serialize bench result"));
    }
}
