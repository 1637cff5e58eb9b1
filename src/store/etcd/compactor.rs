//! Compaction: etcd keeps every revision until it is compacted, so one
//! server of the registry at a time cuts its history down to the newest
//! `--history` revisions, and never past the changes of the last
//! `--history-window`, every `compaction_interval`. Compaction is
//! cluster-wide: registries sharing a cluster should share `--history` too.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::api::etcdserverpb::{Compare, TxnRequest, compare};
use super::client::ReadError;
use super::registry;
use super::shared::Shared;
use crate::store::error::StoreError;

impl Shared {
    /// The revision this registry last compacted etcd at, if known.
    pub(super) async fn compacted_at(&self) -> Option<u64> {
        let read = self
            .etcd
            .range(registry::get(self.keys.compacted()))
            .await
            .ok()?;
        let kv = read.kvs.first()?;
        std::str::from_utf8(&kv.value).ok()?.parse().ok()
    }

    /// Compacts etcd so that the newest `--history` revisions stay
    /// watchable, unless another server of the registry already did at
    /// least as much; returns the revision compacted at, if this call did.
    pub(super) async fn compact(&self) -> Result<Option<u64>, StoreError> {
        let read = self
            .etcd
            .range(registry::get(self.keys.compacted()))
            .await?;
        let now = read.header.as_ref().map_or(0, |header| header.revision);
        let (done, seen) = read.kvs.first().map_or((0, 0), |kv| {
            let done = std::str::from_utf8(&kv.value)
                .ok()
                .and_then(|value| value.parse::<i64>().ok())
                .unwrap_or(0);
            (done, kv.mod_revision)
        });
        let history = i64::try_from(self.cache.config().history).unwrap_or(i64::MAX);
        // And every change the cache keeps for its time window: a watch
        // resumed on a replica that restarts finds it in etcd.
        let window = self
            .cache
            .kept_for_window()
            .map_or(i64::MAX, |kept| i64::try_from(kept).unwrap_or(i64::MAX));
        let target = now.saturating_sub(history).min(window.saturating_sub(1));
        // Each round's claim is a revision of its own: without a pod change
        // since the last round there is nothing worth compacting.
        let newest_change = self
            .etcd
            .range(registry::get(self.keys.revision()))
            .await?
            .kvs
            .first()
            .map_or(0, |kv| kv.mod_revision);
        if target <= done.max(0) || newest_change <= done {
            return Ok(None);
        }
        // One server wins each round: the one whose claim of the round
        // found the key as it read it.
        let claim = self
            .etcd
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal.into(),
                    target: compare::CompareTarget::Mod.into(),
                    key: self.keys.compacted(),
                    target_union: Some(compare::TargetUnion::ModRevision(seen)),
                    range_end: Vec::new(),
                }],
                success: vec![registry::put(
                    self.keys.compacted(),
                    target.to_string().into_bytes(),
                    0,
                )],
                failure: Vec::new(),
            })
            .await?;
        if !claim.succeeded {
            return Ok(None);
        }
        match self.etcd.compact(target).await {
            // Someone (etcd's own auto-compaction, say) went further already.
            Ok(()) | Err(ReadError::Compacted) => {}
            Err(err) => return Err(err.into()),
        }
        tracing::info!(revision = target, "compacted etcd");
        Ok(u64::try_from(target).ok())
    }
}

/// Compacts every `compaction_interval`.
pub(super) async fn compact_now_and_then(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.config.compaction_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(err) = shared.compact().await {
            tracing::warn!(%err, "cannot compact etcd");
        }
    }
}
