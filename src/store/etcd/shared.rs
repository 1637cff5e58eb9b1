//! What every part of one etcd backend shares: the client, the keys, the
//! cache the feed fills, and the backend's settings. Its operations are
//! written over it, one concern to a module: the feed ([`feed`](super::feed)),
//! freshness ([`fresh`](super::fresh)), the transactions ([`txn`](super::txn)),
//! continued lists ([`pages`](super::pages)) and compaction
//! ([`compactor`](super::compactor)).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::client::Etcd;
use super::config::EtcdConfig;
use super::keys::Keys;
use crate::store::cache::WatchCache;
use crate::store::error::StoreError;

/// What every part of one etcd backend shares: the client, the keys, the
/// cache the feed fills, and the backend's settings.
pub(super) struct Shared {
    pub etcd: Etcd,
    pub keys: Keys,
    pub cache: Arc<WatchCache>,
    /// The etcd cluster's id: continue tokens name it, so that a list
    /// begun on another cluster is not continued here.
    pub cluster: u64,
    pub config: EtcdConfig,
    pub closed: AtomicBool,
    /// Told when a read found the cache behind etcd for too long: the
    /// feed's member is probably frozen or cut off, and the feed moves to
    /// another one rather than wait for the connection's pings to fail.
    pub feed_behind: tokio::sync::Notify,
    /// Where reads ask for a quorum read to share
    /// ([`share_reads`](super::fresh::share_reads) answers).
    pub reads: mpsc::UnboundedSender<ReadAsk>,
}

/// A read's request for the next shared quorum read, and where the answer
/// goes.
pub(super) type ReadAsk = oneshot::Sender<Result<Newest, StoreError>>;

/// Where etcd stood at a quorum read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Newest {
    /// etcd's revision at the read: every change up to it is known.
    pub now: u64,
    /// The registry's newest change, at or below `now`.
    pub change: u64,
}

impl Shared {
    pub fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::shut_down());
        }
        Ok(())
    }
}
