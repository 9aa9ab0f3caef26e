//! The `mortar-chaos` binary: parses the command line, starts logging, runs the command.

use std::fs::File;
use std::io::{BufReader, IsTerminal as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use mortar_chaos::bench::BenchCommand;
use mortar_chaos::nemesis::NemesisSpec;
use mortar_chaos::run::{RunConfig, Workload};
use mortar_chaos::topology::Topology;
use mortar_chaos::workload::WorkerConfig;
use mortar_chaos::{History, check, proxy, rng, workload};
use tracing_subscriber::EnvFilter;

/// mimalloc, as in `mortar`: the benchmarks' load generators ran under it there (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Environment variable holding the log filter (`info`, `debug`, `mortar_chaos=debug`, ...).
const LOG_ENV: &str = "MORTAR_LOG";
const LOG_DEFAULT: &str = "warn";

/// Exit status: the history is valid / the run passed.
const EXIT_VALID: u8 = 0;
/// Exit status: a checker found an anomaly / the run failed.
const EXIT_INVALID: u8 = 1;
/// Exit status: the history could not be read or parsed, or the run could not be carried out
/// (also clap's status for bad arguments).
const EXIT_UNREADABLE: u8 = 2;
/// Exit status: the run was interrupted (Ctrl-C, SIGTERM); everything was cleaned up.
const EXIT_INTERRUPTED: u8 = 130;

/// Jepsen-style chaos harness for Mortar.
#[derive(Parser)]
#[command(name = "mortar-chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a recorded history (JSON lines) with every checker that applies to its operations.
    ///
    /// Prints `valid` or `invalid`, then each checker's verdict and the events that show each
    /// anomaly. Exit status: 0 valid, 1 invalid, 2 unreadable history.
    Check {
        /// The history file, one event per line.
        history: PathBuf,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a cluster in network namespaces under a workload and faults, then check the history.
    ///
    /// Needs root, `ip` and `nft`. Prints the seed first, a progress line every second and a
    /// summary; writes a run directory (history.jsonl, nemesis.jsonl, logs/, summary.json,
    /// report.txt, plot.svg). Exit status: 0 passed (every checker valid, the cluster recovered
    /// after the heal, no node crashed), 1 failed, 2 the run could not be carried out,
    /// 130 interrupted.
    Run(RunArgs),
    /// Benchmarks that build whole clusters (Mortar next to etcd on loopback or across emulated
    /// regions; the actor runtime), and load on a running Mortar or etcd cluster.
    ///
    /// Each prints its tables, and with --json one JSON object on the last line. Exit status: 0
    /// done, 2 the benchmark could not be carried out (the message says why).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// (internal) The client workload, run by `run` inside the client namespace.
    #[command(hide = true)]
    ClientWorker(WorkerArgs),
    /// (internal) A delay proxy, run by `run` inside a node namespace. Reads `delay <ms>` lines
    /// on standard input and stops when it closes.
    #[command(hide = true)]
    Proxy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Cluster size: 3, 5 or 7.
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    #[arg(long, value_enum, default_value_t = Workload::Register)]
    workload: Workload,
    /// Comma-separated nemeses: partition, kill, pause, loss, latency, restart (every node
    /// SIGKILLed at once, restarted when the window ends); or `mixed` (all, sometimes two at
    /// once, never restart with another); or `none`.
    #[arg(long, default_value = "partition,kill,pause")]
    nemesis: NemesisSpec,
    /// Seconds of workload under faults, before the healing phase.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    time_limit: u64,
    /// Decides the nemesis schedule and the workload's choices. Default: a fresh one, printed.
    #[arg(long)]
    seed: Option<u64>,
    /// The `mortar` binary [default: `mortar` beside this program].
    #[arg(long, env = "MORTAR_BIN")]
    mortar_bin: Option<PathBuf>,
    /// The run directory [default: <tmp>/mortar-chaos/<time>-seed-<seed>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Client tasks.
    #[arg(long, default_value_t = 10)]
    concurrency: u32,
    /// Keys: registers (`register`), counters (`counter`), or actors open at a time: chat rooms
    /// (`set`; a room retires after 900 messages and a fresh one takes its place), workers
    /// (`queue`; after 20000 jobs) or reminders (`alarms`; after 10000 alarms).
    #[arg(long, default_value_t = 5)]
    keys: u32,
    /// Client timeout of one operation, in ms; a timeout is recorded as `info`.
    #[arg(long, default_value_t = 1500)]
    op_timeout_ms: u64,
    /// Pause between two operations of one client task, in ms.
    #[arg(long, default_value_t = 10)]
    think_ms: u64,
    /// Operations in all, at most.
    #[arg(long, default_value_t = 2_000_000)]
    ops_max: u64,
    /// The nodes' `--request-timeout-ms`.
    #[arg(long, default_value_t = 1000)]
    request_timeout_ms: u64,
    /// Seconds the cluster gets, after the heal, to serve through every node.
    #[arg(long, default_value_t = 30)]
    recovery_timeout: u64,
    /// Largest one-way delay the latency nemesis adds, in ms.
    #[arg(long, default_value_t = 200)]
    latency_ms_max: u64,
    /// Largest packet loss the loss nemesis causes, in percent (5-99).
    #[arg(long, default_value_t = 30)]
    loss_percent_max: u32,
    /// Keep the nodes' data directories even when the run passes (they are always kept when it
    /// fails).
    #[arg(long)]
    keep_data: bool,
    /// `MORTAR_LOG` of the nodes.
    #[arg(long, default_value = "info")]
    node_log: String,
}

#[derive(Args)]
struct WorkerArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    /// `1=ip:port,2=ip:port,...`
    #[arg(long)]
    nodes: String,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    concurrency: u32,
    #[arg(long)]
    keys: u32,
    #[arg(long)]
    origin_ns: u64,
    #[arg(long)]
    duration_max_s: u64,
    #[arg(long)]
    op_timeout_ms: u64,
    #[arg(long)]
    think_ms: u64,
    #[arg(long)]
    ops_max: u64,
    #[arg(long)]
    warmup_timeout_s: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Check { history, json } => ExitCode::from(run_check(&history, json)),
        Command::Run(args) => ExitCode::from(run_run(args)),
        Command::Bench { command } => {
            exit_on_error(bench_runtime().and_then(|rt| rt.block_on(mortar_chaos::bench::run(command))))
        }
        Command::ClientWorker(args) => exit_on_error(run_worker(args)),
        Command::Proxy { listen, target, delay_ms } => {
            exit_on_error(runtime(1).and_then(|rt| {
                rt.block_on(proxy::run_command(listen, target, Duration::from_millis(delay_ms)))
            }))
        }
    }
}

fn exit_on_error(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_UNREADABLE)
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The benchmarks' runtime: a worker per core, as `mortar` gave them before they moved here, so
/// that the load generator's figures stay comparable.
fn bench_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")
}

fn run_check(path: &PathBuf, json: bool) -> u8 {
    let history = match read_history(path) {
        Ok(history) => history,
        Err(e) => {
            eprintln!("error: {}: {e:#}", path.display());
            return EXIT_UNREADABLE;
        }
    };
    let report = check::check(&history);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report always serializes"));
    } else {
        print!("{report}");
    }
    if report.valid { EXIT_VALID } else { EXIT_INVALID }
}

fn read_history(path: &PathBuf) -> anyhow::Result<History> {
    let file = File::open(path).context("open history")?;
    Ok(History::from_jsonl(BufReader::new(file))?)
}

fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let mut nodes = Vec::new();
    for item in args.nodes.split(',') {
        let (id, address) =
            item.split_once('=').with_context(|| format!("--nodes item {item:?} is not id=ip:port"))?;
        nodes.push((
            id.parse().with_context(|| format!("--nodes id {id:?}"))?,
            address.parse().with_context(|| format!("--nodes address {address:?}"))?,
        ));
    }
    let config = WorkerConfig {
        workload: args.workload,
        seed: args.seed,
        nodes,
        concurrency: args.concurrency,
        keys: args.keys,
        origin_ns: args.origin_ns,
        duration_max: Duration::from_secs(args.duration_max_s),
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        think: Duration::from_millis(args.think_ms),
        ops_max: args.ops_max,
        warmup_timeout: Duration::from_secs(args.warmup_timeout_s),
    };
    runtime(2)?.block_on(workload::run(config))
}

/// Finds the `mortar` binary: the flag or `MORTAR_BIN`, else beside this program.
fn find_mortar(flag: Option<PathBuf>, self_bin: &Path) -> anyhow::Result<PathBuf> {
    let candidate = match flag {
        Some(path) => path,
        None => self_bin.with_file_name("mortar"),
    };
    if !candidate.is_file() {
        anyhow::bail!(
            "the mortar binary {} does not exist: build it (cargo build --release -p mortar-node) or pass \
             --mortar-bin PATH",
            candidate.display()
        );
    }
    candidate.canonicalize().with_context(|| format!("resolve {}", candidate.display()))
}

fn run_run(args: RunArgs) -> u8 {
    let seed = args.seed.unwrap_or_else(rng::fresh_seed);
    // The seed first, so that it is on screen whatever happens next.
    println!("seed {seed}");
    match prepare_run(args, seed) {
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_UNREADABLE
        }
        Ok(config) => {
            let outcome = runtime(2).and_then(|rt| {
                rt.block_on(async {
                    let (interrupt_tx, interrupt_rx) = tokio::sync::watch::channel(false);
                    tokio::spawn(async move {
                        wait_for_signal().await;
                        let _ = interrupt_tx.send(true);
                    });
                    mortar_chaos::run::run(&config, interrupt_rx).await
                })
            });
            match outcome {
                Err(e) => {
                    eprintln!("error: {e:#}");
                    eprintln!("the run directory {} holds the logs", config.run_dir.display());
                    EXIT_UNREADABLE
                }
                Ok(outcome) => {
                    print!("{}", outcome.summary);
                    if outcome.summary.interrupted {
                        EXIT_INTERRUPTED
                    } else if outcome.summary.passed {
                        EXIT_VALID
                    } else {
                        EXIT_INVALID
                    }
                }
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hangup.recv() => {}
    }
}

fn prepare_run(args: RunArgs, seed: u64) -> anyhow::Result<RunConfig> {
    let topology = Topology::new(args.nodes).map_err(anyhow::Error::msg)?;
    let self_bin = std::env::current_exe().context("find this program's path")?;
    let mortar_bin = find_mortar(args.mortar_bin, &self_bin)?;
    anyhow::ensure!(
        (1..=workload::CONCURRENCY_MAX).contains(&args.concurrency),
        "--concurrency {} is out of range: give 1 to {}",
        args.concurrency,
        workload::CONCURRENCY_MAX
    );
    anyhow::ensure!(
        (1..=workload::KEYS_MAX).contains(&args.keys),
        "--keys {} is out of range: give 1 to {}",
        args.keys,
        workload::KEYS_MAX
    );
    anyhow::ensure!(
        (100..=60_000).contains(&args.op_timeout_ms),
        "--op-timeout-ms {} is out of range: give 100 to 60000",
        args.op_timeout_ms
    );
    anyhow::ensure!(args.think_ms <= 10_000, "--think-ms {} is more than 10000", args.think_ms);
    anyhow::ensure!(
        (1..=3600).contains(&args.recovery_timeout),
        "--recovery-timeout must be 1 to 3600 seconds"
    );
    let run_dir = match args.out {
        Some(dir) => dir,
        None => {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            std::env::temp_dir().join("mortar-chaos").join(format!("{unix}-seed-{seed}"))
        }
    };
    if run_dir.join("history.jsonl").exists() {
        anyhow::bail!(
            "{} already holds a run (history.jsonl): give another --out directory",
            run_dir.display()
        );
    }
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("create the run directory {}", run_dir.display()))?;
    let run_dir = run_dir.canonicalize().with_context(|| format!("resolve {}", run_dir.display()))?;
    let replay = format!(
        "mortar-chaos run --nodes {} --workload {} --nemesis {} --time-limit {} --seed {seed} \
         --concurrency {} --keys {} --think-ms {} --op-timeout-ms {} --request-timeout-ms {} --latency-ms-max {} \
         --loss-percent-max {}",
        args.nodes,
        args.workload,
        args.nemesis,
        args.time_limit,
        args.concurrency,
        args.keys,
        args.think_ms,
        args.op_timeout_ms,
        args.request_timeout_ms,
        args.latency_ms_max,
        args.loss_percent_max
    );
    let config = RunConfig {
        topology,
        workload: args.workload,
        nemesis: args.nemesis,
        time_limit: Duration::from_secs(args.time_limit),
        seed,
        mortar_bin,
        self_bin,
        run_dir,
        concurrency: args.concurrency,
        keys: args.keys,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        think: Duration::from_millis(args.think_ms),
        ops_max: args.ops_max,
        request_timeout_ms: args.request_timeout_ms,
        recovery_timeout: Duration::from_secs(args.recovery_timeout),
        latency_ms_max: args.latency_ms_max,
        loss_percent_max: args.loss_percent_max,
        keep_data: args.keep_data,
        node_log_filter: args.node_log,
        replay,
    };
    config.schedule_config().validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn init_tracing() {
    let (filter, bad_filter) = match std::env::var(LOG_ENV) {
        Err(_) => (EnvFilter::new(LOG_DEFAULT), None),
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(LOG_DEFAULT), Some((text, e))),
        },
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    if let Some((text, e)) = bad_filter {
        tracing::warn!(filter = %text, error = %e, "ignoring invalid {LOG_ENV}; logging at {LOG_DEFAULT}");
    }
}
