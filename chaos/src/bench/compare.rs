//! `mortar-chaos bench compare`: Mortar and etcd side by side, on the same machine in the same run.
//!
//! Starts a 3-node Mortar cluster and a 3-node etcd cluster on loopback (each member with its own
//! data directory; both fsync as they do by default), then runs every row of the matrix against
//! Mortar and then against etcd, and prints one table with both systems' figures and their ratio,
//! and a second one with what each operation cost the servers (CPU, synced writes). Clients are
//! spread over all three members of each system. Everything it started is stopped at the end, on
//! an error and on Ctrl-C.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use mortar_node::bench::{DURATION_SECONDS_MAX, KvBenchArgs, KvBenchResult, Target};

use super::cluster::Cluster;
use super::matrix::{self, Dimension, Row};
use super::metrics::{self, Sample};
use super::systems::SystemsArgs;
use super::table::{self, Table};

/// Pause after each run.
const SETTLE: Duration = Duration::from_millis(200);
/// Most runs of one row against one system (`--repeat`).
pub const REPEAT_MAX: u64 = 9;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Matrix dimensions: clients, conflict (fraction of requests on one key shared \
    by all clients; for etcd too), reads (fraction of linearizable gets), value-size (bytes), rate \
    (open-loop requests per second; 0 = closed loop). Example:\n  \
    mortar-chaos bench compare --duration 5 --matrix clients=1,16,64,256 conflict=0,1")]
pub struct CompareArgs {
    /// Seconds each row runs against each system (after the warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=DURATION_SECONDS_MAX))]
    pub duration: u64,
    /// Seconds of load before each measurement.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=DURATION_SECONDS_MAX))]
    pub warmup: u64,
    /// The workloads: `name=v1,v2,...` words, one row per combination.
    #[arg(long, num_args = 1.., value_name = "NAME=V1,V2", default_values_t = [
        "clients=1,16,64,256".to_string(), "conflict=0,1".to_string()])]
    pub matrix: Vec<String>,
    /// Bytes per value, unless the matrix varies it.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys per client.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Fraction of linearizable gets, unless the matrix varies it.
    #[arg(long, default_value_t = 0.0)]
    pub reads: f64,
    /// Open loop at this many requests per second, unless the matrix varies it.
    #[arg(long, value_name = "OPS_PER_SEC")]
    pub rate: Option<f64>,
    /// Give up on one request after this many milliseconds (it counts as an error).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Runs of each row against each system, interleaved (mortar, etcd, mortar, etcd, ...); the
    /// tables show each system's run with the median ops/s. Use 3 or more on a busy machine.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=REPEAT_MAX))]
    pub repeat: u64,
    /// Systems (run in this order within each row), binaries and data directories.
    #[command(flatten)]
    pub systems: SystemsArgs,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// One system's run of one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemRun {
    #[serde(flatten)]
    pub result: KvBenchResult,
    /// CPU time of all members per answered request, in microseconds.
    pub server_cpu_us_per_op: f64,
    /// CPU time of the load generator (this process) per answered request, in microseconds.
    pub client_cpu_us_per_op: f64,
    /// Synced writes on all members per answered request.
    pub syncs_per_op: f64,
    /// Mean duration of one synced write, in milliseconds.
    pub sync_ms_mean: f64,
    /// Mortar: client commands per proposed instance.
    pub commands_per_instance: Option<f64>,
    /// Mortar: share of instances committed on the slow path.
    pub slow_path_fraction: Option<f64>,
    /// Ops/s of every run of this row against this system, in the order they ran (`--repeat`);
    /// this run is the median.
    pub ops_per_sec_runs: Vec<f64>,
}

impl SystemRun {
    /// Derives the per-operation costs from the counters' change over the run, which includes
    /// the warm-up: costs are divided by the requests answered in warm-up and measurement.
    pub fn new(result: KvBenchResult, server: Sample, client_cpu_seconds: f64, warmup: u64) -> SystemRun {
        let answered = (result.ops_per_sec * (result.seconds + warmup as f64)).max(1.0);
        let per = |x: f64| if x.is_finite() && x > 0.0 { x / answered } else { 0.0 };
        let mortar = result.target == Target::Mortar.name();
        SystemRun {
            server_cpu_us_per_op: per(server.cpu_seconds) * 1e6,
            client_cpu_us_per_op: per(client_cpu_seconds) * 1e6,
            syncs_per_op: per(server.syncs),
            sync_ms_mean: server.sync_ms_mean(),
            commands_per_instance: server.commands_per_instance().filter(|_| mortar),
            slow_path_fraction: server.slow_path_fraction().filter(|_| mortar),
            ops_per_sec_runs: vec![result.ops_per_sec],
            result,
        }
    }

    /// The run with the median ops/s (the higher of the two middle ones for an even count),
    /// remembering every run's ops/s.
    pub fn median(mut runs: Vec<SystemRun>) -> SystemRun {
        assert!(!runs.is_empty(), "median of no runs");
        let all: Vec<f64> = runs.iter().map(|r| r.result.ops_per_sec).collect();
        runs.sort_by(|a, b| a.result.ops_per_sec.total_cmp(&b.result.ops_per_sec));
        let mut median = runs.swap_remove(runs.len() / 2);
        median.ops_per_sec_runs = all;
        median
    }
}

/// One row of the matrix, run against every target.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowRun {
    pub clients: u64,
    pub conflict: f64,
    pub reads: f64,
    pub value_size: usize,
    pub rate: Option<f64>,
    pub runs: Vec<SystemRun>,
    /// Mortar's ops/s divided by etcd's, when both ran.
    pub ops_ratio: Option<f64>,
    #[serde(skip)]
    row: Row,
}

impl RowRun {
    pub fn new(row: Row, runs: Vec<SystemRun>) -> RowRun {
        let ops = |t: Target| runs.iter().find(|r| r.result.target == t.name()).map(|r| r.result.ops_per_sec);
        let ops_ratio = match (ops(Target::Mortar), ops(Target::Etcd)) {
            (Some(m), Some(e)) if e > 0.0 => Some(m / e),
            _ => None,
        };
        RowRun {
            clients: row.clients,
            conflict: row.conflict,
            reads: row.reads,
            value_size: row.value_size,
            rate: row.rate,
            runs,
            ops_ratio,
            row,
        }
    }
}

/// Everything `compare` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    /// `etcd <version>` from `etcd --version`, when etcd ran.
    pub etcd_version: Option<String>,
    pub duration: u64,
    pub warmup: u64,
    pub rows: Vec<RowRun>,
    /// What one client's write cannot beat on this machine, measured before the clusters start.
    pub floor: Floor,
    #[serde(skip)]
    pub dimensions: Vec<Dimension>,
    #[serde(skip)]
    pub targets: Vec<Target>,
}

/// Starts the clusters, runs the matrix, stops the clusters.
pub async fn run(args: CompareArgs) -> anyhow::Result<CompareReport> {
    let base = Row {
        clients: 1,
        conflict: 0.0,
        reads: args.reads,
        value_size: args.value_size,
        rate: args.rate.filter(|r| *r > 0.0),
    };
    let matrix = matrix::parse(&args.matrix, base).map_err(anyhow::Error::msg)?;
    let targets = args.systems.targets()?;
    for row in &matrix.rows {
        kv_args(&args, row, Target::Mortar, Vec::new()).validate()?;
    }
    let etcd_version =
        if targets.contains(&Target::Etcd) { Some(args.systems.etcd_version()?) } else { None };
    let bin = args.systems.bin()?;
    let root = args.systems.create_root("compare")?;
    let floor = Floor::measure(&root).await;
    let floor = match floor {
        Ok(floor) => floor,
        Err(e) => {
            args.systems.finish(&root);
            return Err(e);
        }
    };

    // Handlers before starting anything, so Ctrl-C during startup still stops what started.
    let mut sigint = signal(SignalKind::interrupt()).context("handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("handle SIGTERM")?;
    let mut clusters = Vec::new();
    let outcome = tokio::select! {
        outcome = measure(&args, &matrix.rows, &targets, &bin, &root, &mut clusters) => outcome,
        _ = sigint.recv() => Err(anyhow::anyhow!("interrupted; stopped every cluster member")),
        _ = sigterm.recv() => Err(anyhow::anyhow!("terminated; stopped every cluster member")),
    };
    for cluster in &mut clusters {
        cluster.stop().await;
    }
    drop(clusters);
    args.systems.finish(&root);
    Ok(CompareReport {
        etcd_version,
        duration: args.duration,
        warmup: args.warmup,
        rows: outcome?,
        floor,
        dimensions: matrix.dimensions,
        targets,
    })
}

/// Round trips timed for the floor's loopback figure.
const FLOOR_ROUND_TRIPS: usize = 200;

/// The least one client's write costs here: one loopback round trip (client to node; the node's
/// own round to its peers is as short) plus one fdatasync overwriting a written block in the data
/// directory, the cheapest durable write. Issue 21 measures a 1-client p50 against it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Floor {
    /// Median TCP round trip of 8 bytes over 127.0.0.1, in milliseconds.
    pub rtt_ms: f64,
    /// Median 4 KiB overwrite + fdatasync in the data directory, in milliseconds.
    pub fsync_ms: f64,
}

impl Floor {
    pub fn ms(&self) -> f64 {
        self.rtt_ms + self.fsync_ms
    }

    async fn measure(root: &std::path::Path) -> anyhow::Result<Floor> {
        let fsync_ms = super::wan::measure_fsync(root)?;
        let rtt_ms = loopback_round_trip_ms(FLOOR_ROUND_TRIPS).await?;
        Ok(Floor { rtt_ms, fsync_ms })
    }

    /// The line under the results: the floor and, for each 1-client row, each system's p50 as a
    /// multiple of it.
    pub fn line(&self, rows: &[RowRun]) -> String {
        let mut line = format!(
            "Floor, measured before the clusters started: one loopback round trip {:.3} ms + one \
             fdatasync overwriting a written 4 KiB block in the data directory {:.3} ms = {:.3} ms.",
            self.rtt_ms,
            self.fsync_ms,
            self.ms()
        );
        for row in rows.iter().filter(|r| r.clients == 1 && r.rate.is_none()) {
            for run in &row.runs {
                line.push_str(&format!(
                    " 1 client{}: {} p50 {:.3} ms = {:.1} × the floor.",
                    if row.conflict > 0.0 || row.reads > 0.0 {
                        format!(" ({}% conflict, {}% reads)", row.conflict * 100.0, row.reads * 100.0)
                    } else {
                        String::new()
                    },
                    run.result.target,
                    run.result.p50_ms,
                    run.result.p50_ms / self.ms().max(f64::MIN_POSITIVE)
                ));
            }
        }
        line
    }
}

/// Median round trip of 8 bytes to an echo task on 127.0.0.1, Nagle off, in milliseconds.
async fn loopback_round_trip_ms(count: usize) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind the echo socket")?;
    let address = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let mut buffer = [0u8; 8];
        while socket.read_exact(&mut buffer).await.is_ok() {
            socket.write_all(&buffer).await?;
        }
        std::io::Result::Ok(())
    });
    let mut socket = tokio::net::TcpStream::connect(address).await.context("connect to the echo socket")?;
    socket.set_nodelay(true)?;
    let mut samples = Vec::with_capacity(count);
    let mut buffer = [0u8; 8];
    for _ in 0..count {
        let started = Instant::now();
        socket.write_all(&buffer).await?;
        socket.read_exact(&mut buffer).await?;
        samples.push(started.elapsed());
    }
    drop(socket);
    echo.abort();
    Ok(super::wan::median_ms(&samples))
}

fn kv_args(args: &CompareArgs, row: &Row, target: Target, endpoints: Vec<String>) -> KvBenchArgs {
    KvBenchArgs {
        clients: row.clients,
        duration: args.duration,
        warmup: args.warmup,
        value_size: row.value_size,
        keys: args.keys,
        conflict: row.conflict,
        reads: row.reads,
        rate: row.rate,
        timeout_ms: args.timeout_ms,
        ..KvBenchArgs::new(target, endpoints)
    }
}

async fn measure(
    args: &CompareArgs,
    rows: &[Row],
    targets: &[Target],
    bin: &std::path::Path,
    root: &std::path::Path,
    clusters: &mut Vec<Cluster>,
) -> anyhow::Result<Vec<RowRun>> {
    eprintln!("starting {} clusters of 3 on loopback; data in {}", targets.len(), root.display());
    for target in targets {
        let cluster = match target {
            Target::Mortar => Cluster::spawn_mortar(bin, root),
            Target::Etcd => Cluster::spawn_etcd(&args.systems.etcd_bin, root),
        };
        clusters.push(cluster?);
    }
    for cluster in clusters.iter_mut() {
        cluster.wait_ready().await?;
    }
    let runs_total = rows.len() as u64 * targets.len() as u64 * args.repeat;
    eprintln!(
        "clusters are up; {} rows × {} systems × {} runs, about {} s",
        rows.len(),
        targets.len(),
        args.repeat,
        runs_total * (args.duration + args.warmup)
    );
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        let mut runs: Vec<Vec<SystemRun>> = vec![Vec::new(); clusters.len()];
        for _ in 0..args.repeat {
            for (i, cluster) in clusters.iter_mut().enumerate() {
                let before = cluster.sample().await?;
                let client_before = metrics::cpu_seconds(std::process::id())?;
                let result = super::target::run_kv(kv_args(args, row, cluster.target, cluster.endpoints()))
                    .await
                    .with_context(|| format!("run {} clients against {}", row.clients, cluster.target))?;
                let client_cpu = metrics::cpu_seconds(std::process::id())? - client_before;
                let server = cluster.sample().await? - before;
                println!("{}", result.line());
                runs[i].push(SystemRun::new(result, server, client_cpu, args.warmup));
                // Let the run's stragglers (timed-out requests, background flushes) settle.
                tokio::time::sleep(SETTLE).await;
            }
        }
        results.push(RowRun::new(*row, runs.into_iter().map(SystemRun::median).collect()));
    }
    Ok(results)
}

fn dimension_cell(dimension: Dimension, row: &Row) -> String {
    match dimension {
        Dimension::Conflict | Dimension::Reads => format!("{}%", (row.get(dimension) * 100.0).round()),
        Dimension::Rate if row.rate.is_none() => "closed".to_string(),
        _ => format!("{}", row.get(dimension)),
    }
}

/// The dimensions shown as columns: the matrix's, with clients always first.
fn label_dimensions(dimensions: &[Dimension]) -> Vec<Dimension> {
    let mut labels = vec![Dimension::Clients];
    labels.extend(dimensions.iter().copied().filter(|d| *d != Dimension::Clients));
    labels
}

/// How one column shows a result.
type Cell = fn(&KvBenchResult) -> String;

/// Throughput and latency: each system's figures side by side, and Mortar ÷ etcd.
pub fn results_table(report: &CompareReport) -> Table {
    let labels = label_dimensions(&report.dimensions);
    let both = report.targets.contains(&Target::Mortar) && report.targets.contains(&Target::Etcd);
    let mut header: Vec<String> = labels.iter().map(|d| d.name().to_string()).collect();
    let metrics: [(&str, Cell); 4] = [
        ("ops/s", |r| table::ops(r.ops_per_sec)),
        ("p50 ms", |r| table::ms(r.p50_ms)),
        ("p99 ms", |r| table::ms(r.p99_ms)),
        ("p99.9 ms", |r| table::ms(r.p999_ms)),
    ];
    for (name, _) in &metrics {
        for target in &report.targets {
            header.push(format!("{target} {name}"));
        }
        if both && *name == "ops/s" {
            header.push("ops/s mortar÷etcd".to_string());
        }
        if both && *name == "p99 ms" {
            header.push("p99 etcd÷mortar".to_string());
        }
    }
    let names: Vec<&str> = report.targets.iter().map(|t| t.name()).collect();
    header.push(format!("errors {}", names.join("/")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header);
    for row in &report.rows {
        let mut cells: Vec<String> = labels.iter().map(|d| dimension_cell(*d, &row.row)).collect();
        let run = |t: &Target| row.runs.iter().find(|r| r.result.target == t.name());
        for (name, cell) in &metrics {
            for target in &report.targets {
                cells.push(run(target).map_or("-".to_string(), |r| cell(&r.result)));
            }
            if both && *name == "ops/s" {
                cells.push(row.ops_ratio.map_or("-".to_string(), |x| format!("{x:.2}×")));
            }
            if both && *name == "p99 ms" {
                let p99 = |t: Target| run(&t).map_or(0.0, |r| r.result.p99_ms);
                cells.push(table::ratio(p99(Target::Etcd), p99(Target::Mortar)));
            }
        }
        let errors: Vec<String> = report
            .targets
            .iter()
            .map(|t| run(t).map_or("-".to_string(), |r| (r.result.errors + r.result.missed).to_string()))
            .collect();
        cells.push(errors.join("/"));
        table.push(cells);
    }
    table
}

/// What each answered request cost the servers and the load generator.
pub fn costs_table(report: &CompareReport) -> Table {
    let labels = label_dimensions(&report.dimensions);
    let mut header: Vec<String> = labels.iter().map(|d| d.name().to_string()).collect();
    for target in &report.targets {
        header.push(format!("{target} server CPU µs/op"));
        header.push(format!("{target} client CPU µs/op"));
        header.push(format!("{target} syncs/op"));
        header.push(format!("{target} sync ms"));
    }
    if report.targets.contains(&Target::Mortar) {
        header.push("mortar cmds/instance".to_string());
        header.push("mortar slow path".to_string());
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header);
    for row in &report.rows {
        let mut cells: Vec<String> = labels.iter().map(|d| dimension_cell(*d, &row.row)).collect();
        let run = |t: Target| row.runs.iter().find(|r| r.result.target == t.name());
        for target in &report.targets {
            match run(*target) {
                Some(r) => cells.extend([
                    format!("{:.0}", r.server_cpu_us_per_op),
                    format!("{:.0}", r.client_cpu_us_per_op),
                    format!("{:.2}", r.syncs_per_op),
                    format!("{:.2}", r.sync_ms_mean),
                ]),
                None => cells.extend(std::iter::repeat_n("-".to_string(), 4)),
            }
        }
        if report.targets.contains(&Target::Mortar) {
            let mortar = run(Target::Mortar);
            cells.push(
                mortar.and_then(|r| r.commands_per_instance).map_or("-".to_string(), |x| format!("{x:.1}")),
            );
            cells.push(
                mortar
                    .and_then(|r| r.slow_path_fraction)
                    .map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0)),
            );
        }
        table.push(cells);
    }
    table
}

/// Prints both tables with a legend, and with `json` the report as one JSON object on the last
/// line.
pub fn print(report: &CompareReport, args: &CompareArgs) {
    println!();
    let systems: Vec<String> = report
        .targets
        .iter()
        .map(|t| match (t, &report.etcd_version) {
            (Target::Etcd, Some(v)) => v.clone(),
            _ => "mortar".to_string(),
        })
        .collect();
    println!(
        "{} (3 members each, loopback, fsync on); {} s per run after {} s of warm-up{}; {}-byte values \
         unless the table says otherwise; closed loop unless a rate is given",
        systems.join(" vs "),
        report.duration,
        report.warmup,
        if args.repeat > 1 { format!(", median of {} interleaved runs", args.repeat) } else { String::new() },
        args.value_size
    );
    println!();
    println!("{}", results_table(report).markdown());
    println!();
    println!(
        "Ratios: above 1 means Mortar is better (more ops/s, lower p99). errors = failed, timed-out \
         and (open loop) missed requests."
    );
    println!();
    println!("{}", report.floor.line(&report.rows));
    println!();
    println!("{}", costs_table(report).markdown());
    println!();
    println!(
        "Per answered request, warm-up included: CPU of all 3 members and of this load generator; synced \
         writes on all 3 members (Mortar: RocksDB synced write batches; etcd: WAL fsyncs + backend commits) \
         and their mean duration."
    );
    if args.json {
        println!("{}", serde_json::to_string(report).expect("serialize compare report"));
    }
}

#[cfg(test)]
#[path = "compare_test.rs"]
mod compare_test;
