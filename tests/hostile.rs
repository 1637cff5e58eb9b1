//! Hostile and broken input: names built to escape or confuse, a client
//! opening streams without limit, one session flooding ops, and a handler
//! that panics. The server refuses or bounds each, changes nothing it
//! should not, and goes on serving everyone else.
//! (Oversized messages: `tests/list.rs`.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Session, TestServer, list_request, pod, within};
use pod_service::contract::{GetLogsRequest, LogChunk, Pod, PodRef, sync_request};
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::server::ServerConfig;
use pod_service::store::{Pending, PodBackend, Registry, StoreConfig, WriteOrder};
use tonic::Code;

/// Values that must never name a namespace or a pod: path tricks, control
/// bytes, look-alikes of valid names, and over-long names.
fn hostile_names() -> Vec<String> {
    vec![
        "../etc".into(),
        "a/b".into(),
        "a\\b".into(),
        "..".into(),
        ".".into(),
        "nul\0byte".into(),
        "new\nline".into(),
        "ѕtaging".into(),      // Cyrillic 's'
        "ｐｒｏｄ".into(),     // full-width letters
        "prod\u{200b}".into(), // zero-width space
        "Prod".into(),
        "-lead".into(),
        "trail-".into(),
        "x".repeat(64),
        "x".repeat(100_000),
    ]
}

#[tokio::test]
async fn hostile_names_are_refused_everywhere_and_touch_nothing() {
    let server = TestServer::start(common::Backend::Durable).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    session.apply(pod("default", "web", "Running", 1)).await;
    let data_dir = |server: &TestServer| {
        std::fs::read_dir(server.data_dir().expect("a durable server"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect::<Vec<_>>()
    };
    let files_before = data_dir(&server);
    let version_before = server.store.version();

    for name in hostile_names() {
        let shown = name.escape_debug().to_string();
        let shown = &shown[..shown.len().min(40)];
        // SyncPods: as a pod name, as a namespace, in a delete and a subscribe.
        for (op, field) in [
            (
                sync_request::Op::Apply(pod("default", &name, "Running", 1)),
                "apply.name",
            ),
            (
                sync_request::Op::Apply(pod(&name, "web", "Running", 1)),
                "apply.namespace",
            ),
            (
                sync_request::Op::Delete(PodRef {
                    namespace: "default".into(),
                    name: name.clone(),
                }),
                "delete.name",
            ),
        ] {
            let ack = session.call(op).await;
            assert_eq!(ack.code, Code::InvalidArgument as u32, "{shown}: {ack:?}");
            assert!(ack.message.contains(field), "{shown}: {}", ack.message);
        }
        // ListPods and WatchPods filters.
        let status = client.list_pods(list_request(&name, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
        assert!(
            status.message().contains("namespace"),
            "{}",
            status.message()
        );
        let status = client.watch_pods(list_request(&name, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
        // ... and the one pod they select by name.
        let by_name = pod_service::contract::ListPodsRequest {
            name: name.clone(),
            ..list_request("default", 0)
        };
        for status in [
            client.list_pods(by_name.clone()).await.unwrap_err(),
            client.watch_pods(by_name).await.unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
            assert!(
                status.message().starts_with("invalid name:"),
                "{}",
                status.message()
            );
        }
        // GetLogs and UploadLogs.
        let status = client
            .get_logs(GetLogsRequest {
                namespace: "default".into(),
                pod: name.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
        assert!(status.message().contains("pod"), "{}", status.message());
        let chunk = LogChunk {
            namespace: name.clone(),
            pod: "web".into(),
            lines: vec!["a line".into()],
            first_line: 0,
        };
        let status = client
            .upload_logs(tokio_stream::iter([chunk]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{shown}");
        assert!(
            status.message().contains("namespace"),
            "{}",
            status.message()
        );
    }

    assert_eq!(
        server.store.version(),
        version_before,
        "the store is unchanged"
    );
    assert_eq!(data_dir(&server), files_before, "no file was created");
    let pods = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pods.pods.len(), 1);
}

/// A client cannot hold more than `max_streams_per_connection` calls open
/// on one connection: the next one waits for a slot instead of costing
/// the server anything.
#[tokio::test]
async fn streams_per_connection_are_bounded() {
    const LIMIT: usize = 8;
    let server = TestServer::start_with(
        common::Backend::Memory,
        StoreConfig::default(),
        ServerConfig {
            max_streams_per_connection: LIMIT as u32,
            ..ServerConfig::default()
        },
    )
    .await;
    let mut writer = Session::open(&mut server.client().await).await;
    writer.apply(pod("default", "web", "Running", 1)).await;
    let mut greedy = server.client().await; // one connection
    // A first call, so that the client knows the server's limit. (A stream
    // sent before the client has read the server's settings is refused
    // with REFUSED_STREAM, which tonic reports as UNAVAILABLE.)
    greedy.list_pods(list_request("", 0)).await.unwrap();

    // Opened all at once; the server registers only LIMIT of them.
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..LIMIT + 4 {
        let mut client = greedy.clone();
        opening.spawn(async move {
            let mut stream = client
                .watch_pods(list_request("default", 0))
                .await
                .unwrap()
                .into_inner();
            stream.message().await.unwrap().unwrap();
            stream
        });
    }
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        open.push(
            within("a watch", opening.join_next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // A round trip on another connection: the server has handled what it got.
    writer.apply(pod("default", "web", "Running", 2)).await;
    assert_eq!(server.store.watcher_count(), LIMIT);

    // Ending streams lets the waiting ones in.
    open.truncate(LIMIT - 4);
    for _ in 0..4 {
        open.push(
            within("a waiting watch", opening.join_next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    server.await_watchers(LIMIT).await;
}

/// One session pipelining ops as fast as it can does not starve another
/// session doing one op at a time on the same connection. (Each session
/// has at most 256 ops in the store at once, and HTTP/2 flow control paces
/// its stream; the store's writers take turns.) Prints the polite
/// session's ack latency: `cargo test --release --test hostile flood -- --nocapture`.
#[tokio::test]
async fn a_flooding_session_does_not_starve_others() {
    let server = TestServer::start(common::Backend::Memory).await;
    let mut client = server.client().await;
    let (flood, outbound) = tokio::sync::mpsc::channel(1024);
    let mut acks = client
        .sync_pods(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    let draining = tokio::spawn(async move { while let Ok(Some(_)) = acks.message().await {} });
    let flooding = tokio::spawn(async move {
        for id in 1.. {
            let op = sync_request::Op::Apply(pod("flood", &format!("p{}", id % 50), "Running", 1));
            let request = pod_service::contract::SyncRequest { id, op: Some(op) };
            if flood.send(request).await.is_err() {
                break;
            }
        }
    });
    // The flood is running once its pods exist.
    common::eventually(|| server.store.version() > 2_000, "the flood to start").await;

    let mut polite = Session::open(&mut client).await;
    let version_before = server.store.version();
    let mut latencies = Vec::new();
    for i in 0..200 {
        let sent = std::time::Instant::now();
        let ack = within(
            "a polite op",
            polite.apply(pod("polite", "p", "Running", i)),
        )
        .await;
        latencies.push(sent.elapsed());
        assert_eq!(ack.code, 0, "{ack:?}");
    }
    let flood_ops = server.store.version() - version_before - 200;
    assert!(
        flood_ops >= 200,
        "the flood went on meanwhile ({flood_ops} ops)"
    );
    latencies.sort();
    eprintln!(
        "polite session under a flood: 200 acks, p50 {:?}, p99 {:?}, max {:?}; flood ops meanwhile: {flood_ops}",
        latencies[100], latencies[198], latencies[199]
    );
    flooding.abort();
    draining.abort();
}

/// A pod backend with two bugs, stand-ins for a bug in a handler: it
/// panics on the next read once armed, and on any apply of a pod named
/// "panic".
struct PanickingPods {
    pods: Arc<dyn PodBackend>,
    armed: AtomicBool,
}

impl PodBackend for PanickingPods {
    fn apply(&self, apply: ApplyPod, order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        assert_ne!(apply.key.name, "panic", "a bug in apply");
        self.pods.apply(apply, order)
    }
    fn delete(&self, key: PodKey, order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        self.pods.delete(key, order)
    }
    fn fresh(&self, version: u64) -> Pending<()> {
        assert!(
            !self.armed.swap(false, Ordering::Relaxed),
            "a bug in a read"
        );
        self.pods.fresh(version)
    }
    fn close(&self) -> Pending<()> {
        self.pods.close()
    }
}

#[tokio::test]
async fn a_panicking_handler_fails_its_call_only() {
    let pods = std::sync::OnceLock::new();
    let registry = Registry::in_memory_with(StoreConfig::default(), |memory, logs| {
        let panicking = Arc::new(PanickingPods {
            pods: memory,
            armed: AtomicBool::new(false),
        });
        let _ = pods.set(Arc::clone(&panicking));
        (panicking, logs)
    });
    let metrics = Arc::new(pod_service::server::new_metrics());
    let config = ServerConfig {
        metrics: Arc::clone(&metrics),
        ..ServerConfig::default()
    };
    let server = TestServer::start_on(Arc::new(registry), config).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_pods(list_request("default", 0))
        .await
        .unwrap()
        .into_inner();
    server.await_watchers(1).await;

    // A panic before the call answered: INTERNAL, with a message.
    if let Some(pods) = pods.get() {
        pods.armed.store(true, Ordering::Relaxed);
    }
    let status = client
        .list_pods(list_request("panic", 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("failed on this call"),
        "{status:?}"
    );
    // Counted as what it was, not as a client that went away.
    let counted = metrics.encode(pod_service::metrics::Format::Prometheus);
    let internal = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="infra.PodService",grpc_method="ListPods",grpc_code="Internal"} 1"#;
    assert!(counted.contains(internal), "a panic is counted Internal");

    // A panic inside an open stream: that stream fails.
    let mut session = Session::open(&mut client).await;
    session
        .send(sync_request::Op::Apply(pod(
            "default", "panic", "Running", 1,
        )))
        .await;
    let ended = within("the session to fail", session.events.message()).await;
    assert!(ended.is_err(), "{ended:?}");

    // Everything else goes on, on the same connection: the watch opened
    // before sees the next change, and new calls work.
    let mut other = Session::open(&mut client).await;
    assert_eq!(
        other.apply(pod("default", "web", "Running", 1)).await.code,
        0
    );
    let change = within("the change", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.name, "web");
    assert!(client.list_pods(list_request("default", 0)).await.is_ok());
}
