//! The trait every store implements, and what its calls return.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::error::StoreError;
use super::pod_log::{LogLines, LogStart, PodLog};
use super::watcher::Watcher;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// A write in flight. Writes are ordered by when they are *submitted* (the
/// call that returns this), not when the future is polled, so a caller can
/// submit several and await them in order: that is how one sync session
/// pipelines its ops into shared commits.
pub type Pending<T> = BoxFuture<'static, Result<T, StoreError>>;

/// The current pods matching a filter and the version they were read at.
#[derive(Debug, Clone)]
pub struct PodList {
    /// Sorted by namespace, then name.
    pub pods: Vec<Arc<Pod>>,
    /// The store version the list reflects.
    pub version: u64,
}

/// Where a paged list goes on: the version all its pages are consistent
/// at, and the last pod it has given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    /// Which history `version` belongs to: a store whose versions restart
    /// (one in memory, restarted) must not continue a list of another life.
    pub history: u64,
    /// The version of the list's first page.
    pub version: u64,
    /// The last pod of the page before.
    pub after: PodKey,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct PodPage {
    /// Sorted by namespace, then name.
    pub pods: Vec<Arc<Pod>>,
    /// The version every page of the list reflects: the first page's.
    pub version: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ListPosition>,
}

/// Everything the service needs from a store.
///
/// Versions: every change takes a version strictly larger than every
/// earlier one. They need not be consecutive (a cluster store's revisions
/// also count writes to other keys), so nothing outside a store may compute
/// a position from a difference of versions.
pub trait PodStore: Send + Sync + 'static {
    /// The pods of one namespace (or all), sorted by namespace then name,
    /// and the version they were read at: what the store reflects now
    /// (see [`catch_up`](PodStore::catch_up)).
    fn list(&self, namespace: Option<&str>) -> PodList;

    /// At most `limit` (at least one) pods of one namespace (or all), in the
    /// order of [`list`](PodStore::list): with `from == None` the first
    /// page, at the current version; otherwise the pods after `from.after`
    /// as they were at `from.version`, so that the pages together are
    /// exactly the list at that version, whatever was written meanwhile.
    /// A store continues at least while `from.version` is within the
    /// retained history, and refuses with
    /// [`ListExpired`](StoreError::ListExpired) what it cannot continue.
    /// The first page reflects every write acknowledged before the call.
    fn list_page(
        &self,
        namespace: Option<String>,
        from: Option<ListPosition>,
        limit: usize,
    ) -> Pending<PodPage>;

    /// Resolves once what this store reflects (what [`list`](PodStore::list),
    /// [`watch`](PodStore::watch) and [`version`](PodStore::version) read)
    /// includes every write acknowledged before the call, by this server
    /// or any other sharing the store, and at least `version` if the store
    /// has reached it. An embedded store always does; a shared one
    /// follows the others' writes and may have to wait, within a bound,
    /// and then fails with [`Unavailable`](StoreError::Unavailable).
    fn catch_up(&self, version: u64) -> Pending<()> {
        let _ = version;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Registers a watcher of one namespace (or all). With `from == 0` it
    /// yields every current matching pod, then every later change; with
    /// `from > 0`, exactly the changes with versions strictly larger than
    /// `from`, which must lie within the retained history.
    fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError>;

    /// The log of an existing pod in this server: its lines where the
    /// store keeps them here, and its life in any case (see [`PodLog`]).
    fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError>;

    /// Reads the log of an existing pod from `start`, numbered: to its
    /// newest line, or with `follow` on until the pod is deleted.
    fn read_log(
        &self,
        key: &PodKey,
        start: LogStart,
        follow: bool,
    ) -> Result<LogLines, StoreError> {
        Ok(self.log(key)?.lines(start, follow))
    }

    /// Creates or replaces a pod; resolves to the stored pod with its new
    /// version once the change is durable and published.
    fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>>;

    /// Deletes a pod and its log; resolves to its tombstone once durable.
    fn delete(&self, key: PodKey) -> Pending<Arc<Pod>>;

    /// Appends lines to an existing pod's log, in order. They are visible
    /// to readers when this resolves, and durable after the next [`sync`].
    ///
    /// [`sync`]: PodStore::sync
    fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()>;

    /// Resolves once everything submitted before it is durable.
    fn sync(&self) -> Pending<()>;

    /// Resolves once everything submitted before it is done and the store
    /// has let go of what it holds outside this process's memory (a durable
    /// store closes its database, so its directory can be opened again).
    /// Writes submitted after it are refused (a second close too); reads go on.
    fn close(&self) -> Pending<()>;

    /// The version of the newest change.
    fn version(&self) -> u64;

    /// How many watchers are registered (for tests and metrics).
    fn watcher_count(&self) -> usize;
}
