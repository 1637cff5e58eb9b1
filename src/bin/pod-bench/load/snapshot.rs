//! One WatchPods snapshot of every pod: pods/s and time to the first pod.

use std::time::{Duration, Instant};

use anyhow::bail;
use pod_service::client::status_error;

use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `watch` load.
#[derive(clap::Args)]
pub struct WatchArgs {
    /// Snapshots to take, one after the other.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// What a WatchPods snapshot measured.
#[derive(Debug, Clone)]
pub struct SnapshotFigures {
    pub store: &'static str,
    pub pods: u64,
    pub elapsed: Duration,
    pub first_pod: Duration,
}

impl SnapshotFigures {
    pub fn pods_per_second(&self) -> f64 {
        self.pods as f64 / self.elapsed.as_secs_f64()
    }
}

impl Row for SnapshotFigures {
    const LOAD: &'static str = "watch";

    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.pods).named("pods"),
            Figure::seconds(self.elapsed.as_secs_f64()).named("seconds"),
            Figure::real(self.pods_per_second(), 0)
                .json("pods_per_second")
                .table("pods/s"),
            Figure::millis(self.first_pod)
                .json("first_pod_ms")
                .table("first pod"),
        ]
    }
}

/// Opens one WatchPods stream of every namespace and reads the snapshot
/// (as many pods as ListPods reports), then cancels the stream.
pub async fn watch_snapshot(target: &Target) -> anyhow::Result<SnapshotFigures> {
    let mut client = target.clients[0].clone();
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
        store: target.store,
        pods,
        elapsed: start.elapsed(),
        first_pod: first_pod.unwrap_or_default(),
    })
}
