//! Delivery of events to subscribers and connections on the actor's owner node.
//!
//! Subscribers of an actor register here on the node that owns it (other nodes proxy their
//! subscriptions to the owner). An action's events are published after its write is committed.
//! When the actor stops being owned here (its ring owner changed, or it was fenced by an
//! activation elsewhere) every subscription ends with a [`Closed`] reason, and clients subscribe
//! again (through any node) to follow it. Delivery is at most once: events emitted while a
//! client resubscribes are not replayed.
//!
//! A connection ([`connection`](super::connection)) listens here too: it receives the actor's
//! events and the [`ConnMessage`]s addressed to it (each connection skips the others').

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::context::{ConnMessage, EmittedEvent};
use super::keys::ActorId;

/// Events buffered per actor for slow subscribers; one that falls further behind is dropped (its
/// stream ends and it should resubscribe).
pub const SUBSCRIBER_EVENTS_BUFFERED_MAX: usize = 1024;
/// Most actors with subscribers on one node.
pub const SUBSCRIBED_ACTORS_MAX: usize = 100_000;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Published {
    Event(Arc<EmittedEvent>),
    /// For one connection; the others skip it.
    Conn(Arc<ConnMessage>),
    /// The subscription is over (the actor moved); no event follows.
    Closed(Closed),
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub reason: String,
}

/// The subscribers of every actor on this node.
#[derive(Default)]
pub struct EventHub {
    topics: Mutex<HashMap<ActorId, broadcast::Sender<Published>>>,
}

impl EventHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver of the events of `id` from now on; `None` when too many actors have subscribers.
    pub fn subscribe(&self, id: &ActorId) -> Option<broadcast::Receiver<Published>> {
        let mut topics = self.topics.lock().expect("event hub lock");
        if let Some(tx) = topics.get(id) {
            return Some(tx.subscribe());
        }
        if topics.len() >= SUBSCRIBED_ACTORS_MAX {
            topics.retain(|_, tx| tx.receiver_count() > 0);
            if topics.len() >= SUBSCRIBED_ACTORS_MAX {
                return None;
            }
        }
        let (tx, rx) = broadcast::channel(SUBSCRIBER_EVENTS_BUFFERED_MAX);
        topics.insert(id.clone(), tx);
        Some(rx)
    }

    /// Delivers `events` of `id` to its current subscribers and connections, then the messages
    /// for single connections.
    pub fn publish(&self, id: &ActorId, events: Vec<EmittedEvent>, conn_messages: Vec<ConnMessage>) {
        if events.is_empty() && conn_messages.is_empty() {
            return;
        }
        let mut topics = self.topics.lock().expect("event hub lock");
        let Some(tx) = topics.get(id) else { return };
        if tx.receiver_count() == 0 {
            topics.remove(id);
            return;
        }
        for event in events {
            let _ = tx.send(Published::Event(Arc::new(event)));
        }
        for message in conn_messages {
            let _ = tx.send(Published::Conn(Arc::new(message)));
        }
    }

    /// Ends every subscription of `id` with `reason`.
    pub fn close(&self, id: &ActorId, reason: &str) {
        let tx = self.topics.lock().expect("event hub lock").remove(id);
        if let Some(tx) = tx {
            let _ = tx.send(Published::Closed(Closed { reason: reason.to_string() }));
        }
    }

    /// Ends the subscriptions of every actor for which `moved` returns a reason.
    pub fn close_where(&self, mut moved: impl FnMut(&ActorId) -> Option<String>) {
        let mut topics = self.topics.lock().expect("event hub lock");
        topics.retain(|id, tx| {
            if tx.receiver_count() == 0 {
                return false;
            }
            match moved(id) {
                Some(reason) => {
                    let _ = tx.send(Published::Closed(Closed { reason }));
                    false
                }
                None => true,
            }
        });
    }

    /// Actors with at least one subscriber here.
    /// How many subscribers actor `id` has on this node.
    pub fn subscribers(&self, id: &ActorId) -> usize {
        self.topics.lock().expect("event hub lock").get(id).map_or(0, |tx| tx.receiver_count())
    }

    pub fn subscribed(&self) -> usize {
        self.topics.lock().expect("event hub lock").values().filter(|tx| tx.receiver_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &'static str) -> EmittedEvent {
        EmittedEvent { name, data_json: "1".into() }
    }

    #[test]
    fn subscribers_get_events_then_the_close() {
        let hub = EventHub::new();
        let id = ActorId::new("counter", "a");
        let mut rx = hub.subscribe(&id).unwrap();
        hub.publish(&ActorId::new("counter", "other"), vec![event("x")], Vec::new());
        hub.publish(&id, vec![event("newCount")], Vec::new());
        hub.close(&id, "moved to node 2");
        match rx.try_recv().unwrap() {
            Published::Event(e) => assert_eq!(e.name, "newCount"),
            other => panic!("{other:?}"),
        }
        match rx.try_recv().unwrap() {
            Published::Closed(c) => assert_eq!(c.reason, "moved to node 2"),
            other => panic!("{other:?}"),
        }
        assert_eq!(hub.subscribed(), 0);
    }

    #[test]
    fn close_where_ends_only_the_moved_actors() {
        let hub = EventHub::new();
        let (a, b) = (ActorId::new("counter", "a"), ActorId::new("counter", "b"));
        let mut ra = hub.subscribe(&a).unwrap();
        let mut rb = hub.subscribe(&b).unwrap();
        hub.close_where(|id| (id.key() == "a").then(|| "moved".to_string()));
        assert!(matches!(ra.try_recv(), Ok(Published::Closed(_))));
        assert!(rb.try_recv().is_err());
        assert_eq!(hub.subscribed(), 1);
    }
}
