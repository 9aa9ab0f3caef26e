//! The alarm scheduler of one node: fires the alarms of the actors this node owns when they come
//! due, and wakes the actors with queued messages that come to be owned here.
//!
//! Every replica keeps the alarm index (`t/<due><alarm>`, see [`keys`]) and the work index
//! (`w/<actor>`) as it applies actor writes, so whichever node the ring makes an actor's owner
//! finds its alarms and its queued work in its own storage, after a failover or a whole-cluster
//! restart alike. The scheduler reads the head of the alarm index: due entries of actors owned
//! here are fired (one fire per alarm at a time: [`Runtime::fire_local`]), and it sleeps until
//! the next due time, or until an activation here schedules an alarm, a fire ends, membership
//! changes, or at most [`POLL_MAX`] (alarms written by other nodes' activations become visible
//! as this replica executes their writes). Firing is exactly-once by construction, not by the
//! scheduler: the alarm's action and its removal are one fenced write, and a fire of an alarm
//! that is gone does nothing.
//!
//! When membership changes (and at start) it also walks the work index and wakes ([`WAKE`]) the
//! actors owned here that have queued messages and are not active, so their run loops resume.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::Notify;

use super::context::unix_ms;
use super::keys::{self, ActorId};
use super::router::Router;
use super::runtime::WAKE;

/// Index entries read per storage scan.
pub const SCAN_PAGE: usize = 256;
/// Longest sleep between two looks at the alarm index.
pub const POLL_MAX: Duration = Duration::from_millis(250);
/// Alarms being fired at once on one node.
pub const FIRES_IN_FLIGHT_MAX: usize = 512;
/// Bound on one fire (activation included).
pub const FIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Actors woken at once by a pass over the work index.
const WAKES_IN_FLIGHT_MAX: usize = 16;

/// Alarms being fired here: `(actor, alarm id)`.
type InFlight = Arc<Mutex<HashSet<(ActorId, String)>>>;

/// Starts the scheduler of `router`'s node; it runs until the router is dropped.
pub fn spawn(router: &Arc<Router>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(router);
    let mut view = router.view_watch();
    tokio::spawn(async move {
        let in_flight: InFlight = Arc::default();
        let ended = Arc::new(Notify::new());
        let mut epoch = None;
        let mut view_open = true;
        loop {
            let Some(router) = weak.upgrade() else { return };
            let current = view.borrow_and_update().epoch;
            if epoch != Some(current) {
                epoch = Some(current);
                tokio::spawn(wake_pass(Arc::downgrade(&router)));
            }
            let wait = fire_pass(&router, &in_flight, &ended).min(POLL_MAX);
            let runtime = router.runtime().clone();
            drop(router);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = runtime.alarms_changed().notified() => {}
                () = ended.notified() => {}
                changed = view.changed(), if view_open => view_open = changed.is_ok(),
            }
        }
    })
}

/// Fires the due alarms of the actors owned here that are not being fired; returns how long
/// until the next alarm is due.
fn fire_pass(router: &Arc<Router>, in_flight: &InFlight, ended: &Arc<Notify>) -> Duration {
    let storage = router.runtime().storage().clone();
    let me = router.node_id();
    let now = unix_ms();
    let mut after: Option<Bytes> = None;
    loop {
        let page = match storage.scan_kv_prefix(keys::ALARM_INDEX_PREFIX, after.as_deref(), SCAN_PAGE) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "could not read the alarm index");
                return POLL_MAX;
            }
        };
        let Some((last, _)) = page.last() else { return POLL_MAX };
        after = Some(last.clone());
        for (key, _) in &page {
            let Some((due, id, alarm)) = keys::parse_alarm_index_key(key) else {
                tracing::error!(key = ?String::from_utf8_lossy(key), "alarm index entry does not parse");
                continue;
            };
            if due > now {
                return Duration::from_millis(due - now);
            }
            if router.owner(&id).node != me {
                continue; // its owner fires it; if the owner dies, the view changes
            }
            let mut firing = in_flight.lock().expect("in-flight alarms lock");
            if firing.len() >= FIRES_IN_FLIGHT_MAX {
                return POLL_MAX;
            }
            if !firing.insert((id.clone(), alarm.clone())) {
                continue;
            }
            drop(firing);
            let (runtime, in_flight, ended) = (router.runtime().clone(), in_flight.clone(), ended.clone());
            tokio::spawn(async move {
                let result = runtime.fire_local(&id, alarm.clone(), Instant::now() + FIRE_TIMEOUT).await;
                in_flight.lock().expect("in-flight alarms lock").remove(&(id.clone(), alarm.clone()));
                match result {
                    Ok(()) => ended.notify_one(),
                    // Looked at again within POLL_MAX.
                    Err(e) => tracing::debug!(actor = %id, alarm, error = %e, "alarm not fired yet"),
                }
            });
        }
    }
}

/// Wakes the actors owned here that have queued messages and are not active.
async fn wake_pass(router: Weak<Router>) {
    let mut after: Option<Bytes> = None;
    loop {
        let Some(strong) = router.upgrade() else { return };
        let page = match strong.runtime().storage().scan_kv_prefix(
            keys::WORK_INDEX_PREFIX,
            after.as_deref(),
            SCAN_PAGE,
        ) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "could not read the work index");
                return;
            }
        };
        let Some((last, _)) = page.last() else { return };
        after = Some(last.clone());
        let me = strong.node_id();
        let asleep: Vec<ActorId> = page
            .iter()
            .filter_map(|(key, _)| keys::parse_work_index_key(key))
            .filter(|id| strong.owner(id).node == me && strong.runtime().generation_of(id).is_none())
            .collect();
        drop(strong);
        futures::stream::iter(asleep)
            .for_each_concurrent(WAKES_IN_FLIGHT_MAX, |id| {
                let router = router.clone();
                async move {
                    let Some(router) = router.upgrade() else { return };
                    let deadline = Instant::now() + FIRE_TIMEOUT;
                    if let Err(e) = router.runtime().call_local(&id, WAKE, String::new(), None, deadline).await {
                        tracing::debug!(actor = %id, error = %e, "could not wake an actor with queued messages");
                    }
                }
            })
            .await;
    }
}
