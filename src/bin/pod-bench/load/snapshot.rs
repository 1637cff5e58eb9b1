//! One WatchPods snapshot of every pod: pods/s and time to the first pod.

use std::time::{Duration, Instant};

use anyhow::bail;
use pod_service::client::{Client, status_error};

/// What a WatchPods snapshot measured.
#[derive(Debug, Clone)]
pub struct SnapshotFigures {
    pub pods: u64,
    pub elapsed: Duration,
    pub first_pod: Duration,
}

impl SnapshotFigures {
    pub fn pods_per_second(&self) -> f64 {
        self.pods as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens one WatchPods stream of every namespace and reads the snapshot
/// (as many pods as ListPods reports), then cancels the stream.
pub async fn watch_snapshot(client: &Client) -> anyhow::Result<SnapshotFigures> {
    let mut client = client.clone();
    let expected = client
        .list_pods(pod_service::contract::ListPodsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner()
        .pods
        .len() as u64;
    let start = Instant::now();
    let mut stream = client
        .watch_pods(pod_service::contract::ListPodsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner();
    let mut first_pod = None;
    let mut pods = 0;
    while pods < expected {
        if stream.message().await.map_err(status_error)?.is_none() {
            bail!("the watch ended after {pods} of {expected} pods");
        }
        first_pod.get_or_insert_with(|| start.elapsed());
        pods += 1;
    }
    Ok(SnapshotFigures {
        pods,
        elapsed: start.elapsed(),
        first_pod: first_pod.unwrap_or_default(),
    })
}
