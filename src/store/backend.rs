//! The two narrow seams under the [`Registry`](super::Registry): where a
//! pod's writes become durable ([`PodBackend`]), and where its log lines
//! are kept ([`LogBackend`]). Everything every backend shares (reads,
//! watches, the freshness rule, fan-out) lives in the registry and its
//! watch cache, not here: a new backend is one more implementation of
//! these traits, as a new kube-apiserver storage is one more
//! `storage.Interface` under the same `Cacher`.
//!
//! A backend makes its changes visible through the cache it was given when
//! it was opened: an embedded one publishes the batches it committed, a
//! cluster one what it observed ([`Observed`](super::cache::Observed)).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::error::StoreError;
use super::list::{ListPosition, PodPage};
use super::order::WriteOrder;
use super::pod_log::{LogLines, LogStart, PodLog};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// A write in flight. Writes of one [`WriteOrder`] take effect in the
/// order they were *submitted* (the call that returns this), not the order
/// the futures are polled, so a caller can submit several and await them
/// in order: that is how one sync session pipelines its ops into shared
/// commits.
pub type Pending<T> = BoxFuture<'static, Result<T, StoreError>>;

/// Where pods are written and kept: in memory, in the redb file, in etcd.
///
/// Versions: every change takes a version strictly larger than every
/// earlier one. They need not be consecutive (a cluster store's revisions
/// also count writes to other keys), so nothing outside a backend may
/// compute a position from a difference of versions.
pub trait PodBackend: Send + Sync + 'static {
    /// Creates or replaces a pod, after the writes submitted before it
    /// with `order`; resolves to the stored pod with its new version once
    /// the change is durable and in the registry's cache.
    fn apply(&self, apply: ApplyPod, order: &mut WriteOrder) -> Pending<Arc<Pod>>;

    /// Deletes a pod, after the writes submitted before it with `order`;
    /// resolves to its tombstone once durable and cached.
    fn delete(&self, key: PodKey, order: &mut WriteOrder) -> Pending<Arc<Pod>>;

    /// Resolves once the cache includes every write acknowledged before
    /// the call, by this server or any other sharing the store, and at
    /// least `version` if the store has reached it. An embedded backend's
    /// cache always does; a shared one's follows the others' writes and
    /// may have to wait, within a bound, and then fails with
    /// [`Unavailable`](StoreError::Unavailable).
    fn fresh(&self, version: u64) -> Pending<()> {
        let _ = version;
        Box::pin(std::future::ready(Ok(())))
    }

    /// The next page of a list, read from the store itself, for a backend
    /// that keeps a history of its own: it continues a list on every
    /// server for as long as it keeps the list's version, which a cache
    /// cannot promise (it may have started later, or over), as
    /// kube-apiserver hands continued lists to etcd. `None`: the store's
    /// history is the cache's, which continues the list.
    fn list_page(
        &self,
        namespace: Option<&str>,
        from: &ListPosition,
        limit: usize,
    ) -> Option<Pending<PodPage>> {
        let _ = (namespace, from, limit);
        None
    }

    /// Cuts the store's own history down to the newest `--history`
    /// versions now, if it keeps more than the cache (etcd keeps every
    /// revision until compacted); the version it cut at, if it did.
    fn compact(&self) -> Pending<Option<u64>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Resolves once everything submitted before it is done and the
    /// backend has let go of what it holds outside this process's memory
    /// (a durable store closes its database, so its directory can be
    /// opened again). Writes submitted after it are refused (a second
    /// close too).
    fn close(&self) -> Pending<()>;
}

/// Where log lines are kept: in each pod's [`PodLog`] in memory, as redb
/// chunks, on NATS JetStream. The registry finds the pod's life in its
/// cache and hands it over, so that a backend never reads pods.
pub trait LogBackend: Send + Sync + 'static {
    /// Appends lines to the log of an existing pod (`life`), in order.
    /// They are visible to readers when this resolves, and durable after
    /// the next [`sync`](LogBackend::sync).
    fn append(&self, key: PodKey, life: Arc<PodLog>, lines: Vec<String>) -> Pending<()>;

    /// Reads a pod's log from `start`, numbered: to its newest line, or
    /// with `follow` on until the pod is deleted (its life closes).
    fn read(
        &self,
        key: &PodKey,
        life: Arc<PodLog>,
        start: LogStart,
        follow: bool,
    ) -> Result<LogLines, StoreError> {
        let _ = key;
        Ok(life.lines(start, follow))
    }

    /// A pod this server deleted is gone, with its life: its lines may be
    /// let go of. (A log kept in the life goes with it.)
    fn deleted(&self, tombstone: &Pod, life: &PodLog) -> BoxFuture<'static, ()> {
        let _ = (tombstone, life);
        Box::pin(std::future::ready(()))
    }

    /// Resolves once every line appended before it is durable.
    fn sync(&self) -> Pending<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Resolves once nothing an acknowledged line needs is left buffered.
    fn close(&self) -> Pending<()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Logs kept in each pod's life, in this server's memory: lost when the
/// server stops (the in-memory store), or per server (the etcd store
/// without NATS).
pub struct MemoryLogs;

impl LogBackend for MemoryLogs {
    fn append(&self, _key: PodKey, life: Arc<PodLog>, lines: Vec<String>) -> Pending<()> {
        life.append(lines);
        Box::pin(std::future::ready(Ok(())))
    }
}
