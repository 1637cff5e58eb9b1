//! The etcd pod backend: pods kept in an etcd cluster, shared by any
//! number of stateless `pod-server` replicas, each serving lists and
//! watches from its registry's watch cache, fed by one etcd watch (see
//! [`feed`]), as kube-apiserver serves them from its watch cache.
//!
//! - **Versions are etcd revisions.** A change's version is the revision
//!   of the transaction that made it: strictly larger than every earlier
//!   one, but not the next integer, since etcd counts writes to every key.
//! - **Writes are etcd transactions** ([`txn`]), each holding only if the
//!   pod is still as this server last saw it (or at the expected version),
//!   so that a write etcd did not confirm can never land after a later
//!   acknowledged one. One session's go one at a time, in order; different
//!   sessions' are in flight together, bounded per server ([`writer`]).
//!   Each resolves once etcd committed it (a quorum) and this server's
//!   cache has it, so the server's own watchers see a change before its
//!   ack.
//! - **Reads see every acknowledged write, on any replica.** Each change
//!   also rewrites the registry's `revision` key ([`keys`]), so a quorum
//!   read of that key gives the newest change's revision; a read waits
//!   (bounded) until the cache has it ([`fresh`]). Reads that arrive
//!   while such a quorum read is in flight share the next one.
//! - **Continued lists** are etcd ranges at the first page's revision
//!   ([`pages`]), so a continue token works on any replica until etcd
//!   compacts that revision.
//! - **History** is etcd's: the cache replays it from etcd's oldest
//!   revision at start-up, and a compactor ([`compactor`]) cuts it so that
//!   the newest `--history` revisions stay watchable.
//! - **Logs** are not here: in each server's memory, or on NATS JetStream
//!   (`--nats-url`), behind the registry's log backend.

mod api;
mod ceiling;
mod client;
mod compactor;
mod config;
mod feed;
mod fresh;
mod keys;
mod pages;
mod pod_turns;
mod registry;
mod shared;
mod txn;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use client::Etcd;
use keys::Keys;
use shared::Shared;

pub use ceiling::{WriteCeiling, write_ceiling};
pub use client::ETCD_TLS_FLAGS;
pub use config::EtcdConfig;

use super::backend::{Pending, PodBackend};
use super::cache::WatchCache;
use super::config::StoreConfig;
use super::error::StoreError;
use super::list::{ListPosition, PodPage};
use super::order::WriteOrder;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// A pod backend whose pods live in etcd. See the module docs.
pub(super) struct EtcdStore {
    shared: Arc<Shared>,
    writer: writer::Writer,
    tasks: Vec<JoinHandle<()>>,
}

/// How long opening waits for the cache to catch up with etcd.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

impl EtcdStore {
    /// Opens the registry at `config.prefix`: refuses foreign data, loads
    /// `seed` if the registry is new (once, across every server opening it
    /// at the same time), replays etcd's retained history into a new cache,
    /// and returns once the feed follows etcd from where the cache is and
    /// the cache has caught up, so a server never serves a half-loaded
    /// registry, nor one whose cache will start over. Also returns how many
    /// starting pods this server loaded (`None`: the registry was there
    /// already, or another server loaded it).
    pub async fn open(
        config: EtcdConfig,
        limits: StoreConfig,
        seed: Vec<ApplyPod>,
    ) -> Result<(Self, Arc<WatchCache>, Option<usize>), StoreError> {
        let etcd = Etcd::new(&config.endpoints, config.tls.as_ref())
            .map_err(StoreError::Storage)?
            .with_metrics(limits.metrics.clone());
        if config.prefix.is_empty() {
            return Err(StoreError::Storage(
                "--etcd-prefix must not be empty".into(),
            ));
        }
        let keys = Keys::new(&config.prefix);
        let (cluster, seeded) = registry::prepare(&etcd, &keys, seed).await?;
        // The cluster names the history, so that a list begun on one
        // replica continues on any other.
        let cache = Arc::new(WatchCache::shared(limits, cluster));
        let (reads, asks) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            etcd,
            keys,
            cache: Arc::clone(&cache),
            cluster,
            config,
            closed: AtomicBool::new(false),
            feed_behind: tokio::sync::Notify::new(),
            reads,
        });
        feed::establish(&shared).await?;
        let tasks = vec![
            tokio::spawn(feed::follow(Arc::clone(&shared))),
            tokio::spawn(fresh::share_reads(Arc::clone(&shared), asks)),
        ];
        let writer = writer::Writer::new(Arc::clone(&shared));
        // Dropped on an error below: its tasks end with it.
        let mut opened = EtcdStore {
            shared: Arc::clone(&shared),
            writer,
            tasks,
        };
        match tokio::time::timeout(OPEN_TIMEOUT, shared.catch_up(0, OPEN_TIMEOUT)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the cache did not catch up with etcd at {} within {}s",
                    shared.etcd.endpoints(),
                    OPEN_TIMEOUT.as_secs()
                )));
            }
        }
        if !shared.config.compaction_interval.is_zero() {
            opened
                .tasks
                .push(tokio::spawn(compactor::compact_now_and_then(shared)));
        }
        Ok((opened, cache, seeded))
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PodBackend for EtcdStore {
    fn apply(&self, apply: ApplyPod, order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        self.writer.submit(writer::Write::Apply(apply), order)
    }

    fn delete(&self, key: PodKey, order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        self.writer.submit(writer::Write::Delete(key), order)
    }

    fn fresh(&self, version: u64) -> Pending<()> {
        // A resume from a version the cache has needs nothing from etcd.
        if version > 0 && version <= self.shared.cache.version() {
            return futures::future::ready(Ok(())).boxed();
        }
        let shared = Arc::clone(&self.shared);
        async move {
            let timeout = shared.config.catch_up_timeout;
            shared.catch_up(version, timeout).await
        }
        .boxed()
    }

    fn list_page(
        &self,
        namespace: Option<&str>,
        from: &ListPosition,
        limit: usize,
    ) -> Option<Pending<PodPage>> {
        let shared = Arc::clone(&self.shared);
        let (namespace, from) = (namespace.map(str::to_owned), from.clone());
        Some(async move { shared.list_page(namespace, from, limit).await }.boxed())
    }

    fn compact(&self) -> Pending<Option<u64>> {
        let shared = Arc::clone(&self.shared);
        async move { shared.compact().await }.boxed()
    }

    fn close(&self) -> Pending<()> {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.writer.flush()
    }
}
