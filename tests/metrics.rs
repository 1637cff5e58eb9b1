//! The metrics, in process: after a known mix of calls the `grpc_server_*`
//! and `pod_service_*` counts are exactly what those calls imply; the
//! endpoint answers both text formats and 404 to anything else; and the
//! number of series does not grow with pods, namespaces or clients.

mod common;
#[path = "metrics/prometheus.rs"]
mod prometheus;

use std::sync::Arc;

use common::metrics::{samples, value};
use common::{Backend, Session, TestServer, eventually, list_request, pod, within};
use pod_service::contract::{LogChunk, Pod, PodServiceClient};
use pod_service::metrics::{Format, Metrics};
use pod_service::server::{self, ServerConfig};
use pod_service::store::StoreConfig;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SERVICE: &str = "infra.PodService";

async fn server_with_metrics() -> (TestServer, Arc<Metrics>) {
    server_on(Backend::Durable).await
}

async fn server_on(backend: Backend) -> (TestServer, Arc<Metrics>) {
    let metrics = Arc::new(server::new_metrics());
    let config = ServerConfig {
        metrics: Arc::clone(&metrics),
        ..ServerConfig::default()
    };
    let limits = StoreConfig {
        metrics: metrics.store.clone(),
        ..StoreConfig::default()
    };
    (
        TestServer::start_with(backend, limits, config).await,
        metrics,
    )
}

fn grpc(text: &str, name: &str, method: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("grpc_service", SERVICE), ("grpc_method", method)];
    labels.extend_from_slice(extra);
    value(text, name, &labels)
}

fn handled(text: &str, method: &str, code: &str) -> f64 {
    grpc(
        text,
        "grpc_server_handled_total",
        method,
        &[("grpc_code", code)],
    )
}

#[tokio::test]
async fn counts_are_exactly_what_the_calls_imply() {
    let (server, metrics) = server_with_metrics().await;
    let mut client = server.client().await;

    // 5 ListPods calls, 2 of them refused.
    for namespace in ["", "dev", "prod", "Not A Namespace", "--"] {
        let _ = client.list_pods(list_request(namespace, 0)).await;
    }
    // A watch its client cancels after the first message.
    server.apply("dev", "web", "Running", 1).await;
    let mut watch = client
        .watch_pods(list_request("dev", 0))
        .await
        .expect("watch")
        .into_inner();
    within("the snapshot", watch.next()).await;
    drop(watch);
    // An upload of 3 chunks, 2 lines of 5 bytes each.
    let chunks = (0..3).map(|_| LogChunk {
        namespace: "dev".into(),
        pod: "web".into(),
        lines: vec!["hello".into(), "world".into()],
        first_line: 0,
    });
    client
        .upload_logs(tokio_stream::iter(chunks))
        .await
        .expect("upload");
    // A sync session of 4 ops, one of them ABORTED.
    let mut session = Session::open(&mut client).await;
    let applied = session.apply(pod("dev", "db", "Running", 1)).await;
    assert_eq!(applied.code, 0);
    let stale = Pod {
        resource_version: 1,
        ..pod("dev", "db", "Running", 2)
    };
    assert_eq!(session.apply(stale).await.code, Code::Aborted as u32);
    assert_eq!(
        session.apply(pod("dev", "cache", "Running", 1)).await.code,
        0
    );
    assert_eq!(session.delete("dev", "cache").await.code, 0);
    session.half_close();
    while session.next_event().await.is_some() {}
    // And a health check.
    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health");

    // The calls end on the server a moment after their clients see it.
    let text = || metrics.encode(Format::Prometheus);
    eventually(
        || {
            handled(&text(), "WatchPods", "Canceled") == 1.0
                && handled(&text(), "SyncPods", "OK") == 1.0
        },
        "the watch and the session to end on the server",
    )
    .await;
    let text = text();
    let started = |method| grpc(&text, "grpc_server_started_total", method, &[]);
    let received = |method| grpc(&text, "grpc_server_msg_received_total", method, &[]);
    let sent = |method| grpc(&text, "grpc_server_msg_sent_total", method, &[]);
    let timed = |method| grpc(&text, "grpc_server_handling_seconds_count", method, &[]);

    assert_eq!(started("ListPods"), 5.0);
    assert_eq!(handled(&text, "ListPods", "OK"), 3.0);
    assert_eq!(handled(&text, "ListPods", "InvalidArgument"), 2.0);
    assert_eq!((received("ListPods"), sent("ListPods")), (5.0, 3.0));
    assert_eq!(timed("ListPods"), 5.0);

    assert_eq!(started("WatchPods"), 1.0);
    assert_eq!(handled(&text, "WatchPods", "Canceled"), 1.0);
    assert_eq!(timed("WatchPods"), 1.0);
    assert!(sent("WatchPods") >= 1.0, "the snapshot's pod was sent");
    assert_eq!(
        value(
            &text,
            "pod_service_watchers_ended_total",
            &[("reason", "client_gone")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "pod_service_watch_events_total",
            &[("type", "added")]
        ),
        1.0
    );

    assert_eq!(started("UploadLogs"), 1.0);
    assert_eq!(handled(&text, "UploadLogs", "OK"), 1.0);
    assert_eq!((received("UploadLogs"), sent("UploadLogs")), (3.0, 1.0));
    assert_eq!(
        value(&text, "pod_service_log_lines_uploaded_total", &[]),
        6.0
    );
    assert_eq!(
        value(&text, "pod_service_log_bytes_uploaded_total", &[]),
        30.0
    );

    assert_eq!(started("SyncPods"), 1.0);
    assert_eq!(handled(&text, "SyncPods", "OK"), 1.0);
    assert_eq!((received("SyncPods"), sent("SyncPods")), (4.0, 4.0));
    let ops = |kind, result| {
        value(
            &text,
            "pod_service_sync_ops_total",
            &[("kind", kind), ("result", result)],
        )
    };
    assert_eq!(ops("apply", "OK"), 2.0);
    assert_eq!(ops("apply", "Aborted"), 1.0);
    assert_eq!(ops("delete", "OK"), 1.0);

    let health = [
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Check"),
    ];
    assert_eq!(
        value(
            &text,
            "grpc_server_handled_total",
            &[health[0], health[1], ("grpc_code", "OK")]
        ),
        1.0
    );

    // Types as grpc-go names them.
    let typed = |method, kind| {
        grpc(
            &text,
            "grpc_server_started_total",
            method,
            &[("grpc_type", kind)],
        )
    };
    assert_eq!(typed("ListPods", "unary"), 5.0);
    assert_eq!(typed("WatchPods", "server_stream"), 1.0);
    assert_eq!(typed("UploadLogs", "client_stream"), 1.0);
    assert_eq!(typed("SyncPods", "bidi_stream"), 1.0);

    // The store: a durable commit per write at least, and its file.
    assert!(value(&text, "pod_service_store_commit_seconds_count", &[]) >= 4.0);
    assert!(value(&text, "pod_service_store_file_bytes", &[]) > 0.0);
    // Nothing is open any more.
    assert_eq!(value(&text, "pod_service_open_streams", &[]), 0.0);
}

/// The shared stores count their requests: etcd's transactions and
/// quorum reads, NATS' publishes and reads, each by result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_stores_count_their_requests() {
    let (server, metrics) = server_on(Backend::Nats).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    assert_eq!(session.apply(pod("dev", "web", "Running", 1)).await.code, 0);
    let chunk = LogChunk {
        namespace: "dev".into(),
        pod: "web".into(),
        lines: vec!["hello".into()],
        first_line: 0,
    };
    client
        .upload_logs(tokio_stream::iter([chunk]))
        .await
        .expect("upload");
    common::read_log(&mut client, "dev", "web").await;
    let text = metrics.encode(Format::Prometheus);
    let requests = |backend, operation| {
        let labels = [
            ("backend", backend),
            ("operation", operation),
            ("result", "ok"),
        ];
        value(&text, "pod_service_store_request_seconds_count", &labels)
    };
    assert!(requests("etcd", "txn") >= 1.0, "etcd transactions");
    assert!(requests("etcd", "range") >= 1.0, "etcd quorum reads");
    assert!(requests("nats", "publish") >= 1.0, "NATS publishes");
    assert!(requests("nats", "get") >= 1.0, "NATS reads");
}

/// The feed's watch of etcd, broken by a member's restart, is counted as
/// a restart of the feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_etcd_watch_is_counted() {
    let cluster = common::etcd::EtcdCluster::start(1).await;
    let metrics = server::new_metrics();
    let limits = StoreConfig {
        metrics: metrics.store.clone(),
        ..StoreConfig::default()
    };
    let prefix = common::etcd::unique_prefix();
    let _registry = common::replicas::open(&cluster, &prefix, limits).await;
    let broken = || {
        let text = metrics.encode(Format::Prometheus);
        value(
            &text,
            "pod_service_store_feed_restarts_total",
            &[("reason", "broken")],
        )
    };
    assert_eq!(broken(), 0.0);
    cluster.kill(0);
    cluster.restart(0).await;
    eventually(|| broken() >= 1.0, "the feed to count its broken watch").await;
}

/// A refusal before the handler (here, a missing token) is counted too.
#[tokio::test]
async fn calls_the_token_check_refuses_are_counted() {
    let metrics = Arc::new(server::new_metrics());
    let config = ServerConfig {
        metrics: Arc::clone(&metrics),
        token: Some(pod_service::contract::Token::new("s3cret").expect("token")),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(Backend::Memory, StoreConfig::default(), config).await;
    let refused = server.client().await.list_pods(list_request("", 0)).await;
    assert_eq!(refused.map(drop).unwrap_err().code(), Code::Unauthenticated);
    let text = metrics.encode(Format::Prometheus);
    assert_eq!(handled(&text, "ListPods", "Unauthenticated"), 1.0);
}

/// Every series exists from the start, and none is added by traffic: the
/// same number after 10 pods as after 1,000 pods in 100 namespaces and 100
/// clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_label_set_is_bounded() {
    let (server, metrics) = server_with_metrics().await;
    let series = |metrics: &Metrics| samples(&metrics.encode(Format::Prometheus)).len();
    let traffic = |clients: usize, namespaces: usize, pods: usize| {
        let server = &server;
        async move {
            let mut callers = Vec::new();
            for c in 0..clients {
                callers.push(async move {
                    let mut client: PodServiceClient<Channel> = server.client().await;
                    let mut session = Session::open(&mut client).await;
                    for p in (c..pods).step_by(clients) {
                        let namespace = format!("ns-{}", p % namespaces);
                        let ack = session
                            .apply(pod(&namespace, &format!("pod-{p}"), "Running", 1))
                            .await;
                        assert_eq!(ack.code, 0, "{}", ack.message);
                    }
                    client
                        .list_pods(list_request("ns-0", 0))
                        .await
                        .expect("list");
                });
            }
            futures::future::join_all(callers).await;
        }
    };
    traffic(1, 1, 10).await;
    let small = series(&metrics);
    traffic(100, 100, 1_000).await;
    assert_eq!(
        series(&metrics),
        small,
        "series after 1,000 pods, 100 namespaces, 100 clients"
    );
}
