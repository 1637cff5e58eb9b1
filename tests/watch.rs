//! WatchPods end to end: snapshot, resume, ordering under concurrent writers,
//! OUT_OF_RANGE, slow watchers, departed clients, shutdown, and the
//! resumable client watch.
//!
//! These tests run on every store: memory, durable and etcd (a fresh
//! prefix of a real 3-member cluster). The embedded stores number changes
//! consecutively; where a test expects that, it says so
//! ([`Backend::assert_next`](common::Backend::assert_next)): etcd only
//! promises that versions strictly increase.

#[path = "watch/bookmarks.rs"]
mod bookmarks;
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Backend, Session, TestServer, list_request, pod, within};
use pod_service::client::{EventKind, PodWatch, WatchUpdate};
use pod_service::contract::LAST_VERSION_KEY;
use pod_service::contract::{Pod, PodServiceClient, sync_request};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

async fn watch(
    client: &mut PodServiceClient<Channel>,
    namespace: &str,
    from: u64,
) -> Result<Streaming<Pod>, Status> {
    client
        .watch_pods(list_request(namespace, from))
        .await
        .map(|r| r.into_inner())
}

async fn next(stream: &mut Streaming<Pod>) -> Pod {
    within("a watched pod", stream.message())
        .await
        .expect("watch failed")
        .expect("watch ended")
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| format!("{}/{}@{}", p.namespace, p.name, p.resource_version))
        .collect()
}

/// Asserts that `versions`, the versions of successive changes, follow one
/// another from `start` (the store's version before the first): the next
/// integer each on the embedded stores, a larger one each on etcd.
fn assert_numbered(backend: Backend, start: u64, versions: &[u64]) {
    let mut earlier = start;
    for &later in versions {
        backend.assert_next(earlier, later);
        earlier = later;
    }
}

/// The version a sync session's successful op stored.
fn acked_version(ack: &pod_service::contract::SyncAck) -> u64 {
    assert_eq!(ack.code, 0, "{}", ack.message);
    ack.pod
        .as_ref()
        .expect("an ack carries the pod")
        .resource_version
}

async fn snapshot_then_live_changes_of_one_namespace(backend: Backend) {
    let server = TestServer::start(backend).await;
    let start = server.store.version();
    let v1 = server
        .apply("prod", "web", "Running", 2)
        .await
        .resource_version;
    let v2 = server
        .apply("dev", "web", "Running", 1)
        .await
        .resource_version;
    let v3 = server
        .apply("prod", "api", "Running", 1)
        .await
        .resource_version;
    let mut client = server.client().await;
    let mut stream = watch(&mut client, "prod", 0).await.unwrap();

    let snapshot = [next(&mut stream).await, next(&mut stream).await];
    assert_eq!(
        names(&snapshot),
        [format!("prod/api@{v3}"), format!("prod/web@{v1}")]
    );

    // Other namespace, not seen.
    let v4 = server
        .apply("dev", "web", "Failed", 0)
        .await
        .resource_version;
    let v5 = server
        .apply("prod", "web", "Pending", 3)
        .await
        .resource_version;
    let mut session = Session::open(&mut client).await;
    let v6 = acked_version(&session.delete("prod", "api").await);
    assert_numbered(backend, start, &[v1, v2, v3, v4, v5, v6]);

    let modified = next(&mut stream).await;
    assert_eq!(
        (
            modified.resource_version,
            modified.status.as_str(),
            modified.replicas
        ),
        (v5, "Pending", 3)
    );
    let deleted = next(&mut stream).await;
    assert_eq!(
        (
            deleted.name.as_str(),
            deleted.resource_version,
            deleted.deleted
        ),
        ("api", v6, true)
    );
}

async fn watch_from_a_version_gets_exactly_the_later_changes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let start = server.store.version();
    let mut written = Vec::new(); // v1..v10
    for replicas in 0..10 {
        written.push(
            server
                .apply("a", "web", "Running", replicas)
                .await
                .resource_version,
        );
    }
    let mut client = server.client().await;
    let mut stream = watch(&mut client, "", written[3]).await.unwrap();
    for &version in &written[4..] {
        assert_eq!(next(&mut stream).await.resource_version, version);
    }
    let v11 = server.apply("b", "db", "Running", 1).await.resource_version;
    assert_eq!(next(&mut stream).await.resource_version, v11);

    // At the current version: nothing old, only what comes next.
    let mut stream = watch(&mut client, "", v11).await.unwrap();
    let v12 = server.apply("b", "db", "Running", 2).await.resource_version;
    assert_eq!(next(&mut stream).await.resource_version, v12);
    written.extend([v11, v12]);
    assert_numbered(backend, start, &written);
}

/// Many writers at once: every watcher sees every change exactly once, in
/// version order, with no gap; a namespace watcher sees exactly its own.
async fn concurrent_writers_no_gap_no_repeat(backend: Backend) {
    const WRITERS: u64 = 8;
    const OPS: u64 = 150;
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let start = server.store.version();
    let mut all = watch(&mut client, "", start).await.unwrap();
    let mut all_from_zero = watch(&mut client, "", 0).await.unwrap();
    let mut ns3 = watch(&mut client, "ns-3", start).await.unwrap();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut session = Session::open(&mut client).await;
                let mut written = Vec::new();
                for i in 0..OPS {
                    let ack = session
                        .apply(pod(
                            &format!("ns-{w}"),
                            &format!("pod-{}", i % 5),
                            "Running",
                            i as i32,
                        ))
                        .await;
                    written.push(acked_version(&ack));
                }
                written
            })
        })
        .collect();
    let mut written = Vec::new();
    let mut written_in_ns3 = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        let versions = within("writers", writer).await.unwrap();
        if w == 3 {
            written_in_ns3.clone_from(&versions);
        }
        written.extend(versions);
    }

    // Every write has a version of its own; in version order, they are
    // start + 1..=start + total on the embedded stores.
    let total = WRITERS * OPS;
    written.sort_unstable();
    written.dedup();
    assert_eq!(written.len() as u64, total, "one version per write");
    assert_numbered(backend, start, &written);
    for &version in &written {
        assert_eq!(next(&mut all).await.resource_version, version);
        assert_eq!(next(&mut all_from_zero).await.resource_version, version);
    }
    let mut last = 0;
    for &version in &written_in_ns3 {
        let change = next(&mut ns3).await;
        assert_eq!(change.namespace, "ns-3");
        assert!(change.resource_version > last, "in version order");
        assert_eq!(change.resource_version, version);
        last = change.resource_version;
    }
    // Nothing more is pending for the namespace watcher: a new change in
    // ns-3 is the very next thing it gets.
    let marker = server.apply("ns-3", "marker", "Running", 1).await;
    assert_eq!(
        next(&mut ns3).await.resource_version,
        marker.resource_version
    );
}

/// ListPods, then WatchPods from the list's version, while writers run:
/// list + changes equals the final state (the Kubernetes list-watch contract).
async fn list_then_watch_is_a_consistent_cache(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    // How many writes succeeded so far.
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let mut client = client.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut session = Session::open(&mut client).await;
            let mut written = Vec::new();
            for i in 0..300 {
                let name = format!("pod-{}", i % 17);
                let ack = if i % 7 == 6 {
                    session.delete("default", &name).await
                } else {
                    session.apply(pod("default", &name, "Running", i)).await
                };
                assert!(ack.code == 0 || ack.code == Code::NotFound as u32);
                if ack.code == 0 {
                    written.push(acked_version(&ack));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            written
        })
    };
    // List somewhere in the middle of the writes.
    common::eventually(|| done.load(Ordering::Relaxed) >= 50, "some writes").await;
    let list = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    let mut cache: BTreeMap<String, Pod> =
        list.pods.into_iter().map(|p| (p.name.clone(), p)).collect();
    let mut stream = watch(&mut client, "", list.resource_version).await.unwrap();
    let written = within("writer", writer).await.unwrap();

    // The writes the list does not reflect, in order: exactly what the
    // watch must bring, no gap, no repeat.
    let after_list: Vec<u64> = written
        .into_iter()
        .filter(|&version| version > list.resource_version)
        .collect();
    let mut version = list.resource_version;
    for &expected in &after_list {
        let change = next(&mut stream).await;
        assert_eq!(change.resource_version, expected, "no gap, no repeat");
        // Embedded stores number changes consecutively: +1 is "no gap".
        backend.assert_next(version, change.resource_version);
        version = change.resource_version;
        if change.deleted {
            assert!(
                cache.remove(&change.name).is_some(),
                "deleted pod was known"
            );
        } else {
            cache.insert(change.name.clone(), change);
        }
    }
    let fresh = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cache.into_values().collect::<Vec<_>>(), fresh.pods);
}

async fn a_dropped_stream_resumes_from_its_last_version(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let start = server.store.version();
    let mut stream = watch(&mut client, "", 0).await.unwrap();
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            server
                .apply("a", &format!("p{i}"), "Running", 1)
                .await
                .resource_version,
        );
    }
    let mut last = 0;
    for &version in &written[..3] {
        last = next(&mut stream).await.resource_version;
        assert_eq!(last, version);
    }
    drop(stream);
    for i in 5..8 {
        written.push(
            server
                .apply("a", &format!("p{i}"), "Running", 1)
                .await
                .resource_version,
        );
    }
    assert_numbered(backend, start, &written);
    let mut stream = watch(&mut client, "", last).await.unwrap();
    for &version in &written[3..] {
        assert_eq!(next(&mut stream).await.resource_version, version);
    }
}

async fn versions_outside_the_history_are_out_of_range(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            history: 5,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let start = server.store.version();
    let mut written = Vec::new(); // v1..v20, v16..v20 retained
    for replicas in 0..20 {
        written.push(
            server
                .apply("a", "web", "Running", replicas)
                .await
                .resource_version,
        );
    }
    assert_numbered(backend, start, &written);
    let newest = written[19];
    // Too old: v1 and v14. Beyond the newest: far beyond it, and (on the
    // embedded stores) just after it. On etcd the newest version a watch
    // may start from is the cluster's revision, which the other tests on
    // the shared cluster move on at any time: a watch from newest + 1 is
    // rightly served once any key of the cluster changed, so the boundary
    // cannot be pinned here (the far one stands for it).
    let mut outside = vec![written[0], written[13], newest + 1_000_000_000];
    if backend != Backend::Etcd {
        outside.push(newest + 1);
    }
    let mut client = server.client().await;
    for from in outside {
        let status = watch(&mut client, "", from).await.unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "from {from}");
        assert!(
            status
                .message()
                .contains(&format!("resource_version {from}"))
                && status.message().contains("list again"),
            "{}",
            status.message()
        );
    }
    let mut stream = watch(&mut client, "", written[14]).await.unwrap();
    assert_eq!(next(&mut stream).await.resource_version, written[15]);
}

/// A watcher that stops reading neither blocks a writer nor makes the server
/// buffer without bound: it is dropped with RESOURCE_EXHAUSTED naming the
/// last version it got, and can resume from there.
async fn a_slow_watcher_does_not_hold_up_writers(backend: Backend) {
    const CHANGES: u64 = 8_000;
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            watch_buffer: 64,
            history: 100_000,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let mut client = server.client().await;
    let mut slow = watch(&mut common::stalling_connection(server.url()).await, "", 0)
        .await
        .unwrap();
    let mut fast = watch(&mut client, "", 0).await.unwrap();
    server.await_watchers(2).await;

    // The writer: one session, ops in batches of 32, every ack awaited. The
    // fast watcher reads each batch before the next is sent, so it is never
    // more than 32 changes behind (its buffer is 64), while the slow one
    // reads nothing at all.
    let start = server.store.version();
    let mut session = Session::open(&mut client).await;
    let mut written = Vec::new();
    for batch in 0..CHANGES / 32 {
        for i in 0..32 {
            let replicas = (batch * 32 + i) as i32;
            session
                .send(sync_request::Op::Apply(pod(
                    "a", "web", "Running", replicas,
                )))
                .await;
        }
        for _ in 0..32 {
            let version = acked_version(&session.next_ack().await);
            assert_eq!(next(&mut fast).await.resource_version, version);
            written.push(version);
        }
    }
    assert_numbered(backend, start, &written);

    // Only now does the slow watcher read: what was in flight, then the end.
    let mut received = 0; // how many changes it got: written[..received]
    let status = loop {
        match within("the slow watcher", slow.message()).await {
            Ok(Some(change)) => {
                assert_eq!(
                    Some(change.resource_version),
                    written.get(received).copied(),
                    "no gap before the end"
                );
                received += 1;
            }
            Ok(None) => panic!("slow watcher ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{status:?} after {received}"
    );
    assert!(received < written.len(), "the slow watcher was cut off");
    assert!(received > 0, "the slow watcher got what was in flight");
    let last = written[received - 1];
    assert!(
        status
            .message()
            .contains(&format!("last delivered resource_version {last}")),
        "{}",
        status.message()
    );
    let trailer = status.metadata().get(LAST_VERSION_KEY).unwrap();
    assert_eq!(trailer.to_str().unwrap(), last.to_string());

    let mut resumed = watch(&mut client, "", last).await.unwrap();
    for &version in &written[received..] {
        assert_eq!(next(&mut resumed).await.resource_version, version);
    }
}

async fn a_departed_client_frees_its_watcher(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let stream = watch(&mut client, "", 0).await.unwrap();
    let mut session = Session::open(&mut client).await;
    let ack = session
        .call(sync_request::Op::Subscribe(Default::default()))
        .await;
    assert_eq!(ack.code, 0);
    server.await_watchers(2).await;

    drop(stream);
    server.await_watchers(1).await;
    drop(session);
    server.await_watchers(0).await;

    // A whole connection going away frees its watchers too.
    let mut other = server.client().await;
    let streams = [
        watch(&mut other, "", 0).await.unwrap(),
        watch(&mut other, "a", 0).await.unwrap(),
    ];
    server.await_watchers(2).await;
    drop((other, streams));
    server.await_watchers(0).await;
}

async fn shutdown_ends_open_watches_with_unavailable(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let v1 = server
        .apply("a", "web", "Running", 1)
        .await
        .resource_version;
    let mut client = server.client().await;
    let mut stream = watch(&mut client, "", 0).await.unwrap();
    assert_eq!(next(&mut stream).await.resource_version, v1);
    // The version the snapshot reflects, where a watch resumes: the
    // store's version when the watch began (nothing has changed since).
    // That is v1 on the embedded stores; on etcd, the cluster's revision
    // that the watch read, at least v1.
    let reflected = server.store.version();
    if backend == Backend::Etcd {
        assert!(reflected >= v1, "{reflected} is before {v1}");
    } else {
        assert_eq!(reflected, v1);
    }
    server.stop().await;
    let status = within("the end of the watch", stream.message())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let trailer = status.metadata().get(LAST_VERSION_KEY).unwrap();
    assert_eq!(trailer.to_str().unwrap(), reflected.to_string());
}

/// Skips the notices of a client watch that is waiting for the server.
async fn next_update(watch: &mut PodWatch) -> WatchUpdate {
    loop {
        match within("a watch update", watch.next()).await.unwrap() {
            WatchUpdate::Interrupted { .. } => continue,
            update => return update,
        }
    }
}

async fn the_client_watch_rides_through_a_server_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let start = server.store.version();
    let v1 = server
        .apply("a", "web", "Running", 1)
        .await
        .resource_version;
    let client =
        pod_service::client::connect_lazy(&pod_service::client::ClientConfig::new(server.url()))
            .unwrap();
    let mut watch = PodWatch::new(client, "");
    let WatchUpdate::Listed(listed) = next_update(&mut watch).await else {
        panic!("a watch starts with a list");
    };
    assert_eq!(listed.len(), 1);
    let v2 = server
        .apply("a", "web", "Running", 2)
        .await
        .resource_version;
    let WatchUpdate::Changed(change) = next_update(&mut watch).await else {
        panic!("expected a change");
    };
    assert_eq!(
        (change.kind, change.pod.resource_version),
        (EventKind::Modified, v2)
    );

    server.stop().await;
    assert!(matches!(
        within("the interruption", watch.next()).await.unwrap(),
        WatchUpdate::Interrupted { .. }
    ));
    // Changes while the server is down are in its history.
    let v3 = server.apply("a", "db", "Running", 1).await.resource_version;
    let v4 = server.delete("a", "web").await.resource_version;
    server.restart().await;

    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_update(&mut watch).await {
            WatchUpdate::Changed(event) => seen.push((event.kind, event.pod.resource_version)),
            other => panic!("expected changes only, got {other:?}"),
        }
    }
    assert_eq!(seen, [(EventKind::Added, v3), (EventKind::Deleted, v4)]);
    // The next one is the live one.
    let v5 = server.apply("a", "db", "Running", 2).await.resource_version;
    let WatchUpdate::Changed(change) = next_update(&mut watch).await else {
        panic!("expected a change");
    };
    assert_eq!(change.pod.resource_version, v5);
    assert_numbered(backend, start, &[v1, v2, v3, v4, v5]);
}

async fn the_client_watch_relists_when_too_far_behind(backend: Backend) {
    let mut server = TestServer::start_with(
        backend,
        StoreConfig {
            history: 3,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    server.apply("a", "stays", "Running", 1).await;
    server.apply("a", "changes", "Running", 1).await;
    server.apply("a", "goes", "Running", 1).await;
    let client =
        pod_service::client::connect_lazy(&pod_service::client::ClientConfig::new(server.url()))
            .unwrap();
    let mut watch = PodWatch::new(client, "a");
    assert!(matches!(next_update(&mut watch).await, WatchUpdate::Listed(l) if l.len() == 3));

    server.stop().await;
    server.apply("a", "changes", "Pending", 5).await;
    server.delete("a", "goes").await;
    for i in 0..10 {
        server.apply("a", "new", "Running", i).await; // pushes the rest out of the history
    }
    server.restart().await;

    let WatchUpdate::Listed(diff) = next_update(&mut watch).await else {
        panic!("expected a re-list");
    };
    let diff: HashSet<(EventKind, String)> =
        diff.into_iter().map(|e| (e.kind, e.pod.name)).collect();
    let expected: HashSet<(EventKind, String)> = [
        (EventKind::Modified, "changes".to_owned()),
        (EventKind::Deleted, "goes".to_owned()),
        (EventKind::Added, "new".to_owned()),
    ]
    .into();
    assert_eq!(diff, expected);
    assert_eq!(watch.pods().count(), 3);
}

common::on_every_store!(
    snapshot_then_live_changes_of_one_namespace,
    watch_from_a_version_gets_exactly_the_later_changes,
    concurrent_writers_no_gap_no_repeat,
    list_then_watch_is_a_consistent_cache,
    a_dropped_stream_resumes_from_its_last_version,
    versions_outside_the_history_are_out_of_range,
    a_slow_watcher_does_not_hold_up_writers,
    a_departed_client_frees_its_watcher,
    shutdown_ends_open_watches_with_unavailable,
    the_client_watch_rides_through_a_server_restart,
    the_client_watch_relists_when_too_far_behind,
);
