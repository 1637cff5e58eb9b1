//! The [`Registry`]: the one type the server talks to. It owns the watch
//! cache and everything every backend shares, and sits over two narrow
//! backends, as kube-apiserver's `Cacher` sits over `storage.Interface`:
//!
//! - **reads** come from the cache, and only through [`Fresh`], which the
//!   registry hands out once the cache reflects every write acknowledged
//!   before the read began, on any server sharing the store (the backend
//!   says how long that takes: nothing on an embedded store, a bounded wait
//!   on etcd). A handler cannot read without it, so it cannot forget it;
//! - **paged lists** begin in the cache, fresh; they continue in the cache
//!   too, unless the pod backend keeps a history of its own, which then
//!   serves the continued pages on any server for as long as it keeps the
//!   list's version (etcd does, until it compacts it), as kube-apiserver's
//!   `Cacher` hands continued lists to etcd;
//! - **writes** go to the pod backend once, which makes them durable and
//!   puts them in the cache; the cache fans them out to every watcher from
//!   one place;
//! - **logs** go to the log backend, with the pod's life found in the
//!   cache; a pod deleted here has its log let go of;
//! - **closing** closes both.
//!
//! [`Registry::open`] is the one way to choose and open the backends (a
//! [`Storage`]) and give a new registry its starting pods.

use std::sync::Arc;

use futures::FutureExt;

use super::backend::{LogBackend, MemoryLogs, Pending, PodBackend};
use super::cache::WatchCache;
use super::config::StoreConfig;
use super::durable::DurableStore;
use super::error::StoreError;
use super::etcd::EtcdStore;
use super::list::{ListPosition, PodList, PodPage};
use super::memory::MemoryStore;
use super::nats::JetStreamLogs;
use super::order::WriteOrder;
use super::pod_log::{LogLines, LogStart, PodLog};
use super::storage::{OpenError, Storage};
use super::watcher::Watcher;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey, PodSelector};

/// A registry just opened.
pub struct Opened {
    /// The registry, ready to serve: a shared one has caught up with its
    /// store.
    pub registry: Registry,
    /// How many starting pods were loaded into it: `None` when it was not
    /// new (or, on etcd, another server loaded them).
    pub seeded: Option<usize>,
}

/// See the module docs.
pub struct Registry {
    cache: Arc<WatchCache>,
    pods: Arc<dyn PodBackend>,
    logs: Arc<dyn LogBackend>,
}

/// The registry's cache once it is fresh: what it reads reflects every
/// write acknowledged before [`Registry::fresh`] was called. Read at once;
/// held, it grows stale again.
pub struct Fresh<'a> {
    registry: &'a Registry,
}

impl Registry {
    pub(super) fn new(
        cache: Arc<WatchCache>,
        pods: Arc<dyn PodBackend>,
        logs: Arc<dyn LogBackend>,
    ) -> Self {
        Registry { cache, pods, logs }
    }

    /// Waits until the cache reflects every write acknowledged before this
    /// call, by this server or any other sharing the store, and `version`
    /// if the store has reached it; then reads through the [`Fresh`] view.
    /// Fails with [`Unavailable`](StoreError::Unavailable) when a shared
    /// store cannot be caught up with in time.
    pub async fn fresh(&self, version: u64) -> Result<Fresh<'_>, StoreError> {
        self.pods.fresh(version).await?;
        Ok(Fresh { registry: self })
    }

    /// At most `limit` (at least one) pods of one namespace (or all), in
    /// the order of [`Fresh::list`]: with `from == None` the first page,
    /// at the current version; otherwise the pods after `from.after` as
    /// they were at `from.version`, so that the pages together are exactly
    /// the list at that version, whatever was written meanwhile. A list
    /// continues at least while `from.version` is within the retained
    /// history, and is refused with [`ListExpired`](StoreError::ListExpired)
    /// when it cannot be continued. The first page reflects every write
    /// acknowledged before the call.
    pub async fn list_page(
        &self,
        namespace: Option<String>,
        from: Option<ListPosition>,
        limit: usize,
    ) -> Result<PodPage, StoreError> {
        let Some(from) = from else {
            self.fresh(0).await?;
            return self.cache.list_page(namespace.as_deref(), None, limit);
        };
        match self.pods.list_page(namespace.as_deref(), &from, limit) {
            Some(page) => page.await,
            None => self
                .cache
                .list_page(namespace.as_deref(), Some(&from), limit),
        }
    }

    /// Creates or replaces a pod, on its own (in no caller's order);
    /// resolves to the stored pod with its new version once the change is
    /// durable and its watchers have it.
    pub fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>> {
        self.apply_in(&mut WriteOrder::default(), apply)
    }

    /// [`apply`](Self::apply), after the writes submitted before it with
    /// `order` (one session's).
    pub fn apply_in(&self, order: &mut WriteOrder, apply: ApplyPod) -> Pending<Arc<Pod>> {
        self.pods.apply(apply, order)
    }

    /// Deletes a pod and its log, on its own (in no caller's order);
    /// resolves to its tombstone once durable.
    pub fn delete(&self, key: PodKey) -> Pending<Arc<Pod>> {
        self.delete_in(&mut WriteOrder::default(), key)
    }

    /// [`delete`](Self::delete), after the writes submitted before it with
    /// `order` (one session's).
    pub fn delete_in(&self, order: &mut WriteOrder, key: PodKey) -> Pending<Arc<Pod>> {
        let life = self.cache.log(&key).ok();
        let deleted = self.pods.delete(key, order);
        let logs = Arc::clone(&self.logs);
        async move {
            let tombstone = deleted.await?;
            if let Some(life) = life {
                logs.deleted(&tombstone, &life).await;
            }
            Ok(tombstone)
        }
        .boxed()
    }

    /// Cuts the shared store's history down to the newest `--history`
    /// versions now (etcd; a compactor does it every so often anyway):
    /// the version it cut at, if this call did. An embedded store's
    /// history is the cache's, cut as it goes: `None`.
    pub fn compact(&self) -> Pending<Option<u64>> {
        self.pods.compact()
    }

    /// Resolves once every log line appended before it is durable.
    pub fn sync(&self) -> Pending<()> {
        self.logs.sync()
    }

    /// Resolves once everything submitted before it is done and the
    /// backends have let go of what they hold outside this process's
    /// memory (the durable store's database can be opened again). Pod
    /// writes submitted after it are refused, and so are log appends where
    /// the log backend has a writer to close (redb); reads go on.
    pub fn close(&self) -> Pending<()> {
        let (pods, logs) = (self.pods.close(), self.logs.close());
        async move {
            let closed = pods.await;
            logs.await.and(closed)
        }
        .boxed()
    }

    /// The version this server's cache has reached, without waiting for
    /// the store: for start-up messages, tests and metrics, not for
    /// answering a client (that is [`Fresh::version`]).
    pub fn version(&self) -> u64 {
        self.cache.version()
    }

    /// How many watchers are registered with this server's cache.
    pub fn watcher_count(&self) -> usize {
        self.cache.watcher_count()
    }

    /// How many pods this server's cache holds (for metrics).
    pub fn pod_count(&self) -> usize {
        self.cache.pod_count()
    }
}

impl Fresh<'_> {
    /// The version of the newest change.
    pub fn version(&self) -> u64 {
        self.registry.cache.version()
    }

    /// The selected pods, sorted by namespace then name, and the version
    /// they were read at. One pod (by [`PodSelector::Pod`]) is one lookup,
    /// whatever its namespace holds: a list of it or of nothing.
    pub fn list(&self, selector: &PodSelector) -> PodList {
        self.registry.cache.list(selector)
    }

    /// Registers a watcher of the selected pods. With `from == 0` it
    /// yields every current selected pod, then every later change to the
    /// selection; with `from > 0`, exactly those changes with versions
    /// strictly larger than `from`, which must lie within the retained
    /// history (else [`VersionOutOfRange`](StoreError::VersionOutOfRange)).
    pub fn watch(&self, selector: PodSelector, from: u64) -> Result<Watcher, StoreError> {
        self.registry.cache.watch(selector, from)
    }

    /// The life of an existing pod (see [`PodLog`]).
    pub fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.registry.cache.log(key)
    }

    /// Reads the log of an existing pod from `start`, numbered: to its
    /// newest line, or with `follow` on until the pod is deleted.
    pub fn read_log(
        &self,
        key: &PodKey,
        start: LogStart,
        follow: bool,
    ) -> Result<LogLines, StoreError> {
        let life = self.registry.cache.log(key)?;
        self.registry.logs.read(key, life, start, follow)
    }

    /// Appends lines to an existing pod's log, in order. They are visible
    /// to readers when this resolves, and durable after the next
    /// [`Registry::sync`].
    pub fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()> {
        match self.registry.cache.log(&key) {
            Ok(life) => self.registry.logs.append(key, life, lines),
            Err(err) => futures::future::ready(Err(err)).boxed(),
        }
    }
}

impl Registry {
    /// Opens the registry of `storage` with `limits`; a new one (that
    /// never changed) gets `starting_pods`, once however many servers open
    /// it at the same moment. A durable store is read whole first, so call
    /// it before serving.
    pub async fn open(
        storage: Storage,
        limits: StoreConfig,
        starting_pods: Vec<ApplyPod>,
    ) -> Result<Opened, OpenError> {
        let (registry, seeded) = match storage {
            Storage::InMemory => (Self::in_memory(limits), None),
            Storage::Durable(dir) => {
                let (store, cache) =
                    DurableStore::open(&dir, limits).map_err(OpenError::DataDir)?;
                let store = Arc::new(store);
                (Registry::new(cache, store.clone(), store), None)
            }
            Storage::Etcd { etcd, nats } => {
                let log_bytes_per_pod = limits.log_bytes_per_pod;
                let metrics = limits.metrics.clone();
                let (store, cache, seeded) = EtcdStore::open(etcd, limits, starting_pods)
                    .await
                    .map_err(OpenError::Store)?;
                let logs: Arc<dyn LogBackend> = match nats {
                    Some(nats) => Arc::new(
                        JetStreamLogs::open(nats, log_bytes_per_pod, metrics)
                            .await
                            .map_err(OpenError::Nats)?,
                    ),
                    None => Arc::new(MemoryLogs),
                };
                let registry = Registry::new(cache, Arc::new(store), logs);
                return Ok(Opened { registry, seeded });
            }
        };
        // An embedded store is new while it never changed.
        if registry.version() > 0 {
            return Ok(Opened { registry, seeded });
        }
        let loaded = starting_pods.len();
        registry
            .load(starting_pods)
            .await
            .map_err(OpenError::Store)?;
        Ok(Opened {
            registry,
            seeded: Some(loaded),
        })
    }

    /// An empty registry in this process's memory, for tests, demos and
    /// benchmarks.
    pub fn in_memory(limits: StoreConfig) -> Self {
        Self::in_memory_with(limits, |pods, logs| (pods, logs))
    }

    /// An empty registry in this process's memory whose backends are first
    /// handed to `wrap`: for a test that needs a backend that fails,
    /// panics or waits where the real one would not.
    pub fn in_memory_with(
        limits: StoreConfig,
        wrap: impl FnOnce(
            Arc<dyn PodBackend>,
            Arc<dyn LogBackend>,
        ) -> (Arc<dyn PodBackend>, Arc<dyn LogBackend>),
    ) -> Self {
        let cache = Arc::new(WatchCache::new(limits));
        let (pods, logs) = wrap(
            Arc::new(MemoryStore::new(Arc::clone(&cache))),
            Arc::new(MemoryLogs),
        );
        Registry::new(cache, pods, logs)
    }

    /// Applies pods in order. They are all submitted before any is awaited,
    /// so a durable store commits them in a few large batches rather than
    /// one fsync each.
    pub async fn load(&self, pods: impl IntoIterator<Item = ApplyPod>) -> Result<(), StoreError> {
        let mut order = WriteOrder::default();
        let pending: Vec<_> = pods
            .into_iter()
            .map(|pod| self.apply_in(&mut order, pod))
            .collect();
        for applied in pending {
            applied.await?;
        }
        Ok(())
    }
}
