//! The freshness rule on etcd: a read waits until this server's cache has
//! every change acknowledged before it, by any server of the registry.
//!
//! That takes a quorum read of the registry's `revision` key that started
//! after the read arrived. Reads share them, as kube-apiserver's consistent
//! reads from its watch cache share progress requests (KEP-2340): one task
//! makes the quorum reads, one at a time, and each serves every read that
//! asked before it started; reads that ask while it is in flight wait for
//! the next. A busy server then pays one quorum read per round trip, not
//! one per list.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::api::etcdserverpb::RangeRequest;
use super::registry;
use super::shared::{Newest, ReadAsk, Shared};
use crate::store::cache::Observed;
use crate::store::error::StoreError;

/// Makes one quorum read at a time, each for every read that asked before
/// it began (through [`Shared::reads`]), until the store is dropped.
pub(super) async fn share_reads(shared: Arc<Shared>, mut asks: mpsc::UnboundedReceiver<ReadAsk>) {
    let mut waiting = Vec::new();
    while asks.recv_many(&mut waiting, usize::MAX).await > 0 {
        let newest = shared.read_newest().await;
        for answer in waiting.drain(..) {
            let _ = answer.send(newest.clone());
        }
    }
}

impl Shared {
    /// A quorum read of the `revision` key gives the registry's newest
    /// change, which the cache must reach within `timeout`; and the cache
    /// reflects the registry at `version` too if etcd has reached it.
    pub(super) async fn catch_up(&self, version: u64, timeout: Duration) -> Result<(), StoreError> {
        let (answer, answered) = oneshot::channel();
        self.reads
            .send(answer)
            .map_err(|_| StoreError::shut_down())?;
        let Newest { now, change } = answered
            .await
            .unwrap_or_else(|_| Err(StoreError::shut_down()))?;
        if tokio::time::timeout(timeout, self.cache.reached(change))
            .await
            .is_err()
        {
            self.feed_behind.notify_one();
            return Err(StoreError::Unavailable(format!(
                "this server has followed etcd to revision {}, but the registry is at {change} \
                 and it did not catch up within {:.1}s; try another server",
                self.cache.version(),
                timeout.as_secs_f64()
            )));
        }
        // Every change up to `now` is at or below `change`, so the cache
        // reflects the registry at any version up to `now`. Its own version
        // moves only as far as asked: a list of an unchanged registry keeps
        // its version (and its cached encoding) while other keys change.
        // Beyond `now`, the watch itself answers OUT_OF_RANGE.
        if version <= now {
            self.cache.observe(Observed::Progress(version));
        }
        Ok(())
    }

    async fn read_newest(&self) -> Result<Newest, StoreError> {
        let read = self
            .etcd
            .range(RangeRequest {
                keys_only: true,
                ..registry::get(self.keys.revision())
            })
            .await?;
        let now = read.header.as_ref().map_or(0, |header| header.revision);
        let change = u64::try_from(read.kvs.first().map_or(0, |kv| kv.mod_revision)).unwrap_or(0);
        // How far the cache is behind, as of this read: shown by the metrics.
        let lag = change.saturating_sub(self.cache.version());
        let metrics = &self.cache.config().metrics;
        metrics
            .cache_lag
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        Ok(Newest {
            now: u64::try_from(now).unwrap_or(0),
            change,
        })
    }
}
