//! What keeps the etcd mode right, and cheap, at the rates a cluster
//! reaches:
//!
//! - **consistent lists share their quorum reads**: many lists at once on
//!   one replica cost etcd a few reads, not one each;
//! - **the history keeps a time window**: at thousands of writes a second
//!   a count of changes (`--history`) covers only seconds, so the history
//!   also keeps every change of its window (`--history-window`, 75 s by
//!   default on etcd), and etcd's compaction keeps them too: a watch
//!   resumes from any of them on a replica that restarted meanwhile;
//! - **writes of one pod queue on their replica**: sent at once they would
//!   fail each other's compare and try again, n² transactions for n.

use crate::common;

use std::time::Duration;

use common::etcd::{EtcdCluster, unique_prefix};
use common::replicas::{http_get, open, replicas};
use common::{list_request, within};
use pod_service::domain::{ApplyPod, PodKey, PodSelector};
use pod_service::store::{StoreConfig, StoreError};

/// Lists at once on one replica, each several times over.
const CALLERS: usize = 64;
const LISTS_EACH: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_at_once_on_one_replica_share_their_quorum_reads() {
    // A cluster of this test's own: nothing else reads from it.
    let cluster = EtcdCluster::start(1).await;
    let servers = replicas(&cluster, &unique_prefix(), 1).await;
    let before = served(&cluster, "Range").await;
    let callers = (0..CALLERS).map(|_| {
        let server = &servers[0];
        async move {
            let mut client = server.client().await;
            for _ in 0..LISTS_EACH {
                client
                    .list_pods(list_request("", 0))
                    .await
                    .expect("a consistent list");
            }
        }
    });
    within("every list", futures::future::join_all(callers)).await;
    let reads = served(&cluster, "Range").await - before;
    let lists = CALLERS * LISTS_EACH;
    assert!(
        reads > 0 && reads <= lists / 4,
        "{lists} consistent lists, {CALLERS} at a time, made {reads} quorum reads: \
         they should share them (at most one in four)"
    );
}

/// Writes at once to one pod on one replica.
const WRITERS: i32 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_at_once_to_one_pod_on_one_replica_queue_rather_than_conflict() {
    let cluster = EtcdCluster::start(1).await;
    let store = open(&cluster, &unique_prefix(), StoreConfig::default()).await;
    let before = served(&cluster, "Txn").await;
    let writes = (0..WRITERS).map(|replicas| {
        store.apply(ApplyPod {
            key: PodKey::new("dev", "web"),
            status: "Running".into(),
            replicas,
            expected_version: None,
        })
    });
    let applied = within("every write", futures::future::join_all(writes)).await;
    let mut versions = Vec::new();
    for pod in applied {
        versions.push(
            pod.expect("every write to a busy pod applies")
                .resource_version,
        );
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        WRITERS as usize,
        "each at a version of its own"
    );
    let txns = served(&cluster, "Txn").await - before;
    assert!(
        txns <= WRITERS as usize + 2,
        "{WRITERS} writes at once to one pod took {txns} transactions: \
         they should queue, not fail each other's compare"
    );
}

/// How many calls of `method` etcd answered (its own
/// `grpc_server_handled_total`).
async fn served(cluster: &EtcdCluster, method: &str) -> usize {
    let metrics = http_get(&cluster.endpoint(0), "/metrics").await;
    let method = format!(r#"grpc_method="{method}""#);
    metrics
        .lines()
        .filter(|line| line.starts_with("grpc_server_handled_total{") && line.contains(&method))
        .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .sum::<f64>() as usize
}

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
        let watch = async {
            restarted
                .fresh(from)
                .await?
                .watch(PodSelector::Namespace("dev".into()), from)
        }
        .await;
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
