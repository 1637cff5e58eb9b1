//! The volatile pod backend: writes are planned against the cache and
//! published one at a time under a writer lock; nothing survives a restart.
//! (Its logs are [`MemoryLogs`](super::MemoryLogs), in each pod's life.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::backend::{Pending, PodBackend};
use super::cache::{Batch, WatchCache};
use super::error::StoreError;
use super::order::WriteOrder;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// Pods in memory, for tests and demos.
pub(super) struct MemoryStore {
    cache: Arc<WatchCache>,
    /// Serialises writers between planning and publishing.
    writer: Mutex<()>,
    /// Set by [`PodBackend::close`]: later writes are refused.
    closed: AtomicBool,
}

impl MemoryStore {
    /// A backend that writes to `cache` alone.
    pub fn new(cache: Arc<WatchCache>) -> Self {
        MemoryStore {
            cache,
            writer: Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    fn write<T>(
        &self,
        plan: impl FnOnce(&WatchCache, &mut Batch) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::shut_down());
        }
        let mut batch = self.cache.batch();
        let result = plan(&self.cache, &mut batch)?;
        self.cache.publish_batch(batch);
        Ok(result)
    }
}

impl PodBackend for MemoryStore {
    // Writes happen at once; the futures are only there for the interface.
    fn apply(&self, apply: ApplyPod, _order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        ready(self.write(|cache, batch| cache.plan_apply(batch, apply)))
    }

    fn delete(&self, key: PodKey, _order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        ready(self.write(|cache, batch| cache.plan_delete(batch, key)))
    }

    fn close(&self) -> Pending<()> {
        self.closed.store(true, Ordering::Relaxed);
        ready(Ok(()))
    }
}

fn ready<T: Send + 'static>(result: Result<T, StoreError>) -> Pending<T> {
    futures::future::ready(result).boxed()
}
