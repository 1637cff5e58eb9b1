//! The pod store: pods, the store-wide version counter, the bounded change
//! history and the one place where changes are published to watchers.
//!
//! Every successful write (apply or delete) takes the next version under the
//! write lock, records the changed pod (or its tombstone) in the history and
//! publishes it on a broadcast channel, all before the lock is released. So the
//! history and the channel carry changes in strictly increasing, gap-free
//! version order, and a watcher that registers under the same lock (see
//! [`Store::watch`]) sees exactly the changes after the version it registered
//! at: no gap, no repeat.
//!
//! Stored pods are immutable `Arc<Pod>`s shared by the map, the history and
//! every watcher, so a change is allocated once however many watch it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use crate::logs::PodLog;
use crate::pb::Pod;
use crate::watch::Watcher;

/// A pod's identity: its namespace and name. Orders by namespace, then name,
/// which is the order `ListPods` returns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A validated create-or-update (see [`crate::validate::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyPod {
    pub key: PodKey,
    pub status: String,
    pub replicas: i32,
    /// Optimistic concurrency: apply only if the pod is still at this version.
    pub expected_version: Option<u64>,
}

/// Why a store operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound(PodKey),
    /// The pod is not at the version the apply expected (`current` is `None`
    /// when the pod does not exist).
    Conflict {
        key: PodKey,
        expected: u64,
        current: Option<u64>,
    },
    /// A watch asked to continue from a version the history cannot continue
    /// from without a gap.
    VersionOutOfRange {
        requested: u64,
        oldest: u64,
        current: u64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(key) => write!(f, "pod {key} not found"),
            StoreError::Conflict {
                key,
                expected,
                current: Some(current),
            } => write!(
                f,
                "version conflict on pod {key}: resource_version {expected} expected, \
                 but the pod is at {current}"
            ),
            StoreError::Conflict {
                key,
                expected,
                current: None,
            } => write!(
                f,
                "version conflict on pod {key}: resource_version {expected} expected, \
                 but the pod does not exist"
            ),
            StoreError::VersionOutOfRange {
                requested,
                oldest,
                current,
            } => write!(
                f,
                "resource_version {requested} is out of range: the history can continue \
                 from {oldest} to {current}; list again and watch from the list's version"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for tonic::Status {
    fn from(err: StoreError) -> Self {
        let code = match err {
            StoreError::NotFound(_) => tonic::Code::NotFound,
            StoreError::Conflict { .. } => tonic::Code::Aborted,
            StoreError::VersionOutOfRange { .. } => tonic::Code::OutOfRange,
        };
        tonic::Status::new(code, err.to_string())
    }
}

/// Limits of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent changes are kept for watches that resume from a version.
    pub history: usize,
    /// How many changes a watcher may fall behind the newest before its
    /// stream ends with `RESOURCE_EXHAUSTED`.
    pub watch_buffer: usize,
    /// Bytes of log kept per pod; the oldest lines are dropped beyond it.
    pub log_bytes_per_pod: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: 10_000,
            watch_buffer: 4_096,
            log_bytes_per_pod: 16 << 20,
        }
    }
}

/// The current pods matching a filter and the version they were read at.
#[derive(Debug, Clone)]
pub struct PodList {
    pub pods: Vec<Arc<Pod>>,
    pub version: u64,
}

pub struct Store {
    state: RwLock<State>,
    changes: broadcast::Sender<Arc<Pod>>,
    config: StoreConfig,
}

struct State {
    pods: BTreeMap<PodKey, Entry>,
    /// The version of the newest change; 0 for a store that never changed.
    version: u64,
    /// The newest changes, oldest first, with contiguous versions ending at `version`.
    history: VecDeque<Arc<Pod>>,
}

struct Entry {
    pod: Arc<Pod>,
    log: Arc<PodLog>,
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        let (changes, _) = broadcast::channel(config.watch_buffer.max(1));
        Store {
            state: RwLock::new(State {
                pods: BTreeMap::new(),
                version: 0,
                history: VecDeque::new(),
            }),
            changes,
            config,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The version of the newest change.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// The pods of one namespace (or all), sorted by namespace then name.
    pub fn list(&self, namespace: Option<&str>) -> PodList {
        let state = self.read();
        PodList {
            pods: state.matching(namespace).cloned().collect(),
            version: state.version,
        }
    }

    /// Creates or replaces a pod; returns the stored pod with its new version.
    pub fn apply(&self, apply: ApplyPod) -> Result<Arc<Pod>, StoreError> {
        let mut state = self.write();
        let current = state.pods.get(&apply.key).map(|e| e.pod.resource_version);
        if let Some(expected) = apply.expected_version
            && current != Some(expected)
        {
            return Err(StoreError::Conflict {
                key: apply.key,
                expected,
                current,
            });
        }
        let version = state.version + 1;
        let pod = Arc::new(Pod {
            name: apply.key.name.clone(),
            namespace: apply.key.namespace.clone(),
            status: apply.status,
            replicas: apply.replicas,
            resource_version: version,
            deleted: false,
        });
        match state.pods.get_mut(&apply.key) {
            Some(entry) => entry.pod = Arc::clone(&pod),
            None => {
                let log = Arc::new(PodLog::new(self.config.log_bytes_per_pod));
                let entry = Entry {
                    pod: Arc::clone(&pod),
                    log,
                };
                state.pods.insert(apply.key, entry);
            }
        }
        self.publish(&mut state, Arc::clone(&pod));
        Ok(pod)
    }

    /// Deletes a pod and its logs; returns its tombstone.
    pub fn delete(&self, key: &PodKey) -> Result<Arc<Pod>, StoreError> {
        let mut state = self.write();
        let entry = state
            .pods
            .remove(key)
            .ok_or_else(|| StoreError::NotFound(key.clone()))?;
        entry.log.close();
        let tombstone = Arc::new(Pod {
            resource_version: state.version + 1,
            deleted: true,
            ..Pod::clone(&entry.pod)
        });
        self.publish(&mut state, Arc::clone(&tombstone));
        Ok(tombstone)
    }

    /// The log of an existing pod.
    pub fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.read()
            .pods
            .get(key)
            .map(|entry| Arc::clone(&entry.log))
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    /// Registers a watcher of one namespace (or all).
    ///
    /// With `from == 0` the watcher first yields every current matching pod,
    /// then every later change. With `from > 0` it yields exactly the changes
    /// after version `from`, which must lie within the retained history.
    pub fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError> {
        // The read lock keeps writers out between reading the backlog and
        // subscribing, so the watcher neither misses nor repeats a change.
        let state = self.read();
        let backlog: Vec<Arc<Pod>> = if from == 0 {
            state.matching(namespace.as_deref()).cloned().collect()
        } else {
            let oldest = state.version - state.history.len() as u64;
            if from < oldest || from > state.version {
                return Err(StoreError::VersionOutOfRange {
                    requested: from,
                    oldest,
                    current: state.version,
                });
            }
            let skip = (from - oldest) as usize;
            state
                .history
                .iter()
                .skip(skip)
                .filter(|pod| matches(namespace.as_deref(), pod))
                .cloned()
                .collect()
        };
        Ok(Watcher::new(
            namespace,
            backlog,
            from,
            state.version,
            self.changes.subscribe(),
        ))
    }

    /// How many watchers are registered (for tests and metrics).
    pub fn watcher_count(&self) -> usize {
        self.changes.receiver_count()
    }

    fn publish(&self, state: &mut State, change: Arc<Pod>) {
        state.version = change.resource_version;
        if self.config.history > 0 {
            if state.history.len() == self.config.history {
                state.history.pop_front();
            }
            state.history.push_back(Arc::clone(&change));
        }
        // An error only means that nobody is watching.
        let _ = self.changes.send(change);
    }

    // A panic while holding the lock cannot leave the state half-written
    // (every write checks first and mutates last), so a poisoned lock is
    // safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn matching<'a>(&'a self, namespace: Option<&'a str>) -> impl Iterator<Item = &'a Arc<Pod>> {
        let entries: Box<dyn Iterator<Item = (&PodKey, &Entry)>> = match namespace {
            None => Box::new(self.pods.iter()),
            Some(ns) => Box::new(
                self.pods
                    .range(PodKey::new(ns, "")..)
                    .take_while(move |(key, _)| key.namespace == ns),
            ),
        };
        entries.map(|(_, entry)| &entry.pod)
    }
}

/// Whether a change belongs to a watch of `namespace` (`None` = every namespace).
pub fn matches(namespace: Option<&str>, pod: &Pod) -> bool {
    namespace.is_none_or(|ns| pod.namespace == ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(store: &Store, ns: &str, name: &str, replicas: i32) -> Arc<Pod> {
        store
            .apply(ApplyPod {
                key: PodKey::new(ns, name),
                status: "Running".into(),
                replicas,
                expected_version: None,
            })
            .unwrap()
    }

    #[test]
    fn versions_increase_by_one_per_change() {
        let store = Store::new(StoreConfig::default());
        assert_eq!(apply(&store, "a", "x", 1).resource_version, 1);
        assert_eq!(apply(&store, "a", "x", 2).resource_version, 2);
        let gone = store.delete(&PodKey::new("a", "x")).unwrap();
        assert_eq!((gone.resource_version, gone.deleted), (3, true));
        assert_eq!(store.version(), 3);
        assert!(store.list(None).pods.is_empty());
    }

    #[test]
    fn list_is_sorted_and_filtered() {
        let store = Store::new(StoreConfig::default());
        for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("ab", "c")] {
            apply(&store, ns, name, 1);
        }
        let names = |list: PodList| {
            list.pods
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(store.list(None)), ["a/y", "ab/c", "b/a", "b/z"]);
        assert_eq!(names(store.list(Some("b"))), ["b/a", "b/z"]);
        assert_eq!(names(store.list(Some("a"))), ["a/y"]);
    }

    #[test]
    fn conflicts_change_nothing() {
        let store = Store::new(StoreConfig::default());
        apply(&store, "a", "x", 1);
        let err = store
            .apply(ApplyPod {
                key: PodKey::new("a", "x"),
                status: "Failed".into(),
                replicas: 0,
                expected_version: Some(7),
            })
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                current: Some(1),
                ..
            }
        ));
        assert_eq!(store.version(), 1);
        assert_eq!(store.list(None).pods[0].status, "Running");
    }

    #[test]
    fn watch_range_follows_the_history() {
        let store = Store::new(StoreConfig {
            history: 3,
            ..StoreConfig::default()
        });
        for replicas in 0..5 {
            apply(&store, "a", "x", replicas);
        }
        // Versions 3, 4 and 5 are retained: continuing from 2..=5 is possible.
        assert!(store.watch(None, 1).is_err());
        assert!(store.watch(None, 2).is_ok());
        assert!(store.watch(None, 5).is_ok());
        assert!(store.watch(None, 6).is_err());
    }
}
