//! One `SyncPods` session: a stream of ops in, a stream of acks and
//! changes out.
//!
//! A session's ops are validated once and submitted to the store in order
//! as they arrive; their acks go out in the same order, each once its op is
//! durable. Ops share commits instead of waiting in turn, up to
//! [`MAX_IN_FLIGHT`] at a time. A subscribed session also receives every
//! change of its namespace, and sees its own change just before the ack of
//! the op that made it, after everyone else's earlier changes.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, Stream, StreamExt};
use tonic::{Code, Status, Streaming};

use super::access::{Action, Caller, Permissions, Resource};
use super::bookmarks::{self, BookmarkClock, Idle};
use super::call_log::Counter;
use super::signals::Shutdown;
use super::validate;
use crate::contract::{
    Pod, SyncAck, SyncEvent, SyncRequest, ack, bookmark, sync_event, sync_request,
};
use crate::domain::{Invalid, PodSelector};
use crate::metrics::{OpKind, ServiceMetrics};
use crate::store::{Registry, WatchEnd, Watcher, WriteOrder};

/// Who runs a session, and what they may do: each op is checked, and a
/// refused op gets its own ack (`PERMISSION_DENIED`) while the session goes
/// on.
pub(super) struct Access {
    pub caller: Caller,
    pub permissions: Permissions,
}

/// Runs a session over `requests`; the stream ends after the last ack once
/// the client half-closes, or with the status that ended it.
pub(super) fn session(
    access: Access,
    registry: Arc<Registry>,
    clock: BookmarkClock,
    shutdown: Shutdown,
    mut requests: Streaming<SyncRequest>,
    received: Counter,
    metrics: Arc<ServiceMetrics>,
) -> impl Stream<Item = Result<SyncEvent, Status>> + Send + 'static {
    let mut ops = Ops {
        access,
        registry,
        order: WriteOrder::default(),
        metrics,
    };
    let stream = async_stream::stream! {
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        let mut subscription: Option<Watcher> = None;
        // Set when a subscription asked for bookmarks.
        let mut idle: Option<Idle> = None;
        // Ops submitted to the store, in order, awaiting their commit:
        // one session's ops share commits instead of waiting in turn.
        let mut in_flight = FuturesOrdered::new();
        // A subscribe waits until every earlier op is acknowledged, so
        // its backlog never comes after a change it already reflects.
        let mut subscribe: Option<SyncRequest> = None;
        let mut half_closed = false;
        loop {
            if in_flight.is_empty() {
                if let Some(request) = subscribe.take() {
                    let bookmarks = matches!(
                        &request.op,
                        Some(sync_request::Op::Subscribe(s)) if s.allow_bookmarks
                    );
                    let ack = ops.subscribe(request, &mut subscription).await;
                    if ack.code == 0 && bookmarks {
                        idle = Some(clock.idle());
                    }
                    yield Ok(ack_event(ack));
                    continue;
                }
                if half_closed {
                    break; // every op has been acknowledged
                }
            }
            let read = !half_closed && subscribe.is_none() && in_flight.len() < MAX_IN_FLIGHT;
            // While ops are in flight, changes go out with the acks (each
            // ack is preceded by the changes up to its version), so that
            // no change of a later op overtakes an earlier op's ack.
            let live = subscription.as_mut().filter(|_| in_flight.is_empty());
            let next = tokio::select! {
                // Shutdown, then acks, so that ops in flight never wait
                // behind reading more; then the requests, which acks bound.
                biased;
                () = &mut stopping => Next::Stopping,
                Some(ack) = in_flight.next() => Next::Ack(ack),
                request = requests.message(), if read => Next::Request(request),
                change = next_change(live) => Next::Change(change),
                () = bookmarks::due(&mut idle), if in_flight.is_empty() => Next::Bookmark,
            };
            let ack = match next {
                Next::Stopping => {
                    let status = match &subscription {
                        Some(watcher) => WatchEnd::Closed {
                            last_version: watcher.last_version(),
                        }
                        .into(),
                        None => Status::unavailable("server is stopping"),
                    };
                    yield Err(status);
                    break;
                }
                Next::Ack(ack) => ack,
                Next::Change(Ok(pod)) => {
                    if let Some(idle) = &mut idle {
                        idle.sent();
                    }
                    yield Ok(change_event(&pod));
                    continue;
                }
                Next::Change(Err(end)) => {
                    yield Err(end);
                    break;
                }
                Next::Bookmark => {
                    if let Some(version) = subscription.as_ref().and_then(Watcher::caught_up) {
                        yield Ok(change_event(&bookmark(version)));
                    }
                    continue;
                }
                // Half-close: the remaining acks, then OK.
                Next::Request(Ok(None)) => {
                    half_closed = true;
                    continue;
                }
                // A message that could not be read (too large, or the
                // client is gone, in which case nobody reads this).
                Next::Request(Err(status)) => {
                    yield Err(status);
                    break;
                }
                Next::Request(Ok(Some(request))) => {
                    received.add();
                    if let Some(sync_request::Op::Subscribe(_)) = request.op {
                        subscribe = Some(request);
                        continue;
                    }
                    let mut pending = ops.submit(request);
                    // An op the store has done at once (in memory, every
                    // op) is acknowledged now, without a round through
                    // `in_flight` and the loop. Only with nothing before
                    // it: acks go out in order.
                    let done = if in_flight.is_empty() {
                        (&mut pending).now_or_never()
                    } else {
                        None
                    };
                    match done {
                        Some(ack) => ack,
                        None => {
                            in_flight.push_back(pending);
                            continue;
                        }
                    }
                }
            };
            if let Some(idle) = &mut idle {
                idle.sent();
            }
            // A subscribed session sees its own change just before the ack
            // of the op that made it, after everyone else's earlier changes.
            let mut ended = None;
            let version = ack.pod.as_ref().map(|pod| pod.resource_version);
            if let (Some(watcher), Some(version)) = (subscription.as_mut(), version) {
                while let Some(change) = watcher.try_next_up_to(version) {
                    match change {
                        Ok(pod) => yield Ok(change_event(&pod)),
                        Err(end) => {
                            ended = Some(end);
                            break;
                        }
                    }
                }
            }
            yield Ok(ack_event(ack));
            if let Some(end) = ended {
                yield Err(end.into());
                break;
            }
        }
    };
    stream
}

/// What a session's ops need: the registry, and the order the contract
/// keeps between them (writes of other sessions may run alongside).
struct Ops {
    access: Access,
    registry: Arc<Registry>,
    order: WriteOrder,
    metrics: Arc<ServiceMetrics>,
}

impl Ops {
    /// Submits an apply or delete to the store now; the future resolves to
    /// its ack once it is durable (or refused).
    fn submit(&mut self, request: SyncRequest) -> BoxFuture<'static, SyncAck> {
        let kind = match &request.op {
            Some(sync_request::Op::Apply(_)) => OpKind::Apply,
            Some(sync_request::Op::Delete(_)) => OpKind::Delete,
            Some(sync_request::Op::Subscribe(_)) => OpKind::Subscribe,
            None => OpKind::None,
        };
        let submitted = match request.op {
            Some(sync_request::Op::Apply(pod)) => validate::apply(pod)
                .map_err(Status::from)
                .and_then(|apply| {
                    self.may_write(&apply.key.namespace)?;
                    Ok(self.registry.apply_in(&mut self.order, apply))
                }),
            Some(sync_request::Op::Delete(pod)) => validate::delete(&pod)
                .map_err(Status::from)
                .and_then(|key| {
                    self.may_write(&key.namespace)?;
                    Ok(self.registry.delete_in(&mut self.order, key))
                }),
            Some(sync_request::Op::Subscribe(_)) | None => {
                Err(Invalid::new("op", "must be one of apply, delete or subscribe").into())
            }
        };
        let id = request.id;
        let metrics = Arc::clone(&self.metrics);
        async move {
            let result = match submitted {
                Ok(pending) => pending
                    .await
                    .map(|pod| Some(Pod::clone(&pod)))
                    .map_err(Status::from),
                Err(refused) => Err(refused),
            };
            metrics.op(
                kind,
                result.as_ref().map_or_else(Status::code, |_| Code::Ok),
            );
            ack(id, result)
        }
        .boxed()
    }

    fn may_write(&self, namespace: &str) -> Result<(), Status> {
        let Access {
            caller,
            permissions,
        } = &self.access;
        permissions.check(&caller.0, Action::Write, Resource::Pods, Some(namespace))
    }

    /// Registers the session's watcher; returns the subscribe's ack.
    async fn subscribe(&self, request: SyncRequest, subscription: &mut Option<Watcher>) -> SyncAck {
        let ack = self.watch(request, subscription).await;
        let code = Code::from(i32::try_from(ack.code).unwrap_or(i32::MAX));
        self.metrics.op(OpKind::Subscribe, code);
        ack
    }

    async fn watch(&self, request: SyncRequest, subscription: &mut Option<Watcher>) -> SyncAck {
        let Some(sync_request::Op::Subscribe(subscribe)) = request.op else {
            return ack(request.id, Err(Status::internal("not a subscribe")));
        };
        if subscription.is_some() {
            return ack(
                request.id,
                Err(Status::failed_precondition(
                    "subscribe: this session is already subscribed; open a new session to \
                     watch another namespace",
                )),
            );
        }
        let watcher = async {
            let namespace =
                validate::namespace_filter("subscribe.namespace", &subscribe.namespace)?;
            let Access {
                caller,
                permissions,
            } = &self.access;
            permissions.check(
                &caller.0,
                Action::Read,
                Resource::Pods,
                namespace.as_deref(),
            )?;
            let fresh = self.registry.fresh(subscribe.resource_version).await?;
            Ok::<_, Status>(fresh.watch(
                PodSelector::namespace(namespace),
                subscribe.resource_version,
            )?)
        }
        .await;
        match watcher {
            Ok(watcher) if subscribe.allow_bookmarks => {
                *subscription = Some(watcher.with_initial_bookmark());
                ack(request.id, Ok(None))
            }
            Ok(watcher) => {
                *subscription = Some(watcher);
                ack(request.id, Ok(None))
            }
            Err(status) => ack(request.id, Err(status)),
        }
    }
}

/// The most ops one sync session may have waiting for their commit; beyond
/// it the session's requests are not read (HTTP/2 flow control holds the
/// client back).
const MAX_IN_FLIGHT: usize = 256;

fn ack_event(ack: SyncAck) -> SyncEvent {
    SyncEvent {
        event: Some(sync_event::Event::Ack(ack)),
    }
}

enum Next {
    /// The server is stopping.
    Stopping,
    Ack(SyncAck),
    Change(Result<Arc<Pod>, Status>),
    Request(Result<Option<SyncRequest>, Status>),
    /// A subscription that asked for bookmarks has been sent nothing for
    /// the bookmark interval.
    Bookmark,
}

/// The next change for a subscribed session; for one that is not (or not
/// now), never.
async fn next_change(watcher: Option<&mut Watcher>) -> Result<Arc<Pod>, Status> {
    match watcher {
        Some(watcher) => watcher.next().await.map_err(Status::from),
        None => std::future::pending().await,
    }
}

fn change_event(pod: &Pod) -> SyncEvent {
    SyncEvent {
        event: Some(sync_event::Event::Change(pod.clone())),
    }
}
