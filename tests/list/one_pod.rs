//! One pod by name (`ListPodsRequest.name`, Kubernetes'
//! `fieldSelector=metadata.name=NAME`): a list of that pod or of nothing,
//! at the current version; a watch of that pod only, its delete and its
//! re-creation included, resumable from a version or a bookmark; the
//! refusals; the `sync-pods` merging apply reading one pod instead of its
//! namespace; and `watch-pods NAME` as a process.
//!
//! All but the binary's test run on every store: memory, durable and etcd
//! (a fresh prefix of a real 3-member cluster), where versions only
//! increase, so the tests compare versions with the ones the writes got.

use crate::common;

use std::time::Duration;

use common::process::{ClientProcess, bin, run_with_input};
use common::proxy::Proxy;
use common::{Backend, Session, TestServer, pod, within};
use pod_service::client::sync::{self, Mode};
use pod_service::contract::{ListPodsRequest, Pod, PodServiceClient, bookmark};
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Short enough that a test sees several bookmarks in well under a second.
const BOOKMARK_INTERVAL: Duration = Duration::from_millis(40);

fn by_name(namespace: &str, name: &str) -> ListPodsRequest {
    ListPodsRequest {
        namespace: namespace.into(),
        name: name.into(),
        ..ListPodsRequest::default()
    }
}

async fn watch(client: &mut PodServiceClient<Channel>, request: ListPodsRequest) -> Streaming<Pod> {
    client
        .watch_pods(request)
        .await
        .expect("watch_pods")
        .into_inner()
}

async fn next(stream: &mut Streaming<Pod>) -> Pod {
    within("a watched pod", stream.message())
        .await
        .expect("the watch failed")
        .expect("the watch ended")
}

/// `namespace/name@version`, or `...deleted` for a tombstone.
fn seen(pod: &Pod) -> String {
    let deleted = if pod.deleted { " deleted" } else { "" };
    format!(
        "{}/{}@{}{deleted}",
        pod.namespace, pod.name, pod.resource_version
    )
}

async fn a_list_by_name_is_one_pod_or_none(backend: Backend) {
    let server = TestServer::start(backend).await;
    let web = server.apply("prod", "web", "Running", 2).await;
    server.apply("prod", "api", "Running", 1).await;
    server.apply("prod", "web-2", "Running", 1).await;
    let last = server.apply("dev", "web", "Failed", 0).await;
    let mut client = server.client().await;

    for limit in [0, 1, 500] {
        let list = client
            .list_pods(ListPodsRequest {
                limit,
                ..by_name("prod", "web")
            })
            .await
            .expect("list by name")
            .into_inner();
        assert_eq!(list.pods, [Pod::clone(&web)], "limit {limit}");
        assert!(list.continue_token.is_empty(), "one page, limit {limit}");
        assert!(list.resource_version >= last.resource_version);
    }

    // A missing pod is an empty list at the current version, as
    // Kubernetes' field selector gives, not NOT_FOUND.
    let missing = client
        .list_pods(by_name("prod", "ghost"))
        .await
        .expect("list of a missing pod")
        .into_inner();
    assert!(missing.pods.is_empty(), "{:?}", missing.pods);
    assert!(missing.resource_version >= last.resource_version);

    // As fresh as any list: a write acknowledged before it is in it.
    let mut session = Session::open(&mut client).await;
    let ack = session.apply(pod("prod", "ghost", "Running", 1)).await;
    let created = ack.pod.expect("the ack carries the pod");
    let list = client
        .list_pods(by_name("prod", "ghost"))
        .await
        .expect("list by name")
        .into_inner();
    assert_eq!(list.pods, std::slice::from_ref(&created));
    assert!(list.resource_version >= created.resource_version);
    let deleted = session.delete("prod", "ghost").await.pod.unwrap();
    let list = client
        .list_pods(by_name("prod", "ghost"))
        .await
        .unwrap()
        .into_inner();
    assert!(list.pods.is_empty());
    assert!(list.resource_version >= deleted.resource_version);
}

async fn a_name_without_a_namespace_or_a_bad_one_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("prod", "web", "Running", 1).await;
    let mut client = server.client().await;
    let refusals = [
        (
            by_name("", "web"),
            "invalid name: must be empty without a namespace",
        ),
        (
            by_name("prod", "Web"),
            "invalid name: must be a DNS-1123 label",
        ),
        (
            by_name("prod", "a/b"),
            "invalid name: must be a DNS-1123 label",
        ),
        (
            ListPodsRequest {
                continue_token: "from-another-list".into(),
                limit: 10,
                ..by_name("prod", "web")
            },
            "invalid continue_token: must be empty with a name",
        ),
    ];
    for (request, message) in refusals {
        let status = client.list_pods(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(message), "{status:?}");
        if request.continue_token.is_empty() {
            let status = client.watch_pods(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with(message), "{status:?}");
        }
    }
    assert_eq!(server.store.watcher_count(), 0, "no watcher was left");
}

/// From 0: the pod, then its changes only; from a version: its changes
/// after it. Changes to its neighbours (same namespace, same name in
/// another namespace, a name it prefixes) are never sent.
async fn a_watch_by_name_sees_only_its_pod(backend: Backend) {
    let server = TestServer::start(backend).await;
    let created = server.apply("prod", "web", "Running", 1).await;
    server.apply("prod", "api", "Running", 1).await;
    server.apply("dev", "web", "Running", 1).await;
    let mut client = server.client().await;
    let mut from_zero = watch(&mut client, by_name("prod", "web")).await;
    let mut from_created = watch(
        &mut client,
        ListPodsRequest {
            resource_version: created.resource_version,
            ..by_name("prod", "web")
        },
    )
    .await;
    assert_eq!(next(&mut from_zero).await, *created);

    let mut session = Session::open(&mut client).await;
    let mut expected = Vec::new();
    for (namespace, name, mine) in [
        ("prod", "api", false),
        ("prod", "web", true),
        ("dev", "web", false),
        ("prod", "web-2", false),
        ("prod", "we", false),
    ] {
        let ack = session.apply(pod(namespace, name, "Pending", 2)).await;
        if mine {
            expected.push(seen(&ack.pod.unwrap()));
        }
    }
    let deleted = session.delete("prod", "web").await.pod.unwrap();
    expected.push(seen(&deleted));
    session.delete("prod", "api").await;
    let again = session.apply(pod("prod", "web", "Running", 3)).await;
    expected.push(seen(&again.pod.unwrap()));

    for stream in [&mut from_zero, &mut from_created] {
        let mut got = Vec::new();
        for _ in &expected {
            got.push(seen(&next(stream).await));
        }
        assert_eq!(got, expected);
    }

    // Resumed after its delete: the re-creation only.
    let mut resumed = watch(
        &mut client,
        ListPodsRequest {
            resource_version: deleted.resource_version,
            ..by_name("prod", "web")
        },
    )
    .await;
    assert_eq!(seen(&next(&mut resumed).await), expected[2]);

    // A watch of a pod that does not exist yet sees it born.
    let mut unborn = watch(&mut client, by_name("prod", "later")).await;
    let born = session.apply(pod("prod", "later", "Running", 1)).await;
    assert_eq!(next(&mut unborn).await, born.pod.unwrap());
}

/// A watch of a quiet pod in a busy namespace: bookmarks after its current
/// state, then bookmarks that follow the store's version while its
/// neighbours change, and never a neighbour's change. A resume from the
/// last bookmark goes on where it was, long after the history has passed
/// the pod's own last change, where a resume from that change cannot.
async fn a_watch_by_name_is_bookmarked_and_resumes_from_a_bookmark(backend: Backend) {
    // On etcd each change is a transaction through the cluster (about 1 ms).
    let (history, neighbours) = match backend {
        Backend::Memory | Backend::Durable => (200, 2_000),
        Backend::Etcd | Backend::Nats | Backend::NatsTls => (50, 500),
    };
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            history,
            watch_buffer: 8_192,
            ..StoreConfig::default()
        },
        ServerConfig {
            bookmark_interval: BOOKMARK_INTERVAL,
            ..ServerConfig::default()
        },
    )
    .await;
    let quiet = server.apply("busy", "quiet", "Running", 1).await;
    let mut client = server.client().await;
    let mut stream = watch(
        &mut client,
        ListPodsRequest {
            allow_bookmarks: true,
            ..by_name("busy", "quiet")
        },
    )
    .await;
    assert_eq!(next(&mut stream).await, *quiet);
    let start = next(&mut stream).await;
    assert_eq!(
        start,
        bookmark(start.resource_version),
        "initial events end"
    );

    let pending: Vec<_> = (0..neighbours)
        .map(|i| {
            server.store.apply(ApplyPod {
                key: PodKey::new("busy", format!("p{}", i % 20)),
                status: "Running".into(),
                replicas: i,
                expected_version: None,
            })
        })
        .collect();
    for applied in pending {
        applied.await.expect("apply");
    }
    let end = server.store.version();
    let mut last = start.resource_version;
    while last < end {
        let pod = next(&mut stream).await;
        assert_eq!(
            pod,
            bookmark(pod.resource_version),
            "only bookmarks: {pod:?}"
        );
        assert!(pod.resource_version >= last, "bookmarks never go back");
        last = pod.resource_version;
    }
    drop(stream);

    // The pod's own last change has left the history; the bookmark has not.
    let from = |resource_version| ListPodsRequest {
        resource_version,
        allow_bookmarks: true,
        ..by_name("busy", "quiet")
    };
    let status = client
        .watch_pods(from(quiet.resource_version))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let mut resumed = watch(&mut client, from(last)).await;
    server.apply("busy", "p0", "Failed", 0).await;
    let changed = server.apply("busy", "quiet", "Pending", 2).await;
    let mut first = next(&mut resumed).await;
    while first.bookmark {
        first = next(&mut resumed).await;
    }
    assert_eq!(first, *changed, "the pod's next change, nothing before it");
}

/// The merging apply of `sync-pods` (`apply NS/NAME replicas=N`, keeping
/// the status) reads the pod it edits by name. Proof from the wire: twenty
/// of them in a namespace of thousands of pods cost fewer bytes from the
/// server than one list of that namespace, which each of them took when it
/// read the pod by listing its namespace.
async fn the_merging_apply_of_sync_pods_reads_one_pod(backend: Backend) {
    const EDITS: i32 = 20;
    let pods = match backend {
        Backend::Memory | Backend::Durable => 3_000,
        Backend::Etcd | Backend::Nats | Backend::NatsTls => 1_000,
    };
    let server = TestServer::start(backend).await;
    server
        .store
        .load((0..pods).map(|i| ApplyPod {
            key: PodKey::new("big", format!("pod-{i}")),
            status: "Running".into(),
            replicas: 1,
            expected_version: None,
        }))
        .await
        .expect("load the namespace");
    server.apply("big", "edited", "CrashLoopBackOff", 1).await;
    let namespace_bytes = server
        .client()
        .await
        .list_pods(common::list_request("big", 0))
        .await
        .expect("list the namespace")
        .into_inner()
        .encoded_len() as u64;

    let proxy = Proxy::start(server.addr).await;
    let config = pod_service::client::ClientConfig::new(proxy.url());
    let mut client = pod_service::client::connect(&config).await.unwrap();
    let script: String = (1..=EDITS)
        .map(|replicas| format!("apply big/edited replicas={replicas}\n"))
        .collect();
    let before = proxy.bytes_from_server();
    let mut output = Vec::new();
    let report = sync::run_session(
        &mut client,
        script.as_bytes(),
        &mut output,
        Mode::Script,
        |_| {},
    )
    .await
    .expect("the session");
    let sent = proxy.bytes_from_server() - before;
    let output = String::from_utf8(output).unwrap();
    assert_eq!((report.ops, report.failed), (EDITS as u64, 0), "{output}");
    assert!(
        output
            .lines()
            .all(|line| line.contains("status=CrashLoopBackOff")),
        "every merging apply kept the status it read: {output}"
    );
    let stored = client
        .list_pods(by_name("big", "edited"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stored.pods[0].status.as_str(), stored.pods[0].replicas),
        ("CrashLoopBackOff", EDITS)
    );
    assert!(
        sent < namespace_bytes,
        "{EDITS} merging applies took {sent} bytes from the server; \
         one list of the namespace is {namespace_bytes}"
    );
}

common::on_every_store!(
    a_list_by_name_is_one_pod_or_none,
    a_name_without_a_namespace_or_a_bad_one_is_refused,
    a_watch_by_name_sees_only_its_pod,
    a_watch_by_name_is_bookmarked_and_resumes_from_a_bookmark,
    the_merging_apply_of_sync_pods_reads_one_pod,
);

/// `watch-pods -n NS NAME`, as `kubectl get pod NAME -w`: the pod, then its
/// changes only, across a server restart; a NAME without a namespace is a
/// one-line error before any connection.
#[tokio::test]
async fn watch_pods_with_a_name_prints_that_pod_only() {
    let mut server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let mut watch = ClientProcess::of(
        "watch-pods",
        &["--addr", &server.url(), "-n", "production", "web"],
    );
    assert_eq!(watch.next_words().await[0], "EVENT");
    assert_eq!(
        watch.next_words().await[..3],
        ["ADDED", "production", "web"]
    );

    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    session.apply(pod("production", "api", "Failed", 0)).await; // a neighbour
    session.apply(pod("staging", "web", "Failed", 0)).await; // its name elsewhere
    let changed = session.apply(pod("production", "web", "Failed", 0)).await;
    let version = changed.pod.unwrap().resource_version.to_string();
    assert_eq!(
        watch.next_words().await,
        [
            "MODIFIED",
            "production",
            "web",
            "Failed",
            "0",
            version.as_str()
        ]
    );
    let deleted = session.delete("production", "web").await;
    let version = deleted.pod.unwrap().resource_version.to_string();
    assert_eq!(
        watch.next_words().await,
        ["DELETED", "production", "web", "-", "-", version.as_str()]
    );

    // Down and up again; the re-creation made meanwhile is printed once.
    server.stop().await;
    server.apply("production", "api", "Running", 1).await;
    let again = server.apply("production", "web", "Running", 2).await;
    server.restart().await;
    assert_eq!(
        watch.next_words().await,
        [
            "ADDED",
            "production",
            "web",
            "Running",
            "2",
            again.resource_version.to_string().as_str()
        ]
    );
    server.apply("production", "postgres", "Failed", 0).await;
    let last = server.apply("production", "web", "Running", 3).await;
    assert_eq!(
        watch.next_words().await[..6],
        [
            "MODIFIED",
            "production",
            "web",
            "Running",
            "3",
            last.resource_version.to_string().as_str()
        ],
        "nothing of the neighbours before it"
    );

    let mut command = bin("watch-pods");
    command.args(["--addr", &server.url(), "web"]);
    let output = run_with_input(command, "watch-pods", "").await;
    output.assert_one_line_error("NAME needs --namespace");
}
