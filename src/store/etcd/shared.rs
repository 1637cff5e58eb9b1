//! What every part of one etcd store shares: the client, the keys, the
//! index the feed fills, and the store's settings.

use std::sync::atomic::AtomicBool;

use super::client::Etcd;
use super::config::EtcdConfig;
use super::keys::Keys;
use crate::store::index::Index;

/// See the module docs. Its operations are in the parent module.
pub(super) struct Shared {
    pub etcd: Etcd,
    pub keys: Keys,
    pub index: Index,
    /// The etcd cluster's id: continue tokens name it, so that a list
    /// begun on another cluster is not continued here.
    pub cluster: u64,
    pub config: EtcdConfig,
    pub closed: AtomicBool,
    /// Told when a read found the index behind etcd for too long: the
    /// feed's member is probably frozen or cut off, and the feed moves to
    /// another one rather than wait for the connection's pings to fail.
    pub feed_behind: tokio::sync::Notify,
}
