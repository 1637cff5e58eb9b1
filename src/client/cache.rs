//! What a watching client knows: the pods it has seen, each change named
//! after what was known before (like `kubectl get pods -w
//! --output-watch-events`), and the difference a fresh list makes.
//!
//! Both long-running clients keep one: `watch-pods` ([`PodWatch`]) and a
//! subscribed `sync-pods` session. After a resume they report each change
//! once; after a re-list, only what changed while they were away.
//!
//! [`PodWatch`]: super::watch::PodWatch

use std::collections::BTreeMap;
use std::fmt;

use crate::contract::Pod;

/// What happened to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A pod not known before.
    Added,
    /// A known pod at a new version.
    Modified,
    /// A pod deleted (or gone from a fresh list).
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

/// A change to report.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    /// What happened.
    pub kind: EventKind,
    /// The pod as it is now (for `Deleted`, its tombstone).
    pub pod: Pod,
}

/// The pods a client knows, by namespace and name.
#[derive(Debug, Default)]
pub struct PodCache {
    pods: BTreeMap<(String, String), Pod>,
}

impl PodCache {
    /// The pods known, sorted by namespace then name.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// Records one pod or tombstone from a stream; returns the event it
    /// makes, or `None` for a pod already known at this version.
    pub fn observe(&mut self, pod: Pod) -> Option<PodEvent> {
        let key = (pod.namespace.clone(), pod.name.clone());
        if pod.deleted {
            self.pods.remove(&key);
            return Some(PodEvent {
                kind: EventKind::Deleted,
                pod,
            });
        }
        let kind = self.kind_of(&key, &pod)?;
        self.pods.insert(key, pod.clone());
        Some(PodEvent { kind, pod })
    }

    /// Replaces what is known with a fresh list read at `version`; returns
    /// the differences: a tombstone at `version` for each pod gone, then
    /// each pod new or changed.
    pub fn replace(&mut self, pods: Vec<Pod>, version: u64) -> Vec<PodEvent> {
        let fresh: BTreeMap<(String, String), Pod> = pods
            .into_iter()
            .map(|pod| ((pod.namespace.clone(), pod.name.clone()), pod))
            .collect();
        let mut events: Vec<PodEvent> = self
            .pods
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
        self.pods = fresh;
        events
    }

    /// How a live pod differs from what is known: new, changed, or (`None`) known.
    fn kind_of(&self, key: &(String, String), pod: &Pod) -> Option<EventKind> {
        match self.pods.get(key) {
            None => Some(EventKind::Added),
            Some(known) if known.resource_version == pod.resource_version => None,
            Some(_) => Some(EventKind::Modified),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, version: u64) -> Pod {
        Pod {
            name: name.into(),
            namespace: "a".into(),
            status: "Running".into(),
            replicas: 1,
            resource_version: version,
            deleted: false,
            bookmark: false,
        }
    }

    #[test]
    fn names_each_change_after_what_was_known() {
        let mut cache = PodCache::default();
        let kind = |event: Option<PodEvent>| event.map(|e| e.kind);
        assert_eq!(kind(cache.observe(pod("x", 1))), Some(EventKind::Added));
        assert_eq!(kind(cache.observe(pod("x", 1))), None);
        assert_eq!(kind(cache.observe(pod("x", 2))), Some(EventKind::Modified));
        let tombstone = Pod {
            deleted: true,
            ..pod("x", 3)
        };
        assert_eq!(kind(cache.observe(tombstone)), Some(EventKind::Deleted));
        assert_eq!(cache.pods().count(), 0);
    }

    #[test]
    fn a_fresh_list_reports_only_the_difference() {
        let mut cache = PodCache::default();
        cache.replace(vec![pod("kept", 1), pod("changed", 2), pod("gone", 3)], 3);
        let events = cache.replace(vec![pod("kept", 1), pod("changed", 5), pod("new", 6)], 9);
        let summary: Vec<(EventKind, &str, u64)> = events
            .iter()
            .map(|e| (e.kind, e.pod.name.as_str(), e.pod.resource_version))
            .collect();
        assert_eq!(
            summary,
            [
                (EventKind::Deleted, "gone", 9),
                (EventKind::Modified, "changed", 5),
                (EventKind::Added, "new", 6),
            ]
        );
    }
}
