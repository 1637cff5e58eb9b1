//! The freshness rule on etcd: a read waits until this server's cache has
//! every change acknowledged before it, by any server of the registry.

use std::time::Duration;

use super::api::etcdserverpb::RangeRequest;
use super::registry;
use super::shared::Shared;
use crate::store::cache::Observed;
use crate::store::error::StoreError;

impl Shared {
    /// A quorum read of the `revision` key gives the registry's newest
    /// change, which the cache must reach within `timeout`; and the cache
    /// reflects the registry at `version` too if etcd has reached it.
    pub(super) async fn catch_up(&self, version: u64, timeout: Duration) -> Result<(), StoreError> {
        let read = self
            .etcd
            .range(RangeRequest {
                keys_only: true,
                ..registry::get(self.keys.revision())
            })
            .await?;
        let now = read.header.as_ref().map_or(0, |header| header.revision);
        let newest = read.kvs.first().map_or(0, |kv| kv.mod_revision);
        let (now, newest) = (
            u64::try_from(now).unwrap_or(0),
            u64::try_from(newest).unwrap_or(0),
        );
        if tokio::time::timeout(timeout, self.cache.reached(newest))
            .await
            .is_err()
        {
            self.feed_behind.notify_one();
            return Err(StoreError::Unavailable(format!(
                "this server has followed etcd to revision {}, but the registry is at {newest} \
                 and it did not catch up within {:.1}s; try another server",
                self.cache.version(),
                timeout.as_secs_f64()
            )));
        }
        // Every change up to `now` is at or below `newest`, so the cache
        // reflects the registry at any version up to `now`. Its own version
        // moves only as far as asked: a list of an unchanged registry keeps
        // its version (and its cached encoding) while other keys change.
        // Beyond `now`, the watch itself answers OUT_OF_RANGE.
        if version <= now {
            self.cache.observe(Observed::Progress(version));
        }
        Ok(())
    }
}
