//! The durable parts of `mortar-chaos bench actors`, run only when `--parts` names them: alarms
//! and queues, measured with the example actors of the stock `mortar` binary
//! ([`mortar_node::actor::examples_work`]): `reminder` (`remindIn {ms, note}`, `fired`) and
//! `worker` (queue `jobs`, `processed`).
//!
//! * **alarms** ([`alarms`]): the lateness (fired minus due, as the actor records it) of
//!   [`QUIET_REMINDERS`] reminders over [`QUIET_REMINDER_ACTORS`] actors on a quiet cluster; then
//!   of [`FAILOVER_REMINDERS`] reminders on actors owned by node 1, which is SIGKILLed as soon as
//!   they are scheduled (they come due on the survivors). Each reminder must fire exactly once,
//!   with the id `remindIn` returned: checked through a survivor, and again after node 1 restarts
//!   and owns the actors again. Any violation fails the bench.
//! * **queue** ([`queue`]): `--clients` senders send jobs (no wait) through node 1 to the queues
//!   of at most [`QUEUE_WORKERS_MAX`] workers for `--duration` seconds (sends per second); then
//!   the time until the workers have handled every job (handled per second, from the first send
//!   to the last job handled, read from the nodes' `mortar_node_actor_queue_handled_total`).
//!   Every job acknowledged must be handled exactly once (`processed`), or the bench fails.
//! * **alarm-memory** ([`alarm_memory`]): on a cluster whose nodes put actors to sleep after
//!   [`ALARM_MEMORY_IDLE_TIMEOUT_MS`], schedules one alarm an hour ahead on each of
//!   `--idle-actors` reminders owned by node 1, waits until node 1 has none active
//!   (`mortar_node_actors_active`), and compares the resident memory growth of node 1 with the
//!   other nodes' (which replicate the same writes and alarm index).
//! * **sleep-memory** ([`sleep_memory`]): on the same kind of cluster, activates `--idle-actors`
//!   counters owned by node 1 (each written once, at its creation), half then the rest, waits
//!   after each half until node 1 has none active, and reports the resident memory growth per
//!   sleeping actor of node 1 and of the other nodes, overall and over the second half alone.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use mortar_node::actor::examples_work::{FiredNote, LISTED_MAX, ProcessedJobs, REMIND_MS_MAX};
use mortar_node::actor::{CallError, unix_ms};
use mortar_proto::v1::ActorSendRequest;
use mortar_proto::v1::actors_client::ActorsClient;
use tonic::transport::Channel;

use super::actors::{
    ActorBenchArgs, ActorBenchResult, BENCH_NODES, BenchCluster, CALL_TIMEOUT, FILL_CONCURRENCY, Latency,
    activate_in_halves, call_actor, growth_per_actor, keys_owned_by, latency, new_histogram, nodes_rss,
};
use super::metrics::{http_get, metric_sum};

/// Reminders scheduled on the quiet cluster, and the actors they are spread over.
pub const QUIET_REMINDERS: usize = 500;
pub const QUIET_REMINDER_ACTORS: usize = 100;
/// Delays of the quiet reminders (uniform), in milliseconds.
pub const QUIET_DELAY_MS: Range<u64> = 500..1500;
/// Reminders scheduled on actors owned by node 1 before it is killed, and those actors.
pub const FAILOVER_REMINDERS: usize = 200;
pub const FAILOVER_REMINDER_ACTORS: usize = 50;
/// Delays of the failover reminders (uniform), in milliseconds: longer than scheduling them all
/// takes, so that they come due after the kill.
pub const FAILOVER_DELAY_MS: Range<u64> = 2000..3000;
/// `remindIn` calls in flight while scheduling.
pub const SCHEDULE_CONCURRENCY: usize = 16;
/// Bound on waiting for every reminder to fire, from when the last one is due.
pub const FIRE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two reads of the reminders that have not all fired.
const FIRE_POLL: Duration = Duration::from_millis(200);
/// Violations listed when the bench fails.
const VIOLATIONS_SHOWN_MAX: usize = 10;

/// Most workers the queue part sends to.
pub const QUEUE_WORKERS_MAX: u64 = 100;
/// The queue every worker declares.
pub const QUEUE: &str = "jobs";
/// Bound on waiting for every job to be handled, from the end of sending.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause between two scrapes of the handled counters while draining.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Bound on reading every job back through `processed`, once the counters say all are handled.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause of a sender whose job was refused because the worker's queue was full.
const FULL_BACKOFF: Duration = Duration::from_millis(5);

/// `--actor-idle-timeout-ms` of the alarm-memory cluster.
pub const ALARM_MEMORY_IDLE_TIMEOUT_MS: u64 = 1000;
/// Delay of the alarm-memory alarms: none comes due during the measurement.
pub const ALARM_MEMORY_DELAY_MS: u64 = 3_600_000;
/// Bound on waiting for the alarm-memory actors to sleep, from the end of scheduling.
pub const SLEEP_WAIT_MAX: Duration = Duration::from_secs(300);
/// Pause between two scrapes of node 1's active actors.
const SLEEP_POLL: Duration = Duration::from_millis(250);

const _: () =
    assert!(QUIET_REMINDERS >= QUIET_REMINDER_ACTORS && FAILOVER_REMINDERS >= FAILOVER_REMINDER_ACTORS);
const _: () =
    assert!(QUIET_DELAY_MS.start < QUIET_DELAY_MS.end && FAILOVER_DELAY_MS.start < FAILOVER_DELAY_MS.end);
const _: () = assert!(FAILOVER_DELAY_MS.end <= REMIND_MS_MAX && ALARM_MEMORY_DELAY_MS <= REMIND_MS_MAX);
const _: () = assert!(QUEUE_WORKERS_MAX as usize <= LISTED_MAX);

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueResult {
    pub workers: u64,
    pub senders: u64,
    /// Jobs acknowledged (sent).
    pub sent: u64,
    /// Sends refused because the worker's queue was full (not applied).
    pub full: u64,
    /// Sends that failed without being applied.
    pub errors: u64,
    /// Sends whose outcome is unknown (timeouts): the job may or may not be handled.
    pub unknown: u64,
    pub sends_per_sec: f64,
    pub send_latency: Latency,
    /// Jobs sent but not handled yet when sending stopped.
    pub backlog_at_send_end: u64,
    /// From the end of sending until every job sent was handled.
    pub drain_ms: f64,
    pub handled: u64,
    /// Jobs handled per second, from the first send to the last job handled.
    pub handled_per_sec: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SleepMemoryResult {
    pub actors: usize,
    pub idle_timeout_ms: u64,
    /// Actors still active on node 1 when memory was measured (0 unless the bound was hit).
    pub active_left: u64,
    /// Resident memory growth of node 1 (the actors' owner) per sleeping actor, in bytes.
    pub owner_rss_bytes_per_actor: f64,
    /// The average growth of the other nodes per actor.
    pub replica_rss_bytes_per_actor: f64,
    /// Growth of node 1 per actor over the second half alone (once the storage engine's bounded
    /// buffers have filled).
    pub owner_rss_bytes_per_actor_marginal: f64,
    /// The average growth of the other nodes per actor over the second half alone.
    pub replica_rss_bytes_per_actor_marginal: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AlarmMemoryResult {
    pub actors: usize,
    pub idle_timeout_ms: u64,
    pub scheduled_per_sec: f64,
    /// From the end of scheduling until node 1 had no active actor (or the bound).
    pub asleep_after_ms: f64,
    /// Actors still active on node 1 when memory was measured (0 unless the bound was hit).
    pub active_left: u64,
    /// Resident memory growth of node 1 (the actors' owner) per actor, in bytes.
    pub owner_rss_bytes_per_actor: f64,
    /// The average growth of the other nodes per actor (replication, storage, alarm index).
    pub replica_rss_bytes_per_actor: f64,
    /// The difference: what a sleeping actor with a pending alarm costs its owner's runtime.
    pub runtime_rss_bytes_per_actor: f64,
}

/// A reminder scheduled: what `remindIn` was given and answered, and when (unix ms).
#[derive(Debug, Clone)]
struct Scheduled {
    note: String,
    ms: u64,
    id: String,
    sent_ms: u64,
    acked_ms: u64,
}

/// Part alarms: lateness on a quiet cluster, then across a failover of the owner (node 1).
pub(super) async fn alarms(cluster: &mut BenchCluster, result: &mut ActorBenchResult) -> anyhow::Result<()> {
    // Quiet: actors on every node, scheduled and read through node 1.
    let keys: Vec<String> = (0..QUIET_REMINDER_ACTORS).map(|i| format!("alarm-quiet-{i}")).collect();
    let client = cluster.client(1).await?;
    let scheduled = schedule(&client, &keys, QUIET_REMINDERS, QUIET_DELAY_MS, "quiet").await?;
    let fired = await_fired(&client, 1, &keys, &scheduled).await?;
    let quiet = verify_fired(&keys, &scheduled, &fired)?;
    println!(
        "alarm lateness (fired minus due), quiet: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} reminders \
         (due in {}..{} ms) on {} actors; each fired once",
        quiet.p50_ms,
        quiet.p99_ms,
        quiet.max_ms,
        quiet.count,
        QUIET_DELAY_MS.start,
        QUIET_DELAY_MS.end,
        keys.len()
    );
    result.alarm_lateness = Some(quiet);

    // Across a failover: the owner dies before any reminder is due.
    let keys = keys_owned_by(1, "reminder", "alarm-failover", FAILOVER_REMINDER_ACTORS);
    let client = cluster.client(1).await?;
    let started = Instant::now();
    let scheduled = schedule(&client, &keys, FAILOVER_REMINDERS, FAILOVER_DELAY_MS, "failover").await?;
    let scheduling = started.elapsed();
    let first_due_ms = scheduled.iter().flatten().map(|s| s.acked_ms + s.ms).min().unwrap_or(0);
    cluster.kill(1);
    let killed_ms = unix_ms();
    anyhow::ensure!(
        killed_ms < first_due_ms,
        "scheduling the failover reminders took {scheduling:?}, so one came due before node 1 was killed: \
         the machine is too loaded for this part"
    );
    let kill_lead_ms = first_due_ms - killed_ms;
    eprintln!(
        "alarms: {FAILOVER_REMINDERS} reminders scheduled on node 1 in {scheduling:.1?}, then node 1 killed"
    );
    let survivor = cluster.client(2).await?;
    let fired = await_fired(&survivor, 2, &keys, &scheduled).await?;
    let across = verify_fired(&keys, &scheduled, &fired)?;
    println!(
        "alarm lateness across a failover (owner SIGKILLed {kill_lead_ms} ms before the first was due; fired by \
         the survivors): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} reminders (due in {}..{} ms) on {} \
         actors; each fired once",
        across.p50_ms,
        across.p99_ms,
        across.max_ms,
        across.count,
        FAILOVER_DELAY_MS.start,
        FAILOVER_DELAY_MS.end,
        keys.len()
    );
    cluster.start(1)?;
    cluster.wait_ready(1).await?;
    // Let gossip take the restarted node back in: it owns the actors again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = cluster.client(1).await?;
    let again = await_fired(&client, 1, &keys, &scheduled).await?;
    let changed: Vec<(&String, &Vec<FiredNote>, &Vec<FiredNote>)> = keys
        .iter()
        .zip(fired.iter().zip(&again))
        .filter(|(_, (a, b))| a != b)
        .map(|(k, (a, b))| (k, a, b))
        .collect();
    if let Some((key, before, after)) = changed.first() {
        bail!(
            "the fired reminders of {} actors changed after node 1 restarted (fired again?), e.g. {key}: before \
             {before:?}, after {after:?}",
            changed.len()
        );
    }
    eprintln!("alarms: node 1 restarted and owns the actors again; no reminder fired again");
    result.alarm_failover_lateness = Some(across);
    result.alarm_failover_kill_lead_ms = Some(kill_lead_ms);
    Ok(())
}

/// Schedules `count` reminders over the reminder actors `keys` (round robin), with delays spread
/// uniformly over `delay_ms`; returns them by actor.
async fn schedule(
    client: &ActorsClient<Channel>,
    keys: &[String],
    count: usize,
    delay_ms: Range<u64>,
    label: &str,
) -> anyhow::Result<Vec<Vec<Scheduled>>> {
    let plan = Arc::new(plan(count, keys.len(), delay_ms, label));
    let keys = Arc::new(keys.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..SCHEDULE_CONCURRENCY {
        let (plan, keys, next, mut client) = (plan.clone(), keys.clone(), next.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((actor, note, ms)) = plan.get(i) else { return Ok::<_, anyhow::Error>(done) };
                let key = &keys[*actor];
                let args = serde_json::json!({ "ms": ms, "note": note }).to_string();
                let sent_ms = unix_ms();
                let answer = call_actor(&mut client, "reminder", key, "remindIn", &args)
                    .await
                    .map_err(|s| anyhow::anyhow!("schedule reminder {note} on {key}: {s}"))?;
                let acked_ms = unix_ms();
                let id: String = serde_json::from_str(&answer)
                    .with_context(|| format!("remindIn of {key} answered {answer:?}, not an alarm id"))?;
                done.push((*actor, Scheduled { note: note.clone(), ms: *ms, id, sent_ms, acked_ms }));
            }
        }));
    }
    let mut by_actor: Vec<Vec<Scheduled>> = vec![Vec::new(); keys.len()];
    for task in tasks {
        for (actor, scheduled) in task.await?? {
            by_actor[actor].push(scheduled);
        }
    }
    Ok(by_actor)
}

/// Reads `fired` of every actor of `keys` through node `through` until each lists all its
/// scheduled notes, bounded by [`FIRE_WAIT_MAX`] after the last one is due.
async fn await_fired(
    client: &ActorsClient<Channel>,
    through: u32,
    keys: &[String],
    scheduled: &[Vec<Scheduled>],
) -> anyhow::Result<Vec<Vec<FiredNote>>> {
    let last_due_ms = scheduled.iter().flatten().map(|s| s.acked_ms + s.ms).max().unwrap_or(0);
    let deadline_ms = last_due_ms + FIRE_WAIT_MAX.as_millis() as u64;
    if let Some(wait) = last_due_ms.checked_sub(unix_ms()) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let mut client = client.clone();
    let mut fired: Vec<Option<Vec<FiredNote>>> = vec![None; keys.len()];
    let mut last_error = String::new();
    loop {
        for (i, key) in keys.iter().enumerate() {
            if fired[i].as_ref().is_some_and(|f| has_every_note(f, &scheduled[i])) {
                continue;
            }
            match call_actor(&mut client, "reminder", key, "fired", "").await {
                Ok(answer) => {
                    let notes: Vec<FiredNote> = serde_json::from_str(&answer)
                        .with_context(|| format!("fired of {key} answered {answer:?}"))?;
                    fired[i] = Some(notes);
                }
                Err(status) => last_error = format!("{key}: {status}"),
            }
        }
        let pending = (0..keys.len())
            .filter(|&i| !fired[i].as_ref().is_some_and(|f| has_every_note(f, &scheduled[i])))
            .count();
        if pending == 0 {
            return Ok(fired.into_iter().map(Option::unwrap_or_default).collect());
        }
        if unix_ms() > deadline_ms {
            let missing: usize = (0..keys.len())
                .map(|i| {
                    let notes: HashSet<&str> = fired[i].iter().flatten().map(|f| f.note.as_str()).collect();
                    scheduled[i].iter().filter(|s| !notes.contains(s.note.as_str())).count()
                })
                .sum();
            bail!(
                "{missing} reminders on {pending} actors had not fired (read through node {through}) {FIRE_WAIT_MAX:?} \
                 after the last was due; last error: {last_error:?}"
            );
        }
        tokio::time::sleep(FIRE_POLL).await;
    }
}

fn has_every_note(fired: &[FiredNote], scheduled: &[Scheduled]) -> bool {
    let notes: HashSet<&str> = fired.iter().map(|f| f.note.as_str()).collect();
    scheduled.iter().all(|s| notes.contains(s.note.as_str()))
}

/// Checks that every scheduled reminder fired exactly once, with its id, when it was due and
/// not before; answers the lateness (fired minus due) percentiles.
fn verify_fired(
    keys: &[String],
    scheduled: &[Vec<Scheduled>],
    fired: &[Vec<FiredNote>],
) -> anyhow::Result<Latency> {
    let mut histogram: Histogram<u64> = new_histogram();
    let mut violations = Vec::new();
    for ((key, scheduled), fired) in keys.iter().zip(scheduled).zip(fired) {
        let mut by_note: HashMap<&str, Vec<&FiredNote>> = HashMap::new();
        for f in fired {
            by_note.entry(f.note.as_str()).or_default().push(f);
        }
        for s in scheduled {
            let Some(entries) = by_note.remove(s.note.as_str()) else {
                violations.push(format!("{key}: reminder {} ({}) never fired", s.note, s.id));
                continue;
            };
            let [f] = entries.as_slice() else {
                violations.push(format!(
                    "{key}: reminder {} fired as {} entries: {entries:?}",
                    s.note,
                    entries.len()
                ));
                continue;
            };
            if f.id != s.id {
                violations.push(format!(
                    "{key}: reminder {} was scheduled as {} but fired as {}",
                    s.note, s.id, f.id
                ));
            }
            if f.times != 1 {
                violations.push(format!("{key}: reminder {} fired {} times", s.note, f.times));
            }
            // Same host, same clock: due is when remindIn ran plus the delay.
            if f.due_ms + 1 < s.sent_ms + s.ms || f.due_ms > s.acked_ms + s.ms + 1 {
                violations.push(format!(
                    "{key}: reminder {} due at {} though scheduled {} ms ahead between {} and {}",
                    s.note, f.due_ms, s.ms, s.sent_ms, s.acked_ms
                ));
            }
            match f.fired_ms.checked_sub(f.due_ms) {
                Some(late_ms) => histogram.saturating_record(late_ms * 1000),
                None => violations.push(format!(
                    "{key}: reminder {} fired {} ms before it was due",
                    s.note,
                    f.due_ms - f.fired_ms
                )),
            }
        }
        for (note, entries) in by_note {
            violations
                .push(format!("{key}: {} entries of a reminder never scheduled ({note})", entries.len()));
        }
    }
    if !violations.is_empty() {
        bail!(
            "{} violations of exactly-once alarms, e.g.:\n  {}",
            violations.len(),
            violations.iter().take(VIOLATIONS_SHOWN_MAX).cloned().collect::<Vec<_>>().join("\n  ")
        );
    }
    Ok(latency(&histogram))
}

/// `count` reminders `(actor, note, delay in ms)` over `actors` actors (round robin), with delays
/// spread uniformly over `delay_ms`, the same on every run.
fn plan(count: usize, actors: usize, delay_ms: Range<u64>, label: &str) -> Vec<(usize, String, u64)> {
    (0..count)
        .map(|i| {
            let spread = splitmix64(i as u64) % (delay_ms.end - delay_ms.start);
            (i % actors, format!("{label}-{i}"), delay_ms.start + spread)
        })
        .collect()
}

/// A well-mixed 64-bit value of `i` (splitmix64).
fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What one sender did.
#[derive(Default)]
struct SenderTally {
    /// `(worker, job id)` acknowledged, and those whose outcome is unknown.
    sent: Vec<(usize, String)>,
    unknown: Vec<(usize, String)>,
    full: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Part queue: sends per second through node 1, then handled per second until all are handled.
pub(super) async fn queue(
    cluster: &BenchCluster,
    args: &ActorBenchArgs,
    result: &mut ActorBenchResult,
) -> anyhow::Result<()> {
    let workers = args.keys.min(QUEUE_WORKERS_MAX) as usize;
    let keys: Arc<Vec<String>> = Arc::new((0..workers).map(|w| format!("queue-{w}")).collect());
    let client = cluster.client(1).await?;
    // Warm up: every worker active, its run loop running, before the clock starts.
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); workers];
    for (w, key) in keys.iter().enumerate() {
        let id = format!("warm-{w}");
        send(&mut client.clone(), key, &id, true)
            .await
            .map_err(|s| anyhow::anyhow!("warm up worker {key}: {s}"))?;
        expected[w].push(id);
    }
    let handled_before = handled_total(cluster).await?;
    let started = Instant::now();
    let end = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for sender in 0..args.clients {
        let (keys, mut client, senders) = (keys.clone(), client.clone(), args.clients);
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut tally = SenderTally::default();
            let mut n = 0u64;
            while Instant::now() < end {
                let w = ((sender + n * senders) % keys.len() as u64) as usize;
                let id = format!("{sender}-{n}");
                n += 1;
                let sent = Instant::now();
                match send(&mut client, &keys[w], &id, false).await {
                    Ok(()) => {
                        histogram.saturating_record(sent.elapsed().as_micros() as u64);
                        tally.sent.push((w, id));
                    }
                    Err(status) => match CallError::from_status(&status) {
                        CallError::Overloaded(_) => {
                            tally.full += 1;
                            tokio::time::sleep(FULL_BACKOFF).await;
                        }
                        CallError::Unavailable(_) => tally.unknown.push((w, id)),
                        _ => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert_with(|| format!("{}: {status}", keys[w]));
                        }
                    },
                }
            }
            (histogram, tally)
        }));
    }
    let mut histogram = new_histogram();
    let mut unknown: Vec<HashSet<String>> = vec![HashSet::new(); workers];
    let (mut full, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let (h, tally) = task.await?;
        histogram.add(h)?;
        for (w, id) in tally.sent {
            expected[w].push(id);
        }
        for (w, id) in tally.unknown {
            unknown[w].insert(id);
        }
        full += tally.full;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let sending = started.elapsed();
    let sent = (expected.iter().map(Vec::len).sum::<usize>() - workers) as u64;
    let unknown_count: usize = unknown.iter().map(HashSet::len).sum();
    let backlog = sent.saturating_sub(handled_total(cluster).await?.saturating_sub(handled_before));
    // Draining: the nodes' counters say when the last job is handled.
    let drained = loop {
        let handled = handled_total(cluster).await?.saturating_sub(handled_before);
        if handled >= sent {
            break started.elapsed();
        }
        if started.elapsed() > sending + DRAIN_TIMEOUT {
            bail!("only {handled} of {sent} jobs sent were handled {DRAIN_TIMEOUT:?} after sending stopped");
        }
        tokio::time::sleep(DRAIN_POLL).await;
    };
    let handled = handled_total(cluster).await?.saturating_sub(handled_before);
    verify_processed(&client, &keys, &expected, &unknown).await?;
    let queue = QueueResult {
        workers: workers as u64,
        senders: args.clients,
        sent,
        full,
        errors,
        unknown: unknown_count as u64,
        sends_per_sec: sent as f64 / sending.as_secs_f64(),
        send_latency: latency(&histogram),
        backlog_at_send_end: backlog,
        drain_ms: (drained - sending).as_secs_f64() * 1000.0,
        handled,
        handled_per_sec: handled as f64 / drained.as_secs_f64(),
    };
    println!(
        "queue sends/s through node 1: {:.0} ({} sent, {} refused as full, {} errors, {} unknown; p50 {:.2} ms, \
         p99 {:.2} ms; {} senders over {} workers, no wait)",
        queue.sends_per_sec,
        queue.sent,
        queue.full,
        queue.errors,
        queue.unknown,
        queue.send_latency.p50_ms,
        queue.send_latency.p99_ms,
        queue.senders,
        queue.workers
    );
    println!(
        "queue handled/s: {:.0} ({} handled in {:.1?} from the first send; {} waiting when sending stopped, all \
         handled {:.0} ms later); each job handled once, none missing",
        queue.handled_per_sec, queue.handled, drained, queue.backlog_at_send_end, queue.drain_ms
    );
    if let Some(e) = first_error {
        eprintln!("queue: first send error: {e}");
    }
    result.queue = Some(queue);
    Ok(())
}

/// Sends job `id` to worker `key`'s queue; with `wait`, answers once it is handled.
async fn send(
    client: &mut ActorsClient<Channel>,
    key: &str,
    id: &str,
    wait: bool,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(ActorSendRequest {
        actor: "worker".into(),
        key: key.into(),
        queue: QUEUE.into(),
        body_json: serde_json::json!({ "id": id }).to_string(),
        wait,
        input_json: String::new(),
    });
    request.set_timeout(CALL_TIMEOUT);
    match tokio::time::timeout(CALL_TIMEOUT, client.send(request)).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

/// Jobs handled by the run loops of every node, from their `/metrics`.
async fn handled_total(cluster: &BenchCluster) -> anyhow::Result<u64> {
    let mut total = 0.0;
    for id in 1..=BENCH_NODES {
        let text =
            http_get(cluster.http(id), "/metrics").await.with_context(|| format!("scrape node {id}"))?;
        total += metric_sum(&text, "mortar_node_actor_queue_handled_total");
    }
    Ok(total as u64)
}

/// Checks through `processed` that every worker handled each job in `expected` exactly once,
/// and nothing but those and the jobs of unknown outcome in `unknown`.
async fn verify_processed(
    client: &ActorsClient<Channel>,
    keys: &[String],
    expected: &[Vec<String>],
    unknown: &[HashSet<String>],
) -> anyhow::Result<()> {
    let mut client = client.clone();
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let mut violations = Vec::new();
    for (w, key) in keys.iter().enumerate() {
        anyhow::ensure!(
            expected[w].len() + unknown[w].len() < LISTED_MAX,
            "worker {key} got {} jobs, more than `processed` lists ({LISTED_MAX}): use a shorter --duration",
            expected[w].len()
        );
        let processed = loop {
            let answer = call_actor(&mut client, "worker", key, "processed", "").await;
            let missing = match &answer {
                Ok(answer) => {
                    let processed: ProcessedJobs = serde_json::from_str(answer)
                        .with_context(|| format!("processed of {key} answered {answer:?}"))?;
                    let ids: HashSet<&str> = processed.ids.iter().map(String::as_str).collect();
                    let missing = expected[w].iter().filter(|id| !ids.contains(id.as_str())).count();
                    if missing == 0 {
                        break processed;
                    }
                    format!("{missing} jobs missing")
                }
                Err(status) => format!("processed failed: {status}"),
            };
            if Instant::now() > deadline {
                violations.push(format!(
                    "{key}: {missing} {VERIFY_TIMEOUT:?} after the counters said all were handled"
                ));
                break ProcessedJobs::default();
            }
            tokio::time::sleep(FIRE_POLL).await;
        };
        for id in &processed.duplicates {
            violations.push(format!("{key}: job {id} handled more than once"));
        }
        let sent: HashSet<&str> = expected[w].iter().map(String::as_str).collect();
        for id in &processed.ids {
            if !sent.contains(id.as_str()) && !unknown[w].contains(id) {
                violations.push(format!("{key}: handled job {id}, which was never sent"));
            }
        }
    }
    if !violations.is_empty() {
        bail!(
            "{} violations of exactly-once queues, e.g.:\n  {}",
            violations.len(),
            violations.iter().take(VIOLATIONS_SHOWN_MAX).cloned().collect::<Vec<_>>().join("\n  ")
        );
    }
    Ok(())
}

/// Waits up to [`SLEEP_WAIT_MAX`] until node 1 has no active actor; returns how many are still
/// active (0 unless the bound was hit).
pub(super) async fn all_asleep(cluster: &BenchCluster, part: &str) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let text = http_get(cluster.http(1), "/metrics").await.context("scrape node 1")?;
        let active = metric_sum(&text, "mortar_node_actors_active") as u64;
        if active == 0 {
            return Ok(0);
        }
        if started.elapsed() > SLEEP_WAIT_MAX {
            eprintln!("{part}: {active} actors still active on node 1 after {SLEEP_WAIT_MAX:?}");
            return Ok(active);
        }
        tokio::time::sleep(SLEEP_POLL).await;
    }
}

/// Part sleep-memory, on `cluster` (whose nodes put idle actors to sleep after
/// [`ALARM_MEMORY_IDLE_TIMEOUT_MS`]): resident memory per sleeping counter, overall and over the
/// second half of the actors alone.
pub(super) async fn sleep_memory(
    cluster: &BenchCluster,
    actors: usize,
    result: &mut ActorBenchResult,
) -> anyhow::Result<()> {
    let h = activate_in_halves(cluster, keys_owned_by(1, "counter", "sleeper", actors), Some("sleep-memory"))
        .await?;
    println!(
        "sleep-memory: {actors} counters owned by node 1 created and asleep in {:.1?} ({} active left; idle \
         timeout {ALARM_MEMORY_IDLE_TIMEOUT_MS} ms); resident memory growth per sleeping actor: node 1 (owner) \
         {:.0} B, other nodes {:.0} B; over the second half alone: node 1 {:.0} B, other nodes {:.0} B",
        h.elapsed, h.active_left, h.owner, h.others, h.owner_marginal, h.others_marginal
    );
    result.sleep_memory = Some(SleepMemoryResult {
        actors,
        idle_timeout_ms: ALARM_MEMORY_IDLE_TIMEOUT_MS,
        active_left: h.active_left,
        owner_rss_bytes_per_actor: h.owner,
        replica_rss_bytes_per_actor: h.others,
        owner_rss_bytes_per_actor_marginal: h.owner_marginal,
        replica_rss_bytes_per_actor_marginal: h.others_marginal,
    });
    Ok(())
}

/// Part alarm-memory, on `cluster` (whose nodes put idle actors to sleep after
/// [`ALARM_MEMORY_IDLE_TIMEOUT_MS`]): resident memory per sleeping actor with one pending alarm.
pub(super) async fn alarm_memory(
    cluster: &BenchCluster,
    actors: usize,
    result: &mut ActorBenchResult,
) -> anyhow::Result<()> {
    let before = nodes_rss(cluster)?;
    let keys = Arc::new(keys_owned_by(1, "reminder", "sleeper", actors));
    let next = Arc::new(AtomicU64::new(0));
    let client = cluster.client(1).await?;
    let args = Arc::new(serde_json::json!({ "ms": ALARM_MEMORY_DELAY_MS, "note": "later" }).to_string());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let (keys, next, args, mut client) = (keys.clone(), next.clone(), args.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(key) = keys.get(i) else { return Ok::<(), anyhow::Error>(()) };
                call_actor(&mut client, "reminder", key, "remindIn", &args)
                    .await
                    .map_err(|s| anyhow::anyhow!("schedule an alarm on {key}: {s}"))?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let fill = started.elapsed();
    let scheduled = Instant::now();
    let active_left = all_asleep(cluster, "alarm-memory").await?;
    let asleep_after = scheduled.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = nodes_rss(cluster)?;
    let (owner, replicas) = growth_per_actor(&before, &after, actors);
    let memory = AlarmMemoryResult {
        actors,
        idle_timeout_ms: ALARM_MEMORY_IDLE_TIMEOUT_MS,
        scheduled_per_sec: actors as f64 / fill.as_secs_f64(),
        asleep_after_ms: asleep_after.as_secs_f64() * 1000.0,
        active_left,
        owner_rss_bytes_per_actor: owner,
        replica_rss_bytes_per_actor: replicas,
        runtime_rss_bytes_per_actor: owner - replicas,
    };
    println!(
        "alarm-memory: {actors} reminders owned by node 1 each given an alarm an hour ahead in {fill:.1?} ({:.0}/s), \
         all asleep {:.1} s later ({active_left} active left; idle timeout {} ms); resident memory growth per \
         sleeping actor: node 1 (owner) {owner:.0} B, other nodes {replicas:.0} B, so about {:.0} B per sleeping \
         actor with a pending alarm in the runtime",
        memory.scheduled_per_sec,
        memory.asleep_after_ms / 1000.0,
        ALARM_MEMORY_IDLE_TIMEOUT_MS,
        memory.runtime_rss_bytes_per_actor
    );
    result.alarm_memory = Some(memory);
    Ok(())
}

#[cfg(test)]
#[path = "actors_durable_test.rs"]
mod actors_durable_test;
