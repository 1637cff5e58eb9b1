//! The in-memory index every store keeps: the current pods, the store-wide
//! version, the bounded change history, each pod's log, and the broadcast
//! channel that publishes changes to watchers.
//!
//! Writes happen in two steps. A store *plans* operations into a [`Batch`]
//! against the published state (each op sees the ops planned before it in
//! the batch), makes the batch durable if it needs to, and then
//! [`Index::publish`]es it. Publishing takes the write lock once and, for
//! each change in order, updates the pods, records it in the history and
//! sends it to watchers. So readers and watchers only ever see durable
//! changes, the history and the channel carry changes in strictly
//! increasing version order, and a watcher that registers under
//! the same lock (see [`Index::watch`]) sees exactly the changes after the
//! version it registered at.
//!
//! Stored pods are immutable `Arc<Pod>`s shared by the map, the history and
//! every watcher, so a change is allocated once however many watch it.
//!
//! Each change in the history also keeps the pod as it was just before, so
//! the history doubles as an undo log: the pods as they were at any version
//! it can continue from are the current pods with every later change undone
//! (see [`Index::list_page`]). That is how a paged list stays consistent at
//! its first page's version without copying anything per list: a held list
//! costs nothing but its position, and the history it relies on is the one
//! watchers already keep (bounded by `--history`), as etcd's MVCC keeps
//! revisions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{broadcast, watch};

use super::config::StoreConfig;
use super::error::StoreError;
use super::pod_log::PodLog;
use super::pod_store::{ListPosition, PodList, PodPage};
use super::watcher::{Watcher, matches};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// See the module docs.
pub(super) struct Index {
    state: RwLock<State>,
    /// The version the index reflects, for those who wait for one (see
    /// [`Index::reached`]).
    versions: watch::Sender<u64>,
    config: StoreConfig,
    /// Tells this life of the index from any other (see [`ListPosition`]).
    history_id: u64,
}

struct State {
    pods: BTreeMap<PodKey, Entry>,
    /// Publishes changes to watchers. Kept under the lock so that a reset
    /// (see [`Index::reset`]) ends every watcher of the state it replaces.
    changes: broadcast::Sender<Arc<Pod>>,
    /// Set when a reset ends `changes`, so that its watchers can tell a
    /// start-over from a shutdown.
    started_over: Arc<OnceLock<u64>>,
    /// The version of the newest change; 0 for a store that never changed.
    version: u64,
    /// The newest changes, oldest first, ending at `version`.
    history: VecDeque<Change>,
    /// The oldest version a watch can continue from: that of the newest
    /// change no longer in `history` (0 while nothing was dropped). Kept,
    /// not computed from `history`, so that versions need not be consecutive.
    continues_from: u64,
    /// The oldest version a list can continue at: also no older than the
    /// version restored from disk, since the restored history does not say
    /// what each change replaced.
    undoes_from: u64,
}

/// A change in the history, with what it replaced.
struct Change {
    /// The pod (or tombstone) as changed.
    pod: Arc<Pod>,
    /// The pod just before; `None` if the change created it, or if it was
    /// restored from disk (see `State::undoes_from`).
    before: Option<Arc<Pod>>,
}

struct Entry {
    pod: Arc<Pod>,
    log: Arc<PodLog>,
}

/// Operations planned against the published state, to be published together.
#[derive(Default)]
pub(super) struct Batch {
    /// The version the batch has reached.
    version: u64,
    /// The state of each pod the batch touched (`None`: deleted).
    touched: HashMap<PodKey, Option<Arc<Pod>>>,
    steps: Vec<Step>,
}

/// One planned operation.
pub(super) enum Step {
    /// A pod (or tombstone) with its new version.
    Change(Arc<Pod>),
    /// Lines for the log of an existing pod.
    Append(PodKey, Vec<String>),
}

impl Batch {
    /// A batch of changes that were made elsewhere and already carry their
    /// versions (newer than the index's, in increasing order): what a
    /// store that follows another's change feed publishes.
    pub fn observed(changes: impl IntoIterator<Item = Arc<Pod>>) -> Self {
        let steps: Vec<Step> = changes.into_iter().map(Step::Change).collect();
        Batch {
            version: 0,
            touched: HashMap::new(),
            steps,
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What a store loaded from disk, to restore an index from.
#[derive(Default)]
pub(super) struct Restored {
    /// The current pods.
    pub pods: Vec<Pod>,
    /// The version of the newest change.
    pub version: u64,
    /// The retained changes, oldest first, ending at `version`.
    pub history: Vec<Pod>,
    /// The oldest version a watch can continue from.
    pub continues_from: u64,
}

impl Index {
    pub fn new(config: StoreConfig) -> Self {
        Self::restore(config, Restored::default())
    }

    /// An index holding what a store loaded from disk.
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
        Index {
            state: RwLock::new(State {
                pods,
                changes: broadcast::channel(config.watch_buffer.max(1)).0,
                started_over: Arc::default(),
                version,
                history,
                continues_from,
                undoes_from: version,
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

    /// See [`super::pod_store::PodStore::list`].
    pub fn list(&self, namespace: Option<&str>) -> PodList {
        let state = self.read();
        PodList {
            pods: state.matching(namespace).cloned().collect(),
            version: state.version,
        }
    }

    /// See [`super::pod_store::PodStore::list_page`].
    pub fn list_page(
        &self,
        namespace: Option<&str>,
        from: Option<&ListPosition>,
        limit: usize,
    ) -> Result<PodPage, StoreError> {
        let state = self.read();
        let (version, after) = match from {
            None => (state.version, None),
            Some(from) => {
                state.check_continuable(from, self.history_id)?;
                (from.version, Some(&from.after))
            }
        };
        let range = PageRange { namespace, after };
        // One more than asked for tells whether a next page exists.
        let mut pods: Vec<Arc<Pod>> = state
            .pods_at(version, range)
            .take(limit.max(1) + 1)
            .cloned()
            .collect();
        let next = if pods.len() > limit.max(1) {
            pods.pop();
            pods.last().map(|last| ListPosition {
                history: self.history_id,
                version,
                after: PodKey::of(last),
            })
        } else {
            None
        };
        Ok(PodPage {
            pods,
            version,
            next,
        })
    }

    /// See [`super::pod_store::PodStore::log`].
    pub fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.read()
            .pods
            .get(key)
            .map(|entry| Arc::clone(&entry.log))
            .ok_or_else(|| StoreError::NotFound(key.clone()))
    }

    /// See [`super::pod_store::PodStore::watch`].
    pub fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError> {
        // The read lock keeps publishers out between reading the backlog and
        // subscribing, so the watcher neither misses nor repeats a change.
        let state = self.read();
        let backlog: Vec<Arc<Pod>> = if from == 0 {
            state.matching(namespace.as_deref()).cloned().collect()
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
                .filter(|pod| matches(namespace.as_deref(), pod))
                .cloned()
                .collect()
        };
        Ok(Watcher::new(
            namespace,
            backlog,
            from,
            state.version,
            state.changes.subscribe(),
            Arc::clone(&state.started_over),
        ))
    }

    /// How many watchers are registered.
    pub fn watcher_count(&self) -> usize {
        self.read().changes.receiver_count()
    }

    /// Resolves once the index reflects `version` (see [`Index::observe`]).
    pub fn reached(&self, version: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut versions = self.versions.subscribe();
        async move {
            // The sender lives as long as the index; if it is gone, so is
            // whoever waited.
            let _ = versions.wait_for(|reached| *reached >= version).await;
        }
    }

    /// Records that the index reflects the store at `version` although no
    /// change carries it: a store whose versions also count writes to
    /// other data (etcd's revisions) learns so from a quorum read. Later
    /// changes must be newer.
    pub fn observe(&self, version: u64) {
        let mut state = self.write();
        if version > state.version {
            state.version = version;
            self.versions.send_replace(version);
        }
    }

    /// Forgets the changes up to `version`: a store whose history was cut
    /// there (etcd compacted) refuses to resume from before it, as it does.
    pub fn forget_through(&self, version: u64) {
        let mut state = self.write();
        let cut = state
            .history
            .partition_point(|change| change.pod.resource_version <= version);
        state.history.drain(..cut);
        let version = version.min(state.version);
        state.continues_from = state.continues_from.max(version);
        state.undoes_from = state.undoes_from.max(version);
    }

    /// Starts over from `pods` at `version`, with an empty history, for a
    /// store that lost its place in the feed it follows. Every watcher of
    /// the state before ends (as [`WatchEnd::StartedOver`](super::WatchEnd)),
    /// to resume from its last version, which the new history cannot
    /// continue: its client lists again. Each pod comes with the version
    /// that created it.
    pub fn reset(&self, pods: Vec<(Pod, u64)>, version: u64) {
        let mut state = self.write();
        let logs: HashMap<PodKey, Arc<PodLog>> = std::mem::take(&mut state.pods)
            .into_iter()
            .map(|(key, entry)| (key, entry.log))
            .collect();
        state.pods = pods
            .into_iter()
            .map(|(pod, created)| {
                let key = PodKey::of(&pod);
                // A pod that is still there, in the same life, keeps its log.
                let log = logs
                    .get(&key)
                    .filter(|log| log.created() == created)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(PodLog::new(self.config.log_bytes_per_pod, created))
                    });
                (
                    key,
                    Entry {
                        pod: Arc::new(pod),
                        log,
                    },
                )
            })
            .collect();
        for (key, log) in &logs {
            let kept = state
                .pods
                .get(key)
                .is_some_and(|entry| Arc::ptr_eq(&entry.log, log));
            if !kept {
                log.close();
            }
        }
        state.history.clear();
        state.version = state.version.max(version);
        let _ = state.started_over.set(state.version);
        state.changes = broadcast::channel(self.config.watch_buffer.max(1)).0;
        state.started_over = Arc::default();
        state.continues_from = state.version;
        state.undoes_from = state.version;
        self.versions.send_replace(state.version);
    }

    /// An empty batch that continues from the published version.
    pub fn batch(&self) -> Batch {
        Batch {
            version: self.version(),
            ..Batch::default()
        }
    }

    /// Plans a create or update; returns the pod as it will be stored.
    pub fn plan_apply(&self, batch: &mut Batch, apply: ApplyPod) -> Result<Arc<Pod>, StoreError> {
        let current = self
            .current(batch, &apply.key)
            .map(|pod| pod.resource_version);
        if let Some(expected) = apply.expected_version
            && current != Some(expected)
        {
            return Err(StoreError::Conflict {
                key: apply.key,
                expected,
                current,
            });
        }
        batch.version += 1;
        let pod = Arc::new(Pod {
            name: apply.key.name.clone(),
            namespace: apply.key.namespace.clone(),
            status: apply.status,
            replicas: apply.replicas,
            resource_version: batch.version,
            deleted: false,
            bookmark: false,
        });
        batch.touched.insert(apply.key, Some(Arc::clone(&pod)));
        batch.steps.push(Step::Change(Arc::clone(&pod)));
        Ok(pod)
    }

    /// Plans a delete; returns the tombstone.
    pub fn plan_delete(&self, batch: &mut Batch, key: PodKey) -> Result<Arc<Pod>, StoreError> {
        let pod = self
            .current(batch, &key)
            .ok_or_else(|| StoreError::NotFound(key.clone()))?;
        batch.version += 1;
        let tombstone = Arc::new(Pod {
            resource_version: batch.version,
            deleted: true,
            ..Pod::clone(&pod)
        });
        batch.touched.insert(key, None);
        batch.steps.push(Step::Change(Arc::clone(&tombstone)));
        Ok(tombstone)
    }

    /// Plans an append to an existing pod's log.
    pub fn plan_append(
        &self,
        batch: &mut Batch,
        key: PodKey,
        lines: Vec<String>,
    ) -> Result<(), StoreError> {
        if self.current(batch, &key).is_none() {
            return Err(StoreError::NotFound(key));
        }
        batch.steps.push(Step::Append(key, lines));
        Ok(())
    }

    /// Makes a batch visible: to readers, to the history and to watchers.
    pub fn publish(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let mut state = self.write();
        let before = state.version;
        for step in batch.steps {
            match step {
                Step::Change(change) => self.publish_change(&mut state, change),
                Step::Append(key, lines) => {
                    if let Some(entry) = state.pods.get(&key) {
                        entry.log.append(lines);
                    }
                }
            }
        }
        if state.version != before {
            self.versions.send_replace(state.version);
        }
    }

    fn publish_change(&self, state: &mut State, change: Arc<Pod>) {
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
        while state.history.len() > self.config.history {
            if let Some(dropped) = state.history.pop_front() {
                state.continues_from = dropped.pod.resource_version;
            }
        }
        // An error only means that nobody is watching.
        let _ = state.changes.send(change);
    }

    /// A pod as the batch sees it: its own changes first, then the published state.
    fn current(&self, batch: &Batch, key: &PodKey) -> Option<Arc<Pod>> {
        match batch.touched.get(key) {
            Some(touched) => touched.clone(),
            None => self
                .read()
                .pods
                .get(key)
                .map(|entry| Arc::clone(&entry.pod)),
        }
    }

    // A panic while holding the lock cannot leave the state half-written
    // (publishing only inserts and removes whole entries), so a poisoned
    // lock is safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which pods a page may hold: those of a namespace (or all) after a key.
#[derive(Clone, Copy)]
struct PageRange<'a> {
    namespace: Option<&'a str>,
    after: Option<&'a PodKey>,
}

impl PageRange<'_> {
    fn holds(&self, namespace: &str, name: &str) -> bool {
        self.namespace.is_none_or(|ns| ns == namespace)
            && self.after.is_none_or(|after| {
                (namespace, name) > (after.namespace.as_str(), after.name.as_str())
            })
    }
}

impl State {
    fn check_continuable(&self, from: &ListPosition, history_id: u64) -> Result<(), StoreError> {
        let expired = |oldest| StoreError::ListExpired {
            version: from.version,
            oldest,
        };
        // A version from the future can only come from another life.
        if from.history != history_id || from.version > self.version {
            return Err(expired(None));
        }
        let oldest = self.continues_from.max(self.undoes_from);
        if from.version < oldest {
            return Err(expired(Some(oldest)));
        }
        Ok(())
    }

    /// The pods in `range` as they were at `version`, in key order: the
    /// current pods, with each pod changed since taken from before its
    /// first change after `version` (and left out if that created it).
    /// Costs the changes since `version`, plus the pods taken.
    fn pods_at<'a>(
        &'a self,
        version: u64,
        range: PageRange<'a>,
    ) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
        let since = self
            .history
            .partition_point(|change| change.pod.resource_version <= version);
        let mut undone: BTreeMap<(&str, &str), Option<&Arc<Pod>>> = BTreeMap::new();
        for change in self.history.range(since..) {
            let key = (change.pod.namespace.as_str(), change.pod.name.as_str());
            if range.holds(key.0, key.1) {
                undone.entry(key).or_insert(change.before.as_ref());
            }
        }
        let start = match (range.namespace, range.after) {
            (_, Some(after)) => Bound::Excluded(after.clone()),
            (Some(ns), None) => Bound::Included(PodKey::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let current = self
            .pods
            .range((start, Bound::Unbounded))
            .skip_while(move |(key, _)| range.namespace.is_some_and(|ns| *key.namespace < *ns))
            .take_while(move |(key, _)| range.namespace.is_none_or(|ns| key.namespace == ns))
            .map(|(key, entry)| ((key.namespace.as_str(), key.name.as_str()), &entry.pod));
        merge_undone(current, undone)
    }

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

/// Merges the current pods with the undone ones (both in key order): an
/// undone key gives its pod as it was, or nothing; any other, the current pod.
fn merge_undone<'a>(
    current: impl Iterator<Item = ((&'a str, &'a str), &'a Arc<Pod>)>,
    undone: BTreeMap<(&'a str, &'a str), Option<&'a Arc<Pod>>>,
) -> impl Iterator<Item = &'a Arc<Pod>> {
    let mut current = current.peekable();
    let mut undone = undone.into_iter().peekable();
    std::iter::from_fn(move || {
        loop {
            let next_current = current.peek().map(|(key, _)| *key);
            let next_undone = undone.peek().map(|(key, _)| *key);
            let (take_current, take_undone) = match (next_current, next_undone) {
                (None, None) => return None,
                (Some(_), None) => (true, false),
                (None, Some(_)) => (false, true),
                (Some(c), Some(u)) => (c <= u, u <= c),
            };
            let now = if take_current { current.next() } else { None };
            if take_undone {
                // The pod as it was wins over the pod as it is.
                match undone.next() {
                    Some((_, Some(then))) => return Some(then),
                    _ => continue,
                }
            }
            if let Some((_, pod)) = now {
                return Some(pod);
            }
        }
    })
}

#[cfg(test)]
mod tests;
