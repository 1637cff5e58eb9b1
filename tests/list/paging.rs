//! Paged lists end to end: every page of a list is consistent at its first
//! page's version while writers change, create and delete pods; tokens are
//! refused with the right codes when altered, reused or expired; a list
//! larger than one message comes whole through `list-pods`.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use common::etcd::EtcdCluster;
use common::{Backend, TestServer, eventually, list_request, within};
use pod_service::contract::{ListPodsRequest, ListPodsResponse, Pod, PodServiceClient};
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::server::ServerConfig;
use pod_service::store::{EtcdConfig, Registry, Storage, StoreConfig};
use tonic::Code;
use tonic::transport::Channel;

common::on_every_store!(
    pages_are_the_list_at_the_first_pages_version_under_concurrent_writers,
    a_page_never_holds_more_than_its_limit_nor_more_than_the_server_cap,
    altered_or_foreign_tokens_are_invalid_and_change_nothing,
    a_token_expires_with_the_history_and_with_a_restart,
);

const NAMESPACES: [&str; 3] = ["apps", "batch", "web"];

fn page_request(namespace: &str, limit: u32, continue_token: &str) -> ListPodsRequest {
    ListPodsRequest {
        namespace: namespace.into(),
        limit,
        continue_token: continue_token.into(),
        ..ListPodsRequest::default()
    }
}

async fn page(
    client: &mut PodServiceClient<Channel>,
    request: ListPodsRequest,
) -> Result<ListPodsResponse, tonic::Status> {
    within("a page", client.list_pods(request))
        .await
        .map(tonic::Response::into_inner)
}

async fn preload(server: &TestServer, pods: usize) {
    let pending: Vec<_> = (0..pods)
        .map(|i| {
            server.store.apply(ApplyPod {
                key: PodKey::new(NAMESPACES[i % 3], format!("pod-{i:05}")),
                status: "Running".into(),
                replicas: 1,
                expected_version: None,
            })
        })
        .collect();
    for applied in pending {
        applied.await.expect("preload");
    }
}

/// The store as a watch from version 0 tells it, independently of the
/// paging under test: read all along (so that it never falls behind), and
/// replayed up to a version on demand.
struct Replay {
    changes: Arc<Mutex<Vec<Pod>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Replay {
    async fn start(client: &mut PodServiceClient<Channel>) -> Self {
        let mut watch = client
            .watch_pods(list_request("", 0))
            .await
            .expect("watch")
            .into_inner();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn({
            let changes = Arc::clone(&changes);
            async move {
                while let Some(change) = watch.message().await.expect("the watch") {
                    changes.lock().unwrap().push(change);
                }
            }
        });
        Replay { changes, reader }
    }

    /// How many changes after `version` the watch has seen.
    fn changes_after(&self, version: u64) -> usize {
        let changes = self.changes.lock().unwrap();
        changes
            .iter()
            .filter(|pod| pod.resource_version > version)
            .count()
    }

    /// The pods of `namespace` ("" = all) at `version`, in list order.
    async fn at(&self, version: u64, namespace: &str) -> Vec<Pod> {
        let seen = || {
            let changes = self.changes.lock().unwrap();
            changes.iter().map(|pod| pod.resource_version).max() >= Some(version)
        };
        eventually(seen, "the watch to reach the list's version").await;
        let mut pods = BTreeMap::new();
        for change in self.changes.lock().unwrap().iter() {
            if change.resource_version > version {
                continue;
            }
            let key = (change.namespace.clone(), change.name.clone());
            if change.deleted {
                pods.remove(&key);
            } else {
                pods.insert(key, change.clone());
            }
        }
        pods.into_values()
            .filter(|pod| namespace.is_empty() || pod.namespace == namespace)
            .collect()
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Applies, creates and deletes pods, a steady few thousand a second (a
/// busy cluster's rate, well inside the history's 10,000 while a list
/// pages), until stopped; counts its writes.
fn spawn_writers(server: &TestServer, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let store = Arc::clone(&server.store);
    tokio::spawn(async move {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut writes = 0;
        while !stop.load(Ordering::Relaxed) {
            let key = PodKey::new(
                NAMESPACES[rng.usize(..3)],
                format!("pod-{:05}", rng.usize(..3000)),
            );
            let written = if rng.u8(..4) == 0 {
                store.delete(key).await.is_ok()
            } else {
                let apply = ApplyPod {
                    key,
                    status: "Running".into(),
                    replicas: rng.i32(0..100),
                    expected_version: None,
                };
                store.apply(apply).await.is_ok()
            };
            writes += u64::from(written);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        writes
    })
}

async fn pages_are_the_list_at_the_first_pages_version_under_concurrent_writers(backend: Backend) {
    let server = TestServer::start(backend).await;
    preload(&server, 2000).await;
    let mut client = server.client().await;
    let replay = Replay::start(&mut client).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&server, Arc::clone(&stop));
    let mut written_during_paging = 0;
    for (namespace, limit) in [("", 97), ("batch", 41), ("", 1000)] {
        let mut token = String::new();
        let mut listed = Vec::new();
        let mut version = None;
        loop {
            let at_page = server.store.version();
            let answer = page(&mut client, page_request(namespace, limit, &token))
                .await
                .expect("a page");
            assert!(answer.pods.len() <= limit as usize);
            assert_eq!(
                *version.get_or_insert(answer.resource_version),
                answer.resource_version,
                "every page reports the first page's version"
            );
            listed.extend(answer.pods);
            if answer.continue_token.is_empty() {
                break;
            }
            token = answer.continue_token;
            // Let the writers change something (3 changes) before every
            // next page. Counted, not computed from versions, which need
            // not be consecutive.
            eventually(
                || replay.changes_after(at_page) >= 3,
                "writes between pages",
            )
            .await;
            written_during_paging += 1;
        }
        let version = version.expect("a first page");
        let expected = replay.at(version, namespace).await;
        assert_eq!(listed.len(), expected.len(), "{namespace:?} at {version}");
        assert!(
            listed == expected,
            "the pages of {namespace:?} are not the list at version {version}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let writes = within("the writers", writers).await.unwrap();
    assert!(written_during_paging >= 20, "{written_during_paging} pages");
    assert!(writes > 60, "{writes} writes");
}

async fn a_page_never_holds_more_than_its_limit_nor_more_than_the_server_cap(backend: Backend) {
    let server = TestServer::start(backend).await;
    preload(&server, 5000).await;
    let mut client = server.client().await;
    let first = page(&mut client, page_request("", u32::MAX, ""))
        .await
        .unwrap();
    assert_eq!(first.pods.len(), 4096, "capped at the server's page size");
    let rest = page(&mut client, page_request("", 0, &first.continue_token))
        .await
        .unwrap();
    assert_eq!(rest.pods.len(), 5000 - 4096);
    assert!(rest.continue_token.is_empty());
    // Pages follow the namespace-then-name order of the whole list.
    let whole = page(&mut client, list_request("", 0)).await.unwrap();
    assert!(whole.continue_token.is_empty(), "limit 0 is the whole list");
    let paged: Vec<Pod> = first.pods.into_iter().chain(rest.pods).collect();
    assert!(paged == whole.pods);
    let one = page(&mut client, page_request("web", 1, "")).await.unwrap();
    assert_eq!(one.pods.len(), 1);
    assert_eq!(one.pods[0].name, "pod-00002");
}

async fn altered_or_foreign_tokens_are_invalid_and_change_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    preload(&server, 30).await;
    let mut client = server.client().await;
    let first = page(&mut client, page_request("apps", 3, ""))
        .await
        .unwrap();
    let token = first.continue_token.clone();
    let mut altered = token.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let version = server.store.version();
    for (namespace, token, rule) in [
        ("apps", "not a token", "is not a token this server gave"),
        ("apps", altered.as_str(), "is not a token this server gave"),
        (
            "apps",
            &token[..token.len() - 4],
            "is not a token this server gave",
        ),
        (
            "web",
            token.as_str(),
            "belongs to a list of namespace \"apps\", not of namespace \"web\"",
        ),
        ("", token.as_str(), "not of every namespace"),
    ] {
        let status = page(&mut client, page_request(namespace, 3, token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(
            status.message().starts_with("invalid continue_token: ")
                && status.message().contains(rule),
            "{}",
            status.message()
        );
    }
    assert_eq!(server.store.version(), version, "a refusal changes nothing");
    let second = page(&mut client, page_request("apps", 3, &token))
        .await
        .unwrap();
    assert_eq!(second.pods.len(), 3, "the genuine token still works");
    assert_eq!(second.resource_version, first.resource_version);
}

async fn a_token_expires_with_the_history_and_with_a_restart(backend: Backend) {
    // On etcd a token's history is etcd's, not the server's: a page is an
    // etcd range at the first page's revision, readable on any replica (a
    // restarted one too) until etcd compacts it. So there the same test
    // compacts, on a cluster of its own (compaction is cluster-wide: on the
    // shared cluster it would expire other tests' lists and watches), and
    // checks that a restart does not expire the token.
    if backend == Backend::Etcd {
        return a_token_expires_with_etcd_compaction_but_not_with_a_restart().await;
    }
    let history = 10;
    let mut server = TestServer::start_with(
        backend,
        StoreConfig {
            history,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    preload(&server, 30).await;
    let mut client = server.client().await;
    let first = page(&mut client, page_request("", 5, "")).await.unwrap();
    for replicas in 0..history as i32 {
        server.apply("apps", "pod-00000", "Running", replicas).await;
    }
    // While its version is within the history, the list goes on.
    let second = page(&mut client, page_request("", 5, &first.continue_token))
        .await
        .unwrap();
    assert_eq!(second.resource_version, first.resource_version);
    server.apply("apps", "pod-00000", "Running", 99).await;
    assert_left_behind_by_the_history(&mut client, &second.continue_token).await;

    let fresh = page(&mut client, page_request("", 5, "")).await.unwrap();
    server.restart_process(ServerConfig::default()).await;
    let mut client = server.client().await;
    let status = page(&mut client, page_request("", 5, &fresh.continue_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());
    assert!(
        status
            .message()
            .contains("the server restarted since its first page"),
        "{}",
        status.message()
    );
}

/// The page after `token`, whose list's version the history (the server's,
/// or etcd's once compacted) has moved past: OUT_OF_RANGE, telling the
/// client to start the list again.
async fn assert_left_behind_by_the_history(client: &mut PodServiceClient<Channel>, token: &str) {
    let status = page(client, page_request("", 5, token)).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());
    assert!(
        status.message().contains("history has moved past it")
            && status.message().ends_with("list again from the first page"),
        "{}",
        status.message()
    );
}

/// [`a_token_expires_with_the_history_and_with_a_restart`] on etcd: the
/// store compacts etcd so that the newest `history` revisions stay; while
/// the list's revision is one of them the list goes on, then it expires.
/// A restarted server (a new store on the same prefix) continues a list;
/// a server of another etcd cluster refuses it.
async fn a_token_expires_with_etcd_compaction_but_not_with_a_restart() {
    let history = 10;
    let cluster = EtcdCluster::start(1).await;
    let prefix = common::etcd::unique_prefix();
    let open = || {
        let config = EtcdConfig {
            prefix: prefix.clone(),
            compaction_interval: Duration::ZERO,
            ..EtcdConfig::new(cluster.endpoints())
        };
        let store = StoreConfig {
            history,
            ..StoreConfig::default()
        };
        let storage = Storage::Etcd {
            etcd: config,
            nats: None,
        };
        async move { Arc::new(common::open(storage, store).await) }
    };
    let store = open().await;
    let mut server = TestServer::start_on(store.clone(), ServerConfig::default()).await;
    preload(&server, 30).await;
    let mut client = server.client().await;
    let first = page(&mut client, page_request("", 5, "")).await.unwrap();
    for replicas in 0..history as i32 {
        server.apply("apps", "pod-00000", "Running", replicas).await;
    }
    // Nothing else writes to this cluster: the list's revision is the
    // oldest of the newest `history`, where compaction stops.
    let compacted = store.compact().await.expect("compact");
    assert_eq!(compacted, Some(first.resource_version));
    // While its version is within the history, the list goes on.
    let second = page(&mut client, page_request("", 5, &first.continue_token))
        .await
        .unwrap();
    assert_eq!(second.resource_version, first.resource_version);
    server.apply("apps", "pod-00000", "Running", 99).await;
    let compacted = store.compact().await.expect("compact").expect("compacted");
    assert!(compacted > first.resource_version, "{compacted}");
    assert_left_behind_by_the_history(&mut client, &second.continue_token).await;

    // A restarted server continues the list, at the first page's revision.
    let fresh = page(&mut client, page_request("", 5, "")).await.unwrap();
    let expected = page(&mut client, page_request("", 5, &fresh.continue_token))
        .await
        .unwrap();
    server.stop().await;
    within("the store to close", store.close())
        .await
        .expect("close the store");
    drop(server);
    drop(store);
    let server = TestServer::start_on(open().await, ServerConfig::default()).await;
    // Pods of the second page change after the first.
    server.apply("apps", "pod-00015", "Failed", 0).await;
    server.delete("apps", "pod-00018").await;
    let mut client = server.client().await;
    let next = page(&mut client, page_request("", 5, &fresh.continue_token))
        .await
        .unwrap();
    assert_eq!(next.resource_version, fresh.resource_version);
    assert_eq!(next.pods.len(), 5);
    assert_eq!(
        next, expected,
        "the page as the server before the restart gave it"
    );
    // A server of another etcd cluster cannot.
    let other = TestServer::start(Backend::Etcd).await;
    let mut client = other.client().await;
    let status = page(&mut client, page_request("", 5, &fresh.continue_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());
    assert!(
        status.message().ends_with("list again from the first page"),
        "{}",
        status.message()
    );
}

/// More pods than one message holds: the whole list is refused, and
/// `list-pods` pages through all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pods_pages_through_a_list_larger_than_one_message() {
    let store = Arc::new(Registry::in_memory(StoreConfig::default()));
    let server = TestServer::start_on(store, ServerConfig::default()).await;
    let pods = 130_000;
    let pending: Vec<_> = (0..pods)
        .map(|i| {
            server.store.apply(ApplyPod {
                key: PodKey::new(
                    format!("namespace-{:02}", i % 40),
                    format!("a-pod-with-a-longish-name-{i:06}"),
                ),
                status: "ContainerCreating".into(),
                replicas: 3,
                expected_version: None,
            })
        })
        .collect();
    for applied in pending {
        applied.await.unwrap();
    }
    let mut client = server.client().await;
    let whole = page(&mut client, list_request("", 0)).await;
    assert!(whole.is_err(), "130,000 pods fit one message after all");

    let mut list_pods = tokio::process::Command::new(env!("CARGO_BIN_EXE_list-pods"))
        .args(["--addr", &server.url(), "-o", "json", "--page-size", "2000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(list_pods.stdout.take().unwrap());
    let mut output = String::new();
    within("the first row", stdout.read_line(&mut output))
        .await
        .unwrap();
    // list-pods has printed its first page and now waits on the full pipe,
    // far from the last pages: change them meanwhile.
    let version = server.store.version();
    for i in 0..500 {
        server
            .delete(
                "namespace-39",
                &format!("a-pod-with-a-longish-name-{:06}", 39 + 40 * i),
            )
            .await;
        server
            .apply(
                "namespace-20",
                &format!("a-pod-with-a-longish-name-{:06}", 20 + 40 * i),
                "Failed",
                0,
            )
            .await;
        server
            .apply("namespace-30", &format!("a-new-pod-{i:06}"), "Running", 1)
            .await;
    }
    within("the other rows", stdout.read_to_string(&mut output))
        .await
        .unwrap();
    let status = within("list-pods to exit", list_pods.wait()).await.unwrap();
    assert!(status.success());
    let rows: Vec<serde_json::Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Exactly the pods at the first page's version.
    assert_eq!(version, pods as u64);
    assert_eq!(rows.len(), pods);
    assert!(
        rows.iter()
            .all(|row| row["resource_version"].as_u64() <= Some(version))
    );
    assert!(rows.iter().all(|row| row["status"] == "ContainerCreating"));
    let names: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["namespace"].as_str().unwrap(),
                row["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        names.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted, no pod twice"
    );
}
