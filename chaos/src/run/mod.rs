//! `mortar-chaos run`: a real cluster in network namespaces, a workload, a nemesis schedule, a
//! healing phase, then the checkers.
//!
//! The steps, in order:
//!
//! 1. Remove leftovers of earlier runs ([`lab::clean_stale`]), build the test network
//!    ([`lab::Lab`]), start a delay proxy and a `mortar node` in every node namespace and the
//!    client worker in the client namespace ([`procs::Procs`]).
//! 2. Warm-up: the worker reads once through every node; the workload starts when all answer.
//! 3. Fault phase (`--time-limit`): the workload runs while the schedule's faults start and end.
//! 4. Heal: every fault is removed (rules flushed, paused nodes continued, killed or crashed nodes
//!    restarted, delay 0). The cluster must then serve an `ok` operation through every node
//!    within `--recovery-timeout`; a few more seconds of workload follow.
//! 5. Stop the worker, the nodes and the proxies; remove the network; check the history; write
//!    the summary and the plot.
//!
//! An error, a panic, Ctrl-C or SIGTERM at any point still ends every process and removes the
//! network.

pub mod lab;
pub mod netns;
pub mod procs;
mod report;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::check;
use crate::clock;
use crate::history::{Event, EventType, History, HistoryWriter};
use crate::nemesis::{Fault, MembershipOp, NemesisSpec, node_ruleset};
use crate::schedule::{Schedule, ScheduleConfig};
use crate::stats::OpLog;
use crate::topology::{NodeId, Topology};
use crate::workload::{
    ALARMS_FINAL_TIME_MAX, FINAL_READS_TIME_MAX, GARBAGE_ERROR_PREFIX, QUEUE_DRAIN_TIME_MAX, WorkerMessage,
};

pub use report::Summary;

/// How often the runner wakes to check on things; progress is printed every [`PROGRESS_EVERY`].
const TICK: Duration = Duration::from_millis(250);
const PROGRESS_EVERY: u32 = 4;
/// How long every node may take to answer a first read.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Workload kept running after the cluster recovered.
const TAIL: Duration = Duration::from_secs(3);
/// Fault windows printed at the start.
const SCHEDULE_PRINTED_MAX: usize = 30;
/// Extra time the worker gets to finish its operations in flight after being told to stop.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long a slot whose join was refused waits before it asks again.
const JOIN_RETRY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Reads, writes and compare-and-sets on a few integer registers: checked for
    /// linearizability.
    Register,
    /// Increments and reads of a few `counter` actors, then a final read of each: every read
    /// must lie between the acknowledged and the attempted increments.
    Counter,
    /// Unique messages sent to `chatRoom` actors, a few reads, then a final read of every room:
    /// every acknowledged message must be in it, no message that was never sent.
    Set,
    /// Unique jobs sent to the durable queues of `worker` actors, then, once the queues drained,
    /// a read of the jobs each handled: every acknowledged job handled, each at most once, none
    /// that was never sent.
    Queue,
    /// Alarms asked of `reminder` actors, then, once they are all due, a read of the alarms each
    /// fired: every acknowledged alarm fired exactly once, none before it was due.
    Alarms,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Counter => "counter",
            Workload::Set => "set",
            Workload::Queue => "queue",
            Workload::Alarms => "alarms",
        }
    }

    /// How long the worker may take, after it is told to stop, to read every key once more (and
    /// wait for what must happen first: queues to drain, alarms to be due).
    pub fn final_phase_time_max(self) -> Duration {
        match self {
            Workload::Register => Duration::ZERO,
            Workload::Counter | Workload::Set => FINAL_READS_TIME_MAX,
            Workload::Queue => QUEUE_DRAIN_TIME_MAX,
            Workload::Alarms => ALARMS_FINAL_TIME_MAX,
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub topology: Topology,
    pub workload: Workload,
    pub nemesis: NemesisSpec,
    pub time_limit: Duration,
    pub seed: u64,
    pub mortar_bin: PathBuf,
    /// This program, re-executed inside the namespaces as `proxy` and `client-worker`.
    pub self_bin: PathBuf,
    pub run_dir: PathBuf,
    pub concurrency: u32,
    pub keys: u32,
    pub op_timeout: Duration,
    pub think: Duration,
    pub ops_max: u64,
    pub request_timeout_ms: u64,
    pub recovery_timeout: Duration,
    pub latency_ms_max: u64,
    pub loss_percent_max: u32,
    pub keep_data: bool,
    pub node_log_filter: String,
    /// The command line that replays this run, for the summary.
    pub replay: String,
}

impl RunConfig {
    pub fn schedule_config(&self) -> ScheduleConfig {
        ScheduleConfig {
            seed: self.seed,
            topology: self.topology,
            nemesis: self.nemesis.clone(),
            time_limit: self.time_limit,
            latency_ms_max: self.latency_ms_max,
            loss_percent_max: self.loss_percent_max,
        }
    }
}

/// What the run concluded.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Warmup { deadline: Instant },
    Faults,
    Healing { heal_ns: u64, deadline: Instant },
    Tail { until: Instant },
    Draining { until: Instant },
    Done,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Warmup { .. } => "warmup",
            Phase::Faults => "faults",
            Phase::Healing { .. } => "healing",
            Phase::Tail { .. } => "tail",
            Phase::Draining { .. } | Phase::Done => "stopping",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    // Order at equal times: ends, then the heal, then starts.
    End(usize),
    Heal,
    Start(usize),
}

/// Everything the main loop mutates.
struct Runner<'a> {
    config: &'a RunConfig,
    origin_ns: u64,
    schedule: Schedule,
    // Dropped in this order on an error: the processes, then the network they live in.
    procs: procs::Procs,
    /// `None` once torn down.
    lab: Option<lab::Lab>,
    timeline: timeline::Timeline,
    history: HistoryWriter<BufWriter<File>>,
    /// `completions.jsonl`: every completion with the node that served it, its latency and error.
    completions: BufWriter<File>,
    ops: OpLog,
    phase: Phase,
    /// Sorted (time since the fault phase started in ms, action); `next_action` indexes it.
    actions: Vec<(u64, Action)>,
    next_action: usize,
    faults_started: Option<Instant>,
    /// Rule faults (partition, loss) active now, and the script each node holds.
    rule_faults: BTreeMap<(usize, usize), Fault>,
    node_scripts: BTreeMap<NodeId, String>,
    /// Whole-cluster restarts not yet in the history, by time: see `write_restart_markers`.
    pending_restart_markers: Vec<u64>,
    heal_ns: Option<u64>,
    first_ok_after_heal: BTreeMap<NodeId, Option<u64>>,
    worker_done: bool,
    crashes: Vec<String>,
    crashes_nodes: Vec<NodeId>,
    /// Membership faults whose node was removed, by fault: it joins again when the fault ends.
    removed: BTreeMap<(usize, usize), NodeId>,
    /// Membership faults whose node lost its disk, by fault: replaced when the fault ends.
    replaced: BTreeMap<(usize, usize), NodeId>,
    /// Membership faults whose node is drained, by fault: undrained when the fault ends.
    drained: BTreeMap<(usize, usize), NodeId>,
    /// Slots whose join was refused, with when to start them again.
    join_retries: BTreeMap<NodeId, Instant>,
    /// Removed nodes, whose exit is expected rather than a crash.
    exits_expected: BTreeSet<NodeId>,
    reasons: Vec<String>,
    garbage_reads: u64,
    bad_lines: u64,
    // Progress since the last line.
    window_ok: u64,
    window_fail: u64,
    window_info: u64,
    ticks: u32,
}

/// Runs one test. Errors are harness failures (the network could not be built, a node binary is
/// missing...); what the cluster did is in the summary.
pub async fn run(config: &RunConfig, mut interrupt: watch::Receiver<bool>) -> anyhow::Result<RunOutcome> {
    let origin_ns = clock::monotonic_ns();
    let run_dir = &config.run_dir;
    std::fs::create_dir_all(run_dir.join("logs")).with_context(|| format!("create {}", run_dir.display()))?;
    std::fs::create_dir_all(run_dir.join("data"))?;
    std::fs::write(run_dir.join("command.txt"), format!("{}\n", config.replay))?;
    let schedule = Schedule::generate(&config.schedule_config());
    std::fs::write(
        run_dir.join("schedule.json"),
        serde_json::to_string_pretty(&schedule).expect("a schedule serializes") + "\n",
    )?;

    lab::preflight()?;
    let lock = lab::lock()?;
    for removed in lab::clean_stale().context("remove leftovers of an earlier run")? {
        println!("removed leftover {removed}");
    }
    let topology = config.topology;
    let lab = lab::Lab::create(topology).context("build the test network")?;
    let paths = procs::Paths { run_dir: run_dir.clone() };
    let launch = procs::NodeLaunch {
        mortar_bin: procs::pin_binary(&config.mortar_bin, run_dir),
        request_timeout_ms: config.request_timeout_ms,
        log_filter: config.node_log_filter.clone(),
    };
    let mut procs = procs::Procs::new(topology, paths, launch, config.self_bin.clone());
    for node in topology.ids() {
        procs.start_proxy(node)?;
    }
    for node in topology.ids() {
        procs.start_node(node, "initial start")?;
    }
    let stdout = procs.start_worker(&worker_args(config, origin_ns))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();

    let mut actions: Vec<(u64, Action)> = Vec::new();
    for (i, w) in schedule.windows.iter().enumerate() {
        actions.push((w.start_ms, Action::Start(i)));
        actions.push((w.end_ms, Action::End(i)));
    }
    actions.push((config.time_limit.as_millis() as u64, Action::Heal));
    actions.sort();

    let history_file = File::create(run_dir.join("history.jsonl")).context("create history.jsonl")?;
    let mut runner = Runner {
        config,
        origin_ns,
        schedule,
        procs,
        lab: Some(lab),
        timeline: timeline::Timeline::create(&run_dir.join("nemesis.jsonl"))?,
        history: HistoryWriter::new(BufWriter::new(history_file)),
        completions: BufWriter::new(
            File::create(run_dir.join("completions.jsonl")).context("create completions.jsonl")?,
        ),
        ops: OpLog::default(),
        phase: Phase::Warmup { deadline: Instant::now() + WARMUP_TIMEOUT + DRAIN_GRACE },
        actions,
        next_action: 0,
        faults_started: None,
        rule_faults: BTreeMap::new(),
        node_scripts: BTreeMap::new(),
        pending_restart_markers: Vec::new(),
        heal_ns: None,
        first_ok_after_heal: topology.ids().map(|n| (n, None)).collect(),
        worker_done: false,
        crashes: Vec::new(),
        crashes_nodes: Vec::new(),
        removed: BTreeMap::new(),
        replaced: BTreeMap::new(),
        drained: BTreeMap::new(),
        join_retries: BTreeMap::new(),
        exits_expected: BTreeSet::new(),
        reasons: Vec::new(),
        garbage_reads: 0,
        bad_lines: 0,
        window_ok: 0,
        window_fail: 0,
        window_info: 0,
        ticks: 0,
    };
    println!("run directory {}", run_dir.display());
    println!("schedule, in seconds after the workload starts (all of it in schedule.json):");
    for w in runner.schedule.windows.iter().take(SCHEDULE_PRINTED_MAX) {
        let faults: Vec<String> = w.faults.iter().map(Fault::to_string).collect();
        println!(
            "  {:>7.1} - {:>7.1}  {}",
            w.start_ms as f64 / 1e3,
            w.end_ms as f64 / 1e3,
            faults.join(" + ")
        );
    }
    if runner.schedule.windows.len() > SCHEDULE_PRINTED_MAX {
        println!("  ... {} more windows", runner.schedule.windows.len() - SCHEDULE_PRINTED_MAX);
    }
    println!("waiting for every node to answer (up to {} s)", WARMUP_TIMEOUT.as_secs());

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupted = false;
    let mut interrupt_open = true;
    while runner.phase != Phase::Done {
        let next_at = runner.next_action_at();
        enum Wake {
            Interrupt(bool),
            Line(std::io::Result<Option<String>>),
            Action,
            Tick,
        }
        let wake = tokio::select! {
            biased;
            changed = interrupt.changed(), if interrupt_open => Wake::Interrupt(changed.is_ok()),
            // Timers before the worker's lines, so that a busy worker never delays a fault.
            _ = sleep_until(next_at) => Wake::Action,
            _ = tick.tick() => Wake::Tick,
            line = lines.next_line(), if !runner.worker_done => Wake::Line(line),
        };
        match wake {
            Wake::Interrupt(true) => {
                interrupted = true;
                println!("interrupted: stopping the run and cleaning up");
                break;
            }
            Wake::Interrupt(false) => interrupt_open = false,
            Wake::Line(Ok(Some(line))) => runner.on_line(&line)?,
            Wake::Line(Ok(None)) | Wake::Line(Err(_)) => runner.on_worker_gone()?,
            Wake::Action => runner.on_action().await?,
            Wake::Tick => runner.on_tick().await?,
        }
    }

    // Stop everything in order, then remove the network.
    let end_ns = runner.now();
    runner.timeline.end_all(end_ns)?;
    runner.write_restart_markers(u64::MAX)?;
    runner.history.flush().context("write history.jsonl")?;
    runner.completions.flush().context("write completions.jsonl")?;
    runner.procs.stop_all().await;
    let cleanup_errors = runner.lab.take().map(|mut lab| lab.teardown()).unwrap_or_default();
    drop(lock);
    for e in &cleanup_errors {
        eprintln!("cleanup: {e}");
    }

    let history = {
        let file = File::open(run_dir.join("history.jsonl")).context("open history.jsonl")?;
        History::from_jsonl(BufReader::new(file))
    };
    let report = match &history {
        Ok(history) => Some(check::check(history)),
        Err(e) => {
            runner.reasons.push(format!("the recorded history is malformed (a harness bug): {e}"));
            None
        }
    };
    if let Some(report) = &report {
        std::fs::write(run_dir.join("report.txt"), report.to_string())?;
        std::fs::write(
            run_dir.join("check.json"),
            serde_json::to_string_pretty(report).expect("a report serializes") + "\n",
        )?;
    }
    if !cleanup_errors.is_empty() {
        runner.reasons.push(format!("cleanup failed: {}", cleanup_errors.join("; ")));
    }
    let summary = report::build(&runner, report.as_ref(), end_ns, interrupted);
    report::write_files(&summary, &runner, end_ns)?;
    if summary.passed && !config.keep_data {
        let _ = std::fs::remove_dir_all(run_dir.join("data"));
        let _ = std::fs::remove_dir_all(run_dir.join("bin"));
    }
    Ok(RunOutcome { summary })
}

/// Lines of a log shown in an error.
const LOG_TAIL_LINES: usize = 10;
/// What a node logs, every few seconds, about epoxy instances that stay blocked or uncommitted.
const STUCK_INSTANCES_LOG: &str = "epoxy: instances waiting";
/// Characters of a log line shown in the output.
const LOG_LINE_SHOWN_MAX: usize = 600;

/// The last line of a log file that contains `needle`, cut to `LOG_LINE_SHOWN_MAX` characters.
fn last_line_containing(path: &std::path::Path, needle: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().rev().find(|l| l.contains(needle))?;
    let mut shown: String = line.chars().take(LOG_LINE_SHOWN_MAX).collect();
    if shown.len() < line.len() {
        shown.push_str(" …");
    }
    Some(shown)
}

/// The last lines of a log file, indented, for an error message.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn worker_args(config: &RunConfig, origin_ns: u64) -> Vec<String> {
    let topology = config.topology;
    let nodes: Vec<String> = topology.ids().map(|n| format!("{n}={}", topology.grpc(n))).collect();
    let duration_max = WARMUP_TIMEOUT + config.time_limit + config.recovery_timeout + TAIL + DRAIN_GRACE * 4;
    vec![
        "--workload".into(),
        config.workload.name().into(),
        "--nodes".into(),
        nodes.join(","),
        "--seed".into(),
        config.seed.to_string(),
        "--concurrency".into(),
        config.concurrency.to_string(),
        "--keys".into(),
        config.keys.to_string(),
        "--origin-ns".into(),
        origin_ns.to_string(),
        "--duration-max-s".into(),
        duration_max.as_secs().to_string(),
        "--op-timeout-ms".into(),
        config.op_timeout.as_millis().to_string(),
        "--think-ms".into(),
        config.think.as_millis().to_string(),
        "--ops-max".into(),
        config.ops_max.to_string(),
        "--warmup-timeout-s".into(),
        WARMUP_TIMEOUT.as_secs().to_string(),
    ]
}

impl Runner<'_> {
    fn now(&self) -> u64 {
        clock::since(self.origin_ns)
    }

    fn next_action_at(&self) -> Option<Instant> {
        if self.phase != Phase::Faults {
            return None;
        }
        let started = self.faults_started?;
        self.actions.get(self.next_action).map(|&(ms, _)| started + Duration::from_millis(ms))
    }

    fn on_line(&mut self, line: &str) -> anyhow::Result<()> {
        let message: WorkerMessage = match serde_json::from_str(line) {
            Ok(message) => message,
            Err(e) => {
                self.bad_lines += 1;
                tracing::warn!(error = %e, line, "unreadable line from the client worker");
                return Ok(());
            }
        };
        match message {
            WorkerMessage::Ready { time } => {
                if matches!(self.phase, Phase::Warmup { .. }) {
                    println!(
                        "cluster ready after {:.1} s; workload and nemesis start ({} fault windows in {} s)",
                        time as f64 / 1e9,
                        self.schedule.windows.len(),
                        self.config.time_limit.as_secs()
                    );
                    self.phase = Phase::Faults;
                    self.faults_started = Some(Instant::now());
                    self.timeline.write(self.now(), "workload", "start", serde_json::json!({}))?;
                }
            }
            WorkerMessage::NotReady { reason, .. } => {
                bail!(
                    "the cluster did not become ready: {reason}; see the node logs in {}",
                    self.config.run_dir.join("logs").display()
                );
            }
            WorkerMessage::Op { node, event, error } => {
                self.write_restart_markers(event.time)?;
                self.history.write(&event).context("write history.jsonl")?;
                match event.kind {
                    EventType::Invoke => self.ops.invoke(event.process, event.f, node, event.time),
                    kind => {
                        match kind {
                            EventType::Ok => self.window_ok += 1,
                            EventType::Fail => self.window_fail += 1,
                            _ => self.window_info += 1,
                        }
                        let latency_ms = self
                            .ops
                            .invoke_time(event.process)
                            .map(|invoked| event.time.saturating_sub(invoked) as f64 / 1e6);
                        let mut line = serde_json::json!({
                            "time": event.time, "process": event.process, "node": node, "f": event.f,
                            "key": event.key, "type": event.kind, "latency_ms": latency_ms,
                        });
                        if let Some(error) = &error {
                            line["error"] = error.as_str().into();
                        }
                        writeln!(self.completions, "{line}").context("write completions.jsonl")?;
                        if error.as_deref().is_some_and(|e| e.starts_with(GARBAGE_ERROR_PREFIX)) {
                            self.garbage_reads += 1;
                            tracing::error!(node, error = error.as_deref().unwrap_or(""), "read garbage");
                        }
                        let heal_ns = self.heal_ns;
                        if let Some(op) = self.ops.complete(event.process, kind, event.time, error)
                            && kind == EventType::Ok
                            && let Some(heal) = heal_ns
                            && op.invoke_ns >= heal
                            && let Some(slot) = self.first_ok_after_heal.get_mut(&op.node)
                            && slot.is_none()
                        {
                            *slot = Some(event.time);
                        }
                    }
                }
            }
            WorkerMessage::Done { reason, .. } => {
                self.worker_done = true;
                if !matches!(self.phase, Phase::Draining { .. }) {
                    self.reasons.push(format!("the workload ended early: {reason}"));
                }
                self.phase = Phase::Done;
            }
        }
        Ok(())
    }

    fn on_worker_gone(&mut self) -> anyhow::Result<()> {
        self.worker_done = true;
        if !matches!(self.phase, Phase::Draining { .. }) {
            self.reasons.push(format!(
                "the client worker exited unexpectedly; see {}",
                self.config.run_dir.join("logs/client.log").display()
            ));
        }
        self.phase = Phase::Done;
        Ok(())
    }

    async fn on_action(&mut self) -> anyhow::Result<()> {
        let Some(&(_, action)) = self.actions.get(self.next_action) else { return Ok(()) };
        self.next_action += 1;
        match action {
            Action::Start(w) => {
                let faults = self.schedule.windows[w].faults.clone();
                for (i, fault) in faults.iter().enumerate() {
                    self.start_fault((w, i), fault).await?;
                    self.timeline.start(self.now(), (w, i), fault)?;
                }
            }
            Action::End(w) => {
                let faults = self.schedule.windows[w].faults.clone();
                for (i, fault) in faults.iter().enumerate() {
                    self.end_fault((w, i), fault).await?;
                    self.timeline.end(self.now(), (w, i))?;
                }
            }
            Action::Heal => self.heal().await?,
        }
        Ok(())
    }

    async fn start_fault(&mut self, id: (usize, usize), fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Partition(_) | Fault::Loss { .. } => {
                self.rule_faults.insert(id, fault.clone());
                self.apply_rules()?;
            }
            Fault::Kill { nodes } => {
                for &node in nodes {
                    self.procs.kill_node(node).await?;
                }
            }
            Fault::Pause { nodes } => {
                for &node in nodes {
                    self.procs.pause_node(node)?;
                }
            }
            Fault::Latency { delay_ms } => self.procs.set_delay(*delay_ms).await?,
            Fault::Membership { node, op: MembershipOp::Remove } => self.remove_member(id, *node).await?,
            Fault::Membership { node, op: MembershipOp::Replace } => self.lose_disk(id, *node).await?,
            Fault::Membership { node, op: MembershipOp::Drain } => self.drain(id, *node).await?,
            Fault::Restart => {
                // A restart window has no other fault, so every node runs (or crashed on its own,
                // and stays down until the heal).
                for node in self.config.topology.ids() {
                    if matches!(
                        self.procs.state(node),
                        Some(procs::NodeState::Running | procs::NodeState::Paused)
                    ) {
                        self.procs.kill_node(node).await?;
                    }
                }
                // Every node is dead now: what was acknowledged before this must be there after.
                self.pending_restart_markers.push(self.now());
            }
        }
        Ok(())
    }

    async fn end_fault(&mut self, id: (usize, usize), fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Partition(_) | Fault::Loss { .. } => {
                self.rule_faults.remove(&id);
                self.apply_rules()?;
            }
            Fault::Kill { nodes } => {
                for &node in nodes {
                    if self.procs.state(node) == Some(procs::NodeState::Killed) {
                        let note =
                            format!("restart after kill, {:.1} s into the run", self.now() as f64 / 1e9);
                        self.procs.start_node(node, &note)?;
                    }
                }
            }
            Fault::Pause { nodes } => {
                for &node in nodes {
                    self.procs.resume_node(node)?;
                }
            }
            Fault::Latency { .. } => self.procs.set_delay(0).await?,
            Fault::Membership { op: MembershipOp::Remove, .. } => self.join_again(id).await?,
            Fault::Membership { op: MembershipOp::Replace, .. } => self.replace_again(id)?,
            Fault::Membership { op: MembershipOp::Drain, .. } => self.undrain(id).await?,
            Fault::Restart => {
                let note = format!("restart of every node, {:.1} s into the run", self.now() as f64 / 1e9);
                for node in self.config.topology.ids() {
                    if self.procs.state(node) == Some(procs::NodeState::Killed) {
                        self.procs.start_node(node, &note)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A running slot other than `node`, to send an admin command through.
    fn other_running(&self, node: NodeId) -> Option<NodeId> {
        self.config
            .topology
            .ids()
            .find(|&n| n != node && self.procs.state(n) == Some(procs::NodeState::Running))
    }

    /// A running slot other than `node` to send an admin command about `node` through, when
    /// `node` runs too; otherwise why not.
    fn running_and_via(&self, node: NodeId) -> Result<NodeId, String> {
        if self.procs.state(node) != Some(procs::NodeState::Running) {
            return Err("it is not running".to_string());
        }
        self.other_running(node).ok_or_else(|| "no other node is running".to_string())
    }

    /// The membership nemesis' start: removes slot `node`'s node through another node. A refusal
    /// (another fault may leave no safe switch) is recorded; the slot then stays as it is.
    async fn remove_member(&mut self, id: (usize, usize), node: NodeId) -> anyhow::Result<()> {
        let result = match self.running_and_via(node) {
            Ok(via) => self.procs.remove_member(node, via).await?,
            Err(reason) => Err(reason),
        };
        match result {
            Ok(output) => {
                let last = output.lines().last().unwrap_or_default().to_string();
                println!("membership: removed n{node}: {last}");
                self.timeline.write(
                    self.now(),
                    "membership",
                    "removed",
                    serde_json::json!({"node": node, "text": last}),
                )?;
                self.removed.insert(id, node);
                self.exits_expected.insert(node);
            }
            Err(reason) => {
                println!("membership: n{node} not removed: {reason}");
                self.timeline.write(
                    self.now(),
                    "membership",
                    "refused",
                    serde_json::json!({"node": node, "reason": reason}),
                )?;
            }
        }
        Ok(())
    }

    /// The membership nemesis' end: the removed node's slot joins again with a wiped directory.
    async fn join_again(&mut self, id: (usize, usize)) -> anyhow::Result<()> {
        let Some(node) = self.removed.remove(&id) else { return Ok(()) };
        self.exits_expected.remove(&node);
        self.rejoin(node, std::time::Duration::from_secs(10), "wiped").await?;
        Ok(())
    }

    /// The membership nemesis' replace, first half: slot `node`'s disk dies (SIGKILL, its
    /// directory set aside). The slot stays down until the window ends.
    async fn lose_disk(&mut self, id: (usize, usize), node: NodeId) -> anyhow::Result<()> {
        let via = self.running_and_via(node);
        let dead = match via {
            Ok(via) => self.procs.member_id(node, via).await?.map(|dead| (via, dead)),
            Err(reason) => Err(reason),
        };
        match dead {
            Ok((via, dead)) => {
                self.procs.retire(node, via, Some(dead), std::time::Duration::ZERO).await?;
                println!("membership: n{node} (node {dead}) lost its disk");
                let detail = serde_json::json!({"node": node, "id": dead});
                self.timeline.write(self.now(), "membership", "disk-lost", detail)?;
                self.replaced.insert(id, node);
            }
            Err(reason) => {
                println!("membership: n{node} not replaced: {reason}");
                let detail = serde_json::json!({"node": node, "reason": reason});
                self.timeline.write(self.now(), "membership", "refused", detail)?;
            }
        }
        Ok(())
    }

    /// The membership nemesis' replace, second half: a new node starts in the dead slot with
    /// `--join --replace` at its addresses. A join the cluster refuses (no safe switch now) makes
    /// the node exit, and `on_tick` tries again.
    fn replace_again(&mut self, id: (usize, usize)) -> anyhow::Result<()> {
        let Some(node) = self.replaced.remove(&id) else { return Ok(()) };
        if self.procs.state(node) == Some(procs::NodeState::Killed) {
            let note = format!("replaces its dead node, {:.1} s into the run", self.now() as f64 / 1e9);
            self.procs.start_node(node, &note)?;
            self.timeline.write(self.now(), "membership", "joining", serde_json::json!({"node": node}))?;
        }
        Ok(())
    }

    /// The membership nemesis' drain: slot `node`'s node owns no actor until the window ends.
    async fn drain(&mut self, id: (usize, usize), node: NodeId) -> anyhow::Result<()> {
        let result = match self.other_running(node) {
            None => Err("no other node is running".to_string()),
            Some(via) => self.procs.member_command(node, via, "drain").await?,
        };
        let (event, detail) = match result {
            Ok(output) => {
                self.drained.insert(id, node);
                ("drained", output.lines().last().unwrap_or_default().to_string())
            }
            Err(reason) => ("refused", reason),
        };
        println!("membership: n{node} {event}: {detail}");
        self.timeline.write(
            self.now(),
            "membership",
            event,
            serde_json::json!({"node": node, "text": detail}),
        )?;
        Ok(())
    }

    /// The drain's end: the node owns actors again. Retried through each running node, since the
    /// window may end under a partition.
    async fn undrain(&mut self, id: (usize, usize)) -> anyhow::Result<()> {
        let Some(node) = self.drained.remove(&id) else { return Ok(()) };
        let mut last = String::from("no other node is running");
        let vias: Vec<NodeId> = self
            .config
            .topology
            .ids()
            .filter(|&n| n != node && self.procs.state(n) == Some(procs::NodeState::Running))
            .collect();
        for via in vias {
            match self.procs.member_command(node, via, "undrain").await? {
                Ok(_) => {
                    println!("membership: n{node} undrained through n{via}");
                    let detail = serde_json::json!({"node": node});
                    self.timeline.write(self.now(), "membership", "undrained", detail)?;
                    return Ok(());
                }
                Err(reason) => last = reason,
            }
        }
        // Left drained: the heal tries again.
        println!("membership: n{node} not undrained yet: {last}");
        self.drained.insert(id, node);
        Ok(())
    }

    /// Sets the removed slot `node`'s directory aside (waiting up to `wait` for it to exit) and
    /// starts it again with `--join` through a running node: a new id at the same addresses.
    async fn rejoin(&mut self, node: NodeId, wait: std::time::Duration, why: &str) -> anyhow::Result<()> {
        let via = self.other_running(node).unwrap_or(if node == 1 { 2 } else { 1 });
        self.procs.retire(node, via, None, wait).await?;
        let note =
            format!("joins again through n{via}, {why}, {:.1} s into the run", self.now() as f64 / 1e9);
        self.procs.start_node(node, &note)?;
        self.timeline.write(
            self.now(),
            "membership",
            "joining",
            serde_json::json!({"node": node, "via": via}),
        )?;
        Ok(())
    }

    /// Writes the restart markers due before an event at `time`: the worker's events reach the
    /// history in time order, and a marker goes in among them where its time falls.
    fn write_restart_markers(&mut self, time: u64) -> anyhow::Result<()> {
        while let Some(&marker) = self.pending_restart_markers.first()
            && marker <= time
        {
            self.history.write(&Event::restart(marker)).context("write history.jsonl")?;
            self.pending_restart_markers.remove(0);
        }
        Ok(())
    }

    /// Rewrites the nftables table of every node whose rules changed.
    fn apply_rules(&mut self) -> anyhow::Result<()> {
        let active: Vec<&Fault> = self.rule_faults.values().collect();
        for node in self.config.topology.ids() {
            let script = node_ruleset(self.config.topology, node, &active);
            if self.node_scripts.get(&node) != Some(&script) {
                self.lab
                    .as_ref()
                    .expect("the network exists while the run goes on")
                    .set_rules(node, &script)?;
                self.node_scripts.insert(node, script);
            }
        }
        Ok(())
    }

    /// Removes every fault: rules, pauses, kills and crashes, delay.
    async fn heal(&mut self) -> anyhow::Result<()> {
        let heal_ns = self.now();
        self.timeline.write(heal_ns, "heal", "start", serde_json::json!({}))?;
        // Windows end by the time limit, so normally nothing is open here.
        let open: Vec<(usize, usize)> = self.rule_faults.keys().copied().collect();
        for id in open {
            self.rule_faults.remove(&id);
        }
        self.apply_rules()?;
        let open: Vec<(usize, usize)> = self.removed.keys().copied().collect();
        for id in open {
            self.join_again(id).await?;
        }
        let open: Vec<(usize, usize)> = self.replaced.keys().copied().collect();
        for id in open {
            self.replace_again(id)?;
        }
        let open: Vec<(usize, usize)> = self.drained.keys().copied().collect();
        for id in open {
            self.undrain(id).await?;
        }
        let mut restarted = Vec::new();
        for node in self.config.topology.ids() {
            match self.procs.state(node) {
                Some(procs::NodeState::Paused) => self.procs.resume_node(node)?,
                Some(procs::NodeState::Killed | procs::NodeState::Exited) => {
                    self.procs.start_node(node, "restart at the heal")?;
                    restarted.push(node);
                }
                _ => {}
            }
        }
        self.procs.set_delay(0).await?;
        self.timeline.end_all(self.now())?;
        self.timeline.write(self.now(), "heal", "end", serde_json::json!({"restarted": restarted}))?;
        self.heal_ns = Some(heal_ns);
        self.phase = Phase::Healing { heal_ns, deadline: Instant::now() + self.config.recovery_timeout };
        println!(
            "healed at {:.1} s; waiting for every node to serve (up to {} s)",
            heal_ns as f64 / 1e9,
            self.config.recovery_timeout.as_secs()
        );
        Ok(())
    }

    async fn on_tick(&mut self) -> anyhow::Result<()> {
        let due: Vec<NodeId> =
            self.join_retries.iter().filter(|(_, at)| **at <= Instant::now()).map(|(n, _)| *n).collect();
        for node in due {
            self.join_retries.remove(&node);
            if matches!(self.procs.state(node), Some(procs::NodeState::Killed | procs::NodeState::Exited)) {
                let note = format!("asks to join again, {:.1} s into the run", self.now() as f64 / 1e9);
                self.procs.start_node(node, &note)?;
            }
        }
        for (node, status) in self.procs.reap_exited() {
            if self.exits_expected.contains(&node) {
                let detail = serde_json::json!({"node": node, "status": status.to_string()});
                self.timeline.write(self.now(), "membership", "exited", detail)?;
                continue;
            }
            if log_tail(&self.procs.node_log(node)).contains("refused to admit this node") {
                // A join (an add or a replace) refused for now, e.g. no safe switch while another
                // fault lasts: the same directory asks again shortly (a join resumes).
                let detail = serde_json::json!({"node": node, "status": status.to_string()});
                self.timeline.write(self.now(), "membership", "join-refused", detail)?;
                println!(
                    "membership: the join of n{node} was refused; trying again in {} s",
                    JOIN_RETRY.as_secs()
                );
                self.join_retries.insert(node, Instant::now() + JOIN_RETRY);
                continue;
            }
            if log_tail(&self.procs.node_log(node)).contains("was removed from the cluster") {
                // A removal whose command answered with an unknown outcome, and that went
                // through: the slot joins again at once, as at the end of its window.
                let detail = serde_json::json!({"node": node, "status": status.to_string(), "late": true});
                self.timeline.write(self.now(), "membership", "exited", detail)?;
                self.rejoin(node, std::time::Duration::from_secs(1), "after a late removal").await?;
                continue;
            }
            let text =
                format!("node {node} exited on its own ({status}) at {:.1} s", self.now() as f64 / 1e9);
            println!("{text}; see {}", self.procs.node_log(node).display());
            self.timeline.write(
                self.now(),
                "crash",
                "start",
                serde_json::json!({"node": node, "status": status.to_string()}),
            )?;
            self.crashes.push(text);
            self.crashes_nodes.push(node);
        }
        if matches!(self.phase, Phase::Warmup { .. })
            && let Some(crash) = self.crashes.first()
        {
            let node_log = self.procs.node_log(self.crashes_nodes[0]);
            bail!("{crash} before the cluster became ready; the end of its log:\n{}", log_tail(&node_log));
        }
        let proxies = self.procs.exited_proxies();
        if !proxies.is_empty() {
            bail!(
                "the delay proxy of node(s) {proxies:?} exited; see logs/proxy-n*.log in the run directory"
            );
        }
        let now = Instant::now();
        match self.phase {
            Phase::Warmup { deadline } if now >= deadline => {
                bail!("the client worker did not report the cluster ready in time");
            }
            Phase::Healing { heal_ns, deadline } => {
                if self.first_ok_after_heal.values().all(Option::is_some) {
                    let all = self.first_ok_after_heal.values().flatten().max().copied().unwrap_or(heal_ns);
                    println!(
                        "recovered: every node served within {} ms of the heal",
                        (all - heal_ns) / 1_000_000
                    );
                    self.phase = Phase::Tail { until: now + TAIL };
                } else if now >= deadline {
                    let stuck: Vec<NodeId> = self
                        .first_ok_after_heal
                        .iter()
                        .filter(|(_, t)| t.is_none())
                        .map(|(n, _)| *n)
                        .collect();
                    let names: Vec<String> = stuck.iter().map(|n| format!("n{n}")).collect();
                    println!("not recovered: {} served nothing within the bound", names.join(", "));
                    self.record_stuck(&stuck).await;
                    self.start_draining().await;
                }
            }
            Phase::Tail { until } if now >= until => self.start_draining().await,
            Phase::Draining { until } if now >= until => {
                tracing::warn!("client worker did not finish in time");
                self.phase = Phase::Done;
            }
            _ => {}
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(PROGRESS_EVERY) {
            self.history.flush().context("write history.jsonl")?;
            self.completions.flush().context("write completions.jsonl")?;
            self.print_progress();
        }
        Ok(())
    }

    /// Records what explains `nodes` (those that served nothing after the heal): their thread
    /// stacks and last stuck-instances log line, and the metrics of every node, for comparison
    /// (per-peer messages sent and received, commits).
    async fn record_stuck(&self, nodes: &[NodeId]) {
        for &node in nodes {
            match self.procs.capture_stacks(node).await {
                Ok(path) => println!("  n{node}: thread stacks in {}", path.display()),
                Err(e) => println!("  n{node}: no thread stacks: {e:#}"),
            }
            match last_line_containing(&self.procs.node_log(node), STUCK_INSTANCES_LOG) {
                Some(line) => println!("  n{node}: last {STUCK_INSTANCES_LOG:?} line: {line}"),
                None => println!(
                    "  n{node}: never logged {STUCK_INSTANCES_LOG:?}: no epoxy instance of it stayed stuck for an interval"
                ),
            }
        }
        for node in self.config.topology.ids() {
            match self.procs.capture_metrics(node).await {
                Ok(path) => println!("  n{node}: metrics in {}", path.display()),
                Err(e) => println!("  n{node}: no metrics: {e:#}"),
            }
        }
    }

    async fn start_draining(&mut self) {
        self.procs.stop_worker().await;
        let final_phase = self.config.workload.final_phase_time_max();
        self.phase =
            Phase::Draining { until: Instant::now() + self.config.op_timeout + final_phase + DRAIN_GRACE };
    }

    fn print_progress(&mut self) {
        let seconds = (TICK * PROGRESS_EVERY).as_secs_f64();
        let rate = (self.window_ok + self.window_fail + self.window_info) as f64 / seconds;
        let faults: Vec<String> = self.timeline.active().map(Fault::to_string).collect();
        let faults = if faults.is_empty() { "none".to_string() } else { faults.join("; ") };
        println!(
            "{:>7.1}s {:<8} {:>6.0} ops/s (ok {} fail {} info {})  total {}  faults: {}",
            self.now() as f64 / 1e9,
            self.phase.name(),
            rate,
            self.window_ok,
            self.window_fail,
            self.window_info,
            self.ops.ops.len(),
            faults
        );
        let _ = std::io::stdout().flush();
        self.window_ok = 0;
        self.window_fail = 0;
        self.window_info = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_matching_line_is_found_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n1.log");
        let long = "x".repeat(LOG_LINE_SHOWN_MAX + 10);
        std::fs::write(
            &log,
            format!(
                "a WARN epoxy: instances waiting first\nother\nb WARN epoxy: instances waiting {long}\nlast\n"
            ),
        )
        .unwrap();
        let line = last_line_containing(&log, STUCK_INSTANCES_LOG).unwrap();
        assert!(line.starts_with("b WARN") && line.ends_with(" …"), "{line}");
        assert_eq!(line.chars().count(), LOG_LINE_SHOWN_MAX + 2);
        assert_eq!(last_line_containing(&log, "absent"), None);
        assert_eq!(last_line_containing(&dir.path().join("missing.log"), "x"), None);
    }
}
