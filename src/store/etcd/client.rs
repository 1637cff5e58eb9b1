//! A thin etcd client: the calls the store makes, on one connection per
//! cluster member, with the failover done here.
//!
//! Why not the `etcd-client` crate: its build script needs a system
//! `protoc`, and this project builds with cargo alone (see docs/etcd.md).
//! Why failover by hand: a balanced channel kept sending to a killed member
//! for seconds here, so each member has a channel of its own, and a call
//! that finds its member unreachable moves to the next one.
//!
//! Reads are retried on another member whatever went wrong, since they
//! change nothing. A write is retried only when it cannot have reached etcd
//! (the connection was refused) or etcd said it did not propose it (no
//! leader); any other failure leaves it unknown whether it committed, and
//! is reported as such, never retried blindly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use super::api::etcdserverpb::{
    CompactionRequest, LeaseGrantRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
    WatchRequest, WatchResponse, kv_client::KvClient, lease_client::LeaseClient,
    watch_client::WatchClient,
};
use crate::metrics::StoreMetrics;
use crate::store::error::StoreError;
use crate::store::tls::{self, BackendTls, TlsFiles};

/// `pod-server`'s flags of the etcd TLS files, for the messages.
pub const ETCD_TLS_FLAGS: [&str; 3] = ["--etcd-cafile", "--etcd-certfile", "--etcd-keyfile"];

/// How long one call to one member may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pings on every connection, so that a member that stopped answering
/// (a frozen process, a dead host) is noticed within their sum even on a
/// silent watch. etcd sends GOAWAY to a client that pings more often than
/// its `--grpc-keepalive-min-time` (5 s by default).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(6);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest message taken from etcd: a watch catching up sends up to
/// 1,000 revisions in one response, and a revision of the starting pods
/// holds 100 of them.
const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// How many times a call goes round the members before it gives up.
const ROUNDS: usize = 3;

/// Where a watch stream takes further requests.
pub(super) type WatchRequests = tokio::sync::mpsc::UnboundedSender<WatchRequest>;

/// A connection to each member of one cluster.
pub(super) struct Etcd {
    members: Vec<Member>,
    /// The member that answered last: calls start there.
    current: AtomicUsize,
    /// Where each call's duration and result are counted.
    metrics: StoreMetrics,
    /// The TLS of `https://` members, for the messages of failed handshakes.
    tls: Option<BackendTls>,
}

struct Member {
    url: String,
    channel: Channel,
}

/// Why a read failed.
pub(super) enum ReadError {
    /// The revision asked for has been compacted.
    Compacted,
    Failed(StoreError),
}

impl From<ReadError> for StoreError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Compacted => {
                StoreError::Storage("etcd has compacted the revision asked for".into())
            }
            ReadError::Failed(err) => err,
        }
    }
}

impl From<StoreError> for ReadError {
    fn from(err: StoreError) -> Self {
        ReadError::Failed(err)
    }
}

/// Why a write failed.
pub(super) enum WriteError {
    /// It did not happen.
    Refused(StoreError),
    /// It may or may not have committed.
    Unknown(StoreError),
}

impl From<WriteError> for StoreError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Refused(err) | WriteError::Unknown(err) => err,
        }
    }
}

impl Etcd {
    /// Channels to `endpoints` (`http://HOST:PORT` each, or
    /// `https://HOST:PORT` each with `tls`, the system's CAs if `None`);
    /// they connect on first use.
    pub fn new(endpoints: &[String], tls: Option<&BackendTls>) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err("--etcd-endpoints: at least one endpoint is needed".into());
        }
        let tls = tls_for(endpoints, tls)?;
        let members = endpoints
            .iter()
            .map(|url| {
                let mut endpoint = Endpoint::from_shared(url.clone())
                    .ok()
                    .filter(|_| url.starts_with("http://") || url.starts_with("https://"))
                    .ok_or_else(|| {
                        format!("--etcd-endpoints: {url:?} is not a URL like http://127.0.0.1:2379")
                    })?;
                if let Some(tls) = &tls {
                    endpoint = endpoint
                        .tls_config(tls.tonic_config())
                        .map_err(|err| format!("--etcd-endpoints {url}: TLS: {err}"))?;
                }
                let channel = endpoint
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    // Not on idle connections: etcd counts such pings as
                    // abuse (its PermitWithoutStream is off) and closes them.
                    .keep_alive_while_idle(false)
                    .connect_lazy();
                Ok(Member {
                    url: url.clone(),
                    channel,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Etcd {
            members,
            tls,
            current: AtomicUsize::new(0),
            metrics: StoreMetrics::default(),
        })
    }

    /// Counts every call into `metrics`.
    pub fn with_metrics(self, metrics: StoreMetrics) -> Self {
        Etcd { metrics, ..self }
    }

    /// The endpoints, comma-separated, for messages.
    pub fn endpoints(&self) -> String {
        let urls: Vec<&str> = self.members.iter().map(|m| m.url.as_str()).collect();
        urls.join(", ")
    }

    /// A range read, linearizable unless `request.serializable`.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, ReadError> {
        let began = Instant::now();
        let answer = self
            .read(move |channel| {
                let request = request.clone();
                async move {
                    KvClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .range(timed(request))
                        .await
                }
            })
            .await;
        self.metrics.request("etcd", "range", answer.is_ok(), began);
        answer
    }

    /// A transaction, the store's only kind of write.
    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, WriteError> {
        let began = Instant::now();
        let answer = self.send_txn(request).await;
        self.metrics.request("etcd", "txn", answer.is_ok(), began);
        answer
    }

    async fn send_txn(&self, request: TxnRequest) -> Result<TxnResponse, WriteError> {
        let mut last = None;
        for attempt in self.attempts() {
            let member = &self.members[attempt];
            let answer = KvClient::new(member.channel.clone())
                .txn(timed(request.clone()))
                .await;
            match answer {
                Ok(response) => {
                    self.current.store(attempt, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Err(status) if not_sent(&status) => keep(&mut last, status),
                Err(status) if status.code() == Code::FailedPrecondition => {
                    return Err(WriteError::Refused(StoreError::Storage(format!(
                        "etcd refused the write: {}",
                        status.message()
                    ))));
                }
                Err(status) => {
                    self.move_on(attempt);
                    return Err(WriteError::Unknown(StoreError::Unavailable(format!(
                        "etcd did not confirm the write ({}: {}); it may or may not have \
                         happened: read the pod to see",
                        member.url,
                        status.message()
                    ))));
                }
            }
        }
        Err(WriteError::Refused(self.unreachable(last)))
    }

    /// Compacts etcd's history up to `revision` (cluster-wide).
    pub async fn compact(&self, revision: i64) -> Result<(), ReadError> {
        // Compacting twice at the same revision is harmless, so retries are.
        let began = Instant::now();
        let answer = self
            .read(move |channel| async move {
                KvClient::new(channel)
                    .compact(timed(CompactionRequest {
                        revision,
                        physical: false,
                    }))
                    .await
            })
            .await
            .map(drop);
        self.metrics
            .request("etcd", "compact", answer.is_ok(), began);
        answer
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn grant_lease(&self, ttl: i64) -> Result<i64, StoreError> {
        let response = self
            .read(move |channel| async move {
                LeaseClient::new(channel)
                    .lease_grant(timed(LeaseGrantRequest { ttl, id: 0 }))
                    .await
            })
            .await
            .map_err(StoreError::from)?;
        Ok(response.id)
    }

    /// Opens a watch stream on the next member that takes it, starting
    /// after `after` (the index of the member tried before, if any): the
    /// stream, where to send it more requests (progress requests), and the
    /// member's index. The stream asks for a leader, so an isolated member
    /// ends it instead of going silent. It stays open while the sender
    /// lives: a watch stream whose request side ended is cancelled by etcd.
    pub async fn watch(
        &self,
        create: WatchRequest,
        after: Option<usize>,
    ) -> Result<(Streaming<WatchResponse>, WatchRequests, usize), StoreError> {
        let mut last = None;
        let start = after.map_or(self.current.load(Ordering::Relaxed), |i| i + 1);
        for round in 0..self.members.len() {
            let index = (start + round) % self.members.len();
            let (requests, queue) = tokio::sync::mpsc::unbounded_channel();
            // Cannot fail: the receiver is right here.
            let _ = requests.send(create.clone());
            let mut request =
                Request::new(tokio_stream::wrappers::UnboundedReceiverStream::new(queue));
            request
                .metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
            match WatchClient::new(self.members[index].channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .watch(request)
                .await
            {
                Ok(stream) => return Ok((stream.into_inner(), requests, index)),
                Err(status) => keep(&mut last, status),
            }
        }
        Err(self.unreachable(last))
    }

    /// The URL of member `index`.
    pub fn url(&self, index: usize) -> &str {
        &self.members[index].url
    }

    async fn read<T, F, Fut>(&self, call: F) -> Result<T, ReadError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut last = None;
        for attempt in self.attempts() {
            match call(self.members[attempt].channel.clone()).await {
                Ok(response) => {
                    self.current.store(attempt, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Err(status) if compacted(&status) => return Err(ReadError::Compacted),
                Err(status) if permanent(&status) => {
                    return Err(ReadError::Failed(StoreError::Storage(format!(
                        "etcd refused the request: {}",
                        status.message()
                    ))));
                }
                Err(status) => {
                    self.move_on(attempt);
                    keep(&mut last, status);
                }
            }
        }
        Err(ReadError::Failed(self.unreachable(last)))
    }

    /// The members to try, in order: each, starting at the current one,
    /// [`ROUNDS`] times round.
    fn attempts(&self) -> impl Iterator<Item = usize> + '_ {
        let start = self.current.load(Ordering::Relaxed);
        let n = self.members.len();
        (0..n * ROUNDS).map(move |i| (start + i) % n)
    }

    fn move_on(&self, failed: usize) {
        let next = (failed + 1) % self.members.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn unreachable(&self, last: Option<Status>) -> StoreError {
        let why = match &last {
            None => String::new(),
            Some(status) => match (handshake_error(status), &self.tls) {
                (Some(err), Some(tls)) => {
                    format!(": the TLS handshake failed: {}", tls.explain(&err, "etcd"))
                }
                // A plaintext etcd closes the connection on a ClientHello.
                _ if self.tls.is_some() && status.message().contains("tls handshake eof") => {
                    ": the TLS handshake failed: etcd closed the connection during it; if it \
                     serves plaintext, use http:// endpoints"
                        .to_owned()
                }
                _ => format!(": {}", status.message()),
            },
        };
        StoreError::Unavailable(format!("cannot reach etcd at {}{why}", self.endpoints()))
    }
}

/// Keeps `status` as the failure to report, unless the one kept says why
/// a handshake failed and this one does not: a connection that failed its
/// handshake once can fail the next call only as "operation was canceled".
fn keep(last: &mut Option<Status>, status: Status) {
    let informative = |status: &Status| handshake_error(status).is_some();
    if !last.as_ref().is_some_and(informative) || informative(&status) {
        *last = Some(status);
    }
}

/// Whether etcd answered that the revision asked for was compacted
/// ("mvcc: required revision has been compacted").
fn compacted(status: &Status) -> bool {
    status.code() == Code::OutOfRange && status.message().contains("compacted")
}

/// Whether a failed call certainly did not reach etcd's log: the
/// connection was refused (tonic reports hyper's "tcp connect error"), or
/// etcd said it has no leader to propose to. Anything else, etcd's own
/// "request timed out, possibly due to connection lost" included, may have
/// committed.
fn not_sent(status: &Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    // A refused handshake: etcd's TLS layer let nothing through to it.
    handshake_error(status).is_some()
        || status.code() == Code::Unavailable
            && (message.contains("tcp connect error")
                || message.contains("connection refused")
                || message.contains("etcdserver: no leader"))
}

/// The TLS error under a failed call, if a handshake failed.
fn handshake_error(status: &Status) -> Option<rustls::Error> {
    let source = std::error::Error::source(status)?;
    tls::handshake_error(source)
}

/// The TLS of `endpoints`: `tls` (or the system's CAs) when every one is
/// `https://`, none when every one is `http://`; a mix, or TLS files with
/// `http://` endpoints, is refused.
fn tls_for(endpoints: &[String], tls: Option<&BackendTls>) -> Result<Option<BackendTls>, String> {
    let secure = endpoints.iter().filter(|url| url.starts_with("https://"));
    match (secure.count(), tls) {
        (0, None) => Ok(None),
        (0, Some(_)) => Err(format!(
            "--etcd-cafile, --etcd-certfile and --etcd-keyfile are for https:// endpoints, \
             and --etcd-endpoints {} is plaintext: use https:// URLs",
            endpoints.join(",")
        )),
        (n, _) if n < endpoints.len() => Err(format!(
            "--etcd-endpoints {} mixes http:// and https:// URLs: a cluster's members \
             all serve TLS or none do",
            endpoints.join(",")
        )),
        (_, Some(tls)) => Ok(Some(tls.clone())),
        (_, None) => BackendTls::load(TlsFiles {
            ca: None,
            cert: None,
            key: None,
            flags: ETCD_TLS_FLAGS,
        })
        .map(Some),
    }
}

/// Errors that another member would answer the same way.
fn permanent(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unimplemented
    )
}

fn timed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}
