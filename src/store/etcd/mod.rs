//! The etcd store: pods kept in an etcd cluster, shared by any number of
//! stateless `pod-server` replicas, each serving lists and watches from an
//! in-memory index fed by one etcd watch (see [`feed`]), as kube-apiserver
//! serves them from its watch cache.
//!
//! - **Versions are etcd revisions.** A change's version is the revision
//!   of the transaction that made it: strictly larger than every earlier
//!   one, but not the next integer, since etcd counts writes to every key.
//! - **Writes are etcd transactions**, one at a time per server in the
//!   order they were submitted: create or replace (only if the pod's
//!   `mod_revision` is the expected one, when a version is expected),
//!   delete (only if the pod exists; the tombstone is the value it had).
//!   Each resolves once etcd committed it (a quorum) and this server's
//!   index has it, so the server's own watchers see a change before its ack.
//! - **Reads see every acknowledged write, on any replica.** Each change
//!   also rewrites the registry's `revision` key ([`keys`]), so a quorum
//!   read of that key gives the newest change's revision; a consistent
//!   read waits (bounded) until the index has it ([`PodStore::catch_up`]).
//! - **Paged lists** are etcd ranges with a limit at the first page's
//!   revision, so a continue token works on any replica until etcd
//!   compacts that revision.
//! - **History** is etcd's: the index replays it from etcd's oldest
//!   revision at start-up, and a compactor (see [`EtcdStore::compact`])
//!   cuts it so that the newest `--history` revisions stay watchable.
//! - **Logs** stay in each server's memory (a later issue moves them).

mod api;
mod client;
mod config;
mod feed;
mod keys;
mod registry;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use api::etcdserverpb::{
    Compare, DeleteRangeRequest, RangeRequest, RequestOp, TxnRequest, compare, request_op,
    response_op,
};
use client::{Etcd, ReadError};
use keys::{Keys, Kind};
use shared::Shared;

pub use config::EtcdConfig;

use super::config::StoreConfig;
use super::error::StoreError;
use super::index::Index;
use super::pod_log::PodLog;
use super::pod_store::{ListPosition, Pending, PodList, PodPage, PodStore};
use super::watcher::Watcher;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};

/// A store whose pods live in etcd. See the module docs.
pub struct EtcdStore {
    shared: Arc<Shared>,
    /// Submitted writes, in order, for [`write`].
    writes: mpsc::UnboundedSender<Write>,
    tasks: Vec<JoinHandle<()>>,
    /// How many starting pods this server loaded into a new registry.
    seeded: Option<usize>,
}

/// A write in the queue, and where its outcome goes.
enum Write {
    Apply(ApplyPod, oneshot::Sender<Result<Arc<Pod>, StoreError>>),
    Delete(PodKey, oneshot::Sender<Result<Arc<Pod>, StoreError>>),
    /// Answered once every write before it is done.
    Flush(oneshot::Sender<()>),
}

/// How long a write waits for this server's index to show it before its
/// ack goes out anyway (it is committed; only the order of a session's
/// change and ack could suffer).
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening waits for the index to catch up with etcd.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

impl EtcdStore {
    /// Opens the registry at `config.prefix`: refuses foreign data, loads
    /// `seed` if the registry is new (once, across every server opening it
    /// at the same time), replays etcd's retained history into the index,
    /// and returns once the index has caught up with etcd, so a server
    /// never serves a half-loaded registry.
    pub async fn open(
        config: EtcdConfig,
        store: StoreConfig,
        seed: Vec<ApplyPod>,
    ) -> Result<Self, StoreError> {
        let etcd = Etcd::new(&config.endpoints).map_err(StoreError::Storage)?;
        if config.prefix.is_empty() {
            return Err(StoreError::Storage(
                "--etcd-prefix must not be empty".into(),
            ));
        }
        let keys = Keys::new(&config.prefix);
        let (cluster, seeded) = registry::prepare(&etcd, &keys, seed).await?;
        let shared = Arc::new(Shared {
            etcd,
            keys,
            index: Index::new(store),
            cluster,
            config,
            closed: AtomicBool::new(false),
            feed_behind: tokio::sync::Notify::new(),
        });
        feed::establish(&shared).await?;
        let mut tasks = vec![tokio::spawn(feed::follow(Arc::clone(&shared)))];
        let (writes, queue) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(write(Arc::clone(&shared), queue)));
        // Dropped on an error below: its tasks end with it.
        let mut opened = EtcdStore {
            shared: Arc::clone(&shared),
            writes,
            tasks,
            seeded,
        };
        match tokio::time::timeout(OPEN_TIMEOUT, shared.catch_up(0, OPEN_TIMEOUT)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the index did not catch up with etcd at {} within {}s",
                    shared.etcd.endpoints(),
                    OPEN_TIMEOUT.as_secs()
                )));
            }
        }
        if !shared.config.compaction_interval.is_zero() {
            opened
                .tasks
                .push(tokio::spawn(compact_now_and_then(shared)));
        }
        Ok(opened)
    }

    /// How many starting pods this server loaded into a new registry
    /// (`None`: the registry was there already, or another server loaded it).
    pub fn seeded(&self) -> Option<usize> {
        self.seeded
    }

    /// Compacts etcd so that the newest `--history` revisions stay
    /// watchable, unless another server of the registry already did at
    /// least as much; returns the revision compacted at, if this call did.
    /// Compaction is cluster-wide: registries sharing a cluster should
    /// share `--history` too.
    pub async fn compact(&self) -> Result<Option<u64>, StoreError> {
        self.shared.compact().await
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// See [`PodStore::catch_up`]: a quorum read of the `revision` key
    /// gives the registry's newest change, which the index must reach.
    async fn catch_up(&self, version: u64, timeout: Duration) -> Result<(), StoreError> {
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
        if tokio::time::timeout(timeout, self.index.reached(newest))
            .await
            .is_err()
        {
            self.feed_behind.notify_one();
            return Err(StoreError::Unavailable(format!(
                "this server has followed etcd to revision {}, but the registry is at {newest} \
                 and it did not catch up within {:.1}s; try another server",
                self.index.version(),
                timeout.as_secs_f64()
            )));
        }
        // Every change up to `now` is at or below `newest`, so the index
        // reflects the registry at any version up to `now`. Its own version
        // moves only as far as asked: a list of an unchanged registry keeps
        // its version (and its cached encoding) while other keys change.
        // Beyond `now`, the watch itself answers OUT_OF_RANGE.
        if version <= now {
            self.index.observe(version);
        }
        Ok(())
    }

    async fn apply(&self, apply: ApplyPod) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&apply.key);
        let compare = apply
            .expected_version
            .map(|expected| Compare {
                result: compare::CompareResult::Equal.into(),
                target: compare::CompareTarget::Mod.into(),
                key: key.clone(),
                target_union: Some(compare::TargetUnion::ModRevision(
                    i64::try_from(expected).unwrap_or(i64::MAX),
                )),
                range_end: Vec::new(),
            })
            .into_iter()
            .collect();
        let value = keys::encode(&apply.key, &apply.status, apply.replicas);
        let done = self
            .etcd
            .txn(TxnRequest {
                compare,
                success: vec![
                    registry::put(key.clone(), value, 0),
                    registry::put(self.keys.revision(), Vec::new(), 0),
                ],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(registry::get(key))),
                }],
            })
            .await?;
        if !done.succeeded {
            let current = done.responses.first().and_then(|op| match &op.response {
                Some(response_op::Response::ResponseRange(range)) => {
                    range.kvs.first().map(|kv| kv.mod_revision as u64)
                }
                _ => None,
            });
            return Err(StoreError::Conflict {
                expected: apply.expected_version.unwrap_or_default(),
                key: apply.key,
                current,
            });
        }
        let version = revision_of(done.header.as_ref())?;
        Ok(Arc::new(Pod {
            name: apply.key.name,
            namespace: apply.key.namespace,
            status: apply.status,
            replicas: apply.replicas,
            resource_version: version,
            deleted: false,
            bookmark: false,
        }))
    }

    async fn delete(&self, pod: PodKey) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&pod);
        let done = self
            .etcd
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Greater.into(),
                    target: compare::CompareTarget::Create.into(),
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                }],
                success: vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key,
                                prev_kv: true,
                                ..DeleteRangeRequest::default()
                            },
                        )),
                    },
                    registry::put(self.keys.revision(), Vec::new(), 0),
                ],
                failure: Vec::new(),
            })
            .await?;
        if !done.succeeded {
            return Err(StoreError::NotFound(pod));
        }
        let version = revision_of(done.header.as_ref())?;
        let before = done
            .responses
            .first()
            .and_then(|op| match &op.response {
                Some(response_op::Response::ResponseDeleteRange(deleted)) => {
                    deleted.prev_kvs.first()
                }
                _ => None,
            })
            .and_then(|kv| keys::decode(&pod, &kv.value, kv.mod_revision))
            .ok_or_else(|| registry::foreign(&self.keys, &self.keys.pod(&pod)))?;
        Ok(Arc::new(Pod {
            resource_version: version,
            deleted: true,
            ..before
        }))
    }

    async fn list_page(
        &self,
        namespace: Option<String>,
        from: Option<ListPosition>,
        limit: usize,
    ) -> Result<PodPage, StoreError> {
        let (start, range_end) = self.keys.pods(namespace.as_deref());
        let (key, revision) = match &from {
            None => (start, 0),
            Some(from) if from.history != self.cluster => {
                return Err(StoreError::ListExpired {
                    version: from.version,
                    oldest: None,
                });
            }
            Some(from) => (
                self.keys.after(&from.after),
                i64::try_from(from.version).unwrap_or(i64::MAX),
            ),
        };
        let page = self
            .etcd
            .range(RangeRequest {
                key,
                range_end,
                limit: i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
                revision,
                ..RangeRequest::default()
            })
            .await;
        let page = match (page, &from) {
            (Err(ReadError::Compacted), Some(from)) => {
                return Err(StoreError::ListExpired {
                    version: from.version,
                    oldest: self.compacted_at().await,
                });
            }
            (page, _) => page?,
        };
        let version = match &from {
            Some(from) => from.version,
            None => revision_of(page.header.as_ref())?,
        };
        let pods = page
            .kvs
            .iter()
            .map(|kv| {
                match self.keys.kind(&kv.key) {
                    Kind::Pod(key) => keys::decode(&key, &kv.value, kv.mod_revision).map(Arc::new),
                    _ => None,
                }
                .ok_or_else(|| registry::foreign(&self.keys, &kv.key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = match pods.last() {
            Some(last) if page.more => Some(ListPosition {
                history: self.cluster,
                version,
                after: PodKey::of(last),
            }),
            _ => None,
        };
        Ok(PodPage {
            pods,
            version,
            next,
        })
    }

    /// The revision this registry last compacted etcd at, if known.
    async fn compacted_at(&self) -> Option<u64> {
        let read = self
            .etcd
            .range(registry::get(self.keys.compacted()))
            .await
            .ok()?;
        let kv = read.kvs.first()?;
        std::str::from_utf8(&kv.value).ok()?.parse().ok()
    }

    async fn compact(&self) -> Result<Option<u64>, StoreError> {
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
        let history = i64::try_from(self.index.config().history).unwrap_or(i64::MAX);
        let target = now.saturating_sub(history);
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

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Storage("the store is shut down".into()));
        }
        Ok(())
    }
}

fn revision_of(header: Option<&api::etcdserverpb::ResponseHeader>) -> Result<u64, StoreError> {
    header
        .and_then(|header| u64::try_from(header.revision).ok())
        .filter(|revision| *revision > 0)
        .ok_or_else(|| StoreError::Storage("etcd answered without a revision".into()))
}

/// Applies the submitted writes one at a time, in order: a later write of
/// the same session may depend on an earlier one (an expected version),
/// and etcd would not keep the order of concurrent transactions.
async fn write(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = queue.recv().await {
        // A write whose caller has gone (a cancelled call, a closed
        // session) is not sent: nobody would learn its outcome.
        let abandoned = match &write {
            Write::Apply(_, reply) | Write::Delete(_, reply) => reply.is_closed(),
            Write::Flush(_) => false,
        };
        if abandoned {
            continue;
        }
        let (result, reply) = match write {
            Write::Apply(apply, reply) => (shared.apply(apply).await, reply),
            Write::Delete(key, reply) => (shared.delete(key).await, reply),
            Write::Flush(reply) => {
                let _ = reply.send(());
                continue;
            }
        };
        let _ = reply.send(result);
    }
}

/// Compacts every `compaction_interval`.
async fn compact_now_and_then(shared: Arc<Shared>) {
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

impl PodStore for EtcdStore {
    fn list(&self, namespace: Option<&str>) -> PodList {
        self.shared.index.list(namespace)
    }

    fn list_page(
        &self,
        namespace: Option<String>,
        from: Option<ListPosition>,
        limit: usize,
    ) -> Pending<PodPage> {
        let shared = Arc::clone(&self.shared);
        async move { shared.list_page(namespace, from, limit).await }.boxed()
    }

    fn catch_up(&self, version: u64) -> Pending<()> {
        // A resume from a version the index has needs nothing from etcd.
        if version > 0 && version <= self.shared.index.version() {
            return futures::future::ready(Ok(())).boxed();
        }
        let shared = Arc::clone(&self.shared);
        async move {
            let timeout = shared.config.catch_up_timeout;
            shared.catch_up(version, timeout).await
        }
        .boxed()
    }

    fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError> {
        self.shared.index.watch(namespace, from)
    }

    fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.shared.index.log(key)
    }

    fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>> {
        self.submit(|reply| Write::Apply(apply, reply))
    }

    fn delete(&self, key: PodKey) -> Pending<Arc<Pod>> {
        self.submit(|reply| Write::Delete(key, reply))
    }

    fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()> {
        let index = &self.shared.index;
        let mut batch = index.batch();
        let planned = index.plan_append(&mut batch, key, lines);
        if planned.is_ok() {
            index.publish(batch);
        }
        futures::future::ready(planned).boxed()
    }

    fn sync(&self) -> Pending<()> {
        futures::future::ready(Ok(())).boxed()
    }

    fn close(&self) -> Pending<()> {
        self.shared.closed.store(true, Ordering::Relaxed);
        let (reply, done) = oneshot::channel();
        let _ = self.writes.send(Write::Flush(reply));
        async move {
            let _ = done.await;
            Ok(())
        }
        .boxed()
    }

    fn version(&self) -> u64 {
        self.shared.index.version()
    }

    fn watcher_count(&self) -> usize {
        self.shared.index.watcher_count()
    }
}

impl EtcdStore {
    fn submit(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<Arc<Pod>, StoreError>>) -> Write,
    ) -> Pending<Arc<Pod>> {
        if let Err(err) = self.shared.check_open() {
            return futures::future::ready(Err(err)).boxed();
        }
        let (reply, outcome) = oneshot::channel();
        if self.writes.send(write(reply)).is_err() {
            return futures::future::ready(Err(StoreError::Storage(
                "the store is shut down".into(),
            )))
            .boxed();
        }
        let shared = Arc::clone(&self.shared);
        async move {
            let pod = outcome
                .await
                .unwrap_or_else(|_| Err(StoreError::Storage("the store is shut down".into())))?;
            // The ack waits for this server's index, so that its watchers
            // have the change first, as on the embedded stores. (The writer
            // goes on meanwhile: it only waits for etcd.)
            let seen = shared.index.reached(pod.resource_version);
            if tokio::time::timeout(SEEN_TIMEOUT, seen).await.is_err() {
                tracing::warn!(
                    version = pod.resource_version,
                    "a committed write is not in this server's index yet"
                );
            }
            Ok(pod)
        }
        .boxed()
    }
}
