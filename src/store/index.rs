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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use super::config::StoreConfig;
use super::error::StoreError;
use super::pod_log::PodLog;
use super::pod_store::PodList;
use super::watcher::{Watcher, matches};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// See the module docs.
pub(super) struct Index {
    state: RwLock<State>,
    changes: broadcast::Sender<Arc<Pod>>,
    config: StoreConfig,
}

struct State {
    pods: BTreeMap<PodKey, Entry>,
    /// The version of the newest change; 0 for a store that never changed.
    version: u64,
    /// The newest changes, oldest first, ending at `version`.
    history: VecDeque<Arc<Pod>>,
    /// The oldest version a watch can continue from: that of the newest
    /// change no longer in `history` (0 while nothing was dropped). Kept,
    /// not computed from `history`, so that versions need not be consecutive.
    continues_from: u64,
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
        let (changes, _) = broadcast::channel(config.watch_buffer.max(1));
        let pods = pods
            .into_iter()
            .map(|pod| {
                let entry = Entry {
                    log: Arc::new(PodLog::new(config.log_bytes_per_pod)),
                    pod: Arc::new(pod),
                };
                (PodKey::of(&entry.pod), entry)
            })
            .collect();
        Index {
            state: RwLock::new(State {
                pods,
                version,
                history: history.into_iter().map(Arc::new).collect(),
                continues_from,
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

    /// See [`super::pod_store::PodStore::list`].
    pub fn list(&self, namespace: Option<&str>) -> PodList {
        let state = self.read();
        PodList {
            pods: state.matching(namespace).cloned().collect(),
            version: state.version,
        }
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
                .partition_point(|pod| pod.resource_version <= from);
            state
                .history
                .range(after..)
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

    /// How many watchers are registered.
    pub fn watcher_count(&self) -> usize {
        self.changes.receiver_count()
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
    }

    fn publish_change(&self, state: &mut State, change: Arc<Pod>) {
        let key = PodKey::of(&change);
        if change.deleted {
            if let Some(entry) = state.pods.remove(&key) {
                entry.log.close();
            }
        } else if let Some(entry) = state.pods.get_mut(&key) {
            entry.pod = Arc::clone(&change);
        } else {
            let entry = Entry {
                pod: Arc::clone(&change),
                log: Arc::new(PodLog::new(self.config.log_bytes_per_pod)),
            };
            state.pods.insert(key, entry);
        }
        state.version = change.resource_version;
        state.history.push_back(Arc::clone(&change));
        while state.history.len() > self.config.history {
            if let Some(dropped) = state.history.pop_front() {
                state.continues_from = dropped.resource_version;
            }
        }
        // An error only means that nobody is watching.
        let _ = self.changes.send(change);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(index: &Index, ns: &str, name: &str, replicas: i32) -> Arc<Pod> {
        let mut batch = index.batch();
        let pod = index
            .plan_apply(
                &mut batch,
                ApplyPod {
                    key: PodKey::new(ns, name),
                    status: "Running".into(),
                    replicas,
                    expected_version: None,
                },
            )
            .unwrap();
        index.publish(batch);
        pod
    }

    #[test]
    fn versions_increase_by_one_per_change() {
        let index = Index::new(StoreConfig::default());
        assert_eq!(apply(&index, "a", "x", 1).resource_version, 1);
        assert_eq!(apply(&index, "a", "x", 2).resource_version, 2);
        let mut batch = index.batch();
        let gone = index
            .plan_delete(&mut batch, PodKey::new("a", "x"))
            .unwrap();
        index.publish(batch);
        assert_eq!((gone.resource_version, gone.deleted), (3, true));
        assert_eq!(index.version(), 3);
        assert!(index.list(None).pods.is_empty());
    }

    #[test]
    fn a_batch_sees_its_own_changes_and_nothing_before_publishing() {
        let index = Index::new(StoreConfig::default());
        let mut batch = index.batch();
        let key = PodKey::new("a", "x");
        let created = index
            .plan_apply(
                &mut batch,
                ApplyPod {
                    key: key.clone(),
                    status: "Running".into(),
                    replicas: 1,
                    expected_version: None,
                },
            )
            .unwrap();
        let updated = index.plan_apply(
            &mut batch,
            ApplyPod {
                key: key.clone(),
                status: "Running".into(),
                replicas: 2,
                expected_version: Some(created.resource_version),
            },
        );
        assert_eq!(updated.unwrap().resource_version, 2);
        index
            .plan_append(&mut batch, key.clone(), vec!["hello".into()])
            .unwrap();
        assert!(index.list(None).pods.is_empty(), "not published yet");
        assert!(index.log(&key).is_err());

        index.publish(batch);
        assert_eq!(index.list(None).pods[0].replicas, 2);
        assert_eq!(index.log(&key).unwrap().end_cursor(), 1);
    }

    #[test]
    fn list_is_sorted_and_filtered() {
        let index = Index::new(StoreConfig::default());
        for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("ab", "c")] {
            apply(&index, ns, name, 1);
        }
        let names = |list: PodList| {
            list.pods
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(index.list(None)), ["a/y", "ab/c", "b/a", "b/z"]);
        assert_eq!(names(index.list(Some("b"))), ["b/a", "b/z"]);
        assert_eq!(names(index.list(Some("a"))), ["a/y"]);
    }

    #[test]
    fn conflicts_change_nothing() {
        let index = Index::new(StoreConfig::default());
        apply(&index, "a", "x", 1);
        let mut batch = index.batch();
        let err = index
            .plan_apply(
                &mut batch,
                ApplyPod {
                    key: PodKey::new("a", "x"),
                    status: "Failed".into(),
                    replicas: 0,
                    expected_version: Some(7),
                },
            )
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Conflict {
                current: Some(1),
                ..
            }
        ));
        assert!(batch.is_empty());
    }

    #[test]
    fn watch_range_follows_the_history() {
        let index = Index::new(StoreConfig {
            history: 3,
            ..StoreConfig::default()
        });
        for replicas in 0..5 {
            apply(&index, "a", "x", replicas);
        }
        // Versions 3, 4 and 5 are retained: continuing from 2..=5 is possible.
        assert!(index.watch(None, 1).is_err());
        assert!(index.watch(None, 2).is_ok());
        assert!(index.watch(None, 5).is_ok());
        assert!(index.watch(None, 6).is_err());
    }

    #[test]
    fn a_history_with_gaps_between_versions_resumes_by_version() {
        // As a cluster store's would be: versions increase, with gaps.
        let change = |name: &str, version: u64| Pod {
            name: name.into(),
            namespace: "a".into(),
            status: "Running".into(),
            replicas: 1,
            resource_version: version,
            deleted: false,
        };
        let index = Index::restore(
            StoreConfig::default(),
            Restored {
                pods: vec![change("x", 10), change("y", 14), change("z", 20)],
                version: 20,
                history: vec![change("x", 10), change("y", 14), change("z", 20)],
                continues_from: 7,
            },
        );
        let backlog = |from: u64| -> Vec<u64> {
            let mut watcher = index.watch(None, from).unwrap();
            std::iter::from_fn(|| watcher.try_next_up_to(u64::MAX))
                .map(|pod| pod.unwrap().resource_version)
                .collect()
        };
        assert_eq!(backlog(7), [10, 14, 20]);
        assert_eq!(backlog(12), [14, 20]);
        assert_eq!(backlog(14), [20]);
        assert_eq!(backlog(20), Vec::<u64>::new());
        assert!(index.watch(None, 6).is_err());
        assert!(index.watch(None, 21).is_err());
    }
}
