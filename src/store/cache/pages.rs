//! Paged lists from the cache: the pods of a namespace as they were at a
//! version, page by page, whatever was written meanwhile.
//!
//! The pods as they were at any version the history can continue from are
//! the current pods with every later change undone. So a held list costs
//! nothing but its position, and the history it relies on is the one
//! watchers already keep (bounded by `--history`), as etcd's MVCC keeps
//! revisions. A list the cache cannot continue is refused with
//! [`ListExpired`](StoreError::ListExpired). (On etcd, continued lists go
//! to etcd instead: see [`PodBackend::list_page`].)
//!
//! [`PodBackend::list_page`]: crate::store::PodBackend::list_page

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::state::{State, WatchCache};
use crate::contract::Pod;
use crate::domain::PodKey;
use crate::store::error::StoreError;
use crate::store::list::{ListPosition, PodPage};

impl WatchCache {
    /// At most `limit` (at least one) pods of one namespace (or all), in
    /// key order: with `from == None` the first page, at the current
    /// version; otherwise the pods after `from.after` as they were at
    /// `from.version`.
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
