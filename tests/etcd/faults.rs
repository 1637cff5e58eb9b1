//! Replicas over a real etcd cluster in trouble: killed replicas and
//! members, a frozen member, compaction, a new registry on a cluster that
//! others compacted, and etcd that cannot be reached or holds foreign data.
//! Every test that hurts etcd starts a cluster of its own.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::etcd::{EtcdCluster, unique_prefix};
use common::process::{ClientProcess, ServerProcess};
use common::replicas::{AppliedVersion, base64, http, list, open, replicas};
use common::{Session, TestServer, list_request, pod, within};
use pod_service::client::{PodWatch, WatchUpdate};
use pod_service::contract::{PodServiceClient, sync_request};
use pod_service::domain::{ApplyPod, PodSelector};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use tokio::time::Instant;
use tonic::Code;

/// A new registry on a cluster that other registries have written to and
/// compacted, as any long-running cluster has: its feed must start over
/// from the compacted revision before the replica serves, not after. A
/// watch opened the moment the store is open sees the next write, and is
/// never ended by its cache starting over. (Seen from outside: about
/// 5-100 ms after "listening", every watch ended with "server is stopping".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registry_on_a_compacted_cluster_serves_only_once_its_feed_is_established() {
    let cluster = EtcdCluster::start(1).await;
    let keep_one = StoreConfig {
        history: 1,
        ..StoreConfig::default()
    };
    let other = open(&cluster, &unique_prefix(), keep_one).await;
    for replicas in 1..=5 {
        other.apply(apply("other", "web", replicas)).await.unwrap();
    }
    assert!(
        other.compact().await.expect("compact").is_some(),
        "the other registry compacted the cluster"
    );
    for round in 0..5 {
        let store = open(&cluster, &unique_prefix(), StoreConfig::default()).await;
        let mut watcher = store
            .fresh(0)
            .await
            .expect("fresh")
            .watch(PodSelector::All, 0)
            .expect("watch");
        let applied = store.apply(apply("dev", "web", round)).await.unwrap();
        let seen = within("the watch's first change", watcher.next()).await;
        assert_eq!(
            seen.map(|pod| pod.resource_version),
            Ok(applied.resource_version),
            "round {round}: the watch ended instead of seeing the write"
        );
    }
}

fn apply(namespace: &str, name: &str, replicas: i32) -> ApplyPod {
    ApplyPod {
        key: pod_service::domain::PodKey::new(namespace, name),
        status: "Running".into(),
        replicas,
        expected_version: None,
    }
}

/// `watch-pods --addr A,B,C` goes on after a `kill -9` of the replica it
/// reads from: every change printed once, nothing missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_pods_rides_through_a_killed_replica() {
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    let endpoints = cluster.endpoints_arg();
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &[]).await);
    }
    let addrs: Vec<String> = processes.iter().map(ServerProcess::url).collect();
    let mut watch = ClientProcess::spawn(
        env!("CARGO_BIN_EXE_watch-pods"),
        &["--addr", &addrs.join(",")],
    );
    assert!(watch.next_line().await.starts_with("EVENT"), "the header");
    let mut writer = PodServiceClient::connect(addrs[2].clone()).await.unwrap();
    let mut session = Session::open(&mut writer).await;
    let mut expected = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for i in 0..5 {
        let version = session
            .applied_version(pod("dev", &format!("before-{i}"), "Running", 1))
            .await;
        expected.insert(version, format!("before-{i}"));
        record(&mut seen, &watch.next_line().await);
    }
    // watch-pods reads from the first address: kill it.
    processes.remove(0).kill().await;
    for i in 0..5 {
        let version = session
            .applied_version(pod("dev", &format!("after-{i}"), "Running", 1))
            .await;
        expected.insert(version, format!("after-{i}"));
    }
    while seen.len() < expected.len() {
        record(&mut seen, &watch.next_line().await);
    }
    assert_eq!(seen, expected, "every change once, after the kill too");
}

/// Parses a `watch-pods` line (EVENT NAMESPACE NAME STATUS REPLICAS
/// VERSION) into `seen`, failing on a version printed twice.
fn record(seen: &mut BTreeMap<u64, String>, line: &str) {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (name, version) = (fields[2], fields[5].parse::<u64>().expect("a version"));
    assert!(
        seen.insert(version, name.to_owned()).is_none(),
        "printed twice: {line}"
    );
}

/// The etcd leader killed while 4 sessions write: no acknowledged write is
/// lost, and writes go on within a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_loses_no_acknowledged_write() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = unique_prefix();
    let servers = replicas(&cluster, &prefix, 2).await;
    let killed = Arc::new(tokio::sync::Notify::new());
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, u64, bool)>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut client = servers[w % 2].client().await;
        let (acked, killed) = (Arc::clone(&acked), Arc::clone(&killed));
        writers.push(tokio::spawn(async move {
            let mut session = Session::open(&mut client).await;
            let mut after_kill = 0;
            let mut kill_seen = false;
            let notified = killed.notified();
            tokio::pin!(notified);
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let ack = session.apply(pod("dev", &name, "Running", 1)).await;
                if !kill_seen && futures::poll!(&mut notified).is_ready() {
                    kill_seen = true;
                }
                if ack.code == 0 {
                    let version = ack.pod.unwrap().resource_version;
                    acked.lock().unwrap().push((name, version, kill_seen));
                    if kill_seen {
                        after_kill += 1;
                        if after_kill == 20 {
                            break;
                        }
                    }
                } else {
                    // Refused or unconfirmed during the election: allowed,
                    // as long as it is UNAVAILABLE, not a wrong answer.
                    assert_eq!(ack.code, Code::Unavailable as u32, "{}", ack.message);
                }
            }
        }));
    }
    // Let every writer get going, then kill the leader.
    common::eventually(
        || acked.lock().unwrap().len() >= 40,
        "writes before the kill",
    )
    .await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    let killed_at = Instant::now();
    killed.notify_waiters();
    for writer in writers {
        within("writes after the kill", writer).await.unwrap();
    }
    eprintln!(
        "20 writes per session after the leader was killed, in {:?}",
        killed_at.elapsed()
    );
    cluster.restart(leader).await;
    let acked = acked.lock().unwrap().clone();
    let mut reader = servers[1].client().await;
    let (pods, _) = list(&mut reader, "dev").await;
    let stored: BTreeMap<String, u64> = pods
        .into_iter()
        .map(|p| (p.name, p.resource_version))
        .collect();
    for (name, version, _) in &acked {
        assert_eq!(
            stored.get(name),
            Some(version),
            "{name} was acknowledged at {version}"
        );
    }
}

/// A member frozen with SIGSTOP: a replica that used it moves on, for
/// reads, writes and its watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_is_left_behind() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = unique_prefix();
    // Each replica starts on the first endpoint: member 0.
    let servers = replicas(&cluster, &prefix, 2).await;
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let (_, from) = list(&mut a, "").await;
    let mut watch = a
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    cluster.pause(0);
    let mut session = Session::open(&mut b).await;
    // A write sent to the frozen member before the replica noticed is
    // reported unconfirmed (UNAVAILABLE: it may or may not have happened);
    // the next one goes to another member.
    let mut ack = within("a write", session.apply(pod("dev", "web", "Running", 1))).await;
    if ack.code != 0 {
        assert_eq!(ack.code, Code::Unavailable as u32, "{}", ack.message);
        ack = within("a write", session.apply(pod("dev", "web", "Running", 1))).await;
    }
    assert_eq!(ack.code, 0, "{}", ack.message);
    let version = ack.pod.unwrap().resource_version;
    let change = within("the change on the other replica's watch", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.resource_version, version);
    let (pods, _) = list(&mut a, "dev").await;
    assert_eq!(pods.iter().map(|p| p.resource_version).max(), Some(version));
    cluster.resume(0);
}

/// Compaction cuts the history on every replica: a watch from before it
/// gets OUT_OF_RANGE, and the client watch re-lists, reporting only the
/// difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_makes_old_versions_out_of_range_and_the_client_relists() {
    let cluster = EtcdCluster::start(1).await;
    let prefix = unique_prefix();
    let history = StoreConfig {
        history: 5,
        ..StoreConfig::default()
    };
    let a = Arc::new(open(&cluster, &prefix, history.clone()).await);
    let b = open(&cluster, &prefix, history).await;
    let mut server_a = TestServer::start_on(a.clone(), ServerConfig::default()).await;
    let server_b = TestServer::start_on(Arc::new(b), ServerConfig::default()).await;
    server_a.apply("a", "stays", "Running", 1).await;
    server_a.apply("a", "changes", "Running", 1).await;
    let old = server_a
        .apply("a", "goes", "Running", 1)
        .await
        .resource_version;

    let client =
        pod_service::client::connect_lazy(&pod_service::client::ClientConfig::new(server_a.url()))
            .unwrap();
    let mut watch = PodWatch::new(client, "a");
    let first = next_update(&mut watch).await;
    assert!(matches!(first, WatchUpdate::Listed(l) if l.len() == 3));

    server_a.stop().await;
    server_b.apply("a", "changes", "Pending", 5).await;
    server_b.delete("a", "goes").await;
    for i in 0..10 {
        server_b.apply("a", "new", "Running", i).await;
    }
    let compacted = a.compact().await.expect("compact").expect("compacted");
    assert!(compacted > old, "compacted past the watch's version");
    // Every replica forgets what etcd forgot.
    for server in [&server_a, &server_b] {
        let fresh = server.store.fresh(0).await.unwrap();
        common::eventually(
            || fresh.watch(PodSelector::All, old).is_err(),
            "the history to be cut",
        )
        .await;
    }
    let mut client_b = server_b.client().await;
    let err = client_b
        .watch_pods(list_request("", old))
        .await
        .expect_err("out of range");
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());

    server_a.restart().await;
    let WatchUpdate::Listed(diff) = next_update(&mut watch).await else {
        panic!("expected a re-list");
    };
    let diff: HashSet<String> = diff
        .into_iter()
        .map(|e| format!("{:?} {}", e.kind, e.pod.name))
        .collect();
    let expected: HashSet<String> = ["Modified changes", "Deleted goes", "Added new"]
        .map(String::from)
        .into();
    assert_eq!(diff, expected);
}

/// The next update of a client watch that is not an interruption.
async fn next_update(watch: &mut PodWatch) -> WatchUpdate {
    loop {
        match within("a watch update", watch.next()).await.unwrap() {
            WatchUpdate::Interrupted { .. } => continue,
            update => return update,
        }
    }
}

/// Every replica killed and started again: everything acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_killed_and_restarted_keeps_everything_acknowledged() {
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    let endpoints = cluster.endpoints_arg();
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &[]).await);
    }
    let mut acked = BTreeMap::new();
    for (i, process) in processes.iter().enumerate() {
        let mut client = PodServiceClient::connect(process.url()).await.unwrap();
        let mut session = Session::open(&mut client).await;
        for j in 0..10 {
            let name = format!("r{i}-{j}");
            let version = session
                .applied_version(pod("dev", &name, "Running", j))
                .await;
            acked.insert(name, version);
        }
        let ack = session
            .call(sync_request::Op::Delete(pod_service::contract::PodRef {
                namespace: "dev".into(),
                name: format!("r{i}-0"),
            }))
            .await;
        assert_eq!(ack.code, 0, "{}", ack.message);
        acked.remove(&format!("r{i}-0"));
    }
    for process in processes {
        process.kill().await;
    }
    let again = ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &[]).await;
    let mut client = PodServiceClient::connect(again.url()).await.unwrap();
    let (pods, _) = list(&mut client, "dev").await;
    let stored: BTreeMap<String, u64> = pods
        .into_iter()
        .map(|p| (p.name, p.resource_version))
        .collect();
    assert_eq!(stored, acked);
}

// ---- Start-up errors ----

/// Runs `pod-server` expecting it to fail; returns its stderr.
async fn failing_server(args: &[&str]) -> String {
    let output = within(
        "pod-server to give up",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pod-server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output(),
    )
    .await
    .expect("run pod-server");
    assert!(!output.status.success(), "pod-server must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    errors[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_an_unreachable_cluster_and_foreign_data_are_one_line_errors() {
    let error = failing_server(&["--etcd-endpoints", "localhost:2379"]).await;
    assert!(
        error.contains("--etcd-endpoints") && error.contains("localhost:2379"),
        "{error}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = format!("http://127.0.0.1:{port}");
    let error = failing_server(&["--etcd-endpoints", &unreachable]).await;
    assert!(
        error.contains("cannot reach etcd") && error.contains(&unreachable),
        "{error}"
    );

    // A key of someone else's under the prefix.
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64(format!("{prefix}config/feature-x").as_bytes()),
        base64(b"on")
    );
    let put = http(&cluster.endpoint(0), "POST", "/v3/kv/put", &body).await;
    assert!(put.contains("200 OK"), "{put}");
    let error = failing_server(&[
        "--etcd-endpoints",
        &cluster.endpoints_arg(),
        "--etcd-prefix",
        &prefix,
    ])
    .await;
    assert!(
        error.contains("not a pod registry") && error.contains("feature-x"),
        "{error}"
    );
}
