//! Several `pod-server` replicas over one real etcd cluster: one registry,
//! the same contract on every replica, and what survives faults.
//!
//! The semantic suites (list, watch, sync, ...) run on the etcd store too,
//! one replica each; this file is about what only several replicas, or a
//! cluster in trouble, can show. Replicas are in-process servers, each on
//! an etcd store of its own over the same prefix (the same code as
//! `pod-server --etcd-endpoints`), or real `pod-server` processes where a
//! test kills one. Tests that only need a registry of their own share the
//! test binary's cluster under a fresh prefix; tests that hurt etcd start
//! a cluster of their own.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::etcd::{EtcdCluster, unique_prefix};
use common::process::{ClientProcess, ServerProcess};
use common::{Session, TestServer, list_request, pod, within};
use pod_service::client::{PodWatch, WatchUpdate};
use pod_service::contract::{Pod, PodServiceClient, sync_request};
use pod_service::domain::ApplyPod;
use pod_service::sample;
use pod_service::server::ServerConfig;
use pod_service::store::{EtcdConfig, Opened, Registry, Storage, StoreConfig};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;

/// A registry under `prefix` of `cluster`, without compaction.
async fn open(cluster: &EtcdCluster, prefix: &str, store: StoreConfig) -> Registry {
    open_seeded(cluster, prefix, store, Vec::new())
        .await
        .expect("open the etcd store")
        .registry
}

async fn open_seeded(
    cluster: &EtcdCluster,
    prefix: &str,
    store: StoreConfig,
    seed: Vec<ApplyPod>,
) -> Result<Opened, pod_service::store::OpenError> {
    let config = EtcdConfig {
        prefix: prefix.to_owned(),
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(cluster.endpoints())
    };
    within(
        "the etcd store to open",
        Registry::open(
            Storage::Etcd {
                etcd: config,
                nats: None,
            },
            store,
            seed,
        ),
    )
    .await
}

/// `n` in-process replicas of one registry.
async fn replicas(cluster: &EtcdCluster, prefix: &str, n: usize) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..n {
        let store = open(cluster, prefix, StoreConfig::default()).await;
        servers.push(TestServer::start_on(Arc::new(store), ServerConfig::default()).await);
    }
    servers
}

async fn list(client: &mut PodServiceClient<Channel>, namespace: &str) -> (Vec<Pod>, u64) {
    let list = client
        .list_pods(list_request(namespace, 0))
        .await
        .expect("list")
        .into_inner();
    (list.pods, list.resource_version)
}

/// Reads a watch until it has yielded every version in `expected`; returns
/// every change it yielded, in order.
async fn watch_until(
    mut stream: tonic::Streaming<Pod>,
    expected: &BTreeSet<u64>,
) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut missing = expected.clone();
    while !missing.is_empty() {
        let change = within("a watched change", stream.message())
            .await
            .expect("watch failed")
            .expect("watch ended");
        missing.remove(&change.resource_version);
        seen.push((change.resource_version, change.name));
    }
    seen
}

fn assert_once_in_order(seen: &[(u64, String)], expected: &BTreeSet<u64>, who: &str) {
    let versions: Vec<u64> = seen.iter().map(|(version, _)| *version).collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{who}: versions in strictly increasing order (no repeat): {versions:?}"
    );
    let got: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        &got, expected,
        "{who}: every acknowledged change, nothing else"
    );
}

/// [`Session::apply`] for a test that needs the apply to succeed.
trait AppliedVersion {
    /// The version `pod` was stored at. A refusal fails the test with the
    /// server's reason, which the ack of a refused apply, carrying no pod,
    /// would otherwise hide.
    async fn applied_version(&mut self, pod: Pod) -> u64;
}

impl AppliedVersion for Session {
    async fn applied_version(&mut self, pod: Pod) -> u64 {
        let ack = self.apply(pod).await;
        assert_eq!(ack.code, 0, "{}", ack.message);
        ack.pod.expect("the stored pod").resource_version
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_two_replicas_reach_watchers_on_the_others_once_in_order() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let (mut a, mut b, mut c) = (
        servers[0].client().await,
        servers[1].client().await,
        servers[2].client().await,
    );
    let (_, from) = list(&mut a, "").await;
    let on_b = b
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let on_c = c
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();

    const EACH: i32 = 40;
    let write = |mut client: PodServiceClient<Channel>, name: &'static str| async move {
        let mut session = Session::open(&mut client).await;
        let mut versions = Vec::new();
        for i in 0..EACH {
            versions.push(
                session
                    .applied_version(pod("dev", name, "Running", i))
                    .await,
            );
        }
        versions
    };
    let (through_a, through_b) =
        tokio::join!(write(a.clone(), "from-a"), write(b.clone(), "from-b"));
    let expected: BTreeSet<u64> = through_a.iter().chain(&through_b).copied().collect();
    assert_eq!(
        expected.len(),
        2 * EACH as usize,
        "every ack its own version"
    );

    let (seen_b, seen_c) = tokio::join!(watch_until(on_b, &expected), watch_until(on_c, &expected));
    assert_once_in_order(&seen_b, &expected, "the watcher on B");
    assert_once_in_order(&seen_c, &expected, "the watcher on C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_on_one_replica_right_after_an_ack_on_another_includes_it() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let mut a = servers[0].client().await;
    let mut c = servers[2].client().await;
    let mut session = Session::open(&mut a).await;
    for i in 0..50 {
        let acked = session
            .applied_version(pod("dev", &format!("p{i}"), "Running", i))
            .await;
        let (pods, version) = list(&mut c, "dev").await;
        assert!(
            version >= acked,
            "the list at {version} reflects the ack at {acked}"
        );
        let listed = pods.iter().find(|p| p.name == format!("p{i}"));
        assert_eq!(listed.map(|p| p.resource_version), Some(acked), "p{i} on C");
    }
}

/// A paged list begun on one replica goes on on the others, at the first
/// page's revision, whatever was written meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_token_from_one_replica_continues_on_the_others() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    for i in 0..30 {
        servers[0]
            .apply("dev", &format!("p{i:02}"), "Running", 1)
            .await;
    }
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(server.client().await);
    }
    let (whole, _) = list(&mut clients[0], "dev").await;
    let mut token = String::new();
    let mut paged = Vec::new();
    let mut version = None;
    for page in 0.. {
        let answer = clients[page % 3]
            .list_pods(pod_service::contract::ListPodsRequest {
                namespace: "dev".into(),
                limit: 7,
                continue_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("page {page} on replica {}: {status:?}", page % 3))
            .into_inner();
        assert_eq!(
            *version.get_or_insert(answer.resource_version),
            answer.resource_version
        );
        paged.extend(answer.pods);
        // Meanwhile: a change and a new pod, which the pages must not show.
        servers[1]
            .apply("dev", &format!("p{page:02}"), "Failed", 9)
            .await;
        servers[2]
            .apply("dev", &format!("new-{page}"), "Running", 1)
            .await;
        if answer.continue_token.is_empty() {
            break;
        }
        token = answer.continue_token;
    }
    assert_eq!(
        paged, whole,
        "the pages together are the list at the first page's revision"
    );
}

/// Writers and listers on different replicas, concurrently: every list
/// includes every write acknowledged before the list began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_reflects_every_write_acknowledged_before_it_began() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let clients = [
        servers[0].client().await,
        servers[1].client().await,
        servers[2].client().await,
    ];
    let started = Instant::now();
    // (ack time, pod name, version) for every write.
    let acks = Arc::new(std::sync::Mutex::new(Vec::<(Duration, String, u64)>::new()));
    let mut writers = Vec::new();
    for (w, client) in clients.iter().take(2).enumerate() {
        let (mut client, acks) = (client.clone(), Arc::clone(&acks));
        writers.push(tokio::spawn(async move {
            let mut session = Session::open(&mut client).await;
            for i in 0..60 {
                let name = format!("w{w}-{i}");
                let version = session
                    .applied_version(pod("dev", &name, "Running", 1))
                    .await;
                acks.lock()
                    .unwrap()
                    .push((started.elapsed(), name, version));
            }
        }));
    }
    let mut lists = Vec::new();
    for l in 0..3 {
        let mut client = clients[(l + 1) % 3].clone();
        lists.push(tokio::spawn(async move {
            let mut observed = Vec::new();
            for _ in 0..40 {
                let began = started.elapsed();
                let (pods, _) = list(&mut client, "dev").await;
                let names: HashSet<String> = pods.into_iter().map(|p| p.name).collect();
                observed.push((began, names));
            }
            observed
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let mut checked = 0;
    for lister in lists {
        for (began, names) in lister.await.unwrap() {
            for (acked, name, version) in &acks {
                if *acked < began {
                    assert!(
                        names.contains(name),
                        "{name} (v{version}) was acknowledged at {acked:?}, before a list \
                         that began at {began:?}, but is not in it"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 100,
        "the lists overlapped the writes ({checked} checks)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_applies_through_different_replicas_have_one_winner() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let mut sessions = Vec::new();
    for server in &servers {
        sessions.push(Session::open(&mut server.client().await).await);
    }
    let mut version = sessions[0]
        .applied_version(pod("dev", "contended", "Running", 0))
        .await;
    for round in 1..=20 {
        let attempts = sessions.iter_mut().enumerate().map(|(i, session)| {
            let mut edit = pod("dev", "contended", "Running", round * 10 + i as i32);
            edit.resource_version = version;
            session.apply(edit)
        });
        let acks = futures::future::join_all(attempts).await;
        let winners: Vec<_> = acks.iter().filter(|ack| ack.code == 0).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner: {acks:?}"
        );
        for ack in acks.iter().filter(|ack| ack.code != 0) {
            assert_eq!(ack.code, Code::Aborted as u32, "{}", ack.message);
        }
        let won = winners[0].pod.as_ref().expect("the stored pod");
        assert!(won.resource_version > version);
        version = won.resource_version;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registry_gets_the_starting_pods_once_however_many_replicas_start_together() {
    let prefix = unique_prefix();
    let cluster = EtcdCluster::shared();
    let opening = (0..4).map(|_| {
        open_seeded(
            cluster,
            &prefix,
            StoreConfig::default(),
            sample::numbered(250).collect(),
        )
    });
    let stores: Vec<Opened> = futures::future::join_all(opening)
        .await
        .into_iter()
        .map(|store| store.expect("open"))
        .collect();
    let loaded: Vec<Option<usize>> = stores.iter().map(|opened| opened.seeded).collect();
    assert_eq!(
        loaded.iter().filter(|l| l.is_some()).count(),
        1,
        "one loader: {loaded:?}"
    );
    assert!(loaded.contains(&Some(250)));
    for opened in &stores {
        let fresh = opened.registry.fresh(0).await.expect("catch up");
        assert_eq!(
            fresh.list(None).pods.len(),
            250,
            "every replica, every pod, once"
        );
    }
    // Opened again, it is not new.
    let again = open_seeded(
        cluster,
        &prefix,
        StoreConfig::default(),
        sample::sample().collect(),
    )
    .await
    .expect("open");
    assert_eq!(again.seeded, None);
    let fresh = again.registry.fresh(0).await.expect("catch up");
    assert_eq!(fresh.list(None).pods.len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_moved_to_another_replica_resumes_with_nothing_missed_or_repeated() {
    let prefix = unique_prefix();
    let mut servers = replicas(EtcdCluster::shared(), &prefix, 2).await;
    let mut writer = servers[1].client().await;
    let mut session = Session::open(&mut writer).await;
    let mut acked = BTreeSet::new();
    for i in 0..5 {
        acked.insert(
            session
                .applied_version(pod("dev", "web", "Running", i))
                .await,
        );
    }
    let mut a = servers[0].client().await;
    let (_, from) = list(&mut a, "").await;
    let mut stream = a
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        expected.insert(
            session
                .applied_version(pod("dev", "db", "Running", i))
                .await,
        );
    }
    // Read part of it on A, then lose A.
    let mut last = 0;
    for _ in 0..2 {
        let change = within("a change", stream.message()).await.unwrap().unwrap();
        last = change.resource_version;
    }
    servers[0].stop().await;
    for i in 0..5 {
        expected.insert(
            session
                .applied_version(pod("dev", "api", "Running", i))
                .await,
        );
    }
    let mut b = servers[1].client().await;
    let resumed = b
        .watch_pods(list_request("", last))
        .await
        .unwrap()
        .into_inner();
    let rest: BTreeSet<u64> = expected.iter().copied().filter(|v| *v > last).collect();
    let seen = watch_until(resumed, &rest).await;
    assert_once_in_order(&seen, &rest, "the resumed watch on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_etcd_lacks_or_has_not_reached_are_out_of_range() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let mut client = servers[0].client().await;
    let (_, now) = list(&mut client, "").await;
    let beyond = now + 1_000_000;
    let err = client
        .watch_pods(list_request("", beyond))
        .await
        .expect_err("a version from the future is refused");
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    assert!(
        err.message().contains(&beyond.to_string()),
        "{}",
        err.message()
    );
}

/// A watch from a version just acknowledged on another replica waits for
/// this replica to reach it instead of refusing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_version_acknowledged_elsewhere_is_waited_for() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 2).await;
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let mut session = Session::open(&mut a).await;
    for i in 0..20 {
        let acked = session
            .applied_version(pod("dev", "web", "Running", i))
            .await;
        let mut stream = b
            .watch_pods(list_request("", acked))
            .await
            .unwrap_or_else(|status| panic!("a watch from {acked} on B: {status:?}"))
            .into_inner();
        let next = session
            .applied_version(pod("dev", "web", "Pending", i))
            .await;
        let change = within("the next change", stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(change.resource_version, next, "exactly the change after");
    }
}

/// A replica started after the writes replays etcd's history, so it can
/// resume a watch from before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_later_resumes_watches_from_before_it_started() {
    let prefix = unique_prefix();
    let first = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let from = first[0]
        .apply("dev", "web", "Running", 0)
        .await
        .resource_version;
    let mut expected = BTreeSet::new();
    for i in 1..=5 {
        expected.insert(
            first[0]
                .apply("dev", "web", "Running", i)
                .await
                .resource_version,
        );
    }
    expected.insert(first[0].delete("dev", "web").await.resource_version);
    let later = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let mut client = later[0].client().await;
    let stream = client
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let seen = watch_until(stream, &expected).await;
    assert_once_in_order(&seen, &expected, "the later replica");
}

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
            .watch(None, 0)
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

/// A loader that died half-way leaves pods but no registry: the next server
/// starts over, and what the dead one wrote is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_load_is_started_over() {
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    for key in ["pods/dev,half-loaded", "revision"] {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(format!("{prefix}{key}").as_bytes()),
            base64(b"")
        );
        let put = http(&cluster.endpoint(0), "POST", "/v3/kv/put", &body).await;
        assert!(put.contains("200 OK"), "{put}");
    }
    let store = open_seeded(
        cluster,
        &prefix,
        StoreConfig::default(),
        sample::sample().collect(),
    )
    .await
    .expect("open");
    assert_eq!(store.seeded, Some(sample::SAMPLE_PODS.len()));
    let names: Vec<String> = store
        .registry
        .fresh(0)
        .await
        .expect("fresh")
        .list(None)
        .pods
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names.len(), sample::SAMPLE_PODS.len(), "{names:?}");
    assert!(!names.contains(&"half-loaded".to_owned()), "{names:?}");
}

/// One etcd watch per replica, however many clients watch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_cost_etcd_one_watch_per_replica() {
    let cluster = EtcdCluster::start(1).await;
    let prefix = unique_prefix();
    let servers = replicas(&cluster, &prefix, 2).await;
    let mut streams = Vec::new();
    for i in 0..1_000 {
        let mut client = servers[i % 2].client().await;
        streams.push(
            client
                .watch_pods(list_request("", 0))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    servers[0].await_watchers(500).await;
    servers[1].await_watchers(500).await;
    assert_eq!(
        etcd_watchers(&cluster).await,
        2,
        "one etcd watch per replica"
    );
}

/// etcd's own count of its watchers (`etcd_debugging_mvcc_watcher_total`).
async fn etcd_watchers(cluster: &EtcdCluster) -> u64 {
    let metrics = http_get(&cluster.endpoint(0), "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .expect("etcd_debugging_mvcc_watcher_total in /metrics")
}

async fn http_get(endpoint: &str, path: &str) -> String {
    http(endpoint, "GET", path, "").await
}

/// A tiny HTTP/1.0 request to a member's client URL.
async fn http(endpoint: &str, method: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect to etcd");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
    }
    out
}

// ---- Faults ----

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
        common::eventually(|| fresh.watch(None, old).is_err(), "the history to be cut").await;
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
