//! The `PodService` gRPC handlers: one method per RPC, each validating its
//! request at the edge (see [`crate::validate`]), calling the store once, and
//! turning the result into wire messages.
//!
//! Streaming responses are `async_stream` generators polled by tonic: when a
//! client cancels or disconnects, tonic drops the generator, which drops its
//! watcher or log cursor, so nothing is left behind. Every endless stream
//! also ends when the server begins to shut down, so shutdown never waits on
//! a watcher.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::deadline;
use crate::pb::{
    self, GetLogsRequest, ListPodsRequest, ListPodsResponse, LogChunk, Pod, SyncAck, SyncEvent,
    SyncRequest, UploadLogsResponse, sync_event, sync_request,
};
use crate::shutdown::Shutdown;
use crate::store::{PodKey, PodStore};
use crate::telemetry::{CallLog, Counter};
use crate::validate::{self, Invalid};
use crate::watch::{WatchEnd, Watcher};

/// The longest log line accepted by default, in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 << 10;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The service: a handle on the shared store plus per-request limits.
#[derive(Clone)]
pub struct PodService {
    store: Arc<dyn PodStore>,
    max_line_bytes: usize,
    shutdown: Shutdown,
    lists: Arc<ListCache>,
}

impl PodService {
    pub fn new(store: Arc<dyn PodStore>, max_line_bytes: usize, shutdown: Shutdown) -> Self {
        PodService {
            store,
            max_line_bytes,
            shutdown,
            lists: Arc::default(),
        }
    }
}

/// The latest encoded list of each namespace filter ("" = all).
#[derive(Default)]
struct ListCache {
    entries: Mutex<HashMap<String, ListPodsResponse>>,
}

impl ListCache {
    /// Namespace filters remembered at most; a client asking for many
    /// namespaces empties the cache rather than growing it.
    const MAX_ENTRIES: usize = 64;

    fn get(&self, namespace: &str, version: u64) -> Option<ListPodsResponse> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(namespace)
            .filter(|list| list.resource_version == version)
            .cloned()
    }

    fn put(&self, namespace: String, list: ListPodsResponse) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_ENTRIES && !entries.contains_key(&namespace) {
            entries.clear();
        }
        entries.insert(namespace, list);
    }
}

#[tonic::async_trait]
impl pb::PodService for PodService {
    async fn list_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        let mut log = CallLog::start("ListPods", &request);
        log.received_one();
        let result = self.list(request.into_inner());
        log.finish(&result);
        result.map(Response::new)
    }

    type WatchPodsStream = ResponseStream<Pod>;

    async fn watch_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<Self::WatchPodsStream>, Status> {
        let mut log = CallLog::start("WatchPods", &request);
        let deadline = deadline::of(&request);
        match self.watch(request.into_inner()) {
            Ok(stream) => Ok(Response::new(
                log.stream(deadline::bounded(stream, deadline)),
            )),
            Err(status) => Err(log.fail(status)),
        }
    }

    async fn upload_logs(
        &self,
        request: Request<Streaming<LogChunk>>,
    ) -> Result<Response<UploadLogsResponse>, Status> {
        let mut log = CallLog::start("UploadLogs", &request);
        let result = self.upload(request.into_inner(), log.received()).await;
        log.finish(&result);
        result.map(Response::new)
    }

    type GetLogsStream = ResponseStream<LogChunk>;

    async fn get_logs(
        &self,
        request: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        let mut log = CallLog::start("GetLogs", &request);
        let deadline = deadline::of(&request);
        match self.logs(request.into_inner()) {
            Ok(stream) => Ok(Response::new(
                log.stream(deadline::bounded(stream, deadline)),
            )),
            Err(status) => Err(log.fail(status)),
        }
    }

    type SyncPodsStream = ResponseStream<SyncEvent>;

    async fn sync_pods(
        &self,
        request: Request<Streaming<SyncRequest>>,
    ) -> Result<Response<Self::SyncPodsStream>, Status> {
        let mut log = CallLog::start("SyncPods", &request);
        let deadline = deadline::of(&request);
        let stream = self.sync(request.into_inner(), log.received());
        Ok(Response::new(
            log.stream(deadline::bounded(stream, deadline)),
        ))
    }
}

/// How a failed upload's status ends, after the count of lines it stored:
/// clients look for it to tell a counted failure from a lost connection.
pub const STORED_BEFORE_ERROR: &str = "lines stored before this error";

/// The RPCs' work, apart from logging.
impl PodService {
    /// A list is a function of the namespace and the store version, so it is
    /// encoded once per pair and shared (see [`crate::wire`]).
    fn list(&self, request: ListPodsRequest) -> Result<ListPodsResponse, Status> {
        let namespace = validate::namespace_filter("namespace", &request.namespace)?;
        if let Some(cached) = self.lists.get(&request.namespace, self.store.version()) {
            return Ok(cached);
        }
        let list = self.store.list(namespace.as_deref());
        let pods = list.pods.iter().map(|pod| Pod::clone(pod)).collect();
        let response = ListPodsResponse::encoded(pods, list.version);
        self.lists.put(request.namespace, response.clone());
        Ok(response)
    }

    fn watch(
        &self,
        request: ListPodsRequest,
    ) -> Result<impl Stream<Item = Result<Pod, Status>> + Send + 'static, Status> {
        let namespace = validate::namespace_filter("namespace", &request.namespace)?;
        let mut watcher = self.store.watch(namespace, request.resource_version)?;
        let shutdown = self.shutdown.clone();
        let stream = async_stream::stream! {
            // One shutdown wait for the whole stream, not one per change:
            // this loop runs for every watcher on every change.
            let stopping = shutdown.cancelled();
            tokio::pin!(stopping);
            loop {
                let next = tokio::select! {
                    biased;
                    _ = &mut stopping => Err(WatchEnd::Closed { last_version: watcher.last_version() }),
                    next = watcher.next() => next,
                };
                match next {
                    Ok(pod) => yield Ok(Pod::clone(&pod)),
                    Err(end) => {
                        yield Err(end.into());
                        break;
                    }
                }
            }
        };
        Ok(stream)
    }

    async fn upload(
        &self,
        mut chunks: Streaming<LogChunk>,
        received: Counter,
    ) -> Result<UploadLogsResponse, Status> {
        let mut summary = UploadLogsResponse::default();
        let mut stored = async {
            while let Some(chunk) = chunks.message().await? {
                received.add();
                let (key, bytes) = self.check_chunk(&chunk)?;
                let lines = chunk.lines.len() as u64;
                self.store.append_log(key, chunk.lines).await?;
                summary.chunks += 1;
                summary.lines += lines;
                summary.bytes += bytes;
            }
            Ok::<_, Status>(())
        }
        .await;
        // Whether the upload ended or failed, the lines it reports as stored
        // are made durable before the answer leaves.
        let mut durable = true;
        if summary.chunks > 0
            && let Err(err) = self.store.sync().await
        {
            durable = false;
            stored = stored.and(Err(err.into()));
        }
        // An error says how much of the upload was stored before it, so the
        // client can tell exactly which lines made it; unless the store
        // itself failed, when nobody can.
        stored.map_err(|status| {
            let before = if durable {
                format!("{} {STORED_BEFORE_ERROR}", summary.lines)
            } else {
                format!(
                    "the {} lines accepted before it are not confirmed stored: \
                     none, some or all of them may be there after a restart",
                    summary.lines
                )
            };
            Status::new(
                status.code(),
                format!(
                    "chunk {}: {}; {before}",
                    summary.chunks + 1,
                    status.message()
                ),
            )
        })?;
        Ok(summary)
    }

    fn logs(
        &self,
        request: GetLogsRequest,
    ) -> Result<impl Stream<Item = Result<LogChunk, Status>> + Send + 'static, Status> {
        let key = validate::pod_key("", &request.namespace, "pod", &request.pod)?;
        let log = self.store.log(&key)?;
        let shutdown = self.shutdown.clone();
        let stream = async_stream::stream! {
            let mut updates = log.updates();
            let mut cursor = log.tail_cursor(request.tail_lines);
            loop {
                updates.borrow_and_update();
                let batch = log.read(cursor);
                cursor = batch.next;
                let caught_up = batch.lines.is_empty();
                if !caught_up {
                    yield Ok(LogChunk {
                        namespace: key.namespace.clone(),
                        pod: key.name.clone(),
                        lines: batch.lines,
                    });
                }
                if batch.at_end_of_closed_log || (caught_up && !request.follow) {
                    break;
                }
                if caught_up {
                    let stopping = tokio::select! {
                        _ = shutdown.cancelled() => true,
                        _ = updates.changed() => false,
                    };
                    if stopping {
                        yield Err(Status::unavailable("server is stopping"));
                        break;
                    }
                }
            }
        };
        Ok(stream)
    }

    fn sync(
        &self,
        mut requests: Streaming<SyncRequest>,
        received: Counter,
    ) -> impl Stream<Item = Result<SyncEvent, Status>> + Send + 'static {
        let service = self.clone();
        let stream = async_stream::stream! {
            let mut subscription: Option<Watcher> = None;
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
                        let ack = service.subscribe(request, &mut subscription);
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
                    Some(ack) = in_flight.next() => Next::Ack(ack),
                    change = next_change(live, &service.shutdown) => Next::Change(change),
                    request = requests.message(), if read => Next::Request(request),
                };
                match next {
                    Next::Ack(ack) => {
                        // A subscribed session sees its own change just before
                        // the ack of the op that made it, after everyone else's
                        // earlier changes.
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
                    Next::Change(Ok(pod)) => yield Ok(change_event(&pod)),
                    Next::Change(Err(end)) => {
                        yield Err(end);
                        break;
                    }
                    // Half-close: the remaining acks, then OK.
                    Next::Request(Ok(None)) => half_closed = true,
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
                        } else {
                            in_flight.push_back(service.submit_op(request));
                        }
                    }
                }
            }
        };
        stream
    }

    /// Checks a whole upload chunk before any of it is stored; returns the
    /// pod it is for and its byte count.
    fn check_chunk(&self, chunk: &LogChunk) -> Result<(PodKey, u64), Status> {
        let key = validate::pod_key("", &chunk.namespace, "pod", &chunk.pod)?;
        let bytes = validate::log_lines(&chunk.lines, self.max_line_bytes)?;
        Ok((key, bytes))
    }

    /// Submits an apply or delete to the store now; the future resolves to
    /// its ack once it is durable (or refused).
    fn submit_op(&self, request: SyncRequest) -> BoxFuture<'static, SyncAck> {
        let submitted = match request.op {
            Some(sync_request::Op::Apply(pod)) => validate::apply(pod).map(|a| self.store.apply(a)),
            Some(sync_request::Op::Delete(pod)) => {
                validate::delete(&pod).map(|key| self.store.delete(key))
            }
            Some(sync_request::Op::Subscribe(_)) | None => Err(Invalid::new(
                "op",
                "must be one of apply, delete or subscribe",
            )),
        };
        let id = request.id;
        async move {
            let result = match submitted {
                Ok(pending) => pending
                    .await
                    .map(|pod| Some(Pod::clone(&pod)))
                    .map_err(Status::from),
                Err(invalid) => Err(invalid.into()),
            };
            ack(id, result)
        }
        .boxed()
    }

    /// Registers the session's watcher; returns the subscribe's ack.
    fn subscribe(&self, request: SyncRequest, subscription: &mut Option<Watcher>) -> SyncAck {
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
        let watcher = validate::namespace_filter("subscribe.namespace", &subscribe.namespace)
            .map_err(Status::from)
            .and_then(|namespace| {
                self.store
                    .watch(namespace, subscribe.resource_version)
                    .map_err(Status::from)
            });
        match watcher {
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

/// The ack of an op: OK with the stored pod (if any), or the error's code
/// and message.
fn ack(id: u64, result: Result<Option<Pod>, Status>) -> SyncAck {
    match result {
        Ok(pod) => SyncAck {
            id,
            code: 0,
            message: String::new(),
            pod,
        },
        Err(status) => SyncAck {
            id,
            code: i32::from(status.code()) as u32,
            message: status.message().to_owned(),
            pod: None,
        },
    }
}

fn ack_event(ack: SyncAck) -> SyncEvent {
    SyncEvent {
        event: Some(sync_event::Event::Ack(ack)),
    }
}

enum Next {
    Ack(SyncAck),
    Change(Result<Arc<Pod>, Status>),
    Request(Result<Option<SyncRequest>, Status>),
}

/// The next change for a watch, or the status that ends it; for a session
/// that is not subscribed, only the end (at shutdown).
async fn next_change(
    watcher: Option<&mut Watcher>,
    shutdown: &Shutdown,
) -> Result<Arc<Pod>, Status> {
    let Some(watcher) = watcher else {
        shutdown.cancelled().await;
        return Err(Status::unavailable("server is stopping"));
    };
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(WatchEnd::Closed { last_version: watcher.last_version() }.into()),
        next = watcher.next() => next.map_err(Status::from),
    }
}

fn change_event(pod: &Pod) -> SyncEvent {
    SyncEvent {
        event: Some(sync_event::Event::Change(pod.clone())),
    }
}
