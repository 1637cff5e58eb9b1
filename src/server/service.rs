//! The `PodService` gRPC handlers: one method per RPC, each validating its
//! request at the edge (see [`validate`](super::validate)), calling the registry once, and
//! turning the result into wire messages.
//!
//! Streaming responses are `async_stream` generators polled by tonic: when a
//! client cancels or disconnects, tonic drops the generator, which drops its
//! watcher or log cursor, so nothing is left behind. Every endless stream
//! also ends when the server begins to shut down, so shutdown never waits on
//! a watcher.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::access::{Action, Caller, Permissions, Resource, caller};
use super::bookmarks::BookmarkClock;
use super::call_log::{CallLog, Counter};
use super::continue_token;
use super::deadline;
use super::list_cache::ListCache;
use super::signals::Shutdown;
use super::sync_session;
use super::validate::{self, ListQuery};
use crate::contract::{
    self as pb, GetLogsRequest, ListPodsRequest, ListPodsResponse, LogChunk, Pod,
    STORED_BEFORE_ERROR, SyncEvent, SyncRequest, UploadLogsResponse, WatchedPod, bookmark,
};
use crate::domain::{PodKey, PodSelector};
use crate::metrics::{ServiceMetrics, WatchEnded};
use crate::store::{Fresh, Registry, StoreError, WatchEnd};

/// The longest log line accepted by default, in bytes.
pub(super) const DEFAULT_MAX_LINE_BYTES: usize = 64 << 10;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The service: a handle on the registry plus per-request limits.
#[derive(Clone)]
pub(super) struct PodService {
    registry: Arc<Registry>,
    max_line_bytes: usize,
    shutdown: Shutdown,
    bookmarks: BookmarkClock,
    lists: Arc<ListCache>,
    metrics: Arc<ServiceMetrics>,
    permissions: Permissions,
}

impl PodService {
    /// The service over `registry`, refusing log lines longer than
    /// `max_line_bytes`, sending bookmarks by `bookmarks`, ending its
    /// endless streams when `shutdown` is cancelled, counting into
    /// `metrics`, allowing what `permissions` allow.
    pub fn new(
        registry: Arc<Registry>,
        max_line_bytes: usize,
        bookmarks: BookmarkClock,
        shutdown: Shutdown,
        metrics: Arc<ServiceMetrics>,
        permissions: Permissions,
    ) -> Self {
        PodService {
            registry,
            max_line_bytes,
            bookmarks,
            shutdown,
            lists: Arc::default(),
            metrics,
            permissions,
        }
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
        let result = match caller(&request) {
            Ok(caller) => self.list(&caller, request.into_inner()).await,
            Err(status) => Err(status),
        };
        log.finish(&result);
        result.map(Response::new)
    }

    type WatchPodsStream = ResponseStream<WatchedPod>;

    async fn watch_pods(
        &self,
        request: Request<ListPodsRequest>,
    ) -> Result<Response<Self::WatchPodsStream>, Status> {
        let mut log = CallLog::start("WatchPods", &request);
        log.received_one();
        let deadline = deadline::of(&request);
        let watch = match caller(&request) {
            Ok(caller) => self.watch(&caller, request.into_inner(), deadline).await,
            Err(status) => Err(status),
        };
        match watch {
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
        let result = match caller(&request) {
            Ok(caller) => {
                self.upload(&caller, request.into_inner(), log.received())
                    .await
            }
            Err(status) => Err(status),
        };
        log.finish(&result);
        result.map(Response::new)
    }

    type GetLogsStream = ResponseStream<LogChunk>;

    async fn get_logs(
        &self,
        request: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        let mut log = CallLog::start("GetLogs", &request);
        log.received_one();
        let deadline = deadline::of(&request);
        let logs = match caller(&request) {
            Ok(caller) => self.logs(&caller, request.into_inner()).await,
            Err(status) => Err(status),
        };
        match logs {
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
        let caller = caller(&request).map_err(|status| log.fail(status))?;
        let stream = sync_session::session(
            sync_session::Access {
                caller,
                permissions: self.permissions.clone(),
            },
            Arc::clone(&self.registry),
            self.bookmarks.clone(),
            self.shutdown.clone(),
            request.into_inner(),
            log.received(),
            Arc::clone(&self.metrics),
        );
        Ok(Response::new(
            log.stream(deadline::bounded(stream, deadline)),
        ))
    }
}

/// The RPCs' work, apart from logging.
impl PodService {
    /// A whole list is a function of the namespace and the registry's version, so
    /// it is encoded once per pair and shared (see
    /// [`ListPodsResponse::encoded`]). A page, or one pod by name, is read
    /// and encoded per call.
    async fn list(
        &self,
        caller: &Caller,
        request: ListPodsRequest,
    ) -> Result<ListPodsResponse, Status> {
        let query = validate::list(&request)?;
        self.permissions
            .check(&caller.0, Action::Read, Resource::Pods, query.namespace())?;
        let (namespace, from, limit) = match query {
            ListQuery::Page {
                namespace,
                from,
                limit,
            } => (namespace, from, limit),
            ListQuery::Whole(selector) => {
                // A list reflects every write acknowledged before it, on
                // any server sharing the store.
                let fresh = self.registry.fresh(0).await?;
                return Ok(match selector {
                    PodSelector::Pod(_) => one_pod(&fresh, &selector),
                    _ => self.whole_list(&fresh, request.namespace, &selector),
                });
            }
        };
        let page = self.registry.list_page(namespace, from, limit).await?;
        Ok(ListPodsResponse {
            pods: page.pods.iter().map(|pod| Pod::clone(pod)).collect(),
            resource_version: page.version,
            continue_token: page
                .next
                .map(|next| continue_token::encode(&request.namespace, &next))
                .unwrap_or_default(),
            encoded: None,
        })
    }

    fn whole_list(
        &self,
        fresh: &Fresh<'_>,
        filter: String,
        selector: &PodSelector,
    ) -> ListPodsResponse {
        if let Some(cached) = self.lists.get(&filter, fresh.version()) {
            return cached;
        }
        let list = fresh.list(selector);
        let pods = list.pods.iter().map(|pod| Pod::clone(pod)).collect();
        let response = ListPodsResponse::encoded(pods, list.version);
        self.lists.put(filter, response.clone());
        response
    }

    async fn watch(
        &self,
        caller: &Caller,
        request: ListPodsRequest,
        deadline: Option<Instant>,
    ) -> Result<impl Stream<Item = Result<WatchedPod, Status>> + Send + 'static, Status> {
        let selector = validate::selector(&request)?;
        self.permissions.check(
            &caller.0,
            Action::Read,
            Resource::Pods,
            selector.namespace_limit(),
        )?;
        // A snapshot reflects every acknowledged write; a resume from a
        // version this server has not seen yet waits for it.
        let mut watcher = self
            .registry
            .fresh(request.resource_version)
            .await?
            .watch(selector, request.resource_version)?;
        if request.allow_bookmarks {
            watcher = watcher.with_initial_bookmark();
        }
        let mut idle = request.allow_bookmarks.then(|| self.bookmarks.idle());
        let shutdown = self.shutdown.clone();
        let metrics = Arc::clone(&self.metrics);
        let stream = async_stream::stream! {
            // One shutdown wait for the whole stream, not one per change:
            // this loop runs for every watcher on every change.
            let stopping = shutdown.cancelled();
            tokio::pin!(stopping);
            let mut ending = Ending { metrics: &metrics, deadline, why: None };
            loop {
                let snapshot = watcher.next_is_from_snapshot();
                // A watch without bookmarks polls no bookmark branch at all.
                let next = match &mut idle {
                    None => tokio::select! {
                        biased;
                        _ = &mut stopping => Err(WatchEnd::Closed { last_version: watcher.last_version() }),
                        next = watcher.next() => next.map(Some),
                    },
                    Some(idle) => tokio::select! {
                        biased;
                        _ = &mut stopping => Err(WatchEnd::Closed { last_version: watcher.last_version() }),
                        next = watcher.next() => next.map(Some),
                        () = idle.due() => Ok(None),
                    },
                };
                match next {
                    Ok(Some(pod)) => {
                        let events = &metrics.events;
                        match (snapshot, pod.deleted) {
                            (true, _) => events.added.inc(),
                            (false, false) => events.modified.inc(),
                            (false, true) => events.deleted.inc(),
                        };
                        yield Ok(WatchedPod(pod));
                    }
                    Ok(None) => match watcher.caught_up() {
                        Some(version) => {
                            metrics.events.bookmark.inc();
                            yield Ok(WatchedPod::from(bookmark(version)));
                        }
                        None => continue,
                    },
                    Err(end) => {
                        ending.why = Some(match end {
                            WatchEnd::Overflow { .. } => WatchEnded::Overflow,
                            WatchEnd::Closed { .. } => WatchEnded::Shutdown,
                            WatchEnd::StartedOver { .. } => WatchEnded::StartedOver,
                        });
                        yield Err(end.into());
                        break;
                    }
                }
                if let Some(idle) = &mut idle {
                    idle.sent();
                }
            }
        };
        Ok(stream)
    }

    async fn upload(
        &self,
        caller: &Caller,
        mut chunks: Streaming<LogChunk>,
        received: Counter,
    ) -> Result<UploadLogsResponse, Status> {
        let mut summary = UploadLogsResponse::default();
        let mut stored = async {
            let mut fresh = None;
            // The first chunk names the pod, and is the one checked.
            let mut pod: Option<PodKey> = None;
            while let Some(chunk) = chunks.message().await? {
                received.add();
                let (key, bytes) = self.check_chunk(&chunk)?;
                match &pod {
                    None => {
                        self.permissions.check(
                            &caller.0,
                            Action::Write,
                            Resource::PodLogs,
                            Some(&key.namespace),
                        )?;
                        pod = Some(key.clone());
                    }
                    Some(first) if *first != key => {
                        return Err(Status::invalid_argument(format!(
                            "namespace/pod: must name the pod of the first chunk ({}/{}): \
                             an upload is of one pod's log",
                            first.namespace, first.name
                        )));
                    }
                    Some(_) => {}
                }
                let fresh = match &fresh {
                    Some(fresh) => fresh,
                    // The pod may have been created through another
                    // server just now.
                    None => fresh.insert(self.registry.fresh(0).await?),
                };
                let lines = chunk.lines.len() as u64;
                if let Err(err) = fresh.append_log(key, chunk.lines).await {
                    if let StoreError::Interrupted { stored, .. } = &err {
                        // Counted, so that the error's count is exact.
                        summary.lines += stored;
                    }
                    return Err(err.into());
                }
                summary.chunks += 1;
                summary.lines += lines;
                summary.bytes += bytes;
                self.metrics.lines_uploaded.inc_by(lines);
                self.metrics.bytes_uploaded.inc_by(bytes);
            }
            Ok::<_, Status>(())
        }
        .await;
        // Whether the upload ended or failed, the lines it reports as stored
        // are made durable before the answer leaves.
        let mut durable = true;
        if summary.chunks > 0
            && let Err(err) = self.registry.sync().await
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

    async fn logs(
        &self,
        caller: &Caller,
        request: GetLogsRequest,
    ) -> Result<impl Stream<Item = Result<LogChunk, Status>> + Send + 'static, Status> {
        let (key, start) = validate::get_logs(&request)?;
        self.permissions.check(
            &caller.0,
            Action::Read,
            Resource::PodLogs,
            Some(&key.namespace),
        )?;
        // The pod may have been created through another server just now.
        let mut lines = self
            .registry
            .fresh(0)
            .await?
            .read_log(&key, start, request.follow)?;
        let shutdown = self.shutdown.clone();
        let following = request
            .follow
            .then(|| Following::new(&self.metrics.followers));
        let stream = async_stream::stream! {
            let _following = following;
            loop {
                let next = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => {
                        yield Err(Status::unavailable("server is stopping"));
                        break;
                    }
                    next = lines.next() => next,
                };
                match next {
                    Some(Ok(batch)) => yield Ok(LogChunk {
                        namespace: key.namespace.clone(),
                        pod: key.name.clone(),
                        lines: batch.lines,
                        first_line: batch.first_line,
                    }),
                    Some(Err(err)) => {
                        yield Err(err.into());
                        break;
                    }
                    None => break,
                }
            }
        };
        Ok(stream)
    }

    fn check_chunk(&self, chunk: &LogChunk) -> Result<(PodKey, u64), Status> {
        let key = validate::pod_key("", &chunk.namespace, "pod", &chunk.pod)?;
        let bytes = validate::log_lines(&chunk.lines, self.max_line_bytes)?;
        Ok((key, bytes))
    }
}

/// The list of one pod by name: at most one pod, at the version it was
/// read at. Not kept in the list cache: it costs less to encode than the
/// cache's lookup, and would only push the namespaces' lists out of it.
fn one_pod(fresh: &Fresh<'_>, selector: &PodSelector) -> ListPodsResponse {
    let list = fresh.list(selector);
    ListPodsResponse {
        pods: list.pods.iter().map(|pod| Pod::clone(pod)).collect(),
        resource_version: list.version,
        ..ListPodsResponse::default()
    }
}

/// Counts why a watch ended, when its stream is dropped: the reason the
/// stream gave, or else its deadline, or else its client went away.
struct Ending<'a> {
    metrics: &'a ServiceMetrics,
    deadline: Option<Instant>,
    why: Option<WatchEnded>,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let why = self.why.unwrap_or_else(|| match self.deadline {
            Some(deadline) if Instant::now() >= deadline => WatchEnded::Deadline,
            _ => WatchEnded::ClientGone,
        });
        self.metrics.watch_ended(why);
    }
}

/// A `GetLogs` call following its log, counted while it lasts.
struct Following(Gauge);

impl Following {
    fn new(followers: &Gauge) -> Self {
        followers.inc();
        Following(followers.clone())
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.0.dec();
    }
}
