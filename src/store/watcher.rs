//! Watchers: the consumer side of the registry's change feed.
//!
//! A [`Watcher`] is registered by the watch cache (see
//! [`Fresh::watch`](super::Fresh::watch)) with a backlog (the current pods,
//! or the retained changes after a version) and a receiver on the cache's
//! broadcast channel. It yields the backlog, then the live
//! changes its [`PodSelector`] selects (a namespace, all, or one pod), and remembers the last version it yielded so that
//! an ended watch can say where to resume.
//!
//! Writers never wait for a watcher: the broadcast channel is a bounded ring,
//! and a watcher that falls more than `watch_buffer` changes behind finds its
//! place overwritten. It then ends with [`WatchEnd::Overflow`] rather than
//! skipping changes silently.

use std::collections::vec_deque::VecDeque;
use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use crate::contract::{Pod, bookmark};
use crate::domain::PodSelector;

/// Why a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEnd {
    /// The watcher fell too far behind; resume from `last_version`.
    Overflow {
        /// The last version delivered.
        last_version: u64,
    },
    /// The store is gone (the server is stopping).
    Closed {
        /// The last version delivered.
        last_version: u64,
    },
    /// This server's cache lost its place in the shared store it follows
    /// and started over from it at `at`, without the history before: the
    /// watch can resume from `last_version` only where that history is
    /// still kept (another server), or else must list again.
    StartedOver {
        /// The last version delivered.
        last_version: u64,
        /// The version the cache started over at.
        at: u64,
    },
}

impl WatchEnd {
    /// The version a new watch should continue from.
    pub fn last_version(&self) -> u64 {
        match self {
            WatchEnd::Overflow { last_version }
            | WatchEnd::Closed { last_version }
            | WatchEnd::StartedOver { last_version, .. } => *last_version,
        }
    }
}

/// One registered watch. See the module docs.
pub struct Watcher {
    selector: PodSelector,
    backlog: VecDeque<Arc<Pod>>,
    /// Whether the backlog is a snapshot of current pods (whose versions say
    /// nothing about where a resumed watch should start) or retained changes.
    backlog_is_snapshot: bool,
    /// The store version at registration: what the watch reflects once the
    /// backlog is delivered.
    registered_at: u64,
    changes: broadcast::Receiver<Arc<Pod>>,
    /// Set, by the cache, when it ends `changes` because it started over.
    started_over: Arc<OnceLock<u64>>,
    /// A live change taken from the channel but not yet yielded (see
    /// [`Watcher::try_next_up_to`]).
    held: Option<Arc<Pod>>,
    last_version: u64,
    /// A bookmark is due right after the snapshot (see
    /// [`Watcher::with_initial_bookmark`]).
    initial_bookmark: bool,
}

impl Watcher {
    /// `from` is the version the watch was asked to continue from (0 for a
    /// snapshot), `registered_at` the store version when it registered.
    pub(super) fn new(
        selector: PodSelector,
        backlog: Vec<Arc<Pod>>,
        from: u64,
        registered_at: u64,
        changes: broadcast::Receiver<Arc<Pod>>,
        started_over: Arc<OnceLock<u64>>,
    ) -> Self {
        Watcher {
            selector,
            last_version: if backlog.is_empty() {
                registered_at
            } else {
                from
            },
            backlog: backlog.into(),
            backlog_is_snapshot: from == 0,
            registered_at,
            changes,
            started_over,
            held: None,
            initial_bookmark: false,
        }
    }

    /// For a watch from version 0: right after the current pods, yield a
    /// bookmark at the version they reflect (Kubernetes' "initial events
    /// end"), so that the client knows the snapshot is complete.
    pub fn with_initial_bookmark(mut self) -> Self {
        self.initial_bookmark = self.backlog_is_snapshot;
        self
    }

    /// The version up to which this watch has been given every matching
    /// change, once it is past its backlog: what a bookmark may carry.
    pub fn caught_up(&self) -> Option<u64> {
        (self.backlog.is_empty() && !self.initial_bookmark).then_some(self.last_version)
    }

    /// The version a new watch should continue from to pick up where this
    /// one is: the last change yielded, or the version the backlog reflects.
    pub fn last_version(&self) -> u64 {
        self.last_version
    }

    /// Whether the next pod [`next`](Self::next) yields is one of the
    /// watch's starting snapshot (rather than a change).
    pub fn next_is_from_snapshot(&self) -> bool {
        self.backlog_is_snapshot && !self.backlog.is_empty()
    }

    /// The next pod or change for this watch. Cancel-safe.
    pub async fn next(&mut self) -> Result<Arc<Pod>, WatchEnd> {
        if let Some(pod) = self.next_from_backlog() {
            return Ok(pod);
        }
        if let Some(change) = self.held.take() {
            return Ok(self.deliver(change));
        }
        loop {
            let change = self.changes.recv().await.map_err(|err| match err {
                RecvError::Lagged(_) => self.overflow(),
                RecvError::Closed => self.closed(),
            })?;
            if let Some(change) = self.accept(change) {
                return Ok(self.deliver(change));
            }
        }
    }

    /// The next pod or change if one is ready now and no newer than
    /// `version`, without waiting: lets a sync session deliver its own
    /// change just before the ack of the op that made it. (Unlike polling
    /// [`Watcher::next`] once, this cannot come back empty-handed because
    /// the task ran out of its scheduling budget.)
    pub fn try_next_up_to(&mut self, version: u64) -> Option<Result<Arc<Pod>, WatchEnd>> {
        if let Some(pod) = self.next_from_backlog() {
            return Some(Ok(pod));
        }
        loop {
            let change = match self.held.take() {
                Some(change) => change,
                None => match self.changes.try_recv() {
                    Ok(change) => match self.accept(change) {
                        Some(change) => change,
                        None => continue,
                    },
                    Err(TryRecvError::Empty) => return None,
                    Err(TryRecvError::Lagged(_)) => return Some(Err(self.overflow())),
                    Err(TryRecvError::Closed) => return Some(Err(self.closed())),
                },
            };
            if change.resource_version > version {
                self.held = Some(change);
                return None;
            }
            return Some(Ok(self.deliver(change)));
        }
    }

    fn next_from_backlog(&mut self) -> Option<Arc<Pod>> {
        let Some(pod) = self.backlog.pop_front() else {
            return std::mem::take(&mut self.initial_bookmark)
                .then(|| Arc::new(bookmark(self.registered_at)));
        };
        if self.backlog.is_empty() {
            self.last_version = self.registered_at;
        } else if !self.backlog_is_snapshot {
            self.last_version = pod.resource_version;
        }
        Some(pod)
    }

    /// Filters a live change: returns it if it belongs to this watch. Every
    /// change on the channel is newer than the backlog (both were taken
    /// under the store's lock), so a change it does not select (another
    /// namespace, another pod) moves the watch on at once: its bookmarks
    /// then carry the cache's version, from which a resume misses nothing.
    fn accept(&mut self, change: Arc<Pod>) -> Option<Arc<Pod>> {
        if self.selector.matches(&change) {
            Some(change)
        } else {
            self.last_version = change.resource_version;
            None
        }
    }

    fn deliver(&mut self, change: Arc<Pod>) -> Arc<Pod> {
        self.last_version = change.resource_version;
        change
    }

    fn overflow(&self) -> WatchEnd {
        WatchEnd::Overflow {
            last_version: self.last_version,
        }
    }

    fn closed(&self) -> WatchEnd {
        let last_version = self.last_version;
        match self.started_over.get() {
            Some(&at) => WatchEnd::StartedOver { last_version, at },
            None => WatchEnd::Closed { last_version },
        }
    }
}
