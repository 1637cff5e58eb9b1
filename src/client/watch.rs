//! A resumable watch of pods, as `kubectl get pods -w` does it.
//!
//! [`PodWatch`] keeps a cache of the pods it has seen. It lists first
//! (`ListPods`), then watches from the list's version (`WatchPods`), so the
//! list and the changes together form a consistent view. When the stream
//! ends (the server dropped a slow watcher, restarted, or the connection
//! broke) it waits with capped, jittered backoff and resumes from the last
//! version it saw; if the server can no longer continue from there
//! (`OUT_OF_RANGE`), it lists again and reports only the difference from its
//! cache. So no change is reported twice and none is missed.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status, Streaming};

use crate::client::{Client, code_name, status_error};
use crate::pb::{ListPodsRequest, Pod};

/// What happened to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    pub kind: EventKind,
    pub pod: Pod,
}

/// What [`PodWatch::next`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    /// The result of a (re)list: the differences from what was known before
    /// (on the first list, every pod as `Added`).
    Listed(Vec<PodEvent>),
    /// One change from the watch stream.
    Changed(PodEvent),
    /// The stream ended; the watch resumes by itself after `retry_in`.
    Interrupted { reason: String, retry_in: Duration },
}

/// See the module docs.
pub struct PodWatch {
    client: Client,
    namespace: String,
    cache: BTreeMap<(String, String), Pod>,
    /// The version the view reflects: where a resumed watch continues from.
    version: u64,
    listed: bool,
    stream: Option<Streaming<Pod>>,
    pending: VecDeque<WatchUpdate>,
    retry_at: Option<Instant>,
    backoff: Backoff,
}

impl PodWatch {
    /// A watch of one namespace (`""` = every namespace).
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        PodWatch {
            client,
            namespace: namespace.into(),
            cache: BTreeMap::new(),
            version: 0,
            listed: false,
            stream: None,
            pending: VecDeque::new(),
            retry_at: None,
            backoff: Backoff::default(),
        }
    }

    /// The version the watch has reached.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The pods as currently known, sorted by namespace then name.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.cache.values()
    }

    /// The next update. Errors only when the server refuses the watch for a
    /// reason that retrying cannot fix (e.g. `INVALID_ARGUMENT`).
    pub async fn next(&mut self) -> anyhow::Result<WatchUpdate> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return Ok(update);
            }
            if let Some(at) = self.retry_at.take() {
                tokio::time::sleep_until(at).await;
            }
            if let Err(status) = self.step().await {
                self.stream = None;
                match status.code() {
                    Code::OutOfRange => {
                        // Too far behind for the history: list again, now.
                        self.listed = false;
                    }
                    Code::InvalidArgument
                    | Code::Unimplemented
                    | Code::Unauthenticated
                    | Code::PermissionDenied => return Err(status_error(status)),
                    code => {
                        let retry_in = self.backoff.next_delay();
                        self.retry_at = Some(Instant::now() + retry_in);
                        return Ok(WatchUpdate::Interrupted {
                            reason: format!("{}: {}", code_name(code), status.message()),
                            retry_in,
                        });
                    }
                }
            }
        }
    }

    /// One round trip: a list, opening the stream, or one message from it.
    async fn step(&mut self) -> Result<(), Status> {
        if !self.listed {
            let list = self
                .client
                .list_pods(ListPodsRequest {
                    namespace: self.namespace.clone(),
                    resource_version: 0,
                })
                .await?
                .into_inner();
            let events = self.replace(list.pods, list.resource_version);
            self.listed = true;
            self.backoff.reset();
            self.pending.push_back(WatchUpdate::Listed(events));
            return Ok(());
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let request = ListPodsRequest {
                    namespace: self.namespace.clone(),
                    resource_version: self.version,
                };
                self.stream
                    .insert(self.client.watch_pods(request).await?.into_inner())
            }
        };
        match stream.message().await? {
            Some(pod) => {
                self.backoff.reset();
                if let Some(event) = self.observe(pod) {
                    self.pending.push_back(WatchUpdate::Changed(event));
                }
                Ok(())
            }
            None => Err(Status::unavailable("the server ended the watch")),
        }
    }

    /// Records one pod from the stream; returns the event it makes, if any.
    fn observe(&mut self, pod: Pod) -> Option<PodEvent> {
        self.version = self.version.max(pod.resource_version);
        let key = (pod.namespace.clone(), pod.name.clone());
        if pod.deleted {
            self.cache.remove(&key);
            return Some(PodEvent {
                kind: EventKind::Deleted,
                pod,
            });
        }
        let kind = self.kind_of(&key, &pod)?;
        self.cache.insert(key, pod.clone());
        Some(PodEvent { kind, pod })
    }

    /// Replaces the cache with a fresh list; returns the differences.
    fn replace(&mut self, pods: Vec<Pod>, version: u64) -> Vec<PodEvent> {
        let fresh: BTreeMap<(String, String), Pod> = pods
            .into_iter()
            .map(|pod| ((pod.namespace.clone(), pod.name.clone()), pod))
            .collect();
        let mut events: Vec<PodEvent> = self
            .cache
            .iter()
            .filter(|(key, _)| !fresh.contains_key(*key))
            .map(|(_, gone)| PodEvent {
                kind: EventKind::Deleted,
                pod: Pod {
                    resource_version: version,
                    deleted: true,
                    ..gone.clone()
                },
            })
            .collect();
        for (key, pod) in &fresh {
            if let Some(kind) = self.kind_of(key, pod) {
                events.push(PodEvent {
                    kind,
                    pod: pod.clone(),
                });
            }
        }
        self.cache = fresh;
        self.version = version;
        events
    }

    /// How a live pod differs from the cache: new, changed, or (`None`) known.
    fn kind_of(&self, key: &(String, String), pod: &Pod) -> Option<EventKind> {
        match self.cache.get(key) {
            None => Some(EventKind::Added),
            Some(known) if known.resource_version == pod.resource_version => None,
            Some(_) => Some(EventKind::Modified),
        }
    }
}

/// Capped exponential backoff with jitter, so that many clients of a
/// restarted server do not reconnect in lockstep.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    /// The next delay: 100 ms doubling up to 5 s, each drawn at random from
    /// the upper half of its range.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::FIRST
            .saturating_mul(1 << self.attempt.min(16))
            .min(Self::CAP);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Backoff::CAP));
        assert!(delays[11] >= Backoff::CAP / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
