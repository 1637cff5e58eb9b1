//! The write queue of one server: its writes go to etcd one at a time, in
//! the order they were submitted, and each is acknowledged once etcd
//! committed it and this server's cache has it.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::shared::Shared;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};
use crate::store::backend::Pending;
use crate::store::error::StoreError;

/// How long a write waits for this server's cache to show it before its
/// ack goes out anyway (it is committed; only the order of a session's
/// change and ack could suffer).
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = oneshot::Sender<Result<Arc<Pod>, StoreError>>;

/// A write in the queue, and where its outcome goes.
pub(super) enum Write {
    Apply(ApplyPod, Reply),
    Delete(PodKey, Reply),
    /// Answered once every write before it is done.
    Flush(oneshot::Sender<()>),
}

/// Where writes are submitted.
pub(super) struct Writer {
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Write>,
}

impl Writer {
    /// The queue, and the task that empties it.
    pub fn start(shared: Arc<Shared>) -> (Self, JoinHandle<()>) {
        let (queue, writes) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(Arc::clone(&shared), writes));
        (Writer { shared, queue }, task)
    }

    /// Queues a write now; the future resolves once etcd committed it and
    /// this server's cache has it, so that its watchers have the change
    /// first, as on the embedded stores.
    pub fn submit(&self, write: impl FnOnce(Reply) -> Write) -> Pending<Arc<Pod>> {
        if let Err(err) = self.shared.check_open() {
            return futures::future::ready(Err(err)).boxed();
        }
        let (reply, outcome) = oneshot::channel();
        if self.queue.send(write(reply)).is_err() {
            return futures::future::ready(Err(StoreError::shut_down())).boxed();
        }
        let shared = Arc::clone(&self.shared);
        async move {
            let pod = outcome
                .await
                .unwrap_or_else(|_| Err(StoreError::shut_down()))?;
            // The writer goes on meanwhile: it only waits for etcd.
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
        let (reply, done) = oneshot::channel();
        let _ = self.queue.send(Write::Flush(reply));
        async move {
            let _ = done.await;
            Ok(())
        }
        .boxed()
    }
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
