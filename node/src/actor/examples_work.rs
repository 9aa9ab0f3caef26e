//! The two example actors that keep time and work, hosted by the stock `mortar` binary beside
//! `counter` and `chatRoom`: `reminder` (alarms) and `worker` (a durable queue and a run loop).
//!
//! ```console
//! $ mortar call reminder ann remindIn '{"ms": 1500, "note": "stand up"}'
//! "3.0"
//! $ mortar call reminder ann fired       # 1.5 s later
//! [{"id":"3.0","note":"stand up","due_ms":1733400001500,"fired_ms":1733400001503,"times":1}]
//! $ mortar queue send worker w1 jobs '{"id": "job-1"}' --wait
//! 0
//! $ mortar call worker w1 processed
//! {"ids":["job-1"],"duplicates":[]}
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::context::{Context, RunContext, unix_ms};
use super::registry::Work;
use super::sdk::{Action, Actor, ActorError, Event, Handles, RunLoop};

/// Longest `remindIn` delay: a day.
pub const REMIND_MS_MAX: u64 = 24 * 3600 * 1000;
/// Longest note.
pub const NOTE_BYTES_MAX: usize = 1024;
/// Most entries `fired` and `processed` return.
pub const LISTED_MAX: usize = 100_000;
/// Longest simulated work of one job.
pub const JOB_WORK_MS_MAX: u64 = 1000;

/// Reminders: `remindIn {ms, note}` schedules an alarm that records the note when it fires
/// (returns the alarm's id), `cancel {id}` cancels one, `fired` lists the notes fired, each with
/// when it was due, when it fired and how many times it fired (always 1: an alarm's effect
/// commits with its removal).
pub struct Reminder;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderState {
    /// Reminders scheduled and fired, for a quick look.
    pub scheduled: u64,
    pub fired: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemindIn {
    pub ms: u64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub id: String,
}

/// What a reminder's alarm runs (refused when a client calls it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired;

/// One fired reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredNote {
    pub id: String,
    pub note: String,
    pub due_ms: u64,
    pub fired_ms: u64,
    /// How many times this alarm ran (more than 1 would be a bug).
    pub times: u32,
}

impl Actor for Reminder {
    const NAME: &'static str = "reminder";
    type State = ReminderState;
    type Input = ();
    type Actions = (RemindIn, Cancel, Ring, Fired);
    type Events = ();
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();
}

impl Action for RemindIn {
    const NAME: &'static str = "remindIn";
    type Output = String;
}

impl Action for Cancel {
    const NAME: &'static str = "cancel";
    type Output = ();
}

impl Action for Ring {
    const NAME: &'static str = "ring";
    type Output = ();
}

impl Action for Fired {
    const NAME: &'static str = "fired";
    type Output = Vec<FiredNote>;
}

impl Handles<RemindIn> for Reminder {
    async fn handle(&self, action: RemindIn, ctx: &mut Context<Self>) -> Result<String, ActorError> {
        if action.ms > REMIND_MS_MAX {
            return Err(ActorError::invalid_argument(format!("ms is at most {REMIND_MS_MAX} (a day)")));
        }
        if action.note.len() > NOTE_BYTES_MAX {
            return Err(ActorError::invalid_argument(format!("a note has at most {NOTE_BYTES_MAX} bytes")));
        }
        let id = ctx.schedule().after(Duration::from_millis(action.ms), Ring { note: action.note })?;
        ctx.state_mut().scheduled += 1;
        Ok(id)
    }
}

impl Handles<Cancel> for Reminder {
    async fn handle(&self, action: Cancel, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        ctx.schedule().cancel(&action.id)
    }
}

impl Handles<Ring> for Reminder {
    async fn handle(&self, action: Ring, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let (Some(id), Some(due_ms)) = (ctx.alarm().map(str::to_string), ctx.alarm_due_ms()) else {
            return Err(ActorError::rejected("ring runs only when a reminder's alarm fires"));
        };
        let key = format!("fired/{id}");
        let times = ctx.kv().get::<FiredNote>(&key)?.map_or(0, |f| f.times) + 1;
        let fired = FiredNote { id, note: action.note, due_ms, fired_ms: unix_ms(), times };
        ctx.kv().put(&key, &fired)?;
        ctx.state_mut().fired += 1;
        Ok(())
    }
}

impl Handles<Fired> for Reminder {
    async fn handle(&self, _: Fired, ctx: &mut Context<Self>) -> Result<Vec<FiredNote>, ActorError> {
        list(ctx, "fired/")
    }
}

/// Every value under `prefix` in the actor's key-value space (at most [`LISTED_MAX`]).
fn list<A: Actor, V: serde::de::DeserializeOwned>(
    ctx: &mut Context<A>,
    prefix: &str,
) -> Result<Vec<V>, ActorError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Vec<(String, V)> =
            ctx.kv().list(prefix, after.as_deref(), super::context::KV_LIST_ENTRIES_MAX)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        all.extend(page.into_iter().map(|(_, v)| v));
        if all.len() >= LISTED_MAX {
            break;
        }
    }
    Ok(all)
}

/// A worker: its run loop handles the jobs sent to its queue `jobs` (`{"id": "job-1",
/// "work_ms": 0}`), each exactly once, recording the job's id and emitting `jobDone`;
/// `processed` returns the ids handled and any id handled more than once (always none).
pub struct Worker;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    pub handled: u64,
}

/// A job: its id, and how long handling it takes (simulated work, at most 1 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    #[serde(default)]
    pub work_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedJobs {
    pub ids: Vec<String>,
    pub duplicates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDone {
    pub id: String,
    pub handled: u64,
}

impl Event for JobDone {
    const NAME: &'static str = "jobDone";
}

impl Actor for Worker {
    const NAME: &'static str = "worker";
    type State = WorkerState;
    type Input = ();
    type Actions = (Processed,);
    type Events = (JobDone,);
    type Vars = ();
    type ConnParams = ();
    type ConnState = ();

    fn work(work: &mut Work<Self>) {
        work.queue("jobs").run_loop();
    }
}

impl Action for Processed {
    const NAME: &'static str = "processed";
    type Output = ProcessedJobs;
}

impl Handles<Processed> for Worker {
    async fn handle(&self, _: Processed, ctx: &mut Context<Self>) -> Result<ProcessedJobs, ActorError> {
        let times: Vec<(String, u32)> = list(ctx, "done/")?;
        let mut processed = ProcessedJobs::default();
        for (id, times) in times {
            if times > 1 {
                processed.duplicates.push(id.clone());
            }
            processed.ids.push(id);
        }
        Ok(processed)
    }
}

impl RunLoop for Worker {
    async fn run(&self, ctx: &mut RunContext<Self>) -> Result<(), ActorError> {
        while let Some(message) = ctx.queue("jobs").next().await {
            let job: Job = match message.body() {
                Ok(job) => job,
                Err(e) => {
                    // Dropped: the next `next()` commits its removal.
                    tracing::warn!(actor = %ctx.key(), error = %e, "worker got a message that is not a job");
                    continue;
                }
            };
            if job.work_ms > 0 {
                tokio::time::sleep(Duration::from_millis(job.work_ms.min(JOB_WORK_MS_MAX))).await;
            }
            let key = format!("done/{}", job.id);
            let times = ctx.kv().get::<(String, u32)>(&key)?.map_or(0, |(_, t)| t) + 1;
            ctx.kv().put(&key, &(job.id.clone(), times))?;
            let handled = ctx.state().handled + 1;
            ctx.state_mut().handled = handled;
            ctx.emit(JobDone { id: job.id, handled })?;
        }
        Ok(())
    }
}
