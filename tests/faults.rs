//! Clients that vanish, give up or never answer, many streams at once, and
//! a soak of mixed load: nothing acknowledged is lost, and nothing is left
//! behind in the server afterwards (watchers, followers, tasks).
//!
//! The full-size runs are opt-in:
//! `cargo test --release --test faults -- --ignored --nocapture`
//! (10,000 watchers; a soak of `POD_SERVICE_SOAK_SECONDS`, default 300).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{eventually, list_request, pod, within};
use pod_service::contract::{
    GetLogsRequest, LogChunk, PodServiceClient, SyncRequest, sync_request,
};
use pod_service::domain::PodKey;
use pod_service::server::{InProcessServer, ServerConfig};
use pod_service::store::{Registry, StoreConfig};
use tonic::Code;
use tonic::transport::Channel;

/// A server on a runtime of its own, so that its tasks can be counted apart
/// from the test's clients.
struct Isolated {
    server: Option<InProcessServer>,
    runtime: Option<tokio::runtime::Runtime>,
    store: Arc<Registry>,
}

impl Isolated {
    fn start(config: ServerConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(Registry::in_memory(StoreConfig::default()));
        let server =
            InProcessServer::start_on(runtime.handle().clone(), Arc::clone(&store), config)
                .unwrap();
        Isolated {
            server: Some(server),
            runtime: Some(runtime),
            store,
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().addr()
    }

    fn tasks(&self) -> usize {
        self.runtime.as_ref().unwrap().metrics().num_alive_tasks()
    }

    /// Waits until the server holds no watcher and no more tasks than `baseline`.
    async fn await_idle(&self, baseline: usize, what: &str) {
        eventually(
            || self.store.watcher_count() == 0 && self.tasks() <= baseline,
            what,
        )
        .await;
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn connect(url: String) -> PodServiceClient<Channel> {
    PodServiceClient::connect(url).await.unwrap()
}

async fn apply(
    client: &mut PodServiceClient<Channel>,
    pods: Vec<pod_service::contract::Pod>,
) -> u64 {
    let ops: Vec<_> = pods
        .into_iter()
        .enumerate()
        .map(|(i, pod)| SyncRequest {
            id: i as u64 + 1,
            op: Some(sync_request::Op::Apply(pod)),
        })
        .collect();
    let mut acks = client
        .sync_pods(tokio_stream::iter(ops))
        .await
        .unwrap()
        .into_inner();
    let mut version = 0;
    while let Some(event) = acks.message().await.unwrap() {
        if let Some(pod_service::contract::sync_event::Event::Ack(ack)) = event.event {
            assert_eq!(ack.code, 0, "{ack:?}");
            version = ack.pod.unwrap().resource_version;
        }
    }
    version
}

/// A client whose connection goes silent (no FIN, no reset) is noticed by
/// the server's keepalive within interval + timeout, and its watch, log
/// follower and sync session are freed. Prints the time it took.
#[tokio::test]
async fn a_vanished_client_is_noticed_and_freed() {
    let keepalive = Duration::from_millis(500);
    let server = Isolated::start(ServerConfig {
        keepalive_interval: keepalive,
        keepalive_timeout: keepalive,
        ..ServerConfig::default()
    });
    let mut direct = connect(server.url()).await;
    apply(&mut direct, vec![pod("default", "web", "Running", 1)]).await;
    let log = server
        .store
        .fresh(0)
        .await
        .unwrap()
        .log(&PodKey::new("default", "web"))
        .unwrap();
    let log_handles = Arc::strong_count(&log);
    let baseline = server.tasks();

    let proxy = Proxy::start(server.addr()).await;
    let mut doomed = connect(proxy.url()).await;
    let mut watch = doomed
        .watch_pods(list_request("default", 0))
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    let follow = doomed
        .get_logs(GetLogsRequest {
            namespace: "default".into(),
            pod: "web".into(),
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (session, outbound) = tokio::sync::mpsc::channel(4);
    session
        .send(SyncRequest {
            id: 1,
            op: Some(sync_request::Op::Subscribe(Default::default())),
        })
        .await
        .unwrap();
    let mut events = doomed
        .sync_pods(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    events.message().await.unwrap().unwrap();
    eventually(|| server.store.watcher_count() == 2, "watch and session").await;
    eventually(|| Arc::strong_count(&log) > log_handles, "the follower").await;

    proxy.vanish();
    let vanished = Instant::now();
    server
        .await_idle(baseline, "the vanished client's calls to be freed")
        .await;
    eventually(
        || Arc::strong_count(&log) == log_handles,
        "the follower to be freed",
    )
    .await;
    let noticed = vanished.elapsed();
    eprintln!(
        "vanished client noticed and freed after {noticed:?} \
         (keepalive interval {keepalive:?} + timeout {keepalive:?})"
    );
    assert!(
        noticed >= keepalive,
        "freed before keepalive could tell: {noticed:?}"
    );

    // The server is unharmed.
    assert!(direct.list_pods(list_request("", 0)).await.is_ok());
    drop((watch, follow, events, session));
}

/// A stream whose client set a deadline ends with DEADLINE_EXCEEDED when
/// it passes, and frees what it held.
#[tokio::test]
async fn a_stream_ends_at_its_deadline() {
    let server = Isolated::start(ServerConfig::default());
    let mut client = connect(server.url()).await;
    apply(&mut client, vec![pod("default", "web", "Running", 1)]).await;
    let baseline = server.tasks();

    let mut request = tonic::Request::new(list_request("default", 0));
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let mut watch = client.watch_pods(request).await.unwrap().into_inner();
    watch.message().await.unwrap().unwrap();
    let ended = within("the deadline", watch.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    let mut request = tonic::Request::new(tokio_stream::pending::<SyncRequest>());
    request.set_timeout(Duration::from_millis(300));
    let mut session = client.sync_pods(request).await.unwrap().into_inner();
    let ended = within("the deadline", session.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");

    drop((watch, session));
    server.await_idle(baseline, "the streams to be freed").await;
}

/// `list-pods` gives up on a server that accepts connections but never
/// answers, with one line naming the deadline, instead of hanging.
#[tokio::test]
async fn list_pods_gives_up_on_a_server_that_never_answers() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket); // accepted, never read, never answered
        }
    });
    let output = within(
        "list-pods to give up",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_list-pods"))
            .args(["--addr", &format!("http://{addr}"), "--timeout", "0.5"])
            .output(),
    )
    .await
    .unwrap();
    holding.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("did not answer within 0.5s"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Every one of `watchers` WatchPods streams (over connections of 250)
/// receives each of two changes exactly once, in order.
async fn every_watcher_gets_every_change_once(watchers: usize) {
    let server = Isolated::start(ServerConfig::default());
    let mut writer = connect(server.url()).await;
    apply(&mut writer, vec![pod("fleet", "web", "Running", 0)]).await;
    let baseline = server.tasks();
    let mut connections = Vec::new();
    for _ in 0..watchers.div_ceil(250) {
        connections.push(connect(server.url()).await);
    }
    let mut streams = Vec::with_capacity(watchers);
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..watchers {
        let mut client = connections[i % connections.len()].clone();
        opening.spawn(async move {
            let mut stream = client
                .watch_pods(list_request("fleet", 0))
                .await
                .unwrap()
                .into_inner();
            let first = stream.message().await.unwrap().unwrap();
            assert_eq!(first.replicas, 0);
            stream
        });
    }
    while let Some(stream) = within("the watches to open", opening.join_next()).await {
        streams.push(stream.unwrap());
    }
    assert_eq!(server.store.watcher_count(), watchers);

    let started = Instant::now();
    let first = apply(&mut writer, vec![pod("fleet", "web", "Running", 1)]).await;
    let second = apply(&mut writer, vec![pod("fleet", "web", "Running", 2)]).await;
    let mut reading = tokio::task::JoinSet::new();
    for mut stream in streams {
        reading.spawn(async move {
            let a = stream.message().await.unwrap().unwrap();
            let b = stream.message().await.unwrap().unwrap();
            assert_eq!((a.resource_version, b.resource_version), (first, second));
        });
    }
    while let Some(done) = within("every watcher", reading.join_next()).await {
        done.unwrap();
    }
    eprintln!(
        "{watchers} watchers: both changes delivered to all in {:?}",
        started.elapsed()
    );
    drop(connections);
    server
        .await_idle(baseline, "the watchers to be freed")
        .await;
}

#[tokio::test]
async fn five_hundred_watchers_get_every_change_once() {
    every_watcher_gets_every_change_once(500).await;
}

#[tokio::test]
#[ignore = "full size: run with --ignored --release"]
async fn ten_thousand_watchers_get_every_change_once() {
    every_watcher_gets_every_change_once(10_000).await;
}

/// Mixed load for `seconds`: watchers (some never reading), log followers,
/// uploads, sync sessions and lists. Every upload is counted exactly, every
/// op acknowledged; afterwards the server is back to its baseline of tasks
/// and watchers.
async fn soak(seconds: u64) {
    let server = Isolated::start(ServerConfig::default());
    let mut setup = connect(server.url()).await;
    let pods = (0..4)
        .map(|i| pod("soak", &format!("p{i}"), "Running", 1))
        .collect();
    apply(&mut setup, pods).await;
    let baseline = server.tasks();
    let rss_before = rss();
    let until = Instant::now() + Duration::from_secs(seconds);

    let mut load = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let url = server.url();
        load.spawn(async move {
            let mut client = connect(url.clone()).await;
            let mut rounds = 0u64;
            while Instant::now() < until {
                rounds += 1;
                // A watch that reads, one that never does, a follower, all
                // cancelled at the end of the round, on a connection of
                // their own: h2 closes a client connection that has
                // cancelled 1,024 streams over its life (hyperium/h2#856),
                // and a client that comes and goes is the point here.
                let mut streams = connect(url.clone()).await;
                let mut watch = streams
                    .watch_pods(list_request("soak", 0))
                    .await
                    .unwrap()
                    .into_inner();
                let idle = streams
                    .watch_pods(list_request("soak", 0))
                    .await
                    .unwrap()
                    .into_inner();
                let follow = streams
                    .get_logs(GetLogsRequest {
                        namespace: "soak".into(),
                        pod: format!("p{worker}"),
                        follow: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                // An upload, counted exactly.
                let chunk = LogChunk {
                    namespace: "soak".into(),
                    pod: format!("p{worker}"),
                    lines: vec!["a soak line".into(); 100],
                    first_line: 0,
                };
                let summary = client
                    .upload_logs(tokio_stream::iter(vec![chunk; 10]))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(summary.lines, 1_000);
                // A session of ten ops, each acknowledged.
                let pods = (0..10)
                    .map(|i| {
                        pod(
                            "soak",
                            &format!("w{worker}-{i}"),
                            "Running",
                            rounds as i32 % 5,
                        )
                    })
                    .collect();
                apply(&mut client, pods).await;
                // Lists, and the watch sees at least the snapshot.
                client.list_pods(list_request("soak", 0)).await.unwrap();
                watch.message().await.unwrap().unwrap();
                drop((watch, idle, follow, streams));
            }
            rounds
        });
    }
    let mut rounds = 0;
    while let Some(done) = load.join_next().await {
        rounds += done.unwrap();
    }
    drop(setup);
    server
        .await_idle(baseline, "the server to return to its baseline")
        .await;
    eprintln!(
        "soak of {seconds}s: {rounds} rounds ({} calls, {rounds} connections); tasks back to {} \
         of baseline {baseline}; test process RSS {:.1} -> {:.1} MB",
        rounds * 6,
        server.tasks(),
        rss_before as f64 / 1e6,
        rss() as f64 / 1e6
    );
    assert!(rounds > 0);
}

/// This process's resident memory (client and server together).
fn rss() -> u64 {
    common::resident_bytes(std::process::id()).unwrap_or(0)
}

#[tokio::test]
async fn a_short_soak_leaves_nothing_behind() {
    soak(2).await;
}

#[tokio::test]
#[ignore = "full size: run with --ignored --release"]
async fn a_long_soak_leaves_nothing_behind() {
    let seconds = std::env::var("POD_SERVICE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    soak(seconds).await;
}

/// When the server dies in the middle of an upload, `upload-logs` says
/// that the lines it sent are unconfirmed and how many there were, in one
/// line, and exits non-zero: never a silent partial success.
#[tokio::test]
async fn upload_logs_reports_unconfirmed_lines_when_the_server_dies() {
    use common::process::ServerProcess;
    use tokio::io::AsyncWriteExt;

    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0", &[]).await;
    let mut client = connect(server.url()).await;
    apply(&mut client, vec![pod("default", "web", "Running", 1)]).await;

    let mut upload = tokio::process::Command::new(env!("CARGO_BIN_EXE_upload-logs"))
        .args(["--addr", &server.url(), "--pod", "web"])
        .env_remove("POD_SERVICE_ADDR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = upload.stdin.take().unwrap();
    // Lines keep coming until upload-logs stops reading.
    let feeding = tokio::spawn(async move {
        let block = "a line of a log that never ends\n".repeat(1_000);
        while stdin.write_all(block.as_bytes()).await.is_ok() {}
    });
    // Once some lines are stored, the server dies.
    common::await_log_line(&mut client, "default", "web").await;
    server.kill().await;

    let output = within("upload-logs to exit", upload.wait_with_output())
        .await
        .unwrap();
    feeding.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("lines were sent and before the server confirmed any of them"),
        "{stderr}"
    );
}

/// `watch-pods` and a subscribed `sync-pods` whose connection dies silently
/// (no FIN, no reset: only keepalive can tell) notice it, reconnect, and
/// print every change made meanwhile exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_notice_a_silently_dead_connection_and_resume() {
    use common::process::ClientProcess;
    let server = Isolated::start(ServerConfig::default());
    let mut writer = connect(server.url()).await;
    apply(&mut writer, vec![pod("path", "a", "Running", 1)]).await;
    let proxy = Proxy::start(server.addr()).await;
    let fast_keepalive = ["--keepalive-interval", "0.3", "--keepalive-timeout", "0.3"];
    let mut watch = ClientProcess::spawn(
        env!("CARGO_BIN_EXE_watch-pods"),
        &[&["--addr", &proxy.url(), "-n", "path"][..], &fast_keepalive].concat(),
    );
    assert!(watch.next_line().await.starts_with("EVENT"));
    assert!(watch.next_line().await.contains(" a "));
    let mut sync = ClientProcess::spawn(
        env!("CARGO_BIN_EXE_sync-pods"),
        &[&["--addr", &proxy.url()][..], &fast_keepalive].concat(),
    );
    sync.write("watch path\n").await;
    assert_eq!(sync.next_line().await, "ack 1 OK");
    assert!(sync.next_line().await.starts_with("change ADDED path/a"));

    // The path dies; changes are made meanwhile, directly.
    proxy.vanish();
    let vanished = Instant::now();
    apply(&mut writer, vec![pod("path", "b", "Running", 2)]).await;
    apply(&mut writer, vec![pod("path", "a", "Running", 3)]).await;

    let line = watch.next_line().await;
    eprintln!(
        "watch-pods printed the first missed change {:?} after the path died",
        vanished.elapsed()
    );
    assert_eq!(words(&line), ["ADDED", "path", "b", "Running", "2", "2"]);
    assert_eq!(
        words(&watch.next_line().await),
        ["MODIFIED", "path", "a", "Running", "3", "3"]
    );
    assert_eq!(
        sync.next_line().await,
        "change ADDED path/b status=Running replicas=2 v2"
    );
    assert_eq!(
        sync.next_line().await,
        "change MODIFIED path/a status=Running replicas=3 v3"
    );
    // Nothing repeated: the next line is the next change.
    apply(&mut writer, vec![pod("path", "c", "Running", 1)]).await;
    assert_eq!(
        words(&watch.next_line().await),
        ["ADDED", "path", "c", "Running", "1", "4"]
    );
    assert_eq!(
        sync.next_line().await,
        "change ADDED path/c status=Running replicas=1 v4"
    );
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A full disk (the server's files cannot grow: EFBIG) fails the write that
/// hit it and every later one with INTERNAL saying why, reads go on, and
/// after a restart every acknowledged pod and upload is there.
#[tokio::test]
async fn a_full_disk_fails_writes_and_loses_nothing_acknowledged() {
    use common::process::ServerProcess;
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_full_disk(data.path(), 8192).await;
    let mut client = connect(server.url()).await;
    apply(&mut client, vec![pod("default", "web", "Running", 1)]).await;

    // Uploads of 200 KB until the disk is full; each acknowledged one is kept.
    let mut acknowledged = Vec::new();
    let failure = loop {
        assert!(acknowledged.len() < 400, "the disk never filled");
        let n = acknowledged.len();
        let lines: Vec<String> = (0..2_000)
            .map(|i| format!("{n:03}-{i:04} {}", "x".repeat(90)))
            .collect();
        let chunks: Vec<LogChunk> = lines
            .chunks(1_000)
            .map(|lines| LogChunk {
                namespace: "default".into(),
                pod: "web".into(),
                lines: lines.to_vec(),
                first_line: 0,
            })
            .collect();
        match client.upload_logs(tokio_stream::iter(chunks)).await {
            Ok(_) => acknowledged.push(lines),
            Err(status) => break status,
        }
    };
    eprintln!(
        "disk full after {} acknowledged uploads: {failure:?}",
        acknowledged.len()
    );
    assert!(
        !acknowledged.is_empty(),
        "the first upload already failed: {failure:?}"
    );
    assert_eq!(failure.code(), Code::Internal, "{failure:?}");
    assert!(failure.message().contains("File too large"), "{failure:?}");
    assert!(
        failure.message().contains("not confirmed stored"),
        "{failure:?}"
    );

    // Later writes are refused, saying what to do; reads go on.
    let refused = apply_status(&mut client, pod("default", "late", "Running", 1)).await;
    assert_eq!(refused.code, Code::Internal as u32, "{refused:?}");
    assert!(
        refused.message.contains("restart the server"),
        "{refused:?}"
    );
    let pods = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pods.pods.len(), 1);

    // Restarted with room: everything acknowledged is there, in order.
    server.kill().await;
    let server = ServerProcess::start(data.path(), "127.0.0.1:0", &[]).await;
    let mut client = connect(server.url()).await;
    let stored = common::read_log(&mut client, "default", "web").await;
    let acknowledged: Vec<String> = acknowledged.concat();
    assert!(
        stored.len() >= acknowledged.len(),
        "{} of {} lines",
        stored.len(),
        acknowledged.len()
    );
    assert_eq!(stored[..acknowledged.len()], acknowledged[..]);
    // And the store takes writes again.
    assert_eq!(
        apply_status(&mut client, pod("default", "late", "Running", 1))
            .await
            .code,
        0
    );
}

/// The ack of one apply, whatever its code.
async fn apply_status(
    client: &mut PodServiceClient<Channel>,
    pod: pod_service::contract::Pod,
) -> pod_service::contract::SyncAck {
    let op = SyncRequest {
        id: 1,
        op: Some(sync_request::Op::Apply(pod)),
    };
    let mut events = client
        .sync_pods(tokio_stream::iter([op]))
        .await
        .unwrap()
        .into_inner();
    match events
        .message()
        .await
        .unwrap()
        .and_then(|event| event.event)
    {
        Some(pod_service::contract::sync_event::Event::Ack(ack)) => ack,
        other => panic!("expected an ack, got {other:?}"),
    }
}
