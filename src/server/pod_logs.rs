//! The log RPCs' work, for the service's handlers: `UploadLogs`, an upload
//! of one pod's log, checked at its first chunk and made durable before its
//! answer; and `GetLogs`, a pod's stored lines and, when followed, the new
//! ones as they come.

use futures::{Stream, StreamExt};
use prometheus_client::metrics::gauge::Gauge;
use tonic::{Status, Streaming};

use std::sync::Arc;

use super::access::{Action, Caller, Permissions, Resource};
use super::call_log::Counter;
use super::signals::Shutdown;
use super::validate;
use crate::contract::{GetLogsRequest, LogChunk, STORED_BEFORE_ERROR, UploadLogsResponse};
use crate::domain::PodKey;
use crate::metrics::ServiceMetrics;
use crate::store::{Registry, StoreError};

/// What the log RPCs need.
#[derive(Clone)]
pub(super) struct PodLogs {
    pub registry: Arc<Registry>,
    pub permissions: Permissions,
    pub metrics: Arc<ServiceMetrics>,
    pub shutdown: Shutdown,
    /// The longest log line accepted, in bytes.
    pub max_line_bytes: usize,
}

impl PodLogs {
    pub(super) async fn upload(
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

    pub(super) async fn logs(
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
