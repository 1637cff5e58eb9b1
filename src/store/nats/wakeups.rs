//! What wakes the followers of a pod's log: one plain NATS subscription to
//! its subject per server, however many of the server's followers read it.
//!
//! A published message reaches a subscriber before JetStream may have
//! stored it (and also when it refuses it), so the subscription only says
//! "look": the watcher then asks JetStream for the subject's newest stored
//! sequence, again shortly if it has not moved yet, and tells the
//! followers that. A slow poll covers what a subscription can miss while
//! the client reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::stream::Stream;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

/// How often a followed subject is asked for its newest message anyway.
const POLL: Duration = Duration::from_secs(1);

/// How long after a published message its storing is looked for, at most:
/// a replica answers as soon as it has applied it.
const SETTLE: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_millis(4),
    Duration::from_millis(16),
    Duration::from_millis(64),
    Duration::from_millis(256),
];

/// The followed subjects of this server.
pub(super) struct Wakeups {
    client: async_nats::Client,
    stream: Stream<()>,
    subjects: Mutex<HashMap<String, Weak<Wakeup>>>,
}

/// The newest stored sequence of one subject, kept up to date while some
/// follower holds it.
pub(super) struct Wakeup {
    newest: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Wakeup {
    /// The newest stored sequence of the subject, as it changes.
    pub fn newest(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }
}

impl Wakeups {
    pub fn new(client: async_nats::Client, stream: Stream<()>) -> Self {
        Wakeups {
            client,
            stream,
            subjects: Mutex::default(),
        }
    }

    /// The subject's wakeup, shared with this server's other followers of it.
    pub fn watch(&self, subject: &str) -> Arc<Wakeup> {
        let mut subjects = self.subjects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wakeup) = subjects.get(subject).and_then(Weak::upgrade) {
            return wakeup;
        }
        subjects.retain(|_, wakeup| wakeup.strong_count() > 0);
        let newest = watch::Sender::new(0);
        let task = tokio::spawn(keep_up(
            self.client.clone(),
            self.stream.clone(),
            subject.to_owned(),
            newest.clone(),
        ));
        let wakeup = Arc::new(Wakeup { newest, task });
        subjects.insert(subject.to_owned(), Arc::downgrade(&wakeup));
        wakeup
    }
}

async fn keep_up(
    client: async_nats::Client,
    stream: Stream<()>,
    subject: String,
    newest: watch::Sender<u64>,
) {
    let mut published = match client.subscribe(subject.clone()).await {
        Ok(subscriber) => Some(subscriber),
        Err(err) => {
            tracing::warn!(subject, %err, "cannot subscribe to a log; polling it");
            None
        }
    };
    let mut poll = tokio::time::interval(POLL);
    loop {
        let news = tokio::select! {
            message = next(&mut published) => message,
            _ = poll.tick() => false,
        };
        if news && let Some(subscriber) = &mut published {
            // One look for a burst of them.
            while let Some(Some(_)) = subscriber.next().now_or_never() {}
        }
        let known = *newest.borrow();
        for pause in if news { &SETTLE[..] } else { &SETTLE[..1] } {
            tokio::time::sleep(*pause).await;
            if let Ok(last) = stream.direct_get_last_for_subject(subject.as_str()).await
                && last.sequence > known
            {
                newest.send_replace(last.sequence);
                break;
            }
        }
    }
}

/// Whether a message was published; pending forever without a subscription.
async fn next(published: &mut Option<async_nats::Subscriber>) -> bool {
    match published {
        Some(subscriber) => match subscriber.next().await {
            Some(_) => true,
            None => {
                *published = None;
                false
            }
        },
        None => std::future::pending().await,
    }
}
