//! How far back a watch over etcd resumes. At thousands of writes a
//! second, a count of changes (`--history`) covers only seconds, so the
//! history also keeps every change of its time window (`--history-window`,
//! 75 s by default on etcd), and etcd's compaction keeps them too: a watch
//! resumes from any of them on a replica that restarted meanwhile.

mod common;

use std::time::Duration;

use common::etcd::{EtcdCluster, unique_prefix};
use common::replicas::open;
use common::within;
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::store::{StoreConfig, StoreError};

/// Ten times the count of changes the history keeps.
const CHANGES: i32 = 100;
const HISTORY: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_a_restarted_replica_from_any_change_of_the_window() {
    let cluster = EtcdCluster::shared();
    for window in [StoreConfig::SHARED_HISTORY_WINDOW, Duration::ZERO] {
        let prefix = unique_prefix();
        let config = StoreConfig {
            history: HISTORY,
            history_window: window,
            ..StoreConfig::default()
        };
        let first = open(cluster, &prefix, config.clone()).await;
        let mut versions = Vec::new();
        for replicas in 0..CHANGES {
            let applied = first.apply(ApplyPod {
                key: PodKey::new("dev", "web"),
                status: "Running".into(),
                replicas,
                expected_version: None,
            });
            versions.push(applied.await.expect("apply").resource_version);
        }
        // What a compactor would do now: keep the count, and the window.
        first.compact().await.expect("compact");
        first.close().await.expect("close");
        drop(first);

        let restarted = open(cluster, &prefix, config).await;
        let from = versions[0];
        let watch = async { restarted.fresh(from).await?.watch(Some("dev".into()), from) }.await;
        if window.is_zero() {
            assert!(
                matches!(watch, Err(StoreError::VersionOutOfRange { .. })),
                "without a window, the first of {CHANGES} changes is beyond a history of \
                 {HISTORY} (else this test proves nothing): {watch:?}",
                watch = watch.map(|w| w.last_version())
            );
            continue;
        }
        let mut watcher = watch.expect("a watch from the window's first change resumes");
        for &expected in &versions[1..] {
            let change = within("the next change", watcher.next())
                .await
                .expect("a change");
            assert_eq!(change.resource_version, expected, "every change, in order");
        }
    }
}
