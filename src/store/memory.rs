//! The volatile store: the [`Index`] alone. Writes are planned and published
//! one at a time under a writer lock; nothing survives a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::config::StoreConfig;
use super::error::StoreError;
use super::index::{Batch, Index};
use super::pod_log::PodLog;
use super::pod_store::{ListPosition, Pending, PodList, PodPage, PodStore};
use super::watcher::Watcher;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// A store that keeps everything in memory, for tests and demos.
pub struct MemoryStore {
    index: Index,
    /// Serialises writers between planning and publishing.
    writer: Mutex<()>,
    /// Set by [`PodStore::close`]: later writes are refused.
    closed: AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        MemoryStore {
            index: Index::new(config),
            writer: Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    fn write<T>(
        &self,
        plan: impl FnOnce(&Index, &mut Batch) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Storage("the store is shut down".into()));
        }
        let mut batch = self.index.batch();
        let result = plan(&self.index, &mut batch)?;
        self.index.publish(batch);
        Ok(result)
    }
}

impl PodStore for MemoryStore {
    fn list(&self, namespace: Option<&str>) -> PodList {
        self.index.list(namespace)
    }

    fn list_page(
        &self,
        namespace: Option<String>,
        from: Option<ListPosition>,
        limit: usize,
    ) -> Pending<PodPage> {
        let page = self
            .index
            .list_page(namespace.as_deref(), from.as_ref(), limit);
        Box::pin(std::future::ready(page))
    }

    fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError> {
        self.index.watch(namespace, from)
    }

    fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.index.log(key)
    }

    // Writes happen at once; the futures are only there for the interface.
    fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>> {
        ready(self.write(|index, batch| index.plan_apply(batch, apply)))
    }

    fn delete(&self, key: PodKey) -> Pending<Arc<Pod>> {
        ready(self.write(|index, batch| index.plan_delete(batch, key)))
    }

    fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()> {
        ready(self.write(|index, batch| index.plan_append(batch, key, lines)))
    }

    fn sync(&self) -> Pending<()> {
        ready(Ok(()))
    }

    fn close(&self) -> Pending<()> {
        self.closed.store(true, Ordering::Relaxed);
        ready(Ok(()))
    }

    fn version(&self) -> u64 {
        self.index.version()
    }

    fn watcher_count(&self) -> usize {
        self.index.watcher_count()
    }
}

fn ready<T: Send + 'static>(result: Result<T, StoreError>) -> Pending<T> {
    futures::future::ready(result).boxed()
}
