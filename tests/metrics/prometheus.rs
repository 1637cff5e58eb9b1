//! The metrics endpoint of the real `pod-server`, scraped by a real
//! Prometheus (Debian's `prometheus`, installed if missing), and linted by
//! its `promtool`:
//!
//! - `GET /metrics` answers the Prometheus text format 0.0.4, OpenMetrics
//!   when asked, and 404 to any other path;
//! - `promtool check metrics` passes on it;
//! - it answers through shutdown, until the process exits;
//! - Prometheus scrapes it (the target is `up`) and its query API finds
//!   the counts a known mix of calls implies, and a finite
//!   `histogram_quantile` over `grpc_server_handling_seconds`.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::metrics::value;
use common::process::{ServerProcess, signal};
use common::{PATIENCE, Session, list_request, pod, tools, within};
use pod_service::contract::{LogChunk, PodServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_counts_the_calls_imply() {
    let prometheus = tools::require("prometheus", "prometheus");
    let promtool = tools::require("promtool", "prometheus");
    let data = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        &data.path().join("pods"),
        "127.0.0.1:0",
        &["--metrics-addr", "127.0.0.1:0"],
    )
    .await;
    let metrics = server
        .metrics_addr
        .clone()
        .expect("the metrics address is logged");

    // 5 ListPods calls, 2 of them refused.
    let mut client = PodServiceClient::connect(server.url())
        .await
        .expect("connect");
    for namespace in ["", "dev", "prod", "Not A Namespace", "--"] {
        let _ = client.list_pods(list_request(namespace, 0)).await;
    }

    // The endpoint itself: both formats, and 404 elsewhere.
    let (head, text) = get(&metrics, "/metrics", "").await;
    assert_eq!(status(&head), "200", "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let handled = [
        ("grpc_method", "ListPods"),
        ("grpc_code", "InvalidArgument"),
    ];
    assert_eq!(value(&text, "grpc_server_handled_total", &handled), 2.0);
    let (head, open) = get(
        &metrics,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    )
    .await;
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(open.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let (head, _) = get(&metrics, "/", "").await;
    assert_eq!(status(&head), "404", "{head}");

    lint(&promtool, &text).await;

    // A real Prometheus, scraping every second.
    let api = free_addr();
    let config = data.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: pod-server\n    static_configs:\n      \
             - targets: ['{metrics}']\n"
        ),
    )
    .expect("write the configuration");
    let _prometheus = start_prometheus(&prometheus, &config, &data.path().join("tsdb"), &api);
    // The first scrape takes a while (target discovery is throttled): wait
    // on the API for it, not on a sleep.
    let scraped =
        r#"grpc_server_handled_total{grpc_method="ListPods",grpc_code="InvalidArgument"}"#;
    let refused = within("Prometheus to scrape pod-server", poll(&api, scraped)).await;
    assert_eq!(refused, 2.0);
    let ok = poll(
        &api,
        r#"grpc_server_handled_total{grpc_method="ListPods",grpc_code="OK"}"#,
    )
    .await;
    assert_eq!(ok, 3.0);
    assert_eq!(poll(&api, r#"up{job="pod-server"}"#).await, 1.0);
    let quantile = poll(
        &api,
        r#"histogram_quantile(0.99, sum by (le) (grpc_server_handling_seconds_bucket{grpc_method="ListPods"}))"#,
    )
    .await;
    assert!(
        quantile.is_finite() && quantile > 0.0,
        "p99 of ListPods: {quantile}"
    );
}

/// Through shutdown: while an upload holds the server in its grace period
/// (health is `NOT_SERVING`), the endpoint still answers, and shows the
/// upload open; the server then exits once the upload ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_answers_through_shutdown() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(
        &data.path().join("pods"),
        "127.0.0.1:0",
        &["--metrics-addr", "127.0.0.1:0", "--grace", "60"],
    )
    .await;
    let metrics = server
        .metrics_addr
        .clone()
        .expect("the metrics address is logged");
    let mut client = PodServiceClient::connect(server.url())
        .await
        .expect("connect");
    let mut session = Session::open(&mut client).await;
    assert_eq!(session.apply(pod("dev", "web", "Running", 1)).await.code, 0);
    drop(session);

    // An upload that has sent one chunk, and holds on.
    let (chunks, queued) = tokio::sync::mpsc::channel(1);
    let upload = tokio::spawn({
        let mut client = client.clone();
        async move {
            let chunks = tokio_stream::wrappers::ReceiverStream::new(queued);
            client
                .upload_logs(chunks)
                .await
                .map(|done| done.into_inner().lines)
        }
    });
    let chunk = LogChunk {
        namespace: "dev".into(),
        pod: "web".into(),
        lines: vec!["hello".into()],
        first_line: 0,
    };
    chunks.send(chunk).await.expect("send a chunk");
    let stored = async {
        loop {
            let (_, text) = get(&metrics, "/metrics", "").await;
            if value(&text, "pod_service_log_lines_uploaded_total", &[]) == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    within("the chunk to be stored", stored).await;

    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel)
        .watch(HealthCheckRequest::default())
        .await
        .expect("health watch")
        .into_inner();
    within("SERVING", health.message())
        .await
        .expect("health")
        .expect("a status");
    signal(server.child.id().expect("pid"), "TERM");
    let stopping = within("NOT_SERVING", health.message())
        .await
        .expect("health");
    assert_eq!(
        stopping.map(|s| s.status),
        Some(ServingStatus::NotServing as i32)
    );

    let (head, text) = get(&metrics, "/metrics", "").await;
    assert_eq!(status(&head), "200", "during shutdown: {head}");
    let open = [("grpc_method", "UploadLogs")];
    assert_eq!(
        value(&text, "pod_service_open_streams", &open),
        1.0,
        "the upload, still open"
    );

    drop(chunks);
    let lines = within("the upload to end", upload).await.expect("task");
    assert_eq!(
        lines.expect("the upload completes during the grace period"),
        1
    );
    let exit = within("the server to exit", server.child.wait())
        .await
        .expect("wait");
    assert!(exit.success(), "{exit}");
}

/// `promtool check metrics` on a scrape: it must find nothing to say.
async fn lint(promtool: &Path, text: &str) {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = check.stdin.take().expect("stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("feed promtool");
    drop(stdin);
    let out = check.wait_with_output().await.expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_prometheus(program: &Path, config: &Path, tsdb: &Path, api: &str) -> Child {
    Command::new(program)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address={api}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus")
}

/// Queries Prometheus until the query has a result; its first value.
async fn poll(api: &str, query: &str) -> f64 {
    let encoded = percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC);
    loop {
        let (_, body) = get(api, &format!("/api/v1/query?query={encoded}"), "").await;
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let first = &answer["data"]["result"][0]["value"][1];
        if let Some(number) = first.as_str().and_then(|n| n.parse().ok()) {
            return number;
        }
        // Prometheus evaluates on its own clock: ask again shortly.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain HTTP/1.0 GET (the connection closes after the answer): the
/// status line and headers, and the body. An unreachable address counts
/// as an empty answer, for polling a server that is starting.
async fn get(addr: &str, path: &str, accept: &str) -> (String, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let accept = if accept.is_empty() {
            String::new()
        } else {
            format!("Accept: {accept}\r\n")
        };
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(PATIENCE, exchange)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_owned(), body.to_owned()),
        None => (answer, String::new()),
    }
}

/// The status code of an answer's head.
fn status(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or_default()
}

/// A loopback address nothing listens on now.
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").to_string()
}
