//! The load generators: each drives a server through the same gRPC clients
//! as every other program here, checks every answer, and reports rates
//! and latencies.

pub mod fanout;
pub mod follow;
pub mod pages;
pub mod snapshot;
pub mod sync;
pub mod unary;
pub mod upload;
pub mod watchers;

use std::time::Duration;

use anyhow::bail;
use pod_service::client::{Client, status_error};
use pod_service::contract::Pod;

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
