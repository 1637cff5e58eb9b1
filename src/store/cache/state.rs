//! The cache's state and its reads: the pods, the history, the channel to
//! watchers, and publishing a change into all three under one lock. The
//! two inputs ([`plan`](super::plan), [`observe`](super::observe)) and the
//! paged lists ([`pages`](super::pages)) are written over it.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{broadcast, watch};

use super::recent::Recent;
use crate::contract::Pod;
use crate::domain::{PodKey, PodSelector};
use crate::store::config::StoreConfig;
use crate::store::error::StoreError;
use crate::store::list::PodList;
use crate::store::pod_log::PodLog;
use crate::store::watcher::Watcher;

/// See the [module docs](super).
pub(crate) struct WatchCache {
    pub(super) state: RwLock<State>,
    /// The version the cache reflects, for those who wait for one (see
    /// [`WatchCache::reached`]).
    pub(super) versions: watch::Sender<u64>,
    pub(super) config: StoreConfig,
    /// Tells this history from any other (see
    /// [`ListPosition`](crate::store::ListPosition)): a new one per life of an
    /// embedded store, the cluster's id for a shared one.
    pub(super) history_id: u64,
}

pub(super) struct State {
    pub(super) pods: BTreeMap<PodKey, Entry>,
    /// Publishes changes to watchers. Kept under the lock so that a
    /// start-over (see [`Observed::StartOver`](super::Observed::StartOver)) ends every watcher of the
    /// state it replaces.
    pub(super) changes: broadcast::Sender<Arc<Pod>>,
    /// Set when a start-over ends `changes`, so that its watchers can tell
    /// it from a shutdown.
    pub(super) started_over: Arc<OnceLock<u64>>,
    /// The version of the newest change; 0 for a store that never changed.
    pub(super) version: u64,
    /// The newest changes, oldest first, ending at `version`.
    pub(super) history: VecDeque<Change>,
    /// The oldest version a watch can continue from: that of the newest
    /// change no longer in `history` (0 while nothing was dropped). Kept,
    /// not computed from `history`, so that versions need not be consecutive.
    pub(super) continues_from: u64,
    /// The oldest version a list can continue at: also no older than the
    /// version restored from disk, since the restored history does not say
    /// what each change replaced.
    pub(super) undoes_from: u64,
    /// When recent versions were published, for a history kept by time as
    /// well as by count.
    pub(super) recent: Recent,
}

/// A change in the history, with what it replaced.
pub(super) struct Change {
    /// The pod (or tombstone) as changed.
    pub(super) pod: Arc<Pod>,
    /// The pod just before; `None` if the change created it, or if it was
    /// restored from disk (see `State::undoes_from`).
    pub(super) before: Option<Arc<Pod>>,
}

pub(super) struct Entry {
    pub(super) pod: Arc<Pod>,
    pub(super) log: Arc<PodLog>,
}

/// What a store loaded from disk, to restore a cache from.
#[derive(Default)]
pub(crate) struct Restored {
    /// The current pods.
    pub pods: Vec<Pod>,
    /// The version of the newest change.
    pub version: u64,
    /// The retained changes, oldest first, ending at `version`.
    pub history: Vec<Pod>,
    /// The oldest version a watch can continue from.
    pub continues_from: u64,
}

impl WatchCache {
    /// An empty cache with a history of its own.
    pub fn new(config: StoreConfig) -> Self {
        Self::restore(config, Restored::default())
    }

    /// An empty cache of a shared history, named `history_id` on every
    /// server that follows it.
    pub fn shared(config: StoreConfig, history_id: u64) -> Self {
        WatchCache {
            history_id,
            ..Self::new(config)
        }
    }

    /// A cache holding what a store loaded from disk.
    pub fn restore(config: StoreConfig, restored: Restored) -> Self {
        let Restored {
            pods,
            version,
            history,
            continues_from,
        } = restored;
        let pods = pods
            .into_iter()
            .map(|pod| {
                let entry = Entry {
                    // An embedded store keeps no creation versions, and
                    // needs none: its logs live in the entry.
                    log: Arc::new(PodLog::new(config.log_bytes_per_pod, 0)),
                    pod: Arc::new(pod),
                };
                (PodKey::of(&entry.pod), entry)
            })
            .collect();
        let history = history
            .into_iter()
            .map(|pod| Change {
                pod: Arc::new(pod),
                before: None,
            })
            .collect();
        WatchCache {
            state: RwLock::new(State {
                pods,
                changes: broadcast::channel(config.watch_buffer.max(1)).0,
                started_over: Arc::default(),
                version,
                history,
                continues_from,
                undoes_from: version,
                recent: Recent::default(),
            }),
            versions: watch::Sender::new(version),
            config,
            // Not a secret: only different from any other life's.
            history_id: RandomState::new().hash_one(std::time::SystemTime::now()),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The version of the newest change.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// The selected pods, and the version they reflect.
    pub fn list(&self, selector: &PodSelector) -> PodList {
        let state = self.read();
        PodList {
            pods: state.matching(selector).cloned().collect(),
            version: state.version,
        }
    }

    /// The version of a pod's last change, if it exists: what a cluster
    /// backend's write expects the pod to be at.
    pub fn pod_version(&self, key: &PodKey) -> Option<u64> {
        self.read()
            .pods
            .get(key)
            .map(|entry| entry.pod.resource_version)
    }

    /// The oldest version the history keeps for its time window (`None`
    /// without one): a shared store's compaction must keep it too.
    pub fn kept_for_window(&self) -> Option<u64> {
        if self.config.history_window.is_zero() {
            return None;
        }
        Some(self.read().recent.kept_from())
    }

    /// The life of an existing pod.
    pub fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.read()
            .pods
            .get(key)
            .map(|entry| Arc::clone(&entry.log))
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    /// Registers a watcher of the selected pods: from 0, the current ones
    /// and then every change to them; from a version, the changes after
    /// it, which must lie within the history.
    pub fn watch(&self, selector: PodSelector, from: u64) -> Result<Watcher, StoreError> {
        // The read lock keeps publishers out between reading the backlog and
        // subscribing, so the watcher neither misses nor repeats a change.
        let state = self.read();
        let backlog: Vec<Arc<Pod>> = if from == 0 {
            state.matching(&selector).cloned().collect()
        } else {
            if from < state.continues_from || from > state.version {
                return Err(StoreError::VersionOutOfRange {
                    requested: from,
                    oldest: state.continues_from,
                    current: state.version,
                });
            }
            let after = state
                .history
                .partition_point(|change| change.pod.resource_version <= from);
            state
                .history
                .range(after..)
                .map(|change| &change.pod)
                .filter(|pod| selector.matches(pod))
                .cloned()
                .collect()
        };
        Ok(Watcher::new(
            selector,
            backlog,
            from,
            state.version,
            state.changes.subscribe(),
            Arc::clone(&state.started_over),
        ))
    }

    /// How many pods there are.
    pub fn pod_count(&self) -> usize {
        self.read().pods.len()
    }

    /// How many watchers are registered.
    pub fn watcher_count(&self) -> usize {
        self.read().changes.receiver_count()
    }

    /// Resolves once the cache reflects `version`.
    pub fn reached(&self, version: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut versions = self.versions.subscribe();
        async move {
            // The sender lives as long as the cache; if it is gone, so is
            // whoever waited.
            let _ = versions.wait_for(|reached| *reached >= version).await;
        }
    }

    /// Publishes changes in version order, each newer than the cache's.
    pub(super) fn publish(&self, state: &mut State, changes: impl IntoIterator<Item = Arc<Pod>>) {
        let before = state.version;
        for change in changes {
            self.publish_change(state, change);
        }
        if state.version != before {
            self.versions.send_replace(state.version);
        }
    }

    pub(super) fn publish_change(&self, state: &mut State, change: Arc<Pod>) {
        let key = PodKey::of(&change);
        let before = if change.deleted {
            state.pods.remove(&key).map(|entry| {
                entry.log.close();
                entry.pod
            })
        } else if let Some(entry) = state.pods.get_mut(&key) {
            Some(std::mem::replace(&mut entry.pod, Arc::clone(&change)))
        } else {
            let entry = Entry {
                pod: Arc::clone(&change),
                log: Arc::new(PodLog::new(
                    self.config.log_bytes_per_pod,
                    change.resource_version,
                )),
            };
            state.pods.insert(key, entry);
            None
        };
        state.version = change.resource_version;
        state.history.push_back(Change {
            pod: Arc::clone(&change),
            before,
        });
        // Kept: the newest `history` changes, and every change of the last
        // `history_window`.
        let kept_from = if self.config.history_window.is_zero() {
            u64::MAX
        } else {
            state
                .recent
                .note(change.resource_version, self.config.history_window);
            state.recent.kept_from()
        };
        while state.history.len() > self.config.history {
            match state.history.front() {
                Some(oldest) if oldest.pod.resource_version < kept_from => {
                    state.continues_from = oldest.pod.resource_version;
                    state.history.pop_front();
                }
                _ => break,
            }
        }
        // An error only means that nobody is watching.
        let _ = state.changes.send(change);
    }

    // A panic while holding the lock cannot leave the state half-written
    // (publishing only inserts and removes whole entries), so a poisoned
    // lock is safe to keep using.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The selected pods in key order: a range of the map for a namespace,
    /// one lookup for a pod, so a read costs what it selects, not what
    /// its namespace holds.
    pub(super) fn matching<'a>(
        &'a self,
        selector: &'a PodSelector,
    ) -> impl Iterator<Item = &'a Arc<Pod>> {
        let entries: Box<dyn Iterator<Item = &Entry>> = match selector {
            PodSelector::All => Box::new(self.pods.values()),
            PodSelector::Namespace(ns) => Box::new(
                self.pods
                    .range(PodKey::new(ns.as_str(), "")..)
                    .take_while(move |(key, _)| key.namespace == *ns)
                    .map(|(_, entry)| entry),
            ),
            PodSelector::Pod(key) => Box::new(self.pods.get(key).into_iter()),
        };
        entries.map(|entry| &entry.pod)
    }
}
