//! The writes of one server. Each is an etcd transaction ([`txn`](super::txn))
//! sent as soon as its turn in its [`WriteOrder`] comes: one session's
//! writes go one at a time, in the order it sent them, while different
//! sessions' writes are in flight together, as kube-apiserver's requests
//! are, so that etcd commits many in one raft round and one fsync; only
//! writes of one pod wait for each other ([`pod_turns`](super::pod_turns)).
//! At most
//! [`MAX_IN_FLIGHT`] transactions are in flight per server. Each write is
//! acknowledged once etcd committed it and this server's cache has it.
//!
//! Why a session's writes are not pipelined (op k+1 sent before op k's
//! answer): etcd does not keep the order of concurrent transactions, so a
//! delete and a re-create of one pod, or a chain of conditional applies,
//! could commit out of order; and clients keep one op in flight per
//! session anyway (see BENCHMARKS.md, "Concurrent writes and shared reads over
//! etcd").

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::task::TaskTracker;

use super::pod_turns::PodTurns;
use super::shared::Shared;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};
use crate::store::backend::Pending;
use crate::store::error::StoreError;
use crate::store::order::WriteOrder;

/// How many transactions one server has in flight at most. etcd serves
/// every stream of a connection at once up to its `--max-concurrent-streams`
/// (unlimited by default), and commits whatever is pending in one raft
/// round; beyond a few dozen, more in flight only queue in etcd.
pub(super) const MAX_IN_FLIGHT: usize = 128;

/// How long a write waits for this server's cache to show it before its
/// ack goes out anyway (it is committed; only the order of a session's
/// change and ack could suffer).
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A pod write.
pub(super) enum Write {
    Apply(ApplyPod),
    Delete(PodKey),
}

impl Write {
    fn pod(&self) -> &PodKey {
        match self {
            Write::Apply(apply) => &apply.key,
            Write::Delete(pod) => pod,
        }
    }
}

/// Where writes are submitted.
pub(super) struct Writer {
    shared: Arc<Shared>,
    in_flight: Arc<Semaphore>,
    /// The pods being written: one write at a time per pod.
    pods: Arc<PodTurns>,
    /// Every write submitted and not yet done, so that closing waits for
    /// them.
    writes: TaskTracker,
}

impl Writer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Writer {
            shared,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            pods: Arc::default(),
            writes: TaskTracker::new(),
        }
    }

    /// Submits a write after those submitted before it with `order`; the
    /// future resolves once etcd committed it and this server's cache has
    /// it, so that its watchers have the change first, as on the embedded
    /// stores. The write goes ahead whether or not the future is polled;
    /// one whose future was dropped before its turn is not sent (nobody
    /// would learn its outcome).
    pub fn submit(&self, write: Write, order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        if let Err(err) = self.shared.check_open() {
            return futures::future::ready(Err(err)).boxed();
        }
        let mut turn = order.next_turn();
        let (reply, outcome) = oneshot::channel();
        let (shared, in_flight) = (Arc::clone(&self.shared), Arc::clone(&self.in_flight));
        let pods = Arc::clone(&self.pods);
        self.writes.spawn(async move {
            turn.come().await;
            if reply.is_closed() {
                return;
            }
            let mut pod = pods.take(write.pod()).await;
            // Never closed: the semaphore lives as long as its writer.
            let Ok(_slot) = in_flight.acquire().await else {
                return;
            };
            let result = match write {
                Write::Apply(apply) => shared.apply(apply, pod.known()).await,
                Write::Delete(key) => shared.delete(key, pod.known()).await,
            };
            drop(pod);
            // The session's next write may go: etcd has answered this one.
            drop(turn);
            let _ = reply.send(result);
        });
        let shared = Arc::clone(&self.shared);
        async move {
            let pod = outcome
                .await
                .unwrap_or_else(|_| Err(StoreError::shut_down()))?;
            let seen = shared.cache.reached(pod.resource_version);
            if tokio::time::timeout(SEEN_TIMEOUT, seen).await.is_err() {
                tracing::warn!(
                    version = pod.resource_version,
                    "a committed write is not in this server's cache yet"
                );
            }
            Ok(pod)
        }
        .boxed()
    }

    /// Resolves once every write submitted before it is done.
    pub fn flush(&self) -> Pending<()> {
        let writes = self.writes.clone();
        writes.close();
        async move {
            writes.wait().await;
            Ok(())
        }
        .boxed()
    }
}
