//! The load generators: each drives a server through the same gRPC clients
//! as every other program here, checks every answer, and returns what it
//! measured as a typed result (with the run's settings) that the reporter
//! prints. Each module also holds its load's command-line flags.

pub mod ceiling;
pub mod fanout;
pub mod follow;
pub mod followers;
pub mod pages;
pub mod process;
pub mod snapshot;
pub mod sync;
pub mod unary;
pub mod upload;
pub mod watchers;

use std::time::Duration;

use anyhow::bail;
use pod_service::client::{Client, status_error};
use pod_service::contract::{Pod, SyncAck, SyncRequest, sync_event, sync_request};

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Opens a WatchPods stream of `namespace` (asking for bookmarks if
/// `bookmarks`) and reads its first pod, so that the watcher is surely
/// registered: some servers send a stream's headers only with its first
/// message.
pub async fn registered_watch(
    client: &Client,
    namespace: &str,
    bookmarks: bool,
) -> anyhow::Result<tonic::Streaming<Pod>> {
    let request = pod_service::contract::ListPodsRequest {
        namespace: namespace.to_owned(),
        allow_bookmarks: bookmarks,
        ..Default::default()
    };
    let mut stream = client
        .clone()
        .watch_pods(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if stream.message().await.map_err(status_error)?.is_none() {
        bail!("a watch of {namespace} ended before its first pod");
    }
    Ok(stream)
}

/// Creates (or updates) pods `names` of `namespace`, all `Running`, in
/// one SyncPods session.
pub async fn create_pods(
    client: &Client,
    namespace: &str,
    names: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    let ops = names.into_iter().map(|name| apply_running(namespace, name));
    sync_ops(client, ops).await.map(drop)
}

/// Sends `ops` (numbered from 1) in one SyncPods session, half-closes it,
/// and returns the acks the server sent until it ended the session.
pub async fn sync_ops(
    client: &Client,
    ops: impl IntoIterator<Item = sync_request::Op>,
) -> anyhow::Result<Vec<SyncAck>> {
    let requests: Vec<_> = ops
        .into_iter()
        .zip(1..)
        .map(|(op, id)| SyncRequest { id, op: Some(op) })
        .collect();
    let mut events = client
        .clone()
        .sync_pods(tokio_stream::iter(requests))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut acks = Vec::new();
    while let Some(event) = events.message().await.map_err(status_error)? {
        if let Some(sync_event::Event::Ack(ack)) = event.event {
            acks.push(ack);
        }
    }
    Ok(acks)
}

/// Applying pod `name` of `namespace`, `Running` with one replica.
pub fn apply_running(namespace: &str, name: impl Into<String>) -> sync_request::Op {
    sync_request::Op::Apply(Pod {
        name: name.into(),
        namespace: namespace.to_owned(),
        status: "Running".into(),
        replicas: 1,
        ..Pod::default()
    })
}
